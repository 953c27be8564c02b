"""OpenAI Responses API (`POST /v1/responses`).

Stream events carry `event: <type>` and `data: {"type": <type>, "sequence_number": n, …}`; usage
appears only in the terminal event (`response.completed`, `.incomplete` or `.failed`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from sluicegate.errors import GatewayError
from sluicegate.formats.base import StreamTap, Usage, WireFormat, count, parse_event_json
from sluicegate.formats.slots import TextSlot, content, string_at
from sluicegate.formats.sse import Event, encode

TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


def responses_usage(usage: Any) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    inp = usage.get("input_tokens_details") or {}
    out = usage.get("output_tokens_details") or {}
    return Usage(
        input_tokens=count(usage.get("input_tokens")),
        output_tokens=count(usage.get("output_tokens")),
        cache_read_tokens=count(inp.get("cached_tokens")) if isinstance(inp, dict) else 0,
        cache_write_tokens=count(inp.get("cache_write_tokens")) if isinstance(inp, dict) else 0,
        reasoning_tokens=count(out.get("reasoning_tokens")) if isinstance(out, dict) else 0,
    )


def _items(items: Any, where: str) -> Iterator[TextSlot]:
    """Input or output items: messages, function calls (JSON arguments) and their outputs."""
    for i, item in enumerate(items if isinstance(items, list) else ()):
        if not isinstance(item, dict):
            continue
        at = f"{where}[{i}]"
        kind = item.get("type", "message")
        if kind == "message":
            yield from content(item, "content", at)
        elif kind == "function_call":
            yield from string_at(item, "arguments", f"{at}.arguments", json=True)
        elif kind == "function_call_output":
            yield from content(item, "output", at)


class ResponsesTap(StreamTap):
    __slots__ = ("sequence",)

    def __init__(self, include_usage: bool = True) -> None:
        super().__init__(include_usage)
        self.sequence = 0

    def process(self, event: Event) -> bytes | None:
        data = parse_event_json(event)
        if isinstance(data, dict):
            seq = data.get("sequence_number")
            if isinstance(seq, int):
                self.sequence = seq
            if data.get("type") in TERMINAL:
                self.saw_end = True
                response = data.get("response")
                if isinstance(response, dict):
                    self.usage = responses_usage(response.get("usage")) or self.usage
        return event.raw + b"\n\n"


class OpenAIResponses(WireFormat):
    name = "openai_responses"
    path = "/v1/responses"
    family = "openai"

    def usage(self, body: Any) -> Usage | None:
        return responses_usage(body.get("usage")) if isinstance(body, dict) else None

    def request_slots(self, body: dict[str, Any]) -> Iterator[TextSlot]:
        yield from string_at(body, "instructions", "instructions")
        if isinstance(body.get("input"), str):
            yield from string_at(body, "input", "input")
        else:
            yield from _items(body.get("input"), "input")

    def response_slots(self, body: dict[str, Any]) -> Iterator[TextSlot]:
        yield from _items(body.get("output"), "output")

    def tap(self, body: dict[str, Any]) -> StreamTap:
        return ResponsesTap()

    def stream_error(self, err: GatewayError) -> bytes:
        # The SDK raises APIError on any event whose data has an "error" object.
        error = {"type": err.type, "code": err.code, "message": err.message, "param": err.param}
        data = {"type": "error", "code": err.code, "message": err.message, "param": err.param, "error": error}
        return encode(orjson.dumps({**data, "sequence_number": 0}), b"error")


OPENAI_RESPONSES = OpenAIResponses()
