"""A real MCP server built with the official SDK (`MCPServer`, Streamable HTTP), the upstream of the
MCP gateway's tests: `python -m tests.integration.mcp_upstream PORT [--json]`.

Its tools cover what the gateway must relay and check: a text result, a structured result, progress
notifications streamed before the result, a result holding a planted secret (`leak`) or a value a
policy blocks (`ssn`), a tool a policy denies (`delete_everything`), and `seen_headers`, which says
which credentials reached the server (so a test sees the gateway's key never does).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import secrets
import urllib.parse
from typing import Any, TypedDict

import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.streamable_http import EventCallback, EventMessage, EventStore

# A planted secret of a type the scanner knows (a GitHub token): it must never reach the client.
PLANTED_TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
PLANTED_SSN = "536-22-8147"

server = MCPServer("upstream-under-test")


class Forecast(TypedDict):
    city: str
    celsius: int
    summary: str


@server.tool()
def echo(text: str) -> str:
    """Say `text` back."""
    return text


@server.tool()
def weather(city: str) -> Forecast:
    """A structured forecast."""
    return {"city": city, "celsius": 21, "summary": f"sunny in {city}"}


@server.tool()
async def count(n: int, ctx: Context) -> str:
    """Count to `n`, reporting progress at each step."""
    for i in range(1, n + 1):
        await ctx.report_progress(i, n, f"step {i}")
        await asyncio.sleep(0.05)
    return f"counted to {n}"


@server.tool()
def leak() -> str:
    """A result with a secret in it."""
    return f"the deploy token is {PLANTED_TOKEN}, keep it safe"


@server.tool()
def ssn() -> str:
    """A result with a US social security number in it."""
    return f"the customer's SSN is {PLANTED_SSN}"


@server.tool()
def delete_everything() -> str:
    """What no agent should call."""
    return "everything was deleted"


@server.tool()
def seen_headers(ctx: Context) -> dict[str, str | None]:
    """Which credentials this request carried."""
    headers = ctx.headers or {}
    return {name: headers.get(name) for name in ("authorization", "x-api-key", "x-team", "cookie")}


@server.tool()
async def interrupted(ctx: Context) -> str:
    """Report progress, drop the connection mid-call, go on, and answer on the resumed stream (with
    the planted secret, which the gateway must redact there too)."""
    await ctx.report_progress(1, 2, "before the drop")
    await ctx.close_sse_stream()
    await asyncio.sleep(0.3)
    await ctx.report_progress(2, 2, "after the drop")
    return f"finished after a reconnect, token {PLANTED_TOKEN}"


class MemoryEvents(EventStore):
    """Every event in memory, so a client that reconnects with `Last-Event-ID` gets what it missed."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, Any]] = []  # (event id, stream id, message)
        self.ids = itertools.count(1)

    async def store_event(self, stream_id: str, message: Any) -> str:
        event_id = str(next(self.ids))
        self.events.append((event_id, stream_id, message))
        return event_id

    async def replay_events_after(self, last_event_id: str, send_callback: EventCallback) -> str | None:
        found = next((i for i, e in enumerate(self.events) if e[0] == last_event_id), None)
        if found is None:
            return None
        stream = self.events[found][1]
        for event_id, stream_id, message in self.events[found + 1 :]:
            if stream_id == stream and message is not None:
                await send_callback(EventMessage(message, event_id))
        return stream


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--json", action="store_true", help="answer POSTs with JSON, not SSE")
    parser.add_argument("--require-authorization", help="answer 401 to a request without this Authorization")
    parser.add_argument("--oauth", metavar="CLIENT_ID:SECRET", help="issue tokens at /oauth/token and require one")
    args = parser.parse_args()
    if args.json:
        app = server.streamable_http_app(json_response=True)
    else:
        app = server.streamable_http_app(event_store=MemoryEvents(), retry_interval=100)
    app = _setting_cookies(app)
    if args.require_authorization:
        app = _requiring(app, args.require_authorization.encode())
    if args.oauth:
        client_id, _, secret = args.oauth.partition(":")
        app = TokenServer(app, client_id, secret)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


class TokenServer:
    """An OAuth 2.0 authorization server for the client credentials grant (RFC 6749 section 4.4) in
    front of the MCP server, which then answers 401 to a request without a token it issued.

    - `POST /oauth/token`: `grant_type=client_credentials` (and `scope`), the client authenticated
      with HTTP Basic; a bearer token that lives `expires_in` seconds (as issued; the server itself
      does not expire them: a test revokes them).
    - `POST /oauth/control` `{"refuse": bool, "revoke": bool, "expires_in": int}`: refuse every
      token request (401 `invalid_client`), revoke every token issued so far, set the lifetime.
    - `GET /oauth/state`: `{"issued": n, "scopes": [...], "bearers_seen": n}`.
    """

    def __init__(self, app: Any, client_id: str, secret: str) -> None:
        self.app, self.client_id, self.secret = app, client_id, secret
        self.valid: set[str] = set()
        self.issued = 0
        self.scopes: list[str | None] = []
        self.refuse = False
        self.expires_in = 3600
        self.bearers_seen = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path == "/oauth/token":
            await self._token(scope, receive, send)
        elif path == "/oauth/control":
            change = json.loads(await _body(receive))
            self.refuse = change.get("refuse", self.refuse)
            self.expires_in = change.get("expires_in", self.expires_in)
            if change.get("revoke"):
                self.valid.clear()
            await _json(send, 200, {"ok": True})
        elif path == "/oauth/state":
            await _json(send, 200, {"issued": self.issued, "scopes": self.scopes, "bearers_seen": self.bearers_seen})
        else:
            presented = dict(scope["headers"]).get(b"authorization", b"").decode()
            if not presented.startswith("Bearer ") or presented[7:] not in self.valid:
                await _json(
                    send, 401, {"error": "invalid_token"}, [(b"www-authenticate", b'Bearer error="invalid_token"')]
                )
                return
            self.bearers_seen += 1
            await self.app(scope, receive, send)

    async def _token(self, scope: Any, receive: Any, send: Any) -> None:
        form = urllib.parse.parse_qs((await _body(receive)).decode())
        basic = dict(scope["headers"]).get(b"authorization", b"").decode()
        expected = base64.b64encode(
            f"{urllib.parse.quote_plus(self.client_id)}:{urllib.parse.quote_plus(self.secret)}".encode()
        ).decode()
        if self.refuse or basic != f"Basic {expected}":
            await _json(send, 401, {"error": "invalid_client", "error_description": "unknown client"})
            return
        if form.get("grant_type") != ["client_credentials"]:
            await _json(send, 400, {"error": "unsupported_grant_type"})
            return
        self.issued += 1
        self.scopes.append((form.get("scope") or [None])[0])
        token = f"at-{self.issued}-{secrets.token_hex(8)}"
        self.valid.add(token)
        await _json(send, 200, {"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in})


async def _body(receive: Any) -> bytes:
    parts = []
    while True:
        message = await receive()
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(parts)


async def _json(send: Any, status: int, body: Any, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    start = [(b"content-type", b"application/json"), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


def _requiring(app: Any, authorization: bytes) -> Any:
    """Refuse (401) every request whose Authorization is not `authorization`."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != authorization:
            await send({"type": "http.response.start", "status": 401, "headers": [(b"www-authenticate", b"Bearer")]})
            await send({"type": "http.response.body", "body": b""})
            return
        await app(scope, receive, send)

    return wrapped


def _setting_cookies(app: Any) -> Any:
    """Every answer sets a cookie, as load balancers in front of MCP servers do (the gateway must
    keep none: one caller's cookie must not go with another's call)."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                cookie = (b"set-cookie", b"affinity=caller-seen; Path=/; Max-Age=3600")
                message = {**message, "headers": [*message.get("headers", []), cookie]}
            await send(message)

        await app(scope, receive, sending)

    return wrapped


if __name__ == "__main__":
    main()
