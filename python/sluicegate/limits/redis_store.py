"""The many-instance store: Redis holds every line, one Lua script call per acquire and per finish.

Keys. A window line (requests or tokens per window) is the hash
`<prefix>:{org:<org>}:lim:<level>:<entity>:<kind>:<window_s>s:<slot_ms>` (a field per slot number
holding what was counted in it, and `t`, their sum) plus the sorted set `<same>:z` of its slot
numbers; a concurrent line is the sorted set `<prefix>:{org:<org>}:lim:<level>:<entity>:concurrent`
of grant ids scored by expiry. Ids are percent-encoded, and every key of an organization carries
the hash tag `{org:<org>}`, so one script acquires all of a request's lines atomically, and on a
Redis Cluster (`redis+cluster://`, see `sluicegate.redis_scripts`) each call's keys are in one
slot, on one primary (the lines of one request belong to one organization); the tests run this
store's contract on a real cluster.

The algorithm is the one of `rust/src/limit/window.rs`, in Lua (`lua/acquire.lua`): an acquire in
slot `s` is admitted on an enforcing line only if the slots `s - W ..= s` plus its cost fit the
limit, so no interval of `window_s` ever admits more than the limit, whatever the number of
instances. Time comes from the caller (`now_ms`, else the system clock), never from Redis TIME;
keys get relative TTLs computed from that clock (a window line's keys live until their newest slot
has left the window, a concurrent set until its latest entry expires), so a test clock at another
date expires keys as that clock says.

Tolerances. Instances' clocks disagree by their skew: an instance whose clock is behind the newest
slot counted is counted as of that slot (longer in the window, never shorter), and an interval is
measured on one clock, so across instances the bound holds to within the clock skew (NTP: a few
ms, against 1 s slots). A call that redis-py retries after its reply was lost may count twice on
window lines (over-counting: refusals, never over-admission); concurrent entries are by grant id,
so a retry counts once. A finish that cannot reach Redis is dropped with a warning: its concurrent
entries free after `concurrency_ttl_s` and a tokens line keeps the estimate.

Faults are classified exactly as for spend: this store runs its scripts through
`sluicegate.spend.redis_store.RedisStore.run` (connect and read timeouts, one retry on a fresh
connection, StoreUnavailable for unreachable, loading, read-only, out-of-memory Redis, and a
breaker that fails fast for `redis_breaker_s`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib import resources
from typing import Any
from urllib.parse import quote

from sluicegate.limits.lines import CounterName, Grant, LimitLine, LimitResult
from sluicegate.limits.settings import LimitSettings
from sluicegate.limits.store import (
    acquire_args,
    clock_skew_ms,
    finish_deltas,
    finish_now,
    new_grant_id,
    result_of,
    system_ms,
)
from sluicegate.redis_scripts import RedisClient, ScriptRunner, connect
from sluicegate.spend.store import StoreUnavailable

__all__ = ["RedisLimitStore", "line_keys", "load_script"]

log = logging.getLogger("sluicegate.limits")

_FIELDS = 6  # per line in acquire.lua's reply


def load_script(name: str) -> str:
    """The text of `lua/<name>.lua` with `lua/common.lua` in front."""
    folder = resources.files("sluicegate.limits") / "lua"
    return (folder / "common.lua").read_text() + "\n" + (folder / f"{name}.lua").read_text()


def _esc(value: str) -> str:
    return quote(value, safe="._@-")


def line_keys(prefix: str, line: LimitLine, slot_ms: int) -> tuple[str, str]:
    """The two keys of `line` (the scripts' KEYS): a window line's hash and its set of slots; a
    concurrent line's set, twice."""
    base = f"{prefix}:{{org:{_esc(line.org_id)}}}:lim:{line.level}:{_esc(line.entity_id)}:{line.kind}"
    if line.scope:  # a limit on MCP tool calls: a counter of its own
        base += f":{line.scope}"
    if line.kind == "concurrent":
        return (base, base)
    key = f"{base}:{line.window_s}s:{slot_ms}"
    return (key, key + ":z")


class RedisLimitStore:
    """Rate limits counted in Redis (see the module docstring).

    Arguments:
        client: a redis-py asyncio client (bytes replies); the store closes it.
        prefix: prefix of every key.
        slot_ms: the sliding windows' slot.
        concurrency_ttl_s: an in-flight entry never finished stops counting after this.
        breaker_s: how long to fail fast after a connection failure.

    Attributes:
        calls: Redis round trips made so far (one per script call).
    """

    def __init__(
        self,
        client: RedisClient,
        *,
        prefix: str = "sg",
        slot_ms: int = 1000,
        concurrency_ttl_s: float = 600.0,
        breaker_s: float = 0.25,
    ) -> None:
        # The policy stores' one script runner: the same error classes and breaker as spend's.
        self.runner = ScriptRunner(breaker_s, client)
        self.client = client
        self.prefix = prefix
        self.slot_ms = slot_ms
        self.ttl_ms = max(1, int(concurrency_ttl_s * 1000))
        self.acquire_script = client.register_script(load_script("acquire"))
        self.finish_script = client.register_script(load_script("finish"))
        self._keys: dict[CounterName, tuple[str, str]] = {}

    @classmethod
    def from_settings(cls, settings: LimitSettings) -> RedisLimitStore:
        """A store with its own connection pool, configured from `[limits]`."""
        client = connect(
            settings.redis_url.reveal(),
            timeout_s=settings.redis_timeout_s,
            max_connections=settings.redis_max_connections,
        )
        return cls(
            client,
            prefix=settings.key_prefix,
            slot_ms=settings.slot_ms,
            concurrency_ttl_s=settings.concurrency_ttl_s,
            breaker_s=settings.redis_breaker_s,
        )

    @property
    def calls(self) -> int:
        """Redis round trips so far."""
        return self.runner.calls

    async def run(self, script: Any, keys: list[str], args: list[Any]) -> list[int]:
        """Call a registered script; every store-down failure is StoreUnavailable."""
        return await self.runner.run(script, keys, args)

    def keys_of(self, lines: Sequence[LimitLine]) -> list[str]:
        """Both keys of each line, in order (the scripts' KEYS).

        Raises:
            ValueError: lines of more than one organization.
        """
        if len({line.org_id for line in lines}) > 1:
            raise ValueError("one acquire covers the limits of one organization")
        keys: list[str] = []
        for line in lines:
            pair = self._keys.get(line.counter_name)
            if pair is None:
                if len(self._keys) > 100_000:
                    self._keys.clear()
                pair = self._keys[line.counter_name] = line_keys(self.prefix, line, self.slot_ms)
            keys += pair
        return keys

    def line_args(self, line: LimitLine) -> tuple[str, int]:
        """A line's kind and window size for the scripts: ('w', window slots) or ('c', ttl_ms)."""
        if line.kind == "concurrent":
            return ("c", self.ttl_ms)
        return ("w", line.window_s * 1000 // self.slot_ms)

    async def acquire_raw(
        self,
        lines: Sequence[LimitLine],
        now_ms: int,
        gid: str,
        per_line: Sequence[tuple[int, int, int, str]],
        divisor: int = 1,
    ) -> tuple[int, list[tuple[int, int, int, int, int, int]]]:
        """One acquire.lua call: per line (enforce, need, want, adjustments csv). Returns the
        1-based refusing line (0: admitted) and per line (granted, slot, counted, reset_ms,
        retry_ms, would_refuse).

        Raises:
            StoreUnavailable: Redis cannot be reached (nothing is counted).
        """
        keys = self.keys_of(lines)
        args: list[Any] = [now_ms, gid, self.slot_ms, divisor]
        for line, (enforce, need, want, adjustments) in zip(lines, per_line, strict=True):
            kind, size = self.line_args(line)
            args += (kind, line.limit, size, enforce, need, want, adjustments)
        raw = await self.run(self.acquire_script, keys, args)
        rows = [tuple(raw[1 + _FIELDS * i : 1 + _FIELDS * (i + 1)]) for i in range(len(lines))]
        return int(raw[0]), rows  # type: ignore[return-value]

    async def acquire(
        self, lines: Sequence[LimitLine], costs: Sequence[int], enforce: Sequence[bool], *, now_ms: int | None = None
    ) -> LimitResult:
        t, lines, costs, mask = acquire_args(lines, costs, enforce, now_ms)
        gid = new_grant_id()
        skew = clock_skew_ms(now_ms)
        if not lines:
            return LimitResult(Grant(gid, (), (), t, clock_skew_ms=skew))
        per_line = [(mask >> i & 1, cost, 0, "") for i, cost in enumerate(costs)]
        refused, rows = await self.acquire_raw(lines, t, gid, per_line)
        grant = None
        if refused == 0:
            grant = Grant(gid, lines, costs, t, tuple(row[1] for row in rows), None, False, skew)
        would = sum(1 << i for i, row in enumerate(rows) if row[5])
        states = [
            (row[2], max(0, line.limit - row[2]), row[3], row[4] if row[5] else 0)
            for line, row in zip(lines, rows, strict=True)
        ]
        return result_of(lines, mask, refused - 1, would, states, grant)

    def finish_args(self, grant: Grant, deltas: Sequence[int], now_ms: int) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of finish.lua for the lines of `grant` that have something to do."""
        lines: list[LimitLine] = []
        args: list[Any] = [now_ms, grant.id, self.slot_ms]
        for line, ticket, delta in zip(grant.lines, grant.tickets, deltas, strict=True):
            if line.kind != "concurrent" and delta == 0:
                continue
            kind, size = self.line_args(line)
            args += (kind, size, ticket, delta)
            lines.append(line)
        return self.keys_of(lines), args

    async def finish(self, grant: Grant, actual_tokens: int | None, *, now_ms: int | None = None) -> None:
        if grant.done:
            return
        grant.done = True
        try:
            keys, args = self.finish_args(grant, finish_deltas(grant, actual_tokens), finish_now(grant, now_ms))
            if keys:
                await self.run(self.finish_script, keys, args)
        except StoreUnavailable:
            log.warning("limits: a finish could not reach redis; its entries free after their ttl")
        except Exception:  # never raises: the ending of a call must not fail on its bookkeeping
            log.exception("limits: finish failed")

    async def counted(self, line: LimitLine, *, now_ms: int | None = None) -> int:
        """What `line` counts at `now_ms` (for tests and the admin API): one acquire of cost 0 on a
        monitor line, which changes nothing.

        Raises:
            StoreUnavailable: Redis cannot be reached.
        """
        t = system_ms() if now_ms is None else now_ms
        _, rows = await self.acquire_raw([line], t, new_grant_id(), [(0, 0, 0, "")])
        return rows[0][2]

    async def close(self) -> None:
        await self.client.aclose(close_connection_pool=True)
