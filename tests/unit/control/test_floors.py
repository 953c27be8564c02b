"""Policy floors: a locked rule or cap binds every level below the one that holds it.

Each probe is what a lower level's admin would try in order to get out from under a lock; the write
check (`violations`) must refuse it, and the effective policy (`effective`) must hold the floor
even when the weakening row is there anyway.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from sluicegate.config import RedactionSettings
from sluicegate.control.policies import (
    Chain,
    EffectivePolicy,
    OperatorPolicy,
    chain_of,
    effective,
    floors_for,
    violations,
)
from sluicegate.control.schemas import PolicyIn
from sluicegate.errors import PolicyBlocked
from sluicegate.formats.openai_chat import OPENAI_CHAT
from sluicegate.policy.redaction import Redactor
from sluicegate.spend.caps import SpendSettings

SSN = "my ssn is 536-22-8844"


def _p(data: dict[str, Any]) -> PolicyIn:
    return PolicyIn.model_validate(data)


def _block(entity: str = "US_SSN", **extra: Any) -> dict[str, Any]:
    return {"redaction": [{"entities": [entity], "action": "block", "locked": True, **extra}]}


def _actions(policy: EffectivePolicy) -> dict[tuple[str, str], str]:
    return {(r.entity, r.direction): r.action for r in policy.rules}


def _check(above: Chain, level: Any, entity_id: str, policy: PolicyIn, operator: OperatorPolicy | None = None) -> Any:
    return violations(floors_for("o", above, level, entity_id, operator), policy)


def _redactor(policy: EffectivePolicy, base: RedactionSettings | None = None) -> Redactor:
    """The data plane's redactor for a key: the config's settings with the policy's added after."""
    return Redactor(policy.redaction_settings(base or RedactionSettings()))


def test_a_workspace_cannot_monitor_what_its_org_blocks() -> None:
    org = _p(_block())
    weaker = _p({"redaction": [{"entities": ["US_SSN"], "action": "monitor", "direction": "request"}]})
    found = _check([("org", "o", org)], "workspace", "w", weaker)
    assert [(v.loc, v.locked_by.level, v.locked_by.id) for v in found] == [("redaction.0", "org", "o")]
    assert "US_SSN" in found[0].message and "org o" in found[0].message and "monitor" in found[0].message
    # the row is there anyway (written past the API): the org's block holds for the key
    result = effective("o", [("org", "o", org), ("workspace", "w", weaker), ("key", "k", None)])
    assert _actions(result)[("US_SSN", "request")] == "block"
    shown = next(
        r for r in result.as_json()["redaction"] if r["entities"] == ["US_SSN"] and r["direction"] == "request"
    )
    assert shown["origin"] == "org" and shown["origin_id"] == "o" and shown["locked"] is True
    assert shown["raised_from"] == {"action": "monitor", "level": "workspace", "id": "w"}
    assert _redactor(result).actions["request"]["US_SSN"] == "block"


def test_a_threshold_above_a_locked_rules_is_refused_and_lowered_in_effect() -> None:
    # the lock holds PERSON's default threshold (50) when it sets none
    org = _p({"redaction": [{"entities": ["PERSON"], "action": "redact", "locked": True}]})
    above = _p({"redaction": [{"entities": ["EMAIL", "PERSON"], "action": "block", "min_confidence": 60}]})
    found = _check([("org", "o", org)], "workspace", "w", above)
    assert [(v.loc, v.locked_by.level) for v in found] == [("redaction.0", "org")] * 2  # request, response
    assert "min_confidence 60 for PERSON" in found[0].message and "threshold of 50" in found[0].message
    assert (
        _check(
            [("org", "o", org)],
            "workspace",
            "w",
            _p({"redaction": [{"entities": ["PERSON"], "action": "block", "min_confidence": 50}]}),
        )
        == []
    )
    # an unlocked rule above binds nothing
    unlocked = _p({"redaction": [{"entities": ["PERSON"], "action": "redact", "min_confidence": 20}]})
    assert _check([("org", "o", unlocked)], "workspace", "w", above) == []
    # written past the API, the row is lowered to the lock's threshold
    result = effective("o", [("org", "o", org), ("workspace", "w", above)])
    assert {(r.entity, r.direction): r.min_confidence for r in result.rules}[("PERSON", "request")] == 50


def test_unlocked_rules_stay_defaults_a_lower_level_may_change() -> None:
    org = _p({"redaction": [{"entities": ["US_SSN"], "action": "block"}]})
    ws = _p({"redaction": [{"entities": ["US_SSN"], "action": "monitor"}]})
    assert _check([("org", "o", org)], "workspace", "w", ws) == []
    result = effective("o", [("org", "o", org), ("workspace", "w", ws)])
    assert _actions(result) == {("US_SSN", "request"): "monitor", ("US_SSN", "response"): "monitor"}
    assert all(r.origin.level == "workspace" and not r.locked for r in result.rules)


@pytest.mark.parametrize(
    ("locked", "lower", "allowed"),
    [
        ("monitor", "monitor", True),
        ("monitor", "pseudonymize", True),
        ("pseudonymize", "monitor", False),
        ("pseudonymize", "redact", True),
        ("redact", "pseudonymize", False),  # the response would carry the original back
        ("redact", "monitor", False),
        ("redact", "block", True),
        ("block", "redact", False),
        ("block", "pseudonymize", False),
        ("block", "block", True),
    ],
)
def test_below_a_lock_a_rule_may_only_be_stricter(locked: str, lower: str, allowed: bool) -> None:
    org = _p({"redaction": [{"entities": ["EMAIL"], "action": locked, "direction": "request", "locked": True}]})
    key = _p({"redaction": [{"entities": ["EMAIL"], "action": lower, "direction": "request"}]})
    above: Chain = [("org", "o", org), ("workspace", "w", None)]
    assert (_check(above, "key", "k", key) == []) is allowed
    result = effective("o", [*above, ("key", "k", key)])
    assert _actions(result)[("EMAIL", "request")] == (lower if allowed else locked)


def test_a_pseudonym_may_not_undo_a_locked_response_rule() -> None:
    """Pseudonymized values are written back into the response: under a locked response `block`,
    a request-side pseudonym would deliver the very value the lock keeps out of responses."""
    org = _p({"redaction": [{"entities": ["EMAIL"], "action": "block", "direction": "response", "locked": True}]})
    ws = _p({"redaction": [{"entities": ["EMAIL"], "action": "pseudonymize", "direction": "request"}]})
    found = _check([("org", "o", org)], "workspace", "w", ws)
    assert [v.loc for v in found] == ["redaction.0"] and "back into the response" in found[0].message
    result = effective("o", [("org", "o", org), ("workspace", "w", ws)])
    assert _actions(result) == {("EMAIL", "response"): "block", ("EMAIL", "request"): "redact"}
    # the other way round: an org pseudonym, then a key that locks its responses
    org2 = _p({"redaction": [{"entities": ["EMAIL"], "action": "pseudonymize", "direction": "request"}]})
    key = _p({"redaction": [{"entities": ["EMAIL"], "action": "redact", "direction": "response", "locked": True}]})
    assert _actions(effective("o", [("org", "o", org2), ("key", "k", key)]))[("EMAIL", "request")] == "redact"


def test_a_policy_that_undoes_its_own_lock_is_invalid() -> None:
    with pytest.raises(ValidationError, match=r"redaction.1 sets monitor for US_SSN \(request\) below the block"):
        _p({"redaction": [{**_block()["redaction"][0]}, {"entities": ["US_SSN"], "action": "monitor"}]})
    with pytest.raises(ValidationError, match="pseudonymizes EMAIL"):
        _p(
            {
                "redaction": [
                    {"entities": ["EMAIL"], "action": "pseudonymize", "direction": "request"},
                    {"entities": ["EMAIL"], "action": "redact", "direction": "response", "locked": True},
                ]
            }
        )
    with pytest.raises(ValidationError, match=r"rules\.1 sets redact"):
        RedactionSettings.model_validate(
            {
                "rules": [
                    {"entities": ["US_SSN"], "action": "block", "locked": True},
                    {"entities": ["US_SSN"], "action": "redact"},
                ]
            }
        )


def test_a_locked_cap_is_a_ceiling_in_its_window() -> None:
    org = _p({"caps": [{"window": "day", "limit_usd": "10", "locked": True}]})
    above: Chain = [("org", "o", org), ("workspace", "w", None)]
    higher = _p({"caps": [{"window": "day", "limit_usd": "10.000000001"}]})
    found = _check(above, "key", "k", higher)
    assert [(v.loc, v.locked_by.level) for v in found] == [("caps.0", "org")]
    assert "$10.00" in found[0].message and "day" in found[0].message
    shadow = _p({"caps": [{"window": "day", "limit_usd": "5", "mode": "monitor"}]})
    assert "must enforce" in _check(above, "key", "k", shadow)[0].message
    assert _check(above, "key", "k", _p({"caps": [{"window": "day", "limit_usd": "5"}]})) == []
    assert _check(above, "key", "k", _p({"caps": [{"window": "month", "limit_usd": "100"}]})) == []
    # rows that are there anyway are clamped: the lower line never allows more than the lock
    both = _p({"caps": [{"window": "day", "limit_usd": "20"}, {"window": "day", "limit_usd": "1", "mode": "monitor"}]})
    result = effective("o", [*above, ("key", "k", both)])
    key_lines = [(c.limit_nusd, c.mode) for c in result.caps if c.level == "key"]
    assert key_lines == [(10_000_000_000, "enforce"), (1_000_000_000, "enforce")]
    shown = [c for c in result.as_json()["caps"] if c["level"] == "key"]
    assert shown[0]["clamped_from"] == {"limit_nusd": 20_000_000_000, "mode": "enforce"}
    assert shown[1]["clamped_from"] == {"limit_nusd": 1_000_000_000, "mode": "monitor"}


def test_unlocked_caps_bind_nothing() -> None:
    org = _p({"caps": [{"window": "day", "limit_usd": "10"}]})
    key = _p({"caps": [{"window": "day", "limit_usd": "20", "mode": "monitor"}]})
    assert _check([("org", "o", org)], "key", "k", key) == []
    result = effective("o", [("org", "o", org), ("key", "k", key)])
    assert [(c.limit_nusd, c.mode) for c in result.caps] == [(10_000_000_000, "enforce"), (20_000_000_000, "monitor")]


def test_the_operators_locks_bind_every_org() -> None:
    redaction = RedactionSettings.model_validate(
        {"rules": [{"entities": ["CREDIT_CARD"], "action": "block", "direction": "request", "locked": True}]}
    )
    spend = SpendSettings.model_validate(
        {"caps": [{"level": "org", "id": "o", "window": "month", "limit_usd": "100", "locked": True}]}
    )
    operator = OperatorPolicy.from_settings(redaction, spend)
    org = _p(
        {
            "redaction": [{"entities": ["CREDIT_CARD"], "action": "redact", "direction": "request", "locked": True}],
            "caps": [{"window": "month", "limit_usd": "150"}],
        }
    )
    found = _check([], "org", "o", org, operator)
    assert sorted((v.loc, v.locked_by.level, v.locked_by.id) for v in found) == [
        ("caps.0", "operator", None),
        ("redaction.0", "operator", None),
    ]
    assert all("the operator's configuration" in v.message for v in found)
    # another org is not under this org's operator cap, but is under the operator's rules
    assert [v.loc for v in violations(floors_for("p", [], "org", "p", operator), org)] == ["redaction.0"]
    result = effective("o", [("org", "o", org), ("key", "k", None)], operator)
    assert _actions(result)[("CREDIT_CARD", "request")] == "block"
    # the data plane reasserts the block after the configuration's rules; the org's cap is clamped
    assert [(r.entities, r.action) for r in result.redaction] == [(["CREDIT_CARD"], "block")]
    assert [c.limit_nusd for c in result.caps] == [100_000_000_000]
    shown = result.as_json()
    assert [(c["origin"], c["locked"]) for c in shown["caps"]] == [("operator", True), ("org", False)]
    card = shown["redaction"][0]
    assert (card["origin"], card["locked"], card["raised_from"]["action"]) == ("operator", True, "redact")
    assert _redactor(result, redaction).actions["request"]["CREDIT_CARD"] == "block"


def test_a_pattern_named_like_a_built_in_only_adds_to_its_detector() -> None:
    """A lower level's `US_SSN` pattern that never matches does not switch the built-in detector
    off: the scanner runs both, so an org's locked block still finds the SSN."""
    org = _p(_block())
    ws = _p({"custom_patterns": [{"entity": "US_SSN", "pattern": "NEVER-[0-9]{3}"}]})
    assert _check([("org", "o", org)], "workspace", "w", ws) == []
    result = effective("o", [("org", "o", org), ("workspace", "w", ws), ("key", "k", None)])
    redactor = _redactor(result)
    assert [f[0] for f in redactor.scanner.scan(SSN + " and NEVER-123")] == ["US_SSN", "US_SSN"]
    assert redactor.actions["request"]["US_SSN"] == "block"


@pytest.mark.parametrize("weaker", ["monitor", "redact"])
def test_a_lower_levels_pattern_cannot_swallow_a_locked_value(weaker: str) -> None:
    """A workspace's own type whose pattern spans the SSN (`is 536-22-8844`), set to a weaker
    action, would have been the one leftmost-longest finding and hidden the SSN from the org's
    locked block: overlapping values go to the strictest action instead."""
    org = _p(_block())
    ws = _p(
        {
            "custom_patterns": [{"entity": "HARMLESS", "pattern": "is [0-9]{3}-[0-9]{2}-[0-9]{4}"}],
            "redaction": [{"entities": ["HARMLESS"], "action": weaker}],
        }
    )
    result = effective("o", [("org", "o", org), ("workspace", "w", ws), ("key", "k", None)])
    redactor = _redactor(result)
    assert [f[0] for f in redactor.scanner.scan(SSN)] == ["HARMLESS"]  # what one scan alone would decide
    assert [f[0] for f in redactor.find(SSN, "request")] == ["US_SSN"]
    with pytest.raises(PolicyBlocked, match="US_SSN"):
        redactor.scan_request(OPENAI_CHAT, {"model": "m", "messages": [{"role": "user", "content": SSN}]}, "w")
    # a value the stricter type does not cover is still the weaker type's
    assert [f[0] for f in redactor.find("it is 000-00-0000 today", "request")] == ["HARMLESS"]


def test_a_locked_custom_type_keeps_the_pattern_above_and_adds_the_lower_one() -> None:
    ticket = {"entity": "TICKET", "pattern": "TCK-[0-9]{6}"}
    org = _p({"custom_patterns": [ticket], **_block("TICKET")})
    ws = _p({"custom_patterns": [{"entity": "TICKET", "pattern": "NOPE-[0-9]{2}"}]})
    assert _check([("org", "o", org)], "workspace", "w", ws) == []
    result = effective("o", [("org", "o", org), ("workspace", "w", ws)])
    assert [p.pattern for p in result.custom_patterns] == ["TCK-[0-9]{6}", "NOPE-[0-9]{2}"]
    assert {f[0] for f in _redactor(result).scanner.scan("TCK-123456 and NOPE-12")} == {"TICKET"}
    assert len(_redactor(result).scanner.scan("TCK-123456 and NOPE-12")) == 2
    # unlocked, a lower level's pattern replaces the one above, as before
    org_free = _p({"custom_patterns": [ticket]})
    assert [p.pattern for p in effective("o", [("org", "o", org_free), ("workspace", "w", ws)]).custom_patterns] == [
        "NOPE-[0-9]{2}"
    ]


def test_a_lock_binds_the_levels_below_not_its_own() -> None:
    org = _p(_block())
    assert _check([], "org", "o", _p({"redaction": [{"entities": ["US_SSN"], "action": "monitor"}]})) == []
    # a workspace's own lock binds its users and keys
    ws = _p({"redaction": [{"entities": ["EMAIL"], "action": "redact", "locked": True}]})
    user = _p({"redaction": [{"entities": ["EMAIL"], "action": "monitor"}]})
    above: Chain = [("org", "o", org), ("workspace", "w", ws)]
    assert [v.locked_by.level for v in _check(above, "user", "u", user)] == ["workspace", "workspace"]


def test_chains_and_origins() -> None:
    key_row = {"id": "k", "org_id": "o", "workspace_id": "w", "user_id": None}
    assert chain_of("key", key_row) == [("org", "o"), ("workspace", "w"), ("key", "k")]
    assert chain_of("user", {"id": "u", "org_id": "o", "workspace_id": "w"}) == [
        ("org", "o"),
        ("workspace", "w"),
        ("user", "u"),
    ]
    assert chain_of("org", {"id": "o"}) == [("org", "o")]
    operator = OperatorPolicy.from_settings(
        RedactionSettings.model_validate({"rules": [{"entities": ["EMAIL"], "action": "monitor"}]}), SpendSettings()
    )
    shown = effective("o", [("org", "o", _p(_block()))], operator).as_json()
    origins = {(r["entities"][0], r["direction"]): (r["origin"], r["locked"]) for r in shown["redaction"]}
    assert origins == {
        ("EMAIL", "request"): ("operator", False),
        ("EMAIL", "response"): ("operator", False),
        ("US_SSN", "request"): ("org", True),
        ("US_SSN", "response"): ("org", True),
    }
    assert shown["default_action"] == "redact" and shown["redaction_enabled"] is True


# ── allowed terms ─────────────────────────────────────────────────────────────────────────────

NAMES = "Das Objektiv von Carl Zeiss; Schuhe von Manolo Blahnik; Kundin Maria Schmidt, help@acme.example"
PERSON_ON = {"redaction": [{"entities": ["PERSON"], "action": "redact"}]}


def _allow(*terms: str, entities: tuple[str, ...] = ("PERSON",)) -> dict[str, Any]:
    return {"allow_terms": [{"entities": list(entities), "terms": list(terms)}]}


def _redacted(policy: EffectivePolicy) -> str:
    return _redactor(policy).preview(NAMES, "w")[1]


def test_allowed_terms_add_up_down_the_chain() -> None:
    org = _p({**PERSON_ON, **_allow("Carl Zeiss")})
    ws = _p(_allow("manolo  BLAHNIK", "help@acme.example", entities=("PERSON", "EMAIL")))
    assert _check([("org", "o", org)], "workspace", "w", ws) == []
    result = effective("o", [("org", "o", org), ("workspace", "w", ws), ("key", "k", None)])
    assert [a.terms for a in result.allow_terms] == [["Carl Zeiss"], ["manolo  BLAHNIK", "help@acme.example"]]
    shown = result.as_json()["allow_terms"]
    assert [(a["origin"], a["origin_id"]) for a in shown] == [("org", "o"), ("workspace", "w")]
    assert "refused" not in shown[1]
    out = _redacted(result)
    # the allowed names and address pass; the customer's name does not
    assert "Carl Zeiss" in out and "Manolo Blahnik" in out and "help@acme.example" in out
    assert "Maria Schmidt" not in out and "[REDACTED:PERSON]" in out
    # without the terms, every one of them is redacted (the test can fail)
    bare = effective("o", [("org", "o", _p(PERSON_ON)), ("key", "k", None)])
    assert all(name not in _redacted(bare) for name in ("Carl Zeiss", "Manolo Blahnik", "help@acme.example"))


def test_a_workspace_cannot_exempt_terms_from_a_type_its_org_locks() -> None:
    org = _p({"redaction": [{"entities": ["PERSON"], "action": "redact", "locked": True}]})
    ws = _p(_allow("Carl Zeiss", "help@acme.example", entities=("PERSON", "EMAIL")))
    found = _check([("org", "o", org)], "workspace", "w", ws)
    assert [(v.loc, v.locked_by.level, v.locked_by.id) for v in found] == [("allow_terms.0", "org", "o")]
    assert "PERSON" in found[0].message and "Carl Zeiss" not in found[0].message
    # the row is there anyway (written past the API): PERSON keeps no exemption, EMAIL (unlocked) does
    result = effective("o", [("org", "o", org), ("workspace", "w", ws), ("key", "k", None)])
    assert [(a.entities, a.terms) for a in result.allow_terms] == [(["EMAIL"], ["Carl Zeiss", "help@acme.example"])]
    [shown] = result.as_json()["allow_terms"]
    assert shown["refused"] == [{"entity": "PERSON", "locked_by": {"level": "org", "id": "o"}}]
    out = _redacted(result)
    assert "Carl Zeiss" not in out and "help@acme.example" in out
    # a lock in one direction is enough: the terms would pass in the other
    response_only = _p(
        {"redaction": [{"entities": ["PERSON"], "action": "redact", "direction": "response", "locked": True}]}
    )
    assert _check([("org", "o", response_only)], "workspace", "w", _p(_allow("Carl Zeiss")))


def test_the_operators_lock_binds_every_orgs_terms_and_its_own_terms_apply() -> None:
    settings = RedactionSettings.model_validate(
        {
            "rules": [{"entities": ["PERSON"], "action": "redact", "locked": True}],
            "allow_terms": [{"entities": ["PERSON"], "terms": ["Manolo Blahnik"]}],
        }
    )
    operator = OperatorPolicy.from_settings(settings, SpendSettings())
    org = _p(_allow("Carl Zeiss"))
    found = _check([], "org", "o", org, operator)
    assert [(v.loc, v.locked_by.level) for v in found] == [("allow_terms.0", "operator")]
    result = effective("o", [("org", "o", org), ("key", "k", None)], operator)
    assert result.allow_terms == ()  # the operator's own terms are the configuration's, applied there
    shown = result.as_json()["allow_terms"]
    assert [(a["origin"], a.get("refused")) for a in shown] == [
        ("operator", None),
        ("org", [{"entity": "PERSON", "locked_by": {"level": "operator", "id": None}}]),
    ]
    out = _redactor(result, settings).preview(NAMES, "w")[1]
    assert "Manolo Blahnik" in out and "Carl Zeiss" not in out and "Maria Schmidt" not in out


def test_the_level_that_holds_a_lock_may_allow_terms_of_its_type() -> None:
    org = _p({"redaction": [{"entities": ["PERSON"], "action": "redact", "locked": True}], **_allow("Carl Zeiss")})
    assert _check([], "org", "o", org) == []
    result = effective("o", [("org", "o", org), ("key", "k", None)])
    assert "Carl Zeiss" in _redacted(result) and "Maria Schmidt" not in _redacted(result)


@pytest.mark.parametrize(
    ("allow", "message"),
    [
        ({"entities": ["NOT_A_TYPE"], "terms": ["x"]}, "allow_terms.0 names NOT_A_TYPE"),
        ({"entities": ["person"], "terms": ["x"]}, "String should match pattern"),
        ({"entities": ["PERSON"], "terms": []}, "at least 1 item"),
        ({"entities": ["PERSON"], "terms": ["ok", "   "]}, "terms.1: a term is 1 to 256 bytes"),
        ({"entities": ["PERSON"], "terms": ["é" * 129]}, "terms.0: a term is 1 to 256 bytes"),
        ({"entities": [], "terms": ["x"]}, "at least 1 item"),
    ],
)
def test_bad_allowed_terms_are_refused(allow: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _p({"allow_terms": [allow]})
    assert message in str(caught.value)
