"""Serving with granian: workers, runtime threads, event loop, and a graceful stop.

On SIGTERM:
1. every worker reports not ready (`/readyz` answers 503) while still serving, for
   `server.ready_grace_s`, so load balancers stop sending new requests;
2. then granian stops accepting connections and waits for the requests in flight, streams
   included; a worker still busy after `server.drain_seconds` is killed.
A second SIGTERM, or SIGINT (Ctrl-C), skips the grace. Each worker builds its own app from the
environment (`SLUICEGATE_CONFIG` and `SLUICEGATE_*`), which the CLI prepares; the grace is shared
with the workers through a marker file named by `SLUICEGATE_DRAIN_MARKER`. The workers publish their
metrics to a directory made for the run and named by `SLUICEGATE_METRICS_DIR`, so that one scrape
sums them (`observe/workers.py`); it is removed when the server stops.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any

from granian import Granian
from granian.constants import HTTPModes, Interfaces, Loops

from sluicegate.config import DRAIN_MARKER_ENV, METRICS_DIR_ENV, ServerSettings


def draining() -> bool:
    """Whether this process's server has begun its shutdown (the marker file exists)."""
    marker = os.environ.get(DRAIN_MARKER_ENV)
    return marker is not None and os.path.exists(marker)


class _Server(Granian):  # type: ignore[misc,valid-type]
    """granian, with a readiness grace between SIGTERM and the stop."""

    def __init__(self, *args: Any, grace_s: float, marker: Path, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._grace_s = grace_s
        self._marker = marker
        self._timer: threading.Timer | None = None

    def signal_handler_interrupt(self, *args: Any, **kwargs: Any) -> None:
        self._marker.touch()
        sigterm = bool(args) and args[0] == signal.SIGTERM
        if sigterm and self._grace_s > 0 and self._timer is None:
            self._timer = threading.Timer(self._grace_s, super().signal_handler_interrupt)
            self._timer.daemon = True
            self._timer.start()
            return
        super().signal_handler_interrupt(*args, **kwargs)


def serve(server: ServerSettings, target: str = "sluicegate.app:create_app") -> None:
    """Run granian in the foreground until SIGTERM or SIGINT.

    Arguments:
        server: address, workers, threads, loop and drain period.
        target: the ASGI app factory each worker imports.
    """
    marker = Path(tempfile.gettempdir()) / f"sluicegate-{os.getpid()}.draining"
    marker.unlink(missing_ok=True)
    os.environ[DRAIN_MARKER_ENV] = str(marker)
    # Fresh for each run: a previous run's counts must not be summed into this one's.
    metrics_dir = tempfile.mkdtemp(prefix=f"sluicegate-{os.getpid()}-metrics-")
    os.environ[METRICS_DIR_ENV] = metrics_dir
    app_server = _Server(
        target,
        grace_s=server.ready_grace_s,
        marker=marker,
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
    )
    try:
        app_server.serve()
    finally:
        with contextlib.suppress(OSError):
            marker.unlink()
        shutil.rmtree(metrics_dir, ignore_errors=True)
