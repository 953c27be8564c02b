"""The `[mcp]` section: the operator's upstream MCP servers and the bounds of the MCP front door.

```toml
[mcp]
max_message_bytes = 4194304          # one JSON-RPC body or SSE event, either way
authorization_servers = []           # named in the protected resource metadata (RFC 9728)

[mcp.servers.docs]
url = "https://docs-mcp.internal/mcp"
headers_env = { Authorization = "DOCS_MCP_AUTHORIZATION" }   # header -> variable holding its value
```

The operator's servers are trusted as its providers are (no egress rules); workspaces register
their own through the admin API, and those are checked (see `mcp.servers`).

This module imports nothing of the gateway but `secrets`, so `config` can use it.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from sluicegate.secrets import Secret


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class McpServerSettings(_Section):
    """One operator MCP server (`[mcp.servers.<name>]`), offered to every workspace."""

    url: str = Field(pattern=r"^https?://")
    headers: dict[str, str] = Field(default_factory=dict)  # plain values (not credentials)
    headers_env: dict[str, str] = Field(default_factory=dict)  # header -> variable holding its value

    def resolved_headers(self, environ: Mapping[str, str]) -> dict[str, Secret]:
        out = {k: Secret(v) for k, v in self.headers.items()}
        for header, variable in self.headers_env.items():
            value = environ.get(variable)
            if value:
                out[header] = Secret(value)
        return out


class McpSettings(_Section):
    """The MCP front door (`/mcp/{server}`).

    Attributes:
        enabled: serve `/mcp/…` at all.
        servers: the operator's MCP servers by name.
        max_message_bytes: the largest request body, response body or SSE event relayed.
        connect_timeout_s, first_byte_timeout_s: to the upstream server (a stream then stays open
            as long as both ends keep it).
        authorization_servers: the `authorization_servers` of the protected resource metadata.
        public_url: the gateway's public base URL for that document (default: from the request).
    """

    enabled: bool = True
    servers: dict[str, McpServerSettings] = Field(default_factory=dict)
    max_message_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    connect_timeout_s: float = Field(5.0, gt=0)
    first_byte_timeout_s: float = Field(60.0, gt=0)
    authorization_servers: list[str] = Field(default_factory=list)
    public_url: str | None = Field(None, pattern=r"^https?://")
