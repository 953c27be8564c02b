"""Relaying the provider's answer to the client, as it arrives.

Streams are split into SSE events and each batch of complete events is sent the moment it
arrives; nothing waits for the whole response. While a stream runs, a watcher listens for the
client's `http.disconnect` (granian drops a `send()` after a disconnect silently, so writing is
no way to notice) and cancels the relay, which closes the upstream request. An upstream that fails
after the 200 was sent gets a well-formed in-stream error event in the client's format and a
clean end.

Extra response headers (a policy's, such as the rate-limit headers) travel with the call as a list
of byte pairs (`extra`) and go out with every answer: a body, an error, or a stream's start.

The provider's headers that its clients' SDKs read go out with the provider's answer
(`answer_headers`), from an allow-list and nothing else (no hop-by-hop header, no cookie): its
request id under the client format's name (`x-request-id` for OpenAI formats, where the OpenAI SDK
reads it, `request-id` for Anthropic's), and its rate-limit headers (OpenAI's six
`x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, Anthropic's
`anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`)
unless the gateway's own limits put theirs on the call. `retry-after`,
`retry-after-ms` and `x-should-retry` go with a provider's error status. The gateway's own id is
`x-sluicegate-request-id` on every answer, and `x-request-id` too when the provider named none there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

import orjson

from sluicegate.errors import GatewayError, UpstreamProtocolError
from sluicegate.formats.base import StreamOutput, StreamTap, Usage, WireFormat
from sluicegate.formats.sse import EventBuffer
from sluicegate.proxy.upstream import RETRY_HEADERS, UpstreamResponse
from sluicegate.types import Receive, Send

if TYPE_CHECKING:
    from sluicegate.observe.events import PolicyEvent

log = logging.getLogger("sluicegate.relay")
JSON = b"application/json"
INTERNAL = GatewayError("the gateway failed to handle this request", status=500, code="internal_error")
SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]
GATEWAY_ID: Final = b"x-sluicegate-request-id"


def _names(*names: str) -> dict[str, bytes]:
    return {name: name.encode() for name in names}


_OPENAI_LIMITS: Final = [
    f"x-ratelimit-{f}-{k}" for f in ("limit", "remaining", "reset") for k in ("requests", "tokens")
]
_ANTHROPIC_LIMITS: Final = [
    f"anthropic-ratelimit-{k}-{f}"
    for k in ("requests", "tokens", "input-tokens", "output-tokens")
    for f in ("limit", "remaining", "reset")
]
# The provider's headers a client of each family reads, by exact name (see the module docstring):
# with its rate-limit headers, and without them (the gateway's own limits are on the call).
_PASSED: Final = {
    "openai": (_names("x-request-id", *_OPENAI_LIMITS), _names("x-request-id")),
    "anthropic": (_names("request-id", *_ANTHROPIC_LIMITS), _names("request-id")),
}
_OWN_LIMITS: Final = (b"x-ratelimit-", b"anthropic-ratelimit-")  # the gateway's limit headers, in `extra`
_MAX_VALUE: Final = 256  # characters of one passed value, at most


@dataclass(slots=True)
class CallInfo:
    """Who made a call and where it went: filled in as the pipeline learns it."""

    request_id: str
    route: str
    org: str | None = None
    workspace: str | None = None
    key: str | None = None
    user: str | None = None
    model: str | None = None
    provider: str | None = None
    provider_kind: str | None = None
    stream: bool = False
    trace_id: str | None = None
    trace: str | None = None  # the caller's `langsmith-trace` header (its run's dotted order)
    baggage: str | None = None  # and its `baggage` header, when it sent one
    run_id: str | None = None  # the call's LangSmith run, when one is made
    tool: str | None = None  # an MCP tool call's `server/tool` (a `tool` run, where a model call is an `llm` one)
    started_at: float = 0.0  # wall-clock seconds
    t0: float = 0.0  # perf_counter() at the start
    ended_at: float = 0.0  # wall-clock seconds, once the call is over
    headers: Sequence[tuple[bytes, bytes]] | None = None  # extra headers for every answer (rate limits)
    attempts: Sequence[str] | None = None  # a routed call's deployments (`provider/model`), one per attempt
    # Policy events of steps that let the call go on (an alias, a would_refuse), kept should a later step refuse it.
    events: list[Any] = field(default_factory=list)


@dataclass(slots=True)
class Outcome:
    """What happened to one call, for settlement, events, logs and metrics."""

    status: int
    usage: Usage | None = None
    error: str | None = None  # an error code, when the call failed
    client_gone: bool = False
    cost_nusd: int | None = None
    events: list[PolicyEvent] = field(default_factory=list)
    info: CallInfo | None = None
    first_byte_at: float | None = None  # perf_counter() when the first streamed bytes went out
    # What went upstream and what the client got, kept only while a trace sink wants them.
    request_body: bytes | None = None
    # The caller's own redactor's whole-text redaction (its workspace's patterns included), for the
    # copies a trace sink keeps of values that redaction let through (monitor, pseudonymize).
    scrub: Callable[[str], str] | None = None
    response: list[bytes] | None = None
    output: StreamOutput | None = None  # a stream's, when the tap collected it (then no `response`)

    def log_fields(self) -> dict[str, object]:
        """The access-log record of this call (ids, counts, timings; never content)."""
        fields: dict[str, object] = {"status": self.status, "error": self.error, "cost_nusd": self.cost_nusd}
        if self.client_gone:
            fields["client_gone"] = True
        if self.usage is not None:
            fields["input_tokens"] = self.usage.input_tokens
            fields["output_tokens"] = self.usage.output_tokens
        if self.events:
            fields["events"] = [f"{e.policy}:{e.action}:{e.entity}:{e.count}" for e in self.events]
        info = self.info
        if info is not None:  # what it names of the call (the rest of CallInfo is timing and plumbing)
            fields["request_id"], fields["route"], fields["org"] = info.request_id, info.route, info.org
            fields["workspace"], fields["key"], fields["user"] = info.workspace, info.key, info.user
            fields["model"], fields["provider"], fields["trace_id"] = info.model, info.provider, info.trace_id
        return fields


def answer_headers(
    headers: list[tuple[bytes, bytes]], resp: UpstreamResponse, family: str, request_id: bytes, extra: Headers | None
) -> list[tuple[bytes, bytes]]:
    """`headers` with the gateway's id, the provider's headers its client reads (the allow-list of
    the module docstring, under `family`'s names; a translated answer's are already mapped to
    them), and `extra`."""
    with_limits, ids_only = _PASSED[family]
    # The limit step is the first to add headers to a call (its own limit headers come first).
    passed = ids_only if extra and extra[0][0].startswith(_OWN_LIMITS) else with_limits
    headers.append((GATEWAY_ID, request_id))
    named = False
    for name, value in resp.header_items():
        to = passed.get(name)
        if to is not None and len(value) <= _MAX_VALUE:
            headers.append((to, value.encode("latin-1", "replace")))
            named = named or to == b"x-request-id"
    if not named:
        headers.append((b"x-request-id", request_id))
    if extra:
        headers += extra
    return headers


async def send_body(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


Headers = Sequence[tuple[bytes, bytes]]  # a call's extra headers (read, never changed)


class Rewrite(Protocol):
    """What may change a complete response in place before it is sent (redaction's
    `scan_response`): given the parsed body and the bytes it was parsed from; True if it changed."""

    def __call__(self, body: Any, *, raw: bytes | None = None) -> bool: ...


async def send_error(
    send: Send, fmt: WireFormat, err: GatewayError, request_id: bytes, extra: Headers | None = None
) -> Outcome:
    """Answer with `err` in the format's own error body (and the call's `extra` headers)."""
    headers = [(b"content-type", JSON), (b"x-request-id", request_id), (GATEWAY_ID, request_id)]
    headers += [(k.encode(), v.encode()) for k, v in err.headers.items()]
    if extra:
        headers += extra
    await send_body(send, err.status, fmt.error_body(err, request_id.decode()), headers)
    return Outcome(err.status, error=err.code)


async def relay_error_status(
    send: Send,
    fmt: WireFormat,
    resp: UpstreamResponse,
    request_id: bytes,
    limit: int,
    rewrite: Rewrite | None = None,
    extra: Headers | None = None,
) -> Outcome:
    """Pass an upstream error status on: the provider's body when it is a JSON error (one wrapped
    in a list of one, as Gemini's OpenAI-compatible endpoint sends it, unwrapped), else ours.

    Providers echo request content in error messages (`Invalid value: '…'`), so an error body is a
    response like any other: `rewrite` (redaction) sees every string of it. When it refuses the body
    (a `block` type in it), the client gets the status with our own message instead.
    """
    body = await resp.read(limit)
    headers = [(b"content-type", JSON)]
    for name in RETRY_HEADERS:
        value = resp.header(name)
        if value is not None:
            headers.append((name.encode(), value.encode("latin-1")))
    answer_headers(headers, resp, fmt.family, request_id, extra)
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    if type(parsed) is list and len(parsed) == 1:  # Gemini's OpenAI-compatible endpoint: `[{"error": …}]`
        parsed = parsed[0]
        body = orjson.dumps(parsed)
    ours = GatewayError(f"the provider answered {resp.status}", status=resp.status)
    if not (isinstance(parsed, dict) and "error" in parsed):
        body = fmt.error_body(ours, request_id.decode())
    elif rewrite is not None:
        try:
            if rewrite(parsed, raw=body):
                body = orjson.dumps(parsed)
        except GatewayError:  # what was found is in the request's tally, as for any response
            ours.message += " (its error message was withheld: it held content this gateway blocks)"
            body = fmt.error_body(ours, request_id.decode())
    await send_body(send, resp.status, body, headers)
    return Outcome(resp.status, error="upstream_status")


async def relay_body(
    send: Send,
    fmt: WireFormat,
    resp: UpstreamResponse,
    request_id: bytes,
    rewrite: Rewrite | None = None,
    capture: bool = False,
    extra: Headers | None = None,
) -> Outcome:
    """A complete (non-streamed) response: read it, note its usage, let `rewrite` change it in
    place (redaction; True if it did), send it."""
    body = await resp.read()
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamProtocolError("the provider sent a response that is not JSON") from None
    usage = fmt.usage(parsed)
    try:
        if rewrite is not None and rewrite(parsed, raw=body):
            body = orjson.dumps(parsed)
    except GatewayError as err:  # a response policy refused it: the call still cost its usage
        outcome = await send_error(send, fmt, err, request_id, extra)
        outcome.usage = usage
        return outcome
    headers = answer_headers([(b"content-type", JSON)], resp, fmt.family, request_id, extra)
    await send_body(send, resp.status, body, headers)
    return Outcome(resp.status, usage=usage, response=[body] if capture else None)


def _event_too_large(limit: int) -> UpstreamProtocolError:
    return UpstreamProtocolError(
        f"the provider sent an event larger than {limit} bytes (upstream.max_event_bytes)",
        code="upstream_event_too_large",
    )


async def _await_disconnect(receive: Receive, task: asyncio.Task[object]) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    task.cancel()


async def relay_stream(
    send: Send,
    receive: Receive,
    fmt: WireFormat,
    tap: StreamTap,
    resp: UpstreamResponse,
    request_id: bytes,
    capture: bool = False,
    *,
    max_event: int,
    extra: Headers | None = None,
) -> Outcome:
    """Relay an SSE response event by event until it ends, fails, or the client leaves. An event
    larger than `max_event` bytes (ended or still arriving) ends the stream with an error event."""
    headers = answer_headers([*SSE_HEADERS], resp, fmt.family, request_id, extra)
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    me = asyncio.current_task()
    assert me is not None
    watcher = asyncio.ensure_future(_await_disconnect(receive, me))
    events = EventBuffer()
    outcome = Outcome(200)
    if capture:  # for a trace: what the client assembles, collected by the tap as it goes
        outcome.output = tap.transcript = fmt.stream_output()
    gate = tap.gate
    try:
        try:
            async for chunk in resp.chunks():
                out: list[bytes] = []
                try:
                    for event in events.feed(chunk):
                        if len(event.raw) > max_event:
                            raise _event_too_large(max_event)
                        if gate is not None:
                            gated = gate.event(event)
                            if gated is None:
                                continue
                            event = gated
                        data = tap.process(event)
                        if data is not None:
                            out.append(data)
                    if events.pending_size > max_event:
                        raise _event_too_large(max_event)
                finally:  # the events before a malformed or oversized one still go out
                    if out:
                        data = b"".join(out)
                        if outcome.first_byte_at is None:
                            outcome.first_byte_at = time.perf_counter()
                        if outcome.output is not None:
                            outcome.output.relayed = True
                        await send({"type": "http.response.body", "body": data, "more_body": True})
            if not tap.saw_end or events.pending.strip():
                raise UpstreamProtocolError("the provider ended the stream early")
        except GatewayError as err:
            outcome.error = err.code
            await send({"type": "http.response.body", "body": fmt.stream_error(err), "more_body": True})
        except Exception:
            log.exception("stream relay failed")
            outcome.error = INTERNAL.code
            await send({"type": "http.response.body", "body": fmt.stream_error(INTERNAL), "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    except asyncio.CancelledError:
        if not watcher.done() or me.uncancel() > 0:
            raise  # a cancellation from elsewhere (server shutdown), not the client leaving
        outcome.client_gone = True
        outcome.error = "client_disconnected"
    finally:
        watcher.cancel()
        resp.close()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    outcome.usage = tap.usage
    return outcome
