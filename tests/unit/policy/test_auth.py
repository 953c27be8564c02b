import pytest

from sluicegate.config import KeySettings
from sluicegate.errors import Unauthenticated
from sluicegate.policy.auth import Identity, KeyStore
from sluicegate.secrets import Secret, generate_key, hash_key

KEY = generate_key()
STORE = KeyStore([KeySettings(name="k1", sha256=hash_key(KEY), workspace="ws")])


@pytest.mark.parametrize(
    ("authorization", "x_api_key"),
    [
        (f"Bearer {KEY}".encode(), None),
        (f"bearer  {KEY} ".encode(), None),
        (None, KEY.encode()),
        (b"Bearer sg-wrong", KEY.encode()),  # either header may carry the valid key
    ],
)
def test_accepts_either_header(authorization: bytes | None, x_api_key: bytes | None) -> None:
    assert STORE.authenticate(authorization, x_api_key) == Identity("k1", "ws")


@pytest.mark.parametrize(
    ("authorization", "x_api_key", "code"),
    [
        (None, None, "missing_api_key"),
        (b"Basic abc", None, "missing_api_key"),
        (b"Bearer ", b"  ", "missing_api_key"),
        (b"Bearer sg-nope", None, "invalid_api_key"),
        (None, KEY.upper().encode(), "invalid_api_key"),
    ],
)
def test_refuses_missing_or_unknown_keys(authorization: bytes | None, x_api_key: bytes | None, code: str) -> None:
    with pytest.raises(Unauthenticated) as info:
        STORE.authenticate(authorization, x_api_key)
    assert info.value.code == code and info.value.status == 401
    assert KEY not in str(info.value)


def test_keys_are_long_random_and_hash_stably() -> None:
    a, b = generate_key(), generate_key()
    assert a != b and a.startswith("sg-") and len(a) >= 3 + 43
    assert hash_key(a) == hash_key(a) and len(hash_key(a)) == 64


def test_secret_never_prints() -> None:
    s = Secret("sk-very-secret")
    assert "very-secret" not in repr(s) + str(s) + f"{s}"
    assert s.reveal() == "sk-very-secret"
