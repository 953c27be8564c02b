"""Azure OpenAI and Gemini providers: settings validation, URL building, deployment mapping and
prices, credentials, and the refusals routing recognizes."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluicegate.config import ConfigError, Settings, load_settings
from sluicegate.errors import UpstreamError
from sluicegate.formats import ANTHROPIC_MESSAGES, OPENAI_CHAT
from sluicegate.proxy.providers import Router, azure_url
from sluicegate.proxy.routing import refusal_case
from sluicegate.secrets import Secret

ENDPOINT = "https://contoso.openai.azure.com"
SETTINGS = Settings.model_validate(
    {
        "providers": {
            "az": {
                "kind": "azure",
                "base_url": ENDPOINT,
                "api_version": "2024-10-21",
                "api_key_env": "AZURE_OPENAI_API_KEY",
                "deployments": {"gpt-4o": "prod-4o", "cheap": {"deployment": "mini-dep", "price_as": "gpt-4o-mini"}},
            },
            "az1": {"kind": "azure", "base_url": ENDPOINT, "api_version": "v1", "auth_header": "authorization"},
            "gem": {"kind": "gemini", "api_key": "AIza-key"},
        },
        "routing": {
            "models": {"routed": {"deployments": [{"provider": "az", "model": "gpt-4o"}, {"provider": "az1"}]}},
        },
    }
)
ROUTER = Router(SETTINGS, {"AZURE_OPENAI_API_KEY": "azkey"})


@pytest.mark.parametrize(
    ("path", "deployment", "version", "url"),
    [
        (
            "/v1/chat/completions",
            "prod-4o",
            "2024-10-21",
            f"{ENDPOINT}/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21",
        ),
        (
            "/v1/embeddings",
            "emb",
            "2024-10-21",
            f"{ENDPOINT}/openai/deployments/emb/embeddings?api-version=2024-10-21",
        ),
        (
            "/v1/responses",
            "prod-4o",
            "2025-04-01-preview",
            f"{ENDPOINT}/openai/responses?api-version=2025-04-01-preview",
        ),
        ("/v1/chat/completions", "prod-4o", "v1", f"{ENDPOINT}/openai/v1/chat/completions"),
        ("/v1/responses", "prod-4o", "preview", f"{ENDPOINT}/openai/v1/responses?api-version=preview"),
        # A deployment's name cannot leave its path segment, nor add a query.
        (
            "/v1/chat/completions",
            "../../x?y=1",
            "2024-10-21",
            f"{ENDPOINT}/openai/deployments/..%2F..%2Fx%3Fy%3D1/chat/completions?api-version=2024-10-21",
        ),
    ],
)
def test_azure_url(path: str, deployment: str, version: str, url: str) -> None:
    assert azure_url(ENDPOINT, path, deployment, version) == url


def test_provider_urls_by_kind() -> None:
    az, az1, gem = ROUTER.providers["az"], ROUTER.providers["az1"], ROUTER.providers["gem"]
    assert az.url("/v1/chat/completions", None, "prod-4o") == (
        f"{ENDPOINT}/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21"
    )
    # A workspace's own endpoint (a tenant base URL) gets the same paths.
    assert az.url("/v1/embeddings", "https://tenant.openai.azure.com/", "e") == (
        "https://tenant.openai.azure.com/openai/deployments/e/embeddings?api-version=2024-10-21"
    )
    assert az1.url("/v1/chat/completions", None, "prod-4o") == f"{ENDPOINT}/openai/v1/chat/completions"
    assert gem.url("/v1/chat/completions") == "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions"


@pytest.mark.parametrize(
    ("model", "fmt", "provider", "upstream"),
    [
        ("gpt-4o", OPENAI_CHAT, "az", "prod-4o"),  # a gateway name -> its deployment
        ("cheap", ANTHROPIC_MESSAGES, "az", "mini-dep"),  # translated, still the deployment
        ("az/gpt-4o", OPENAI_CHAT, "az", "prod-4o"),  # a prefix names a mapped model too
        ("az/other-dep", OPENAI_CHAT, "az", "other-dep"),  # or a deployment by its own name
        ("gem/gemini-2.5-flash", OPENAI_CHAT, "gem", "gemini-2.5-flash"),
    ],
)
def test_route_to_deployments(model: str, fmt: object, provider: str, upstream: str) -> None:
    p, sent = ROUTER.route(model, fmt)  # type: ignore[arg-type]
    assert (p.name, sent) == (provider, upstream)


def test_route_deployments_map_their_models() -> None:
    route = ROUTER.routes.by_name["routed"]
    assert [(d.provider.name, d.model) for d in route.deployments] == [("az", "prod-4o"), ("az1", "routed")]


def test_deployments_are_priced_as_their_models() -> None:
    az = ROUTER.providers["az"]
    assert az.price_model("prod-4o") == "gpt-4o"  # the gateway name, by default
    assert az.price_model("mini-dep") == "gpt-4o-mini"  # `price_as`
    assert az.price_model("unmapped") == "unmapped"
    assert ROUTER.providers["gem"].price_model("gemini-2.5-flash") == "gemini-2.5-flash"


def test_credentials_by_kind() -> None:
    az, az1, gem = ROUTER.providers["az"], ROUTER.providers["az1"], ROUTER.providers["gem"]
    headers = az.headers(None, None)
    assert headers["api-key"] == "azkey" and "authorization" not in headers
    assert az.headers(None, None, Secret("ws-key"))["api-key"] == "ws-key"  # a workspace's secret wins
    assert az1.headers(None, None, Secret("entra-token"))["authorization"] == "Bearer entra-token"
    assert gem.headers(None, None)["authorization"] == "Bearer AIza-key"
    assert "anthropic-version" not in headers
    with pytest.raises(UpstreamError, match="no API key"):
        az1.headers(None, None)  # neither configured nor a workspace's


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('kind = "azure"\napi_version = "2024-10-21"', "needs base_url: its resource endpoint"),
        (f'kind = "azure"\nbase_url = "{ENDPOINT}"', "needs api_version"),
        (f'kind = "azure"\nbase_url = "{ENDPOINT}/openai/v1"\napi_version = "v1"', "without /openai/v1"),
        (f'kind = "azure"\nbase_url = "{ENDPOINT}"\napi_version = "2024-10"', "api_version: String should match"),
        (
            f'kind = "azure"\nbase_url = "{ENDPOINT}"\napi_version = "v1"\ndeployments = {{ gpt-4o = " " }}',
            "deployments.gpt-4o names no deployment",
        ),
        (
            f'kind = "azure"\nbase_url = "{ENDPOINT}"\napi_version = "v1"\n'
            'deployments = { gpt-4o = { price_as = "x" } }',
            "deployment",
        ),
        ('kind = "openai"\napi_version = "v1"', "settings of an azure or bedrock provider only"),
    ],
)
def test_azure_settings_errors_are_clear(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f"[providers.az]\n{toml}\n")
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings(path, environ={})
    assert str(caught.value).startswith("providers.az")


@pytest.mark.parametrize(
    ("body", "case"),
    [
        # Azure's content filter refusal (400, code content_filter).
        (
            b'{"error":{"message":"filtered","type":null,"param":"prompt","code":"content_filter","status":400,'
            b'"innererror":{"code":"ResponsibleAIPolicyViolation"}}}',
            "content_policy",
        ),
        # Gemini's, wrapped in a list of one.
        (
            b'[{"error":{"code":400,"message":"The input token count (250000) exceeds the maximum number of '
            b'tokens allowed (1048576).","status":"INVALID_ARGUMENT"}}]',
            "context_length",
        ),
        (b'[{"error":{"code":400,"message":"Unknown name","status":"INVALID_ARGUMENT"}}]', None),
        (b"[1, 2]", None),
    ],
)
def test_vendor_refusals(body: bytes, case: str | None) -> None:
    assert refusal_case(body) == case
