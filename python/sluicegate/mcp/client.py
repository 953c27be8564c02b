"""The gateway as an MCP client of an upstream server, for what it asks on its own account: a
server's tool list as the gateway sees it (the console's view of a registered server's tools).

One short session over the Streamable HTTP transport: `initialize`, `notifications/initialized`,
`tools/list` (every page), then DELETE of the session. Each answer may come as JSON or as an SSE
stream; the message with the request's id is the answer. The caller (`McpProxy.upstream_tools`)
hands in the HTTP client, the URL and the headers its relay uses for the server (its credentials,
tenant egress rules and all), so what is listed is what an agent's session would reach.

Errors name the server and what went wrong, never a credential or the answer's content.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from sluicegate import __version__
from sluicegate.formats.sse import EventBuffer

PROTOCOL_VERSION = "2025-06-18"
MAX_PAGES = 20  # of tools/list; a server paging further is listed as far as that
ACCEPT = "application/json, text/event-stream"


class McpClientError(Exception):
    """The server could not be asked: unreachable, refused, or answered what is not MCP.

    Attributes:
        message: what to tell the administrator (names the server; no credential, no content).
        status: the upstream's HTTP status, when it answered with one.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class UpstreamSession:
    """One MCP session with an upstream server, as a client.

    Arguments:
        http: the client session to send with (the relay's, with its egress guard).
        name: the server's name (in error messages).
        url: its Streamable HTTP endpoint.
        headers: what goes with every request (its credentials).
        max_bytes: the largest answer read.
    """

    def __init__(
        self, http: aiohttp.ClientSession, name: str, url: str, headers: Mapping[str, str], max_bytes: int
    ) -> None:
        self.http, self.name, self.url = http, name, url
        self.headers = {**headers, "accept": ACCEPT, "content-type": "application/json"}
        self.max_bytes = max_bytes
        self.session_id: str | None = None
        self._ids = 0

    async def exchange(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a request; its answer, the whole JSON-RPC message (a result or an error).

        Raises:
            McpClientError: no answer or an HTTP refusal.
        """
        self._ids += 1
        msg_id = self._ids
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "method": method}
        if params is not None:
            body["params"] = params
        answer = await self._post(body, msg_id)
        if answer is None:
            raise McpClientError(f"the MCP server {self.name!r} did not answer {method}")
        return answer

    async def initialize(self) -> None:
        """The handshake: `initialize`, then `notifications/initialized`.

        Raises:
            McpClientError: the server could not be asked or refused.
        """
        await self.request(
            "initialize",
            {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "sluicegate", "version": __version__},
            },
        )
        await self.notify("notifications/initialized")

    async def list_tools(self) -> list[dict[str, Any]]:
        """Every tool the server lists (up to `MAX_PAGES` pages), as it lists them."""
        tools: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            page = await self.request("tools/list", {"cursor": cursor} if cursor else {})
            tools += [t for t in page.get("tools") or [] if isinstance(t, dict) and isinstance(t.get("name"), str)]
            cursor = page.get("nextCursor")
            if not isinstance(cursor, str) or not cursor:
                break
        return tools

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a request; its result.

        Raises:
            McpClientError: no answer, an HTTP refusal or a JSON-RPC error.
        """
        answer = await self.exchange(method, params)
        error = answer.get("error")
        if error is not None or not isinstance(answer.get("result"), dict):
            code = error.get("code") if isinstance(error, dict) else None
            raise McpClientError(f"the MCP server {self.name!r} answered {method} with an error ({code})")
        result: dict[str, Any] = answer["result"]
        return result

    async def notify(self, method: str) -> None:
        await self._post({"jsonrpc": "2.0", "method": method}, None)

    async def close(self) -> None:
        """End the session upstream (DELETE), if the server gave one; failures are ignored."""
        if self.session_id is None:
            return
        try:
            timeout = aiohttp.ClientTimeout(total=5)
            headers = self._headers()
            async with self.http.delete(self.url, headers=headers, allow_redirects=False, timeout=timeout) as resp:
                resp.release()
        except (aiohttp.ClientError, OSError, TimeoutError):
            pass

    def _headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.session_id is not None:
            headers["mcp-session-id"] = self.session_id
            headers["mcp-protocol-version"] = PROTOCOL_VERSION
        return headers

    async def _post(self, body: dict[str, Any], msg_id: int | None) -> dict[str, Any] | None:
        try:
            async with self.http.post(
                self.url, data=orjson.dumps(body), headers=self._headers(), allow_redirects=False
            ) as resp:
                if resp.status >= 300:
                    said = "a redirect" if resp.status < 400 else f"HTTP {resp.status}"
                    raise McpClientError(f"the MCP server {self.name!r} answered {said}", resp.status)
                if self.session_id is None and "mcp-session-id" in resp.headers:
                    self.session_id = resp.headers["mcp-session-id"]
                if msg_id is None:
                    return None
                kind = resp.headers.get("content-type", "").lower()
                if kind.startswith("text/event-stream"):
                    return await self._from_stream(resp, msg_id)
                raw = await self._read(resp)
        except (aiohttp.ClientError, OSError) as exc:
            raise McpClientError(f"the MCP server {self.name!r} could not be reached ({type(exc).__name__})") from None
        return _answer(_json(raw, self.name), msg_id)

    async def _read(self, resp: aiohttp.ClientResponse) -> bytes:
        parts, size = [], 0
        async for chunk in resp.content.iter_any():
            size += len(chunk)
            if size > self.max_bytes:
                raise McpClientError(f"the MCP server {self.name!r} answered more than {self.max_bytes} bytes")
            parts.append(chunk)
        return b"".join(parts)

    async def _from_stream(self, resp: aiohttp.ClientResponse, msg_id: int) -> dict[str, Any] | None:
        buffer = EventBuffer()
        async for chunk in resp.content.iter_any():
            for event in buffer.feed(chunk):
                if event.data.strip():
                    found = _answer(_json(event.data, self.name), msg_id)
                    if found is not None:
                        return found
            if buffer.pending_size > self.max_bytes:
                raise McpClientError(f"the MCP server {self.name!r} sent an event over {self.max_bytes} bytes")
        return None


def _json(raw: bytes, name: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise McpClientError(f"the MCP server {name!r} answered what is not JSON") from None


def _answer(body: Any, msg_id: int) -> dict[str, Any] | None:
    for msg in body if isinstance(body, list) else [body]:
        if isinstance(msg, dict) and msg.get("id") == msg_id and "method" not in msg:
            return msg
    return None


async def list_tools(
    http: aiohttp.ClientSession,
    name: str,
    url: str,
    headers: Mapping[str, str],
    max_bytes: int,
    timeout_s: float,
) -> list[dict[str, Any]]:
    """Every tool the server lists (up to `MAX_PAGES` pages), as it lists them.

    Raises:
        McpClientError: the server could not be asked (within `timeout_s` in all).
    """
    session = UpstreamSession(http, name, url, headers, max_bytes)
    try:
        async with asyncio.timeout(timeout_s):
            await session.initialize()
            return await session.list_tools()
    except TimeoutError:
        raise McpClientError(f"the MCP server {name!r} did not answer within {timeout_s:g} s") from None
    finally:
        await session.close()
