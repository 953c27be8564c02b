"""What redaction costs per request and per streamed chunk, now that every string is scanned.

    .venv/bin/python -m pytest benches/bench_redaction.py --benchmark-enable --benchmark-group-by=group
    .venv/bin/python benches/bench_redaction.py     # a table (us per call); run it on another tree to compare

Bodies are built here, deterministically, without any PII (the common case: nothing is found, and
the request goes upstream as parsed):

- a typical chat request: a system prompt, six turns, one tool with a JSON schema (about 2.5 KB);
- an agent's chat request: the same with eight tools and a tool-call round trip (about 9 KB);
- an Anthropic request with a 1 MB base64 image (the image is skipped, its text is scanned);
- a chat stream: 200 chunks of 4 characters through the stream filter.

`scan` is `Redactor.scan_request` alone; `parse+scan+dump` is what the pipeline does with a body:
parse it, refuse repeated keys, scan it, serialize what goes upstream.
"""

from __future__ import annotations

import base64
import random
import sys
import timeit
from collections.abc import Callable
from functools import partial
from typing import Any

import orjson
import pytest

from sluicegate.config import RedactionSettings
from sluicegate.formats import ANTHROPIC_MESSAGES, OPENAI_CHAT, WireFormat
from sluicegate.formats.sse import Event
from sluicegate.policy.redaction import Redactor, RequestScan

try:
    from sluicegate._core import first_duplicate_key
except ImportError:  # a tree from before the check: the parse path without it

    def first_duplicate_key(data: bytes) -> int | None:
        return None


_WORDS = ["the", "customer", "asked", "about", "invoice", "for", "last", "month", "and", "whether", "refund", "was"]
_WORDS += ["processed", "please", "summarise", "account", "history", "schedule", "a", "follow", "up", "meeting"]


def sentence(r: random.Random, n: int) -> str:
    return " ".join(r.choice(_WORDS) for _ in range(n)).capitalize() + "."


def _tool(r: random.Random, name: str) -> dict[str, Any]:
    props = {
        f"arg{i}": {"type": "string", "description": sentence(r, 8), "enum": ["a", "b"] if i == 0 else None}
        for i in range(3)
    }
    schema = {"type": "object", "properties": props, "required": ["arg0"], "additionalProperties": False}
    return {"type": "function", "function": {"name": name, "description": sentence(r, 20), "parameters": schema}}


def typical_chat() -> dict[str, Any]:
    r = random.Random(1)
    messages: list[dict[str, Any]] = [{"role": "system", "content": " ".join(sentence(r, 12) for _ in range(5))}]
    for i in range(6):
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": sentence(r, 40)})
    return {
        "model": "gpt-4o",
        "messages": messages,
        "temperature": 0.2,
        "max_tokens": 500,
        "tools": [_tool(r, "lookup")],
    }


def agent_chat() -> dict[str, Any]:
    r = random.Random(2)
    body = typical_chat()
    body["tools"] = [_tool(r, f"tool_{i}") for i in range(8)]
    call = {"id": "call_8f3a", "type": "function", "function": {"name": "tool_1", "arguments": '{"arg0": "a"}'}}
    body["messages"] += [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {
            "role": "tool",
            "tool_call_id": "call_8f3a",
            "content": orjson.dumps({"rows": [sentence(r, 10)] * 5}).decode(),
        },
    ]
    return body


def anthropic_image() -> dict[str, Any]:
    r = random.Random(3)
    image = base64.b64encode(random.Random(4).randbytes(750_000)).decode()
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": image}},
        {"type": "text", "text": sentence(r, 30)},
    ]
    return {"model": "claude", "max_tokens": 500, "messages": [{"role": "user", "content": content}]}


BODIES: dict[str, tuple[WireFormat, Callable[[], dict[str, Any]]]] = {
    "typical chat (2.5 KB)": (OPENAI_CHAT, typical_chat),
    "agent chat, 8 tools (9 KB)": (OPENAI_CHAT, agent_chat),
    "anthropic, 1 MB image": (ANTHROPIC_MESSAGES, anthropic_image),
}
REDACTOR = Redactor(RedactionSettings())


def scan(fmt: WireFormat, body: dict[str, Any]) -> RequestScan:
    return REDACTOR.scan_request(fmt, body, "ws")


def pipeline(fmt: WireFormat, raw: bytes) -> bytes:
    body = orjson.loads(raw)
    first_duplicate_key(raw)
    REDACTOR.scan_request(fmt, body, "ws")
    return orjson.dumps(body)


def stream_events() -> list[Event]:
    text = " ".join(sentence(random.Random(5), 20) for _ in range(10))[:800]
    chunks = [
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-4o",
            "choices": [{"index": 0, "delta": {"content": text[i : i + 4]}, "finish_reason": None}],
        }
        for i in range(0, len(text), 4)
    ]
    return [Event.parse(b"data: " + orjson.dumps(c)) for c in chunks]


def stream(events: list[Event]) -> int:
    tap = OPENAI_CHAT.tap({"stream": True}, REDACTOR.response_filter(RequestScan()))
    return sum(len(tap.process(e) or b"") for e in events)


@pytest.mark.parametrize("name", list(BODIES))
def test_scan_request(benchmark: pytest.FixtureDef, name: str) -> None:  # type: ignore[type-arg]
    fmt, make = BODIES[name]
    body = make()
    benchmark.group = "redaction: scan one request"
    result = benchmark(scan, fmt, body)
    assert not result.changed  # nothing to find: the common case


@pytest.mark.parametrize("name", list(BODIES))
def test_parse_scan_dump(benchmark: pytest.FixtureDef, name: str) -> None:  # type: ignore[type-arg]
    fmt, make = BODIES[name]
    raw = orjson.dumps(make())
    benchmark.group = "redaction: parse, check keys, scan, serialize one request"
    assert orjson.loads(benchmark(pipeline, fmt, raw)) == orjson.loads(raw)


def test_stream_chunk(benchmark: pytest.FixtureDef) -> None:  # type: ignore[type-arg]
    events = stream_events()
    benchmark.group = f"redaction: a chat stream of {len(events)} chunks"
    assert benchmark(stream, events) > 0
    if benchmark.stats:
        benchmark.extra_info["us/chunk"] = round(benchmark.stats.stats.mean / len(events) * 1e6, 2)


def _best(fn: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=7)) / number * 1e6


def main() -> None:
    print(f"| case | scan (us) | parse+scan+dump (us) |  (sluicegate from {sys.modules['sluicegate'].__file__})")
    print("|---|---|---|")
    for name, (fmt, make) in BODIES.items():
        body = make()
        raw = orjson.dumps(body)
        n = 20 if len(raw) > 100_000 else 2000
        alone = _best(partial(scan, fmt, body), n)
        print(f"| {name} | {alone:.1f} | {_best(partial(pipeline, fmt, raw), n):.1f} |")
    events = stream_events()
    per_chunk = _best(lambda: stream(events), 50) / len(events)
    print(f"| chat stream, per chunk | {per_chunk:.2f} | |")


if __name__ == "__main__":
    main()
