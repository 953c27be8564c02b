"""Runaway-loop rules and the `[loops]` settings: what a rule detects, what it does, and the
normalized hash that tells "the same request" apart from a different one.

Two detections, each a rule of its own (a level holds at most one of each):

- `repeat`: the same request (`request_hash`) from one key more than `max_repeats` times within
  `window_s` seconds.
- `rate`: a key whose requests in the current `window_s` bucket are at least `min_requests` and
  more than `factor` times its own baseline, the average per bucket over the `baseline_s` before it.

Actions: `monitor` (an event, and feedback on the LangSmith run), `throttle` (one such request per
`throttle_interval_s` goes through, the rest are refused), `block` (refuse for `cooldown_s`: the
repeated request for a `repeat` rule, the whole key for a `rate` rule). `mode` and
`rollout_percent` stage a rule as for every policy kind (`policy.rollout`).

```toml
[loops]
backend = "redis"                 # "local": this process only; "redis": shared by every instance
redis_url = "redis://127.0.0.1:6379/0"

[[loops.rules]]
level = "workspace"
id = "ws-agents"
org = "acme"
detect = "repeat"
max_repeats = 5
window_s = 60
action = "block"
cooldown_s = 600
```
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sluicegate.policy.rollout import check_locked_rollout
from sluicegate.secrets import SecretUrl
from sluicegate.spend.caps import check_entity_org

__all__ = [
    "ACTION_STRENGTH",
    "IGNORED_FIELDS",
    "LoopLine",
    "LoopRuleFields",
    "LoopRuleSettings",
    "LoopSettings",
    "request_hash",
]

Detect = Literal["repeat", "rate"]
LoopAction = Literal["monitor", "throttle", "block"]
Mode = Literal["enforce", "monitor"]
OnStoreError = Literal["fail_open", "fail_closed"]
Level = Literal["org", "workspace", "user", "key"]
ACTION_STRENGTH: dict[str, int] = {"monitor": 0, "throttle": 1, "block": 2}
MAX_BUCKETS = 1440  # a rate rule's baseline_s / window_s

# Top-level fields that differ between retries of one request without changing what is asked:
# how the answer travels (`stream`, `stream_options`: a streamed and a non-streamed call of the same
# body are the same request), who asks on the caller's side (`user`, `metadata`, `safety_identifier`,
# `prompt_cache_key`, which SDKs and frameworks fill per call or per session), and request ids some
# clients put in the body. Everything else counts, compared as canonical JSON (keys sorted).
IGNORED_FIELDS: frozenset[str] = frozenset(
    {
        "stream",
        "stream_options",
        "user",
        "metadata",
        "safety_identifier",
        "prompt_cache_key",
        "request_id",
        "idempotency_key",
    }
)


def request_hash(route: str, body: dict[str, Any]) -> bytes:
    """The normalized hash of a request: the first 16 bytes of SHA-256 over the route and the
    canonical JSON of `body` (keys sorted at every depth, `IGNORED_FIELDS` left out at the top).
    SHA-256, not blake2b: OpenSSL's runs on the CPU's SHA extensions, about twice blake2b's speed
    here, and the hash is most of this step's cost on a long body."""
    kept = body if IGNORED_FIELDS.isdisjoint(body) else {k: v for k, v in body.items() if k not in IGNORED_FIELDS}
    digest = hashlib.sha256(route.encode())
    digest.update(orjson.dumps(kept, option=orjson.OPT_SORT_KEYS))
    return digest.digest()[:16]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoopRuleFields(_Section):
    """One loop rule (the fields a policy and the configuration file share).

    Attributes:
        detect: `repeat` (the same request again and again) or `rate` (a jump over the key's own rate).
        max_repeats: repeat: more than this many identical requests within `window_s` is a loop.
        window_s: repeat: the window; rate: the bucket the current rate is counted in.
        factor: rate: the current bucket must hold more than this many times the baseline...
        min_requests: rate: ...and at least this many requests (a quiet key going from 1 to 5 is no jump).
        baseline_s: rate: the baseline is the average per bucket over this long before the current one.
        action: `monitor`, `throttle` or `block`.
        cooldown_s: block: how long the refusal lasts.
        throttle_interval_s: throttle: one such request per this long goes through.
        mode: `enforce`, or `monitor` (what the action would have done becomes a `would_*` event).
        rollout_percent: an enforcing rule bites for this share of keys and monitors the rest.
        on_store_error: what to do when the shared state (Redis) is unreachable; None: the
            section's default (`fail_open`).
    """

    detect: Detect = "repeat"
    max_repeats: int = Field(default=5, ge=1, le=100_000)
    window_s: int = Field(default=60, ge=1, le=86_400)
    factor: float = Field(default=10.0, ge=1.0, le=10_000)
    min_requests: int = Field(default=60, ge=1, le=10_000_000)
    baseline_s: int = Field(default=3600, ge=2, le=7 * 86_400)
    action: LoopAction = "block"
    cooldown_s: int = Field(default=600, ge=1, le=7 * 86_400)
    throttle_interval_s: int = Field(default=30, ge=1, le=86_400)
    mode: Mode = "enforce"
    rollout_percent: float = Field(default=100.0, ge=0, le=100)
    on_store_error: OnStoreError | None = None

    @model_validator(mode="after")
    def _buckets(self) -> LoopRuleFields:
        if self.detect == "rate":
            if self.baseline_s % self.window_s or self.baseline_s < 2 * self.window_s:
                raise ValueError("a rate rule's baseline_s must be a multiple of window_s, at least twice it")
            if self.baseline_s // self.window_s > MAX_BUCKETS:
                raise ValueError(f"a rate rule's baseline_s may hold at most {MAX_BUCKETS} windows")
        return self


class LoopRuleSettings(LoopRuleFields):
    """One `[[loops.rules]]` entry: a rule on an org, workspace, user or key of the file. A `locked`
    rule is a floor for the control plane's rules of the same `detect` on its entity and below."""

    level: Level
    id: str = Field(min_length=1, max_length=256)
    org: str | None = Field(default=None, min_length=1, max_length=256)
    locked: bool = False

    @model_validator(mode="after")
    def _org_given(self) -> LoopRuleSettings:
        check_entity_org(self.level, self.id, self.org, "loop rule")
        check_locked_rollout(self.locked, self.rollout_percent, "loop rule")
        return self

    def line(self) -> LoopLine:
        fields = LoopRuleFields.model_validate(self.model_dump(include=set(LoopRuleFields.model_fields)))
        return LoopLine(fields, self.level, self.id, self.org or self.id)


class LoopSettings(_Section):
    """The `[loops]` section.

    Attributes:
        enabled: detect loops at all.
        backend: `local` (this process's memory) or `redis` (shared by every instance and worker).
        redis_url: the Redis holding the state (`redis://`, `rediss://`, `unix://`, `redis+cluster://`).
        redis_timeout_s: connect and read timeout of every Redis call.
        redis_breaker_s: after a failed call, fail fast for this long before trying Redis again.
        on_store_error: the default of the rules' `on_store_error`: `fail_open` (serve unchecked,
            with an event) or `fail_closed` (503).
        key_prefix: prefix of every Redis key.
        max_tracked: local backend: how many (key, request) pairs and keys are remembered, at most
            (the least recently seen are forgotten first).
        rules: rules of the file (the control plane's policies add more).
    """

    enabled: bool = True
    backend: Literal["local", "redis"] = "local"
    redis_url: SecretUrl = SecretUrl("redis://127.0.0.1:6379/0")
    redis_timeout_s: float = Field(default=0.5, gt=0, le=60)
    redis_breaker_s: float = Field(default=0.25, ge=0, le=60)
    on_store_error: OnStoreError = "fail_open"
    key_prefix: str = Field(default="sg", min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")
    max_tracked: int = Field(default=100_000, ge=16, le=10_000_000)
    rules: tuple[LoopRuleSettings, ...] = ()

    @model_validator(mode="after")
    def _one_per_entity(self) -> LoopSettings:
        seen: set[tuple[str, str, str, str]] = set()
        for rule in self.rules:
            name = (rule.org or rule.id, rule.level, rule.id, rule.detect)
            if name in seen:
                raise ValueError(f"two {rule.detect} loop rules on {rule.level} {rule.id!r}")
            seen.add(name)
        return self


@dataclass(frozen=True, slots=True)
class LoopLine:
    """A rule in force for a caller, with where it comes from (`level` `entity_id`, or the
    operator's file when `operator`), as the pipeline and the stores see it."""

    rule: LoopRuleFields
    level: Level
    entity_id: str
    org_id: str
    operator: bool = True

    @property
    def rule_id(self) -> str:
        """Names the rule stably (for rollout buckets and events)."""
        where = "operator" if self.operator else self.level
        return f"loops:{where}:{self.level}:{self.entity_id}:{self.rule.detect}"

    def describe(self) -> str:
        r = self.rule
        origin = f"{self.level} {self.entity_id!r}" + (" (operator)" if self.operator else "")
        if r.detect == "repeat":
            what = f"more than {r.max_repeats} identical requests in {r.window_s} s"
        else:
            what = f"over {r.factor:g}x the baseline and at least {r.min_requests} requests in {r.window_s} s"
        return f"the {r.detect} rule of {origin} ({what}, {r.action})"
