"""Policy inheritance and floors: a key is under the operator's configuration, then the policies of
its organization, workspace, user and itself, read in that order.

- **Caps add up.** Each level's caps become `CapLine`s on that level's entity, and a request
  reserves on all of them (the configuration's `[[spend.caps]]` are added by the spend step).
- **Rate limits add up too.** Each level's limits become lines on that level's entity (the
  configuration's `[[limits.rules]]` are added by the limits step); a call counts on all of them.
- **Redaction rules are read from the top down.** For the same entity type and direction, a lower
  level's rule replaces the one above it, unless a level above locked it.
- **Locks are floors.** A rule or cap with `locked` set (in a policy, or in the configuration's
  `[[redaction.rules]]` and `[[spend.caps]]`) binds every level below the one that holds it:
  below a locked rule, a rule for the same type and direction must be at least as strict
  (`ACTION_STRENGTH`: monitor < pseudonymize < redact < block); below a locked cap, a cap in the
  same window may not be higher, nor monitor-only when the locked one enforces. A request-side
  `pseudonymize` also counts as below a locked `redact` or `block` on responses, since the gateway
  writes the original back into the response. Below a locked rate limit, a limit of the same kind
  and window may not be higher, nor bite less (monitor-only, or a smaller rollout) when the locked
  one enforces. Rules without a lock keep the override semantics above: they are defaults a lower
  level may change either way.
- **Loop rules are the nearest level's.** Of each kind (`repeat`, `rate`), the rule of the lowest
  level that has one applies (the configuration's `[[loops.rules]]` on an entity count as that
  entity's). Below a locked loop rule, a rule of the same kind may not be laxer (`loop_laxer`);
  `effective` raises each laxer field to the lock's.
- **Rollouts.** An enforcing cap or a redaction rule with `rollout_percent` below 100 acts for a
  stable share of the keys below it (`sluicegate.policy.rollout`) and monitors the others: in a
  key's effective policy it is `monitor` when the key is outside the share. A floor applies in
  full: a locked rule or cap cannot have a rollout, and whatever a floor raises is raised for every
  key (a cap under a locked enforcing one enforces for every key).
- **Allowed terms add up, under locks.** Each level's `allow_terms` (terms never acted on as a
  type: a firm named after its founder as `PERSON`) add to those above, except for a type that a
  level above locks in either direction: a lock on a type also fixes what is exempt from it, so
  such terms are refused when written and left out of the effective policy.
- **Patterns.** A lower level's custom pattern replaces one of the same name above it, unless the
  type is locked above: then it is added beside the one above (more is found, never less). The
  scanner runs a pattern named like a built-in type beside the built-in detector, so such a
  pattern only adds findings.

Floors hold twice. A write that would weaken one is refused (`violations`, used by the admin API
and the CLI), and `effective` raises whatever is below a floor up to it. A row that reached the
database some other way (or was written just before a lock above it) therefore still cannot
lower a locked rule.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from sluicegate.config import (
    ACTION_STRENGTH,
    AllowTerms,
    CustomPattern,
    RedactionRule,
    RedactionSettings,
    default_min_confidence,
)
from sluicegate.control.schemas import Level, LimitIn, LoopRuleIn, PolicyIn
from sluicegate.limits import LimitLine, tool_scope
from sluicegate.policy.limits import LimitRule, rule_of
from sluicegate.policy.loop_rules import ACTION_STRENGTH as LOOP_STRENGTH
from sluicegate.policy.loop_rules import LoopLine, LoopRuleFields, LoopSettings
from sluicegate.policy.model_rules import CeilingIn, ModelRulesIn, glob_within, globs_meet
from sluicegate.policy.models import EMPTY, Alias, ModelRules, rule_set
from sluicegate.policy.rollout import bites
from sluicegate.policy.tool_rules import ToolRulesIn
from sluicegate.policy.tools import EMPTY_TOOLS, ToolRules, tool_rule_set
from sluicegate.spend.caps import DEFAULT_THRESHOLDS, CapLine, Mode, SpendSettings, rollout_id
from sluicegate.spend.money import format_usd

if TYPE_CHECKING:
    from sluicegate.limits import LimitSettings

Direction = Literal["request", "response"]
OriginLevel = Literal["operator", "org", "workspace", "user", "key"]
LEVELS: tuple[Level, ...] = ("org", "workspace", "user", "key")
Chain = list[tuple[Level, str, PolicyIn | None]]
_STRICT_RESPONSE = ACTION_STRENGTH["redact"]  # a locked response rule this strict forbids request pseudonyms


def _directions(rule: RedactionRule) -> tuple[Direction, ...]:
    return ("request", "response") if rule.direction == "both" else (rule.direction,)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a rule comes from: the operator's configuration, or one org, workspace, user or key."""

    level: OriginLevel
    id: str | None = None

    def __str__(self) -> str:
        return "the operator's configuration" if self.level == "operator" else f"{self.level} {self.id}"

    def as_json(self) -> dict[str, str | None]:
        return {"level": self.level, "id": self.id}


OPERATOR = Origin("operator")


@dataclass(frozen=True, slots=True)
class OperatorPolicy:
    """The top of every chain: the configuration's `[redaction]` rules (the locked ones are floors
    for every organization) and its `[[spend.caps]]` (the locked ones are floors for their entity
    and everything below it).

    Attributes:
        rules: `[redaction].rules`, in order.
        default_action: `[redaction].default_action` (shown in effective policies).
        caps: each `[[spend.caps]]` line with its `locked` flag.
        redaction_enabled: `[redaction].enabled` (when off, nothing is redacted at any level).
        limits: each `[[limits.rules]]` line with its `locked` flag.
    """

    rules: tuple[RedactionRule, ...] = ()
    default_action: str | None = None
    caps: tuple[tuple[CapLine, bool], ...] = ()
    redaction_enabled: bool = True
    models: ModelRulesIn | None = None  # `[models]`: its locked lists and ceilings bind every org
    loops: tuple[tuple[LoopLine, bool], ...] = ()  # `[[loops.rules]]` with their `locked` flags
    limits: tuple[tuple[LimitRule, bool], ...] = ()  # `[[limits.rules]]` with their `locked` flags
    tools: ToolRulesIn | None = None  # `[tools]`: its locked lists bind every org
    allow_terms: tuple[AllowTerms, ...] = ()  # `[[redaction.allow_terms]]` (shown; the configuration applies them)

    @classmethod
    def from_settings(
        cls,
        redaction: RedactionSettings,
        spend: SpendSettings,
        models: ModelRulesIn | None = None,
        *,
        loops: LoopSettings | None = None,
        limits: LimitSettings | None = None,
        tools: ToolRulesIn | None = None,
    ) -> OperatorPolicy:
        caps = tuple((c.line(spend.thresholds), c.locked) for c in spend.caps) if spend.enabled else ()
        loop_rules = tuple((r.line(), r.locked) for r in loops.rules) if loops is not None and loops.enabled else ()
        rate = tuple((rule_of(r), r.locked) for r in limits.rules) if limits is not None and limits.enabled else ()
        tools = tools if tools is not None and not tools.empty else None
        if not redaction.enabled:
            return cls((), None, caps, False, models, loop_rules, rate, tools)
        return cls(
            tuple(redaction.rules),
            redaction.default_action,
            caps,
            models=models,
            loops=loop_rules,
            limits=rate,
            tools=tools,
            allow_terms=tuple(redaction.allow_terms),
        )

    def caps_on(self, org_id: str, level: Level, entity_id: str) -> list[tuple[CapLine, bool]]:
        return [
            (line, locked)
            for line, locked in self.caps
            if line.org_id == org_id and line.level == level and line.entity_id == entity_id
        ]

    def limits_on(self, org_id: str, level: Level, entity_id: str) -> list[tuple[LimitRule, bool]]:
        return [
            (rule, locked)
            for rule, locked in self.limits
            if rule.line.org_id == org_id and rule.line.level == level and rule.line.entity_id == entity_id
        ]


@dataclass(slots=True)
class Floors:
    """The locks in force at one depth of a chain.

    Attributes:
        rules: (entity, direction) -> the least action allowed, and who locked it.
        cap_limits: window -> the highest cap allowed, and who locked it.
        cap_enforced: window -> who locked an enforcing cap (a cap below must enforce too).
        limits: (kind, window) -> the highest rate limit allowed, and who locked it.
        limit_enforced: (kind, window) -> the least rollout a limit below must bite at (an
            enforcing lock's), and who locked it.
        loops: detect -> the nearest locked loop rule of that kind (as raised), and who locked it.
        thresholds: (entity, direction) -> the highest confidence threshold a rule below a locked
            rule may set (the lock's own), and who locked it.
    """

    rules: dict[tuple[str, Direction], tuple[str, Origin]] = field(default_factory=dict)
    cap_limits: dict[str, tuple[int, Origin]] = field(default_factory=dict)
    cap_enforced: dict[str, Origin] = field(default_factory=dict)
    limits: dict[tuple[str, int, str], tuple[int, Origin]] = field(default_factory=dict)
    limit_enforced: dict[tuple[str, int, str], tuple[float, Origin]] = field(default_factory=dict)
    loops: dict[str, tuple[LoopRuleFields, Origin]] = field(default_factory=dict)
    models: ModelFloors = field(default_factory=lambda: ModelFloors())
    tools: ModelFloors = field(default_factory=lambda: ModelFloors())  # locked tool lists (no ceilings)
    thresholds: dict[tuple[str, Direction], tuple[int, Origin]] = field(default_factory=dict)

    def lock_threshold(self, entity: str, direction: Direction, threshold: int, origin: Origin) -> None:
        held = self.thresholds.get((entity, direction))
        if held is None or threshold < held[0]:
            self.thresholds[(entity, direction)] = (threshold, origin)

    def lock_rule(self, entity: str, direction: Direction, action: str, origin: Origin) -> None:
        held = self.rules.get((entity, direction))
        if held is None or ACTION_STRENGTH[action] > ACTION_STRENGTH[held[0]]:
            self.rules[(entity, direction)] = (action, origin)

    def lock_cap(self, window: str, limit_nusd: int, mode: Mode, origin: Origin) -> None:
        held = self.cap_limits.get(window)
        if held is None or limit_nusd < held[0]:
            self.cap_limits[window] = (limit_nusd, origin)
        if mode == "enforce" and window not in self.cap_enforced:
            self.cap_enforced[window] = origin

    def lock_limit(self, rule: LimitRule, origin: Origin) -> None:
        name = _limit_name(rule.line.kind, rule.line.window_s, rule.tools)
        held = self.limits.get(name)
        if held is None or rule.line.limit < held[0]:
            self.limits[name] = (rule.line.limit, origin)
        enforced = self.limit_enforced.get(name)
        if rule.mode == "enforce" and (enforced is None or rule.rollout_percent > enforced[0]):
            self.limit_enforced[name] = (rule.rollout_percent, origin)

    def covers(self, entity: str) -> Origin | None:
        """Who locks a rule on this type, in either direction (None: nobody)."""
        held = self.rules.get((entity, "request")) or self.rules.get((entity, "response"))
        return held[1] if held is not None else None

    def below(self, entity: str, direction: Direction, action: str) -> tuple[str, Origin, bool] | None:
        """The floor `action` falls below, if any: (the floor's action, who locks it, whether the
        floor is a response lock that a request pseudonym would undo)."""
        held = self.rules.get((entity, direction))
        if held is not None and ACTION_STRENGTH[action] < ACTION_STRENGTH[held[0]]:
            return held[0], held[1], False
        if action == "pseudonymize":
            response = self.response_lock(entity)
            if response is not None:
                return "redact", response[1], True
        return None

    def response_lock(self, entity: str) -> tuple[str, Origin] | None:
        """A lock of `redact` or `block` on responses of this type: the originals of request
        pseudonyms, which the gateway writes back into responses, must not pass it."""
        held = self.rules.get((entity, "response"))
        return held if held is not None and ACTION_STRENGTH[held[0]] >= _STRICT_RESPONSE else None


def _rollout_json(rollout: tuple[float, bool | None]) -> dict[str, Any]:
    """A partial rollout as shown: its percent and, in a key's policy, whether the key is in it."""
    return {"percent": rollout[0], "applies": rollout[1]}


@dataclass(frozen=True, slots=True)
class EffectiveRule:
    """One (entity type, direction) in force, with its origin.

    Attributes:
        locked: the rule in force was written locked, or is a floor that raised a weaker rule.
        floor: the strongest lock on this type and direction anywhere in the chain.
        raised_from: the weaker rule (its origin and action) that a floor replaced.
    """

    entity: str
    direction: Direction
    action: str
    origin: Origin
    locked: bool
    floor: tuple[str, Origin] | None = None
    raised_from: tuple[Origin, str] | None = None
    rollout: tuple[float, bool] | None = None  # (percent, whether the key is in it) of a partial rollout
    min_confidence: int | None = None  # the confidence threshold in force (None: the type's default)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "entities": [self.entity],
            "action": self.action,
            "direction": self.direction,
            "origin": self.origin.level,
            "origin_id": self.origin.id,
            "locked": self.locked,
        }
        if self.floor is not None:
            out["floor"] = {"action": self.floor[0], **self.floor[1].as_json()}
        if self.raised_from is not None:
            out["raised_from"] = {"action": self.raised_from[1], **self.raised_from[0].as_json()}
        if self.rollout is not None:
            out["rollout"] = _rollout_json(self.rollout)
        if self.min_confidence is not None:
            out["min_confidence"] = self.min_confidence
        return out


@dataclass(frozen=True, slots=True)
class EffectiveCap:
    """One cap in force, with its origin; `clamped_from` is the (limit, mode) a floor lowered."""

    line: CapLine
    origin: Origin
    locked: bool
    clamped_from: tuple[int, Mode] | None = None
    rollout: tuple[float, bool | None] | None = None  # (percent, whether the key is in it; None: no key)

    def as_json(self) -> dict[str, Any]:
        c = self.line
        out: dict[str, Any] = {
            "level": c.level,
            "entity_id": c.entity_id,
            "window": c.window,
            "limit_nusd": c.limit_nusd,
            "limit_usd": format_usd(c.limit_nusd).lstrip("$"),
            "mode": c.mode,
            "on_insufficient": c.on_insufficient,
            "substitute_model": c.substitute_model,
            "substitute_at_percent": c.substitute_at_percent,
            "thresholds": list(c.thresholds),
            "origin": self.origin.level,
            "locked": self.locked,
        }
        if self.clamped_from is not None:
            out["clamped_from"] = {"limit_nusd": self.clamped_from[0], "mode": self.clamped_from[1]}
        if self.rollout is not None:
            out["rollout"] = _rollout_json(self.rollout)
        return out


@dataclass(frozen=True, slots=True)
class EffectiveLimit:
    """One rate limit in force, with its origin; `raised_from` is the (limit, mode, rollout) a
    lock above changed; `rollout` a partial rollout by key (its percent, and for a key's policy
    whether the key is in it, decided as the gateway decides it)."""

    rule: LimitRule
    origin: Origin
    locked: bool
    raised_from: tuple[int, str, float] | None = None
    rollout: tuple[float, bool | None] | None = None

    def as_json(self) -> dict[str, Any]:
        r, line = self.rule, self.rule.line
        out: dict[str, Any] = {
            "level": line.level,
            "entity_id": line.entity_id,
            "kind": line.kind,
            "limit": line.limit,
            "window_s": None if line.kind == "concurrent" else line.window_s,
            "mode": r.mode,
            "rollout_percent": r.rollout_percent,
            "rollout_by": r.rollout_by,
            "on_redis_error": r.on_redis_error,
            "substitute_model": r.substitute_model,
            "tools": list(r.tools) if r.tools is not None else None,
            "origin": self.origin.level,
            "origin_id": self.origin.id,
            "locked": self.locked,
        }
        if self.raised_from is not None:
            limit, mode, rollout = self.raised_from
            out["raised_from"] = {"limit": limit, "mode": mode, "rollout_percent": rollout}
        if self.rollout is not None:
            out["rollout"] = _rollout_json(self.rollout)
        return out


def _limit_name(kind: str, window_s: int, tools: Sequence[str] | None = None) -> tuple[str, int, str]:
    """What a lock on a rate limit binds: its kind and window (any window for `concurrent`), and
    for a limit on tool calls its tool patterns (a lock on model calls does not bind those)."""
    return (kind, 0 if kind == "concurrent" else window_s, tool_scope(tools) if tools else "")


@dataclass(frozen=True, slots=True)
class EffectivePattern:
    """A custom pattern with its origin."""

    pattern: CustomPattern
    origin: Origin

    def as_json(self) -> dict[str, Any]:
        return {**self.pattern.model_dump(), "origin": self.origin.level, "origin_id": self.origin.id}


@dataclass(frozen=True, slots=True)
class EffectiveAllow:
    """A level's allowed terms with their origin; `refused` the types a lock above keeps them
    from (left out of `terms`' types in force)."""

    allow: AllowTerms
    origin: Origin
    refused: tuple[tuple[str, Origin], ...] = ()

    @property
    def in_force(self) -> AllowTerms | None:
        """The terms for the types no lock above refuses (None: none)."""
        if not self.refused:
            return self.allow
        gone = {entity for entity, _ in self.refused}
        entities = [e for e in self.allow.entities if e not in gone]
        return AllowTerms(entities=entities, terms=self.allow.terms) if entities else None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self.allow.model_dump(), "origin": self.origin.level, "origin_id": self.origin.id}
        if self.refused:
            out["refused"] = [{"entity": e, "locked_by": by.as_json()} for e, by in self.refused]
        return out


@dataclass(frozen=True, slots=True)
class EffectiveLoop:
    """A loop rule in force, with its origin; `raised_from` is the laxer rule a lock replaced."""

    line: LoopLine
    origin: Origin
    locked: bool
    floor: Origin | None = None
    raised_from: tuple[Origin, LoopRuleFields] | None = None
    rollout: tuple[float, bool | None] | None = None  # (percent, whether the key is in it; None: no key)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            **self.line.rule.model_dump(),
            "origin": self.origin.level,
            "origin_id": self.origin.id,
            "locked": self.locked,
        }
        if self.floor is not None:
            out["floor"] = self.floor.as_json()
        if self.raised_from is not None:
            out["raised_from"] = {"rule": self.raised_from[1].model_dump(), **self.raised_from[0].as_json()}
        if self.rollout is not None:
            out["rollout"] = _rollout_json(self.rollout)
        return out


@dataclass(frozen=True, slots=True)
class EffectivePolicy:
    """What applies to one key.

    `caps`, `redaction` and `custom_patterns` are what the data plane adds to the configuration's
    own (`[[spend.caps]]`, `[redaction]`): the policies' caps, rules and patterns after floors.
    `rules`, `cap_origins` and `pattern_origins` describe everything in force, the configuration's
    included, with origins and locks.
    """

    caps: tuple[CapLine, ...] = ()
    redaction: tuple[RedactionRule, ...] = ()
    custom_patterns: tuple[CustomPattern, ...] = ()
    allow_terms: tuple[AllowTerms, ...] = ()  # the policies' terms in force (the configuration's are its own)
    sources: dict[str, str] = field(default_factory=dict)
    rules: tuple[EffectiveRule, ...] = ()
    cap_origins: tuple[EffectiveCap, ...] = ()
    pattern_origins: tuple[EffectivePattern, ...] = ()
    allow_origins: tuple[EffectiveAllow, ...] = ()
    default_action: str | None = None
    redaction_enabled: bool = True
    limits: tuple[LimitRule, ...] = ()
    limit_origins: tuple[EffectiveLimit, ...] = ()
    loops: tuple[LoopLine, ...] = ()  # the loop rules in force (the configuration's included)
    loop_origins: tuple[EffectiveLoop, ...] = ()
    models: ModelRules = EMPTY  # every level's model rules, from the operator's down, and the aliases
    tools: ToolRules = EMPTY_TOOLS  # every level's tool lists, from the operator's down

    @property
    def adds_redaction(self) -> bool:
        """Whether the policies add to the configuration's `[redaction]` (rules, patterns or terms)."""
        return bool(self.redaction or self.custom_patterns or self.allow_terms)

    def redaction_settings(self, base: RedactionSettings) -> RedactionSettings:
        """`base` (the configuration's `[redaction]`) with the policies' rules, patterns and allowed
        terms after its own, so they win (a new object; `base` itself when nothing is added)."""
        if not self.adds_redaction:
            return base
        return base.model_copy(
            update={
                "rules": [*base.rules, *self.redaction],
                "custom_patterns": [*base.custom_patterns, *self.custom_patterns],
                "allow_terms": [*base.allow_terms, *self.allow_terms],
            }
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "loops": [r.as_json() for r in self.loop_origins],
            "caps": [c.as_json() for c in self.cap_origins],
            "limits": [limit.as_json() for limit in self.limit_origins],
            "redaction": [r.as_json() for r in self.rules],
            "custom_patterns": [p.as_json() for p in self.pattern_origins],
            "allow_terms": [a.as_json() for a in self.allow_origins],
            "default_action": self.default_action,
            "redaction_enabled": self.redaction_enabled,
            "models": self.models.as_json(),
            "tools": self.tools.as_json(),
            "sources": self.sources,
        }


@dataclass(frozen=True, slots=True)
class Violation:
    """A part of a policy that would weaken a lock above it."""

    loc: str
    message: str
    locked_by: Origin

    def as_field(self) -> dict[str, Any]:
        return {"loc": self.loc, "msg": self.message, "locked_by": self.locked_by.as_json()}


class _Walk:
    """Reads a chain from the top down, keeping the floors in force at each depth."""

    def __init__(self, org_id: str, operator: OperatorPolicy, key_id: str | None = None) -> None:
        self.org_id = org_id
        self.operator = operator
        self.key_id = key_id  # set when the chain ends at a key: partial rollouts are decided for it
        self.floors = Floors()
        self.rules: dict[tuple[str, Direction], EffectiveRule] = {}
        self.caps: list[EffectiveCap] = []
        self.patterns: list[EffectivePattern] = []
        self.allow: list[EffectiveAllow] = [EffectiveAllow(a, OPERATOR) for a in operator.allow_terms]
        self.limits: list[EffectiveLimit] = []
        self.sources: dict[str, str] = {}
        self.loops: dict[str, EffectiveLoop] = {}
        self.models = _ModelWalk(operator.models, self.floors.models)
        self.tools: list[tuple[str, str | None, ToolRulesIn]] = []
        if operator.tools is not None:
            self._tools("operator", None, operator.tools)
        # the lowest confidence threshold a locked rule allows per (type, direction)
        self.threshold_locks: dict[tuple[str, Direction], int] = {}
        for rule in operator.rules:  # the file's own order; its validator keeps locks unbroken
            for entity in rule.entities:
                for d in _directions(rule):
                    threshold = self._threshold(rule, entity, d)
                    self.rules[(entity, d)] = EffectiveRule(
                        entity, d, rule.action, OPERATOR, rule.locked, min_confidence=threshold
                    )
                    if rule.locked:
                        self.floors.lock_rule(entity, d, rule.action, OPERATOR)
                        self._lock_threshold(entity, d, threshold, OPERATOR)

    def _threshold(self, rule: RedactionRule, entity: str, d: Direction) -> int | None:
        """The threshold `rule` puts in force for `entity` in `d`: its own, else the one in force
        above it; never above a locked rule's (a lock on a type also locks how sure a finding must
        be to be acted on)."""
        threshold = rule.threshold(entity)
        if threshold is None:
            held = self.rules.get((entity, d))
            threshold = held.min_confidence if held is not None else None
        lock = self.threshold_locks.get((entity, d))
        if lock is not None and (threshold if threshold is not None else default_min_confidence(entity)) > lock:
            return lock
        return threshold

    def _lock_threshold(self, entity: str, d: Direction, threshold: int | None, origin: Origin) -> None:
        value = threshold if threshold is not None else default_min_confidence(entity)
        self.threshold_locks[(entity, d)] = min(value, self.threshold_locks.get((entity, d), value))
        self.floors.lock_threshold(entity, d, value, origin)

    def _tools(self, level: str, entity_id: str | None, rules: ToolRulesIn) -> None:
        """A level's tool lists: each applies (denies add up, allows narrow); locked ones fence below."""
        self.tools.append((level, entity_id, rules))
        origin = OPERATOR if level == "operator" else Origin(level, entity_id)  # type: ignore[arg-type]
        if rules.allow_locked and rules.allow is not None:
            self.floors.tools.allow.append((tuple(rules.allow), origin))
        if rules.deny_locked:
            self.floors.tools.deny += [(p, origin) for p in rules.deny]

    def enter(self, level: Level, entity_id: str) -> None:
        """The configuration's caps on this entity: shown, and the locked ones bind it and below."""
        for line, locked in self.operator.caps_on(self.org_id, level, entity_id):
            self.caps.append(EffectiveCap(line, OPERATOR, locked))
            if locked:
                self.floors.lock_cap(line.window, line.limit_nusd, line.mode, OPERATOR)
        for rule, locked in self.operator.limits_on(self.org_id, level, entity_id):
            self.limits.append(EffectiveLimit(rule, OPERATOR, locked))
            if locked:
                self.floors.lock_limit(rule, OPERATOR)
        _walk_loops(self, level, entity_id, [(r.rule, locked) for r, locked in self._operator_loops(level, entity_id)])

    def _operator_loops(self, level: Level, entity_id: str) -> list[tuple[LoopLine, bool]]:
        return [
            (r, locked)
            for r, locked in self.operator.loops
            if r.org_id == self.org_id and r.level == level and r.entity_id == entity_id
        ]

    def apply(self, level: Level, entity_id: str, policy: PolicyIn) -> None:
        """One level's policy under the floors from above; its own locks bind only what follows."""
        origin = Origin(level, entity_id)
        floors = self.floors
        self.sources[level] = entity_id
        self._limits(level, entity_id, origin, policy.limits)
        if policy.models is not None:
            self.models.apply(level, entity_id, policy.models)
        if policy.tools is not None and not policy.tools.empty:
            self._tools(level, entity_id, policy.tools)
        for p in policy.custom_patterns:
            if floors.covers(p.entity) is None:  # replaces the definitions above it
                kept = [q for q in self.patterns if q.pattern.entity != p.entity or q.origin == origin]
                self.patterns = [*kept, EffectivePattern(p, origin)]
            else:  # locked above: the definition above stays, this one is added beside it
                self.patterns.append(EffectivePattern(p, origin))
        for allow in policy.allow_terms:
            refused = tuple((e, by) for e in allow.entities if (by := floors.covers(e)) is not None)
            self.allow.append(EffectiveAllow(allow, origin, refused))
        cap_locks: list[tuple[str, int, Mode]] = []
        for cap in policy.caps:
            limit, mode = cap.limit_nusd, cap.mode
            held = floors.cap_limits.get(cap.window)
            if held is not None and limit > held[0]:
                limit = held[0]
            if mode == "monitor" and cap.window in floors.cap_enforced:
                mode = "enforce"
            rollout: tuple[float, bool | None] | None = None
            if mode == "enforce" and cap.rollout_percent < 100 and cap.window not in floors.cap_enforced:
                applies = None
                if self.key_id is not None:
                    name = rollout_id(CapLine(level, entity_id, self.org_id, cap.window, 0))
                    applies = bites("enforce", cap.rollout_percent, name, self.key_id)
                    mode = "enforce" if applies else "monitor"
                rollout = (cap.rollout_percent, applies)
            line = CapLine(
                level=level,
                entity_id=entity_id,
                org_id=self.org_id,
                window=cap.window,
                limit_nusd=limit,
                mode=mode,
                on_insufficient=cap.on_insufficient,
                thresholds=tuple(cap.thresholds) if cap.thresholds is not None else DEFAULT_THRESHOLDS,
                substitute_model=cap.substitute_model,
                substitute_at_percent=cap.substitute_at_percent,
            )
            clamped = (cap.limit_nusd, cap.mode) if (limit, mode) != (cap.limit_nusd, cap.mode) else None
            self.caps.append(EffectiveCap(line, origin, cap.locked, clamped, rollout))
            if cap.locked:
                cap_locks.append((cap.window, limit, mode))
        mine: dict[tuple[str, Direction], tuple[str, bool, tuple[float, bool] | None, int | None]] = {}
        rule_locks: list[tuple[str, Direction, str, int | None]] = []
        for rule in policy.redaction:
            action, partial = rule.action, None
            if action != "monitor" and rule.rollout_percent < 100 and self.key_id is not None:
                applies = bites("enforce", rule.rollout_percent, rule.rollout_id(level, entity_id), self.key_id)
                action, partial = (action if applies else "monitor"), (rule.rollout_percent, applies)
            for entity in rule.entities:
                for d in _directions(rule):
                    threshold = self._threshold(rule, entity, d)
                    mine[(entity, d)] = (action, rule.locked, partial, threshold)
                    if rule.locked:
                        rule_locks.append((entity, d, rule.action, threshold))
        for (entity, d), (action, locked, partial, threshold) in mine.items():
            below = floors.below(entity, d, action)
            if below is None:
                self.rules[(entity, d)] = EffectiveRule(
                    entity, d, action, origin, locked, rollout=partial, min_confidence=threshold
                )
            else:
                self.rules[(entity, d)] = EffectiveRule(
                    entity, d, below[0], below[1], True, None, (origin, action), min_confidence=threshold
                )
        for entity, d, action, threshold in rule_locks:
            floors.lock_rule(entity, d, action, origin)
            self._lock_threshold(entity, d, threshold, origin)
        for window, limit, mode in cap_locks:
            floors.lock_cap(window, limit, mode, origin)
        _walk_loops(self, level, entity_id, [(r, r.locked) for r in policy.loops], origin)

    def _limits(self, level: Level, entity_id: str, origin: Origin, limits: list[LimitIn]) -> None:
        """One level's rate limits: each a line on this level's entity, raised to the locks above;
        its own locks bind the levels below."""
        locks: list[LimitRule] = []
        for spec in limits:
            limit, mode, rollout = spec.limit, spec.mode, spec.rollout_percent
            name = _limit_name(spec.kind, spec.window_s, spec.tools)
            held = self.floors.limits.get(name)
            if held is not None and limit > held[0]:
                limit = held[0]
            enforced = self.floors.limit_enforced.get(name)
            if enforced is not None and (mode == "monitor" or rollout < enforced[0]):
                mode, rollout = "enforce", max(rollout, enforced[0])
            rule = limit_rule(level, entity_id, self.org_id, spec, limit, mode, rollout)
            raised = (spec.limit, spec.mode, spec.rollout_percent)
            partial = None
            if rule.always is None and rule.rollout_by == "key":
                partial = (rollout, rule.bites(self.key_id) if self.key_id is not None else None)
            changed = None if raised == (limit, mode, rollout) else raised
            self.limits.append(EffectiveLimit(rule, origin, spec.locked, changed, partial))
            if spec.locked:
                locks.append(rule)
        for rule in locks:
            self.floors.lock_limit(rule, origin)

    def result(self) -> EffectivePolicy:
        floors = self.floors
        rules: list[EffectiveRule] = []
        for (entity, d), rule in self.rules.items():
            response = floors.response_lock(entity) if rule.action == "pseudonymize" else None
            if response is not None:
                # a pseudonym whose original would come back in a response that a lock (maybe set
                # further down than the pseudonym) keeps such values out of
                rule = EffectiveRule(
                    entity,
                    d,
                    "redact",
                    response[1],
                    True,
                    None,
                    (rule.origin, rule.action),
                    min_confidence=rule.min_confidence,
                )
            held = floors.rules.get((entity, d))
            if held is not None:
                rule = dataclasses.replace(rule, floor=held)
            rules.append(rule)
        return EffectivePolicy(
            caps=tuple(c.line for c in self.caps if c.origin.level != "operator"),
            redaction=tuple(
                RedactionRule(
                    entities=[r.entity],
                    action=r.action,  # type: ignore[arg-type]
                    direction=r.direction,
                    min_confidence=r.min_confidence,
                )
                for r in rules
                if r.origin.level != "operator" or r.raised_from is not None
            ),
            custom_patterns=tuple(p.pattern for p in self.patterns),
            allow_terms=tuple(
                terms for a in self.allow if a.origin.level != "operator" and (terms := a.in_force) is not None
            ),
            sources=self.sources,
            rules=tuple(rules),
            cap_origins=tuple(self.caps),
            pattern_origins=tuple(self.patterns),
            allow_origins=tuple(self.allow),
            default_action=self.operator.default_action,
            redaction_enabled=self.operator.redaction_enabled,
            limits=tuple(limit.rule for limit in self.limits if limit.origin.level != "operator"),
            limit_origins=tuple(self.limits),
            loops=tuple(r.line for r in self.loops.values()),
            loop_origins=tuple(self.loops.values()),
            models=self.models.result(),
            tools=ToolRules(tuple(tool_rule_set(lvl, eid, r) for lvl, eid, r in self.tools)),
        )


def limit_rule(
    level: Level, entity_id: str, org_id: str, spec: LimitIn, limit: int, mode: str, rollout: float
) -> LimitRule:
    """A policy's rate limit as the line the data plane counts on (a `concurrent` limit has no window)."""
    window_s = 60 if spec.kind == "concurrent" else spec.window_s
    scope = tool_scope(spec.tools) if spec.tools else ""
    line = LimitLine(level, entity_id, org_id, spec.kind, limit, window_s, scope)
    return LimitRule(
        line,
        mode,  # type: ignore[arg-type]
        rollout,
        spec.rollout_by,
        on_redis_error=spec.on_redis_error,
        substitute_model=spec.substitute_model,
        tools=tuple(spec.tools) if spec.tools else None,
    )


def chain_of(level: Level, row: dict[str, Any]) -> list[tuple[Level, str]]:
    """The levels above and including an org, workspace, user or key row, from the top."""
    if level == "org":
        return [("org", row["id"])]
    chain: list[tuple[Level, str]] = [("org", row["org_id"])]
    if level != "workspace":
        chain.append(("workspace", row["workspace_id"]))
    if level == "key" and row.get("user_id"):
        chain.append(("user", row["user_id"]))
    chain.append((level, row["id"]))
    return chain


def effective(org_id: str, chain: Chain, operator: OperatorPolicy | None = None) -> EffectivePolicy:
    """Combine the policies of `chain` (org first, key last; a missing policy is None) under the
    operator's configuration, raising whatever a lock above it forbids back to the lock."""
    key_id = chain[-1][1] if chain and chain[-1][0] == "key" else None
    walk = _Walk(org_id, operator or OperatorPolicy(), key_id)
    for level, entity_id, policy in chain:
        walk.enter(level, entity_id)
        if policy is not None:
            walk.apply(level, entity_id, policy)
    return walk.result()


def floors_for(org_id: str, above: Chain, level: Level, entity_id: str, operator: OperatorPolicy | None) -> Floors:
    """The locks a policy written on (`level`, `entity_id`) is under: the operator's, those of the
    levels `above` it (org first), and the configuration's locked caps on the entity itself."""
    walk = _Walk(org_id, operator or OperatorPolicy())
    for lvl, eid, policy in above:
        walk.enter(lvl, eid)
        if policy is not None:
            walk.apply(lvl, eid, policy)
    walk.enter(level, entity_id)
    return walk.floors


def violations(floors: Floors, policy: PolicyIn) -> list[Violation]:
    """Every part of `policy` that is weaker than a lock in `floors` (empty: it may be written)."""
    out: list[Violation] = _loop_violations(floors, policy.loops)
    for i, rule in enumerate(policy.redaction):
        for entity in rule.entities:
            for d in _directions(rule):
                below = floors.below(entity, d, rule.action)
                if below is None:
                    continue
                action, by, restores = below
                if restores:
                    message = (
                        f"pseudonymize for {entity} puts the original back into the response, "
                        f"where {by} locks {floors.rules[(entity, 'response')][0]}; use redact or block instead"
                    )
                else:
                    message = (
                        f"{rule.action} for {entity} ({d}) is weaker than the {action} that {by} locks; "
                        "below a lock a rule may only be as strict or stricter "
                        "(monitor < pseudonymize < redact < block)"
                    )
                out.append(Violation(f"redaction.{i}", message, by))
        # a threshold above a locked rule's would leave findings the lock acts on alone
        for entity in rule.entities:
            threshold = rule.threshold(entity)
            if threshold is None:
                continue
            for d in _directions(rule):
                held = floors.thresholds.get((entity, d))
                if held is not None and threshold > held[0]:
                    message = (
                        f"min_confidence {threshold} for {entity} ({d}) is above the threshold of {held[0]} "
                        f"that {held[1]} locks; below a lock a threshold may only be as low or lower"
                    )
                    out.append(Violation(f"redaction.{i}", message, held[1]))
    for i, allow in enumerate(policy.allow_terms):
        for entity in allow.entities:
            by = floors.covers(entity)
            if by is not None:
                message = (
                    f"allowed terms for {entity}, which {by} locks: a lock on a type also fixes what is "
                    "exempt from it, so only the level that holds the lock (or one above) may allow terms"
                )
                out.append(Violation(f"allow_terms.{i}", message, by))
    for i, cap in enumerate(policy.caps):
        held = floors.cap_limits.get(cap.window)
        if held is not None and cap.limit_nusd > held[0]:
            message = (
                f"a {cap.window} cap of {format_usd(cap.limit_nusd)} is above the {cap.window} cap of "
                f"{format_usd(held[0])} that {held[1]} locks; below it a cap may only be lower"
            )
            out.append(Violation(f"caps.{i}", message, held[1]))
        enforced_by = floors.cap_enforced.get(cap.window)
        if enforced_by is not None and cap.mode == "monitor":
            message = f"a monitor-only {cap.window} cap is under the enforced {cap.window} cap that {enforced_by} locks"
            out.append(Violation(f"caps.{i}", message + "; it must enforce", enforced_by))
        elif enforced_by is not None and cap.rollout_percent < 100:
            message = (
                f"a {cap.window} cap rolled out to {cap.rollout_percent:g}% of keys is under the enforced "
                f"{cap.window} cap that {enforced_by} locks; it must enforce for every key (rollout_percent 100)"
            )
            out.append(Violation(f"caps.{i}", message, enforced_by))
    out += model_violations(floors.models, policy.models)
    out += tool_violations(floors.tools, policy.tools)
    out += _limit_violations(floors, policy.limits)
    return out


def _limit_violations(floors: Floors, limits: list[LimitIn]) -> list[Violation]:
    """The rate limits of a policy that a lock above forbids: higher than the locked one of their
    kind and window, or biting less than an enforcing one."""
    out: list[Violation] = []
    for i, spec in enumerate(limits):
        name = _limit_name(spec.kind, spec.window_s, spec.tools)
        what = f"{spec.kind} limit" if spec.kind == "concurrent" else f"{spec.kind} limit per {spec.window_s} s"
        held = floors.limits.get(name)
        if held is not None and spec.limit > held[0]:
            message = (
                f"a {what} of {spec.limit} is above the {what} of {held[0]} that {held[1]} locks; "
                "below it a limit may only be lower"
            )
            out.append(Violation(f"limits.{i}.limit", message, held[1]))
        enforced = floors.limit_enforced.get(name)
        if enforced is not None and spec.mode == "monitor":
            message = f"a monitor-only {what} is under the enforced {what} that {enforced[1]} locks; it must enforce"
            out.append(Violation(f"limits.{i}.mode", message, enforced[1]))
        elif enforced is not None and spec.rollout_percent < enforced[0]:
            message = (
                f"a {what} rolled out to {spec.rollout_percent:g}% is under the {what} that {enforced[1]} locks "
                f"at {enforced[0]:g}%; it must bite at least as often"
            )
            out.append(Violation(f"limits.{i}.rollout_percent", message, enforced[1]))
    return out


# ── model access rules ────────────────────────────────────────────────────────────────────────
#
# Deny lists add up (a deny anywhere wins) and allow lists narrow (a model must pass every one), at
# request time, whatever is locked. Aliases: a lower level's replaces one of the same name. Ceilings:
# a level that sets any replaces the unlocked ones above it; locked ones stay in force beside it.
# Field rules add up. Locks are checked at write (`model_violations`): below a locked allow list an
# allow entry or alias target must fall within it, below a locked deny none may fall wholly within
# it, and below a locked ceiling a ceiling for models it covers may only be lower.


@dataclass(slots=True)
class ModelFloors:
    """The model locks in force at one depth of a chain: locked allow lists, locked deny patterns
    and locked ceilings, each with who locked it."""

    allow: list[tuple[tuple[str, ...], Origin]] = field(default_factory=list)
    deny: list[tuple[str, Origin]] = field(default_factory=list)
    ceilings: list[tuple[CeilingIn, Origin]] = field(default_factory=list)


class _ModelWalk:
    """The model rules of a chain, read from the top (the operator's `[models]` first)."""

    def __init__(self, operator: ModelRulesIn | None, floors: ModelFloors) -> None:
        self.floors = floors
        self.levels: list[tuple[str, str | None, ModelRulesIn]] = []
        self.ceilings: list[tuple[int, CeilingIn]] = []  # in force: (index in levels, ceiling)
        self.replaced: list[tuple[int, CeilingIn]] = []
        self.aliases: dict[str, Alias] = {}
        if operator is not None and not operator.empty:
            self.apply("operator", None, operator)

    def apply(self, level: str, entity_id: str | None, rules: ModelRulesIn) -> None:
        index = len(self.levels)
        self.levels.append((level, entity_id, rules))
        if rules.ceilings:
            self.replaced += [(i, c) for i, c in self.ceilings if not c.locked]
            self.ceilings = [(i, c) for i, c in self.ceilings if c.locked] + [(index, c) for c in rules.ceilings]
        for name, target in rules.aliases.items():
            self.aliases[name] = Alias(name, target, level, entity_id)
        origin = OPERATOR if level == "operator" else Origin(level, entity_id)  # type: ignore[arg-type]
        if rules.allow_locked and rules.allow is not None:
            self.floors.allow.append((tuple(rules.allow), origin))
        if rules.deny_locked:
            self.floors.deny += [(p, origin) for p in rules.deny]
        self.floors.ceilings += [(c, origin) for c in rules.ceilings if c.locked]

    def result(self) -> ModelRules:
        if not self.levels:
            return EMPTY
        sets = tuple(
            rule_set(level, eid, rules, [c for i, c in self.ceilings if i == index])
            for index, (level, eid, rules) in enumerate(self.levels)
        )
        return ModelRules(sets, dict(self.aliases), tuple((sets[i], c) for i, c in self.replaced))


def model_violations(floors: ModelFloors, rules: ModelRulesIn | None) -> list[Violation]:
    """Every part of a policy's `models` that a model lock above it forbids."""
    out: list[Violation] = []
    if rules is None:
        return out

    def fenced(pattern: str, loc: str, what: str) -> None:
        for allowed, by in floors.allow:
            if not any(glob_within(pattern, a) for a in allowed):
                shown = ", ".join(repr(a) for a in allowed[:5])
                message = (
                    f"{what} {pattern!r} reaches outside the allow list that {by} locks ({shown}); "
                    "below it an allow list may only narrow"
                )
                out.append(Violation(loc, message, by))
        for denied, by in floors.deny:
            if glob_within(pattern, denied):
                out.append(Violation(loc, f"{what} {pattern!r} names models that {by} denies ({denied!r}, locked)", by))

    for i, pattern in enumerate(rules.allow or ()):
        fenced(pattern, f"models.allow.{i}", "allow")
    for name, target in rules.aliases.items():
        fenced(target, f"models.aliases.{name}", f"the alias {name!r} stands for")
    for i, c in enumerate(rules.ceilings):
        for locked, by in floors.ceilings:
            if c.max_output_tokens > locked.max_output_tokens and any(
                globs_meet(a, b) for a in c.models for b in locked.models
            ):
                message = (
                    f"a ceiling of {c.max_output_tokens} output tokens is above the ceiling of "
                    f"{locked.max_output_tokens} that {by} locks for {', '.join(map(repr, locked.models))}; "
                    "below it a ceiling may only be lower"
                )
                out.append(Violation(f"models.ceilings.{i}", message, by))
    return out


def tool_violations(floors: ModelFloors, rules: ToolRulesIn | None) -> list[Violation]:
    """Every allow entry of a policy's `tools` that a tool lock above it forbids: outside a locked
    allow list, or wholly within a locked deny pattern (the model lists' rules, on `server/tool`)."""
    out: list[Violation] = []
    for i, pattern in enumerate((rules.allow or ()) if rules is not None else ()):
        for allowed, by in floors.allow:
            if not any(glob_within(pattern, a) for a in allowed):
                shown = ", ".join(repr(a) for a in allowed[:5])
                message = (
                    f"allow {pattern!r} reaches outside the tool allow list that {by} locks ({shown}); "
                    "below it an allow list may only narrow"
                )
                out.append(Violation(f"tools.allow.{i}", message, by))
        for denied, by in floors.deny:
            if glob_within(pattern, denied):
                message = f"allow {pattern!r} names tools that {by} denies ({denied!r}, locked)"
                out.append(Violation(f"tools.allow.{i}", message, by))
    return out


# ── loop rules ────────────────────────────────────────────────────────────────────────────────────


def loop_laxer(rule: LoopRuleFields, floor: LoopRuleFields) -> list[str]:
    """How `rule` is laxer than the locked `floor` of the same kind (empty: it is not).

    Laxer is: a higher `max_repeats`, a shorter repeat `window_s` (the same count in less time is a
    faster loop), a higher `factor` or `min_requests`, a weaker action (monitor < throttle < block),
    a shorter cool-down (under a locked block) or throttle interval (under a locked throttle),
    monitor-only under an enforcing lock, or a smaller rollout.
    """
    out: list[str] = []
    if rule.detect == "repeat":
        if rule.max_repeats > floor.max_repeats:
            out.append(f"max_repeats {rule.max_repeats} > {floor.max_repeats}")
        if rule.window_s < floor.window_s:
            out.append(f"window_s {rule.window_s} < {floor.window_s}")
    else:
        if rule.factor > floor.factor:
            out.append(f"factor {rule.factor:g} > {floor.factor:g}")
        if rule.min_requests > floor.min_requests:
            out.append(f"min_requests {rule.min_requests} > {floor.min_requests}")
    if LOOP_STRENGTH[rule.action] < LOOP_STRENGTH[floor.action]:
        out.append(f"action {rule.action} is weaker than {floor.action} (monitor < throttle < block)")
    if floor.action == "block" and rule.cooldown_s < floor.cooldown_s:
        out.append(f"cooldown_s {rule.cooldown_s} < {floor.cooldown_s}")
    if floor.action == "throttle" and rule.throttle_interval_s < floor.throttle_interval_s:
        out.append(f"throttle_interval_s {rule.throttle_interval_s} < {floor.throttle_interval_s}")
    if floor.mode == "enforce" and rule.mode == "monitor":
        out.append("mode monitor under an enforcing lock")
    if floor.mode == "enforce" and rule.rollout_percent < floor.rollout_percent:
        out.append(f"rollout_percent {rule.rollout_percent:g} < {floor.rollout_percent:g}")
    return out


def _raise_loop(rule: LoopRuleFields, floor: LoopRuleFields) -> LoopRuleFields:
    """`rule` with every field that `loop_laxer` names raised to the floor's."""
    up: dict[str, Any] = {}
    if rule.detect == "repeat":
        up["max_repeats"] = min(rule.max_repeats, floor.max_repeats)
        up["window_s"] = max(rule.window_s, floor.window_s)
    else:
        up["factor"] = min(rule.factor, floor.factor)
        up["min_requests"] = min(rule.min_requests, floor.min_requests)
    if LOOP_STRENGTH[rule.action] < LOOP_STRENGTH[floor.action]:
        up["action"] = floor.action
    if floor.action == "block":
        up["cooldown_s"] = max(rule.cooldown_s, floor.cooldown_s)
    if floor.action == "throttle":
        up["throttle_interval_s"] = max(rule.throttle_interval_s, floor.throttle_interval_s)
    if floor.mode == "enforce":
        up["mode"] = "enforce"
        up["rollout_percent"] = max(rule.rollout_percent, floor.rollout_percent)
    fields = rule.model_dump(include=set(LoopRuleFields.model_fields))
    return LoopRuleFields.model_validate({**fields, **up})


def _walk_loops(
    walk: _Walk, level: Level, entity_id: str, rules: list[tuple[LoopRuleFields, bool]], origin: Origin | None = None
) -> None:
    """One level's loop rules (the operator's on this entity when `origin` is None): each replaces
    the rule of its kind above, raised to the lock above it; its own lock binds what follows."""
    who = origin or OPERATOR
    locks: list[tuple[str, LoopRuleFields]] = []
    for rule, locked in rules:
        fields = LoopRuleFields.model_validate(rule.model_dump(include=set(LoopRuleFields.model_fields)))
        held = walk.floors.loops.get(fields.detect)
        raised = None
        if held is not None and loop_laxer(fields, held[0]):
            raised, fields = (who, fields), _raise_loop(fields, held[0])
        line = LoopLine(fields, level, entity_id, walk.org_id, operator=origin is None)
        floor = held[1] if held is not None else None
        rollout = None
        if fields.mode == "enforce" and fields.rollout_percent < 100:  # as the data plane decides it
            key = walk.key_id
            applies = bites("enforce", fields.rollout_percent, line.rule_id, key) if key is not None else None
            rollout = (fields.rollout_percent, applies)
        walk.loops[fields.detect] = EffectiveLoop(line, who, locked, floor, raised, rollout)
        if locked:
            locks.append((fields.detect, fields))
    for detect, fields in locks:
        walk.floors.loops[detect] = (fields, who)


def _loop_violations(floors: Floors, rules: list[LoopRuleIn]) -> list[Violation]:
    out: list[Violation] = []
    for i, rule in enumerate(rules):
        held = floors.loops.get(rule.detect)
        if held is None:
            continue
        laxer = loop_laxer(rule, held[0])
        if laxer:
            message = (
                f"this {rule.detect} loop rule is laxer than the one {held[1]} locks ({'; '.join(laxer)}); "
                "below a lock a loop rule may only be as strict or stricter"
            )
            out.append(Violation(f"loops.{i}", message, held[1]))
    return out
