"""Model access rules through real gateway processes, with the real openai and anthropic SDKs in
front and the mock provider on a socket: refusals raise the SDKs' usual classes (403
PermissionDeniedError, 400 BadRequestError) naming the rule and are not retried, aliases route to
the concrete model and the response says so (streamed or not), ceilings clamp or refuse,
`/v1/models` lists only what the key may use, monitor mode lets the call through with an event,
and a rollout bites for exactly the keys `policy.rollout` puts in its share."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest
from tests.conftest import GATEWAY_KEY, Server, gateway_config, provider_saw, start_gateway
from tests.integration.test_spend_gateway import policy_events

from sluicegate.policy.rollout import bites
from sluicegate.secrets import hash_key

HELLO = [{"role": "user", "content": "hello"}]
RULES = """
[models]
allow = ["mock-*"]
deny = ["mock-gpt-secret*"]
aliases = { fast = "mock-gpt", sneaky = "mock-gpt-secret", ghost = "mock-unrouted" }
ceilings = [
  { max_output_tokens = 50, action = "clamp" },
  { max_output_tokens = 1000, action = "refuse", models = ["mock-claude*"] },
]
params = [
  { field = "n", op = "lte", value = 1 },
  { field = "service_tier", op = "ne", value = "priority" },
  { field = "temperature", op = "lte", value = 1 },
]
"""


@pytest.fixture(scope="module")
def ruled(mock_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config = gateway_config(tmp_path_factory.mktemp("models") / "gw.toml", mock_server.url, RULES)
    with start_gateway(config) as gw:
        yield gw


@pytest.fixture
def oa(ruled: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{ruled.url}/v1", api_key=GATEWAY_KEY) as client:
        yield client


@pytest.fixture
def an(ruled: Server) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=ruled.url, api_key=GATEWAY_KEY) as client:
        yield client


def test_a_denied_model_is_a_permission_error_in_both_sdks(
    ruled: Server, oa: openai.OpenAI, an: anthropic.Anthropic
) -> None:
    before = policy_events(ruled).get('{action="refuse",entity="operator",policy="models"}', 0)
    # the name itself, through an alias, and behind a provider prefix: all three are the deny
    for model in ("mock-gpt-secret", "sneaky", "mh/mock-gpt-secret-2"):
        with pytest.raises(openai.PermissionDeniedError) as oe:
            oa.chat.completions.create(model=model, messages=HELLO)  # type: ignore[arg-type]
        err = oe.value
        assert err.status_code == 403 and err.code == "model_not_allowed" and err.type == "permission_error"
        assert "the operator's configuration denies 'mock-gpt-secret*'" in err.message
        assert err.response.headers["x-should-retry"] == "false"
        rule = err.body["rule"]  # type: ignore[index]
        assert rule["level"] == "operator" and rule["list"] == "deny" and rule["pattern"] == "mock-gpt-secret*"
        with pytest.raises(anthropic.PermissionDeniedError) as ae:
            an.messages.create(model=model, messages=HELLO, max_tokens=10)  # type: ignore[arg-type]
        assert ae.value.status_code == 403 and "mock-gpt-secret*" in str(ae.value)
        assert ae.value.body["error"]["type"] == "permission_error"  # type: ignore[index]
    # not on the allow list
    with pytest.raises(openai.PermissionDeniedError) as oe:
        oa.responses.create(model="dead/other", input="hello")
    assert "not on the allow list of the operator's configuration" in oe.value.message
    after = policy_events(ruled)['{action="refuse",entity="operator",policy="models"}']
    assert after - before == 7  # one attempt each: x-should-retry false


def test_parameter_rules_are_bad_requests_naming_the_rule(oa: openai.OpenAI, an: anthropic.Anthropic) -> None:
    cases = [({"n": 2}, "n", "`n lte 1`"), ({"temperature": 1.5}, "temperature", "`temperature lte 1`")]
    cases.append(({"service_tier": "priority"}, "service_tier", "`service_tier ne 'priority'`"))
    for extra, param, rule in cases:
        with pytest.raises(openai.BadRequestError) as oe:
            oa.chat.completions.create(model="mock-gpt", messages=HELLO, **extra)  # type: ignore[arg-type,call-overload]
        assert oe.value.code == "parameter_not_allowed" and oe.value.param == param
        assert rule in oe.value.message and "the operator's configuration" in oe.value.message
    with pytest.raises(anthropic.BadRequestError) as ae:
        an.messages.create(model="mock-claude", messages=HELLO, max_tokens=10, extra_body={"temperature": 1.5})  # type: ignore[arg-type]
    assert "`temperature lte 1`" in str(ae.value)
    # within the rules: fine
    ok = oa.chat.completions.create(model="mock-gpt", messages=HELLO, n=1, temperature=0.5, service_tier="default")  # type: ignore[arg-type]
    assert ok.choices


def test_ceilings_clamp_or_refuse_per_format(mock_server: Server, oa: openai.OpenAI, an: anthropic.Anthropic) -> None:
    oa.chat.completions.create(model="mock-gpt", messages=HELLO, max_tokens=500)  # type: ignore[arg-type]
    assert provider_saw(mock_server)["body"]["max_tokens"] == 50
    oa.chat.completions.create(model="mock-gpt", messages=HELLO)  # type: ignore[arg-type]
    assert provider_saw(mock_server)["body"]["max_tokens"] == 50  # no limit: the ceiling is written in
    oa.responses.create(model="mock-gpt", input="hello", max_output_tokens=400)
    assert provider_saw(mock_server)["body"]["max_output_tokens"] == 50
    an.messages.create(model="mock-claude", messages=HELLO, max_tokens=500)  # type: ignore[arg-type]
    assert provider_saw(mock_server)["body"]["max_tokens"] == 50
    with pytest.raises(anthropic.BadRequestError) as ae:
        an.messages.create(model="mock-claude", messages=HELLO, max_tokens=2000)  # type: ignore[arg-type]
    assert "above the ceiling of 1000 output tokens" in str(ae.value)
    assert ae.value.response.headers["x-should-retry"] == "false"
    with httpx.Client() as client:
        body = {"model": "mock-claude", "messages": HELLO, "max_tokens": 2000}
        r = client.post(f"{oa.base_url}chat/completions", json=body, headers={"authorization": f"Bearer {GATEWAY_KEY}"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "max_tokens_above_ceiling"


@pytest.mark.parametrize("stream", [False, True])
def test_an_alias_routes_to_its_model_and_the_response_says_so(
    mock_server: Server, oa: openai.OpenAI, an: anthropic.Anthropic, stream: bool
) -> None:
    if stream:
        chunks = list(oa.chat.completions.create(model="fast", messages=HELLO, stream=True))  # type: ignore[arg-type]
        assert chunks and {c.model for c in chunks} == {"mock-gpt"}
        with an.messages.stream(model="fast", messages=HELLO, max_tokens=10) as s:  # type: ignore[arg-type]
            assert s.get_final_message().model == "mock-gpt"
    else:
        assert oa.chat.completions.create(model="fast", messages=HELLO).model == "mock-gpt"  # type: ignore[arg-type]
        assert an.messages.create(model="fast", messages=HELLO, max_tokens=10).model == "mock-gpt"  # type: ignore[arg-type]
    assert provider_saw(mock_server)["body"]["model"] == "mock-gpt"


def test_models_lists_what_the_key_may_use_and_its_aliases(oa: openai.OpenAI, an: anthropic.Anthropic) -> None:
    # `sneaky` stands for a denied model: not listed
    assert sorted(m.id for m in oa.models.list()) == ["fast", "ghost", "mock-claude", "mock-gpt"]
    assert sorted(m.id for m in an.models.list()) == ["fast", "ghost", "mock-claude", "mock-gpt"]


def test_events_of_the_model_step_survive_a_later_refusal(ruled: Server, oa: openai.OpenAI) -> None:
    alias = '{action="alias",entity="operator",policy="models"}'
    before = policy_events(ruled).get(alias, 0)
    with pytest.raises(openai.NotFoundError) as oe:  # the alias applies, then the router finds no provider
        oa.chat.completions.create(model="ghost", messages=HELLO)  # type: ignore[arg-type]
    assert oe.value.code == "model_not_found" and "mock-unrouted" in oe.value.message
    assert policy_events(ruled)[alias] == before + 1


# ── monitor, and a rollout ────────────────────────────────────────────────────────────────────

KEYS = [f"sg-roll-{i:02d}-" + "r" * 32 for i in range(12)]


def _rollout_toml() -> str:
    keys = "".join(
        f'\n[[keys]]\nname = "roll-{i}"\nworkspace = "ws-roll"\nsha256 = "{hash_key(k)}"\n' for i, k in enumerate(KEYS)
    )
    return (
        """
[models]
deny = ["mock-claude"]
mode = "enforce"
rollout_percent = 50
"""
        + keys
    )


@pytest.fixture(scope="module")
def rolling(mock_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config = gateway_config(tmp_path_factory.mktemp("roll") / "gw.toml", mock_server.url, _rollout_toml())
    with start_gateway(config) as gw:
        yield gw


def test_a_rollout_bites_for_its_share_of_keys_and_monitors_the_rest(rolling: Server) -> None:
    refused = []
    with httpx.Client(timeout=10) as client:
        for i, key in enumerate(KEYS):
            r = client.post(
                f"{rolling.url}/v1/messages",
                json={"model": "mock-claude", "messages": HELLO, "max_tokens": 5},
                headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
            )
            assert r.status_code in (200, 403), r.text
            if r.status_code == 403:
                assert r.json()["error"]["type"] == "permission_error"
                refused.append(i)
    expected = [i for i in range(len(KEYS)) if bites("enforce", 50, "models:operator:", f"roll-{i}")]
    assert refused == expected and 0 < len(expected) < len(KEYS)
    events = policy_events(rolling)
    assert events['{action="refuse",entity="operator",policy="models"}'] == len(expected)
    assert events['{action="would_refuse",entity="operator",policy="models"}'] == len(KEYS) - len(expected)
