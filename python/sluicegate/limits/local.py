"""The one-process store: every line is a Rust counter in this process.

Windowed lines (requests, tokens) are `_core.SlidingWindow`s, concurrent lines `_core.InFlight`s;
an acquire across lines is `_core.acquire_all` (all or nothing, interpreter detached), so it is
exact under any number of concurrent tasks and threads of this process, with the sliding-window
guarantee of `rust/src/limit/window.rs`: no interval of `window_s` seconds admits more than the
limit. It is not shared between processes: with several workers or instances use Redis.

Counters are found by `LimitLine.counter_name`; a changed limit is applied to the counter, a
changed window is a new counter. Counters with nothing counted are dropped now and then (a grant
keeps its own counters, so a late finish still lands).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sluicegate._core import InFlight, SlidingWindow, acquire_all, finish_all
from sluicegate.limits.lines import CounterName, Grant, LimitLine, LimitResult
from sluicegate.limits.store import (
    acquire_args,
    clock_skew_ms,
    finish_deltas,
    finish_now,
    new_grant_id,
    result_of,
    system_ms,
)

__all__ = ["LocalLimitStore"]

log = logging.getLogger("sluicegate.limits")

_SWEEP_MS = 60_000

Counter = SlidingWindow | InFlight


class LocalLimitStore:
    """Rate limits counted in this process (see the module docstring).

    Arguments:
        slot_ms: the sliding windows' slot.
        concurrency_ttl_s: an in-flight entry never finished stops counting after this.
    """

    def __init__(self, *, slot_ms: int = 1000, concurrency_ttl_s: float = 600.0) -> None:
        self.slot_ms = slot_ms
        self.ttl_ms = max(1, int(concurrency_ttl_s * 1000))
        self._counters: dict[CounterName, Counter] = {}
        self._sweep_at = 0

    def counter(self, line: LimitLine) -> Counter:
        """The counter of `line`, made on first use; a changed limit is applied."""
        name = line.counter_name
        counter = self._counters.get(name)
        if counter is None:
            if line.kind == "concurrent":
                counter = InFlight(line.limit, self.ttl_ms)
            else:
                counter = SlidingWindow(line.limit, line.window_s * 1000, self.slot_ms)
            counter = self._counters.setdefault(name, counter)
        elif counter.limit != line.limit:
            counter.set_limit(line.limit)
        return counter

    def _sweep(self, t: int) -> None:
        """Drop counters with nothing counted (at most once a minute of the caller's clock)."""
        if self._sweep_at <= t < self._sweep_at + _SWEEP_MS:
            return
        self._sweep_at = t
        for name, counter in list(self._counters.items()):
            empty = counter.is_empty(t) if isinstance(counter, SlidingWindow) else counter.state(0, t)[0] == 0
            if empty:
                del self._counters[name]

    async def acquire(
        self, lines: Sequence[LimitLine], costs: Sequence[int], enforce: Sequence[bool], *, now_ms: int | None = None
    ) -> LimitResult:
        t, lines, costs, mask = acquire_args(lines, costs, enforce, now_ms)
        self._sweep(t)
        counters = [self.counter(line) for line in lines]
        refused, would, tickets, states = acquire_all(counters, costs, mask, t)
        grant = None
        if refused < 0:
            grant = Grant(new_grant_id(), lines, costs, t, tuple(tickets), counters, False, clock_skew_ms(now_ms))
        return result_of(lines, mask, refused, would, states, grant)

    async def finish(self, grant: Grant, actual_tokens: int | None, *, now_ms: int | None = None) -> None:
        if grant.done:
            return
        grant.done = True
        if not grant.lines:
            return
        try:
            finish_all(grant.handle, grant.tickets, finish_deltas(grant, actual_tokens), finish_now(grant, now_ms))
        except Exception:  # never raises: the ending of a call must not fail on its bookkeeping
            log.exception("limits: finish failed")

    def state(self, line: LimitLine, cost: int = 0, *, now_ms: int | None = None) -> tuple[int, int, int, int]:
        """`(counted, remaining, reset_ms, retry_after_ms)` of `line` now (for tests and the admin
        API); a line never acquired on reads as empty."""
        t = now_ms if now_ms is not None else system_ms()
        counter = self._counters.get(line.counter_name)
        if counter is None:
            return (0, line.limit, 0, -1 if cost > line.limit else 0)
        return counter.state(cost, t)

    async def counted(self, line: LimitLine, *, now_ms: int | None = None) -> int:
        """What `line` counts at `now_ms` (the same call on every store)."""
        return self.state(line, now_ms=now_ms)[0]

    async def close(self) -> None:
        self._counters.clear()
