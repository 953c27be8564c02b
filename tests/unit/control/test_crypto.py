from __future__ import annotations

from pathlib import Path

import pytest

from sluicegate.control.crypto import MasterKey, MasterKeyError, MasterKeyring, generate_master_key, load_master_key
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


def test_a_keyring_seals_with_the_current_key_and_opens_with_every_key() -> None:
    old, new, stranger = (MasterKey(generate_master_key()) for _ in range(3))
    ring = MasterKeyring(new, [old, new])
    assert ring.key_id == new.key_id and [k.key_id for k in ring.retired] == [old.key_id]
    sealed_old = old.seal("sk-old", "org:org_1:openai")
    sealed_new = ring.seal("sk-new", "org:org_1:openai")
    assert sealed_new.startswith(f"v1:{new.key_id}:")
    assert ring.open(sealed_old, "org:org_1:openai") == "sk-old"
    assert ring.open(sealed_new, "org:org_1:openai") == "sk-new"
    with pytest.raises(MasterKeyError, match="not in the keyring"):
        ring.open(stranger.seal("sk-x", "org:org_1:openai"), "org:org_1:openai")
    with pytest.raises(MasterKeyError, match="does not open"):
        ring.open(sealed_old, "org:org_2:openai")  # still bound to its row
    assert ring.derive(b"label") == new.derive(b"label")


def test_retired_master_keys_come_from_the_settings_and_the_environment(tmp_path: Path) -> None:
    from sluicegate.config import load_settings

    old, new = generate_master_key(), generate_master_key()
    env = {
        "SLUICEGATE_CONTROL__MASTER_KEY": new,
        "SLUICEGATE_CONTROL__MASTER_RETIRED_KEYS": f'["{old}"]',
    }
    settings = load_settings(environ=env).control
    assert old not in repr(settings) and new not in repr(settings)
    ring = load_master_key(settings, sealed=[MasterKey(old).key_id, MasterKey(new).key_id])
    assert ring is not None and ring.key_id == MasterKey(new).key_id
    assert set(ring.keys) == {MasterKey(old).key_id, MasterKey(new).key_id}
    # Old configurations (one key) still load: a ring of one.
    single = load_master_key(ControlSettings(master_key=new), sealed=[MasterKey(new).key_id])
    assert single is not None and list(single.keys) == [MasterKey(new).key_id]
    # A secret sealed under a key the ring does not hold stops the start, naming ids only.
    with pytest.raises(MasterKeyError, match=r"control\.master_retired_keys") as caught:
        load_master_key(ControlSettings(master_key=new), sealed=[MasterKey(old).key_id])
    assert old not in str(caught.value) and new not in str(caught.value)
    # Retired keys without a current one, and a malformed retired key (named by position).
    with pytest.raises(MasterKeyError, match="no current master key"):
        load_master_key(ControlSettings(database_url="postgresql://u@h/db", master_retired_keys=[old]))
    with pytest.raises(MasterKeyError, match=r"control.master_retired_keys\[1\]") as bad:
        load_master_key(ControlSettings(master_key=new, master_retired_keys=[old, "bm9wZQ=="]))
    assert "bm9wZQ" not in str(bad.value)
