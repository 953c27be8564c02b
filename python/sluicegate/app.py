"""The ASGI application: the API routes go straight to the gateway pipeline (no framework on the
hot path); `/healthz` and `/readyz` answer for probes; everything else is a 404 in the caller's
format, so no path is ever passed through unscanned.

`/healthz` is liveness: 200 while the process serves. `/readyz` is readiness: 200 once the
upstream pool is up, 503 before that and from the moment SIGTERM arrives (see `server.py`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping

from sluicegate.config import Settings, load_settings
from sluicegate.formats import FORMATS_BY_PATH
from sluicegate.observe.logs import Logs
from sluicegate.policy.pipeline import Gateway
from sluicegate.proxy.relay import send_body
from sluicegate.server import draining
from sluicegate.types import Receive, Scope, Send

log = logging.getLogger("sluicegate")
_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]


class App:
    """The sluicegate ASGI app.

    Arguments:
        settings: validated settings.
        environ: where provider keys named by `api_key_env` are read (default `os.environ`).
    """

    def __init__(self, settings: Settings, environ: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.gateway = Gateway(settings, environ)
        self.ready = False
        self.logs = Logs(settings.log)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            fmt = FORMATS_BY_PATH.get(path)
            if fmt is not None:
                if scope["method"] != "POST":
                    await self.gateway.wrong_method(scope, send, fmt)
                    return
                started = time.perf_counter()
                outcome = await self.gateway.handle(scope, receive, send, fmt)
                if self.logs.access is not None:
                    fields = outcome.log_fields()
                    fields["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
                    self.logs.access.info("call", extra=fields)
            elif path == "/v1/models" and scope["method"] == "GET":
                await self.gateway.models(scope, send)
            elif path == "/healthz":
                await send_body(send, 200, b"ok\n", _TEXT)
            elif path == "/readyz":
                ready = self.ready and not draining()
                await send_body(send, 200 if ready else 503, b"ready\n" if ready else b"not ready\n", _TEXT)
            else:
                await self.gateway.not_found(scope, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        # websocket and anything else: not served (returning closes it)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.logs.start()
                try:
                    await self.gateway.start()
                except Exception as exc:
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": type(exc).__name__})
                    return
                self.ready = True
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.ready = False
                await self.gateway.stop()
                self.logs.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(settings: Settings | None = None) -> App:
    """The app for `settings`, or for the configuration the environment names.

    This is granian's factory target (`sluicegate.app:create_app`): each worker process builds
    its own app from `SLUICEGATE_CONFIG` and the `SLUICEGATE_*` variables.
    """
    return App(settings or load_settings(environ=os.environ))
