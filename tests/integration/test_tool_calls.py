"""Tool lists on the tools of model traffic (`policy.tool_calls`), through gateway processes with
the real SDKs and the mock provider on a socket: a denied tool's definition never reaches the
provider, a forced denied tool is refused before anything is sent, and a call of a denied tool in
the model's answer (chat, Responses, Messages; streamed or not) is removed, with the remaining calls
renumbered and the finish reason put right, or refused (`block`), and every decision is an event.

The mock's `call_tools=a+b` knob makes the model call tools whether the request defined them or
not: a model may name a tool it was never shown, so answers are checked as well as definitions.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from tests.conftest import GATEWAY_KEY, Server, gateway_config, provider_saw, start_gateway
from tests.integration.test_spend_gateway import policy_events

MESSAGES = [{"role": "user", "content": "tidy up"}]
LOOKUP = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}
DELETE = {"type": "function", "function": {"name": "delete_file", "parameters": {"type": "object", "properties": {}}}}
CHAT_TOOLS: list[Any] = [LOOKUP, DELETE]
MESSAGES_TOOLS: list[Any] = [
    {"name": "lookup", "input_schema": {"type": "object", "properties": {}}},
    {"name": "delete_file", "input_schema": {"type": "object", "properties": {}}},
]
RESPONSES_TOOLS: list[Any] = [
    {"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}},
    {"type": "function", "name": "delete_file", "parameters": {"type": "object", "properties": {}}},
]
BOTH = "call_tools=delete_file+lookup,chunks=3,chunk_size=4"  # the denied call first: the other is renumbered
DENIED_ONLY = "call_tools=delete_file,chunks=3,chunk_size=4"


def tools_toml(action: str, mode: str = "enforce") -> str:
    return f'\n[tools]\ndeny = ["delete_*"]\nmodel_calls = "{action}"\nmode = "{mode}"\n'


@pytest.fixture(scope="module")
def removing(mock_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    path = tmp_path_factory.mktemp("tool-calls") / "remove.toml"
    with start_gateway(gateway_config(path, mock_server.url, tools_toml("remove"))) as gw:
        yield gw


@pytest.fixture(scope="module")
def blocking(mock_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    path = tmp_path_factory.mktemp("tool-calls") / "block.toml"
    with start_gateway(gateway_config(path, mock_server.url, tools_toml("block"))) as gw:
        yield gw


def names_sent(mock_server: Server) -> list[str]:
    tools = provider_saw(mock_server)["body"].get("tools") or []
    return [t.get("name") or t.get("function", {}).get("name") for t in tools]


def delta(before: dict[str, float], after: dict[str, float], labels: str) -> float:
    return after.get(labels, 0.0) - before.get(labels, 0.0)


def test_chat_a_denied_definition_and_call_are_removed(removing: Server, mock_server: Server) -> None:
    before = policy_events(removing)
    with openai.OpenAI(base_url=f"{removing.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client:
        answer = client.chat.completions.create(model=f"mh/mock-gpt@{BOTH}", messages=MESSAGES, tools=CHAT_TOOLS)  # type: ignore[arg-type]
        assert names_sent(mock_server) == ["lookup"]  # the provider never saw the denied tool
        (call,) = answer.choices[0].message.tool_calls or []
        assert call.function.name == "lookup" and answer.choices[0].finish_reason == "tool_calls"  # type: ignore[union-attr]
        # Streamed: the SDK assembles the kept call at index 0.
        with client.chat.completions.stream(model=f"mh/mock-gpt@{BOTH}", messages=MESSAGES, tools=CHAT_TOOLS) as s:  # type: ignore[arg-type]
            final = s.get_final_completion()
        (call,) = final.choices[0].message.tool_calls or []
        assert call.function.name == "lookup" and call.function.arguments.startswith('{"text"')  # type: ignore[union-attr]
        # Only the denied tool called: no call left, and the finish reason says so.
        alone = client.chat.completions.create(model=f"mh/mock-gpt@{DENIED_ONLY}", messages=MESSAGES, tools=CHAT_TOOLS)  # type: ignore[arg-type]
        assert not alone.choices[0].message.tool_calls and alone.choices[0].finish_reason == "stop"
        streamed = list(
            client.chat.completions.create(
                model=f"mh/mock-gpt@{DENIED_ONLY}",
                messages=MESSAGES,  # type: ignore[arg-type]
                tools=CHAT_TOOLS,  # type: ignore[arg-type]
                stream=True,
            )
        )
        assert not any(c.choices and c.choices[0].delta.tool_calls for c in streamed)
        assert [c.choices[0].finish_reason for c in streamed if c.choices and c.choices[0].finish_reason] == ["stop"]
    after = policy_events(removing)
    assert delta(before, after, '{action="hide",entity="operator",policy="tools"}') == 4
    assert delta(before, after, '{action="remove",entity="operator",policy="tools"}') == 4


def test_messages_a_denied_call_is_removed_and_the_blocks_renumbered(removing: Server, mock_server: Server) -> None:
    with anthropic.Anthropic(base_url=removing.url, api_key=GATEWAY_KEY, max_retries=0) as client:
        model = f"mh/mock-claude@{BOTH}"
        message = client.messages.create(model=model, max_tokens=50, messages=MESSAGES, tools=MESSAGES_TOOLS)  # type: ignore[arg-type]
        assert names_sent(mock_server) == ["lookup"]
        assert [(b.type, getattr(b, "name", None)) for b in message.content] == [("tool_use", "lookup")]
        assert message.stop_reason == "tool_use"
        with client.messages.stream(model=model, max_tokens=50, messages=MESSAGES, tools=MESSAGES_TOOLS) as s:  # type: ignore[arg-type]
            final = s.get_final_message()
        assert [(b.type, getattr(b, "name", None)) for b in final.content] == [("tool_use", "lookup")]
        assert final.content[0].input == {"text": final.content[0].input["text"]}  # type: ignore[union-attr]
        alone = f"mh/mock-claude@{DENIED_ONLY}"
        with client.messages.stream(model=alone, max_tokens=50, messages=MESSAGES, tools=MESSAGES_TOOLS) as s:  # type: ignore[arg-type]
            final = s.get_final_message()
        assert final.content == [] and final.stop_reason == "end_turn"


def test_responses_a_denied_call_is_removed_streamed_or_not(removing: Server, mock_server: Server) -> None:
    with openai.OpenAI(base_url=f"{removing.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client:
        model = f"mh/mock-gpt@{BOTH}"
        answer = client.responses.create(model=model, input="tidy up", tools=RESPONSES_TOOLS)
        assert names_sent(mock_server) == ["lookup"]
        assert [(i.type, getattr(i, "name", None)) for i in answer.output] == [("function_call", "lookup")]
        with client.responses.stream(model=model, input="tidy up", tools=RESPONSES_TOOLS) as s:
            indexes = [e.output_index for e in s if e.type == "response.output_item.added"]
            final = s.get_final_response()
        assert indexes == [0]  # the kept call moved up to the place of the removed one
        assert [(i.type, getattr(i, "name", None)) for i in final.output] == [("function_call", "lookup")]


def test_a_forced_denied_tool_is_refused_before_anything_is_sent(removing: Server, mock_server: Server) -> None:
    with openai.OpenAI(base_url=f"{removing.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client:
        client.chat.completions.create(model="mh/mock-gpt@reply=marker-before", messages=MESSAGES)  # type: ignore[arg-type]
        with pytest.raises(openai.PermissionDeniedError) as refused:
            client.chat.completions.create(
                model="mh/mock-gpt",
                messages=MESSAGES,  # type: ignore[arg-type]
                tools=CHAT_TOOLS,  # type: ignore[arg-type]
                tool_choice={"type": "function", "function": {"name": "delete_file"}},
            )
    err = refused.value
    assert err.code == "tool_not_allowed" and "delete_*" in err.message
    assert err.body["rule"]["pattern"] == "delete_*"  # type: ignore[index]
    assert provider_saw(mock_server)["body"]["model"].endswith("marker-before")  # nothing went upstream


def test_block_refuses_an_answer_that_calls_a_denied_tool(blocking: Server) -> None:
    before = policy_events(blocking)
    with openai.OpenAI(base_url=f"{blocking.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client:
        # A model that calls a tool it was never given (the definition was taken out).
        with pytest.raises(openai.PermissionDeniedError) as refused:
            client.chat.completions.create(model=f"mh/mock-gpt@{BOTH}", messages=MESSAGES, tools=CHAT_TOOLS)  # type: ignore[arg-type]
        assert refused.value.code == "tool_not_allowed"
        with pytest.raises(openai.APIError, match="may not use"):
            for _ in client.chat.completions.create(
                model=f"mh/mock-gpt@{BOTH}",
                messages=MESSAGES,  # type: ignore[arg-type]
                tools=CHAT_TOOLS,  # type: ignore[arg-type]
                stream=True,
            ):
                pass
    with (
        anthropic.Anthropic(base_url=blocking.url, api_key=GATEWAY_KEY, max_retries=0) as claude,
        pytest.raises(anthropic.APIStatusError),
        claude.messages.stream(
            model=f"mh/mock-claude@{DENIED_ONLY}",
            max_tokens=50,
            messages=MESSAGES,  # type: ignore[arg-type]
            tools=MESSAGES_TOOLS,  # type: ignore[arg-type]
        ) as s,
    ):
        s.get_final_message()
    after = policy_events(blocking)
    assert delta(before, after, '{action="refuse",entity="operator",policy="tools"}') == 3


def test_monitor_only_records_what_it_would_do(mock_server: Server, tmp_path: Path) -> None:
    toml = tools_toml("remove", mode="monitor")
    with (
        start_gateway(gateway_config(tmp_path / "c.toml", mock_server.url, toml)) as gw,
        openai.OpenAI(base_url=f"{gw.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client,
    ):
        answer = client.chat.completions.create(model=f"mh/mock-gpt@{BOTH}", messages=MESSAGES, tools=CHAT_TOOLS)  # type: ignore[arg-type]
        assert names_sent(mock_server) == ["lookup", "delete_file"]
        assert [c.function.name for c in answer.choices[0].message.tool_calls or []] == ["delete_file", "lookup"]  # type: ignore[union-attr]
        events = policy_events(gw)
    assert events['{action="would_hide",entity="operator",policy="tools"}'] == 1
    assert events['{action="would_remove",entity="operator",policy="tools"}'] == 1
