"""The alert rules (`deploy/prometheus/rules.yaml`) and the Grafana dashboard (`deploy/grafana/`):
every metric their PromQL names is one a running gateway exports (scraped here, two workers), the
rules pass `promtool check rules`, and their unit tests (`rules.test.yaml`: series in, alerts out)
pass `promtool test rules`. promtool comes from Debian's prometheus package, unpacked into
`.tools/` by `make test-tools`; without it only its two checks are skipped."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from tests.conftest import GATEWAY_KEY, ROOT, Server, gateway_config, scrape, start_gateway

RULES = ROOT / "deploy" / "prometheus" / "rules.yaml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "rules.test.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "sluicegate.json"
_KEYWORDS = {"by", "without", "and", "or", "unless", "on", "ignoring", "group_left", "group_right", "offset", "bool"}
_KEYWORDS |= {"inf", "nan"}


def promtool() -> str | None:
    tool = ROOT / ".tools" / "promtool"
    return str(tool) if tool.is_file() else shutil.which("promtool")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, keywords, labels or durations)."""
    expr = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)  # strings (label values, templates)
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges and subqueries
    expr = re.sub(r"\$\w+", "", expr)  # Grafana's variables ($__rate_interval)
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", expr):
        name, call = match.group(1), match.group(2)
        if call is None and name.lower() not in _KEYWORDS and not re.fullmatch(r"\d+[smhdwy]", name):
            names.add(name)
    return names


def exported(text: str) -> set[str]:
    """Every series name an exposition offers, by its families' types (a family without samples too)."""
    names = set()
    for family in text_string_to_metric_families(text):
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names |= {family.name + suffix for suffix in ("_bucket", "_sum", "_count")}
        else:
            names.add(family.name)
        names |= {s.name for s in family.samples}
    return names


def rule_exprs() -> dict[str, str]:
    data = yaml.safe_load(RULES.read_text())
    return {rule.get("alert") or rule["record"]: rule["expr"] for group in data["groups"] for rule in group["rules"]}


def dashboard_exprs() -> dict[str, str]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    out = {}
    for panel in data["panels"]:
        for target in panel.get("targets", []):
            out[f"{panel['title']} {target['refId']}"] = target["expr"]
    variable = re.fullmatch(r"label_values\((\w+), job\)", data["templating"]["list"][1]["query"]["query"])
    assert variable is not None
    out["variable job"] = variable.group(1)  # the metric whose `job` values the variable offers
    return out


def test_the_name_extraction_sees_every_metric() -> None:
    expr = (
        'sum by (job, le) (rate(sluicegate_x_bucket{a="b", c=~"d|e"}[5m] offset 1h)) / ignoring(le) '
        "sluicegate_y_total > 3 * histogram_quantile(0.9, z:rule[1m:10s]) and on (job) up"
    )
    assert metric_names(expr) == {"sluicegate_x_bucket", "sluicegate_y_total", "z:rule", "up"}
    assert metric_names("rate(sluicegate_nope_total[$__rate_interval])") == {"sluicegate_nope_total"}


@pytest.fixture(scope="module")
def exposition(mock_server: Server, tmp_path_factory: pytest.TempPathFactory) -> str:
    """What a two-worker gateway exports after a few calls (an upstream error and a stream among them)."""
    config = gateway_config(tmp_path_factory.mktemp("rules") / "c.toml", mock_server.url)
    env = {"SLUICEGATE_SERVER__WORKERS": "2", "SLUICEGATE_METRICS__PUBLISH_INTERVAL_S": "0.2"}
    with start_gateway(config, env) as server:
        headers = {"authorization": f"Bearer {GATEWAY_KEY}"}
        for model, stream in (("mh/mock-gpt", False), ("mh/mock-gpt", True), ("dead/m", False)):
            body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
            httpx.post(f"{server.url}/v1/chat/completions", json=body, headers=headers, timeout=10)
        return scrape(server.url)


def test_every_metric_the_rules_and_the_dashboard_name_is_exported(exposition: str) -> None:
    have = exported(exposition)
    assert "sluicegate_requests_total" in have and "process_cpu_seconds_total" in have
    for where, exprs in (("rules.yaml", rule_exprs()), ("sluicegate.json", dashboard_exprs())):
        assert exprs
        for name, expr in exprs.items():
            names = metric_names(expr)
            assert names, f"{where}: {name} names no metric"
            missing = names - have
            assert not missing, f"{where}: {name} names metrics the gateway does not export: {sorted(missing)}"


def test_the_rules_name_a_severity_and_a_summary() -> None:
    data = yaml.safe_load(RULES.read_text())
    for rule in data["groups"][0]["rules"]:
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


@pytest.mark.skipif(promtool() is None, reason="promtool is missing (make test-tools unpacks it)")
def test_promtool_checks_the_rules_and_runs_their_tests() -> None:
    tool = promtool()
    assert tool is not None
    checked = subprocess.run([tool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 12 rules found" in checked.stdout
    tested = subprocess.run(
        [tool, "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent, capture_output=True, text=True, timeout=60
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


@pytest.mark.skipif(promtool() is None, reason="promtool is missing (make test-tools unpacks it)")
def test_promtool_refuses_a_broken_rule(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: sum(rate(up[5m])\n")
    tool = promtool()
    assert tool is not None
    done = subprocess.run([tool, "check", "rules", str(broken)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
