"""The MCP gateway's overhead on a tool call: `tools/call` of a trivial tool (`echo`) on a real MCP
server built with the official SDK (`tests/integration/mcp_upstream.py`), sent directly and through
sluicegate (`/mcp/{server}`, with redaction and a tool deny list on), in the same run.

```
PYTHONPATH=$PWD/python python benches/mcp_overhead.py [--calls 400] [--concurrency 1,8] [--markdown]
```

One client (aiohttp, raw JSON-RPC over POST in an initialized session, answers as JSON or as SSE)
sends `--calls` calls per point. Reported per point: calls/s, p50 and p99 latency, and the gateway's
CPU per call (user+system of its process tree, from /proc); the ratio rows give what the gateway
adds over the direct call of the same run. The correctness of every answer is checked (the echoed
text comes back), so a fast wrong answer does not count.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import GATEWAY_KEY, PYTHON, free_port, gateway_config, wait_for_port  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
INIT = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}},
}


def cpu_seconds(root: int) -> float:
    total = 0.0
    pids = [root]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == root:
                pids.append(int(entry))
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


async def _answer(resp: aiohttp.ClientResponse) -> Any:
    if resp.headers.get("content-type", "").startswith("text/event-stream"):
        async for line in resp.content:
            if line.startswith(b"data: ") and b'"result"' in line:
                return orjson.loads(line[6:])
        return None
    return await resp.json()


async def run_point(url: str, auth: dict[str, str], calls: int, concurrency: int) -> tuple[float, list[float], int]:
    head = {"accept": "application/json, text/event-stream", "content-type": "application/json", **auth}
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data=orjson.dumps(INIT), headers=head) as resp:
            sid = resp.headers["mcp-session-id"]
            await _answer(resp)
        head |= {"mcp-session-id": sid, "mcp-protocol-version": "2025-06-18"}
        async with http.post(url, data=b'{"jsonrpc":"2.0","method":"notifications/initialized"}', headers=head):
            pass
        latencies: list[float] = []
        wrong = 0
        counter = iter(range(1, calls + 1))

        async def worker() -> None:
            nonlocal wrong
            for n in counter:
                text = f"call {n} for jane.doe@example.com"
                body = {
                    "jsonrpc": "2.0",
                    "id": n,
                    "method": "tools/call",
                    "params": {"name": "echo", "arguments": {"text": text}},
                }
                t0 = time.perf_counter()
                async with http.post(url, data=orjson.dumps(body), headers=head) as resp:
                    answer = await _answer(resp)
                latencies.append(time.perf_counter() - t0)
                got = (answer or {}).get("result", {}).get("content", [{}])[0].get("text", "")
                wrong += not got.startswith(f"call {n} for ")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, latencies, wrong


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--concurrency", default="1,8")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    procs: list[subprocess.Popen[bytes]] = []
    rows: list[tuple[str, str, int, float, float, float, float | None, int]] = []
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"mcp-bench-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        ports = {}
        for mode in ("sse", "json"):
            port = ports[mode] = free_port()
            cmd = [PYTHON, "-m", "tests.integration.mcp_upstream", str(port), *(["--json"] if mode == "json" else [])]
            procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_for_port(port, procs[-1])
        extra = "".join(
            f'\n[mcp.servers.{mode}]\nurl = "http://127.0.0.1:{port}/mcp"\n' for mode, port in ports.items()
        )
        extra += '\n[tools]\ndeny = ["*/delete_*"]\n'
        config = gateway_config(tmp / "gw.toml", "http://127.0.0.1:9", extra)
        gw_port = free_port()
        gw = subprocess.Popen(
            [PYTHON, "-m", "sluicegate", "serve", "--config", str(config), "--port", str(gw_port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(gw)
        wait_for_port(gw_port, gw)
        auth = {"authorization": f"Bearer {GATEWAY_KEY}"}
        for mode, port in ports.items():
            for conc in levels:
                for target in ("direct", "sluicegate"):
                    url = (
                        f"http://127.0.0.1:{port}/mcp"
                        if target == "direct"
                        else f"http://127.0.0.1:{gw_port}/mcp/{mode}"
                    )
                    asyncio.run(run_point(url, auth, 50, conc))  # warm-up
                    before = cpu_seconds(gw.pid)
                    elapsed, lat, wrong = asyncio.run(run_point(url, auth, args.calls, conc))
                    cpu = (cpu_seconds(gw.pid) - before) / args.calls if target == "sluicegate" else None
                    lat.sort()
                    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
                    rows.append((mode, target, conc, args.calls / elapsed, statistics.median(lat), p99, cpu, wrong))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    print(
        f"# MCP tools/call overhead, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {args.calls} calls a point"
    )
    print()
    print("| answer | target | conc | calls/s | p50 ms | p99 ms | gateway CPU ms/call | wrong |")
    print("|---|---|--:|--:|--:|--:|--:|--:|")
    for mode, target, conc, rate, p50, p99, cpu, wrong in rows:
        shown = f"{cpu * 1000:.2f}" if cpu is not None else "-"
        print(f"| {mode} | {target} | {conc} | {rate:,.0f} | {p50 * 1000:.2f} | {p99 * 1000:.2f} | {shown} | {wrong} |")
    print()
    print("| answer | conc | sluicegate/direct calls/s | p50 added |")
    print("|---|--:|--:|--:|")
    for mode in ("sse", "json"):
        for conc in levels:
            d = next(r for r in rows if r[0] == mode and r[1] == "direct" and r[2] == conc)
            g = next(r for r in rows if r[0] == mode and r[1] == "sluicegate" and r[2] == conc)
            print(f"| {mode} | {conc} | {g[3] / d[3]:.2f}x | +{(g[4] - d[4]) * 1000:.2f} ms |")
    return 1 if any(r[-1] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
