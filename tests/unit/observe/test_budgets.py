"""Cap budgets at scrape time (`observe/budgets.py`): the store's figures per cap, remaining never
below zero, a cap whose read fails left out, a store slower than the bound leaves them all out; the
control plane's caps after the file's, up to the bound, the rest counted."""

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
            out[(s.name, s.labels.get("id", ""))] = s.value
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
    assert figures(budgets) == {("sluicegate_cap_series_omitted", ""): 0}  # nothing read yet: the families, empty
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
    assert figures(budgets) == {("sluicegate_cap_series_omitted", ""): 0}


async def test_the_control_planes_caps_follow_the_files_up_to_the_bound(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import sluicegate.observe.budgets as budgets_module

    async def status(line: CapLine) -> tuple[int, int]:
        return (line.limit_nusd // 2, 0)

    policy = [
        CapLine("workspace", "bots", "acme", "day", 9_999),  # the file's cap on the same counter: the file's wins
        CapLine("workspace", "research", "acme", "day", 2_000),
        CapLine("key", "k1", "acme", "total", 4_000),
    ]
    current = list(policy)
    budgets = CapBudgets(LINES, status, policy_lines=lambda: current)
    await budgets.refresh()
    got = figures(budgets)
    assert got[("sluicegate_cap_limit_nusd", "bots")] == 5_000
    assert got[("sluicegate_cap_spent_nusd", "research")] == 1_000 and ("sluicegate_cap_limit_nusd", "k1") in got
    assert budgets.omitted == 0
    current.pop()  # a policy changed: read again at the next scrape
    monkeypatch.setattr(budgets_module, "MAX_CAPS", 3)  # the file's three, then no room
    await budgets.refresh()
    got = figures(budgets)
    assert ("sluicegate_cap_limit_nusd", "research") not in got and budgets.omitted == 1
    assert got[("sluicegate_cap_series_omitted", "")] == 1
