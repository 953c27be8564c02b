"""Rate limits, measured: a request's acquire+finish on 3 lines (requests per minute on the org and
the key, tokens per minute on the key) through the local store, against spend's local store
reserve+settle on 4 caps measured in the same run (the baseline: what every request already pays);
then the Redis store (one Lua call to acquire; none to finish on window lines) and the leased store,
with Redis round trips per request recorded for each.

    .venv/bin/python -m pytest benches/bench_limits.py --benchmark-enable --benchmark-only -q -s

The clock is injected: each request is 1 ms after the previous one (1000 requests a second on one
instance), so slots roll over as they would under that load. Each case's correctness (what the
lines count afterwards) goes into `extra_info`, next to its round trips per request.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from tests.conftest import Server, free_port, spawn

from sluicegate.limits.leases import LeasedLimitStore
from sluicegate.limits.lines import LimitLine
from sluicegate.limits.local import LocalLimitStore
from sluicegate.limits.redis_store import RedisLimitStore
from sluicegate.limits.settings import LimitLeaseSettings
from sluicegate.limits.store import LimitStore
from sluicegate.spend.caps import CapLine
from sluicegate.spend.local import LocalStore

LINES = [
    LimitLine("org", "acme", "acme", "requests", 10**12),
    LimitLine("key", "k1", "acme", "requests", 10**12),
    LimitLine("key", "k1", "acme", "tokens", 10**15),
]
COSTS = [1, 1, 1_000]
ENFORCE = [True, True, True]
CAPS = [
    CapLine("org", "acme", "acme", "month", 10**15),
    CapLine("workspace", "w1", "acme", "day", 10**15),
    CapLine("user", "u1", "acme", "total", 10**15),
    CapLine("key", "k1", "acme", "day", 10**15),
]
BATCH = 200  # requests per measured call
T0 = 1_800_000_000_000


@pytest.fixture(scope="module")
def redis_bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    workdir: Path = tmp_path_factory.mktemp("redis-bench")
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with spawn([*args, "--dir", str(workdir), "--daemonize", "no"], port) as server:
        yield server


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def limits_bench(benchmark: Any, loop: asyncio.AbstractEventLoop, store: LimitStore, name: str) -> None:
    """Measure BATCH acquire+finish requests per call; record round trips per request."""
    clock = [T0]

    async def batch() -> None:
        for _ in range(BATCH):
            clock[0] += 1
            result = await store.acquire(LINES, COSTS, ENFORCE, now_ms=clock[0])
            assert result.grant is not None
            await store.finish(result.grant, 900, now_ms=clock[0])

    loop.run_until_complete(batch())  # warm-up: scripts loaded, first slices taken
    calls_before = getattr(store, "calls", 0)
    benchmark.pedantic(lambda: loop.run_until_complete(batch()), rounds=10, iterations=1)
    requests = BATCH * 10
    trips = (getattr(store, "calls", 0) - calls_before) / requests
    print(f"\n{name}: {trips:.4f} Redis round trips per request")
    benchmark.extra_info["requests_per_call"] = BATCH
    benchmark.extra_info["redis_round_trips_per_request"] = round(trips, 4)
    now = clock[0]
    if isinstance(store, LeasedLimitStore):
        loop.run_until_complete(store.flush(now_ms=now, returning=True))
        counted = loop.run_until_complete(store.redis.counted(LINES[2], now_ms=now))
    elif isinstance(store, RedisLimitStore):
        counted = loop.run_until_complete(store.counted(LINES[2], now_ms=now))
    else:
        assert isinstance(store, LocalLimitStore)
        counted = store.state(LINES[2], now_ms=now)[0]
    benchmark.extra_info["correct"] = counted == 900 * BATCH * 11  # 11 batches in the last 60 s
    loop.run_until_complete(store.close())


GROUP = f"limits: {BATCH} requests (acquire+finish on 3 lines) per call"


@pytest.mark.benchmark(group=GROUP)
def test_spend_local_baseline(benchmark: Any, loop: asyncio.AbstractEventLoop) -> None:
    """The baseline: spend's local reserve+settle on 4 caps, per request."""
    store = LocalStore()

    async def batch() -> None:
        for _ in range(BATCH):
            result = await store.reserve(CAPS, 1_000)
            assert result.reservation is not None
            await store.settle(result.reservation, 900)

    loop.run_until_complete(batch())
    benchmark.pedantic(lambda: loop.run_until_complete(batch()), rounds=10, iterations=1)
    benchmark.extra_info["requests_per_call"] = BATCH


@pytest.mark.benchmark(group=GROUP)
def test_local_limits(benchmark: Any, loop: asyncio.AbstractEventLoop) -> None:
    limits_bench(benchmark, loop, LocalLimitStore(), "local")


@pytest.mark.benchmark(group=GROUP)
def test_redis_limits(benchmark: Any, loop: asyncio.AbstractEventLoop, redis_bench: Server) -> None:
    client = aioredis.Redis(port=redis_bench.port)
    limits_bench(benchmark, loop, RedisLimitStore(client, prefix="b" + os.urandom(4).hex()), "redis")


@pytest.mark.benchmark(group=GROUP)
def test_leased_limits(benchmark: Any, loop: asyncio.AbstractEventLoop, redis_bench: Server) -> None:
    client = aioredis.Redis(port=redis_bench.port)
    red = RedisLimitStore(client, prefix="b" + os.urandom(4).hex())
    store = LeasedLimitStore(red, LimitLeaseSettings(enabled=True, flush_interval_s=60))
    limits_bench(benchmark, loop, store, "leased")


@pytest.mark.benchmark(group=GROUP)
def test_leased_limits_three_instances(benchmark: Any, loop: asyncio.AbstractEventLoop, redis_bench: Server) -> None:
    """Three instances (stores with their own leases and connections) taking turns on the same
    lines, 1000 requests a second each; round trips per request over all three."""
    prefix = "b" + os.urandom(4).hex()
    stores = [
        LeasedLimitStore(
            RedisLimitStore(aioredis.Redis(port=redis_bench.port), prefix=prefix),
            LimitLeaseSettings(enabled=True, flush_interval_s=60),
        )
        for _ in range(3)
    ]
    clock = [T0]

    async def batch() -> None:
        for _ in range(BATCH // 3):
            clock[0] += 1
            for store in stores:
                result = await store.acquire(LINES, COSTS, ENFORCE, now_ms=clock[0])
                assert result.grant is not None
                await store.finish(result.grant, 900, now_ms=clock[0])

    loop.run_until_complete(batch())
    before = sum(s.calls for s in stores)
    benchmark.pedantic(lambda: loop.run_until_complete(batch()), rounds=10, iterations=1)
    trips = (sum(s.calls for s in stores) - before) / (3 * (BATCH // 3) * 10)
    print(f"\nleased, 3 instances: {trips:.4f} Redis round trips per request")
    benchmark.extra_info["requests_per_call"] = 3 * (BATCH // 3)
    benchmark.extra_info["redis_round_trips_per_request"] = round(trips, 4)
    for store in stores:
        loop.run_until_complete(store.flush(now_ms=clock[0], returning=True))
    counted = loop.run_until_complete(stores[0].redis.counted(LINES[2], now_ms=clock[0]))
    benchmark.extra_info["correct"] = counted == 900 * 3 * (BATCH // 3) * 11
    for store in stores:
        loop.run_until_complete(store.close())
