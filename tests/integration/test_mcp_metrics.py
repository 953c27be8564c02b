"""Tool calls in `/metrics`: `sluicegate_tool_calls_total` by server, tool and what became of the call,
counted by whichever worker served it and summed in every scrape (two workers); the official `mcp`
SDK as the agent, the SDK's own server as the upstream, each a separate process."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from mcp.shared.exceptions import MCPError
from tests.conftest import Server, gateway_config, scrape, start_gateway
from tests.integration.test_mcp_gateway import session, upstreams  # noqa: F401  (fixture)

pytestmark = pytest.mark.timeout(60)

MARKER = "argument-value-never-a-label"


@pytest.fixture(scope="module")
def counted(
    mock_server: Server,
    upstreams: tuple[Server, Server],  # noqa: F811  (the fixture, imported)
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    sse, _ = upstreams
    extra = f"""
[mcp.servers.docs]
url = "{sse.url}/mcp"

[tools]
deny = ["*/delete_*"]

[redaction]
rules = [{{ entities = ["US_SSN"], action = "block", direction = "response" }}]
"""
    config = gateway_config(tmp_path_factory.mktemp("mcp-metrics") / "gw.toml", mock_server.url, extra)
    with start_gateway(config, {"SLUICEGATE_SERVER__WORKERS": "2"}) as server:
        yield server


def tool_calls(text: str) -> dict[tuple[str, str, str], float]:
    out = {}
    for line in text.splitlines():
        if line.startswith("sluicegate_tool_calls_total{"):
            labels = dict(p.split("=", 1) for p in line[line.index("{") + 1 : line.index("}")].split(","))
            key = (labels["server"].strip('"'), labels["tool"].strip('"'), labels["outcome"].strip('"'))
            out[key] = float(line.rsplit(" ", 1)[1])
    return out


async def test_tool_calls_are_counted_by_server_tool_and_outcome_across_workers(counted: Server) -> None:
    async with session(f"{counted.url}/mcp/docs") as s:
        await s.call_tool("echo", {"text": MARKER})
        await s.call_tool("echo", {"text": MARKER})
        await s.call_tool("leak", {})  # its secret redacted
        blocked = await s.call_tool("ssn", {})  # withheld: a tool error, the session goes on
        assert blocked.is_error
        with pytest.raises(MCPError):
            await s.call_tool("delete_everything", {})
        missing = await s.call_tool("no_such_tool", {})  # the server's own error
        assert missing.is_error
    await asyncio.sleep(1.5)  # metrics.publish_interval_s: the other worker's figures are published by then
    for _ in range(4):  # whichever worker answers the scrape, it sums both
        text = scrape(counted.url)
        assert tool_calls(text) == {
            ("docs", "echo", "ok"): 2,
            ("docs", "leak", "redacted"): 1,
            ("docs", "ssn", "blocked"): 1,
            ("docs", "delete_everything", "denied"): 1,
            ("docs", "no_such_tool", "error"): 1,
        }
        assert MARKER not in text
        assert "sluicegate_tool_series_omitted 0.0" in text
