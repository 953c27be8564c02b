"""Bounded inputs, probed as an attacker with a gateway key or an admin token would, over real sockets:

- absurd numbers where a capped request's reservation reads them (`max_tokens` of 1e13, a string,
  a bool, a negative, a huge `n`) are 400s naming the parameter, in both SDKs' formats;
- nesting past `server.max_json_depth` under a cap is a 400, not a 500;
- a body trickled slower than `server.body_timeout_s` is a 408 in the caller's format, the
  connection is closed, and nothing was reserved;
- the admin API refuses bodies over `control.max_body_bytes` (413) and slow ones (408).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from tests.conftest import GATEWAY_KEY, Server, gateway_config, redis_url, start_gateway
from tests.integration.test_control_gateway import _env, _seed
from tests.integration.test_spend_gateway import MESSAGES, MODEL, _spent_reserved, spend_toml
from tests.unit.control.pg import MASTER_KEY

from sluicegate.control.settings import ControlSettings

BODY_TIMEOUT_S = 1.5
CLAUDE = "mh/mock-claude"
PREFIX = f"b{uuid.uuid4().hex[:8]}"  # this module's Redis keys


@pytest.fixture(scope="module")
def capped(mock_server: Server, redis_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A gateway whose key is under a cap counted in Redis (so a test can read what is reserved),
    with a short body deadline."""
    extra = f'redis_url = "{redis_url(redis_server)}"'
    toml = spend_toml(1000, backend="redis", prefix=PREFIX, extra=extra)
    config = gateway_config(tmp_path_factory.mktemp("bounds") / "c.toml", mock_server.url, toml)
    with start_gateway(config, {"SLUICEGATE_SERVER__BODY_TIMEOUT_S": str(BODY_TIMEOUT_S)}) as server:
        yield server


@pytest.fixture
def oa(capped: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{capped.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client:
        yield client


@pytest.fixture
def an(capped: Server) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=capped.url, api_key=GATEWAY_KEY, max_retries=0) as client:
        yield client


# ── absurd numbers ────────────────────────────────────────────────────────────────────────────────

ABSURD = [
    pytest.param("max_tokens", 1e13, "invalid_type", id="max_tokens 1e13"),
    pytest.param("max_tokens", 10**13, "integer_above_max_value", id="max_tokens 10**13"),
    pytest.param("max_tokens", -1, "integer_below_min_value", id="max_tokens -1"),
    pytest.param("max_tokens", 0, "integer_below_min_value", id="max_tokens 0"),
    pytest.param("max_tokens", True, "invalid_type", id="max_tokens true"),
    pytest.param("max_tokens", "100", "invalid_type", id="max_tokens string"),
    pytest.param("max_completion_tokens", 2**40, "integer_above_max_value", id="max_completion_tokens 2**40"),
    pytest.param("n", 10**12, "integer_above_max_value", id="n 10**12"),
    pytest.param("n", 2.5, "invalid_type", id="n 2.5"),
]


@pytest.mark.parametrize(("param", "value", "code"), ABSURD)
def test_absurd_numbers_are_a_400_naming_the_parameter_openai(
    oa: openai.OpenAI, param: str, value: Any, code: str
) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        oa.chat.completions.create(model=MODEL, messages=MESSAGES, extra_body={param: value})  # type: ignore[arg-type]
    assert err.value.status_code == 400
    assert (err.value.code, err.value.param) == (code, param)
    assert f"'{param}' must be an integer" in err.value.message


def test_absurd_output_limit_in_the_responses_api(oa: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        oa.responses.create(model=MODEL, input="hello", max_output_tokens=10**15)
    assert (err.value.code, err.value.param) == ("integer_above_max_value", "max_output_tokens")


@pytest.mark.parametrize("value", [1e13, 10**13, -5, "lots"], ids=["1e13", "10**13", "-5", "string"])
def test_absurd_max_tokens_is_a_400_anthropic(an: anthropic.Anthropic, value: Any) -> None:
    with pytest.raises(anthropic.BadRequestError) as err:
        # extra_body: the SDK itself refuses a huge max_tokens without streaming; a raw client would not
        an.messages.create(model=CLAUDE, messages=MESSAGES, max_tokens=10, extra_body={"max_tokens": value})  # type: ignore[arg-type]
    assert err.value.status_code == 400
    body = err.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert "'max_tokens' must be an integer from 1 to 2147483647" in body["error"]["message"]


def test_the_largest_valid_numbers_meet_the_cap(oa: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as err:
        oa.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=2**31 - 1, n=128)  # type: ignore[arg-type]
    assert err.value.status_code == 402 and err.value.code == "spend_limit_exceeded"


# ── nesting ───────────────────────────────────────────────────────────────────────────────────────


def nested(levels: int) -> Any:
    """A value that, as a message's content, puts the body `levels` deep (body, messages, message: 3)."""
    value: Any = "hello"
    for _ in range(levels - 3):
        value = [value]
    return value


def test_nesting_up_to_the_limit_is_served(oa: openai.OpenAI, an: anthropic.Anthropic) -> None:
    messages = [{"role": "user", "content": nested(64)}]
    assert oa.chat.completions.create(model=MODEL, messages=messages, max_tokens=10).choices  # type: ignore[arg-type]
    assert an.messages.create(model=CLAUDE, messages=messages, max_tokens=10).content  # type: ignore[arg-type]


def test_nesting_past_the_limit_is_a_400_in_both_sdks(oa: openai.OpenAI, an: anthropic.Anthropic) -> None:
    messages = [{"role": "user", "content": nested(65)}]
    with pytest.raises(openai.BadRequestError) as oe:
        oa.chat.completions.create(model=MODEL, messages=messages, max_tokens=10)  # type: ignore[arg-type]
    assert oe.value.code == "json_too_deep" and "more than 64 levels" in oe.value.message
    with pytest.raises(anthropic.BadRequestError) as ae:
        an.messages.create(model=CLAUDE, messages=messages, max_tokens=10)  # type: ignore[arg-type]
    assert "more than 64 levels" in str(ae.value)


@pytest.mark.parametrize("levels", [300, 1000, 5000])
def test_deep_objects_under_a_cap_are_a_400_not_a_500(capped: Server, levels: int) -> None:
    # 300: more than orjson writes (the rewritten body failed: 500); 5000: more than it reads.
    content = '{"a": ' * levels + '"x"' + "}" * levels
    raw = f'{{"model": "{MODEL}", "max_tokens": 10, "messages": [{{"role": "user", "content": {content}}}]}}'
    headers = {"authorization": f"Bearer {GATEWAY_KEY}", "content-type": "application/json"}
    r = httpx.post(f"{capped.url}/v1/chat/completions", content=raw, headers=headers)
    assert r.status_code == 400 and r.json()["error"]["code"] == "json_too_deep"


# ── slow bodies ───────────────────────────────────────────────────────────────────────────────────


def trickle(port: int, path: str, *, chunked: bool, token: str = GATEWAY_KEY) -> tuple[float, bytes, bool]:
    """Send the headers, then one byte of body every 0.1 s (never finishing), reading as it goes.

    Returns:
        (seconds until the response arrived, the response, whether the server then closed).
    """
    framing = "Transfer-Encoding: chunked" if chunked else "Content-Length: 10000"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\n{framing}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head.encode())
        sock.settimeout(0.1)
        start = time.monotonic()
        received = b""
        while time.monotonic() - start < BODY_TIMEOUT_S + 8:
            if not received:
                with contextlib.suppress(OSError):  # the server may close its side once it answered
                    sock.sendall(b"1\r\n \r\n" if chunked else b" ")
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                break
            received += data
            head_, _, rest = received.partition(b"\r\n\r\n")
            lengths = [int(h.split(b":")[1]) for h in head_.split(b"\r\n") if h.lower().startswith(b"content-length:")]
            if lengths and len(rest) >= lengths[0]:
                elapsed = time.monotonic() - start
                sock.settimeout(5)
                try:
                    closed = sock.recv(1) == b""
                except OSError:
                    closed = True
                return elapsed, received, closed
        return time.monotonic() - start, received, False


@pytest.mark.parametrize(
    ("path", "chunked"),
    [("/v1/chat/completions", False), ("/v1/messages", True)],
    ids=["openai content-length", "anthropic chunked"],
)
async def test_a_trickled_body_is_a_408_and_reserves_nothing(
    capped: Server, redis_server: Server, path: str, chunked: bool
) -> None:
    before = await _spent_reserved(redis_server, PREFIX)
    elapsed, response, closed = await asyncio.to_thread(trickle, capped.port, path, chunked=chunked)
    status_line, _, rest = response.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 408"), response[:300]
    assert BODY_TIMEOUT_S * 0.9 <= elapsed < BODY_TIMEOUT_S + 5
    body = json.loads(rest.partition(b"\r\n\r\n")[2])
    if path == "/v1/messages":
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
        assert "did not arrive within" in body["error"]["message"]
    else:
        assert body["error"]["code"] == "request_timeout"
    assert closed, "the server kept the connection of a body it stopped reading"
    assert await _spent_reserved(redis_server, PREFIX) == before


def test_a_slow_body_within_the_deadline_is_served(capped: Server) -> None:
    body = json.dumps({"model": MODEL, "messages": MESSAGES, "max_tokens": 10}).encode()

    def pieces() -> Iterator[bytes]:
        for i in range(0, len(body), len(body) // 3 + 1):
            time.sleep(0.1)
            yield body[i : i + len(body) // 3 + 1]

    headers = {"authorization": f"Bearer {GATEWAY_KEY}", "content-type": "application/json"}
    r = httpx.post(f"{capped.url}/v1/chat/completions", content=pieces(), headers=headers, timeout=10)
    assert r.status_code == 200, r.text


# ── the admin API ─────────────────────────────────────────────────────────────────────────────────


@pytest.fixture(scope="module")
def admin(mock_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, Any]]]:
    """A gateway with the control plane on (SQLite) and an org admin token; the default body limit."""
    tmp = tmp_path_factory.mktemp("admin-bounds")
    settings = ControlSettings(enabled=True, database_url=f"sqlite:///{tmp / 'control.db'}", master_key=MASTER_KEY)
    seed = _seed(settings)
    control = f'\n[control]\nenabled = true\ndatabase_url = "{settings.database_url}"\n'
    env = {**_env(), "SLUICEGATE_SERVER__BODY_TIMEOUT_S": str(BODY_TIMEOUT_S)}
    with start_gateway(gateway_config(tmp / "gw.toml", mock_server.url, control), env) as server:
        yield server, seed


def test_admin_bodies_are_bounded(admin: tuple[Server, dict[str, Any]]) -> None:
    server, seed = admin
    url = f"{server.url}/admin/v1/orgs/{seed['org']['id']}/workspaces"
    auth = {"authorization": f"Bearer {seed['token']}", "content-type": "application/json"}
    big = json.dumps({"name": "w" * (1024 * 1024)}).encode()
    declared = httpx.post(url, content=big, headers=auth)
    assert declared.status_code == 413 and declared.json()["error"]["code"] == "request_too_large"

    def streamed() -> Iterator[bytes]:  # no content-length: refused once 1 MiB has arrived
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    undeclared = httpx.post(url, content=streamed(), headers=auth)
    assert undeclared.status_code == 413 and undeclared.json()["error"]["code"] == "request_too_large"
    ok = httpx.post(url, json={"name": "second"}, headers=auth)
    assert ok.status_code == 201, ok.text


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_trickled_admin_body_is_a_408(admin: tuple[Server, dict[str, Any]], chunked: bool) -> None:
    server, seed = admin
    path = f"/admin/v1/orgs/{seed['org']['id']}/workspaces"
    elapsed, response, closed = trickle(server.port, path, chunked=chunked, token=seed["token"])
    assert response.startswith(b"HTTP/1.1 408"), response[:300]
    assert json.loads(response.partition(b"\r\n\r\n")[2])["error"]["code"] == "request_timeout"
    assert BODY_TIMEOUT_S * 0.9 <= elapsed < BODY_TIMEOUT_S + 5 and closed
