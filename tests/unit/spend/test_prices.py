"""Prices from the genai-prices snapshot, overrides and defaults; costs to the nano-USD."""

from decimal import ROUND_CEILING, Decimal

import genai_prices
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluicegate.formats import ANTHROPIC_MESSAGES, OPENAI_CHAT, OPENAI_EMBEDDINGS, OPENAI_RESPONSES, Usage
from sluicegate.spend.caps import PriceSettings, SpendSettings
from sluicegate.spend.prices import PriceBook, UnknownPrice

BOOK = PriceBook()


def genai_nusd(model: str, provider: str, u: Usage) -> int:
    """genai-prices' own Decimal total, rounded up to the nano-USD."""
    usage = genai_prices.Usage(
        input_tokens=u.input_tokens,
        output_tokens=u.output_tokens,
        cache_read_tokens=u.cache_read_tokens,
        cache_write_tokens=u.cache_write_tokens,
        output_reasoning_tokens=u.reasoning_tokens,
    )
    total = genai_prices.calc_price(usage, model, provider_id=provider).total_price
    return int((total * 10**9).to_integral_value(ROUND_CEILING))


# (model, provider, usage, expected nano-USD worked out by hand from the published prices)
CASES = [
    # gpt-4o: $2.50 in, $1.25 cached in, $10 out per MTok: 600*$2.5 + 400*$1.25 + 500*$10 per MTok = $0.007
    ("gpt-4o", "openai", Usage(1000, 500, 400, 0, 0), 7_000_000),
    # gpt-4o-mini: $0.15 in, $0.60 out: 150 and 600 n$ a token: 7*150 + 3*600 = 2850 n$
    ("gpt-4o-mini", "openai", Usage(7, 3), 2_850),
    # one token of gpt-4o-mini input: 150 n$ exactly
    ("gpt-4o-mini", "openai", Usage(1, 0), 150),
    # claude sonnet 4.5: $3 in, $0.30 cache read, $3.75 cache write, $15 out (<= 200k input)
    # 400*$3 + 600*$0.30 + 100*$3.75 + 333*$15 per MTok = $0.00675
    ("claude-sonnet-4-5", "anthropic", Usage(1100, 333, 600, 100, 0), 6_750_000),
    # above 200k input tokens every token pays the tier: $6 in, $22.50 out
    ("claude-sonnet-4-5", "anthropic", Usage(250_000, 1000), 1_522_500_000),
    ("claude-3-5-sonnet-latest", "anthropic", Usage(1000, 1000), 18_000_000),
    # o3 (after 2025-06-10): $2 in, $8 out; reasoning tokens are output tokens
    ("o3", "openai", Usage(123, 4567, 0, 0, 4000), 36_782_000),
    ("text-embedding-3-small", "openai", Usage(1000), 20_000),
]


@pytest.mark.parametrize(("model", "provider", "usage", "expected"), CASES)
def test_cost_matches_genai_prices_to_the_nano_usd(model: str, provider: str, usage: Usage, expected: int) -> None:
    price = BOOK.price(model, provider)
    assert price.source == "genai-prices"
    got = BOOK.cost_nusd(price, usage)
    assert got == genai_nusd(model, provider, usage)
    assert got == expected


@given(
    st.sampled_from(["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "claude-3-5-haiku-latest", "o3", "gpt-5"]),
    st.integers(0, 400_000),
    st.integers(0, 100_000),
    st.floats(0, 1),
    st.floats(0, 1),
    st.floats(0, 1),
)
def test_cost_equals_genai_prices_for_any_usage(
    model: str, inp: int, out: int, read_share: float, write_share: float, reasoning_share: float
) -> None:
    provider = "anthropic" if model.startswith("claude") else "openai"
    read = int(inp * read_share)
    write = int((inp - read) * write_share) if provider == "anthropic" else 0
    usage = Usage(inp, out, read, write, int(out * reasoning_share))
    assert BOOK.cost_nusd(BOOK.price(model, provider), usage) == genai_nusd(model, provider, usage)


def test_usage_blocks_of_each_format_are_priced() -> None:
    gpt = BOOK.price("gpt-4o", "openai")
    chat = OPENAI_CHAT.usage(
        {"usage": {"prompt_tokens": 1000, "completion_tokens": 500, "prompt_tokens_details": {"cached_tokens": 400}}}
    )
    responses = OPENAI_RESPONSES.usage(
        {"usage": {"input_tokens": 1000, "output_tokens": 500, "input_tokens_details": {"cached_tokens": 400}}}
    )
    assert chat is not None and responses is not None
    assert BOOK.cost_nusd(gpt, chat) == BOOK.cost_nusd(gpt, responses) == 7_000_000
    emb = OPENAI_EMBEDDINGS.usage({"usage": {"prompt_tokens": 1000, "total_tokens": 1000}})
    assert emb is not None
    assert BOOK.cost_nusd(BOOK.price("text-embedding-3-small", "openai"), emb) == 20_000
    # Anthropic's input_tokens excludes cache reads and writes; the format adds them back.
    claude = ANTHROPIC_MESSAGES.usage(
        {
            "usage": {
                "input_tokens": 400,
                "cache_read_input_tokens": 600,
                "cache_creation_input_tokens": 100,
                "output_tokens": 333,
            }
        }
    )
    assert claude is not None and claude.input_tokens == 1100
    assert BOOK.cost_nusd(BOOK.price("claude-sonnet-4-5", "anthropic"), claude) == 6_750_000


def test_rounding_is_once_per_request_never_per_token() -> None:
    # $0.0375/MTok is 37.5 n$ a token: 3 tokens cost 112.5 -> 113 n$, not 3 * 38 = 114.
    book = PriceBook({"cheap": PriceSettings(input_usd_per_mtok=Decimal("0.0375"), output_usd_per_mtok=Decimal(0))})
    price = book.price("cheap")
    assert [book.cost_nusd(price, Usage(n)) for n in (1, 2, 3, 4)] == [38, 75, 113, 150]


def test_unknown_model_is_refused_unless_a_default_price_is_set() -> None:
    with pytest.raises(UnknownPrice, match="mock-gpt") as info:
        BOOK.price("mock-gpt", "mock")
    assert isinstance(info.value, LookupError) and info.value.model == "mock-gpt"
    assert "default_price" in str(info.value)
    book = PriceBook.from_settings(
        SpendSettings.model_validate({"default_price": {"input_usd_per_mtok": "10", "output_usd_per_mtok": "30"}})
    )
    price = book.price("mock-gpt", "mock")
    assert price.source == "default"
    assert book.cost_nusd(price, Usage(100, 10)) == 1_300_000  # 100*$10 + 10*$30 per MTok
    assert book.cost_nusd(price, Usage(0, 0)) == 0


def test_overrides_win_and_provider_specific_ones_first() -> None:
    book = PriceBook(
        {
            "gpt-4o": PriceSettings(input_usd_per_mtok=Decimal(1), output_usd_per_mtok=Decimal(2)),
            "azure/GPT-4o": PriceSettings(input_usd_per_mtok=Decimal(3), output_usd_per_mtok=Decimal(4)),
        }
    )
    assert book.cost_nusd(book.price("gpt-4o", "openai"), Usage(1_000_000, 0)) == 1_000_000_000
    assert book.cost_nusd(book.price("gpt-4o", "azure"), Usage(1_000_000, 0)) == 3_000_000_000
    assert book.price("gpt-4o", "openai").source == "override"


def test_override_without_cache_or_reasoning_prices_never_undercharges() -> None:
    book = PriceBook({"m": PriceSettings(input_usd_per_mtok=Decimal(2), output_usd_per_mtok=Decimal(8))})
    price = book.price("m")
    plain = book.cost_nusd(price, Usage(1000, 1000))
    assert book.cost_nusd(price, Usage(1000, 1000, 500, 500, 900)) == plain == 10_000_000


def test_worst_case_uses_the_dearest_rates() -> None:
    claude = BOOK.price("claude-sonnet-4-5", "anthropic")
    # every input token could be a cache write ($3.75), every output token $15
    assert BOOK.worst_case_nusd(claude, 1000, 1000) == 3_750_000 + 15_000_000
    assert BOOK.worst_case_nusd(claude, 1000, 1000) >= BOOK.cost_nusd(claude, Usage(1000, 1000, 0, 1000))


@given(st.integers(0, 300_000), st.integers(0, 10**10), st.sampled_from(["gpt-4o", "claude-sonnet-4-5", "o3"]))
def test_max_output_tokens_for_is_the_largest_that_fits(inp: int, budget: int, model: str) -> None:
    provider = "anthropic" if model.startswith("claude") else "openai"
    price = BOOK.price(model, provider)
    k = BOOK.max_output_tokens_for(price, inp, budget)
    if BOOK.worst_case_nusd(price, inp, 0) > budget:
        assert k == 0
    else:
        assert BOOK.worst_case_nusd(price, inp, k) <= budget < BOOK.worst_case_nusd(price, inp, k + 1)


def test_output_limits() -> None:
    book = PriceBook(output_limits={"openai/gpt-4o": 1000, "my-model": 77}, default_output_limit=4096)
    assert book.output_limit("gpt-4o", "openai") == 1000
    assert book.output_limit("gpt-4o-2024-08-06", "openai") == 16_384
    assert book.output_limit("claude-sonnet-4-5", "anthropic") == 64_000
    assert book.output_limit("my-model") == 77
    assert book.output_limit("gpt-3.5-turbo-0125") == 4_096
    assert book.output_limit("mock-gpt", "mock") == 4096  # unknown everywhere: the default
    # not in the table but known to genai-prices: its context window bounds any output
    assert book.output_limit("deepseek-chat", "deepseek") == BOOK.price("deepseek-chat", "deepseek").context_window
