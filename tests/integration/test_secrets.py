"""Secrets that fail closed: no printer shows a secret setting, a missing or wrong master key stops
the start instead of minting a new one, and a workspace whose secret does not open gets a 503,
never a call made with the operator's credentials."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
import redis
from sqlalchemy import update
from tests.conftest import (
    GATEWAY_KEY,
    METRICS_TOKEN,
    PYTHON,
    ROOT,
    Server,
    free_port,
    gateway_config,
    provider_saw,
    spawn,
    start_gateway,
    stop_process,
)
from tests.integration.test_control_gateway import _seed
from tests.unit.control.pg import MASTER_KEY

from sluicegate.control.audit import Actor
from sluicegate.control.crypto import MasterKey
from sluicegate.control.models import secrets as secrets_table
from sluicegate.control.schemas import SecretIn
from sluicegate.control.settings import ControlSettings
from sluicegate.control.store import ControlStore

OTHER_KEY = base64.urlsafe_b64encode(b"another-master-key-another-key!!").decode()
CHAT = [{"role": "user", "content": "Hello"}]


def _run(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`python -m sluicegate …` in its own process group, with only `env` (and the tree under test)."""
    full = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.environ.get("PYTHONPATH", ""), **env}
    proc = subprocess.Popen(
        [PYTHON, "-m", "sluicegate", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_process(proc)  # type: ignore[arg-type]
        out, err = proc.communicate()
        pytest.fail(f"sluicegate {' '.join(args)} did not exit within {timeout}s:\n{out}{err}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


# ── printers ────────────────────────────────────────────────────────────────────────────────────

SECRETS_IN_FILE = {
    "provider_key": "sk-file-provider-key-3f9a",
    "header": "hdr-file-org-token-77c1",
    "langsmith": "lsv2-file-langsmith-key-0b2d",
    "webhook": "whsec-file-webhook-secret-91e4",
}
SECRETS_IN_ENV = {
    "SLUICEGATE_REDACTION__PSEUDONYM_SECRET": "pseudo-env-secret-5d10",
    "SLUICEGATE_SPEND__REDIS_URL": "redis://:redis-env-password-8a2f@127.0.0.1:6399/0",
    "SLUICEGATE_CONTROL__DATABASE_URL": "postgresql://app:db-env-password-c4e6@db:5432/sg",
    "SLUICEGATE_CONTROL__REDIS_URL": "redis://ctl:ctl-redis-password-19bb@r:6379/0?password=ctl-query-pw-2e7a",
    "SLUICEGATE_CONTROL__MASTER_KEY": MASTER_KEY,
    "SLUICEGATE_METRICS__TOKEN": "metrics-env-token-6f3e0a9d",
    "SLUICEGATE_WEBHOOK__URL": "https://hook:webhook-url-password-3c8d@hooks.example/in?token=webhook-url-token-0f4b",
    "SLUICEGATE_PROVIDERS__OA__KIND": "openai",
    "SLUICEGATE_PROVIDERS__OA__API_KEY": "123456789012",  # all digits: still a secret, still masked
}
SECRET_VALUES = [
    *SECRETS_IN_FILE.values(),
    "pseudo-env-secret-5d10",
    "redis-env-password-8a2f",
    "db-env-password-c4e6",
    "ctl-redis-password-19bb",
    "ctl-query-pw-2e7a",
    MASTER_KEY,
    "metrics-env-token-6f3e0a9d",
    "webhook-url-password-3c8d",
    "webhook-url-token-0f4b",
    "123456789012",
]


def _config_with_secrets(path: Path) -> Path:
    s = SECRETS_IN_FILE
    path.write_text(
        f"""
[providers.mh]
kind = "mock"
base_url = "http://127.0.0.1:9"
api_key = "{s["provider_key"]}"
headers = {{ "x-org-token" = "{s["header"]}" }}

[routing]
default_openai = "mh"

[langsmith]
api_key = "{s["langsmith"]}"

[webhook]
secret = "{s["webhook"]}"
"""
    )
    return path


def test_config_prints_every_secret_masked(tmp_path: Path) -> None:
    done = _run(["config", "--config", str(_config_with_secrets(tmp_path / "c.toml"))], SECRETS_IN_ENV)
    assert done.returncode == 0, done.stderr
    for value in SECRET_VALUES:
        assert value not in done.stdout + done.stderr
    shown = json.loads(done.stdout)
    assert shown["providers"]["mh"]["api_key"] == "*****"
    assert shown["providers"]["mh"]["headers"] == {"x-org-token": "*****"}
    assert shown["providers"]["oa"]["api_key"] == "*****"
    assert shown["langsmith"]["api_key"] == shown["webhook"]["secret"] == shown["metrics"]["token"] == "*****"
    assert shown["redaction"]["pseudonym_secret"] == shown["control"]["master_key"] == "*****"
    # URLs stay readable, their passwords do not.
    assert shown["spend"]["redis_url"] == "redis://:*****@127.0.0.1:6399/0"
    assert shown["control"]["database_url"] == "postgresql://app:*****@db:5432/sg"
    assert shown["control"]["redis_url"] == "redis://ctl:*****@r:6379/0?password=*****"
    assert shown["webhook"]["url"] == "https://hook:*****@hooks.example/in?token=*****"


@pytest.mark.parametrize(
    "bad",
    [
        {"SLUICEGATE_SERVER__WORKERS": "0"},  # a field error
        {"SLUICEGATE_PROVIDERS__MH__API_KEY_ENV": "MH_KEY"},  # a model-level error beside the secret
        {"SLUICEGATE_METRICS__TOKEN": "short-7c1"},  # a secret that fails its own validation
    ],
)
def test_validation_errors_print_no_secret(tmp_path: Path, bad: dict[str, str]) -> None:
    done = _run(["config", "--config", str(_config_with_secrets(tmp_path / "c.toml"))], {**SECRETS_IN_ENV, **bad})
    assert done.returncode == 2 and "configuration error" in done.stderr
    for value in [*SECRET_VALUES, *bad.values()]:
        if len(value) > 2:
            assert value not in done.stdout + done.stderr


@pytest.fixture
def redis_with_password(tmp_path: Path) -> Iterator[tuple[Server, str]]:
    port = free_port()
    password = "redis-pw-" + os.urandom(8).hex()
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    args += ["--dir", str(tmp_path), "--requirepass", password]
    with spawn(args, port) as server:
        yield server, password


def test_the_gateway_works_with_secret_settings_and_logs_none(
    mock_server: Server, tmp_path: Path, redis_with_password: tuple[Server, str]
) -> None:
    """Every secret setting in use (provider key and header from the environment, the pseudonym
    secret, a Redis password for spend and for control announcements, the master key, the metrics
    token): calls work, the echo shows none of them, and neither does any log line."""
    rds, password = redis_with_password
    extra = f"""
[redaction]
style = "pseudonym"

[control]
enabled = true
database_url = "sqlite:///{tmp_path / "c.db"}"
poll_interval_s = 0.25

[spend]
backend = "redis"

[[spend.caps]]
level = "workspace"
id = "ws-test"
org = "default"
window = "day"
limit_usd = "100"

[spend.price_overrides.mock-gpt]
input_usd_per_mtok = "1"
output_usd_per_mtok = "2"
"""
    values = {
        "provider_key": "sk-env-provider-" + os.urandom(8).hex(),
        "header": "hdr-env-" + os.urandom(8).hex(),
        "pseudonym": "pseudo-" + os.urandom(8).hex(),
        "metrics": "metrics-env-" + os.urandom(8).hex(),
        "webhook": "whsec-" + os.urandom(8).hex(),
        "langsmith": "lsv2-" + os.urandom(8).hex(),
    }
    env = {
        "SLUICEGATE_PROVIDERS__MH__API_KEY": values["provider_key"],
        "SLUICEGATE_PROVIDERS__MH__HEADERS": json.dumps({"x-org-token": values["header"]}),
        "SLUICEGATE_REDACTION__PSEUDONYM_SECRET": values["pseudonym"],
        "SLUICEGATE_METRICS__TOKEN": values["metrics"],
        "SLUICEGATE_WEBHOOK__SECRET": values["webhook"],
        "SLUICEGATE_LANGSMITH__API_KEY": values["langsmith"],
        "SLUICEGATE_SPEND__REDIS_URL": f"redis://:{password}@127.0.0.1:{rds.port}/0",
        "SLUICEGATE_CONTROL__REDIS_URL": f"redis://:{password}@127.0.0.1:{rds.port}/1",
        "SLUICEGATE_CONTROL__MASTER_KEY": MASTER_KEY,
    }
    email = "jane.doe@example.com"
    with start_gateway(gateway_config(tmp_path / "gw.toml", mock_server.url, extra), env) as gw:
        auth = {"authorization": f"Bearer {GATEWAY_KEY}"}
        body = {"model": "mh/mock-gpt", "messages": [{"role": "user", "content": f"write to {email}"}]}
        ok = httpx.post(f"{gw.url}/v1/chat/completions", json=body, headers=auth, timeout=10)
        assert ok.status_code == 200, ok.text  # reserved and settled on the Redis behind the password
        seen = provider_saw(mock_server)
        assert seen["headers"]["authorization"] == f"Bearer {values['provider_key']}"
        assert seen["headers"]["x-org-token"] == values["header"]
        assert email not in json.dumps(seen["body"])  # pseudonymized with the secret
        echo = httpx.post(
            f"{gw.url}/v1/chat/completions", json={"model": "mh/mock-gpt@echo=1", "messages": CHAT}, headers=auth
        )
        assert echo.status_code == 200
        assert values["provider_key"] not in echo.text and values["header"] not in echo.text
        spent = redis.Redis(port=rds.port, password=password).keys("*")
        assert spent, "nothing reached the spend Redis"
        bearer = {"authorization": f"Bearer {values['metrics']}"}
        assert httpx.get(f"{gw.url}/metrics", headers=bearer).status_code == 200
        assert httpx.get(f"{gw.url}/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"}).status_code == 401
        stop_process(gw.proc)
        assert gw.proc.stdout is not None
        logs = gw.proc.stdout.read().decode(errors="replace")
    assert "announcements unavailable" not in logs
    for value in [*values.values(), password, MASTER_KEY]:
        assert value not in logs


# ── the master key ──────────────────────────────────────────────────────────────────────────────


def _control_env(db: Path, **more: str) -> dict[str, str]:
    return {"SLUICEGATE_CONTROL__ENABLED": "true", "SLUICEGATE_CONTROL__DATABASE_URL": f"sqlite:///{db}", **more}


def _sealed_database(tmp_path: Path) -> tuple[Path, Path, str]:
    """A SQLite control plane whose first start made the key file beside it, holding one sealed
    workspace secret: (database, key file, the key file's text)."""
    db = tmp_path / "c.db"
    boot = _run(["admin", "--json", "bootstrap"], _control_env(db))
    assert boot.returncode == 0, boot.stderr
    ws = json.loads(boot.stdout)["workspace"]

    async def seal() -> None:  # what the admin API's secret PUT writes, under the key file's key
        store = ControlStore(ControlSettings(enabled=True, database_url=f"sqlite:///{db}"))
        try:
            await store.open()
            spec = SecretIn(value="sk-sealed-" + "z" * 20)
            await store.set_secret(Actor("test"), "workspace", ws["id"], ws["org_id"], "openai", spec)
        finally:
            await store.close()

    asyncio.run(seal())
    key_file = tmp_path / "c.db.key"
    return db, key_file, key_file.read_text()


def _serve(tmp_path: Path, db: Path, **env: str) -> subprocess.CompletedProcess[str]:
    args = ["serve", "--port", str(free_port())]
    return _run(args, _control_env(db, SLUICEGATE_SERVER__READY_GRACE_S="0", **env), timeout=30)


def test_a_missing_master_key_stops_the_start_and_makes_no_new_one(tmp_path: Path) -> None:
    db, key_file, _ = _sealed_database(tmp_path)
    key_file.unlink()
    started = _serve(tmp_path, db)
    assert started.returncode == 2
    assert "master key error: 1 provider secret(s) are sealed" in started.stderr
    assert "no master key is configured" in started.stderr and str(key_file) in started.stderr
    assert not key_file.exists(), "a new master key was made while secrets are sealed under the old one"
    # The database commands, which may create the key on a first start, refuse too.
    again = _run(["admin", "bootstrap"], _control_env(db))
    assert again.returncode == 2 and "master key error" in again.stderr
    assert not key_file.exists()


def test_a_wrong_master_key_stops_the_start(tmp_path: Path) -> None:
    db, key_file, original = _sealed_database(tmp_path)
    sealed_id = MasterKey(original).key_id
    other_id = MasterKey(OTHER_KEY).key_id
    key_file.write_text(OTHER_KEY + "\n")  # the file replaced
    started = _serve(tmp_path, db)
    assert started.returncode == 2
    assert f"is {other_id}, but provider secrets are sealed (1 under {sealed_id})" in started.stderr
    key_file.write_text(original)  # the file right, the setting wrong: the setting wins, and is refused
    started = _serve(tmp_path, db, SLUICEGATE_CONTROL__MASTER_KEY=OTHER_KEY)
    assert started.returncode == 2 and f"control.master_key is {other_id}" in started.stderr
    for output in (started.stdout, started.stderr):
        assert OTHER_KEY not in output and original.strip() not in output


# ── a workspace secret that does not open ───────────────────────────────────────────────────────


def test_a_secret_that_does_not_open_fails_closed_with_a_503(mock_server: Server, tmp_path: Path) -> None:
    """The gateway runs with master key X. A workspace secret sealed under another key (as another
    instance with another key would write it) and an organization secret that is damaged do not
    open: that workspace's calls get a 503 in the caller's format, and the provider never sees a
    request (so never the operator's key); other callers are served as before."""
    settings = ControlSettings(enabled=True, database_url=f"sqlite:///{tmp_path / 'c.db'}", master_key=MASTER_KEY)
    seed = _seed(settings)
    extra = f"""
[providers.mh2]
kind = "mock"
base_url = "{mock_server.url}"
api_key = "sk-operator-mh2-key"

[control]
enabled = true
database_url = "{settings.database_url.reveal()}"
poll_interval_s = 0.25
"""
    with start_gateway(
        gateway_config(tmp_path / "gw.toml", mock_server.url, extra), {"SLUICEGATE_CONTROL__MASTER_KEY": MASTER_KEY}
    ) as gw:

        async def write_unopenable() -> None:
            store = ControlStore(ControlSettings(database_url=settings.database_url, master_key=OTHER_KEY))
            await store.open()
            try:
                actor = Actor("test/other-instance")
                ws, org = seed["ws"], seed["org"]["id"]
                await store.set_secret(actor, "workspace", ws["id"], org, "mh", SecretIn(value="sk-ws-" + "w" * 20))
                await store.set_secret(actor, "org", org, org, "mh2", SecretIn(value="sk-org-" + "o" * 20))
                damaged = f"v1:{MasterKey(MASTER_KEY).key_id}:" + base64.b64encode(os.urandom(40)).decode()
                async with store.engine.begin() as conn:
                    where = (secrets_table.c.level == "org", secrets_table.c.provider == "mh2")
                    await conn.execute(update(secrets_table).where(*where).values(ciphertext=damaged))
            finally:
                await store.close()

        asyncio.run(write_unopenable())
        key = seed["key"]
        with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=2) as oa:
            call = lambda: oa.chat.completions.create(model="mh/mock-gpt", messages=CHAT)  # noqa: E731
            _refused_within(call)  # once the gateway has loaded the secrets: from here on nothing goes out
            before = httpx.get(f"{mock_server.url}/mock/stats").json()["requests"]
            with pytest.raises(openai.APIStatusError) as refused:
                call()  # the SDK would retry twice, but is told not to
            assert refused.value.status_code == 503
            assert refused.value.body["code"] == "provider_secret_unavailable"  # type: ignore[index]
            assert "workspace's secret for provider 'mh'" in refused.value.message
            with pytest.raises(openai.APIStatusError) as org_level:
                oa.chat.completions.create(model="mh2/mock-gpt", messages=CHAT)
            assert org_level.value.status_code == 503 and "org's secret for provider 'mh2'" in org_level.value.message
        with (
            anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=2) as an,
            pytest.raises(anthropic.APIStatusError) as in_anthropic,
        ):
            an.messages.create(model="mh/mock-claude", max_tokens=8, messages=CHAT)
        assert in_anthropic.value.status_code == 503
        assert in_anthropic.value.body["type"] == "error"  # type: ignore[index]
        assert httpx.get(f"{mock_server.url}/mock/stats").json()["requests"] == before, "a refused call went out"
        # A caller of another workspace (the config's key) is served with the operator's key.
        ok = httpx.post(
            f"{gw.url}/v1/chat/completions",
            json={"model": "mh/mock-gpt", "messages": CHAT},
            headers={"authorization": f"Bearer {GATEWAY_KEY}"},
        )
        assert ok.status_code == 200


def _refused_within(call: Any, timeout: float = 5.0) -> None:
    """Wait until `call` is refused: the gateway has loaded the new secrets (it polls every 0.25 s)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            call()
        except openai.APIStatusError:
            return
        assert time.monotonic() < deadline, "the unopenable secret never reached the gateway"
        time.sleep(0.05)
