"""The output a stream's tap collects for a trace as the events pass, in each streaming format: the
same as assembling the events the client received (text a redaction held back included), and
never a failure of the stream."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sluicegate.config import RedactionSettings
from sluicegate.formats import ANTHROPIC_MESSAGES, OPENAI_CHAT, OPENAI_RESPONSES
from sluicegate.formats.base import StreamOutput, WireFormat
from sluicegate.formats.sse import EventBuffer, encode
from sluicegate.policy.redaction import Redactor, RequestScan


def _chunk(choices: object, **extra: object) -> dict[str, object]:
    return {"id": "c1", "object": "chat.completion.chunk", "choices": choices, **extra}


CHAT = [
    _chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]),
    _chunk([{"index": 0, "delta": {"content": "write to jane."}, "finish_reason": None}]),
    _chunk([{"index": 0, "delta": {"content": "doe@example.com please"}, "finish_reason": None}]),
    _chunk(
        [
            {
                "index": 1,
                "delta": {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "lookup", "arguments": '{"a": '},
                        }
                    ]
                },
            }
        ]
    ),
    _chunk([{"index": 1, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}}]),
    _chunk(["not an object", {"index": [2], "delta": {"content": "odd index"}}, {"delta": "not an object"}]),
    _chunk([{"index": 0, "delta": {"tool_calls": [None, {"function": None}]}}]),
    _chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}], usage={"prompt_tokens": 3, "completion_tokens": 9}),
]
MESSAGES = [
    {"type": "message_start", "message": {"id": "m1", "usage": {"input_tokens": 3, "output_tokens": 1}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "write to jane."}},
    # the stream ends inside what may still be an address: the filter holds it back to the block's end
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "doe@example.com"}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "toolu_1", "name": "t", "input": {}},
    },
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"a": 1}'}},
    {"type": "content_block_stop", "index": 1},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 9}},
    {"type": "message_stop"},
]
RESPONSES = [
    {"type": "response.created", "sequence_number": 0, "response": {"id": "r1"}},
    {"type": "response.output_text.delta", "sequence_number": 1, "item_id": "i1", "output_index": 0,
     "content_index": 0, "delta": "write to jane."},
    {"type": "response.output_text.delta", "sequence_number": 2, "item_id": "i1", "output_index": 0,
     "content_index": 0, "delta": "doe@example.com"},
    {"type": "response.output_text.done", "sequence_number": 3, "item_id": "i1", "output_index": 0,
     "content_index": 0, "text": "write to jane.doe@example.com"},
    {"type": "response.completed", "sequence_number": 4,
     "response": {"id": "r1", "usage": {"input_tokens": 3, "output_tokens": 9, "total_tokens": 12}}},
]  # fmt: skip
CASES = [(OPENAI_CHAT, CHAT), (ANTHROPIC_MESSAGES, MESSAGES), (OPENAI_RESPONSES, RESPONSES)]


def _relay(fmt: WireFormat, events: list[dict[str, Any]], filtered: bool) -> tuple[StreamOutput, list[bytes]]:
    redactor = Redactor(RedactionSettings(enabled=True))
    tap = fmt.tap({"stream": True}, redactor.response_filter(RequestScan()) if filtered else None)
    tap.transcript = fmt.stream_output()
    named = fmt is not OPENAI_CHAT
    raw = b"".join(encode(orjson.dumps(e), e["type"].encode() if named else None) for e in events)  # type: ignore[union-attr]
    raw += b"" if named else b"data: [DONE]\n\n"
    sent = [out for event in EventBuffer().feed(raw) if (out := tap.process(event)) is not None]
    assert tap.transcript is not None
    return tap.transcript, sent


def _assembled(fmt: WireFormat, sent: list[bytes]) -> dict[str, Any]:
    """What a client assembles from the bytes it received."""
    output = fmt.stream_output()
    assert output is not None
    for event in EventBuffer().feed(b"".join(sent)):
        if event.data != b"[DONE]":
            output.add(orjson.loads(event.data))
    return output.result()


@pytest.mark.parametrize(("fmt", "events"), CASES, ids=[f.name for f, _ in CASES])
@pytest.mark.parametrize("filtered", [False, True], ids=["plain", "redacted"])
def test_the_taps_output_is_what_the_client_assembles(
    fmt: WireFormat, events: list[dict[str, Any]], filtered: bool
) -> None:
    output, sent = _relay(fmt, events, filtered)
    assert output.result() == _assembled(fmt, sent)
    text = orjson.dumps(output.result()).decode()
    assert ("doe@example.com" in text) is not filtered  # the redacted value never, the plain one whole


def test_the_output_holds_the_redacted_text_and_the_odd_events_do_not_fail() -> None:
    output, _ = _relay(OPENAI_CHAT, CHAT, True)
    result = output.result()
    content = result["choices"][0]["message"]["content"]
    assert content == "write to [REDACTED:EMAIL] please"
    calls = result["choices"][1]["message"]["tool_calls"]
    assert calls == [{"type": "function", "id": "call_1", "function": {"name": "lookup", "arguments": '{"a": 1}'}}]
    assert result["choices"][2]["message"]["content"].startswith("odd")  # another type of index, after the numbers


def test_held_back_text_reaches_the_output_in_messages_and_responses() -> None:
    messages, _ = _relay(ANTHROPIC_MESSAGES, MESSAGES, True)
    assert messages.result()["content"] == [
        {"type": "text", "text": "write to [REDACTED:EMAIL]"},
        {"type": "tool_use", "id": "toolu_1", "name": "t", "input": {"a": 1}},  # as a client assembles it
    ]
    responses, _ = _relay(OPENAI_RESPONSES, RESPONSES, True)
    assert responses.result() == {"output_text": "write to [REDACTED:EMAIL]"}
