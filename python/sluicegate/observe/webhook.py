"""The webhook sink: policy events POSTed as JSON batches to an operator's URL, by a background
task; the request path only appends to a bounded queue (drops are counted). Each body is signed:
`x-sluicegate-signature: sha256=<hex HMAC of the body with webhook_secret>`.

Body: `{"events": [{"at", "request_id", "trace_id", "run_id", "org", "workspace", "user", "key",
"policy", "action", "direction", "entity", "count", "locations", "detail"}, …]}`: kinds, ids,
counts and figures, never content.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson

from sluicegate.config import WebhookSettings
from sluicegate.proxy.relay import Outcome

log = logging.getLogger("sluicegate.webhook")


def event_records(outcome: Outcome) -> list[dict[str, Any]]:
    info = outcome.info
    if info is None or not outcome.events:
        return []
    at = datetime.fromtimestamp(info.started_at, UTC).isoformat()
    base = {
        "at": at,
        "request_id": info.request_id,
        "trace_id": info.trace_id,
        "run_id": info.run_id,
        "org": info.org,
        "workspace": info.workspace,
        "user": info.user,
        "key": info.key,
    }
    return [
        {
            **base,
            "policy": e.policy,
            "action": e.action,
            "direction": e.direction,
            "entity": e.entity,
            "count": e.count,
            "locations": e.locations,
            "detail": e.detail,
        }
        for e in outcome.events
    ]


class WebhookSink:
    """Batches policy events to a webhook.

    Arguments:
        settings: the `[webhook]` section.
    """

    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings
        self.dropped = 0
        self.failed = 0
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=settings.queue_size)
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def submit(self, outcome: Outcome) -> None:
        for record in event_records(outcome):
            try:
                self._queue.put_nowait(record)
            except asyncio.QueueFull:
                self.dropped += 1

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s))
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        batch = self._take()
        if batch:
            await self._send(batch)
        if self._session is not None:
            await self._session.close()

    def _take(self) -> list[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        while len(batch) < self.settings.batch and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            await asyncio.sleep(self.settings.interval_s)
            await self._send([first, *self._take()])

    async def _send(self, batch: list[dict[str, Any]]) -> None:
        assert self._session is not None
        body = orjson.dumps({"events": batch})
        headers = {"content-type": "application/json"}
        if self.settings.secret:
            digest = hmac.new(self.settings.secret.encode(), body, hashlib.sha256).hexdigest()
            headers["x-sluicegate-signature"] = f"sha256={digest}"
        for attempt in range(2):
            try:
                async with self._session.post(self.settings.url, data=body, headers=headers) as resp:
                    if resp.status < 300:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            if attempt == 0:
                await asyncio.sleep(0.5)
        self.failed += len(batch)
        log.warning("policy events could not be delivered to the webhook", extra={"events": [str(len(batch))]})
