"""Without sockets: a routed stream held until its first complete event (a break before it is an
attempt's failure, the bytes read are handed on), and the provider headers an answer passes to its
client (the allow-list, the gateway's own limits winning, the gateway's id)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sluicegate.errors import UpstreamUnreachable
from sluicegate.proxy.relay import answer_headers
from sluicegate.proxy.routing import PrimedStream
from sluicegate.proxy.upstream import Timeouts, _InProcessResponse

TIMEOUTS = Timeouts(1.0, 1.0, 1.0, 5.0)
SSE = [("content-type", "text/event-stream")]


def response(pieces: list[bytes], *, cut: bool = False, headers: list[tuple[str, str]] = SSE) -> _InProcessResponse:
    async def body() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece
        if cut:
            raise ConnectionResetError("cut")

    return _InProcessResponse(200, headers, body(), TIMEOUTS, 1 << 20)


async def test_a_stream_is_held_until_its_first_event_then_relayed_whole() -> None:
    pieces = [b'data: {"a"', b": 1}\n", b'\ndata: {"b": 2}\n\n', b"data: [DONE]\n\n"]
    primed = await PrimedStream.read_from(response(pieces), 1024)
    assert primed.status == 200 and primed.content_type == "text/event-stream"
    assert b"".join([chunk async for chunk in primed.chunks()]) == b"".join(pieces)


async def test_a_cut_before_the_first_event_is_an_attempts_failure() -> None:
    with pytest.raises(UpstreamUnreachable):
        await PrimedStream.read_from(response([b'data: {"i'], cut=True), 1024)


async def test_a_cut_after_the_first_event_comes_out_of_the_relay() -> None:
    primed = await PrimedStream.read_from(response([b"data: {}\n\n", b'data: {"i'], cut=True), 1024)
    got = []
    with pytest.raises(UpstreamUnreachable):
        async for chunk in primed.chunks():
            got.append(chunk)
    assert got == [b"data: {}\n\n", b'data: {"i']


async def test_priming_stops_at_max_event_bytes() -> None:
    primed = await PrimedStream.read_from(response([b"x" * 600, b"y" * 600, b"z"]), 1000)
    assert len(primed._first) == 2  # past the bound: the relay refuses the event, not the priming


PROVIDER = [
    ("content-type", "application/json"),
    ("x-request-id", "req_1"),
    ("x-ratelimit-remaining-requests", "9"),
    ("x-ratelimit-limit-project-tokens", "5"),  # not on the list
    ("set-cookie", "a=b"),
    ("connection", "keep-alive"),
    ("openai-organization", "org"),
    ("request-id", "req_2"),
    ("anthropic-ratelimit-tokens-limit", "7"),
    ("x-ratelimit-reset-tokens", "x" * 300),  # too long
]


@pytest.mark.parametrize(
    ("family", "extra", "want"),
    [
        ("openai", None, [(b"x-request-id", b"req_1"), (b"x-ratelimit-remaining-requests", b"9")]),
        (
            "anthropic",
            None,
            [(b"request-id", b"req_2"), (b"anthropic-ratelimit-tokens-limit", b"7"), (b"x-request-id", b"gw")],
        ),
        (
            "openai",
            [(b"x-ratelimit-remaining-requests", b"1")],  # the gateway's own limit: the provider's are not passed
            [(b"x-request-id", b"req_1"), (b"x-ratelimit-remaining-requests", b"1")],
        ),
    ],
)
async def test_the_allow_list(
    family: str, extra: list[tuple[bytes, bytes]] | None, want: list[tuple[bytes, bytes]]
) -> None:
    got = answer_headers([], response([], headers=PROVIDER), family, b"gw", extra)
    assert got == [(b"x-sluicegate-request-id", b"gw"), *want]


async def test_without_a_provider_id_x_request_id_is_the_gateways() -> None:
    got = answer_headers([(b"content-type", b"application/json")], response([], headers=SSE), "openai", b"gw", None)
    assert got == [
        (b"content-type", b"application/json"),
        (b"x-sluicegate-request-id", b"gw"),
        (b"x-request-id", b"gw"),
    ]
