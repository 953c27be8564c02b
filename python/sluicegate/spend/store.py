"""The interface every spend store implements, and what its calls return.

```
reserve(lines, worst_case) ──► ReserveResult
        │  .refusal set: nothing reserved, answer 402 (or clamp: .clamp_to_nusd, lower max_tokens)
        ▼
   forward the request
        │
        ├── success ──► settle(reservation, actual_cost) ──► alerts
        └── failure ──► release(reservation)
```

Three stores implement it: `LocalStore` (one process, Rust buckets), `RedisStore` (many
instances, one Lua script per call) and `LeasedStore` (Redis truth, local reservations against
slices leased from it). All are async so the pipeline treats them alike.

Errors:
```
StoreUnavailable     Redis cannot be reached (or is loading, read-only, out of memory): the
                     pipeline answers per `spend.on_redis_error` (fail_closed: 503).
ValueError           a bad amount (negative, above MAX_NUSD), a naive datetime.
```
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sluicegate.spend.caps import CapLine, SpendSettings
from sluicegate.spend.money import MAX_NUSD
from sluicegate.spend.windows import Window, unix_seconds, window_of

__all__ = [
    "Refusal",
    "Reservation",
    "ReserveResult",
    "SpendStore",
    "StoreUnavailable",
    "ThresholdAlert",
    "check_amount",
    "create_store",
]


class StoreUnavailable(Exception):
    """The spend store cannot be reached; the message names the kind of failure, never a URL with
    credentials. The pipeline maps it to `fail_closed` (503) or `fail_open`."""


def check_amount(amount_nusd: int, name: str = "amount_nusd") -> None:
    """Raises ValueError unless `amount_nusd` is an int in 0..=MAX_NUSD."""
    if isinstance(amount_nusd, bool) or not isinstance(amount_nusd, int):
        raise ValueError(f"{name} must be an int of nano-USD")
    if not 0 <= amount_nusd <= MAX_NUSD:
        raise ValueError(f"{name} must be 0..={MAX_NUSD}")


def reserve_args(
    lines: Sequence[CapLine], amount_nusd: int, min_clamp_nusd: int, now: datetime | None
) -> tuple[int, tuple[CapLine, ...], tuple[Window, ...]]:
    """What every store's `reserve` starts from: the amounts checked, the time in whole Unix
    seconds (`now`, else the clock's), the lines, and the window each line is in at that time.

    Raises:
        ValueError: an amount out of range, or a naive `now`.
    """
    check_amount(amount_nusd)
    check_amount(min_clamp_nusd, "min_clamp_nusd")
    t = unix_seconds(now) if now is not None else int(time.time())
    lines = tuple(lines)
    return t, lines, tuple(window_of(line.window, t) for line in lines)


def clock_skew(t: int) -> float:
    """How far `t` (the Unix seconds a call was made at, from `reserve_args`) is from the system
    clock: about 0 unless a caller passed its own `now` (a test). Whatever follows that call (its
    settle, a lease's renewals) runs on the caller's clock by adding this to `time.time()`."""
    skew = t - time.time()
    return 0.0 if -1.0 < skew <= 0.0 else skew


def _resets_at(window: Window) -> datetime | None:
    return None if window.end is None else datetime.fromtimestamp(window.end, UTC)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A cap that refused a request (or, in monitor mode, would have).

    Attributes:
        line: the cap.
        spent_nusd: settled spend in the window before this request.
        reserved_nusd: outstanding reservations (and, with leases, slices held) before it.
        requested_nusd: what the request needed.
        resets_at: when the window ends (None for a total cap).
        window_id: the window, as in `day:2026-11-27`.
    """

    line: CapLine
    spent_nusd: int
    reserved_nusd: int
    requested_nusd: int
    resets_at: datetime | None
    window_id: str

    @property
    def remaining_nusd(self) -> int:
        return max(0, self.line.limit_nusd - self.spent_nusd - self.reserved_nusd)


@dataclass(frozen=True, slots=True)
class ThresholdAlert:
    """Settled spend reached `threshold_pct` percent of a cap: raised once per cap and window.

    Attributes:
        line: the cap.
        threshold_pct: the threshold reached.
        spent_nusd: settled spend in the window when it was seen.
        window_id: the window.
        resets_at: when the window ends.
    """

    line: CapLine
    threshold_pct: int
    spent_nusd: int
    window_id: str
    resets_at: datetime | None


@dataclass(slots=True)
class Reservation:
    """Money held for one request until `settle` or `release`.

    Attributes:
        id: unique id (also the reservation's name in Redis).
        amount_nusd: what is held on every line (less than asked when clamped).
        lines: the caps it counts against.
        windows: the window of each line, when reserved (settle goes to these windows even after
            a roll-over, so a request is charged to the window it started in).
        handle: the store's own data (bucket objects, keys).
        done: settled or released; a second settle or release is a no-op.
        clock_skew_s: how far the clock the caller reserved with (`now`) is from the system's;
            0 in production. A settle later in time keeps to that clock (see `clock_skew`).
    """

    id: str
    amount_nusd: int
    lines: tuple[CapLine, ...]
    windows: tuple[Window, ...]
    handle: Any = None
    done: bool = False
    clock_skew_s: float = 0.0


@dataclass(slots=True)
class ReserveResult:
    """What `reserve` decided.

    Attributes:
        reservation: the money held, or None when refused.
        refusal: the first enforcing cap that refused (None when reserved).
        monitored: monitor-mode caps that would have refused this request (it went ahead).
        alerts: thresholds crossed that this call noticed.
        clamp_to_nusd: set when a clamp cap made the reservation smaller than asked: the pipeline
            must lower the request's output limit so its worst case fits this amount
            (`PriceBook.max_output_tokens_for`).
    """

    reservation: Reservation | None
    refusal: Refusal | None = None
    monitored: list[Refusal] = field(default_factory=list)
    alerts: list[ThresholdAlert] = field(default_factory=list)
    clamp_to_nusd: int | None = None

    @property
    def ok(self) -> bool:
        return self.reservation is not None


class SpendStore(Protocol):
    """Where caps are counted. Every method may raise StoreUnavailable (Redis stores only)."""

    async def reserve(
        self, lines: Sequence[CapLine], amount_nusd: int, *, now: datetime | None = None, min_clamp_nusd: int = 0
    ) -> ReserveResult:
        """Hold `amount_nusd` on every line at once, or on none.

        Arguments:
            lines: the caps that apply (at most 64; those of one organization for Redis).
            amount_nusd: the request's worst-case cost.
            now: the instant that picks each line's window (default: now, UTC).
            min_clamp_nusd: with clamp caps, the smallest amount worth reserving instead.

        Returns:
            A reservation, or the refusal; see `ReserveResult`.

        Raises:
            StoreUnavailable: the store cannot be reached (nothing is held).
            ValueError: a bad amount or a naive `now`.
        """
        ...

    async def settle(self, reservation: Reservation, actual_nusd: int) -> list[ThresholdAlert]:
        """Replace the reservation by the actual cost (above the reservation only when the provider
        overshoots: recorded as it is). Never fails for the store being down: the settle is kept
        and retried, and until then the reservation keeps blocking its amount.

        Returns:
            The thresholds that this settle (or pending work it flushed) made cross.
        """
        ...

    async def release(self, reservation: Reservation) -> None:
        """Give the reservation back (the upstream call failed; nothing was spent)."""
        ...

    async def snapshot(self, line: CapLine, *, now: datetime | None = None) -> tuple[int, int]:
        """`(spent_nusd, reserved_nusd)` of `line` in its window at `now`."""
        ...

    async def close(self) -> None:
        """Return leases, flush pending settles, close connections."""
        ...


def create_store(settings: SpendSettings) -> SpendStore:
    """The store `settings` asks for (call inside the serving event loop; close it at shutdown).

    Arguments:
        settings: the `[spend]` section.
    """
    if settings.backend == "local":
        from sluicegate.spend.local import LocalStore

        return LocalStore()
    from sluicegate.spend.redis_store import RedisStore

    store = RedisStore.from_settings(settings)
    if settings.lease.enabled:
        from sluicegate.spend.leases import LeasedStore

        return LeasedStore(store, settings.lease)
    return store


def refusal_of(line: CapLine, window: Window, spent: int, reserved: int, requested: int) -> Refusal:
    """A Refusal with the window's reset time."""
    return Refusal(line, spent, max(0, reserved), requested, _resets_at(window), window.id)


def alerts_of(line: CapLine, window: Window, mask: int, spent: int) -> list[ThresholdAlert]:
    """The alerts of a newly-fired threshold mask over `line.thresholds`."""
    if not mask:
        return []
    return [
        ThresholdAlert(line, t, spent, window.id, _resets_at(window))
        for i, t in enumerate(line.thresholds)
        if mask >> i & 1
    ]
