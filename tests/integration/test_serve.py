"""`sluicegate serve`: probes, and a graceful stop on SIGTERM that lets streams finish."""

from __future__ import annotations

import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from tests.conftest import GATEWAY_KEY, PYTHON, Server, free_port, gateway_config, spawn, start_gateway

STREAM_BODY = {"messages": [{"role": "user", "content": "x"}], "stream": True}


def stream_in_thread(gateway: Server, model: str, events: list[str], first: threading.Event) -> threading.Thread:
    def run() -> None:
        try:
            with httpx.stream(
                "POST",
                f"{gateway.url}/v1/chat/completions",
                json={**STREAM_BODY, "model": model},
                headers={"authorization": f"Bearer {GATEWAY_KEY}"},
                timeout=30,
            ) as r:
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        events.append(line[6:])
                        first.set()
        except httpx.HTTPError as exc:
            events.append(f"transport error: {type(exc).__name__}")
        finally:
            first.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return True
    return False


def test_probes(gateway: Server) -> None:
    assert httpx.get(f"{gateway.url}/healthz").status_code == 200
    assert httpx.get(f"{gateway.url}/readyz").status_code == 200


def test_sigterm_stops_accepting_and_finishes_streams(mock_server: Server, tmp_path: Path) -> None:
    config = gateway_config(tmp_path / "c.toml", mock_server.url)
    with start_gateway(config) as gw:
        events: list[str] = []
        first = threading.Event()
        thread = stream_in_thread(gw, "mh/mock-gpt@chunks=12,delay_ms=150", events, first)
        assert first.wait(10)
        gw.proc.send_signal(signal.SIGTERM)  # to the main process only, as an orchestrator does
        time.sleep(0.5)
        assert refuses_connections(gw.port)
        thread.join(15)
        assert events[-1] == "[DONE]", events[-3:]  # the stream in flight finished cleanly
        assert gw.proc.wait(10) == 0


def test_drain_period_bounds_the_stop(mock_server: Server, tmp_path: Path) -> None:
    config = gateway_config(tmp_path / "c.toml", mock_server.url)
    with start_gateway(config, env={"SLUICEGATE_SERVER__DRAIN_SECONDS": "1"}) as gw:
        events: list[str] = []
        first = threading.Event()
        stream_in_thread(gw, "mh/mock-gpt@chunks=100,delay_ms=200", events, first)
        assert first.wait(10)
        start = time.monotonic()
        gw.proc.send_signal(signal.SIGTERM)
        gw.proc.wait(10)
        assert time.monotonic() - start < 5
        assert "[DONE]" not in events


def test_bad_config_fails_fast_with_the_setting_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nworkers = 0\n")
    port = free_port()
    with (
        pytest.raises(RuntimeError, match=r"server\.workers"),
        spawn([PYTHON, "-m", "sluicegate", "serve", "--config", str(bad), "--port", str(port)], port, timeout=10),
    ):
        pass


def test_mock_command_serves_the_mock_provider() -> None:
    port = free_port()
    with spawn([PYTHON, "-m", "sluicegate", "mock", "--port", str(port)], port) as mock:
        r = httpx.get(f"{mock.url}/v1/models", headers={"authorization": "Bearer any"})
        assert r.status_code == 200 and r.json()["object"] == "list"


def test_keys_new_prints_a_key_and_its_entry() -> None:
    import subprocess
    import tomllib

    from sluicegate.secrets import hash_key

    out = subprocess.run([PYTHON, "-m", "sluicegate", "keys", "new", "--name", "ci"], capture_output=True, text=True)
    key_line, entry = out.stdout.split("\n", 1)
    key = key_line.rsplit(" ", 1)[1]
    assert key.startswith("sg-")
    assert tomllib.loads(entry)["keys"][0] == {"name": "ci", "workspace": "default", "sha256": hash_key(key)}


def test_serve_without_keys_makes_one_and_it_works(tmp_path: Path) -> None:
    port = free_port()
    with spawn([PYTHON, "-m", "sluicegate", "serve", "--port", str(port)], port) as gw:
        assert gw.proc.stdout is not None
        greeting = gw.proc.stdout.readline().decode() + gw.proc.stdout.readline().decode()
        key = next(w for w in greeting.split() if w.startswith("sg-"))
        ok = httpx.post(
            f"{gw.url}/v1/chat/completions",
            json={"model": "mock-gpt", "messages": [{"role": "user", "content": "Hello"}]},
            headers={"authorization": f"Bearer {key}"},
        )
        assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"]
        refused = httpx.post(f"{gw.url}/v1/chat/completions", json={"model": "mock-gpt", "messages": []})
        assert refused.status_code == 401


def test_sigterm_turns_readiness_false_before_the_drain(mock_server: Server, tmp_path: Path) -> None:
    config = gateway_config(tmp_path / "c.toml", mock_server.url)
    with start_gateway(config, env={"SLUICEGATE_SERVER__READY_GRACE_S": "1.5"}) as gw:
        events: list[str] = []
        first = threading.Event()
        thread = stream_in_thread(gw, "mh/mock-gpt@chunks=20,delay_ms=150", events, first)
        assert first.wait(10)
        assert httpx.get(f"{gw.url}/readyz").status_code == 200
        gw.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        # not ready, but still serving: the load balancer has time to stop sending
        assert httpx.get(f"{gw.url}/readyz").status_code == 503
        r = httpx.post(
            f"{gw.url}/v1/chat/completions",
            json={"model": "mh/mock-gpt", "messages": [{"role": "user", "content": "x"}]},
            headers={"authorization": f"Bearer {GATEWAY_KEY}"},
        )
        assert r.status_code == 200
        time.sleep(1.7)
        assert refuses_connections(gw.port)  # the grace is over: no new connections
        thread.join(15)
        assert events[-1] == "[DONE]"  # the stream in flight still finished
        assert gw.proc.wait(10) == 0


@pytest.mark.parametrize(
    ("extra", "which"),
    [
        ("[[spend.caps]]\nlevel = 'workspace'\nid = 'ws-test'\norg = 'default'\nlimit_usd = '1'\n", "[[spend.caps]]"),
        ("[control]\nenabled = true\ndatabase_url = 'sqlite:///{db}'\n", "the control plane's caps"),
    ],
    ids=["file caps", "control plane"],
)
def test_caps_on_the_local_backend_with_several_workers_refuse_to_start(
    mock_server: Server, tmp_path: Path, extra: str, which: str
) -> None:
    """The local backend counts in each worker's memory: two workers would let every cap through twice."""
    import subprocess

    config = gateway_config(tmp_path / "c.toml", mock_server.url, extra.format(db=tmp_path / "control.db"))
    args = [PYTHON, "-m", "sluicegate", "serve", "--config", str(config), "--port", str(free_port()), "--workers", "2"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    message = done.stderr
    assert "configuration error" in message and which in message
    assert "spend.backend = 'local'" in message and "server.workers = 2" in message
    assert "spend.backend = 'redis'" in message and "server.workers = 1" in message  # the two ways out
    assert "listening" not in done.stdout
    assert not (tmp_path / "control.db").exists()  # refused before anything was started or created
