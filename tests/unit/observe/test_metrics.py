"""The metrics' exposition from recorded calls: counters as counters (`_total`), histograms by
route, provider and model, upstream failures by class, errors by code, tokens by model and by
workspace, and the background queues' depth, drops and failed writes."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from sluicegate.formats.base import Usage
from sluicegate.observe.events import PolicyEvent
from sluicegate.observe.metrics import Metrics
from sluicegate.proxy.relay import CallInfo, Outcome

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: bytes) -> tuple[dict[str, str], Samples]:
    """(family name -> type, (sample name, sorted labels) -> value) of an exposition."""
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(text.decode()):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return types, samples


def call(status: int, *, model: str = "gpt-4o", error: str | None = None, stream: bool = False) -> Outcome:
    info = CallInfo("r", "openai_chat", workspace="ws", model=model, provider="oa", provider_kind="openai", t0=10.0)
    info.stream = stream
    return Outcome(status, error=error, info=info)


def test_queue_drops_and_failures_are_counters_and_queue_depth_a_gauge() -> None:
    stats = {"logs": (3, 0, 0), "webhook": (0, 5, 2)}
    metrics = Metrics([], {name: (lambda name=name: stats[name]) for name in stats})
    types, first = parse(metrics.render())
    assert types["sluicegate_queue_dropped"] == "counter" and types["sluicegate_queue_depth"] == "gauge"
    assert first[("sluicegate_queue_dropped_total", (("queue", "webhook"),))] == 5
    assert first[("sluicegate_queue_failed_total", (("queue", "webhook"),))] == 2
    assert first[("sluicegate_queue_depth", (("queue", "logs"),))] == 3
    stats["logs"] = (0, 7, 0)
    _, again = parse(metrics.render())
    assert again[("sluicegate_queue_dropped_total", (("queue", "logs"),))] == 7
    assert b"# TYPE sluicegate_queue_dropped_total counter" in metrics.render()


def test_calls_latency_ttft_tokens_and_errors_by_model_and_provider() -> None:
    metrics = Metrics(["gpt-4o"], {})
    streamed = call(200, stream=True)
    streamed.first_byte_at = 10.3  # 0.3 s after t0
    streamed.usage = Usage(100, 11)
    streamed.cost_nusd = 7_000
    metrics.record(streamed, 1.3)  # 1.0 s for the 10 tokens after the first: 0.1 s a token
    plain = call(200)
    plain.usage = Usage(5, 2)
    metrics.record(plain, 0.02)
    metrics.record(call(502, error="upstream_status"), 0.2)
    metrics.record(call(504, error="upstream_timeout"), 30.5)
    metrics.record(call(402, error="spend_limit_exceeded", model="unlisted"), 0.001)
    refused = call(429, error="gateway_rate_limit_exceeded")
    refused.events = [PolicyEvent("limits", "refuse", "", "key", count=1)]
    metrics.record(refused, 0.001)
    types, samples = parse(metrics.render())

    def v(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert types["sluicegate_request_duration_seconds"] == "histogram"
    assert types["sluicegate_requests"] == "counter"
    m = {"route": "openai_chat", "provider": "oa", "model": "gpt-4o"}
    assert v("sluicegate_requests_total", **m, status="200") == 2
    assert v("sluicegate_requests_total", **{**m, "model": "other"}, status="402") == 1
    # one histogram over every status of the model: 5 calls
    assert v("sluicegate_request_duration_seconds_count", **m) == 5
    assert v("sluicegate_request_duration_seconds_bucket", **m, le="0.025") == 2
    assert v("sluicegate_request_duration_seconds_bucket", **m, le="30.0") == 4
    assert v("sluicegate_request_duration_seconds_bucket", **m, le="+Inf") == 5
    assert abs(v("sluicegate_request_duration_seconds_sum", **m) - (1.3 + 0.02 + 0.2 + 30.5 + 0.001)) < 1e-9
    assert v("sluicegate_time_to_first_token_seconds_count", **m) == 1
    assert v("sluicegate_time_to_first_token_seconds_bucket", **m, le="0.25") == 0
    assert v("sluicegate_time_to_first_token_seconds_bucket", **m, le="0.5") == 1
    assert abs(v("sluicegate_time_per_output_token_seconds_sum", **m) - 0.1) < 1e-9
    pm = {"provider": "oa", "model": "gpt-4o"}
    assert v("sluicegate_model_tokens_total", **pm, direction="input") == 105
    assert v("sluicegate_model_tokens_total", **pm, direction="output") == 13
    assert v("sluicegate_tokens_total", workspace="ws", direction="output") == 13
    assert v("sluicegate_spend_nusd_total", workspace="ws") == 7_000
    assert v("sluicegate_upstream_errors_total", **pm, **{"class": "5xx"}) == 1
    assert v("sluicegate_upstream_errors_total", **pm, **{"class": "timeout"}) == 1
    assert ("sluicegate_upstream_errors_total", (("class", "4xx"), *sorted(pm.items()))) not in samples  # ours
    assert v("sluicegate_errors_total", route="openai_chat", code="spend_limit_exceeded") == 1
    assert v("sluicegate_policy_events_total", policy="limits", action="refuse", entity="key") == 1
    assert v("process_cpu_seconds_total") > 0  # one process: its own figures, no pid label


def test_tool_calls_by_server_tool_and_outcome_bounded_in_series() -> None:
    from sluicegate.observe.metrics import MAX_TOOL_SERIES

    metrics = Metrics([], {})
    metrics.record_tool_call("docs", "echo", "ok")
    metrics.record_tool_call("docs", "echo", "ok")
    metrics.record_tool_call("docs", "delete_all", "denied")
    metrics.record_tool_call("docs", "x" * 5000, "denied")  # a client's name: never a huge label
    types, got = parse(metrics.render())
    assert (
        got[("sluicegate_tool_calls_total", (("outcome", "denied"), ("server", "docs"), ("tool", "(long name)")))] == 1
    )
    assert types["sluicegate_tool_calls"] == "counter"
    assert got[("sluicegate_tool_calls_total", (("outcome", "ok"), ("server", "docs"), ("tool", "echo")))] == 2
    denied = (("outcome", "denied"), ("server", "docs"), ("tool", "delete_all"))
    assert got[("sluicegate_tool_calls_total", denied)] == 1
    assert got[("sluicegate_tool_series_omitted", ())] == 0
    for i in range(MAX_TOOL_SERIES + 5):  # an upstream listing ever new names
        metrics.record_tool_call("docs", f"tool_{i}", "ok")
    metrics.record_tool_call("docs", "echo", "error")  # a pair already seen keeps its own series
    _, got = parse(metrics.render())
    tools = {k[1]: v for k, v in got.items() if k[0] == "sluicegate_tool_calls_total"}
    assert len({(d["server"], d["tool"]) for d in map(dict, tools)}) == MAX_TOOL_SERIES + 1  # and `other`
    assert tools[(("outcome", "ok"), ("server", "other"), ("tool", "other"))] == 8
    assert tools[(("outcome", "error"), ("server", "docs"), ("tool", "echo"))] == 1
    assert got[("sluicegate_tool_series_omitted", ())] == 8
