"""Policies and secrets set through the admin API act on the very next requests of every instance:
a workspace cap refuses with 402, a workspace redaction rule blocks, a workspace provider secret
is the key the provider sees."""

from __future__ import annotations

import time
from typing import Any

import httpx
from tests.conftest import Server, provider_saw, scrape

MODEL = "mh/mock-gpt@chunks=10,chunk_size=4"  # 2 input + 10 output tokens: 22,000 nUSD at these prices


def chat(gw: Server, key: str, **body: object) -> httpx.Response:
    payload = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 10, **body}
    return httpx.post(f"{gw.url}/v1/chat/completions", json=payload, headers={"authorization": f"Bearer {key}"})


def until(predicate: Any, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the change did not reach the gateway in time"
        time.sleep(0.05)


def test_workspace_policy_and_secret_act_on_requests(
    control_gateway: tuple[Server, dict[str, Any]], mock_server: Server
) -> None:
    server, seed = control_gateway
    admin = {"authorization": f"Bearer {seed['token']}"}
    ws = seed["ws"]["id"] if isinstance(seed["ws"], dict) else seed["ws"]
    assert chat(server, seed["key"]).status_code == 200  # no policy yet
    policy = {
        "caps": [{"window": "day", "limit_usd": "0.000066"}],  # three requests
        "redaction": [{"entities": ["EMAIL"], "action": "block", "direction": "request"}],
    }
    assert httpx.put(f"{server.url}/admin/v1/workspaces/{ws}/policy", json=policy, headers=admin).status_code == 200
    until(lambda: chat(server, seed["key"], messages=[{"role": "user", "content": "a@b.example"}]).status_code == 400)
    blocked = chat(server, seed["key"], messages=[{"role": "user", "content": "mail a@b.example"}])
    assert blocked.json()["error"]["code"] == "content_blocked"
    statuses = [chat(server, seed["key"]).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 402]
    # The policy's cap in /metrics, as the store has it (the control plane's caps beside the file's).
    labels = f'{{id="{ws}",level="workspace",org="{seed["org"]["id"]}",window="day"}}'
    metrics = scrape(server.url)
    assert f"sluicegate_cap_limit_nusd{labels} 66000.0" in metrics
    assert f"sluicegate_cap_spent_nusd{labels} 66000.0" in metrics
    assert f"sluicegate_cap_remaining_nusd{labels} 0.0" in metrics

    secret = {"value": "ws-provider-secret"}
    assert httpx.put(f"{server.url}/admin/v1/workspaces/{ws}/secrets/mh", json=secret, headers=admin).status_code == 200
    policy_off = {"caps": [], "redaction": []}
    assert httpx.put(f"{server.url}/admin/v1/workspaces/{ws}/policy", json=policy_off, headers=admin).status_code == 200

    def authorization() -> str:
        r = chat(server, seed["key"], model="mh/mock-gpt")
        return str(provider_saw(mock_server)["headers"]["authorization"]) if r.is_success else ""

    until(lambda: authorization() == "Bearer ws-provider-secret")
