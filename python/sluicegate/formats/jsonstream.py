"""Text filters over streamed JSON: tool-call arguments arrive as fragments of a JSON document
(`{"to": "jane\\u0040exa` … `mple.com"}`), and a filter must see the decoded strings, never the
raw JSON, or an escape could hide a value. `JsonStrings` decodes the string contents of the
fragments as they pass, hands each string's text to the inner filter as a stream of its own, and
writes what comes back as JSON again; everything outside strings passes unchanged.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson

from sluicegate.formats.slots import all_strings

if TYPE_CHECKING:
    from sluicegate.formats.base import TextFilter

_SIMPLE = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _encode(text: str) -> str:
    """`text` as the contents of a JSON string (without the quotes)."""
    return orjson.dumps(text).decode()[1:-1]


@dataclass(slots=True)
class _State:
    in_string: bool = False
    strings: int = 0  # strings started so far: each is its own inner stream
    escape: str = ""  # an escape sequence cut by a fragment boundary
    high: str = ""  # a high surrogate waiting for its low half
    decoded: list[str] = field(default_factory=list)


class JsonStrings:
    """A `TextFilter` for streamed JSON text, applying `inner` to the decoded string values.

    Arguments:
        inner: the filter for the strings' text.
    """

    __slots__ = ("_inner", "_states")

    def __init__(self, inner: TextFilter) -> None:
        self._inner = inner
        self._states: dict[Hashable, _State] = {}

    def feed(self, key: Hashable, text: str) -> str:
        st = self._states.get(key) or self._states.setdefault(key, _State())
        out: list[str] = []
        for ch in text:
            if not st.in_string:
                out.append(ch)
                if ch == '"':
                    st.in_string = True
                    st.strings += 1
            elif st.escape:
                st.escape += ch
                self._escape(st)
            elif ch == "\\":
                st.escape = ch
            elif ch == '"':
                out.append(self._emit(key, st, end=True))
                out.append(ch)
                st.in_string = False
            else:
                st.decoded.append(ch)
        if st.in_string:
            out.append(self._emit(key, st, end=False))
        return "".join(out)

    def _escape(self, st: _State) -> None:
        seq = st.escape
        if seq[1] != "u":
            st.decoded.append(_SIMPLE.get(seq[1], seq[1]))
            st.escape = ""
        elif len(seq) == 6:
            st.escape = ""
            try:
                code = int(seq[2:], 16)
            except ValueError:  # not JSON: keep the characters as they were
                st.decoded.append(seq)
                return
            if 0xD800 <= code < 0xDC00:
                st.high = chr(code)
            elif 0xDC00 <= code < 0xE000 and st.high:
                st.decoded.append((st.high + chr(code)).encode("utf-16", "surrogatepass").decode("utf-16"))
                st.high = ""
            else:
                st.decoded.append(chr(code))

    def _emit(self, key: Hashable, st: _State, *, end: bool) -> str:
        inner_key = (key, st.strings)
        text = "".join(st.decoded)
        st.decoded.clear()
        out = self._inner.feed(inner_key, text) if text else ""
        if end:
            out += self._inner.flush(inner_key)
        return _encode(out) if out else ""

    def flush(self, key: Hashable) -> str:
        st = self._states.pop(key, None)
        if st is None or not st.in_string:
            return ""
        st.decoded.append(st.escape)  # an unfinished escape at the very end: kept as text
        return self._emit(key, st, end=True)

    def whole(self, text: str) -> str:
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            return self._inner.whole(text)
        if not isinstance(parsed, dict | list):
            return text if not isinstance(parsed, str) else orjson.dumps(self._inner.whole(parsed)).decode()
        changed = False
        for slot in all_strings(parsed, ""):
            out = self._inner.whole(slot.text)
            if out != slot.text:
                slot.set(out)
                changed = True
        return orjson.dumps(parsed).decode() if changed else text
