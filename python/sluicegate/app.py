"""The ASGI application: the API routes go straight to the gateway pipeline (no framework on the
hot path); `/mcp/{server}` (and its protected resource metadata under `/.well-known/`) to the MCP
front door (`mcp/proxy.py`); `/healthz` and `/readyz` answer for probes; everything else is a 404 in
the caller's format, so no path is ever passed through unscanned.

`/healthz` is liveness: 200 while the process serves. `/readyz` is readiness: 200 once the
upstream pool is up, 503 before that and from the moment SIGTERM arrives (see `server.py`).
`/metrics` answers only a scraper presenting `metrics.token` as a bearer token (401 otherwise, and
to everyone while no token is set): its figures include every workspace's spend.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import orjson
from prometheus_client import CONTENT_TYPE_LATEST

from sluicegate.config import METRICS_DIR_ENV, Settings, load_settings
from sluicegate.errors import GatewayError, PayloadTooLarge
from sluicegate.formats import FORMATS_BY_PATH
from sluicegate.listener import AdminListener
from sluicegate.observe.budgets import CapBudgets
from sluicegate.observe.ids import new_uuid_str
from sluicegate.observe.langsmith import LangSmithSink
from sluicegate.observe.logs import Logs
from sluicegate.observe.metrics import Metrics
from sluicegate.observe.records import RecordSink
from sluicegate.observe.sinks import BatchSink
from sluicegate.observe.webhook import WebhookSink
from sluicegate.observe.workers import WorkerFiles
from sluicegate.policy.pipeline import ClientGone, Gateway, read_body, read_headers
from sluicegate.proxy.relay import JSON, Outcome, send_body
from sluicegate.server import draining
from sluicegate.types import Message, Receive, Scope, Send

if TYPE_CHECKING:
    from sluicegate.control.plane import ControlPlane
    from sluicegate.control.view import ProviderCredential
    from sluicegate.mcp.proxy import McpProxy
    from sluicegate.observe.tracing import Tracing

log = logging.getLogger("sluicegate")
_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]
_MCP_PATHS = ("/mcp/", "/.well-known/oauth-protected-resource/")  # the MCP front door
_METRICS_401 = b"/metrics needs the header Authorization: Bearer <metrics.token>\n"
_METRICS_CHALLENGE = [*_TEXT, (b"www-authenticate", b'Bearer realm="sluicegate-metrics"')]


class App:
    """The sluicegate ASGI app.

    Arguments:
        settings: validated settings.
        environ: where provider keys named by `api_key_env` are read (default `os.environ`).
        clock: wall-clock seconds for the policies that count time (default `time.time`; a test's own).
    """

    def __init__(
        self, settings: Settings, environ: Mapping[str, str] | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.gateway = Gateway(settings, environ, clock)
        self.control: ControlPlane | None = None
        if settings.control.enabled:
            from sluicegate.control.plane import ControlPlane
            from sluicegate.control.policies import OperatorPolicy
            from sluicegate.forwarded import TrustedProxies

            # The database's keys, then the config's: the view has KeyStore's authenticate() contract.
            operator = OperatorPolicy.from_settings(
                settings.redaction,
                settings.spend,
                settings.models,
                loops=settings.loops,
                limits=settings.limits,
                tools=settings.tools,
            )
            proxies = TrustedProxies(settings.server.trusted_proxies)
            self.control = ControlPlane(
                settings.control, self.gateway.keys, settings.langsmith.run_url, operator, proxies, settings.redaction
            )
            self.gateway.attach(self.control.view)
            self.control.admin.caps_status = self.gateway.cap_status
            self.control.admin.base_url_refusal = self.gateway.tenant_urls.refusal
            self.control.admin.routes_status = self.gateway.router.routes.status
            self.control.admin.mcp_url_refusal = self.gateway.tenant_urls.mcp_refusal
        # Batched background writers of finished calls: the database's records, the webhook, LangSmith.
        self.sinks: list[BatchSink[Outcome]] = []
        if self.control is not None:
            self.sinks.append(RecordSink(self.control.store))
        if settings.webhook.url:
            self.sinks.append(WebhookSink(settings.webhook, clock))
        self.ready = False
        self.logs = Logs(settings.log)
        admin_port = settings.server.admin_port
        self.admin_listener = AdminListener(self.serve_admin, settings.server.host, admin_port) if admin_port else None
        self.langsmith: LangSmithSink | None = None
        if settings.langsmith.enabled:
            redactor = self.gateway.redactor
            scrub = redactor.scrub if redactor is not None else (lambda text: text)
            api_key = settings.langsmith.resolved_api_key(os.environ if environ is None else environ)
            self.langsmith = LangSmithSink(settings.langsmith, api_key, scrub, self._langsmith_credential)
            self.sinks.append(self.langsmith)
            self.gateway.capture = True
        # OpenTelemetry spans, when an OTLP endpoint is configured (the SDK is imported only then).
        self.tracing: Tracing | None = None
        otlp = settings.observability.endpoint(os.environ if environ is None else environ)
        if otlp is not None:
            from sluicegate.observe.tracing import Tracing

            env = os.environ if environ is None else environ
            self.tracing = Tracing(settings.observability, otlp, settings.providers, env)
        self.metrics: Metrics | None = None
        self.budgets: CapBudgets | None = None
        self._publisher: asyncio.Task[None] | None = None
        if settings.metrics.enabled:
            queues = {"logs": lambda: (self.logs.depth, self.logs.dropped, 0)}
            for batch_sink in self.sinks:
                queues[batch_sink.name] = lambda b=batch_sink: (b.depth, b.dropped, b.failed)
            if self.tracing is not None:
                queues[self.tracing.name] = self.tracing.stats
            models = [m for m, _ in self.gateway.router.listed_models()] + settings.metrics.models
            # The caps' budgets (the file's, then the control plane's), read from the spend store at
            # scrape time (observe/budgets.py); without caps, their families are listed empty.
            lines = settings.spend.lines() if self.gateway.spend is not None else ()
            policy_caps = self.control.view.all_cap_lines if self.control and self.gateway.spend else None
            self.budgets = CapBudgets(lines, self.gateway.cap_status, policy_lines=policy_caps)
            directory = os.environ.get(METRICS_DIR_ENV)  # several workers: one scrape sums them
            workers = WorkerFiles(directory) if directory else None
            self.metrics = Metrics(models, queues, workers, [self.budgets])
            self.metrics.watch_breakers(self.gateway.router.routes.deployments())
        # The MCP front door (`/mcp/{server}`): the same keys, control view, redactors and sinks.
        self.mcp: McpProxy | None = None
        if settings.mcp.enabled:
            from sluicegate.mcp.proxy import McpProxy

            env = os.environ if environ is None else environ
            count_tool = self.metrics.record_tool_call if self.metrics is not None else None
            self.mcp = McpProxy(settings, self.gateway, self._record, env, count_tool)
            if self.control is not None:
                self.mcp.tools.policy_rules = self.control.view.tool_rules
                self.control.admin.mcp_tools = self.mcp.upstream_tools

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            fmt = FORMATS_BY_PATH.get(path)
            if fmt is not None:
                if scope["method"] != "POST":
                    await self.gateway.wrong_method(scope, send, fmt)
                    return
                outcome = await self.gateway.handle(scope, receive, send, fmt)
                self._record(outcome)
                if self.tracing is not None:
                    self.tracing.record(outcome, scope["headers"])
            elif path == "/v1/models" and scope["method"] == "GET":
                await self.gateway.models(scope, send)
            elif self.mcp is not None and (path.startswith(_MCP_PATHS) or path == "/mcp"):
                await self.mcp(scope, receive, send)
            else:
                await self._others(scope, receive, send, public=True)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        # websocket and anything else: not served (returning closes it)

    async def serve_admin(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The admin port (`server.admin_port`, `sluicegate.listener`): the admin API, the console,
        `/metrics` and the probes; `/v1` and `/mcp` are the public port's alone."""
        path = scope["path"]
        if path.startswith(("/v1/", *_MCP_PATHS)) or path == "/mcp":  # agents' traffic: the public port's alone
            await self.gateway.not_found(scope, send)
        else:
            await self._others(scope, receive, send, public=False)

    async def _others(self, scope: Scope, receive: Receive, send: Send, public: bool) -> None:
        """Every path but the API calls: with an admin port, the public port keeps only the probes."""
        path = scope["path"]
        if public and self.admin_listener is not None and (path == "/metrics" or path.startswith("/admin/")):
            await self.gateway.not_found(scope, send)
        elif path == "/metrics" and self.metrics is not None:
            if self._may_scrape(scope):
                if self.budgets is not None:
                    await self.budgets.refresh()
                body = self.metrics.render()
                await send_body(send, 200, body, [(b"content-type", CONTENT_TYPE_LATEST.encode())])
            else:
                await send_body(send, 401, _METRICS_401, _METRICS_CHALLENGE)
        elif path == "/healthz":
            await send_body(send, 200, b"ok\n", _TEXT)
        elif path == "/readyz":
            ready = self.ready and not draining()
            await send_body(send, 200 if ready else 503, b"ready\n" if ready else b"not ready\n", _TEXT)
        elif self.control is not None and path.startswith("/admin/"):
            await self._admin(scope, receive, send)
        else:
            await self.gateway.not_found(scope, send)

    async def _admin(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The admin API, its request body read here first: at most `control.max_body_bytes` (413),
        all of it within `server.body_timeout_s` (408); the API then reads it from memory."""
        assert self.control is not None
        limit = self.settings.control.max_body_bytes
        try:
            declared = read_headers(scope).get(b"content-length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
            body = await read_body(receive, limit, self.settings.server.body_timeout_s)
        except GatewayError as err:
            error = orjson.dumps({"error": {"code": err.code, "message": err.message}})
            await send_body(send, err.status, error, [(b"content-type", JSON)])
            return
        except ClientGone:
            return
        pending = [{"type": "http.request", "body": body, "more_body": False}]

        async def replay() -> Message:
            return pending.pop() if pending else await receive()  # then whatever comes (a disconnect)

        await self.control.admin(scope, replay, send)

    def _may_scrape(self, scope: Scope) -> bool:
        """Whether the request presents `metrics.token` as its bearer token (compared in constant time)."""
        token = self.settings.metrics.token
        if token is None:
            return False
        presented = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        scheme, _, credentials = presented.partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), token.reveal().encode())

    def _record(self, outcome: Outcome) -> None:
        """Hand a finished call to the metrics, the access log and the background sinks (none blocks)."""
        info = outcome.info
        duration = time.perf_counter() - info.t0 if info is not None else 0.0
        if info is not None:
            info.ended_at = info.started_at + duration
            if self.langsmith is not None and (info.model is not None or info.tool is not None):
                info.run_id = new_uuid_str()  # known before the run is posted, so events can name it
        for sink in self.sinks:
            sink.submit(outcome)
        if self.metrics is not None:
            self.metrics.record(outcome, duration)
        if self.logs.access:
            fields = outcome.log_fields()
            fields["duration_ms"] = round(duration * 1000, 3)
            self.logs.write_access(fields)

    async def _publish(self, interval_s: float) -> None:
        """Publish this worker's metrics for the others' scrapes, every `interval_s` (`observe/workers.py`)."""
        assert self.metrics is not None
        while True:
            await asyncio.sleep(interval_s)
            try:
                self.metrics.publish()
            except Exception:  # a full disk, say: the next round tries again; serving goes on
                log.exception("metrics could not be published")

    def _langsmith_credential(self, workspace: str) -> ProviderCredential | None:
        """A workspace's own LangSmith key and project, from its secrets (the control plane's)."""
        view = self.gateway.view
        return view.provider_credential(workspace, "langsmith") if view is not None else None

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.logs.start()
                if self.metrics is not None and self.settings.metrics.token is None:
                    log.warning("metrics.enabled without metrics.token: /metrics answers 401 to every scrape")
                try:
                    if self.control is not None:
                        await self.control.start(self.settings)
                    for sink in self.sinks:
                        await sink.start()
                    await self.gateway.start()
                    if self.admin_listener is not None:
                        await self.admin_listener.start()
                except Exception as exc:
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": type(exc).__name__})
                    return
                if self.metrics is not None and self.metrics.workers is not None:
                    self._publisher = asyncio.create_task(self._publish(self.settings.metrics.publish_interval_s))
                self.ready = True
                settle_heap(self.settings.server.gc_thresholds)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.ready = False
                if self.admin_listener is not None:
                    await self.admin_listener.stop()
                await self.gateway.stop()
                if self.mcp is not None:
                    await self.mcp.stop()
                await asyncio.gather(*(sink.stop() for sink in self.sinks))  # each bounded, together
                if self.control is not None:
                    await self.control.stop()
                if self.tracing is not None:
                    await asyncio.to_thread(self.tracing.shutdown)  # the last spans, bounded by its timeout
                if self._publisher is not None and self.metrics is not None and self.metrics.workers is not None:
                    self._publisher.cancel()
                    self.metrics.publish()  # the last figures: they stay in the sum after this worker
                    self.metrics.workers.close(dead=True)
                self.logs.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


def settle_heap(thresholds: tuple[int, int, int]) -> None:
    """Keep the collector off what start-up built: freeze every object alive now, so that a full
    collection walks only what requests made since (without it, one took ~10 ms here, which showed
    in p99 latency); and collect the young generation less often (`thresholds`), so the objects of
    a request are mostly gone before a collection would promote them."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)


def create_app(settings: Settings | None = None) -> App:
    """The app for `settings`, or for the configuration the environment names.

    This is granian's factory target (`sluicegate.app:create_app`): each worker process builds
    its own app from `SLUICEGATE_CONFIG` and the `SLUICEGATE_*` variables.
    """
    return App(settings or load_settings(environ=os.environ))
