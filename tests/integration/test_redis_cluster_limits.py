"""The rate-limit store's and the loop state's tests of test_limits_store.py and
test_loops_store.py, run again on a real Redis Cluster (`store_url` is a `redis+cluster://` URL):
every limits script (acquire, finish, with and without leases) and the loop script run with their
keys in one slot, and give the same answers as on one Redis."""

from __future__ import annotations

import pytest
from tests.integration.test_limits_store import (  # noqa: F401  (fixtures and tests run here again)
    make,
    prefix,
    test_contract_acquire_refuse_retry_after,
    test_contract_monitor_tokens_and_concurrent,
    test_contract_no_burst_of_two_windows_at_an_edge,
    test_leased_tokens_settle_locally_then_in_batches,
    test_leases_hold_exactly_near_the_limit_and_give_back_unused_room,
    test_lines_of_two_organizations_are_refused,
    test_many_clients_and_tasks_admit_exactly_the_limit,
)
from tests.integration.test_loops_store import (  # noqa: F401
    test_redis_and_local_agree,
    test_redis_and_local_agree_when_the_rate_rule_changes,
)
from tests.redis_cluster import RedisCluster


@pytest.fixture
def store_url(redis_cluster: RedisCluster) -> str:
    return redis_cluster.url
