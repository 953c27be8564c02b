"""Gateway keys and admin tokens: 256 random bits, stored as SHA-256 only, shown once.

A key's `prefix` (`sg-` and four characters) is kept to tell keys apart in listings; it carries
about 24 bits and no way back to the key. Hash comparisons use `hmac.compare_digest`.
"""

from __future__ import annotations

import hmac
import secrets as _stdlib_secrets
from datetime import UTC, datetime

from sluicegate.secrets import generate_key, hash_key

__all__ = [
    "ADMIN_TOKEN_PREFIX",
    "display_prefix",
    "generate_admin_token",
    "generate_key",
    "hash_key",
    "is_live",
    "new_id",
    "now_iso",
    "same_hash",
]

ADMIN_TOKEN_PREFIX = "sga-"


def generate_admin_token() -> str:
    """A new admin token: `sga-` and 43 URL-safe characters (256 bits)."""
    return ADMIN_TOKEN_PREFIX + _stdlib_secrets.token_urlsafe(32)


def new_id(kind: str) -> str:
    """A new entity id such as `ws_3f9a1c0b7d2e4a61` (64 random bits)."""
    return f"{kind}_{_stdlib_secrets.token_hex(8)}"


def display_prefix(key: str) -> str:
    return key[:7]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def same_hash(stored: str, key: str) -> bool:
    """Whether `key` hashes to `stored`, compared in constant time."""
    return hmac.compare_digest(stored.encode(), hash_key(key).encode())


def is_live(expires_at: str | None, revoked_at: str | None, now: datetime | None = None) -> bool:
    """A key is live until it is revoked or its expiry passes."""
    if revoked_at is not None:
        return False
    if expires_at is None:
        return True
    return datetime.fromisoformat(expires_at) > (now or datetime.now(UTC))
