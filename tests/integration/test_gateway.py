"""The gateway in front of the mock provider, over real sockets, with the real SDKs as clients.

The only change from calling the provider directly is `base_url` and the key.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
from tests.conftest import (
    GATEWAY_KEY,
    METRICS_TOKEN,
    PROVIDER_KEY,
    PYTHON,
    Server,
    free_port,
    gateway_config,
    provider_saw,
    scrape,
    spawn,
    start_gateway,
    stop_process,
)

MESSAGES = [{"role": "user", "content": "Say something."}]


@pytest.fixture
def oa(gateway: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client:
        yield client


@pytest.fixture
async def aoa(gateway: Server) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client:
        yield client


@pytest.fixture
def an(gateway: Server) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway.url, api_key=GATEWAY_KEY, max_retries=0) as client:
        yield client


@pytest.fixture
async def aan(gateway: Server) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(base_url=gateway.url, api_key=GATEWAY_KEY, max_retries=0) as client:
        yield client


def mock_stats(mock_server: Server) -> dict:  # type: ignore[type-arg]
    return httpx.get(f"{mock_server.url}/mock/stats").json()


# ── happy paths ──────────────────────────────────────────────────────────────


@pytest.mark.parametrize("model", ["mock-gpt", "inproc/mock-gpt"])
def test_chat(oa: openai.OpenAI, model: str) -> None:
    done = oa.chat.completions.create(model=model, messages=MESSAGES)
    assert done.choices[0].message.content
    assert done.usage is not None and done.usage.prompt_tokens > 0 and done.usage.completion_tokens > 0
    chunks = list(oa.chat.completions.create(model=model, messages=MESSAGES, stream=True))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == done.choices[0].message.content
    # sluicegate asked upstream for usage, and removed the usage chunk the client did not ask for
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_chat_stream_usage_when_asked(oa: openai.OpenAI) -> None:
    chunks = list(
        oa.chat.completions.create(
            model="mh/mock-gpt@chunks=4", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0


async def test_chat_async_stream_helper(aoa: openai.AsyncOpenAI) -> None:
    async with aoa.chat.completions.stream(model="mh/mock-gpt@chunks=5", messages=MESSAGES) as stream:
        async for _ in stream:
            pass
        final = await stream.get_final_completion()
    assert final.choices[0].message.content


def test_what_reaches_the_provider(oa: openai.OpenAI, mock_server: Server) -> None:
    """The provider sees its own key, never the client's, and the stream asks for usage; the echo
    the client reads back holds neither key."""
    stream = oa.chat.completions.create(
        model="mh/mock-gpt@echo=1,chunk_size=50", messages=MESSAGES, stream=True, user="u1"
    )
    seen = json.loads("".join(c.choices[0].delta.content or "" for c in stream if c.choices))
    assert provider_saw(mock_server)["headers"]["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert "authorization" not in seen["headers"] and PROVIDER_KEY not in json.dumps(seen)
    assert GATEWAY_KEY not in json.dumps(seen)
    assert seen["body"]["stream_options"] == {"include_usage": True}
    assert seen["body"]["messages"] == MESSAGES and seen["body"]["user"] == "u1"
    assert seen["path"] == "/v1/chat/completions"


def test_prefix_is_removed_before_upstream(oa: openai.OpenAI) -> None:
    done = oa.chat.completions.create(model="mh/mock-gpt@echo=1", messages=MESSAGES)
    seen = json.loads(done.choices[0].message.content or "")
    assert seen["body"]["model"] == "mock-gpt@echo=1"


def test_unchanged_request_is_forwarded_as_its_bytes(gateway: Server) -> None:
    raw = b'{"model":  "mh/mock-gpt@echo=1" ,\n "messages": [{"role":"user","content":"x\\u00e9"}], "z": 1}'
    r = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        content=raw,
        headers={"authorization": f"Bearer {GATEWAY_KEY}", "content-type": "application/json"},
    )
    seen = json.loads(r.json()["choices"][0]["message"]["content"])
    assert seen["body"]["z"] == 1 and seen["body"]["messages"][0]["content"] == "x\u00e9"


def test_responses(oa: openai.OpenAI) -> None:
    done = oa.responses.create(model="mock-gpt", input="Say something.")
    assert done.output_text and done.usage is not None and done.usage.input_tokens > 0
    events = list(oa.responses.create(model="mock-gpt", input="Say something.", stream=True))
    assert events[-1].type == "response.completed"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == done.output_text


def test_embeddings(oa: openai.OpenAI) -> None:
    out = oa.embeddings.create(model="mock-gpt", input=["a", "b"])
    assert len(out.data) == 2 and len(out.data[0].embedding) > 0 and out.usage.prompt_tokens > 0


def test_models_in_both_formats(oa: openai.OpenAI, an: anthropic.Anthropic) -> None:
    assert {m.id for m in oa.models.list()} >= {"mock-gpt", "mock-claude"}
    assert {m.id for m in an.models.list()} >= {"mock-gpt", "mock-claude"}


@pytest.mark.parametrize("model", ["mock-claude", "inproc/mock-claude"])
def test_messages(an: anthropic.Anthropic, model: str) -> None:
    done = an.messages.create(model=model, max_tokens=64, messages=MESSAGES)
    text = "".join(b.text for b in done.content if b.type == "text")
    assert text and done.usage.input_tokens > 0 and done.usage.output_tokens > 0
    with an.messages.stream(model=model, max_tokens=64, messages=MESSAGES) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed == text
    assert final.usage.output_tokens == done.usage.output_tokens


async def test_messages_async(aan: anthropic.AsyncAnthropic) -> None:
    stream = await aan.messages.create(model="mh/mock-claude@chunks=3", max_tokens=64, messages=MESSAGES, stream=True)
    kinds = [event.type async for event in stream]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"


def test_count_tokens(an: anthropic.Anthropic) -> None:
    assert an.messages.count_tokens(model="mock-claude", messages=MESSAGES).input_tokens > 0


def test_anthropic_headers_pass_through(an: anthropic.Anthropic, mock_server: Server) -> None:
    done = an.messages.create(
        model="mh/mock-claude@echo=1",
        max_tokens=64,
        messages=MESSAGES,
        extra_headers={"anthropic-beta": "feature-x"},
    )
    seen = json.loads(done.content[0].text)  # type: ignore[union-attr]
    assert seen["headers"]["anthropic-beta"] == "feature-x"
    assert seen["headers"]["anthropic-version"]  # the SDK's own version, passed through
    assert provider_saw(mock_server)["headers"]["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert GATEWAY_KEY not in json.dumps(seen) and PROVIDER_KEY not in json.dumps(seen)


def test_x_api_key_is_accepted_on_openai_routes_too(gateway: Server) -> None:
    r = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "mock-gpt", "messages": MESSAGES},
        headers={"x-api-key": GATEWAY_KEY},
    )
    assert r.status_code == 200, r.text


# ── errors in the caller's format ────────────────────────────────────────────


def post(gateway: Server, path: str, content: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    base = {"authorization": f"Bearer {GATEWAY_KEY}", "content-type": "application/json"}
    return httpx.post(f"{gateway.url}{path}", content=content, headers={**base, **(headers or {})})


@pytest.mark.parametrize(
    ("content", "headers", "status", "code"),
    [
        (b"{not json", {}, 400, "invalid_json"),
        (b"[1, 2]", {}, 400, "invalid_json"),
        (b'{"messages": []}', {}, 400, "missing_model"),
        (b'{"model": ""}', {}, 400, "missing_model"),
        (b'{"model": "mock-gpt"}', {"content-type": "text/plain"}, 400, "unsupported_content_type"),
        (b'{"model": "mock-gpt"}', {"authorization": "Bearer sg-wrong"}, 401, "invalid_api_key"),
        (b'{"model": "mock-gpt"}', {"authorization": ""}, 401, "missing_api_key"),
        (b'{"model": "gpt-nope"}', {}, 404, "model_not_found"),
        (b'{"model": "mock-gpt", "pad": "' + b"x" * 70000 + b'"}', {}, 413, "request_too_large"),
        # nesting past server.max_json_depth (64, the body itself level 1), and past orjson's own 1024
        (b'{"model": "mock-gpt", "x": ' + b"[" * 64 + b"]" * 64 + b"}", {}, 400, "json_too_deep"),
        (b'{"model": "mock-gpt", "x": ' + b'{"a": ' * 2000 + b"1" + b"}" * 2000 + b"}", {}, 400, "json_too_deep"),
    ],
)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_bad_requests(
    gateway: Server, path: str, content: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    r = post(gateway, path, content, headers)
    assert r.status_code == status, r.text
    body = r.json()
    if path == "/v1/messages":
        assert body["type"] == "error" and body["error"]["type"] and body["error"]["message"]
        assert body["request_id"] == r.headers["x-request-id"]
    else:
        assert body["error"]["code"] == code and body["error"]["message"]
    assert GATEWAY_KEY not in r.text


def test_body_over_limit_without_content_length_is_refused(gateway: Server) -> None:
    def body():  # type: ignore[no-untyped-def]
        yield b'{"model": "mock-gpt", "pad": "'
        for _ in range(20):
            yield b"x" * 8192
        yield b'"}'

    r = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        content=body(),
        headers={"authorization": f"Bearer {GATEWAY_KEY}", "content-type": "application/json"},
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/v1/completions", 404),
        ("GET", "/v1/files", 404),
        ("POST", "/v1/audio/speech", 404),
        ("POST", "/v2/chat/completions", 404),
        ("GET", "/v1/chat/completions", 405),
    ],
)
def test_unknown_paths_are_refused(gateway: Server, method: str, path: str, status: int) -> None:
    r = httpx.request(method, f"{gateway.url}{path}", headers={"authorization": f"Bearer {GATEWAY_KEY}"})
    assert r.status_code == status
    assert r.json()["error"]["message"]


def test_sdk_exception_classes(oa: openai.OpenAI, an: anthropic.Anthropic, gateway: Server) -> None:
    with (
        openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sg-wrong", max_retries=0) as wrong,
        pytest.raises(openai.AuthenticationError),
    ):
        wrong.models.list()
    with (
        anthropic.Anthropic(base_url=gateway.url, api_key="sg-wrong", max_retries=0) as wrong_an,
        pytest.raises(anthropic.AuthenticationError),
    ):
        wrong_an.messages.create(model="mock-claude", max_tokens=5, messages=MESSAGES)
    with pytest.raises(openai.NotFoundError):
        oa.chat.completions.create(model="gpt-nope", messages=MESSAGES)
    with pytest.raises(anthropic.NotFoundError):
        an.messages.create(model="claude-nope", max_tokens=5, messages=MESSAGES)
    with pytest.raises(openai.BadRequestError):
        oa.chat.completions.create(model="", messages=MESSAGES)


@pytest.mark.parametrize(
    ("fault", "status", "oa_exc", "an_exc"),
    [
        ("429", 429, openai.RateLimitError, anthropic.RateLimitError),
        ("500", 500, openai.InternalServerError, anthropic.InternalServerError),
        ("529", 529, openai.InternalServerError, anthropic.OverloadedError),
    ],
)
def test_upstream_error_statuses_pass_through(
    oa: openai.OpenAI, an: anthropic.Anthropic, fault: str, status: int, oa_exc: type, an_exc: type
) -> None:
    with pytest.raises(oa_exc) as oe:
        oa.chat.completions.create(model=f"mh/mock-gpt@fault={fault}", messages=MESSAGES)
    assert oe.value.status_code == status
    with pytest.raises(an_exc) as ae:
        an.messages.create(model=f"mh/mock-claude@fault={fault}", max_tokens=5, messages=MESSAGES, stream=True)
    assert ae.value.status_code == status


def test_retry_headers_pass_through(gateway: Server) -> None:
    r = post(gateway, "/v1/chat/completions", b'{"model": "mh/mock-gpt@fault=429", "messages": []}')
    assert r.status_code == 429 and "retry-after-ms" in r.headers


def test_unreachable_upstream_is_502(oa: openai.OpenAI, gateway: Server) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        oa.chat.completions.create(model="dead/gpt", messages=MESSAGES)
    assert info.value.status_code == 502 and info.value.code == "upstream_unreachable"


def test_slow_first_byte_is_504(oa: openai.OpenAI, an: anthropic.Anthropic) -> None:
    start = time.monotonic()
    with pytest.raises(openai.InternalServerError) as info:
        oa.chat.completions.create(model="mh/mock-gpt@fault=slow_first_byte,first_byte_ms=5000", messages=MESSAGES)
    assert info.value.status_code == 504 and info.value.code == "upstream_timeout"
    assert time.monotonic() - start < 4.5  # the gateway's 2 s first-byte timeout, not the mock's 5 s
    with pytest.raises(anthropic.GatewayTimeoutError):
        an.messages.create(model="inproc/mock-claude@first_byte_ms=5000", max_tokens=5, messages=MESSAGES)


# ── failures after the 200 ───────────────────────────────────────────────────


@pytest.mark.parametrize("fault", ["disconnect", "malformed", "error_event", "stall"])
@pytest.mark.parametrize("provider", ["mh", "inproc"])
def test_mid_stream_failure_ends_with_an_error_event(
    oa: openai.OpenAI, an: anthropic.Anthropic, provider: str, fault: str
) -> None:
    knobs = "delay_ms=3000,chunks=4" if fault == "stall" else f"fault={fault},chunks=6"
    start = time.monotonic()
    got: list[str] = []
    with pytest.raises(openai.APIError) as oe:
        for chunk in oa.chat.completions.create(model=f"{provider}/mock-gpt@{knobs}", messages=MESSAGES, stream=True):
            got.extend(c.delta.content or "" for c in chunk.choices)
    assert not isinstance(oe.value, openai.APIStatusError)  # raised from the in-stream error event
    assert fault == "stall" or got  # the events before the failure arrived
    model = f"{provider}/mock-claude@{knobs}"
    with (
        pytest.raises(anthropic.APIStatusError),
        an.messages.stream(model=model, max_tokens=64, messages=MESSAGES) as s,
    ):
        for _ in s.text_stream:
            pass
    assert time.monotonic() - start < 12  # never a hang


def test_mid_stream_failure_in_responses(oa: openai.OpenAI) -> None:
    with pytest.raises(openai.APIError):
        for _ in oa.responses.create(model="mh/mock-gpt@fault=disconnect", input="x", stream=True):
            pass


def test_client_disconnect_closes_the_upstream_request(gateway: Server, mock_server: Server) -> None:
    before = mock_stats(mock_server)["streams_disconnected"]
    body = json.dumps({"model": "mh/mock-gpt@chunks=200,delay_ms=50", "messages": MESSAGES, "stream": True})
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {GATEWAY_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    ).encode()
    with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
        sock.sendall(request)
        received = b""
        while received.count(b"data: ") < 2:
            received += sock.recv(4096)
    deadline = time.monotonic() + 1.0
    while mock_stats(mock_server)["streams_disconnected"] == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert mock_stats(mock_server)["streams_disconnected"] == before + 1


def test_metrics(gateway: Server, oa: openai.OpenAI) -> None:
    oa.chat.completions.create(model="mock-gpt", messages=MESSAGES)
    list(oa.chat.completions.create(model="mock-gpt", messages=MESSAGES, stream=True))
    with pytest.raises(openai.NotFoundError):
        oa.chat.completions.create(model="gpt-nope", messages=MESSAGES)
    text = scrape(gateway.url)
    lines = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line[:1] != "#"}
    ok = 'sluicegate_requests_total{model="mock-gpt",provider="mh",route="openai_chat",status="200"}'
    assert lines[ok] >= 2
    assert lines['sluicegate_requests_total{model="other",provider="none",route="openai_chat",status="404"}'] >= 1
    assert (
        lines['sluicegate_time_to_first_token_seconds_count{model="mock-gpt",provider="mh",route="openai_chat"}'] >= 1
    )
    assert lines['sluicegate_tokens_total{direction="output",workspace="ws-test"}'] > 0
    assert GATEWAY_KEY not in text


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        f"Bearer {METRICS_TOKEN}x",
        f"Bearer {METRICS_TOKEN[:-1]}",
        f"Basic {METRICS_TOKEN}",
    ],
)
def test_metrics_refuse_a_scrape_without_the_token(gateway: Server, authorization: str | None) -> None:
    headers = {"authorization": authorization} if authorization is not None else {}
    r = httpx.get(f"{gateway.url}/metrics", headers=headers)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert "sluicegate_" not in r.text and "ws-test" not in r.text
    right = httpx.get(f"{gateway.url}/metrics", headers={"authorization": f"bearer {METRICS_TOKEN}"})
    assert right.status_code == 200 and "sluicegate_requests_total" in right.text


def test_the_default_config_serves_metrics_to_no_one() -> None:
    """`sluicegate serve` with no file (the embedded default): metrics are on, no token is set, and
    every scrape gets a 401, with a warning at start."""
    port = free_port()
    with spawn([PYTHON, "-m", "sluicegate", "serve", "--port", str(port)], port) as server:
        assert httpx.get(f"{server.url}/metrics").status_code == 401
        assert httpx.get(f"{server.url}/metrics", headers={"authorization": "Bearer"}).status_code == 401
        stop_process(server.proc)
        assert server.proc.stdout is not None
        assert "metrics.enabled without metrics.token" in server.proc.stdout.read().decode(errors="replace")


def test_openai_and_anthropic_provider_kinds_build_their_own_requests(mock_server: Server, tmp_path: Path) -> None:
    """The `openai` kind appends to a base URL that ends in /v1 and sends `Authorization: Bearer`;
    the `anthropic` kind appends /v1/... to the root and sends `x-api-key` and `anthropic-version`."""
    extra = f"""
[providers.oai]
kind = "openai"
base_url = "{mock_server.url}/v1"
api_key = "oai-provider-key"

[providers.ant]
kind = "anthropic"
base_url = "{mock_server.url}"
api_key = "ant-provider-key"
"""
    with start_gateway(gateway_config(tmp_path / "c.toml", mock_server.url, extra)) as gw:
        with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as oa:
            oa.chat.completions.create(model="oai/x", messages=MESSAGES)
        seen = provider_saw(mock_server)
        assert seen["path"] == "/v1/chat/completions" and seen["headers"]["authorization"] == "Bearer oai-provider-key"
        assert "x-api-key" not in seen["headers"] and "anthropic-version" not in seen["headers"]
        with anthropic.Anthropic(base_url=gw.url, api_key=GATEWAY_KEY, max_retries=0) as an:
            an.messages.create(model="ant/claude", max_tokens=50, messages=MESSAGES)
        seen = provider_saw(mock_server)
        assert seen["path"] == "/v1/messages" and seen["headers"]["x-api-key"] == "ant-provider-key"
        assert "authorization" not in seen["headers"] and seen["headers"]["anthropic-version"]
        with (
            openai.OpenAI(base_url=f"{gw.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as oa,
            pytest.raises(openai.BadRequestError, match="does not speak the openai format"),
        ):  # chat completions are translated for it (test_translation.py); the Responses API is not
            oa.responses.create(model="ant/claude", input="hello")
