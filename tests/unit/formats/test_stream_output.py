"""The output a chat stream's tap collects for a trace, as the events pass: the same as assembling
the bytes the client received, and never a failure of the stream."""

from __future__ import annotations

import orjson

from sluicegate.config import RedactionSettings
from sluicegate.formats import OPENAI_CHAT
from sluicegate.formats.base import StreamOutput
from sluicegate.formats.sse import EventBuffer, encode
from sluicegate.observe.langsmith import assemble_stream
from sluicegate.policy.redaction import Redactor, RequestScan


def _chunk(choices: object, **extra: object) -> dict[str, object]:
    return {"id": "c1", "object": "chat.completion.chunk", "choices": choices, **extra}


EVENTS = [
    _chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]),
    _chunk([{"index": 0, "delta": {"content": "write to jane."}, "finish_reason": None}]),
    _chunk([{"index": 0, "delta": {"content": "doe@example.com please"}, "finish_reason": None}]),
    _chunk([{"index": 1, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"a": '}}]}}]),
    _chunk([{"index": 1, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}}]),
    _chunk(["not an object", {"index": [2], "delta": {"content": "odd index"}}, {"delta": "not an object"}]),
    _chunk([{"index": 0, "delta": {"tool_calls": [None, {"function": None}]}}]),
    _chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}], usage={"prompt_tokens": 3, "completion_tokens": 9}),
]


def _relay(filtered: bool) -> tuple[StreamOutput, list[bytes]]:
    redactor = Redactor(RedactionSettings(enabled=True))
    tap = OPENAI_CHAT.tap({"stream": True}, redactor.response_filter(RequestScan()) if filtered else None)
    tap.transcript = StreamOutput("openai_chat")
    raw = b"".join(encode(orjson.dumps(e)) for e in EVENTS) + b"data: [DONE]\n\n"
    sent = [out for event in EventBuffer().feed(raw) if (out := tap.process(event)) is not None]
    return tap.transcript, sent


def test_the_taps_output_is_what_the_client_assembles() -> None:
    for filtered in (False, True):
        output, sent = _relay(filtered)
        assert output.result() == assemble_stream("openai_chat", sent)


def test_the_output_holds_the_redacted_text_and_the_odd_events_do_not_fail() -> None:
    output, _ = _relay(True)
    result = output.result()
    content = result["choices"][0]["message"]["content"]
    assert content == "write to [REDACTED:EMAIL] please"
    calls = result["choices"][1]["message"]["tool_calls"]
    assert calls == [{"type": "function", "function": {"arguments": '{"a": 1}'}}]
    assert result["choices"][2]["message"]["content"].startswith("odd")  # another type of index, after the numbers
