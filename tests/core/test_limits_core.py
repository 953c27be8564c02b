"""The Rust limit counters through the binding: values, errors, all-or-nothing across counters,
and threads without the GIL."""

from __future__ import annotations

import threading

import pytest

from sluicegate._core import MAX_COST, MAX_WINDOW_SLOTS, InFlight, SlidingWindow, acquire_all, finish_all

ALL = (1 << 64) - 1


def test_sliding_window_round_trip() -> None:
    w = SlidingWindow(3, 2_000)
    assert (w.limit, w.window_ms, w.slot_ms) == (3, 2_000, 1_000)
    assert repr(w) == "SlidingWindow(limit=3, window_ms=2000, slot_ms=1000)"
    assert w.try_take(2, 500, True) == (True, False, 0, 0)
    assert w.try_take(2, 1_500, True) == (False, True, 1, 1_500)  # slot 0 leaves at 3_000
    assert w.state(1, 1_500) == (2, 1, 1_500, 0)
    assert w.state(4, 1_500)[3] == -1
    assert w.try_take(2, 1_500, False) == (True, True, 1, 1_500)  # monitor: counted anyway
    w.adjust(1, -1, 1_600)
    assert w.slot_count(1, 1_600) == 1 and w.slot_count(0, 1_600) == 2
    assert w.state(0, 3_000) == (1, 2, 1_000, 0)
    assert not w.is_empty(3_999) and w.is_empty(4_000)
    w.set_limit(10)
    assert w.limit == 10


def test_in_flight_round_trip() -> None:
    f = InFlight(1, 1_000)
    assert (f.limit, f.ttl_ms, repr(f)) == (1, 1_000, "InFlight(limit=1, ttl_ms=1000)")
    admitted, would, ticket, retry = f.try_take(1, 0, True)
    assert (admitted, would, retry) == (True, False, 0)
    assert f.try_take(1, 10, True) == (False, True, -1, 1_000)
    f.release(ticket)
    f.release(ticket)
    assert f.state(1, 10) == (0, 1, 0, 0)
    f.try_take(1, 10, True)
    assert f.state(1, 1_009)[0] == 1 and f.state(1, 1_010)[0] == 0  # the TTL frees it
    assert f.state(2, 0)[3] == -1


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: SlidingWindow(-1, 1_000), "limits must be"),
        (lambda: SlidingWindow(MAX_COST + 1, 1_000), "limits must be"),
        (lambda: SlidingWindow(1, 1_500), "whole number of slots"),
        (lambda: SlidingWindow(1, 1_000, 0), "whole number of slots"),
        (lambda: SlidingWindow(1, (MAX_WINDOW_SLOTS + 1) * 100, 100), "whole number of slots"),
        (lambda: SlidingWindow(1, 1_000).try_take(-1, 0, True), "costs must be"),
        (lambda: SlidingWindow(1, 1_000).adjust(0, MAX_COST + 1, 0), "costs must be"),
        (lambda: SlidingWindow(1, 1_000).set_limit(-5), "limits must be"),
        (lambda: InFlight(1, 0), "ttl must be positive"),
        (lambda: InFlight(-1, 10), "limits must be"),
        (lambda: acquire_all([SlidingWindow(1, 1_000)], [1, 2], ALL, 0), "one cost"),
        (lambda: acquire_all([SlidingWindow(1, 1_000)] * 65, [1] * 65, ALL, 0), "at most 64 lines per acquire, got 65"),
        (lambda: acquire_all([SlidingWindow(1, 1_000)], [MAX_COST + 1], ALL, 0), "costs must be"),
        (lambda: finish_all([SlidingWindow(1, 1_000)], [0], [], 0), "one cost"),
    ],
)
def test_errors_are_value_errors(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


def test_acquire_all_is_all_or_nothing() -> None:
    org, key, busy = SlidingWindow(100, 60_000), SlidingWindow(1, 60_000), InFlight(5, 600_000)
    refused, would, tickets, states = acquire_all([org, busy, key], [1, 1, 1], ALL, 1_000)
    assert (refused, would, tickets) == (-1, 0, [1, 0, 1])
    assert states == [(1, 99, 61_000, 0), (1, 4, 0, 0), (1, 0, 61_000, 0)]
    refused, would, tickets, states = acquire_all([org, busy, key], [1, 1, 1], ALL, 2_000)
    assert (refused, would, tickets) == (2, 0b100, [])
    assert states[2] == (1, 0, 60_000, 60_000)
    assert org.state(0, 2_000)[0] == 1 and busy.state(0, 2_000)[0] == 1  # rolled back
    # key as a monitor line: admitted, reported
    refused, would, tickets, states = acquire_all([org, busy, key], [1, 1, 1], 0b011, 2_000)
    assert (refused, would) == (-1, 0b100) and states[2][3] == 60_000
    finish_all([org, busy, key], tickets, [0, 0, 0], 2_000)
    assert busy.state(0, 2_000)[0] == 1


def test_threads_share_counters_exactly() -> None:
    w, f = SlidingWindow(5_000, 60_000), InFlight(1_000_000, 600_000)
    admitted: list[int] = []

    def work() -> None:
        n = 0
        for _ in range(4_000):
            refused, _, tickets, _ = acquire_all([f, w], [1, 1], ALL, 10)
            if refused < 0:
                n += 1
                finish_all([f, w], tickets, [0, 0], 10)
        admitted.append(n)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(admitted) == 5_000
    assert f.state(0, 10)[0] == 0 and w.state(0, 10)[0] == 5_000
