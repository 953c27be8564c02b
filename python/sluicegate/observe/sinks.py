"""Background sinks: the request path hands a finished call to `submit`, which only appends it to
a bounded queue (a full queue drops it and counts the drop); a task takes calls off in batches and
writes them (`write`), so nothing on the request path waits for a database or a webhook."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sluicegate.proxy.relay import Outcome

log = logging.getLogger("sluicegate.sinks")
Item = TypeVar("Item")


def event_records(outcome: Outcome) -> list[dict[str, Any]]:
    """The policy events of a finished call, with who made it and when: ids, kinds, counts and
    figures, never content. Records and webhooks both carry this shape."""
    info = outcome.info
    if info is None or not outcome.events:
        return []
    call = {
        "at": datetime.fromtimestamp(info.started_at, UTC).isoformat(),
        "request_id": info.request_id,
        "trace_id": info.trace_id,
        "run_id": info.run_id,
        "org_id": info.org,
        "workspace_id": info.workspace,
        "user_id": info.user,
        "key_id": info.key,
        "route": info.route,  # `mcp` for a tool call through the MCP front door
    }
    return [
        {
            **call,
            "policy": e.policy,
            "action": e.action,
            "direction": e.direction,
            "entity": e.entity,
            "count": e.count,
            "detail": {"locations": e.locations, **e.detail},
        }
        for e in outcome.events
    ]


class BatchSink(Generic[Item]):
    """A bounded queue of finished calls and the task that writes them in batches.

    A batch is written when `batch` calls are waiting, or `interval_s` after the first of them
    arrived, whichever comes first: under load a sink writes full batches back to back, so its
    throughput is not capped at `batch / interval_s`.

    Arguments:
        name: the queue's name in metrics and logs.
        max_queue: calls waiting; past it they are dropped and counted.
        batch: at most this many calls a write.
        interval_s: the longest a call waits for its batch.
    """

    def __init__(self, name: str, max_queue: int, batch: int, interval_s: float) -> None:
        self.name = name
        self.batch = batch
        self.interval_s = interval_s
        self.dropped = 0
        self.failed = 0
        self._queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=max_queue)
        self._task: asyncio.Task[None] | None = None
        self._writing: asyncio.Future[None] | None = None
        self._in_write = 0  # items in the write under way
        self._held: list[Item] = []  # the first of a batch, waiting for the rest

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def wants(self, item: Item) -> bool:
        """Whether this sink has anything to write for the call."""
        return True

    def submit(self, item: Item) -> None:
        """Queue a finished call; never waits."""
        if not self.wants(item):
            return
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1

    async def open(self) -> None:
        """Acquire what writing needs (called by `start`)."""

    async def close(self) -> None:
        """Release it (called by `stop`, after the last write)."""

    async def write(self, items: list[Item]) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        await self.open()
        self._task = asyncio.create_task(self._run())

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Let a write under way finish and write what is queued, for at most `timeout_s` (a
        destination that is down must not hold a worker's shutdown); what is left then is dropped
        and counted. Then stop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await asyncio.wait_for(self._finish(), timeout_s)
        except TimeoutError:
            left = len(self._held) + self._queue.qsize() + self._in_write
            self.dropped += left
            self._held = []
            self._queue = asyncio.Queue(maxsize=self._queue.maxsize)
            log.warning("a sink stopped before writing everything", extra={"error": f"{self.name}: {left} dropped"})
        await self.close()

    async def _finish(self) -> None:
        if self._writing is not None:
            await self._writing
        if self._held:  # taken off the queue while its batch gathered
            held, self._held = self._held, []
            await self._write(held)
        while not self._queue.empty():
            await self._write(self._take(self.batch))

    def _take(self, limit: int) -> list[Item]:
        taken: list[Item] = []
        while len(taken) < limit and not self._queue.empty():
            taken.append(self._queue.get_nowait())
        return taken

    async def _run(self) -> None:
        while True:
            self._held = [await self._queue.get()]
            if self._queue.qsize() + 1 < self.batch:
                await asyncio.sleep(self.interval_s)  # let a batch gather
            batch, self._held = [*self._held, *self._take(self.batch - 1)], []
            # Shielded: stopping the sink cancels this loop, never a batch half written.
            self._writing = asyncio.ensure_future(self._write(batch))
            await asyncio.shield(self._writing)
            self._writing = None

    async def _write(self, items: list[Item]) -> None:
        self._in_write = len(items)
        try:
            await self.write(items)
        except Exception as exc:
            self.failed += len(items)
            log.warning("a batch could not be written", extra={"error": f"{self.name}: {type(exc).__name__}"})
        self._in_write = 0  # not when cancelled: `stop` counts those as dropped
