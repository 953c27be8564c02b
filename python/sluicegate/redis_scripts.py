"""Redis for the policy stores (spend caps, rate limits, loop state): one way to connect and one
way to call a Lua script.

Every failure that means "the store is down" becomes `StoreUnavailable`, which each policy answers
with its `fail_closed` or `fail_open` choice: Redis unreachable or timing out, and the replies of a
Redis that cannot serve writes now (loading, read-only, out of memory, a cluster or primary that is
down, a busy script). redis-py turns some of those replies into classes of its own and drops the
code from their message, so both the classes and the codes are recognised. After a failure, calls
fail at once for `breaker_s` (a Redis that is down is not asked again by every request).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as rexc
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from sluicegate.spend.store import StoreUnavailable

__all__ = ["UNAVAILABLE_REPLIES", "ScriptRunner", "connect", "unavailable_code"]

# Replies of a Redis that cannot serve the call now: the store is unavailable, not the call wrong.
UNAVAILABLE_REPLIES = ("MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "BUSY", "LOADING", "OOM", "READONLY")
_UNAVAILABLE_ERRORS: dict[type[Exception], str] = {rexc.ReadOnlyError: "READONLY", rexc.OutOfMemoryError: "OOM"}


def connect(url: str, *, timeout_s: float, max_connections: int) -> aioredis.Redis:
    """A client with its own bounded pool: `timeout_s` for connecting, each call and waiting for a
    connection; one retry, at once, of a call whose connection broke."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 1),
    )
    return aioredis.Redis(connection_pool=pool)


def unavailable_code(exc: rexc.ResponseError) -> str | None:
    """The code of a reply that means the store is unavailable (`READONLY`, `LOADING`, ...), or None
    for a reply that is the call's own fault (a script error)."""
    code = _UNAVAILABLE_ERRORS.get(type(exc))
    if code is None and str(exc).startswith(UNAVAILABLE_REPLIES):
        code = str(exc).split(" ", 1)[0]
    return code


class ScriptRunner:
    """Calls registered scripts (and other commands) with the failure mapping and the breaker.

    Arguments:
        breaker_s: how long to fail fast after a failure.
    """

    def __init__(self, breaker_s: float = 0.25) -> None:
        self.breaker_s = breaker_s
        self.calls = 0  # Redis round trips so far
        self.down_until = 0.0

    async def run(self, script: Any, keys: Sequence[str], args: Sequence[Any]) -> list[int]:
        """Call a registered script.

        Raises:
            StoreUnavailable: Redis unreachable, timing out, loading, read-only or out of memory,
                or it failed within the last `breaker_s`.
        """
        result: list[int] = await self.call(script, keys=keys, args=args)
        return result

    async def call(self, command: Any, *args: Any, **kwargs: Any) -> Any:
        """`await command(*args, **kwargs)` under the same rules as `run`."""
        if time.monotonic() < self.down_until:
            raise StoreUnavailable("redis is unavailable (a call failed moments ago)")
        self.calls += 1
        try:
            return await command(*args, **kwargs)
        except rexc.ResponseError as exc:
            code = unavailable_code(exc)
            if code is None:
                raise
            self.trip()
            raise StoreUnavailable(f"redis refused the call ({code})") from exc
        except (rexc.ConnectionError, rexc.TimeoutError, OSError) as exc:
            self.trip()
            raise StoreUnavailable(f"redis is unreachable ({type(exc).__name__})") from exc

    def trip(self) -> None:
        self.down_until = time.monotonic() + self.breaker_s

    def reset(self) -> None:
        """Forget a failure (a last try at shutdown)."""
        self.down_until = 0.0
