"""What the admin API answers (pydantic): one model per success response, and the error envelope.

The handlers still build plain dicts (`json_response`); these models are the contract they keep, in
the OpenAPI document (`control.openapi`, under `components/schemas`) and in its test
(tests/integration/test_control_openapi.py), which calls every endpoint and validates each answer
against the schema the document gives for its status.

Adding an endpoint (or a field):

1. Write its success model here (a row model, and a list model `{"data": [...]}` for a list), or
   reuse one. A 204 has none.
2. Name it in the endpoint's row in `admin_api.ENDPOINTS`: `Endpoint(..., response=TheModel)`; an
   error status the row's shape does not already imply (see `openapi.error_statuses`) goes in
   `errors=(409,)`.
3. A field a handler adds to a row must be added here too: the models refuse unknown fields
   (`additionalProperties: false`), so that a hash or a secret value leaking into an answer fails
   the test, and so does an endpoint without a model.

The models are strict about presence: a field every answer carries is required (nullable when it may
be null); one that is sometimes left out has a default. Money is integer nano-USD; times are the ISO
text the store keeps.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sluicegate.config import RedactionAction
from sluicegate.spend.caps import Mode, OnInsufficient, WindowName

Time = str  # ISO-8601 UTC text, as stored (`2026-11-27T09:00:00.123456+00:00`)
OriginLevel = Literal["operator", "org", "workspace", "user", "key"]
EntityLevel = Literal["org", "workspace", "user", "key"]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ── errors ────────────────────────────────────────────────────────────────────────────────────


class LockedBy(_Out):
    level: OriginLevel
    id: str | None


class ErrorField(_Out):
    """One field at fault: where (`caps.0.limit_usd`, `body`, a query or path parameter) and why."""

    loc: str
    msg: str
    locked_by: LockedBy | None = Field(None, description="the lock a policy write would weaken (409 only)")


class ErrorBody(_Out):
    code: str = Field(description="`unauthenticated`, `forbidden`, `not_found`, `validation_error`, `conflict`, …")
    message: str
    fields: list[ErrorField] | None = Field(None, description="present when the answer names fields")


class Error(_Out):
    """Every error answer (4xx and 500): `{"error": {"code", "message", "fields"?}}`."""

    error: ErrorBody


# ── the calling token ─────────────────────────────────────────────────────────────────────────


class Whoami(_Out):
    token_id: str
    org_id: str | None = Field(description="null for an operator token")
    workspace_id: str | None = Field(description="set for a workspace admin token")
    role: Literal["admin", "viewer"]


# ── the gateway's routes ──────────────────────────────────────────────────────────────────────


class RouteDeployment(_Out):
    """One deployment of a route (docs/routing.md), as the answering instance sees it."""

    route: str
    deployment: str = Field(description="`provider/model`; never a URL or a key")
    provider: str
    model: str
    weight: int
    breaker: Literal["closed", "open", "half_open"]
    failures: int = Field(description="failed attempts in a row")
    in_flight: int
    ttfb_s: float | None = Field(description="smoothed time to first byte in seconds; null until measured")


class Routes(_Out):
    """The routes of several deployments and their circuit breakers (figures of one instance)."""

    routes: list[RouteDeployment]


# ── entities ──────────────────────────────────────────────────────────────────────────────────


class _Described(_Out):
    """Names, descriptions and tags, so that people see names, not ids."""

    description: str = Field(description="free text: what it is for, where it is used")
    tags: list[str]


class Org(_Described):
    id: str
    name: str
    created_at: Time


class Workspace(_Described):
    id: str
    org_id: str
    name: str
    created_at: Time


class User(_Described):
    id: str
    org_id: str
    workspace_id: str
    name: str
    created_at: Time


class Key(_Described):
    """A gateway key's row: never its hash nor its value (`prefix` is the start, for recognising it)."""

    id: str
    org_id: str
    workspace_id: str
    user_id: str | None
    name: str
    prefix: str
    created_at: Time
    expires_at: Time | None
    revoked_at: Time | None
    last_used_at: Time | None


class KeyCreated(Key):
    key: str = Field(description="the key itself, shown this once (it is not stored)")


class KeyRotated(KeyCreated):
    """The new key of a rotation (shown once), and until when the key it replaces keeps working."""

    replaces: str = Field(description="the id of the key this one replaces")
    old_key_expires_at: Time


class AdminToken(_Out):
    """An admin token's row, without its hash."""

    id: str
    org_id: str | None
    workspace_id: str | None
    name: str
    role: Literal["admin", "viewer"] = Field(description="a viewer reads what its scope covers and changes nothing")
    created_at: Time
    expires_at: Time | None
    revoked_at: Time | None
    last_used_at: Time | None = Field(description="written at most once a minute")


class AdminTokenCreated(AdminToken):
    token: str = Field(description="the token itself, shown this once (it is not stored)")


class Secret(_Out):
    """A provider secret as it is shown: its provider and non-secret fields, never its value."""

    provider: str
    base_url: str | None = None
    project: str | None = None
    fingerprint: str | None = Field(
        None, description="`fp_` + 12 hex digits, keyed by the master key: tells values apart, never shows one"
    )
    set_by: str | None = Field(None, description="the actor that set it (absent on secrets set before this was kept)")
    updated_at: Time


class McpOAuth(_Out):
    """OAuth client credentials of a registered server, as shown: never the client secret."""

    token_url: str
    client_id: str
    scope: str | None = None


class McpServer(_Out):
    """An upstream MCP server of a workspace as it is shown: its header names, never their values."""

    name: str
    url: str
    header_names: list[str]
    description: str
    price_usd: str | None = Field(None, description="what a tools/call costs on the caller's spend caps")
    tool_price_usd: dict[str, str] = Field(default_factory=dict, description="the price of a tool's calls, by tool")
    oauth: McpOAuth | None = Field(None, description="a bearer token by the client credentials grant")
    fingerprint: str | None = Field(None, description="of the headers' values, keyed by the master key")
    created_at: Time
    updated_at: Time


class McpServerList(_Out):
    data: list[McpServer]


class McpToolLimit(_Out):
    """A rate limit on tool calls that counts this tool's calls (its `tools` patterns match it)."""

    level: str
    entity_id: str
    kind: str
    limit: int
    window_s: int | None
    mode: str
    tools: list[str]


class McpTool(_Out):
    """One tool of an upstream MCP server as the gateway sees it, and what the workspace's policies
    say of it (the operator's, the organization's and the workspace's; a user's or key's own lists
    can narrow them further)."""

    name: str
    title: str | None = None
    description: str = ""
    access: str = Field(description="allowed, denied, or monitored (a monitor-only or partial rule would deny it)")
    reason: str | None = Field(None, description="the rule that denies it, or would")
    rule: dict[str, Any] | None = None
    price_usd: str | None = Field(None, description="what one call costs on the caller's spend caps; null: free")
    limits: list[McpToolLimit] = Field(default_factory=list)


class McpToolList(_Out):
    server: str
    url: str
    data: list[McpTool]


class _Page(_Out):
    """A page of a list: `?limit` rows at most; `next_cursor` (as `?cursor`) asks for the next one."""

    has_more: bool
    next_cursor: str | None = Field(description="null on the last page")


class OrgList(_Page):
    data: list[Org]


class WorkspaceList(_Page):
    data: list[Workspace]


class UserList(_Page):
    data: list[User]


class KeyList(_Page):
    data: list[Key]


class AdminTokenList(_Page):
    data: list[AdminToken]


class SecretList(_Out):
    data: list[Secret]


# ── effective policy ──────────────────────────────────────────────────────────────────────────


class CapClamp(_Out):
    limit_nusd: int
    mode: Mode


class Rollout(_Out):
    percent: float = Field(description="the share of keys the rule or cap acts for")
    applies: bool | None = Field(description="whether this key is in that share (null when no key is in question)")


class EffectiveCap(_Out):
    level: EntityLevel
    entity_id: str
    window: WindowName
    limit_nusd: int
    limit_usd: str
    mode: Mode
    on_insufficient: OnInsufficient
    substitute_model: str | None = Field(description="where a `substitute` cap sends calls that do not fit")
    substitute_at_percent: int | None = Field(None, description="a `substitute` cap substitutes from this percent on")
    thresholds: list[int]
    origin: OriginLevel
    locked: bool
    clamped_from: CapClamp | None = Field(None, description="the (limit, mode) a locked floor lowered")
    rollout: Rollout | None = Field(None, description="a partial rollout (for a key: whether it is in it)")


class LimitRaise(_Out):
    limit: int
    mode: Mode
    rollout_percent: float


class EffectiveLimit(_Out):
    level: EntityLevel
    entity_id: str
    kind: Literal["requests", "tokens", "concurrent"]
    limit: int
    window_s: int | None = Field(description="the sliding window in seconds; null for `concurrent`")
    mode: Mode
    rollout_percent: float
    rollout_by: Literal["key", "request"]
    on_redis_error: Literal["fail_closed", "fail_open"] | None = Field(
        description="what a call does while the limit store is unreachable; null: the gateway's default"
    )
    substitute_model: str | None = Field(
        None, description="where a call this limit would refuse goes instead (calls to it are not counted here)"
    )
    tools: list[str] | None = Field(None, description="a limit on the MCP tool calls matching these patterns")
    origin: OriginLevel
    origin_id: str | None
    locked: bool
    raised_from: LimitRaise | None = Field(None, description="the (limit, mode, rollout) a locked limit above changed")
    rollout: Rollout | None = Field(None, description="a partial rollout by key (for a key: whether it is in it)")


class RuleOrigin(_Out):
    action: str
    level: OriginLevel
    id: str | None


class EffectiveRule(_Out):
    entities: list[str]
    action: RedactionAction
    direction: Literal["request", "response"]
    origin: OriginLevel
    origin_id: str | None
    locked: bool
    floor: RuleOrigin | None = Field(None, description="the strongest lock on this type and direction")
    raised_from: RuleOrigin | None = Field(None, description="the weaker rule a floor replaced")
    rollout: Rollout | None = Field(None, description="a partial rollout (for a key: whether it is in it)")


class EffectivePattern(_Out):
    entity: str
    pattern: str
    origin: OriginLevel
    origin_id: str | None


class RefusedAllow(_Out):
    entity: str
    locked_by: LockedBy


class EffectiveAllow(_Out):
    """A level's allowed terms (`allow_terms`), with the types a lock above refuses them."""

    entities: list[str]
    terms: list[str]
    origin: OriginLevel
    origin_id: str | None
    refused: list[RefusedAllow] = Field(
        default_factory=list, description="types a lock above keeps these terms from (they are not exempt there)"
    )


class LoopRule(_Out):
    """A runaway-loop rule's fields (`policy.loops`)."""

    detect: Literal["repeat", "rate"]
    max_repeats: int
    window_s: int
    factor: float
    min_requests: int
    baseline_s: int
    action: Literal["monitor", "throttle", "block"]
    cooldown_s: int
    throttle_interval_s: int
    mode: Mode
    rollout_percent: float
    on_store_error: Literal["fail_open", "fail_closed"] | None


class LoopOrigin(_Out):
    level: OriginLevel
    id: str | None


class LoopRaisedFrom(LoopOrigin):
    rule: LoopRule = Field(description="the laxer rule, as written")


class EffectiveLoop(LoopRule):
    """The loop rule in force of one kind: the nearest level's, raised to any lock above it."""

    origin: OriginLevel
    origin_id: str | None
    locked: bool
    floor: LoopOrigin | None = Field(None, description="who locks a rule of this kind above it")
    raised_from: LoopRaisedFrom | None = Field(None, description="the laxer rule a lock raised")
    rollout: Rollout | None = Field(None, description="a partial rollout, and whether this key is in it")


# model access rules (policy/models.py: `ModelRules.as_json`)


class ModelCeiling(_Out):
    max_output_tokens: int
    action: Literal["clamp", "refuse"]
    models: list[str]
    locked: bool


class ReplacedCeiling(ModelCeiling):
    origin: OriginLevel
    origin_id: str | None


class ModelParamRule(_Out):
    field: str
    op: Literal["eq", "ne", "lte", "gte", "in", "not_in", "absent"]
    value: Any


class ModelLevel(_Out):
    """One level's model rules (the ceilings still in force only)."""

    level: OriginLevel
    id: str | None
    allow: list[str] | None = Field(description="null: no allow list at this level")
    allow_locked: bool
    deny: list[str]
    deny_locked: bool
    ceilings: list[ModelCeiling]
    params: list[ModelParamRule]
    mode: Mode
    rollout_percent: float
    rollout_by: Literal["key", "request"]


class ModelAlias(_Out):
    name: str
    target: str
    origin: OriginLevel
    origin_id: str | None


class EffectiveModels(_Out):
    """The model access rules in force: every level's lists, ceilings and field rules from the
    operator's down (each applies), the aliases in force, and the ceilings lower levels replaced."""

    levels: list[ModelLevel]
    aliases: list[ModelAlias]
    replaced_ceilings: list[ReplacedCeiling]


class ToolLevel(_Out):
    """One level's tool lists (`server/tool` patterns)."""

    level: OriginLevel
    id: str | None
    allow: list[str] | None = Field(description="null: no allow list at this level")
    allow_locked: bool
    deny: list[str]
    deny_locked: bool
    mode: Mode
    rollout_percent: float
    rollout_by: Literal["key", "request"]


class EffectiveTools(_Out):
    """The tool access rules in force for MCP traffic: every level's lists from the operator's down
    (each applies: a deny anywhere wins, a tool must be on every allow list)."""

    levels: list[ToolLevel]


class EffectivePolicy(_Out):
    """What applies to a key: every cap, rate limit, rule and pattern in force, with its origin and locks."""

    loops: list[EffectiveLoop] = Field(description="the loop rule in force of each kind (repeat, rate)")

    key_id: str
    caps: list[EffectiveCap]
    limits: list[EffectiveLimit]
    redaction: list[EffectiveRule]
    custom_patterns: list[EffectivePattern]
    allow_terms: list[EffectiveAllow] = Field(
        description="every level's allowed terms from the operator's down (they add up, except under a lock)"
    )
    default_action: str | None
    redaction_enabled: bool
    models: EffectiveModels
    tools: EffectiveTools
    sources: dict[str, str] = Field(description="level -> id of each level with a policy")


class RedactionFinding(_Out):
    entity: str
    start: int = Field(description="character offset in the text sent")
    end: int
    action: RedactionAction


class RedactionBelow(_Out):
    """A finding below its type's confidence threshold: counted, not acted on."""

    entity: str
    start: int = Field(description="character offset in the text sent")
    end: int


class RedactionTry(_Out):
    """A key's redaction rules run on a text (`POST /keys/{key_id}/redaction/try`): what they find
    (types and positions) and the text as it would be sent. Nothing of it is kept."""

    key_id: str
    enabled: bool = Field(description="false when redaction is off in the configuration: nothing is scanned")
    findings: list[RedactionFinding]
    below_threshold: list[RedactionBelow] = Field(
        description="findings below their type's confidence threshold (min_confidence): counted as "
        "below_threshold events, left in the text, not acted on"
    )
    allowed: list[RedactionBelow] = Field(
        default_factory=list,
        description="what the policies' allowed terms (allow_terms) let through: found by the same rules "
        "without the terms, left in the text",
    )
    text: str


# ── records: events, spend, audit ─────────────────────────────────────────────────────────────


class _Call(_Out):
    """What every data-plane record starts with (`models._call_columns`): its id, time and who called."""

    id: str
    at: Time
    org_id: str
    workspace_id: str | None
    user_id: str | None
    key_id: str | None
    request_id: str


class Event(_Call):
    trace_id: str | None
    run_id: str | None
    route: str | None = Field(None, description="where the call came in: its wire format, or mcp for a tool call")
    policy: str
    action: str
    direction: str
    entity: str
    count: int
    detail: dict[str, Any]
    run_url: str | None = Field(None, description="set when the gateway knows a trace viewer and the event a run")


class EventList(_Page):
    data: list[Event]


class MonitoringRow(_Out):
    """Decisions a rule would have taken but did not (monitor mode, or outside a rollout's share)."""

    policy: str = Field(description="spend, redaction, limits, models, loops")
    action: str = Field(description="would_refuse, would_block, monitor, ...")
    entity: str = Field(description="the rule's level (caps, limits) or the entity type (redaction)")
    workspace_id: str | None
    key_id: str | None
    events: int = Field(description="calls it would have acted on")
    count: int = Field(description="the findings or requests those calls carried")


class Monitoring(_Out):
    data: list[MonitoringRow]
    total_events: int


class SpendRow(_Out):
    """One group's settled spend; the grouping columns are present when asked for (`group_by`, `bucket`)."""

    workspace_id: str | None = None
    user_id: str | None = None
    key_id: str | None = None
    model: str | None = None
    provider: str | None = None
    bucket: str | None = Field(None, description="`2026-11-27T09` (hour) or `2026-11-27` (day)")
    calls: int
    input_tokens: int
    output_tokens: int
    cost_nusd: int


class CapStatus(_Out):
    """A cap on the organization or a workspace, with its current window's figures (null when the
    gateway holds no spend store)."""

    level: EntityLevel
    id: str
    window: WindowName
    limit_nusd: int
    spent_nusd: int | None
    reserved_nusd: int | None
    mode: Mode


class Spend(_Out):
    data: list[SpendRow]
    total_cost_nusd: int
    caps: list[CapStatus]


class LedgerRow(_Call):
    """One settled call in the spend ledger."""

    model: str | None
    provider: str | None
    input_tokens: int
    output_tokens: int
    cost_nusd: int


class LedgerList(_Page):
    data: list[LedgerRow]


class AuditDiff(_Out):
    before: Any = Field(description="the changed fields before (masked), or null for a creation")
    after: Any = Field(description="the changed fields after (masked), or null for a deletion")


class AuditRow(_Out):
    """One row of the hash-chained audit log; `diff` is what changed (never a secret value)."""

    seq: int
    at: Time
    actor: str
    action: str
    target: str
    org_id: str | None
    request_id: str
    client: str
    diff: AuditDiff
    prev_hash: str
    hash: str


class AuditList(_Page):
    data: list[AuditRow]


class AuditVerdict(_Out):
    """The whole audit chain's check (every organization's rows, as `sluicegate audit verify` runs
    it), told without any row's content: whether it holds, how many rows it has, and where and why
    it first fails."""

    ok: bool
    rows: int = Field(description="rows in the whole chain (all organizations)")
    first_bad_seq: int | None = Field(None, description="the first row at fault (present when not ok)")
    reason: str | None = Field(None, description="why (seqs and kinds only, never a diff; present when not ok)")
