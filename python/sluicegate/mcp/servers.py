"""Upstream MCP servers: where `/mcp/{name}` goes and what the gateway adds to each request there.

Two sources, the nearer winning: a workspace's registration in the control plane (`mcp_servers`,
its headers a sealed workspace secret) and the operator's `[mcp.servers.<name>]` in the config file
(for every workspace). A workspace's URL is a tenant's: it passes the egress rules of tenant base
URLs (`proxy/egress.py`) when stored, on every call, and on every connection; the operator's is
trusted, as its providers' are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sluicegate.mcp.oauth import ClientCredentials
from sluicegate.secrets import Secret
from sluicegate.spend.money import format_usd, usd_to_nusd


@dataclass(frozen=True, slots=True)
class McpTarget:
    """One upstream MCP server as the proxy uses it.

    Attributes:
        name: the name in `/mcp/{name}`.
        url: its Streamable HTTP endpoint.
        headers: added to every request forwarded there (its credentials; values never shown).
        tenant: registered by a workspace (egress-checked), not the operator's.
        prices: what a `tools/call` costs, in nano-USD (the caller's spend caps count it).
        oauth: the client credentials a bearer token is fetched with (`mcp.oauth`), if any.
    """

    name: str
    url: str
    headers: Mapping[str, Secret] = field(default_factory=dict)
    tenant: bool = False
    prices: ToolPrices = field(default_factory=lambda: ToolPrices())
    oauth: ClientCredentials | None = None


@dataclass(frozen=True, slots=True)
class ToolPrices:
    """The price of a server's tool calls: `per_call_nusd` for any tool, `tools_nusd` by tool name
    (a tool named there costs its own price)."""

    per_call_nusd: int = 0
    tools_nusd: Mapping[str, int] = field(default_factory=dict)

    def of(self, tool: str) -> int:
        return self.tools_nusd.get(tool, self.per_call_nusd)

    @property
    def free(self) -> bool:
        return not self.per_call_nusd and not any(self.tools_nusd.values())

    def as_json(self) -> dict[str, object]:
        """As the admin API shows and takes them: decimal USD strings."""
        per_call = format_usd(self.per_call_nusd).lstrip("$") if self.per_call_nusd else None
        return {
            "price_usd": per_call,
            "tool_price_usd": {k: format_usd(v).lstrip("$") for k, v in self.tools_nusd.items()},
        }

    @classmethod
    def from_usd(cls, per_call: object, tools: Mapping[str, object]) -> ToolPrices:
        """From decimal USD (strings or numbers, as the config file and the admin API write them).

        Raises:
            ValueError: an amount that is not exact to the nano-dollar, negative or too large.
        """
        return cls(
            usd_to_nusd(str(per_call)) if per_call is not None else 0,
            {name: usd_to_nusd(str(v)) for name, v in tools.items()},
        )
