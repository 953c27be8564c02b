"""Loop detection, measured per request: the normalized hash, the local state's step (both rules:
repeat and rate), and the two together, against a baseline from the same run: what the pipeline
already pays for every request's body (orjson parse, then serialize to forward it). Two bodies: a
short chat request and a long agent conversation (40 messages, about 32 KB). Also: the cost when no
rule applies (the caller's rules looked up, nothing else), and one Redis script call a request.

    .venv/bin/python -m pytest benches/bench_loops.py --benchmark-enable --benchmark-only -q

The state sees a legitimate agent: 1024 different requests in turn, 100 ms apart on the injected
clock, so each comes back every 102 s, outside the 60 s window (every verdict is `ok`, the common
case; a detection costs the same steps plus a Verdict).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from tests.conftest import Server, free_port, spawn

from sluicegate.policy.auth import Identity
from sluicegate.policy.loop_rules import LoopLine, LoopRuleFields, LoopRuleSettings, LoopSettings, request_hash
from sluicegate.policy.loop_state import LocalLoopState, LoopCheck, RedisLoopState
from sluicegate.policy.loops import LoopPolicy

N_BODIES = 1024


def _bodies(size: str) -> list[dict[str, Any]]:
    out = []
    for i in range(N_BODIES):
        if size == "short":
            messages = [
                {"role": "system", "content": "You are a careful assistant."},
                {"role": "user", "content": f"Summarise ticket #{i} in two sentences."},
            ]
        else:
            messages = [
                {"role": "user" if j % 2 else "assistant", "content": f"step {j} of task {i}: " + "lorem ipsum " * 66}
                for j in range(40)
            ]
        out.append({"model": "gpt-4.1-mini", "messages": messages, "max_tokens": 256, "stream": True, "user": "u-1"})
    return out


BODIES = {size: _bodies(size) for size in ("short", "long")}
RAW = {size: [orjson.dumps(b) for b in bodies] for size, bodies in BODIES.items()}
REPEAT = LoopCheck(LoopLine(LoopRuleFields(max_repeats=5, window_s=60), "workspace", "ws", "acme"), True)
RATE = LoopCheck(
    LoopLine(LoopRuleFields(detect="rate", window_s=60, baseline_s=3600, factor=10), "workspace", "ws", "acme"), True
)


@pytest.mark.parametrize("size", ["short", "long"])
def test_baseline_parse_and_forward(benchmark: Any, size: str) -> None:
    raws = itertools.cycle(RAW[size])

    def run() -> None:
        orjson.dumps(orjson.loads(next(raws)))

    benchmark.extra_info["bytes"] = len(RAW[size][0])
    benchmark(run)


@pytest.mark.parametrize("size", ["short", "long"])
def test_hash(benchmark: Any, size: str) -> None:
    bodies = itertools.cycle(BODIES[size])
    benchmark(lambda: request_hash("openai.chat", next(bodies)))


def test_local_state(benchmark: Any) -> None:
    state = LocalLoopState()
    digests = itertools.cycle([i.to_bytes(16, "big") for i in range(N_BODIES)])
    clock = itertools.count(1_800_000_000_000, 100)

    def run() -> None:
        state.check_now("acme", "k1", next(digests), RATE, REPEAT, next(clock))

    benchmark(run)


@pytest.mark.parametrize("size", ["short", "long"])
def test_hash_and_local_state(benchmark: Any, size: str) -> None:
    state = LocalLoopState()
    bodies = itertools.cycle(BODIES[size])
    clock = itertools.count(1_800_000_000_000, 100)
    seen: list[str] = []

    def run() -> None:
        verdicts = state.check_now("acme", "k1", request_hash("openai.chat", next(bodies)), RATE, REPEAT, next(clock))
        if verdicts[-1].outcome != "ok":
            seen.append(verdicts[-1].outcome)

    benchmark(run)
    assert seen == []  # a legitimate agent: never flagged


def test_no_rule_applies(benchmark: Any) -> None:
    rules = (LoopRuleSettings(level="workspace", id="other", org="acme"),)
    policy = LoopPolicy(LoopSettings(rules=rules))
    who = Identity("k1", "ws", "acme")
    benchmark(lambda: policy.rules_for(who))


@pytest.fixture(scope="module")
def redis_server() -> Iterator[Server]:
    port = free_port()
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with spawn(args, port, {"LD_PRELOAD": ""}) as server:
        yield server


BATCH = 200


def test_redis_state(benchmark: Any, redis_server: Server) -> None:
    """One script call a request (the round trip is most of it), per BATCH requests."""
    loop = asyncio.new_event_loop()
    state = RedisLoopState(aioredis.Redis.from_url(f"redis://127.0.0.1:{redis_server.port}/0"))
    digests = itertools.cycle([i.to_bytes(16, "big") for i in range(N_BODIES)])
    clock = itertools.count(1_800_000_000_000, 100)

    async def batch() -> None:
        for _ in range(BATCH):
            await state.check("acme", "k1", next(digests), RATE, REPEAT, next(clock))

    calls = state.calls
    loop.run_until_complete(batch())
    benchmark.extra_info["round_trips_per_request"] = (state.calls - calls) / BATCH
    benchmark(lambda: loop.run_until_complete(batch()))
    loop.run_until_complete(state.close())
    loop.close()
