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


# Version 4 and the RFC 4122 variant, as `uuid.UUID(version=4)` sets them.
_KEEP = ~((0xC000 << 48) | (0xF000 << 64)) & ((1 << 128) - 1)
_SET = (0x8000 << 48) | (4 << 76)


def new_uuid_str() -> str:
    """`str(new_uuid())`, without building the UUID object."""
    h = f"{_random.getrandbits(128) & _KEEP | _SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
