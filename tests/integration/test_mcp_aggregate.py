"""The aggregated endpoint `/mcp`: the tools of every server a workspace reaches under prefixed
names (`<server>__<tool>`), with the tool lists, redaction, rate limits, metrics and credentials of
`/mcp/{server}`. The official `mcp` SDK as the agent; the SDK's own server as two upstreams (SSE
answers and JSON answers) and a third behind an OAuth token endpoint; each a separate process."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mcp.shared.exceptions import MCPError
from tests.conftest import GATEWAY_KEY, PYTHON, Server, free_port, gateway_config, scrape, spawn, start_gateway
from tests.integration.mcp_upstream import PLANTED_TOKEN
from tests.integration.test_mcp_gateway import OTHER_KEY, session, upstreams  # noqa: F401  (fixture)

from sluicegate.mcp.messages import RATE_LIMITED, TOOL_NOT_ALLOWED
from sluicegate.secrets import hash_key

pytestmark = pytest.mark.timeout(60)
CLIENT_SECRET = "aggregate-client-secret-" + "m" * 12


@pytest.fixture(scope="module")
def oauth_upstream() -> Iterator[Server]:
    port = free_port()
    args = [PYTHON, "-m", "tests.integration.mcp_upstream", str(port), "--oauth", f"agg:{CLIENT_SECRET}"]
    with spawn(args, port) as server:
        yield server


@pytest.fixture(scope="module")
def aggregated(
    mock_server: Server,
    upstreams: tuple[Server, Server],  # noqa: F811  (the fixture, imported)
    oauth_upstream: Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    sse, js = upstreams
    extra = f"""
[mcp.servers.docs]
url = "{sse.url}/mcp"

[mcp.servers.docs-json]
url = "{js.url}/mcp"

[mcp.servers.crm]
url = "{oauth_upstream.url}/mcp"
[mcp.servers.crm.oauth]
token_url = "{oauth_upstream.url}/oauth/token"
client_id = "agg"
client_secret_env = "AGG_CLIENT_SECRET"

[[keys]]
name = "other"
workspace = "ws-other"
sha256 = "{hash_key(OTHER_KEY)}"

[tools]
deny = ["*/delete_*", "docs-json/ssn"]

[[limits.rules]]
level = "workspace"
id = "ws-test"
org = "default"
kind = "requests"
limit = 1
window_s = 600
tools = ["docs-json/count"]
"""
    config = gateway_config(tmp_path_factory.mktemp("mcp-aggregate") / "gw.toml", mock_server.url, extra)
    with start_gateway(config, {"AGG_CLIENT_SECRET": CLIENT_SECRET}) as server:
        yield server


def _text(result: Any) -> str:
    return "".join(c.text for c in result.content if c.type == "text")


def _revoke(server: Server) -> None:
    assert httpx.post(f"{server.url}/oauth/control", json={"revoke": True}).status_code == 200


async def test_every_servers_tools_under_prefixed_names_with_the_same_policies(
    aggregated: Server, oauth_upstream: Server
) -> None:
    async with session(f"{aggregated.url}/mcp") as s:
        names = {t.name for t in (await s.list_tools()).tools}
        each = {"echo", "weather", "count", "leak", "ssn", "seen_headers", "interrupted"}
        assert names == (
            {f"docs__{t}" for t in each}
            | {f"docs-json__{t}" for t in each - {"ssn"}}  # denied for that server alone
            | {f"crm__{t}" for t in each}  # behind its token endpoint
        )
        assert _text(await s.call_tool("docs__echo", {"text": "via docs"})) == "via docs"
        forecast = await s.call_tool("docs-json__weather", {"city": "Oslo"})
        assert forecast.structured_content == {"city": "Oslo", "celsius": 21, "summary": "sunny in Oslo"}
        assert _text(await s.call_tool("crm__echo", {"text": "with a token"})) == "with a token"
        _revoke(oauth_upstream)  # the token the session holds is refused: a new one, the call retried
        assert _text(await s.call_tool("crm__echo", {"text": "a new token"})) == "a new token"
        leaked = await s.call_tool("docs__leak", {})
        assert PLANTED_TOKEN not in _text(leaked) and "keep it safe" in _text(leaked)
        with pytest.raises(MCPError) as denied:
            await s.call_tool("docs__delete_everything", {})
        assert denied.value.error.code == TOOL_NOT_ALLOWED and "'docs/delete_everything'" in denied.value.error.message
        with pytest.raises(MCPError) as unknown:
            await s.call_tool("nowhere__echo", {})
        assert "<server>__<tool>" in unknown.value.error.message
        assert _text(await s.call_tool("docs-json__count", {"n": 1})) == "counted to 1"
        with pytest.raises(MCPError) as limited:
            await s.call_tool("docs-json__count", {"n": 1})
        assert limited.value.error.code == RATE_LIMITED
        seen = await s.call_tool("docs__seen_headers", {})
        assert seen.structured_content is not None and seen.structured_content["authorization"] is None  # no key
    counts = scrape(aggregated.url)
    for line in (
        'sluicegate_tool_calls_total{outcome="ok",server="docs",tool="echo"}',
        'sluicegate_tool_calls_total{outcome="ok",server="crm",tool="echo"}',
        'sluicegate_tool_calls_total{outcome="redacted",server="docs",tool="leak"}',
        'sluicegate_tool_calls_total{outcome="denied",server="docs",tool="delete_everything"}',
        'sluicegate_tool_calls_total{outcome="rate_limited",server="docs-json",tool="count"}',
    ):
        assert line in counts, line


async def test_sessions_are_the_callers_and_end_with_delete(aggregated: Server) -> None:
    head = {"authorization": f"Bearer {GATEWAY_KEY}", "accept": "application/json, text/event-stream"}
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
    }
    async with httpx.AsyncClient(timeout=20) as client:
        opened = await client.post(f"{aggregated.url}/mcp", json=init, headers=head)
        assert opened.status_code == 200 and opened.json()["result"]["protocolVersion"] == "2025-06-18"
        sid = opened.headers["mcp-session-id"]
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        other = {**head, "authorization": f"Bearer {OTHER_KEY}", "mcp-session-id": sid}
        assert (await client.post(f"{aggregated.url}/mcp", json=ping, headers=other)).status_code == 404
        mine = {**head, "mcp-session-id": sid}
        assert (await client.post(f"{aggregated.url}/mcp", json=ping, headers=mine)).json()["result"] == {}
        assert (await client.delete(f"{aggregated.url}/mcp", headers=mine)).status_code == 200
        missing = await client.post(f"{aggregated.url}/mcp", json=ping, headers=head)
        assert missing.status_code == 400  # no session id
        unauthenticated = await client.post(f"{aggregated.url}/mcp", json=init)
        assert unauthenticated.status_code == 401
        assert "/.well-known/oauth-protected-resource/mcp" in unauthenticated.headers["www-authenticate"]
        metadata = await client.get(f"{aggregated.url}/.well-known/oauth-protected-resource/mcp")
        assert metadata.status_code == 200 and metadata.json()["resource"].endswith("/mcp")
