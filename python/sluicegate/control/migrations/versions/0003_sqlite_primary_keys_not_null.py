"""SQLite: primary-key columns NOT NULL, as on PostgreSQL and in models.py.

The runner before Alembic declared most keys as `id TEXT PRIMARY KEY`, which SQLite, unlike
PostgreSQL, lets hold NULL. On a SQLite database that runner made, each such table is rebuilt with
a NOT NULL key (batch mode: copy, drop, rename; rows, indexes and foreign keys kept). A database
that 0001 created has NOT NULL keys already, and PostgreSQL always had them: nothing to do there.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The tables whose key the old runner declared without NOT NULL, and that key's column and type.
_KEYS: dict[str, tuple[str, sa.types.TypeEngine[Any]]] = {
    "control_state": ("id", sa.Integer()),
    "orgs": ("id", sa.Text()),
    "workspaces": ("id", sa.Text()),
    "users": ("id", sa.Text()),
    "api_keys": ("id", sa.Text()),
    "admin_tokens": ("id", sa.Text()),
    "audit_log": ("seq", sa.BigInteger()),
    "policy_events": ("id", sa.Text()),
    "spend_ledger": ("id", sa.Text()),
}


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    found = sa.inspect(bind)
    for table, (column, type_) in _KEYS.items():
        if next(c for c in found.get_columns(table) if c["name"] == column)["nullable"]:
            with op.batch_alter_table(table) as batch:
                batch.alter_column(column, existing_type=type_, nullable=False)


def downgrade() -> None:
    pass  # a key that may be NULL was never wanted
