"""Providers and routing: which provider serves a model, and what the request to it carries.

The model name picks the provider: an exact name from `routing.models`, then a `provider/model`
prefix naming a configured provider (the prefix is removed before the request goes upstream), then
the default for the request's format family. A `routing.models` entry may also be a route of
several deployments (`proxy/routing.py`: strategies, retries, fallbacks, circuit breakers). The
client's gateway key is never forwarded: the provider's own key is injected instead.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sluicegate import __version__
from sluicegate.config import ProviderSettings, Settings
from sluicegate.errors import InvalidRequest, NotFound, UpstreamError
from sluicegate.formats.base import Family, WireFormat
from sluicegate.formats.translate import Bridge, bridge
from sluicegate.secrets import Secret

FAMILIES: dict[str, frozenset[Family]] = {
    "openai": frozenset({"openai"}),
    "openai_compatible": frozenset({"openai"}),
    "anthropic": frozenset({"anthropic"}),
    "mock": frozenset({"openai", "anthropic"}),
}
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

    @classmethod
    def from_settings(cls, name: str, s: ProviderSettings, environ: Mapping[str, str]) -> Provider:
        default_auth = "x-api-key" if s.kind == "anthropic" else "authorization"
        return cls(
            name=name,
            kind=s.kind,
            base_url=s.resolved_base_url(),
            api_key=s.resolved_api_key(environ),
            auth_header=(s.auth_header or default_auth).lower(),
            static_headers={k.lower(): v for k, v in s.headers.items()},
            models=tuple(s.models),
            families=frozenset(s.formats) if s.formats else FAMILIES[s.kind],
        )

    def speaks(self, family: Family) -> bool:
        return family in (self.families or FAMILIES[self.kind])

    def serves(self, fmt: WireFormat) -> bool:
        """Whether a request in `fmt` can go to this provider: in its own format, or translated."""
        return self.speaks(fmt.family) or self.translation(fmt) is not None

    def translation(self, fmt: WireFormat) -> Bridge | None:
        """How a request in `fmt` reaches this provider when it does not speak `fmt` (None: it
        does, or no translation exists; see `speaks`)."""
        return bridge(fmt, self.families or FAMILIES[self.kind], self.kind)

    def url(self, path: str, base_url: str | None = None) -> str | None:
        """The upstream URL for a client path such as `/v1/chat/completions`.

        OpenAI-style base URLs end in `/v1` (as the OpenAI SDK's do), so the client's `/v1` is not
        repeated; Anthropic-style and mock base URLs are the server root.
        """
        base = (base_url.rstrip("/") if base_url else None) or self.base_url
        if base is None:
            return None
        if self.kind in ("openai", "openai_compatible"):
            return base + path[3:]
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
        elif self.kind in ("openai", "anthropic"):
            raise UpstreamError(f"provider {self.name!r} has no API key configured", code="provider_not_configured")
        if self.kind in ("anthropic", "mock"):
            headers["anthropic-version"] = anthropic_version or ANTHROPIC_VERSION
            if anthropic_beta:
                headers["anthropic-beta"] = anthropic_beta
        if not tenant_url:  # the operator's own headers never go to a URL a tenant chose
            for name, value in self.static_headers.items():
                headers[name] = value.reveal()
        return headers


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

        self.providers = {n: Provider.from_settings(n, p, environ) for n, p in settings.providers.items()}
        r = settings.routing
        self.routes = Routes(r, self.providers, clock, rng)
        # A route answers `route()` with its first deployment (the model list, a cap's substitute).
        self._exact = {model: self.providers[p] for model, p in r.models.items() if isinstance(p, str)}
        # A route answers `route()` with its first deployment in the request's format (the list of
        # models, a cap's substitute, the price of a call whose breakers are all open).
        self._first: dict[tuple[str, Family], tuple[Provider, str]] = {}
        for name, route in self.routes.by_name.items():
            self._exact[name] = route.deployments[0].provider
            for family in ("openai", "anthropic"):
                d = next((d for d in route.deployments if d.provider.speaks(family)), route.deployments[0])
                self._first[name, family] = (d.provider, d.model)
        for provider in self.providers.values():
            for model in provider.models:
                self._exact.setdefault(model, provider)
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
                provider, upstream_model = self.providers[prefix], rest
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
