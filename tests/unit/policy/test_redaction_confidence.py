"""Confidence thresholds in policies: a rule's `min_confidence` (and `min_confidence_by_type`)
decides which findings are acted on; the others are counted as `below_threshold` events (type,
direction, count, locations; never the value)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sluicegate.config import RedactionRule, RedactionSettings
from sluicegate.policy.redaction import BELOW_THRESHOLD, Redactor, RequestScan, Tally

TEXT = "Dear Zorblat, Maria Schmidt wrote from Hauptstraße 12."


def redactor(*rules: RedactionRule) -> Redactor:
    return Redactor(RedactionSettings(rules=list(rules)))


def test_default_threshold_quiets_weak_person_evidence_and_counts_it() -> None:
    r = redactor(RedactionRule(entities=["PERSON", "ADDRESS"], action="redact"))
    body = {"messages": [{"role": "user", "content": TEXT}]}
    scan, blocked = r.scan_value(body, "request", "ws")
    assert not blocked
    assert body["messages"][0]["content"] == "Dear Zorblat, [REDACTED:PERSON] wrote from [REDACTED:ADDRESS]."
    events = {(e.action, e.entity): e for e in scan.tally.events()}
    quiet = events[(BELOW_THRESHOLD, "PERSON")]
    assert quiet.count == 1 and quiet.locations == ["messages[0].content"]
    assert "Zorblat" not in repr(quiet)
    assert events[("redact", "PERSON")].count == 1


def test_a_rule_threshold_and_a_per_type_one() -> None:
    low = redactor(RedactionRule(entities=["PERSON", "ADDRESS"], action="redact", min_confidence=0))
    assert low.preview(TEXT, "ws")[1] == "Dear [REDACTED:PERSON], [REDACTED:PERSON] wrote from [REDACTED:ADDRESS]."
    high = redactor(
        RedactionRule(
            entities=["PERSON", "ADDRESS"], action="redact", min_confidence=90, min_confidence_by_type={"ADDRESS": 10}
        )
    )
    assert high.thresholds["request"] == {"PERSON": 90, "ADDRESS": 10}
    assert high.preview(TEXT, "ws")[1] == "Dear Zorblat, Maria Schmidt wrote from [REDACTED:ADDRESS]."


def test_a_later_rule_without_a_threshold_keeps_the_one_in_force() -> None:
    r = redactor(
        RedactionRule(entities=["PERSON"], action="redact", min_confidence=90),
        RedactionRule(entities=["PERSON"], action="block", direction="response"),
        RedactionRule(entities=["PERSON"], action="redact", direction="request", min_confidence=0),
    )
    assert r.thresholds == {"request": {"PERSON": 0}, "response": {"PERSON": 90}}


def test_streamed_responses_count_quiet_findings() -> None:
    r = redactor(RedactionRule(entities=["PERSON"], action="redact"))
    scan_tally = Tally()
    request = RequestScan(tally=scan_tally)
    f = r.response_filter(request)
    assert f is not None
    out = "".join(f.feed("k", TEXT[i : i + 4]) for i in range(0, len(TEXT), 4)) + f.flush("k")
    assert out == "Dear Zorblat, [REDACTED:PERSON] wrote from Hauptstraße 12."
    got = {(e.action, e.entity, e.count, tuple(e.locations)) for e in scan_tally.events()}
    assert got == {("redact", "PERSON", 1, ("stream",)), (BELOW_THRESHOLD, "PERSON", 1, ("stream",))}
    assert f.text(TEXT) == "Dear Zorblat, [REDACTED:PERSON] wrote from Hauptstraße 12."


def test_quiet_findings_in_object_keys_are_counted_at_the_object() -> None:
    r = redactor(RedactionRule(entities=["PERSON"], action="redact"))
    body = {"metadata": {"Dear Zorblat": 1}}
    scan, _ = r.scan_value(body, "request", "ws")
    assert body == {"metadata": {"Dear Zorblat": 1}}
    assert [(e.action, e.locations) for e in scan.tally.events()] == [(BELOW_THRESHOLD, ["metadata{key}"])]


def test_rules_validate_thresholds() -> None:
    with pytest.raises(ValidationError):
        RedactionRule(entities=["PERSON"], action="redact", min_confidence=101)
    with pytest.raises(ValidationError, match="ADDRESS"):
        RedactionRule(entities=["PERSON"], action="redact", min_confidence_by_type={"ADDRESS": 5})


def test_a_lock_holds_the_threshold_too() -> None:
    locked = RedactionRule(entities=["PERSON"], action="redact", locked=True, min_confidence=40)
    with pytest.raises(ValidationError, match="min_confidence 70 for PERSON"):
        RedactionSettings(rules=[locked, RedactionRule(entities=["PERSON"], action="redact", min_confidence=70)])
    # a lock without a threshold holds the default (50 for PERSON)
    default = RedactionRule(entities=["PERSON"], action="redact", locked=True)
    with pytest.raises(ValidationError, match="above the 50"):
        RedactionSettings(rules=[default, RedactionRule(entities=["PERSON"], action="block", min_confidence=60)])
    RedactionSettings(rules=[locked, RedactionRule(entities=["PERSON"], action="block", min_confidence=10)])


def test_effective_policies_carry_thresholds_down_and_locks_cap_them() -> None:
    from sluicegate.control.policies import OperatorPolicy, effective
    from sluicegate.control.schemas import PolicyIn

    org = PolicyIn(redaction=[RedactionRule(entities=["PERSON"], action="redact", min_confidence=30, locked=True)])
    workspace = PolicyIn(redaction=[RedactionRule(entities=["PERSON", "EMAIL"], action="block", min_confidence=80)])
    key = PolicyIn(redaction=[RedactionRule(entities=["EMAIL"], action="redact")])
    chain = [("org", "o1", org), ("workspace", "w1", workspace), ("key", "k1", key)]
    eff = effective("o1", chain, OperatorPolicy())  # type: ignore[arg-type]
    got = {(r.entities[0], r.direction): (r.action, r.min_confidence) for r in eff.redaction}
    # PERSON: the workspace's 80 is above the org's locked 30, so 30 holds; EMAIL: the key names no
    # threshold and keeps the workspace's 80
    assert got[("PERSON", "request")] == ("block", 30)
    assert got[("EMAIL", "response")] == ("redact", 80)
    settings = RedactionSettings(rules=list(eff.redaction))
    assert Redactor(settings).thresholds["request"] == {"PERSON": 30, "EMAIL": 80}
