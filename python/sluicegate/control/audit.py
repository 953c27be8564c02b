"""The audit log: one append-only row per administrative change or system event, in a keyed chain.

Each row's `hash` covers the previous row's hash and the row's canonical JSON (seq, time, actor,
action, target, org, request id, client, diff), so a row cannot change, move or vanish without
breaking every row after it. Two forms exist:

- `hmac-v1:<key id>:<hex>`: HMAC-SHA256 under the audit key. The key is not in the database: it is
  derived (HKDF, its own label) from `control.audit_key` or, by default, from the master key. With
  database access alone, a row can be edited but not re-signed.
- `<hex>` (legacy): plain SHA-256, as written before keyed chains. Such rows are accepted only as a
  prefix: the first keyed row's HMAC covers the last legacy hash, which seals the prefix. A legacy
  row after a keyed one is a rewrite.

The key id in each hash names the key that signed it, so rows signed before a rotation are checked
with the key in `control.audit_retired_keys`. Deleting the newest rows, or all of them, leaves a
valid chain behind: `anchors.py` pins the head outside the database, and `verify` checks against it.
`control_state` also keeps the head (written in the same transaction) as a cheap first check.

Diffs hold only what `mask()` lets through: secret values and key hashes become `*****`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sluicegate.config import ConfigError
from sluicegate.control.crypto import MasterKeyError, decode_key, hkdf
from sluicegate.control.keys import now_iso
from sluicegate.control.models import audit_log, state

if TYPE_CHECKING:
    from sluicegate.control.anchors import Anchors
    from sluicegate.control.crypto import MasterKeyring
    from sluicegate.control.settings import ControlSettings

__all__ = [
    "SYSTEM",
    "Actor",
    "AuditKey",
    "AuditKeyError",
    "Head",
    "Keyring",
    "VerifyResult",
    "append",
    "latest",
    "load_keyring",
    "lock",
    "mask",
    "need_key",
    "read_head",
    "record_system_event",
    "row_hash",
    "verify",
]

MASK = "*****"
_SECRET_FIELDS = frozenset({"value", "api_key", "key", "token", "key_hash", "token_hash", "ciphertext", "secret"})
_FIELDS = ("seq", "at", "actor", "action", "target", "org_id", "request_id", "client", "diff")
KEYED = "hmac-v1"
_KEYED_HASH = re.compile(r"hmac-v1:([0-9a-f]{8}):([0-9a-f]{64})")
_LEGACY_HASH = re.compile(r"[0-9a-f]{64}")
# HKDF labels: the audit key's root is derived from the master key (or `audit_key`) under the
# first; the chain's and the anchors' keys from that root under the others.
AUDIT_LABEL = b"sluicegate audit key v1"
_CHAIN_LABEL = b"sluicegate audit chain v1"
_ANCHOR_LABEL = b"sluicegate audit anchor v1"


class AuditKeyError(ConfigError):
    """The audit key is malformed, or missing where the chain needs it (a start-up error)."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a change, from where, in which request."""

    name: str
    request_id: str = ""
    client: str = ""


SYSTEM = Actor("system", "", "local")


class Head(NamedTuple):
    """The newest row of the chain: its seq and its hash (seq 0 and "" for an empty log)."""

    seq: int
    hash: str


def mask(value: Any) -> Any:
    """`value` with every secret field replaced by `*****` (recursively)."""
    if isinstance(value, dict):
        return {k: (MASK if k in _SECRET_FIELDS and v is not None else mask(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    return value


def _content(row: dict[str, Any]) -> bytes:
    return orjson.dumps({k: row[k] for k in _FIELDS}, option=orjson.OPT_SORT_KEYS)


def row_hash(prev_hash: str, row: dict[str, Any]) -> str:
    """The legacy (unkeyed) hash of a row: SHA-256 over the previous hash and the row's content."""
    return hashlib.sha256(prev_hash.encode() + _content(row)).hexdigest()


class AuditKey:
    """The keys of the audit chain and its anchors, derived from one root (never stored).

    Arguments:
        root: 32 bytes: HKDF of the master key or of `audit_key` under `AUDIT_LABEL`.
        source: where it came from, for messages (`master key`, `control.audit_key`, …).
    """

    __slots__ = ("_anchor", "_chain", "key_id", "source")

    def __init__(self, root: bytes, source: str) -> None:
        self._chain = hkdf(root, _CHAIN_LABEL)
        self._anchor = hkdf(root, _ANCHOR_LABEL)
        self.key_id = hashlib.sha256(b"sluicegate audit key id\0" + self._chain).hexdigest()[:8]
        self.source = source

    @classmethod
    def from_secret(cls, raw: bytes, source: str) -> AuditKey:
        """The audit key of a 32-byte secret (an `audit_key`, or a master key's raw bytes)."""
        return cls(hkdf(raw, AUDIT_LABEL), source)

    def __repr__(self) -> str:
        return f"AuditKey(key_id={self.key_id!r}, source={self.source!r})"

    def row_hash(self, prev_hash: str, row: dict[str, Any]) -> str:
        """`hmac-v1:<key id>:<hex>`: the HMAC covers the key id, the previous hash and the content."""
        head = f"{KEYED}:{self.key_id}:"
        digest = hmac.new(self._chain, head.encode() + prev_hash.encode() + b"\n" + _content(row), "sha256")
        return head + digest.hexdigest()

    def anchor_mac(self, payload: bytes) -> str:
        return hmac.new(self._anchor, payload, "sha256").hexdigest()

    def fingerprint(self, value: str) -> str:
        """A short keyed fingerprint of a secret value: changes with it, reveals nothing without the key."""
        return "hmac:" + hmac.new(self._chain, b"fingerprint\0" + value.encode(), "sha256").hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Keyring:
    """The key that signs new rows (None: no key is configured, rows stay legacy) and every key
    that verification may meet, by id."""

    current: AuditKey | None
    keys: dict[str, AuditKey] = field(default_factory=dict)

    @classmethod
    def of(cls, current: AuditKey | None, retired: Iterable[AuditKey] = ()) -> Keyring:
        keys = {k.key_id: k for k in retired}
        if current is not None:
            keys[current.key_id] = current
        return cls(current, keys)


def load_keyring(settings: ControlSettings, master: MasterKeyring | None) -> Keyring:
    """The audit keys: `audit_key` or `audit_key_file`, else derived from the current master key;
    plus the retired ones. A retired entry may be an old audit key or an old master key: both derive
    the same way. When the audit key comes from the master key, the keyring's retired master keys
    count as retired audit keys too (rows signed before the master key's rotation still verify).

    Raises:
        AuditKeyError: a configured key is malformed or its file unreadable (the message names the
            setting, never a value).
    """
    current: AuditKey | None = None
    try:
        if settings.audit_key:
            current = AuditKey.from_secret(
                decode_key(settings.audit_key.reveal(), "control.audit_key"), "control.audit_key"
            )
        elif settings.audit_key_file:
            path = Path(settings.audit_key_file)
            try:
                text = path.read_text()
            except OSError as exc:
                raise AuditKeyError(f"cannot read control.audit_key_file {path}: {exc.strerror}") from None
            current = AuditKey.from_secret(decode_key(text, "control.audit_key_file"), "control.audit_key_file")
        retired: list[AuditKey] = []
        if current is None and master is not None:
            current = AuditKey(master.derive(AUDIT_LABEL), "the master key")
            retired = [AuditKey(k.derive(AUDIT_LABEL), "control.master_retired_keys") for k in master.retired]
        retired += [
            AuditKey.from_secret(
                decode_key(k.reveal(), f"control.audit_retired_keys[{i}]"), "control.audit_retired_keys"
            )
            for i, k in enumerate(settings.audit_retired_keys)
        ]
    except MasterKeyError as exc:
        raise AuditKeyError(str(exc)) from None
    return Keyring.of(current, retired)


async def lock(conn: AsyncConnection) -> Head:
    """Take the write lock the chain is appended under (the state row's), and read the head.

    A write that changes nothing is enough: on PostgreSQL it locks the row, on SQLite it takes the
    database's write lock, so the head read next is the one the append will follow.
    """
    await conn.execute(update(state).where(state.c.id == 1).values(audit_head_seq=state.c.audit_head_seq))
    return await read_head(conn)


def need_key(head: Head, key: AuditKey | None, keyring: Keyring | None = None) -> None:
    """Refuse to go on without a key once the chain is keyed (an unkeyed row would read as a
    rewrite), and, given the keyring, with a head signed by a key it does not hold (a new key without
    the old one among the retired ones would leave the rows before it unverifiable).

    Raises:
        AuditKeyError: saying which key is missing and where it goes.
    """
    if not head.hash.startswith(KEYED):
        return
    key_id = head.hash.split(":")[1]
    if key is None:
        raise AuditKeyError(
            f"the audit log is signed with audit key {key_id} and no audit key is configured "
            "(control.audit_key, or the master key it is derived from)"
        )
    if keyring is not None and key_id not in keyring.keys:
        raise AuditKeyError(
            f"the audit log's newest row is signed with audit key {key_id}, but the configured key is "
            f"{key.key_id}: after a rotation, put the previous audit key (or master key) in control.audit_retired_keys"
        )


async def read_head(conn: AsyncConnection) -> Head:
    """The chain's head as `control_state` records it."""
    row = (await conn.execute(select(state.c.audit_head_seq, state.c.audit_head_hash).where(state.c.id == 1))).one()
    return Head(int(row.audit_head_seq), row.audit_head_hash)


async def append(
    conn: AsyncConnection,
    key: AuditKey | None,
    actor: Actor,
    action: str,
    target: str,
    org_id: str | None,
    before: Any,
    after: Any,
) -> Head:
    """Write one row inside the caller's transaction (which already holds the state row's lock).

    Arguments:
        key: the audit key that signs the row; None writes a legacy row, allowed only while the
            chain has no keyed row yet.

    Returns:
        The new head: the row's seq and hash.

    Raises:
        AuditKeyError: the chain is keyed and no key is configured (a legacy row now would read
            as a rewrite).
    """
    head = await read_head(conn)
    need_key(head, key)
    diff = orjson.dumps({"before": mask(before), "after": mask(after)}, option=orjson.OPT_SORT_KEYS).decode()
    row: dict[str, Any] = {
        "seq": head.seq + 1,
        "at": now_iso(),
        "actor": actor.name,
        "action": action,
        "target": target,
        "org_id": org_id,
        "request_id": actor.request_id,
        "client": actor.client,
        "diff": diff,
        "prev_hash": head.hash,
    }
    row["hash"] = key.row_hash(head.hash, row) if key is not None else row_hash(head.hash, row)
    await conn.execute(insert(audit_log).values(**row))
    await conn.execute(
        update(state).where(state.c.id == 1).values(audit_head_seq=row["seq"], audit_head_hash=row["hash"])
    )
    return Head(row["seq"], row["hash"])


async def record_system_event(
    conn: AsyncConnection,
    key: AuditKey | None,
    action: str,
    target: str,
    before: Any,
    after: Any,
    actor: Actor = SYSTEM,
) -> Head:
    """Append one row for an event that changes no other table (a migration, a key's first use, the
    configuration at start, failed sign-ins), in the caller's transaction, under the chain's lock.

    Returns:
        The new head (hand it to `Anchors.note` once the transaction commits).
    """
    await lock(conn)
    return await append(conn, key, actor, action, target, None, before, after)


async def latest(conn: AsyncConnection, action: str, target: str | None = None) -> dict[str, Any] | None:
    """The newest row of an action (and target), its diff parsed; None if there is none."""
    query = select(audit_log.c.seq, audit_log.c.diff).where(audit_log.c.action == action)
    if target is not None:
        query = query.where(audit_log.c.target == target)
    row = (await conn.execute(query.order_by(audit_log.c.seq.desc()).limit(1))).first()
    return {"seq": int(row.seq), "diff": orjson.loads(row.diff)} if row is not None else None


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of a chain check.

    Attributes:
        ok: the chain is whole, every signature holds, and no anchor contradicts it.
        rows: rows read.
        broken_seq: the first row at fault (a missing one included), when not ok.
        reason: why, naming no diff content.
        legacy_rows: rows without a key (a prefix written before keyed chains).
        key_ids: the audit keys that signed the rows, oldest first.
        anchors: anchors checked.
        notes: what the check could not cover (no anchors, an unkeyed log), for the report.
    """

    ok: bool
    rows: int
    broken_seq: int | None = None
    reason: str = ""
    legacy_rows: int = 0
    key_ids: tuple[str, ...] = ()
    anchors: int = 0
    notes: tuple[str, ...] = ()


def _broken(rows: int, seq: int | None, reason: str, **kw: Any) -> VerifyResult:
    return VerifyResult(False, rows, seq, reason, **kw)


async def verify(conn: AsyncConnection, keyring: Keyring, anchors: Anchors | None = None) -> VerifyResult:
    """Walk the chain from the first row, then hold its head and pinned rows against the anchors.

    Arguments:
        keyring: the keys the rows may be signed with.
        anchors: the anchors read from outside the database (each already checked against its
            HMAC by `anchors.read`), or None when there are none to check.

    Returns:
        The first fault found: a row missing, edited, re-signed without the key or downgraded to
        the legacy form; a forged anchor; rows missing after the chain's head (truncated or wiped);
        a row that differs from its anchor.
    """
    if anchors is not None and anchors.forged is not None:
        path, line, seq, why = anchors.forged
        return _broken(0, seq or None, f"anchor {path} line {line} (row {seq}): {why}")
    pinned: dict[int, str] = {a.seq: a.hash for a in anchors.items} if anchors is not None else {}
    seen: dict[int, str] = {}
    prev, expected, legacy = "", 1, 0
    key_ids: list[str] = []
    result = await conn.stream(select(audit_log).order_by(audit_log.c.seq))
    async for raw in result:
        row = {str(k): v for k, v in raw._mapping.items()}
        n, seq, stored = expected, row["seq"], row["hash"]
        if seq != expected:
            return _broken(n, expected, f"row {expected} is missing (the next row is {seq})")
        if row["prev_hash"] != prev:
            return _broken(n, seq, "its prev_hash does not match the row before it")
        keyed = _KEYED_HASH.fullmatch(stored)
        if keyed is not None:
            key = keyring.keys.get(keyed.group(1))
            if key is None:
                return _broken(
                    n,
                    seq,
                    f"it is signed with audit key {keyed.group(1)}, which is not configured "
                    "(control.audit_key, the master key, or control.audit_retired_keys)",
                )
            if not hmac.compare_digest(key.row_hash(prev, row), stored):
                return _broken(n, seq, "its HMAC does not match its content (edited, or a row before it was)")
            if not key_ids or key_ids[-1] != key.key_id:
                key_ids.append(key.key_id)
        elif _LEGACY_HASH.fullmatch(stored):
            if key_ids:
                return _broken(n, seq, "an unkeyed row after keyed rows (rewritten without the audit key)")
            if row_hash(prev, row) != stored:
                return _broken(n, seq, "its content does not match its hash (edited)")
            legacy += 1
        else:
            return _broken(n, seq, "its hash is in no known form")
        if seq in pinned:
            seen[seq] = stored
        prev, expected = stored, expected + 1
    count = expected - 1
    done = {"legacy_rows": legacy, "key_ids": tuple(key_ids)}
    if anchors is not None and anchors.items:
        top = max(anchors.items, key=lambda a: a.seq)
        if top.seq > count:
            what = "the log is empty (wiped)" if count == 0 else f"the chain ends at row {count} (truncated)"
            return _broken(count, count + 1, f"an anchor of {top.at} records row {top.seq}, but {what}", **done)
        for a in sorted(anchors.items, key=lambda a: a.seq):
            if not hmac.compare_digest(seen[a.seq], a.hash):
                return _broken(count, a.seq, f"it differs from its anchor of {a.at} (rewritten)", **done)
    if keyring.current is not None and count and not key_ids:
        return _broken(
            count,
            1,
            f"no row is signed, though audit key {keyring.current.key_id} is configured: the log was rewritten or "
            "cut back to its legacy rows (after an upgrade, `sluicegate admin migrate` seals the legacy rows)",
            **done,
        )
    head = await read_head(conn)
    if head.seq > count:
        return _broken(count, count + 1, f"the chain head is row {head.seq}: newer rows are missing", **done)
    if head.seq != count or head.hash != prev:
        return _broken(count, count, f"control_state records row {head.seq} as the head, not this last row", **done)
    notes: list[str] = []
    if legacy:
        sealed = "sealed by the first keyed row" if key_ids else "no keyed row seals them yet"
        notes.append(f"{legacy} legacy rows are unkeyed ({sealed})")
    if anchors is None or not anchors.items:
        notes.append("no anchors to check: deleting the newest rows would go unnoticed")
    elif anchors.legacy:
        notes.append(
            f"{anchors.legacy} anchor lines are unchained (written before anchors were chained): "
            "a line removed from among them goes unnoticed"
        )
    n_anchors = len(anchors.items) if anchors is not None else 0
    return VerifyResult(True, count, legacy_rows=legacy, key_ids=tuple(key_ids), anchors=n_anchors, notes=tuple(notes))


def describe(result: VerifyResult) -> Sequence[str]:
    """The lines `sluicegate audit verify` prints (seqs, counts and key ids: never a diff)."""
    if not result.ok:
        where = f" at row {result.broken_seq}" if result.broken_seq is not None else ""
        return [f"audit log broken{where}: {result.reason}"]
    keys = f", signed with audit key {', then '.join(result.key_ids)}" if result.key_ids else ""
    anchored = f", {result.anchors} anchors agree" if result.anchors else ""
    return [f"audit log intact: {result.rows} rows{keys}{anchored}", *(f"note: {n}" for n in result.notes)]
