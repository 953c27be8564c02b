"""Runaway loops through a real gateway on a real socket, in front of the mock provider on its own.

The gateway runs in this process (granian embedded, in a thread of its own), built with a clock the
test holds: ten minutes of an agent's loop pass in the time it takes to send the requests, and
nothing depends on today's date. The clients are the real SDKs, with their own retries.

THE scenario: an agent re-sends one request that fails every time (the provider answers 503) in a
loop, as the seed's overnight retry loop did; with a rule of 5 repeats in 60 s and a 10-minute
block, the provider sees 5 calls, then none until the cool-down ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from granian.constants import Interfaces
from granian.server.embed import Server as Embedded
from tests.conftest import GATEWAY_KEY, METRICS_TOKEN, Server, free_port, gateway_config, redis_url, start_gateway
from tests.integration.test_langsmith import StandIn

from sluicegate.app import App
from sluicegate.config import load_settings

FAILING = "mh/mock-gpt@fault=503"  # the mock answers 503 with retry-after-ms: 10 (the SDK retries twice)
MESSAGES = [{"role": "user", "content": "summarise the quarterly report"}]
T0 = 1_800_000_000.0  # 2027-01-15: the tests' own time


class Clock:
    """A wall clock the test moves."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class InProcess:
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.contextmanager
def inproc_gateway(config: Path, clock: Clock) -> Iterator[InProcess]:
    """The gateway of `config`, built with `clock`, served on a free port by granian in a thread."""
    app = App(load_settings(config, environ={}), environ={}, clock=clock)
    port = free_port()
    server = Embedded(app, address="127.0.0.1", port=port, interface=Interfaces.ASGI, log_enabled=False)
    loops: list[asyncio.AbstractEventLoop] = []

    def run() -> None:
        loop = asyncio.new_event_loop()
        loops.append(loop)
        loop.run_until_complete(server.serve())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    try:
        yield InProcess(port)
    finally:
        loops[0].call_soon_threadsafe(server.stop)
        thread.join(15)


def loops_toml(rules: str, extra: str = "") -> str:
    return f"\n[loops]\n{extra}\n{rules}\n"


REPEAT_BLOCK = """
[[loops.rules]]
level = "workspace"
id = "ws-test"
org = "default"
detect = "repeat"
max_repeats = 5
window_s = 60
action = "block"
cooldown_s = 600
"""


def provider_calls(mock: Server) -> int:
    return int(httpx.get(f"{mock.url}/mock/stats", timeout=5).json()["requests"])


def loop_events(url: str) -> dict[str, float]:
    """`sluicegate_policy_events_total` of policy `loops`, by action."""
    text = httpx.get(f"{url}/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"}, timeout=5).text
    out: dict[str, float] = {}
    for found in re.finditer(
        r'sluicegate_policy_events_total\{action="(\w+)",entity="\w+",policy="loops"\} (\S+)', text
    ):
        out[found[1]] = out.get(found[1], 0) + float(found[2])
    return out


def test_a_failing_request_resent_in_a_loop_ends_within_minutes(mock_server: Server, tmp_path: Path) -> None:
    clock = Clock()
    config = gateway_config(tmp_path / "gw.toml", mock_server.url, loops_toml(REPEAT_BLOCK))
    with inproc_gateway(config, clock) as gw, openai.OpenAI(base_url=f"{gw.url}/v1", api_key=GATEWAY_KEY) as agent:
        before = provider_calls(mock_server)
        results: list[Any] = []
        # The agent: the same call every 20 s of its clock, for ten minutes, whatever comes back;
        # the SDK retries each 503 twice on its own (3 attempts a call).
        for _ in range(30):
            try:
                agent.chat.completions.create(model=FAILING, messages=MESSAGES)  # type: ignore[arg-type]
                results.append(200)
            except openai.RateLimitError as exc:
                results.append(exc)
            except openai.InternalServerError as exc:
                results.append(exc.status_code)
            clock.advance(20)
        # Call 1: three attempts, all 503. Call 2: attempts 4 and 5 reach the provider, the 6th is
        # the sixth identical request within 60 s: refused, and the SDK does not retry it.
        assert results[0] == 503
        assert all(isinstance(r, openai.RateLimitError) for r in results[1:])
        assert provider_calls(mock_server) - before == 5  # and none during the cool-down

        first = results[1]
        assert first.status_code == 429 and first.code == "loop_detected"
        assert first.response.headers["x-should-retry"] == "false"
        assert first.response.headers["retry-after"] == "600"
        assert "the same request came 6 times within 60 s" in first.message
        assert "workspace 'ws-test'" in first.message and "quarterly" not in first.message
        last = results[-1]  # 28 x 20 s after the block: 560 s of the cool-down gone
        assert last.code == "loop_detected" and last.response.headers["retry-after"] == "40"
        assert int(last.response.headers["retry-after-ms"]) == 40_000

        events = loop_events(gw.url)
        assert events == {"block": 1, "cooling": 28}  # every decision an event

        # The cool-down ends when the clock passes it: the request gets its five tries again.
        clock.advance(19)  # 599 s after the block: still refused, nothing reaches the provider
        with pytest.raises(openai.RateLimitError):
            agent.chat.completions.create(model=FAILING, messages=MESSAGES)  # type: ignore[arg-type]
        clock.advance(1)  # 600 s: the cool-down is over
        with pytest.raises(openai.InternalServerError):
            agent.chat.completions.create(model=FAILING, messages=MESSAGES)  # type: ignore[arg-type]
        assert provider_calls(mock_server) - before == 8
        with pytest.raises(openai.RateLimitError):
            agent.chat.completions.create(model=FAILING, messages=MESSAGES)  # type: ignore[arg-type]
        assert provider_calls(mock_server) - before == 10
        # ten minutes and more of looping reached the provider 10 times, not 93


def chat(client: httpx.Client, url: str, content: str, **body: Any) -> httpx.Response:
    payload = {"model": "mh/mock-gpt", "messages": [{"role": "user", "content": content}], "max_tokens": 5, **body}
    return client.post(f"{url}/v1/chat/completions", json=payload, headers={"authorization": f"Bearer {GATEWAY_KEY}"})


RATE_BLOCK = """
[[loops.rules]]
level = "key"
id = "test"
org = "default"
detect = "rate"
window_s = 60
baseline_s = 300
factor = 3
min_requests = 20
action = "block"
cooldown_s = 300
"""


def test_a_legitimate_agent_at_a_steady_rate_is_never_flagged(mock_server: Server, tmp_path: Path) -> None:
    clock = Clock()
    config = gateway_config(tmp_path / "gw.toml", mock_server.url, loops_toml(REPEAT_BLOCK + RATE_BLOCK))
    with inproc_gateway(config, clock) as gw, httpx.Client(timeout=10) as client:
        statuses = set()
        for i in range(300):  # ten minutes, one call every 2 s (30 a minute), each a new step of its work
            statuses.add(chat(client, gw.url, f"step {i}: what next?").status_code)
            clock.advance(2)
        assert statuses == {200}
        assert loop_events(gw.url) == {}


def test_a_rate_jump_over_the_keys_own_baseline_blocks_the_key(mock_server: Server, tmp_path: Path) -> None:
    clock = Clock(T0 - T0 % 60)  # at the start of a window, so windows are the test's minutes
    config = gateway_config(tmp_path / "gw.toml", mock_server.url, loops_toml(RATE_BLOCK))
    with inproc_gateway(config, clock) as gw, httpx.Client(timeout=10) as client:
        for i in range(30):  # the baseline: five minutes at 6 a minute
            assert chat(client, gw.url, f"baseline {i}").status_code == 200
            clock.advance(10)
        statuses = []
        for i in range(25):  # then a burst: over 3 x 6 = 18, and at least 20, in one minute
            r = chat(client, gw.url, f"burst {i}")
            statuses.append(r.status_code)
            clock.advance(1)
        assert statuses == [200] * 19 + [429] * 6
        r = chat(client, gw.url, "something else entirely")  # the whole key is refused
        error = r.json()["error"]
        assert r.status_code == 429 and error["code"] == "rate_anomaly"
        assert r.headers["x-should-retry"] == "false" and r.headers["x-sluicegate-loop-rule"] == "key:test:rate"
        assert int(r.headers["retry-after"]) == 300 - 6
        assert "every request of this key" in error["message"]
        assert loop_events(gw.url) == {"block": 1, "cooling": 6}
        clock.advance(300)
        assert chat(client, gw.url, "after the cool-down").status_code == 200


def test_a_streamed_request_is_the_same_request(mock_server: Server, tmp_path: Path) -> None:
    rule = REPEAT_BLOCK.replace("max_repeats = 5", "max_repeats = 2")
    config = gateway_config(tmp_path / "gw.toml", mock_server.url, loops_toml(rule))
    with inproc_gateway(config, Clock()) as gw, openai.OpenAI(base_url=f"{gw.url}/v1", api_key=GATEWAY_KEY) as agent:
        agent.chat.completions.create(model="mh/mock-gpt", messages=MESSAGES, user="run-1")  # type: ignore[arg-type]
        stream = agent.chat.completions.create(  # type: ignore[call-overload]
            model="mh/mock-gpt",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            user="run-2",
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        with pytest.raises(openai.RateLimitError) as e:  # the third time, streamed or not
            agent.chat.completions.create(model="mh/mock-gpt", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
        assert e.value.code == "loop_detected"
        # another request of the same agent still goes through
        other = [{"role": "user", "content": "another question"}]
        agent.chat.completions.create(model="mh/mock-gpt", messages=other)  # type: ignore[arg-type]


def test_monitor_records_an_event_and_feedback_on_the_run(mock_server: Server, tmp_path: Path) -> None:
    standin = StandIn()
    rule = REPEAT_BLOCK.replace("max_repeats = 5", "max_repeats = 2").replace('action = "block"', 'action = "monitor"')
    ls = f'[langsmith]\nenabled = true\nendpoint = "{standin.url}"\napi_key = "ls-test"\nproject = "loops"\n'
    config = gateway_config(tmp_path / "gw.toml", mock_server.url, ls + loops_toml(rule))
    try:
        with inproc_gateway(config, Clock()) as gw, httpx.Client(timeout=10) as client:
            responses = [chat(client, gw.url, "again") for _ in range(3)]
            assert [r.status_code for r in responses] == [200, 200, 200]  # monitor never refuses
            assert loop_events(gw.url) == {"monitor": 1}
            rid = responses[2].headers["x-sluicegate-request-id"]

            def run_of(s: StandIn) -> str | None:
                for run_id, run in s.runs.items():
                    if ((run.get("extra") or {}).get("metadata") or {}).get("sluicegate_request_id") == rid:
                        return run_id
                return None

            run_id = standin.wait_for(run_of)
            feedback = standin.wait_for(
                lambda s: [f for f in s.feedback if f["run_id"] == run_id and f["key"] == "sluicegate.loops.monitor"]
            )
            assert feedback[0]["value"] == {"workspace": 1}
    finally:
        standin.close()


def test_one_key_looping_across_two_instances_is_caught(
    mock_server: Server, redis_server: Server, tmp_path: Path
) -> None:
    rule = REPEAT_BLOCK.replace("max_repeats = 5", "max_repeats = 3")
    extra = f'backend = "redis"\nredis_url = "{redis_url(redis_server)}"\nkey_prefix = "two{free_port()}"'
    config = gateway_config(tmp_path / "gw.toml", mock_server.url, loops_toml(rule, extra))
    with start_gateway(config) as a, start_gateway(config) as b, httpx.Client(timeout=10) as client:
        got = [chat(client, gw.url, "the same again").status_code for gw in (a, b, a, b, a)]
        assert got == [200, 200, 200, 429, 429]
        r = chat(client, b.url, "the same again")
        assert r.status_code == 429 and r.json()["error"]["code"] == "loop_detected"
        assert chat(client, a.url, "a different request").status_code == 200


@pytest.mark.parametrize("behaviour", ["fail_open", "fail_closed"])
def test_redis_down(mock_server: Server, tmp_path: Path, behaviour: str) -> None:
    extra = f'backend = "redis"\nredis_url = "redis://127.0.0.1:{free_port()}/0"\nredis_timeout_s = 0.2'
    rule = REPEAT_BLOCK + f'on_store_error = "{behaviour}"\n'
    config = gateway_config(tmp_path / "gw.toml", mock_server.url, loops_toml(rule, extra))
    with inproc_gateway(config, Clock()) as gw, httpx.Client(timeout=10) as client:
        r = chat(client, gw.url, "hello")
        if behaviour == "fail_open":
            assert r.status_code == 200
        else:
            assert r.status_code == 503 and r.json()["error"]["code"] == "loop_store_unavailable"
        assert loop_events(gw.url) == {"store_unavailable": 1}


def test_throttle_in_the_anthropic_format(mock_server: Server, tmp_path: Path) -> None:
    rule = REPEAT_BLOCK.replace("max_repeats = 5", "max_repeats = 2").replace('action = "block"', 'action = "throttle"')
    rule += "throttle_interval_s = 30\n"
    config = gateway_config(tmp_path / "gw.toml", mock_server.url, loops_toml(rule))
    clock = Clock()
    messages = [{"role": "user", "content": "poll the job status"}]
    with (
        inproc_gateway(config, clock) as gw,
        anthropic.Anthropic(base_url=gw.url, api_key=GATEWAY_KEY, max_retries=0) as agent,
    ):

        def call() -> Any:
            return agent.messages.create(model="mh/mock-claude", max_tokens=5, messages=messages)  # type: ignore[arg-type]

        for _ in range(3):  # two, then the first detected one passes (one per interval)
            call()
            clock.advance(1)
        with pytest.raises(anthropic.RateLimitError) as e:
            call()
        err = e.value
        assert err.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
        assert "throttled" in err.message and "one through every 30 s" in err.message
        assert err.response.headers["retry-after"] == "29"  # the pass was 1 s ago
        assert "x-should-retry" not in err.response.headers  # a throttle may be retried after retry-after
        clock.advance(29)
        call()  # the next one through
        with pytest.raises(anthropic.RateLimitError):
            call()
        assert loop_events(gw.url) == {"throttle_pass": 2, "throttle": 2}
