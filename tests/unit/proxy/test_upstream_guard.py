"""The upstream client for tenant base URLs on real loopback sockets: every address is checked when
the connection is made (names and literals, a rebound name too), nothing refused is ever connected
to, redirects are not followed, bodies are bounded, and what is allowed stays resolved once and
pooled.

DNS is a stand-in that answers loopback addresses only: no test sends anything off this machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from sluicegate.config import UpstreamSettings
from sluicegate.errors import UpstreamProtocolError, UpstreamRefused
from sluicegate.proxy.egress import AddressPolicy
from sluicegate.proxy.upstream import HttpUpstream, Timeouts

TIMEOUTS = Timeouts(connect=2, first_byte=2, chunk=2, total=10)
SETTINGS = UpstreamSettings.model_validate({"max_response_bytes": 4096})
BODY = b'{"model": "m", "messages": []}'
HEADERS = {"content-type": "application/json"}


class StandInDns(AbstractResolver):
    """Answers every name with `answer` and counts the questions."""

    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.calls = 0

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.calls += 1
        fam = socket.AF_INET6 if ":" in self.answer else socket.AF_INET
        return [{"hostname": host, "host": self.answer, "port": port, "family": fam, "proto": 0, "flags": 0}]

    async def close(self) -> None:
        pass


@dataclass
class Trap:
    """A TCP listener that only counts who connects."""

    port: int
    connections: int = 0
    servers: list[asyncio.Server] = field(default_factory=list)


@contextlib.asynccontextmanager
async def trap(hosts: tuple[str, ...] = ("127.0.0.1",), port: int = 0) -> AsyncIterator[Trap]:
    t = Trap(port)

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        t.connections += 1
        writer.close()

    for host in hosts:
        server = await asyncio.start_server(count, host, t.port)
        t.port = server.sockets[0].getsockname()[1]
        t.servers.append(server)
    try:
        yield t
    finally:
        for server in t.servers:
            server.close()
            await server.wait_closed()


@dataclass
class Web:
    port: int
    peers: list[Any] = field(default_factory=list)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def web_server(handler: Handler, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[Web]:
    w = Web(port)

    async def handle(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        w.peers.append(request.transport.get_extra_info("peername"))
        return await handler(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    assert site._server is not None
    w.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield w
    finally:
        await runner.cleanup()


async def ok(request: web.Request) -> web.StreamResponse:
    await request.read()
    return web.json_response({"ok": True})


async def send(upstream: HttpUpstream, url: str, whole: bool = True) -> bytes:
    resp = await upstream.send(url, "/v1/chat/completions", HEADERS, BODY, TIMEOUTS, whole=whole)
    return await resp.read()


async def test_a_name_that_resolves_to_a_refused_address_is_never_connected_to() -> None:
    dns = StandInDns("127.0.0.1")
    upstream = HttpUpstream(SETTINGS, AddressPolicy(), dns)
    try:
        async with trap() as t:
            with pytest.raises(UpstreamRefused) as info:
                await send(upstream, f"http://llm.tenant.test:{t.port}/v1/chat/completions")
            assert info.value.code == "upstream_address_refused" and "loopback" in info.value.message
            assert info.value.status == 502 and info.value.headers == {"x-should-retry": "false"}
            assert t.connections == 0 and dns.calls == 1
    finally:
        await upstream.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "[::ffff:127.0.0.1]"])
async def test_an_address_literal_is_checked_on_the_socket(host: str) -> None:
    dns = StandInDns("127.0.0.1")
    upstream = HttpUpstream(SETTINGS, AddressPolicy(), dns)
    try:
        async with trap(("127.0.0.1", "::1")) as t:
            with pytest.raises(UpstreamRefused, match="loopback"):
                await send(upstream, f"http://{host}:{t.port}/v1/chat/completions")
            assert t.connections == 0 and dns.calls == 0  # a literal never reaches the resolver
    finally:
        await upstream.close()


async def test_metadata_names_are_refused_without_asking_dns() -> None:
    dns = StandInDns("127.0.0.1")
    upstream = HttpUpstream(SETTINGS, AddressPolicy(["127.0.0.0/8"]), dns)
    try:
        with pytest.raises(UpstreamRefused, match="metadata"):
            await send(upstream, "http://metadata.google.internal/computeMetadata/v1/")
        assert dns.calls == 0
    finally:
        await upstream.close()


async def test_an_allowed_address_is_resolved_once_and_its_connection_pooled() -> None:
    dns = StandInDns("127.0.0.1")
    upstream = HttpUpstream(SETTINGS, AddressPolicy(["127.0.0.0/8"]), dns)
    try:
        async with web_server(ok) as w:
            for _ in range(5):
                assert await send(upstream, f"http://llm.tenant.test:{w.port}/v1/chat/completions") == b'{"ok": true}'
        assert dns.calls == 1  # the connector's DNS cache answers the rest until its TTL
        assert len(set(w.peers)) == 1 and len(w.peers) == 5  # one keep-alive connection
    finally:
        await upstream.close()


async def test_a_name_rebound_to_a_refused_address_is_refused_at_connect_time() -> None:
    """The name first resolves to an allowed address (127.0.0.2, standing for a public one), then,
    once the cached answer has expired, to a refused one: the new answer is checked too."""

    async def close_after(request: web.Request) -> web.StreamResponse:
        response = await ok(request)
        response.force_close()  # no pooled connection: the next request connects again
        return response

    dns = StandInDns("127.0.0.2")
    upstream = HttpUpstream(SETTINGS, AddressPolicy(["127.0.0.2/32"]), dns)
    try:
        async with web_server(close_after, "127.0.0.2") as w, trap(("127.0.0.1",), w.port) as t:
            url = f"http://rebind.tenant.test:{w.port}/v1/chat/completions"
            assert await send(upstream, url) == b'{"ok": true}'
            dns.answer = "127.0.0.1"
            upstream._session.connector.clear_dns_cache()  # type: ignore[union-attr]  # the TTL ran out
            with pytest.raises(UpstreamRefused, match="loopback"):
                await send(upstream, url)
            assert t.connections == 0 and len(w.peers) == 1 and dns.calls == 2
    finally:
        await upstream.close()


@pytest.mark.parametrize("guarded", [True, False])
async def test_redirects_are_never_followed(guarded: bool) -> None:
    async with trap() as t:

        async def redirect(request: web.Request) -> web.StreamResponse:
            await request.read()
            raise web.HTTPFound(f"http://127.0.0.1:{t.port}/latest/meta-data/")

        upstream = HttpUpstream(SETTINGS, AddressPolicy(["127.0.0.0/8"]) if guarded else None)
        try:
            async with web_server(redirect) as w:
                for whole in (True, False):
                    with pytest.raises(UpstreamProtocolError) as info:
                        await send(upstream, f"http://127.0.0.1:{w.port}/v1/chat/completions", whole)
                    assert info.value.code == "upstream_redirect" and info.value.status == 502
        finally:
            await upstream.close()
        assert t.connections == 0


@pytest.mark.parametrize("declared", [True, False])
async def test_a_body_over_the_bound_ends_the_read(declared: bool) -> None:
    async def big(request: web.Request) -> web.StreamResponse:
        await request.read()
        if declared:
            return web.Response(body=b"x" * 5000, content_type="application/json")
        response = web.StreamResponse(headers={"content-type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            for _ in range(1000):  # 1 MB unless the reader stops first
                await response.write(b"x" * 1000)
        return response

    async def fits(request: web.Request) -> web.StreamResponse:
        await request.read()
        return web.Response(body=b"y" * 4096, content_type="application/json")

    upstream = HttpUpstream(SETTINGS)
    try:
        async with web_server(big) as w:
            for whole in (True, False):
                with pytest.raises(UpstreamProtocolError) as info:
                    await send(upstream, f"http://127.0.0.1:{w.port}/v1/chat/completions", whole)
                assert info.value.code == "upstream_response_too_large" and "4096" in info.value.message
        async with web_server(fits) as w:
            assert await send(upstream, f"http://127.0.0.1:{w.port}/v1/chat/completions") == b"y" * 4096
    finally:
        await upstream.close()


async def test_an_error_body_is_read_up_to_its_own_limit() -> None:
    async def error(request: web.Request) -> web.StreamResponse:
        await request.read()
        return web.Response(status=500, body=b"e" * 10_000, content_type="application/json")

    upstream = HttpUpstream(SETTINGS)
    try:
        async with web_server(error) as w:
            resp = await upstream.send(f"http://127.0.0.1:{w.port}/v1/x", "/v1/x", HEADERS, BODY, TIMEOUTS, whole=True)
            assert resp.status == 500 and await resp.read(1024) == b"e" * 1024
    finally:
        await upstream.close()
