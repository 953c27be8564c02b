"""Spend caps through real gateway processes: 402 in both SDKs, exactness across instances sharing
one Redis, clamping, settlement of every kind of call, and the store being unreachable.

Costs are deterministic: the mock counts input tokens as ceil(chars/4) per text piece (the
gateway's estimate with zero overheads reserves exactly that), and `chunks=10,chunk_size=4`
makes a 40-character reply, 10 output tokens, so with `max_tokens = 10` the worst case reserved
equals the actual cost and a cap of N times the cost admits exactly N requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
from tests.conftest import GATEWAY_KEY, Server, free_port, gateway_config, redis_url, scrape, start_gateway

from sluicegate.spend import SpendSettings
from sluicegate.spend.redis_store import RedisStore

# $1/MTok input = 1,000 nUSD a token; $2/MTok output = 2,000 nUSD a token.
# "hello" = 2 input tokens, 10 output tokens: 2,000 + 20,000 = 22,000 nUSD a request.
COST_NUSD = 22_000
MODEL = "mh/mock-gpt@chunks=10,chunk_size=4"
CLAUDE = "mh/mock-claude@chunks=10,chunk_size=4"
MESSAGES = [{"role": "user", "content": "hello"}]


def spend_toml(n_requests: int, *, backend: str = "local", prefix: str = "sg", extra: str = "") -> str:
    limit_usd = f"{n_requests * COST_NUSD / 1e9:.9f}"
    return f"""
[spend]
backend = "{backend}"
key_prefix = "{prefix}"
estimate = {{ per_message_tokens = 0, per_request_tokens = 0 }}
{extra}

[spend.price_overrides.mock-gpt]
input_usd_per_mtok = "1"
output_usd_per_mtok = "2"

[spend.price_overrides.mock-claude]
input_usd_per_mtok = "1"
output_usd_per_mtok = "2"

[[spend.caps]]
level = "workspace"
id = "ws-test"
org = "default"
window = "day"
limit_usd = "{limit_usd}"
"""


def chat(client: httpx.Client | httpx.AsyncClient, base: str, **body: object):  # type: ignore[no-untyped-def]
    payload = {"model": MODEL, "messages": MESSAGES, "max_tokens": 10, **body}
    return client.post(f"{base}/v1/chat/completions", json=payload, headers={"authorization": f"Bearer {GATEWAY_KEY}"})


@pytest.fixture
def capped(mock_server: Server, tmp_path: Path) -> Iterator[Server]:
    with start_gateway(gateway_config(tmp_path / "c.toml", mock_server.url, spend_toml(5))) as gw:
        yield gw


def test_402_in_both_sdks_names_the_cap(capped: Server) -> None:
    # default retries on both: a 402 must not be retried
    with (
        openai.OpenAI(base_url=f"{capped.url}/v1", api_key=GATEWAY_KEY) as oa,
        anthropic.Anthropic(base_url=capped.url, api_key=GATEWAY_KEY) as an,
    ):
        check_402(oa, an)
    refused = policy_events(capped)['{action="refuse",entity="workspace",policy="spend"}']
    assert refused == 2  # the OpenAI and the Anthropic refusal, each an event


def check_402(oa: openai.OpenAI, an: anthropic.Anthropic) -> None:
    for _ in range(3):
        oa.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=10)  # type: ignore[arg-type]
    for _ in range(2):
        an.messages.create(model=CLAUDE, messages=MESSAGES, max_tokens=10)  # type: ignore[arg-type]
    with pytest.raises(openai.APIStatusError) as oe:
        oa.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=10)  # type: ignore[arg-type]
    err = oe.value
    assert err.status_code == 402 and err.code == "spend_limit_exceeded"
    assert "workspace 'ws-test'" in err.message and "day cap of $0.00011" in err.message
    assert "spent $0.00011" in err.message and "resets at" in err.message
    assert err.response.headers["x-should-retry"] == "false"
    assert err.response.headers["x-sluicegate-cap-level"] == "workspace"
    assert err.response.headers["x-sluicegate-cap-limit-nusd"] == str(5 * COST_NUSD)
    assert err.response.headers["x-sluicegate-cap-spent-nusd"] == str(5 * COST_NUSD)
    assert err.response.headers["x-sluicegate-cap-resets-at"].endswith("T00:00:00Z")
    with pytest.raises(anthropic.PaymentRequiredError) as ae:
        an.messages.create(model=CLAUDE, messages=MESSAGES, max_tokens=10)  # type: ignore[arg-type]
    assert "ws-test" in str(ae.value)


def test_failed_calls_release_their_reservation(capped: Server) -> None:
    with httpx.Client(timeout=10) as client:
        for _ in range(4):  # upstream errors and an unreachable provider: nothing spent
            assert chat(client, capped.url, model="mh/mock-gpt@fault=500").status_code == 500
            assert chat(client, capped.url, model="dead/mock-gpt").status_code == 502
        assert [chat(client, capped.url).status_code for _ in range(6)] == [200] * 5 + [402]


def test_unknown_price_is_refused_not_free(capped: Server) -> None:
    with httpx.Client() as client:
        r = chat(client, capped.url, model="mh/some-unpriced-model")
    assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_model_price"


def test_clamp_lowers_max_tokens_to_what_the_budget_pays(mock_server: Server, tmp_path: Path) -> None:
    toml = spend_toml(5, extra="min_clamp_output_tokens = 1").replace(
        'window = "day"', 'window = "day"\non_insufficient = "clamp"'
    )
    with start_gateway(gateway_config(tmp_path / "c.toml", mock_server.url, toml)) as gw, httpx.Client() as client:
        r = chat(client, gw.url, model="mh/mock-gpt@echo=1", max_tokens=1000)
        assert r.status_code == 200
        seen = json.loads(r.json()["choices"][0]["message"]["content"])
        # budget 110,000 nUSD: 2 input tokens cost 2,000, leaving 54 output tokens at 2,000 each
        assert seen["body"]["max_tokens"] == 54


async def _drive(urls: list[str], n: int, *, stream: bool, leave_early: bool = False) -> list[int]:
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=200)) as client:

        async def one(url: str) -> int:
            payload = {"model": MODEL, "messages": MESSAGES, "max_tokens": 10, "stream": stream}
            headers = {"authorization": f"Bearer {GATEWAY_KEY}"}
            if not stream:
                return (await client.post(f"{url}/v1/chat/completions", json=payload, headers=headers)).status_code
            async with client.stream("POST", f"{url}/v1/chat/completions", json=payload, headers=headers) as r:
                async for line in r.aiter_lines():
                    if leave_early and line.startswith("data: "):
                        break  # the client goes away after the first event
                return r.status_code

        return await asyncio.gather(*(one(url) for url, _ in zip(itertools.cycle(urls), range(n), strict=False)))


async def _spent_reserved(redis: Server, prefix: str) -> tuple[int, int]:
    settings = SpendSettings.model_validate(json_settings(redis, prefix))
    store = RedisStore.from_settings(settings)
    try:
        return await store.snapshot(settings.lines()[0])
    finally:
        await store.close()


def json_settings(redis: Server, prefix: str) -> dict:  # type: ignore[type-arg]
    return {
        "backend": "redis",
        "redis_url": redis_url(redis),
        "key_prefix": prefix,
        "caps": [{"level": "workspace", "id": "ws-test", "org": "default", "window": "day", "limit_usd": "1"}],
    }


@contextlib.contextmanager
def three_gateways(mock_server: Server, redis: Server, tmp_path: Path, n: int, prefix: str) -> Iterator[list[str]]:
    extra = f'redis_url = "{redis_url(redis)}"'
    config = gateway_config(
        tmp_path / "c.toml", mock_server.url, spend_toml(n, backend="redis", prefix=prefix, extra=extra)
    )
    with start_gateway(config) as a, start_gateway(config) as b, start_gateway(config) as c:
        yield [a.url, b.url, c.url]


@pytest.mark.parametrize(("stream", "leave_early"), [(False, False), (True, False), (True, True)])
async def test_cap_is_exact_across_three_instances(
    mock_server: Server, redis_server: Server, tmp_path: Path, stream: bool, leave_early: bool
) -> None:
    n, total, prefix = 120, 400, f"t{uuid.uuid4().hex[:8]}"  # several hundred at once, 120 admitted
    with three_gateways(mock_server, redis_server, tmp_path, n, prefix) as urls:
        statuses = await _drive(urls, total, stream=stream, leave_early=leave_early)
        assert statuses.count(200) == n and statuses.count(402) == total - n, sorted(statuses)
        await asyncio.sleep(0.5)  # settlements of streams whose clients left
        assert await _spent_reserved(redis_server, prefix) == (n * COST_NUSD, 0)


async def test_a_mix_of_outcomes_leaks_nothing(mock_server: Server, redis_server: Server, tmp_path: Path) -> None:
    """Successes, upstream failures, mid-stream failures and clients that leave: reserved returns to
    0 and spent equals the sum of what each call cost, to the nano-USD."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    with three_gateways(mock_server, redis_server, tmp_path, 1000, prefix) as urls:
        async with httpx.AsyncClient(timeout=30) as client:
            ok = await asyncio.gather(*(chat(client, u) for u in urls * 4))
            failed = await asyncio.gather(*(chat(client, u, model="mh/mock-gpt@fault=429") for u in urls * 2))
            timed_out = await asyncio.gather(*(chat(client, u, model="mh/mock-gpt@first_byte_ms=4000") for u in urls))
            broken = await asyncio.gather(
                *(chat(client, u, stream=True, model=MODEL.replace("@", "@fault=disconnect,")) for u in urls)
            )
        left = await _drive(urls, 6, stream=True, leave_early=True)
        assert [r.status_code for r in ok] == [200] * 12
        assert {r.status_code for r in failed} == {429} and {r.status_code for r in timed_out} == {504}
        assert {r.status_code for r in broken} == {200} and left == [200] * 6
        await asyncio.sleep(0.5)
        # 12 successes and 6 early leavers cost their usage (equal to the reservation); the 3 broken
        # streams produced output without usage: settled at their reservation, the same amount.
        assert await _spent_reserved(redis_server, prefix) == ((12 + 6 + 3) * COST_NUSD, 0)


@pytest.mark.parametrize(("behaviour", "status"), [("fail_closed", 503), ("fail_open", 200)])
def test_unreachable_store(mock_server: Server, tmp_path: Path, behaviour: str, status: int) -> None:
    extra = f'redis_url = "redis://127.0.0.1:{free_port()}/0"\non_redis_error = "{behaviour}"'
    config = gateway_config(tmp_path / "c.toml", mock_server.url, spend_toml(5, backend="redis", extra=extra))
    with start_gateway(config) as gw, httpx.Client() as client:
        r = chat(client, gw.url)
        assert r.status_code == status
        if status == 503:
            assert r.json()["error"]["code"] == "spend_store_unavailable"
        # open or closed, the call records that the caps could not be checked
        events = policy_events(gw)
        assert events['{action="store_unavailable",entity="store",policy="spend"}'] == 1, events


async def test_an_instance_killed_mid_stream_never_overspends(
    mock_server: Server, redis_server: Server, tmp_path: Path
) -> None:
    """SIGKILL leaves a reservation behind: it blocks its amount until its TTL, then counts as spent."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    extra = f'redis_url = "{redis_url(redis_server)}"\nreservation_ttl_s = 3'
    config = gateway_config(
        tmp_path / "c.toml", mock_server.url, spend_toml(3, backend="redis", prefix=prefix, extra=extra)
    )
    env = {"SLUICEGATE_UPSTREAM__TOTAL_TIMEOUT_S": "2.5"}
    with start_gateway(config, env) as doomed, start_gateway(config, env) as survivor:
        started = threading.Event()

        def slow_stream() -> None:
            with contextlib.suppress(httpx.HTTPError), httpx.Client(timeout=10) as client:
                payload = {"model": MODEL + ",delay_ms=2000", "messages": MESSAGES, "max_tokens": 10, "stream": True}
                headers = {"authorization": f"Bearer {GATEWAY_KEY}"}
                with client.stream("POST", f"{doomed.url}/v1/chat/completions", json=payload, headers=headers) as r:
                    for _ in r.iter_lines():
                        started.set()

        thread = threading.Thread(target=slow_stream, daemon=True)
        thread.start()
        assert started.wait(10)
        os.killpg(doomed.proc.pid, signal.SIGKILL)
        assert await _spent_reserved(redis_server, prefix) == (0, COST_NUSD)
        with httpx.Client() as client:  # the orphaned reservation still counts: 2 more fit, not 3
            assert [chat(client, survivor.url).status_code for _ in range(3)] == [200, 200, 402]
        await asyncio.sleep(3.5)
        with httpx.Client() as client:  # expired: counted as spent, so the cap is still full
            assert chat(client, survivor.url).status_code == 402
        assert await _spent_reserved(redis_server, prefix) == (3 * COST_NUSD, 0)
        thread.join(5)


def policy_events(gateway: Server) -> dict[str, float]:
    """`sluicegate_policy_events_total` by (policy, action, entity), from /metrics."""
    out = {}
    for line in scrape(gateway.url).splitlines():
        if line.startswith("sluicegate_policy_events_total{"):
            labels, value = line.rsplit(" ", 1)
            out[labels[len("sluicegate_policy_events_total") :]] = float(value)
    return out


def test_monitor_mode_never_refuses_but_records_and_thresholds_alert(mock_server: Server, tmp_path: Path) -> None:
    toml = spend_toml(2).replace('window = "day"', 'window = "day"\nmode = "monitor"\nthresholds = [50, 100]')
    with start_gateway(gateway_config(tmp_path / "c.toml", mock_server.url, toml)) as gw, httpx.Client() as client:
        assert [chat(client, gw.url).status_code for _ in range(4)] == [200] * 4  # a monitor cap never refuses
        events = policy_events(gw)
    would = '{action="would_refuse",entity="workspace",policy="spend"}'
    assert events[would] == 2  # the 3rd and 4th calls would have crossed the cap
    assert events['{action="threshold",entity="workspace",policy="spend"}'] == 2  # 50 % and 100 %, once each
