"""The admin API on SQLite and PostgreSQL: every endpoint walked with tokens of every scope.

A token of another organization or of another workspace gets 403 or 404 from every endpoint and
changes nothing in the database; the owner's token succeeds, and each change writes exactly one
audit row. Bad input is a 422 naming the field.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from tests.integration.mcp_listing import docs_tools
from tests.unit.control.pg import control_settings, pg_database  # noqa: F401  (fixtures)

from sluicegate.config import RedactionSettings, Settings
from sluicegate.control.admin_api import ENDPOINTS, AdminApi, Endpoint
from sluicegate.control.audit import Actor
from sluicegate.control.models import admin_tokens, audit_log, metadata, workspaces
from sluicegate.control.schemas import KeyIn, McpServerIn, PolicyIn, SecretIn
from sluicegate.control.settings import ControlSettings
from sluicegate.control.store import ControlStore
from sluicegate.control.view import ControlView
from sluicegate.errors import Unauthenticated
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
    server = McpServerIn(url="https://tools.example/mcp", headers={"Authorization": f"Bearer {SECRET_VALUE}"})
    await store.set_mcp_server(ACTOR, a1, "docs", server)
    await store.set_policy(ACTOR, "org", a["id"], a["id"], PolicyIn.model_validate({"caps": [{"limit_usd": "10"}]}))
    b = await store.create_org(ACTOR, "b")
    await store.create_workspace(ACTOR, b["id"], "b1")
    made = {
        "operator": await store.create_admin_token(ACTOR, None, None, "op"),
        "org_a": await store.create_admin_token(ACTOR, a["id"], None, "a"),
        "ws_a1": await store.create_admin_token(ACTOR, a["id"], a1["id"], "a1"),
        "ws_a2": await store.create_admin_token(ACTOR, a["id"], a2["id"], "a2"),
        "org_b": await store.create_admin_token(ACTOR, b["id"], None, "b"),
        "org_a_viewer": await store.create_admin_token(ACTOR, a["id"], None, "a viewer", "viewer"),
        "ws_a1_viewer": await store.create_admin_token(ACTOR, a["id"], a1["id"], "a1 viewer", "viewer"),
        "org_b_viewer": await store.create_admin_token(ACTOR, b["id"], None, "b viewer", "viewer"),
    }
    tokens = {name: token for name, (_, token) in made.items()}
    token_ids = {name: row["id"] for name, (row, _) in made.items()}
    victim, _ = await store.create_admin_token(ACTOR, a["id"], None, "to revoke")
    ids = {"org_id": a["id"], "workspace_id": a1["id"], "user_id": user["id"], "key_id": key["id"]}
    ids["token_id"] = victim["id"]
    ids["provider"] = "openai"
    ids["name"] = "docs"
    # What the DELETE endpoints delete, so the walks over every endpoint keep the world they walk.
    ids["spare_org_id"] = (await store.create_org(ACTOR, "spare"))["id"]
    ids["spare_workspace_id"] = (await store.create_workspace(ACTOR, a["id"], "spare"))["id"]
    ids["spare_user_id"] = (await store.create_user(ACTOR, a1, "spare"))["id"]
    ids["spare_key_id"] = (await store.create_key(ACTOR, a1, KeyIn(name="spare")))[0]["id"]
    view = ControlView(store)
    await view.refresh()
    api = AdminApi(store, view, redaction=RedactionSettings())
    api.base_url_refusal = TENANT_URLS.refusal
    api.mcp_url_refusal = TENANT_URLS.mcp_refusal
    api.mcp_tools = docs_tools(a1["id"])
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
    if name == "McpServerIn":
        return {"url": "https://tools.example/mcp", "headers": {"Authorization": f"Bearer {SECRET_VALUE}"}}
    if name == "RedactionTryIn":
        return {"text": "write to a@b.example"}
    if name == "KeyPatch":
        return {"description": "rotated monthly", "tags": ["team:search"], "expires_at": None}
    if name.endswith("Patch"):
        return {"name": "renamed", "description": "d", "tags": ["env:prod", "cost-center/42"]}
    if name == "PolicyIn":
        return {
            "caps": [{"window": "day", "limit_usd": "5.25"}],
            "redaction": [{"entities": ["US_SSN"], "action": "block"}],
        }
    return {"name": "n"}


def _deletes_entity(endpoint: Endpoint) -> bool:
    return endpoint.method == "DELETE" and re.fullmatch(r"/\w+/{\w+}", endpoint.path) is not None


async def _call(world: World, endpoint: Endpoint, token: str | None) -> httpx.Response:
    spare = "spare_" if _deletes_entity(endpoint) else ""
    path = "/admin/v1" + re.sub(r"{(\w+)}", lambda m: world.ids[spare + m.group(1)], endpoint.path)
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return await world.client.request(endpoint.method, path, json=_body(endpoint, world.ids), headers=headers)


async def _dump(store: ControlStore) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, but an admin token's last use (sign-in bookkeeping, not a change)."""
    async with store.read() as conn:
        return {
            name: sorted(
                tuple(map(str, r))
                for r in await conn.execute(select(*(c for c in table.c if (name, c.name) != _LAST_USE)))
            )
            for name, table in metadata.tables.items()
        }


_LAST_USE = ("admin_tokens", "last_used_at")


def _outside_the_audit_log(dump: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    """A dump without the audit log and its head (which a denial adds to)."""
    return {name: rows for name, rows in dump.items() if name not in ("audit_log", "control_state")}


@pytest.mark.parametrize("intruder", ["org_b", "ws_a2", "org_b_viewer"])
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
    start = len(await world.store.audit_rows(None, 0, 10_000))
    refused = 0
    for endpoint in ENDPOINTS:
        rows = len(await world.store.audit_rows(None, 0, 10_000))
        response = await _call(world, endpoint, world.tokens[owner])
        where = f"{endpoint.method} {endpoint.path}"
        operators_only = endpoint.path == "/orgs" and endpoint.method == "POST"
        operators_only |= endpoint.path == "/orgs/{org_id}" and endpoint.method == "DELETE"
        if operators_only and owner != "operator":
            assert response.status_code == 403, where
            refused += 1
            await world.api.denials.settle()  # no change: only the denial, by this token (counted in one row)
            added = await world.store.audit_rows(None, rows, 10_000)
            assert {r["action"] for r in added} <= {"admin.access_denied"}, where
            continue
        assert response.status_code == endpoint.status, (where, response.text)
        assert SECRET_VALUE not in response.text
        added = [r for r in await world.store.audit_rows(None, rows, 10_000) if r["action"] != "admin.access_denied"]
        assert len(added) == (1 if endpoint.mutates else 0), where
        if added:
            assert added[0]["actor"].startswith("admin_token/") and added[0]["request_id"]
            assert SECRET_VALUE not in str(added[0])
    await world.api.close()
    denials = [r for r in await world.store.audit_rows(None, start, 10_000) if r["action"] == "admin.access_denied"]
    assert sum(r["diff"]["after"]["denials"] for r in denials) == refused
    assert (await world.store.verify_audit()).ok


async def test_a_workspace_admin_sees_only_its_workspace(world: World) -> None:
    token = world.tokens["ws_a1"]
    for endpoint in ENDPOINTS:
        response = await _call(world, endpoint, token)
        org_level = endpoint.path.startswith("/orgs/")
        org_level |= endpoint.path == "/workspaces/{workspace_id}" and endpoint.method == "DELETE"
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


async def test_the_redaction_try_shows_findings_below_the_threshold_as_such(world: World) -> None:
    headers = {"authorization": f"Bearer {world.tokens['ws_a1']}"}
    key, ws = world.ids["key_id"], world.ids["workspace_id"]
    policy = {"redaction": [{"entities": ["PERSON"], "action": "redact"}]}  # PERSON's default threshold: 50
    assert (
        await world.client.put(f"/admin/v1/workspaces/{ws}/policy", json=policy, headers=headers)
    ).status_code == 200
    text = "Dear Zorblat, thanks to Maria Schmidt for the note."
    answer = await world.client.post(f"/admin/v1/keys/{key}/redaction/try", json={"text": text}, headers=headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [(f["entity"], text[f["start"] : f["end"]], f["action"]) for f in body["findings"]] == [
        ("PERSON", "Maria Schmidt", "redact")
    ]
    # `Dear Zorblat` (a cue before one unknown word: 45) is counted, not redacted
    assert [(f["entity"], text[f["start"] : f["end"]]) for f in body["below_threshold"]] == [("PERSON", "Zorblat")]
    assert body["text"] == "Dear Zorblat, thanks to [REDACTED:PERSON] for the note."
    # at a threshold of 40 it is acted on too
    low = {"redaction": [{"entities": ["PERSON"], "action": "redact", "min_confidence": 40}]}
    assert (await world.client.put(f"/admin/v1/workspaces/{ws}/policy", json=low, headers=headers)).status_code == 200
    again = (
        await world.client.post(f"/admin/v1/keys/{key}/redaction/try", json={"text": text}, headers=headers)
    ).json()
    assert again["below_threshold"] == [] and len(again["findings"]) == 2
    await world.api.close()
    assert "a@b.example" not in str(await world.store.audit_rows(None, 0, 10_000))


# ── descriptions, tags, PATCH and DELETE ─────────────────────────────────────────────────────────


def _auth(world: World, token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {world.tokens[token]}"}


async def test_descriptions_and_tags_are_created_changed_and_audited(world: World) -> None:
    headers = _auth(world, "org_a")
    org = world.ids["org_id"]
    made = await world.client.post(
        f"/admin/v1/orgs/{org}/workspaces",
        json={"name": "w", "description": "search team", "tags": ["env:prod"]},
        headers=headers,
    )
    assert made.status_code == 201 and (made.json()["description"], made.json()["tags"]) == (
        "search team",
        ["env:prod"],
    )
    ws = made.json()["id"]
    plain = await world.client.post(f"/admin/v1/workspaces/{ws}/users", json={"name": "u"}, headers=headers)
    assert (plain.json()["description"], plain.json()["tags"]) == ("", [])
    rows = len(await world.store.audit_rows(None, 0, 10_000))
    changed = await world.client.patch(f"/admin/v1/workspaces/{ws}", json={"tags": ["a", "b/c"]}, headers=headers)
    assert changed.status_code == 200
    assert (changed.json()["name"], changed.json()["description"], changed.json()["tags"]) == (
        "w",
        "search team",
        ["a", "b/c"],
    )
    got = await world.client.get(f"/admin/v1/workspaces/{ws}", headers=headers)
    assert got.json() == changed.json()
    [row] = await world.store.audit_rows(None, rows, 10_000)
    assert (row["action"], row["target"]) == ("workspace.update", f"workspace/{ws}")
    assert row["diff"]["before"] == {"tags": ["env:prod"]} and row["diff"]["after"] == {"tags": ["a", "b/c"]}

    key = world.ids["key_id"]
    patched = await world.client.patch(
        f"/admin/v1/keys/{key}", json={"description": "ci", "expires_at": "2031-01-01T01:00:00+01:00"}, headers=headers
    )
    assert patched.status_code == 200 and patched.json()["expires_at"] == "2031-01-01T00:00:00.000000+00:00"
    assert "key_hash" not in patched.text
    [row] = await world.store.audit_rows(None, rows + 1, 10_000)
    assert (
        row["action"] == "key.update"
        and "key_hash" not in str(row)
        and set(row["diff"]["after"])
        == {
            "description",
            "expires_at",
        }
    )
    cleared = await world.client.patch(f"/admin/v1/keys/{key}", json={"expires_at": None}, headers=headers)
    assert cleared.json()["expires_at"] is None


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/orgs/{org_id}", {}, "body"),
        ("/orgs/{org_id}", {"name": None}, "name"),
        ("/workspaces/{workspace_id}", {"name": ""}, "name"),
        ("/users/{user_id}", {"description": "x" * 2001}, "description"),
        ("/users/{user_id}", {"tags": ["has space"]}, "tags.0"),
        ("/keys/{key_id}", {"tags": [f"t{i}" for i in range(33)]}, "tags"),
        ("/keys/{key_id}", {"tags": ["x" * 65]}, "tags.0"),
        ("/keys/{key_id}", {"expires_at": "2031-01-01T00:00:00"}, "expires_at"),
        ("/keys/{key_id}", {"name": "k", "secret": 1}, "secret"),
        ("/users/{user_id}", {"expires_at": None}, "expires_at"),
    ],
)
async def test_a_bad_patch_is_a_422_naming_the_field_and_changes_nothing(
    world: World, path: str, body: dict[str, Any], loc: str
) -> None:
    before = await _dump(world.store)
    url = "/admin/v1" + re.sub(r"{(\w+)}", lambda m: world.ids[m.group(1)], path)
    r = await world.client.patch(url, json=body, headers=_auth(world, "org_a"))
    assert r.status_code == 422, r.text
    assert [f["loc"] for f in r.json()["error"]["fields"]] == [loc]
    assert await _dump(world.store) == before


async def test_deleting_a_workspace_takes_everything_in_it_in_one_change(
    world: World,
    control_settings: ControlSettings,  # noqa: F811
) -> None:
    store, ids = world.store, world.ids
    a1 = await store.one(workspaces, ids["workspace_id"])
    assert a1 is not None
    key2, secret_key2 = await store.create_key(ACTOR, a1, KeyIn(name="k2"))
    for level, entity in (("workspace", a1["id"]), ("user", ids["user_id"]), ("key", key2["id"])):
        await store.set_policy(ACTOR, level, entity, ids["org_id"], PolicyIn())  # type: ignore[arg-type]
    record = {"at": "2026-11-02T00:00:00+00:00", "org_id": ids["org_id"], "workspace_id": a1["id"]}
    record |= {"user_id": None, "key_id": key2["id"], "request_id": "r1"}
    await store.insert_records(
        [
            {**record, "id": "evt_1", "trace_id": None, "run_id": None, "policy": "p", "action": "block"}
            | {"direction": "request", "entity": "US_SSN", "count": 1, "detail": "{}"}
        ],
        [
            {**record, "id": "spd_1", "model": "m", "provider": "openai", "input_tokens": 1, "output_tokens": 2}
            | {"cost_nusd": 3}
        ],
    )
    this, other_store = world.api.view, ControlStore(control_settings)  # another instance on the database
    assert this is not None
    other = ControlView(other_store)
    await other_store.open()
    await other.start()
    try:
        bearer = f"Bearer {secret_key2}".encode()
        await this.refresh()
        assert this.authenticate(bearer, None).workspace == a1["id"]
        assert other.authenticate(bearer, None).workspace == a1["id"]
        rows = len(await store.audit_rows(None, 0, 10_000))
        ws_token = _auth(world, "ws_a1")
        assert (await world.client.delete(f"/admin/v1/workspaces/{a1['id']}", headers=ws_token)).status_code == 403
        r = await world.client.delete(f"/admin/v1/workspaces/{a1['id']}", headers=_auth(world, "org_a"))
        assert r.status_code == 204, r.text
        with pytest.raises(Unauthenticated):  # at once on this instance (refreshed after the change)
            this.authenticate(bearer, None)
        for _ in range(100):  # the other instance sees it on its next poll
            try:
                other.authenticate(bearer, None)
            except Unauthenticated:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the other instance still accepts the deleted workspace's key")
        assert other.provider_credential(a1["id"], "openai") is None
        [row] = [r for r in await store.audit_rows(None, rows, 10_000) if r["action"] != "admin.access_denied"]
        assert row["action"] == "workspace.delete" and row["diff"]["after"] is None
        assert row["diff"]["before"]["removed"] == {
            "policies": 3,
            "secrets": 2,  # the provider's and the MCP server's headers
            "mcp_servers": 1,
            "admin_tokens": 2,  # its admin and its viewer
            "keys": 3,  # the world's, the spare and k2
            "users": 2,  # alice and the spare
        }
        assert SECRET_VALUE not in str(row) and secret_key2 not in str(row)
        dump = await _dump(store)
        assert a1["id"] not in str(
            {t: dump[t] for t in dump if t not in ("audit_log", "policy_events", "spend_ledger")}
        )
        assert len(dump["policy_events"]) == 1 and len(dump["spend_ledger"]) == 1  # records are kept
        # the workspace's admin token is gone with it
        assert (await world.client.get("/admin/v1/whoami", headers=ws_token)).status_code == 401
        assert (
            await world.client.get(f"/admin/v1/keys/{key2['id']}", headers=_auth(world, "org_a"))
        ).status_code == 404
        assert (await store.verify_audit()).ok
    finally:
        await other.stop()
        await other_store.close()


async def test_two_deletions_of_one_workspace_at_once_make_one_change(world: World) -> None:
    url = f"/admin/v1/workspaces/{world.ids['spare_workspace_id']}"
    rows = len(await world.store.audit_rows(None, 0, 10_000))
    answers = await asyncio.gather(*(world.client.delete(url, headers=_auth(world, "org_a")) for _ in range(2)))
    assert sorted(r.status_code for r in answers) == [204, 404]
    patched = await world.client.patch(url, json={"name": "late"}, headers=_auth(world, "org_a"))
    assert patched.status_code == 404
    assert [r["action"] for r in await world.store.audit_rows(None, rows, 10_000)] == ["workspace.delete"]


async def test_an_org_with_workspaces_is_not_deleted(world: World) -> None:
    op, org = _auth(world, "operator"), world.ids["org_id"]
    before = await _dump(world.store)
    r = await world.client.delete(f"/admin/v1/orgs/{org}", headers=op)
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    assert await _dump(world.store) == before
    assert (await world.client.delete(f"/admin/v1/orgs/{org}", headers=_auth(world, "org_a"))).status_code == 403
    # an empty one goes, with its own policy, secrets and admin tokens
    empty = world.ids["spare_org_id"]
    await world.store.set_policy(ACTOR, "org", empty, empty, PolicyIn())
    _, token = await world.store.create_admin_token(ACTOR, empty, None, "t")
    rows = len(await world.store.audit_rows(None, 0, 10_000))
    assert (await world.client.delete(f"/admin/v1/orgs/{empty}", headers=op)).status_code == 204
    [row] = [r for r in await world.store.audit_rows(None, rows, 10_000) if r["action"] != "admin.access_denied"]
    assert row["action"] == "org.delete" and row["diff"]["before"]["removed"] == {
        "policies": 1,
        "secrets": 0,
        "admin_tokens": 1,
    }
    assert (await world.client.get("/admin/v1/whoami", headers={"authorization": f"Bearer {token}"})).status_code == 401
    assert (await world.client.get(f"/admin/v1/orgs/{empty}", headers=op)).status_code == 404


async def test_deleting_a_user_revokes_its_keys(world: World) -> None:
    headers, ids = _auth(world, "org_a"), world.ids
    ws = await world.store.one(workspaces, ids["workspace_id"])
    assert ws is not None
    _, secret = await world.store.create_key(ACTOR, ws, KeyIn(name="u", user_id=ids["user_id"]))
    view = world.api.view
    assert view is not None
    await view.refresh()
    assert view.authenticate(f"Bearer {secret}".encode(), None).user == ids["user_id"]
    assert (await world.client.delete(f"/admin/v1/users/{ids['user_id']}", headers=headers)).status_code == 204
    with pytest.raises(Unauthenticated) as refused:
        view.authenticate(f"Bearer {secret}".encode(), None)
    assert refused.value.code == "revoked_api_key"
    keys = (await world.client.get(f"/admin/v1/workspaces/{ws['id']}/keys", headers=headers)).json()["data"]
    assert all(k["revoked_at"] is not None and k["user_id"] is None for k in keys if k["name"] in ("k", "u"))
    assert (await world.client.get(f"/admin/v1/users/{ids['user_id']}", headers=headers)).status_code == 404
    # and a key deleted outright stops at once too
    assert (await world.client.delete(f"/admin/v1/keys/{ids['spare_key_id']}", headers=headers)).status_code == 204
    assert (await world.client.get(f"/admin/v1/keys/{ids['spare_key_id']}", headers=headers)).status_code == 404


async def test_deleting_a_policy_leaves_the_locks_above(world: World) -> None:
    headers, ids = _auth(world, "org_a"), world.ids
    org, ws = ids["org_id"], ids["workspace_id"]
    locked = {"caps": [{"window": "day", "limit_usd": "3", "locked": True}]}
    assert (await world.client.put(f"/admin/v1/orgs/{org}/policy", json=locked, headers=headers)).status_code == 200
    own = {"caps": [{"window": "day", "limit_usd": "1"}]}
    assert (await world.client.put(f"/admin/v1/workspaces/{ws}/policy", json=own, headers=headers)).status_code == 200
    assert (await world.client.delete(f"/admin/v1/workspaces/{ws}/policy", headers=headers)).status_code == 204
    assert (await world.client.delete(f"/admin/v1/workspaces/{ws}/policy", headers=headers)).status_code == 404
    assert (await world.client.get(f"/admin/v1/workspaces/{ws}/policy", headers=headers)).json()["caps"] == []
    got = (await world.client.get(f"/admin/v1/keys/{ids['key_id']}/effective-policy", headers=headers)).json()
    assert [(c["level"], c["window"], c["limit_nusd"]) for c in got["caps"]] == [("org", "day", 3_000_000_000)]
    # the workspace admin may remove its workspace's policy, never the org's (whose lock stays)
    ws_headers = _auth(world, "ws_a1")
    assert (await world.client.delete(f"/admin/v1/orgs/{org}/policy", headers=ws_headers)).status_code == 403
    assert (await world.store.policy("org", org)) is not None


# ── roles: viewers, expiry, last use ─────────────────────────────────────────────────────────────


@pytest.mark.parametrize("viewer", ["org_a_viewer", "ws_a1_viewer"])
async def test_a_viewer_reads_its_scope_and_changes_nothing(world: World, viewer: str) -> None:
    before, version = await _dump(world.store), await world.store.version()
    seq = len(await world.store.audit_rows(None, 0, 10_000))
    refused = 0
    for endpoint in ENDPOINTS:
        response = await _call(world, endpoint, world.tokens[viewer])
        where = f"{endpoint.method} {endpoint.path} with {viewer}"
        if endpoint.mutates:
            assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden", where
            refused += 1
        elif viewer == "ws_a1_viewer" and endpoint.path.startswith("/orgs/"):
            assert response.status_code == 403, where  # the org's pages are above a workspace token
            refused += 1
        else:
            assert response.status_code == endpoint.status, (where, response.text)
        assert SECRET_VALUE not in response.text
    assert _outside_the_audit_log(await _dump(world.store)) == _outside_the_audit_log(before)
    assert await world.store.version() == version  # no change for any instance to load
    await world.api.close()
    added = await world.store.audit_rows(None, seq, 10_000)
    assert {(r["action"], r["actor"]) for r in added} == {
        ("admin.access_denied", f"admin_token/{world.token_ids[viewer]}")
    }
    assert sum(r["diff"]["after"]["denials"] for r in added) == refused


async def test_roles_and_expiry_of_admin_tokens(world: World) -> None:
    org, owner = world.ids["org_id"], _auth(world, "org_a")
    url = f"/admin/v1/orgs/{org}/admin-tokens"
    bad = await world.client.post(url, json={"name": "x", "role": "owner"}, headers=owner)
    assert bad.status_code == 422 and [f["loc"] for f in bad.json()["error"]["fields"]] == ["role"]
    bad = await world.client.post(url, json={"name": "x", "expires_at": "2031-01-01T00:00:00"}, headers=owner)
    assert bad.status_code == 422 and [f["loc"] for f in bad.json()["error"]["fields"]] == ["expires_at"]

    made = await world.client.post(
        url, json={"name": "ro", "role": "viewer", "expires_at": "2999-01-01T00:00:00Z"}, headers=owner
    )
    assert made.status_code == 201 and made.json()["role"] == "viewer"
    viewer = {"authorization": f"Bearer {made.json()['token']}"}
    me = (await world.client.get("/admin/v1/whoami", headers=viewer)).json()
    assert me == {"token_id": made.json()["id"], "org_id": org, "workspace_id": None, "role": "viewer"}
    assert (await world.client.get("/admin/v1/whoami", headers=owner)).json()["role"] == "admin"
    # a viewer mints nothing, not even another viewer
    assert (await world.client.post(url, json={"name": "v2", "role": "viewer"}, headers=viewer)).status_code == 403
    # a workspace token mints no token at all (an org-wide one least of all)
    ws = _auth(world, "ws_a1")
    assert (await world.client.post(url, json={"name": "up"}, headers=ws)).status_code == 403

    listed = (await world.client.get(url, headers=owner)).json()["data"]
    row = next(r for r in listed if r["id"] == made.json()["id"])
    assert (row["role"], row["expires_at"]) == ("viewer", "2999-01-01T00:00:00.000000+00:00")
    assert row["last_used_at"] is not None and "token_hash" not in str(listed)
    # last use is written at most once a minute per token, not on every request
    first = row["last_used_at"]
    for _ in range(3):
        assert (await world.client.get("/admin/v1/whoami", headers=viewer)).status_code == 200
    token = await world.store.one(admin_tokens, made.json()["id"])
    assert token is not None and token["last_used_at"] == first

    # past its expiry a token is refused (made in the store: the API takes any expiry)
    _, old = await world.store.create_admin_token(ACTOR, org, None, "old", "admin", "2001-01-01T00:00:00+00:00")
    expired = await world.client.get("/admin/v1/whoami", headers={"authorization": f"Bearer {old}"})
    assert expired.status_code == 401 and expired.json()["error"]["message"] == "the admin token has expired"


# ── the audit chain's verdict ────────────────────────────────────────────────────────────────────


async def test_the_audit_chain_verdict_is_told_to_every_reader_of_an_orgs_audit_without_rows(world: World) -> None:
    def bearer(name: str) -> dict[str, str]:
        return {"authorization": f"Bearer {world.tokens[name]}"}

    org_a = world.ids["org_id"]
    org_b = (await world.client.get("/admin/v1/whoami", headers=bearer("org_b_viewer"))).json()["org_id"]
    rows = len(await world.store.audit_rows(None, 0, 10_000))
    for name, org in (("operator", org_a), ("org_a", org_a), ("org_a_viewer", org_a), ("org_b_viewer", org_b)):
        got = await world.client.get(f"/admin/v1/orgs/{org}/audit/verify", headers=bearer(name))
        assert got.status_code == 200 and got.json() == {"ok": True, "rows": rows}, (name, got.text)
    # Another organization's, or a workspace token's: not its to ask.
    assert (await world.client.get(f"/admin/v1/orgs/{org_a}/audit/verify", headers=bearer("org_b"))).status_code == 404
    assert (await world.client.get(f"/admin/v1/orgs/{org_a}/audit/verify", headers=bearer("ws_a1"))).status_code == 403

    # A row of organization a edited in the database: b's viewer learns where the chain breaks, not what the row holds.
    async with world.store.engine.begin() as conn:
        await conn.execute(update(audit_log).where(audit_log.c.seq == 3).values(target="org/forged-target"))
    got = (await world.client.get(f"/admin/v1/orgs/{org_b}/audit/verify", headers=bearer("org_b_viewer"))).json()
    assert got["ok"] is False and got["first_bad_seq"] == 3 and "HMAC does not match" in got["reason"], got
    assert set(got) == {"ok", "rows", "first_bad_seq", "reason"} and "forged-target" not in str(got)
    assert org_a not in str(got)


@pytest.mark.parametrize("control_settings", ["sqlite"], indirect=True)  # its anchor file is beside the database
async def test_the_audit_chain_verdict_names_no_anchor_file(world: World) -> None:
    path, _ = world.store.settings.audit_anchor_path()
    assert path is not None
    await world.api.close()  # the denials settled and anchored
    with path.open("a") as anchors:
        anchors.write('{"seq": 1, "not": "an anchor"}\n')
    headers = {"authorization": f"Bearer {world.tokens['org_a_viewer']}"}
    got = (await world.client.get(f"/admin/v1/orgs/{world.ids['org_id']}/audit/verify", headers=headers)).json()
    assert got["ok"] is False and got["reason"].startswith("anchor line "), got
    assert str(path) not in str(got) and path.name not in str(got)


async def test_a_secret_shows_who_set_it_and_a_keyed_fingerprint_never_its_value(world: World) -> None:
    from sluicegate.control.store import secret_fingerprint

    headers = {"authorization": f"Bearer {world.tokens['ws_a1']}"}
    url = f"/admin/v1/workspaces/{world.ids['workspace_id']}/secrets"

    async def put(value: str) -> dict[str, Any]:
        answer = await world.client.put(f"{url}/anthropic", json={"value": value}, headers=headers)
        assert answer.status_code == 200, answer.text
        assert value not in answer.text
        return answer.json()

    first, again, other = await put("sk-ant-one-4711"), await put("sk-ant-one-4711"), await put("sk-ant-two-4712")
    assert first["fingerprint"] == again["fingerprint"] != other["fingerprint"]
    assert re.fullmatch(r"fp_[0-9a-f]{12}", first["fingerprint"])
    assert first["set_by"] == f"admin_token/{world.token_ids['ws_a1']}"
    listed = (await world.client.get(url, headers=headers)).json()["data"]
    assert {s["provider"]: s["fingerprint"] for s in listed}["anthropic"] == other["fingerprint"]
    assert "sk-ant-t" not in str(listed)
    # Keyed: the fingerprint of a value cannot be computed without the master key.
    assert secret_fingerprint(b"\x00" * 32, "sk-ant-two-4712") != other["fingerprint"]
    rows = str(await world.store.audit_rows(None, 0, 10_000))
    assert "sk-ant-one" not in rows and "sk-ant-two" not in rows
