"""The admin API on SQLite and PostgreSQL: every endpoint walked with tokens of every scope.

A token of another organization or of another workspace gets 403 or 404 from every endpoint and
changes nothing in the database; the owner's token succeeds, and each change writes exactly one
audit row. Bad input is a 422 naming the field.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from tests.unit.control.pg import control_settings, pg_database  # noqa: F401  (fixtures)

from sluicegate.config import RedactionSettings, Settings
from sluicegate.control.admin_api import ENDPOINTS, AdminApi, Endpoint
from sluicegate.control.audit import Actor
from sluicegate.control.models import metadata
from sluicegate.control.schemas import KeyIn, PolicyIn, SecretIn
from sluicegate.control.settings import ControlSettings
from sluicegate.control.store import ControlStore
from sluicegate.control.view import ControlView
from sluicegate.proxy.egress import TenantUrls

ACTOR = Actor("test/setup")
# The operator's rules for tenant base URLs: `openai` may point at llm.example (and its own origin).
TENANT_URLS = TenantUrls.from_settings(
    Settings.model_validate(
        {
            "providers": {"openai": {"kind": "openai", "api_key": "k"}},
            "upstream": {"tenant_base_urls": {"openai": ["llm.example"]}},
        }
    )
)
SECRET_VALUE = "sk-secret-value-never-shown-0123456789"


@dataclass
class World:
    client: httpx.AsyncClient
    store: ControlStore
    ids: dict[str, str]
    tokens: dict[str, str]
    api: AdminApi
    token_ids: dict[str, str]


@pytest.fixture
async def world(control_settings: ControlSettings) -> AsyncIterator[World]:  # noqa: F811
    store = ControlStore(control_settings)
    await store.open()
    a = await store.create_org(ACTOR, "a")
    a1 = await store.create_workspace(ACTOR, a["id"], "a1")
    a2 = await store.create_workspace(ACTOR, a["id"], "a2")
    user = await store.create_user(ACTOR, a1, "alice")
    key, _ = await store.create_key(ACTOR, a1, KeyIn(name="k", user_id=user["id"]))
    await store.set_secret(ACTOR, "workspace", a1["id"], a["id"], "openai", SecretIn(value=SECRET_VALUE))
    await store.set_secret(ACTOR, "org", a["id"], a["id"], "openai", SecretIn(value=SECRET_VALUE))
    await store.set_policy(ACTOR, "org", a["id"], a["id"], PolicyIn.model_validate({"caps": [{"limit_usd": "10"}]}))
    b = await store.create_org(ACTOR, "b")
    await store.create_workspace(ACTOR, b["id"], "b1")
    made = {
        "operator": await store.create_admin_token(ACTOR, None, None, "op"),
        "org_a": await store.create_admin_token(ACTOR, a["id"], None, "a"),
        "ws_a1": await store.create_admin_token(ACTOR, a["id"], a1["id"], "a1"),
        "ws_a2": await store.create_admin_token(ACTOR, a["id"], a2["id"], "a2"),
        "org_b": await store.create_admin_token(ACTOR, b["id"], None, "b"),
    }
    tokens = {name: token for name, (_, token) in made.items()}
    token_ids = {name: row["id"] for name, (row, _) in made.items()}
    victim, _ = await store.create_admin_token(ACTOR, a["id"], None, "to revoke")
    ids = {"org_id": a["id"], "workspace_id": a1["id"], "user_id": user["id"], "key_id": key["id"]}
    ids["token_id"] = victim["id"]
    ids["provider"] = "openai"
    view = ControlView(store)
    await view.refresh()
    api = AdminApi(store, view, redaction=RedactionSettings())
    api.base_url_refusal = TENANT_URLS.refusal
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
        yield World(client, store, ids, tokens, api, token_ids)
    await api.close()
    await store.close()


def _body(endpoint: Endpoint, ids: dict[str, str]) -> dict[str, Any] | None:
    if endpoint.body is None:
        return None
    name = endpoint.body.__name__
    if name == "KeyIn":
        return {"name": "k2", "user_id": ids["user_id"], "expires_at": "2099-01-01T00:00:00Z"}
    if name == "AdminTokenIn":
        return {"name": "t", "workspace_id": ids["workspace_id"]}
    if name == "SecretIn":
        return {"value": SECRET_VALUE, "base_url": "https://llm.example/v1"}
    if name == "RedactionTryIn":
        return {"text": "write to a@b.example"}
    if name == "PolicyIn":
        return {
            "caps": [{"window": "day", "limit_usd": "5.25"}],
            "redaction": [{"entities": ["US_SSN"], "action": "block"}],
        }
    return {"name": "n"}


async def _call(world: World, endpoint: Endpoint, token: str | None) -> httpx.Response:
    path = "/admin/v1" + re.sub(r"{(\w+)}", lambda m: world.ids[m.group(1)], endpoint.path)
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return await world.client.request(endpoint.method, path, json=_body(endpoint, world.ids), headers=headers)


async def _dump(store: ControlStore) -> dict[str, list[tuple[Any, ...]]]:
    async with store.read() as conn:
        return {
            name: sorted(tuple(map(str, r)) for r in await conn.execute(select(table)))
            for name, table in metadata.tables.items()
        }


def _outside_the_audit_log(dump: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    """A dump without the audit log and its head (which a denial adds to)."""
    return {name: rows for name, rows in dump.items() if name not in ("audit_log", "control_state")}


@pytest.mark.parametrize("intruder", ["org_b", "ws_a2"])
async def test_no_endpoint_crosses_the_scope_line(world: World, intruder: str) -> None:
    before = await _dump(world.store)
    seq = len(await world.store.audit_rows(None, 0, 10_000))
    denied = 0
    for endpoint in ENDPOINTS:
        response = await _call(world, endpoint, world.tokens[intruder])
        where = f"{endpoint.method} {endpoint.path} with {intruder}"
        if "{" in endpoint.path:
            assert response.status_code in (403, 404), where
        else:
            assert response.status_code in (200, 403), where
            if intruder == "org_b":
                assert world.ids["org_id"] not in response.text, where
        denied += response.status_code in (403, 404)
        assert SECRET_VALUE not in response.text
    assert _outside_the_audit_log(await _dump(world.store)) == _outside_the_audit_log(before)
    # Nothing changed but the audit log, which holds the denials: one row for the token, counting them all.
    await world.api.close()
    added = await world.store.audit_rows(None, seq, 10_000)
    assert {(r["action"], r["actor"], r["org_id"]) for r in added} == {
        ("admin.access_denied", f"admin_token/{world.token_ids[intruder]}", None)
    }
    assert sum(r["diff"]["after"]["denials"] for r in added) == denied
    assert world.tokens[intruder] not in str(added)


@pytest.mark.parametrize("owner", ["operator", "org_a"])
async def test_every_endpoint_works_for_its_owner_and_each_change_is_one_audit_row(world: World, owner: str) -> None:
    for endpoint in ENDPOINTS:
        rows = len(await world.store.audit_rows(None, 0, 10_000))
        response = await _call(world, endpoint, world.tokens[owner])
        where = f"{endpoint.method} {endpoint.path}"
        if endpoint.path == "/orgs" and endpoint.method == "POST" and owner != "operator":
            assert response.status_code == 403, where
            await world.api.denials.settle()  # no change: only the denial, by this token
            added = await world.store.audit_rows(None, rows, 10_000)
            assert [r["action"] for r in added] == ["admin.access_denied"], where
            continue
        assert response.status_code == endpoint.status, (where, response.text)
        assert SECRET_VALUE not in response.text
        added = await world.store.audit_rows(None, rows, 10_000)
        assert len(added) == (1 if endpoint.mutates else 0), where
        if added:
            assert added[0]["actor"].startswith("admin_token/") and added[0]["request_id"]
            assert SECRET_VALUE not in str(added[0])
    assert (await world.store.verify_audit()).ok


async def test_a_workspace_admin_sees_only_its_workspace(world: World) -> None:
    token = world.tokens["ws_a1"]
    for endpoint in ENDPOINTS:
        response = await _call(world, endpoint, token)
        org_level = endpoint.path.startswith("/orgs/")
        if (endpoint.path == "/orgs" and endpoint.method == "POST") or org_level:
            assert response.status_code == 403, endpoint.path
        else:
            assert response.status_code == endpoint.status, (endpoint.path, response.text)


async def test_validation_errors_name_the_field(world: World) -> None:
    headers = {"authorization": f"Bearer {world.tokens['org_a']}"}
    ws = world.ids["workspace_id"]
    bad = await world.client.put(
        f"/admin/v1/workspaces/{ws}/policy", json={"caps": [{"limit_usd": "1.0000000001"}]}, headers=headers
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["fields"][0]["loc"] == "caps.0.limit_usd"
    junk = await world.client.post(f"/admin/v1/workspaces/{ws}/keys", content=b"{nope", headers=headers)
    assert junk.status_code == 422 and junk.json()["error"]["fields"] == [{"loc": "body", "msg": "invalid JSON"}]
    assert (await world.client.get("/admin/v1/whoami")).status_code == 401
    assert (await world.client.get("/admin/v1/whoami", headers={"authorization": "Bearer sga-nope"})).status_code == 401


@pytest.mark.parametrize("token", ["ws_a1", "org_a", "operator"])
async def test_a_base_url_outside_the_operators_rules_is_a_400(world: World, token: str) -> None:
    headers = {"authorization": f"Bearer {world.tokens[token]}"}
    path = f"/admin/v1/workspaces/{world.ids['workspace_id']}/secrets/openai"
    before = await _dump(world.store)
    for url in (
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:8080/v1",
        "http://[::1]:8080/v1",
        "http://localhost:8080/v1",
        "https://evil.example/v1",
        "https://llm.example:8443/v1",
        "https://me:pw@llm.example/v1",
    ):
        r = await world.client.put(path, json={"value": SECRET_VALUE, "base_url": url}, headers=headers)
        assert r.status_code == 400, (url, r.text)
        assert r.json()["error"]["code"] == "base_url_not_allowed"
        assert r.json()["error"]["fields"][0]["loc"] == "base_url" and SECRET_VALUE not in r.text
    assert await _dump(world.store) == before  # nothing stored, nothing audited
    for url in ("https://llm.example/v1", "https://api.openai.com/v1"):
        r = await world.client.put(path, json={"value": SECRET_VALUE, "base_url": url}, headers=headers)
        assert r.status_code == 200 and r.json()["base_url"] == url
    # a provider the gateway does not know takes no base_url, and without rules none is taken
    unknown = f"/admin/v1/workspaces/{world.ids['workspace_id']}/secrets/langsmith"
    r = await world.client.put(unknown, json={"value": "x", "base_url": "https://llm.example"}, headers=headers)
    assert r.status_code == 400
    r = await world.client.put(unknown, json={"value": "x", "project": "p"}, headers=headers)
    assert r.status_code == 200


async def test_without_rules_no_base_url_is_taken(world: World) -> None:
    api = AdminApi(world.store)  # nothing wired: fail closed
    headers = {"authorization": f"Bearer {world.tokens['operator']}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://admin") as client:
        path = f"/admin/v1/workspaces/{world.ids['workspace_id']}/secrets/openai"
        r = await client.put(path, json={"value": SECRET_VALUE, "base_url": "https://llm.example/v1"}, headers=headers)
        assert r.status_code == 400 and r.json()["error"]["code"] == "base_url_not_allowed"
        assert (await client.put(path, json={"value": SECRET_VALUE}, headers=headers)).status_code == 200


async def test_a_revoked_admin_token_is_refused(world: World) -> None:
    owner = {"authorization": f"Bearer {world.tokens['org_a']}"}
    org = world.ids["org_id"]
    made = await world.client.post(f"/admin/v1/orgs/{org}/admin-tokens", json={"name": "tmp"}, headers=owner)
    token = made.json()["token"]
    assert (await world.client.get("/admin/v1/whoami", headers={"authorization": f"Bearer {token}"})).status_code == 200
    listed = (await world.client.get(f"/admin/v1/orgs/{org}/admin-tokens", headers=owner)).text
    assert token not in listed and "token_hash" not in listed
    revoked = await world.client.post(f"/admin/v1/orgs/{org}/admin-tokens/{made.json()['id']}/revoke", headers=owner)
    assert revoked.status_code == 200
    assert (await world.client.get("/admin/v1/whoami", headers={"authorization": f"Bearer {token}"})).status_code == 401


async def test_effective_policy_is_inherited(world: World) -> None:
    headers = {"authorization": f"Bearer {world.tokens['org_a']}"}
    key_id = world.ids["key_id"]
    await world.client.put(
        f"/admin/v1/keys/{key_id}/policy", json={"caps": [{"window": "total", "limit_usd": "2"}]}, headers=headers
    )
    got = (await world.client.get(f"/admin/v1/keys/{key_id}/effective-policy", headers=headers)).json()
    assert [(c["level"], c["window"], c["limit_nusd"]) for c in got["caps"]] == [
        ("org", "month", 10_000_000_000),
        ("key", "total", 2_000_000_000),
    ]
    assert got["sources"] == {"org": world.ids["org_id"], "key": key_id}


async def test_the_openapi_document_describes_every_endpoint(world: World) -> None:
    doc = (await world.client.get("/admin/v1/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    described = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert described == {(e.method, "/admin/v1" + e.path) for e in ENDPOINTS}


async def test_the_redaction_try_runs_the_keys_rules_and_keeps_nothing(world: World) -> None:
    headers = {"authorization": f"Bearer {world.tokens['ws_a1']}"}
    key, ws = world.ids["key_id"], world.ids["workspace_id"]
    policy = {
        "redaction": [{"entities": ["US_SSN"], "action": "block"}, {"entities": ["TICKET"], "action": "monitor"}],
        "custom_patterns": [{"entity": "TICKET", "pattern": "TCK-[0-9]{4}"}],
    }
    assert (
        await world.client.put(f"/admin/v1/workspaces/{ws}/policy", json=policy, headers=headers)
    ).status_code == 200
    rows = len(await world.store.audit_rows(None, 0, 10_000))
    text = "né: mail a@b.example, ssn 336-22-2513, TCK-1234"
    answer = await world.client.post(f"/admin/v1/keys/{key}/redaction/try", json={"text": text}, headers=headers)
    assert answer.status_code == 200, answer.text
    found = answer.json()["findings"]
    assert [(f["entity"], f["action"]) for f in found] == [
        ("EMAIL", "redact"),
        ("US_SSN", "block"),
        ("TICKET", "monitor"),
    ]
    assert [text[f["start"] : f["end"]] for f in found] == ["a@b.example", "336-22-2513", "TCK-1234"]
    assert answer.json()["text"] == "né: mail [REDACTED:EMAIL], ssn [REDACTED:US_SSN], TCK-1234"
    assert len(await world.store.audit_rows(None, 0, 10_000)) == rows  # nothing of the text is recorded
    # Another workspace's admin is told the key does not exist; too much text is refused.
    other = {"authorization": f"Bearer {world.tokens['ws_a2']}"}
    hidden = await world.client.post(f"/admin/v1/keys/{key}/redaction/try", json={"text": text}, headers=other)
    assert hidden.status_code == 404
    wide = "é" * 40_000  # 40,000 characters, 80,000 bytes
    big = await world.client.post(f"/admin/v1/keys/{key}/redaction/try", json={"text": wide}, headers=headers)
    assert big.status_code == 413 and big.json()["error"]["code"] == "too_large"
    long = await world.client.post(f"/admin/v1/keys/{key}/redaction/try", json={"text": "a" * 70_000}, headers=headers)
    assert long.status_code == 422 and long.json()["error"]["fields"][0]["loc"] == "text"
    assert "aaaa" not in long.text
    await world.api.close()
    assert not [r for r in await world.store.audit_rows(None, rows, 10_000) if r["action"] != "admin.access_denied"]
    assert "a@b.example" not in str(await world.store.audit_rows(None, 0, 10_000))
