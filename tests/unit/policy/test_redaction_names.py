"""PERSON and ADDRESS are opt-in: scanned when `entities` lists them, or, with `entities` unset,
once a rule names them; never by default (they would change what existing policies redact)."""

from __future__ import annotations

import pytest

from sluicegate.config import RedactionRule, RedactionSettings
from sluicegate.policy.redaction import Redactor

TEXT = "Customer Maria Schmidt lives at Hauptstraße 12, 10115 Berlin; SSN 536-22-1234."


def test_default_policy_leaves_names_and_addresses_alone() -> None:
    r = Redactor(RedactionSettings())
    assert "PERSON" not in r.scanner.entities and "ADDRESS" not in r.scanner.entities
    _, out = r.preview(TEXT, "ws")
    assert "Maria Schmidt" in out and "Hauptstraße 12" in out and "536-22-1234" not in out


def test_a_rule_naming_them_turns_them_on() -> None:
    rules = [RedactionRule(entities=["PERSON", "ADDRESS"], action="redact")]
    r = Redactor(RedactionSettings(rules=rules))
    found, out = r.preview(TEXT, "ws")
    assert [e for e, *_ in found] == ["PERSON", "ADDRESS", "US_SSN"]
    assert out == "Customer [REDACTED:PERSON] lives at [REDACTED:ADDRESS]; SSN [REDACTED:US_SSN]."


def test_one_named_type_does_not_bring_the_other() -> None:
    rules = [RedactionRule(entities=["PERSON"], action="monitor")]
    r = Redactor(RedactionSettings(rules=rules))
    found, out = r.preview(TEXT, "ws")
    assert [(e, a) for e, _, _, a in found] == [("PERSON", "monitor"), ("US_SSN", "redact")]
    assert "Maria Schmidt" in out and "Hauptstraße 12" in out


def test_an_explicit_entity_list_decides() -> None:
    r = Redactor(RedactionSettings(entities=["ADDRESS"]))
    found, _ = r.preview(TEXT, "ws")
    assert [e for e, *_ in found] == ["ADDRESS"]
    with pytest.raises(ValueError, match="PERSON"):
        Redactor(RedactionSettings(entities=["ADDRESS"], rules=[RedactionRule(entities=["PERSON"], action="block")]))


def test_streamed_response_redacts_names_across_chunks() -> None:
    r = Redactor(RedactionSettings(rules=[RedactionRule(entities=["PERSON", "ADDRESS"], action="redact")]))
    scanner = r.scanner.stream("[{entity}]")
    out = ""
    for i in range(0, len(TEXT), 5):
        out += scanner.feed(TEXT[i : i + 5])[0]
    out += scanner.finish()[0]
    assert out == "Customer [PERSON] lives at [ADDRESS]; SSN [US_SSN]."
