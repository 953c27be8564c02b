"""Cap budgets at scrape time (`observe/budgets.py`): the store's figures per cap, remaining never
below zero, a cap whose read fails left out, a store slower than the bound leaves them all out."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sluicegate.observe.budgets import CapBudgets
from sluicegate.spend import CapLine
from sluicegate.spend.store import StoreUnavailable


def figures(budgets: CapBudgets) -> dict[tuple[str, str], float]:
    registry = CollectorRegistry()
    registry.register(budgets)
    out = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            out[(s.name, s.labels["id"])] = s.value
    return out


LINES = [
    CapLine("workspace", "bots", "acme", "day", 5_000),
    CapLine("org", "acme", "acme", "month", 100_000),
    CapLine("key", "ci", "acme", "total", 1_000),
]


async def test_each_cap_as_the_store_has_it_and_a_failed_read_left_out() -> None:
    async def status(line: CapLine) -> tuple[int, int]:
        if line.entity_id == "acme":
            raise StoreUnavailable("down")
        return {"bots": (4_000, 300), "ci": (900, 200)}[line.entity_id]

    budgets = CapBudgets(LINES, status)
    assert figures(budgets) == {}  # nothing read yet: the families, empty
    await budgets.refresh()
    got = figures(budgets)
    assert got[("sluicegate_cap_limit_nusd", "bots")] == 5_000
    assert got[("sluicegate_cap_spent_nusd", "bots")] == 4_000
    assert got[("sluicegate_cap_reserved_nusd", "bots")] == 300
    assert got[("sluicegate_cap_remaining_nusd", "bots")] == 700
    assert got[("sluicegate_cap_remaining_nusd", "ci")] == 0  # over-reserved: none left, never negative
    assert ("sluicegate_cap_limit_nusd", "acme") not in got


async def test_a_store_slower_than_the_bound_gives_no_figures() -> None:
    async def slow(line: CapLine) -> tuple[int, int]:
        await asyncio.sleep(5)
        return (0, 0)

    budgets = CapBudgets(LINES, slow, timeout_s=0.05)
    await budgets.refresh()
    assert figures(budgets) == {}
