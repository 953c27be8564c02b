"""What the mock model says, and what it costs in tokens.

Tokens are counted the same way everywhere, so tests can predict usage exactly:

- a text of n characters is `ceil(n / 4)` tokens (`tokens()`);
- input tokens are summed over every text piece of the request, each counted on its own, and
  are at least 1: strings found under `text`, `content`, `output`, `thinking` and `arguments`
  keys at any depth of the messages (system prompt, message content, text parts, tool results,
  tool-call arguments, Responses `instructions` and `input`), and Anthropic `tool_use` input
  as compact JSON. Tool definitions are not counted;
- output tokens are `tokens()` of the whole reply text, or of the tool-call arguments JSON
  when the reply is a tool call. Streamed and non-streamed answers report the same numbers.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

import orjson

__all__ = [
    "SENTENCE",
    "Turn",
    "content_tokens",
    "cut",
    "default_pieces",
    "next_serial",
    "sse_data",
    "sse_event",
    "tokens",
]

SENTENCE: Final = "The mock provider answers every request with this same sentence. "

_serials = itertools.count(1)


def next_serial() -> str:
    """A short id unique within this host (process id and a counter), for response ids."""
    return f"mock{os.getpid():x}x{next(_serials):06x}"


def tokens(text: str) -> int:
    """The mock's token count of one text: ceil(chars / 4)."""
    return (len(text) + 3) // 4


def content_tokens(value: Any) -> int:
    """Tokens of every text piece in a request value (a message list, a content field...)."""
    if isinstance(value, str):
        return tokens(value)
    if isinstance(value, list):
        return sum(content_tokens(item) for item in value)
    if not isinstance(value, dict):
        return 0
    text = value.get("text")
    if isinstance(text, str):
        return tokens(text)
    total = 0
    for key in ("content", "output", "thinking", "arguments", "tool_calls", "function"):
        if key in value:
            total += content_tokens(value[key])
    tool_input = value.get("input")
    if value.get("type") == "tool_use" and isinstance(tool_input, dict):
        total += tokens(orjson.dumps(tool_input).decode())
    return total


def cut(text: str, size: int) -> list[str]:
    """`text` in pieces of `size` characters (the last may be shorter); no pieces for ''."""
    return [text[i : i + size] for i in range(0, len(text), size)]


@lru_cache(maxsize=256)
def default_pieces(chunks: int, chunk_size: int) -> tuple[str, ...]:
    """The default reply, `chunks` pieces of `chunk_size` characters of SENTENCE repeated."""
    length = chunks * chunk_size
    text = SENTENCE * (length // len(SENTENCE) + 1)
    return tuple(text[i * chunk_size : (i + 1) * chunk_size] for i in range(chunks))


@dataclass(slots=True)
class Turn:
    """One answer of the mock model, before a wire format dresses it.

    Attributes:
        serial: unique part of the ids of this answer.
        created: Unix time of the answer.
        model: the model name to report (the request's, without knobs).
        text: the whole reply: the text, or the tool-call arguments JSON when `tool` is set.
        pieces: `text` cut into stream deltas.
        tool: the name of the tool being called, or None for a text reply.
        more_tools: tools called after `tool`, each with the same arguments (`calls` lists them all).
        input_tokens: input tokens, cached ones excluded.
        cached_tokens: cached (cache-read) input tokens, on top of `input_tokens`.
        output_tokens: output tokens.
    """

    serial: str
    created: int
    model: str
    text: str
    pieces: Sequence[str]
    tool: str | None
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    more_tools: tuple[str, ...] = ()

    @property
    def calls(self) -> tuple[str, ...]:
        """Every tool called, in order (none for a text reply)."""
        return () if self.tool is None else (self.tool, *self.more_tools)

    @classmethod
    def build(
        cls,
        model: str,
        *,
        text: str | None,
        chunks: int,
        chunk_size: int,
        tool: str | None,
        input_tokens: int,
        cached_tokens: int,
        more_tools: tuple[str, ...] = (),
    ) -> Turn:
        """Make the answer: `text` (or the default sentence), as a call of `tool` if given."""
        if tool is not None:
            said = text if text is not None else "".join(default_pieces(chunks, chunk_size))
            text = orjson.dumps({"text": said}).decode()
        pieces: Sequence[str]
        if text is None:
            pieces = default_pieces(chunks, chunk_size)
            text = "".join(pieces)
        else:
            pieces = cut(text, chunk_size)
        return cls(
            serial=next_serial(),
            created=int(time.time()),
            model=model,
            text=text,
            pieces=pieces,
            tool=tool,
            input_tokens=max(1, input_tokens),
            cached_tokens=cached_tokens,
            output_tokens=tokens(text) * max(1, 1 + len(more_tools)),
            more_tools=more_tools if tool is not None else (),
        )


def sse_data(payload: Any) -> bytes:
    """One SSE event with a data line only (OpenAI chat)."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def sse_event(name: str, payload: Any) -> bytes:
    """One SSE event with an `event:` line and a data line (Responses, Anthropic)."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"
