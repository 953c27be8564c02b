"""`sluicegate admin …` against a running gateway's admin API (SQLite and PostgreSQL): tables and
`--json`, the API's errors (exit 1) and usage errors (exit 2), the admin token and secret values
never in the output; and the commands that open the database themselves: `admin migrate`,
`admin bootstrap` and `audit verify`.

The verbs that need the endpoints of this round's admin API contract (update, delete, rotate,
roles, the ledger, cursors) are tested in test_control_cli_contract.py."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from loadtest.run import find_nginx, nginx_argv
from tests.conftest import PYTHON, ROOT, Server, free_port, gateway_config, spawn, start_gateway
from tests.integration.test_control_policies import MODEL
from tests.unit.control.pg import MASTER_KEY, control_settings, pg_database  # noqa: F401  (fixtures)

from sluicegate.control.settings import ControlSettings


def _cli(
    settings: ControlSettings, *args: str, stdin: str = "", env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A database command (`migrate`, `bootstrap`, `audit verify`) with the control settings."""
    env = {
        "SLUICEGATE_CONTROL__ENABLED": "true",
        "SLUICEGATE_CONTROL__DATABASE_URL": settings.database_url.reveal(),
        "SLUICEGATE_CONTROL__MASTER_KEY": MASTER_KEY,
        **(env_extra or {}),
    }
    return _run(list(args), env, stdin)


def _run(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    full = {"PATH": "/usr/bin:/bin", **env}
    if "PYTHONPATH" in os.environ:  # a worktree's own sources first, as in the test process
        full["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return subprocess.run(
        [PYTHON, "-m", "sluicegate", *args], input=stdin, capture_output=True, text=True, env=full, cwd=ROOT, timeout=60
    )


def admin(
    url: str, token: str | None, *args: str, stdin: str = "", env: dict[str, str] | None = None, real: bool = False
) -> subprocess.CompletedProcess[str]:
    """`sluicegate admin ARGS` against the admin API at `url`, the token in SLUICEGATE_ADMIN_TOKEN:
    the command line's `main()` in this process (`real`: `python -m sluicegate` in a new one)."""
    given = {"SLUICEGATE_ADMIN_URL": url, **({"SLUICEGATE_ADMIN_TOKEN": token} if token else {}), **(env or {})}
    if real:
        return _run(["admin", *args], given, stdin)
    from sluicegate.cli import main

    names = (
        "SLUICEGATE_ADMIN_URL",
        "SLUICEGATE_ADMIN_TOKEN",
        "SLUICEGATE_SECRET_VALUE",
        "SLUICEGATE_MCP_CLIENT_SECRET",
    )
    saved = {name: os.environ.pop(name, None) for name in names}
    os.environ.update(given)
    out, err, stdin_was = io.StringIO(), io.StringIO(), sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(["admin", *args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.stdin = stdin_was
        for name in names:
            os.environ.pop(name, None)
            if saved[name] is not None:
                os.environ[name] = saved[name]  # type: ignore[assignment]
    return subprocess.CompletedProcess(["admin", *args], code, out.getvalue(), err.getvalue())


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(ok(done))


def table(out: str) -> list[dict[str, str]]:
    """An aligned table back into rows (columns split at two or more spaces; `(none)`: no rows)."""
    lines = [line for line in out.splitlines() if line.strip()]
    if lines == ["(none)"]:
        return []
    head = re.split(r"\s{2,}", lines[0].strip())
    return [dict(zip(head, re.split(r"\s{2,}", line.strip()), strict=False)) for line in lines[1:]]


def fields(out: str) -> dict[str, str]:
    """The `name  value` lines of one object."""
    pairs = (line.split(None, 1) for line in out.splitlines() if line.strip() and not line.startswith(" "))
    return {p[0]: (p[1] if len(p) > 1 else "") for p in pairs}


def test_bootstrap_prints_an_operator_token_the_api_commands_then_use(
    mock_server: Server,
    tmp_path: Path,
    control_settings: ControlSettings,  # noqa: F811
) -> None:
    made = as_json(_cli(control_settings, "admin", "--json", "bootstrap", "--org", "acme", "--user", "alice"))
    token, key = made["operator_admin_token"], made["gateway_key"]
    assert token.startswith("sga-") and key.startswith("sg-")
    assert made["admin_token"]["org_id"] is None and made["user"]["name"] == "alice"
    readable = ok(_cli(control_settings, "admin", "bootstrap", "--org", "second"))
    assert "operator admin token (shown once): sga-" in readable and "gateway key (shown once): sg-" in readable
    another = as_json(_cli(control_settings, "admin", "--json", "bootstrap", "--token-only"))
    assert set(another) == {"admin_token", "operator_admin_token"} and another["admin_token"]["org_id"] is None
    control = f'\n[control]\nenabled = true\ndatabase_url = "{control_settings.database_url}"\npoll_interval_s = 0.25\n'
    config = gateway_config(tmp_path / "gw.toml", mock_server.url, control)
    with start_gateway(config, {"SLUICEGATE_CONTROL__MASTER_KEY": MASTER_KEY}) as gw:
        me = fields(ok(admin(gw.url, token, "whoami", real=True)))
        assert me["token_id"] == made["admin_token"]["id"] and me["org_id"] == "-"
        also = fields(ok(admin(gw.url, another["operator_admin_token"], "whoami")))
        assert (also["token_id"], also["org_id"]) == (another["admin_token"]["id"], "-")
        orgs = table(ok(admin(gw.url, token, "org", "list")))
        assert sorted(o["name"] for o in orgs) == ["acme", "second"]
        assert set(orgs[0]) >= {"id", "name", "created_at"}
        beta = as_json(admin(gw.url, token, "--json", "org", "create", "beta"))
        assert beta["name"] == "beta" and beta["id"].startswith("org_")
        assert fields(ok(admin(gw.url, token, "org", "get", beta["id"])))["name"] == "beta"
        # an operator names the organization: there is no own org to default to
        bare = admin(gw.url, token, "workspace", "list")
        assert bare.returncode == 2 and "--org" in bare.stderr and token not in bare.stdout + bare.stderr
        ws = as_json(admin(gw.url, token, "workspace", "create", "--org", beta["id"], "prod", "--json"))
        assert ws["org_id"] == beta["id"]
        listed = table(ok(admin(gw.url, token, "workspace", "list", "--org", beta["id"])))
        assert [(w["id"], w["name"]) for w in listed] == [(ws["id"], "prod")]
        # an org admin token made through the API: its org is the default one
        created = ok(admin(gw.url, token, "token", "create", "--org", beta["id"], "--name", "ops"))
        org_token = created.rsplit("token (shown once): ", 1)[1].strip()
        assert org_token.startswith("sga-") and fields(created)["name"] == "ops"
        assert fields(ok(admin(gw.url, org_token, "whoami")))["org_id"] == beta["id"]
        assert [w["name"] for w in table(ok(admin(gw.url, org_token, "workspace", "list")))] == ["prod"]
        tokens = table(ok(admin(gw.url, org_token, "token", "list")))
        assert [t["name"] for t in tokens] == ["ops"] and "token_hash" not in tokens[0]
        revoked = as_json(admin(gw.url, token, "--json", "token", "revoke", "--org", beta["id"], tokens[0]["id"]))
        assert revoked["revoked_at"]
        gone = admin(gw.url, org_token, "whoami")
        assert gone.returncode == 1 and "unauthenticated" in gone.stderr
        assert org_token not in gone.stdout + gone.stderr


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
    made = as_json(_cli(control_settings, "admin", "--json", "bootstrap", env_extra=env))

    async def set_secret() -> None:  # what the admin API's secret PUT writes
        from sluicegate.control.audit import Actor
        from sluicegate.control.schemas import SecretIn
        from sluicegate.control.store import ControlStore

        store = ControlStore(control_settings.model_copy(update={"audit_anchor_file": str(anchors)}))
        try:
            await store.open()
            ws = made["workspace"]
            await store.set_secret(Actor("test"), "workspace", ws["id"], ws["org_id"], "openai", SecretIn(value="sk-1"))
        finally:
            await store.close()

    asyncio.run(set_secret())
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


def test_database_commands_skip_the_api_variables(tmp_path: Path) -> None:
    """`SLUICEGATE_ADMIN_TOKEN`, `SLUICEGATE_ADMIN_URL` and `SLUICEGATE_SECRET_VALUE` are inputs of
    the commands, not settings: the loader skips them (else: "names no setting", exit 2), and an
    all-digit string setting beside them stays a string."""
    settings = ControlSettings(enabled=True, database_url=f"sqlite:///{tmp_path / 'c.db'}", master_key=MASTER_KEY)
    env = {
        "SLUICEGATE_SECRET_VALUE": "20261204",
        "SLUICEGATE_ADMIN_TOKEN": "sga-not-a-setting-0123456789",
        "SLUICEGATE_ADMIN_URL": "http://127.0.0.1:1",
        "SLUICEGATE_LANGSMITH__PROJECT": "2026",
    }
    boot = _cli(settings, "admin", "bootstrap", env_extra=env)
    assert boot.returncode == 0, boot.stderr
    assert "sga-not-a-setting" not in boot.stdout + boot.stderr and "20261204" not in boot.stdout
    shown = _run(["config"], env)
    assert json.loads(ok(shown))["langsmith"]["project"] == "2026"


def test_entities_in_tables_and_json(control_gateway: tuple[Server, dict[str, Any]]) -> None:
    server, seed = control_gateway
    url, token, ws = server.url, seed["token"], seed["ws"]["id"]
    assert fields(ok(admin(url, token, "workspace", "get", ws)))["name"] == "prod"
    spaces = table(ok(admin(url, token, "workspace", "list")))  # the token's own org
    assert [(w["id"], w["name"]) for w in spaces] == [(ws, "prod")]
    assert as_json(admin(url, token, "--json", "workspace", "list"))["data"][0]["id"] == ws

    alice = as_json(admin(url, token, "user", "create", "--workspace", ws, "alice", "--json"))
    assert alice["workspace_id"] == ws
    assert [u["name"] for u in table(ok(admin(url, token, "user", "list", "--workspace", ws)))] == ["alice"]
    assert fields(ok(admin(url, token, "user", "get", alice["id"])))["id"] == alice["id"]

    made = ok(admin(url, token, "key", "create", "--workspace", ws, "--name", "ci", "--user", alice["id"]))
    row_part, key = made.rsplit("key (shown once): ", 1)
    key, shown = key.strip(), fields(row_part)
    assert key.startswith("sg-") and shown["user_id"] == alice["id"] and key.startswith(shown["prefix"])
    assert key not in row_part  # the row itself carries no key value
    chat = {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    auth = {"authorization": f"Bearer {key}"}
    assert httpx.post(f"{url}/v1/chat/completions", json=chat, headers=auth).status_code == 200
    keys = table(ok(admin(url, token, "key", "list", "--workspace", ws)))
    assert sorted(k["name"] for k in keys) == ["app", "ci"] and all(k["revoked_at"] == "-" for k in keys)
    ci = next(k for k in keys if k["name"] == "ci")
    assert fields(ok(admin(url, token, "key", "get", ci["id"])))["prefix"] == shown["prefix"]
    limited = as_json(admin(url, token, "key", "list", "--workspace", ws, "--limit", "1", "--json"))
    assert len(limited["data"]) == 1 and limited["has_more"] is True
    assert "(more rows" in ok(admin(url, token, "key", "list", "--workspace", ws, "--limit", "1"))
    revoked = as_json(admin(url, token, "--json", "key", "revoke", ci["id"]))
    assert revoked["revoked_at"] and "key_hash" not in revoked
    assert httpx.post(f"{url}/v1/chat/completions", json=chat, headers=auth).status_code == 401


def test_errors_name_the_code_and_fields_never_the_token(
    control_gateway: tuple[Server, dict[str, Any]], tmp_path: Path
) -> None:
    server, seed = control_gateway
    url, token, ws = server.url, seed["token"], seed["ws"]["id"]
    bad_token = "sga-" + "x" * 40
    bad = admin(url, bad_token, "workspace", "list", "--org", seed["org"]["id"], real=True)
    assert bad.returncode == 1 and "unauthenticated: the admin token is not valid" in bad.stderr
    assert bad_token not in bad.stdout + bad.stderr and bad.stdout == ""
    missing = admin(url, token, "key", "get", "key_nothere")
    assert missing.returncode == 1 and "not_found: no such key" in missing.stderr
    invalid = admin(url, token, "key", "create", "--workspace", ws, "--expires-at", "2030-01-01T00:00:00")
    assert invalid.returncode == 1 and "validation_error" in invalid.stderr
    assert "  expires_at: " in invalid.stderr and "time zone" in invalid.stderr
    empty = admin(url, token, "user", "create", "--workspace", ws, "")
    assert empty.returncode == 1 and "  name: " in empty.stderr
    forbidden = admin(url, token, "org", "create", "other")  # an org token makes no organization
    assert forbidden.returncode == 1 and "forbidden" in forbidden.stderr
    since = admin(url, token, "events", "list", "--since", "yesterday")
    assert since.returncode == 1 and "  since: an ISO-8601 time" in since.stderr

    # no answer: the URL is named, the token is not
    dead = f"http://127.0.0.1:{free_port()}"
    down = admin(dead, token, "whoami", real=True)
    assert down.returncode == 1 and f"cannot reach the admin API at {dead}" in down.stderr
    assert token not in down.stdout + down.stderr
    # usage errors exit 2: no token, a token file others can read, a bad --url, a missing argument
    assert admin(url, None, "whoami").returncode == 2
    typed = admin(url, None, "whoami", "--token", token)  # no such option, and the token is not echoed
    assert typed.returncode == 2 and "unrecognized argument" in typed.stderr and token not in typed.stderr
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o644)
    loose = admin(url, None, "--token-file", str(token_file), "whoami")
    assert loose.returncode == 2 and "chmod 600" in loose.stderr and token not in loose.stderr
    token_file.chmod(stat.S_IRUSR | stat.S_IWUSR)
    assert fields(ok(admin(url, None, "--token-file", str(token_file), "whoami")))["org_id"] == seed["org"]["id"]
    assert admin("ftp://127.0.0.1", token, "whoami").returncode == 2
    creds = admin(url.replace("http://", "http://me:hunter2@"), token, "whoami")
    assert creds.returncode == 2 and "hunter2" not in creds.stderr
    assert admin(url, token, "key", "get").returncode == 2
    # https is verified: a plain-http server behind an https URL is a connection failure, not a bypass
    tls = admin(url.replace("http://", "https://"), token, "whoami")
    assert tls.returncode == 1 and "cannot reach the admin API at https://" in tls.stderr
    assert token not in tls.stdout + tls.stderr


def test_secrets_policies_events_audit_and_spend(control_gateway: tuple[Server, dict[str, Any]]) -> None:
    server, seed = control_gateway
    url, token, org, ws = server.url, seed["token"], seed["org"]["id"], seed["ws"]["id"]
    value = "sk-cli-secret-VALUE-123"
    # the value is never an argument: an extra one is a usage error, before anything is sent
    extra = admin(url, token, "secret", "set", "--workspace", ws, "openai", value, real=True)
    assert extra.returncode == 2 and value not in extra.stdout + extra.stderr
    piped = admin(
        url, token, "secret", "set", "--workspace", ws, "openai", "--project", "p1", stdin=value + "\n", real=True
    )
    assert value not in piped.stdout + piped.stderr and fields(ok(piped))["provider"] == "openai"
    env = {"SLUICEGATE_SECRET_VALUE": "20261204"}
    from_env = admin(url, token, "secret", "set", "--org", org, "anthropic", env=env, real=True)  # empty stdin
    assert "20261204" not in ok(from_env) + from_env.stderr
    listed = ok(admin(url, token, "secret", "list", "--workspace", ws))
    assert [(s["provider"], s["project"]) for s in table(listed)] == [("openai", "p1")]
    assert value not in listed
    assert ok(admin(url, token, "secret", "delete", "--workspace", ws, "openai")).strip() == "secret delete: done"
    assert table(ok(admin(url, token, "secret", "list", "--workspace", ws))) == []
    gone = admin(url, token, "secret", "delete", "--workspace", ws, "openai")
    assert gone.returncode == 1 and "not_found" in gone.stderr

    policy = {"caps": [{"window": "month", "limit_usd": "3.50", "locked": True}]}
    done = admin(url, token, "policy", "set", "--level", "org", "--id", org, "--file", "-", stdin=json.dumps(policy))
    (cap,) = table(ok(done).split("caps:", 1)[1])
    assert cap["limit_usd"] == "3.50" and cap["locked"] == "yes"
    got = as_json(admin(url, token, "--json", "policy", "get", "--level", "org", "--id", org))
    assert got["caps"][0]["limit_usd"] == "3.50"
    weaker = json.dumps({"caps": [{"window": "month", "limit_usd": "9"}]})
    locked = admin(url, token, "policy", "set", "--level", "workspace", "--id", ws, "--body", weaker)
    assert locked.returncode == 1 and "policy_locked" in locked.stderr and "  caps" in locked.stderr
    wrong = admin(url, token, "policy", "set", "--level", "workspace", "--id", ws, "--body", '{"caps": 1}')
    assert wrong.returncode == 1 and "validation_error" in wrong.stderr and "  caps: " in wrong.stderr
    assert admin(url, token, "policy", "set", "--level", "workspace", "--id", ws, "--body", "{").returncode == 2
    effective = ok(admin(url, token, "policy", "effective", seed["key_id"]))
    (cap,) = table(effective.split("caps:", 1)[1])
    assert (cap["level"], cap["limit_usd"]) == ("org", "3.50") and "limit_nusd" not in cap  # one money column

    time.sleep(0.6)  # the view reloads within a poll interval
    for i in range(3):
        chat = {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": f"me{i}@x.example"}]}
        auth = {"authorization": f"Bearer {seed['key']}"}
        assert httpx.post(f"{url}/v1/chat/completions", json=chat, headers=auth).status_code == 200
    deadline = time.monotonic() + 5
    while True:
        spent = as_json(admin(url, token, "--json", "spend", "--group-by", "workspace,model"))
        if spent["total_cost_nusd"] == 3 * 24_000 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert spent["total_cost_nusd"] == 72_000
    shown = ok(admin(url, token, "spend", "--group-by", "workspace,model"))
    rows, rest = shown.split("\n\n", 1)
    (row,) = table(rows)
    assert (row["workspace_id"], row["calls"], row["cost_usd"]) == (ws, "3", "$0.000072")  # exact, from nano-USD
    assert fields(rest)["total_cost_usd"] == "$0.000072"
    (cap,) = table(rest.split("caps:", 1)[1])
    assert (cap["limit_usd"], cap["spent_usd"]) == ("$3.50", "$0.000072")
    nothing = ok(admin(url, token, "spend", "--workspace", ws, "--since", "2999-01-01T00:00:00Z"))
    assert nothing.startswith("(none)") and "$0.00" in nothing

    deadline = time.monotonic() + 5
    while len(events := table(ok(admin(url, token, "events", "list", "--entity", "EMAIL")))) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert {(e["policy"], e["action"], e["entity"], e["workspace_id"]) for e in events} == {
        ("redaction", "redact", "EMAIL", ws)
    }
    assert "x.example" not in str(events)
    scoped = as_json(admin(url, token, "--json", "events", "list", "--workspace", ws, "--limit", "2"))
    assert len(scoped["data"]) == 2 and scoped["data"][0]["entity"] == "EMAIL"
    assert table(ok(admin(url, token, "events", "list", "--policy", "nothing"))) == []
    assert table(ok(admin(url, token, "events", "list", "--action", "block"))) == []

    audit = table(ok(admin(url, token, "audit", "list")))
    actions = [a["action"] for a in audit]
    assert actions[-4:] == ["secret.set", "secret.set", "secret.delete", "policy.set"]
    assert all(a["actor"].startswith(("admin_token/", "test/", "system/")) for a in audit)
    assert value not in str(audit) and "20261204" not in str(audit)
    assert len(as_json(admin(url, token, "audit", "list", "--limit", "2", "--json"))["data"]) == 2


TLS_PROXY = """daemon off;
master_process off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{}}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {dir}/cert.pem;
        ssl_certificate_key {dir}/key.pem;
        location / {{ proxy_pass http://127.0.0.1:{upstream}; }}
    }}
}}
"""


@pytest.mark.skipif(find_nginx() is None, reason="nginx is not installed (apt-get install nginx-light)")
def test_tls_is_verified_and_a_private_ca_is_taken(
    control_gateway: tuple[Server, dict[str, Any]], tmp_path: Path
) -> None:
    """The gateway behind nginx terminating TLS with a certificate of a CA no system trusts: refused
    by default, taken with `--ca-file`."""
    server, seed = control_gateway
    make_cert = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"]
    make_cert += ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(tmp_path / "key.pem")]
    subprocess.run([*make_cert, "-out", str(tmp_path / "cert.pem")], check=True, capture_output=True, timeout=60)
    port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(TLS_PROXY.format(dir=tmp_path, port=port, upstream=server.port))
    nginx = find_nginx()
    assert nginx is not None
    with spawn(nginx_argv(nginx, tmp_path, conf), port):
        url, token = f"https://127.0.0.1:{port}", seed["token"]
        untrusted = admin(url, token, "whoami")
        assert untrusted.returncode == 1 and f"cannot reach the admin API at {url}" in untrusted.stderr
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr and token not in untrusted.stderr
        trusted = fields(ok(admin(url, token, "--ca-file", str(tmp_path / "cert.pem"), "whoami")))
        assert trusted["org_id"] == seed["org"]["id"]
        missing = admin(url, token, "--ca-file", str(tmp_path / "none.pem"), "whoami")
        assert missing.returncode == 2 and "cannot load the CA file" in missing.stderr


def test_with_migrate_on_start_off_the_gateway_serves_only_a_migrated_database(
    control_settings: ControlSettings,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The Helm chart's migration Job runs `admin migrate`; its pods start with
    control.migrate_on_start off, so they never migrate and refuse a schema that is behind."""
    from sluicegate.control.migrations import revisions

    port = free_port()
    env = {
        "SLUICEGATE_CONTROL__ENABLED": "true",
        "SLUICEGATE_CONTROL__DATABASE_URL": control_settings.database_url.reveal(),
        "SLUICEGATE_CONTROL__MASTER_KEY": MASTER_KEY,
        "SLUICEGATE_CONTROL__MIGRATE_ON_START": "false",
        "SLUICEGATE_SERVER__PORT": str(port),
    }
    refused = _run(["serve"], env)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "control.migrate_on_start is false: run `sluicegate admin migrate` first" in refused.stderr
    assert f"lacks {len(revisions())} schema revision(s)" in refused.stderr  # and it created nothing
    assert json.loads(_cli(control_settings, "admin", "migrate").stdout)["applied"] == revisions()
    with spawn([PYTHON, "-m", "sluicegate", "serve"], port, env) as server:
        deadline = time.monotonic() + 10
        while httpx.get(f"{server.url}/readyz", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "the gateway never became ready"
            time.sleep(0.05)
