"""Model access rules through the control plane, on SQLite and PostgreSQL: policy writes through the
admin API (a write that a lock above forbids is a 409 naming each field and who locks it), the
effective policy with every level's rules and origins, and a running gateway that applies a
workspace's aliases and lists, and an org's monitor-only rules, to the openai and anthropic SDKs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import openai
import pytest
from tests.conftest import Server
from tests.integration.test_control_cli import admin as cli
from tests.integration.test_control_policies import until
from tests.integration.test_spend_gateway import policy_events
from tests.unit.control.pg import control_settings, pg_database  # noqa: F401  (fixtures)

from sluicegate.config import RedactionSettings
from sluicegate.control.admin_api import AdminApi
from sluicegate.control.audit import Actor
from sluicegate.control.policies import OperatorPolicy
from sluicegate.control.schemas import KeyIn
from sluicegate.control.settings import ControlSettings
from sluicegate.control.store import ControlStore
from sluicegate.control.view import ControlView
from sluicegate.policy.auth import Identity
from sluicegate.policy.model_rules import ModelRulesIn
from sluicegate.spend.caps import SpendSettings

ACTOR = Actor("test/setup")
HELLO = [{"role": "user", "content": "hello"}]
OPERATOR = {"deny": ["o1*"], "deny_locked": True, "params": [{"field": "n", "op": "lte", "value": 4}]}
ORG_LOCK = {
    "models": {
        "allow": ["gpt-*", "claude-*", "mock-*"],
        "allow_locked": True,
        "deny": ["gpt-4o*"],
        "deny_locked": True,
        "aliases": {"fast": "gpt-4.1-mini"},
        "ceilings": [{"max_output_tokens": 4096, "locked": True}],
    }
}


@dataclass
class World:
    client: httpx.AsyncClient
    store: ControlStore
    view: ControlView
    ids: dict[str, str]
    tokens: dict[str, str]

    def auth(self, who: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.tokens[who]}"}

    def path(self, level: str) -> str:
        plural = {"org": "orgs", "workspace": "workspaces", "user": "users", "key": "keys"}[level]
        return f"/{plural}/{self.ids[level]}/policy"


@pytest.fixture
async def world(control_settings: ControlSettings) -> AsyncIterator[World]:  # noqa: F811
    store = ControlStore(control_settings)
    await store.open()
    org = await store.create_org(ACTOR, "a")
    ws = await store.create_workspace(ACTOR, org["id"], "a1")
    user = await store.create_user(ACTOR, ws, "alice")
    key, _ = await store.create_key(ACTOR, ws, KeyIn(name="k", user_id=user["id"]))
    tokens = {
        "org": (await store.create_admin_token(ACTOR, org["id"], None, "org"))[1],
        "ws": (await store.create_admin_token(ACTOR, org["id"], ws["id"], "ws"))[1],
    }
    operator = OperatorPolicy.from_settings(RedactionSettings(), SpendSettings(), ModelRulesIn.model_validate(OPERATOR))
    view = ControlView(store, operator=operator)
    await view.refresh()
    ids = {"org": org["id"], "workspace": ws["id"], "user": user["id"], "key": key["id"]}
    transport = httpx.ASGITransport(app=AdminApi(store, view))
    async with httpx.AsyncClient(transport=transport, base_url="http://admin/admin/v1") as client:
        yield World(client, store, view, ids, tokens)
    await store.close()


async def test_writes_under_model_locks_are_refused_naming_each_field(world: World) -> None:
    put = await world.client.put(world.path("org"), json=ORG_LOCK, headers=world.auth("org"))
    assert put.status_code == 200, put.text
    assert (await world.client.get(world.path("org"), headers=world.auth("org"))).json()["models"]["allow_locked"]
    wider = {
        "models": {
            "allow": ["gpt-4.1*", "o3", "gpt-4o-mini"],
            "aliases": {"reason": "o1-pro"},
            "ceilings": [{"max_output_tokens": 8192}],
        }
    }
    audit_before = len(await world.store.audit_rows(None, 0, 10_000))
    for level in ("workspace", "user", "key"):
        refused = await world.client.put(world.path(level), json=wider, headers=world.auth("ws"))
        assert refused.status_code == 409, refused.text
        error = refused.json()["error"]
        assert error["code"] == "policy_locked"
        org = {"level": "org", "id": world.ids["org"]}
        operator = {"level": "operator", "id": None}
        assert [(f["loc"], f["locked_by"]) for f in error["fields"]] == [
            ("models.allow.1", org),  # o3: outside the locked allow list
            ("models.allow.2", org),  # gpt-4o-mini: the org denies it (locked)
            ("models.aliases.reason", org),  # o1-pro: outside the allow list
            ("models.aliases.reason", operator),  # and the operator denies it
            ("models.ceilings.0", org),
        ]
        assert "4096" in error["fields"][-1]["msg"]
    assert len(await world.store.audit_rows(None, 0, 10_000)) == audit_before  # nothing written
    narrower = {
        "models": {"allow": ["gpt-4.1*"], "aliases": {"fast": "gpt-4.1"}, "ceilings": [{"max_output_tokens": 1000}]}
    }
    ok = await world.client.put(world.path("workspace"), json=narrower, headers=world.auth("ws"))
    assert ok.status_code == 200, ok.text
    # the operator's locked deny binds the org too
    org_wider = {"models": {"allow": ["o1-mini"]}}
    refused = await world.client.put(world.path("org"), json=org_wider, headers=world.auth("org"))
    assert refused.status_code == 409 and refused.json()["error"]["fields"][0]["locked_by"]["level"] == "operator"


async def test_effective_policy_shows_every_level_with_origins(world: World) -> None:
    await world.client.put(world.path("org"), json=ORG_LOCK, headers=world.auth("org"))
    ws = {"models": {"deny": ["claude-*"], "aliases": {"fast": "gpt-4.1"}, "mode": "monitor", "rollout_percent": 0}}
    assert (await world.client.put(world.path("workspace"), json=ws, headers=world.auth("ws"))).status_code == 200
    key = {"models": {"ceilings": [{"max_output_tokens": 9999, "action": "refuse"}]}}  # written past the lock?
    assert (await world.client.put(world.path("key"), json=key, headers=world.auth("ws"))).status_code == 409
    got = await world.client.get(f"/keys/{world.ids['key']}/effective-policy", headers=world.auth("ws"))
    assert got.status_code == 200, got.text
    models = got.json()["models"]
    assert [(lv["level"], lv["mode"]) for lv in models["levels"]] == [
        ("operator", "enforce"),
        ("org", "enforce"),
        ("workspace", "monitor"),
    ]
    assert models["levels"][1]["deny"] == ["gpt-4o*"] and models["levels"][1]["deny_locked"]
    assert models["levels"][1]["ceilings"][0]["max_output_tokens"] == 4096
    assert models["aliases"] == [
        {"name": "fast", "target": "gpt-4.1", "origin": "workspace", "origin_id": ws_id(world)}
    ]
    # the data plane's view holds the same
    await world.view.refresh()
    ident = Identity(world.ids["key"], world.ids["workspace"], world.ids["org"], world.ids["user"])
    rules = world.view.model_rules(ident)
    assert rules.aliases["fast"].target == "gpt-4.1" and [s.level for s in rules.sets][-1] == "workspace"
    # a key of the config file gets the operator's rules alone
    assert [s.level for s in world.view.model_rules(Identity("config-key", "ws")).sets] == ["operator"]


def ws_id(world: World) -> str:
    return world.ids["workspace"]


# ── a running gateway ─────────────────────────────────────────────────────────────────────────


def test_a_workspace_policy_acts_on_sdk_calls(control_gateway: tuple[Server, dict[str, Any]]) -> None:
    server, seed = control_gateway
    admin = {"authorization": f"Bearer {seed['token']}"}
    ws_id, org_id = seed["ws"]["id"], seed["org"]["id"]
    ws_policy = {"models": {"deny": ["mock-claude"], "aliases": {"fast": "mh/mock-gpt", "smart": "mock-claude"}}}
    # the CLI writes it (the document is the admin API's) and reads the key's effective rules
    set_ = cli(
        server.url,
        seed["token"],
        "policy",
        "set",
        "--level",
        "workspace",
        "--id",
        ws_id,
        "--file",
        "-",
        stdin=json.dumps(ws_policy),
    )
    assert set_.returncode == 0, set_.stderr
    shown = json.loads(cli(server.url, seed["token"], "--json", "policy", "effective", seed["key_id"]).stdout)
    assert shown["models"]["aliases"][0]["origin"] == "workspace"
    org_policy = {"models": {"params": [{"field": "temperature", "op": "lte", "value": 1}], "mode": "monitor"}}
    put = httpx.put(f"{server.url}/admin/v1/orgs/{org_id}/policy", json=org_policy, headers=admin)
    assert put.status_code == 200, put.text
    with (
        openai.OpenAI(base_url=f"{server.url}/v1", api_key=seed["key"]) as oa,
        anthropic.Anthropic(base_url=server.url, api_key=seed["key"]) as an,
    ):

        def denied() -> bool:
            try:
                oa.chat.completions.create(model="mock-claude", messages=HELLO)  # type: ignore[arg-type]
            except openai.PermissionDeniedError:
                return True
            return False

        until(denied, timeout=5)
        with pytest.raises(anthropic.PermissionDeniedError) as ae:
            an.messages.create(model="smart", messages=HELLO, max_tokens=5)  # type: ignore[arg-type]
        assert f"workspace {ws_id!r} denies 'mock-claude'" in str(ae.value)
        assert oa.chat.completions.create(model="fast", messages=HELLO).model == "mock-gpt"  # type: ignore[arg-type]
        # the org's rule only monitors: the call goes ahead, and the event says what it would have done
        before = policy_events(server).get('{action="would_refuse",entity="org",policy="models"}', 0)
        reply = oa.chat.completions.create(model="mock-gpt", messages=HELLO, temperature=1.5)  # type: ignore[arg-type]
        assert reply.model == "mock-gpt"
        assert policy_events(server)['{action="would_refuse",entity="org",policy="models"}'] == before + 1
        listed = sorted(m.id for m in oa.models.list())
        assert "mock-claude" not in listed and "smart" not in listed and {"fast", "mock-gpt"} <= set(listed)
