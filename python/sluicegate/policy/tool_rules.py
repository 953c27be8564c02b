"""Tool access rules as they are written: the config file's `[tools]` section and the `tools` field
of a policy (org, workspace, user or key) share one shape, `ToolRulesIn`.

```toml
[tools]
allow = ["docs/*", "search/*"]    # absent: no allow list at this level
deny = ["*/delete_*"]
deny_locked = true                # levels below may not allow what this denies
mode = "enforce"                  # or "monitor"; rollout_percent in between
model_calls = "remove"            # these lists on the tools of model traffic too: "remove", "block" or "off"
```

A pattern matches `<server>/<tool>`: the MCP server's name on the gateway (`/mcp/{server}`) and the
tool's name, with `*` wildcards (any run of characters, `/` included), case-insensitively, against
the whole name: the glob family of model rules (`policy.model_rules`), so the control plane's lock
checks (`glob_within`, `globs_meet`) are exact here too.

With `model_calls` other than `off`, a level's lists also apply to the tools of model traffic
(`policy.tool_calls`): a tool there is named as the request defines it and the model calls it (a
function's name, no server), so a pattern without a `/` (`delete_*`) or one that crosses it
(`*delete*`) matches it; a denied tool's definition is taken out of the request, and a call of it
in the model's answer is removed (`remove`) or ends the answer with an error (`block`).

This module imports nothing of the gateway but the rollout modes and the model rules' patterns, so
`config` can use it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from sluicegate.policy.model_rules import Pattern, _Shape
from sluicegate.policy.rollout import Mode, RolloutBy, check_locked_rollout

__all__ = ["ModelCalls", "ToolRulesIn"]

ModelCalls = Literal["off", "remove", "block"]


class ToolRulesIn(_Shape):
    """One level's tool access rules (the config file's `[tools]`, or a policy's `tools`).

    Attributes:
        allow: the tools this level allows (`server/tool` patterns); None: no allow list here. A tool
            must pass every allow list of the chain (they narrow, never widen).
        allow_locked: levels below may not write allow entries outside this list.
        deny: tools refused; a deny anywhere wins over every allow.
        deny_locked: levels below may not write allow entries that this list denies.
        mode, rollout_percent, rollout_by: `enforce` bites (for `rollout_percent` of the keys, or of
            the requests), `monitor` only records `would_refuse`: see `policy.rollout`.
        model_calls: whether these lists apply to the tools of model traffic as well, and what a
            denied call in a model's answer gets: `off` (MCP only), `remove` or `block`.
    """

    allow: list[Pattern] | None = Field(None, max_length=256)
    allow_locked: bool = False
    deny: list[Pattern] = Field(default_factory=list, max_length=256)
    deny_locked: bool = False
    mode: Mode = "enforce"
    rollout_percent: float = Field(100.0, ge=0, le=100)
    rollout_by: RolloutBy = "key"
    model_calls: ModelCalls = "off"

    @model_validator(mode="after")
    def _locks(self) -> ToolRulesIn:
        if self.allow_locked and self.allow is None:
            raise ValueError("allow_locked needs an allow list")
        if self.deny_locked and not self.deny:
            raise ValueError("deny_locked needs a deny list")
        check_locked_rollout(self.allow_locked or self.deny_locked, self.rollout_percent, "tool list")
        return self

    @property
    def empty(self) -> bool:
        """Nothing to check."""
        return self.allow is None and not self.deny
