"""The Rust buckets and windows through the binding: values, errors, and threads without the GIL."""

import random
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluicegate import _core
from sluicegate._core import MAX_AMOUNT_NUSD, Bucket, release_all, reserve_all, settle_all, window_at


def test_bucket_round_trip() -> None:
    b = Bucket(1_000, [50, 100])
    assert (b.limit_nusd, b.spent_nusd, b.reserved_nusd, b.used_nusd, b.available_nusd) == (1_000, 0, 0, 0, 1_000)
    assert b.thresholds == [50, 100]
    assert b.reserve(700)
    assert not b.reserve(301)
    assert b.settle(700, 600) == 0b01
    assert b.snapshot() == (1_000, 600, 0)
    assert b.fired == 0b01
    assert repr(b) == "Bucket(limit_nusd=1000, spent_nusd=600, reserved_nusd=0)"
    assert b.reserve(400)
    b.release(400)
    assert b.shrink(400) and b.limit_nusd == 600 and not b.shrink(1)
    b.grow(10)
    b.set_limit(5)
    assert b.available_nusd == -595


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: Bucket(-1), "must not be negative"),
        (lambda: Bucket(MAX_AMOUNT_NUSD + 1), "larger than"),
        (lambda: Bucket(1, list(range(65))), "at most 64 thresholds"),
        (lambda: Bucket(1).reserve(-1), "must not be negative"),
        (lambda: Bucket(1).settle(0, MAX_AMOUNT_NUSD + 1), "larger than"),
        (lambda: reserve_all([Bucket(1)] * 65, 1), "at most 64 buckets"),
        (lambda: window_at("fortnight", 0), "unknown window"),
        (lambda: window_at("day", 253_402_300_800), "outside the years"),
    ],
)
def test_errors_are_value_errors(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        call()


def test_amounts_beyond_i64_are_overflow_errors() -> None:
    with pytest.raises(OverflowError):
        Bucket(1).reserve(2**64)


def test_reserve_all_table() -> None:
    org, key, shadow = Bucket(1_000), Bucket(100), Bucket(10)
    both = [org, key]
    assert reserve_all(both, 80) == (80, -1, 0)
    assert reserve_all(both, 30) == (0, 1, 0)
    assert (org.used_nusd, key.used_nusd) == (80, 80)
    assert reserve_all(both, 30, clamp_mask=0b10, min_clamp_nusd=10) == (20, -1, 0)
    assert reserve_all([org, shadow], 50, enforce_mask=0b01) == (50, -1, 0b10)
    assert settle_all([org, key], 100, 70) == [0, 0]
    release_all([org, shadow], 50)
    assert org.snapshot() == (1_000, 70, 0) and shadow.used_nusd == 0


def test_threads_without_the_gil_never_over_admit() -> None:
    """Eight threads hammer one org cap through the binding; the arithmetic runs detached, and
    the books balance to the nano-USD."""
    org = Bucket(2_000_000, [50, 80, 100])
    results: list[tuple[int, int]] = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        key = Bucket(10**12)
        admitted = actual_sum = 0
        for _ in range(3_000):
            amount = rng.randrange(1, 1_500)
            taken, refused, _ = reserve_all([org, key], amount)
            if refused >= 0:
                continue
            admitted += taken
            assert org.used_nusd <= org.limit_nusd or org.spent_nusd > 0
            if rng.random() < 0.25:
                release_all([org, key], taken)
            else:
                actual = rng.randrange(0, taken + 1)
                actual_sum += actual
                settle_all([org, key], taken, actual)
        assert key.spent_nusd == actual_sum and key.reserved_nusd == 0
        with lock:
            results.append((admitted, actual_sum))

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # make the interpreter switch threads as often as it can
    try:
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(switch)
    assert len(results) == 8
    total = sum(r[1] for r in results)
    assert org.snapshot() == (2_000_000, total, 0)
    assert total <= 2_000_000


def test_exact_fill_from_threads() -> None:
    cap = Bucket(5_000)
    counts: list[int] = []

    def worker() -> None:
        counts.append(sum(1 for _ in range(2_000) if reserve_all([cap], 1)[1] < 0))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(counts) == 5_000 == cap.used_nusd


def py_window(kind: str, t: datetime) -> tuple[str, datetime | None, datetime | None]:
    """The same windows computed with the standard library."""
    if kind == "total":
        return ("total", None, None)
    if kind == "hour":
        start = t.replace(minute=0, second=0, microsecond=0)
        return (start.strftime("hour:%Y-%m-%dT%H"), start, start + timedelta(hours=1))
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    if kind == "day":
        return (day.strftime("day:%Y-%m-%d"), day, day + timedelta(days=1))
    if kind == "week":
        start = day - timedelta(days=day.weekday())
        year, week, _ = start.isocalendar()
        return (f"week:{year:04d}-W{week:02d}", start, start + timedelta(days=7))
    start = day.replace(day=1)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return (start.strftime("month:%Y-%m"), start, end)


@given(
    st.sampled_from(["total", "hour", "day", "week", "month"]),
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9999, 11, 30), timezones=st.just(UTC)),
)
def test_windows_agree_with_the_standard_library(kind: str, t: datetime) -> None:
    wid, start, end = window_at(kind, int(t.timestamp() // 1))
    pid, pstart, pend = py_window(kind, t)
    assert wid == pid
    assert start == (None if pstart is None else int(pstart.timestamp()))
    assert end == (None if pend is None else int(pend.timestamp()))


def test_module_exports() -> None:
    for name in ("Bucket", "reserve_all", "settle_all", "release_all", "window_at", "MAX_AMOUNT_NUSD"):
        assert name in _core.__all__
    assert MAX_AMOUNT_NUSD == 2**53 - 1
