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

from sluicegate.secrets import Secret


@dataclass(frozen=True, slots=True)
class McpTarget:
    """One upstream MCP server as the proxy uses it.

    Attributes:
        name: the name in `/mcp/{name}`.
        url: its Streamable HTTP endpoint.
        headers: added to every request forwarded there (its credentials; values never shown).
        tenant: registered by a workspace (egress-checked), not the operator's.
    """

    name: str
    url: str
    headers: Mapping[str, Secret] = field(default_factory=dict)
    tenant: bool = False
