"""Gateway keys: a client's key arrives as `Authorization: Bearer …` or `x-api-key: …` (recent
Anthropic SDKs send the first, older ones the second; both are accepted on every route) and is
looked up by its SHA-256 in memory, never in a database on the request path."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from sluicegate.config import KeySettings
from sluicegate.errors import Unauthenticated
from sluicegate.secrets import hash_key


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling: the key, and the organization, workspace and user it belongs to."""

    key_name: str
    workspace: str
    org: str = "default"
    user: str | None = None


class Authenticator(Protocol):
    """What the pipeline asks of a key source: `KeyStore` (config keys) or the control plane's view."""

    def authenticate(self, authorization: bytes | None, x_api_key: bytes | None) -> Identity: ...


def presented_keys(authorization: bytes | None, x_api_key: bytes | None) -> list[str]:
    """The keys a request presents: a Bearer token, an `x-api-key`, or both.

    Raises:
        Unauthenticated: the request presents no key (`missing_api_key`).
    """
    keys = []
    if authorization:
        scheme, _, token = authorization.partition(b" ")
        if scheme.lower() == b"bearer" and token.strip():
            keys.append(token.strip().decode("latin-1"))
    if x_api_key and x_api_key.strip():
        keys.append(x_api_key.strip().decode("latin-1"))
    if not keys:
        raise Unauthenticated(
            "no gateway key: send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'",
            code="missing_api_key",
        )
    return keys


class KeyStore:
    """The gateway keys this instance accepts, by hash.

    Arguments:
        keys: the configured keys (hashes only).
    """

    def __init__(self, keys: Iterable[KeySettings]) -> None:
        self._by_hash = {k.sha256: Identity(k.name, k.workspace, k.org, k.user) for k in keys}

    def __len__(self) -> int:
        return len(self._by_hash)

    def authenticate(self, authorization: bytes | None, x_api_key: bytes | None) -> Identity:
        """The identity behind the request's key.

        Raises:
            Unauthenticated: no key was sent, or it is not a known key.
        """
        tokens = presented_keys(authorization, x_api_key)
        for token in tokens:
            identity = self._by_hash.get(hash_key(token))
            if identity is not None:
                return identity
        raise Unauthenticated("the gateway key is not valid")
