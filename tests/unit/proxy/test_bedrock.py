"""AWS Bedrock providers: settings validation, URL building, model ids and prices, the request body,
SigV4 signing (checked by the mock's botocore verifier), Bedrock's errors in Anthropic's shape, and
the event stream turned into Anthropic SSE events however its bytes are cut."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate.config import ConfigError, Settings, load_settings
from sluicegate.errors import InvalidRequest, UpstreamError, UpstreamProtocolError
from sluicegate.formats import ANTHROPIC_MESSAGES, OPENAI_CHAT
from sluicegate.formats.sse import EventBuffer
from sluicegate.mock.bedrock import CREDENTIALS, _verify, chunk_message, encode_message, exception_message
from sluicegate.proxy.bedrock import EventStreamToSse, bedrock_body, error_body, invoke_url
from sluicegate.proxy.providers import Router
from sluicegate.proxy.routing import refusal_case

MODEL_ID = "anthropic.claude-3-5-sonnet-20241022-v2:0"
ARN = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0"
KEY_ID = "AKIAMOCKBEDROCK0000A"
TEMP_KEY_ID = "ASIAMOCKBEDROCK0000B"
SETTINGS = Settings.model_validate(
    {
        "providers": {
            "br": {
                "kind": "bedrock",
                "region": "us-west-2",
                "aws_access_key_id_env": "BR_KEY_ID",
                "aws_secret_access_key_env": "BR_SECRET",
                "deployments": {
                    "claude-sonnet": {"deployment": MODEL_ID, "price_as": "claude-3-5-sonnet-20241022"},
                    "haiku": ARN,
                },
            },
            "br-default": {"kind": "bedrock", "region": "eu-central-1", "base_url": "http://127.0.0.1:9/"},
        }
    }
)
ENVIRON = {
    "BR_KEY_ID": KEY_ID,
    "BR_SECRET": CREDENTIALS[KEY_ID][0],
    "AWS_ACCESS_KEY_ID": TEMP_KEY_ID,
    "AWS_SECRET_ACCESS_KEY": CREDENTIALS[TEMP_KEY_ID][0],
    "AWS_SESSION_TOKEN": CREDENTIALS[TEMP_KEY_ID][1] or "",
}
ROUTER = Router(SETTINGS, ENVIRON)


def test_urls_name_the_model_id_in_its_own_segment() -> None:
    br = ROUTER.providers["br"]
    base = "https://bedrock-runtime.us-west-2.amazonaws.com"
    assert br.url("/v1/messages", None, MODEL_ID) == f"{base}/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/invoke"
    arn_url = br.url("/v1/messages", None, ARN)
    assert arn_url is not None
    assert arn_url.startswith(f"{base}/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2F")
    assert arn_url.count("/") == base.count("/") + 3
    assert invoke_url(base, "a/../b", True) == f"{base}/model/a%2F..%2Fb/invoke-with-response-stream"
    assert ROUTER.providers["br-default"].url("/v1/messages", None, "m") == "http://127.0.0.1:9/model/m/invoke"


def test_model_ids_route_and_price_as_mapped() -> None:
    provider, model = ROUTER.route("claude-sonnet", ANTHROPIC_MESSAGES)
    assert (provider.name, model) == ("br", MODEL_ID)
    provider, model = ROUTER.route("claude-sonnet", OPENAI_CHAT)  # translated: Bedrock speaks Anthropic's format
    assert (provider.name, model) == ("br", MODEL_ID)
    assert provider.translation(OPENAI_CHAT) is not None and provider.translation(ANTHROPIC_MESSAGES) is None
    assert provider.price_model(MODEL_ID) == "claude-3-5-sonnet-20241022"
    assert provider.price_model(ARN) == "haiku"  # the gateway name, by default
    assert ROUTER.route("br/" + MODEL_ID, ANTHROPIC_MESSAGES)[1] == MODEL_ID


def test_the_body_is_bedrocks() -> None:
    raw = orjson.dumps({"model": "m", "stream": True, "max_tokens": 5, "messages": []})
    body, stream = bedrock_body(raw, "a-2025-01-01, b-2025-02-02")
    assert stream is True
    assert orjson.loads(body) == {
        "max_tokens": 5,
        "messages": [],
        "anthropic_version": "bedrock-2023-05-31",
        "anthropic_beta": ["a-2025-01-01", "b-2025-02-02"],
    }
    assert bedrock_body(b'{"model":"m","max_tokens":5}')[1] is False
    with pytest.raises(InvalidRequest):
        bedrock_body(b"[1]")


def _verified(url: str, headers: dict[str, str], body: bytes) -> int | None:
    """The mock's verdict on a signed request (None: the signature holds), as Bedrock checks it."""
    host, _, path = url.split("://", 1)[1].partition("/")
    received = {name.lower(): value for name, value in headers.items()} | {"host": host}
    refused = _verify("/" + path, received, body)
    return None if refused is None else refused.status


def test_signatures_are_botocores_over_the_exact_body() -> None:
    url = "http://127.0.0.1:9/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/invoke"
    body = b'{"max_tokens":5}'
    signed = ROUTER.providers["br"].bedrock.signed_headers(url, {"content-type": "application/json"}, body)  # type: ignore[union-attr]
    assert signed["Authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={KEY_ID}/")
    assert "/us-west-2/bedrock/aws4_request" in signed["Authorization"]
    assert "X-Amz-Security-Token" not in signed  # a named key takes no AWS_SESSION_TOKEN
    assert _verified(url, signed, body) is None
    assert _verified(url, signed, body + b" ") == 403  # the body changed after signing
    assert _verified(url.replace("invoke", "invoke-with-response-stream"), signed, body) == 403
    temp = ROUTER.providers["br-default"].bedrock.signed_headers(url, {}, body)  # type: ignore[union-attr]
    assert temp["X-Amz-Security-Token"] == CREDENTIALS[TEMP_KEY_ID][1]
    assert "/eu-central-1/bedrock/" in temp["Authorization"]
    assert _verified(url, temp, body) is None


def test_missing_credentials_name_the_variables_only() -> None:
    router = Router(SETTINGS, {"BR_KEY_ID": KEY_ID})
    with pytest.raises(UpstreamError, match="BR_SECRET is not set") as refused:
        router.providers["br"].bedrock.signed_headers("http://h/model/m/invoke", {}, b"{}")  # type: ignore[union-attr]
    assert refused.value.code == "provider_not_configured"
    assert KEY_ID not in str(refused.value)
    with pytest.raises(UpstreamError, match="AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set"):
        router.providers["br-default"].bedrock.signed_headers("http://h/model/m/invoke", {}, b"{}")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('kind = "bedrock"', "needs region"),
        ('kind = "bedrock"\nregion = "US East"', "region: String should match"),
        ('kind = "bedrock"\nregion = "us-east-1"\napi_key = "k"', "signs its calls with AWS credentials"),
        ('kind = "bedrock"\nregion = "us-east-1"\naws_access_key_id_env = "K"', "together"),
        ('kind = "bedrock"\nregion = "us-east-1"\nformats = ["openai"]', "Anthropic's Messages format only"),
        ('kind = "bedrock"\nregion = "us-east-1"\napi_version = "v1"', "azure provider only"),
        ('kind = "bedrock"\nregion = "us-east-1"\ndeployments = { c = " " }', "deployments.c names no model id"),
        ('kind = "anthropic"\nregion = "us-east-1"', "settings of a bedrock provider only"),
        ('kind = "openai"\naws_access_key_id_env = "K"', "settings of a bedrock provider only"),
    ],
)
def test_settings_errors_are_clear(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f"[providers.br]\n{toml}\n")
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings(path, environ={})
    assert str(caught.value).startswith("providers.br")


@pytest.mark.parametrize(
    ("status", "errortype", "body", "expected"),
    [
        (
            429,
            "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/",
            b'{"message":"slow"}',
            (429, "rate_limit_error", "ThrottlingException: slow"),
        ),
        (400, "ServiceQuotaExceededException", b'{"message":"quota"}', (429, "rate_limit_error", None)),
        (503, "ServiceUnavailableException", b'{"message":"busy"}', (503, "overloaded_error", None)),
        (400, "ValidationException", b'{"message":"bad"}', (400, "invalid_request_error", None)),
        (403, "InvalidSignatureException", b'{"message":"sig"}', (403, "permission_error", None)),
        (
            403,
            None,
            b'{"Message":"User is not authorized"}',
            (403, "permission_error", "Bedrock error: User is not authorized"),
        ),
        (500, None, b"<html>", (500, "api_error", "Bedrock answered 500")),
        (
            400,
            None,
            b'{"__type":"com.amazon#ValidationException","message":"m"}',
            (400, "invalid_request_error", "ValidationException: m"),
        ),
    ],
)
def test_errors_in_anthropics_shape(
    status: int, errortype: str | None, body: bytes, expected: tuple[int, str, str | None]
) -> None:
    mapped, raw = error_body(status, body, errortype)
    parsed = orjson.loads(raw)
    assert parsed["type"] == "error"
    assert (mapped, parsed["error"]["type"]) == expected[:2]
    if expected[2] is not None:
        assert parsed["error"]["message"] == expected[2]


def _events() -> st.SearchStrategy[list[dict[str, Any]]]:
    text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
    delta = st.builds(
        lambda t, i: {"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": t}},
        text,
        st.integers(0, 3),
    )
    return st.lists(delta, max_size=8).map(
        lambda ds: (
            [
                {"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 3}}},
                *ds,
                {"type": "message_stop"},
            ]
        )
    )


def _stream(events: list[dict[str, Any]], exception: str | None) -> tuple[bytes, bytes]:
    """(the event stream's bytes, the SSE bytes it stands for)."""
    frames = b"".join(chunk_message(orjson.dumps(e)) for e in events)
    sse = b"".join(b"event: %s\ndata: %s\n\n" % (e["type"].encode(), orjson.dumps(e)) for e in events)
    if exception is not None:
        frames += exception_message(exception, "stopped") + chunk_message(b'{"type":"message_stop"}')
        kind = "rate_limit_error" if exception == "throttlingException" else "api_error"
        error = {"type": "error", "error": {"type": kind, "message": f"{exception}: stopped"}}
        sse += b"event: error\ndata: " + orjson.dumps(error) + b"\n\n"
    return frames, sse


def _convert(frames: bytes, cuts: list[int]) -> bytes:
    converter = EventStreamToSse()
    out, start = [], 0
    for cut in [*sorted(cuts), len(frames)]:
        out.append(converter.feed(frames[start:cut]))
        start = cut
    converter.finish()
    return b"".join(out)


@settings(max_examples=60, deadline=None)
@given(
    events=_events(),
    exception=st.sampled_from([None, "throttlingException", "modelStreamErrorException"]),
    data=st.data(),
)
def test_event_stream_to_sse_however_cut(events: list[dict[str, Any]], exception: str | None, data: Any) -> None:
    frames, sse = _stream(events, exception)
    cuts = data.draw(st.lists(st.integers(0, len(frames)), max_size=12))
    assert _convert(frames, cuts) == sse
    # And the SSE reads back as the events, in order (the relay's own parser).
    buffer = EventBuffer()
    parsed = [orjson.loads(e.data) for e in buffer.feed(sse)]
    assert parsed[: len(events)] == events


def test_event_stream_cut_at_every_byte_and_byte_by_byte() -> None:
    events = [
        {"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 3}}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "héllo\nworld"}},
        {"type": "message_stop"},
    ]
    frames, sse = _stream(events, "modelStreamErrorException")
    for cut in range(len(frames) + 1):
        assert _convert(frames, [cut]) == sse
    assert _convert(frames, list(range(len(frames)))) == sse


def test_a_damaged_or_cut_event_stream_is_an_upstream_error() -> None:
    frames, _ = _stream([{"type": "message_stop"}], None)
    damaged = bytearray(frames)
    damaged[-6] ^= 0x01  # a payload byte: the message CRC no longer holds
    with pytest.raises(UpstreamProtocolError, match="damaged"):
        EventStreamToSse().feed(bytes(damaged))
    converter = EventStreamToSse()
    assert converter.feed(frames[:-1]) == b""
    with pytest.raises(UpstreamProtocolError, match="inside a frame"):
        converter.finish()
    not_json = encode_message({":message-type": "event", ":event-type": "chunk"}, b'{"bytes":"bm90IGpzb24="}')
    with pytest.raises(UpstreamProtocolError, match="not one JSON event"):
        EventStreamToSse().feed(not_json)
    other = encode_message({":message-type": "event", ":event-type": "initial-response"}, b"{}")
    assert EventStreamToSse().feed(other) == b""
    pretty = b'{\n  "type": "ping"\n}'
    payload = orjson.dumps({"bytes": base64.b64encode(pretty).decode()})
    message = encode_message({":message-type": "event", ":event-type": "chunk"}, payload)
    assert EventStreamToSse().feed(message) == b'event: ping\ndata: {"type":"ping"}\n\n'


def test_a_gateway_without_bedrock_loads_no_botocore() -> None:
    code = (
        "import sys\n"
        "from sluicegate.config import Settings\n"
        "from sluicegate.policy.pipeline import Gateway\n"
        "Gateway(Settings.model_validate({'providers': {'a': {'kind': 'anthropic', 'api_key': 'k'}}}), {})\n"
        "assert not [m for m in sys.modules if m.startswith('botocore')], 'botocore loaded'\n"
        "Gateway(Settings.model_validate({'providers': {'b': {'kind': 'bedrock', 'region': 'us-east-1'}}}), {})\n"
        "assert 'botocore.auth' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_a_too_long_prompt_counts_as_context_length_for_fallbacks() -> None:
    _, body = error_body(400, b'{"message":"Input is too long for requested model."}', "ValidationException")
    assert refusal_case(body) == "context_length"
    _, other = error_body(400, b'{"message":"messages: field required"}', "ValidationException")
    assert refusal_case(other) is None


def test_an_event_past_the_bound_is_refused_before_it_is_buffered_whole() -> None:
    big = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "x" * 200_000}}
    frames, sse = _stream([big], None)
    assert EventStreamToSse(max_event=200_100).feed(frames) == sse  # within the bound
    converter = EventStreamToSse(max_event=100_000)
    with pytest.raises(UpstreamProtocolError, match="max_event_bytes"):
        for start in range(0, len(frames), 4096):
            converter.feed(frames[start : start + 4096])
