"""Spend caps' budgets in `/metrics`: limit, spent, reserved and remaining of every cap, the
configuration file's (`[[spend.caps]]`) and the control plane's (its policies' caps, as they are in
force: a lock above lowers them), read from the spend store when a scrape comes.

Bounded: at most `MAX_CAPS` caps, the file's first, then the control plane's in the order of
(organization, level, entity, window); the caps left out are counted
(`sluicegate_cap_series_omitted`) and the admin API serves every one (`caps` in
`GET /admin/v1/orgs/{org}/spend`). One store read each (a Redis `HMGET`), `CONCURRENCY` at a time,
by the worker that answers the scrape only, and within `timeout_s`. A cap whose read fails (the
store is down) is left out of that scrape; the figures are the store's, the same for every worker,
so they are never summed over workers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence

from prometheus_client.core import GaugeMetricFamily, Metric

from sluicegate.spend import CapLine

log = logging.getLogger("sluicegate.metrics")
MAX_CAPS = 1000
CONCURRENCY = 32  # reads in flight at once (the store's pool serves the requests too)
_LABELS = ["org", "level", "id", "window"]


class CapBudgets:
    """The caps' figures as of the last `refresh` (prometheus_client's collector protocol).

    Arguments:
        lines: the configuration file's caps.
        status: (spent, reserved) of a cap's current window (`Gateway.cap_status`).
        timeout_s: the longest a scrape waits for the reads.
        policy_lines: the control plane's caps now (`ControlView.all_cap_lines`), when it runs.
    """

    def __init__(
        self,
        lines: Sequence[CapLine],
        status: Callable[[CapLine], Awaitable[tuple[int, int]]],
        timeout_s: float = 2.0,
        policy_lines: Callable[[], Sequence[CapLine]] | None = None,
    ) -> None:
        self.lines = tuple(lines)
        self.status = status
        self.timeout_s = timeout_s
        self.policy_lines = policy_lines
        self.omitted = 0
        self._figures: list[tuple[CapLine, int, int]] = []

    def _caps(self) -> list[CapLine]:
        """The caps of this scrape: the file's, then the control plane's not already among them,
        at most `MAX_CAPS` (`omitted` counts the rest)."""
        caps = list(self.lines)
        if self.policy_lines is not None:
            seen = {line.bucket_name for line in caps}
            caps += [line for line in self.policy_lines() if line.bucket_name not in seen]
        self.omitted = max(0, len(caps) - MAX_CAPS)
        if self.omitted:
            log.warning("more caps than /metrics reports", extra={"error": f"{len(caps)} caps, {MAX_CAPS} reported"})
        return caps[:MAX_CAPS]

    async def refresh(self) -> None:
        """Read every cap's current window (`CONCURRENCY` at a time, within `timeout_s`)."""
        caps = self._caps()
        if not caps:
            self._figures = []
            return
        gate = asyncio.Semaphore(CONCURRENCY)

        async def read(line: CapLine) -> tuple[int, int]:
            async with gate:
                return await self.status(line)

        try:
            results = await asyncio.wait_for(
                asyncio.gather(*(read(line) for line in caps), return_exceptions=True), self.timeout_s
            )
        except TimeoutError:
            self._figures = []
            return
        self._figures = [
            (line, result[0], result[1])
            for line, result in zip(caps, results, strict=True)
            if not isinstance(result, BaseException)
        ]

    def collect(self) -> Iterator[Metric]:
        limit = GaugeMetricFamily("sluicegate_cap_limit_nusd", "a configured spend cap, nano-USD", labels=_LABELS)
        spent = GaugeMetricFamily(
            "sluicegate_cap_spent_nusd", "settled spend in the cap's current window, nano-USD", labels=_LABELS
        )
        reserved = GaugeMetricFamily(
            "sluicegate_cap_reserved_nusd", "reserved by calls in flight in the cap's window, nano-USD", labels=_LABELS
        )
        remaining = GaugeMetricFamily(
            "sluicegate_cap_remaining_nusd", "what the cap still admits in its window, nano-USD", labels=_LABELS
        )
        for line, used, held in self._figures:
            labels = [line.org_id, line.level, line.entity_id, line.window]
            limit.add_metric(labels, line.limit_nusd)
            spent.add_metric(labels, used)
            reserved.add_metric(labels, held)
            remaining.add_metric(labels, max(line.limit_nusd - used - held, 0))
        omitted = GaugeMetricFamily(
            "sluicegate_cap_series_omitted", f"caps beyond the {MAX_CAPS} in /metrics (the admin API has them)"
        )
        omitted.add_metric([], self.omitted)
        yield from (limit, spent, reserved, remaining, omitted)
