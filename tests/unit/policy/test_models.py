"""Model access rules: patterns, the rule shapes, inheritance down a chain (with locks), aliases,
field-rule operators, ceilings in each format, and modes."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
from pydantic import ValidationError

from sluicegate.config import RedactionSettings
from sluicegate.control.policies import OperatorPolicy, effective, floors_for, violations
from sluicegate.control.schemas import PolicyIn
from sluicegate.errors import InvalidRequest, ModelNotAllowed, ParameterNotAllowed
from sluicegate.formats import ANTHROPIC_MESSAGES, OPENAI_CHAT, OPENAI_EMBEDDINGS, OPENAI_RESPONSES, WireFormat
from sluicegate.policy.auth import Identity
from sluicegate.policy.model_rules import ModelRulesIn, ParamRuleIn, glob_within, globs_meet, matching
from sluicegate.policy.models import ModelPolicy, ModelRules, holds, operator_rules
from sluicegate.policy.rollout import bites
from sluicegate.spend.caps import SpendSettings

CHAT2 = "max_completion_tokens"
WHO = Identity("key-1", "ws-1", "org-1", "user-1")
POLICY = ModelPolicy(ModelRulesIn(), providers=["openai", "mh"])


def rules(**kw: Any) -> ModelRules:
    return operator_rules(ModelRulesIn.model_validate(kw))


def run(
    r: ModelRules, body: dict[str, Any], fmt: WireFormat = OPENAI_CHAT, who: Identity = WHO
) -> tuple[str, list[tuple[str, str]], dict[str, Any]]:
    """(model routed, [(action, level)], the body after) of one request."""
    model, events = POLICY.apply(fmt, body, body["model"], who, r)
    return model, [(e.action, e.entity) for e in events], body


# ── patterns ──────────────────────────────────────────────────────────────────────────────────


def test_patterns_match_whole_names_case_insensitively() -> None:
    assert matching(("gpt-4o*", "claude-*"), "GPT-4o-mini") == "gpt-4o*"
    assert matching(("gpt-4o*",), "openai/gpt-4o") is None  # the whole name
    assert matching(("*",), "a/b@c") == "*"  # `*` crosses `/`
    assert matching(("gpt-4.1",), "gpt-4x1") is None  # `.` is a dot
    assert matching((), "x") is None


@pytest.mark.parametrize("bad", ["gpt-?", "gpt-[45]", "a b", "", "x" * 201])
def test_patterns_allow_names_and_stars_only(bad: str) -> None:
    with pytest.raises(ValidationError):
        ModelRulesIn(deny=[bad])


def _names(alphabet: str, n: int) -> list[str]:
    return ["".join(p) for k in range(n + 1) for p in itertools.product(alphabet, repeat=k)]


def _lang(pattern: str, names: list[str]) -> set[str]:
    rx = re.compile(".*".join(re.escape(x) for x in pattern.split("*")))
    return {n for n in names if rx.fullmatch(n)}


def test_within_and_meet_agree_with_brute_force() -> None:
    patterns = [p for p in _names("ab*", 3) if p and "**" not in p]
    names = _names("ab", 5)
    langs = {p: _lang(p, names) for p in patterns}
    for p, q in itertools.product(patterns, repeat=2):
        if glob_within(p, q):  # sound: never says yes wrongly
            assert langs[p] <= langs[q], (p, q)
        assert globs_meet(p, q) == bool(langs[p] & langs[q]), (p, q)
    assert glob_within("gpt-4o-mini", "gpt-4o*") and glob_within("gpt-4o*", "gpt-*")
    assert not glob_within("gpt-*", "gpt-4o*")
    assert globs_meet("gpt-*", "*-mini") and not globs_meet("gpt-*", "claude-*")


# ── shapes ────────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    "body",
    [
        {"aliases": {"fast": "quick", "quick": "gpt-4o"}},  # an alias to an alias
        {"aliases": {"a b": "gpt-4o"}},
        {"allow_locked": True},
        {"deny_locked": True},
        {"params": [{"field": "n", "op": "lte", "value": "1"}]},
        {"params": [{"field": "n", "op": "in", "value": 1}]},
        {"params": [{"field": "n", "op": "eq", "value": [1]}]},
        {"params": [{"field": "n", "op": "absent", "value": 1}]},
        {"params": [{"field": "N-x", "op": "absent"}]},
        {"ceilings": [{"max_output_tokens": 0}]},
        {"ceilings": [{"max_output_tokens": 10, "action": "drop"}]},
        {"rollout_percent": 101},
        {"mode": "audit"},
        {"unknown": 1},
    ],
)
def test_bad_rules_are_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ModelRulesIn.model_validate(body)


def test_empty_rules_cost_nothing() -> None:
    assert ModelRulesIn().empty and ModelRulesIn(mode="monitor").empty
    assert POLICY.rules_for(WHO) is None  # the pipeline's single check
    assert not ModelRulesIn(allow=[]).empty  # an empty allow list allows nothing


# ── lists, aliases, prefixes ──────────────────────────────────────────────────────────────────


def test_deny_wins_and_allow_narrows() -> None:
    r = rules(allow=["gpt-*", "claude-*"], deny=["gpt-4o*"])
    assert run(r, {"model": "gpt-4.1"})[0] == "gpt-4.1"
    for model in ("gpt-4o", "gpt-4o-mini", "o3", "GPT-4O"):
        with pytest.raises(ModelNotAllowed) as e:
            run(r, {"model": model})
        assert e.value.status == 403 and e.value.type == "permission_error"
        assert e.value.headers["x-should-retry"] == "false"
    with pytest.raises(ModelNotAllowed) as e:
        run(r, {"model": "o3"})
    assert e.value.extra["rule"] == {
        "level": "operator",
        "id": None,
        "list": "allow",
        "pattern": None,
        "model": "o3",
        "resolved": "o3",
    }
    with pytest.raises(ModelNotAllowed):
        run(rules(allow=[]), {"model": "gpt-4.1"})  # an empty allow list allows nothing


def test_neither_an_alias_nor_a_provider_prefix_walks_around_a_deny() -> None:
    r = rules(deny=["gpt-4o", "secret"], aliases={"fast": "gpt-4o", "secret": "gpt-4.1"})
    with pytest.raises(ModelNotAllowed) as e:
        run(r, {"model": "fast"})  # the model it stands for is denied
    assert "the alias stands for 'gpt-4o'" in e.value.message and e.value.extra["rule"]["pattern"] == "gpt-4o"
    with pytest.raises(ModelNotAllowed):
        run(r, {"model": "secret"})  # the alias's own name is denied
    with pytest.raises(ModelNotAllowed):
        run(r, {"model": "openai/gpt-4o"})  # a configured provider's prefix
    assert run(r, {"model": "other/gpt-4o"})[0] == "other/gpt-4o"  # not a provider: another model
    # allow lists judge what the alias stands for, with or without the prefix
    r = rules(allow=["gpt-4o-mini"], aliases={"fast": "gpt-4o-mini", "big": "gpt-4o"})
    model, events, body = run(r, {"model": "fast"})
    assert model == body["model"] == "gpt-4o-mini" and events == [("alias", "operator")]
    assert run(r, {"model": "openai/gpt-4o-mini"})[0] == "openai/gpt-4o-mini"
    with pytest.raises(ModelNotAllowed):
        run(r, {"model": "big"})


# ── inheritance and locks (through control.policies) ──────────────────────────────────────────

ORG, WS, USER, KEY = "org-1", "ws-1", "user-1", "key-1"


def chain(org: Any = None, ws: Any = None, user: Any = None, key: Any = None) -> list[Any]:
    def p(m: Any) -> PolicyIn | None:
        return None if m is None else PolicyIn.model_validate({"models": m})

    return [("org", ORG, p(org)), ("workspace", WS, p(ws)), ("user", USER, p(user)), ("key", KEY, p(key))]


def operator(models: dict[str, Any]) -> OperatorPolicy:
    return OperatorPolicy.from_settings(RedactionSettings(), SpendSettings(), ModelRulesIn.model_validate(models))


def test_every_allow_list_narrows_and_any_deny_refuses() -> None:
    eff = effective(
        ORG,
        chain(org={"allow": ["gpt-*", "claude-*"]}, ws={"allow": ["gpt-*", "o3"]}, key={"deny": ["gpt-4o"]}),
        operator({"deny": ["*-preview"]}),
    ).models
    assert [s.level for s in eff.sets] == ["operator", "org", "workspace", "key"]
    assert run(eff, {"model": "gpt-4.1"})[0] == "gpt-4.1"
    for model, level in (("gpt-4o", "key"), ("o3", "org"), ("claude-3", "workspace"), ("gpt-5-preview", "operator")):
        with pytest.raises(ModelNotAllowed) as e:
            run(eff, {"model": model})
        assert e.value.extra["rule"]["level"] == level, model


def test_aliases_lower_levels_replace_the_same_name() -> None:
    eff = effective(
        ORG, chain(org={"aliases": {"fast": "gpt-4o-mini", "big": "gpt-4o"}}, ws={"aliases": {"fast": "claude-haiku"}})
    ).models
    assert {n: (a.target, a.level) for n, a in eff.aliases.items()} == {
        "fast": ("claude-haiku", "workspace"),
        "big": ("gpt-4o", "org"),
    }
    assert eff.as_json()["aliases"][0]["origin"] in ("org", "workspace")


def test_locks_refuse_weaker_writes_below() -> None:
    org = {
        "allow": ["gpt-*", "claude-*"],
        "allow_locked": True,
        "deny": ["gpt-4o*"],
        "deny_locked": True,
        "ceilings": [{"max_output_tokens": 4096, "models": ["claude-*"], "locked": True}],
    }
    above = chain(org=org)[:1]
    floors = floors_for(ORG, above, "workspace", WS, None)
    ws = PolicyIn.model_validate(
        {
            "models": {
                "allow": ["gpt-4.1", "o3", "gpt-4o-mini", "*"],
                "aliases": {"fast": "o3-mini", "ok": "claude-haiku"},
                "ceilings": [
                    {"max_output_tokens": 8000, "models": ["*-haiku"]},  # meets claude-*: too high
                    {"max_output_tokens": 8000, "models": ["gpt-*"]},  # another scope: fine
                    {"max_output_tokens": 1000},  # lower: fine
                ],
            }
        }
    )
    found = {(v.loc, v.locked_by.level) for v in violations(floors, ws)}
    assert found == {
        ("models.allow.1", "org"),  # o3: outside the locked allow list
        ("models.allow.2", "org"),  # gpt-4o-mini: wholly denied
        ("models.allow.3", "org"),  # *: wider than the allow list (it meets the deny, but is not within it)
        ("models.aliases.fast", "org"),
        ("models.ceilings.0", "org"),
    }
    # the operator's locks bind orgs
    op = operator({"deny": ["o1*"], "deny_locked": True})
    org_found = violations(floors_for(ORG, [], "org", ORG, op), PolicyIn.model_validate({"models": {"allow": ["o1"]}}))
    assert [(v.loc, v.locked_by.level) for v in org_found] == [("models.allow.0", "operator")]


def test_a_locked_ceiling_holds_even_when_a_higher_one_is_written_below() -> None:
    org = {"ceilings": [{"max_output_tokens": 100, "locked": True}, {"max_output_tokens": 50, "models": ["x*"]}]}
    eff = effective(ORG, chain(org=org, ws={"ceilings": [{"max_output_tokens": 5000}]})).models
    ceilings = [(s.level, c.max_output_tokens) for s in eff.sets for c in s.ceilings]
    assert ceilings == [("org", 100), ("workspace", 5000)]  # the unlocked x* ceiling was replaced
    assert [(s.level, c.max_output_tokens) for s, c in eff.replaced] == [("org", 50)]
    _, events, body = run(eff, {"model": "gpt-4.1", "max_tokens": 3000})
    assert body["max_tokens"] == 100 and events == [("clamp", "org")]


# ── field rules ───────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("op", "ref", "value", "ok"),
    [
        ("lte", 1, 1, True),
        ("lte", 1, 1.5, False),
        ("lte", 1, "0", False),  # not a number
        ("lte", 1, True, False),  # a bool is not a number
        ("gte", 0.5, 0.5, True),
        ("eq", 1, 1.0, True),
        ("eq", 1, True, False),
        ("eq", True, True, True),
        ("eq", "a", "A", False),
        ("ne", "priority", "priority", False),
        ("ne", "priority", "default", True),
        ("in", ["auto", "default"], "auto", True),
        ("in", [1, 2], True, False),
        ("not_in", ["priority", "flex"], "flex", False),
        ("not_in", ["priority"], {"x": 1}, True),
    ],
)
def test_operators(op: str, ref: Any, value: Any, ok: bool) -> None:
    assert holds(ParamRuleIn.model_validate({"field": "f", "op": op, "value": ref}), value) is ok


def test_field_rules_use_each_formats_name_and_skip_absent_fields() -> None:
    r = rules(
        params=[
            {"field": "n", "op": "lte", "value": 1},
            {"field": "stop", "op": "absent"},
            {"field": "max_tokens", "op": "lte", "value": 100},
        ]
    )
    assert run(r, {"model": "m"})[0] == "m"  # absent fields pass
    for fmt, body, param in (
        (OPENAI_CHAT, {"n": 2}, "n"),
        (OPENAI_CHAT, {"stop": ["x"]}, "stop"),
        (ANTHROPIC_MESSAGES, {"stop_sequences": ["x"]}, "stop_sequences"),
        (OPENAI_CHAT, {"max_completion_tokens": 101}, "max_completion_tokens"),
        (OPENAI_RESPONSES, {"max_output_tokens": 101}, "max_output_tokens"),
        (ANTHROPIC_MESSAGES, {"max_tokens": 101}, "max_tokens"),
    ):
        with pytest.raises(ParameterNotAllowed) as e:
            run(r, {"model": "m", **body}, fmt)
        assert e.value.param == param and e.value.code == "parameter_not_allowed" and e.value.status == 400
        assert e.value.extra["rule"]["list"] == "params"
    assert run(r, {"model": "m", "max_tokens": 100}, ANTHROPIC_MESSAGES)[0] == "m"


# ── ceilings ──────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("fmt", "body", "after"),
    [
        (
            OPENAI_CHAT,
            {"max_tokens": 500, "max_completion_tokens": 80},
            {"max_tokens": 100, "max_completion_tokens": 80},
        ),
        (OPENAI_CHAT, {}, {"max_tokens": 100}),
        (OPENAI_CHAT, {"max_completion_tokens": 500}, {"max_completion_tokens": 100}),
        (OPENAI_RESPONSES, {"max_output_tokens": 500}, {"max_output_tokens": 100}),
        (OPENAI_RESPONSES, {}, {"max_output_tokens": 100}),
        (ANTHROPIC_MESSAGES, {"max_tokens": 500}, {"max_tokens": 100}),
        (ANTHROPIC_MESSAGES, {"max_tokens": 50}, {"max_tokens": 50}),
        (OPENAI_EMBEDDINGS, {}, {}),  # no output to limit
    ],
)
def test_a_clamp_ceiling_lowers_each_formats_limit(
    fmt: WireFormat, body: dict[str, Any], after: dict[str, Any]
) -> None:
    r = rules(ceilings=[{"max_output_tokens": 100}])
    _, events, out = run(r, {"model": "m", **body}, fmt)
    assert {k: v for k, v in out.items() if k != "model"} == after
    assert events == ([("clamp", "operator")] if after != {**body} else [])


def test_a_refuse_ceiling_refuses_and_the_lowest_clamp_binds() -> None:
    r = rules(
        ceilings=[
            {"max_output_tokens": 1000, "action": "refuse"},
            {"max_output_tokens": 300, "models": ["claude-*"]},
            {"max_output_tokens": 200, "models": ["claude-*", "gpt-*"]},
        ]
    )
    with pytest.raises(ParameterNotAllowed) as e:
        run(r, {"model": "claude-x", "max_tokens": 1001}, ANTHROPIC_MESSAGES)
    assert e.value.code == "max_tokens_above_ceiling" and e.value.param == "max_tokens"
    assert e.value.extra["rule"]["max_output_tokens"] == 1000
    assert run(r, {"model": "claude-x", "max_tokens": 1000}, ANTHROPIC_MESSAGES)[2]["max_tokens"] == 200
    assert run(r, {"model": "o3", "max_tokens": 1000}, ANTHROPIC_MESSAGES)[2]["max_tokens"] == 1000
    assert run(r, {"model": "o3"})[2]["max_tokens"] == 1000  # unset: the refuse ceiling is written in
    with pytest.raises(InvalidRequest):
        run(r, {"model": "o3", "max_tokens": 1e13})


# ── modes ─────────────────────────────────────────────────────────────────────────────────────


def test_monitor_records_and_lets_the_call_go_ahead() -> None:
    r = rules(
        deny=["gpt-4o"],
        params=[{"field": "n", "op": "lte", "value": 1}],
        ceilings=[{"max_output_tokens": 10}],
        aliases={"fast": "gpt-4o"},
        mode="monitor",
    )
    model, events, body = run(r, {"model": "fast", "n": 3, "max_tokens": 50})
    assert model == "gpt-4o" and body["max_tokens"] == 50 and body["n"] == 3  # the alias still applies
    assert events == [
        ("alias", "operator"),
        ("would_refuse", "operator"),
        ("would_refuse", "operator"),
        ("would_clamp", "operator"),
    ]
    # the listing ignores monitor levels
    assert POLICY.permits(r, WHO, "gpt-4o")


def test_a_rollout_bites_for_the_keys_in_its_share() -> None:
    r = rules(deny=["gpt-4o"], rollout_percent=30)
    refused = 0
    for i in range(200):
        who = Identity(f"key-{i}", "ws")
        expected = bites("enforce", 30, "models:operator:", who.key_name)
        try:
            _, events, _ = run(r, {"model": "gpt-4o"}, who=who)
            assert not expected and events == [("would_refuse", "operator")]
        except ModelNotAllowed as e:
            assert expected and [(ev.action, ev.entity) for ev in e.events] == [("refuse", "operator")]
            refused += 1
        assert POLICY.permits(r, who, "gpt-4o") is not expected
    assert 40 <= refused <= 80
