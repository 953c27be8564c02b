"""Key rotation (`POST /admin/v1/keys/{key_id}/rotate`): a new key in the old one's place, the old one
kept for an overlap, then refused; one audit row naming both ids and never a key value."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import Server, start_gateway
from tests.integration.test_control_gateway import CHAT, _config, _env, _seed
from tests.unit.control.pg import MASTER_KEY, control_settings, pg_database  # noqa: F401  (fixtures)

from sluicegate.control.admin_api import AdminApi
from sluicegate.control.audit import Actor
from sluicegate.control.schemas import KeyIn
from sluicegate.control.settings import ControlSettings
from sluicegate.control.store import ControlStore
from sluicegate.control.view import ControlView

ACTOR = Actor("test/setup")


Admin = tuple[httpx.AsyncClient, ControlStore, dict[str, Any]]


@pytest.fixture
async def admin(control_settings: ControlSettings) -> AsyncIterator[Admin]:  # noqa: F811
    store = ControlStore(control_settings)
    await store.open()
    org = await store.create_org(ACTOR, "a")
    ws = await store.create_workspace(ACTOR, org["id"], "w")
    user = await store.create_user(ACTOR, ws, "alice")
    _, token = await store.create_admin_token(ACTOR, org["id"], ws["id"], "ws admin")
    view = ControlView(store)
    await view.refresh()
    api = AdminApi(store, view)
    headers = {"authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://a", headers=headers) as c:
        yield c, store, {"org": org, "ws": ws, "user": user, "view": view}
    await api.close()
    await store.close()


async def test_rotation_keeps_workspace_user_and_name_and_writes_one_audit_row(
    admin: Admin,
) -> None:
    client, store, w = admin
    old, old_value = await store.create_key(ACTOR, w["ws"], KeyIn(name="app", user_id=w["user"]["id"]))
    seq = len(await store.audit_rows(None, 0, 10_000))
    before = datetime.now(UTC)
    made = await client.post(f"/admin/v1/keys/{old['id']}/rotate", json={"overlap_s": 3600})
    assert made.status_code == 201, made.text
    new = made.json()
    assert new["replaces"] == old["id"] and new["id"] != old["id"] and new["key"].startswith("sg-")
    assert (new["name"], new["user_id"], new["workspace_id"]) == ("app", w["user"]["id"], w["ws"]["id"])
    ends = datetime.fromisoformat(new["old_key_expires_at"])
    assert before + timedelta(seconds=3600) <= ends <= datetime.now(UTC) + timedelta(seconds=3600)
    got = (await client.get(f"/admin/v1/keys/{old['id']}")).json()
    assert got["expires_at"] == new["old_key_expires_at"] and got["revoked_at"] is None
    added = await store.audit_rows(None, seq, 10_000)
    assert [r["action"] for r in added] == ["key.rotate"]
    diff = added[0]["diff"]
    assert diff["after"] == {"key_id": old["id"], "expires_at": new["old_key_expires_at"], "new_key_id": new["id"]}
    assert new["key"] not in str(added) and old_value not in str(added)
    # Both keys work during the overlap, each as itself.
    view: ControlView = w["view"]
    assert view.authenticate(f"Bearer {old_value}".encode(), None).key_name == old["id"]
    assert view.authenticate(f"Bearer {new['key']}".encode(), None).key_name == new["id"]
    # A new name may be given.
    renamed = await client.post(f"/admin/v1/keys/{new['id']}/rotate", json={"overlap_s": 0, "name": "app v3"})
    assert renamed.status_code == 201 and renamed.json()["name"] == "app v3"


async def test_the_overlap_never_extends_an_earlier_expiry(
    admin: Admin,
) -> None:
    client, store, w = admin
    soon = datetime.now(UTC) + timedelta(minutes=5)
    old, _ = await store.create_key(ACTOR, w["ws"], KeyIn(name="app", expires_at=soon))
    made = await client.post(f"/admin/v1/keys/{old['id']}/rotate", json={})  # default overlap: a day
    assert made.status_code == 201
    assert datetime.fromisoformat(made.json()["old_key_expires_at"]) == soon
    assert made.json()["expires_at"] is None


async def test_a_revoked_or_expired_key_is_not_rotated(
    admin: Admin,
) -> None:
    client, store, w = admin
    revoked, _ = await store.create_key(ACTOR, w["ws"], KeyIn(name="r"))
    await store.revoke_key(ACTOR, revoked)
    expired, _ = await store.create_key(ACTOR, w["ws"], KeyIn(name="e", expires_at=datetime(2000, 1, 1, tzinfo=UTC)))
    keys_before = len((await client.get(f"/admin/v1/workspaces/{w['ws']['id']}/keys")).json()["data"])
    seq = len(await store.audit_rows(None, 0, 10_000))
    for key, why in ((revoked, "revoked"), (expired, "expired")):
        refused = await client.post(f"/admin/v1/keys/{key['id']}/rotate", json={"overlap_s": 60})
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "conflict"
        assert why in refused.json()["error"]["message"]
    assert len((await client.get(f"/admin/v1/workspaces/{w['ws']['id']}/keys")).json()["data"]) == keys_before
    assert await store.audit_rows(None, seq, 10_000) == []


@pytest.mark.parametrize("body", [{"overlap_s": -1}, {"overlap_s": 2592001}, {"overlap_s": "x"}, {"name": ""}])
async def test_rotation_bodies_are_validated(admin: Admin, body: dict[str, Any]) -> None:
    client, store, w = admin
    key, _ = await store.create_key(ACTOR, w["ws"], KeyIn(name="k"))
    refused = await client.post(f"/admin/v1/keys/{key['id']}/rotate", json=body)
    assert refused.status_code == 422
    assert refused.json()["error"]["fields"][0]["loc"] == next(iter(body))


def test_after_rotation_both_keys_work_then_only_the_new_one(mock_server: Server, tmp_path: Path) -> None:
    import openai

    settings = ControlSettings(enabled=True, database_url=f"sqlite:///{tmp_path / 'c.db'}", master_key=MASTER_KEY)
    seed = _seed(settings)
    admin = {"authorization": f"Bearer {seed['token']}"}
    with start_gateway(_config(tmp_path, mock_server.url, settings), _env()) as gw:
        made = httpx.post(f"{gw.url}/admin/v1/keys/{seed['key_id']}/rotate", json={"overlap_s": 2}, headers=admin)
        assert made.status_code == 201, made.text
        ends = datetime.fromisoformat(made.json()["old_key_expires_at"])
        old = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=seed["key"], max_retries=0)
        new = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=made.json()["key"], max_retries=0)
        with old, new:
            assert old.chat.completions.create(**CHAT).choices[0].message.content
            assert new.chat.completions.create(**CHAT).choices[0].message.content
            deadline = time.monotonic() + 10
            while True:  # the old key is refused once the overlap ends, never before
                try:
                    old.chat.completions.create(**CHAT)
                except openai.AuthenticationError as exc:
                    assert datetime.now(UTC) >= ends
                    assert exc.status_code == 401 and exc.code == "expired_api_key"
                    assert isinstance(exc.body, dict) and exc.body["type"] == "authentication_error"
                    break
                assert time.monotonic() < deadline, "the old key still works long after the overlap"
                time.sleep(0.05)
            assert new.chat.completions.create(**CHAT).choices[0].message.content
