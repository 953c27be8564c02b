"""Policy events and the spend ledger: written off the request path, read back through the admin
API, equal to the nano-USD to what the calls cost, and scoped like everything else."""

from __future__ import annotations

import time
from typing import Any

import httpx
from tests.conftest import Server
from tests.integration.test_control_policies import MODEL

COST_NUSD = 24_000  # "[REDACTED:EMAIL]": 4 input tokens at $1/MTok, and 10 output tokens at $2/MTok


def poll(url: str, headers: dict[str, str], done: Any, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = httpx.get(url, headers=headers).json()
        if done(body) or time.monotonic() > deadline:
            return body  # type: ignore[no-any-return]
        time.sleep(0.1)


def test_ledger_and_events_read_back_exactly(control_gateway: tuple[Server, dict[str, Any]]) -> None:
    server, seed = control_gateway
    ws = seed["ws"]["id"] if isinstance(seed["ws"], dict) else seed["ws"]
    org = seed["org"]["id"]
    admin = {"authorization": f"Bearer {seed['token']}"}
    # a cap makes every call priced and settled (far from its limit)
    policy = {"caps": [{"window": "month", "limit_usd": "100"}]}
    assert httpx.put(f"{server.url}/admin/v1/workspaces/{ws}/policy", json=policy, headers=admin).status_code == 200
    time.sleep(0.6)  # the view reloads within a poll interval
    request_ids = []
    for i in range(5):
        r = httpx.post(
            f"{server.url}/v1/chat/completions",
            json={"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": f"me{i}@x.example"}]},
            headers={"authorization": f"Bearer {seed['key']}"},
        )
        assert r.status_code == 200
        request_ids.append(r.headers["x-sluicegate-request-id"])

    spend = poll(
        f"{server.url}/admin/v1/orgs/{org}/spend?group_by=workspace,model",
        admin,
        lambda b: b.get("total_cost_nusd") == 5 * COST_NUSD,
    )
    assert spend["total_cost_nusd"] == 5 * COST_NUSD
    (row,) = spend["data"]
    assert row["workspace_id"] == ws and row["model"] == "mock-gpt@chunks=10,chunk_size=4" and row["calls"] == 5
    assert row["output_tokens"] == 50

    by_hour = httpx.get(f"{server.url}/admin/v1/workspaces/{ws}/spend?bucket=hour", headers=admin).json()
    (cap,) = by_hour["caps"]  # the workspace's cap: what its window has settled, and nothing in flight
    assert (cap["level"], cap["window"], cap["limit_nusd"]) == ("workspace", "month", 100 * 10**9)
    assert (cap["spent_nusd"], cap["reserved_nusd"]) == (5 * COST_NUSD, 0)
    assert sum(r["cost_nusd"] for r in by_hour["data"]) == 5 * COST_NUSD
    assert all(len(r["bucket"]) == 13 for r in by_hour["data"])
    later = httpx.get(f"{server.url}/admin/v1/orgs/{org}/spend?since=2999-01-01T00:00:00Z", headers=admin).json()
    assert later["total_cost_nusd"] == 0

    events = poll(
        f"{server.url}/admin/v1/orgs/{org}/events?policy=redaction&entity=EMAIL",
        admin,
        lambda b: len(b.get("data", [])) >= 5,
    )["data"]
    assert {e["request_id"] for e in events} >= set(request_ids)
    assert all(e["action"] == "redact" and e["direction"] == "request" and e["count"] == 1 for e in events)
    assert all("x.example" not in str(e) for e in events)  # types, counts, locations: never values
    one = httpx.get(f"{server.url}/admin/v1/workspaces/{ws}/events?request_id={request_ids[0]}", headers=admin).json()[
        "data"
    ]
    assert [e["entity"] for e in one] == ["EMAIL"]


def test_bad_queries_are_422(control_gateway: tuple[Server, dict[str, Any]]) -> None:
    server, seed = control_gateway
    admin = {"authorization": f"Bearer {seed['token']}"}
    org = seed["org"]["id"]
    for query in ("group_by=nope", "bucket=week", "since=yesterday", "limit=0", "group_by=model,model"):
        r = httpx.get(f"{server.url}/admin/v1/orgs/{org}/spend?{query}", headers=admin)
        r2 = httpx.get(f"{server.url}/admin/v1/orgs/{org}/events?{query}", headers=admin)
        assert r.status_code == 422 or r2.status_code == 422, query
