"""The spend page in a real headless Chromium driven by Selenium: its charts, caps and events show
what the admin API returns, and a person can sign in with a token."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import Server, gateway_config, start_gateway
from tests.integration.conftest import SPEND
from tests.integration.test_control_gateway import _env, _seed
from tests.unit.control.pg import MASTER_KEY

from sluicegate.control.settings import ControlSettings

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="no chromium or chromedriver (make test installs Debian's chromium and chromium-driver)",
)


@contextlib.contextmanager
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Selenium through Debian's chromedriver."""
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
    ):
        options.add_argument(flag)
    with tempfile.TemporaryDirectory() as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            driver.set_page_load_timeout(30)
            yield driver
        finally:
            driver.quit()


def wait_ready(driver: Any, timeout: float = 20) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(lambda d: d.find_element("tag name", "body").get_attribute("data-ready"))
    assert driver.find_element("tag name", "body").get_attribute("data-ready") == "true", driver.find_element(
        "id", "error"
    ).text


@pytest.fixture
def gw(mock_server: Server, tmp_path: Path) -> Iterator[tuple[Server, dict[str, Any]]]:
    settings = ControlSettings(database_url=f"sqlite:///{tmp_path / 'control.db'}", master_key=MASTER_KEY)
    seed = _seed(settings)
    control = f'\n[control]\nenabled = true\ndatabase_url = "{settings.database_url}"\npoll_interval_s = 0.25\n'
    with start_gateway(gateway_config(tmp_path / "gw.toml", mock_server.url, control + SPEND), _env()) as server:
        yield server, seed


def test_the_page_renders_the_api_figures(gw: tuple[Server, dict[str, Any]]) -> None:
    server, seed = gw
    ws = seed["ws"]["id"] if isinstance(seed["ws"], dict) else seed["ws"]
    org = seed["org"]["id"]
    admin = {"authorization": f"Bearer {seed['token']}"}
    policy = {"caps": [{"window": "month", "limit_usd": "0.001"}]}
    assert httpx.put(f"{server.url}/admin/v1/workspaces/{ws}/policy", json=policy, headers=admin).status_code == 200
    time.sleep(0.6)
    headers = {"authorization": f"Bearer {seed['key']}"}
    for model, n in (("mh/mock-gpt@chunks=10,chunk_size=4", 3), ("mh/mock-gpt@chunks=5,chunk_size=4", 2)):
        for _ in range(n):
            body = {"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": "mail a@b.example"}]}
            assert httpx.post(f"{server.url}/v1/chat/completions", json=body, headers=headers).status_code == 200
    deadline = time.monotonic() + 5
    while True:
        by_model = httpx.get(f"{server.url}/admin/v1/orgs/{org}/spend?group_by=model", headers=admin).json()
        if sum(r["calls"] for r in by_model["data"]) == 5 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    expected = {r["model"]: r["cost_nusd"] for r in by_model["data"]}
    assert len(expected) == 2

    with browser() as driver:
        driver.get(f"{server.url}/admin/ui#token={seed['token']}")
        wait_ready(driver)
        rects = driver.find_elements("css selector", "rect[data-value]")
        bars = {r.get_attribute("data-label"): int(r.get_attribute("data-value")) for r in rects}
        model_bars = {label: value for label, value in bars.items() if label in expected}
        assert model_bars == expected  # the model chart draws exactly what the API returned
        day_total = sum(v for label, v in bars.items() if label.endswith(" " + ws))
        assert day_total == sum(expected.values())  # the daily chart stacks the same spend
        (cap,) = driver.find_elements("css selector", "[data-cap]")
        assert cap.get_attribute("data-cap") == f"workspace:{ws}:month"
        spent = sum(expected.values())
        assert float(cap.get_attribute("data-percent")) == pytest.approx(100 * spent / 10**6, abs=0.05)
        events = driver.find_element("id", "events").text
        assert events.count("EMAIL") >= 5  # the latest redaction events are listed
        assert "a@b.example" not in driver.page_source


def test_a_person_signs_in_with_the_token(gw: tuple[Server, dict[str, Any]]) -> None:
    server, seed = gw
    with browser() as driver:
        driver.get(f"{server.url}/admin/ui")
        form = driver.find_element("id", "login")
        assert form.is_displayed() and not driver.find_elements("css selector", "rect[data-value]")
        driver.find_element("id", "token").send_keys(seed["token"])
        form.find_element("tag name", "button").click()
        wait_ready(driver)
        assert driver.find_element("id", "scope").text.startswith("scope: orgs/")
        driver.get(f"{server.url}/admin/ui")  # the token stays for the tab's session
        wait_ready(driver)
