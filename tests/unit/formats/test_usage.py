"""Usage from each format, streamed and not, and the usage chunk that sluicegate adds and removes."""

import orjson
import pytest

from sluicegate.errors import UpstreamProtocolError
from sluicegate.formats import ANTHROPIC_MESSAGES, OPENAI_CHAT, OPENAI_EMBEDDINGS, OPENAI_RESPONSES, Usage
from sluicegate.formats.sse import EventBuffer, encode

CHAT_USAGE = {
    "prompt_tokens": 100,
    "completion_tokens": 20,
    "total_tokens": 120,
    "prompt_tokens_details": {"cached_tokens": 40},
    "completion_tokens_details": {"reasoning_tokens": 5},
}


def run_tap(tap, events: list[bytes]) -> bytes:  # type: ignore[no-untyped-def]
    buf = EventBuffer()
    out = [tap.process(e) for e in buf.feed(b"".join(events))]
    return b"".join(o for o in out if o is not None)


def chat_stream(with_usage_chunk: bool) -> list[bytes]:
    chunk = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "hi"}}], "usage": None}
    events = [encode(orjson.dumps(chunk))]
    if with_usage_chunk:
        events.append(encode(orjson.dumps({"object": "chat.completion.chunk", "choices": [], "usage": CHAT_USAGE})))
    return [*events, encode(b"[DONE]")]


def test_chat_prepare_asks_for_usage_and_keeps_other_options() -> None:
    body = {"model": "m", "stream": True, "stream_options": {"include_obfuscation": False}}
    assert OPENAI_CHAT.prepare(body) is True
    assert body["stream_options"] == {"include_obfuscation": False, "include_usage": True}
    assert OPENAI_CHAT.prepare({"model": "m"}) is False  # not streamed: nothing to add
    assert OPENAI_CHAT.prepare({"model": "m", "stream": True, "stream_options": {"include_usage": True}}) is False


@pytest.mark.parametrize("client_asked", [True, False])
def test_chat_usage_chunk_is_read_and_dropped_unless_asked(client_asked: bool) -> None:
    body = {"model": "m", "stream": True}
    if client_asked:
        body["stream_options"] = {"include_usage": True}
    tap = OPENAI_CHAT.tap(body)
    out = run_tap(tap, chat_stream(True))
    assert tap.usage == Usage(100, 20, cache_read_tokens=40, reasoning_tokens=5)
    assert tap.saw_end
    assert (b'"choices":[]' in out) is client_asked
    assert out.endswith(b"data: [DONE]\n\n")


def test_chat_malformed_event_is_a_protocol_error() -> None:
    tap = OPENAI_CHAT.tap({"stream": True})
    with pytest.raises(UpstreamProtocolError):
        run_tap(tap, [b"data: {not json\n\n"])


def test_anthropic_usage_adds_cache_tokens_and_replaces_cumulative_output() -> None:
    start = {
        "type": "message_start",
        "message": {
            "usage": {
                "input_tokens": 10,
                "cache_read_input_tokens": 30,
                "cache_creation_input_tokens": 5,
                "output_tokens": 1,
            }
        },
    }
    deltas = [{"type": "message_delta", "usage": {"output_tokens": n}} for n in (7, 15)]
    events = [encode(orjson.dumps(start), b"message_start")]
    events += [encode(orjson.dumps(d), b"message_delta") for d in deltas]
    events.append(encode(b'{"type":"message_stop"}', b"message_stop"))
    tap = ANTHROPIC_MESSAGES.tap({})
    assert run_tap(tap, events) == b"".join(events)  # passed through unchanged
    assert tap.usage == Usage(45, 15, cache_read_tokens=30, cache_write_tokens=5)
    assert tap.saw_end


def test_responses_usage_comes_from_the_terminal_event() -> None:
    usage = {
        "input_tokens": 12,
        "output_tokens": 3,
        "input_tokens_details": {"cached_tokens": 2},
        "output_tokens_details": {"reasoning_tokens": 1},
    }
    events = [
        encode(b'{"type":"response.output_text.delta","sequence_number":3,"delta":"x"}', b"response.output_text.delta"),
        encode(
            orjson.dumps({"type": "response.completed", "sequence_number": 4, "response": {"usage": usage}}),
            b"response.completed",
        ),
    ]
    tap = OPENAI_RESPONSES.tap({})
    run_tap(tap, events)
    assert tap.usage == Usage(12, 3, cache_read_tokens=2, reasoning_tokens=1)
    assert tap.saw_end


@pytest.mark.parametrize(
    ("fmt", "body", "usage"),
    [
        (OPENAI_CHAT, {"usage": CHAT_USAGE}, Usage(100, 20, cache_read_tokens=40, reasoning_tokens=5)),
        (OPENAI_EMBEDDINGS, {"usage": {"prompt_tokens": 8, "total_tokens": 8}}, Usage(8, 0)),
        (OPENAI_RESPONSES, {"usage": {"input_tokens": 4, "output_tokens": 2}}, Usage(4, 2)),
        (ANTHROPIC_MESSAGES, {"usage": {"input_tokens": 4, "output_tokens": 2}}, Usage(4, 2)),
        (OPENAI_CHAT, {"usage": {"prompt_tokens": None, "completion_tokens": "9"}}, Usage(0, 0)),
        (OPENAI_CHAT, {}, None),
    ],
)
def test_non_streamed_usage(fmt, body, usage) -> None:  # type: ignore[no-untyped-def]
    assert fmt.usage(body) == usage
