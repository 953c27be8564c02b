"""The log pipeline: records wait in a bounded queue (drops counted) and a thread writes them, all
that is queued in one write, on its interval; access records carry the known fields only."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator

import pytest

from sluicegate.config import LogSettings
from sluicegate.observe.logs import Logs


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.fixture(autouse=True)
def _restore_the_sluicegate_logger() -> Iterator[None]:
    root = logging.getLogger("sluicegate")
    saved = (list(root.handlers), root.level, root.propagate)
    yield
    root.handlers[:], root.level, root.propagate = saved


def test_queued_records_go_out_in_one_write_and_drops_are_counted() -> None:
    stream = CountingStream()
    logs = Logs(LogSettings(access=True, queue_size=100, flush_interval_s=5), stream)
    for n in range(150):
        logs.write_access({"request_id": f"r{n}", "status": 200, "duration_ms": 1.5, "prompt": "not a field"})
    logging.getLogger("sluicegate.pipeline").warning("request failed", extra={"request_id": "late"})
    assert (logs.depth, logs.dropped) == (100, 51)
    logs.flush()
    assert stream.writes == 1 and logs.depth == 0
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["request_id"] for line in lines] == [f"r{n}" for n in range(100)]
    first = lines[0]
    assert first["logger"] == "sluicegate.access" and first["msg"] == "call" and first["level"] == "info"
    assert first["ts"].endswith("Z") and first["status"] == 200 and "prompt" not in first


def test_the_writer_thread_writes_on_its_interval_and_at_stop() -> None:
    stream = CountingStream()
    logs = Logs(LogSettings(access=True, flush_interval_s=0.05, format="text"), stream)
    logs.start()
    try:
        logs.write_access({"request_id": "r1", "status": 200})
        deadline = time.monotonic() + 5
        while "r1" not in stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert "sluicegate.access call" in stream.getvalue() and "request_id=r1" in stream.getvalue()
        logging.getLogger("sluicegate.control").warning("the view could not be reloaded")
    finally:
        logs.stop()
    assert "WARNING sluicegate.control the view could not be reloaded" in stream.getvalue()
