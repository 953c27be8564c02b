"""The interface every generating wire format of the mock implements (chat, responses, messages)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sluicegate.mock.reply import Turn

__all__ = ["Wire"]


@dataclass(frozen=True, slots=True)
class Wire:
    """How one wire format reads a request and dresses a `Turn`.

    Attributes:
        anthropic: errors use the Anthropic body (else the OpenAI one).
        validate: raises `MockError` for a request the real API would refuse.
        input_tokens: the request's input tokens (see `reply`).
        tool_name: the first tool the request defines, or None.
        ends_with_results: whether the request's input ends with tool results (the caller's answer
            to tool calls).
        body: the non-streamed answer, JSON bytes.
        events: the streamed answer, one SSE event per item.
        error_event: a well-formed in-stream error event, given its position in the stream.
        malformed: an event whose data is not JSON.
    """

    anthropic: bool
    validate: Callable[[dict[str, Any]], None]
    input_tokens: Callable[[dict[str, Any]], int]
    tool_name: Callable[[dict[str, Any]], str | None]
    ends_with_results: Callable[[dict[str, Any]], bool]
    body: Callable[[Turn, dict[str, Any]], bytes]
    events: Callable[[Turn, dict[str, Any]], list[bytes]]
    error_event: Callable[[int], bytes]
    malformed: bytes
