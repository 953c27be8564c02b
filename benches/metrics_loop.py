"""The per-call cost of recording metrics, as an in-process loop for callgrind.

    valgrind --tool=callgrind --callgrind-out-file=/tmp/m.%p python benches/metrics_loop.py N

runs `Metrics.record` N times over a mix of calls (streamed with usage, not streamed, a refusal with
a policy event, an upstream error); the instructions per call are the difference between two runs
(N=3000 and N=1000) divided by 2000, which leaves out start-up and the first calls' label sets.
`python benches/metrics_loop.py N tracing` runs `Tracing.record` instead (the span of each call,
with a `traceparent`; the batch is larger than N, so nothing is exported during the loop).
"""

from __future__ import annotations

import sys

from sluicegate.formats.base import Usage
from sluicegate.observe.events import PolicyEvent
from sluicegate.observe.metrics import Metrics
from sluicegate.proxy.relay import CallInfo, Outcome


def outcomes() -> list[Outcome]:
    """Four calls, as the pipeline hands them over (the perf_counter times are fixed)."""

    def info(stream: bool) -> CallInfo:
        return CallInfo(
            "r",
            "openai_chat",
            org="o",
            workspace="ws",
            key="k",
            model="gpt-4o-mini",
            provider="openai",
            provider_kind="openai",
            stream=stream,
            t0=100.0,
        )

    streamed = Outcome(200, usage=Usage(120, 40), cost_nusd=51_000, info=info(True), first_byte_at=100.2)
    whole = Outcome(200, usage=Usage(300, 12), cost_nusd=60_000, info=info(False))
    refused = Outcome(402, error="spend_limit_exceeded", info=info(False))
    refused.events = [PolicyEvent("spend", "refuse", "", "workspace")]
    failed = Outcome(503, error="upstream_status", info=info(False))
    return [streamed, whole, streamed, whole, streamed, whole, refused, failed]


def main(n: int) -> None:
    metrics = Metrics(["gpt-4o-mini"], {"logs": lambda: (0, 0, 0)})
    calls = outcomes()
    durations = [0.004, 0.09, 0.6, 0.03, 1.7, 0.2, 0.001, 0.4]
    for i in range(n):
        metrics.record(calls[i % 8], durations[i % 8])
    metrics.render()


def main_tracing(n: int) -> None:
    from sluicegate.config import ObservabilitySettings
    from sluicegate.observe.tracing import Tracing

    settings = ObservabilitySettings(queue_size=100_000, batch=100_000, interval_s=3600)
    tracing = Tracing(settings, "http://127.0.0.1:9/v1/traces", {}, {})
    headers = [(b"traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]
    calls = outcomes()
    for c in calls:
        assert c.info is not None
        c.info.started_at, c.info.ended_at = 1_800_000_000.0, 1_800_000_000.5
    for i in range(n):
        tracing.record(calls[i % 8], headers)
    tracing.processor._batch_processor._queue.clear()  # nothing to export at exit


if __name__ == "__main__":
    if sys.argv[2:] == ["tracing"]:
        main_tracing(int(sys.argv[1]))
    else:
        main(int(sys.argv[1]))
