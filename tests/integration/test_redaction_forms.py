"""SSNs and cards written the way people and tools write them, through the gateway (issue 18).

With `block` rules for US_SSN and CREDIT_CARD on requests, an SSN with en dashes, em dashes or
spaced digits and a card with dots, dashes or spaced digits are refused before the provider
sees anything; on the way back (the default `redact`), a streamed reply carrying them reaches the
client redacted, however the stream is cut. The real openai SDK is the client and the mock
provider, on its own socket, counts what reached it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import openai
import pytest
from tests.conftest import GATEWAY_KEY, Server, gateway_config, start_gateway

REDACTION = """
[redaction]
rules = [{ entities = ["US_SSN", "CREDIT_CARD"], action = "block", direction = "request" }]
"""

# (entity, value): each one was forwarded verbatim before the scanner read these separators
FORMS = [
    ("US_SSN", "536\u201322\u20131234"),  # en dashes
    ("US_SSN", "536\u201422\u20141234"),  # em dashes
    ("US_SSN", "5 3 6 - 2 2 - 1 2 3 4"),  # spaced digits
    ("US_SSN", "5\u00a03\u00a06 \u2013 2\u00a02 \u2013 1\u00a02\u00a03\u00a04"),  # no-break spaces, en dashes
    ("US_SSN", "536.22.1234"),
    ("CREDIT_CARD", "4111.1111.1111.1111"),  # dots
    ("CREDIT_CARD", "4111\u20131111\u20131111\u20131111"),
    ("CREDIT_CARD", "4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1"),
    ("CREDIT_CARD", "3782.822463.10005"),
]


@pytest.fixture(scope="module")
def gw(mock_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config = gateway_config(tmp_path_factory.mktemp("forms") / "c.toml", mock_server.url, REDACTION)
    with start_gateway(config) as server:
        yield server


@pytest.fixture
def oa(gw: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client:
        yield client


def upstream_requests(mock_server: Server) -> int:
    """How many requests the mock provider has received."""
    return int(httpx.get(f"{mock_server.url}/mock/stats").json()["requests"])


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("entity", "value"), FORMS)
def test_blocked_forms_never_reach_the_provider(
    oa: openai.OpenAI, mock_server: Server, entity: str, value: str, stream: bool
) -> None:
    before = upstream_requests(mock_server)
    with pytest.raises(openai.BadRequestError) as info:
        oa.chat.completions.create(
            model="mh/mock-gpt",
            messages=[{"role": "user", "content": f"please store {value} for me"}],
            stream=stream,
        )
    assert info.value.status_code == 400 and info.value.code == "content_blocked"
    assert entity in info.value.message
    assert value not in json.dumps(info.value.body) and value not in info.value.message
    assert upstream_requests(mock_server) == before


def test_plain_text_still_goes_through(oa: openai.OpenAI, mock_server: Server) -> None:
    """The rules block values, not digits: versions, addresses, dates and OIDs pass."""
    before = upstream_requests(mock_server)
    text = "Chrome 120.0.6099.109 on 10.0.19045.3693, host 10.123.45.67, 2024.01.15, OID 1.2.840.113549.1.1.11"
    done = oa.chat.completions.create(model="mh/mock-gpt", messages=[{"role": "user", "content": text}])
    assert done.choices[0].message.content
    assert upstream_requests(mock_server) == before + 1


@pytest.mark.parametrize("chunk_size", [1, 4, 11])
def test_streamed_replies_carrying_them_are_redacted(oa: openai.OpenAI, chunk_size: int) -> None:
    values = [value for _, value in FORMS]
    reply = "Here: " + "; ".join(values) + "."
    model = f"mh/mock-gpt@reply={quote(reply, safe='')},chunk_size={chunk_size}"
    chunks = oa.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}], stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Here: " + "; ".join(f"[REDACTED:{entity}]" for entity, _ in FORMS) + "."
