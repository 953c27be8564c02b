"""The audit chain against someone with write access to the database (direct SQL on SQLite and
PostgreSQL, no audit key): each rewrite they can make is found by `verify`, which names the first
bad row. Also: legacy rows as a sealed prefix, key rotation, anchors, the system's own rows, and the
rate limit on failed admin sign-ins."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from tests.conftest import PROVIDER_KEY, Server, gateway_config, start_gateway
from tests.integration.test_control_gateway import _env, _seed
from tests.unit.control.pg import MASTER_KEY, PG_HOST, PG_PORT, PG_USER, control_settings, pg_database  # noqa: F401

from sluicegate.config import Settings
from sluicegate.control import audit
from sluicegate.control.admin_api import AdminApi
from sluicegate.control.audit import Actor, AuditKey
from sluicegate.control.migrations import revisions
from sluicegate.control.settings import ControlSettings
from sluicegate.control.store import ControlStore
from sluicegate.control.system_events import AccessDenials, AuthFailures, on_open, record_config
from sluicegate.forwarded import TrustedProxies

ACTOR = Actor("test/actor", "rid-1", "127.0.0.1")
OTHER_KEY = base64.urlsafe_b64encode(b"another audit key, 32 bytes long").decode()
FIELDS = ("seq", "at", "actor", "action", "target", "org_id", "request_id", "client", "diff")


def _settings(control_settings: ControlSettings, tmp_path: Path, **update: Any) -> ControlSettings:  # noqa: F811
    """The settings with an anchor file in `tmp_path` (an anchor after every change) and `update`."""
    # model_dump() leaves out the secret settings and masks URLs: carry those over as they are.
    hidden = {
        k: getattr(control_settings, k) for k in ("master_key", "database_url", "audit_key", "audit_retired_keys")
    }
    values: dict[str, Any] = {"audit_anchor_file": str(tmp_path / "audit.anchors"), "audit_anchor_interval_s": 0}
    return ControlSettings.model_validate(control_settings.model_dump() | hidden | values | update)


@pytest.fixture
async def store(control_settings: ControlSettings, tmp_path: Path) -> AsyncIterator[ControlStore]:  # noqa: F811
    s = ControlStore(_settings(control_settings, tmp_path))
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def _changes(store: ControlStore, n: int = 6) -> None:
    org = await store.create_org(ACTOR, "acme")
    for i in range(n - 1):
        await store.create_workspace(ACTOR, org["id"], f"ws{i}")


# ── the attacker: plain SQL through the database's own driver, no sluicegate code ────────────────


async def _sql(settings: ControlSettings, statements: list[tuple[str, tuple[Any, ...]]]) -> list[dict[str, Any]]:
    """Run statements in one transaction as the database's owner; the rows of the last one."""
    path = settings.sqlite_path()
    if path is not None:
        db = sqlite3.connect(path)
        db.row_factory = sqlite3.Row
        try:
            rows: list[Any] = []
            for sql, args in statements:
                rows = db.execute(re.sub(r"\$\d+", "?", sql), args).fetchall()
            db.commit()
            return [dict(r) for r in rows]
        finally:
            db.close()
    import asyncpg

    conn = await asyncpg.connect(settings.database_url.reveal())
    try:
        async with conn.transaction():
            result: list[Any] = []
            for sql, args in statements:
                result = await conn.fetch(sql, *args)
            return [dict(r) for r in result]
    finally:
        await conn.close()


async def _rows(settings: ControlSettings) -> list[dict[str, Any]]:
    return await _sql(settings, [("SELECT * FROM audit_log ORDER BY seq", ())])


def _legacy_hash(prev: str, row: dict[str, Any]) -> str:
    fields = {k: row[k] for k in FIELDS}
    return hashlib.sha256(prev.encode() + orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _guessed_key_hash(prev: str, row: dict[str, Any], key_id: str) -> str:
    """What an attacker can sign with: the same format and key id, any key but the real one."""
    head = f"hmac-v1:{key_id}:"
    content = orjson.dumps({k: row[k] for k in FIELDS}, option=orjson.OPT_SORT_KEYS)
    return head + hmac.new(b"guess" * 8, head.encode() + prev.encode() + b"\n" + content, "sha256").hexdigest()


async def _rewrite(settings: ControlSettings, rows: list[dict[str, Any]], sign: Any) -> None:
    """Replace the whole log with `rows`, re-chained with `sign(prev, row)`, and move the head."""
    prev, statements = "", [("DELETE FROM audit_log", ())]
    for row in rows:
        row = {**row, "prev_hash": prev}
        row["hash"] = sign(prev, row)
        cols = list(row)
        marks = ", ".join(f"${i + 1}" for i in range(len(cols)))
        statements.append((f"INSERT INTO audit_log ({', '.join(cols)}) VALUES ({marks})", tuple(row.values())))
        prev = row["hash"]
    head = rows[-1]["seq"] if rows else 0
    statements.append(("UPDATE control_state SET audit_head_seq = $1, audit_head_hash = $2", (head, prev)))
    await _sql(settings, statements)


def _anchor_lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def _append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


# ── rewrites ──────────────────────────────────────────────────────────────────────────────────


async def test_an_intact_log_verifies_with_its_key_and_anchors(store: ControlStore) -> None:
    await _changes(store)
    result = await store.verify_audit()
    assert result.ok and result.rows == 6 and result.legacy_rows == 0
    assert result.key_ids == (store.audit_keys()[0].current.key_id,)  # type: ignore[union-attr]
    assert result.anchors == 6  # an anchor after every change (interval 0)
    rows = await _rows(store.settings)
    assert all(r["hash"].startswith("hmac-v1:") for r in rows)


@pytest.mark.parametrize("sign", ["guessed_key", "legacy_sha256"])
async def test_an_edited_row_resigned_without_the_key_is_found(store: ControlStore, sign: str) -> None:
    await _changes(store)
    rows = await _rows(store.settings)
    rows[2]["target"] = "org/forged"
    key_id = rows[0]["hash"].split(":")[1]
    if sign == "guessed_key":  # the same format and key id, signed from row 3 on with a key of their own
        await _rewrite(
            store.settings, rows, lambda p, r: r["hash"] if r["seq"] < 3 else _guessed_key_hash(p, r, key_id)
        )
    else:  # re-chained from row 3 on with plain SHA-256, which the legacy code accepted
        await _rewrite(store.settings, rows, lambda p, r: r["hash"] if r["seq"] < 3 else _legacy_hash(p, r))
    result = await store.verify_audit()
    assert not result.ok and result.broken_seq == 3, result
    assert ("HMAC does not match" if sign == "guessed_key" else "unkeyed row after keyed rows") in result.reason


async def test_a_log_rewritten_entirely_as_legacy_rows_is_found_without_anchors(store: ControlStore) -> None:
    await _changes(store)
    rows = await _rows(store.settings)
    rows[1]["actor"] = "someone/else"
    await _rewrite(store.settings, rows, _legacy_hash)  # self-consistent: today's `verify` passes it
    result = await store.verify_audit(anchor_files=[])
    assert not result.ok and result.broken_seq == 1 and "no row is signed" in result.reason
    with_anchors = await store.verify_audit()
    assert not with_anchors.ok and with_anchors.broken_seq == 1 and "differs from its anchor" in with_anchors.reason


@pytest.mark.parametrize("renumber", [False, True])
async def test_a_row_deleted_in_the_middle_is_found(store: ControlStore, renumber: bool) -> None:
    await _changes(store)
    rows = await _rows(store.settings)
    if not renumber:
        await _sql(store.settings, [("DELETE FROM audit_log WHERE seq = $1", (3,))])
    else:  # close the gap: later rows move down one, links mended, head moved
        kept = [r for r in rows if r["seq"] != 3]
        kept = [{**r, "seq": i} for i, r in enumerate(kept, 1)]
        await _rewrite(store.settings, kept, lambda p, r: r["hash"])
    result = await store.verify_audit()
    assert not result.ok and result.broken_seq == 3, result
    assert ("HMAC does not match" if renumber else "row 3 is missing") in result.reason


async def test_truncating_the_newest_rows_is_found_by_the_anchors(store: ControlStore) -> None:
    await _changes(store)
    rows = await _rows(store.settings)
    # Rows 5 and 6 gone, and the head moved back: the chain is whole and `control_state` agrees.
    await _sql(
        store.settings,
        [
            ("DELETE FROM audit_log WHERE seq > $1", (4,)),
            ("UPDATE control_state SET audit_head_seq = $1, audit_head_hash = $2", (4, rows[3]["hash"])),
        ],
    )
    result = await store.verify_audit()
    assert not result.ok and result.broken_seq == 5, result
    assert "records row 6, but the chain ends at row 4 (truncated)" in result.reason
    assert (await store.verify_audit(anchor_files=[])).ok  # what the anchors add


async def test_wiping_the_log_is_found_by_the_anchors(store: ControlStore) -> None:
    await _changes(store)
    await _sql(
        store.settings,
        [("DELETE FROM audit_log", ()), ("UPDATE control_state SET audit_head_seq = 0, audit_head_hash = ''", ())],
    )
    result = await store.verify_audit()
    assert not result.ok and result.broken_seq == 1 and "the log is empty (wiped)" in result.reason


@pytest.mark.parametrize("forgery", ["bad_mac", "not_json", "unknown_key"])
async def test_a_forged_anchor_is_found(store: ControlStore, forgery: str) -> None:
    await _changes(store)
    path = Path(store.settings.audit_anchor_file or "")
    real = _anchor_lines(path)[-1]
    if forgery == "bad_mac":  # claim fewer rows, to cover a truncation
        line = orjson.dumps({**real, "seq": 2, "mac": "0" * 64})
    elif forgery == "not_json":
        line = b'{"seq": 2, "hash'
    else:
        line = orjson.dumps({**real, "key_id": "00000000"})
    _append(path, line + b"\n")
    result = await store.verify_audit()
    assert not result.ok and f"audit.anchors line {6 + 1} " in result.reason  # after the 6 real ones
    assert result.broken_seq == {"bad_mac": 2, "not_json": None, "unknown_key": 6}[forgery]
    why = {"bad_mac": "HMAC does not match", "not_json": "not an anchor", "unknown_key": "00000000, which is not"}
    assert why[forgery] in result.reason


async def test_anchors_wait_for_the_interval_and_the_last_is_written_at_close(
    control_settings: ControlSettings,  # noqa: F811
    tmp_path: Path,
) -> None:
    settings = _settings(control_settings, tmp_path, audit_anchor_interval_s=3600)
    s = ControlStore(settings)
    await s.open()
    await _changes(s, 4)
    path = Path(settings.audit_anchor_file or "")
    assert [a["seq"] for a in _anchor_lines(path)] == [1]  # at once, then not again
    await s.close()
    assert [a["seq"] for a in _anchor_lines(path)] == [1, 4]  # and the last at shutdown


# ── the anchor file: a chain of its own ───────────────────────────────────────────────────────


def _raw_lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def _write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


@pytest.mark.parametrize("edit", ["remove_middle", "remove_first", "swap", "replay"])
async def test_removing_or_moving_anchor_lines_is_found(store: ControlStore, edit: str) -> None:
    await _changes(store)
    path = Path(store.settings.audit_anchor_file or "")
    lines = _raw_lines(path)
    assert [orjson.loads(line)["seq"] for line in lines] == [1, 2, 3, 4, 5, 6]
    # Each line is a valid anchor on its own: only the chain shows what was done to the file.
    if edit == "remove_middle":  # fewer anchors pin less: the rows they pinned may then be rewritten
        edited, line_no, seq = lines[:2] + lines[3:], 3, 4
    elif edit == "remove_first":
        edited, line_no, seq = lines[1:], 1, 2
    elif edit == "swap":
        edited, line_no, seq = [lines[0], lines[2], lines[1], *lines[3:]], 2, 3
    else:  # an old line appended again
        edited, line_no, seq = [*lines, lines[1]], 7, 2
    _write_lines(path, edited)
    result = await store.verify_audit()
    assert not result.ok and result.broken_seq == seq, result
    assert f"audit.anchors line {line_no} (row {seq}): it " in result.reason
    why = "it is the file's first line, but it follows another" if edit == "remove_first" else "does not follow"
    assert why in result.reason
    # What no file shows: its newest lines cut off (the limit the docs state; ship the lines as written).
    _write_lines(path, lines[:4])
    assert (await store.verify_audit()).ok


def _legacy_anchor(key: AuditKey, line: bytes) -> bytes:
    """A line as sluicegate wrote it before anchors were chained: no `prev`, its HMAC over four fields."""
    data = orjson.loads(line)
    fields = {k: data[k] for k in ("seq", "hash", "at", "key_id")}
    return orjson.dumps({**fields, "mac": key.anchor_mac(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS))})


async def test_legacy_anchor_lines_are_read_as_a_prefix_sealed_by_the_first_chained_line(store: ControlStore) -> None:
    key = store.audit_keys()[0].current
    assert key is not None
    path = Path(store.settings.audit_anchor_file or "")
    await _changes(store, 3)
    legacy = [_legacy_anchor(key, line) for line in _raw_lines(path)]
    _write_lines(path, legacy)  # the file as the previous version left it
    for i in range(3):  # then the upgraded gateway appends, chained to the last legacy line
        await store.create_org(ACTOR, f"after-upgrade-{i}")
    lines = _raw_lines(path)
    assert orjson.loads(lines[3])["prev"] == orjson.loads(legacy[-1])["mac"]
    result = await store.verify_audit()
    assert result.ok and result.anchors == 6, result
    assert any("3 anchor lines are unchained" in n and "goes unnoticed" in n for n in result.notes), result.notes
    # The first chained line seals the last legacy one ...
    _write_lines(path, lines[:2] + lines[3:])
    cut = await store.verify_audit()
    assert not cut.ok and "line 3 (row 4): it does not follow the line before it" in cut.reason, cut
    # ... and no legacy line may come after a chained one (an old line appended again).
    _write_lines(path, [*lines, lines[0]])
    replayed = await store.verify_audit()
    assert not replayed.ok and "line 7 (row 1): an unchained line after chained ones" in replayed.reason, replayed
    # Among the legacy lines, a removal is what the note warns of.
    _write_lines(path, [lines[0], *lines[2:]])
    assert (await store.verify_audit()).ok


async def test_processes_sharing_an_anchor_file_keep_one_chain(store: ControlStore) -> None:
    """Workers (or instances on one host) append to the same file: each chains to the file's last
    line, not to the last one it wrote itself."""
    other = ControlStore(store.settings)
    await other.open()
    try:
        org = await store.create_org(ACTOR, "acme")
        for i in range(3):
            await other.create_workspace(ACTOR, org["id"], f"o{i}")
            await store.create_workspace(ACTOR, org["id"], f"s{i}")
    finally:
        await other.close()
    result = await store.verify_audit()
    assert result.ok and result.anchors == 7, result


# ── legacy rows and keys ───────────────────────────────────────────────────────────────────────


async def _legacy_rows(settings: ControlSettings, n: int) -> None:
    """Rows as the code before keyed chains wrote them: plain SHA-256 (`append` without a key)."""
    s = ControlStore(settings)
    await s.open()
    try:
        for i in range(n):
            async with s.engine.begin() as conn:
                await audit.lock(conn)
                await audit.append(conn, None, ACTOR, "org.create", f"org/legacy{i}", None, None, {"name": f"o{i}"})
    finally:
        await s.close()


async def test_legacy_rows_verify_as_a_prefix_sealed_by_the_first_keyed_row(store: ControlStore) -> None:
    await _legacy_rows(store.settings, 3)
    before = await store.verify_audit()
    assert not before.ok and "no row is signed" in before.reason  # cut back to legacy rows, or not sealed yet
    await on_open(store, [])  # any start or admin command seals them
    await _changes(store, 2)
    result = await store.verify_audit()
    assert result.ok and result.rows == 3 + 2 + 2 and result.legacy_rows == 3, result
    assert any("3 legacy rows are unkeyed (sealed by the first keyed row)" in n for n in result.notes)
    # The legacy rows are unkeyed, so they can be re-chained; the first keyed row then no longer holds.
    rows = await _rows(store.settings)
    rows[0]["target"] = "org/forged"
    await _rewrite(store.settings, rows, lambda p, r: _legacy_hash(p, r) if r["seq"] <= 3 else r["hash"])
    broken = await store.verify_audit()
    assert not broken.ok and broken.broken_seq == 4 and "HMAC does not match" in broken.reason


async def test_a_keyed_log_refuses_unkeyed_rows_when_the_key_is_gone(
    store: ControlStore,
    tmp_path: Path,
) -> None:
    await _changes(store, 2)
    keyless = ControlStore(_settings(store.settings, tmp_path, master_key=None))
    await keyless.open()
    try:
        with pytest.raises(audit.AuditKeyError, match="no audit key is configured"):
            await on_open(keyless, [])  # a start fails, saying why
        with pytest.raises(audit.AuditKeyError, match="no audit key is configured"):
            await keyless.create_org(ACTOR, "x")
        result = await keyless.verify_audit()
        assert not result.ok and result.broken_seq == 1 and "which is not configured" in result.reason
    finally:
        await keyless.close()
    assert len(await _rows(store.settings)) == 2


async def test_a_rotated_key_verifies_with_the_retired_one(store: ControlStore, tmp_path: Path) -> None:
    await _changes(store, 3)  # signed with the key derived from the master key
    rotated = _settings(store.settings, tmp_path, audit_key=OTHER_KEY)
    s = ControlStore(rotated)
    await s.open()
    try:
        with pytest.raises(audit.AuditKeyError, match="put the previous audit key"):
            await on_open(s, [])  # a start with a new key must keep the old one for verify
        await _changes(s, 2)
        alone = await s.verify_audit()
        assert not alone.ok and alone.broken_seq == 1 and "which is not configured" in alone.reason
    finally:
        await s.close()
    # A retired entry may be the old master key itself: the audit key derives from it the same way.
    both = ControlStore(_settings(rotated, tmp_path, audit_key=OTHER_KEY, audit_retired_keys=[MASTER_KEY]))
    await both.open()
    try:
        await on_open(both, [])  # the first uses of the master key and the new audit key, signed with the new
        result = await both.verify_audit()
        old, new = store.audit_keys()[0].current, both.audit_keys()[0].current
        assert result.ok and result.rows == 3 + 2 + 2 and result.key_ids == (old.key_id, new.key_id)  # type: ignore[union-attr]
    finally:
        await both.close()


# ── the system's own rows ──────────────────────────────────────────────────────────────────────


async def test_opening_records_migrations_and_first_key_use_once(
    control_settings: ControlSettings,  # noqa: F811
    tmp_path: Path,
) -> None:
    settings = _settings(control_settings, tmp_path)
    stores = [ControlStore(settings) for _ in range(3)]
    try:
        applied = [await s.open() for s in stores]
        assert applied[1:] == [[], []]
        await asyncio.gather(*(on_open(s, a) for s, a in zip(stores, applied, strict=True)))
        rows = await _rows(settings)
    finally:
        for s in stores:
            await s.close()
    actions = sorted(r["action"] for r in rows)
    assert actions == ["audit_key.first_use", "master_key.first_use", "migrations.apply"]
    applied_row = next(r for r in rows if r["action"] == "migrations.apply")
    assert orjson.loads(applied_row["diff"])["after"] == {"applied": revisions()}
    assert {r["actor"] for r in rows} == {"system"} and MASTER_KEY not in str(rows)


async def test_the_effective_config_is_recorded_when_it_changes_and_secrets_stay_out(store: ControlStore) -> None:
    secret = "lsv2_pt_planted-secret-value-0123456789"
    base = Settings.model_validate({"control": {"enabled": True}})
    changed = Settings.model_validate({"control": {"enabled": True}, "langsmith": {"api_key": secret}})
    again = Settings.model_validate({"control": {"enabled": True}, "langsmith": {"api_key": secret + "x"}})
    assert await record_config(store, base) is not None
    assert await record_config(store, base) is None  # a restart with the same settings adds nothing
    assert await record_config(store, changed) is not None
    assert await record_config(store, again) is not None  # a changed secret shows, by its fingerprint
    rows = [r for r in await _rows(store.settings) if r["action"] == "config.effective"]
    assert len(rows) == 3 and secret not in str(rows)
    second = orjson.loads(rows[1]["diff"])
    changed_sections = {k for k, v in second["after"]["sections"].items() if second["before"]["sections"][k] != v}
    assert changed_sections == {"langsmith"} and second["after"]["digest"].startswith("hmac:")
    assert (await store.verify_audit()).ok


# ── failed admin sign-ins ──────────────────────────────────────────────────────────────────────


async def _auth_rows(store: ControlStore) -> list[dict[str, Any]]:
    return [
        {**r, "diff": orjson.loads(r["diff"])}
        for r in await _rows(store.settings)
        if r["action"] == "admin.auth_failed"
    ]


async def test_failed_admin_sign_ins_are_recorded_at_most_once_a_minute_per_address(store: ControlStore) -> None:
    _, token = await store.create_admin_token(ACTOR, None, None, "op")
    revoked, revoked_token = await store.create_admin_token(ACTOR, None, None, "old")
    await store.revoke_admin_token(ACTOR, revoked)
    api = AdminApi(store)
    attempts = [{}, {"authorization": "Bearer sga-wrong"}, {"authorization": f"Bearer {revoked_token}"}]
    for address in ("203.0.113.7", "198.51.100.9"):
        transport = httpx.ASGITransport(app=api, client=(address, 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
            for i in range(30):
                response = await client.get("/admin/v1/whoami", headers=attempts[i % 3])
                assert response.status_code == 401
            ok = await client.get("/admin/v1/whoami", headers={"authorization": f"Bearer {token}"})
            assert ok.status_code == 200
    rows = await _auth_rows(store)
    assert [(r["client"], r["diff"]["after"]["failures"]) for r in rows] == [("203.0.113.7", 1), ("198.51.100.9", 1)]
    await api.auth_failures.close()  # shutdown writes what was counted since
    rows = await _auth_rows(store)
    assert sorted((r["client"], r["diff"]["after"]["failures"]) for r in rows) == [
        ("198.51.100.9", 1),
        ("198.51.100.9", 29),
        ("203.0.113.7", 1),
        ("203.0.113.7", 29),
    ]
    assert {r["actor"] for r in rows} == {"unauthenticated"} and revoked_token not in str(rows)
    assert (await store.verify_audit()).ok


async def test_the_sign_in_limit_holds_per_window_and_across_many_addresses(store: ControlStore) -> None:
    now = [0.0]
    limiter = AuthFailures(store, window_s=60, max_clients=3, clock=lambda: now[0])
    for t, address in [(0, "a"), (10, "a"), (20, "a"), (61, "a")]:
        now[0] = t
        await limiter.note(address, "rid")
    assert [r["diff"]["after"]["failures"] for r in await _auth_rows(store)] == [1, 3]  # the window's count, once
    for i in range(20):  # a spread of addresses: past 3 tracked, the rest share one row
        await limiter.note(f"10.0.0.{i}", "rid")
    await limiter.close()
    rows = (await _auth_rows(store))[2:]
    assert [r["client"] for r in rows] == ["10.0.0.0", "10.0.0.1", "*", "*"]
    assert sum(r["diff"]["after"]["failures"] for r in rows) == 20


# ── valid tokens asking outside their scope ───────────────────────────────────────────────────


async def _denial_rows(store: ControlStore) -> list[dict[str, Any]]:
    return [
        {**r, "diff": orjson.loads(r["diff"])}
        for r in await _rows(store.settings)
        if r["action"] == "admin.access_denied"
    ]


async def test_a_token_asking_outside_its_scope_is_recorded_per_address_and_token(store: ControlStore) -> None:
    a = await store.create_org(ACTOR, "a")
    a1 = await store.create_workspace(ACTOR, a["id"], "a1")
    a2 = await store.create_workspace(ACTOR, a["id"], "a2")
    b = await store.create_org(ACTOR, "b")
    other_org, other_token = await store.create_admin_token(ACTOR, b["id"], None, "b")
    ws_row, ws_token = await store.create_admin_token(ACTOR, a["id"], a2["id"], "a2")
    api = AdminApi(store)
    # Another tenant's admin probes organization a's objects: each is a 404, as for a missing one.
    probes = [("GET", f"/orgs/{a['id']}/secrets"), ("PUT", f"/workspaces/{a1['id']}/policy")]
    transport = httpx.ASGITransport(app=api, client=("203.0.113.7", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://admin/admin/v1") as client:
        headers = {"authorization": f"Bearer {other_token}"}
        for i in range(30):
            method, path = probes[i % 2]
            response = await client.request(method, path, headers=headers, json={})
            assert response.status_code == 404
        missing = await client.get("/workspaces/ws_0000000000000000", headers=headers)
        hidden = await client.get(f"/workspaces/{a1['id']}", headers=headers)
        assert (missing.status_code, missing.json()) == (hidden.status_code, hidden.json())  # nothing to tell apart
    # A workspace admin asks for its org's audit log (403) and another workspace (404).
    transport = httpx.ASGITransport(app=api, client=("198.51.100.9", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://admin/admin/v1") as client:
        headers = {"authorization": f"Bearer {ws_token}"}
        assert (await client.get(f"/orgs/{a['id']}/audit", headers=headers)).status_code == 403
        assert (await client.get(f"/workspaces/{a1['id']}/users", headers=headers)).status_code == 404
        assert (await client.get(f"/workspaces/{a2['id']}/users", headers=headers)).status_code == 200
    await api.denials.settle()
    rows = await _denial_rows(store)
    firsts = {r["actor"]: (r["client"], r["diff"]["after"]["denials"]) for r in rows}
    assert firsts == {  # the first of each at once (written in the background), the rest counted
        f"admin_token/{other_org['id']}": ("203.0.113.7", 1),
        f"admin_token/{ws_row['id']}": ("198.51.100.9", 1),
    }
    first = next(r for r in rows if r["actor"] == f"admin_token/{other_org['id']}")["diff"]["after"]
    assert first["scopes"] == [{"token_id": other_org["id"], "org_id": b["id"], "workspace_id": None}]
    assert first["tried"] == [{"operation": "GET /orgs/{org_id}/secrets", "status": 404, "params": {"org_id": a["id"]}}]
    await api.close()  # shutdown writes what was counted since
    rows = await _denial_rows(store)
    assert [(r["actor"], r["diff"]["after"]["denials"]) for r in rows[2:]] == [
        (f"admin_token/{other_org['id']}", 30),  # 29 probes and the hidden workspace (the missing one is no denial)
        (f"admin_token/{ws_row['id']}", 1),
    ]
    tried = {t["operation"] for r in rows for t in r["diff"]["after"]["tried"]}
    assert tried == {
        "GET /orgs/{org_id}/secrets",
        "PUT /workspaces/{workspace_id}/policy",
        "GET /workspaces/{workspace_id}",
        "GET /orgs/{org_id}/audit",
        "GET /workspaces/{workspace_id}/users",
    }
    assert other_token not in str(rows) and ws_token not in str(rows)
    assert {r["org_id"] for r in rows} == {None}  # system rows: no tenant reads them through the API
    assert (await store.verify_audit()).ok


async def test_denials_past_the_tracked_tokens_share_one_row(store: ControlStore) -> None:
    now = [0.0]
    limiter = AccessDenials(store, window_s=60, max_clients=2, clock=lambda: now[0])
    tried = {"operation": "GET /orgs/{org_id}", "status": 404, "params": {"org_id": "org_x"}}
    for i in range(12):  # twelve tokens from one address: two tracked, ten share the `*` row
        await limiter.note("203.0.113.7", f"tok{i}", {"org_id": "org_b", "workspace_id": None}, tried, "rid")
    await limiter.close()
    rows = await _denial_rows(store)
    assert sorted((r["actor"], r["client"]) for r in rows) == [  # written in the background: in any order
        ("admin_token/*", "*"),
        ("admin_token/*", "*"),
        ("admin_token/tok0", "203.0.113.7"),
        ("admin_token/tok1", "203.0.113.7"),
    ]
    assert sum(r["diff"]["after"]["denials"] for r in rows) == 12
    assert all(len(r["diff"]["after"]["scopes"]) <= 10 for r in rows)  # a row's lists are bounded


# ── the client address behind a reverse proxy ────────────────────────────────────────────────


@pytest.mark.parametrize("trusted", [None, ["10.0.0.0/8"]], ids=["no_proxy_trusted", "proxy_trusted"])
async def test_failed_sign_ins_behind_a_proxy_count_per_client(store: ControlStore, trusted: list[str] | None) -> None:
    api = AdminApi(store, trusted_proxies=TrustedProxies(trusted) if trusted else None)
    behind_proxy = httpx.ASGITransport(app=api, client=("10.0.0.2", 4000))
    async with httpx.AsyncClient(transport=behind_proxy, base_url="http://admin") as client:
        # Three clients behind the proxy, which appends each one's address; the third sends a
        # forwarded address of its own to pass for someone else.
        for forwarded in ("203.0.113.7", "198.51.100.9", "192.0.2.1, 203.0.113.8"):
            for _ in range(3):
                response = await client.get("/admin/v1/whoami", headers={"x-forwarded-for": forwarded})
                assert response.status_code == 401
    # A client reaching the port directly rotates x-forwarded-for to get a fresh row every time.
    direct = httpx.ASGITransport(app=api, client=("203.0.113.66", 4000))
    async with httpx.AsyncClient(transport=direct, base_url="http://admin") as client:
        for i in range(5):
            response = await client.get("/admin/v1/whoami", headers={"x-forwarded-for": f"10.0.0.{i + 5}"})
            assert response.status_code == 401
    await api.close()
    counts: dict[str, int] = {}
    for r in await _auth_rows(store):
        counts[r["client"]] = counts.get(r["client"], 0) + r["diff"]["after"]["failures"]
    if trusted:
        assert counts == {"203.0.113.7": 3, "198.51.100.9": 3, "203.0.113.8": 3, "203.0.113.66": 5}
    else:  # nothing trusted (the default): the TCP peer, whatever the header says
        assert counts == {"10.0.0.2": 9, "203.0.113.66": 5}


def test_a_served_gateway_records_its_config_and_failed_sign_ins_and_anchors_at_shutdown(
    mock_server: Server,
    tmp_path: Path,
    control_settings: ControlSettings,  # noqa: F811
) -> None:
    settings = _settings(control_settings, tmp_path, audit_anchor_interval_s=3600)
    _seed(settings)
    control = f'''
[control]
enabled = true
database_url = "{settings.database_url.reveal()}"
audit_anchor_file = "{settings.audit_anchor_file}"
audit_anchor_interval_s = 3600
'''
    env = {**_env(), "SLUICEGATE_SERVER__TRUSTED_PROXIES": '["127.0.0.1"]'}  # the test is the proxy
    with start_gateway(gateway_config(tmp_path / "gw.toml", mock_server.url, control), env) as server:
        for _ in range(3):
            headers = {"authorization": "Bearer sga-guess", "x-forwarded-for": "203.0.113.50"}
            response = httpx.get(f"{server.url}/admin/v1/whoami", headers=headers)
            assert response.status_code == 401
        running = asyncio.run(_rows(settings))
    rows = asyncio.run(_rows(settings))
    config = [r for r in rows if r["action"] == "config.effective"]
    assert len(config) == 1 and config[0] in running and PROVIDER_KEY not in str(rows)
    failed = [
        (r["client"], orjson.loads(r["diff"])["after"]["failures"]) for r in rows if r["action"] == "admin.auth_failed"
    ]
    # The first at once, the rest counted and written at shutdown; by the address the trusted proxy forwarded.
    assert failed == [("203.0.113.50", 1), ("203.0.113.50", 2)]
    assert len([r for r in running if r["action"] == "admin.auth_failed"]) == 1
    assert _anchor_lines(Path(settings.audit_anchor_file or ""))[-1]["seq"] == rows[-1]["seq"]  # pinned at shutdown

    async def verify() -> audit.VerifyResult:
        store = ControlStore(settings)
        try:
            await store.open()
            return await store.verify_audit()
        finally:
            await store.close()

    result = asyncio.run(verify())
    assert result.ok and result.anchors >= 2, result


# ── PostgreSQL: a gateway role that can only add to the audit log ─────────────────────────────


def _documented_grants() -> str:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "control-plane.md").read_text()
    block = doc.split("```sql\n-- sluicegate: the gateway's role\n", 1)[1].split("```", 1)[0]
    return block


async def test_postgresql_grants_let_the_gateway_append_but_not_rewrite(
    pg_database: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    import asyncpg

    owner_url = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{pg_database}"
    role = f"sg_gw_{pg_database[-12:]}"
    owner = ControlStore(
        ControlSettings(database_url=owner_url, master_key=MASTER_KEY, audit_anchor_file=str(tmp_path / "a"))
    )
    await on_open(owner, await owner.open())  # the owner migrates
    await owner.close()
    admin = await asyncpg.connect(owner_url)
    try:
        await admin.execute(_documented_grants().replace("sluicegate_gateway", role))
        gw_url = f"postgresql://{role}@{PG_HOST}:{PG_PORT}/{pg_database}"
        gw = ControlStore(
            ControlSettings(database_url=gw_url, master_key=MASTER_KEY, audit_anchor_file=str(tmp_path / "a"))
        )
        try:
            await on_open(gw, await gw.open())
            await record_config(gw, Settings())
            org = await gw.create_org(ACTOR, "acme")
            await gw.create_workspace(ACTOR, org["id"], "w")
            await AuthFailures(gw).note("203.0.113.1", "rid")
            assert (await gw.verify_audit()).ok
        finally:
            await gw.close()
        attacker = await asyncpg.connect(gw_url)
        try:
            for sql in (
                "UPDATE audit_log SET actor = 'someone/else' WHERE seq = 2",
                "DELETE FROM audit_log WHERE seq > 2",
                "TRUNCATE audit_log",
                "DROP TABLE audit_log",
                "ALTER TABLE audit_log DISABLE TRIGGER ALL",
            ):
                with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                    await attacker.execute(sql)
            assert await attacker.fetchval("SELECT count(*) FROM audit_log") >= 6  # it can still read
        finally:
            await attacker.close()
    finally:
        await admin.execute(f'DROP OWNED BY "{role}"')
        await admin.close()
        await _drop_role(role)


async def _drop_role(role: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/postgres")
    try:
        await conn.execute(f'DROP ROLE IF EXISTS "{role}"')
    finally:
        await conn.close()
