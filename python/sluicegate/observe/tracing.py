"""OpenTelemetry spans of API calls, exported by OTLP/HTTP, for teams whose traces are not in LangSmith.

Off unless `observability.otlp_endpoint` (or `OTEL_EXPORTER_OTLP_ENDPOINT`) is set; off, nothing of
it is built and a call pays one `is None` test. On, each finished model call becomes one span (kind
CLIENT: the gateway's call to the provider) named `{gen_ai.operation.name} {model}`, made after the
fact from the call's start and end times, a child of the client's span when the request carried a
W3C `traceparent`. The span carries the GenAI semantic conventions' attributes: names, counts and
codes, never prompt or response content (the PII rule); see docs/observability.md for the list.

Export is the SDK's `BatchSpanProcessor`: spans wait in a bounded queue that a thread of its own
posts in batches, so the event loop never waits for the collector. Drops (a full queue) and
failed exports are counted and appear in `/metrics` as the `otlp` queue's.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from sluicegate import __version__
from sluicegate.config import ObservabilitySettings, ProviderSettings

if TYPE_CHECKING:
    from sluicegate.proxy.relay import Outcome

# gen_ai.operation.name by route (a Responses call is a chat turn; token counting has no GenAI name).
OPERATIONS = {
    "openai_chat": "chat",
    "openai_responses": "chat",
    "anthropic_messages": "chat",
    "openai_embeddings": "embeddings",
    "anthropic_count_tokens": "count_tokens",
}
# gen_ai.provider.name by provider kind (an OpenAI-compatible server speaks OpenAI's API).
PROVIDER_NAMES = {
    "openai": "openai",
    "anthropic": "anthropic",
    "openai_compatible": "openai",
    "azure": "azure.ai.openai",
    "gemini": "gcp.gemini",
    "bedrock": "aws.bedrock",
    "mock": "mock",
}
_TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:-.*)?")
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_ERROR, _UNSET = Status(StatusCode.ERROR), Status(StatusCode.UNSET)
_SCOPE = InstrumentationScope("sluicegate", __version__)
_random_bits = (
    random.getrandbits
)  # span ids, and trace ids of traces the gateway starts (reseeded in each forked worker)


class _CountingExporter(OTLPSpanExporter):  # type: ignore[misc]
    """The OTLP/HTTP exporter, counting the spans of exports that failed."""

    failed = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = super().export(spans)
        if result is not SpanExportResult.SUCCESS:
            self.failed += len(spans)
        return result


class _BoundedProcessor(BatchSpanProcessor):  # type: ignore[misc]
    """The batch processor, counting the spans its full queue pushes out."""

    dropped = 0

    def on_end(self, span: ReadableSpan) -> None:
        queue = getattr(getattr(self, "_batch_processor", None), "_queue", None)
        if queue is not None and queue.maxlen is not None and len(queue) >= queue.maxlen:
            self.dropped += 1
        super().on_end(span)

    @property
    def depth(self) -> int:
        queue = getattr(getattr(self, "_batch_processor", None), "_queue", None)
        return len(queue) if queue is not None else 0


class Tracing:
    """Spans of finished calls, exported in the background.

    Arguments:
        settings: the `[observability]` section.
        endpoint: the traces URL (`ObservabilitySettings.endpoint`).
        providers: the configured providers, for `server.address` and `server.port`.
        environ: for `OTEL_SERVICE_NAME`.
    """

    name = "otlp"

    def __init__(
        self,
        settings: ObservabilitySettings,
        endpoint: str,
        providers: Mapping[str, ProviderSettings],
        environ: Mapping[str, str],
    ) -> None:
        service = environ.get("OTEL_SERVICE_NAME", "").strip() or settings.service_name
        self.exporter = _CountingExporter(endpoint=endpoint, timeout=settings.timeout_s)
        self.processor = _BoundedProcessor(
            self.exporter,
            max_queue_size=settings.queue_size,
            schedule_delay_millis=settings.interval_s * 1000,
            max_export_batch_size=min(settings.batch, settings.queue_size),
            export_timeout_millis=settings.timeout_s * 1000,
        )
        # Spans are made whole and handed to the processor (no tracer, nothing global).
        self.resource = Resource.create({"service.name": service})
        self._servers: dict[str, tuple[str, int] | None] = {}
        for name, provider in providers.items():
            base = provider.resolved_base_url()
            self._servers[name] = _address(base) if base else None

    def stats(self) -> tuple[int, int, int]:
        """(depth, dropped, failed), as the other background queues report them."""
        return self.processor.depth, self.processor.dropped, self.exporter.failed

    def record(self, outcome: Outcome, headers: Sequence[tuple[bytes, bytes]]) -> None:
        """Make the span of a finished model call (a call refused before routing has no model: none)
        and queue it for export. A caller's `traceparent` that says "not sampled" gets no span.

        The span is built as the finished `ReadableSpan` it is (its times known), not through a
        tracer's start and end: that skips the sampler, the attribute validation and the span's
        lock: a fifth of the cost (`benches/metrics_loop.py N tracing`).

        Arguments:
            outcome: the finished call.
            headers: the request's headers, for `traceparent` and `tracestate`.
        """
        info = outcome.info
        if info is None or info.model is None:
            return
        parent: SpanContext | None = None
        for key, value in headers:
            if key == b"traceparent":
                found = _parent(value)
                if found is False:
                    return  # the caller's trace is not sampled
                parent = found
        if parent is not None:
            for key, value in headers:
                if key == b"tracestate":
                    state = TraceState.from_header([value.decode("latin-1")])
                    parent = SpanContext(parent.trace_id, parent.span_id, True, parent.trace_flags, state)
        operation = OPERATIONS.get(info.route, info.route)
        provider = PROVIDER_NAMES.get(info.provider_kind or "", info.provider_kind or "unknown")
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": provider,
            "gen_ai.system": provider,
            "gen_ai.request.model": info.model,
            "http.response.status_code": outcome.status,
            "sluicegate.request_id": info.request_id,
            "sluicegate.route": info.route,
            "sluicegate.provider": info.provider or "",
        }
        if info.stream:
            attributes["gen_ai.request.stream"] = True
        failed = outcome.error is not None or outcome.status >= 400
        if not failed:
            attributes["gen_ai.response.model"] = info.model
        usage = outcome.usage
        if usage is not None:
            attributes["gen_ai.usage.input_tokens"] = usage.input_tokens
            attributes["gen_ai.usage.output_tokens"] = usage.output_tokens
        if outcome.cost_nusd is not None:
            attributes["sluicegate.cost_nusd"] = outcome.cost_nusd
        if info.org is not None:
            attributes["sluicegate.org"] = info.org
        if info.workspace is not None:
            attributes["sluicegate.workspace"] = info.workspace
        server = self._servers.get(info.provider or "")
        if server is not None:
            attributes["server.address"], attributes["server.port"] = server
        if failed:
            attributes["error.type"] = outcome.error or str(outcome.status)
        if parent is not None:  # the caller's trace goes on, its tracestate with it
            context = SpanContext(parent.trace_id, _random_bits(64), False, _SAMPLED, parent.trace_state)
        else:
            context = SpanContext(_random_bits(128), _random_bits(64), False, _SAMPLED)
        start_ns = int(info.started_at * 1e9)
        span = ReadableSpan(
            f"{operation} {info.model}",
            context=context,
            parent=parent,
            resource=self.resource,
            attributes=attributes,
            kind=SpanKind.CLIENT,
            status=_ERROR if failed else _UNSET,
            start_time=start_ns,
            end_time=max(int(info.ended_at * 1e9), start_ns),
            instrumentation_scope=_SCOPE,
        )
        self.processor.on_end(span)

    def shutdown(self) -> None:
        """Export what is queued (bounded by `timeout_s`), then stop the export thread. Blocks."""
        self.processor.shutdown()


def _parent(header: bytes) -> SpanContext | Literal[False] | None:
    """The caller's span from a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`): None when the
    header is not one (the span starts a trace of its own), False when it says "not sampled"."""
    match = _TRACEPARENT.fullmatch(header.strip())
    if match is None or match.group(1) == b"ff":
        return None
    trace_id, span_id, flags = int(match.group(2), 16), int(match.group(3), 16), int(match.group(4), 16)
    if not trace_id or not span_id:
        return None
    if not flags & 1:
        return False
    return SpanContext(trace_id, span_id, True, _SAMPLED)


def _address(url: str) -> tuple[str, int] | None:
    parts = urlsplit(url)
    if not parts.hostname:
        return None
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
