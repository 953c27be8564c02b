"""Values hidden by an encoding, through the gateway (issue 16).

An e-mail written with an HTML character reference or percent-encoded, a secret inside text that
is itself JSON (escaped slashes), a card in full-width digits and an IBAN hard-wrapped across a
line break are redacted before the provider sees them, and, in a model's answer, before the client
sees them, streamed or not, however the stream is cut. The real openai SDK is the client; the mock
provider, on its own socket, records the request it received.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import openai
import pytest
from tests.conftest import GATEWAY_KEY, Server, gateway_config, start_gateway

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzq9vLp4Tks"

# (name, text around the value, the value as written, entity, fragments that must not get through)
CASES = [
    ("html-entity-email", "Write to {} about the refund.", "maria&#64;example.com", "EMAIL", ["maria"]),
    ("html-named-email", "<p>Contact: {}</p>", "maria&commat;example&period;com", "EMAIL", ["maria"]),
    (
        "percent-email",
        "Open https://crm.internal/invite?to={}&ref=7 to accept.",
        "maria.lopez%40example.com",
        "EMAIL",
        ["maria"],
    ),
    (
        "json-escaped-secret",
        '{{"aws_secret_access_key": "{}", "region": "eu-west-1"}}',
        AWS_SECRET.replace("/", "\\/"),
        "AWS_SECRET_ACCESS_KEY",
        ["wJalrXUtnFEMI", "bPxRfiCYzq9vLp4Tks"],
    ),
    (
        "json-unicode-email",
        '{{"contact": "{}"}}',
        "maria\\u0040example.com",
        "EMAIL",
        ["maria"],
    ),
    (
        "fullwidth-card",
        "Card number: {} (exp 12/29).",
        "\uff14\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 \uff11\uff11\uff11\uff11",
        "CREDIT_CARD",
        ["\uff11\uff11\uff11\uff11"],
    ),
    (
        "wrapped-iban",
        "Please wire the refund to our account with IBAN {} by Friday.",
        "DE89 3704 0044\n0532 0130 00",
        "IBAN",
        ["3704", "0130"],
    ),
    (
        "nbsp-zero-width-card",
        "card {} ok",
        "4111\u00a01111\u202f11\u200b11\u00a01111",
        "CREDIT_CARD",
        ["4111", "11\u200b11"],
    ),
]
IDS = [c[0] for c in CASES]


@pytest.fixture(scope="module")
def gw(mock_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config = gateway_config(tmp_path_factory.mktemp("encodings") / "c.toml", mock_server.url, "[redaction]\n")
    with start_gateway(config) as server:
        yield server


@pytest.fixture
def oa(gw: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client:
        yield client


def upstream_message(mock_server: Server) -> str:
    """The content of the first message of the last request the mock provider received."""
    body = httpx.get(f"{mock_server.url}/mock/stats").json()["last_request"]["body"]
    return str(body["messages"][0]["content"])


@pytest.mark.parametrize(("name", "around", "value", "entity", "secret"), CASES, ids=IDS)
def test_encoded_values_never_reach_the_provider(
    oa: openai.OpenAI, mock_server: Server, name: str, around: str, value: str, entity: str, secret: list[str]
) -> None:
    text = around.format(value)
    oa.chat.completions.create(model="mh/mock-gpt", messages=[{"role": "user", "content": text}])
    seen = upstream_message(mock_server)
    assert seen == around.format(f"[REDACTED:{entity}]"), name
    for part in secret:
        assert part not in seen


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 1000])
@pytest.mark.parametrize(("name", "around", "value", "entity", "secret"), CASES, ids=IDS)
def test_encoded_values_in_a_streamed_answer_never_reach_the_client(
    oa: openai.OpenAI, chunk_size: int, name: str, around: str, value: str, entity: str, secret: list[str]
) -> None:
    reply = around.format(value)
    model = f"mh/mock-gpt@reply={quote(reply, safe='')},chunk_size={chunk_size}"
    chunks = oa.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}], stream=True)
    got = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert got == around.format(f"[REDACTED:{entity}]"), name
    for part in secret:
        assert part not in got


@pytest.mark.parametrize(("name", "around", "value", "entity", "secret"), CASES[:3], ids=IDS[:3])
def test_encoded_values_in_an_answer_are_redacted(
    oa: openai.OpenAI, name: str, around: str, value: str, entity: str, secret: list[str]
) -> None:
    reply = around.format(value)
    done = oa.chat.completions.create(
        model=f"mh/mock-gpt@reply={quote(reply, safe='')}", messages=[{"role": "user", "content": "x"}]
    )
    assert done.choices[0].message.content == around.format(f"[REDACTED:{entity}]"), name


def test_look_alikes_reach_the_provider_unchanged(oa: openai.OpenAI, mock_server: Server) -> None:
    text = (
        "50% off this week, Tom &amp; Jerry at AT&T, "
        + json.dumps({"name": "caf\u00e9", "path": "C:\\new\\table"})
        + "\nTotals:\n4500\n1200\n3300\n9900"
    )
    oa.chat.completions.create(model="mh/mock-gpt", messages=[{"role": "user", "content": text}])
    assert upstream_message(mock_server) == text
