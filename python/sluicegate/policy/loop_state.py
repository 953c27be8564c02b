"""The state of loop detection: one process's memory (`LocalLoopState`) or Redis, shared by every
instance (`RedisLoopState`, one Lua script call a request for all of a key's loop state). Both run
the same steps, on the caller's clock (`now_ms`), never the store's:

1. A `rate` rule that enforces and whose key is blocked: refused (`cooling`), nothing counted.
2. A `repeat` rule that enforces and whose request is blocked: refused (`cooling`), nothing counted.
3. `rate`: the request counts in its key's bucket `now // window`; the baseline is the sum of the
   `baseline_s / window_s` buckets before it (summed once per bucket and kept: the past buckets
   change no more; a rule with another `window_s` starts the key's buckets over). A jump is `count >= min_requests` and
   `count * buckets > factor * baseline_sum` (compared in integers: the factor in thousandths),
   judged only once the key has been seen over the whole baseline (since the start of its first
   bucket): a new key, or one back after more than the baseline's silence, has no baseline to
   jump from (its identical requests are still `repeat`'s to catch).
4. `repeat`: the request's time joins its (key, hash) window; more than `max_repeats` times
   within `window_s` is a loop. (At most `max_repeats + 1` times are kept: that is all it takes.)
5. A detection, by action: `monitor` -> `monitor` (recorded); `block` -> the cool-down starts and this
   request is refused (`block`; a repeat's window is emptied, so after the cool-down the request
   gets `max_repeats` tries again); `throttle` -> the first request after each
   `throttle_interval_s` goes through (`throttle_pass`), the others are refused (`throttle`). A
   rule that does not enforce on this call (monitor mode, or outside its rollout) records
   `would_block` or `would_throttle` and changes nothing. A refusal by `rate` stops before `repeat`.

Redis keys (every key of an organization carries the hash tag `{org:<org>}`, so each call's keys are
in one slot and the script runs on a Redis Cluster, `redis+cluster://`; tested there):
`<prefix>:{org:<org>}:loop:<key>` (a hash: the key's rate buckets `b:<n>`, when it was `first` seen,
its block `until` and throttle `last`) and `<prefix>:{org:<org>}:loop:<key>:h:<hash>` (a hash: the
request's recent times `ts`, comma-joined, its `until` and `last`). Their time to live is computed
from the caller's clock and renewed on each call.

Faults: as the spend store (`spend.redis_store`): timeouts, one immediate retry on a fresh
connection, and any connection-level failure (or a LOADING, READONLY, OOM... reply) raises
`StoreUnavailable`, then calls fail fast for `redis_breaker_s`.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Literal, Protocol
from urllib.parse import quote

from sluicegate.policy.loop_rules import ACTION_STRENGTH, LoopLine, LoopSettings
from sluicegate.redis_scripts import RedisClient, ScriptRunner, connect

__all__ = ["LocalLoopState", "LoopCheck", "LoopState", "RedisLoopState", "Verdict", "create_loop_state"]

Outcome = Literal["ok", "monitor", "would_block", "would_throttle", "block", "cooling", "throttle", "throttle_pass"]
OUTCOMES: tuple[Outcome, ...] = (
    "ok",
    "monitor",
    "would_block",
    "would_throttle",
    "block",
    "cooling",
    "throttle",
    "throttle_pass",
)
REFUSED: frozenset[str] = frozenset({"block", "cooling", "throttle"})


@dataclass(frozen=True, slots=True)
class LoopCheck:
    """One rule to check on a call, and whether it enforces on this call (mode and rollout)."""

    line: LoopLine
    enforce: bool


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one rule found.

    Attributes:
        outcome: see the module docstring; `block`, `cooling` and `throttle` refuse the call.
        count: repeat: the times this request was seen within the window (this one included, at
            most max_repeats + 1); rate: the key's requests in the current bucket.
        baseline_milli: rate: the baseline, requests per bucket, in thousandths.
        until_ms: refused: when the cool-down ends or the next throttled request may pass.
    """

    check: LoopCheck
    outcome: Outcome
    count: int = 0
    baseline_milli: int = 0
    until_ms: int = 0

    @property
    def refused(self) -> bool:
        return self.outcome in REFUSED


class LoopState(Protocol):
    async def check(
        self, org: str, key: str, digest: bytes, rate: LoopCheck | None, repeat: LoopCheck | None, now_ms: int
    ) -> list[Verdict]:
        """Count the call and judge it (the module docstring's steps); the verdicts of the rules
        given, in the order rate, repeat (a refusal by `rate` leaves `repeat` out).

        Raises:
            StoreUnavailable: the shared state cannot be reached.
        """
        ...

    async def close(self) -> None: ...


def _act(check: LoopCheck, last: int, now: int) -> tuple[Outcome, int]:
    """A detection's outcome, and the throttle's `last` after it."""
    rule = check.line.rule
    if rule.action == "monitor":
        return "monitor", last
    if not check.enforce:
        return ("would_block" if rule.action == "block" else "would_throttle"), last
    if rule.action == "block":
        return "block", last
    if now - last >= rule.throttle_interval_s * 1000:
        return "throttle_pass", now
    return "throttle", last


@dataclass(slots=True)
class _Key:
    buckets: dict[int, int] = field(default_factory=dict)
    first: int | None = None
    window: int = 0  # the bucket size the buckets count in (ms)
    base_for: tuple[int, int] = (0, 0)  # (current bucket, buckets) the cached baseline sum is for
    base_total: int = 0
    until: int = 0
    last: int = -(2**62)


@dataclass(slots=True)
class _Request:
    times: deque[int] = field(default_factory=deque)
    until: int = 0
    last: int = -(2**62)


class LocalLoopState:
    """Loop state in this process's memory: bounded LRU maps of keys and of (key, request) pairs
    (`max_tracked` each; the least recently seen are forgotten, and with them a cool-down)."""

    def __init__(self, max_tracked: int = 100_000) -> None:
        self.max_tracked = max_tracked
        self._keys: OrderedDict[tuple[str, str], _Key] = OrderedDict()
        self._requests: OrderedDict[tuple[str, str, bytes], _Request] = OrderedDict()

    def _get_key(self, name: tuple[str, str]) -> _Key:
        found = self._keys.get(name)
        if found is None:
            found = self._keys[name] = _Key()
            if len(self._keys) > self.max_tracked:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(name)
        return found

    def _get_request(self, name: tuple[str, str, bytes]) -> _Request:
        found = self._requests.get(name)
        if found is None:
            found = self._requests[name] = _Request()
            if len(self._requests) > self.max_tracked:
                self._requests.popitem(last=False)
        else:
            self._requests.move_to_end(name)
        return found

    async def check(
        self, org: str, key: str, digest: bytes, rate: LoopCheck | None, repeat: LoopCheck | None, now_ms: int
    ) -> list[Verdict]:
        return self.check_now(org, key, digest, rate, repeat, now_ms)

    def check_now(
        self, org: str, key: str, digest: bytes, rate: LoopCheck | None, repeat: LoopCheck | None, now_ms: int
    ) -> list[Verdict]:
        """`check`, without the coroutine (the benchmark's and the async method's body)."""
        now = now_ms
        ks = self._get_key((org, key)) if rate is not None else None
        if rate is not None and ks is not None and rate.enforce and ks.until > now:
            return [Verdict(rate, "cooling", until_ms=ks.until)]
        rs = self._get_request((org, key, digest)) if repeat is not None else None
        if repeat is not None and rs is not None and repeat.enforce and rs.until > now:
            return [Verdict(repeat, "cooling", until_ms=rs.until)]
        out: list[Verdict] = []
        if rate is not None and ks is not None:
            verdict = self._rate(rate, ks, now)
            out.append(verdict)
            if verdict.refused:
                return out
        if repeat is not None and rs is not None:
            out.append(self._repeat(repeat, rs, now))
        return out

    @staticmethod
    def _rate(check: LoopCheck, ks: _Key, now: int) -> Verdict:
        rule = check.line.rule
        window = rule.window_s * 1000
        n = rule.baseline_s // rule.window_s
        current = now // window
        buckets = ks.buckets
        if ks.window != window:  # a rule with another window: the buckets count in other units
            buckets.clear()
            ks.first, ks.window, ks.base_for = None, window, (0, 0)
        count = buckets[current] = buckets.get(current, 0) + 1
        if ks.first is None:
            ks.first = now
        if count == 1 and len(buckets) > n + 1:
            for old in [b for b in buckets if b < current - n]:
                del buckets[old]
        if ks.base_for != (current, n):  # the past buckets change no more: summed once a window
            ks.base_total = sum(c for b, c in buckets.items() if current - n <= b < current)
            ks.base_for = (current, n)
        total = ks.base_total
        factor = round(rule.factor * 1000)
        baseline = total * 1000 // n
        judged = ks.first <= (current - n) * window  # the key was seen over the whole baseline
        if not judged or count < rule.min_requests or count * n * 1000 <= factor * total:
            return Verdict(check, "ok", count, baseline)
        outcome, last = _act(check, ks.last, now)
        if outcome == "block":
            ks.until = now + rule.cooldown_s * 1000
            return Verdict(check, outcome, count, baseline, ks.until)
        ks.last = last
        until = last + rule.throttle_interval_s * 1000 if outcome == "throttle" else 0
        return Verdict(check, outcome, count, baseline, until)

    @staticmethod
    def _repeat(check: LoopCheck, rs: _Request, now: int) -> Verdict:
        rule = check.line.rule
        times = rs.times
        edge = now - rule.window_s * 1000
        while times and times[0] <= edge:
            times.popleft()
        if times and times[-1] > now:  # another instance's clock, a little behind: keep them in order
            bisect.insort(times, now)
        else:
            times.append(now)
        while len(times) > rule.max_repeats + 1:
            times.popleft()
        count = len(times)
        if count <= rule.max_repeats:
            return Verdict(check, "ok", count)
        outcome, last = _act(check, rs.last, now)
        if outcome == "block":
            rs.until = now + rule.cooldown_s * 1000
            times.clear()
            return Verdict(check, outcome, count, 0, rs.until)
        rs.last = last
        until = last + rule.throttle_interval_s * 1000 if outcome == "throttle" else 0
        return Verdict(check, outcome, count, 0, until)

    async def close(self) -> None:
        self._keys.clear()
        self._requests.clear()


def load_script() -> str:
    """The text of `lua/loops.lua`."""
    return (resources.files("sluicegate.policy") / "lua" / "loops.lua").read_text()


def _esc(value: str) -> str:
    return quote(value, safe="._@-")


def state_keys(prefix: str, org: str, key: str, digest: bytes) -> list[str]:
    """The key's hash and the request's hash (the script's KEYS)."""
    base = f"{prefix}:{{org:{_esc(org)}}}:loop:{_esc(key)}"
    return [base, f"{base}:h:{digest.hex()}"]


_ACTIONS = {"monitor": 0, "throttle": 1, "block": 2}
assert all(ACTION_STRENGTH[a] == code for a, code in _ACTIONS.items())


class RedisLoopState:
    """Loop state in Redis (see the module docstring).

    Arguments:
        client: a redis-py asyncio client; the state closes it.
        prefix: prefix of every key.
        breaker_s: how long to fail fast after a connection failure.

    Attributes:
        calls: Redis round trips made so far (one per checked call).
    """

    def __init__(self, client: RedisClient, *, prefix: str = "sg", breaker_s: float = 0.25) -> None:
        self.client = client
        self.prefix = prefix
        self.runner = ScriptRunner(breaker_s, client)
        self._script = client.register_script(load_script())

    @classmethod
    def from_settings(cls, settings: LoopSettings) -> RedisLoopState:
        client = connect(settings.redis_url.reveal(), timeout_s=settings.redis_timeout_s, max_connections=64)
        return cls(client, prefix=settings.key_prefix, breaker_s=settings.redis_breaker_s)

    @property
    def calls(self) -> int:
        """Redis round trips so far."""
        return self.runner.calls

    async def check(
        self, org: str, key: str, digest: bytes, rate: LoopCheck | None, repeat: LoopCheck | None, now_ms: int
    ) -> list[Verdict]:
        args: list[int] = [now_ms]
        for check in (rate, repeat):
            if check is None:
                args += [0] * 9
                continue
            r = check.line.rule
            args += [
                1,
                1 if check.enforce else 0,
                _ACTIONS[r.action],
                r.window_s * 1000,
                r.max_repeats if r.detect == "repeat" else r.baseline_s // r.window_s,
                round(r.factor * 1000),
                r.min_requests,
                r.cooldown_s * 1000,
                r.throttle_interval_s * 1000,
            ]
        raw = await self._run(state_keys(self.prefix, org, key, digest), args)
        out: list[Verdict] = []
        for i, check in enumerate((rate, repeat)):
            code, count, baseline, until = raw[4 * i : 4 * i + 4]
            if check is not None and code >= 0:
                out.append(Verdict(check, OUTCOMES[code], int(count), int(baseline), int(until)))
        return out

    async def _run(self, keys: Sequence[str], args: Sequence[int]) -> list[int]:
        return await self.runner.run(self._script, keys, args)

    async def close(self) -> None:
        await self.client.aclose(close_connection_pool=True)


def create_loop_state(settings: LoopSettings) -> LoopState:
    """The state the `[loops]` section asks for."""
    if settings.backend == "redis":
        return RedisLoopState.from_settings(settings)
    return LocalLoopState(settings.max_tracked)
