"""Spend enforcement, measured: Rust buckets against a Python-lock baseline (one thread and
contended), then the stores per request: local, Redis (one Lua call to reserve, one to settle) and
leased (mostly local), with Redis round trips per request recorded for each.

    .venv/bin/python -m pytest benches/bench_spend.py --benchmark-enable --benchmark-only -q
    # add -s to also print the round trips per request of each store
    # -k "one_node or cluster": the Redis store on one Redis against a Redis Cluster

Each case's correctness (books balanced, never over the cap) goes into `extra_info`, next to its
round trips per request. A private redis-server is started on a free loopback port.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from tests.conftest import Server, free_port, spawn

from sluicegate._core import Bucket, reserve_all, settle_all
from sluicegate.redis_scripts import connect
from sluicegate.spend.caps import CapLine, LeaseSettings
from sluicegate.spend.leases import LeasedStore
from sluicegate.spend.local import LocalStore
from sluicegate.spend.redis_store import RedisStore
from sluicegate.spend.store import SpendStore

LINES = [
    CapLine("org", "acme", "acme", "month", 10**15),
    CapLine("workspace", "w1", "acme", "day", 10**15),
    CapLine("user", "u1", "acme", "total", 10**15),
    CapLine("key", "k1", "acme", "day", 10**15),
]
BATCH = 200  # requests per measured call of the store benchmarks
THREADS = 4
PER_THREAD = 20_000


class LockedBucket:
    """The baseline: the same bucket arithmetic in Python, under a lock."""

    __slots__ = ("limit", "lock", "spent", "used")

    def __init__(self, limit: int) -> None:
        self.limit, self.used, self.spent = limit, 0, 0
        self.lock = threading.Lock()

    def reserve(self, amount: int) -> bool:
        with self.lock:
            if self.used + amount > self.limit:
                return False
            self.used += amount
            return True

    def settle(self, reserved: int, actual: int) -> None:
        with self.lock:
            self.used += actual - reserved
            self.spent += actual


def locked_reserve_all(buckets: list[LockedBucket], amount: int) -> bool:
    for i, b in enumerate(buckets):
        if not b.reserve(amount):
            for taken in buckets[:i]:
                taken.settle(amount, 0)
            return False
    return True


def locked_settle_all(buckets: list[LockedBucket], reserved: int, actual: int) -> None:
    for b in buckets:
        b.settle(reserved, actual)


# -- buckets: one thread -----------------------------------------------------------------------


@pytest.mark.benchmark(group="buckets: reserve+settle on 4 caps, one thread")
def test_rust_buckets_one_thread(benchmark: Any) -> None:
    buckets = [Bucket(10**15) for _ in range(4)]

    def op() -> None:
        reserve_all(buckets, 1_000)
        settle_all(buckets, 1_000, 900)

    benchmark(op)
    spent = {b.spent_nusd for b in buckets}
    benchmark.extra_info["correct"] = all(b.reserved_nusd == 0 for b in buckets) and len(spent) == 1


@pytest.mark.benchmark(group="buckets: reserve+settle on 4 caps, one thread")
def test_python_lock_baseline_one_thread(benchmark: Any) -> None:
    buckets = [LockedBucket(10**15) for _ in range(4)]

    def op() -> None:
        locked_reserve_all(buckets, 1_000)
        locked_settle_all(buckets, 1_000, 900)

    benchmark(op)
    benchmark.extra_info["correct"] = all(b.used == b.spent for b in buckets)


# -- buckets: contended --------------------------------------------------------------------------


def run_threads(work: Callable[[], None]) -> None:
    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


@pytest.mark.benchmark(group=f"buckets: {THREADS} threads x {PER_THREAD} reserve+settle on one shared cap")
def test_rust_buckets_contended(benchmark: Any) -> None:
    shared = Bucket(THREADS * PER_THREAD * 1_000 * 10)

    def work() -> None:
        own = Bucket(10**15)
        pair = [shared, own]
        for _ in range(PER_THREAD):
            reserve_all(pair, 1_000)
            settle_all(pair, 1_000, 1_000)

    benchmark.pedantic(run_threads, args=(work,), rounds=3, iterations=1)
    benchmark.extra_info["ops_per_round"] = THREADS * PER_THREAD
    benchmark.extra_info["correct"] = (
        shared.reserved_nusd == 0 and shared.spent_nusd == 3 * THREADS * PER_THREAD * 1_000
    )


@pytest.mark.benchmark(group=f"buckets: {THREADS} threads x {PER_THREAD} reserve+settle on one shared cap")
def test_python_lock_baseline_contended(benchmark: Any) -> None:
    shared = LockedBucket(THREADS * PER_THREAD * 1_000 * 10)

    def work() -> None:
        pair = [shared, LockedBucket(10**15)]
        for _ in range(PER_THREAD):
            locked_reserve_all(pair, 1_000)
            locked_settle_all(pair, 1_000, 1_000)

    benchmark.pedantic(run_threads, args=(work,), rounds=3, iterations=1)
    benchmark.extra_info["ops_per_round"] = THREADS * PER_THREAD
    benchmark.extra_info["correct"] = shared.used == shared.spent == 3 * THREADS * PER_THREAD * 1_000


# -- stores: per request -----------------------------------------------------------------------


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


def store_bench(benchmark: Any, loop: asyncio.AbstractEventLoop, store: SpendStore, name: str) -> None:
    """Measure BATCH reserve+settle requests per call; record round trips per request."""

    async def batch() -> None:
        for _ in range(BATCH):
            result = await store.reserve(LINES, 1_000)
            assert result.reservation is not None
            await store.settle(result.reservation, 900)

    loop.run_until_complete(batch())  # warm-up: scripts loaded, first slices taken
    calls_before = getattr(store, "calls", 0)
    benchmark.pedantic(lambda: loop.run_until_complete(batch()), rounds=10, iterations=1)
    requests = BATCH * 10
    trips = (getattr(store, "calls", 0) - calls_before) / requests
    print(f"\n{name}: {trips:.4f} Redis round trips per request")
    benchmark.extra_info["requests_per_call"] = BATCH
    benchmark.extra_info["redis_round_trips_per_request"] = round(trips, 4)
    if isinstance(store, LeasedStore):
        loop.run_until_complete(store.sync_now(returning=True))
    spent, reserved = loop.run_until_complete(store.snapshot(LINES[0]))
    benchmark.extra_info["correct"] = reserved == 0 and spent == 900 * BATCH * 11
    loop.run_until_complete(store.close())


@pytest.mark.benchmark(group=f"stores: {BATCH} requests (reserve+settle on 4 caps) per call")
def test_local_store(benchmark: Any, loop: asyncio.AbstractEventLoop) -> None:
    store_bench(benchmark, loop, LocalStore(), "local")


@pytest.mark.benchmark(group=f"stores: {BATCH} requests (reserve+settle on 4 caps) per call")
def test_redis_store(benchmark: Any, loop: asyncio.AbstractEventLoop, redis_bench: Server) -> None:
    client = aioredis.Redis(port=redis_bench.port)
    store_bench(benchmark, loop, RedisStore(client, prefix="b" + os.urandom(4).hex()), "redis")


@pytest.mark.benchmark(group=f"stores: {BATCH} requests (reserve+settle on 4 caps) per call")
def test_leased_store(benchmark: Any, loop: asyncio.AbstractEventLoop, redis_bench: Server) -> None:
    client = aioredis.Redis(port=redis_bench.port)
    red = RedisStore(client, prefix="b" + os.urandom(4).hex())
    store_bench(benchmark, loop, LeasedStore(red, LeaseSettings(enabled=True)), "leased")


# -- one Redis against a Redis Cluster ---------------------------------------------------------
# The same store through `sluicegate.redis_scripts.connect`: a plain URL (one Redis) and a
# `redis+cluster://` URL (three primaries and three replicas on this machine, tests/redis_cluster.py),
# one request at a time, so a call's time is its Redis round trips plus the client's work.


@pytest.fixture(scope="module")
def cluster_bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.redis_cluster import redis_cluster, skip_reason

    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    with redis_cluster(tmp_path_factory.mktemp("cluster-bench")) as cluster:
        yield cluster


@pytest.mark.benchmark(group=f"one Redis vs Redis Cluster: {BATCH} requests (reserve+settle on 4 caps) per call")
def test_redis_store_one_node(benchmark: Any, loop: asyncio.AbstractEventLoop, redis_bench: Server) -> None:
    client = connect(f"redis://127.0.0.1:{redis_bench.port}/0", timeout_s=0.5, max_connections=64)
    store_bench(benchmark, loop, RedisStore(client, prefix="b" + os.urandom(4).hex()), "redis, one node")


@pytest.mark.benchmark(group=f"one Redis vs Redis Cluster: {BATCH} requests (reserve+settle on 4 caps) per call")
def test_redis_store_cluster(benchmark: Any, loop: asyncio.AbstractEventLoop, cluster_bench: Any) -> None:
    client = connect(cluster_bench.url, timeout_s=0.5, max_connections=64)
    store_bench(benchmark, loop, RedisStore(client, prefix="b" + os.urandom(4).hex()), "redis, cluster")
