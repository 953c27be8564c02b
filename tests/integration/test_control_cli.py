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
    settings: ControlSettings, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),  # the tree under test, not the installed one
        "SLUICEGATE_CONTROL__ENABLED": "true",
        "SLUICEGATE_CONTROL__DATABASE_URL": settings.database_url.reveal(),
        "SLUICEGATE_CONTROL__MASTER_KEY": MASTER_KEY,
        **(env or {}),
    }
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
    assert verify.returncode == 0 and "intact: 8 rows" in verify.stdout


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
    done = _cli(settings, "admin", "secret", "set", "--workspace", ws, "openai", env=env)  # stdin is empty
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
