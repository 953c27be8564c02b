"""Redis faults: a stopped Redis is StoreUnavailable fast, a hung one within the socket timeouts,
and a restarted one is used again by the same store, with the settles made meanwhile delivered."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
from tests.conftest import REAL_CLOCK, Server, free_port, redis_url, spawn

from sluicegate.redis_scripts import ScriptRunner, connect
from sluicegate.spend.caps import CapLine, LeaseSettings, SpendSettings
from sluicegate.spend.leases import LeasedStore
from sluicegate.spend.redis_store import RedisStore
from sluicegate.spend.store import StoreUnavailable


def redis_args(port: int, workdir: Path) -> list[str]:
    # appendonly + fsync always: what a production Redis keeps across a restart, it keeps here
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--daemonize", "no"]
    return [*args, "--appendonly", "yes", "--appendfsync", "always", "--dir", str(workdir)]


def settings(port: int) -> SpendSettings:
    return SpendSettings(
        backend="redis", redis_url=f"redis://127.0.0.1:{port}/0", redis_timeout_s=0.3, redis_breaker_s=0.2
    )


CAP = CapLine("key", "k1", "acme", "total", 10_000)


async def until(predicate, limit_s: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_stopped_then_restarted_redis_without_recreating_the_store(tmp_path: Path) -> None:
    port = free_port()
    store = RedisStore.from_settings(settings(port))
    try:
        with spawn(redis_args(port, tmp_path), port, REAL_CLOCK):
            held = (await store.reserve([CAP], 1_000)).reservation
            late = (await store.reserve([CAP], 2_000)).reservation
            assert held is not None and late is not None
        # Redis is gone: refused connections fail at once
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="unreachable"):
            await store.reserve([CAP], 1)
        assert time.monotonic() - started < 1.0
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="moments ago"):  # the breaker: no network wait
            await store.reserve([CAP], 1)
        assert time.monotonic() - started < 0.05
        with pytest.raises(StoreUnavailable):
            await store.snapshot(CAP)
        # a settle never fails: it is kept and retried
        assert await store.settle(late, 1_500) == []
        assert store.pending_settlements == 1
        with spawn(redis_args(port, tmp_path), port, REAL_CLOCK):
            await asyncio.sleep(0.25)  # past the breaker
            again = await store.reserve([CAP], 500)  # same store object; scripts reloaded (NOSCRIPT)
            assert again.reservation is not None
            await until(lambda: store.pending_settlements == 0)
            assert await store.snapshot(CAP) == (1_500, 1_500)
            await store.settle(held, 1_000)
            await store.settle(again.reservation, 0)
            assert await store.snapshot(CAP) == (2_500, 0)
    finally:
        await store.close()


async def test_a_hung_redis_times_out_within_the_socket_timeouts(tmp_path: Path) -> None:
    port = free_port()
    store = RedisStore.from_settings(settings(port))
    try:
        with spawn(redis_args(port, tmp_path), port, REAL_CLOCK) as server:
            assert (await store.reserve([CAP], 1)).ok
            os.kill(server.proc.pid, signal.SIGSTOP)
            try:
                started = time.monotonic()
                with pytest.raises(StoreUnavailable, match="unreachable"):
                    await store.reserve([CAP], 1)
                assert time.monotonic() - started < 1.5  # one try and one retry of 0.3 s each
            finally:
                os.kill(server.proc.pid, signal.SIGCONT)
            await asyncio.sleep(0.25)
            assert (await store.reserve([CAP], 1)).ok
    finally:
        await store.close()


async def test_leases_keep_serving_locally_while_redis_is_down(tmp_path: Path) -> None:
    port = free_port()
    lease = LeaseSettings(enabled=True, ttl_s=30, idle_s=30, sync_interval_s=5)
    store = LeasedStore(RedisStore.from_settings(settings(port)), lease)
    cap = CapLine("key", "k1", "acme", "total", 10**12)
    try:
        with spawn(redis_args(port, tmp_path), port, REAL_CLOCK):
            first = await store.reserve([cap], 1_000)  # takes a slice of 64 requests
            assert first.reservation is not None
            await store.settle(first.reservation, 1_000)
        for _ in range(10):  # inside the slice: no network needed
            r = await store.reserve([cap], 1_000)
            assert r.reservation is not None
            await store.settle(r.reservation, 1_000)
        with pytest.raises(StoreUnavailable):  # beyond the slice it must ask Redis
            await store.reserve([cap], 10**9)
        with spawn(redis_args(port, tmp_path), port, REAL_CLOCK):
            await asyncio.sleep(0.25)
            await store.sync_now(returning=True)
            assert await store.redis.snapshot(cap) == (11_000, 0)
    finally:
        await store.close()


async def test_a_burst_above_the_pool_waits_its_turn_on_a_healthy_redis(redis_server: Server) -> None:
    """More calls at once than the pool has connections, each holding its connection a while: the
    later ones wait longer than a call's own bound for their turn, and all are served (a burst of
    requests on one worker is not Redis being down), with no breaker tripped."""
    client = connect(redis_url(redis_server), timeout_s=0.5, max_connections=1)
    runner = ScriptRunner(breaker_s=5, client=client)
    try:
        # BLPOP on empty lists: each call holds the one connection 0.1-0.2 s (Redis checks blocked
        # calls' timeouts ten times a second); the sixth waits 0.5-1 s for its turn.
        calls = [runner.call(client.blpop, f"sg:test:burst:{i}", 0.1) for i in range(6)]
        assert await asyncio.gather(*calls) == [None] * 6
    finally:
        await client.aclose(close_connection_pool=True)
    assert runner.down_until == 0.0
