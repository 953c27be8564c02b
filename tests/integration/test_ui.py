"""The spend page, rendered by a real headless Chromium: its charts, caps and events show what the
admin API returns."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import Server, gateway_config, start_gateway
from tests.integration.test_control_gateway import _env, _seed
from tests.integration.test_control_policies import SPEND
from tests.unit.control.pg import MASTER_KEY

from sluicegate.control.settings import ControlSettings

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium (make test installs Debian's chromium)")


class Dom(HTMLParser):
    """The attributes of every element, by tag."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def render(url: str) -> Dom:
    with tempfile.TemporaryDirectory() as profile:
        out = subprocess.run(
            [
                str(CHROMIUM),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=10000",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    dom = Dom()
    dom.feed(out.stdout)
    return dom


@pytest.fixture
def gw(mock_server: Server, tmp_path: Path) -> Iterator[tuple[Server, dict[str, Any]]]:
    settings = ControlSettings(database_url=f"sqlite:///{tmp_path / 'control.db'}", master_key=MASTER_KEY)
    seed = _seed(settings)
    control = f'\n[control]\nenabled = true\ndatabase_url = "{settings.database_url}"\npoll_interval_s = 0.25\n'
    with start_gateway(gateway_config(tmp_path / "gw.toml", mock_server.url, control + SPEND), _env()) as server:
        yield server, seed


def test_the_page_renders_the_api_figures(gw: tuple[Server, dict[str, Any]]) -> None:
    server, seed = gw
    ws = seed["ws"]["id"] if isinstance(seed["ws"], dict) else seed["ws"]
    org = seed["org"]["id"]
    admin = {"authorization": f"Bearer {seed['token']}"}
    policy = {"caps": [{"window": "month", "limit_usd": "0.001"}]}
    assert httpx.put(f"{server.url}/admin/v1/workspaces/{ws}/policy", json=policy, headers=admin).status_code == 200
    time.sleep(0.6)
    headers = {"authorization": f"Bearer {seed['key']}"}
    for model, n in (("mh/mock-gpt@chunks=10,chunk_size=4", 3), ("mh/mock-gpt@chunks=5,chunk_size=4", 2)):
        for _ in range(n):
            body = {"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": "mail a@b.example"}]}
            assert httpx.post(f"{server.url}/v1/chat/completions", json=body, headers=headers).status_code == 200
    deadline = time.monotonic() + 5
    while True:
        by_model = httpx.get(f"{server.url}/admin/v1/orgs/{org}/spend?group_by=model", headers=admin).json()
        if sum(r["calls"] for r in by_model["data"]) == 5 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    expected = {r["model"]: r["cost_nusd"] for r in by_model["data"]}
    assert len(expected) == 2

    dom = render(f"{server.url}/admin/ui#token={seed['token']}")
    body = next(attrs for tag, attrs in dom.elements if tag == "body")
    assert body.get("data-ready") == "true", "".join(dom.text)[-500:]
    bars = {a["data-label"]: int(a["data-value"]) for t, a in dom.elements if t == "rect" and "data-value" in a}
    model_bars = {label: value for label, value in bars.items() if label in expected}
    assert model_bars == expected  # the model chart draws exactly what the API returned
    day_total = sum(v for label, v in bars.items() if label.endswith(" " + ws))
    assert day_total == sum(expected.values())  # the daily chart stacks the same spend
    (cap,) = [a for t, a in dom.elements if a.get("data-cap")]
    spent = sum(expected.values())
    assert cap["data-cap"] == f"workspace:{ws}:month"
    assert float(cap["data-percent"]) == pytest.approx(100 * spent / 10**6, abs=0.05)
    assert json.dumps(dom.text).count("EMAIL") >= 5  # the latest redaction events are listed
    assert "a@b.example" not in " ".join(dom.text)


def test_the_page_without_a_token_asks_for_one(gw: tuple[Server, dict[str, Any]]) -> None:
    server, _ = gw
    dom = render(f"{server.url}/admin/ui")
    form = next(attrs for tag, attrs in dom.elements if tag == "form")
    assert "hidden" not in form
    assert not [a for t, a in dom.elements if t == "rect"]
