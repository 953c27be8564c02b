"""A real Redis Cluster for tests: three primaries and three replicas (`redis-server
--cluster-enabled yes` on free ports in a temporary folder, joined with `redis-cli --cluster create
--cluster-replicas 1`), ready once every node reports `cluster_state:ok` and every replica is in
sync; stopped (and its folder left to pytest) afterwards.

`skip_reason()` says why a test cannot have one (no redis-server, no redis-cli, or a Redis older
than 7, whose PUBLISH does not reach every node's subscribers the same way)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from redis.crc import key_slot
from tests.conftest import REAL_CLOCK, Server, free_port, spawn

NODE_TIMEOUT_MS = 1000  # a failed primary is replaced within a few of these


def skip_reason() -> str | None:
    """Why a Redis Cluster cannot be started here, or None."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        return "redis-server and redis-cli are not installed (make test-tools)"
    # The real clock: redis-server under libfaketime (make test-future) hangs, even for --version.
    version = ["redis-server", "--version"]
    out = subprocess.run(
        version, capture_output=True, text=True, check=False, timeout=30, env={**os.environ, **REAL_CLOCK}
    )
    out = out.stdout
    match = re.search(r"v=(\d+)\.", out)
    if match is None or int(match.group(1)) < 7:
        return f"redis-server 7 or later is needed for Redis Cluster tests (found: {out.strip()[:60]})"
    return None


def cli(port: int, *args: str, timeout: float = 10, tls: tuple[str, ...] = ()) -> str:
    """`redis-cli -p port args...` (`tls`: redis-cli's TLS options), its output (raises on failure)."""
    done = subprocess.run(
        ["redis-cli", *tls, "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
        env={**os.environ, **REAL_CLOCK},
    )
    return done.stdout


def info_field(text: str, name: str) -> str:
    """The value of `name:` in an INFO or CLUSTER INFO reply ("" if absent)."""
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return ""


def _serving(line: str) -> bool:
    """Whether a CLUSTER NODES line is a primary that is not failing."""
    flags = line.split()[2]
    return "master" in flags and "fail" not in flags


@dataclass
class RedisCluster:
    """The running cluster: its nodes by port, and how to reach and change it."""

    workdir: Path
    node_args: tuple[str, ...] = ()  # more redis-server options (TLS)
    tls: tuple[str, ...] = ()  # redis-cli's options to reach the nodes
    scheme: str = "redis+cluster"
    node_timeout_ms: int = NODE_TIMEOUT_MS
    nodes: dict[int, Server] = field(default_factory=dict)
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @property
    def url(self) -> str:
        """A `redis+cluster://` URL naming every live node (the client needs one that answers)."""
        return f"{self.scheme}://" + ",".join(f"127.0.0.1:{port}" for port in self.alive())

    def cli(self, port: int, *args: str) -> str:
        return cli(port, *args, tls=self.tls)

    def alive(self) -> list[int]:
        return [port for port, server in self.nodes.items() if server.proc.poll() is None]

    def start_node(self, port: int) -> None:
        folder = self.workdir / str(port)
        folder.mkdir(parents=True, exist_ok=True)
        args = ["redis-server", *self.node_args, "--port", str(port), "--bind", "127.0.0.1", "--daemonize", "no"]
        args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        args += [
            "--cluster-port",
            str(free_port()),
            "--cluster-node-timeout",
            str(self.node_timeout_ms),
            "--dir",
            str(folder),
        ]
        args += ["--save", "", "--appendonly", "no", "--cluster-replica-validity-factor", "0"]
        args += ["--repl-diskless-sync-delay", "0"]
        if self.tls:  # the TLS port is `port`; the plain one is off
            args[args.index("--port") + 1] = "0"
            args += ["--tls-port", str(port)]
        self.nodes[port] = self.stack.enter_context(spawn(args, port, REAL_CLOCK))

    def primaries(self) -> dict[int, tuple[int, int]]:
        """Port of each primary serving slots -> (first, last) of its first slot range, as a live
        node sees them."""
        out: dict[int, tuple[int, int]] = {}
        for line in self.cli(self.alive()[0], "cluster", "nodes").splitlines():
            parts = line.split()
            if "master" in parts[2] and "fail" not in parts[2] and len(parts) > 8:
                first, _, last = parts[8].partition("-")
                out[int(parts[1].split(":")[1].split("@")[0])] = (int(first), int(last or first))
        return out

    def owners(self) -> list[tuple[int, int, int]]:
        """(first slot, last slot, primary's port) of every slot range served now."""
        out: list[tuple[int, int, int]] = []
        for line in self.cli(self.alive()[0], "cluster", "nodes").splitlines():
            parts = line.split()
            if "master" not in parts[2] or "fail" in parts[2]:
                continue
            for span in parts[8:]:
                if not span.startswith("["):  # "[slot->-node]": a slot being migrated
                    first, _, last = span.partition("-")
                    out.append((int(first), int(last or first), int(parts[1].split(":")[1].split("@")[0])))
        return out

    def primary_of(self, key: str, owners: list[tuple[int, int, int]] | None = None) -> int:
        """The port of the primary serving `key`'s slot now (by `owners`, else asked)."""
        slot = key_slot(key.encode())
        for first, last, port in owners if owners is not None else self.owners():
            if first <= slot <= last:
                return port
        raise LookupError(f"no primary serves slot {slot}")

    def node_id(self, port: int) -> str:
        return self.cli(port, "cluster", "myid").strip()

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every live node says `cluster_state:ok`, agrees on three primaries and each
        replica is in sync with its primary."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self._ok():
                    return
            except (subprocess.SubprocessError, OSError, ValueError, IndexError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("the Redis Cluster did not settle in time")
            time.sleep(0.1)

    def _ok(self) -> bool:
        views = set()
        for port in self.alive():
            if info_field(self.cli(port, "cluster", "info"), "cluster_state") != "ok":
                return False
            replication = self.cli(port, "info", "replication")
            if info_field(replication, "role") == "slave" and info_field(replication, "master_link_status") != "up":
                return False
            lines = self.cli(port, "cluster", "nodes").splitlines()
            # (address, slots) of each primary, as this node sees them
            view = sorted(" ".join([p.split()[1], *p.split()[8:]]) for p in lines if _serving(p))
            if len(view) != 3:
                return False
            views.add(tuple(view))
        return len(views) == 1

    def kill(self, port: int) -> None:
        """SIGKILL the node on `port` (no goodbye to the others)."""
        self.nodes[port].proc.send_signal(signal.SIGKILL)
        self.nodes[port].proc.wait(5)


@contextlib.contextmanager
def redis_cluster(
    workdir: Path,
    replicas: int = 1,
    node_args: tuple[str, ...] = (),
    tls: tuple[str, ...] = (),
    node_timeout_ms: int = NODE_TIMEOUT_MS,
) -> Iterator[RedisCluster]:
    """Three primaries on free ports with `replicas` replicas each; `node_args` and `tls` (the
    TLS options of redis-server and redis-cli) make it a TLS cluster, reached with
    `rediss+cluster://`."""
    scheme = "rediss+cluster" if tls else "redis+cluster"
    cluster = RedisCluster(workdir, node_args, tls, scheme, node_timeout_ms)
    with cluster.stack:
        for _ in range(3 * (1 + replicas)):
            cluster.start_node(free_port())
        addresses = [f"127.0.0.1:{port}" for port in cluster.nodes]
        subprocess.run(
            [
                "redis-cli",
                *tls,
                "--cluster",
                "create",
                *addresses,
                "--cluster-replicas",
                str(replicas),
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
            env={**os.environ, **REAL_CLOCK},
        )
        cluster.wait_ok()
        yield cluster
