"""Anthropic messages (`POST /v1/messages`, `/v1/messages/count_tokens`) as the mock answers them.

Streams send every event with an `event:` line and a data line (the SDK skips events without
the former): message_start (usage with `output_tokens: 1`), content_block_start, ping,
content_block_delta per piece (`text_delta`, or `input_json_delta` for a tool call),
content_block_stop, message_delta (stop reason; usage cumulative, so it repeats the input
counts and gives the final `output_tokens`), message_stop.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from sluicegate.mock.errors import MockError
from sluicegate.mock.reply import Turn, content_tokens, sse_event
from sluicegate.mock.wire import Wire

__all__ = ["MESSAGES", "count_tokens"]

_PING: Final = sse_event("ping", {"type": "ping"})
_STOP: Final = sse_event("message_stop", {"type": "message_stop"})


def _validate(req: dict[str, Any]) -> None:
    max_tokens = req.get("max_tokens")
    if max_tokens is None:
        raise MockError(400, "invalid_request", "max_tokens: Field required", param="max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise MockError(400, "invalid_request", "max_tokens: must be a positive integer", param="max_tokens")
    if not isinstance(req.get("messages"), list):
        raise MockError(400, "invalid_request", "messages: Field required (a list)", param="messages")


def _input_tokens(req: dict[str, Any]) -> int:
    return content_tokens(req.get("system")) + content_tokens(req.get("messages"))


def count_tokens(req: dict[str, Any]) -> bytes:
    """The body of `POST /v1/messages/count_tokens`: `{"input_tokens": N}`."""
    if not isinstance(req.get("messages"), list):
        raise MockError(400, "invalid_request", "messages: Field required (a list)", param="messages")
    return orjson.dumps({"input_tokens": max(1, _input_tokens(req))})


def _tool_name(req: dict[str, Any]) -> str | None:
    for tool in req.get("tools") or ():
        if isinstance(tool, dict) and isinstance(tool.get("name"), str):
            return str(tool["name"])
    return None


def _ends_with_results(req: dict[str, Any]) -> bool:
    messages = req.get("messages") or [None]
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user" or not isinstance(last.get("content"), list):
        return False
    return any(isinstance(b, dict) and b.get("type") == "tool_result" for b in last["content"])


def _usage(turn: Turn, output_tokens: int) -> dict[str, int]:
    return {
        "input_tokens": turn.input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": turn.cached_tokens,
    }


def _message(turn: Turn, content: list[Any], stop_reason: str | None, usage: dict[str, int]) -> dict[str, Any]:
    return {
        "id": f"msg_{turn.serial}",
        "type": "message",
        "role": "assistant",
        "model": turn.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }


def _body(turn: Turn, req: dict[str, Any]) -> bytes:
    if turn.tool is None:
        block: dict[str, Any] = {"type": "text", "text": turn.text}
        stop = "end_turn"
        blocks = [block]
    else:
        arguments = orjson.loads(turn.text)
        blocks = [
            {"type": "tool_use", "id": _use_id(turn, k), "name": name, "input": arguments}
            for k, name in enumerate(turn.calls)
        ]
        stop = "tool_use"
    return orjson.dumps(_message(turn, blocks, stop, _usage(turn, turn.output_tokens)))


def _use_id(turn: Turn, k: int) -> str:
    return f"toolu_{turn.serial}" if k == 0 else f"toolu_{turn.serial}_{k}"


def _events(turn: Turn, req: dict[str, Any]) -> list[bytes]:
    start = _message(turn, [], None, _usage(turn, 1))
    if turn.tool is None:
        text: dict[str, Any] = {"type": "text", "text": ""}
        blocks = [(text, [{"type": "text_delta", "text": piece} for piece in turn.pieces])]
        stop = "end_turn"
    else:
        deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in turn.pieces]
        blocks = [
            ({"type": "tool_use", "id": _use_id(turn, k), "name": name, "input": {}}, deltas)
            for k, name in enumerate(turn.calls)
        ]
        stop = "tool_use"
    events = [sse_event("message_start", {"type": "message_start", "message": start})]
    for k, (block, block_deltas) in enumerate(blocks):
        events.append(
            sse_event("content_block_start", {"type": "content_block_start", "index": k, "content_block": block})
        )
        if k == 0:
            events.append(_PING)
        events += [
            sse_event("content_block_delta", {"type": "content_block_delta", "index": k, "delta": delta})
            for delta in block_deltas
        ]
        events.append(sse_event("content_block_stop", {"type": "content_block_stop", "index": k}))
    delta = {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}}
    events.append(sse_event("message_delta", {**delta, "usage": _usage(turn, turn.output_tokens)}))
    events.append(_STOP)
    return events


def _error_event(sequence_number: int) -> bytes:
    error = {"type": "overloaded_error", "message": "mock error_event fault"}
    return sse_event("error", {"type": "error", "error": error})


MESSAGES: Final = Wire(
    anthropic=True,
    validate=_validate,
    input_tokens=_input_tokens,
    tool_name=_tool_name,
    ends_with_results=_ends_with_results,
    body=_body,
    events=_events,
    error_event=_error_event,
    malformed=b"event: content_block_delta\ndata: {not json\n\n",
)
