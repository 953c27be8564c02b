"""A `substitute` cap names its model (and only such a cap does), in the file, in policies and in
the effective policy; so do a cap that substitutes from a percent on and a rate limit with a
substitute, which does not count calls to its substitute."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sluicegate.control.policies import effective
from sluicegate.control.schemas import CapIn, LimitIn, PolicyIn
from sluicegate.limits import LimitRuleSettings
from sluicegate.policy.limits import _Plan, rule_of
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


def test_substituting_from_a_percent_is_for_substitute_caps_below_100() -> None:
    sub = {"on_insufficient": "substitute", "substitute_model": "mini"}
    with pytest.raises(ValueError, match="substitute_at_percent is for caps with on_insufficient"):
        CapLine("org", "acme", "acme", "day", 100, substitute_at_percent=80)
    for bad in (0, 100, 150):
        with pytest.raises(ValueError, match="from 1 to 99"):
            CapLine("org", "acme", "acme", "day", 100, substitute_at_percent=bad, **sub)  # type: ignore[arg-type]
        with pytest.raises(ValidationError):
            CapIn(window="day", limit_usd="1", substitute_at_percent=bad, **sub)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="substitute_at_percent is for caps"):
        CapSettings(level="org", id="acme", limit_usd="1", substitute_at_percent=80)
    cap = CapIn(window="day", limit_usd="1", substitute_at_percent=80, **sub)  # type: ignore[arg-type]
    policy = effective("acme", [("org", "acme", PolicyIn(caps=[cap])), ("workspace", "ws", None), ("key", "k", None)])
    assert policy.caps[0].substitute_at_percent == 80
    assert policy.as_json()["caps"][0]["substitute_at_percent"] == 80
    line = CapSettings(level="org", id="acme", limit_usd="1", substitute_at_percent=80, **sub).line()  # type: ignore[arg-type]
    assert line.substitute_at_percent == 80


def test_a_rate_limit_substitute_reaches_the_rule_and_is_not_counted_on_it() -> None:
    spec = LimitIn(kind="requests", limit=5, substitute_model="openai/gpt-4o-mini")
    chain = [("org", "acme", PolicyIn(limits=[spec])), ("workspace", "ws", None), ("key", "k", None)]
    policy = effective("acme", chain)  # type: ignore[arg-type]
    (rule,) = policy.limits
    assert rule.substitute_model == "openai/gpt-4o-mini"
    assert policy.as_json()["limits"][0]["substitute_model"] == "openai/gpt-4o-mini"
    with pytest.raises(ValidationError, match="at most 256"):
        LimitIn(kind="requests", limit=5, substitute_model="m" * 257)
    file_rule = LimitRuleSettings(level="org", id="acme", kind="tokens", limit=9, substitute_model="mini")
    plain = LimitRuleSettings(level="org", id="acme", kind="requests", limit=9)
    plan = _Plan((rule_of(file_rule), rule_of(plain)), ())
    # A call asking for the substitute is counted on every rule but the one it relieves.
    assert plan.for_model("gpt-4o") is plan
    assert [r.line.kind for r in plan.for_model("mini").rules] == ["requests"]
    assert plan.for_model("mini") is plan.for_model("mini") and not plan.for_model("mini").tokens
