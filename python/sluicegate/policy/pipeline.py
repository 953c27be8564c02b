"""The request pipeline: authenticate → read and check the request → route → forward → relay.

Rate limits (counted after routing; their headers go with every answer), spend reservation
(before forwarding), redaction (of the request, and of the response as it streams) and settlement
(after the relay) plug in at the marked steps. Nothing here waits for a database or a log write;
the only I/O is the client and the provider.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import os
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from sluicegate._core import json_problem
from sluicegate.config import RedactionSettings, Settings
from sluicegate.errors import (
    GatewayError,
    InvalidRequest,
    ModelNotAllowed,
    NotFound,
    PayloadTooLarge,
    PolicyFailed,
    RequestTimeout,
    Unavailable,
    UpstreamRefused,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from sluicegate.formats import FORMATS_BY_PATH, WireFormat
from sluicegate.formats.base import Family, StreamTap
from sluicegate.formats.translate import Bridge
from sluicegate.formats.translate_stream import TranslatedResponse
from sluicegate.observe.events import PolicyEvent
from sluicegate.policy.auth import Authenticator, Identity, KeyStore
from sluicegate.policy.limits import LimitPolicy
from sluicegate.policy.loops import LoopPolicy
from sluicegate.policy.models import ModelPolicy, ModelRules
from sluicegate.policy.redaction import Redactor
from sluicegate.policy.spend import SpendGuard, SpendPolicy, Substitution
from sluicegate.policy.tool_calls import gate_for
from sluicegate.policy.tools import ToolPolicy
from sluicegate.proxy.egress import TenantUrls
from sluicegate.proxy.http1 import NativeUpstream
from sluicegate.proxy.providers import Provider, Router
from sluicegate.proxy.relay import (
    GATEWAY_ID,
    INTERNAL,
    JSON,
    CallInfo,
    Outcome,
    Rewrite,
    relay_body,
    relay_error_status,
    relay_stream,
    send_body,
    send_error,
)
from sluicegate.proxy.routing import (
    CLOSED,
    Deployment,
    HeldResponse,
    PrimedStream,
    Route,
    refusal_case,
    retry_after_s,
    retryable_status,
)
from sluicegate.proxy.upstream import HttpUpstream, InProcessUpstream, Timeouts, Upstream, UpstreamResponse
from sluicegate.spend import CapLine
from sluicegate.spend.estimate import Estimate
from sluicegate.types import Receive, Scope, Send

if TYPE_CHECKING:
    from sluicegate.control.view import ControlView, ProviderCredential

log = logging.getLogger("sluicegate.pipeline")
_UUID = re.compile(rb"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_WANTED = frozenset({b"authorization", b"x-api-key", b"content-type", b"content-length"})
_WANTED |= {b"anthropic-version", b"anthropic-beta", b"langsmith-trace", b"baggage"}


class _RequestIds:
    """Request ids unique across processes: a random per-process prefix and a counter."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.prefix = os.urandom(6).hex()
        self.counter = itertools.count(1)

    def __call__(self) -> bytes:
        return f"{self.prefix}{next(self.counter):08x}".encode()


request_id = _RequestIds()
os.register_at_fork(after_in_child=request_id.reset)  # workers forked from one parent differ


def read_headers(scope: Scope) -> dict[bytes, bytes]:
    """The few request headers the pipeline reads, in one pass (repeated headers: the last wins)."""
    return {k: v for k, v in scope["headers"] if k in _WANTED}


class ClientGone(Exception):
    """The client disconnected before its request body arrived."""


async def read_body(receive: Receive, limit: int, timeout_s: float) -> bytes:
    """The request body, refusing it as soon as it passes `limit` bytes, or when all of it has not
    arrived within `timeout_s` (a client that trickles its body cannot hold a connection).

    Raises:
        PayloadTooLarge: the body is larger than `limit`.
        RequestTimeout: the body took longer than `timeout_s`.
        ClientGone: the client left before the body was complete.
    """
    # What asyncio.timeout does, with one timer and a flag, for half its cost on the request path.
    task = asyncio.current_task()
    assert task is not None
    expired: list[bool] = []

    def expire() -> None:
        expired.append(True)
        task.cancel()

    timer = asyncio.get_running_loop().call_later(timeout_s, expire)
    try:
        return await _read_body(receive, limit)
    except asyncio.CancelledError:
        if expired and task.uncancel() == 0:  # this timer's cancellation, and no other pending
            raise RequestTimeout(f"the request body did not arrive within {timeout_s:g} s") from None
        raise
    finally:
        timer.cancel()


async def _read_body(receive: Receive, limit: int) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        if message["type"] == "http.disconnect":
            raise ClientGone
        if len(body) > limit:
            raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
        return body
    parts = [body]
    size = len(body)
    while message.get("more_body"):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


def family_of(headers: Mapping[bytes, bytes], path: str) -> Family:
    """The error format to answer in when the path names none: Anthropic SDKs send anthropic-version."""
    return "anthropic" if b"anthropic-version" in headers or path.startswith("/v1/messages") else "openai"


@dataclass(slots=True)
class _Routed:
    """A routed call past its first attempt (`_retries`): where its spend reservation stands (it
    moves with the attempt), and what the attempts did (for the headers, the trace and the bill)."""

    route: Route
    guard: SpendGuard | None = None
    reserved: tuple[Provider, str] | None = None  # what `guard` is priced for
    lines: tuple[CapLine, ...] = ()
    est: Estimate | None = None
    tried: list[str] = field(default_factory=list)  # deployment labels, one per attempt
    billed_nusd: int = 0  # what failed attempts that reported usage cost
    raw: bytes = b""  # the request as the last attempt sent it (for a trace)


class _Call(NamedTuple):
    """What the attempts of a routed call work with: the client's side of the exchange and the
    call as the pipeline prepared it."""

    send: Send
    receive: Receive
    fmt: WireFormat
    identity: Identity
    rules: ModelRules | None
    body: dict[str, Any]
    headers: dict[bytes, bytes]
    tap: StreamTap | None
    rewrite: Rewrite | None
    rid: bytes
    info: CallInfo


class Gateway:
    """The data plane: owns the router, the key store and the upstream clients.

    Arguments:
        settings: the validated settings.
        environ: where provider keys named by `api_key_env` are read.
        clock: wall-clock seconds for the policies that count time (loop detection); a test's own.
        sleep: how a retry waits out a provider's `retry-after` (a test's own records it).
        monotonic: the routes' clock (breaker cool-downs, retry-after); a test's own.
        rng: the routes' random source for `weighted` choices (default: seeded by `routing.seed`).
    """

    def __init__(
        self,
        settings: Settings,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        *,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self._sleep = sleep
        self.keys: Authenticator = KeyStore(settings.keys)
        # The control plane's view (keys, inherited policies, provider secrets), when it runs.
        self.view: ControlView | None = None
        self._redactors: dict[int, tuple[RedactionSettings, Redactor]] = {}
        self.router = Router(settings, os.environ if environ is None else environ, monotonic, rng)
        self._routes = self.router.routes.by_name or None  # None: no model is a route
        self.timeouts = Timeouts.from_settings(settings.upstream)
        self.max_body = settings.server.max_body_bytes
        # Tenant base URLs: the operator's rules, and a client of their own that checks every address.
        self.tenant_urls = TenantUrls.from_settings(settings)
        self.body_timeout_s = settings.server.body_timeout_s
        self.max_depth = settings.server.max_json_depth
        self._http: NativeUpstream | None = None  # the operator's providers
        self._tenant_http: HttpUpstream | None = None
        self._local = InProcessUpstream(settings.upstream.max_response_bytes)
        self.redactor = Redactor(settings.redaction) if settings.redaction.enabled else None
        wants_spend = settings.spend.caps or settings.control.enabled  # the control plane's caps come later
        self.spend = SpendPolicy(settings.spend) if settings.spend.enabled and wants_spend else None
        # Model access rules: the config file's `[models]`, and the control plane's (`attach`).
        wants_models = not settings.models.empty or settings.control.enabled
        self.model_access = ModelPolicy(settings.models, self.router.providers) if wants_models else None
        wants_limits = settings.limits.enabled and (settings.limits.rules or settings.control.enabled)
        self.limits = LimitPolicy(settings.limits, settings.spend.estimate) if wants_limits else None
        # Runaway loops: built when the file has rules or the control plane may add some.
        wants_loops = settings.loops.enabled and (settings.loops.rules or settings.control.enabled)
        self.loops = LoopPolicy(settings.loops, clock) if wants_loops else None
        # Tool lists on the tools of model traffic (`policy.tool_calls`): the file's `[tools]` when
        # it says `model_calls`, and the control plane's (`attach`).
        wants_tools = settings.tools.model_calls != "off" or settings.control.enabled
        self.tool_calls = ToolPolicy(settings.tools) if wants_tools else None
        self.capture = False  # keep request and response bodies for a trace sink (set by the app)

    async def start(self) -> None:
        """Create the pooled client and the spend store; call inside the serving event loop."""
        self._http = NativeUpstream(self.settings.upstream)
        self._tenant_http = HttpUpstream(self.settings.upstream, self.tenant_urls.addresses)
        if self.spend is not None:
            await self.spend.start()
        if self.limits is not None:
            await self.limits.start()
        if self.loops is not None:
            await self.loops.start()

    async def stop(self) -> None:
        """Close the spend store (returning leases, flushing settlements) and the pool."""
        if self.spend is not None:
            await self.spend.stop()
        if self.limits is not None:
            await self.limits.stop()
        if self.loops is not None:
            await self.loops.stop()
        for client in (self._http, self._tenant_http):
            if client is not None:
                await client.close()

    def _upstream(self, url: str | None, tenant: bool) -> Upstream:
        if url is None:
            return self._local
        if tenant:
            if self._tenant_http is None:
                self._tenant_http = HttpUpstream(self.settings.upstream, self.tenant_urls.addresses)
            return self._tenant_http
        if self._http is None:
            self._http = NativeUpstream(self.settings.upstream)
        return self._http

    async def handle(self, scope: Scope, receive: Receive, send: Send, fmt: WireFormat) -> Outcome:
        """Serve one API call of format `fmt`; every failure is answered in that format."""
        rid = request_id()
        info = CallInfo(rid.decode(), fmt.name, started_at=time.time(), t0=time.perf_counter())
        try:
            outcome = await self._forward(scope, receive, send, fmt, rid, info)
        except GatewayError as err:
            outcome = await send_error(send, fmt, err, rid, info.headers)
            outcome.events = [*info.events, *err.events]  # what earlier steps saw, then the refusal
        except ClientGone:
            outcome = Outcome(499, error="client_disconnected", client_gone=True)
        except Exception:
            # A bug, not a bad request: log the kind (never the content) and answer in the format.
            log.exception("request failed", extra={"request_id": info.request_id})
            outcome = await send_error(send, fmt, INTERNAL, rid)
        outcome.info = info
        return outcome

    async def _forward(
        self, scope: Scope, receive: Receive, send: Send, fmt: WireFormat, rid: bytes, info: CallInfo
    ) -> Outcome:
        headers = read_headers(scope)
        trace = headers.get(b"langsmith-trace")
        if trace is not None and len(trace) >= 36:
            trace_id = trace.split(b".", 1)[0][-36:]
            # The caller's header: only a UUID is kept (it goes into logs, events and run links).
            if _UUID.fullmatch(trace_id):
                info.trace_id = trace_id.decode("latin-1")
                info.trace = trace.decode("latin-1")
                baggage = headers.get(b"baggage")
                info.baggage = baggage.decode("latin-1") if baggage is not None else None
        identity = self.keys.authenticate(headers.get(b"authorization"), headers.get(b"x-api-key"))
        info.org, info.workspace, info.key, info.user = (
            identity.org,
            identity.workspace,
            identity.key_name,
            identity.user,
        )
        content_type = headers.get(b"content-type", b"")
        if not content_type.lower().startswith(JSON):
            raise InvalidRequest(
                "the request body must be JSON (content-type: application/json)", code="unsupported_content_type"
            )
        declared = headers.get(b"content-length")
        if declared and declared.isdigit() and int(declared) > self.max_body:
            raise PayloadTooLarge(f"the request body is larger than {self.max_body} bytes")
        raw = await read_body(receive, self.max_body, self.body_timeout_s)
        body = self._parse(raw)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequest(
                "the request needs a 'model' (a non-empty string)", code="missing_model", param="model"
            )
        redactor = self._redactor_for(identity)
        if redactor is not None:
            redactor.check_model_name(self._model_name(model, fmt))  # before it reaches a log or a metric
        # Model access rules: an alias becomes its model, lists and field rules may refuse, a ceiling may clamp.
        rules = self.model_access.rules_for(identity) if self.model_access is not None else None
        if rules is not None:
            assert self.model_access is not None
            model, model_events = self.model_access.apply(fmt, body, model, identity, rules)
            info.events.extend(model_events)
        # Tool lists on model traffic: denied tools' definitions leave the request (or it is refused).
        gate = None
        if self.tool_calls is not None:
            gate = gate_for(self.tool_calls.rules_for(identity), identity, fmt.name)
            if gate is not None:
                try:
                    gate.filter_request(body)
                finally:
                    info.events += gate.events  # kept should a later step refuse the call
                    gate.events = []
        # A route (`[routing.models.<name>]`): the attempts pick their deployment (and may fall
        # back). The first attempt's deployment is chosen now (it is what is reserved); None when
        # none can take the call right now, and then the attempts loop decides (and may wait).
        route = self._routes.get(model) if self._routes is not None else None
        first = None
        if route is not None:
            first = route.only  # the common route: one deployment, healthy, not holding calls off
            if first is None or first.breaker.state != CLOSED or first.not_before or fmt not in first.formats:
                first = self.router.routes.first(route, identity.key_name, fmt)
        if first is not None:
            provider, upstream_model = first.provider, first.model
        else:
            provider, upstream_model = self.router.route(model, fmt)
        info.model, info.provider, info.provider_kind = upstream_model, provider.name, provider.kind
        if not provider.speaks(fmt.family):  # translated: what cannot be is refused before anything is reserved
            _translation(provider, fmt).request(body)
        # The workspace's own credential, if it has one; one that does not open refuses the call
        # here (503), before anything is reserved or sent.
        credential = self.view.provider_credential(identity.workspace, provider.name) if self.view else None
        # Runaway loops: may refuse (429) before anything is reserved or sent; free without a rule.
        if self.loops is not None:
            info.events.extend(await self.loops.check(identity, fmt.name, body) or ())
        stream = info.stream = fmt.streams and body.get("stream") is True
        limited = guard = None
        try:
            scan = redactor.scan_request(fmt, body, identity.workspace, raw) if redactor is not None else None
            # Rate limits count the body as it goes upstream (redacted), so a tokens limit's input
            # estimate is the spend step's too: the body is walked for it once.
            est = None
            asking = model  # the model the call goes to as far as caps and limits are concerned
            # Where a substitute goes (limits and caps may name one); a gateway without either makes none.
            substitute = None
            if self.limits is not None or self.spend is not None:
                substitute = partial(self._substitute_route, fmt, identity, rules)
            if self.limits is not None:
                limited = await self.limits.acquire(identity, fmt, body, provider.name, model, substitute)
                info.headers = limited.headers
                info.events += limited.events  # kept should a later step refuse the call
                est = limited.input_estimate
                if limited.substitution is not None:  # a full limit sent the call to another model
                    route = first = None  # the substitute is routed the plain way
                    provider, upstream_model, credential = self._substituted(
                        info, identity, model, limited.substitution
                    )
                    asking = limited.substitution.model
            lines = self.spend.lines_for(identity) if self.spend is not None else ()
            if lines:
                assert self.spend is not None
                guard = await self.spend.reserve(fmt, body, provider, upstream_model, lines, substitute, est, asking)
                if guard.substitution is not None:  # a cap sent the call to a cheaper model
                    route = first = None
                    provider, upstream_model, credential = self._substituted(info, identity, asking, guard.substitution)
                    if limited is not None:
                        limited.provider = provider.name  # a provider's 429 is the substitute's
            tap = fmt.tap(body, redactor.response_filter(scan) if redactor and scan else None) if stream else None
            fmt.prepare(body)
            if upstream_model != model:
                body["model"] = upstream_model
            # What goes upstream is what was parsed, checked and priced, never the original bytes: then
            # no difference between our JSON parser and the provider's can decide what the model sees.
            # A provider that speaks another format gets the request translated (the answer is, back).
            # (A route's first attempt sends this too; its retries serialize it for their own deployment.)
            bridge = raw = None
            if route is None or first is not None:
                bridge = None if provider.speaks(fmt.family) else _translation(provider, fmt)
                raw = orjson.dumps(body if bridge is None else bridge.request(body))
            rewrite = None
            if scan is not None and redactor is not None:
                rewrite = partial(redactor.scan_response, fmt, scan=scan, workspace=identity.workspace)
            if gate is not None:  # the model's calls of denied tools: removed or refused
                rewrite = gate.chain(rewrite)
                if tap is not None:
                    tap.gate = gate
        except BaseException:
            if guard is not None:
                await guard.finish(None)  # refused or failed before anything was sent
            if limited is not None:
                await limited.finish(None)
            raise
        routed: _Routed | None = None
        try:
            if route is None:
                assert raw is not None
                resp = await self._send(
                    fmt, provider, upstream_model, credential, headers, raw, tap is None, self.timeouts, bridge
                )
                if bridge is None:
                    outcome = await self._relay(send, receive, fmt, resp, tap, rewrite, rid, info.headers)
                else:
                    translated = TranslatedResponse(resp, bridge, self.settings.upstream.max_event_bytes)
                    outcome = await self._relay_translated(
                        send, receive, fmt, translated, tap, rewrite, rid, info.headers
                    )
            else:
                # A route's first attempt (at `first`) goes the plain call's way: the request the
                # pipeline serialized, the caller's credential, two headers made once per
                # deployment, and the deployment's breaker and figures. What fails of it (a
                # transport error, an error status, a stream that breaks before its first event)
                # goes on to the attempts loop (`_retries`), as does a route whose first attempt
                # cannot go now.
                found: Outcome | None = None
                failed: HeldResponse | UpstreamUnreachable | UpstreamTimeout | None = None
                if first is not None:
                    assert raw is not None
                    info.attempts = first.first_attempts
                    info.headers = [*info.headers, *first.first_headers] if info.headers else first.first_headers
                    if first.breaker.state == CLOSED:
                        first.in_flight += 1  # what `Routes.admit` does for a closed breaker
                    else:
                        self.router.routes.admit(first, info.events)
                    started = _perf()
                    try:
                        resp = await self._send(
                            fmt, provider, upstream_model, credential, headers, raw, tap is None, self.timeouts, bridge
                        )
                        if resp.status < 400 and tap is not None and _is_sse(resp):
                            # A stream that breaks before its first event reached the client is retried.
                            resp = await PrimedStream.read_from(resp, self.settings.upstream.max_event_bytes)
                    except (UpstreamUnreachable, UpstreamTimeout) as exc:
                        self.router.routes.done(first, False, None, info.events)
                        failed = exc
                    except BaseException:
                        self.router.routes.done(first, True, None, info.events)  # a refused URL, a bug
                        raise
                    else:
                        ttfb = _perf() - started
                        translated = None
                        if bridge is not None:
                            resp = translated = TranslatedResponse(resp, bridge, self.settings.upstream.max_event_bytes)
                        if resp.status < 400:
                            ok = False
                            try:
                                if translated is None:
                                    found = await self._relay(send, receive, fmt, resp, tap, rewrite, rid, info.headers)
                                else:
                                    found = await self._relay_translated(
                                        send, receive, fmt, translated, tap, rewrite, rid, info.headers
                                    )
                                ok = found.error is None or found.client_gone
                            finally:
                                self.router.routes.done(first, ok, ttfb, info.events)
                        else:
                            failed = await self._held(first, resp, ttfb, info.events)
                if found is not None:
                    outcome = found
                else:
                    tried = list(info.attempts or ())
                    routed = _Routed(route, guard, (provider, upstream_model), lines, est, tried, raw=raw or b"")
                    try:
                        call = _Call(send, receive, fmt, identity, rules, body, headers, tap, rewrite, rid, info)
                        outcome = await self._retries(call, routed, first, failed)
                    finally:
                        guard, raw = routed.guard, routed.raw
                        if limited is not None and info.provider is not None:
                            limited.provider = info.provider  # a provider's 429 is the last attempt's
        except BaseException:
            if guard is not None:
                await guard.finish(None)  # failed before any output: release
            if limited is not None:
                await limited.finish(None)
            raise
        if limited is not None:
            await limited.finish(outcome)
        if self.capture:
            outcome.request_body = raw
            if redactor is not None:
                outcome.scrub = redactor.scrub
        if info.events:
            outcome.events.extend(info.events)
        if scan is not None:
            outcome.events.extend(scan.tally.events())
        if gate is not None and gate.events:
            outcome.events.extend(gate.events)
        if guard is not None:
            await guard.finish(outcome)
            if routed is not None and routed.billed_nusd:  # finish() set the last attempt's cost
                outcome.cost_nusd = (outcome.cost_nusd or 0) + routed.billed_nusd
        return outcome

    def _model_name(self, model: str, fmt: WireFormat) -> str:
        """The part of a requested model name that names a model: all of it, except for the mock
        provider, whose behaviour knobs follow an `@` (`mock-gpt@reply=...`: test input, not a name)."""
        if "@" not in model:
            return model
        try:
            provider, _ = self.router.route(model, fmt)
        except GatewayError:
            return model
        return model.split("@", 1)[0] if provider.kind == "mock" else model

    def _substituted(
        self, info: CallInfo, identity: Identity, model: str, sub: Substitution
    ) -> tuple[Provider, str, ProviderCredential | None]:
        """Send the call to `sub` instead of `model`: the call's record and headers say so
        (`x-sluicegate-substituted: <asked> -> <substitute>`); the substitute's provider, model
        name and the workspace's credential for that provider."""
        provider = sub.provider
        info.model, info.provider, info.provider_kind = sub.upstream_model, provider.name, provider.kind
        said = f"{model} -> {sub.model}".encode("latin-1", "replace")
        info.headers = [*(info.headers or ()), (b"x-sluicegate-substituted", said)]
        credential = self.view.provider_credential(identity.workspace, provider.name) if self.view else None
        return provider, sub.upstream_model, credential

    def _substitute_route(
        self, fmt: WireFormat, identity: Identity, rules: ModelRules | None, model: str
    ) -> tuple[Provider, str]:
        """Where a cap's substitute model goes: routed like a requested model, and only if the
        caller's model access rules allow it (a substitute never walks around a deny list).

        Raises:
            ModelNotAllowed: the caller's rules refuse the substitute.
            NotFound, InvalidRequest: it is not routed, or not in the request's format.
        """
        if (
            rules is not None
            and self.model_access is not None
            and not self.model_access.permits(rules, identity, model)
        ):
            raise ModelNotAllowed(
                f"the substitute model {model!r} is not allowed for this key", {"substitute_model": model}
            )
        return self.router.route(model, fmt)

    def _send(
        self,
        fmt: WireFormat,
        provider: Provider,
        model: str,
        credential: ProviderCredential | None,
        headers: dict[bytes, bytes],
        raw: bytes,
        whole: bool,
        timeouts: Timeouts,
        bridge: Bridge | None = None,
    ) -> Awaitable[UpstreamResponse]:
        """Send the request for `model` (the name the provider knows it by) upstream: awaited, the
        response once its headers (`whole`: its whole body) came. A plain function handing back the
        transport's coroutine, so that it adds no frame to the request path. With a `bridge`, `raw`
        is already in the provider's format.

        A tenant's base URL is checked against the operator's rules first (they may have changed
        since it was stored), gets a client that checks every address it connects to, and never the
        operator's static headers."""
        base_url = credential.base_url if credential is not None else None
        if base_url is not None:
            refused = self.tenant_urls.refusal(provider.name, base_url)
            if refused is not None:
                raise UpstreamRefused(f"the base_url set for this provider {refused}", code="base_url_not_allowed")
        upstream_headers = provider.headers(
            _str(headers.get(b"anthropic-version")),
            _str(headers.get(b"anthropic-beta")),
            credential.secret if credential is not None else None,
            tenant_url=base_url is not None,
        )
        path = fmt.path if bridge is None else bridge.target.path
        url = provider.url(path, base_url, model)
        upstream = self._upstream(url, base_url is not None)
        if provider.bedrock is not None:  # its own URL, body, signature and answer (proxy/bedrock.py)
            secret = credential.secret if credential is not None else None
            return provider.bedrock.send(upstream, path, url, upstream_headers, raw, timeouts, whole, secret)
        return upstream.send(url, path, upstream_headers, raw, timeouts, whole=whole)

    def _relay(
        self,
        send: Send,
        receive: Receive,
        fmt: WireFormat,
        resp: UpstreamResponse,
        tap: StreamTap | None,
        rewrite: Rewrite | None,
        rid: bytes,
        extra: Sequence[tuple[bytes, bytes]] | None,
    ) -> Awaitable[Outcome]:
        """Relay the provider's answer to the client: an error status, a stream, or a body (the
        relay's coroutine, to await)."""
        bounds = self.settings.upstream
        if resp.status >= 400:
            return relay_error_status(send, fmt, resp, rid, bounds.max_error_body_bytes, rewrite, extra)
        if tap is not None and resp.content_type.startswith("text/event-stream"):
            max_event = bounds.max_event_bytes
            return relay_stream(send, receive, fmt, tap, resp, rid, self.capture, max_event=max_event, extra=extra)
        return relay_body(send, fmt, resp, rid, rewrite, self.capture, extra)

    async def _relay_translated(
        self,
        send: Send,
        receive: Receive,
        fmt: WireFormat,
        resp: TranslatedResponse,
        tap: StreamTap | None,
        rewrite: Rewrite | None,
        rid: bytes,
        extra: Sequence[tuple[bytes, bytes]] | None,
    ) -> Outcome:
        """`_relay` of an answer translated back from the provider's format as it is read."""
        outcome = await self._relay(send, receive, fmt, resp, tap, rewrite, rid, extra)
        if not resp.usage_reported:
            outcome.usage = None  # the counts the client got are not the provider's: settled as unknown
        return outcome

    async def _attempt(
        self,
        call: _Call,
        d: Deployment,
        credential: ProviderCredential | None,
        raw: bytes,
        bridge: Bridge | None,
        timeouts: Timeouts,
    ) -> Outcome | HeldResponse | UpstreamUnreachable | UpstreamTimeout:
        """One attempt at `d` after a call's first (which `_forward` makes): the outcome once
        relayed to the client, else what failed (a transport error, or the provider's error answer,
        read and held for the loop to decide on). The deployment's breaker and figures see the
        attempt either way."""
        send, receive, fmt, _, _, _, headers, tap, rewrite, rid, info = call
        routes = self.router.routes
        events = info.events
        routes.admit(d, events)
        started = _perf()
        try:
            resp = await self._send(fmt, d.provider, d.model, credential, headers, raw, tap is None, timeouts, bridge)
            if resp.status < 400 and tap is not None and _is_sse(resp):
                # A stream that breaks before its first event reached the client is retried.
                resp = await PrimedStream.read_from(resp, self.settings.upstream.max_event_bytes)
        except (UpstreamUnreachable, UpstreamTimeout) as exc:
            routes.done(d, False, None, events)
            return exc
        except BaseException:
            routes.done(d, True, None, events)  # not the deployment's failure (a refused URL, a bug)
            raise
        ttfb = _perf() - started
        translated = None
        if bridge is not None:
            resp = translated = TranslatedResponse(resp, bridge, self.settings.upstream.max_event_bytes)
        if resp.status >= 400:
            return await self._held(d, resp, ttfb, events)
        ok = False
        try:
            if translated is None:
                outcome = await self._relay(send, receive, fmt, resp, tap, rewrite, rid, info.headers)
            else:
                outcome = await self._relay_translated(send, receive, fmt, translated, tap, rewrite, rid, info.headers)
            ok = outcome.error is None or outcome.client_gone
        finally:
            routes.done(d, ok, ttfb, events)
        return outcome

    async def _held(
        self, d: Deployment, resp: UpstreamResponse, ttfb: float, events: list[PolicyEvent]
    ) -> HeldResponse | UpstreamUnreachable | UpstreamTimeout:
        """An attempt at `d` answered an error status (`resp`, after `ttfb` seconds): its answer
        read (bounded) for the attempts loop to decide on, and its deployment's breaker told: a
        status worth a retry is the deployment's failure (and its `retry-after` holds it off), any
        other is the request's fault."""
        routes = self.router.routes
        try:
            held = await HeldResponse.read_from(resp, self.settings.upstream.max_error_body_bytes)
        except (UpstreamUnreachable, UpstreamTimeout) as exc:
            routes.done(d, False, None, events)
            return exc
        except BaseException:
            routes.done(d, True, None, events)
            raise
        if retryable_status(resp.status):
            routes.done(d, False, None, events)
            wait_s = retry_after_s(held.header)
            if wait_s:
                routes.hold_off(d, wait_s)
        else:
            routes.done(d, True, ttfb, events)  # the deployment answered: the request is at fault
        return held

    async def _retries(
        self,
        call: _Call,
        routed: _Routed,
        first: Deployment | None = None,
        failed: HeldResponse | UpstreamUnreachable | UpstreamTimeout | None = None,
    ) -> Outcome:
        """The attempts after a failed first one (`first`, which ended as `failed`), or all of them
        when the first could not go the short way."""
        fmt, identity, rules, body, info = call.fmt, call.identity, call.rules, call.body, call.info
        route = routed.route
        routes = self.router.routes
        loop = asyncio.get_running_loop()
        deadline = info.t0 - time.perf_counter() + loop.time() + self.timeouts.total
        events = info.events  # kept should the call end in an error
        last: HeldResponse | UpstreamUnreachable | UpstreamTimeout | None = None
        models = (route.name, *route.fallbacks)
        reason = "error"
        tried: list[Deployment] = []
        if first is not None and failed is not None:
            tried.append(first)
            last = failed
            stop = await self._judged(routed, fmt, failed, len(models) > 1)
            if stop == "relay":
                assert isinstance(failed, HeldResponse)
                return await self._relay_held(call, failed)
            if stop:
                reason = stop  # refused for a case the fallbacks take: on to them
        for i, name in enumerate(models):
            current: Route | None = route
            if i:
                if reason not in route.fallback_on:
                    break
                current = self._fallback_route(name, fmt, identity, rules, route, events)
                if current is None:
                    continue
                moved = {"route": route.name, "to": name, "attempts": len(routed.tried)}
                events.append(PolicyEvent("routing", "fallback", "", reason, detail=moved))
                tried = []
            elif reason != "error":
                continue  # the first attempt's refusal moves on to the fallbacks
            assert current is not None
            reason = "error"
            while len(tried) < current.max_attempts:
                d, wait = routes.pick(current, tried, identity.key_name, fmt)
                if d is None:
                    break
                if wait > 0:
                    if loop.time() + wait >= deadline:
                        break
                    await self._sleep(wait)
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                if tried:  # a retry of this model (a fallback's first attempt has its own event)
                    detail: dict[str, Any] = {"route": current.name, "to": d.name, "attempt": len(routed.tried) + 1}
                    if wait > 0:
                        detail["waited_s"] = round(wait, 3)
                    events.append(PolicyEvent("routing", "retry", "", _failure_kind(last), detail=detail))
                tried.append(d)
                if routed.lines:  # under caps: the reservation goes with the attempt
                    await self._move_spend(routed, fmt, body, d)
                info.model, info.provider, info.provider_kind = d.model, d.provider.name, d.provider.kind
                body["model"] = d.model
                # A deployment that speaks another format gets the request translated (its answer is, back).
                bridge = None if d.provider.speaks(fmt.family) else d.provider.translation(fmt)
                raw = routed.raw = orjson.dumps(body if bridge is None else bridge.request(body))
                credential = self.view.provider_credential(identity.workspace, d.provider.name) if self.view else None
                timeouts = self.timeouts
                if routed.tried:  # what is left of the call's total time
                    timeouts = replace(timeouts, first_byte=min(timeouts.first_byte, remaining), total=remaining)
                routed.tried.append(d.name)
                info.attempts = routed.tried
                info.headers = [
                    *(h for h in info.headers or () if h[0] not in _ROUTED_HEADERS),
                    (b"x-sluicegate-deployment", d.label),
                    (b"x-sluicegate-attempts", str(len(routed.tried)).encode()),
                ]
                answered = await self._attempt(call, d, credential, raw, bridge, timeouts)
                if isinstance(answered, Outcome):
                    return answered
                last = answered
                stop = await self._judged(routed, fmt, answered, i + 1 < len(models))
                if stop == "relay":
                    assert isinstance(answered, HeldResponse)
                    return await self._relay_held(call, answered)
                if stop:
                    reason = stop
                    break
        if isinstance(last, HeldResponse):
            return await self._relay_held(call, last)
        if last is not None:
            raise last
        err = Unavailable(
            f"no deployment of the model {route.name!r} can take calls right now (circuit breakers open, or a "
            "retry-after longer than this gateway waits)",
            code="no_healthy_deployment",
        )
        err.headers["retry-after"] = str(math.ceil(routes.reopens_in_s(route)) or 1)
        raise err

    async def _judged(
        self,
        routed: _Routed,
        fmt: WireFormat,
        failed: HeldResponse | UpstreamUnreachable | UpstreamTimeout,
        more: bool,
    ) -> str:
        """What follows a failed attempt: "" another attempt (a transport error, or a status worth a
        retry, whose answer is billed when it reported usage); "relay" the provider's answer goes to
        the client as it is (the request is at fault); else the refusal case (context length,
        content policy) that sends the call to the fallbacks (`more`: there are some)."""
        if not isinstance(failed, HeldResponse):
            return ""
        if retryable_status(failed.status):
            await self._bill_failed(routed, fmt, failed)
            return ""
        case = refusal_case(failed.body)
        if case is not None and case in routed.route.fallback_on and more:
            return case
        return "relay"

    def _relay_held(self, call: _Call, held: HeldResponse) -> Awaitable[Outcome]:
        """Relay a provider's error answer the attempts held (the relay's coroutine, to await)."""
        limit = self.settings.upstream.max_error_body_bytes
        return relay_error_status(call.send, call.fmt, held, call.rid, limit, call.rewrite, call.info.headers)

    async def _move_spend(self, routed: _Routed, fmt: WireFormat, body: dict[str, Any], d: Deployment) -> None:
        """Reserve for the attempt at `d`: the reservation stays when it is priced for the same
        provider and model; else it is released and the request reserved again at `d`'s price,
        which a cap may refuse (402), like any reservation.

        Raises:
            SpendLimitExceeded: `d`'s price does not fit a cap.
        """
        reserved = routed.reserved
        if reserved is not None and reserved[0] is d.provider and reserved[1] == d.model:
            return
        routed.reserved = (d.provider, d.model)
        if self.spend is None:  # (the attempts call this only under caps)
            return
        guard, routed.guard = routed.guard, None
        if guard is not None:
            await guard.finish(None)
        routed.guard = await self.spend.reserve(fmt, body, d.provider, d.model, routed.lines, None, routed.est)

    async def _bill_failed(self, routed: _Routed, fmt: WireFormat, held: HeldResponse) -> None:
        """A failed attempt whose answer reported usage is billed: its reservation settles at that
        cost, and the next attempt reserves anew."""
        try:
            usage = fmt.usage(orjson.loads(held.body))
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError):
            return
        if usage is None:
            return
        guard, routed.guard, routed.reserved = routed.guard, None, None
        if guard is not None:
            failed = Outcome(held.status, usage=usage, error="upstream_status")
            await guard.finish(failed)
            routed.billed_nusd += failed.cost_nusd or 0

    def _fallback_route(
        self,
        model: str,
        fmt: WireFormat,
        identity: Identity,
        rules: ModelRules | None,
        route: Route,
        events: list[PolicyEvent],
    ) -> Route | None:
        """The route of a fallback model: its own when it is one, else one deployment where the
        model is routed the plain way; None (with an event) when the caller's model access rules
        refuse it or it is not routed in this format."""
        access = self.model_access
        if rules is not None and access is not None and not access.permits(rules, identity, model):
            detail = {"route": route.name, "to": model}
            events.append(PolicyEvent("routing", "fallback_denied", "", "model_rules", detail=detail))
            return None
        routes = self.router.routes
        found = routes.by_name.get(model)
        if found is not None:
            return found
        try:
            provider, upstream_model = self.router.route(model, fmt)
        except GatewayError as exc:
            detail = {"route": route.name, "to": model, "reason": exc.code}
            events.append(PolicyEvent("routing", "fallback_denied", "", "not_routed", detail=detail))
            return None
        return routes.single(model, provider, upstream_model)

    def attach(self, view: ControlView) -> None:
        """Take keys, caps, redaction rules and provider secrets from the control plane's view too."""
        self.keys = self.view = view
        if self.spend is not None:
            self.spend.policy_lines = view.cap_lines
        if self.model_access is not None:
            self.model_access.policy_rules = view.model_rules
        if self.limits is not None:
            self.limits.policy_lines = view.limit_lines
        if self.loops is not None:
            self.loops.policy_rules = view.loop_rules
        if self.tool_calls is not None:
            self.tool_calls.policy_rules = view.tool_rules

    async def cap_status(self, line: CapLine) -> tuple[int, int]:
        """(spent, reserved) of a cap's current window, from the spend store (0, 0 without one)."""
        if self.spend is None or self.spend.store is None:
            return 0, 0
        return await self.spend.store.snapshot(line)

    def _redactor_for(self, identity: Identity) -> Redactor | None:
        """The config's redactor, or one compiled for the caller's inherited rules (cached until the
        control plane reloads: the view hands back the same settings object until then)."""
        if self.view is None or not self.settings.redaction.enabled:
            return self.redactor
        settings = self.view.redaction_settings(identity, self.settings.redaction)
        if settings is self.settings.redaction:
            return self.redactor
        cached = self._redactors.get(id(settings))
        if cached is None or cached[0] is not settings:
            if len(self._redactors) >= 1024:
                self._redactors.clear()
            try:
                cached = (settings, Redactor(settings))
            except ValueError:
                raise PolicyFailed("the redaction policy for this key cannot be compiled") from None
            self._redactors[id(settings)] = cached
        return cached[1]

    def _parse(self, raw: bytes) -> dict[str, Any]:
        """The request body as a JSON object.

        Raises:
            InvalidRequest: the body is not a JSON object, nests deeper than `server.max_json_depth`,
                or an object in it repeats a key (parsers disagree on which value counts, so such a
                body has no one meaning).
        """
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            if exc.msg.startswith("depth limit"):  # orjson's own bound, 1024 levels
                raise self._too_deep() from None
            raise InvalidRequest("the request body is not valid JSON", code="invalid_json") from None
        if not isinstance(body, dict):
            raise InvalidRequest("the request body must be a JSON object", code="invalid_json")
        # Nesting and repeated keys, in one pass over the bytes (Rust).
        problem = json_problem(raw, self.max_depth)
        if problem is not None:
            kind, at = problem
            if kind == "depth":
                raise self._too_deep()
            raise InvalidRequest(
                f"the request body repeats a key within one JSON object (at byte {at}); each key may appear once",
                code="duplicate_key",
            )
        return body

    def _too_deep(self) -> InvalidRequest:
        message = f"the request body nests arrays and objects more than {self.max_depth} levels deep"
        return InvalidRequest(message, code="json_too_deep")

    async def models(self, scope: Scope, send: Send) -> None:
        """`GET /v1/models` from the routing table, in the caller's format."""
        headers = read_headers(scope)
        fmt = FORMATS_BY_PATH["/v1/messages" if b"anthropic-version" in headers else "/v1/chat/completions"]
        rid = request_id()
        try:
            identity = self.keys.authenticate(headers.get(b"authorization"), headers.get(b"x-api-key"))
        except GatewayError as err:
            await send_error(send, fmt, err, rid)
            return
        listed = self.router.listed_models()
        rules = self.model_access.rules_for(identity) if self.model_access is not None else None
        if rules is not None:  # only what the caller may use, and its aliases (owned by what they stand for)
            assert self.model_access is not None
            owners = dict(listed)
            aliases = [(a, owners.get(rules.aliases[a].target, "alias")) for a in rules.aliases]
            listed = [(m, p) for m, p in listed + sorted(aliases) if self.model_access.permits(rules, identity, m)]
        if fmt.family == "anthropic":
            data = [
                {"type": "model", "id": m, "display_name": m, "created_at": "1970-01-01T00:00:00Z"} for m, _ in listed
            ]
            ids = [m for m, _ in listed]
            body: dict[str, Any] = {
                "data": data,
                "has_more": False,
                "first_id": ids[0] if ids else None,
                "last_id": ids[-1] if ids else None,
            }
        else:
            data = [{"id": m, "object": "model", "created": 0, "owned_by": p} for m, p in listed]
            body = {"object": "list", "data": data}
        await send_body(
            send, 200, orjson.dumps(body), [(b"content-type", JSON), (b"x-request-id", rid), (GATEWAY_ID, rid)]
        )

    async def not_found(self, scope: Scope, send: Send) -> None:
        """Any path no policy understands is refused, never passed through unscanned."""
        fmt = FORMATS_BY_PATH[
            "/v1/messages" if family_of(read_headers(scope), scope["path"]) == "anthropic" else "/v1/chat/completions"
        ]
        err = NotFound(f"unknown path: {scope['method']} {scope['path']}", code="unknown_path")
        await send_error(send, fmt, err, request_id())

    async def wrong_method(self, scope: Scope, send: Send, fmt: WireFormat) -> None:
        err = GatewayError(
            f"{scope['path']} accepts POST only", status=405, code="method_not_allowed", type="invalid_request_error"
        )
        await send_error(send, fmt, err, request_id())


_ROUTED_HEADERS = frozenset({b"x-sluicegate-deployment", b"x-sluicegate-attempts"})
_perf = time.perf_counter  # an attempt's time to its first byte (or first event)


def _is_sse(resp: UpstreamResponse) -> bool:
    return resp.content_type.startswith("text/event-stream")


def _failure_kind(failure: object) -> str:
    """A failed attempt, as the entity of its retry event: the status class or the error code."""
    if isinstance(failure, HeldResponse):
        return "status_429" if failure.status == 429 else f"status_{failure.status // 100}xx"
    if isinstance(failure, GatewayError):
        return failure.code
    return "unavailable"


def _translation(provider: Provider, fmt: WireFormat) -> Bridge:
    """The translation to `provider` of a request in `fmt` it does not speak (the router let
    the route through: there is one)."""
    bridge = provider.translation(fmt)
    assert bridge is not None
    return bridge


def _str(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None
