"""The spend step at its edges: a request whose worst case is more than any cap can hold (valid
numbers at a high price) is refused or clamped by the caps, never a 500 from an amount out of range,
and whatever is let through fits the money reserved for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from sluicegate.config import ProviderSettings
from sluicegate.errors import SpendLimitExceeded
from sluicegate.formats import FORMATS_BY_PATH
from sluicegate.policy.spend import SpendPolicy
from sluicegate.proxy.providers import Provider
from sluicegate.spend import MAX_NUSD, SpendSettings, estimate, format_usd

CHAT = FORMATS_BY_PATH["/v1/chat/completions"]
PROVIDER = Provider.from_settings("vllm", ProviderSettings(kind="openai_compatible", base_url="http://h/v1"), {})
# $100 per million output tokens: 128 choices of 2**31 - 1 tokens cost about 27.5 million USD.
PRICE = {"input_usd_per_mtok": "1", "output_usd_per_mtok": "100"}
MAX_USD = format_usd(MAX_NUSD).lstrip("$")


def huge() -> dict[str, Any]:
    """Each number in its valid range, the product beyond MAX_NUSD."""
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2**31 - 1, "n": 128}


@pytest.fixture
async def make() -> AsyncIterator[Any]:
    policies: list[SpendPolicy] = []

    async def build(limit_usd: str, **cap: str) -> SpendPolicy:
        caps = [{"level": "org", "id": "acme", "limit_usd": limit_usd, **cap}]
        policy = SpendPolicy(SpendSettings(price_overrides={"m": PRICE}, caps=caps))  # type: ignore[arg-type]
        await policy.start()
        policies.append(policy)
        return policy

    yield build
    for policy in policies:
        await policy.stop()


def fits(policy: SpendPolicy, body: dict[str, Any], reserved_nusd: int) -> bool:
    """Whether the body's worst case, as sent upstream, is covered by what was reserved."""
    est = estimate(body, CHAT.name, policy.settings.estimate)
    assert est.output_tokens is not None
    price = policy.prices.price("m", PROVIDER.name)
    return policy.prices.worst_case_nusd(price, est.input_tokens, est.output_tokens) <= reserved_nusd


async def test_an_enforcing_cap_refuses_it(make: Any) -> None:
    policy = await make("5")
    with pytest.raises(SpendLimitExceeded) as err:
        await policy.reserve(CHAT, huge(), PROVIDER, "m", policy.settings.lines())
    assert err.value.extra["cap"]["requested_nusd"] == MAX_NUSD


async def test_a_clamp_cap_lowers_it_to_what_is_left(make: Any) -> None:
    policy = await make("5", on_insufficient="clamp")
    body = huge()
    guard = await policy.reserve(CHAT, body, PROVIDER, "m", policy.settings.lines())
    changed = any(e.action == "clamp" for e in guard.events)  # the body's output limit was lowered
    assert guard.reservation is not None
    assert changed and body["max_tokens"] < 2**31 - 1
    assert fits(policy, body, guard.reservation.amount_nusd)


@pytest.mark.parametrize("cap", [{}, {"mode": "monitor"}], ids=["a cap at the largest amount", "a monitor cap"])
async def test_when_granted_it_is_clamped_to_the_reservation(make: Any, cap: dict[str, str]) -> None:
    policy = await make(MAX_USD, **cap)
    body = huge()
    guard = await policy.reserve(CHAT, body, PROVIDER, "m", policy.settings.lines())
    changed = any(e.action == "clamp" for e in guard.events)  # the body's output limit was lowered
    assert guard.reservation is not None and guard.reservation.amount_nusd == MAX_NUSD
    assert changed and fits(policy, body, MAX_NUSD)
