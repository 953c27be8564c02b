"""A rate limit holds across three sluicegate instances sharing one Redis behind nginx: a limit of N
requests per window, a burst far above it for over one and a half windows, and no window of
`window_s` seconds ever admits more than N, with leases off and on (the leases of
`sluicegate.limits.leases` only ever under-admit, so the tolerance is zero).

Admission times are seen by the clients: a call admitted by the gateway was admitted between the
moment it was sent and the moment its answer came back. The check counts, for every window
starting at a send time, the admissions that were sent and answered inside it: those were surely
admitted inside it, so that count may never pass N (the check cannot fail a correct gateway, and
with answers back in milliseconds it misses nothing of a 2x burst at a window's edge). The cluster
helpers are tests/integration/test_cluster.py's.
"""

from __future__ import annotations

import asyncio
import bisect
import time
import uuid
from pathlib import Path

import httpx
import pytest
from loadtest.run import find_nginx
from tests.conftest import GATEWAY_KEY, Server, redis_url
from tests.integration.test_cluster import cluster, served

pytestmark = pytest.mark.skipif(find_nginx() is None, reason="nginx is not installed (apt-get install nginx-light)")

N, WINDOW_S, BURST_S, CLIENTS = 40, 3, 5.0, 12
PAYLOAD = {"model": "mh/mock-gpt", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 5}


def limits_toml(redis: Server, prefix: str, leases: bool) -> str:
    return f"""
[limits]
backend = "redis"
redis_url = "{redis_url(redis)}"
key_prefix = "{prefix}"
lease = {{ enabled = {str(leases).lower()} }}

[[limits.rules]]
level = "workspace"
id = "ws-test"
org = "default"
kind = "requests"
limit = {N}
window_s = {WINDOW_S}
"""


def most_in_a_window(calls: list[tuple[float, float]], window: float) -> int:
    """The most admissions (sent, answered) that lie wholly inside one window starting at a send."""
    calls = sorted(calls)
    sends = [s for s, _ in calls]
    most = 0
    for i, (start, _) in enumerate(calls):
        end = start + window
        inside = sum(1 for _, answered in calls[i : bisect.bisect_right(sends, end)] if answered <= end)
        most = max(most, inside)
    return most


async def burst(url: str, seconds: float = BURST_S) -> tuple[list[tuple[float, float]], dict[int, int]]:
    """CLIENTS loops calling as fast as answers come, for `seconds`: (sent, answered) of every 200,
    and the count of each status."""
    admitted: list[tuple[float, float]] = []
    statuses: dict[int, int] = {}
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(timeout=10, limits=limits) as client:
        deadline = time.monotonic() + seconds

        async def loop() -> None:
            for _ in range(10_000):  # bounded; the deadline ends it first
                if time.monotonic() >= deadline:
                    return
                sent = time.monotonic()
                r = await client.post(
                    f"{url}/v1/chat/completions", json=PAYLOAD, headers={"authorization": f"Bearer {GATEWAY_KEY}"}
                )
                answered = time.monotonic()
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                if r.status_code == 200:
                    admitted.append((sent, answered))
                elif r.status_code == 429:
                    assert r.headers["x-sluicegate-limit"] == "workspace/requests"
                    await asyncio.sleep(0.005)  # a client that would not wait at all

        await asyncio.gather(*(loop() for _ in range(CLIENTS)))
    return admitted, statuses


@pytest.mark.parametrize("leases", [False, True], ids=["leases-off", "leases-on"])
async def test_no_window_admits_more_than_the_limit_across_three_instances(
    mock_server: Server, redis_server: Server, tmp_path: Path, leases: bool
) -> None:
    prefix = f"rl{uuid.uuid4().hex[:8]}"
    sections = limits_toml(redis_server, prefix, leases)
    with cluster(mock_server, redis_server, tmp_path, 1_000_000, prefix, sections=sections) as (lb, gateways):
        admitted, statuses = await burst(lb.url)
        assert set(statuses) <= {200, 429}, statuses
        assert statuses[429] > 10 * N, statuses  # a burst far above the limit
        most = most_in_a_window(admitted, WINDOW_S)
        assert most <= N, (most, statuses)
        # and the limit was reached, not starved: each window's worth was admitted about in full
        assert len(admitted) >= 2 * N, statuses
        assert all(served(g) > 0 for g in gateways)  # nginx spread the burst
