"""Model access rules as they are written: the config file's `[models]` section and the `models`
field of a policy (org, workspace, user or key) share one shape, `ModelRulesIn`; and the glob
patterns their lists hold.

```toml
[models]
allow = ["gpt-4o*", "claude-*"]      # absent: no allow list at this level
deny = ["*-preview"]
aliases = { fast = "gpt-4o-mini" }  # operator, org and workspace levels
ceilings = [{ max_output_tokens = 4096, action = "clamp" }]
params = [{ field = "n", op = "lte", value = 1 }, { field = "service_tier", op = "ne", value = "priority" }]
mode = "enforce"                      # or "monitor"; rollout_percent in between
```

Patterns are model names with `*` wildcards (any run of characters, `/` included), matched
case-insensitively against the whole name. Nothing else is special: `?` and brackets are not
allowed, which keeps both questions the control plane asks of two patterns exact (`glob_within`:
is every name one matches matched by the other; `globs_meet`: does some name match both).

This module imports nothing of the gateway but the rollout modes, so `config` can use it.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sluicegate.policy.rollout import Mode, RolloutBy

__all__ = [
    "CeilingIn",
    "ModelRulesIn",
    "ParamOp",
    "ParamRuleIn",
    "compile_globs",
    "glob_within",
    "globs_meet",
]

MAX_OUTPUT_TOKENS = 2**31 - 1
_CHARS = r"A-Za-z0-9._:/@+\-"
PATTERN_RE = rf"^[{_CHARS}*]+$"
NAME_RE = rf"^[{_CHARS}]+$"
Pattern = Annotated[str, Field(min_length=1, max_length=200, pattern=PATTERN_RE)]
ModelName = Annotated[str, Field(min_length=1, max_length=200, pattern=NAME_RE)]
ParamOp = Literal["eq", "ne", "lte", "gte", "in", "not_in", "absent"]
Scalar = str | int | float | bool | None
CeilingAction = Literal["clamp", "refuse"]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParamRuleIn(_Shape):
    """A rule on one top-level request field, saying what is allowed: `n lte 1`, `service_tier ne
    "priority"`, `temperature lte 1`, `logprobs absent`. A field the request leaves out (or sets to
    null) passes every operator but `absent` trivially; `absent` requires it left out. `lte` and
    `gte` take a number and refuse any value that is not one; `in` and `not_in` a list of scalars;
    `eq` and `ne` one scalar (compared with its JSON type: `1` is not `true`). The field is named
    as any format names it (`stop` or `stop_sequences`, `max_tokens` or `max_output_tokens`): each
    format checks its own name for it (`WireFormat.request_fields`)."""

    field: str = Field(pattern=r"^[a-z_][a-z0-9_]{0,63}$")
    op: ParamOp
    value: Scalar | list[Scalar] = None

    @model_validator(mode="after")
    def _value_fits_op(self) -> ParamRuleIn:
        v = self.value
        if self.op in ("lte", "gte") and (type(v) not in (int, float)):
            raise ValueError(f"{self.op} needs a number as its value")
        if self.op in ("in", "not_in") and not isinstance(v, list):
            raise ValueError(f"{self.op} needs a list as its value")
        if self.op in ("eq", "ne") and isinstance(v, list):
            raise ValueError(f"{self.op} needs one value, not a list (use in or not_in)")
        if self.op == "absent" and v is not None:
            raise ValueError("absent takes no value")
        if isinstance(v, list) and len(v) > 64:
            raise ValueError("a list of at most 64 values")
        return self

    def describe(self) -> str:
        if self.op == "absent":
            return f"{self.field} absent"
        return f"{self.field} {self.op} {_show(self.value)}"


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, bool) or value is None:
        return "true" if value is True else "false" if value is False else "null"
    return repr(value) if isinstance(value, str) else str(value)


class CeilingIn(_Shape):
    """A ceiling on the output a request may ask for (`max_tokens`, `max_completion_tokens`,
    `max_output_tokens`: each format's own field), for the models its patterns match. `clamp`
    lowers the request's limit to the ceiling (an event); `refuse` answers 400
    `max_tokens_above_ceiling`. A request that sets no limit gets the ceiling written in either way.
    A `locked` ceiling cannot be raised below it (a lower level's ceiling for the same models may
    only be lower)."""

    max_output_tokens: int = Field(ge=1, le=MAX_OUTPUT_TOKENS)
    action: CeilingAction = "clamp"
    models: list[Pattern] = Field(default_factory=lambda: ["*"], min_length=1, max_length=64)
    locked: bool = False


class ModelRulesIn(_Shape):
    """One level's model access rules (the config file's `[models]`, or a policy's `models`).

    Attributes:
        allow: the models this level allows (patterns); None: no allow list here. A model must pass
            every allow list of the chain above and at the caller (they narrow, never widen).
        allow_locked: levels below may not write allow entries (or alias targets) outside this list.
        deny: models refused (patterns); a deny anywhere wins over every allow.
        deny_locked: levels below may not write allow entries (or alias targets) this list denies.
        aliases: name -> concrete model (operator, org and workspace levels); a lower level's alias
            replaces one of the same name above. Applied before routing; allow and deny lists see
            both the name asked for and the model it stands for.
        ceilings: output ceilings; a level that sets any replaces the unlocked ones above it.
        params: rules on request fields; they add up down the chain (each one applies).
        mode, rollout_percent, rollout_by: `enforce` bites (for `rollout_percent` of the keys, or of
            the requests), `monitor` only records `would_refuse`: see `policy.rollout`.
    """

    allow: list[Pattern] | None = Field(None, max_length=256)
    allow_locked: bool = False
    deny: list[Pattern] = Field(default_factory=list, max_length=256)
    deny_locked: bool = False
    aliases: dict[str, ModelName] = Field(default_factory=dict, max_length=64)
    ceilings: list[CeilingIn] = Field(default_factory=list, max_length=16)
    params: list[ParamRuleIn] = Field(default_factory=list, max_length=32)
    mode: Mode = "enforce"
    rollout_percent: float = Field(100.0, ge=0, le=100)
    rollout_by: RolloutBy = "key"

    @field_validator("aliases")
    @classmethod
    def _alias_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, target in value.items():
            if not re.fullmatch(NAME_RE, name) or len(name) > 200:
                raise ValueError(f"alias {name!r}: a model name (letters, digits, . _ : / @ + -)")
            if target in value:
                raise ValueError(f"alias {name!r} points to {target!r}, another alias: point it to a concrete model")
        return value

    @model_validator(mode="after")
    def _locks_need_lists(self) -> ModelRulesIn:
        if self.allow_locked and self.allow is None:
            raise ValueError("allow_locked needs an allow list")
        if self.deny_locked and not self.deny:
            raise ValueError("deny_locked needs a deny list")
        return self

    @property
    def empty(self) -> bool:
        """Nothing to check and nothing to rename."""
        return self.allow is None and not self.deny and not self.aliases and not self.ceilings and not self.params


# ── patterns ──────────────────────────────────────────────────────────────────────────────────


@lru_cache(maxsize=4096)
def compile_globs(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """One regex matching any of `patterns` (whole name, case-insensitive); matches nothing when empty."""
    if not patterns:
        return re.compile(r"(?!)")
    parts = ("(?:" + ".*".join(re.escape(piece) for piece in p.split("*")) + ")" for p in patterns)
    return re.compile("|".join(parts), re.IGNORECASE | re.DOTALL)


def matching(patterns: tuple[str, ...], name: str) -> str | None:
    """The first pattern that matches `name` (None: none does)."""
    if not compile_globs(patterns).fullmatch(name):
        return None
    return next(p for p in patterns if compile_globs((p,)).fullmatch(name))


def glob_within(inner: str, outer: str) -> bool:
    """Whether every name `inner` matches is matched by `outer`. Exact for `*`-only patterns: read
    as a plain string, `inner` matches `outer` exactly when its `*`s each fall inside one of
    `outer`'s (which then absorbs anything put in their place)."""
    return compile_globs((outer,)).fullmatch(inner) is not None


def globs_meet(a: str, b: str) -> bool:
    """Whether some name matches both patterns (case-insensitive)."""
    a, b = a.lower(), b.lower()

    @cache
    def meet(i: int, j: int) -> bool:
        if i == len(a) and j == len(b):
            return True
        if i < len(a) and a[i] == "*":
            return meet(i + 1, j) or (j < len(b) and meet(i, j + 1))
        if j < len(b) and b[j] == "*":
            return meet(i, j + 1) or (i < len(a) and meet(i + 1, j))
        return i < len(a) and j < len(b) and a[i] == b[j] and meet(i + 1, j + 1)

    return meet(0, 0)
