"""The rate-limit step on its own: rollout shares, the limit headers of each format, the 429, the
policy over many callers with the local store, and locks on limits (refused at write, raised in
effect)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from sluicegate.control.policies import OperatorPolicy, effective, floors_for, violations
from sluicegate.control.schemas import PolicyIn
from sluicegate.errors import RateLimited
from sluicegate.formats.anthropic_messages import ANTHROPIC_MESSAGES
from sluicegate.formats.openai_chat import OPENAI_CHAT
from sluicegate.limits import LimitLine, LimitSettings, LineState
from sluicegate.observe.events import PolicyEvent
from sluicegate.policy.auth import Identity
from sluicegate.policy.limits import LimitPolicy, LimitRule, format_duration, limit_headers, rate_limited

BODY = {"model": "m", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 10}


def _line(kind: str = "requests", limit: int = 10, level: str = "workspace", entity: str = "w") -> LimitLine:
    return LimitLine(level=level, entity_id=entity, org_id="o", kind=kind, limit=limit, window_s=60)  # type: ignore[arg-type]


def test_a_rollout_at_25_percent_bites_about_a_quarter_of_200_keys_and_keeps_them() -> None:
    quarter = LimitRule(_line(), "enforce", 25)
    bitten = {f"key-{i}" for i in range(200) if quarter.bites(f"key-{i}")}
    assert 35 <= len(bitten) <= 65, len(bitten)
    half = LimitRule(_line(), "enforce", 50)
    assert bitten <= {f"key-{i}" for i in range(200) if half.bites(f"key-{i}")}  # raising keeps the first quarter
    assert all(LimitRule(_line(), "enforce", 100).bites(f"k{i}") for i in range(50))
    assert not any(LimitRule(_line(), "monitor", 100).bites(f"k{i}") for i in range(50))
    assert not any(LimitRule(_line(), "enforce", 0).bites(f"k{i}") for i in range(50))


async def test_the_policy_at_25_percent_refuses_about_a_quarter_of_200_callers() -> None:
    """One workspace limit of 1 request a minute, rolled out to 25% of keys: after the first call
    every call is over it; the keys in the rollout are refused, the others go ahead and count a
    `would_refuse`."""
    rules = [{"level": "workspace", "id": "w", "org": "o", "kind": "requests", "limit": 1, "rollout_percent": 25}]
    policy = LimitPolicy(LimitSettings.model_validate({"rules": rules}))
    await policy.start()
    refused = monitored = 0
    try:
        for i in range(200):
            who = Identity(f"key-{i}", "w", "o")
            try:
                guard = await policy.acquire(who, OPENAI_CHAT, BODY)
            except RateLimited as err:
                refused += 1
                assert [e.action for e in err.events] == ["refuse"]
                continue
            monitored += sum(e.action == "would_refuse" for e in guard.events)
            await guard.finish(None)
    finally:
        await policy.stop()
    assert 35 <= refused <= 65, refused
    assert refused + monitored == 199  # every call after the first was over the limit


async def test_a_caller_without_limits_touches_nothing() -> None:
    rules = [{"level": "key", "id": "k", "org": "o", "kind": "requests", "limit": 1}]
    policy = LimitPolicy(LimitSettings.model_validate({"rules": rules}))
    await policy.start()
    try:
        guard = await policy.acquire(Identity("other", "w", "o"), OPENAI_CHAT, BODY)
        assert guard.grant is None and guard.headers is None and guard.events == []
        guard = await policy.acquire(Identity("k", "w", "o"), OPENAI_CHAT, BODY)
        assert guard.grant is not None and guard.headers
        await guard.finish(None)
    finally:
        await policy.stop()


def test_durations_as_openai_writes_them() -> None:
    assert [format_duration(ms) for ms in (0, 20, 999, 1000, 1500, 59_999, 60_000, 360_000, 3_723_000)] == [
        "0ms",
        "20ms",
        "999ms",
        "1s",
        "1.5s",
        "59.999s",
        "1m0s",
        "6m0s",
        "1h2m3s",
    ]


def test_headers_show_the_tightest_line_of_each_kind() -> None:
    states = [
        LineState(_line("requests", 100, "org", "o"), 90, 30_000, 0),
        LineState(_line("requests", 10), 4, 6_000, 0),
        LineState(_line("tokens", 1000, "key", "k"), 500, 60_000, 0),
        LineState(_line("concurrent", 3), 1, 0, 0),
    ]
    openai = dict(limit_headers("openai", states))
    assert openai == {
        b"x-ratelimit-limit-requests": b"10",
        b"x-ratelimit-remaining-requests": b"4",
        b"x-ratelimit-reset-requests": b"6s",
        b"x-ratelimit-limit-tokens": b"1000",
        b"x-ratelimit-remaining-tokens": b"500",
        b"x-ratelimit-reset-tokens": b"1m0s",
    }
    anthropic = dict(limit_headers("anthropic", states, now_s=1_800_000_000.2))
    assert anthropic[b"anthropic-ratelimit-requests-limit"] == b"10"
    assert anthropic[b"anthropic-ratelimit-requests-remaining"] == b"4"
    assert anthropic[b"anthropic-ratelimit-requests-reset"] == b"2027-01-15T08:00:07Z"  # rounded up
    assert anthropic[b"anthropic-ratelimit-tokens-reset"] == b"2027-01-15T08:01:01Z"
    assert limit_headers("openai", [LineState(_line("concurrent", 3), 1, 0, 0)]) == []


def test_the_429_names_the_limit_and_when_to_retry_in_both_formats() -> None:
    state = LineState(_line("tokens", 500, "key", "k-1"), 0, 40_000, 2_345)
    err = rate_limited(state, "openai")
    assert err.status == 429 and err.code == "gateway_rate_limit_exceeded" and err.type == "rate_limit_error"
    assert err.message == "rate limit reached: key 'k-1' allows 500 tokens per 60 s; retry after 2.345 s"
    assert err.headers["retry-after"] == "3" and err.headers["retry-after-ms"] == "2345"
    assert err.headers["x-sluicegate-limit"] == "key/tokens"
    assert err.headers["x-ratelimit-remaining-tokens"] == "0"
    assert "x-should-retry" not in err.headers
    body = OPENAI_CHAT.error_body(err)
    assert b'"code":"gateway_rate_limit_exceeded"' in body and b'"type":"rate_limit_error"' in body
    anthropic = ANTHROPIC_MESSAGES.error_body(rate_limited(state, "anthropic"), "req-1")
    assert anthropic.startswith(b'{"type":"error","error":{"type":"rate_limit_error"')
    assert "anthropic-ratelimit-tokens-remaining" in rate_limited(state, "anthropic").headers
    concurrent = rate_limited(LineState(_line("concurrent", 2), 0, 0, 0), "openai")
    assert "2 requests in flight at once" in concurrent.message and concurrent.headers["retry-after"] == "1"


# ── locks on limits ───────────────────────────────────────────────────────────────────────────


def _p(data: dict[str, Any]) -> PolicyIn:
    return PolicyIn.model_validate(data)


ORG_LOCK = _p({"limits": [{"kind": "requests", "limit": 100, "window_s": 60, "locked": True}]})


def test_a_limit_above_a_locked_one_is_refused_at_write_and_lowered_in_effect() -> None:
    higher = _p({"limits": [{"kind": "requests", "limit": 500, "window_s": 60}]})
    found = violations(floors_for("o", [("org", "o", ORG_LOCK)], "workspace", "w", None), higher)
    assert [v.loc for v in found] == ["limits.0.limit"]
    assert "above the requests limit per 60 s of 100 that org o locks" in found[0].message
    # another window or kind is not bound by it
    other = _p({"limits": [{"kind": "requests", "limit": 500, "window_s": 1}, {"kind": "tokens", "limit": 9999}]})
    assert violations(floors_for("o", [("org", "o", ORG_LOCK)], "workspace", "w", None), other) == []

    eff = effective("o", [("org", "o", ORG_LOCK), ("workspace", "w", higher)])
    lines = {(r.line.level, r.line.limit) for r in eff.limits}
    assert lines == {("org", 100), ("workspace", 100)}  # both count; the workspace's lowered to the lock
    shown = [limit.as_json() for limit in eff.limit_origins]
    assert shown[1]["raised_from"] == {"limit": 500, "mode": "enforce", "rollout_percent": 100.0}
    assert shown[0]["origin"] == "org" and shown[0]["locked"] is True


def test_below_an_enforcing_lock_a_limit_may_not_monitor_or_roll_out_less() -> None:
    monitor = _p({"limits": [{"kind": "requests", "limit": 50, "mode": "monitor"}]})
    partial = _p({"limits": [{"kind": "requests", "limit": 50, "rollout_percent": 10}]})
    floors = floors_for("o", [("org", "o", ORG_LOCK)], "user", "u", None)
    assert [v.loc for v in violations(floors, monitor)] == ["limits.0.mode"]
    assert [v.loc for v in violations(floors, partial)] == ["limits.0.rollout_percent"]
    for weaker in (monitor, partial):
        eff = effective("o", [("org", "o", ORG_LOCK), ("user", "u", weaker)])
        raised = eff.limits[-1]
        assert (raised.mode, raised.rollout_percent, raised.line.limit) == ("enforce", 100, 50)


def test_the_operators_locked_rule_is_a_ceiling_for_its_entity_and_below() -> None:
    settings = LimitSettings.model_validate(
        {"rules": [{"level": "org", "id": "o", "kind": "tokens", "limit": 1000, "window_s": 60, "locked": True}]}
    )
    from sluicegate.config import RedactionSettings
    from sluicegate.spend.caps import SpendSettings

    operator = OperatorPolicy.from_settings(RedactionSettings(), SpendSettings(), limits=settings)
    higher = _p({"limits": [{"kind": "tokens", "limit": 5000}]})
    found = violations(floors_for("o", [("org", "o", None)], "key", "k", operator), higher)
    assert found and found[0].locked_by.level == "operator"
    eff = effective("o", [("org", "o", None), ("key", "k", higher)], operator)
    assert [(r.line.level, r.line.limit) for r in eff.limits] == [("key", 1000)]  # the operator's line is the config's
    assert [limit.origin.level for limit in eff.limit_origins] == ["operator", "key"]


def test_a_policy_gives_each_kind_and_window_once() -> None:
    with pytest.raises(ValidationError, match="two requests limits per 60 s"):
        _p({"limits": [{"kind": "requests", "limit": 5}, {"kind": "requests", "limit": 9}]})
    with pytest.raises(ValidationError):
        _p({"limits": [{"kind": "requests", "limit": 0}]})
    _p({"limits": [{"kind": "requests", "limit": 5}, {"kind": "requests", "limit": 9, "window_s": 1}]})


def test_events_carry_figures_never_content() -> None:
    state = LineState(_line("requests", 3, "key", "k"), 0, 1000, 500)
    err = rate_limited(state, "openai")
    assert err.extra["limit"] == {
        "level": "key",
        "kind": "requests",
        "limit": 3,
        "window_s": 60,
        "id": "k",
        "org": "o",
        "remaining": 0,
        "retry_after_ms": 500,
    }
    assert isinstance(PolicyEvent("limits", "refuse", "", "key"), PolicyEvent)
    assert re.fullmatch(r"[a-z_]+", err.code)


async def test_with_the_store_unreachable_a_policy_chooses_closed_or_open() -> None:
    """Nothing listens at the store's address: the section fails closed, a policy's limit that
    fails open serves its calls, and a call its limits only monitor is always served."""
    from tests.conftest import free_port

    from sluicegate.errors import Unavailable

    settings = LimitSettings.model_validate(
        {"backend": "redis", "redis_url": f"redis://127.0.0.1:{free_port()}/0", "redis_breaker_s": 0}
    )
    policy = LimitPolicy(settings)
    rules: dict[str, tuple[LimitRule, ...]] = {
        "closed": (LimitRule(_line()),),
        "open": (LimitRule(_line(), on_redis_error="fail_open"),),
        "monitored": (LimitRule(_line(), "monitor"),),
        "both": (LimitRule(_line(), on_redis_error="fail_open"), LimitRule(_line("tokens"))),
    }
    policy.policy_lines = lambda who: rules[who.key_name]
    await policy.start()
    try:
        for name, served in (("closed", False), ("open", True), ("monitored", True), ("both", False)):
            who = Identity(name, "w", "o")
            if served:
                guard = await policy.acquire(who, OPENAI_CHAT, BODY)
                assert [e.action for e in guard.events] == ["store_unavailable"] and guard.grant is None, name
            else:
                with pytest.raises(Unavailable) as caught:
                    await policy.acquire(who, OPENAI_CHAT, BODY)
                assert caught.value.code == "limit_store_unavailable", name
    finally:
        await policy.stop()


RULE_TOML = '[[limits.rules]]\nlevel = "key"\nid = "k"\norg = "o"\nkind = "requests"\nlimit = 5\n'


@pytest.mark.parametrize(
    ("text", "env", "refused"),
    [
        (RULE_TOML, {"SLUICEGATE_SERVER__WORKERS": "2"}, True),
        ("[control]\nenabled = true\n[spend]\nbackend = 'redis'\n", {"SLUICEGATE_SERVER__WORKERS": "4"}, True),
        (RULE_TOML, {"SLUICEGATE_LIMITS__BACKEND": "redis", "SLUICEGATE_SERVER__WORKERS": "4"}, False),
        (RULE_TOML, {"SLUICEGATE_LIMITS__ENABLED": "false", "SLUICEGATE_SERVER__WORKERS": "4"}, False),
        (RULE_TOML, {"SLUICEGATE_SERVER__WORKERS": "1"}, False),
    ],
    ids=["file rules", "control plane limits", "redis", "limits off", "one worker"],
)
def test_limits_on_the_local_backend_across_workers_are_refused(
    tmp_path: Any, text: str, env: dict[str, str], refused: bool
) -> None:
    from sluicegate.config import ConfigError, load_settings

    path = tmp_path / "c.toml"
    path.write_text(text)
    if not refused:
        assert load_settings(path, environ=env).limits.enabled is ("ENABLED" not in str(env))
        return
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ=env)
    for named in ("limits.backend = 'local'", "server.workers = ", "limits.backend = 'redis'", "server.workers = 1"):
        assert named in str(err.value)


def test_a_keys_effective_limits_say_whether_it_is_in_a_partial_rollout() -> None:
    partial = _p({"limits": [{"kind": "requests", "limit": 10, "rollout_percent": 25}]})
    shown = []
    for i in range(40):
        eff = effective("o", [("workspace", "w", partial), ("key", f"key-{i}", None)])
        (limit,) = eff.limit_origins
        rollout = limit.as_json()["rollout"]
        assert rollout["percent"] == 25 and rollout["applies"] == limit.rule.bites(f"key-{i}")
        shown.append(rollout["applies"])
    assert 0 < sum(shown) < 40  # some keys in the quarter, some not
    with pytest.raises(ValidationError, match="locked limit is a floor for every key"):
        _p({"limits": [{"kind": "requests", "limit": 10, "rollout_percent": 25, "locked": True}]})
