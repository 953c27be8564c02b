"""The MCP front door: `/mcp/{server}`, the Streamable HTTP transport of the MCP specification
(2025-03-26 onwards; 2025-11-25 and the SDK's newer revisions pass the same way) relayed to the
workspace's or the operator's upstream server.

- **POST** carries JSON-RPC (one message, or a batch): the gateway parses it, checks every
  `tools/call` (tool lists, argument redaction: `mcp.messages`), answers a refused call itself, and
  forwards the rest, serialized again from what it checked. The answer comes back as JSON or as an
  SSE stream; each message is checked as it arrives (tool lists filtered, results redacted) and each
  event relayed at once, its `id:` kept, so progress notifications stream and `Last-Event-ID`
  resumption works end to end.
- **GET** opens the server's stream (server requests and notifications), checked the same way;
  `Last-Event-ID` is passed through.
- **DELETE** ends the session upstream.
- `Mcp-Session-Id` and `MCP-Protocol-Version` go both ways untouched: the session is the upstream's,
  kept by the client. Nothing else of the client's goes upstream: never its gateway key, cookies or
  tracing headers; the server's own credentials (its registration's headers) are added instead.
- Authorization follows the spec's resource-server rules: a request without a valid gateway key gets
  401 with `WWW-Authenticate: Bearer resource_metadata="…"`, naming the protected resource metadata
  document (RFC 9728) served under `/.well-known/oauth-protected-resource/mcp/{server}`.

Each HTTP request becomes one `Outcome` (route `mcp`, provider `mcp:<server>`) with the policy events
of its decisions, handed to the same sinks as model calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from sluicegate.errors import GatewayError, PayloadTooLarge, RateLimited, SpendLimitExceeded, Unauthenticated
from sluicegate.formats.sse import EventBuffer
from sluicegate.mcp.aggregate import Aggregate
from sluicegate.mcp.client import McpClientError, list_tools
from sluicegate.mcp.messages import (
    INVALID_REQUEST,
    NOT_JSON,
    PARSE_ERROR,
    RATE_LIMITED,
    SPEND_LIMIT,
    UPSTREAM_AUTH,
    Exchange,
    is_request,
    read_rpc_body,
    rpc_error,
)
from sluicegate.mcp.oauth import OAuthError, OAuthTokens
from sluicegate.mcp.servers import McpTarget
from sluicegate.mcp.settings import McpSettings
from sluicegate.policy.pipeline import ClientGone, request_id
from sluicegate.policy.tools import ToolPolicy
from sluicegate.proxy.relay import CallInfo, Outcome
from sluicegate.proxy.upstream import guarded_connector, upstream_session
from sluicegate.secrets import Secret
from sluicegate.types import Receive, Scope, Send

if TYPE_CHECKING:
    from sluicegate.config import Settings
    from sluicegate.policy.auth import Identity
    from sluicegate.policy.limits import LimitGuard
    from sluicegate.policy.pipeline import Gateway
    from sluicegate.policy.spend import SpendGuard

log = logging.getLogger("sluicegate.mcp")
PREFIX = "/mcp/"
AGGREGATE = "/mcp"  # every server of the workspace at once (`mcp.aggregate`)
METADATA_PREFIX = "/.well-known/oauth-protected-resource"
JSON_TYPE = b"application/json"
SSE_TYPE = b"text/event-stream"
# What of the client's request goes upstream: the transport's own headers, nothing else.
FORWARDED = (b"content-type", b"accept", b"mcp-session-id", b"mcp-protocol-version", b"last-event-id")
# What of the upstream's answer comes back.
RELAYED = ("content-type", "mcp-session-id", "mcp-protocol-version", "cache-control")


class McpProxy:
    """`/mcp/{server}` and its protected resource metadata.

    Arguments:
        settings: the gateway's settings (`[mcp]`, `[tools]`).
        gateway: the data plane, for its keys, control view, redactors and tenant URL rules.
        record: where each finished request's `Outcome` goes (the app's sinks).
        environ: where `headers_env` values are read.
        count_tool: where each tools/call's (server, tool, outcome) is counted (the metrics), if anywhere.
    """

    def __init__(
        self,
        settings: Settings,
        gateway: Gateway,
        record: Callable[[Outcome], None],
        environ: Mapping[str, str],
        count_tool: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self.settings: McpSettings = settings.mcp
        self.gateway = gateway
        self.record = record
        self.count_tool = count_tool
        self.tools = ToolPolicy(settings.tools)
        self.servers = {}
        for name, s in settings.mcp.servers.items():
            oauth = s.oauth.resolved(environ) if s.oauth is not None else None
            if s.oauth is not None and oauth is None:
                log.warning(
                    "mcp server %s: %s is not set, so it is asked without a token", name, s.oauth.client_secret_env
                )
            self.servers[name] = McpTarget(name, s.url, s.resolved_headers(environ), prices=s.prices, oauth=oauth)
        self.tokens = OAuthTokens(timeout_s=settings.mcp.first_byte_timeout_s)
        self.aggregate = Aggregate(self)
        self.body_timeout_s = settings.server.body_timeout_s
        self._http: aiohttp.ClientSession | None = None
        self._tenant_http: aiohttp.ClientSession | None = None
        # (server, session id) -> the key whose request opened the session: another key presenting the
        # id is answered as for an unknown session. This instance's sessions only (see docs/mcp.md).
        self._sessions: dict[tuple[str, str], str] = {}

    def _client(self, tenant: bool) -> aiohttp.ClientSession:
        if tenant:
            if self._tenant_http is None:
                connector = guarded_connector(self.gateway.tenant_urls.addresses)
                self._tenant_http = upstream_session(connector, auto_decompress=True)
            return self._tenant_http
        if self._http is None:
            self._http = upstream_session(auto_decompress=True)
        return self._http

    async def stop(self) -> None:
        await self.aggregate.stop()
        for client in (self._http, self._tenant_http):
            if client is not None:
                await client.close()

    # ── the front door ────────────────────────────────────────────────────────────────────────

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if path.startswith(METADATA_PREFIX):
            await self._metadata(scope, send, path[len(METADATA_PREFIX) :])
            return
        aggregate = path.rstrip("/") == AGGREGATE
        server = "" if aggregate else path[len(PREFIX) :].rstrip("/")
        info = CallInfo(request_id().decode(), "mcp", started_at=time.time(), t0=time.perf_counter())
        info.provider = "mcp" if aggregate else f"mcp:{server}"
        outcome = Outcome(500)
        try:
            if aggregate:
                outcome = await self.aggregate.serve(scope, receive, send, info)
            else:
                outcome = await self._serve(scope, receive, send, server, info)
        except Unauthenticated as err:
            outcome = await self._unauthenticated(scope, send, server, err)
        except GatewayError as err:
            outcome = await _send_error(send, err.status, rpc_error(None, INVALID_REQUEST, err.message), err.code)
        except ClientGone:
            outcome = Outcome(499, error="client_disconnected", client_gone=True)
        except Exception:
            log.exception("mcp request failed", extra={"request_id": info.request_id})
            body = rpc_error(None, -32603, "the gateway failed to relay this request")
            with contextlib.suppress(Exception):
                outcome = await _send_error(send, 500, body, "internal_error")
        outcome.info = info
        self.record(outcome)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, server: str, info: CallInfo) -> Outcome:
        method = scope["method"]
        headers: dict[bytes, bytes] = {}
        for k, v in scope["headers"]:
            headers[k] = v
        if method not in ("POST", "GET", "DELETE"):
            body = rpc_error(None, INVALID_REQUEST, f"/mcp/{server} accepts POST, GET and DELETE")
            return await _send_error(send, 405, body, "method_not_allowed", [(b"allow", b"POST, GET, DELETE")])
        who = self.gateway.keys.authenticate(headers.get(b"authorization"), headers.get(b"x-api-key"))
        info.org, info.workspace, info.key, info.user = who.org, who.workspace, who.key_name, who.user
        target = self._target(who.workspace, server)
        if target is None:
            body = rpc_error(None, INVALID_REQUEST, f"no MCP server named {server!r} for this workspace")
            return await _send_error(send, 404, body, "unknown_mcp_server")
        if target.tenant:
            refused = self._refusal(target)
            if refused is not None:
                body = rpc_error(None, INVALID_REQUEST, f"the {refused}")
                return await _send_error(send, 403, body, "mcp_url_not_allowed")
        session_id = headers.get(b"mcp-session-id")
        where = f"{who.workspace}/{server}" if target.tenant else server
        if session_id is not None:
            owner = self._sessions.get((where, session_id.decode("latin-1")))
            if owner is not None and owner != who.key_name:
                body = rpc_error(None, INVALID_REQUEST, "no such session: initialize a new one")
                return await _send_error(send, 404, body, "unknown_mcp_session")
        exchange = Exchange(server, who, self.tools, self.tools.rules_for(who), self.gateway._redactor_for(who))
        trace = headers.get(b"langsmith-trace")
        if trace is not None and len(trace) >= 36 and self.gateway.capture:
            exchange.capture = True  # a tool run, nested in the caller's trace
            info.trace_id = trace.split(b".", 1)[0][-36:].decode("latin-1")
            info.trace = trace.decode("latin-1")
            baggage = headers.get(b"baggage")
            info.baggage = baggage.decode("latin-1") if baggage is not None else None
        upstream_headers = {k.decode(): v.decode("latin-1") for k, v in headers.items() if k in FORWARDED}
        upstream_headers.update({k: v.reveal() for k, v in target.headers.items()})
        data: bytes | None = None
        price, guard, counted = 0, None, []
        if method == "POST":
            body = await read_rpc_body(receive, headers, self.settings.max_message_bytes, self.body_timeout_s)
            if body is NOT_JSON:
                return await _send_error(
                    send, 400, rpc_error(None, PARSE_ERROR, "the body is not JSON"), "invalid_json"
                )
            messages = body if isinstance(body, list) else [body]
            for msg in messages:
                exchange.outbound(msg)
            if not exchange.answered:
                counted = await self._limited(who, server, messages, exchange)
            if not exchange.answered:
                price, guard = await self._priced(who, target, messages, exchange)
            if exchange.answered:
                for g in counted:
                    await g.finish(None)  # counted, not sent
                self._count(server, exchange, sent=False)
                outcome = await self._answer_locally(send, body, messages, exchange)
                _traced(outcome, info, server, exchange)
                return outcome
            data = orjson.dumps(body)  # what was checked is what goes
        try:
            outcome = await self._relay(
                scope, receive, send, method, target, upstream_headers, data, exchange, where if target.tenant else ""
            )
        except BaseException:
            self._count(server, exchange, sent=True)
            if guard is not None:
                await guard.finish(None)  # failed before an answer: released
            for g in counted:
                await g.finish(None)
            raise
        self._count(server, exchange, sent=True)
        for g in counted:
            await g.finish(outcome)  # frees the calls' places in flight
        if guard is not None:
            await guard.finish(outcome)  # settled when the server answered (200), else released
        elif price and outcome.status == 200:
            outcome.cost_nusd = price  # no cap to hold it on: in the ledger all the same
        if exchange.session_id is not None:
            if len(self._sessions) >= 100_000:
                self._sessions.clear()  # bounded: the owners are forgotten, not the sessions
            self._sessions[(where, exchange.session_id)] = who.key_name
        elif method == "DELETE" and session_id is not None and outcome.status < 300:
            self._sessions.pop((where, session_id.decode("latin-1")), None)
        outcome.events = exchange.events + outcome.events
        _traced(outcome, info, server, exchange)
        return outcome

    def _count(self, server: str, exchange: Exchange, sent: bool) -> None:
        """Count the body's tools/calls by what became of them (`mcp.messages.TOOL_OUTCOMES`)."""
        if self.count_tool is not None:
            for tool, outcome in exchange.tool_outcomes(sent):
                self.count_tool(server, tool, outcome)

    async def _limited(self, who: Identity, server: str, messages: list[Any], exchange: Exchange) -> list[LimitGuard]:
        """Count this body's `tools/call`s on the caller's rate limits of tool calls (`tools`
        limits matching `server/tool`); a full one answers the call with a JSON-RPC error naming
        it and when to retry, and the body is not sent (the calls counted before are finished by
        the caller).

        Raises:
            Unavailable: the limit store is unreachable and such a limit fails closed (503).
        """
        limits = self.gateway.limits
        if limits is None:
            return []
        counted: list[LimitGuard] = []
        for msg in messages:
            if not is_request(msg) or msg.get("method") != "tools/call":
                continue
            tool = str((msg.get("params") or {}).get("name", ""))
            try:
                guard = await limits.acquire_tool(who, server, tool)
            except RateLimited as err:
                exchange.events += err.events
                exchange.answered[msg["id"]] = rpc_error(msg["id"], RATE_LIMITED, err.message, dict(err.extra))
                exchange.settle(msg["id"], tool, "rate_limited")
                break
            exchange.events += guard.events
            guard.events = []
            counted.append(guard)
        return counted

    async def _priced(
        self, who: Identity, target: McpTarget, messages: list[Any], exchange: Exchange
    ) -> tuple[int, SpendGuard | None]:
        """What this body's `tools/call`s cost at `target`'s prices, reserved on the caller's spend
        caps when it has any: (price, the reservation's guard). A cap that refuses answers every
        priced call with a JSON-RPC error naming it (the body is not sent).

        Raises:
            Unavailable: the spend store is unreachable and caps fail closed (503).
        """
        prices, spend = target.prices, self.gateway.spend
        if prices.free:
            return 0, None
        calls = [m for m in messages if is_request(m) and m.get("method") == "tools/call"]
        price = sum(prices.of(str((m.get("params") or {}).get("name", ""))) for m in calls)
        lines = spend.lines_for(who) if spend is not None else ()
        if not price or spend is None or not lines:
            return price, None
        try:
            guard = await spend.reserve_fixed(lines, price)
        except SpendLimitExceeded as err:
            exchange.events += err.events
            for msg in calls:
                exchange.answered[msg["id"]] = rpc_error(msg["id"], SPEND_LIMIT, err.message, dict(err.extra))
                exchange.settle(msg["id"], str((msg.get("params") or {}).get("name", "")), "spend_limited")
            return price, None
        exchange.events += guard.events
        guard.events = []
        return price, guard

    async def upstream_tools(self, workspace: str, server: str) -> tuple[McpTarget, list[dict[str, Any]]]:
        """The tools the server `server` of `workspace` lists, asked by the gateway itself with what
        its relay sends there (the server's credentials, the tenant egress rules): the console's view.

        Raises:
            LookupError: the workspace has no such server (and the operator neither).
            McpClientError: the server could not be asked (its URL refused, unreachable, refusing).
            SecretUnavailable: its credentials are stored but cannot be opened.
        """
        target = self._target(workspace, server)
        if target is None:
            raise LookupError(server)
        if target.tenant:
            refused = self._refusal(target)
            if refused is not None:
                raise McpClientError(f"the {refused}")
        client = self._client(target.tenant)
        where = f"{workspace}/{server}" if target.tenant else ""
        for attempt in (1, 2):
            try:
                headers, token = await self.credentials(target, where)
            except OAuthError as exc:
                raise McpClientError(exc.message) from None
            try:
                tools = await list_tools(
                    client,
                    server,
                    target.url,
                    headers,
                    self.settings.max_message_bytes,
                    self.settings.first_byte_timeout_s,
                )
            except McpClientError as exc:
                if exc.status != 401 or token is None or target.oauth is None or attempt == 2:
                    raise
                self.tokens.forget(where, target.oauth, token)  # refused: a new token, once
                continue
            return target, tools
        raise AssertionError("unreachable")

    async def credentials(self, target: McpTarget, where: str) -> tuple[dict[str, str], Secret | None]:
        """What goes to `target` with every request: its headers, and its bearer token when it has
        OAuth client credentials (kept under `where`), with the token.

        Raises:
            OAuthError: no token could be had.
        """
        headers = {k: v.reveal() for k, v in target.headers.items()}
        if target.oauth is None:
            return headers, None
        token = await self.tokens.token(self._client(target.tenant), where, target.name, target.oauth)
        return _bearer(headers, token), token

    def _refusal(self, target: McpTarget) -> str | None:
        """Why a workspace's server may not be asked: its URL, or its token URL, is refused by the
        tenant egress rules (the message names which)."""
        refused = self.gateway.tenant_urls.mcp_refusal(target.url)
        if refused is not None:
            return f"URL registered for the MCP server {target.name!r} {refused}"
        if target.oauth is not None:
            refused = self.gateway.tenant_urls.mcp_refusal(target.oauth.token_url)
            if refused is not None:
                return f"token URL registered for the MCP server {target.name!r} {refused}"
        return None

    def _target(self, workspace: str, server: str) -> McpTarget | None:
        view = self.gateway.view
        found = view.mcp_server(workspace, server) if view is not None else None
        return found if found is not None else self.servers.get(server)

    async def _answer_locally(self, send: Send, body: Any, messages: list[Any], exchange: Exchange) -> Outcome:
        """Answer a body holding a refused tool call without forwarding any of it: the refusal for
        the call, and for a batch, an error for each other request (its calls were not sent)."""
        answers = []
        for msg in messages:
            if not is_request(msg):
                continue
            own = exchange.answered.get(msg["id"])
            if own is None:
                own = rpc_error(msg["id"], INVALID_REQUEST, "not sent: a tool call in the same batch was refused")
            answers.append(own)
        payload = answers if isinstance(body, list) else answers[0]
        headers = [(b"content-type", JSON_TYPE)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": orjson.dumps(payload)})
        return Outcome(200, events=exchange.events)

    async def _relay(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        method: str,
        target: McpTarget,
        headers: dict[str, str],
        data: bytes | None,
        exchange: Exchange,
        where: str,
    ) -> Outcome:
        client = self._client(target.tenant)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.settings.connect_timeout_s)
        creds, token = target.oauth, None
        try:
            for attempt in (1, 2):
                if creds is not None:
                    token = await self.tokens.token(client, where, target.name, creds)
                    headers = _bearer(headers, token)
                async with asyncio.timeout(self.settings.first_byte_timeout_s):
                    resp = await client.request(
                        method, target.url, data=data, headers=headers, timeout=timeout, allow_redirects=False
                    )
                if resp.status != 401 or creds is None or token is None or attempt == 2:
                    break
                resp.release()  # the token was refused: dropped, a new one fetched once, the request sent again
                self.tokens.forget(where, creds, token)
        except OAuthError as exc:
            log.warning("mcp upstream token: %s", exc.message)  # the server and the endpoint's error code only
            return await self._token_refused(send, data, exc)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.warning("mcp upstream %s unreachable: %s", target.name, type(exc).__name__)
            body = rpc_error(None, -32000, f"the MCP server {target.name!r} could not be reached")
            return await _send_error(
                send, 502 if not isinstance(exc, TimeoutError) else 504, body, "upstream_unreachable"
            )
        try:
            if resp.status in (401, 403) or 300 <= resp.status < 400:
                resp.release()
                said = "a redirect" if resp.status < 400 else "it refused the gateway's credentials for it"
                body = rpc_error(None, -32000, f"the MCP server {target.name!r} answered {resp.status}: {said}")
                return await _send_error(send, 502, body, "upstream_refused")
            out_headers = [(k.encode(), resp.headers[k].encode("latin-1")) for k in RELAYED if k in resp.headers]
            if resp.status < 300:
                exchange.session_id = resp.headers.get("mcp-session-id")
            content_type = resp.headers.get("content-type", "").encode("latin-1").lower()
            if content_type.startswith(SSE_TYPE):
                return await self._relay_stream(receive, send, resp, out_headers, exchange)
            raw = await _read_bounded(resp, self.settings.max_message_bytes)
            if content_type.startswith(JSON_TYPE) and raw:
                raw = self._checked(raw, exchange)
            await send({"type": "http.response.start", "status": resp.status, "headers": out_headers})
            await send({"type": "http.response.body", "body": raw})
            return Outcome(resp.status)
        finally:
            resp.close()

    async def _token_refused(self, send: Send, data: bytes | None, exc: OAuthError) -> Outcome:
        """No token for the server: each request of the body is answered with a JSON-RPC error that
        says so (the session goes on; a later request fetches again); a body without requests, a GET
        or a DELETE gets a 502."""
        requests = []
        if data is not None:
            with contextlib.suppress(orjson.JSONDecodeError):
                body = orjson.loads(data)
                requests = [m for m in (body if isinstance(body, list) else [body]) if is_request(m)]
        if not requests:
            return await _send_error(send, 502, rpc_error(None, UPSTREAM_AUTH, exc.message), "upstream_auth_failed")
        answers = [rpc_error(m["id"], UPSTREAM_AUTH, exc.message) for m in requests]
        payload = answers if isinstance(body, list) else answers[0]
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", JSON_TYPE)]})
        await send({"type": "http.response.body", "body": orjson.dumps(payload)})
        return Outcome(200, error="upstream_auth_failed")

    def _checked(self, raw: bytes, exchange: Exchange) -> bytes:
        """An upstream JSON-RPC body after the gateway's rules (the same bytes when nothing changed)."""
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return orjson.dumps(rpc_error(None, PARSE_ERROR, "the MCP server's answer is not JSON"))
        changed = False
        for msg in body if isinstance(body, list) else [body]:
            changed = exchange.inbound(msg) or changed
        return orjson.dumps(body) if changed else raw

    async def _relay_stream(
        self,
        receive: Receive,
        send: Send,
        resp: aiohttp.ClientResponse,
        headers: list[tuple[bytes, bytes]],
        exchange: Exchange,
    ) -> Outcome:
        """Relay an SSE answer event by event, each checked; stop when either side goes."""
        await send({"type": "http.response.start", "status": resp.status, "headers": headers})
        outcome = Outcome(resp.status)
        limit = self.settings.max_message_bytes

        async def pump() -> None:
            buffer = EventBuffer()
            async for chunk in resp.content.iter_any():
                events = buffer.feed(chunk)
                if buffer.pending_size > limit:
                    log.warning("mcp upstream event larger than mcp.max_message_bytes: stream ended")
                    outcome.error = "upstream_event_too_large"
                    return
                out = [self._event(e.raw, e.data, exchange) for e in events]
                if out:
                    if outcome.first_byte_at is None:
                        outcome.first_byte_at = time.perf_counter()
                    await send({"type": "http.response.body", "body": b"".join(out), "more_body": True})

        async def gone() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        relay, watch = asyncio.ensure_future(pump()), asyncio.ensure_future(gone())
        try:
            done, _ = await asyncio.wait((relay, watch), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (relay, watch):
                task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.gather(relay, watch, return_exceptions=True)
        if watch in done:
            outcome.client_gone = True
            return outcome
        exc = relay.exception() if relay.done() and not relay.cancelled() else None
        if exc is not None and not isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError):
            raise exc
        if exc is not None:
            outcome.error = "upstream_stream_broken"  # the server dropped the stream: the client may resume
        with contextlib.suppress(Exception):
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        return outcome

    def _event(self, raw: bytes, data: bytes, exchange: Exchange) -> bytes:
        """One SSE event after the gateway's rules: its data checked, its other fields (`id:`,
        `event:`, `retry:`) kept as they came."""
        if data.strip():
            checked = self._checked(data, exchange)
            if checked is not data:
                kept = [line for line in raw.split(b"\n") if not line.startswith(b"data:")]
                return b"\n".join([*kept, b"data: " + checked]) + b"\n\n"
        return raw + b"\n\n"

    # ── authorization ─────────────────────────────────────────────────────────────────────────

    def _base_url(self, scope: Scope) -> str:
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        host = next((v for k, v in scope["headers"] if k == b"host"), b"localhost").decode("latin-1")
        return f"{scope.get('scheme', 'http')}://{host}"

    async def _unauthenticated(self, scope: Scope, send: Send, server: str, err: Unauthenticated) -> Outcome:
        resource = f"/mcp/{server}" if server else AGGREGATE
        metadata = f"{self._base_url(scope)}{METADATA_PREFIX}{resource}"
        challenge = f'Bearer resource_metadata="{metadata}"'.encode("latin-1")
        body = rpc_error(None, -32001, err.message)
        return await _send_error(send, 401, body, err.code, [(b"www-authenticate", challenge)])

    async def _metadata(self, scope: Scope, send: Send, resource_path: str) -> None:
        """The protected resource metadata (RFC 9728) of `/mcp/{server}`: this gateway is the resource
        server; its keys are bearer tokens sent in the Authorization header."""
        if scope["method"] != "GET" or not (resource_path.startswith("/mcp/") or resource_path == AGGREGATE):
            await _send_error(send, 404, {"error": "not_found"}, "unknown_path")
            return
        doc = {
            "resource": self._base_url(scope) + resource_path.rstrip("/"),
            "authorization_servers": list(self.settings.authorization_servers),
            "bearer_methods_supported": ["header"],
            "resource_name": f"sluicegate MCP gateway: {resource_path[len('/mcp/') :].strip('/') or 'every server'}",
        }
        headers = [(b"content-type", JSON_TYPE), (b"cache-control", b"max-age=300")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": orjson.dumps(doc)})


def _bearer(headers: dict[str, str], token: Secret) -> dict[str, str]:
    """`headers` with `Authorization: Bearer <token>` in place of any Authorization they had."""
    out = {k: v for k, v in headers.items() if k.lower() != "authorization"}
    out["Authorization"] = f"Bearer {token.reveal()}"
    return out


def _traced(outcome: Outcome, info: CallInfo, server: str, exchange: Exchange) -> None:
    """Make the request a LangSmith `tool` run when it carried one tool call and a trace: its inputs the
    arguments as the tool got them, its outputs the answer as the client got it (both redacted)."""
    if len(exchange.traced) != 1:
        return
    name, arguments, answer = next(iter(exchange.traced.values()))
    info.tool = f"{server}/{name}"
    outcome.request_body = orjson.dumps({"name": name, "arguments": arguments if arguments is not None else {}})
    outcome.response = [orjson.dumps(answer if isinstance(answer, dict) else {"output": answer})]


async def _send_error(
    send: Send, status: int, body: dict[str, Any], code: str, extra: list[tuple[bytes, bytes]] | None = None
) -> Outcome:
    headers = [(b"content-type", JSON_TYPE), *(extra or ())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": orjson.dumps(body)})
    return Outcome(status, error=code)


async def _read_bounded(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the MCP server's answer is larger than {limit} bytes (mcp.max_message_bytes)")
        parts.append(chunk)
    return b"".join(parts)


__all__ = ["McpProxy"]
