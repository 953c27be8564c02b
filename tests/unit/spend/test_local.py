"""The one-process store: exact under concurrency, windows that roll over, thresholds once a window."""

import asyncio
import random
from datetime import UTC, datetime, timedelta

import pytest

from sluicegate.spend.caps import CapLine
from sluicegate.spend.local import LocalStore
from sluicegate.spend.store import ThresholdAlert

T0 = datetime(2026, 11, 30, 23, 59, 58, tzinfo=UTC)  # two seconds before December, UTC


def line(level: str = "key", entity: str = "k1", window: str = "day", limit: int = 1_000, **kw: object) -> CapLine:
    return CapLine(level, entity if level != "org" else "acme", "acme", window, limit, **kw)  # type: ignore[arg-type]


async def test_reserve_settle_release_and_the_refusal() -> None:
    store = LocalStore()
    org, key = line("org", limit=10_000, window="month"), line(limit=1_000)
    first = await store.reserve([org, key], 600, now=T0)
    assert first.ok and first.reservation is not None and first.refusal is None
    refused = await store.reserve([org, key], 500, now=T0)
    assert refused.reservation is None and refused.refusal is not None
    r = refused.refusal
    assert (r.line, r.spent_nusd, r.reserved_nusd, r.requested_nusd) == (key, 0, 600, 500)
    assert r.resets_at == datetime(2026, 12, 1, tzinfo=UTC) and r.window_id == "day:2026-11-30"
    assert r.remaining_nusd == 400
    assert await store.snapshot(org, now=T0) == (0, 600)  # the org's part of the refused one was rolled back
    await store.settle(first.reservation, 550)
    assert await store.snapshot(key, now=T0) == (550, 0)
    second = await store.reserve([org, key], 450, now=T0)
    assert second.reservation is not None
    await store.release(second.reservation)
    await store.release(second.reservation)  # a second release is a no-op
    assert await store.settle(second.reservation, 10) == []
    assert await store.snapshot(key, now=T0) == (550, 0)
    assert await store.snapshot(org, now=T0) == (550, 0)


async def test_overshoot_is_recorded_and_then_blocks() -> None:
    store = LocalStore()
    key = line(limit=100)
    res = (await store.reserve([key], 100, now=T0)).reservation
    assert res is not None
    await store.settle(res, 130)
    assert await store.snapshot(key, now=T0) == (130, 0)
    assert not (await store.reserve([key], 0, now=T0)).ok


async def test_monitor_caps_never_block_but_report() -> None:
    store = LocalStore()
    shadow = line("user", "u1", limit=100, mode="monitor")
    key = line(limit=1_000)
    results = [await store.reserve([key, shadow], 60, now=T0) for _ in range(3)]
    assert all(r.ok for r in results)
    assert [len(r.monitored) for r in results] == [0, 1, 1]
    m = results[1].monitored[0]
    assert (m.line, m.spent_nusd, m.reserved_nusd, m.requested_nusd) == (shadow, 0, 60, 60)
    assert await store.snapshot(shadow, now=T0) == (0, 180)


async def test_clamp_reserves_what_is_left_when_it_is_enough() -> None:
    store = LocalStore()
    key = line(limit=1_000, on_insufficient="clamp")
    strict = line("workspace", "w1", limit=10_000)
    assert (await store.reserve([strict, key], 700, now=T0)).ok
    clamped = await store.reserve([strict, key], 500, now=T0, min_clamp_nusd=200)
    assert clamped.ok and clamped.clamp_to_nusd == 300 and clamped.reservation is not None
    assert clamped.reservation.amount_nusd == 300
    assert not (await store.reserve([strict, key], 500, now=T0, min_clamp_nusd=1)).ok  # nothing left
    refusing = line("workspace", "w2", limit=350)
    store2 = LocalStore()
    assert (await store2.reserve([refusing, key], 300, now=T0)).ok
    # the refusing cap is full too and does not clamp: refused even though the key could clamp
    result = await store2.reserve([refusing, key], 100, now=T0, min_clamp_nusd=1)
    assert not result.ok and result.refusal is not None and result.refusal.line == refusing


async def test_windows_roll_over_at_utc_midnight_and_month_start() -> None:
    store = LocalStore()
    day, month, total = (
        line(window="day", limit=100),
        line("org", window="month", limit=150),
        line("user", "u", window="total", limit=1_000),
    )
    before = await store.reserve([day, month, total], 100, now=T0)
    assert before.reservation is not None
    assert not (await store.reserve([day], 1, now=T0)).ok
    after = T0 + timedelta(seconds=2)  # 2026-12-01T00:00:00Z
    assert (await store.reserve([day], 100, now=after)).ok
    assert not (await store.reserve([day, month], 100, now=T0 + timedelta(seconds=1))).ok
    assert (await store.reserve([month], 150, now=after)).ok
    # a late settle lands in the window the request started in
    await store.settle(before.reservation, 90)
    assert await store.snapshot(day, now=T0) == (90, 0)
    assert await store.snapshot(day, now=after) == (0, 100)
    assert await store.snapshot(month, now=T0) == (90, 0)
    assert await store.snapshot(total, now=after) == (90, 0)
    # an hour cap rolls at the hour, a week cap on Monday (2026-11-30 is a Monday)
    hour, week = line(window="hour", limit=5), line("user", "u", window="week", limit=5)
    assert (await store.reserve([hour, week], 5, now=T0)).ok
    assert not (await store.reserve([hour], 1, now=T0 - timedelta(minutes=59))).ok
    assert (await store.reserve([hour], 5, now=T0 - timedelta(hours=1))).ok
    assert not (await store.reserve([week], 1, now=datetime(2026, 11, 30, tzinfo=UTC))).ok
    assert (await store.reserve([week], 5, now=datetime(2026, 11, 29, 23, 59, tzinfo=UTC))).ok


async def test_thresholds_fire_once_per_window() -> None:
    store = LocalStore()
    key = line(limit=1_000, thresholds=(50, 80, 100))

    async def spend(amount: int, now: datetime) -> list[ThresholdAlert]:
        res = (await store.reserve([key], amount, now=now)).reservation
        assert res is not None
        return await store.settle(res, amount)

    assert await spend(400, T0) == []
    fired = await spend(450, T0)
    assert [(a.threshold_pct, a.spent_nusd, a.window_id) for a in fired] == [
        (50, 850, "day:2026-11-30"),
        (80, 850, "day:2026-11-30"),
    ]
    assert fired[0].resets_at == datetime(2026, 12, 1, tzinfo=UTC)
    assert await spend(1, T0) == []
    assert [a.threshold_pct for a in await spend(149, T0)] == [100]
    assert await spend(0, T0) == []
    nxt = T0 + timedelta(days=1)
    assert [a.threshold_pct for a in await spend(500, nxt)] == [50]


async def test_many_tasks_never_over_admit_and_books_balance() -> None:
    store = LocalStore()
    org, ws = line("org", limit=300_000, window="month"), line("workspace", "w", limit=10**12)
    rng = random.Random(7)
    spent: list[int] = []

    async def client() -> None:
        for _ in range(200):
            amount = rng.randrange(1, 2_000)
            r = await store.reserve([org, ws], amount, now=T0)
            if r.reservation is None:
                continue
            await asyncio.sleep(0)
            if rng.random() < 0.2:
                await store.release(r.reservation)
            else:
                actual = rng.randrange(0, amount + 1)
                spent.append(actual)
                await store.settle(r.reservation, actual)

    await asyncio.gather(*(client() for _ in range(50)))
    assert await store.snapshot(org, now=T0) == (sum(spent), 0)
    assert await store.snapshot(ws, now=T0) == (sum(spent), 0)
    assert sum(spent) <= 300_000


async def test_bad_input() -> None:
    store = LocalStore()
    with pytest.raises(ValueError, match="amount_nusd"):
        await store.reserve([line()], -1)
    with pytest.raises(ValueError, match="amount_nusd"):
        await store.reserve([line()], 2**53)
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.reserve([line()], 1, now=datetime(2026, 1, 1))
    res = (await store.reserve([line()], 1)).reservation
    assert res is not None
    with pytest.raises(ValueError, match="actual_nusd"):
        await store.settle(res, -5)


async def test_a_changed_limit_applies_to_the_current_bucket() -> None:
    store = LocalStore()
    assert (await store.reserve([line(limit=100)], 100, now=T0)).ok
    assert (await store.reserve([line(limit=150)], 50, now=T0)).ok
    assert not (await store.reserve([line(limit=150)], 1, now=T0)).ok
