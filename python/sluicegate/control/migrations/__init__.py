"""Versioned schema migrations: plain SQL that SQLite and PostgreSQL both accept, applied in order
inside one transaction each, recorded in `schema_migrations`. Applied at start and by
`sluicegate admin migrate`; applying twice is a no-op. A new migration is a new `vNNNN_*.py` module
with `VERSION` and `STATEMENTS`, listed in `MIGRATIONS`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from sluicegate.control.migrations import v0001_initial, v0002_records

MIGRATIONS = [v0001_initial, v0002_records]
LATEST = MIGRATIONS[-1].VERSION
_LOCK_ID = 0x5167_C7A1  # PostgreSQL advisory lock: one instance migrates at a time


async def migrate(conn: AsyncConnection) -> list[int]:
    """Apply every migration not yet applied, inside the caller's transaction.

    Returns:
        The versions applied now (empty when the schema was current).
    """
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
    await conn.execute(
        text("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
    )
    done = {row[0] for row in await conn.execute(text("SELECT version FROM schema_migrations"))}
    applied = []
    for module in MIGRATIONS:
        if module.VERSION in done:
            continue
        for statement in module.STATEMENTS:
            await conn.execute(text(statement))
        await conn.execute(
            text("INSERT INTO schema_migrations (version, applied_at) VALUES (:v, :at)"),
            {"v": module.VERSION, "at": datetime.now(UTC).isoformat()},
        )
        applied.append(module.VERSION)
    return applied
