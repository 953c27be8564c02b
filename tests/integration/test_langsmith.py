"""LangSmith: the gateway's run joins the agent's trace (real SDK on both sides), carries usage and
cost, gets feedback for policy events, never carries a planted value, and never slows requests.

The LangSmith stand-in is a small HTTP server that records what the SDKs post."""

from __future__ import annotations

import email
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anthropic
import httpx
import langsmith
import openai
import pytest
import python_multipart
from langsmith.run_helpers import get_current_run_tree
from tests.conftest import GATEWAY_KEY, Server, gateway_config, scrape, start_gateway

EMAIL = "jane.doe@example.com"
AWS = "AKIAIOSFODNN7EXAMPLE"


# What a LangSmith server of today answers at /info: the SDK then sends feedback as multipart parts.
INFO = {
    "version": "0.10.0",
    "batch_ingest_config": {
        "use_multipart_endpoint": True,
        "size_limit": 100,
        "size_limit_bytes": 20_000_000,
        "scale_up_qsize_trigger": 1000,
        "scale_up_nthreads_limit": 16,
        "scale_down_nempty_trigger": 4,
    },
    "instance_flags": {},
}


def strict_parts(content_type: str, body: bytes) -> list[tuple[str, bytes]]:
    """The (name, data) of each part of a multipart/form-data body, by a strict streaming parser
    (python-multipart's); every part must be JSON with a Content-Length that matches its data."""
    _, params = python_multipart.multipart.parse_options_header(content_type)
    parts: list[tuple[str, bytes]] = []
    headers: dict[bytes, bytes] = {}
    field, value, data = bytearray(), bytearray(), bytearray()

    def header_end() -> None:
        headers[bytes(field).lower()] = bytes(value)
        field.clear()
        value.clear()

    def part_end() -> None:
        _, disposition = python_multipart.multipart.parse_options_header(headers[b"content-disposition"])
        assert headers[b"content-type"] == b"application/json"
        assert int(headers[b"content-length"]) == len(data), "a part's Content-Length is not its size"
        parts.append((disposition[b"name"].decode(), bytes(data)))
        headers.clear()
        data.clear()

    parser = python_multipart.MultipartParser(
        params[b"boundary"],
        callbacks={
            "on_header_field": lambda b, s, e: field.extend(b[s:e]),
            "on_header_value": lambda b, s, e: value.extend(b[s:e]),
            "on_header_end": header_end,
            "on_part_data": lambda b, s, e: data.extend(b[s:e]),
            "on_part_end": part_end,
        },
        max_size=len(body),
    )
    assert parser.write(body) == len(body)
    parser.finalize()
    for _, raw in parts:
        json.loads(raw)
    return parts


class StandIn:
    """Records runs (multipart and batch) and feedback; optionally stalls every POST, or answers
    the next POSTs with the statuses in `statuses`. Multipart bodies are read by two parsers."""

    def __init__(self, stall_s: float = 0.0, info: dict[str, Any] | None = None) -> None:
        self.raw: list[bytes] = []
        self.api_keys: set[str] = set()
        self.runs: dict[str, dict[str, Any]] = {}
        self.parts: list[list[str]] = []  # the part names of each multipart POST
        self.feedback: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.posts = 0
        self.stall_s = stall_s
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                body = json.dumps(info).encode() if info is not None and self.path == "/info" else b""
                self.send_response(200 if body else 404)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if outer.stall_s:
                    time.sleep(outer.stall_s)
                with outer.lock:
                    outer.posts += 1
                    status = outer.statuses.pop(0) if outer.statuses else 200
                if status == 200:
                    outer.api_keys.add(self.headers.get("x-api-key", ""))
                    outer.record(self.path, self.headers.get("content-type", ""), body)
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def record(self, path: str, content_type: str, body: bytes) -> None:
        with self.lock:
            self.raw.append(body)
            if path.startswith("/runs/multipart"):
                self.parts.append([name for name, _ in strict_parts(content_type, body)])
                message = email.message_from_bytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
                for part in message.walk():
                    name = part.get_param("name", header="content-disposition")
                    if not name or part.is_multipart():
                        continue
                    kind, run_id, *field = str(name).split(".")
                    data = json.loads(part.get_payload(decode=True) or b"null")
                    if kind == "feedback":
                        self.feedback.append(data)
                        continue
                    run = self.runs.setdefault(run_id, {})
                    if field:
                        run[field[0]] = data
                    else:
                        run.update(data)
            elif path.startswith("/runs/batch"):
                data = json.loads(body)
                for run in data.get("post", []) + data.get("patch", []):
                    self.runs.setdefault(str(run["id"]), {}).update(run)
            elif path.startswith("/feedback"):
                self.feedback.append(json.loads(body))

    def wait_for(self, predicate: Any, timeout: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = predicate(self)
            if found:
                return found
            time.sleep(0.1)
        raise AssertionError("the stand-in never received it")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def standin() -> Iterator[StandIn]:
    s = StandIn()
    yield s
    s.close()


@pytest.fixture(scope="module")
def gw(mock_server: Server, standin: StandIn, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    extra = f'[langsmith]\nenabled = true\nendpoint = "{standin.url}"\napi_key = "ls-test"\nproject = "gw-project"\n'
    with start_gateway(gateway_config(tmp_path_factory.mktemp("ls") / "c.toml", mock_server.url, extra)) as server:
        yield server


def gateway_run(standin: StandIn, request_id: str) -> dict[str, Any]:
    def find(s: StandIn) -> dict[str, Any] | None:
        for run in s.runs.values():
            metadata = (run.get("extra") or {}).get("metadata") or {}
            if metadata.get("sluicegate_request_id") == request_id and run.get("outputs"):
                return run
        return None

    return standin.wait_for(find)  # type: ignore[no-any-return]


def test_the_gateway_run_joins_the_agents_trace(gw: Server, standin: StandIn) -> None:
    agent_client = langsmith.Client(api_url=standin.url, api_key="agent-key")
    seen: dict[str, Any] = {}

    @langsmith.traceable(name="agent", client=agent_client)
    def agent() -> str:
        parent = get_current_run_tree()
        assert parent is not None
        seen["id"], seen["trace_id"], seen["dotted_order"] = str(parent.id), str(parent.trace_id), parent.dotted_order
        with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client:
            raw = client.chat.completions.with_raw_response.create(
                model="mh/mock-gpt@echo=1",
                messages=[{"role": "user", "content": f"mail {EMAIL} key {AWS}"}],
                extra_headers=parent.to_headers(),
            )
            seen["request_id"] = raw.headers["x-sluicegate-request-id"]
            return raw.parse().choices[0].message.content or ""

    with langsmith.tracing_context(enabled=True, project_name="agent-project"):
        agent()
    agent_client.flush()
    run = gateway_run(standin, seen["request_id"])
    assert run["run_type"] == "llm"
    assert str(run["trace_id"]) == seen["trace_id"]
    assert str(run["parent_run_id"]) == seen["id"]
    assert run["dotted_order"].startswith(seen["dotted_order"] + ".")
    assert run["session_name"] == "agent-project"  # the caller's project, from the baggage
    metadata = run["extra"]["metadata"]
    assert metadata["ls_model_name"] == "mock-gpt@echo=1" and metadata["ls_provider"]
    assert metadata["usage_metadata"]["input_tokens"] > 0 and metadata["usage_metadata"]["output_tokens"] > 0
    assert any(p.startswith("redaction:redact:EMAIL") for p in metadata["sluicegate_policy"])
    feedback = standin.wait_for(lambda s: [f for f in s.feedback if str(f.get("run_id")) == str(run["id"])])
    assert {f["key"] for f in feedback} == {"sluicegate.redaction.redact"}
    # counts by entity type (the echoed reply also carries the upstream's host address)
    assert feedback[0]["value"]["EMAIL"] == 1 and feedback[0]["value"]["AWS_ACCESS_KEY_ID"] == 1
    assert feedback[0]["score"] == sum(feedback[0]["value"].values())
    everything = b"".join(standin.raw)
    for value in (EMAIL, AWS, "jane.doe"):
        assert value.encode() not in everything


def test_the_callers_baggage_metadata_and_tags_are_redacted_in_the_gateway_run(gw: Server, standin: StandIn) -> None:
    """An agent's `traceable(metadata=..., tags=...)` travels in `baggage` and is copied onto the
    gateway's run, which may go to another account (the operator's): it is redacted like the rest."""
    agent_client = langsmith.Client(api_url=standin.url, api_key="agent-key")
    seen: dict[str, Any] = {}
    secret_key = "ssn 536-22-1234"

    @langsmith.traceable(
        name="agent",
        client=agent_client,
        metadata={"customer": EMAIL, secret_key: "x", "case": "A-1"},
        tags=[f"user {EMAIL}", "support"],
    )
    def agent() -> None:
        parent = get_current_run_tree()
        assert parent is not None
        with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client:
            raw = client.chat.completions.with_raw_response.create(
                model="mh/mock-gpt", messages=[{"role": "user", "content": "hi"}], extra_headers=parent.to_headers()
            )
            seen["request_id"] = raw.headers["x-sluicegate-request-id"]

    with langsmith.tracing_context(enabled=True, project_name="agent-project"):
        agent()
    agent_client.flush()
    run = gateway_run(standin, seen["request_id"])
    metadata = run["extra"]["metadata"]
    assert metadata["customer"] == "[REDACTED:EMAIL]" and metadata["case"] == "A-1"
    assert "ssn [REDACTED:US_SSN]" in metadata and secret_key not in metadata
    assert "user [REDACTED:EMAIL]" in run["tags"] and "support" in run["tags"]
    assert EMAIL not in json.dumps(run, default=str) and "536-22-1234" not in json.dumps(run, default=str)


def test_without_headers_the_run_is_a_root_in_the_configured_project(gw: Server, standin: StandIn) -> None:
    r = httpx.post(
        f"{gw.url}/v1/messages",
        json={
            "model": "mh/mock-claude",
            "max_tokens": 20,
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
        },
        headers={"authorization": f"Bearer {GATEWAY_KEY}"},
    )
    assert r.status_code == 200
    run = gateway_run(standin, r.headers["x-sluicegate-request-id"])
    assert run["session_name"] == "gw-project" and run.get("parent_run_id") is None
    assert str(run["trace_id"]) == str(run["id"])
    assert run["outputs"]["content"][0]["text"]  # the streamed output, assembled


def test_langsmiths_own_variables_configure_the_gateway(mock_server: Server, tmp_path: Path) -> None:
    # No [langsmith] in the file: LangSmith's own variables switch tracing on and say where and as whom.
    standin = StandIn()
    env = {
        "LANGSMITH_TRACING": "true",
        "LANGSMITH_ENDPOINT": standin.url,
        "LANGSMITH_PROJECT": "env-project",
        "LANGSMITH_API_KEY": "ls-env-key",
    }
    try:
        with start_gateway(gateway_config(tmp_path / "c.toml", mock_server.url), env) as gw:
            r = httpx.post(
                f"{gw.url}/v1/chat/completions",
                json={"model": "mh/mock-gpt", "messages": [{"role": "user", "content": "hi"}]},
                headers={"authorization": f"Bearer {GATEWAY_KEY}"},
            )
            assert r.status_code == 200
            run = gateway_run(standin, r.headers["x-sluicegate-request-id"])
        assert run["session_name"] == "env-project" and run.get("parent_run_id") is None
        assert standin.api_keys == {"ls-env-key"}
    finally:
        standin.close()


def test_a_stalled_langsmith_never_slows_requests(mock_server: Server, tmp_path: Path) -> None:
    standin = StandIn(stall_s=3.0)
    extra = f'[langsmith]\nenabled = true\nendpoint = "{standin.url}"\napi_key = "k"\nqueue_size = 10\n'
    try:
        with start_gateway(gateway_config(tmp_path / "c.toml", mock_server.url, extra)) as server, httpx.Client() as c:
            times = []
            for _ in range(40):  # each call has a redaction event, so each needs a (stalled) feedback post
                t = time.perf_counter()
                r = c.post(
                    f"{server.url}/v1/chat/completions",
                    json={"model": "mh/mock-gpt", "messages": [{"role": "user", "content": f"mail {EMAIL}"}]},
                    headers={"authorization": f"Bearer {GATEWAY_KEY}"},
                )
                times.append(time.perf_counter() - t)
                assert r.status_code == 200
            assert sorted(times)[len(times) // 2] < 0.1 and max(times) < 1.0
            metrics = scrape(server.url)
            dropped = [
                line
                for line in metrics.splitlines()
                if line.startswith('sluicegate_queue_dropped_total{queue="langsmith"}')
            ]
            assert dropped and float(dropped[0].split()[-1]) > 0
    finally:
        standin.close()


def test_a_workspace_langsmith_secret_picks_key_and_project(mock_server: Server, tmp_path: Path) -> None:
    from tests.integration.test_control_gateway import _env, _seed
    from tests.unit.control.pg import MASTER_KEY

    from sluicegate.control.settings import ControlSettings

    standin = StandIn()
    settings = ControlSettings(database_url=f"sqlite:///{tmp_path / 'control.db'}", master_key=MASTER_KEY)
    seed = _seed(settings)
    extra = (
        f'[langsmith]\nenabled = true\nendpoint = "{standin.url}"\napi_key = "global-key"\nproject = "gw-project"\n'
        f'\n[control]\nenabled = true\ndatabase_url = "{settings.database_url}"\npoll_interval_s = 0.25\n'
    )
    try:
        with start_gateway(gateway_config(tmp_path / "c.toml", mock_server.url, extra), _env()) as gw:
            ws = seed["ws"]["id"] if isinstance(seed["ws"], dict) else seed["ws"]
            secret = {"value": "ws-langsmith-key", "project": "ws-project"}
            admin = {"authorization": f"Bearer {seed['token']}"}
            put = httpx.put(f"{gw.url}/admin/v1/workspaces/{ws}/secrets/langsmith", json=secret, headers=admin)
            assert put.status_code == 200
            time.sleep(0.6)  # the view reloads within a poll interval
            r = httpx.post(
                f"{gw.url}/v1/chat/completions",
                json={"model": "mh/mock-gpt", "messages": [{"role": "user", "content": "hi"}]},
                headers={"authorization": f"Bearer {seed['key']}"},
            )
            assert r.status_code == 200
            run = gateway_run(standin, r.headers["x-sluicegate-request-id"])
        assert run["session_name"] == "ws-project"
        assert "ws-langsmith-key" in standin.api_keys
    finally:
        standin.close()


@pytest.mark.parametrize("route", ["openai_chat", "openai_responses", "anthropic_messages"])
def test_a_streamed_run_holds_exactly_what_the_client_read(gw: Server, standin: StandIn, route: str) -> None:
    """Values cut across deltas are redacted (text held back, events rewritten and added), and the
    run's output is the text the client assembled, to the character."""
    # A reply in 3-character deltas that ends with a value: the redacted text held back at the end
    # goes out at the stream's end (in an event of its own for Messages).
    knobs = "@chunk_size=3,reply=" + quote(f"key {AWS}, write to {EMAIL}", safe="")
    prompt = "hello"
    if route == "anthropic_messages":
        client = anthropic.Anthropic(base_url=gw.url, api_key=GATEWAY_KEY, max_retries=0)
        with (
            client,
            client.messages.stream(
                model=f"mh/mock-claude{knobs}", max_tokens=400, messages=[{"role": "user", "content": prompt}]
            ) as stream,
        ):
            text = "".join(stream.text_stream)
            request_id = stream.response.headers["x-sluicegate-request-id"]
    else:
        with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=GATEWAY_KEY, max_retries=0) as client:
            if route == "openai_chat":
                with client.chat.completions.with_streaming_response.create(
                    model=f"mh/mock-gpt{knobs}", messages=[{"role": "user", "content": prompt}], stream=True
                ) as response:
                    request_id = response.headers["x-sluicegate-request-id"]
                    text = "".join(c.choices[0].delta.content or "" for c in response.parse() if c.choices)
            else:
                with client.responses.with_streaming_response.create(
                    model=f"mh/mock-gpt{knobs}", input=prompt, stream=True
                ) as response:
                    request_id = response.headers["x-sluicegate-request-id"]
                    text = "".join(e.delta for e in response.parse() if e.type == "response.output_text.delta")
    assert text.startswith("key ") and EMAIL not in text and AWS not in text  # redacted, across deltas
    run = gateway_run(standin, request_id)
    outputs = run["outputs"]
    if route == "openai_chat":
        assert outputs["choices"][0]["message"]["content"] == text
    elif route == "anthropic_messages":
        assert "".join(block["text"] for block in outputs["content"]) == text
    else:
        assert outputs["output_text"] == text


@pytest.mark.parametrize("action", ["monitor", "pseudonymize"])
def test_a_workspaces_own_type_is_scrubbed_from_its_runs(mock_server: Server, tmp_path: Path, action: str) -> None:
    """A value of a type only a workspace's policy defines, which redaction lets through (monitor) or
    puts back for the client (pseudonymize), is scrubbed from the LangSmith run by that workspace's
    own patterns, not only the configuration's."""
    from tests.integration.test_control_gateway import _env, _seed
    from tests.unit.control.pg import MASTER_KEY

    from sluicegate.control.settings import ControlSettings

    standin = StandIn()
    settings = ControlSettings(database_url=f"sqlite:///{tmp_path / 'control.db'}", master_key=MASTER_KEY)
    seed = _seed(settings)
    extra = (
        f'[langsmith]\nenabled = true\nendpoint = "{standin.url}"\napi_key = "global-key"\nproject = "gw-project"\n'
        f'\n[control]\nenabled = true\ndatabase_url = "{settings.database_url.reveal()}"\npoll_interval_s = 0.25\n'
    )
    ticket = "TCK-482913"
    try:
        with start_gateway(gateway_config(tmp_path / "c.toml", mock_server.url, extra), _env()) as gw:
            ws = seed["ws"]["id"] if isinstance(seed["ws"], dict) else seed["ws"]
            policy = {
                "custom_patterns": [{"entity": "TICKET", "pattern": "TCK-[0-9]{6}"}],
                # monitor both ways; pseudonymize is a request action (the response gets the value back)
                "redaction": [
                    {
                        "entities": ["TICKET"],
                        "action": action,
                        "direction": "both" if action == "monitor" else "request",
                    }
                ],
            }
            admin = {"authorization": f"Bearer {seed['token']}"}
            put = httpx.put(f"{gw.url}/admin/v1/workspaces/{ws}/policy", json=policy, headers=admin)
            assert put.status_code == 200, put.text
            time.sleep(0.6)  # the view reloads within a poll interval
            r = httpx.post(
                f"{gw.url}/v1/chat/completions",
                json={"model": "mh/mock-gpt@echo", "messages": [{"role": "user", "content": f"see {ticket}"}]},
                headers={"authorization": f"Bearer {seed['key']}"},
            )
            assert r.status_code == 200
            assert ticket in r.text  # the client gets it back (echoed, or restored)
            run = gateway_run(standin, r.headers["x-sluicegate-request-id"])
        assert any(e.startswith(f"redaction:{action}:TICKET") for e in run["extra"]["metadata"]["sluicegate_policy"])
        assert ticket not in json.dumps(run["inputs"]) and ticket not in json.dumps(run["outputs"])
        assert "[REDACTED:TICKET]" in json.dumps(run["inputs"]) + json.dumps(run["outputs"])
    finally:
        standin.close()
