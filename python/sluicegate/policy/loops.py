"""The runaway-loop step of the pipeline: an agent that sends the same request again and again (a
retry loop around a call that always fails, a tool loop that never converges), or whose rate jumps
far over its own baseline, is seen, recorded, and (per rule) throttled or stopped for a cool-down,
long before its budget runs out.

Which rules apply: the nearest level's rule of each kind (`repeat`, `rate`) among the
configuration's `[[loops.rules]]` and the control plane's policies (org > workspace > user > key,
locked rules being floors; `control.policies`). State is always the calling key's. A call with no
rule pays nothing: no hash, no store.

Refusals are 429 in the caller's format, code `loop_detected` (repeat) or `rate_anomaly` (rate),
`retry-after` / `retry-after-ms` = what is left of the cool-down (or until the next throttled call
may pass). A block also says `x-should-retry: false`: retrying a loop is the loop, and the SDKs'
own retries would only add to it; a throttle leaves the SDK to retry after `retry-after`. Messages
name the rule and the counts, never content.

When the shared state (Redis) is unreachable, each rule's `on_store_error` decides: `fail_open`
(the default: the call goes ahead, with a `store_unavailable` event) or `fail_closed` (503). Open is
the default because loop detection saves waste rather than holding a limit: spend caps, which hold
the money, keep failing closed on their own, and a detector that is down should not take every
agent down with it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sluicegate.errors import LoopDetected, Unavailable
from sluicegate.observe.events import PolicyEvent
from sluicegate.policy.auth import Identity
from sluicegate.policy.loop_rules import LoopLine, LoopSettings, request_hash
from sluicegate.policy.loop_state import LocalLoopState, LoopCheck, LoopState, Verdict, create_loop_state
from sluicegate.policy.rollout import bites
from sluicegate.spend.store import StoreUnavailable

__all__ = ["LoopPolicy", "loop_error"]


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _detail(v: Verdict, now_ms: int) -> dict[str, Any]:
    line, rule = v.check.line, v.check.line.rule
    detail: dict[str, Any] = {
        "rule": line.rule_id,
        "detect": rule.detect,
        "action": rule.action,
        "id": line.entity_id,
        "org": line.org_id,
        "count": v.count,
        "window_s": rule.window_s,
    }
    if rule.detect == "repeat":
        detail["max_repeats"] = rule.max_repeats
    else:
        detail.update(factor=rule.factor, min_requests=rule.min_requests, baseline_per_window=v.baseline_milli / 1000)
    if v.until_ms:
        detail["until"] = _iso(v.until_ms)
        detail["seconds_left"] = max(0, math.ceil((v.until_ms - now_ms) / 1000))
    return detail


def _event(v: Verdict, now_ms: int) -> PolicyEvent:
    return PolicyEvent("loops", v.outcome, "", v.check.line.level, detail=_detail(v, now_ms))


def loop_error(v: Verdict, key: str, now_ms: int) -> LoopDetected:
    """The 429 for a refusing verdict: which rule, the counts, when it may pass again."""
    line, rule = v.check.line, v.check.line.rule
    left_ms = max(0, v.until_ms - now_ms)
    left_s = max(1, math.ceil(left_ms / 1000))
    if rule.detect == "repeat":
        seen = f"the same request came {v.count} times within {rule.window_s} s from key {key!r}"
        whom = "this request"
    else:
        seen = (
            f"key {key!r} sent {v.count} requests in the current {rule.window_s} s window, "
            f"its baseline being {v.baseline_milli / 1000:g} a window"
        )
        whom = "every request of this key"
    if v.outcome == "throttle":
        message = (
            f"runaway loop throttled: {seen}; {line.describe()} lets one through every {rule.throttle_interval_s} s"
        )
        message += f"; the next may pass at {_iso(v.until_ms)} (in {left_s} s)"
    elif v.outcome == "block":
        message = f"runaway loop stopped: {seen}; {line.describe()} refuses {whom} for {rule.cooldown_s} s"
        message += f", until {_iso(v.until_ms)}"
    else:
        message = f"runaway loop: {line.describe()} refuses {whom} until {_iso(v.until_ms)} (in {left_s} s)"
    headers = {
        "retry-after": str(left_s),
        "retry-after-ms": str(left_ms),
        "x-sluicegate-loop-rule": f"{line.level}:{line.entity_id}:{rule.detect}",
        "x-sluicegate-loop-until": _iso(v.until_ms),
    }
    if v.outcome != "throttle":
        headers["x-should-retry"] = "false"
    loop = {"detect": rule.detect, "level": line.level, "id": line.entity_id, "action": rule.action, "count": v.count}
    loop["until"] = _iso(v.until_ms)
    code = "loop_detected" if rule.detect == "repeat" else "rate_anomaly"
    return LoopDetected(message, code=code, headers=headers, extra={"loop": loop})


class LoopPolicy:
    """The rules by caller, the state, and the clock.

    Arguments:
        settings: the `[loops]` section.
        clock: wall-clock seconds (`time.time`; a test's own clock).
    """

    def __init__(self, settings: LoopSettings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.state: LoopState | None = None
        self._lines = tuple(r.line() for r in settings.rules)
        self._by_identity: dict[Identity, tuple[LoopLine, ...]] = {}
        # A caller's lines and key -> (those lines, its rate check, its repeat check): what `check`
        # works out from the rules once (a rule's mode and rollout decide per key, not per call).
        self._plans: dict[tuple[int, str], tuple[tuple[LoopLine, ...], LoopCheck | None, LoopCheck | None]] = {}
        # the state when it is this process's own: it answers without a coroutine (`check_now`)
        self._local: LocalLoopState | None = None
        # The control plane's rules for a caller (its view's `loop_rules`): the nearest level's
        # rule of each kind, the configuration's included, floors applied.
        self.policy_rules: Callable[[Identity], tuple[LoopLine, ...] | None] | None = None

    async def start(self) -> None:
        self.state = create_loop_state(self.settings)
        self._local = self.state if isinstance(self.state, LocalLoopState) else None

    async def stop(self) -> None:
        if self.state is not None:
            await self.state.close()

    def rules_for(self, who: Identity) -> tuple[LoopLine, ...]:
        """The rules that apply to the caller: the control plane's when it knows the key (they
        include the configuration's), else the configuration's nearest rule of each kind (cached
        per caller)."""
        if self.policy_rules is not None:
            found = self.policy_rules(who)
            if found is not None:
                return found
        lines = self._by_identity.get(who)
        if lines is None:
            mine = {"org": who.org, "workspace": who.workspace, "user": who.user, "key": who.key_name}
            nearest: dict[str, LoopLine] = {}
            for level in ("org", "workspace", "user", "key"):
                for line in self._lines:
                    if line.level == level and line.org_id == who.org and mine[level] == line.entity_id:
                        nearest[line.rule.detect] = line
            lines = self._by_identity[who] = tuple(nearest.values())
        return lines

    def _plan(
        self, lines: tuple[LoopLine, ...], key_name: str
    ) -> tuple[tuple[LoopLine, ...], LoopCheck | None, LoopCheck | None]:
        """A caller's rate and repeat checks (each rule's mode and rollout decided for the key), kept."""
        rate = repeat = None
        for line in lines:
            rule = line.rule
            check = LoopCheck(line, bites(rule.mode, rule.rollout_percent, line.rule_id, key_name))
            if rule.detect == "rate":
                rate = check
            else:
                repeat = check
        if len(self._plans) >= 10_000:
            self._plans.clear()
        plan = self._plans[(id(lines), key_name)] = (lines, rate, repeat)
        return plan

    async def check(self, who: Identity, route: str, body: dict[str, Any]) -> list[PolicyEvent] | None:
        """Count the call against the caller's loop rules; the events to add to its outcome (None
        when no rule applies).

        Raises:
            LoopDetected: an enforcing rule refuses the call (429).
            Unavailable: the state is unreachable and a rule says `fail_closed` (503).
        """
        lines = self.rules_for(who)
        if not lines:
            return None
        state = self.state
        assert state is not None, "LoopPolicy.start() was not awaited"
        plan = self._plans.get((id(lines), who.key_name))
        if plan is None or plan[0] is not lines:
            plan = self._plan(lines, who.key_name)
        _, rate, repeat = plan
        now_ms = int(self.clock() * 1000)
        digest = request_hash(route, body) if repeat is not None else b""
        try:
            local = self._local
            if local is not None:
                verdicts = local.check_now(who.org, who.key_name, digest, rate, repeat, now_ms)
            else:
                verdicts = await state.check(who.org, who.key_name, digest, rate, repeat, now_ms)
        except StoreUnavailable as exc:
            closed = [
                line
                for line in lines
                if (line.rule.on_store_error or self.settings.on_store_error) == "fail_closed"
                and line.rule.mode == "enforce"
            ]
            behaviour = "fail_closed" if closed else "fail_open"
            event = PolicyEvent("loops", "store_unavailable", "", "store", detail={"behaviour": behaviour})
            if closed:
                down = Unavailable(
                    "loop detection cannot run right now (its store is unreachable) and "
                    f"{closed[0].describe()} fails closed; retry shortly",
                    code="loop_store_unavailable",
                )
                down.events = [event]
                raise down from exc
            return [event]
        events = [_event(v, now_ms) for v in verdicts if v.outcome != "ok"]
        for v in verdicts:
            if v.refused:
                err = loop_error(v, who.key_name, now_ms)
                err.events = events
                raise err
        return events
