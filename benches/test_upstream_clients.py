"""The upstream client, chosen by measurement: aiohttp against httpx, in one process, same run.

Each round sends 64 concurrent chat requests to the canned nginx upstream of gateway_overhead.py
(pinned to CPU 1) and reads every answer whole, the way the gateway's relay does; the streamed case
reads the 23-event stream chunk by chunk. `extra_info` records the CPU time per request of this
process (median round) and whether every answer was the expected one. Run with `make bench`, or:

    .venv/bin/python -m pytest benches/test_upstream_clients.py --benchmark-enable --benchmark-only
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import httpx
import pytest
import uvloop
from benches.gateway_overhead import UPSTREAM_DIR, Processes, ensure_tools, start_upstream

BATCH = 64
ROUNDS, WARMUP = 40, 5
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench"}
PATHS = {"json": "/json/v1/chat/completions", "sse": "/sse/v1/chat/completions"}
EXPECTED = {
    "json": (UPSTREAM_DIR / "chat_completion.json").read_bytes(),
    "sse": (UPSTREAM_DIR / "chat_stream.sse").read_bytes(),
}
REQUESTS = {
    "json": (UPSTREAM_DIR / "request.json").read_bytes().strip(),
    "sse": (UPSTREAM_DIR / "request_stream.json").read_bytes().strip(),
}
Fetch = Callable[[str, bytes], Awaitable[bytes]]


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    nginx, _ = ensure_tools()
    with tempfile.TemporaryDirectory(prefix="sluicegate-bench-") as tmp:
        procs = Processes(Path(tmp))
        try:
            port, _ = start_upstream(procs, nginx, Path(tmp))
            yield f"http://127.0.0.1:{port}"
        finally:
            procs.stop_all()


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = uvloop.new_event_loop()
    yield loop
    loop.close()


async def aiohttp_client() -> tuple[Fetch, Callable[[], Awaitable[None]]]:
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1024), auto_decompress=False)

    async def fetch(url: str, body: bytes) -> bytes:
        async with session.post(url, data=body, headers=HEADERS) as resp:
            parts = [chunk async for chunk in resp.content.iter_any()]
            return b"".join(parts) if resp.status == 200 else b""

    return fetch, session.close


async def httpx_client() -> tuple[Fetch, Callable[[], Awaitable[None]]]:
    limits = httpx.Limits(max_connections=1024, max_keepalive_connections=1024)
    client = httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(30.0))

    async def fetch(url: str, body: bytes) -> bytes:
        async with client.stream("POST", url, content=body, headers=HEADERS) as resp:
            parts = [chunk async for chunk in resp.aiter_raw()]
            return b"".join(parts) if resp.status_code == 200 else b""

    return fetch, client.aclose


CLIENTS = {"aiohttp": aiohttp_client, "httpx": httpx_client}


@pytest.mark.parametrize("scenario", ["json", "sse"])
@pytest.mark.parametrize("client", ["aiohttp", "httpx"])
def test_upstream_client(benchmark, upstream: str, loop: asyncio.AbstractEventLoop, client: str, scenario: str) -> None:
    fetch, close = loop.run_until_complete(CLIENTS[client]())
    url, body, expected = upstream + PATHS[scenario], REQUESTS[scenario], EXPECTED[scenario]
    wrong = 0
    cpu: list[float] = []  # per round, warm-up rounds included (they come first)

    async def batch() -> None:
        nonlocal wrong
        answers = await asyncio.gather(*(fetch(url, body) for _ in range(BATCH)))
        wrong += sum(answer != expected for answer in answers)

    def one_round() -> None:
        t0 = time.process_time()
        loop.run_until_complete(batch())
        cpu.append(time.process_time() - t0)

    kind = "streamed" if scenario == "sse" else "non-streamed"
    benchmark.group = f"upstream client: {BATCH} concurrent requests, {kind}"
    try:
        benchmark.pedantic(one_round, rounds=ROUNDS, warmup_rounds=WARMUP)
    finally:
        loop.run_until_complete(close())
    measured = sorted(cpu[WARMUP:])
    median_us = measured[len(measured) // 2] / BATCH * 1e6
    benchmark.extra_info.update(client=client, cpu_us_per_request=round(median_us, 1), correct=wrong == 0)
    assert wrong == 0
