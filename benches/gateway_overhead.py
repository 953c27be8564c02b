"""What sluicegate adds to an LLM call, measured with wrk against an upstream that costs almost nothing.

One run starts, on free loopback ports:

- **upstream**: nginx (`benches/upstream/nginx.conf.template`) answering `POST /json/v1/chat/completions`
  with a canned chat completion and `POST /sse/v1/chat/completions` with a canned 23-event stream
  (a role chunk, 20 content chunks, a usage chunk, `data: [DONE]`);
- **reference**: `benches/reference_proxy.py`, the floor of a Python proxy (Starlette and the same
  aiohttp client), and the same proxy with httpx as its client;
- **sluicegate**: `sluicegate serve` with one worker, routing `bench-json` and `bench-sse` to nginx, with
  no policy (`redaction.enabled = false`): the core whose overhead the reference is the floor for;
- **sluicegate+redaction**: the same with the default redaction policy on, as `sluicegate serve` ships;
- **sluicegate+spend**: spend caps through Redis with leases;
- **sluicegate+enforce**: the enforcing set: redaction, spend caps and rate limits through Redis with
  leases, a LangSmith run a call (to nginx's stand-in);
- **sluicegate+all**: everything on: the enforcing set, access logs, a runaway-loop rule and model
  access rules (a deny list and an output ceiling that clamps);
- **sluicegate+route**: the core with each model a route of one deployment.

Then, for each scenario (non-streamed, streamed) and concurrency, wrk drives each target in turn
(warm-up, then the measured run) and the table gives requests/s, latency p50/p99 and the CPU time per
request of the server under test: user+system time of its whole process tree from /proc, before and
after the run, over the requests completed. The servers under test are pinned to CPU 0, wrk and
nginx to CPU 1. Every response is checked (status 200 and the expected body); a run with errors is
flagged. Results go to a JSON file; `--markdown` prints the table for BENCHMARKS.md.

    .venv/bin/python benches/gateway_overhead.py [--duration 5] [--concurrency 1,16,64] [--quick]
    .venv/bin/python benches/gateway_overhead.py --profile 10   # py-spy on sluicegate at concurrency 16
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
UPSTREAM_DIR = HERE / "upstream"
BIN = Path(sys.executable).parent
GATEWAY_KEY = "sg-bench-overhead-key-not-a-secret"
SERVER_CPU, LOAD_CPU = "0", "1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SCENARIOS = {"json": "non-stream", "sse": "stream", "pii": "non-stream, 2 KB prompt with PII"}
REQUESTS = {"json": "request.json", "sse": "request_stream.json", "pii": "request_2k.json"}
TARGET_ORDER = (
    "upstream",
    "reference",
    "reference-httpx",
    "sluicegate",
    "sluicegate+redaction",
    "sluicegate+spend",
    "sluicegate+enforce",
    "sluicegate+all",
    "sluicegate+route",
)
POLICY_VARIANTS = ("redaction", "spend", "enforce", "all")
GATEWAYS = {
    "core": "sluicegate",
    "redaction": "sluicegate+redaction",
    "spend": "sluicegate+spend",
    "enforce": "sluicegate+enforce",
    "all": "sluicegate+all",
    "route": "sluicegate+route",
}


@dataclasses.dataclass
class Target:
    name: str
    base: str  # http://127.0.0.1:port
    paths: dict[str, str]  # scenario -> request path
    pid: int  # the root of the process tree whose CPU time is measured
    key: str = ""


@dataclasses.dataclass
class Run:
    target: str
    scenario: str
    concurrency: int
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float
    cpu_busy: float  # the target's CPU seconds per wall second
    cpu0_other: float  # CPU 0 time used by anything else, per wall second (noise)
    errors: int
    error_sample: str = ""

    @property
    def flagged(self) -> bool:
        return self.errors > 0 or self.requests == 0


# ── tools and processes ──────────────────────────────────────────────────────────────────────────


def find_tool(name: str) -> str | None:
    return shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )


def ensure_tools() -> tuple[str, str]:
    """nginx and wrk from Debian, installed with apt-get when missing (as root)."""
    if not (find_tool("nginx") and find_tool("wrk")):
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            sys.exit("gateway_overhead: needs nginx and wrk (apt-get install -y nginx-light wrk)")
        print("installing nginx-light and wrk with apt-get", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "nginx-light", "wrk"], check=True, env=env)
    if not shutil.which("taskset"):
        sys.exit("gateway_overhead: needs taskset (util-linux)")
    nginx, wrk = find_tool("nginx"), find_tool("wrk")
    assert nginx and wrk
    return nginx, wrk


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Processes:
    """Spawns servers in their own process groups and ends every one of them, whatever happens."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
        with (self.logs / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
            )
        self.procs.append((name, proc))
        return proc.pid

    def wait_ready(self, name: str, port: int, path: str = "/", timeout: float = 30.0) -> None:
        """Poll until the server answers HTTP on `port` (any status), or fail with its log."""
        proc = dict(self.procs)[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
                if s.recv(16).startswith(b"HTTP/1."):
                    return
            time.sleep(0.1)
        log = (self.logs / f"{name}.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{name} did not start on port {port}:\n{log}")

    def stop_all(self) -> None:
        for _, proc in reversed(self.procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for _, proc in reversed(self.procs):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def nginx_quote(text: str) -> str:
    """`text` as an nginx single-quoted string; it must hold no `$`, which nginx reads as a variable."""
    assert "$" not in text, "nginx would read $ as a variable"
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def nginx_return(path: Path, name: str) -> str:
    """nginx lines that answer 200 with the file's text: `set` its parts (4 KB per parameter at most), return them."""
    text = path.read_text()
    parts = [text[i : i + 2048] for i in range(0, len(text), 2048)]
    lines = [f"set ${name}{i} {nginx_quote(part)};" for i, part in enumerate(parts)]
    lines.append('return 200 "' + "".join(f"${name}{i}" for i in range(len(parts))) + '";')
    return "\n".join(" " * 12 + line for line in lines)


def start_upstream(procs: Processes, nginx: str, workdir: Path, cpu: str = LOAD_CPU) -> tuple[int, int]:
    """The canned nginx upstream on a free port, pinned to `cpu`; returns (port, pid)."""
    port = free_port()
    conf = (UPSTREAM_DIR / "nginx.conf.template").read_text()
    for field, value in {
        "dir": str(workdir),
        "port": str(port),
        "json_body": nginx_return(UPSTREAM_DIR / "chat_completion.json", "json"),
        "sse_body": nginx_return(UPSTREAM_DIR / "chat_stream.sse", "sse"),
    }.items():
        conf = conf.replace("{{" + field + "}}", value)
    (workdir / "nginx.conf").write_text(conf)
    argv = ["taskset", "-c", cpu, nginx, "-e", str(workdir / "error.log"), "-p", str(workdir), "-c", "nginx.conf"]
    pid = procs.spawn("nginx", argv)
    procs.wait_ready("nginx", port)
    return port, pid


SPEND = """
[spend]
backend = "{backend}"
{redis}
[spend.price_overrides.bench-json]
input_usd_per_mtok = "1"
output_usd_per_mtok = "2"
[spend.price_overrides.bench-sse]
input_usd_per_mtok = "1"
output_usd_per_mtok = "2"
[[spend.caps]]
level = "workspace"
id = "default"
org = "default"
window = "month"
limit_usd = "1000000"
"""


# The enforcing set and everything on have rate limits (requests and tokens per minute, through Redis
# with leases, far above what the run sends).
LIMITS = """
[limits]
backend = "redis"
redis_url = "redis://127.0.0.1:{redis_port}/0"
lease = {{ enabled = true }}
[[limits.rules]]
level = "workspace"
id = "default"
org = "default"
kind = "requests"
limit = 100000000
window_s = 60
[[limits.rules]]
level = "workspace"
id = "default"
org = "default"
kind = "tokens"
limit = 1000000000
window_s = 60
"""

# Everything on also has runaway-loop rules (in this process; the benchmark's identical requests stay
# under the repeat count) and model access rules (a deny list and an output ceiling).
RULES = """
[loops]
[[loops.rules]]
level = "org"
id = "default"
detect = "repeat"
max_repeats = 100000
window_s = 1
[models]
deny = ["gpt-3*"]
ceilings = [{ max_output_tokens = 100000, action = "clamp" }]
"""


def wait_for_tcp(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on {port}")


ROUTES = """[routing.models.bench-json]
deployments = [{ provider = "bench", model = "bench-json" }]
[routing.models.bench-sse]
deployments = [{ provider = "benchstream", model = "bench-sse" }]"""


def gateway_config(upstream_port: int, kind: str, redis_port: int | None = None) -> str:
    """One key, two providers (one per canned answer) picked by model name, and the policies of
    `kind`: none (`core`), redaction, spend caps through Redis with leases (`spend`), the enforcing
    set (`enforce`: redaction, caps and rate limits through Redis with leases, LangSmith runs to
    nginx's stand-in), or everything on (`all`: the enforcing set, access logs, a loop rule, model
    access rules); `route`: the
    core with each model a route of one deployment (`[routing.models.<name>]`, the happy path of
    routing: one attempt, its breaker and figures kept)."""
    from sluicegate.secrets import hash_key

    base = f"http://127.0.0.1:{upstream_port}"
    redaction = kind in ("redaction", "enforce", "all")
    policies = ""
    if kind in ("spend", "enforce", "all"):
        redis = f'redis_url = "redis://127.0.0.1:{redis_port}/0"\nlease = {{ enabled = true }}'
        policies = SPEND.format(backend="redis", redis=redis)
    if kind in ("enforce", "all"):
        policies += f'[langsmith]\nenabled = true\nendpoint = "{base}/langsmith"\napi_key = "bench"\n'
        policies += LIMITS.format(redis_port=redis_port)
    if kind == "all":
        policies += "[log]\naccess = true\n" + RULES

    return f"""[server]
workers = 1
[providers.bench]
kind = "openai_compatible"
base_url = "{base}/json/v1"
api_key = "sk-bench"
[providers.benchstream]
kind = "openai_compatible"
base_url = "{base}/sse/v1"
api_key = "sk-bench"
[routing]
default_openai = "bench"
{ROUTES if kind == "route" else 'models = { "bench-json" = "bench", "bench-sse" = "benchstream" }'}
[[keys]]
name = "bench"
sha256 = "{hash_key(GATEWAY_KEY)}"
[redaction]
enabled = {"true" if redaction else "false"}
{policies}"""


def callgrind_count(argv: list[str], out: Path, env: dict[str, str]) -> int:
    """Run `argv` (a Python command) under callgrind, writing `out`; the instructions it counted."""
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *argv]
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=1800)
    for line in out.read_text().splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError(f"no summary in {out}")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLUICEGATE_", "GRANIAN_", "REFERENCE_"))}
    return {**env, **extra}


def start_targets(
    procs: Processes, nginx: str, workdir: Path, clients: list[str], gateways: list[str]
) -> dict[str, Target]:
    upstream_port, nginx_pid = start_upstream(procs, nginx, workdir)
    upstream = f"http://127.0.0.1:{upstream_port}"
    direct = {
        "json": "/json/v1/chat/completions",
        "sse": "/sse/v1/chat/completions",
        "pii": "/json/v1/chat/completions",
    }
    targets = {"upstream": Target("upstream", upstream, direct, nginx_pid)}
    for client in clients:
        name = "reference" if client == "aiohttp" else f"reference-{client}"
        port = free_port()
        argv = ["taskset", "-c", SERVER_CPU, str(BIN / "granian"), "--interface", "asgi", "--workers", "1"]
        argv += ["--runtime-threads", "1", "--loop", "uvloop", "--http", "auto", "--no-ws", "--no-access-log"]
        argv += ["--host", "127.0.0.1", "--port", str(port), "--working-dir", str(HERE), "reference_proxy:app"]
        env = clean_env(REFERENCE_UPSTREAM=upstream, REFERENCE_CLIENT=client)
        pid = procs.spawn(name, argv, env=env, cwd=HERE)
        procs.wait_ready(name, port)
        targets[name] = Target(name, f"http://127.0.0.1:{port}", direct, pid)
    gateway = dict.fromkeys(SCENARIOS, "/v1/chat/completions")
    redis_port = None
    if {"spend", "enforce", "all"} & set(gateways):
        redis_port = free_port()
        argv = ["taskset", "-c", LOAD_CPU, "redis-server", "--port", str(redis_port), "--bind", "127.0.0.1"]
        procs.spawn("redis", [*argv, "--save", "", "--appendonly", "no"], cwd=workdir)
        wait_for_tcp(redis_port)
    for kind in gateways:
        name = GATEWAYS[kind]
        config = workdir / f"sluicegate-{kind}.toml"
        config.write_text(gateway_config(upstream_port, kind, redis_port))
        port = free_port()
        argv = ["taskset", "-c", SERVER_CPU, str(BIN / "sluicegate"), "serve", "--config", str(config)]
        argv += ["--port", str(port), "--workers", "1"]
        pid = procs.spawn(name, argv, env=clean_env(), cwd=workdir)
        procs.wait_ready(name, port, "/healthz")
        targets[name] = Target(name, f"http://127.0.0.1:{port}", gateway, pid, GATEWAY_KEY)
    return targets


# ── measuring ────────────────────────────────────────────────────────────────────────────────────


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants, from /proc."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                children[int(stat[stat.rindex(")") + 2 :].split()[1])].append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_seconds(pid: int) -> float:
    """User+system CPU time of one process (all its threads, living and ended)."""
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    return 0.0


def tree_cpu_seconds(root: int) -> float:
    return sum(cpu_seconds(pid) for pid in process_tree(root))


def cpu0_busy_seconds() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{SERVER_CPU} "):
            values = [int(v) for v in line.split()[1:]]
            return (sum(values[:8]) - values[3] - values[4]) / CLK_TCK  # everything but idle and iowait
    return 0.0


def wrk(wrk_bin: str, target: Target, scenario: str, conc: int, seconds: float, threads: int) -> dict[str, Any]:
    body = UPSTREAM_DIR / REQUESTS[scenario]
    argv = ["taskset", "-c", LOAD_CPU, wrk_bin, f"-t{min(threads, conc)}", f"-c{conc}", f"-d{max(1, round(seconds))}s"]
    argv += [
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(UPSTREAM_DIR / "chat.lua"),
        target.base + target.paths[scenario],
    ]
    argv += ["--", scenario, str(body), target.key]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    for line in out.stdout.splitlines():
        if line.startswith("WRK_RESULT "):
            return json.loads(line[len("WRK_RESULT ") :])
    raise RuntimeError(f"wrk gave no result (exit {out.returncode}): {out.stderr[-500:]}")


def measure(wrk_bin: str, target: Target, scenario: str, conc: int, seconds: float, threads: int) -> Run:
    cpu0, busy0, t0 = tree_cpu_seconds(target.pid), cpu0_busy_seconds(), time.monotonic()
    result = wrk(wrk_bin, target, scenario, conc, seconds, threads)
    cpu1, busy1, wall = tree_cpu_seconds(target.pid), cpu0_busy_seconds(), time.monotonic() - t0
    requests = result["requests"]
    used = cpu1 - cpu0
    errors = result["bad"] + sum(v for k, v in result["socket_errors"].items() if k != "status")
    lat = result["latency_us"]
    on_cpu0 = used if target.name != "upstream" else 0.0
    return Run(
        target=target.name,
        scenario=scenario,
        concurrency=conc,
        requests=requests,
        seconds=result["duration_us"] / 1e6,
        rps=requests / (result["duration_us"] / 1e6),
        p50_ms=lat["p50"] / 1000,
        p99_ms=lat["p99"] / 1000,
        cpu_us_per_request=used / requests * 1e6 if requests else float("nan"),
        cpu_busy=used / wall,
        cpu0_other=max(0.0, (busy1 - busy0 - on_cpu0) / wall),
        errors=errors,
        error_sample=result.get("bad_sample", ""),
    )


# ── reporting ────────────────────────────────────────────────────────────────────────────────────


def machine() -> dict[str, Any]:
    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), platform.processor())  # fmt: skip
    from importlib.metadata import version

    nginx_v = subprocess.run([find_tool("nginx") or "nginx", "-v"], capture_output=True, text=True).stderr.strip()
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "granian": version("granian"),
        "aiohttp": version("aiohttp"),
        "httpx": version("httpx"),
        "starlette": version("starlette"),
        "nginx": nginx_v.removeprefix("nginx version: "),
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        "commit": git_commit(),
    }


def progress_line(r: Run) -> str:
    line = f"{SCENARIOS[r.scenario]:>10} c={r.concurrency:<3} {r.target:<16} {r.rps:>8,.0f} req/s  "
    line += f"p50 {r.p50_ms:6.2f} ms  p99 {r.p99_ms:6.2f} ms  {r.cpu_us_per_request:7,.0f} µs CPU/req  "
    line += f"cpu0 other {r.cpu0_other:4.0%}  errors {r.errors}"
    return line + (f"  e.g. {r.error_sample[:80]!r}" if r.error_sample else "")


def git_commit() -> str:
    """The commit measured, with `+dirty` when python/ or rust/ differ from it."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "--", "python", "rust"], capture_output=True, text=True)
    return (head or "unknown") + ("+dirty" if dirty.stdout.strip() else "")


def table(runs: list[Run]) -> str:
    head = "| scenario | conc | target | req/s | p50 ms | p99 ms | CPU µs/req | CPU busy | CPU0 other | errors |"
    lines = [head, "|---|--:|---|--:|--:|--:|--:|--:|--:|--:|"]
    for r in runs:
        flag = f"**{r.errors}** ⚠" if r.flagged else "0"
        lines.append(
            f"| {SCENARIOS[r.scenario]} | {r.concurrency} | {r.target} | {r.rps:,.0f} | {r.p50_ms:.2f} "
            f"| {r.p99_ms:.2f} | {r.cpu_us_per_request:,.0f} | {r.cpu_busy:.0%} | {r.cpu0_other:.0%} | {flag} |"
        )
    return "\n".join(lines)


def ratios(runs: list[Run]) -> list[dict[str, Any]]:
    by = {(r.target, r.scenario, r.concurrency): r for r in runs}
    out = []
    for scenario in SCENARIOS:
        for conc in sorted({r.concurrency for r in runs if r.scenario == scenario}):
            ref, gw, up = (by.get((t, scenario, conc)) for t in ("reference", "sluicegate", "upstream"))
            hx = by.get(("reference-httpx", scenario, conc))
            row: dict[str, Any] = {"scenario": scenario, "concurrency": conc}
            if ref and gw:
                row["cpu_per_request"] = gw.cpu_us_per_request / ref.cpu_us_per_request
                row["throughput"] = gw.rps / ref.rps
            if up and ref:
                row["reference_p50_added_ms"] = ref.p50_ms - up.p50_ms
            if up and gw:
                row["sluicegate_p50_added_ms"] = gw.p50_ms - up.p50_ms
            for variant in POLICY_VARIANTS:
                run = by.get((f"sluicegate+{variant}", scenario, conc))
                if run and ref:
                    row[f"{variant}_cpu_per_request"] = run.cpu_us_per_request / ref.cpu_us_per_request
            if hx and ref:
                row["httpx_vs_aiohttp_cpu"] = hx.cpu_us_per_request / ref.cpu_us_per_request
            out.append(row)
    return out


def ratio_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| scenario | conc | sluicegate/reference CPU per req | sluicegate/reference req/s "
        "| p50 added: reference | p50 added: sluicegate "
        + "".join(f"| +{v}/reference CPU per req " for v in POLICY_VARIANTS)
        + "| httpx/aiohttp CPU per req |",
        "|---|--:|--:|--:|--:|--:|" + "--:|" * len(POLICY_VARIANTS) + "--:|",
    ]

    def fmt(row: dict[str, Any], key: str, spec: str, unit: str) -> str:
        return format(row[key], spec) + unit if key in row else "-"

    for row in rows:
        cells = [SCENARIOS[row["scenario"]], str(row["concurrency"])]
        cells += [fmt(row, "cpu_per_request", ".2f", "x"), fmt(row, "throughput", ".2f", "x")]
        cells += [fmt(row, "reference_p50_added_ms", "+.2f", " ms"), fmt(row, "sluicegate_p50_added_ms", "+.2f", " ms")]
        cells += [fmt(row, f"{v}_cpu_per_request", ".2f", "x") for v in POLICY_VARIANTS]
        cells.append(fmt(row, "httpx_vs_aiohttp_cpu", ".2f", "x"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ── profiling ────────────────────────────────────────────────────────────────────────────────────


def worker_pid(root: int) -> int:
    """The busiest process under `root`: granian's worker, where the app runs."""
    return max(process_tree(root), key=cpu_seconds)


def summarize_raw_profile(path: Path, top: int = 25) -> str:
    """Self and inclusive shares of the functions in a py-spy `--format raw` (collapsed stacks) file.

    Only the thread that runs granian's event loop counts. The worker's outermost frames hold every
    sample and are left out of the inclusive list; the self time of granian's worker entry is the
    event loop and granian's Rust code, outside any Python callback.
    """
    self_n: collections.Counter[str] = collections.Counter()
    incl_n: collections.Counter[str] = collections.Counter()
    total = others = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        if "(granian/" not in stack:  # another thread (a log listener waiting on its queue): not the loop's
            others += n
            continue
        total += n
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]  # merge a function's lines
        self_n[frames[-1]] += n
        for frame in set(frames):
            incl_n[frame] += n
    if not total:
        return "no samples (is the worker's pid right? py-spy needs root or ptrace rights)"
    lines = [f"{total} samples of the event loop's thread ({others} of other threads left out)", ""]
    lines += ["self %  function (file)"]
    lines += [f"{n / total:6.1%}  {f}" for f, n in self_n.most_common(top)]
    lines += ["", "inclusive %  function (file), below the worker's entry"]
    lines += [f"{n / total:6.1%}  {f}" for f, n in incl_n.most_common() if n < 0.95 * total][:top]
    return "\n".join(lines)


def profile(wrk_bin: str, target: Target, seconds: float, out_dir: Path, conc: int = 16) -> None:
    py_spy = find_tool("py-spy") or str(BIN / "py-spy")
    out_dir.mkdir(parents=True, exist_ok=True)
    for scenario in SCENARIOS:
        wrk(wrk_bin, target, scenario, conc, 2, 1)  # warm up
        pid = worker_pid(target.pid)
        raw = out_dir / f"{target.name}-{scenario}.txt"
        argv = [py_spy, "record", "--pid", str(pid), "--duration", f"{seconds:g}", "--rate", "200"]
        spy = subprocess.Popen([*argv, "--format", "raw", "--output", str(raw)])
        try:
            time.sleep(0.5)
            wrk(wrk_bin, target, scenario, conc, seconds - 1, 1)
        finally:
            spy.wait(seconds + 30)
        summary = summarize_raw_profile(raw)
        (out_dir / f"{target.name}-{scenario}-top.txt").write_text(summary + "\n")
        print(f"\n## py-spy, {target.name} worker, {SCENARIOS[scenario]}, concurrency {conc}\n{summary}", flush=True)


# ── main ─────────────────────────────────────────────────────────────────────────────────────────


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=float, default=5.0, help="seconds per measured run, whole (default 5)")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up before each run, whole (default 1)")
    p.add_argument("--concurrency", default="1,16,64", help="connections, comma-separated (default 1,16,64)")
    p.add_argument(
        "--scenarios", default="json,sse,pii", help="json (non-streamed), sse (streamed), pii (2 KB prompt with PII)"
    )
    p.add_argument("--clients", default="aiohttp,httpx", help="reference proxy clients (default aiohttp,httpx)")
    p.add_argument(
        "--gateways",
        default="core,redaction,spend,enforce,all",
        help="sluicegate: no policy, redaction, spend caps, caps + limits + redaction + LangSmith, all on",
    )
    p.add_argument("--repeat", type=int, default=1, help="runs per cell; the table gives medians (default 1)")
    p.add_argument("--wrk-threads", type=int, default=1, help="wrk threads, at most the concurrency (default 1)")
    p.add_argument("--quick", action="store_true", help="2 s runs, 1 s warm-up: a smoke check, not figures")
    p.add_argument("--output", type=Path, default=ROOT / ".benchmarks" / "gateway_overhead.json")
    p.add_argument("--markdown", action="store_true", help="print the tables as Markdown only")
    p.add_argument("--profile", type=float, metavar="SECONDS", help="instead: py-spy sluicegate under load")
    p.add_argument("--profile-dir", type=Path, default=ROOT / ".benchmarks" / "profile")
    p.add_argument("--report", type=Path, metavar="JSON", help="instead: print the tables of a saved run again")
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.warmup = 2.0, 1.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        saved = json.loads(args.report.read_text())
        every = [Run(**r) for r in saved.get("all_runs", saved["runs"])]
        cells: dict[tuple[str, str, int], list[Run]] = collections.defaultdict(list)
        for r in every:
            cells[(r.target, r.scenario, r.concurrency)].append(r)
        print(f"# {saved['command']}: {json.dumps(saved['machine'])}")
        return report(args, [median_run(t) for t in cells.values()], every, saved["machine"])
    nginx, wrk_bin = ensure_tools()
    concurrency = [int(c) for c in args.concurrency.split(",")]
    scenarios = [s for s in args.scenarios.split(",") if s in SCENARIOS]
    clients = [c for c in args.clients.split(",") if c]
    gateways = [g for g in args.gateways.split(",") if g in GATEWAYS]
    # SIGTERM and SIGHUP end the run like Ctrl-C: through the finally below, which stops every server.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler)
    with tempfile.TemporaryDirectory(prefix="sluicegate-bench-") as tmp:
        procs = Processes(Path(tmp))
        try:
            targets = start_targets(procs, nginx, Path(tmp), [] if args.profile else clients, gateways)
            if args.profile:
                for kind in gateways:
                    profile(wrk_bin, targets[GATEWAYS[kind]], args.profile, args.profile_dir)
                return 0
            return run_all(args, wrk_bin, targets, scenarios, concurrency)
        finally:
            procs.stop_all()


def run_all(
    args: argparse.Namespace, wrk_bin: str, targets: dict[str, Target], scenarios: list[str], concurrency: list[int]
) -> int:
    info = machine()
    print(f"# gateway overhead, {info['date']}: {info['nproc']} x {info['cpu']}, Python {info['python']}, "
          f"granian {info['granian']}, {info['nginx']}; commit {info['commit']}; load {' '.join(info['loadavg'])}",
          flush=True)  # fmt: skip
    order = [targets[name] for name in TARGET_ORDER if name in targets]
    every: list[Run] = []
    runs: list[Run] = []
    for scenario in scenarios:
        for conc in concurrency:
            trials: dict[str, list[Run]] = collections.defaultdict(list)
            for _ in range(args.repeat):
                for target in order:  # interleaved, so drift in the machine's load hits every target alike
                    wrk(wrk_bin, target, scenario, conc, args.warmup, args.wrk_threads)
                    run = measure(wrk_bin, target, scenario, conc, args.duration, args.wrk_threads)
                    trials[target.name].append(run)
                    if not args.markdown:
                        print(progress_line(run), flush=True)
            for target in order:
                runs.append(median_run(trials[target.name]))
                every.extend(trials[target.name])
    return report(args, runs, every, info)


def median_run(trials: list[Run]) -> Run:
    """Repeated runs of one cell as one: the median of each figure, the sum of the errors."""
    if len(trials) == 1:
        return trials[0]
    med = {f: statistics.median(getattr(r, f) for r in trials) for f in ("rps", "p50_ms", "p99_ms")}
    med |= {
        f: statistics.median(getattr(r, f) for r in trials) for f in ("cpu_us_per_request", "cpu_busy", "cpu0_other")
    }
    samples = [r.error_sample for r in trials if r.error_sample]
    return dataclasses.replace(
        trials[0],
        requests=sum(r.requests for r in trials),
        seconds=sum(r.seconds for r in trials),
        errors=sum(r.errors for r in trials),
        error_sample=samples[0] if samples else "",
        **med,
    )


def report(args: argparse.Namespace, runs: list[Run], every: list[Run], info: dict[str, Any] | None = None) -> int:
    """Print the tables and the ratios, write the JSON file; 1 if any run had errors."""
    info = info or machine()
    rows = ratios(runs)
    command = "make bench" if os.environ.get("MAKELEVEL") else " ".join([".venv/bin/python", *sys.argv])
    print(f"\n{table(runs)}\n\nRatios, same run:\n\n{ratio_table(rows)}\n")
    for scenario in SCENARIOS:
        cpu = [r["cpu_per_request"] for r in rows if r["scenario"] == scenario and "cpu_per_request" in r]
        if cpu:
            verdict = "within" if max(cpu) <= 1.2 else "over"
            print(f"{SCENARIOS[scenario]}: sluicegate/reference CPU per request {min(cpu):.2f}x to {max(cpu):.2f}x, "
                  f"{verdict} the 1.20x target")  # fmt: skip
    by = {(r.target, r.scenario, r.concurrency): r for r in runs}
    core, spend = by.get(("sluicegate", "json", 1)), by.get(("sluicegate+spend", "json", 1))
    if core and spend:
        print(
            f"spend caps through Redis with leases, concurrency 1: +{spend.p50_ms - core.p50_ms:.3f} ms p50, "
            f"+{spend.cpu_us_per_request - core.cpu_us_per_request:.0f} µs CPU per request (target: under 0.1 ms p50)"
        )
    core, red = by.get(("sluicegate", "pii", 1)), by.get(("sluicegate+redaction", "pii", 1))
    if core and red:
        print(
            f"redaction on a 2 KB prompt with PII, concurrency 1: +{red.p50_ms - core.p50_ms:.3f} ms p50, "
            f"+{red.cpu_us_per_request - core.cpu_us_per_request:.0f} µs CPU per request (target: under 0.2 ms p50)"
        )
    flagged = [r for r in every if r.flagged]
    for r in flagged:
        print(
            f"FLAGGED: {r.target} {SCENARIOS[r.scenario]} c={r.concurrency}: {r.errors} errors, e.g. {r.error_sample!r}"
        )
    if args.report:
        return 1 if flagged else 0
    info["load_after"] = Path("/proc/loadavg").read_text().split()[:3]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    result = {"machine": info, "command": command, "duration_s": args.duration, "warmup_s": args.warmup,
              "repeat": args.repeat, "runs": [dataclasses.asdict(r) for r in runs], "ratios": rows,
              "all_runs": [dataclasses.asdict(r) for r in every]}  # fmt: skip
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {args.output}")
    return 1 if flagged else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
