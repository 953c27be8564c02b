"""Process-wide counters of the mock provider, served at `GET /mock/stats`.

The in-process provider (`respond()`) and the ASGI app share them, so a test sees the same
numbers whichever way the gateway reached the mock. With several granian workers each worker
counts its own requests.
"""

from __future__ import annotations

from typing import Any

__all__ = ["STATS", "Stats"]


class Stats:
    """Counters of requests and of how streams ended.

    `requests` counts every request outside `/mock/`, errors included; `last_request` is the
    latest of those that reached a known route (`{"method", "path", "headers", "body"}`, the
    body parsed as JSON, or None).

    A stream is started when its response is built, completed when its last event is handed
    out, and disconnected when it ends any other way: the consumer closed it early, the socket
    client went away, or a `disconnect` fault broke it.
    """

    __slots__ = ("faults", "last_request", "requests", "streams_completed", "streams_disconnected", "streams_started")

    def __init__(self) -> None:
        self.requests = 0
        self.streams_started = 0
        self.streams_completed = 0
        self.streams_disconnected = 0
        self.last_request: dict[str, Any] | None = None
        self.faults: dict[str, int] = {}  # faults fired, by model string (the `fault_times` knob)

    def reset(self) -> None:
        """Zero every counter and forget the last request."""
        self.requests = self.streams_started = self.streams_completed = self.streams_disconnected = 0
        self.last_request = None
        self.faults.clear()

    def snapshot(self) -> dict[str, Any]:
        """The counters as the JSON object of `GET /mock/stats`."""
        return {
            "requests": self.requests,
            "streams_started": self.streams_started,
            "streams_completed": self.streams_completed,
            "streams_disconnected": self.streams_disconnected,
            "last_request": self.last_request,
        }


STATS = Stats()
