"""Loop rules from the control plane: written through the admin API (a rule laxer than a lock above
it is refused with a 409 naming the lock), shown with their origin in the effective policy, and
applied by a running gateway (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from tests.conftest import Server

from sluicegate.control.policies import Origin, effective, floors_for, loop_laxer, violations
from sluicegate.control.schemas import PolicyIn
from sluicegate.policy.loop_rules import LoopRuleFields

CHAT = {"model": "mock-gpt", "messages": [{"role": "user", "content": "the same question"}], "max_tokens": 5}


def test_rules_written_applied_and_floored(control_gateway: tuple[Server, dict[str, Any]]) -> None:
    gw, seed = control_gateway
    admin = httpx.Client(base_url=f"{gw.url}/admin/v1", headers={"authorization": f"Bearer {seed['token']}"})
    org, key_id = seed["org"]["id"], seed["key_id"]
    locked = {"detect": "repeat", "max_repeats": 3, "window_s": 60, "action": "block", "locked": True}
    assert admin.put(f"/orgs/{org}/policy", json={"loops": [locked]}).status_code == 200
    laxer = {"detect": "repeat", "max_repeats": 10, "window_s": 30, "action": "monitor"}
    refused = admin.put(f"/keys/{key_id}/policy", json={"loops": [laxer]})
    assert refused.status_code == 409, refused.text
    [field] = refused.json()["error"]["fields"]
    assert field["loc"] == "loops.0" and field["locked_by"] == {"level": "org", "id": org}
    assert "max_repeats 10 > 3" in field["msg"] and "window_s 30 < 60" in field["msg"] and "monitor" in field["msg"]
    two = {"loops": [{"detect": "repeat"}, {"detect": "repeat"}]}
    assert admin.put(f"/keys/{key_id}/policy", json=two).status_code == 422
    stricter = {"detect": "repeat", "max_repeats": 2, "window_s": 120, "action": "block", "cooldown_s": 900}
    assert admin.put(f"/keys/{key_id}/policy", json={"loops": [stricter]}).status_code == 200
    [rule] = admin.get(f"/keys/{key_id}/effective-policy").json()["loops"]
    assert (rule["origin"], rule["origin_id"], rule["max_repeats"], rule["floor"]["level"]) == ("key", key_id, 2, "org")

    auth = {"authorization": f"Bearer {seed['key']}"}
    with httpx.Client(timeout=10) as client:
        deadline = time.monotonic() + 5
        got: list[int] = []
        while time.monotonic() < deadline:  # the view reloads within a poll interval
            got.append(client.post(f"{gw.url}/v1/chat/completions", json=CHAT, headers=auth).status_code)
            if got[-1] == 429:
                break
        assert got[-3:] == [200, 200, 429]
        r = client.post(f"{gw.url}/v1/chat/completions", json=CHAT, headers=auth)
        assert r.status_code == 429 and r.json()["error"]["code"] == "loop_detected"
        assert int(r.headers["retry-after"]) > 800  # the key's 900 s cool-down
    admin.close()


REPEAT = LoopRuleFields(max_repeats=5, window_s=60, action="throttle", throttle_interval_s=30)


@pytest.mark.parametrize(
    ("change", "laxer"),
    [
        ({"max_repeats": 4}, False),
        ({"max_repeats": 6}, True),
        ({"window_s": 120}, False),
        ({"window_s": 30}, True),
        ({"action": "block"}, False),
        ({"action": "monitor"}, True),
        ({"throttle_interval_s": 10}, True),
        ({"mode": "monitor"}, True),
        ({"rollout_percent": 50}, True),
    ],
)
def test_what_is_laxer(change: dict[str, Any], laxer: bool) -> None:
    rule = REPEAT.model_copy(update=change)
    assert bool(loop_laxer(rule, REPEAT)) is laxer


def test_a_row_past_the_api_is_raised_to_the_floor_and_kinds_are_separate() -> None:
    org = PolicyIn.model_validate(
        {"loops": [{"detect": "repeat", "max_repeats": 3, "cooldown_s": 600, "locked": True}]}
    )
    ws = PolicyIn.model_validate(
        {
            "loops": [
                {"detect": "repeat", "max_repeats": 9, "cooldown_s": 60, "mode": "monitor"},
                {"detect": "rate", "factor": 50, "baseline_s": 600},
            ]
        }
    )
    floors = floors_for("o", [("org", "o", org)], "workspace", "w", None)
    assert [v.loc for v in violations(floors, ws)] == ["loops.0"]
    policy = effective("o", [("org", "o", org), ("workspace", "w", ws), ("key", "k", None)])
    by_kind = {line.rule.detect: line for line in policy.loops}
    repeat = by_kind["repeat"].rule
    assert (repeat.max_repeats, repeat.cooldown_s, repeat.mode) == (3, 600, "enforce")
    assert by_kind["repeat"].level == "workspace" and not by_kind["repeat"].operator
    assert by_kind["rate"].rule.factor == 50  # no lock on rate rules
    shown = {r["detect"]: r for r in policy.as_json()["loops"]}
    assert shown["repeat"]["raised_from"] == {
        "rule": ws.loops[0].model_dump(exclude={"locked"}),
        "level": "workspace",
        "id": "w",
    }
    assert shown["repeat"]["floor"] == Origin("org", "o").as_json()


def test_the_cli_sets_and_shows_loop_rules(control_gateway: tuple[Server, dict[str, Any]]) -> None:
    from tests.integration.test_control_cli import admin, as_json, ok, table

    gw, seed = control_gateway
    url, token, org, key_id = gw.url, seed["token"], seed["org"]["id"], seed["key_id"]
    lock = json.dumps({"loops": [{"detect": "rate", "factor": 5, "baseline_s": 600, "locked": True}]})
    ok(admin(url, token, "policy", "set", "--level", "org", "--id", org, "--body", lock))
    laxer = json.dumps({"loops": [{"detect": "rate", "factor": 20, "baseline_s": 600}]})
    refused = admin(url, token, "policy", "set", "--level", "key", "--id", key_id, "--body", laxer)
    assert refused.returncode == 1 and "policy_locked" in refused.stderr and "factor 20 > 5" in refused.stderr
    effective = as_json(admin(url, token, "--json", "policy", "effective", key_id))
    assert [(r["detect"], r["factor"], r["origin"]) for r in effective["loops"]] == [("rate", 5.0, "org")]
    (row,) = table(ok(admin(url, token, "policy", "effective", key_id)).split("loops:", 1)[1])
    assert (row["detect"], row["factor"], row["origin"], row["locked"]) == ("rate", "5.0", "org", "yes")


def test_the_operators_locked_rule_is_a_floor_and_shows_as_operator() -> None:
    from sluicegate.config import RedactionSettings
    from sluicegate.control.policies import OperatorPolicy
    from sluicegate.policy.loop_rules import LoopRuleSettings, LoopSettings
    from sluicegate.spend.caps import SpendSettings

    loops = LoopSettings(rules=(LoopRuleSettings(level="org", id="o", max_repeats=4, cooldown_s=300, locked=True),))
    operator = OperatorPolicy.from_settings(RedactionSettings(), SpendSettings(), loops=loops)
    key = PolicyIn.model_validate({"loops": [{"detect": "repeat", "max_repeats": 8, "cooldown_s": 60}]})
    floors = floors_for("o", [("org", "o", None), ("workspace", "w", None)], "key", "k", operator)
    [violation] = violations(floors, key)
    assert violation.locked_by.level == "operator" and "cooldown_s 60 < 300" in violation.message
    [rule] = effective("o", [("org", "o", None), ("workspace", "w", None), ("key", "k", key)], operator).loop_origins
    assert (rule.line.rule.max_repeats, rule.line.rule.cooldown_s, rule.origin.level) == (4, 300, "key")
    assert rule.floor == Origin("operator") and rule.raised_from is not None
    # another org: the operator's rule is not on it
    assert effective("p", [("org", "p", None)], operator).loops == ()
    [own] = effective("o", [("org", "o", None)], operator).loop_origins
    assert own.origin.level == "operator" and own.line.operator and own.locked


def test_what_a_monitor_mode_rule_saw_is_in_the_monitoring_report(
    control_gateway: tuple[Server, dict[str, Any]],
) -> None:
    gw, seed = control_gateway
    admin = httpx.Client(base_url=f"{gw.url}/admin/v1", headers={"authorization": f"Bearer {seed['token']}"})
    org, ws = seed["org"]["id"], seed["ws"]["id"]
    shadow = {"detect": "repeat", "max_repeats": 2, "action": "block", "mode": "monitor"}
    assert admin.put(f"/workspaces/{ws}/policy", json={"loops": [shadow]}).status_code == 200
    auth = {"authorization": f"Bearer {seed['key']}"}
    body = {**CHAT, "messages": [{"role": "user", "content": "monitored"}]}
    with httpx.Client(timeout=10) as client:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # until the view has the rule: the third call is a would_block
            r = client.post(f"{gw.url}/v1/chat/completions", json=body, headers=auth)
            assert r.status_code == 200  # monitor mode never refuses
            if admin.get(f"/orgs/{org}/monitoring", params={"policy": "loops"}).json()["data"]:
                break
            time.sleep(0.2)
    [row] = admin.get(f"/orgs/{org}/monitoring", params={"policy": "loops"}).json()["data"]
    assert (row["policy"], row["action"], row["entity"], row["workspace_id"]) == (
        "loops",
        "would_block",
        "workspace",
        ws,
    )
    admin.close()


def test_a_partial_rollout_shows_whether_the_key_is_in_it_as_the_gateway_decides() -> None:
    from sluicegate.policy.rollout import bites

    ws = PolicyIn.model_validate({"loops": [{"detect": "repeat", "rollout_percent": 50}]})
    seen = set()
    for i in range(40):
        key = f"key-{i}"
        policy = effective("o", [("org", "o", None), ("workspace", "w", ws), ("key", key, None)])
        [shown] = policy.as_json()["loops"]
        [line] = policy.loops
        assert shown["rollout"] == {"percent": 50.0, "applies": bites("enforce", 50, line.rule_id, key)}
        seen.add(shown["rollout"]["applies"])
    assert seen == {True, False}
    with pytest.raises(ValueError, match="rollout_percent must be 100"):
        PolicyIn.model_validate({"loops": [{"detect": "repeat", "rollout_percent": 50, "locked": True}]})
