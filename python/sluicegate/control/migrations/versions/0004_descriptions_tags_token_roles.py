"""Descriptions and tags on organizations, workspaces, users and keys; roles, expiry and last use
on admin tokens.

Every new column but the two times is NOT NULL with a server default, so rows already stored get
`description = ''`, `tags = '[]'` (a JSON array of strings) and `role = 'admin'` (what every token
could do before roles). Batch mode on SQLite (copy, drop, rename; rows, indexes and foreign keys
kept) where SQLite needs it, plain ALTER TABLE on PostgreSQL.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DESCRIBED = ("orgs", "workspaces", "users", "api_keys")


def upgrade() -> None:
    for table in _DESCRIBED:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("description", sa.Text(), nullable=False, server_default=""))
            batch.add_column(sa.Column("tags", sa.Text(), nullable=False, server_default="[]"))
    with op.batch_alter_table("admin_tokens") as batch:
        batch.add_column(sa.Column("role", sa.Text(), nullable=False, server_default="admin"))
        batch.add_column(sa.Column("expires_at", sa.Text(), nullable=True))
        batch.add_column(sa.Column("last_used_at", sa.Text(), nullable=True))


def downgrade() -> None:
    # Plain columns (no key, index or constraint): SQLite (3.35+) drops them in place, so no table
    # that others reference is rebuilt, whatever the connection's foreign-key setting.
    with op.batch_alter_table("admin_tokens", recreate="never") as batch:
        batch.drop_column("last_used_at")
        batch.drop_column("expires_at")
        batch.drop_column("role")
    for table in reversed(_DESCRIBED):
        with op.batch_alter_table(table, recreate="never") as batch:
            batch.drop_column("tags")
            batch.drop_column("description")
