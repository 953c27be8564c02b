"""Anchors: the audit chain's head, pinned outside the database.

Deleting the newest audit rows (or all of them) leaves a chain that is valid on its own; only a
record kept elsewhere shows that rows existed. After each change, at most every
`control.audit_anchor_interval_s` and once more at shutdown, the process that made the change
appends one JSON line to the anchor file:

```
{"seq": 42, "hash": "hmac-v1:1f2e3d4c:…", "at": "2026-…Z", "key_id": "1f2e3d4c", "prev": "…", "mac": "…"}
```

`mac` is an HMAC-SHA256 of the other fields under the anchor key, derived from the audit key and
never stored, so an anchor cannot be forged with database access alone. `prev` is the `mac` of the
line before it in the same file ("" for the first line), so the lines form a chain like the rows:
a line removed from the middle or the head of the file, moved, or copied in from another file no
longer follows the line before it. The writer reads the file's last line under an exclusive
`flock`, so processes sharing one file (workers, or instances on one host) keep one chain.

Lines written before anchors were chained have no `prev` (each is signed on its own). They are
accepted only as a prefix of a file: the first chained line covers the last of them, so that one
cannot be removed, but a line removed from among them goes unnoticed (`verify` says how many there
are). A line after a chained one without `prev` is refused.

What no file can show is its own newest lines cut off: the chain ends wherever the file ends. Ship
the lines to append-only storage as they are written (see docs/control-plane.md) so that they
outlive whoever can write the host. `sluicegate audit verify` then requires every anchored row to
exist with the anchored hash.
"""

from __future__ import annotations

import asyncio
import fcntl
import hmac
import logging
import os
import stat
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
_TAIL = 8192  # the most read back to find the file's last line (a line is about 310 bytes)


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
        items: the anchors whose HMAC holds and that follow the line before them.
        forged: the first line that is not a valid anchor, or that does not follow the line before
            it: (file, line number, its seq or 0, why).
        legacy: lines without `prev` (written before anchors were chained), each file's prefix.
    """

    items: tuple[Anchor, ...] = ()
    forged: tuple[str, int, int, str] | None = None
    legacy: int = 0


def _payload(seq: int, hash_: str, at: str, key_id: str, prev: str | None) -> bytes:
    fields: dict[str, object] = {"seq": seq, "hash": hash_, "at": at, "key_id": key_id}
    if prev is not None:  # a chained line; a legacy one's HMAC covers the four fields alone
        fields["prev"] = prev
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)


def _parse(data: object) -> tuple[Anchor, str, str | None, str] | None:
    """(anchor, key id, prev or None for a legacy line, mac) of a parsed line, or None when a field
    is missing or mistyped."""
    if not isinstance(data, dict):
        return None
    seq, hash_, at, key_id, mac = (data.get(k) for k in (*_FIELDS, "mac"))
    if not (type(seq) is int and seq > 0) or not all(isinstance(v, str) for v in (hash_, at, key_id, mac)):
        return None
    prev = data.get("prev")
    if "prev" in data and not isinstance(prev, str):
        return None
    return Anchor(seq, str(hash_), str(at)), str(key_id), prev, str(mac)


def anchor_line(key: AuditKey, head: Head, at: str, prev: str = "") -> bytes:
    """The anchor of `head`, signed with `key` and chained to `prev` (the mac of the file's last
    line, "" for a file's first): one JSON line."""
    mac = key.anchor_mac(_payload(head.seq, head.hash, at, key.key_id, prev))
    fields = {"seq": head.seq, "hash": head.hash, "at": at, "key_id": key.key_id, "prev": prev, "mac": mac}
    return orjson.dumps(fields) + b"\n"


def _check(raw: bytes, keyring: Keyring, last_mac: str, chained: bool) -> tuple[Anchor, str | None, str] | str:
    """One line of a file checked: (anchor, its prev or None for a legacy line, its mac), or why it
    is not a valid anchor that follows `last_mac` (the mac of the line before it, "" for none)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    parsed = _parse(data)
    if parsed is None:
        return "it is not an anchor"
    anchor, key_id, prev, mac = parsed
    key = keyring.keys.get(key_id)
    if key is None:
        return f"it is signed with audit key {key_id}, which is not configured (forged, or a retired key missing)"
    # As bytes: compare_digest refuses str with non-ASCII characters, which a forged line may hold.
    expected = key.anchor_mac(_payload(anchor.seq, anchor.hash, anchor.at, key_id, prev))
    if not hmac.compare_digest(expected.encode(), mac.encode()):
        return "its HMAC does not match (forged)"
    if prev is None and chained:
        return "an unchained line after chained ones (moved, or written around the chain)"
    if prev is not None and not hmac.compare_digest(prev.encode(), last_mac.encode()):
        if not last_mac:
            return "it is the file's first line, but it follows another (lines removed)"
        return "it does not follow the line before it (a line removed, moved or added)"
    return anchor, prev, mac


def _seq_of(raw: bytes) -> int:
    """The seq a line claims, for the report (0 when it names none)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return 0
    seq = data.get("seq") if isinstance(data, dict) else 0
    return seq if type(seq) is int else 0


def read(paths: Iterable[Path], keyring: Keyring) -> Anchors:
    """The anchors in `paths` (a missing file holds none), each checked against its HMAC and its
    link to the line before it (each file is a chain of its own).

    A line that does not parse or lacks a field, one signed with a key the keyring does not hold,
    one that does not follow the line before it, and one without `prev` after one with it, count
    as forged: they cannot be told from one.
    """
    items: list[Anchor] = []
    legacy = 0
    for path in paths:
        try:
            lines = path.read_bytes().splitlines()
        except FileNotFoundError:
            continue
        last_mac, chained = "", False
        for line_no, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            checked = _check(raw, keyring, last_mac, chained)
            if isinstance(checked, str):
                return Anchors(tuple(items), (str(path), line_no, _seq_of(raw), checked), legacy)
            anchor, prev, last_mac = checked
            if prev is None:
                legacy += 1
            else:
                chained = True
            items.append(anchor)
    return Anchors(tuple(items), None, legacy)


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
        self._mac = ""  # the mac of the last line this writer wrote

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
            self._append(self.path, self.key, head)
        except OSError as exc:
            log.warning("audit anchor of row %d not written to %s (%s)", head.seq, self.path, exc.strerror)
            return
        self._written = head

    def _append(self, path: Path, key: AuditKey, head: Head) -> None:
        """Append the anchor of `head`, chained to the file's last line, under an exclusive lock
        (other processes appending to the same file wait, so the chain stays one).

        A file that cannot be read back (opened write-only, or not a regular file) is chained to
        the last line this writer wrote.
        """
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
            readable = True
        except PermissionError:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            readable = False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            prev = _last_mac(fd) if readable and stat.S_ISREG(os.fstat(fd).st_mode) else self._mac
            line = anchor_line(key, head, now_iso(), prev)
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)  # releases the lock
        self._mac = orjson.loads(line)["mac"]


def _last_mac(fd: int) -> str:
    """The `mac` of the file's last non-empty line; "" for an empty file, or a last line that is
    no anchor (`read` reports that line; the chain goes on from the start)."""
    size = os.fstat(fd).st_size
    start = max(0, size - _TAIL)
    lines = os.pread(fd, size - start, start).splitlines()
    last = next((line for line in reversed(lines) if line.strip()), b"")
    if start > 0 and len(lines) < 2:
        return ""  # a line longer than the tail: no anchor
    try:
        data = orjson.loads(last) if last else None
    except orjson.JSONDecodeError:
        return ""
    mac = data.get("mac") if isinstance(data, dict) else None
    return mac if isinstance(mac, str) else ""
