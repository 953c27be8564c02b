"""OpenAI chat completions (`POST /v1/chat/completions`).

Streams are `data: <chunk>` events ending with `data: [DONE]`. sluicegate always asks upstream
for `stream_options.include_usage`, so the final usage chunk (`choices: []`) always arrives; it is
dropped again when the client did not ask for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sluicegate.formats.base import StreamTap, Usage, WireFormat, count, parse_event_json
from sluicegate.formats.slots import TextSlot, content, string_at
from sluicegate.formats.sse import Event


def chat_usage(usage: Any) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens_details") or {}
    completion = usage.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=count(usage.get("prompt_tokens")),
        output_tokens=count(usage.get("completion_tokens")),
        cache_read_tokens=count(prompt.get("cached_tokens")) if isinstance(prompt, dict) else 0,
        cache_write_tokens=count(prompt.get("cache_write_tokens")) if isinstance(prompt, dict) else 0,
        reasoning_tokens=count(completion.get("reasoning_tokens")) if isinstance(completion, dict) else 0,
    )


def wants_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _message_slots(message: dict[str, Any], where: str) -> Iterator[TextSlot]:
    yield from content(message, "content", where)
    yield from string_at(message, "refusal", f"{where}.refusal")
    calls = message.get("tool_calls")
    for j, call in enumerate(calls if isinstance(calls, list) else ()):
        function = call.get("function") if isinstance(call, dict) else None
        yield from string_at(function, "arguments", f"{where}.tool_calls[{j}].function.arguments", json=True)


class ChatTap(StreamTap):
    __slots__ = ()

    def process(self, event: Event) -> bytes | None:
        if event.data == b"[DONE]":
            self.saw_end = True
            return event.raw + b"\n\n"
        chunk = parse_event_json(event)
        if isinstance(chunk, dict) and chunk.get("usage") is not None:
            self.usage = chat_usage(chunk["usage"]) or self.usage
            if not self.include_usage and not chunk.get("choices"):
                return None
        return event.raw + b"\n\n"


class OpenAIChat(WireFormat):
    name = "openai_chat"
    path = "/v1/chat/completions"
    family = "openai"

    def prepare(self, body: dict[str, Any]) -> bool:
        if body.get("stream") is not True or wants_usage(body):
            return False
        options = body.get("stream_options")
        if options is not None and not isinstance(options, dict):
            return False  # the provider will refuse it with its own message
        body["stream_options"] = {**(options or {}), "include_usage": True}
        return True

    def usage(self, body: Any) -> Usage | None:
        return chat_usage(body.get("usage")) if isinstance(body, dict) else None

    def request_slots(self, body: dict[str, Any]) -> Iterator[TextSlot]:
        messages = body.get("messages")
        for i, message in enumerate(messages if isinstance(messages, list) else ()):
            if isinstance(message, dict):
                yield from _message_slots(message, f"messages[{i}]")

    def response_slots(self, body: dict[str, Any]) -> Iterator[TextSlot]:
        choices = body.get("choices")
        for i, choice in enumerate(choices if isinstance(choices, list) else ()):
            message = choice.get("message") if isinstance(choice, dict) else None
            if isinstance(message, dict):
                yield from _message_slots(message, f"choices[{i}].message")

    def tap(self, body: dict[str, Any]) -> StreamTap:
        return ChatTap(include_usage=wants_usage(body))


OPENAI_CHAT = OpenAIChat()
