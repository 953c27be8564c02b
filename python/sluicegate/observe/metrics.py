"""Prometheus metrics at `/metrics`: calls, latency, time to first token, time per output token,
tokens and spend, upstream errors, policy events, the background queues, and process figures.

Label values are bounded: routes, statuses and error codes are few, models outside `metrics.models`
(and the configured routes) count as `other`, workspaces come from the configured keys. MCP tool
calls are counted by server and tool, names that come from upstream servers and clients: the first
`MAX_TOOL_SERIES` (server, tool) pairs a process sees get their own series, later ones count as
server and tool `other`, and `sluicegate_tool_series_omitted` says how many pairs were folded so.

Recording a call is on the request path, so it touches no `prometheus_client` object: it adds to
plain lists kept per (route, status, provider, model, error code), a dict lookup and a few integer
and float additions (`benches/metrics_loop.py` measures it). A scrape builds the metric families
from those lists (`collect`), summing over what a family does not label. With several workers, each
publishes its figures to files the scraping worker sums (`observe/workers.py`).

Names and their OpenTelemetry GenAI counterparts are listed side by side in docs/observability.md.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector

from sluicegate.observe.workers import WorkerFiles
from sluicegate.proxy.relay import Outcome
from sluicegate.proxy.routing import Breaker, Deployment

LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
PER_TOKEN = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 1)
_B = len(LATENCY) + 1  # latency buckets, +Inf last
_P = len(PER_TOKEN) + 1
# One call key's figures, a flat list: calls; latency sum, buckets; ttft sum, buckets; time per
# output token sum, buckets; input tokens; output tokens.
_LAT = 1
_TTFT = _LAT + 1 + _B
_TPOT = _TTFT + 1 + _B
_IN = _TPOT + 1 + _P
_WIDTH = _IN + 2
# The failures that are the provider's (or the way to it), by what the call's error code says.
UPSTREAM_KINDS = {
    "upstream_status": "",  # the status class (4xx, 5xx) stands in
    "upstream_error": "error",
    "upstream_unreachable": "unreachable",
    "upstream_timeout": "timeout",
    "upstream_protocol_error": "protocol",
    "upstream_event_too_large": "protocol",
    "upstream_response_too_large": "protocol",
    "upstream_redirect": "protocol",
}

CallKey = tuple[str, int, str, str, str | None]  # route, status, provider, model, error code
MAX_TOOL_SERIES = 1000  # (server, tool) pairs with series of their own, per process
MAX_TOOL_NAME = 128  # a longer tool name (a client may send one) is not a label value
_MAX_OMITTED_KEPT = 100 * MAX_TOOL_SERIES  # folded pairs remembered (to count them); past it, a floor


class Metrics:
    """The process's metrics.

    Arguments:
        models: model names allowed as label values.
        queues: name → callable giving (depth, dropped, failed) of a background queue.
        workers: the shared directory of a multi-worker server (`observe/workers.py`), or None for
            one process serving its own figures.
        shared: collectors of figures that are the same for every worker (the spend store's cap
            budgets, `observe/budgets.py`): in the scrape as they are, never published or summed.
    """

    def __init__(
        self,
        models: Iterable[str],
        queues: dict[str, Callable[[], tuple[int, int, int]]],
        workers: WorkerFiles | None = None,
        shared: Sequence[Any] = (),
    ) -> None:
        self.models = frozenset(models)
        self.shared = tuple(shared)
        self._queues = queues
        self._calls: dict[CallKey, list[Any]] = {}
        self._workspaces: dict[str, list[int]] = {}  # tokens in, out, spend
        self._events: dict[tuple[str, str, str], list[int]] = {}
        self._tools: dict[tuple[str, str, str], int] = {}  # (server, tool, outcome) -> calls
        self._tool_pairs: set[tuple[str, str]] = set()
        self._tools_omitted: set[tuple[str, str]] = set()
        self.workers = workers
        # What this worker reports (and publishes, with several); the process figures are added
        # at scrape time, for this process or for every live worker.
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(self)

    def record(self, outcome: Outcome, duration_s: float) -> None:
        info = outcome.info
        if info is not None:
            model = info.model if info.model in self.models else "other"
            key = (info.route, outcome.status, info.provider or "none", model, outcome.error)
        else:
            key = ("unknown", outcome.status, "none", "other", outcome.error)
        rec = self._calls.get(key)
        if rec is None:
            rec = self._calls[key] = [0] * _WIDTH
        rec[0] += 1
        rec[_LAT] += duration_s
        rec[_LAT + 1 + bisect_left(LATENCY, duration_s)] += 1
        first = outcome.first_byte_at
        if first is not None and info is not None:
            ttft = first - info.t0
            rec[_TTFT] += ttft
            rec[_TTFT + 1 + bisect_left(LATENCY, ttft)] += 1
        usage = outcome.usage
        if usage is not None:
            rec[_IN] += usage.input_tokens
            rec[_IN + 1] += usage.output_tokens
            if first is not None and usage.output_tokens > 1 and info is not None:
                # GenAI's time per output token: the stream after its first token, per later token
                per = (info.t0 + duration_s - first) / (usage.output_tokens - 1)
                rec[_TPOT] += per
                rec[_TPOT + 1 + bisect_left(PER_TOKEN, per)] += 1
        if usage is not None or outcome.cost_nusd:
            workspace = (info and info.workspace) or "none"
            per_ws = self._workspaces.get(workspace)
            if per_ws is None:
                per_ws = self._workspaces[workspace] = [0, 0, 0]
            if usage is not None:
                per_ws[0] += usage.input_tokens
                per_ws[1] += usage.output_tokens
            if outcome.cost_nusd:
                per_ws[2] += outcome.cost_nusd
        for e in outcome.events:
            kind = (e.policy, e.action, e.entity)
            count = self._events.get(kind)
            if count is None:
                count = self._events[kind] = [0]
            count[0] += e.count

    def record_tool_call(self, server: str, tool: str, outcome: str) -> None:
        """Count one MCP tools/call (`mcp.messages.TOOL_OUTCOMES`); names only, never arguments. A
        name longer than the specification's 128 characters counts as `(long name)`."""
        pair = (server, tool if len(tool) <= MAX_TOOL_NAME else "(long name)")
        if pair not in self._tool_pairs:
            if len(self._tool_pairs) < MAX_TOOL_SERIES:
                self._tool_pairs.add(pair)
            else:
                if len(self._tools_omitted) < _MAX_OMITTED_KEPT:
                    self._tools_omitted.add(pair)
                pair = ("other", "other")
        key = (*pair, outcome)
        self._tools[key] = self._tools.get(key, 0) + 1

    def collect(self) -> Iterator[Metric]:
        """The metric families of this process's figures (prometheus_client's collector protocol)."""
        requests = CounterMetricFamily(
            "sluicegate_requests", "API calls", labels=["route", "status", "provider", "model"]
        )
        errors = CounterMetricFamily(
            "sluicegate_errors", "API calls answered with an error, by code", labels=["route", "code"]
        )
        upstream = CounterMetricFamily(
            "sluicegate_upstream_errors",
            "calls the provider failed: its error status class (4xx, 5xx), or unreachable, timeout, protocol",
            labels=["provider", "model", "class"],
        )
        tokens = CounterMetricFamily(
            "sluicegate_model_tokens",
            "tokens by model (gen_ai.client.token.usage)",
            labels=["provider", "model", "direction"],
        )
        counts: dict[tuple[str, ...], float] = {}
        error_counts: dict[tuple[str, ...], float] = {}
        upstream_counts: dict[tuple[str, ...], float] = {}
        token_counts: dict[tuple[str, ...], float] = {}
        hists: dict[tuple[str, str, str], list[Any]] = {}  # merged over status and error
        for (route, status, provider, model, error), rec in self._calls.items():
            lk = (route, str(status), provider, model)
            counts[lk] = counts.get(lk, 0) + rec[0]
            if error is not None:
                ek = (route, error)
                error_counts[ek] = error_counts.get(ek, 0) + rec[0]
                kind = UPSTREAM_KINDS.get(error)
                if kind is not None:
                    uk = (provider, model, kind or f"{status // 100}xx")
                    upstream_counts[uk] = upstream_counts.get(uk, 0) + rec[0]
            if rec[_IN] or rec[_IN + 1]:
                for direction, value in (("input", rec[_IN]), ("output", rec[_IN + 1])):
                    tk = (provider, model, direction)
                    token_counts[tk] = token_counts.get(tk, 0) + value
            merged = hists.get((route, provider, model))
            if merged is None:
                hists[(route, provider, model)] = list(rec)
            else:
                for i in range(_WIDTH):
                    merged[i] += rec[i]
        for family, figures in (
            (requests, counts),
            (errors, error_counts),
            (upstream, upstream_counts),
            (tokens, token_counts),
        ):
            for labels, count in figures.items():
                family.add_metric(list(labels), count)
            yield family
        latency = HistogramMetricFamily(
            "sluicegate_request_duration_seconds",
            "API call duration (gen_ai.server.request.duration)",
            labels=["route", "provider", "model"],
        )
        ttft = HistogramMetricFamily(
            "sluicegate_time_to_first_token_seconds",
            "time to the first streamed bytes (gen_ai.server.time_to_first_token)",
            labels=["route", "provider", "model"],
        )
        tpot = HistogramMetricFamily(
            "sluicegate_time_per_output_token_seconds",
            "a stream's time per output token after the first (gen_ai.server.time_per_output_token)",
            labels=["route", "provider", "model"],
        )
        for hk, rec in hists.items():
            key = list(hk)
            latency.add_metric(key, _buckets(LATENCY, rec, _LAT + 1), rec[_LAT])
            if any(rec[_TTFT + 1 : _TTFT + 1 + _B]):
                ttft.add_metric(key, _buckets(LATENCY, rec, _TTFT + 1), rec[_TTFT])
            if any(rec[_TPOT + 1 : _TPOT + 1 + _P]):
                tpot.add_metric(key, _buckets(PER_TOKEN, rec, _TPOT + 1), rec[_TPOT])
        yield latency
        yield ttft
        yield tpot
        ws_tokens = CounterMetricFamily("sluicegate_tokens", "tokens by workspace", labels=["workspace", "direction"])
        spend = CounterMetricFamily("sluicegate_spend_nusd", "settled spend in nano-USD", labels=["workspace"])
        for workspace, (tin, tout, nusd) in self._workspaces.items():
            ws_tokens.add_metric([workspace, "input"], tin)
            ws_tokens.add_metric([workspace, "output"], tout)
            spend.add_metric([workspace], nusd)
        yield ws_tokens
        yield spend
        events = CounterMetricFamily("sluicegate_policy_events", "policy events", labels=["policy", "action", "entity"])
        for event, (times,) in self._events.items():
            events.add_metric(list(event), times)
        yield events
        tools = CounterMetricFamily(
            "sluicegate_tool_calls", "MCP tools/call requests by outcome", labels=["server", "tool", "outcome"]
        )
        for tool_key, calls in self._tools.items():
            tools.add_metric(list(tool_key), calls)
        yield tools
        omitted = GaugeMetricFamily(
            "sluicegate_tool_series_omitted",
            f"(server, tool) pairs beyond the {MAX_TOOL_SERIES} with series of their own, counted as other",
        )
        omitted.add_metric([], len(self._tools_omitted))
        yield omitted
        depth = GaugeMetricFamily("sluicegate_queue_depth", "background queue depth", labels=["queue"])
        dropped = CounterMetricFamily("sluicegate_queue_dropped", "items dropped by a full queue", labels=["queue"])
        failed = CounterMetricFamily(
            "sluicegate_queue_failed", "items a background sink failed to write", labels=["queue"]
        )
        for name, stats in self._queues.items():
            queue_depth, queue_dropped, queue_failed = stats()
            depth.add_metric([name], queue_depth)
            dropped.add_metric([name], queue_dropped)  # each queue counts its drops since it started
            failed.add_metric([name], queue_failed)
        yield depth
        yield dropped
        yield failed

    def publish(self) -> None:
        """Write this worker's figures where the scraping worker reads them (several workers only)."""
        if self.workers is not None:
            self._read_breakers()
            self.workers.publish(self.registry)

    # Circuit breakers of the routes' deployments (proxy/routing.py): read at scrape time only,
    # nothing on the request path.
    _breakers: tuple[tuple[Breaker, Any], ...] = ()

    def watch_breakers(self, deployments: list[Deployment]) -> None:
        """Serve each deployment's breaker state (0 closed, 1 open, 2 half-open) as a gauge."""
        if not deployments:
            return
        gauge = Gauge(
            "sluicegate_deployment_breaker_state",
            "circuit breaker of a route's deployment: 0 closed, 1 open, 2 half-open",
            ["route", "deployment"],
            registry=self.registry,
        )
        self._breakers = tuple((d.breaker, gauge.labels(d.route, d.name)) for d in deployments)

    def _read_breakers(self) -> None:
        for breaker, child in self._breakers:
            child.set(breaker.state)

    def render(self) -> bytes:
        """The exposition a scrape gets: this process's figures, or every worker's summed."""
        self._read_breakers()
        if self.workers is None:
            own = CollectorRegistry()
            own.register(_Both(self.registry, ProcessCollector(registry=None), *self.shared))
            return generate_latest(own)
        self.workers.publish(self.registry)  # this worker's own, up to this moment
        return generate_latest(self.workers.registry(self.registry, self.shared))


def _buckets(bounds: tuple[float, ...], rec: list[Any], start: int) -> list[tuple[str, float]]:
    """Cumulative (le, count) pairs from a record's per-bucket counts at `start`."""
    out: list[tuple[str, float]] = []
    acc = 0
    for i, bound in enumerate(bounds):
        acc += rec[start + i]
        out.append((str(float(bound)), acc))
    out.append(("+Inf", acc + rec[start + len(bounds)]))
    return out


class _Both:
    """Two collectors as one (this process's figures and its process metrics)."""

    def __init__(self, *collectors: Any) -> None:
        self.collectors = collectors

    def collect(self) -> Iterator[Metric]:
        for collector in self.collectors:
            yield from collector.collect()
