"""What the vendor wires of the mock (`mock.azure`, `mock.gemini`) share: a JSON answer of their
own, reading a whole answer of `respond()`, and a stream whose events they rewrite as it is sent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from sluicegate.mock.app import MockBody, MockResponse
from sluicegate.mock.reply import next_serial
from sluicegate.mock.stats import STATS

__all__ = ["EventRewrite", "RewrittenStream", "json_answer", "read_whole", "record", "sse_json", "with_body"]

# One event in, the events to send instead out (none: dropped); called with None at the end of the
# stream, for what it held back.
EventRewrite = Callable[[bytes | None], list[bytes]]


class _Chunks:
    """A body of chunks already read (a `MockBody`)."""

    __slots__ = ("_chunks",)

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        if not self._chunks:
            raise StopAsyncIteration
        return self._chunks.pop(0)

    async def aclose(self) -> None:
        self._chunks.clear()


def json_answer(status: int, payload: Any, headers: tuple[tuple[str, str], ...] = ()) -> MockResponse:
    """A JSON answer of the vendor's own (an error `respond()` knows nothing of)."""
    raw = orjson.dumps(payload)
    head = [("content-type", "application/json"), ("content-length", str(len(raw))), *headers]
    head.append(("x-request-id", f"req_{next_serial()}"))
    return MockResponse(status, head, _Chunks([raw]))


async def read_whole(response: MockResponse) -> bytes:
    """A non-streamed answer's body (it is one chunk, unless a fault broke it)."""
    return b"".join([chunk async for chunk in response.body])


def with_body(response: MockResponse, raw: bytes) -> MockResponse:
    """`response` with another (whole) body, its content-length set to match."""
    headers = [(k, str(len(raw)) if k == "content-length" else v) for k, v in response.headers]
    return MockResponse(response.status, headers, _Chunks([raw]))


def sse_json(event: bytes) -> dict[str, Any] | None:
    """The JSON object of a `data: {…}` event, or None (`[DONE]`, another event, not JSON)."""
    if not event.startswith(b"data: {"):
        return None
    try:
        value = orjson.loads(event[6:])
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


class RewrittenStream:
    """A streamed answer whose events pass through `rewrite` as they are read (a `MockBody`):
    the inner body's pacing, faults and stream counting stay its own."""

    __slots__ = ("_done", "_inner", "_out", "_rewrite")

    def __init__(self, inner: MockBody, rewrite: EventRewrite) -> None:
        self._inner = inner
        self._rewrite = rewrite
        self._out: list[bytes] = []
        self._done = False

    def __aiter__(self) -> RewrittenStream:
        return self

    async def __anext__(self) -> bytes:
        while not self._out:
            if self._done:
                raise StopAsyncIteration
            try:
                event = await self._inner.__anext__()
            except StopAsyncIteration:
                self._done = True
                self._out = self._rewrite(None)
                continue
            self._out = self._rewrite(event)
        return self._out.pop(0)

    async def aclose(self) -> None:
        self._done = True
        self._out.clear()
        await self._inner.aclose()


def record(method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """Put the request as the vendor's wire carried it (its path and query string, the body it
    sent) in `STATS.last_request`, in place of what `respond()` noted; returns the record."""
    try:
        parsed: Any = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    seen = {"method": method, "path": path, "query": query, "headers": dict(headers), "body": parsed}
    STATS.last_request = seen
    return seen
