"""Azure OpenAI credentials and egress through running gateways: a workspace's own key (a provider
secret of the control plane) sent as `api-key` in place of the operator's; a workspace's own Azure
endpoint (a tenant base URL) given Azure's paths and only the workspace's key; the operator's Azure
calls through an `HTTP_PROXY` egress proxy, in absolute form with the deployment and api-version.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from tests.conftest import (
    GATEWAY_KEY,
    Server,
    free_port,
    gateway_config,
    granian_args,
    provider_saw,
    spawn,
    start_gateway,
)
from tests.integration.test_tenant_urls import RawUpstream, answer_ok
from tests.unit.control.pg import MASTER_KEY

from sluicegate.control.audit import Actor
from sluicegate.control.schemas import KeyIn, SecretIn
from sluicegate.control.settings import ControlSettings
from sluicegate.control.store import ControlStore

OPERATOR_KEY = "operator-azure-key-" + "o" * 16
WORKSPACE_KEY = "workspace-azure-key-" + "w" * 16
TENANT_KEY = "tenant-azure-key-" + "t" * 16
STATIC = "operator-static-value-never-for-tenants"
MESSAGES: Any = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def azure_mock() -> Iterator[Server]:
    port = free_port()
    with spawn(granian_args("sluicegate.mock.azure:create_app", port), port) as server:
        yield server


def _seed(db: str, tenant_endpoint: str) -> str:
    """A workspace with a key, its own key for `azure` and its own endpoint and key for
    `azure-tenant`; returns the workspace's gateway key."""
    settings = ControlSettings(enabled=True, database_url=db, master_key=MASTER_KEY)

    async def run() -> str:
        store = ControlStore(settings)
        await store.open()
        try:
            actor = Actor("test/seed")
            org = await store.create_org(actor, "acme")
            ws = await store.create_workspace(actor, org["id"], "prod")
            _, key = await store.create_key(actor, ws, KeyIn(name="app"))
            await store.set_secret(actor, "workspace", ws["id"], org["id"], "azure", SecretIn(value=WORKSPACE_KEY))
            spec = SecretIn(value=TENANT_KEY, base_url=tenant_endpoint)
            await store.set_secret(actor, "workspace", ws["id"], org["id"], "azure-tenant", spec)
            return str(key)
        finally:
            await store.close()

    return asyncio.run(run())


@pytest.fixture(scope="module")
def tenant(
    azure_mock: Server, mock_server: Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, str]]:
    tmp = tmp_path_factory.mktemp("azure-creds")
    db = f"sqlite:///{tmp / 'control.db'}"
    key = _seed(db, azure_mock.url)
    extra = f"""
[providers.azure]
kind = "azure"
base_url = "{azure_mock.url}"
api_version = "2024-10-21"
api_key = "{OPERATOR_KEY}"

[providers.azure-tenant]
kind = "azure"
base_url = "https://operator.openai.azure.com"
api_version = "2024-10-21"
api_key = "{OPERATOR_KEY}"
headers = {{ x-operator-static = "{STATIC}" }}

[control]
enabled = true
database_url = "{db}"
poll_interval_s = 0.25

[spend.default_price]
input_usd_per_mtok = "1"
output_usd_per_mtok = "2"
"""
    path = gateway_config(tmp / "gw.toml", mock_server.url, extra)
    upstream = """[upstream]
tenant_base_urls = { azure = ["http://127.0.0.1:*"] }
tenant_allowed_cidrs = ["127.0.0.0/8"]
"""
    path.write_text(path.read_text().replace("[upstream]\n", upstream, 1))
    with start_gateway(path, {"SLUICEGATE_CONTROL__MASTER_KEY": MASTER_KEY}) as gw:
        yield gw, key


def test_a_workspaces_own_azure_key_replaces_the_operators(tenant: tuple[Server, str], azure_mock: Server) -> None:
    gw, key = tenant
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0) as oa:
        reply = oa.chat.completions.create(model="azure/contoso-4o", messages=MESSAGES)
    assert reply.choices[0].message.content
    seen = provider_saw(azure_mock)
    assert seen["path"] == "/openai/deployments/contoso-4o/chat/completions"
    assert seen["headers"]["api-key"] == WORKSPACE_KEY
    assert all(OPERATOR_KEY not in v and key not in v for v in seen["headers"].values())


def test_a_workspaces_own_azure_endpoint_gets_azures_paths_and_only_its_key(
    tenant: tuple[Server, str], azure_mock: Server
) -> None:
    gw, key = tenant
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0) as oa:
        chunks = list(oa.chat.completions.create(model="azure-tenant/dep-1", messages=MESSAGES, stream=True))
    assert chunks[0].choices == [] and "prompt_filter_results" in (chunks[0].model_extra or {})
    seen = provider_saw(azure_mock)
    assert seen["path"] == "/openai/deployments/dep-1/chat/completions"
    assert seen["query"] == "api-version=2024-10-21"
    assert seen["headers"]["api-key"] == TENANT_KEY
    assert "x-operator-static" not in seen["headers"]
    assert all(OPERATOR_KEY not in v and STATIC not in v for v in seen["headers"].values())


def test_azure_calls_go_through_the_egress_proxy(mock_server: Server, tmp_path: Path) -> None:
    proxy = RawUpstream(answer_ok)
    try:
        extra = f"""
[providers.azure]
kind = "azure"
base_url = "http://contoso.openai.azure.example"
api_version = "2024-10-21"
api_key = "{OPERATOR_KEY}"
deployments = {{ gpt-azure = "contoso-4o" }}
"""
        config = gateway_config(tmp_path / "gw.toml", mock_server.url, extra)
        url = f"http://127.0.0.1:{proxy.port}"
        env = {"HTTP_PROXY": url, "http_proxy": url, "NO_PROXY": "", "no_proxy": ""}
        with (
            start_gateway(config, env) as gw,
            openai.OpenAI(base_url=f"{gw.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as oa,
        ):
            reply = oa.chat.completions.create(model="gpt-azure", messages=MESSAGES)
        assert reply.choices[0].message.content == "from the recorder"
        (seen,) = proxy.requests
        assert seen.path == (
            "http://contoso.openai.azure.example/openai/deployments/contoso-4o/chat/completions?api-version=2024-10-21"
        )
        assert seen.headers["api-key"] == OPERATOR_KEY
        assert seen.headers["host"] == "contoso.openai.azure.example"
    finally:
        proxy.close()
