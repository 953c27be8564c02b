"""`sluicegate admin …` and `sluicegate audit verify`: the control plane without raw HTTP.

```
sluicegate admin migrate
sluicegate admin reseal
sluicegate admin bootstrap [--org NAME] [--workspace NAME] [--user NAME] [--key-name NAME] [--expires-at TIME]
sluicegate admin org create NAME
sluicegate admin workspace create --org ORG_ID NAME
sluicegate admin user create --workspace WS_ID NAME
sluicegate admin key create --workspace WS_ID [--user USER_ID] [--name NAME] [--expires-at TIME]
sluicegate admin key revoke KEY_ID
sluicegate admin token create --org ORG_ID [--workspace WS_ID] [--name NAME]
sluicegate admin secret set --org ORG_ID | --workspace WS_ID PROVIDER [--base-url URL] [--project P]
    (the value is read from SLUICEGATE_SECRET_VALUE or stdin, never from an argument; the variable
    is a command input, not a setting: the settings loader skips it)
sluicegate admin policy set --level org|workspace|user|key --id ID (--file FILE | --json TEXT)
sluicegate admin policy effective KEY_ID
sluicegate admin audit list [--org ORG_ID] [--limit N]
sluicegate audit verify [--anchors FILE]...
```

Every command takes `--config FILE` (the `[control]` section) and acts as the local operator
(`cli/<user>` in the audit log).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sluicegate.config import SECRET_VALUE_ENV
from sluicegate.control import audit as audit_log
from sluicegate.control.audit import Actor, AuditKeyError
from sluicegate.control.migrations import MigrationError, revisions
from sluicegate.control.models import api_keys, orgs, users, workspaces
from sluicegate.control.policies import OperatorPolicy, chain_of, effective, floors_for, violations
from sluicegate.control.schemas import KeyIn, PolicyIn, SecretIn
from sluicegate.control.settings import ControlSettings
from sluicegate.control.store import Conflict, ControlStore
from sluicegate.control.system_events import on_open


def register(sub: Any) -> None:
    """Add the `admin` and `audit` commands to the top-level subparsers."""
    admin = sub.add_parser("admin", help="the control plane: orgs, workspaces, users, keys, secrets, policies")
    admin.add_argument("--config", help="a TOML or YAML file (SLUICEGATE_CONFIG)")
    cmds = admin.add_subparsers(dest="admin_command", required=True)
    cmds.add_parser("migrate", help="apply pending schema migrations (prints the revisions applied and the head)")
    cmds.add_parser("reseal", help="seal every provider secret under the current master key (after a rotation)")
    boot = cmds.add_parser("bootstrap", help="create an org, a workspace, optionally a user, and a key")
    boot.add_argument("--org", default="default")
    boot.add_argument("--workspace", default="default")
    boot.add_argument("--user")
    boot.add_argument("--key-name", default="default")
    boot.add_argument("--expires-at")

    def group(name: str, help: str) -> Any:
        return cmds.add_parser(name, help=help).add_subparsers(dest="action", required=True)

    org = group("org", "organizations").add_parser("create")
    org.add_argument("name")
    ws = group("workspace", "workspaces").add_parser("create")
    ws.add_argument("--org", required=True)
    ws.add_argument("name")
    user = group("user", "users").add_parser("create")
    user.add_argument("--workspace", required=True)
    user.add_argument("name")
    key = group("key", "gateway keys")
    new = key.add_parser("create")
    new.add_argument("--workspace", required=True)
    new.add_argument("--user")
    new.add_argument("--name", default="default")
    new.add_argument("--expires-at")
    key.add_parser("revoke").add_argument("key_id")
    token = group("token", "admin tokens").add_parser("create")
    token.add_argument("--org", help="omit for an operator token (all organizations)")
    token.add_argument("--workspace")
    token.add_argument("--name", default="cli")
    secret = group("secret", "provider secrets (write-only)").add_parser("set")
    where = secret.add_mutually_exclusive_group(required=True)
    where.add_argument("--org")
    where.add_argument("--workspace")
    secret.add_argument("provider")
    secret.add_argument("--base-url")
    secret.add_argument("--project")
    policy = group("policy", "policies")
    pset = policy.add_parser("set")
    pset.add_argument("--level", choices=["org", "workspace", "user", "key"], required=True)
    pset.add_argument("--id", required=True)
    body = pset.add_mutually_exclusive_group(required=True)
    body.add_argument("--file")
    body.add_argument("--json")
    policy.add_parser("effective").add_argument("key_id")
    listing = group("audit", "the audit log").add_parser("list")
    listing.add_argument("--org")
    listing.add_argument("--limit", type=int, default=100)

    audit = sub.add_parser("audit", help="the audit log").add_subparsers(dest="audit_command", required=True)
    verify = audit.add_parser("verify", help="check the keyed chain against its anchors; name the first bad row")
    verify.add_argument("--config", help="a TOML or YAML file (SLUICEGATE_CONFIG)")
    verify.add_argument(
        "--anchors",
        action="append",
        metavar="FILE",
        help="an anchor file to check against (repeatable; default control.audit_anchor_file)",
    )


def _settings(args: argparse.Namespace) -> ControlSettings:
    from sluicegate.config import load_settings

    if args.config:
        os.environ["SLUICEGATE_CONFIG"] = str(Path(args.config).resolve())
    return load_settings().control


def _out(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def _fail(message: str) -> None:
    print(f"sluicegate: {message}", file=sys.stderr)
    raise SystemExit(1)


async def _need(store: ControlStore, table: Any, entity_id: str, what: str) -> dict[str, Any]:
    row = await store.one(table, entity_id)
    if row is None:
        _fail(f"no {what} {entity_id!r}")
    assert row is not None
    return row


def _key_spec(name: str, user: str | None, expires_at: str | None) -> KeyIn:
    try:
        return KeyIn.model_validate({"name": name, "user_id": user, "expires_at": expires_at})
    except ValidationError as exc:
        _fail(f"invalid key: {exc.errors(include_input=False)[0]['msg']}")
        raise


def _operator() -> OperatorPolicy:
    """The configuration's redaction rules and caps, whose locks bind every policy (after `_settings`)."""
    from sluicegate.config import load_settings

    settings = load_settings()
    return OperatorPolicy.from_settings(settings.redaction, settings.spend)


async def _admin(args: argparse.Namespace, store: ControlStore, actor: Actor) -> None:
    cmd, action = args.admin_command, getattr(args, "action", None)
    if cmd == "bootstrap":
        org = await store.create_org(actor, args.org)
        ws = await store.create_workspace(actor, org["id"], args.workspace)
        user = await store.create_user(actor, ws, args.user) if args.user else None
        row, key = await store.create_key(
            actor, ws, _key_spec(args.key_name, user["id"] if user else None, args.expires_at)
        )
        token_row, token = await store.create_admin_token(actor, org["id"], None, "bootstrap")
        _out({"org": org, "workspace": ws, "user": user, "key": row, "admin_token_id": token_row["id"]})
        print(f"gateway key (shown once): {key}")
        print(f"org admin token (shown once): {token}")
    elif cmd == "org":
        _out(await store.create_org(actor, args.name))
    elif cmd == "workspace":
        await _need(store, orgs, args.org, "organization")
        _out(await store.create_workspace(actor, args.org, args.name))
    elif cmd == "user":
        _out(await store.create_user(actor, await _need(store, workspaces, args.workspace, "workspace"), args.name))
    elif cmd == "key" and action == "create":
        ws = await _need(store, workspaces, args.workspace, "workspace")
        row, key = await store.create_key(actor, ws, _key_spec(args.name, args.user, args.expires_at))
        _out(row)
        print(f"gateway key (shown once): {key}")
    elif cmd == "key":
        _out(await store.revoke_key(actor, await _need(store, api_keys, args.key_id, "key")))
    elif cmd == "token":
        if args.org:
            await _need(store, orgs, args.org, "organization")
        if args.workspace:
            ws = await _need(store, workspaces, args.workspace, "workspace")
            if ws["org_id"] != args.org:
                _fail("--workspace must belong to --org")
        row, token = await store.create_admin_token(actor, args.org, args.workspace, args.name)
        _out(row)
        print(f"admin token (shown once): {token}")
    elif cmd == "secret":
        value = os.environ.get(SECRET_VALUE_ENV) or sys.stdin.readline().rstrip("\n")
        try:
            spec = SecretIn(value=value, base_url=args.base_url, project=args.project)
        except ValidationError as exc:
            _fail(f"invalid secret: {exc.errors(include_input=False)[0]['msg']}")
            raise
        if args.org:
            scope = await _need(store, orgs, args.org, "organization")
            level, scope_id, org_id = "org", scope["id"], scope["id"]
        else:
            scope = await _need(store, workspaces, args.workspace, "workspace")
            level, scope_id, org_id = "workspace", scope["id"], scope["org_id"]
        _out(await store.set_secret(actor, level, scope_id, org_id, args.provider, spec))
    elif cmd == "policy" and action == "set":
        text = args.json
        try:
            policy = PolicyIn.model_validate_json(text)
        except ValidationError as exc:
            _fail(f"invalid policy: {exc.errors(include_input=False)[0]['msg']}")
            raise
        table = {"org": orgs, "workspace": workspaces, "user": users, "key": api_keys}[args.level]
        row = await _need(store, table, args.id, args.level)
        org_id = row["id"] if args.level == "org" else row["org_id"]
        above = [(lvl, e, await store.policy(lvl, e)) for lvl, e in chain_of(args.level, row)[:-1]]
        refused = violations(floors_for(org_id, above, args.level, row["id"], _operator()), policy)
        if refused:
            _fail("the policy weakens locked rules: " + "; ".join(f"{v.loc}: {v.message}" for v in refused))
        _out((await store.set_policy(actor, args.level, args.id, org_id, policy)).model_dump(mode="json"))
    elif cmd == "policy":
        found = await _need(store, api_keys, args.key_id, "key")
        chain = [(lvl, e, await store.policy(lvl, e)) for lvl, e in chain_of("key", found)]
        _out(effective(found["org_id"], chain, _operator()).as_json())
    elif cmd == "audit":
        _out(await store.audit_rows(args.org, 0, args.limit))
    elif cmd == "reseal":
        done = await store.reseal(actor)
        _out(done)
        if done["unopened"]:
            _fail(f"{done['unopened']} provider secret(s) do not open (damaged) and were left as they were")


async def _with_store(
    settings: ControlSettings, body: Callable[[ControlStore], Awaitable[None]], changes: bool = True
) -> list[str]:
    """Open the store (migrating it), run `body`, close; returns the revisions the opening applied.
    A command that `changes` things may create the master key file and records what opening did
    (migrations, a key's first use); `audit verify` only reads."""
    store = ControlStore(settings)
    try:
        try:
            applied = await store.open(create_master_key=changes)
            if changes:
                await on_open(store, applied)
        except MigrationError as exc:
            _fail(f"the control plane's database was not migrated: {exc}")
            raise
        # ConfigError (an audit key, an anchor file) and MasterKeyError go to the command line's own
        # handler: a configuration that cannot run exits 2, as `serve` does.
        await body(store)
        return applied
    finally:
        await store.close()


async def _nothing(_store: ControlStore) -> None:
    return None


def run(args: argparse.Namespace) -> None:
    """Run an `admin` or `audit` command (exit status 1 on failure, 3 for a broken audit chain)."""
    settings = _settings(args)
    if getattr(args, "file", None):
        args.json = Path(args.file).read_text()
    if args.command == "admin" and args.admin_command == "migrate":
        _out({"applied": asyncio.run(_with_store(settings, _nothing)), "head": revisions()[-1]})
        return
    if args.command == "admin":
        actor = Actor(f"cli/{getpass.getuser()}", os.urandom(12).hex(), "local")

        async def admin(store: ControlStore) -> None:
            try:
                await _admin(args, store, actor)
            except Conflict as exc:
                _fail(str(exc))

        asyncio.run(_with_store(settings, admin))
        return
    outcome: list[Any] = []

    async def verify(store: ControlStore) -> None:
        try:
            outcome.append(await store.verify_audit([Path(p) for p in args.anchors] if args.anchors else None))
        except AuditKeyError as exc:
            _fail(str(exc))

    asyncio.run(_with_store(settings, verify, changes=False))
    result = outcome[0]
    lines = audit_log.describe(result)
    print("\n".join(lines), file=sys.stdout if result.ok else sys.stderr)
    if not result.ok:
        raise SystemExit(3)
