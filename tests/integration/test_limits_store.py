"""The limits stores against a real redis-server: the same contract on the local, Redis and leased
stores; exact under many tasks; three OS processes hammering one line (with and without leases)
never admit more than the limit in any window; a killed holder's concurrent slot frees after the
TTL of the caller's clock; keys expire by that clock and share the org's hash tag; Redis down is
StoreUnavailable; leases need under one round trip per 20 requests."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot
from tests.conftest import REAL_CLOCK, ROOT, Server, free_port, redis_url, spawn, stop_process

from sluicegate.limits.leases import LeasedLimitStore
from sluicegate.limits.lines import LimitLine
from sluicegate.limits.local import LocalLimitStore
from sluicegate.limits.redis_store import RedisLimitStore, line_keys
from sluicegate.limits.settings import LimitLeaseSettings, LimitSettings
from sluicegate.limits.store import LimitStore, StoreUnavailable, create_limit_store
from sluicegate.redis_scripts import connect

T0 = 1_800_000_000_000  # ms, a whole second: far from the machine's date, as a test clock may be
WORKER = Path(__file__).with_name("limits_worker.py")
LEASES = LimitLeaseSettings(enabled=True, flush_interval_s=60)  # flushed by hand in these tests

Make = Callable[..., Awaitable[LimitStore]]


def rpm(limit: int = 3, window_s: int = 60, entity: str = "k1", level: str = "key") -> LimitLine:
    return LimitLine(level, entity if level != "org" else "acme", "acme", "requests", limit, window_s)  # type: ignore[arg-type]


def tpm(limit: int = 1_000, window_s: int = 60) -> LimitLine:
    return LimitLine("key", "k1", "acme", "tokens", limit, window_s)


def busy(limit: int = 2) -> LimitLine:
    return LimitLine("user", "u1", "acme", "concurrent", limit)


def worst_window(times: list[int], window_ms: int) -> int:
    """The most admissions in any closed interval of `window_ms`."""
    times = sorted(times)
    lo = best = 0
    for hi, t in enumerate(times):
        while times[lo] < t - window_ms:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


@pytest.fixture
def prefix() -> str:
    """A key prefix of its own for each test, so tests share the session's Redis safely."""
    return "l" + os.urandom(4).hex()


@pytest.fixture
async def make(store_url: str, prefix: str) -> AsyncIterator[Make]:
    """Make stores of a kind (`local`, `redis`, `leased`) on the session's Redis; all closed after."""
    made: list[LimitStore] = []

    async def factory(kind: str = "redis", **kw: object) -> LimitStore:
        store: LimitStore
        if kind == "local":
            store = LocalLimitStore(**kw)  # type: ignore[arg-type]
        else:
            client = connect(store_url, timeout_s=5, max_connections=64)
            red = RedisLimitStore(client, prefix=prefix, **kw)  # type: ignore[arg-type]
            store = red if kind == "redis" else LeasedLimitStore(red, LEASES)
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


async def counted(store: LimitStore, line: LimitLine, now_ms: int) -> int:
    """What `line` counts, as Redis (or the local store) sees it once leases are handed back; a
    leased store's own view (unused room and unsent adjustments applied) agrees beforehand."""
    assert isinstance(store, LocalLimitStore | RedisLimitStore | LeasedLimitStore)
    before = await store.counted(line, now_ms=now_ms)
    if isinstance(store, LeasedLimitStore):
        await store.flush(now_ms=now_ms, returning=True)
        assert await store.redis.counted(line, now_ms=now_ms) == before
    return before


KINDS = ["local", "redis", "leased"]


# -- the contract, on every store --------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_contract_acquire_refuse_retry_after(kind: str, make: Make) -> None:
    store = await make(kind)
    org, key = rpm(100, level="org"), rpm(2)
    first = await store.acquire([org, key], [1, 1], [True, True], now_ms=T0 + 100)
    assert first.grant is not None and first.refused is None
    assert first.states[1].remaining <= 1 and first.states[1].reset_ms == 60_900
    assert (await store.acquire([org, key], [1, 1], [True, True], now_ms=T0 + 2_500)).ok
    refused = await store.acquire([org, key], [1, 1], [True, True], now_ms=T0 + 3_000)
    assert refused.grant is None and refused.refused is not None and refused.refused.line == key
    assert (refused.refused.remaining, refused.refused.retry_after_ms) == (0, 58_000)
    assert await counted(store, org, T0 + 3_000) == 2  # the org's part of the refused one was rolled back
    assert not (await store.acquire([key], [1], [True], now_ms=T0 + 61_000 - 1)).ok
    assert (await store.acquire([key], [1], [True], now_ms=T0 + 61_000)).ok
    assert await counted(store, org, T0 + 61_000) == 1  # slot 0 has left the window
    never = await store.acquire([key], [3], [True], now_ms=T0 + 61_000)
    assert never.refused is not None and never.refused.never


@pytest.mark.parametrize("kind", KINDS)
async def test_contract_monitor_tokens_and_concurrent(kind: str, make: Make) -> None:
    store = await make(kind)
    shadow, tokens, inflight = rpm(1, entity="shadow"), tpm(1_000), busy(1)
    a = await store.acquire([shadow, tokens, inflight], [1, 600, 1], [False, True, True], now_ms=T0)
    assert a.grant is not None and a.monitored == []
    refused = await store.acquire([shadow, tokens, inflight], [1, 100, 1], [False, True, True], now_ms=T0)
    assert refused.refused is not None and refused.refused.line == inflight
    assert refused.refused.retry_after_ms == 1_000 and refused.refused.reset_ms == 0
    await store.finish(a.grant, 150, now_ms=T0 + 10)
    await store.finish(a.grant, 999, now_ms=T0 + 10)  # a second finish is a no-op
    b = await store.acquire([shadow, tokens, inflight], [1, 800, 1], [False, True, True], now_ms=T0 + 20)
    assert b.grant is not None
    assert [m.line for m in b.monitored] == [shadow] and b.monitored[0].retry_after_ms == 61_000 - 20
    assert not (await store.acquire([tokens], [51], [True], now_ms=T0 + 30)).ok  # 150 + 800 + 51 > 1000
    await store.finish(b.grant, None, now_ms=T0 + 40)  # None keeps the estimate
    assert await counted(store, tokens, T0 + 50) == 950
    assert await counted(store, shadow, T0 + 50) == 2  # monitor lines count whatever happens
    assert (await store.acquire([inflight], [1], [True], now_ms=T0 + 50)).ok  # released by finish


@pytest.mark.parametrize("kind", KINDS)
async def test_contract_no_burst_of_two_windows_at_an_edge(kind: str, make: Make) -> None:
    store = await make(kind)
    line = rpm(10, window_s=10)
    assert all([(await store.acquire([line], [1], [True], now_ms=T0 + 9_999)).ok for _ in range(10)])
    assert not any([(await store.acquire([line], [1], [True], now_ms=T0 + 10_000 + i * 999)).ok for i in range(10)])
    assert (await store.acquire([line], [1], [True], now_ms=T0 + 20_000)).ok


# -- Redis: exactness, processes, faults, keys ---------------------------------------------------


@pytest.mark.parametrize("kind", ["redis", "leased"])
async def test_many_clients_and_tasks_admit_exactly_the_limit(kind: str, make: Make) -> None:
    stores = [await make(kind) for _ in range(3)]
    line, inflight = rpm(300, window_s=60), busy(1_000)

    async def worker(store: LimitStore, i: int) -> int:
        n = 0
        for j in range(20):
            r = await store.acquire([inflight, line], [1, 1], [True, True], now_ms=T0 + i + j)
            if r.grant is not None:
                n += 1
                await store.finish(r.grant, None, now_ms=T0 + i + j)
        return n

    admitted = await asyncio.gather(*[worker(stores[i % 3], i) for i in range(30)])
    assert sum(admitted) <= 300
    if kind == "redis":
        assert sum(admitted) == 300  # exact: 600 asked, every refusal a real one
    else:
        assert sum(admitted) >= 300 - 3 * 300 // LEASES.free_divisor  # under-admission only
    assert await counted(stores[0], line, T0 + 100) == sum(admitted)
    assert await counted(stores[0], inflight, T0 + 100) == 0


def run_workers(args: list[str], n: int = 3) -> list[dict[str, object]]:
    procs = [
        subprocess.Popen([sys.executable, str(WORKER), *args], stdout=subprocess.PIPE, cwd=ROOT, env=_env())
        for _ in range(n)
    ]
    out = []
    for p in procs:
        stdout, _ = p.communicate(timeout=60)
        assert p.returncode == 0
        out.append(json.loads(stdout))
    return out


def _env() -> dict[str, str]:
    path = os.pathsep.join([str(ROOT / "python"), str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path}


@pytest.mark.slow
@pytest.mark.parametrize("leases", [False, True])
def test_three_processes_never_admit_more_than_the_limit_in_any_window(
    redis_server: Server, prefix: str, leases: bool
) -> None:
    """Three instances (OS processes) burst far above 50 per 2 s on one line for 3.5 s of the real
    clock: no 2 s interval holds more than 50 admissions."""
    limit, window_s = 50, 2
    runs = run_workers(["hammer", redis_url(redis_server), prefix, "1" if leases else "0", "3.5", str(limit), "2"])
    times = [t for run in runs for t in run["admitted"]]  # type: ignore[attr-defined]
    attempts = sum(int(run["attempts"]) for run in runs)  # type: ignore[call-overload]
    calls = sum(int(run["calls"]) for run in runs)  # type: ignore[call-overload]
    worst = worst_window(times, window_s * 1000)
    print(f"\nleases={leases}: {len(times)} admitted of {attempts}, worst {window_s} s window {worst}, {calls} calls")
    assert attempts > 10 * len(times)  # a burst far above the limit
    assert worst <= limit
    assert len(times) >= 50  # and it does admit: about 50 per 3 s (the window plus its slot)


def hold_then_kill(redis_server: Server, prefix: str) -> None:
    """An instance (an OS process) takes the one concurrent slot at T0 and is killed mid-call."""
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), "hold", redis_url(redis_server), prefix, str(T0)],
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env=_env(),
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"held"
    finally:
        stop_process(proc, sig=signal.SIGKILL)
        if proc.stdout:
            proc.stdout.close()


async def test_a_killed_holder_frees_its_concurrent_slot_after_the_ttl(
    redis_server: Server, prefix: str, make: Make
) -> None:
    await asyncio.to_thread(hold_then_kill, redis_server, prefix)
    store = await make("redis", concurrency_ttl_s=600)
    line = LimitLine("key", "k-busy", "acme", "concurrent", 1)
    assert not (await store.acquire([line], [1], [True], now_ms=T0 + 599_999)).ok
    assert (await store.acquire([line], [1], [True], now_ms=T0 + 600_000)).ok


async def test_redis_down_is_store_unavailable_and_finish_never_raises() -> None:
    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=0.5)
    store = RedisLimitStore(client, breaker_s=0.0)
    with pytest.raises(StoreUnavailable, match="unreachable"):
        await store.acquire([rpm()], [1], [True], now_ms=T0)
    leased = LeasedLimitStore(store, LEASES)
    with pytest.raises(StoreUnavailable):
        await leased.acquire([rpm(), busy()], [1, 1], [True, True], now_ms=T0)
    from sluicegate.limits.lines import Grant

    grant = Grant("g1", (busy(),), (1,), T0, (0,))
    await store.finish(grant, None, now_ms=T0)  # logged, not raised
    assert grant.done
    await leased.close()


@pytest.fixture(params=["readonly", "oom"])
def refusing_redis(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Server, str]]:
    """A redis-server of its own that refuses writes: a replica of a master that is not there
    (read-only, as after a fail-over), or one out of memory."""
    port = free_port()
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    args += ["--dir", str(tmp_path), "--daemonize", "no"]
    if request.param == "readonly":
        args += ["--replicaof", "127.0.0.1", str(free_port())]
    else:
        args += ["--maxmemory", "1", "--maxmemory-policy", "noeviction"]
    with spawn(args, port, REAL_CLOCK) as server:
        yield server, "READONLY" if request.param == "readonly" else "OOM"


async def test_a_redis_refusing_writes_is_store_unavailable(refusing_redis: tuple[Server, str]) -> None:
    server, code = refusing_redis
    store = RedisLimitStore(aioredis.Redis.from_url(redis_url(server), socket_timeout=5))
    try:
        with pytest.raises(StoreUnavailable, match=code):
            await store.acquire([rpm()], [1], [True], now_ms=T0)
    finally:
        await store.close()


async def test_keys_share_the_org_hash_tag_and_expire_by_the_callers_clock(
    make: Make, raw: aioredis.Redis, prefix: str
) -> None:
    store = await make("redis", concurrency_ttl_s=600)
    lines = [rpm(5, window_s=10, level="org"), tpm(100, window_s=3600), busy(3)]
    now = T0 + 250
    result = await store.acquire(lines, [1, 10, 1], [True, True, True], now_ms=now)
    assert result.grant is not None
    keys = [k for line in lines for k in line_keys(prefix, line, 1000)]
    assert len({key_slot(k.encode()) for k in keys}) == 1
    assert all("{org:acme}" in k for k in keys)
    # a window line lives until its newest slot has left the window, by the caller's clock
    # (T0 is over a month from the machine's date: an absolute expiry would be wrong by that much)
    for k in line_keys(prefix, lines[0], 1000):
        assert 10_700 <= await raw.pttl(k) <= 11_000 - 250
    for k in line_keys(prefix, lines[1], 1000):
        assert 3_600_000 <= await raw.pttl(k) <= 3_601_000 - 250
    assert 599_000 <= await raw.pttl(line_keys(prefix, lines[2], 1000)[0]) <= 600_000


async def test_scripts_are_reloaded_after_script_flush(make: Make, raw: aioredis.Redis) -> None:
    store = await make("redis")
    assert (await store.acquire([rpm()], [1], [True], now_ms=T0)).ok
    await raw.script_flush()
    assert (await store.acquire([rpm()], [1], [True], now_ms=T0)).ok
    assert await counted(store, rpm(), T0) == 2


async def test_lines_of_two_organizations_are_refused(make: Make) -> None:
    store = await make("redis")
    other = LimitLine("org", "globex", "globex", "requests", 5)
    with pytest.raises(ValueError, match="one organization"):
        await store.acquire([rpm(), other], [1, 1], [True, True], now_ms=T0)


@pytest.mark.parametrize(
    ("backend", "leases", "kind"),
    [("local", False, LocalLimitStore), ("redis", False, RedisLimitStore), ("redis", True, LeasedLimitStore)],
)
async def test_create_limit_store(redis_server: Server, backend: str, leases: bool, kind: type) -> None:
    settings = LimitSettings.model_validate(
        {"backend": backend, "redis_url": redis_url(redis_server), "lease": {"enabled": leases}}
    )
    store = create_limit_store(settings)
    assert isinstance(store, kind)
    await store.close()


# -- leases ---------------------------------------------------------------------------------------


async def test_leases_need_under_one_round_trip_per_20_requests(make: Make) -> None:
    """Three lines, 3000 requests at 1000 a second of the caller's clock: slices of 32 requests."""
    store = await make("leased")
    assert isinstance(store, LeasedLimitStore)
    lines = [rpm(10**9, level="org"), rpm(10**9), tpm(10**12)]
    n = 3_000
    for i in range(n):
        result = await store.acquire(lines, [1, 1, 500], [True, True, True], now_ms=T0 + i)
        assert result.grant is not None
        await store.finish(result.grant, 400, now_ms=T0 + i)
    print(f"leases: {store.calls} round trips for {n} requests on 3 lines")
    assert store.calls * 20 < n, store.calls
    assert await counted(store, lines[1], T0 + n) == n
    assert await counted(store, lines[2], T0 + n) == 400 * n


async def test_leases_hold_exactly_near_the_limit_and_give_back_unused_room(make: Make) -> None:
    a, b = await make("leased"), await make("leased")
    assert isinstance(a, LeasedLimitStore) and isinstance(b, LeasedLimitStore)
    line = rpm(40, window_s=5)
    got = 0
    for i in range(60):
        for store in (a, b):
            got += (await store.acquire([line], [1], [True], now_ms=T0 + i)).ok
    assert 40 - 40 // LEASES.free_divisor <= got <= 40
    # In the next slot the unused room of slot 0 goes back with the next call (or a flush).
    await a.flush(now_ms=T0 + 1_000)
    await b.flush(now_ms=T0 + 1_000)
    assert a.held(line)["pending"] == {} and a.held(line)["room"] == 0
    assert await counted(a, line, T0 + 1_000) == got
    more = 0
    for i in range(60):
        more += (await a.acquire([line], [1], [True], now_ms=T0 + 1_000 + i)).ok
    assert got + more == 40  # everything given back was admitted


async def test_leased_tokens_settle_locally_then_in_batches(make: Make) -> None:
    store = await make("leased")
    assert isinstance(store, LeasedLimitStore)
    line = tpm(100_000)
    a = await store.acquire([line], [1_000], [True], now_ms=T0)
    assert a.grant is not None
    await store.finish(a.grant, 200, now_ms=T0 + 10)  # same slot: back into the local room
    assert store.held(line)["pending"] == {}
    b = await store.acquire([line], [1_000], [True], now_ms=T0 + 20)
    assert b.grant is not None
    await store.finish(b.grant, 3_000, now_ms=T0 + 2_000)  # a later slot: batched
    assert T0 // 1000 in store.held(line)["pending"]
    assert await counted(store, line, T0 + 2_000) == 200 + 3_000


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_leased_instances_on_a_random_clock_never_exceed_the_limit(make: Make, seed: int) -> None:
    """Three leased instances and one without leases take random turns on a small tokens line and a
    requests line at random times (a clock that moves forward), with random actual token counts:
    no interval of the window ever admits more than the limit, by requests or by actual tokens
    (settlements in the grant's own slot are exact; later ones are batched and only ever lower)."""
    rng = random.Random(seed)
    stores = [await make("leased") for _ in range(3)] + [await make("redis")]
    req, tok = rpm(20, window_s=3), tpm(400, window_s=3)
    t = T0
    admitted: list[tuple[int, int]] = []
    for _ in range(600):
        t += rng.choice([0, 0, 1, 7, 40, 250])
        store = rng.choice(stores)
        estimate = rng.randrange(1, 40)
        result = await store.acquire([req, tok], [1, estimate], [True, True], now_ms=t)
        if result.grant is not None:
            actual = rng.randrange(0, estimate + 1)  # the estimate is an upper bound here
            admitted.append((t, actual))
            await store.finish(result.grant, actual, now_ms=t + rng.choice([0, 0, 300, 1_500]))
    assert worst_window([a for a, _ in admitted], 3_000) <= 20
    times = sorted(admitted)
    lo = total = 0
    for a, c in times:
        total += c
        while times[lo][0] < a - 3_000:
            total -= times[lo][1]
            lo += 1
        assert total <= 400
    assert len(admitted) > 100  # it does admit (about 20 per 4 s over some 40 s)


@pytest.mark.parametrize("kind", KINDS)
async def test_retry_after_on_a_long_window_with_many_slots(kind: str, make: Make) -> None:
    """An hour-long tokens window busy in 200 slots: retry-after names the slot whose leaving makes
    room (read in chunks by the script), exactly."""
    store = await make(kind)
    line = tpm(1_000, window_s=3600)
    for i in range(200):
        assert (await store.acquire([line], [5], [True], now_ms=T0 + i * 1_000)).ok
    refused = await store.acquire([line], [400], [True], now_ms=T0 + 200_000)
    assert refused.refused is not None
    # 1000 - 400 = 600 must remain: the 80 oldest slots (5 each) must leave; slot 79 leaves at 3680 s
    assert refused.refused.retry_after_ms == (79 + 3600 + 1) * 1_000 - 200_000
    assert not (await store.acquire([line], [400], [True], now_ms=T0 + 3_680_000 - 1)).ok
    assert (await store.acquire([line], [400], [True], now_ms=T0 + 3_680_000)).ok


async def test_the_background_flush_gives_back_unused_room(redis_server: Server, prefix: str) -> None:
    """On the real clock: once the slot of a slice ends, its unused room goes back to Redis by the
    background flush, with no other request to carry it."""
    client = aioredis.Redis.from_url(redis_url(redis_server), socket_timeout=5)
    red = RedisLimitStore(client, prefix=prefix, slot_ms=100)
    store = LeasedLimitStore(red, LimitLeaseSettings(enabled=True, flush_interval_s=0.05))
    try:
        line = rpm(10**6, window_s=10)
        n = 0
        while n < 40 or not store.held(line)["room"]:
            assert (await store.acquire([line], [1], [True])).ok
            n += 1
        assert store.held(line)["room"] > 0  # a slice is held...
        for _ in range(100):
            await asyncio.sleep(0.02)
            if not store.held(line)["room"] and not store.held(line)["pending"]:
                break
        assert await red.counted(line) == n  # ...and given back once its slot has ended
    finally:
        await store.close()


async def test_leases_refuse_a_burst_locally_for_the_rest_of_the_slot(make: Make) -> None:
    store = await make("leased")
    assert isinstance(store, LeasedLimitStore)
    line, tokens = rpm(5, window_s=10), tpm(100, window_s=10)
    for i in range(5):
        assert (await store.acquire([line], [1], [True], now_ms=T0 + i)).ok
    first = await store.acquire([line], [1], [True], now_ms=T0 + 10)
    assert first.refused is not None and first.refused.retry_after_ms == 11_000 - 10
    calls = store.calls
    for i in range(100):
        again = await store.acquire([line], [1], [True], now_ms=T0 + 20 + i)
        assert again.refused is not None and again.refused.retry_after_ms == 11_000 - 20 - i
    assert store.calls == calls  # no round trip for the rest of the slot
    assert not (await store.acquire([line], [1], [True], now_ms=T0 + 1_000)).ok
    assert store.calls == calls + 1  # a new slot asks Redis again
    # Only costs at least as large as the refused one are refused locally.
    assert (await store.acquire([tokens], [90], [True], now_ms=T0 + 2_000)).ok
    assert not (await store.acquire([tokens], [20], [True], now_ms=T0 + 2_001)).ok
    calls = store.calls
    assert not (await store.acquire([tokens], [30], [True], now_ms=T0 + 2_002)).ok
    assert store.calls == calls
    assert (await store.acquire([tokens], [10], [True], now_ms=T0 + 2_003)).ok
    assert store.calls == calls + 1
    # A monitor line is never refused locally.
    shadow = await store.acquire([line], [1], [False], now_ms=T0 + 2_004)
    assert shadow.ok and [m.line for m in shadow.monitored] == [line]


async def test_the_short_way_answers_as_the_long_way_and_survives_a_forgotten_lease(make: Make) -> None:
    """The request path's one call (`lease_take`, `lease_finish` on a caller's lane of leases)
    gives the states, tickets and counts the store's slow path gives, and a lease the flush forgot
    (nothing held or owed) is not used by an old lane: its room and settlements are not lost."""
    store = await make("leased")
    assert isinstance(store, LeasedLimitStore)
    lines = (rpm(10**6), tpm(10**9))
    first = await store.acquire(lines, [1, 500], [True, True], now_ms=T0)  # the slow path: asks Redis
    assert first.grant is not None and store.calls == 1
    grants = [first.grant]
    for i in range(1, 6):  # slices grow with the local rate: soon a call needs no round trip
        calls, before = store.calls, first.states
        second = await store.acquire(lines, [1, 500], [True, True], now_ms=T0 + i)
        assert second.grant is not None
        grants.append(second.grant)
        if store.calls == calls:
            break
        first = second
    assert store.calls == calls, "the leases never held room for a second call"
    assert type(second.grant.handle).__name__ == "_Lane"
    assert second.grant.tickets == (T0 // 1000, T0 // 1000)
    assert [s.line for s in second.states] == list(lines)
    # The states the slow path would give from the same leases, and one call less on each.
    assert second.states == [store._state(store._lease(line), T0 + i) for line in lines]
    assert second.states[0].remaining == before[0].remaining - 1
    assert second.states[1].remaining == before[1].remaining - 500
    n = len(grants)
    for j, grant in enumerate(grants):  # settled in the same slot: into the room, nothing owed
        await store.finish(grant, 800 if j % 2 else 100, now_ms=T0 + 10 + j)
    assert store.held(lines[1])["pending"] == {}
    tokens = sum(800 if j % 2 else 100 for j in range(n))
    assert await counted(store, lines[0], T0 + 20) == n
    assert await counted(store, lines[1], T0 + 20) == tokens
    # The slot ends: the flush gives the room back, then forgets the leases.
    await store.flush(now_ms=T0 + 1_000)
    await store.flush(now_ms=T0 + 2_000)
    assert store.held(lines[0]) == {"room": 0, "pending": {}}
    calls = store.calls
    third = await store.acquire(lines, [1, 500], [True, True], now_ms=T0 + 2_001)  # a new lease from Redis
    assert third.grant is not None and store.calls == calls + 1
    await store.finish(third.grant, 50, now_ms=T0 + 2_002)
    assert await counted(store, lines[0], T0 + 2_003) == n + 1
    assert await counted(store, lines[1], T0 + 2_003) == tokens + 50
    # A grant from before the flush still settles (its lease is gone: owed to its slot in Redis).
    stale = await store.acquire(lines, [1, 500], [True, True], now_ms=T0 + 2_004)
    assert stale.grant is not None
    await store.flush(now_ms=T0 + 4_000)
    await store.flush(now_ms=T0 + 5_000)
    assert store.held(lines[1]) == {"room": 0, "pending": {}}
    await store.finish(stale.grant, 700, now_ms=T0 + 5_001)
    await store.flush(now_ms=T0 + 5_002)
    assert await counted(store, lines[1], T0 + 5_003) == tokens + 50 + 700
