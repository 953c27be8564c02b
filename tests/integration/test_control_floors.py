"""Policy floors probed the way a workspace admin would try to get out from under them, on SQLite
and PostgreSQL: through the admin API (refused with a 409 that names the rule and who locks it),
past it (a row written straight into the database is held to the floor when the view loads it),
and through a running gateway with the openai SDK (the SSN the org blocks stays blocked)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from sqlalchemy import delete, insert, update
from tests.conftest import PYTHON, ROOT, Server, gateway_config, start_gateway
from tests.integration.conftest import SPEND
from tests.integration.test_control_gateway import _env, _seed
from tests.integration.test_control_policies import until
from tests.unit.control.pg import MASTER_KEY, control_settings, pg_database  # noqa: F401  (fixtures)

from sluicegate.config import RedactionSettings
from sluicegate.control.admin_api import AdminApi
from sluicegate.control.audit import Actor
from sluicegate.control.keys import now_iso
from sluicegate.control.models import policies, state
from sluicegate.control.policies import OperatorPolicy
from sluicegate.control.schemas import KeyIn
from sluicegate.control.settings import ControlSettings
from sluicegate.control.store import ControlStore
from sluicegate.control.view import ControlView
from sluicegate.policy.auth import Identity
from sluicegate.spend.caps import SpendSettings

ACTOR = Actor("test/setup")
SSN = "my ssn is 536-22-8844"
CARD = "card 4111 1111 1111 1111"
EMAIL = "write to bob@example.com"
# The operator's floors, as a config file holds them.
OPERATOR_TOML = """
[redaction]
rules = [{ entities = ["CREDIT_CARD"], action = "block", direction = "request", locked = true }]
"""
ORG_LOCK = {
    "redaction": [{"entities": ["US_SSN"], "action": "block", "locked": True}],
    "caps": [{"window": "day", "limit_usd": "10", "locked": True}],
}
MONITOR_SSN = {"redaction": [{"entities": ["US_SSN"], "action": "monitor", "direction": "request"}]}


async def write_past_the_api(store: ControlStore, rows: dict[tuple[str, str, str], dict[str, Any]]) -> None:
    """Replace policy rows with plain SQL and bump the version, as someone with database access
    (or a bug in another writer) could: no admin API, no floor check, no audit row."""
    async with store.engine.begin() as conn:
        for (level, entity_id, org_id), body in rows.items():
            await conn.execute(delete(policies).where(policies.c.level == level, policies.c.entity_id == entity_id))
            values = {"level": level, "entity_id": entity_id, "org_id": org_id, "updated_at": now_iso()}
            await conn.execute(insert(policies).values(**values, body=orjson.dumps(body).decode()))
        await conn.execute(update(state).where(state.c.id == 1).values(version=state.c.version + 1))


# ── the admin API, in process ─────────────────────────────────────────────────────────────────


@dataclass
class World:
    client: httpx.AsyncClient
    store: ControlStore
    view: ControlView
    ids: dict[str, str]
    tokens: dict[str, str]

    def auth(self, who: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.tokens[who]}"}


@pytest.fixture
async def world(control_settings: ControlSettings) -> AsyncIterator[World]:  # noqa: F811
    store = ControlStore(control_settings)
    await store.open()
    org = await store.create_org(ACTOR, "a")
    ws = await store.create_workspace(ACTOR, org["id"], "a1")
    user = await store.create_user(ACTOR, ws, "alice")
    key, _ = await store.create_key(ACTOR, ws, KeyIn(name="k", user_id=user["id"]))
    tokens = {
        "operator": (await store.create_admin_token(ACTOR, None, None, "op"))[1],
        "org": (await store.create_admin_token(ACTOR, org["id"], None, "org"))[1],
        "ws": (await store.create_admin_token(ACTOR, org["id"], ws["id"], "ws"))[1],
    }
    redaction = RedactionSettings.model_validate(
        {"rules": [{"entities": ["CREDIT_CARD"], "action": "block", "direction": "request", "locked": True}]}
    )
    spend = SpendSettings.model_validate(
        {"caps": [{"level": "org", "id": org["id"], "window": "month", "limit_usd": "100", "locked": True}]}
    )
    view = ControlView(store, operator=OperatorPolicy.from_settings(redaction, spend))
    await view.refresh()
    ids = {"org": org["id"], "workspace": ws["id"], "user": user["id"], "key": key["id"]}
    transport = httpx.ASGITransport(app=AdminApi(store, view))
    async with httpx.AsyncClient(transport=transport, base_url="http://admin/admin/v1") as client:
        yield World(client, store, view, ids, tokens)
    await store.close()


def _policy_path(world: World, level: str) -> str:
    plural = {"org": "orgs", "workspace": "workspaces", "user": "users", "key": "keys"}[level]
    return f"/{plural}/{world.ids[level]}/policy"


async def test_a_workspace_admin_cannot_lower_what_the_org_locks(world: World) -> None:
    assert (
        await world.client.put(_policy_path(world, "org"), json=ORG_LOCK, headers=world.auth("org"))
    ).status_code == 200
    audit_before = len(await world.store.audit_rows(None, 0, 10_000))
    for level in ("workspace", "user", "key"):
        for who in ("ws", "org", "operator"):  # the lock binds whoever writes below it
            refused = await world.client.put(_policy_path(world, level), json=MONITOR_SSN, headers=world.auth(who))
            assert refused.status_code == 409, (level, who, refused.text)
            error = refused.json()["error"]
            assert error["code"] == "policy_locked"
            assert "US_SSN" in error["message"] and f"org {world.ids['org']}" in error["message"]
            assert error["fields"] == [
                {
                    "loc": "redaction.0",
                    "msg": error["fields"][0]["msg"],
                    "locked_by": {"level": "org", "id": world.ids["org"]},
                }
            ]
            assert (await world.client.get(_policy_path(world, level), headers=world.auth(who))).json()[
                "redaction"
            ] == []
    assert len(await world.store.audit_rows(None, 0, 10_000)) == audit_before  # nothing was written
    # as strict, or stricter, is fine
    same = {"redaction": [{"entities": ["US_SSN"], "action": "block", "direction": "request"}]}
    assert (
        await world.client.put(_policy_path(world, "workspace"), json=same, headers=world.auth("ws"))
    ).status_code == 200
    # caps: higher than the locked day cap, or monitor-only under it, is refused
    for cap, allowed in (({"window": "day", "limit_usd": "20"}, False), ({"window": "day", "limit_usd": "5"}, True)):
        put = await world.client.put(_policy_path(world, "key"), json={"caps": [cap]}, headers=world.auth("ws"))
        assert put.status_code == (200 if allowed else 409), put.text
        if not allowed:
            assert put.json()["error"]["fields"][0]["loc"] == "caps.0" and "$10.00" in put.json()["error"]["message"]
    shadow = {"caps": [{"window": "day", "limit_usd": "5", "mode": "monitor"}]}
    assert (
        await world.client.put(_policy_path(world, "key"), json=shadow, headers=world.auth("ws"))
    ).status_code == 409
    # a workspace token cannot unlock the org's rules: the org's policy is out of its scope
    unlock = await world.client.put(_policy_path(world, "org"), json={}, headers=world.auth("ws"))
    assert unlock.status_code == 403
    assert (await world.client.get(_policy_path(world, "org"), headers=world.auth("org"))).json()["redaction"][0][
        "locked"
    ]
    # the org admin may: the lock is its own, and then the workspace may lower the rule again
    assert (await world.client.put(_policy_path(world, "org"), json={}, headers=world.auth("org"))).status_code == 200
    lowered = await world.client.put(_policy_path(world, "workspace"), json=MONITOR_SSN, headers=world.auth("ws"))
    assert lowered.status_code == 200


async def test_a_threshold_above_a_locked_one_is_refused_naming_the_floor(world: World) -> None:
    org = {"redaction": [{"entities": ["PERSON"], "action": "redact", "min_confidence": 40, "locked": True}]}
    assert (await world.client.put(_policy_path(world, "org"), json=org, headers=world.auth("org"))).status_code == 200
    higher = {"redaction": [{"entities": ["PERSON"], "action": "block", "min_confidence": 70}]}
    refused = await world.client.put(_policy_path(world, "workspace"), json=higher, headers=world.auth("ws"))
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "policy_locked"
    assert "min_confidence 70" in error["message"] and "40" in error["message"]
    assert f"org {world.ids['org']}" in error["message"]
    assert [(f["loc"], f["locked_by"]) for f in error["fields"]] == [
        ("redaction.0", {"level": "org", "id": world.ids["org"]}),
        ("redaction.0", {"level": "org", "id": world.ids["org"]}),
    ]  # one a direction
    assert (await world.client.get(_policy_path(world, "workspace"), headers=world.auth("ws"))).json()[
        "redaction"
    ] == []
    # by type too, and for one direction
    by_type = {
        "redaction": [
            {
                "entities": ["PERSON"],
                "action": "redact",
                "direction": "response",
                "min_confidence_by_type": {"PERSON": 41},
            }
        ]
    }
    assert (
        await world.client.put(_policy_path(world, "key"), json=by_type, headers=world.auth("ws"))
    ).status_code == 409
    # the lock's own threshold or a lower one, or none (the lock's holds), may be written
    for ok in (40, 10, None):
        rule: dict[str, object] = {"entities": ["PERSON"], "action": "block"}
        if ok is not None:
            rule["min_confidence"] = ok
        put = await world.client.put(
            _policy_path(world, "workspace"), json={"redaction": [rule]}, headers=world.auth("ws")
        )
        assert put.status_code == 200, (ok, put.text)


async def test_the_operators_config_is_a_floor_for_every_org(world: World) -> None:
    card_monitor = {"redaction": [{"entities": ["CREDIT_CARD"], "action": "monitor", "direction": "request"}]}
    for who in ("org", "operator"):
        refused = await world.client.put(_policy_path(world, "org"), json=card_monitor, headers=world.auth(who))
        assert refused.status_code == 409
        assert refused.json()["error"]["fields"][0]["locked_by"] == {"level": "operator", "id": None}
        assert "the operator's configuration" in refused.json()["error"]["message"]
    over = await world.client.put(
        _policy_path(world, "org"), json={"caps": [{"limit_usd": "100.01"}]}, headers=world.auth("org")
    )
    assert over.status_code == 409 and over.json()["error"]["fields"][0]["loc"] == "caps.0"
    under = {"caps": [{"limit_usd": "99"}]}
    assert (
        await world.client.put(_policy_path(world, "org"), json=under, headers=world.auth("org"))
    ).status_code == 200


async def test_a_row_written_past_the_api_is_held_to_the_floor(world: World) -> None:
    assert (
        await world.client.put(_policy_path(world, "org"), json=ORG_LOCK, headers=world.auth("org"))
    ).status_code == 200
    org, ws, key = world.ids["org"], world.ids["workspace"], world.ids["key"]
    await write_past_the_api(
        world.store,
        {
            ("workspace", ws, org): {
                **MONITOR_SSN,
                "custom_patterns": [{"entity": "US_SSN", "pattern": "NEVER-[0-9]{3}"}],
            },
            ("key", key, org): {"caps": [{"window": "day", "limit_usd": "50", "mode": "monitor"}]},
            ("user", world.ids["user"], org): {
                "redaction": [{"entities": ["CREDIT_CARD"], "action": "monitor", "direction": "request"}]
            },
        },
    )
    assert await world.view.refresh()
    who = Identity(key, ws, org, world.ids["user"])
    rules = {(r.entities[0], r.direction): r.action for r in world.view.redaction_rules(who)}
    assert rules[("US_SSN", "request")] == "block" and rules[("CREDIT_CARD", "request")] == "block"
    assert [(c.level, c.limit_nusd, c.mode) for c in world.view.cap_lines(who)] == [
        ("org", 10_000_000_000, "enforce"),
        ("key", 10_000_000_000, "enforce"),
    ]
    # the effective policy says where each rule comes from, whether it is locked, and what it overrode
    shown = (await world.client.get(f"/keys/{key}/effective-policy", headers=world.auth("ws"))).json()
    by_rule = {(r["entities"][0], r["direction"]): r for r in shown["redaction"]}
    ssn = by_rule[("US_SSN", "request")]
    assert (ssn["action"], ssn["origin"], ssn["origin_id"], ssn["locked"]) == ("block", "org", org, True)
    assert ssn["raised_from"] == {"action": "monitor", "level": "workspace", "id": ws}
    card = by_rule[("CREDIT_CARD", "request")]
    assert (card["action"], card["origin"], card["origin_id"], card["locked"]) == ("block", "operator", None, True)
    assert card["raised_from"] == {"action": "monitor", "level": "user", "id": world.ids["user"]}
    assert [(c["origin"], c["locked"], c["limit_usd"]) for c in shown["caps"]] == [
        ("operator", True, "100.00"),
        ("org", True, "10.00"),
        ("key", False, "10.00"),
    ]
    assert shown["caps"][2]["clamped_from"] == {"limit_nusd": 50_000_000_000, "mode": "monitor"}
    assert shown["custom_patterns"] == [
        {"entity": "US_SSN", "pattern": "NEVER-[0-9]{3}", "origin": "workspace", "origin_id": ws}
    ]


# ── a running gateway, the openai SDK, the mock provider ─────────────────────────────────────


@pytest.fixture
def floor_gateway(
    mock_server: Server,
    tmp_path: Path,
    control_settings: ControlSettings,  # noqa: F811
) -> Iterator[tuple[Server, dict[str, Any], ControlSettings]]:
    seed = _seed(control_settings)
    url = control_settings.database_url.reveal()
    control = f'\n[control]\nenabled = true\ndatabase_url = "{url}"\npoll_interval_s = 0.25\n'
    config = gateway_config(tmp_path / "gw.toml", mock_server.url, control + SPEND + OPERATOR_TOML)
    with start_gateway(config, _env()) as server:
        yield server, seed, control_settings


def _blocked(client: openai.OpenAI, text: str) -> bool:
    try:
        client.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": text}], max_tokens=8)
    except openai.BadRequestError as exc:
        assert exc.code == "content_blocked", exc
        return True
    return False


def test_through_the_gateway_the_floor_holds(floor_gateway: tuple[Server, dict[str, Any], ControlSettings]) -> None:
    server, seed, settings = floor_gateway
    org, ws = seed["org"]["id"], seed["ws"]["id"]
    admin = f"{server.url}/admin/v1"
    as_org = {"authorization": f"Bearer {seed['token']}"}
    made = httpx.post(f"{admin}/orgs/{org}/admin-tokens", json={"name": "ws", "workspace_id": ws}, headers=as_org)
    as_ws = {"authorization": f"Bearer {made.json()['token']}"}
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=seed["key"], max_retries=0)
    assert not _blocked(client, SSN)  # the configuration redacts SSNs by default, and the call goes through
    assert _blocked(client, CARD)  # the operator's locked rule

    assert httpx.put(f"{admin}/orgs/{org}/policy", json=ORG_LOCK, headers=as_org).status_code == 200
    until(lambda: _blocked(client, SSN))
    # the workspace admin tries to lower the org's block: refused, and the SSN stays blocked
    refused = httpx.put(f"{admin}/workspaces/{ws}/policy", json=MONITOR_SSN, headers=as_ws)
    assert refused.status_code == 409 and refused.json()["error"]["fields"][0]["locked_by"]["id"] == org
    # the org admin tries to lower the operator's block: refused
    card_monitor = {"redaction": [{"entities": ["CREDIT_CARD"], "action": "monitor", "direction": "request"}]}
    refused = httpx.put(f"{admin}/orgs/{org}/policy", json={**ORG_LOCK, **card_monitor}, headers=as_org)
    assert refused.status_code == 409 and refused.json()["error"]["fields"][0]["locked_by"]["level"] == "operator"
    assert _blocked(client, SSN) and _blocked(client, CARD)

    # Past the API: an org row that lowers the operator's rule, and a workspace row that lowers the
    # org's and adds an SSN pattern that never matches (the built-in detector still runs). EMAIL
    # blocked marks the reload.
    ws_row = {
        "redaction": [*MONITOR_SSN["redaction"], {"entities": ["EMAIL"], "action": "block", "direction": "request"}],
        "custom_patterns": [{"entity": "US_SSN", "pattern": "NEVER-[0-9]{3}"}],
    }
    org_row = {"redaction": [*ORG_LOCK["redaction"], *card_monitor["redaction"]]}

    async def write() -> None:
        store = ControlStore(settings)
        await store.open()
        try:
            await write_past_the_api(store, {("workspace", ws, org): ws_row, ("org", org, org): org_row})
        finally:
            await store.close()

    asyncio.run(write())
    until(lambda: _blocked(client, EMAIL))
    assert _blocked(client, SSN) and _blocked(client, CARD)
    shown = httpx.get(f"{admin}/keys/{seed['key_id']}/effective-policy", headers=as_ws).json()
    ssn = next(r for r in shown["redaction"] if r["entities"] == ["US_SSN"] and r["direction"] == "request")
    assert (ssn["origin"], ssn["locked"], ssn["raised_from"]["level"]) == ("org", True, "workspace")
    client.close()


def _cli(settings: ControlSettings, *args: str, url: str = "", token: str = "") -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "SLUICEGATE_CONTROL__ENABLED": "true",
        "SLUICEGATE_CONTROL__DATABASE_URL": settings.database_url.reveal(),
        "SLUICEGATE_CONTROL__MASTER_KEY": MASTER_KEY,
        "SLUICEGATE_ADMIN_URL": url,
        "SLUICEGATE_ADMIN_TOKEN": token,
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),  # the tree under test, when it is not the installed one
    }
    command = [PYTHON, "-m", "sluicegate", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)


def test_the_cli_refuses_a_weakening_too(mock_server: Server, tmp_path: Path) -> None:
    """`sluicegate admin policy set` gets the API's refusal, naming the rule and who locks it (SQLite
    only: the check is the API's)."""
    settings = ControlSettings(enabled=True, database_url=f"sqlite:///{tmp_path / 'c.db'}")
    boot = _cli(settings, "admin", "--json", "bootstrap", "--org", "acme")
    made = orjson.loads(boot.stdout)
    org, ws, key = made["org"]["id"], made["workspace"]["id"], made["key"]["id"]
    control = f'\n[control]\nenabled = true\ndatabase_url = "{settings.database_url}"\n'
    with start_gateway(gateway_config(tmp_path / "gw.toml", mock_server.url, control), _env()) as gw:
        api = {"url": gw.url, "token": made["operator_admin_token"]}
        locked = orjson.dumps(ORG_LOCK).decode()
        lock = _cli(settings, "admin", "policy", "set", "--level", "org", "--id", org, "--body", locked, **api)
        assert lock.returncode == 0, lock.stderr
        weaker = orjson.dumps(MONITOR_SSN).decode()
        refused = _cli(settings, "admin", "policy", "set", "--level", "workspace", "--id", ws, "--body", weaker, **api)
        assert refused.returncode == 1 and "policy_locked" in refused.stderr
        assert "  redaction.0" in refused.stderr and f"org {org}" in refused.stderr
        shown = orjson.loads(_cli(settings, "admin", "--json", "policy", "effective", key, **api).stdout)
    ssn = next(r for r in shown["redaction"] if r["direction"] == "request")
    assert (ssn["entities"], ssn["action"], ssn["origin"], ssn["locked"]) == (["US_SSN"], "block", "org", True)
