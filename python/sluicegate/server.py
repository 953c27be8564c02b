"""Serving with granian: workers, runtime threads, event loop, and a graceful stop.

On SIGTERM granian stops accepting connections at once and waits for the requests in flight,
streams included; a worker still busy after `server.drain_seconds` is killed. Each worker builds its
own app from the environment (`SLUICEGATE_CONFIG` and `SLUICEGATE_*`), which the CLI prepares.
"""

from __future__ import annotations

import math

from granian import Granian
from granian.constants import HTTPModes, Interfaces, Loops

from sluicegate.config import ServerSettings


def serve(server: ServerSettings, target: str = "sluicegate.app:create_app") -> None:
    """Run granian in the foreground until SIGTERM or SIGINT.

    Arguments:
        server: address, workers, threads, loop and drain period.
        target: the ASGI app factory each worker imports.
    """
    Granian(
        target,
        factory=True,
        address=server.host,
        port=server.port,
        interface=Interfaces.ASGI,
        workers=server.workers,
        runtime_threads=server.runtime_threads,
        loop=Loops(server.loop),
        http=HTTPModes.auto,
        websockets=False,
        backlog=server.backlog,
        log_access=False,
        workers_kill_timeout=max(1, math.ceil(server.drain_seconds)),
    ).serve()
