"""What the policy stores' Redis URLs carry besides a host, against real servers: an ACL user and
password (`redis://user:password@host`), TLS (`rediss://` with `ssl_ca_certs`), and TLS on a Redis
Cluster (`rediss+cluster://`). A refused login and an ACL user without the rights the scripts need
are the store being unavailable (the policies' fail_closed 503 or fail_open), not a crash."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import REAL_CLOCK, Server, free_port, spawn
from tests.redis_cluster import redis_cluster, skip_reason

from sluicegate.redis_scripts import connect
from sluicegate.secrets import SecretUrl
from sluicegate.spend.caps import CapLine
from sluicegate.spend.redis_store import RedisStore
from sluicegate.spend.store import StoreUnavailable

CAP = CapLine("org", "acme", "acme", "total", 10_000)


def redis_args(port: int, workdir: Path, *more: str) -> list[str]:
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    return [*args, "--dir", str(workdir), "--daemonize", "no", *more]


async def reserve_and_settle(url: str, prefix: str) -> tuple[int, int]:
    store = RedisStore(connect(url, timeout_s=2, max_connections=4), prefix=prefix)
    try:
        r = await store.reserve([CAP], 1_000)
        assert r.reservation is not None
        await store.settle(r.reservation, 700)
        return await store.snapshot(CAP)
    finally:
        await store.close()


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A Redis whose default user is off: `sg` may do everything on keys `acl*`, `noscript` all but
    scripts, `elsewhere` everything on keys `other*` only."""
    port = free_port()
    users = ["--user", "default", "off"]
    users += ["--user", "sg", "on", ">s3cret-pw", "~acl*", "&*", "+@all"]
    users += ["--user", "noscript", "on", ">s3cret-pw", "~acl*", "+@all", "-@scripting"]
    users += ["--user", "elsewhere", "on", ">s3cret-pw", "~other*", "+@all"]
    with spawn(redis_args(port, tmp_path_factory.mktemp("acl"), *users), port, REAL_CLOCK) as server:
        yield server


async def test_an_acl_user_in_the_url(acl_redis: Server) -> None:
    url = f"redis://sg:s3cret-pw@127.0.0.1:{acl_redis.port}/0"
    assert await reserve_and_settle(url, "acl" + uuid.uuid4().hex[:6]) == (700, 0)
    assert "s3cret" not in str(SecretUrl(url))  # printed and logged masked


@pytest.mark.parametrize(
    ("user", "password"),
    [("sg", "wrong"), ("nobody", "s3cret-pw"), ("noscript", "s3cret-pw"), ("elsewhere", "s3cret-pw")],
    ids=["wrong-password", "unknown-user", "no-scripting", "other-keys"],
)
async def test_a_refused_login_or_missing_right_is_store_unavailable(
    acl_redis: Server, user: str, password: str
) -> None:
    url = f"redis://{user}:{password}@127.0.0.1:{acl_redis.port}/0"
    store = RedisStore(connect(url, timeout_s=2, max_connections=4), prefix="acl" + uuid.uuid4().hex[:6])
    try:
        with pytest.raises(StoreUnavailable):
            await store.reserve([CAP], 1_000)
    finally:
        await store.close()


def tls_args(certs: Path) -> tuple[str, ...]:
    return (
        "--tls-cert-file",
        str(certs / "s.crt"),
        "--tls-key-file",
        str(certs / "s.key"),
        "--tls-ca-cert-file",
        str(certs / "ca.crt"),
        "--tls-auth-clients",
        "no",
    )


async def test_tls_with_the_servers_ca(certs: Path, tmp_path: Path) -> None:
    port = free_port()
    args = redis_args(port, tmp_path, *tls_args(certs))
    args[args.index("--port") + 1] = "0"
    with spawn([*args, "--tls-port", str(port)], port, REAL_CLOCK):
        url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={certs / 'ca.crt'}"
        assert await reserve_and_settle(url, "tls") == (700, 0)
        # a client that does not trust the server's CA, or speaks plain text to TLS, is refused
        for bad in (f"rediss://127.0.0.1:{port}/0", f"redis://127.0.0.1:{port}/0"):
            store = RedisStore(connect(bad, timeout_s=1, max_connections=2), prefix="tls")
            try:
                with pytest.raises(StoreUnavailable):
                    await store.reserve([CAP], 1)
            finally:
                await store.close()


async def test_tls_on_a_redis_cluster(certs: Path, tmp_path: Path) -> None:
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    node_args = (*tls_args(certs), "--tls-cluster", "yes", "--tls-replication", "yes")
    tls = ("--tls", "--cacert", str(certs / "ca.crt"))
    with redis_cluster(tmp_path / "c", replicas=0, node_args=node_args, tls=tls) as cluster:
        url = f"{cluster.url}?ssl_ca_certs={certs / 'ca.crt'}"
        assert url.startswith("rediss+cluster://")
        for org in ("a", "b", "c", "d"):
            cap = CapLine("org", org, org, "total", 10_000)
            store = RedisStore(connect(url, timeout_s=2, max_connections=4), prefix="tls")
            try:
                r = await store.reserve([cap], 1_000)
                assert r.reservation is not None
                await store.settle(r.reservation, 600)
                assert await store.snapshot(cap) == (600, 0)
            finally:
                await store.close()
