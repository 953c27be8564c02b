"""Redis for the policy stores (spend caps, rate limits, loop state): one way to connect and one
way to call a Lua script.

URLs. `redis://[user:password@]host:port/db`, `rediss://...` (TLS; `?ssl_cert_reqs=none`,
`ssl_ca_certs=...` as redis-py reads them) and `unix:///path.sock` connect to one Redis.
`redis+cluster://[user:password@]host:port[,host:port...]` (and `rediss+cluster://` for TLS)
connect to a Redis Cluster through any of the listed nodes: redis-py's asyncio `RedisCluster`
learns the slots, sends each call to the primary of its keys' slot, follows `MOVED` and `ASK`
(resharding) and refreshes the slots after a fail-over. Every key of one script call carries the
same hash tag (`{org:<org>}`), so a call always runs on one node; each node loads a script the
first time it is asked for it (EVALSHA answered `NOSCRIPT` -> SCRIPT LOAD on the primaries -> call
again), so a node that restarted, was added, or became primary needs nothing done by hand.
`redis+sentinel://[user:password@]sentinel:26379[,...]/<service>[/db]` connects to the primary the
sentinels name for `service` (asked again when a connection to it fails).

Bounds. One node: `timeout_s` for connecting and for each call, `pool_wait_s(timeout_s)` for
waiting for a pooled connection; one retry, at once, of a call whose connection broke. A cluster:
the same socket timeouts, one retry after a refresh of the slots, at most `max_connections` calls
in flight per client (a call waits up to `pool_wait_s(timeout_s)` for its turn), and a whole call,
redirections and refreshes included, ends within `cluster_deadline(timeout_s)`. The wait for a
connection is longer than a call's own bound on purpose: a burst of calls above the pool's size
(hundreds at once on one worker, whose event loop is then busy) queues for a healthy Redis, and a
wait past it refuses that call only, without tripping the breaker: it says nothing about Redis.

Every failure that means "the store is down" becomes `StoreUnavailable`, which each policy answers
with its `fail_closed` or `fail_open` choice: Redis unreachable or timing out, and the replies of a
Redis that cannot serve writes now (loading, read-only, out of memory, a cluster or primary that is
down, a busy script, a slot moving: `TRYAGAIN`, an ACL user without the right: `NOPERM`), a
refused login (`WRONGPASS`, `NOAUTH`), and the cluster client's own failures (no node
reachable, a slot no node covers, redirections that never settle, its pool exhausted). redis-py
turns some of those replies into classes of its own and drops the code from their message, so both
the classes and the codes are recognised. After a failure, calls fail at once for `breaker_s` (a
Redis that is down is not asked again by every request); on a cluster the breaker is per node, so
the organizations whose slots another primary serves are not refused with it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis import exceptions as rexc
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff

from sluicegate.spend.store import StoreUnavailable

__all__ = [
    "CLUSTER_SCHEMES",
    "UNAVAILABLE_REPLIES",
    "ClusterClient",
    "RedisClient",
    "ScriptRunner",
    "announcer",
    "cluster_deadline",
    "connect",
    "is_cluster_url",
    "unavailable_code",
]

log = logging.getLogger("sluicegate.redis")

# Replies of a Redis that cannot serve the call now: the store is unavailable, not the call wrong.
UNAVAILABLE_REPLIES = (
    "MASTERDOWN",
    "CLUSTERDOWN",
    "TRYAGAIN",
    "BUSY",
    "LOADING",
    "OOM",
    "READONLY",
    "MOVED",
    "ASK",
    "NOPERM",
)
_UNAVAILABLE_ERRORS: dict[type[Exception], str] = {
    rexc.ReadOnlyError: "READONLY",
    rexc.OutOfMemoryError: "OOM",
    rexc.ClusterDownError: "CLUSTERDOWN",
    rexc.MasterDownError: "MASTERDOWN",
    rexc.TryAgainError: "TRYAGAIN",
    rexc.MovedError: "MOVED",
    rexc.AskError: "ASK",
    rexc.NoPermissionError: "NOPERM",
}
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
ANNOUNCE_CONNECT_S = 2.0  # an announcement client's bound on connecting (and on asking the sentinels)

RedisClient = aioredis.Redis | RedisCluster


def is_cluster_url(url: str) -> bool:
    """Whether `url` names a Redis Cluster (`redis+cluster://`, `rediss+cluster://`)."""
    return url.partition("://")[0].lower() in CLUSTER_SCHEMES


def pool_wait_s(timeout_s: float) -> float:
    """How long a call waits for a pooled connection (its turn): four times a call's bound, at
    least 2 s (see the module docstring)."""
    return max(4 * timeout_s, 2.0)


def _no_free_connection(exc: BaseException) -> bool:
    """Whether a failure is the wait for a pooled connection running out (the single-node pool's
    `ConnectionError`, the cluster client's `MaxConnectionsError`), not Redis failing."""
    return isinstance(exc, rexc.MaxConnectionsError) or (
        isinstance(exc, rexc.ConnectionError) and str(exc) == "No connection available."
    )


def cluster_deadline(timeout_s: float) -> float:
    """How long one call on a cluster may take in all: its turn, two tries, a refresh of the
    slots between them and the pause redis-py makes after `CLUSTERDOWN`."""
    return 4 * timeout_s + 0.5


class ClusterClient(RedisCluster):
    """redis-py's asyncio `RedisCluster` with a bound on calls in flight (waited for, like the
    single-node pool, instead of failing at once with MaxConnectionsError) and on each call's
    whole duration.

    Arguments:
        max_in_flight: calls at once; each holds one connection, so no node's pool runs out.
        wait_s: how long a call waits for its turn.
        deadline_s: how long a call may take in all (then TimeoutError).
    """

    def __init__(self, *args: Any, max_in_flight: int, wait_s: float, deadline_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sg_gate = asyncio.Semaphore(max_in_flight)
        self._sg_wait_s = wait_s
        self._sg_deadline_s = deadline_s

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        if self._sg_gate.locked():  # every connection busy: wait for one, as the single-node pool does
            try:
                async with asyncio.timeout(self._sg_wait_s):
                    await self._sg_gate.acquire()
            except TimeoutError:
                raise rexc.MaxConnectionsError("no free connection within the timeout") from None
        else:
            await self._sg_gate.acquire()  # free: no wait, no timer
        try:
            async with asyncio.timeout(self._sg_deadline_s):
                return await super().execute_command(*args, **kwargs)
        finally:
            self._sg_gate.release()

    async def aclose(self, close_connection_pool: bool | None = None) -> None:  # type: ignore[override]
        """Close every node's connections (the argument is the single-node client's)."""
        await super().aclose()

    def node_of(self, key: str) -> str:
        """The name (`host:port`) of the primary serving `key`'s slot as this client knows it,
        or "" before it knows."""
        slot = self.nodes_manager.slots_cache.get(self.keyslot(key))
        return slot[0].name if slot else ""


def _split_cluster_url(url: str) -> tuple[str, str, str, str]:
    """(`redis` or `rediss`, `user:password@` or "", the `host:port,...` list, the path and query)
    of a `redis+cluster://` or `redis+sentinel://` URL."""
    scheme, _, rest = url.partition("://")
    end = min((i for i in (rest.find(c) for c in "/?#") if i != -1), default=len(rest))
    userinfo, at, hosts = rest[:end].rpartition("@")
    return scheme.lower().partition("+")[0], userinfo + at, hosts, rest[end:]


def _cluster_options(url: str) -> dict[str, Any]:
    """`RedisCluster` arguments from a `redis+cluster://` URL: its nodes, and what redis-py reads
    from a single-node URL (user, password, TLS options)."""
    single, userinfo, hosts, tail = _split_cluster_url(url)
    nodes: list[ClusterNode] = []
    for hostport in hosts.split(","):
        part = urlsplit(f"redis://{hostport}")
        if not part.hostname:
            raise ValueError("a redis+cluster:// URL lists its nodes as host:port[,host:port...]")
        nodes.append(ClusterNode(part.hostname, part.port or 6379))
    first = f"{single}://{userinfo}{hosts.split(',')[0]}{tail}"
    options: dict[str, Any] = dict(parse_url(first))
    options.pop("host", None)
    options.pop("port", None)
    if options.pop("db", 0):
        raise ValueError("a Redis Cluster has only database 0")
    if options.pop("connection_class", None) is SSLConnection:
        options["ssl"] = True
    options["startup_nodes"] = nodes
    options["require_full_coverage"] = False  # a slot uncovered refuses its organizations only
    return options


def _cluster(url: str, *, timeout_s: float, max_connections: int) -> ClusterClient:
    return ClusterClient(
        max_in_flight=max_connections,
        wait_s=pool_wait_s(timeout_s),
        deadline_s=cluster_deadline(timeout_s),
        max_connections=max_connections + 4,  # per node; the gate keeps calls to max_connections
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 1),
        **_cluster_options(url),
    )


def announcer(url: str, *, timeout_s: float | None, attempt: int = 0) -> aioredis.Redis:
    """A client for the control plane's change announcements (PUBLISH, SUBSCRIBE). With a
    `redis+cluster://` URL it is a client of one of the listed nodes, the next one at each
    `attempt`: a PUBLISH on any node of a Redis Cluster reaches the subscribers of every node.
    With a `redis+sentinel://` URL it is a client of the primary the sentinels name when it
    connects (a subscriber cut off by a fail-over subscribes again on the promoted one).
    `timeout_s` None: no read timeout (a subscriber waits); connecting is bounded either way."""
    if url.partition("://")[0].lower() in SENTINEL_SCHEMES:
        return _sentinel(url, timeout_s=ANNOUNCE_CONNECT_S, max_connections=2, read_timeout_s=timeout_s)
    if is_cluster_url(url):
        single, userinfo, hosts, tail = _split_cluster_url(url)
        nodes = hosts.split(",")
        url = f"{single}://{userinfo}{nodes[attempt % len(nodes)]}{tail}"
    return aioredis.Redis.from_url(url, socket_timeout=timeout_s)


class _BlockingSentinelPool(SentinelConnectionPool, aioredis.BlockingConnectionPool):
    """The Sentinel pool (connections go to the primary the sentinels name now) that waits for a
    free connection, as the single-node pool does."""


class _SentinelRedis(aioredis.Redis):
    """The primary's client, which closes its connections to the sentinels with its own."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        for sentinel in self.connection_pool.sentinel_manager.sentinels:
            await sentinel.aclose()


def _sentinel(
    url: str, *, timeout_s: float, max_connections: int, read_timeout_s: float | Literal["same"] | None = "same"
) -> aioredis.Redis:
    """`redis+sentinel://[user:password@]sentinel:26379[,sentinel:26379...]/<service>[/<db>]`:
    the primary of `service` as the sentinels name it (asked again after a failure); `user:password`
    and the query (TLS options; `sentinel_username`, `sentinel_password` for the sentinels' own
    login) as for one Redis. `timeout_s` bounds connecting, each call to the sentinels and waiting
    for a connection; `read_timeout_s` each call to the primary (`same`: `timeout_s`; None: none,
    for a subscriber)."""
    single, userinfo, hosts, tail = _split_cluster_url(url)
    path, _, query = tail.partition("?")
    parts = [p for p in path.split("/") if p]
    if not parts or len(parts) > 2:
        raise ValueError("a redis+sentinel:// URL names its service: redis+sentinel://host:26379/<service>[/<db>]")
    sentinels = []
    for hostport in hosts.split(","):
        part = urlsplit(f"redis://{hostport}")
        if not part.hostname:
            raise ValueError("a redis+sentinel:// URL lists its sentinels as host:port[,host:port...]")
        sentinels.append((part.hostname, part.port or 26379))
    db = f"/{parts[1]}" if len(parts) == 2 else "/0"
    options: dict[str, Any] = dict(parse_url(f"{single}://{userinfo}sentinel{db}{'?' if query else ''}{query}"))
    options.pop("host", None)
    options.pop("port", None)
    if options.pop("connection_class", None) is SSLConnection:
        options["ssl"] = True
    bounds = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
    own = {
        k.removeprefix("sentinel_"): options.pop(k) for k in ("sentinel_username", "sentinel_password") if k in options
    }
    sentinel = Sentinel(sentinels, sentinel_kwargs={**bounds, **own})
    if read_timeout_s != "same":
        bounds["socket_timeout"] = read_timeout_s
    return sentinel.master_for(
        parts[0],
        redis_class=_SentinelRedis,
        connection_pool_class=_BlockingSentinelPool,
        max_connections=max_connections,
        timeout=pool_wait_s(timeout_s),
        retry=Retry(NoBackoff(), 1),
        **bounds,
        **options,
    )


def connect(url: str, *, timeout_s: float, max_connections: int) -> RedisClient:
    """A client with its own bounded pool: `timeout_s` for connecting and each call,
    `pool_wait_s(timeout_s)` for waiting for a connection; one retry, at once, of a call whose
    connection broke. A `redis+cluster://` URL
    gives a cluster client under the same bounds, a `redis+sentinel://` URL a client of the
    primary its sentinels name (see the module docstring)."""
    if is_cluster_url(url):
        return _cluster(url, timeout_s=timeout_s, max_connections=max_connections)
    if url.partition("://")[0].lower() in SENTINEL_SCHEMES:
        return _sentinel(url, timeout_s=timeout_s, max_connections=max_connections)
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=pool_wait_s(timeout_s),
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 1),
    )
    return aioredis.Redis(connection_pool=pool)


def unavailable_code(exc: rexc.RedisError) -> str | None:
    """The code of a reply that means the store is unavailable (`READONLY`, `LOADING`, ...), or None
    for a reply that is the call's own fault (a script error)."""
    code = next((c for cls, c in _UNAVAILABLE_ERRORS.items() if isinstance(exc, cls)), None)
    if code is None and str(exc).startswith(UNAVAILABLE_REPLIES):
        code = str(exc).split(" ", 1)[0]
    return code


class ScriptRunner:
    """Calls registered scripts (and other commands) with the failure mapping and the breaker.

    Arguments:
        breaker_s: how long to fail fast after a failure.
        client: the client the calls go through; on a cluster the breaker is per primary.
    """

    def __init__(self, breaker_s: float = 0.25, client: RedisClient | None = None) -> None:
        self.breaker_s = breaker_s
        self.calls = 0  # Redis round trips so far
        self._cluster = client if isinstance(client, ClusterClient) else None
        self._down: dict[str, float] = {}  # until when calls to a node (all: "") fail at once
        self._warned = False

    @property
    def down_until(self) -> float:
        """Until when the breaker refuses calls (the latest of its nodes)."""
        return max(self._down.values(), default=0.0)

    async def run(self, script: Any, keys: Sequence[str], args: Sequence[Any]) -> list[int]:
        """Call a registered script.

        Raises:
            StoreUnavailable: Redis unreachable, timing out, loading, read-only or out of memory,
                the cluster unable to serve the keys' slot, or it failed within the last `breaker_s`.
        """
        result: list[int] = await self.keyed(keys[0] if keys else "", script, keys=keys, args=args)
        return result

    async def call(self, command: Any, *args: Any, **kwargs: Any) -> Any:
        """`await command(*args, **kwargs)` under the same rules as `run` (the first argument is
        the key)."""
        return await self.keyed(str(args[0]) if args else "", command, *args, **kwargs)

    async def keyed(self, key: str, command: Any, *args: Any, **kwargs: Any) -> Any:
        """`await command(*args, **kwargs)`, a call on `key`, under the rules of `run`."""
        node = self._cluster.node_of(key) if self._cluster is not None and key else ""
        if self._down and time.monotonic() < max(self._down.get(node, 0.0), self._down.get("", 0.0)):
            raise StoreUnavailable("redis is unavailable (a call failed moments ago)")
        self.calls += 1
        try:
            return await command(*args, **kwargs)
        except (rexc.ResponseError, rexc.ClusterError) as exc:
            code = unavailable_code(exc)
            if code is None and not isinstance(exc, rexc.ClusterError):
                raise
            self.trip(node)
            if code in ("MOVED", "ASK") and self._cluster is None and not self._warned:
                self._warned = True
                log.warning("redis answered %s: it is a node of a Redis Cluster; use a redis+cluster:// URL", code)
            raise StoreUnavailable(f"redis refused the call ({code or type(exc).__name__})") from exc
        except (rexc.ConnectionError, rexc.TimeoutError, rexc.RedisClusterException, OSError) as exc:
            # OSError includes the built-in TimeoutError of a cluster call past its deadline
            if _no_free_connection(exc):  # this call's wait for its turn: no news of Redis
                raise StoreUnavailable("redis: no free connection within the wait (a burst of calls)") from exc
            self.trip(node)
            raise StoreUnavailable(f"redis is unreachable ({type(exc).__name__})") from exc

    def trip(self, node: str = "") -> None:
        """Fail fast for `breaker_s`: calls to `node` (a cluster's primary), or all ("")."""
        self._down[node] = time.monotonic() + self.breaker_s

    def reset(self) -> None:
        """Forget a failure (a last try at shutdown)."""
        self._down.clear()
