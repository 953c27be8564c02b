"""Text filters over streams: for every format, the text a client assembles from the rewritten
stream equals the filter's rewrite of the whole text, however the provider cut it."""

from __future__ import annotations

import json
from collections.abc import Hashable
from typing import Any

import orjson
import pytest

from sluicegate.formats import ANTHROPIC_MESSAGES, OPENAI_CHAT, OPENAI_RESPONSES, WireFormat
from sluicegate.formats.sse import EventBuffer
from sluicegate.mock.app import respond

WORD = "SECRET"
REPLY = "my SECRET is SECRET, SECRETS too; SECRE"
TOOLS_OPENAI = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
TOOLS_RESPONSES = [{"type": "function", "name": "f", "parameters": {}}]
TOOLS_ANTHROPIC = [{"name": "f", "input_schema": {"type": "object"}}]


class HoldBackFilter:
    """Replaces WORD by [X]; holds back any suffix that could still become WORD."""

    def __init__(self) -> None:
        self.pending: dict[Hashable, str] = {}

    def feed(self, key: Hashable, text: str) -> str:
        s = (self.pending.pop(key, "") + text).replace(WORD, "[X]")
        hold = next((n for n in range(min(len(WORD) - 1, len(s)), 0, -1) if WORD.startswith(s[-n:])), 0)
        self.pending[key] = s[len(s) - hold :]
        return s[: len(s) - hold]

    def flush(self, key: Hashable) -> str:
        return self.pending.pop(key, "")

    def text(self, text: str) -> str:
        return text.replace(WORD, "[X]")

    def whole(self, text: str) -> str:
        return text.replace(WORD, "[X]")


async def filtered_events(fmt: WireFormat, body: dict[str, Any], chunk_size: int) -> list[tuple[bytes | None, Any]]:
    body = {**body, "stream": True}
    headers = {"x-mock-reply": REPLY, "x-mock-chunk-size": str(chunk_size)}
    resp = await respond("POST", fmt.path, headers, orjson.dumps(body))
    tap = fmt.tap(body, HoldBackFilter())
    out = EventBuffer()
    events = []
    async for chunk in resp.body:
        for event in EventBuffer().feed(chunk) or []:
            data = tap.process(event)
            if data is not None:
                events += [(e.name, orjson.loads(e.data) if e.data != b"[DONE]" else None) for e in out.feed(data)]
    assert tap.saw_end and out.pending == b""
    return events


def expected() -> str:
    return REPLY.replace(WORD, "[X]")


@pytest.mark.parametrize("chunk_size", [1, 2, 5, 7, 100])
async def test_chat_content_and_tool_arguments(chunk_size: int) -> None:
    messages = [{"role": "user", "content": "x"}]
    events = await filtered_events(OPENAI_CHAT, {"model": "m", "messages": messages}, chunk_size)
    text = "".join(c["delta"].get("content") or "" for _, d in events if d for c in d["choices"])
    assert text == expected()
    assert WORD not in json.dumps([d for _, d in events])

    body = {"model": "m", "messages": messages, "tools": TOOLS_OPENAI}
    events = await filtered_events(OPENAI_CHAT, {**body, "model": "m@tool_call=1"}, chunk_size)
    args = "".join(
        t["function"].get("arguments") or ""
        for _, d in events
        if d
        for c in d["choices"]
        for t in c["delta"].get("tool_calls") or []
    )
    assert json.loads(args) == {"text": expected()}


@pytest.mark.parametrize("chunk_size", [1, 3, 6, 100])
async def test_anthropic_text_and_tool_input(chunk_size: int) -> None:
    base = {"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": "x"}]}
    events = await filtered_events(ANTHROPIC_MESSAGES, base, chunk_size)
    text = "".join(d["delta"].get("text", "") for n, d in events if n == b"content_block_delta")
    assert text == expected()
    stops = [i for i, (n, _) in enumerate(events) if n == b"content_block_stop"]
    assert stops and events[stops[0] - 1][0] == b"content_block_delta"  # held-back text before the stop

    events = await filtered_events(
        ANTHROPIC_MESSAGES, {**base, "model": "m@tool_call=1", "tools": TOOLS_ANTHROPIC}, chunk_size
    )
    partial = "".join(d["delta"].get("partial_json", "") for n, d in events if n == b"content_block_delta")
    assert json.loads(partial) == {"text": expected()}


@pytest.mark.parametrize("chunk_size", [1, 4, 100])
async def test_responses_text_done_and_completed(chunk_size: int) -> None:
    events = await filtered_events(OPENAI_RESPONSES, {"model": "m", "input": "x"}, chunk_size)
    by_type: dict[str, list[Any]] = {}
    for _, d in events:
        by_type.setdefault(d["type"], []).append(d)
    assert "".join(d["delta"] for d in by_type["response.output_text.delta"]) == expected()
    assert by_type["response.output_text.done"][0]["text"] == expected()
    assert by_type["response.content_part.done"][0]["part"]["text"] == expected()
    final = by_type["response.completed"][0]["response"]["output"][0]["content"][0]["text"]
    assert final == expected()
    assert WORD not in json.dumps(events, default=str)

    body = {"model": "m@tool_call=1", "input": "x", "tools": TOOLS_RESPONSES}
    events = await filtered_events(OPENAI_RESPONSES, body, chunk_size)
    deltas = [d for _, d in events if d["type"] == "response.function_call_arguments.delta"]
    assert json.loads("".join(d["delta"] for d in deltas)) == {"text": expected()}
    assert WORD not in json.dumps(events, default=str)


async def test_without_a_filter_events_pass_unchanged() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True}
    resp = await respond("POST", OPENAI_CHAT.path, {"x-mock-reply": REPLY}, orjson.dumps(body))
    tap = OPENAI_CHAT.tap(body)
    async for chunk in resp.body:
        for event in EventBuffer().feed(chunk):
            assert tap.process(event) == event.raw + b"\n\n"


def tapped(fmt: WireFormat, events: list[tuple[bytes | None, dict[str, Any] | str]]) -> list[tuple[bytes | None, Any]]:
    """`events` through `fmt`'s tap with the hold-back filter, as the client reads them."""
    tap = fmt.tap({"stream": True}, HoldBackFilter())
    out = EventBuffer()
    got = []
    for name, data in events:
        raw = data.encode() if isinstance(data, str) else orjson.dumps(data)
        for event in EventBuffer().feed((b"event: " + name + b"\n" if name else b"") + b"data: " + raw + b"\n\n"):
            sent = tap.process(event)
            if sent is not None:
                got += [(e.name, orjson.loads(e.data) if e.data != b"[DONE]" else None) for e in out.feed(sent)]
    return got


PIECES = ["my SEC", "RET is SE", "CRET, SECRETS too; SECRE"]


def test_chat_every_streamed_field_and_the_logprob_tokens() -> None:
    def chunk(delta: dict[str, Any], tokens: list[str], finish: str | None = None) -> dict[str, Any]:
        logprobs = {"content": [{"token": t, "logprob": 0.0, "bytes": list(t.encode())} for t in tokens]}
        return {"id": "c", "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]}

    events = [
        (None, chunk({"reasoning_content": p, "refusal": p, "audio": {"transcript": p}}, [p[:3], p[3:]]))
        for p in PIECES
    ]
    events += [(None, chunk({}, [], "stop")), (None, "[DONE]")]
    got = [c for _, c in tapped(OPENAI_CHAT, events) if c]
    deltas = [c["choices"][0]["delta"] for c in got]
    for field in ("reasoning_content", "refusal"):
        assert "".join(d.get(field) or "" for d in deltas) == expected()
    assert "".join((d.get("audio") or {}).get("transcript") or "" for d in deltas) == expected()
    tokens = [e for c in got for e in (c["choices"][0].get("logprobs") or {}).get("content") or []]
    assert "".join(e["token"] for e in tokens) == expected()
    assert all(e["bytes"] == list(e["token"].encode()) for e in tokens)


def test_anthropic_thinking_and_a_delta_kind_not_known_yet() -> None:
    events: list[tuple[bytes | None, dict[str, Any] | str]] = [
        (b"content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking"}})
    ]
    for p in PIECES:
        delta = {"type": "thinking_delta", "thinking": p}
        events.append((b"content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}))
        delta = {"type": "future_delta", "words": p}
        events.append((b"content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}))
    events.append((b"content_block_stop", {"type": "content_block_stop", "index": 0}))
    events.append((b"message_stop", {"type": "message_stop"}))
    got = tapped(ANTHROPIC_MESSAGES, events)
    deltas = [d["delta"] for n, d in got if n == b"content_block_delta"]
    assert "".join(d.get("thinking", "") for d in deltas) == expected()
    assert "".join(d.get("words", "") for d in deltas) == expected()
    assert {d["type"] for d in deltas} == {"thinking_delta", "future_delta"}  # held-back text keeps its kind
    assert [n for n, _ in got][-2:] == [b"content_block_stop", b"message_stop"]


def test_responses_reasoning_summary_and_its_done_event() -> None:
    ids = {"item_id": "rs_1", "output_index": 0, "summary_index": 0}
    kind = "response.reasoning_summary_text"
    events: list[tuple[bytes | None, dict[str, Any] | str]] = [
        (f"{kind}.delta".encode(), {"type": f"{kind}.delta", "delta": p, **ids}) for p in PIECES
    ]
    events.append((f"{kind}.done".encode(), {"type": f"{kind}.done", "text": "".join(PIECES), **ids}))
    got = tapped(OPENAI_RESPONSES, events)
    assert "".join(d["delta"] for _, d in got if d["type"] == f"{kind}.delta") == expected()
    assert got[-1][1]["text"] == expected() and got[-2][1]["type"] == f"{kind}.delta"  # the held-back text first


def test_responses_object_deltas_stream_per_field_and_anything_else_in_them_is_rewritten() -> None:
    ids = {"item_id": "sh_1", "output_index": 0, "command_index": 0}
    kind = "response.shell_call_output_content"
    events: list[tuple[bytes | None, dict[str, Any] | str]] = [
        (f"{kind}.delta".encode(), {"type": f"{kind}.delta", "delta": {"stdout": p, "meta": {"note": WORD}}, **ids})
        for p in PIECES
    ]
    events.append((f"{kind}.done".encode(), {"type": f"{kind}.done", "output": [{"stdout": "".join(PIECES)}], **ids}))
    got = tapped(OPENAI_RESPONSES, events)
    assert "".join(d["delta"].get("stdout", "") for _, d in got if d["type"] == f"{kind}.delta") == expected()
    assert WORD not in orjson.dumps([d for _, d in got]).decode()
