"""The model access step of the pipeline: aliases, allow and deny lists of models, output ceilings
and rules on request fields, from the caller's chain (the config file's `[models]`, then its org,
workspace, user and key policies, as `control.policies` combines them), before the request is
routed.

On a call, in this order:

1. the alias: when the model asked for is one, the body's model becomes the concrete model (an
   `alias` event), so the router routes it and the response's `model` tells the truth;
2. the model lists of every level, from the top: a deny anywhere refuses, and the model must be on
   every allow list of the chain;
3. the field rules (`ParamRuleIn`), each level's in turn;
4. the ceilings: refusals (`action = "refuse"`) on the caller's own values first, then the lowest
   `clamp` ceiling lowers the output limit (a `clamp` event); a request without a limit gets the
   lowest ceiling in force written in.

Each level's rules bite or only monitor per its mode and rollout (`policy.rollout.bites`, the rule
id `models:<level>:<id>`): the first refusal that bites answers 403 `model_not_allowed` or 400
`parameter_not_allowed` / `max_tokens_above_ceiling` in the caller's format, naming the level, the
id and the list or rule; every refusal that does not bite is a `would_refuse` event and the call
goes ahead. Aliases are routing, not restriction: they apply in every mode.

Which names the lists see. Deny: the name asked for, the concrete model, and the concrete model
without a `provider/` prefix naming a configured provider (neither an alias nor a prefix walks
around a deny). Allow: the concrete model, with or without that prefix (an alias's name is not a
model: what it stands for must be allowed).

Events carry levels, ids, patterns, model and field names; never the request's values or content.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sluicegate.errors import InvalidRequest, ModelNotAllowed, ParameterNotAllowed
from sluicegate.formats.base import WireFormat
from sluicegate.observe.events import PolicyEvent
from sluicegate.policy.auth import Identity
from sluicegate.policy.model_rules import (
    MAX_OUTPUT_TOKENS,
    CeilingIn,
    ModelRulesIn,
    ParamRuleIn,
    Scalar,
    compile_globs,
    matching,
)
from sluicegate.policy.rollout import Mode, RolloutBy, bites

__all__ = ["EMPTY", "Alias", "ModelPolicy", "ModelRules", "RuleSet", "operator_rules"]


@dataclass(frozen=True, slots=True)
class RuleSet:
    """One level's model rules as they apply to a caller (the ceilings still in force only).

    Attributes:
        level: `operator`, `org`, `workspace`, `user` or `key`.
        entity_id: the entity (None for the operator's configuration).
    """

    level: str
    entity_id: str | None
    allow: tuple[str, ...] | None = None
    deny: tuple[str, ...] = ()
    ceilings: tuple[CeilingIn, ...] = ()
    params: tuple[ParamRuleIn, ...] = ()
    mode: Mode = "enforce"
    rollout_percent: float = 100.0
    rollout_by: RolloutBy = "key"
    allow_locked: bool = False
    deny_locked: bool = False
    # Compiled once: the lists and each ceiling's models, as one regex each.
    deny_rx: re.Pattern[str] = field(init=False, repr=False, compare=False)
    allow_rx: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    ceiling_rx: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)
    rule_id: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "deny_rx", compile_globs(self.deny))
        set_(self, "allow_rx", compile_globs(self.allow) if self.allow is not None else None)
        set_(self, "ceiling_rx", tuple(compile_globs(tuple(c.models)) for c in self.ceilings))
        set_(self, "rule_id", f"models:{self.level}:{self.entity_id or ''}")

    def where(self) -> str:
        return "the operator's configuration" if self.level == "operator" else f"{self.level} {self.entity_id!r}"

    def rule(self, list_name: str, **more: Any) -> dict[str, Any]:
        return {"level": self.level, "id": self.entity_id, "list": list_name, **more}

    @property
    def checks(self) -> bool:
        """Whether this level has anything to check (an alias-only level has not)."""
        return self.allow is not None or bool(self.deny or self.ceilings or self.params)

    def as_json(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "id": self.entity_id,
            "allow": list(self.allow) if self.allow is not None else None,
            "allow_locked": self.allow_locked,
            "deny": list(self.deny),
            "deny_locked": self.deny_locked,
            "ceilings": [c.model_dump() for c in self.ceilings],
            "params": [p.model_dump() for p in self.params],
            "mode": self.mode,
            "rollout_percent": self.rollout_percent,
            "rollout_by": self.rollout_by,
        }


@dataclass(frozen=True, slots=True)
class Alias:
    """`name` stands for the concrete model `target`; set by `level` `entity_id`."""

    name: str
    target: str
    level: str
    entity_id: str | None

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "target": self.target, "origin": self.level, "origin_id": self.entity_id}


@dataclass(frozen=True, slots=True)
class ModelRules:
    """Every level's model rules that apply to a caller, from the top, and its aliases.

    Attributes:
        sets: one per level with rules to check, the operator's first.
        aliases: name -> the alias in force (the lowest level's of that name).
        replaced: ceilings a lower level replaced (shown in effective policies, not applied).
    """

    sets: tuple[RuleSet, ...] = ()
    aliases: dict[str, Alias] = field(default_factory=dict)
    replaced: tuple[tuple[RuleSet, CeilingIn], ...] = ()
    empty: bool = field(init=False, compare=False)  # nothing to check and nothing to rename

    def __post_init__(self) -> None:
        object.__setattr__(self, "empty", not self.aliases and not any(s.checks for s in self.sets))

    def as_json(self) -> dict[str, Any]:
        return {
            "levels": [s.as_json() for s in self.sets],
            "aliases": [a.as_json() for a in self.aliases.values()],
            "replaced_ceilings": [
                {**c.model_dump(), "origin": s.level, "origin_id": s.entity_id} for s, c in self.replaced
            ],
        }


EMPTY = ModelRules()


def rule_set(level: str, entity_id: str | None, rules: ModelRulesIn, ceilings: Iterable[CeilingIn]) -> RuleSet:
    """A level's `RuleSet` from what it wrote, with the ceilings of it still in force."""
    return RuleSet(
        level=level,
        entity_id=entity_id,
        allow=tuple(rules.allow) if rules.allow is not None else None,
        deny=tuple(rules.deny),
        ceilings=tuple(ceilings),
        params=tuple(rules.params),
        mode=rules.mode,
        rollout_percent=rules.rollout_percent,
        rollout_by=rules.rollout_by,
        allow_locked=rules.allow_locked,
        deny_locked=rules.deny_locked,
    )


def operator_rules(rules: ModelRulesIn) -> ModelRules:
    """The config file's `[models]` alone (the rules of every caller when no control plane runs)."""
    if rules.empty:
        return EMPTY
    aliases = {n: Alias(n, t, "operator", None) for n, t in rules.aliases.items()}
    return ModelRules((rule_set("operator", None, rules, rules.ceilings),), aliases)


# ── field rules ───────────────────────────────────────────────────────────────────────────────


def _same(a: Any, b: Scalar) -> bool:
    """JSON equality: `true` is not `1`, `1` is `1.0`."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


def holds(rule: ParamRuleIn, value: Any) -> bool:
    """Whether a present, non-null `value` passes `rule` (`absent` never does)."""
    op, ref = rule.op, rule.value
    if op in ("lte", "gte"):
        if type(value) not in (int, float):
            return False
        return value <= ref if op == "lte" else value >= ref  # type: ignore[operator]
    if op == "eq":
        return _same(value, ref)  # type: ignore[arg-type]
    if op == "ne":
        return not _same(value, ref)  # type: ignore[arg-type]
    if op in ("in", "not_in"):
        found = any(_same(value, r) for r in ref)  # type: ignore[union-attr]
        return found if op == "in" else not found
    return False  # absent


def param_fault(rule: ParamRuleIn, body: dict[str, Any], fmt: WireFormat) -> str | None:
    """The request field (this format's name) that breaks `rule`, or None."""
    for name in fmt.request_fields(rule.field):
        value = body.get(name)
        if value is None:
            continue
        if rule.op == "absent" or not holds(rule, value):
            return name
    return None


def _limit(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if type(value) is not int or not 1 <= value <= MAX_OUTPUT_TOKENS:
        raise InvalidRequest(
            f"'{name}' must be an integer from 1 to {MAX_OUTPUT_TOKENS}", code="invalid_type", param=name
        )
    return value


# ── the step ──────────────────────────────────────────────────────────────────────────────────


class ModelPolicy:
    """The model access rules by caller, and the check.

    Arguments:
        settings: the config file's `[models]` (the operator's level).
        providers: the configured providers' names (a `provider/` prefix is removed for the lists).
    """

    def __init__(self, settings: ModelRulesIn, providers: Iterable[str]) -> None:
        self.operator = operator_rules(settings)
        self.providers = frozenset(providers)
        # The control plane's rules for a caller (its view's `model_rules`, which include the
        # operator's), when it runs: read from memory on every call, since a reload may change them.
        self.policy_rules: Callable[[Identity], ModelRules] | None = None
        # What the patterns of a caller's rules say about a model name (the regular expressions are
        # the step's cost): per rules object and name, while those rules stand.
        self._matched: dict[
            tuple[int, str, str], tuple[ModelRules, tuple[bool, ...], list[tuple[RuleSet, CeilingIn]]]
        ] = {}

    def _matches(
        self, rules: ModelRules, model: str, concrete: str
    ) -> tuple[tuple[bool, ...], list[tuple[RuleSet, CeilingIn]]]:
        """Which of `rules`' sets refuse the model by their lists, and the ceilings that name it."""
        key = (id(rules), model, concrete)
        held = self._matched.get(key)
        if held is None or held[0] is not rules:
            refused = tuple(self.refusal(s, model, concrete) is not None for s in rules.sets)
            bare = self._bare(concrete)
            found = [
                (s, c)
                for s in rules.sets
                for c, rx in zip(s.ceilings, s.ceiling_rx, strict=True)
                if rx.fullmatch(concrete) or rx.fullmatch(bare)
            ]
            if len(self._matched) >= 10_000:
                self._matched.clear()
            held = self._matched[key] = (rules, refused, found)
        return held[1], held[2]

    def rules_for(self, who: Identity) -> ModelRules | None:
        """The caller's rules; None when nothing applies (the call pays for nothing more)."""
        rules = self.policy_rules(who) if self.policy_rules is not None else self.operator
        return None if rules.empty else rules

    def _bare(self, model: str) -> str:
        prefix, _, rest = model.partition("/")
        return rest if rest and prefix in self.providers else model

    def refusal(self, s: RuleSet, asked: str, concrete: str) -> tuple[str, dict[str, Any]] | None:
        """Why `s` refuses the model (message, rule), or None."""
        bare = self._bare(concrete)
        deny = s.deny_rx.fullmatch
        for name in (asked, concrete, bare):
            if deny(name):
                pattern = matching(s.deny, name)
                stands = f" (the alias stands for {concrete!r})" if asked != concrete else ""
                message = f"the model {asked!r} is not allowed{stands}: {s.where()} denies {pattern!r}"
                return message, s.rule("deny", pattern=pattern, model=asked, resolved=concrete)
        allow = s.allow_rx
        if allow is not None and s.allow is not None and not allow.fullmatch(concrete) and not allow.fullmatch(bare):
            shown = ", ".join(repr(p) for p in s.allow[:5]) + (", …" if len(s.allow) > 5 else "")
            stands = f" (the alias stands for {concrete!r})" if asked != concrete else ""
            message = (
                f"the model {concrete!r} is not allowed{stands}: it is not on the allow list of "
                f"{s.where()} ({shown or 'empty'})"
            )
            return message, s.rule("allow", pattern=None, model=asked, resolved=concrete)
        return None

    def permits(self, rules: ModelRules, who: Identity, asked: str) -> bool:
        """Whether a call for `asked` would pass the lists (for `GET /v1/models`: the levels that bite)."""
        alias = rules.aliases.get(asked)
        concrete = alias.target if alias is not None else asked
        return not any(
            self.refusal(s, asked, concrete) is not None
            for s in rules.sets
            if bites(s.mode, s.rollout_percent, s.rule_id, who.key_name, s.rollout_by)
        )

    def apply(
        self, fmt: WireFormat, body: dict[str, Any], model: str, who: Identity, rules: ModelRules
    ) -> tuple[str, list[PolicyEvent]]:
        """Check (and maybe rewrite) one request; returns the model to route and the events.

        Raises:
            ModelNotAllowed: a level's lists refuse the model (403).
            ParameterNotAllowed: a field rule or a `refuse` ceiling refuses the request (400).
            InvalidRequest: an output limit that is not an integer from 1 to 2**31 - 1, under a ceiling.
        """
        events: list[PolicyEvent] = []
        alias = rules.aliases.get(model)
        concrete = model
        if alias is not None:
            concrete = body["model"] = alias.target
            events.append(PolicyEvent("models", "alias", "", alias.level, detail={"alias": model, "model": concrete}))
        bit: dict[str, bool] = {}

        def decide(s: RuleSet, error: Exception, rule: dict[str, Any]) -> None:
            detail = {"rule": rule, "model": model, "resolved": concrete}
            if bit[s.rule_id]:
                events.append(PolicyEvent("models", "refuse", "", s.level, detail=detail))
                error.events = events  # type: ignore[attr-defined]
                raise error
            events.append(PolicyEvent("models", "would_refuse", "", s.level, detail=detail))

        refused, ceilings = self._matches(rules, model, concrete)
        for s, refuses in zip(rules.sets, refused, strict=True):
            bit[s.rule_id] = bites(s.mode, s.rollout_percent, s.rule_id, who.key_name, s.rollout_by)
            if refuses:
                found = self.refusal(s, model, concrete)
                assert found is not None
                decide(s, ModelNotAllowed(found[0], found[1]), found[1])
        for s in rules.sets:
            for p in s.params:
                name = param_fault(p, body, fmt)
                if name is not None:
                    rule = s.rule("params", field=p.field, op=p.op, value=p.value)
                    message = f"the request's {name!r} breaks the rule `{p.describe()}` of {s.where()}"
                    decide(s, ParameterNotAllowed(message, rule, param=name), rule)
        if fmt.output_limits and ceilings:
            self._ceilings(fmt, body, concrete, ceilings, bit, decide, events)
        return concrete, events

    def _ceilings(
        self,
        fmt: WireFormat,
        body: dict[str, Any],
        concrete: str,
        found: list[tuple[RuleSet, CeilingIn]],
        bit: dict[str, bool],
        decide: Callable[[RuleSet, Exception, dict[str, Any]], None],
        events: list[PolicyEvent],
    ) -> None:
        values = {name: v for name in fmt.output_limits if (v := _limit(body, name)) is not None}
        for s, c in found:  # refusals, on what the caller asked for
            over = [n for n, v in values.items() if v > c.max_output_tokens]
            if c.action == "refuse" and over:
                rule = s.rule("ceilings", max_output_tokens=c.max_output_tokens, action="refuse", field=over[0])
                message = (
                    f"'{over[0]}' is above the ceiling of {c.max_output_tokens} output tokens that "
                    f"{s.where()} sets for {concrete!r}"
                )
                decide(s, ParameterNotAllowed(message, rule, param=over[0], code="max_tokens_above_ceiling"), rule)
        binding: tuple[RuleSet, CeilingIn] | None = None
        for s, c in found:
            applies = c.action == "clamp" or not values
            if not applies:
                continue
            if not bit[s.rule_id]:
                if not values or any(v > c.max_output_tokens for v in values.values()):
                    detail = {"max_output_tokens": c.max_output_tokens, "model": concrete, "level_id": s.entity_id}
                    events.append(PolicyEvent("models", "would_clamp", "", s.level, detail=detail))
                continue
            if binding is None or c.max_output_tokens < binding[1].max_output_tokens:
                binding = (s, c)
        if binding is None:
            return
        s, c = binding
        ceiling = c.max_output_tokens
        if not values:
            changed = [fmt.output_limits[-1]]
            body[changed[0]] = ceiling
        else:
            changed = [n for n, v in values.items() if v > ceiling]
            for name in changed:
                body[name] = ceiling
        if changed:
            detail = {"max_output_tokens": ceiling, "fields": changed, "model": concrete, "level_id": s.entity_id}
            detail["unset"] = not values
            events.append(PolicyEvent("models", "clamp", "", s.level, detail=detail))
