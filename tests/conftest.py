"""Shared fixtures: free ports, spawning servers on real sockets, and a clean environment.

Servers run as subprocesses (granian), are polled until they accept connections, and are
terminated (then killed) in `finally`, so a failing test never leaves one behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

# Property tests draw the same examples on every run (a seed fixed by each test's name): a failure
# found once is found again, and CI's verdict does not depend on the draw of the day. Tests that
# want more variety ask for more examples, not a random seed.
settings.register_profile("sluicegate", derandomize=True, database=None)
settings.load_profile("sluicegate")

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 20.0) -> None:
    """Poll until something accepts on 127.0.0.1:port; fail early if `proc` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise RuntimeError(f"server exited with {proc.returncode} before listening:\n{out[-4000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on port {port} within {timeout}s")


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    """Send `sig`, wait, then kill whatever is left (the whole process group)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


@dataclass
class Server:
    """A server subprocess listening on 127.0.0.1:port."""

    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.contextmanager
def spawn(
    args: list[str], port: int, env: dict[str, str] | None = None, timeout: float = 20.0, output: Path | None = None
) -> Iterator[Server]:
    """Start `args` in its own process group, wait until it listens on `port`, stop it afterwards.

    Its output is a pipe that is read only if it fails to start; a server that writes much while it
    runs (a traceback per injected fault) would fill that pipe and block, so it writes to `output`.
    """
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    sink = output.open("wb") if output is not None else subprocess.PIPE
    try:
        proc = subprocess.Popen(
            args, stdout=sink, stderr=subprocess.STDOUT, env=full_env, cwd=ROOT, start_new_session=True
        )
    finally:
        if output is not None:
            sink.close()  # type: ignore[union-attr]
    try:
        wait_for_port(port, proc, timeout)
        yield Server(proc, port)
    finally:
        stop_process(proc)
        if proc.stdout:
            proc.stdout.close()


def granian_args(target: str, port: int, *, factory: bool = True) -> list[str]:
    """The command line that serves an ASGI app (factory) with granian on 127.0.0.1:port."""
    args = [PYTHON, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--workers", "1", "--loop", "uvloop", "--log-level", "warning"]
    if factory:
        args.append("--factory")
    return [*args, target]


@pytest.fixture(scope="session")
def mock_server() -> Iterator[Server]:
    """The mock provider on a real socket, shared by the session (its /mock/stats can be reset)."""
    port = free_port()
    with spawn(granian_args("sluicegate.mock.app:create_app", port), port) as server:
        yield server


# Servers that are not Python keep the machine's real clock when the suite runs with its clock moved
# (`make test-future` preloads libfaketime, under which redis-server does not start): what a test at
# another date must cope with anyway is a Redis whose clock is not the test's.
REAL_CLOCK = {"LD_PRELOAD": ""}


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A private redis-server on a free port (nothing persisted), shared by the session."""
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    args += ["--dir", str(workdir), "--daemonize", "no"]
    with spawn(args, port, REAL_CLOCK) as server:
        yield server


def redis_url(server: Server) -> str:
    return f"redis://127.0.0.1:{server.port}/0"


@pytest.fixture
def store_url(redis_server: Server) -> str:
    """The Redis URL the policy stores' tests connect to: the session's redis-server (the Redis
    Cluster tests override it with a `redis+cluster://` URL and run the same tests)."""
    return redis_url(redis_server)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real Redis Cluster (three primaries, three replicas; tests/redis_cluster.py) shared by the
    session; skipped with the reason where redis-server cannot run one."""
    from tests.redis_cluster import redis_cluster as start
    from tests.redis_cluster import skip_reason

    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    with start(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's provider and tracing settings out of every test."""
    for name in list(os.environ):
        if name.startswith(("SLUICEGATE_", "OPENAI_", "ANTHROPIC_", "LANGSMITH_", "LANGCHAIN_")):
            monkeypatch.delenv(name, raising=False)


GATEWAY_KEY = "sg-test-" + "k" * 40
PROVIDER_KEY = "sk-provider-" + "p" * 30
METRICS_TOKEN = "metrics-test-" + "m" * 24  # `metrics.token` of the test configs


def scrape(url: str) -> str:
    """A gateway's /metrics text, read with the test configs' metrics token."""
    import httpx

    response = httpx.get(f"{url}/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"}, timeout=5)
    assert response.status_code == 200, response.text
    return response.text


def provider_saw(mock: Server) -> dict[str, Any]:
    """The last request the mock provider on `mock` received, headers included (its own /mock/stats:
    the echo knob leaves credentials out, this does not)."""
    import httpx

    seen: dict[str, Any] = httpx.get(f"{mock.url}/mock/stats", timeout=5).json()["last_request"]
    return seen


def gateway_config(path: Path, mock_url: str, extra: str = "") -> Path:
    """A gateway config for tests: `mh/…` and the exact mock models go to the mock over a socket,
    `inproc/…` to the in-process mock, `dead/…` to a port where nothing listens."""
    from sluicegate.secrets import hash_key

    dead = f"http://127.0.0.1:{free_port()}/v1"
    path.write_text(
        f"""
[server]
max_body_bytes = 65536
drain_seconds = 10
ready_grace_s = 0

[metrics]
token = "{METRICS_TOKEN}"

[upstream]
connect_timeout_s = 2
first_byte_timeout_s = 2
chunk_timeout_s = 2
total_timeout_s = 30

[providers.mh]
kind = "mock"
base_url = "{mock_url}"
api_key = "{PROVIDER_KEY}"
models = ["mock-gpt", "mock-claude"]

[providers.inproc]
kind = "mock"

[providers.dead]
kind = "openai_compatible"
base_url = "{dead}"

[[keys]]
name = "test"
workspace = "ws-test"
sha256 = "{hash_key(GATEWAY_KEY)}"
{extra}
"""
    )
    return path


@contextlib.contextmanager
def start_gateway(config: Path, env: dict[str, str] | None = None) -> Iterator[Server]:
    port = free_port()
    args = [PYTHON, "-m", "sluicegate", "serve", "--config", str(config), "--port", str(port)]
    with spawn(args, port, env) as server:
        yield server


@pytest.fixture(scope="session")
def gateway(mock_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """sluicegate on a real socket in front of the mock provider, shared by the session."""
    config = gateway_config(tmp_path_factory.mktemp("gw") / "sluicegate.toml", mock_server.url)
    with start_gateway(config) as server:
        yield server


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA and a server certificate for 127.0.0.1 and localhost signed by it (openssl): ca.crt,
    s.crt, s.key."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (make test-tools)")
    folder = tmp_path_factory.mktemp("tls")

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, capture_output=True, check=True, timeout=30)

    ssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
    )
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "s.key", "-out", "s.csr", "-subj", "/CN=127.0.0.1")
    (folder / "ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ssl(
        "x509",
        "-req",
        "-in",
        "s.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "s.crt",
        "-days",
        "2",
        "-extfile",
        "ext",
    )
    return folder
