"""The `[mcp]` section: the operator's upstream MCP servers and the bounds of the MCP front door.

```toml
[mcp]
max_message_bytes = 4194304          # one JSON-RPC body or SSE event, either way
authorization_servers = []           # named in the protected resource metadata (RFC 9728)

[mcp.servers.docs]
url = "https://docs-mcp.internal/mcp"
headers_env = { Authorization = "DOCS_MCP_AUTHORIZATION" }   # header -> variable holding its value
price_usd = "0.002"                  # a tools/call costs this on the caller's spend caps...
tool_price_usd = { deep_search = "0.05" }   # ...or its tool's own price

[mcp.servers.crm]
url = "https://crm-mcp.internal/mcp"
[mcp.servers.crm.oauth]               # a bearer token by the client credentials grant (RFC 6749 4.4)
token_url = "https://auth.internal/oauth/token"
client_id = "sluicegate"
scope = "tools"                      # optional
client_secret_env = "CRM_MCP_CLIENT_SECRET"   # the variable holding the client secret
```

The operator's servers are trusted as its providers are (no egress rules); workspaces register
their own through the admin API, and those are checked (see `mcp.servers`).

This module imports nothing of the gateway but `secrets`, the money helpers and `mcp.oauth`'s
credentials, so `config` can use it.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sluicegate.mcp.oauth import ClientCredentials
from sluicegate.mcp.servers import ToolPrices
from sluicegate.secrets import Secret
from sluicegate.spend.caps import UsdAmount


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class McpOAuthSettings(_Section):
    """OAuth 2.0 client credentials for an operator's server: a bearer token from `token_url`."""

    token_url: str = Field(pattern=r"^https?://")
    client_id: str = Field(min_length=1, max_length=256)
    scope: str | None = Field(None, min_length=1, max_length=1024)
    client_secret_env: str = Field(min_length=1)  # the variable holding the client secret

    def resolved(self, environ: Mapping[str, str]) -> ClientCredentials | None:
        """The credentials, or None when the variable is unset (the server is then asked without)."""
        value = environ.get(self.client_secret_env)
        if not value:
            return None
        return ClientCredentials(self.token_url, self.client_id, Secret(value), self.scope)


class McpServerSettings(_Section):
    """One operator MCP server (`[mcp.servers.<name>]`), offered to every workspace."""

    url: str = Field(pattern=r"^https?://")
    headers: dict[str, str] = Field(default_factory=dict)  # plain values (not credentials)
    headers_env: dict[str, str] = Field(default_factory=dict)  # header -> variable holding its value
    price_usd: UsdAmount | None = None  # a tools/call's price on the caller's spend caps
    tool_price_usd: dict[str, UsdAmount] = Field(default_factory=dict, max_length=1000)  # by tool name
    oauth: McpOAuthSettings | None = None  # a bearer token by the client credentials grant

    @model_validator(mode="after")
    def _prices_exact(self) -> McpServerSettings:
        self.prices  # noqa: B018  (raises ValueError with the reason: a fraction of a nano-dollar, ...)
        return self

    @property
    def prices(self) -> ToolPrices:
        return ToolPrices.from_usd(self.price_usd, self.tool_price_usd)

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
