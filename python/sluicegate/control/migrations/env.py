"""Alembic's environment for the control plane: run by `migrate()` and the revision tool in
`__main__.py`, each of which passes an open connection in `config.attributes["connection"]`
(`migrate()`'s is inside the transaction that holds the migration lock). There is no alembic.ini
and no URL here, and no offline (SQL script) mode.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo

from sluicegate.control.migrations import CONTEXT_OPTIONS

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the control plane's migrations through sluicegate.control.migrations, not alembic's CLI")
applied: list[str] = config.attributes.setdefault("applied", [])


def _record(ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any], run_args: Mapping[str, Any]) -> None:
    if step.is_upgrade and not step.is_stamp and step.up_revision_id is not None:
        applied.append(step.up_revision_id)


context.configure(connection=connection, on_version_apply=_record, **CONTEXT_OPTIONS)
with context.begin_transaction():
    context.run_migrations()
