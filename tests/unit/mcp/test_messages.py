"""The MCP gateway's rules on JSON-RPC messages, without sockets: tool lists by level and mode,
argument and result redaction (text, structured content, resource contents, JSON held in text),
blocked results as tool errors, and events that carry names and counts, never values."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sluicegate.config import RedactionSettings
from sluicegate.mcp.messages import CONTENT_BLOCKED, TOOL_NOT_ALLOWED, Exchange
from sluicegate.policy.auth import Identity
from sluicegate.policy.redaction import Redactor
from sluicegate.policy.tool_rules import ToolRulesIn
from sluicegate.policy.tools import ToolPolicy, ToolRules, tool_rule_set

WHO = Identity("key_1", "ws_1", "org_1")
EMAIL = "jane.doe@example.com"
TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
SSN = "536-22-8147"


def _rules(*levels: tuple[str, str | None, dict[str, Any]]) -> ToolRules:
    return ToolRules(tuple(tool_rule_set(lvl, eid, ToolRulesIn.model_validate(r)) for lvl, eid, r in levels))


def _exchange(rules: ToolRules, redactor: Redactor | None = None) -> Exchange:
    return Exchange("docs", WHO, ToolPolicy(ToolRulesIn()), rules, redactor)


def _call(msg_id: int, name: str, arguments: Any = None) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": msg_id,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments or {}},
    }


REDACT = Redactor(RedactionSettings(rules=[{"entities": ["US_SSN"], "action": "block", "direction": "response"}]))

CASES = [
    # (levels, tool, refused by (level, list) or None)
    ([("operator", None, {"deny": ["*/delete_*"]})], "delete_all", ("operator", "deny")),
    ([("operator", None, {"deny": ["*/delete_*"]})], "search", None),
    (
        [("org", "org_1", {"allow": ["docs/*"]}), ("workspace", "ws_1", {"allow": ["docs/read*"]})],
        "search",
        ("workspace", "allow"),
    ),
    ([("org", "org_1", {"allow": ["docs/*"]}), ("workspace", "ws_1", {"allow": ["docs/read*"]})], "read_page", None),
    (
        [("org", "org_1", {"allow": ["other/*"]}), ("key", "key_1", {"allow": ["docs/*"]})],
        "read_page",
        ("org", "allow"),
    ),
    (
        [("workspace", "ws_1", {"allow": ["docs/*"]}), ("user", "u", {"deny": ["DOCS/Read_*"]})],
        "read_page",
        ("user", "deny"),
    ),
]


@pytest.mark.parametrize(("levels", "tool", "refused"), CASES)
def test_a_call_passes_every_level_or_is_refused_by_the_first_that_bites(
    levels: list[tuple[str, str | None, dict[str, Any]]], tool: str, refused: tuple[str, str] | None
) -> None:
    ex = _exchange(_rules(*levels))
    ex.outbound(_call(7, tool))
    if refused is None:
        assert ex.answered == {} and ex.calls == {7: tool} and ex.events == []
        return
    answer = ex.answered[7]
    assert answer["error"]["code"] == TOOL_NOT_ALLOWED and f"'docs/{tool}' is not allowed" in answer["error"]["message"]
    rule = answer["error"]["data"]["rule"]
    assert (rule["level"], rule["list"]) == refused
    assert [(e.policy, e.action, e.entity) for e in ex.events] == [("tools", "refuse", refused[0])]


def test_a_monitored_list_records_would_refuse_and_the_call_goes_on() -> None:
    ex = _exchange(_rules(("org", "org_1", {"deny": ["docs/*"], "mode": "monitor"})))
    ex.outbound(_call(1, "search"))
    assert ex.answered == {} and ex.calls == {1: "search"}
    assert [(e.action, e.detail["tool"]) for e in ex.events] == [("would_refuse", "search")]


def test_a_listing_leaves_out_the_tools_the_caller_may_not_use() -> None:
    ex = _exchange(_rules(("operator", None, {"deny": ["*/delete_*", "docs/admin*"]})))
    tools = [{"name": n, "inputSchema": {"type": "object"}} for n in ("search", "delete_all", "admin_reset", "read")]
    msg = {"jsonrpc": "2.0", "id": 3, "result": {"tools": tools}}
    assert ex.inbound(msg)
    assert [t["name"] for t in msg["result"]["tools"]] == ["search", "read"]
    assert sorted(e.detail["tool"] for e in ex.events if e.action == "hide") == ["admin_reset", "delete_all"]


def test_arguments_are_redacted_in_place_and_a_blocked_one_is_a_tool_error_not_sent() -> None:
    blocking = Redactor(RedactionSettings(rules=[{"entities": ["US_SSN"], "action": "block", "direction": "request"}]))
    ex = _exchange(ToolRules(), blocking)
    call = _call(1, "send", {"to": EMAIL, "nested": {"list": [f"key {TOKEN}"]}})
    ex.outbound(call)
    assert call["params"]["arguments"] == {
        "to": "[REDACTED:EMAIL]",
        "nested": {"list": ["key [REDACTED:GITHUB_TOKEN]"]},
    }
    assert ex.calls == {1: "send"}
    ex.outbound(_call(2, "send", {"ssn": SSN}))
    assert ex.answered[2]["result"]["isError"] is True and "US_SSN" in ex.answered[2]["result"]["content"][0]["text"]
    assert 2 not in ex.calls
    assert SSN.encode() not in orjson.dumps([e.__dict__ if hasattr(e, "__dict__") else str(e) for e in ex.events])


def test_results_are_redacted_everywhere_text_may_hide() -> None:
    ex = _exchange(ToolRules(), REDACT)
    ex.outbound(_call(5, "fetch"))
    result = {
        "content": [
            {"type": "text", "text": f"write to {EMAIL}"},
            {"type": "text", "text": orjson.dumps({"token": TOKEN}).decode()},  # JSON inside a text
            {"type": "resource", "resource": {"uri": "file:///a", "text": f"token {TOKEN}"}},
        ],
        "structuredContent": {"owner": {"email": EMAIL}},
    }
    msg = {"jsonrpc": "2.0", "id": 5, "result": result}
    assert ex.inbound(msg)
    text = orjson.dumps(msg).decode()
    assert EMAIL not in text and TOKEN not in text
    assert msg["result"]["structuredContent"] == {"owner": {"email": "[REDACTED:EMAIL]"}}
    assert orjson.loads(msg["result"]["content"][1]["text"]) == {"token": "[REDACTED:GITHUB_TOKEN]"}
    located = {loc for e in ex.events for loc in e.locations}
    assert "result.structuredContent.owner.email" in located and all(e.detail["tool"] == "fetch" for e in ex.events)


def test_a_blocked_result_becomes_a_tool_error_and_other_messages_are_emptied() -> None:
    ex = _exchange(ToolRules(), REDACT)
    ex.outbound(_call(9, "lookup"))
    msg = {"jsonrpc": "2.0", "id": 9, "result": {"content": [{"type": "text", "text": f"SSN {SSN}"}]}}
    assert ex.inbound(msg)
    assert msg["result"]["isError"] is True and SSN not in orjson.dumps(msg).decode()
    note = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 1, "message": SSN}}
    assert ex.inbound(note) and note["params"] == {}
    other = {"jsonrpc": "2.0", "id": 10, "error": {"code": 1, "message": f"failed for {SSN}"}}
    assert ex.inbound(other) and SSN not in orjson.dumps(other).decode() and "error" in other


def test_without_rules_or_redaction_nothing_changes() -> None:
    ex = _exchange(ToolRules(), None)
    msg = {"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": "delete_all"}], "text": EMAIL}}
    ex.outbound(_call(1, "delete_all", {"to": EMAIL}))
    assert not ex.inbound(msg) and ex.events == [] and ex.answered == {}


def test_locked_lists_need_lists_and_a_full_rollout() -> None:
    with pytest.raises(ValueError, match="deny_locked needs a deny list"):
        ToolRulesIn(deny_locked=True)
    with pytest.raises(ValueError, match="rollout_percent must be 100"):
        ToolRulesIn(deny=["*"], deny_locked=True, rollout_percent=50)
    with pytest.raises(ValueError):
        ToolRulesIn(deny=["docs/what?"])  # `*` is the only wildcard


def test_a_tool_name_holding_a_value_is_refused_before_it_is_recorded() -> None:
    ex = _exchange(ToolRules(), Redactor(RedactionSettings()))
    ex.outbound(_call(3, f"lookup {EMAIL}", {"q": "x"}))
    assert ex.answered[3]["error"]["code"] == CONTENT_BLOCKED and EMAIL not in orjson.dumps(ex.answered[3]).decode()
    assert 3 not in ex.calls and not ex.events and not ex.traced


def test_each_tool_call_gets_the_outcome_the_gateway_gave_it() -> None:
    ex = _exchange(_rules(("operator", None, {"deny": ["*/delete_*"]})), REDACT)
    for msg in (
        _call(1, "delete_all"),
        _call(2, "echo", {"text": "plain"}),
        _call(3, "echo", {"text": f"mail {EMAIL}"}),  # sent, its argument redacted
        _call(4, "echo", {"text": "fails"}),
        _call(5, "ssn"),
        _call(6, "leak"),
        _call(7, "lost"),
        _call(8, TOKEN),  # a name holding a secret: never a label
    ):
        ex.outbound(msg)

    def answer(msg_id: int, result: Any = None, error: Any = None) -> None:
        body = {"jsonrpc": "2.0", "id": msg_id, **({"error": error} if error else {"result": result})}
        ex.inbound(body)

    answer(2, {"content": [{"type": "text", "text": "plain"}]})
    answer(3, {"content": [{"type": "text", "text": "mail [EMAIL_ADDRESS]"}]})
    answer(4, {"content": [{"type": "text", "text": "no"}], "isError": True})
    answer(5, {"content": [{"type": "text", "text": f"SSN {SSN}"}]})  # blocked by the response rule
    answer(6, {"content": [{"type": "text", "text": f"token {TOKEN}"}]})  # redacted
    assert sorted(ex.tool_outcomes(sent=True)) == sorted(
        [
            ("delete_all", "denied"),
            ("echo", "ok"),
            ("echo", "redacted"),
            ("echo", "error"),
            ("ssn", "blocked"),
            ("leak", "redacted"),
            ("lost", "unanswered"),
            ("(withheld)", "blocked"),
        ]
    )
    assert TOKEN not in repr(ex.tool_outcomes(sent=False))
    assert ("lost", "not_sent") in ex.tool_outcomes(sent=False)
