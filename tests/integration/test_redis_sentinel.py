"""The policy stores on a Redis watched by Sentinel (`redis+sentinel://sentinel:port/<service>`),
against real servers: a primary, its replica and a sentinel. The store writes to the primary the
sentinel names; after the primary is killed (SIGKILL) and the sentinel promotes the replica, the
calls in the switch are StoreUnavailable at worst, then the same store writes to the promoted
replica with the books intact. The control plane's change announcements follow the primary too."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import REAL_CLOCK, Server, free_port, spawn
from tests.integration.test_control_store import ACTOR
from tests.redis_cluster import cli, info_field
from tests.unit.control.pg import control_settings, pg_database  # noqa: F401  (fixtures)

from sluicegate.control.models import api_keys
from sluicegate.control.schemas import KeyIn
from sluicegate.control.settings import ControlSettings
from sluicegate.control.store import CHANNEL, ControlStore
from sluicegate.control.view import ControlView
from sluicegate.errors import Unauthenticated
from sluicegate.redis_scripts import connect
from sluicegate.spend.caps import CapLine
from sluicegate.spend.redis_store import RedisStore
from sluicegate.spend.store import StoreUnavailable

CAP = CapLine("org", "acme", "acme", "total", 10**9)


def node_args(port: int, folder: Path, *more: str) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    return [*args, "--dir", str(folder), "--daemonize", "no", "--repl-diskless-sync-delay", "0", *more]


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[tuple[Server, Server, int]]:
    """(the sentinel, the primary, the replica's port), the replica in sync."""
    primary, replica, port = free_port(), free_port(), free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor sg 127.0.0.1 {primary} 1\n"
        "sentinel down-after-milliseconds sg 1000\nsentinel failover-timeout sg 5000\n"
    )
    with (
        spawn(node_args(primary, tmp_path / "p"), primary, REAL_CLOCK) as first,
        spawn(node_args(replica, tmp_path / "r", "--replicaof", "127.0.0.1", str(primary)), replica, REAL_CLOCK),
    ):
        # in sync before the sentinel starts: its first INFO of the primary lists the replica (the
        # next one would come 10 s later)
        until(lambda: info_field(cli(replica, "info", "replication"), "master_link_status") == "up")
        with spawn(["redis-server", str(conf), "--sentinel"], port, REAL_CLOCK) as server:
            until(lambda: replica_known(port))
            yield server, first, replica


def replica_known(sentinel_port: int) -> bool:
    lines = cli(sentinel_port, "sentinel", "master", "sg").splitlines()
    return lines[lines.index("num-slaves") + 1] == "1"


def until(check, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except subprocess.CalledProcessError:  # a server busy switching roles
            pass
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


async def test_the_store_follows_the_primary_sentinel_names(sentinel: tuple[Server, Server, int]) -> None:
    server, primary_proc, replica = sentinel
    primary = primary_proc.port
    store = RedisStore(connect(f"redis+sentinel://127.0.0.1:{server.port}/sg", timeout_s=0.5, max_connections=8))
    try:
        for _ in range(3):
            r = await store.reserve([CAP], 1_000)
            assert r.reservation is not None
            await store.settle(r.reservation, 1_000)
        assert info_field(cli(primary, "info", "keyspace"), "db0").startswith("keys=")  # written there
        # replication is asynchronous (docs/configuration.md): the replica has it all before the kill
        offset = info_field(cli(primary, "info", "replication"), "master_repl_offset")
        until(lambda: info_field(cli(replica, "info", "replication"), "slave_repl_offset") == offset)
        os.kill(primary_proc.proc.pid, signal.SIGKILL)  # the sentinel promotes the replica
        await asyncio.to_thread(until, lambda: info_field(cli(replica, "info", "replication"), "role") == "master")
        admitted, unavailable = 0, 0
        deadline = time.monotonic() + 15
        while admitted < 3:
            assert time.monotonic() < deadline, (admitted, unavailable)
            try:
                r = await store.reserve([CAP], 1_000)
            except StoreUnavailable:  # the switch
                unavailable += 1
                await asyncio.sleep(0.1)
                continue
            assert r.reservation is not None
            await store.settle(r.reservation, 1_000)
            admitted += 1
        assert await store.snapshot(CAP) == (6_000, 0)
    finally:
        await store.close()
    # the books came along and grew on the new primary itself
    direct = RedisStore(connect(f"redis://127.0.0.1:{replica}/0", timeout_s=0.5, max_connections=2))
    try:
        assert await direct.snapshot(CAP) == (6_000, 0)
    finally:
        await direct.close()


async def test_control_announcements_follow_the_primary(
    control_settings: ControlSettings,  # noqa: F811
    sentinel: tuple[Server, Server, int],
) -> None:
    """A key revoked on one control store stops at once at a view of another (no polling) through
    the primary the sentinel names, and again after a fail-over: the subscriber, cut off with the
    old primary, subscribes on the promoted one, and the next announcement reaches it there."""
    server, primary_proc, replica = sentinel
    url = f"redis+sentinel://127.0.0.1:{server.port}/sg"
    settings = ControlSettings.model_validate({**dict(control_settings), "redis_url": url})
    writer, reader = ControlStore(settings), ControlStore(settings)
    await writer.open()
    await reader.open()
    view = ControlView(reader)

    def subscribers(port: int) -> list[str]:
        return cli(port, "pubsub", "numsub", CHANNEL).split()[1:]

    async def revoked_at_once(row: dict[str, Any], key: str) -> None:
        view.authenticate(f"Bearer {key}".encode(), None)
        await writer.revoke_key(ACTOR, (await writer.one(api_keys, row["id"])) or {})
        for _ in range(100):
            await asyncio.sleep(0.02)
            if view.version == await writer.version():
                break
        with pytest.raises(Unauthenticated):
            view.authenticate(f"Bearer {key}".encode(), None)

    try:
        org = await writer.create_org(ACTOR, "acme")
        ws = await writer.create_workspace(ACTOR, org["id"], "prod")
        first, second = [await writer.create_key(ACTOR, ws, KeyIn(name=n)) for n in ("a", "b")]
        await view.start(poll=False)
        await asyncio.to_thread(until, lambda: subscribers(primary_proc.port) == ["1"])
        await revoked_at_once(*first)
        os.kill(primary_proc.proc.pid, signal.SIGKILL)  # the sentinel promotes the replica
        await asyncio.to_thread(until, lambda: info_field(cli(replica, "info", "replication"), "role") == "master")
        await asyncio.to_thread(until, lambda: subscribers(replica) == ["1"])
        await revoked_at_once(*second)
    finally:
        await view.stop()
        await writer.close()
        await reader.close()
