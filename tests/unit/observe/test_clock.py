"""The cached times of records agree with datetime's to the microsecond, across seconds."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from sluicegate.observe.langsmith import times
from sluicegate.observe.logs import _timestamp


def test_run_and_log_times_match_datetime() -> None:
    rng = random.Random(7)
    instants = [round(rng.uniform(0, 4e9), 6) for _ in range(5_000)]
    instants += [1_795_779_047.999999, 1_795_779_048.0, 1_795_779_048.000001, 0.0]
    for t in instants:
        at = datetime.fromtimestamp(t, UTC)
        stamp, iso = times(t)
        assert stamp == at.strftime("%Y%m%dT%H%M%S%fZ")
        assert iso == at.isoformat(timespec="microseconds")
        assert _timestamp(t)[:20] == at.strftime("%Y-%m-%dT%H:%M:%S.")
