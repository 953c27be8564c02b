"""Nothing one call's provider answer sets is carried into another call: the upstream client keeps
no cookies.

Providers set cookies (load balancers and bot filters do on most APIs). A client that kept them
would send one tenant's cookie with the next tenant's request to the same host: state shared
across callers that the gateway never meant to share, and a way for a provider to link callers
the gateway keeps apart. A recording provider on a host name (`localhost`: cookies of bare IP
addresses are not kept anyway) sets a cookie on every answer; the official OpenAI SDK then calls
through the gateway with two keys of two workspaces.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import openai
import pytest
from tests.conftest import start_gateway

from sluicegate.secrets import hash_key

KEY_A = "sg-test-isolation-a-" + "a" * 30
KEY_B = "sg-test-isolation-b-" + "b" * 30
ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


class CookieProvider(BaseHTTPRequestHandler):
    seen: list[str | None] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        type(self).seen.append(self.headers.get("cookie"))
        body = json.dumps(ANSWER).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        n = len(type(self).seen)
        self.send_header("set-cookie", f"lb_affinity=caller-{n}; Path=/; Max-Age=3600")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def provider() -> Iterator[str]:
    CookieProvider.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), CookieProvider)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://localhost:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def test_a_cookie_a_provider_sets_never_goes_with_a_later_call(provider: str, tmp_path: Path) -> None:
    config = tmp_path / "sluicegate.toml"
    config.write_text(
        f"""
[providers.cookies]
kind = "openai_compatible"
base_url = "{provider}"
api_key = "sk-provider"

[routing]
default_openai = "cookies"

[[keys]]
name = "a"
workspace = "ws-a"
sha256 = "{hash_key(KEY_A)}"

[[keys]]
name = "b"
workspace = "ws-b"
sha256 = "{hash_key(KEY_B)}"
"""
    )
    with start_gateway(config) as gateway:
        for key in (KEY_A, KEY_B, KEY_A):
            with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0) as client:
                raw = client.chat.completions.with_raw_response.create(
                    model="m", messages=[{"role": "user", "content": "hi"}]
                )
            assert raw.parse().choices[0].message.content == "ok"
            assert "set-cookie" not in raw.headers  # nor does the provider's cookie reach the caller
    assert CookieProvider.seen == [None, None, None]
