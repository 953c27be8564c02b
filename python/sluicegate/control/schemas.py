"""The admin API's request bodies (pydantic, strict: unknown fields are refused) and policy documents."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from sluicegate._core import Scanner, builtin_entities
from sluicegate.config import AllowTerms, CustomPattern, RedactionRule, check_entity_names, check_locks
from sluicegate.limits.lines import MAX_LIMIT, MAX_WINDOW_S, tool_scope
from sluicegate.limits.settings import check_tool_limit
from sluicegate.policy.loop_rules import LoopRuleFields
from sluicegate.policy.model_rules import ModelRulesIn, Pattern
from sluicegate.policy.rollout import RolloutBy, check_locked_rollout
from sluicegate.policy.tool_rules import ToolRulesIn
from sluicegate.spend.caps import MODEL_NAME_MAX, Mode, OnInsufficient, WindowName, check_substitute
from sluicegate.spend.money import usd_to_nusd

Name = str
NAME = Field(min_length=1, max_length=200)
PROVIDER_PATTERN = r"^[a-z][a-z0-9_-]{0,63}$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


TAG_PATTERN = r"^[A-Za-z0-9_.:/-]{1,64}$"
Tag = Annotated[str, Field(pattern=TAG_PATTERN)]
DESCRIPTION = Field("", max_length=2000)
TAGS: Any = Field(default_factory=list, max_length=32)


def _aware_utc(value: datetime | None, name: str) -> datetime | None:
    """A time with a zone, in UTC (None stays None)."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(f"{name} needs a time zone (for example 2030-01-01T00:00:00Z)")
    if value.year > 9000:
        raise ValueError(f"{name} is too far in the future")
    return value.astimezone(UTC)


def iso(value: datetime | None) -> str | None:
    """A time as the text the control tables store."""
    return value.isoformat(timespec="microseconds") if value is not None else None


class _Described(_Body):
    """The free-form fields every org, workspace, user and key carries."""

    description: str = DESCRIPTION
    tags: list[Tag] = TAGS


class OrgIn(_Described):
    name: str = NAME


class WorkspaceIn(_Described):
    name: str = NAME


class UserIn(_Described):
    name: str = NAME


class KeyIn(_Described):
    name: str = NAME
    user_id: str | None = Field(None, min_length=1, max_length=64)
    expires_at: datetime | None = None

    @field_validator("expires_at")
    @classmethod
    def _aware_utc(cls, value: datetime | None) -> datetime | None:
        return _aware_utc(value, "expires_at")


class _Patch(_Body):
    """A change to some of an entity's fields: only those given change (at least one; none null)."""

    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    tags: list[Tag] | None = Field(None, max_length=32)

    @field_validator("name", "description", "tags")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may be left out, not null")
        return value

    @model_validator(mode="after")
    def _something(self) -> _Patch:
        if not self.model_fields_set:
            raise ValueError(f"give at least one of {', '.join(type(self).model_fields)}")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields given, as the columns store them (times as ISO text)."""
        out = {name: getattr(self, name) for name in self.model_fields_set}
        if "expires_at" in out:
            out["expires_at"] = iso(out["expires_at"])
        return out


class OrgPatch(_Patch):
    pass


class WorkspacePatch(_Patch):
    pass


class UserPatch(_Patch):
    pass


class KeyPatch(_Patch):
    """Keys also change their expiry (`null`: never expires)."""

    expires_at: datetime | None = None

    @field_validator("expires_at")
    @classmethod
    def _aware_utc(cls, value: datetime | None) -> datetime | None:
        return _aware_utc(value, "expires_at")


Role = Literal["admin", "viewer"]


class KeyRotateIn(_Body):
    """A key rotation: the old key keeps working `overlap_s` more seconds (default one day, at most 30)."""

    overlap_s: int = Field(86400, ge=0, le=2592000)
    name: str | None = Field(None, min_length=1, max_length=200)


class AdminTokenIn(_Body):
    """An admin token: `viewer` tokens read what their scope covers and change nothing."""

    name: str = NAME
    workspace_id: str | None = Field(None, min_length=1, max_length=64)
    role: Role = "admin"
    expires_at: datetime | None = None

    @field_validator("expires_at")
    @classmethod
    def _aware_utc(cls, value: datetime | None) -> datetime | None:
        return _aware_utc(value, "expires_at")


class SecretIn(_Body):
    """A provider credential: `value` is write-only (never read back, logged or audited)."""

    value: str = Field(min_length=1, max_length=8192, repr=False)
    base_url: str | None = Field(None, max_length=2048, pattern=r"^https?://")
    project: str | None = Field(None, min_length=1, max_length=200)


MCP_SERVER_PATTERN = r"^[a-z][a-z0-9_-]{0,63}$"
_HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$"
# Headers a registration may not set: the transport's own, and the gateway's routing of the call.
RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "accept",
        "connection",
        "transfer-encoding",
        "te",
        "upgrade",
        "mcp-session-id",
        "mcp-protocol-version",
        "last-event-id",
        "cookie",
        "proxy-authorization",
    }
)


class McpOAuthIn(_Body):
    """OAuth 2.0 client credentials (RFC 6749 section 4.4) for an upstream MCP server: the gateway
    fetches a bearer token from `token_url` (which passes the tenant egress rules, as the server's URL
    does). `client_secret` is write-only: sealed as a workspace secret, never read back, logged or
    audited."""

    token_url: str = Field(min_length=1, max_length=2048, pattern=r"^https?://")
    client_id: str = Field(min_length=1, max_length=256)
    scope: str | None = Field(None, min_length=1, max_length=1024)
    client_secret: str = Field(min_length=1, max_length=4096, repr=False)


class McpServerIn(_Body):
    """An upstream MCP server of a workspace: where it listens (Streamable HTTP) and the headers the
    gateway adds to every request it forwards there (its credentials). `headers` are write-only: sealed
    as a workspace secret, never read back, logged or audited (their names are shown)."""

    url: str = Field(min_length=1, max_length=2048, pattern=r"^https?://")
    headers: dict[str, str] = Field(default_factory=dict, max_length=16, repr=False)
    description: str = DESCRIPTION
    # What a tools/call costs on the caller's spend caps: decimal USD strings ("0.002").
    price_usd: str | None = Field(None, min_length=1, max_length=40)
    tool_price_usd: dict[str, str] = Field(default_factory=dict, max_length=256)
    oauth: McpOAuthIn | None = None  # a bearer token by the client credentials grant

    @model_validator(mode="after")
    def _prices_exact(self) -> McpServerIn:
        from sluicegate.mcp.servers import ToolPrices

        for name in self.tool_price_usd:
            if not 1 <= len(name) <= 128:
                raise ValueError("a tool name in tool_price_usd has 1 to 128 characters")
        ToolPrices.from_usd(self.price_usd, self.tool_price_usd)  # ValueError: not exact, negative, too large
        return self

    @field_validator("headers")
    @classmethod
    def _header_names(cls, value: dict[str, str]) -> dict[str, str]:
        import re

        for name, header_value in value.items():
            if not re.fullmatch(_HEADER_NAME, name):
                raise ValueError("a header name is a token (letters, digits and !#$%&'*+.^_`|~-)")
            if name.lower() in RESERVED_HEADERS:
                raise ValueError(f"the header {name!r} belongs to the transport and cannot be set")
            if len(header_value) > 8192 or any(c in header_value for c in "\r\n\0"):
                raise ValueError(f"the value of {name!r} is longer than 8192 characters or holds a line break")
        if len({n.lower() for n in value}) != len(value):
            raise ValueError("a header is named twice (names are case-insensitive)")
        return value


TRY_TEXT_BYTES = 64 * 1024


class RedactionTryIn(_Body):
    """A text to run a key's redaction rules on (`POST /keys/{key_id}/redaction/try`): never stored,
    logged or audited."""

    text: str = Field(max_length=TRY_TEXT_BYTES, repr=False)


class CapIn(_Body):
    """A spend cap: `limit_usd` is a decimal string (`"250.00"`), kept exactly as nano-USD.

    A `locked` cap is a floor for the levels below: none of them may set a higher cap in the same
    window, nor a monitor-only one when this one enforces. An enforcing cap with `rollout_percent`
    below 100 enforces for that share of the keys under it and monitors the others. A cap with
    `on_insufficient = "substitute"` sends a call that does not fit to `substitute_model` instead,
    and with `substitute_at_percent` already a call that would take the cap past that percent.
    """

    window: WindowName = "month"
    limit_usd: str = Field(min_length=1, max_length=40)
    mode: Mode = "enforce"
    on_insufficient: OnInsufficient = "refuse"
    thresholds: list[int] | None = Field(None, max_length=16)
    locked: bool = False
    rollout_percent: float = Field(100.0, ge=0, le=100)
    substitute_model: str | None = Field(None, min_length=1, max_length=MODEL_NAME_MAX)
    substitute_at_percent: int | None = Field(None, ge=1, le=99)

    @model_validator(mode="after")
    def _locked_in_full(self) -> CapIn:
        check_locked_rollout(self.locked, self.rollout_percent, "cap")
        check_substitute(self.on_insufficient, self.substitute_model, self.substitute_at_percent)
        return self

    @field_validator("limit_usd")
    @classmethod
    def _exact_usd(cls, value: str) -> str:
        usd_to_nusd(value)
        return value

    @field_validator("thresholds")
    @classmethod
    def _percents(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and any(not 1 <= t <= 1000 for t in value):
            raise ValueError("thresholds are whole percents from 1 to 1000")
        return value

    @property
    def limit_nusd(self) -> int:
        return usd_to_nusd(self.limit_usd)


class LimitIn(_Body):
    """A rate limit on the policy's entity: `limit` requests or tokens per `window_s` seconds
    (a sliding window), or `limit` requests in flight at once (`concurrent`, no window).

    Between `monitor` and `enforce`, `rollout_percent` bites for that share of the keys (or of the
    requests, `rollout_by = "request"`) and monitors the rest. A `locked` limit is a ceiling for the
    levels below: none of them may set a higher limit of the same kind and window, nor one that
    bites less (monitor-only, or a smaller rollout) when this one enforces; it applies in full
    (`rollout_percent` 100), as locked caps and rules do. `on_redis_error`
    chooses, for this limit, what a call does while the limit store is unreachable (default: the
    gateway's `limits.on_redis_error`). With a `substitute_model`, a call the limit would refuse
    goes to that model instead (if the caller may use it and it fits the other limits), and calls
    asking for that model are not counted on this limit.
    """

    kind: Literal["requests", "tokens", "concurrent"] = "requests"
    limit: int = Field(ge=1, le=MAX_LIMIT)
    window_s: int = Field(60, ge=1, le=MAX_WINDOW_S)
    mode: Mode = "enforce"
    rollout_percent: float = Field(100.0, ge=0, le=100)
    rollout_by: RolloutBy = "key"
    locked: bool = False
    on_redis_error: Literal["fail_closed", "fail_open"] | None = None  # None: `limits.on_redis_error`
    substitute_model: str | None = Field(None, min_length=1, max_length=MODEL_NAME_MAX)
    # A limit on MCP tool calls (`server/tool` patterns) instead of model calls.
    tools: list[Pattern] | None = Field(None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _locked_in_full(self) -> LimitIn:
        check_locked_rollout(self.locked, self.rollout_percent, "limit")
        check_tool_limit(self.kind, self.tools, self.substitute_model)
        return self


def _distinct_limits(limits: list[LimitIn]) -> list[LimitIn]:
    """One limit per kind, window and tool patterns on one entity (they would share a counter)."""
    seen: set[tuple[str, int, str]] = set()
    for limit in limits:
        scope = tool_scope(limit.tools) if limit.tools else ""
        name = (limit.kind, 0 if limit.kind == "concurrent" else limit.window_s, scope)
        if name in seen:
            window = "" if limit.kind == "concurrent" else f" per {limit.window_s} s"
            tools = " on the same tools" if limit.tools else ""
            raise ValueError(f"two {limit.kind} limits{window}{tools}: give each kind and window once")
        seen.add(name)
    return limits


class LoopRuleIn(LoopRuleFields):
    """A runaway-loop rule (`policy.loops`): at most one per `detect` on a level; the nearest
    level's rule of each kind applies. A `locked` rule is a floor for the levels below: none of
    them may set a laxer rule of the same kind (a higher `max_repeats`, a shorter `window_s`, a
    higher `factor` or `min_requests`, a weaker action, a shorter cool-down or throttle interval,
    monitor-only, a smaller rollout)."""

    locked: bool = False

    @model_validator(mode="after")
    def _locked_in_full(self) -> LoopRuleIn:
        check_locked_rollout(self.locked, self.rollout_percent, "loop rule")
        return self


class PolicyIn(_Body):
    """The policy attached to one org, workspace, user or key (replaces what was there).

    Its `locked` rules and caps are floors for the levels below it (see `control.policies`); they
    are stored inside the policy document, so locks need no column of their own.
    """

    caps: list[CapIn] = Field(default_factory=list, max_length=16)
    redaction: list[RedactionRule] = Field(default_factory=list, max_length=64)
    custom_patterns: list[CustomPattern] = Field(default_factory=list, max_length=64)
    # Terms never acted on as the types they name (see config.AllowTerms); below a lock on a type, none.
    allow_terms: list[AllowTerms] = Field(default_factory=list, max_length=16)
    limits: Annotated[list[LimitIn], AfterValidator(_distinct_limits)] = Field(default_factory=list, max_length=16)
    # Model access rules (allow, deny, aliases, ceilings, params; see policy/model_rules.py).
    models: ModelRulesIn | None = None
    # Runaway-loop rules, at most one per kind (see policy/loop_rules.py).
    loops: list[LoopRuleIn] = Field(default_factory=list, max_length=2)
    # Tool access rules for MCP traffic (allow, deny by `server/tool`; see policy/tool_rules.py).
    tools: ToolRulesIn | None = None

    @model_validator(mode="after")
    def _one_loop_rule_per_kind(self) -> PolicyIn:
        kinds = [rule.detect for rule in self.loops]
        if len(set(kinds)) != len(kinds):
            raise ValueError("loops: at most one rule per detect (repeat, rate) on a level")
        return self

    @model_validator(mode="after")
    def _known_entities(self) -> PolicyIn:
        known = set(builtin_entities()) | {p.entity for p in self.custom_patterns}
        named = [(f"redaction.{i}", r.entities) for i, r in enumerate(self.redaction)]
        named += [(f"allow_terms.{i}", a.entities) for i, a in enumerate(self.allow_terms)]
        check_entity_names(named, known, "this policy's custom_patterns")
        for pattern in self.custom_patterns:
            try:
                Scanner([], [(pattern.entity, pattern.pattern)], [])
            except ValueError as exc:
                raise ValueError(str(exc)) from None
        check_locks(self.redaction, "redaction")
        return self


Level = Literal["org", "workspace", "user", "key"]
