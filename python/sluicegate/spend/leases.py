"""Budget leases: most requests reserve locally, against slices of the Redis buckets.

For each bucket a request counts against (a cap line in its window), this instance holds a lease:
a slice of the cap that Redis counts as reserved by the instance, and a local Rust `Bucket` whose
limit is that slice. A reservation is `_core.reserve_all` on the local buckets: no network. Only
when a slice runs short does the instance call Redis (`lua/lease.lua`, one call per organization)
to grow the slices it needs; settles are local, and the spend is reported to Redis in the
background every `sync_interval_s`, which also renews the leases.

Exactness. Redis always holds at least what the instance may still spend: a slice grows in Redis
before it grows locally, and shrinks locally (`Bucket.shrink`, which cannot take money a
reservation holds) before it shrinks in Redis. Every value sent is absolute (local capacity and
cumulative local spend), so a retried call or a lost answer leaves the same state. A provider's
overshoot at settle grows the local slice by the overshoot, so Redis records it at the next sync.

Sizing. A slice asked for pays `requests_per_slice` requests like the one asking, but Redis grants
at most `1/free_divisor` of what the cap has free, and at least what the request needs if that
fits: far from the cap a slice lasts many requests, near it slices shrink to exactly one request's
worth, so the cap holds to the nano-USD. The cost: near the cap a request can be refused while
other instances still hold unused slices (over-blocking, never overspending); idle slices go back
after `idle_s`.

Crashes. A lease not renewed within `ttl_s` is reclaimed by any script touching its bucket: its
hold counts as spent. If the instance was only cut off and comes back, its next sync finds the
tombstone, takes the hold back and reports its real spend.

The request path. A caller's tuple of caps has a lane: its leases, their buckets and the windows
they are in; while the clock is inside those windows a reservation is one `reserve_all` on the
lane's buckets (no window arithmetic, no lookups per cap). Lanes are rebuilt when a lease is
forgotten.

Thresholds are evaluated by Redis when spend is reported, so alerts can lag by up to
`sync_interval_s`; they are returned by the next `settle` (or `reserve`) call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sluicegate._core import Bucket, release_all, reserve_all, settle_all
from sluicegate.spend.caps import CapLine, LeaseSettings
from sluicegate.spend.local import new_reservation_id
from sluicegate.spend.redis_store import RedisStore, bucket_key
from sluicegate.spend.store import (
    Refusal,
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
from sluicegate.spend.windows import Window, unix_seconds, utc_now, window_of

__all__ = ["LeasedStore"]

log = logging.getLogger("sluicegate.spend")


@dataclass(slots=True)
class _Lease:
    """This instance's lease on one bucket; `name` is its record in Redis (unique per object, so
    a lease object dropped while another replaces it can never hand back the other's hold)."""

    parts: tuple[str, str, str, str]  # organization, level, entity, window id
    key: str
    name: str
    line: CapLine
    window: Window
    bucket: Bucket = field(default_factory=lambda: Bucket(0))
    spent_reported: int = 0
    capacity_synced: int = 0
    last_used: float = field(default_factory=time.monotonic)
    last_sync: float = field(default_factory=time.monotonic)
    clock_skew_s: float = 0.0  # the clock of the reserve that made it (see `store.clock_skew`)

    @property
    def holds(self) -> int:
        """What Redis held for this lease after the last call."""
        return self.capacity_synced - self.spent_reported


@dataclass(slots=True)
class _Synced:
    """One bucket's answer to a lease call."""

    granted: int
    spent: int
    reserved: int
    free: int
    would_refuse: bool


class _Lane:
    """The leases of one tuple of caps (a caller's, the same tuple on every call) in the windows
    of `since <= t < until` (Unix seconds): a reservation there is one `reserve_all`. Valid while no
    lease was forgotten since (`epoch`)."""

    __slots__ = ("buckets", "epoch", "leases", "since", "until", "windows")

    def __init__(self, leases: list[_Lease], windows: tuple[Window, ...], epoch: int) -> None:
        self.leases, self.windows, self.epoch = leases, windows, epoch
        self.buckets = [lease.bucket for lease in leases]
        self.since = max((w.start for w in windows if w.start is not None), default=-(2**63))
        self.until = min((w.end for w in windows if w.end is not None), default=2**63)


class LeasedStore:
    """Caps in Redis, reserved locally against leased slices (see the module docstring).

    Arguments:
        redis: the Redis store whose client, scripts and key layout it uses (closed with it).
        settings: the lease settings.
        lease_id: this instance's lease name (default: random).
    """

    def __init__(self, redis: RedisStore, settings: LeaseSettings, *, lease_id: str | None = None) -> None:
        self.redis = redis
        self.settings = settings
        self.lease_id = lease_id or os.urandom(8).hex()
        # By what names a bucket (organization, level, entity, window id), the parts of its Redis
        # key: formatting the key itself per request cost more than the rest of a local reservation.
        self._leases: dict[tuple[str, str, str, str], _Lease] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._alerts: list[ThresholdAlert] = []
        self._task: asyncio.Task[None] | None = None
        self._ttl_ms = max(1, int(settings.ttl_s * 1000))
        self._serial = 0
        self._lanes: dict[tuple[CapLine, ...], _Lane] = {}
        self._epoch = 0  # moves when a lease is forgotten: lanes made before are rebuilt

    @property
    def calls(self) -> int:
        """Redis round trips so far."""
        return self.redis.calls

    def _lock(self, org: str) -> asyncio.Lock:
        lock = self._locks.get(org)
        if lock is None:
            lock = self._locks[org] = asyncio.Lock()
        return lock

    def _lease(self, line: CapLine, window: Window, skew: float) -> _Lease:
        parts = (line.org_id, line.level, line.entity_id, window.id)
        lease = self._leases.get(parts)
        if lease is None:
            self._serial += 1
            key = bucket_key(self.redis.prefix, line, window.id)
            name = f"{self.lease_id}.{self._serial:x}"
            lease = self._leases[parts] = _Lease(parts, key, name, line, window, clock_skew_s=skew)
        elif lease.line is not line and lease.line != line:
            lease.line = line  # a changed cap: Redis gets the new limit on the next call
        return lease

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._background())

    def _drain_alerts(self) -> list[ThresholdAlert]:
        alerts, self._alerts = self._alerts, []
        return alerts

    # -- the Redis side ---------------------------------------------------------------------------

    async def _sync(self, leases: Sequence[_Lease], needs: Sequence[int], wants: Sequence[int]) -> list[_Synced]:
        """One lease call for `leases` (of one organization; the caller holds its lock): report
        spend, renew, and grow each by what Redis grants of (need, want)."""
        keys: list[str] = []
        args: list[Any] = [self._ttl_ms, self.settings.free_divisor]
        sent: list[tuple[int, int]] = []
        for lease, need, want in zip(leases, needs, wants, strict=True):
            keys += (lease.key, lease.key + ":r")
            capacity, spent = lease.bucket.limit_nusd, lease.bucket.spent_nusd
            sent.append((capacity, spent))
            flags = 1 if lease.line.enforced else 0
            args += (
                lease.line.limit_nusd,
                self.redis.expire_in_ms(lease.window, lease.clock_skew_s),
                ",".join(map(str, lease.line.thresholds)),
            )
            args += (flags, capacity, spent, need, want, lease.name)
        raw = await self.redis.run(self.redis.lease_script, keys, args)
        now = time.monotonic()
        out: list[_Synced] = []
        for i, (lease, (capacity, spent)) in enumerate(zip(leases, sent, strict=True)):
            granted, total_spent, reserved, free, fired, would = raw[6 * i : 6 * i + 6]
            if granted:
                lease.bucket.grow(granted)
            lease.spent_reported = spent
            lease.capacity_synced = capacity + granted
            lease.last_sync = now
            self._alerts += alerts_of(lease.line, lease.window, fired, total_spent)
            out.append(_Synced(granted, total_spent, reserved, free, bool(would)))
        return out

    # -- the store --------------------------------------------------------------------------------

    async def reserve(
        self, lines: Sequence[CapLine], amount_nusd: int, *, now: datetime | None = None, min_clamp_nusd: int = 0
    ) -> ReserveResult:
        key = lines if type(lines) is tuple else tuple(lines)
        lane = self._lanes.get(key)
        if lane is not None and lane.epoch == self._epoch:
            # The common case: the caller's leases of the current windows cover the amount.
            check_amount(amount_nusd)
            check_amount(min_clamp_nusd, "min_clamp_nusd")
            t = unix_seconds(now) if now is not None else int(time.time())
            if lane.since <= t < lane.until and reserve_all(lane.buckets, amount_nusd)[1] < 0:
                return self._reserved(key, lane.windows, lane.leases, amount_nusd, amount_nusd, [], lane.buckets)
        t, lines, windows = reserve_args(lines, amount_nusd, min_clamp_nusd, now)
        if not lines:
            return ReserveResult(Reservation(new_reservation_id(), amount_nusd, (), (), []))
        if len({line.org_id for line in lines}) > 1:
            raise ValueError("one reservation covers the caps of one organization")
        self._start()
        skew = clock_skew(t) if now is not None else 0.0
        leases = [self._lease(line, w, skew) for line, w in zip(lines, windows, strict=True)]
        if len(self._lanes) >= 10_000:
            self._lanes.clear()
        lane = self._lanes[lines] = _Lane(leases, windows, self._epoch)
        if reserve_all(lane.buckets, amount_nusd)[1] < 0:
            return self._reserved(lines, windows, leases, amount_nusd, amount_nusd, [], lane.buckets)
        async with self._lock(lines[0].org_id):
            return await self._reserve_slow(lines, windows, leases, amount_nusd, min_clamp_nusd)

    def _reserved(
        self,
        lines: tuple[CapLine, ...],
        windows: tuple[Window, ...],
        leases: list[_Lease],
        taken: int,
        asked: int,
        monitored: list[Refusal],
        buckets: list[Bucket] | None = None,
    ) -> ReserveResult:
        """The reservation of `taken` (of `asked`) on `leases` (`buckets`: theirs, never changed)."""
        stamp = time.monotonic()
        for lease in leases:
            lease.last_used = stamp
        if buckets is None:
            buckets = [lease.bucket for lease in leases]
        reservation = Reservation(new_reservation_id(), taken, lines, windows, buckets)
        clamp = taken if taken < asked else None
        return ReserveResult(reservation, None, monitored, self._drain_alerts(), clamp)

    async def _reserve_slow(
        self,
        lines: tuple[CapLine, ...],
        windows: tuple[Window, ...],
        leases: list[_Lease],
        amount: int,
        min_clamp: int,
    ) -> ReserveResult:
        buckets = [lease.bucket for lease in leases]
        monitored: list[Refusal] = []
        refused_at = 0
        for _ in range(3):
            refused_at = reserve_all(buckets, amount)[1]
            if refused_at < 0:
                return self._reserved(lines, windows, leases, amount, amount, monitored)
            short = [i for i, b in enumerate(buckets) if b.available_nusd < amount]
            if not short:
                continue
            needs = [amount - max(0, buckets[i].available_nusd) for i in short]
            wants = [amount * self.settings.requests_per_slice for _ in short]
            synced = await self._sync([leases[i] for i in short], needs, wants)
            refused: list[tuple[int, _Synced]] = []
            for i, s in zip(short, synced, strict=True):
                if s.would_refuse:
                    if lines[i].enforced:
                        refused.append((i, s))
                    else:
                        monitored.append(refusal_of(lines[i], windows[i], s.spent, s.reserved - s.granted, amount))
            if refused:
                return await self._clamp_or_refuse(lines, windows, leases, amount, min_clamp, refused, monitored)
        # Other tasks of this process kept taking the slices just grown: give up (spuriously).
        i = refused_at
        spent, reserved = await self._totals(leases[i])
        return ReserveResult(None, refusal_of(lines[i], windows[i], spent, reserved, amount), monitored)

    async def _clamp_or_refuse(
        self,
        lines: tuple[CapLine, ...],
        windows: tuple[Window, ...],
        leases: list[_Lease],
        amount: int,
        min_clamp: int,
        refused: list[tuple[int, _Synced]],
        monitored: list[Refusal],
    ) -> ReserveResult:
        first, s = refused[0]
        refusal = refusal_of(lines[first], windows[first], s.spent, s.reserved, amount)
        if not all(lines[i].clamps for i, _ in refused):
            return ReserveResult(None, refusal, monitored, self._drain_alerts())
        free = {i: max(0, s.free) for i, s in refused}
        buckets = [lease.bucket for lease in leases]
        fit = min(max(0, b.available_nusd) + free.get(i, 0) for i, b in enumerate(buckets) if lines[i].enforced)
        if fit < max(min_clamp, 1) or fit >= amount:
            return ReserveResult(None, refusal, monitored, self._drain_alerts())
        short = [i for i, b in enumerate(buckets) if b.available_nusd < fit]
        needs = [fit - max(0, buckets[i].available_nusd) for i in short]
        synced = await self._sync([leases[i] for i in short], needs, needs)
        if any(s.would_refuse and lines[i].enforced for i, s in zip(short, synced, strict=True)):
            return ReserveResult(None, refusal, monitored, self._drain_alerts())
        if reserve_all(buckets, fit)[1] >= 0:
            return ReserveResult(None, refusal, monitored, self._drain_alerts())
        return self._reserved(lines, windows, leases, fit, amount, monitored)

    async def _totals(self, lease: _Lease) -> tuple[int, int]:
        """The bucket's spent and reserved in Redis, with this instance's unreported spend moved
        from reserved to spent."""
        spent, reserved = await self.redis.totals(lease.key)
        unreported = lease.bucket.spent_nusd - lease.spent_reported
        return spent + unreported, max(0, reserved - unreported)

    async def settle(self, reservation: Reservation, actual_nusd: int) -> list[ThresholdAlert]:
        check_amount(actual_nusd, "actual_nusd")
        if reservation.done:
            return self._drain_alerts()
        reservation.done = True
        buckets: list[Bucket] = reservation.handle
        overshoot = actual_nusd - reservation.amount_nusd
        if overshoot > 0:
            # The provider billed more than reserved: the slice absorbs it, so that Redis (which
            # holds `capacity - reported spend`) records the overshoot at the next sync.
            for bucket in buckets:
                bucket.grow(overshoot)
        settle_all(buckets, reservation.amount_nusd, actual_nusd)
        return self._drain_alerts()

    async def release(self, reservation: Reservation) -> None:
        if reservation.done:
            return
        reservation.done = True
        release_all(reservation.handle, reservation.amount_nusd)

    async def snapshot(self, line: CapLine, *, now: datetime | None = None) -> tuple[int, int]:
        window = window_of(line.window, now or utc_now())
        lease = self._leases.get((line.org_id, line.level, line.entity_id, window.id))
        if lease is None:
            return await self.redis.snapshot(line, now=now)
        return await self._totals(lease)

    # -- background: report, renew, return ------------------------------------------------------

    async def sync_now(self, *, returning: bool = False) -> None:
        """Report spend and renew every lease now; with `returning`, also give back every unused
        slice (as on idle or shutdown).

        Raises:
            StoreUnavailable: Redis cannot be reached.
        """
        await self._tick(force=True, returning=returning)

    async def _tick(self, *, force: bool = False, returning: bool = False) -> None:
        now = time.monotonic()
        s = self.settings
        by_org: dict[str, list[_Lease]] = {}
        for lease in list(self._leases.values()):
            by_org.setdefault(lease.line.org_id, []).append(lease)
        for org, leases in by_org.items():
            async with self._lock(org):
                due: list[_Lease] = []
                for lease in leases:
                    b = lease.bucket
                    if (returning or now - lease.last_used >= s.idle_s) and b.available_nusd > 0:
                        b.shrink(b.available_nusd)  # local first; losing a race to a reserve is fine
                    unreported = b.spent_nusd != lease.spent_reported
                    renew = lease.holds > 0 and now - lease.last_sync >= s.ttl_s / 3
                    resized = b.limit_nusd != lease.capacity_synced  # returned, or grown by an overshoot
                    if force or renew or resized or (unreported and now - lease.last_sync >= s.sync_interval_s):
                        due.append(lease)
                if due:
                    await self._sync(due, [0] * len(due), [0] * len(due))
                # Forget the leases of windows that have ended once nothing is held or in flight.
                # (Current windows keep theirs: a request may be using the object right now.)
                t = unix_seconds(utc_now())
                for lease in leases:
                    b = lease.bucket
                    ended = lease.window.end is not None and lease.window.end <= t + lease.clock_skew_s
                    settled = b.used_nusd == b.spent_nusd == lease.spent_reported == b.limit_nusd
                    if ended and settled and lease.capacity_synced == b.limit_nusd:
                        del self._leases[lease.parts]
                        self._epoch += 1
                        self._lanes.clear()

    async def _background(self) -> None:
        period = min(self.settings.sync_interval_s, self.settings.idle_s) / 2
        while True:
            await asyncio.sleep(period)
            try:
                await self._tick()
            except StoreUnavailable:
                log.debug("spend: lease sync skipped, redis is unavailable")
            except Exception:
                log.exception("spend: lease sync failed")

    async def close(self) -> None:
        """Give back every unused slice and report all spend, then close the Redis store."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self.sync_now(returning=True)
        except StoreUnavailable:
            log.warning("spend: leases could not be returned; they count as spent until they expire")
        await self.redis.close()
