"""Streams translated event by event: OpenAI chat chunks as Anthropic Messages events, and the
reverse, as they arrive (nothing is buffered beyond the event being read).

A `StreamTranslator` takes the provider's events (`feed`) and returns the client's, as wire
bytes. `TranslatedResponse` wraps a provider's response so that the relay reads the client's
format from it: its stream as translated SSE bytes (the relay's own tap then reads usage and
redacts the text the client receives), its body and error body translated whole. The provider's
bytes are split into events by the same `EventBuffer` the relay uses, so a stream cut anywhere
translates to the same events.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable
from typing import Any, Protocol

import orjson

from sluicegate.errors import UpstreamProtocolError
from sluicegate.formats.base import parse_event_json
from sluicegate.formats.sse import Event, EventBuffer, encode
from sluicegate.formats.translate import (
    FINISH_TO_STOP,
    STOP_TO_FINISH,
    Bridge,
    chat_usage_as_messages,
    messages_error_as_chat,
    messages_usage_as_chat,
)

_DONE = b"data: [DONE]\n\n"


class StreamTranslator:
    """Reads the provider's events one by one and writes the client's; `usage_seen` once the
    provider reported usage (without it, the client's counts are not the provider's)."""

    usage_seen = False

    def feed(self, event: Event) -> list[bytes]:
        """The client's events (wire bytes, each ending in a blank line) for one provider event."""
        raise NotImplementedError


def _event(name: str, data: dict[str, Any]) -> bytes:
    return encode(orjson.dumps(data), name.encode())


def _stream_error_type(error: dict[str, Any]) -> str:
    """An Anthropic error type for an OpenAI in-stream error (its status is long gone: 200)."""
    said = f"{error.get('type')} {error.get('code')}"
    if "rate_limit" in said:
        return "rate_limit_error"
    if "overloaded" in said:
        return "overloaded_error"
    if "invalid_request" in said:
        return "invalid_request_error"
    return "api_error"


class ChatToMessagesStream(StreamTranslator):
    """OpenAI chat chunks as Anthropic Messages events.

    The first chunk opens the message (`message_start`, its input usage still zero: a chat stream
    tells usage only at its end); content and each tool call become content blocks, one open at a
    time, each closed when the next begins or the choice finishes; the usage chunk's counts and
    the finish reason go out in `message_delta` (the Anthropic SDK takes its input counts from it
    too), at `[DONE]`, followed by `message_stop`.
    """

    __slots__ = ("_blocks", "_open", "_started", "_stop", "_tools", "_usage", "usage_seen")

    def __init__(self) -> None:
        self._started = False
        self._blocks = 0  # content blocks opened so far
        self._open: int | None = None  # the open block's index
        self._tools: dict[Any, int] = {}  # a chat tool call's index -> its block index
        self._stop: str | None = None
        self._usage: dict[str, int] = chat_usage_as_messages(None)
        self.usage_seen = False

    def feed(self, event: Event) -> list[bytes]:
        out: list[bytes] = []
        if event.data == b"[DONE]":
            if not self._started:
                out.append(self._start({}))
            self._close(out)
            delta = {"stop_reason": self._stop or "end_turn", "stop_sequence": None}
            out.append(_event("message_delta", {"type": "message_delta", "delta": delta, "usage": self._usage}))
            out.append(_event("message_stop", {"type": "message_stop"}))
            return out
        chunk = parse_event_json(event)
        if not isinstance(chunk, dict):
            raise UpstreamProtocolError("the provider sent a stream event that is not an object")
        error = chunk.get("error")
        if isinstance(error, dict):
            message = error.get("message") if isinstance(error.get("message"), str) else ""
            body = {"type": "error", "error": {"type": _stream_error_type(error), "message": message}}
            return [_event("error", body)]
        if not self._started:
            out.append(self._start(chunk))
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                raise UpstreamProtocolError("the provider sent a stream with more than one choice")
            delta = choice.get("delta")
            if isinstance(delta, dict):
                for key in ("content", "refusal"):
                    text = delta.get(key)
                    if isinstance(text, str) and text:
                        self._text(text, out)
                calls = delta.get("tool_calls")
                for call in calls if isinstance(calls, list) else ():
                    if isinstance(call, dict):
                        self._tool(call, out)
            finish = choice.get("finish_reason")
            if finish is not None:
                self._close(out)
                self._stop = FINISH_TO_STOP.get(finish, "end_turn")
        if isinstance(chunk.get("usage"), dict):
            self._usage = chat_usage_as_messages(chunk["usage"])
            self.usage_seen = True
        return out

    def _start(self, chunk: dict[str, Any]) -> bytes:
        self._started = True
        message = {
            "id": chunk.get("id"),
            "type": "message",
            "role": "assistant",
            "model": chunk.get("model"),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": self._usage,
        }
        return _event("message_start", {"type": "message_start", "message": message})

    def _open_block(self, block: dict[str, Any], out: list[bytes]) -> int:
        self._close(out)
        index = self._open = self._blocks
        self._blocks += 1
        start = {"type": "content_block_start", "index": index, "content_block": block}
        out.append(_event("content_block_start", start))
        return index

    def _close(self, out: list[bytes]) -> None:
        if self._open is not None:
            out.append(_event("content_block_stop", {"type": "content_block_stop", "index": self._open}))
            self._open = None

    def _text(self, text: str, out: list[bytes]) -> None:
        index = self._open
        if index is None or index in self._tools.values():
            index = self._open_block({"type": "text", "text": ""}, out)
        delta = {"type": "text_delta", "text": text}
        out.append(_event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}))

    def _tool(self, call: dict[str, Any], out: list[bytes]) -> None:
        key = call.get("index", 0)
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        index = self._tools.get(key)
        if index is None:
            tool_id = call.get("id") if isinstance(call.get("id"), str) else f"toolu_{self._blocks}"
            block = {"type": "tool_use", "id": tool_id, "name": function.get("name"), "input": {}}
            index = self._tools[key] = self._open_block(block, out)
        elif index != self._open:  # Messages blocks follow one another: a closed one cannot grow
            raise UpstreamProtocolError("the provider interleaved the arguments of parallel tool calls")
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            delta = {"type": "input_json_delta", "partial_json": arguments}
            out.append(_event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}))


class MessagesToChatStream(StreamTranslator):
    """Anthropic Messages events as OpenAI chat chunks.

    `message_start` becomes the role chunk, text deltas content chunks, each tool_use block a tool
    call (its id and name in the first fragment, then its argument JSON), `message_delta` the
    finish chunk, and `message_stop` the usage chunk (`choices: []`, which the client's tap drops
    unless it asked for usage) and `[DONE]`. Thinking blocks (never asked for: thinking is
    refused in translation) and pings are not relayed.
    """

    __slots__ = ("_args", "_head", "_tools", "_usage", "usage_seen")

    def __init__(self, created: int | None = None) -> None:
        created = int(time.time()) if created is None else created
        self._head: dict[str, Any] = {"id": None, "object": "chat.completion.chunk", "created": created, "model": None}
        self._tools: dict[Any, int] = {}  # a tool_use block's index -> its tool call index
        self._args: dict[Any, bool] = {}  # a tool_use block's index -> whether arguments were sent
        self._usage: dict[str, Any] = {}
        self.usage_seen = False

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return encode(orjson.dumps({**self._head, "choices": [choice]}))

    def feed(self, event: Event) -> list[bytes]:
        name = event.name
        if name == b"ping":
            return []
        data = parse_event_json(event)
        if not isinstance(data, dict):
            raise UpstreamProtocolError("the provider sent a stream event that is not an object")
        kind = data.get("type") if name is None else name.decode("latin-1")
        if kind == "message_start":
            message = data.get("message")
            message = message if isinstance(message, dict) else {}
            self._head["id"], self._head["model"] = message.get("id"), message.get("model")
            self._merge(message.get("usage"))
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = data.get("content_block")
            if isinstance(block, dict) and block.get("type") == "tool_use":
                index = data.get("index")
                call_index = self._tools[index] = len(self._tools)
                initial = block.get("input")
                arguments = orjson.dumps(initial).decode() if isinstance(initial, dict) and initial else ""
                self._args[index] = bool(arguments)
                function = {"name": block.get("name"), "arguments": arguments}
                call = {"index": call_index, "id": block.get("id"), "type": "function", "function": function}
                return [self._chunk({"tool_calls": [call]})]
            if isinstance(block, dict) and block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if kind == "content_block_delta":
            delta = data.get("delta")
            delta = delta if isinstance(delta, dict) else {}
            if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
                return [self._chunk({"content": delta["text"]})]
            index = data.get("index")
            if delta.get("type") == "input_json_delta" and index in self._tools:
                piece = delta.get("partial_json")
                if not isinstance(piece, str) or not piece:
                    return []
                self._args[index] = True
                return [self._chunk({"tool_calls": [{"index": self._tools[index], "function": {"arguments": piece}}]})]
            return []
        if kind == "content_block_stop":
            index = data.get("index")
            if index in self._tools and not self._args[index]:  # a tool called with no input: `{}`
                self._args[index] = True
                return [self._chunk({"tool_calls": [{"index": self._tools[index], "function": {"arguments": "{}"}}]})]
            return []
        if kind == "message_delta":
            self._merge(data.get("usage"))
            delta = data.get("delta")
            stop = delta.get("stop_reason") if isinstance(delta, dict) else None
            if stop is None:
                return []
            return [self._chunk({}, STOP_TO_FINISH.get(stop, "stop"))]
        if kind == "message_stop":
            usage = encode(orjson.dumps({**self._head, "choices": [], "usage": messages_usage_as_chat(self._usage)}))
            return [usage, _DONE]
        if kind == "error":
            return [encode(orjson.dumps(messages_error_as_chat(data.get("error"))))]
        return []

    def _merge(self, usage: Any) -> None:
        """Anthropic usage is cumulative: later values replace earlier ones."""
        if isinstance(usage, dict):
            self._usage.update((k, v) for k, v in usage.items() if v is not None)
            self.usage_seen = True


class _Response(Protocol):
    status: int
    content_type: str

    def header(self, name: str) -> str | None: ...

    def header_items(self) -> Iterable[tuple[str, str]]: ...

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def read(self, limit: int | None = None) -> bytes: ...

    def close(self) -> None: ...


def _header_map(pairs: list[tuple[str, str]]) -> dict[str, dict[str, str]]:
    return {"openai": {o: a for o, a in pairs}, "anthropic": {a: o for o, a in pairs}}


# A provider's headers a client reads, by the provider's family, to the name the other family gives
# the same figure: the request id, and the limits and remainders of requests and tokens. Their
# resets are left out (OpenAI writes a duration, Anthropic a time), and so is what the other family
# has no name for (Anthropic's input/output token limits, OpenAI's project headers).
HEADER_MAP = _header_map(
    [
        ("x-request-id", "request-id"),
        ("x-ratelimit-limit-requests", "anthropic-ratelimit-requests-limit"),
        ("x-ratelimit-remaining-requests", "anthropic-ratelimit-requests-remaining"),
        ("x-ratelimit-limit-tokens", "anthropic-ratelimit-tokens-limit"),
        ("x-ratelimit-remaining-tokens", "anthropic-ratelimit-tokens-remaining"),
    ]
)


class TranslatedResponse:
    """A provider's response as the client's format shows it (see the module doc).

    Arguments:
        resp: the provider's response.
        bridge: the translation the request went through.
        max_event: the largest provider event allowed (bytes), ended or still arriving.
    """

    __slots__ = ("_bridge", "_max_event", "_resp", "_translator", "content_type", "status", "usage_in_body")

    def __init__(self, resp: _Response, bridge: Bridge, max_event: int) -> None:
        self._resp = resp
        self._bridge = bridge
        self._max_event = max_event
        self.status = resp.status
        self.content_type = resp.content_type
        self._translator: StreamTranslator | None = None
        self.usage_in_body = False

    @property
    def usage_reported(self) -> bool:
        """Whether the provider reported usage in what was read (a translated answer always has
        counts; when the provider gave none, they are not to be settled from)."""
        return self.usage_in_body or (self._translator is not None and self._translator.usage_seen)

    def header(self, name: str) -> str | None:
        return self._resp.header(name)

    def header_items(self) -> Iterable[tuple[str, str]]:
        """The provider's headers that have a direct equivalent in the client's family, under that
        family's names (`HEADER_MAP`); the others are left out."""
        names = HEADER_MAP[self._bridge.target.family]
        return [(names[name], value) for name, value in self._resp.header_items() if name in names]

    def close(self) -> None:
        self._resp.close()

    async def read(self, limit: int | None = None) -> bytes:
        """The body, translated when it is JSON (a body that is not stays as it is: the relay
        answers for it)."""
        body = await self._resp.read(limit)
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body
        if self.status >= 400:
            error = self._bridge.error(parsed, self.status)
            return body if error is None else orjson.dumps(error)
        self.usage_in_body = isinstance(parsed, dict) and isinstance(parsed.get("usage"), dict)
        return orjson.dumps(self._bridge.response(parsed))

    async def chunks(self) -> AsyncIterator[bytes]:
        """The stream as the client's SSE bytes, a batch for each piece the provider sends.

        Raises:
            UpstreamProtocolError: a provider event is malformed or larger than `max_event`.
        """
        translator = self._translator = self._bridge.stream()
        events = EventBuffer()
        limit = self._max_event
        async for piece in self._resp.chunks():
            out: list[bytes] = []
            failed: UpstreamProtocolError | None = None
            try:
                for event in events.feed(piece):
                    if len(event.raw) > limit:
                        raise _too_large(limit)
                    out += translator.feed(event)
                if events.pending_size > limit:
                    raise _too_large(limit)
            except UpstreamProtocolError as err:  # the events before the bad one still go out
                failed = err
            if out:
                yield b"".join(out)
            if failed is not None:
                raise failed


def _too_large(limit: int) -> UpstreamProtocolError:
    return UpstreamProtocolError(
        f"the provider sent an event larger than {limit} bytes (upstream.max_event_bytes)",
        code="upstream_event_too_large",
    )
