"""The background queues' drops are a Prometheus counter (`sluicegate_queue_dropped_total`, with
its `# TYPE ... counter`), growing by what each queue dropped since the last scrape."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from sluicegate.observe.metrics import Metrics


def families(text: bytes) -> dict[str, tuple[str, dict[str, float]]]:
    """name -> (type, {queue label: value}) of the queue metrics in an exposition."""
    out: dict[str, tuple[str, dict[str, float]]] = {}
    for family in text_string_to_metric_families(text.decode()):
        if family.name.startswith("sluicegate_queue"):
            values = {s.labels["queue"]: s.value for s in family.samples if s.name.endswith(("_total", "_depth"))}
            out[family.name] = (family.type, values)
    return out


def test_queue_drops_are_a_counter_and_queue_depth_a_gauge() -> None:
    stats = {"logs": (3, 0), "webhook": (0, 5)}
    metrics = Metrics([], {name: (lambda name=name: stats[name]) for name in stats})
    first = families(metrics.render())
    assert first["sluicegate_queue_dropped"] == ("counter", {"logs": 0.0, "webhook": 5.0})
    assert first["sluicegate_queue_depth"] == ("gauge", {"logs": 3.0, "webhook": 0.0})
    stats["logs"], stats["webhook"] = (0, 7), (1, 5)
    again = families(metrics.render())
    assert again["sluicegate_queue_dropped"] == ("counter", {"logs": 7.0, "webhook": 5.0})
    assert families(metrics.render())["sluicegate_queue_dropped"][1] == {"logs": 7.0, "webhook": 5.0}  # no new drops
    assert b"# TYPE sluicegate_queue_dropped_total counter" in metrics.render()
