"""The client address behind trusted reverse proxies (`server.trusted_proxies`): only what trusted
proxies appended to `x-forwarded-for` is believed, read from the right."""

from __future__ import annotations

import pytest

from sluicegate.forwarded import MAX_HOPS, TrustedProxies, parse_address

PROXIES = TrustedProxies(["10.0.0.0/8", "fd00::/8"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        # A peer that is no trusted proxy is the client, whatever it forwards.
        ("203.0.113.9", ["198.51.100.1"], "203.0.113.9"),
        # Behind one proxy: the address it appended.
        ("10.0.0.2", ["198.51.100.1"], "198.51.100.1"),
        # The client's own entries are to the left of what the proxy appended: never believed.
        ("10.0.0.2", ["10.9.9.9, 192.0.2.66, 198.51.100.1"], "198.51.100.1"),
        # Two trusted proxies (and header lines joined in order): the first untrusted from the right.
        ("10.0.0.2", ["192.0.2.66", "198.51.100.1, 10.0.0.3"], "198.51.100.1"),
        # A trusted proxy with no header: the proxy itself.
        ("10.0.0.2", [], "10.0.0.2"),
        # Every hop trusted: the left-most.
        ("10.0.0.2", ["10.0.0.4, 10.0.0.3"], "10.0.0.4"),
        # An entry that is no address ends the walk at the proxy that passed it on.
        ("10.0.0.2", ["198.51.100.1, unknown"], "10.0.0.2"),
        ("10.0.0.2", ["198.51.100.1, <script>, 10.0.0.3"], "10.0.0.3"),
        # Ports and brackets; IPv6; an IPv4-mapped peer judged by its IPv4 address.
        ("10.0.0.2", ["198.51.100.1:4711"], "198.51.100.1"),
        ("fd00::1", ["[2001:db8::7]:4711"], "2001:db8::7"),
        ("::ffff:10.0.0.2", ["2001:db8::7"], "2001:db8::7"),
        ("", ["198.51.100.1"], ""),
    ],
)
def test_the_client_is_the_right_most_untrusted_address(peer: str, forwarded: list[str], client: str) -> None:
    assert PROXIES.client(peer, forwarded) == client


def test_nothing_is_trusted_by_default() -> None:
    assert TrustedProxies().client("10.0.0.2", ["198.51.100.1"]) == "10.0.0.2"
    assert TrustedProxies([]).client("127.0.0.1", ["198.51.100.1"]) == "127.0.0.1"


def test_a_long_header_is_read_only_so_far() -> None:
    trusted = ", ".join(f"10.0.{i // 256}.{i % 256}" for i in range(MAX_HOPS + 5))
    assert PROXIES.client("10.0.0.2", ["198.51.100.1, " + trusted]) == f"10.0.{5 // 256}.{5 % 256}"


def test_addresses_parse_only_as_addresses() -> None:
    assert str(parse_address(" 192.0.2.1 ")) == "192.0.2.1"
    assert parse_address("example.com") is None and parse_address("") is None and parse_address("1.2.3") is None
    with pytest.raises(ValueError):
        TrustedProxies(["10.0.0.1/8"])
