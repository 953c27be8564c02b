"""Gateway keys and secret values: generated with 256 bits of randomness, stored only as hashes,
and wrapped so that they can never be printed by accident.

`Secret` (and `SecretUrl`, for a URL that may carry a password) is also a settings type: a setting
declared as one is validated from a string, prints masked in reprs, logs, tracebacks and
`model_dump(mode="json")` (what `sluicegate config` prints), and hands its value only to
`reveal()`, at the one place it is used.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets as _stdlib_secrets
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import CoreSchema, core_schema

KEY_PREFIX = "sg-"
MASK = "*****"
# Query parameters that carry credentials in connection URLs (`?password=…`, `?token=…`).
_SECRET_PARAM = re.compile(r"([?&][^=&#]*(?:pass|secret|token|key|auth|sig)[^=&#]*=)[^&#]*", re.IGNORECASE)


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

    def masked(self) -> str:
        """What printers show instead of the value."""
        return MASK

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.masked()!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __len__(self) -> int:
        return len(self._value)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        """A settings type: validated from a string; masked when dumped as JSON (`sluicegate config`),
        kept as the object in Python dumps (whose repr masks it)."""
        return core_schema.no_info_plain_validator_function(
            cls._validate,
            json_schema_input_schema=core_schema.str_schema(),
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda secret: secret.masked(), when_used="json"
            ),
        )

    @classmethod
    def _validate(cls, value: object) -> Secret:
        if isinstance(value, Secret):
            return value if type(value) is cls else cls(value.reveal())
        if isinstance(value, str):
            return cls(value)
        raise ValueError("Input should be a valid string")  # never the value: it is meant to be secret


class SecretUrl(Secret):
    """A URL that may hold a password (`redis://:pw@host`, `postgresql://user:pw@host/db`): it prints
    as the URL with the password and credential query parameters masked, which is also its `str()`,
    the way SQLAlchemy prints a URL. Connect with `reveal()`."""

    __slots__ = ()

    def masked(self) -> str:
        return mask_url(self._value)

    def __str__(self) -> str:
        return self.masked()


def mask_url(url: str) -> str:
    """`url` with the password of its user info and the values of credential-like query parameters
    replaced by `*****`; a user name, the host, the path and other parameters stay readable."""
    scheme, sep, rest = url.partition("://")
    if sep:
        head = re.split(r"[?#]", rest, maxsplit=1)[0]
        at = head.rfind("@")
        if at != -1 and ":" in head[:at]:
            user = head[:at].split(":", 1)[0]
            rest = f"{user}:{MASK}{rest[at:]}"
        url = f"{scheme}://{rest}"
    return _SECRET_PARAM.sub(rf"\1{MASK}", url)


def generate_key() -> str:
    """A new gateway key: `sg-` and 43 URL-safe characters (256 bits of randomness)."""
    return KEY_PREFIX + _stdlib_secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The stored form of a gateway key: its SHA-256 in hex.

    A fast hash is right here: keys carry 256 random bits, so there is nothing to brute-force,
    and the lookup runs on every request.
    """
    return hashlib.sha256(key.encode()).hexdigest()
