"""The policy stores' Redis plumbing without a server: which URLs make a cluster client and what
they carry, and which of redis-py's failures are the store being unavailable (StoreUnavailable,
with the breaker tripped for the primary concerned) rather than the call's own error. The same
paths run against real servers in tests/integration/test_redis_cluster*.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis import exceptions as rexc
from redis.asyncio.cluster import RedisCluster

from sluicegate.redis_scripts import ClusterClient, ScriptRunner, announcer, connect, is_cluster_url
from sluicegate.spend.store import StoreUnavailable


def test_cluster_urls_list_their_nodes_and_carry_user_password_and_tls() -> None:
    client = connect(
        "rediss+cluster://app:p%40ss@h1:7000,h2:7001?ssl_ca_certs=/etc/ca.crt", timeout_s=0.5, max_connections=8
    )
    assert isinstance(client, ClusterClient) and isinstance(client, RedisCluster)
    nodes = client.nodes_manager.startup_nodes
    assert sorted(nodes) == ["h1:7000", "h2:7001"]
    kwargs = client.connection_kwargs
    assert (kwargs["username"], kwargs["password"], kwargs["ssl_ca_certs"]) == ("app", "p@ss", "/etc/ca.crt")
    assert kwargs["socket_timeout"] == 0.5 and kwargs["socket_connect_timeout"] == 0.5
    assert is_cluster_url("REDIS+CLUSTER://h:1") and not is_cluster_url("redis://h:1/0")
    with pytest.raises(ValueError, match="database 0"):
        connect("redis+cluster://h1:7000/2", timeout_s=0.5, max_connections=8)


def test_announcements_on_a_cluster_use_one_listed_node_then_the_next() -> None:
    url = "redis+cluster://u:pw@h1:7000,h2:7001/0"
    seen = [announcer(url, timeout_s=1, attempt=i).connection_pool.connection_kwargs for i in range(3)]
    assert [(k["host"], k["port"], k["username"], k["password"]) for k in seen] == [
        ("h1", 7000, "u", "pw"),
        ("h2", 7001, "u", "pw"),
        ("h1", 7000, "u", "pw"),
    ]


UNAVAILABLE = [
    rexc.ClusterDownError("CLUSTERDOWN The cluster is down"),
    rexc.MasterDownError("MASTERDOWN Link with MASTER is down"),
    rexc.TryAgainError("TRYAGAIN Multiple keys request during rehashing of slot"),
    rexc.MovedError("3999 127.0.0.1:6381"),
    rexc.AskError("3999 127.0.0.1:6381"),
    rexc.ClusterError("TTL exhausted."),
    rexc.SlotNotCoveredError('Slot "3999" is not covered by the cluster.'),
    rexc.RedisClusterUnreachableError("no node of the cluster answered"),
    rexc.NoPermissionError("NOPERM this user has no permissions to run the 'evalsha' command"),
    rexc.AuthenticationError("WRONGPASS invalid username-password pair"),
    rexc.ReadOnlyError("READONLY You can't write against a read only replica."),
    rexc.ResponseError("LOADING Redis is loading the dataset in memory"),
    TimeoutError(),  # a cluster call past its deadline
]


@pytest.mark.parametrize("exc", UNAVAILABLE, ids=lambda e: type(e).__name__)
def test_every_redis_failure_is_store_unavailable_and_trips_the_breaker(exc: Exception) -> None:
    runner = ScriptRunner(breaker_s=30)

    async def failing(*_: Any) -> None:
        raise exc

    async def fine(*_: Any) -> str:
        return "ok"

    async def go() -> None:
        with pytest.raises(StoreUnavailable):
            await runner.call(failing, "sg:{org:a}:x")
        with pytest.raises(StoreUnavailable, match="moments ago"):  # no network for breaker_s
            await runner.call(fine, "sg:{org:a}:x")

    asyncio.run(go())


def test_a_script_error_is_the_calls_own() -> None:
    runner = ScriptRunner()

    async def failing(*_: Any) -> None:
        raise rexc.ResponseError("ERR user_script:12: attempt to compare nil with number")

    with pytest.raises(rexc.ResponseError):
        asyncio.run(runner.call(failing, "sg:{org:a}:x"))
    assert runner.down_until == 0.0  # not the store being down


@pytest.mark.parametrize(
    "exc",
    [
        rexc.ConnectionError("No connection available."),
        rexc.MaxConnectionsError("no free connection within the timeout"),
    ],
    ids=["pool", "cluster"],
)
def test_a_call_that_waited_too_long_for_a_connection_is_refused_alone(exc: Exception) -> None:
    """The pool's wait running out says nothing about Redis: that call is StoreUnavailable, the
    next one goes to Redis (no breaker)."""
    runner = ScriptRunner(breaker_s=30)

    async def waited(*_: Any) -> None:
        raise exc

    async def fine(*_: Any) -> str:
        return "ok"

    async def go() -> None:
        with pytest.raises(StoreUnavailable, match="no free connection"):
            await runner.call(waited, "sg:{org:a}:x")
        assert runner.down_until == 0.0
        assert await runner.call(fine, "sg:{org:a}:x") == "ok"

    asyncio.run(go())
