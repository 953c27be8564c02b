"""Translation between the OpenAI chat completions and the Anthropic Messages formats, for a
request in one format routed to a provider that speaks only the other.

A `Bridge` is one direction: the client's format (`source`) to the provider's (`target`). It
translates the request body (`request`), the complete response back (`response`), an error body
back (`error`), and builds a stream translator (`stream`, in `translate_stream`). What has no
counterpart in the other format is refused with a 400 naming it (`Untranslatable`), never dropped
in silence; the few fields that are only hints (cache breakpoints, a prompt cache key) are the
documented exceptions (docs/translation.md).

Usage is converted so that the normalised `Usage` read from the translated answer equals the one
read from the provider's own: Anthropic's `input_tokens` excludes cache reads and writes, OpenAI's
`prompt_tokens` includes them (`prompt_tokens_details.cached_tokens`, `cache_write_tokens`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from sluicegate.errors import InvalidRequest, UpstreamProtocolError
from sluicegate.formats.anthropic_messages import ANTHROPIC_MESSAGES
from sluicegate.formats.base import Family, WireFormat, anthropic_error_type, count
from sluicegate.formats.openai_chat import OPENAI_CHAT

if TYPE_CHECKING:
    from sluicegate.formats.translate_stream import StreamTranslator

# An OpenAI chat request may omit its output limit; Anthropic requires one. This is what is sent.
DEFAULT_MAX_TOKENS = 4096

# Finish reasons, each way. Anthropic's `pause_turn` (server tools, never sent) ends a turn too.
FINISH_TO_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
STOP_TO_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


class Untranslatable(InvalidRequest):
    """A request feature that the provider's format cannot express (400 in the caller's format)."""

    code = "untranslatable_request"


def _refuse(param: str, what: str, target: WireFormat) -> Untranslatable:
    kind = "an Anthropic" if target.family == "anthropic" else "an OpenAI"
    return Untranslatable(
        f"{param}: {what} cannot be translated for this model, which is served by {kind}-format provider", param=param
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _media_url(url: Any, param: str, target: WireFormat) -> dict[str, Any]:
    """An OpenAI image URL (a base64 `data:` URL or a web URL) as an Anthropic image source."""
    if not isinstance(url, str) or not url:
        raise _refuse(param, "an image without a URL", target)
    if url.startswith("data:"):
        head, sep, data = url.partition(",")
        media_type, _, encoding = head[5:].partition(";")
        if not sep or encoding != "base64" or not media_type:
            raise _refuse(param, "a data: URL that is not base64", target)
        return {"type": "base64", "media_type": media_type, "data": data}
    return {"type": "url", "url": url}


def _source_url(source: Any, param: str, target: WireFormat) -> str:
    """An Anthropic image source (base64 or URL) as an OpenAI image URL."""
    if isinstance(source, dict):
        if source.get("type") == "base64" and isinstance(source.get("data"), str):
            return f"data:{source.get('media_type')};base64,{source['data']}"
        if source.get("type") == "url" and isinstance(source.get("url"), str):
            return str(source["url"])
    kind = source.get("type") if isinstance(source, dict) else None
    raise _refuse(param, f"an image source of type {kind!r}", target)


# ---------------------------------------------------------------------------------------------
# Anthropic Messages request -> OpenAI chat request


# Top-level Messages fields and what becomes of them; any other field is refused by name.
_MESSAGES_FIELDS = frozenset(
    {"model", "max_tokens", "messages", "system", "stop_sequences", "stream", "temperature", "top_p"}
    | {"tools", "tool_choice", "metadata", "thinking", "service_tier"}
)


def messages_to_chat(body: dict[str, Any], limit_field: str = "max_tokens") -> dict[str, Any]:
    """An Anthropic Messages request as an OpenAI chat completions request.

    Raises:
        Untranslatable: a field or content the chat format cannot carry.
    """
    t = OPENAI_CHAT
    for key in body:
        if key not in _MESSAGES_FIELDS:
            raise _refuse(key, "this field", t)
    out: dict[str, Any] = {"model": body.get("model")}
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if isinstance(system, str):
        messages.append({"role": "system", "content": system})
    elif isinstance(system, list):
        parts = [_text_part(block, f"system[{i}]") for i, block in enumerate(system)]
        messages.append({"role": "system", "content": parts})
    elif system is not None:
        raise _refuse("system", "a system prompt that is neither text nor text blocks", t)
    turns = body.get("messages")
    if not isinstance(turns, list):
        raise InvalidRequest("'messages' must be a list of messages", param="messages")
    for i, message in enumerate(turns):
        messages += _chat_messages(message, f"messages[{i}]")
    out["messages"] = messages
    if "max_tokens" in body:
        out[limit_field] = body["max_tokens"]
    stop = body.get("stop_sequences")
    if stop is not None:
        out["stop"] = stop
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            out[key] = body[key]
    if body.get("stream") is True:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    thinking = body.get("thinking")
    if thinking is not None and not (isinstance(thinking, dict) and thinking.get("type") == "disabled"):
        raise _refuse("thinking", "extended thinking", t)
    tier = body.get("service_tier")
    if tier not in (None, "auto"):
        raise _refuse("service_tier", f"the service tier {tier!r}", t)
    metadata = body.get("metadata")
    if isinstance(metadata, dict):
        for key, value in metadata.items():
            if key != "user_id":
                raise _refuse(f"metadata.{key}", "this field", t)
            if value is not None:
                out["user"] = value
    elif metadata is not None:
        raise InvalidRequest("'metadata' must be an object", param="metadata")
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise InvalidRequest("'tools' must be a list", param="tools")
        out["tools"] = [_chat_tool(tool, f"tools[{i}]") for i, tool in enumerate(tools)]
    choice = body.get("tool_choice")
    if choice is not None:
        if not isinstance(choice, dict):
            raise InvalidRequest("'tool_choice' must be an object", param="tool_choice")
        kind = choice.get("type")
        if kind == "auto":
            out["tool_choice"] = "auto"
        elif kind == "any":
            out["tool_choice"] = "required"
        elif kind == "none":
            out["tool_choice"] = "none"
        elif kind == "tool" and isinstance(choice.get("name"), str):
            out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
        else:
            raise _refuse("tool_choice", f"the tool choice {kind!r}", t)
        for key in choice:
            if key not in ("type", "name", "disable_parallel_tool_use"):
                raise _refuse(f"tool_choice.{key}", "this field", t)
        if choice.get("disable_parallel_tool_use") is True and tools:
            out["parallel_tool_calls"] = False
    return out


def _text_part(block: Any, param: str) -> dict[str, Any]:
    if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
        return {"type": "text", "text": block["text"]}
    kind = block.get("type") if isinstance(block, dict) else type(block).__name__
    raise _refuse(param, f"a {kind!r} block here", OPENAI_CHAT)


def _chat_messages(message: Any, param: str) -> list[dict[str, Any]]:
    """One Anthropic message as chat messages: a user message's tool results become `tool`
    messages (in their place), an assistant's tool uses its `tool_calls`."""
    t = OPENAI_CHAT
    if not isinstance(message, dict):
        raise InvalidRequest(f"{param} must be an object", param=param)
    role, content = message.get("role"), message.get("content")
    for key in message:
        if key not in ("role", "content"):
            raise _refuse(f"{param}.{key}", "this field", t)
    if role not in ("user", "assistant"):
        raise InvalidRequest(f"{param}.role must be 'user' or 'assistant'", param=f"{param}.role")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise InvalidRequest(f"{param}.content must be text or a list of blocks", param=f"{param}.content")
    if role == "assistant":
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        for j, block in enumerate(content):
            at = f"{param}.content[{j}]"
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text" and isinstance(block.get("text"), str):
                texts.append(block["text"])
            elif kind == "tool_use":
                function = {"name": block.get("name"), "arguments": orjson.dumps(block.get("input", {})).decode()}
                calls.append({"id": block.get("id"), "type": "function", "function": function})
            else:
                raise _refuse(at, f"an assistant {kind!r} block", t)
        out: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
        if calls:
            out["tool_calls"] = calls
        return [out]
    messages: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        at = f"{param}.content[{j}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "tool_result":
            if parts:
                messages.append({"role": "user", "content": parts})
                parts = []
            messages.append(_tool_message(block, at))
        elif kind == "text" and isinstance(block.get("text"), str):
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": _source_url(block.get("source"), at, t)}})
        elif kind == "document" and _is_pdf(block.get("source")):
            source = block["source"]
            file = {"filename": "document.pdf", "file_data": f"data:application/pdf;base64,{source['data']}"}
            parts.append({"type": "file", "file": file})
        else:
            raise _refuse(at, f"a user {kind!r} block", t)
    if parts:
        messages.append({"role": "user", "content": parts})
    return messages


def _is_pdf(source: Any) -> bool:
    return (
        isinstance(source, dict)
        and source.get("type") == "base64"
        and source.get("media_type") == "application/pdf"
        and isinstance(source.get("data"), str)
    )


def _tool_message(block: dict[str, Any], param: str) -> dict[str, Any]:
    content = block.get("content")
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = "".join(_text_part(b, f"{param}.content[{k}]")["text"] for k, b in enumerate(content))
    else:
        raise InvalidRequest(f"{param}.content must be text or a list of blocks", param=f"{param}.content")
    if block.get("is_error") is True:
        text = "Error: " + text  # the chat format has no error flag on a tool result
    return {"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": text}


def _chat_tool(tool: Any, param: str) -> dict[str, Any]:
    if not isinstance(tool, dict):
        raise InvalidRequest(f"{param} must be an object", param=param)
    if tool.get("type") not in (None, "custom"):
        raise _refuse(param, f"the server tool {tool.get('type')!r}", OPENAI_CHAT)
    function: dict[str, Any] = {"name": tool.get("name")}
    if tool.get("description") is not None:
        function["description"] = tool["description"]
    function["parameters"] = tool.get("input_schema", {"type": "object", "properties": {}})
    if tool.get("strict") is not None:
        function["strict"] = tool["strict"]
    for key in tool:
        if key not in ("type", "name", "description", "input_schema", "strict", "cache_control"):
            raise _refuse(f"{param}.{key}", "this field", OPENAI_CHAT)
    return {"type": "function", "function": function}


# ---------------------------------------------------------------------------------------------
# OpenAI chat request -> Anthropic Messages request


_CHAT_FIELDS = frozenset(
    {"model", "messages", "max_tokens", "max_completion_tokens", "stop", "stream", "stream_options"}
    | {"temperature", "top_p", "tools", "tool_choice", "parallel_tool_calls", "user", "safety_identifier"}
    | {"prompt_cache_key", "n", "logprobs", "top_logprobs", "presence_penalty", "frequency_penalty"}
    | {"seed", "logit_bias", "response_format", "store", "service_tier", "modalities"}
)
# Fields accepted only at their neutral value (what the API assumes when the field is absent).
_NEUTRAL: dict[str, Callable[[Any], bool]] = {
    "n": lambda v: v is None or v == 1,
    "logprobs": lambda v: v is None or v is False,
    "top_logprobs": lambda v: v is None or v == 0,
    "presence_penalty": lambda v: v is None or v == 0,
    "frequency_penalty": lambda v: v is None or v == 0,
    "seed": lambda v: v is None,
    "logit_bias": lambda v: v is None or v == {},
    "response_format": lambda v: v is None or (isinstance(v, dict) and v.get("type") == "text"),
    "store": lambda v: v is None or v is False,
    "service_tier": lambda v: v in (None, "auto", "default"),
    "modalities": lambda v: v is None or v == ["text"],
}


def chat_to_messages(body: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI chat completions request as an Anthropic Messages request.

    Raises:
        Untranslatable: a field or content the Messages format cannot carry.
    """
    t = ANTHROPIC_MESSAGES
    for key, value in body.items():
        if key not in _CHAT_FIELDS:
            raise _refuse(key, "this field", t)
        neutral = _NEUTRAL.get(key)
        if neutral is not None and not neutral(value):
            raise _refuse(key, f"the value {orjson.dumps(value).decode()[:40]}", t)
    out: dict[str, Any] = {"model": body.get("model")}
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    out["max_tokens"] = DEFAULT_MAX_TOKENS if limit is None else limit
    turns = body.get("messages")
    if not isinstance(turns, list):
        raise InvalidRequest("'messages' must be a list of messages", param="messages")
    system: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for i, message in enumerate(turns):
        at = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"{at} must be an object", param=at)
        role = message.get("role")
        if role in ("system", "developer"):
            if messages:
                raise _refuse(f"{at}.role", "a system message after the conversation started", t)
            system += _system_blocks(message, at)
            continue
        role_out, blocks = _blocks(message, at)
        if messages and messages[-1]["role"] == role_out:  # tool results and a user turn make one message
            messages[-1]["content"] += blocks
        else:
            messages.append({"role": role_out, "content": blocks})
    if system:
        out["system"] = system
    out["messages"] = messages
    stop = body.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    elif stop is not None:
        out["stop_sequences"] = stop
    temperature = body.get("temperature")
    if temperature is not None:
        if isinstance(temperature, int | float) and temperature > 1:
            raise _refuse("temperature", "a temperature above 1", t)
        out["temperature"] = temperature
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    if body.get("stream") is True:
        out["stream"] = True
    user = body.get("safety_identifier", body.get("user"))
    if user is not None:
        out["metadata"] = {"user_id": user}
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise InvalidRequest("'tools' must be a list", param="tools")
        out["tools"] = [_messages_tool(tool, f"tools[{i}]") for i, tool in enumerate(tools)]
    choice = body.get("tool_choice")
    tool_choice: dict[str, Any] | None = None
    if choice in ("auto", "none"):
        tool_choice = {"type": choice}
    elif choice == "required":
        tool_choice = {"type": "any"}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        function = choice.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequest("tool_choice.function.name must be a string", param="tool_choice")
        tool_choice = {"type": "tool", "name": function["name"]}
    elif choice is not None:
        kind = choice.get("type") if isinstance(choice, dict) else choice
        raise _refuse("tool_choice", f"the tool choice {kind!r}", t)
    if body.get("parallel_tool_calls") is False and tools:
        tool_choice = tool_choice or {"type": "auto"}
        if tool_choice["type"] != "none":
            tool_choice["disable_parallel_tool_use"] = True
    if tool_choice is not None:
        out["tool_choice"] = tool_choice
    return out


def _system_blocks(message: dict[str, Any], param: str) -> list[dict[str, Any]]:
    for key in message:
        if key not in ("role", "content"):
            raise _refuse(f"{param}.{key}", "this field", ANTHROPIC_MESSAGES)
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [_text_block(part, f"{param}.content[{j}]") for j, part in enumerate(content)]
    raise InvalidRequest(f"{param}.content must be text or a list of parts", param=f"{param}.content")


def _text_block(part: Any, param: str) -> dict[str, Any]:
    if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    kind = part.get("type") if isinstance(part, dict) else type(part).__name__
    raise _refuse(param, f"a {kind!r} part here", ANTHROPIC_MESSAGES)


def _blocks(message: dict[str, Any], param: str) -> tuple[str, list[dict[str, Any]]]:
    """A chat message as (Anthropic role, content blocks)."""
    t = ANTHROPIC_MESSAGES
    role, content = message.get("role"), message.get("content")
    allowed = {"user": ("role", "content"), "assistant": ("role", "content", "tool_calls", "refusal")}
    allowed["tool"] = ("role", "content", "tool_call_id")
    if role not in allowed:
        raise _refuse(f"{param}.role", f"the role {role!r}", t)
    for key, value in message.items():
        if key not in allowed[role] and not (key == "refusal" and value is None):
            raise _refuse(f"{param}.{key}", "this field", t)
    if role == "tool":
        if isinstance(content, list):
            text = [_text_block(part, f"{param}.content[{j}]") for j, part in enumerate(content)]
            result: Any = text
        elif isinstance(content, str):
            result = content
        else:
            raise InvalidRequest(f"{param}.content must be text or a list of parts", param=f"{param}.content")
        return "user", [{"type": "tool_result", "tool_use_id": message.get("tool_call_id"), "content": result}]
    blocks: list[dict[str, Any]] = []
    if isinstance(content, str):
        if content or role == "user":
            blocks.append({"type": "text", "text": content})
    elif isinstance(content, list):
        for j, part in enumerate(content):
            blocks.append(_part_block(part, f"{param}.content[{j}]", role))
    elif content is not None:
        raise InvalidRequest(f"{param}.content must be text or a list of parts", param=f"{param}.content")
    if role == "assistant":
        calls = message.get("tool_calls")
        for k, call in enumerate(calls if isinstance(calls, list) else ()):
            at = f"{param}.tool_calls[{k}]"
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict) or call.get("type", "function") != "function":
                raise _refuse(at, "a tool call that is not a function call", t)
            try:
                args = orjson.loads(function.get("arguments") or "{}")
            except (orjson.JSONDecodeError, TypeError):
                args = None
            if not isinstance(args, dict):
                raise _refuse(f"{at}.function.arguments", "tool call arguments that are not a JSON object", t)
            blocks.append({"type": "tool_use", "id": call.get("id"), "name": function.get("name"), "input": args})
    return role, blocks


def _part_block(part: Any, param: str, role: str) -> dict[str, Any]:
    t = ANTHROPIC_MESSAGES
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text" and isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    if kind == "refusal" and role == "assistant" and isinstance(part.get("refusal"), str):
        return {"type": "text", "text": part["refusal"]}
    if kind == "image_url" and role == "user":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        return {"type": "image", "source": _media_url(url, f"{param}.image_url.url", t)}
    if kind == "file" and role == "user":
        file = part.get("file")
        data = file.get("file_data") if isinstance(file, dict) else None
        if isinstance(data, str) and data.startswith("data:application/pdf;base64,"):
            return {"type": "document", "source": _media_url(data, f"{param}.file.file_data", t)}
        raise _refuse(param, "a file that is not inline PDF data", t)
    raise _refuse(param, f"a {role} {kind!r} part", t)


def _messages_tool(tool: Any, param: str) -> dict[str, Any]:
    t = ANTHROPIC_MESSAGES
    if not isinstance(tool, dict):
        raise InvalidRequest(f"{param} must be an object", param=param)
    function = tool.get("function")
    if tool.get("type") != "function" or not isinstance(function, dict):
        raise _refuse(param, f"the tool type {tool.get('type')!r}", t)
    out: dict[str, Any] = {"name": function.get("name")}
    if function.get("description") is not None:
        out["description"] = function["description"]
    out["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
    if function.get("strict") is not None:
        out["strict"] = function["strict"]
    for key in function:
        if key not in ("name", "description", "parameters", "strict"):
            raise _refuse(f"{param}.function.{key}", "this field", t)
    return out


# ---------------------------------------------------------------------------------------------
# Responses and usage


def chat_usage_as_messages(usage: Any) -> dict[str, int]:
    """OpenAI chat usage as Anthropic usage (`input_tokens` without cache reads and writes)."""
    usage = usage if isinstance(usage, dict) else {}
    details = usage.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}
    read, write = count(details.get("cached_tokens")), count(details.get("cache_write_tokens"))
    return {
        "input_tokens": max(0, count(usage.get("prompt_tokens")) - read - write),
        "output_tokens": count(usage.get("completion_tokens")),
        "cache_creation_input_tokens": write,
        "cache_read_input_tokens": read,
    }


def messages_usage_as_chat(usage: Any) -> dict[str, Any]:
    """Anthropic usage as OpenAI chat usage (`prompt_tokens` with cache reads and writes)."""
    usage = usage if isinstance(usage, dict) else {}
    read = count(usage.get("cache_read_input_tokens"))
    write = count(usage.get("cache_creation_input_tokens"))
    prompt = count(usage.get("input_tokens")) + read + write
    completion = count(usage.get("output_tokens"))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": read, "cache_write_tokens": write},
    }


def chat_response_as_messages(body: Any) -> Any:
    """A chat completion as an Anthropic message."""
    if not isinstance(body, dict) or not isinstance(body.get("choices"), list) or not body["choices"]:
        raise UpstreamProtocolError("the provider sent a chat completion without choices")
    choice = body["choices"][0]
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        raise UpstreamProtocolError("the provider sent a chat completion without a message")
    content: list[dict[str, Any]] = []
    for key in ("content", "refusal"):
        text = message.get(key)
        if isinstance(text, str) and text:
            content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{len(content)}",
                "name": function.get("name"),
                "input": tool_input(function.get("arguments")),
            }
        )
    finish = choice.get("finish_reason")
    return {
        "id": body.get("id"),
        "type": "message",
        "role": "assistant",
        "model": body.get("model"),
        "content": content,
        "stop_reason": FINISH_TO_STOP.get(finish, "end_turn") if finish is not None else None,
        "stop_sequence": None,
        "usage": chat_usage_as_messages(body.get("usage")),
    }


def tool_input(arguments: Any) -> dict[str, Any]:
    """Tool-call arguments (JSON text) as a tool_use block's input object.

    Raises:
        UpstreamProtocolError: the provider's arguments are not a JSON object.
    """
    if arguments in (None, ""):
        return {}
    try:
        value = orjson.loads(arguments)
    except (orjson.JSONDecodeError, TypeError):
        value = None
    if not isinstance(value, dict):
        raise UpstreamProtocolError("the provider sent tool-call arguments that are not a JSON object")
    return value


def messages_response_as_chat(body: Any, created: int | None = None) -> Any:
    """An Anthropic message as a chat completion."""
    if not isinstance(body, dict) or not isinstance(body.get("content"), list):
        raise UpstreamProtocolError("the provider sent a message without content")
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in body["content"]:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input", {})).decode()
            function = {"name": block.get("name"), "arguments": arguments}
            calls.append({"id": block.get("id"), "type": "function", "function": function})
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None, "refusal": None}
    if calls:
        message["tool_calls"] = calls
    stop = body.get("stop_reason")
    return {
        "id": body.get("id"),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": body.get("model"),
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": STOP_TO_FINISH.get(stop, "stop")}
        ],
        "usage": messages_usage_as_chat(body.get("usage")),
    }


# ---------------------------------------------------------------------------------------------
# Errors


def chat_error_as_messages(error: Any, status: int) -> dict[str, Any]:
    """An OpenAI error object (`{"message", "type", "code"}`) as an Anthropic error body."""
    error = error if isinstance(error, dict) else {}
    kind = anthropic_error_type(status)
    message = error.get("message")
    return {"type": "error", "error": {"type": kind, "message": message if isinstance(message, str) else ""}}


def messages_error_as_chat(error: Any) -> dict[str, Any]:
    """An Anthropic error object (`{"type", "message"}`) as an OpenAI error body."""
    error = error if isinstance(error, dict) else {}
    message = error.get("message")
    kind = error.get("type") if isinstance(error.get("type"), str) else "api_error"
    details = error.get("details")
    code = details.get("error_code") if isinstance(details, dict) else None
    text = message if isinstance(message, str) else ""
    return {"error": {"message": text, "type": kind, "param": None, "code": code}}


# ---------------------------------------------------------------------------------------------
# Bridges


class Bridge:
    """One direction of translation: requests in `source` format to a provider speaking `target`."""

    source: WireFormat
    target: WireFormat

    def request(self, body: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def response(self, body: Any) -> Any:
        raise NotImplementedError

    def error(self, body: Any, status: int) -> Any:
        """A provider's error body (parsed) in the client's format; None when it is not one."""
        raise NotImplementedError

    def stream(self) -> StreamTranslator:
        """A translator of one response stream."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<Bridge {self.source.name} -> {self.target.name}>"


class MessagesToChat(Bridge):
    """An Anthropic Messages client, an OpenAI chat provider."""

    source, target = ANTHROPIC_MESSAGES, OPENAI_CHAT

    def __init__(self, limit_field: str = "max_tokens") -> None:
        self.limit_field = limit_field

    def request(self, body: dict[str, Any]) -> dict[str, Any]:
        return messages_to_chat(body, self.limit_field)

    def response(self, body: Any) -> Any:
        return chat_response_as_messages(body)

    def error(self, body: Any, status: int) -> Any:
        if isinstance(body, dict) and "error" in body:
            return chat_error_as_messages(body["error"], status)
        return None

    def stream(self) -> StreamTranslator:
        from sluicegate.formats.translate_stream import ChatToMessagesStream

        return ChatToMessagesStream()


class ChatToMessages(Bridge):
    """An OpenAI chat client, an Anthropic Messages provider."""

    source, target = OPENAI_CHAT, ANTHROPIC_MESSAGES

    def request(self, body: dict[str, Any]) -> dict[str, Any]:
        return chat_to_messages(body)

    def response(self, body: Any) -> Any:
        return messages_response_as_chat(body)

    def error(self, body: Any, status: int) -> Any:
        if isinstance(body, dict) and body.get("type") == "error":
            return messages_error_as_chat(body.get("error"))
        return None

    def stream(self) -> StreamTranslator:
        from sluicegate.formats.translate_stream import MessagesToChatStream

        return MessagesToChatStream()


# OpenAI's own API wants `max_completion_tokens` (its reasoning models refuse `max_tokens`), and so
# does Azure OpenAI, which serves them; the servers that copy its API (vLLM, Ollama, Gemini's
# endpoint…) all read `max_tokens`.
_TO_OPENAI = {"openai": MessagesToChat("max_completion_tokens"), None: MessagesToChat("max_tokens")}
_TO_OPENAI["azure"] = _TO_OPENAI["openai"]
_TO_ANTHROPIC = ChatToMessages()


def bridge(fmt: WireFormat, families: frozenset[Family], kind: str | None = None) -> Bridge | None:
    """The translation from `fmt` to a provider that speaks `families` (of kind `kind`), or None
    when there is none (the provider speaks `fmt`, or no translation exists for it)."""
    if fmt.family in families:
        return None
    if fmt is ANTHROPIC_MESSAGES and "openai" in families:
        return _TO_OPENAI.get(kind) or _TO_OPENAI[None]
    if fmt is OPENAI_CHAT and "anthropic" in families:
        return _TO_ANTHROPIC
    return None
