"""The spend step of the pipeline: price the request, reserve its worst case on every cap that
applies (atomically), refuse with 402 when one would be crossed, and settle the actual cost.

Which caps apply: every `[[spend.caps]]` line of the caller's organization whose entity is the
caller's organization, workspace, user or key. A call with no cap touches no store at all.

Settlement rules, so reservations never leak:
- the provider reported usage: settle its cost;
- the provider produced output but no usage (the client left mid-stream, the stream broke):
  settle the whole reservation (conservative: never less than the provider can bill);
- the call failed before any output (an error status, unreachable, timed out): release.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sluicegate.errors import GatewayError, InvalidRequest, SpendLimitExceeded, Unavailable
from sluicegate.formats.base import WireFormat
from sluicegate.observe.events import PolicyEvent
from sluicegate.policy.auth import Identity
from sluicegate.policy.rollout import bites
from sluicegate.proxy.providers import Provider
from sluicegate.proxy.relay import Outcome
from sluicegate.spend import (
    MAX_NUSD,
    CapLine,
    ModelPrice,
    PriceBook,
    Refusal,
    Reservation,
    ReserveResult,
    SpendSettings,
    SpendStore,
    StoreUnavailable,
    ThresholdAlert,
    clamp_output,
    create_store,
    estimate,
    format_usd,
)
from sluicegate.spend.caps import rollout_id
from sluicegate.spend.estimate import Estimate

log = logging.getLogger("sluicegate.spend")


def refusal_error(refusal: Refusal) -> SpendLimitExceeded:
    """The 402 for a refusal: which cap, its limit, what is spent and reserved, when it resets."""
    line = refusal.line
    resets = refusal.resets_at.isoformat().replace("+00:00", "Z") if refusal.resets_at else None
    when = f"the window resets at {resets}" if resets else "this cap does not reset"
    message = (
        f"spend cap reached: {line.level} {line.entity_id!r} has a {line.window} cap of {format_usd(line.limit_nusd)}; "
        f"spent {format_usd(refusal.spent_nusd)}, reserved {format_usd(refusal.reserved_nusd)}, "
        f"this request needs up to {format_usd(refusal.requested_nusd)}; {when}"
    )
    cap = {
        "level": line.level,
        "id": line.entity_id,
        "window": line.window,
        "limit_nusd": line.limit_nusd,
        "spent_nusd": refusal.spent_nusd,
        "reserved_nusd": refusal.reserved_nusd,
        "requested_nusd": refusal.requested_nusd,
        "resets_at": resets,
    }
    headers = {"x-should-retry": "false"}
    headers.update((f"x-sluicegate-cap-{k.replace('_', '-')}", str(v)) for k, v in cap.items() if v is not None)
    return SpendLimitExceeded(message, headers=headers, extra={"cap": cap})


def _cap_detail(line: CapLine, **figures: Any) -> dict[str, Any]:
    return {"id": line.entity_id, "org": line.org_id, "window": line.window, "limit_nusd": line.limit_nusd, **figures}


def _refusal_event(action: str, refusal: Refusal) -> PolicyEvent:
    detail = _cap_detail(
        refusal.line,
        spent_nusd=refusal.spent_nusd,
        reserved_nusd=refusal.reserved_nusd,
        requested_nusd=refusal.requested_nusd,
    )
    return PolicyEvent("spend", action, "", refusal.line.level, detail=detail)


def _alert_events(alerts: list[ThresholdAlert]) -> list[PolicyEvent]:
    return [
        PolicyEvent(
            "spend",
            "threshold",
            "",
            a.line.level,
            detail=_cap_detail(a.line, percent=a.threshold_pct, spent_nusd=a.spent_nusd, window_id=a.window_id),
        )
        for a in alerts
    ]


def _rolled_out(line: CapLine, percent: float, key_id: str) -> CapLine:
    """`line` for one key: an enforcing cap rolled out to less than every key monitors the keys
    outside its share (`sluicegate.policy.rollout`)."""
    if percent >= 100 or not line.enforced or bites("enforce", percent, rollout_id(line), key_id):
        return line
    return dataclasses.replace(line, mode="monitor")


@dataclass(frozen=True, slots=True)
class Substitution:
    """Where a `substitute` cap sent a call: the model named in the cap, its provider and the
    model name the provider is sent."""

    model: str
    provider: Provider
    upstream_model: str


@dataclass(slots=True)
class SpendGuard:
    """One call's reservation, until it is settled or released."""

    policy: SpendPolicy
    reservation: Reservation | None
    price: ModelPrice | None
    events: list[PolicyEvent] = field(default_factory=list)
    substitution: Substitution | None = None

    async def finish(self, outcome: Outcome | None) -> None:
        """Settle or release (see the module docstring); never raises."""
        store, reservation = self.policy.store, self.reservation
        if outcome is not None:
            outcome.events.extend(self.events)
        if store is None or reservation is None:
            return
        try:
            if outcome is not None and outcome.usage is not None and self.price is not None:
                actual = self.policy.prices.cost_nusd(self.price, outcome.usage)
            elif outcome is not None and outcome.status == 200:
                actual = reservation.amount_nusd
            else:
                await store.release(reservation)
                return
            alerts = await store.settle(reservation, actual)
            if outcome is not None:
                outcome.cost_nusd = actual
                outcome.events.extend(_alert_events(alerts))
        except StoreUnavailable:
            # The reservation expires after spend.reservation_ttl_s and then counts as spent.
            log.warning("spend store unavailable at settlement; the reservation will expire")


class SpendPolicy:
    """Prices, the store, and the caps by caller.

    Arguments:
        settings: the `[spend]` section.
    """

    def __init__(self, settings: SpendSettings) -> None:
        self.settings = settings
        self.prices = PriceBook.from_settings(settings)
        self.store: SpendStore | None = None
        self._lines = settings.lines()
        self._rollouts = tuple(c.rollout_percent for c in settings.caps)  # per line of `_lines`
        self._by_identity: dict[Identity, tuple[CapLine, ...]] = {}
        # Caps that substitute from a percent on: their (spent, reserved) reused until a time.
        self._usage: dict[tuple[str, str, str, str], list[Any]] = {}
        # The control plane's caps for a caller (its view's `cap_lines`), when it runs: read from
        # memory on every call, since a reload may change them.
        self.policy_lines: Callable[[Identity], tuple[CapLine, ...]] | None = None

    async def start(self) -> None:
        self.store = create_store(self.settings)

    async def stop(self) -> None:
        if self.store is not None:
            await self.store.close()

    def lines_for(self, who: Identity) -> tuple[CapLine, ...]:
        """The caps on the caller's organization, workspace, user and key: the config file's
        (cached per caller), then the control plane's."""
        lines = self._by_identity.get(who)
        if lines is None:
            mine = {"org": who.org, "workspace": who.workspace, "user": who.user, "key": who.key_name}
            lines = tuple(
                _rolled_out(c, pct, who.key_name)
                for c, pct in zip(self._lines, self._rollouts, strict=True)
                if c.org_id == who.org and mine[c.level] == c.entity_id
            )
            self._by_identity[who] = lines
        return lines + self.policy_lines(who) if self.policy_lines is not None else lines

    def _priced(self, est: Estimate, provider: Provider, model: str) -> tuple[ModelPrice, int, int, int]:
        """(price, amount to reserve, worst case, least amount a clamp may reserve) of a request
        estimated at `est` sent to `model` at `provider`.

        Raises:
            InvalidRequest: no price for the model.
        """
        s = self.settings
        priced_as = provider.kind if provider.kind in ("openai", "anthropic") else provider.name
        model = provider.price_model(model)  # an Azure deployment: priced as its model
        if provider.kind == "mock":
            model = model.split("@", 1)[0]  # the mock's knobs are no part of the model's price
        try:
            price = self.prices.price(model, priced_as)
        except LookupError:
            raise InvalidRequest(
                f"no price is known for the model {model!r}, and spend caps apply to this key",
                code="unknown_model_price",
                param="model",
            ) from None
        output = est.output_tokens
        if output is None:
            output = (self.prices.output_limit(model, priced_as) or s.default_output_limit_tokens) * est.choices
        worst = self.prices.worst_case_nusd(price, est.input_tokens, output)
        # A worst case beyond what any cap can hold (MAX_NUSD) asks for MAX_NUSD: every enforcing cap
        # still refuses it, and should one grant it, the output limit is clamped to fit (below).
        amount = min(worst, MAX_NUSD)
        min_clamp = min(self.prices.worst_case_nusd(price, est.input_tokens, s.min_clamp_output_tokens), MAX_NUSD)
        return price, amount, worst, min_clamp

    async def reserve(
        self,
        fmt: WireFormat,
        body: dict[str, Any],
        provider: Provider,
        model: str,
        lines: tuple[CapLine, ...],
        route: Callable[[str], tuple[Provider, str]] | None = None,
        est: Estimate | None = None,
        requested: str | None = None,
    ) -> SpendGuard:
        """Reserve the request's worst case on `lines`; returns the guard. A clamp lowers `body`'s
        output limit in place (the body forwarded is always the one parsed, so no flag is needed).

        When the cap that refuses is a `substitute` cap, the call goes to its `substitute_model`
        instead (routed by `route`), priced and reserved again at that model's prices on every
        line: the guard's `substitution` says where, and the pipeline sends it there. A substitute
        that does not fit either (or is not routed) is refused like the original.

        A `substitute` cap with `substitute_at_percent` substitutes earlier: a call to another
        model than its substitute (`requested`, the model name the caller asked for after aliases)
        that would take the cap's spent and reserved past that percent of its limit goes to the
        substitute, if the substitute can be routed and priced (else the call goes on as asked,
        with a `substitute_failed` event). The figures are the store's, reused for
        `spend.substitute_check_s` with this instance's reservations added meanwhile: the switch
        happens within that interval of the percent being passed (the cap itself stays exact). A
        monitor-mode cap only reports `would_substitute`.

        Raises:
            SpendLimitExceeded: a cap would be crossed (402).
            InvalidRequest: the model has no price and no default price is configured, or an output
                limit or `n` is of the wrong type or out of range (`spend.estimate`).
            Unavailable: the store is unreachable and `on_redis_error` is `fail_closed` (503).
        """
        assert self.store is not None, "SpendPolicy.start() was not awaited"
        s = self.settings
        if est is None:  # else the rate-limit step's, of the same body
            est = estimate(body, fmt.name, s.estimate)
        price, amount, worst, min_clamp = self._priced(est, provider, model)
        events: list[PolicyEvent] = []
        substitution = early = None
        if route is not None and any(line.substitute_at_percent is not None for line in lines):
            early = await self._early_substitute(est, model, requested, amount, lines, route, events)
            if early is not None:
                (substitution, price, amount, worst, min_clamp), said = early
        result = await self._hold(lines, amount, min_clamp, events)
        if result is None:  # the store is down and caps fail open
            return SpendGuard(self, None, price, events, substitution)
        events += [_refusal_event("would_refuse", r) for r in result.monitored]
        events += _alert_events(result.alerts)
        if result.refusal is not None:
            refusal = result.refusal
            target = refusal.line.substitute_model
            if early is not None:  # the substitute, sent for a percent passed, does not fit either
                detail = {**said.detail, "reason": "does_not_fit"}
                events.append(dataclasses.replace(said, action="substitute_failed", detail=detail))
            if target is None or route is None or (substitution is not None and substitution.model == target):
                err: GatewayError = refusal_error(refusal)
                err.events = [*events, _refusal_event("refuse", refusal)]
                raise err
            substitution, price, amount, worst, result = await self._substitute(
                est, model, refusal, target, route, lines, events
            )
        elif early is not None:
            events.append(early[1])
        if self._usage and result.reservation is not None:
            self._count_reserved(result.reservation)
        clamp_to = result.clamp_to_nusd
        if clamp_to is None and amount < worst and result.reservation is not None:
            clamp_to = result.reservation.amount_nusd
        if clamp_to is not None:
            tokens = self.prices.max_output_tokens_for(price, est.input_tokens, clamp_to)
            clamp_output(body, fmt.name, tokens)
            events.append(PolicyEvent("spend", "clamp", "", "request", detail={"max_output_tokens": tokens}))
        return SpendGuard(self, result.reservation, price, events, substitution)

    async def _hold(
        self, lines: tuple[CapLine, ...], amount: int, min_clamp: int, events: list[PolicyEvent]
    ) -> ReserveResult | None:
        """The store's answer to reserving `amount` on `lines`; None when the store is unreachable
        and caps fail open (a `store_unavailable` event added to `events`).

        Raises:
            Unavailable: the store is unreachable and `on_redis_error` is `fail_closed` (503).
        """
        assert self.store is not None, "SpendPolicy.start() was not awaited"
        behaviour = self.settings.on_redis_error
        try:
            return await self.store.reserve(lines, amount, min_clamp_nusd=min_clamp)
        except StoreUnavailable as exc:
            event = PolicyEvent("spend", "store_unavailable", "", "store", detail={"behaviour": behaviour})
            if behaviour == "fail_closed":
                down = Unavailable(
                    "spend caps cannot be checked right now (the spend store is unreachable); retry shortly",
                    code="spend_store_unavailable",
                )
                down.events = [*events, event]
                raise down from exc
            events.append(event)
            return None

    async def reserve_fixed(self, lines: tuple[CapLine, ...], amount: int) -> SpendGuard:
        """Reserve a known price (`amount` nano-USD: a priced tool call) on `lines`; the guard settles
        all of it on a call answered with 200 and releases it otherwise (`SpendGuard.finish`).

        Raises:
            SpendLimitExceeded: a cap would be crossed.
            Unavailable: the store is unreachable and `on_redis_error` is `fail_closed`.
        """
        events: list[PolicyEvent] = []
        result = await self._hold(lines, amount, amount, events)
        if result is None:
            return SpendGuard(self, None, None, events)
        events += [_refusal_event("would_refuse", r) for r in result.monitored]
        events += _alert_events(result.alerts)
        if result.refusal is not None:
            err: GatewayError = refusal_error(result.refusal)
            err.events = [*events, _refusal_event("refuse", result.refusal)]
            raise err
        return SpendGuard(self, result.reservation, None, events)

    def _reprice(
        self, est: Estimate, target: str, route: Callable[[str], tuple[Provider, str]]
    ) -> tuple[Substitution, ModelPrice, int, int, int]:
        """Where `target` goes and what the request costs there: (substitution, price, amount,
        worst case, least clamp amount).

        Raises:
            GatewayError: `target` is not routed, not allowed for the caller, or has no price.
        """
        to_provider, to_model = route(target)
        price, amount, worst, min_clamp = self._priced(est, to_provider, to_model)
        return Substitution(target, to_provider, to_model), price, amount, worst, min_clamp

    async def _early_substitute(
        self,
        est: Estimate,
        model: str,
        requested: str | None,
        amount: int,
        lines: tuple[CapLine, ...],
        route: Callable[[str], tuple[Provider, str]],
        events: list[PolicyEvent],
    ) -> tuple[tuple[Substitution, ModelPrice, int, int, int], PolicyEvent] | None:
        """The substitution of the first `substitute_at_percent` cap this call of `amount` would
        take past its percent (see `reserve`) and its `substitute` event (to record once the
        substitute is reserved), or None; other events go to `events`."""
        for line in lines:
            pct, target = line.substitute_at_percent, line.substitute_model
            if pct is None or target is None or target == requested:
                continue
            spent, reserved = await self._usage_of(line)
            if spent + reserved + amount <= line.limit_nusd * pct // 100:
                continue
            detail = _cap_detail(
                line, from_model=model, to_model=target, percent=pct, spent_nusd=spent, reserved_nusd=reserved
            )
            if not line.enforced:
                events.append(PolicyEvent("spend", "would_substitute", "", line.level, detail=detail))
                continue
            try:
                found = self._reprice(est, target, route)
            except GatewayError as exc:
                log.warning("the substitute model of a %s cap cannot be used: %s", line.level, exc.code)
                detail["reason"] = exc.code
                events.append(PolicyEvent("spend", "substitute_failed", "", line.level, detail=detail))
                continue
            return found, PolicyEvent("spend", "substitute", "", line.level, detail=detail)
        return None

    async def _usage_of(self, line: CapLine) -> tuple[int, int]:
        """`(spent, reserved)` of `line` now: the store's figures, reused for
        `spend.substitute_check_s` (Redis backends) with this instance's reservations added
        (`_count_reserved`); (0, 0) while the store cannot be reached (the reserve that follows
        meets the same store and answers for it)."""
        assert self.store is not None
        interval = 0.0 if self.settings.backend == "local" else self.settings.substitute_check_s
        now = time.monotonic()
        held = self._usage.get(line.bucket_name)
        if held is not None and held[0] > now:
            return held[1], held[2]
        try:
            spent, reserved = await self.store.snapshot(line)
        except StoreUnavailable:
            return 0, 0
        if interval > 0:
            if len(self._usage) >= 10_000:
                self._usage.clear()
            self._usage[line.bucket_name] = [now + interval, spent, reserved]
        return spent, reserved

    def _count_reserved(self, reservation: Reservation) -> None:
        """Add a reservation to the reused figures of its lines (see `_usage_of`)."""
        for line in reservation.lines:
            held = self._usage.get(line.bucket_name)
            if held is not None:
                held[2] += reservation.amount_nusd

    async def _substitute(
        self,
        est: Estimate,
        model: str,
        refusal: Refusal,
        target: str,
        route: Callable[[str], tuple[Provider, str]],
        lines: tuple[CapLine, ...],
        events: list[PolicyEvent],
    ) -> tuple[Substitution, ModelPrice, int, int, ReserveResult]:
        """Reserve for `target` instead of `model` after `refusal` (see `reserve`); raises the 402
        when the substitute cannot be routed, priced or fitted either."""
        assert self.store is not None
        line = refusal.line

        def refused(why: str, last: Refusal) -> GatewayError:
            err: GatewayError = refusal_error(last)
            detail = _cap_detail(line, from_model=model, to_model=target, reason=why)
            err.events = [*events, PolicyEvent("spend", "substitute_failed", "", line.level, detail=detail)]
            err.events.append(_refusal_event("refuse", last))
            return err

        try:
            substitution, price, amount, worst, min_clamp = self._reprice(est, target, route)
        except GatewayError as exc:
            log.warning("the substitute model of a %s cap cannot be used: %s", line.level, exc.code)
            raise refused(exc.code, refusal) from None
        try:
            result = await self.store.reserve(lines, amount, min_clamp_nusd=min_clamp)
        except StoreUnavailable:
            raise refused("store_unavailable", refusal) from None
        if result.refusal is not None:
            raise refused("does_not_fit", result.refusal)
        events += [_refusal_event("would_refuse", r) for r in result.monitored]
        events += _alert_events(result.alerts)
        detail = _cap_detail(line, from_model=model, to_model=target, requested_nusd=refusal.requested_nusd)
        events.append(PolicyEvent("spend", "substitute", "", line.level, detail=detail))
        return substitution, price, amount, worst, result
