"""OpenAI chat completions (`POST /v1/chat/completions`) as the mock answers them.

Streams are `data: {chunk}` events ending with `data: [DONE]`: a first chunk whose delta holds
the role, one chunk per content (or tool-call argument) delta, a chunk with an empty delta and
the finish reason, and, when `stream_options.include_usage` is true, a last chunk with
`choices: []` and the usage (every other chunk then carries `usage: null`).
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from sluicegate.mock.errors import MockError
from sluicegate.mock.reply import Turn, content_tokens, sse_data
from sluicegate.mock.wire import Wire

__all__ = ["CHAT"]

_DONE: Final = b"data: [DONE]\n\n"


def _validate(req: dict[str, Any]) -> None:
    if not isinstance(req.get("messages"), list):
        raise MockError(400, "invalid_request", "'messages' must be a list of messages", param="messages")


def _input_tokens(req: dict[str, Any]) -> int:
    return content_tokens(req.get("messages"))


def _tool_name(req: dict[str, Any]) -> str | None:
    for tool in req.get("tools") or ():
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return str(function["name"])
    return None


def _ends_with_results(req: dict[str, Any]) -> bool:
    messages = req.get("messages") or [None]
    last = messages[-1]
    return isinstance(last, dict) and last.get("role") in ("tool", "function")


def _usage(turn: Turn) -> dict[str, Any]:
    prompt = turn.input_tokens + turn.cached_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": turn.output_tokens,
        "total_tokens": prompt + turn.output_tokens,
        "prompt_tokens_details": {"cached_tokens": turn.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _call_id(turn: Turn, k: int) -> str:
    return f"call_{turn.serial}" if k == 0 else f"call_{turn.serial}_{k}"


def _body(turn: Turn, req: dict[str, Any]) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None, "annotations": []}
    if turn.tool is None:
        message["content"] = turn.text
        finish = "stop"
    else:
        message["tool_calls"] = [
            {"id": _call_id(turn, k), "type": "function", "function": {"name": name, "arguments": turn.text}}
            for k, name in enumerate(turn.calls)
        ]
        finish = "tool_calls"
    return orjson.dumps(
        {
            "id": f"chatcmpl-{turn.serial}",
            "object": "chat.completion",
            "created": turn.created,
            "model": turn.model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": _usage(turn),
            "service_tier": "default",
            "system_fingerprint": None,
        }
    )


def _events(turn: Turn, req: dict[str, Any]) -> list[bytes]:
    options = req.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    head = {
        "id": f"chatcmpl-{turn.serial}",
        "object": "chat.completion.chunk",
        "created": turn.created,
        "model": turn.model,
        "system_fingerprint": None,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        payload = {**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        if include_usage:
            payload["usage"] = None
        return sse_data(payload)

    if turn.tool is None:
        events = [chunk({"role": "assistant", "content": "", "refusal": None})]
        events += [chunk({"content": piece}) for piece in turn.pieces]
        events.append(chunk({}, "stop"))
    else:
        events = [chunk({"role": "assistant", "content": None, "refusal": None})]
        for k, name in enumerate(turn.calls):
            for i, piece in enumerate(turn.pieces):
                # id, type and name travel in the first fragment only; later ones carry argument text.
                call: dict[str, Any] = {"index": k, "function": {"arguments": piece}}
                if i == 0:
                    call = {"index": k, "id": _call_id(turn, k), "type": "function"}
                    call["function"] = {"name": name, "arguments": piece}
                events.append(chunk({"tool_calls": [call]}))
        events.append(chunk({}, "tool_calls"))
    if include_usage:
        events.append(sse_data({**head, "choices": [], "usage": _usage(turn)}))
    events.append(_DONE)
    return events


def _error_event(sequence_number: int) -> bytes:
    error = {"message": "mock error_event fault", "type": "server_error", "param": None, "code": "mock_error_event"}
    return sse_data({"error": error})


CHAT: Final = Wire(
    anthropic=False,
    validate=_validate,
    input_tokens=_input_tokens,
    tool_name=_tool_name,
    ends_with_results=_ends_with_results,
    body=_body,
    events=_events,
    error_event=_error_event,
    malformed=b"data: {not json\n\n",
)
