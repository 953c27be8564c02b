"""Redaction through the gateway: every text field, both formats, streamed and not, the four actions.

The mock provider records what reached it (`/mock/stats`), and its echo mode sends it back, so
each test checks both what the "model" saw and what the client got.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import anthropic
import httpx
import openai
import pytest
from tests.conftest import GATEWAY_KEY, Server, gateway_config, scrape, start_gateway

EMAIL = "jane.doe@example.com"
SSN = "536-22-1234"
CARD = "4111 1111 1111 1111"
IP = "10.20.30.40"
AWS = "AKIAIOSFODNN7EXAMPLE"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7b3x\n-----END RSA PRIVATE KEY-----"
PLANTED = (EMAIL, SSN, CARD, AWS, PEM, "EMP-123456", "bluebird")

REDACTION = """
[redaction]
rules = [
  { entities = ["CREDIT_CARD"], action = "block", direction = "request" },
  { entities = ["IP_ADDRESS"], action = "monitor" },
  { entities = ["US_SSN"], action = "pseudonymize", direction = "request" },
  { entities = ["PRIVATE_KEY"], action = "block", direction = "response" },
]
custom_patterns = [{ entity = "EMPLOYEE_ID", pattern = "EMP-[0-9]{6}" }]
keywords = [{ entity = "CODENAME", words = ["bluebird"] }]
"""


@pytest.fixture(scope="module")
def gw(mock_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config = gateway_config(tmp_path_factory.mktemp("redact") / "c.toml", mock_server.url, REDACTION)
    with start_gateway(config) as server:
        yield server


@pytest.fixture
def oa(gw: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client:
        yield client


@pytest.fixture
def an(gw: Server) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gw.url, api_key=GATEWAY_KEY, max_retries=0) as client:
        yield client


def replying(text: str, chunk_size: int) -> str:
    """Mock knobs (model-name form) for a literal reply cut into `chunk_size` pieces."""
    return f"reply={quote(text, safe='')},chunk_size={chunk_size}"


def upstream_saw(mock_server: Server) -> str:
    """The last request body the mock received, as JSON text."""
    return json.dumps(httpx.get(f"{mock_server.url}/mock/stats").json()["last_request"]["body"])


def test_request_fields_are_redacted_before_the_model_sees_them(oa: openai.OpenAI, mock_server: Server) -> None:
    messages = [
        {"role": "system", "content": f"Escalate to {EMAIL}."},
        {"role": "user", "content": [{"type": "text", "text": f"my key is {AWS}, employee EMP-123456"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": json.dumps({"to": EMAIL})}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "project bluebird is late"},
    ]
    oa.chat.completions.create(model="mh/mock-gpt", messages=messages)  # type: ignore[arg-type]
    seen = upstream_saw(mock_server)
    for value in (EMAIL, AWS, "EMP-123456", "bluebird"):
        assert value not in seen
    for entity in ("EMAIL", "AWS_ACCESS_KEY_ID", "EMPLOYEE_ID", "CODENAME"):
        assert f"[REDACTED:{entity}]" in seen
    body = json.loads(seen)
    assert json.loads(body["messages"][2]["tool_calls"][0]["function"]["arguments"]) == {"to": "[REDACTED:EMAIL]"}


# European national ids: a codice fiscale and a DNI stand alone; a BSN needs its name before it
FISCAL_CODE = "RSSMRA85T10A562S"
DNI = "12345678Z"
BSN = "123456782"


def test_national_ids_are_redacted_in_requests(oa: openai.OpenAI, mock_server: Server) -> None:
    text = f"Pedido {BSN} enviado. Cliente codice fiscale {FISCAL_CODE}, DNI {DNI}, BSN {BSN}"
    oa.chat.completions.create(model="mh/mock-gpt", messages=[{"role": "user", "content": text}])
    seen = json.loads(upstream_saw(mock_server))["messages"][0]["content"]
    # the order number before any id name stays: a 9-digit number passes the BSN check one time in 11
    assert seen == (
        f"Pedido {BSN} enviado. Cliente codice fiscale [REDACTED:IT_FISCAL_CODE], DNI [REDACTED:ES_DNI], "
        "BSN [REDACTED:NL_BSN]"
    )


@pytest.mark.parametrize("chunk_size", [1, 3, 1000])
def test_national_ids_are_redacted_in_streamed_responses(oa: openai.OpenAI, chunk_size: int) -> None:
    knobs = replying(f"CF {FISCAL_CODE} / DNI {DNI}.", chunk_size=chunk_size)
    chunks = oa.chat.completions.create(
        model=f"mh/mock-gpt@{knobs}",
        messages=[{"role": "user", "content": "x"}],
        stream=True,
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "CF [REDACTED:IT_FISCAL_CODE] / DNI [REDACTED:ES_DNI]."


def test_escaped_values_cannot_hide(gw: Server, mock_server: Server) -> None:
    raw = b'{"model": "mh/mock-gpt", "messages": [{"role": "user", "content": "write to jane.doe\\u0040example.com"}]}'
    r = httpx.post(
        f"{gw.url}/v1/chat/completions",
        content=raw,
        headers={"authorization": f"Bearer {GATEWAY_KEY}", "content-type": "application/json"},
    )
    assert r.status_code == 200
    assert "example.com" not in upstream_saw(mock_server)


def test_values_in_object_keys_are_redacted(oa: openai.OpenAI, mock_server: Server) -> None:
    """A caller writes keys as it writes values: a value planted in a key (metadata, a free-form
    field, a tool's parameter schema, a tool call's arguments) is found and the key renamed."""
    other = "john.roe@example.com"
    tools = [
        {
            "type": "function",
            "function": {"name": "f", "parameters": {"type": "object", "properties": {AWS: {"type": "string"}}}},
        }
    ]
    messages = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": json.dumps({EMAIL: 1})}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
    ]
    oa.chat.completions.create(
        model="mh/mock-gpt",
        messages=messages,  # type: ignore[arg-type]
        tools=tools,  # type: ignore[arg-type]
        metadata={EMAIL: "a", other: "b"},
        extra_body={"user_data": {"ids": [{"emp EMP-123456": {"x": 1}}]}},
    )
    seen = upstream_saw(mock_server)
    for value in (EMAIL, other, AWS, "EMP-123456"):
        assert value not in seen
    body = json.loads(seen)
    # two keys that redact alike stay two keys
    assert body["metadata"] == {"[REDACTED:EMAIL]": "a", "[REDACTED:EMAIL] (2)": "b"}
    assert body["tools"][0]["function"]["parameters"]["properties"] == {
        "[REDACTED:AWS_ACCESS_KEY_ID]": {"type": "string"}
    }
    assert json.loads(body["messages"][1]["tool_calls"][0]["function"]["arguments"]) == {"[REDACTED:EMAIL]": 1}
    assert body["user_data"] == {"ids": [{"emp [REDACTED:EMPLOYEE_ID]": {"x": 1}}]}


def test_a_blocked_type_in_a_key_refuses_the_request(oa: openai.OpenAI, mock_server: Server) -> None:
    before = upstream_saw(mock_server)
    with pytest.raises(openai.BadRequestError) as err:
        oa.chat.completions.create(
            model="mh/mock-gpt", messages=[{"role": "user", "content": "hi"}], metadata={CARD: "x"}
        )
    assert "CREDIT_CARD" in str(err.value) and CARD not in str(err.value)
    assert upstream_saw(mock_server) == before


@pytest.mark.parametrize(
    ("model", "value"),
    # the mock's own knobs follow an `@` (`mock-gpt@reply=...`); any other provider's whole name counts
    [("mh/mock-gpt", SSN), ("mh/mock-gpt", AWS), ("dead/gpt-4o", EMAIL), ("dead/gpt-4o@x", EMAIL)],
)
def test_a_value_in_the_model_name_is_refused_before_it_goes_anywhere(
    model: str, value: str, oa: openai.OpenAI, mock_server: Server
) -> None:
    """The model name is not text the model reads, so the field walk skips it; but `mh/<anything>`
    is routed, and the name is recorded in logs and traces: a value planted there is refused."""
    # a model name with nothing in it is not refused
    oa.chat.completions.create(model="mh/mock-gpt", messages=[{"role": "user", "content": f"hi {value[:3]}"}])
    before = upstream_saw(mock_server)
    with pytest.raises(openai.BadRequestError) as err:
        oa.chat.completions.create(model=f"{model} {value}", messages=[{"role": "user", "content": "hi"}])
    assert err.value.code == "model_name_refused"
    assert value not in str(err.value.body) and value not in err.value.response.text
    assert upstream_saw(mock_server) == before


def test_anthropic_system_tool_use_and_tool_result(an: anthropic.Anthropic, mock_server: Server) -> None:
    an.messages.create(
        model="mh/mock-claude",
        max_tokens=50,
        system=[{"type": "text", "text": f"contact {EMAIL}"}],
        messages=[
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {"k": AWS}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": f"got {EMAIL}"}]},
        ],
    )
    seen = upstream_saw(mock_server)
    assert EMAIL not in seen and AWS not in seen and seen.count("[REDACTED:") == 3


def test_responses_and_embeddings_inputs(oa: openai.OpenAI, mock_server: Server) -> None:
    oa.responses.create(model="mh/mock-gpt", input=f"mail {EMAIL}", instructions=f"key {AWS}")
    assert EMAIL not in upstream_saw(mock_server) and AWS not in upstream_saw(mock_server)
    oa.embeddings.create(model="mh/mock-gpt", input=[f"mail {EMAIL}", "plain"])
    assert EMAIL not in upstream_saw(mock_server)


def test_block_refuses_with_the_type_never_the_value(oa: openai.OpenAI, an: anthropic.Anthropic) -> None:
    with pytest.raises(openai.BadRequestError) as oe:
        oa.chat.completions.create(model="mh/mock-gpt", messages=[{"role": "user", "content": f"card {CARD}"}])
    assert oe.value.code == "content_blocked" and "CREDIT_CARD" in oe.value.message
    assert CARD not in str(oe.value.body)
    with pytest.raises(anthropic.BadRequestError) as ae:
        an.messages.create(model="mh/mock-claude", max_tokens=5, messages=[{"role": "user", "content": f"{CARD}"}])
    assert "CREDIT_CARD" in str(ae.value) and CARD not in str(ae.value)
    metrics = scrape(f"{oa.base_url}".removesuffix("/v1/"))
    blocks = [ln for ln in metrics.splitlines() if ln.startswith("sluicegate_policy_events_total{")]
    assert any('action="block",entity="CREDIT_CARD",policy="redaction"' in ln for ln in blocks)


def test_monitor_forwards_unchanged(oa: openai.OpenAI, mock_server: Server) -> None:
    oa.chat.completions.create(model="mh/mock-gpt", messages=[{"role": "user", "content": f"server {IP}"}])
    assert IP in upstream_saw(mock_server)


@pytest.mark.parametrize("stream", [False, True])
def test_pseudonymize_and_restore(oa: openai.OpenAI, mock_server: Server, stream: bool) -> None:
    """The model sees a placeholder; the client gets the original back, even split across chunks."""
    messages = [{"role": "user", "content": f"my ssn is {SSN} and again {SSN}"}]
    model = "mh/mock-gpt@echo=1,chunk_size=3"
    if stream:
        text = "".join(
            c.choices[0].delta.content or ""
            for c in oa.chat.completions.create(model=model, messages=messages, stream=True)  # type: ignore[arg-type]
            if c.choices
        )
    else:
        text = oa.chat.completions.create(model=model, messages=messages).choices[0].message.content or ""  # type: ignore[arg-type]
    seen = upstream_saw(mock_server)
    assert SSN not in seen and seen.count("<US_SSN_1>") == 2  # one value, one stable placeholder
    echoed = json.loads(text)  # the echo quotes the upstream request, restored for the client
    assert echoed["body"]["messages"][0]["content"] == f"my ssn is {SSN} and again {SSN}"


@pytest.mark.parametrize("chunk_size", [1, 4, 1000])
@pytest.mark.parametrize("stream", [False, True])
def test_response_text_is_redacted(oa: openai.OpenAI, an: anthropic.Anthropic, chunk_size: int, stream: bool) -> None:
    knobs = replying(f"Sure: {AWS} and {EMAIL}.", chunk_size=chunk_size)
    msgs = [{"role": "user", "content": "x"}]
    if stream:
        chunks = oa.chat.completions.create(model=f"mh/mock-gpt@{knobs}", messages=msgs, stream=True)  # type: ignore[arg-type]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        with an.messages.stream(model=f"mh/mock-claude@{knobs}", max_tokens=99, messages=msgs) as s:  # type: ignore[arg-type]
            claude = "".join(s.text_stream)
    else:
        done = oa.chat.completions.create(model=f"mh/mock-gpt@{knobs}", messages=msgs)  # type: ignore[arg-type]
        text = done.choices[0].message.content or ""
        message = an.messages.create(model=f"mh/mock-claude@{knobs}", max_tokens=99, messages=msgs)  # type: ignore[arg-type]
        claude = message.content[0].text  # type: ignore[union-attr]
    expected = "Sure: [REDACTED:AWS_ACCESS_KEY_ID] and [REDACTED:EMAIL]."
    assert text == expected and claude == expected


def test_response_tool_call_arguments_are_redacted(oa: openai.OpenAI) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    stream = oa.chat.completions.create(
        model=f"mh/mock-gpt@tool_call=1,{replying(f'send to {EMAIL}', chunk_size=5)}",
        messages=[{"role": "user", "content": "x"}],
        tools=tools,  # type: ignore[arg-type]
        stream=True,
    )
    args = "".join(
        t.function.arguments or "" for c in stream for t in (c.choices[0].delta.tool_calls or []) if t.function
    )
    assert json.loads(args) == {"text": "send to [REDACTED:EMAIL]"}


def test_response_block_ends_the_stream_with_an_error(oa: openai.OpenAI) -> None:
    model = f"mh/mock-gpt@{replying(f'here it is: {PEM}', chunk_size=7)}"
    got = ""
    with pytest.raises(openai.APIError) as info:
        for c in oa.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}], stream=True):
            got += "".join(ch.delta.content or "" for ch in c.choices)
    assert not isinstance(info.value, openai.APIConnectionError)
    assert "PRIVATE_KEY" in info.value.message
    assert "MIIE" not in got and "BEGIN RSA" not in got


def test_nothing_planted_ever_reaches_the_client_in_an_error(gw: Server) -> None:
    for value in PLANTED:
        r = httpx.post(
            f"{gw.url}/v1/chat/completions",
            json={"model": "gpt-nope", "messages": [{"role": "user", "content": value}]},
            headers={"authorization": f"Bearer {GATEWAY_KEY}"},
        )
        assert r.status_code in (400, 404) and value not in r.text


def test_redaction_can_be_turned_off(mock_server: Server, tmp_path: Path) -> None:
    config = gateway_config(tmp_path / "c.toml", mock_server.url, "[redaction]\nenabled = false\n")
    with start_gateway(config) as server, openai.OpenAI(base_url=f"{server.url}/v1", api_key=GATEWAY_KEY) as client:
        client.chat.completions.create(model="mh/mock-gpt", messages=[{"role": "user", "content": EMAIL}])
        assert EMAIL in upstream_saw(mock_server)


def test_provider_error_messages_are_redacted_too(oa: openai.OpenAI, an: anthropic.Anthropic) -> None:
    """Providers echo what they were sent in their error messages (`The model 'x' does not exist`):
    an error body is a response, scanned like one. The mock echoes an unknown knob's name."""
    with pytest.raises(openai.BadRequestError) as oa_err:
        oa.chat.completions.create(model=f"mh/m@{SSN}=1", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(anthropic.BadRequestError) as an_err:
        an.messages.create(model=f"mh/c@{SSN}=1", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    for err in (oa_err.value, an_err.value):
        text = json.dumps(err.body)
        assert SSN not in text and "[REDACTED:US_SSN]" in text, text
        assert "unknown knob" in text  # the provider's own message, kept


@pytest.mark.parametrize("chunk_size", [1, 3])
def test_findings_below_their_threshold_pass_and_are_counted(
    mock_server: Server, tmp_path: Path, chunk_size: int
) -> None:
    """A PERSON rule with a threshold: the strong finding (a title before the name) is redacted in
    the request and in the streamed response, the weak one (one unknown word after a greeting) is
    left as it is and counted as `below_threshold`, never with its value."""
    rules = '[redaction]\nrules = [{ entities = ["PERSON"], action = "redact", min_confidence = 60 }]\n'
    config = gateway_config(tmp_path / "c.toml", mock_server.url, rules)
    with start_gateway(config) as server, openai.OpenAI(base_url=f"{server.url}/v1", api_key=GATEWAY_KEY) as client:
        knobs = replying("Dear Zorblat, ask Frau Müller.", chunk_size=chunk_size)
        chunks = client.chat.completions.create(
            model=f"mh/mock-gpt@{knobs}",
            messages=[{"role": "user", "content": "Dear Zorblat, Frau Müller wrote."}],
            stream=True,
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert "Dear Zorblat, Frau [REDACTED:PERSON] wrote." in upstream_saw(mock_server)
        assert text == "Dear Zorblat, ask Frau [REDACTED:PERSON]."
        metrics = scrape(server.url)
        events = [ln for ln in metrics.splitlines() if ln.startswith("sluicegate_policy_events_total{")]
        quiet = [ln for ln in events if 'action="below_threshold"' in ln and 'entity="PERSON"' in ln]
        # one in the request, one in the response
        assert len(quiet) == 1 and float(quiet[0].rsplit(" ", 1)[1]) == 2, quiet
        assert "Zorblat" not in metrics


@pytest.mark.parametrize("chunk_size", [1, 3, 1000])
def test_allowed_terms_pass_in_requests_and_streamed_responses(
    mock_server: Server, tmp_path: Path, chunk_size: int
) -> None:
    """The operator's `[[redaction.allow_terms]]`: a firm named after a person and a help desk's
    address pass in the request and in the streamed response, in any case and spacing and through
    an escape, while the customer's name and another address are redacted; a longer name that
    holds an allowed one is not exempt."""
    config = gateway_config(
        tmp_path / "c.toml",
        mock_server.url,
        '[redaction]\nrules = [{ entities = ["PERSON"], action = "redact" }]\n'
        '[[redaction.allow_terms]]\nentities = ["PERSON", "EMAIL"]\nterms = ["Carl Zeiss", "help@acme.example"]\n',
    )
    said = (
        "Kundin Maria Schmidt kauft bei CARL  ZEISS; Antwort an help&#64;acme.example, nicht an jane.doe@example.com."
    )
    with start_gateway(config) as server, openai.OpenAI(base_url=f"{server.url}/v1", api_key=GATEWAY_KEY) as client:
        knobs = replying(said + " Carl Zeiss Meditec bleibt geheim.", chunk_size=chunk_size)
        chunks = client.chat.completions.create(
            model=f"mh/mock-gpt@{knobs}", messages=[{"role": "user", "content": said}], stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    saw = upstream_saw(mock_server)
    for out in (saw, text):
        assert "CARL  ZEISS" in out and "help&#64;acme.example" in out, out
        assert "Maria Schmidt" not in out and "jane.doe@example.com" not in out, out
        assert out.count("[REDACTED:PERSON]") >= 1 and "[REDACTED:EMAIL]" in out, out
    assert "Meditec" not in text and text.count("[REDACTED:PERSON]") == 2
