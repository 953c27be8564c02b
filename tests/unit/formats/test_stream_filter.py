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
