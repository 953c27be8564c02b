"""Hypothesis strategies for wire bodies, built from the official SDKs' own type definitions.

`instances(tp, leaf)` walks a type of the `openai` or `anthropic` package (the TypedDicts of
request params, the pydantic models of responses and stream events) and builds JSON values with
every field, optional ones included, and every member of a union that a list holds (a message's
content list gets one block of every kind; a union elsewhere is one of its members, drawn). Every
`str` leaf is drawn from `leaf` (a value to plant); `Literal` leaves are their literal values,
numbers are small, `object`/`Any` leaves are planted strings or objects holding one. Types that
recur (content blocks inside tool results inside content blocks) stop after `MAX_DEPTH` levels.
"""

from __future__ import annotations

import collections.abc as cabc
import datetime
import functools
import os
import types
import typing
from typing import Any

import pydantic
import typing_extensions as te
from hypothesis import strategies as st

MAX_DEPTH = 2  # how often one type may appear on the way down


def _strip(tp: Any) -> tuple[Any, str | None]:
    """`tp` without `Annotated`/`Required`/`NotRequired`, and the alias an annotation gives it."""
    alias = None
    while True:
        origin = typing.get_origin(tp)
        if origin is te.Annotated or origin is typing.Annotated:
            for meta in getattr(tp, "__metadata__", ()):
                alias = getattr(meta, "alias", None) or alias
            tp = typing.get_args(tp)[0]
        elif origin in (te.Required, te.NotRequired, typing.Required, typing.NotRequired):
            tp = typing.get_args(tp)[0]
        else:
            return tp, alias


def _json_type(tp: Any) -> bool:
    """False for the file-upload members of unions (bytes, paths, file objects): not JSON."""
    tp, _ = _strip(tp)
    if tp in (bytes, bytearray) or tp is os.PathLike:
        return False
    origin = typing.get_origin(tp)
    return not (
        origin is os.PathLike or (isinstance(origin, type) and issubclass(origin, typing.IO)) or tp is typing.IO
    )


def _members(tp: Any) -> list[Any]:
    tp, _ = _strip(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [m for m in typing.get_args(tp) if m is not type(None) and _json_type(m)]
    return [tp]


def _is_object(tp: Any) -> bool:
    return isinstance(tp, type) and (te.is_typeddict(tp) or issubclass(tp, pydantic.BaseModel))


def fields(tp: type) -> dict[str, Any]:
    """The JSON keys of a TypedDict or pydantic model and their types."""
    if te.is_typeddict(tp):
        out = {}
        for name, hint in typing.get_type_hints(tp, include_extras=True).items():
            _, alias = _strip(hint)
            out[alias or name] = hint
        return out
    assert issubclass(tp, pydantic.BaseModel)
    return {(f.alias or name): f.annotation for name, f in tp.model_fields.items()}


def union_members(tp: Any) -> list[Any]:
    """The JSON members of a union type (or `[tp]`)."""
    return _members(tp)


class Builder:
    """Strategies for one planting scheme: `leaf` draws each `str` leaf."""

    def __init__(self, leaf: st.SearchStrategy[str]) -> None:
        self.leaf = leaf

    def instances(self, tp: Any) -> st.SearchStrategy[Any]:
        return self._of(tp, ())

    @functools.cache  # noqa: B019 (one builder per test module)
    def _of(self, tp: Any, seen: tuple[Any, ...]) -> st.SearchStrategy[Any]:
        tp, _ = _strip(tp)
        origin = typing.get_origin(tp)
        if tp is str:
            return self.leaf
        if origin in (typing.Literal, te.Literal):
            return st.sampled_from(typing.get_args(tp))
        if tp is bool:
            return st.booleans()
        if tp is int:
            return st.integers(0, 64)
        if tp is float:
            return st.sampled_from([0.0, 0.5, 1.0])
        if tp is type(None):
            return st.none()
        if tp in (datetime.datetime, datetime.date):
            return st.just("2026-01-02T03:04:05Z")
        if tp in (object, typing.Any):
            return st.one_of(self.leaf, self.leaf.map(lambda s: {"nested": [s]}))
        if origin in (typing.Union, types.UnionType):
            members = [m for m in _members(tp) if not self._too_deep(m, seen)] or _members(tp)[:1]
            return st.one_of([self._of(m, seen) for m in members])
        if origin in (list, cabc.Iterable, cabc.Sequence, tuple, set, frozenset, typing.List):  # noqa: UP006
            (item,) = typing.get_args(tp)[:1] or (str,)
            members = [m for m in _members(item) if not self._too_deep(m, seen)]
            if not members:
                return st.just([])
            if len(members) > 1:  # a list of a union: one of every kind, in a drawn order
                return st.tuples(*(self._of(m, seen) for m in members)).flatmap(st.permutations)
            return st.lists(self._of(members[0], seen), min_size=1, max_size=2)
        if origin in (dict, cabc.Mapping, typing.Dict):  # noqa: UP006
            args = typing.get_args(tp)
            value = args[1] if len(args) == 2 else object
            return st.fixed_dictionaries({"k1": self._of(value, seen), "k2": self._of(value, seen)})
        if _is_object(tp):
            if seen.count(tp) > MAX_DEPTH:
                return st.just({})
            inner = (*seen, tp)
            return st.fixed_dictionaries({k: self._of(v, inner) for k, v in fields(tp).items()})
        raise TypeError(f"no strategy for {tp!r}")

    @staticmethod
    def _too_deep(tp: Any, seen: tuple[Any, ...]) -> bool:
        tp, _ = _strip(tp)
        return _is_object(tp) and seen.count(tp) >= MAX_DEPTH
