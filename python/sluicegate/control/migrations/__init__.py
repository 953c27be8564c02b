"""The control plane's schema migrations: Alembic revisions in `versions/`, applied by the store at
start (`ControlStore.open`) and by `sluicegate admin migrate`; applying twice is a no-op.

Alembic runs programmatically: no alembic.ini, this directory is the script directory, and
`env.py` takes the connection `migrate()` passes in. All pending revisions run in one transaction
that first takes the migration lock, so instances that start together migrate once: on PostgreSQL
an advisory lock (the same one the runner before Alembic took, so an instance of that release
waits for it too), on SQLite an exclusive `flock` on a file beside the database (`<db>.migrate-lock`)
held across the whole run, then `BEGIN IMMEDIATE` (the write lock) inside it. SQLite's own lock is
not enough alone: on a database file that is still empty, a connection that has switched it to WAL
and one that has not yet seen the switch take different locks and do not exclude each other, and
Alembic's `context` is one per process, so two migrations in one process must never interleave.
On SQLite, foreign keys are off while the revisions run (batch mode rebuilds tables, and dropping a
table that others reference would fail) and `PRAGMA foreign_key_check` must come back clean before
the commit.

A database made before Alembic has the runner's own table, `schema_migrations`, with one row per
applied version (1 and 2) and no `alembic_version`. It is adopted in the same transaction: stamped
at the matching revision (1 -> 0001, 2 -> 0002), then upgraded (0003 gives that runner's SQLite
tables the NOT NULL keys it left out). `schema_migrations` is left as it is (frozen, never written
again, ignored by the schema comparison) so that an instance of the previous release still starts
while a rolling upgrade replaces it.

A new revision: `python -m sluicegate.control.migrations new "add widgets"` (see `__main__.py`).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from sluicegate.control.models import metadata

__all__ = [
    "BEGIN_IMMEDIATE",
    "CONTEXT_OPTIONS",
    "HERE",
    "LEGACY_REVISIONS",
    "LEGACY_TABLE",
    "MigrationError",
    "config",
    "differences",
    "migrate",
    "pending",
    "revisions",
]

log = logging.getLogger("sluicegate.control")
HERE = Path(__file__).resolve().parent
LOCK_ID = 0x5167_C7A1  # PostgreSQL advisory lock: one instance migrates at a time (the same id as before Alembic)
BEGIN_IMMEDIATE = "sluicegate_begin_immediate"  # execution option: the store's SQLite `begin` hook says IMMEDIATE
LEGACY_TABLE = "schema_migrations"
LOCK_WAIT_S = 600.0  # SQLite: how long an instance waits for another one's migration before giving up
LEGACY_REVISIONS = {1: "0001", 2: "0002"}  # the runner's versions before Alembic -> the revision each one is


class MigrationError(RuntimeError):
    """The schema cannot be brought to the newest revision (the reason says why); nothing was changed."""


def _include_name(name: str | None, type_: str, _parents: Any) -> bool:
    return not (type_ == "table" and name == LEGACY_TABLE)


# How Alembic compares and renders, for `env.py` and `differences()` alike.
CONTEXT_OPTIONS: dict[str, Any] = {
    "target_metadata": metadata,
    "render_as_batch": True,  # SQLite: ALTERs it cannot do become copy-and-rename
    "compare_type": True,
    "compare_server_default": True,
    "include_name": _include_name,
}


def config(extra_versions: Sequence[Path] = ()) -> Config:
    """Alembic's configuration, without a file: this directory, and `versions/` (plus `extra_versions`).

    Arguments:
        extra_versions: more directories of revisions (tests add one that builds on the newest).
    """
    cfg = Config()
    cfg.set_main_option("script_location", _escaped(HERE))
    cfg.set_main_option("path_separator", "os")  # Alembic 1.16 and later
    cfg.set_main_option("version_path_separator", "os")  # before 1.16 (later ones read path_separator first)
    locations = [HERE / "versions", *extra_versions]
    cfg.set_main_option("version_locations", os.pathsep.join(_escaped(p) for p in locations))
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    return cfg


def _escaped(path: Path) -> str:
    return str(path).replace("%", "%%")  # configparser interpolation


def revisions(cfg: Config | None = None) -> list[str]:
    """Every revision id, oldest first."""
    script = ScriptDirectory.from_config(cfg or config())
    return [r.revision for r in reversed(list(script.walk_revisions()))]


async def migrate(engine: AsyncEngine, extra_versions: Sequence[Path] = ()) -> list[str]:
    """Bring the database to the newest revision (adopting a database made before Alembic).

    Arguments:
        engine: the store's engine (its SQLite `begin` hook honours `BEGIN_IMMEDIATE`).
        extra_versions: more directories of revisions, as for `config()`.

    Returns:
        The revisions applied now, oldest first (empty when the schema was current).

    Raises:
        MigrationError: the database's bookkeeping is not one this code knows, or a revision left
            rows that break a foreign key (SQLite); the transaction is rolled back.
    """
    cfg = config(extra_versions)
    async with _file_lock(engine), engine.connect() as conn:
        return await conn.run_sync(_migrate, cfg)


async def pending(engine: AsyncEngine) -> list[str]:
    """The revisions the database still lacks, oldest first (empty when it is at the newest); read
    only, no lock taken. A database from before Alembic, or an empty one, lacks them all.

    Raises:
        MigrationError: the database is at a revision this release does not know (a newer release's).
    """

    def read(conn: Connection) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    async with engine.connect() as conn:
        current = await conn.run_sync(read)
    known = revisions()
    if current is None:
        return known
    if current not in known:
        raise MigrationError(f"the database is at revision {current}, which this release does not know")
    return known[known.index(current) + 1 :]


@asynccontextmanager
async def _file_lock(engine: AsyncEngine, wait_s: float = LOCK_WAIT_S) -> AsyncIterator[None]:
    """SQLite on a file: hold an exclusive `flock` on `<db>.migrate-lock` (other processes and other
    stores in this one wait; polled, so the event loop runs on). Elsewhere, nothing."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    fd = os.open(f"{database}.migrate-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise MigrationError(
                        f"another instance has held the migration lock for over {wait_s:.0f} s; nothing was changed"
                    ) from None
                await asyncio.sleep(0.02)
        yield
    finally:
        os.close(fd)  # releases the lock


def _migrate(conn: Connection, cfg: Config) -> list[str]:
    sqlite = conn.dialect.name == "sqlite"
    if sqlite:
        _outside_transaction(conn, "PRAGMA foreign_keys=OFF")  # a no-op inside a transaction
        conn.execution_options(**{BEGIN_IMMEDIATE: True})
    try:
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": LOCK_ID})
            _adopt_legacy(conn, ScriptDirectory.from_config(cfg))
            applied: list[str] = []
            cfg.attributes["connection"] = conn
            cfg.attributes["applied"] = applied
            command.upgrade(cfg, "head")
            if sqlite:
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    tables = sorted({str(row[0]) for row in broken})
                    raise MigrationError(
                        f"the migration would leave {len(broken)} rows with a dangling foreign key"
                        f" (in {', '.join(tables)}); nothing was changed"
                    )
    finally:
        if sqlite:
            # This connection had foreign keys off: close it rather than hand it back to the pool.
            conn.invalidate()
    if applied:
        log.info("control plane schema migrated: applied %s", ", ".join(applied))
    return applied


def _outside_transaction(conn: Connection, sql: str) -> None:
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql)
    finally:
        cursor.close()


def _adopt_legacy(conn: Connection, script: ScriptDirectory) -> None:
    """Stamp a database made by the runner before Alembic at the revision its versions amount to."""
    tables = inspect(conn).get_table_names()
    if LEGACY_TABLE not in tables or "alembic_version" in tables:
        return  # not from before Alembic, or adopted already (even if since downgraded to nothing)
    versions = sorted(int(v) for (v,) in conn.execute(text(f"SELECT version FROM {LEGACY_TABLE}")))
    if versions != list(range(1, len(versions) + 1)) or len(versions) > len(LEGACY_REVISIONS):
        raise MigrationError(
            f"{LEGACY_TABLE} records versions {versions}; this release knows 1 to {len(LEGACY_REVISIONS)}"
            " (a database from a newer release, or edited by hand): nothing was changed"
        )
    if not versions:
        return  # the old runner recorded nothing: there is nothing of its schema to adopt
    revision = LEGACY_REVISIONS[versions[-1]]
    MigrationContext.configure(conn).stamp(script, revision)
    log.info(
        "control plane schema: adopted a database from before Alembic (version %d) as revision %s",
        versions[-1],
        revision,
    )


def differences(conn: Connection, target: MetaData = metadata) -> list[Any]:
    """What Alembic's autogenerate finds between the database and `target` (empty when they agree).

    Arguments:
        conn: a connection to a database at some revision (normally the newest).
        target: the tables to compare with (the models' by default).
    """
    context = MigrationContext.configure(conn, opts={**CONTEXT_OPTIONS, "target_metadata": target})
    return list(compare_metadata(context, target))
