import pytest

from sluicegate.config import Settings
from sluicegate.errors import InvalidRequest, NotFound, UpstreamError
from sluicegate.formats import ANTHROPIC_MESSAGES, OPENAI_CHAT, OPENAI_EMBEDDINGS, OPENAI_RESPONSES
from sluicegate.proxy.providers import Router
from sluicegate.secrets import Secret

SETTINGS = Settings.model_validate(
    {
        "providers": {
            "oa": {"kind": "openai", "api_key_env": "OA_KEY"},
            "an": {"kind": "anthropic", "api_key": "ant-secret"},
            "local": {"kind": "openai_compatible", "base_url": "http://127.0.0.1:9/v1", "models": ["llama"]},
            "azure": {
                "kind": "openai_compatible",
                "base_url": "http://h/v1",
                "auth_header": "api-key",
                "api_key": "az",
                "headers": {"X-Extra": "1"},
            },
        },
        "routing": {"models": {"gpt-4o": "oa", "claude-x": "an"}, "default_openai": "local"},
    }
)
ROUTER = Router(SETTINGS, {"OA_KEY": "sk-oa"})


@pytest.mark.parametrize(
    ("model", "fmt", "provider", "upstream_model"),
    [
        ("gpt-4o", OPENAI_CHAT, "oa", "gpt-4o"),
        ("llama", OPENAI_CHAT, "local", "llama"),
        ("oa/gpt-4.1", OPENAI_CHAT, "oa", "gpt-4.1"),  # provider/model prefix is stripped
        ("anything-else", OPENAI_CHAT, "local", "anything-else"),  # the family's default
        ("claude-x", ANTHROPIC_MESSAGES, "an", "claude-x"),
        ("unknown/x", OPENAI_CHAT, "local", "unknown/x"),  # not a provider name: no prefix routing
    ],
)
def test_route(model, fmt, provider, upstream_model) -> None:  # type: ignore[no-untyped-def]
    p, m = ROUTER.route(model, fmt)
    assert (p.name, m) == (provider, upstream_model)


def test_unknown_model_without_default_is_404() -> None:
    with pytest.raises(NotFound) as info:
        ROUTER.route("claude-unknown", ANTHROPIC_MESSAGES)
    assert info.value.code == "model_not_found"


def test_format_mismatch_is_refused_when_it_cannot_be_translated() -> None:
    with pytest.raises(InvalidRequest, match="does not speak the openai format"):
        ROUTER.route("claude-x", OPENAI_RESPONSES)
    with pytest.raises(InvalidRequest, match="does not speak the openai format"):
        ROUTER.route("claude-x", OPENAI_EMBEDDINGS)


def test_format_mismatch_is_translated_between_chat_and_messages() -> None:
    oa, an = ROUTER.providers["oa"], ROUTER.providers["an"]
    assert ROUTER.route("gpt-4o", ANTHROPIC_MESSAGES) == (oa, "gpt-4o")
    assert ROUTER.route("claude-x", OPENAI_CHAT) == (an, "claude-x")
    assert oa.translation(OPENAI_CHAT) is None and an.translation(ANTHROPIC_MESSAGES) is None
    to_openai, to_local = oa.translation(ANTHROPIC_MESSAGES), ROUTER.providers["local"].translation(ANTHROPIC_MESSAGES)
    assert to_openai is not None and to_openai.target is OPENAI_CHAT and to_openai.source is ANTHROPIC_MESSAGES
    body = {"model": "m", "max_tokens": 5, "messages": []}
    assert to_openai.request(body)["max_completion_tokens"] == 5  # OpenAI's own API: its reasoning models need it
    assert to_local is not None and to_local.request(body)["max_tokens"] == 5  # what compatible servers read
    to_anthropic = an.translation(OPENAI_CHAT)
    assert to_anthropic is not None and to_anthropic.target is ANTHROPIC_MESSAGES


def test_a_provider_may_declare_the_formats_it_speaks() -> None:
    settings = Settings.model_validate(
        {"providers": {"m": {"kind": "mock", "base_url": "http://127.0.0.1:9", "formats": ["anthropic"]}}}
    )
    m = Router(settings, {}).providers["m"]
    assert m.speaks("anthropic") and not m.speaks("openai")
    bridge = m.translation(OPENAI_CHAT)
    assert bridge is not None and bridge.target is ANTHROPIC_MESSAGES
    assert Router(SETTINGS, {}).providers["local"].families == frozenset({"openai"})  # the kind's, by default


def test_headers_inject_the_provider_key_and_pass_anthropic_headers() -> None:
    oa = ROUTER.providers["oa"]
    assert oa.headers("2026-10-21", "beta-1")["authorization"] == "Bearer sk-oa"
    assert "anthropic-version" not in oa.headers("2026-10-21", None)
    an = ROUTER.providers["an"].headers("2026-10-21", "beta-1")
    assert an["x-api-key"] == "ant-secret" and "authorization" not in an
    assert (an["anthropic-version"], an["anthropic-beta"]) == ("2026-10-21", "beta-1")
    assert ROUTER.providers["an"].headers(None, None)["anthropic-version"] == "2023-06-01"
    az = ROUTER.providers["azure"].headers(None, None)
    assert az["api-key"] == "az" and az["x-extra"] == "1"


def test_a_tenant_url_gets_the_tenants_key_and_none_of_the_operators_headers() -> None:
    azure = ROUTER.providers["azure"]
    tenant = azure.headers(None, None, Secret("tenant-key"), tenant_url=True)
    assert tenant["api-key"] == "tenant-key" and "x-extra" not in tenant
    assert azure.headers(None, None, Secret("tenant-key"))["x-extra"] == "1"  # the operator's own URL
    with pytest.raises(UpstreamError, match="tenant's own key"):
        azure.headers(None, None, None, tenant_url=True)  # never the operator's key instead


def test_urls() -> None:
    assert ROUTER.providers["oa"].url("/v1/chat/completions") == "https://api.openai.com/v1/chat/completions"
    assert ROUTER.providers["an"].url("/v1/messages") == "https://api.anthropic.com/v1/messages"
    assert ROUTER.providers["local"].url("/v1/embeddings") == "http://127.0.0.1:9/v1/embeddings"


def test_provider_without_key_is_refused_before_sending() -> None:
    bare = Router(SETTINGS, {})
    with pytest.raises(UpstreamError, match="no API key"):
        bare.providers["oa"].headers(None, None)


def test_repr_hides_the_key() -> None:
    assert "ant-secret" not in repr(ROUTER.providers["an"])


def test_listed_models() -> None:
    assert ROUTER.listed_models() == [("claude-x", "an"), ("gpt-4o", "oa"), ("llama", "local")]
