"""Structured logs: one JSON object a line on stderr, written by a background thread so no request
waits for a log write. Records wait in a bounded queue that the thread drains every
`flush_interval_s` (a record never wakes it: one write a drain, not one a record); an access record
skips the `logging` machinery altogether and is queued as its fields. Records carry kinds, ids,
counts and timings, never request or response content; a traceback is reduced to its frames and the
exception's type (an exception's message can quote content).

An access record per API call (`log.access = true`) has: request_id, route, status, duration_ms,
org, workspace, key, user, model, provider, trace_id (the caller's LangSmith trace, when sent),
input_tokens, output_tokens, cost_nusd, error, client_gone and the policy events' kinds and counts.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import sys
import threading
import time
import traceback
from typing import Any, TextIO

import orjson

from sluicegate.config import LogSettings
from sluicegate.observe.clock import utc_second

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
            "ts": _timestamp(record.created),
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


Pending = logging.LogRecord | dict[str, Any]


def _timestamp(created: float) -> str:
    return f"{utc_second(int(created))[1]}.{int(created % 1 * 1000):03d}Z"


class _Handler(logging.Handler):
    """Queues a record for the writer thread; formatting happens there, not on the request's."""

    def __init__(self, logs: Logs) -> None:
        super().__init__()
        self.logs = logs

    def emit(self, record: logging.LogRecord) -> None:
        self.logs.put(record)


class Logs:
    """The process's log pipeline: a bounded queue, a writer thread, and drops counted.

    Arguments:
        settings: the `[log]` section.
        stream: where lines go (stderr).
    """

    def __init__(self, settings: LogSettings, stream: TextIO | None = None) -> None:
        self.settings = settings
        self.dropped = 0
        self.access = settings.access
        self._stream = stream or sys.stderr
        self._pending: collections.deque[Pending] = collections.deque()
        self._json = settings.format == "json"
        fmt = "%(asctime)s %(levelname)s %(name)s %(message)s"
        self._formatter: logging.Formatter = JsonFormatter() if self._json else logging.Formatter(fmt)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sluicegate-logs", daemon=True)
        root = logging.getLogger("sluicegate")
        for old in list(root.handlers):
            root.removeHandler(old)
        root.addHandler(_Handler(self))
        root.setLevel(settings.level.upper())
        root.propagate = False

    def put(self, item: Pending) -> None:
        """Queue a record; never blocks (past `queue_size` it is dropped and counted)."""
        if len(self._pending) >= self.settings.queue_size:
            self.dropped += 1
        else:
            self._pending.append(item)

    def write_access(self, fields: dict[str, Any]) -> None:
        """Queue a call's access record (see the module's documentation for its fields)."""
        fields["created"] = time.time()
        self.put(fields)

    @property
    def depth(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Write what is queued, then stop the thread."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(5.0)
        self.flush()

    def flush(self) -> None:
        """Write every queued record, in one write."""
        lines: list[bytes] = []
        pending = self._pending
        while pending:
            item = pending.popleft()
            try:
                lines.append(self._format(item))
            except Exception:  # a record that cannot be formatted is lost, never the writer
                self.dropped += 1
        if lines:
            lines.append(b"")
            data = b"\n".join(lines)
            with contextlib.suppress(OSError, ValueError):
                binary = getattr(self._stream, "buffer", None)
                if binary is not None:
                    self._stream.flush()  # what went through the text layer first
                    binary.write(data)
                    binary.flush()
                else:
                    self._stream.write(data.decode())
                    self._stream.flush()

    def _format(self, item: Pending) -> bytes:
        if isinstance(item, logging.LogRecord):
            return self._formatter.format(item).encode()
        created = item.pop("created")
        if not self._json:
            pairs = " ".join(f"{k}={v}" for k, v in item.items() if v is not None)
            return f"{_timestamp(created)} INFO sluicegate.access call {pairs}".encode()
        out = {"ts": _timestamp(created), "level": "info", "logger": "sluicegate.access", "msg": "call"}
        get = item.get
        for name in FIELDS:  # FIELDS only, ever (a plain loop: update() from a generator costs half again)
            value = get(name)
            if value is not None:
                out[name] = value
        return orjson.dumps(out)

    def _run(self) -> None:
        while not self._stopping.wait(self.settings.flush_interval_s):
            self.flush()
