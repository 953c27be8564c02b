"""A tool call through the MCP gateway is a LangSmith `tool` run inside the agent's trace: the agent
(traced with the `langsmith` SDK) sends its `langsmith-trace` and `baggage` headers with its MCP
requests (the official `mcp` SDK as the client, a real SDK server upstream); the gateway's run names
the tool, nests under the agent's run, and holds the arguments and the result as they passed the
gateway's redaction, never the values it removed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx2
import langsmith
import pytest
from langsmith.run_helpers import get_current_run_tree
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from tests.conftest import GATEWAY_KEY, PYTHON, Server, free_port, gateway_config, spawn, start_gateway
from tests.integration.mcp_upstream import PLANTED_TOKEN
from tests.integration.test_langsmith import StandIn

EMAIL = "jane.doe@example.com"
pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def standin() -> Iterator[StandIn]:
    s = StandIn()
    yield s
    s.close()


@pytest.fixture(scope="module")
def traced_gateway(mock_server: Server, standin: StandIn, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    with spawn([PYTHON, "-m", "tests.integration.mcp_upstream", str(port)], port) as upstream:
        extra = f"""
[langsmith]
enabled = true
endpoint = "{standin.url}"
api_key = "ls-test"
project = "gw-project"

[mcp.servers.docs]
url = "{upstream.url}/mcp"
"""
        config = gateway_config(tmp_path_factory.mktemp("mcpls") / "gw.toml", mock_server.url, extra)
        with start_gateway(config) as gw:
            yield gw


async def test_each_tool_call_is_a_tool_run_in_the_agents_trace(traced_gateway: Server, standin: StandIn) -> None:
    agent_client = langsmith.Client(api_url=standin.url, api_key="agent-key")
    seen: dict[str, Any] = {}

    @langsmith.traceable(name="agent", client=agent_client)
    async def agent() -> None:
        parent = get_current_run_tree()
        assert parent is not None
        seen["id"], seen["trace_id"], seen["dotted_order"] = str(parent.id), str(parent.trace_id), parent.dotted_order
        headers = {"authorization": f"Bearer {GATEWAY_KEY}", **parent.to_headers()}
        client = httpx2.AsyncClient(headers=headers, timeout=20)
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(client)
            read, write = await stack.enter_async_context(
                streamable_http_client(f"{traced_gateway.url}/mcp/docs", http_client=client)
            )
            s = await stack.enter_async_context(ClientSession(read, write))
            await s.initialize()
            await s.call_tool("echo", {"text": f"write to {EMAIL}"})
            await s.call_tool("leak", {})

    with langsmith.tracing_context(enabled=True, project_name="agent-project"):
        await agent()
    agent_client.flush()

    def tool_runs(s: StandIn) -> dict[str, dict[str, Any]] | None:
        runs = {r.get("name"): r for r in s.runs.values() if r.get("run_type") == "tool" and r.get("outputs")}
        return runs if {"docs/echo", "docs/leak"} <= set(runs) else None

    runs = standin.wait_for(tool_runs)
    for name in ("docs/echo", "docs/leak"):
        run = runs[name]
        assert str(run["trace_id"]) == seen["trace_id"] and str(run["parent_run_id"]) == seen["id"]
        assert run["dotted_order"].startswith(seen["dotted_order"] + ".")
        assert run["session_name"] == "agent-project"
    echo = runs["docs/echo"]
    assert echo["inputs"] == {"name": "echo", "arguments": {"text": "write to [REDACTED:EMAIL]"}}
    assert echo["outputs"]["content"][0]["text"] == "write to [REDACTED:EMAIL]"
    leak = runs["docs/leak"]
    assert leak["outputs"]["content"][0]["text"] == "the deploy token is [REDACTED:GITHUB_TOKEN], keep it safe"
    assert any(p.startswith("redaction:redact:GITHUB_TOKEN") for p in leak["extra"]["metadata"]["sluicegate_policy"])
    everything = b"".join(standin.raw)
    for value in (EMAIL, PLANTED_TOKEN, GATEWAY_KEY):
        assert value.encode() not in everything


async def test_a_tool_call_through_the_aggregated_endpoint_is_a_tool_run_too(
    traced_gateway: Server, standin: StandIn
) -> None:
    agent_client = langsmith.Client(api_url=standin.url, api_key="agent-key")
    seen: dict[str, Any] = {}

    @langsmith.traceable(name="agent", client=agent_client)
    async def agent() -> None:
        parent = get_current_run_tree()
        assert parent is not None
        seen["id"], seen["trace_id"] = str(parent.id), str(parent.trace_id)
        headers = {"authorization": f"Bearer {GATEWAY_KEY}", **parent.to_headers()}
        client = httpx2.AsyncClient(headers=headers, timeout=20)
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(client)
            read, write = await stack.enter_async_context(
                streamable_http_client(f"{traced_gateway.url}/mcp", http_client=client)
            )
            s = await stack.enter_async_context(ClientSession(read, write))
            await s.initialize()
            await s.call_tool("docs__leak", {})

    with langsmith.tracing_context(enabled=True, project_name="agent-project"):
        await agent()
    agent_client.flush()

    def tool_run(s: StandIn) -> dict[str, Any] | None:
        return next(
            (
                r
                for r in s.runs.values()
                if r.get("run_type") == "tool" and r.get("outputs") and str(r.get("trace_id")) == seen["trace_id"]
            ),
            None,
        )

    run = standin.wait_for(tool_run)
    assert run["name"] == "docs/leak" and str(run["parent_run_id"]) == seen["id"]
    assert run["outputs"]["content"][0]["text"] == "the deploy token is [REDACTED:GITHUB_TOKEN], keep it safe"
    assert PLANTED_TOKEN.encode() not in b"".join(standin.raw)
