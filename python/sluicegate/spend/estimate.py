"""How many tokens a request may cost, before it is sent: the input estimate and the output limit.

Input. Without the provider's tokenizer, the estimate counts the request's text:

- each text piece (a string the model reads: message content, text parts, system prompt,
  instructions, tool results, tool-call arguments, names) counts `ceil(ascii_chars / 4)` plus one
  token per non-ASCII character; Anthropic `tool_use` input counts as its compact JSON text, and
  tool definitions (`tools`) as their compact JSON text;
- images, documents, files and audio count `attachment_tokens` each (their base64 data is never
  counted as text), and ids, roles, types and signatures are not text;
- `per_message_tokens` for each message (role and framing) and `per_request_tokens` once (the
  reply's priming) are added; embeddings add neither, and token-array inputs count exactly.

The bound. The mock provider counts `ceil(chars / 4)` for each text piece under `text`, `content`,
`output`, `thinking`, `arguments` and the `tool_use` input's JSON (see `sluicegate.mock.reply`).
This estimate visits a superset of those pieces and counts each at least as high (for ASCII text
exactly as high; a non-ASCII character counts 1, never 1/4), so `mock_count <= estimate`, and

    estimate - mock_count <= overheads + tools_json_tokens + attachments
                             + non_ascii_chars + tokens of keys the mock skips (names, tool JSON)

With both overheads at 0, an ASCII request without tools, names or attachments is estimated
exactly as the mock counts it. Real tokenizers average about 4 characters a token on English
text; on dense text (digits, code, non-Latin scripts) they can use more tokens than
`ascii_chars / 4`, and the non-ASCII rule and the overheads absorb most of that. The estimate is
an upper bound of the mock's count, not of every tokenizer's: a provider that bills more input
tokens than reserved is recorded at settle as an overshoot (never refused).

Output. The request's own limit (the larger of `max_completion_tokens` and `max_tokens`, times
`n`, for chat: a provider may honour either; `max_output_tokens` for Responses, `max_tokens` for
Anthropic, 0 for embeddings), or None when it sets none: the pipeline then uses
`PriceBook.output_limit`. `clamp_output` writes a lower limit into the request for
`on_insufficient = "clamp"`.

The numbers read are checked, since the reservation is only as good as they are: each output limit
must be an integer from 1 to 2**31 - 1 and `n` one from 1 to 128 (the OpenAI API's own bounds), or
absent or null. Anything else (a float such as `1e13`, a string, a bool, 0, a negative or a huge
number) is refused with a 400 that names the parameter, rather than being read as "no limit".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from sluicegate._core import estimate_walk
from sluicegate.errors import InvalidRequest
from sluicegate.spend.caps import EstimateSettings

__all__ = ["MAX_CHOICES", "MAX_OUTPUT_TOKENS", "Estimate", "clamp_output", "estimate", "text_tokens"]

MAX_OUTPUT_TOKENS = 2**31 - 1  # an output limit is an int32 to the OpenAI API
MAX_CHOICES = 128  # the OpenAI API's largest `n`

# Keys whose string values are not text the model reads (ids, enums, payloads, signatures).
_NOT_TEXT = frozenset(
    {
        "role",
        "type",
        "id",
        "tool_call_id",
        "tool_use_id",
        "call_id",
        "cache_control",
        "signature",
        "data",
        "url",
        "image_url",
        "file_data",
        "file_id",
        "detail",
        "media_type",
        "format",
        "status",
        "encrypted_content",
    }
)
# Parts that are attachments (counted as `attachment_tokens`, never by their bytes).
_ATTACHMENTS = frozenset(
    {"image", "image_url", "input_image", "document", "file", "input_file", "input_audio", "audio"}
)
_DEFAULT = EstimateSettings()


def text_tokens(text: str) -> int:
    """Estimated tokens of one text piece: ceil(ascii / 4) plus one per non-ASCII character."""
    if text.isascii():
        return (len(text) + 3) // 4
    ascii_chars = sum(1 for c in text if c < "\x80")
    return (ascii_chars + 3) // 4 + (len(text) - ascii_chars)


def _json_tokens(value: Any) -> int:
    return text_tokens(orjson.dumps(value).decode())


class _Counter:
    __slots__ = ("attachments", "messages", "settings", "tokens")

    def __init__(self, settings: EstimateSettings) -> None:
        self.settings = settings
        self.tokens = 0
        self.messages = 0
        self.attachments = 0

    def walk(self, value: Any) -> None:
        """Count `value`'s text (in Rust: `_core.estimate_walk`, the same walk as `walk_py`)."""
        tokens, attachments, tool_inputs = estimate_walk(value, _NOT_TEXT, _ATTACHMENTS)
        self.tokens += tokens
        self.attachments += attachments
        for tool_input in tool_inputs:  # a tool_use block's input object: counted as its JSON
            self.tokens += _json_tokens(tool_input)

    def walk_py(self, value: Any) -> None:
        """The walk in Python: what `walk` computes, kept as its specification (a property test
        compares the two)."""
        if isinstance(value, str):
            self.tokens += text_tokens(value)
        elif isinstance(value, list):
            for item in value:
                self.walk_py(item)
        elif isinstance(value, dict):
            kind = value.get("type")
            if isinstance(kind, str) and kind in _ATTACHMENTS:
                self.attachments += 1
                return
            if kind == "tool_use" and isinstance(value.get("input"), dict):
                self.tokens += _json_tokens(value["input"])
                value = {k: v for k, v in value.items() if k != "input"}
            for key, item in value.items():
                if key not in _NOT_TEXT:
                    self.walk_py(item)

    def messages_of(self, value: Any) -> None:
        if isinstance(value, list):
            self.messages += len(value)
        elif isinstance(value, str):
            self.messages += 1  # Responses `input` as a string is one user message
        self.walk(value)

    def total(self) -> int:
        s = self.settings
        return (
            self.tokens
            + self.messages * s.per_message_tokens
            + s.per_request_tokens
            + self.attachments * s.attachment_tokens
        )


@dataclass(frozen=True, slots=True)
class Estimate:
    """A request's token bounds before it is sent.

    Attributes:
        input_tokens: the input estimate (see the module docstring for the bound).
        output_tokens: the output limit the request sets, times `choices`; None when it sets none.
        choices: how many completions it asks for (`n`).
    """

    input_tokens: int
    output_tokens: int | None
    choices: int = 1


def _count(body: Mapping[str, Any], name: str, high: int) -> int | None:
    """`body[name]`, an integer from 1 to `high`, or None when it is absent or null.

    Raises:
        InvalidRequest: anything else (400, naming the parameter).
    """
    value = body.get(name)
    if value is None:
        return None
    if type(value) is not int:  # a bool, a float (1e13, 100.0), a string, a list, an object
        problem = "invalid_type"
    elif value < 1:
        problem = "integer_below_min_value"
    elif value > high:
        problem = "integer_above_max_value"
    else:
        return value
    raise InvalidRequest(f"'{name}' must be an integer from 1 to {high}", code=problem, param=name)


def _chat_limit(body: Mapping[str, Any]) -> int | None:
    """The larger of the two chat output limits that are set (a provider may honour either)."""
    completion = _count(body, "max_completion_tokens", MAX_OUTPUT_TOKENS)
    tokens = _count(body, "max_tokens", MAX_OUTPUT_TOKENS)
    if completion is None or tokens is None:
        return tokens if completion is None else completion
    return max(completion, tokens)


def _embedding_tokens(value: Any) -> int:
    if isinstance(value, str):
        return text_tokens(value)
    if isinstance(value, list):
        if value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return len(value)
        return sum(_embedding_tokens(v) for v in value)
    return 0


def estimate(body: Mapping[str, Any], fmt: str, settings: EstimateSettings = _DEFAULT) -> Estimate:
    """Token bounds of a parsed request body.

    Arguments:
        body: the request JSON as the client sent it.
        fmt: the wire format's name (`openai_chat`, `openai_responses`, `openai_embeddings`,
            `anthropic_messages`, `anthropic_count_tokens`).
        settings: the overheads.

    Returns:
        The estimate; `anthropic_count_tokens` costs nothing (0 and 0).

    Raises:
        InvalidRequest: an output limit or `n` of the wrong type or out of range (see the module docstring).
        ValueError: an unknown format name.
    """
    if fmt == "openai_embeddings":
        return Estimate(max(1, _embedding_tokens(body.get("input"))), 0)
    if fmt == "anthropic_count_tokens":
        return Estimate(0, 0)
    counter = _Counter(settings)
    if fmt == "openai_chat":
        counter.messages_of(body.get("messages"))
        choices = _count(body, "n", MAX_CHOICES) or 1
        limit = _chat_limit(body)
        output = None if limit is None else limit * choices
    elif fmt == "openai_responses":
        counter.walk(body.get("instructions"))
        counter.messages_of(body.get("input"))
        choices, output = 1, _count(body, "max_output_tokens", MAX_OUTPUT_TOKENS)
    elif fmt == "anthropic_messages":
        counter.walk(body.get("system"))
        counter.messages_of(body.get("messages"))
        choices, output = 1, _count(body, "max_tokens", MAX_OUTPUT_TOKENS)
    else:
        raise ValueError(f"no token estimate for format {fmt!r}")
    tools = body.get("tools")
    if tools:
        counter.tokens += _json_tokens(tools)
    return Estimate(max(1, counter.total()), output, choices)


def clamp_output(body: dict[str, Any], fmt: str, output_tokens: int) -> int:
    """Lower the request's output limit so all its choices together produce at most
    `output_tokens`; returns the per-choice limit now in force (at least 1).

    Chat lowers whichever of `max_completion_tokens` and `max_tokens` the client sent (and writes
    `max_tokens` when it sent neither); Responses writes `max_output_tokens`, Anthropic
    `max_tokens`. A limit already lower is kept.

    Raises:
        InvalidRequest: a limit or `n` that `estimate` would refuse.
        ValueError: a format without an output limit.
    """
    fields: list[str]
    if fmt == "openai_chat":
        choices = _count(body, "n", MAX_CHOICES) or 1
        per_choice = max(1, output_tokens // choices)
        fields = [f for f in ("max_completion_tokens", "max_tokens") if f in body] or ["max_tokens"]
    elif fmt == "openai_responses":
        per_choice, fields = max(1, output_tokens), ["max_output_tokens"]
    elif fmt == "anthropic_messages":
        per_choice, fields = max(1, output_tokens), ["max_tokens"]
    else:
        raise ValueError(f"format {fmt!r} has no output limit to clamp")
    written = per_choice
    for field in fields:
        current = _count(body, field, MAX_OUTPUT_TOKENS)
        if current is None or current > per_choice:
            body[field] = per_choice
        written = min(written, int(body[field]))
    return written
