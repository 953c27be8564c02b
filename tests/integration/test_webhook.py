"""The webhook sink: policy events arrive in JSON batches signed the Standard Webhooks way, verified
by that specification's own library (`standardwebhooks`), with ids and counts, never values."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from tests.conftest import GATEWAY_KEY, Server, gateway_config, start_gateway
from tests.integration.test_langsmith_wire import call

from sluicegate.config import ConfigError, WebhookSettings, load_settings
from sluicegate.observe.webhook import WebhookSink

EMAIL = "jane.doe@example.com"
SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()


class Receiver:
    """Records each POST's headers and body; answers the statuses in `statuses` first, then 204."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                outer.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(outer.statuses.pop(0) if outer.statuses else 204)
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.received) >= count, f"{len(self.received)} of {count} deliveries arrived"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_events_reach_the_webhook_signed(mock_server: Server, tmp_path: Path, receiver: Receiver) -> None:
    extra = f'[webhook]\nurl = "{receiver.url}"\nsecret = "{SECRET}"\ninterval_s = 0.2\nbatch = 1\n'
    with start_gateway(gateway_config(tmp_path / "c.toml", mock_server.url, extra)) as gw:
        ids = []
        for n in range(3):
            r = httpx.post(
                f"{gw.url}/v1/chat/completions",
                json={"model": "mh/mock-gpt", "messages": [{"role": "user", "content": f"mail {n}{EMAIL}"}]},
                headers={"authorization": f"Bearer {GATEWAY_KEY}"},
            )
            assert r.status_code == 200
            ids.append(r.headers["x-sluicegate-request-id"])
        receiver.wait(3)
    verifier = Webhook(SECRET)
    events = []
    for headers, body in receiver.received:
        events += verifier.verify(body, headers)["events"]  # the library's check: id, timestamp, signature
        # the earlier format, kept (deprecated) for one release: keyed by the secret's text
        legacy = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["x-sluicegate-signature"], legacy)
        assert EMAIL.encode() not in body and b"jane" not in body
    assert len({h["webhook-id"] for h, _ in receiver.received}) == 3  # one id a message
    assert sorted(e["request_id"] for e in events) == sorted(ids)
    event = events[0]
    assert event["workspace_id"] == "ws-test"
    assert (event["policy"], event["action"], event["entity"], event["count"]) == ("redaction", "redact", "EMAIL", 1)
    # A receiver refuses a body changed on the way, and a signature made with another secret.
    headers, body = receiver.received[0]
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        verifier.verify(body.replace(b'"count":1', b'"count":9'), headers)
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook("whsec_" + base64.b64encode(os.urandom(32)).decode()).verify(body, headers)


async def deliver(receiver: Receiver, secret: str, clock: float | None = None) -> WebhookSink:
    settings = WebhookSettings(url=receiver.url, secret=secret, interval_s=0.01)
    sink = WebhookSink(settings, (lambda: clock) if clock is not None else time.time)
    await sink.start()
    sink.submit(call(1))
    await sink.stop()
    return sink


async def test_a_message_outside_the_replay_window_is_refused(receiver: Receiver) -> None:
    # Signed ten minutes ago (a replayed or long-delayed message): the library's 5-minute window refuses it.
    await deliver(receiver, SECRET, clock=time.time() - 600)
    await deliver(receiver, SECRET, clock=time.time() + 600)
    await deliver(receiver, SECRET)
    (old_h, old_b), (new_h, new_b), (now_h, now_b) = receiver.received
    verifier = Webhook(SECRET)
    with pytest.raises(WebhookVerificationError, match="too old"):
        verifier.verify(old_b, old_h)
    with pytest.raises(WebhookVerificationError, match="too new"):
        verifier.verify(new_b, new_h)
    assert verifier.verify(now_b, now_h)["events"][0]["entity"] == "EMAIL_ADDRESS"
    assert abs(int(now_h["webhook-timestamp"]) - time.time()) < 5


async def test_a_retry_keeps_the_id_and_is_signed_again(receiver: Receiver) -> None:
    receiver.statuses = [503]
    sink = await deliver(receiver, SECRET)
    assert (sink.failed, sink.dropped) == (0, 0)
    (first_h, first_b), (second_h, second_b) = receiver.received
    assert first_h["webhook-id"] == second_h["webhook-id"] and first_b == second_b
    assert Webhook(SECRET).verify(second_b, second_h)


async def test_a_secret_without_the_prefix_keys_by_its_bytes(receiver: Receiver) -> None:
    await deliver(receiver, "s3cret-from-before")
    ((headers, body),) = receiver.received
    assert Webhook(b"s3cret-from-before").verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body, headers)


@pytest.mark.parametrize(
    "secret",
    [
        "whsec_not*base64",
        "whsec_" + base64.b64encode(b"short").decode(),
        "whsec_" + base64.b64encode(b"x" * 65).decode(),
    ],
)
def test_a_malformed_standard_secret_is_refused_without_echoing_it(secret: str) -> None:
    with pytest.raises(ConfigError, match=r"webhook\.secret: .*whsec_ secret must") as caught:
        load_settings(environ={"SLUICEGATE_WEBHOOK__SECRET": secret})
    assert secret not in str(caught.value) and secret[6:] not in str(caught.value)
