from __future__ import annotations

from pathlib import Path

import pytest

from sluicegate.control.crypto import MasterKey, MasterKeyError, generate_master_key, load_master_key
from sluicegate.control.settings import ControlSettings


def test_seal_and_open_round_trip_bound_to_the_row() -> None:
    key = MasterKey(generate_master_key())
    sealed = key.seal("sk-abc", "workspace:ws_1:openai")
    assert "sk-abc" not in sealed and sealed.startswith(f"v1:{key.key_id}:")
    assert key.open(sealed, "workspace:ws_1:openai") == "sk-abc"
    with pytest.raises(MasterKeyError, match="does not open"):
        key.open(sealed, "workspace:ws_2:openai")
    with pytest.raises(MasterKeyError, match="sealed under master key"):
        MasterKey(generate_master_key()).open(sealed, "workspace:ws_1:openai")
    assert "sk-abc" not in repr(key) and key.key_id in repr(key)


@pytest.mark.parametrize("bad", ["", "not base64 !!", "c2hvcnQ="])
def test_malformed_master_keys_are_refused(bad: str) -> None:
    with pytest.raises(MasterKeyError):
        MasterKey(bad)


def test_key_file_is_created_beside_a_sqlite_database(tmp_path: Path) -> None:
    settings = ControlSettings(database_url=f"sqlite:///{tmp_path / 'c.db'}")
    assert load_master_key(settings) is None
    created = load_master_key(settings, create=True)
    again = load_master_key(settings)
    assert created is not None and again is not None and created.key_id == again.key_id
    assert (tmp_path / "c.db.key").stat().st_mode & 0o777 == 0o600


def test_postgres_without_a_key_has_none_and_a_named_missing_file_is_an_error(tmp_path: Path) -> None:
    assert load_master_key(ControlSettings(database_url="postgresql://u@h/db"), create=True) is None
    with pytest.raises(MasterKeyError, match="does not exist"):
        load_master_key(ControlSettings(master_key_file=str(tmp_path / "missing")))
