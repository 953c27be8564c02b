"""`make loadtest` and `make cluster`: sluicegate under locust, with pass/fail thresholds.

By default it starts, on loopback ports: the mock provider (`sluicegate mock`), a private
redis-server (nothing persisted), and one gateway (`sluicegate serve`) with a generated config
(keys for several tenants, caps through Redis, redaction on); then runs the scenarios of
`loadtest/locustfile.py` headless for a bounded time, writes locust's CSV and HTML reports to
`loadtest/reports/<timestamp>/`, and exits 1 when a threshold of `loadtest/thresholds.toml` is
exceeded: the error rate, a p99 latency, PII that came back, any spend beyond a cap, or a rate-limit
window that admitted more than its limit.

`--cluster` starts three gateway instances sharing the Redis behind nginx (its own config in a
temporary directory, from `loadtest/nginx-cluster.conf.template`) and sends the load through nginx.
`--redis-cluster` puts caps and limits on a real Redis Cluster instead (three primaries, three
replicas, `redis-server --cluster-enabled yes`; the gateways connect with `redis+cluster://`).
Either way the report gives the Redis commands and the Redis CPU time a request costs (INFO
commandstats and INFO cpu of the primaries, before and after the load).
`--host URL --key KEY` starts nothing and loads an existing deployment instead.

    .venv/bin/python loadtest/run.py                      # about 60 s
    .venv/bin/python loadtest/run.py --cluster            # three instances behind nginx
    .venv/bin/python loadtest/run.py --cluster --redis-cluster   # ... on a Redis Cluster
    .venv/bin/python loadtest/run.py --run-time 20 --users 16 --scenarios plain,stream
    .venv/bin/python loadtest/run.py --host https://llm.example.com --key "$SLUICEGATE_KEY" --model gpt-4o-mini
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
NGINX_TEMPLATE = HERE / "nginx-cluster.conf.template"
CLK_TCK = os.sysconf("SC_CLK_TCK")

SCENARIOS = {"plain": "PlainChat", "stream": "StreamChat", "pii": "PiiChat", "tenants": "TenantChat"}
SCENARIOS["budget"] = "BudgetChat"
SCENARIOS["limits"] = "LimitChat"

# The budget scenario's request: "hello" is 2 input tokens, the mock's reply 10 output tokens; at $1 and
# $2 per million tokens that is 2,000 + 20,000 nano-USD, reserved and settled alike.
REQUEST_NUSD = 22_000


@dataclass(frozen=True)
class Tenant:
    name: str
    org: str
    workspace: str
    user: str
    key: str


def make_keys() -> tuple[Tenant, list[Tenant], Tenant, Tenant]:
    """The run's keys: the main one, four tenants in two organizations, the budget's own, and the
    rate-limited one."""
    import secrets

    def key() -> str:
        return "sg-loadtest-" + secrets.token_hex(20)

    main = Tenant("main", "loadtest", "lt-main", "lt-runner", key())
    tenants = [
        Tenant("acme-support", "acme", "support", "dana", key()),
        Tenant("acme-research", "acme", "research", "lee", key()),
        Tenant("globex-ops", "globex", "ops", "sam", key()),
        Tenant("globex-sales", "globex", "sales", "kim", key()),
    ]
    budget = Tenant("budget", "loadtest", "lt-budget", "lt-budget-user", key())
    limited = Tenant("limited", "loadtest", "lt-limited", "lt-limited-user", key())
    return main, tenants, budget, limited


def gateway_config(
    mock_url: str,
    main: Tenant,
    tenants: list[Tenant],
    budget: Tenant,
    *,
    budget_requests: int,
    backend: str,
    redis_url: str | None,
    lease: bool,
    prefix: str,
    workers: int = 1,
    limited: Tenant | None = None,
    rate_limit: tuple[int, int] = (50, 5),
    everything: bool = False,
) -> str:
    """A gateway config: the mock over a socket, every key, a cap on each organization and workspace
    (large ones, so every request passes the spend path), the budget's exact cap, and the limited
    key's rate limit (`rate_limit`: requests per window, seconds). `everything`: the other policies
    on every call too: a rate limit on each organization (far above the load), a loop rule, model
    access rules, access logs, and LangSmith runs (posted to the mock, which answers 404: the runs
    are built and sent all the same)."""
    from sluicegate.secrets import hash_key

    lines = [
        "[server]",
        f"workers = {workers}",
        "ready_grace_s = 0",
        "drain_seconds = 5",
        "",
        "[log]",
        'level = "warning"',
        *(["access = true"] if everything else []),
        "",
        "[upstream]",
        "total_timeout_s = 60",
        "",
        "[providers.mh]",
        'kind = "mock"',
        f'base_url = "{mock_url}"',
        'api_key = "sk-loadtest-provider"',
        'models = ["mock-gpt", "mock-claude"]',
        "",
        "[routing]",
        'default_openai = "mh"',
        'default_anthropic = "mh"',
        "",
        "[redaction]",
        "enabled = true",
        "",
        "[spend]",
        f'backend = "{backend}"',
        f'key_prefix = "{prefix}"',
        "estimate = { per_message_tokens = 0, per_request_tokens = 0 }",
    ]
    if redis_url:
        lines.append(f'redis_url = "{redis_url}"')
    if lease:
        lines.append("lease = { enabled = true }")
    for name in ("mock-gpt", "mock-claude"):
        lines += ["", f"[spend.price_overrides.{name}]", 'input_usd_per_mtok = "1"', 'output_usd_per_mtok = "2"']
    caps = [("workspace", main.workspace, main.org, "1000000")]
    caps += [("org", org, org, "1000000") for org in sorted({t.org for t in tenants})]
    caps += [("workspace", t.workspace, t.org, "100000") for t in tenants]
    caps.append(("workspace", budget.workspace, budget.org, f"{budget_requests * REQUEST_NUSD / 1e9:.9f}"))
    for level, ident, org, limit in caps:
        window = "total" if ident == budget.workspace else "day"
        lines += ["", "[[spend.caps]]", f'level = "{level}"', f'id = "{ident}"', f'org = "{org}"']
        lines += [f'window = "{window}"', f'limit_usd = "{limit}"']
    for t in [main, *tenants, budget, *([limited] if limited else [])]:
        lines += ["", "[[keys]]", f'name = "{t.name}"', f'org = "{t.org}"', f'workspace = "{t.workspace}"']
        lines += [f'user = "{t.user}"', f'sha256 = "{hash_key(t.key)}"']
    orgs = sorted({t.org for t in [main, *tenants, budget, *([limited] if limited else [])]})
    if limited is not None or everything:
        lines += ["", "[limits]", f'backend = "{backend}"', f'key_prefix = "{prefix}"']
        lines += [f'redis_url = "{redis_url}"'] if redis_url else []
        lines += ["lease = { enabled = true }"] if lease else []
    if limited is not None:
        lines += ["", "[[limits.rules]]", 'level = "workspace"', f'id = "{limited.workspace}"']
        lines += [f'org = "{limited.org}"', 'kind = "requests"']
        lines += [f"limit = {rate_limit[0]}", f"window_s = {rate_limit[1]}"]
    if everything:
        for org in orgs:
            lines += ["", "[[limits.rules]]", 'level = "org"', f'id = "{org}"', 'kind = "tokens"']
            lines += ["limit = 1000000000", "window_s = 60"]
        lines += ["", "[loops]"]
        for org in orgs:
            lines += ["", "[[loops.rules]]", 'level = "org"', f'id = "{org}"', 'detect = "repeat"']
            lines += ["max_repeats = 100000", "window_s = 1"]
        lines += ["", "[models]", 'deny = ["gpt-3*"]']
        lines += ["", "[langsmith]", "enabled = true", f'endpoint = "{mock_url}/langsmith"', 'api_key = "lt-bench"']
    return "\n".join(lines) + "\n"


def budget_cap_line(budget: Tenant, budget_requests: int) -> dict[str, Any]:
    return {
        "level": "workspace",
        "id": budget.workspace,
        "org": budget.org,
        "window": "total",
        "limit_usd": f"{budget_requests * REQUEST_NUSD / 1e9:.9f}",
    }


def render_nginx_conf(workdir: Path, port: int, upstream_ports: list[int]) -> Path:
    """nginx's config for a load balancer on 127.0.0.1:`port` over the gateways, written into `workdir`."""
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in upstream_ports)
    conf = NGINX_TEMPLATE.read_text()
    for name, value in {"dir": str(workdir), "port": str(port), "servers": servers}.items():
        conf = conf.replace("{{" + name + "}}", value)
    path = workdir / "nginx.conf"
    path.write_text(conf)
    return path


def find_nginx() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def nginx_argv(nginx: str, workdir: Path, conf: Path) -> list[str]:
    return [nginx, "-e", str(workdir / "error.log"), "-p", str(workdir), "-c", str(conf)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ── processes ────────────────────────────────────────────────────────────────────────────────────


@dataclass
class Proc:
    name: str
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Processes:
    """Servers in their own process groups, logging to `logs/<name>.log`; every one ended at the end."""

    logs: Path
    procs: list[Proc] = field(default_factory=list)

    def spawn(self, name: str, argv: list[str], port: int, *, cpu: str | None = None, timeout: float = 30.0) -> Proc:
        if cpu is not None and shutil.which("taskset"):
            argv = ["taskset", "-c", cpu, *argv]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLUICEGATE_", "LOADTEST_"))}
        with (self.logs / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
            )
        p = Proc(name, proc, port)
        self.procs.append(p)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return p
            time.sleep(0.05)
        tail = (self.logs / f"{name}.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{name} did not listen on 127.0.0.1:{port}:\n{tail}")

    def stop_all(self) -> None:
        for p in reversed(self.procs):
            if p.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for p in reversed(self.procs):
            try:
                p.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.proc.pid, signal.SIGKILL)
                p.proc.wait(5)


@dataclass
class Stack:
    host: str
    main: Tenant
    tenants: list[Tenant]
    budget: Tenant
    limited: Tenant
    redis_url: str | None
    prefix: str
    gateways: list[Proc]
    redis_ports: list[int] = field(default_factory=list)  # the Redis primaries (one without a cluster)


@contextlib.contextmanager
def local_stack(args: argparse.Namespace, logs: Path) -> Iterator[Stack]:
    """Mock provider, Redis (unless `--backend local`), the gateway(s), nginx with `--cluster`."""
    procs = Processes(logs)
    work = Path(tempfile.mkdtemp(prefix="sluicegate-loadtest-"))
    other_cpu = "1" if args.pin else None
    gw_cpu = "0" if args.pin else None
    nodes = contextlib.ExitStack()
    try:
        port = free_port()
        mock = procs.spawn("mock", [str(BIN / "sluicegate"), "mock", "--port", str(port)], port, cpu=other_cpu)
        redis = None
        redis_ports: list[int] = []
        if args.redis_cluster:
            sys.path.insert(0, str(ROOT))  # the test suite's real-cluster helper, reused
            from tests.redis_cluster import redis_cluster, skip_reason

            why = skip_reason()
            if why:
                sys.exit(f"loadtest: --redis-cluster: {why}")
            cluster = nodes.enter_context(redis_cluster(work / "redis-cluster"))
            redis, redis_ports = cluster.url, sorted(cluster.primaries())
        elif args.backend == "redis":
            if shutil.which("redis-server") is None:
                sys.exit("loadtest: needs redis-server (apt-get install redis-server), or --backend local")
            port = free_port()
            argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            procs.spawn("redis", [*argv, "--dir", str(work), "--daemonize", "no"], port, cpu=other_cpu)
            redis, redis_ports = f"redis://127.0.0.1:{port}/0", [port]
        main, tenants, budget, limited = make_keys()
        prefix = "lt" + datetime.datetime.now(datetime.UTC).strftime("%H%M%S")
        config = work / "sluicegate.toml"
        config.write_text(
            gateway_config(
                mock.url,
                main,
                tenants,
                budget,
                budget_requests=args.budget_requests,
                backend=args.backend,
                redis_url=redis,
                lease=args.lease,
                prefix=prefix,
                workers=args.workers,
                limited=limited,
                rate_limit=(args.limit_requests, args.limit_window),
                everything=args.everything,
            )
        )
        gateways = []
        for i in range(args.instances):
            port = free_port()
            argv = [str(BIN / "sluicegate"), "serve", "--config", str(config), "--port", str(port)]
            gateways.append(procs.spawn(f"gateway-{i + 1}", argv, port, cpu=gw_cpu))
        host = gateways[0].url
        if args.cluster:
            nginx = find_nginx()
            if nginx is None:
                sys.exit("loadtest: --cluster needs nginx (apt-get install nginx-light)")
            port = free_port()
            conf = render_nginx_conf(work, port, [g.port for g in gateways])
            host = procs.spawn("nginx", nginx_argv(nginx, work, conf), port, cpu=other_cpu).url
        yield Stack(host, main, tenants, budget, limited, redis, prefix, gateways, redis_ports)
    finally:
        procs.stop_all()
        nodes.close()
        shutil.rmtree(work, ignore_errors=True)


# ── Redis: commands and CPU (per request, for capacity figures) ─────────────────────────────────

# Commands that are no part of serving a request: the clients' discovery and this report's own.
_NOT_SERVING = frozenset({"info", "cluster", "ping", "command", "hello", "client", "readonly", "config"})
_SCRIPT_CALLS = frozenset({"evalsha", "eval", "evalsha_ro", "eval_ro", "fcall", "fcall_ro", "script"})
_DIRECT = frozenset({"publish"})  # called outside scripts only (a snapshot's HMGET is told from scripts' by nothing)


def redis_figures(ports: list[int]) -> dict[str, float]:
    """Per command (INFO commandstats: calls) and `cpu_s` (INFO cpu: user plus sys), summed over
    the Redis primaries on `ports`."""
    import redis as sync_redis

    out: dict[str, float] = {"cpu_s": 0.0}
    for port in ports:
        client = sync_redis.Redis(port=port, socket_timeout=5)
        try:
            for name, stats in client.info("commandstats").items():
                command = name.removeprefix("cmdstat_")
                if command.split("|")[0] not in _NOT_SERVING:
                    out[command] = out.get(command, 0) + stats["calls"]
            cpu = client.info("cpu")
            out["cpu_s"] += float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])
        finally:
            client.close()
    return out


def redis_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """What the load cost Redis: commands by name, and CPU seconds."""
    return {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0) > 0}


# ── CPU of the gateways (per request, for capacity figures) ──────────────────────────────────────


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                children.setdefault(int(stat[stat.rindex(")") + 2 :].split()[1]), []).append(int(entry))
    tree, todo = [], [root]
    while todo and len(tree) < 10_000:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def tree_cpu_seconds(root: int) -> float:
    total = 0.0
    for pid in process_tree(root):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


# ── locust and the verdict ───────────────────────────────────────────────────────────────────────


def run_locust(args: argparse.Namespace, host: str, env: dict[str, str], out: Path, classes: list[str]) -> int:
    argv = [sys.executable, "-m", "locust", "-f", str(HERE / "locustfile.py"), "--headless", "-H", host]
    argv += ["-u", str(args.users), "-r", str(args.spawn_rate), "-t", f"{args.run_time}s", "--stop-timeout", "5"]
    argv += ["--csv", str(out / "locust"), "--html", str(out / "report.html"), "--only-summary"]
    argv += ["--loglevel", "WARNING", "--exit-code-on-error", "0", *classes]
    if args.pin and shutil.which("taskset"):
        argv = ["taskset", "-c", "1", *argv]
    full_env = {**{k: v for k, v in os.environ.items() if not k.startswith("LOADTEST_")}, **env}
    with (out / "locust.log").open("wb") as log:
        proc = subprocess.run(
            argv, env=full_env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, timeout=args.run_time + 90
        )
    return proc.returncode


async def redis_budget(stack: Stack, budget_requests: int) -> tuple[int, int]:
    from sluicegate.spend import SpendSettings
    from sluicegate.spend.redis_store import RedisStore

    settings = SpendSettings.model_validate(
        {
            "backend": "redis",
            "redis_url": stack.redis_url,
            "key_prefix": stack.prefix,
            "caps": [budget_cap_line(stack.budget, budget_requests)],
        }
    )
    store = RedisStore.from_settings(settings)
    try:
        return await store.snapshot(settings.lines()[0])
    finally:
        await store.close()


def verdict(
    thresholds: dict[str, Any],
    stats: list[dict[str, Any]],
    counts: dict[str, Any],
    spend: dict[str, Any],
    leased_instances: bool = False,
) -> list[str]:
    """What exceeded a threshold, as sentences; empty when the run passed. With leases on several
    instances a success after another instance's first 402 is expected (over-blocking near the cap,
    never overspending: the spend checks still hold exactly)."""
    limits = thresholds.get("limits", {})
    per_name = thresholds.get("p99_ms", {})
    problems = []
    total = next((r for r in stats if r["name"] == "Aggregated"), None)
    if total is None:
        return ["locust wrote no statistics (see locust.log in the report folder)"]
    requests, failures = total["requests"], total["failures"]
    if requests < limits.get("min_requests", 1):
        problems.append(f"only {requests:.0f} requests (min_requests {limits.get('min_requests')})")
    rate = failures / requests if requests else 1.0
    if rate > limits.get("max_error_rate", 0.0):
        problems.append(f"error rate {rate:.4%} > max_error_rate {limits.get('max_error_rate', 0.0):.4%}")
    for row in stats:
        name = row["name"]
        if name in ("Aggregated", "budget 402", "limits 429"):
            continue
        limit = per_name.get(name.split(" ")[0] if name.startswith("tenant ") else name, limits.get("max_p99_ms"))
        if limit is not None and row["p99_ms"] > limit:
            problems.append(f"p99 of {name!r} {row['p99_ms']:.0f} ms > {limit} ms")
    if counts.get("pii_leaks", 0) > limits.get("max_pii_leaks", 0):
        problems.append(f"{counts['pii_leaks']} responses gave planted PII back ({counts.get('pii_leaked_types')})")
    over = spend.get("overspend_nusd", 0)
    if over > limits.get("max_overspend_nusd", 0):
        problems.append(f"overspend {over} nano-USD beyond the budget cap ({spend})")
    for check in ("budget_premature_402", "budget_late_successes"):
        if counts.get(check) and not (check == "budget_late_successes" and leased_instances):
            problems.append(f"{check}: {counts[check]}")
    if spend and "reached_exactly" not in spend:
        problems.append("the budget's cap was never reached: run longer, or lower --budget-requests")
    if spend.get("exact") is False:
        problems.append(f"the budget's spend is not exact: {spend}")
    problems += limit_problems(counts)
    return problems


def limit_problems(counts: dict[str, Any]) -> list[str]:
    """The rate-limit scenario's checks: no window admitted more than the limit, and it was reached."""
    if not counts.get("limit_admitted") and not counts.get("limit_refused"):
        return []
    problems = []
    most, limit = counts.get("limit_most_in_window", 0), counts.get("limit_requests", 0)
    if most > limit:
        problems.append(f"a rate-limit window admitted {most} requests, above its limit of {limit}")
    if not counts.get("limit_refused"):
        problems.append("the rate limit was never reached: run longer, or lower --limit-requests")
    return problems


def budget_spend(counts: dict[str, Any], budget_requests: int, redis: tuple[int, int] | None) -> dict[str, Any]:
    """The budget scenario's spend set against its cap: from the successes, and from Redis when it is ours."""
    if not budget_requests or (not counts.get("budget_successes") and not counts.get("budget_refused")):
        return {}
    cost = REQUEST_NUSD if redis is not None else counts.get("budget_request_nusd") or REQUEST_NUSD  # a 402 says
    cap = budget_requests * cost
    successes = counts.get("budget_successes", 0)
    out: dict[str, Any] = {"cap_nusd": cap, "successes": successes, "cap_requests": budget_requests}
    over = max(0, successes - budget_requests) * cost
    if redis is not None:
        spent, reserved = redis
        out |= {"redis_spent_nusd": spent, "redis_reserved_nusd": reserved}
        over = max(over, spent + reserved - cap)
        out["exact"] = reserved == 0 and spent == successes * REQUEST_NUSD
    if counts.get("budget_refused"):
        out["reached_exactly"] = successes == budget_requests
        if out["reached_exactly"] is False:
            out["exact"] = False
    out["overspend_nusd"] = over
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--run-time", type=int, default=45, help="seconds of load (default 45: about 60 s in all)")
    p.add_argument("--users", type=int, default=20, help="locust users (default 20)")
    p.add_argument("--spawn-rate", type=float, default=20, help="users started per second (default 20)")
    p.add_argument("--wait", type=float, default=0.0, help="pause between a user's requests, seconds (default 0)")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated (default {','.join(SCENARIOS)})")
    p.add_argument("--thresholds", type=Path, default=HERE / "thresholds.toml")
    p.add_argument("--reports", type=Path, default=HERE / "reports", help="reports go to <this>/<timestamp>/")
    p.add_argument("--budget-requests", type=int, default=100, help="requests the budget's cap pays for (100)")
    p.add_argument("--limit-requests", type=int, default=50, help="the rate limit's requests per window (50)")
    p.add_argument("--limit-window", type=int, default=5, help="the rate limit's window, seconds (5)")
    local = p.add_argument_group("the stack started on loopback")
    local.add_argument("--cluster", action="store_true", help="three gateways sharing Redis, behind nginx")
    local.add_argument("--instances", type=int, help="gateway instances (default 1, or 3 with --cluster)")
    local.add_argument("--workers", type=int, default=1, help="granian workers per gateway (default 1)")
    local.add_argument("--backend", choices=["redis", "local"], default="redis", help="spend backend (default redis)")
    local.add_argument("--redis-cluster", action="store_true", help="caps and limits on a Redis Cluster (3+3 nodes)")
    local.add_argument("--lease", action="store_true", help="Redis with leases")
    local.add_argument("--everything", action="store_true", help="limits, loops, model rules, logs, LangSmith too")
    local.add_argument("--pin", action="store_true", help="gateways on CPU 0, everything else on CPU 1 (taskset)")
    remote = p.add_argument_group("an existing deployment (nothing is started)")
    remote.add_argument("--host", help="its base URL, e.g. https://llm.example.com")
    remote.add_argument("--key", help="a gateway key for the plain, stream and PII scenarios (or LOADTEST_KEY)")
    remote.add_argument("--tenant-keys", help="name=key,... for the tenants scenario (default: --key)")
    remote.add_argument("--budget-key", help="a key whose cap pays for --budget-requests requests exactly")
    remote.add_argument("--limit-key", help="a key under a rate limit of --limit-requests per --limit-window")
    remote.add_argument("--model", default=None, help="the model to call (default mock-gpt)")
    remote.add_argument("--no-mock-knobs", action="store_true", help="the model is not sluicegate's mock provider")
    args = p.parse_args(argv)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenarios {unknown}; known: {', '.join(SCENARIOS)}")
    if args.redis_cluster:
        args.backend = "redis"
    if args.cluster:
        args.backend = "redis"
        args.instances = args.instances or 3
    args.instances = args.instances or 1
    if args.host:
        args.key = args.key or os.environ.get("LOADTEST_KEY")
        if not args.key:
            p.error("--host needs --key (or LOADTEST_KEY)")
        if "budget" in args.scenarios and not args.budget_key:
            args.scenarios.remove("budget")
            print("loadtest: no --budget-key, the budget scenario is left out", flush=True)
        if "limits" in args.scenarios and not args.limit_key:
            args.scenarios.remove("limits")
            print("loadtest: no --limit-key, the rate-limit scenario is left out", flush=True)
    elif args.backend == "local" and args.workers > 1:
        # Every gateway here has caps: sluicegate refuses the local backend across several workers.
        p.error("--backend local counts caps in each worker's memory: use --backend redis, or --workers 1")
    elif "budget" in args.scenarios and args.backend == "local" and args.instances > 1:
        p.error("the budget scenario needs --backend redis with several instances")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    thresholds = tomllib.loads(args.thresholds.read_text())
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.reports / stamp
    (out / "logs").mkdir(parents=True, exist_ok=True)
    classes = [SCENARIOS[s] for s in args.scenarios]
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler)
    env = {"LOADTEST_SUMMARY": str(out / "scenarios.json"), "LOADTEST_WAIT_S": str(args.wait)}
    env["LOADTEST_BUDGET_REQUESTS"] = str(args.budget_requests)
    env["LOADTEST_LIMIT_REQUESTS"], env["LOADTEST_LIMIT_WINDOW_S"] = str(args.limit_requests), str(args.limit_window)
    env["LOADTEST_MODEL"] = args.model or ("mock-gpt" if args.host else "mh/mock-gpt")
    env["LOADTEST_LEASED_INSTANCES"] = "1" if args.lease and args.instances > 1 else "0"
    env["LOADTEST_MOCK"] = "0" if args.no_mock_knobs else "1"
    started = time.monotonic()
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    redis: tuple[int, int] | None = None
    cpu: dict[str, Any] = {}
    if args.host:
        env["LOADTEST_KEY"] = args.key
        env["LOADTEST_TENANT_KEYS"] = args.tenant_keys or f"default={args.key}"
        env["LOADTEST_BUDGET_KEY"] = args.budget_key or ""
        env["LOADTEST_LIMIT_KEY"] = args.limit_key or ""
        print(f"loadtest: {', '.join(args.scenarios)} against {args.host} for {args.run_time} s", flush=True)
        run_locust(args, args.host, env, out, classes)
    else:
        with local_stack(args, out / "logs") as stack:
            env["LOADTEST_KEY"] = stack.main.key
            env["LOADTEST_TENANT_KEYS"] = ",".join(f"{t.name}={t.key}" for t in stack.tenants)
            env["LOADTEST_BUDGET_KEY"] = stack.budget.key
            env["LOADTEST_LIMIT_KEY"] = stack.limited.key
            what = f"{args.instances} gateway(s) x {args.workers} worker(s), spend {args.backend}"
            what += " with leases" if args.lease else ""
            what += ", behind nginx" if args.cluster else ""
            what += ", on a Redis Cluster" if args.redis_cluster else ""
            what += ", everything on" if args.everything else ""
            print(f"loadtest: {', '.join(args.scenarios)} through {what}, {args.run_time} s", flush=True)
            cpu0 = sum(tree_cpu_seconds(g.proc.pid) for g in stack.gateways)
            redis0 = redis_figures(stack.redis_ports)
            run_locust(args, stack.host, env, out, classes)
            cpu["gateway_cpu_s"] = sum(tree_cpu_seconds(g.proc.pid) for g in stack.gateways) - cpu0
            if stack.redis_ports:
                time.sleep(1.5)  # settlements and lease reports still on their way
                cpu["redis"] = redis_delta(redis0, redis_figures(stack.redis_ports))
            if stack.redis_url and "budget" in args.scenarios:
                time.sleep(0.5)  # the last settlements
                redis = asyncio.run(redis_budget(stack, args.budget_requests))
    counts = json.loads((out / "scenarios.json").read_text()) if (out / "scenarios.json").exists() else {}
    stats = counts.pop("stats", [])
    spend = budget_spend(counts, args.budget_requests, redis) if "budget" in args.scenarios else {}
    problems = verdict(thresholds, stats, counts, spend, leased_instances=bool(args.lease and args.instances > 1))
    cpu["loadavg_before"], cpu["loadavg_after"] = load_before, Path("/proc/loadavg").read_text().split()[:3]
    summary = report(stats, counts, spend, cpu, args, time.monotonic() - started)
    (out / "summary.json").write_text(json.dumps({**summary, "problems": problems}, indent=2, default=str) + "\n")
    print(f"reports: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    for problem in problems:
        print(f"FAILED: {problem}")
    print("PASSED" if not problems else f"FAILED ({len(problems)} thresholds exceeded)", flush=True)
    return 1 if problems else 0


def report(
    stats: list[dict[str, Any]], counts: dict[str, Any], spend: dict[str, Any], cpu: dict[str, Any],
    args: argparse.Namespace, seconds: float,
) -> dict[str, Any]:  # fmt: skip
    print(f"\n{'name':<22} {'requests':>9} {'failures':>9} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7}")
    rows = stats
    for r in rows:
        line = f"{r['name']:<22} {r['requests']:>9} {r['failures']:>9} {r['rps']:>8.1f}"
        print(f"{line} {r['p50_ms']:>7.0f} {r['p99_ms']:>7.0f}")
    total = next((r for r in rows if r["name"] == "Aggregated"), None)
    if "gateway_cpu_s" in cpu and total and total["requests"]:
        cpu["gateway_cpu_us_per_request"] = cpu["gateway_cpu_s"] * 1e6 / total["requests"]
        cpu["gateway_cpu_busy"] = cpu["gateway_cpu_s"] / args.run_time / (args.instances * args.workers)
        print(f"gateway CPU: {cpu['gateway_cpu_us_per_request']:,.0f} µs per request, "
              f"{cpu['gateway_cpu_busy']:.0%} of each worker's core busy")  # fmt: skip
    if cpu.get("redis") and total and total["requests"]:
        used = dict(cpu["redis"])
        redis_cpu = used.pop("cpu_s", 0.0)
        n = total["requests"]
        # A script call is one round trip; INFO counts the commands a script runs as well.
        calls = sum(v for k, v in used.items() if k.split("|")[0] in _SCRIPT_CALLS)
        cpu["redis_round_trips_per_request"] = (calls + sum(v for k, v in used.items() if k in _DIRECT)) / n
        cpu["redis_commands_per_request"] = sum(used.values()) / n
        cpu["redis_cpu_us_per_request"] = redis_cpu * 1e6 / n
        print(f"Redis: {cpu['redis_round_trips_per_request']:.3f} calls per request "
              f"({cpu['redis_commands_per_request']:.2f} commands run inside Redis), "
              f"{cpu['redis_cpu_us_per_request']:,.1f} µs of the primaries' CPU per request")  # fmt: skip
    if counts.get("pii_checked"):
        print(f"PII: {counts['pii_checked']} answers checked, {counts['pii_leaks']} gave planted values back")
    if spend:
        print(f"budget: {json.dumps(spend)}")
    if counts.get("limit_admitted") or counts.get("limit_refused"):
        print(f"rate limit: {counts['limit_admitted']} admitted, {counts['limit_refused']} refused (429), at most "
              f"{counts['limit_most_in_window']} in one {counts['limit_window_s']:g} s window "
              f"(limit {counts['limit_requests']})")  # fmt: skip
    print(f"{seconds:.0f} s in all; load average {' '.join(cpu['loadavg_before'])} before, "
          f"{' '.join(cpu['loadavg_after'])} after (os.cpu_count() {os.cpu_count()})")  # fmt: skip
    return {
        "rows": rows,
        "scenarios": counts,
        "budget": spend,
        "cpu": cpu,
        "seconds": seconds,
        "args": {k: v for k, v in vars(args).items() if "key" not in k},
    }  # never a key in a report


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
