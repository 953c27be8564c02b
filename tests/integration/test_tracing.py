"""OpenTelemetry spans by OTLP/HTTP: the real openai SDK as the agent (with a W3C `traceparent`),
`sluicegate serve` in front of the mock provider, and an OTLP/HTTP receiver stand-in that records
what the exporter posts and decodes it with opentelemetry-proto's own message classes. The spans
continue the caller's trace, carry the GenAI attributes, and hold no prompt or reply text."""

from __future__ import annotations

import http.server
import secrets
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from tests.conftest import GATEWAY_KEY, Server, free_port, gateway_config, start_gateway

from sluicegate.config import load_settings

PROMPT = "the quarterly figures for project bluefinch are"


class Receiver:
    """An OTLP/HTTP traces endpoint on 127.0.0.1: records each POST (path, content type, body)."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, str, bytes]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                receiver.posts.append((self.path, self.headers.get("content-type", ""), body))
                reply = b""  # an empty ExportTraceServiceResponse: everything accepted
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spans(self) -> list[Any]:
        out = []
        for path, content_type, body in self.posts:
            assert path == "/v1/traces" and content_type == "application/x-protobuf"
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    out.extend((resource, span) for span in scope.spans)
        return out

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.spans()
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{len(self.spans())} spans arrived, {count} expected")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()


def attrs(span: Any) -> dict[str, Any]:
    def plain(v: AnyValue) -> Any:
        return getattr(v, v.WhichOneof("value"))

    return {a.key: plain(a.value) for a in span.attributes}


def test_spans_continue_the_callers_trace_with_genai_attributes(
    mock_server: Server, receiver: Receiver, tmp_path: Path
) -> None:
    env = {"SLUICEGATE_OBSERVABILITY__OTLP_ENDPOINT": receiver.url, "SLUICEGATE_OBSERVABILITY__INTERVAL_S": "0.1"}
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    traceparent = f"00-{trace_id}-{parent_id}-01"
    with start_gateway(gateway_config(tmp_path / "c.toml", mock_server.url), env) as server:
        with openai.OpenAI(
            base_url=f"{server.url}/v1",
            api_key=GATEWAY_KEY,
            default_headers={"traceparent": traceparent, "tracestate": "vendor=abc"},
        ) as client:
            whole = client.chat.completions.create(model="mh/mock-gpt", messages=[{"role": "user", "content": PROMPT}])
            stream = client.chat.completions.create(
                model="mh/mock-gpt", messages=[{"role": "user", "content": PROMPT}], stream=True
            )
            streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            with pytest.raises(openai.NotFoundError):  # routed nowhere: no model, so no span
                client.chat.completions.create(model="nowhere/x", messages=[{"role": "user", "content": "x"}])
            unsampled = {"traceparent": f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00"}
            client.chat.completions.create(  # the caller's trace is not sampled: no span either
                model="mh/mock-gpt", messages=[{"role": "user", "content": "x"}], extra_headers=unsampled
            )
        found = receiver.wait_for(2)
        time.sleep(0.3)
        assert len(receiver.spans()) == 2
    resource, span = found[0]
    service = {a.key: a.value.string_value for a in resource.resource.attributes}
    assert service["service.name"] == "sluicegate"
    for _, span in found:
        assert span.trace_id.hex() == trace_id and span.parent_span_id.hex() == parent_id
        assert len(span.span_id) == 8 and span.span_id.hex() != parent_id
        assert span.trace_state == "vendor=abc"
        assert span.name == "chat mock-gpt" and span.kind == span.SPAN_KIND_CLIENT
        a = attrs(span)
        assert a["gen_ai.operation.name"] == "chat"
        assert a["gen_ai.provider.name"] == a["gen_ai.system"] == "mock"
        assert a["gen_ai.request.model"] == a["gen_ai.response.model"] == "mock-gpt"
        assert a["gen_ai.usage.input_tokens"] > 0 and a["gen_ai.usage.output_tokens"] > 0
        assert a["server.address"] == "127.0.0.1" and a["server.port"] == mock_server.port
        assert a["http.response.status_code"] == 200 and "error.type" not in a
        assert span.end_time_unix_nano > span.start_time_unix_nano
    assert {attrs(s).get("gen_ai.request.stream", False) for _, s in found} == {True, False}
    # counts and names only: neither the prompt nor the reply is in anything posted
    reply = whole.choices[0].message.content
    assert reply and streamed
    for _, _, body in receiver.posts:
        for text in (PROMPT, reply[:20], streamed[:20], GATEWAY_KEY):
            assert text.encode() not in body


def test_the_standard_variable_turns_spans_on_and_errors_are_marked(
    mock_server: Server, receiver: Receiver, tmp_path: Path
) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_SERVICE_NAME": "gw-test"}
    env["SLUICEGATE_OBSERVABILITY__INTERVAL_S"] = "0.1"
    with start_gateway(gateway_config(tmp_path / "c.toml", mock_server.url), env) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=GATEWAY_KEY, max_retries=0)
        with client, pytest.raises(openai.APIError):
            client.chat.completions.create(model="dead/some-model", messages=[{"role": "user", "content": "x"}])
        found = receiver.wait_for(1)
    resource, span = found[0]
    assert {a.key: a.value.string_value for a in resource.resource.attributes}["service.name"] == "gw-test"
    assert span.parent_span_id == b""  # no traceparent: a trace of its own
    dead = span
    assert attrs(dead)["gen_ai.request.model"] == "some-model"
    assert attrs(dead)["error.type"] == "upstream_unreachable" and dead.status.code == dead.status.STATUS_CODE_ERROR


def test_off_by_default_and_the_tracing_sdk_not_even_imported(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from sluicegate.app import App\n"
        "from sluicegate.config import load_settings\n"
        "app = App(load_settings(environ={}), environ={})\n"
        "assert app.tracing is None\n"
        "prefixes = ('opentelemetry.sdk.trace', 'opentelemetry.exporter', 'sluicegate.observe.tracing')\n"
        "assert not [m for m in sys.modules if m.startswith(prefixes)], 'the tracing SDK was imported'\n"
    )
    import subprocess

    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert (
        load_settings(
            environ={"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}
        ).observability.endpoint({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"})
        is None
    )
