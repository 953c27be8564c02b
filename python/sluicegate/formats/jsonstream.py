"""Text filters over streamed JSON: tool-call arguments arrive as fragments of a JSON document
(`{"to": "jane\\u0040exa` … `mple.com"}`), and a filter must see the decoded strings, never the
raw JSON, or an escape could hide a value. `JsonStrings` decodes the string contents of the
fragments as they pass, hands each string's text to the inner filter as a stream of its own, and
writes what comes back as JSON again.

Outside strings, the punctuation passes at once, but a run of anything else (a number, a literal,
or the bare text of arguments that are not JSON at all) is held until the punctuation that ends
it and rewritten whole (`TextFilter.text`): a card number may arrive as a JSON number. A run that
the inner filter changes goes out as a JSON string, so the document stays JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
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


_PUNCTUATION = frozenset('{}[],:"')
_MAX_RUN = 4096  # a longer run outside strings (not JSON) is rewritten in pieces of this size


@dataclass(slots=True)
class _State:
    in_string: bool = False
    run: str = ""  # text outside strings since the last punctuation
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
                if ch in _PUNCTUATION:
                    if st.run:
                        out.append(self._run(st))
                    out.append(ch)
                    if ch == '"':
                        st.in_string = True
                        st.strings += 1
                elif not st.run and ch.isspace():
                    out.append(ch)
                else:
                    st.run += ch
                    if len(st.run) >= _MAX_RUN:
                        out.append(self._run(st))
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

    def _run(self, st: _State) -> str:
        """The text outside strings since the last punctuation, rewritten whole."""
        text, st.run = st.run, ""
        out = self._inner.text(text) if not text.isspace() else text
        if out == text:
            return text
        return orjson.dumps(out).decode()

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
        if st is None:
            return ""
        if not st.in_string:
            return self._run(st) if st.run else ""
        st.decoded.append(st.escape)  # an unfinished escape at the very end: kept as text
        return self._emit(key, st, end=True)

    def text(self, text: str) -> str:
        return self._each(text, self._inner.text)

    def whole(self, text: str) -> str:
        return self._each(text, self._inner.whole)

    @staticmethod
    def _each(text: str, rewrite: Callable[[str], str]) -> str:
        """`rewrite` applied to each string of the JSON document `text` (to all of it if it is not JSON)."""
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            return rewrite(text)
        if not isinstance(parsed, dict | list):
            return text if not isinstance(parsed, str) else orjson.dumps(rewrite(parsed)).decode()
        changed = False
        for slot in all_strings(parsed):
            out = rewrite(slot.text)
            if out != slot.text:
                slot.set(out)
                changed = True
        return orjson.dumps(parsed).decode() if changed else text
