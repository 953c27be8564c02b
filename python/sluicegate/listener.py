"""The admin listener: a second port, in every worker, for the admin API, the console and
`/metrics` (`server.admin_port`), so that the public port serves only `/v1` and the probes.

granian binds one address; this port is opened by each worker on its own event loop with
`SO_REUSEPORT` (the kernel spreads connections over the workers, as granian does for its own
port), served by aiohttp's HTTP/1.1 server (a runtime dependency already), and every request is
handed to the app as an ASGI call. What it serves is small and infrequent (admin calls, console
pages, scrapes), off the request path of `/v1`.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from sluicegate.types import ASGIApp, Message, Scope

_SHUTDOWN_S = 5.0


class AdminListener:
    """An HTTP/1.1 listener on `host:port` that calls an ASGI `app` for each request.

    Arguments:
        app: the ASGI callable that routes the admin port's paths.
        host: the address to bind.
        port: the port to bind (shared by the workers through `SO_REUSEPORT`).
    """

    def __init__(self, app: ASGIApp, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server: web.Server | None = None
        self._tcp: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = web.Server(self._handle, access_log=None)
        loop = asyncio.get_running_loop()
        self._tcp = await loop.create_server(self._server, self.host, self.port, reuse_port=True, backlog=128)

    async def stop(self) -> None:
        """Stop accepting, then give the requests in flight a few seconds."""
        if self._tcp is not None:
            self._tcp.close()
        if self._server is not None:
            await self._server.shutdown(_SHUTDOWN_S)
        if self._tcp is not None:
            await self._tcp.wait_closed()

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        raw_path, _, _ = request.raw_path.partition("?")
        scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": f"{request.version.major}.{request.version.minor}",
            "method": request.method,
            "scheme": "http",
            "path": request.path,
            "raw_path": raw_path.encode("latin-1"),
            "query_string": request.query_string.encode("latin-1"),
            "root_path": "",
            "headers": [(k.lower(), v) for k, v in request.raw_headers],
            "client": (str(peer[0]), int(peer[1])) if peer else None,
            "server": (self.host, self.port),
        }
        done = False
        response: web.StreamResponse | None = None

        async def receive() -> Message:
            nonlocal done
            if not done:
                chunk = await request.content.readany()
                done = request.content.at_eof()
                return {"type": "http.request", "body": chunk, "more_body": not done}
            await asyncio.Event().wait()  # nothing more comes; the app stops waiting when it is done
            return {"type": "http.disconnect"}  # pragma: no cover

        async def send(message: Message) -> None:
            nonlocal response
            if message["type"] == "http.response.start":
                response = web.StreamResponse(status=message["status"])
                for key, value in message.get("headers", []):
                    response.headers.add(key.decode("latin-1"), value.decode("latin-1"))
                await response.prepare(request)
            elif message["type"] == "http.response.body" and response is not None:
                body = message.get("body", b"")
                if body:
                    await response.write(body)
                if not message.get("more_body", False):
                    await response.write_eof()

        await self.app(scope, receive, send)
        if response is None:  # the app answered nothing
            return web.Response(status=500)
        return response
