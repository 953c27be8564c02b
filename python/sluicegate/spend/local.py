"""The one-process store: every (cap, window) is a Rust `Bucket` in this process.

Reservation across lines is `_core.reserve_all` (lock-free, all or nothing, interpreter detached),
so it is exact under any number of concurrent tasks and threads of this process. It is not shared
between processes: with several workers or instances use the Redis backend.

Buckets are found by (org, level, entity, window kind, window id); a new window id is a new bucket,
so caps roll over without a restart. Buckets of windows that have ended are dropped from the map
(a reservation keeps its own buckets, so a late settle still lands in its window).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from datetime import datetime

from sluicegate._core import Bucket, release_all, reserve_all, settle_all
from sluicegate.spend.caps import CapLine
from sluicegate.spend.store import (
    Refusal,
    Reservation,
    ReserveResult,
    ThresholdAlert,
    alerts_of,
    check_amount,
    refusal_of,
    reserve_args,
)
from sluicegate.spend.windows import Window, utc_now, window_of

__all__ = ["LocalStore", "masks", "new_reservation_id"]

_ids = itertools.count()
_PREFIX = os.urandom(6).hex()


def new_reservation_id() -> str:
    """Unique across processes and restarts: random per process, then a counter."""
    return f"{_PREFIX}{next(_ids):x}"


def masks(lines: Sequence[CapLine]) -> tuple[int, int]:
    """(enforce mask, clamp mask) over `lines`, bit i for lines[i]."""
    enforce = clamp = 0
    for i, line in enumerate(lines):
        if line.enforced:
            enforce |= 1 << i
        if line.clamps:
            clamp |= 1 << i
    return enforce, clamp


class LocalStore:
    """Caps counted in this process's Rust buckets (see the module docstring)."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[tuple[str, str, str, str], str], Bucket] = {}
        self._ends: dict[tuple[tuple[str, str, str, str], str], int] = {}
        self._sweep_at = 0

    def bucket(self, line: CapLine, window: Window) -> Bucket:
        """The bucket of `line` in `window`, made on first use; a changed limit is applied."""
        name = (line.bucket_name, window.id)
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = self._buckets.setdefault(name, Bucket(line.limit_nusd, line.thresholds))
            if window.end is not None:
                self._ends[name] = window.end
        elif bucket.limit_nusd != line.limit_nusd:
            bucket.set_limit(line.limit_nusd)
        return bucket

    def _sweep(self, t: int) -> None:
        """Drop the buckets of windows that ended (at most once a minute)."""
        if t < self._sweep_at:
            return
        self._sweep_at = t + 60
        for name in [n for n, end in self._ends.items() if end <= t]:
            del self._buckets[name], self._ends[name]

    async def reserve(
        self, lines: Sequence[CapLine], amount_nusd: int, *, now: datetime | None = None, min_clamp_nusd: int = 0
    ) -> ReserveResult:
        t, lines, windows = reserve_args(lines, amount_nusd, min_clamp_nusd, now)
        self._sweep(t)
        buckets = [self.bucket(line, w) for line, w in zip(lines, windows, strict=True)]
        enforce, clamp = masks(lines)
        taken, refused, monitored = reserve_all(buckets, amount_nusd, enforce, clamp, min_clamp_nusd)
        if refused >= 0:
            _, spent, reserved = buckets[refused].snapshot()
            return ReserveResult(None, refusal_of(lines[refused], windows[refused], spent, reserved, amount_nusd))
        watched: list[Refusal] = []
        for i in range(len(lines)):
            if monitored >> i & 1:
                _, spent, reserved = buckets[i].snapshot()
                watched.append(refusal_of(lines[i], windows[i], spent, reserved - taken, amount_nusd))
        reservation = Reservation(new_reservation_id(), taken, lines, windows, buckets)
        return ReserveResult(reservation, None, watched, [], taken if taken < amount_nusd else None)

    async def settle(self, reservation: Reservation, actual_nusd: int) -> list[ThresholdAlert]:
        check_amount(actual_nusd, "actual_nusd")
        if reservation.done:
            return []
        reservation.done = True
        buckets: list[Bucket] = reservation.handle
        fired = settle_all(buckets, reservation.amount_nusd, actual_nusd)
        alerts: list[ThresholdAlert] = []
        for line, window, bucket, mask in zip(reservation.lines, reservation.windows, buckets, fired, strict=True):
            alerts += alerts_of(line, window, mask, bucket.spent_nusd)
        return alerts

    async def release(self, reservation: Reservation) -> None:
        if reservation.done:
            return
        reservation.done = True
        release_all(reservation.handle, reservation.amount_nusd)

    async def snapshot(self, line: CapLine, *, now: datetime | None = None) -> tuple[int, int]:
        window = window_of(line.window, now or utc_now())
        bucket = self._buckets.get((line.bucket_name, window.id))
        if bucket is None:
            return (0, 0)
        _, spent, reserved = bucket.snapshot()
        return (spent, reserved)

    async def close(self) -> None:
        self._buckets.clear()
        self._ends.clear()
