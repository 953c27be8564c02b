"""Model prices and costs in integer nano-USD.

Prices come from the `genai-prices` snapshot bundled in its wheel (never fetched at run time),
under operator overrides and custom models from `[spend.price_overrides]`. A model found nowhere
costs `[spend.default_price]`, or raises UnknownPrice when there is none: never free by accident.

Each price per million tokens is held as an integer of nano-USD per million tokens (USD/MTok
times 10**9; a price with more than 9 decimals is rounded up there, at most 10**-15 USD a token),
and a request's cost is `ceil(sum(tokens * rate) / 10**6)`: exact integer arithmetic, rounded
once per request, never per token. It equals genai-prices' Decimal total rounded up to the
nano-USD (the tests check this).

Usage follows `sluicegate.formats.base.Usage`: `input_tokens` includes cache reads and cache
writes, `reasoning_tokens` are part of `output_tokens`. Uncached input pays the input rate, cache
reads and writes their own rates (the input rate when the model has none), reasoning its own rate
(the output rate when none). Tiered prices (Claude above 200k input tokens) pick the tier from the
request's total input tokens, as genai-prices does. Cache writes are priced at the 5-minute write
rate: the normalised usage does not tell 1-hour writes apart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_CEILING, Decimal
from typing import Any, Literal

from sluicegate.formats.base import Usage
from sluicegate.spend.caps import PriceSettings, SpendSettings
from sluicegate.spend.money import NANO_PER_USD, ceil_div

__all__ = ["ModelPrice", "PriceBook", "Rates", "UnknownPrice"]

log = logging.getLogger("sluicegate.spend")

_MTOK = 1_000_000
# nano-USD per million tokens per USD/MTok, and the scale of the per-request price.
_SCALE = NANO_PER_USD
# For output with no output price known at all (a request-priced model): never "unlimited".
_FREE_OUTPUT_TOKENS = 1 << 31

# Max output tokens of well-known models (provider documentation, 2026), longest prefix wins.
# A model not listed falls back to its context window from genai-prices, then to
# `default_output_limit_tokens`. Over-estimating only reserves more; under-estimating lets a
# request without max_tokens overshoot its reservation, so entries err high.
_OUTPUT_LIMITS: dict[str, int] = {
    "gpt-3.5-turbo": 4_096,
    "gpt-4": 8_192,
    "gpt-4-turbo": 4_096,
    "gpt-4o": 16_384,
    "gpt-4o-mini": 16_384,
    "chatgpt-4o": 16_384,
    "gpt-4.1": 32_768,
    "gpt-4.5": 16_384,
    "gpt-5": 128_000,
    "o1": 100_000,
    "o1-mini": 65_536,
    "o3": 100_000,
    "o4-mini": 100_000,
    "claude-3-haiku": 4_096,
    "claude-3-opus": 4_096,
    "claude-3-sonnet": 4_096,
    "claude-3-5-haiku": 8_192,
    "claude-3-5-sonnet": 8_192,
    "claude-3-7-sonnet": 128_000,
    "claude-haiku-4": 64_000,
    "claude-sonnet-4": 64_000,
    "claude-opus-4": 32_000,
    "claude-opus-4-5": 64_000,
    "text-embedding": 0,
}


class UnknownPrice(LookupError):
    """No price for a model (and no default price configured).

    Attributes:
        model: the model asked for.
        provider: the provider asked for.
    """

    def __init__(self, model: str, provider: str | None, reason: str = "is not in the price list") -> None:
        where = f" at provider {provider!r}" if provider else ""
        super().__init__(f"model {model!r}{where} {reason}; set spend.price_overrides for it or spend.default_price")
        self.model = model
        self.provider = provider


def _rate(value: Decimal | str | int | None) -> int | None:
    """USD per million units as nano-USD per million units, rounded up."""
    if value is None:
        return None
    scaled = Decimal(value) * _SCALE
    return int(scaled.to_integral_value(ROUND_CEILING))


@dataclass(frozen=True, slots=True)
class Rates:
    """Nano-USD per million tokens for each kind of token; `request` is nano-USD per million
    requests (a per-request fee, times 10**6 so that one division rounds the whole request)."""

    input: int
    output: int
    cache_read: int
    cache_write: int
    reasoning: int
    request: int = 0
    # The dearest input and output rates, read on every reservation: computed once.
    max_input: int = field(init=False, compare=False, repr=False)
    max_output: int = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_input", max(self.input, self.cache_read, self.cache_write))
        object.__setattr__(self, "max_output", max(self.output, self.reasoning))


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """A model's prices, resolved once.

    Attributes:
        model: the model as asked.
        provider: the provider as asked.
        source: where the price came from.
        base: the rates below any tier.
        tiers: `(start, rates)` in ascending start: the rates when input tokens exceed `start`.
        context_window: the model's context window when known.
    """

    model: str
    provider: str | None
    source: Literal["genai-prices", "override", "default"]
    base: Rates
    tiers: tuple[tuple[int, Rates], ...] = ()
    context_window: int | None = None

    def rates_for(self, input_tokens: int) -> Rates:
        rates = self.base
        for start, tier in self.tiers:
            if input_tokens > start:
                rates = tier
        return rates


def _from_settings(
    model: str, provider: str | None, s: PriceSettings, source: Literal["override", "default"]
) -> ModelPrice:
    inp, out = _rate(s.input_usd_per_mtok) or 0, _rate(s.output_usd_per_mtok) or 0
    cache_read, cache_write = _rate(s.cache_read_usd_per_mtok), _rate(s.cache_write_usd_per_mtok)
    reasoning = _rate(s.reasoning_usd_per_mtok)
    request = _rate(s.request_usd)
    rates = Rates(
        input=inp,
        output=out,
        cache_read=inp if cache_read is None else cache_read,
        cache_write=inp if cache_write is None else cache_write,
        reasoning=out if reasoning is None else reasoning,
        request=0 if request is None else request * _MTOK,
    )
    return ModelPrice(model, provider, source, rates)


def _first(prices: Any, *names: str) -> Any:
    for name in names:
        value = prices.__dict__.get(name)
        if value is not None:
            return value
    return None


def _at(value: Any, input_tokens: int) -> Decimal | None:
    """A genai-prices price (plain or tiered) for a request of `input_tokens` input tokens."""
    if value is None:
        return None
    base = getattr(value, "base", None)
    if base is None:
        return Decimal(value)
    price: Decimal = base
    for tier in value.tiers:
        if input_tokens > tier.start:
            price = tier.price
    return price


def _genai_rates(prices: Any, input_tokens: int) -> Rates | None:
    inp = _rate(_at(_first(prices, "input_mtok", "input_text_mtok"), input_tokens))
    out = _rate(_at(_first(prices, "output_mtok", "output_text_mtok"), input_tokens))
    if inp is None and out is None:
        return None
    inp, out = inp or 0, out or 0
    cache_read = _rate(_at(_first(prices, "cache_read_mtok", "cache_text_read_mtok"), input_tokens))
    cache_write = _rate(_at(_first(prices, "cache_write_mtok", "cache_write_5m_mtok"), input_tokens))
    reasoning = _rate(_at(_first(prices, "output_reasoning_mtok"), input_tokens))
    per_k = _at(_first(prices, "requests_kcount"), input_tokens)
    return Rates(
        input=inp,
        output=out,
        cache_read=inp if cache_read is None else cache_read,
        cache_write=inp if cache_write is None else cache_write,
        reasoning=out if reasoning is None else reasoning,
        # USD per 1000 requests -> nano-USD per request * 10**6
        request=0 if per_k is None else int((per_k * _SCALE * 1000).to_integral_value(ROUND_CEILING)),
    )


def _genai_price(model: str, provider: str | None, when: datetime) -> ModelPrice | None:
    """The model's price from the bundled genai-prices snapshot, or None if it has none."""
    from genai_prices import data_snapshot

    snapshot = data_snapshot.get_snapshot()
    provider_id = None
    if provider and data_snapshot.find_provider_by_id(snapshot.providers, provider) is not None:
        provider_id = provider
    try:
        _, info = snapshot.find_provider_model(model, None, provider_id, None)
    except LookupError:
        return None
    prices = info.get_prices(when)
    base = _genai_rates(prices, 0)
    if base is None:
        if any(v is not None for v in prices.__dict__.values()):
            raise UnknownPrice(model, provider, "is priced in units sluicegate does not count (not tokens)")
        base = Rates(0, 0, 0, 0, 0)  # listed as free
    starts = sorted({tier.start for v in prices.__dict__.values() for tier in getattr(v, "tiers", None) or ()})
    tiers = tuple((start, _genai_rates(prices, start + 1) or base) for start in starts)
    return ModelPrice(model, provider, "genai-prices", base, tiers, info.context_window)


_today: list[Any] = [0, None]  # the UTC day number last seen, and its date


def _utc_today() -> date:
    """Today's UTC date, computed once a day (`datetime.now` costs a request microseconds)."""
    day = int(time.time()) // 86_400
    if day != _today[0]:
        _today[:] = [day, datetime.now(UTC).date()]
    return _today[1]  # type: ignore[no-any-return]


class PriceBook:
    """Prices by model and provider: overrides, then genai-prices, then the default price.

    Arguments:
        overrides: prices by `model` or `provider/model` (the latter wins).
        default: the price of a model found nowhere; None raises UnknownPrice instead.
        output_limits: max output tokens by `model` or `provider/model`, over the built-in table.
        default_output_limit: the output limit of a model whose limit is unknown.
    """

    def __init__(
        self,
        overrides: Mapping[str, PriceSettings] | None = None,
        default: PriceSettings | None = None,
        output_limits: Mapping[str, int] | None = None,
        default_output_limit: int | None = None,
    ) -> None:
        self._overrides = {k.lower(): v for k, v in (overrides or {}).items()}
        self._default = default
        self._output_limits = {k.lower(): v for k, v in (output_limits or {}).items()}
        self._default_output_limit = default_output_limit
        self._cache: dict[tuple[str, str | None], tuple[date, ModelPrice]] = {}

    @classmethod
    def from_settings(cls, settings: SpendSettings) -> PriceBook:
        return cls(
            settings.price_overrides,
            settings.default_price,
            settings.output_limits,
            settings.default_output_limit_tokens,
        )

    def _override(self, model: str, provider: str | None) -> PriceSettings | None:
        m = model.lower()
        if provider:
            found = self._overrides.get(f"{provider.lower()}/{m}")
            if found is not None:
                return found
        return self._overrides.get(m)

    def price(self, model: str, provider: str | None = None, *, now: datetime | None = None) -> ModelPrice:
        """The price of `model` served by `provider`.

        Arguments:
            model: the model name as sent upstream.
            provider: a genai-prices provider id (`openai`, `anthropic`, ...; sluicegate's provider
                kinds `openai` and `anthropic` are such ids); another name (`mock`, a custom
                provider) looks the model up across all providers.
            now: picks date-dependent prices (default: today, UTC).

        Raises:
            UnknownPrice: no override, no genai-prices entry, no default price.
        """
        cache_key = (model, provider)
        cached = self._cache.get(cache_key)
        if cached is not None and cached[0] == (now.date() if now is not None else _utc_today()):
            return cached[1]
        when = now or datetime.now(UTC)
        override = self._override(model, provider)
        if override is not None:
            found = _from_settings(model, provider, override, "override")
        else:
            genai = _genai_price(model, provider, when)
            if genai is not None:
                found = genai
            elif self._default is not None:
                log.warning("spend: no price for model %r; using the default price", model[:100])
                found = _from_settings(model, provider, self._default, "default")
            else:
                raise UnknownPrice(model, provider)
        self._cache[cache_key] = (when.date(), found)
        return found

    def cost_nusd(self, price: ModelPrice, usage: Usage) -> int:
        """What `usage` costs at `price`, rounded up once to the nano-USD."""
        rates = price.rates_for(usage.input_tokens)
        cache_read = min(usage.cache_read_tokens, usage.input_tokens)
        cache_write = min(usage.cache_write_tokens, usage.input_tokens - cache_read)
        uncached = usage.input_tokens - cache_read - cache_write
        reasoning = min(usage.reasoning_tokens, usage.output_tokens)
        total = (
            uncached * rates.input
            + cache_read * rates.cache_read
            + cache_write * rates.cache_write
            + (usage.output_tokens - reasoning) * rates.output
            + reasoning * rates.reasoning
            + rates.request
        )
        return ceil_div(total, _MTOK)

    def worst_case_nusd(self, price: ModelPrice, input_tokens: int, max_output_tokens: int) -> int:
        """The most a request can cost: every input token at the dearest input rate (plain, cache
        read or cache write) and every output token at the dearest output rate (plain or
        reasoning), at the tier of `input_tokens`."""
        rates = price.rates_for(input_tokens)
        total = input_tokens * rates.max_input + max_output_tokens * rates.max_output + rates.request
        return ceil_div(total, _MTOK)

    def max_output_tokens_for(self, price: ModelPrice, input_tokens: int, budget_nusd: int) -> int:
        """The most output tokens whose worst case, with `input_tokens`, fits `budget_nusd` (0 when
        even the input does not fit): the `max_tokens` to send when a request is clamped."""
        rates = price.rates_for(input_tokens)
        room = budget_nusd * _MTOK - input_tokens * rates.max_input - rates.request
        if room < 0:
            return 0
        if rates.max_output == 0:
            return _FREE_OUTPUT_TOKENS
        return room // rates.max_output

    def output_limit(self, model: str, provider: str | None = None) -> int | None:
        """The model's max output tokens, for a request that sets none: config, then the built-in
        table (longest prefix), then the context window, then `default_output_limit`."""
        m = model.lower()
        for name in ((f"{provider.lower()}/{m}",) if provider else ()) + (m,):
            if name in self._output_limits:
                return self._output_limits[name]
        override = self._override(model, provider)
        if override is not None and override.max_output_tokens is not None:
            return override.max_output_tokens
        best = max((p for p in _OUTPUT_LIMITS if m.startswith(p)), key=len, default=None)
        if best is not None:
            return _OUTPUT_LIMITS[best]
        try:
            window = self.price(model, provider).context_window
        except UnknownPrice:
            window = None
        return window if window is not None else self._default_output_limit
