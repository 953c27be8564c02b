"""The admin console in a real headless Chromium driven by Selenium, against a real gateway with a
control plane: one browser session walks every flow the admin API supports (sign in, entities, a
key used with the openai SDK, a secret, a cap set in the policy editor and hit, events with their
run links, the redaction try box, spend and its CSV, the audit log), checking on every page that
nothing scrolls sideways at 1280 px and every control has a name, and saving a screenshot of each
page (into docs/console/ under `make screenshots`)."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import openai
import pytest
from tests.conftest import Server, gateway_config, start_gateway
from tests.integration.conftest import SPEND
from tests.integration.test_control_gateway import _env, _seed
from tests.unit.control.pg import MASTER_KEY

from sluicegate.control.admin_api import CONSOLE_DIR
from sluicegate.control.settings import ControlSettings
from sluicegate.control.store import ControlStore

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
needs_browser = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="no chromium or chromedriver (make test installs Debian's chromium and chromium-driver)",
)
# Where the screenshots go: `make screenshots` points this at docs/console (the pictures docs/console.md
# shows); otherwise a scratch directory, so that a test run leaves the checkout as it was.
SHOTS = Path(os.environ.get("SLUICEGATE_CONSOLE_SHOTS") or Path(tempfile.gettempdir()) / "sluicegate-console-shots")
RUN_URL = "https://smith.example/o/acme/r/{run_id}?trace={trace_id}"
SECRET = "sk-provider-secret-never-shown-4711"


@contextlib.contextmanager
def browser(downloads: Path | None = None) -> Iterator[Any]:
    """Debian's Chromium, headless at 1280x900, driven by Selenium through Debian's chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    with tempfile.TemporaryDirectory() as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            driver.set_page_load_timeout(30)
            # A 1280x900 viewport (not window): what the layout checks and the screenshots measure.
            metrics = {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
            if downloads is not None:
                driver.execute_cdp_cmd(
                    "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
                )
            yield driver
        finally:
            driver.quit()


def wait_for(predicate: Callable[[], Any], timeout: float = 20, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.1)


def wait_ready(driver: Any, page: str, timeout: float = 20) -> None:
    def state() -> str | None:
        body = driver.find_element("tag name", "body")
        ready = body.get_attribute("data-ready")
        return ready if body.get_attribute("data-page") == page and ready in ("true", "error") else None

    assert wait_for(state, timeout, f"page {page}") == "true", driver.find_element("id", "error").text


def go(driver: Any, hash_: str) -> None:
    """Navigate inside the console (a hash change: the page is not reloaded)."""
    page = hash_.lstrip("#/").split("?")[0]
    if driver.execute_script("return location.hash") == hash_:
        driver.refresh()  # the same page again: reloaded (the token stays for the tab's session)
    else:
        driver.execute_script("document.body.dataset.ready = 'false'; location.hash = arguments[0];", hash_)
    wait_ready(driver, page)


def check_layout(driver: Any, name: str) -> None:
    """No horizontal scroll at 1280 px, every control named; then the page's screenshot."""
    width, client = driver.execute_script("const s = document.scrollingElement; return [s.scrollWidth, s.clientWidth];")
    assert width <= client, f"{name}: scrolls sideways ({width} > {client})"
    unnamed = driver.execute_script(
        """return [...document.querySelectorAll('input, select, textarea, button')].filter((e) => {
             const label = e.labels && [...e.labels].some((l) => l.textContent.trim());
             const aria = (e.getAttribute('aria-label') || '').trim();
             const text = e.tagName === 'BUTTON' && e.textContent.trim();
             return !label && !aria && !text;
           }).map((e) => e.outerHTML);"""
    )
    assert unnamed == [], f"{name}: controls without a name: {unnamed}"
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def text_of(driver: Any, selector: str) -> str:
    """The text of the first element matching `selector`, or "" while the page draws it."""
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        found = driver.find_elements("css selector", selector)
        return found[0].text if found else ""
    except StaleElementReferenceException:
        return ""


def drawn_without(driver: Any, table: str, row: str) -> bool:
    """The page is drawn again (its `table` is there) and `row` is not in it."""
    return bool(
        driver.execute_script(
            "const t = document.querySelector(arguments[0]); return !!t && !t.querySelector(arguments[1]);", table, row
        )
    )


def hide_values(driver: Any, *values: str) -> None:
    """Replace shown-once values in the page's text with a placeholder (before a screenshot)."""
    driver.execute_script(
        """const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
           for (let n = walk.nextNode(); n; n = walk.nextNode())
             for (const v of arguments[0])
               if (n.nodeValue.includes(v)) n.nodeValue = n.nodeValue.replaceAll(v, "••••••••••••");""",
        list(values),
    )
    for value in values:
        assert value not in driver.page_source


def sign_in(driver: Any, url: str, token: str) -> None:
    """Open the console at `url` and sign in with an admin token, up to the overview."""
    driver.get(f"{url}/admin/ui")
    wait_ready(driver, "signin")
    submit(driver, "login", {"token": token})
    wait_ready(driver, "overview")


def confirm(driver: Any, selector: str) -> str:
    """Click a button whose confirmation dialog is accepted; the dialog's text."""
    driver.find_element("css selector", selector).click()
    alert = wait_for(lambda: _alert(driver), what="the confirmation")
    text: str = alert.text
    alert.accept()
    return text


def _alert(driver: Any) -> Any:
    from selenium.common.exceptions import NoAlertPresentException

    try:
        return driver.switch_to.alert
    except NoAlertPresentException:
        return None


def edit(driver: Any, label: str, values: dict[str, str]) -> None:
    """Open an entity's edit form (its Edit button's aria-label), type the values and save."""
    from selenium.webdriver.common.keys import Keys

    button = driver.find_element("css selector", f'[aria-label="{label}"]')
    button.click()
    form = button.find_elements("xpath", "ancestor::td[1]//form")[-1]  # the edit form, opened last
    last = None
    for name, value in values.items():
        last = form.find_element("css selector", f"[name={name}]")
        last.clear()
        last.send_keys(value)
    assert last is not None
    last.send_keys(Keys.ENTER)


READ_ONLY_BUTTONS = {"Sign out", "Filter", "Show", "Export CSV", "Find", "Load more", "Tools"}


def change_controls(driver: Any) -> list[str]:
    """Every control on the page that could change something: buttons but the read-only ones, and
    the forms that create, edit or set."""
    return driver.execute_script(
        """const ok = new Set(arguments[0]);
           const buttons = [...document.querySelectorAll('#main button')].filter((b) => !ok.has(b.textContent.trim()))
             .map((b) => 'button ' + b.textContent.trim());
           const reads = ['events-form', 'spend-form', 'audit-form', 'try-form', 'policy-form'];
           const forms = [...document.querySelectorAll('#main form')].filter((f) => !reads.includes(f.id))
             .map((f) => 'form ' + f.id);
           const enabled = [...document.querySelectorAll('#policy-form input, #policy-form select')]
             .filter((c) => !c.disabled).map((c) => 'policy control ' + c.name);
           return [...buttons, ...forms, ...enabled];""",
        sorted(READ_ONLY_BUTTONS),
    )


def submit(driver: Any, form_id: str, values: dict[str, str]) -> None:
    """Type into a form's fields by name, then press Enter in the last one."""
    from selenium.webdriver.common.keys import Keys

    form = driver.find_element("id", form_id)
    last = None
    for name, value in values.items():
        last = form.find_element("css selector", f"[name={name}]")
        if last.tag_name == "select":
            from selenium.webdriver.support.ui import Select

            Select(last).select_by_visible_text(value)
        else:
            last.clear()
            last.send_keys(value)
    assert last is not None
    last.send_keys(Keys.ENTER)


async def _insert_events(tmp_path: Path, events: list[dict[str, Any]]) -> None:
    store = ControlStore(ControlSettings(database_url=f"sqlite:///{tmp_path / 'control.db'}", master_key=MASTER_KEY))
    await store.open()
    try:
        await store.insert_records(events, [])
    finally:
        await store.close()


@pytest.fixture
def gw(mock_server: Server, tmp_path: Path) -> Iterator[tuple[Server, dict[str, Any]]]:
    settings = ControlSettings(database_url=f"sqlite:///{tmp_path / 'control.db'}", master_key=MASTER_KEY)
    seed = _seed(settings)
    control = f'\n[control]\nenabled = true\ndatabase_url = "{settings.database_url}"\npoll_interval_s = 0.25\n'
    # LangSmith runs go nowhere (nothing listens there); what matters is the run link on events.
    dead = httpx.URL(mock_server.url).copy_with(path="/nothing-here")
    langsmith = f'\n[langsmith]\nenabled = true\nendpoint = "{dead}"\napi_key = "ls-test"\nrun_url = "{RUN_URL}"\n'
    config = gateway_config(tmp_path / "gw.toml", mock_server.url, control + SPEND + langsmith)
    with start_gateway(config, _env()) as server:
        yield server, seed


def test_the_console_is_static_files_with_a_strict_policy(gw: tuple[Server, dict[str, Any]]) -> None:
    server, _ = gw
    page = httpx.get(f"{server.url}/admin/ui")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert page.headers["cache-control"] == "no-cache"
    assert not re.search(r"<script(?![^>]*\bsrc=)", page.text)  # no inline script
    assert not re.search(r"https?://", page.text)  # nothing from another origin
    served = 0
    for path in CONSOLE_DIR.rglob("*"):
        if path.is_file():
            rel = path.relative_to(CONSOLE_DIR).as_posix()
            answer = httpx.get(f"{server.url}/admin/ui/{rel}")
            assert answer.status_code == 200 and answer.content == path.read_bytes(), rel
            assert answer.headers["content-security-policy"] == csp
            assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", answer.text), rel  # offline
            served += 1
    assert served >= 10
    # Only the console's own files: nothing beside or above its directory, however the path is spelt.
    with httpx.Client(base_url=server.url) as client:
        for raw in (
            "/admin/ui/../admin_api.py",
            "/admin/ui/%2e%2e/admin_api.py",
            "/admin/ui/..%2fadmin_api.py",
            "/admin/ui/pages/../../admin_api.py",
            "/admin/ui/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
            "/admin/ui//etc/passwd",
            "/admin/ui/pages",
            "/admin/ui/nope.js",
        ):
            request = client.build_request("GET", raw)
            request.url = request.url.copy_with(raw_path=raw.encode())
            answer = client.send(request)
            assert answer.status_code == 404, raw
            assert "import" not in answer.text and "root:" not in answer.text, raw


@needs_browser
def test_an_admin_walks_through_the_console(gw: tuple[Server, dict[str, Any]], tmp_path: Path) -> None:
    server, seed = gw
    org = seed["org"]["id"]
    admin = {"authorization": f"Bearer {seed['token']}"}
    downloads = tmp_path / "downloads"
    downloads.mkdir()

    def api(path: str) -> Any:
        answer = httpx.get(f"{server.url}/admin/v1{path}", headers=admin)
        assert answer.status_code == 200, answer.text
        return answer.json()

    with browser(downloads) as driver:
        # Sign in: the token goes to sessionStorage only.
        driver.get(f"{server.url}/admin/ui")
        wait_ready(driver, "signin")
        assert not driver.find_elements("id", "sso-login")  # this gateway has no single sign-on
        check_layout(driver, "signin")
        submit(driver, "login", {"token": seed["token"]})
        wait_ready(driver, "overview")
        assert driver.find_element("id", "scope").text == "scope: organization acme · role: admin"
        assert seed["token"] not in driver.current_url and driver.get_cookies() == []
        assert driver.execute_script("return sessionStorage.getItem('sluicegate-admin-token')") == seed["token"]
        assert seed["token"] not in driver.page_source

        # A workspace, a user and a key, made in the forms; the key is shown once with its snippets.
        go(driver, "#/entities")
        submit(driver, "create-workspace", {"name": "research"})
        wait_for(lambda: "?ws=" in driver.current_url, what="the new workspace")
        wait_for(lambda: driver.find_elements("id", "create-user"), what="the workspace's page")
        ws = driver.current_url.split("?ws=")[1]
        assert api(f"/workspaces/{ws}")["name"] == "research"
        submit(driver, "create-user", {"name": "alice"})
        wait_for(lambda: driver.find_elements("css selector", "#users tr[data-user]"), what="the user row")
        (user,) = api(f"/workspaces/{ws}/users")["data"]
        submit(driver, "create-key", {"user_id": "alice", "name": "notebook"})
        shown = wait_for(lambda: driver.find_elements("id", "new-key"), what="the key shown once")[0]
        key, key_id = shown.text, shown.get_attribute("data-key-id")
        assert key.startswith("sg-") or len(key) > 20
        assert f'base_url="{server.url}/v1", api_key="{key}"' in driver.find_element("id", "snippet-openai").text
        assert f'base_url="{server.url}"' in driver.find_element("id", "snippet-anthropic").text
        rows = wait_for(lambda: driver.find_elements("css selector", f'#keys tr[data-key="{key_id}"]'), what="key row")
        row = rows[0].text
        assert "notebook" in row and "alice" in row and key not in row
        hide_values(driver, key)  # the screenshot shows where the key is, never a real one
        check_layout(driver, "entities")
        go(driver, f"#/entities?ws={ws}")
        assert key not in driver.page_source  # shown once: not after the page is drawn again
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)
        hello = client.chat.completions.create(
            model="mh/mock-gpt", max_tokens=5, messages=[{"role": "user", "content": "hello"}]
        )
        assert hello.choices[0].message.content

        # Descriptions and tags: shown and edited (PATCH), the workspace's and a key's, and a key renamed.
        edit(driver, "Edit workspace research", {"description": "Search experiments", "tags": "team:search, env:dev"})
        wait_for(lambda: "team:search" in text_of(driver, f'#workspaces tr[data-workspace="{ws}"]'))
        got = api(f"/workspaces/{ws}")
        assert (got["name"], got["description"], got["tags"]) == (
            "research",
            "Search experiments",
            ["team:search", "env:dev"],
        )
        submit(driver, "create-key", {"name": "scratch"})
        scratch_el = wait_for(lambda: driver.find_elements("id", "new-key"), what="the scratch key")[0]
        scratch, scratch_id = scratch_el.text, scratch_el.get_attribute("data-key-id")
        edit(driver, "Edit key scratch", {"name": "batch", "description": "nightly batch", "tags": "job:nightly"})
        batch_row = f'#keys tr[data-key="{scratch_id}"]'
        wait_for(lambda: "nightly batch" in text_of(driver, batch_row), what="the edit")
        got = api(f"/keys/{scratch_id}")
        assert (got["name"], got["description"], got["tags"]) == ("batch", "nightly batch", ["job:nightly"])
        assert "job:nightly" in driver.find_element("css selector", batch_row).text

        # Rotation: the new key is shown once with its snippets; the old one keeps working (the openai
        # SDK) until the overlap ends, then is a 401, never before.
        old_client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=scratch, max_retries=0)
        submit(driver, f"rotate-{scratch_id}", {"overlap_s": "2"})
        box = wait_for(
            lambda: [
                b for b in driver.find_elements("id", "key-once") if b.get_attribute("data-replaces") == scratch_id
            ],
            what="the rotated key",
        )[0]
        ends = datetime.fromisoformat(box.get_attribute("data-old-key-expires-at"))
        new_el = driver.find_element("id", "new-key")
        rotated, rotated_id = new_el.text, new_el.get_attribute("data-key-id")
        assert rotated != scratch and rotated_id != scratch_id
        assert f'api_key="{rotated}"' in driver.find_element("id", "snippet-openai").text
        assert "keeps working until" in box.text
        worked: list[datetime] = []
        refused_at = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            asked = datetime.now(UTC)
            try:
                old_client.chat.completions.create(
                    model="mh/mock-gpt", max_tokens=5, messages=[{"role": "user", "content": "still here?"}]
                )
                worked.append(asked)
            except openai.AuthenticationError:
                refused_at = datetime.now(UTC)
                break
            time.sleep(0.2)
        assert worked and worked[0] < ends, (worked, ends)  # the old key worked after the rotation
        assert refused_at is not None and refused_at >= ends, (refused_at, ends)  # and stopped, not before the end
        old_client.close()
        new_client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=rotated, max_retries=0)
        assert new_client.chat.completions.create(
            model="mh/mock-gpt", max_tokens=5, messages=[{"role": "user", "content": "new"}]
        ).choices
        go(driver, f"#/entities?ws={ws}")
        assert "expired" in driver.find_element("css selector", batch_row).text
        assert rotated not in driver.page_source

        # Deletions, each after a confirmation naming what goes with it: a key, a user with its key, a
        # workspace with everything in it.
        said = confirm(driver, f'#keys tr[data-key="{rotated_id}"] [aria-label="Delete key batch"]')
        assert "stops working at once" in said and "policy" in said
        wait_for(lambda: drawn_without(driver, "#keys", f'tr[data-key="{rotated_id}"]'), what="gone")
        assert httpx.get(f"{server.url}/admin/v1/keys/{rotated_id}", headers=admin).status_code == 404
        with pytest.raises(openai.AuthenticationError):
            new_client.chat.completions.create(
                model="mh/mock-gpt", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
        new_client.close()
        submit(driver, "create-user", {"name": "bob"})
        wait_for(lambda: "bob" in text_of(driver, "#users"), what="bob")
        submit(driver, "create-key", {"user_id": "bob", "name": "bobs"})
        bobs_id = wait_for(lambda: driver.find_elements("id", "new-key"), what="bob's key")[0].get_attribute(
            "data-key-id"
        )
        bob_id = next(u["id"] for u in api(f"/workspaces/{ws}/users")["data"] if u["name"] == "bob")
        edit(driver, "Edit user bob", {"name": "robert"})
        wait_for(lambda: "robert" in text_of(driver, "#users"), what="the renamed user")
        assert api(f"/users/{bob_id}")["name"] == "robert"
        said = confirm(driver, '[aria-label="Delete user robert"]')
        assert "Its 1 active key(s) are revoked" in said, said
        wait_for(lambda: drawn_without(driver, "#users", f'tr[data-user="{bob_id}"]'), what="robert gone")
        assert httpx.get(f"{server.url}/admin/v1/users/{bob_id}", headers=admin).status_code == 404
        assert api(f"/keys/{bobs_id}")["revoked_at"] is not None
        doomed = httpx.post(
            f"{server.url}/admin/v1/orgs/{org}/workspaces", json={"name": "doomed"}, headers=admin
        ).json()
        httpx.post(f"{server.url}/admin/v1/workspaces/{doomed['id']}/users", json={"name": "u1"}, headers=admin)
        doomed_key = httpx.post(
            f"{server.url}/admin/v1/workspaces/{doomed['id']}/keys", json={"name": "k1"}, headers=admin
        ).json()["key"]
        go(driver, f"#/entities?ws={doomed['id']}")
        edit(driver, "Edit workspace doomed", {"name": "condemned"})
        wait_for(lambda: "condemned" in text_of(driver, "#workspaces"), what="the renamed workspace")
        assert api(f"/workspaces/{doomed['id']}")["name"] == "condemned"
        said = confirm(driver, '[aria-label="Delete workspace condemned"]')
        assert "Its 1 user(s) and 1 key(s) go with it" in said and "secrets" in said, said
        doomed_row = f'tr[data-workspace="{doomed["id"]}"]'
        wait_for(
            lambda: (
                driver.execute_script("return location.hash") == "#/entities"
                and drawn_without(driver, "#workspaces", doomed_row)
            ),
            what="the list without it",
        )
        wait_ready(driver, "entities")
        assert httpx.get(f"{server.url}/admin/v1/workspaces/{doomed['id']}", headers=admin).status_code == 404
        with (
            openai.OpenAI(base_url=f"{server.url}/v1", api_key=doomed_key, max_retries=0) as doomed_client,
            pytest.raises(openai.AuthenticationError),
        ):
            doomed_client.chat.completions.create(
                model="mh/mock-gpt", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )

        # More than a page (100) of rows: the lists follow next_cursor.
        bulk = httpx.post(f"{server.url}/admin/v1/orgs/{org}/workspaces", json={"name": "bulk"}, headers=admin).json()
        with httpx.Client(base_url=f"{server.url}/admin/v1", headers=admin) as seeder:
            for n in range(130):
                assert seeder.post(f"/workspaces/{bulk['id']}/users", json={"name": f"u{n:03}"}).status_code == 201
        go(driver, f"#/entities?ws={bulk['id']}")
        listed = [r.text.split()[0] for r in driver.find_elements("css selector", "#users tr[data-user]")]
        assert listed == [f"u{n:03}" for n in range(130)]
        # 250 events (as the gateway's record writer writes them): the newest 200, then "Load more".
        now = datetime.now(UTC)
        seeded = [
            {"id": f"ev_bulk_{n:03}", "at": (now - timedelta(seconds=n)).isoformat(), "org_id": org}
            | {"workspace_id": bulk["id"], "user_id": None, "key_id": None, "request_id": f"req-{n}"}
            | {"trace_id": None, "run_id": None, "policy": "redaction", "action": "monitor", "direction": "request"}
            | {"entity": "IBAN", "count": 1, "detail": "{}"}
            for n in range(250)
        ]
        asyncio.run(_insert_events(tmp_path, seeded))
        go(driver, f"#/events?entity=IBAN&workspace={bulk['id']}")
        shown_events = "return [...document.querySelectorAll('#events tr[data-event]')].map((r) => r.dataset.event);"
        assert driver.execute_script(shown_events) == [e["id"] for e in seeded[:200]]
        driver.find_element("id", "events-more").click()
        wait_for(lambda: len(driver.execute_script(shown_events)) == 250, what="the next page of events")
        assert driver.execute_script(shown_events) == [e["id"] for e in seeded]
        assert not driver.find_elements("id", "events-more")  # the last page

        # A provider secret: listed by provider and time, its value never shown again.
        go(driver, f"#/secrets?scope=workspace:{ws}")
        submit(driver, "set-secret", {"provider": "openai", "value": SECRET})
        wait_for(lambda: driver.find_elements("css selector", '#secrets tr[data-secret="openai"]'), what="secret")
        assert SECRET not in driver.page_source
        (stored,) = api(f"/workspaces/{ws}/secrets")["data"]
        assert stored["provider"] == "openai"
        row = driver.find_element("css selector", '#secrets tr[data-secret="openai"]').text
        assert stored["fingerprint"] in row and stored["set_by"] in row  # who set it, and which value
        check_layout(driver, "secrets")
        submit(driver, "set-secret", {"provider": "anthropic", "value": SECRET + "-2"})  # a second, then gone
        wait_for(lambda: driver.find_elements("css selector", '#secrets tr[data-secret="anthropic"]'), what="2nd")
        driver.find_element("css selector", '[aria-label="Delete the anthropic secret"]').click()
        driver.switch_to.alert.accept()
        wait_for(lambda: drawn_without(driver, "#secrets", 'tr[data-secret="anthropic"]'), what="gone")
        assert [s["provider"] for s in api(f"/workspaces/{ws}/secrets")["data"]] == ["openai"]

        # The policy editor: a field error (422) and a lock's refusal (409) land beside what they name;
        # then a day cap and a block rule are saved.
        lock = {"caps": [{"window": "month", "limit_usd": "5", "locked": True}]}
        assert httpx.put(f"{server.url}/admin/v1/orgs/{org}/policy", json=lock, headers=admin).status_code == 200
        go(driver, f"#/policies?level=workspace&id={ws}")
        driver.find_element("id", "add-cap").click()
        driver.find_element("id", "add-rule").click()
        form = driver.find_element("id", "policy-form")
        form.find_element("css selector", ".rule-row [name=entities]").send_keys("US_SSN")
        from selenium.webdriver.support.ui import Select

        Select(form.find_element("css selector", ".rule-row [name=action]")).select_by_value("block")
        rollout = form.find_element("css selector", ".rule-row [name=rollout_percent]")
        rollout.clear()
        rollout.send_keys("30")  # a staged rollout: the rule acts for 30% of the keys
        Select(form.find_element("css selector", ".cap-row [name=window]")).select_by_value("day")
        limit = form.find_element("css selector", ".cap-row [name=limit_usd]")
        limit.send_keys("1.0000000001\n")
        error = wait_for(lambda: driver.find_elements("css selector", '[data-error-for="caps.0.limit_usd"]'))[0]
        assert error.is_displayed() and error.text  # shown right after the field's label, named by the field
        beside = error.find_element("xpath", "preceding-sibling::label[1]//input")
        assert beside.get_attribute("data-loc") == "caps.0.limit_usd"
        assert beside.get_attribute("aria-describedby") == error.get_attribute("id")
        Select(form.find_element("css selector", ".cap-row [name=window]")).select_by_value("month")
        limit.clear()
        limit.send_keys("10\n")
        locked = wait_for(lambda: driver.find_elements("css selector", '[data-error-for="caps.0"]'), what="the 409")[0]
        assert locked.is_displayed() and locked.find_element("xpath", "..").get_attribute("data-loc") == "caps.0"
        assert "locked" in driver.find_element("css selector", "#policy-form .form-error").text
        assert not driver.find_elements("css selector", '[data-error-for="caps.0.limit_usd"]')
        Select(form.find_element("css selector", ".cap-row [name=window]")).select_by_value("day")
        limit.clear()
        limit.send_keys("0.0002\n")
        wait_for(lambda: driver.find_element("id", "policy-saved").text == "Saved.", what="the saved policy")
        policy = api(f"/workspaces/{ws}/policy")
        assert [(c["window"], c["limit_usd"]) for c in policy["caps"]] == [("day", "0.0002")]
        assert [(r["entities"], r["action"], r["rollout_percent"]) for r in policy["redaction"]] == [
            (["US_SSN"], "block", 30)
        ]
        check_layout(driver, "policies")
        go(driver, f"#/policies?level=key&id={key_id}")
        effective = driver.find_element("id", "effective").text
        assert "workspace research" in effective and "US_SSN" in effective
        in_share = api(f"/keys/{key_id}/effective-policy")["redaction"][0]["rollout"]["applies"]
        assert ("this key is in it" if in_share else "this key is monitored") in effective
        assert "rolled out to 30%" in effective
        # The rule in full from here on (whether this key was in the 30% depends on its random id).
        policy["redaction"][0]["rollout_percent"] = 100
        put = httpx.put(f"{server.url}/admin/v1/workspaces/{ws}/policy", json=policy, headers=admin)
        assert put.status_code == 200, put.text
        assert not driver.find_elements("css selector", ".field-error")
        # The key's own policy, removed (DELETE) after a confirmation: the levels above still apply.
        own = {"redaction": [{"entities": ["EMAIL"], "action": "monitor"}]}
        assert httpx.put(f"{server.url}/admin/v1/keys/{key_id}/policy", json=own, headers=admin).status_code == 200
        go(driver, f"#/policies?level=key&id={key_id}")
        assert len(driver.find_elements("css selector", "#rules-editor .rule-row")) == 1
        said = confirm(driver, "#clear-policy")
        assert "key policy of notebook" in said and "above it still apply" in said, said
        wait_for(lambda: api(f"/keys/{key_id}/policy")["redaction"] == [], what="the policy removed")
        wait_for(lambda: "workspace research" in text_of(driver, "#effective"), what="the page drawn again")
        assert not driver.find_elements("css selector", "#rules-editor .rule-row")

        # Calls until the cap refuses (402); each carries an email the gateway redacts.
        refused = None
        for _ in range(60):
            try:
                client.chat.completions.create(
                    model="mh/mock-gpt",
                    max_tokens=20,
                    messages=[{"role": "user", "content": "write to a@b.example about the plan"}],
                )
            except openai.APIStatusError as exc:
                refused = exc
                break
        assert refused is not None and refused.status_code == 402
        events = wait_for(
            lambda: [e for e in api(f"/orgs/{org}/events?policy=spend")["data"] if e["action"] == "refuse"],
            what="the refusal event",
        )
        wait_for(lambda: api(f"/orgs/{org}/events?policy=redaction")["data"], what="redaction events")

        go(driver, "#/overview")
        refusal_rows = driver.find_elements("css selector", '#refusals tr[data-action="refuse"]')
        assert refusal_rows and "notebook" in refusal_rows[0].text and "research" in refusal_rows[0].text
        assert driver.find_elements("css selector", "#redactions tr[data-policy=redaction]")
        cap = driver.find_element("css selector", f'#caps tr[data-cap="workspace:{ws}:day"]')
        assert float(cap.get_attribute("data-percent")) > 50
        assert "a@b.example" not in driver.page_source
        check_layout(driver, "overview")

        # Events: the refusal, filtered and grouped, with the link to its LangSmith run.
        go(driver, f"#/events?policy=spend&action=refuse&workspace={ws}")
        rows = driver.find_elements("css selector", "#events tbody tr")
        assert [r.get_attribute("data-event") for r in rows] == [e["id"] for e in events]
        link = rows[0].find_element("tag name", "a").get_attribute("href")
        run_id = events[0]["run_id"]
        assert run_id and link == RUN_URL.format(run_id=run_id, trace_id=events[0]["trace_id"] or "")
        go(driver, "#/events?group=entity")
        groups = {
            r.get_attribute("data-group-key")
            for r in driver.find_elements("css selector", "#event-groups tr[data-group-key]")
        }
        assert {"EMAIL", "workspace"} <= groups
        check_layout(driver, "events")

        # The try box: the types and positions the key's rules find, and what would be sent.
        go(driver, f"#/try?key={key_id}")
        text = "mail a@b.example or call about ssn 336-22-2513"
        driver.find_element("id", "try-text").send_keys(text)
        driver.find_element("id", "try-run").click()
        found = wait_for(lambda: driver.find_elements("css selector", "#try-findings tr[data-entity]"), what="findings")
        seen = [
            (
                f.get_attribute("data-entity"),
                int(f.get_attribute("data-start")),
                int(f.get_attribute("data-end")),
                f.get_attribute("data-action"),
            )
            for f in found
        ]
        assert seen == [("EMAIL", 5, 16, "redact"), ("US_SSN", 35, 46, "block")]
        assert [text[s:e] for _, s, e, _ in seen] == ["a@b.example", "336-22-2513"]
        assert driver.find_element("id", "try-sent").text == "mail [REDACTED:EMAIL] or call about ssn [REDACTED:US_SSN]"
        check_layout(driver, "try")

        # Spend: the figures and the CSV are the API's rows, named.
        go(driver, "#/spend?range=today&group=key")
        since = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0).isoformat()
        rows_api = api(f"/orgs/{org}/spend?group_by=key&since={quote(since)}")["data"]
        by_key = {r["key_id"]: r["cost_nusd"] for r in rows_api}
        assert by_key.get(key_id, 0) > 0
        drawn = {
            r.get_attribute("data-group"): int(r.get_attribute("data-cost"))
            for r in driver.find_elements("css selector", "#spend-table tr[data-group]")
        }
        assert drawn == by_key
        bars = {
            b.get_attribute("data-label"): int(b.get_attribute("data-value"))
            for b in driver.find_elements("css selector", "rect[data-value]")
        }
        assert bars.get("notebook") == by_key[key_id]
        driver.find_element("id", "export-csv").click()
        (exported,) = wait_for(lambda: [p for p in downloads.glob("*.csv")], what="the CSV download")
        lines = list(csv.reader(io.StringIO(exported.read_text())))
        assert lines[0] == ["key", "key_id", "calls", "input_tokens", "output_tokens", "cost_nusd", "cost_usd"]
        assert {line[1]: int(line[5]) for line in lines[1:]} == by_key
        assert {line[0] for line in lines[1:]} >= {"notebook"}
        check_layout(driver, "spend")

        # Revoking the key in its row stops it at once.
        go(driver, f"#/entities?ws={ws}")
        driver.find_element("css selector", '[aria-label="Revoke key notebook"]').click()
        driver.switch_to.alert.accept()
        wait_for(lambda: "revoked" in text_of(driver, f'#keys tr[data-key="{key_id}"]'))
        with client, pytest.raises(openai.AuthenticationError):
            client.chat.completions.create(
                model="mh/mock-gpt", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )

        # The audit log lists each change made above, by this token.
        go(driver, "#/audit")
        actions = [
            r.get_attribute("data-action") for r in driver.find_elements("css selector", "#audit tr[data-action]")
        ]
        made = [r["action"] for r in api(f"/orgs/{org}/audit?limit=1000")["data"]][::-1]
        assert actions == made
        for action in ("workspace.create", "user.create", "key.create", "secret.set", "secret.delete", "key.revoke"):
            assert action in actions, (action, actions)
        assert "policy.set" in actions
        assert "admin token admin" in driver.find_element("id", "audit").text  # the token by its name
        chain = driver.find_element("id", "chain")
        assert chain.get_attribute("data-ok") == "true" and "Chain intact" in chain.text, chain.text
        check_layout(driver, "audit")
        filt = driver.find_element("id", "audit-action")
        filt.send_keys("key.")
        assert all(
            "key." in r.get_attribute("data-action")
            for r in driver.find_elements("css selector", "#audit tr[data-action]")
        )
        assert SECRET not in driver.page_source and key not in driver.page_source

        # Keyboard: focus moves with Tab and is visible.
        from selenium.webdriver.common.keys import Keys

        driver.find_element("tag name", "body").send_keys(Keys.TAB)
        outline = driver.execute_script(
            "const e = document.activeElement; return [e.tagName, getComputedStyle(e).outlineStyle];"
        )
        assert outline[0] in ("A", "INPUT", "BUTTON", "SELECT") and outline[1] != "none", outline

        # Admin tokens: a viewer with an expiry, made in the form and shown once; another revoked.
        go(driver, "#/tokens")
        expires = (datetime.now(UTC) + timedelta(days=30)).replace(second=0, microsecond=0)
        field = driver.find_element("css selector", "#create-token [name=expires_at]")
        driver.execute_script("arguments[0].value = arguments[1];", field, expires.strftime("%Y-%m-%dT%H:%M"))
        submit(driver, "create-token", {"role": "viewer (reads only)", "name": "auditor"})
        made_el = wait_for(lambda: driver.find_elements("id", "new-token"), what="the token shown once")[0]
        viewer_token, viewer_id = made_el.text, made_el.get_attribute("data-token-id")
        assert viewer_token.startswith("sga-")
        listed = {t["id"]: t for t in api(f"/orgs/{org}/admin-tokens")["data"]}
        assert listed[viewer_id]["role"] == "viewer"
        assert datetime.fromisoformat(listed[viewer_id]["expires_at"]) == expires
        row = driver.find_element("css selector", f'#admin-tokens tr[data-token="{viewer_id}"]').text
        assert "viewer" in row and expires.strftime("%Y-%m-%d %H:%M") in row and "never" in row  # not used yet
        hide_values(driver, viewer_token)
        check_layout(driver, "tokens")
        temp = httpx.post(f"{server.url}/admin/v1/orgs/{org}/admin-tokens", json={"name": "temp"}, headers=admin)
        go(driver, "#/tokens")
        confirm(driver, '[aria-label="Revoke admin token temp"]')
        temp_row = f'#admin-tokens tr[data-token="{temp.json()["id"]}"]'
        wait_for(lambda: "revoked" in text_of(driver, temp_row), what="the revoked token")
        assert api(f"/orgs/{org}/admin-tokens?limit=1000")["data"][-1]["revoked_at"] is not None
        assert (
            httpx.get(
                f"{server.url}/admin/v1/whoami", headers={"authorization": f"Bearer {temp.json()['token']}"}
            ).status_code
            == 401
        )

        # Sign out: the token is gone from the tab.
        driver.find_element("id", "signout").click()
        wait_ready(driver, "signin")
        assert driver.execute_script("return sessionStorage.length") == 0

        # A viewer: every page reads (spend, events, audit) and no page offers a change; the API refuses one.
        submit(driver, "login", {"token": viewer_token})
        wait_ready(driver, "overview")
        assert driver.find_element("id", "scope").text == "scope: organization acme · role: viewer"
        for page in (
            "#/overview",
            "#/entities",
            f"#/entities?ws={ws}",
            f"#/secrets?scope=workspace:{ws}",
            f"#/secrets?scope=org:{org}",
            f"#/policies?level=org&id={org}",
            f"#/policies?level=key&id={key_id}",
            f"#/try?key={key_id}",
            "#/spend?range=today&group=key",
            "#/events",
            "#/audit",
            "#/tokens",
        ):
            go(driver, page)
            assert change_controls(driver) == [], page
            if page == f"#/entities?ws={ws}":
                assert "notebook" in driver.find_element("id", "keys").text
                check_layout(driver, "viewer")
        go(driver, "#/overview")
        assert int(driver.find_element("id", "spend-month").get_attribute("data-nusd")) > 0
        go(driver, "#/events")
        assert driver.find_elements("css selector", "#events tr[data-event]")
        go(driver, "#/audit")
        assert driver.find_elements("css selector", "#audit tr[data-action]")
        assert driver.find_element("id", "chain").get_attribute("data-ok") == "true"
        refused_change = httpx.post(
            f"{server.url}/admin/v1/orgs/{org}/workspaces",
            json={"name": "nope"},
            headers={"authorization": f"Bearer {viewer_token}"},
        )
        assert refused_change.status_code == 403 and refused_change.json()["error"]["code"] == "forbidden"
        driver.find_element("id", "signout").click()
        wait_ready(driver, "signin")

        # A workspace token sees its workspace only.
        made = httpx.post(
            f"{server.url}/admin/v1/orgs/{org}/admin-tokens", json={"name": "ws", "workspace_id": ws}, headers=admin
        )
        submit(driver, "login", {"token": made.json()["token"]})
        wait_ready(driver, "overview")
        assert driver.find_element("id", "scope").text.startswith("scope: workspace research")
        caps = "return [...document.querySelectorAll('#caps tr[data-cap]')].map((c) => c.dataset.cap);"
        wait_for(
            lambda: driver.execute_script(caps) == [f"workspace:{ws}:day", f"org:{org}:month"],
            what=f"the workspace token's caps (drawn: {driver.execute_script(caps)})",
        )
        go(driver, "#/entities")
        assert not driver.find_elements("id", "create-workspace") and driver.find_elements("id", "create-key")
        go(driver, "#/audit")
        assert not driver.find_elements("id", "audit")
        # The try box lists what a rule finds below its confidence threshold (counted, not acted on).
        policy = api(f"/workspaces/{ws}/policy")
        policy["redaction"] = [*policy["redaction"], {"entities": ["PERSON"], "action": "redact"}]
        put = httpx.put(f"{server.url}/admin/v1/workspaces/{ws}/policy", json=policy, headers=admin)
        assert put.status_code == 200, put.text
        go(driver, f"#/try?key={key_id}")
        text = "Dear Zorblat, thanks to Maria Schmidt for the note."
        driver.find_element("id", "try-text").send_keys(text)
        driver.find_element("id", "try-run").click()
        below = wait_for(lambda: driver.find_elements("css selector", "#try-below tr[data-entity]"), what="below")
        spans = [
            (b.get_attribute("data-entity"), int(b.get_attribute("data-start")), int(b.get_attribute("data-end")))
            for b in below
        ]
        assert [(e, text[s:t]) for e, s, t in spans] == [("PERSON", "Zorblat")]
        found = driver.find_elements("css selector", "#try-findings tr[data-entity]")
        assert [(f.get_attribute("data-entity"), f.get_attribute("data-action")) for f in found] == [
            ("PERSON", "redact")
        ]
        assert driver.find_element("id", "try-sent").text == "Dear Zorblat, thanks to [REDACTED:PERSON] for the note."
        check_layout(driver, "try-below")
        # No script error on any page (the deliberate 422 above is a network entry, not one).
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE" and e["source"] != "network"]
        assert errors == []
    assert user["name"] == "alice"


# ── model access rules (pages/policy_models.js) ───────────────────────────────────────────────


@needs_browser
def test_model_rules_are_edited_in_the_policy_page(gw: tuple[Server, dict[str, Any]]) -> None:
    """The model access part of the policy editor: a lock's refusal lands beside the list and the
    ceiling it names, a valid policy is saved, the key's effective rules show each level and alias
    with its origin, and the saved alias routes an openai SDK call."""
    from selenium.webdriver.support.ui import Select

    server, seed = gw
    org, ws, key_id = seed["org"]["id"], seed["ws"]["id"], seed["key_id"]
    admin = {"authorization": f"Bearer {seed['token']}"}
    lock = {
        "models": {"allow": ["mock-*"], "allow_locked": True, "ceilings": [{"max_output_tokens": 4096, "locked": True}]}
    }
    assert httpx.put(f"{server.url}/admin/v1/orgs/{org}/policy", json=lock, headers=admin).status_code == 200
    with browser() as driver:
        sign_in(driver, server.url, seed["token"])
        go(driver, f"#/policies?level=workspace&id={ws}")
        box = driver.find_element("id", "models-editor")
        box.find_element("css selector", "[name=allow]").send_keys("mock-gpt, gpt-4o")
        driver.find_element("id", "add-alias").click()
        box.find_element("css selector", "[name=alias_name]").send_keys("fast")
        box.find_element("css selector", "[name=alias_target]").send_keys("mock-gpt")
        driver.find_element("id", "add-ceiling").click()
        tokens = box.find_element("css selector", ".model-ceiling-row [name=max_output_tokens]")
        tokens.send_keys("8000")
        driver.find_element("id", "add-param").click()
        box.find_element("css selector", "[name=param_field]").send_keys("temperature")
        box.find_element("css selector", "[name=param_value]").send_keys("1")
        driver.find_element("id", "save-policy").click()
        allow_error = wait_for(lambda: driver.find_elements("css selector", '[data-error-for="models.allow.1"]'))[0]
        assert "outside the allow list" in allow_error.text and allow_error.is_displayed()
        beside = allow_error.find_element("xpath", "preceding-sibling::label[1]//input")
        assert beside.get_attribute("name") == "allow" and beside.get_attribute("aria-invalid") == "true"
        ceiling_error = driver.find_element("css selector", '[data-error-for="models.ceilings.0"]')
        assert "4096" in ceiling_error.text
        assert ceiling_error.find_element("xpath", "..").get_attribute("data-loc") == "models.ceilings.0"
        allow = box.find_element("css selector", "[name=allow]")
        allow.clear()
        allow.send_keys("mock-gpt")
        tokens.clear()
        tokens.send_keys("100")
        Select(box.find_element("css selector", "[name=ceiling_action]")).select_by_value("refuse")
        driver.find_element("id", "save-policy").click()
        wait_for(lambda: driver.find_element("id", "policy-saved").text == "Saved.", what="the saved policy")
        assert not driver.find_elements("css selector", ".field-error")
        saved = httpx.get(f"{server.url}/admin/v1/workspaces/{ws}/policy", headers=admin).json()["models"]
        assert saved["allow"] == ["mock-gpt"] and saved["aliases"] == {"fast": "mock-gpt"}
        assert saved["ceilings"] == [{"max_output_tokens": 100, "action": "refuse", "models": ["*"], "locked": False}]
        assert saved["params"] == [{"field": "temperature", "op": "lte", "value": 1}]
        check_layout(driver, "policy-models")
        go(driver, f"#/policies?level=key&id={key_id}")
        effective = driver.find_element("id", "effective-models")
        rows = [r.get_attribute("data-level") for r in effective.find_elements("css selector", "tr[data-level]")]
        assert rows == ["org", "workspace"]
        assert "mock-* (locked)" in effective.text and "temperature lte 1" in effective.text
        alias = effective.find_element("css selector", 'tr[data-alias="fast"]').text
        assert "mock-gpt" in alias and "workspace prod" in alias
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=seed["key"]) as oa:
        wait_for(lambda: _routes_fast(oa), timeout=5, what="the alias at the gateway")


def _routes_fast(oa: openai.OpenAI) -> bool:
    try:
        return (
            oa.chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}]).model == "mock-gpt"
        )
    except openai.NotFoundError:
        return False


# ── runaway-loop rules (pages/policy_loops.js) ────────────────────────────────────────────────


@needs_browser
def test_loop_rules_in_the_policy_editor(gw: tuple[Server, dict[str, Any]]) -> None:
    """A key's loop rule edited in the console: a rule laxer than the org's lock is refused beside
    the rule (409), a stricter one is saved, and the key's effective rule shows where it comes from."""
    from selenium.webdriver.support.ui import Select

    server, seed = gw
    org, key_id = seed["org"]["id"], seed["key_id"]
    admin = {"authorization": f"Bearer {seed['token']}"}
    lock = {"loops": [{"detect": "repeat", "max_repeats": 3, "window_s": 60, "action": "throttle", "locked": True}]}
    assert httpx.put(f"{server.url}/admin/v1/orgs/{org}/policy", json=lock, headers=admin).status_code == 200
    with browser() as driver:
        sign_in(driver, server.url, seed["token"])
        go(driver, f"#/policies?level=key&id={key_id}")
        rule = wait_for(lambda: text_of(driver, '#effective-loops tr[data-detect="repeat"]'), what="the org's rule")
        assert "more than 3 identical requests in 60 s" in rule and f"org {seed['org']['name']}" in rule
        driver.find_element("id", "add-loop").click()
        row = driver.find_element("css selector", "#loops-editor .loop-row")
        assert not row.find_element("css selector", "[name=factor]").is_displayed()  # a rate rule's field
        Select(row.find_element("css selector", "[name=detect]")).select_by_value("rate")
        assert row.find_element("css selector", "[name=factor]").is_displayed()
        Select(row.find_element("css selector", "[name=detect]")).select_by_value("repeat")
        repeats = row.find_element("css selector", "[name=max_repeats]")
        repeats.clear()
        repeats.send_keys("10\n")
        refused = wait_for(lambda: driver.find_elements("css selector", '[data-error-for="loops.0"]'), what="the 409")
        assert "max_repeats 10 > 3" in refused[0].text
        assert refused[0].find_element("xpath", "..").get_attribute("data-loc") == "loops.0"
        repeats.clear()
        repeats.send_keys("2")
        Select(row.find_element("css selector", "[name=action]")).select_by_value("throttle")
        interval = row.find_element("css selector", "[name=throttle_interval_s]")
        interval.clear()
        interval.send_keys("45\n")
        wait_for(lambda: driver.find_element("id", "policy-saved").text == "Saved.", what="the saved policy")
        saved = httpx.get(f"{server.url}/admin/v1/keys/{key_id}/policy", headers=admin).json()["loops"]
        assert [(r["detect"], r["max_repeats"], r["action"], r["throttle_interval_s"]) for r in saved] == [
            ("repeat", 2, "throttle", 45)
        ]
        rule = wait_for(
            lambda: "throttle" in text_of(driver, "#effective-loops") and text_of(driver, "#effective-loops")
        )
        assert "more than 2 identical requests in 60 s" in rule and "one per 45 s" in rule and "key " in rule
        check_layout(driver, "policy-loops")


@needs_browser
def test_a_redaction_threshold_set_in_the_policy_editor(gw: tuple[Server, dict[str, Any]]) -> None:
    """A key's PERSON rule with a confidence threshold, set in the console: saved as written (the
    rule's and a per-type one), shown in the key's effective policy, and acted on by the gateway's
    redaction (a weak finding left alone, a strong one redacted)."""
    server, seed = gw
    key_id = seed["key_id"]
    admin = {"authorization": f"Bearer {seed['token']}"}
    with browser() as driver:
        sign_in(driver, server.url, seed["token"])
        go(driver, f"#/policies?level=key&id={key_id}")
        wait_for(lambda: driver.find_elements("id", "add-rule"), what="the editor")
        driver.find_element("id", "add-rule").click()
        row = driver.find_element("css selector", "#rules-editor .rule-row")
        row.find_element("css selector", "[name=entities]").send_keys("PERSON, EMAIL")
        row.find_element("css selector", "[name=min_confidence]").send_keys("40")
        per_type = row.find_element("css selector", "[name=min_confidence_by_type]")
        per_type.send_keys("ADDRESS=10\n")  # not one of the rule's types: refused beside the rule
        refused = wait_for(lambda: driver.find_elements("css selector", ".field-error"), what="the 422")
        assert "ADDRESS" in refused[0].text
        per_type.clear()
        per_type.send_keys("PERSON=80\n")
        wait_for(lambda: driver.find_element("id", "policy-saved").text == "Saved.", what="the saved policy")
        saved = httpx.get(f"{server.url}/admin/v1/keys/{key_id}/policy", headers=admin).json()["redaction"]
        assert [(r["entities"], r["min_confidence"], r["min_confidence_by_type"]) for r in saved] == [
            (["PERSON", "EMAIL"], 40, {"PERSON": 80})
        ]
        effective = wait_for(lambda: "PERSON" in text_of(driver, "#effective") and text_of(driver, "#effective"))
        assert "min confidence" in effective
        rows = {
            r["entities"][0]: r
            for r in httpx.get(f"{server.url}/admin/v1/keys/{key_id}/effective-policy", headers=admin).json()[
                "redaction"
            ]
        }
        assert rows["PERSON"]["min_confidence"] == 80 and rows["EMAIL"]["min_confidence"] == 40
        tried = httpx.post(
            f"{server.url}/admin/v1/keys/{key_id}/redaction/try",
            json={"text": "Dear Zorblat, Frau Müller wrote from ana@example.org."},
            headers=admin,
        ).json()
        assert tried["text"] == "Dear Zorblat, Frau [REDACTED:PERSON] wrote from [REDACTED:EMAIL]."
        check_layout(driver, "policy-thresholds")


@needs_browser
def test_allowed_terms_set_in_the_policy_editor_pass_the_gateway(gw: tuple[Server, dict[str, Any]]) -> None:
    """A workspace's allowed terms, set in the console: terms for a type the org locks are refused
    beside the row (409); those for an unlocked type are saved, kept by a later save of the form,
    shown in the key's effective policy, and the gateway leaves them in what the model sees while
    it still redacts the customer's name."""
    server, seed = gw
    org, ws, key_id = seed["org"]["id"], seed["ws"]["id"], seed["key_id"]
    admin = {"authorization": f"Bearer {seed['token']}"}
    lock = {"redaction": [{"entities": ["EMAIL"], "action": "redact", "locked": True}]}
    assert httpx.put(f"{server.url}/admin/v1/orgs/{org}/policy", json=lock, headers=admin).status_code == 200
    person = {"redaction": [{"entities": ["PERSON"], "action": "redact"}]}
    assert httpx.put(f"{server.url}/admin/v1/workspaces/{ws}/policy", json=person, headers=admin).status_code == 200
    prompt = "Das Objektiv von Carl Zeiss; Kundin Maria Schmidt schreibt von help@acme.example."

    def seen_by_the_model() -> str:
        with openai.OpenAI(base_url=f"{server.url}/v1", api_key=seed["key"], max_retries=0) as client:
            reply = client.chat.completions.create(
                model="mh/mock-gpt@echo=1", messages=[{"role": "user", "content": prompt}]
            )
        return reply.choices[0].message.content or ""

    assert "Carl Zeiss" not in wait_for(lambda: "[REDACTED:PERSON]" in (t := seen_by_the_model()) and t)
    with browser() as driver:
        sign_in(driver, server.url, seed["token"])
        go(driver, f"#/policies?level=workspace&id={ws}")
        driver.find_element("id", "add-allow").click()
        row = driver.find_element("css selector", "#allow-editor .allow-row")
        row.find_element("css selector", "[name=allow_entities]").send_keys("PERSON, EMAIL")
        row.find_element("css selector", "[name=allow_terms]").send_keys("Carl Zeiss\nhelp@acme.example")
        driver.find_element("id", "save-policy").click()
        error = wait_for(lambda: driver.find_elements("css selector", '[data-error-for="allow_terms.0"]'), what="409")
        assert "EMAIL" in error[0].text and "org" in error[0].text and error[0].is_displayed()
        assert httpx.get(f"{server.url}/admin/v1/workspaces/{ws}/policy", headers=admin).json()["allow_terms"] == []
        types = row.find_element("css selector", "[name=allow_entities]")
        types.clear()
        types.send_keys("PERSON")
        driver.find_element("id", "save-policy").click()
        wait_for(lambda: driver.find_element("id", "policy-saved").text == "Saved.", what="the saved policy")
        saved = httpx.get(f"{server.url}/admin/v1/workspaces/{ws}/policy", headers=admin).json()
        assert saved["allow_terms"] == [{"entities": ["PERSON"], "terms": ["Carl Zeiss", "help@acme.example"]}]
        assert [r["entities"] for r in saved["redaction"]] == [["PERSON"]]  # the rule the form was drawn with
        driver.execute_script("document.getElementById('allow-editor').scrollIntoView()")
        check_layout(driver, "policy-allow")
        # the page drawn again and saved as it is: the terms stay
        go(driver, f"#/policies?level=workspace&id={ws}")
        assert "Carl Zeiss" in driver.find_element("css selector", "#allow-editor [name=allow_terms]").get_attribute(
            "value"
        )
        driver.find_element("id", "save-policy").click()
        wait_for(lambda: driver.find_element("id", "policy-saved").text == "Saved.", what="the second save")
        assert httpx.get(f"{server.url}/admin/v1/workspaces/{ws}/policy", headers=admin).json()["allow_terms"]

        go(driver, f"#/policies?level=key&id={key_id}")
        shown = wait_for(lambda: text_of(driver, '#effective-allow tr[data-level="workspace"]'), what="the terms")
        assert "Carl Zeiss" in shown and "PERSON" in shown and "workspace" in shown

        # The try page tells what the terms let through, beside what the rules act on.
        go(driver, f"#/try?key={key_id}")
        driver.find_element("id", "try-text").send_keys(prompt)
        driver.find_element("id", "try-run").click()
        allowed = wait_for(lambda: driver.find_elements("css selector", "#try-allowed tr[data-entity]"), what="allowed")
        assert [(r.get_attribute("data-entity"), r.text.split()[-2:]) for r in allowed] == [
            ("PERSON", ["Carl", "Zeiss"])
        ]
        acted = driver.find_elements("css selector", "#try-findings tr[data-entity]")
        assert sorted(r.get_attribute("data-entity") for r in acted) == ["EMAIL", "PERSON"]
        assert "Carl Zeiss" in driver.find_element("id", "try-sent").text
        check_layout(driver, "try-allowed")

    # the gateway: the allowed name reaches the model, the customer's name and the (locked) address do not
    seen = wait_for(lambda: "Carl Zeiss" in (t := seen_by_the_model()) and t, what="the terms at the gateway")
    assert "Maria Schmidt" not in seen and "[REDACTED:PERSON]" in seen
    assert "help@acme.example" not in seen and "[REDACTED:EMAIL]" in seen


# ── rate limits (pages/policy_limits.js) ──────────────────────────────────────────────────────


@needs_browser
def test_a_rate_limit_set_in_the_console_refuses_with_429(gw: tuple[Server, dict[str, Any]]) -> None:
    """The limits section of the policy editor: a lock's refusal lands at the limit's field, a
    limit is saved, the key's effective limits show where each comes from, and the key's calls
    past it get the 429 that the events page then lists."""
    from selenium.webdriver.support.ui import Select

    server, seed = gw
    org, ws, key_id = seed["org"]["id"], seed["ws"]["id"], seed["key_id"]
    admin = {"authorization": f"Bearer {seed['token']}"}
    lock = {"limits": [{"kind": "requests", "limit": 5, "window_s": 60, "locked": True}]}
    assert httpx.put(f"{server.url}/admin/v1/orgs/{org}/policy", json=lock, headers=admin).status_code == 200
    with browser() as driver:
        sign_in(driver, server.url, seed["token"])

        go(driver, f"#/policies?level=workspace&id={ws}")
        driver.find_element("id", "add-limit").click()
        form = driver.find_element("id", "policy-form")
        Select(form.find_element("css selector", ".limit-row [name=kind]")).select_by_value("requests")
        limit = form.find_element("css selector", ".limit-row [name=limit]")
        limit.send_keys("10\n")  # above the org's locked 5: refused, at the field
        error = wait_for(lambda: driver.find_elements("css selector", '[data-error-for="limits.0.limit"]'), what="409")
        assert "org" in error[0].text and error[0].is_displayed()
        beside = error[0].find_element("xpath", "preceding-sibling::label[1]//input")
        assert beside.get_attribute("data-loc") == "limits.0.limit"
        limit.clear()
        limit.send_keys("2\n")
        wait_for(lambda: driver.find_element("id", "policy-saved").text == "Saved.", what="the saved policy")
        saved = httpx.get(f"{server.url}/admin/v1/workspaces/{ws}/policy", headers=admin).json()
        assert [(x["kind"], x["limit"], x["window_s"]) for x in saved["limits"]] == [("requests", 2, 60)]
        check_layout(driver, "policy_limits")

        go(driver, f"#/policies?level=key&id={key_id}")
        shown = wait_for(lambda: text_of(driver, "#effective-limits"), what="the effective limits")
        assert "2 requests / 60 s" in shown and "5 requests / 60 s" in shown and "locked" in shown

        call = {"model": "mh/mock-gpt", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
        refused = None
        with openai.OpenAI(base_url=f"{server.url}/v1", api_key=seed["key"], max_retries=0) as client:
            for _ in range(10):  # the view takes the policy within a second; then 2 calls, then the 429
                try:
                    client.chat.completions.create(**call)  # type: ignore[call-overload]
                except openai.RateLimitError as exc:
                    refused = exc
                    break
        assert refused is not None and refused.code == "gateway_rate_limit_exceeded"
        assert refused.response.headers["x-sluicegate-limit"] == "workspace/requests"

        def refusals() -> list[Any]:
            answer = httpx.get(f"{server.url}/admin/v1/orgs/{org}/events?policy=limits&action=refuse", headers=admin)
            return list(answer.json()["data"])

        events = wait_for(refusals, what="the refusal event")
        go(driver, "#/events?policy=limits&action=refuse")
        rows = driver.find_elements("css selector", "#events tbody tr")
        assert [r.get_attribute("data-event") for r in rows] == [e["id"] for e in events]
        assert "limits" in rows[0].text and "refuse" in rows[0].text
        picked = driver.find_element("css selector", "#events-form [name=policy]")
        assert picked.get_attribute("value") == "limits"
        go(driver, "#/overview")  # the latest refusals show rate limits' too
        assert wait_for(lambda: driver.find_elements("css selector", '#refusals tr[data-policy="limits"]'), what="row")


@needs_browser
def test_tool_access_set_in_the_console_acts_on_model_calls_and_survives_other_edits(
    gw: tuple[Server, dict[str, Any]],
) -> None:
    """The policy editor's tool access: a deny list that applies to model traffic, saved; a later
    edit of another part of the policy keeps it (the form sends the whole policy); the key's page
    shows the lists; the key's model call of a denied tool comes back without it."""
    from selenium.webdriver.support.ui import Select

    server, seed = gw
    ws, key_id = seed["ws"]["id"], seed["key_id"]
    admin = {"authorization": f"Bearer {seed['token']}"}
    with browser() as driver:
        sign_in(driver, server.url, seed["token"])

        go(driver, f"#/policies?level=workspace&id={ws}")
        form = driver.find_element("id", "policy-form")
        form.find_element("css selector", "[name=tools_deny]").send_keys("delete_*, */drop_*")
        Select(form.find_element("css selector", "[name=tools_model_calls]")).select_by_value("remove")
        form.find_element("id", "save-policy").click()
        wait_for(lambda: driver.find_element("id", "policy-saved").text == "Saved.", what="the saved policy")
        policy = httpx.get(f"{server.url}/admin/v1/workspaces/{ws}/policy", headers=admin).json()
        assert (policy["tools"]["deny"], policy["tools"]["model_calls"]) == (["delete_*", "*/drop_*"], "remove")
        # Another edit of the same policy: the tool lists are sent with it, not dropped.
        go(driver, f"#/policies?level=workspace&id={ws}")
        driver.find_element("id", "add-cap").click()
        form = driver.find_element("id", "policy-form")
        form.find_element("css selector", ".cap-row [name=limit_usd]").send_keys("5\n")
        wait_for(lambda: driver.find_element("id", "policy-saved").text == "Saved.", what="the second save")
        policy = httpx.get(f"{server.url}/admin/v1/workspaces/{ws}/policy", headers=admin).json()
        assert policy["caps"][0]["limit_usd"] == "5" and policy["tools"]["deny"] == ["delete_*", "*/drop_*"]

        go(driver, f"#/policies?level=key&id={key_id}")
        shown = wait_for(lambda: text_of(driver, "#effective-tools"), what="the effective tool lists")
        assert "delete_*, */drop_*" in shown and "remove the call" in shown

        tools: list[Any] = [
            {"type": "function", "function": {"name": n, "parameters": {"type": "object", "properties": {}}}}
            for n in ("lookup", "delete_file")
        ]
        call = {"model": "mh/mock-gpt@call_tools=delete_file+lookup", "messages": [{"role": "user", "content": "hi"}]}
        names: list[str] = []
        with openai.OpenAI(base_url=f"{server.url}/v1", api_key=seed["key"], max_retries=0) as client:
            for _ in range(20):  # the view takes the policy within a second
                answer = client.chat.completions.create(**call, tools=tools)  # type: ignore[call-overload]
                names = [c.function.name for c in answer.choices[0].message.tool_calls or []]
                if names == ["lookup"]:
                    break
                time.sleep(0.1)
        assert names == ["lookup"]


@needs_browser
def test_the_routes_page_shows_a_failing_deployments_breaker_open(mock_server: Server, tmp_path: Path) -> None:
    """The Routes page: a routed model's deployments with their breakers; after calls that fail on
    one deployment (and succeed on the other), its breaker shows open, the other's closed."""
    settings = ControlSettings(database_url=f"sqlite:///{tmp_path / 'control.db'}", master_key=MASTER_KEY)
    seed = _seed(settings)
    control = f'\n[control]\nenabled = true\ndatabase_url = "{settings.database_url}"\npoll_interval_s = 0.25\n'
    routes = f"""
[providers.flaky]
kind = "mock"
base_url = "{mock_server.url}"
models = []

[routing]
breaker_failures = 2
breaker_cooldown_s = 600

[routing.models.smart]
deployments = [
  {{ provider = "flaky", model = "mock-gpt@fault=500" }},
  {{ provider = "mh", model = "mock-gpt", weight = 0 }},
]
"""
    config = gateway_config(tmp_path / "gw.toml", mock_server.url, control + SPEND + routes)
    with start_gateway(config, _env()) as server:
        call = {"model": "smart", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
        with openai.OpenAI(base_url=f"{server.url}/v1", api_key=seed["key"], max_retries=0) as client:
            for _ in range(3):  # each answered by the standby after the first deployment's 500
                raw = client.chat.completions.with_raw_response.create(**call)  # type: ignore[call-overload]
                assert raw.headers["x-sluicegate-deployment"] == "mh/mock-gpt"
        with browser() as driver:
            sign_in(driver, server.url, seed["token"])
            go(driver, "#/routes")
            rows = wait_for(lambda: driver.find_elements("css selector", "#routes tbody tr"), what="the routes")
            breakers = {r.get_attribute("data-deployment"): r.get_attribute("data-breaker") for r in rows}
            assert breakers == {"flaky/mock-gpt@fault=500": "open", "mh/mock-gpt": "closed"}, breakers
            flaky = driver.find_element("css selector", '#routes tr[data-breaker="open"]').text
            assert "open (cooling down)" in flaky and "mock-gpt@fault=500" in flaky
            check_layout(driver, "routes")


@needs_browser
def test_mcp_servers_are_registered_listed_and_removed_in_the_console(gw: tuple[Server, dict[str, Any]]) -> None:
    """The MCP servers page: a bad URL refused at its field, a server registered with a header whose
    value is never shown again, listed with the path agents use, then removed after a confirmation."""
    server, seed = gw
    ws = seed["ws"]["id"]
    admin = {"authorization": f"Bearer {seed['token']}"}
    secret = "mcp-header-value-" + "q" * 16
    with browser() as driver:
        sign_in(driver, server.url, seed["token"])

        go(driver, f"#/mcp?workspace={ws}")
        form = driver.find_element("id", "set-mcp-server")
        form.find_element("css selector", "[name=name]").send_keys("docs")
        form.find_element("css selector", "[name=url]").send_keys("ftp://mcp.example.com/mcp")
        form.find_element("css selector", "[name=headers]").send_keys(f"Authorization: Bearer {secret}")
        form.find_element("css selector", "button[type=submit]").click()
        error = wait_for(lambda: driver.find_elements("css selector", '[data-error-for="url"]'), what="the URL's error")
        assert error[0].is_displayed()
        assert form.find_element("css selector", "[name=headers]").get_attribute("value") == ""  # not kept
        url = form.find_element("css selector", "[name=url]")
        url.clear()
        url.send_keys("https://mcp.example.com/mcp")
        form.find_element("css selector", "[name=headers]").send_keys(f"Authorization: Bearer {secret}")
        form.find_element("css selector", "[name=price_usd]").send_keys("0.002")
        form.find_element("css selector", "[name=tool_price_usd]").send_keys("deep_search: 0.05")
        form.find_element("css selector", "button[type=submit]").click()
        row = wait_for(lambda: driver.find_elements("css selector", '#mcp-servers tr[data-server="docs"]'), what="row")
        assert "/mcp/docs" in row[0].text and "Authorization" in row[0].text
        assert "$0.002; deep_search $0.05" in row[0].text
        assert secret not in driver.page_source
        listed = httpx.get(f"{server.url}/admin/v1/workspaces/{ws}/mcp-servers", headers=admin).json()["data"]
        assert [(s["name"], s["url"], s["header_names"], s["price_usd"]) for s in listed] == [
            ("docs", "https://mcp.example.com/mcp", ["Authorization"], "0.002")
        ]
        check_layout(driver, "mcp_servers")
        said = confirm(driver, '[aria-label="Remove the MCP server docs"]')
        assert "docs" in said
        wait_for(lambda: not driver.find_elements("css selector", '#mcp-servers tr[data-server="docs"]'), what="gone")
    assert httpx.get(f"{server.url}/admin/v1/workspaces/{ws}/mcp-servers", headers=admin).json()["data"] == []


@needs_browser
def test_substitutes_set_in_the_console_move_calls_to_another_model(gw: tuple[Server, dict[str, Any]]) -> None:
    """A cap that substitutes from a percent on and a rate limit that substitutes when full, set in
    the policy editor: a percent out of range is not sent, the saved policy holds both,
    the key's effective policy shows them, and the key's call past the limit goes to the substitute."""
    from selenium.webdriver.support.ui import Select

    server, seed = gw
    ws, key_id = seed["ws"]["id"], seed["key_id"]
    admin = {"authorization": f"Bearer {seed['token']}"}
    cheaper, other = "mh/mock-gpt@chunks=2", "mh/mock-gpt@chunks=3"  # priced as mock-gpt: the knobs are no part of it
    with browser() as driver:
        sign_in(driver, server.url, seed["token"])

        go(driver, f"#/policies?level=workspace&id={ws}")
        driver.find_element("id", "add-cap").click()
        driver.find_element("id", "add-limit").click()
        form = driver.find_element("id", "policy-form")
        Select(form.find_element("css selector", ".cap-row [name=window]")).select_by_value("day")
        form.find_element("css selector", ".cap-row [name=limit_usd]").send_keys("1")
        Select(form.find_element("css selector", ".cap-row [name=on_insufficient]")).select_by_value("substitute")
        form.find_element("css selector", ".cap-row [name=substitute_model]").send_keys(cheaper)
        percent = form.find_element("css selector", ".cap-row [name=substitute_at_percent]")
        percent.send_keys("100")  # 100 is the cap itself: the browser refuses to send the form
        form.find_element("css selector", ".limit-row [name=limit]").send_keys("1")
        form.find_element("css selector", ".limit-row [name=substitute_model]").send_keys(other + "\n")
        assert driver.execute_script("return arguments[0].validity.rangeOverflow", percent)
        assert percent.get_attribute("validationMessage")
        time.sleep(0.5)
        assert httpx.get(f"{server.url}/admin/v1/workspaces/{ws}/policy", headers=admin).json()["caps"] == []
        percent.clear()
        percent.send_keys("80\n")
        wait_for(lambda: driver.find_element("id", "policy-saved").text == "Saved.", what="the saved policy")
        saved = httpx.get(f"{server.url}/admin/v1/workspaces/{ws}/policy", headers=admin).json()
        cap, limit = saved["caps"][0], saved["limits"][0]
        assert (cap["on_insufficient"], cap["substitute_model"], cap["substitute_at_percent"]) == (
            "substitute",
            cheaper,
            80,
        )
        assert (limit["kind"], limit["limit"], limit["substitute_model"]) == ("requests", 1, other)

        go(driver, f"#/policies?level=key&id={key_id}")
        shown = wait_for(lambda: text_of(driver, "#effective-limits"), what="the effective limits")
        assert f"1 requests / 60 s, then {other}" in shown
        assert f"substitute → {cheaper} from 80%" in driver.find_element("id", "effective").text

        call = {"model": "mh/mock-gpt", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
        said = None
        with openai.OpenAI(base_url=f"{server.url}/v1", api_key=seed["key"], max_retries=0) as client:
            for _ in range(20):  # the view takes the policy within a second; then one call, then the substitute
                raw = client.chat.completions.with_raw_response.create(**call)  # type: ignore[call-overload]
                said = raw.headers.get("x-sluicegate-substituted")
                if said:
                    break
                time.sleep(0.1)
        assert said == f"mh/mock-gpt -> {other}"


@pytest.fixture
def mcp_gw(mock_server: Server, tmp_path: Path) -> Iterator[tuple[Server, dict[str, Any], Server]]:
    """A gateway with a control plane that lets workspaces reach loopback MCP servers, and the SDK's
    server behind it, refusing (401) whatever lacks the workspace's credential."""
    from tests.conftest import PYTHON, free_port, spawn
    from tests.integration.test_mcp_control import WS_CREDENTIAL

    settings = ControlSettings(database_url=f"sqlite:///{tmp_path / 'control.db'}", master_key=MASTER_KEY)
    seed = _seed(settings)
    control = f'\n[control]\nenabled = true\ndatabase_url = "{settings.database_url}"\npoll_interval_s = 0.25\n'
    config = gateway_config(tmp_path / "gw.toml", mock_server.url, control)
    config.write_text(
        config.read_text().replace("[upstream]\n", '[upstream]\ntenant_allowed_cidrs = ["127.0.0.0/8"]\n', 1)
    )
    port = free_port()
    upstream = [PYTHON, "-m", "tests.integration.mcp_upstream", str(port), "--require-authorization", WS_CREDENTIAL]
    with spawn(upstream, port) as mcp_server, start_gateway(config, _env()) as server:
        yield server, seed, mcp_server


@needs_browser
def test_a_servers_tools_and_the_tool_events_in_the_console(
    mcp_gw: tuple[Server, dict[str, Any], Server],
) -> None:
    """The MCP servers page shows a registered server's tools as the gateway lists them (with the
    workspace's credential, which the page never holds): a denied tool marked with its rule, prices and
    a rate limit on a tool; a server refusing the gateway shows why. The events page finds a tool call's
    events by their source."""
    from tests.integration.test_mcp_control import WS_CREDENTIAL, session

    server, seed, upstream = mcp_gw
    ws, org = seed["ws"]["id"], seed["org"]["id"]
    admin = {"authorization": f"Bearer {seed['token']}"}
    base = f"{server.url}/admin/v1"
    body = {
        "url": f"{upstream.url}/mcp",
        "headers": {"Authorization": WS_CREDENTIAL},
        "tool_price_usd": {"weather": "0.004"},
    }
    assert httpx.put(f"{base}/workspaces/{ws}/mcp-servers/docs", json=body, headers=admin).status_code == 200
    assert (
        httpx.put(
            f"{base}/workspaces/{ws}/mcp-servers/bare", json={"url": f"{upstream.url}/mcp"}, headers=admin
        ).status_code
        == 200
    )
    policy = {
        "tools": {"deny": ["docs/delete_*"]},
        "limits": [{"kind": "requests", "limit": 5, "window_s": 60, "tools": ["docs/weather"]}],
    }
    assert httpx.put(f"{base}/workspaces/{ws}/policy", json=policy, headers=admin).status_code == 200
    time.sleep(0.6)  # the gateway's view reloads within a poll

    async def leak() -> None:
        async with session(f"{server.url}/mcp/docs", seed["key"]) as s:
            await s.call_tool("leak", {})  # a redaction event of a tool call

    asyncio.run(leak())
    with browser() as driver:
        sign_in(driver, server.url, seed["token"])
        go(driver, f"#/mcp?workspace={ws}")
        driver.find_element("css selector", '[aria-label="Show the tools of docs"]').click()
        wait_for(lambda: driver.find_elements("css selector", '#mcp-tool-list tr[data-tool="echo"]'), what="the tools")
        rows = {
            r.get_attribute("data-tool"): r
            for r in driver.find_elements("css selector", "#mcp-tool-list tr[data-tool]")
        }
        assert set(rows) == {
            "echo",
            "weather",
            "count",
            "leak",
            "ssn",
            "delete_everything",
            "seen_headers",
            "interrupted",
        }
        denied = rows["delete_everything"]
        assert denied.get_attribute("data-access") == "denied" and "denies 'docs/delete_*'" in denied.text
        assert rows["echo"].get_attribute("data-access") == "allowed" and "free" in rows["echo"].text
        assert "$0.004" in rows["weather"].text and "5 requests per 60 s (workspace)" in rows["weather"].text
        assert WS_CREDENTIAL not in driver.page_source
        check_layout(driver, "mcp_tools")
        assert change_controls(driver) == [
            "button Remove",
            "button Remove",
            "button Save server",
            "form set-mcp-server",
        ]  # the Tools buttons change nothing
        driver.find_element("css selector", '[aria-label="Show the tools of bare"]').click()
        error = wait_for(lambda: text_of(driver, "#mcp-tools-error"), what="the refusal")
        assert "'bare' answered HTTP 401" in error

        go(driver, "#/events?route=mcp")
        rows_ = wait_for(
            lambda: driver.find_elements("css selector", '#events tr[data-route="mcp"]'), what="tool events"
        )
        assert any("mcp docs/leak" in r.text and "redaction" in r.text for r in rows_)
        assert not driver.find_elements("css selector", '#events tr[data-event]:not([data-route="mcp"])')
        picked = driver.find_element("css selector", "#events-form [name=route]")
        assert picked.get_attribute("value") == "mcp"
        check_layout(driver, "events_tools")
    stored = httpx.get(f"{base}/orgs/{org}/events?route=mcp", headers=admin).json()["data"]
    assert stored and all(e["route"] == "mcp" for e in stored)


@pytest.fixture
def oauth_mcp() -> Iterator[Server]:
    """The SDK's server behind a token endpoint of its own (`mcp_upstream.py --oauth`)."""
    from tests.conftest import PYTHON, free_port, spawn
    from tests.integration.test_mcp_control import OAUTH_SECRET

    port = free_port()
    args = [PYTHON, "-m", "tests.integration.mcp_upstream", str(port), "--oauth", f"ws-client:{OAUTH_SECRET}"]
    with spawn(args, port) as server:
        yield server


@needs_browser
def test_a_server_with_oauth_client_credentials_is_registered_in_the_console(
    mcp_gw: tuple[Server, dict[str, Any], Server], oauth_mcp: Server
) -> None:
    """The registration form's OAuth fields: a token URL the egress rules refuse is named at its field
    and the client secret is not kept; corrected, the server is saved with its client id shown, never
    the secret, and its tools are listed by the gateway with a token it fetched."""
    from tests.integration.test_mcp_control import OAUTH_SECRET

    server, seed, _ = mcp_gw
    ws = seed["ws"]["id"]
    with browser() as driver:
        sign_in(driver, server.url, seed["token"])
        go(driver, f"#/mcp?workspace={ws}")
        form = driver.find_element("id", "set-mcp-server")
        values = {
            "name": "crm",
            "url": f"{oauth_mcp.url}/mcp",
            "token_url": "http://169.254.169.254/oauth/token",
            "client_id": "ws-client",
            "scope": "tools",
            "client_secret": OAUTH_SECRET,
        }
        for name, value in values.items():
            form.find_element("css selector", f"[name={name}]").send_keys(value)
        form.find_element("css selector", "button[type=submit]").click()
        error = wait_for(
            lambda: driver.find_elements("css selector", '[data-error-for="oauth.token_url"]'), what="the field error"
        )
        assert error[0].is_displayed() and "metadata" in error[0].text
        secret = form.find_element("css selector", "[name=client_secret]")
        assert secret.get_attribute("value") == ""  # not kept
        token_url = form.find_element("css selector", "[name=token_url]")
        token_url.clear()
        token_url.send_keys(f"{oauth_mcp.url}/oauth/token")
        secret.send_keys(OAUTH_SECRET)
        form.find_element("css selector", "button[type=submit]").click()
        row = wait_for(lambda: driver.find_elements("css selector", '#mcp-servers tr[data-server="crm"]'), what="row")
        assert "OAuth client ws-client (scope tools)" in row[0].text
        assert OAUTH_SECRET not in driver.page_source
        time.sleep(0.6)  # the gateway's view reloads within a poll
        driver.find_element("css selector", '[aria-label="Show the tools of crm"]').click()
        wait_for(lambda: driver.find_elements("css selector", '#mcp-tool-list tr[data-tool="echo"]'), what="the tools")
        check_layout(driver, "mcp_oauth")
    issued = httpx.get(f"{oauth_mcp.url}/oauth/state").json()
    assert issued["issued"] >= 1 and issued["scopes"][-1] == "tools"
