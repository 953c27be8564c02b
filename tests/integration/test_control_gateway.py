"""The control plane in running gateways: keys from the database, a revocation reaching another
instance within a second, 401s in each SDK's format, first-start bootstrap, and no plaintext key or
secret in the database file or in any log line."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import GATEWAY_KEY, Server, gateway_config, start_gateway, stop_process
from tests.unit.control.pg import MASTER_KEY, control_settings, pg_database  # noqa: F401  (fixtures)

from sluicegate.control.audit import Actor
from sluicegate.control.schemas import KeyIn
from sluicegate.control.settings import ControlSettings
from sluicegate.control.store import ControlStore

CHAT = {"model": "mock-gpt", "messages": [{"role": "user", "content": "Hello"}]}
MESSAGES = {"model": "mock-claude", "max_tokens": 16, "messages": [{"role": "user", "content": "Hello"}]}


def _seed(settings: ControlSettings) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        store = ControlStore(settings)
        await store.open()
        try:
            actor = Actor("test/seed")
            org = await store.create_org(actor, "acme")
            ws = await store.create_workspace(actor, org["id"], "prod")
            key_row, key = await store.create_key(actor, ws, KeyIn(name="app"))
            _, token = await store.create_admin_token(actor, org["id"], None, "admin")
            return {"org": org, "ws": ws, "key_id": key_row["id"], "key": key, "token": token}
        finally:
            await store.close()

    return asyncio.run(run())


def _config(tmp_path: Path, mock_url: str, settings: ControlSettings) -> Path:
    extra = f'\n[control]\nenabled = true\ndatabase_url = "{settings.database_url}"\npoll_interval_s = 0.25\n'
    return gateway_config(tmp_path / "gw.toml", mock_url, extra)


def _env() -> dict[str, str]:
    return {"SLUICEGATE_CONTROL__MASTER_KEY": MASTER_KEY}


@pytest.fixture
def two_gateways(
    mock_server: Server,
    tmp_path: Path,
    control_settings: ControlSettings,  # noqa: F811
) -> Iterator[tuple[Server, Server, dict[str, Any]]]:
    seed = _seed(control_settings)
    config = _config(tmp_path, mock_server.url, control_settings)
    with start_gateway(config, _env()) as one, start_gateway(config, _env()) as two:
        yield one, two, seed


def test_a_revocation_reaches_the_other_instance_within_a_second(
    two_gateways: tuple[Server, Server, dict[str, Any]],
) -> None:
    one, two, seed = two_gateways
    auth = {"authorization": f"Bearer {seed['key']}"}
    for gw in (one, two):
        assert httpx.post(f"{gw.url}/v1/chat/completions", json=CHAT, headers=auth).status_code == 200
        # the config file's key keeps working alongside the database's
        config_key = {"authorization": f"Bearer {GATEWAY_KEY}"}
        assert httpx.post(f"{gw.url}/v1/chat/completions", json=CHAT, headers=config_key).status_code == 200
    admin = {"authorization": f"Bearer {seed['token']}"}
    revoked = httpx.post(f"{one.url}/admin/v1/keys/{seed['key_id']}/revoke", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    started = time.monotonic()
    while True:
        status = httpx.post(f"{two.url}/v1/chat/completions", json=CHAT, headers=auth).status_code
        elapsed = time.monotonic() - started
        if status == 401:
            break
        assert elapsed < 1.0, "the other instance still accepts the revoked key after a second"
        time.sleep(0.02)
    assert elapsed < 1.0
    # 401 in each caller's format
    openai_body = httpx.post(f"{two.url}/v1/chat/completions", json=CHAT, headers=auth).json()
    assert openai_body["error"]["code"] == "revoked_api_key" and openai_body["error"]["type"] == "authentication_error"
    anthropic = httpx.post(
        f"{two.url}/v1/messages", json=MESSAGES, headers={"x-api-key": seed["key"], "anthropic-version": "2023-06-01"}
    )
    assert anthropic.status_code == 401
    assert anthropic.json()["type"] == "error" and anthropic.json()["error"]["type"] == "authentication_error"


def test_a_deleted_workspaces_key_is_refused_at_once_on_every_instance(
    two_gateways: tuple[Server, Server, dict[str, Any]],
) -> None:
    import openai

    one, two, seed = two_gateways
    clients = [openai.OpenAI(base_url=f"{gw.url}/v1", api_key=seed["key"], max_retries=0) for gw in (one, two)]
    try:
        for client in clients:
            assert client.chat.completions.create(**CHAT).choices[0].message.content
        admin = {"authorization": f"Bearer {seed['token']}"}
        deleted = httpx.delete(f"{one.url}/admin/v1/workspaces/{seed['ws']['id']}", headers=admin)
        assert deleted.status_code == 204, deleted.text
        with pytest.raises(openai.AuthenticationError) as caught:  # this instance: the very next call
            clients[0].chat.completions.create(**CHAT)
        assert caught.value.status_code == 401 and caught.value.code == "invalid_api_key"
        assert isinstance(caught.value.body, dict) and caught.value.body["type"] == "authentication_error"
        started = time.monotonic()
        while True:  # the other instance: within a second
            try:
                clients[1].chat.completions.create(**CHAT)
            except openai.AuthenticationError as exc:
                assert exc.status_code == 401 and exc.code == "invalid_api_key"
                break
            assert time.monotonic() - started < 1.0, "the other instance still accepts the deleted workspace's key"
            time.sleep(0.02)
        gone = httpx.get(f"{two.url}/admin/v1/workspaces/{seed['ws']['id']}", headers=admin)
        assert gone.status_code == 404
    finally:
        for client in clients:
            client.close()


def test_sdks_get_their_usual_error_for_an_expired_key(mock_server: Server, tmp_path: Path) -> None:
    import anthropic
    import openai

    settings = ControlSettings(enabled=True, database_url=f"sqlite:///{tmp_path / 'c.db'}", master_key=MASTER_KEY)
    seed = _seed(settings)

    async def expired_key() -> str:
        store = ControlStore(settings)
        await store.open()
        try:
            ws = seed["ws"]
            when = "2000-01-01T00:00:00Z"
            return (await store.create_key(Actor("t"), ws, KeyIn.model_validate({"name": "old", "expires_at": when})))[
                1
            ]
        finally:
            await store.close()

    key = asyncio.run(expired_key())
    with start_gateway(_config(tmp_path, mock_server.url, settings), _env()) as gw:
        with (
            openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0) as oa,
            pytest.raises(openai.AuthenticationError) as caught,
        ):
            oa.chat.completions.create(**CHAT)
        assert caught.value.status_code == 401
        with (
            anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0) as an,
            pytest.raises(anthropic.AuthenticationError),
        ):
            an.messages.create(**MESSAGES)


def test_no_plaintext_key_or_secret_in_the_database_file_or_the_logs(mock_server: Server, tmp_path: Path) -> None:
    settings = ControlSettings(enabled=True, database_url=f"sqlite:///{tmp_path / 'c.db'}", master_key=MASTER_KEY)
    seed = _seed(settings)
    secret = "sk-live-PLAINTEXT-" + "s" * 24
    admin = {"authorization": f"Bearer {seed['token']}"}
    with start_gateway(_config(tmp_path, mock_server.url, settings), _env()) as gw:
        ws = seed["ws"]["id"]
        put = httpx.put(f"{gw.url}/admin/v1/workspaces/{ws}/secrets/openai", json={"value": secret}, headers=admin)
        assert put.status_code == 200 and secret not in put.text
        bad = httpx.put(
            f"{gw.url}/admin/v1/workspaces/{ws}/secrets/openai", json={"value": secret, "x": 1}, headers=admin
        )
        assert bad.status_code == 422 and secret not in bad.text
        made = httpx.post(f"{gw.url}/admin/v1/workspaces/{ws}/keys", json={"name": "new"}, headers=admin)
        new_key = made.json()["key"]
        listed = httpx.get(f"{gw.url}/admin/v1/workspaces/{ws}/keys", headers=admin).text
        assert (
            new_key not in listed
            and secret not in httpx.get(f"{gw.url}/admin/v1/orgs/{seed['org']['id']}/audit", headers=admin).text
        )
        for key in (new_key, seed["key"], "sg-wrong-" + "w" * 30):
            httpx.post(f"{gw.url}/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {key}"})
        stop_process(gw.proc)
        assert gw.proc.stdout is not None
        logs = gw.proc.stdout.read().decode(errors="replace")
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("c.db*"))
    for plain in (secret, new_key, seed["key"], seed["token"]):
        assert plain.encode() not in stored
        assert plain not in logs


def test_first_start_bootstraps_and_prints_the_key_once(mock_server: Server, tmp_path: Path) -> None:
    db = tmp_path / "first.db"
    config = gateway_config(
        tmp_path / "gw.toml", mock_server.url, f'\n[control]\nenabled = true\ndatabase_url = "sqlite:///{db}"\n'
    )
    with start_gateway(config) as gw:
        first = _output_after_stop(gw)
    key_line = next(line for line in first.splitlines() if line.startswith("gateway key"))
    key = key_line.rsplit(" ", 1)[1]
    assert key.startswith("sg-") and (tmp_path / "first.db.key").stat().st_mode & 0o077 == 0
    with start_gateway(config) as gw:
        ok = httpx.post(f"{gw.url}/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {key}"})
        assert ok.status_code == 200
        second = _output_after_stop(gw)
    assert "shown once" not in second and key not in second


def _output_after_stop(server: Server) -> str:
    stop_process(server.proc)
    assert server.proc.stdout is not None
    return server.proc.stdout.read().decode(errors="replace")
