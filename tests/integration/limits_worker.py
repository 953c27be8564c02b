"""A gateway instance's limits store in its own OS process, for tests/integration/test_limits_store.py.

python tests/integration/limits_worker.py hammer <redis_url> <prefix> <leases 0|1> <seconds> <limit> <window_s>
    Acquire one requests line from several tasks as fast as the loop allows for <seconds> of the
    real clock; print one JSON object: the admission times (ms) and the Redis round trips.
python tests/integration/limits_worker.py hold <redis_url> <prefix> <now_ms>
    Acquire one concurrent slot at <now_ms>, print "held", and wait to be killed.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import redis.asyncio as aioredis

from sluicegate.limits.leases import LeasedLimitStore
from sluicegate.limits.lines import LimitLine
from sluicegate.limits.redis_store import RedisLimitStore
from sluicegate.limits.settings import LimitLeaseSettings
from sluicegate.limits.store import LimitStore, system_ms

TASKS = 4
BUSY = LimitLine("key", "k-busy", "acme", "concurrent", 1)


async def hammer(url: str, prefix: str, leases: bool, seconds: float, limit: int, window_s: int) -> None:
    red = RedisLimitStore(aioredis.Redis.from_url(url, socket_timeout=5), prefix=prefix)
    store: LimitStore = LeasedLimitStore(red, LimitLeaseSettings(enabled=True)) if leases else red
    line = LimitLine("key", "k-hammer", "acme", "requests", limit, window_s)
    admitted: list[int] = []
    attempts = 0
    end = time.monotonic() + seconds

    async def task() -> None:
        nonlocal attempts
        while time.monotonic() < end:
            now = system_ms()
            result = await store.acquire([line], [1], [True], now_ms=now)
            attempts += 1
            if result.grant is not None:
                admitted.append(now)
                await store.finish(result.grant, None, now_ms=now)
            await asyncio.sleep(0.001)

    await asyncio.gather(*[task() for _ in range(TASKS)])
    await store.close()
    print(json.dumps({"admitted": admitted, "attempts": attempts, "calls": red.calls}), flush=True)


async def hold(url: str, prefix: str, now_ms: int) -> None:
    store = RedisLimitStore(aioredis.Redis.from_url(url, socket_timeout=5), prefix=prefix)
    result = await store.acquire([BUSY], [1], [True], now_ms=now_ms)
    print("held" if result.grant is not None else "refused", flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "hammer":
        asyncio.run(hammer(args[0], args[1], args[2] == "1", float(args[3]), int(args[4]), int(args[5])))
    else:
        asyncio.run(hold(args[0], args[1], int(args[2])))
