"""The `[limits]` settings: where rate limits are counted, and the config file's own rules.

```toml
[limits]
backend = "redis"                 # "local": one process, Rust counters; "redis": many instances
redis_url = "redis://127.0.0.1:6379/0"
on_redis_error = "fail_closed"    # or "fail_open" (a policy may choose its own)
concurrency_ttl_s = 600           # an in-flight entry never finished (a killed instance) frees after this

[limits.lease]
enabled = true                    # admit most requests locally from slices of the current slot

[[limits.rules]]
level = "key"
id = "key-7"
org = "acme"
kind = "requests"                 # or "tokens", "concurrent"
limit = 600
window_s = 60
mode = "enforce"                  # or "monitor"
rollout_percent = 25              # enforce for a stable quarter of keys, monitor the rest
substitute_model = "openai/gpt-4o-mini"  # when full: calls go there, not a 429 (and are not counted here)

[[limits.rules]]                  # a limit on MCP tool calls instead of model calls
level = "workspace"
id = "ws-research"
org = "acme"
kind = "requests"
limit = 30
tools = ["search/*"]              # `server/tool` patterns: these tools' calls count here, together
```
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sluicegate.limits.lines import MAX_LIMIT, MAX_WINDOW_S, CounterName, Kind, LimitLine, tool_scope
from sluicegate.policy.model_rules import Pattern
from sluicegate.policy.rollout import Mode, RolloutBy, check_locked_rollout
from sluicegate.secrets import SecretUrl
from sluicegate.spend.caps import MODEL_NAME_MAX, Level, check_entity_org

__all__ = ["LimitLeaseSettings", "LimitRuleSettings", "LimitSettings", "check_tool_limit"]


def check_tool_limit(kind: str, tools: list[str] | None, substitute_model: str | None) -> None:
    """A limit on tool calls (`tools` set) counts calls: `requests` or `concurrent`, no substitute
    model (ValueError otherwise)."""
    if tools is None:
        return
    if kind == "tokens":
        raise ValueError("a limit on tool calls (tools) counts calls: kind requests or concurrent")
    if substitute_model is not None:
        raise ValueError("a limit on tool calls (tools) has no substitute_model")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LimitRuleSettings(_Section):
    """One `[[limits.rules]]` entry (rules from the control plane become the same `LimitLine`s).

    `mode` and `rollout_percent` decide, per call, whether the rule enforces or only monitors
    (`sluicegate.policy.rollout.bites`, with `rule_id` naming the rule). A `locked` rule is an
    operator floor: a control-plane policy on its entity or below may not set a higher limit of
    the same kind and window, nor a monitor-only one when it enforces. With a `substitute_model`,
    a call the rule would refuse goes to that model instead, and calls asking for that model are
    not counted on the rule (`policy.limits`).
    """

    level: Level
    id: str = Field(min_length=1, max_length=256)
    org: str | None = Field(default=None, min_length=1, max_length=256)
    kind: Kind
    limit: int = Field(ge=1, le=MAX_LIMIT)
    window_s: int = Field(default=60, ge=1, le=MAX_WINDOW_S)
    mode: Mode = "enforce"
    rollout_percent: float = Field(default=100.0, ge=0, le=100)
    rollout_by: RolloutBy = "key"
    locked: bool = False
    substitute_model: str | None = Field(default=None, min_length=1, max_length=MODEL_NAME_MAX)
    tools: list[Pattern] | None = Field(default=None, min_length=1, max_length=64)

    @field_validator("limit", "window_s", mode="before")
    @classmethod
    def _whole(cls, value: object) -> object:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError("must be a whole number")
        return value

    @model_validator(mode="after")
    def _org_given(self) -> LimitRuleSettings:
        check_entity_org(self.level, self.id, self.org, "limit")
        check_locked_rollout(self.locked, self.rollout_percent, "limit")
        check_tool_limit(self.kind, self.tools, self.substitute_model)
        return self

    @property
    def rule_id(self) -> str:
        """A stable name for the rule (what the rollout hashes with the key)."""
        window = "" if self.kind == "concurrent" else f":{self.window_s}s"
        scope = f":{tool_scope(self.tools)}" if self.tools else ""
        return f"file:{self.level}:{self.id}:{self.kind}{window}{scope}"

    def line(self) -> LimitLine:
        """This rule as a `LimitLine`."""
        scope = tool_scope(self.tools) if self.tools else ""
        return LimitLine(self.level, self.id, self.org or self.id, self.kind, self.limit, self.window_s, scope)


class LimitLeaseSettings(_Section):
    """Leases (Redis backend): an instance takes a slice of a line's room in the current slot and
    admits against it locally, so most requests touch no network (see `sluicegate.limits.leases`).

    Attributes:
        enabled: use leases (otherwise every acquire and finish is one Redis script call).
        requests_per_slice: a slice pays for this many requests like the one asking...
        free_divisor: ...but never more than 1/free_divisor of what the line has free, so slices
            shrink as the line fills and the last requests are granted exactly what they need.
        flush_interval_s: how often unreported token settlements and unused slices of ended slots
            are sent to Redis when no acquire carries them sooner.
    """

    enabled: bool = False
    requests_per_slice: int = Field(default=256, ge=1, le=1_000_000)
    free_divisor: int = Field(default=4, ge=1, le=1_000_000)
    flush_interval_s: float = Field(default=0.5, gt=0, le=60)


class LimitSettings(_Section):
    """The `[limits]` section.

    Attributes:
        enabled: enforce rate limits at all.
        backend: `local` (this process's Rust counters: exact for one process only) or `redis`.
        redis_url: the Redis holding the counters (`redis://`, `rediss://`, `unix://`, `redis+cluster://`).
        redis_timeout_s: connect and read timeout of every Redis call.
        redis_max_connections: the connection pool's size (a call waits for a free one up to
            `redis_scripts.pool_wait_s(redis_timeout_s)`).
        redis_breaker_s: after a failed call, fail fast for this long before trying Redis again.
        on_redis_error: `fail_closed` (refuse) or `fail_open` (serve without limits), the default
            for policies that do not choose; the pipeline applies it.
        key_prefix: prefix of every Redis key.
        slot_ms: the sliding window's slot; a window is conservative by at most one slot (an
            admission stays counted up to `window_s` plus a slot). Divides 1000.
        concurrency_ttl_s: an in-flight entry not finished within this (an instance killed
            mid-call) stops counting; keep it above `upstream.total_timeout_s`.
        lease: leases.
        rules: rate limits from the file (the control plane adds more).
    """

    enabled: bool = True
    backend: Literal["local", "redis"] = "local"
    redis_url: SecretUrl = SecretUrl("redis://127.0.0.1:6379/0")  # a password in it prints as *****
    redis_timeout_s: float = Field(default=0.5, gt=0, le=60)
    redis_max_connections: int = Field(default=64, ge=1)
    redis_breaker_s: float = Field(default=0.25, ge=0, le=60)
    on_redis_error: Literal["fail_closed", "fail_open"] = "fail_closed"
    key_prefix: str = Field(default="sg", min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")
    slot_ms: int = Field(default=1000, ge=100, le=1000)
    concurrency_ttl_s: float = Field(default=600.0, gt=0, le=86_400)
    lease: LimitLeaseSettings = LimitLeaseSettings()
    rules: tuple[LimitRuleSettings, ...] = ()

    @field_validator("slot_ms")
    @classmethod
    def _slot_divides_a_second(cls, value: int) -> int:
        if 1000 % value:
            raise ValueError("slot_ms must divide 1000 (100, 125, 200, 250, 500 or 1000)")
        return value

    @field_validator("rules")
    @classmethod
    def _rules_unique(cls, rules: tuple[LimitRuleSettings, ...]) -> tuple[LimitRuleSettings, ...]:
        seen: set[CounterName] = set()
        for rule in rules:
            name = rule.line().counter_name
            if name in seen:
                window = "" if rule.kind == "concurrent" else f" per {rule.window_s} s"
                tools = f" on the tools {rule.tools}" if rule.tools else ""
                raise ValueError(f"two {rule.kind} limits{window}{tools} on {rule.level} {rule.id!r}")
            seen.add(name)
        return rules

    def lines(self) -> tuple[LimitLine, ...]:
        """The file's rules as `LimitLine`s, in order."""
        return tuple(rule.line() for rule in self.rules)
