"""`sluicegate admin …` and `sluicegate audit verify` on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.conftest import PYTHON, ROOT
from tests.unit.control.pg import MASTER_KEY, control_settings, pg_database  # noqa: F401  (fixtures)

from sluicegate.control.settings import ControlSettings


def _cli(
    settings: ControlSettings, *args: str, stdin: str = "", env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),  # a worktree's sources first, as in the tests' own process
        "SLUICEGATE_CONTROL__ENABLED": "true",
        "SLUICEGATE_CONTROL__DATABASE_URL": settings.database_url.reveal(),
        "SLUICEGATE_CONTROL__MASTER_KEY": MASTER_KEY,
        **(env_extra or {}),
    }
    if "PYTHONPATH" in os.environ:  # a worktree's own sources first, as in the test process
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return subprocess.run(
        [PYTHON, "-m", "sluicegate", *args], input=stdin, capture_output=True, text=True, env=env, cwd=ROOT, timeout=60
    )


def _json_head(out: str) -> dict[str, object]:
    return (
        json.loads(out[: out.rindex("}") + 1]) if "shown once" not in out else json.loads(out.split("\n}\n")[0] + "}")
    )


def test_admin_commands_bootstrap_set_and_list(control_settings: ControlSettings, tmp_path: Path) -> None:  # noqa: F811
    boot = _cli(control_settings, "admin", "bootstrap", "--org", "acme", "--user", "alice")
    assert boot.returncode == 0, boot.stderr
    made = _json_head(boot.stdout)
    ws = made["workspace"]["id"]  # type: ignore[index]
    key_id = made["key"]["id"]  # type: ignore[index]
    key = next(line.rsplit(" ", 1)[1] for line in boot.stdout.splitlines() if line.startswith("gateway key"))
    assert key.startswith("sg-")
    secret = _cli(control_settings, "admin", "secret", "set", "--workspace", ws, "openai", stdin="sk-cli-secret-123\n")
    assert secret.returncode == 0, secret.stderr
    assert "sk-cli-secret-123" not in secret.stdout + secret.stderr
    policy = tmp_path / "p.json"
    policy.write_text(json.dumps({"caps": [{"window": "day", "limit_usd": "3.50"}]}))
    pset = _cli(control_settings, "admin", "policy", "set", "--level", "workspace", "--id", ws, "--file", str(policy))
    assert pset.returncode == 0, pset.stderr
    eff = _cli(control_settings, "admin", "policy", "effective", key_id)
    assert json.loads(eff.stdout)["caps"][0]["limit_nusd"] == 3_500_000_000
    bad = _cli(control_settings, "admin", "policy", "set", "--level", "key", "--id", key_id, "--json", '{"caps": 1}')
    assert bad.returncode == 1 and "invalid policy" in bad.stderr
    revoke = _cli(control_settings, "admin", "key", "revoke", key_id)
    assert revoke.returncode == 0 and json.loads(revoke.stdout)["revoked_at"]
    listing = _cli(control_settings, "admin", "audit", "list")
    actions = [row["action"] for row in json.loads(listing.stdout)]
    assert actions == [
        "migrations.apply",  # the first command opened a new database: the system's rows come first
        "master_key.first_use",
        "audit_key.first_use",
        "org.create",
        "workspace.create",
        "user.create",
        "key.create",
        "admin_token.create",
        "secret.set",
        "policy.set",
        "key.revoke",
    ]
    assert "sk-cli-secret-123" not in listing.stdout and key not in listing.stdout
    verify = _cli(control_settings, "audit", "verify")
    assert verify.returncode == 0 and "intact: 11 rows, signed with audit key" in verify.stdout, verify.stdout


def test_audit_verify_names_an_edited_row(control_settings: ControlSettings) -> None:  # noqa: F811
    import asyncio

    from sqlalchemy import update

    from sluicegate.control.models import audit_log
    from sluicegate.control.store import ControlStore

    assert _cli(control_settings, "admin", "bootstrap").returncode == 0

    async def edit() -> None:
        store = ControlStore(control_settings)
        async with store.engine.begin() as conn:
            await conn.execute(update(audit_log).where(audit_log.c.seq == 3).values(target="key/forged"))
        await store.close()

    asyncio.run(edit())
    verify = _cli(control_settings, "audit", "verify")
    assert verify.returncode == 3
    assert "broken at row 3" in verify.stderr


def test_admin_migrate_upgrades_a_database_from_before_alembic(control_settings: ControlSettings) -> None:  # noqa: F811
    import asyncio

    from tests.fixtures.control import legacy_schema

    from sluicegate.control.migrations import revisions
    from sluicegate.control.store import ControlStore

    async def make() -> None:
        store = ControlStore(control_settings)  # its engine only: nothing is migrated
        async with store.engine.begin() as conn:
            await legacy_schema.create(conn)
            await legacy_schema.fill(conn)
        await store.close()

    asyncio.run(make())
    ids = revisions()
    migrated = _cli(control_settings, "admin", "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert json.loads(migrated.stdout) == {"applied": ids[ids.index("0002") + 1 :], "head": ids[-1]}
    again = _cli(control_settings, "admin", "migrate")
    assert again.returncode == 0 and json.loads(again.stdout) == {"applied": [], "head": ids[-1]}
    verify = _cli(control_settings, "audit", "verify")
    assert verify.returncode == 0 and "audit log intact: 13 rows" in verify.stdout, verify.stdout
    # the ten rows from before, then what the upgrade recorded: the migrations, the keys' first use
    assert "10 legacy rows are unkeyed" in verify.stdout


def test_audit_verify_finds_truncation_and_wiping_and_prints_no_diff(
    control_settings: ControlSettings,  # noqa: F811
    tmp_path: Path,
) -> None:
    import asyncio

    from tests.integration.test_control_audit import _sql

    anchors = tmp_path / "cli.anchors"
    env = {"SLUICEGATE_CONTROL__AUDIT_ANCHOR_FILE": str(anchors)}
    boot = _cli(control_settings, "admin", "bootstrap", env_extra=env)
    assert boot.returncode == 0, boot.stderr
    ws = _json_head(boot.stdout)["workspace"]["id"]  # type: ignore[index]
    secret = _cli(
        control_settings, "admin", "secret", "set", "--workspace", ws, "openai", stdin="sk-1\n", env_extra=env
    )
    assert secret.returncode == 0, secret.stderr
    intact = _cli(control_settings, "audit", "verify", env_extra=env)
    assert intact.returncode == 0 and "intact: 8 rows" in intact.stdout and "anchors agree" in intact.stdout

    # A line removed from the middle of the anchor file (each line still valid on its own).
    lines = anchors.read_bytes().splitlines()
    assert len(lines) >= 3
    anchors.write_bytes(b"".join(line + b"\n" for line in lines[:1] + lines[2:]))
    removed = _cli(control_settings, "audit", "verify", env_extra=env)
    assert removed.returncode == 3 and "cli.anchors line 2 " in removed.stderr, removed.stderr
    assert "does not follow the line before it" in removed.stderr
    anchors.write_bytes(b"".join(line + b"\n" for line in lines))

    def sql(*statements: tuple[str, tuple[object, ...]]) -> list[dict[str, object]]:
        return asyncio.run(_sql(control_settings, list(statements)))

    # A secret planted in a diff: the row is named, the diff is not printed.
    original = sql(("SELECT diff FROM audit_log WHERE action = 'secret.set'", ()))[0]["diff"]
    planted = '{"after": {"value": "sk-planted-MARKER-0123456789"}, "before": null}'
    sql(("UPDATE audit_log SET diff = $1 WHERE action = 'secret.set'", (planted,)))
    edited = _cli(control_settings, "audit", "verify", env_extra=env)
    assert edited.returncode == 3 and "broken at row 8: its HMAC does not match" in edited.stderr
    assert "MARKER" not in edited.stdout + edited.stderr and "sk-1" not in edited.stdout + edited.stderr
    sql(("UPDATE audit_log SET diff = $1 WHERE action = 'secret.set'", (original,)))

    # The newest rows deleted and the head moved back: the chain alone looks whole.
    head = sql(("SELECT hash FROM audit_log WHERE seq = 6", ()))[0]["hash"]
    sql(
        ("DELETE FROM audit_log WHERE seq > 6", ()),
        ("UPDATE control_state SET audit_head_seq = 6, audit_head_hash = $1", (head,)),
    )
    cut = _cli(control_settings, "audit", "verify", env_extra=env)
    assert cut.returncode == 3 and "broken at row 7:" in cut.stderr and "(truncated)" in cut.stderr
    elsewhere = _cli(control_settings, "audit", "verify", "--anchors", str(tmp_path / "none"), env_extra=env)
    assert elsewhere.returncode == 0 and "no anchors to check" in elsewhere.stdout  # the anchors are what catch it

    sql(("DELETE FROM audit_log", ()), ("UPDATE control_state SET audit_head_seq = 0, audit_head_hash = ''", ()))
    wiped = _cli(control_settings, "audit", "verify", env_extra=env)
    assert wiped.returncode == 3 and "broken at row 1:" in wiped.stderr and "(wiped)" in wiped.stderr


def test_secret_set_reads_its_value_from_the_environment(tmp_path: Path) -> None:
    """`SLUICEGATE_SECRET_VALUE` is the command's input, not a setting: the loader skips it (it used
    to refuse it, exit 2), and an all-digit string setting beside it stays a string."""
    import asyncio

    from sluicegate.control.store import ControlStore, secret_context

    settings = ControlSettings(enabled=True, database_url=f"sqlite:///{tmp_path / 'c.db'}", master_key=MASTER_KEY)
    boot = _cli(settings, "admin", "bootstrap")
    assert boot.returncode == 0, boot.stderr
    ws = _json_head(boot.stdout)["workspace"]["id"]  # type: ignore[index]
    env = {"SLUICEGATE_SECRET_VALUE": "20261204", "SLUICEGATE_LANGSMITH__PROJECT": "2026"}
    done = _cli(settings, "admin", "secret", "set", "--workspace", ws, "openai", env_extra=env)  # stdin is empty
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["provider"] == "openai"
    assert "20261204" not in done.stdout + done.stderr

    async def opened() -> str:
        store = ControlStore(settings)
        try:
            await store.open()
            (row,) = (await store.snapshot()).secrets
            assert store.master is not None
            return store.master.open(row["ciphertext"], secret_context("workspace", ws, "openai"))
        finally:
            await store.close()

    assert asyncio.run(opened()) == "20261204"
