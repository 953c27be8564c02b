"""Caps and the `[spend]` settings.

A `CapLine` is one cap as the stores see it: a limit in nano-USD on one entity (an organization,
workspace, user or API key of one organization) in one window. A request counts against every line
that applies to it (for example its org's monthly cap, its workspace's daily cap and its key's total
cap) and is reserved on all of them at once.

`SpendSettings` is the `[spend]` section of the configuration (the lead's `config.py` embeds it):

```toml
[spend]
backend = "redis"                 # "local": one process, Rust buckets; "redis": many instances
redis_url = "redis://127.0.0.1:6379/0"
on_redis_error = "fail_closed"    # or "fail_open"
thresholds = [50, 80, 100]

[spend.lease]
enabled = true

[spend.default_price]             # unknown models cost this (omit: they are refused)
input_usd_per_mtok = "10"
output_usd_per_mtok = "30"

[spend.price_overrides."mock-gpt"]
input_usd_per_mtok = "1"
output_usd_per_mtok = "2"

[[spend.caps]]
level = "org"
id = "acme"
window = "month"
limit_usd = "500.00"
```
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from sluicegate.policy.rollout import check_locked_rollout
from sluicegate.secrets import SecretUrl
from sluicegate.spend.money import MAX_NUSD, usd_to_nusd

__all__ = [
    "CapLine",
    "CapSettings",
    "EstimateSettings",
    "LeaseSettings",
    "Level",
    "Mode",
    "OnInsufficient",
    "PriceSettings",
    "SpendSettings",
    "WindowName",
    "rollout_id",
]

Level = Literal["org", "workspace", "user", "key"]
WindowName = Literal["total", "hour", "day", "week", "month"]
Mode = Literal["enforce", "monitor"]
OnInsufficient = Literal["refuse", "clamp", "substitute"]
MODEL_NAME_MAX = 256

MAX_THRESHOLDS = 16
DEFAULT_THRESHOLDS: tuple[int, ...] = (50, 80, 100)


def _check_thresholds(values: tuple[int, ...]) -> tuple[int, ...]:
    if len(values) > MAX_THRESHOLDS:
        raise ValueError(f"at most {MAX_THRESHOLDS} thresholds")
    if any(isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= 1000 for t in values):
        raise ValueError("thresholds are whole percents from 1 to 1000")
    return tuple(sorted(set(values)))


def check_entity_org(level: Level, entity_id: str, org: str | None, what: str) -> None:
    """A rule of the configuration file names the organization of its entity: `org` is required
    below the org level, and an org-level rule's `org`, if given, is its own id.

    Raises:
        ValueError: naming `what` (a cap, a limit, a loop rule).
    """
    if level != "org" and org is None:
        raise ValueError(f"a {level} {what} needs `org`, the organization it belongs to")
    if level == "org" and org not in (None, entity_id):
        raise ValueError(f"an org {what}'s `org` (if given) must equal its `id`")


def check_substitute(on_insufficient: str, substitute_model: str | None, at_percent: int | None = None) -> None:
    """A `substitute` cap names its model, and only such a cap does; only it may substitute from a
    percent of the cap on (`substitute_at_percent`, 1 to 99) (ValueError otherwise)."""
    if at_percent is not None:
        if on_insufficient != "substitute":
            raise ValueError("substitute_at_percent is for caps with on_insufficient = 'substitute'")
        if isinstance(at_percent, bool) or not isinstance(at_percent, int) or not 1 <= at_percent <= 99:
            raise ValueError("substitute_at_percent is a whole percent from 1 to 99 (100 is the cap itself)")
    if on_insufficient == "substitute" and not substitute_model:
        raise ValueError("on_insufficient = 'substitute' needs substitute_model, the model to send calls to instead")
    if on_insufficient != "substitute" and substitute_model is not None:
        raise ValueError("substitute_model is for caps with on_insufficient = 'substitute'")
    if substitute_model is not None and len(substitute_model) > MODEL_NAME_MAX:
        raise ValueError(f"substitute_model is longer than {MODEL_NAME_MAX} characters")


def rollout_id(line: CapLine) -> str:
    """What names a cap in the rollout order (`sluicegate.policy.rollout`)."""
    return f"cap:{line.level}:{line.entity_id}:{line.window}"


@dataclass(frozen=True, slots=True)
class CapLine:
    """One cap on one entity in one window, as the stores enforce it.

    Attributes:
        level: which kind of entity the cap is on.
        entity_id: the entity's id (for `org`, the organization's id).
        org_id: the organization the entity belongs to; every key of an organization shares one
            Redis hash tag, so one script reserves all its lines atomically.
        window: `total`, or the UTC `hour`, `day`, ISO `week` or calendar `month`.
        limit_nusd: the cap, 0..=MAX_NUSD.
        mode: `enforce` refuses; `monitor` never refuses but reports every request it would have
            refused (shadow mode).
        on_insufficient: `refuse`; `clamp`: when the worst case does not fit, reserve what is
            left instead and let the pipeline lower the request's output limit to it; or
            `substitute`: when it does not fit, send the call to `substitute_model` instead,
            reserved and settled at that model's prices (refused if it does not fit either).
        thresholds: percents of the limit that raise an alert once per window, ascending.
        substitute_model: the model a `substitute` cap sends calls to (routed like a requested one).
        substitute_at_percent: a `substitute` cap with this substitutes before it is full: a call
            to another model that would take the cap's spent and reserved past this percent of the
            limit goes to `substitute_model` (see `policy.spend`; None: only when it does not fit).

    Raises:
        ValueError: a limit out of range, an empty id, bad thresholds, or a substitute cap
            without its model.
    """

    level: Level
    entity_id: str
    org_id: str
    window: WindowName
    limit_nusd: int
    mode: Mode = "enforce"
    on_insufficient: OnInsufficient = "refuse"
    thresholds: tuple[int, ...] = DEFAULT_THRESHOLDS
    substitute_model: str | None = None
    substitute_at_percent: int | None = None
    _hash: int = field(init=False, repr=False, compare=False)  # the fields' hash, computed once

    def __post_init__(self) -> None:
        if not self.entity_id or not self.org_id:
            raise ValueError("a cap needs an entity id and an organization id")
        check_substitute(self.on_insufficient, self.substitute_model, self.substitute_at_percent)
        if self.level == "org" and self.entity_id != self.org_id:
            raise ValueError("an org cap's entity id is the organization's id")
        if isinstance(self.limit_nusd, bool) or not 0 <= self.limit_nusd <= MAX_NUSD:
            raise ValueError(f"limit_nusd must be 0..={MAX_NUSD} (2**53 - 1 nano-USD, about 9.007M USD)")
        object.__setattr__(self, "thresholds", _check_thresholds(tuple(self.thresholds)))
        object.__setattr__(self, "_hash", hash(tuple(getattr(self, f) for f in _CAP_FIELDS)))

    def __hash__(self) -> int:  # the compared fields' hash (as the generated one), computed once: a
        return self._hash  # caller's tuple of caps is a dict key on every request (spend leases)

    @property
    def enforced(self) -> bool:
        return self.mode == "enforce"

    @property
    def clamps(self) -> bool:
        return self.mode == "enforce" and self.on_insufficient == "clamp"

    @property
    def bucket_name(self) -> tuple[str, str, str, str]:
        """What identifies the counter across limit changes: (org, level, entity, window)."""
        return (self.org_id, self.level, self.entity_id, self.window)


_CAP_FIELDS = tuple(f.name for f in dataclasses.fields(CapLine) if f.compare)


def _usd(value: object) -> object:
    # Accept TOML/YAML numbers as well as strings, but read floats through their shortest repr
    # ("0.1", not 0.1000000000000000055...), the way an operator wrote them.
    if isinstance(value, float):
        return repr(value)
    return value


UsdAmount = Annotated[Decimal, BeforeValidator(_usd)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CapSettings(_Section):
    """One `[[spend.caps]]` entry (caps from the control plane become the same `CapLine`s).

    `limit_usd` is a decimal string or number, converted once, exactly, to nano-USD. A `locked`
    cap is an operator floor: a control-plane policy on its entity or below may not set a higher
    cap in the same window, nor a monitor-only one when it enforces.
    """

    level: Level
    id: str = Field(min_length=1, max_length=256)
    org: str | None = Field(default=None, min_length=1, max_length=256)
    window: WindowName = "month"
    limit_usd: UsdAmount
    mode: Mode = "enforce"
    on_insufficient: OnInsufficient = "refuse"
    thresholds: tuple[int, ...] | None = None
    locked: bool = False  # a floor: the control plane's caps on this entity and below stay under it
    rollout_percent: float = Field(100.0, ge=0, le=100)  # enforce for this share of keys, monitor the rest
    substitute_model: str | None = Field(default=None, min_length=1, max_length=MODEL_NAME_MAX)
    substitute_at_percent: int | None = Field(default=None, ge=1, le=99)  # substitute from this percent on

    @field_validator("limit_usd")
    @classmethod
    def _limit_in_range(cls, value: Decimal) -> Decimal:
        usd_to_nusd(value)  # raises ValueError with the reason (range, decimals)
        return value

    @model_validator(mode="after")
    def _org_given(self) -> CapSettings:
        check_entity_org(self.level, self.id, self.org, "cap")
        check_locked_rollout(self.locked, self.rollout_percent, "cap")
        check_substitute(self.on_insufficient, self.substitute_model, self.substitute_at_percent)
        return self

    @property
    def limit_nusd(self) -> int:
        return usd_to_nusd(self.limit_usd)

    def line(self, default_thresholds: tuple[int, ...] = DEFAULT_THRESHOLDS) -> CapLine:
        """This cap as a `CapLine`, with the section's thresholds unless it has its own."""
        return CapLine(
            level=self.level,
            entity_id=self.id,
            org_id=self.org or self.id,
            window=self.window,
            limit_nusd=self.limit_nusd,
            mode=self.mode,
            on_insufficient=self.on_insufficient,
            thresholds=self.thresholds if self.thresholds is not None else default_thresholds,
            substitute_model=self.substitute_model,
            substitute_at_percent=self.substitute_at_percent,
        )


class PriceSettings(_Section):
    """A model's price in USD per million tokens (decimal strings or numbers), for overrides,
    custom models and the default price. Cache and reasoning prices default to the input and
    output prices, which never undercharges."""

    input_usd_per_mtok: UsdAmount = Field(ge=0)
    output_usd_per_mtok: UsdAmount = Field(ge=0)
    cache_read_usd_per_mtok: UsdAmount | None = Field(default=None, ge=0)
    cache_write_usd_per_mtok: UsdAmount | None = Field(default=None, ge=0)
    reasoning_usd_per_mtok: UsdAmount | None = Field(default=None, ge=0)
    request_usd: UsdAmount | None = Field(default=None, ge=0)
    max_output_tokens: int | None = Field(default=None, ge=1)


class LeaseSettings(_Section):
    """Budget leases (Redis backend): an instance takes a slice of each bucket and reserves against
    it locally, so most requests touch no network.

    Attributes:
        enabled: use leases (otherwise every reserve and settle is one Redis script call).
        requests_per_slice: a slice pays for this many requests of the size that asked for it...
        free_divisor: ...but never more than 1/free_divisor of what the cap has free, so slices
            shrink as the cap nears and the last requests are granted exactly what they need.
        ttl_s: a lease not renewed for this long (a crashed instance) counts as spent.
        idle_s: unused slices go back to Redis after this long without a reservation.
        sync_interval_s: how often local spend is reported to Redis and leases are renewed.
    """

    enabled: bool = False
    requests_per_slice: int = Field(default=64, ge=1, le=1_000_000)
    free_divisor: int = Field(default=8, ge=1, le=1_000_000)
    ttl_s: float = Field(default=30.0, gt=0)
    idle_s: float = Field(default=2.0, gt=0)
    sync_interval_s: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _renew_before_expiry(self) -> LeaseSettings:
        if self.sync_interval_s * 3 > self.ttl_s:
            raise ValueError("lease.sync_interval_s must be at most a third of lease.ttl_s")
        return self


class EstimateSettings(_Section):
    """How the input-token estimate pads the text count (see `spend.estimate`).

    Set both overheads to 0 to reserve exactly the mock provider's count.
    """

    per_message_tokens: int = Field(default=4, ge=0, le=1000)
    per_request_tokens: int = Field(default=3, ge=0, le=100_000)
    attachment_tokens: int = Field(default=1600, ge=0, le=1_000_000)


class SpendSettings(_Section):
    """The `[spend]` section.

    Attributes:
        enabled: enforce caps at all.
        backend: `local` (this process's Rust buckets: exact for one process only) or `redis`.
        redis_url: the Redis holding the buckets (`redis://`, `rediss://`, `unix://`, `redis+cluster://`).
        redis_timeout_s: connect and read timeout of every Redis call: Redis gone means
            StoreUnavailable after at most about this long.
        redis_max_connections: the connection pool's size (a call waits for a free one up to
            `redis_scripts.pool_wait_s(redis_timeout_s)`).
        redis_breaker_s: after a failed call, fail fast for this long before trying Redis again.
        on_redis_error: `fail_closed` (503) or `fail_open` (serve without enforcing); the pipeline
            applies it.
        key_prefix: prefix of every Redis key.
        reservation_ttl_s: a reservation not settled within this time (a crashed instance) counts
            as spent; keep it above `upstream.total_timeout_s`.
        retention_s: how long a window's keys stay in Redis after the window ends.
        lease: budget leases.
        thresholds: default alert thresholds, percents of a cap.
        caps: caps from the file (the control plane adds more).
        default_price: what an unknown model costs; None refuses unknown models.
        price_overrides: prices by `model` or `provider/model`, over the genai-prices snapshot.
        output_limits: max output tokens by `model` or `provider/model`, over the built-in table.
        default_output_limit_tokens: reserve this many output tokens for a request without a
            max_tokens for a model whose limit is unknown.
        min_clamp_output_tokens: a clamped request must still afford this many output tokens.
        estimate: the input-token estimate's padding.
        substitute_check_s: how long a cap's spent and reserved, read for a cap that substitutes
            from a percent on (`substitute_at_percent`), are reused before being read again from
            Redis (0: on every call; the local backend always reads its buckets).
    """

    enabled: bool = True
    backend: Literal["local", "redis"] = "local"
    redis_url: SecretUrl = SecretUrl("redis://127.0.0.1:6379/0")  # a password in it prints as *****
    redis_timeout_s: float = Field(default=0.5, gt=0, le=60)
    redis_max_connections: int = Field(default=64, ge=1)
    redis_breaker_s: float = Field(default=0.25, ge=0, le=60)
    on_redis_error: Literal["fail_closed", "fail_open"] = "fail_closed"
    key_prefix: str = Field(default="sg", min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")
    reservation_ttl_s: float = Field(default=1200.0, gt=0)
    retention_s: int = Field(default=2 * 86_400, ge=0)
    lease: LeaseSettings = LeaseSettings()
    thresholds: tuple[int, ...] = DEFAULT_THRESHOLDS
    caps: tuple[CapSettings, ...] = ()
    default_price: PriceSettings | None = None
    price_overrides: dict[str, PriceSettings] = {}
    output_limits: dict[str, Annotated[int, Field(ge=1)]] = {}
    default_output_limit_tokens: int = Field(default=32_768, ge=1)
    min_clamp_output_tokens: int = Field(default=256, ge=1)
    estimate: EstimateSettings = EstimateSettings()
    substitute_check_s: float = Field(default=1.0, ge=0, le=60)

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        return _check_thresholds(value)

    @field_validator("caps")
    @classmethod
    def _caps_unique(cls, caps: tuple[CapSettings, ...]) -> tuple[CapSettings, ...]:
        seen: set[tuple[str, str, str, str]] = set()
        for cap in caps:
            name = (cap.org or cap.id, cap.level, cap.id, cap.window)
            if name in seen:
                raise ValueError(f"two caps on {cap.level} {cap.id!r} for the {cap.window} window")
            seen.add(name)
        return caps

    def lines(self) -> tuple[CapLine, ...]:
        """The file's caps as `CapLine`s."""
        return tuple(cap.line(self.thresholds) for cap in self.caps)
