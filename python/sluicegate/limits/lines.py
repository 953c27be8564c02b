"""Limit lines and what the stores answer.

A `LimitLine` is one rate limit as the stores see it: requests per window, tokens per window, or
requests in flight, on one entity (an organization, workspace, user or API key of one
organization). A request counts against every line that applies to it and acquires on all of them
at once; its `Grant` is finished once, on every ending.

```
acquire(lines, costs, enforce) ──► LimitResult
        │  .grant None: refused by .refused (429, retry after .refused.retry_after_ms)
        ▼
   forward the request  (headers from .states)
        │
        └── every ending ──► finish(grant, actual_tokens)
```

The counter of a line is named by (org, level, entity, kind, window_s, scope): a changed limit keeps
what is counted, a changed window is a new counter. The scope is empty for the model traffic's
limits; a limit on MCP tool calls has its own (`tool_scope`), so it never shares a counter with one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from sluicegate._core import MAX_COST
from sluicegate.spend.caps import Level

__all__ = [
    "KINDS",
    "MAX_LIMIT",
    "MAX_WINDOW_S",
    "CounterName",
    "Grant",
    "Kind",
    "LimitLine",
    "LimitResult",
    "LineState",
    "tool_scope",
]

Kind = Literal["requests", "tokens", "concurrent"]
KINDS: tuple[Kind, ...] = ("requests", "tokens", "concurrent")

MAX_LIMIT = MAX_COST  # 2**53 - 1: exact in Redis's Lua numbers too
MAX_WINDOW_S = 3600
CounterName = tuple[str, str, str, str, int, str]  # (org, level, entity, kind, window_s, scope)
_SCOPE = re.compile(r"[a-z0-9-]{0,40}")


def tool_scope(patterns: Iterable[str]) -> str:
    """The scope of a limit on the MCP tool calls matching `patterns` (`server/tool` globs): the same
    for the same set of patterns however written in order or case."""
    text = "\n".join(sorted({p.lower() for p in patterns}))
    return "tools-" + hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class LimitLine:
    """One rate limit on one entity, as the stores enforce it.

    Attributes:
        level: which kind of entity the limit is on.
        entity_id: the entity's id (for `org`, the organization's id).
        org_id: the organization the entity belongs to; every key of an organization shares one
            Redis hash tag, so one script acquires all its lines atomically.
        kind: `requests` or `tokens` per window, or `concurrent` requests in flight.
        limit: requests or tokens per window, or requests in flight, 1..=MAX_LIMIT.
        window_s: the window, 1..=3600 seconds (ignored for `concurrent`).
        scope: "" for a limit on model traffic; a limit on MCP tool calls, its `tool_scope`.

    Raises:
        ValueError: an empty id, a limit or window out of range, an unknown kind.
    """

    level: Level
    entity_id: str
    org_id: str
    kind: Kind
    limit: int
    window_s: int = 60
    scope: str = ""
    # What identifies the counter across limit changes (see `counter_name`), computed once: the
    # stores look it up several times per request.
    _counter: CounterName = field(init=False, repr=False, compare=False)
    _hash: int = field(init=False, repr=False, compare=False)  # the fields' hash, computed once

    def __post_init__(self) -> None:
        if not self.entity_id or not self.org_id:
            raise ValueError("a limit needs an entity id and an organization id")
        if self.level == "org" and self.entity_id != self.org_id:
            raise ValueError("an org limit's entity id is the organization's id")
        if self.kind not in KINDS:
            raise ValueError(f"a limit's kind is one of {', '.join(KINDS)}")
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or not 1 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"a limit must be a whole number 1..={MAX_LIMIT}")
        if isinstance(self.window_s, bool) or not isinstance(self.window_s, int):
            raise ValueError("window_s must be a whole number of seconds")
        if not 1 <= self.window_s <= MAX_WINDOW_S:
            raise ValueError(f"window_s must be 1..={MAX_WINDOW_S} seconds")
        if not isinstance(self.scope, str) or not _SCOPE.fullmatch(self.scope):
            raise ValueError("a limit's scope is up to 40 of a-z, 0-9 and -")
        window = 0 if self.kind == "concurrent" else self.window_s
        object.__setattr__(self, "_counter", (self.org_id, self.level, self.entity_id, self.kind, window, self.scope))
        fields = (self.level, self.entity_id, self.org_id, self.kind, self.limit, self.window_s, self.scope)
        object.__setattr__(self, "_hash", hash(fields))

    def __hash__(self) -> int:  # the compared fields' hash (as the generated one), computed once
        return self._hash

    @property
    def counter_name(self) -> CounterName:
        """What identifies the counter across limit changes: (org, level, entity, kind, window_s,
        scope), window_s 0 for `concurrent`."""
        return self._counter

    @property
    def windowed(self) -> bool:
        """A per-window line (requests or tokens), as opposed to `concurrent`."""
        return self.kind != "concurrent"


class LineState(NamedTuple):
    """A line after an acquire (or, for a refused request, as it stands).

    Attributes:
        line: the limit.
        remaining: what is left in the window after this call (0 when refused or exhausted).
        reset_ms: until everything counted now has left the window (`x-ratelimit-reset-*`); 0 when
            nothing is counted, and always 0 for `concurrent` lines (they free when calls end).
        retry_after_ms: until the request's cost would fit: set on the line that refused and on
            monitor lines that would have, 0 elsewhere. -1 means never: the cost is larger than
            the limit itself (`never` is True; answer without a retry-after). For a `concurrent`
            line it is a hint (1 s): a slot frees when some call ends.

    A named tuple, not a frozen dataclass: one is made per line on every admitted call, and a
    frozen dataclass's constructor costs several times a tuple's.
    """

    line: LimitLine
    remaining: int
    reset_ms: int
    retry_after_ms: int

    @property
    def never(self) -> bool:
        """The cost can never fit this line (it is above the limit)."""
        return self.retry_after_ms < 0


@dataclass(slots=True)
class Grant:
    """What one admitted request holds until `finish`.

    Attributes:
        id: unique id (also the name of its in-flight entries in Redis).
        lines: the lines it counted on.
        costs: its cost on each line (1 for requests and concurrent, the estimate for tokens).
        now_ms: when it was admitted, by the caller's clock.
        tickets: per line, what `finish` needs (the slot a window line counted it in; the entry of
            a concurrent line).
        handle: the store's own data.
        done: finished; a second finish is a no-op.
        clock_skew_ms: how far the caller's clock (`now_ms`) was from the system's at acquire (0
            in production); a finish without `now_ms` keeps to that clock.
        in_flight: whether it may hold entries of `concurrent` lines; a store that admitted it
            from window lines alone says False, so its `finish` need not look for them.
    """

    id: str
    lines: tuple[LimitLine, ...]
    costs: tuple[int, ...]
    now_ms: int
    tickets: tuple[int, ...] = ()
    handle: Any = None
    done: bool = False
    clock_skew_ms: int = 0
    in_flight: bool = True


@dataclass(slots=True)
class LimitResult:
    """What `acquire` decided.

    Attributes:
        grant: what the request holds, or None when refused (nothing is counted anywhere).
        refused: the first enforcing line that refused.
        monitored: non-enforcing lines that would have refused (the call went ahead and counted).
        states: every line's state after the call, in the order given (headers on successes).
    """

    grant: Grant | None
    refused: LineState | None = None
    monitored: list[LineState] = field(default_factory=list)
    states: list[LineState] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.grant is not None
