"""The load test's Redis figures (`make cluster-redis`'s capacity numbers): the commands a load cost
the primaries, by name and including those a script runs, and their CPU, with the report's own
INFO calls left out."""

from __future__ import annotations

import redis
from loadtest.run import redis_delta, redis_figures
from tests.conftest import Server


def test_the_figures_count_script_calls_and_their_commands_not_the_report(redis_server: Server) -> None:
    client = redis.Redis(port=redis_server.port)
    try:
        before = redis_figures([redis_server.port])
        sha = client.script_load("redis.call('HINCRBY', KEYS[1], 'n', 1); return redis.call('HGET', KEYS[1], 'n')")
        for _ in range(5):
            client.evalsha(sha, 1, "loadtest-figures")
        client.info()  # the report's own kind of call: not counted
        after = redis_figures([redis_server.port])
    finally:
        client.delete("loadtest-figures")
        client.close()
    used = redis_delta(before, after)
    assert used["evalsha"] == 5 and used["hincrby"] == 5 and used["hget"] == 5
    assert "info" not in used and not any(k.startswith("cluster") for k in used)
    assert after["cpu_s"] >= before["cpu_s"] > 0  # the server's own CPU, user plus sys, since it started
