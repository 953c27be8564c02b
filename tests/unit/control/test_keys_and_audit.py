from __future__ import annotations

import base64
import inspect
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from tests.unit.control.pg import MASTER_KEY

from sluicegate.control import admin_api, anchors, audit, keys
from sluicegate.control.admin_api import ENDPOINTS
from sluicegate.control.audit import AuditKey, mask, row_hash
from sluicegate.control.crypto import MasterKey
from sluicegate.control.openapi import openapi_document
from sluicegate.control.settings import ControlSettings
from sluicegate.secrets import hash_key


def test_keys_and_tokens_carry_256_bits_and_compare_in_constant_time() -> None:
    key, token = keys.generate_key(), keys.generate_admin_token()
    assert key.startswith("sg-") and len(key) == 46 and token.startswith("sga-") and len(token) == 47
    assert keys.same_hash(hash_key(key), key) and not keys.same_hash(hash_key(key), token)
    assert "compare_digest" in inspect.getsource(keys.same_hash)
    assert "same_hash" in inspect.getsource(admin_api.AdminApi._principal)


def test_liveness() -> None:
    now = datetime.now(UTC)
    assert keys.is_live(None, None)
    assert not keys.is_live(None, now.isoformat())
    assert keys.is_live((now + timedelta(hours=1)).isoformat(), None)
    assert not keys.is_live((now - timedelta(seconds=1)).isoformat(), None)


def test_mask_hides_secret_fields_at_any_depth() -> None:
    masked = mask({"value": "sk-1", "nested": [{"api_key": "x", "name": "ok"}], "key_hash": "h", "base_url": "u"})
    assert masked == {
        "value": "*****",
        "nested": [{"api_key": "*****", "name": "ok"}],
        "key_hash": "*****",
        "base_url": "u",
    }


def test_row_hash_covers_every_field() -> None:
    row = {"seq": 1, "at": "t", "actor": "a", "action": "x", "target": "y", "org_id": None}
    row |= {"request_id": "r", "client": "c", "diff": "{}"}
    base = row_hash("", row)
    for field in row:
        assert row_hash("", {**row, field: "changed"}) != base, field
    assert row_hash("prev", row) != base


def test_openapi_lists_every_endpoint_and_its_bodies() -> None:
    doc = openapi_document(ENDPOINTS)
    assert sum(len(ops) for ops in doc["paths"].values()) == len(ENDPOINTS)
    assert {"PolicyIn", "CapIn", "SecretIn", "KeyIn"} <= set(doc["components"]["schemas"])
    assert len({op["operationId"] for ops in doc["paths"].values() for op in ops.values()}) == len(ENDPOINTS)


def test_settings_urls_and_secret_not_dumped() -> None:
    s = ControlSettings(database_url="sqlite:///var/c.db", master_key="k" * 44)
    assert s.async_url() == "sqlite+aiosqlite:///var/c.db" and str(s.sqlite_path()) == "var/c.db"
    assert s.model_dump(mode="json")["master_key"] == "*****" and "k" * 44 not in repr(s) + str(s.model_dump())
    pg = ControlSettings(database_url="postgresql://u@h:5432/d")
    assert pg.async_url() == "postgresql+asyncpg://u@h:5432/d" and pg.sqlite_path() is None


def test_a_password_in_a_url_never_prints() -> None:
    s = ControlSettings(database_url="postgresql://app:hunter2@db:5432/sg", redis_url="redis://:pw@r:6379/0")
    for dumped in (str(s.model_dump()), str(s.model_dump(mode="json")), repr(s), str(s.database_url)):
        assert "hunter2" not in dumped and "pw@" not in dumped and "app:*****@db" in dumped
    assert s.async_url() == "postgresql+asyncpg://app:hunter2@db:5432/sg"


OTHER_KEY = base64.urlsafe_b64encode(b"another audit key, 32 bytes long").decode()


def test_keys_derive_apart_and_settings_keep_them_secret() -> None:
    master = MasterKey(MASTER_KEY)
    derived = AuditKey(master.derive(audit.AUDIT_LABEL), "the master key")
    assert derived.key_id == AuditKey.from_secret(base64.urlsafe_b64decode(MASTER_KEY), "x").key_id
    assert derived.key_id != master.key_id and derived.key_id != AuditKey.from_secret(b"k" * 32, "x").key_id
    s = ControlSettings(audit_key=OTHER_KEY, audit_retired_keys=[MASTER_KEY])
    assert OTHER_KEY not in str(s.model_dump()) + repr(s) and MASTER_KEY not in str(s.model_dump()) + repr(s)
    with pytest.raises(ValueError, match="not both"):
        ControlSettings(audit_key=OTHER_KEY, audit_key_file="/x")
    with pytest.raises(audit.AuditKeyError, match=r"control\.audit_key must be 32 bytes"):
        audit.load_keyring(ControlSettings(audit_key="c2hvcnQ="), None)


def test_anchor_lines_are_read_back_and_checked(tmp_path: Path) -> None:
    key = AuditKey.from_secret(b"k" * 32, "test")
    path = tmp_path / "a"
    path.write_bytes(anchors.anchor_line(key, audit.Head(3, "hmac-v1:x:y"), "t") + b"\n")
    read = anchors.read([path, tmp_path / "missing"], audit.Keyring.of(key))
    assert read.items == (anchors.Anchor(3, "hmac-v1:x:y", "t"),) and read.forged is None
    other = anchors.read([path], audit.Keyring.of(AuditKey.from_secret(b"j" * 32, "test")))
    assert other.items == () and other.forged is not None and other.forged[:3] == (str(path), 1, 3)
    # A forged line with characters that are not ASCII is reported as forged, not a crash.
    line = orjson.loads(path.read_bytes())
    path.write_bytes(orjson.dumps({**line, "mac": "é" * 64}) + b"\n")
    forged = anchors.read([path], audit.Keyring.of(key))
    assert forged.forged is not None and forged.forged[3] == "its HMAC does not match (forged)"


def test_a_long_anchor_file_is_chained_from_its_last_line(tmp_path: Path) -> None:
    """The writer reads the file's tail, not its whole: a file far longer than the tail it reads
    still chains, and two writers on one file (two processes) keep one chain."""
    key = AuditKey.from_secret(b"k" * 32, "test")
    path = tmp_path / "a"
    one, two = (anchors.AnchorWriter(path, key, 0) for _ in range(2))
    for seq in range(1, 101):
        (one if seq % 3 else two).note(audit.Head(seq, f"hmac-v1:{key.key_id}:{seq:064x}"))
    assert path.stat().st_size > 2 * anchors._TAIL
    read = anchors.read([path], audit.Keyring.of(key))
    assert read.forged is None and len(read.items) == 100 and read.legacy == 0
    lines = path.read_bytes().splitlines()
    assert orjson.loads(lines[0])["prev"] == "" and orjson.loads(lines[1])["prev"] == orjson.loads(lines[0])["mac"]


def test_a_keyed_row_hash_names_its_key_and_covers_every_field_and_the_link() -> None:
    key = AuditKey.from_secret(b"k" * 32, "test")
    row = {"seq": 1, "at": "t", "actor": "a", "action": "x", "target": "y", "org_id": None}
    row |= {"request_id": "r", "client": "c", "diff": "{}"}
    base = key.row_hash("", row)
    assert base.startswith(f"hmac-v1:{key.key_id}:") and len(base.split(":")[2]) == 64
    for field in row:
        assert key.row_hash("", {**row, field: "changed"}) != base, field
    assert key.row_hash("prev", row) != base
    assert AuditKey.from_secret(b"j" * 32, "test").row_hash("", row) != base


async def test_anchors_are_written_at_most_once_an_interval_and_the_last_on_flush(tmp_path: Path) -> None:
    now = [0.0]
    path = tmp_path / "a"
    writer = anchors.AnchorWriter(path, AuditKey.from_secret(b"k" * 32, "test"), 5.0, clock=lambda: now[0])
    for t, seq in [(0, 1), (1, 2), (2, 3)]:
        now[0] = t
        writer.note(audit.Head(seq, f"h{seq}"))
    assert [orjson.loads(line)["seq"] for line in path.read_bytes().splitlines()] == [1]
    writer.flush()  # shutdown: the newest head, not every one
    writer.flush()  # nothing new: nothing written
    now[0] = 10
    writer.note(audit.Head(4, "h4"))  # the interval has passed: at once
    assert [orjson.loads(line)["seq"] for line in path.read_bytes().splitlines()] == [1, 3, 4]
    assert anchors.AnchorWriter(tmp_path / "b", None, 0).path is None  # no key: no anchors, which would prove nothing


def test_config_digests_fingerprint_secrets_by_key_and_name_the_changed_section() -> None:
    from sluicegate.config import Settings
    from sluicegate.control.system_events import config_digest

    def settings(header: str, api_key: str) -> Settings:
        provider = {"kind": "openai", "api_key": api_key, "headers": {"x-org-token": header}}
        return Settings.model_validate({"providers": {"openai": provider}})

    key = AuditKey.from_secret(b"k" * 32, "test")
    base = config_digest(settings("hdr-secret-1", "sk-secret-1"), key)
    assert "secret-1" not in str(base) and base["digest"].startswith("hmac:")
    for changed in (settings("hdr-secret-2", "sk-secret-1"), settings("hdr-secret-1", "sk-secret-2")):
        other = config_digest(changed, key)
        assert {k for k, v in other["sections"].items() if base["sections"][k] != v} == {"providers"}
    assert config_digest(settings("hdr-secret-1", "sk-secret-1"), key) == base  # stable across starts
    unkeyed = config_digest(settings("hdr-secret-1", "sk-secret-1"), None)
    assert unkeyed["digest"].startswith("sha256:") and unkeyed == config_digest(settings("other", "other"), None)
