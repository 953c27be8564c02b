"""Providers and routing: which provider serves a model, and what the request to it carries.

The model name picks the provider: an exact name from `routing.models`, then a `provider/model`
prefix naming a configured provider (the prefix is removed before the request goes upstream), then
the default for the request's format family. A `routing.models` entry may also be a route of
several deployments (`proxy/routing.py`: strategies, retries, fallbacks, circuit breakers). The
client's gateway key is never forwarded: the provider's own key is injected instead.

Provider kinds differ in where a request goes and how it authenticates, settled when the provider
is built: `openai`, `openai_compatible` and `gemini` (an `openai_compatible` preset for Google's
endpoint) take the client's path below their `/v1`-style base URL; `azure` builds Azure OpenAI's
deployment URLs with their `api-version` and sends the key as `api-key`; `bedrock` (AWS Bedrock's
Anthropic models) goes to the model's InvokeModel URL, signed with AWS credentials, its body and
answers rewritten on its own path (`proxy/bedrock.py`); `anthropic` and `mock` take the client's
path as it is.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import quote

from sluicegate import __version__
from sluicegate.config import ProviderSettings, Settings
from sluicegate.errors import InvalidRequest, NotFound, UpstreamError
from sluicegate.formats.base import Family, WireFormat
from sluicegate.formats.translate import Bridge, bridge
from sluicegate.secrets import Secret

if TYPE_CHECKING:
    from sluicegate.proxy.bedrock import Bedrock

FAMILIES: dict[str, frozenset[Family]] = {
    "openai": frozenset({"openai"}),
    "openai_compatible": frozenset({"openai"}),
    "anthropic": frozenset({"anthropic"}),
    "azure": frozenset({"openai"}),
    "gemini": frozenset({"openai"}),
    "bedrock": frozenset({"anthropic"}),
    "mock": frozenset({"openai", "anthropic"}),
}
# The auth header of each kind when `auth_header` is not set (a value other than `authorization`
# carries the key itself; `authorization` carries `Bearer <key>`).
DEFAULT_AUTH = {"anthropic": "x-api-key", "azure": "api-key"}
# The kinds whose requests fail without a key (the others: self-hosted servers that may need none).
NEEDS_KEY = frozenset({"openai", "anthropic", "azure", "gemini"})
# Kinds whose base URL stands for the client's `/v1` (the OpenAI SDK's convention).
_BELOW_V1 = frozenset({"openai", "openai_compatible", "gemini"})
# Azure OpenAI paths that name their deployment in the URL (a dated api-version); the others
# (the Responses API) name it in the body's `model`.
_AZURE_DEPLOYMENT_PATHS = frozenset({"/v1/chat/completions", "/v1/embeddings", "/v1/completions"})
ANTHROPIC_VERSION = "2023-06-01"
USER_AGENT = f"sluicegate/{__version__}"


@dataclass(frozen=True)
class Provider:
    """A configured provider, ready to build upstream requests."""

    name: str
    kind: str
    base_url: str | None  # None: the in-process mock
    api_key: Secret | None
    auth_header: str
    static_headers: dict[str, Secret] = field(default_factory=dict)  # revealed only into a request
    models: tuple[str, ...] = ()
    families: frozenset[Family] = frozenset()  # the formats it speaks (its kind's unless configured)
    # Azure OpenAI: the `api-version` (`v1`/`preview`: the v1 API), the deployment each gateway
    # model name stands for, and the model each deployment is priced as.
    api_version: str | None = None
    deployments: dict[str, str] = field(default_factory=dict)
    price_as: dict[str, str] = field(default_factory=dict)
    # AWS Bedrock: how a call is signed, sent and read back (None: every other kind).
    bedrock: Bedrock | None = None

    @classmethod
    def from_settings(
        cls, name: str, s: ProviderSettings, environ: Mapping[str, str], max_event_bytes: int = 8 * 1024 * 1024
    ) -> Provider:
        mapped = s.azure_deployments()
        bedrock = None
        if s.kind == "bedrock":  # botocore is loaded only for a Bedrock provider
            from sluicegate.proxy.bedrock import AwsCredentials, Bedrock

            assert s.region is not None
            credentials = AwsCredentials.from_environ(s.aws_env(), environ)
            bedrock = Bedrock(name, s.region, credentials, max_event_bytes)
        return cls(
            name=name,
            kind=s.kind,
            base_url=s.resolved_base_url(),
            api_key=s.resolved_api_key(environ),
            auth_header=(s.auth_header or DEFAULT_AUTH.get(s.kind, "authorization")).lower(),
            static_headers={k.lower(): v for k, v in s.headers.items()},
            models=tuple(s.models),
            families=frozenset(s.formats) if s.formats else FAMILIES[s.kind],
            api_version=s.api_version,
            deployments={m: d.deployment for m, d in mapped.items()},
            price_as={d.deployment: d.price_as or m for m, d in mapped.items()},
            bedrock=bedrock,
        )

    def deployment(self, model: str) -> str:
        """The name `model` is sent under: its deployment when the provider maps it, else itself."""
        return self.deployments.get(model, model) if self.deployments else model

    def price_model(self, model: str) -> str:
        """The model a call sent to `model` (the upstream name: an Azure deployment) is priced as."""
        return self.price_as.get(model, model) if self.price_as else model

    def speaks(self, family: Family) -> bool:
        return family in (self.families or FAMILIES[self.kind])

    def serves(self, fmt: WireFormat) -> bool:
        """Whether a request in `fmt` can go to this provider: in its own format, or translated."""
        return self.speaks(fmt.family) or self.translation(fmt) is not None

    def translation(self, fmt: WireFormat) -> Bridge | None:
        """How a request in `fmt` reaches this provider when it does not speak `fmt` (None: it
        does, or no translation exists; see `speaks`)."""
        return bridge(fmt, self.families or FAMILIES[self.kind], self.kind)

    def url(self, path: str, base_url: str | None = None, model: str = "") -> str | None:
        """The upstream URL for a client path such as `/v1/chat/completions`, sent to `model` (the
        upstream model name: an Azure deployment's).

        OpenAI-style base URLs end in `/v1` (as the OpenAI SDK's do), so the client's `/v1` is not
        repeated; Anthropic-style and mock base URLs are the server root; an Azure endpoint gets
        Azure's paths (`azure_url`).
        """
        base = (base_url.rstrip("/") if base_url else None) or self.base_url
        if base is None:
            return None
        if self.kind in _BELOW_V1:
            return base + path[3:]
        if self.kind == "azure":
            return azure_url(base, path, model, self.api_version or "v1")
        if self.kind == "bedrock":  # a stream goes to its -with-response-stream twin (`Bedrock.send`)
            return f"{base}/model/{quote(model, safe='')}/invoke"
        return base + path

    def headers(
        self,
        anthropic_version: str | None,
        anthropic_beta: str | None,
        api_key: Secret | None = None,
        tenant_url: bool = False,
    ) -> dict[str, str]:
        """The upstream request headers: content type, the provider's key (`api_key`, a workspace's
        secret, wins over the configured one), and what passes through.

        With `tenant_url` (the request goes to a base URL a tenant set), only the tenant's key is
        sent: never the operator's key nor its static `headers`.
        """
        headers = {"content-type": "application/json", "accept-encoding": "identity", "user-agent": USER_AGENT}
        if tenant_url and api_key is None:
            raise UpstreamError(f"provider {self.name!r}: a tenant base URL needs the tenant's own key")
        api_key = api_key or self.api_key
        if api_key is not None:
            key = api_key.reveal()
            headers[self.auth_header] = f"Bearer {key}" if self.auth_header == "authorization" else key
        elif self.kind in NEEDS_KEY:
            raise UpstreamError(f"provider {self.name!r} has no API key configured", code="provider_not_configured")
        if self.kind in ("anthropic", "mock"):
            headers["anthropic-version"] = anthropic_version or ANTHROPIC_VERSION
            if anthropic_beta:
                headers["anthropic-beta"] = anthropic_beta
        elif anthropic_beta and self.bedrock is not None:  # goes into the body (`Bedrock.send`)
            headers["anthropic-beta"] = anthropic_beta
        if not tenant_url:  # the operator's own headers never go to a URL a tenant chose
            for name, value in self.static_headers.items():
                headers[name] = value.reveal()
        return headers


def azure_url(endpoint: str, path: str, deployment: str, api_version: str) -> str:
    """The Azure OpenAI URL of a client path (`/v1/chat/completions`) at `endpoint`.

    A dated `api_version` names the deployment in the path where Azure's API does
    (`/openai/deployments/{deployment}/chat/completions?api-version=2024-10-21`, embeddings too) and
    in the body elsewhere (`/openai/responses?api-version=…`); `v1` is the v1 API
    (`/openai/v1/chat/completions`, the deployment in the body's `model`), `preview` its preview
    (`?api-version=preview`). The deployment's name is percent-encoded: it cannot leave its segment.
    """
    if api_version == "v1":
        return f"{endpoint}/openai/v1{path[3:]}"
    if api_version == "preview":
        return f"{endpoint}/openai/v1{path[3:]}?api-version=preview"
    if path in _AZURE_DEPLOYMENT_PATHS:
        return f"{endpoint}/openai/deployments/{quote(deployment, safe='')}{path[3:]}?api-version={api_version}"
    return f"{endpoint}/openai{path[3:]}?api-version={api_version}"


class Router:
    """Maps a model name to (provider, the model name the provider should see), and keeps the
    routes of several deployments (`routes`).

    Arguments:
        settings: providers and routing.
        environ: where `api_key_env` variables are read.
        clock: monotonic seconds, for the routes' breakers and retry-after (a test's own).
        rng: the routes' random source for the `weighted` strategy (default: `routing.seed`).
    """

    def __init__(
        self,
        settings: Settings,
        environ: Mapping[str, str],
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        from sluicegate.proxy.routing import Routes

        max_event = settings.upstream.max_event_bytes
        self.providers = {n: Provider.from_settings(n, p, environ, max_event) for n, p in settings.providers.items()}
        r = settings.routing
        self.routes = Routes(r, self.providers, clock, rng)
        # A route answers `route()` with its first deployment (the model list, a cap's substitute).
        self._exact = {model: self.providers[p] for model, p in r.models.items() if isinstance(p, str)}
        # A route answers `route()` with its first deployment in the request's format (the list of
        # models, a cap's substitute, the price of a call whose breakers are all open); a model an
        # Azure provider maps to a deployment, with that provider and deployment.
        self._first: dict[tuple[str, Family], tuple[Provider, str]] = {}
        for name, route in self.routes.by_name.items():
            self._exact[name] = route.deployments[0].provider
            for family in ("openai", "anthropic"):
                d = next((d for d in route.deployments if d.provider.speaks(family)), route.deployments[0])
                self._first[name, family] = (d.provider, d.model)
        for provider in self.providers.values():
            for model in provider.models:
                self._exact.setdefault(model, provider)
            for model, deployment in provider.deployments.items():  # sent under another name
                if self._exact.setdefault(model, provider) is provider:
                    for family in ("openai", "anthropic"):
                        self._first.setdefault((model, family), (provider, deployment))
        self._default: dict[Family, Provider | None] = {
            "openai": self.providers.get(r.default_openai) if r.default_openai else None,
            "anthropic": self.providers.get(r.default_anthropic) if r.default_anthropic else None,
        }

    def route(self, model: str, fmt: WireFormat) -> tuple[Provider, str]:
        """The provider for `model` in format `fmt`.

        Raises:
            NotFound: no provider serves the model (code `model_not_found`).
            InvalidRequest: the provider does not speak the request's format, and it cannot be
                translated to one the provider speaks.
        """
        upstream_model = model
        provider = self._exact.get(model)
        if provider is not None and self._first and (model, fmt.family) in self._first:
            provider, upstream_model = self._first[model, fmt.family]
        if provider is None and "/" in model:
            prefix, rest = model.split("/", 1)
            if prefix in self.providers and rest:
                provider = self.providers[prefix]
                upstream_model = provider.deployment(rest)
        if provider is None:
            provider = self._default[fmt.family]
        if provider is None:
            raise NotFound(
                f"the model {model!r} does not exist or is not routed", code="model_not_found", param="model"
            )
        if not provider.speaks(fmt.family) and provider.translation(fmt) is None:
            raise InvalidRequest(
                f"the model {model!r} is served by a provider that does not speak the {fmt.family} format",
                code="unsupported_format",
                param="model",
            )
        return provider, upstream_model

    def listed_models(self) -> list[tuple[str, str]]:
        """(model, provider name) for every model named in the configuration, sorted."""
        return sorted((m, p.name) for m, p in self._exact.items())
