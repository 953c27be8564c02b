"""Anthropic messages (`POST /v1/messages`) and token counting (`POST /v1/messages/count_tokens`).

Stream events carry `event: <name>` and `data: {"type": <name>, …}`: `message_start` holds the
input usage, each `message_delta` the cumulative output usage (replace, never add), and
`message_stop` ends the stream. Anthropic's `input_tokens` excludes cache reads and writes;
`Usage.input_tokens` includes them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from sluicegate.formats.base import StreamTap, TextFilter, Usage, WireFormat, count, parse_event_json
from sluicegate.formats.slots import TextSlot, content
from sluicegate.formats.sse import Event, encode


def anthropic_usage(usage: Any) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    read, write = count(usage.get("cache_read_input_tokens")), count(usage.get("cache_creation_input_tokens"))
    return Usage(
        input_tokens=count(usage.get("input_tokens")) + read + write,
        output_tokens=count(usage.get("output_tokens")),
        cache_read_tokens=read,
        cache_write_tokens=write,
    )


_DELTA_FIELD = {"text_delta": "text", "input_json_delta": "partial_json"}
_BLOCK_DELTA = {"text": "text_delta", "tool_use": "input_json_delta", "server_tool_use": "input_json_delta"}


class MessagesTap(StreamTap):
    """Merges the usage of `message_start` and every `message_delta` (later values replace earlier);
    with a filter, rewrites text and tool-input deltas per content block and emits what the filter
    held back as one more delta just before the block's `content_block_stop`."""

    __slots__ = ("_blocks", "_raw")

    def __init__(self, include_usage: bool = True, filter: TextFilter | None = None) -> None:
        super().__init__(include_usage, filter)
        self._raw: dict[str, Any] = {}
        self._blocks: dict[int, str] = {}  # block index -> the delta type its text arrives in

    def process(self, event: Event) -> bytes | None:
        data = parse_event_json(event)  # every event: a malformed one must not reach the client
        name = event.name
        if not isinstance(data, dict):
            return event.raw + b"\n\n"
        if name in (b"message_start", b"message_delta"):
            usage = data.get("usage") if name == b"message_delta" else (data.get("message") or {}).get("usage")
            if isinstance(usage, dict):
                self._raw.update((k, v) for k, v in usage.items() if v is not None)
                self.usage = anthropic_usage(self._raw)
        elif name == b"message_stop":
            self.saw_end = True
        elif self.filter is not None:
            return self._filter(event, data)
        return event.raw + b"\n\n"

    def _filter_for(self, kind: str | None) -> TextFilter:
        f = self.json_filter if kind == "input_json_delta" else self.filter
        assert f is not None
        return f

    def _filter(self, event: Event, data: dict[str, Any]) -> bytes:
        index = data.get("index", 0)
        if event.name == b"content_block_start":
            block = data.get("content_block")
            kind = _BLOCK_DELTA.get(block.get("type")) if isinstance(block, dict) else None
            if kind is not None:
                self._blocks[index] = kind
        elif event.name == b"content_block_delta":
            delta = data.get("delta")
            field = _DELTA_FIELD.get(delta.get("type")) if isinstance(delta, dict) else None
            text = delta.get(field) if field else None  # type: ignore[union-attr]
            if isinstance(text, str) and text:
                out = self._filter_for(self._blocks.get(index)).feed(index, text)
                if out != text:
                    delta[field] = out  # type: ignore[index]
                    return encode(orjson.dumps(data), event.name)
        elif event.name == b"content_block_stop":
            kind = self._blocks.pop(index, None)
            rest = self._filter_for(kind).flush(index) if kind else ""
            if rest:
                delta = {"type": kind, _DELTA_FIELD[kind]: rest}  # type: ignore[index]
                held = {"type": "content_block_delta", "index": index, "delta": delta}
                return encode(orjson.dumps(held), b"content_block_delta") + event.raw + b"\n\n"
        return event.raw + b"\n\n"


def messages_request_slots(body: dict[str, Any]) -> Iterator[TextSlot]:
    yield from content(body, "system", "")
    messages = body.get("messages")
    for i, message in enumerate(messages if isinstance(messages, list) else ()):
        if isinstance(message, dict):
            yield from content(message, "content", f"messages[{i}]")


class AnthropicMessages(WireFormat):
    name = "anthropic_messages"
    path = "/v1/messages"
    family = "anthropic"

    def request_slots(self, body: dict[str, Any]) -> Iterator[TextSlot]:
        return messages_request_slots(body)

    def response_slots(self, body: dict[str, Any]) -> Iterator[TextSlot]:
        return content(body, "content", "")

    def usage(self, body: Any) -> Usage | None:
        return anthropic_usage(body.get("usage")) if isinstance(body, dict) else None

    def tap(self, body: dict[str, Any], filter: TextFilter | None = None) -> StreamTap:
        return MessagesTap(filter=filter)


class AnthropicCountTokens(WireFormat):
    name = "anthropic_count_tokens"
    path = "/v1/messages/count_tokens"
    family = "anthropic"
    streams = False

    def request_slots(self, body: dict[str, Any]) -> Iterator[TextSlot]:
        return messages_request_slots(body)


ANTHROPIC_MESSAGES = AnthropicMessages()
ANTHROPIC_COUNT_TOKENS = AnthropicCountTokens()
