"""Server-sent events: split a byte stream into events without losing or merging any.

Upstreams may cut the stream anywhere, including inside a line or a multi-byte character; the
buffer only ever yields complete events (terminated by a blank line) and keeps the rest.
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

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[Event]:
        """Add `data`; return the events it completed, in order."""
        buf = self._buf + data if self._buf else data
        tail = b""
        if b"\r" in buf:
            if buf.endswith(b"\r"):  # a \r\n may be cut between its two bytes
                buf, tail = buf[:-1], b"\r"
            buf = buf.replace(b"\r\n", b"\n")
        if b"\n\n" not in buf:
            self._buf = buf + tail
            return []
        parts = buf.split(b"\n\n")
        self._buf = parts.pop() + tail
        return [Event.parse(p) for p in parts if p.strip(b"\n")]

    @property
    def pending(self) -> bytes:
        """Bytes of an event that has not ended yet."""
        return self._buf


def encode(data: bytes, name: bytes | None = None) -> bytes:
    """The wire bytes of one event, with its terminating blank line."""
    if name is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + name + b"\ndata: " + data + b"\n\n"
