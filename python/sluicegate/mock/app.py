"""The mock provider: a deterministic fake upstream speaking the OpenAI and Anthropic wire formats.

Two ways in, one behaviour:

- `respond(method, path, headers, body)` is the in-process provider. The gateway awaits it,
  iterates `MockResponse.body` (one chunk for a plain answer, one SSE event per chunk for a
  stream) and calls `await body.aclose()` if its own client went away. A stream closed before
  its natural end counts as disconnected in the stats; a `disconnect` fault makes the iterator
  raise `MockDisconnect` after `fault_after` events.
- `create_app()` is the granian factory target (`sluicegate.mock.app:create_app`): a raw ASGI
  app around `respond()`. While a stream is sent it watches `receive()` for `http.disconnect`
  (granian drops `send()` after a disconnect without telling), stops and counts it. A
  `disconnect` fault raises after the response started, so the server drops the connection and
  the client sees an aborted body, never a clean end.

Routes: `POST /v1/chat/completions`, `/v1/responses`, `/v1/embeddings`, `/v1/messages`,
`/v1/messages/count_tokens`; `GET /v1/models` and `/v1/models/{id}` (Anthropic shapes when an
`anthropic-version` header is present); `GET /mock/stats`, `POST /mock/stats/reset`, `GET` and
`PUT /mock/knobs` (the process-wide knobs, `SLUICEGATE_MOCK_KNOBS` at start). Anything
else is 404 in the OpenAI error format (the Anthropic one under `/v1/messages`). What the model
says, and the tokens it reports, are described in `reply`; the knobs in `knobs`.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, Protocol

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from sluicegate.mock.chat import CHAT
from sluicegate.mock.embeddings import embeddings
from sluicegate.mock.errors import MockError, error_bytes
from sluicegate.mock.knobs import KnobError, Knobs, parse_knob_text, parse_knobs
from sluicegate.mock.messages import MESSAGES, count_tokens
from sluicegate.mock.models import anthropic_model, model_list, openai_model
from sluicegate.mock.reply import Turn, next_serial
from sluicegate.mock.responses import RESPONSES
from sluicegate.mock.stats import STATS
from sluicegate.mock.wire import Wire

__all__ = ["Answer", "MockBody", "MockDisconnect", "MockResponse", "create_app", "respond", "serve"]

_WIRES: Final[dict[str, Wire]] = {"/v1/chat/completions": CHAT, "/v1/responses": RESPONSES, "/v1/messages": MESSAGES}
_JSON_POSTS: Final = frozenset({*_WIRES, "/v1/embeddings", "/v1/messages/count_tokens"})
_STREAM_FAULTS: Final = frozenset({"disconnect", "malformed", "error_event"})
_RETRY_FAST: Final = (("retry-after-ms", "10"),)
_SLOW_FIRST_BYTE_MS: Final = 5000
_SSE_TYPE: Final = "text/event-stream; charset=utf-8"
# The process-wide knobs (see `knobs`): from SLUICEGATE_MOCK_KNOBS at start, `PUT /mock/knobs` later.
KNOBS_ENV: Final = "SLUICEGATE_MOCK_KNOBS"
PROCESS_KNOBS: dict[str, str] = parse_knob_text(os.environ.get(KNOBS_ENV, ""))
# Headers an echo leaves out: whoever holds a gateway key may ask for an echo, and the request the
# gateway sent carries the provider's credential (the operator's key, a workspace's secret, static
# headers). By name: the usual ones, and any name with a credential word in it.
_CREDENTIAL_HEADERS: Final = frozenset({"authorization", "proxy-authorization", "x-api-key", "api-key", "cookie"})
_CREDENTIAL_WORDS: Final = ("auth", "key", "token", "secret", "passw", "credential", "cookie", "session", "signature")


def is_credential_header(name: str) -> bool:
    """Whether an echo leaves a header out (`name` in lower case)."""
    if name.startswith("x-mock-"):  # the knobs (`x-mock-cached-tokens` is no credential)
        return False
    return name in _CREDENTIAL_HEADERS or any(word in name for word in _CREDENTIAL_WORDS)


class MockDisconnect(ConnectionResetError):
    """The mock broke a stream on purpose (the `disconnect` fault)."""


class MockBody(Protocol):
    """The body of a mock answer: an `AsyncIterator[bytes]` with `aclose()` (as async generators have)."""

    def __aiter__(self) -> MockBody: ...

    async def __anext__(self) -> bytes: ...

    async def aclose(self) -> None:
        """Stop early; a stream closed before its end counts as disconnected."""


@dataclass
class MockResponse:
    """An answer of the mock provider.

    Attributes:
        status: the HTTP status.
        headers: response headers (lower-case names), content-type included.
        body: one chunk for a plain answer; one SSE event per chunk for a stream.
    """

    status: int
    headers: list[tuple[str, str]]
    body: MockBody


class _Body:
    """The chunks of one answer, paced by `delay`, ending in a `MockDisconnect` if `abort`.

    When `counted` (a stream), the end is recorded once in STATS: completed when the last chunk
    is handed out, disconnected when closed before that or broken by the fault.
    """

    __slots__ = ("_abort", "_chunks", "_counted", "_delay", "_ended", "_next")

    def __init__(self, chunks: list[bytes], *, delay: float = 0.0, abort: bool = False, counted: bool = False) -> None:
        self._chunks = chunks
        self._next = 0
        self._delay = delay
        self._abort = abort
        self._counted = counted
        self._ended = False

    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        i = self._next
        if i >= len(self._chunks):
            if self._abort:
                self._abort = False
                self._end(disconnected=True)
                raise MockDisconnect("mock fault: stream broken on purpose")
            raise StopAsyncIteration
        if i and self._delay:
            await asyncio.sleep(self._delay)
        self._next = i + 1
        if self._next == len(self._chunks) and not self._abort:
            self._end(disconnected=False)
        return self._chunks[i]

    async def aclose(self) -> None:
        self._next = len(self._chunks)
        self._abort = False
        self._end(disconnected=True)

    def _end(self, disconnected: bool) -> None:
        if self._ended:
            return
        self._ended = True
        if self._counted:
            if disconnected:
                STATS.streams_disconnected += 1
            else:
                STATS.streams_completed += 1


Head = tuple[tuple[str, str], ...]  # the headers every answer carries: its request id, its rate limits


def _json(status: int, payload: bytes, head: Head, extra: tuple[tuple[str, str], ...] = ()) -> MockResponse:
    headers = [("content-type", "application/json"), ("content-length", str(len(payload))), *head, *extra]
    return MockResponse(status, headers, _Body([payload]))


def _plain(payload: bytes, knobs: Knobs, head: Head) -> MockResponse:
    """A non-streamed 200 answer, with the stream faults applied the plain way."""
    fault = knobs.fault
    if fault == "disconnect":
        # Half the body, then the break: the client sees fewer bytes than content-length.
        headers = [("content-type", "application/json"), ("content-length", str(len(payload))), *head]
        return MockResponse(200, headers, _Body([payload[: len(payload) // 2]], abort=True))
    if fault == "malformed":
        return _json(200, b"{not json", head)
    if fault == "error_event":
        raise MockError(500, "server", "mock error_event fault", code="mock_error_event")
    return _json(200, payload, head)


def _stream(events: list[bytes], knobs: Knobs, wire: Wire, head: Head) -> MockResponse:
    abort = False
    fault = knobs.fault
    if fault in _STREAM_FAULTS:
        # Always before the last event, so a fault never looks like a clean end.
        at = min(knobs.fault_after, len(events) - 1)
        if fault == "disconnect":  # `fault_bytes` of the next event: a cut inside it
            part = [events[at][: min(knobs.fault_bytes, len(events[at]) - 1)]] if knobs.fault_bytes else []
            events, abort = [*events[:at], *part], True
        elif fault == "malformed":
            events = [*events[:at], wire.malformed, *events[at:]]
        else:
            events = [*events[:at], wire.error_event(at)]
    STATS.streams_started += 1
    headers = [("content-type", _SSE_TYPE), ("cache-control", "no-cache"), *head]
    return MockResponse(200, headers, _Body(events, delay=knobs.delay_ms / 1000, abort=abort, counted=True))


def _parse(body: bytes) -> dict[str, Any]:
    try:
        req = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise MockError(400, "invalid_request", "the request body is not valid JSON") from None
    if not isinstance(req, dict):
        raise MockError(400, "invalid_request", "the request body must be a JSON object")
    return req


def _knobs(headers: Mapping[str, str], model: str | None) -> tuple[Knobs, str | None]:
    try:
        return parse_knobs(headers, model, PROCESS_KNOBS)
    except KnobError as err:
        raise MockError(400, "invalid_request", str(err), param=err.knob, code="invalid_mock_knob") from None


def _fault_fires(knobs: Knobs, model: str | None) -> bool:
    """Whether this request gets its fault (it has one): always, or under `fault_times` only the
    first N times."""
    if not knobs.fault_times:
        return True
    key = model or ""
    fired = STATS.faults.get(key, 0)
    if fired >= knobs.fault_times:
        return False
    STATS.faults[key] = fired + 1
    return True


async def _before(knobs: Knobs, anthropic: bool = False) -> None:
    """The first-byte wait and the status faults."""
    wait_ms = knobs.first_byte_ms
    if knobs.fault == "slow_first_byte":
        wait_ms = wait_ms or _SLOW_FIRST_BYTE_MS
    if wait_ms:
        await asyncio.sleep(wait_ms / 1000)
    fault = knobs.fault
    retry = _RETRY_FAST if knobs.retry_after is None else (("retry-after", str(knobs.retry_after)),)
    if fault == "429":
        raise MockError(429, "rate_limit", "mock fault: rate limit reached", headers=retry)
    if fault == "500":
        raise MockError(500, "server", "mock fault: internal server error")
    if fault == "500_billed":
        usage = {"prompt_tokens": 2, "completion_tokens": 10, "total_tokens": 12}
        raise MockError(500, "server", "mock fault: failed after the model ran (billed)", usage=usage)
    if fault == "503":
        raise MockError(503, "unavailable", "mock fault: service unavailable", headers=retry)
    if fault == "529":
        raise MockError(529, "overloaded", "mock fault: overloaded", headers=retry)
    if fault == "context_length":
        if anthropic:
            raise MockError(400, "invalid_request", "prompt is too long: 250000 tokens > 200000 maximum")
        message = "This model's maximum context length is 128000 tokens. (mock fault)"
        raise MockError(400, "invalid_request", message, param="messages", code="context_length_exceeded")
    if fault == "content_policy":
        if anthropic:
            raise MockError(400, "invalid_request", "Output blocked by content filtering policy")
        message = "Your request was rejected as a result of our safety system. (mock fault)"
        raise MockError(400, "invalid_request", message, code="content_policy_violation")


async def _answer(
    method: str, path: str, headers: Mapping[str, str], body: bytes, anthropic: bool, head: Head
) -> MockResponse:
    if method == "POST" and path in _JSON_POSTS:
        record: dict[str, Any] = {"method": method, "path": path, "headers": dict(headers), "body": None}
        STATS.last_request = record
        req = _parse(body)
        record["body"] = req
        model = req.get("model")
        if not isinstance(model, str) or not model:
            raise MockError(400, "invalid_request", "'model' is required", param="model")
        knobs, name = _knobs(headers, model)
        if knobs.fault is not None and not _fault_fires(knobs, model):
            knobs = replace(knobs, fault=None)
        model = name or model
        await _before(knobs, anthropic)
        wire = _WIRES.get(path)
        if wire is None:
            payload = count_tokens(req) if anthropic else embeddings(req, model)
            return _plain(payload, knobs, head)
        wire.validate(req)
        text = knobs.reply
        if knobs.echo:
            shown = {k: v for k, v in record["headers"].items() if not is_credential_header(k)}
            text = orjson.dumps({**record, "headers": shown}).decode()
        called = tuple(n for n in (knobs.call_tools or "").split("+") if n)
        if knobs.then_answer and wire.ends_with_results(req):
            called, knobs = (), replace(knobs, tool_call=False)
        turn = Turn.build(
            model,
            text=text,
            chunks=knobs.chunks,
            chunk_size=knobs.chunk_size,
            tool=called[0] if called else wire.tool_name(req) if knobs.tool_call else None,
            input_tokens=wire.input_tokens(req),
            cached_tokens=knobs.cached_tokens,
            more_tools=called[1:],
        )
        if req.get("stream") is True:
            return _stream(wire.events(turn, req), knobs, wire, head)
        return _plain(wire.body(turn, req), knobs, head)
    if method == "GET" and (path == "/v1/models" or path.startswith("/v1/models/")):
        STATS.last_request = {"method": method, "path": path, "headers": dict(headers), "body": None}
        knobs, _ = _knobs(headers, None)
        await _before(knobs)
        model_id = path[len("/v1/models/") :]
        if not model_id:
            return _plain(orjson.dumps(model_list(anthropic)), knobs, head)
        return _plain(orjson.dumps(anthropic_model(model_id) if anthropic else openai_model(model_id)), knobs, head)
    raise MockError(404, "not_found", f"Invalid URL ({method} {path})")


def _mock_route(method: str, path: str, body: bytes, head: Head) -> MockResponse:
    if method == "GET" and path == "/mock/stats":
        return _json(200, orjson.dumps(STATS.snapshot()), head)
    if method == "POST" and path == "/mock/stats/reset":
        STATS.reset()
        return _json(200, orjson.dumps(STATS.snapshot()), head)
    if path == "/mock/knobs" and method in ("GET", "PUT"):
        if method == "PUT":
            try:
                knobs = parse_knob_text(body.decode("utf-8", "replace").strip())
            except KnobError as err:
                bad = MockError(400, "invalid_request", str(err), param=err.knob, code="invalid_mock_knob")
                return _json(400, error_bytes(bad, False, head[0][1]), head)
            PROCESS_KNOBS.clear()
            PROCESS_KNOBS.update(knobs)
        return _json(200, orjson.dumps(PROCESS_KNOBS), head)
    err = MockError(404, "not_found", f"Invalid URL ({method} {path})")
    return _json(404, error_bytes(err, False, head[0][1]), head)


def _rate_limits(anthropic: bool) -> Head:
    """Rate-limit headers as each vendor sends them on every answer (fixed figures; the resets in
    each vendor's form: OpenAI a duration, Anthropic an RFC 3339 time)."""
    if not anthropic:
        return _OPENAI_LIMITS
    reset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 1))
    return (
        ("anthropic-ratelimit-requests-limit", "4000"),
        ("anthropic-ratelimit-requests-remaining", "3999"),
        ("anthropic-ratelimit-requests-reset", reset),
        ("anthropic-ratelimit-tokens-limit", "400000"),
        ("anthropic-ratelimit-tokens-remaining", "399000"),
        ("anthropic-ratelimit-tokens-reset", reset),
        ("anthropic-ratelimit-input-tokens-limit", "300000"),
        ("anthropic-ratelimit-input-tokens-remaining", "299000"),
        ("anthropic-ratelimit-input-tokens-reset", reset),
    )


_OPENAI_LIMITS: Final = (
    ("x-ratelimit-limit-requests", "10000"),
    ("x-ratelimit-remaining-requests", "9999"),
    ("x-ratelimit-reset-requests", "6ms"),
    ("x-ratelimit-limit-tokens", "2000000"),
    ("x-ratelimit-remaining-tokens", "1999000"),
    ("x-ratelimit-reset-tokens", "30ms"),
)


# Headers vendors also send that no client reads (and a gateway must not pass on): a timing, an
# organization, a load balancer's cookie.
_COOKIE: Final = ("set-cookie", "__cf_bm=mock-cookie; path=/; HttpOnly")
_OTHER: Final = {
    False: (("openai-processing-ms", "1"), ("openai-organization", "mock-org"), _COOKIE),
    True: (("anthropic-organization-id", "mock-org"), _COOKIE),
}


async def respond(method: str, path: str, headers: Mapping[str, str], body: bytes) -> MockResponse:
    """Answer one request as the mock provider.

    Every answer carries a request id as its vendor names it (`x-request-id` for OpenAI paths,
    `request-id` for Anthropic ones, `req_<n>`), that vendor's rate-limit headers, and a few
    headers no client reads (`openai-processing-ms`, an organization, a `set-cookie`).

    Arguments:
        method: the HTTP method, upper case.
        path: the URL path, without query string.
        headers: request headers, names in lower case.
        body: the raw request body.

    Returns:
        The answer; iterate its body (and `aclose()` it to stop early).
    """
    anthropic = path.startswith("/v1/messages") or (path.startswith("/v1/models") and "anthropic-version" in headers)
    serial = next_serial()
    request_id = ("request-id", f"req_{serial}") if anthropic else ("x-request-id", f"req_{serial}")
    if path.startswith("/mock/"):
        return _mock_route(method, path, body, (request_id,))
    STATS.requests += 1
    head = (request_id, *_rate_limits(anthropic), *_OTHER[anthropic])
    try:
        return await _answer(method, path, headers, body, anthropic, head)
    except MockError as err:
        return _json(err.status, error_bytes(err, anthropic, request_id[1]), head, err.headers)


# Streamed answers: SSE, and AWS event-stream framing (`mock.bedrock`).
_STREAM_TYPES: Final = ("text/event-stream", "application/vnd.amazon.eventstream")


def _is_stream(headers: list[tuple[str, str]]) -> bool:
    return any(name == "content-type" and value.startswith(_STREAM_TYPES) for name, value in headers)


async def _send_stream(response: MockResponse, start: dict[str, Any], receive: Receive, send: Send) -> None:
    """Send a stream while a watcher listens for the client going away."""
    task = asyncio.current_task()
    assert task is not None
    state = {"finished": False, "disconnected": False}

    async def watch() -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                if not state["finished"]:
                    state["disconnected"] = True
                    task.cancel()
                return

    watcher = asyncio.ensure_future(watch())
    body = response.body
    try:
        await send(start)
        async for chunk in body:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        state["finished"] = True
    except asyncio.CancelledError:
        if not state["disconnected"]:
            raise
        task.uncancel()
    finally:
        watcher.cancel()
        await body.aclose()


# How an ASGI app of the mock answers a request: the scope, the headers (names in lower case), the body.
Answer = Callable[[Scope, dict[str, str], bytes], Awaitable["MockResponse"]]


async def _answer_plain(scope: Scope, headers: dict[str, str], body: bytes) -> MockResponse:
    return await respond(scope["method"], scope["path"], headers, body)


async def _http(scope: Scope, receive: Receive, send: Send, answer: Answer = _answer_plain) -> None:
    message = await receive()
    body: bytes = message.get("body", b"")
    if message.get("more_body"):
        parts = [body]
        while message.get("more_body"):
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            parts.append(message.get("body", b""))
        body = b"".join(parts)
    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
    response = await answer(scope, headers, body)
    raw_headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in response.headers]
    start = {"type": "http.response.start", "status": response.status, "headers": raw_headers}
    if _is_stream(response.headers):
        await _send_stream(response, start, receive, send)
        return
    await send(start)
    # One chunk, normally: it goes out with the end of the body, in one send.
    pending = b""
    try:
        async for chunk in response.body:
            if pending:
                await send({"type": "http.response.body", "body": pending, "more_body": True})
            pending = chunk
    except MockDisconnect:
        await send({"type": "http.response.body", "body": pending, "more_body": True})
        raise
    await send({"type": "http.response.body", "body": pending})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await _http(scope, receive, send)
    elif scope["type"] == "lifespan":
        await _lifespan(receive, send)


def create_app() -> ASGIApp:
    """The mock provider as an ASGI app (granian: `--factory sluicegate.mock.app:create_app`)."""
    return _app


def serve(answer: Answer) -> ASGIApp:
    """An ASGI app of the mock that answers with `answer`: a vendor's wire around `respond`
    (`mock.azure`, `mock.gemini`), with the plain app's streaming and disconnect handling."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await _http(scope, receive, send, answer)
        elif scope["type"] == "lifespan":
            await _lifespan(receive, send)

    return app
