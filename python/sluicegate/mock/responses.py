"""OpenAI Responses API (`POST /v1/responses`) as the mock answers it.

Streams are `event: <type>` + `data: {"type", "sequence_number", ...}` events: response.created,
response.in_progress, response.output_item.added, then for a text reply
response.content_part.added, response.output_text.delta per piece, response.output_text.done,
response.content_part.done (for a tool call, response.function_call_arguments.delta per piece
and response.function_call_arguments.done), then response.output_item.done and
response.completed, whose `response` alone carries the usage.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from sluicegate.mock.reply import Turn, content_tokens, sse_event
from sluicegate.mock.wire import Wire

__all__ = ["RESPONSES"]


def _validate(req: dict[str, Any]) -> None:
    return None


def _input_tokens(req: dict[str, Any]) -> int:
    return content_tokens(req.get("instructions")) + content_tokens(req.get("input"))


def _tool_name(req: dict[str, Any]) -> str | None:
    for tool in req.get("tools") or ():
        if isinstance(tool, dict) and tool.get("type") == "function" and isinstance(tool.get("name"), str):
            return str(tool["name"])
    return None


def _ends_with_results(req: dict[str, Any]) -> bool:
    items = req.get("input")
    last = items[-1] if isinstance(items, list) and items else None
    return isinstance(last, dict) and last.get("type") in ("function_call_output", "custom_tool_call_output")


def _usage(turn: Turn) -> dict[str, Any]:
    prompt = turn.input_tokens + turn.cached_tokens
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": turn.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": turn.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + turn.output_tokens,
    }


def _response(turn: Turn, req: dict[str, Any], status: str, output: list[Any], usage: Any) -> dict[str, Any]:
    instructions = req.get("instructions")
    max_output = req.get("max_output_tokens")
    tools = req.get("tools")
    return {
        "id": f"resp_{turn.serial}",
        "object": "response",
        "created_at": turn.created,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": instructions if isinstance(instructions, str) else None,
        "max_output_tokens": max_output if isinstance(max_output, int) else None,
        "model": turn.model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": tools if isinstance(tools, list) else [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": {},
    }


def _part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _item(turn: Turn, status: str, text: str, k: int = 0) -> dict[str, Any]:
    """The answer's output item: its message, or its `k`th tool call."""
    if turn.tool is None:
        content = [_part(text)] if status == "completed" else []
        return {
            "id": f"msg_{turn.serial}",
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": content,
        }
    suffix = "" if k == 0 else f"_{k}"
    return {
        "id": f"fc_{turn.serial}{suffix}",
        "type": "function_call",
        "status": status,
        "call_id": f"call_{turn.serial}{suffix}",
        "name": turn.calls[k],
        "arguments": text,
    }


def _items(turn: Turn, status: str, text: str) -> list[dict[str, Any]]:
    return [_item(turn, status, text, k) for k in range(max(1, len(turn.calls)))]


def _body(turn: Turn, req: dict[str, Any]) -> bytes:
    return orjson.dumps(_response(turn, req, "completed", _items(turn, "completed", turn.text), _usage(turn)))


def _events(turn: Turn, req: dict[str, Any]) -> list[bytes]:
    started = _response(turn, req, "in_progress", [], None)
    steps: list[dict[str, Any]] = [
        {"type": "response.created", "response": started},
        {"type": "response.in_progress", "response": started},
    ]
    done_items = _items(turn, "completed", turn.text)
    for k, done_item in enumerate(done_items):
        at = {"item_id": done_item["id"], "output_index": k}
        at_part = {**at, "content_index": 0}
        steps.append(
            {"type": "response.output_item.added", "output_index": k, "item": _item(turn, "in_progress", "", k)}
        )
        if turn.tool is None:
            steps.append({"type": "response.content_part.added", **at_part, "part": _part("")})
            steps += [
                {"type": "response.output_text.delta", **at_part, "delta": p, "logprobs": []} for p in turn.pieces
            ]
            steps.append({"type": "response.output_text.done", **at_part, "text": turn.text, "logprobs": []})
            steps.append({"type": "response.content_part.done", **at_part, "part": _part(turn.text)})
        else:
            steps += [{"type": "response.function_call_arguments.delta", **at, "delta": p} for p in turn.pieces]
            name = turn.calls[k]
            steps.append({"type": "response.function_call_arguments.done", **at, "name": name, "arguments": turn.text})
        steps.append({"type": "response.output_item.done", "output_index": k, "item": done_item})
    completed = _response(turn, req, "completed", done_items, _usage(turn))
    steps.append({"type": "response.completed", "response": completed})
    return [sse_event(step["type"], {**step, "sequence_number": n}) for n, step in enumerate(steps)]


def _error_event(sequence_number: int) -> bytes:
    # The SDK type has code/message/param at the top; captured streams nest them under `error`,
    # which is also what makes the SDK raise. Both are sent.
    code, message = "mock_error_event", "mock error_event fault"
    error = {"type": "server_error", "code": code, "message": message, "param": None}
    payload = {"type": "error", "sequence_number": sequence_number, "code": code, "message": message, "param": None}
    return sse_event("error", {**payload, "error": error})


RESPONSES: Final = Wire(
    anthropic=False,
    validate=_validate,
    input_tokens=_input_tokens,
    tool_name=_tool_name,
    ends_with_results=_ends_with_results,
    body=_body,
    events=_events,
    error_event=_error_event,
    malformed=b"event: response.output_text.delta\ndata: {not json\n\n",
)
