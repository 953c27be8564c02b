"""The Redis store (and the same contract on the local and leased stores) against a real
redis-server: exact under many clients, scripts that survive SCRIPT FLUSH, crashed reservations
counted then reclaimed, hash-tagged keys that expire with their window, and the 2**53 guard."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot
from tests.conftest import Server, redis_url

from sluicegate.redis_scripts import connect
from sluicegate.spend.caps import CapLine, LeaseSettings, SpendSettings
from sluicegate.spend.leases import LeasedStore
from sluicegate.spend.local import LocalStore
from sluicegate.spend.money import MAX_NUSD
from sluicegate.spend.redis_store import RedisStore, bucket_key
from sluicegate.spend.store import SpendStore, create_store

T0 = datetime(2026, 11, 30, 23, 59, 58, tzinfo=UTC)  # two seconds before December, UTC
FAST_LEASES = LeaseSettings(enabled=True, ttl_s=3.0, idle_s=0.2, sync_interval_s=0.2)

StoreFactory = Callable[..., Awaitable[SpendStore]]


def line(level: str = "key", entity: str = "k1", window: str = "day", limit: int = 1_000, **kw: object) -> CapLine:
    return CapLine(level, entity if level != "org" else "acme", "acme", window, limit, **kw)  # type: ignore[arg-type]


@pytest.fixture
def prefix() -> str:
    """A key prefix of its own for each test, so tests share the session's Redis safely."""
    return "t" + os.urandom(4).hex()


@pytest.fixture
async def make(store_url: str, prefix: str) -> AsyncIterator[Callable[..., Awaitable[SpendStore]]]:
    """Make stores of a kind (`redis`, `leased`, `local`) on the session's Redis (or Redis Cluster:
    `store_url`); all closed after."""
    made: list[SpendStore] = []

    async def factory(kind: str = "redis", **kw: object) -> SpendStore:
        store: SpendStore
        if kind == "local":
            store = LocalStore()
        else:
            client = connect(store_url, timeout_s=5, max_connections=64)
            red = RedisStore(client, prefix=prefix, **kw)  # type: ignore[arg-type]
            store = red if kind == "redis" else LeasedStore(red, FAST_LEASES)
        made.append(store)
        return store

    yield factory
    for store in made:
        await store.close()


@pytest.fixture
async def raw(redis_server: Server) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url(redis_server), decode_responses=True)
    yield client
    await client.aclose()


async def books(store: SpendStore, cap: CapLine, now: datetime | None = None) -> tuple[int, int]:
    """(spent, reserved) once leases are handed back."""
    if isinstance(store, LeasedStore):
        await store.sync_now(returning=True)
    return await store.snapshot(cap, now=now)


# -- the contract, on every store --------------------------------------------------------------

KINDS = ["local", "redis", "leased"]


@pytest.mark.parametrize("kind", KINDS)
async def test_contract_reserve_settle_release(kind: str, make: StoreFactory) -> None:
    store = await make(kind)
    org, key = line("org", limit=10_000, window="month"), line(limit=1_000)
    first = await store.reserve([org, key], 600, now=T0)
    assert first.reservation is not None
    refused = await store.reserve([org, key], 500, now=T0)
    assert refused.refusal is not None and refused.reservation is None
    r = refused.refusal
    assert (r.line, r.requested_nusd, r.window_id) == (key, 500, "day:2026-11-30")
    assert r.resets_at == datetime(2026, 12, 1, tzinfo=UTC)
    assert r.spent_nusd + r.reserved_nusd >= 600  # a lease may hold more than the reservation
    await store.settle(first.reservation, 550)
    second = await store.reserve([org, key], 450, now=T0)
    assert second.reservation is not None
    await store.release(second.reservation)
    assert await store.settle(second.reservation, 999) == []  # done: a no-op
    assert await books(store, key, T0) == (550, 0)
    assert await books(store, org, T0) == (550, 0)


@pytest.mark.parametrize("kind", KINDS)
async def test_contract_monitor_and_clamp(kind: str, make: StoreFactory) -> None:
    store = await make(kind)
    shadow = line("user", "u1", limit=100, mode="monitor")
    key = line(limit=1_000, on_insufficient="clamp")
    results = [await store.reserve([key, shadow], 60, now=T0) for _ in range(3)]
    assert all(r.ok for r in results)
    assert len(results[0].monitored) == 0 and len(results[2].monitored) == 1
    assert results[2].monitored[0].line == shadow
    clamped = await store.reserve([key, shadow], 900, now=T0, min_clamp_nusd=100)
    assert clamped.reservation is not None and clamped.clamp_to_nusd == 820
    assert not (await store.reserve([key], 1, now=T0)).ok
    for r in [*results, clamped]:
        assert r.reservation is not None
        await store.settle(r.reservation, r.reservation.amount_nusd)
    assert await books(store, key, T0) == (1_000, 0)
    assert await books(store, shadow, T0) == (1_000, 0)


@pytest.mark.parametrize("kind", KINDS)
async def test_contract_windows_roll_over_and_thresholds_fire_once(kind: str, make: StoreFactory) -> None:
    store = await make(kind)
    day = line(limit=1_000, thresholds=(50, 100))
    month = line("org", window="month", limit=10_000)
    alerts = []
    for now in (T0, T0 + timedelta(seconds=2)):  # 2026-11-30T23:59:58Z, then 2026-12-01T00:00:00Z
        for amount in (400, 200, 400):
            result = await store.reserve([day, month], amount, now=now)
            assert result.reservation is not None
            alerts += result.alerts
            alerts += await store.settle(result.reservation, amount)
        refused = await store.reserve([day], 1, now=now)
        assert not refused.ok
        alerts += refused.alerts  # a refusal can carry alerts too (a lease reported spend)
    if isinstance(store, LeasedStore):
        await store.sync_now(returning=True)
        alerts += await store.settle(result.reservation, 0)  # drains the alerts of the sync
    fired = sorted((a.window_id, a.threshold_pct, a.line.window) for a in alerts)
    assert fired == [
        ("day:2026-11-30", 50, "day"),
        ("day:2026-11-30", 100, "day"),
        ("day:2026-12-01", 50, "day"),
        ("day:2026-12-01", 100, "day"),
    ]
    assert await books(store, month, T0) == (1_000, 0)
    assert await books(store, month, T0 + timedelta(seconds=2)) == (1_000, 0)


# -- Redis: many instances ---------------------------------------------------------------------


async def test_many_clients_and_tasks_never_over_the_cap_and_exact(make: StoreFactory) -> None:
    """Four independent clients (instances), 40 tasks each; random amounts, settles, releases and
    overshoots: never over the cap, spent equals the sum of actual costs, reserved back to 0."""
    stores = [await make("redis") for _ in range(4)]
    org = line("org", window="month", limit=2_000_000)
    ws, user = line("workspace", "w1", limit=10**12), line("user", "u1", window="total", limit=10**12)
    keys = [line("key", f"k{i}", limit=400_000) for i in range(4)]
    rng = random.Random(11)
    actuals: list[int] = []
    admitted_over_cap = 0

    async def client(store: SpendStore, key: CapLine) -> None:
        nonlocal admitted_over_cap
        for _ in range(25):
            amount = rng.randrange(1_000, 20_000)
            r = await store.reserve([org, ws, user, key], amount)
            if r.reservation is None:
                assert r.refusal is not None
                continue
            await asyncio.sleep(rng.random() / 1000)
            if rng.random() < 0.25:
                await store.release(r.reservation)
            else:
                actual = rng.randrange(0, amount + 1)
                actuals.append(actual)
                await store.settle(r.reservation, actual)

    await asyncio.gather(*(client(s, keys[i % 4]) for i, s in enumerate(stores) for _ in range(40)))
    spent, reserved = await stores[0].snapshot(org)
    assert (spent, reserved) == (sum(actuals), 0)
    assert spent <= org.limit_nusd
    assert await stores[1].snapshot(ws) == (sum(actuals), 0)
    assert await stores[2].snapshot(user) == (sum(actuals), 0)
    assert sum([(await stores[3].snapshot(k))[0] for k in keys]) == sum(actuals)
    assert len(actuals) > 100


async def test_exactly_n_admitted_when_every_request_costs_its_reservation(make: StoreFactory) -> None:
    stores = [await make("redis") for _ in range(3)]
    cap = line("org", window="total", limit=37 * 1_000)
    ok = 0

    async def task(store: SpendStore) -> None:
        nonlocal ok
        r = await store.reserve([cap], 1_000)
        if r.reservation is not None:
            ok += 1
            await asyncio.sleep(0.001)
            await store.settle(r.reservation, 1_000)

    await asyncio.gather(*(task(stores[i % 3]) for i in range(200)))
    assert ok == 37
    assert await stores[0].snapshot(cap) == (37_000, 0)


async def test_scripts_are_reloaded_after_script_flush(make: StoreFactory, raw: aioredis.Redis) -> None:
    store = await make("redis")
    assert isinstance(store, RedisStore)
    cap = line(limit=10)
    first = await store.reserve([cap], 4)
    await raw.script_flush()
    second = await store.reserve([cap], 4)
    assert first.reservation is not None and second.reservation is not None
    await raw.script_flush()
    await store.settle(first.reservation, 4)
    await store.settle(second.reservation, 1)
    assert await store.snapshot(cap) == (5, 0)


async def test_an_expired_reservation_counts_as_spent_then_a_late_settle_corrects_it(make: StoreFactory) -> None:
    crashed = await make("redis", reservation_ttl_s=0.3)
    alive = await make("redis", reservation_ttl_s=30)
    cap = line(limit=1_000)
    lost = (await crashed.reserve([cap], 600)).reservation  # its instance "crashes": no settle
    assert lost is not None
    assert not (await alive.reserve([cap], 500)).ok  # held while it is live
    await asyncio.sleep(0.4)
    assert await alive.snapshot(cap) == (0, 600)  # expired but not yet reclaimed: still blocking
    r = await alive.reserve([cap], 400)  # the script reclaims it first: counted as spent
    assert r.reservation is not None
    assert await alive.snapshot(cap) == (600, 400)
    assert not (await alive.reserve([cap], 1)).ok  # over-blocking, never overspending
    await crashed.settle(lost, 150)  # the instance was only slow: its settle replaces the count
    assert await alive.snapshot(cap) == (150, 400)
    lost.done = False
    await crashed.settle(lost, 150)  # a retried settle does nothing
    await alive.settle(r.reservation, 400)
    assert await alive.snapshot(cap) == (550, 0)


async def test_keys_share_the_org_hash_tag_and_expire_after_their_window(
    make: StoreFactory, raw: aioredis.Redis, prefix: str
) -> None:
    store = await make("redis", retention_s=3_600)
    lines = [
        line("org", window="month"),
        line("workspace", "ws:{7}", window="day"),
        line("user", "ü ser", window="hour"),
        line("key", "k1", window="total"),
    ]
    now = datetime.now(UTC)
    r = await store.reserve(lines, 5, now=now)
    assert r.reservation is not None
    keys = sorted(await raw.keys(prefix + ":*"))
    assert len(keys) == 8
    assert all("{org:acme}" in k for k in keys)
    assert len({key_slot(k.encode()) for k in keys}) == 1
    assert f"{prefix}:{{org:acme}}:workspace:ws%3A%7B7%7D:" in keys[-1] or any("ws%3A%7B7%7D" in k for k in keys)
    day_key = bucket_key(prefix, lines[1], "day:" + now.strftime("%Y-%m-%d"))
    end = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    ttl = await raw.pttl(day_key)
    expected = (end - now).total_seconds() * 1000 + 3_600_000
    assert abs(ttl - expected) < 5_000
    assert await raw.pttl(bucket_key(prefix, lines[3], "total")) == -1


async def test_amounts_up_to_2_pow_53_are_exact_in_lua(make: StoreFactory) -> None:
    store = await make("redis")
    cap = line(window="total", limit=MAX_NUSD)
    big = (await store.reserve([cap], MAX_NUSD - 1)).reservation
    assert big is not None
    one = (await store.reserve([cap], 1)).reservation
    assert one is not None
    assert not (await store.reserve([cap], 1)).ok
    await store.settle(big, MAX_NUSD - 3)
    assert await store.snapshot(cap) == (MAX_NUSD - 3, 1)
    assert (await store.reserve([cap], 2)).ok
    assert not (await store.reserve([cap], 1)).ok
    with pytest.raises(ValueError, match="amount_nusd"):
        await store.reserve([cap], MAX_NUSD + 1)


async def test_lines_of_two_organizations_are_refused(make: StoreFactory) -> None:
    store = await make("redis")
    other = CapLine("org", "other", "other", "day", 10)
    with pytest.raises(ValueError, match="one organization"):
        await store.reserve([line(), other], 1)


@pytest.mark.parametrize(
    ("backend", "leases", "kind"),
    [("local", False, LocalStore), ("redis", False, RedisStore), ("redis", True, LeasedStore)],
)
async def test_create_store_from_settings(redis_server: Server, backend: str, leases: bool, kind: type) -> None:
    settings = SpendSettings.model_validate(
        {
            "backend": backend,
            "redis_url": redis_url(redis_server),
            "key_prefix": "c" + os.urandom(3).hex(),
            "lease": {"enabled": leases},
        }
    )
    store = create_store(settings)
    try:
        assert isinstance(store, kind)
        cap = settings.lines()[0] if settings.caps else line(limit=10)
        result = await store.reserve([cap], 10)
        assert result.reservation is not None
        await store.settle(result.reservation, 7)
        assert await books(store, cap) == (7, 0)
    finally:
        await store.close()


@pytest.mark.parametrize("years", [-10, 0, 10, 100])
@pytest.mark.parametrize("kind", ["redis", "leased"])
async def test_keys_live_as_long_as_the_callers_clock_says(
    kind: str, years: int, make: StoreFactory, raw: aioredis.Redis, prefix: str
) -> None:
    """A caller whose clock is years away from Redis's (a test fixed at a date, a machine whose
    date moved on) keeps its window's keys `retention_s` past the window's end by *its* clock:
    Redis gets a time to live, never an absolute expiry in its own time."""
    store = await make(kind, retention_s=3_600)
    now = datetime(2026 + years, 6, 15, 23, 0, 0, tzinfo=UTC)  # one hour before the day ends
    day = line(limit=1_000)
    first = await store.reserve([day], 400, now=now)
    assert first.reservation is not None
    await store.settle(first.reservation, 300)
    assert not (await store.reserve([day], 701, now=now)).ok
    assert await books(store, day, now) == (300, 0)
    key = bucket_key(prefix, day, "day:" + now.strftime("%Y-%m-%d"))
    ttl = await raw.pttl(key)
    assert abs(ttl - 2 * 3_600_000) < 5_000  # the hour left of the day, then the retention
