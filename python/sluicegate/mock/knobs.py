"""Knobs: how a test tells the mock provider what to answer.

Every knob can be set by an `x-mock-*` request header or by a suffix of the model name,
`<model>@knob=value,knob=value` (for example `mock-gpt@chunks=5,delay_ms=10`). When a model
carries knobs, the response's `model` is the part before the first `@`. A header wins over the
same knob in the model name; knobs from both sources otherwise combine. Knob names may be
written with `_` or `-` in either place. A boolean knob given alone in the model suffix
(`mock-gpt@echo`) is true. Values in the model suffix are percent-decoded, so a reply can hold
a comma (`reply=a%2Cb`); an `x-mock-reply` header is taken literally (UTF-8 when it decodes as
such). An unknown knob or a bad value is an error naming the knob (the mock answers 400 in the
format of the path).

| name            | header                 | model suffix      | default | meaning                                     |
|-----------------|------------------------|-------------------|---------|---------------------------------------------|
| `chunks`        | `x-mock-chunks`        | `chunks=N`        | 8       | content deltas in a stream of the           |
|                 |                        |                   |         | default reply                               |
| `chunk_size`    | `x-mock-chunk-size`    | `chunk_size=N`    | 6       | characters per delta; the default reply     |
|                 |                        |                   |         | is `chunks * chunk_size` characters of a    |
|                 |                        |                   |         | fixed sentence (repeated); `reply`, `echo`  |
|                 |                        |                   |         | and tool arguments are cut at this size     |
| `reply`         | `x-mock-reply`         | `reply=TEXT`      | none    | literal reply text (not the sentence)       |
| `delay_ms`      | `x-mock-delay-ms`      | `delay_ms=N`      | 0       | pause between stream events (streams)       |
| `first_byte_ms` | `x-mock-first-byte-ms` | `first_byte_ms=N` | 0       | pause before the status line                |
| `echo`          | `x-mock-echo`          | `echo`, `echo=1`  | false   | reply with the JSON `{"method", "path",     |
|                 |                        |                   |         | "headers", "body"}` of the request, without |
|                 |                        |                   |         | credential headers (`authorization`,        |
|                 |                        |                   |         | `x-api-key`, any name with `auth`, `key`,   |
|                 |                        |                   |         | `token`, `secret`, … in it)                 |
| `tool_call`     | `x-mock-tool-call`     | `tool_call=1`     | false   | if the request defines tools, call the      |
|                 |                        |                   |         | first with arguments `{"text": <reply>}`    |
| `call_tools`    | `x-mock-call-tools`    | `call_tools=a+b`  | none    | call these tools, in order, each with those |
|                 |                        |                   |         | arguments, defined in the request or not    |
| `then_answer`   | `x-mock-then-answer`   | `then_answer`     | false   | with `tool_call` or `call_tools`: answer in |
|                 |                        |                   |         | text when the request ends with tool        |
|                 |                        |                   |         | results (as a model does once it has what   |
|                 |                        |                   |         | it asked for), so an agent's loop ends      |
| `fault`         | `x-mock-fault`         | `fault=NAME`      | none    | inject a fault, see below                   |
| `fault_after`   | `x-mock-fault-after`   | `fault_after=N`   | 2       | stream events sent before a stream fault    |
| `fault_bytes`   | `x-mock-fault-bytes`   | `fault_bytes=N`   | 0       | `disconnect`: this many bytes of the next   |
|                 |                        |                   |         | event go out before the break (a cut inside |
|                 |                        |                   |         | an event; at most the event less one byte)  |
| `fault_times`   | `x-mock-fault-times`   | `fault_times=N`   | 0       | the fault fires on the first N requests     |
|                 |                        |                   |         | with this same model string, then answers   |
|                 |                        |                   |         | are normal (0: always; counted per process, |
|                 |                        |                   |         | reset by `POST /mock/stats/reset`)          |
| `retry_after`   | `x-mock-retry-after`   | `retry_after=S`   | none    | 429/503/529 send `retry-after: S` (seconds) |
|                 |                        |                   |         | instead of `retry-after-ms: 10`             |
| `cached_tokens` | `x-mock-cached-tokens` | `cached_tokens=N` | 0       | cached input tokens: OpenAI                 |
|                 |                        |                   |         | `cached_tokens` (added to `prompt_tokens`), |
|                 |                        |                   |         | Anthropic `cache_read_input_tokens`         |
|                 |                        |                   |         | (beside `input_tokens`)                     |

Faults (`fault=`):

| value             | effect                                                                            |
|-------------------|-----------------------------------------------------------------------------------|
| `429`             | rate-limit error in the path's format, with `retry-after-ms: 10`                   |
| `500`             | server error in the path's format                                                 |
| `500_billed`      | a 500 whose OpenAI-format body reports usage (2 in, 10 out), as a billed failure  |
| `503`             | unavailable error in the path's format, with `retry-after-ms: 10`                  |
| `529`             | overloaded error (`overloaded_error`), with `retry-after-ms: 10`                   |
| `context_length`  | 400 refusing the prompt as too long: OpenAI code `context_length_exceeded`,       |
|                   | Anthropic `invalid_request_error` "prompt is too long: …"                         |
| `content_policy`  | 400 refusing for content policy: OpenAI code `content_policy_violation`,         |
|                   | Anthropic `invalid_request_error` "Output blocked by content filtering policy"   |
| `slow_first_byte` | wait `first_byte_ms` (5000 when that is 0) before the status line                 |
| `disconnect`      | after `fault_after` events the connection breaks with no proper end of body       |
| `malformed`       | after `fault_after` events one event carries `data: {not json`, then the rest     |
| `error_event`     | after `fault_after` events a well-formed in-stream error event ends the stream    |

Stream faults always fire before the stream's last event, even when `fault_after` is larger.
On a request that does not stream, `disconnect` breaks the body, `malformed` sends a body that
is not JSON, and `error_event` answers 500 with the format's error body.

Process-wide knobs: a mock process may be given knobs for every request it answers, in the model
suffix's syntax (`fault=429,retry_after=1`): at start from the `SLUICEGATE_MOCK_KNOBS` variable,
and at any time by `PUT /mock/knobs` (the body is the knob text; empty clears them; `GET
/mock/knobs` reads them). A request's own knobs (model suffix, headers) win over them. This is how
a test makes one of several mock processes a failing deployment of a model whose name carries no
knobs, and heals it later.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, Literal, get_args
from urllib.parse import unquote

__all__ = [
    "DEFAULT_KNOBS",
    "FAULTS",
    "HEADER_PREFIX",
    "Fault",
    "KnobError",
    "Knobs",
    "parse_knob_text",
    "parse_knobs",
    "split_model",
]

Fault = Literal[
    "429",
    "500",
    "500_billed",
    "503",
    "529",
    "context_length",
    "content_policy",
    "slow_first_byte",
    "disconnect",
    "malformed",
    "error_event",
]
FAULTS: Final[frozenset[str]] = frozenset(get_args(Fault))
HEADER_PREFIX: Final = "x-mock-"

# Upper bounds keep a typo from turning into an hour-long sleep or a gigabyte reply.
_MAX_COUNT: Final = 1_000_000
_MAX_MS: Final = 600_000


class KnobError(ValueError):
    """A knob that does not exist or has a bad value.

    Attributes:
        knob: the knob's name (`chunks`, `fault`...), or the name as written when unknown.
    """

    def __init__(self, knob: str, message: str) -> None:
        super().__init__(f"mock knob {knob!r}: {message}")
        self.knob = knob


@dataclass(frozen=True, slots=True)
class Knobs:
    """What the mock provider should do with one request (see the module docstring)."""

    chunks: int = 8
    chunk_size: int = 6
    reply: str | None = None
    delay_ms: int = 0
    first_byte_ms: int = 0
    echo: bool = False
    tool_call: bool = False
    call_tools: str | None = None  # names joined by "+"
    then_answer: bool = False
    fault: Fault | None = None
    fault_after: int = 2
    fault_bytes: int = 0
    fault_times: int = 0
    retry_after: int | None = None
    cached_tokens: int = 0


DEFAULT_KNOBS: Final = Knobs()

_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})


def _int(low: int, high: int) -> Callable[[str, str], int]:
    def parse(knob: str, raw: str) -> int:
        text = raw.strip()
        if not text or not (text.isdigit() or (text[0] in "+-" and text[1:].isdigit())):
            raise KnobError(knob, f"expected an integer, got {raw!r}")
        value = int(text)
        if not low <= value <= high:
            raise KnobError(knob, f"must be between {low} and {high}, got {value}")
        return value

    return parse


def _bool(knob: str, raw: str) -> bool:
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise KnobError(knob, f"expected a boolean (1/0, true/false, yes/no, on/off), got {raw!r}")


def _fault(knob: str, raw: str) -> str:
    text = raw.strip().lower()
    if text not in FAULTS:
        raise KnobError(knob, f"expected one of {', '.join(sorted(FAULTS))}, got {raw!r}")
    return text


def _text(knob: str, raw: str) -> str:
    return raw


_PARSERS: Final[dict[str, Callable[[str, str], Any]]] = {
    "chunks": _int(0, _MAX_COUNT),
    "chunk_size": _int(1, _MAX_COUNT),
    "reply": _text,
    "delay_ms": _int(0, _MAX_MS),
    "first_byte_ms": _int(0, _MAX_MS),
    "echo": _bool,
    "tool_call": _bool,
    "call_tools": _text,
    "then_answer": _bool,
    "fault": _fault,
    "fault_after": _int(0, _MAX_COUNT),
    "fault_bytes": _int(0, _MAX_COUNT),
    "fault_times": _int(0, _MAX_COUNT),
    "retry_after": _int(0, 86_400),
    "cached_tokens": _int(0, 1_000_000_000),
}
_BOOLS: Final = frozenset({"echo", "tool_call", "then_answer"})


def _knob_name(written: str) -> str:
    name = written.strip().lower().replace("-", "_")
    if name not in _PARSERS:
        raise KnobError(written, f"unknown knob; known: {', '.join(_PARSERS)}")
    return name


def split_model(model: str) -> tuple[str, dict[str, str]]:
    """Split `model@knob=value,...` into the model name and the raw knob values.

    Arguments:
        model: the request's `model` field.

    Returns:
        The part before the first `@`, and the knobs after it by canonical name, values
        percent-decoded (not yet validated). A model without `@` gives an empty dict.

    Raises:
        KnobError: a knob that does not exist, or a non-boolean knob without a value.
    """
    base, at, suffix = model.partition("@")
    if not at:
        return model, {}
    raw: dict[str, str] = {}
    for item in suffix.split(","):
        if not item.strip():
            continue
        written, eq, value = item.partition("=")
        name = _knob_name(written)
        if not eq:
            if name not in _BOOLS:
                raise KnobError(name, "needs a value (knob=value)")
            value = "1"
        raw[name] = unquote(value)
    return base, raw


def _header_reply(value: str) -> str:
    # ASGI servers hand header values over as latin-1; a client that sent UTF-8 gets it back.
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def parse_knob_text(text: str) -> dict[str, str]:
    """Knobs written as a model suffix without the model (`fault=429,retry_after=1`), checked:
    the raw values by canonical name (the process-wide knobs; see the module docstring).

    Raises:
        KnobError: an unknown knob, or a value that is malformed or out of range.
    """
    _, raw = split_model("@" + text)
    for name, value in raw.items():
        _PARSERS[name](name, value)
    return raw


def parse_knobs(
    headers: Mapping[str, str], model: str | None = None, defaults: Mapping[str, str] | None = None
) -> tuple[Knobs, str | None]:
    """Read the knobs of one request from its headers and its model name.

    Arguments:
        headers: the request headers, names in lower case.
        model: the request's `model` field, if it has one.
        defaults: the process-wide knobs (`parse_knob_text`), beneath the request's own.

    Returns:
        The knobs (the shared `DEFAULT_KNOBS` when none is set) and the model name without its
        knob suffix (None when `model` is None).

    Raises:
        KnobError: an unknown knob, or a value that is malformed or out of range.
    """
    raw: dict[str, str] = dict(defaults) if defaults else {}
    base = model
    if model is not None and "@" in model:
        base, suffix = split_model(model)
        raw.update(suffix)
    for name, value in headers.items():
        if name.startswith(HEADER_PREFIX):
            knob = _knob_name(name[len(HEADER_PREFIX) :])
            raw[knob] = _header_reply(value) if knob == "reply" else value
    if not raw:
        return DEFAULT_KNOBS, base
    return replace(DEFAULT_KNOBS, **{name: _PARSERS[name](name, value) for name, value in raw.items()}), base
