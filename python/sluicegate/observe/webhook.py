"""The webhook sink: policy events POSTed as JSON batches to an operator's URL, by a background
task; the request path only appends to a bounded queue (drops are counted). Each body is signed:
`x-sluicegate-signature: sha256=<hex HMAC of the body with webhook_secret>`.

Body: `{"events": [{"at", "request_id", "trace_id", "run_id", "org_id", "workspace_id", "user_id",
"key_id", "policy", "action", "direction", "entity", "count", "detail"}, …]}` (`detail` holds the
locations and any figures): kinds, ids, counts and figures, never content.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac

import aiohttp
import orjson

from sluicegate.config import WebhookSettings
from sluicegate.observe.sinks import BatchSink, event_records
from sluicegate.proxy.relay import Outcome


class WebhookSink(BatchSink[Outcome]):
    """Posts the policy events of finished calls to a webhook, in signed batches.

    Arguments:
        settings: the `[webhook]` section.
    """

    def __init__(self, settings: WebhookSettings) -> None:
        super().__init__("webhook", settings.queue_size, settings.batch, settings.interval_s)
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None

    def wants(self, outcome: Outcome) -> bool:
        return bool(outcome.events)

    async def open(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def write(self, outcomes: list[Outcome]) -> None:
        assert self._session is not None
        body = orjson.dumps({"events": [r for o in outcomes for r in event_records(o)]})
        headers = {"content-type": "application/json"}
        if self.settings.secret:
            digest = hmac.new(self.settings.secret.reveal().encode(), body, hashlib.sha256).hexdigest()
            headers["x-sluicegate-signature"] = f"sha256={digest}"
        for attempt in range(2):
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self._session.post(self.settings.url.reveal(), data=body, headers=headers) as resp:
                    if resp.status < 300:
                        return
            if attempt == 0:
                await asyncio.sleep(0.5)
        raise ConnectionError(f"the webhook did not accept {len(outcomes)} calls' events")
