"""What a gateway serving MCP wires into the admin API for a server's tool list (`AdminApi.mcp_tools`),
for the admin API's contract and scope tests: the answer of a server `docs` of one workspace, so
that those tests check the endpoint's answer and who may call it. The listing itself (the gateway
asking a real MCP server) is tested in tests/integration/test_mcp_control.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sluicegate.mcp.servers import McpTarget, ToolPrices


def docs_tools(workspace_id: str) -> Callable[[str, str], Awaitable[tuple[McpTarget, list[dict[str, Any]]]]]:
    """The listing of the server `docs` of `workspace_id` (any other is unknown: LookupError)."""

    async def listed(workspace: str, server: str) -> tuple[McpTarget, list[dict[str, Any]]]:
        if (workspace, server) != (workspace_id, "docs"):
            raise LookupError(server)
        prices = ToolPrices(per_call_nusd=1_000_000, tools_nusd={"search": 2_000_000})
        target = McpTarget("docs", "https://tools.example/mcp", tenant=True, prices=prices)
        return target, [{"name": "search", "description": "finds"}, {"name": "fetch", "title": "Fetch"}]

    return listed
