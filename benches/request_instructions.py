"""Instructions per request, counted by callgrind: the same requests through the reference proxy and
through sluicegate (`core`, `redaction`, `spend`, `all`, as in gateway_overhead.py), in one process
each, driven over ASGI with no HTTP server in front, against the same nginx upstream (and Redis for
caps and limits) on real sockets.

Wall-clock figures on a shared machine move by tens of percent between runs; instruction counts do
not (the same binary, inputs and environment give the same count whatever else the machine does).
Each target runs twice, N1 and N2 requests, and the figure is (count(N2) - count(N1)) / (N2 - N1):
start-up, imports and the first connections cancel out. What it leaves out is the HTTP server's own
work (granian's, the same for every target) and the kernel's.

    .venv/bin/python benches/request_instructions.py [--targets reference,core,all] [--scenario json]

Needs valgrind, nginx and redis-server (gateway_overhead.py installs nginx and wrk when missing).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import gateway_overhead as go  # noqa: E402

PATHS = {"json": "/json/v1/chat/completions", "sse": "/sse/v1/chat/completions", "pii": "/json/v1/chat/completions"}


async def drive(app: Any, n: int, path: str, body: bytes, key: str | None, exit_when_done: bool = False) -> None:
    """Start `app`'s lifespan, then send `n` requests one after the other; every answer must be 200
    (then, with `exit_when_done`, end the process at once)."""
    headers = [(b"host", b"bench"), (b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if key:
        headers.append((b"authorization", b"Bearer " + key.encode()))
    started: list[dict[str, Any]] = []
    up = asyncio.Event()
    queue: list[dict[str, Any]] = [{"type": "lifespan.startup"}]

    async def life_receive() -> dict[str, Any]:
        return queue.pop(0) if queue else await asyncio.Future()

    async def life_send(message: dict[str, Any]) -> None:
        started.append(message)
        up.set()

    lifespan = asyncio.ensure_future(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, life_receive, life_send)
    )
    await up.wait()
    assert started[0]["type"] == "lifespan.startup.complete", started
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 5555),
        "server": ("127.0.0.1", 8080),
    }
    statuses: list[int] = []
    for _ in range(n):
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await asyncio.Future()

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await app({**scope, "state": {}}, receive, send)
    bad = [s for s in statuses if s != 200]
    assert not bad, f"{len(bad)} answers were not 200: {bad[:3]}"
    lifespan.cancel()
    if exit_when_done:
        # Leave from inside the loop: its teardown (every task cancelled, no lifespan shutdown) is
        # not a request's cost, and under valgrind it once waited forever (see BENCHMARKS.md).
        os._exit(0)


def run_one(target: str, scenario: str, n: int, upstream: int, redis: int, workdir: Path) -> None:
    """In the process valgrind watches: build the target's app and drive it."""
    import uvloop

    body = (go.UPSTREAM_DIR / go.REQUESTS[scenario]).read_bytes()
    if target == "reference":
        os.environ["REFERENCE_UPSTREAM"] = f"http://127.0.0.1:{upstream}"
        os.environ["REFERENCE_CLIENT"] = "aiohttp"
        import reference_proxy

        app, path, key = reference_proxy.app, PATHS[scenario], None
    else:
        from sluicegate.app import create_app
        from sluicegate.config import load_settings

        config = workdir / f"{target}.toml"
        config.write_text(go.gateway_config(upstream, target, redis))
        app, path, key = create_app(load_settings(config, environ={})), "/v1/chat/completions", go.GATEWAY_KEY
    uvloop.run(drive(app, n, path, body, key, exit_when_done=True))


def count(target: str, scenario: str, n: int, upstream: int, redis: int, workdir: Path) -> int:
    argv = [sys.executable, __file__, "--run", target, "--scenario", scenario, "--n", str(n)]
    argv += ["--ports", f"{upstream},{redis}", "--workdir", str(workdir)]
    out = workdir / f"callgrind.{target}.{scenario}.{n}"
    return go.callgrind_count(argv, out, go.clean_env(PYTHONHASHSEED="0"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", default="reference,core,all")
    parser.add_argument("--scenario", default="json", choices=sorted(PATHS))
    parser.add_argument("--n1", type=int, default=500)
    parser.add_argument("--n2", type=int, default=1500)
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ports", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        upstream, redis = (int(p) for p in args.ports.split(","))
        run_one(args.run, args.scenario, args.n, upstream, redis, Path(args.workdir))
        return 0
    nginx, _ = go.ensure_tools()
    results: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="sluicegate-instr-") as tmp:
        workdir = Path(tmp)
        procs = go.Processes(workdir)
        try:
            upstream, _ = go.start_upstream(procs, nginx, workdir)
            redis = go.free_port()
            argv = ["redis-server", "--port", str(redis), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            procs.spawn("redis", argv, cwd=workdir)
            go.wait_for_tcp(redis)
            for target in args.targets.split(","):
                low = count(target, args.scenario, args.n1, upstream, redis, workdir)
                high = count(target, args.scenario, args.n2, upstream, redis, workdir)
                results[target] = (high - low) // (args.n2 - args.n1)
                print(f"{target:>10}  {results[target]:>10,} instructions a request", flush=True)
        finally:
            procs.stop_all()
    if "reference" in results:
        for target, n in results.items():
            if target != "reference":
                print(f"{target:>10}  {n / results['reference']:.2f}x the reference")
    print(json.dumps({"scenario": args.scenario, "instructions": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
