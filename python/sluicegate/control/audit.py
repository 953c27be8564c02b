"""The audit log: one append-only row per administrative change, hash-chained.

Each row's `hash` is SHA-256 over the previous row's hash and the row's canonical JSON (seq, time,
actor, action, target, org, request id, client, diff). `control_state` keeps the head (last seq and
hash), written in the same transaction, so editing a row, deleting one in the middle, and deleting
the newest are all detected. Diffs hold only what `mask()` lets through: secret values and key
hashes become `*****`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sluicegate.control.keys import now_iso
from sluicegate.control.models import audit_log, state

__all__ = ["Actor", "VerifyResult", "append", "mask", "row_hash", "verify"]

MASK = "*****"
_SECRET_FIELDS = frozenset({"value", "api_key", "key", "token", "key_hash", "token_hash", "ciphertext", "secret"})


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a change, from where, in which request."""

    name: str
    request_id: str = ""
    client: str = ""


def mask(value: Any) -> Any:
    """`value` with every secret field replaced by `*****` (recursively)."""
    if isinstance(value, dict):
        return {k: (MASK if k in _SECRET_FIELDS and v is not None else mask(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    return value


def row_hash(prev_hash: str, row: dict[str, Any]) -> str:
    fields = {k: row[k] for k in ("seq", "at", "actor", "action", "target", "org_id", "request_id", "client", "diff")}
    return hashlib.sha256(prev_hash.encode() + orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def append(
    conn: AsyncConnection,
    actor: Actor,
    action: str,
    target: str,
    org_id: str | None,
    before: Any,
    after: Any,
) -> int:
    """Write one row inside the caller's transaction (which already holds the state row's lock).

    Returns:
        The row's sequence number.
    """
    head = (await conn.execute(select(state.c.audit_head_seq, state.c.audit_head_hash).where(state.c.id == 1))).one()
    diff = orjson.dumps({"before": mask(before), "after": mask(after)}, option=orjson.OPT_SORT_KEYS).decode()
    row: dict[str, Any] = {
        "seq": head.audit_head_seq + 1,
        "at": now_iso(),
        "actor": actor.name,
        "action": action,
        "target": target,
        "org_id": org_id,
        "request_id": actor.request_id,
        "client": actor.client,
        "diff": diff,
        "prev_hash": head.audit_head_hash,
    }
    row["hash"] = row_hash(head.audit_head_hash, row)
    await conn.execute(insert(audit_log).values(**row))
    await conn.execute(
        update(state).where(state.c.id == 1).values(audit_head_seq=row["seq"], audit_head_hash=row["hash"])
    )
    return int(row["seq"])


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of a chain check: `ok`, the rows checked, and the first broken row and why."""

    ok: bool
    rows: int
    broken_seq: int | None = None
    reason: str = ""


async def verify(conn: AsyncConnection) -> VerifyResult:
    """Walk the chain from the first row and name the first row that breaks it."""
    prev = ""
    expected = 1
    count = 0
    result = await conn.stream(select(audit_log).order_by(audit_log.c.seq))
    async for raw in result:
        row = {str(k): v for k, v in raw._mapping.items()}
        count += 1
        if row["seq"] != expected:
            return VerifyResult(False, count, expected, f"row {expected} is missing (next is {row['seq']})")
        if row["prev_hash"] != prev:
            return VerifyResult(False, count, row["seq"], "its prev_hash does not match the row before it")
        if row_hash(prev, row) != row["hash"]:
            return VerifyResult(False, count, row["seq"], "its content does not match its hash (edited)")
        prev = row["hash"]
        expected += 1
    head = (await conn.execute(select(state.c.audit_head_seq, state.c.audit_head_hash).where(state.c.id == 1))).one()
    if head.audit_head_seq != expected - 1 or head.audit_head_hash != prev:
        return VerifyResult(
            False, count, expected, f"the chain head is row {head.audit_head_seq}: newer rows are missing"
        )
    return VerifyResult(True, count)
