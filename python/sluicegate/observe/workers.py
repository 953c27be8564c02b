"""Metrics of every worker in one scrape.

granian runs several worker processes, and a scrape reaches one of them. Each worker keeps its
figures in its own memory (recording a call stays a few additions, `observe/metrics.py`) and
publishes them, every `metrics.publish_interval_s` and when it stops, to files of its own in a
directory the server creates for the run (`SLUICEGATE_METRICS_DIR`, set by `sluicegate serve`). The
files are prometheus_client's multiprocess format (one mmap'd file per worker and kind), so its
`MultiProcessCollector` sums them at scrape time: counters and histograms summed over the workers,
those of workers that have stopped or died included (so a restarted worker never makes a counter go
back); gauges summed over the live workers (`livesum`), or one series per worker (a `pid` label) for
those named in `PER_WORKER_GAUGES`. A worker that died is noticed at scrape time (its pid is gone)
and its live gauges are removed, as `prometheus_client.multiprocess.mark_process_dead` does.

Process metrics (CPU, memory, open files) are read for every live worker from `/proc` at scrape
time, with a `pid` label. The scraping worker publishes its own figures first; another worker's are
at most `metrics.publish_interval_s` old.

prometheus_client's own multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`) writes to the mmap file on
every increment, under a lock and with a pid check; this publishes instead, off the request path.
"""

from __future__ import annotations

import contextlib
import glob
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.process_collector import ProcessCollector

# Gauges reported per worker (a `pid` label), not summed: a breaker is one worker's view.
PER_WORKER_GAUGES: frozenset[str] = frozenset({"sluicegate_deployment_breaker_state"})
_KINDS = {"counter", "histogram", "gauge", "summary"}


class WorkerFiles:
    """One worker's published figures, and the scrape-time view of every worker's.

    Arguments:
        path: the directory shared by the workers of one server.
        pid: this worker's process id.
    """

    def __init__(self, path: str, pid: int | None = None) -> None:
        self.path = path
        self.pid = os.getpid() if pid is None else pid
        self._files: dict[str, MmapedDict] = {}
        self._keys: dict[tuple[str, str, tuple[tuple[str, str], ...]], str] = {}
        self._retire_predecessor()

    def _retire_predecessor(self) -> None:
        """A dead worker of this run may have had this pid (pids are reused): its counts are moved
        aside, under a name no live worker has, so they stay in the sum instead of being overwritten;
        its live gauges go."""
        for name in glob.glob(os.path.join(self.path, f"*_{self.pid}.db")):
            if os.path.basename(name).startswith("gauge_live"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(name)
            else:
                os.replace(name, f"{name[: -len('.db')]}-{time.time_ns()}.db")

    def _file(self, kind: str) -> MmapedDict:
        f = self._files.get(kind)
        if f is None:
            f = self._files[kind] = MmapedDict(os.path.join(self.path, f"{kind}_{self.pid}.db"))
        return f

    def publish(self, registry: CollectorRegistry) -> None:
        """Write every sample of `registry` to this worker's files (histogram buckets per bucket,
        as the multiprocess format keeps them; `_created` and `_count` are not kept)."""
        for family in registry.collect():
            kind = family.type if family.type in _KINDS else "gauge"
            if kind == "gauge":
                mode = "liveall" if family.name in PER_WORKER_GAUGES else "livesum"
                target = self._file(f"gauge_{mode}")
            else:
                target = self._file(kind)
            last: dict[tuple[tuple[str, str], ...], float] = {}  # a histogram's cumulative count so far
            for sample in family.samples:
                name = sample.name
                if name.endswith("_created") or (kind == "histogram" and name.endswith("_count")):
                    continue
                value = sample.value
                labels = tuple(sorted(sample.labels.items()))
                if kind == "histogram" and name.endswith("_bucket"):
                    rest = tuple(pair for pair in labels if pair[0] != "le")
                    value, last[rest] = value - last.get(rest, 0.0), value
                target.write_value(self._key(family, name, labels), value, 0.0)

    def _key(self, family: Metric, name: str, labels: tuple[tuple[str, str], ...]) -> str:
        cache = (family.name, name, labels)
        key = self._keys.get(cache)
        if key is None:
            key = self._keys[cache] = mmap_key(
                family.name, name, [k for k, _ in labels], [v for _, v in labels], family.documentation
            )
        return key

    def close(self, dead: bool = True) -> None:
        """Close this worker's files; `dead`: remove its live gauges (it serves no more)."""
        for f in self._files.values():
            f.close()
        self._files.clear()
        if dead:
            mark_process_dead(self.pid, self.path)

    def live_pids(self) -> list[int]:
        """The workers that have published and still run; a dead one's live gauges are removed."""
        pids: set[int] = set()
        for name in glob.glob(os.path.join(self.path, "*.db")):
            tail = os.path.basename(name).rsplit("_", 1)[-1][: -len(".db")]
            if tail.isdigit():
                pids.add(int(tail))
        alive = []
        for pid in sorted(pids):
            if pid == self.pid or _running(pid):
                alive.append(pid)
            else:
                mark_process_dead(pid, self.path)
        return alive

    def registry(self, own: CollectorRegistry, shared: Sequence[Any] = ()) -> CollectorRegistry:
        """A registry whose scrape is every worker's figures summed, and each live worker's process
        metrics; the families of `own` (this worker's) that no worker has a sample of yet are listed
        empty, so that every metric the gateway has is in every scrape; then the `shared`
        collectors' families (figures every worker would report alike), as they are."""
        registry = CollectorRegistry()
        registry.register(_Workers(self, own, shared))
        return registry


class _Workers:
    def __init__(self, files: WorkerFiles, own: CollectorRegistry, shared: Sequence[Any]) -> None:
        self.files = files
        self.own = own
        self.shared = shared

    def collect(self) -> Iterator[Metric]:
        alive = self.files.live_pids()
        seen = set()
        for family in MultiProcessCollector(None, self.files.path).collect():
            seen.add(family.name)
            yield family
        for family in self.own.collect():
            if family.name not in seen:
                yield Metric(family.name, family.documentation, family.type)
        per_family: dict[str, Metric] = {}
        for pid in alive:
            for family in ProcessCollector(pid=_constant(pid), registry=None).collect():
                merged = per_family.get(family.name)
                if merged is None:
                    merged = per_family[family.name] = Metric(family.name, family.documentation, family.type)
                for s in family.samples:
                    merged.add_sample(s.name, {**s.labels, "pid": str(pid)}, s.value)
        yield from per_family.values()
        for collector in self.shared:
            yield from collector.collect()


def _constant(pid: int) -> Callable[[], int]:
    return lambda: pid


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's process now has the pid
        return True
    return _not_zombie(pid)


def _not_zombie(pid: int) -> bool:
    """A worker that exited but is not reaped yet still answers kill(0): its state says."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat", "rb") as stat:
        return stat.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    return True
