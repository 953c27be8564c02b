"""Bounded inputs, probed as an attacker with a gateway key would, over real sockets:

- absurd numbers where a capped request's reservation reads them (`max_tokens` of 1e13, a string,
  a bool, a negative, a huge `n`) are 400s naming the parameter, in both SDKs' formats.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from tests.conftest import GATEWAY_KEY, Server, gateway_config, redis_url, start_gateway
from tests.integration.test_spend_gateway import MESSAGES, MODEL, spend_toml

CLAUDE = "mh/mock-claude"
PREFIX = f"b{uuid.uuid4().hex[:8]}"  # this module's Redis keys


@pytest.fixture(scope="module")
def capped(mock_server: Server, redis_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A gateway whose key is under a cap counted in Redis (so a test can read what is reserved)."""
    extra = f'redis_url = "{redis_url(redis_server)}"'
    toml = spend_toml(1000, backend="redis", prefix=PREFIX, extra=extra)
    config = gateway_config(tmp_path_factory.mktemp("bounds") / "c.toml", mock_server.url, toml)
    with start_gateway(config) as server:
        yield server


@pytest.fixture
def oa(capped: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{capped.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client:
        yield client


@pytest.fixture
def an(capped: Server) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=capped.url, api_key=GATEWAY_KEY, max_retries=0) as client:
        yield client


# ── absurd numbers ────────────────────────────────────────────────────────────────────────────────

ABSURD = [
    pytest.param("max_tokens", 1e13, "invalid_type", id="max_tokens 1e13"),
    pytest.param("max_tokens", 10**13, "integer_above_max_value", id="max_tokens 10**13"),
    pytest.param("max_tokens", -1, "integer_below_min_value", id="max_tokens -1"),
    pytest.param("max_tokens", 0, "integer_below_min_value", id="max_tokens 0"),
    pytest.param("max_tokens", True, "invalid_type", id="max_tokens true"),
    pytest.param("max_tokens", "100", "invalid_type", id="max_tokens string"),
    pytest.param("max_completion_tokens", 2**40, "integer_above_max_value", id="max_completion_tokens 2**40"),
    pytest.param("n", 10**12, "integer_above_max_value", id="n 10**12"),
    pytest.param("n", 2.5, "invalid_type", id="n 2.5"),
]


@pytest.mark.parametrize(("param", "value", "code"), ABSURD)
def test_absurd_numbers_are_a_400_naming_the_parameter_openai(
    oa: openai.OpenAI, param: str, value: Any, code: str
) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        oa.chat.completions.create(model=MODEL, messages=MESSAGES, extra_body={param: value})  # type: ignore[arg-type]
    assert err.value.status_code == 400
    assert (err.value.code, err.value.param) == (code, param)
    assert f"'{param}' must be an integer" in err.value.message


def test_absurd_output_limit_in_the_responses_api(oa: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        oa.responses.create(model=MODEL, input="hello", max_output_tokens=10**15)
    assert (err.value.code, err.value.param) == ("integer_above_max_value", "max_output_tokens")


@pytest.mark.parametrize("value", [1e13, 10**13, -5, "lots"], ids=["1e13", "10**13", "-5", "string"])
def test_absurd_max_tokens_is_a_400_anthropic(an: anthropic.Anthropic, value: Any) -> None:
    with pytest.raises(anthropic.BadRequestError) as err:
        # extra_body: the SDK itself refuses a huge max_tokens without streaming; a raw client would not
        an.messages.create(model=CLAUDE, messages=MESSAGES, max_tokens=10, extra_body={"max_tokens": value})  # type: ignore[arg-type]
    assert err.value.status_code == 400
    body = err.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert "'max_tokens' must be an integer from 1 to 2147483647" in body["error"]["message"]


def test_the_largest_valid_numbers_meet_the_cap(oa: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as err:
        oa.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=2**31 - 1, n=128)  # type: ignore[arg-type]
    assert err.value.status_code == 402 and err.value.code == "spend_limit_exceeded"
