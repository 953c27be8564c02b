"""Substitution instead of refusal: a cap with `on_insufficient = "substitute"` sends a call that
does not fit to a cheaper model, says so (`x-sluicegate-substituted`, the model field, an event),
reserves and settles it at the substitute's prices, and refuses once even the substitute does not
fit. Driven by the real SDKs against gateway processes and the mock provider on a socket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest
from tests.conftest import GATEWAY_KEY, Server, gateway_config, start_gateway
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
