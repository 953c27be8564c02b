"""Server-sent events: split a byte stream into events without losing or merging any.

Upstreams may cut the stream anywhere, including inside a line or a multi-byte character; the
buffer only ever yields complete events (terminated by a blank line) and keeps the rest. Each byte
is scanned once while an event is incomplete (an event arriving in many small pieces costs its
size, not its size squared), so a caller can bound the pending event by `pending_size`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Event:
    """One SSE event: its raw bytes (without the blank line that ends it), name and data."""

    raw: bytes
    name: bytes | None
    data: bytes

    @classmethod
    def parse(cls, raw: bytes) -> Event:
        if raw.startswith(b"data: ") and b"\n" not in raw:  # the usual event: one data line
            return cls(raw, None, raw[6:])
        name: bytes | None = None
        data: list[bytes] = []
        for line in raw.split(b"\n"):
            if line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(b" ") else value)
            elif line.startswith(b"event:"):
                name = line[6:].strip()
        return cls(raw, name, b"\n".join(data))


class EventBuffer:
    """Accumulates upstream bytes and yields complete events."""

    __slots__ = ("_cr", "_parts", "_size")

    def __init__(self) -> None:
        self._parts: list[bytes] = []  # the pending event's pieces, \r\n already made \n
        self._size = 0
        self._cr = False  # a \r held back: a \r\n may be cut between its two bytes

    def feed(self, data: bytes) -> list[Event]:
        """Add `data`; return the events it completed, in order."""
        if self._cr:
            data = b"\r" + data
            self._cr = False
        if b"\r" in data:
            if data.endswith(b"\r"):
                data, self._cr = data[:-1], True
            data = data.replace(b"\r\n", b"\n")
        parts = self._parts
        # Only the new bytes are searched: a blank line is in them, or starts where the pending ends.
        if b"\n\n" not in data and not (data[:1] == b"\n" and parts and parts[-1].endswith(b"\n")):
            if data:
                parts.append(data)
                self._size += len(data)
            return []
        if parts:
            parts.append(data)
            data = b"".join(parts)
        pieces = data.split(b"\n\n")
        rest = pieces.pop()
        self._parts = [rest] if rest else []
        self._size = len(rest)
        return [Event.parse(p) for p in pieces if p.strip(b"\n")]

    @property
    def pending(self) -> bytes:
        """Bytes of an event that has not ended yet."""
        return b"".join(self._parts) + (b"\r" if self._cr else b"")

    @property
    def pending_size(self) -> int:
        """How many bytes `pending` holds, without joining them."""
        return self._size + self._cr


def encode(data: bytes, name: bytes | None = None) -> bytes:
    """The wire bytes of one event, with its terminating blank line."""
    if name is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + name + b"\ndata: " + data + b"\n\n"
