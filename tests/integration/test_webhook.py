"""The webhook sink: policy events arrive in signed JSON batches, with ids and counts, never values."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from tests.conftest import GATEWAY_KEY, Server, gateway_config, start_gateway

EMAIL = "jane.doe@example.com"


def test_events_reach_the_webhook_signed(mock_server: Server, tmp_path: Path) -> None:
    received: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            received.append((dict(self.headers), self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    extra = (
        f'[webhook]\nurl = "http://127.0.0.1:{server.server_address[1]}/hook"\nsecret = "s3cret"\ninterval_s = 0.2\n'
    )
    try:
        with start_gateway(gateway_config(tmp_path / "c.toml", mock_server.url, extra)) as gw:
            r = httpx.post(
                f"{gw.url}/v1/chat/completions",
                json={"model": "mh/mock-gpt", "messages": [{"role": "user", "content": f"mail {EMAIL}"}]},
                headers={"authorization": f"Bearer {GATEWAY_KEY}"},
            )
            assert r.status_code == 200
            deadline = time.monotonic() + 5
            while not received and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        server.shutdown()
        server.server_close()
    headers, body = received[0]
    signature = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-sluicegate-signature"], signature)
    (event,) = json.loads(body)["events"]
    assert event["request_id"] == r.headers["x-request-id"] and event["workspace_id"] == "ws-test"
    assert (event["policy"], event["action"], event["entity"], event["count"]) == ("redaction", "redact", "EMAIL", 1)
    assert EMAIL.encode() not in body and b"jane" not in body
