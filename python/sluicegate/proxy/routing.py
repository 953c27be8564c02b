"""Routes: a model that stands for several deployments, the order a call tries them in, when a
failed attempt is retried, and each deployment's circuit breaker.

A route (`routing.models.<name>` as a table) lists deployments (provider + upstream model +
weight). A call picks one by the route's strategy, skipping deployments whose breaker is open or
that asked to be left alone for a while (`retry-after`); a failed attempt (unreachable, timed out
before the first byte, 429, 5xx) moves to another deployment, within the route's `max_attempts`.
Everything here is per process and lock-free (one event loop); the clock and the random source are
given at construction, so tests drive time and choices.

A model routed the short way (`routing.models.<name> = "provider"`, a `provider/model` prefix, a
format's default) has no route: one attempt, no breaker, nothing here on its path.

Breaker states: closed (calls flow), open (no call for `cooldown_s` after `failures` failures in a
row), half-open (one call at a time probes; a success closes, a failure opens again).
"""

from __future__ import annotations

import random
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import orjson

from sluicegate.config import RouteSettings, RoutingSettings
from sluicegate.formats import FORMATS_BY_PATH
from sluicegate.observe.events import PolicyEvent
from sluicegate.proxy.upstream import RETRY_HEADERS, UpstreamResponse

if TYPE_CHECKING:
    from sluicegate.formats.base import WireFormat
    from sluicegate.proxy.providers import Provider

CLOSED: Final = 0
OPEN: Final = 1
HALF_OPEN: Final = 2
STATE_NAMES: Final = ("closed", "open", "half_open")
RETRY_STATUSES: Final = frozenset({408, 409, 429})  # and every 5xx but 501 (see retryable_status)


def retryable_status(status: int) -> bool:
    """Whether a provider's error status is worth another attempt (overload, rate limit, server error)."""
    return (status >= 500 and status != 501) or status in RETRY_STATUSES


def retry_after_s(header: Callable[[str], str | None]) -> float | None:
    """The wait a provider asked for (`retry-after-ms`, else `retry-after` in seconds), or None.
    An HTTP date in `retry-after` is not read (providers send seconds)."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = header(name)
        if value:
            try:
                seconds = float(value) * scale
            except ValueError:
                continue
            if seconds >= 0 and seconds == seconds:  # not NaN
                return seconds
    return None


class Breaker:
    """One deployment's circuit breaker (see the module docstring)."""

    __slots__ = ("cooldown_s", "failures", "limit", "opened_at", "probing", "state")

    def __init__(self, limit: int, cooldown_s: float) -> None:
        self.limit = limit
        self.cooldown_s = cooldown_s
        self.state = CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self.probing = False

    def ready(self, now: float) -> bool:
        """Whether a call may go to the deployment now (no change of state)."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN:
            return now - self.opened_at >= self.cooldown_s
        return not self.probing

    def admit(self, now: float) -> str | None:
        """Take the deployment for a call (after `ready`); the transition it made, if any."""
        if self.state == CLOSED:
            return None
        self.probing = True
        if self.state == OPEN:
            self.state = HALF_OPEN
            return "breaker_half_open"
        return None

    def success(self) -> str | None:
        self.failures = 0
        self.probing = False
        if self.state != CLOSED:
            self.state = CLOSED
            return "breaker_closed"
        return None

    def failure(self, now: float) -> str | None:
        self.failures += 1
        self.probing = False
        if self.state == HALF_OPEN or (self.state == CLOSED and self.failures >= self.limit):
            self.state = OPEN
            self.opened_at = now
            return "breaker_open"
        return None


@dataclass(eq=False, slots=True)
class Deployment:
    """One place a route's model is served, with what the strategies and the breaker count."""

    route: str
    provider: Provider
    model: str  # the model name the provider is sent
    weight: int
    breaker: Breaker
    label: bytes = b""  # `provider/model`, for the `x-sluicegate-deployment` header (no URL, no key)
    name: str = ""  # the same, as text
    # A call whose first attempt it is: the answer's headers, and the call's attempts (made once).
    first_headers: tuple[tuple[bytes, bytes], ...] = ()
    first_attempts: tuple[str, ...] = ()
    formats: frozenset[WireFormat] = frozenset()  # the wire formats it serves (its own, or translated)
    in_flight: int = 0
    ttfb_s: float | None = None  # smoothed time to first byte (to the first event, for a stream)
    not_before: float = 0.0  # a `retry-after` it sent: no call before this (monotonic seconds; 0: none)

    def __post_init__(self) -> None:
        self.label = f"{self.provider.name}/{self.model}".encode("latin-1", "replace")
        self.name = self.label.decode("latin-1")
        self.first_headers = ((b"x-sluicegate-deployment", self.label), (b"x-sluicegate-attempts", b"1"))
        self.first_attempts = (self.name,)
        self.formats = frozenset(f for f in FORMATS_BY_PATH.values() if self.provider.serves(f))


@dataclass(eq=False, slots=True)
class Route:
    """A configured route: its deployments and its rules (see `RouteSettings`)."""

    name: str
    deployments: tuple[Deployment, ...]
    strategy: str
    sticky: bool
    max_attempts: int
    fallbacks: tuple[str, ...]
    fallback_on: frozenset[str]
    total_weight: int = field(init=False, default=0)
    only: Deployment | None = field(init=False, default=None)  # its deployment, when it has one

    def __post_init__(self) -> None:
        self.total_weight = sum(d.weight for d in self.deployments)
        self.only = self.deployments[0] if len(self.deployments) == 1 else None


class Routes:
    """Every configured route, the shared clock and random source, and the breaker figures.

    Arguments:
        settings: the `[routing]` section.
        providers: the configured providers by name.
        clock: monotonic seconds (breakers, retry-after, latency).
        rng: the `weighted` strategy's random source (default: seeded by `routing.seed`).
    """

    def __init__(
        self,
        settings: RoutingSettings,
        providers: Mapping[str, Provider],
        clock: Callable[[], float],
        rng: random.Random | None = None,
    ) -> None:
        self.clock = clock
        self.rng = rng if rng is not None else random.Random(settings.seed)
        self.max_retry_after_s = settings.max_retry_after_s
        self.alpha = settings.latency_alpha
        self.by_name: dict[str, Route] = {}
        for name, r in settings.models.items():
            if isinstance(r, RouteSettings):
                self.by_name[name] = self._build(name, r, settings, providers)

    @staticmethod
    def _build(name: str, r: RouteSettings, s: RoutingSettings, providers: Mapping[str, Provider]) -> Route:
        limit, cooldown = s.breaker_failures, s.breaker_cooldown_s
        deployments = tuple(
            Deployment(
                name,
                providers[d.provider],
                providers[d.provider].deployment(d.model or name),  # an Azure deployment's own name
                d.weight,
                Breaker(limit, cooldown),
            )
            for d in r.deployments
        )
        fallbacks = tuple(r.fallbacks)
        return Route(name, deployments, r.strategy, r.sticky, r.max_attempts, fallbacks, frozenset(r.fallback_on))

    def deployments(self) -> list[Deployment]:
        return [d for route in self.by_name.values() for d in route.deployments]

    def single(self, name: str, provider: Provider, model: str) -> Route:
        """A route of one deployment for a model routed the plain way (a fallback that is not a
        route): one attempt, a breaker of its own that lives as long as the call."""
        d = Deployment(name, provider, model, 1, Breaker(1 << 30, 0.0))
        return Route(name, (d,), "weighted", False, 1, (), frozenset())

    def status(self) -> list[dict[str, Any]]:
        """Every route's deployments with their breaker state and figures (the admin API's `/routes`)."""
        return [
            {
                "route": d.route,
                "deployment": d.name,
                "provider": d.provider.name,
                "model": d.model,
                "weight": d.weight,
                "breaker": STATE_NAMES[d.breaker.state],
                "failures": d.breaker.failures,
                "in_flight": d.in_flight,
                "ttfb_s": round(d.ttfb_s, 6) if d.ttfb_s is not None else None,
            }
            for d in self.deployments()
        ]

    def first(self, route: Route, key_id: str, fmt: WireFormat) -> Deployment | None:
        """The deployment for a call's first attempt when it can take the call now (None: none can
        right now, or the one that can asked to be left alone a while; the attempts loop decides)."""
        d = route.only
        if d is not None and d.breaker.state == CLOSED and fmt in d.formats:  # the common route
            if not d.not_before:
                return d
            if d.not_before <= self.clock():
                d.not_before = 0.0  # its `retry-after` has passed
                return d
        d, wait = self.pick(route, [], key_id, fmt)
        return d if wait <= 0 else None

    def pick(
        self, route: Route, tried: list[Deployment], key_id: str, fmt: WireFormat
    ) -> tuple[Deployment | None, float]:
        """The deployment for the next attempt, and how long to wait before it (a `retry-after`).

        Untried deployments come first; a deployment already tried may serve again once every one
        has been. Deployments whose breaker is open are skipped; one that asked to be left alone is
        only taken when nothing else is ready, and only within `routing.max_retry_after_s`.

        Returns:
            (None, 0) when no deployment can take the call.
        """
        now = self.clock()
        speaking = [d for d in route.deployments if d.provider.serves(fmt)]  # its format, or translated
        pool = [d for d in speaking if d not in tried] or speaking
        ready = [d for d in pool if d.breaker.ready(now)]
        if not ready:
            return None, 0.0
        free = [d for d in ready if d.not_before <= now]
        if free:
            return self._choose(route, free, key_id), 0.0
        soonest = min(ready, key=lambda d: d.not_before)
        wait = soonest.not_before - now
        return (soonest, wait) if wait <= self.max_retry_after_s else (None, 0.0)

    def _choose(self, route: Route, ready: list[Deployment], key_id: str) -> Deployment:
        if len(ready) == 1:
            return ready[0]
        if route.strategy == "least_in_flight":
            return min(ready, key=lambda d: d.in_flight)
        if route.strategy == "lowest_latency":
            # Unmeasured deployments first (0), so each is measured once.
            return min(ready, key=lambda d: d.ttfb_s or 0.0)
        if route.sticky:
            # The key's place among all the route's deployments, so a key keeps its deployment
            # while that one is healthy; when it is not, the same hash picks among the others.
            spot = zlib.crc32(key_id.encode())
            home = _weighted(route.deployments, spot % route.total_weight) if route.total_weight else None
            if home is not None and home in ready:
                return home
            total = sum(d.weight for d in ready)
            return _weighted(ready, spot % total) if total else ready[0]
        total = sum(d.weight for d in ready)
        if total <= 0:
            return ready[0]
        return _weighted(ready, int(self.rng.random() * total))

    def reopens_in_s(self, route: Route) -> float:
        """Seconds until the first of `route`'s deployments may take a call again: its open breaker
        lets a probe through, or the `retry-after` it sent has passed (0: none is held back)."""
        now = self.clock()
        waits = [d.breaker.opened_at + d.breaker.cooldown_s - now for d in route.deployments if d.breaker.state == OPEN]
        waits += [d.not_before - now for d in route.deployments if d.not_before > now]
        return max(min(waits), 0.0) if waits else 0.0

    def admit(self, d: Deployment, events: list[PolicyEvent]) -> None:
        """The call goes to `d` now: count it in flight, and note a breaker's half-open probe."""
        d.in_flight += 1
        if d.breaker.state == CLOSED:
            return
        moved = d.breaker.admit(self.clock())
        if moved is not None:
            events.append(breaker_event(d, moved))

    def done(self, d: Deployment, ok: bool, ttfb_s: float | None, events: list[PolicyEvent]) -> None:
        """The attempt at `d` ended: success or failure for its breaker, its time to first byte."""
        d.in_flight -= 1
        if ttfb_s is not None:
            d.ttfb_s = ttfb_s if d.ttfb_s is None else d.ttfb_s + self.alpha * (ttfb_s - d.ttfb_s)
        breaker = d.breaker
        if ok and breaker.state == CLOSED and not breaker.failures:
            return  # a success of a healthy deployment: nothing changes
        moved = breaker.success() if ok else breaker.failure(self.clock())
        if moved is not None:
            events.append(breaker_event(d, moved))

    def hold_off(self, d: Deployment, seconds: float) -> None:
        """`d` asked for no call for `seconds` (its `retry-after`)."""
        d.not_before = self.clock() + seconds


def _weighted(deployments: Sequence[Deployment], point: int) -> Deployment:
    """The deployment whose share of the total weight holds `point` (0 <= point < total)."""
    for d in deployments:
        point -= d.weight
        if point < 0:
            return d
    return deployments[-1]


class HeldResponse:
    """A provider's error answer, read (bounded) so that the attempt loop can decide on it before
    it is relayed; it answers what `relay_error_status` asks of a response."""

    __slots__ = ("_headers", "_items", "body", "content_type", "status")

    def __init__(
        self, status: int, content_type: str, headers: dict[str, str], items: list[tuple[str, str]], body: bytes
    ) -> None:
        self.status = status
        self.content_type = content_type
        self._headers = headers
        self._items = items
        self.body = body

    @classmethod
    async def read_from(cls, resp: UpstreamResponse, limit: int) -> HeldResponse:
        """Read `resp`'s first `limit` bytes, the headers that steer retries, and the headers its
        client may be given (`header_items`: a translated answer's, already under the client's names)."""
        headers = {name: value for name in RETRY_HEADERS if (value := resp.header(name)) is not None}
        return cls(resp.status, resp.content_type, headers, list(resp.header_items()), await resp.read(limit))

    def header(self, name: str) -> str | None:
        return self._headers.get(name)

    def header_items(self) -> Iterable[tuple[str, str]]:
        return self._items

    async def read(self, limit: int | None = None) -> bytes:
        return self.body if limit is None else self.body[:limit]

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self.body

    def close(self) -> None:
        """Nothing to close: the body was read."""


class PrimedStream:
    """A routed stream's answer once its first complete event arrived (or `max_event` bytes did):
    until then nothing went to the client, so a connection that breaks or goes silent before it is
    a failed attempt like one before the status line, and is retried. It hands out what was read
    first, then the rest as it comes; it answers what the relay asks of a response."""

    __slots__ = ("_first", "_resp", "_rest", "content_type", "status")

    def __init__(self, resp: UpstreamResponse, first: list[bytes], rest: AsyncIterator[bytes]) -> None:
        self._resp = resp
        self._first = first
        self._rest = rest
        self.status = resp.status
        self.content_type = resp.content_type

    @classmethod
    async def read_from(cls, resp: UpstreamResponse, max_event: int) -> PrimedStream:
        """Read `resp` up to the end of its first event (a blank line).

        Raises:
            UpstreamUnreachable, UpstreamTimeout: the stream broke or stalled before it (the
                exchange is closed).
        """
        rest = aiter(resp.chunks())
        first: list[bytes] = []
        size = 0
        try:
            while size <= max_event:
                chunk = await anext(rest, b"")
                if not chunk:
                    break  # ended before an event: the relay says so
                first.append(chunk)
                size += len(chunk)
                seen = chunk if len(first) == 1 else b"".join(first)
                if b"\n\n" in seen or b"\r\n\r\n" in seen or b"\r\r" in seen:
                    break
        except BaseException:
            resp.close()
            raise
        return cls(resp, first, rest)

    def header(self, name: str) -> str | None:
        return self._resp.header(name)

    def header_items(self) -> Iterable[tuple[str, str]]:
        return self._resp.header_items()

    async def chunks(self) -> AsyncIterator[bytes]:
        first, self._first = self._first, []
        for chunk in first:
            yield chunk
        async for chunk in self._rest:
            yield chunk

    async def read(self, limit: int | None = None) -> bytes:
        """The rest of the body, after what was read first (`limit` bounds it)."""
        parts = [chunk async for chunk in self.chunks()]
        body = b"".join(parts)
        return body if limit is None else body[:limit]

    def close(self) -> None:
        self._resp.close()


# A provider's refusal that another model may not share: the prompt is longer than the model's
# context, or the provider's content policy refused it. OpenAI says so in the error's `code` (Azure
# OpenAI's content filter too: `content_filter`, `ResponsibleAIPolicyViolation` inside); Anthropic
# only in the message of an `invalid_request_error`, Gemini in that of an `INVALID_ARGUMENT`.
_OPENAI_CASES: Final = {
    "context_length_exceeded": "context_length",
    "string_above_max_length": "context_length",
    "content_policy_violation": "content_policy",
    "content_filter": "content_policy",
    "ResponsibleAIPolicyViolation": "content_policy",
}
_GEMINI_CASES: Final = (("exceeds the maximum number of tokens", "context_length"),)
_ANTHROPIC_CASES: Final = (
    ("prompt is too long", "context_length"),
    ("input is too long", "context_length"),
    ("content filtering policy", "content_policy"),
)


def refusal_case(body: bytes) -> str | None:
    """`context_length` or `content_policy` when a provider's error body refuses for that, else None."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(parsed) is list and len(parsed) == 1:  # Gemini's OpenAI-compatible endpoint: `[{"error": …}]`
        parsed = parsed[0]
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if not isinstance(error, dict):
        return None
    code = error.get("code")
    if isinstance(code, str) and code in _OPENAI_CASES:
        return _OPENAI_CASES[code]
    message = error.get("message")
    if not isinstance(message, str):
        return None
    if error.get("type") == "invalid_request_error":
        lowered = message[:200].lower()
        for needle, case in _ANTHROPIC_CASES:
            if needle in lowered:
                return case
    elif error.get("status") == "INVALID_ARGUMENT":
        lowered = message[:200].lower()
        for needle, case in _GEMINI_CASES:
            if needle in lowered:
                return case
    return None


def breaker_event(d: Deployment, action: str) -> PolicyEvent:
    detail = {"route": d.route, "deployment": d.name, "failures": d.breaker.failures}
    return PolicyEvent("routing", action, "", "deployment", detail=detail)
