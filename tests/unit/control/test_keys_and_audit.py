from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta

from sluicegate.control import admin_api, keys
from sluicegate.control.admin_api import ENDPOINTS
from sluicegate.control.audit import mask, row_hash
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
