"""Every string is scanned: a property test over the official SDKs' own type definitions.

Requests, responses and stream events are generated from the `openai` and `anthropic` packages'
types (every field, optional ones included, and every kind of content block, item and event) with
an SSN or a card number planted in every string leaf. The gateway sits between a client (raw
HTTP, so nothing is dropped by a client's parsing) and a recording upstream on a real socket:

- requests: what reached the upstream must hold none of the planted values;
- responses, complete and streamed: what reached the client must hold none of them, also where a
  streamed text is cut across events and the stream's bytes across tiny socket writes.

Only strings the format names as non-text (ids, type tags, roles, model names, opaque signatures,
base64 media) may go unscanned. The test does not take the format's word for which those are: a
string the gateway skips keeps its planted value unless its key is in this test's own list of
non-text names (`NON_TEXT`), and then the value would arrive and the test fails.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import random
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anthropic
import anthropic.types as at
import anthropic.types.message_create_params as amp
import httpx
import openai
import openai.types.chat as oc
import openai.types.chat.completion_create_params as ocp
import openai.types.embedding_create_params as oep
import openai.types.responses as orr
import openai.types.responses.response_create_params as orp
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from tests.conftest import GATEWAY_KEY, start_gateway
from tests.integration.sdk_instances import Builder, fields, union_members

from sluicegate.formats import ANTHROPIC_MESSAGES, OPENAI_CHAT, OPENAI_EMBEDDINGS, OPENAI_RESPONSES, WireFormat
from sluicegate.formats import anthropic_messages as am
from sluicegate.formats import openai_chat as ch
from sluicegate.formats import openai_responses as rs
from sluicegate.formats.slots import TextSlot, text_slots
from sluicegate.secrets import hash_key

VALUES = ("536-22-1234", "4111 1111 1111 1111", "5500-0000-0000-0004")
# A planted leaf: the value in plain text, or inside a JSON document (tool arguments hold JSON). One
# draw per leaf: the bodies have hundreds of leaves, and each draw spends the example's budget.
LEAF = st.sampled_from(
    [f"{a} {v} {b}" for v in VALUES for a, b in (("alpha", "note"), ("ref", "alpha"))]
    + [json.dumps({"value": f"see {v}", "n": [1]}) for v in VALUES]
)
BUILD = Builder(LEAF)
BENIGN = "n0"

# This test's own idea of what is not text: the keys a gateway may leave unscanned.
NON_TEXT = frozenset(
    {
        "id", "type", "role", "model", "object", "status", "tool_call_id", "tool_use_id", "call_id", "item_id",
        "file_id", "tool_id", "skill_id", "container_id", "approval_request_id", "previous_response_id",
        "conversation", "signature", "encrypted_content", "encrypted_index", "encrypted_stdout", "file_data",
        "partial_image_b64", "system_fingerprint", "service_tier", "finish_reason", "stop_reason", "obfuscation",
        "detail", "format", "media_type", "ttl", "expires_at", "encoding_format",
    }
)  # fmt: skip


def non_text(container: dict[str, Any] | list[Any], key: str | int, parent: str | int | None) -> bool:
    """Whether this test accepts `container[key]` as a string that is not text."""
    if not isinstance(key, str) or not isinstance(container, dict):
        return False
    if key in NON_TEXT:
        return True
    kind = container.get("type")
    if key == "data":  # base64 media and encrypted thinking; a text document's data is text
        return kind in ("base64", "redacted_thinking") or parent in ("input_audio", "audio")
    return key == "result" and kind == "image_generation_call"  # a generated image, base64


def leaves(value: Any, parent: str | int | None = None) -> Iterator[tuple[Any, str | int, str | int | None]]:
    """Every string leaf as (container, key, the container's own key in its parent)."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        if isinstance(v, str):
            yield value, k, parent
        else:
            yield from leaves(v, k if isinstance(value, dict) else parent)


def unplant(value: Any, scanned: list[TextSlot]) -> None:
    """Give the strings the gateway does not scan a benign value, where this test agrees they are not text."""
    seen = {(id(s.container), s.key) for s in scanned}
    seen |= {(id(e), "token") for s in scanned if hasattr(s, "entries") for e in s.entries}  # logprob runs
    for container, key, parent in list(leaves(value)):
        if (id(container), key) not in seen and non_text(container, key, parent) and found([container[key]]):
            container[key] = BENIGN


def recut_runs(value: Any, rng: random.Random) -> None:
    """Cut the text of every logprob run (`[{"token": ...}, ...]`) into short tokens, so planted values
    cross token boundaries, as real tokens do."""
    for v in value.values() if isinstance(value, dict) else value if isinstance(value, list) else ():
        if isinstance(v, list) and v and all(isinstance(e, dict) and isinstance(e.get("token"), str) for e in v):
            text = "".join(e["token"] for e in v)
            cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, len(text) // 3))) if len(text) > 1 else []
            bounds = [0, *cuts, len(text)]
            tokens = [text[a:b] for a, b in itertools.pairwise(bounds)]
            v[:] = [{**v[0], "token": t, "bytes": list(t.encode()), "top_logprobs": []} for t in tokens]
        else:
            recut_runs(v, rng)


def located(value: Any, at: str = "") -> list[str]:
    """Where in `value` (a parsed body) the planted values are: paths, for a failure's message."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    out = []
    for k, v in items:
        here = f"{at}.{k}" if isinstance(k, str) else f"{at}[{k}]"
        if isinstance(v, str):
            if found([v]):
                out.append(here)
        else:
            out += located(v, here)
    return out


def texts(value: Any) -> Iterator[str]:
    """Every string in `value`, and the strings of any that hold JSON."""
    for container, key, _ in leaves(value):
        s = container[key]
        yield s
        if s[:1] in "{[":
            with contextlib.suppress(ValueError):
                yield from texts(json.loads(s))


def found(strings: Iterator[str] | list[str]) -> list[str]:
    """The planted values among `strings` (as JSON too: a streamed JSON text arrives whole only here)."""
    hits = []
    for s in strings:
        hits += [v for v in VALUES if v in s]
        if s[:1] in "{[":
            with contextlib.suppress(ValueError):
                hits += found(list(texts(json.loads(s))))
    return hits


# ── the upstream and the gateway ─────────────────────────────────────────────────────────────────────


class Recorder(ThreadingHTTPServer):
    """A provider on a real socket: records each request body, answers with `reply`, written in
    the pieces given (chunked transfer encoding, one write per piece)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[bytes] = []
        self.reply: tuple[str, list[bytes]] = ("application/json", [b"{}"])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Recorder

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.server.requests.append(body)
        content_type, pieces = self.server.reply
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for piece in pieces:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _config(path: Path, recorder: Recorder, redaction: str) -> Path:
    path.write_text(
        f"""
[server]
max_body_bytes = 4194304
drain_seconds = 5
ready_grace_s = 0

[upstream]
connect_timeout_s = 2
first_byte_timeout_s = 5
chunk_timeout_s = 5
total_timeout_s = 30

[providers.rec]
kind = "mock"
base_url = "http://127.0.0.1:{recorder.server_address[1]}"
api_key = "sk-upstream-test"

[[keys]]
name = "fields"
workspace = "ws-fields"
sha256 = "{hash_key(GATEWAY_KEY)}"

[redaction]
entities = ["US_SSN", "CREDIT_CARD"]
{redaction}
"""
    )
    return path


@pytest.fixture(scope="module")
def gateway(recorder: Recorder, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Redacts both types both ways, so what is forwarded can be checked."""
    config = _config(tmp_path_factory.mktemp("fields") / "redact.toml", recorder, 'default_action = "redact"')
    with start_gateway(config) as server:
        yield server.url


def call(gateway: str, fmt: WireFormat, body: dict[str, Any]) -> httpx.Response:
    headers = {"authorization": f"Bearer {GATEWAY_KEY}", "anthropic-version": "2023-06-01"}
    return httpx.post(f"{gateway}{fmt.path}", json=body, headers=headers, timeout=30)


# No shrinking: the examples are large, and a failure names the fields a value came through.
EXAMPLES = settings(
    max_examples=30,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)

# ── requests ─────────────────────────────────────────────────────────────────────────────────────────

REQUESTS = {
    "chat": (OPENAI_CHAT, ocp.CompletionCreateParamsBase, {"type": "chat.completion", "choices": []}),
    "messages": (ANTHROPIC_MESSAGES, amp.MessageCreateParamsBase, {"type": "message", "content": []}),
    "responses": (OPENAI_RESPONSES, orp.ResponseCreateParamsBase, {"object": "response", "output": []}),
    "embeddings": (OPENAI_EMBEDDINGS, oep.EmbeddingCreateParams, {"object": "list", "data": []}),
}


@pytest.mark.parametrize("name", list(REQUESTS))
def test_no_planted_value_reaches_the_provider(name: str, gateway: str, recorder: Recorder) -> None:
    fmt, params, reply = REQUESTS[name]

    @EXAMPLES
    @given(BUILD.instances(params))
    def check(body: dict[str, Any]) -> None:
        unplant(body, fmt.request_slots(body))
        body["model"] = "rec/m"
        if "stream" in body:
            body["stream"] = False
        planted = found(texts(body))
        recorder.reply = ("application/json", [json.dumps(reply).encode()])
        recorder.requests.clear()
        r = call(gateway, fmt, body)
        assert r.status_code == 200, r.text
        (seen,) = recorder.requests
        assert planted, "nothing was planted"
        assert not found([seen.decode()]), f"planted values reached the provider in {located(json.loads(seen))}"

    check()


# ── complete responses ───────────────────────────────────────────────────────────────────────────────

RESPONSES = {
    "chat": (OPENAI_CHAT, oc.ChatCompletion, {"model": "rec/m", "messages": [{"role": "user", "content": "hi"}]}),
    "messages": (ANTHROPIC_MESSAGES, at.Message, {"model": "rec/m", "max_tokens": 9, "messages": []}),
    "responses": (OPENAI_RESPONSES, orr.Response, {"model": "rec/m", "input": "hi"}),
}


@pytest.mark.parametrize("name", list(RESPONSES))
def test_no_planted_value_reaches_the_client(name: str, gateway: str, recorder: Recorder) -> None:
    fmt, model, request = RESPONSES[name]

    @EXAMPLES
    @given(BUILD.instances(model), st.randoms(use_true_random=False))
    def check(body: dict[str, Any], rng: random.Random) -> None:
        recut_runs(body, rng)
        unplant(body, fmt.response_slots(body))
        assert found(texts(body)), "nothing was planted"
        recorder.reply = ("application/json", [json.dumps(body).encode()])
        r = call(gateway, fmt, request)
        assert r.status_code == 200, r.text
        assert not found([r.text]), f"planted values reached the client in {located(r.json())}"

    check()


# ── streams ──────────────────────────────────────────────────────────────────────────────────────────
# A stream is built the way providers send one: each text-carrying delta is cut across several
# events (and its logprob tokens with it), the texts that are not deltas (names, ids) come whole.


def cut(text: str, n: int, rng: random.Random) -> list[str]:
    points = sorted(rng.choices(range(len(text) + 1), k=n - 1))
    bounds = [0, *points, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def split_event(
    event: dict[str, Any], is_delta: Callable[[tuple[Any, ...]], bool], n: int, rng: random.Random
) -> list[dict[str, Any]]:
    """`n` copies of `event` in which every delta string is cut in `n` consecutive pieces, and
    every run of logprob entries under a delta is shared out among them in order."""
    copies = [copy.deepcopy(event) for _ in range(n)]

    def walk(value: Any, path: tuple[Any, ...]) -> None:
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for k, v in list(items):
            here = (*path, k)
            if isinstance(v, str) and is_delta(here):
                for c, piece in zip(copies, cut(v, n, rng), strict=True):
                    get(c, path)[k] = piece
            elif isinstance(v, list) and (k == "logprobs" or path[-1:] == ("logprobs",)):
                bounds = sorted(rng.choices(range(len(v) + 1), k=n - 1))
                for c, a, b in zip(copies, [0, *bounds], [*bounds, len(v)], strict=True):
                    get(c, path)[k] = v[a:b]
            elif isinstance(v, dict | list):
                walk(v, here)

    walk(event, ())
    return copies


def get(value: Any, path: tuple[Any, ...]) -> Any:
    for k in path:
        value = value[k]
    return value


def sse(events: list[tuple[str | None, Any]]) -> bytes:
    out = []
    for name, data in events:
        payload = data if isinstance(data, str) else json.dumps(data)
        out.append((f"event: {name}\n" if name else "") + f"data: {payload}\n\n")
    return "".join(out).encode()


def read_sse(raw: bytes) -> list[tuple[str | None, Any]]:
    events = []
    for block in raw.decode().replace("\r\n", "\n").split("\n\n"):
        if not block.strip():
            continue
        name = None
        data = []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        text = "\n".join(data)
        events.append((name, text if text == "[DONE]" else json.loads(text)))
    return events


def assembled(events: list[tuple[str | None, Any]], key: Callable[[tuple[Any, ...], Any], Any]) -> list[str]:
    """What a client reads: every string of every event, and the texts that stream (each string
    whose `key(path, event)` is not None) joined per key, in order."""
    streams: dict[Any, list[str]] = {}
    whole = []
    for _, data in events:
        if not isinstance(data, dict):
            continue
        for container, k, _ in leaves(data):
            whole.append(container[k])
        stack: list[tuple[Any, tuple[Any, ...]]] = [(data, ())]
        while stack:
            value, path = stack.pop(0)
            items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
            for k, v in items:
                if isinstance(v, str):
                    stream = key((*path, k), data)
                    if stream is not None:
                        streams.setdefault(stream, []).append(v)
                elif isinstance(v, dict | list):
                    stack.append((v, (*path, k)))
    return whole + ["".join(parts) for parts in streams.values()]


def _chat_delta(path: tuple[Any, ...]) -> bool:
    if len(path) < 4 or path[0] != "choices":
        return False
    rest = path[2:]
    if rest[0] == "delta":
        rest = rest[1:]
        if len(rest) == 1:
            return rest[0] != "role"
        return (rest[:1] == ("tool_calls",) and rest[2:] == ("function", "arguments")) or rest in (
            ("function_call", "arguments"),
            ("audio", "transcript"),
        )
    return rest[0] == "logprobs" and len(rest) == 4 and rest[1] in ("content", "refusal") and rest[3] == "token"


def _chat_stream_key(path: tuple[Any, ...], event: dict[str, Any]) -> Any:
    if not _chat_delta(path):
        return None
    choice = event["choices"][path[1]]
    if path[2] == "logprobs":
        return (choice.get("index"), "logprobs", path[3])
    if path[3] == "tool_calls":
        return (choice.get("index"), "tool", choice["delta"]["tool_calls"][path[4]].get("index"))
    return (choice.get("index"), *path[3:])


def chat_stream(draw: st.DrawFn) -> list[tuple[str | None, Any]]:
    chunk = draw(BUILD.instances(oc.ChatCompletionChunk))
    rng = draw(st.randoms(use_true_random=False))
    for i, choice in enumerate(chunk["choices"]):
        choice.update(index=i, finish_reason=None)
        recut_runs(choice, rng)
    unplant(chunk, text_slots(chunk, ch.CHUNK))
    pieces = split_event(chunk, _chat_delta, draw(st.integers(2, 4)), rng)
    for choice in pieces[-1]["choices"]:
        choice["finish_reason"] = "stop"
    return [(None, p) for p in pieces] + [(None, "[DONE]")]


def _anthropic_stream_key(path: tuple[Any, ...], event: dict[str, Any]) -> Any:
    if event.get("type") == "content_block_delta" and len(path) == 2 and path[0] == "delta" and path[1] != "type":
        return (event.get("index"), path[1])
    return None


def anthropic_stream(draw: st.DrawFn) -> list[tuple[str | None, Any]]:
    rng = draw(st.randoms(use_true_random=False))
    start = draw(BUILD.instances(at.RawMessageStartEvent))
    events: list[dict[str, Any]] = [start]
    for i, kind in enumerate(union_members(fields(at.RawContentBlockDeltaEvent)["delta"])):
        block = draw(BUILD.instances(at.RawContentBlockStartEvent)) | {"index": i}
        delta = {"type": "content_block_delta", "index": i, "delta": draw(BUILD.instances(kind))}
        unplant(delta, text_slots(delta, am.EVENT))
        events += [block, *split_event(delta, lambda p, d=delta: _anthropic_stream_key(p, d) is not None, 3, rng)]
        events.append({"type": "content_block_stop", "index": i})
    events += [draw(BUILD.instances(at.RawMessageDeltaEvent)), {"type": "message_stop"}]
    for e in events:
        unplant(e, text_slots(e, am.EVENT))
    return [(e["type"], e) for e in events]


_IDS = ("item_id", "output_index", "content_index", "summary_index", "command_index")


def _responses_stream_key(path: tuple[Any, ...], event: dict[str, Any]) -> Any:
    kind = event.get("type", "")
    if not kind.endswith(".delta") or kind == "response.audio.delta":
        return None
    stream = (kind, *(event.get(k) for k in _IDS))
    if path == ("delta",) or (len(path) == 2 and path[0] == "delta"):
        return (*stream, path[1:])
    if len(path) == 3 and path[0] == "logprobs" and path[2] == "token":
        return (*stream, "logprobs")
    return None


def responses_stream(draw: st.DrawFn) -> list[tuple[str | None, Any]]:
    rng = draw(st.randoms(use_true_random=False))
    kinds = {fields(m)["type"].__args__[0]: m for m in union_members(orr.ResponseStreamEvent)}
    first = ("response.created", "response.in_progress")
    # The full response is in response.completed; the opening events carry a small one.
    events = [
        {"type": k, "sequence_number": 0, "response": {"id": "n0", "object": "response", "output": []}} for k in first
    ]
    skip = {*first, "error", "response.completed", "response.failed", "response.incomplete", "response.queued"}
    for kind in sorted(k for k in kinds if k not in skip and not k.endswith(".done")):
        event = draw(BUILD.instances(kinds[kind]))
        event.update({k: 0 if k != "item_id" else "item_0" for k in _IDS if k in event})
        recut_runs(event, rng)
        unplant(event, text_slots(event, rs.EVENT))
        if kind.endswith(".delta") and kind != "response.audio.delta":
            events += split_event(event, lambda p, e=event: _responses_stream_key(p, e) is not None, 3, rng)
        else:
            events.append(event)
        done = kind.removesuffix(".delta") + ".done"
        if kind.endswith(".delta") and done in kinds:
            after = draw(BUILD.instances(kinds[done]))
            after.update({k: 0 if k != "item_id" else "item_0" for k in _IDS if k in after})
            events.append(after)
    events.append(draw(BUILD.instances(kinds["response.completed"])))
    for e in events:
        recut_runs(e, rng)
        unplant(e, text_slots(e, rs.EVENT))
    return [(e["type"], e) for e in events]


STREAMS = {
    "chat": (OPENAI_CHAT, chat_stream, _chat_stream_key, "[DONE]"),
    "messages": (ANTHROPIC_MESSAGES, anthropic_stream, _anthropic_stream_key, "message_stop"),
    "responses": (OPENAI_RESPONSES, responses_stream, _responses_stream_key, "response.completed"),
}


@pytest.mark.parametrize("name", list(STREAMS))
def test_no_planted_value_reaches_the_client_of_a_stream(name: str, gateway: str, recorder: Recorder) -> None:
    fmt, build, key, last = STREAMS[name]
    request = {**RESPONSES[name][2], "stream": True}

    @EXAMPLES
    @given(st.composite(build)(), st.randoms(use_true_random=False))
    def check(events: list[tuple[str | None, Any]], rng: random.Random) -> None:
        sent = assembled(events, key)
        assert found(sent), "nothing was planted"
        raw = sse(events)
        # Written in up to 300 pieces of any size, one byte up: events and characters are cut anywhere.
        cuts = sorted(rng.sample(range(1, len(raw)), min(300, len(raw) - 1)))
        recorder.reply = ("text/event-stream", [raw[a:b] for a, b in itertools.pairwise([0, *cuts, len(raw)])])
        with httpx.stream(
            "POST",
            f"{gateway}{fmt.path}",
            json=request,
            headers={"authorization": f"Bearer {GATEWAY_KEY}", "anthropic-version": "2023-06-01"},
            timeout=5,
        ) as r:
            body = r.read()
        assert r.status_code == 200, body
        got = read_sse(body)
        end = got[-1][1] if got[-1][1] == "[DONE]" else got[-1][1].get("type")
        assert end == last, f"the stream did not end as the provider's did: {got[-1]}"
        leaked = [s for s in assembled(got, key) if found([s])]
        assert not leaked, f"planted values reached the client, in {len(leaked)} texts: {leaked[:3]}"

    check()


# ── the probes that walked around the allow-list, with `block` rules ─────────────────────────────────
# Each passed before every string was scanned: the value reached the provider, or the client.

SSN, CARD = VALUES[0], VALUES[1]


@pytest.fixture(scope="module")
def blocking(recorder: Recorder, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Blocks both types both ways."""
    rules = 'rules = [{ entities = ["US_SSN", "CREDIT_CARD"], action = "block", direction = "both" }]'
    with start_gateway(_config(tmp_path_factory.mktemp("fields") / "block.toml", recorder, rules)) as server:
        yield server.url


@pytest.fixture
def oa(blocking: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{blocking}/v1", api_key=GATEWAY_KEY, max_retries=0) as client:
        yield client


@pytest.fixture
def an(blocking: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=blocking, api_key=GATEWAY_KEY, max_retries=0) as client:
        yield client


HI = [{"role": "user", "content": "hi"}]
CHAT_PROBES: dict[str, dict[str, Any]] = {
    "prediction": {"prediction": {"type": "content", "content": f"draft {SSN}"}},
    "tool description": {"tools": [{"type": "function", "function": {"name": "f", "description": f"for {SSN}"}}]},
    "tool parameters": {
        "tools": [
            {
                "type": "function",
                "function": {"name": "f", "parameters": {"type": "object", "properties": {"card": {"enum": [CARD]}}}},
            }
        ]
    },
    "metadata": {"metadata": {"customer": SSN}, "store": True},
    "user": {"extra_body": {"user": f"{CARD}"}},
    "a field not known yet": {"extra_body": {"future_field": {"id": SSN}}},
}
MESSAGES_PROBES: dict[str, dict[str, Any]] = {
    "document source": {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": f"ssn {SSN}"}}
                ],
            }
        ]
    },
    "thinking block": {
        "messages": [
            *HI,
            {"role": "assistant", "content": [{"type": "thinking", "thinking": f"card {CARD}", "signature": "sig"}]},
            *HI,
        ]
    },
    "tools": {"tools": [{"name": "f", "description": f"for {SSN}", "input_schema": {"type": "object"}}]},
    "metadata.user_id": {"metadata": {"user_id": SSN}},
}
RESPONSES_PROBES: dict[str, dict[str, Any]] = {
    "prompt variables": {"prompt": {"id": "pmpt_1", "variables": {"customer": f"ssn {SSN}"}}},
    "custom tool call output": {"input": [{"type": "custom_tool_call_output", "call_id": "c1", "output": CARD}]},
}


@pytest.mark.parametrize("probe", list(CHAT_PROBES))
def test_chat_probe_is_blocked(probe: str, oa: openai.OpenAI, recorder: Recorder) -> None:
    recorder.requests.clear()
    with pytest.raises(openai.BadRequestError) as info:
        oa.chat.completions.create(model="rec/m", messages=HI, **CHAT_PROBES[probe])  # type: ignore[arg-type]
    assert info.value.code == "content_blocked" and SSN not in str(info.value.body) and CARD not in str(info.value.body)
    assert recorder.requests == []


@pytest.mark.parametrize("probe", list(MESSAGES_PROBES))
def test_anthropic_probe_is_blocked(probe: str, an: anthropic.Anthropic, recorder: Recorder) -> None:
    recorder.requests.clear()
    kwargs = {"messages": HI, **MESSAGES_PROBES[probe]}
    with pytest.raises(anthropic.BadRequestError) as info:
        an.messages.create(model="rec/m", max_tokens=9, **kwargs)  # type: ignore[arg-type]
    assert "content this gateway blocks" in str(info.value) and SSN not in str(info.value)
    assert recorder.requests == []


@pytest.mark.parametrize("probe", list(RESPONSES_PROBES))
def test_responses_probe_is_blocked(probe: str, oa: openai.OpenAI, recorder: Recorder) -> None:
    recorder.requests.clear()
    with pytest.raises(openai.BadRequestError) as info:
        oa.responses.create(model="rec/m", **{"input": "hi", **RESPONSES_PROBES[probe]})  # type: ignore[call-overload]
    assert info.value.code == "content_blocked"
    assert recorder.requests == []


def test_chat_answers_carrying_values_are_blocked(oa: openai.OpenAI, recorder: Recorder) -> None:
    """function_call.arguments and reasoning_content, complete and streamed."""
    message = {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": f'{{"ssn": "{SSN}"}}'}}
    answer = {"id": "c", "object": "chat.completion", "model": "m", "choices": [{"index": 0, "message": message}]}
    recorder.reply = ("application/json", [json.dumps(answer).encode()])
    with pytest.raises(openai.BadRequestError) as info:
        oa.chat.completions.create(model="rec/m", messages=HI)  # type: ignore[arg-type]
    assert SSN not in str(info.value.body)

    message = {"role": "assistant", "content": "ok", "reasoning_content": f"the card is {CARD}"}
    answer["choices"] = [{"index": 0, "message": message, "finish_reason": "stop"}]
    recorder.reply = ("application/json", [json.dumps(answer).encode()])
    with pytest.raises(openai.BadRequestError):
        oa.chat.completions.create(model="rec/m", messages=HI)  # type: ignore[arg-type]

    pieces = ["the card is 4111 1", "111 1111 ", "1111."]
    deltas = [({"reasoning_content": p}, None) for p in pieces] + [({}, "stop")]
    chunks = [
        {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": d, "finish_reason": f}]}
        for d, f in deltas
    ]
    recorder.reply = ("text/event-stream", [sse([(None, c) for c in chunks] + [(None, "[DONE]")])])
    got = ""
    with pytest.raises(openai.APIError) as err:
        for chunk in oa.chat.completions.create(model="rec/m", messages=HI, stream=True):  # type: ignore[arg-type]
            got += "".join(getattr(c.delta, "reasoning_content", None) or "" for c in chunk.choices)
    assert "CREDIT_CARD" in err.value.message and "1111 1111" not in got


def test_streamed_thinking_and_reasoning_summaries_are_blocked(
    an: anthropic.Anthropic, oa: openai.OpenAI, recorder: Recorder
) -> None:
    events = [
        {
            "type": "message_start",
            "message": {
                "id": "m",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": "m",
                "usage": {"input_tokens": 1, "output_tokens": 0},
            },
        },
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""},
        },
        *(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": p}}
            for p in ("ssn 536-2", "2-12", "34 ok")
        ),
        {"type": "content_block_stop", "index": 0},
        {"type": "message_stop"},
    ]
    recorder.reply = ("text/event-stream", [sse([(e["type"], e) for e in events])])
    got = ""
    with (
        pytest.raises(anthropic.APIStatusError) as info,
        an.messages.stream(model="rec/m", max_tokens=9, messages=HI) as s,  # type: ignore[arg-type]
    ):
        for event in s:
            if event.type == "content_block_delta" and event.delta.type == "thinking_delta":
                got += event.delta.thinking
    assert "US_SSN" in str(info.value) and "22-12" not in got

    ids = {"item_id": "rs_1", "output_index": 0, "summary_index": 0}
    kind = "response.reasoning_summary_text"
    events = [
        {
            "type": "response.created",
            "sequence_number": 0,
            "response": {"id": "r", "object": "response", "output": []},
        },
        *(
            {"type": f"{kind}.delta", "sequence_number": i + 1, "delta": p, **ids}
            for i, p in enumerate(("4111 11", "11 1111 1", "111"))
        ),
        {"type": f"{kind}.done", "sequence_number": 4, "text": f"{CARD}", **ids},
        {
            "type": "response.completed",
            "sequence_number": 5,
            "response": {"id": "r", "object": "response", "output": []},
        },
    ]
    recorder.reply = ("text/event-stream", [sse([(e["type"], e) for e in events])])
    got = ""
    with pytest.raises(openai.APIError) as err:
        for event in oa.responses.create(model="rec/m", input="hi", stream=True):
            got += getattr(event, "delta", "") or ""
    assert "CREDIT_CARD" in err.value.message and CARD not in got and "1111 1111" not in got


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
@pytest.mark.parametrize("key", ['"messages"', '"messag\\u0065s"'])
def test_a_body_repeating_a_key_is_refused(path: str, key: str, blocking: str, recorder: Recorder) -> None:
    """The first `messages` holds the value, the second is clean: parsers disagree on which counts."""
    secret = json.dumps([{"role": "user", "content": f"ssn {SSN}"}])
    raw = f'{{"model": "rec/m", "max_tokens": 5, "messages": {secret}, {key}: {json.dumps(HI)}}}'
    recorder.requests.clear()
    r = httpx.post(
        f"{blocking}{path}",
        content=raw.encode(),
        headers={
            "authorization": f"Bearer {GATEWAY_KEY}",
            "content-type": "application/json",
            "anthropic-version": "2023-06-01",
        },
    )
    assert r.status_code == 400
    error = r.json()["error"]
    if path == "/v1/messages":
        assert r.json()["type"] == "error" and error["type"] == "invalid_request_error"
    else:
        assert error["code"] == "duplicate_key"
    assert "repeats a key" in error["message"] and SSN not in r.text
    assert recorder.requests == []
