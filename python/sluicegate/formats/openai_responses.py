"""OpenAI Responses API (`POST /v1/responses`).

Stream events carry `event: <type>` and `data: {"type": <type>, "sequence_number": n, …}`; usage
appears only in the terminal event (`response.completed`, `.incomplete` or `.failed`).
"""

from __future__ import annotations

from typing import Any

import orjson

from sluicegate.errors import GatewayError
from sluicegate.formats.base import (
    StreamOutput,
    StreamTap,
    TextFilter,
    Usage,
    WireFormat,
    count,
    parse_event_json,
    stream_key,
)
from sluicegate.formats.slots import Shape, TextSlot, all_strings, text_fields
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


# Where text is not (see `slots.Shape`): every other string is scanned, unknown fields and
# everything under tool parameters, schemas, metadata, prompt variables and tool outputs too. One
# kind serves every input and output item (they share their non-text fields), one every content part.
_ANNOTATION = Shape({"type", "file_id", "container_id"})
_PART = Shape(
    {"type", "file_id", "file_data", "detail"},  # file_data: base64 file bytes
    {"annotations": _ANNOTATION},
    urls={"image_url"},  # a base64 data: URL is media; any other URL is text
    runs={"logprobs"},  # logprob entries are scanned as one run of tokens
)
_PART.kids["input_audio"] = Shape({"data", "format"})  # base64 audio
ITEM = Shape(
    {"type", "id", "call_id", "status", "role", "approval_request_id", "container_id", "encrypted_content"},
    {"content": _PART, "output": _PART, "summary": _PART},
    json={"arguments"},
    variants={"image_generation_call": {"result"}},  # base64 image
)
_TOOL = Shape({"type"})
_PROMPT = Shape({"id"}, {"variables": Shape(each=_PART)})
REQUEST = Shape(
    {"model", "previous_response_id", "conversation"},
    {"input": ITEM, "tools": _TOOL, "prompt": _PROMPT, "conversation": Shape({"id"})},
)
RESPONSE = Shape(
    {"id", "object", "model", "status", "previous_response_id", "service_tier", "created_at", "completed_at"},
    {"output": ITEM, "instructions": ITEM, "tools": _TOOL, "prompt": _PROMPT, "conversation": Shape({"id"})},
)
EVENT = Shape(
    {"type", "item_id", "obfuscation", "partial_image_b64"},  # a partial image is base64
    {"response": RESPONSE, "item": ITEM, "part": _PART, "annotation": _ANNOTATION},
    runs={"logprobs"},
)
# Events whose `delta` is not text: base64 audio.
_MEDIA_DELTAS = frozenset({"response.audio.delta"})
# Events that repeat what was streamed: rewritten the same way, not counted again.
_REPEATS = frozenset(
    {"response.content_part.done", "response.output_item.done", "response.reasoning_summary_part.done"}
)
# Where a `.done` event repeats its stream's whole text.
_DONE_FIELDS = ("text", "arguments", "refusal", "input", "code", "command", "transcript")


class ResponsesOutput(StreamOutput):
    """What a client assembles from a Responses stream: its output text and function arguments."""

    __slots__ = ()

    def add(self, data: dict[str, Any]) -> None:
        if data.get("type") in ("response.output_text.delta", "response.function_call_arguments.delta"):
            self.texts.setdefault(stream_key(data.get("item_id"))[0], []).append(str(data.get("delta", "")))

    def result(self) -> dict[str, Any]:
        return {"output_text": "".join("".join(parts) for parts in self.texts.values())}


class ResponsesTap(StreamTap):
    """Reads usage from the terminal event.

    With a filter, the `delta` of every `*.delta` event (text, refusals, reasoning and its summary,
    function, custom-tool and MCP arguments, code, shell commands and output, the audio
    transcript, and any delta kind not known yet) streams through it, one stream per item, part
    and field, as do the logprob tokens of text deltas. Before each stream's `.done` event, what it
    held back goes out as one more delta; the `.done` event's full text becomes what the client got.
    Events that repeat streamed text (`content_part.done`, `output_item.done`, the terminal
    event) are rewritten whole; every other string of every event is rewritten as new text."""

    __slots__ = ("_emitted", "sequence")

    def __init__(self, include_usage: bool = True, filter: TextFilter | None = None) -> None:
        super().__init__(include_usage, filter)
        self.sequence = 0
        self._emitted: dict[tuple[Any, ...], list[str]] = {}  # stream -> what the client got of it

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
            out = self._filter(event, data, kind if isinstance(kind, str) else "")
        else:
            out = event.raw + b"\n\n"
        if self.transcript is not None:
            self.transcript.add(data)  # as sent: the filter rewrote it in place (held text went first)
        return out

    def _filter(self, event: Event, data: dict[str, Any], kind: str) -> bytes:
        ids = stream_key(
            *(data.get(k) for k in ("item_id", "output_index", "content_index", "summary_index", "command_index"))
        )
        delta = data.get("delta")
        if kind.endswith(".delta") and isinstance(delta, str | dict) and kind not in _MEDIA_DELTAS:
            changed = self._delta(kind.removesuffix(".delta"), ids, data)
            held: dict[str, Any] = {k: data.pop(k) for k in ("delta", "logprobs") if k in data}
            changed |= self.rewrite(text_fields(data, EVENT))
            data.update(held)
        elif kind.endswith(".done") and (kind.removesuffix(".done"), ids) in self._streams():
            return self._done(event, kind.removesuffix(".done"), ids, data)
        else:
            changed = self.rewrite(text_fields(data, EVENT), repeat=kind in _REPEATS or kind in TERMINAL)
        return encode(orjson.dumps(data), event.name) if changed else event.raw + b"\n\n"

    def _streams(self) -> set[tuple[Any, ...]]:
        return {key[:2] for key in self._emitted}

    def _delta(self, stem: str, ids: tuple[Any, ...], data: dict[str, Any]) -> bool:
        f, jf = self.filter, self.json_filter
        assert f is not None and jf is not None
        g = jf if "arguments" in stem else f
        changed = False
        delta = data["delta"]
        # A text delta is a string; shell output deltas are objects of strings (stdout, stderr), and
        # anything else in such an object is rewritten whole.
        parts = [(None, data, "delta")] if isinstance(delta, str) else [(k, delta, k) for k in list(delta)]
        if isinstance(delta, dict):
            changed |= self.rewrite(
                s for s in all_strings(delta) if s.container is not delta or type(s) is not TextSlot
            )
        for field, container, key in parts:
            text = container[key]
            if not isinstance(text, str):
                continue
            stream = (stem, ids, field)
            out = g.feed(stream, text)
            self._emitted.setdefault(stream, []).append(out)
            if out != text:
                container[key] = out
                changed = True
        logprobs = data.get("logprobs")
        for entry in logprobs if isinstance(logprobs, list) else ():
            token = entry.get("token") if isinstance(entry, dict) else None
            if isinstance(token, str):
                stream = (stem, ids, "logprobs")
                out = f.feed(stream, token)
                self._emitted.setdefault(stream, [])
                if out != token:
                    entry["token"] = out
                    if entry.get("bytes") is not None:
                        entry["bytes"] = list(out.encode())
                    changed = True
            if isinstance(entry, dict):
                changed |= self.rewrite(s for s in all_strings(entry) if s.container is not entry or s.key != "token")
        return changed

    def _done(self, event: Event, stem: str, ids: tuple[Any, ...], data: dict[str, Any]) -> bytes:
        """End the streams of `stem`/`ids`: what they held back goes out as one more delta before
        the done event, whose full text becomes what the client got."""
        f, jf = self.filter, self.json_filter
        assert f is not None and jf is not None
        g = jf if "arguments" in stem else f
        rests: dict[Any, str] = {}
        full: dict[Any, str] = {}
        for stream in [s for s in self._emitted if s[:2] == (stem, ids)]:
            emitted = self._emitted.pop(stream)
            rest = (f if stream[2] == "logprobs" else g).flush(stream)
            if rest:
                rests[stream[2]] = rest
            full[stream[2]] = "".join(emitted) + rest
        field = next((k for k in _DONE_FIELDS if isinstance(data.get(k), str)), None)
        if field is not None:
            text, data[field] = data[field], None
        self.rewrite(text_fields(data, EVENT), repeat=True)
        if field is not None:
            data[field] = full.get(None, text)
            if None not in full:  # its deltas were of another field: the full text is rewritten here
                self.rewrite([TextSlot(data, field, field == "arguments")], repeat=True)
        out = b""
        lp = rests.pop("logprobs", None)
        if rests or lp:
            extra = {k: v for k, v in data.items() if k not in ("type", "logprobs", field)}
            extra["type"] = f"{stem}.delta"
            extra["delta"] = rests.get(None, "") if set(rests) <= {None} else rests
            if lp or "logprobs" in data:
                extra["logprobs"] = (
                    [{"token": lp, "logprob": 0.0, "bytes": list(lp.encode()), "top_logprobs": []}] if lp else []
                )
            out = encode(orjson.dumps(extra), f"{stem}.delta".encode() if event.name is not None else None)
            if self.transcript is not None:
                self.transcript.add(extra)
        return out + encode(orjson.dumps(data), event.name)


class OpenAIResponses(WireFormat):
    name = "openai_responses"
    path = "/v1/responses"
    family = "openai"
    output_limits = ("max_output_tokens",)
    field_synonyms = {
        "max_tokens": ("max_output_tokens",),
        "max_completion_tokens": ("max_output_tokens",),
    }

    def usage(self, body: Any) -> Usage | None:
        return responses_usage(body.get("usage")) if isinstance(body, dict) else None

    request_shape = REQUEST
    response_shape = RESPONSE

    def stream_output(self) -> StreamOutput:
        return ResponsesOutput()

    def tap(self, body: dict[str, Any], filter: TextFilter | None = None) -> StreamTap:
        return ResponsesTap(filter=filter)

    def stream_error(self, err: GatewayError) -> bytes:
        # The SDK raises APIError on any event whose data has an "error" object.
        error = {"type": err.type, "code": err.code, "message": err.message, "param": err.param}
        data = {"type": "error", "code": err.code, "message": err.message, "param": err.param, "error": error}
        return encode(orjson.dumps({**data, "sequence_number": 0}), b"error")


OPENAI_RESPONSES = OpenAIResponses()
