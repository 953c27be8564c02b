"""Substitution instead of refusal: a cap with `on_insufficient = "substitute"` sends a call that
does not fit to a cheaper model, says so (`x-sluicegate-substituted`, the model field, an event),
reserves and settles it at the substitute's prices, and refuses once even the substitute does not
fit. Driven by the real SDKs against gateway processes and the mock provider on a socket."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest
from tests.conftest import GATEWAY_KEY, Server, gateway_config, redis_url, scrape, start_gateway
from tests.integration.test_spend_gateway import COST_NUSD, MESSAGES, MODEL, policy_events, spend_toml

MINI = "mh/mock-gpt-mini@chunks=10,chunk_size=4"
MINI_COST_NUSD = 2_200  # 2 input tokens at $0.1/MTok and 10 output tokens at $0.2/MTok
LIMIT_NUSD = 2 * COST_NUSD + 5 * MINI_COST_NUSD  # two calls as asked, then five substitutes

PRICES = """
[spend.price_overrides.mock-gpt-mini]
input_usd_per_mtok = "0.1"
output_usd_per_mtok = "0.2"
"""


@pytest.fixture
def gateway(mock_server: Server, tmp_path: Path) -> Iterator[Server]:
    toml = spend_toml(1).replace(
        f'limit_usd = "{COST_NUSD / 1e9:.9f}"',
        f'limit_usd = "{LIMIT_NUSD / 1e9:.9f}"\non_insufficient = "substitute"\nsubstitute_model = "{MINI}"',
    )
    assert "substitute_model" in toml
    with start_gateway(gateway_config(tmp_path / "c.toml", mock_server.url, toml + PRICES)) as gw:
        yield gw


def test_a_cap_substitutes_a_cheaper_model_then_refuses(gateway: Server) -> None:
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client:
        for _ in range(2):
            raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES, max_tokens=10)  # type: ignore[arg-type]
            assert "x-sluicegate-substituted" not in raw.headers
            assert raw.parse().model == "mock-gpt"
        # The cap has 5 substitutes' worth left: the next calls go to the cheaper model, and say so.
        raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES, max_tokens=10)  # type: ignore[arg-type]
        assert raw.status_code == 200
        assert raw.headers["x-sluicegate-substituted"] == f"{MODEL} -> {MINI}"
        assert raw.parse().model == "mock-gpt-mini"  # the model field tells the truth
        # Streamed too: the header comes with the stream's start.
        with client.chat.completions.with_streaming_response.create(
            model=MODEL,
            messages=MESSAGES,  # type: ignore[arg-type]
            max_tokens=10,
            stream=True,
            stream_options={"include_usage": True},
        ) as streamed:
            assert streamed.headers["x-sluicegate-substituted"] == f"{MODEL} -> {MINI}"
            chunks = list(streamed.parse())
        assert {c.model for c in chunks} == {"mock-gpt-mini"}
        for _ in range(3):
            client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=10)  # type: ignore[arg-type]
        # Nothing is left, not even for the substitute: 402, and the figures show every substitute
        # was billed at its own price (2 x 22,000 + 5 x 2,200 nUSD spent).
        with pytest.raises(openai.APIStatusError) as refused:
            client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=10)  # type: ignore[arg-type]
    assert refused.value.status_code == 402
    assert refused.value.response.headers["x-sluicegate-cap-spent-nusd"] == str(LIMIT_NUSD)
    events = policy_events(gateway)
    assert events['{action="substitute",entity="workspace",policy="spend"}'] == 5
    assert events['{action="substitute_failed",entity="workspace",policy="spend"}'] == 1
    assert events['{action="refuse",entity="workspace",policy="spend"}'] == 1


def test_a_substitute_that_is_not_routed_refuses(mock_server: Server, tmp_path: Path) -> None:
    toml = spend_toml(1).replace(
        'limit_usd = "',
        'on_insufficient = "substitute"\nsubstitute_model = "nowhere/unknown-model"\nlimit_usd = "',
    )
    with (
        start_gateway(gateway_config(tmp_path / "c.toml", mock_server.url, toml)) as gw,
        anthropic.Anthropic(base_url=gw.url, api_key=GATEWAY_KEY, max_retries=0) as client,
    ):
        claude = "mh/mock-claude@chunks=10,chunk_size=4"
        client.messages.create(model=claude, messages=MESSAGES, max_tokens=10)  # type: ignore[arg-type]
        with pytest.raises(anthropic.PaymentRequiredError):
            client.messages.create(model=claude, messages=MESSAGES, max_tokens=10)  # type: ignore[arg-type]
        failed = policy_events(gw)['{action="substitute_failed",entity="workspace",policy="spend"}']
    assert failed == 1


def test_a_substitute_the_key_may_not_use_is_not_used(mock_server: Server, tmp_path: Path) -> None:
    toml = spend_toml(1).replace(
        'limit_usd = "',
        f'on_insufficient = "substitute"\nsubstitute_model = "{MINI}"\nlimit_usd = "',
    )
    models = '\n[models]\ndeny = ["mock-gpt-mini*"]\n'
    with (
        start_gateway(gateway_config(tmp_path / "c.toml", mock_server.url, toml + PRICES + models)) as gw,
        openai.OpenAI(base_url=f"{gw.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client,
    ):
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=10)  # type: ignore[arg-type]
        with pytest.raises(openai.APIStatusError) as refused:
            client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=10)  # type: ignore[arg-type]
        assert refused.value.status_code == 402
        failed = policy_events(gw)['{action="substitute_failed",entity="workspace",policy="spend"}']
    assert failed == 1


# -- a threshold passed: `substitute_at_percent` -------------------------------------------------

# Two calls as asked fit under 90% of the cap; from the third on the calls go to the substitute,
# three of them, until even the substitute does not fit.
EARLY_LIMIT_NUSD = 2 * COST_NUSD + 3 * MINI_COST_NUSD


def early_toml(backend: str, prefix: str, extra: str = "", mode: str = "enforce") -> str:
    cap = (
        f'limit_usd = "{EARLY_LIMIT_NUSD / 1e9:.9f}"\nmode = "{mode}"\non_insufficient = "substitute"\n'
        f'substitute_model = "{MINI}"\nsubstitute_at_percent = 90'
    )
    toml = spend_toml(1, backend=backend, prefix=prefix, extra=extra + "\nsubstitute_check_s = 0")
    return toml.replace(f'limit_usd = "{COST_NUSD / 1e9:.9f}"', cap) + PRICES


@pytest.mark.parametrize("backend", ["local", "redis"])
def test_a_cap_substitutes_from_its_percent_on(
    backend: str, mock_server: Server, redis_server: Server, tmp_path: Path
) -> None:
    extra = f'redis_url = "{redis_url(redis_server)}"' if backend == "redis" else ""
    toml = early_toml(backend, f"early{os.getpid()}{backend}", extra)
    with (
        start_gateway(gateway_config(tmp_path / "c.toml", mock_server.url, toml)) as gw,
        openai.OpenAI(base_url=f"{gw.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client,
    ):
        answered = []
        for _ in range(5):
            raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES, max_tokens=10)  # type: ignore[arg-type]
            answered.append((raw.parse().model, raw.headers.get("x-sluicegate-substituted")))
        said = f"{MODEL} -> {MINI}"
        assert answered == [("mock-gpt", None)] * 2 + [("mock-gpt-mini", said)] * 3
        # The cap itself still holds: the substitute no longer fits, 402, every call billed at its price.
        with pytest.raises(openai.APIStatusError) as refused:
            client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=10)  # type: ignore[arg-type]
        assert refused.value.status_code == 402
        assert refused.value.response.headers["x-sluicegate-cap-spent-nusd"] == str(EARLY_LIMIT_NUSD)
        events = policy_events(gw)
    assert events['{action="substitute",entity="workspace",policy="spend"}'] == 3
    assert events['{action="refuse",entity="workspace",policy="spend"}'] == 1


def test_a_monitored_cap_only_says_it_would_substitute(mock_server: Server, tmp_path: Path) -> None:
    toml = early_toml("local", "sg", mode="monitor")
    with (
        start_gateway(gateway_config(tmp_path / "c.toml", mock_server.url, toml)) as gw,
        openai.OpenAI(base_url=f"{gw.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client,
    ):
        for _ in range(3):
            raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES, max_tokens=10)  # type: ignore[arg-type]
            assert "x-sluicegate-substituted" not in raw.headers and raw.parse().model == "mock-gpt"
        events = policy_events(gw)
    assert events['{action="would_substitute",entity="workspace",policy="spend"}'] == 1
    assert '{action="substitute",entity="workspace",policy="spend"}' not in events


# -- a full rate limit: `[[limits.rules]]` with a `substitute_model` -------------------------------


def limits_toml(*rules: str, more: str = "") -> str:
    """A spend cap far away (so every call is billed in the ledger) and rate limits on ws-test."""
    toml = spend_toml(1000) + PRICES + more
    for r in rules:
        toml += f'\n[[limits.rules]]\nlevel = "workspace"\nid = "ws-test"\norg = "default"\n{r}\n'
    return toml


def spent(gw: Server) -> int:
    for line in scrape(gw.url).splitlines():
        if line.startswith('sluicegate_spend_nusd_total{workspace="ws-test"}'):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def test_a_full_rate_limit_substitutes_and_the_substitute_is_not_counted_on_it(
    mock_server: Server, tmp_path: Path
) -> None:
    toml = limits_toml(
        f'kind = "requests"\nlimit = 2\nwindow_s = 600\nsubstitute_model = "{MINI}"',
        'kind = "requests"\nlimit = 5\nwindow_s = 900',  # counts every call, the substitutes too
    )
    with (
        start_gateway(gateway_config(tmp_path / "c.toml", mock_server.url, toml)) as gw,
        openai.OpenAI(base_url=f"{gw.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client,
    ):
        for _ in range(2):
            raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES, max_tokens=10)  # type: ignore[arg-type]
            assert "x-sluicegate-substituted" not in raw.headers and raw.parse().model == "mock-gpt"
        # The first limit is full: the call goes to the cheaper model instead of a 429, and says so.
        raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES, max_tokens=10)  # type: ignore[arg-type]
        assert raw.headers["x-sluicegate-substituted"] == f"{MODEL} -> {MINI}"
        assert raw.parse().model == "mock-gpt-mini"
        # The limit headers are those of the lines the substitute counted on (the second limit).
        assert raw.headers["x-ratelimit-limit-requests"] == "5" and raw.headers["x-ratelimit-remaining-requests"] == "2"
        with client.chat.completions.with_streaming_response.create(
            model=MODEL,
            messages=MESSAGES,  # type: ignore[arg-type]
            max_tokens=10,
            stream=True,
            stream_options={"include_usage": True},
        ) as streamed:
            assert streamed.headers["x-sluicegate-substituted"] == f"{MODEL} -> {MINI}"
            assert {c.model for c in streamed.parse()} == {"mock-gpt-mini"}
        # Asking for the substitute itself: not counted on the first limit, so not refused by it.
        raw = client.chat.completions.with_raw_response.create(model=MINI, messages=MESSAGES, max_tokens=10)  # type: ignore[arg-type]
        assert "x-sluicegate-substituted" not in raw.headers
        # Now the second limit is full too: the substitute does not fit, and the call gets the 429.
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=10)  # type: ignore[arg-type]
        assert caught.value.response.headers["x-sluicegate-limit"] == "workspace/requests"
        assert caught.value.code == "gateway_rate_limit_exceeded"
        events = policy_events(gw)
        # Billed at the prices of the model that answered: two as asked, three at the substitute's.
        assert spent(gw) == 2 * COST_NUSD + 3 * MINI_COST_NUSD
    assert events['{action="substitute",entity="workspace",policy="limits"}'] == 2
    assert events['{action="substitute_failed",entity="workspace",policy="limits"}'] == 1
    assert events['{action="refuse",entity="workspace",policy="limits"}'] == 1


def test_a_rate_limit_substitute_the_key_may_not_use_is_a_429(mock_server: Server, tmp_path: Path) -> None:
    toml = limits_toml(
        f'kind = "requests"\nlimit = 1\nwindow_s = 600\nsubstitute_model = "{MINI}"',
        more='\n[models]\ndeny = ["mock-gpt-mini*"]\n',
    )
    with (
        start_gateway(gateway_config(tmp_path / "c.toml", mock_server.url, toml)) as gw,
        anthropic.Anthropic(base_url=gw.url, api_key=GATEWAY_KEY, max_retries=0) as client,
    ):
        claude = "mh/mock-claude@chunks=10,chunk_size=4"
        client.messages.create(model=claude, messages=MESSAGES, max_tokens=10)  # type: ignore[arg-type]
        with pytest.raises(anthropic.RateLimitError) as caught:
            client.messages.create(model=claude, messages=MESSAGES, max_tokens=10)  # type: ignore[arg-type]
        assert caught.value.response.headers["x-sluicegate-limit"] == "workspace/requests"
        events = policy_events(gw)
    assert events['{action="substitute_failed",entity="workspace",policy="limits"}'] == 1
