"""The Redis loop state against a real redis-server: the same verdicts as the local state for the
same calls on the same (injected) clock, one script call a request, keys under the org's hash tag
with times to live from the caller's clock, and StoreUnavailable when Redis is away."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis
from tests.conftest import Server, free_port, redis_url
from tests.integration.test_limits_store import refusing_redis  # noqa: F401  (fixture)

from sluicegate.policy.loop_rules import LoopLine, LoopRuleFields, LoopSettings
from sluicegate.policy.loop_state import LocalLoopState, LoopCheck, RedisLoopState, state_keys
from sluicegate.redis_scripts import connect
from sluicegate.secrets import SecretUrl
from sluicegate.spend.store import StoreUnavailable


def line(**fields: Any) -> LoopLine:
    return LoopLine(LoopRuleFields(**fields), "workspace", "ws", "acme")


RULES = [
    (None, LoopCheck(line(max_repeats=3, window_s=20, cooldown_s=50), True)),
    (None, LoopCheck(line(max_repeats=2, window_s=30, action="throttle", throttle_interval_s=7), True)),
    (None, LoopCheck(line(max_repeats=2, window_s=30, action="monitor"), True)),
    (None, LoopCheck(line(max_repeats=2, window_s=30, action="block", mode="monitor"), False)),
    (
        LoopCheck(line(detect="rate", window_s=10, baseline_s=60, factor=3, min_requests=8, cooldown_s=40), True),
        LoopCheck(line(max_repeats=4, window_s=15, cooldown_s=30), True),
    ),
    (
        LoopCheck(line(detect="rate", window_s=10, baseline_s=60, factor=2, min_requests=5, action="throttle"), True),
        None,
    ),
]


@pytest.mark.parametrize("rules", range(len(RULES)))
def test_redis_and_local_agree(store_url: str, rules: int) -> None:
    rate, repeat = RULES[rules]
    rng = random.Random(rules)
    key = f"k-{uuid.uuid4().hex[:8]}"

    async def go() -> None:
        redis_state = RedisLoopState(connect(store_url, timeout_s=5, max_connections=8))
        local = LocalLoopState()
        t = 1_800_000_000_000 + rng.randrange(10_000)
        seen: set[str] = set()
        for _ in range(400):
            t += rng.choice([0, 1, 50, 400, 1500, 3000, 9000])
            if rng.random() < 0.05:
                t -= 2000  # another instance's clock, a little behind
            digest = rng.choice([b"a" * 16, b"b" * 16, b"c" * 16])
            want = local.check_now("acme", key, digest, rate, repeat, t)
            got = await redis_state.check("acme", key, digest, rate, repeat, t)
            assert got == want, (t, got, want)
            seen.update(v.outcome for v in got)
        assert len(seen) >= 2, seen  # the rule acted, not only "ok"
        assert redis_state.calls == 400
        await redis_state.close()

    asyncio.run(go())


def test_keys_carry_the_org_hash_tag_and_live_by_the_callers_clock(redis_server: Server) -> None:
    async def go() -> None:
        client = aioredis.Redis.from_url(redis_url(redis_server))
        state = RedisLoopState(aioredis.Redis.from_url(redis_url(redis_server)), prefix="lt")
        rate = LoopCheck(line(detect="rate", window_s=60, baseline_s=600), True)
        repeat = LoopCheck(line(max_repeats=1, window_s=60, cooldown_s=900), True)
        digest = bytes(range(16))
        far_future = 4_102_444_800_000  # 2100: the clock is the caller's, not Redis's
        await state.check("acme org", "k/1", digest, rate, repeat, far_future)
        verdicts = await state.check("acme org", "k/1", digest, rate, repeat, far_future + 1)
        assert [v.outcome for v in verdicts] == ["ok", "block"]
        assert verdicts[1].until_ms == far_future + 1 + 900_000
        keys = state_keys("lt", "acme org", "k/1", digest)
        assert keys[0] == "lt:{org:acme%20org}:loop:k%2F1" and keys[1].endswith(":h:" + digest.hex())
        ttls = [await client.pttl(k) for k in keys]
        assert 660_000 <= ttls[0] <= 661_000  # (buckets + 1) windows, plus a second
        assert 900_000 <= ttls[1] <= 901_000  # the cool-down, plus a second
        await state.close()
        await client.aclose()

    asyncio.run(go())


def test_redis_down_raises_store_unavailable_then_fails_fast() -> None:
    settings = LoopSettings(redis_url=SecretUrl(f"redis://127.0.0.1:{free_port()}/0"), redis_timeout_s=0.2)

    async def go() -> None:
        state = RedisLoopState.from_settings(settings)
        repeat = LoopCheck(line(), True)
        with pytest.raises(StoreUnavailable, match="unreachable"):
            await state.check("acme", "k", b"x" * 16, None, repeat, 1)
        with pytest.raises(StoreUnavailable, match="moments ago"):
            await state.check("acme", "k", b"x" * 16, None, repeat, 2)
        assert state.calls == 1
        await state.close()

    asyncio.run(go())


def test_redis_and_local_agree_when_the_rate_rule_changes(store_url: str) -> None:
    rules = [
        LoopCheck(line(detect="rate", window_s=10, baseline_s=60, factor=2, min_requests=4, cooldown_s=20), True),
        LoopCheck(line(detect="rate", window_s=5, baseline_s=20, factor=2, min_requests=4, action="throttle"), True),
        LoopCheck(line(detect="rate", window_s=10, baseline_s=30, factor=1.5, min_requests=3, action="monitor"), True),
    ]
    rng = random.Random(7)
    key = f"k-{uuid.uuid4().hex[:8]}"

    async def go() -> None:
        redis_state = RedisLoopState(connect(store_url, timeout_s=5, max_connections=8))
        local = LocalLoopState()
        t = 1_800_000_000_000
        outcomes = set()
        for i in range(1200):
            t += rng.choice([0, 100, 700, 2000, 6000])
            if rng.random() < 0.02:
                t -= 3000  # another instance's clock, a little behind
            rate = rules[(i // 150) % len(rules)]
            want = local.check_now("acme", key, b"x" * 16, rate, None, t)
            got = await redis_state.check("acme", key, b"x" * 16, rate, None, t)
            assert got == want, (i, t, got, want)
            outcomes.update(v.outcome for v in got)
        assert {"ok", "block", "cooling", "throttle", "monitor"} <= outcomes
        await redis_state.close()

    asyncio.run(go())


@pytest.mark.parametrize("refusing_redis", ["readonly"], indirect=True)
async def test_a_read_only_redis_is_store_unavailable(refusing_redis: tuple[Server, str]) -> None:  # noqa: F811
    """A replica after a fail-over refuses writes: the policy's fail_open or fail_closed applies,
    never a 500 (redis-py's own class for that reply carries no code)."""
    server, code = refusing_redis
    state = RedisLoopState(aioredis.Redis.from_url(redis_url(server), socket_timeout=5))
    try:
        with pytest.raises(StoreUnavailable, match=code):
            await state.check("acme", "k", b"x" * 16, None, LoopCheck(line(), True), 1)
    finally:
        await state.close()
