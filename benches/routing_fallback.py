"""What a retry on another deployment costs in time: the same call, one at a time, through a gateway
process to the mock provider on a socket, three ways:

- `plain`: a model routed the plain way (one provider, no route);
- `retried`: a route whose first deployment answers 500 at once and whose standby answers (the
  gateway retries on the standby: two upstream requests for the client's one);
- `upstream 500`: that failing request sent straight to the mock (one upstream round trip).

The retry's cost is `retried - plain`; the claim checked is that it is about one upstream round trip
(`upstream 500`), i.e. that a retry adds no work of its own beyond the second request. Medians of
`--n` calls after `--warmup`, all three in one run, interleaved in rounds (a busy machine slows
them alike).

    .venv/bin/python benches/routing_fallback.py [--n 400] [--warmup 50]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import gateway_overhead as go  # noqa: E402

KEY = go.GATEWAY_KEY
BODY = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 10}


def config(mock_port: int) -> str:
    from sluicegate.secrets import hash_key

    base = f"http://127.0.0.1:{mock_port}"
    return f"""[server]
workers = 1
[log]
level = "warning"
[providers.a]
kind = "mock"
base_url = "{base}"
models = []
[providers.b]
kind = "mock"
base_url = "{base}"
models = ["mock-gpt"]
[routing]
default_openai = "b"
breaker_failures = 1000000
[routing.models.retried]
deployments = [{{ provider = "a", model = "mock-gpt@fault=500" }}, {{ provider = "b", model = "mock-gpt", weight = 0 }}]
[[keys]]
name = "bench"
sha256 = "{hash_key(KEY)}"
"""


def timed(client: httpx.Client, url: str, model: str, headers: dict[str, str], status: int) -> float:
    t0 = time.perf_counter()
    r = client.post(url, json={**BODY, "model": model}, headers=headers)
    elapsed = time.perf_counter() - t0
    assert r.status_code == status, (model, r.status_code, r.text[:200])
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--warmup", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sluicegate-fallback-") as tmp:
        work = Path(tmp)
        procs = go.Processes(work)
        try:
            mock_port, gw_port = go.free_port(), go.free_port()
            procs.spawn("mock", [str(go.BIN / "sluicegate"), "mock", "--port", str(mock_port)], go.clean_env())
            procs.wait_ready("mock", mock_port)
            (work / "gw.toml").write_text(config(mock_port))
            argv = [str(go.BIN / "sluicegate"), "serve", "--config", str(work / "gw.toml"), "--port", str(gw_port)]
            procs.spawn("gateway", argv, go.clean_env())
            procs.wait_ready("gateway", gw_port)
            gw = f"http://127.0.0.1:{gw_port}/v1/chat/completions"
            direct = f"http://127.0.0.1:{mock_port}/v1/chat/completions"
            auth = {"authorization": f"Bearer {KEY}"}
            ways = {
                "plain": (gw, "mock-gpt", auth, 200),
                "retried": (gw, "retried", auth, 200),
                "upstream 500": (direct, "mock-gpt@fault=500", {"authorization": "Bearer sk-mock"}, 500),
            }
            seen: dict[str, list[float]] = {name: [] for name in ways}
            with httpx.Client(timeout=10) as client:
                for i in range(args.warmup + args.n):
                    for name, (url, model, headers, status) in ways.items():
                        took = timed(client, url, model, headers, status)
                        if i >= args.warmup:
                            seen[name].append(took)
                probe = client.post(gw, json={**BODY, "model": "retried"}, headers=auth)
                attempts = probe.headers.get("x-sluicegate-attempts")
        finally:
            procs.stop_all()
    med = {name: statistics.median(v) * 1000 for name, v in seen.items()}
    extra = med["retried"] - med["plain"]
    print(f"{'way':<14}{'median ms':>10}{'p90 ms':>9}")
    for name, values in seen.items():
        p90 = statistics.quantiles(values, n=10)[-1] * 1000
        print(f"{name:<14}{med[name]:>10.3f}{p90:>9.3f}")
    print(f"retry's cost: {extra:.3f} ms = {extra / med['upstream 500']:.2f} x one upstream round trip "
          f"(attempts header on a retried call: {attempts})")  # fmt: skip
    print(json.dumps({"median_ms": med, "retry_ms": extra, "round_trips": extra / med["upstream 500"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
