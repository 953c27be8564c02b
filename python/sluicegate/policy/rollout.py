"""Staged rollout: every policy rule has a mode, and between `monitor` and `enforce` a percentage.

A rule in `enforce` mode with `rollout_percent = 25` bites for a stable quarter of the keys it
applies to (or of the requests, with `rollout_by = "request"`) and only monitors the rest: its
decisions there become `would_*` events, and the request goes ahead. Which keys are in the quarter
depends on the rule as well as the key (a keyed hash of both), so two rules at 25% do not bite the
same quarter, and raising a rule from 25% to 50% keeps the first quarter in.
"""

from __future__ import annotations

import hashlib
import random
from typing import Literal

Mode = Literal["enforce", "monitor"]
RolloutBy = Literal["key", "request"]

__all__ = ["Mode", "RolloutBy", "bites", "bucket_of", "check_locked_rollout"]


def bucket_of(rule_id: str, key_id: str) -> int:
    """0..9999: where (`rule_id`, `key_id`) falls in the rollout order, stable across processes."""
    digest = hashlib.blake2b(key_id.encode(), digest_size=8, key=rule_id.encode()[:64]).digest()
    return int.from_bytes(digest, "big") % 10_000


def check_locked_rollout(locked: bool, rollout_percent: float, what: str) -> None:
    """A locked rule, cap or limit is a floor for every key below it, so it applies in full.

    Raises:
        ValueError: `locked` with a `rollout_percent` below 100 (`what` names the kind in the message).
    """
    if locked and rollout_percent < 100:
        raise ValueError(f"a locked {what} is a floor for every key below it: its rollout_percent must be 100")


def bites(mode: Mode, rollout_percent: float, rule_id: str, key_id: str, by: RolloutBy = "key") -> bool:
    """Whether a rule enforces on this call (True) or only monitors it (False).

    Arguments:
        mode: the rule's mode; `monitor` never bites.
        rollout_percent: 0..100, the share of keys (or requests) an enforcing rule bites.
        rule_id: what names the rule stably (its level, entity id and kind, say).
        key_id: the calling key's id.
        by: `key` (a stable set of keys) or `request` (each request drawn anew).
    """
    if mode != "enforce" or rollout_percent <= 0:
        return False
    if rollout_percent >= 100:
        return True
    share = int(rollout_percent * 100)
    if by == "request":
        return random.randrange(10_000) < share  # a sample, not a secret
    return bucket_of(rule_id, key_id) < share
