from __future__ import annotations

import pytest
from pydantic import ValidationError

from sluicegate.control.policies import effective
from sluicegate.control.schemas import CapIn, KeyIn, PolicyIn


def _p(data: dict[str, object]) -> PolicyIn:
    return PolicyIn.model_validate(data)


def test_caps_accumulate_and_lower_levels_override_redaction() -> None:
    org = _p({"caps": [{"limit_usd": "100"}], "redaction": [{"entities": ["EMAIL", "US_SSN"], "action": "redact"}]})
    ws = _p({"redaction": [{"entities": ["US_SSN"], "action": "block", "direction": "request"}]})
    key = _p(
        {
            "caps": [{"window": "day", "limit_usd": "0.000000001", "mode": "monitor"}],
            "custom_patterns": [{"entity": "TICKET", "pattern": "T-[0-9]{6}"}],
        }
    )
    result = effective("o", [("org", "o", org), ("workspace", "w", ws), ("user", "u", None), ("key", "k", key)])
    assert [(c.level, c.entity_id, c.org_id, c.window, c.limit_nusd, c.mode) for c in result.caps] == [
        ("org", "o", "o", "month", 100_000_000_000, "enforce"),
        ("key", "k", "o", "day", 1, "monitor"),
    ]
    rules = {(r.entities[0], r.direction): r.action for r in result.redaction}
    assert rules == {
        ("EMAIL", "request"): "redact",
        ("EMAIL", "response"): "redact",
        ("US_SSN", "request"): "block",
        ("US_SSN", "response"): "redact",
    }
    assert result.sources == {"org": "o", "workspace": "w", "key": "k"}
    shown = result.as_json()
    assert shown["caps"][0]["limit_usd"] == "100.00" and shown["custom_patterns"][0]["entity"] == "TICKET"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"limit_usd": "0.1234567891"}, "limit_usd"),
        ({"limit_usd": "-1"}, "limit_usd"),
        ({"limit_usd": "abc"}, "limit_usd"),
        ({"limit_usd": "1", "window": "year"}, "window"),
        ({"limit_usd": "1", "thresholds": [0]}, "thresholds"),
        ({"limit_usd": "1", "extra": 1}, "extra"),
    ],
)
def test_bad_caps_name_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        CapIn.model_validate(data)
    assert caught.value.errors()[0]["loc"][0] == field


def test_key_expiry_needs_a_time_zone() -> None:
    assert KeyIn.model_validate({"name": "k", "expires_at": "2030-01-01T00:00:00Z"}).expires_at is not None
    with pytest.raises(ValidationError, match="time zone"):
        KeyIn.model_validate({"name": "k", "expires_at": "2030-01-01T00:00:00"})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"redaction": [{"entities": ["NOPE"], "action": "block"}]}, "NOPE"),
        ({"custom_patterns": [{"entity": "X", "pattern": "T-[0-9]+"}]}, "bounded"),
        ({"redaction": [{"entities": ["EMAIL"], "action": "pseudonymize", "direction": "response"}]}, "request"),
    ],
)
def test_policies_the_scanner_cannot_run_are_refused_when_set(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PolicyIn.model_validate(data)
