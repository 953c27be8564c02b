"""Anchors: the audit chain's head, pinned outside the database.

Deleting the newest audit rows (or all of them) leaves a chain that is valid on its own; only a
record kept elsewhere shows that rows existed. After each change, at most every
`control.audit_anchor_interval_s` and once more at shutdown, the process that made the change
appends one JSON line to the anchor file:

```
{"seq": 42, "hash": "hmac-v1:1f2e3d4c:…", "at": "2026-…Z", "key_id": "1f2e3d4c", "mac": "…"}
```

`mac` is an HMAC-SHA256 of the other fields under the anchor key, derived from the audit key and
never stored, so an anchor cannot be forged with database access alone. `sluicegate audit verify`
then requires every anchored row to exist with the anchored hash. The file only grows; ship it to
append-only storage (see docs/control-plane.md) so that it outlives whoever can write the host.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson

from sluicegate.control.audit import AuditKey, Head, Keyring
from sluicegate.control.keys import now_iso

__all__ = ["Anchor", "AnchorWriter", "Anchors", "anchor_line", "read"]

log = logging.getLogger("sluicegate.control.audit")
_FIELDS = ("seq", "hash", "at", "key_id")


@dataclass(frozen=True, slots=True)
class Anchor:
    """One pinned head: row `seq` had `hash` at time `at`."""

    seq: int
    hash: str
    at: str


@dataclass(frozen=True, slots=True)
class Anchors:
    """The anchors read from one or more files.

    Attributes:
        items: the anchors whose HMAC holds.
        forged: the first line that is not a valid anchor: (file, line number, its seq or 0, why).
    """

    items: tuple[Anchor, ...] = ()
    forged: tuple[str, int, int, str] | None = None


def _payload(seq: int, hash_: str, at: str, key_id: str) -> bytes:
    return orjson.dumps({"seq": seq, "hash": hash_, "at": at, "key_id": key_id}, option=orjson.OPT_SORT_KEYS)


def _parse(data: object) -> tuple[Anchor, str, str] | None:
    """(anchor, key id, mac) of a parsed line, or None when a field is missing or mistyped."""
    if not isinstance(data, dict):
        return None
    seq, hash_, at, key_id, mac = (data.get(k) for k in (*_FIELDS, "mac"))
    if not (type(seq) is int and seq > 0) or not all(isinstance(v, str) for v in (hash_, at, key_id, mac)):
        return None
    return Anchor(seq, str(hash_), str(at)), str(key_id), str(mac)


def anchor_line(key: AuditKey, head: Head, at: str) -> bytes:
    """The anchor of `head`, signed with `key`: one JSON line."""
    mac = key.anchor_mac(_payload(head.seq, head.hash, at, key.key_id))
    fields = {"seq": head.seq, "hash": head.hash, "at": at, "key_id": key.key_id, "mac": mac}
    return orjson.dumps(fields) + b"\n"


def read(paths: Iterable[Path], keyring: Keyring) -> Anchors:
    """The anchors in `paths` (a missing file holds none), each checked against its HMAC.

    A line that does not parse or lacks a field, and one signed with a key the keyring does not
    hold, count as forged: they cannot be told from one.
    """
    items: list[Anchor] = []
    for path in paths:
        try:
            lines = path.read_bytes().splitlines()
        except FileNotFoundError:
            continue
        for line_no, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError:
                data = None
            parsed = _parse(data)
            if parsed is None:
                seq = data.get("seq") if isinstance(data, dict) else 0
                seq = seq if type(seq) is int else 0
                return Anchors(tuple(items), (str(path), line_no, seq, "it is not an anchor"))
            anchor, key_id, mac = parsed
            key = keyring.keys.get(key_id)
            if key is None:
                why = (
                    f"it is signed with audit key {key_id}, which is not configured (forged, or a retired key missing)"
                )
                return Anchors(tuple(items), (str(path), line_no, anchor.seq, why))
            if not hmac.compare_digest(key.anchor_mac(_payload(anchor.seq, anchor.hash, anchor.at, key_id)), mac):
                return Anchors(tuple(items), (str(path), line_no, anchor.seq, "its HMAC does not match (forged)"))
            items.append(anchor)
    return Anchors(tuple(items))


class AnchorWriter:
    """Appends anchors of the heads this process made, at most once per interval, and the last one
    at `flush()` (shutdown).

    Arguments:
        path: the anchor file (None: anchors are off).
        key: the audit key (None: the chain is unkeyed, and an unkeyed anchor would prove nothing).
        interval_s: the least time between two anchors; 0 writes one after every change.
        clock: monotonic seconds.
    """

    def __init__(
        self,
        path: Path | None,
        key: AuditKey | None,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path if key is not None else None
        self.key = key
        self.interval_s = interval_s
        self._clock = clock
        self._last_at: float | None = None
        self._written: Head | None = None
        self._pending: Head | None = None
        self._timer: asyncio.TimerHandle | None = None

    def check(self) -> None:
        """Open the file for appending once (creating it), so a path that cannot be written is
        known at start.

        Raises:
            OSError: the file cannot be created or appended to.
        """
        if self.path is not None:
            os.close(os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640))

    def note(self, head: Head) -> None:
        """A change committed with this head: anchor it now, or when the interval has passed."""
        if self.path is None:
            return
        self._pending = head
        now = self._clock()
        if self._last_at is None or now - self._last_at >= self.interval_s:
            self.flush()
        elif self._timer is None:
            delay = self._last_at + self.interval_s - now
            try:
                self._timer = asyncio.get_running_loop().call_later(delay, self._due)
            except RuntimeError:  # no loop: write at once
                self.flush()

    def _due(self) -> None:
        self._timer = None
        self.flush()

    def flush(self) -> None:
        """Write the newest head not yet anchored (at shutdown, and when the interval has passed)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        head, self._pending = self._pending, None
        if head is None or self.path is None or self.key is None or head == self._written:
            return
        self._last_at = self._clock()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, anchor_line(self.key, head, now_iso()))
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            log.warning("audit anchor of row %d not written to %s (%s)", head.seq, self.path, exc.strerror)
            return
        self._written = head
