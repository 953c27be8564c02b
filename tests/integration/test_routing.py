"""Routes of several deployments through a gateway process: retries on another deployment (500,
429, a refused connection, a connection dropped before the first byte, an answer cut inside its
body before a stream's first event), never after a stream's first event reached the client;
fallbacks to other models (after every deployment failed, or for context length), past the model
access rules; circuit breakers that skip a failing deployment and probe it back; a weighted
split; and spend that books exactly under retries and fallbacks.

Two mock providers on their own sockets are the two deployments (each counts its own requests at
`/mock/stats`); the real openai and anthropic SDKs are the clients, with their own retries off so
that every retry seen is the gateway's.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
from tests.conftest import (
    GATEWAY_KEY,
    PROVIDER_KEY,
    Server,
    free_port,
    gateway_config,
    granian_args,
    scrape,
    spawn,
    start_gateway,
)
from tests.integration.test_spend_gateway import COST_NUSD, MESSAGES, policy_events

CHEAP = "mock-gpt@chunks=10,chunk_size=4"  # 22,000 nUSD a call (test_spend_gateway's prices)
DEAR_COST_NUSD = 10 * COST_NUSD


@pytest.fixture(scope="module")
def mock_b() -> Iterator[Server]:
    """A second mock provider process: the second deployment."""
    port = free_port()
    with spawn(granian_args("sluicegate.mock.app:create_app", port), port) as server:
        yield server


@pytest.fixture(scope="module")
def dropper() -> Iterator[int]:
    """A port whose server accepts each connection and closes it at once (no byte answered)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def providers(a: Server, b: Server, drop_port: int) -> str:
    return f"""
[providers.a]
kind = "mock"
base_url = "{a.url}"
api_key = "{PROVIDER_KEY}"

[providers.b]
kind = "mock"
base_url = "{b.url}"
api_key = "{PROVIDER_KEY}"

[providers.oa]
kind = "openai"
base_url = "{b.url}/v1"
api_key = "{PROVIDER_KEY}"

[providers.gone]
kind = "mock"
base_url = "http://127.0.0.1:{free_port()}"

[providers.drop]
kind = "mock"
base_url = "http://127.0.0.1:{drop_port}"
"""


def standby(name: str, first: str, model: str, b_model: str = "mock-gpt") -> str:
    """A route whose first deployment always takes the first attempt (b has weight 0: a standby)."""
    return f"""
[routing.models.{name}]
deployments = [{{ provider = "{first}", model = "{model}" }}, {{ provider = "b", model = "{b_model}", weight = 0 }}]
"""


ROUTES = (
    standby("r500", "a", "mock-gpt@fault=500")
    + standby("r429", "a", "mock-gpt@fault=429,retry_after=0")
    + standby("rgone", "gone", "mock-gpt")
    + standby("rdrop", "drop", "mock-gpt")
    + standby("rstream", "a", "mock-gpt@fault=disconnect,fault_after=2")
    + standby("rcut", "a", "mock-gpt@fault=disconnect,fault_after=0,fault_bytes=9")
    + standby("rbreak", "a", "mock-gpt@fault=500,fault_times=3")
    + """
[routing.models.rsplit]
deployments = [{ provider = "a", model = "mock-gpt", weight = 3 }, { provider = "b", model = "mock-gpt", weight = 1 }]

[routing.models.rctx]
deployments = [{ provider = "a", model = "mock-gpt@fault=context_length" }]
fallbacks = ["denied-fb", "fb"]
fallback_on = ["error", "context_length"]

[routing.models.rnoctx]
deployments = [{ provider = "a", model = "mock-gpt@fault=context_length" }]
fallbacks = ["fb"]

[routing.models.rpolicy]
deployments = [{ provider = "a", model = "mock-gpt@fault=content_policy" }]
fallbacks = ["fb"]
fallback_on = ["content_policy"]

[routing.models.rtrans]
deployments = [{ provider = "a", model = "mock-claude@fault=500" }, { provider = "oa", model = "mock-gpt", weight = 0 }]

[routing.models.rdown]
deployments = [{ provider = "a", model = "mock-gpt@fault=503" }]
max_attempts = 1
fallbacks = ["fb"]

[routing.models]
fb = "b"

[models]
deny = ["denied-*"]
"""
)

ROUTING = """
[routing]
seed = 7
breaker_failures = 2
breaker_cooldown_s = 1.5
"""


def stats(mock: Server) -> dict[str, int]:
    return httpx.get(f"{mock.url}/mock/stats", timeout=5).json()  # type: ignore[no-any-return]


def reset(*mocks: Server) -> None:
    for mock in mocks:
        httpx.post(f"{mock.url}/mock/stats/reset", timeout=5).raise_for_status()


@pytest.fixture(scope="module")
def routed(
    mock_server: Server, mock_b: Server, dropper: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    extra = providers(mock_server, mock_b, dropper) + ROUTING + ROUTES
    config = gateway_config(tmp_path_factory.mktemp("routing") / "gw.toml", mock_server.url, extra)
    with start_gateway(config) as gw:
        yield gw


@pytest.fixture
def clients(routed: Server) -> Iterator[tuple[openai.OpenAI, anthropic.Anthropic]]:
    with (
        openai.OpenAI(base_url=f"{routed.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as oa,
        anthropic.Anthropic(base_url=routed.url, api_key=GATEWAY_KEY, max_retries=0) as an,
    ):
        yield oa, an


def served_by_b(oa: openai.OpenAI, an: anthropic.Anthropic, route: str) -> None:
    """One call of each SDK, one of them streamed, each answered by b on the second attempt."""
    raw = oa.chat.completions.with_raw_response.create(model=route, messages=MESSAGES)  # type: ignore[arg-type]
    assert raw.headers["x-sluicegate-deployment"] == "b/mock-gpt"
    assert raw.headers["x-sluicegate-attempts"] == "2"
    assert raw.parse().choices[0].message.content
    with an.messages.with_streaming_response.create(
        model=route,
        messages=MESSAGES,  # type: ignore[arg-type]
        max_tokens=50,
        stream=True,
    ) as streamed:
        assert streamed.headers["x-sluicegate-deployment"] == "b/mock-gpt"
        assert streamed.headers["x-sluicegate-attempts"] == "2"
        kinds = [event.type for event in streamed.parse()]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"


@pytest.mark.parametrize("route", ["r500", "r429", "rgone", "rdrop", "rcut"])
def test_a_failed_deployment_is_served_by_the_other(
    routed: Server,
    mock_server: Server,
    mock_b: Server,
    clients: tuple[openai.OpenAI, anthropic.Anthropic],
    route: str,
) -> None:
    reset(mock_server, mock_b)
    before = policy_events(routed)
    served_by_b(*clients, route)
    assert stats(mock_b)["requests"] == 2
    if route in ("r500", "r429", "rcut"):
        assert stats(mock_server)["requests"] == 2  # each call tried a first
    retries = {k: v - before.get(k, 0) for k, v in policy_events(routed).items() if 'policy="routing"' in k}
    kind = {"r500": "status_5xx", "r429": "status_429"}.get(route, "upstream_unreachable")
    assert retries[f'{{action="retry",entity="{kind}",policy="routing"}}'] == 2


def test_no_retry_after_the_first_byte_of_a_stream(
    routed: Server, mock_server: Server, mock_b: Server, clients: tuple[openai.OpenAI, anthropic.Anthropic]
) -> None:
    reset(mock_server, mock_b)
    oa, _ = clients
    with oa.chat.completions.with_streaming_response.create(
        model="rstream",
        messages=MESSAGES,  # type: ignore[arg-type]
        stream=True,
    ) as streamed:
        assert streamed.headers["x-sluicegate-attempts"] == "1"
        texts = []
        with pytest.raises(openai.APIError):
            for chunk in streamed.parse():
                texts.extend(c.delta.content or "" for c in chunk.choices)
    assert texts  # the client had its first bytes: the call could not be retried
    assert stats(mock_server)["streams_disconnected"] == 1
    assert stats(mock_b)["requests"] == 0


def test_fallback_after_context_length_skips_a_denied_model(
    routed: Server, mock_server: Server, mock_b: Server, clients: tuple[openai.OpenAI, anthropic.Anthropic]
) -> None:
    reset(mock_server, mock_b)
    oa, an = clients
    before = policy_events(routed)
    raw = oa.chat.completions.with_raw_response.create(model="rctx", messages=MESSAGES)  # type: ignore[arg-type]
    assert raw.headers["x-sluicegate-deployment"] == "b/fb"
    assert raw.parse().model == "fb"
    msg = an.messages.create(model="rctx", messages=MESSAGES, max_tokens=50)  # type: ignore[arg-type]
    assert msg.model == "fb"
    after = policy_events(routed)
    assert after['{action="fallback",entity="context_length",policy="routing"}'] == 2 + before.get(
        '{action="fallback",entity="context_length",policy="routing"}', 0
    )
    denied = '{action="fallback_denied",entity="model_rules",policy="routing"}'
    assert after[denied] == before.get(denied, 0) + 2
    # Without `context_length` in fallback_on, the provider's refusal reaches the client as it was.
    with pytest.raises(openai.BadRequestError) as err:
        oa.chat.completions.create(model="rnoctx", messages=MESSAGES)  # type: ignore[arg-type]
    assert err.value.code == "context_length_exceeded"
    with pytest.raises(anthropic.BadRequestError) as aerr:
        an.messages.create(model="rnoctx", messages=MESSAGES, max_tokens=50)  # type: ignore[arg-type]
    assert "prompt is too long" in str(aerr.value)
    assert stats(mock_b)["requests"] == 2  # only the two fallbacks of rctx


def test_fallback_after_a_content_policy_refusal(
    routed: Server, mock_server: Server, mock_b: Server, clients: tuple[openai.OpenAI, anthropic.Anthropic]
) -> None:
    reset(mock_server, mock_b)
    oa, an = clients
    assert an.messages.create(model="rpolicy", messages=MESSAGES, max_tokens=50).model == "fb"  # type: ignore[arg-type]
    raw = oa.chat.completions.with_raw_response.create(model="rpolicy", messages=MESSAGES)  # type: ignore[arg-type]
    assert raw.headers["x-sluicegate-deployment"] == "b/fb" and raw.headers["x-sluicegate-attempts"] == "2"
    assert stats(mock_server)["requests"] == 2 and stats(mock_b)["requests"] == 2


def test_a_retry_may_go_to_a_deployment_that_takes_the_call_translated(
    routed: Server, mock_server: Server, mock_b: Server, clients: tuple[openai.OpenAI, anthropic.Anthropic]
) -> None:
    reset(mock_server, mock_b)
    _, an = clients
    raw = an.messages.with_raw_response.create(model="rtrans", messages=MESSAGES, max_tokens=50)  # type: ignore[arg-type]
    assert raw.headers["x-sluicegate-deployment"] == "oa/mock-gpt" and raw.headers["x-sluicegate-attempts"] == "2"
    message = raw.parse()
    assert message.type == "message" and message.content[0].text  # type: ignore[union-attr]
    assert stats(mock_b)["last_request"]["path"] == "/v1/chat/completions"  # b was asked in OpenAI's format


def test_fallback_when_every_deployment_failed(
    routed: Server, mock_server: Server, mock_b: Server, clients: tuple[openai.OpenAI, anthropic.Anthropic]
) -> None:
    reset(mock_server, mock_b)
    oa, _ = clients
    raw = oa.chat.completions.with_raw_response.create(model="rdown", messages=MESSAGES)  # type: ignore[arg-type]
    assert raw.headers["x-sluicegate-deployment"] == "b/fb" and raw.headers["x-sluicegate-attempts"] == "2"
    assert stats(mock_server)["requests"] == 1 and stats(mock_b)["requests"] == 1


def breaker_state(gateway: Server, route: str, deployment: str) -> float:
    """The breaker's state in the one worker serving (a per-worker gauge: it has a `pid` label)."""
    labels = {f'deployment="{deployment}"', f'route="{route}"'}
    found = []
    for line in scrape(gateway.url).splitlines():
        if line.startswith("sluicegate_deployment_breaker_state{"):
            inside = line[line.index("{") + 1 : line.rindex("}")]
            parts = set(inside.split('",'))
            parts = {p if p.endswith('"') else p + '"' for p in parts}
            if labels <= parts:
                found.append(float(line.rsplit(" ", 1)[1]))
    assert len(found) == 1, f"breaker {route}/{deployment}: {found} in /metrics"
    return found[0]


def test_the_breaker_skips_a_failing_deployment_then_probes_it_back(
    routed: Server, mock_server: Server, mock_b: Server, clients: tuple[openai.OpenAI, anthropic.Anthropic]
) -> None:
    reset(mock_server, mock_b)
    oa, _ = clients
    a_label = "a/mock-gpt@fault=500,fault_times=3"

    def call() -> str:
        raw = oa.chat.completions.with_raw_response.create(model="rbreak", messages=MESSAGES)  # type: ignore[arg-type]
        assert raw.status_code == 200
        return raw.headers["x-sluicegate-deployment"]

    assert [call(), call()] == ["b/mock-gpt"] * 2  # a failed twice: its breaker opens
    assert stats(mock_server)["requests"] == 2
    assert breaker_state(routed, "rbreak", a_label) == 1
    assert [call(), call()] == ["b/mock-gpt"] * 2
    assert stats(mock_server)["requests"] == 2  # a was not touched while open
    # The cool-down (1.5 s: long enough that a loaded machine makes the calls above within it).
    time.sleep(1.6)  # the next call probes a (it fails a third time, and opens again)
    assert call() == "b/mock-gpt"
    assert stats(mock_server)["requests"] == 3
    assert breaker_state(routed, "rbreak", a_label) == 1
    time.sleep(1.6)  # a is healthy now: the probe succeeds and closes the breaker
    assert [call(), call()] == [a_label, a_label]
    assert stats(mock_server)["requests"] == 5
    assert breaker_state(routed, "rbreak", a_label) == 0
    events = policy_events(routed)
    assert events['{action="breaker_open",entity="deployment",policy="routing"}'] >= 2
    assert events['{action="breaker_closed",entity="deployment",policy="routing"}'] >= 1


def test_a_weighted_split_follows_the_weights(routed: Server, mock_server: Server, mock_b: Server) -> None:
    reset(mock_server, mock_b)
    body = {"model": "rsplit", "messages": MESSAGES}
    with httpx.Client(timeout=10, headers={"authorization": f"Bearer {GATEWAY_KEY}"}) as client:
        for _ in range(200):
            assert client.post(f"{routed.url}/v1/chat/completions", json=body).status_code == 200
    a, b = stats(mock_server)["requests"], stats(mock_b)["requests"]
    assert a + b == 200
    assert 125 <= a <= 175  # weights 3:1 (150 expected; the seeded choice lands well inside)


def spend_routes(limit_nusd: int) -> str:
    """Prices (mock-gpt as in test_spend_gateway, mock-gpt-dear ten times it), a workspace cap of
    `limit_nusd`, and the routes: `rs` (a fails, b serves), `rf` (a fails, falls back to `dear`),
    `rb` (a fails with an answer its provider bills, b serves)."""
    return f"""
[spend]
estimate = {{ per_message_tokens = 0, per_request_tokens = 0 }}

[spend.price_overrides.mock-gpt]
input_usd_per_mtok = "1"
output_usd_per_mtok = "2"

[spend.price_overrides.mock-gpt-dear]
input_usd_per_mtok = "10"
output_usd_per_mtok = "20"

[[spend.caps]]
level = "workspace"
id = "ws-test"
org = "default"
window = "day"
limit_usd = "{limit_nusd / 1e9:.9f}"

[routing.models.rs]
deployments = [
    {{ provider = "a", model = "mock-gpt@fault=500,chunks=10,chunk_size=4" }},
    {{ provider = "b", model = "{CHEAP}", weight = 0 }},
]

[routing.models.rf]
deployments = [{{ provider = "a", model = "mock-gpt@fault=500,chunks=10,chunk_size=4" }}]
max_attempts = 1
fallbacks = ["dear"]

[routing.models.dear]
deployments = [{{ provider = "b", model = "mock-gpt-dear@chunks=10,chunk_size=4" }}]

[routing.models.rb]
deployments = [
    {{ provider = "a", model = "mock-gpt@fault=500_billed" }},
    {{ provider = "b", model = "{CHEAP}", weight = 0 }},
]
"""


def spent(gateway: Server) -> int:
    for line in scrape(gateway.url).splitlines():
        if line.startswith('sluicegate_spend_nusd_total{workspace="ws-test"}'):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def test_a_failed_attempt_that_the_provider_billed_is_billed_too(
    mock_server: Server, mock_b: Server, dropper: int, tmp_path: Path
) -> None:
    """A provider's error that reports usage (it ran the model, then failed) is billed as it says,
    besides the attempt that served the call; the call's cost in the records is both."""
    extra = providers(mock_server, mock_b, dropper) + spend_routes(10 * COST_NUSD)
    with (
        start_gateway(gateway_config(tmp_path / "gw.toml", mock_server.url, extra)) as gw,
        openai.OpenAI(base_url=f"{gw.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as oa,
    ):
        raw = oa.chat.completions.with_raw_response.create(model="rb", messages=MESSAGES, max_tokens=10)  # type: ignore[arg-type]
        assert raw.headers["x-sluicegate-attempts"] == "2"
        # 2 input and 10 output tokens of the failed attempt (its error body's usage) cost what one
        # cheap call costs: the ledger has both.
        assert spent(gw) == 2 * COST_NUSD


def test_spend_books_exactly_under_retries_and_fallbacks(
    mock_server: Server, mock_b: Server, dropper: int, tmp_path: Path
) -> None:
    extra = providers(mock_server, mock_b, dropper) + spend_routes(2 * COST_NUSD + DEAR_COST_NUSD)
    with (
        start_gateway(gateway_config(tmp_path / "gw.toml", mock_server.url, extra)) as gw,
        openai.OpenAI(base_url=f"{gw.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as oa,
    ):

        def call(model: str, **more: object) -> openai.types.chat.ChatCompletion:
            return oa.chat.completions.create(model=model, messages=MESSAGES, max_tokens=10, **more)  # type: ignore[arg-type,no-any-return]

        assert call("rs").model == "mock-gpt"  # a failed (released), b served: COST
        assert spent(gw) == COST_NUSD
        assert call("rf").model == "mock-gpt-dear"  # a failed, the fallback served at its own price
        assert spent(gw) == COST_NUSD + DEAR_COST_NUSD
        # COST is left: the first attempt fits, the dearer fallback does not -> 402, nothing spent.
        with pytest.raises(openai.APIStatusError) as err:
            call("rf")
        assert err.value.status_code == 402 and err.value.code == "spend_limit_exceeded"
        assert spent(gw) == COST_NUSD + DEAR_COST_NUSD
        # What the refused call had reserved came back: one more cheap call fits, exactly.
        with contextlib.closing(
            oa.chat.completions.create(
                model="rs",
                messages=MESSAGES,  # type: ignore[arg-type]
                max_tokens=10,
                stream=True,
                stream_options={"include_usage": True},
            )
        ) as stream:
            assert next(c for c in stream if c.usage).usage.completion_tokens == 10  # type: ignore[union-attr]
        assert spent(gw) == 2 * COST_NUSD + DEAR_COST_NUSD
        with pytest.raises(openai.APIStatusError) as err:
            call("rs")
        assert err.value.status_code == 402


class _Clock:
    """The routes' clock for an in-process gateway: it moves only when the gateway sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@contextlib.asynccontextmanager
async def in_process(config: Path, clock: _Clock):  # type: ignore[no-untyped-def]
    """A gateway in this process (its sleep and clock the test's), reached by the real OpenAI SDK
    through an ASGI transport; its providers are the mocks on their sockets."""
    from sluicegate.config import load_settings
    from sluicegate.formats import FORMATS_BY_PATH
    from sluicegate.policy.pipeline import Gateway

    gateway = Gateway(load_settings(config, environ={}), environ={}, sleep=clock.sleep, monotonic=clock)
    await gateway.start()

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        await gateway.handle(scope, receive, send, FORMATS_BY_PATH[scope["path"]])

    transport = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    try:
        async with openai.AsyncOpenAI(
            base_url="http://gateway/v1", api_key=GATEWAY_KEY, max_retries=0, http_client=transport
        ) as client:
            yield client
    finally:
        await gateway.stop()


RETRY_AFTER = """
[routing]
max_retry_after_s = 10

[routing.models.once]
deployments = [{ provider = "a", model = "mock-gpt@fault=429,fault_times=1,retry_after=3" }]

[routing.models.long]
deployments = [{ provider = "a", model = "mock-gpt@fault=429,retry_after=60" }]

[routing.models.single]
max_attempts = 1
deployments = [{ provider = "a", model = "mock-gpt@fault=429,fault_times=1,retry_after=2" }]
"""


async def test_retry_after_is_honoured_and_capped(
    mock_server: Server, mock_b: Server, dropper: int, tmp_path: Path
) -> None:
    reset(mock_server)
    clock = _Clock()
    config = gateway_config(
        tmp_path / "gw.toml", mock_server.url, providers(mock_server, mock_b, dropper) + RETRY_AFTER
    )
    async with in_process(config, clock) as client:
        # One deployment: the retry goes to it again, once its retry-after (3 s) has passed.
        raw = await client.chat.completions.with_raw_response.create(model="once", messages=MESSAGES)  # type: ignore[arg-type]
        assert raw.headers["x-sluicegate-attempts"] == "2"
        assert clock.slept == [3.0]
        # A retry-after beyond routing.max_retry_after_s: no retry, the 429 goes to the client as it came.
        with pytest.raises(openai.RateLimitError) as err:
            await client.chat.completions.create(model="long", messages=MESSAGES)  # type: ignore[arg-type]
        assert err.value.response.headers["retry-after"] == "60"
        assert err.value.response.headers["x-sluicegate-attempts"] == "1"
        assert clock.slept == [3.0]
        # The next call finds its only deployment held back for longer than the gateway waits: a 503
        # that says until when (not a call the provider asked not to get).
        with pytest.raises(openai.InternalServerError) as down:
            await client.chat.completions.create(model="long", messages=MESSAGES)  # type: ignore[arg-type]
        assert down.value.status_code == 503 and down.value.code == "no_healthy_deployment"
        assert down.value.response.headers["retry-after"] == "60"
        # No retry allowed: the 429 goes to the client; the next call's first attempt waits out
        # the retry-after its deployment sent, instead of calling it at once.
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(model="single", messages=MESSAGES)  # type: ignore[arg-type]
        raw = await client.chat.completions.with_raw_response.create(model="single", messages=MESSAGES)  # type: ignore[arg-type]
        assert raw.headers["x-sluicegate-attempts"] == "1"
        assert clock.slept == [3.0, 2.0]
    assert stats(mock_server)["requests"] == 5


def test_the_langsmith_run_lists_the_attempts(
    mock_server: Server, mock_b: Server, dropper: int, tmp_path: Path
) -> None:
    from tests.integration.test_langsmith import StandIn, gateway_run

    standin = StandIn()
    ls = f'[langsmith]\nenabled = true\nendpoint = "{standin.url}"\napi_key = "ls-test"\nproject = "p"\n'
    extra = providers(mock_server, mock_b, dropper) + ls + standby("r500", "a", "mock-gpt@fault=500")
    try:
        with (
            start_gateway(gateway_config(tmp_path / "gw.toml", mock_server.url, extra)) as gw,
            openai.OpenAI(base_url=f"{gw.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as oa,
        ):
            raw = oa.chat.completions.with_raw_response.create(model="r500", messages=MESSAGES)  # type: ignore[arg-type]
            run = gateway_run(standin, raw.headers["x-sluicegate-request-id"])
    finally:
        standin.close()
    metadata = run["extra"]["metadata"]
    assert metadata["sluicegate_attempts"] == ["a/mock-gpt@fault=500", "b/mock-gpt"]
    assert metadata["sluicegate_deployment"] == "b/mock-gpt" and metadata["sluicegate_provider"] == "b"
    assert "routing:retry:status_5xx:1" in metadata["sluicegate_policy"]
    assert PROVIDER_KEY not in str(run) and mock_server.url not in str(run)


async def test_concurrent_retried_calls_book_once_each(
    mock_server: Server, mock_b: Server, dropper: int, tmp_path: Path
) -> None:
    import asyncio

    n = 30
    extra = providers(mock_server, mock_b, dropper) + spend_routes(n * COST_NUSD)
    reset(mock_server, mock_b)
    with start_gateway(gateway_config(tmp_path / "gw.toml", mock_server.url, extra)) as gw:
        async with openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as oa:

            async def one(i: int) -> str:
                if i % 2:
                    stream = await oa.chat.completions.create(
                        model="rs",
                        messages=MESSAGES,
                        max_tokens=10,
                        stream=True,  # type: ignore[arg-type]
                    )
                    return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
                done = await oa.chat.completions.create(model="rs", messages=MESSAGES, max_tokens=10)  # type: ignore[arg-type]
                return done.choices[0].message.content or ""

            replies = await asyncio.gather(*(one(i) for i in range(n)))
            assert all(len(r) == 40 for r in replies)
            with pytest.raises(openai.APIStatusError) as err:
                await oa.chat.completions.create(model="rs", messages=MESSAGES, max_tokens=10)  # type: ignore[arg-type]
            assert err.value.status_code == 402
        assert spent(gw) == n * COST_NUSD  # each call booked once, at what b served; a's failures free
    assert stats(mock_b)["requests"] == n


async def test_a_timeout_before_the_first_byte_is_retried_within_the_total(
    mock_server: Server, mock_b: Server, dropper: int, tmp_path: Path
) -> None:
    reset(mock_server, mock_b)
    routes = standby("slow", "a", "mock-gpt@first_byte_ms=3000")
    routes += standby("slower", "a", "mock-gpt@first_byte_ms=3000", "mock-gpt@first_byte_ms=3000")
    config = gateway_config(tmp_path / "gw.toml", mock_server.url, providers(mock_server, mock_b, dropper) + routes)
    text = config.read_text().replace("first_byte_timeout_s = 2", "first_byte_timeout_s = 0.3")
    config.write_text(text.replace("total_timeout_s = 30", "total_timeout_s = 0.5"))
    async with in_process(config, _Clock()) as client:
        raw = await client.chat.completions.with_raw_response.create(model="slow", messages=MESSAGES)  # type: ignore[arg-type]
        assert raw.headers["x-sluicegate-deployment"] == "b/mock-gpt" and raw.headers["x-sluicegate-attempts"] == "2"
        # Both slow: the second attempt has what is left of the 0.5 s, and no third one starts.
        started = time.monotonic()
        with pytest.raises(openai.APIStatusError) as err:
            await client.chat.completions.create(model="slower", messages=MESSAGES)  # type: ignore[arg-type]
        assert err.value.status_code == 504 and err.value.response.headers["x-sluicegate-attempts"] == "2"
        assert time.monotonic() - started < 1.5


async def test_a_route_whose_breakers_are_all_open_answers_503_with_retry_after(
    mock_server: Server, mock_b: Server, dropper: int, tmp_path: Path
) -> None:
    reset(mock_server)
    lone = """
[routing]
breaker_failures = 2
breaker_cooldown_s = 20

[routing.models.lone]
deployments = [{ provider = "a", model = "mock-gpt@fault=500,fault_times=2" }]
max_attempts = 1
"""
    clock = _Clock()
    config = gateway_config(tmp_path / "gw.toml", mock_server.url, providers(mock_server, mock_b, dropper) + lone)
    async with in_process(config, clock) as client:
        for _ in range(2):
            with pytest.raises(openai.InternalServerError):
                await client.chat.completions.create(model="lone", messages=MESSAGES)  # type: ignore[arg-type]
        clock.now += 5
        with pytest.raises(openai.APIStatusError) as err:
            await client.chat.completions.create(model="lone", messages=MESSAGES)  # type: ignore[arg-type]
        assert err.value.status_code == 503 and err.value.code == "no_healthy_deployment"
        assert err.value.response.headers["retry-after"] == "15"
        assert stats(mock_server)["requests"] == 2  # the open breaker kept the call from a
        clock.now += 15  # cooled down: the probe goes through, and a is healthy again
        done = await client.chat.completions.create(model="lone", messages=MESSAGES)  # type: ignore[arg-type]
        assert done.choices[0].message.content
    assert stats(mock_server)["requests"] == 3


def test_the_admin_api_shows_each_deployments_breaker(
    mock_server: Server, mock_b: Server, dropper: int, tmp_path: Path
) -> None:
    from tests.integration.test_control_gateway import _env, _seed
    from tests.unit.control.pg import MASTER_KEY

    from sluicegate.control.responses import Routes
    from sluicegate.control.settings import ControlSettings

    control = ControlSettings(enabled=True, database_url=f"sqlite:///{tmp_path / 'c.db'}", master_key=MASTER_KEY)
    seed = _seed(control)
    extra = f'\n[control]\nenabled = true\ndatabase_url = "{control.database_url}"\n'
    extra += providers(mock_server, mock_b, dropper) + "\n[routing]\nbreaker_failures = 1\n"
    extra += standby("rb", "a", "mock-gpt@fault=500")
    with (
        start_gateway(gateway_config(tmp_path / "gw.toml", mock_server.url, extra), _env()) as gw,
        openai.OpenAI(base_url=f"{gw.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as oa,
    ):
        assert oa.chat.completions.create(model="rb", messages=MESSAGES).choices  # type: ignore[arg-type]
        # a's breaker is open: the next call's first attempt is b's, which serves it (counted in
        # flight while it ran, and no longer).
        again = oa.chat.completions.with_raw_response.create(model="rb", messages=MESSAGES)  # type: ignore[arg-type]
        assert (
            again.headers["x-sluicegate-attempts"] == "1" and again.headers["x-sluicegate-deployment"] == "b/mock-gpt"
        )
        answer = httpx.get(f"{gw.url}/admin/v1/routes", headers={"authorization": f"Bearer {seed['token']}"})
        assert answer.status_code == 200
        rows = Routes.model_validate(answer.json()).routes  # the contract's own model: no field beyond it
        assert httpx.get(f"{gw.url}/admin/v1/routes").status_code == 401
    assert [(r.route, r.deployment, r.provider, r.breaker, r.failures, r.in_flight) for r in rows] == [
        ("rb", "a/mock-gpt@fault=500", "a", "open", 1, 0),
        ("rb", "b/mock-gpt", "b", "closed", 0, 0),
    ]
    assert rows[1].ttfb_s is not None and rows[0].ttfb_s is None
    assert mock_server.url not in answer.text and PROVIDER_KEY not in answer.text
