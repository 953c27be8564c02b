"""The rules for tenant base URLs and the addresses behind them (no sockets here: see
test_upstream_guard.py for the connector)."""

from __future__ import annotations

import pytest

from sluicegate.config import ConfigError, Settings, load_settings
from sluicegate.proxy.egress import AddressPolicy, TenantUrls, parse_pattern

STRICT = AddressPolicy()


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("fc00::1", "private"),
        ("169.254.169.254", "metadata"),
        ("169.254.170.2", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("192.0.0.192", "metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%1", "link-local"),
        ("100.64.0.1", "cgnat"),
        ("100.127.255.254", "cgnat"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("255.255.255.255", "reserved"),
        ("198.18.0.1", "reserved"),
        ("2001:db8::1", "reserved"),
        # IPv6 spellings of IPv4 addresses are judged as the IPv4 address
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "metadata"),
        ("64:ff9b::a9fe:a9fe", "metadata"),  # NAT64 of 169.254.169.254
        ("2002:7f00:1::1", "loopback"),  # 6to4 of 127.0.0.1
        ("2002:a00:1::1", "private"),  # 6to4 of 10.0.0.1
        ("not-an-address", "not an address"),
    ],
)
def test_refused_addresses_name_their_kind(address: str, kind: str) -> None:
    assert STRICT.refusal(address) == kind


@pytest.mark.parametrize("address", ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111", "2002:5db8:d70e::1"])
def test_public_addresses_pass(address: str) -> None:
    assert STRICT.refusal(address) is None


def test_the_operator_may_allow_ranges() -> None:
    policy = AddressPolicy(["127.0.0.0/8", "fd00:ec2::/32"])
    assert policy.refusal("127.0.0.1") is None
    assert policy.refusal("::ffff:127.0.0.1") is None  # the same address
    assert policy.refusal("::1") == "loopback"  # not in 127.0.0.0/8
    assert policy.refusal("fd00:ec2::254") is None  # allowed explicitly
    assert policy.refusal("10.0.0.1") == "private"
    assert policy.refusal("169.254.169.254") == "metadata"


def _urls(patterns: dict[str, list[str]], cidrs: list[str] | None = None) -> TenantUrls:
    settings = Settings.model_validate(
        {
            "providers": {
                "openai": {"kind": "openai", "api_key": "k"},
                "azure": {"kind": "openai_compatible", "base_url": "https://corp.openai.azure.com/openai"},
                "vllm": {"kind": "openai_compatible", "base_url": "http://10.0.0.5:8000/v1"},
                "mock": {"kind": "mock"},
            },
            "upstream": {"tenant_base_urls": patterns, "tenant_allowed_cidrs": cidrs or []},
        }
    )
    return TenantUrls.from_settings(settings)


URLS = _urls(
    {
        "openai": ["llm.example", "*.openai.azure.com", "http://plain.example:8080", "https://any-port.example:*"],
        "openai_compatible": ["[2606:4700::1111]"],
    }
)


@pytest.mark.parametrize(
    ("provider", "url"),
    [
        ("openai", "https://api.openai.com/v1"),  # the provider's own origin
        ("openai", "https://API.OpenAI.com:443/v1/"),
        ("openai", "https://llm.example/v1"),
        ("openai", "https://llm.example/any/path/at/all"),
        ("openai", "https://res-1.openai.azure.com/openai/deployments/x"),
        ("openai", "http://plain.example:8080/v1"),
        ("openai", "https://any-port.example:8443/v1"),
        ("azure", "https://corp.openai.azure.com/other"),  # own origin
        ("azure", "https://[2606:4700:0::1111]/v1"),
    ],
)
def test_allowed_tenant_urls(provider: str, url: str) -> None:
    assert URLS.refusal(provider, url) is None


@pytest.mark.parametrize(
    ("provider", "url", "why"),
    [
        ("openai", "https://evil.example/v1", "is not allowed for openai providers"),
        ("openai", "http://llm.example/v1", "is not allowed"),  # a bare host means https only
        ("openai", "https://llm.example:8443/v1", "is not allowed"),  # and its default port only
        ("openai", "https://llm.example.evil.example/v1", "is not allowed"),
        ("openai", "https://openai.azure.com/v1", "is not allowed"),  # *. needs a label
        ("openai", "https://a.b.openai.azure.com.evil.example/", "is not allowed"),
        ("openai", "https://user:pw@llm.example/v1", "user name or password"),
        ("openai", "https://llm.example@evil.example/v1", "user name or password"),
        ("openai", "https://llm.example/v1?x=1", "query or a fragment"),
        ("openai", "https://llm.example/v1#x", "query or a fragment"),
        ("openai", "ftp://llm.example/v1", "absolute http"),
        ("openai", "/v1", "absolute http"),
        ("openai", "http://169.254.169.254/latest/meta-data/", "metadata address"),
        ("openai", "http://[::ffff:169.254.169.254]/", "metadata address"),
        ("openai", "http://[fd00:ec2::254]/", "metadata address"),
        ("openai", "http://metadata.google.internal/computeMetadata/v1/", "cloud metadata service"),
        ("openai", "http://METADATA.google.internal./", "cloud metadata service"),
        ("openai", "http://127.0.0.1:8080/v1", "loopback address"),
        ("openai", "http://[::1]:8080/v1", "loopback address"),
        ("openai", "http://0.0.0.0:8080/v1", "unspecified address"),
        ("openai", "http://localhost:8080/v1", "is not allowed"),
        ("openai", "http://2130706433/v1", "is not allowed"),
        ("vllm", "http://10.0.0.5:8000/v1", "private address"),  # its own origin, but an address literal
        ("mock", "http://anything.example/", "is not allowed for mock providers"),  # in-process: no origin
        ("nope", "https://llm.example/v1", "no model provider named 'nope'"),
        ("langsmith", "https://llm.example/v1", "no model provider named"),
    ],
)
def test_refused_tenant_urls(provider: str, url: str, why: str) -> None:
    refused = URLS.refusal(provider, url)
    assert refused is not None and why in refused


def test_an_allowed_cidr_lets_an_address_literal_through_the_url_check() -> None:
    urls = _urls({"openai_compatible": ["http://127.0.0.1:*"]}, ["127.0.0.0/8"])
    assert urls.refusal("vllm", "http://127.0.0.1:9999/v1") is None
    assert urls.refusal("vllm", "http://10.0.0.5:8000/v1") is not None  # still private


def test_verdicts_are_cached_per_provider_and_url() -> None:
    urls = _urls({"openai": ["llm.example"]})
    first = urls.refusal("openai", "https://evil.example/v1")
    assert urls.refusal("openai", "https://evil.example/v1") is first
    assert ("openai", "https://evil.example/v1") in urls._verdicts


@pytest.mark.parametrize(
    "pattern", ["", "https://", "*", "https://x.example/path", "x.example:99999", "[zz::1]", "x example", "*.*"]
)
def test_bad_patterns_are_config_errors(tmp_path, pattern: str) -> None:  # type: ignore[no-untyped-def]
    if pattern == "*":
        assert parse_pattern(pattern).matches("https", "anything.example", 443)  # any host, https, port 443
        return
    path = tmp_path / "c.toml"
    path.write_text(f'[upstream]\ntenant_base_urls = {{ openai = ["{pattern}"] }}\n')
    with pytest.raises(ConfigError, match=r"upstream\.tenant_base_urls"):
        load_settings(path, environ={})


def test_bad_cidrs_and_kinds_are_config_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "c.toml"
    for line in ('tenant_allowed_cidrs = ["10.0.0.1/8"]', 'tenant_allowed_cidrs = ["nope"]'):
        path.write_text(f"[upstream]\n{line}\n")
        with pytest.raises(ConfigError, match=r"upstream\.tenant_allowed_cidrs"):
            load_settings(path, environ={})
    path.write_text('[upstream]\ntenant_base_urls = { no_such_kind = ["x.example"] }\n')
    with pytest.raises(ConfigError, match=r"upstream\.tenant_base_urls"):
        load_settings(path, environ={})
