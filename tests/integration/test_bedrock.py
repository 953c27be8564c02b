"""AWS Bedrock (the Anthropic models through InvokeModel and InvokeModelWithResponseStream), end to
end: the real anthropic and openai SDKs through a gateway process to the mock provider speaking
Bedrock's wire on a socket (`sluicegate.mock.bedrock`), which checks every call's SigV4 signature
with botocore; what Bedrock received (path, body, signature), what the SDKs parse (messages,
streams, tool calls, translated chat completions), errors (a wrong secret, throttling, an exception
mid-stream), a route's retry on another deployment, and the price.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import anthropic
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

from sluicegate.mock.bedrock import CREDENTIALS

KEY_ID = "AKIAMOCKBEDROCK0000A"
TEMP_KEY_ID = "ASIAMOCKBEDROCK0000B"
EXTRA = """
[providers.bedrock]
kind = "bedrock"
region = "us-east-1"
base_url = "{bedrock}"
aws_access_key_id_env = "SG_TEST_BEDROCK_KEY_ID"
aws_secret_access_key_env = "SG_TEST_BEDROCK_SECRET"
[providers.bedrock.deployments]
claude-bedrock = {{ deployment = "anthropic.mock-claude-v1:0", price_as = "mock-claude" }}
claude-tools = {{ deployment = "mock-claude@tool_call=1", price_as = "mock-claude" }}

[providers.bedrock-temp]  # temporary credentials, from the AWS SDKs' own variables
kind = "bedrock"
region = "eu-west-1"
base_url = "{bedrock}"

[providers.bedrock-tampered]
kind = "bedrock"
region = "us-east-1"
base_url = "{bedrock}"
aws_access_key_id_env = "SG_TEST_BEDROCK_KEY_ID"
aws_secret_access_key_env = "SG_TEST_BEDROCK_WRONG_SECRET"

[providers.bedrock-nokeys]
kind = "bedrock"
region = "us-east-1"
base_url = "{bedrock}"
aws_access_key_id_env = "SG_TEST_BEDROCK_UNSET_ID"
aws_secret_access_key_env = "SG_TEST_BEDROCK_UNSET_SECRET"

[routing.models.claude-two]
strategy = "least_in_flight"
deployments = [
    {{ provider = "bedrock", model = "mock-claude@fault=429" }},
    {{ provider = "bedrock-temp", model = "mock-claude" }},
]

[spend]
estimate = {{ per_message_tokens = 0, per_request_tokens = 0 }}
[spend.price_overrides.mock-claude]
input_usd_per_mtok = "1"
output_usd_per_mtok = "2"
[spend.default_price]  # dearer: a model id priced as `mock-claude` must not cost this
input_usd_per_mtok = "3"
output_usd_per_mtok = "5"
[[spend.caps]]
level = "workspace"
id = "ws-test"
org = "default"
window = "day"
limit_usd = "100"
"""
ENV = {
    "SG_TEST_BEDROCK_KEY_ID": KEY_ID,
    "SG_TEST_BEDROCK_SECRET": CREDENTIALS[KEY_ID][0],
    "SG_TEST_BEDROCK_WRONG_SECRET": CREDENTIALS[KEY_ID][0][:-1] + "X",
    "AWS_ACCESS_KEY_ID": TEMP_KEY_ID,
    "AWS_SECRET_ACCESS_KEY": CREDENTIALS[TEMP_KEY_ID][0],
    "AWS_SESSION_TOKEN": CREDENTIALS[TEMP_KEY_ID][1] or "",
}
TOOLS: list[Any] = [
    {"name": "lookup", "description": "Look a word up", "input_schema": {"type": "object", "properties": {}}}
]


@pytest.fixture(scope="module")
def bedrock_mock() -> Iterator[Server]:
    port = free_port()
    with spawn(granian_args("sluicegate.mock.bedrock:create_app", port), port) as server:
        yield server


@pytest.fixture(scope="module")
def gw(mock_server: Server, bedrock_mock: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config = gateway_config(
        tmp_path_factory.mktemp("bedrock") / "gw.toml", mock_server.url, EXTRA.format(bedrock=bedrock_mock.url)
    )
    with start_gateway(config, ENV) as server:
        yield server


@pytest.fixture
def ac(gw: Server) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gw.url, api_key=GATEWAY_KEY, max_retries=0) as client:
        yield client


@pytest.fixture
def oa(gw: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client:
        yield client


def spent(gw: Server) -> float:
    for line in scrape(gw.url).splitlines():
        if line.startswith('sluicegate_spend_nusd_total{workspace="ws-test"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def wait_spent(gw: Server, expected: float) -> None:
    deadline = time.monotonic() + 5
    while spent(gw) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert spent(gw) == expected


def signed_by(seen: dict[str, Any], key_id: str, region: str) -> None:
    """The call Bedrock received was signed (SigV4, the mock checked it) with `key_id` for
    `region`, and carried no gateway key."""
    auth = seen["headers"]["authorization"]
    assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={key_id}/")
    assert f"/{region}/bedrock/aws4_request" in auth
    assert "x-amz-date" in seen["headers"]
    assert all(GATEWAY_KEY not in value for value in seen["headers"].values())
    assert "x-api-key" not in seen["headers"]


def test_messages_go_to_invoke_model_signed_and_priced_as_mapped(
    ac: anthropic.Anthropic, gw: Server, bedrock_mock: Server
) -> None:
    before = spent(gw)
    reply = ac.messages.create(
        model="claude-bedrock", max_tokens=64, messages=[{"role": "user", "content": "Hello there"}]
    )
    seen = provider_saw(bedrock_mock)
    assert seen["path"] == "/model/anthropic.mock-claude-v1%3A0/invoke"
    signed_by(seen, KEY_ID, "us-east-1")
    assert "x-amz-security-token" not in seen["headers"]
    assert seen["body"]["anthropic_version"] == "bedrock-2023-05-31"
    assert "model" not in seen["body"] and "stream" not in seen["body"]
    assert seen["body"]["max_tokens"] == 64
    assert reply.content[0].type == "text" and reply.content[0].text
    assert reply.stop_reason == "end_turn"
    assert reply._request_id is not None and reply._request_id.startswith("mock-")  # Bedrock's x-amzn-requestid
    # Priced as its `price_as` model ($1/MTok in, $2/MTok out), not at the default price.
    wait_spent(gw, before + reply.usage.input_tokens * 1_000 + reply.usage.output_tokens * 2_000)


def test_messages_stream_with_tools_from_the_event_stream(ac: anthropic.Anthropic, bedrock_mock: Server) -> None:
    with ac.messages.stream(
        model="claude-tools",
        max_tokens=64,
        tools=TOOLS,
        messages=[{"role": "user", "content": "Look up sluice"}],
        extra_headers={"anthropic-beta": "token-efficient-tools-2025-02-19"},
    ) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_message()
    seen = provider_saw(bedrock_mock)
    assert seen["path"] == "/model/mock-claude%40tool_call%3D1/invoke-with-response-stream"
    signed_by(seen, KEY_ID, "us-east-1")
    assert seen["body"]["anthropic_beta"] == ["token-efficient-tools-2025-02-19"]
    assert seen["body"]["tools"][0]["name"] == "lookup"
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert final.stop_reason == "tool_use"
    call = next(block for block in final.content if block.type == "tool_use")
    assert call.name == "lookup" and isinstance(call.input, dict)
    assert final.usage.output_tokens > 0


def test_openai_chat_through_translation_streamed_and_not(oa: openai.OpenAI, bedrock_mock: Server) -> None:
    whole = oa.chat.completions.create(
        model="claude-bedrock", max_tokens=64, messages=[{"role": "user", "content": "Tell me"}]
    )
    seen = provider_saw(bedrock_mock)
    assert seen["path"].endswith("/invoke") and seen["body"]["messages"][0]["role"] == "user"
    assert whole.choices[0].message.content
    assert whole._request_id is not None and whole._request_id.startswith("mock-")  # translated: x-request-id
    chunks = list(
        oa.chat.completions.create(
            model="claude-bedrock",
            max_tokens=64,
            messages=[{"role": "user", "content": "Tell me"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert provider_saw(bedrock_mock)["path"].endswith("/invoke-with-response-stream")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_openai_chat_tool_call_through_translation_streamed(oa: openai.OpenAI) -> None:
    tools: list[Any] = [
        {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}
    ]
    chunks = list(
        oa.chat.completions.create(
            model="claude-tools", messages=[{"role": "user", "content": "Look up"}], tools=tools, stream=True
        )
    )
    calls = [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or ()]
    assert calls[0].function is not None and calls[0].function.name == "lookup"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


def test_temporary_credentials_from_the_aws_variables(ac: anthropic.Anthropic, bedrock_mock: Server) -> None:
    reply = ac.messages.create(
        model="bedrock-temp/mock-claude", max_tokens=16, messages=[{"role": "user", "content": "Hi"}]
    )
    assert reply.content
    seen = provider_saw(bedrock_mock)
    signed_by(seen, TEMP_KEY_ID, "eu-west-1")
    assert seen["headers"]["x-amz-security-token"] == CREDENTIALS[TEMP_KEY_ID][1]


def test_a_wrong_secret_is_a_403_in_each_format(ac: anthropic.Anthropic, oa: openai.OpenAI) -> None:
    with pytest.raises(anthropic.PermissionDeniedError) as refused:
        ac.messages.create(
            model="bedrock-tampered/mock-claude", max_tokens=16, messages=[{"role": "user", "content": "Hi"}]
        )
    assert refused.value.status_code == 403
    assert "InvalidSignatureException" in str(refused.value)
    with pytest.raises(openai.PermissionDeniedError) as refused_chat:
        oa.chat.completions.create(model="bedrock-tampered/mock-claude", messages=[{"role": "user", "content": "Hi"}])
    assert "InvalidSignatureException" in str(refused_chat.value)


def test_missing_credentials_are_a_clear_error(ac: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.APIStatusError) as refused:
        ac.messages.create(
            model="bedrock-nokeys/mock-claude", max_tokens=16, messages=[{"role": "user", "content": "Hi"}]
        )
    assert refused.value.status_code == 502
    assert "SG_TEST_BEDROCK_UNSET_ID and SG_TEST_BEDROCK_UNSET_SECRET are not set" in str(refused.value)


def test_throttling_reaches_the_sdk_as_a_rate_limit(ac: anthropic.Anthropic, oa: openai.OpenAI) -> None:
    with pytest.raises(anthropic.RateLimitError) as limited:
        ac.messages.create(
            model="bedrock/mock-claude@fault=429", max_tokens=16, messages=[{"role": "user", "content": "Hi"}]
        )
    assert limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index,call-overload]
    assert "ThrottlingException" in str(limited.value)
    with pytest.raises(openai.RateLimitError):
        oa.chat.completions.create(model="bedrock/mock-claude@fault=429", messages=[{"role": "user", "content": "Hi"}])
    with pytest.raises(anthropic.InternalServerError) as unavailable:
        ac.messages.create(
            model="bedrock/mock-claude@fault=503", max_tokens=16, messages=[{"role": "user", "content": "Hi"}]
        )
    assert unavailable.value.status_code == 503


def test_a_throttled_deployment_is_retried_on_the_other(ac: anthropic.Anthropic, bedrock_mock: Server) -> None:
    raw = ac.messages.with_raw_response.create(
        model="claude-two", max_tokens=16, messages=[{"role": "user", "content": "Hi"}]
    )
    assert raw.parse().content
    assert raw.headers["x-sluicegate-attempts"] == "2"
    assert raw.headers["x-sluicegate-deployment"].startswith("bedrock-temp")
    signed_by(provider_saw(bedrock_mock), TEMP_KEY_ID, "eu-west-1")


def test_an_exception_mid_stream_reaches_the_sdk(ac: anthropic.Anthropic) -> None:
    seen: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError) as failed,
        ac.messages.stream(
            model="bedrock/mock-claude@fault=error_event,fault_after=3",
            max_tokens=64,
            messages=[{"role": "user", "content": "Hi"}],
        ) as stream,
    ):
        for event in stream:
            seen.append(event.type)
    assert seen[0] == "message_start"
    assert "modelStreamErrorException" in str(failed.value)


# --- A workspace's own AWS credentials (a provider secret of the control plane)

WORKSPACE_SECRET = {"aws_access_key_id": TEMP_KEY_ID, "aws_secret_access_key": CREDENTIALS[TEMP_KEY_ID][0]}


def _seed(db: str) -> tuple[str, str]:
    """Two workspaces with a key each: one whose secret for `bedrock` is AWS credentials with a
    session token, one whose secret is not AWS credentials; returns their gateway keys."""
    import asyncio
    import json

    from tests.unit.control.pg import MASTER_KEY

    from sluicegate.control.audit import Actor
    from sluicegate.control.schemas import KeyIn, SecretIn
    from sluicegate.control.settings import ControlSettings
    from sluicegate.control.store import ControlStore

    settings = ControlSettings(enabled=True, database_url=db, master_key=MASTER_KEY)

    async def run() -> tuple[str, str]:
        store = ControlStore(settings)
        await store.open()
        try:
            actor = Actor("test/seed")
            org = await store.create_org(actor, "acme")
            keys = []
            for name, value in (
                ("own", json.dumps({**WORKSPACE_SECRET, "aws_session_token": CREDENTIALS[TEMP_KEY_ID][1]})),
                ("bad", "not-aws-credentials-" + "x" * 20),
            ):
                ws = await store.create_workspace(actor, org["id"], name)
                _, key = await store.create_key(actor, ws, KeyIn(name=f"{name}-app"))
                await store.set_secret(actor, "workspace", ws["id"], org["id"], "bedrock", SecretIn(value=value))
                keys.append(str(key))
            return keys[0], keys[1]
        finally:
            await store.close()

    return asyncio.run(run())


@pytest.fixture(scope="module")
def tenant_gw(
    mock_server: Server, bedrock_mock: Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, str, str]]:
    from tests.unit.control.pg import MASTER_KEY

    tmp = tmp_path_factory.mktemp("bedrock-creds")
    db = f"sqlite:///{tmp / 'control.db'}"
    own, bad = _seed(db)
    extra = f"""
[providers.bedrock]
kind = "bedrock"
region = "us-east-1"
base_url = "{bedrock_mock.url}"
aws_access_key_id_env = "SG_TEST_BEDROCK_KEY_ID"
aws_secret_access_key_env = "SG_TEST_BEDROCK_SECRET"

[control]
enabled = true
database_url = "{db}"
poll_interval_s = 0.25

[spend.default_price]
input_usd_per_mtok = "1"
output_usd_per_mtok = "2"
"""
    path = gateway_config(tmp / "gw.toml", mock_server.url, extra)
    with start_gateway(path, {**ENV, "SLUICEGATE_CONTROL__MASTER_KEY": MASTER_KEY}) as gw:
        yield gw, own, bad


def test_a_workspace_signs_with_its_own_aws_credentials(
    tenant_gw: tuple[Server, str, str], bedrock_mock: Server
) -> None:
    gw, own, bad = tenant_gw
    with anthropic.Anthropic(base_url=gw.url, api_key=own, max_retries=0) as client:
        reply = client.messages.create(
            model="bedrock/mock-claude", max_tokens=16, messages=[{"role": "user", "content": "Hi"}]
        )
    assert reply.content
    seen = provider_saw(bedrock_mock)
    signed_by(seen, TEMP_KEY_ID, "us-east-1")  # the workspace's key, not the operator's
    assert seen["headers"]["x-amz-security-token"] == CREDENTIALS[TEMP_KEY_ID][1]
    assert all(WORKSPACE_SECRET["aws_secret_access_key"] not in v for v in seen["headers"].values())
    with (
        anthropic.Anthropic(base_url=gw.url, api_key=bad, max_retries=0) as client,
        pytest.raises(anthropic.APIStatusError) as refused,
    ):
        client.messages.create(model="bedrock/mock-claude", max_tokens=16, messages=[{"role": "user", "content": "Hi"}])
    assert refused.value.status_code == 502
    assert "must be a JSON object with aws_access_key_id" in str(refused.value)
    assert "not-aws-credentials" not in str(refused.value)


def test_count_tokens_is_refused_clearly(ac: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as refused:
        ac.messages.count_tokens(model="claude-bedrock", messages=[{"role": "user", "content": "Hi"}])
    assert "is not served by the Bedrock provider" in str(refused.value)
