"""The client's address behind reverse proxies the operator trusts (`server.trusted_proxies`).

A request's TCP peer is the client unless the peer is a trusted proxy. Then `x-forwarded-for` is
read from the right: each proxy appends the address it received the request from, so the
right-most entries were written by trusted proxies, and the first address from the right that is
not a trusted proxy is the client. Entries to the left of it were written by the client itself and
are never believed. An entry that is not an address ends the walk at the proxy that passed it on.

With no trusted proxies (the default), `x-forwarded-for` is ignored: any client can send one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from sluicegate.proxy.egress import IPNetwork, Networks

__all__ = ["TrustedProxies"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_HOPS = 32  # entries of x-forwarded-for read at most, from the right


def parse_address(text: str) -> IPAddress | None:
    """An address from a forwarded entry: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1` or
    `[2001:db8::1]:4711`; None when it is none (`unknown`, a name, garbage)."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class TrustedProxies:
    """Which peers' `x-forwarded-for` is believed.

    Arguments:
        networks: addresses or networks of the proxies (`10.0.0.0/8`, `fd00::/8`, `192.0.2.7`).

    Raises:
        ValueError: an entry is not an address or network.
    """

    def __init__(self, networks: Iterable[str | IPNetwork] = ()) -> None:
        self.networks = Networks(networks)

    def trusts(self, address: IPAddress) -> bool:
        """Whether `address` (an IPv4-mapped IPv6 address by the IPv4 address inside) is a trusted proxy."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return address in self.networks

    def client(self, peer: str, forwarded_for: Sequence[str]) -> str:
        """The client's address.

        Arguments:
            peer: the TCP peer's address ("" when unknown).
            forwarded_for: the request's `x-forwarded-for` headers, in order (each a list of entries).

        Returns:
            The peer, unless it is a trusted proxy: then the right-most forwarded address that is
            not one (or the left-most of them, when every hop is trusted).
        """
        hop = parse_address(peer)
        if hop is None or not self.networks or not self.trusts(hop):
            return peer
        entries = [e for header in forwarded_for for e in header.split(",")][-MAX_HOPS:]
        for entry in reversed(entries):
            address = parse_address(entry)
            if address is None:
                break  # not an address: believe no further than the proxy that passed it on
            hop = address
            if not self.trusts(hop):
                break
        return str(hop)
