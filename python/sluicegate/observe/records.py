"""The records sink: policy events and spend-ledger rows written to the control plane's database in
batches by a background task, so the request path only appends to a bounded queue (a full queue
drops the call's records and counts the drop). The admin API reads them back
(`/admin/v1/orgs/{org}/events`, `/admin/v1/orgs/{org}/spend`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from sluicegate.observe.ids import new_uuid
from sluicegate.proxy.relay import Outcome

if TYPE_CHECKING:
    from sluicegate.control.store import ControlStore

log = logging.getLogger("sluicegate.records")
Record = dict[str, Any]


def rows_of(outcome: Outcome) -> tuple[list[Record], Record | None]:
    """The policy-event rows and the ledger row of a finished call (ids, counts, amounts only)."""
    info = outcome.info
    if info is None or info.org is None:
        return [], None
    at = datetime.fromtimestamp(info.started_at, UTC).isoformat()
    who = {"org_id": info.org, "workspace_id": info.workspace, "user_id": info.user, "key_id": info.key}
    events = [
        {
            "id": new_uuid().hex,
            "at": at,
            **who,
            "request_id": info.request_id,
            "trace_id": info.trace_id,
            "run_id": info.run_id,
            "policy": e.policy,
            "action": e.action,
            "direction": e.direction,
            "entity": e.entity,
            "count": e.count,
            "detail": orjson.dumps({"locations": e.locations, **e.detail}).decode(),
        }
        for e in outcome.events
    ]
    ledger = None
    if outcome.cost_nusd is not None or outcome.usage is not None:
        usage = outcome.usage
        ledger = {
            "id": new_uuid().hex,
            "at": at,
            **who,
            "model": info.model,
            "provider": info.provider,
            "request_id": info.request_id,
            "input_tokens": usage.input_tokens if usage else 0,
            "output_tokens": usage.output_tokens if usage else 0,
            "cost_nusd": outcome.cost_nusd or 0,
        }
    return events, ledger


class RecordSink:
    """A bounded queue of finished calls and the task that writes their records in batches.

    Arguments:
        store: the control plane's store.
        max_queue: calls waiting to be written; past it they are dropped and counted.
        batch: at most this many calls per write.
        interval_s: the longest a record waits before a write.
    """

    def __init__(self, store: ControlStore, max_queue: int = 10_000, batch: int = 500, interval_s: float = 0.5) -> None:
        self.store = store
        self.batch = batch
        self.interval_s = interval_s
        self.dropped = 0
        self.failed = 0
        self._queue: asyncio.Queue[Outcome] = asyncio.Queue(maxsize=max_queue)
        self._task: asyncio.Task[None] | None = None

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def submit(self, outcome: Outcome) -> None:
        try:
            self._queue.put_nowait(outcome)
        except asyncio.QueueFull:
            self.dropped += 1

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Write what is queued, then stop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._write(self._drain())

    def _drain(self) -> list[Outcome]:
        taken: list[Outcome] = []
        while len(taken) < self.batch and not self._queue.empty():
            taken.append(self._queue.get_nowait())
        return taken

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            await asyncio.sleep(self.interval_s)  # let a batch gather
            await self._write([first, *self._drain()])

    async def _write(self, outcomes: list[Outcome]) -> None:
        events: list[Record] = []
        ledger: list[Record] = []
        for outcome in outcomes:
            rows, row = rows_of(outcome)
            events += rows
            if row is not None:
                ledger.append(row)
        if not events and not ledger:
            return
        try:
            await self.store.insert_records(events, ledger)
        except Exception as exc:
            self.failed += len(outcomes)
            log.warning("records could not be written", extra={"error": type(exc).__name__})
