"""UTC calendar windows: the window of a cap that an instant falls in (computed by the Rust core).

A window's id goes into bucket keys (`day:2026-11-27`), so a new window is a new bucket: caps roll
over at the UTC hour, midnight, Monday or first of the month without a restart or a reset job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sluicegate._core import window_at

__all__ = ["Window", "unix_seconds", "utc_now", "window_of"]


@dataclass(frozen=True, slots=True)
class Window:
    """One window: `id` for keys, `start` and `end` (the reset time) as Unix seconds (None for total)."""

    id: str
    start: int | None
    end: int | None

    @property
    def resets_at(self) -> datetime | None:
        return None if self.end is None else datetime.fromtimestamp(self.end, UTC)


_TOTAL = Window("total", None, None)
# The last window seen per kind: nearly every call falls in it, so most calls skip the Rust call.
_last: dict[str, Window] = {}


def utc_now() -> datetime:
    return datetime.now(UTC)


def unix_seconds(now: datetime) -> int:
    """Whole Unix seconds of an aware datetime.

    Raises:
        ValueError: a naive datetime (its zone would be a guess).
    """
    if now.tzinfo is None:
        raise ValueError("spend times must be timezone-aware (UTC)")
    return int(now.timestamp() // 1)


def window_of(kind: str, now: datetime | int) -> Window:
    """The window of `kind` (`total`, `hour`, `day`, `week`, `month`) containing `now`.

    Arguments:
        kind: the window kind.
        now: an aware datetime, or Unix seconds.

    Raises:
        ValueError: an unknown kind, a naive datetime, or a time outside the years 1..=9999.
    """
    if kind == "total":
        return _TOTAL
    t = now if isinstance(now, int) else unix_seconds(now)
    last = _last.get(kind)
    if last is not None and last.start is not None and last.end is not None and last.start <= t < last.end:
        return last
    window = Window(*window_at(kind, t))
    _last[kind] = window
    return window
