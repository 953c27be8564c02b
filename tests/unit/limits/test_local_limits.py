"""The one-process limits store: sliding windows that hold at their edges, exact retry-after,
tokens settled to the actual count, requests in flight released (or freed by their TTL), monitor
lines, and exactness under many tasks and threads. Every test runs on an injected clock."""

from __future__ import annotations

import asyncio
import random
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate.limits.lines import LimitLine, LineState
from sluicegate.limits.local import LocalLimitStore
from sluicegate.limits.settings import LimitSettings
from sluicegate.limits.store import create_limit_store

T0 = 1_800_000_000_000  # ms, a whole second


def rpm(limit: int = 3, window_s: int = 60, entity: str = "k1", level: str = "key") -> LimitLine:
    return LimitLine(level, entity if level != "org" else "acme", "acme", "requests", limit, window_s)  # type: ignore[arg-type]


def tpm(limit: int = 1_000, window_s: int = 60) -> LimitLine:
    return LimitLine("key", "k1", "acme", "tokens", limit, window_s)


def busy(limit: int = 2) -> LimitLine:
    return LimitLine("user", "u1", "acme", "concurrent", limit)


def intervals_hold(times: list[int], window_ms: int, limit: int, costs: list[int] | None = None) -> bool:
    """No closed interval of `window_ms` holds more than `limit` admitted cost."""
    costs = costs or [1] * len(times)
    pairs = sorted(zip(times, costs, strict=True))
    lo = total = 0
    for t, c in pairs:
        total += c
        while pairs[lo][0] < t - window_ms:
            total -= pairs[lo][1]
            lo += 1
        if total > limit:
            return False
    return True


async def test_acquire_refuse_and_the_states() -> None:
    store = LocalLimitStore()
    org, key = rpm(100, level="org"), rpm(2)
    first = await store.acquire([org, key], [1, 1], [True, True], now_ms=T0 + 100)
    assert first.ok and first.grant is not None and first.refused is None and first.monitored == []
    assert first.states == [LineState(org, 99, 60_900, 0), LineState(key, 1, 60_900, 0)]
    assert (await store.acquire([org, key], [1, 1], [True, True], now_ms=T0 + 2_500)).ok
    refused = await store.acquire([org, key], [1, 1], [True, True], now_ms=T0 + 3_000)
    assert refused.grant is None and refused.refused is not None
    # slot 0 (T0 .. T0+1s) leaves the window at T0 + 61 s, slot 2 at T0 + 63 s
    assert refused.refused == LineState(key, 0, 63_000 - 3_000, 61_000 - 3_000)
    assert refused.states[0].remaining == 98  # the org's part was rolled back
    assert store.state(org, now_ms=T0 + 3_000)[0] == 2
    # retry-after is exact: a millisecond early is still refused, on time is admitted
    assert not (await store.acquire([key], [1], [True], now_ms=T0 + 61_000 - 1)).ok
    assert (await store.acquire([key], [1], [True], now_ms=T0 + 61_000)).ok


async def test_a_cost_above_the_limit_never_fits() -> None:
    store = LocalLimitStore()
    line = tpm(100)
    result = await store.acquire([line], [101], [True], now_ms=T0)
    assert result.refused is not None and result.refused.never and result.refused.retry_after_ms == -1


async def test_monitor_lines_count_and_report() -> None:
    store = LocalLimitStore()
    shadow, key = rpm(1, entity="shadow"), rpm(10)
    results = [await store.acquire([shadow, key], [1, 1], [False, True], now_ms=T0) for _ in range(3)]
    assert all(r.ok for r in results)
    assert [len(r.monitored) for r in results] == [0, 1, 1]
    m = results[1].monitored[0]
    assert m.line == shadow and m.remaining == 0 and m.retry_after_ms == 61_000
    assert store.state(shadow, now_ms=T0)[0] == 3  # counted anyway


async def test_tokens_settle_to_the_actual_count() -> None:
    store = LocalLimitStore()
    line = tpm(1_000)
    a = await store.acquire([line], [600], [True], now_ms=T0)
    assert a.grant is not None
    assert not (await store.acquire([line], [500], [True], now_ms=T0 + 10)).ok
    await store.finish(a.grant, 150, now_ms=T0 + 20)
    assert store.state(line, now_ms=T0 + 20)[0] == 150
    await store.finish(a.grant, 10_000, now_ms=T0 + 30)  # a second finish is a no-op
    assert store.state(line, now_ms=T0 + 30)[0] == 150
    b = await store.acquire([line], [500], [True], now_ms=T0 + 40)
    assert b.grant is not None
    await store.finish(b.grant, 900, now_ms=T0 + 50)  # an overshoot is recorded...
    assert store.state(line, now_ms=T0 + 50)[0] == 1_050
    assert not (await store.acquire([line], [0], [True], now_ms=T0 + 60)).ok  # ...and blocks
    c_line = tpm(1_000, window_s=1)
    c = await store.acquire([c_line], [300], [True], now_ms=T0)
    assert c.grant is not None
    await store.finish(c.grant, None, now_ms=T0)  # None keeps the estimate
    assert store.state(c_line, now_ms=T0)[0] == 300
    d = await store.acquire([c_line], [300], [True], now_ms=T0)
    assert d.grant is not None
    await store.finish(d.grant, 500, now_ms=T0 + 5_000)  # its slot has left the window: nothing
    assert store.state(c_line, now_ms=T0 + 5_000)[0] == 0


async def test_concurrent_released_on_finish_or_freed_by_the_ttl() -> None:
    store = LocalLimitStore(concurrency_ttl_s=600)
    line, key = busy(2), rpm(100)
    a = await store.acquire([key, line], [1, 1], [True, True], now_ms=T0)
    b = await store.acquire([key, line], [1, 1], [True, True], now_ms=T0)
    refused = await store.acquire([key, line], [1, 1], [True, True], now_ms=T0)
    assert a.grant and b.grant and refused.refused is not None
    assert refused.refused.line == line and refused.refused.retry_after_ms == 1_000
    assert refused.refused.reset_ms == 0
    await store.finish(a.grant, None, now_ms=T0 + 10)
    assert (await store.acquire([line], [1], [True], now_ms=T0 + 10)).ok
    # `b` and the one after `a` were never finished: they stop counting after the TTL.
    assert not (await store.acquire([line], [1], [True], now_ms=T0 + 599_999)).ok
    assert (await store.acquire([line], [1], [True], now_ms=T0 + 600_000)).ok  # `b` expired
    assert store.state(line, now_ms=T0 + 600_010)[0] == 1  # the other one expired too


async def test_a_changed_limit_keeps_the_count_and_a_changed_window_is_new() -> None:
    store = LocalLimitStore()
    assert (await store.acquire([rpm(2)], [1], [True], now_ms=T0)).ok
    assert (await store.acquire([rpm(2)], [1], [True], now_ms=T0)).ok
    assert not (await store.acquire([rpm(2)], [1], [True], now_ms=T0)).ok
    assert (await store.acquire([rpm(3)], [1], [True], now_ms=T0)).ok
    assert (await store.acquire([rpm(3, window_s=10)], [1], [True], now_ms=T0)).ok


async def test_bad_arguments() -> None:
    store = LocalLimitStore()
    with pytest.raises(ValueError, match="one cost"):
        await store.acquire([rpm()], [1, 1], [True])
    with pytest.raises(ValueError, match="costs"):
        await store.acquire([rpm()], [-1], [True])
    with pytest.raises(ValueError, match="at most 64"):
        await store.acquire([rpm(entity=str(i)) for i in range(65)], [1] * 65, [True] * 65)
    with pytest.raises(ValueError, match="one line per counter"):
        await store.acquire([rpm(5), rpm(10)], [1, 1], [True, True])
    empty = await store.acquire([], [], [], now_ms=T0)
    assert empty.grant is not None
    await store.finish(empty.grant, 5)


async def test_no_burst_of_two_windows_at_an_edge() -> None:
    """A fixed window would admit `limit` at the end of one window and `limit` again at the start
    of the next; the sliding window admits nothing more until the first burst has left it."""
    store = LocalLimitStore()
    line = rpm(10, window_s=10)
    end_of_first = T0 + 9_999
    assert all([(await store.acquire([line], [1], [True], now_ms=end_of_first)).ok for _ in range(10)])
    start_of_next = [(await store.acquire([line], [1], [True], now_ms=T0 + 10_000 + i)).ok for i in range(10)]
    assert not any(start_of_next)
    assert (await store.acquire([line], [1], [True], now_ms=T0 + 20_000)).ok


@settings(max_examples=60, deadline=None)
@given(
    limit=st.integers(1, 30),
    window_s=st.integers(1, 5),
    slot_ms=st.sampled_from([100, 250, 1000]),
    bursts=st.lists(st.tuples(st.integers(0, 4_000), st.integers(1, 40), st.integers(1, 3)), min_size=1, max_size=30),
)
def test_random_bursts_never_exceed_the_limit_in_any_window(
    limit: int, window_s: int, slot_ms: int, bursts: list[tuple[int, int, int]]
) -> None:
    """Bursts of requests (and weighted costs) at random times: every interval of window_s holds at
    most `limit` of what was admitted."""

    async def run() -> tuple[list[int], list[int]]:
        store = LocalLimitStore(slot_ms=slot_ms)
        line = tpm(limit, window_s)
        t, times, costs = T0, [], []
        for gap, n, cost in bursts:
            t += gap
            for _ in range(n):
                t += 3  # a clock that moves forward (a late clock is counted as of the newest slot)
                if (await store.acquire([line], [cost], [True], now_ms=t)).ok:
                    times.append(t)
                    costs.append(cost)
        return times, costs

    times, costs = asyncio.run(run())
    assert intervals_hold(times, window_s * 1000, limit, costs)


async def test_retry_after_is_when_the_cost_fits() -> None:
    rng = random.Random(7)
    store = LocalLimitStore()
    line = tpm(20, window_s=5)
    t = T0
    for _ in range(300):
        t += rng.randrange(0, 700)
        cost = rng.randrange(1, 8)
        result = await store.acquire([line], [cost], [True], now_ms=t)
        if result.ok:
            continue
        assert result.refused is not None
        wait = result.refused.retry_after_ms
        assert wait > 0
        assert store.state(line, cost, now_ms=t + wait - 1)[3] > 0
        assert store.state(line, cost, now_ms=t + wait)[3] == 0


async def test_exact_under_many_tasks_and_threads() -> None:
    store = LocalLimitStore()
    line, inflight = rpm(500, window_s=60), busy(1_000_000)

    async def worker() -> int:
        n = 0
        for _ in range(100):
            r = await store.acquire([inflight, line], [1, 1], [True, True], now_ms=T0)
            if r.grant is not None:
                n += 1
                await store.finish(r.grant, None, now_ms=T0)
        return n

    assert sum(await asyncio.gather(*[worker() for _ in range(20)])) == 500

    line2 = rpm(3_000, entity="k2")
    counts: list[int] = []

    def thread_worker() -> None:
        counts.append(asyncio.run(_many(store, line2, 2_000)))

    threads = [threading.Thread(target=thread_worker) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sum(counts) == 3_000
    assert store.state(inflight, now_ms=T0)[0] == 0


async def _many(store: LocalLimitStore, line: LimitLine, n: int) -> int:
    return sum([(await store.acquire([line], [1], [True], now_ms=T0)).ok for _ in range(n)])


async def test_factory_and_sweep() -> None:
    store = create_limit_store(LimitSettings(slot_ms=500))
    assert isinstance(store, LocalLimitStore) and store.slot_ms == 500
    line = rpm(5, window_s=1)
    assert (await store.acquire([line], [1], [True], now_ms=T0)).ok
    await store.acquire([rpm(5, entity="k9")], [1], [True], now_ms=T0 + 120_000)  # sweeps the idle one
    assert line.counter_name not in store._counters
    await store.close()
