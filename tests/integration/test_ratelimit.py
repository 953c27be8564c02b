"""Rate limits through real gateway processes, with the real SDKs and the mock provider on a socket:
our 429 in both formats, which the SDKs wait out and retry by themselves; the limit headers of each
format on successes, streams and errors; tokens settled to the provider's usage; requests in flight
released on every ending; monitor mode; a provider's own 429 told apart from ours; and the store
unreachable (fail_closed, fail_open).

One gateway serves most tests, each with a key (and workspace) of its own, so their counts never
meet. Token counts are deterministic: "hello" is 2 input tokens (the estimate runs without padding)
and `chunks=10,chunk_size=4` a reply of 10 output tokens.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from tests.conftest import (
    GATEWAY_KEY,
    REAL_CLOCK,
    Server,
    free_port,
    gateway_config,
    spawn,
    start_gateway,
    stop_process,
)
from tests.integration.test_control_cli import admin as cli
from tests.integration.test_spend_gateway import policy_events

from sluicegate.secrets import hash_key

MODEL = "mh/mock-gpt@chunks=10,chunk_size=4"
CLAUDE = "mh/mock-claude@chunks=10,chunk_size=4"
SLOW = "mh/mock-gpt@chunks=10,chunk_size=4,delay_ms=100"  # a stream of about one second
MESSAGES = [{"role": "user", "content": "hello"}]
NO_PADDING = "\n[spend]\nestimate = { per_message_tokens = 0, per_request_tokens = 0 }\n"


def key_of(name: str) -> str:
    return f"sg-test-{name}-" + "k" * 32


def keys_toml(*names: str) -> str:
    """A config key per name, each in a workspace of its own (`ws-<name>`)."""
    return "".join(f'\n[[keys]]\nname = "{n}"\nworkspace = "ws-{n}"\nsha256 = "{hash_key(key_of(n))}"\n' for n in names)


def rule(level: str, id: str, kind: str, limit: int, window_s: int = 60, **more: object) -> str:
    """One `[[limits.rules]]` entry (organization "default", the config keys')."""
    extra = "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in more.items())
    return (
        f'\n[[limits.rules]]\nlevel = "{level}"\nid = "{id}"\norg = "default"\nkind = "{kind}"\n'
        f"limit = {limit}\nwindow_s = {window_s}\n{extra}"
    )


RULES = (
    rule("key", "backoff", "requests", 2, 2)
    + rule("key", "backoff-a", "requests", 2, 2)
    + rule("key", "headers", "requests", 50)
    + rule("workspace", "ws-headers", "requests", 100)
    + rule("key", "headers", "tokens", 1000)
    + rule("key", "tokens", "tokens", 100)
    + rule("key", "flight", "concurrent", 2)
    + rule("key", "monitor", "requests", 1, mode="monitor")
    + rule("key", "upstream", "requests", 1000)
)
KEYS = keys_toml("backoff", "backoff-a", "headers", "tokens", "flight", "monitor", "upstream", "free")


@pytest.fixture(scope="module")
def gw(mock_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    path = tmp_path_factory.mktemp("ratelimit") / "gw.toml"
    with start_gateway(gateway_config(path, mock_server.url, NO_PADDING + KEYS + RULES)) as server:
        yield server


def post(gw: Server, name: str, *, path: str = "/v1/chat/completions", **body: object) -> httpx.Response:
    payload: dict[str, object] = {"model": MODEL, "messages": MESSAGES, "max_tokens": 10, **body}
    if path == "/v1/messages":
        payload["model"] = body.get("model", CLAUDE)
    return httpx.post(f"{gw.url}{path}", json=payload, headers={"authorization": f"Bearer {key_of(name)}"}, timeout=10)


def delta(before: dict[str, float], after: dict[str, float], labels: str) -> float:
    return after.get(labels, 0.0) - before.get(labels, 0.0)


REFUSE_KEY = '{action="refuse",entity="key",policy="limits"}'


def test_openai_sdk_gets_our_429_then_backs_off_and_succeeds(gw: Server) -> None:
    before = policy_events(gw)
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key_of("backoff"), max_retries=0) as once:
        for _ in range(2):
            once.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=10)  # type: ignore[arg-type]
        with pytest.raises(openai.RateLimitError) as caught:
            once.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=10)  # type: ignore[arg-type]
    err = caught.value
    assert err.status_code == 429 and err.code == "gateway_rate_limit_exceeded" and err.type == "rate_limit_error"
    assert "key 'backoff' allows 2 requests per 2 s" in err.message
    headers = err.response.headers
    assert headers["x-sluicegate-limit"] == "key/requests"
    wait_ms = int(headers["retry-after-ms"])
    # the window is 2 s; the store counts in slots of 1 s, and holds an admission up to one slot longer
    assert 0 < wait_ms <= 3000 and int(headers["retry-after"]) == -(-wait_ms // 1000)
    assert "x-should-retry" not in headers  # the SDK must retry by itself
    assert headers["x-ratelimit-limit-requests"] == "2" and headers["x-ratelimit-remaining-requests"] == "0"
    body = err.body
    assert isinstance(body, dict) and body["limit"]["kind"] == "requests" and body["limit"]["window_s"] == 2

    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key_of("backoff"), max_retries=3) as patient:
        started = time.monotonic()
        reply = patient.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=10)  # type: ignore[arg-type]
        waited = time.monotonic() - started
    assert reply.choices[0].message.content
    assert 0.2 < waited < 4.0  # it waited for the window (about retry-after-ms), then got through
    assert delta(before, policy_events(gw), REFUSE_KEY) >= 2  # the refusal above and the SDK's first attempt


def test_anthropic_sdk_gets_our_429_then_backs_off_and_succeeds(gw: Server) -> None:
    with anthropic.Anthropic(base_url=gw.url, api_key=key_of("backoff-a"), max_retries=0) as once:
        for _ in range(2):
            once.messages.create(model=CLAUDE, messages=MESSAGES, max_tokens=10)  # type: ignore[arg-type]
        with pytest.raises(anthropic.RateLimitError) as caught:
            once.messages.create(model=CLAUDE, messages=MESSAGES, max_tokens=10)  # type: ignore[arg-type]
    err = caught.value
    body = err.body
    assert isinstance(body, dict) and body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    assert "key 'backoff-a' allows 2 requests per 2 s" in body["error"]["message"]
    headers = err.response.headers
    assert headers["x-sluicegate-limit"] == "key/requests" and int(headers["retry-after"]) >= 1
    assert headers["anthropic-ratelimit-requests-limit"] == "2"
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"

    with anthropic.Anthropic(base_url=gw.url, api_key=key_of("backoff-a"), max_retries=3) as patient:
        started = time.monotonic()
        reply = patient.messages.create(model=CLAUDE, messages=MESSAGES, max_tokens=10)  # type: ignore[arg-type]
        assert 0.2 < time.monotonic() - started < 4.0
    assert reply.content


def test_limit_headers_in_both_formats_on_successes_streams_and_errors(gw: Server) -> None:
    r = post(gw, "headers")
    assert r.status_code == 200
    # the key's 50 is tighter than the workspace's 100: the key's line is shown
    assert r.headers["x-ratelimit-limit-requests"] == "50"
    assert r.headers["x-ratelimit-remaining-requests"] == "49"
    assert re.fullmatch(r"(59(\.\d+)?s|1m0(\.\d+)?s|1m1s)", r.headers["x-ratelimit-reset-requests"])
    assert r.headers["x-ratelimit-limit-tokens"] == "1000"
    assert r.headers["x-ratelimit-remaining-tokens"] == "998"  # the input estimate, 2 tokens, counted
    assert "x-sluicegate-limit" not in r.headers

    with httpx.stream(
        "POST",
        f"{gw.url}/v1/chat/completions",
        json={"model": MODEL, "messages": MESSAGES, "max_tokens": 10, "stream": True},
        headers={"authorization": f"Bearer {key_of('headers')}"},
    ) as s:
        assert s.status_code == 200 and s.headers["content-type"].startswith("text/event-stream")
        assert s.headers["x-ratelimit-remaining-requests"] == "48"
        assert "data: [DONE]" in s.read().decode()

    a = post(gw, "headers", path="/v1/messages")
    assert a.status_code == 200
    assert a.headers["anthropic-ratelimit-requests-limit"] == "50"
    assert a.headers["anthropic-ratelimit-requests-remaining"] == "47"
    reset = datetime.fromisoformat(a.headers["anthropic-ratelimit-requests-reset"].replace("Z", "+00:00"))
    assert 0 < (reset - datetime.now(UTC)).total_seconds() <= 62.5  # the window, a slot, rounded up
    assert a.headers["anthropic-ratelimit-tokens-limit"] == "1000"
    assert "x-ratelimit-limit-requests" not in a.headers
    assert a.headers.get_list("anthropic-ratelimit-tokens-limit") == ["1000"]
    with httpx.stream(
        "POST",
        f"{gw.url}/v1/messages",
        json={"model": CLAUDE, "messages": MESSAGES, "max_tokens": 10, "stream": True},
        headers={"authorization": f"Bearer {key_of('headers')}", "anthropic-version": "2023-06-01"},
    ) as s:
        assert s.status_code == 200 and s.headers["anthropic-ratelimit-requests-remaining"] == "46"
        assert "event: message_stop" in s.read().decode()

    failed = post(gw, "headers", model="mh/mock-gpt@fault=500")  # the provider's error: headers too
    assert failed.status_code == 500 and failed.headers["x-ratelimit-remaining-requests"] == "45"
    unreachable = post(gw, "headers", model="dead/mock-gpt")  # the gateway's own error: headers too
    assert unreachable.status_code == 502 and unreachable.headers["x-ratelimit-remaining-requests"] == "44"

    # The provider's own limit headers (the mock sends them on every answer) never mix with the
    # gateway's: under a limit, none of them is passed.
    assert failed.headers.get_list("x-ratelimit-remaining-requests") == ["45"]
    assert "anthropic-ratelimit-input-tokens-limit" not in a.headers
    free = post(gw, "free")  # no limit on this key: the provider's limit headers, as it sent them
    assert free.status_code == 200 and free.headers["x-ratelimit-remaining-requests"] == "9999"
    assert free.headers["x-ratelimit-reset-tokens"] == "30ms"


def test_tokens_are_settled_to_the_providers_usage(gw: Server) -> None:
    def remaining(r: httpx.Response, status: int = 200) -> int:
        assert r.status_code == status
        return int(r.headers["x-ratelimit-remaining-tokens"])

    assert remaining(post(gw, "tokens")) == 100 - 2  # reserved: the 2-token estimate
    assert remaining(post(gw, "tokens")) == 100 - 12 - 2  # the first settled at 2 + 10
    with httpx.stream(
        "POST",
        f"{gw.url}/v1/chat/completions",
        json={"model": MODEL, "messages": MESSAGES, "max_tokens": 10, "stream": True},
        headers={"authorization": f"Bearer {key_of('tokens')}"},
    ) as s:
        assert remaining(s) == 100 - 24 - 2  # type: ignore[arg-type]
        s.read()
    assert remaining(post(gw, "tokens", model="mh/mock-gpt@fault=500"), 500) == 100 - 36 - 2
    # the stream settled at its usage, the failed call at 0
    assert remaining(post(gw, "tokens")) == 100 - 36 - 2
    # a request whose estimate alone is above the limit can never fit: no retry-after, and no retry
    before = policy_events(gw)
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key_of("tokens"))  # default retries
    with client, pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x" * 500}])
    headers = caught.value.response.headers
    assert headers["x-should-retry"] == "false" and "retry-after" not in headers
    assert headers["x-sluicegate-limit"] == "key/tokens"
    assert delta(before, policy_events(gw), REFUSE_KEY) == 1  # the SDK did not retry it
    assert remaining(post(gw, "tokens")) == 100 - 48 - 2  # the refusal counted nothing


async def test_requests_in_flight_are_released_on_every_ending(gw: Server) -> None:
    headers = {"authorization": f"Bearer {key_of('flight')}"}
    url = f"{gw.url}/v1/chat/completions"

    async def stream(client: httpx.AsyncClient, *, leave: bool = False) -> int:
        payload = {"model": SLOW, "messages": MESSAGES, "max_tokens": 10, "stream": True}
        async with client.stream("POST", url, json=payload, headers=headers) as r:
            async for line in r.aiter_lines():
                if leave and line.startswith("data: "):
                    break  # the client goes away mid-stream
            return r.status_code

    async def one(client: httpx.AsyncClient, model: str = MODEL) -> int:
        payload = {"model": model, "messages": MESSAGES, "max_tokens": 10}
        return (await client.post(url, json=payload, headers=headers)).status_code

    async with httpx.AsyncClient(timeout=10) as client:
        # two in flight hold both slots: a third is refused, and admitted once they completed
        running = [asyncio.create_task(stream(client)) for _ in range(2)]
        await asyncio.sleep(0.3)
        refused = await client.post(url, json={"model": MODEL, "messages": MESSAGES}, headers=headers)
        assert refused.status_code == 429 and refused.headers["x-sluicegate-limit"] == "key/concurrent"
        assert await asyncio.gather(*running) == [200, 200]
        assert await one(client) == 200
        # upstream errors and an unreachable provider release theirs
        for _ in range(3):
            assert await one(client, "mh/mock-gpt@fault=500") == 500
            assert await one(client, "dead/mock-gpt") == 502
        # clients that leave mid-stream release theirs
        assert await asyncio.gather(stream(client, leave=True), stream(client, leave=True)) == [200, 200]
        statuses = []
        for _ in range(60):  # the gateway notices the disconnects within moments
            statuses.append(await one(client))
            if statuses[-1] == 200:
                break
            await asyncio.sleep(0.05)
        assert statuses[-1] == 200 and set(statuses) <= {200, 429}, statuses
        await asyncio.sleep(0.2)
        # both slots are free again: two slow streams at once
        assert await asyncio.gather(stream(client), stream(client)) == [200, 200]


def test_monitor_mode_counts_and_reports_but_never_refuses(gw: Server) -> None:
    before = policy_events(gw)
    statuses = [post(gw, "monitor").status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    after = policy_events(gw)
    assert delta(before, after, '{action="would_refuse",entity="key",policy="limits"}') == 2
    assert delta(before, after, REFUSE_KEY) == 0
    assert post(gw, "monitor").headers["x-ratelimit-limit-requests"] == "10000"  # only what bites: the provider's


def test_a_providers_429_is_told_apart_from_ours(gw: Server) -> None:
    before = policy_events(gw)
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key_of("upstream"), max_retries=0)
    with client, pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="mh/mock-gpt@fault=429", messages=MESSAGES)  # type: ignore[arg-type]
    err = caught.value
    assert err.code == "rate_limit_exceeded"  # the provider's code, not gateway_rate_limit_exceeded
    assert "x-sluicegate-limit" not in err.response.headers
    assert err.response.headers["retry-after-ms"] == "10"  # the provider's own, passed on
    after = policy_events(gw)
    assert delta(before, after, '{action="upstream_429",entity="provider",policy="limits"}') == 1
    assert delta(before, after, REFUSE_KEY) == 0


@pytest.mark.parametrize(("behaviour", "status"), [("fail_closed", 503), ("fail_open", 200)])
def test_redis_stopped(mock_server: Server, tmp_path: Path, behaviour: str, status: int) -> None:
    """A Redis of the test's own, stopped while the gateway runs: the limits fail closed (503) or
    open (served without limits), as `on_redis_error` says, and say so in an event."""
    port = free_port()
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    limits = (
        f'\n[limits]\nbackend = "redis"\nredis_url = "redis://127.0.0.1:{port}/0"\non_redis_error = "{behaviour}"\n'
    )
    config = gateway_config(tmp_path / "c.toml", mock_server.url, limits + rule("workspace", "ws-test", "requests", 5))
    payload = {"model": MODEL, "messages": MESSAGES, "max_tokens": 10}
    auth = {"authorization": f"Bearer {GATEWAY_KEY}"}
    with spawn([*args, "--dir", str(tmp_path)], port, REAL_CLOCK) as redis, start_gateway(config) as gw:
        ok = httpx.post(f"{gw.url}/v1/chat/completions", json=payload, headers=auth)
        assert ok.status_code == 200 and ok.headers["x-ratelimit-remaining-requests"] == "4"
        stop_process(redis.proc)
        r = httpx.post(f"{gw.url}/v1/chat/completions", json=payload, headers=auth)
        assert r.status_code == status
        if status == 503:
            assert r.json()["error"]["code"] == "limit_store_unavailable"
        else:
            assert r.headers["x-ratelimit-remaining-requests"] == "9999"  # served without limits: the provider's
        events = policy_events(gw)
        assert events['{action="store_unavailable",entity="store",policy="limits"}'] == 1


# ── the control plane: limits in policies, locks, the effective policy, events ────────────────


@pytest.fixture
def control_gw(mock_server: Server, tmp_path: Path) -> Iterator[tuple[Server, dict[str, Any]]]:
    from tests.integration.test_control_gateway import _env, _seed
    from tests.unit.control.pg import MASTER_KEY

    from sluicegate.control.settings import ControlSettings

    settings = ControlSettings(database_url=f"sqlite:///{tmp_path / 'control.db'}", master_key=MASTER_KEY)
    seed = _seed(settings)
    control = f'\n[control]\nenabled = true\ndatabase_url = "{settings.database_url}"\npoll_interval_s = 0.25\n'
    with start_gateway(gateway_config(tmp_path / "gw.toml", mock_server.url, control + NO_PADDING), _env()) as server:
        yield server, seed


def test_limits_set_through_the_admin_api_bite_and_locks_hold(control_gw: tuple[Server, dict[str, Any]]) -> None:
    server, seed = control_gw
    admin = {"authorization": f"Bearer {seed['token']}"}
    org, ws = seed["org"]["id"], seed["ws"]["id"]
    api = f"{server.url}/admin/v1"

    def put(level: str, entity: str, limits: list[dict[str, Any]]) -> httpx.Response:
        return httpx.put(f"{api}/{level}s/{entity}/policy", json={"limits": limits}, headers=admin)

    assert put("org", org, [{"kind": "requests", "limit": 3, "window_s": 60, "locked": True}]).status_code == 200
    higher = put("workspace", ws, [{"kind": "requests", "limit": 10, "window_s": 60}])
    assert higher.status_code == 409 and higher.json()["error"]["code"] == "policy_locked"
    field = higher.json()["error"]["fields"][0]
    assert field["loc"] == "limits.0.limit" and field["locked_by"] == {"level": "org", "id": org}
    monitor = put("workspace", ws, [{"kind": "requests", "limit": 2, "mode": "monitor"}])
    assert monitor.status_code == 409 and monitor.json()["error"]["fields"][0]["loc"] == "limits.0.mode"
    bad = put("workspace", ws, [{"kind": "requests", "limit": 0}])
    assert bad.status_code == 422 and bad.json()["error"]["fields"][0]["loc"].startswith("limits.0.limit")
    # the CLI writes the same document (refused below the lock, then accepted) and reads the effect
    policy = {"limits": [{"kind": "requests", "limit": 9}]}
    refused = cli(
        server.url, seed["token"], "policy", "set", "--level", "workspace", "--id", ws, "--body", json.dumps(policy)
    )
    assert refused.returncode != 0 and "limits.0.limit" in refused.stderr
    policy["limits"][0]["limit"] = 2
    written = cli(
        server.url, seed["token"], "policy", "set", "--level", "workspace", "--id", ws, "--body", json.dumps(policy)
    )
    assert written.returncode == 0, written.stderr
    # and the key watches its tokens without refusing: every call is over 1 token a minute
    assert put("key", seed["key_id"], [{"kind": "tokens", "limit": 1, "mode": "monitor"}]).status_code == 200
    eff = json.loads(cli(server.url, seed["token"], "--json", "policy", "effective", seed["key_id"]).stdout)
    shown = [(x["level"], x["limit"], x["origin"], x["locked"]) for x in eff["limits"]]
    assert shown == [("org", 3, "org", True), ("workspace", 2, "workspace", False), ("key", 1, "key", False)]

    def call() -> httpx.Response:
        payload = {"model": MODEL, "messages": MESSAGES, "max_tokens": 10}
        return httpx.post(
            f"{server.url}/v1/chat/completions", json=payload, headers={"authorization": f"Bearer {seed['key']}"}
        )

    statuses = [call() for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    assert statuses[0].headers["x-ratelimit-limit-requests"] == "2"  # the workspace's is the tighter
    assert statuses[2].headers["x-sluicegate-limit"] == "workspace/requests"

    def refusals() -> list[dict[str, Any]]:
        r = httpx.get(f"{api}/orgs/{org}/events", params={"policy": "limits", "action": "refuse"}, headers=admin)
        return list(r.json()["data"])

    deadline = time.monotonic() + 5
    while not refusals() and time.monotonic() < deadline:
        time.sleep(0.1)
    event = refusals()[0]
    assert event["entity"] == "workspace" and event["detail"]["kind"] == "requests" and event["detail"]["limit"] == 2
    # what monitoring saw: the key's tokens limit would have refused the two calls admitted
    seen = httpx.get(f"{api}/orgs/{org}/monitoring", params={"policy": "limits"}, headers=admin).json()["data"]
    assert [(r["action"], r["entity"], r["key_id"], r["events"]) for r in seen] == [
        ("would_refuse", "key", seed["key_id"], 2)
    ]
