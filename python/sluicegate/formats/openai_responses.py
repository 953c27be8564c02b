"""OpenAI Responses API (`POST /v1/responses`).

Stream events carry `event: <type>` and `data: {"type": <type>, "sequence_number": n, …}`; usage
appears only in the terminal event (`response.completed`, `.incomplete` or `.failed`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from sluicegate.errors import GatewayError
from sluicegate.formats.base import StreamTap, TextFilter, Usage, WireFormat, count, parse_event_json
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


# Streamed text deltas, the event that ends each, and the field holding the full text there.
_DELTAS = {"response.output_text.delta": "text", "response.function_call_arguments.delta": "arguments"}
_DONES = {"response.output_text.done": "text", "response.function_call_arguments.done": "arguments"}
_JSON = frozenset({"response.function_call_arguments.delta", "response.function_call_arguments.done"})


class ResponsesTap(StreamTap):
    """Reads usage from the terminal event; with a filter, rewrites text and argument deltas, emits
    what the filter held back as one more delta before the `.done` event, and rewrites the full
    text that `.done`, `content_part.done`, `output_item.done` and the terminal event repeat."""

    __slots__ = ("_emitted", "sequence")

    def __init__(self, include_usage: bool = True, filter: TextFilter | None = None) -> None:
        super().__init__(include_usage, filter)
        self.sequence = 0
        self._emitted: dict[tuple[Any, ...], list[str]] = {}

    def process(self, event: Event) -> bytes | None:
        data = parse_event_json(event)
        if not isinstance(data, dict):
            return event.raw + b"\n\n"
        seq = data.get("sequence_number")
        if isinstance(seq, int):
            self.sequence = seq
        kind = data.get("type")
        if kind in TERMINAL:
            self.saw_end = True
            response = data.get("response")
            if isinstance(response, dict):
                self.usage = responses_usage(response.get("usage")) or self.usage
        if self.filter is not None:
            return self._filter(event, data, kind)
        return event.raw + b"\n\n"

    def _filter(self, event: Event, data: dict[str, Any], kind: Any) -> bytes:
        f = self.json_filter if kind in _JSON else self.filter
        assert f is not None
        key = (data.get("item_id"), data.get("content_index"))
        if kind in _DELTAS:
            text = data.get("delta")
            if isinstance(text, str) and text:
                out = f.feed(key, text)
                self._emitted.setdefault(key, []).append(out)
                if out != text:
                    data["delta"] = out
                    return encode(orjson.dumps(data), event.name)
            return event.raw + b"\n\n"
        if kind in _DONES:
            rest = f.flush(key)
            field = _DONES[kind]
            data[field] = "".join(self._emitted.pop(key, ())) + rest
            done = encode(orjson.dumps(data), event.name)
            if not rest:
                return done
            delta_kind = kind.removesuffix(".done") + ".delta"
            held = {k: v for k, v in data.items() if k not in (field, "type")}
            held.update(type=delta_kind, delta=rest)
            return encode(orjson.dumps(held), delta_kind.encode()) + done
        slots: Iterator[TextSlot]
        if kind == "response.content_part.done":
            slots = string_at(data.get("part"), "text", "part.text")
        elif kind == "response.output_item.done":
            slots = _items([data.get("item")], "item")
        elif kind in TERMINAL and isinstance(data.get("response"), dict):
            slots = _items(data["response"].get("output"), "response.output")
        else:
            return event.raw + b"\n\n"
        changed = False
        for slot in slots:
            whole = self.json_filter if slot.json else self.filter
            assert whole is not None
            out = whole.whole(slot.text)
            if out != slot.text:
                slot.set(out)
                changed = True
        return encode(orjson.dumps(data), event.name) if changed else event.raw + b"\n\n"


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

    def tap(self, body: dict[str, Any], filter: TextFilter | None = None) -> StreamTap:
        return ResponsesTap(filter=filter)

    def stream_error(self, err: GatewayError) -> bytes:
        # The SDK raises APIError on any event whose data has an "error" object.
        error = {"type": err.type, "code": err.code, "message": err.message, "param": err.param}
        data = {"type": "error", "code": err.code, "message": err.message, "param": err.param, "error": error}
        return encode(orjson.dumps({**data, "sequence_number": 0}), b"error")


OPENAI_RESPONSES = OpenAIResponses()
