"""The upstream client for the operator's providers (`proxy.http1`) on real loopback sockets, against
a raw TCP server that writes exactly the bytes each test gives it: keep-alive reuse, framing
(content-length, chunked, until close, 1xx), streams that arrive piece by piece, the bounds and the
errors, the connection limit, and header values that would break the request's framing."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sluicegate.config import UpstreamSettings
from sluicegate.errors import UpstreamError, UpstreamProtocolError, UpstreamTimeout, UpstreamUnreachable
from sluicegate.proxy.http1 import NativeUpstream
from sluicegate.proxy.upstream import Timeouts

TIMEOUTS = Timeouts(connect=2, first_byte=2, chunk=2, total=10)
BODY = b'{"model": "m", "messages": []}'
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-test"}


def ok(body: bytes = b'{"ok": true}', extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n%s" % (
        len(body),
        extra,
        body,
    )


Answer = Callable[[int, bytes], "bytes | list[bytes | float] | None"]


@dataclass
class Raw:
    """A TCP server: for each request read (head and content-length body), `answer(n, request)` gives
    the bytes to write (a list: pieces, with float pauses between them; None: close at once)."""

    answer: Answer
    port: int = 0
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    close_after_answer: bool = False


async def _read_request(reader: asyncio.StreamReader) -> bytes | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + await reader.readexactly(length)


@contextlib.asynccontextmanager
async def raw_server(
    answer: Answer, close_after_answer: bool = False, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1"
) -> AsyncIterator[Raw]:
    raw = Raw(answer, close_after_answer=close_after_answer)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raw.connections += 1
        raw.open_now += 1
        raw.most_open = max(raw.most_open, raw.open_now)
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                raw.requests.append(request)
                out = answer(len(raw.requests), request)
                if out is None:
                    return
                for piece in [out] if isinstance(out, bytes) else out:
                    if isinstance(piece, float):
                        await asyncio.sleep(piece)
                    else:
                        writer.write(piece)
                        await writer.drain()
                if raw.close_after_answer:
                    return
        finally:
            raw.open_now -= 1
            writer.close()

    server = await asyncio.start_server(serve, host, 0, ssl=tls)
    raw.port = server.sockets[0].getsockname()[1]
    try:
        yield raw
    finally:
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def client(**settings: object) -> AsyncIterator[NativeUpstream]:
    upstream = NativeUpstream(UpstreamSettings.model_validate({"max_response_bytes": 4096, **settings}))
    try:
        yield upstream
    finally:
        await upstream.close()


def url(raw: Raw, path: str = "/v1/chat/completions") -> str:
    return f"http://127.0.0.1:{raw.port}{path}"


async def call(
    upstream: NativeUpstream,
    raw: Raw,
    whole: bool = True,
    headers: dict[str, str] = HEADERS,
    url_of: str | None = None,
) -> bytes:
    resp = await upstream.send(url_of or url(raw), "/v1/chat/completions", headers, BODY, TIMEOUTS, whole=whole)
    return await resp.read()


async def test_the_request_is_one_post_with_host_length_and_the_given_headers() -> None:
    async with raw_server(lambda n, r: ok()) as raw, client() as upstream:
        resp = await upstream.send(url(raw, "/v1/x?api-version=1"), "", HEADERS, BODY, TIMEOUTS, whole=True)
        assert (resp.status, resp.header("Content-Type"), await resp.read()) == (
            200,
            "application/json",
            b'{"ok": true}',
        )
    head, _, body = raw.requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/x?api-version=1 HTTP/1.1"
    assert set(lines[1:]) == {
        b"Host: 127.0.0.1:%d" % raw.port,
        b"content-type: application/json",
        b"authorization: Bearer sk-test",
        b"content-length: %d" % len(BODY),
    }
    assert body == BODY


async def test_one_keep_alive_connection_carries_every_call_in_turn() -> None:
    async with raw_server(lambda n, r: ok(b'{"n": %d}' % n)) as raw, client() as upstream:
        for n in range(1, 6):
            assert await call(upstream, raw) == b'{"n": %d}' % n
        assert raw.connections == 1 and upstream.open_connections == 1


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok",
        b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok",
    ],
    ids=["connection-close", "http-1.0"],
)
async def test_an_answer_that_closes_is_not_reused(answer: bytes) -> None:
    async with raw_server(lambda n, r: answer, close_after_answer=True) as raw, client() as upstream:
        for _ in range(3):
            assert await call(upstream, raw) == b"ok"
        assert raw.connections == 3


async def test_a_body_until_close_and_informational_heads() -> None:
    until_close = [b"HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", b"abc", 0.01, b"def"]
    async with raw_server(lambda n, r: until_close, close_after_answer=True) as raw, client() as upstream:
        assert await call(upstream, raw) == b"abcdef"
        assert await call(upstream, raw) == b"abcdef"
        assert raw.connections == 2


async def test_a_chunked_stream_arrives_piece_by_piece_and_its_connection_is_reused() -> None:
    pieces: list[bytes] = []

    def answer(n: int, request: bytes) -> list[bytes | float]:
        return [
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
            b"5\r\nfirst\r\n",
            0.2,
            b"6\r\nsecond\r\n0\r\n\r\n",
        ]

    async with raw_server(answer) as raw, client() as upstream:
        for _ in range(2):
            resp = await upstream.send(url(raw), "", HEADERS, BODY, TIMEOUTS, whole=False)
            assert resp.content_type == "text/event-stream"
            loop = asyncio.get_running_loop()
            times = []
            async for chunk in resp.chunks():
                pieces.append(chunk)
                times.append(loop.time())
            resp.close()
            assert times[-1] - times[0] >= 0.15  # the first piece came before the second was sent
        assert b"".join(pieces) == b"firstsecond" * 2 and raw.connections == 1


async def test_a_stream_left_before_its_end_closes_its_connection() -> None:
    def answer(n: int, request: bytes) -> list[bytes | float]:
        return [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n", 0.3, b"0\r\n\r\n"]

    async with raw_server(answer) as raw, client() as upstream:
        resp = await upstream.send(url(raw), "", HEADERS, BODY, TIMEOUTS, whole=False)
        async for _ in resp.chunks():
            break
        resp.close()  # the client went away
        await asyncio.sleep(0.05)
        assert upstream.open_connections == 0
        await call(upstream, raw)
        assert raw.connections == 2


@pytest.mark.parametrize(
    ("answer", "error", "code"),
    [
        (b"NOT HTTP\r\n\r\n", UpstreamProtocolError, "upstream_protocol_error"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nx", UpstreamProtocolError, None),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n", UpstreamProtocolError, None),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc", UpstreamUnreachable, None),
        (
            b"HTTP/1.1 302 Found\r\nlocation: http://169.254.169.254/\r\ncontent-length: 0\r\n\r\n",
            UpstreamProtocolError,
            "upstream_redirect",
        ),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n", UpstreamProtocolError, "upstream_response_too_large"),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n400\r\n" + b"a" * 100, UpstreamUnreachable, None),
    ],
    ids=["not-http", "two-lengths", "bad-chunk", "closed-mid-body", "redirect", "declared-too-large", "cut-chunk"],
)
async def test_bad_answers_are_gateway_errors_and_their_connection_is_closed(
    answer: bytes, error: type[UpstreamError], code: str | None
) -> None:
    async with (
        raw_server(lambda n, r: answer if n == 1 else ok(), close_after_answer=True) as raw,
        client() as upstream,
    ):
        with pytest.raises(error) as info:
            await call(upstream, raw)
        if code is not None:
            assert info.value.code == code
        assert await call(upstream, raw) == b'{"ok": true}'  # a new connection serves the next call
        assert raw.connections == 2


async def test_a_chunked_body_past_the_bound_ends_the_read() -> None:
    chunk = b"400\r\n" + b"a" * 1024 + b"\r\n"
    answer = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + chunk * 5 + b"0\r\n\r\n"
    async with raw_server(lambda n, r: answer) as raw, client() as upstream:
        with pytest.raises(UpstreamProtocolError) as info:
            await call(upstream, raw)
        assert info.value.code == "upstream_response_too_large"
        resp = await upstream.send(url(raw), "", HEADERS, BODY, TIMEOUTS, whole=False)
        assert await resp.read(100) == b"a" * 100  # an error body read up to its own limit


async def test_an_unreachable_provider_and_a_silent_one() -> None:
    async with raw_server(lambda n, r: [0.5, ok()]) as raw:
        port = raw.port
        async with client() as upstream:
            with pytest.raises(UpstreamTimeout):
                await upstream.send(
                    url(raw), "", HEADERS, BODY, Timeouts(connect=1, first_byte=0.1, chunk=1, total=5), whole=True
                )
    async with client() as upstream:
        with pytest.raises(UpstreamUnreachable, match="could not be reached"):
            await upstream.send(f"http://127.0.0.1:{port}/v1", "", HEADERS, BODY, TIMEOUTS, whole=True)
        assert upstream.open_connections == 0


@pytest.mark.parametrize("value", ["v\r\nx-injected: 1", "v\nx-injected: 1", "v\rx", "v\x00"])
async def test_a_header_value_that_would_break_the_framing_is_never_sent(value: str) -> None:
    async with raw_server(lambda n, r: ok()) as raw, client() as upstream:
        with pytest.raises(UpstreamProtocolError) as info:
            await call(upstream, raw, headers={**HEADERS, "anthropic-version": value})
        assert info.value.code == "upstream_bad_header"
        assert raw.connections == 0


async def test_at_most_max_connections_are_open_and_waiting_calls_get_them_in_turn() -> None:
    async with raw_server(lambda n, r: [0.05, ok()]) as raw, client(max_connections=2) as upstream:
        results = await asyncio.gather(*(call(upstream, raw) for _ in range(6)))
        assert results == [b'{"ok": true}'] * 6
        assert raw.most_open == 2 and raw.connections == 2


async def test_an_idle_connection_the_provider_closed_is_replaced() -> None:
    async with raw_server(lambda n, r: ok(), close_after_answer=True) as raw, client() as upstream:
        # The answer allows keep-alive, but the server closes right after it (as on its idle timeout).
        assert await call(upstream, raw) == b'{"ok": true}'
        await asyncio.sleep(0.05)
        assert await call(upstream, raw) == b'{"ok": true}'
        assert raw.connections == 2 and upstream.open_connections <= 1


async def test_idle_connections_past_keepalive_are_not_reused() -> None:
    async with raw_server(lambda n, r: ok()) as raw, client(keepalive_s=0.05) as upstream:
        await call(upstream, raw)
        await asyncio.sleep(0.1)
        await call(upstream, raw)
        assert raw.connections == 2


async def test_a_fast_stream_is_not_buffered_without_bound_while_the_reader_waits() -> None:
    piece = b"x" * 65536
    chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
    answer = [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", chunk * 64, b"0\r\n\r\n"]  # 4 MiB
    async with raw_server(lambda n, r: answer) as raw, client(max_response_bytes=1 << 23) as upstream:
        resp = await upstream.send(url(raw), "", HEADERS, BODY, TIMEOUTS, whole=False)
        await asyncio.sleep(0.3)  # the server writes as fast as the client reads
        conn = resp._conn  # type: ignore[attr-defined]
        assert conn is not None and conn.paused and conn.buffered < 3 * (1 << 20)
        total = 0
        async for got in resp.chunks():
            total += len(got)
        resp.close()
        assert total == 64 * len(piece) and raw.connections == 1


async def test_a_pooled_connection_that_goes_silent_times_out_and_is_closed() -> None:
    async with raw_server(lambda n, r: ok() if n == 1 else [1.0, ok()]) as raw, client() as upstream:
        assert await call(upstream, raw) == b'{"ok": true}'
        quick = Timeouts(connect=1, first_byte=0.1, chunk=1, total=5)
        with pytest.raises(UpstreamTimeout, match="first byte"):
            await upstream.send(url(raw), "", HEADERS, BODY, quick, whole=True)
        await asyncio.sleep(0.05)
        assert upstream.open_connections == 0


def server_tls(certs: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs / "s.crt", certs / "s.key")
    return context


async def test_https_with_the_system_trust_store(certs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The client trusts what the system's store trusts (here the test CA, through SSL_CERT_FILE, as
    an operator adds a private CA) and checks the name: both hosts the certificate names work, one
    keep-alive connection carries the calls."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certs / "ca.crt"))
    async with raw_server(lambda n, r: ok(), tls=server_tls(certs)) as raw, client() as upstream:
        for host in ("127.0.0.1", "localhost", "localhost"):
            resp = await upstream.send(f"https://{host}:{raw.port}/v1/x", "", HEADERS, BODY, TIMEOUTS, whole=True)
            assert await resp.read() == b'{"ok": true}'
        assert raw.connections == 2  # one per host name
        assert raw.requests[0].startswith(b"POST /v1/x HTTP/1.1\r\n")


async def test_https_refuses_a_certificate_it_does_not_trust(certs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.setenv("SSL_CERT_DIR", str(certs / "nowhere"))
    async with raw_server(lambda n, r: ok(), tls=server_tls(certs)) as raw, client() as upstream:
        with pytest.raises(UpstreamUnreachable, match="could not be reached") as info:
            await call(upstream, raw, url_of=f"https://127.0.0.1:{raw.port}/v1/x")
        assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)
        assert raw.requests == []


async def test_https_refuses_a_name_the_certificate_does_not_cover(
    certs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certs / "ca.crt"))
    # The certificate names 127.0.0.1 and localhost; this server answers at 127.0.0.2 with it.
    async with raw_server(lambda n, r: ok(), tls=server_tls(certs), host="127.0.0.2") as raw, client() as upstream:
        with pytest.raises(UpstreamUnreachable) as info:
            await call(upstream, raw, url_of=f"https://127.0.0.2:{raw.port}/v1/x")
        assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)
        assert "mismatch" in str(info.value.__cause__) or "match" in str(info.value.__cause__)
        assert raw.requests == []


@dataclass
class Tunnel:
    """A CONNECT proxy: what it was asked (heads), and how many tunnels it opened."""

    port: int = 0
    heads: list[bytes] = field(default_factory=list)
    refuse: bytes | None = None


@contextlib.asynccontextmanager
async def connect_proxy(refuse: bytes | None = None) -> AsyncIterator[Tunnel]:
    tunnel = Tunnel(refuse=refuse)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        tunnel.heads.append(head)
        method, target, _ = head.split(b"\r\n", 1)[0].split(b" ")
        if tunnel.refuse is not None or method != b"CONNECT":
            writer.write(tunnel.refuse or b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
            writer.close()
            return
        host, port = target.rsplit(b":", 1)
        up_reader, up_writer = await asyncio.open_connection(host.decode(), int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    tunnel.port = server.sockets[0].getsockname()[1]
    try:
        yield tunnel
    finally:
        server.close()
        await server.wait_closed()


async def test_https_through_an_egress_proxys_tunnel(certs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTPS_PROXY: a CONNECT tunnel to the provider, TLS inside it (the provider's certificate checked
    as without a proxy), the proxy's credentials on the CONNECT only, the tunnel kept alive."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certs / "ca.crt"))
    async with connect_proxy() as tunnel, raw_server(lambda n, r: ok(), tls=server_tls(certs)) as raw:
        monkeypatch.setenv("HTTPS_PROXY", f"http://team%40corp:s3cret@127.0.0.1:{tunnel.port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        async with client() as upstream:
            for _ in range(3):
                assert await call(upstream, raw, url_of=f"https://localhost:{raw.port}/v1/x") == b'{"ok": true}'
        assert len(tunnel.heads) == 1 and raw.connections == 1
        head = tunnel.heads[0]
        assert head.startswith(b"CONNECT localhost:%d HTTP/1.1\r\n" % raw.port)
        assert b"Proxy-Authorization: Basic dGVhbUBjb3JwOnMzY3JldA==\r\n" in head  # team@corp:s3cret
        assert all(b"Proxy-Authorization" not in r and b"s3cret" not in r for r in raw.requests)


async def test_no_proxy_hosts_are_reached_directly(certs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certs / "ca.crt"))
    async with connect_proxy() as tunnel, raw_server(lambda n, r: ok(), tls=server_tls(certs)) as raw:
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{tunnel.port}")
        monkeypatch.setenv("NO_PROXY", "example.com,localhost")
        async with client() as upstream:
            assert await call(upstream, raw, url_of=f"https://localhost:{raw.port}/v1/x") == b'{"ok": true}'
        assert tunnel.heads == [] and raw.connections == 1


async def test_a_proxy_that_refuses_the_tunnel_is_a_clear_error(certs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    refusal = b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n"
    async with connect_proxy(refuse=refusal) as tunnel:
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{tunnel.port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        async with client() as upstream:
            with pytest.raises(UpstreamUnreachable, match=r"egress proxy refused the tunnel.*407"):
                await upstream.send("https://llm.example.test/v1/x", "", HEADERS, BODY, TIMEOUTS, whole=True)
            assert upstream.open_connections == 0
        assert tunnel.heads[0].startswith(b"CONNECT llm.example.test:443 HTTP/1.1\r\n")


async def test_plain_http_through_a_proxy_sends_the_request_in_absolute_form(monkeypatch: pytest.MonkeyPatch) -> None:
    async with raw_server(lambda n, r: ok()) as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://u:p@127.0.0.1:{proxy.port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        async with client() as upstream:
            resp = await upstream.send("http://llm.internal:8000/v1/chat?x=1", "", HEADERS, BODY, TIMEOUTS, whole=True)
            assert await resp.read() == b'{"ok": true}'
        request = proxy.requests[0]
        assert request.startswith(b"POST http://llm.internal:8000/v1/chat?x=1 HTTP/1.1\r\nHost: llm.internal:8000\r\n")
        assert b"Proxy-Authorization: Basic dTpw\r\n" in request
