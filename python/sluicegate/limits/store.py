"""The interface every limits store implements.

```
acquire(lines, costs, enforce) ──► LimitResult (.grant, or .refused)
finish(grant, actual_tokens)       once per grant, on every ending; never raises
```

Three stores implement it: `LocalLimitStore` (one process, Rust counters), `RedisLimitStore`
(many instances, one Lua script per acquire and per finish) and `LeasedLimitStore` (Redis truth,
most admissions local, against slices of the current slot leased from it). All are async so the
pipeline treats them alike.

Errors:
```
StoreUnavailable     Redis cannot be reached (or is loading, read-only, out of memory): the
                     pipeline answers per policy (`limits.on_redis_error`). The same class as
                     spend's (`sluicegate.spend.store.StoreUnavailable`).
ValueError           bad arguments: not one cost and one flag per line, a negative cost, lines
                     of several organizations on a Redis store.
```
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Sequence
from typing import Protocol

from sluicegate._core import MAX_COST
from sluicegate.limits.lines import Grant, LimitLine, LimitResult, LineState
from sluicegate.limits.settings import LimitSettings
from sluicegate.spend.store import StoreUnavailable

__all__ = ["LimitStore", "StoreUnavailable", "create_limit_store", "new_grant_id", "system_ms"]

_ids = itertools.count()
_PREFIX = os.urandom(6).hex()


def new_grant_id() -> str:
    """Unique across processes and restarts: random per process, then a counter."""
    return f"{_PREFIX}{next(_ids):x}"


def system_ms() -> int:
    """The system clock in whole ms."""
    return time.time_ns() // 1_000_000


def clock_skew_ms(now_ms: int | None) -> int:
    """How far a caller's `now_ms` is from the system clock (0 when it passed none, or about
    none: a second of drift is the same clock)."""
    if now_ms is None:
        return 0
    skew = now_ms - system_ms()
    return 0 if -1000 < skew <= 0 else skew


# The last tuple of lines that passed the checks of `acquire_args` (that depend on the lines only).
_checked: list[tuple[LimitLine, ...] | None] = [None]


def acquire_args(
    lines: Sequence[LimitLine], costs: Sequence[int], enforce: Sequence[bool], now_ms: int | None
) -> tuple[int, tuple[LimitLine, ...], tuple[int, ...], int]:
    """What every store's `acquire` starts from: the time (`now_ms`, else the clock's), the lines,
    the costs (checked) and the enforce mask (bit i for lines[i]).

    Raises:
        ValueError: not one cost and one flag per line, more than 64 lines, a cost out of range,
            two lines on one counter.
    """
    lines, costs = tuple(lines), tuple(costs)
    if not len(lines) == len(costs) == len(enforce):
        raise ValueError("one cost and one enforce flag per line")
    if lines is not _checked[0]:  # the policy hands the same tuple for a caller's lines
        if len(lines) > 64:
            raise ValueError("at most 64 lines per acquire")
        if len({line.counter_name for line in lines}) < len(lines):
            raise ValueError(
                "two lines count on one counter (same organization, level, entity, kind and window): "
                "pass one line per counter, with the limit that applies (the lowest)"
            )
        _checked[0] = lines  # held here, so its id cannot be reused while it is the one checked
    for cost in costs:
        if isinstance(cost, bool) or not isinstance(cost, int) or not 0 <= cost <= MAX_COST:
            raise ValueError(f"costs are whole numbers 0..={MAX_COST}")
    mask = 0
    for i, on in enumerate(enforce):
        if on:
            mask |= 1 << i
    return (system_ms() if now_ms is None else now_ms), lines, costs, mask


def finish_deltas(grant: Grant, actual_tokens: int | None) -> list[int]:
    """Per line of `grant`, what its count moves by: actual minus estimate on tokens lines (none
    when `actual_tokens` is None), 0 elsewhere."""
    if actual_tokens is None:
        return [0] * len(grant.lines)
    actual = max(0, min(int(actual_tokens), MAX_COST))
    return [actual - cost if line.kind == "tokens" else 0 for line, cost in zip(grant.lines, grant.costs, strict=True)]


def finish_now(grant: Grant, now_ms: int | None) -> int:
    """The time a finish runs at: `now_ms`, else the system clock moved by the grant's skew."""
    return now_ms if now_ms is not None else system_ms() + grant.clock_skew_ms


def result_of(
    lines: tuple[LimitLine, ...],
    enforce_mask: int,
    refused: int,
    would_refuse: int,
    states: Sequence[tuple[int, int, int, int]],
    grant: Grant | None,
) -> LimitResult:
    """A LimitResult from per-line `(counted, remaining, reset_ms, retry_after_ms)`, the refusing
    index (-1: none) and the would-refuse mask."""
    out = [LineState(line, s[1], s[2], s[3]) for line, s in zip(lines, states, strict=True)]
    if refused >= 0:
        return LimitResult(None, out[refused], [], out)
    monitored = [out[i] for i in range(len(lines)) if would_refuse >> i & 1 and not enforce_mask >> i & 1]
    return LimitResult(grant, None, monitored, out)


class LimitStore(Protocol):
    """Where rate limits are counted. `acquire` may raise StoreUnavailable (Redis stores only)."""

    async def acquire(
        self, lines: Sequence[LimitLine], costs: Sequence[int], enforce: Sequence[bool], *, now_ms: int | None = None
    ) -> LimitResult:
        """Count `costs[i]` on `lines[i]` for every line at once, or nothing when an enforcing line
        (`enforce[i]`) cannot fit its cost; non-enforcing lines count whatever happens and report
        when they would have refused.

        Arguments:
            lines: the limits that apply (at most 64; those of one organization for Redis), one
                per counter: two lines on the same (organization, level, entity, kind, window)
                are an error, not two limits.
            costs: 1 for requests and concurrent lines, the input-token estimate for tokens lines.
            enforce: per line, whether it refuses (the rule's mode and rollout decide).
            now_ms: the caller's clock in ms (default: the system clock).

        Returns:
            The grant or the refusal, and every line's state; see `LimitResult`.

        Raises:
            StoreUnavailable: the store cannot be reached (nothing is counted).
            ValueError: bad arguments.
        """
        ...

    async def finish(self, grant: Grant, actual_tokens: int | None, *, now_ms: int | None = None) -> None:
        """End a grant, once, on every ending: release its concurrent entries and move its tokens
        lines from the estimate to `actual_tokens` (None keeps the estimate; 0 for a call that
        failed before any output). A second finish is a no-op. Never raises: a finish that cannot
        reach Redis is dropped with a warning (the entries free after `concurrency_ttl_s`, the
        estimate stays counted: both err on the side of refusing)."""
        ...

    async def close(self) -> None:
        """Give back leases, close connections."""
        ...


def create_limit_store(settings: LimitSettings) -> LimitStore:
    """The store `settings` asks for (call inside the serving event loop; close it at shutdown).

    Arguments:
        settings: the `[limits]` section.
    """
    if settings.backend == "local":
        from sluicegate.limits.local import LocalLimitStore

        return LocalLimitStore(slot_ms=settings.slot_ms, concurrency_ttl_s=settings.concurrency_ttl_s)
    from sluicegate.limits.redis_store import RedisLimitStore

    store = RedisLimitStore.from_settings(settings)
    if settings.lease.enabled:
        from sluicegate.limits.leases import LeasedLimitStore

        return LeasedLimitStore(store, settings.lease)
    return store
