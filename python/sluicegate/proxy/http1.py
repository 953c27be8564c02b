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

Egress proxies: `HTTPS_PROXY` / `HTTP_PROXY` (and their lower-case forms) are honoured, with
`NO_PROXY` naming hosts reached directly, read when the client is made. An https provider is reached
through the proxy's CONNECT tunnel (TLS end to end, the provider's certificate checked as without a
proxy); an http one by sending the request to the proxy in absolute form. Credentials in the proxy's
URL go as `Proxy-Authorization: Basic`.

Tenant base URLs keep the aiohttp client of `proxy.upstream` (`HttpUpstream` with a guard): its
resolver and socket hooks check every address it connects to.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import urllib.request
from collections import deque
from collections.abc import Iterable, Mapping
from urllib.parse import unquote, urlsplit

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

# pool key (host, port, tls), request target, Host, extra header lines (a proxy's credentials)
Target = tuple[tuple[str, int, bool], bytes, bytes, bytes]


class _Proxy:
    """An egress proxy from `HTTPS_PROXY` / `HTTP_PROXY` (an http:// URL, credentials optional)."""

    __slots__ = ("auth", "host", "port")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname:
            raise UpstreamUnreachable("the egress proxy must be an http:// URL (HTTPS_PROXY / HTTP_PROXY)")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.auth = b""
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            self.auth = b"Proxy-Authorization: Basic " + base64.b64encode(pair) + b"\r\n"


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

    def expire(self) -> None:
        """The first-byte deadline passed: the exchange ends (and the connection with it)."""
        if self.error is None and not self.parser.done:
            self.error = TimeoutError()
            self._abort()
            self._wake()

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


class _TunnelHandshake(asyncio.Protocol):
    """The proxy's answer to a CONNECT: its head (bounded), then the connection is the tunnel's."""

    def __init__(self) -> None:
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        if self.answer.done():
            return
        self.buffer += data
        if b"\r\n\r\n" in self.buffer:
            self.answer.set_result(bytes(self.buffer))
        elif len(self.buffer) > _MAX_HEAD:
            self.answer.set_exception(UpstreamUnreachable("the egress proxy's answer to the tunnel is too large"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answer.done():
            self.answer.set_exception(UpstreamUnreachable("the egress proxy closed the tunnel before answering"))


class _NativeResponse(_Response):
    __slots__ = ("_conn", "_headers")

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

    def header(self, name: str) -> str | None:
        return self._headers.get(name.lower())

    def header_items(self) -> Iterable[tuple[str, str]]:
        return self._headers.items()

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
        self._proxies = urllib.request.getproxies_environment()
        self._proxy_of: dict[tuple[str, bool], _Proxy | None] = {}

    def _proxy_for(self, host: str, tls: bool) -> _Proxy | None:
        """The egress proxy for `host` (None: connect directly)."""
        key = (host, tls)
        if key not in self._proxy_of:
            url = self._proxies.get("https" if tls else "http")
            bypass = url is None or urllib.request.proxy_bypass_environment(host, self._proxies)
            self._proxy_of[key] = None if bypass else _Proxy(url)  # type: ignore[arg-type]
        return self._proxy_of[key]

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
            extra = b""
            proxy = None if tls else self._proxy_for(parts.hostname, tls)
            if proxy is not None:  # a plain-http provider through a proxy: the request in absolute form
                path = f"http://{host}{path}"
                extra = proxy.auth
            held = ((parts.hostname, port, tls), path.encode("latin-1"), host.encode("idna"), extra)
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
        key, target, host, extra = self._target(url)
        request = _request_bytes(target, host, headers, body, extra)
        first_byte = min(loop.time() + timeouts.first_byte, deadline)
        with map_upstream_errors("waiting for the first byte"):
            # An idle pooled connection (the usual case) needs no timeout context: one timer on the
            # connection covers the head (and a whole answer's body); a new connection or a wait
            # for a free one runs under a timeout context of the same deadline.
            conn = self._idle_connection(key, loop.time())
            if conn is None:
                async with asyncio.timeout_at(first_byte):
                    conn = await self._acquire(key, timeouts.connect)
            timer = loop.call_at(first_byte, conn.expire)
            try:
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
                    await answer.preload()
            finally:
                timer.cancel()
        return answer

    # -- the pool -----------------------------------------------------------------------------------

    async def _acquire(self, key: tuple[str, int, bool], connect_timeout: float) -> _Connection:
        loop = asyncio.get_running_loop()
        while True:
            conn = self._idle_connection(key, loop.time())
            if conn is not None:
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
                proxy = self._proxy_for(host, tls)
                if proxy is not None and tls:
                    await self._tunnel(conn, proxy, host, port)
                elif proxy is not None:
                    await loop.create_connection(lambda: conn, proxy.host, proxy.port)
                elif tls:
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

    async def _tunnel(self, conn: _Connection, proxy: _Proxy, host: str, port: int) -> None:
        """Open a CONNECT tunnel through `proxy` to host:port, then TLS with the provider inside it."""
        loop = asyncio.get_running_loop()
        transport, handshake = await loop.create_connection(_TunnelHandshake, proxy.host, proxy.port)
        try:
            authority = (f"[{host}]" if ":" in host else host).encode("idna") + b":%d" % port
            transport.write(b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (authority, authority, proxy.auth))
            head = await handshake.answer
            status = head.split(b" ", 2)[1] if head.startswith(b"HTTP/1.") and b" " in head else b""
            if status != b"200":
                code = status.decode("latin-1") or "no status"
                raise UpstreamUnreachable(f"the egress proxy refused the tunnel to the provider ({code})")
            secure = await loop.start_tls(transport, handshake, self._tls_context(), server_hostname=host)
        except BaseException:
            transport.close()
            raise
        assert secure is not None
        secure.set_protocol(conn)
        conn.connection_made(secure)

    def _idle_connection(self, key: tuple[str, int, bool], now: float) -> _Connection | None:
        """A pooled connection to `key` that is still open and within its keep-alive, or None."""
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if conn.closed or conn.broken or now - conn.idle_since > self._keepalive:
                conn._abort()
                continue
            return conn
        return None

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


def _request_bytes(target: bytes, host: bytes, headers: Mapping[str, str], body: bytes, extra: bytes = b"") -> bytes:
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
            extra,
            b"content-length: %d\r\n\r\n" % len(body),
            body,
        )
    )
