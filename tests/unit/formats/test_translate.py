"""Translation between OpenAI chat and Anthropic Messages, as properties: requests round-trip in
both directions; a translated response carries the same content and usage; a translated stream
assembles to the translation of the same answer not streamed, whatever the provider's cuts
(chunk invariance); and every feature without a counterpart is refused by name."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluicegate.errors import UpstreamProtocolError
from sluicegate.formats import ANTHROPIC_MESSAGES, OPENAI_CHAT
from sluicegate.formats.sse import EventBuffer, encode
from sluicegate.formats.translate import (
    DEFAULT_MAX_TOKENS,
    FINISH_TO_STOP,
    STOP_TO_FINISH,
    ChatToMessages,
    MessagesToChat,
    Untranslatable,
    chat_to_messages,
    messages_to_chat,
)
from sluicegate.formats.translate_stream import TranslatedResponse

TO_CHAT, TO_MESSAGES = MessagesToChat(), ChatToMessages()
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
word = st.text("abcdefghij_", min_size=1, max_size=8)
json_obj = st.dictionaries(word, st.one_of(st.integers(-5, 5), text, st.booleans(), st.none()), max_size=3)
b64 = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", min_size=4, max_size=16)
image_source = st.one_of(
    st.builds(
        lambda d, m: {"type": "base64", "media_type": m, "data": d}, b64, st.sampled_from(["image/png", "image/jpeg"])
    ),
    st.builds(lambda w: {"type": "url", "url": f"https://example.org/{w}.png"}, word),
)
tool_id = st.builds(lambda w: f"toolu_{w}", word)


# --- requests


@st.composite
def anthropic_requests(draw: st.DrawFn) -> dict[str, Any]:
    """Messages requests made of what translates (text, images, tool use and results; alternating roles)."""
    messages: list[dict[str, Any]] = []
    for turn in range(draw(st.integers(1, 5))):
        if turn % 2 == 0:  # user
            blocks: list[dict[str, Any]] = []
            if messages and any(b["type"] == "tool_use" for b in messages[-1]["content"]):
                for b in messages[-1]["content"]:
                    if b["type"] == "tool_use":
                        content = draw(
                            st.one_of(
                                text, st.lists(st.builds(lambda t: {"type": "text", "text": t}, text), max_size=2)
                            )
                        )
                        blocks.append({"type": "tool_result", "tool_use_id": b["id"], "content": content})
            parts = st.one_of(
                st.builds(lambda t: {"type": "text", "text": t}, text),
                st.builds(lambda s: {"type": "image", "source": s}, image_source),
            )
            blocks += draw(st.lists(parts, min_size=0 if blocks else 1, max_size=3))
            messages.append({"role": "user", "content": blocks})
        else:  # assistant: an optional text, then tool uses
            blocks = [{"type": "text", "text": t} for t in draw(st.lists(text.filter(bool), max_size=1))]
            ids = draw(st.lists(tool_id, max_size=2, unique=True))
            blocks += [{"type": "tool_use", "id": i, "name": draw(word), "input": draw(json_obj)} for i in ids]
            if not blocks:
                blocks = [{"type": "text", "text": "ok"}]
            messages.append({"role": "assistant", "content": blocks})
    body: dict[str, Any] = {"model": draw(word), "max_tokens": draw(st.integers(1, 10_000)), "messages": messages}
    if draw(st.booleans()):
        body["system"] = draw(
            st.one_of(text, st.lists(st.builds(lambda t: {"type": "text", "text": t}, text), min_size=1, max_size=2))
        )
    if draw(st.booleans()):
        body["tools"] = [
            {"name": draw(word), "description": draw(text), "input_schema": {"type": "object", "properties": {}}}
        ]
        choice = draw(
            st.sampled_from([{"type": "auto"}, {"type": "any"}, {"type": "none"}, {"type": "tool", "name": "w"}])
        )
        if choice["type"] != "none" and draw(st.booleans()):
            choice = {**choice, "disable_parallel_tool_use": True}
        body["tool_choice"] = choice
    for key, strategy in (
        ("temperature", st.floats(0, 1)),
        ("top_p", st.floats(0, 1)),
        ("stop_sequences", st.lists(word, min_size=1, max_size=3)),
        ("metadata", st.builds(lambda u: {"user_id": u}, word)),
        ("stream", st.just(True)),
    ):
        if draw(st.booleans()):
            body[key] = draw(strategy)
    return body


def normal_anthropic(body: dict[str, Any]) -> dict[str, Any]:
    """What a Messages request means, written one way (text as blocks, tool results as text)."""
    body = json.loads(json.dumps(body))
    if isinstance(body.get("system"), str):
        body["system"] = [{"type": "text", "text": body["system"]}]
    for message in body["messages"]:
        for block in message["content"]:
            if block["type"] == "tool_result" and isinstance(block["content"], list):
                block["content"] = "".join(b["text"] for b in block["content"])
    if body.get("tool_choice", {}).get("type") == "none":
        body["tool_choice"].pop("disable_parallel_tool_use", None)
    return body


@FAST
@given(anthropic_requests())
def test_anthropic_requests_round_trip_through_chat(body: dict[str, Any]) -> None:
    chat = messages_to_chat(body)
    assert orjson.loads(orjson.dumps(chat)) == chat  # plain JSON
    back = chat_to_messages({k: v for k, v in chat.items() if k != "stream_options"})
    assert normal_anthropic(back) == normal_anthropic(body)
    if body.get("stream"):
        assert chat["stream_options"] == {"include_usage": True}  # usage comes at the end of a chat stream


@st.composite
def chat_requests(draw: st.DrawFn) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        messages.append({"role": draw(st.sampled_from(["system", "developer"])), "content": draw(text)})
    for turn in range(draw(st.integers(1, 5))):
        if turn % 2 == 0:
            if messages and messages[-1].get("tool_calls"):
                messages += [
                    {"role": "tool", "tool_call_id": c["id"], "content": draw(text)} for c in messages[-1]["tool_calls"]
                ]
                if draw(st.booleans()):
                    continue
            parts = st.one_of(
                st.builds(lambda t: {"type": "text", "text": t}, text),
                st.builds(lambda d: {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{d}"}}, b64),
                st.builds(lambda w: {"type": "image_url", "image_url": {"url": f"https://example.org/{w}.png"}}, word),
            )
            messages.append({"role": "user", "content": draw(st.one_of(text, st.lists(parts, min_size=1, max_size=3)))})
        else:
            message: dict[str, Any] = {"role": "assistant", "content": draw(st.one_of(st.none(), text.filter(bool)))}
            ids = draw(st.lists(tool_id, max_size=2, unique=True))
            if ids:
                message["tool_calls"] = [
                    {
                        "id": i,
                        "type": "function",
                        "function": {"name": draw(word), "arguments": json.dumps(draw(json_obj))},
                    }
                    for i in ids
                ]
            elif message["content"] is None:
                message["content"] = "ok"
            messages.append(message)
    body: dict[str, Any] = {"model": draw(word), "messages": messages, "max_tokens": draw(st.integers(1, 10_000))}
    if draw(st.booleans()):
        body["tools"] = [
            {
                "type": "function",
                "function": {"name": draw(word), "description": draw(text), "parameters": {"type": "object"}},
            }
        ]
        body["tool_choice"] = draw(
            st.sampled_from(["auto", "none", "required", {"type": "function", "function": {"name": "w"}}])
        )
        if body["tool_choice"] != "none" and draw(st.booleans()):
            body["parallel_tool_calls"] = False
    for key, strategy in (
        ("temperature", st.floats(0, 1)),
        ("top_p", st.floats(0, 1)),
        ("stop", st.lists(word, min_size=1, max_size=3)),
        ("user", word),
        ("stream", st.just(True)),
    ):
        if draw(st.booleans()):
            body[key] = draw(strategy)
    return body


def normal_chat(body: dict[str, Any]) -> dict[str, Any]:
    """What a chat request means, written one way (content as parts, arguments as objects)."""
    body = json.loads(json.dumps(body))
    for message in body["messages"]:
        if message["role"] == "developer":
            message["role"] = "system"
        if isinstance(message.get("content"), str) and message["role"] in ("user", "system"):
            message["content"] = [{"type": "text", "text": message["content"]}]
        if message["role"] == "assistant" and isinstance(message.get("content"), list):
            message["content"] = "".join(p["text"] for p in message["content"]) or None
        for call in message.get("tool_calls") or ():
            call["function"]["arguments"] = json.loads(call["function"]["arguments"])
    return body


@FAST
@given(chat_requests())
def test_chat_requests_round_trip_through_messages(body: dict[str, Any]) -> None:
    messages = chat_to_messages(body)
    assert orjson.loads(orjson.dumps(messages)) == messages
    back = messages_to_chat(messages)
    back.pop("stream_options", None)
    if body.get("parallel_tool_calls") is False and body["tool_choice"] == "none":
        body.pop("parallel_tool_calls")  # no parallel calls when no calls at all
    assert normal_chat(back) == normal_chat(body)


def test_chat_without_a_limit_gets_the_documented_default() -> None:
    assert chat_to_messages({"model": "m", "messages": []})["max_tokens"] == DEFAULT_MAX_TOKENS
    assert chat_to_messages({"model": "m", "messages": [], "max_completion_tokens": 7})["max_tokens"] == 7


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"seed": 1}, "seed"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"logit_bias": {"1": 2}}, "logit_bias"),
        ({"response_format": {"type": "json_schema", "json_schema": {}}}, "response_format"),
        ({"reasoning_effort": "high"}, "reasoning_effort"),
        ({"audio": {"voice": "x"}}, "audio"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"temperature": 1.2}, "temperature"),
        ({"tool_choice": {"type": "allowed_tools"}}, "tool_choice"),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0]"),
        ({"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "late"}]}, "messages[1].role"),
        ({"messages": [{"role": "user", "content": "a", "name": "bob"}]}, "messages[0].name"),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
            "messages[0].content[0]",
        ),
        ({"messages": [{"role": "function", "name": "f", "content": "x"}]}, "messages[0].role"),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}],
                    }
                ]
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
    ],
)
def test_chat_features_without_a_messages_counterpart_are_refused(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(Untranslatable) as info:
        chat_to_messages({"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra})
    assert info.value.status == 400 and info.value.param == param and info.value.message.startswith(f"{param}: ")
    assert "Anthropic-format provider" in info.value.message


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"top_k": 5}, "top_k"),
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "thinking"),
        ({"mcp_servers": []}, "mcp_servers"),
        ({"service_tier": "standard_only"}, "service_tier"),
        ({"metadata": {"trace": "x"}}, "metadata.trace"),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0]"),
        ({"tool_choice": {"type": "auto", "extra": 1}}, "tool_choice.extra"),
        (
            {"messages": [{"role": "user", "content": [{"type": "document", "source": {"type": "url", "url": "u"}}]}]},
            "messages[0].content[0]",
        ),
        (
            {"messages": [{"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "s"}]}]},
            "messages[0].content[0]",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "image", "source": {}}]}
                        ],
                    }
                ]
            },
            "messages[0].content[0].content[0]",
        ),
    ],
)
def test_messages_features_without_a_chat_counterpart_are_refused(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(Untranslatable) as info:
        messages_to_chat({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], **extra})
    assert info.value.param == param and "OpenAI-format provider" in info.value.message


def test_a_tool_error_and_a_pdf_are_carried() -> None:
    body = {
        "model": "m",
        "max_tokens": 5,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": "boom", "is_error": True},
                    {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}},
                ],
            }
        ],
    }
    chat = messages_to_chat(body)
    assert chat["messages"][0] == {"role": "tool", "tool_call_id": "t1", "content": "Error: boom"}
    file = chat["messages"][1]["content"][0]
    assert file == {
        "type": "file",
        "file": {"filename": "document.pdf", "file_data": "data:application/pdf;base64,JVBE"},
    }
    back = chat_to_messages(chat)
    assert back["messages"][0]["content"][1] == body["messages"][0]["content"][1]  # type: ignore[index]


# --- answers: one model of an answer, written in each format streamed and not


@st.composite
def answers(draw: st.DrawFn) -> dict[str, Any]:
    tools = [{"id": draw(tool_id), "name": draw(word), "args": draw(json_obj)} for _ in range(draw(st.integers(0, 2)))]
    said = draw(text) if not tools or draw(st.booleans()) else ""
    finish = draw(st.sampled_from(["tool_calls"] if tools else ["stop", "length", "content_filter"]))
    fresh, cached, written = draw(st.integers(0, 500)), draw(st.integers(0, 500)), draw(st.integers(0, 50))
    return {
        "text": said,
        "tools": tools,
        "finish": finish,
        "fresh": fresh,
        "cached": cached,
        "written": written,
        "output": draw(st.integers(0, 500)),
    }


def cuts(draw: st.DrawFn, s: str) -> list[str]:
    """`s` in pieces where `draw` says (a draw that gives no points: whole)."""
    points = sorted(draw(st.sets(st.integers(1, max(1, len(s) - 1)), max_size=4))) if len(s) > 1 else []
    return [s[a:b] for a, b in zip([0, *points], [*points, len(s)], strict=True) if s[a:b]]


def chat_body(a: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": a["text"] or None}
    if a["tools"]:
        message["tool_calls"] = [
            {"id": t["id"], "type": "function", "function": {"name": t["name"], "arguments": json.dumps(t["args"])}}
            for t in a["tools"]
        ]
    usage = {
        "prompt_tokens": a["fresh"] + a["cached"] + a["written"],
        "completion_tokens": a["output"],
        "total_tokens": a["fresh"] + a["cached"] + a["written"] + a["output"],
        "prompt_tokens_details": {"cached_tokens": a["cached"], "cache_write_tokens": a["written"]},
    }
    choice = {"index": 0, "message": message, "finish_reason": a["finish"], "logprobs": None}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [choice],
        "usage": usage,
    }


def chat_stream(draw: st.DrawFn, a: dict[str, Any]) -> bytes:
    head = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return encode(
            orjson.dumps({**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], "usage": None})
        )

    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"content": piece}) for piece in cuts(draw, a["text"])]
    for i, t in enumerate(a["tools"]):
        pieces = cuts(draw, json.dumps(t["args"]))
        first = {"index": i, "id": t["id"], "type": "function", "function": {"name": t["name"], "arguments": pieces[0]}}
        out.append(chunk({"tool_calls": [first]}))
        out += [chunk({"tool_calls": [{"index": i, "function": {"arguments": p}}]}) for p in pieces[1:]]
    out.append(chunk({}, a["finish"]))
    out.append(encode(orjson.dumps({**head, "choices": [], "usage": chat_body(a)["usage"]})))
    return b"".join(out) + b"data: [DONE]\n\n"


STOPS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}


def messages_body(a: dict[str, Any]) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": a["text"]}] if a["text"] else []
    content += [{"type": "tool_use", "id": t["id"], "name": t["name"], "input": t["args"]} for t in a["tools"]]
    usage = {
        "input_tokens": a["fresh"],
        "cache_read_input_tokens": a["cached"],
        "cache_creation_input_tokens": a["written"],
        "output_tokens": a["output"],
    }
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": content,
        "stop_reason": STOPS[a["finish"]],
        "stop_sequence": None,
        "usage": usage,
    }


def messages_stream(draw: st.DrawFn, a: dict[str, Any]) -> bytes:
    def ev(name: str, data: dict[str, Any]) -> bytes:
        return encode(orjson.dumps({"type": name, **data}), name.encode())

    body = messages_body(a)
    start = {**body, "content": [], "stop_reason": None, "usage": {**body["usage"], "output_tokens": 1}}
    out = [ev("message_start", {"message": start}), ev("ping", {})]
    for index, block in enumerate(body["content"]):
        if block["type"] == "text":
            out.append(ev("content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}}))
            out += [
                ev("content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": p}})
                for p in cuts(draw, block["text"])
            ]
        else:
            out.append(ev("content_block_start", {"index": index, "content_block": {**block, "input": {}}}))
            args = json.dumps(block["input"]) if block["input"] or draw(st.booleans()) else ""
            out += [
                ev("content_block_delta", {"index": index, "delta": {"type": "input_json_delta", "partial_json": p}})
                for p in cuts(draw, args)
            ]
        out.append(ev("content_block_stop", {"index": index}))
    out.append(
        ev(
            "message_delta",
            {
                "delta": {"stop_reason": body["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": a["output"]},
            },
        )
    )
    out.append(ev("message_stop", {}))
    return b"".join(out)


class Upstream:
    """A provider's answer, cut where the test says."""

    def __init__(self, status: int, body: bytes, cut: list[int]) -> None:
        self.status, self.content_type, self.body, self.cut = status, "text/event-stream", body, cut

    def header(self, name: str) -> str | None:
        return None

    async def chunks(self) -> AsyncIterator[bytes]:
        for a, b in zip([0, *self.cut], [*self.cut, len(self.body)], strict=True):
            yield self.body[a:b]

    async def read(self, limit: int | None = None) -> bytes:
        return self.body

    def close(self) -> None:
        pass


async def client_events(bridge: Any, wire: bytes, cut: list[int], filter: bool = False) -> tuple[list[Any], Any]:
    """The client's events (name, JSON) from the translated stream, and the client tap's usage."""
    resp = TranslatedResponse(Upstream(200, wire, cut), bridge, 1 << 20)
    fmt = bridge.source
    tap = fmt.tap({"stream_options": {"include_usage": True}})
    events: list[Any] = []
    buffer = EventBuffer()
    async for piece in resp.chunks():
        for event in buffer.feed(piece):
            assert tap.process(event) is not None
            data = None if event.data == b"[DONE]" else orjson.loads(event.data)
            if isinstance(data, dict):
                data.pop("created", None)
            events.append((event.name, data))
    assert tap.saw_end and buffer.pending == b""
    return events, tap.usage


def assemble_messages(events: list[Any]) -> dict[str, Any]:
    """What the Anthropic SDK assembles from a stream."""
    message: dict[str, Any] = {}
    partial: dict[int, str] = {}
    for name, data in events:
        if name == b"message_start":
            message = data["message"]
        elif name == b"content_block_start":
            assert data["index"] == len(message["content"])
            message["content"].append(data["content_block"])
        elif name == b"content_block_delta":
            block, delta = message["content"][data["index"]], data["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            else:
                partial[data["index"]] = partial.get(data["index"], "") + delta["partial_json"]
        elif name == b"content_block_stop":
            if data["index"] in partial:
                message["content"][data["index"]]["input"] = json.loads(partial[data["index"]])
        elif name == b"message_delta":
            message.update(data["delta"])
            message["usage"].update({k: v for k, v in data["usage"].items() if v is not None})
    return message


def assemble_chat(events: list[Any]) -> dict[str, Any]:
    """What the OpenAI SDK assembles from a stream."""
    message: dict[str, Any] = {"role": "assistant", "content": None}
    calls: dict[int, dict[str, Any]] = {}
    out: dict[str, Any] = {}
    for _, data in events:
        if data is None:
            continue
        out.update(id=data["id"], model=data["model"])
        if data.get("usage"):
            out["usage"] = data["usage"]
        for choice in data["choices"]:
            delta = choice["delta"]
            if delta.get("content"):
                message["content"] = (message["content"] or "") + delta["content"]
            for call in delta.get("tool_calls") or ():
                into = calls.setdefault(call["index"], {"type": "function", "function": {"arguments": ""}})
                if "id" in call:
                    into["id"], into["function"]["name"] = call["id"], call["function"]["name"]
                into["function"]["arguments"] += call["function"].get("arguments") or ""
            if choice["finish_reason"]:
                out["finish_reason"] = choice["finish_reason"]
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    out["message"] = message
    return out


@given(answers(), st.data())
@settings(max_examples=80, deadline=None)
async def test_a_chat_stream_translates_as_its_answer_does_however_it_is_cut(
    a: dict[str, Any], data: st.DataObject
) -> None:
    wire = chat_stream(data.draw, a)
    whole, usage = await client_events(TO_CHAT, wire, [])
    cut = sorted(data.draw(st.sets(st.integers(1, len(wire) - 1), max_size=12)))
    assert (await client_events(TO_CHAT, wire, cut))[0] == whole  # chunk invariance
    assert (await client_events(TO_CHAT, wire, list(range(1, len(wire)))))[0] == whole  # byte by byte
    streamed = assemble_messages(whole)
    answer = TO_CHAT.response(chat_body(a))
    assert streamed == answer
    assert answer["stop_reason"] == FINISH_TO_STOP[a["finish"]]
    # the usage the gateway settles: what it reads from the provider's own answer
    assert usage == OPENAI_CHAT.usage(chat_body(a)) == ANTHROPIC_MESSAGES.usage(answer)


@given(answers(), st.data())
@settings(max_examples=80, deadline=None)
async def test_a_messages_stream_translates_as_its_answer_does_however_it_is_cut(
    a: dict[str, Any], data: st.DataObject
) -> None:
    wire = messages_stream(data.draw, a)
    whole, usage = await client_events(TO_MESSAGES, wire, [])
    cut = sorted(data.draw(st.sets(st.integers(1, len(wire) - 1), max_size=12)))
    assert (await client_events(TO_MESSAGES, wire, cut))[0] == whole
    streamed = assemble_chat(whole)
    answer = TO_MESSAGES.response(messages_body(a))
    choice = answer["choices"][0]
    assert streamed["message"]["content"] == choice["message"]["content"]
    assert [
        (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
        for c in streamed["message"].get("tool_calls", [])
    ] == [
        (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
        for c in choice["message"].get("tool_calls", [])
    ]
    assert streamed["finish_reason"] == choice["finish_reason"] == STOP_TO_FINISH[STOPS[a["finish"]]]
    assert streamed["usage"] == answer["usage"]
    assert usage == ANTHROPIC_MESSAGES.usage(messages_body(a)) == OPENAI_CHAT.usage(answer)
    assert [n for n, _ in whole] == [None] * len(whole)  # chat events carry no names
    assert whole[-1] == (None, None)  # [DONE]


@given(answers())
@settings(max_examples=60, deadline=None)
def test_answers_round_trip(a: dict[str, Any]) -> None:
    chat = chat_body(a)
    back = TO_MESSAGES.response(TO_CHAT.response(chat))
    assert back["choices"][0]["message"]["content"] == chat["choices"][0]["message"]["content"]

    def calls(message: dict[str, Any]) -> list[Any]:
        return [
            (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
            for c in message.get("tool_calls", [])
        ]

    assert calls(back["choices"][0]["message"]) == calls(chat["choices"][0]["message"])
    assert back["usage"] == chat["usage"]
    assert back["choices"][0]["finish_reason"] == a["finish"]
    message = messages_body(a)
    again = TO_CHAT.response(TO_MESSAGES.response(message))
    assert again["content"] == message["content"] and again["usage"] == message["usage"]


def test_errors_keep_their_meaning() -> None:
    assert TO_CHAT.error(
        {"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}}, 429
    ) == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow down"},
    }
    anthropic = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}, "request_id": "r"}
    assert TO_MESSAGES.error(anthropic, 529) == {
        "error": {"message": "busy", "type": "overloaded_error", "param": None, "code": None}
    }
    assert TO_CHAT.error({"detail": "x"}, 500) is None and TO_MESSAGES.error({"error": "x"}, 500) is None


async def test_an_error_body_is_translated_and_a_non_json_one_left_alone() -> None:
    body = orjson.dumps({"error": {"message": "bad", "type": "invalid_request_error"}})
    resp = TranslatedResponse(Upstream(400, body, []), TO_CHAT, 1 << 20)
    assert orjson.loads(await resp.read(100)) == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "bad"},
    }
    resp = TranslatedResponse(Upstream(502, b"<html>bad gateway</html>", []), TO_MESSAGES, 1 << 20)
    assert await resp.read(100) == b"<html>bad gateway</html>"


async def test_in_stream_errors_and_bad_events() -> None:
    wire = encode(b'{"error": {"message": "boom", "type": "server_error"}}')
    events, _ = await client_events_partial(TO_CHAT, wire)
    assert events == [(b"error", {"type": "error", "error": {"type": "api_error", "message": "boom"}})]
    wire = encode(b'{"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}', b"error")
    events, _ = await client_events_partial(TO_MESSAGES, wire)
    assert events == [(None, {"error": {"message": "busy", "type": "overloaded_error", "param": None, "code": None}})]
    good = encode(orjson.dumps({"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": "hi"}}]}))
    with pytest.raises(UpstreamProtocolError):
        await client_events_partial(TO_CHAT, good + b"data: {not json\n\n")
    resp = TranslatedResponse(Upstream(200, good + b"data: {not json\n\n", []), TO_CHAT, 1 << 20)
    sent = []
    with pytest.raises(UpstreamProtocolError):
        async for piece in resp.chunks():
            sent.append(piece)
    assert b"message_start" in b"".join(sent) and b"hi" in b"".join(sent)  # what came before the bad event went out
    resp = TranslatedResponse(Upstream(200, b"data: " + b"x" * 100, []), TO_CHAT, 50)
    with pytest.raises(UpstreamProtocolError, match="larger than 50 bytes"):
        async for _ in resp.chunks():
            pass


async def client_events_partial(bridge: Any, wire: bytes) -> tuple[list[Any], Any]:
    resp = TranslatedResponse(Upstream(200, wire, []), bridge, 1 << 20)
    buffer = EventBuffer()
    events = []
    async for piece in resp.chunks():
        events += [(e.name, orjson.loads(e.data)) for e in buffer.feed(piece)]
    return events, None


async def test_usage_is_reported_only_when_the_provider_reported_it() -> None:
    """A translated answer always carries counts; when the provider gave none, the gateway must
    not settle from them (they would be zeros), so the response says so."""
    a = {"text": "hi", "tools": [], "finish": "stop", "fresh": 3, "cached": 0, "written": 0, "output": 1}
    body = chat_body(a)
    resp = TranslatedResponse(Upstream(200, orjson.dumps(body), []), TO_CHAT, 1 << 20)
    await resp.read()
    assert resp.usage_reported
    del body["usage"]
    resp = TranslatedResponse(Upstream(200, orjson.dumps(body), []), TO_CHAT, 1 << 20)
    assert orjson.loads(await resp.read())["usage"]["output_tokens"] == 0
    assert not resp.usage_reported
    chunk = {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]}
    for wire, reported in ((encode(orjson.dumps(chunk)) + b"data: [DONE]\n\n", False), (chat_stream_of(a), True)):
        resp = TranslatedResponse(Upstream(200, wire, []), TO_CHAT, 1 << 20)
        async for _ in resp.chunks():
            pass
        assert resp.usage_reported is reported


def chat_stream_of(a: dict[str, Any]) -> bytes:
    return chat_stream(lambda strategy: [], a)  # type: ignore[arg-type,return-value]


async def test_interleaved_tool_call_arguments_are_a_protocol_error() -> None:
    def chunk(calls: list[dict[str, Any]]) -> bytes:
        return encode(
            orjson.dumps({"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"tool_calls": calls}}]})
        )

    wire = chunk([{"index": 0, "id": "a", "function": {"name": "f", "arguments": '{"x'}}])
    wire += chunk([{"index": 1, "id": "b", "function": {"name": "g", "arguments": "{}"}}])
    wire += chunk([{"index": 0, "function": {"arguments": '": 1}'}}])
    with pytest.raises(UpstreamProtocolError, match="interleaved"):
        await client_events_partial(TO_CHAT, wire)
