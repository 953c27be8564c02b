"""Cursor pages on every list of the admin API, on SQLite and PostgreSQL: walking the pages yields each
row exactly once even while rows are added between pages, the last page says so, and a bad `limit`
or `cursor` is a 422 naming it (never a 500)."""

from __future__ import annotations

import base64
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from tests.unit.control.pg import control_settings, pg_database  # noqa: F401  (fixtures)

from sluicegate.control.admin_api import AdminApi
from sluicegate.control.audit import Actor
from sluicegate.control.schemas import KeyIn
from sluicegate.control.settings import ControlSettings
from sluicegate.control.store import ControlStore

ACTOR = Actor("test/setup")
_counter = itertools.count()


@dataclass
class World:
    client: httpx.AsyncClient
    store: ControlStore
    org: dict[str, Any]
    ws: dict[str, Any]
    other_ws: dict[str, Any]
    operator: dict[str, str]
    org_admin: dict[str, str]
    ws_admin: dict[str, str]


@pytest.fixture
async def world(control_settings: ControlSettings) -> AsyncIterator[World]:  # noqa: F811
    store = ControlStore(control_settings)
    await store.open()
    org = await store.create_org(ACTOR, "a")
    ws = await store.create_workspace(ACTOR, org["id"], "w")
    other = await store.create_workspace(ACTOR, org["id"], "other")
    tokens = [
        (await store.create_admin_token(ACTOR, None, None, "op"))[1],
        (await store.create_admin_token(ACTOR, org["id"], None, "org"))[1],
        (await store.create_admin_token(ACTOR, org["id"], ws["id"], "ws"))[1],
    ]
    auth = [{"authorization": f"Bearer {t}"} for t in tokens]
    api = AdminApi(store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://a") as client:
        yield World(client, store, org, ws, other, *auth)
    await api.close()
    await store.close()


def _record(w: World, at: str, **extra: Any) -> dict[str, Any]:
    n = next(_counter)
    return (
        {"id": f"rec_{n:06d}", "at": at, "org_id": w.org["id"], "workspace_id": w.ws["id"]}
        | {
            "user_id": None,
            "key_id": None,
            "request_id": f"req{n}",
        }
        | extra
    )


def _event(w: World, at: str) -> dict[str, Any]:
    return _record(w, at, trace_id=None, run_id=None, policy="redaction", action="masked") | {
        "direction": "request",
        "entity": "EMAIL_ADDRESS",
        "count": 1,
        "detail": "{}",
    }


def _spend(w: World, at: str) -> dict[str, Any]:
    return _record(w, at, model="mock-gpt", provider="mock", input_tokens=1, output_tokens=2, cost_nusd=3)


Adder = Callable[[World], Awaitable[None]]


async def _add_workspace(w: World) -> None:
    await w.store.create_workspace(ACTOR, w.org["id"], f"w{next(_counter)}")


async def _add_org(w: World) -> None:
    await w.store.create_org(ACTOR, f"o{next(_counter)}")


async def _add_token(w: World) -> None:
    await w.store.create_admin_token(ACTOR, w.org["id"], None, "t")


async def _add_user(w: World) -> None:
    await w.store.create_user(ACTOR, w.ws, "u")


async def _add_key(w: World) -> None:
    await w.store.create_key(ACTOR, w.ws, KeyIn(name="k"))


async def _add_audit_row(w: World) -> None:
    await w.store.create_user(ACTOR, w.other_ws, "u")  # one audit row in the org


async def _add_events(w: World) -> None:
    # Two with the same time, one newer than any before: ties break on the id.
    await w.store.insert_records([_event(w, "2026-11-02T00:00:00+00:00") for _ in range(2)], [])
    await w.store.insert_records([_event(w, f"2026-11-03T00:00:{next(_counter) % 60:02d}+00:00")], [])


async def _add_spend(w: World) -> None:
    await w.store.insert_records([], [_spend(w, "2026-11-02T00:00:00+00:00") for _ in range(2)])
    await w.store.insert_records([], [_spend(w, f"2026-11-03T00:00:{next(_counter) % 60:02d}+00:00")])


LISTS: dict[str, tuple[str, str, Adder]] = {
    # name: (path with {org}/{ws}, token, adds rows)
    "orgs": ("/orgs", "operator", _add_org),
    "workspaces": ("/orgs/{org}/workspaces", "org_admin", _add_workspace),
    "admin tokens": ("/orgs/{org}/admin-tokens", "org_admin", _add_token),
    "users": ("/workspaces/{ws}/users", "ws_admin", _add_user),
    "keys": ("/workspaces/{ws}/keys", "ws_admin", _add_key),
    "audit": ("/orgs/{org}/audit", "org_admin", _add_audit_row),
    "org events": ("/orgs/{org}/events", "org_admin", _add_events),
    "workspace events": ("/workspaces/{ws}/events", "ws_admin", _add_events),
    "org ledger": ("/orgs/{org}/ledger", "org_admin", _add_spend),
    "workspace ledger": ("/workspaces/{ws}/ledger", "ws_admin", _add_spend),
}


def _path(w: World, template: str) -> str:
    return "/admin/v1" + template.format(org=w.org["id"], ws=w.ws["id"])


def _row_id(row: dict[str, Any]) -> Any:
    return row.get("seq", row.get("id"))


async def _all(w: World, path: str, headers: dict[str, str]) -> list[Any]:
    got = await w.client.get(path, params={"limit": 1000}, headers=headers)
    assert got.status_code == 200 and not got.json()["has_more"]
    return [_row_id(r) for r in got.json()["data"]]


@pytest.mark.parametrize("name", list(LISTS))
async def test_walking_the_pages_yields_each_row_once_while_rows_are_added(world: World, name: str) -> None:
    template, who, add = LISTS[name]
    w, path, headers = world, _path(world, template), getattr(world, who)
    before = await _all(w, path, headers)
    while len(before) < 8:  # three pages of three at least
        await add(w)
        before = await _all(w, path, headers)
    seen: list[Any] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        got = await w.client.get(path, params=params, headers=headers)
        assert got.status_code == 200, got.text
        body = got.json()
        assert set(body) == {"data", "has_more", "next_cursor"}
        assert len(body["data"]) <= 3
        seen += [_row_id(r) for r in body["data"]]
        pages += 1
        if not body["has_more"]:
            assert body["next_cursor"] is None
            break
        assert len(body["data"]) == 3 and isinstance(body["next_cursor"], str)
        cursor = body["next_cursor"]
        await add(w)  # rows arrive between pages
        assert pages < 100
    assert len(seen) == len(set(seen)), "a row came twice"
    assert set(before) <= set(seen), "a row present from the start was skipped"
    after = await _all(w, path, headers)
    assert seen == [r for r in after if r in set(seen)], "the pages are not in the list's order"


async def test_the_orders_are_the_documented_ones(world: World) -> None:
    w = world
    for _ in range(2):
        await _add_events(w)
        await _add_spend(w)
        await _add_user(w)
    for template, key in (("/orgs/{org}/events", "at"), ("/workspaces/{ws}/ledger", "at")):
        rows = (await w.client.get(_path(w, template), headers=w.org_admin)).json()["data"]
        assert [(r[key], r["id"]) for r in rows] == sorted(((r[key], r["id"]) for r in rows), reverse=True)
    users = (await w.client.get(_path(w, "/workspaces/{ws}/users"), headers=w.org_admin)).json()["data"]
    assert [(r["created_at"], r["id"]) for r in users] == sorted((r["created_at"], r["id"]) for r in users)
    audit = (await w.client.get(_path(w, "/orgs/{org}/audit"), headers=w.org_admin)).json()["data"]
    assert [r["seq"] for r in audit] == sorted(r["seq"] for r in audit)


async def test_ledger_filters_and_scope(world: World) -> None:
    w = world
    mine = _spend(w, "2026-11-05T10:00:00+00:00") | {"model": "m1", "key_id": "key_1"}
    theirs = _spend(w, "2026-11-05T11:00:00+00:00") | {"workspace_id": w.other_ws["id"], "model": "m2"}
    early = _spend(w, "2026-10-01T00:00:00+00:00") | {"model": "m1"}
    await w.store.insert_records([], [mine, theirs, early])

    async def ids(template: str, headers: dict[str, str], **params: str) -> list[str]:
        got = await w.client.get(_path(w, template), params=params, headers=headers)
        assert got.status_code == 200, got.text
        return [r["id"] for r in got.json()["data"]]

    assert await ids("/orgs/{org}/ledger", w.org_admin) == [theirs["id"], mine["id"], early["id"]]
    assert await ids("/workspaces/{ws}/ledger", w.ws_admin) == [mine["id"], early["id"]]
    assert await ids("/orgs/{org}/ledger", w.org_admin, model="m2") == [theirs["id"]]
    assert await ids("/orgs/{org}/ledger", w.org_admin, key="key_1") == [mine["id"]]
    assert await ids("/orgs/{org}/ledger", w.org_admin, since="2026-11-01T00:00:00Z") == [theirs["id"], mine["id"]]
    assert await ids("/orgs/{org}/ledger", w.org_admin, until="2026-11-05T11:00:00Z") == [mine["id"], early["id"]]
    # A workspace token reads neither the org's ledger nor another workspace's.
    assert (await w.client.get(_path(w, "/orgs/{org}/ledger"), headers=w.ws_admin)).status_code == 403
    other = f"/admin/v1/workspaces/{w.other_ws['id']}/ledger"
    assert (await w.client.get(other, headers=w.ws_admin)).status_code == 404
    # …nor another workspace's rows through a filter on its own.
    assert await ids("/workspaces/{ws}/ledger", w.ws_admin, workspace=w.other_ws["id"]) == [mine["id"], early["id"]]


async def test_after_seq_still_pages_the_audit_log(world: World) -> None:
    w = world
    for _ in range(3):
        await _add_audit_row(w)
    path = _path(w, "/orgs/{org}/audit")
    every = [r["seq"] for r in (await w.client.get(path, headers=w.org_admin)).json()["data"]]
    later = await w.client.get(path, params={"after_seq": every[1], "limit": 2}, headers=w.org_admin)
    assert [r["seq"] for r in later.json()["data"]] == every[2:4] and later.json()["has_more"] == (len(every) > 4)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize("name", list(LISTS))
async def test_bad_limits_and_cursors_are_422s_naming_them(world: World, name: str) -> None:
    template, who, add = LISTS[name]
    w, path, headers = world, _path(world, template), getattr(world, who)
    for _ in range(2):
        await add(w)
    first = (await w.client.get(path, params={"limit": 1}, headers=headers)).json()
    assert first["has_more"] and first["next_cursor"]
    for limit in ("0", "1001", "-1", "x", "1.5", ""):
        got = await w.client.get(path, params={"limit": limit}, headers=headers)
        assert got.status_code == 422 and got.json()["error"]["fields"][0]["loc"] == "limit", limit
    assert (await w.client.get(path, params={"limit": "1000"}, headers=headers)).status_code == 200
    # The cursor of another list, and cursors that are not cursors at all.
    other = "/orgs/{org}/admin-tokens" if name != "admin tokens" else "/orgs/{org}/workspaces"
    foreign = (await w.client.get(_path(w, other), params={"limit": 1}, headers=w.org_admin)).json()["next_cursor"]
    decoded = orjson.loads(base64.urlsafe_b64decode(first["next_cursor"] + "=="))
    bad = [
        foreign,
        "",
        "!!!",
        "not a cursor",
        _b64(b"\xff\xfe"),
        _b64(b"{}"),
        _b64(b"[]"),
        _b64(orjson.dumps([decoded[0]])),
        _b64(orjson.dumps([decoded[0], *decoded[1:], "extra"])),
        _b64(orjson.dumps([decoded[0], *([None] * (len(decoded) - 1))])),
        _b64(orjson.dumps([decoded[0], *([True] * (len(decoded) - 1))])),
        _b64(orjson.dumps([decoded[0], *([2**63] * (len(decoded) - 1))])),
        _b64(f'["{decoded[0]}"'.encode() + b", 1180591620717411303424" * (len(decoded) - 1) + b"]"),
        _b64(orjson.dumps([decoded[0], *([-1] * (len(decoded) - 1))])),
        _b64(orjson.dumps([decoded[0], *(["a\x00b"] * (len(decoded) - 1))])),
        _b64(orjson.dumps([decoded[0], *(["x" * 300] * (len(decoded) - 1))])),
        "A" * 1001,
    ]
    for cursor in bad:
        assert cursor is not None
        got = await w.client.get(path, params={"cursor": cursor}, headers=headers)
        assert got.status_code == 422, (cursor, got.text)
        assert got.json()["error"]["fields"] == [
            {"loc": "cursor", "msg": "not a cursor of this list (pass next_cursor back as it came)"}
        ]
