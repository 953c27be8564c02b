"""Hard spend caps: prices, estimates, and stores that reserve, settle and release exactly.

The pipeline's path through it:

```python
prices = PriceBook.from_settings(settings.spend)
store = create_store(settings.spend)                     # in lifespan; `await store.close()` at shutdown

price = prices.price(model, provider_kind)               # UnknownPrice: refuse (or default_price)
est = estimate(body, fmt.name, settings.spend.estimate)
out = est.output_tokens if est.output_tokens is not None else prices.output_limit(model, provider_kind)
worst = prices.worst_case_nusd(price, est.input_tokens, out)
min_clamp = prices.worst_case_nusd(price, est.input_tokens, settings.spend.min_clamp_output_tokens)
result = await store.reserve(lines, worst, min_clamp_nusd=min_clamp)   # StoreUnavailable: 503/fail_open
if result.refusal: 402 spend_limit_exceeded (level, id, limit, spent, reserved, resets_at)
if result.clamp_to_nusd is not None:
    clamp_output(body, fmt.name, prices.max_output_tokens_for(price, est.input_tokens, result.clamp_to_nusd))
... forward ...
alerts = await store.settle(result.reservation, prices.cost_nusd(price, usage))   # or release() on failure
```

Modules: `money` (nano-USD), `caps` (CapLine, SpendSettings), `prices`, `estimate`, `windows`,
`store` (the interface and result types), `local`, `redis_store`, `leases`.
"""

from sluicegate.spend.caps import CapLine, CapSettings, EstimateSettings, LeaseSettings, PriceSettings, SpendSettings
from sluicegate.spend.estimate import Estimate, clamp_output, estimate
from sluicegate.spend.money import MAX_NUSD, NanoUSD, format_usd, usd_to_nusd
from sluicegate.spend.prices import ModelPrice, PriceBook, UnknownPrice
from sluicegate.spend.store import (
    Refusal,
    Reservation,
    ReserveResult,
    SpendStore,
    StoreUnavailable,
    ThresholdAlert,
    create_store,
)
from sluicegate.spend.windows import Window, window_of

__all__ = [
    "MAX_NUSD",
    "CapLine",
    "CapSettings",
    "Estimate",
    "EstimateSettings",
    "LeaseSettings",
    "ModelPrice",
    "NanoUSD",
    "PriceBook",
    "PriceSettings",
    "Refusal",
    "Reservation",
    "ReserveResult",
    "SpendSettings",
    "SpendStore",
    "StoreUnavailable",
    "ThresholdAlert",
    "UnknownPrice",
    "Window",
    "clamp_output",
    "create_store",
    "estimate",
    "format_usd",
    "usd_to_nusd",
    "window_of",
]
