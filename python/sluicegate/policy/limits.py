"""The rate-limit step of the pipeline: count the call on every limit that applies (requests per
window, tokens per window, requests in flight), refuse with 429 when an enforcing one is full, and
tell the client where it stands in the headers its SDK knows.

Which limits apply: every `[[limits.rules]]` line of the caller's organization whose entity is
the caller's organization, workspace, user or key, then the control plane's (`view.limit_lines`).
A call with no limit touches no store at all, and a gateway with no limit anywhere does no work
beyond one attribute check.

When: after the request's redaction, just before the spend step, so a call redaction blocks is
not counted and a `tokens` line counts the body that goes upstream; its estimate is handed on to
the spend step (`LimitGuard.input_estimate`), which would walk the same body for it otherwise.

What a call costs: 1 on `requests` and `concurrent` lines; on `tokens` lines the input-token
estimate of `spend.estimate` up front, settled when the call ends to what the provider reported
(input plus output tokens), kept at the estimate when output went out without usage (the client
left mid-stream), and 0 when the call failed before any output. Every ending (a success, an
error status, an unreachable provider, a client that left, an exception) finishes the guard once,
which also frees its `concurrent` slots.

Modes: each rule is `enforce` or `monitor`, with a rollout percentage in between
(`policy.rollout.bites`); a rule that does not bite on a call still counts it, and reports
`would_refuse` when it would have refused.

The store unreachable (Redis): the call is refused with a 503 when a limit that bites on it fails
closed (its policy's `on_redis_error`, else `limits.on_redis_error`), and served without limits
otherwise; either way a `store_unavailable` event says so.

The answer: a refusal is a 429 in the caller's format (`errors.RateLimited`, type
`rate_limit_error`, code `gateway_rate_limit_exceeded`) with `retry-after` (whole seconds, rounded
up) and `retry-after-ms`, so the official SDKs wait and retry by themselves, and
`x-sluicegate-limit: <level>/<kind>`, which tells it apart from a provider's 429. Every answer of a
call under limits carries the limit headers of its format: `x-ratelimit-{limit,remaining,reset}-
{requests,tokens}` (reset as a duration, `1s`, `6m0s`, `20ms`) for OpenAI routes,
`anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}` (reset as an RFC 3339 time) for
Anthropic ones, each from the tightest enforcing line of its kind (the least remaining).
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from sluicegate.errors import GatewayError, RateLimited, Unavailable
from sluicegate.limits import (
    LimitLine,
    LimitRuleSettings,
    LimitSettings,
    LimitStore,
    LineState,
    StoreUnavailable,
    create_limit_store,
)
from sluicegate.observe.events import PolicyEvent
from sluicegate.policy.auth import Identity
from sluicegate.policy.model_rules import compile_globs
from sluicegate.policy.rollout import Mode, RolloutBy, bites
from sluicegate.policy.spend import Substitution
from sluicegate.spend.caps import EstimateSettings
from sluicegate.spend.estimate import Estimate, estimate

if TYPE_CHECKING:
    from sluicegate.formats.base import WireFormat
    from sluicegate.limits import Grant, LimitResult
    from sluicegate.proxy.providers import Provider
    from sluicegate.proxy.relay import Outcome

__all__ = [
    "LimitGuard",
    "LimitPolicy",
    "LimitRule",
    "format_duration",
    "limit_headers",
    "rate_limited",
    "upstream_429",
]

log = logging.getLogger("sluicegate.limits")

Headers = list[tuple[bytes, bytes]]
OnStoreError = Literal["fail_closed", "fail_open"]


@dataclass(frozen=True, slots=True)
class LimitRule:
    """One limit as the pipeline applies it: the store's line, and when it bites.

    Attributes:
        line: what the store counts (level, entity, kind, limit, window).
        mode: `enforce` refuses; `monitor` counts and reports what it would have refused.
        rollout_percent: between the two, the share of keys (or requests) an enforcing rule bites.
        rollout_by: `key` (a stable share of keys) or `request`.
        rule_id: names the rule for the rollout draw (default `level:entity:kind:window_s`; the
            file's rules are named by `LimitRuleSettings.rule_id`).
        on_redis_error: `fail_closed` or `fail_open` while the store is unreachable; None: the
            section's `on_redis_error`.
        substitute_model: when the rule would refuse a call, the call goes to this model instead
            (routed like a requested one); calls asking for this model are not counted on the rule.
        tools: None for a limit on model calls; else the `server/tool` patterns of the MCP tool
            calls it counts (together, on a counter of its own: `line.scope`), and no model call.
        always: whether the rule bites on every call (True), on none (False), or is drawn (None).
    """

    line: LimitLine
    mode: Mode = "enforce"
    rollout_percent: float = 100.0
    rollout_by: RolloutBy = "key"
    rule_id: str = field(default="", compare=False)
    on_redis_error: OnStoreError | None = None
    substitute_model: str | None = None
    tools: tuple[str, ...] | None = None
    always: bool | None = field(init=False, repr=False, compare=False)
    tools_rx: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        line = self.line
        if not self.rule_id:
            window = "" if line.kind == "concurrent" else f":{line.window_s}s"
            object.__setattr__(self, "rule_id", f"{line.level}:{line.entity_id}:{line.kind}{window}")
        if self.mode != "enforce" or self.rollout_percent <= 0:
            always: bool | None = False
        elif self.rollout_percent >= 100:
            always = True
        else:
            always = None
        object.__setattr__(self, "always", always)
        object.__setattr__(self, "tools_rx", compile_globs(self.tools) if self.tools is not None else None)

    def bites(self, key_id: str) -> bool:
        """Whether this rule enforces on a call of `key_id` (else it only monitors it)."""
        if self.always is not None:
            return self.always
        return bites(self.mode, self.rollout_percent, self.rule_id, key_id, self.rollout_by)


_DURATIONS: dict[int, bytes] = {}


def _duration_bytes(ms: int) -> bytes:
    """`format_duration(ms)` as bytes, remembered (calls under load share their millisecond)."""
    held = _DURATIONS.get(ms)
    if held is None:
        if len(_DURATIONS) >= 8192:
            _DURATIONS.clear()
        held = _DURATIONS[ms] = format_duration(ms).encode()
    return held


def format_duration(ms: int) -> str:
    """A duration as OpenAI's reset headers write it: `20ms`, `1s`, `1.5s`, `6m0s`, `1h2m3s`."""
    if ms < 1000:
        return f"{max(ms, 0)}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds = f"{rest // 1000}" if rest % 1000 == 0 else f"{rest / 1000:.3f}".rstrip("0")
    if hours:
        return f"{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{minutes}m{seconds}s"
    return f"{seconds}s"


def _rfc3339(epoch_s: float) -> bytes:
    """A time as Anthropic's reset headers write it (whole seconds, rounded up, UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(math.ceil(epoch_s))).encode()


_OPENAI_NAMES = tuple(
    (
        f"x-ratelimit-limit-{kind}".encode(),
        f"x-ratelimit-remaining-{kind}".encode(),
        f"x-ratelimit-reset-{kind}".encode(),
    )
    for kind in ("requests", "tokens")
)
_ANTHROPIC_NAMES = tuple(
    (
        f"anthropic-ratelimit-{kind}-limit".encode(),
        f"anthropic-ratelimit-{kind}-remaining".encode(),
        f"anthropic-ratelimit-{kind}-reset".encode(),
    )
    for kind in ("requests", "tokens")
)


def limit_headers(family: str, states: Sequence[LineState], now_s: float | None = None) -> Headers:
    """The limit headers of a format family (`openai`, `anthropic`) for `states`: per kind
    (`requests`, `tokens`), the line with the least remaining. `concurrent` lines have none."""
    requests = tokens = None
    for state in states:
        kind = state.line.kind
        if kind == "requests":
            if requests is None or state.remaining < requests.remaining:
                requests = state
        elif kind == "tokens" and (tokens is None or state.remaining < tokens.remaining):
            tokens = state
    out: Headers = []
    if family == "anthropic":
        now = time.time() if now_s is None else now_s
        for (limit, remaining, reset), state in zip(_ANTHROPIC_NAMES, (requests, tokens), strict=True):
            if state is not None:
                out += [
                    (limit, b"%d" % state.line.limit),
                    (remaining, b"%d" % state.remaining),
                    (reset, _rfc3339(now + state.reset_ms / 1000)),
                ]
    else:
        for (limit, remaining, reset), state in zip(_OPENAI_NAMES, (requests, tokens), strict=True):
            if state is not None:
                out += [
                    (limit, b"%d" % state.line.limit),
                    (remaining, b"%d" % state.remaining),
                    (reset, _duration_bytes(state.reset_ms)),
                ]
    return out


def _window_text(line: LimitLine) -> str:
    if line.kind == "concurrent":
        return "in flight at once"
    return f"per {line.window_s} s"


def _detail(state: LineState) -> dict[str, Any]:
    line = state.line
    return {
        "kind": line.kind,
        "limit": line.limit,
        "window_s": line.window_s if line.kind != "concurrent" else None,
        "id": line.entity_id,
        "org": line.org_id,
        "remaining": state.remaining,
        "retry_after_ms": state.retry_after_ms,
    }


def _event(action: str, state: LineState) -> PolicyEvent:
    return PolicyEvent("limits", action, "", state.line.level, detail=_detail(state))


def rate_limited(state: LineState, family: str, states: Sequence[LineState] = ()) -> RateLimited:
    """The 429 for a refusal: which limit (level, id, kind, limit, window) and when to retry; with
    `retry-after` and `retry-after-ms` (the SDKs honour both), `x-sluicegate-limit`, and the limit
    headers of the caller's format. A request that can never fit (its token estimate is above the
    limit itself) gets `x-should-retry: false` instead of a retry-after."""
    line = state.line
    kind = "requests" if line.kind == "concurrent" else line.kind
    what = f"{line.limit} {kind} {_window_text(line)}"
    if state.never:
        wait_ms = -1
        message = f"rate limit reached: {line.level} {line.entity_id!r} allows {what}; this request alone is more"
        headers = {"x-should-retry": "false"}
    else:
        wait_ms = state.retry_after_ms if state.retry_after_ms > 0 else 1000
        message = f"rate limit reached: {line.level} {line.entity_id!r} allows {what}; retry after {wait_ms / 1000:g} s"
        headers = {"retry-after": str(math.ceil(wait_ms / 1000)), "retry-after-ms": str(wait_ms)}
    headers["x-sluicegate-limit"] = f"{line.level}/{line.kind}"
    shown = [s for s in states if s.line != line]
    headers.update((k.decode(), v.decode()) for k, v in limit_headers(family, [state, *shown]))
    extra = {"limit": {"level": line.level, **_detail(state), "retry_after_ms": wait_ms}}
    return RateLimited(message, headers=headers, extra=extra)


def upstream_429(provider: str) -> PolicyEvent:
    """A provider's own 429, passed through to the client: an event apart from the gateway's."""
    return PolicyEvent("limits", "upstream_429", "", "provider", detail={"provider": provider})


@dataclass(slots=True)
class LimitGuard:
    """One call's counts on its limits, until the call ends.

    Attributes:
        headers: the limit headers every answer of this call carries (byte pairs).
        events: what the limits decided on a call they let go on (monitor and store events): the
            pipeline keeps them with the call (`CallInfo.events`), whatever a later step decides.
    """

    policy: LimitPolicy
    grant: Grant | None
    provider: str
    headers: Headers | None = None
    events: list[PolicyEvent] = field(default_factory=list)
    input_estimate: Estimate | None = None  # a tokens limit's estimate of the body, for the spend step to reuse
    substitution: Substitution | None = None  # where a full limit with a substitute sent the call

    async def finish(self, outcome: Outcome | None) -> None:
        """Free the call's slots and settle its tokens (see the module docstring); once per call,
        on every ending; never raises."""
        if outcome is not None and outcome.status == 429 and outcome.error == "upstream_status":
            outcome.events.append(upstream_429(self.provider))
        grant, self.grant = self.grant, None
        store = self.policy.store
        if grant is None or store is None:
            return
        if outcome is None:
            actual: int | None = 0
        elif outcome.usage is not None:
            actual = outcome.usage.input_tokens + outcome.usage.output_tokens
        elif outcome.status == 200:
            actual = None  # output went out without usage: keep the estimate
        else:
            actual = 0
        try:
            await store.finish(grant, actual)
        except Exception:  # the store's contract is never to raise; a bug there must not fail the call
            log.exception("limit store finish failed")


class _Plan:
    """A caller's limits (the file's, then the control plane's) and what follows from them: the
    lines as one tuple, whether one counts tokens, and which bite when that does not depend on the
    key (None: a rollout draws per key). A call asking for a rule's substitute model is not counted
    on that rule: `for_model` hands back the plan without such rules (remembered per model)."""

    __slots__ = (
        "base",
        "everywhere",
        "extra",
        "lines",
        "ones",
        "per_token",
        "rules",
        "static",
        "substitutes",
        "tokens",
        "tool_rules",
        "without",
    )

    def __init__(self, base: tuple[LimitRule, ...], extra: tuple[LimitRule, ...], *, tools: bool = False) -> None:
        self.base, self.extra = base, extra
        rules = base + extra if extra else base
        # The limits of model calls; those of MCP tool calls apart (`LimitPolicy.acquire_tool`),
        # unless this is the plan of one tool call (`tools`: every rule counts it).
        self.tool_rules = () if tools else tuple(r for r in rules if r.tools is not None)
        self.rules = tuple(r for r in rules if r.tools is None) if self.tool_rules else rules
        self.lines = tuple(r.line for r in self.rules)
        self.per_token = tuple(line.kind == "tokens" for line in self.lines)  # per line: it counts tokens
        self.tokens = any(self.per_token)
        self.ones = (1,) * len(self.lines)  # the costs of a call on lines that count requests
        always = [r.always for r in self.rules]
        self.static = None if None in always else tuple(bool(a) for a in always)
        self.everywhere = self.static is not None and all(self.static)  # every line bites on every call
        self.substitutes = frozenset(r.substitute_model for r in self.rules if r.substitute_model is not None)
        self.without: dict[str, _Plan] = {}

    def for_model(self, model: str) -> _Plan:
        """The plan of a call asking for `model`: without the rules whose substitute it is."""
        if model not in self.substitutes:
            return self
        plan = self.without.get(model)
        if plan is None:
            kept = tuple(r for r in self.rules if r.substitute_model != model)
            plan = self.without[model] = _Plan(kept, ())
        return plan


class LimitPolicy:
    """The store and the limits by caller.

    Arguments:
        settings: the `[limits]` section.
        estimate_settings: how the input-token estimate pads its count (`[spend.estimate]`).
    """

    def __init__(self, settings: LimitSettings, estimate_settings: EstimateSettings | None = None) -> None:
        self.settings = settings
        self.estimate_settings = estimate_settings or EstimateSettings()
        self.store: LimitStore | None = None
        self._rules = tuple(rule_of(r) for r in settings.rules)
        self._plans: dict[Identity, _Plan] = {}
        # The control plane's limits for a caller (its view's `limit_lines`), when it runs: read from
        # memory on every call, since a reload may change them.
        self.policy_lines: Callable[[Identity], tuple[LimitRule, ...]] | None = None

    async def start(self) -> None:
        self.store = create_limit_store(self.settings)

    async def stop(self) -> None:
        if self.store is not None:
            await self.store.close()

    def lines_for(self, who: Identity) -> tuple[LimitRule, ...]:
        """The limits on the caller's organization, workspace, user and key: the config file's, then
        the control plane's."""
        return self._plan(who).rules

    def _plan(self, who: Identity) -> _Plan:
        """The caller's limits and what follows from them, one entry per caller while its rules
        stand (the control plane's view hands back the same tuple until it reloads): the same
        lines tuple every call, which the stores' argument checks remember."""
        extra = self.policy_lines(who) if self.policy_lines is not None else ()
        plan = self._plans.get(who)
        if plan is None or plan.extra is not extra:
            if plan is not None:
                base = plan.base
            else:
                mine = {"org": who.org, "workspace": who.workspace, "user": who.user, "key": who.key_name}
                base = tuple(
                    r for r in self._rules if r.line.org_id == who.org and mine[r.line.level] == r.line.entity_id
                )
            if len(self._plans) >= 100_000:
                self._plans.clear()
            plan = self._plans[who] = _Plan(base, extra)
        return plan

    async def acquire(
        self,
        who: Identity,
        fmt: WireFormat,
        body: Mapping[str, Any],
        provider: str = "",
        model: str | None = None,
        route: Callable[[str], tuple[Provider, str]] | None = None,
    ) -> LimitGuard:
        """Count the call on every limit of the caller; returns the guard to finish when it ends.

        `model` is the model the call asks for (after aliases): a rule whose substitute it is does
        not count it. When an enforcing rule with a `substitute_model` is full, the call goes to
        that model instead (`route` routes it, refusing a model the caller may not use), counted
        on the caller's limits without the rules it relieves; the guard's `substitution` says
        where, and the pipeline sends it there. Should the substitute not be routed, or be refused
        by a limit too, the call is refused with the first rule's 429.

        Raises:
            RateLimited: an enforcing limit is full (429, nothing counted anywhere).
            InvalidRequest: an output limit or `n` out of range (read by the estimate, tokens lines only).
            Unavailable: the store is unreachable and a limit that bites on this call fails closed
                (its own `on_redis_error`, else the section's) (503).
        """
        plan = self._plan(who)
        if plan.substitutes and model is not None:
            plan = plan.for_model(model)
        rules = plan.rules
        if not rules:
            return LimitGuard(self, None, provider)
        est = estimate(body, fmt.name, self.estimate_settings) if plan.tokens else None
        guard = await self._acquire(plan, who, fmt.family, est, provider)
        if isinstance(guard, LimitGuard):
            return guard
        refused, result, events = guard
        rule = _substituting(plan, refused, who.key_name) if route is not None else None
        if rule is None or rule.substitute_model is None or route is None:
            err = rate_limited(refused, fmt.family, result.states)
            err.events = [*events, _event("refuse", refused)]
            raise err
        target = rule.substitute_model
        detail = {**_detail(refused), "from_model": model, "to_model": target}
        try:
            to_provider, to_model = route(target)
            moved = await self._acquire(self._plan(who).for_model(target), who, fmt.family, est, to_provider.name)
        except GatewayError as exc:
            moved, reason = None, exc.code
        else:
            reason = "" if isinstance(moved, LimitGuard) else "limited"
        if not isinstance(moved, LimitGuard):
            err = rate_limited(refused, fmt.family, result.states)
            failed = PolicyEvent(
                "limits", "substitute_failed", "", refused.line.level, detail={**detail, "reason": reason}
            )
            err.events = [*events, failed, _event("refuse", refused)]
            raise err
        moved.events[:0] = [*events, PolicyEvent("limits", "substitute", "", refused.line.level, detail=detail)]
        moved.substitution = Substitution(target, to_provider, to_model)
        return moved

    async def acquire_tool(self, who: Identity, server: str, tool: str) -> LimitGuard:
        """Count an MCP `tools/call` of `server/tool` on the caller's limits of tool calls that
        match it (each a counter of its own; a call costs 1); the guard to finish when it ends.

        Raises:
            RateLimited: an enforcing one is full (nothing counted anywhere).
            Unavailable: the store is unreachable and such a limit fails closed.
        """
        plan = self._plan(who)
        if not plan.tool_rules:
            return LimitGuard(self, None, f"mcp:{server}")
        name = f"{server}/{tool}"
        matching = tuple(r for r in plan.tool_rules if r.tools_rx is not None and r.tools_rx.fullmatch(name))
        guard = await self._acquire(_Plan(matching, (), tools=True), who, None, None, f"mcp:{server}")
        if isinstance(guard, LimitGuard):
            return guard
        refused, result, events = guard
        err = rate_limited(refused, "openai", result.states)
        err.events = [*events, _event("refuse", refused)]
        raise err

    async def _acquire(
        self, plan: _Plan, who: Identity, family: str | None, est: Estimate | None, provider: str
    ) -> LimitGuard | tuple[LineState, LimitResult, list[PolicyEvent]]:
        """Count a call on `plan`'s lines: the guard, or the refusing line's state, the store's
        answer and the events so far (the caller raises or substitutes). The guard carries the
        limit headers of `family` (None: none)."""
        rules = plan.rules
        if not rules:
            return LimitGuard(self, None, provider, None, [], est)
        assert self.store is not None, "LimitPolicy.start() was not awaited"
        lines = plan.lines
        enforce = plan.static if plan.static is not None else [r.bites(who.key_name) for r in rules]
        if plan.tokens:
            tokens = est.input_tokens if est is not None else 0
            costs: Sequence[int] = [tokens if counts else 1 for counts in plan.per_token]
        else:
            costs = plan.ones
        try:
            result = await self.store.acquire(lines, costs, enforce)
        except StoreUnavailable as exc:
            behaviour = self._on_store_error(rules, enforce)
            event = PolicyEvent("limits", "store_unavailable", "", "store", detail={"behaviour": behaviour})
            if behaviour == "fail_closed":
                err = Unavailable(
                    "rate limits cannot be checked right now (the limit store is unreachable); retry shortly",
                    code="limit_store_unavailable",
                )
                err.events = [event]
                raise err from exc
            return LimitGuard(self, None, provider, None, [event], est)
        events = [_event("would_refuse", s) for s in result.monitored] if result.monitored else []
        if result.refused is not None:
            return result.refused, result, events
        states = result.states
        if not plan.everywhere and not all(enforce):
            states = [s for s, bit in zip(_aligned(states, lines), enforce, strict=True) if bit and s is not None]
        headers = limit_headers(family, states) or None if family is not None else None
        return LimitGuard(self, result.grant, provider, headers, events, est)

    def _on_store_error(self, rules: Sequence[LimitRule], enforce: Sequence[bool]) -> OnStoreError:
        """With the store unreachable: closed when a limit that bites on this call says so (its
        own `on_redis_error`, else the section's); a call only monitored is never refused."""
        default = self.settings.on_redis_error
        for rule, bit in zip(rules, enforce, strict=True):
            if bit and (rule.on_redis_error or default) == "fail_closed":
                return "fail_closed"
        return "fail_open"


def _substituting(plan: _Plan, refused: LineState, key_id: str) -> LimitRule | None:
    """The enforcing rule of `plan` with a substitute that refused on `refused`'s line, if any."""
    for rule in plan.rules:
        if rule.substitute_model is not None and rule.line == refused.line and rule.bites(key_id):
            return rule
    return None


def _aligned(states: Sequence[LineState], lines: Sequence[LimitLine]) -> list[LineState | None]:
    """`states` in the order of `lines` (the stores answer in that order; this does not rely on it)."""
    if len(states) == len(lines) and all(
        s.line is line or s.line == line for s, line in zip(states, lines, strict=True)
    ):
        return list(states)
    by_line = {s.line: s for s in states}
    return [by_line.get(line) for line in lines]


def rule_of(rule: LimitRuleSettings) -> LimitRule:
    """A `[[limits.rules]]` entry as a `LimitRule`."""
    return LimitRule(
        rule.line(),
        rule.mode,
        rule.rollout_percent,
        rule.rollout_by,
        rule.rule_id,
        substitute_model=rule.substitute_model,
        tools=tuple(rule.tools) if rule.tools is not None else None,
    )
