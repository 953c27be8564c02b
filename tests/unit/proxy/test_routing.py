"""Routes without sockets: the configuration (the one-provider form still valid), the strategies,
stickiness, retry-after, the circuit breaker's states on a test clock, and the refusals a fallback
may answer."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
from pydantic import ValidationError

from sluicegate.config import RouteSettings, Settings
from sluicegate.errors import InvalidRequest
from sluicegate.formats import ANTHROPIC_MESSAGES, OPENAI_CHAT, OPENAI_RESPONSES
from sluicegate.proxy.providers import Router
from sluicegate.proxy.routing import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    Breaker,
    Deployment,
    refusal_case,
    retry_after_s,
    retryable_status,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def settings(route: dict[str, Any], **routing: Any) -> Settings:
    return Settings.model_validate(
        {
            "providers": {
                "a": {"kind": "openai_compatible", "base_url": "http://a/v1"},
                "b": {"kind": "openai_compatible", "base_url": "http://b/v1"},
                "c": {"kind": "anthropic", "api_key": "x"},
            },
            "routing": {"models": {"plain": "a", "r": route}, **routing},
        }
    )


def router(route: dict[str, Any], clock: Clock | None = None, seed: int = 1, **routing: Any) -> Router:
    return Router(settings(route, **routing), {}, clock or Clock(), random.Random(seed))


TWO = {"deployments": [{"provider": "a", "model": "m-a", "weight": 3}, {"provider": "b", "weight": 1}]}


def test_the_one_provider_form_is_still_a_plain_route() -> None:
    r = router(TWO)
    provider, model = r.route("plain", OPENAI_CHAT)
    assert (provider.name, model) == ("a", "plain")
    assert "plain" not in r.routes.by_name  # no route, no retries: today's path
    provider, model = r.route("r", OPENAI_CHAT)  # a route answers with its first deployment
    assert (provider.name, model) == ("a", "m-a")
    assert ("r", "a") in r.listed_models()
    assert [d.name for d in r.routes.by_name["r"].deployments] == ["a/m-a", "b/r"]  # model defaults to the name


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ({"deployments": []}, "at least 1 item"),
        ({"deployments": [{"provider": "nope"}]}, "names provider 'nope'"),
        ({"deployments": [{"provider": "a", "weight": 0}]}, "weight above 0"),
        ({"deployments": [{"provider": "a"}], "fallbacks": ["r"]}, "names the route itself"),
        ({"deployments": [{"provider": "a"}], "fallback_on": ["sometimes"]}, "fallback_on"),
        ({"deployments": [{"provider": "a"}], "max_attempts": 0}, "max_attempts"),
    ],
)
def test_bad_routes_name_the_setting(route: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        settings(route)


def test_weighted_split_follows_the_weights_with_a_seeded_rng() -> None:
    r = router(TWO, seed=42)
    route = r.routes.by_name["r"]
    counts = Counter(r.routes.pick(route, [], "key", OPENAI_CHAT)[0].name for _ in range(4000))  # type: ignore[union-attr]
    assert abs(counts["a/m-a"] / 4000 - 0.75) < 0.03
    # The same seed, the same choices (a test's split is reproducible).
    one, two = router(TWO, seed=7), router(TWO, seed=7)
    picks = [
        [x.routes.pick(x.routes.by_name["r"], [], "k", OPENAI_CHAT)[0].name for _ in range(50)] for x in (one, two)
    ]  # type: ignore[union-attr]
    assert picks[0] == picks[1]


def test_retries_prefer_an_untried_deployment_then_reuse() -> None:
    r = router(TWO)
    route = r.routes.by_name["r"]
    a, b = route.deployments
    assert r.routes.pick(route, [a], "key", OPENAI_CHAT) == (b, 0.0)
    assert r.routes.pick(route, [b], "key", OPENAI_CHAT) == (a, 0.0)
    assert r.routes.pick(route, [a, b], "key", OPENAI_CHAT)[0] in (a, b)


def test_a_deployment_that_cannot_serve_the_format_is_not_picked() -> None:
    # c (anthropic) takes chat requests translated, but not Responses API ones: those go to a.
    r = router({"deployments": [{"provider": "c", "model": "claude"}, {"provider": "a"}]})
    route = r.routes.by_name["r"]
    c, a = route.deployments
    assert {r.routes.pick(route, [], str(i), OPENAI_RESPONSES)[0] for i in range(20)} == {a}
    assert r.routes.pick(route, [a], "k", OPENAI_RESPONSES)[0] is a  # even when tried
    assert {r.routes.pick(route, [], str(i), OPENAI_CHAT)[0] for i in range(40)} == {a, c}
    assert r.route("r", OPENAI_RESPONSES)[0].name == "a" and r.route("r", ANTHROPIC_MESSAGES)[0].name == "c"
    only_anthropic = router({"deployments": [{"provider": "c"}]})
    with pytest.raises(InvalidRequest, match="does not speak the openai format"):
        only_anthropic.route("r", OPENAI_RESPONSES)


def test_sticky_keeps_a_key_on_its_deployment_while_it_is_healthy() -> None:
    clock = Clock()
    r = router({**TWO, "sticky": True}, clock, breaker_failures=1)
    route = r.routes.by_name["r"]
    homes = {key: r.routes.pick(route, [], key, OPENAI_CHAT)[0] for key in (f"key-{i}" for i in range(40))}
    assert all(r.routes.pick(route, [], key, OPENAI_CHAT)[0] is d for key, d in homes.items())
    assert len(set(homes.values())) == 2  # keys spread over both
    a = route.deployments[0]
    r.routes.admit(a, [])
    r.routes.done(a, False, None, [])  # a's breaker opens: its keys move, the others stay
    for key, home in homes.items():
        now = r.routes.pick(route, [], key, OPENAI_CHAT)[0]
        assert now is route.deployments[1]
        assert home is a or now is home


def test_least_in_flight_and_lowest_latency() -> None:
    r = router({**TWO, "strategy": "least_in_flight"})
    route = r.routes.by_name["r"]
    a, b = route.deployments
    r.routes.admit(a, [])
    assert r.routes.pick(route, [], "k", OPENAI_CHAT)[0] is b
    r.routes.admit(b, [])
    r.routes.admit(b, [])
    assert r.routes.pick(route, [], "k", OPENAI_CHAT)[0] is a

    clock = Clock()
    r = router({**TWO, "strategy": "lowest_latency"}, clock, latency_alpha=0.5)
    route = r.routes.by_name["r"]
    a, b = route.deployments
    for d, ttfb in ((a, 0.2), (b, 0.3)):
        r.routes.admit(d, [])
        r.routes.done(d, True, ttfb, [])
    assert r.routes.pick(route, [], "k", OPENAI_CHAT)[0] is a
    r.routes.admit(a, [])
    r.routes.done(a, True, 0.6, [])  # smoothed: 0.2 + 0.5 * (0.6 - 0.2) = 0.4
    assert a.ttfb_s == pytest.approx(0.4)
    assert r.routes.pick(route, [], "k", OPENAI_CHAT)[0] is b


def test_retry_after_holds_a_deployment_back_within_the_cap() -> None:
    clock = Clock()
    r = router({"deployments": [{"provider": "a"}]}, clock, max_retry_after_s=5)
    route = r.routes.by_name["r"]
    (a,) = route.deployments
    r.routes.hold_off(a, 3)
    assert r.routes.pick(route, [a], "k", OPENAI_CHAT) == (a, 3.0)
    clock.now += 3
    assert r.routes.pick(route, [a], "k", OPENAI_CHAT) == (a, 0.0)
    r.routes.hold_off(a, 6)  # longer than routing.max_retry_after_s: not waited for
    assert r.routes.pick(route, [a], "k", OPENAI_CHAT) == (None, 0.0)


def test_a_calls_first_deployment_is_taken_now_or_left_to_the_attempts() -> None:
    """`Routes.first`: a one-deployment route's deployment when it can take the call now; None
    (the attempts loop decides, and may wait) while it holds calls off or its breaker is open."""
    clock = Clock()
    r = router({"deployments": [{"provider": "a"}]}, clock, breaker_failures=1, breaker_cooldown_s=10)
    route = r.routes.by_name["r"]
    (a,) = route.deployments
    assert route.only is a and r.routes.first(route, "k", OPENAI_CHAT) is a
    r.routes.hold_off(a, 3)
    assert r.routes.first(route, "k", OPENAI_CHAT) is None  # its retry-after: the attempts wait for it
    clock.now += 3
    assert r.routes.first(route, "k", OPENAI_CHAT) is a and a.not_before == 0.0  # passed: forgotten
    r.routes.admit(a, [])
    r.routes.done(a, False, None, [])
    assert r.routes.first(route, "k", OPENAI_CHAT) is None  # its breaker is open
    clock.now += 10
    events: list[Any] = []
    assert r.routes.first(route, "k", OPENAI_CHAT) is a  # cooled down: the probe may go
    r.routes.admit(a, events)
    assert a.breaker.state == HALF_OPEN and a.in_flight == 1 and events[0].action == "breaker_half_open"
    assert r.routes.first(route, "k", OPENAI_CHAT) is None  # one probe at a time
    r.routes.done(a, True, 0.25, events)
    assert a.breaker.state == CLOSED and a.in_flight == 0 and a.ttfb_s == 0.25
    assert r.routes.first(route, "k", OPENAI_CHAT) is a
    # A format its provider cannot take, even translated: none.
    lone = router({"deployments": [{"provider": "c"}]})
    assert lone.routes.first(lone.routes.by_name["r"], "k", OPENAI_RESPONSES) is None
    assert lone.routes.first(lone.routes.by_name["r"], "k", OPENAI_CHAT) is not None
    # Several deployments: the strategy's choice.
    two = router(TWO)
    assert two.routes.by_name["r"].only is None
    assert two.routes.first(two.routes.by_name["r"], "k", OPENAI_CHAT) in two.routes.by_name["r"].deployments


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after-ms": "10", "retry-after": "3"}, 0.01),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),
        ({"retry-after": "-1"}, None),
        ({"retry-after": "nan"}, None),
        ({}, None),
    ],
)
def test_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after_s(headers.get) == seconds


@pytest.mark.parametrize(("status", "retry"), [(429, True), (500, True), (503, True), (529, True), (501, False)])
def test_retryable_status(status: int, retry: bool) -> None:
    assert retryable_status(status) is retry
    assert not retryable_status(400) and not retryable_status(404)


def test_breaker_opens_cools_down_probes_and_closes() -> None:
    clock = Clock()
    b = Breaker(limit=3, cooldown_s=10)
    assert [b.failure(clock()) for _ in range(2)] == [None, None]
    assert b.success() is None and b.failures == 0  # a success in between: not in a row
    assert [b.failure(clock()) for _ in range(3)] == [None, None, "breaker_open"]
    assert b.state == OPEN and not b.ready(clock())
    clock.now += 9.9
    assert not b.ready(clock())
    clock.now += 0.1
    assert b.ready(clock()) and b.admit(clock()) == "breaker_half_open" and b.state == HALF_OPEN
    assert not b.ready(clock())  # one probe at a time
    assert b.failure(clock()) == "breaker_open"  # the probe failed: open again, for a full cool-down
    clock.now += 10
    assert b.admit(clock()) == "breaker_half_open"
    assert b.success() == "breaker_closed" and b.state == CLOSED and b.ready(clock())


def test_breaker_transitions_are_events_naming_the_deployment_never_a_url_or_key() -> None:
    clock = Clock()
    r = router({"deployments": [{"provider": "a", "model": "m"}]}, clock, breaker_failures=1, breaker_cooldown_s=1)
    (a,) = r.routes.by_name["r"].deployments
    events: list[Any] = []
    r.routes.admit(a, events)
    r.routes.done(a, False, None, events)
    clock.now += 1
    r.routes.admit(a, events)
    r.routes.done(a, True, 0.1, events)
    assert [(e.policy, e.action, e.entity) for e in events] == [
        ("routing", "breaker_open", "deployment"),
        ("routing", "breaker_half_open", "deployment"),
        ("routing", "breaker_closed", "deployment"),
    ]
    assert events[0].detail == {"route": "r", "deployment": "a/m", "failures": 1}
    assert "http" not in repr(events)
    assert isinstance(a, Deployment) and a.in_flight == 0


@pytest.mark.parametrize(
    ("body", "case"),
    [
        (
            b'{"error": {"type": "invalid_request_error", "code": "context_length_exceeded", "message": "x"}}',
            "context_length",
        ),
        (b'{"error": {"type": "invalid_request_error", "code": "content_policy_violation"}}', "content_policy"),
        (
            b'{"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long: 9 > 8"}}',
            "context_length",
        ),
        (
            b'{"type": "error", "error": {"type": "invalid_request_error", '
            b'"message": "Output blocked by content filtering policy"}}',
            "content_policy",
        ),
        (b'{"error": {"type": "invalid_request_error", "code": "invalid_value", "message": "bad"}}', None),
        (b'{"type": "error", "error": {"type": "api_error", "message": "prompt is too long"}}', None),
        (b"not json", None),
        (b"[]", None),
    ],
)
def test_refusal_case(body: bytes, case: str | None) -> None:
    assert refusal_case(body) == case


def test_route_defaults() -> None:
    route = RouteSettings.model_validate({"deployments": [{"provider": "a"}]})
    assert (route.strategy, route.max_attempts, route.fallback_on, route.sticky) == ("weighted", 3, ["error"], False)
