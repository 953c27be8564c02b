"""Structured logs: one JSON object a line, with request id, workspace and trace id, never content."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from tests.conftest import GATEWAY_KEY, Server, gateway_config, start_gateway, stop_process

SSN = "536-22-1234"
EMAIL = "jane.doe@example.com"
SECRET = "AKIAIOSFODNN7EXAMPLE"
TRACE = (
    "20261127T063255912742Z01a21bb4-fd68-755d-b0c1-f71aa7e8dc2f"
    ".20261127T063255921870Z01a21bb4-fd71-7000-8000-000000000001"
)


def test_access_log_is_json_with_ids_and_never_content(mock_server: Server, tmp_path: Path) -> None:
    config = gateway_config(tmp_path / "c.toml", mock_server.url, "[log]\naccess = true\n")
    with start_gateway(config) as gw:
        headers = {"authorization": f"Bearer {GATEWAY_KEY}", "langsmith-trace": TRACE}
        messages = [{"role": "user", "content": f"ssn {SSN} key {SECRET}"}]
        ok = httpx.post(
            f"{gw.url}/v1/chat/completions", json={"model": "mh/mock-gpt@echo=1", "messages": messages}, headers=headers
        )
        missing = httpx.post(f"{gw.url}/v1/messages", json={"model": "x", "messages": messages, "max_tokens": 5})
        # a trace header that is not a trace: its text is the caller's, and stays out of the log
        bogus = {**headers, "langsmith-trace": "20260101T000000000000Z" + f"{EMAIL}-{'x' * 15}"}
        odd = httpx.post(
            f"{gw.url}/v1/chat/completions",
            json={"model": "mh/mock-gpt", "messages": [{"role": "user", "content": "hi"}]},
            headers=bogus,
        )
        assert ok.status_code == 200 and missing.status_code == 401 and odd.status_code == 200
        stop_process(gw.proc)
        assert gw.proc.stdout is not None
        output = gw.proc.stdout.read().decode()
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    calls = {r["request_id"]: r for r in records if r.get("msg") == "call"}
    first = calls[ok.headers["x-sluicegate-request-id"]]
    assert first["status"] == 200 and first["workspace"] == "ws-test" and first["key"] == "test"
    assert first["trace_id"] == "01a21bb4-fd68-755d-b0c1-f71aa7e8dc2f"
    assert first["model"] == "mock-gpt@echo=1" and first["provider"] == "mh"
    assert first["input_tokens"] > 0 and first["duration_ms"] > 0
    assert any(e.startswith("redaction:redact:US_SSN") for e in first["events"])
    second = calls[missing.headers["x-sluicegate-request-id"]]
    assert second["status"] == 401 and second["error"] == "missing_api_key" and second["route"] == "anthropic_messages"
    assert calls[odd.headers["x-sluicegate-request-id"]].get("trace_id") is None
    for value in (SSN, SECRET, GATEWAY_KEY, EMAIL):
        assert value not in output
