"""Anthropic messages (`POST /v1/messages`) and token counting (`POST /v1/messages/count_tokens`).

Stream events carry `event: <name>` and `data: {"type": <name>, …}`: `message_start` holds the
input usage, each `message_delta` the cumulative output usage (replace, never add), and
`message_stop` ends the stream. Anthropic's `input_tokens` excludes cache reads and writes;
`Usage.input_tokens` includes them.
"""

from __future__ import annotations

from typing import Any

import orjson

from sluicegate.formats.base import (
    StreamOutput,
    StreamTap,
    TextFilter,
    Usage,
    WireFormat,
    count,
    order,
    parse_event_json,
    stream_key,
)
from sluicegate.formats.slots import Field, Shape, text_fields
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


# Where text is not (see `slots.Shape`): every other string is scanned, unknown fields and
# everything under tool inputs, input schemas and metadata too. Content blocks nest (tool results,
# search results and documents hold blocks), so one kind serves them all.
_CACHE = Shape({"type", "ttl"})
_SOURCE = Shape(
    {"type", "media_type", "file_id"},
    {"cache_control": _CACHE},
    urls={"url"},
    variants={"base64": {"data"}},  # a "text" source's data is text
)
_CITATION = Shape({"type", "encrypted_index", "file_id"})
BLOCK = Shape(
    # signatures, encrypted search results and encrypted tool output are opaque to everyone but the provider
    {"type", "id", "tool_use_id", "tool_id", "signature", "encrypted_content", "encrypted_stdout", "file_id"},
    {"source": _SOURCE, "citations": _CITATION, "cache_control": _CACHE},
    variants={"redacted_thinking": {"data"}},  # encrypted thinking
)
BLOCK.kids["content"] = BLOCK
_SOURCE.kids["content"] = BLOCK
_MESSAGE = Shape({"role"}, {"content": BLOCK})
REQUEST = Shape({"model"}, {"messages": _MESSAGE, "system": BLOCK, "tools": Shape({"type"}, {"cache_control": _CACHE})})
_CONTAINER = Shape({"id", "expires_at"}, {"skills": Shape({"type", "skill_id"})})
RESPONSE = Shape({"id", "type", "role", "model", "stop_reason"}, {"content": BLOCK, "container": _CONTAINER})
DELTA = Shape({"type", "signature", "stop_reason"}, {"citation": _CITATION, "container": _CONTAINER})
EVENT = Shape({"type"}, {"message": RESPONSE, "content_block": BLOCK, "delta": DELTA, "error": Shape({"type"})})
_JSON_DELTAS = frozenset({"partial_json"})


class MessagesOutput(StreamOutput):
    """What a client assembles from a Messages stream: the text of each block, or a tool use's id,
    name and input."""

    __slots__ = ("uses",)

    def __init__(self) -> None:
        super().__init__()
        self.uses: dict[Any, dict[str, Any]] = {}  # block index -> its tool_use start (type, id, name)

    def add(self, data: dict[str, Any]) -> None:
        if data.get("type") == "content_block_start":
            block = data.get("content_block")
            if type(block) is dict and block.get("type") in ("tool_use", "server_tool_use"):
                shown = {k: block[k] for k in ("type", "id", "name") if type(block.get(k)) is str}
                self.uses[stream_key(data.get("index", 0))[0]] = shown
            return
        if data.get("type") != "content_block_delta":
            return
        delta = data.get("delta")
        piece = delta.get("text", delta.get("partial_json")) if type(delta) is dict else None
        if type(piece) is str:
            self.texts.setdefault(stream_key(data.get("index", 0))[0], []).append(piece)

    def result(self) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        for index in sorted({*self.texts, *self.uses}, key=order):
            text = "".join(self.texts.get(index, ()))
            use = self.uses.get(index)
            if use is None:
                content.append({"type": "text", "text": text})
                continue
            try:
                given: Any = orjson.loads(text) if text else {}
            except orjson.JSONDecodeError:
                given = text  # as streamed, when the stream ended inside it
            content.append({**use, "input": given})
        return {"content": content}


class MessagesTap(StreamTap):
    """Merges the usage of `message_start` and every `message_delta` (later values replace earlier).

    With a filter, every string field of a `content_block_delta` (text, thinking, tool input JSON,
    and any delta kind not known yet) streams through it, one stream per block and field, and what
    a stream held back is emitted as one more delta of its kind just before the block's
    `content_block_stop`. Every other string of every event (a block's start, citations, a
    message's stop sequence, errors) is rewritten whole."""

    __slots__ = ("_open", "_raw")

    def __init__(self, include_usage: bool = True, filter: TextFilter | None = None) -> None:
        super().__init__(include_usage, filter)
        self._raw: dict[str, Any] = {}
        self._open: dict[Any, dict[str, Any]] = {}  # block index -> field -> the delta type it came in

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
        out = self._filter(event, data) if self.filter is not None else event.raw + b"\n\n"
        if self.transcript is not None:
            self.transcript.add(data)  # as sent: the filter rewrote it in place (held text went first)
        return out

    def _filter(self, event: Event, data: dict[str, Any]) -> bytes:
        index = stream_key(data.get("index", 0))[0]
        delta = data.get("delta")
        if event.name == b"content_block_delta" and isinstance(delta, dict):
            changed = self._delta(index, delta)
            data["delta"] = None
            changed |= self.rewrite(text_fields(data, EVENT))
            data["delta"] = delta
        elif event.name == b"content_block_stop":
            held = b"".join(self._flush(index))
            if self.rewrite(text_fields(data, EVENT)):
                return held + encode(orjson.dumps(data), event.name)
            return held + event.raw + b"\n\n"
        else:
            changed = self.rewrite(text_fields(data, EVENT))
        return encode(orjson.dumps(data), event.name) if changed else event.raw + b"\n\n"

    def _delta(self, index: Any, delta: dict[str, Any]) -> bool:
        f, jf = self.filter, self.json_filter
        assert f is not None and jf is not None
        opened = self._open.setdefault(index, {})
        whole: list[Field] = []
        changed = False
        for field in text_fields(delta, DELTA):
            if type(field) is not tuple or field[0] is not delta:  # a citation, a number: complete, not streamed
                whole.append(field)
                continue
            name = field[1]
            text = delta[name]
            out = (jf if name in _JSON_DELTAS else f).feed((index, name), text)
            opened[name] = delta.get("type")  # type: ignore[index]
            if out != text:
                delta[name] = out
                changed = True
        return self.rewrite(whole) or changed

    def _flush(self, index: Any) -> list[bytes]:
        """What the block's streams held back, as one more delta of each stream's kind."""
        f, jf = self.filter, self.json_filter
        assert f is not None and jf is not None
        out = []
        for field, kind in self._open.pop(index, {}).items():
            rest = (jf if field in _JSON_DELTAS else f).flush((index, field))
            if rest:
                held = {"type": "content_block_delta", "index": index, "delta": {"type": kind, field: rest}}
                out.append(encode(orjson.dumps(held), b"content_block_delta"))
                if self.transcript is not None:
                    self.transcript.add(held)
        return out


class AnthropicMessages(WireFormat):
    name = "anthropic_messages"
    path = "/v1/messages"
    family = "anthropic"
    output_limits = ("max_tokens",)
    field_synonyms = {
        "max_completion_tokens": ("max_tokens",),
        "max_output_tokens": ("max_tokens",),
        "stop": ("stop_sequences",),
    }

    request_shape = REQUEST
    response_shape = RESPONSE

    def usage(self, body: Any) -> Usage | None:
        return anthropic_usage(body.get("usage")) if isinstance(body, dict) else None

    def stream_output(self) -> StreamOutput:
        return MessagesOutput()

    def tap(self, body: dict[str, Any], filter: TextFilter | None = None) -> StreamTap:
        return MessagesTap(filter=filter)


class AnthropicCountTokens(WireFormat):
    name = "anthropic_count_tokens"
    path = "/v1/messages/count_tokens"
    family = "anthropic"
    streams = False

    request_shape = REQUEST


ANTHROPIC_MESSAGES = AnthropicMessages()
ANTHROPIC_COUNT_TOKENS = AnthropicCountTokens()
