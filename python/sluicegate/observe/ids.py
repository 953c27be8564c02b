"""Ids for runs and records: random UUIDs (version 4) from a per-process generator seeded from the
OS, because `uuid.uuid4()` makes a system call per id, which costs more than the rest of a record."""

from __future__ import annotations

import os
import random
import uuid

_random = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _random.seed(os.urandom(32)))  # forked workers differ


def new_uuid() -> uuid.UUID:
    return uuid.UUID(int=_random.getrandbits(128), version=4)
