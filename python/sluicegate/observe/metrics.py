"""Prometheus metrics at `/metrics`: requests, latency, time to first token, tokens and spend,
policy events, and the background queues. Label values are bounded: routes and statuses are few,
models outside `metrics.models` (and the configured routes) count as `other`, workspaces come from
the configured keys. With several workers, each serves its own figures (run one per pod)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from sluicegate.proxy.relay import Outcome
from sluicegate.proxy.routing import Breaker, Deployment

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    """The process's metrics.

    Arguments:
        models: model names allowed as label values.
        queues: name → callable giving (depth, dropped) of a background queue.
    """

    def __init__(self, models: Iterable[str], queues: dict[str, Callable[[], tuple[int, int]]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.models = frozenset(models)
        self.requests = Counter(
            "sluicegate_requests", "API calls", ["route", "status", "provider", "model"], registry=r
        )
        self.latency = Histogram(
            "sluicegate_request_duration_seconds", "API call duration", ["route"], buckets=_LATENCY, registry=r
        )
        self.ttft = Histogram(
            "sluicegate_time_to_first_token_seconds",
            "time to the first streamed bytes",
            ["route"],
            buckets=_LATENCY,
            registry=r,
        )
        self.tokens = Counter("sluicegate_tokens", "tokens", ["workspace", "direction"], registry=r)
        self.spend = Counter("sluicegate_spend_nusd", "settled spend in nano-USD", ["workspace"], registry=r)
        self.events = Counter("sluicegate_policy_events", "policy events", ["policy", "action", "entity"], registry=r)
        self.queue_depth = Gauge("sluicegate_queue_depth", "background queue depth", ["queue"], registry=r)
        self.queue_dropped = Counter("sluicegate_queue_dropped", "items dropped by a full queue", ["queue"], registry=r)
        self._queues = queues
        self._dropped_seen: dict[str, int] = {}  # each queue's drop count at the last scrape
        # labels() validates and locks on every call; the children of the few label sets in use
        # are kept here, so recording a call is a few dict lookups and increments.
        self._calls: dict[tuple[str, int, str, str], tuple[Any, Any]] = {}
        self._workspaces: dict[str, tuple[Any, Any, Any]] = {}  # tokens in, out, spend
        self._events: dict[tuple[str, str, str], Any] = {}

    def record(self, outcome: Outcome, duration_s: float) -> None:
        info = outcome.info
        route = info.route if info else "unknown"
        model = info.model if info and info.model in self.models else "other"
        provider = (info and info.provider) or "none"
        key = (route, outcome.status, provider, model)
        children = self._calls.get(key)
        if children is None:
            children = (self.requests.labels(route, str(outcome.status), provider, model), self.latency.labels(route))
            self._calls[key] = children
        children[0].inc()
        children[1].observe(duration_s)
        if outcome.first_byte_at is not None and info is not None:
            self.ttft.labels(route).observe(outcome.first_byte_at - info.t0)
        if outcome.usage is not None or outcome.cost_nusd:
            workspace = (info and info.workspace) or "none"
            per = self._workspaces.get(workspace)
            if per is None:
                per = self._workspaces[workspace] = (
                    self.tokens.labels(workspace, "input"),
                    self.tokens.labels(workspace, "output"),
                    self.spend.labels(workspace),
                )
            if outcome.usage is not None:
                per[0].inc(outcome.usage.input_tokens)
                per[1].inc(outcome.usage.output_tokens)
            if outcome.cost_nusd:
                per[2].inc(outcome.cost_nusd)
        for e in outcome.events:
            kind = (e.policy, e.action, e.entity)
            child = self._events.get(kind)
            if child is None:
                child = self._events[kind] = self.events.labels(*kind)
            child.inc(e.count)

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

    def render(self) -> bytes:
        for breaker, child in self._breakers:
            child.set(breaker.state)
        for name, stats in self._queues.items():
            depth, dropped = stats()
            self.queue_depth.labels(name).set(depth)
            # a queue counts its drops since it started; the counter grows by what is new
            new = dropped - self._dropped_seen.get(name, 0)
            self.queue_dropped.labels(name).inc(max(new, 0))
            self._dropped_seen[name] = max(dropped, self._dropped_seen.get(name, 0))
        return generate_latest(self.registry)
