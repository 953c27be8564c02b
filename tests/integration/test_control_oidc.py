"""Single sign-on to the admin console against a real OpenID provider.

The provider is panva's `oidc-provider` (OpenID Certified), pinned in tests/fixtures/oidc and
started here on a free port; its development login form is submitted with plain HTTP. The admin API
runs in-process (httpx's ASGI transport, as a browser at http://sg.test would reach it) on a fresh
SQLite control database; the API reaches the provider over real sockets for discovery, the JWKS and
the code exchange.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
import orjson
import pytest
from tests.conftest import ROOT, Server, free_port, spawn

from sluicegate.control.admin_api import AdminApi
from sluicegate.control.audit import Actor
from sluicegate.control.crypto import generate_master_key
from sluicegate.control.oidc import OidcSettings, SignInError, Sso
from sluicegate.control.settings import ControlSettings
from sluicegate.control.store import ControlStore
from sluicegate.forwarded import TrustedProxies

FIXTURE = ROOT / "tests" / "fixtures" / "oidc"
BASE = "http://sg.test"
CALLBACK = BASE + "/admin/ui/sso/callback"
CLIENT_SECRET = "provider-client-secret-" + "x" * 24
ACTOR = Actor("test/setup")

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


@pytest.fixture(scope="module")
def provider() -> Iterator[Server]:
    if not (FIXTURE / "node_modules" / "oidc-provider").is_dir():  # `make test-tools` does this
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=FIXTURE, check=True, capture_output=True)
    port = free_port()
    env = {"PORT": str(port), "ISSUER": f"http://127.0.0.1:{port}", "REDIRECT_URI": CALLBACK}
    env["CLIENT_SECRET"] = CLIENT_SECRET
    with spawn(["node", str(FIXTURE / "provider.js")], port, env) as server:
        yield server


@dataclass
class World:
    api: AdminApi
    store: ControlStore
    org_id: str
    workspace_id: str
    issuer: str

    def client(self, peer: str = "127.0.0.1") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.api, client=(peer, 50000))
        return httpx.AsyncClient(transport=transport, base_url=BASE)

    async def audit(self) -> list[dict[str, Any]]:
        await self.api.auth_failures.settle()
        return await self.store.audit_rows(None, 0, 10_000)


def oidc_settings(issuer: str, org_id: str, workspace_id: str, **extra: Any) -> OidcSettings:
    rules = [
        {"claim": "groups", "value": "platform-admins", "org_id": org_id, "role": "admin"},
        {"claim": "groups", "value": "platform-viewers", "org_id": org_id, "workspace_id": workspace_id},
    ]
    rules[1]["role"] = "viewer"
    spec = {"issuer": issuer, "client_id": "sluicegate", "client_secret": CLIENT_SECRET, "redirect_base_url": BASE}
    spec |= {"scopes": ["openid", "email", "groups"], "rules": rules}
    return OidcSettings.model_validate(spec | extra)


async def make_world(provider: Server, tmp_path: Path, **extra: Any) -> AsyncIterator[World]:
    url = f"sqlite:///{tmp_path / 'control.db'}"
    plain = ControlSettings(enabled=True, database_url=url, master_key=generate_master_key())
    setup = ControlStore(plain)
    await setup.open()
    org = await setup.create_org(ACTOR, "acme")
    ws = await setup.create_workspace(ACTOR, org["id"], "prod")
    await setup.close()
    settings = plain.model_copy(update={"oidc": oidc_settings(provider.url, org["id"], ws["id"], **extra)})
    store = ControlStore(settings)
    await store.open()
    api = AdminApi(store, trusted_proxies=TrustedProxies(["127.0.0.1"]))
    try:
        yield World(api, store, org["id"], ws["id"], provider.url)
    finally:
        await api.close()
        await store.close()


@pytest.fixture
async def world(provider: Server, tmp_path: Path) -> AsyncIterator[World]:
    async for w in make_world(provider, tmp_path):
        yield w


_INPUT = re.compile(r"<input[^>]*>", re.I)


def _form(html: str, page_url: str) -> tuple[str, dict[str, str]]:
    """The action and the named inputs' values of the page's first form."""
    action = re.search(r'<form[^>]*action="([^"]*)"', html, re.I)
    assert action is not None, html[:500]
    fields = {}
    for tag in _INPUT.findall(html):
        name = re.search(r'name="([^"]*)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name:
            fields[name.group(1)] = unescape(value.group(1)) if value else ""
    return urljoin(page_url, unescape(action.group(1))), fields


async def at_provider(authorize_url: str, user: str) -> str:
    """Sign in as `user` at the provider's login form, following its redirects by hand: the URL of
    the redirect back to the gateway's callback (not followed)."""
    async with httpx.AsyncClient(timeout=10) as browser:
        url, method, data = authorize_url, "GET", None
        for _ in range(12):
            resp = await browser.request(method, url, data=data)
            if resp.is_redirect:
                url, method, data = urljoin(url, resp.headers["location"]), "GET", None
                if url.startswith(CALLBACK):
                    return url
                continue
            assert resp.status_code == 200, (resp.status_code, resp.text[:300])
            url, fields = _form(resp.text, url)
            if "login" in fields:
                fields |= {"login": user, "password": "any"}
            method, data = "POST", fields
    raise AssertionError("the provider never redirected back")


async def sign_in(client: httpx.AsyncClient, user: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """The whole sign-in: the gateway's login redirect, the provider's form, the callback."""
    start = await client.get("/admin/ui/sso/login", headers=headers)
    assert start.status_code == 302, start.text
    back = await at_provider(start.headers["location"], user)
    return await client.get(back.removeprefix(BASE), headers=headers)


def csrf_headers(token: str, origin: str = BASE) -> dict[str, str]:
    return {"x-csrf-token": token, "origin": origin}


async def test_sign_in_use_and_sign_out(world: World) -> None:
    async with world.client() as client:
        start = await client.get("/admin/ui/sso/login")
        query = parse_qs(urlsplit(start.headers["location"]).query)
        assert query["code_challenge_method"] == ["S256"] and query["state"][0] and query["nonce"][0]
        assert query["client_id"] == ["sluicegate"] and query["redirect_uri"] == [CALLBACK]
        back = await at_provider(start.headers["location"], "alice")
        done = await client.get(back.removeprefix(BASE))
        assert done.status_code == 302 and done.headers["location"] == "/admin/ui"
        cookie = next(c for c in done.headers.get_list("set-cookie") if c.startswith("sg_session="))
        flags = {f.strip().lower() for f in cookie.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/admin"} <= flags
        assert "secure" not in flags  # plain HTTP, no proxy saying otherwise
        session_id = client.cookies["sg_session"]
        assert session_id not in repr(world.api.sso.sessions if world.api.sso else {})  # only its hash is kept

        me = (await client.get("/admin/ui/sso/session")).json()
        subject = f"sso/{urlsplit(world.issuer).netloc}/alice"
        assert me["subject"] == subject and me["org_id"] == world.org_id and me["role"] == "admin"
        assert me["workspace_id"] is None and me["email"] == "alice@example.test"
        csrf = me["csrf_token"]

        who = await client.get("/admin/v1/whoami")
        assert who.status_code == 200 and who.json()["org_id"] == world.org_id
        assert (await client.get(f"/admin/v1/orgs/{world.org_id}/workspaces")).status_code == 200

        path = f"/admin/v1/orgs/{world.org_id}/workspaces"
        no_header = await client.post(path, json={"name": "staging"}, headers={"origin": BASE})
        assert no_header.status_code == 403 and no_header.json()["error"]["code"] == "csrf"
        wrong = await client.post(path, json={"name": "staging"}, headers=csrf_headers("x" * 43))
        assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "csrf"
        foreign = await client.post(path, json={"name": "staging"}, headers=csrf_headers(csrf, "http://evil.test"))
        assert foreign.status_code == 403 and foreign.json()["error"]["code"] == "csrf"
        no_origin = await client.post(path, json={"name": "staging"}, headers={"x-csrf-token": csrf})
        assert no_origin.status_code == 403
        by_referer = {"x-csrf-token": csrf, "referer": BASE + "/admin/ui"}
        made = await client.post(path, json={"name": "staging"}, headers=by_referer)
        assert made.status_code == 201, made.text
        made = await client.post(path, json={"name": "qa"}, headers=csrf_headers(csrf))
        assert made.status_code == 201, made.text

        rows = await world.audit()
        created = [r for r in rows if r["action"].startswith("workspace.")]
        assert [r["actor"] for r in created][-2:] == [subject, subject]
        assert any(r["action"] == "admin.sso_signed_in" and r["actor"] == subject for r in rows)
        text = orjson.dumps(rows).decode()
        assert session_id not in text and csrf not in text and CLIENT_SECRET not in text

        refused = await client.post("/admin/ui/sso/logout", headers={"origin": BASE})
        assert refused.status_code == 403  # logging out is a change too
        out = await client.post("/admin/ui/sso/logout", headers=csrf_headers(csrf))
        assert out.status_code == 204
    async with world.client() as replay:  # the old cookie, sent again by hand
        cookie = {"cookie": f"sg_session={session_id}"}
        assert (await replay.get("/admin/v1/whoami", headers=cookie)).status_code == 401
        assert (await replay.get("/admin/ui/sso/session", headers=cookie)).status_code == 401


async def test_bearer_tokens_are_unaffected(world: World) -> None:
    _, token = await world.store.create_admin_token(ACTOR, world.org_id, None, "ci")
    async with world.client() as client:
        assert (await sign_in(client, "alice")).status_code == 302
        # A bearer token is used even beside a session cookie, and needs no CSRF header.
        made = await client.post(
            f"/admin/v1/orgs/{world.org_id}/workspaces",
            json={"name": "by-token"},
            headers={"authorization": f"Bearer {token}"},
        )
        assert made.status_code == 201, made.text
        rows = await world.audit()
        assert rows[-1]["actor"].startswith("admin_token/")


async def test_viewer_reads_but_cannot_change(world: World) -> None:
    async with world.client() as client:
        assert (await sign_in(client, "victor")).status_code == 302
        me = (await client.get("/admin/ui/sso/session")).json()
        assert me["role"] == "viewer" and me["workspace_id"] == world.workspace_id
        assert (await client.get(f"/admin/v1/workspaces/{world.workspace_id}")).status_code == 200
        path = f"/admin/v1/workspaces/{world.workspace_id}/users"
        changed = await client.post(path, json={"name": "u"}, headers=csrf_headers(me["csrf_token"]))
        assert changed.status_code == 403 and changed.json()["error"]["code"] == "forbidden"
        await world.api.denials.settle()
        denied = [r for r in await world.audit() if r["action"] == "admin.access_denied"]
        assert [r["actor"] for r in denied] == [f"sso/{urlsplit(world.issuer).netloc}/victor"]
        # and its scope is the workspace: the organization's level is not its own
        assert (await client.get(f"/admin/v1/orgs/{world.org_id}/workspaces")).status_code == 403


async def test_es256_and_client_secret_post(provider: Server, tmp_path: Path) -> None:
    extra = {"client_id": "sluicegate-es", "token_endpoint_auth_method": "client_secret_post"}
    async for world in make_world(provider, tmp_path, **extra):
        async with world.client() as client:
            assert (await sign_in(client, "alice")).status_code == 302
            assert (await client.get("/admin/v1/whoami")).status_code == 200


async def failed_sign_ins(world: World) -> int:
    return sum(r["diff"]["after"]["failures"] for r in await world.audit() if r["action"] == "admin.auth_failed")


async def test_user_no_rule_matches_is_refused(world: World) -> None:
    async with world.client() as client:
        done = await sign_in(client, "mallory")
        assert done.status_code == 403 and done.json()["error"]["code"] == "sso_refused"
        assert "sg_session" not in client.cookies
        assert (await client.get("/admin/ui/sso/session")).status_code == 401
    await world.api.close()  # writes the failures still counted
    assert await failed_sign_ins(world) >= 1
    assert not any(r["action"] == "admin.sso_signed_in" for r in await world.audit())


async def test_wrong_state_and_replayed_code(world: World) -> None:
    async with world.client() as client:
        start = await client.get("/admin/ui/sso/login")
        back = await at_provider(start.headers["location"], "alice")
        parts = urlsplit(back)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        wrong = await client.get("/admin/ui/sso/callback?" + urlencode(query | {"state": "not-the-state"}))
        assert wrong.status_code == 403
        # the real state, but the browser's sign-in cookie missing (a callback forced on another browser)
        async with world.client() as other:
            assert (await other.get(back.removeprefix(BASE))).status_code == 403
        # that attempt used the state up: it works once only
        assert (await client.get(back.removeprefix(BASE))).status_code == 403

        # a complete sign-in, then its callback again (same state and code): refused
        start = await client.get("/admin/ui/sso/login")
        back = await at_provider(start.headers["location"], "alice")
        assert (await client.get(back.removeprefix(BASE))).status_code == 302
        assert (await client.get(back.removeprefix(BASE))).status_code == 403
        # the used code with a fresh state: the provider refuses the code (and its PKCE verifier is another)
        code = parse_qs(urlsplit(back).query)["code"][0]
        fresh = await client.get("/admin/ui/sso/login")
        state = parse_qs(urlsplit(fresh.headers["location"]).query)["state"][0]
        replay = await client.get("/admin/ui/sso/callback?" + urlencode({"code": code, "state": state}))
        assert replay.status_code == 403
    await world.api.close()
    assert await failed_sign_ins(world) >= 4


def _set_cookie(resp: httpx.Response, name: str) -> tuple[str, set[str]]:
    """A Set-Cookie's value and its attributes (lowercased)."""
    line = next(c for c in resp.headers.get_list("set-cookie") if c.startswith(name + "="))
    first, *attrs = line.split(";")
    return first.partition("=")[2], {a.strip().lower() for a in attrs}


async def sign_in_by_hand(client: httpx.AsyncClient, headers: dict[str, str]) -> tuple[set[str], set[str]]:
    """A sign-in whose cookies are carried by hand (a jar keeps a Secure cookie from plain HTTP, and
    the browser behind a TLS proxy does speak HTTPS): the sign-in and the session cookies' attributes."""
    start = await client.get("/admin/ui/sso/login", headers=headers)
    state, state_flags = _set_cookie(start, "sg_sso")
    back = await at_provider(start.headers["location"], "alice")
    client.cookies.clear()
    done = await client.get(back.removeprefix(BASE), headers=headers | {"cookie": f"sg_sso={state}"})
    assert done.status_code == 302, done.text
    return state_flags, _set_cookie(done, "sg_session")[1]


async def test_secure_cookie_behind_a_trusted_proxy(world: World) -> None:
    https = {"x-forwarded-proto": "https"}
    async with world.client() as client:
        state_flags, session_flags = await sign_in_by_hand(client, https)
        assert {"secure", "httponly", "samesite=lax", "path=/admin/ui/sso"} <= state_flags
        assert {"secure", "httponly", "samesite=strict", "path=/admin"} <= session_flags
    async with world.client(peer="203.0.113.9") as client:  # not a trusted proxy: its header is ignored
        state_flags, session_flags = await sign_in_by_hand(client, https)
        assert "secure" not in state_flags and "secure" not in session_flags


async def real_id_token(issuer: str, nonce: str) -> str:
    """An ID token the provider issues to the `sluicegate` client (the test as the client)."""
    verifier = secrets.token_urlsafe(32)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = {"response_type": "code", "client_id": "sluicegate", "redirect_uri": CALLBACK}
    query |= {"scope": "openid groups", "state": "s", "nonce": nonce, "code_challenge": challenge}
    query["code_challenge_method"] = "S256"
    back = await at_provider(f"{issuer}/auth?{urlencode(query)}", "alice")
    code = parse_qs(urlsplit(back).query)["code"][0]
    async with httpx.AsyncClient() as http:
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "code_verifier": verifier}
        resp = await http.post(f"{issuer}/token", data=form, auth=("sluicegate", CLIENT_SECRET))
    assert resp.status_code == 200, resp.text
    token: str = resp.json()["id_token"]
    return token


def _segments(token: str) -> list[str]:
    return token.split(".")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(token: str) -> dict[str, Any]:
    body = _segments(token)[1]
    claims: dict[str, Any] = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return claims


async def test_id_token_checks(world: World) -> None:
    issuer = world.issuer
    token = await real_id_token(issuer, "n-1")
    sso = world.api.sso
    assert sso is not None
    claims = _claims(token)
    now = float(claims["iat"])  # the token's own clock, not today's date
    assert (await sso.verify(token, "n-1", now=now))["sub"] == "alice"

    head, body, sig = _segments(token)
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[10] ^= 1
    unsigned = _b64(orjson.dumps({"alg": "none"}))
    for bad in (
        f"{head}.{body}.{_b64(bytes(raw))}",  # the signature tampered with
        f"{head}.{_b64(orjson.dumps(claims | {'sub': 'root'}))}.{sig}",  # the claims changed
        f"{unsigned}.{body}.",  # unsigned
        f"{_b64(orjson.dumps({'alg': 'HS256', 'kid': 'rsa-1'}))}.{body}.{sig}",  # a MAC algorithm
    ):
        with pytest.raises(SignInError):
            await sso.verify(bad, "n-1", now=now)

    with pytest.raises(SignInError, match="nonce"):
        await sso.verify(token, "another-nonce", now=now)
    leeway = sso.settings.leeway_s
    with pytest.raises(SignInError, match="expired"):
        await sso.verify(token, "n-1", now=claims["exp"] + leeway + 1)
    assert await sso.verify(token, "n-1", now=claims["exp"] + leeway - 1)
    with pytest.raises(SignInError, match="future"):
        await sso.verify(token, "n-1", now=claims["iat"] - leeway - 1)

    other = Sso(sso.settings.model_copy(update={"client_id": "someone-else"}))
    with pytest.raises(SignInError, match="audience"):
        await other.verify(token, "n-1", now=now)
    # another issuer's name (the same keys): refused before anything else is believed
    renamed = Sso(sso.settings.model_copy(update={"issuer": issuer.replace("127.0.0.1", "localhost")}))
    with pytest.raises(SignInError):
        await renamed.verify(token, "n-1", now=now)


async def test_session_expires(world: World) -> None:
    sso = world.api.sso
    assert sso is not None
    async with world.client() as client:
        assert (await sign_in(client, "alice")).status_code == 302
        assert (await client.get("/admin/v1/whoami")).status_code == 200
        opened = sso.clock()
        sso.clock = lambda: opened + sso.settings.session_ttl_s + 1  # the clock `Sso` is built with
        assert (await client.get("/admin/v1/whoami")).status_code == 401
        assert (await client.get("/admin/ui/sso/session")).status_code == 401


async def test_issuer_errors_and_absence(world: World, tmp_path: Path) -> None:
    async with world.client() as client:
        # the issuer sends the user back with an error (the user cancelled): refused, state used up
        start = await client.get("/admin/ui/sso/login")
        state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
        back = {"error": "access_denied", "state": state}
        assert (await client.get("/admin/ui/sso/callback?" + urlencode(back))).status_code == 403
        # a response naming another issuer (RFC 9207) is refused
        start = await client.get("/admin/ui/sso/login")
        callback = await at_provider(start.headers["location"], "alice")
        query = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
        assert query["iss"] == world.issuer
        forged = query | {"iss": "https://attacker.example"}
        assert (await client.get("/admin/ui/sso/callback?" + urlencode(forged))).status_code == 403
    # no issuer listening: the login answers 502 and says nothing more
    gone = f"http://127.0.0.1:{free_port()}"
    settings = world.store.settings.model_copy(update={"oidc": oidc_settings(gone, world.org_id, world.workspace_id)})
    store = ControlStore(settings)
    await store.open()
    api = AdminApi(store)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url=BASE) as client:
            down = await client.get("/admin/ui/sso/login")
            assert down.status_code == 502 and down.json()["error"]["code"] == "sso_unavailable"
    finally:
        await api.close()
        await store.close()


async def test_without_oidc_settings_there_is_no_sso(world: World) -> None:
    settings = world.store.settings.model_copy(update={"oidc": None})
    store = ControlStore(settings)
    await store.open()
    api = AdminApi(store)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url=BASE) as client:
            assert (await client.get("/admin/ui/sso/login")).status_code == 404
            # a cookie alone authenticates nothing
            who = await client.get("/admin/v1/whoami", headers={"cookie": "sg_session=anything"})
            assert who.status_code == 401
    finally:
        await api.close()
        await store.close()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None or shutil.which("chromedriver") is None, reason="no chromium or chromedriver")
def test_a_person_signs_in_with_a_real_browser(mock_server: Server, tmp_path: Path) -> None:
    """The gateway process and the provider on two sites (127.0.0.1 and localhost), Chromium in
    between: the sign-in cookie survives the cross-site return, the session cookie is HttpOnly and
    SameSite=Strict, and the page's own fetches use it (a change with the CSRF token only)."""
    from tests.conftest import PYTHON, gateway_config
    from tests.integration.test_console import browser, go, submit, text_of, wait_ready
    from tests.integration.test_control_gateway import _env, _seed
    from tests.unit.control.pg import MASTER_KEY

    settings = ControlSettings(database_url=f"sqlite:///{tmp_path / 'control.db'}", master_key=MASTER_KEY)
    seed = _seed(settings)
    gw_port, op_port = free_port(), free_port()
    gw_url, issuer = f"http://127.0.0.1:{gw_port}", f"http://localhost:{op_port}"
    env = {"PORT": str(op_port), "ISSUER": issuer, "REDIRECT_URI": gw_url + "/admin/ui/sso/callback"}
    env["CLIENT_SECRET"] = CLIENT_SECRET
    control = f"""
[control]
enabled = true
database_url = "{settings.database_url}"
poll_interval_s = 0.25

[control.oidc]
issuer = "{issuer}"
client_id = "sluicegate"
redirect_base_url = "{gw_url}"
scopes = ["openid", "email", "groups"]

[[control.oidc.rules]]
claim = "groups"
value = "platform-admins"
org_id = "{seed["org"]["id"]}"
"""
    config = gateway_config(tmp_path / "gw.toml", mock_server.url, control)
    args = [PYTHON, "-m", "sluicegate", "serve", "--config", str(config), "--port", str(gw_port)]
    gw_env = _env() | {"SLUICEGATE_CONTROL__OIDC__CLIENT_SECRET": CLIENT_SECRET}
    with (
        spawn(["node", str(FIXTURE / "provider.js")], op_port, env),
        spawn(args, gw_port, gw_env),
        browser() as driver,
    ):
        from selenium.webdriver.support.ui import WebDriverWait

        # The console's sign-in page offers single sign-on (the session endpoint answers 401, not 404).
        driver.get(gw_url + "/admin/ui")
        wait_ready(driver, "signin")
        link = driver.find_element("id", "sso-login")
        assert link.text == "Sign in with single sign-on"
        assert link.get_attribute("href") == gw_url + "/admin/ui/sso/login"
        link.click()
        WebDriverWait(driver, 20).until(lambda d: d.find_elements("name", "login"))
        assert driver.current_url.startswith(issuer)
        driver.find_element("name", "login").send_keys("alice")
        driver.find_element("name", "password").send_keys("any")
        driver.find_element("css selector", "button[type=submit]").click()
        # back at the console (which then moves to its first page, #/overview)
        WebDriverWait(driver, 20).until(lambda d: d.current_url.split("#")[0] == gw_url + "/admin/ui")
        (cookie,) = [c for c in driver.get_cookies() if c["name"] == "sg_session"]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/admin"
        assert driver.execute_script("return document.cookie").find("sg_session") == -1  # not readable by script
        call = """
            const done = arguments[arguments.length - 1];
            (async () => {
              const me = await (await fetch('/admin/ui/sso/session')).json();
              const url = '/admin/v1/orgs/' + me.org_id + '/workspaces';
              const body = JSON.stringify({name: 'from-browser'});
              const json = {'content-type': 'application/json'};
              const bare = await fetch(url, {method: 'POST', body, headers: json});
              const ok = await fetch(url, {method: 'POST', body, headers: {...json, 'x-csrf-token': me.csrf_token}});
              return [me.subject, bare.status, ok.status];
            })().then(done, e => done(String(e)));
        """
        subject, bare, ok = driver.execute_async_script(call)
        assert subject == f"sso/localhost:{op_port}/alice"
        assert (bare, ok) == (403, 201)  # the browser sends Origin itself; the CSRF token is the page's

        # The console is signed in by the cookie alone (no token in the tab), and its changes carry the
        # session's CSRF token: a workspace made in its form is in the audit log under the person's name.
        wait_ready(driver, "overview")
        assert driver.execute_script("return sessionStorage.getItem('sluicegate-admin-token')") is None
        assert driver.find_element("id", "scope").text == "scope: organization acme · role: admin"
        assert driver.find_element("id", "subject").text == "signed in as alice@example.test"
        go(driver, "#/entities")
        submit(driver, "create-workspace", {"name": "made-by-sso"})
        WebDriverWait(driver, 20).until(lambda d: "?ws=" in d.current_url)
        admin = {"authorization": f"Bearer {seed['token']}"}
        spaces = httpx.get(f"{gw_url}/admin/v1/orgs/{seed['org']['id']}/workspaces", headers=admin).json()["data"]
        assert "made-by-sso" in [w["name"] for w in spaces]
        go(driver, "#/audit")
        made = driver.find_element("css selector", '#audit tr[data-action="workspace.create"]').text
        assert subject in made and "made-by-sso" in made
        assert driver.find_element("id", "chain").get_attribute("data-ok") == "true"
        # Sign out ends the session on the gateway (POST /admin/ui/sso/logout), and the page offers sign-in again.
        driver.find_element("id", "signout").click()
        wait_ready(driver, "signin")
        assert driver.find_elements("id", "sso-login") and "Signed out" in text_of(driver, "#login")
        gone = driver.execute_async_script(
            "const done = arguments[0]; fetch('/admin/ui/sso/session').then((r) => done(r.status), (e) => done(0));"
        )
        assert gone == 401


async def test_a_flood_of_sign_in_starts_does_not_lock_people_out(world: World) -> None:
    from sluicegate.control import oidc

    sso = world.api.sso
    assert sso is not None
    async with world.client() as client:
        mine = await client.get("/admin/ui/sso/login")  # started first: pushed out by the flood
        for _ in range(oidc.MAX_PENDING):
            await sso.begin()
        assert len(sso.pending) == oidc.MAX_PENDING
        back = await at_provider(mine.headers["location"], "alice")
        assert (await client.get(back.removeprefix(BASE))).status_code == 403
        assert (await sign_in(client, "alice")).status_code == 302  # a new start still works
