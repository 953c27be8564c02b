"""The control plane's schema on Alembic, on SQLite and PostgreSQL: a database made before Alembic
upgrades in place and keeps its keys, secrets, policies, records and audit chain; the revisions
build exactly the schema the old runner built; `models.py` and the revisions agree (and the check
that says so can fail); instances that start together migrate once; SQLite's batch mode can
rebuild a table other tables reference; a revision that breaks a foreign key changes nothing."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Column, MetaData, Text, insert, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from tests.fixtures.control import legacy_schema as old
from tests.unit.control.pg import control_settings, pg_database, pg_url, scratch_database  # noqa: F401  (fixtures)

from sluicegate.control.audit import Actor
from sluicegate.control.keys import hash_key
from sluicegate.control.migrations import HERE, LEGACY_TABLE, MigrationError, config, differences, migrate, revisions
from sluicegate.control.migrations.__main__ import main as tool
from sluicegate.control.models import metadata, workspaces
from sluicegate.control.schemas import McpOAuthIn, McpServerIn, PolicyIn
from sluicegate.control.settings import ControlSettings
from sluicegate.control.store import ControlStore
from sluicegate.control.system_events import on_open
from sluicegate.control.view import ControlView
from sluicegate.errors import Unauthenticated
from sluicegate.secrets import SecretUrl

ACTOR = Actor("test/migrations", "rid-m", "127.0.0.1")


async def _legacy(settings: ControlSettings, version: int = 2) -> None:
    """A database as the release before Alembic left it: its schema up to `version`, and its rows."""
    store = ControlStore(settings)  # only for its engine: not opened, so nothing is migrated
    try:
        async with store.engine.begin() as conn:
            await old.create(conn, version)
            await old.fill(conn, version)
    finally:
        await store.close()


def _after(revision: str) -> list[str]:
    """The revisions after `revision`, oldest first."""
    ids = revisions()
    return ids[ids.index(revision) + 1 :]


async def _scalars(store: ControlStore, sql: str) -> list[Any]:
    async with store.read() as conn:
        return list((await conn.execute(text(sql))).scalars())


async def _differences(store: ControlStore, target: MetaData = metadata) -> list[Any]:
    async with store.read() as conn:
        return await conn.run_sync(differences, target)


@pytest.fixture
def twin_settings(control_settings: ControlSettings, tmp_path: Path) -> Iterator[ControlSettings]:  # noqa: F811
    """A second fresh database on the same backend as `control_settings`."""
    if control_settings.is_sqlite:
        yield control_settings.model_copy(update={"database_url": SecretUrl(f"sqlite:///{tmp_path / 'twin.db'}")})
        return
    with scratch_database() as name:
        yield control_settings.model_copy(update={"database_url": SecretUrl(pg_url(name))})


# ── (1) a database from before Alembic ──────────────────────────────────────────────────────────


async def test_a_database_from_before_alembic_upgrades_in_place(control_settings: ControlSettings) -> None:  # noqa: F811
    await _legacy(control_settings)
    store = ControlStore(control_settings)
    view = ControlView(store)
    try:
        # the old version 2 is revision 0002: adopted there, then upgraded (0003 mends its SQLite keys)
        applied = await store.open()
        assert applied == _after("0002")
        await on_open(store, applied)  # as a starting gateway does: seals the legacy rows, records the upgrade
        assert await _scalars(store, "SELECT version_num FROM alembic_version") == [revisions()[-1]]
        # the old bookkeeping is left as it was, so an instance of the previous release still starts
        assert sorted(await _scalars(store, f"SELECT version FROM {LEGACY_TABLE}")) == [1, 2]
        assert await _differences(store) == []  # the schema is what models.py says

        await view.refresh()
        who = view.authenticate(f"Bearer {old.KEY}".encode(), None)  # found by its hash
        assert (who.key_name, who.workspace, who.org, who.user) == (old.KEY_ID, old.WORKSPACE, old.ORG, old.USER)
        with pytest.raises(Unauthenticated) as revoked:
            view.authenticate(f"Bearer {old.REVOKED_KEY}".encode(), None)
        assert revoked.value.code == "revoked_api_key"
        token = await store.token_by_hash(hash_key(old.ADMIN_TOKEN))
        assert token is not None and token["org_id"] == old.ORG and token["revoked_at"] is None

        openai = view.provider_credential(old.WORKSPACE, "openai")  # the workspace's own, opened with the master key
        assert openai is not None and openai.secret.reveal() == old.OPENAI_SECRET
        assert openai.base_url == "https://api.openai.com/v1"
        anthropic = view.provider_secret(old.WORKSPACE, "anthropic")  # the org's default
        assert anthropic is not None and anthropic.reveal() == old.ANTHROPIC_SECRET

        policy = PolicyIn.model_validate(old.POLICY)
        assert await store.policy("workspace", old.WORKSPACE) == policy
        caps = {(c.level, c.entity_id, c.window, c.limit_nusd) for c in view.cap_lines(who)}
        assert caps == {("workspace", old.WORKSPACE, "day", 12_500_000_000)}

        verified = await store.verify_audit()
        assert verified.ok and verified.legacy_rows == 10 and verified.rows > 10
        before = verified.rows
        events = await store.events(old.ORG, {}, "2026-11-01", "2026-12-01", 10)
        assert [e["id"] for e in events] == ["evt_legacy1"]
        spend = await store.spend_rollup(old.ORG, {}, ["model"], None, "2026-11-01", "2026-12-01")
        assert spend == [
            {"model": "gpt-4o-mini", "calls": 1, "input_tokens": 12, "output_tokens": 34, "cost_nusd": 5600}
        ]

        # the chain and the change counter go on from where the old release left them
        await store.create_org(ACTOR, "after-upgrade")
        verified = await store.verify_audit()
        assert verified.ok and verified.rows == before + 1
        assert await store.version() == old.STATE["version"] + 1
        assert await store.open() == []
        # an instance of the previous release starting now (a rolling upgrade) finds nothing to do
        async with store.engine.begin() as conn:
            assert await old.old_migrate(conn) == []
        assert await store.open() == []
    finally:
        await view.stop()
        await store.close()


async def test_a_database_at_the_old_first_version_gets_the_second(control_settings: ControlSettings) -> None:  # noqa: F811
    await _legacy(control_settings, version=1)
    store = ControlStore(control_settings)
    try:
        applied = await store.open()
        assert applied == _after("0001")  # stamped at 0001, then upgraded
        await on_open(store, applied)
        assert await _differences(store) == []
        verified = await store.verify_audit()
        assert verified.ok and verified.legacy_rows == 10
        await store.insert_records([], [{**old.ROWS["spend_ledger"][0], "id": "spd_after"}])
        assert await _scalars(store, "SELECT id FROM spend_ledger") == ["spd_after"]
    finally:
        await store.close()


async def test_unknown_old_bookkeeping_is_refused_and_nothing_changes(control_settings: ControlSettings) -> None:  # noqa: F811
    await _legacy(control_settings)
    store = ControlStore(control_settings)
    try:
        async with store.engine.begin() as conn:  # a version this release never had (a newer runner, or a hand edit)
            await conn.execute(text(f"INSERT INTO {LEGACY_TABLE} (version, applied_at) VALUES (3, 'x')"))
        with pytest.raises(MigrationError, match=r"versions \[1, 2, 3\]"):
            await store.open()
        async with store.read() as conn:
            assert not await conn.run_sync(lambda c: inspect(c).has_table("alembic_version"))
    finally:
        await store.close()


def _schema(conn: Connection) -> dict[str, Any]:
    """Every table's columns (in order), primary key, foreign keys, indexes and unique constraints."""
    found = inspect(conn)
    out: dict[str, Any] = {}
    for table in sorted(found.get_table_names()):
        if table in ("alembic_version", LEGACY_TABLE):
            continue
        out[table] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"], c.get("default")) for c in found.get_columns(table)],
            "pk": found.get_pk_constraint(table),
            "fks": sorted(
                (
                    fk["name"] or "",
                    tuple(fk["constrained_columns"]),
                    fk["referred_table"],
                    tuple(fk["referred_columns"]),
                )
                for fk in found.get_foreign_keys(table)
            ),
            "indexes": sorted((i["name"], tuple(i["column_names"]), i["unique"]) for i in found.get_indexes(table)),
            "uniques": sorted((u["name"] or "", tuple(u["column_names"])) for u in found.get_unique_constraints(table)),
        }
    return out


async def test_a_database_from_before_alembic_ends_with_the_schema_of_a_fresh_one(
    control_settings: ControlSettings,  # noqa: F811
    twin_settings: ControlSettings,
) -> None:
    await _legacy(control_settings)
    upgraded, fresh = ControlStore(control_settings), ControlStore(twin_settings)
    try:
        await upgraded.open()
        assert await fresh.open() == revisions()
        async with upgraded.read() as a, fresh.read() as b:
            before, after = await a.run_sync(_schema), await b.run_sync(_schema)
        assert set(after) == {t.name for t in metadata.sorted_tables}
        assert after == before  # column for column, constraint for constraint (names too, on PostgreSQL)
    finally:
        await upgraded.close()
        await fresh.close()


# ── (2) models.py and the revisions agree ───────────────────────────────────────────────────────


def _flat(diffs: list[Any]) -> set[tuple[str, ...]]:
    """(operation, table, name) for each difference Alembic reports."""
    out: set[tuple[str, ...]] = set()
    for diff in diffs:
        for op in diff if isinstance(diff, list) else [diff]:
            kind = op[0]
            if kind == "add_column":
                out.add((kind, op[2], op[3].name))
            elif kind in ("add_index", "remove_index"):
                out.add((kind, op[1].table.name, op[1].name))
            elif kind.startswith("modify_"):
                out.add((kind, op[2], op[3]))
            else:
                out.add((kind, "", ""))
    return out


async def test_models_and_revisions_agree_and_the_check_can_fail(control_settings: ControlSettings) -> None:  # noqa: F811
    store = ControlStore(control_settings)
    try:
        await store.open()
        assert await _differences(store) == []
        altered = MetaData()
        for table in metadata.sorted_tables:
            table.to_metadata(altered)
        altered.tables["orgs"].append_column(Column("plan", Text))  # a column no revision adds
        users = altered.tables["users"]
        users.c["name"].nullable = True  # a constraint no revision relaxes
        users.indexes.discard(next(i for i in users.indexes if i.name == "users_workspace"))  # an index dropped
        assert _flat(await _differences(store, altered)) == {
            ("add_column", "orgs", "plan"),
            ("modify_nullable", "users", "name"),
            ("remove_index", "users", "users_workspace"),
        }
    finally:
        await store.close()


def test_the_revisions_are_one_numbered_line() -> None:
    script = ScriptDirectory.from_config(config())
    ids = revisions()
    assert script.get_heads() == [ids[-1]]  # one head: two branches that each added a revision would fail here
    assert ids[:4] == ["0001", "0002", "0003", "0004"] and ids == [f"{n:04d}" for n in range(1, len(ids) + 1)]
    assert len(list((HERE / "versions").glob("*.py"))) == len(ids)  # no file hidden behind a duplicate id
    for rev in script.walk_revisions():
        assert Path(rev.path).parent == HERE / "versions"
        assert re.fullmatch(rf"{rev.revision}_[a-z0-9_]+\.py", Path(rev.path).name), rev.path
        assert rev.down_revision == (None if rev.revision == "0001" else f"{int(rev.revision) - 1:04d}")


def _downgrade_to_base(conn: Connection) -> None:
    cfg = config()
    cfg.attributes["connection"] = conn
    with conn.begin():
        command.downgrade(cfg, "base")


@pytest.mark.parametrize("legacy", [False, True], ids=["fresh", "from-before-alembic"])
async def test_every_revision_downgrades_and_upgrades_again(control_settings: ControlSettings, legacy: bool) -> None:  # noqa: F811
    if legacy:
        await _legacy(control_settings)
    store = ControlStore(control_settings)
    try:
        await store.open()
        async with store.engine.connect() as conn:
            await conn.run_sync(_downgrade_to_base)
        async with store.read() as conn:
            left = await conn.run_sync(lambda c: inspect(c).get_table_names())
        assert sorted(left) == ["alembic_version", *([LEGACY_TABLE] if legacy else [])]
        assert await store.open() == revisions()  # from nothing: the old bookkeeping is not adopted twice
        assert await _differences(store) == []
    finally:
        await store.close()


# ── (3) starting together ───────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("legacy", [False, True], ids=["fresh", "from-before-alembic"])
async def test_instances_starting_together_migrate_once(control_settings: ControlSettings, legacy: bool) -> None:  # noqa: F811
    if legacy:
        await _legacy(control_settings)
    stores = [ControlStore(control_settings) for _ in range(3)]
    try:
        applied = await asyncio.gather(*(s.open() for s in stores))
        assert sorted(applied) == sorted([[], [], _after("0002") if legacy else revisions()])
        assert await _scalars(stores[0], "SELECT version_num FROM alembic_version") == [revisions()[-1]]
        await asyncio.gather(*(on_open(s, a) for s, a in zip(stores, applied, strict=True)))
        verified = await stores[0].verify_audit()
        assert verified.ok and verified.legacy_rows == (10 if legacy else 0)
        actions = await _scalars(stores[0], "SELECT action FROM audit_log WHERE actor = 'system'")
        assert actions.count("migrations.apply") == 1  # recorded once, by the instance that migrated
    finally:
        for s in stores:
            await s.close()


@pytest.mark.parametrize("control_settings", ["sqlite"], indirect=True)
async def test_many_instances_on_a_new_sqlite_file_migrate_once_every_time(
    control_settings: ControlSettings,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Six stores opening one new SQLite file at once, twenty times over. Without the lock file, a
    connection that had switched the empty file to WAL and one that had not took different locks,
    both migrated, and Alembic's per-process context mixed them ("table already exists")."""
    for round_ in range(20):
        url = SecretUrl(f"sqlite:///{tmp_path / f'r{round_}.db'}")
        settings = control_settings.model_copy(update={"database_url": url})
        stores = [ControlStore(settings) for _ in range(6)]
        try:
            applied = await asyncio.gather(*(s.open() for s in stores))
            assert sorted(applied) == sorted([[]] * 5 + [revisions()]), round_
            assert await _scalars(stores[0], "PRAGMA journal_mode") == ["wal"]
        finally:
            for s in stores:
                await s.close()


async def test_an_instance_waits_for_the_sqlite_migration_lock_and_gives_up_clearly(tmp_path: Path) -> None:
    import fcntl
    import os

    from sluicegate.control.migrations import _file_lock

    db = tmp_path / "control.db"
    store = ControlStore(ControlSettings(enabled=True, database_url=f"sqlite:///{db}"))
    fd = os.open(f"{db}.migrate-lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another instance, mid-migration
        with pytest.raises(MigrationError, match="held the migration lock"):
            async with _file_lock(store.engine, wait_s=0.2):
                pass
        assert not db.exists() or db.stat().st_size == 0  # nothing was touched
        waiting = asyncio.create_task(migrate(store.engine))
        await asyncio.sleep(0.3)
        assert not waiting.done()  # still waiting, the event loop free
        fcntl.flock(fd, fcntl.LOCK_UN)
        assert await asyncio.wait_for(waiting, 30) == revisions()
    finally:
        os.close(fd)
        await store.close()


# ── (4) revisions after these: SQLite's batch mode, and a revision that breaks a foreign key ──────


def _extra_revision(directory: Path, body: str) -> str:
    """A revision `9001` after the newest one, in its own version directory; returns its id."""
    directory.mkdir()
    (directory / "9001_test.py").write_text(
        f'revision = "9001"\ndown_revision = "{revisions()[-1]}"\n'
        "import sqlalchemy as sa\nfrom alembic import op\n\n"
        f"def upgrade():\n{body}\n\ndef downgrade():\n    pass\n"
    )
    return "9001"


async def test_batch_mode_rebuilds_a_table_that_others_reference(
    control_settings: ControlSettings,  # noqa: F811
    tmp_path: Path,
) -> None:
    await _legacy(control_settings)
    # On SQLite this copies `orgs` into a new table and drops the old one, which four tables reference.
    extra = tmp_path / "versions"
    rev = _extra_revision(
        extra,
        '    with op.batch_alter_table("orgs") as b:\n'
        '        b.alter_column("name", existing_type=sa.Text(), nullable=True)\n',
    )
    store = ControlStore(control_settings)
    try:
        assert await migrate(store.engine, [extra]) == [*_after("0002"), rev]
        assert await _scalars(store, "SELECT name FROM orgs") == ["acme"]
        verified = await store.verify_audit()
        assert verified.ok and verified.rows == 10
        view = ControlView(store)
        await view.refresh()
        assert view.authenticate(f"Bearer {old.KEY}".encode(), None).org == old.ORG
        # foreign keys are enforced again on the store's connections
        row = {"id": "ws_orphan", "org_id": "org_nobody", "name": "x", "created_at": "2026-01-01T00:00:00+00:00"}
        with pytest.raises(IntegrityError):
            async with store.engine.begin() as conn:
                await conn.execute(insert(workspaces).values(**row))
    finally:
        await store.close()


async def test_a_revision_that_breaks_a_foreign_key_changes_nothing(
    control_settings: ControlSettings,  # noqa: F811
    tmp_path: Path,
) -> None:
    await _legacy(control_settings)
    extra = tmp_path / "versions"
    _extra_revision(extra, '    op.execute("DELETE FROM orgs")\n')  # workspaces, users and keys still point at it
    store = ControlStore(control_settings)
    try:
        refused = MigrationError if control_settings.is_sqlite else IntegrityError  # PostgreSQL checks at once
        with pytest.raises(refused):
            await migrate(store.engine, [extra])
        assert await _scalars(store, "SELECT id FROM orgs") == [old.ORG]
        # the adoption rolled back with it (no alembic_version): the next start adopts again
        async with store.read() as conn:
            assert not await conn.run_sync(lambda c: inspect(c).has_table("alembic_version"))
        applied = await store.open()
        assert applied == _after("0002")
        await on_open(store, applied)  # as a starting gateway does: seals the legacy rows, records the upgrade
        assert await _scalars(store, "SELECT version_num FROM alembic_version") == [revisions()[-1]]
    finally:
        await store.close()


# ── the revision tool ───────────────────────────────────────────────────────────────────────────


def test_the_revision_tool_checks_and_writes_nothing_when_models_agree(capsys: pytest.CaptureFixture[str]) -> None:
    before = sorted(p.name for p in (HERE / "versions").glob("*.py"))
    assert tool(["check"]) == 0
    assert "agree" in capsys.readouterr().err
    assert tool(["new", "nothing to do"]) == 1
    assert "nothing to generate" in capsys.readouterr().err
    assert sorted(p.name for p in (HERE / "versions").glob("*.py")) == before


def test_the_revision_tool_refuses_a_database_with_tables(
    control_settings: ControlSettings,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    asyncio.run(_legacy(control_settings))
    assert tool(["check", "--database-url", control_settings.database_url.reveal()]) == 2
    assert "empty scratch database" in capsys.readouterr().err


# ── 0004: descriptions, tags and token roles on a database with rows ────────────────────────────


def _downgrade_to(revision: str) -> Any:
    def run(conn: Connection) -> None:
        cfg = config()
        cfg.attributes["connection"] = conn
        with conn.begin():
            command.downgrade(cfg, revision)

    return run


async def test_a_database_at_0003_keeps_its_rows_and_gets_the_defaults(control_settings: ControlSettings) -> None:  # noqa: F811
    store = ControlStore(control_settings)
    try:
        await store.open()
        async with store.engine.connect() as conn:
            await conn.run_sync(_downgrade_to("0003"))
        at = "2026-11-01T00:00:00+00:00"
        async with store.engine.begin() as conn:  # rows as a release at 0003 wrote them
            for sql in (
                f"INSERT INTO orgs (id, name, created_at) VALUES ('org_x', 'x', '{at}')",
                f"INSERT INTO workspaces (id, org_id, name, created_at) VALUES ('ws_x', 'org_x', 'w', '{at}')",
                "INSERT INTO users (id, org_id, workspace_id, name, created_at) "
                f"VALUES ('user_x', 'org_x', 'ws_x', 'u', '{at}')",
                "INSERT INTO api_keys (id, org_id, workspace_id, user_id, name, key_hash, prefix, created_at) "
                f"VALUES ('key_x', 'org_x', 'ws_x', 'user_x', 'k', 'hash-x', 'sk-x', '{at}')",
                "INSERT INTO admin_tokens (id, org_id, workspace_id, name, token_hash, created_at) "
                f"VALUES ('tok_x', 'org_x', NULL, 't', 'hash-t', '{at}')",
            ):
                await conn.execute(text(sql))
        assert (await store.open())[0] == "0004"  # and any later revision
        assert await _differences(store) == []
        for table, row_id in (("orgs", "org_x"), ("workspaces", "ws_x"), ("users", "user_x"), ("api_keys", "key_x")):
            got = await _scalars(store, f"SELECT name || '|' || description || '|' || tags FROM {table}")
            assert got == [{"orgs": "x", "workspaces": "w", "users": "u", "api_keys": "k"}[table] + "||[]"], row_id
        got = await _scalars(
            store,
            "SELECT role || '|' || coalesce(expires_at, '-') || '|' || coalesce(last_used_at, '-') FROM admin_tokens",
        )
        assert got == ["admin|-|-"]
        token = await store.token_by_hash("hash-t")
        assert token is not None and token["role"] == "admin" and token["name"] == "t"
        # and down again: the new columns go, the rows stay
        async with store.engine.connect() as conn:
            await conn.run_sync(_downgrade_to("0003"))
        assert await _scalars(store, "SELECT id FROM api_keys") == ["key_x"]
        async with store.read() as conn:
            columns = await conn.run_sync(lambda c: [col["name"] for col in inspect(c).get_columns("admin_tokens")])
        assert "role" not in columns and "expires_at" not in columns
    finally:
        await store.close()


# ── 0005: upstream MCP servers ───────────────────────────────────────────────────────────────────


async def test_a_database_at_0004_gets_the_mcp_servers_table_and_keeps_its_rows(
    control_settings: ControlSettings,  # noqa: F811
) -> None:
    store = ControlStore(control_settings)
    try:
        await store.open()
        async with store.engine.connect() as conn:
            await conn.run_sync(_downgrade_to("0004"))
        async with store.read() as conn:
            assert "mcp_servers" not in await conn.run_sync(lambda c: inspect(c).get_table_names())
        at = "2026-11-01T00:00:00+00:00"
        async with store.engine.begin() as conn:  # rows as a release at 0004 wrote them
            await conn.execute(text(f"INSERT INTO orgs (id, name, created_at) VALUES ('org_x', 'x', '{at}')"))
            await conn.execute(
                text(f"INSERT INTO workspaces (id, org_id, name, created_at) VALUES ('ws_x', 'org_x', 'w', '{at}')")
            )
        assert await store.open() == ["0005", "0006", "0007", "0008"]
        assert await _differences(store) == []
        ws = await store.one(workspaces, "ws_x")
        assert ws is not None
        await store.set_mcp_server(Actor("test"), ws, "docs", McpServerIn(url="https://tools.example/mcp"))
        [shown] = await store.mcp_servers_list("ws_x")
        assert (shown["name"], shown["url"], shown["header_names"], shown["description"]) == (
            "docs",
            "https://tools.example/mcp",
            [],
            "",
        )
        # and down again: the table goes, the workspace stays
        async with store.engine.connect() as conn:
            await conn.run_sync(_downgrade_to("0004"))
        assert await _scalars(store, "SELECT id FROM workspaces") == ["ws_x"]
        async with store.read() as conn:
            assert "mcp_servers" not in await conn.run_sync(lambda c: inspect(c).get_table_names())
    finally:
        await store.close()


async def _with_a_server_at(store: ControlStore, revision: str) -> None:
    """Open `store`, take it down to `revision`, and write an organization, a workspace and an MCP
    server (`ws_x` / `docs`) as a release at that revision wrote them."""
    await store.open()
    async with store.engine.connect() as conn:
        await conn.run_sync(_downgrade_to(revision))
    at = "2026-12-01T00:00:00+00:00"
    async with store.engine.begin() as conn:
        await conn.execute(text(f"INSERT INTO orgs (id, name, created_at) VALUES ('org_x', 'x', '{at}')"))
        await conn.execute(
            text(f"INSERT INTO workspaces (id, org_id, name, created_at) VALUES ('ws_x', 'org_x', 'w', '{at}')")
        )
        await conn.execute(
            text(
                "INSERT INTO mcp_servers (workspace_id, name, org_id, url, header_names, created_at, updated_at) "
                f"VALUES ('ws_x', 'docs', 'org_x', 'https://tools.example/mcp', '[]', '{at}', '{at}')"
            )
        )


# ── 0006: what a registered MCP server's tool calls cost ─────────────────────────────────────────


async def test_a_database_at_0005_keeps_its_mcp_servers_free_and_takes_prices(
    control_settings: ControlSettings,  # noqa: F811
) -> None:
    store = ControlStore(control_settings)
    try:
        await _with_a_server_at(store, "0005")
        assert await store.open() == ["0006", "0007", "0008"]
        assert await _differences(store) == []
        [shown] = await store.mcp_servers_list("ws_x")
        assert (shown["price_usd"], shown["tool_price_usd"]) == (None, {})  # free, as it was
        ws = await store.one(workspaces, "ws_x")
        assert ws is not None
        spec = McpServerIn(url="https://tools.example/mcp", price_usd="0.002", tool_price_usd={"deep": "0.5"})
        await store.set_mcp_server(Actor("test"), ws, "docs", spec)
        [shown] = await store.mcp_servers_list("ws_x")
        assert (shown["price_usd"], shown["tool_price_usd"]) == ("0.002", {"deep": "0.50"})
        async with store.engine.connect() as conn:
            await conn.run_sync(_downgrade_to("0005"))
        assert await _scalars(store, "SELECT name FROM mcp_servers") == ["docs"]
    finally:
        await store.close()


# ── 0007: where a policy event's call came in ────────────────────────────────────────────────────


async def test_a_database_at_0006_keeps_its_events_without_a_route_and_takes_routes(
    control_settings: ControlSettings,  # noqa: F811
) -> None:
    store = ControlStore(control_settings)
    try:
        await store.open()
        async with store.engine.connect() as conn:
            await conn.run_sync(_downgrade_to("0006"))
        at = "2026-12-01T00:00:00+00:00"
        async with store.engine.begin() as conn:  # an event as a release at 0006 wrote it
            await conn.execute(
                text(
                    "INSERT INTO policy_events (id, at, org_id, request_id, policy, action, direction, entity, "
                    f"count, detail) VALUES ('e_old', '{at}', 'org_x', 'r1', 'tools', 'refuse', '', 'workspace', 1, "
                    "'{}')"
                )
            )
        assert await store.open() == ["0007", "0008"]
        assert await _differences(store) == []
        new = {
            "id": "e_new", "at": at, "org_id": "org_x", "workspace_id": None, "user_id": None, "key_id": None,
            "request_id": "r2", "trace_id": None, "run_id": None, "route": "mcp", "policy": "redaction",
            "action": "redact", "direction": "response", "entity": "EMAIL", "count": 1, "detail": "{}",
        }  # fmt: skip
        await store.insert_records([new], [])
        page = await store.events_page("org_x", {}, "0000", "9999", None, 10)
        assert {r["id"]: r["route"] for r in page.rows} == {"e_old": None, "e_new": "mcp"}
        mcp_only = await store.events_page("org_x", {"route": "mcp"}, "0000", "9999", None, 10)
        assert [r["id"] for r in mcp_only.rows] == ["e_new"]
        async with store.engine.connect() as conn:
            await conn.run_sync(_downgrade_to("0006"))
        assert sorted(await _scalars(store, "SELECT id FROM policy_events")) == ["e_new", "e_old"]
    finally:
        await store.close()


# ── 0008: OAuth client credentials of a registered MCP server ────────────────────────────────────


async def test_a_database_at_0007_keeps_its_mcp_servers_without_oauth_and_takes_it(
    control_settings: ControlSettings,  # noqa: F811
) -> None:
    store = ControlStore(control_settings)
    try:
        await _with_a_server_at(store, "0007")
        assert await store.open() == ["0008"]
        assert await _differences(store) == []
        [shown] = await store.mcp_servers_list("ws_x")
        assert shown["oauth"] is None  # asked without a token, as it was
        ws = await store.one(workspaces, "ws_x")
        assert ws is not None
        oauth = McpOAuthIn(token_url="https://auth.example/token", client_id="gw", client_secret="never-shown-1234")
        await store.set_mcp_server(Actor("test"), ws, "docs", McpServerIn(url="https://tools.example/mcp", oauth=oauth))
        [shown] = await store.mcp_servers_list("ws_x")
        assert shown["oauth"] == {"token_url": "https://auth.example/token", "client_id": "gw", "scope": None}
        assert sorted(await _scalars(store, "SELECT provider FROM provider_secrets")) == ["mcp-oauth.docs"]
        async with store.engine.connect() as conn:
            await conn.run_sync(_downgrade_to("0007"))
        assert await _scalars(store, "SELECT name FROM mcp_servers") == ["docs"]
    finally:
        await store.close()
