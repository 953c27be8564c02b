"""Master key rotation on SQLite and PostgreSQL: with the old key retired beside a new current one,
every secret still opens and new ones are sealed under the new key; `sluicegate admin reseal` seals
them all under the current key in one change (one audit row, counts only), after which the old key
can go. A secret under a key outside the ring still fails closed."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from tests.conftest import Server, provider_saw, start_gateway
from tests.integration.test_control_cli import _cli
from tests.integration.test_control_gateway import CHAT, _config, _seed
from tests.unit.control.pg import MASTER_KEY, control_settings, pg_database  # noqa: F401  (fixtures)

from sluicegate.control.audit import Actor
from sluicegate.control.crypto import MasterKey, MasterKeyError, generate_master_key, sealed_key_id
from sluicegate.control.models import secrets, state
from sluicegate.control.schemas import SecretIn
from sluicegate.control.settings import ControlSettings
from sluicegate.control.store import ControlStore, secret_context
from sluicegate.control.system_events import on_open
from sluicegate.control.view import ControlView
from sluicegate.errors import SecretUnavailable

ACTOR = Actor("test/setup")
NEW_KEY = "bmV3LW1hc3Rlci1rZXktbmV3LW1hc3Rlci1rZXktISE="  # 32 bytes, tests only
OLD_ID, NEW_ID = MasterKey(MASTER_KEY).key_id, MasterKey(NEW_KEY).key_id
VALUES = {"org": "sk-org-" + "o" * 24, "workspace": "sk-ws-" + "w" * 24}


def _with(settings: ControlSettings, **changes: Any) -> ControlSettings:
    """The same database with other keys."""
    return ControlSettings(enabled=True, database_url=settings.database_url, poll_interval_s=0.05, **changes)


async def _opened(settings: ControlSettings) -> ControlStore:
    store = ControlStore(settings)
    await on_open(store, await store.open())  # as a start does: the audit key's checks included
    return store


async def _sealed_ids(store: ControlStore) -> list[str]:
    async with store.read() as conn:
        return sorted(sealed_key_id(c) for c in (await conn.execute(select(secrets.c.ciphertext))).scalars())


@pytest.fixture
async def sealed_under_old(control_settings: ControlSettings) -> AsyncIterator[tuple[ControlSettings, dict[str, Any]]]:  # noqa: F811
    """Secrets at the org and a workspace, sealed under the old key (`MASTER_KEY`)."""
    store = await _opened(control_settings)
    org = await store.create_org(ACTOR, "a")
    ws = await store.create_workspace(ACTOR, org["id"], "w")
    await store.set_secret(ACTOR, "org", org["id"], org["id"], "openai", SecretIn(value=VALUES["org"]))
    await store.set_secret(ACTOR, "workspace", ws["id"], org["id"], "openai", SecretIn(value=VALUES["workspace"]))
    await store.close()
    yield control_settings, {"org": org, "ws": ws}


async def test_a_retired_key_still_opens_and_reseal_moves_everything_to_the_current_key(
    sealed_under_old: tuple[ControlSettings, dict[str, Any]],
) -> None:
    settings, ids = sealed_under_old
    org, ws = ids["org"]["id"], ids["ws"]["id"]
    # The new key alone opens nothing sealed: the start is refused, as before rings.
    alone = ControlStore(_with(settings, master_key=NEW_KEY))
    with pytest.raises(MasterKeyError, match=OLD_ID):
        await alone.open()
    await alone.close()

    ring = _with(settings, master_key=NEW_KEY, master_retired_keys=[MASTER_KEY])
    store = await _opened(ring)
    try:
        view = ControlView(store)
        await view.refresh()
        assert view.provider_secret(ws, "openai").reveal() == VALUES["workspace"]  # type: ignore[union-attr]
        other = await store.create_workspace(ACTOR, org, "other")
        await view.refresh()
        assert view.provider_secret(other["id"], "openai").reveal() == VALUES["org"]  # type: ignore[union-attr]
        # New secrets are sealed under the current key.
        await store.set_secret(ACTOR, "workspace", other["id"], org, "anthropic", SecretIn(value="sk-ant-" + "a" * 20))
        assert await _sealed_ids(store) == sorted([OLD_ID, OLD_ID, NEW_ID])

        seq = len(await store.audit_rows(None, 0, 10_000))
        done = await store.reseal(ACTOR)
        assert done == {
            "master_key_id": NEW_ID,
            "resealed": 2,
            "unopened": 0,
            "current": 1,
            "before": {OLD_ID: 2, NEW_ID: 1},
        }
        assert await _sealed_ids(store) == [NEW_ID] * 3
        added = await store.audit_rows(None, seq, 10_000)
        assert [(r["action"], r["target"], r["org_id"]) for r in added] == [
            ("secret.reseal", f"master_key/{NEW_ID}", None)
        ]
        assert added[0]["diff"]["before"] == {"sealed": {OLD_ID: 2, NEW_ID: 1}}
        assert added[0]["diff"]["after"] == {"master_key_id": NEW_ID, "resealed": 2, "unopened": 0}
        for secret in (*VALUES.values(), MASTER_KEY, NEW_KEY):
            assert secret not in str(added)
        await view.refresh()
        assert view.provider_secret(ws, "openai").reveal() == VALUES["workspace"]  # type: ignore[union-attr]
        # Run again: nothing left to reseal.
        assert (await store.reseal(ACTOR))["resealed"] == 0
        # The audit rows signed before the rotation (under the old key's audit key) still verify.
        assert (await store.verify_audit()).ok
    finally:
        await store.close()

    # The old key can go now: the new key alone opens everything, and the chain still verifies
    # with the old key among the audit's retired keys.
    after = await _opened(_with(settings, master_key=NEW_KEY, audit_retired_keys=[MASTER_KEY]))
    try:
        view = ControlView(after)
        await view.refresh()
        assert view.provider_secret(ws, "openai").reveal() == VALUES["workspace"]  # type: ignore[union-attr]
        assert (await after.verify_audit()).ok
    finally:
        await after.close()


async def test_a_secret_under_a_key_outside_the_ring_fails_closed(
    sealed_under_old: tuple[ControlSettings, dict[str, Any]],
) -> None:
    settings, ids = sealed_under_old
    ws = ids["ws"]["id"]
    ring = _with(settings, master_key=NEW_KEY, master_retired_keys=[MASTER_KEY])
    store = await _opened(ring)
    view = ControlView(store)
    try:
        # Another instance, configured with a third key, wrote the workspace's secret.
        stranger = MasterKey(generate_master_key())
        sealed = stranger.seal("sk-other-" + "x" * 20, secret_context("workspace", ws, "openai"))
        async with store.engine.begin() as conn:
            where = (secrets.c.level == "workspace", secrets.c.scope_id == ws)
            await conn.execute(update(secrets).where(*where).values(ciphertext=sealed))
            await conn.execute(update(state).values(version=state.c.version + 1))
        await view.refresh()
        with pytest.raises(SecretUnavailable):  # never the org's secret nor the operator's key instead
            view.provider_credential(ws, "openai")
        done = await store.reseal(ACTOR)  # what opens is resealed; the stranger's is left, counted
        assert (done["resealed"], done["unopened"]) == (1, 1)
        await view.refresh()
        with pytest.raises(SecretUnavailable):
            view.provider_credential(ws, "openai")
    finally:
        await store.close()


def test_the_reseal_command(control_settings: ControlSettings) -> None:  # noqa: F811
    boot = _cli(control_settings, "admin", "--json", "bootstrap")
    assert boot.returncode == 0, boot.stderr
    ws = json.loads(boot.stdout)["workspace"]

    async def put() -> None:  # what the admin API's secret PUT writes
        store = await _opened(control_settings)
        try:
            spec = SecretIn(value="sk-cli-" + "c" * 20)
            await store.set_secret(ACTOR, "workspace", ws["id"], ws["org_id"], "openai", spec)
        finally:
            await store.close()

    asyncio.run(put())
    rotated = {
        "SLUICEGATE_CONTROL__MASTER_KEY": NEW_KEY,
        "SLUICEGATE_CONTROL__MASTER_RETIRED_KEYS": f'["{MASTER_KEY}"]',
    }
    done = _cli(control_settings, "admin", "reseal", env_extra=rotated)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "master_key_id": NEW_ID,
        "resealed": 1,
        "unopened": 0,
        "current": 0,
        "before": {OLD_ID: 1},
    }
    for output in (done.stdout, done.stderr):
        assert MASTER_KEY not in output and NEW_KEY not in output and "sk-cli-" not in output
    # Now the new key alone starts (the old one only verifies old audit rows).
    alone = {"SLUICEGATE_CONTROL__MASTER_KEY": NEW_KEY, "SLUICEGATE_CONTROL__AUDIT_RETIRED_KEYS": f'["{MASTER_KEY}"]'}

    async def actions() -> list[str]:
        store = await _opened(_with(control_settings, master_key=NEW_KEY, audit_retired_keys=[MASTER_KEY]))
        try:
            return [r["action"] for r in await store.audit_rows(None, 0, 1000)]
        finally:
            await store.close()

    assert asyncio.run(actions()).count("secret.reseal") == 1
    verify = _cli(control_settings, "audit", "verify", env_extra=alone)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_gateway_rotated_to_a_new_master_key_keeps_using_the_old_secrets(mock_server: Server, tmp_path: Path) -> None:
    """Restarted with a new current key and the old one retired, the gateway still opens and sends
    the workspace's secret; resealed meanwhile (the command, while it runs), it goes on sending it."""
    import openai

    settings = ControlSettings(enabled=True, database_url=f"sqlite:///{tmp_path / 'c.db'}", master_key=MASTER_KEY)
    seed = _seed(settings)
    value = "sk-ws-sealed-under-old-" + "q" * 16

    async def put_secret() -> None:
        store = ControlStore(settings)
        await store.open()
        try:
            ws = seed["ws"]
            await store.set_secret(ACTOR, "workspace", ws["id"], ws["org_id"], "mh", SecretIn(value=value))
        finally:
            await store.close()

    asyncio.run(put_secret())
    rotated = {
        "SLUICEGATE_CONTROL__MASTER_KEY": NEW_KEY,
        "SLUICEGATE_CONTROL__MASTER_RETIRED_KEYS": f'["{MASTER_KEY}"]',
    }
    with (
        start_gateway(_config(tmp_path, mock_server.url, settings), rotated) as gw,
        openai.OpenAI(base_url=f"{gw.url}/v1", api_key=seed["key"], max_retries=0) as oa,
    ):
        assert oa.chat.completions.create(**CHAT | {"model": "mh/mock-gpt"}).choices[0].message.content
        assert provider_saw(mock_server)["headers"]["authorization"] == f"Bearer {value}"
        done = _cli(settings, "admin", "reseal", env_extra=rotated)
        assert done.returncode == 0 and json.loads(done.stdout)["resealed"] == 1, done.stderr
        time.sleep(0.6)  # past a poll interval: the gateway has reloaded the resealed secret
        assert oa.chat.completions.create(**CHAT | {"model": "mh/mock-gpt"}).choices[0].message.content
        assert provider_saw(mock_server)["headers"]["authorization"] == f"Bearer {value}"
