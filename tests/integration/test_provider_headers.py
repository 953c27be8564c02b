"""The provider's response headers that clients read, through a gateway process, as the real SDKs
see them: its request id (`completion._request_id`, `message._request_id`, `err.request_id`), its
rate-limit headers, `retry-after` on its errors; under the client family's names when the call was
translated; and nothing that is not on the allow-list (the mock also sends a cookie, an
organization and a timing). The gateway's own id is always `x-sluicegate-request-id`.
"""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest
from tests.conftest import GATEWAY_KEY, PROVIDER_KEY, Server, gateway_config, start_gateway

MESSAGES = [{"role": "user", "content": "hello"}]
NEVER = ("set-cookie", "openai-processing-ms", "openai-organization", "anthropic-organization-id")
EXTRA = """
[providers.oaonly]
kind = "mock"
base_url = "{mock}"
api_key = "{key}"
formats = ["openai"]

[providers.anonly]
kind = "mock"
base_url = "{mock}"
api_key = "{key}"
formats = ["anthropic"]

[routing.models.held]
deployments = [{{ provider = "anonly", model = "mock-claude@fault=429,retry_after=60" }}]
"""


@pytest.fixture(scope="module")
def gw(mock_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    extra = EXTRA.format(mock=mock_server.url, key=PROVIDER_KEY)
    with start_gateway(gateway_config(tmp_path_factory.mktemp("hd") / "gw.toml", mock_server.url, extra)) as server:
        yield server


@pytest.fixture
def oa(gw: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client:
        yield client


@pytest.fixture
def an(gw: Server) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gw.url, api_key=GATEWAY_KEY, max_retries=0) as client:
        yield client


def only_allowed(headers: httpx.Headers) -> None:
    assert not [name for name in NEVER if name in headers]
    assert headers["x-sluicegate-request-id"] and not headers["x-sluicegate-request-id"].startswith("req_")


def test_the_openai_sdk_reads_the_providers_request_id_and_limits(oa: openai.OpenAI) -> None:
    raw = oa.chat.completions.with_raw_response.create(model="mock-gpt", messages=MESSAGES)  # type: ignore[arg-type]
    completion = raw.parse()
    assert completion._request_id == raw.headers["x-request-id"] and completion._request_id.startswith("req_")
    assert raw.headers.get_list("x-request-id") == [completion._request_id]
    assert raw.headers["x-ratelimit-remaining-requests"] == "9999" and raw.headers["x-ratelimit-reset-tokens"] == "30ms"
    only_allowed(raw.headers)
    with oa.chat.completions.with_streaming_response.create(
        model="mock-gpt",
        messages=MESSAGES,  # type: ignore[arg-type]
        stream=True,
    ) as streamed:
        assert streamed.headers["x-request-id"].startswith("req_")
        assert streamed.headers["x-ratelimit-limit-tokens"] == "2000000"
        only_allowed(streamed.headers)
        assert [chunk for chunk in streamed.parse()]


def test_the_anthropic_sdk_reads_the_providers_request_id_and_limits(an: anthropic.Anthropic) -> None:
    raw = an.messages.with_raw_response.create(model="mock-claude", messages=MESSAGES, max_tokens=20)  # type: ignore[arg-type]
    message = raw.parse()
    assert message._request_id == raw.headers["request-id"] and message._request_id.startswith("req_")
    assert raw.headers["x-request-id"] == raw.headers["x-sluicegate-request-id"]  # the gateway's, as before
    assert raw.headers["anthropic-ratelimit-tokens-remaining"] == "399000"
    assert raw.headers["anthropic-ratelimit-input-tokens-limit"] == "300000"
    only_allowed(raw.headers)
    with an.messages.with_streaming_response.create(
        model="mock-claude",
        messages=MESSAGES,  # type: ignore[arg-type]
        max_tokens=20,
        stream=True,
    ) as streamed:
        assert streamed.headers["request-id"].startswith("req_")
        assert streamed.headers["anthropic-ratelimit-requests-limit"] == "4000"
        only_allowed(streamed.headers)
        assert [event.type for event in streamed.parse()][-1] == "message_stop"


def test_a_providers_error_keeps_its_request_id_retry_after_and_limits(
    oa: openai.OpenAI, an: anthropic.Anthropic
) -> None:
    with pytest.raises(openai.RateLimitError) as err:
        oa.chat.completions.create(model="mh/mock-gpt@fault=429,retry_after=3", messages=MESSAGES)  # type: ignore[arg-type]
    assert err.value.request_id is not None and err.value.request_id.startswith("req_")
    assert err.value.response.headers["retry-after"] == "3"
    assert err.value.response.headers["x-ratelimit-remaining-requests"] == "9999"
    only_allowed(err.value.response.headers)
    with pytest.raises(anthropic.APIStatusError) as aerr:
        an.messages.create(model="mh/mock-claude@fault=503", messages=MESSAGES, max_tokens=20)  # type: ignore[arg-type]
    assert aerr.value.status_code == 503 and aerr.value.request_id is not None
    assert aerr.value.request_id.startswith("req_")
    assert aerr.value.response.headers["retry-after-ms"] == "10"
    only_allowed(aerr.value.response.headers)


def test_a_translated_answer_names_the_providers_headers_as_the_clients_family_does(
    oa: openai.OpenAI, an: anthropic.Anthropic
) -> None:
    # OpenAI SDK, a provider that speaks only Anthropic Messages.
    raw = oa.chat.completions.with_raw_response.create(model="anonly/mock-claude", messages=MESSAGES)  # type: ignore[arg-type]
    assert raw.parse()._request_id is not None and raw.parse()._request_id.startswith("req_")  # its request-id
    assert (
        raw.headers["x-ratelimit-limit-requests"] == "4000" and raw.headers["x-ratelimit-remaining-tokens"] == "399000"
    )
    assert not [n for n in raw.headers if n.startswith("anthropic-") or n.startswith("x-ratelimit-reset")]
    assert "request-id" not in raw.headers
    only_allowed(raw.headers)
    # Anthropic SDK, a provider that speaks only OpenAI chat, streamed.
    with an.messages.with_streaming_response.create(
        model="oaonly/mock-gpt",
        messages=MESSAGES,  # type: ignore[arg-type]
        max_tokens=20,
        stream=True,
    ) as streamed:
        assert streamed.headers["request-id"].startswith("req_")
        assert streamed.headers["anthropic-ratelimit-requests-remaining"] == "9999"
        assert streamed.headers["anthropic-ratelimit-tokens-limit"] == "2000000"
        assert not [n for n in streamed.headers if n.startswith("x-ratelimit") or n.endswith("-reset")]
        assert streamed.headers["x-request-id"] == streamed.headers["x-sluicegate-request-id"]
        only_allowed(streamed.headers)
        assert [event.type for event in streamed.parse()][-1] == "message_stop"


def test_a_routed_translated_refusal_keeps_its_retry_after_and_mapped_headers(oa: openai.OpenAI) -> None:
    """A route's attempt is held before it is relayed (is it worth a retry?); its retry-after (longer
    than `routing.max_retry_after_s`: no retry) and its headers, translated, still reach the client."""
    with pytest.raises(openai.RateLimitError) as err:
        oa.chat.completions.create(model="held", messages=MESSAGES)  # type: ignore[arg-type]
    headers = err.value.response.headers
    assert headers["retry-after"] == "60" and headers["x-sluicegate-attempts"] == "1"
    assert err.value.request_id is not None and err.value.request_id.startswith("req_")
    assert headers["x-ratelimit-limit-requests"] == "4000" and "request-id" not in headers
    only_allowed(headers)
