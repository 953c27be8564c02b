"""Staged rollout in effective policies: a rule or cap at a percentage acts for that share of keys
and monitors the rest, the same keys at every computation; floors apply in full."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sluicegate.config import RedactionRule, RedactionSettings
from sluicegate.control.policies import Chain, OperatorPolicy, effective, floors_for, violations
from sluicegate.control.schemas import CapIn, PolicyIn
from sluicegate.policy.auth import Identity
from sluicegate.policy.spend import SpendPolicy
from sluicegate.spend.caps import CapSettings, SpendSettings

KEYS = [f"k{i:04d}" for i in range(800)]


def _chain(ws_policy: PolicyIn, key: str, org_policy: PolicyIn | None = None) -> Chain:
    return [("org", "acme", org_policy), ("workspace", "ws", ws_policy), ("key", key, None)]


def test_a_redaction_rule_at_a_quarter_acts_for_a_stable_quarter_of_keys() -> None:
    rule = RedactionRule(entities=["EMAIL"], action="redact", direction="request", rollout_percent=25)
    policy = PolicyIn(redaction=[rule])
    acting = set()
    for key in KEYS:
        (eff,) = [r for r in effective("acme", _chain(policy, key)).rules if r.entity == "EMAIL"]
        assert eff.action in ("redact", "monitor")
        assert eff.rollout == (25.0, eff.action == "redact")
        if eff.action == "redact":
            acting.add(key)
    assert 0.2 < len(acting) / len(KEYS) < 0.3
    again = {k for k in KEYS if effective("acme", _chain(policy, k)).redaction[0].action == "redact"}
    assert again == acting


def test_without_a_key_the_rollout_is_shown_and_not_decided() -> None:
    policy = PolicyIn(caps=[CapIn(window="day", limit_usd="5", rollout_percent=40)])
    cap = effective("acme", [("org", "acme", None), ("workspace", "ws", policy)]).cap_origins[0]
    assert cap.line.mode == "enforce" and cap.rollout == (40.0, None)
    assert cap.as_json()["rollout"] == {"percent": 40.0, "applies": None}


def test_a_cap_at_a_quarter_monitors_three_quarters_of_keys() -> None:
    policy = PolicyIn(caps=[CapIn(window="day", limit_usd="5", rollout_percent=25)])
    modes = [effective("acme", _chain(policy, k)).caps[0].mode for k in KEYS]
    assert 0.2 < modes.count("enforce") / len(KEYS) < 0.3


def test_floors_apply_in_full() -> None:
    with pytest.raises(ValidationError, match="rollout_percent must be 100"):
        CapIn(window="day", limit_usd="5", locked=True, rollout_percent=50)
    with pytest.raises(ValidationError, match="rollout_percent must be 100"):
        RedactionRule(entities=["EMAIL"], action="block", locked=True, rollout_percent=50)
    # Under a locked enforcing cap, a cap in the same window enforces for every key...
    org = PolicyIn(caps=[CapIn(window="day", limit_usd="10", locked=True)])
    ws = PolicyIn(caps=[CapIn(window="day", limit_usd="5", rollout_percent=10)])
    floors = floors_for("acme", [("org", "acme", org)], "workspace", "ws", None)
    (v,) = violations(floors, ws)
    assert v.loc == "caps.0" and "every key" in v.message
    for key in KEYS[:50]:
        assert all(c.mode == "enforce" for c in effective("acme", _chain(ws, key, org)).caps)
    # ...and a rule outside its share is still raised to a floor above it.
    locked = PolicyIn(redaction=[RedactionRule(entities=["EMAIL"], action="redact", direction="request", locked=True)])
    partial = PolicyIn(
        redaction=[RedactionRule(entities=["EMAIL"], action="block", direction="request", rollout_percent=10)]
    )
    actions = {effective("acme", _chain(partial, k, locked)).redaction[0].action for k in KEYS[:200]}
    assert actions == {"redact", "block"}


def test_the_configuration_file() -> None:
    with pytest.raises(ValidationError, match="for control-plane policies"):
        RedactionSettings(rules=[RedactionRule(entities=["EMAIL"], action="redact", rollout_percent=50)])
    with pytest.raises(ValidationError, match="rollout_percent must be 100"):
        CapSettings(level="org", id="acme", limit_usd="5", locked=True, rollout_percent=50)
    caps = (CapSettings(level="workspace", id="ws", org="acme", window="day", limit_usd="5", rollout_percent=25),)
    spend = SpendPolicy(SpendSettings(caps=caps))
    enforced = [spend.lines_for(Identity(k, "ws", "acme"))[0].mode == "enforce" for k in KEYS]
    assert 0.2 < sum(enforced) / len(KEYS) < 0.3
    assert enforced == [spend.lines_for(Identity(k, "ws", "acme"))[0].mode == "enforce" for k in KEYS]
    assert OperatorPolicy.from_settings(RedactionSettings(), SpendSettings(caps=caps)).caps
