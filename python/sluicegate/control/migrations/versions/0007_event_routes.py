"""Where a policy event's call came in: a `route` column on `policy_events` (the wire format,
`openai_chat`, `anthropic_messages`, …, or `mcp` for the MCP front door's tool traffic), so that a
tool call's events can be asked for apart from model calls'. Empty (NULL) for the events stored before.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("policy_events") as batch:
        batch.add_column(sa.Column("route", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("policy_events") as batch:
        batch.drop_column("route")
