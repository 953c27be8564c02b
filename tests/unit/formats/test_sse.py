import itertools

import pytest

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
