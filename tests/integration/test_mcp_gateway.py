"""The MCP front door end to end: the official `mcp` SDK as the agent (`streamable_http_client` and
`ClientSession`), a real MCP server built with the SDK as the upstream (`mcp_upstream.py`, on its
own socket), the gateway between them on another, each a separate process.

The operator's server `docs` (SSE answers) and `docs-json` (JSON answers) come from the config file,
with their credentials from the environment; the operator's `[tools]` deny `*/delete_*`, and its
`[redaction]` blocks US social security numbers in responses (the default redacts the rest).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from tests.conftest import GATEWAY_KEY, PYTHON, Server, free_port, gateway_config, spawn, start_gateway
from tests.integration.mcp_upstream import PLANTED_SSN, PLANTED_TOKEN

from sluicegate.secrets import hash_key

UPSTREAM_AUTH = "Bearer upstream-credential-for-docs"
OTHER_KEY = "sg-other-" + "o" * 40

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[Server, Server]]:
    """The SDK's MCP server twice: answering POSTs with SSE streams, and with JSON."""
    sse_port, json_port = free_port(), free_port()
    module = [PYTHON, "-m", "tests.integration.mcp_upstream"]
    with spawn([*module, str(sse_port)], sse_port) as sse, spawn([*module, str(json_port), "--json"], json_port) as js:
        yield sse, js


@pytest.fixture(scope="module")
def mcp_gateway(
    mock_server: Server, upstreams: tuple[Server, Server], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    sse, js = upstreams
    extra = f"""
[mcp.servers.docs]
url = "{sse.url}/mcp"
headers = {{ x-team = "search" }}
headers_env = {{ Authorization = "DOCS_MCP_AUTHORIZATION" }}

[mcp.servers.docs-json]
url = "{js.url}/mcp"

[mcp.servers.docs-by-name]
url = "http://localhost:{js.port}/mcp"

[[keys]]
name = "other"
workspace = "ws-other"
sha256 = "{hash_key(OTHER_KEY)}"

[tools]
deny = ["*/delete_*"]

[redaction]
rules = [{{ entities = ["US_SSN"], action = "block", direction = "response" }}]
"""
    config = gateway_config(tmp_path_factory.mktemp("mcp") / "gw.toml", mock_server.url, extra)
    with start_gateway(config, {"DOCS_MCP_AUTHORIZATION": UPSTREAM_AUTH}) as server:
        yield server


@contextlib.asynccontextmanager
async def session(url: str, key: str = GATEWAY_KEY) -> AsyncIterator[ClientSession]:
    client = httpx2.AsyncClient(headers={"authorization": f"Bearer {key}"}, timeout=20)
    async with (
        client,
        streamable_http_client(url, http_client=client) as (read, write),
        ClientSession(read, write) as s,
    ):
        await s.initialize()
        yield s


def _text(result: Any) -> str:
    return "".join(c.text for c in result.content if c.type == "text")


@pytest.mark.parametrize("server", ["docs", "docs-json"])
async def test_tools_list_and_call_through_the_gateway(mcp_gateway: Server, server: str) -> None:
    async with session(f"{mcp_gateway.url}/mcp/{server}") as s:
        names = {t.name for t in (await s.list_tools()).tools}
        # every tool but the denied one, which the agent never sees
        assert names == {"echo", "weather", "count", "leak", "ssn", "seen_headers", "interrupted"}
        assert _text(await s.call_tool("echo", {"text": "hello through the gateway"})) == "hello through the gateway"
        forecast = await s.call_tool("weather", {"city": "Oslo"})
        assert forecast.structured_content == {"city": "Oslo", "celsius": 21, "summary": "sunny in Oslo"}
        assert not forecast.is_error


async def test_progress_notifications_stream_before_the_result(mcp_gateway: Server) -> None:
    seen: list[tuple[float, float | None, str | None]] = []
    async with session(f"{mcp_gateway.url}/mcp/docs") as s:

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append((progress, total, message))

        result = await s.call_tool("count", {"n": 4}, progress_callback=on_progress)
    assert _text(result) == "counted to 4"
    assert seen == [(float(i), 4.0, f"step {i}") for i in range(1, 5)]


async def test_a_call_survives_the_server_dropping_the_stream_by_resuming_with_last_event_id(
    mcp_gateway: Server,
) -> None:
    seen: list[tuple[float, str | None]] = []
    async with session(f"{mcp_gateway.url}/mcp/docs") as s:

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append((progress, message))

        result = await s.call_tool("interrupted", {}, progress_callback=on_progress)
        # the session goes on after the reconnect
        assert _text(await s.call_tool("echo", {"text": "same session"})) == "same session"
    assert seen == [(1.0, "before the drop"), (2.0, "after the drop")]
    # the answer came on the resumed stream (a GET with Last-Event-ID), checked there as well
    assert _text(result) == "finished after a reconnect, token [REDACTED:GITHUB_TOKEN]"


async def test_a_denied_tool_is_refused_with_an_error_naming_the_rule(mcp_gateway: Server) -> None:
    async with session(f"{mcp_gateway.url}/mcp/docs") as s:
        with pytest.raises(MCPError) as refused:
            await s.call_tool("delete_everything", {})
        assert "'docs/delete_everything' is not allowed" in str(refused.value)
        assert "the operator's configuration denies '*/delete_*'" in str(refused.value)
        # the session goes on
        assert _text(await s.call_tool("echo", {"text": "still here"})) == "still here"


@pytest.mark.parametrize("server", ["docs", "docs-json"])
async def test_a_planted_secret_never_reaches_the_client(mcp_gateway: Server, server: str) -> None:
    async with session(f"{mcp_gateway.url}/mcp/{server}") as s:
        result = await s.call_tool("leak", {})
    text = _text(result)
    assert PLANTED_TOKEN not in text
    assert text == "the deploy token is [REDACTED:GITHUB_TOKEN], keep it safe"


async def test_a_blocked_result_is_a_tool_error_and_the_session_goes_on(mcp_gateway: Server) -> None:
    async with session(f"{mcp_gateway.url}/mcp/docs") as s:
        result = await s.call_tool("ssn", {})
        assert result.is_error
        assert PLANTED_SSN not in _text(result) and "US_SSN" in _text(result)
        assert _text(await s.call_tool("echo", {"text": "after the block"})) == "after the block"


async def test_arguments_are_redacted_before_the_tool_sees_them(mcp_gateway: Server) -> None:
    async with session(f"{mcp_gateway.url}/mcp/docs") as s:
        result = await s.call_tool("echo", {"text": f"mail me at jane.doe@example.com or use {PLANTED_TOKEN}"})
    assert _text(result) == "mail me at [REDACTED:EMAIL] or use [REDACTED:GITHUB_TOKEN]"


async def test_the_upstream_gets_its_own_credentials_never_the_gateway_key(mcp_gateway: Server) -> None:
    async with session(f"{mcp_gateway.url}/mcp/docs") as s:
        result = await s.call_tool("seen_headers", {})
    assert result.structured_content == {
        "authorization": UPSTREAM_AUTH,
        "x-api-key": None,
        "x-team": "search",
        "cookie": None,
    }
    assert GATEWAY_KEY not in str(result)


async def test_delete_ends_the_session_upstream(mcp_gateway: Server) -> None:
    url = f"{mcp_gateway.url}/mcp/docs"
    auth = {"authorization": f"Bearer {GATEWAY_KEY}"}
    async with session(url) as s:
        await s.list_tools()
    # by hand, to see each step: initialize, a session id, DELETE, and the id no longer known upstream
    head = {**auth, "accept": "application/json, text/event-stream", "content-type": "application/json"}
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.post(url, json=init, headers=head)
        assert answer.status_code == 200
        sid = answer.headers["mcp-session-id"]
        with_session = {**head, "mcp-session-id": sid, "mcp-protocol-version": "2025-06-18"}
        done = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert (await client.post(url, json=done, headers=with_session)).status_code == 202
        assert (await client.delete(url, headers=with_session)).status_code == 200
        after = await client.post(url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=with_session)
        assert after.status_code == 404  # the upstream no longer knows the session: the client starts again


async def test_a_session_is_usable_only_with_the_key_that_opened_it(mcp_gateway: Server) -> None:
    url = f"{mcp_gateway.url}/mcp/docs"
    head = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    async with httpx.AsyncClient(timeout=10) as client:
        opened = await client.post(url, json=init, headers={**head, "authorization": f"Bearer {GATEWAY_KEY}"})
        session_headers = {
            **head,
            "mcp-session-id": opened.headers["mcp-session-id"],
            "mcp-protocol-version": "2025-06-18",
        }
        done = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        owner = {**session_headers, "authorization": f"Bearer {GATEWAY_KEY}"}
        assert (await client.post(url, json=done, headers=owner)).status_code == 202
        stranger = await client.post(
            url, json=listing, headers={**session_headers, "authorization": f"Bearer {OTHER_KEY}"}
        )
        assert stranger.status_code == 404 and "no such session" in stranger.json()["error"]["message"]
        assert (await client.post(url, json=listing, headers=owner)).status_code == 200


async def test_a_bad_key_gets_401_with_the_resource_metadata(mcp_gateway: Server) -> None:
    url = f"{mcp_gateway.url}/mcp/docs"
    async with httpx.AsyncClient(timeout=10) as client:
        for headers in ({}, {"authorization": "Bearer sg-not-a-key"}):
            answer = await client.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers=headers)
            assert answer.status_code == 401
            challenge = answer.headers["www-authenticate"]
            metadata_url = f"{mcp_gateway.url}/.well-known/oauth-protected-resource/mcp/docs"
            assert challenge == f'Bearer resource_metadata="{metadata_url}"'
        document = (await client.get(metadata_url)).json()
    assert document["resource"] == url
    assert document["bearer_methods_supported"] == ["header"]
    assert document["authorization_servers"] == []
    # and the SDK's client stops there, with the gateway's reason
    with pytest.raises(BaseExceptionGroup) as failed:
        async with session(url, key="sg-not-a-key") as s:
            await s.list_tools()
    errors = _leaves(failed.value)
    assert [(type(e), str(e)) for e in errors] == [(MCPError, "the gateway key is not valid")]


def _leaves(group: BaseException) -> list[BaseException]:
    if isinstance(group, BaseExceptionGroup):
        return [leaf for e in group.exceptions for leaf in _leaves(e)]
    return [group]


async def test_an_unknown_server_is_a_404(mcp_gateway: Server) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.post(
            f"{mcp_gateway.url}/mcp/nope",
            json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            headers={"authorization": f"Bearer {GATEWAY_KEY}"},
        )
    assert answer.status_code == 404 and "no MCP server named 'nope'" in answer.json()["error"]["message"]


async def test_a_cookie_a_server_sets_never_goes_with_another_call(mcp_gateway: Server) -> None:
    """The server sets a cookie on every answer (on a host name: cookies of bare addresses are not
    kept anyway); no later call, of this workspace or another, carries it."""
    for key in (GATEWAY_KEY, OTHER_KEY, GATEWAY_KEY):
        async with session(f"{mcp_gateway.url}/mcp/docs-by-name", key) as s:
            seen = (await s.call_tool("seen_headers", {})).structured_content
            assert seen is not None and seen["cookie"] is None, seen
