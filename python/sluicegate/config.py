"""Typed settings: built-in defaults < LangSmith's own variables (`LANGSMITH_*`, for `[langsmith]`
only) < a TOML or YAML file < `SLUICEGATE_*` environment variables.

The file is named by `--config` or `SLUICEGATE_CONFIG`. A variable `SLUICEGATE_SECTION__KEY` sets
`section.key` (double underscore between levels, case-insensitive). Its value is read by the type of
the setting it lands in: a string setting takes it verbatim (`2026` stays the string "2026"), a
number or a boolean is parsed, and lists, tables and whole sections are JSON. Settings are validated
once, at start-up; an unknown key is an error, not a silent no-op.

A few `SLUICEGATE_*` variables are inputs of the commands, not settings (`NOT_SETTINGS`): the loader
skips them.

Every setting, with its default, is documented in `docs/configuration.md`.
"""

from __future__ import annotations

import base64
import json
import math
import os
import tomllib
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sluicegate.control.settings import ControlSettings
from sluicegate.limits.settings import LimitSettings
from sluicegate.mcp.settings import McpSettings
from sluicegate.policy.loop_rules import LoopSettings
from sluicegate.policy.model_rules import ModelRulesIn
from sluicegate.policy.rollout import check_locked_rollout
from sluicegate.policy.tool_rules import ToolRulesIn
from sluicegate.secrets import Secret, SecretUrl
from sluicegate.spend.caps import SpendSettings

ENV_PREFIX = "SLUICEGATE_"
CONFIG_ENV = "SLUICEGATE_CONFIG"
DRAIN_MARKER_ENV = "SLUICEGATE_DRAIN_MARKER"  # set by `sluicegate serve` for its workers
METRICS_DIR_ENV = "SLUICEGATE_METRICS_DIR"  # set by `sluicegate serve`: where its workers publish metrics
SECRET_VALUE_ENV = "SLUICEGATE_SECRET_VALUE"  # read by `sluicegate admin secret set`
MCP_HEADERS_ENV = "SLUICEGATE_MCP_HEADERS"  # read by `sluicegate admin mcp-server set` (a JSON object)
MCP_CLIENT_SECRET_ENV = "SLUICEGATE_MCP_CLIENT_SECRET"  # `admin mcp-server set`: an OAuth client secret
ADMIN_URL_ENV = "SLUICEGATE_ADMIN_URL"  # read by `sluicegate admin …` (the admin API's address)
ADMIN_TOKEN_ENV = "SLUICEGATE_ADMIN_TOKEN"  # read by `sluicegate admin …` (never a setting, never printed)
MOCK_KNOBS_ENV = "SLUICEGATE_MOCK_KNOBS"  # read by the mock provider (`sluicegate mock`): its process-wide knobs
# The variables of the `SLUICEGATE_` prefix that are not settings (none has a `__`, and no section
# is named after one): listed in docs/configuration.md.
NOT_SETTINGS = frozenset(
    {
        CONFIG_ENV,
        DRAIN_MARKER_ENV,
        METRICS_DIR_ENV,
        SECRET_VALUE_ENV,
        MCP_HEADERS_ENV,
        MCP_CLIENT_SECRET_ENV,
        ADMIN_URL_ENV,
        ADMIN_TOKEN_ENV,
        MOCK_KNOBS_ENV,
    }
)
# LangSmith's own variables (the ones its SDK reads), each the default of a `[langsmith]` setting that
# neither the file nor a `SLUICEGATE_LANGSMITH__*` variable sets. `LANGSMITH_API_KEY` is read through
# `langsmith.api_key_env`, whose default names it.
LANGSMITH_ENV: dict[str, str] = {
    "LANGSMITH_TRACING": "enabled",
    "LANGSMITH_ENDPOINT": "endpoint",
    "LANGSMITH_PROJECT": "project",
}

ProviderKind = Literal["openai", "anthropic", "openai_compatible", "azure", "gemini", "bedrock", "mock"]

DEFAULT_BASE_URLS: dict[str, str] = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    # Google's OpenAI-compatible endpoint for Gemini (`gemini` is an `openai_compatible` preset).
    "gemini": "https://generativelanguage.googleapis.com/v1beta/openai",
}
# An Azure OpenAI `api_version`: a dated one (`2024-10-21`, `2025-04-01-preview`: the
# `/openai/deployments/{deployment}/…?api-version=` paths), or `v1` / `preview` (the v1 API:
# `/openai/v1/…`, the deployment named by the body's `model`).
AZURE_API_VERSION = r"^(v1|preview|\d{4}-\d{2}-\d{2}(-preview)?)$"
# An AWS region (`us-east-1`, `eu-central-2`, `us-gov-west-1`): where a Bedrock provider's calls go
# and what they are signed for.
AWS_REGION = r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$"
# The variables a Bedrock provider reads its AWS credentials from unless its `aws_*_env` settings
# name others (the AWS SDKs' own names).
AWS_ENV = {
    "aws_access_key_id_env": "AWS_ACCESS_KEY_ID",
    "aws_secret_access_key_env": "AWS_SECRET_ACCESS_KEY",
    "aws_session_token_env": "AWS_SESSION_TOKEN",
}


class ConfigError(ValueError):
    """The configuration is invalid; the message names the setting."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    # The admin API, the console and /metrics on a port of their own (on `host`), every worker
    # listening (`sluicegate.listener`); the public port then answers them 404. None: on `port`.
    admin_port: int | None = Field(None, ge=1, le=65535)
    workers: int = Field(1, ge=1)
    runtime_threads: int = Field(1, ge=1)
    loop: Literal["auto", "asyncio", "uvloop"] = "uvloop"
    backlog: int = Field(1024, ge=128)
    drain_seconds: float = Field(30.0, ge=0)
    ready_grace_s: float = Field(3.0, ge=0)
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    # The whole request body must arrive within this (408 otherwise), so a slow sender cannot hold a connection.
    body_timeout_s: float = Field(30.0, gt=0)
    # Arrays and objects nested deeper than this are refused (400); orjson itself writes at most 254 levels.
    max_json_depth: int = Field(64, ge=2, le=200)
    # The collector's generation thresholds once started (see `app.settle_heap`); Python's are 700,10,10.
    gc_thresholds: tuple[int, int, int] = (20_000, 20, 50)
    # Reverse proxies (addresses or CIDRs) whose x-forwarded-for names the client (see `forwarded.py`);
    # empty: the TCP peer is the client and x-forwarded-for is ignored.
    trusted_proxies: list[str] = Field(default_factory=list)

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: list[str]) -> list[str]:
        from sluicegate.proxy.egress import parse_cidr

        for cidr in value:
            parse_cidr(cidr)
        return value

    @model_validator(mode="after")
    def _two_ports(self) -> ServerSettings:
        if self.admin_port is not None and self.admin_port == self.port:
            raise ValueError("admin_port must differ from port (or be unset: everything on port)")
        return self


class UpstreamSettings(_Section):
    connect_timeout_s: float = Field(5.0, gt=0)
    first_byte_timeout_s: float = Field(120.0, gt=0)
    chunk_timeout_s: float = Field(120.0, gt=0)
    total_timeout_s: float = Field(900.0, gt=0)
    max_connections: int = Field(1024, ge=1)
    keepalive_s: float = Field(60.0, gt=0)
    max_error_body_bytes: int = Field(64 * 1024, ge=1024)
    # Bounds on what is read from a provider (see `proxy/egress.py` for the tenant URL rules).
    max_response_bytes: int = Field(64 * 1024 * 1024, ge=1024)  # a non-streamed body
    max_event_bytes: int = Field(8 * 1024 * 1024, ge=1024)  # one SSE event
    tenant_base_urls: dict[ProviderKind, list[str]] = Field(default_factory=dict)  # by provider kind
    tenant_allowed_cidrs: list[str] = Field(default_factory=list)

    @field_validator("tenant_base_urls")
    @classmethod
    def _patterns(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        from sluicegate.proxy.egress import parse_pattern

        for patterns in value.values():
            for pattern in patterns:
                parse_pattern(pattern)
        return value

    @field_validator("tenant_allowed_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        from sluicegate.proxy.egress import parse_cidr

        for cidr in value:
            parse_cidr(cidr)
        return value


class AzureDeploymentSettings(_Section):
    """An Azure OpenAI deployment (or a Bedrock model id) a gateway model name stands for, and the
    model it is priced as (default: the gateway model name, e.g. `gpt-4o`)."""

    deployment: str = Field(min_length=1, max_length=256)
    price_as: str | None = Field(None, min_length=1)


class ProviderSettings(_Section):
    kind: ProviderKind
    base_url: str | None = None
    api_key: Secret | None = None
    api_key_env: str | None = None
    auth_header: str | None = None
    headers: dict[str, Secret] = Field(default_factory=dict)  # values may be credentials: masked
    models: list[str] = Field(default_factory=list)
    # The wire formats the provider's API speaks, when not all its kind's (a mock standing in for a
    # one-format vendor); a request in another format is translated (docs/translation.md).
    formats: list[Literal["openai", "anthropic"]] | None = Field(None, min_length=1)
    # Azure OpenAI (`kind = "azure"`; `base_url` is the resource endpoint): the API version every
    # request names, and the gateway model names that stand for deployments (a name not listed is
    # sent as the deployment's name). See docs/configuration.md, "Azure OpenAI".
    # AWS Bedrock (`kind = "bedrock"`) names its models by id (`anthropic.claude-…-v2:0`, an
    # inference profile `us.anthropic.…`): `deployments` maps gateway model names to those ids too.
    api_version: str | None = Field(None, pattern=AZURE_API_VERSION)
    deployments: dict[str, str | AzureDeploymentSettings] = Field(default_factory=dict)
    # AWS Bedrock: the region calls are sent to and signed for (SigV4), and the variables the AWS
    # credentials are read from (default: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN).
    # See docs/configuration.md, "AWS Bedrock".
    region: str | None = Field(None, pattern=AWS_REGION)
    aws_access_key_id_env: str | None = Field(None, min_length=1)
    aws_secret_access_key_env: str | None = Field(None, min_length=1)
    aws_session_token_env: str | None = Field(None, min_length=1)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _needs_url(self) -> ProviderSettings:
        if self.kind == "openai_compatible" and not self.base_url:
            raise ValueError("an openai_compatible provider needs base_url")
        if self.kind == "azure":
            self._azure()
        elif self.kind == "bedrock":
            self._bedrock()
        elif self.api_version is not None or self.deployments:
            raise ValueError("api_version and deployments are settings of an azure or bedrock provider only")
        if self.kind != "bedrock" and (self.region is not None or any(getattr(self, name) for name in AWS_ENV)):
            raise ValueError("region and aws_*_env are settings of a bedrock provider only")
        if self.api_key and self.api_key_env:
            raise ValueError("set api_key or api_key_env, not both")
        return self

    def _azure(self) -> None:
        if not self.base_url:
            raise ValueError(
                "an azure provider needs base_url: its resource endpoint, https://<resource>.openai.azure.com"
            )
        path = self.base_url.split("://", 1)[1].partition("/")[2]
        if path.startswith("openai"):
            raise ValueError(
                f"an azure provider's base_url is the resource endpoint without /{path} "
                "(the gateway adds the /openai/… paths)"
            )
        if self.api_version is None:
            raise ValueError(
                "an azure provider needs api_version: a dated one such as 2024-10-21 "
                "(or 2025-04-01-preview for the Responses API), or v1 for the v1 API"
            )
        for model, d in self.deployments.items():
            name = d if isinstance(d, str) else d.deployment
            if not name.strip():
                raise ValueError(f"deployments.{model} names no deployment")

    def _bedrock(self) -> None:
        if self.region is None:
            raise ValueError("a bedrock provider needs region (its calls are signed for it), e.g. us-east-1")
        if self.api_key or self.api_key_env or self.auth_header:
            raise ValueError(
                "a bedrock provider signs its calls with AWS credentials, not an API key: set "
                "aws_access_key_id_env and aws_secret_access_key_env (or the AWS_* variables), not api_key"
            )
        if self.api_version is not None:
            raise ValueError("api_version is a setting of an azure provider only")
        if self.formats is not None and self.formats != ["anthropic"]:
            raise ValueError("a bedrock provider speaks Anthropic's Messages format only: formats = ['anthropic']")
        if bool(self.aws_access_key_id_env) != bool(self.aws_secret_access_key_env):
            raise ValueError(
                "set aws_access_key_id_env and aws_secret_access_key_env together (a key id and its secret)"
            )
        for model, d in self.deployments.items():
            name = d if isinstance(d, str) else d.deployment
            if not name.strip():
                raise ValueError(f"deployments.{model} names no model id")

    def aws_env(self) -> tuple[str, str, str | None]:
        """The variables a Bedrock provider's key id, secret key and session token are read from:
        the ones named, else the AWS SDKs' own; a key named by `aws_access_key_id_env` takes a
        session token only from `aws_session_token_env` (never another key's AWS_SESSION_TOKEN)."""
        if self.aws_access_key_id_env and self.aws_secret_access_key_env:
            return self.aws_access_key_id_env, self.aws_secret_access_key_env, self.aws_session_token_env
        return (
            AWS_ENV["aws_access_key_id_env"],
            AWS_ENV["aws_secret_access_key_env"],
            self.aws_session_token_env or AWS_ENV["aws_session_token_env"],
        )

    def azure_deployments(self) -> dict[str, AzureDeploymentSettings]:
        """The `deployments` table, every entry in its long form."""
        return {
            m: AzureDeploymentSettings(deployment=d) if isinstance(d, str) else d for m, d in self.deployments.items()
        }

    def resolved_base_url(self) -> str | None:
        """The provider's base URL; None means the in-process mock."""
        if self.kind == "bedrock" and not self.base_url:
            return f"https://bedrock-runtime.{self.region}.amazonaws.com"
        return self.base_url or DEFAULT_BASE_URLS.get(self.kind)

    def resolved_api_key(self, environ: Mapping[str, str]) -> Secret | None:
        """The provider's key: from the variable `api_key_env` names, else `api_key`."""
        if self.api_key_env:
            value = environ.get(self.api_key_env)
            return Secret(value) if value else None
        return self.api_key or None


class DeploymentSettings(_Section):
    """One place a route's model is served: a provider, the model name it is sent (default: the
    route's name), and its share of the traffic under the `weighted` strategy."""

    provider: str = Field(min_length=1)
    model: str | None = Field(None, min_length=1)
    weight: int = Field(1, ge=0, le=1_000_000)


FallbackCase = Literal["error", "context_length", "content_policy"]


class RouteSettings(_Section):
    """A model that stands for several deployments, with retries, fallbacks and circuit breaking
    (see docs/routing.md). `routing.models.<name> = "provider"` is the one-deployment short form."""

    deployments: list[DeploymentSettings] = Field(min_length=1)
    strategy: Literal["weighted", "least_in_flight", "lowest_latency"] = "weighted"
    # The same key goes to the same healthy deployment (a hash of the key's id; prompt caches).
    sticky: bool = False
    # Upstream attempts for one call, across this route's deployments (1: no retry). Fallback
    # models bring their own budget.
    max_attempts: int = Field(3, ge=1, le=10)
    # Other models tried in order, when every deployment failed or a case of `fallback_on` happened.
    fallbacks: list[str] = Field(default_factory=list)
    fallback_on: list[FallbackCase] = Field(default_factory=lambda: ["error"])

    @model_validator(mode="after")
    def _some_weight(self) -> RouteSettings:
        if self.strategy == "weighted" and not any(d.weight for d in self.deployments):
            raise ValueError("a weighted route needs a deployment with a weight above 0")
        return self


class RoutingSettings(_Section):
    # A model name -> a provider name (one deployment, as before), or a route (see RouteSettings).
    models: dict[str, str | RouteSettings] = Field(default_factory=dict)
    default_openai: str | None = None
    default_anthropic: str | None = None
    # Circuit breaking, per deployment of a route: this many failures in a row open it for
    # `breaker_cooldown_s`; then one call at a time probes it, and a success closes it again.
    breaker_failures: int = Field(5, ge=1)
    breaker_cooldown_s: float = Field(30.0, gt=0)
    # The longest a provider's retry-after is waited before a retry (a longer one: no retry there).
    max_retry_after_s: float = Field(10.0, ge=0)
    # Smoothing of each deployment's time to first byte (`lowest_latency`): the weight of the newest sample.
    latency_alpha: float = Field(0.3, gt=0, le=1)
    # A fixed seed for the `weighted` choice (reproducible splits in tests); None: random.
    seed: int | None = None


class KeySettings(_Section):
    name: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    org: str = Field("default", min_length=1)
    workspace: str = Field("default", min_length=1)
    user: str | None = None


RedactionAction = Literal["redact", "block", "monitor", "pseudonymize"]
# How strict each action is: a locked rule may only be replaced below it by one at least as strict.
# `pseudonymize` is below `redact`: the gateway puts the original back in what the client receives.
ACTION_STRENGTH: dict[str, int] = {"monitor": 0, "pseudonymize": 1, "redact": 2, "block": 3}


class RedactionRule(_Section):
    """An action for some entity types in one direction (or both); a `locked` rule is a floor
    that the levels below (an org below the operator, a workspace below its org, …) may only
    make stricter."""

    entities: list[str] = Field(min_length=1)
    action: RedactionAction
    direction: Literal["request", "response", "both"] = "both"
    locked: bool = False
    # Staged rollout (control-plane policies): the rule acts for this share of keys and only
    # monitors the others (`sluicegate.policy.rollout`).
    rollout_percent: float = Field(100.0, ge=0, le=100)
    # Findings of these types whose confidence (0-100) is below this are not acted on, only
    # counted (`below_threshold` events); None keeps each type's default (50 for PERSON, else 0).
    min_confidence: int | None = Field(None, ge=0, le=100)
    # The same per type, for some of `entities` (wins over `min_confidence`).
    min_confidence_by_type: dict[str, Annotated[int, Field(ge=0, le=100)]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _pseudonymize_is_for_requests(self) -> RedactionRule:
        if self.action == "pseudonymize" and self.direction != "request":
            raise ValueError("pseudonymize applies to the request direction only (the response restores)")
        check_locked_rollout(self.locked, self.rollout_percent, "rule")
        stray = sorted(set(self.min_confidence_by_type) - set(self.entities))
        if stray:
            raise ValueError(f"min_confidence_by_type names {', '.join(stray)}, which this rule's entities do not list")
        return self

    def threshold(self, entity: str) -> int | None:
        """The confidence threshold this rule sets for `entity` (None: the type's default)."""
        return self.min_confidence_by_type.get(entity, self.min_confidence)

    def rollout_id(self, level: str, entity_id: str | None) -> str:
        """What names this rule in the rollout order (the same keys are in at every reload)."""
        return f"redaction:{level}:{entity_id}:{','.join(sorted(self.entities))}:{self.direction}"


def default_min_confidence(entity: str) -> int:
    """The confidence threshold of `entity` when no rule sets one (50 for PERSON, else 0)."""
    from sluicegate._core import Scanner, builtin_entities

    global _DEFAULT_THRESHOLDS
    if _DEFAULT_THRESHOLDS is None:
        _DEFAULT_THRESHOLDS = Scanner(builtin_entities()).min_confidence
    return _DEFAULT_THRESHOLDS.get(entity, 0)


_DEFAULT_THRESHOLDS: dict[str, int] | None = None


def thresholds_of(
    rules: list[RedactionRule], direction: str, in_force: dict[tuple[str, str], int], entity: str | None = None
) -> int:
    """Apply `rules`' thresholds for `direction` to `in_force` ((entity, direction) -> threshold), in
    order: a rule that names a type with no threshold keeps the one in force (an earlier rule's,
    else the type's default). Returns the threshold of `entity` afterwards (0 without one)."""
    for rule in rules:
        if rule.direction not in ("both", direction):
            continue
        for name in rule.entities:
            key = (name, direction)
            threshold = rule.threshold(name)
            if threshold is not None:
                in_force[key] = threshold
            elif key not in in_force:
                in_force[key] = default_min_confidence(name)
    return in_force.get((entity, direction), 0) if entity is not None else 0


def check_locks(rules: list[RedactionRule], name: str = "rules") -> None:
    """Refuse a rule list that undoes its own locks: a later rule (which wins) below an earlier
    locked one for the same entity type and direction, or with a higher confidence threshold than
    it (fewer findings acted on), or a pseudonymized type whose responses are locked at `redact`
    or `block` (the response would bring the original back).

    Arguments:
        rules: the rules, in order (a later one replaces an earlier one).
        name: what the rules are called in the message (`rules.3`).

    Raises:
        ValueError: naming the rules.
    """
    floors: dict[tuple[str, str], tuple[str, int, int]] = {}
    pseudonymized: dict[str, int] = {}
    in_force: dict[tuple[str, str], int] = {}
    for i, rule in enumerate(rules):
        for entity in rule.entities:
            for d in ("request", "response") if rule.direction == "both" else (rule.direction,):
                threshold = thresholds_of([rule], d, in_force, entity)
                if d == "request":
                    pseudonymized.pop(entity, None)
                    if rule.action == "pseudonymize":
                        pseudonymized[entity] = i
                floor = floors.get((entity, d))
                if floor is not None and ACTION_STRENGTH[rule.action] < ACTION_STRENGTH[floor[0]]:
                    raise ValueError(
                        f"{name}.{i} sets {rule.action} for {entity} ({d}) "
                        f"below the {floor[0]} that {name}.{floor[1]} locks"
                    )
                if floor is not None and threshold > floor[2]:
                    raise ValueError(
                        f"{name}.{i} sets min_confidence {threshold} for {entity} ({d}) "
                        f"above the {floor[2]} that {name}.{floor[1]} locks"
                    )
                if rule.locked:
                    floors[(entity, d)] = (rule.action, i, threshold)
    for entity, i in pseudonymized.items():
        floor = floors.get((entity, "response"))
        if floor is not None and ACTION_STRENGTH[floor[0]] >= ACTION_STRENGTH["redact"]:
            raise ValueError(
                f"{name}.{i} pseudonymizes {entity}, whose originals the response would bring back "
                f"past the {floor[0]} that {name}.{floor[1]} locks for responses"
            )


def check_entity_names(named: Iterable[tuple[str, Iterable[str]]], known: set[str], where: str) -> None:
    """Refuse the first of `named` ((location, entity types) pairs) that names a type not in
    `known` (the built-ins and the types `where` defines).

    Raises:
        ValueError: naming the location and the unknown types.
    """
    for loc, entities in named:
        unknown = sorted(set(entities) - known)
        if unknown:
            raise ValueError(f"{loc} names {', '.join(unknown)}: not a built-in entity type nor one of {where}")


class CustomPattern(_Section):
    entity: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    pattern: str = Field(min_length=1)


class KeywordList(_Section):
    entity: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    words: list[str] = Field(min_length=1)


class AllowTerms(_Section):
    """Terms that are never a finding of `entities`: a firm or a venue named after a person
    (`PERSON`), a help desk's public address (`EMAIL`). A finding is exempt only when its whole
    text is a term, compared lower-cased with white space folded and after the scanner's decoding
    (`Carl&nbsp;ZEISS` is `carl zeiss`); a longer finding that holds a term is not."""

    entities: list[Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$")]] = Field(min_length=1, max_length=64)
    terms: list[str] = Field(min_length=1, max_length=1000)

    @field_validator("terms")
    @classmethod
    def _terms(cls, terms: list[str]) -> list[str]:
        from sluicegate._core import MAX_ALLOW_TERM_BYTES

        for i, term in enumerate(terms):
            if not term.strip() or len(term.encode()) > MAX_ALLOW_TERM_BYTES:
                raise ValueError(f"terms.{i}: a term is 1 to {MAX_ALLOW_TERM_BYTES} bytes of visible text")
        return terms


class RedactionSettings(_Section):
    enabled: bool = True
    entities: list[str] | None = None  # None: every built-in type
    default_action: Literal["redact", "block", "monitor"] = "redact"
    rules: list[RedactionRule] = Field(default_factory=list)
    style: Literal["placeholder", "pseudonym"] = "placeholder"
    custom_patterns: list[CustomPattern] = Field(default_factory=list)
    keywords: list[KeywordList] = Field(default_factory=list)
    allow_terms: list[AllowTerms] = Field(default_factory=list)
    pseudonym_secret: Secret | None = None
    max_scan_ms: float = Field(250.0, gt=0)

    @model_validator(mode="after")
    def _locks_hold(self) -> RedactionSettings:
        check_locks(self.rules)
        from sluicegate._core import builtin_entities

        known = {*builtin_entities(), *(p.entity for p in self.custom_patterns), *(k.entity for k in self.keywords)}
        named = ((f"allow_terms.{i}", a.entities) for i, a in enumerate(self.allow_terms))
        check_entity_names(named, known, "custom_patterns or keywords")
        for i, rule in enumerate(self.rules):
            if rule.rollout_percent < 100:
                raise ValueError(
                    f"rules.{i}: rollout_percent is for control-plane policies (applied per key); "
                    "the configuration's rules apply to every key"
                )
        return self


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "text"] = "json"
    access: bool = False
    queue_size: int = Field(10_000, ge=100)
    flush_interval_s: float = Field(0.1, gt=0, le=10)  # how often the writer thread writes what is queued


class LangSmithSettings(_Section):
    enabled: bool = False
    endpoint: str = "https://api.smith.langchain.com"
    api_key: Secret | None = None
    api_key_env: str | None = "LANGSMITH_API_KEY"
    project: str = Field("sluicegate", min_length=1)
    queue_size: int = Field(10_000, ge=10)
    batch: int = Field(100, ge=1)  # runs a POST, at most
    batch_bytes: int = Field(20_000_000, ge=10_000)  # and bytes a POST, at most (a bigger run goes alone)
    interval_s: float = Field(0.25, gt=0)  # the longest a run waits for its batch
    timeout_s: float = Field(10.0, gt=0)  # one POST's
    # A link to a run for events and the spend page: `{run_id}` and `{trace_id}` are filled in.
    run_url: str = ""

    def resolved_api_key(self, environ: Mapping[str, str]) -> Secret | None:
        """The LangSmith key: `api_key`, else the variable `api_key_env` names."""
        if self.api_key:
            return self.api_key
        value = environ.get(self.api_key_env) if self.api_key_env else None
        return Secret(value) if value else None


WEBHOOK_SECRET_PREFIX = "whsec_"


def webhook_key(secret: Secret) -> bytes:
    """The HMAC key of a webhook secret, as Standard Webhooks reads one: the base64 after `whsec_`;
    a secret without the prefix (the format before Standard Webhooks) is its own UTF-8 bytes.

    Raises:
        ValueError: a `whsec_` secret that is not base64 of 24 to 64 bytes (the message never
            repeats the secret).
    """
    text = secret.reveal()
    if not text.startswith(WEBHOOK_SECRET_PREFIX):
        return text.encode()
    body = text[len(WEBHOOK_SECRET_PREFIX) :]
    try:
        key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except ValueError:
        raise ValueError("a whsec_ secret must be base64 after the prefix") from None
    if not 24 <= len(key) <= 64:
        raise ValueError("a whsec_ secret must hold 24 to 64 bytes (make one: echo whsec_$(openssl rand -base64 32))")
    return key


class WebhookSettings(_Section):
    url: SecretUrl = SecretUrl("")  # empty: no webhook; a password or token in it prints masked
    # Standard Webhooks: `whsec_<base64 key>`; any other string is used as the key's bytes.
    secret: Secret | None = None
    queue_size: int = Field(10_000, ge=10)
    batch: int = Field(500, ge=1)
    interval_s: float = Field(1.0, gt=0)
    timeout_s: float = Field(5.0, gt=0)

    @field_validator("url")
    @classmethod
    def _http(cls, value: SecretUrl) -> SecretUrl:
        if value and not value.reveal().startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("secret")
    @classmethod
    def _key(cls, value: Secret | None) -> Secret | None:
        if value is not None:
            webhook_key(value)
        return value


MIN_METRICS_TOKEN = 16


class MetricsSettings(_Section):
    """`/metrics`: Prometheus text for scrapers that send `Authorization: Bearer <token>`.

    Attributes:
        enabled: serve `/metrics` at all.
        token: the bearer token a scrape must present. Without one, `/metrics` answers 401 to
            everyone: the figures (spend by workspace among them) are never public by default.
        models: model label values; others count as "other".
        publish_interval_s: how often each worker of several publishes its figures for the others'
            scrapes (`observe/workers.py`); a scrape sees another worker's figures at most this old.
    """

    enabled: bool = True
    token: Secret | None = None
    models: list[str] = Field(default_factory=list)
    publish_interval_s: float = Field(1.0, gt=0, le=60)

    @field_validator("token")
    @classmethod
    def _long_enough(cls, value: Secret | None) -> Secret | None:
        if value is not None and len(value) < MIN_METRICS_TOKEN:
            raise ValueError(f"must be at least {MIN_METRICS_TOKEN} characters (make one: openssl rand -hex 32)")
        return value


OTEL_ENDPOINT_ENV = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


class ObservabilitySettings(_Section):
    """OpenTelemetry spans of API calls, with the GenAI semantic conventions' attributes (counts and
    names, never content), exported by OTLP/HTTP (`observe/tracing.py`).

    Attributes:
        otlp_endpoint: the OTLP/HTTP base URL (spans go to `<it>/v1/traces`), as
            `OTEL_EXPORTER_OTLP_ENDPOINT` reads one. Unset: that variable, or
            `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full URL), turns spans on; neither: off.
        service_name: the spans' `service.name` (`OTEL_SERVICE_NAME` wins when set).
        queue_size: spans waiting for export; past it they are dropped and counted.
        batch: spans a POST, at most.
        interval_s: the longest a span waits for its batch.
        timeout_s: one POST's.
    """

    otlp_endpoint: str | None = None
    service_name: str = Field("sluicegate", min_length=1)
    queue_size: int = Field(10_000, ge=10)
    batch: int = Field(512, ge=1)
    interval_s: float = Field(1.0, gt=0)
    timeout_s: float = Field(10.0, gt=0)

    @field_validator("otlp_endpoint")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    def endpoint(self, environ: Mapping[str, str]) -> str | None:
        """Where spans go (the traces URL), or None when tracing is off."""
        if self.otlp_endpoint:
            return self.otlp_endpoint.rstrip("/") + "/v1/traces"
        if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return None
        full = environ.get(OTEL_ENDPOINT_ENV[0], "").strip()
        if full:
            return full
        base = environ.get(OTEL_ENDPOINT_ENV[1], "").strip()
        return base.rstrip("/") + "/v1/traces" if base else None


class Settings(_Section):
    server: ServerSettings = ServerSettings()
    upstream: UpstreamSettings = UpstreamSettings()
    providers: dict[str, ProviderSettings] = Field(default_factory=dict)
    routing: RoutingSettings = RoutingSettings()
    keys: list[KeySettings] = Field(default_factory=list)
    redaction: RedactionSettings = RedactionSettings()
    spend: SpendSettings = SpendSettings()
    limits: LimitSettings = LimitSettings()
    control: ControlSettings = ControlSettings()
    log: LogSettings = LogSettings()
    langsmith: LangSmithSettings = LangSmithSettings()
    metrics: MetricsSettings = MetricsSettings()
    # OpenTelemetry spans by OTLP/HTTP (see docs/observability.md); off unless an endpoint is set.
    observability: ObservabilitySettings = ObservabilitySettings()
    webhook: WebhookSettings = WebhookSettings()
    # Model access rules, the operator's level above every org (see docs/model-rules.md).
    models: ModelRulesIn = ModelRulesIn()
    # Runaway-loop protection (policy.loops): backend, defaults and the file's own rules.
    loops: LoopSettings = LoopSettings()
    # The MCP front door (`/mcp/{server}`) and its operator servers (see docs/mcp.md).
    mcp: McpSettings = McpSettings()
    # Tool access rules, the operator's level above every org (see docs/mcp.md).
    tools: ToolRulesIn = ToolRulesIn()

    @model_validator(mode="after")
    def _routes_name_providers(self) -> Settings:
        named = {"routing.default_openai": self.routing.default_openai}
        named["routing.default_anthropic"] = self.routing.default_anthropic
        for model, route in self.routing.models.items():
            if isinstance(route, str):
                named[f"routing.models.{model}"] = route
                continue
            for i, d in enumerate(route.deployments):
                named[f"routing.models.{model}.deployments[{i}].provider"] = d.provider
            for fallback in route.fallbacks:
                if fallback == model:
                    raise ValueError(f"routing.models.{model}.fallbacks names the route itself")
        for where, provider in named.items():
            if provider is not None and provider not in self.providers:
                raise ValueError(f"{where} names provider {provider!r}, which is not in [providers]")
        if self.spend.enabled and self.spend.reservation_ttl_s <= self.upstream.total_timeout_s:
            raise ValueError("spend.reservation_ttl_s must be longer than upstream.total_timeout_s")
        self._caps_hold_across_workers()
        self._limits_hold_across_workers()
        return self

    def _limits_hold_across_workers(self) -> None:
        # As for caps: the local backend counts in each worker's memory, so N workers admit N times a limit.
        limited = self.limits.enabled and (self.limits.rules or self.control.enabled)
        if limited and self.limits.backend == "local" and self.server.workers > 1:
            which = "[[limits.rules]]" if self.limits.rules else "the control plane's rate limits ([control] enabled)"
            raise ValueError(
                f"{which} with limits.backend = 'local' and server.workers = {self.server.workers}: each worker "
                "would count on its own and every rate limit would admit that many times its limit; set "
                "limits.backend = 'redis' (and limits.redis_url, shared by every worker), or server.workers = 1"
            )

    def _caps_hold_across_workers(self) -> None:
        # The local backend counts in each worker process's memory: N workers would let N times every cap through.
        capped = self.spend.enabled and (self.spend.caps or self.control.enabled)
        if capped and self.spend.backend == "local" and self.server.workers > 1:
            which = "[[spend.caps]]" if self.spend.caps else "the control plane's caps ([control] enabled)"
            raise ValueError(
                f"{which} with spend.backend = 'local' and server.workers = {self.server.workers}: each worker "
                "would count spend on its own and every cap would admit that many times its limit; set "
                "spend.backend = 'redis' (and spend.redis_url, shared by every worker), or server.workers = 1"
            )


def embedded_default() -> dict[str, Any]:
    """The configuration `make run` uses: the in-process mock provider answers every model."""
    return {
        "providers": {"mock": {"kind": "mock", "models": ["mock-gpt", "mock-claude"]}},
        "routing": {"default_openai": "mock", "default_anthropic": "mock"},
    }


def read_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML (`.toml`) or YAML (`.yaml`, `.yml`) config file into a dict.

    Raises:
        ConfigError: the file is missing, unreadable, or not a mapping.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {path} does not parse: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def _union(annotation: Any) -> tuple[list[Any], bool]:
    """The types an annotation allows, without `Annotated` and None, and whether None is allowed."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    args = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,)
    kinds = [get_args(a)[0] if get_origin(a) is Annotated else a for a in args]
    return [k for k in kinds if k is not type(None)], type(None) in kinds


def _setting_type(path: list[str]) -> Any:
    """The annotation of the setting at `path` (lower-case parts), or None when no setting is there.

    A section descends by field name, a table of named entries (`providers`, `routing.models`) by
    entry name; lists and scalars have nothing below them.
    """
    annotation: Any = Settings
    for part in path:
        kinds, _ = _union(annotation)
        node = kinds[0] if len(kinds) == 1 else None
        if isinstance(node, type) and issubclass(node, BaseModel):
            field = node.model_fields.get(part)
            if field is None:
                return None
            annotation = field.annotation
        elif get_origin(node) in (dict, Mapping) and part:
            annotation = get_args(node)[1]
        else:
            return None
    return annotation


def _is_text(kind: Any) -> bool:
    """A setting read from its variable verbatim: a string, a choice of strings, a secret, a decimal."""
    if get_origin(kind) is Literal:
        return all(isinstance(choice, str) for choice in get_args(kind))
    return isinstance(kind, type) and issubclass(kind, (str, Secret, Decimal))


def env_value(name: str, raw: str, annotation: Any) -> Any:
    """A variable's value typed by the setting it sets.

    A string setting (also a choice of strings, a secret, a decimal) takes the value verbatim; a
    boolean is `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`); a number is parsed; an optional
    setting that is not a string is unset by `null`; anything else (lists, tables, sections) is JSON.

    Arguments:
        name: the variable, for the error.
        raw: its value.
        annotation: the setting's type.

    Raises:
        ConfigError: the value does not parse as the setting's type (the message names the variable,
            never the value, which may be a secret put in the wrong place).
    """
    kinds, optional = _union(annotation)
    if any(_is_text(kind) for kind in kinds):
        return raw
    text = raw.strip()
    if optional and text.lower() == "null":
        return None
    kind = kinds[0] if len(kinds) == 1 else None
    if kind is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ConfigError(f"{name} must be true or false")
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number") from None
    if kind is float:
        try:
            number = float(text)
        except ValueError:
            raise ConfigError(f"{name} must be a number") from None
        if not math.isfinite(number):
            raise ConfigError(f"{name} must be a finite number")
        return number
    try:
        return json.loads(raw)
    except ValueError:
        raise ConfigError(f"{name} must be JSON (a list, a table or a section)") from None


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """The nested dict that `SLUICEGATE_SECTION__KEY=value` variables describe, each value typed by
    its setting (`env_value`); the variables in `NOT_SETTINGS` are skipped.

    Raises:
        ConfigError: a variable names no setting, two variables set the same one, or a value does
            not parse as its setting's type.
    """
    out: dict[str, Any] = {}
    seen: dict[tuple[str, ...], str] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name in NOT_SETTINGS:
            continue
        path = tuple(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))
        annotation = _setting_type(list(path))
        if annotation is None:
            raise ConfigError(f"{name} names no setting ({'.'.join(path)})")
        for other, other_name in seen.items():  # one sets the other's section, or both the same setting
            if path[: len(other)] == other or other[: len(path)] == path:
                raise ConfigError(f"{name} and {other_name} set the same setting")
        seen[path] = name
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = env_value(name, raw, annotation)
    return out


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def langsmith_defaults(environ: Mapping[str, str], section: Mapping[str, Any]) -> dict[str, Any]:
    """The `[langsmith]` settings LangSmith's own variables give (`LANGSMITH_ENV`), for those that
    `section` (the file's and `SLUICEGATE_*`'s section) leaves unset; an empty variable counts as unset.

    Raises:
        ConfigError: a value does not parse as its setting's type (`LANGSMITH_TRACING=maybe`).
    """
    out: dict[str, Any] = {}
    for name, key in LANGSMITH_ENV.items():
        raw = environ.get(name, "")
        if raw.strip() and key not in section:
            out[key] = env_value(name, raw, LangSmithSettings.model_fields[key].annotation)
    return out


def load_settings(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from the embedded default or a file, then the environment.

    Arguments:
        path: a config file; when None, `SLUICEGATE_CONFIG` names it, and without either the
            embedded default (an in-process mock provider) is used.
        environ: the environment to read (default `os.environ`): `SLUICEGATE_*` over the file,
            and `LANGSMITH_*` below both (`langsmith_defaults`).

    Raises:
        ConfigError: with the dotted name of the first invalid setting.
    """
    environ = os.environ if environ is None else environ
    path = path or environ.get(CONFIG_ENV)
    data = read_file(path) if path else embedded_default()
    data = _merge(data, env_overrides(environ))
    section = data.get("langsmith")
    if section is None or isinstance(section, Mapping):
        data = _merge(data, {"langsmith": langsmith_defaults(environ, section or {})})
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        raise ConfigError(f"{where}: {first['msg']} ({exc.error_count()} error(s) in all)") from None
