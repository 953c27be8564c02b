"""Gateway keys and secret values: generated with 256 bits of randomness, stored only as hashes,
and wrapped so that they can never be printed by accident."""

from __future__ import annotations

import hashlib
import hmac
import secrets as _stdlib_secrets

KEY_PREFIX = "sg-"


class Secret:
    """A string that prints as `*****` in reprs, logs and tracebacks.

    Arguments:
        value: the secret value; read it with `reveal()` at the one place it is used.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('*****')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def generate_key() -> str:
    """A new gateway key: `sg-` and 43 URL-safe characters (256 bits of randomness)."""
    return KEY_PREFIX + _stdlib_secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The stored form of a gateway key: its SHA-256 in hex.

    A fast hash is right here: keys carry 256 random bits, so there is nothing to brute-force,
    and the lookup runs on every request.
    """
    return hashlib.sha256(key.encode()).hexdigest()
