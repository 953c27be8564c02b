"""Anthropic messages (`POST /v1/messages`) and token counting (`POST /v1/messages/count_tokens`).

Stream events carry `event: <name>` and `data: {"type": <name>, …}`: `message_start` holds the
input usage, each `message_delta` the cumulative output usage (replace, never add), and
`message_stop` ends the stream. Anthropic's `input_tokens` excludes cache reads and writes;
`Usage.input_tokens` includes them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sluicegate.formats.base import StreamTap, Usage, WireFormat, count, parse_event_json
from sluicegate.formats.slots import TextSlot, content
from sluicegate.formats.sse import Event


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


class MessagesTap(StreamTap):
    """Merges the usage of `message_start` and every `message_delta` (later values replace earlier)."""

    __slots__ = ("_raw",)

    def __init__(self, include_usage: bool = True) -> None:
        super().__init__(include_usage)
        self._raw: dict[str, Any] = {}

    def process(self, event: Event) -> bytes | None:
        data = parse_event_json(event)  # every event: a malformed one must not reach the client
        name = event.name
        if isinstance(data, dict) and name in (b"message_start", b"message_delta"):
            usage = data.get("usage") if name == b"message_delta" else (data.get("message") or {}).get("usage")
            if isinstance(usage, dict):
                self._raw.update((k, v) for k, v in usage.items() if v is not None)
                self.usage = anthropic_usage(self._raw)
        elif name == b"message_stop":
            self.saw_end = True
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

    def tap(self, body: dict[str, Any]) -> StreamTap:
        return MessagesTap()


class AnthropicCountTokens(WireFormat):
    name = "anthropic_count_tokens"
    path = "/v1/messages/count_tokens"
    family = "anthropic"
    streams = False

    def request_slots(self, body: dict[str, Any]) -> Iterator[TextSlot]:
        return messages_request_slots(body)


ANTHROPIC_MESSAGES = AnthropicMessages()
ANTHROPIC_COUNT_TOKENS = AnthropicCountTokens()
