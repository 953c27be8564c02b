"""Where text lives in a parsed request or response: a `TextSlot` names one string in the JSON tree
(its container, key and a printable location), so a policy can read it and write it back.

Slots hold decoded strings (orjson has already undone every JSON escape), so an escaped value
(`\\u0040`, an escaped newline inside a key block) cannot hide from a scanner. Strings that hold
JSON themselves (tool-call arguments) are marked `json`: their own strings are what to scan.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class TextSlot:
    """One string field: `container[key]`, found at `where` (a path such as `messages[2].content`)."""

    container: dict[str, Any] | list[Any]
    key: str | int
    where: str
    json: bool = False

    @property
    def text(self) -> str:
        return self.container[self.key]  # type: ignore[index,no-any-return]

    def set(self, value: str) -> None:
        self.container[self.key] = value  # type: ignore[index]


def string_at(container: Any, key: str | int, where: str, *, json: bool = False) -> Iterator[TextSlot]:
    """The slot for `container[key]` if it holds a non-empty string."""
    try:
        value = container[key]
    except (KeyError, IndexError, TypeError):
        return
    if isinstance(value, str) and value:
        yield TextSlot(container, key, where, json)


def all_strings(value: Any, where: str) -> Iterator[TextSlot]:
    """Every string value (not key) anywhere inside `value`, e.g. a tool's structured input."""
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, str):
                if v:
                    yield TextSlot(value, k, f"{where}.{k}")
            elif isinstance(v, dict | list):
                yield from all_strings(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if isinstance(v, str):
                if v:
                    yield TextSlot(value, i, f"{where}[{i}]")
            elif isinstance(v, dict | list):
                yield from all_strings(v, f"{where}[{i}]")


def content(value: Any, key: str | int, where: str) -> Iterator[TextSlot]:
    """A message `content`: a string, or a list of parts whose text is in `text` (OpenAI
    `{"type": "text"|"input_text"|"output_text", "text"}` and Anthropic text blocks), with Anthropic
    `tool_use.input` and `tool_result.content` blocks walked too."""
    try:
        inner = value[key]
    except (KeyError, IndexError, TypeError):
        return
    here = (f"{where}.{key}" if where else key) if isinstance(key, str) else f"{where}[{key}]"
    if isinstance(inner, str):
        yield from string_at(value, key, here)
        return
    if not isinstance(inner, list):
        return
    for i, part in enumerate(inner):
        if not isinstance(part, dict):
            continue
        at = f"{here}[{i}]"
        kind = part.get("type")
        if kind == "tool_use":
            yield from all_strings(part.get("input"), f"{at}.input")
        elif kind == "tool_result":
            yield from content(part, "content", at)
        else:
            yield from string_at(part, "text", f"{at}.text")
