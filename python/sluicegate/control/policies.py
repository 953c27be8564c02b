"""Policy inheritance: a key is under the policies of its organization, workspace, user and itself.

Caps add up: each level's caps become `CapLine`s on that level's entity, and a request reserves on
all of them. Redaction rules are read from the top down and a lower level's rule for the same
entity type and direction replaces the one above it; operator patterns accumulate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sluicegate.config import CustomPattern, RedactionRule
from sluicegate.control.schemas import Level, PolicyIn
from sluicegate.spend.caps import DEFAULT_THRESHOLDS, CapLine
from sluicegate.spend.money import format_usd

Direction = Literal["request", "response", "both"]
LEVELS: tuple[Level, ...] = ("org", "workspace", "user", "key")


@dataclass(frozen=True, slots=True)
class EffectivePolicy:
    """What applies to one key."""

    caps: tuple[CapLine, ...] = ()
    redaction: tuple[RedactionRule, ...] = ()
    custom_patterns: tuple[CustomPattern, ...] = ()
    sources: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "caps": [
                {
                    "level": c.level,
                    "entity_id": c.entity_id,
                    "window": c.window,
                    "limit_nusd": c.limit_nusd,
                    "limit_usd": format_usd(c.limit_nusd).lstrip("$"),
                    "mode": c.mode,
                    "on_insufficient": c.on_insufficient,
                    "thresholds": list(c.thresholds),
                }
                for c in self.caps
            ],
            "redaction": [r.model_dump() for r in self.redaction],
            "custom_patterns": [p.model_dump() for p in self.custom_patterns],
            "sources": self.sources,
        }


def effective(org_id: str, chain: list[tuple[Level, str, PolicyIn | None]]) -> EffectivePolicy:
    """Combine the policies of `chain` (org first, key last; a missing policy is None)."""
    caps: list[CapLine] = []
    rules: dict[tuple[str, str], RedactionRule] = {}
    patterns: dict[str, CustomPattern] = {}
    sources: dict[str, str] = {}
    for level, entity_id, policy in chain:
        if policy is None:
            continue
        sources[level] = entity_id
        for cap in policy.caps:
            caps.append(
                CapLine(
                    level=level,
                    entity_id=entity_id,
                    org_id=org_id,
                    window=cap.window,
                    limit_nusd=cap.limit_nusd,
                    mode=cap.mode,
                    on_insufficient=cap.on_insufficient,
                    thresholds=tuple(cap.thresholds) if cap.thresholds is not None else DEFAULT_THRESHOLDS,
                )
            )
        for rule in policy.redaction:
            directions: tuple[Direction, ...] = (
                ("request", "response") if rule.direction == "both" else (rule.direction,)
            )
            for entity in rule.entities:
                for direction in directions:
                    rules[(entity, direction)] = RedactionRule(
                        entities=[entity], action=rule.action, direction=direction
                    )
        for pattern in policy.custom_patterns:
            patterns[pattern.entity] = pattern
    return EffectivePolicy(tuple(caps), tuple(rules.values()), tuple(patterns.values()), sources)
