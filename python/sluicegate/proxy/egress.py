"""Where a tenant may point the gateway: base URLs from provider secrets, and the addresses behind them.

A workspace or org admin may store a provider secret with a `base_url`; the gateway then sends that
tenant's calls there, with the tenant's key. The operator's own providers (the config file) are
trusted; a tenant's URL passes two checks:

1. **The URL** (`TenantUrls.refusal`), when the admin API stores it and again on every call (the
   configuration may have changed since): an absolute `http(s)://` URL with a host, no user name or
   password, no query or fragment, not a cloud metadata name, not an address literal in a refused
   range, and either the origin of the provider's own configured `base_url` or one that matches a
   pattern of `upstream.tenant_base_urls` for the provider's kind.
2. **The address** (`AddressPolicy`), when the connection is made: every address the host resolves
   to is checked, and loopback, private, link-local, CGNAT, multicast, unspecified, reserved and
   metadata addresses are refused unless they fall in `upstream.tenant_allowed_cidrs`. The check
   runs in the resolver (refused addresses are dropped from the answer) and again on the socket
   about to connect (the exact address, for literals too), so a name that resolves to a public
   address once and to a private one later (DNS rebinding) never reaches the private one.

The upstream client (`proxy/upstream.py`) wires the address check into its connector for tenant URLs
only, follows no redirects for anyone, and bounds what it reads.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from yarl import URL

if TYPE_CHECKING:
    from sluicegate.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Host names of cloud metadata services: refused as tenant hosts whatever they resolve to.
METADATA_NAMES = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal"}
)

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network
# Refused unless allowed, first match names the kind (the metadata addresses come before their ranges).
REFUSED: tuple[tuple[str, IPNetwork], ...] = (
    ("metadata", _V4("169.254.169.254/32")),  # AWS, GCP, Azure, OpenStack, DigitalOcean
    ("metadata", _V4("169.254.170.2/32")),  # AWS ECS task metadata
    ("metadata", _V4("100.100.100.200/32")),  # Alibaba Cloud
    ("metadata", _V4("192.0.0.192/32")),  # Oracle Cloud
    ("metadata", _V6("fd00:ec2::254/128")),  # AWS over IPv6
    ("unspecified", _V4("0.0.0.0/8")),
    ("private", _V4("10.0.0.0/8")),
    ("cgnat", _V4("100.64.0.0/10")),
    ("loopback", _V4("127.0.0.0/8")),
    ("link-local", _V4("169.254.0.0/16")),
    ("private", _V4("172.16.0.0/12")),
    ("reserved", _V4("192.0.0.0/24")),
    ("reserved", _V4("192.0.2.0/24")),
    ("private", _V4("192.168.0.0/16")),
    ("reserved", _V4("198.18.0.0/15")),
    ("reserved", _V4("198.51.100.0/24")),
    ("reserved", _V4("203.0.113.0/24")),
    ("multicast", _V4("224.0.0.0/4")),
    ("reserved", _V4("240.0.0.0/4")),  # with 255.255.255.255
    ("unspecified", _V6("::/128")),
    ("loopback", _V6("::1/128")),
    ("reserved", _V6("::/96")),  # IPv4-compatible (deprecated)
    ("reserved", _V6("100::/64")),  # discard
    ("reserved", _V6("2001::/32")),  # Teredo
    ("reserved", _V6("2001:db8::/32")),
    ("private", _V6("fc00::/7")),  # unique local
    ("link-local", _V6("fe80::/10")),
    ("private", _V6("fec0::/10")),  # site-local (deprecated)
    ("multicast", _V6("ff00::/8")),
)
_NAT64 = _V6("64:ff9b::/96")  # the last 32 bits are an IPv4 address
_SIXTOFOUR = _V6("2002::/16")  # bits 16..48 are an IPv4 address


class AddressRefused(OSError):
    """A tenant URL's host is, or resolves to, an address the operator has not allowed.

    Arguments:
        kind: which kind of address (`loopback`, `private`, `metadata`...), never the address itself.
    """

    def __init__(self, kind: str) -> None:
        super().__init__(f"the provider address is not allowed ({kind})")
        self.kind = kind


def parse_cidr(text: str) -> IPNetwork:
    """A network from `10.0.0.0/8`, `fd00::/8` or a single address.

    Raises:
        ValueError: not an address or network (host bits set count as an error).
    """
    return ipaddress.ip_network(text.strip(), strict=True)


class Networks:
    """A setting's list of addresses and networks (`10.0.0.0/8`, `192.0.2.7`), as a set that an
    address is `in`.

    Raises:
        ValueError: an entry is not an address or network.
    """

    __slots__ = ("networks",)

    def __init__(self, entries: Iterable[str | IPNetwork] = ()) -> None:
        self.networks = tuple(n if not isinstance(n, str) else parse_cidr(n) for n in entries)

    def __contains__(self, ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self.networks)

    def __bool__(self) -> bool:
        return bool(self.networks)


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a NAT64 or 6to4 address carries, if any."""
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


class AddressPolicy:
    """Which addresses a tenant URL may reach.

    Arguments:
        allowed: networks the operator allows although they are in a refused range
            (`upstream.tenant_allowed_cidrs`).
    """

    def __init__(self, allowed: Iterable[str | IPNetwork] = ()) -> None:
        self.allowed = Networks(allowed)
        self._verdicts: dict[str, str | None] = {}

    def refusal(self, address: str) -> str | None:
        """The kind of refused range `address` is in (`loopback`, `metadata`...), or None when allowed.
        Cached: a new connection pays a dict look-up."""
        try:
            return self._verdicts[address]
        except KeyError:
            pass
        verdict = self._judge(address)
        if len(self._verdicts) >= 4096:
            self._verdicts.clear()
        self._verdicts[address] = verdict
        return verdict

    def _judge(self, address: str) -> str | None:
        try:
            ip: IPAddress = ipaddress.ip_address(address)
        except ValueError:
            return "not an address"
        if isinstance(ip, ipaddress.IPv6Address):
            if ip.scope_id:
                ip = ipaddress.IPv6Address(address.split("%", 1)[0])
            if ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped  # ::ffff:a.b.c.d is a.b.c.d, allowed or refused as that
            else:
                inner = _embedded_v4(ip)  # NAT64 and 6to4 reach the IPv4 address they carry
                kind = self._kind(inner) if inner is not None else None
                if inner is not None and kind is not None and inner not in self.allowed:
                    return kind
        if ip in self.allowed:
            return None
        return self._kind(ip)

    @staticmethod
    def _kind(ip: IPAddress) -> str | None:
        for kind, net in REFUSED:
            if ip.version == net.version and ip in net:
                return kind
        if not ip.is_global or ip.is_multicast:
            return "reserved"
        return None


@dataclass(frozen=True, slots=True)
class HostPattern:
    """One entry of `upstream.tenant_base_urls`: `[scheme://]host[:port]`.

    The host may hold `*` (any run of host characters, dots included: `*.openai.azure.com`); an IPv6
    address goes in brackets. Without a scheme only `https` matches; without a port only the
    scheme's default port does (`:*` is any port). The path of a tenant URL is not restricted.
    """

    text: str
    scheme: str
    host: re.Pattern[str]
    port: int | None  # None: any port

    def matches(self, scheme: str, host: str, port: int) -> bool:
        return scheme == self.scheme and (self.port is None or port == self.port) and bool(self.host.fullmatch(host))


_PATTERN = re.compile(
    r"(?:(?P<scheme>https?)://)?(?P<host>\[[0-9a-f:.]+\]|[a-z0-9_.*-]+)(?::(?P<port>\*|[0-9]{1,5}))?/?"
)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST_CHARS = "[a-z0-9_.-]*"
_HOST = re.compile(r"[a-z0-9_.-]+")


def parse_pattern(text: str) -> HostPattern:
    """Parse one allow-list entry (see `HostPattern`).

    Raises:
        ValueError: the entry is not `[scheme://]host[:port]`.
    """
    m = _PATTERN.fullmatch(text.strip().lower())
    if m is None:
        raise ValueError(f"{text!r} is not [http(s)://]host[:port] (host may hold *, an IPv6 address goes in [])")
    scheme = m["scheme"] or "https"
    host = m["host"]
    if host.startswith("["):
        try:
            host = ipaddress.IPv6Address(host[1:-1]).compressed
        except ValueError:
            raise ValueError(f"{text!r}: {host} is not an IPv6 address") from None
    if host.strip("*.") == "" and host != "*":
        raise ValueError(f"{text!r} has no host")
    regex = _HOST_CHARS.join(re.escape(part) for part in host.split("*"))
    if m["port"] == "*":
        port = None
    else:
        port = int(m["port"]) if m["port"] else _DEFAULT_PORTS[scheme]
        if not 0 < port < 65536:
            raise ValueError(f"{text!r}: port out of range")
    return HostPattern(text, scheme, re.compile(regex), port)


def _origin(url: URL) -> tuple[str, str, int]:
    assert url.raw_host is not None and url.port is not None
    host = url.raw_host
    with contextlib.suppress(ValueError):
        host = ipaddress.ip_address(host).compressed
    return url.scheme, host, url.port


class TenantUrls:
    """The operator's rules for base URLs that tenants set on provider secrets.

    Arguments:
        providers: each configured provider's name, kind and own base URL (None: in-process).
        patterns: allow-list entries by provider kind (`upstream.tenant_base_urls`).
        allowed_cidrs: addresses allowed although in a refused range (`upstream.tenant_allowed_cidrs`).
    """

    def __init__(
        self,
        providers: Mapping[str, tuple[str, str | None]],
        patterns: Mapping[Any, Sequence[str]],
        allowed_cidrs: Iterable[str] = (),
    ) -> None:
        self.addresses = AddressPolicy(allowed_cidrs)
        self._patterns = {kind: tuple(parse_pattern(p) for p in ps) for kind, ps in patterns.items()}
        self._providers: dict[str, tuple[str, tuple[str, str, int] | None]] = {}
        for name, (kind, base_url) in providers.items():
            try:
                own = URL(base_url) if base_url else None
            except ValueError:
                own = None  # a URL aiohttp could not call either: no origin to share
            self._providers[name] = (kind, _origin(own) if own is not None and own.raw_host else None)
        self._verdicts: dict[tuple[str, str], str | None] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> TenantUrls:
        providers = {name: (p.kind, p.resolved_base_url()) for name, p in settings.providers.items()}
        up = settings.upstream
        return cls(providers, up.tenant_base_urls, up.tenant_allowed_cidrs)

    def refusal(self, provider: str, url: str) -> str | None:
        """Why a tenant may not use `url` as the base URL of `provider` (a sentence naming the rule,
        never the address), or None when it may. Cached per (provider, url): the request path pays a
        dict look-up.
        """
        key = (provider, url)
        try:
            return self._verdicts[key]
        except KeyError:
            pass
        verdict = self._judge(provider, url)
        if len(self._verdicts) >= 4096:
            self._verdicts.clear()
        self._verdicts[key] = verdict
        return verdict

    def mcp_refusal(self, url: str) -> str | None:
        """Why a workspace may not register `url` as an upstream MCP server (a sentence naming the
        rule, never the address), or None when it may: the checks of a tenant base URL but the
        provider's own origin and patterns (an MCP server is not a provider). The connection is checked
        again, address by address, as for a tenant base URL. Cached like `refusal`."""
        key = ("\0mcp", url)
        try:
            return self._verdicts[key]
        except KeyError:
            pass
        verdict, _ = self._shape(url)
        if len(self._verdicts) >= 4096:
            self._verdicts.clear()
        self._verdicts[key] = verdict
        return verdict

    def _judge(self, provider: str, url: str) -> str | None:
        found = self._providers.get(provider)
        if found is None:
            return f"no model provider named {provider!r} is configured, so it takes no base_url"
        kind, own = found
        refused, origin = self._shape(url)
        if refused is not None or origin is None:
            return refused
        scheme, host, port = origin
        if origin == own:
            return None
        if any(p.matches(scheme, host, port) for p in self._patterns.get(kind, ())):
            return None
        return (
            f"is not allowed for {kind} providers: it must have the origin of the provider's own base_url "
            "or match upstream.tenant_base_urls"
        )

    def _shape(self, url: str) -> tuple[str | None, tuple[str, str, int] | None]:
        """What every tenant URL must be (the refusal, or None and its origin)."""
        try:
            parsed = URL(url)
        except (ValueError, TypeError):
            return "is not a valid URL", None
        if parsed.scheme not in _DEFAULT_PORTS or not parsed.raw_host or parsed.port is None:
            return "must be an absolute http:// or https:// URL with a host", None
        if parsed.raw_user is not None or parsed.raw_password is not None:
            return "must not carry a user name or password", None
        if parsed.raw_query_string or parsed.raw_fragment or "?" in url or "#" in url:
            return "must not have a query or a fragment", None
        origin = _origin(parsed)
        host = origin[1]
        if host.rstrip(".") in METADATA_NAMES:
            return "names a cloud metadata service", None
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if not _HOST.fullmatch(host):
                return "does not have a valid host name", None
        else:
            refused = self.addresses.refusal(host)
            if refused is not None:
                return f"points at a {refused} address, which upstream.tenant_allowed_cidrs does not allow", None
        return None, origin
