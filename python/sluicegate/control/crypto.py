"""Provider secrets at rest: AES-256-GCM under the operator's master key.

Each value is sealed with a fresh 96-bit nonce and bound to its row (level, scope, provider) as
associated data, so a ciphertext copied to another row does not open. The stored form is
`v1:<key id>:<base64 nonce+ciphertext>`; the key id (8 hex digits of the key's SHA-256) tells a
wrong master key from a damaged value without revealing anything.

Master keys form a keyring: the current key (`master_key` or `master_key_file`) seals, and it and
the retired ones (`master_retired_keys`) open, so a key can be rotated without a window where some
secrets do not open; `sluicegate admin reseal` then seals every secret under the current key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sluicegate.control.settings import ControlSettings

__all__ = [
    "MasterKey",
    "MasterKeyError",
    "MasterKeyring",
    "decode_key",
    "generate_master_key",
    "hkdf",
    "load_master_key",
    "sealed_key_id",
]


class MasterKeyError(ValueError):
    """No usable master key, or a value sealed under another key."""


def generate_master_key() -> str:
    """A new master key: 32 random bytes, URL-safe base64."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def decode_key(encoded: str, what: str = "the master key") -> bytes:
    """The 32 bytes of a key written in URL-safe base64.

    Raises:
        MasterKeyError: not 32 bytes of URL-safe base64 (the message names `what`, never the value).
    """
    try:
        raw = base64.urlsafe_b64decode(encoded.strip().encode())
    except (binascii.Error, ValueError):
        raise MasterKeyError(f"{what} is not URL-safe base64") from None
    if len(raw) != 32:
        raise MasterKeyError(f"{what} must be 32 bytes (URL-safe base64)")
    return raw


def hkdf(secret: bytes, label: bytes) -> bytes:
    """32 bytes derived from `secret` for one purpose (HKDF-SHA256, `label` as its info): keys for
    different purposes never coincide, and none reveals the secret."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(secret)


class MasterKey:
    """Seals and opens provider secrets.

    Arguments:
        encoded: 32 bytes in URL-safe base64.
        what: the key's name in messages (a setting's name, never the value).

    Raises:
        MasterKeyError: not 32 bytes of base64.
    """

    __slots__ = ("_aead", "_raw", "key_id")

    def __init__(self, encoded: str, what: str = "the master key") -> None:
        raw = decode_key(encoded, what)
        self._aead = AESGCM(raw)
        self._raw = raw
        self.key_id = hashlib.sha256(raw).hexdigest()[:8]

    def __repr__(self) -> str:
        return f"MasterKey(key_id={self.key_id!r})"

    def derive(self, label: bytes) -> bytes:
        """A key for another purpose (such as the audit chain's), derived with HKDF under `label`."""
        return hkdf(self._raw, label)

    def seal(self, plaintext: str, context: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return f"v1:{self.key_id}:{base64.b64encode(nonce + sealed).decode()}"

    def open(self, stored: str, context: str) -> str:
        """The plaintext of a sealed value.

        Raises:
            MasterKeyError: sealed under another key, or damaged.
        """
        key_id = sealed_key_id(stored)
        if key_id != self.key_id:
            raise MasterKeyError(f"a secret is sealed under master key {key_id}, not {self.key_id}")
        try:
            raw = base64.b64decode(stored.split(":", 2)[2], validate=True)
            return self._aead.decrypt(raw[:12], raw[12:], context.encode()).decode()
        except (InvalidTag, binascii.Error, ValueError):
            raise MasterKeyError("a sealed secret does not open (damaged or moved)") from None


class MasterKeyring:
    """The current master key, which seals (and derives the audit key), and the retired ones: every
    key of the ring opens what it sealed.

    Arguments:
        current: the key that seals.
        retired: keys used before a rotation (the current one among them is ignored).
    """

    __slots__ = ("current", "keys", "retired")

    def __init__(self, current: MasterKey, retired: Sequence[MasterKey] = ()) -> None:
        self.current = current
        self.retired = tuple({k.key_id: k for k in retired if k.key_id != current.key_id}.values())
        self.keys = {current.key_id: current} | {k.key_id: k for k in self.retired}

    @property
    def key_id(self) -> str:
        """The current key's id."""
        return self.current.key_id

    def __repr__(self) -> str:
        return f"MasterKeyring(current={self.key_id!r}, retired={[k.key_id for k in self.retired]!r})"

    def derive(self, label: bytes) -> bytes:
        return self.current.derive(label)

    def seal(self, plaintext: str, context: str) -> str:
        return self.current.seal(plaintext, context)

    def open(self, stored: str, context: str) -> str:
        """The plaintext of a value sealed under any key of the ring.

        Raises:
            MasterKeyError: sealed under a key not in the ring, or damaged.
        """
        key_id = sealed_key_id(stored)
        key = self.keys.get(key_id)
        if key is None:
            raise MasterKeyError(
                f"a secret is sealed under master key {key_id}, which is not in the keyring ({', '.join(self.keys)})"
            )
        return key.open(stored, context)


def sealed_key_id(stored: str) -> str:
    """The id of the master key a stored value is sealed under (`?` when it is not in the v1 form)."""
    parts = stored.split(":", 2)
    return parts[1] if len(parts) == 3 and parts[0] == "v1" else "?"


def load_master_key(
    settings: ControlSettings, create: bool = False, sealed: Sequence[str] = ()
) -> MasterKeyring | None:
    """The master keyring: the current key from `master_key`, `master_key_file`, or the file beside
    a SQLite database, and the retired ones from `master_retired_keys`; checked against the secrets
    already sealed: never a silent new key that opens none of them.

    Arguments:
        settings: the `[control]` section.
        create: create the key file beside a SQLite database when there is none. Honoured only on
            a first start, while no secret is sealed (`sealed` is empty).
        sealed: the key id of every stored sealed secret (`sealed_key_id`).

    Returns:
        The keyring, or None when no key is configured and nothing is sealed (setting a secret then
        fails with a clear error).

    Raises:
        MasterKeyError: a configured key is malformed or its file unreadable; retired keys without a
            current one; or secrets are sealed and no key is configured, or some are sealed under a
            key the ring does not hold.
    """
    key, where = _configured(settings, create and not sealed)
    retired = [
        MasterKey(k.reveal(), f"control.master_retired_keys[{i}]") for i, k in enumerate(settings.master_retired_keys)
    ]
    if key is None and retired:
        raise MasterKeyError(f"control.master_retired_keys is set but no current master key is ({where})")
    ring = MasterKeyring(key, retired) if key is not None else None
    if not sealed:
        return ring
    counts = Counter(sealed)
    named = ", ".join(f"{n} under {key_id}" for key_id, n in sorted(counts.items()))
    if ring is None:
        raise MasterKeyError(
            f"{len(sealed)} provider secret(s) are sealed ({named}) and no master key is configured: "
            f"restore {where} (a new key would open none of them, and calls would go out without them)"
        )
    if set(counts) - set(ring.keys) - {"?"}:  # a damaged row opens under no key: its calls fail closed
        retired_ids = f" (retired: {', '.join(k.key_id for k in ring.retired)})" if ring.retired else ""
        raise MasterKeyError(
            f"the master key from {where} is {ring.key_id}{retired_ids}, but provider secrets are sealed "
            f"({named}): configure the key they were sealed under, as the current key or in "
            "control.master_retired_keys"
        )
    return ring


def _configured(settings: ControlSettings, create: bool) -> tuple[MasterKey | None, str]:
    """The configured key (or None) and where it comes from, for messages."""
    if settings.master_key:
        return MasterKey(settings.master_key.reveal()), "control.master_key"
    path = Path(settings.master_key_file) if settings.master_key_file else None
    if path is None:
        db = settings.sqlite_path()
        if db is None:
            return None, "control.master_key or control.master_key_file"
        path = db.with_name(db.name + ".key")
    where = f"the master key file {path}"
    if not path.exists():
        if settings.master_key_file:
            raise MasterKeyError(f"control.master_key_file {path} does not exist")
        if not create:
            return None, where
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(generate_master_key() + "\n")
    try:
        return MasterKey(path.read_text()), where
    except OSError as exc:
        raise MasterKeyError(f"cannot read the master key file {path}: {exc.strerror}") from None
