"""The upstream client: a pooled keep-alive HTTP client (aiohttp), an in-process transport for the
mock provider, phase timeouts, and the one place where transport exceptions become gateway errors.

aiohttp was chosen by measurement (see BENCHMARKS.md): under concurrency it spends a fraction of the
CPU per request that httpx does. Timeouts are per phase:

- `connect_timeout_s`: establishing the TCP/TLS connection;
- `first_byte_timeout_s`: from sending the request to the response headers (for a non-streamed
  call, to the whole answer: its headers only come when it is complete);
- `chunk_timeout_s`: the longest silence between two pieces of the response body;
- `total_timeout_s`: the whole exchange, streams included.

No redirect is followed (a 3xx is an `upstream_redirect` error), and a non-streamed body is read up to
`max_response_bytes` (past that, `upstream_response_too_large`). The client for tenant base URLs
checks every address it connects to (`proxy/egress.py`), in its resolver and on the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from sluicegate.config import UpstreamSettings
from sluicegate.errors import (
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRefused,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from sluicegate.proxy.egress import METADATA_NAMES, AddressPolicy, AddressRefused

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


def response_too_large(limit: int) -> UpstreamProtocolError:
    return UpstreamProtocolError(
        f"the provider's response is larger than {limit} bytes (upstream.max_response_bytes)",
        code="upstream_response_too_large",
        headers={"x-should-retry": "false"},
    )


def redirect_refused(status: int) -> UpstreamProtocolError:
    """The error for a 3xx answer: redirects are never followed (tenant URLs would reach anywhere)."""
    return UpstreamProtocolError(
        f"the provider answered {status}, a redirect, which the gateway does not follow",
        code="upstream_redirect",
        headers={"x-should-retry": "false"},
    )


def upstream_error(exc: BaseException, phase: str) -> UpstreamError:
    """The gateway error for a transport exception, naming the phase but never the URL or key."""
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamTimeout(f"the provider did not answer in time ({phase})")
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, AddressRefused):
            return UpstreamRefused(str(exc.os_error))
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

    def header_items(self) -> Iterable[tuple[str, str]]:
        """Every header of the answer, names in lower case (for `relay.answer_headers`'s allow-list)."""
        ...

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
    """The timed, bounded body reading that both transports share; subclasses supply `_next()`."""

    __slots__ = ("_deadline", "_max_body", "_timeouts", "_whole", "content_type", "status")

    def __init__(self, status: int, content_type: str, timeouts: Timeouts, deadline: float, max_body: int) -> None:
        self.status = status
        self.content_type = content_type
        self._timeouts = timeouts
        self._deadline = deadline
        self._max_body = max_body
        self._whole: bytes | None = None  # the body, once `preload` read it

    async def _next(self) -> bytes:
        """The next piece of the body; b"" at its end."""
        raise NotImplementedError

    async def _read_all(self, limit: int | None) -> bytes:
        """The rest of the body: its first `limit` bytes, or without `limit` all of it.

        Raises:
            UpstreamProtocolError: without `limit`, the body passed `max_body` bytes
                (`upstream_response_too_large`; the exchange is aborted).
        """
        parts: list[bytes] = []
        size = 0
        while limit is None or size < limit:
            chunk = await self._next()
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
            if limit is None and size > self._max_body:
                self.close()
                raise response_too_large(self._max_body)
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
        """The whole body (or its first `limit` bytes), which must arrive within the chunk timeout.

        Raises:
            UpstreamError: a timeout, a broken connection, or (without `limit`) a body larger than
                `upstream.max_response_bytes`.
        """
        if self._whole is not None:
            self.release()
            return self._whole if limit is None else self._whole[:limit]
        loop = asyncio.get_running_loop()
        try:
            with map_upstream_errors("reading the response"):
                async with asyncio.timeout_at(min(loop.time() + self._timeouts.chunk, self._deadline)):
                    body = await self._read_all(limit)
        finally:
            self.release()
        return body if limit is None else body[:limit]

    async def preload(self) -> None:
        """Read the whole body now (a non-streamed answer, under the caller's first-byte deadline),
        bounded by `max_body`; `read` then hands it out. A failure aborts the exchange (a half-read
        body: the connection cannot go back to the pool)."""
        try:
            self._whole = await self._read_all(None)
        except BaseException:
            self.close()
            raise

    def release(self) -> None:
        """Give the connection back after a complete read."""

    def close(self) -> None:
        """Abort the exchange now (the client went away); safe to call twice."""


class _HttpResponse(_Response):
    __slots__ = ("_resp",)

    def __init__(self, resp: aiohttp.ClientResponse, timeouts: Timeouts, deadline: float, max_body: int) -> None:
        super().__init__(resp.status, resp.headers.get("content-type", ""), timeouts, deadline, max_body)
        self._resp = resp

    def header(self, name: str) -> str | None:
        return self._resp.headers.get(name)

    def header_items(self) -> Iterable[tuple[str, str]]:
        return [(name.lower(), value) for name, value in self._resp.headers.items()]

    async def _next(self) -> bytes:
        return await self._resp.content.readany()

    async def _read_all(self, limit: int | None) -> bytes:
        declared = self._resp.content_length
        if limit is None and declared is not None:
            if declared > self._max_body:
                self.close()
                raise response_too_large(self._max_body)
            # A declared length within the bound: aiohttp reads exactly that much, in one call (the
            # usual non-streamed answer; the loop below is for bodies of no declared length).
            return await self._resp.read()
        return await super()._read_all(limit)

    def release(self) -> None:
        self._resp.release()

    def close(self) -> None:
        self._resp.close()


class GuardedResolver(AbstractResolver):
    """The default resolver, keeping only the addresses `policy` allows (a name whose every address
    is refused is an `AddressRefused`). What it returns is what the connector connects to, and
    the connector caches it for its DNS TTL: the check is made on the answer that is used.

    Arguments:
        policy: the tenant address policy.
        inner: the resolver asked (default: aiohttp's).
    """

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self.inner = inner if inner is not None else DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host.lower().rstrip(".") in METADATA_NAMES:
            raise AddressRefused("metadata")
        found = await self.inner.resolve(host, port, family)
        kept = [r for r in found if self.policy.refusal(r["host"]) is None]
        if not kept:
            kinds = [self.policy.refusal(r["host"]) for r in found]
            raise AddressRefused(next((k for k in kinds if k), "no address"))
        return kept

    async def close(self) -> None:
        await self.inner.close()


def guarded_socket_factory(policy: AddressPolicy) -> Any:
    """A socket factory for the connector that refuses to make a socket for a refused address: the
    last check, on the exact address about to be connected to (address literals never reach the
    resolver)."""

    def make(addr_info: tuple[int, int, int, str, tuple[Any, ...]]) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        kind = policy.refusal(sockaddr[0])
        if kind is not None:
            raise AddressRefused(kind)
        return socket.socket(family=family, type=type_, proto=proto)

    return make


def upstream_session(connector: aiohttp.BaseConnector | None = None, **options: Any) -> aiohttp.ClientSession:
    """A client session for calls to providers and tool servers, shared by every caller: it keeps
    no cookies, so what one caller's answer sets never goes with another caller's request to the
    same host (tests/integration/test_upstream_isolation.py, test_mcp_gateway.py)."""
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(), **options)


def guarded_connector(
    guard: AddressPolicy, dns: AbstractResolver | None = None, **options: Any
) -> aiohttp.TCPConnector:
    """A connector that checks every address it connects to against `guard` (tenant URLs)."""
    return aiohttp.TCPConnector(
        resolver=GuardedResolver(guard, dns), socket_factory=guarded_socket_factory(guard), **options
    )


class HttpUpstream:
    """A pooled keep-alive client for HTTP providers; create it inside the running loop.

    Arguments:
        settings: pool size, keep-alive and the response bound.
        guard: for tenant base URLs, the address policy every connection is checked against
            (None: the operator's own providers, unchecked).
        dns: the resolver the guard asks (default: aiohttp's).
    """

    def __init__(
        self, settings: UpstreamSettings, guard: AddressPolicy | None = None, dns: AbstractResolver | None = None
    ) -> None:
        options: dict[str, Any] = {
            "limit": settings.max_connections,
            "limit_per_host": 0,
            "keepalive_timeout": settings.keepalive_s,
            "ttl_dns_cache": 300,
            "enable_cleanup_closed": True,
        }
        connector = aiohttp.TCPConnector(**options) if guard is None else guarded_connector(guard, dns, **options)
        self._max_body = settings.max_response_bytes
        self._session = upstream_session(
            connector,
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
        with map_upstream_errors("waiting for the first byte"):
            async with asyncio.timeout_at(min(loop.time() + timeouts.first_byte, deadline)):
                resp = await self._session.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False)
                if 300 <= resp.status < 400:
                    resp.close()
                    raise redirect_refused(resp.status)
                answer = _HttpResponse(resp, timeouts, deadline, self._max_body)
                if whole and resp.status < 300:
                    await answer.preload()
        return answer

    async def close(self) -> None:
        await self._session.close()


class _InProcessResponse(_Response):
    __slots__ = ("_body", "_headers")

    def __init__(
        self, status: int, headers: list[tuple[str, str]], body: AsyncIterator[bytes], t: Timeouts, max_body: int
    ) -> None:
        self._headers = {k.lower(): v for k, v in headers}
        deadline = asyncio.get_running_loop().time() + t.total
        super().__init__(status, self._headers.get("content-type", ""), t, deadline, max_body)
        self._body = body

    def header(self, name: str) -> str | None:
        return self._headers.get(name)

    def header_items(self) -> Iterable[tuple[str, str]]:
        return self._headers.items()

    async def _next(self) -> bytes:
        return await anext(self._body, b"")

    def close(self) -> None:
        aclose = getattr(self._body, "aclose", None)
        if aclose is not None:
            task = asyncio.ensure_future(aclose())
            task.add_done_callback(lambda t: t.cancelled() or t.exception())


class InProcessUpstream:
    """The `mock` provider without a socket: calls `sluicegate.mock.app.respond` directly.

    Arguments:
        max_body: the bound on a non-streamed body (`upstream.max_response_bytes`).
    """

    def __init__(self, max_body: int) -> None:
        from sluicegate.mock.app import respond

        self._respond = respond
        self._max_body = max_body

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
        return _InProcessResponse(resp.status, resp.headers, resp.body, timeouts, self._max_body)
