"""The rollout percentage: stable per key, the share asked for, nested as it grows, distinct per rule."""

from __future__ import annotations

from sluicegate.policy.rollout import bites, bucket_of

KEYS = [f"key-{i}" for i in range(4000)]


def test_monitor_never_bites_and_full_enforce_always_does() -> None:
    assert not any(bites("monitor", 100, "r", k) for k in KEYS[:50])
    assert all(bites("enforce", 100, "r", k) for k in KEYS[:50])
    assert not any(bites("enforce", 0, "r", k) for k in KEYS[:50])


def test_a_quarter_of_keys_and_always_the_same_ones() -> None:
    bitten = {k for k in KEYS if bites("enforce", 25, "org:acme:limits", k)}
    assert 0.22 < len(bitten) / len(KEYS) < 0.28
    assert bitten == {k for k in KEYS if bites("enforce", 25, "org:acme:limits", k)}


def test_raising_the_percentage_keeps_the_keys_already_in() -> None:
    at_25 = {k for k in KEYS if bites("enforce", 25, "rule", k)}
    at_50 = {k for k in KEYS if bites("enforce", 50, "rule", k)}
    assert at_25 < at_50


def test_two_rules_bite_different_quarters() -> None:
    a = {k for k in KEYS if bites("enforce", 25, "rule-a", k)}
    b = {k for k in KEYS if bites("enforce", 25, "rule-b", k)}
    assert len(a & b) < len(a) * 0.5  # independent draws overlap about a quarter of the time


def test_by_request_draws_each_call() -> None:
    hits = sum(bites("enforce", 25, "rule", "one-key", by="request") for _ in range(4000))
    assert 800 < hits < 1200
    assert 0 <= bucket_of("rule", "one-key") < 10_000
