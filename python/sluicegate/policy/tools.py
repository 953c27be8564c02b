"""The tool access step of the MCP gateway: allow and deny lists of tools, from the caller's chain
(the config file's `[tools]`, then its org, workspace, user and key policies, as `control.policies`
combines them).

On `tools/list` a tool refused by a level that bites is left out of the answer (a `hide` event, or
`would_hide` for a level that only monitors); on `tools/call` such a tool is refused with a
JSON-RPC error naming the level, its id and the list (a `refuse` event; `would_refuse` when only
monitored, and the call goes ahead). A deny anywhere wins; a tool must be on every allow list of the
chain. Names are `server/tool` (see `policy.tool_rules`).

Events carry levels, ids, patterns, server and tool names; never arguments or results.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sluicegate.observe.events import PolicyEvent
from sluicegate.policy.auth import Identity
from sluicegate.policy.model_rules import compile_globs, matching
from sluicegate.policy.rollout import Mode, RolloutBy, bites
from sluicegate.policy.tool_rules import ModelCalls, ToolRulesIn

__all__ = ["EMPTY_TOOLS", "ToolDecision", "ToolPolicy", "ToolRuleSet", "ToolRules", "tool_rule_set"]


@dataclass(frozen=True, slots=True)
class ToolRuleSet:
    """One level's tool lists as they apply to a caller."""

    level: str
    entity_id: str | None
    allow: tuple[str, ...] | None = None
    deny: tuple[str, ...] = ()
    mode: Mode = "enforce"
    rollout_percent: float = 100.0
    rollout_by: RolloutBy = "key"
    allow_locked: bool = False
    deny_locked: bool = False
    model_calls: ModelCalls = "off"
    deny_rx: re.Pattern[str] = field(init=False, repr=False, compare=False)
    allow_rx: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    rule_id: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "deny_rx", compile_globs(self.deny))
        set_(self, "allow_rx", compile_globs(self.allow) if self.allow is not None else None)
        set_(self, "rule_id", f"tools:{self.level}:{self.entity_id or ''}")

    def where(self) -> str:
        return "the operator's configuration" if self.level == "operator" else f"{self.level} {self.entity_id!r}"

    def refusal(self, name: str) -> tuple[str, dict[str, Any]] | None:
        """Why this level refuses the tool `name` (`server/tool`): (message, rule), or None."""
        if self.deny_rx.fullmatch(name):
            pattern = matching(self.deny, name)
            rule = {"level": self.level, "id": self.entity_id, "list": "deny", "pattern": pattern}
            return f"the tool {name!r} is not allowed: {self.where()} denies {pattern!r}", rule
        if self.allow_rx is not None and self.allow is not None and not self.allow_rx.fullmatch(name):
            shown = ", ".join(repr(p) for p in self.allow[:5]) + (", …" if len(self.allow) > 5 else "")
            rule = {"level": self.level, "id": self.entity_id, "list": "allow", "pattern": None}
            message = (
                f"the tool {name!r} is not allowed: it is not on the allow list of {self.where()} ({shown or 'empty'})"
            )
            return message, rule
        return None

    def as_json(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "id": self.entity_id,
            "allow": list(self.allow) if self.allow is not None else None,
            "allow_locked": self.allow_locked,
            "deny": list(self.deny),
            "deny_locked": self.deny_locked,
            "mode": self.mode,
            "rollout_percent": self.rollout_percent,
            "rollout_by": self.rollout_by,
            "model_calls": self.model_calls,
        }


@dataclass(frozen=True, slots=True)
class ToolRules:
    """Every level's tool lists that apply to a caller, from the top; `model_sets` those that
    apply to the tools of model traffic too (`model_calls` not `off`)."""

    sets: tuple[ToolRuleSet, ...] = ()
    model_sets: tuple[ToolRuleSet, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "model_sets", tuple(s for s in self.sets if s.model_calls != "off"))

    @property
    def empty(self) -> bool:
        return not self.sets

    def as_json(self) -> dict[str, Any]:
        return {"levels": [s.as_json() for s in self.sets]}


EMPTY_TOOLS = ToolRules()


def tool_rule_set(level: str, entity_id: str | None, rules: ToolRulesIn) -> ToolRuleSet:
    return ToolRuleSet(
        level=level,
        entity_id=entity_id,
        allow=tuple(rules.allow) if rules.allow is not None else None,
        deny=tuple(rules.deny),
        mode=rules.mode,
        rollout_percent=rules.rollout_percent,
        rollout_by=rules.rollout_by,
        allow_locked=rules.allow_locked,
        deny_locked=rules.deny_locked,
        model_calls=rules.model_calls,
    )


@dataclass(slots=True)
class ToolDecision:
    """What the lists say of one tool: refused (by the first level that bites), and the events."""

    refused: tuple[str, dict[str, Any]] | None = None
    events: list[PolicyEvent] = field(default_factory=list)


class ToolPolicy:
    """The tool access rules by caller, and the check.

    Arguments:
        operator: the config file's `[tools]` (the operator's level).
    """

    def __init__(self, operator: ToolRulesIn) -> None:
        self.operator = ToolRules((tool_rule_set("operator", None, operator),)) if not operator.empty else EMPTY_TOOLS
        # The control plane's rules for a caller (its view's `tool_rules`, which include the operator's).
        self.policy_rules: Callable[[Identity], ToolRules] | None = None

    def rules_for(self, who: Identity) -> ToolRules:
        return self.policy_rules(who) if self.policy_rules is not None else self.operator

    @staticmethod
    def decide(rules: ToolRules, who: Identity, server: str, tool: str, action: str) -> ToolDecision:
        """Check `server/tool` against every level; `action` names the event (`refuse` for a call,
        `hide` for a listing; `would_<action>` where a level only monitors)."""
        decision = ToolDecision()
        name = f"{server}/{tool}"
        for s in rules.sets:
            found = s.refusal(name)
            if found is None:
                continue
            detail = {"rule": found[1], "server": server, "tool": tool}
            if bites(s.mode, s.rollout_percent, s.rule_id, who.key_name, s.rollout_by):
                decision.events.append(PolicyEvent("tools", action, "", s.level, detail=detail))
                decision.refused = found
                return decision
            decision.events.append(PolicyEvent("tools", f"would_{action}", "", s.level, detail=detail))
        return decision
