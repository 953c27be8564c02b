"""Object keys are scanned like values, in requests and complete responses, and a finding's
reported location never carries the value it found (a path through a key holding one)."""

from __future__ import annotations

import orjson
import pytest

from sluicegate.config import RedactionRule, RedactionSettings
from sluicegate.errors import PolicyBlocked
from sluicegate.formats import ANTHROPIC_MESSAGES, OPENAI_CHAT, OPENAI_RESPONSES
from sluicegate.policy.redaction import Redactor, RequestScan

SSN = "536-22-1234"
EMAIL = "maria.schmidt@example.com"


@pytest.fixture
def redactor() -> Redactor:
    rules = [RedactionRule(entities=["CREDIT_CARD"], action="block")]
    return Redactor(RedactionSettings(enabled=True, default_action="redact", rules=rules))


def places(scan: RequestScan) -> list[str]:
    return [place for event in scan.tally.events() for place in event.locations]


def test_request_keys_are_renamed_in_order_and_reported_without_the_value(redactor: Redactor) -> None:
    body = {"model": "m", "messages": [], "metadata": {"a": 1, SSN: 2, "z": 3}}
    raw = orjson.dumps(body)
    scan = redactor.scan_request(OPENAI_CHAT, body, "ws", raw)
    assert list(body["metadata"]) == ["a", "[REDACTED:US_SSN]", "z"]
    assert body["metadata"]["[REDACTED:US_SSN]"] == 2
    assert places(scan) == ["metadata{key}"]


def test_a_value_under_a_key_holding_a_value_is_reported_without_either(redactor: Redactor) -> None:
    body = {"model": "m", "messages": [], "metadata": {SSN: {"note": f"mail {EMAIL}"}}}
    scan = redactor.scan_request(OPENAI_CHAT, body, "ws", orjson.dumps(body))
    assert body["metadata"] == {"[REDACTED:US_SSN]": {"note": "mail [REDACTED:EMAIL]"}}
    reported = " ".join(places(scan))
    assert SSN not in reported and EMAIL not in reported
    assert "metadata.[REDACTED:US_SSN].note" in places(scan)


def test_keys_inside_a_json_string_are_renamed_in_it(redactor: Redactor) -> None:
    body = {
        "model": "m",
        "input": [
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": orjson.dumps({EMAIL: "x"}).decode()}
        ],
    }
    redactor.scan_request(OPENAI_RESPONSES, body, "ws", orjson.dumps(body))
    assert orjson.loads(body["input"][0]["arguments"]) == {"[REDACTED:EMAIL]": "x"}


def test_a_blocked_type_in_a_key_refuses(redactor: Redactor) -> None:
    body = {"model": "m", "messages": [], "metadata": {"4111 1111 1111 1111": "x"}}
    with pytest.raises(PolicyBlocked) as err:
        redactor.scan_request(ANTHROPIC_MESSAGES, body, "ws", orjson.dumps(body))
    assert "CREDIT_CARD" in str(err.value) and "4111" not in str(err.value)


def test_response_keys_are_renamed_before_the_client_sees_them(redactor: Redactor) -> None:
    body = {
        "id": "chatcmpl-1",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
        "provider_extra": {EMAIL: True, "other": {SSN: 1}},
    }
    raw = orjson.dumps(body)
    assert redactor.scan_response(OPENAI_CHAT, body, RequestScan(), "ws", raw)
    assert body["provider_extra"] == {"[REDACTED:EMAIL]": True, "other": {"[REDACTED:US_SSN]": 1}}
    assert EMAIL not in orjson.dumps(body).decode()


def test_keys_that_redact_alike_stay_distinct(redactor: Redactor) -> None:
    body = {"model": "m", "messages": [], "metadata": {SSN: 1, "536-22-1235": 2, "[REDACTED:US_SSN] (2)": 3}}
    redactor.scan_request(OPENAI_CHAT, body, "ws", orjson.dumps(body))
    assert sorted(body["metadata"].values()) == [1, 2, 3]
    assert len(body["metadata"]) == 3


def test_tool_payloads_have_their_keys_scanned(redactor: Redactor) -> None:
    """An MCP tool call's arguments or result (`scan_value`): keys are the caller's text too."""
    arguments = {"query": "ok", "filters": {EMAIL: "x"}, "raw": orjson.dumps({SSN: 1}).decode()}
    scan, blocked = redactor.scan_value(arguments, "request", "ws")
    assert arguments["filters"] == {"[REDACTED:EMAIL]": "x"}
    assert orjson.loads(arguments["raw"]) == {"[REDACTED:US_SSN]": 1}
    assert blocked == [] and EMAIL not in " ".join(p for e in scan.tally.events() for p in e.locations)
