"""OpenAI chat completions (`POST /v1/chat/completions`).

Streams are `data: <chunk>` events ending with `data: [DONE]`. sluicegate always asks upstream
for `stream_options.include_usage`, so the final usage chunk (`choices: []`) always arrives; it is
dropped again when the client did not ask for it.
"""

from __future__ import annotations

from typing import Any

import orjson

from sluicegate.formats.base import (
    StreamOutput,
    StreamTap,
    TextFilter,
    Usage,
    WireFormat,
    count,
    order,
    parse_event_json,
    stream_key,
)
from sluicegate.formats.slots import Field, Shape, all_strings, text_fields
from sluicegate.formats.sse import Event, encode


def chat_usage(usage: Any) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens_details") or {}
    completion = usage.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=count(usage.get("prompt_tokens")),
        output_tokens=count(usage.get("completion_tokens")),
        cache_read_tokens=count(prompt.get("cached_tokens")) if isinstance(prompt, dict) else 0,
        cache_write_tokens=count(prompt.get("cache_write_tokens")) if isinstance(prompt, dict) else 0,
        reasoning_tokens=count(completion.get("reasoning_tokens")) if isinstance(completion, dict) else 0,
    )


def wants_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


# Where text is not (see `slots.Shape`): every other string of a request, a response and a stream
# chunk is scanned, unknown fields and everything under tool parameters, schemas and metadata too.
_FUNCTION = Shape(json={"arguments"})  # its name is text
_TOOL_CALL = Shape({"id", "type"}, {"function": _FUNCTION})
_PART = Shape(
    {"type"},
    {
        "image_url": Shape({"detail"}, urls={"url"}),  # a base64 data: URL is media; any other URL is text
        "input_audio": Shape({"data", "format"}),  # base64 audio
        "file": Shape({"file_id", "file_data"}),  # base64 file bytes
    },
)
_AUDIO = Shape({"id", "data", "expires_at"})  # base64 audio; its transcript is text
_MESSAGE = Shape(
    {"role", "tool_call_id"},
    {"content": _PART, "tool_calls": _TOOL_CALL, "function_call": _FUNCTION, "audio": _AUDIO},
)
REQUEST = Shape(
    {"model"}, {"messages": _MESSAGE, "moderation": Shape({"model"}), "audio": Shape(kids={"voice": Shape({"id"})})}
)
# Logprob entries are scanned as one run of tokens, so a value cut across tokens is seen whole.
_LOGPROBS = Shape(runs={"content", "refusal"})
_RESPONSE_MESSAGE = Shape({"role"}, {"tool_calls": _TOOL_CALL, "function_call": _FUNCTION, "audio": _AUDIO})
_TOP = {"id", "object", "created", "model", "system_fingerprint", "service_tier", "obfuscation"}
RESPONSE = Shape(_TOP, {"choices": Shape({"finish_reason"}, {"message": _RESPONSE_MESSAGE, "logprobs": _LOGPROBS})})
DELTA = Shape({"role"}, {"tool_calls": _TOOL_CALL, "function_call": _FUNCTION, "audio": _AUDIO})
CHUNK = Shape(_TOP, {"choices": Shape({"finish_reason"}, {"delta": DELTA})})
# A chunk with nothing but these (no logprobs, no field not known yet, `usage` null as OpenAI sends it
# in every chunk once usage is asked for) has no text outside its deltas: the common chunk skips the
# walk of the rest. (A `usage` object is not a scalar, so the chunk that carries it is walked.)
_PLAIN_CHUNK = frozenset({*_TOP, "choices", "usage"})
_PLAIN_CHOICE = frozenset({"index", "delta", "finish_reason", "logprobs"})
_DELTA_SKIP = DELTA.skip


class ChatOutput(StreamOutput):
    """What a client assembles from a chat stream: each choice's content, and its tool calls (id,
    function name, arguments)."""

    __slots__ = ("calls",)

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[tuple[Any, Any], dict[str, str]] = {}  # (choice, call index) -> id and name

    def add(self, data: dict[str, Any]) -> None:
        texts = self.texts
        choices = data.get("choices")
        for choice in choices if type(choices) is list else ():
            delta = choice.get("delta") if type(choice) is dict else None
            if type(delta) is not dict:
                continue
            index = choice.get("index", 0)
            if type(index) is not int:
                index = stream_key(index)[0]
            content = delta.get("content")
            if type(content) is str:
                texts.setdefault(("content", index), []).append(content)
            calls = delta.get("tool_calls")
            for call in calls if type(calls) is list else ():
                if type(call) is not dict:
                    continue
                where = stream_key(call.get("index", 0))[0]
                function = call.get("function")
                args = function.get("arguments") if type(function) is dict else None
                if type(args) is str:
                    texts.setdefault(("tool", index, where), []).append(args)
                name = function.get("name") if type(function) is dict else None
                if type(name) is str or type(call.get("id")) is str:  # a call's first delta
                    known = self.calls.setdefault((index, where), {})
                    if type(call.get("id")) is str:
                        known.setdefault("id", call["id"])
                    if type(name) is str:
                        known.setdefault("name", name)

    def result(self) -> dict[str, Any]:
        choices: dict[Any, dict[str, Any]] = {}
        for key, parts in self.texts.items():
            text = "".join(parts)
            message = choices.setdefault(key[1], {"role": "assistant", "content": ""})
            if key[0] == "content":
                message["content"] += text
            else:
                known = self.calls.get((key[1], key[2]), {})
                call: dict[str, Any] = {"type": "function", "function": {"arguments": text}}
                if "id" in known:
                    call["id"] = known["id"]
                if "name" in known:
                    call["function"]["name"] = known["name"]
                message.setdefault("tool_calls", []).append(call)
        ordered = sorted(choices.items(), key=lambda kv: order(kv[0]))
        return {"choices": [{"index": i, "message": m} for i, m in ordered]}


class ChatTap(StreamTap):
    """With a filter: every string of a delta that streams (content, refusal, reasoning text, any
    field not known yet, the audio transcript, tool-call and function-call arguments as JSON) and
    the logprob tokens pass through it as streams, one per choice and field; at a choice's
    finish, what each held back is appended to that same chunk. Every other string of a chunk
    (tool names, annotations, unknown fields) is rewritten whole."""

    __slots__ = ("_open",)

    def __init__(self, include_usage: bool = True, filter: TextFilter | None = None) -> None:
        super().__init__(include_usage, filter)
        self._open: dict[Any, dict[tuple[Any, ...], None]] = {}  # choice -> its open streams, in order

    def process(self, event: Event) -> bytes | None:
        if event.data == b"[DONE]":
            self.saw_end = True
            return event.raw + b"\n\n"
        chunk = parse_event_json(event)
        if not isinstance(chunk, dict):
            return event.raw + b"\n\n"
        if chunk.get("usage") is not None:
            self.usage = chat_usage(chunk["usage"]) or self.usage
            if not self.include_usage and not chunk.get("choices"):
                return None
        out = encode(orjson.dumps(chunk)) if self.filter is not None and self._filter(chunk) else event.raw + b"\n\n"
        if self.transcript is not None:
            self.transcript.add(chunk)  # as sent: the filter rewrote it in place
        return out

    def _filter(self, chunk: dict[str, Any]) -> bool:
        choices = chunk.get("choices")
        # The common chunk (one choice, a delta of strings only, nothing else that is not a scalar
        # under a known key, not its last): its delta's texts are all there is to filter.
        if type(choices) is list and len(choices) == 1:
            choice = choices[0]
            if type(choice) is dict and choice.get("finish_reason") is None and choice.get("logprobs") is None:
                delta = choice.get("delta")
                if type(delta) is dict and _plain_delta(chunk, choice, delta):
                    index = choice.get("index", 0)
                    return self._texts(index if isinstance(index, int) else repr(index), delta)
        held: list[tuple[dict[str, Any], Any, Any]] = []
        plain = chunk.keys() <= _PLAIN_CHUNK and _scalars(chunk, "choices")
        for choice in choices if isinstance(choices, list) else ():
            if isinstance(choice, dict):  # deltas and logprobs stream; the rest of the chunk is whole
                delta, logprobs = choice.get("delta"), choice.get("logprobs")
                held.append((choice, delta if isinstance(delta, dict) else None, logprobs))
                plain = plain and choice.keys() <= _PLAIN_CHOICE and _scalars(choice, "delta") and logprobs is None
            else:
                plain = False
        changed = False
        if not plain:  # whole, but for the deltas and logprobs that stream (set aside meanwhile)
            for choice, delta, logprobs in held:
                if delta is not None:
                    choice["delta"] = None
                if isinstance(logprobs, dict):
                    choice["logprobs"] = None
            changed = self.rewrite(text_fields(chunk, CHUNK))
            for choice, delta, logprobs in held:
                if delta is not None:
                    choice["delta"] = delta
                if isinstance(logprobs, dict):
                    choice["logprobs"] = logprobs
        for choice, delta, logprobs in held:
            index = choice.get("index", 0)
            index = index if isinstance(index, int) else repr(index)
            if isinstance(delta, dict):
                changed |= self._delta(index, delta)
            if isinstance(logprobs, dict):
                changed |= self._logprobs(index, logprobs)
            if choice.get("finish_reason") is not None:
                changed |= self._finish(index, choice)
        return changed

    def _delta(self, index: Any, delta: dict[str, Any]) -> bool:
        f, jf = self.filter, self.json_filter
        assert f is not None and jf is not None
        if [*map(type, delta.values())].count(str) == len(delta):  # the common delta: text fields only
            return self._texts(index, delta)
        opened = self._open.setdefault(index, {})
        changed = False
        calls = delta.get("tool_calls")
        inner = {  # a tool call's function (JSON arguments) or custom call (text input) -> (call index, kind)
            id(call[kind]): (stream_key(call.get("index", 0))[0], kind)
            for call in (calls if isinstance(calls, list) else ())
            if isinstance(call, dict)
            for kind in ("function", "custom")
            if isinstance(call.get(kind), dict)
        }
        fc, audio = delta.get("function_call"), delta.get("audio")
        whole: list[Field] = []
        stream: tuple[Any, ...]
        container: Any
        key: Any
        for field in text_fields(delta, DELTA):
            container, key = field if type(field) is tuple else (field.container, field.key)  # type: ignore[union-attr]
            if not isinstance(container[key], str):  # a number: complete, not streamed
                whole.append(field)
                continue
            if container is delta:
                stream, g = ("delta", key), f
            elif id(container) in inner and key in ("arguments", "input"):
                stream, g = ("tool", *inner[id(container)], key), jf if key == "arguments" else f
            elif key == "arguments" and container is fc:
                stream, g = ("function_call", "arguments"), jf
            elif key == "transcript" and container is audio:
                stream, g = ("audio", "transcript"), f
            else:
                whole.append(field)
                continue
            text = container[key]
            out = g.feed((index, *stream), text)
            opened[stream] = None
            if out != text:
                container[key] = out
                changed = True
        return self.rewrite(whole) or changed

    def _texts(self, index: Any, delta: dict[str, str]) -> bool:
        """A delta whose every value is a string: each (but the non-text ones) streams."""
        f = self.filter
        assert f is not None
        opened = self._open.get(index)
        if opened is None:
            opened = self._open[index] = {}
        changed = False
        for name, text in delta.items():
            if text and name not in _DELTA_SKIP:
                out = f.feed((index, "delta", name), text)
                opened["delta", name] = None
                if out != text:
                    delta[name] = out
                    changed = True
        return changed

    def _logprobs(self, index: Any, logprobs: dict[str, Any]) -> bool:
        f = self.filter
        assert f is not None
        opened = self._open.setdefault(index, {})
        whole: list[Field] = []
        changed = False
        for name, entries in logprobs.items():
            if name not in ("content", "refusal") or not isinstance(entries, list):
                whole += all_strings(entries)
                continue
            for entry in entries:
                if not isinstance(entry, dict):
                    continue
                token = entry.get("token")
                if isinstance(token, str):
                    out = f.feed((index, "logprobs", name), token)
                    opened["logprobs", name] = None
                    if out != token:
                        entry["token"] = out
                        if entry.get("bytes") is not None:
                            entry["bytes"] = list(out.encode())
                        changed = True
                whole += [s for s in all_strings(entry) if s.container is not entry or s.key != "token"]
        return self.rewrite(whole) or changed

    def _finish(self, index: Any, choice: dict[str, Any]) -> bool:
        """Append what each of the choice's streams held back to this, its last chunk."""
        f, jf = self.filter, self.json_filter
        assert f is not None and jf is not None
        changed = False
        for stream in self._open.pop(index, {}):
            json = stream[0] == "function_call" or (stream[0] == "tool" and stream[3] == "arguments")
            rest = (jf if json else f).flush((index, *stream))
            if not rest:
                continue
            changed = True
            if stream[0] == "logprobs":
                logprobs = _dict_in(choice, "logprobs")
                entries = logprobs[stream[1]] if isinstance(logprobs.get(stream[1]), list) else []
                logprobs[stream[1]] = entries
                entries.append({"token": rest, "logprob": 0.0, "bytes": list(rest.encode()), "top_logprobs": []})
                continue
            delta = _dict_in(choice, "delta")
            if stream[0] == "delta":
                _append(delta, stream[1], rest)
            elif stream[0] == "tool":
                calls = delta["tool_calls"] if isinstance(delta.get("tool_calls"), list) else []
                delta["tool_calls"] = calls
                calls.append({"index": stream[1], stream[2]: {stream[3]: rest}})
            else:  # function_call.arguments, audio.transcript
                _append(_dict_in(delta, stream[0]), stream[1], rest)
        return changed


def _plain_delta(chunk: dict[str, Any], choice: dict[str, Any], delta: dict[str, Any]) -> bool:
    """Whether a chunk of one choice (a list, with `delta` an object in it) holds nothing to
    filter but the strings of `delta`: only known keys, no object or list but the choices and the
    delta, and every value of the delta a string. (Counted with C-level calls: this is the test
    every streamed chunk takes.)"""
    if not (chunk.keys() <= _PLAIN_CHUNK and choice.keys() <= _PLAIN_CHOICE):
        return False
    kinds = [*map(type, chunk.values()), *map(type, choice.values())]
    if kinds.count(dict) + kinds.count(list) != 2:  # the choices list and the delta, nothing else
        return False
    return [*map(type, delta.values())].count(str) == len(delta)


def _scalars(obj: dict[str, Any], but: str) -> bool:
    """Whether every value of `obj` but `obj[but]` is a scalar (a string under a skipped key, or a
    number, a bool, null): the cheap test that a chunk has nothing to walk but its deltas."""
    for k, v in obj.items():  # noqa: SIM110 (a loop: no generator per chunk)
        if (type(v) is dict or type(v) is list) and k != but:
            return False
    return True


def _dict_in(parent: dict[str, Any], key: str) -> dict[str, Any]:
    """`parent[key]`, made an empty object first if it is not one."""
    value = parent.get(key)
    if not isinstance(value, dict):
        value = parent[key] = {}
    return value


def _append(obj: dict[str, Any], key: str, text: str) -> None:
    before = obj.get(key)
    obj[key] = (before if isinstance(before, str) else "") + text


class OpenAIChat(WireFormat):
    name = "openai_chat"
    path = "/v1/chat/completions"
    family = "openai"
    # A provider may honour either limit, so both are lowered; `max_tokens` is written when neither is set.
    output_limits = ("max_completion_tokens", "max_tokens")
    field_synonyms = {
        "max_tokens": output_limits,
        "max_completion_tokens": output_limits,
        "max_output_tokens": output_limits,
        "stop_sequences": ("stop",),
    }

    def prepare(self, body: dict[str, Any]) -> bool:
        if body.get("stream") is not True or wants_usage(body):
            return False
        options = body.get("stream_options")
        if options is not None and not isinstance(options, dict):
            return False  # the provider will refuse it with its own message
        body["stream_options"] = {**(options or {}), "include_usage": True}
        return True

    def usage(self, body: Any) -> Usage | None:
        return chat_usage(body.get("usage")) if isinstance(body, dict) else None

    request_shape = REQUEST
    response_shape = RESPONSE

    def stream_output(self) -> StreamOutput:
        return ChatOutput()

    def tap(self, body: dict[str, Any], filter: TextFilter | None = None) -> StreamTap:
        return ChatTap(wants_usage(body), filter)


OPENAI_CHAT = OpenAIChat()
