"""Loop detection without a gateway: the request hash, the local state's steps on an injected
clock, the step's refusals and events, and the rules' validation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import ValidationError

from sluicegate.errors import LoopDetected
from sluicegate.policy.auth import Identity
from sluicegate.policy.loop_rules import LoopLine, LoopRuleFields, LoopRuleSettings, LoopSettings, request_hash
from sluicegate.policy.loop_state import LocalLoopState, LoopCheck, Verdict
from sluicegate.policy.loops import LoopPolicy

BODY: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}
ME = Identity("k1", "ws", "acme")


def line(**fields: Any) -> LoopLine:
    return LoopLine(LoopRuleFields(**fields), "workspace", "ws", "acme")


def test_the_hash_ignores_how_the_answer_travels_and_who_asks() -> None:
    same = request_hash("openai.chat", BODY)
    streamed = {**BODY, "stream": True, "stream_options": {"include_usage": True}, "user": "u-1", "metadata": {"x": 1}}
    assert request_hash("openai.chat", streamed) == same
    reordered = {"max_tokens": 10, "messages": [{"content": "hi", "role": "user"}], "model": "m"}
    assert request_hash("openai.chat", reordered) == same  # keys sorted at every depth
    assert request_hash("openai.chat", {**BODY, "max_tokens": 11}) != same
    assert request_hash("openai.chat", {**BODY, "messages": [{"role": "user", "content": "hi!"}]}) != same
    assert request_hash("anthropic.messages", BODY) != same
    assert len(same) == 16


def check(state: LocalLoopState, rate: LoopCheck | None, repeat: LoopCheck | None, t_s: float, digest: bytes = b"h"):  # type: ignore[no-untyped-def]
    return state.check_now("acme", "k1", digest, rate, repeat, int(t_s * 1000))


def outcomes(verdicts: list[Verdict]) -> list[str]:
    return [v.outcome for v in verdicts]


def test_repeat_blocks_after_k_then_cools_down() -> None:
    state = LocalLoopState()
    c = LoopCheck(line(max_repeats=5, window_s=60, cooldown_s=600), True)
    assert [outcomes(check(state, None, c, t)) for t in range(5)] == [["ok"]] * 5
    sixth = check(state, None, c, 5)
    assert outcomes(sixth) == ["block"] and sixth[0].count == 6 and sixth[0].until_ms == 605_000
    assert outcomes(check(state, None, c, 300)) == ["cooling"]
    assert outcomes(check(state, None, c, 300, b"other")) == ["ok"]  # another request of the same key
    assert outcomes(check(state, None, c, 604.999)) == ["cooling"]
    # the cool-down is over: the request gets max_repeats tries again
    assert [outcomes(check(state, None, c, 605 + t)) for t in range(6)] == [["ok"]] * 5 + [["block"]]


def test_repeat_window_slides() -> None:
    state = LocalLoopState()
    c = LoopCheck(line(max_repeats=3, window_s=10), True)
    # one every 4 s: never more than 3 within 10 s
    assert all(outcomes(check(state, None, c, 4 * i)) == ["ok"] for i in range(50))


def test_throttle_lets_one_through_per_interval() -> None:
    state = LocalLoopState()
    c = LoopCheck(line(max_repeats=2, window_s=60, action="throttle", throttle_interval_s=10), True)
    got = [outcomes(check(state, None, c, t))[0] for t in range(0, 25)]
    assert got[:2] == ["ok", "ok"]
    assert got[2] == "throttle_pass"  # the first detected one passes, then one per 10 s
    assert got[3:12] == ["throttle"] * 9 and got[12] == "throttle_pass" and got[22] == "throttle_pass"
    refused = check(state, None, c, 23)[0]
    assert refused.until_ms == 32_000


def test_monitor_and_rollout_never_refuse() -> None:
    state = LocalLoopState()
    monitor = LoopCheck(line(max_repeats=1, action="monitor"), True)
    assert [outcomes(check(state, None, monitor, t))[0] for t in range(3)] == ["ok", "monitor", "monitor"]
    state = LocalLoopState()
    shadow = LoopCheck(line(max_repeats=1, action="block", mode="monitor"), False)
    assert [outcomes(check(state, None, shadow, t))[0] for t in range(3)] == ["ok", "would_block", "would_block"]


def test_rate_jump_over_a_synthetic_baseline() -> None:
    state = LocalLoopState()
    rule = line(detect="rate", window_s=60, baseline_s=600, factor=5, min_requests=20, cooldown_s=300)
    c = LoopCheck(rule, True)
    t = 0.0
    for _ in range(10 * 6):  # ten minutes at 6 a minute: the baseline
        assert outcomes(check(state, c, None, t, str(t).encode())) == ["ok"]
        t += 10
    verdicts = []
    for i in range(40):  # then 40 within a minute: 6 * 5 = 30 is the bar
        verdicts = check(state, c, None, t + i, str(t + i).encode())
        if verdicts[0].outcome != "ok":
            break
    assert outcomes(verdicts) == ["block"] and verdicts[0].count == 31 and verdicts[0].baseline_milli == 6000
    # the whole key is refused during the cool-down, whatever it sends
    assert outcomes(check(state, c, None, t + 100, b"new")) == ["cooling"]
    assert outcomes(check(state, c, None, t + 40 + 300, b"new")) == ["ok"]


def test_rate_needs_a_minimum_absolute_rate() -> None:
    state = LocalLoopState()
    c = LoopCheck(line(detect="rate", window_s=60, baseline_s=600, factor=2, min_requests=30), True)
    check(state, c, None, 0)
    # a quiet key going from 1 to 5 a minute is no jump
    assert all(outcomes(check(state, c, None, 600 + i, str(i).encode())) == ["ok"] for i in range(5))


def test_state_is_bounded() -> None:
    state = LocalLoopState(max_tracked=16)
    c = LoopCheck(line(max_repeats=1), True)
    for i in range(100):
        check(state, None, c, 0, str(i).encode())
    assert len(state._requests) == 16


def test_policy_refuses_with_the_rule_and_counts_never_content() -> None:
    now = [1_000_000.0]
    settings = LoopSettings(
        rules=(LoopRuleSettings(level="workspace", id="ws", org="acme", max_repeats=2, window_s=60, cooldown_s=600),)
    )
    policy = LoopPolicy(settings, clock=lambda: now[0])

    async def go() -> None:
        await policy.start()
        body = {**BODY, "messages": [{"role": "user", "content": "secret-content-123"}]}
        assert await policy.check(ME, "openai.chat", body) == []
        assert await policy.check(ME, "openai.chat", body) == []
        with pytest.raises(LoopDetected) as e:
            await policy.check(ME, "openai.chat", body)
        err = e.value
        assert err.status == 429 and err.code == "loop_detected"
        assert err.headers["retry-after"] == "600" and err.headers["x-should-retry"] == "false"
        assert "3 times within 60 s" in err.message and "workspace 'ws'" in err.message
        assert "secret-content" not in err.message
        assert [(e.policy, e.action, e.entity) for e in err.events] == [("loops", "block", "workspace")]
        now[0] += 599.5
        with pytest.raises(LoopDetected) as e:
            await policy.check(ME, "openai.chat", body)
        assert e.value.headers["retry-after"] == "1" and e.value.headers["retry-after-ms"] == "500"
        # no rule for another org's key: nothing counted, no event list at all
        assert await policy.check(Identity("k1", "ws", "other"), "openai.chat", body) is None
        await policy.stop()

    asyncio.run(go())


def test_nearest_level_wins_per_kind() -> None:
    rules = (
        LoopRuleSettings(level="org", id="acme", max_repeats=9),
        LoopRuleSettings(level="key", id="k1", org="acme", max_repeats=3),
        LoopRuleSettings(level="workspace", id="ws", org="acme", detect="rate", baseline_s=600),
    )
    policy = LoopPolicy(LoopSettings(rules=rules))
    got = {(ln.rule.detect, ln.level, ln.rule.max_repeats) for ln in policy.rules_for(ME)}
    assert got == {("repeat", "key", 3), ("rate", "workspace", 5)}


@pytest.mark.parametrize(
    "bad",
    [
        {"detect": "rate", "window_s": 60, "baseline_s": 90},
        {"detect": "rate", "window_s": 1, "baseline_s": 100_000},
        {"max_repeats": 0},
        {"action": "nap"},
    ],
)
def test_rules_are_validated(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        LoopRuleFields(**bad)


def test_two_rules_of_a_kind_on_one_entity_are_refused() -> None:
    with pytest.raises(ValidationError, match="two repeat loop rules"):
        LoopSettings(rules=(LoopRuleSettings(level="org", id="a"), LoopRuleSettings(level="org", id="a")))
    with pytest.raises(ValidationError, match="needs `org`"):
        LoopRuleSettings(level="key", id="k")


def test_a_rule_outside_its_rollout_only_monitors() -> None:
    def refusals(percent: float, keys: int = 400) -> int:
        rules = (LoopRuleSettings(level="org", id="acme", max_repeats=1, rollout_percent=percent),)
        policy = LoopPolicy(LoopSettings(rules=rules), clock=lambda: T0)
        refused = 0

        async def go() -> None:
            nonlocal refused
            await policy.start()
            for i in range(keys):
                who = Identity(f"key-{i}", "ws", "acme")
                await policy.check(who, "openai.chat", BODY)
                try:
                    events = await policy.check(who, "openai.chat", BODY)
                    assert events is not None and [e.action for e in events] == ["would_block"]
                except LoopDetected:
                    refused += 1

        asyncio.run(go())
        return refused

    assert refusals(0) == 0
    assert refusals(100) == 400
    assert 70 <= refusals(25) <= 130  # a stable quarter of the keys, give or take


def test_a_new_key_has_no_baseline_to_jump_from() -> None:
    state = LocalLoopState()
    c = LoopCheck(line(detect="rate", window_s=60, baseline_s=600, factor=2, min_requests=10), True)
    # a fresh key at 60 a minute for its first ten minutes: not judged until it has a baseline
    assert all(outcomes(check(state, c, None, i, str(i).encode())) == ["ok"] for i in range(600))
    # then steady: the baseline is its own rate, no jump
    assert all(outcomes(check(state, c, None, 600 + i, str(i).encode())) == ["ok"] for i in range(600))


T0 = 1_800_000_000.0


def test_the_loops_section_from_a_file_and_the_environment(tmp_path: Any) -> None:
    from sluicegate.config import ConfigError, load_settings

    path = tmp_path / "c.toml"
    path.write_text(
        '[loops]\nredis_url = "redis://:pw@redis:6379/0"\n\n[[loops.rules]]\nlevel = "workspace"\nid = "w"\n'
        'org = "acme"\ndetect = "rate"\nbaseline_s = 1200\naction = "throttle"\n'
    )
    settings = load_settings(
        path, {"SLUICEGATE_LOOPS__BACKEND": "redis", "SLUICEGATE_LOOPS__ON_STORE_ERROR": "fail_closed"}
    )
    loops = settings.loops
    assert (loops.backend, loops.on_store_error) == ("redis", "fail_closed")
    assert "pw" not in str(loops.redis_url) and loops.redis_url.reveal().endswith("@redis:6379/0")
    [rule] = loops.rules
    assert (rule.detect, rule.baseline_s, rule.action, rule.line().org_id) == ("rate", 1200, "throttle", "acme")
    path.write_text('[[loops.rules]]\nlevel = "org"\nid = "acme"\ndetect = "rate"\nbaseline_s = 90\n')
    with pytest.raises(ConfigError, match=r"^loops\.rules\.0: .*multiple of window_s"):
        load_settings(path, {})
