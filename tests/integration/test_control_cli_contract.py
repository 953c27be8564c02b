"""`sluicegate admin …` verbs that need this round's admin API contract (docs: CONTRACT items 1-6):
descriptions and tags, PATCH and DELETE of orgs, workspaces, users, keys and policies, key rotation,
admin token roles and expiry, the spend ledger list, and lists paged with a cursor.

These tests need the contract endpoints: on a tree without them they fail (404 or 422 from the
API); they pass once the admin API implements the contract."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import Server, gateway_config, start_gateway
from tests.integration.test_control_cli import _cli, admin, as_json, fields, ok, table
from tests.integration.test_control_policies import MODEL
from tests.unit.control.pg import MASTER_KEY, control_settings, pg_database  # noqa: F401  (fixtures)

from sluicegate.control.settings import ControlSettings


@pytest.fixture
def operator_gateway(
    mock_server: Server,
    tmp_path: Path,
    control_settings: ControlSettings,  # noqa: F811
) -> Iterator[tuple[str, dict[str, Any]]]:
    """A gateway on a control plane made by `sluicegate admin bootstrap`; yields (url, what it made,
    with `operator_admin_token` and `gateway_key`)."""
    made = as_json(_cli(control_settings, "admin", "--json", "bootstrap", "--org", "acme"))
    control = (
        f'\n[control]\nenabled = true\ndatabase_url = "{control_settings.database_url}"\npoll_interval_s = 0.25\n'
        '[spend.price_overrides.mock-gpt]\ninput_usd_per_mtok = "1"\noutput_usd_per_mtok = "2"\n'
    )
    config = gateway_config(tmp_path / "gw.toml", mock_server.url, control)
    with start_gateway(config, {"SLUICEGATE_CONTROL__MASTER_KEY": MASTER_KEY}) as gw:
        yield gw.url, made


def test_update_and_delete_entities(operator_gateway: tuple[str, dict[str, Any]]) -> None:
    url, made = operator_gateway
    token = made["operator_admin_token"]
    described = ("--description", "the beta org", "--tags", "a,b")
    org = as_json(admin(url, token, "--json", "org", "create", "beta", *described))
    assert (org["description"], org["tags"]) == ("the beta org", ["a", "b"])
    listed = table(ok(admin(url, token, "org", "list")))
    assert next(o for o in listed if o["id"] == org["id"])["tags"] == "a,b"
    renamed = fields(ok(admin(url, token, "org", "update", org["id"], "--name", "gamma", "--tags", "")))
    assert (renamed["name"], renamed["tags"], renamed["description"]) == ("gamma", "-", "the beta org")

    ws = as_json(admin(url, token, "--json", "workspace", "create", "--org", org["id"], "w1", "--tags", "team:x"))
    busy = admin(url, token, "org", "delete", org["id"])
    assert busy.returncode == 1 and "conflict" in busy.stderr
    assert (
        as_json(admin(url, token, "--json", "workspace", "update", ws["id"], "--description", "d"))["description"]
        == "d"
    )
    user = as_json(admin(url, token, "--json", "user", "create", "--workspace", ws["id"], "bob"))
    assert fields(ok(admin(url, token, "user", "update", user["id"], "--name", "robert")))["name"] == "robert"
    made_key = as_json(admin(url, token, "--json", "key", "create", "--workspace", ws["id"], "--user", user["id"]))
    expiring = as_json(
        admin(url, token, "--json", "key", "update", made_key["id"], "--expires-at", "2999-01-01T00:00:00Z")
    )
    assert expiring["expires_at"].startswith("2999-01-01")
    cleared = as_json(admin(url, token, "--json", "key", "update", made_key["id"], "--expires-at", "none"))
    assert cleared["expires_at"] is None
    assert ok(admin(url, token, "user", "delete", user["id"])).strip() == "user delete: done"
    assert as_json(admin(url, token, "--json", "key", "get", made_key["id"]))["revoked_at"]  # the user's keys go too
    assert ok(admin(url, token, "key", "delete", made_key["id"])).strip() == "key delete: done"
    missing = admin(url, token, "key", "get", made_key["id"])
    assert missing.returncode == 1 and "not_found" in missing.stderr
    assert ok(admin(url, token, "workspace", "delete", ws["id"])).strip() == "workspace delete: done"
    assert ok(admin(url, token, "org", "delete", org["id"])).strip() == "org delete: done"
    assert org["id"] not in ok(admin(url, token, "org", "list"))
    bad = admin(url, token, "org", "update", made["org"]["id"], "--tags", "no spaces allowed")
    assert bad.returncode == 1 and "  tags" in bad.stderr


def test_key_rotation_keeps_the_old_key_for_the_overlap(operator_gateway: tuple[str, dict[str, Any]]) -> None:
    url, made = operator_gateway
    token, old_key, old_id = made["operator_admin_token"], made["gateway_key"], made["key"]["id"]
    rotated = ok(admin(url, token, "key", "rotate", old_id, "--overlap", "30m"))
    row_part, new_key = rotated.rsplit("key (shown once): ", 1)
    new_key, shown = new_key.strip(), fields(row_part)
    assert new_key.startswith("sg-") and new_key not in row_part and shown["replaces"] == old_id
    assert shown["old_key_expires_at"] != "-"
    chat = {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    for key in (old_key, new_key):
        r = httpx.post(f"{url}/v1/chat/completions", json=chat, headers={"authorization": f"Bearer {key}"})
        assert r.status_code == 200
    now = as_json(admin(url, token, "--json", "key", "rotate", shown["id"], "--overlap", "0s", "--name", "next"))
    assert now["replaces"] == shown["id"] and now["name"] == "next" and now["key"].startswith("sg-")
    deadline = time.monotonic() + 5
    while (
        httpx.post(f"{url}/v1/chat/completions", json=chat, headers={"authorization": f"Bearer {new_key}"}).status_code
        != 401
    ):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert admin(url, token, "key", "rotate", old_id, "--overlap", "forever").returncode == 2
    too_long = admin(url, token, "key", "rotate", now["id"], "--overlap", "31d")
    assert too_long.returncode == 1 and "  overlap_s" in too_long.stderr


def test_viewer_tokens_read_and_are_refused_changes(operator_gateway: tuple[str, dict[str, Any]]) -> None:
    url, made = operator_gateway
    token, org = made["operator_admin_token"], made["org"]["id"]
    created = ok(
        admin(url, token, "token", "create", "--org", org, "--role", "viewer", "--expires-at", "2999-01-01T00:00:00Z")
    )
    viewer = created.rsplit("token (shown once): ", 1)[1].strip()
    assert fields(created)["role"] == "viewer"
    me = fields(ok(admin(url, viewer, "whoami")))
    assert (me["org_id"], me["role"]) == (org, "viewer")
    assert [w["name"] for w in table(ok(admin(url, viewer, "workspace", "list")))] == ["default"]
    refused = admin(url, viewer, "workspace", "create", "more")
    assert refused.returncode == 1 and "forbidden" in refused.stderr and viewer not in refused.stderr
    tokens = table(ok(admin(url, token, "token", "list", "--org", org)))
    assert {t["role"] for t in tokens} >= {"viewer"} and all("expires_at" in t for t in tokens)
    ws = made["workspace"]["id"]
    policy = '{"caps": [{"window": "day", "limit_usd": "1"}]}'
    ok(admin(url, token, "policy", "set", "--level", "workspace", "--id", ws, "--body", policy))
    deleted = ok(admin(url, token, "policy", "delete", "--level", "workspace", "--id", ws))
    assert deleted.strip() == "policy delete: done"
    assert as_json(admin(url, token, "--json", "policy", "get", "--level", "workspace", "--id", ws))["caps"] == []


def test_ledger_list_and_lists_that_span_pages(operator_gateway: tuple[str, dict[str, Any]]) -> None:
    url, made = operator_gateway
    token, ws = made["operator_admin_token"], made["workspace"]["id"]
    chat = {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    auth = {"authorization": f"Bearer {made['gateway_key']}"}
    cap = '{"caps": [{"window": "month", "limit_usd": "100"}]}'  # a cap: every call priced and settled
    ok(admin(url, token, "policy", "set", "--level", "workspace", "--id", ws, "--body", cap))
    time.sleep(0.6)  # the view reloads within a poll interval
    for _ in range(3):
        r = httpx.post(f"{url}/v1/chat/completions", json=chat, headers=auth)
        assert r.status_code == 200
    deadline = time.monotonic() + 5
    while len(rows := table(ok(admin(url, token, "ledger", "list", "--workspace", ws)))) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert {(r["workspace_id"], r["cost_usd"]) for r in rows} == {(ws, "$0.000021")}  # 1 in, 10 out: 21,000 nUSD
    org_rows = as_json(admin(url, token, "--json", "ledger", "list", "--org", made["org"]["id"], "--limit", "2"))
    assert len(org_rows["data"]) == 2 and org_rows["has_more"] is True

    # more rows than one page holds (1000): the CLI follows the cursor up to --limit
    with httpx.Client(base_url=f"{url}/admin/v1", headers={"authorization": f"Bearer {token}"}) as client:
        for i in range(1004):
            assert client.post(f"/workspaces/{ws}/users", json={"name": f"u{i}"}).status_code == 201
    some = as_json(admin(url, token, "--json", "user", "list", "--workspace", ws, "--limit", "1002"))
    assert len({u["id"] for u in some["data"]}) == 1002 and some["has_more"] is True
    every = as_json(admin(url, token, "--json", "user", "list", "--workspace", ws, "--limit", "5000"))
    assert len({u["id"] for u in every["data"]}) == 1004 and every["has_more"] is False
