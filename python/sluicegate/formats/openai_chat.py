"""OpenAI chat completions (`POST /v1/chat/completions`).

Streams are `data: <chunk>` events ending with `data: [DONE]`. sluicegate always asks upstream
for `stream_options.include_usage`, so the final usage chunk (`choices: []`) always arrives; it is
dropped again when the client did not ask for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from sluicegate.formats.base import StreamTap, TextFilter, Usage, WireFormat, count, parse_event_json
from sluicegate.formats.slots import TextSlot, content, string_at
from sluicegate.formats.sse import Event, encode


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
    __slots__ = ("_tools",)

    def __init__(self, include_usage: bool = True, filter: TextFilter | None = None) -> None:
        super().__init__(include_usage, filter)
        self._tools: dict[int, set[int]] = {}  # choice index -> tool-call indexes seen

    def process(self, event: Event) -> bytes | None:
        if event.data == b"[DONE]":
            self.saw_end = True
            return event.raw + b"\n\n"
        chunk = parse_event_json(event)
        if not isinstance(chunk, dict):
            return event.raw + b"\n\n"
        if chunk.get("usage") is not None:
            self.usage = chat_usage(chunk["usage"]) or self.usage
            if not self.include_usage and not chunk.get("choices"):
                return None
        if self.filter is not None and isinstance(chunk.get("choices"), list) and self._filter(chunk["choices"]):
            return encode(orjson.dumps(chunk))
        return event.raw + b"\n\n"

    def _filter(self, choices: list[Any]) -> bool:
        """Pass each choice's content and tool-call arguments through the filter; at a choice's
        finish, append what the filter held back to that same chunk. True if anything changed."""
        f, jf = self.filter, self.json_filter
        assert f is not None and jf is not None
        changed = False
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            i = choice.get("index", 0)
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                delta = choice["delta"] = {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                out = f.feed(("content", i), text)
                changed |= out != text
                delta["content"] = out
            calls = delta.get("tool_calls")
            for call in calls if isinstance(calls, list) else ():
                function = call.get("function") if isinstance(call, dict) else None
                args = function.get("arguments") if isinstance(function, dict) else None
                if isinstance(args, str) and args:
                    k = call.get("index", 0)
                    self._tools.setdefault(i, set()).add(k)
                    out = jf.feed(("tool", i, k), args)
                    changed |= out != args
                    function["arguments"] = out  # type: ignore[index]
            if choice.get("finish_reason") is not None:
                rest = f.flush(("content", i))
                if rest:
                    delta["content"] = (delta.get("content") or "") + rest
                    changed = True
                for k in sorted(self._tools.pop(i, ())):
                    rest = jf.flush(("tool", i, k))
                    if rest:
                        delta.setdefault("tool_calls", []).append({"index": k, "function": {"arguments": rest}})
                        changed = True
        return changed


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

    def tap(self, body: dict[str, Any], filter: TextFilter | None = None) -> StreamTap:
        return ChatTap(wants_usage(body), filter)


OPENAI_CHAT = OpenAIChat()
