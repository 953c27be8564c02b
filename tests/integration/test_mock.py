"""The mock provider on a real socket, driven by the real `openai` and `anthropic` SDKs.

Also the in-process `respond()` (stats on early close, the disconnect fault) and the ASGI app's
lifespan. Counters on the shared server are compared as deltas, never as absolute values.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import socket
import struct
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any, Protocol

import aiohttp
import anthropic
import httpx
import httpx2
import openai
import orjson
import pytest

from sluicegate.mock import MockDisconnect, MockResponse, create_app, respond
from sluicegate.mock.reply import SENTENCE
from sluicegate.mock.stats import STATS

DEFAULT_REPLY = (SENTENCE * 2)[:48]  # 8 chunks of 6 characters
USER: Any = [{"role": "user", "content": "Hello there, mock!"}]  # 18 chars -> 5 tokens
TOOL_OPENAI: Any = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "look something up",
            "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
        },
    },
    {"type": "function", "function": {"name": "second", "parameters": {"type": "object", "properties": {}}}},
]
TOOL_RESPONSES: Any = [
    {
        "type": "function",
        "name": "lookup",
        "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
        "strict": False,
    }
]
TOOL_ANTHROPIC: Any = [
    {"name": "lookup", "description": "look something up", "input_schema": {"type": "object", "properties": {}}}
]


class Server(Protocol):
    """The `mock_server` fixture's value (tests/conftest.py)."""

    port: int

    @property
    def url(self) -> str: ...


def tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


@pytest.fixture
def oai(mock_server: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{mock_server.url}/v1", api_key="sk-client-key", max_retries=0, timeout=10) as c:
        yield c


@pytest.fixture
def ant(mock_server: Server) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=mock_server.url, api_key="sk-ant-client", max_retries=0, timeout=10) as c:
        yield c


def get_json(url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def http_error(url: str, method: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    with info.value as err:
        return err.code, json.loads(err.read())


def stats(server: Server) -> dict[str, Any]:
    result: dict[str, Any] = get_json(f"{server.url}/mock/stats")
    return result


# ---------------------------------------------------------------- OpenAI chat


def test_chat_plain_answer_and_usage(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(
        model="mock-gpt",
        messages=[{"role": "system", "content": "Be brief."}, *USER],  # 9 chars -> 3 tokens, + 5
    )
    assert completion.object == "chat.completion"
    assert completion.model == "mock-gpt"
    choice = completion.choices[0]
    assert choice.message.content == DEFAULT_REPLY
    assert choice.message.role == "assistant"
    assert choice.finish_reason == "stop"
    usage = completion.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (8, 12, 20)
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details is not None and usage.completion_tokens_details.reasoning_tokens == 0


def test_chat_counts_text_parts_tool_results_and_cached_tokens(oai: openai.OpenAI) -> None:
    messages: list[Any] = [
        {"role": "user", "content": [{"type": "text", "text": "abcdefgh"}, {"type": "text", "text": "x"}]},  # 2 + 1
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}],
        },  # 7 chars -> 2
        {"role": "tool", "tool_call_id": "c1", "content": "result text!"},  # 12 chars -> 3
    ]
    completion = oai.chat.completions.create(
        model="mock-gpt@cached_tokens=100,reply=four", messages=messages, max_completion_tokens=5
    )
    assert completion.model == "mock-gpt"
    assert completion.choices[0].message.content == "four"
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens == 8 + 100  # cached tokens are a subset of prompt tokens
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 100
    assert usage.completion_tokens == 1
    assert usage.total_tokens == 109


def test_chat_stream_with_usage(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model="mock-gpt@chunks=4,chunk_size=5",
        messages=USER,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert {c.id for c in chunks} == {chunks[0].id}
    assert {c.created for c in chunks} == {chunks[0].created}
    assert all(c.object == "chat.completion.chunk" and c.model == "mock-gpt" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    contents = [c.choices[0].delta.content for c in chunks[1:] if c.choices and c.choices[0].delta.content]
    assert contents == [SENTENCE[i : i + 5] for i in range(0, 20, 5)]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    *body, last = chunks
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (5, 5, 10)
    assert all(c.usage is None for c in body)


def test_chat_stream_without_usage_has_no_usage_chunk(mock_server: Server, oai: openai.OpenAI) -> None:
    body = orjson.dumps({"model": "mock-gpt@chunks=2", "messages": USER, "stream": True})
    request = urllib.request.Request(
        f"{mock_server.url}/v1/chat/completions", data=body, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode()
    events = raw.split("\n\n")
    assert events[-1] == ""
    assert events[-2] == "data: [DONE]"
    payloads = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
    assert len(payloads) == 4  # role, 2 deltas, finish
    assert all("usage" not in p and len(p["choices"]) == 1 for p in payloads)
    assert payloads[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}


def test_chat_stream_helper(oai: openai.OpenAI) -> None:
    with oai.chat.completions.stream(model="mock-gpt@reply=streamed reply text", messages=USER) as stream:
        deltas = [e.delta for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()
    assert deltas[0] == ""  # the role chunk carries empty content
    assert deltas[1:] == ["stream", "ed rep", "ly tex", "t"]  # 19 chars in pieces of 6
    assert final.choices[0].message.content == "streamed reply text"
    assert final.choices[0].finish_reason == "stop"


def test_chat_async_stream_and_plain(mock_server: Server) -> None:
    async def main() -> tuple[str, str]:
        async with openai.AsyncOpenAI(base_url=f"{mock_server.url}/v1", api_key="k", max_retries=0) as client:
            plain = await client.chat.completions.create(model="m@chunks=3", messages=USER)
            stream = await client.chat.completions.create(model="m@chunks=3", messages=USER, stream=True)
            text = "".join([c.choices[0].delta.content or "" async for c in stream])
            return plain.choices[0].message.content or "", text

    plain, streamed = asyncio.run(main())
    assert plain == streamed == SENTENCE[:18]


def test_chat_tool_call_stream_assembled_by_sdk(oai: openai.OpenAI) -> None:
    with oai.chat.completions.stream(
        model="mock-gpt@tool_call=1,reply=call it,chunk_size=4", messages=USER, tools=TOOL_OPENAI
    ) as stream:
        events = list(stream)
        final = stream.get_final_completion()
    fragments = [e for e in events if e.type == "tool_calls.function.arguments.delta"]
    assert "".join(e.arguments_delta for e in fragments) == '{"text":"call it"}'
    assert len(fragments) == 5  # 19 chars in pieces of 4
    message = final.choices[0].message
    assert final.choices[0].finish_reason == "tool_calls"
    assert message.content is None
    assert message.tool_calls is not None and len(message.tool_calls) == 1
    call = message.tool_calls[0]
    assert call.type == "function"
    assert call.id.startswith("call_")
    assert call.function.name == "lookup"
    assert json.loads(call.function.arguments) == {"text": "call it"}


def test_chat_tool_call_fragments_carry_id_and_name_once(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model="mock-gpt", messages=USER, tools=TOOL_OPENAI, stream=True, extra_headers={"x-mock-tool-call": "true"}
    )
    calls = [c.choices[0].delta.tool_calls[0] for c in stream if c.choices and c.choices[0].delta.tool_calls]
    assert len(calls) > 2
    assert calls[0].id is not None and calls[0].type == "function"
    assert calls[0].function is not None and calls[0].function.name == "lookup"
    assert all(c.id is None and c.type is None and c.function and c.function.name is None for c in calls[1:])
    assert all(c.index == 0 for c in calls)


def test_tool_call_knob_without_tools_answers_text(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(model="mock-gpt@tool_call=1", messages=USER)
    assert completion.choices[0].message.content == DEFAULT_REPLY
    assert completion.choices[0].message.tool_calls is None


def test_then_answer_answers_once_the_request_ends_with_tool_results(
    oai: openai.OpenAI, ant: anthropic.Anthropic
) -> None:
    """`then_answer`: the model calls the tool, and answers in text once the request ends with the
    tool's result; in all three formats, through their SDKs."""

    def chat(messages: list[Any], knobs: str) -> Any:
        model = f"mock-gpt@tool_call=1,reply=r{knobs}"
        return oai.chat.completions.create(model=model, messages=messages, tools=TOOL_OPENAI).choices[0]

    call = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"text":"r"}'}}
    asked: list[Any] = [*USER, {"role": "assistant", "content": None, "tool_calls": [call]}]
    answered = [*asked, {"role": "tool", "tool_call_id": "call_1", "content": "found"}]
    assert chat(USER, ",then_answer").message.tool_calls is not None
    assert chat(asked, ",then_answer").message.tool_calls is not None  # no result yet
    assert chat(answered, "").message.tool_calls is not None  # without the knob: calls again
    choice = chat(answered, ",then_answer")
    assert (choice.finish_reason, choice.message.content, choice.message.tool_calls) == ("stop", "r", None)

    def responses(knobs: str) -> Any:
        function_call = {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": "{}"}
        output = {"type": "function_call_output", "call_id": "call_1", "output": "found"}
        items: Any = [{"role": "user", "content": "hi"}, function_call, output]
        return oai.responses.create(model=f"mock-gpt@tool_call=1,reply=r{knobs}", input=items, tools=TOOL_RESPONSES)

    assert responses("").output[0].type == "function_call"
    assert responses(",then_answer").output_text == "r"

    def messages(knobs: str) -> Any:
        use = {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"text": "r"}}
        result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "found"}
        history: Any = [*USER, {"role": "assistant", "content": [use]}, {"role": "user", "content": [result]}]
        model = f"mock-claude@tool_call=1,reply=r{knobs}"
        return ant.messages.create(model=model, max_tokens=10, messages=history, tools=TOOL_ANTHROPIC)

    assert messages("").stop_reason == "tool_use"
    message = messages(",then_answer")
    assert message.stop_reason == "end_turn" and [b.type for b in message.content] == ["text"]


def test_chat_echo_shows_what_reached_the_model(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(
        model="mock-gpt@echo", messages=USER, temperature=0.5, extra_headers={"x-custom": "Value"}
    )
    echoed = json.loads(completion.choices[0].message.content or "")
    assert echoed["method"] == "POST"
    assert echoed["path"] == "/v1/chat/completions"
    assert "authorization" not in echoed["headers"]  # a credential: never echoed
    assert echoed["headers"]["x-custom"] == "Value"
    assert all(name == name.lower() for name in echoed["headers"])
    assert echoed["body"] == {"model": "mock-gpt@echo", "messages": USER, "temperature": 0.5}


def test_echo_stream_concatenates_to_the_json(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model="mock-gpt", messages=USER, stream=True, extra_headers={"x-mock-echo": "1", "x-mock-chunk-size": "7"}
    )
    pieces = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert all(len(p) == 7 for p in pieces[:-1])
    echoed = json.loads("".join(pieces))
    assert echoed["body"]["stream"] is True
    assert echoed["headers"]["x-mock-echo"] == "1"


CREDENTIALS = {
    "authorization": "Bearer sk-cred-authorization",
    "proxy-authorization": "Basic c2stY3JlZC1wcm94eQ==",
    "x-api-key": "sk-cred-x-api-key",
    "api-key": "sk-cred-azure",
    "x-goog-api-key": "sk-cred-goog",
    "cookie": "session=sk-cred-cookie",
    "helicone-auth": "Bearer sk-cred-helicone",
    "x-org-token": "sk-cred-org-token",
    "x-upstream-secret": "sk-cred-upstream-secret",
}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"model": "mock-gpt@echo", "messages": USER}),
        ("/v1/responses", {"model": "mock-gpt@echo", "input": "hi"}),
        ("/v1/messages", {"model": "mock-claude@echo", "max_tokens": 10, "messages": USER}),
    ],
)
def test_echo_never_returns_a_credential(mock_server: Server, path: str, body: dict[str, Any], stream: bool) -> None:
    """Whoever may ask for an echo (any gateway key holder, through the gateway) must not read the
    provider credential the request carried: every credential header is left out, by name."""
    headers = {**CREDENTIALS, "x-custom": "kept", "x-mock-cached-tokens": "0", "anthropic-version": "2023-06-01"}
    headers["x-mock-chunk-size"] = "10000"  # a stream's echo in one delta: a value could not hide across deltas
    r = httpx.post(f"{mock_server.url}{path}", json={**body, "stream": stream}, headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    for value in CREDENTIALS.values():
        assert value not in r.text and "sk-cred" not in r.text
    stats = httpx.get(f"{mock_server.url}/mock/stats", timeout=10).json()
    assert stats["last_request"]["headers"]["x-api-key"] == "sk-cred-x-api-key"  # the mock's own view keeps them
    if not stream:
        text = (
            r.json()["choices"][0]["message"]["content"]
            if path == "/v1/chat/completions"
            else r.json()["output"][0]["content"][0]["text"]
            if path == "/v1/responses"
            else r.json()["content"][0]["text"]
        )
        shown = json.loads(text)["headers"]
        assert not set(CREDENTIALS) & set(shown)
        assert shown["x-custom"] == "kept" and shown["x-mock-cached-tokens"] == "0"


# ---------------------------------------------------------------- OpenAI responses


def test_responses_plain_with_string_and_item_input(oai: openai.OpenAI) -> None:
    response = oai.responses.create(model="mock-gpt", input="What is up?", instructions="Be nice.")  # 3 + 2
    assert response.object == "response"
    assert response.status == "completed"
    assert response.model == "mock-gpt"
    assert response.output_text == DEFAULT_REPLY
    assert response.instructions == "Be nice."
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (5, 12, 17)
    assert response.usage.input_tokens_details.cached_tokens == 0
    assert response.usage.output_tokens_details.reasoning_tokens == 0

    items: Any = [
        {"role": "user", "content": "abcd"},  # 1
        {"role": "user", "content": [{"type": "input_text", "text": "abcdefghi"}]},  # 3
        {"type": "function_call_output", "call_id": "c1", "output": "12345678"},  # 2
    ]
    response = oai.responses.create(model="mock-gpt@cached_tokens=4,reply=ok", input=items)
    assert response.output_text == "ok"
    assert response.usage is not None
    assert response.usage.input_tokens == 6 + 4
    assert response.usage.input_tokens_details.cached_tokens == 4
    assert response.usage.output_tokens == 1


def test_responses_stream_lifecycle(oai: openai.OpenAI) -> None:
    stream = oai.responses.create(model="mock-gpt@chunks=3", input="hi", stream=True)
    events = list(stream)
    kinds = [e.type for e in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == SENTENCE[:18]
    created, completed = events[0], events[-1]
    assert created.type == "response.created" and completed.type == "response.completed"
    assert created.response.id == completed.response.id
    assert created.response.usage is None
    assert completed.response.usage is not None
    assert completed.response.usage.output_tokens == tokens(SENTENCE[:18])
    assert completed.response.output_text == SENTENCE[:18]


def test_responses_stream_helper(oai: openai.OpenAI) -> None:
    with oai.responses.stream(model="mock-gpt@reply=helper text", input="hi") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "helper text"
    assert final.output_text == "helper text"
    assert final.usage is not None and final.usage.output_tokens == 3


def test_responses_tool_call_stream(oai: openai.OpenAI) -> None:
    with oai.responses.stream(model="mock-gpt@tool_call=1,reply=r", input="hi", tools=TOOL_RESPONSES) as stream:
        events = list(stream)
        final = stream.get_final_response()
    arg_deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    assert "".join(arg_deltas) == '{"text":"r"}'
    assert len(arg_deltas) == 2
    (item,) = final.output
    assert item.type == "function_call"
    assert item.name == "lookup"
    assert json.loads(item.arguments) == {"text": "r"}


def test_responses_async(mock_server: Server) -> None:
    async def main() -> str:
        async with openai.AsyncOpenAI(base_url=f"{mock_server.url}/v1", api_key="k", max_retries=0) as client:
            stream = await client.responses.create(model="m@reply=async!", input="x", stream=True)
            return "".join([e.delta async for e in stream if e.type == "response.output_text.delta"])

    assert asyncio.run(main()) == "async!"


# ---------------------------------------------------------------- OpenAI embeddings and models


def test_embeddings_default_base64_matches_float(oai: openai.OpenAI) -> None:
    inputs = ["first text", "second"]
    via_base64 = oai.embeddings.create(model="mock-embed", input=inputs)  # the SDK asks for base64
    as_float = oai.embeddings.create(model="mock-embed", input=inputs, encoding_format="float")
    assert [d.embedding for d in via_base64.data] == [d.embedding for d in as_float.data]
    assert [d.index for d in as_float.data] == [0, 1]
    assert all(len(d.embedding) == 8 and all(-1 <= x < 1 for x in d.embedding) for d in as_float.data)
    assert as_float.data[0].embedding != as_float.data[1].embedding
    assert as_float.usage.prompt_tokens == as_float.usage.total_tokens == 3 + 2
    assert as_float.model == "mock-embed"
    again = oai.embeddings.create(model="mock-embed", input="first text", encoding_format="float")
    assert again.data[0].embedding == as_float.data[0].embedding  # deterministic


def test_embeddings_raw_base64_and_dimensions(oai: openai.OpenAI) -> None:
    raw = oai.embeddings.with_raw_response.create(
        model="mock-embed", input=[[1, 2, 3], [4, 5]], dimensions=16, encoding_format="base64"
    )
    body = json.loads(raw.text)
    vectors = [struct.unpack("<16f", base64.b64decode(d["embedding"])) for d in body["data"]]
    assert len(vectors) == 2
    assert body["usage"] == {"prompt_tokens": 5, "total_tokens": 5}
    parsed = oai.embeddings.create(model="mock-embed", input=[[1, 2, 3], [4, 5]], dimensions=16)
    assert [tuple(d.embedding) for d in parsed.data] == vectors


def test_embeddings_bad_input(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        oai.embeddings.create(model="mock-embed", input=[], encoding_format="float")
    assert info.value.param == "input"


def test_models_list_in_both_formats(oai: openai.OpenAI, ant: anthropic.Anthropic) -> None:
    openai_models = list(oai.models.list())
    assert "mock-gpt" in [m.id for m in openai_models]
    assert all(m.object == "model" and m.owned_by == "sluicegate" for m in openai_models)
    page = ant.models.list()
    assert [m.id for m in page.data] == [m.id for m in openai_models]
    assert all(m.type == "model" and m.display_name for m in page.data)
    assert page.has_more is False
    assert page.first_id == page.data[0].id and page.last_id == page.data[-1].id
    assert oai.models.retrieve("anything").id == "anything"
    assert ant.models.retrieve("mock-claude").display_name == "Mock Claude"


# ---------------------------------------------------------------- Anthropic messages


def test_messages_plain_answer_and_usage(ant: anthropic.Anthropic) -> None:
    message = ant.messages.create(
        model="mock-claude",
        max_tokens=100,
        system=[{"type": "text", "text": "System prompt."}],  # 14 chars -> 4
        messages=USER,  # 5
    )
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == "mock-claude"
    assert message.stop_reason == "end_turn"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].type == "text" and message.content[0].text == DEFAULT_REPLY
    usage = message.usage
    assert (usage.input_tokens, usage.output_tokens) == (9, 12)
    assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (0, 0)


def test_messages_cached_tokens_and_tool_results(ant: anthropic.Anthropic) -> None:
    messages: Any = [
        {"role": "user", "content": "abcd"},  # 1
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {"q": "x"}}]},  # 3
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "abcde"}]}],
        },  # 2
    ]
    message = ant.messages.create(
        model="mock-claude@cached_tokens=50", max_tokens=10, system="sys", messages=messages
    )  # sys -> 1
    assert message.model == "mock-claude"
    assert message.usage.input_tokens == 7  # excludes cache reads
    assert message.usage.cache_read_input_tokens == 50


def test_messages_raw_stream_events(ant: anthropic.Anthropic) -> None:
    stream = ant.messages.create(model="mock-claude@chunks=3", max_tokens=10, messages=USER, stream=True)
    events = list(stream)  # the SDK drops ping itself
    kinds = [e.type for e in events]
    assert kinds == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start, delta = events[0], events[-2]
    assert start.type == "message_start" and delta.type == "message_delta"
    assert start.message.usage.input_tokens == 5
    assert start.message.usage.output_tokens == 1
    assert start.message.stop_reason is None
    assert delta.delta.stop_reason == "end_turn"
    assert delta.usage.output_tokens == tokens(SENTENCE[:18])


def test_messages_stream_sends_event_lines_and_ping(mock_server: Server) -> None:
    body = orjson.dumps({"model": "c@chunks=1", "max_tokens": 5, "messages": USER, "stream": True})
    request = urllib.request.Request(f"{mock_server.url}/v1/messages", data=body, headers={"anthropic-version": "x"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["request-id"].startswith("req_")
        events = response.read().decode().split("\n\n")[:-1]
    for event in events:
        name_line, data_line = event.split("\n")
        assert json.loads(data_line.removeprefix("data: "))["type"] == name_line.removeprefix("event: ")
    assert [e.split("\n")[0] for e in events][:3] == [
        "event: message_start",
        "event: content_block_start",
        "event: ping",
    ]


def test_messages_stream_helper_final_message(ant: anthropic.Anthropic) -> None:
    with ant.messages.stream(model="mock-claude", max_tokens=10, messages=USER) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == DEFAULT_REPLY
    assert final.content[0].type == "text" and final.content[0].text == DEFAULT_REPLY
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (5, 12)


def test_messages_tool_use_stream(ant: anthropic.Anthropic) -> None:
    with ant.messages.stream(
        model="mock-claude@tool_call=1,chunk_size=3", max_tokens=10, messages=USER, tools=TOOL_ANTHROPIC
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    partials = [e.delta.partial_json for e in events if e.type == "content_block_delta"]  # type: ignore[union-attr]
    reply = SENTENCE[:24]  # 8 chunks of 3 characters
    expected_args = json.dumps({"text": reply}, separators=(",", ":"))
    assert "".join(partials) == expected_args
    assert all(len(p) == 3 for p in partials[:-1])
    assert final.stop_reason == "tool_use"
    (block,) = final.content
    assert block.type == "tool_use"
    assert block.name == "lookup"
    assert block.id.startswith("toolu_")
    assert block.input == {"text": reply}
    assert final.usage.output_tokens == tokens(expected_args)


def test_messages_async_and_echo(mock_server: Server) -> None:
    async def main() -> str:
        async with anthropic.AsyncAnthropic(base_url=mock_server.url, api_key="sk-ant-xyz", max_retries=0) as client:
            stream_manager = client.messages.stream(
                model="mock-claude@echo,chunk_size=11", max_tokens=10, messages=USER
            )
            async with stream_manager as stream:
                return "".join([t async for t in stream.text_stream])

    echoed = json.loads(asyncio.run(main()))
    assert echoed["path"] == "/v1/messages"
    assert "sk-ant-xyz" not in json.dumps(echoed)
    assert "anthropic-version" in echoed["headers"]
    assert echoed["body"]["max_tokens"] == 10


def test_count_tokens(ant: anthropic.Anthropic) -> None:
    counted = ant.messages.count_tokens(model="mock-claude", system="Be brief.", messages=USER)
    assert counted.input_tokens == 3 + 5


def test_messages_max_tokens_required(ant: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        ant.post("/v1/messages", cast_to=anthropic.types.Message, body={"model": "mock-claude", "messages": USER})
    assert info.value.status_code == 400
    assert info.value.body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"},
        "request_id": info.value.response.headers["request-id"],
    }


# ---------------------------------------------------------------- faults and errors


def test_429_in_both_formats(oai: openai.OpenAI, ant: anthropic.Anthropic) -> None:
    with pytest.raises(openai.RateLimitError) as oinfo:
        oai.chat.completions.create(model="mock-gpt@fault=429", messages=USER)
    assert oinfo.value.code == "rate_limit_exceeded"
    assert oinfo.value.response.headers["retry-after-ms"] == "10"
    with pytest.raises(anthropic.RateLimitError) as ainfo:
        ant.messages.create(model="mock-claude", max_tokens=5, messages=USER, extra_headers={"x-mock-fault": "429"})
    assert ainfo.value.type == "rate_limit_error"


def test_5xx_faults(oai: openai.OpenAI, ant: anthropic.Anthropic) -> None:
    with pytest.raises(openai.InternalServerError) as oinfo:
        oai.responses.create(model="mock-gpt@fault=500", input="x")
    assert oinfo.value.status_code == 500
    assert oinfo.value.type == "server_error"
    with pytest.raises(openai.InternalServerError) as oinfo:
        oai.embeddings.create(model="mock-embed@fault=503", input="x")
    assert oinfo.value.status_code == 503
    with pytest.raises(anthropic.InternalServerError) as ainfo:
        ant.messages.create(model="mock-claude@fault=500", max_tokens=5, messages=USER)
    assert ainfo.value.status_code == 500
    with pytest.raises(anthropic.OverloadedError) as over:
        ant.messages.create(model="mock-claude@fault=529", max_tokens=5, messages=USER, stream=True)
    assert over.value.status_code == 529


def test_error_event_in_streams(oai: openai.OpenAI, ant: anthropic.Anthropic) -> None:
    seen: list[Any] = []
    with pytest.raises(openai.APIError) as info:
        seen.extend(oai.chat.completions.create(model="mock-gpt@fault=error_event", messages=USER, stream=True))
    assert not isinstance(info.value, openai.APIStatusError)
    assert info.value.code == "mock_error_event"
    assert len(seen) == 2  # fault_after defaults to 2 events

    seen.clear()
    with pytest.raises(openai.APIError) as info:
        seen.extend(oai.responses.create(model="mock-gpt@fault=error_event,fault_after=3", input="x", stream=True))
    assert [e.type for e in seen] == ["response.created", "response.in_progress", "response.output_item.added"]

    seen.clear()
    with pytest.raises(anthropic.APIStatusError) as ainfo:
        seen.extend(
            ant.messages.create(model="mock-claude@fault=error_event", max_tokens=5, messages=USER, stream=True)
        )
    assert ainfo.value.status_code == 200
    assert [e.type for e in seen] == ["message_start", "content_block_start"]  # then ping, then the error


def test_error_event_without_stream_is_a_500(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model="mock-gpt@fault=error_event", messages=USER)


def test_disconnect_fault_is_never_a_clean_end(oai: openai.OpenAI, ant: anthropic.Anthropic) -> None:
    seen: list[Any] = []
    with pytest.raises(openai.APIConnectionError):
        seen.extend(oai.chat.completions.create(model="m@fault=disconnect,fault_after=3", messages=USER, stream=True))
    assert len(seen) == 3
    with pytest.raises(openai.APIConnectionError):
        list(oai.responses.create(model="m@fault=disconnect", input="x", stream=True))
    # older anthropic releases let the transport error through in streams; 2.17 wraps it as the SDK's own
    # connection error. Either way the stream does not end cleanly, which is what the mock promises.
    with pytest.raises((httpx2.RemoteProtocolError, anthropic.APIConnectionError)):
        list(ant.messages.create(model="c@fault=disconnect", max_tokens=5, messages=USER, stream=True))
    # fault_after past the end still breaks before the last event.
    with pytest.raises(openai.APIConnectionError):
        list(oai.chat.completions.create(model="m@fault=disconnect,fault_after=999", messages=USER, stream=True))
    # Without a stream, the body stops half way.
    with pytest.raises(openai.APIConnectionError):
        oai.chat.completions.create(model="m@fault=disconnect", messages=USER)
    with pytest.raises(anthropic.APIConnectionError):
        ant.messages.create(model="c@fault=disconnect", max_tokens=5, messages=USER)


def test_disconnect_fault_socket_sees_no_terminating_chunk(mock_server: Server) -> None:
    body = orjson.dumps({"model": "m@fault=disconnect,fault_after=1", "messages": USER, "stream": True})
    head = f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: {len(body)}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", mock_server.port), timeout=5) as sock:
        sock.sendall(head.encode() + body)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert b"transfer-encoding: chunked" in received.lower()
    assert received.count(b"data: ") == 1
    assert not received.endswith(b"0\r\n\r\n")  # the server closed without the last chunk


def test_malformed_fault_then_the_stream_goes_on(mock_server: Server, oai: openai.OpenAI) -> None:
    with pytest.raises(json.JSONDecodeError):
        list(oai.chat.completions.create(model="m@fault=malformed", messages=USER, stream=True))
    body = orjson.dumps({"model": "m@fault=malformed,chunks=2", "messages": USER, "stream": True})
    request = urllib.request.Request(f"{mock_server.url}/v1/chat/completions", data=body)
    with urllib.request.urlopen(request, timeout=10) as response:
        events = response.read().decode().split("\n\n")
    assert events[2] == "data: {not json"
    assert events[-2] == "data: [DONE]"
    assert len(events) == 1 + 2 + 1 + 1 + 1 + 1  # role, 2 deltas, malformed, finish, [DONE], ''
    request = urllib.request.Request(
        f"{mock_server.url}/v1/messages",
        data=orjson.dumps({"model": "c", "max_tokens": 5, "messages": USER}),
        headers={"x-mock-fault": "malformed"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert response.read() == b"{not json"


def test_first_byte_and_delay_knobs_take_time(oai: openai.OpenAI) -> None:
    started = time.monotonic()
    oai.chat.completions.create(model="m@first_byte_ms=300", messages=USER)
    assert time.monotonic() - started >= 0.28  # timers may fire a millisecond early
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        oai.with_options(timeout=0.3).chat.completions.create(model="m@fault=slow_first_byte", messages=USER)
    assert time.monotonic() - started < 3
    started = time.monotonic()
    stream = oai.chat.completions.create(model="m@chunks=4,delay_ms=60", messages=USER, stream=True)
    stamps = [time.monotonic() for _ in stream]
    assert len(stamps) == 6
    assert stamps[-1] - started >= 5 * 0.06 - 0.02  # 6 events, 5 pauses (no pause: a few ms)


def test_bad_knob_is_a_400_naming_it(oai: openai.OpenAI, ant: anthropic.Anthropic) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(model="m", messages=USER, extra_headers={"x-mock-chunks": "lots"})
    assert info.value.param == "chunks"
    assert info.value.code == "invalid_mock_knob"
    assert "chunks" in info.value.message
    with pytest.raises(anthropic.BadRequestError) as ainfo:
        ant.messages.create(model="c@fault=kaboom", max_tokens=5, messages=USER)
    assert "fault" in str(ainfo.value)


def test_non_json_body_and_unknown_path(mock_server: Server) -> None:
    status, body = http_error(f"{mock_server.url}/v1/chat/completions", "POST", b"{oops", {})
    assert status == 400
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == "invalid_request_error"
    status, body = http_error(f"{mock_server.url}/v1/messages", "POST", b"not json", {})
    assert status == 400
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert body["request_id"].startswith("req_")
    status, body = http_error(f"{mock_server.url}/v1/nothing-here", "GET", None, {})
    assert status == 404
    assert body["error"]["type"] == "invalid_request_error"
    assert "/v1/nothing-here" in body["error"]["message"]
    status, body = http_error(f"{mock_server.url}/v1/chat/completions", "POST", b'{"messages": []}', {})
    assert (status, body["error"]["param"]) == (400, "model")


# ---------------------------------------------------------------- stats and disconnects


def test_stats_count_requests_streams_and_last_request(mock_server: Server, oai: openai.OpenAI) -> None:
    reset = get_json(f"{mock_server.url}/mock/stats/reset", method="POST", body=b"")
    assert reset == {
        "requests": 0,
        "streams_started": 0,
        "streams_completed": 0,
        "streams_disconnected": 0,
        "last_request": None,
    }
    oai.chat.completions.create(model="m", messages=USER)
    list(oai.chat.completions.create(model="m", messages=USER, stream=True))
    oai.embeddings.create(model="e@chunks=2", input="last one")
    after = stats(mock_server)
    assert after["requests"] == 3
    assert after["streams_started"] == after["streams_completed"] == 1
    assert after["streams_disconnected"] == 0
    last = after["last_request"]
    assert last["path"] == "/v1/embeddings"
    assert last["body"]["input"] == "last one"
    assert last["headers"]["authorization"] == "Bearer sk-client-key"


def read_events_then_close(port: int, body: bytes, events: int) -> None:
    head = f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: {len(body)}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head.encode() + body)
        received = b""
        while received.count(b"data: ") < events:
            chunk = sock.recv(65536)
            assert chunk, "the server closed first"
            received += chunk


def wait_for_disconnects(server: Server, before: int, within: float = 1.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        if stats(server)["streams_disconnected"] > before:
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"streams_disconnected did not go up within {within}s")


def test_client_closing_mid_stream_is_counted(mock_server: Server) -> None:
    before = stats(mock_server)
    body = orjson.dumps({"model": "m@chunks=100,delay_ms=200", "messages": USER, "stream": True})
    read_events_then_close(mock_server.port, body, events=2)
    wait_for_disconnects(mock_server, before["streams_disconnected"])
    after = stats(mock_server)
    assert after["streams_started"] == before["streams_started"] + 1
    assert after["streams_completed"] == before["streams_completed"]


def test_aiohttp_client_closing_mid_stream_is_counted(mock_server: Server) -> None:
    async def main() -> list[bytes]:
        body = {"model": "m@chunks=100,delay_ms=100", "messages": USER, "stream": True}
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{mock_server.url}/v1/chat/completions", json=body) as response,
        ):
            lines = []
            async for line in response.content:
                if line.startswith(b"data: "):
                    lines.append(line)
                if len(lines) == 2:
                    response.close()
                    break
            return lines

    before = stats(mock_server)["streams_disconnected"]
    assert len(asyncio.run(main())) == 2
    wait_for_disconnects(mock_server, before)


# ---------------------------------------------------------------- in process


def chat_request(model: str, stream: bool = True) -> bytes:
    return orjson.dumps({"model": model, "messages": USER, "stream": stream})


def test_in_process_stream_complete_and_early_close() -> None:
    async def main() -> None:
        before = STATS.snapshot()
        response = await respond("POST", "/v1/chat/completions", {}, chat_request("m@chunks=2"))
        assert isinstance(response, MockResponse)
        assert response.status == 200
        assert ("content-type", "text/event-stream; charset=utf-8") in response.headers
        chunks = [chunk async for chunk in response.body]
        assert chunks[-1] == b"data: [DONE]\n\n"
        assert len(chunks) == 5
        mid = STATS.snapshot()
        assert mid["streams_started"] == before["streams_started"] + 1
        assert mid["streams_completed"] == before["streams_completed"] + 1
        await response.body.aclose()  # after the end: nothing more to count
        assert STATS.streams_disconnected == before["streams_disconnected"]

        response = await respond(
            "POST", "/v1/messages", {}, orjson.dumps({**orjson.loads(chat_request("c")), "max_tokens": 5})
        )
        first = await response.body.__anext__()
        assert first.startswith(b"event: message_start\n")
        await response.body.aclose()
        assert STATS.streams_disconnected == before["streams_disconnected"] + 1
        assert STATS.streams_completed == before["streams_completed"] + 1
        assert [chunk async for chunk in response.body] == []

        response = await respond(
            "POST", "/v1/responses", {}, orjson.dumps({"model": "r", "input": "x", "stream": True})
        )
        await response.body.aclose()  # closed before the first event
        assert STATS.streams_disconnected == before["streams_disconnected"] + 2

    asyncio.run(main())


def test_in_process_disconnect_fault_and_plain_answer() -> None:
    async def main() -> None:
        before = STATS.streams_disconnected
        response = await respond(
            "POST", "/v1/chat/completions", {"x-mock-fault": "disconnect", "x-mock-fault-after": "3"}, chat_request("m")
        )
        got: list[bytes] = []
        with pytest.raises(MockDisconnect) as info:
            async for chunk in response.body:
                got.append(chunk)
        assert isinstance(info.value, ConnectionResetError)
        assert len(got) == 3
        assert STATS.streams_disconnected == before + 1

        response = await respond("POST", "/v1/chat/completions", {"x-mock-reply": "hi"}, chat_request("m", False))
        assert response.status == 200
        (body,) = [chunk async for chunk in response.body]
        assert ("content-length", str(len(body))) in response.headers
        assert orjson.loads(body)["choices"][0]["message"]["content"] == "hi"

        response = await respond("GET", "/v1/models", {"anthropic-version": "2026-10-21"}, b"")
        (body,) = [chunk async for chunk in response.body]
        assert orjson.loads(body)["has_more"] is False

    asyncio.run(main())


def test_asgi_lifespan_completes() -> None:
    async def main() -> list[str]:
        app = create_app()
        inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
        sent: list[str] = []

        async def receive() -> dict[str, Any]:
            return inbox.pop(0)

        async def send(message: Any) -> None:
            sent.append(message["type"])

        await asyncio.wait_for(app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send), 5)
        return sent

    assert asyncio.run(main()) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_process_knobs_are_set_and_cleared_over_http(mock_server: Server, oai: openai.OpenAI) -> None:
    knobs = f"{mock_server.url}/mock/knobs"
    try:
        assert httpx.put(knobs, content=b"fault=429,retry_after=7").json() == {"fault": "429", "retry_after": "7"}
        with pytest.raises(openai.RateLimitError) as err:
            oai.chat.completions.create(model="mock-gpt", messages=USER)
        assert err.value.response.headers["retry-after"] == "7"
        # a request's own knob wins over the process's
        with pytest.raises(openai.BadRequestError) as refused:
            oai.chat.completions.create(model="mock-gpt@fault=context_length", messages=USER)
        assert refused.value.code == "context_length_exceeded"
        bad = httpx.put(knobs, content=b"fault=sometimes")
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "fault"
        assert httpx.get(knobs).json() == {"fault": "429", "retry_after": "7"}  # unchanged by the bad one
    finally:
        assert httpx.put(knobs, content=b"").json() == {}
    assert oai.chat.completions.create(model="mock-gpt", messages=USER).choices[0].message.content


def test_answers_carry_the_vendors_request_id_and_rate_limit_headers(
    oai: openai.OpenAI, ant: anthropic.Anthropic
) -> None:
    raw = oai.chat.completions.with_raw_response.create(model="mock-gpt", messages=USER)
    assert raw.parse()._request_id == raw.headers["x-request-id"] and raw.headers["x-request-id"].startswith("req_")
    assert raw.headers["x-ratelimit-remaining-requests"] == "9999"
    message = ant.messages.with_raw_response.create(model="mock-claude", max_tokens=5, messages=USER)
    assert message.parse()._request_id == message.headers["request-id"]
    assert message.headers["anthropic-ratelimit-tokens-limit"] == "400000"


def test_disconnect_fault_bytes_cut_inside_the_next_event() -> None:
    async def main() -> list[bytes]:
        response = await respond(
            "POST",
            "/v1/chat/completions",
            {"x-mock-fault": "disconnect", "x-mock-fault-after": "0", "x-mock-fault-bytes": "9"},
            chat_request("m"),
        )
        got: list[bytes] = []
        with pytest.raises(MockDisconnect):
            async for chunk in response.body:
                got.append(chunk)
        return got

    assert asyncio.run(main()) == [b'data: {"i']
