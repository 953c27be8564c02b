"""Wall-clock times as the records of calls write them (logs, LangSmith runs), to the second."""

from __future__ import annotations

import functools
import time


@functools.lru_cache(maxsize=16)
def utc_second(whole: int) -> tuple[str, str]:
    """A whole Unix second in UTC as `20261127T063255` and as `2026-11-27T06:32:55`. Cached: the
    records of one second share it, and `strftime` costs more than the rest of a record's times."""
    tm = time.gmtime(whole)
    return time.strftime("%Y%m%dT%H%M%S", tm), time.strftime("%Y-%m-%dT%H:%M:%S", tm)
