"""Chaos: one routed model, three deployments, each a mock provider process on its own socket
(`a` answers every call 429 with `retry-after-ms: 10`, `b` cuts every answer mid-way, `c` is healthy),
500 concurrent calls from the real SDKs through one gateway process with spend caps on (Redis)
and the control plane's ledger. Then `a` is healed and traffic comes back to it.

What "all succeed" means here: every call gets its whole answer, because every failure happens
where the gateway may still retry (docs/routing.md, "Retries"): `a` refuses before any body, and
`b` cuts each stream after its head and part of its first event (a connection dropped inside the
body, before a complete event existed to relay), and each plain answer half way through its body.
A stream cut after its first event reached the client cannot be retried by anyone but the client
(test_routing.py, test_no_retry_after_the_first_byte_of_a_stream).

"None billed twice, none lost": the ledger holds exactly one row per call (by the gateway's
request id), each at the cost of the usage that call's client saw; their sum is the settled
spend of the cap in Redis, with nothing left reserved. Failed attempts reported no usage, so they
cost nothing.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from tests.conftest import (
    PROVIDER_KEY,
    Server,
    free_port,
    gateway_config,
    granian_args,
    redis_url,
    spawn,
    start_gateway,
)
from tests.integration.test_control_gateway import _env, _seed
from tests.integration.test_routing import breaker_state, stats
from tests.integration.test_spend_gateway import policy_events
from tests.unit.control.pg import MASTER_KEY

from sluicegate.control.settings import ControlSettings

N = 500
HEALED_N = 100
MESSAGES = [{"role": "user", "content": "hello"}]
IN_NUSD, OUT_NUSD = 1_000, 2_000  # $1 and $2 per million tokens
ROUTE = "chaos"
BREAKER_COOLDOWN_S = 0.5


def mock_process(knobs: str, output: Path) -> Any:
    """A mock provider process whose every answer has `knobs` (SLUICEGATE_MOCK_KNOBS); its output
    (a traceback per cut connection) goes to a file."""
    port = free_port()
    args = granian_args("sluicegate.mock.app:create_app", port)
    return spawn(args, port, {"SLUICEGATE_MOCK_KNOBS": knobs}, output=output)


@pytest.fixture(scope="module")
def deployments(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server, Server]]:
    logs = tmp_path_factory.mktemp("chaos-mocks")
    with (
        mock_process("fault=429", logs / "a.log") as a,
        mock_process("fault=disconnect,fault_after=0,fault_bytes=9", logs / "b.log") as b,
        mock_process("", logs / "c.log") as c,
    ):
        yield a, b, c


def config(tmp_path: Path, redis: Server, database_url: str, a: Server, b: Server, c: Server) -> Path:
    providers = "".join(
        f'\n[providers.{name}]\nkind = "mock"\nbase_url = "{mock.url}"\napi_key = "{PROVIDER_KEY}"\n'
        for name, mock in (("a", a), ("b", b), ("c", c))
    )
    extra = f"""
[control]
enabled = true
database_url = "{database_url}"
poll_interval_s = 0.25

[spend]
backend = "redis"
redis_url = "{redis_url(redis)}"
key_prefix = "chaos{uuid.uuid4().hex[:8]}"
redis_timeout_s = 10  # one process taking 500 calls at once on a shared machine answers Redis late
estimate = {{ per_message_tokens = 0, per_request_tokens = 0 }}

[spend.price_overrides.mock-gpt]
input_usd_per_mtok = "1"
output_usd_per_mtok = "2"
{providers}
[routing]
breaker_failures = 5
breaker_cooldown_s = {BREAKER_COOLDOWN_S}

[routing.models.{ROUTE}]
deployments = [
    {{ provider = "a", model = "mock-gpt" }},
    {{ provider = "b", model = "mock-gpt" }},
    {{ provider = "c", model = "mock-gpt" }},
]
max_attempts = 3
"""
    path = gateway_config(tmp_path / "gw.toml", c.url, extra)
    # Hundreds of calls at once on a shared machine: no deployment may time out for being slow.
    text = path.read_text().replace("first_byte_timeout_s = 2", "first_byte_timeout_s = 30")
    path.write_text(text.replace("chunk_timeout_s = 2", "chunk_timeout_s = 30"))
    return path


@dataclass
class Call:
    """What one client saw: the gateway's id of the call, who answered, the text, the usage."""

    request_id: str
    deployment: str
    attempts: int
    text: str
    input_tokens: int
    output_tokens: int

    @property
    def cost_nusd(self) -> int:
        return self.input_tokens * IN_NUSD + self.output_tokens * OUT_NUSD


def _call(headers: httpx.Headers, text: str, usage: tuple[int, int]) -> Call:
    return Call(
        headers["x-sluicegate-request-id"],
        headers["x-sluicegate-deployment"],
        int(headers["x-sluicegate-attempts"]),
        text,
        *usage,
    )


async def one_call(i: int, oa: openai.AsyncOpenAI, an: anthropic.AsyncAnthropic) -> Call:
    """Call `i`: the OpenAI or the Anthropic SDK, streamed or not, in turn."""
    kind = i % 4
    if kind == 0:
        raw = await oa.chat.completions.with_raw_response.create(model=ROUTE, messages=MESSAGES, max_tokens=20)  # type: ignore[arg-type]
        done = raw.parse()  # the legacy raw response: parsed in place
        assert done.usage is not None
        usage = (done.usage.prompt_tokens, done.usage.completion_tokens)
        return _call(raw.headers, done.choices[0].message.content or "", usage)
    if kind == 1:
        async with oa.chat.completions.with_streaming_response.create(
            model=ROUTE,
            messages=MESSAGES,  # type: ignore[arg-type]
            max_tokens=20,
            stream=True,
            stream_options={"include_usage": True},
        ) as resp:
            parts, usage = [], (0, 0)
            async for chunk in await resp.parse():
                parts += [c.delta.content or "" for c in chunk.choices]
                if chunk.usage is not None:
                    usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
            return _call(resp.headers, "".join(parts), usage)
    if kind == 2:
        raw_a = await an.messages.with_raw_response.create(model=ROUTE, messages=MESSAGES, max_tokens=20)  # type: ignore[arg-type]
        message = await raw_a.parse()
        text = "".join(b.text for b in message.content if b.type == "text")
        return _call(raw_a.headers, text, (message.usage.input_tokens, message.usage.output_tokens))
    async with an.messages.with_streaming_response.create(
        model=ROUTE,
        messages=MESSAGES,  # type: ignore[arg-type]
        max_tokens=20,
        stream=True,
    ) as sresp:
        parts, input_tokens, output_tokens = [], 0, 0
        async for event in await sresp.parse():
            if event.type == "message_start":
                input_tokens = event.message.usage.input_tokens
            elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                parts.append(event.delta.text)
            elif event.type == "message_delta":
                output_tokens = event.usage.output_tokens
        return _call(sresp.headers, "".join(parts), (input_tokens, output_tokens))


async def wave(url: str, key: str, n: int) -> list[Call]:
    """`n` concurrent calls, every one of them required to succeed; the SDKs' own retries are off,
    so every retry is the gateway's."""
    async with (
        openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=120) as oa,
        anthropic.AsyncAnthropic(base_url=url, api_key=key, max_retries=0, timeout=120) as an,
    ):
        return await asyncio.gather(*(one_call(i, oa, an) for i in range(n)))


def ledger(url: str, org: str, admin: dict[str, str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": "1000", **({"cursor": cursor} if cursor else {})}
        page = httpx.get(f"{url}/admin/v1/orgs/{org}/ledger", params=params, headers=admin, timeout=30).json()
        rows += page["data"]
        if not page["has_more"]:
            return rows
        cursor = page["next_cursor"]


def check_books(url: str, seed: dict[str, Any], admin: dict[str, str], calls: list[Call]) -> None:
    """One ledger row per call at its usage's cost; the cap's settled spend is their sum."""
    org, ws = seed["org"]["id"], seed["ws"]["id"]
    want = {c.request_id: c.cost_nusd for c in calls}
    assert len(want) == len(calls)  # the gateway's ids are unique
    deadline = time.monotonic() + 20
    while True:  # the ledger is written in batches, off the request path
        rows = ledger(url, org, admin)
        if len(rows) >= len(calls) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    seen = Counter(r["request_id"] for r in rows)
    assert [rid for rid, count in seen.items() if count > 1] == []  # none billed twice
    assert set(seen) == set(want)  # none lost, none extra
    assert {r["request_id"]: r["cost_nusd"] for r in rows} == want
    assert all(r["model"] == "mock-gpt" and r["provider"] in ("a", "c") for r in rows)
    spend = httpx.get(f"{url}/admin/v1/workspaces/{ws}/spend", headers=admin, timeout=30).json()
    (cap,) = spend["caps"]
    assert (cap["spent_nusd"], cap["reserved_nusd"]) == (sum(want.values()), 0)


def route_rows(url: str, admin: dict[str, str]) -> dict[str, dict[str, Any]]:
    answer = httpx.get(f"{url}/admin/v1/routes", headers=admin, timeout=10)
    assert answer.status_code == 200
    return {r["deployment"]: r for r in answer.json()["routes"] if r["route"] == ROUTE}


def test_chaos_every_call_succeeds_books_once_and_the_healed_deployment_returns(
    deployments: tuple[Server, Server, Server], redis_server: Server, tmp_path: Path
) -> None:
    a, b, c = deployments
    control = ControlSettings(enabled=True, database_url=f"sqlite:///{tmp_path / 'c.db'}", master_key=MASTER_KEY)
    seed = _seed(control)
    admin = {"authorization": f"Bearer {seed['token']}"}
    with start_gateway(config(tmp_path, redis_server, control.database_url, a, b, c), _env()) as gw:
        policy = {"caps": [{"window": "month", "limit_usd": "100"}]}
        put = httpx.put(f"{gw.url}/admin/v1/workspaces/{seed['ws']['id']}/policy", json=policy, headers=admin)
        assert put.status_code == 200
        time.sleep(0.6)  # the view reloads within a poll interval

        calls = asyncio.run(wave(gw.url, seed["key"], N))
        assert all(len(call.text) == 48 for call in calls)  # the whole default reply, every time
        assert {call.deployment for call in calls} == {"c/mock-gpt"}
        assert max(call.attempts for call in calls) > 1
        assert stats(a)["requests"] > 0 and stats(b)["requests"] > 0
        events = policy_events(gw)
        for entity in ("status_429", "upstream_unreachable"):
            assert events[f'{{action="retry",entity="{entity}",policy="routing"}}'] > 0
        assert events['{action="breaker_open",entity="deployment",policy="routing"}'] >= 2  # a's and b's
        rows = route_rows(gw.url, admin)
        assert rows["a/mock-gpt"]["breaker"] != "closed" and rows["b/mock-gpt"]["breaker"] != "closed"
        assert rows["c/mock-gpt"]["breaker"] == "closed"
        check_books(gw.url, seed, admin, calls)

        # a is healthy again: once its breaker's cool-down is over, a probe closes the breaker and
        # a takes its share of the calls.
        assert httpx.put(f"{a.url}/mock/knobs", content=b"", timeout=5).json() == {}
        time.sleep(BREAKER_COOLDOWN_S + 0.3)
        healed = asyncio.run(wave(gw.url, seed["key"], HEALED_N))
        assert all(len(call.text) == 48 for call in healed)
        assert Counter(call.deployment for call in healed)["a/mock-gpt"] > 0  # its probe, at least
        assert route_rows(gw.url, admin)["a/mock-gpt"]["breaker"] == "closed"
        assert breaker_state(gw, ROUTE, "a/mock-gpt") == 0
        assert policy_events(gw)['{action="breaker_closed",entity="deployment",policy="routing"}'] >= 1
        # Closed, it takes its share again (a third of first attempts; b's never succeed).
        after = asyncio.run(wave(gw.url, seed["key"], HEALED_N))
        served = Counter(call.deployment for call in after)
        assert served["a/mock-gpt"] >= HEALED_N // 6 and set(served) == {"a/mock-gpt", "c/mock-gpt"}, served
        check_books(gw.url, seed, admin, calls + healed + after)
    # b cut streams (as well as plain answers), and every call it cut was served by another.
    assert stats(b)["streams_disconnected"] > 0 and stats(b)["streams_completed"] == 0
