"""Azure OpenAI and Gemini's OpenAI-compatible endpoint, end to end: the real openai (and anthropic)
SDKs through a gateway process to the mock provider speaking each vendor's wire on a socket
(`sluicegate.mock.azure`, `sluicegate.mock.gemini`); what the vendor received (path, api-version,
credentials, body), what the SDKs parse (content filter results, streams), errors, fallbacks, price.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from tests.conftest import (
    GATEWAY_KEY,
    Server,
    free_port,
    gateway_config,
    granian_args,
    provider_saw,
    scrape,
    spawn,
    start_gateway,
)

AZURE_KEY = "azure-key-" + "a" * 24
ENTRA_TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + "t" * 40
GEMINI_KEY = "AIza" + "g" * 35
EXTRA = """
[providers.azure]
kind = "azure"
base_url = "{azure}"
api_version = "2024-10-21"
api_key = "{azure_key}"
[providers.azure.deployments]
gpt-azure = {{ deployment = "contoso-4o", price_as = "mock-gpt" }}
emb-azure = "contoso-embed"

[providers.azure-v1]
kind = "azure"
base_url = "{azure}"
api_version = "v1"
auth_header = "authorization"
api_key = "{entra}"

[providers.azure-preview]
kind = "azure"
base_url = "{azure}"
api_version = "2025-04-01-preview"
api_key = "{azure_key}"

[providers.gemini]
kind = "gemini"
base_url = "{gemini}/v1beta/openai"
api_key = "{gemini_key}"

[routing.models.claude-on-azure]
deployments = [{{ provider = "azure", model = "contoso-claude" }}]

[routing.models.guarded]
deployments = [{{ provider = "azure", model = "dep@fault=content_policy" }}]
fallbacks = ["mock-gpt"]
fallback_on = ["content_policy"]

[redaction]  # emails reach the vendors (so that their echo brings one back); answers are redacted
rules = [{{ entities = ["EMAIL"], action = "monitor", direction = "request" }}]

[spend]
estimate = {{ per_message_tokens = 0, per_request_tokens = 0 }}
[spend.price_overrides.mock-gpt]
input_usd_per_mtok = "1"
output_usd_per_mtok = "2"
[spend.default_price]  # dearer: a deployment priced as `mock-gpt` must not cost this
input_usd_per_mtok = "3"
output_usd_per_mtok = "5"
[[spend.caps]]
level = "workspace"
id = "ws-test"
org = "default"
window = "day"
limit_usd = "100"
"""


@pytest.fixture(scope="module")
def azure_mock() -> Iterator[Server]:
    port = free_port()
    with spawn(granian_args("sluicegate.mock.azure:create_app", port), port) as server:
        yield server


@pytest.fixture(scope="module")
def gemini_mock() -> Iterator[Server]:
    port = free_port()
    with spawn(granian_args("sluicegate.mock.gemini:create_app", port), port) as server:
        yield server


@pytest.fixture(scope="module")
def gw(
    mock_server: Server, azure_mock: Server, gemini_mock: Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    extra = EXTRA.format(
        azure=azure_mock.url, azure_key=AZURE_KEY, entra=ENTRA_TOKEN, gemini=gemini_mock.url, gemini_key=GEMINI_KEY
    )
    config = gateway_config(tmp_path_factory.mktemp("vendors") / "gw.toml", mock_server.url, extra)
    with start_gateway(config) as server:
        yield server


@pytest.fixture
def oa(gw: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client:
        yield client


def no_gateway_key(seen: dict[str, Any]) -> None:
    """The client's gateway key never reaches the vendor, in any header."""
    assert all(GATEWAY_KEY not in value for value in seen["headers"].values())


def spent(gw: Server) -> float:
    for line in scrape(gw.url).splitlines():
        if line.startswith('sluicegate_spend_nusd_total{workspace="ws-test"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# --- Azure OpenAI


def test_azure_chat_goes_to_the_deployment_with_api_version_and_api_key(
    oa: openai.OpenAI, gw: Server, azure_mock: Server
) -> None:
    before = spent(gw)
    reply = oa.chat.completions.create(model="gpt-azure", messages=[{"role": "user", "content": "Hello there"}])
    seen = provider_saw(azure_mock)
    assert seen["path"] == "/openai/deployments/contoso-4o/chat/completions"
    assert seen["query"] == "api-version=2024-10-21"
    assert seen["headers"]["api-key"] == AZURE_KEY
    assert "authorization" not in seen["headers"]
    no_gateway_key(seen)
    assert seen["body"]["model"] == "contoso-4o"
    # Azure's additions pass through to the client.
    extra = reply.model_extra or {}
    assert extra["prompt_filter_results"][0]["content_filter_results"]["hate"] == {
        "filtered": False,
        "severity": "safe",
    }
    assert (reply.choices[0].model_extra or {})["content_filter_results"]["violence"]["filtered"] is False
    assert reply.choices[0].finish_reason == "stop"
    # Priced as its `price_as` model ($1/MTok in, $2/MTok out).
    assert reply.usage is not None
    cost = reply.usage.prompt_tokens * 1_000 + reply.usage.completion_tokens * 2_000
    deadline = time.monotonic() + 5
    while spent(gw) != before + cost and time.monotonic() < deadline:
        time.sleep(0.05)
    assert spent(gw) == before + cost


def test_azure_stream_with_prompt_filter_chunk_through_the_openai_sdk(
    oa: openai.OpenAI, gw: Server, azure_mock: Server
) -> None:
    whole = oa.chat.completions.create(model="gpt-azure", messages=[{"role": "user", "content": "Tell me"}])
    stream = oa.chat.completions.create(
        model="gpt-azure",
        messages=[{"role": "user", "content": "Tell me"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices == []
    assert (chunks[0].model_extra or {})["prompt_filter_results"][0]["prompt_index"] == 0
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"]
    assert provider_saw(azure_mock)["body"]["stream_options"] == {"include_usage": True}


def test_azure_stream_without_usage_asked_drops_only_the_usage_chunk(oa: openai.OpenAI) -> None:
    chunks = list(
        oa.chat.completions.create(model="gpt-azure", messages=[{"role": "user", "content": "Hi"}], stream=True)
    )
    assert all(c.usage is None for c in chunks)
    assert chunks[0].choices == [] and "prompt_filter_results" in (chunks[0].model_extra or {})
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_azure_completion_stopped_by_the_content_filter_streams_through(oa: openai.OpenAI) -> None:
    chunks = list(
        oa.chat.completions.create(
            model="azure/filtered-dep@chunks=6", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
    )
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["content_filter"]
    last = next(c for c in chunks if c.choices and c.choices[0].finish_reason)
    assert (last.choices[0].model_extra or {})["content_filter_results"]["violence"]["filtered"] is True


def test_azure_prompt_refused_by_the_content_filter_is_azures_400(oa: openai.OpenAI, azure_mock: Server) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oa.chat.completions.create(model="azure/dep@fault=content_policy", messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.code == "content_filter"
    body: Any = caught.value.body
    assert body["innererror"]["code"] == "ResponsibleAIPolicyViolation"
    assert provider_saw(azure_mock)["path"] == "/openai/deployments/dep%40fault%3Dcontent_policy/chat/completions"


def test_azure_content_filter_refusal_falls_back(oa: openai.OpenAI, gw: Server) -> None:
    raw = oa.chat.completions.with_raw_response.create(model="guarded", messages=[{"role": "user", "content": "Hi"}])
    reply = raw.parse()
    assert reply.model == "mock-gpt"
    assert raw.headers["x-sluicegate-deployment"] == "mh/mock-gpt"


def test_azure_embeddings_go_to_the_deployment(oa: openai.OpenAI, azure_mock: Server) -> None:
    out = oa.embeddings.create(model="emb-azure", input=["one", "two"])
    assert len(out.data) == 2
    seen = provider_saw(azure_mock)
    assert seen["path"] == "/openai/deployments/contoso-embed/embeddings"
    assert seen["query"] == "api-version=2024-10-21"


def test_azure_responses_api_names_the_deployment_in_the_body(oa: openai.OpenAI, azure_mock: Server) -> None:
    out = oa.responses.create(model="azure-preview/contoso-4o", input="Hello")
    assert out.output_text
    seen = provider_saw(azure_mock)
    assert seen["path"] == "/openai/responses"
    assert seen["query"] == "api-version=2025-04-01-preview"
    assert seen["body"]["model"] == "contoso-4o"


def test_azure_v1_api_with_an_entra_bearer_token(oa: openai.OpenAI, azure_mock: Server) -> None:
    stream = oa.chat.completions.create(
        model="azure-v1/contoso-4o", messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    seen = provider_saw(azure_mock)
    assert seen["path"] == "/openai/v1/chat/completions"
    assert seen["query"] == ""
    assert seen["headers"]["authorization"] == f"Bearer {ENTRA_TOKEN}"
    assert "api-key" not in seen["headers"]
    assert seen["body"]["model"] == "contoso-4o"
    no_gateway_key(seen)


def test_anthropic_sdk_streams_from_an_azure_deployment(gw: Server, azure_mock: Server) -> None:
    with (
        anthropic.Anthropic(base_url=gw.url, api_key=GATEWAY_KEY, max_retries=0) as an,
        an.messages.stream(
            model="claude-on-azure", max_tokens=64, messages=[{"role": "user", "content": "Hello"}]
        ) as stream,
    ):
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0
    seen = provider_saw(azure_mock)
    assert seen["path"] == "/openai/deployments/contoso-claude/chat/completions"
    assert seen["body"]["max_completion_tokens"] == 64
    assert "max_tokens" not in seen["body"]


# --- Gemini's OpenAI-compatible endpoint


def test_gemini_chat_with_bearer_key(oa: openai.OpenAI, gemini_mock: Server) -> None:
    reply = oa.chat.completions.create(model="gemini/gemini-2.5-flash", messages=[{"role": "user", "content": "Hi"}])
    assert reply.choices[0].message.content
    seen = provider_saw(gemini_mock)
    assert seen["path"] == "/v1beta/openai/chat/completions"
    assert seen["headers"]["authorization"] == f"Bearer {GEMINI_KEY}"
    assert seen["body"]["model"] == "gemini-2.5-flash"
    no_gateway_key(seen)


def test_gemini_stream_with_usage_on_every_chunk(oa: openai.OpenAI, gw: Server) -> None:
    whole = oa.chat.completions.create(model="gemini/gemini-2.5-flash", messages=[{"role": "user", "content": "Hi"}])
    chunks = list(
        oa.chat.completions.create(
            model="gemini/gemini-2.5-flash",
            messages=[{"role": "user", "content": "Hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert all(c.choices for c in chunks)  # no usage chunk of its own
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == whole.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].usage is not None and whole.usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    counts = [c.usage.completion_tokens for c in chunks if c.usage is not None]
    assert counts == sorted(counts) and len(counts) == len(chunks)


def test_gemini_error_in_a_list_reaches_the_sdk_unwrapped(oa: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oa.chat.completions.create(
            model="gemini/gemini-2.5-flash",
            messages=[{"role": "user", "content": "Hi"}],
            prompt_cache_key="k1",
        )
    body: Any = caught.value.body
    assert body["status"] == "INVALID_ARGUMENT"
    assert 'Unknown name "prompt_cache_key"' in body["message"]


def test_gemini_rate_limit_is_a_429(oa: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        oa.chat.completions.create(
            model="gemini/gemini-2.5-flash@fault=429", messages=[{"role": "user", "content": "x"}]
        )
    body: Any = caught.value.body
    assert body["status"] == "RESOURCE_EXHAUSTED"


def test_azure_and_gemini_streams_are_redacted_across_chunks(oa: openai.OpenAI) -> None:
    """The vendor echoes the request (an email the request direction only monitors) in 3-character
    deltas: the response's redaction finds it across chunks, Azure's and Gemini's extra fields around."""
    for model in ("azure/dep@echo,chunk_size=3", "gemini/gemini-2.5-flash@echo,chunk_size=3"):
        messages: Any = [{"role": "user", "content": "mail jane.doe@example.com now"}]
        chunks = list(oa.chat.completions.create(model=model, messages=messages, stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert "mail [REDACTED:EMAIL] now" in text and "jane.doe" not in text
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_azure_responses_api_streams(oa: openai.OpenAI, azure_mock: Server) -> None:
    events = list(oa.responses.create(model="azure-preview/contoso-4o", input="Hello", stream=True))
    assert events[-1].type == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == events[-1].response.output_text
    assert provider_saw(azure_mock)["query"] == "api-version=2025-04-01-preview"


def test_gemini_embeddings(oa: openai.OpenAI, gemini_mock: Server) -> None:
    out = oa.embeddings.create(model="gemini/gemini-embedding-001", input="hello")
    assert len(out.data) == 1
    assert provider_saw(gemini_mock)["path"] == "/v1beta/openai/embeddings"


# --- the vendor wires of the mock themselves


def test_the_azure_mock_refuses_what_azure_refuses(azure_mock: Server) -> None:
    chat = {"messages": [{"role": "user", "content": "x"}]}
    path = f"{azure_mock.url}/openai/deployments/d1/chat/completions"
    no_version = httpx.post(path, json=chat, headers={"api-key": "k"})
    assert no_version.status_code == 404 and no_version.json()["error"]["message"] == "Resource not found"
    no_key = httpx.post(f"{path}?api-version=2024-10-21", json=chat)
    assert no_key.status_code == 401 and no_key.json()["error"]["code"] == "401"
    # The deployment in the path is the model, with no `model` in the body or another one.
    for body in (chat, {**chat, "model": "something-else"}):
        ok = httpx.post(f"{path}?api-version=2024-10-21", json=body, headers={"api-key": "k"})
        assert ok.status_code == 200 and ok.json()["model"] == "d1"
    v1 = httpx.post(f"{azure_mock.url}/openai/v1/chat/completions", json=chat, headers={"api-key": "k"})
    assert v1.status_code == 400  # the v1 API needs the deployment as `model`


def test_the_gemini_mock_refuses_what_gemini_refuses(gemini_mock: Server) -> None:
    chat = {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "x"}]}
    path = f"{gemini_mock.url}/v1beta/openai/chat/completions"
    no_key = httpx.post(path, json=chat)
    assert no_key.status_code == 403 and no_key.json()[0]["error"]["status"] == "PERMISSION_DENIED"
    unknown = httpx.post(path, json={**chat, "store": True}, headers={"authorization": "Bearer k"})
    assert unknown.status_code == 400 and 'Unknown name "store"' in unknown.json()[0]["error"]["message"]
    assert httpx.post(path, json=chat, headers={"authorization": "Bearer k"}).status_code == 200
