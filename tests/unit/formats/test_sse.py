import itertools
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate.formats.sse import Event, EventBuffer, encode

STREAM = (
    b'event: message_start\ndata: {"type":"message_start"}\n\n'
    b'data: {"a": "caf\xc3\xa9"}\n\n'
    b"data: line one\ndata: line two\n\n"
    b"data: [DONE]\n\n"
)


def events_of(chunks: list[bytes]) -> list[Event]:
    buf = EventBuffer()
    out = [e for c in chunks for e in buf.feed(c)]
    assert buf.pending == b""
    return out


def test_whole_stream() -> None:
    events = events_of([STREAM])
    assert [e.name for e in events] == [b"message_start", None, None, None]
    assert events[0].data == b'{"type":"message_start"}'
    assert events[2].data == b"line one\nline two"
    assert events[3].data == b"[DONE]"


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_every_cut_gives_the_same_events(newline: bytes) -> None:
    stream = STREAM.replace(b"\n", newline)
    whole = [(e.name, e.data) for e in events_of([stream])]
    for i, j in itertools.combinations(range(1, len(stream)), 2):
        parts = [stream[:i], stream[i:j], stream[j:]]
        assert [(e.name, e.data) for e in events_of(parts)] == whole, (i, j)


def test_one_byte_at_a_time() -> None:
    assert [(e.name, e.data) for e in events_of([bytes([b]) for b in STREAM])] == [
        (e.name, e.data) for e in events_of([STREAM])
    ]


def test_incomplete_event_stays_pending() -> None:
    buf = EventBuffer()
    assert buf.feed(b"data: {}\n\ndata: {") != []
    assert buf.pending == b"data: {"


def test_encode_round_trips() -> None:
    (event,) = events_of([encode(b'{"x":1}', b"error")])
    assert (event.name, event.data) == (b"error", b'{"x":1}')


@settings(max_examples=300, deadline=None)
@given(
    stream=st.lists(st.sampled_from([b"data: ", b"event: x", b"a", b"\xc3\xa9", b"\n", b"\r", b"\r\n", b":"])).map(
        b"".join
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=12),
)
def test_any_cut_of_any_stream_gives_what_one_feed_gives(stream: bytes, cuts: list[int]) -> None:
    whole = EventBuffer()
    expected = [(e.raw, e.name, e.data) for e in whole.feed(stream)]
    points = sorted({min(c, len(stream)) for c in cuts})
    pieces = [stream[i:j] for i, j in zip([0, *points], [*points, len(stream)], strict=True)]
    buf = EventBuffer()
    got = [(e.raw, e.name, e.data) for p in pieces for e in buf.feed(p)]
    assert got == expected
    assert buf.pending == whole.pending and buf.pending_size == len(buf.pending)


def test_an_event_arriving_in_small_pieces_costs_its_size_not_its_square() -> None:
    """8 MiB of one unfinished multi-line event in 4 KiB pieces: scanning the whole buffer on each
    piece (as before) took tens of seconds of event-loop time; each byte once takes milliseconds."""
    buf = EventBuffer()
    piece = b"data: " + b"a" * 4089 + b"\n"
    started = time.process_time()
    for _ in range(2048):
        assert buf.feed(piece) == []
    assert buf.pending_size == 2048 * len(piece)
    assert buf.feed(b"\n")[0].data.count(b"a") == 2048 * 4089
    assert time.process_time() - started < 3.0  # quadratic: ~30 s here
