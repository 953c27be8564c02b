"""Budget leases against a real redis-server: few round trips far from the cap, exact near it,
and an instance that stops returning its lease has it counted as spent, then recovers it."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from sluicegate.redis_scripts import connect
from sluicegate.spend.caps import CapLine, LeaseSettings
from sluicegate.spend.leases import LeasedStore
from sluicegate.spend.redis_store import RedisStore

Make = Callable[..., Awaitable[LeasedStore]]


def line(level: str = "key", entity: str = "k1", window: str = "day", limit: int = 1_000) -> CapLine:
    return CapLine(level, entity if level != "org" else "acme", "acme", window, limit)  # type: ignore[arg-type]


@pytest.fixture
async def make(store_url: str) -> AsyncIterator[Make]:
    prefix = "l" + os.urandom(4).hex()
    made: list[LeasedStore] = []

    async def factory(**lease: object) -> LeasedStore:
        settings = LeaseSettings(enabled=True, **lease)  # type: ignore[arg-type]
        client = connect(store_url, timeout_s=5, max_connections=64)
        store = LeasedStore(RedisStore(client, prefix=prefix), settings)
        made.append(store)
        return store

    yield factory
    for store in made:
        await store.close()


async def test_far_from_the_cap_most_requests_touch_no_network(make: Make) -> None:
    """Three instances, 3000 reserve+settle pairs on four lines: under one Redis round trip per
    20 requests (with a plain Redis store it is two per request), and the books are exact."""
    stores = [await make() for _ in range(3)]
    lines = [
        line("org", window="month", limit=10**15),
        line("workspace", "w1", limit=10**15),
        line("user", "u1", window="total", limit=10**15),
        line("key", "k1", limit=10**15),
    ]
    rng = random.Random(5)
    actual_total = 0

    async def client(store: LeasedStore) -> None:
        nonlocal actual_total
        for _ in range(100):
            amount = rng.randrange(10_000, 50_000)
            result = await store.reserve(lines, amount)
            assert result.reservation is not None
            actual = rng.randrange(0, amount + 1)
            actual_total += actual
            await store.settle(result.reservation, actual)
            await asyncio.sleep(0)

    await asyncio.gather(*(client(s) for s in stores for _ in range(10)))
    calls = sum(s.calls for s in stores)
    assert calls * 20 < 3_000, f"{calls} Redis round trips for 3000 requests"
    for s in stores:
        await s.sync_now(returning=True)
    for cap in lines:
        assert await stores[0].redis.snapshot(cap) == (actual_total, 0)


async def test_near_the_cap_slices_shrink_and_the_cap_holds_exactly(make: Make) -> None:
    stores = [await make() for _ in range(3)]
    cap = line(window="total", limit=50 * 1_000)
    admitted = 0

    async def client(store: LeasedStore) -> None:
        nonlocal admitted
        for _ in range(30):
            result = await store.reserve([cap], 1_000)
            if result.reservation is not None:
                admitted += 1
                await asyncio.sleep(0)
                await store.settle(result.reservation, 1_000)

    await asyncio.gather(*(client(s) for s in stores for _ in range(4)))
    assert admitted <= 50
    # with every slice handed back, no money was lost: one instance can take exactly the rest
    for s in stores:
        await s.sync_now(returning=True)
    assert await stores[0].redis.snapshot(cap) == (admitted * 1_000, 0)
    while (r := await stores[0].reserve([cap], 1_000)).reservation is not None:
        admitted += 1
        await stores[0].settle(r.reservation, 1_000)
    assert admitted == 50
    await stores[0].sync_now(returning=True)
    assert await stores[0].redis.snapshot(cap) == (50_000, 0)


async def test_clamp_through_leases(make: Make) -> None:
    store = await make()
    cap = CapLine("key", "k1", "acme", "day", 1_000, on_insufficient="clamp")
    first = await store.reserve([cap], 700)
    assert first.reservation is not None
    second = await store.reserve([cap], 500, min_clamp_nusd=100)
    assert second.reservation is not None and second.clamp_to_nusd == 300
    assert not (await store.reserve([cap], 500, min_clamp_nusd=1)).ok


async def test_an_unreturned_lease_counts_as_spent_until_its_instance_comes_back(make: Make) -> None:
    # `a` takes a large slice (free_divisor 1) and then goes silent: no syncs, no return.
    a = await make(ttl_s=0.7, sync_interval_s=0.2, idle_s=60, free_divisor=1)
    b = await make(ttl_s=30, sync_interval_s=1, idle_s=60)
    cap = line(window="total", limit=10_000)
    r = await a.reserve([cap], 100)
    assert r.reservation is not None
    await a.settle(r.reservation, 100)
    assert a._task is not None
    a._task.cancel()  # "crash": the background sync stops
    spent, reserved = await b.redis.snapshot(cap)
    assert (spent, reserved) == (0, 6_400)  # 64 requests' worth held by `a`
    assert not (await b.reserve([cap], 5_000)).ok  # over-blocking while the lease is live
    await asyncio.sleep(0.9)
    refused = await b.reserve([cap], 5_000)  # reclaims `a`'s expired lease first: all of it spent
    assert not refused.ok and refused.refusal is not None
    assert refused.refusal.spent_nusd == 6_400
    assert (await b.redis.snapshot(cap))[0] == 6_400  # counted as spent: never overspending
    # `a` was only cut off: its next sync takes the hold back and reports its real spend
    await a.sync_now(returning=True)
    assert await b.redis.snapshot(cap) == (100, 0)
    ok = await b.reserve([cap], 5_000)
    assert ok.reservation is not None
    await b.settle(ok.reservation, 5_000)
    await b.sync_now(returning=True)
    assert await b.redis.snapshot(cap) == (5_100, 0)


async def test_an_overshoot_settled_locally_reaches_redis(make: Make) -> None:
    store = await make()
    cap = line(limit=10_000)
    r = await store.reserve([cap], 1_000)
    assert r.reservation is not None
    await store.settle(r.reservation, 1_300)
    await store.sync_now(returning=True)
    assert await store.redis.snapshot(cap) == (1_300, 0)


async def test_a_callers_lane_moves_to_the_next_window_and_drops_forgotten_leases(make: Make) -> None:
    """The request path's short way (a caller's tuple of caps mapped to its leases and windows) is
    used only inside those windows: the first reservation after midnight goes to the new day's
    lease, and once the old day's lease is forgotten nothing reserves against it."""
    from datetime import UTC, datetime, timedelta

    store = await make()
    caps = (line("org", window="month", limit=10**12), line("key", "k1", window="day", limit=10**12))
    before = datetime(2031, 3, 14, 23, 59, 59, tzinfo=UTC)
    first = await store.reserve(caps, 1_000, now=before)
    assert first.reservation is not None
    second = await store.reserve(caps, 2_000, now=before)
    assert second.reservation is not None
    assert second.reservation.windows == first.reservation.windows
    assert second.reservation.handle == first.reservation.handle  # the same leases' buckets
    after = before + timedelta(seconds=2)  # 2031-03-15: a new day, the same month
    third = await store.reserve(caps, 4_000, now=after)
    assert third.reservation is not None
    assert [w.id for w in third.reservation.windows] == ["month:2031-03", "day:2031-03-15"]
    assert third.reservation.handle[0] is first.reservation.handle[0]  # the month's lease
    assert third.reservation.handle[1] is not first.reservation.handle[1]  # a new day's
    for result, actual in ((first, 900), (second, 2_000), (third, 3_000)):
        assert result.reservation is not None
        await store.settle(result.reservation, actual)
    await asyncio.sleep(2.1)  # the day's lease keeps the clock it was made on (whole seconds): past midnight now
    await store.sync_now(returning=True)  # the ended day's lease is settled and forgotten
    day_before = ("acme", "key", "k1", "day:2031-03-14")
    assert day_before not in store._leases
    fourth = await store.reserve(caps, 8_000, now=after + timedelta(seconds=1))
    assert fourth.reservation is not None
    await store.settle(fourth.reservation, 8_000)
    await store.sync_now(returning=True)
    assert await store.redis.snapshot(caps[0], now=after) == (900 + 2_000 + 3_000 + 8_000, 0)
    assert await store.redis.snapshot(caps[1], now=before) == (900 + 2_000, 0)
    assert await store.redis.snapshot(caps[1], now=after) == (3_000 + 8_000, 0)
