"""The upstream client for the operator's own providers: HTTP/1.1 keep-alive connections on asyncio
transports, each response parsed by the Rust extension (`_core.ResponseParser`: the head by
`httparse`, the body's framing removed as bytes arrive).

Why not aiohttp here: a provider call is always the same shape (one POST with a JSON body, one
answer read whole or relayed as it streams), and aiohttp's general client (cookies, redirects,
tracing, proxies, payload registry, per-request timer objects) spent several times more CPU per
call than the call itself needs (BENCHMARKS.md, "A leaner upstream client"). What it must keep is
kept: a pool of keep-alive connections per host (at most `upstream.max_connections` open, idle
ones closed after `upstream.keepalive_s`), TLS with the system's trust store, the phase timeouts and
body bounds of `proxy.upstream` (the response classes share them), backpressure (a stream's reading
pauses while more than `_HIGH_WATER` bytes wait for the client), no redirect followed, and header
values that cannot break the request's framing. A connection goes back to the pool only after a
complete response that allows it; anything else (an error, a client that left mid-stream, a body
read only in part) closes it. A POST is never retried on another connection.

Tenant base URLs keep the aiohttp client of `proxy.upstream` (`HttpUpstream` with a guard): its
resolver and socket hooks check every address it connects to.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Mapping
from urllib.parse import urlsplit

from sluicegate._core import ResponseParser
from sluicegate.config import UpstreamSettings
from sluicegate.errors import UpstreamProtocolError, UpstreamUnreachable
from sluicegate.proxy.upstream import (
    Timeouts,
    UpstreamResponse,
    _Response,
    map_upstream_errors,
    redirect_refused,
    response_too_large,
)

__all__ = ["NativeUpstream"]

_HIGH_WATER = 1 << 20  # pause reading a stream while this much waits to be relayed...
_LOW_WATER = 1 << 18  # ...and resume below this
_MAX_HEAD = 64 * 1024  # a response head, a chunk-size line or trailers

Target = tuple[tuple[str, int, bool], bytes, bytes]  # pool key (host, port, tls), request target, Host


class _Connection(asyncio.Protocol):
    """One keep-alive connection: the bytes of the response in flight, parsed as they arrive."""

    __slots__ = (
        "broken",
        "buffered",
        "chunks",
        "closed",
        "counted",
        "error",
        "head",
        "idle_since",
        "key",
        "parser",
        "paused",
        "pool",
        "transport",
        "waiter",
    )

    def __init__(self, pool: NativeUpstream, key: tuple[str, int, bool]) -> None:
        self.pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.parser = ResponseParser(_MAX_HEAD)
        self.waiter: asyncio.Future[None] | None = None
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.head: tuple[int, dict[str, str], bool] | None = None
        self.error: BaseException | None = None
        self.closed = False
        self.paused = False
        self.broken = False
        self.counted = True  # in the pool's count of open connections
        self.idle_since = 0.0

    # -- asyncio.Protocol -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport subclasses

    def data_received(self, data: bytes) -> None:
        if self.idle_since:  # bytes on an idle connection: nothing was asked, it cannot be trusted
            self.broken = True
            self._abort()
            return
        try:
            head, body, _ = self.parser.feed(data)
        except ValueError as exc:
            self.error = UpstreamProtocolError(f"the provider's answer is not valid HTTP/1.1: {exc}")
            self._abort()
            self._wake()
            return
        if head is not None:
            self.head = head
        if body:
            self.chunks.append(body)
            self.buffered += len(body)
            if self.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
                self.paused = True
                self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        try:
            self.parser.eof()
        except ValueError:
            if self.error is None:
                self.error = ConnectionResetError("the connection closed before the answer was complete")
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.parser.done and self.error is None:
            self.error = exc or ConnectionResetError("the connection closed before the answer was complete")
        self.pool._lost(self)
        self._wake()

    # -- the exchange -------------------------------------------------------------------------------

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None

    def _abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def start(self, request: bytes) -> None:
        """Send a request (the connection is idle: no response in flight)."""
        assert self.transport is not None
        self.parser.reset()
        self.head = None
        self.idle_since = 0.0
        self.transport.write(request)

    async def read_head(self) -> tuple[int, dict[str, str], bool]:
        while self.head is None:
            if self.error is not None:
                raise self.error
            if self.closed:
                raise ConnectionResetError("the connection closed before the answer's head")
            await self._wait()
        return self.head

    async def next_chunk(self) -> bytes:
        """The next piece of the body; b"" at its end."""
        while True:
            if self.chunks:
                chunk = self.chunks.popleft()
                self.buffered -= len(chunk)
                if self.paused and self.buffered < _LOW_WATER and self.transport is not None:
                    self.paused = False
                    self.transport.resume_reading()
                return chunk
            if self.parser.done:
                return b""
            if self.error is not None:
                raise self.error
            if self.closed:
                raise ConnectionResetError("the connection closed before the answer was complete")
            await self._wait()


class _NativeResponse(_Response):
    __slots__ = ("_body", "_conn", "_headers")

    def __init__(
        self,
        conn: _Connection,
        status: int,
        headers: dict[str, str],
        timeouts: Timeouts,
        deadline: float,
        max_body: int,
    ) -> None:
        super().__init__(status, headers.get("content-type", ""), timeouts, deadline, max_body)
        self._conn: _Connection | None = conn
        self._headers = headers
        self._body: bytes | None = None

    def header(self, name: str) -> str | None:
        return self._headers.get(name.lower())

    async def _next(self) -> bytes:
        conn = self._conn
        if conn is None:
            return b""
        return await conn.next_chunk()

    async def _read_all(self, limit: int | None) -> bytes:
        if limit is None:
            declared = self._headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > self._max_body:
                self.close()
                raise response_too_large(self._max_body)
        return await super()._read_all(limit)

    async def read(self, limit: int | None = None) -> bytes:
        if self._body is None:
            return await super().read(limit)
        self.release()
        return self._body if limit is None else self._body[:limit]

    async def preload(self) -> None:
        """Read the whole body now (a non-streamed answer), bounded by `max_body`."""
        self._body = await self._read_all(None)

    def release(self) -> None:
        """The exchange is over: a connection whose answer was read to its end and allows it goes
        back to the pool, any other is closed."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.pool._put(conn)

    def close(self) -> None:
        self.release()


class NativeUpstream:
    """A pooled keep-alive HTTP/1.1 client for the operator's providers; create it inside the
    running loop (see the module docstring).

    Arguments:
        settings: pool size, keep-alive and the response bound.
    """

    def __init__(self, settings: UpstreamSettings) -> None:
        self._max_body = settings.max_response_bytes
        self._limit = max(1, settings.max_connections)
        self._keepalive = settings.keepalive_s
        self._idle: dict[tuple[str, int, bool], list[_Connection]] = {}
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._targets: dict[str, Target] = {}
        self._tls: ssl.SSLContext | None = None
        self._closing = False

    def _target(self, url: str) -> Target:
        held = self._targets.get(url)
        if held is None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise UpstreamUnreachable("the provider's URL is not an http(s) URL")
            tls = parts.scheme == "https"
            port = parts.port or (443 if tls else 80)
            path = parts.path or "/"
            if parts.query:
                path += "?" + parts.query
            host = parts.netloc.rsplit("@", 1)[-1]
            held = ((parts.hostname, port, tls), path.encode("latin-1"), host.encode("idna"))
            if len(self._targets) >= 4096:
                self._targets.clear()
            self._targets[url] = held
        return held

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
        key, target, host = self._target(url)
        request = _request_bytes(target, host, headers, body)
        with map_upstream_errors("waiting for the first byte"):
            async with asyncio.timeout_at(min(loop.time() + timeouts.first_byte, deadline)):
                conn = await self._acquire(key, timeouts.connect)
                try:
                    conn.start(request)
                    status, answer_headers, _ = await conn.read_head()
                except BaseException:
                    conn._abort()
                    self._put(conn)
                    raise
                if 300 <= status < 400:
                    conn._abort()
                    self._put(conn)
                    raise redirect_refused(status)
                answer = _NativeResponse(conn, status, answer_headers, timeouts, deadline, self._max_body)
                if whole and status < 300:
                    try:
                        await answer.preload()
                    except BaseException:
                        conn._abort()  # a half-read body: the connection cannot go back to the pool
                        answer.release()
                        raise
        return answer

    # -- the pool -----------------------------------------------------------------------------------

    async def _acquire(self, key: tuple[str, int, bool], connect_timeout: float) -> _Connection:
        loop = asyncio.get_running_loop()
        while True:
            idle = self._idle.get(key)
            while idle:
                conn = idle.pop()
                if conn.closed or conn.broken or loop.time() - conn.idle_since > self._keepalive:
                    conn._abort()
                    continue
                return conn
            if self._open < self._limit:
                break
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self._open += 1
        host, port, tls = key
        conn = _Connection(self, key)
        try:
            async with asyncio.timeout(connect_timeout):
                if tls:
                    await loop.create_connection(
                        lambda: conn, host, port, ssl=self._tls_context(), server_hostname=host
                    )
                else:
                    await loop.create_connection(lambda: conn, host, port)
        except BaseException as exc:
            conn.closed = True
            self._uncount(conn)
            if isinstance(exc, OSError | ssl.SSLError) and not isinstance(exc, TimeoutError):
                raise UpstreamUnreachable("the provider could not be reached") from exc
            raise
        return conn

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    def _put(self, conn: _Connection) -> None:
        """Take a connection back from an exchange: idle if it can carry another request."""
        if conn.closed or self._closing or not conn.parser.reusable or conn.chunks:
            if not conn.closed:
                conn._abort()  # connection_lost comes later and counts it out
            return
        conn.idle_since = asyncio.get_running_loop().time() or 1e-9
        self._idle.setdefault(conn.key, []).append(conn)
        self._wake_one()

    def _lost(self, conn: _Connection) -> None:
        """A connection's transport closed (either side)."""
        idle = self._idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)
        self._uncount(conn)

    def _uncount(self, conn: _Connection) -> None:
        if conn.counted:
            conn.counted = False
            self._open -= 1
            self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    @property
    def open_connections(self) -> int:
        """Connections open now (in use and idle)."""
        return self._open

    async def close(self) -> None:
        self._closing = True
        for idle in list(self._idle.values()):
            for conn in idle:
                conn._abort()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports report their closing


def _request_bytes(target: bytes, host: bytes, headers: Mapping[str, str], body: bytes) -> bytes:
    """The request's bytes. A header name or value with a line break (or NUL) would let its text end
    the header and start another: refused, as an error of the gateway's own configuration."""
    text = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
    if text.count("\n") != len(headers) or text.count("\r") != len(headers) or "\x00" in text:
        raise UpstreamProtocolError(
            "a header for the provider holds a line break; the request was not sent", code="upstream_bad_header"
        )
    return b"".join(
        (
            b"POST ",
            target,
            b" HTTP/1.1\r\nHost: ",
            host,
            b"\r\n",
            text.encode(),
            b"content-length: %d\r\n\r\n" % len(body),
            body,
        )
    )
