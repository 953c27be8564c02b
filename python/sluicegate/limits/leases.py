"""Limit leases: most requests are admitted locally, from slices of the current slot.

For each window line (requests or tokens per window) this instance may hold a lease: room that
Redis has already counted in the current slot as if admitted, which the instance then hands out
locally with no network. A lease is valid for the slot it was taken in only (by the caller's
clock): admissions from it happen in the slot they are counted in, so the sliding-window bound of
`redis_store` holds exactly across instances, with no over-admission at all. Only when a line's
room runs short does the instance call Redis (`lua/acquire.lua`, one call per organization for all
the lines of the request that need it), asking for the request's cost plus a slice.

Sizing. A slice pays for about `requests_per_slice` requests like the one asking at the recent
local rate (the number admitted locally in the previous slot, or twice this slot's so far, capped
by `requests_per_slice`), but Redis grants at most `1/free_divisor` of what the line has free after
the request: far from the limit a slice lasts many requests, near it slices shrink to exactly one
request's cost. Under load (more than `requests_per_slice` requests per slot per instance) that is
one Redis round trip per `requests_per_slice` requests (256 by default; measured in
`benches/bench_limits.py`, recorded in BENCHMARKS.md).

Tolerance: under-admission only. Room counted for one instance is unavailable to the others until
it is used or given back: near the limit a request may be refused while another instance holds an
unused slice (at most `1/free_divisor` of the room free when it was granted). Unused room is given
back once its slot ends: the give-back (`slot:-room`) rides on the next script call for the
organization, or on the background flush every `flush_interval_s`; a crashed instance never gives
its slices back, and they count until they leave the window (as admissions would: conservative).

Tokens lines. A finish moves a grant from its estimate to the actual count: while the grant's slot
is the lease's current slot the difference is settled against the local room (exact); otherwise it
is batched with the give-backs. Until the batch is sent (at most about `flush_interval_s`), Redis
counts the estimate instead of the actual: an overshoot not yet sent lets other instances admit up
to that overshoot more than the actual count allows, an undershoot refuses a little early.

Refusals. A burst far above a limit would otherwise cost a round trip per refused request: once
Redis refuses a line for a cost in a slot, this instance refuses that cost (and larger ones) on the
line locally for the rest of the slot, with the retry-after Redis gave. Room can only appear within
a slot through other instances' batched give-backs and settlements, so the tolerance is again
under-admission, for at most one slot; a refused burst costs one round trip per slot and line.

The request path. The lease state is Rust's (`_core.Lease`); a caller's tuple of window lines has a
lane (its leases), and while every line has room in the current slot an acquire is one call
(`_core.lease_take`: roll, check, take, the lines' states) and its finish another
(`_core.lease_finish`: settle the tokens lines); everything else above is this module's slow path,
which reads and writes the same leases. The flush forgets a lease with nothing held or owed and
no admission in the current or the previous slot; lanes made before are rebuilt on their next call.

Concurrent lines are not leased: each acquire that has one makes one script call (carrying the
lease requests and the batched adjustments of the organization with it), and each finish one more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from sluicegate._core import MAX_COST, Lease, lease_finish, lease_take
from sluicegate.limits.lines import CounterName, Grant, LimitLine, LimitResult, LineState
from sluicegate.limits.redis_store import RedisLimitStore
from sluicegate.limits.settings import LimitLeaseSettings
from sluicegate.limits.store import (
    acquire_args,
    clock_skew_ms,
    finish_deltas,
    finish_now,
    new_grant_id,
    system_ms,
)
from sluicegate.spend.store import StoreUnavailable

__all__ = ["LeasedLimitStore"]

log = logging.getLogger("sluicegate.limits")
_state_of = tuple.__new__  # a LineState without its Python-level constructor (one per line per call)


class _Lane:
    """The leases of one tuple of lines (a caller's limits), for the request path's one call
    (`lease_take`, `lease_finish`); valid while no lease was forgotten since (`epoch`)."""

    __slots__ = ("epoch", "leases")

    def __init__(self, leases: tuple[Lease, ...], epoch: int) -> None:
        self.leases, self.epoch = leases, epoch


class LeasedLimitStore:
    """Rate limits in Redis, admitted locally from leased slices of the current slot (see the
    module docstring).

    Arguments:
        redis: the Redis store whose client, scripts and keys it uses (closed with it).
        settings: the lease settings.
    """

    def __init__(self, redis: RedisLimitStore, settings: LimitLeaseSettings) -> None:
        self.redis = redis
        self.settings = settings
        self.slot_ms = redis.slot_ms
        self._leases: dict[CounterName, Lease] = {}
        # Per tuple of lines (a caller's limits, the same tuple on every call): their leases.
        self._lanes: dict[tuple[LimitLine, ...], _Lane] = {}
        self._epoch = 0  # moves when a lease is forgotten: lanes made before are rebuilt
        self._locks: dict[str, asyncio.Lock] = {}
        self._task: asyncio.Task[None] | None = None
        self._skew_ms = 0
        self._flights: dict[CounterName, int] = {}  # concurrent lines: last count seen

    @property
    def calls(self) -> int:
        """Redis round trips so far."""
        return self.redis.calls

    def _lock(self, org: str) -> asyncio.Lock:
        lock = self._locks.get(org)
        if lock is None:
            lock = self._locks[org] = asyncio.Lock()
        return lock

    def _lease(self, line: LimitLine) -> Lease:
        name = line.counter_name
        lease = self._leases.get(name)
        if lease is None:
            lease = self._leases[name] = Lease(line)
        elif lease.line is not line and lease.line != line:
            lease.line = line  # a changed limit: Redis gets it on the next call
        return lease

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._background())

    def _want(self, lease: Lease, cost: int) -> int:
        """The extra room to ask for beyond `cost`: a slice for the recent local rate."""
        n = min(self.settings.requests_per_slice, max(1, lease.n_prev, 2 * lease.n_used))
        return cost * (n - 1)

    def _state(self, lease: Lease, t: int) -> LineState:
        remaining, reset = lease.state(t, self.slot_ms)
        return LineState(lease.line, remaining, reset, 0)

    # -- acquire ----------------------------------------------------------------------------------

    async def acquire(
        self, lines: Sequence[LimitLine], costs: Sequence[int], enforce: Sequence[bool], *, now_ms: int | None = None
    ) -> LimitResult:
        key = lines if type(lines) is tuple else tuple(lines)
        lane = self._lanes.get(key)
        if lane is not None and lane.epoch == self._epoch and len(enforce) == len(key):
            # The common case: every line has room in this slot. One call, no network.
            t = system_ms() if now_ms is None else now_ms
            taken = self._take(lane, key, tuple(costs), t, clock_skew_ms(now_ms))
            if taken is not None:
                return taken
        t, lines, costs, mask = acquire_args(lines, costs, enforce, now_ms)
        gid = new_grant_id()
        skew = clock_skew_ms(now_ms)
        self._skew_ms = skew
        if not lines:
            return LimitResult(Grant(gid, (), (), t, clock_skew_ms=skew))
        if len({line.org_id for line in lines}) > 1:
            raise ValueError("one acquire covers the limits of one organization")
        self._start()
        s = t // self.slot_ms
        leases: list[Lease | None] = []
        fast = True
        full = -1
        for i, (line, cost) in enumerate(zip(lines, costs, strict=True)):
            if line.kind == "concurrent":
                leases.append(None)
                fast = False
                continue
            lease = self._lease(line)
            lease.roll(s)
            leases.append(lease)
            if lease.slot != s or lease.room < cost:
                fast = False
                if full < 0 and mask >> i & 1 and lease.full_for(cost, s):
                    full = i
        if full >= 0:
            return self._refused_locally(lines, leases, full, t)
        lane = None
        if None not in leases:  # window lines only: the next calls can take the short way
            if len(self._lanes) >= 10_000:
                self._lanes.clear()
            lane = self._lanes[lines] = _Lane(tuple(leases), self._epoch)  # type: ignore[arg-type]
        if fast and lane is not None:
            taken = self._take(lane, lines, costs, t, skew, gid)
            assert taken is not None  # every lease was just seen with room
            return taken
        short = any(
            lease is not None and (lease.slot != s or lease.room < cost)
            for lease, cost in zip(leases, costs, strict=True)
        )
        if not short:
            result = await self._remote(lines, costs, mask, leases, t, s, gid, skew)
        else:
            async with self._lock(lines[0].org_id):
                result = await self._remote(lines, costs, mask, leases, t, s, gid, skew)
        if result.grant is not None and lane is not None:
            result.grant.handle = lane  # its finish takes the short way too
        return result

    def _take(
        self, lane: _Lane, lines: tuple[LimitLine, ...], costs: tuple[int, ...], t: int, skew: int, gid: str = ""
    ) -> LimitResult | None:
        """Admit from the lane's leases alone (`lease_take`), or None when one lacks room (nothing
        taken)."""
        taken = lease_take(lane.leases, costs, t, self.slot_ms)
        if taken is None:
            return None
        self._skew_ms = skew
        tickets, held = taken
        states = [_state_of(LineState, (line, left, reset, 0)) for line, (left, reset) in zip(lines, held, strict=True)]
        grant = Grant(gid or new_grant_id(), lines, costs, t, tickets, lane, False, skew, in_flight=False)
        return LimitResult(grant, None, [], states)

    async def _remote(
        self,
        lines: tuple[LimitLine, ...],
        costs: tuple[int, ...],
        mask: int,
        leases: list[Lease | None],
        t: int,
        s: int,
        gid: str,
        skew: int,
    ) -> LimitResult:
        """Take what local room covers, ask Redis for the rest in one call (which also tops up the
        request's other leases running low and carries the organization's batched adjustments);
        roll the local part back if Redis refuses or is down."""
        tickets: dict[int, int] = {}
        remote: list[int] = []
        for i, (lease, cost) in enumerate(zip(leases, costs, strict=True)):
            if lease is not None:
                lease.roll(s)
            if lease is not None and lease.slot == s and lease.room >= cost:
                lease.room -= cost
                tickets[i] = lease.counted_slot
            else:
                remote.append(i)
        if not remote:  # another task refilled the room while this one waited for the lock
            return self._admitted(lines, costs, leases, tickets, {}, t, gid, skew)
        # (index in the request, need): the lines the request needs, then top-ups of its others.
        asks: list[tuple[int, int]] = [(i, costs[i]) for i in remote]
        for i in tickets:
            lease = leases[i]
            assert lease is not None
            if lease.room * 2 < self._want(lease, costs[i]):
                asks.append((i, 0))
        call_lines: list[LimitLine] = []
        per_line: list[tuple[int, int, int, str]] = []
        carried: list[tuple[Lease, dict[int, int]]] = []
        for i, need in asks:
            line, lease = lines[i], leases[i]
            if lease is None:
                per_line.append((mask >> i & 1, need, 0, ""))
            else:
                want = self._want(lease, costs[i]) if lease.slot == s else 0
                if need == 0:
                    want = max(0, want - lease.room)
                per_line.append((mask >> i & 1 if need else 0, need, want, lease.adjustments()))
                carried.append((lease, lease.pending))
            call_lines.append(line)
        in_call = {line.counter_name for line in call_lines}
        for name, lease in self._leases.items():
            if name not in in_call and lease.line.org_id == lines[0].org_id and lease.pending:
                call_lines.append(lease.line)
                per_line.append((0, 0, 0, lease.adjustments()))
                carried.append((lease, lease.pending))
        try:
            refused, rows = await self.redis.acquire_raw(
                call_lines, t, gid, per_line, divisor=self.settings.free_divisor
            )
        except BaseException:
            self._untake(leases, costs, tickets)
            raise
        for lease, snapshot in carried:
            lease.sent(snapshot)
        for (i, _), row in zip(asks, rows, strict=False):
            lease = leases[i]
            if lease is not None:
                lease.counted, lease.reset_at = row[2], t + row[3]
        by_index = dict(zip(remote, rows, strict=False))
        for i, row in by_index.items():
            if leases[i] is None:
                self._flights[lines[i].counter_name] = row[2]
        if refused:
            self._untake(leases, costs, tickets)
            r = remote[refused - 1]
            full = leases[r]
            if full is not None and full.slot == s:
                # Refuse this cost locally for the rest of the slot (see the module docstring).
                row = by_index[r]
                full.full_need = min(full.full_need or costs[r], costs[r])
                full.retry_at = -1 if row[4] < 0 else t + row[4]
            states = self._states(lines, leases, by_index, t)
            return LimitResult(None, states[r], [], states)
        for (i, need), row in zip(asks, rows, strict=False):
            lease = leases[i]
            if lease is None:
                continue
            granted, slot = row[0], row[1]
            if lease.slot == s:
                if slot != lease.counted_slot and lease.room:
                    lease.owe(lease.counted_slot, -lease.room)
                    lease.room = 0
                lease.counted_slot = slot
                lease.room += granted - need
            elif granted > need:  # a clock behind the lease's slot: nothing is leased
                lease.owe(slot, -(granted - need))
        result = self._admitted(lines, costs, leases, tickets, by_index, t, gid, skew)
        result.monitored = [result.states[i] for i, row in by_index.items() if row[5] and not mask >> i & 1]
        return result

    def _refused_locally(
        self, lines: tuple[LimitLine, ...], leases: list[Lease | None], full: int, t: int
    ) -> LimitResult:
        """A refusal without a round trip: Redis refused this line for this cost earlier in the
        slot. States are this instance's latest view."""
        states: list[LineState] = []
        for line, lease in zip(lines, leases, strict=True):
            if lease is None:
                seen = self._flights.get(line.counter_name, 0)
                states.append(LineState(line, max(0, line.limit - seen), 0, 0))
            else:
                states.append(self._state(lease, t))
        lease = leases[full]
        assert lease is not None
        retry = -1 if lease.retry_at < 0 else max(1, lease.retry_at - t)
        refused = LineState(lines[full], 0, states[full].reset_ms, retry)
        states[full] = refused
        return LimitResult(None, refused, [], states)

    @staticmethod
    def _untake(leases: list[Lease | None], costs: tuple[int, ...], tickets: dict[int, int]) -> None:
        for i in tickets:
            lease = leases[i]
            assert lease is not None
            lease.room += costs[i]

    def _admitted(
        self,
        lines: tuple[LimitLine, ...],
        costs: tuple[int, ...],
        leases: list[Lease | None],
        local: dict[int, int],
        rows: dict[int, tuple[int, int, int, int, int, int]],
        t: int,
        gid: str,
        skew: int,
    ) -> LimitResult:
        """The grant: `local` maps lines taken from leases to the slot they count in, `rows` has
        Redis's answer for the others."""
        tickets: list[int] = []
        for i, lease in enumerate(leases):
            if lease is not None:
                lease.n_used += 1
            tickets.append(local[i] if i in local else rows[i][1] if lease is not None else 0)
        grant = Grant(gid, lines, costs, t, tuple(tickets), None, False, skew)
        return LimitResult(grant, None, [], self._states(lines, leases, rows, t))

    def _states(
        self,
        lines: tuple[LimitLine, ...],
        leases: list[Lease | None],
        rows: dict[int, tuple[int, int, int, int, int, int]],
        t: int,
    ) -> list[LineState]:
        out: list[LineState] = []
        for i, (line, lease) in enumerate(zip(lines, leases, strict=True)):
            row = rows.get(i)
            if lease is not None:
                state = self._state(lease, t)
                if row is not None and row[5]:
                    state = LineState(line, state.remaining, state.reset_ms, row[4])
                out.append(state)
            else:
                assert row is not None
                out.append(LineState(line, max(0, line.limit - row[2]), row[3], row[4] if row[5] else 0))
        return out

    # -- finish -----------------------------------------------------------------------------------

    async def finish(self, grant: Grant, actual_tokens: int | None, *, now_ms: int | None = None) -> None:
        if grant.done:
            return
        grant.done = True
        if not grant.lines:
            return
        lane = grant.handle
        try:
            if type(lane) is _Lane and lane.epoch == self._epoch:
                # Window lines only, their leases still held: settled in one call, no network.
                actual = None if actual_tokens is None else max(0, min(int(actual_tokens), MAX_COST))
                t = finish_now(grant, now_ms)
                lease_finish(lane.leases, grant.tickets, grant.costs, actual, t, self.slot_ms)
                return
            await self._finish(grant, finish_deltas(grant, actual_tokens), finish_now(grant, now_ms))
        except StoreUnavailable:
            log.warning("limits: a finish could not reach redis; its entries free after their ttl")
        except Exception:  # never raises: the ending of a call must not fail on its bookkeeping
            log.exception("limits: finish failed")

    async def _finish(self, grant: Grant, deltas: list[int], t: int) -> None:
        if grant.in_flight and any(line.kind == "concurrent" for line in grant.lines):
            # One call anyway: the window deltas go with it.
            keys, args = self.redis.finish_args(grant, deltas, t)
            await self.redis.run(self.redis.finish_script, keys, args)
            return
        s = t // self.slot_ms
        for line, ticket, delta in zip(grant.lines, grant.tickets, deltas, strict=True):
            if not delta:
                continue
            # Against the room of the same slot when it is still held (exact, no network), else owed.
            self._lease(line).settle(ticket, delta, s)

    async def counted(self, line: LimitLine, *, now_ms: int | None = None) -> int:
        """What `line` counts at `now_ms`: Redis's count, less this instance's unused room, plus its
        adjustments not sent yet (for tests and the admin API).

        Raises:
            StoreUnavailable: Redis cannot be reached.
        """
        t = now_ms if now_ms is not None else system_ms() + self._skew_ms
        s = t // self.slot_ms
        mine = 0
        lease = self._leases.get(line.counter_name)
        if lease is not None:
            oldest = s - line.window_s * 1000 // self.slot_ms
            mine = sum(d for k, d in lease.pending.items() if k >= oldest)
            mine -= lease.room if lease.counted_slot >= oldest else 0  # room is not an admission
        return max(0, await self.redis.counted(line, now_ms=t) + mine)

    # -- background: give back, send batched settlements --------------------------------------------

    async def flush(self, *, now_ms: int | None = None, returning: bool = False) -> None:
        """Send every batched adjustment now (unused room of ended slots, settlements); with
        `returning`, give back the current slot's room too (as at shutdown).

        Raises:
            StoreUnavailable: Redis cannot be reached (the adjustments stay batched).
        """
        t = now_ms if now_ms is not None else system_ms() + self._skew_ms
        s = t // self.slot_ms
        by_org: dict[str, list[Lease]] = {}
        for lease in list(self._leases.values()):
            by_org.setdefault(lease.line.org_id, []).append(lease)
        epoch = self._epoch
        for org, leases in by_org.items():
            async with self._lock(org):
                due: list[tuple[Lease, dict[int, int]]] = []
                for lease in leases:
                    lease.roll(s)
                    if returning and lease.room:
                        lease.owe(lease.counted_slot, -lease.room)
                        lease.room = 0
                    pending = lease.pending
                    if pending:
                        due.append((lease, pending))
                if due:
                    per_line = [(0, 0, 0, lease.adjustments()) for lease, _ in due]
                    await self.redis.acquire_raw([lease.line for lease, _ in due], t, new_grant_id(), per_line)
                    for lease, snapshot in due:
                        lease.sent(snapshot)
                # Forget leases with nothing held or owed and no admission in this slot or the one
                # before (a new one starts on the next request); the lanes holding them are rebuilt.
                for lease in leases:
                    if not lease.room and not lease.n_used and not lease.n_prev and not lease.pending:
                        self._leases.pop(lease.line.counter_name, None)
                        self._epoch += 1
                if self._epoch != epoch:
                    self._lanes.clear()

    async def _background(self) -> None:
        while True:
            await asyncio.sleep(self.settings.flush_interval_s)
            try:
                await self.flush()
            except StoreUnavailable:
                log.debug("limits: lease flush skipped, redis is unavailable")
            except Exception:
                log.exception("limits: lease flush failed")

    async def close(self) -> None:
        """Give back every unused slice and send the batched settlements, then close Redis."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self.flush(returning=True)
        except StoreUnavailable:
            log.warning("limits: leases could not be given back; they count until they leave the window")
        await self.redis.close()

    def held(self, line: LimitLine) -> dict[str, Any]:
        """This instance's lease on `line` (for tests and diagnostics)."""
        lease = self._leases.get(line.counter_name)
        if lease is None:
            return {"room": 0, "pending": {}}
        return {
            "room": lease.room,
            "slot": lease.slot,
            "counted_slot": lease.counted_slot,
            "pending": lease.pending,
        }
