"""Three sluicegate instances sharing one Redis behind nginx, on loopback: caps hold exactly under
concurrent load through the load balancer, and killing one instance (SIGKILL) mid-load loses no
settled spend and over-spends nothing, and a revoked key stops working everywhere.

The load is plain asyncio and httpx (locust is for `make cluster`, this stays quick). Costs are
deterministic as in test_spend_gateway.py: "hello" is 2 input tokens, `chunks=10,chunk_size=4` a
reply of 10 output tokens, and with `max_tokens = 10` and no estimate padding the reservation
equals the actual cost, so a cap of N times that cost admits exactly N requests.

A key revoked through one instance's admin API is refused by every instance within a second while
load runs (the instances share one control-plane database).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from loadtest.run import find_nginx, nginx_argv, render_nginx_conf
from tests.conftest import GATEWAY_KEY, Server, free_port, gateway_config, redis_url, scrape, spawn, start_gateway
from tests.integration.test_spend_gateway import COST_NUSD, spend_toml

from sluicegate.spend import SpendSettings
from sluicegate.spend.redis_store import RedisStore

pytestmark = pytest.mark.skipif(find_nginx() is None, reason="nginx is not installed (apt-get install nginx-light)")

MODEL = "mh/mock-gpt@chunks=10,chunk_size=4"
HEADERS = {"authorization": f"Bearer {GATEWAY_KEY}"}
CAP = {"level": "workspace", "id": "ws-test", "org": "default", "window": "day"}


@contextlib.contextmanager
def cluster(
    mock: Server,
    redis: Server,
    tmp_path: Path,
    n_requests: int,
    prefix: str,
    *,
    extra: str = "",
    env: dict[str, str] | None = None,
    sections: str = "",
) -> Iterator[tuple[Server, list[Server]]]:
    """Three gateways with one config, and nginx balancing over them; yields (nginx, gateways).
    `extra` goes into `[spend]`, `sections` after it (more sections of the config)."""
    spend = spend_toml(n_requests, backend="redis", prefix=prefix, extra=f'redis_url = "{redis_url(redis)}"\n{extra}')
    config = gateway_config(tmp_path / "c.toml", mock.url, spend + sections)
    nginx = find_nginx()
    assert nginx is not None
    with start_gateway(config, env) as a, start_gateway(config, env) as b, start_gateway(config, env) as c:
        port = free_port()
        conf = render_nginx_conf(tmp_path, port, [a.port, b.port, c.port])
        with spawn(nginx_argv(nginx, tmp_path, conf), port) as lb:
            yield lb, [a, b, c]


async def spent_reserved(redis: Server, prefix: str) -> tuple[int, int]:
    settings = SpendSettings.model_validate(
        {"backend": "redis", "redis_url": redis_url(redis), "key_prefix": prefix, "caps": [{**CAP, "limit_usd": "1"}]}
    )
    store = RedisStore.from_settings(settings)
    try:
        return await store.snapshot(settings.lines()[0])
    finally:
        await store.close()


async def call(client: httpx.AsyncClient, url: str, *, stream: bool, model: str = MODEL) -> str:
    """One chat call: "200" when the answer came whole (a stream up to `data: [DONE]`), else the
    status, or "broken" when the connection failed mid-way."""
    payload = {"model": model, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 10, "stream": stream}
    try:
        if not stream:
            r = await client.post(f"{url}/v1/chat/completions", json=payload, headers=HEADERS)
            return str(r.status_code) if r.status_code != 200 or r.json().get("usage") else "broken"
        async with client.stream("POST", f"{url}/v1/chat/completions", json=payload, headers=HEADERS) as r:
            last = ""
            async for line in r.aiter_lines():
                if line.startswith("data: "):
                    last = line
            if r.status_code == 200 and last != "data: [DONE]":
                return "broken"
            return str(r.status_code)
    except httpx.TransportError:
        return "broken"


def served(gateway: Server) -> int:
    """How many API calls an instance answered (its one worker's `sluicegate_requests_total`)."""
    text = scrape(gateway.url)
    lines = [ln for ln in text.splitlines() if ln.startswith("sluicegate_requests_total{")]
    return int(sum(float(ln.rsplit(" ", 1)[1]) for ln in lines))


async def test_caps_hold_exactly_through_nginx(mock_server: Server, redis_server: Server, tmp_path: Path) -> None:
    n, total, prefix = 25, 120, f"c{uuid.uuid4().hex[:8]}"
    with cluster(mock_server, redis_server, tmp_path, n, prefix) as (lb, gateways):
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            statuses = await asyncio.gather(*(call(client, lb.url, stream=i % 2 == 1) for i in range(total)))
        assert statuses.count("200") == n and statuses.count("402") == total - n, sorted(statuses)
        await asyncio.sleep(0.3)  # the last settlements
        assert await spent_reserved(redis_server, prefix) == (n * COST_NUSD, 0)
        # nginx spread the load: every instance admitted or refused its share
        assert all(served(g) > 0 for g in gateways), [served(g) for g in gateways]


async def test_killing_an_instance_mid_load_loses_nothing_and_overspends_nothing(
    mock_server: Server, redis_server: Server, tmp_path: Path
) -> None:
    """SIGKILL one of three instances while streams run through nginx. Its in-flight reservations
    stay reserved until their TTL, then count as spent; the others serve on. At every point spent +
    reserved stays within the cap and covers every answer that came whole; in the end, with load
    driven until the cap refuses, spent is the cap to the nano-USD, reserved is 0, and what was
    counted beyond the whole answers is no more than the calls the dead instance broke (cut off
    mid-stream, or a 502 from nginx when it died before answering)."""
    n, prefix, ttl = 60, f"k{uuid.uuid4().hex[:8]}", 3.0
    env = {"SLUICEGATE_UPSTREAM__TOTAL_TIMEOUT_S": "2.5"}  # the TTL must exceed it
    slow = MODEL + ",delay_ms=40"  # about 0.4 s a stream: always some in flight on each instance
    with cluster(mock_server, redis_server, tmp_path, n, prefix, extra=f"reservation_ttl_s = {ttl:g}", env=env) as (
        lb,
        gateways,
    ):
        victim = gateways[1]
        statuses: list[str] = []
        killed_at = [0.0]
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        async with httpx.AsyncClient(timeout=15, limits=limits) as client:
            deadline = time.monotonic() + 2.5

            async def worker() -> None:
                for _ in range(50):  # bounded; the deadline ends it first
                    if time.monotonic() >= deadline:
                        return
                    statuses.append(await call(client, lb.url, stream=True, model=slow))

            async def kill() -> None:
                await asyncio.sleep(1.0)
                os.killpg(victim.proc.pid, signal.SIGKILL)
                killed_at[0] = time.monotonic()

            await asyncio.gather(kill(), *(worker() for _ in range(8)))
            assert victim.proc.wait(5) == -signal.SIGKILL
            whole, broken = statuses.count("200"), statuses.count("broken")
            assert broken >= 1, f"the kill broke no call in flight: {sorted(statuses)}"
            broken += statuses.count("502")  # nginx's answer when the instance died before its headers
            assert set(statuses) <= {"200", "402", "502", "broken"}, sorted(statuses)

            # mid-way: nothing settled is lost, nothing beyond the cap is held
            spent, reserved = await spent_reserved(redis_server, prefix)
            assert whole * COST_NUSD <= spent + reserved <= n * COST_NUSD, (whole, spent, reserved)
            assert spent % COST_NUSD == 0 and reserved % COST_NUSD == 0

            # after the TTL the dead instance's reservations count as spent; fill the cap
            await asyncio.sleep(max(0.0, killed_at[0] + ttl + 0.5 - time.monotonic()))
            fill: list[str] = []
            for _ in range(n + 5):  # at most the whole cap again, then a refusal
                fill.append(await call(client, lb.url, stream=False))
                if fill[-1] == "402":
                    break
            assert fill[-1] == "402" and set(fill) <= {"200", "402"}, fill
            whole += fill.count("200")

        assert await spent_reserved(redis_server, prefix) == (n * COST_NUSD, 0)
        assert whole <= n
        assert n - whole <= broken, (n, whole, broken)  # counted without a whole answer: only broken calls
        assert served(gateways[0]) > 0 and served(gateways[2]) > 0


def test_a_revoked_key_is_refused_by_every_instance_while_load_runs(
    mock_server: Server, redis_server: Server, tmp_path: Path
) -> None:
    """Three instances sharing one control-plane database behind nginx, two keys under load: a
    revocation through one instance's admin API is refused everywhere within a second, while the
    other key keeps working."""
    from tests.integration.test_control_gateway import _seed
    from tests.unit.control.pg import MASTER_KEY

    from sluicegate.control.audit import Actor
    from sluicegate.control.models import workspaces
    from sluicegate.control.schemas import KeyIn
    from sluicegate.control.settings import ControlSettings
    from sluicegate.control.store import ControlStore

    settings = ControlSettings(database_url=f"sqlite:///{tmp_path / 'control.db'}", master_key=MASTER_KEY)
    seed = _seed(settings)

    async def second_key() -> str:
        store = ControlStore(settings)
        await store.open()
        try:
            ws = await store.one(workspaces, seed["ws"]["id"] if isinstance(seed["ws"], dict) else seed["ws"])
            return (await store.create_key(Actor("test"), ws, KeyIn(name="other")))[1]
        finally:
            await store.close()

    other_key = asyncio.run(second_key())
    extra = f'\n[control]\nenabled = true\ndatabase_url = "{settings.database_url}"\npoll_interval_s = 0.25\n'
    env = {"SLUICEGATE_CONTROL__MASTER_KEY": MASTER_KEY}
    prefix = f"t{uuid.uuid4().hex[:8]}"
    with cluster(mock_server, redis_server, tmp_path, 100_000, prefix, extra=extra, env=env) as (lb, gateways):
        revoked_at: list[float] = []
        results: dict[str, list[tuple[float, int]]] = {"revoked": [], "other": []}

        async def load(client: httpx.AsyncClient, name: str, key: str, until: float) -> None:
            payload = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 10}
            while time.monotonic() < until:
                r = await client.post(
                    f"{lb.url}/v1/chat/completions", json=payload, headers={"authorization": f"Bearer {key}"}
                )
                results[name].append((time.monotonic(), r.status_code))

        async def revoke(client: httpx.AsyncClient) -> None:
            await asyncio.sleep(1.0)
            admin = {"authorization": f"Bearer {seed['token']}"}
            asked_at = time.monotonic()
            r = await client.post(f"{gateways[0].url}/admin/v1/keys/{seed['key_id']}/revoke", headers=admin)
            assert r.status_code == 200
            revoked_at.extend((asked_at, time.monotonic()))

        async def run() -> None:
            async with httpx.AsyncClient(timeout=10) as client:
                until = time.monotonic() + 3.5
                await asyncio.gather(
                    *(load(client, "revoked", seed["key"], until) for _ in range(4)),
                    *(load(client, "other", other_key, until) for _ in range(4)),
                    revoke(client),
                )

        asyncio.run(run())
        t_asked, t_revoked = revoked_at  # answers between the two may be either
        before = [s for t, s in results["revoked"] if t < t_asked]
        settled = [s for t, s in results["revoked"] if t > t_revoked + 1.0]
        assert before and set(before) == {200}
        assert settled and set(settled) == {401}  # refused by every instance within a second
        assert {s for _, s in results["other"]} == {200}
        assert all(served(g) > 0 for g in gateways)  # the balancer spread the load
