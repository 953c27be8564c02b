"""The spend store's contract and exactness tests of test_spend_redis.py and test_spend_leases.py,
run again on a real Redis Cluster (`store_url` is a `redis+cluster://` URL), so every spend script
(reserve, settle, lease) runs with its keys in one slot (no CROSSSLOT); and the scripts a node has
forgotten (SCRIPT FLUSH on every primary) are loaded again without an error reaching the caller."""

from __future__ import annotations

import asyncio
import os

import pytest
from tests.integration.test_spend_redis import (  # noqa: F401  (fixtures and tests run here again)
    StoreFactory,
    books,
    line,
    make,
    prefix,
    test_amounts_up_to_2_pow_53_are_exact_in_lua,
    test_an_expired_reservation_counts_as_spent_then_a_late_settle_corrects_it,
    test_contract_monitor_and_clamp,
    test_contract_reserve_settle_release,
    test_contract_windows_roll_over_and_thresholds_fire_once,
    test_exactly_n_admitted_when_every_request_costs_its_reservation,
    test_lines_of_two_organizations_are_refused,
    test_many_clients_and_tasks_never_over_the_cap_and_exact,
)
from tests.redis_cluster import RedisCluster, cli

from sluicegate.redis_scripts import connect
from sluicegate.spend.redis_store import RedisStore


@pytest.fixture
def store_url(redis_cluster: RedisCluster) -> str:
    return redis_cluster.url


@pytest.mark.parametrize("kind", ["redis", "leased"])
async def test_scripts_flushed_on_every_node_are_loaded_again(
    kind: str,
    make: StoreFactory,  # noqa: F811
    redis_cluster: RedisCluster,
) -> None:
    store = await make(kind)
    caps = [line("org", window="total", limit=10**9), line(limit=10**9)]
    first = await store.reserve(caps, 1_000)
    assert first.reservation is not None
    for port in redis_cluster.alive():
        cli(port, "script", "flush")
    second = await store.reserve(caps, 2_000)
    assert second.reservation is not None
    await store.settle(first.reservation, 1_000)
    await store.settle(second.reservation, 2_000)
    assert await books(store, caps[1]) == (3_000, 0)


async def test_more_calls_than_connections_wait_for_one(redis_cluster: RedisCluster) -> None:
    """Two connections, 60 calls at once: they wait their turn (as with one Redis's pool), none is
    refused for want of a connection, and the books are exact."""
    store = RedisStore(connect(redis_cluster.url, timeout_s=2, max_connections=2), prefix="g" + os.urandom(4).hex())
    cap = line("org", window="total", limit=10**9)
    try:

        async def one() -> None:
            r = await store.reserve([cap], 1_000)
            assert r.reservation is not None
            await store.settle(r.reservation, 1_000)

        await asyncio.gather(*(one() for _ in range(60)))
        assert await store.snapshot(cap) == (60_000, 0)
    finally:
        await store.close()
