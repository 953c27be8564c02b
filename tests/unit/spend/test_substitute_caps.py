"""A `substitute` cap names its model (and only such a cap does), in the file, in policies and in
the effective policy."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sluicegate.control.policies import effective
from sluicegate.control.schemas import CapIn, PolicyIn
from sluicegate.spend.caps import CapLine, CapSettings


def test_a_substitute_cap_needs_its_model() -> None:
    with pytest.raises(ValueError, match="needs substitute_model"):
        CapLine("org", "acme", "acme", "day", 100, on_insufficient="substitute")
    with pytest.raises(ValidationError, match="needs substitute_model"):
        CapIn(window="day", limit_usd="1", on_insufficient="substitute")
    with pytest.raises(ValidationError, match="is for caps with on_insufficient = 'substitute'"):
        CapSettings(level="org", id="acme", limit_usd="1", substitute_model="gpt-4o-mini")
    with pytest.raises(ValidationError, match="at most 256"):
        CapIn(window="day", limit_usd="1", on_insufficient="substitute", substitute_model="m" * 257)


def test_the_substitute_reaches_the_line_and_the_effective_policy() -> None:
    cap = CapIn(window="day", limit_usd="1", on_insufficient="substitute", substitute_model="openai/gpt-4o-mini")
    policy = effective("acme", [("org", "acme", PolicyIn(caps=[cap])), ("workspace", "ws", None), ("key", "k", None)])
    (line,) = policy.caps
    assert (line.on_insufficient, line.substitute_model) == ("substitute", "openai/gpt-4o-mini")
    assert policy.as_json()["caps"][0]["substitute_model"] == "openai/gpt-4o-mini"
    assert not line.clamps and line.enforced  # refuses in the store; the pipeline substitutes
    file_cap = CapSettings(
        level="org", id="acme", limit_usd="1", on_insufficient="substitute", substitute_model="mini"
    ).line()
    assert file_cap.substitute_model == "mini"
