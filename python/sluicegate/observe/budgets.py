"""Spend caps' budgets in `/metrics`: limit, spent, reserved and remaining of the configuration file's
caps (`[[spend.caps]]`), read from the spend store when a scrape comes.

Bounded: only the file's caps (the control plane's are per organization, possibly thousands: the
admin API serves them, `caps` in `GET /admin/v1/orgs/{org}/spend`), at most `MAX_CAPS` of them, one
store read each (a Redis `HMGET`), all at once, by the worker that answers the scrape only, and
within `timeout_s`. A cap whose read fails (the store is down) is left out of that scrape; the
figures are the store's, the same for every worker, so they are never summed over workers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence

from prometheus_client.core import GaugeMetricFamily, Metric

from sluicegate.spend import CapLine

log = logging.getLogger("sluicegate.metrics")
MAX_CAPS = 200
_LABELS = ["org", "level", "id", "window"]


class CapBudgets:
    """The caps' figures as of the last `refresh` (prometheus_client's collector protocol).

    Arguments:
        lines: the caps (the configuration file's).
        status: (spent, reserved) of a cap's current window (`Gateway.cap_status`).
        timeout_s: the longest a scrape waits for the reads.
    """

    def __init__(
        self,
        lines: Sequence[CapLine],
        status: Callable[[CapLine], Awaitable[tuple[int, int]]],
        timeout_s: float = 2.0,
    ) -> None:
        if len(lines) > MAX_CAPS:
            log.warning("more caps than /metrics reports", extra={"error": f"{len(lines)} caps, {MAX_CAPS} reported"})
        self.lines = tuple(lines[:MAX_CAPS])
        self.status = status
        self.timeout_s = timeout_s
        self._figures: list[tuple[CapLine, int, int]] = []

    async def refresh(self) -> None:
        """Read every cap's current window (concurrently, within `timeout_s`)."""
        if not self.lines:
            return
        try:
            results = await asyncio.wait_for(
                asyncio.gather(*(self.status(line) for line in self.lines), return_exceptions=True), self.timeout_s
            )
        except TimeoutError:
            self._figures = []
            return
        self._figures = [
            (line, result[0], result[1])
            for line, result in zip(self.lines, results, strict=True)
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
        yield from (limit, spent, reserved, remaining)
