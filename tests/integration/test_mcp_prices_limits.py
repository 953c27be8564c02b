"""Priced and rate-limited tool calls: an MCP server's `price_usd` (and a tool's own in `tool_price_usd`) puts each
`tools/call` on the caller's spend caps, reserved before the call is sent and settled when the server
answers; a cap that would be crossed answers the call with a JSON-RPC error naming the cap and sends
nothing; every priced call is in the spend figures, with caps or without. A rate limit with `tools`
counts the calls of the tools it names, on a counter apart from the model calls' limits. The official `mcp` SDK as
the agent, the SDK's own server as the upstream, each a separate process."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from mcp.shared.exceptions import MCPError
from tests.conftest import GATEWAY_KEY, Server, gateway_config, scrape, start_gateway
from tests.integration.test_mcp_gateway import OTHER_KEY, session, upstreams  # noqa: F401  (fixture)
from tests.integration.test_spend_gateway import policy_events

from sluicegate.mcp.messages import RATE_LIMITED, SPEND_LIMIT
from sluicegate.secrets import hash_key

pytestmark = pytest.mark.timeout(60)

ECHO_NUSD, WEATHER_NUSD = 1_000_000, 4_000_000  # $0.001 a call, $0.004 for `weather`
CAP_NUSD = 6_000_000


@pytest.fixture(scope="module")
def priced(
    mock_server: Server,
    upstreams: tuple[Server, Server],  # noqa: F811  (the fixture, imported)
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    sse, js = upstreams
    extra = f"""
[mcp.servers.docs]
url = "{sse.url}/mcp"
price_usd = "0.001"
tool_price_usd = {{ weather = "0.004" }}

[mcp.servers.free]
url = "{js.url}/mcp"

[[keys]]
name = "other"
workspace = "ws-other"
sha256 = "{hash_key(OTHER_KEY)}"

[spend]
[[spend.caps]]
level = "workspace"
id = "ws-test"
org = "default"
window = "day"
limit_usd = "{CAP_NUSD / 1e9:.9f}"
"""
    config = gateway_config(tmp_path_factory.mktemp("mcp-prices") / "gw.toml", mock_server.url, extra)
    with start_gateway(config) as server:
        yield server


def spent(gw: Server, workspace: str) -> int:
    for line in scrape(gw.url).splitlines():
        if line.startswith(f'sluicegate_spend_nusd_total{{workspace="{workspace}"}}'):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


async def test_priced_calls_are_held_on_the_cap_and_refused_past_it(priced: Server) -> None:
    async with session(f"{priced.url}/mcp/docs") as s:
        await s.call_tool("echo", {"text": "a"})
        await s.call_tool("weather", {"city": "Oslo"})  # its own price
        assert spent(priced, "ws-test") == ECHO_NUSD + WEATHER_NUSD
        with pytest.raises(MCPError) as refused:  # 0.004 more would cross the cap of 0.006
            await s.call_tool("weather", {"city": "Bergen"})
        assert refused.value.error.code == SPEND_LIMIT and "spend cap reached" in refused.value.error.message
        assert refused.value.error.data["cap"]["limit_nusd"] == CAP_NUSD  # type: ignore[index]
        await s.call_tool("echo", {"text": "still fits"})  # the session goes on
        # A server without prices costs nothing.
    async with session(f"{priced.url}/mcp/free") as s:
        await s.call_tool("echo", {"text": "free"})
    assert spent(priced, "ws-test") == CAP_NUSD
    assert 'sluicegate_tool_calls_total{outcome="spend_limited",server="docs",tool="weather"} 1.0' in scrape(priced.url)
    events = policy_events(priced)
    assert events['{action="refuse",entity="workspace",policy="spend"}'] == 1


async def test_priced_calls_are_in_the_figures_without_a_cap(priced: Server) -> None:
    async with session(f"{priced.url}/mcp/docs", OTHER_KEY) as s:
        await s.call_tool("echo", {"text": "a"})
        await s.call_tool("weather", {"city": "Oslo"})
    assert spent(priced, "ws-other") == ECHO_NUSD + WEATHER_NUSD


@pytest.fixture(scope="module")
def limited(
    mock_server: Server,
    upstreams: tuple[Server, Server],  # noqa: F811  (the fixture, imported)
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    sse, _ = upstreams
    extra = f"""
[mcp.servers.docs]
url = "{sse.url}/mcp"

[[limits.rules]]
level = "workspace"
id = "ws-test"
org = "default"
kind = "requests"
limit = 2
window_s = 600
tools = ["docs/weather"]

[[limits.rules]]
level = "workspace"
id = "ws-test"
org = "default"
kind = "requests"
limit = 1
window_s = 600
"""
    config = gateway_config(tmp_path_factory.mktemp("mcp-limits") / "gw.toml", mock_server.url, extra)
    with start_gateway(config) as server:
        yield server


async def test_a_rate_limit_on_tool_calls_counts_its_tools_apart_from_model_calls(limited: Server) -> None:
    async with session(f"{limited.url}/mcp/docs") as s:
        for city in ("Oslo", "Bergen"):
            await s.call_tool("weather", {"city": city})
        with pytest.raises(MCPError) as refused:
            await s.call_tool("weather", {"city": "Tromsø"})
        err = refused.value.error
        assert err.code == RATE_LIMITED and "allows 2 requests per 600 s" in err.message
        assert err.data["limit"]["kind"] == "requests" and err.data["limit"]["retry_after_ms"] > 0  # type: ignore[index]
        for _ in range(3):  # another tool: no limit of its own
            await s.call_tool("echo", {"text": "not counted"})
    # The model calls' limit has its own counter: its one call is still free.
    with openai.OpenAI(base_url=f"{limited.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client:
        client.chat.completions.create(model="mh/mock-gpt", messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="mh/mock-gpt", messages=[{"role": "user", "content": "hi"}])
    events = policy_events(limited)
    assert events['{action="refuse",entity="workspace",policy="limits"}'] == 2  # one tool call, one model call
    counts = scrape(limited.url)
    assert 'sluicegate_tool_calls_total{outcome="rate_limited",server="docs",tool="weather"} 1.0' in counts
    assert 'sluicegate_tool_calls_total{outcome="ok",server="docs",tool="weather"} 2.0' in counts
