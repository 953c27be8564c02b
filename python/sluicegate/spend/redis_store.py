"""The many-instance store: Redis holds every bucket, one Lua script per reserve and per settle.

Keys. A bucket of cap line L in window W is the hash
`<prefix>:{org:<org>}:<level>:<entity>:<window id>` (fields `spent`, `reserved`, `fired`, lease
records and tombstones) plus the sorted set `<same>:r` of what holds money in `reserved`
(reservations and leases, scored by expiry). Ids are percent-encoded, and every key of an
organization carries the hash tag `{org:<org>}`, so one script reserves all of a request's lines
atomically, and on a Redis Cluster (`redis+cluster://`, see `sluicegate.redis_scripts`) each
call's keys are in one slot, on one primary; the tests run this store's contract, a fail-over and
a reshard on a real cluster. A window's keys expire `retention_s` after the window ends;
`total` keys never do. The scripts get that as a time to live computed from the caller's clock
(`now`, or the system clock), never as an absolute Redis time: a caller whose clock is elsewhere
(a test fixed at some date) keeps its keys as long as that clock says.

Scripts (`lua/*.lua`, each with `lua/common.lua` in front) are registered once with redis-py's
`register_script`: calls are EVALSHA, and a NOSCRIPT (a restarted Redis, SCRIPT FLUSH, a fail-over,
a cluster node that never ran it) makes redis-py load the script and call again.

Exactness. Amounts and caps are at most 2**53 - 1 nano-USD (about 9.007M USD; larger caps are a
config error), so the scripts' doubles compare them exactly; values are written with HINCRBY from
integer strings. A reserve is refused when `amount > limit - spent - reserved` on an enforcing line.

Crashes. A reservation lives `reservation_ttl_s`; past that, any script touching its bucket
reclaims it: its whole amount moves from `reserved` to `spent` (the request may have been billed,
so it counts as spent: over-blocking is allowed, overspending never) and a tombstone remembers it,
so that a settle arriving later still replaces it by the actual cost. Settle is idempotent (a
retried settle does nothing), so a settle that fails because Redis is down is kept and retried in
the background; until then its reservation keeps blocking its amount.

Faults. Every call has connect and read timeouts (`redis_timeout_s`) and one immediate retry on a
fresh connection (a pooled connection to a restarted Redis fails once). Any connection-level
failure raises StoreUnavailable, and for `redis_breaker_s` after it calls fail at once without
waiting on the network; then the next call tries again, so a Redis that comes back is used again
without restarting anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any
from urllib.parse import quote

from sluicegate.redis_scripts import RedisClient, ScriptRunner, connect
from sluicegate.spend.caps import CapLine, SpendSettings
from sluicegate.spend.local import new_reservation_id
from sluicegate.spend.store import (
    Reservation,
    ReserveResult,
    StoreUnavailable,
    ThresholdAlert,
    alerts_of,
    check_amount,
    clock_skew,
    refusal_of,
    reserve_args,
)
from sluicegate.spend.windows import Window, utc_now, window_of

__all__ = ["RedisStore", "bucket_key", "load_script"]

log = logging.getLogger("sluicegate.spend")

_MAX_PENDING = 100_000


def load_script(name: str) -> str:
    """The text of `lua/<name>.lua` with `lua/common.lua` in front."""
    folder = resources.files("sluicegate.spend") / "lua"
    return (folder / "common.lua").read_text() + "\n" + (folder / f"{name}.lua").read_text()


def _esc(value: str) -> str:
    return quote(value, safe="._@-")


def bucket_key(prefix: str, line: CapLine, window_id: str) -> str:
    """The hash of `line`'s bucket in window `window_id` (its sorted set adds `:r`)."""
    return f"{prefix}:{{org:{_esc(line.org_id)}}}:{line.level}:{_esc(line.entity_id)}:{window_id}"


def _csv(values: Sequence[int]) -> str:
    return ",".join(map(str, values))


@dataclass(slots=True)
class _Pending:
    """A settle that could not reach Redis, kept for a retry."""

    keys: list[str]
    args: list[Any]
    reservation: Reservation


class RedisStore:
    """Caps counted in Redis (see the module docstring).

    Arguments:
        client: a redis-py asyncio client (bytes replies); the store closes it.
        prefix: prefix of every key.
        reservation_ttl_s: how long an unsettled reservation holds before it counts as spent.
        retention_s: how long a window's keys outlive the window.
        breaker_s: how long to fail fast after a connection failure.

    Attributes:
        calls: Redis round trips made so far (one per script call or command).
    """

    def __init__(
        self,
        client: RedisClient,
        *,
        prefix: str = "sg",
        reservation_ttl_s: float = 1200.0,
        retention_s: int = 2 * 86_400,
        breaker_s: float = 0.25,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_ms = max(1, int(reservation_ttl_s * 1000))
        self.retention_s = retention_s
        self.breaker_s = breaker_s
        self.runner = ScriptRunner(breaker_s, client)
        self._reserve = client.register_script(load_script("reserve"))
        self._settle = client.register_script(load_script("settle"))
        self.lease_script = client.register_script(load_script("lease"))
        self._pending: deque[_Pending] = deque(maxlen=_MAX_PENDING)
        self._retrier: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, settings: SpendSettings) -> RedisStore:
        """A store with its own connection pool, configured from `[spend]`."""
        client = connect(
            settings.redis_url.reveal(),
            timeout_s=settings.redis_timeout_s,
            max_connections=settings.redis_max_connections,
        )
        return cls(
            client,
            prefix=settings.key_prefix,
            reservation_ttl_s=settings.reservation_ttl_s,
            retention_s=settings.retention_s,
            breaker_s=settings.redis_breaker_s,
        )

    # -- plumbing ---------------------------------------------------------------------------------

    async def run(self, script: Any, keys: list[str], args: list[Any]) -> list[int]:
        """Call a registered script (`redis_scripts.ScriptRunner.run`).

        Raises:
            StoreUnavailable: Redis unreachable, timing out, loading, read-only or out of memory,
                or it failed within the last `breaker_s`.
        """
        return await self.runner.run(script, keys, args)

    @property
    def calls(self) -> int:
        """Redis round trips so far."""
        return self.runner.calls

    def keys_of(self, lines: Sequence[CapLine], windows: Sequence[Window]) -> list[str]:
        """Hash and sorted-set key of each line, interleaved (the scripts' KEYS)."""
        orgs = {line.org_id for line in lines}
        if len(orgs) > 1:
            raise ValueError("one reservation covers the caps of one organization")
        keys: list[str] = []
        for line, window in zip(lines, windows, strict=True):
            key = bucket_key(self.prefix, line, window.id)
            keys += (key, key + ":r")
        return keys

    def expire_in_ms(self, window: Window, skew_s: float = 0.0) -> int:
        """How long from now `window`'s keys live, by the caller's clock (the system clock plus
        `skew_s`); 0 (never) for a total cap, at least 1 ms otherwise (gone at once)."""
        if window.end is None:
            return 0
        return max(1, int(((window.end + self.retention_s) - (time.time() + skew_s)) * 1000))

    # -- the store --------------------------------------------------------------------------------

    async def reserve(
        self, lines: Sequence[CapLine], amount_nusd: int, *, now: datetime | None = None, min_clamp_nusd: int = 0
    ) -> ReserveResult:
        t, lines, windows = reserve_args(lines, amount_nusd, min_clamp_nusd, now)
        rid = new_reservation_id()
        if not lines:
            return ReserveResult(Reservation(rid, amount_nusd, (), (), []))
        skew = clock_skew(t)
        keys = self.keys_of(lines, windows)
        args: list[Any] = [rid, self.ttl_ms, amount_nusd, min_clamp_nusd]
        for line, window in zip(lines, windows, strict=True):
            flags = (1 if line.enforced else 0) | (2 if line.clamps else 0)
            args += (line.limit_nusd, self.expire_in_ms(window, skew), _csv(line.thresholds), flags)
        raw = await self.run(self._reserve, keys, args)
        status, taken, refused = raw[0], raw[1], raw[2]
        if status == 3:  # redis-py retried a call that had gone through: it is reserved once
            return ReserveResult(Reservation(rid, amount_nusd, lines, windows, keys, clock_skew_s=skew))
        result = ReserveResult(None)
        for i, (line, window) in enumerate(zip(lines, windows, strict=True)):
            spent, reserved, fired, would = raw[3 + 4 * i : 7 + 4 * i]
            result.alerts += alerts_of(line, window, fired, spent)
            if would:
                result.monitored.append(refusal_of(line, window, spent, reserved - taken, amount_nusd))
        if status == 0:
            i = refused - 1
            spent, reserved = raw[3 + 4 * i], raw[4 + 4 * i]
            result.refusal = refusal_of(lines[i], windows[i], spent, reserved, amount_nusd)
            return result
        result.reservation = Reservation(rid, taken, lines, windows, keys, clock_skew_s=skew)
        if status == 2:
            result.clamp_to_nusd = taken
        return result

    def _settle_args(self, reservation: Reservation, actual_nusd: int) -> list[Any]:
        args: list[Any] = [reservation.id, reservation.amount_nusd, actual_nusd]
        for line, window in zip(reservation.lines, reservation.windows, strict=True):
            args += (line.limit_nusd, self.expire_in_ms(window, reservation.clock_skew_s), _csv(line.thresholds))
        return args

    def _alerts(self, reservation: Reservation, raw: list[int]) -> list[ThresholdAlert]:
        alerts: list[ThresholdAlert] = []
        for i, (line, window) in enumerate(zip(reservation.lines, reservation.windows, strict=True)):
            _, spent, _, fired = raw[4 * i : 4 * i + 4]
            alerts += alerts_of(line, window, fired, spent)
        return alerts

    async def settle(self, reservation: Reservation, actual_nusd: int) -> list[ThresholdAlert]:
        check_amount(actual_nusd, "actual_nusd")
        if reservation.done:
            return []
        reservation.done = True
        if not reservation.lines:
            return []
        keys, args = reservation.handle, self._settle_args(reservation, actual_nusd)
        try:
            raw = await self.run(self._settle, keys, args)
        except StoreUnavailable:
            log.warning("spend settle deferred: redis is unavailable; it will be retried")
            self._defer(_Pending(keys, args, reservation))
            return []
        return self._alerts(reservation, raw)

    async def release(self, reservation: Reservation) -> None:
        await self.settle(reservation, 0)

    def _defer(self, pending: _Pending) -> None:
        self._pending.append(pending)
        if self._retrier is None or self._retrier.done():
            self._retrier = asyncio.get_running_loop().create_task(self._retry_pending())

    @property
    def pending_settlements(self) -> int:
        """Settles waiting for Redis to come back."""
        return len(self._pending)

    async def flush_pending(self) -> list[ThresholdAlert]:
        """Send the deferred settles now; stops at the first that still fails.

        Raises:
            StoreUnavailable: Redis is still down (the rest stay queued).
        """
        alerts: list[ThresholdAlert] = []
        while self._pending:
            item = self._pending[0]
            raw = await self.run(self._settle, item.keys, item.args)
            self._pending.popleft()
            alerts += self._alerts(item.reservation, raw)
        return alerts

    async def _retry_pending(self) -> None:
        while self._pending:
            await asyncio.sleep(max(self.breaker_s, 0.1))
            with contextlib.suppress(StoreUnavailable):
                await self.flush_pending()

    async def snapshot(self, line: CapLine, *, now: datetime | None = None) -> tuple[int, int]:
        window = window_of(line.window, now or utc_now())
        return await self.totals(bucket_key(self.prefix, line, window.id))

    async def totals(self, key: str) -> tuple[int, int]:
        """`(spent, reserved)` of the bucket hash `key`.

        Raises:
            StoreUnavailable: Redis cannot be reached.
        """
        spent, reserved = await self.runner.call(self.client.hmget, key, ["spent", "reserved"])
        return (int(spent or 0), int(reserved or 0))

    async def close(self) -> None:
        """Try the deferred settles once more, then close the connections."""
        if self._retrier is not None:
            self._retrier.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retrier
        if self._pending:
            self.runner.reset()
            with contextlib.suppress(StoreUnavailable):
                await self.flush_pending()
            if self._pending:
                log.warning("spend: %d settles could not reach redis; they count as spent", len(self._pending))
        await self.client.aclose(close_connection_pool=True)
