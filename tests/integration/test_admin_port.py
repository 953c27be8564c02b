"""`server.admin_port`: the admin API, the console and /metrics on a port of their own, every worker
listening; the public port then serves only /v1 and the probes."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from tests.conftest import GATEWAY_KEY, METRICS_TOKEN, Server, free_port, gateway_config, start_gateway

from sluicegate.config import ConfigError, load_settings

AUTH = {"authorization": f"Bearer {METRICS_TOKEN}"}


@pytest.fixture(scope="module")
def gw(mock_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    tmp = tmp_path_factory.mktemp("admin-port")
    extra = f'[control]\nenabled = true\ndatabase_url = "sqlite:///{tmp / "control.db"}"\n'
    admin_port = free_port()
    env = {"SLUICEGATE_SERVER__ADMIN_PORT": str(admin_port)}
    with start_gateway(gateway_config(tmp / "c.toml", mock_server.url, extra), env) as server:
        yield server, f"http://127.0.0.1:{admin_port}"


def test_the_public_port_serves_the_api_and_the_probes_only(gw: tuple[Server, str]) -> None:
    server, _ = gw
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=GATEWAY_KEY) as client:
        reply = client.chat.completions.create(model="mh/mock-gpt", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content
    assert httpx.get(f"{server.url}/healthz").status_code == 200
    for path in ("/metrics", "/admin/v1/orgs", "/admin/ui/", "/admin/v1/openapi.json"):
        answer = httpx.get(f"{server.url}{path}", headers=AUTH)
        assert answer.status_code == 404, path
        assert answer.json()["error"]["code"] == "unknown_path"  # the API's own 404


def test_the_admin_port_serves_the_admin_api_the_console_and_metrics(gw: tuple[Server, str]) -> None:
    server, admin = gw
    httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "mh/mock-gpt", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {GATEWAY_KEY}"},
    )
    metrics = httpx.get(f"{admin}/metrics", headers=AUTH)
    assert metrics.status_code == 200 and "sluicegate_requests_total" in metrics.text
    assert httpx.get(f"{admin}/metrics").status_code == 401  # the token is still required there
    assert httpx.get(f"{admin}/admin/v1/orgs").status_code == 401  # the admin API: a token needed
    spec = httpx.get(f"{admin}/admin/v1/openapi.json")
    assert spec.status_code == 200 and spec.json()["openapi"].startswith("3.")
    console = httpx.get(f"{admin}/admin/ui/", follow_redirects=True)
    assert console.status_code == 200 and "text/html" in console.headers["content-type"]
    # A body reaches the admin API whole (an unauthenticated POST is refused by the API, not the port).
    created = httpx.post(f"{admin}/admin/v1/orgs", json={"name": "acme"})
    assert created.status_code == 401 and created.json()["error"]
    assert httpx.get(f"{admin}/readyz").status_code == 200
    refused = httpx.post(f"{admin}/v1/chat/completions", json={}, headers={"authorization": f"Bearer {GATEWAY_KEY}"})
    assert refused.status_code == 404  # /v1 only on the public port


def test_every_worker_listens_on_the_admin_port(mock_server: Server, tmp_path: Path) -> None:
    admin_port = free_port()
    env = {"SLUICEGATE_SERVER__ADMIN_PORT": str(admin_port), "SLUICEGATE_SERVER__WORKERS": "2"}
    with start_gateway(gateway_config(tmp_path / "c.toml", mock_server.url), env) as server:
        # One call, so one worker counts it: every scrape, whichever worker answers, sums both.
        call = httpx.post(
            f"{server.url}/v1/chat/completions",
            json={"model": "mh/mock-gpt", "messages": [{"role": "user", "content": "hi"}]},
            headers={"authorization": f"Bearer {GATEWAY_KEY}"},
        )
        assert call.status_code == 200
        time.sleep(1.5)  # metrics.publish_interval_s: the other worker's figures are published by then
        pids = set()
        for _ in range(20):  # new connections, spread over the workers by the kernel
            with httpx.Client() as client:
                text = client.get(f"http://127.0.0.1:{admin_port}/metrics", headers=AUTH).text
            assert any(line.startswith("sluicegate_requests_total{") for line in text.splitlines())
            pids |= {line.split('pid="')[1].split('"')[0] for line in text.splitlines() if 'pid="' in line}
        assert len(pids) == 2, "the scrapes did not show both workers"
        assert httpx.get(f"{server.url}/metrics", headers=AUTH).status_code == 404


def test_the_admin_port_must_differ_from_the_port() -> None:
    with pytest.raises(ConfigError, match="admin_port must differ from port"):
        load_settings(environ={"SLUICEGATE_SERVER__PORT": "9000", "SLUICEGATE_SERVER__ADMIN_PORT": "9000"})


def test_sigterm_stops_both_listeners(mock_server: Server, tmp_path: Path) -> None:
    admin_port = free_port()
    env = {"SLUICEGATE_SERVER__ADMIN_PORT": str(admin_port)}
    with start_gateway(gateway_config(tmp_path / "c.toml", mock_server.url), env) as server:
        assert httpx.get(f"http://127.0.0.1:{admin_port}/healthz").status_code == 200
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=10) == 0  # idle: well within server.drain_seconds
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{admin_port}/healthz")
