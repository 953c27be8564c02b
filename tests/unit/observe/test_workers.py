"""Several workers' figures in one scrape (`observe/workers.py`): counters and histograms summed,
a worker's counts kept after it dies (no counter goes back), its live gauges and process metrics
gone with it. The second worker is a real process (its pid is a live `sleep`, then a dead one)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sluicegate.observe.metrics import Metrics
from sluicegate.observe.workers import WorkerFiles
from sluicegate.proxy.relay import CallInfo, Outcome


def scrape(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def worker(path: Path, pid: int, calls: int, depth: int) -> Metrics:
    metrics = Metrics(["m"], {"logs": lambda: (depth, 0, 0)}, WorkerFiles(str(path), pid))
    for i in range(calls):
        info = CallInfo("r", "openai_chat", model="m", provider="p", t0=0.0)
        metrics.record(Outcome(200, info=info), 0.003 if i % 2 else 0.7)
    return metrics


def test_counts_are_summed_and_outlive_their_worker_live_gauges_do_not(tmp_path: Path) -> None:
    other = subprocess.Popen(["sleep", "60"])
    try:
        theirs = worker(tmp_path, other.pid, calls=5, depth=4)
        theirs.publish()
        mine = worker(tmp_path, os.getpid(), calls=2, depth=1)
        m = (("model", "m"), ("provider", "p"), ("route", "openai_chat"))
        seen = scrape(mine)
        assert seen[("sluicegate_requests_total", (*m, ("status", "200")))] == 7
        assert seen[("sluicegate_request_duration_seconds_count", m)] == 7
        assert seen[("sluicegate_request_duration_seconds_bucket", (("le", "0.005"), *m))] == 3  # 2 + 1
        assert seen[("sluicegate_request_duration_seconds_bucket", (("le", "+Inf"), *m))] == 7
        assert seen[("sluicegate_queue_depth", (("queue", "logs"),))] == 5  # live workers' depths summed
        pids = {dict(labels)["pid"] for name, labels in seen if name == "process_start_time_seconds"}
        assert pids == {str(os.getpid()), str(other.pid)}
        # counts recorded since the last publish are in the next scrape of theirs or mine
        theirs.record(Outcome(200, info=CallInfo("r", "openai_chat", model="m", provider="p")), 0.1)
        theirs.publish()
    finally:
        other.kill()
        other.wait()
    seen = scrape(mine)
    assert seen[("sluicegate_requests_total", (*m, ("status", "200")))] == 8  # the dead worker's counts stay
    assert seen[("sluicegate_queue_depth", (("queue", "logs"),))] == 1  # its live gauge does not
    assert not (tmp_path / f"gauge_livesum_{other.pid}.db").exists()
    assert (tmp_path / f"counter_{other.pid}.db").exists()
    pids = {dict(labels)["pid"] for name, labels in seen if name == "process_start_time_seconds"}
    assert pids == {str(os.getpid())}
    for metrics in (mine, theirs):
        assert metrics.workers is not None
        metrics.workers.close(dead=False)


def test_a_worker_that_stops_removes_its_live_gauges_and_keeps_its_counts(tmp_path: Path) -> None:
    first = worker(tmp_path, os.getpid(), calls=3, depth=2)
    first.publish()
    assert first.workers is not None
    first.workers.close(dead=True)
    after = worker(tmp_path, os.getpid() + 1_000_000, calls=0, depth=0)  # no such pid: only files matter
    assert after.workers is not None
    seen = {}
    for family in text_string_to_metric_families(generate_latest(after.workers.registry(after.registry)).decode()):
        for s in family.samples:
            seen[(s.name, tuple(sorted(s.labels.items())))] = s.value
    m = (("model", "m"), ("provider", "p"), ("route", "openai_chat"), ("status", "200"))
    assert seen[("sluicegate_requests_total", m)] == 3
    assert ("sluicegate_queue_depth", (("queue", "logs"),)) not in seen
    after.workers.close(dead=False)


def test_a_new_worker_with_a_dead_workers_pid_keeps_the_dead_ones_counts(tmp_path: Path) -> None:
    pid = os.getpid()
    dead = worker(tmp_path, pid, calls=4, depth=3)
    dead.publish()
    assert dead.workers is not None
    dead.workers.close(dead=False)  # killed: nothing cleaned up
    reborn = worker(tmp_path, pid, calls=1, depth=1)  # the same pid, later in the same run
    seen = scrape(reborn)
    m = (("model", "m"), ("provider", "p"), ("route", "openai_chat"), ("status", "200"))
    assert seen[("sluicegate_requests_total", m)] == 5
    assert seen[("sluicegate_queue_depth", (("queue", "logs"),))] == 1
    assert reborn.workers is not None
    reborn.workers.close(dead=False)
