"""`/metrics` of every worker: `sluicegate serve` with two granian workers, calls spread over both
(each worker's request ids carry its own prefix, so the test sees the spread), and one scrape,
whichever worker answers it, gives the exact sums: calls, latency and time-to-first-token counts,
tokens, upstream errors; process metrics per worker (a `pid` label)."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import httpx
import openai
from prometheus_client.parser import text_string_to_metric_families
from tests.conftest import GATEWAY_KEY, METRICS_TOKEN, Server, gateway_config, redis_url, start_gateway

AUTH = {"authorization": f"Bearer {METRICS_TOKEN}"}
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape_fresh(url: str) -> str:
    with httpx.Client() as client:  # a new connection: any worker may answer
        response = client.get(f"{url}/metrics", headers=AUTH, timeout=5)
    assert response.status_code == 200, response.text
    return response.text


def test_one_scrape_sums_every_worker(mock_server: Server, tmp_path: Path) -> None:
    env = {"SLUICEGATE_SERVER__WORKERS": "2", "SLUICEGATE_METRICS__PUBLISH_INTERVAL_S": "0.2"}
    with start_gateway(gateway_config(tmp_path / "c.toml", mock_server.url), env) as server:
        prefixes: dict[str, int] = {}
        streamed = whole = failed = 0
        output_tokens = 0
        for i in range(40):
            # a new client (and connection) a call: the kernel spreads connections over the workers
            with openai.OpenAI(base_url=f"{server.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client:
                if i % 4 == 3:
                    try:
                        client.chat.completions.create(
                            model="mh/mock-gpt@fault=500", messages=[{"role": "user", "content": "x"}]
                        )
                    except openai.InternalServerError as err:
                        rid = err.response.headers["x-sluicegate-request-id"]
                        failed += 1
                elif i % 2:
                    raw = client.chat.completions.with_raw_response.create(
                        model="mh/mock-gpt",
                        messages=[{"role": "user", "content": "hi"}],
                        stream=True,
                        stream_options={"include_usage": True},
                    )
                    rid = raw.headers["x-sluicegate-request-id"]
                    chunks = list(raw.parse())
                    output_tokens += next(c.usage for c in chunks if c.usage).completion_tokens
                    streamed += 1
                else:
                    raw = client.chat.completions.with_raw_response.create(
                        model="mh/mock-gpt", messages=[{"role": "user", "content": "hi"}]
                    )
                    rid = raw.headers["x-sluicegate-request-id"]
                    usage = raw.parse().usage
                    assert usage is not None
                    output_tokens += usage.completion_tokens
                    whole += 1
            prefixes[rid[:12]] = prefixes.get(rid[:12], 0) + 1  # a worker's own random prefix
        assert len(prefixes) == 2, f"the calls did not reach both workers: {prefixes}"

        m = {"route": "openai_chat", "provider": "mh", "model": "mock-gpt"}
        want = {"ok": streamed + whole, "failed": failed}
        deadline = time.monotonic() + 10
        while True:
            found = samples(scrape_fresh(server.url))
            got = {
                "ok": value(found, "sluicegate_requests_total", **m, status="200"),
                # the knobs make the model name one of no listed model's: `other`
                "failed": value(found, "sluicegate_requests_total", **{**m, "model": "other"}, status="500"),
            }
            if got == want or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert got == want
        assert value(found, "sluicegate_request_duration_seconds_count", **m) == streamed + whole
        assert value(found, "sluicegate_time_to_first_token_seconds_count", **m) == streamed
        assert value(found, "sluicegate_model_tokens_total", provider="mh", model="mock-gpt", direction="output") == (
            output_tokens
        )
        assert value(found, "sluicegate_upstream_errors_total", provider="mh", model="other", **{"class": "5xx"}) == (
            failed
        )
        pids = {dict(labels)["pid"] for name, labels in found if name == "process_resident_memory_bytes"}
        assert len(pids) == 2, pids  # each worker's own process figures

        # Every scrape sums the same, whichever worker answers it (new connections: both answer some).
        for _ in range(20):
            again = samples(scrape_fresh(server.url))
            assert value(again, "sluicegate_requests_total", **m, status="200") == want["ok"]


def test_cap_budgets_are_the_stores_figures_not_summed_over_workers(
    mock_server: Server, redis_server: Server, tmp_path: Path
) -> None:
    cost = 22_000  # "hello": 2 input tokens at $1/MTok, 10 output tokens at $2/MTok
    spend = f"""
[spend]
backend = "redis"
redis_url = "{redis_url(redis_server)}"
key_prefix = "budgets-{secrets.token_hex(4)}"
estimate = {{ per_message_tokens = 0, per_request_tokens = 0 }}

[spend.price_overrides.mock-gpt]
input_usd_per_mtok = "1"
output_usd_per_mtok = "2"

[[spend.caps]]
level = "workspace"
id = "ws-test"
org = "default"
window = "day"
limit_usd = "{5 * cost / 1e9:.9f}"
"""
    env = {"SLUICEGATE_SERVER__WORKERS": "2", "SLUICEGATE_METRICS__PUBLISH_INTERVAL_S": "0.2"}
    with start_gateway(gateway_config(tmp_path / "c.toml", mock_server.url, spend), env) as server:
        for _ in range(3):
            with httpx.Client() as client:
                body = {
                    "model": "mh/mock-gpt@chunks=10,chunk_size=4",
                    "messages": [{"role": "user", "content": "hello"}],
                    "max_tokens": 10,
                }
                answer = client.post(
                    f"{server.url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {GATEWAY_KEY}"}
                )
                assert answer.status_code == 200, answer.text
        cap = {"org": "default", "level": "workspace", "id": "ws-test", "window": "day"}
        for _ in range(10):  # every scrape, whichever worker answers: the store's figures, once
            found = samples(scrape_fresh(server.url))
            assert value(found, "sluicegate_cap_limit_nusd", **cap) == 5 * cost
            assert value(found, "sluicegate_cap_spent_nusd", **cap) == 3 * cost
            assert value(found, "sluicegate_cap_reserved_nusd", **cap) == 0
            assert value(found, "sluicegate_cap_remaining_nusd", **cap) == 2 * cost
