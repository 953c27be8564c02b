"""The aggregated MCP endpoint: `/mcp`, one MCP server per workspace presenting the tools of every
server the workspace can reach (its registered ones and the operator's) under prefixed names,
`<server>__<tool>`, with the same tool lists, redaction, rate limits, prices, events, metrics and
traces as `/mcp/{server}`.

Here the gateway is the MCP server the agent talks to (Streamable HTTP, JSON answers): it answers
`initialize` and `ping` itself, hands out its own `Mcp-Session-Id`, and for each upstream server
keeps a session of its own as a client (`mcp.client.UpstreamSession`, opened on first use, sent the
server's credentials, through the tenant egress rules). `tools/list` asks every server and lists
what the caller may use (one page; a server that cannot be asked is left out of that list);
`tools/call` of `<server>__<tool>` is checked as a call to `/mcp/{server}` is and sent to that
server as `<tool>`. A server name holding `__` is matched longest first.

Sessions live in the worker that served them: another worker (or this one after a restart) takes an
unknown session id as the caller's and opens its own upstream sessions. There is no server-to-client
stream (GET is 405), so progress notifications of a call are not relayed; a call's answer is.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from sluicegate import __version__
from sluicegate.errors import GatewayError
from sluicegate.mcp.client import McpClientError, UpstreamSession
from sluicegate.mcp.messages import (
    INVALID_REQUEST,
    NOT_JSON,
    PARSE_ERROR,
    Exchange,
    is_request,
    read_rpc_body,
    rpc_error,
)
from sluicegate.mcp.oauth import OAuthError
from sluicegate.proxy.relay import CallInfo, Outcome
from sluicegate.types import Receive, Scope, Send

if TYPE_CHECKING:
    from sluicegate.mcp.proxy import McpProxy
    from sluicegate.mcp.servers import McpTarget
    from sluicegate.policy.auth import Identity

log = logging.getLogger("sluicegate.mcp")
SEPARATOR = "__"
HANDSHAKE_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
METHOD_NOT_FOUND, INVALID_PARAMS = -32601, -32602
UPSTREAM_FAILED = -32000
MAX_SESSIONS = 10_000  # per worker; past it the oldest are closed


@dataclass(slots=True)
class _Session:
    owner: str  # the key that opened it (or first used it on this worker)
    upstream: dict[str, UpstreamSession] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Aggregate:
    """`/mcp` of the MCP front door.

    Arguments:
        proxy: the front door, for its keys, servers, clients, tokens, policies and sinks.
    """

    def __init__(self, proxy: McpProxy) -> None:
        self.proxy = proxy
        self.sessions: dict[str, _Session] = {}
        self._closing: set[asyncio.Future[None]] = set()

    async def stop(self) -> None:
        for session in self.sessions.values():
            for upstream in session.upstream.values():
                await upstream.close()
        self.sessions.clear()

    async def serve(self, scope: Scope, receive: Receive, send: Send, info: CallInfo) -> Outcome:
        method = scope["method"]
        headers = dict(scope["headers"])
        if method not in ("POST", "DELETE"):
            body = rpc_error(None, INVALID_REQUEST, "/mcp accepts POST and DELETE (it sends no server stream)")
            return await _json(send, 405, body, "method_not_allowed", [(b"allow", b"POST, DELETE")])
        proxy = self.proxy
        who = proxy.gateway.keys.authenticate(headers.get(b"authorization"), headers.get(b"x-api-key"))
        info.org, info.workspace, info.key, info.user = who.org, who.workspace, who.key_name, who.user
        trace = headers.get(b"langsmith-trace")
        if trace is not None and len(trace) >= 36 and proxy.gateway.capture:
            info.trace_id = trace.split(b".", 1)[0][-36:].decode("latin-1")
            info.trace = trace.decode("latin-1")
            baggage = headers.get(b"baggage")
            info.baggage = baggage.decode("latin-1") if baggage is not None else None
        sid_raw = headers.get(b"mcp-session-id")
        sid = sid_raw.decode("latin-1") if sid_raw is not None else None
        if method == "DELETE":
            if sid is None:
                return await _json(send, 400, rpc_error(None, INVALID_REQUEST, "no Mcp-Session-Id"), "no_session")
            gone = self.sessions.get(sid)
            if gone is not None and gone.owner == who.key_name:
                del self.sessions[sid]
                for upstream in gone.upstream.values():
                    await upstream.close()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return Outcome(200)
        body = await read_rpc_body(receive, headers, proxy.settings.max_message_bytes, proxy.body_timeout_s)
        if body is NOT_JSON:
            return await _json(send, 400, rpc_error(None, PARSE_ERROR, "the body is not JSON"), "invalid_json")
        messages = body if isinstance(body, list) else [body]
        initializing = any(is_request(m) and m.get("method") == "initialize" for m in messages)
        if initializing:
            sid = os.urandom(16).hex()
        elif sid is None:
            text = "no Mcp-Session-Id: initialize a session first"
            return await _json(send, 400, rpc_error(None, INVALID_REQUEST, text), "no_session")
        assert sid is not None
        session = self.sessions.get(sid)
        if session is None:
            session = self._open(sid, who.key_name)  # another worker's session, or a new one
        elif session.owner != who.key_name:
            text = "no such session: initialize a new one"
            return await _json(send, 404, rpc_error(None, INVALID_REQUEST, text), "unknown_mcp_session")
        outcome = Outcome(200)
        answers = []
        for msg in messages:
            if not is_request(msg):
                continue  # notifications and the client's answers: nothing to do
            answers.append(await self._answer(msg, who, session, outcome, info, headers))
        out_headers = [(b"content-type", b"application/json"), (b"mcp-session-id", sid.encode())]
        if not answers:
            await send({"type": "http.response.start", "status": 202, "headers": out_headers[1:]})
            await send({"type": "http.response.body", "body": b""})
            outcome.status = 202
            return outcome
        payload = answers if isinstance(body, list) else answers[0]
        await send({"type": "http.response.start", "status": 200, "headers": out_headers})
        await send({"type": "http.response.body", "body": orjson.dumps(payload)})
        return outcome

    def _open(self, sid: str, owner: str) -> _Session:
        if len(self.sessions) >= MAX_SESSIONS:
            oldest = next(iter(self.sessions))
            stale = self.sessions.pop(oldest)
            for upstream in stale.upstream.values():
                task = asyncio.ensure_future(upstream.close())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
        session = self.sessions[sid] = _Session(owner)
        return session

    async def _answer(
        self, msg: dict[str, Any], who: Identity, session: _Session, outcome: Outcome, info: CallInfo, headers: Any
    ) -> dict[str, Any]:
        method, msg_id = msg["method"], msg["id"]
        if method == "initialize":
            params = msg.get("params")
            asked = params.get("protocolVersion") if isinstance(params, dict) else None
            version = asked if asked in HANDSHAKE_VERSIONS else HANDSHAKE_VERSIONS[-1]
            result = {
                "protocolVersion": version,
                "capabilities": {"tools": {"listChanged": False}},
                "serverInfo": {"name": "sluicegate", "title": "sluicegate MCP gateway", "version": __version__},
                "instructions": f"The tools of several MCP servers, each named <server>{SEPARATOR}<tool>.",
            }
            return {"jsonrpc": "2.0", "id": msg_id, "result": result}
        if method == "ping":
            return {"jsonrpc": "2.0", "id": msg_id, "result": {}}
        if method == "tools/list":
            return {"jsonrpc": "2.0", "id": msg_id, "result": {"tools": await self._list(who, session, outcome)}}
        if method == "tools/call":
            return await self._call(msg, who, session, outcome, info, headers)
        return rpc_error(msg_id, METHOD_NOT_FOUND, f"/mcp does not serve {str(method)[:64]!r}")

    def _names(self, who: Identity) -> list[str]:
        view = self.proxy.gateway.view
        own = view.mcp_server_names(who.workspace) if view is not None else []
        return sorted(set(self.proxy.servers) | set(own))

    async def _upstream(self, who: Identity, session: _Session, server: str) -> tuple[McpTarget, UpstreamSession]:
        """The session with `server` (opened on first use, again once if the server forgot it or
        refused the token).

        Raises:
            McpClientError: the server cannot be asked.
            SecretUnavailable: its credentials are stored but cannot be opened.
        """
        proxy = self.proxy
        target = proxy._target(who.workspace, server)
        if target is None:
            raise McpClientError(f"no MCP server named {server!r} for this workspace")
        async with session.lock:
            found = session.upstream.get(server)
            if found is not None:
                return target, found
            if target.tenant:
                refused = proxy._refusal(target)
                if refused is not None:
                    raise McpClientError(f"the {refused}")
            where = f"{who.workspace}/{server}" if target.tenant else ""
            for attempt in (1, 2):
                try:
                    sent, token = await proxy.credentials(target, where)
                except OAuthError as exc:
                    raise McpClientError(exc.message) from None
                upstream = UpstreamSession(
                    proxy._client(target.tenant), server, target.url, sent, proxy.settings.max_message_bytes
                )
                try:
                    async with asyncio.timeout(proxy.settings.first_byte_timeout_s):
                        await upstream.initialize()
                except TimeoutError:
                    raise McpClientError(f"the MCP server {server!r} did not answer in time") from None
                except McpClientError as exc:
                    if exc.status == 401 and token is not None and target.oauth is not None and attempt == 1:
                        proxy.tokens.forget(where, target.oauth, token)
                        continue
                    raise
                session.upstream[server] = upstream
                return target, upstream
        raise AssertionError("unreachable")

    async def _ask(self, who: Identity, session: _Session, server: str, work: Any) -> Any:
        """`await work(upstream)` on the session with `server`, its credentials fresh (a token renewed
        since the session opened is sent from then on); once more if the server refused the token
        (a new one) or no longer knows the session (a new session).

        Raises:
            McpClientError: the server cannot be asked (its session is dropped).
            TimeoutError: it did not answer within `mcp.first_byte_timeout_s`.
        """
        proxy = self.proxy
        for attempt in (1, 2):
            target, upstream = await self._upstream(who, session, server)
            where = f"{who.workspace}/{server}" if target.tenant else ""
            try:
                sent, token = await proxy.credentials(target, where)
            except OAuthError as exc:
                raise McpClientError(exc.message) from None
            upstream.headers = {k: v for k, v in upstream.headers.items() if k.lower() != "authorization"}
            upstream.headers.update(sent)
            try:
                async with asyncio.timeout(proxy.settings.first_byte_timeout_s):
                    return await work(upstream)
            except McpClientError as exc:
                if attempt == 2 or exc.status not in (401, 404):
                    session.upstream.pop(server, None)
                    raise
                if exc.status == 401 and token is not None and target.oauth is not None:
                    proxy.tokens.forget(where, target.oauth, token)  # refused: a new token
                else:
                    session.upstream.pop(server, None)  # forgotten upstream: a new session
        raise AssertionError("unreachable")

    async def _list(self, who: Identity, session: _Session, outcome: Outcome) -> list[dict[str, Any]]:
        proxy = self.proxy
        rules = proxy.tools.rules_for(who)
        listed: list[dict[str, Any]] = []
        for server in self._names(who):
            try:
                tools = await self._ask(who, session, server, lambda upstream: upstream.list_tools())
            except (McpClientError, GatewayError, TimeoutError) as exc:
                session.upstream.pop(server, None)
                log.warning("mcp server %s left out of /mcp's tools: %s", server, type(exc).__name__)
                continue
            exchange = Exchange(server, who, proxy.tools, rules, None)
            result: dict[str, Any] = {"tools": tools}
            exchange.inbound({"jsonrpc": "2.0", "id": 0, "result": result})  # the caller's tool lists
            outcome.events += exchange.events
            listed += [{**tool, "name": f"{server}{SEPARATOR}{tool['name']}"} for tool in result["tools"]]
        return listed

    async def _call(
        self, msg: dict[str, Any], who: Identity, session: _Session, outcome: Outcome, info: CallInfo, headers: Any
    ) -> dict[str, Any]:
        proxy, msg_id = self.proxy, msg["id"]
        params = msg.get("params")
        name = params.get("name") if isinstance(params, dict) else None
        if not isinstance(name, str):
            return rpc_error(msg_id, INVALID_PARAMS, "tools/call needs params.name")
        server = max(
            (s for s in self._names(who) if name.startswith(s + SEPARATOR) and len(name) > len(s) + len(SEPARATOR)),
            key=len,
            default=None,
        )
        if server is None:
            text = f"no such tool: the tools of /mcp are named <server>{SEPARATOR}<tool> (see tools/list)"
            return rpc_error(msg_id, INVALID_PARAMS, text)
        assert isinstance(params, dict)
        call = {**msg, "params": {**params, "name": name[len(server) + len(SEPARATOR) :]}}
        exchange = Exchange(server, who, proxy.tools, proxy.tools.rules_for(who), proxy.gateway._redactor_for(who))
        exchange.capture = info.trace is not None
        exchange.outbound(call)
        counted, price, guard = [], 0, None
        if not exchange.answered:
            counted = await proxy._limited(who, server, [call], exchange)
        target = proxy._target(who.workspace, server)
        if not exchange.answered and target is not None:
            price, guard = await proxy._priced(who, target, [call], exchange)
        answer: dict[str, Any] | None = exchange.answered.get(msg_id)
        done: Outcome | None = None
        if answer is None:
            try:
                answer = await self._ask(
                    who, session, server, lambda upstream: upstream.exchange("tools/call", call["params"])
                )
                answer = {**answer, "id": msg_id}
                exchange.inbound(answer)  # redaction, the outcome, the trace
                done = Outcome(200)
            except (McpClientError, TimeoutError) as exc:
                session.upstream.pop(server, None)  # a new session next time
                text = exc.message if isinstance(exc, McpClientError) else f"the MCP server {server!r} timed out"
                answer = rpc_error(msg_id, UPSTREAM_FAILED, text)
        for g in counted:
            await g.finish(done)
        if guard is not None:
            await guard.finish(done)
        elif price and done is not None:
            done.cost_nusd = price
        if done is not None:
            if done.cost_nusd:
                outcome.cost_nusd = (outcome.cost_nusd or 0) + done.cost_nusd
            outcome.events += done.events
        proxy._count(server, exchange, sent=not exchange.answered)
        outcome.events += exchange.events
        if len(exchange.traced) == 1 and info.tool is None:
            from sluicegate.mcp.proxy import _traced

            _traced(outcome, info, server, exchange)
        return answer


async def _json(
    send: Send, status: int, body: dict[str, Any], code: str, extra: list[tuple[bytes, bytes]] | None = None
) -> Outcome:
    headers = [(b"content-type", b"application/json"), *(extra or ())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": orjson.dumps(body)})
    return Outcome(status, error=code)


__all__ = ["SEPARATOR", "Aggregate"]
