"""The control plane's tables (SQLAlchemy Core), one code path for SQLite and PostgreSQL.

Times are ISO-8601 UTC text and ids are text, so rows read, compare and hash the same on both
databases. The schema itself is created by the Alembic revisions in `migrations/versions/`, not by
`create_all`; a test checks that these tables (with their foreign keys and indexes) and the revisions
agree, so a change here ships with a new revision (docs/control-plane.md says how to generate one).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, MetaData, Table, Text, text

metadata = MetaData()


def _described() -> list[Column[Any]]:
    """The free-form fields of an org, workspace, user or key: a description and tags (a JSON array
    of strings), both readable by anyone who may read the row."""
    return [
        Column("description", Text, nullable=False, server_default=text("''")),
        Column("tags", Text, nullable=False, server_default=text("'[]'")),
    ]


state = Table(
    "control_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", BigInteger, nullable=False),
    Column("audit_head_seq", BigInteger, nullable=False),
    Column("audit_head_hash", Text, nullable=False),
)

orgs = Table(
    "orgs",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    *_described(),
)

workspaces = Table(
    "workspaces",
    metadata,
    Column("id", Text, primary_key=True),
    Column("org_id", Text, ForeignKey("orgs.id"), nullable=False),
    Column("name", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    *_described(),
    Index("workspaces_org", "org_id"),
)

users = Table(
    "users",
    metadata,
    Column("id", Text, primary_key=True),
    Column("org_id", Text, ForeignKey("orgs.id"), nullable=False),
    Column("workspace_id", Text, ForeignKey("workspaces.id"), nullable=False),
    Column("name", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    *_described(),
    Index("users_workspace", "workspace_id"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Text, primary_key=True),
    Column("org_id", Text, ForeignKey("orgs.id"), nullable=False),
    Column("workspace_id", Text, ForeignKey("workspaces.id"), nullable=False),
    Column("user_id", Text, ForeignKey("users.id")),
    Column("name", Text, nullable=False),
    Column("key_hash", Text, nullable=False, unique=True),
    Column("prefix", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("expires_at", Text),
    Column("revoked_at", Text),
    Column("last_used_at", Text),
    *_described(),
    Index("api_keys_workspace", "workspace_id"),
)

admin_tokens = Table(
    "admin_tokens",
    metadata,
    Column("id", Text, primary_key=True),
    Column("org_id", Text, ForeignKey("orgs.id")),
    Column("workspace_id", Text, ForeignKey("workspaces.id")),
    Column("name", Text, nullable=False),
    Column("token_hash", Text, nullable=False, unique=True),
    Column("created_at", Text, nullable=False),
    Column("revoked_at", Text),
    Column("role", Text, nullable=False, server_default=text("'admin'")),  # admin | viewer
    Column("expires_at", Text),
    Column("last_used_at", Text),
)

secrets = Table(
    "provider_secrets",
    metadata,
    Column("level", Text, primary_key=True),
    Column("scope_id", Text, primary_key=True),
    Column("provider", Text, primary_key=True),
    Column("org_id", Text, nullable=False),
    Column("ciphertext", Text, nullable=False),
    Column("meta", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
)

# Upstream MCP servers a workspace registers (`/mcp/{name}` on the gateway). The header values
# (credentials) are not here: they are a sealed secret of the workspace (`provider_secrets`, provider
# `mcp.<name>`), so sealing, rotation and the fail-closed rules are those of every provider secret.
mcp_servers = Table(
    "mcp_servers",
    metadata,
    Column("workspace_id", Text, ForeignKey("workspaces.id"), primary_key=True),
    Column("name", Text, primary_key=True),
    Column("org_id", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("header_names", Text, nullable=False),  # a JSON array: which headers the secret holds
    Column("description", Text, nullable=False, server_default=text("''")),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    # JSON: {"per_call_nusd": int, "tools_nusd": {tool: int}}, what a tools/call costs (`{}`: free)
    Column("prices", Text, nullable=False, server_default=text("'{}'")),
    # JSON: {"token_url", "client_id", "scope"} of OAuth client credentials (0008; NULL: none). The
    # client secret is the workspace secret `mcp-oauth.<name>`.
    Column("oauth", Text),
)

policies = Table(
    "policies",
    metadata,
    Column("level", Text, primary_key=True),
    Column("entity_id", Text, primary_key=True),
    Column("org_id", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("org_id", Text),
    Column("request_id", Text, nullable=False),
    Column("client", Text, nullable=False),
    Column("diff", Text, nullable=False),
    Column("prev_hash", Text, nullable=False),
    Column("hash", Text, nullable=False),
    Index("audit_log_org", "org_id", "seq"),
)


def _call_columns() -> list[Column[Any]]:
    """The columns every data-plane record starts with: its id, time and who made the call."""
    return [
        Column("id", Text, primary_key=True),
        Column("at", Text, nullable=False),
        Column("org_id", Text, nullable=False),
        Column("workspace_id", Text),
        Column("user_id", Text),
        Column("key_id", Text),
        Column("request_id", Text, nullable=False),
    ]


policy_events = Table(
    "policy_events",
    metadata,
    *_call_columns(),
    Column("trace_id", Text),
    Column("run_id", Text),
    Column("route", Text),  # the call's wire format, or `mcp` (0007; NULL before)
    Column("policy", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("direction", Text, nullable=False),
    Column("entity", Text, nullable=False),
    Column("count", Integer, nullable=False),
    Column("detail", Text, nullable=False),
    Index("policy_events_org_at", "org_id", "at"),
)

spend_ledger = Table(
    "spend_ledger",
    metadata,
    *_call_columns(),
    Column("model", Text),
    Column("provider", Text),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("cost_nusd", BigInteger, nullable=False),
    Index("spend_ledger_org_at", "org_id", "at"),
)
