"""The upstream client: a pooled keep-alive HTTP client (aiohttp), an in-process transport for the
mock provider, phase timeouts, and the one place where transport exceptions become gateway errors.

aiohttp was chosen by measurement (see BENCHMARKS.md): under concurrency it spends a fraction of the
CPU per request that httpx does. Timeouts are per phase:

- `connect_timeout_s`: establishing the TCP/TLS connection;
- `first_byte_timeout_s`: from sending the request to the response headers (for a non-streamed
  call, to the whole answer: its headers only come when it is complete);
- `chunk_timeout_s`: the longest silence between two pieces of the response body;
- `total_timeout_s`: the whole exchange, streams included.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

import aiohttp

from sluicegate.config import UpstreamSettings
from sluicegate.errors import UpstreamError, UpstreamTimeout, UpstreamUnreachable

# Response headers worth handing to the client with an upstream error: they steer SDK retries.
RETRY_HEADERS = ("retry-after", "retry-after-ms", "x-should-retry")


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float
    first_byte: float
    chunk: float
    total: float

    @classmethod
    def from_settings(cls, s: UpstreamSettings) -> Timeouts:
        return cls(s.connect_timeout_s, s.first_byte_timeout_s, s.chunk_timeout_s, s.total_timeout_s)


def upstream_error(exc: BaseException, phase: str) -> UpstreamError:
    """The gateway error for a transport exception, naming the phase but never the URL or key."""
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamTimeout(f"the provider did not answer in time ({phase})")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamUnreachable("the provider could not be reached")
    return UpstreamUnreachable(f"the connection to the provider broke ({phase})")


_TRANSPORT_ERRORS = (TimeoutError, aiohttp.ClientError, ConnectionError, OSError)


@contextlib.contextmanager
def map_upstream_errors(phase: str) -> Iterator[None]:
    """Turn transport exceptions into `UpstreamError`s (see `upstream_error`).

    Raises:
        UpstreamTimeout: a phase took longer than its timeout.
        UpstreamUnreachable: the connection could not be made, or broke.
    """
    try:
        yield
    except _TRANSPORT_ERRORS as exc:
        raise upstream_error(exc, phase) from exc


class _Watchdog:
    """The between-chunk and total timeouts of one stream, with one timer for the whole stream
    (a timeout context per chunk would cost a timer per chunk). It only fires while the relay is
    waiting for the provider, never while it is writing to the client."""

    __slots__ = ("chunk", "deadline", "fired", "handle", "loop", "reading", "since", "task")

    def __init__(self, chunk: float, deadline: float) -> None:
        self.loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        self.chunk = chunk
        self.deadline = deadline
        self.fired = False
        self.reading = False
        self.since = self.loop.time()
        self.handle = self.loop.call_at(min(self.since + chunk, deadline), self._check)

    def _check(self) -> None:
        now = self.loop.time()
        due = min(self.since + self.chunk, self.deadline)
        if self.reading and now >= due:
            self.fired = True
            self.task.cancel()
            return
        self.handle = self.loop.call_at(due if self.reading else now + self.chunk, self._check)

    def start_read(self) -> None:
        self.since = self.loop.time()
        if self.since >= self.deadline:
            raise UpstreamTimeout("the provider did not answer in time (total)")
        self.reading = True

    def stop(self) -> None:
        self.handle.cancel()


class UpstreamResponse(Protocol):
    status: int
    content_type: str

    def header(self, name: str) -> str | None: ...

    def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; raises `UpstreamError` on a timeout or a broken connection."""
        ...

    async def read(self, limit: int | None = None) -> bytes: ...

    def close(self) -> None:
        """Abort the exchange now (the client went away); safe to call twice."""
        ...


class Upstream(Protocol):
    async def send(
        self,
        url: str | None,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        timeouts: Timeouts,
        whole: bool = False,
    ) -> UpstreamResponse:
        """Send the request; with `whole`, also read the whole answer under the first-byte timeout
        (a non-streamed answer's headers come when it is complete, so one timer covers both)."""
        ...


class _Response:
    """The timed body reading that both transports share; subclasses supply `_next()`."""

    __slots__ = ("_deadline", "_timeouts", "content_type", "status")

    def __init__(self, status: int, content_type: str, timeouts: Timeouts, deadline: float) -> None:
        self.status = status
        self.content_type = content_type
        self._timeouts = timeouts
        self._deadline = deadline

    async def _next(self) -> bytes:
        """The next piece of the body; b"" at its end."""
        raise NotImplementedError

    async def _read_all(self, limit: int | None) -> bytes:
        """The rest of the body (its first `limit` bytes)."""
        parts: list[bytes] = []
        size = 0
        while limit is None or size < limit:
            chunk = await self._next()
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
        return b"".join(parts)

    async def chunks(self) -> AsyncIterator[bytes]:
        watch = _Watchdog(self._timeouts.chunk, self._deadline)
        try:
            while True:
                watch.start_read()
                try:
                    chunk = await self._next()
                except asyncio.CancelledError:
                    if watch.fired and watch.task.uncancel() == 0:
                        raise UpstreamTimeout("the provider did not answer in time (between chunks)") from None
                    raise
                except _TRANSPORT_ERRORS as exc:
                    raise upstream_error(exc, "reading the response") from exc
                finally:
                    watch.reading = False
                if not chunk:
                    return
                yield chunk
        finally:
            watch.stop()

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body (or its first `limit` bytes), which must arrive within the chunk timeout."""
        loop = asyncio.get_running_loop()
        try:
            with map_upstream_errors("reading the response"):
                async with asyncio.timeout_at(min(loop.time() + self._timeouts.chunk, self._deadline)):
                    body = await self._read_all(limit)
        finally:
            self.release()
        return body if limit is None else body[:limit]

    def release(self) -> None:
        """Give the connection back after a complete read."""

    def close(self) -> None:
        """Abort the exchange now (the client went away); safe to call twice."""


class _HttpResponse(_Response):
    __slots__ = ("_body", "_resp")

    def __init__(
        self, resp: aiohttp.ClientResponse, timeouts: Timeouts, deadline: float, body: bytes | None = None
    ) -> None:
        super().__init__(resp.status, resp.headers.get("content-type", ""), timeouts, deadline)
        self._resp = resp
        self._body = body

    async def read(self, limit: int | None = None) -> bytes:
        if self._body is None:
            return await super().read(limit)
        self.release()
        return self._body if limit is None else self._body[:limit]

    def header(self, name: str) -> str | None:
        return self._resp.headers.get(name)

    async def _next(self) -> bytes:
        return await self._resp.content.readany()

    async def _read_all(self, limit: int | None) -> bytes:
        if limit is None:
            return await self._resp.read()
        return await super()._read_all(limit)

    def release(self) -> None:
        self._resp.release()

    def close(self) -> None:
        self._resp.close()


class HttpUpstream:
    """A pooled keep-alive client for HTTP providers; create it inside the running loop.

    Arguments:
        settings: pool size and keep-alive.
    """

    def __init__(self, settings: UpstreamSettings) -> None:
        connector = aiohttp.TCPConnector(
            limit=settings.max_connections,
            limit_per_host=0,
            keepalive_timeout=settings.keepalive_s,
            ttl_dns_cache=300,
            enable_cleanup_closed=True,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            timeout=aiohttp.ClientTimeout(total=None),
        )
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    async def send(
        self,
        url: str | None,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        timeouts: Timeouts,
        whole: bool = False,
    ) -> UpstreamResponse:
        assert url is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeouts.total
        timeout = self._timeouts.get(timeouts.connect)
        if timeout is None:
            timeout = self._timeouts[timeouts.connect] = aiohttp.ClientTimeout(
                total=None, sock_connect=timeouts.connect
            )
        answer = None
        with map_upstream_errors("waiting for the first byte"):
            async with asyncio.timeout_at(min(loop.time() + timeouts.first_byte, deadline)):
                resp = await self._session.post(url, data=body, headers=headers, timeout=timeout)
                if whole:
                    answer = await resp.read()
        return _HttpResponse(resp, timeouts, deadline, answer)

    async def close(self) -> None:
        await self._session.close()


class _InProcessResponse(_Response):
    __slots__ = ("_body", "_headers")

    def __init__(self, status: int, headers: list[tuple[str, str]], body: AsyncIterator[bytes], t: Timeouts) -> None:
        self._headers = {k.lower(): v for k, v in headers}
        super().__init__(status, self._headers.get("content-type", ""), t, asyncio.get_running_loop().time() + t.total)
        self._body = body

    def header(self, name: str) -> str | None:
        return self._headers.get(name)

    async def _next(self) -> bytes:
        return await anext(self._body, b"")

    def close(self) -> None:
        aclose = getattr(self._body, "aclose", None)
        if aclose is not None:
            task = asyncio.ensure_future(aclose())
            task.add_done_callback(lambda t: t.cancelled() or t.exception())


class InProcessUpstream:
    """The `mock` provider without a socket: calls `sluicegate.mock.app.respond` directly."""

    def __init__(self) -> None:
        from sluicegate.mock.app import respond

        self._respond = respond

    async def send(
        self,
        url: str | None,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        timeouts: Timeouts,
        whole: bool = False,
    ) -> UpstreamResponse:
        with map_upstream_errors("waiting for the first byte"):
            async with asyncio.timeout(timeouts.first_byte):
                resp = await self._respond("POST", path, headers, body)
        return _InProcessResponse(resp.status, resp.headers, resp.body, timeouts)
