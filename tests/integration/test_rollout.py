"""Staged rollout through a running gateway: a cap rolled out to 25% of a workspace's keys refuses
for about a quarter of them (always the same ones, as each key's effective policy says) and only
monitors the rest, and the admin API reports what monitoring saw, by key."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import Server, gateway_config, start_gateway
from tests.integration import test_control_cli as cli
from tests.integration.conftest import SPEND
from tests.integration.test_control_gateway import _env, _seed
from tests.unit.control.pg import MASTER_KEY

from sluicegate.control.settings import ControlSettings

KEYS = 120
CHAT = {"model": "mh/mock-gpt", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 10}


@pytest.fixture
def gateway(mock_server: Server, tmp_path: Path) -> Iterator[tuple[Server, dict[str, Any]]]:
    settings = ControlSettings(
        enabled=True, database_url=f"sqlite:///{tmp_path / 'control.db'}", master_key=MASTER_KEY, poll_interval_s=0.05
    )
    seed = _seed(settings)
    control = f'\n[control]\nenabled = true\ndatabase_url = "{settings.database_url}"\npoll_interval_s = 0.1\n'
    with start_gateway(gateway_config(tmp_path / "gw.toml", mock_server.url, control + SPEND), _env()) as server:
        yield server, seed


def _wait(predicate: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = predicate()
        if found:
            return found
        assert time.monotonic() < deadline, "not seen in time"
        time.sleep(0.1)


def test_a_cap_rolled_out_to_a_quarter_of_keys(gateway: tuple[Server, dict[str, Any]]) -> None:
    server, seed = gateway
    admin = {"authorization": f"Bearer {seed['token']}"}
    api = f"{server.url}/admin/v1"
    ws = seed["ws"]["id"]
    keys: dict[str, str] = {}
    for i in range(KEYS):
        made = httpx.post(f"{api}/workspaces/{ws}/keys", json={"name": f"agent-{i}"}, headers=admin)
        assert made.status_code == 201, made.text
        keys[made.json()["id"]] = made.json()["key"]

    # Locked caps are floors for every key: they cannot be rolled out to a share.
    locked = {"caps": [{"window": "day", "limit_usd": "1", "locked": True, "rollout_percent": 25}]}
    refused = httpx.put(f"{api}/workspaces/{ws}/policy", json=locked, headers=admin)
    assert refused.status_code == 422 and "rollout_percent must be 100" in refused.text

    # A cap no request fits under, enforced for 25% of the keys.
    policy = {"caps": [{"window": "day", "limit_usd": "0.000000001", "rollout_percent": 25}]}
    assert httpx.put(f"{api}/workspaces/{ws}/policy", json=policy, headers=admin).status_code == 200
    first = next(iter(keys.values()))
    auth = {"authorization": f"Bearer {first}"}
    _wait(lambda: httpx.post(f"{server.url}/v1/chat/completions", json=CHAT, headers=auth).status_code in (402, 200))
    time.sleep(0.3)  # every instance's view has the policy (one instance here; the poll is 0.1 s)

    statuses = {
        key_id: httpx.post(
            f"{server.url}/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {key}"}
        ).status_code
        for key_id, key in keys.items()
    }
    bitten = {k for k, s in statuses.items() if s == 402}
    assert set(statuses.values()) <= {200, 402}
    assert 12 <= len(bitten) <= 48, f"{len(bitten)} of {KEYS} keys refused; a quarter is {KEYS // 4}"

    # Each key's effective policy says whether it is in the share, and that is what happened to it.
    for key_id in list(keys)[:30]:
        eff = httpx.get(f"{api}/keys/{key_id}/effective-policy", headers=admin).json()
        (cap,) = eff["caps"]
        assert cap["rollout"] == {"percent": 25.0, "applies": key_id in bitten}
        assert cap["mode"] == ("enforce" if key_id in bitten else "monitor")
    # The same keys again: a rollout is stable per key.
    for key_id in list(keys)[:20]:
        again = httpx.post(
            f"{server.url}/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {keys[key_id]}"}
        )
        assert (again.status_code == 402) == (key_id in bitten)

    # What monitoring saw: a would_refuse for every call of every key outside the share.
    def report() -> list[dict[str, Any]] | None:
        got = httpx.get(f"{api}/workspaces/{ws}/monitoring", params={"policy": "spend"}, headers=admin)
        assert got.status_code == 200, got.text
        rows = [r for r in got.json()["data"] if r["action"] == "would_refuse"]
        return rows if {r["key_id"] for r in rows} >= set(keys) - bitten else None

    rows = _wait(report)
    assert {r["key_id"] for r in rows} == set(keys) - bitten
    assert all(r["entity"] == "workspace" and r["workspace_id"] == ws and r["policy"] == "spend" for r in rows)
    assert all(r["events"] >= 1 for r in rows)
    org_wide = httpx.get(f"{api}/orgs/{seed['org']['id']}/monitoring", headers=admin).json()
    assert org_wide["total_events"] >= len(rows)
    bad = httpx.get(f"{api}/orgs/{seed['org']['id']}/monitoring", params={"since": "yesterday"}, headers=admin)
    assert bad.status_code == 422

    # The same report from the command line, as a table and as JSON.
    table = cli.ok(cli.admin(server.url, seed["token"], "monitoring", "--workspace", ws, "--policy", "spend"))
    assert "would_refuse" in table and "key_id" in table
    listed = cli.as_json(
        cli.admin(server.url, seed["token"], "--json", "monitoring", "--workspace", ws, "--policy", "spend")
    )
    assert {r["key_id"] for r in listed["data"] if r["action"] == "would_refuse"} == set(keys) - bitten
