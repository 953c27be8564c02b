"""Rate limits: requests per window, tokens per window and requests in flight, counted exactly in
one process (Rust sliding windows) and across instances (Redis Lua scripts, optionally leases).

The pipeline's path through it (`sluicegate.policy.limits` is the step):

```python
store = create_limit_store(settings.limits)          # in lifespan; `await store.close()` at shutdown

lines = [...]                                        # LimitLines that apply to the identity
costs = [1 if line.kind != "tokens" else input_estimate for line in lines]
enforce = [bites(mode, rollout_percent, rule_id, key_id, by) for each line's rule]
result = await store.acquire(lines, costs, enforce)  # StoreUnavailable: fail_closed / fail_open
if result.refused: 429 (retry-after from result.refused.retry_after_ms; never when .never)
... forward, headers from result.states ...
await store.finish(result.grant, actual_tokens)      # on every ending (None: keep the estimate)
```

The algorithm (the same in Rust, `rust/src/limit/window.rs`, and in Lua, `lua/acquire.lua`): time is
cut into slots (1 s by default, `limits.slot_ms`); a window of `W` slots admits a cost `c` at slot
`s` only if what slots `s - W ..= s` count plus `c` fits the limit. No interval of `window_s`
seconds ever admits more than the limit: take such an interval and its last admission, at slot
`s*`; every earlier admission in it happened less than `W` slots of time before, so its slot is at
least `s* - W` and was counted when the last one was checked. The price: an admission stays
counted up to one slot longer than the window (conservative), never a 2x burst at a window edge.

Modules: `lines` (LimitLine, LineState, LimitResult, Grant), `settings` (LimitSettings and the
file's rules), `store` (the interface), `local`, `redis_store`, `leases`.
"""

from sluicegate.limits.lines import KINDS, Grant, Kind, LimitLine, LimitResult, LineState, tool_scope
from sluicegate.limits.settings import LimitLeaseSettings, LimitRuleSettings, LimitSettings
from sluicegate.limits.store import LimitStore, StoreUnavailable, create_limit_store

__all__ = [
    "KINDS",
    "Grant",
    "Kind",
    "LimitLeaseSettings",
    "LimitLine",
    "LimitResult",
    "LimitRuleSettings",
    "LimitSettings",
    "LimitStore",
    "LineState",
    "StoreUnavailable",
    "create_limit_store",
    "tool_scope",
]
