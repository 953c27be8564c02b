"""Formats across vendors, end to end: the Anthropic SDK through the gateway to a provider that
speaks only the OpenAI chat format, the OpenAI SDK to one that speaks only Anthropic Messages
(the mock on a socket, declared with `formats`), streamed and not, with tools; what the SDKs parse,
what the provider saw, what was settled; refusals and errors in the caller's format.

Token counts are the mock's (ceil(chars / 4) per text piece; see sluicegate.mock.reply).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import anthropic
import httpx
import openai
import pytest
from tests.conftest import GATEWAY_KEY, PROVIDER_KEY, Server, gateway_config, provider_saw, scrape, start_gateway

EMAIL = "jane.doe@example.com"
# Priced at $1/MTok input, $0.5/MTok cache reads, $2/MTok output: 1,000, 500 and 2,000 nano-USD a token.
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

[providers.ant]
kind = "anthropic"
base_url = "{mock}"
api_key = "ant-provider-key"

[providers.compat]
kind = "openai_compatible"
base_url = "{mock}/v1"
api_key = "compat-provider-key"

[providers.inproc-oa]
kind = "mock"
formats = ["openai"]

[spend]
estimate = {{ per_message_tokens = 0, per_request_tokens = 0 }}
[spend.price_overrides.mock-gpt]
input_usd_per_mtok = "1"
output_usd_per_mtok = "2"
cache_read_usd_per_mtok = "0.5"
[spend.price_overrides.mock-claude]
input_usd_per_mtok = "1"
output_usd_per_mtok = "2"
cache_read_usd_per_mtok = "0.5"
[[spend.caps]]
level = "workspace"
id = "ws-test"
org = "default"
window = "day"
limit_usd = "100"
"""
TOOL_AN = {
    "name": "lookup",
    "description": "Look a word up",
    "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
}
TOOL_OA = {
    "type": "function",
    "function": {"name": "lookup", "description": "Look a word up", "parameters": TOOL_AN["input_schema"]},
}


@pytest.fixture(scope="module")
def gw(mock_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    extra = EXTRA.format(mock=mock_server.url, key=PROVIDER_KEY)
    with start_gateway(gateway_config(tmp_path_factory.mktemp("tr") / "gw.toml", mock_server.url, extra)) as server:
        yield server


@pytest.fixture
def an(gw: Server) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gw.url, api_key=GATEWAY_KEY, max_retries=0) as client:
        yield client


@pytest.fixture
def oa(gw: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client:
        yield client


def knobs(reply: str, **more: object) -> str:
    return ",".join([f"reply={quote(reply, safe='')}", *(f"{k}={v}" for k, v in more.items())])


def settled(gw: Server) -> tuple[float, float, float]:
    """(input tokens, output tokens, spend nano-USD) the gateway has settled for the test workspace."""
    text = scrape(gw.url)

    def value(prefix: str) -> float:
        for line in text.splitlines():
            if line.startswith(prefix):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    return (
        value('sluicegate_tokens_total{direction="input",workspace="ws-test"}'),
        value('sluicegate_tokens_total{direction="output",workspace="ws-test"}'),
        value('sluicegate_spend_nusd_total{workspace="ws-test"}'),
    )


def settles(gw: Server, before: tuple[float, float, float], tokens_in: int, tokens_out: int, cached: int = 0) -> None:
    """Wait for the settlement of one call and check its tokens (input with the `cached` ones) and cost."""
    cost = (tokens_in - cached) * 1_000 + cached * 500 + tokens_out * 2_000
    want = (before[0] + tokens_in, before[1] + tokens_out, before[2] + cost)
    deadline = time.monotonic() + 5
    while (now := settled(gw)) != want and time.monotonic() < deadline:
        time.sleep(0.05)
    assert now == want


# --- the Anthropic SDK, an OpenAI-format provider


def test_anthropic_sdk_to_openai_provider_with_tools(an: anthropic.Anthropic, gw: Server, mock_server: Server) -> None:
    before = settled(gw)
    message = an.messages.create(
        model=f"oaonly/mock-gpt@{knobs('bonjour', tool_call=1, chunk_size=5, cached_tokens=4)}",
        max_tokens=50,
        system="Answer briefly.",
        messages=[{"role": "user", "content": "Define hello"}],
        tools=[TOOL_AN],  # type: ignore[list-item]
        tool_choice={"type": "any"},
    )
    assert message.stop_reason == "tool_use" and message.role == "assistant"
    [block] = message.content
    assert block.type == "tool_use" and block.name == "lookup" and block.input == {"text": "bonjour"}
    # "Answer briefly." 15 chars = 4 tokens, "Define hello" 12 = 3; the arguments {"text":"bonjour"} 18 = 5
    assert (message.usage.input_tokens, message.usage.output_tokens) == (7, 5)
    # the provider's prompt_tokens were 11, 4 of them cached
    assert message.usage.cache_read_input_tokens == 4
    seen = provider_saw(mock_server)
    assert seen["path"] == "/v1/chat/completions"
    body = seen["body"]
    assert body["messages"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Define hello"},
    ]
    assert body["max_tokens"] == 50 and body["tool_choice"] == "required"
    assert body["tools"] == [{"type": "function", "function": {**TOOL_OA["function"]}}]  # type: ignore[dict-item]
    settles(gw, before, 11, 5, cached=4)


def test_anthropic_sdk_streams_from_openai_provider(an: anthropic.Anthropic, gw: Server) -> None:
    model = f"oaonly/mock-gpt@{knobs('bonjour', tool_call=1, chunk_size=3)}"
    kwargs: dict[str, Any] = {
        "model": model,
        "max_tokens": 50,
        "system": [{"type": "text", "text": "Answer briefly."}],
        "messages": [{"role": "user", "content": "Define hello"}],
        "tools": [TOOL_AN],
    }
    whole = an.messages.create(**kwargs)
    before = settled(gw)
    types: list[str] = []
    with an.messages.stream(**kwargs) as stream:
        for event in stream:
            types.append(event.type)
        final = stream.get_final_message()
    assert types[0] == "message_start" and types[-1] == "message_stop"
    assert types.count("content_block_start") == 1 and types.count("content_block_stop") == 1
    assert final.content[0].type == "tool_use" and final.content[0].input == {"text": "bonjour"}
    assert final.content[0].name == "lookup" and final.stop_reason == "tool_use"
    assert final.usage.input_tokens == whole.usage.input_tokens == 7
    assert final.usage.output_tokens == whole.usage.output_tokens == 5
    settles(gw, before, 7, 5)


def test_anthropic_sdk_text_stream_is_redacted_and_streams(an: anthropic.Anthropic, gw: Server) -> None:
    reply = f"write to {EMAIL} today"
    model = f"oaonly/mock-gpt@{knobs(reply, chunk_size=2, delay_ms=5)}"
    before = settled(gw)
    texts: list[str] = []
    with an.messages.stream(model=model, max_tokens=50, messages=[{"role": "user", "content": "hi"}]) as stream:
        texts.extend(stream.text_stream)
        final = stream.get_final_message()
    assert len(texts) > 5  # streamed piece by piece, not buffered into one
    assert "".join(texts) == "write to [REDACTED:EMAIL] today" == final.content[0].text  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    out = (len(reply) + 3) // 4
    assert (final.usage.input_tokens, final.usage.output_tokens) == (1, out)
    settles(gw, before, 1, out)


def test_anthropic_tool_results_and_images_reach_an_openai_provider(
    an: anthropic.Anthropic, mock_server: Server
) -> None:
    png = "iVBORw0KGgo="
    an.messages.create(
        model="oaonly/mock-gpt",
        max_tokens=20,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.org/cat.png"}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"text": "cat"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "lookup", "input": {"text": "dog"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a small feline"},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "no"}]},
                    {"type": "text", "text": "So?"},
                ],
            },
        ],
        tools=[TOOL_AN],  # type: ignore[list-item]
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        stop_sequences=["END"],
        metadata={"user_id": "u-42"},
    )
    body = provider_saw(mock_server)["body"]
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
                {"type": "image_url", "image_url": {"url": "https://example.org/cat.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "lookup", "arguments": '{"text":"cat"}'}},
                {"id": "toolu_2", "type": "function", "function": {"name": "lookup", "arguments": '{"text":"dog"}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "a small feline"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "no"},
        {"role": "user", "content": [{"type": "text", "text": "So?"}]},
    ]
    assert body["parallel_tool_calls"] is False and body["tool_choice"] == "auto"
    assert body["stop"] == ["END"] and body["user"] == "u-42"


# --- the OpenAI SDK, an Anthropic-format provider


def test_openai_sdk_to_anthropic_provider_with_tools(oa: openai.OpenAI, gw: Server, mock_server: Server) -> None:
    before = settled(gw)
    completion = oa.chat.completions.create(
        model=f"anonly/mock-claude@{knobs('bonjour', tool_call=1)}",
        messages=[{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Define hello"}],
        tools=[TOOL_OA],  # type: ignore[list-item]
        tool_choice={"type": "function", "function": {"name": "lookup"}},
        parallel_tool_calls=False,
    )
    [choice] = completion.choices
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.type == "function" and call.function.name == "lookup"
    assert json.loads(call.function.arguments) == {"text": "bonjour"}
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (7, 5)
    assert completion.usage.total_tokens == 12
    seen = provider_saw(mock_server)
    assert seen["path"] == "/v1/messages"
    body = seen["body"]
    assert body["system"] == [{"type": "text", "text": "Answer briefly."}]
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Define hello"}]}]
    assert body["max_tokens"] == 4096  # the documented default: Anthropic needs one
    assert body["tool_choice"] == {"type": "tool", "name": "lookup", "disable_parallel_tool_use": True}
    assert body["tools"] == [TOOL_AN]
    settles(gw, before, 7, 5)


def test_openai_sdk_streams_from_anthropic_provider(oa: openai.OpenAI, gw: Server) -> None:
    model = f"anonly/mock-claude@{knobs('bonjour', tool_call=1, chunk_size=3, cached_tokens=6)}"
    messages = [{"role": "user", "content": "Define hello"}]
    before = settled(gw)
    with oa.chat.completions.stream(
        model=model,
        messages=messages,  # type: ignore[arg-type]
        tools=[TOOL_OA],  # type: ignore[list-item]
        max_completion_tokens=40,
        stream_options={"include_usage": True},
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_completion()
    assert "tool_calls.function.arguments.delta" in kinds
    [choice] = final.choices
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.function.name == "lookup" and json.loads(call.function.arguments) == {"text": "bonjour"}
    assert final.usage is not None
    # 3 tokens of text, 6 read from the cache: the prompt counts both, the details the cached
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (9, 5)
    assert final.usage.prompt_tokens_details is not None and final.usage.prompt_tokens_details.cached_tokens == 6
    settles(gw, before, 9, 5, cached=6)


def test_openai_sdk_text_stream_without_usage(oa: openai.OpenAI, gw: Server) -> None:
    before = settled(gw)
    stream = oa.chat.completions.create(
        model=f"anonly/mock-claude@{knobs(f'mail {EMAIL} now', chunk_size=3)}",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=30,
        stream=True,
    )
    chunks = list(stream)
    assert all(c.usage is None for c in chunks)  # the client did not ask for usage: none is sent
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "mail [REDACTED:EMAIL] now"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    settles(gw, before, 1, (len(f"mail {EMAIL} now") + 3) // 4)  # settled all the same


def test_openai_images_and_tool_results_reach_an_anthropic_provider(oa: openai.OpenAI, mock_server: Server) -> None:
    png = "iVBORw0KGgo="
    oa.chat.completions.create(
        model="anonly/mock-claude",
        max_tokens=20,
        stop="END",
        user="u-42",
        messages=[
            {"role": "developer", "content": "Be kind."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"text":"cat"}'}},
                    {"id": "c2", "type": "function", "function": {"name": "lookup", "arguments": ""}},
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "a small feline"},
            {"role": "tool", "tool_call_id": "c2", "content": "nothing"},
            {"role": "user", "content": "So?"},
        ],
    )
    body = provider_saw(mock_server)["body"]
    assert body["system"] == [{"type": "text", "text": "Be kind."}]
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "c1", "name": "lookup", "input": {"text": "cat"}},
                {"type": "tool_use", "id": "c2", "name": "lookup", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "c1", "content": "a small feline"},
                {"type": "tool_result", "tool_use_id": "c2", "content": "nothing"},
                {"type": "text", "text": "So?"},
            ],
        },
    ]
    assert body["stop_sequences"] == ["END"] and body["metadata"] == {"user_id": "u-42"} and body["max_tokens"] == 20


# --- refusals and errors, in the caller's format


@pytest.mark.parametrize(
    ("field", "value"),
    [("n", 2), ("logprobs", True), ("seed", 7), ("response_format", {"type": "json_object"}), ("temperature", 1.5)],
)
def test_openai_features_anthropic_cannot_serve_are_refused(
    oa: openai.OpenAI, gw: Server, mock_server: Server, field: str, value: object
) -> None:
    before, last = settled(gw), provider_saw(mock_server)
    with pytest.raises(openai.BadRequestError) as info:
        oa.chat.completions.create(
            model="anonly/mock-claude", messages=[{"role": "user", "content": "hi"}], extra_body={field: value}
        )
    assert info.value.code == "untranslatable_request" and info.value.param == field
    assert field in info.value.message and "Anthropic-format provider" in info.value.message
    assert provider_saw(mock_server) == last and settled(gw) == before  # nothing sent, nothing spent


@pytest.mark.parametrize(
    ("field", "value"),
    [("top_k", 5), ("thinking", {"type": "enabled", "budget_tokens": 1024}), ("container", "c-1")],
)
def test_anthropic_features_openai_cannot_serve_are_refused(
    an: anthropic.Anthropic, mock_server: Server, field: str, value: object
) -> None:
    last = provider_saw(mock_server)
    with pytest.raises(anthropic.BadRequestError) as info:
        an.messages.create(
            model="oaonly/mock-gpt",
            max_tokens=10,
            messages=[{"role": "user", "content": "hi"}],
            extra_body={field: value},
        )
    body = info.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error" and body["error"]["message"].startswith(f"{field}: ")
    assert provider_saw(mock_server) == last


def test_a_document_url_is_refused_by_name(an: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match=r"messages\[0\]\.content\[0\].*'document'"):
        an.messages.create(
            model="oaonly/mock-gpt",
            max_tokens=10,
            messages=[
                {"role": "user", "content": [{"type": "document", "source": {"type": "url", "url": "https://x/y.pdf"}}]}
            ],
        )


def test_provider_errors_come_back_in_the_callers_format(
    oa: openai.OpenAI, an: anthropic.Anthropic, gw: Server
) -> None:
    with pytest.raises(openai.RateLimitError) as oe:
        oa.chat.completions.create(model="anonly/mock-claude@fault=429", messages=[{"role": "user", "content": "hi"}])
    assert oe.value.status_code == 429 and oe.value.type == "rate_limit_error"
    assert oe.value.response.headers["retry-after-ms"] == "10"
    with pytest.raises(anthropic.InternalServerError) as ae:
        an.messages.create(
            model="oaonly/mock-gpt@fault=500", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    assert ae.value.status_code == 500
    assert isinstance(ae.value.body, dict) and ae.value.body["error"]["type"] == "api_error"
    with pytest.raises(anthropic.RateLimitError):
        an.messages.create(
            model="oaonly/mock-gpt@fault=429", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )


def test_in_stream_errors_come_back_in_the_callers_format(oa: openai.OpenAI, an: anthropic.Anthropic) -> None:
    with pytest.raises(openai.APIError, match="mock error_event fault"):
        for _ in oa.chat.completions.create(
            model="anonly/mock-claude@fault=error_event", messages=[{"role": "user", "content": "hi"}], stream=True
        ):
            pass
    with (
        pytest.raises(anthropic.APIStatusError, match="mock error_event fault"),
        an.messages.stream(
            model="oaonly/mock-gpt@fault=error_event", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        ) as stream,
    ):
        for _ in stream:
            pass


def test_a_broken_translated_stream_ends_with_an_error_event(gw: Server) -> None:
    body = {"model": "oaonly/mock-gpt@fault=disconnect", "max_tokens": 5, "stream": True}
    body["messages"] = [{"role": "user", "content": "hi"}]
    r = httpx.post(f"{gw.url}/v1/messages", json=body, headers={"x-api-key": GATEWAY_KEY}, timeout=10)
    assert r.status_code == 200
    assert r.text.startswith("event: message_start\n")
    assert "event: error\n" in r.text and "message_stop" not in r.text


def test_translated_streams_stream(an: anthropic.Anthropic, oa: openai.OpenAI) -> None:
    """Each piece reaches the client when the provider sends it, not at the end (150 ms apart here)."""
    messages: Any = [{"role": "user", "content": "hi"}]
    with an.messages.stream(
        model=f"oaonly/mock-gpt@{knobs('one two six ten ', chunk_size=4, delay_ms=150)}",
        max_tokens=20,
        messages=messages,
    ) as stream:
        seen = [time.monotonic() for text in stream.text_stream if text]
    assert len(seen) >= 4 and seen[-1] - seen[0] > 0.3  # (redaction may hold a tail back to the block's end)
    chunks = oa.chat.completions.create(
        model=f"anonly/mock-claude@{knobs('one two six ten ', chunk_size=4, delay_ms=150)}",
        messages=messages,
        stream=True,
    )
    seen = [time.monotonic() for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(seen) >= 4 and seen[-1] - seen[0] > 0.3


def test_formats_without_a_translation_are_still_refused(an: anthropic.Anthropic, oa: openai.OpenAI) -> None:
    with pytest.raises(anthropic.BadRequestError, match="does not speak the anthropic format"):
        an.messages.count_tokens(model="oaonly/mock-gpt", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="does not speak the openai format"):
        oa.embeddings.create(model="anonly/mock-claude", input="hi")


def test_the_in_process_mock_is_translated_too(an: anthropic.Anthropic) -> None:
    model = f"inproc-oa/mock-gpt@{knobs('hello there', chunk_size=3)}"
    with an.messages.stream(model=model, max_tokens=20, messages=[{"role": "user", "content": "hi"}]) as stream:
        assert "".join(stream.text_stream) == "hello there"
        final = stream.get_final_message()
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 3
    message = an.messages.create(model=model, max_tokens=20, messages=[{"role": "user", "content": "hi"}])
    assert message.content[0].type == "text" and message.content[0].text == "hello there"


def test_real_provider_kinds_get_their_own_headers_and_fields(
    an: anthropic.Anthropic, oa: openai.OpenAI, mock_server: Server
) -> None:
    """An `anthropic` provider gets its key as x-api-key and an anthropic-version; an
    OpenAI-compatible server gets a bearer key and `max_tokens` (what such servers read)."""
    completion = oa.chat.completions.create(
        model="ant/mock-claude", messages=[{"role": "user", "content": "hi"}], max_completion_tokens=30
    )
    assert completion.choices[0].finish_reason == "stop" and completion.choices[0].message.content
    seen = provider_saw(mock_server)
    assert seen["path"] == "/v1/messages" and seen["headers"]["x-api-key"] == "ant-provider-key"
    assert seen["headers"]["anthropic-version"] == "2023-06-01" and "authorization" not in seen["headers"]
    assert seen["body"]["max_tokens"] == 30 and seen["body"]["model"] == "mock-claude"
    message = an.messages.create(model="compat/mock-gpt", max_tokens=30, messages=[{"role": "user", "content": "hi"}])
    assert message.stop_reason == "end_turn" and message.content[0].type == "text"
    seen = provider_saw(mock_server)
    assert seen["path"] == "/v1/chat/completions" and seen["headers"]["authorization"] == "Bearer compat-provider-key"
    assert "x-api-key" not in seen["headers"] and "anthropic-version" not in seen["headers"]
    assert seen["body"]["max_tokens"] == 30 and "max_completion_tokens" not in seen["body"]
