"""The control store on SQLite and PostgreSQL: migrations, changes with one audit row each, the
hash chain catching edits and deletions, secrets sealed at rest, and the data plane's view."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, select, text, update
from tests.conftest import Server, redis_url
from tests.unit.control.pg import control_settings, pg_database  # noqa: F401  (fixtures)

from sluicegate.control.audit import Actor
from sluicegate.control.migrations import revisions
from sluicegate.control.models import api_keys, audit_log, secrets
from sluicegate.control.schemas import KeyIn, PolicyIn, SecretIn
from sluicegate.control.settings import ControlSettings
from sluicegate.control.store import CHANNEL, ControlStore
from sluicegate.control.view import ControlView
from sluicegate.errors import Unauthenticated

ACTOR = Actor("test/actor", "rid-1", "127.0.0.1")


@pytest.fixture
async def store(control_settings: ControlSettings) -> AsyncIterator[ControlStore]:  # noqa: F811
    s = ControlStore(control_settings)
    assert await s.open() == revisions()  # a new database gets every revision, oldest first
    try:
        yield s
    finally:
        await s.close()


async def _audit_count(store: ControlStore) -> int:
    async with store.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(audit_log))).scalar_one())


async def _tree(store: ControlStore) -> tuple[dict[str, object], ...]:
    org = await store.create_org(ACTOR, "acme")
    ws = await store.create_workspace(ACTOR, org["id"], "prod")
    user = await store.create_user(ACTOR, ws, "alice")
    return org, ws, user


async def test_migrations_apply_once(store: ControlStore) -> None:
    assert await store.open() == []
    assert await store.version() == 0


async def test_every_change_writes_one_audit_row_and_bumps_the_version(store: ControlStore) -> None:
    org, ws, user = await _tree(store)
    steps = [
        lambda: store.create_key(ACTOR, ws, KeyIn(name="k", user_id=user["id"])),
        lambda: store.create_admin_token(ACTOR, org["id"], ws["id"], "t"),
        lambda: store.set_secret(ACTOR, "org", org["id"], org["id"], "openai", SecretIn(value="sk-org-secret")),
        lambda: store.set_policy(ACTOR, "workspace", ws["id"], org["id"], PolicyIn()),
        lambda: store.delete_secret(ACTOR, "org", org["id"], org["id"], "openai"),
    ]
    for step in steps:
        before_rows, before_version = await _audit_count(store), await store.version()
        await step()
        assert await _audit_count(store) == before_rows + 1
        assert await store.version() == before_version + 1
    rows = await store.audit_rows(org["id"])
    assert [r["action"] for r in rows] == [
        "org.create",
        "workspace.create",
        "user.create",
        "key.create",
        "admin_token.create",
        "secret.set",
        "policy.set",
        "secret.delete",
    ]
    assert {r["actor"] for r in rows} == {"test/actor"} and rows[0]["request_id"] == "rid-1"
    assert rows[0]["client"] == "127.0.0.1"
    assert rows[5]["diff"]["after"]["value"] == "*****"
    assert "key_hash" not in str(rows[3]["diff"]) or rows[3]["diff"]["after"].get("key_hash") in (None, "*****")
    assert (await store.verify_audit()).ok


@pytest.mark.parametrize("tamper", ["edit", "delete_middle", "delete_last"])
async def test_verify_names_the_first_broken_row(store: ControlStore, tamper: str) -> None:
    await _tree(store)
    assert (await store.verify_audit()).ok
    async with store.engine.begin() as conn:
        if tamper == "edit":
            await conn.execute(update(audit_log).where(audit_log.c.seq == 2).values(actor="someone/else"))
        elif tamper == "delete_middle":
            await conn.execute(delete(audit_log).where(audit_log.c.seq == 2))
        else:
            await conn.execute(delete(audit_log).where(audit_log.c.seq == 3))
    result = await store.verify_audit()
    assert not result.ok
    assert result.broken_seq == (3 if tamper == "delete_last" else 2)


async def test_secrets_are_sealed_and_bound_to_their_row(store: ControlStore) -> None:
    org, ws, _ = await _tree(store)
    await store.set_secret(ACTOR, "workspace", ws["id"], org["id"], "openai", SecretIn(value="sk-plain-VALUE-123"))
    async with store.read() as conn:
        stored = (await conn.execute(select(secrets.c.ciphertext, secrets.c.meta))).one()
    assert "sk-plain-VALUE-123" not in stored.ciphertext + stored.meta
    listed = await store.secrets_list("workspace", ws["id"])
    assert listed[0]["provider"] == "openai" and "value" not in listed[0]
    assert "sk-plain" not in str(await store.audit_rows(None))


async def test_view_reads_keys_policies_and_secrets_from_memory(store: ControlStore) -> None:
    org, ws, user = await _tree(store)
    row, key = await store.create_key(ACTOR, ws, KeyIn(name="k", user_id=user["id"]))
    await store.set_policy(
        ACTOR,
        "org",
        org["id"],
        org["id"],
        PolicyIn.model_validate(
            {
                "caps": [{"window": "month", "limit_usd": "100.00"}],
                "redaction": [{"entities": ["EMAIL"], "action": "redact"}],
            }
        ),
    )
    await store.set_policy(
        ACTOR,
        "key",
        row["id"],
        org["id"],
        PolicyIn.model_validate(
            {
                "caps": [{"window": "day", "limit_usd": "1.5"}],
                "redaction": [{"entities": ["EMAIL"], "action": "block"}],
            }
        ),
    )
    await store.set_secret(ACTOR, "org", org["id"], org["id"], "anthropic", SecretIn(value="sk-ant-org"))
    await store.set_secret(
        ACTOR, "workspace", ws["id"], org["id"], "openai", SecretIn(value="sk-ws", base_url="https://x.example/v1")
    )
    view = ControlView(store)
    await view.start()
    try:
        who = view.authenticate(f"Bearer {key}".encode(), None)
        assert (who.key_name, who.workspace, who.org, who.user) == (row["id"], ws["id"], org["id"], user["id"])
        assert view.authenticate(None, key.encode()) == who
        caps = {(c.level, c.entity_id, c.window, c.limit_nusd) for c in view.cap_lines(who)}
        assert caps == {("org", org["id"], "month", 100_000_000_000), ("key", row["id"], "day", 1_500_000_000)}
        rules = {(r.entities[0], r.direction): r.action for r in view.redaction_rules(who)}
        assert rules == {("EMAIL", "request"): "block", ("EMAIL", "response"): "block"}
        secret = view.provider_secret(ws["id"], "openai")
        assert secret is not None and secret.reveal() == "sk-ws" and "sk-ws" not in repr(secret)
        org_default = view.provider_secret(ws["id"], "anthropic")
        assert org_default is not None and org_default.reveal() == "sk-ant-org"
        assert view.provider_secret(ws["id"], "langsmith") is None
        with pytest.raises(Unauthenticated):
            view.authenticate(b"Bearer sg-unknown", None)
        # a change elsewhere reaches the view through the version counter
        other = ControlStore(store.settings)
        await other.open()
        try:
            await other.revoke_key(ACTOR, (await other.one(api_keys, row["id"])) or {})
        finally:
            await other.close()
        for _ in range(40):
            await asyncio.sleep(0.05)
            try:
                view.authenticate(f"Bearer {key}".encode(), None)
            except Unauthenticated as exc:
                assert exc.code == "revoked_api_key"
                break
        else:
            pytest.fail("the revocation did not reach the view")
        await view.flush_last_used()
        assert (await store.one(api_keys, row["id"]) or {})["last_used_at"] is not None
    finally:
        await view.stop()


async def test_an_expired_key_is_refused(store: ControlStore) -> None:
    _, ws, _ = await _tree(store)
    soon = datetime.now(UTC) + timedelta(seconds=0.3)
    _, key = await store.create_key(ACTOR, ws, KeyIn(name="short", expires_at=soon))
    view = ControlView(store)
    await view.refresh()
    view.authenticate(f"Bearer {key}".encode(), None)
    await asyncio.sleep(0.4)
    with pytest.raises(Unauthenticated) as caught:
        view.authenticate(f"Bearer {key}".encode(), None)
    assert caught.value.status == 401 and caught.value.code == "expired_api_key"


async def test_keys_are_stored_as_hashes_only(store: ControlStore) -> None:
    _, ws, _ = await _tree(store)
    _, key = await store.create_key(ACTOR, ws, KeyIn(name="k"))
    async with store.read() as conn:
        dump = str([tuple(r) for r in await conn.execute(select(api_keys))])
        dump += str([tuple(r) for r in await conn.execute(text("SELECT * FROM audit_log"))])
    assert key not in dump and key[7:] not in dump


async def test_concurrent_changes_from_two_stores_keep_one_chain(store: ControlStore) -> None:
    other = ControlStore(store.settings)
    await other.open()
    try:
        await asyncio.gather(*(s.create_org(ACTOR, f"o{i}") for i in range(10) for s in (store, other)))
    finally:
        await other.close()
    result = await store.verify_audit()
    assert result.ok and result.rows == 20
    assert await store.version() == 20


async def test_redaction_settings_compile_into_a_redactor(store: ControlStore) -> None:
    from sluicegate.config import RedactionSettings
    from sluicegate.policy.redaction import Redactor

    org, ws, _ = await _tree(store)
    _, key = await store.create_key(ACTOR, ws, KeyIn(name="k"))
    policy = {
        "redaction": [{"entities": ["TICKET"], "action": "block", "direction": "request"}],
        "custom_patterns": [{"entity": "TICKET", "pattern": "TCK-[0-9]{6}"}],
    }
    await store.set_policy(ACTOR, "workspace", ws["id"], org["id"], PolicyIn.model_validate(policy))
    view = ControlView(store)
    await view.refresh()
    who = view.authenticate(f"Bearer {key}".encode(), None)
    base = RedactionSettings()
    merged = view.redaction_settings(who, base)
    assert merged is view.redaction_settings(who, base)  # one object per key until a reload: compile once
    redactor = Redactor(merged)
    assert redactor.actions["request"]["TICKET"] == "block"
    assert [f[0] for f in redactor.scanner.scan("see TCK-123456")] == ["TICKET"]


async def test_redis_announcements_reach_a_view_without_polling(
    control_settings: ControlSettings,  # noqa: F811
    redis_server: Server,
) -> None:
    settings = ControlSettings.model_validate({**dict(control_settings), "redis_url": redis_url(redis_server)})
    writer, reader = ControlStore(settings), ControlStore(settings)
    await writer.open()
    await reader.open()
    view = ControlView(reader)
    try:
        _, ws, _ = await _tree(writer)
        row, key = await writer.create_key(ACTOR, ws, KeyIn(name="k"))
        await view.start(poll=False)
        await asyncio.sleep(0.2)  # subscribed
        view.authenticate(f"Bearer {key}".encode(), None)
        await writer.revoke_key(ACTOR, (await writer.one(api_keys, row["id"])) or {})
        for _ in range(50):
            await asyncio.sleep(0.02)
            if view.version == await writer.version():
                break
        with pytest.raises(Unauthenticated):
            view.authenticate(f"Bearer {key}".encode(), None)
    finally:
        await view.stop()
        await writer.close()
        await reader.close()


async def test_announcements_cross_the_nodes_of_a_redis_cluster(
    control_settings: ControlSettings,  # noqa: F811
    redis_cluster: Any,
) -> None:
    """A key revoked through a store announcing on one node of a Redis Cluster stops at once at a
    view subscribed on another node (no polling): PUBLISH reaches every node's subscribers."""
    from tests.redis_cluster import cli

    writer_node, reader_node = redis_cluster.alive()[:2]
    writer = ControlStore(
        ControlSettings.model_validate(
            {**dict(control_settings), "redis_url": f"redis+cluster://127.0.0.1:{writer_node}"}
        )
    )
    reader = ControlStore(
        ControlSettings.model_validate(
            {**dict(control_settings), "redis_url": f"redis+cluster://127.0.0.1:{reader_node}"}
        )
    )
    await writer.open()
    await reader.open()
    view = ControlView(reader)
    try:
        _, ws, _ = await _tree(writer)
        row, key = await writer.create_key(ACTOR, ws, KeyIn(name="k"))
        await view.start(poll=False)
        for _ in range(100):  # subscribed, on the reader's node and no other
            await asyncio.sleep(0.02)
            if cli(reader_node, "pubsub", "numsub", CHANNEL).split()[1:] == ["1"]:
                break
        assert cli(reader_node, "pubsub", "numsub", CHANNEL).split()[1:] == ["1"]
        assert cli(writer_node, "pubsub", "numsub", CHANNEL).split()[1:] == ["0"]
        view.authenticate(f"Bearer {key}".encode(), None)
        await writer.revoke_key(ACTOR, (await writer.one(api_keys, row["id"])) or {})
        for _ in range(50):
            await asyncio.sleep(0.02)
            if view.version == await writer.version():
                break
        with pytest.raises(Unauthenticated):
            view.authenticate(f"Bearer {key}".encode(), None)
    finally:
        await view.stop()
        await writer.close()
        await reader.close()
