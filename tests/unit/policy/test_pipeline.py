"""The pipeline's input bounds without sockets: the body deadline and the nesting check."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluicegate._core import json_problem
from sluicegate.errors import PayloadTooLarge, RequestTimeout
from sluicegate.policy.pipeline import ClientGone, read_body
from sluicegate.types import Message


def chunks(*parts: bytes, delay: float = 0.0, forever: bool = False) -> Any:
    """An ASGI receive that hands out `parts`, each after `delay`, then (`forever`) a byte at a time."""
    queue = list(parts)

    async def receive() -> Message:
        if delay:
            await asyncio.sleep(delay)
        part = queue.pop(0) if queue else b" "
        return {"type": "http.request", "body": part, "more_body": forever or bool(queue)}

    return receive


async def test_a_body_in_time_is_read_whole() -> None:
    assert await read_body(chunks(b'{"a"', b": 1}", b""), 1000, 5.0) == b'{"a": 1}'


async def test_the_deadline_is_for_the_whole_body_not_each_piece() -> None:
    # every piece comes well within the deadline; the body never ends
    with pytest.raises(RequestTimeout) as err:
        await read_body(chunks(b"{", delay=0.01, forever=True), 10**6, 0.2)
    assert err.value.status == 408 and err.value.code == "request_timeout"


async def test_a_silent_client_times_out() -> None:
    async def receive() -> Message:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    with pytest.raises(RequestTimeout):
        await read_body(receive, 1000, 0.05)


async def test_a_cancellation_from_elsewhere_is_not_a_timeout() -> None:
    reading = asyncio.create_task(read_body(chunks(b"{", delay=0.01, forever=True), 10**6, 30.0))
    await asyncio.sleep(0.05)
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading


async def test_the_deadline_leaves_nothing_behind() -> None:
    loop = asyncio.get_running_loop()
    await read_body(chunks(b"{}"), 1000, 30.0)
    # the timer was cancelled: nothing is left to cancel this task 30 s from now
    assert not [h for h in getattr(loop, "_scheduled", []) if not h.cancelled()]


async def test_size_and_disconnect_still_apply() -> None:
    with pytest.raises(PayloadTooLarge):
        await read_body(chunks(b"x" * 600, b"x" * 600), 1000, 5.0)

    async def gone() -> Message:
        return {"type": "http.disconnect"}

    with pytest.raises(ClientGone):
        await read_body(gone, 1000, 5.0)


def depth(value: Any) -> int:
    """The reference: arrays and objects nested, the value itself level 1 (0 for a scalar)."""
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


def _text(value: Any) -> bytes:
    """`value` as JSON text, without recursion (the bound test nests 10,000 levels)."""
    out: list[str] = []
    todo: list[Any] = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, _Raw):
            out.append(item.text)
        elif isinstance(item, dict):
            parts: list[Any] = [_Raw("{")]
            for i, (k, v) in enumerate(item.items()):
                parts += [_Raw(("," if i else "") + json.dumps(k) + ":"), v]
            todo += reversed([*parts, _Raw("}")])
        elif isinstance(item, list):
            parts = [_Raw("[")]
            for i, v in enumerate(item):
                parts += [_Raw(","), v] if i else [v]
            todo += reversed([*parts, _Raw("]")])
        else:
            out.append(json.dumps(item))
    return "".join(out).encode()


class _Raw:
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def nests_deeper(value: Any, limit: int) -> bool:
    """What the pipeline refuses as too deep: the Rust pass over the body's bytes."""
    problem = json_problem(_text(value), limit)
    return problem is not None and problem[0] == "depth"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner, max_size=3),
    max_leaves=40,
)


@given(st.lists(JSON, max_size=3) | st.dictionaries(st.text(max_size=2), JSON, max_size=3), st.integers(1, 12))
def test_nests_deeper_agrees_with_the_reference(value: Any, limit: int) -> None:
    assert nests_deeper(value, limit) == (depth(value) > limit)


@pytest.mark.parametrize("levels", [63, 64, 65, 10_000])
def test_nests_deeper_at_the_bound_without_recursion(levels: int) -> None:
    value: Any = {"x": 1}
    for i in range(levels - 1):
        value = [value] if i % 2 else {"k": value}
    assert nests_deeper(value, 64) == (levels > 64)
