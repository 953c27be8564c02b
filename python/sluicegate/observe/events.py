"""Policy events: one record per decision a policy took on a call (a redaction, a block, a spend
refusal, a threshold crossed). They carry kinds, counts, locations and amounts, never values, and
travel with the call's outcome to the sinks that publish them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class PolicyEvent:
    """One policy decision.

    Attributes:
        policy: `redaction` or `spend`.
        action: what was done: redact, block, monitor, pseudonymize, below_threshold (found below its
            type's confidence threshold: counted, not acted on); refuse, clamp, would_refuse,
            threshold, store_unavailable.
        direction: `request` or `response` (redaction), or `` (spend).
        entity: the entity type (redaction) or the cap's level (spend).
        count: how many findings or requests.
        locations: where in the call (field paths, `stream`), for redaction.
        detail: spend figures (cap id, window, limits in nano-USD, percent), never content.
    """

    policy: str
    action: str
    direction: str
    entity: str
    count: int = 1
    locations: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)
