"""Databases for control plane tests: a SQLite file, or a throwaway PostgreSQL database.

PostgreSQL runs on 127.0.0.1:5432 (trust auth, user postgres). If it is not running, the tests
start it (`pg_ctlcluster … main start`); if that fails too, the PostgreSQL cases skip, saying why.
Each test gets its own database `sluicegate_test_<random>`, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sluicegate.control.settings import ControlSettings

PG_HOST = os.environ.get("SLUICEGATE_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("SLUICEGATE_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("SLUICEGATE_TEST_PG_USER", "postgres")
MASTER_KEY = "dGVzdC1tYXN0ZXIta2V5LXRlc3QtbWFzdGVyLWtleSE="  # 32 bytes, tests only
BACKENDS = ["sqlite", "postgresql"]

_pg_state: dict[str, str | None] = {}


async def _pg(sql: str, database: str = "postgres") -> None:
    import asyncpg

    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=database, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def postgres_unavailable() -> str | None:
    """None when PostgreSQL answers (starting it if needed), else the reason it does not."""
    if "reason" in _pg_state:
        return _pg_state["reason"]
    reason: str | None = None
    try:
        _run(_pg("SELECT 1"))
    except Exception:
        try:
            versions = os.listdir("/etc/postgresql")
            for version in versions:
                subprocess.run(
                    ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                    check=False,
                    capture_output=True,
                    timeout=60,
                )
            _run(_pg("SELECT 1"))
        except Exception as exc:
            reason = f"PostgreSQL is not reachable on {PG_HOST}:{PG_PORT} and could not be started ({exc!r})"
    _pg_state["reason"] = reason
    return reason


def pg_url(name: str) -> str:
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


@contextmanager
def scratch_database() -> Iterator[str]:
    """A fresh PostgreSQL database (its name), dropped on exit; PostgreSQL must be available."""
    name = f"sluicegate_test_{secrets.token_hex(6)}"
    _run(_pg(f'CREATE DATABASE "{name}"'))
    try:
        yield name
    finally:
        _run(_pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database (its name), dropped after the test."""
    reason = postgres_unavailable()
    if reason:
        pytest.skip(reason)
    with scratch_database() as name:
        yield name


@pytest.fixture(params=BACKENDS)
def control_settings(request: pytest.FixtureRequest, tmp_path: Path) -> ControlSettings:
    """`[control]` settings on a fresh SQLite file or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'control.db'}"
    else:
        url = pg_url(request.getfixturevalue("pg_database"))
    return ControlSettings(enabled=True, database_url=url, master_key=MASTER_KEY, poll_interval_s=0.05)
