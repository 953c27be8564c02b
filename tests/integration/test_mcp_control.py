"""Upstream MCP servers registered by a workspace through the admin API, used through running
gateways with the control plane on (SQLite), the official `mcp` SDK as the agent and a real SDK
server as the upstream.

- The probe: a URL at loopback, link-local or a metadata address is refused when stored (400) unless
  the operator allows the range (`upstream.tenant_allowed_cidrs`), and the metadata address is
  refused even then; a registration that got into the database anyway is refused at call time, by
  its literal (403) or by what its name resolves to (502), before any connection.
- The headers of a registration are the upstream's credentials: sealed, never shown or audited, sent
  upstream instead of the agent's gateway key.
- Tool lists inherited org > workspace: a workspace's deny hides and refuses a tool (naming the
  workspace), every decision is a policy event, and an org's locked deny cannot be allowed below it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from tests.conftest import PYTHON, Server, free_port, gateway_config, spawn, start_gateway
from tests.integration.test_control_cli import admin, table
from tests.unit.control.pg import MASTER_KEY

from sluicegate.control.audit import Actor
from sluicegate.control.models import workspaces
from sluicegate.control.schemas import KeyIn, McpOAuthIn, McpServerIn
from sluicegate.control.settings import ControlSettings
from sluicegate.control.store import ControlStore

WS_CREDENTIAL = "Bearer workspace-credential-for-tools-0123"
pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def upstream() -> Iterator[Server]:
    port = free_port()
    with spawn([PYTHON, "-m", "tests.integration.mcp_upstream", str(port)], port) as server:
        yield server


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory, upstream: Server) -> dict[str, Any]:
    db = f"sqlite:///{tmp_path_factory.mktemp('mcpctl') / 'control.db'}"
    settings = ControlSettings(enabled=True, database_url=db, master_key=MASTER_KEY)

    async def run() -> dict[str, Any]:
        store = ControlStore(settings)
        await store.open()
        try:
            actor = Actor("test/seed")
            org = await store.create_org(actor, "acme")
            ws = await store.create_workspace(actor, org["id"], "prod")
            _, key = await store.create_key(actor, ws, KeyIn(name="agent"))
            _, token = await store.create_admin_token(actor, org["id"], None, "org-admin")
            # Written straight to the database, as an older configuration would have let them in.
            for name, url in (
                ("raw-loopback", f"{upstream.url}/mcp"),
                ("raw-name", f"http://localhost:{upstream.port}/mcp"),
            ):
                await store.set_mcp_server(actor, ws, name, McpServerIn(url=url))
            return {"db": db, "org": org["id"], "ws": ws["id"], "key": key, "token": token}
        finally:
            await store.close()

    return asyncio.run(run())


def _gateway(
    tmp: Path, mock_url: str, seed: dict[str, Any], allowed: list[str]
) -> contextlib.AbstractContextManager[Server]:
    extra = f'\n[control]\nenabled = true\ndatabase_url = "{seed["db"]}"\npoll_interval_s = 0.25\n'
    path = gateway_config(tmp / "gw.toml", mock_url, extra)
    path.write_text(
        path.read_text().replace("[upstream]\n", f"[upstream]\ntenant_allowed_cidrs = {json.dumps(allowed)}\n", 1)
    )
    return start_gateway(path, {"SLUICEGATE_CONTROL__MASTER_KEY": MASTER_KEY})


@pytest.fixture(scope="module")
def strict(seed: dict[str, Any], mock_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with _gateway(tmp_path_factory.mktemp("strict"), mock_server.url, seed, []) as gw:
        yield gw


@pytest.fixture(scope="module")
def allowing(seed: dict[str, Any], mock_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with _gateway(tmp_path_factory.mktemp("allowing"), mock_server.url, seed, ["127.0.0.0/8"]) as gw:
        yield gw


def _admin(gw: Server, seed: dict[str, Any], method: str, path: str, body: Any = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {seed['token']}"}
    return httpx.request(method, f"{gw.url}/admin/v1{path}", json=body, headers=headers, timeout=10)


@contextlib.asynccontextmanager
async def session(url: str, key: str) -> AsyncIterator[ClientSession]:
    client = httpx2.AsyncClient(headers={"authorization": f"Bearer {key}"}, timeout=20)
    async with (
        client,
        streamable_http_client(url, http_client=client) as (read, write),
        ClientSession(read, write) as s,
    ):
        await s.initialize()
        yield s


def _wait_for(check: Any, timeout: float = 3.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


# ── the probe ─────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1:{port}/mcp", "loopback"),
        ("http://169.254.169.254/mcp", "metadata"),
        ("http://[::1]:{port}/mcp", "loopback"),
        ("http://10.1.2.3/mcp", "private"),
    ],
)
def test_an_internal_address_is_refused_unless_the_operator_allows_it(
    strict: Server, allowing: Server, seed: dict[str, Any], upstream: Server, url: str, kind: str
) -> None:
    url = url.format(port=upstream.port)
    path = f"/workspaces/{seed['ws']}/mcp-servers/probe"
    refused = _admin(strict, seed, "PUT", path, {"url": url})
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["code"] == "mcp_url_not_allowed"
    assert f"points at a {kind} address" in refused.json()["error"]["message"]
    allowed_here = _admin(allowing, seed, "PUT", path, {"url": url})
    # 127.0.0.0/8 is allowed there; the metadata address, ::1 and 10/8 are not
    assert allowed_here.status_code == (200 if kind == "loopback" and "127.0.0.1" in url else 400), allowed_here.text
    _admin(allowing, seed, "DELETE", path)


def test_a_metadata_name_is_refused(strict: Server, seed: dict[str, Any]) -> None:
    answer = _admin(
        strict,
        seed,
        "PUT",
        f"/workspaces/{seed['ws']}/mcp-servers/probe",
        {"url": "http://metadata.google.internal/mcp"},
    )
    assert answer.status_code == 400 and "names a cloud metadata service" in answer.json()["error"]["message"]


async def test_a_stored_internal_url_is_refused_at_call_time(strict: Server, seed: dict[str, Any]) -> None:
    head = {"authorization": f"Bearer {seed['key']}", "accept": "application/json, text/event-stream"}
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    async with httpx.AsyncClient(timeout=10) as client:
        literal = await client.post(f"{strict.url}/mcp/raw-loopback", json=ping, headers=head)
        assert literal.status_code == 403 and "points at a loopback address" in literal.json()["error"]["message"]
        name = await client.post(f"{strict.url}/mcp/raw-name", json=ping, headers=head)
        assert name.status_code == 502 and "could not be reached" in name.json()["error"]["message"]


# ── registration, credentials and tool lists ──────────────────────────────────────────────────


async def test_a_registered_server_gets_its_own_credentials_and_the_workspace_tool_lists(
    allowing: Server, seed: dict[str, Any], upstream: Server
) -> None:
    ws, org = seed["ws"], seed["org"]
    body = {"url": f"{upstream.url}/mcp", "headers": {"Authorization": WS_CREDENTIAL}, "description": "team tools"}
    put = _admin(allowing, seed, "PUT", f"/workspaces/{ws}/mcp-servers/tools", body)
    assert put.status_code == 200, put.text
    shown = _admin(allowing, seed, "GET", f"/workspaces/{ws}/mcp-servers").json()["data"]
    tools_row = next(r for r in shown if r["name"] == "tools")
    assert tools_row["header_names"] == ["Authorization"] and tools_row["fingerprint"].startswith("fp_")
    assert WS_CREDENTIAL not in json.dumps(shown)
    audit = _admin(allowing, seed, "GET", f"/orgs/{org}/audit").json()["data"]
    row = next(r for r in audit if r["action"] == "mcp_server.set" and r["target"].endswith("/tools"))
    assert row["diff"]["after"]["headers"] == "set" and WS_CREDENTIAL not in json.dumps(audit)
    policy = {"tools": {"deny": ["tools/echo"]}}
    assert _admin(allowing, seed, "PUT", f"/workspaces/{ws}/policy", policy).status_code == 200
    url = f"{allowing.url}/mcp/tools"

    async def listed() -> set[str]:
        async with session(url, seed["key"]) as s:
            return {t.name for t in (await s.list_tools()).tools}

    for _ in range(15):  # the view reloads within a poll
        if "echo" not in await listed():
            break
        await asyncio.sleep(0.2)
    async with session(url, seed["key"]) as s:
        assert {t.name for t in (await s.list_tools()).tools} == {
            "weather",
            "count",
            "leak",
            "ssn",
            "delete_everything",
            "seen_headers",
            "interrupted",
        }
        with pytest.raises(MCPError) as refused:
            await s.call_tool("echo", {"text": "hi"})
        assert f"workspace '{ws}' denies 'tools/echo'" in str(refused.value)
        seen = await s.call_tool("seen_headers", {})
    assert seen.structured_content == {
        "authorization": WS_CREDENTIAL,
        "x-api-key": None,
        "x-team": None,
        "cookie": None,
    }

    def events() -> list[dict[str, Any]]:
        got = _admin(allowing, seed, "GET", f"/orgs/{org}/events").json()["data"]
        return [e for e in got if e["policy"] == "tools"]

    found = _wait_for(lambda: {e["action"] for e in events()} >= {"hide", "refuse"})
    assert found, events()
    refusal = next(e for e in events() if e["action"] == "refuse")
    assert refusal["entity"] == "workspace" and refusal["detail"]["tool"] == "echo"
    assert refusal["detail"]["rule"] == {"level": "workspace", "id": ws, "list": "deny", "pattern": "tools/echo"}


def test_an_org_locked_deny_cannot_be_allowed_below(allowing: Server, seed: dict[str, Any]) -> None:
    org, ws = seed["org"], seed["ws"]
    locked = {"tools": {"deny": ["*/delete_*"], "deny_locked": True}}
    assert _admin(allowing, seed, "PUT", f"/orgs/{org}/policy", locked).status_code == 200
    try:
        weakened = _admin(
            allowing, seed, "PUT", f"/workspaces/{ws}/policy", {"tools": {"allow": ["*/delete_everything"]}}
        )
        assert weakened.status_code == 409, weakened.text
        [field] = weakened.json()["error"]["fields"]
        assert field["loc"] == "tools.allow.0" and field["locked_by"] == {"level": "org", "id": org}
        effective = _admin(allowing, seed, "GET", f"/workspaces/{ws}/policy")
        assert effective.status_code == 200
    finally:
        _admin(allowing, seed, "DELETE", f"/orgs/{org}/policy")


def test_the_cli_registers_lists_and_removes_a_server(allowing: Server, seed: dict[str, Any], upstream: Server) -> None:
    ws = seed["ws"]
    headers = json.dumps({"Authorization": WS_CREDENTIAL})
    url = f"{upstream.url}/mcp"
    done = admin(
        allowing.url,
        seed["token"],
        "mcp-server",
        "set",
        "--workspace",
        ws,
        "cli-tools",
        "--server-url",
        url,
        "--headers-stdin",
        stdin=headers,
    )
    assert done.returncode == 0, done.stderr
    listed = admin(allowing.url, seed["token"], "mcp-server", "list", "--workspace", ws)
    rows = {r["name"]: r for r in table(listed.stdout)}
    assert rows["cli-tools"]["url"] == url and "Authorization" in rows["cli-tools"]["header_names"]
    assert WS_CREDENTIAL not in done.stdout + listed.stdout + done.stderr
    bad = admin(
        allowing.url,
        seed["token"],
        "mcp-server",
        "set",
        "--workspace",
        ws,
        "cli-tools",
        "--server-url",
        url,
        "--headers-stdin",
        stdin="[1]",
    )
    assert bad.returncode == 2 and "JSON object of strings" in bad.stderr
    assert admin(allowing.url, seed["token"], "mcp-server", "delete", "--workspace", ws, "cli-tools").returncode == 0
    listed = admin(allowing.url, seed["token"], "mcp-server", "list", "--workspace", ws)
    assert "cli-tools" not in {r["name"] for r in table(listed.stdout)}


# ── the console's view of a server's tools ────────────────────────────────────────────────────


@pytest.fixture(scope="module")
def guarded_upstream() -> Iterator[Server]:
    """The SDK's server, answering 401 to a request without the workspace's credential."""
    port = free_port()
    args = [PYTHON, "-m", "tests.integration.mcp_upstream", str(port), "--require-authorization", WS_CREDENTIAL]
    with spawn(args, port) as server:
        yield server


def test_a_servers_tools_are_listed_with_the_workspace_access_prices_and_limits(
    allowing: Server, strict: Server, seed: dict[str, Any], guarded_upstream: Server
) -> None:
    ws = seed["ws"]
    body = {
        "url": f"{guarded_upstream.url}/mcp",
        "headers": {"Authorization": WS_CREDENTIAL},
        "price_usd": "0.001",
        "tool_price_usd": {"weather": "0.004"},
    }
    assert _admin(allowing, seed, "PUT", f"/workspaces/{ws}/mcp-servers/listed", body).status_code == 200
    policy = {
        "tools": {"deny": ["listed/delete_*"]},
        "limits": [{"kind": "requests", "limit": 5, "window_s": 60, "tools": ["listed/weather"]}],
    }
    assert _admin(allowing, seed, "PUT", f"/workspaces/{ws}/policy", policy).status_code == 200
    try:
        audited = len(_admin(allowing, seed, "GET", f"/orgs/{seed['org']}/audit").json()["data"])
        answer = _admin(allowing, seed, "GET", f"/workspaces/{ws}/mcp-servers/listed/tools")
        assert answer.status_code == 200, answer.text
        shown = answer.json()
        assert shown["server"] == "listed" and WS_CREDENTIAL not in answer.text
        tools = {t["name"]: t for t in shown["data"]}
        assert set(tools) == {
            "echo",
            "weather",
            "count",
            "leak",
            "ssn",
            "delete_everything",
            "seen_headers",
            "interrupted",
        }
        assert tools["echo"]["access"] == "allowed" and tools["echo"]["price_usd"] == "0.001"
        assert tools["echo"]["description"] == "Say `text` back." and tools["echo"]["limits"] == []
        denied = tools["delete_everything"]
        assert denied["access"] == "denied" and f"workspace '{ws}' denies 'listed/delete_*'" in denied["reason"]
        assert denied["rule"] == {"level": "workspace", "id": ws, "list": "deny", "pattern": "listed/delete_*"}
        weather = tools["weather"]
        assert weather["price_usd"] == "0.004"
        assert [(x["level"], x["kind"], x["limit"], x["window_s"]) for x in weather["limits"]] == [
            ("workspace", "requests", 5, 60)
        ]
        # The CLI shows the same.
        listed = admin(allowing.url, seed["token"], "mcp-server", "tools", "--workspace", ws, "listed")
        assert listed.returncode == 0, listed.stderr
        rows = {r["name"]: r for r in table(listed.stdout)}
        assert rows["delete_everything"]["access"] == "denied" and rows["weather"]["price_usd"] == "0.004"
        # A read: nothing audited.
        assert len(_admin(allowing, seed, "GET", f"/orgs/{seed['org']}/audit").json()["data"]) == audited

        # Where the egress rules refuse the URL, the gateway does not ask: a 502 naming the server.
        def asked_there() -> httpx.Response | None:  # that gateway's view reloads within a poll
            answer = _admin(strict, seed, "GET", f"/workspaces/{ws}/mcp-servers/listed/tools")
            return answer if answer.status_code != 404 else None

        refused = _wait_for(asked_there)
        assert (
            refused is not None
            and refused.status_code == 502
            and refused.json()["error"]["code"] == "mcp_upstream_failed"
        )
        assert "'listed'" in refused.json()["error"]["message"] and "loopback" in refused.json()["error"]["message"]
        missing = _admin(allowing, seed, "GET", f"/workspaces/{ws}/mcp-servers/nothing-here/tools")
        assert missing.status_code == 404
        # Without the credential the server refuses, and the answer says so.
        bare = {"url": f"{guarded_upstream.url}/mcp"}
        assert _admin(allowing, seed, "PUT", f"/workspaces/{ws}/mcp-servers/bare", bare).status_code == 200
        failed = _admin(allowing, seed, "GET", f"/workspaces/{ws}/mcp-servers/bare/tools")
        assert failed.status_code == 502 and "'bare' answered HTTP 401" in failed.json()["error"]["message"]
    finally:
        _admin(allowing, seed, "DELETE", f"/workspaces/{ws}/policy")
        _admin(allowing, seed, "DELETE", f"/workspaces/{ws}/mcp-servers/listed")
        _admin(allowing, seed, "DELETE", f"/workspaces/{ws}/mcp-servers/bare")


async def test_tool_call_events_are_found_by_their_route(
    allowing: Server, seed: dict[str, Any], upstream: Server
) -> None:
    ws, org = seed["ws"], seed["org"]
    body = {"url": f"{upstream.url}/mcp"}
    assert _admin(allowing, seed, "PUT", f"/workspaces/{ws}/mcp-servers/routed", body).status_code == 200
    try:
        async with session(f"{allowing.url}/mcp/routed", seed["key"]) as s:
            await s.call_tool("leak", {})  # its secret redacted: a redaction event of a tool call

        def mcp_events() -> list[dict[str, Any]]:
            return _admin(allowing, seed, "GET", f"/orgs/{org}/events?route=mcp").json()["data"]

        found = _wait_for(lambda: [e for e in mcp_events() if e["policy"] == "redaction"])
        assert found and all(e["route"] == "mcp" for e in mcp_events())
        assert found[0]["detail"]["server"] == "routed" and found[0]["detail"]["tool"] == "leak"
        others = _admin(allowing, seed, "GET", f"/orgs/{org}/events?route=openai_chat").json()["data"]
        assert all(e["route"] == "openai_chat" for e in others)
        listed = admin(allowing.url, seed["token"], "events", "list", "--org", org, "--route", "mcp")
        assert listed.returncode == 0, listed.stderr
        assert {r["route"] for r in table(listed.stdout)} == {"mcp"}
    finally:
        _admin(allowing, seed, "DELETE", f"/workspaces/{ws}/mcp-servers/routed")


# ── OAuth client credentials of a registered server ───────────────────────────────────────────

OAUTH_SECRET = "ws-client-secret-" + "k" * 16


@pytest.fixture(scope="module")
def oauth_upstream() -> Iterator[Server]:
    """The SDK's server behind a token endpoint of its own (`mcp_upstream.py --oauth`)."""
    port = free_port()
    args = [PYTHON, "-m", "tests.integration.mcp_upstream", str(port), "--oauth", f"ws-client:{OAUTH_SECRET}"]
    with spawn(args, port) as server:
        yield server


def _token_state(server: Server) -> dict[str, Any]:
    return dict(httpx.get(f"{server.url}/oauth/state").json())


async def test_a_registered_server_with_oauth_client_credentials(
    allowing: Server, strict: Server, seed: dict[str, Any], oauth_upstream: Server
) -> None:
    ws, org = seed["ws"], seed["org"]
    path = f"/workspaces/{ws}/mcp-servers/crm"
    oauth = {
        "token_url": f"{oauth_upstream.url}/oauth/token",
        "client_id": "ws-client",
        "scope": "tools",
        "client_secret": OAUTH_SECRET,
    }
    # The token URL is the tenant's, checked as its server's URL is.
    refused = _admin(strict, seed, "PUT", path, {"url": "https://tools.example/mcp", "oauth": oauth})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "mcp_url_not_allowed"
    [field] = refused.json()["error"]["fields"]
    assert field["loc"] == "oauth.token_url" and "loopback" in field["msg"]
    metadata = {**oauth, "token_url": "http://169.254.169.254/token"}
    refused = _admin(allowing, seed, "PUT", path, {"url": f"{oauth_upstream.url}/mcp", "oauth": metadata})
    assert refused.status_code == 400 and refused.json()["error"]["fields"][0]["loc"] == "oauth.token_url"
    put = _admin(allowing, seed, "PUT", path, {"url": f"{oauth_upstream.url}/mcp", "oauth": oauth})
    assert put.status_code == 200, put.text
    try:
        assert put.json()["oauth"] == {"token_url": oauth["token_url"], "client_id": "ws-client", "scope": "tools"}
        shown = _admin(allowing, seed, "GET", f"/workspaces/{ws}/mcp-servers").text
        audit = _admin(allowing, seed, "GET", f"/orgs/{org}/audit").json()["data"]
        row = next(r for r in audit if r["action"] == "mcp_server.set" and r["target"].endswith("/crm"))
        assert row["diff"]["after"]["oauth"]["client_secret"] == "set"
        assert OAUTH_SECRET not in shown + json.dumps(audit)
        before = _token_state(oauth_upstream)

        async def call() -> Any:
            async with session(f"{allowing.url}/mcp/crm", seed["key"]) as s:
                return await s.call_tool("echo", {"text": "with a token"})

        said = None
        for _ in range(15):  # the view reloads within a poll
            try:
                said = await call()
                break
            except Exception:
                await asyncio.sleep(0.2)
        assert said is not None and not said.is_error
        after = _token_state(oauth_upstream)
        assert after["issued"] - before["issued"] == 1 and after["scopes"][-1] == "tools"
        # The gateway's own listing goes the same way.
        tools = _admin(allowing, seed, "GET", f"{path}/tools")
        assert tools.status_code == 200 and "echo" in {t["name"] for t in tools.json()["data"]}
    finally:
        _admin(allowing, seed, "DELETE", path)


async def test_a_stored_internal_token_url_is_refused_at_call_time(
    allowing: Server, seed: dict[str, Any], upstream: Server
) -> None:
    settings = ControlSettings(enabled=True, database_url=seed["db"], master_key=MASTER_KEY)
    store = ControlStore(settings)
    await store.open()
    try:
        ws = await store.one(workspaces, seed["ws"])
        assert ws is not None
        oauth = McpOAuthIn(token_url="http://10.1.2.3/token", client_id="c", client_secret="s" * 8)
        spec = McpServerIn(url=f"{upstream.url}/mcp", oauth=oauth)
        await store.set_mcp_server(Actor("test/raw"), ws, "raw-token", spec)  # as an older release let it in
    finally:
        await store.close()
    head = {"authorization": f"Bearer {seed['key']}", "accept": "application/json, text/event-stream"}
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    async with httpx.AsyncClient(timeout=10) as client:
        answer = None
        for _ in range(15):
            answer = await client.post(f"{allowing.url}/mcp/raw-token", json=ping, headers=head)
            if answer.status_code != 404:
                break
            await asyncio.sleep(0.2)
        assert answer is not None and answer.status_code == 403, answer.text if answer else ""
        message = answer.json()["error"]["message"]
        assert "token URL registered for the MCP server 'raw-token' points at a private address" in message
    _admin(allowing, seed, "DELETE", f"/workspaces/{seed['ws']}/mcp-servers/raw-token")


def test_the_cli_registers_a_server_with_oauth_client_credentials(
    allowing: Server, seed: dict[str, Any], oauth_upstream: Server
) -> None:
    ws, url = seed["ws"], f"{oauth_upstream.url}/mcp"
    args = ("mcp-server", "set", "--workspace", ws, "cli-oauth", "--server-url", url)
    oauth = ("--token-url", f"{oauth_upstream.url}/oauth/token", "--client-id", "ws-client", "--scope", "tools")
    missing = admin(allowing.url, seed["token"], *args, *oauth)
    assert missing.returncode == 2 and "SLUICEGATE_MCP_CLIENT_SECRET" in missing.stderr
    done = admin(allowing.url, seed["token"], *args, *oauth, env={"SLUICEGATE_MCP_CLIENT_SECRET": OAUTH_SECRET})
    assert done.returncode == 0, done.stderr
    try:
        listed = admin(allowing.url, seed["token"], "--json", "mcp-server", "list", "--workspace", ws)
        row = next(r for r in json.loads(listed.stdout)["data"] if r["name"] == "cli-oauth")
        assert row["oauth"] == {
            "token_url": f"{oauth_upstream.url}/oauth/token",
            "client_id": "ws-client",
            "scope": "tools",
        }
        assert OAUTH_SECRET not in done.stdout + done.stderr + listed.stdout
        tools = admin(allowing.url, seed["token"], "mcp-server", "tools", "--workspace", ws, "cli-oauth")
        assert tools.returncode == 0, tools.stderr
        assert "echo" in {r["name"] for r in table(tools.stdout)}  # a token fetched with those credentials
    finally:
        admin(allowing.url, seed["token"], "mcp-server", "delete", "--workspace", ws, "cli-oauth")


async def test_the_aggregated_endpoint_has_the_workspaces_registered_servers(
    allowing: Server, seed: dict[str, Any], guarded_upstream: Server
) -> None:
    ws = seed["ws"]
    body = {"url": f"{guarded_upstream.url}/mcp", "headers": {"Authorization": WS_CREDENTIAL}}
    assert _admin(allowing, seed, "PUT", f"/workspaces/{ws}/mcp-servers/team", body).status_code == 200
    assert (
        _admin(allowing, seed, "PUT", f"/workspaces/{ws}/policy", {"tools": {"deny": ["team/leak"]}}).status_code == 200
    )
    try:
        names: set[str] = set()
        for _ in range(15):  # the view reloads within a poll
            async with session(f"{allowing.url}/mcp", seed["key"]) as s:
                names = {t.name for t in (await s.list_tools()).tools}
            if "team__echo" in names and "team__leak" not in names:
                break
            await asyncio.sleep(0.2)
        assert "team__echo" in names and "team__leak" not in names
        async with session(f"{allowing.url}/mcp", seed["key"]) as s:
            seen = await s.call_tool("team__seen_headers", {})
        assert seen.structured_content is not None and seen.structured_content["authorization"] == WS_CREDENTIAL
    finally:
        _admin(allowing, seed, "DELETE", f"/workspaces/{ws}/policy")
        _admin(allowing, seed, "DELETE", f"/workspaces/{ws}/mcp-servers/team")
