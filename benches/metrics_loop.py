"""The per-call cost of recording metrics, as an in-process loop for callgrind.

    valgrind --tool=callgrind --callgrind-out-file=/tmp/m.%p python benches/metrics_loop.py N

runs `Metrics.record` N times over a mix of calls (streamed with usage, not streamed, a refusal with
a policy event, an upstream error); the instructions per call are the difference between two runs
(N=3000 and N=1000) divided by 2000, which leaves out start-up and the first calls' label sets.
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


if __name__ == "__main__":
    main(int(sys.argv[1]))
