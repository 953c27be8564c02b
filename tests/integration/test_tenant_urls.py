"""Tenant base URLs through running gateways, probed as a workspace admin would: the admin API
refuses a base URL outside the operator's rules (400); a stored one that points at loopback,
link-local or metadata addresses is refused at call time before any connection (by its literal, or
by what its name resolves to); the operator's allowance lets the same URLs through; redirects are
not followed; the operator's static headers never reach a tenant's URL; oversized bodies and
events end the call with a clear error in the caller's format, and the spend reservation is
released or settled, never left behind.

Every upstream here is on loopback: the metadata address is only ever refused, never contacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from tests.conftest import GATEWAY_KEY, Server, gateway_config, start_gateway
from tests.unit.control.pg import MASTER_KEY

from sluicegate.control.audit import Actor
from sluicegate.control.schemas import KeyIn, SecretIn
from sluicegate.control.settings import ControlSettings
from sluicegate.control.store import ControlStore

MESSAGES = [{"role": "user", "content": "hello"}]
OPERATOR_HEADER = "x-operator-static"
OPERATOR_HEADER_VALUE = "operator-static-value-never-for-tenants"
TENANT_KEY = "sk-tenant-own-key-0123456789"
MAX_RESPONSE = 65536
MAX_EVENT = 16384


# ── a raw upstream on loopback ───────────────────────────────────────────────────────────────────


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class RawUpstream:
    """An HTTP/1.1 upstream on loopback (IPv4, and IPv6 when asked) that records every connection
    and request and answers with the bytes `answer(request)` yields, then closes the connection."""

    answer: Callable[[Seen], Iterable[bytes]]
    hosts: tuple[str, ...] = ("127.0.0.1",)
    port: int = 0
    connections: int = 0
    requests: list[Seen] = field(default_factory=list)
    _socks: list[socket.socket] = field(default_factory=list)

    def __post_init__(self) -> None:
        for host in self.hosts:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((host, self.port))
            self.port = sock.getsockname()[1]
            sock.listen(16)
            self._socks.append(sock)
            threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def _accept(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, body = data.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
            while len(body) < int(headers.get("content-length", "0")):
                body += conn.recv(65536)
            seen = Seen(method, path, headers, body)
            self.requests.append(seen)
            for piece in self.answer(seen):
                conn.sendall(piece)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        for sock in self._socks:
            sock.close()


def _response(status: str, body: bytes, content_type: str = "application/json", extra: str = "") -> bytes:
    head = f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n"
    return (head + extra + "connection: close\r\n\r\n").encode() + body


def answer_ok(seen: Seen) -> Iterator[bytes]:
    """A minimal, valid chat completion or message."""
    if seen.path.endswith("/messages"):
        body = {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "mock-claude",
            "content": [{"type": "text", "text": "from the recorder"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 2, "output_tokens": 3},
        }
    else:
        body = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": "mock-gpt",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "from the recorder"}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5},
        }
    yield _response("200 OK", json.dumps(body).encode())


def answer_endless(seen: Seen) -> Iterator[bytes]:
    """A body that never ends: JSON when asked without streaming, one SSE event that never ends when
    asked to stream (at most 64 MB, should the gateway not stop reading)."""
    streamed = json.loads(seen.body).get("stream") is True
    kind = "text/event-stream" if streamed else "application/json"
    yield f"HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\nconnection: close\r\n\r\n".encode()
    yield b'data: {"id": "' if streamed else b'{"id": "'
    for _ in range(4096):
        yield b"a" * 16384


# ── gateways ─────────────────────────────────────────────────────────────────────────────────────


@dataclass
class World:
    recorder: RawUpstream  # the operator's provider `rec`, and where tenant URLs point
    trap: RawUpstream  # where redirects point: must never be reached
    redirector: RawUpstream
    endless: RawUpstream
    seed: dict[str, Any]
    db: str


def _seed(db: str, recorder: RawUpstream, redirector: RawUpstream) -> dict[str, Any]:
    """An org, a workspace, its key and an org admin token, and the workspace's provider secrets with
    base URLs written straight to the database (as an older configuration would have let them in)."""
    settings = ControlSettings(enabled=True, database_url=db, master_key=MASTER_KEY)

    async def run() -> dict[str, Any]:
        store = ControlStore(settings)
        await store.open()
        try:
            actor = Actor("test/seed")
            org = await store.create_org(actor, "acme")
            ws = await store.create_workspace(actor, org["id"], "prod")
            _, key = await store.create_key(actor, ws, KeyIn(name="app"))
            _, token = await store.create_admin_token(actor, org["id"], ws["id"], "ws-admin")
            tenant_urls = {
                "rec": recorder.url,  # an IPv4 loopback literal
                "lo": f"http://localhost:{recorder.port}",  # a name that resolves to loopback
                "v6": f"http://[::1]:{recorder.port}",  # an IPv6 loopback literal
                "md": "http://169.254.169.254",  # the metadata address
                "redir": redirector.url,
            }
            for provider, url in tenant_urls.items():
                spec = SecretIn(value=TENANT_KEY, base_url=url)
                await store.set_secret(actor, "workspace", ws["id"], org["id"], provider, spec)
            return {"org": org["id"], "ws": ws["id"], "key": key, "token": token}
        finally:
            await store.close()

    return asyncio.run(run())


def _config(tmp: Path, mock_url: str, world: World, allowed_cidrs: list[str]) -> Path:
    providers = "".join(
        f'\n[providers.{name}]\nkind = "mock"\nbase_url = "{url}"\n'
        for name, url in (
            ("lo", mock_url),
            ("v6", mock_url),
            ("md", mock_url),
            ("redir", world.redirector.url),
            ("endless", world.endless.url),
        )
    )
    extra = f"""
[providers.rec]
kind = "mock"
base_url = "{world.recorder.url}"
api_key = "operator-provider-key"
headers = {{ {OPERATOR_HEADER} = "{OPERATOR_HEADER_VALUE}" }}
{providers}
[control]
enabled = true
database_url = "{world.db}"
poll_interval_s = 0.25

[spend.price_overrides.mock-gpt]
input_usd_per_mtok = "1"
output_usd_per_mtok = "2"

[spend.price_overrides.mock-claude]
input_usd_per_mtok = "1"
output_usd_per_mtok = "2"
"""
    path = gateway_config(tmp / f"gw{len(allowed_cidrs)}.toml", mock_url, extra)
    upstream = f"""[upstream]
max_response_bytes = {MAX_RESPONSE}
max_event_bytes = {MAX_EVENT}
tenant_base_urls = {{ mock = ["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*", "http://169.254.169.254"] }}
tenant_allowed_cidrs = {json.dumps(allowed_cidrs)}
"""
    path.write_text(path.read_text().replace("[upstream]\n", upstream, 1))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("tenant")
    trap = RawUpstream(answer_ok)
    recorder = RawUpstream(answer_ok, ("127.0.0.1", "::1"))

    def answer_redirect(seen: Seen) -> Iterator[bytes]:
        yield _response("302 Found", b"", extra=f"location: {trap.url}/latest/meta-data/iam\r\n")

    redirector = RawUpstream(answer_redirect)
    endless = RawUpstream(answer_endless)
    db = f"sqlite:///{tmp / 'control.db'}"
    try:
        yield World(recorder, trap, redirector, endless, _seed(db, recorder, redirector), db)
    finally:
        for upstream in (trap, recorder, redirector, endless):
            upstream.close()


@pytest.fixture(scope="module")
def strict(world: World, mock_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A gateway whose operator allows no refused range."""
    config = _config(tmp_path_factory.mktemp("strict"), mock_server.url, world, [])
    with start_gateway(config, {"SLUICEGATE_CONTROL__MASTER_KEY": MASTER_KEY}) as gw:
        yield gw


@pytest.fixture(scope="module")
def allowing(world: World, mock_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A gateway whose operator allows 127.0.0.0/8 for tenant URLs."""
    config = _config(tmp_path_factory.mktemp("allowing"), mock_server.url, world, ["127.0.0.0/8"])
    with start_gateway(config, {"SLUICEGATE_CONTROL__MASTER_KEY": MASTER_KEY}) as gw:
        yield gw


@contextlib.contextmanager
def clients(gw: Server, key: str) -> Iterator[tuple[openai.OpenAI, anthropic.Anthropic]]:
    with (
        openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0) as oa,
        anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0) as an,
    ):
        yield oa, an


def _refused_in_both_formats(gw: Server, key: str, provider: str, code: str) -> None:
    with clients(gw, key) as (oa, an):
        with pytest.raises(openai.InternalServerError) as oe:
            oa.chat.completions.create(model=f"{provider}/mock-gpt", messages=MESSAGES)  # type: ignore[arg-type]
        assert oe.value.status_code == 502 and oe.value.code == code, (provider, oe.value.body)
        assert oe.value.response.headers["x-should-retry"] == "false"
        with pytest.raises(openai.InternalServerError) as oe:
            list(oa.chat.completions.create(model=f"{provider}/mock-gpt", messages=MESSAGES, stream=True))  # type: ignore[arg-type]
        assert oe.value.code == code
        with pytest.raises(anthropic.InternalServerError) as ae:
            an.messages.create(model=f"{provider}/mock-claude", max_tokens=16, messages=MESSAGES)  # type: ignore[arg-type]
        assert ae.value.status_code == 502 and ae.value.body["error"]["type"] == "api_error"  # type: ignore[index]


# ── the admin API ────────────────────────────────────────────────────────────────────────────────


def test_the_admin_api_refuses_base_urls_outside_the_rules(strict: Server, world: World) -> None:
    admin = {"authorization": f"Bearer {world.seed['token']}"}  # a workspace admin's token
    ws = world.seed["ws"]
    refused = [
        ("rec", "http://169.254.169.254/latest/meta-data/iam/security-credentials/"),
        ("rec", "http://[fd00:ec2::254]/latest/meta-data/"),
        ("rec", "http://metadata.google.internal/computeMetadata/v1/"),
        ("rec", f"http://127.0.0.1:{world.recorder.port}"),  # allowed by pattern, but a loopback literal
        ("rec", f"http://[::1]:{world.recorder.port}"),
        ("rec", "http://10.0.0.1:8000/v1"),  # not on the list
        ("rec", "https://evil.example/v1"),
        ("rec", f"http://user:pw@localhost:{world.recorder.port}"),
        ("rec", f"http://localhost:{world.recorder.port}/v1?next=http://169.254.169.254"),
        ("nope", "https://evil.example/v1"),  # no such provider
    ]
    before = httpx.get(f"{strict.url}/admin/v1/workspaces/{ws}/secrets", headers=admin).json()
    for provider, url in refused:
        r = httpx.put(
            f"{strict.url}/admin/v1/workspaces/{ws}/secrets/{provider}",
            json={"value": TENANT_KEY, "base_url": url},
            headers=admin,
        )
        assert r.status_code == 400, (url, r.text)
        error = r.json()["error"]
        assert error["code"] == "base_url_not_allowed" and error["fields"][0]["loc"] == "base_url"
        assert TENANT_KEY not in r.text
    assert httpx.get(f"{strict.url}/admin/v1/workspaces/{ws}/secrets", headers=admin).json() == before
    # a name on the list passes the write-time check (its addresses are checked when it is called)
    ok = httpx.put(
        f"{strict.url}/admin/v1/workspaces/{ws}/secrets/lo",
        json={"value": TENANT_KEY, "base_url": f"http://localhost:{world.recorder.port}"},
        headers=admin,
    )
    assert ok.status_code == 200, ok.text


def test_the_allowance_lets_a_loopback_literal_be_stored(allowing: Server, world: World) -> None:
    admin = {"authorization": f"Bearer {world.seed['token']}"}
    r = httpx.put(
        f"{allowing.url}/admin/v1/workspaces/{world.seed['ws']}/secrets/rec",
        json={"value": TENANT_KEY, "base_url": world.recorder.url},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    r = httpx.put(
        f"{allowing.url}/admin/v1/workspaces/{world.seed['ws']}/secrets/v6",
        json={"value": TENANT_KEY, "base_url": f"http://[::1]:{world.recorder.port}"},
        headers=admin,
    )
    assert r.status_code == 400  # ::1 is not in 127.0.0.0/8


# ── the data plane ───────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("provider", "code"),
    [
        ("rec", "base_url_not_allowed"),  # 127.0.0.1: refused by its literal, at call time
        ("v6", "base_url_not_allowed"),  # [::1]
        ("md", "base_url_not_allowed"),  # 169.254.169.254
        ("lo", "upstream_address_refused"),  # localhost: refused by what it resolves to
    ],
)
def test_stored_tenant_urls_to_refused_addresses_are_never_connected_to(
    strict: Server, world: World, provider: str, code: str
) -> None:
    connections = world.recorder.connections
    _refused_in_both_formats(strict, world.seed["key"], provider, code)
    assert world.recorder.connections == connections


def test_operator_providers_on_loopback_keep_working_with_their_headers(strict: Server, world: World) -> None:
    """The config file's providers are trusted: the mock and the recorder on 127.0.0.1 answer, and the
    operator's key and static headers go to the operator's URL."""
    with clients(strict, world.seed["key"]) as (oa, an):
        assert oa.chat.completions.create(model="mh/mock-gpt", messages=MESSAGES).choices[0].message.content  # type: ignore[arg-type]
        assert an.messages.create(model="mh/mock-claude", max_tokens=16, messages=MESSAGES).content  # type: ignore[arg-type]
    requests = len(world.recorder.requests)
    with clients(strict, GATEWAY_KEY) as (oa, _):  # a config key: its workspace has no secrets
        done = oa.chat.completions.create(model="rec/mock-gpt", messages=MESSAGES)  # type: ignore[arg-type]
    assert done.choices[0].message.content == "from the recorder"
    seen = world.recorder.requests[requests]
    assert seen.headers[OPERATOR_HEADER] == OPERATOR_HEADER_VALUE
    assert seen.headers["authorization"] == "Bearer operator-provider-key"


def test_the_allowance_lets_tenant_urls_through_without_the_operators_headers(allowing: Server, world: World) -> None:
    requests = len(world.recorder.requests)
    with clients(allowing, world.seed["key"]) as (oa, an):
        for provider in ("rec", "lo"):  # 127.0.0.1, and localhost resolved to it
            done = oa.chat.completions.create(model=f"{provider}/mock-gpt", messages=MESSAGES)  # type: ignore[arg-type]
            assert done.choices[0].message.content == "from the recorder"
        message = an.messages.create(model="rec/mock-claude", max_tokens=16, messages=MESSAGES)  # type: ignore[arg-type]
        assert message.content[0].text == "from the recorder"  # type: ignore[union-attr]
    seen = world.recorder.requests[requests:]
    assert [s.path for s in seen] == ["/v1/chat/completions", "/v1/chat/completions", "/v1/messages"]
    for s in seen:
        assert s.headers["authorization"] == f"Bearer {TENANT_KEY}"
        assert OPERATOR_HEADER not in s.headers
        assert OPERATOR_HEADER_VALUE.encode() not in s.body and "operator-provider-key" not in str(s.headers)
    # what the allowance does not cover stays refused
    connections = world.recorder.connections
    _refused_in_both_formats(allowing, world.seed["key"], "v6", "base_url_not_allowed")
    _refused_in_both_formats(allowing, world.seed["key"], "md", "base_url_not_allowed")
    assert world.recorder.connections == connections


@pytest.mark.parametrize("who", ["operator", "tenant"])
def test_redirects_are_not_followed(strict: Server, allowing: Server, world: World, who: str) -> None:
    """The redirector answers 302 to another listener: a 502 `upstream_redirect` in both formats, and
    the other listener is never reached (for the operator's provider and for a tenant's URL)."""
    gw, key = (strict, GATEWAY_KEY) if who == "operator" else (allowing, world.seed["key"])
    asked = len(world.redirector.requests)
    _refused_in_both_formats(gw, key, "redir", "upstream_redirect")
    assert len(world.redirector.requests) == asked + 3
    assert world.trap.connections == 0


# ── size bounds ──────────────────────────────────────────────────────────────────────────────────


def _spend(gw: Server, world: World) -> dict[str, Any]:
    admin = {"authorization": f"Bearer {world.seed['token']}"}
    caps = httpx.get(f"{gw.url}/admin/v1/workspaces/{world.seed['ws']}/spend", headers=admin).json()["caps"]
    assert len(caps) == 1
    return caps[0]  # type: ignore[no-any-return]


def test_oversized_answers_end_the_call_and_release_or_settle_the_reservation(strict: Server, world: World) -> None:
    admin = {"authorization": f"Bearer {world.seed['token']}"}
    policy = {"caps": [{"window": "total", "limit_usd": "100"}]}
    put = httpx.put(f"{strict.url}/admin/v1/workspaces/{world.seed['ws']}/policy", json=policy, headers=admin)
    assert put.status_code == 200
    big = f"chunks=100,chunk_size={MAX_RESPONSE // 50}"  # a 128 KiB reply
    with clients(strict, world.seed["key"]) as (oa, an):
        # before the first byte: a 502 in the caller's format, from a socket or in-process upstream
        for model in (f"mh/mock-gpt@{big}", f"inproc/mock-gpt@{big}", "endless/mock-gpt"):
            with pytest.raises(openai.InternalServerError) as oe:
                oa.chat.completions.create(model=model, messages=MESSAGES, max_tokens=16)  # type: ignore[arg-type]
            assert oe.value.status_code == 502 and oe.value.code == "upstream_response_too_large"
            assert "upstream.max_response_bytes" in oe.value.message
        with pytest.raises(anthropic.InternalServerError, match=r"upstream\.max_response_bytes"):
            an.messages.create(model=f"mh/mock-claude@{big}", max_tokens=16, messages=MESSAGES)  # type: ignore[arg-type]
        after_bodies = _spend(strict, world)
        assert after_bodies["spent_nusd"] == 0 and after_bodies["reserved_nusd"] == 0  # released
        # after the first byte: an error event in the stream's format
        one_big_event = f"chunks=2,chunk_size={MAX_EVENT + 1000}"
        for model in (f"mh/mock-gpt@{one_big_event}", "endless/mock-gpt"):
            with pytest.raises(openai.APIError) as oe:
                list(oa.chat.completions.create(model=model, messages=MESSAGES, max_tokens=16, stream=True))  # type: ignore[arg-type]
            assert not isinstance(oe.value, openai.APIStatusError)  # raised from the in-stream error event
            assert oe.value.code == "upstream_event_too_large", oe.value.body
        with (
            pytest.raises(anthropic.APIStatusError, match=r"upstream\.max_event_bytes"),
            an.messages.stream(model="endless/mock-claude", max_tokens=16, messages=MESSAGES) as stream,  # type: ignore[arg-type]
        ):
            for _ in stream.text_stream:
                pass
    after_streams = _spend(strict, world)
    assert after_streams["reserved_nusd"] == 0  # the streams were settled, nothing is left reserved
    assert after_streams["spent_nusd"] > 0  # output may have gone out: settled at what was reserved
    # the gateway still answers normally
    with clients(strict, world.seed["key"]) as (oa, _):
        assert oa.chat.completions.create(model="mh/mock-gpt", messages=MESSAGES, max_tokens=16).choices  # type: ignore[arg-type]
