"""The webhook sink: policy events POSTed as JSON batches to an operator's URL, by a background
task; the request path only appends to a bounded queue (drops are counted).

With `[webhook] secret` set, each POST is signed the Standard Webhooks way
(https://www.standardwebhooks.com): `webhook-id` (one id a batch, the same on its retry),
`webhook-timestamp` (Unix seconds, taken again for each attempt) and
`webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed by the secret
(`config.webhook_key`), so a receiver verifies it with any Standard Webhooks library and refuses a
replay outside its tolerance window. Deprecated, for receivers of the earlier format, until the next
release: `x-sluicegate-signature: sha256=<hex HMAC-SHA256 of the body, keyed by the secret's text>`.

Body: `{"events": [{"at", "request_id", "trace_id", "run_id", "org_id", "workspace_id", "user_id",
"key_id", "route", "policy", "action", "direction", "entity", "count", "detail"}, …]}` (`detail` holds the
locations and any figures): kinds, ids, counts and figures, never content.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import time
from collections.abc import Callable

import aiohttp
import orjson

from sluicegate.config import WebhookSettings, webhook_key
from sluicegate.observe.ids import new_uuid_str
from sluicegate.observe.sinks import BatchSink, event_records
from sluicegate.proxy.relay import Outcome


def standard_headers(key: bytes, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers of one message: its id, its timestamp and the `v1` signature
    (HMAC-SHA256 of `{id}.{timestamp}.{body}` keyed by `key`, in base64)."""
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    signature = "v1," + base64.b64encode(digest).decode()
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}


class WebhookSink(BatchSink[Outcome]):
    """Posts the policy events of finished calls to a webhook, in signed batches.

    Arguments:
        settings: the `[webhook]` section.
        clock: wall-clock seconds, for `webhook-timestamp` (default `time.time`; a test's own).
    """

    def __init__(self, settings: WebhookSettings, clock: Callable[[], float] = time.time) -> None:
        super().__init__("webhook", settings.queue_size, settings.batch, settings.interval_s)
        self.settings = settings
        self.clock = clock
        self._key = webhook_key(settings.secret) if settings.secret else None
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
            headers["x-sluicegate-signature"] = f"sha256={digest}"  # deprecated: the format before Standard Webhooks
        msg_id = "msg_" + new_uuid_str().replace("-", "")
        for attempt in range(2):
            if self._key is not None:
                headers.update(standard_headers(self._key, msg_id, int(self.clock()), body))
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self._session.post(self.settings.url.reveal(), data=body, headers=headers) as resp:
                    if resp.status < 300:
                        return
            if attempt == 0:
                await asyncio.sleep(0.5)
        raise ConnectionError(f"the webhook did not accept {len(outcomes)} calls' events")
