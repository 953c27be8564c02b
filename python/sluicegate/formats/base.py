"""The interface every wire format implements, and the pieces they share: usage and error bodies.

A format answers three questions for the pipeline: what to change in a request before it goes
upstream (`prepare`), how to read usage out of a response or a stream (`usage`, `StreamTap`), and
how an error looks to this format's SDK (`error_body`, `stream_error`).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import orjson

from sluicegate.errors import GatewayError, UpstreamProtocolError
from sluicegate.formats.jsonstream import JsonStrings
from sluicegate.formats.slots import FREE, Field, Shape, TextSlot, text_slots
from sluicegate.formats.sse import Event, encode

Family = Literal["openai", "anthropic"]

# Anthropic names its error types by status; the OpenAI-style `type` is kept where it exists.
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


@dataclass(slots=True)
class Usage:
    """Token usage, normalised across formats. `input_tokens` includes cached and cache-write tokens;
    the details are subsets of it (and `reasoning_tokens` of `output_tokens`)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def count(value: Any) -> int:
    """A non-negative int from a usage field; 0 for anything else (a provider's null, a string)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def parse_event_json(event: Event) -> Any:
    """The JSON in an event's data.

    Raises:
        UpstreamProtocolError: the provider sent an event whose data is not JSON.
    """
    try:
        return orjson.loads(event.data)
    except orjson.JSONDecodeError:
        raise UpstreamProtocolError("the provider sent a malformed stream event") from None


def openai_error_body(err: GatewayError) -> bytes:
    error = {"message": err.message, "type": err.type, "param": err.param, "code": err.code, **err.extra}
    return orjson.dumps({"error": error})


def anthropic_error_type(status: int) -> str:
    """Anthropic's error type for an HTTP status."""
    return _ANTHROPIC_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def anthropic_error_body(err: GatewayError, request_id: str | None = None) -> bytes:
    error = {"type": anthropic_error_type(err.status), "message": err.message, **err.extra}
    return orjson.dumps({"type": "error", "error": error, "request_id": request_id})


class TextFilter(Protocol):
    """Rewrites the text of a response stream as it passes (redaction): each text stream of the
    response (a choice's content, a tool call's arguments, a content block) has its own key.

    `feed` returns the text that is safe to emit now (it may hold some back), `flush` what is left
    when that text stream ends, `text` the rewrite of a complete text seen for the first time (a
    tool's name, a citation: counted like streamed text, and it may end the stream), and `whole`
    the rewrite of a complete text that repeats what was already streamed (not counted again). For
    every way of cutting a text, `feed`s then `flush` equal `whole`, and `text` equals `whole`.
    """

    def feed(self, key: Hashable, text: str) -> str: ...

    def flush(self, key: Hashable) -> str: ...

    def text(self, text: str) -> str: ...

    def whole(self, text: str) -> str: ...


class EventGate(Protocol):
    """Decides on each stream event before the tap: as it came, rewritten, or None (dropped); may
    raise a GatewayError, which ends the stream with that error."""

    def event(self, event: Event) -> Event | None: ...


class StreamOutput:
    """The output a client assembles from a stream, in the format's own non-streamed shape: its
    texts (content, tool-call arguments, content blocks), collected from the stream's events as
    the tap sends them (`add`, each a parsed JSON object), joined at the end (`result`). For a copy
    of the call that leaves the request path (a trace): no other field of the events is kept. Each
    streaming format has its own (`WireFormat.stream_output`)."""

    __slots__ = ("relayed", "texts")

    def __init__(self) -> None:
        self.texts: dict[Any, list[str]] = {}
        self.relayed = False  # whether any event reached the client (set by the relay)

    def add(self, data: dict[str, Any]) -> None:
        """Take the texts of one event (anything not shaped as the format says is passed over:
        this runs on the request path and never fails it)."""
        raise NotImplementedError

    def result(self) -> dict[str, Any]:
        raise NotImplementedError


def order(index: Any) -> tuple[int, int, str]:
    """Indexes in order, numbers first, whatever a provider put in them."""
    return (0, index, "") if type(index) is int else (1, 0, repr(index))


class StreamTap:
    """Reads one response stream event by event: records usage, and may rewrite or drop events.

    `process` returns the bytes to send to the client for the event (usually `event.raw` plus the
    blank line), or None to drop it. With a `TextFilter`, every text of every event passes through
    it: text deltas as streams (the text a stream held back is emitted before the event that ends
    it), every other string of the event whole. Subclasses hold the format's knowledge of which
    strings are deltas; the format's `Shape`s say which strings are not text at all.
    """

    # `process` hands every event it lets through to `transcript` (when the relay set one), as the
    # JSON object the client receives, so a trace needs no copy of the stream's bytes.
    __slots__ = ("filter", "gate", "include_usage", "json_filter", "saw_end", "transcript", "usage")

    def __init__(self, include_usage: bool = True, filter: TextFilter | None = None) -> None:
        self.usage: Usage | None = None
        self.include_usage = include_usage
        self.saw_end = False
        self.filter = filter
        # Tool arguments stream as JSON text: their filter sees the decoded strings.
        self.json_filter: TextFilter | None = JsonStrings(filter) if filter is not None else None
        self.transcript: StreamOutput | None = None
        # What may drop or rewrite an event before this tap reads it (`policy.tool_calls`: the
        # model's calls of denied tools); the relay applies it.
        self.gate: EventGate | None = None

    def process(self, event: Event) -> bytes | None:
        raise NotImplementedError

    def rewrite(self, fields: Iterable[Field], *, repeat: bool = False) -> bool:
        """Pass complete texts through the filter (`whole` for a `repeat` of streamed text, else
        `text`), writing back what changed; True if anything did."""
        f, jf = self.filter, self.json_filter
        assert f is not None and jf is not None
        g = f.whole if repeat else f.text
        changed = False
        for field in fields:
            if type(field) is tuple:
                container, key = field
                text = container[key]
                out = g(text)
                if out != text:
                    container[key] = out
                    changed = True
                continue
            slot: TextSlot = field  # type: ignore[assignment]
            text = slot.text
            out = (jf.whole if repeat else jf.text)(text) if slot.json else g(text)
            if out != text:
                slot.set(out)
                changed = True
        return changed


def stream_key(*parts: Any) -> tuple[Any, ...]:
    """A filter key from event fields (ids and indexes), whatever a provider put in them."""
    return tuple(p if p is None or isinstance(p, str | int) else repr(p) for p in parts)


class WireFormat:
    """One client-facing API: its path, family, and the knowledge the pipeline needs of it."""

    name: str = ""
    path: str = ""
    family: Family = "openai"
    streams: bool = True
    # The request fields that limit the output (an output ceiling lowers each one set, and writes
    # the last when none is); empty: the format produces no output to limit.
    output_limits: tuple[str, ...] = ()
    # Other formats' names for this format's top-level request fields: a rule on a field written
    # with any format's name checks this format's own (`request_fields`).
    field_synonyms: dict[str, tuple[str, ...]] = {}

    def request_fields(self, name: str) -> tuple[str, ...]:
        """This format's fields for a top-level request field named as any format names it."""
        return self.field_synonyms.get(name, (name,))

    def prepare(self, body: dict[str, Any]) -> bool:
        """Adjust a parsed request before it goes upstream; return True if anything changed."""
        return False

    def stream_output(self) -> StreamOutput | None:
        """A collector of what the client assembles from this format's stream (None: the format
        does not stream)."""
        return None

    def usage(self, body: Any) -> Usage | None:
        """Usage from a non-streamed response body."""
        return None

    # The kinds of object a request and a complete response are (see `slots.Shape`): every
    # string of either is text except where a shape says it is not.
    request_shape: Shape = FREE
    response_shape: Shape = FREE

    def request_slots(self, body: dict[str, Any]) -> list[TextSlot]:
        """Every text field of a request (every string but the format's non-text fields)."""
        return text_slots(body, self.request_shape)

    def response_slots(self, body: dict[str, Any]) -> list[TextSlot]:
        """Every text field of a complete (non-streamed) response."""
        return text_slots(body, self.response_shape)

    def tap(self, body: dict[str, Any], filter: TextFilter | None = None) -> StreamTap:
        """A reader for the response stream of `body` (the client's request, before `prepare`)."""
        raise NotImplementedError

    def error_body(self, err: GatewayError, request_id: str | None = None) -> bytes:
        return anthropic_error_body(err, request_id) if self.family == "anthropic" else openai_error_body(err)

    def stream_error(self, err: GatewayError) -> bytes:
        """An in-stream error event that this format's SDK raises on, for after the 200 was sent."""
        if self.family == "anthropic":
            return encode(anthropic_error_body(err), b"error")
        return encode(openai_error_body(err))

    def __repr__(self) -> str:
        return f"<WireFormat {self.name}>"
