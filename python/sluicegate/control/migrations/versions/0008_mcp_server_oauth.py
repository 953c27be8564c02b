"""OAuth client credentials of a registered MCP server: an `oauth` column on `mcp_servers` (JSON: the
token URL, client id and scope; the client secret is sealed as the workspace secret
`mcp-oauth.<name>`), NULL for the servers stored before (asked without a token, as they were).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("mcp_servers") as batch:
        batch.add_column(sa.Column("oauth", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mcp_servers") as batch:
        batch.drop_column("oauth")
