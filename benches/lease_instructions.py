"""Instructions per call of the leased stores' request path, counted by callgrind: a rate-limit
acquire+finish (requests and tokens per minute, as in gateway_overhead.py's everything-on config,
through `LimitPolicy` or the store alone) and a spend reserve+settle (a workspace cap, through
`SpendPolicy` or the store alone), against a real redis-server, in one process each.

    .venv/bin/python benches/lease_instructions.py [--cases limits,limits-store,spend,spend-store]

Each case runs twice, N1 and N2 calls after a warm-up, and the figure is
(count(N2) - count(N1)) / (N2 - N1): start-up and the first Redis calls cancel out. The calls run at
the machine's pace under callgrind (thousands a slot), so a slot's one Redis call is spread over
them as it is under load. The `limits` case includes the token estimate (`estimate`, shared with
the spend step on the request path), printed apart as `estimate`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

PROVIDER = """
[providers.bench]
kind = "openai_compatible"
base_url = "http://127.0.0.1:9/json/v1"
api_key = "sk-bench"
[routing]
models = { "bench-json" = "bench" }
"""


def config_text(port: int) -> str:
    """gateway_overhead.py's everything-on limits and spend cap, on Redis at `port`."""
    import gateway_overhead as go

    limits = go.LIMITS.format(redis_port=port)
    redis = f'redis_url = "redis://127.0.0.1:{port}/0"\nlease = {{ enabled = true }}'
    return PROVIDER + limits + go.SPEND.format(backend="redis", redis=redis)


CASES = ("estimate", "limits", "limits-store", "spend", "spend-store")


async def drive(case: str, n: int, config: Path) -> None:
    """Build the policies from `config`, warm up, then run `case` `n` times."""
    from sluicegate.config import load_settings
    from sluicegate.formats.base import Usage
    from sluicegate.formats.openai_chat import OPENAI_CHAT
    from sluicegate.policy.auth import Identity
    from sluicegate.policy.limits import LimitPolicy
    from sluicegate.policy.spend import SpendPolicy
    from sluicegate.proxy.providers import Router
    from sluicegate.proxy.relay import Outcome
    from sluicegate.spend.estimate import estimate

    settings = load_settings(config, environ={})
    body = json.loads((HERE / "upstream" / "request.json").read_text())
    who = Identity("bench", "default", "default", None)
    limits = LimitPolicy(settings.limits, settings.spend.estimate)
    spend = SpendPolicy(settings.spend)
    await limits.start()
    await spend.start()
    assert limits.store is not None and spend.store is not None
    provider = Router(settings, {}).route("bench-json", OPENAI_CHAT)[0]
    outcome = Outcome(200, Usage(20, 30))
    plan = limits._plan(who)
    caps = spend.lines_for(who)
    est = estimate(body, OPENAI_CHAT.name, settings.spend.estimate)

    async def once() -> None:
        if case == "estimate":
            estimate(body, OPENAI_CHAT.name, settings.spend.estimate)
        elif case == "limits":
            guard = await limits.acquire(who, OPENAI_CHAT, body, "bench", "bench-json", None)
            await guard.finish(outcome)
        elif case == "limits-store":
            result = await limits.store.acquire(plan.lines, [1, 100], plan.static)
            assert result.grant is not None
            await limits.store.finish(result.grant, 50)
        elif case == "spend":
            held = await spend.reserve(OPENAI_CHAT, body, provider, "bench-json", caps, None, est, "bench-json")
            await held.finish(outcome)
        else:
            reserved = await spend.store.reserve(caps, 1_000)
            assert reserved.reservation is not None
            await spend.store.settle(reserved.reservation, 800)

    for _ in range(2_000):
        await once()
    for _ in range(n):
        await once()
    await limits.stop()
    await spend.stop()


def count(case: str, n: int, config: Path, workdir: Path) -> int:
    import gateway_overhead as go

    argv = [sys.executable, __file__, "--run", case, "--n", str(n), "--config", str(config)]
    return go.callgrind_count(argv, workdir / f"callgrind.{case}.{n}", {**os.environ, "PYTHONHASHSEED": "0"})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--n1", type=int, default=2_000)
    parser.add_argument("--n2", type=int, default=6_000)
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        import uvloop

        uvloop.run(drive(args.run, args.n, Path(args.config)))
        os._exit(0)  # skip the interpreter's teardown: its cost is not a call's
    sys.path.insert(0, str(HERE))
    import gateway_overhead as go

    results: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="sluicegate-lease-") as tmp:
        workdir = Path(tmp)
        procs = go.Processes(workdir)
        try:
            port = go.free_port()
            argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            procs.spawn("redis", argv, cwd=workdir)
            go.wait_for_tcp(port)
            config = workdir / "bench.toml"
            config.write_text(config_text(port))
            for case in args.cases.split(","):
                low = count(case, args.n1, config, workdir)
                high = count(case, args.n2, config, workdir)
                results[case] = (high - low) // (args.n2 - args.n1)
                print(f"{case:>13}  {results[case]:>8,} instructions a call", flush=True)
        finally:
            procs.stop_all()
    print(json.dumps({"instructions": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
