"""Structured logs: one JSON object a line on stderr, written by a background thread so no request
waits for a log write. Records carry kinds, ids, counts and timings, never request or response
content; a traceback is reduced to its frames and the exception's type (an exception's message
can quote content).

An access record per API call (`log.access = true`) has: request_id, route, status, duration_ms,
org, workspace, key, user, model, provider, trace_id (the caller's LangSmith trace, when sent),
input_tokens, output_tokens, cost_nusd, error, client_gone and the policy events' kinds and counts.
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
import sys
import time
import traceback
from typing import Any

import orjson

from sluicegate.config import LogSettings

FIELDS = (
    "request_id",
    "route",
    "status",
    "duration_ms",
    "org",
    "workspace",
    "key",
    "user",
    "model",
    "provider",
    "trace_id",
    "input_tokens",
    "output_tokens",
    "cost_nusd",
    "error",
    "client_gone",
    "events",
)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the known fields, and for an
    exception its type and frames."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                out[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            out["exc_type"] = record.exc_info[0].__name__
            frames = traceback.extract_tb(record.exc_info[2])
            out["exc_frames"] = [f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}:{f.name}" for f in frames]
        return orjson.dumps(out).decode()


class _QueueHandler(logging.handlers.QueueHandler):
    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record  # formatting happens on the listener's thread, not the request's


class Logs:
    """The process's log pipeline: a bounded queue, a writer thread, and drops counted.

    Arguments:
        settings: the `[log]` section.
    """

    def __init__(self, settings: LogSettings) -> None:
        self.settings = settings
        self.dropped = 0
        self._queue: queue.Queue[logging.LogRecord] = queue.Queue(maxsize=settings.queue_size)
        out = logging.StreamHandler(sys.stderr)
        fmt = "%(asctime)s %(levelname)s %(name)s %(message)s"
        out.setFormatter(JsonFormatter() if settings.format == "json" else logging.Formatter(fmt))
        self._listener = logging.handlers.QueueListener(self._queue, out)
        handler = _QueueHandler(self._queue)
        handler.enqueue = self._enqueue  # type: ignore[method-assign]
        root = logging.getLogger("sluicegate")
        for old in list(root.handlers):
            root.removeHandler(old)
        root.addHandler(handler)
        root.setLevel(settings.level.upper())
        root.propagate = False
        self.access = logging.getLogger("sluicegate.access") if settings.access else None

    def _enqueue(self, record: logging.LogRecord) -> None:
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        self._listener.start()

    def stop(self) -> None:
        """Write what is queued, then stop the thread."""
        self._listener.stop()
