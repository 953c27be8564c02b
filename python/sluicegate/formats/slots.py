"""Where text lives in a parsed request or response: every string of the JSON tree is text unless
the format says otherwise.

A `TextSlot` names one string (its container and key), so a policy can read it and write it back.
Slots hold decoded strings (orjson has already undone every JSON escape), so an escaped value
(`\\u0040`, an escaped newline inside a key block) cannot hide from a scanner. Strings that hold
JSON themselves (tool-call arguments) are marked `json`: their own strings are what to scan.
Integers of ten digits or more are scanned as their decimal text (a card number can be a JSON
number), and a run of logprob tokens as the text they spell.

The model is inverted: a format does not list where text is, it lists where text is *not*. Each
format describes the objects it knows as `Shape`s: per object kind, the keys whose string values
are not text (ids, type tags, roles, model names, opaque signatures, base64 media payloads), the
keys whose values are objects of a known kind, and the keys holding JSON text. `text_fields` walks
a body with them. Everything else is scanned: an unknown key, a key a shape does not list, and
anything below such a key (tool inputs, JSON schemas, metadata, prompt variables) is free-form,
and every string in it is text, whatever its key is called. Skipping is only ever an
optimisation on fields known to carry no text; forgetting one costs a scan, never a leak.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeAlias


class TextSlot:
    """One string field, `container[key]`; `json` when the string holds JSON."""

    __slots__ = ("container", "json", "key")

    def __init__(self, container: dict[str, Any] | list[Any], key: str | int, json: bool = False) -> None:
        self.container = container
        self.key = key
        self.json = json

    @property
    def text(self) -> str:
        return self.container[self.key]  # type: ignore[index,no-any-return]

    def set(self, value: str) -> None:
        self.container[self.key] = value  # type: ignore[index]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key!r}{' json' if self.json else ''}>"


# Integers this large are scanned too (as their decimal text): a card number can be written as a JSON
# number, in tool arguments as anywhere else. Smaller ones cannot hold a value any detector finds.
BIG = 10**9


class NumberSlot(TextSlot):
    """A large integer, scanned as its decimal text; a rewrite makes it a string."""

    __slots__ = ()

    @property
    def text(self) -> str:
        return str(self.container[self.key])  # type: ignore[index]


class RunSlot(TextSlot):
    """A text that arrives as a run of tokens (`logprobs` entries `{"token", "bytes", ...}`): the
    slot's text is the tokens joined, so a value cut across tokens is seen whole. Writing it back
    keeps the tokens outside the changed region and puts the changed region in the first token
    that overlaps it (the others in it become empty); `bytes` follows each token it changes."""

    __slots__ = ("entries",)

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        super().__init__(entries, 0)
        self.entries = entries

    @property
    def text(self) -> str:
        return "".join(e["token"] for e in self.entries)

    def set(self, value: str) -> None:
        tokens = [e["token"] for e in self.entries]
        old = "".join(tokens)
        limit = min(len(old), len(value))
        head = 0
        while head < limit and old[head] == value[head]:
            head += 1
        tail = 0
        while tail < limit - head and old[-1 - tail] == value[-1 - tail]:
            tail += 1
        cut = len(old) - tail  # old[head:cut] became value[head:len(value) - tail]
        middle = value[head : len(value) - tail]
        start = 0
        placed = False
        for entry, token in zip(self.entries, tokens, strict=True):
            end = start + len(token)
            if (start < cut and end > head) or (not placed and head == cut and start <= head <= end):
                rest = token[cut - start :] if end > cut else ""
                new = token[: max(0, head - start)] + middle + rest if not placed else rest
                placed = True
                if new != token:
                    entry["token"] = new
                    if entry.get("bytes") is not None:
                        entry["bytes"] = list(new.encode())
            start = end
        if not placed and middle:  # a run with no tokens that gained text
            self.entries.append({"token": middle, "logprob": 0.0, "bytes": list(middle.encode()), "top_logprobs": []})


class Shape:
    """What one kind of JSON object of a wire format holds, as far as text goes.

    Arguments:
        skip: keys whose string values are not text (ids, type tags, enums, model names, opaque
            tokens, base64 payloads). Only strings are skipped: an object or a list under such a
            key is still walked.
        kids: keys whose values are objects (or lists of them) of a known kind. A string under
            such a key is text; an object or list under any key not named here is free-form.
        json: keys whose string values hold JSON (scanned as their decoded strings).
        urls: keys that hold a URL, skipped when it is a base64 `data:` URL (inline media).
        runs: keys that hold a list of logprob entries, scanned as one text (`RunSlot`).
        each: for an object whose keys are names chosen by the caller (prompt variables): the
            kind of every value. `skip` and `kids` do not apply to such an object.
        tag: the key whose value names the object's kind (`type`).
        variants: per kind named by `tag`, more keys to skip (`{"base64": {"data"}}`).
    """

    __slots__ = ("each", "json", "kids", "runs", "skip", "special", "tag", "urls", "variants")

    def __init__(
        self,
        skip: Iterable[str] = (),
        kids: Mapping[str, Shape] | None = None,
        *,
        json: Iterable[str] = (),
        urls: Iterable[str] = (),
        runs: Iterable[str] = (),
        each: Shape | None = None,
        tag: str = "type",
        variants: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.skip = frozenset(skip)
        self.kids: dict[str, Shape] = dict(kids or {})
        self.json = frozenset(json)
        self.urls = frozenset(urls)
        self.runs = frozenset(runs)
        self.special = self.json | self.urls | self.runs  # keys that need more than a plain look
        self.each = each
        self.tag = tag
        self.variants: dict[str, Shape] | None = None
        if variants:
            self.variants = {}
            for kind, extra in variants.items():
                variant = Shape(self.skip | frozenset(extra), json=self.json, urls=self.urls, runs=self.runs)
                variant.kids = self.kids  # shared, so kids added later (recursive kinds) apply to both
                self.variants[kind] = variant

    def _for(self, obj: Mapping[str, Any]) -> Shape:
        if self.variants is not None:
            kind = obj.get(self.tag)
            if isinstance(kind, str):
                return self.variants.get(kind, self)
        return self


FREE = Shape()  # the kind of anything a format knows nothing about: every string in it is text

# What the walk yields: a plain string field as a `(container, key)` pair (the common case, kept
# cheap), anything that needs more (JSON text, a number, a logprob run) as a `TextSlot`.
Field: TypeAlias = "tuple[Any, Any] | TextSlot"  # (a dict and its key, or a list and its index)


def is_data_url(value: str) -> bool:
    """A base64 `data:` URL (inline image, audio or file bytes): not text."""
    return value.startswith("data:") and ";base64," in value[:256]


def text_fields(value: Any, shape: Shape) -> list[Field]:
    """Every string of `value` that is text, for a `value` of kind `shape` (see the module doc), in
    document order."""
    out: list[Field] = []
    _walk(value, shape, out)
    return out


def text_slots(value: Any, shape: Shape) -> list[TextSlot]:
    """`text_fields` as `TextSlot`s."""
    return [TextSlot(*f) if type(f) is tuple else f for f in text_fields(value, shape)]  # type: ignore[misc]


def all_strings(value: Any) -> list[TextSlot]:
    """Every non-empty string value (not key) anywhere inside `value`, e.g. a tool's structured input,
    and every integer of 10 digits or more (`NumberSlot`)."""
    out: list[Field] = []
    _strings(value, out)
    return [TextSlot(*f) if type(f) is tuple else f for f in out]  # type: ignore[misc]


def _walk(value: Any, shape: Shape, out: list[Field]) -> None:
    if type(value) is list:
        for i, item in enumerate(value):
            if type(item) is str:
                if item:
                    out.append((value, i))
            elif type(item) is dict or type(item) is list:
                _walk(item, shape, out)
            elif type(item) is int and not -BIG < item < BIG:
                out.append(NumberSlot(value, i))
        return
    if type(value) is not dict:
        return
    if shape.each is not None:
        each = shape.each
        for k, v in value.items():
            if type(v) is str:
                if v:
                    out.append((value, k))
            elif type(v) is dict or type(v) is list:
                _walk(v, each, out)
            elif type(v) is int and not -BIG < v < BIG:
                out.append(NumberSlot(value, k))
        return
    if shape.variants is not None:
        shape = shape._for(value)
    skip, kids, special = shape.skip, shape.kids, shape.special
    for k, v in value.items():
        if type(v) is str:
            if not v or k in skip:
                continue
            if k in special:
                if k in shape.urls and is_data_url(v):
                    continue
                if k in shape.json:
                    out.append(TextSlot(value, k, True))
                    continue
            out.append((value, k))
        elif type(v) is dict or type(v) is list:
            if k in special and k in shape.runs and type(v) is list and _is_run(v):
                out.append(RunSlot(v))
                for entry in v:
                    _strings(entry, out, exclude="token")
                continue
            kid = kids.get(k)
            if kid is None:
                _strings(v, out)
            else:
                _walk(v, kid, out)
        elif type(v) is int and not -BIG < v < BIG and k not in skip:
            out.append(NumberSlot(value, k))


def _is_run(entries: list[Any]) -> bool:
    return all(type(e) is dict and type(e.get("token")) is str for e in entries)


def _strings(value: Any, out: list[Field], exclude: str | None = None) -> None:
    if type(value) is dict:
        for k, v in value.items():
            if type(v) is str:
                if v and k != exclude:
                    out.append((value, k))
            elif type(v) is dict or type(v) is list:
                _strings(v, out)
            elif type(v) is int and not -BIG < v < BIG:
                out.append(NumberSlot(value, k))
    elif type(value) is list:
        for i, v in enumerate(value):
            if type(v) is str:
                if v:
                    out.append((value, i))
            elif type(v) is dict or type(v) is list:
                _strings(v, out)
            elif type(v) is int and not -BIG < v < BIG:
                out.append(NumberSlot(value, i))


def locate(root: Any, slot: TextSlot, prefix: str = "", label: Callable[[str], str] | None = None) -> str:
    """The printable location of `slot` inside `root` (`messages[2].content`), found by identity,
    after `prefix` (the location of the JSON text `root` was parsed from). For reports of findings:
    the walk keeps no paths, so a request with nothing found never builds one. Object keys are
    written by callers, so each key in the path is written as `label` gives it (the redactor
    replaces a value a key holds by its type)."""
    key = None if isinstance(slot, RunSlot) else slot.key
    stack: list[tuple[Any, str]] = [(root, prefix)]
    while stack:
        value, at = stack.pop()
        if value is slot.container:
            return f"{at}[].token" if key is None else step(at, key, label)
        items = value.items() if type(value) is dict else enumerate(value) if type(value) is list else ()
        stack += [(v, step(at, k, label)) for k, v in items if type(v) is dict or type(v) is list]
    return prefix or "?"


def step(at: str, key: str | int, label: Callable[[str], str] | None = None) -> str:
    """The location `at` followed by `key` (an index or an object key, written by `label`)."""
    if isinstance(key, int):
        return f"{at}[{key}]"
    if label is not None:
        key = label(key)
    return f"{at}.{key}" if at else key
