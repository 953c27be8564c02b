"""The tool gate of model traffic (`policy.tool_calls`) on hand-made requests, answers and stream
events: what the mock provider does not produce (the legacy `function_call`, several choices,
custom tools, server tools, an allow list, rollouts), and the chaining with redaction's rewrite."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sluicegate.errors import ToolNotAllowed
from sluicegate.formats.sse import Event, encode
from sluicegate.policy.auth import Identity
from sluicegate.policy.tool_calls import ToolCallGate, gate_for
from sluicegate.policy.tool_rules import ToolRulesIn
from sluicegate.policy.tools import ToolRules, tool_rule_set

WHO = Identity("key-1", "ws", "org")


def gate(fmt: str, **rules: Any) -> ToolCallGate:
    found = gate_for(ToolRules((tool_rule_set("org", "org", ToolRulesIn(**rules)),)), WHO, fmt)
    assert found is not None
    return found


def event(data: Any, name: bytes | None = None) -> Event:
    return Event.parse(encode(orjson.dumps(data), name)[:-2])


def test_no_gate_without_model_calls_or_for_a_format_without_tools() -> None:
    rules = ToolRules((tool_rule_set("org", "org", ToolRulesIn(deny=["x"])),))
    assert gate_for(rules, WHO, "openai_chat") is None  # model_calls off: MCP only
    on = ToolRules((tool_rule_set("org", "org", ToolRulesIn(deny=["x"], model_calls="remove")),))
    assert gate_for(on, WHO, "openai_embeddings") is None


def test_an_allow_list_keeps_only_its_tools_and_custom_tools_count() -> None:
    g = gate("openai_chat", allow=["read_*"], model_calls="remove")
    body: dict[str, Any] = {
        "tools": [
            {"type": "function", "function": {"name": "read_file"}},
            {"type": "custom", "custom": {"name": "shell"}},
        ],
        "tool_choice": "auto",
    }
    g.filter_request(body)
    assert [t["function"]["name"] for t in body["tools"]] == ["read_file"] and body["tool_choice"] == "auto"
    every: dict[str, Any] = {"tools": [{"type": "custom", "custom": {"name": "shell"}}], "tool_choice": "required"}
    g.filter_request(every)
    assert every == {}  # nothing left: tools and tool_choice go together
    assert [e.action for e in g.events] == ["hide"]  # one decision per name and call


def test_a_legacy_function_call_is_removed_from_every_delta_of_its_choice() -> None:
    g = gate("openai_chat", deny=["rm"], model_calls="remove")
    first = event({"choices": [{"index": 1, "delta": {"function_call": {"name": "rm", "arguments": ""}}}]})
    later = event({"choices": [{"index": 1, "delta": {"function_call": {"arguments": "{}"}}}]})
    end = event({"choices": [{"index": 1, "delta": {}, "finish_reason": "function_call"}]})
    out = [g.event(e) for e in (first, later, end)]
    assert all(e is not None for e in out)
    assert [orjson.loads(e.data)["choices"][0]["delta"] for e in out if e] == [{}, {}, {}]
    assert orjson.loads(out[2].data)["choices"][0]["finish_reason"] == "stop"  # type: ignore[union-attr]
    # A chunk with nothing of tools passes as it came, without being parsed.
    plain = event({"choices": [{"index": 0, "delta": {"content": "hi"}}]})
    assert g.event(plain) is plain


def test_calls_of_two_choices_are_renumbered_apart() -> None:
    g = gate("openai_chat", deny=["rm"], model_calls="remove")
    calls = [{"index": 0, "function": {"name": "rm"}}, {"index": 1, "function": {"name": "ls"}}]
    chunk = {
        "choices": [{"index": 0, "delta": {"tool_calls": calls}}, {"index": 1, "delta": {"tool_calls": [calls[1]]}}]
    }
    out = orjson.loads(g.event(event(chunk)).data)  # type: ignore[union-attr]
    assert out["choices"][0]["delta"]["tool_calls"] == [{"index": 0, "function": {"name": "ls"}}]
    # The second choice counts its own kept calls: its first is 0, whatever the first choice removed.
    assert out["choices"][1]["delta"]["tool_calls"] == [{"index": 0, "function": {"name": "ls"}}]
    again = {"choices": [{"index": 1, "delta": {"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}}]}
    assert orjson.loads(g.event(event(again)).data)["choices"][0]["delta"]["tool_calls"][0]["index"] == 0  # type: ignore[union-attr]


def test_messages_server_tools_and_the_index_shift() -> None:
    g = gate("anthropic_messages", deny=["web_*"], model_calls="remove")
    start = {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "server_tool_use", "name": "web_search"},
    }
    assert g.event(event(start, b"content_block_start")) is None
    assert g.event(event({"type": "content_block_stop", "index": 0}, b"content_block_stop")) is None
    text = g.event(event({"type": "content_block_start", "index": 1, "content_block": {"type": "text"}}, b"x"))
    assert orjson.loads(text.data)["index"] == 0 and text.name == b"x"  # type: ignore[union-attr]


def test_block_raises_naming_the_rule_and_chain_passes_no_stale_bytes() -> None:
    g = gate("openai_responses", deny=["rm"], model_calls="block")
    with pytest.raises(ToolNotAllowed) as refused:
        g.response({"output": [{"type": "function_call", "name": "rm"}]})
    assert refused.value.extra["rule"]["pattern"] == "rm" and refused.value.status == 403
    r = gate("openai_responses", deny=["rm"], model_calls="remove")
    seen: list[Any] = []

    def redaction(body: Any, *, raw: bytes | None = None) -> bool:
        seen.append(raw)
        return False

    both = r.chain(redaction)
    assert both({"output": [{"type": "function_call", "name": "rm"}]}, raw=b"old") is True
    assert both({"output": []}, raw=b"same") is False
    assert seen == [None, b"same"]  # a body the gate changed is not described by its old bytes


def test_a_rollout_monitors_the_keys_outside_it() -> None:
    g = gate("openai_chat", deny=["rm"], model_calls="remove", rollout_percent=0)
    body: dict[str, Any] = {"tools": [{"type": "function", "function": {"name": "rm"}}]}
    g.filter_request(body)
    assert len(body["tools"]) == 1 and [e.action for e in g.events] == ["would_hide"]
