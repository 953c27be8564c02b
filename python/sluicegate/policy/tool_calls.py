"""Tool access rules on the tools of model traffic: the same allow and deny lists as the MCP
gateway's (`policy.tools`), for the levels whose `model_calls` is not `off`.

A tool here is named as the request defines it and the model calls it: a function's (or custom
tool's) name, with no server part. What happens to a denied one (a level that bites refuses it;
the first such level decides, a deny anywhere wins, a tool must pass every allow list):

- its **definition** is taken out of the request's `tools` (a `hide` event); a request whose
  `tool_choice` forces it is refused with 403 `tool_not_allowed` naming the rule; when no tool is
  left, `tools`, `tool_choice` and `parallel_tool_calls` go;
- a **call** of it in the model's answer (chat `tool_calls` and `function_call`, Responses
  `function_call` and `custom_tool_call` items, Messages `tool_use` and `server_tool_use` blocks;
  streamed or not) is removed (`remove`: a `remove` event; the remaining calls renumbered, and a
  finish reason that said "tool calls" says "stop" / "end_turn" when none is left) or ends the
  answer with 403 `tool_not_allowed` (`block`: a `refuse` event; in a stream, an error event in
  the caller's format). The answer was billed either way.

A level that only monitors records `would_hide`, `would_remove` or `would_refuse` and lets the
tool through. Events name levels, rules and tool names, never arguments or results.

The definitions are checked before anything is sent, so a model cannot call what it was not shown;
the answers are checked anyway (a model may name a tool it was never given).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from sluicegate.errors import ToolNotAllowed
from sluicegate.formats.sse import Event, encode
from sluicegate.observe.events import PolicyEvent
from sluicegate.policy.auth import Identity
from sluicegate.policy.rollout import bites
from sluicegate.policy.tools import ToolRules, ToolRuleSet

__all__ = ["ToolCallGate", "gate_for"]

# Verdict on a tool name: None (allowed), or (action, message, rule) with action `remove` or `block`.
Verdict = tuple[str, str, dict[str, Any]] | None

_CALL_TYPES = frozenset({"function_call", "custom_tool_call"})  # Responses output items
_USE_TYPES = frozenset({"tool_use", "server_tool_use"})  # Messages content blocks


def gate_for(rules: ToolRules, who: Identity, fmt_name: str) -> ToolCallGate | None:
    """The call's gate, or None when no level applies its lists to model traffic (or the format
    has no tools)."""
    if not rules.model_sets:
        return None
    kind = _GATES.get(fmt_name)
    return kind(rules.model_sets, who) if kind is not None else None


class ToolCallGate:
    """One call's checks of the tools in its request and its answer (see the module docstring).
    Each tool name is decided once per call; `events` collects what was decided."""

    __slots__ = ("events", "sets", "verdicts", "who")

    def __init__(self, sets: tuple[ToolRuleSet, ...], who: Identity) -> None:
        self.sets, self.who = sets, who
        self.verdicts: dict[tuple[str, str], Verdict] = {}
        self.events: list[PolicyEvent] = []

    # -- the decision -------------------------------------------------------------------------

    def verdict(self, name: str, where: str) -> Verdict:
        """Whether `name` is refused, and how (`where`: `request` for a definition, `response`
        for a call); the events of the first decision on it."""
        held = self.verdicts.get((name, where), False)
        if held is not False:
            return held  # type: ignore[return-value]
        found: Verdict = None
        for s in self.sets:
            refusal = s.refusal(name)
            if refusal is None:
                continue
            message, rule = refusal
            action = "hide" if where == "request" else ("remove" if s.model_calls == "remove" else "refuse")
            detail = {"rule": rule, "tool": name, "where": where}
            if bites(s.mode, s.rollout_percent, s.rule_id, self.who.key_name, s.rollout_by):
                self.events.append(PolicyEvent("tools", action, "", s.level, detail=detail))
                found = (s.model_calls, message, rule)
                break
            self.events.append(PolicyEvent("tools", f"would_{action}", "", s.level, detail=detail))
        self.verdicts[(name, where)] = found
        return found

    def _drops(self, name: Any) -> bool:
        """Whether a call of `name` in the answer goes (removed); raises for a `block` rule."""
        found = self.verdict(name if isinstance(name, str) else "", "response")
        if found is None:
            return False
        action, message, rule = found
        if action == "block":
            raise ToolNotAllowed(f"the model called a tool this key may not use: {message}", rule)
        return True

    # -- the request --------------------------------------------------------------------------

    def filter_request(self, body: dict[str, Any]) -> None:
        """Take the denied tools' definitions out of `body` (see the module docstring).

        Raises:
            ToolNotAllowed: `tool_choice` forces a denied tool.
        """
        tools = body.get("tools")
        if not isinstance(tools, list) or not tools:
            return
        kept: list[Any] = []
        refused: dict[str, tuple[str, dict[str, Any]]] = {}
        for tool in tools:
            name = self.definition_name(tool)
            found = self.verdict(name, "request") if name is not None else None
            if found is None:
                kept.append(tool)
            else:
                refused[name] = (found[1], found[2])  # type: ignore[index]
        if not refused:
            return
        forced = self.forced_name(body.get("tool_choice"))
        if forced is not None and forced in refused:
            message, rule = refused[forced]
            raise ToolNotAllowed(f"tool_choice names a tool this key may not use: {message}", rule, param="tool_choice")
        if kept:
            body["tools"] = kept
        else:
            for name in ("tools", "tool_choice", "parallel_tool_calls"):
                body.pop(name, None)

    def definition_name(self, tool: Any) -> str | None:
        raise NotImplementedError

    def forced_name(self, choice: Any) -> str | None:
        raise NotImplementedError

    # -- the answer ---------------------------------------------------------------------------

    def response(self, body: Any, *, raw: bytes | None = None) -> bool:
        """Remove (or refuse) the denied calls of a complete answer, in place; True if it changed.

        Raises:
            ToolNotAllowed: a denied call under a `block` rule.
        """
        raise NotImplementedError

    def event(self, event: Event) -> Event | None:
        """One stream event as the client may see it: as it came, rewritten, or None (dropped).

        Raises:
            ToolNotAllowed: a denied call under a `block` rule (the relay ends the stream with it).
        """
        raise NotImplementedError

    def chain(self, rewrite: Callable[..., bool] | None) -> Callable[..., bool]:
        """A complete answer's rewrite: this gate's, then `rewrite`'s (redaction)."""
        if rewrite is None:
            return self.response

        def both(body: Any, *, raw: bytes | None = None) -> bool:
            changed = self.response(body, raw=raw)
            return rewrite(body, raw=None if changed else raw) or changed

        return both


def _name_of(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _rebuilt(event: Event, data: Any) -> Event:
    """`event` with `data` as its JSON (its name kept)."""
    payload = orjson.dumps(data)
    return Event(encode(payload, event.name)[:-2], event.name, payload)


class _ChatGate(ToolCallGate):
    """Chat completions: `tools[].function.name` / `custom.name`; `tool_calls` and the legacy
    `function_call` of each choice's message or delta."""

    __slots__ = ("_choices",)

    def __init__(self, sets: tuple[ToolRuleSet, ...], who: Identity) -> None:
        super().__init__(sets, who)
        # per choice: {tool index as sent: index to send, or None (removed)}, kept count, removed count
        self._choices: dict[Any, list[Any]] = {}

    def definition_name(self, tool: Any) -> str | None:
        if not isinstance(tool, dict):
            return None
        name = _name_of(tool, tool.get("type") or "function", "name")
        return name if isinstance(name, str) else None

    def forced_name(self, choice: Any) -> str | None:
        if not isinstance(choice, dict):
            return None
        name = _name_of(choice, choice.get("type") or "function", "name")
        return name if isinstance(name, str) else None

    @staticmethod
    def _call_name(call: Any) -> Any:
        return _name_of(call, "function", "name") or _name_of(call, "custom", "name")

    def response(self, body: Any, *, raw: bytes | None = None) -> bool:
        changed = False
        for choice in _list(body, "choices"):
            message = choice.get("message") if isinstance(choice, dict) else None
            if not isinstance(message, dict):
                continue
            calls = message.get("tool_calls")
            if isinstance(calls, list) and calls:
                kept = [c for c in calls if not self._drops(self._call_name(c))]
                if len(kept) != len(calls):
                    changed = True
                    if kept:
                        message["tool_calls"] = kept
                    else:
                        del message["tool_calls"]
                        if choice.get("finish_reason") == "tool_calls":
                            choice["finish_reason"] = "stop"
            legacy = message.get("function_call")
            if isinstance(legacy, dict) and self._drops(legacy.get("name")):
                del message["function_call"]
                if choice.get("finish_reason") == "function_call":
                    choice["finish_reason"] = "stop"
                changed = True
        return changed

    def event(self, event: Event) -> Event | None:
        chunk = _looked_at(event, (b'"tool_calls"', b'"function_call"'), False)
        if chunk is None:
            return event
        changed = False
        for choice in _list(chunk, "choices"):
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            state = self._choices.setdefault(index if isinstance(index, int | str) else repr(index), [{}, 0, 0, False])
            delta = choice.get("delta")
            if isinstance(delta, dict):
                changed |= self._delta(delta, state)
            reason = choice.get("finish_reason")
            if reason in ("tool_calls", "function_call") and (state[2] or state[3]) and not state[1]:
                choice["finish_reason"] = "stop"
                changed = True
        return _rebuilt(event, chunk) if changed else event

    def _delta(self, delta: dict[str, Any], state: list[Any]) -> bool:
        changed = False
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            sent = state[0]
            kept = []
            for call in calls:
                if not isinstance(call, dict):
                    kept.append(call)
                    continue
                index = call.get("index", 0)
                index = index if isinstance(index, int | str) else repr(index)
                if index not in sent:  # a call's first delta carries its name
                    if self._drops(self._call_name(call)):
                        sent[index] = None
                        state[2] += 1
                    else:
                        sent[index] = state[1]
                        state[1] += 1
                to = sent[index]
                if to is None:
                    changed = True
                    continue
                if to != call.get("index", 0):
                    call["index"] = to
                    changed = True
                kept.append(call)
            if changed:
                if kept:
                    delta["tool_calls"] = kept
                else:
                    del delta["tool_calls"]
        legacy = delta.get("function_call")
        if isinstance(legacy, dict):
            if "name" in legacy and not state[3] and self._drops(legacy.get("name")):
                state[3] = True  # this choice's function call is removed, to its last argument
            if state[3]:
                del delta["function_call"]
                changed = True
        return changed


class _MessagesGate(ToolCallGate):
    """Anthropic Messages: `tools[].name`; `tool_use` / `server_tool_use` content blocks."""

    __slots__ = ("_kept_uses", "_removed")

    def __init__(self, sets: tuple[ToolRuleSet, ...], who: Identity) -> None:
        super().__init__(sets, who)
        self._removed: list[int] = []  # content block indexes taken out of the stream, ascending
        self._kept_uses = 0

    def definition_name(self, tool: Any) -> str | None:
        name = tool.get("name") if isinstance(tool, dict) else None
        return name if isinstance(name, str) else None

    def forced_name(self, choice: Any) -> str | None:
        if isinstance(choice, dict) and choice.get("type") == "tool" and isinstance(choice.get("name"), str):
            return str(choice["name"])
        return None

    def response(self, body: Any, *, raw: bytes | None = None) -> bool:
        content = body.get("content") if isinstance(body, dict) else None
        if not isinstance(content, list):
            return False
        kept = [
            b
            for b in content
            if not (isinstance(b, dict) and b.get("type") in _USE_TYPES and self._drops(b.get("name")))
        ]
        if len(kept) == len(content):
            return False
        body["content"] = kept
        if body.get("stop_reason") == "tool_use" and not any(b.get("type") == "tool_use" for b in kept):
            body["stop_reason"] = "end_turn"
        return True

    def event(self, event: Event) -> Event | None:
        obj = _looked_at(event, (b"tool_use",), bool(self._removed))
        if obj is None:
            return event
        kind = obj.get("type")
        index = obj.get("index")
        changed = False
        if kind == "content_block_start":
            block = obj.get("content_block")
            if isinstance(block, dict) and block.get("type") in _USE_TYPES:
                if isinstance(index, int) and self._drops(block.get("name")):
                    self._removed.append(index)
                    return None
                if block.get("type") == "tool_use":
                    self._kept_uses += 1
        if isinstance(index, int) and self._removed:
            moved = _moved(index, self._removed)
            if moved is None:
                return None
            if moved != index:
                obj["index"] = moved
                changed = True
        if kind == "message_delta" and self._removed and not self._kept_uses:
            delta = obj.get("delta")
            if isinstance(delta, dict) and delta.get("stop_reason") == "tool_use":
                delta["stop_reason"] = "end_turn"
                changed = True
        return _rebuilt(event, obj) if changed else event


class _ResponsesGate(ToolCallGate):
    """OpenAI Responses: `tools[].name` of function and custom tools; `function_call` and
    `custom_tool_call` output items, their events by `output_index`, and the terminal response."""

    __slots__ = ("_removed", "_removed_ids")

    def __init__(self, sets: tuple[ToolRuleSet, ...], who: Identity) -> None:
        super().__init__(sets, who)
        self._removed: list[int] = []  # output indexes taken out of the stream, ascending
        self._removed_ids: set[str] = set()

    def definition_name(self, tool: Any) -> str | None:
        if not isinstance(tool, dict) or tool.get("type") not in ("function", "custom"):
            return None
        name = tool.get("name")
        return name if isinstance(name, str) else None

    def forced_name(self, choice: Any) -> str | None:
        if isinstance(choice, dict) and choice.get("type") in ("function", "custom"):
            name = choice.get("name")
            return name if isinstance(name, str) else None
        return None

    def _keeps(self, item: Any) -> bool:
        if not isinstance(item, dict) or item.get("type") not in _CALL_TYPES:
            return True
        return item.get("id") not in self._removed_ids and not self._drops(item.get("name"))

    def response(self, body: Any, *, raw: bytes | None = None) -> bool:
        output = body.get("output") if isinstance(body, dict) else None
        if not isinstance(output, list):
            return False
        kept = [item for item in output if self._keeps(item)]
        if len(kept) == len(output):
            return False
        body["output"] = kept
        return True

    def event(self, event: Event) -> Event | None:
        obj = _looked_at(event, (b"function_call", b"custom_tool_call"), bool(self._removed))
        if obj is None:
            return event
        index = obj.get("output_index")
        item = obj.get("item")
        added = obj.get("type") == "response.output_item.added" and isinstance(item, dict)
        if added and isinstance(index, int) and item.get("type") in _CALL_TYPES and self._drops(item.get("name")):
            self._removed.append(index)
            if isinstance(item.get("id"), str):
                self._removed_ids.add(item["id"])
            return None
        changed = False
        if isinstance(index, int) and self._removed:
            moved = _moved(index, self._removed)
            if moved is None:
                return None
            if moved != index:
                obj["output_index"] = moved
                changed = True
        response = obj.get("response")
        if isinstance(response, dict) and isinstance(response.get("output"), list):
            changed |= self.response(response)
        return _rebuilt(event, obj) if changed else event


def _looked_at(event: Event, markers: tuple[bytes, ...], always: bool) -> dict[str, Any] | None:
    """The event's JSON object when it may concern tools (its data holds one of `markers`, or
    `always`: a call was removed, so later indexes move); None to pass it as it came."""
    data = event.data
    if not always and not any(m in data for m in markers):
        return None
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None  # the tap reports it
    return obj if isinstance(obj, dict) else None


def _moved(index: int, removed: list[int]) -> int | None:
    """Where the block or item at `index` is once the `removed` ones are gone (None: it is one)."""
    if index in removed:
        return None
    return index - sum(1 for r in removed if r < index)


def _list(obj: Any, key: str) -> list[Any]:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, list) else []


_GATES: dict[str, type[ToolCallGate]] = {
    "openai_chat": _ChatGate,
    "anthropic_messages": _MessagesGate,
    "openai_responses": _ResponsesGate,
}
