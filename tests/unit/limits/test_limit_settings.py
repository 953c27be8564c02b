"""`[limits]` settings and `LimitLine`: defaults, the file's rules as lines, and clear errors."""

from __future__ import annotations

import tomllib

import pytest
from pydantic import ValidationError

from sluicegate.limits.lines import MAX_LIMIT, LimitLine, tool_scope
from sluicegate.limits.settings import LimitRuleSettings, LimitSettings

TOML = """
backend = "redis"
redis_url = "redis://:hunter2@10.0.0.5:6379/0"
on_redis_error = "fail_open"
concurrency_ttl_s = 900

[lease]
enabled = true
requests_per_slice = 20

[[rules]]
level = "org"
id = "acme"
kind = "requests"
limit = 6000

[[rules]]
level = "key"
id = "key-7"
org = "acme"
kind = "tokens"
limit = 100000
window_s = 60
mode = "enforce"
rollout_percent = 25
rollout_by = "request"

[[rules]]
level = "user"
id = "u1"
org = "acme"
kind = "concurrent"
limit = 4
"""


def test_defaults() -> None:
    s = LimitSettings()
    assert (s.enabled, s.backend, s.on_redis_error, s.slot_ms, s.concurrency_ttl_s) == (
        True,
        "local",
        "fail_closed",
        1000,
        600.0,
    )
    assert not s.lease.enabled and s.rules == () and s.lines() == ()


def test_the_files_rules_become_lines() -> None:
    s = LimitSettings.model_validate(tomllib.loads(TOML))
    assert "hunter2" not in repr(s) and "hunter2" not in str(s.model_dump(mode="json"))
    assert s.redis_url.reveal().startswith("redis://:hunter2@")
    assert s.lease.enabled and s.lease.requests_per_slice == 20 and s.concurrency_ttl_s == 900
    assert s.lines() == (
        LimitLine("org", "acme", "acme", "requests", 6000, 60),
        LimitLine("key", "key-7", "acme", "tokens", 100_000, 60),
        LimitLine("user", "u1", "acme", "concurrent", 4, 60),
    )
    key = s.rules[1]
    assert (key.mode, key.rollout_percent, key.rollout_by, key.locked) == ("enforce", 25, "request", False)
    assert key.rule_id == "file:key:key-7:tokens:60s"
    assert s.rules[2].rule_id == "file:user:u1:concurrent"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"level": "key", "id": "k", "kind": "requests", "limit": 5}, "needs `org`"),
        ({"level": "org", "id": "a", "org": "b", "kind": "requests", "limit": 5}, "must equal its `id`"),
        ({"level": "org", "id": "a", "kind": "requests", "limit": 0}, "greater than or equal to 1"),
        ({"level": "org", "id": "a", "kind": "requests", "limit": MAX_LIMIT + 1}, "less than or equal"),
        ({"level": "org", "id": "a", "kind": "requests", "limit": 1.5}, "whole number"),
        ({"level": "org", "id": "a", "kind": "requests", "limit": True}, "whole number"),
        ({"level": "org", "id": "a", "kind": "requests", "limit": 5, "window_s": 3601}, "less than or equal"),
        ({"level": "org", "id": "a", "kind": "requests", "limit": 5, "window_s": 0}, "greater than or equal"),
        ({"level": "org", "id": "a", "kind": "bytes", "limit": 5}, "'requests', 'tokens' or 'concurrent'"),
        ({"level": "org", "id": "a", "kind": "requests", "limit": 5, "rollout_percent": 101}, "less than"),
        (
            {"level": "org", "id": "a", "kind": "requests", "limit": 5, "locked": True, "rollout_percent": 50},
            "rollout_percent must be 100",
        ),
        ({"level": "org", "id": "a", "kind": "requests", "limit": 5, "mode": "block"}, "'enforce' or 'monitor'"),
        ({"level": "org", "id": "a", "kind": "requests", "limit": 5, "per": "minute"}, "Extra inputs"),
        ({"level": "team", "id": "a", "kind": "requests", "limit": 5}, "'org', 'workspace', 'user' or 'key'"),
    ],
)
def test_bad_rules_say_why(rule: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        LimitRuleSettings.model_validate(rule)


def test_section_errors() -> None:
    with pytest.raises(ValidationError, match="slot_ms must divide 1000"):
        LimitSettings(slot_ms=300)
    with pytest.raises(ValidationError, match="greater than or equal to 100"):
        LimitSettings(slot_ms=50)
    rule = {"level": "org", "id": "a", "kind": "requests", "limit": 5}
    with pytest.raises(ValidationError, match="two requests limits per 60 s on org 'a'"):
        LimitSettings.model_validate({"rules": [rule, {**rule, "limit": 9}]})
    LimitSettings.model_validate({"rules": [rule, {**rule, "window_s": 10}]})  # another window is fine
    conc = {"level": "org", "id": "a", "kind": "concurrent", "limit": 5}
    with pytest.raises(ValidationError, match="two concurrent limits on org 'a'"):
        LimitSettings.model_validate({"rules": [conc, {**conc, "window_s": 10}]})
    with pytest.raises(ValidationError, match="backend"):
        LimitSettings.model_validate({"backend": "memcached"})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("key", "", "acme", "requests", 5), "entity id"),
        (("org", "x", "acme", "requests", 5), "org limit's entity id"),
        (("key", "k", "acme", "bytes", 5), "kind is one of"),
        (("key", "k", "acme", "requests", 0), "1..="),
        (("key", "k", "acme", "requests", True), "1..="),
        (("key", "k", "acme", "requests", 5, 0), "window_s must be 1..=3600"),
        (("key", "k", "acme", "requests", 5, 1.5), "whole number"),
    ],
)
def test_bad_lines(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LimitLine(*args)  # type: ignore[arg-type]


def test_counter_names() -> None:
    assert LimitLine("key", "k", "acme", "tokens", 5, 10).counter_name == ("acme", "key", "k", "tokens", 10, "")
    assert LimitLine("key", "k", "acme", "concurrent", 5, 10).counter_name == ("acme", "key", "k", "concurrent", 0, "")
    # A limit on tool calls: a counter of its own, the same for the same patterns however written.
    scope = tool_scope(["search/*", "Docs/*"])
    assert scope == tool_scope(["docs/*", "search/*"]) != tool_scope(["docs/*"]) and scope.startswith("tools-")
    tools = LimitLine("key", "k", "acme", "requests", 5, 10, scope)
    assert tools.counter_name == ("acme", "key", "k", "requests", 10, scope)
    with pytest.raises(ValueError, match="scope"):
        LimitLine("key", "k", "acme", "requests", 5, 10, "no spaces")


def test_a_limit_on_tool_calls_counts_calls() -> None:
    with pytest.raises(ValidationError, match="counts calls"):
        LimitRuleSettings(level="org", id="acme", kind="tokens", limit=5, tools=["docs/*"])
    with pytest.raises(ValidationError, match="no substitute_model"):
        LimitRuleSettings(level="org", id="acme", kind="requests", limit=5, tools=["docs/*"], substitute_model="m")
    both = [
        LimitRuleSettings(level="org", id="acme", kind="requests", limit=5),
        LimitRuleSettings(level="org", id="acme", kind="requests", limit=5, tools=["docs/*"]),
    ]
    LimitSettings(rules=tuple(both))  # the same kind and window: apart, one for model calls, one for tools
    with pytest.raises(ValidationError, match="on the tools"):
        LimitSettings(rules=(both[1], both[1]))
