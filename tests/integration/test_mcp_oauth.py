"""OAuth 2.0 client credentials (RFC 6749 section 4.4) for an upstream MCP server: the gateway fetches
a bearer token from the server's token endpoint, keeps it until shortly before it expires, sends it
as `Authorization: Bearer`, and when the server refuses it (401) fetches a new one once and retries.
A token endpoint that refuses is a JSON-RPC error naming the server, and the session goes on.

The upstream is the SDK's MCP server behind a small real authorization server on the same socket
(`mcp_upstream.py --oauth`), which issues tokens, accepts only those it issued, and can refuse or
revoke on request; the agent is the official `mcp` SDK; each a separate process. The token cache's
expiry is tested against that server with an injected clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from mcp.shared.exceptions import MCPError
from tests.conftest import PYTHON, Server, free_port, gateway_config, spawn
from tests.integration.test_mcp_gateway import session

from sluicegate.mcp.messages import UPSTREAM_AUTH
from sluicegate.mcp.oauth import ClientCredentials, OAuthError, OAuthTokens
from sluicegate.secrets import Secret

pytestmark = pytest.mark.timeout(60)

CLIENT_ID = "sluicegate-client"
CLIENT_SECRET = "client-secret-never-shown-" + "z" * 12


@pytest.fixture(scope="module")
def upstream() -> Iterator[Server]:
    port = free_port()
    args = [PYTHON, "-m", "tests.integration.mcp_upstream", str(port), "--oauth", f"{CLIENT_ID}:{CLIENT_SECRET}"]
    with spawn(args, port) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(
    mock_server: Server, upstream: Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, Path]]:
    tmp = tmp_path_factory.mktemp("mcp-oauth")
    extra = f"""
[mcp.servers.crm]
url = "{upstream.url}/mcp"

[mcp.servers.crm.oauth]
token_url = "{upstream.url}/oauth/token"
client_id = "{CLIENT_ID}"
scope = "tools.read"
client_secret_env = "CRM_CLIENT_SECRET"
"""
    config = gateway_config(tmp / "gw.toml", mock_server.url, extra)
    port, log = free_port(), tmp / "gateway.log"
    args = [PYTHON, "-m", "sluicegate", "serve", "--config", str(config), "--port", str(port)]
    with spawn(args, port, {"CRM_CLIENT_SECRET": CLIENT_SECRET}, output=log) as server:
        yield server, log


def state(upstream: Server) -> dict[str, Any]:
    return dict(httpx.get(f"{upstream.url}/oauth/state").json())


def control(upstream: Server, **change: Any) -> None:
    assert httpx.post(f"{upstream.url}/oauth/control", json=change).status_code == 200


async def test_calls_carry_a_token_fetched_once_and_kept(gateway: tuple[Server, Path], upstream: Server) -> None:
    gw, _ = gateway
    before = state(upstream)
    async with session(f"{gw.url}/mcp/crm") as s:
        assert "echo" in {t.name for t in (await s.list_tools()).tools}
        for i in range(3):
            said = await s.call_tool("echo", {"text": f"hello {i}"})
            assert not said.is_error
    after = state(upstream)
    assert after["issued"] - before["issued"] == 1  # one token for every request of the session
    assert after["scopes"][-1] == "tools.read"
    assert after["bearers_seen"] - before["bearers_seen"] >= 5  # initialize, list, three calls, ...


async def test_a_token_the_server_refuses_is_replaced_once(gateway: tuple[Server, Path], upstream: Server) -> None:
    gw, _ = gateway
    async with session(f"{gw.url}/mcp/crm") as s:
        await s.call_tool("echo", {"text": "with the first token"})
        before = state(upstream)
        control(upstream, revoke=True)  # the server no longer takes the token the gateway holds
        said = await s.call_tool("echo", {"text": "after a revocation"})
        assert not said.is_error
    assert state(upstream)["issued"] - before["issued"] == 1


async def test_a_refusing_token_endpoint_is_an_error_naming_the_server_and_the_session_goes_on(
    gateway: tuple[Server, Path], upstream: Server
) -> None:
    gw, log = gateway
    async with session(f"{gw.url}/mcp/crm") as s:
        await s.call_tool("echo", {"text": "before"})
        control(upstream, revoke=True, refuse=True)
        try:
            with pytest.raises(MCPError) as refused:
                await s.call_tool("echo", {"text": "while the endpoint refuses"})
        finally:
            control(upstream, refuse=False)
        err = refused.value.error
        assert err.code == UPSTREAM_AUTH
        assert err.message == (
            "the token endpoint of the MCP server 'crm' refused the gateway's client credentials "
            "(HTTP 401, invalid_client)"
        )
        said = await s.call_tool("echo", {"text": "after"})  # the same session, a new token
        assert not said.is_error
    await asyncio.sleep(0.2)
    logged = log.read_text()
    assert "refused the gateway's client credentials" in logged
    assert CLIENT_SECRET not in logged and "at-" not in logged  # neither the secret nor a token


async def test_a_token_is_kept_until_shortly_before_it_expires(upstream: Server) -> None:
    now = [1000.0]
    tokens = OAuthTokens(timeout_s=5, clock=lambda: now[0])
    creds = ClientCredentials(f"{upstream.url}/oauth/token", CLIENT_ID, Secret(CLIENT_SECRET), "tools.read")
    control(upstream, expires_in=120)
    try:
        async with aiohttp.ClientSession() as http:
            before = state(upstream)["issued"]
            first = await tokens.token(http, "", "crm", creds)
            now[0] += 107  # renewed 12 s (a tenth of 120, under the 30 s margin) before it expires
            assert (await tokens.token(http, "", "crm", creds)).reveal() == first.reveal()
            now[0] += 2
            second = await tokens.token(http, "", "crm", creds)
            assert second.reveal() != first.reveal()
            assert state(upstream)["issued"] - before == 2
            # Dropped after a refusal; requests at once share one fetch.
            tokens.forget("", creds, second)
            got = await asyncio.gather(*(tokens.token(http, "", "crm", creds) for _ in range(5)))
            assert len({t.reveal() for t in got}) == 1 and state(upstream)["issued"] - before == 3
            # Another workspace's credentials are kept apart.
            assert (await tokens.token(http, "ws_other/crm", "crm", creds)).reveal() != got[0].reveal()
            wrong = ClientCredentials(creds.token_url, CLIENT_ID, Secret("not-the-secret"), None)
            with pytest.raises(OAuthError) as refused:
                await tokens.token(http, "", "crm", wrong)
            assert "not-the-secret" not in refused.value.message and "invalid_client" in refused.value.message
    finally:
        control(upstream, expires_in=3600)
