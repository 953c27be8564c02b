"""Type stub for `sluicegate._core`, the Rust extension (keep in step with rust/src/py/)."""

__version__: str
__all__ = [
    "MAX_ALLOW_TERM_BYTES",
    "MAX_AMOUNT_NUSD",
    "MAX_COST",
    "MAX_WINDOW_SLOTS",
    "Bucket",
    "InFlight",
    "Lease",
    "ResponseParser",
    "ScanError",
    "Scanner",
    "SlidingWindow",
    "StreamScanner",
    "__version__",
    "acquire_all",
    "builtin_entities",
    "default_entities",
    "estimate_walk",
    "finish_all",
    "first_duplicate_key",
    "json_problem",
    "lease_finish",
    "lease_take",
    "release_all",
    "reserve_all",
    "settle_all",
    "window_at",
]

# --- spend: buckets and windows (rust/src/py/buckets.rs) -----------------------------------------

from collections.abc import Mapping, Sequence
from typing import Any, final

MAX_AMOUNT_NUSD: int
"""The largest amount or limit accepted, in nano-USD: 2**53 - 1 (about 9.007 million USD)."""

@final
class Bucket:
    """One cap's counters in one window: lock-free atomics, safe to share between threads.

    `used` is settled spend plus outstanding reservations; a reservation succeeds only while
    `used + amount <= limit` (one compare-and-swap), so admitted money never passes the limit.
    A settle above its reservation (a provider's overshoot) is recorded as it is.

    Arguments:
        limit_nusd: the cap (or, for a lease, the slice held), 0..=MAX_AMOUNT_NUSD.
        thresholds: percents of the limit that fire once each when settled spend reaches them
            (at most 64); `settle` returns them as a bit mask over this sequence.

    Raises:
        ValueError: a negative or too large limit, or more than 64 thresholds.
    """

    def __new__(cls, limit_nusd: int, thresholds: Sequence[int] = ...) -> Bucket: ...
    @property
    def limit_nusd(self) -> int:
        """The limit now."""
    @property
    def spent_nusd(self) -> int:
        """Settled spend."""
    @property
    def reserved_nusd(self) -> int:
        """Outstanding reservations (never shown below 0)."""
    @property
    def used_nusd(self) -> int:
        """Settled spend plus outstanding reservations."""
    @property
    def available_nusd(self) -> int:
        """`limit - used`: what one reservation could take now (negative after an overshoot)."""
    @property
    def thresholds(self) -> list[int]:
        """The thresholds, in percent, in the order given."""
    @property
    def fired(self) -> int:
        """The thresholds fired so far, as a bit mask over `thresholds`."""
    def snapshot(self) -> tuple[int, int, int]:
        """Returns:
        `(limit_nusd, spent_nusd, reserved_nusd)`, each read atomically.
        """
    def reserve(self, amount_nusd: int) -> bool:
        """Reserve `amount_nusd` if it fits under the limit.

        Returns:
            Whether it was reserved.

        Raises:
            ValueError: a negative or too large amount.
        """
    def settle(self, reserved_nusd: int, actual_nusd: int) -> int:
        """Replace a reservation of `reserved_nusd` by the actual cost.

        Returns:
            The thresholds this settle made fire (a bit mask over `thresholds`), each once per bucket.

        Raises:
            ValueError: a negative or too large amount.
        """
    def release(self, amount_nusd: int) -> None:
        """Give back a reservation of `amount_nusd` (nothing was spent).

        Raises:
            ValueError: a negative or too large amount.
        """
    def grow(self, amount_nusd: int) -> None:
        """Raise the limit by `amount_nusd` (a lease got a larger slice).

        Raises:
            ValueError: a negative or too large amount.
        """
    def shrink(self, amount_nusd: int) -> bool:
        """Lower the limit by `amount_nusd` if that much is unused (a lease gives part back).

        Returns:
            Whether it did; a concurrent reservation never ends up past the lowered limit.

        Raises:
            ValueError: a negative or too large amount.
        """
    def set_limit(self, limit_nusd: int) -> None:
        """Set the limit (a changed cap); admitted reservations stay.

        Raises:
            ValueError: a negative or too large limit.
        """

def reserve_all(
    buckets: Sequence[Bucket],
    amount_nusd: int,
    enforce_mask: int | None = None,
    clamp_mask: int = 0,
    min_clamp_nusd: int = 0,
) -> tuple[int, int, int]:
    """Reserve `amount_nusd` on every bucket or on none (the interpreter is detached meanwhile).

    Buckets are taken in order; when one refuses, those already taken are released, so nothing
    is ever admitted past a limit (a concurrent request may be refused spuriously while such a
    rollback is in flight). Bit `i` of a mask is `buckets[i]`.

    Arguments:
        buckets: at most 64 buckets.
        amount_nusd: the worst-case cost to reserve.
        enforce_mask: buckets that refuse (default: all); the others are monitor buckets, which
            always take the amount and report whether they would have refused.
        clamp_mask: enforcing buckets that accept a smaller amount instead of refusing; the request
            is clamped only if every enforcing bucket that cannot fit it is in this mask.
        min_clamp_nusd: the smallest clamped amount worth reserving.

    Returns:
        `(reserved_nusd, -1, monitored_mask)` when reserved (`reserved_nusd < amount_nusd` when
        clamped), or `(0, index, 0)` when `buckets[index]` refused and nothing is reserved.

    Raises:
        ValueError: a negative or too large amount, or more than 64 buckets.
    """

def settle_all(buckets: Sequence[Bucket], reserved_nusd: int, actual_nusd: int) -> list[int]:
    """Settle a reservation of `reserved_nusd` by `actual_nusd` on every bucket.

    Returns:
        The newly fired threshold mask of each bucket, in order.

    Raises:
        ValueError: a negative or too large amount, or more than 64 buckets.
    """

def release_all(buckets: Sequence[Bucket], amount_nusd: int) -> None:
    """Release a reservation of `amount_nusd` on every bucket.

    Raises:
        ValueError: a negative or too large amount, or more than 64 buckets.
    """

def window_at(kind: str, unix_s: int) -> tuple[str, int | None, int | None]:
    """The UTC calendar window of `kind` that contains the Unix time `unix_s`.

    Arguments:
        kind: `total`, `hour`, `day`, `week` (ISO, from Monday) or `month`.
        unix_s: seconds since 1970-01-01T00:00:00Z.

    Returns:
        `(id, start, end)`: the id used in bucket keys (`day:2026-11-27`, `week:2026-W48`,
        `month:2026-11`, `hour:2026-11-27T08`, `total`) and the bounds in Unix seconds; `end` is
        the reset time. Both bounds are None for `total`.

    Raises:
        ValueError: an unknown kind, or a time outside the years 1..=9999.
    """

# --- scan: PII and secret redaction (rust/src/py/scanner.rs) -------------------------------------

class ScanError(ValueError):
    """A scanner rule that cannot be compiled, or a stream used after `finish()`.

    Messages name the rule's position and entity, never a pattern, a keyword or scanned text.
    """

def builtin_entities() -> list[str]:
    """Names of every built-in entity type.

    Returns:
        `EMAIL`, `PHONE`, `US_SSN`, `CREDIT_CARD`, `IBAN`, `IP_ADDRESS`, `AWS_ACCESS_KEY_ID`,
        `AWS_SECRET_ACCESS_KEY`, `GITHUB_TOKEN`, `SLACK_TOKEN`, `OPENAI_API_KEY`, `ANTHROPIC_API_KEY`,
        `STRIPE_KEY`, `GOOGLE_API_KEY`, `PRIVATE_KEY`, `JWT`, `PERSON`, `ADDRESS`, `DATE_OF_BIRTH`,
        and the European national ids `DE_TAX_ID`, `FR_NIR`, `ES_DNI`, `ES_NIE`, `IT_FISCAL_CODE`,
        `NL_BSN`, `PL_PESEL`, `SE_PERSONNUMMER`, `BE_NATIONAL_NUMBER`, `FI_HETU`, `AT_SVNR`, in that order.
    """

def default_entities() -> list[str]:
    """Names of the built-in entity types a `Scanner()` without `entities` detects.

    Returns:
        `builtin_entities()` less the opt-in `PERSON`, `ADDRESS` and `DATE_OF_BIRTH` (heuristics:
        lower precision than the validated types; the first two slower on prose), in the same order.
    """

MAX_ALLOW_TERM_BYTES: int
"""The longest allowed term `Scanner(allow=...)` takes, in UTF-8 bytes: 256."""

@final
class Scanner:
    """A compiled rule set: built once from plain data, immutable, safe to share between threads.

    Text is matched on a normalized view (invisible characters removed, full-width and other
    decimal digits folded to ASCII, Unicode spaces, hyphens, en dashes and minus signs, dots and
    slashes to their ASCII separator, em dashes to a space; HTML character references,
    percent-encoded printable ASCII and JSON string escapes decoded one level; a hard line wrap
    inside a number joined) and the original span, escapes included, is redacted.
    Built-ins use literal anchors and validators (Luhn, mod-97, SSN rules, NANP, IPv4/IPv6
    parsing, entropy floors, the national ids' check digits and letters; the digit-only national
    ids also need one of their names, such as `BSN` or `PESEL`, in the 48 bytes before them);
    operator patterns run on the `regex` crate (linear time). Overlaps resolve leftmost-longest.
    Findings are `(entity, start, end)` in `str` character offsets and never carry the value.
    Texts over 4 KB are scanned with the interpreter detached.

    Arguments:
        entities: built-in entity names to detect (UPPER_SNAKE); None for `default_entities()`
            (all but the opt-in PERSON, ADDRESS and DATE_OF_BIRTH).
        custom_patterns: `(ENTITY_NAME, regex)` operator patterns, matched on the normalized text.
            A pattern must not match the empty string and must have a bounded match length of at
            most 1024 bytes (`\\d{4,10}`, not `\\d+`), which is what bounds a stream's hold-back.
        keywords: `(ENTITY_NAME, words)` literal words, ASCII case-insensitive, whole words.
        min_confidence: thresholds per compiled entity type, 0 to 100: a finding whose confidence
            is below its type's threshold is not redacted (`scan`, `redact` and streams leave it;
            `scan_scored` and `StreamScanner.quiet` report it). Types not named keep their default:
            50 for `PERSON`, 0 for every other type (docs/redaction-types.md, "Confidence").
        allow: `(ENTITY_NAME, terms)` allowed terms of a compiled type: a candidate of that type
            whose whole text is one of the terms (both read through the normalization above, then
            lower-cased with white space runs folded to one space) is not a finding at all (not
            scanned, scored or redacted); a candidate that holds a term and more is. Exempt
            candidates are dropped before spans are chosen, the same for any chunking of a stream.

    Raises:
        ScanError: an unknown built-in name, a name that is not UPPER_SNAKE, an invalid or
            unbounded pattern or one that can match the empty string, an empty keyword list or
            keyword, a threshold for a type the scanner does not compile or over 100, or an
            allowed term list for such a type, empty, or with a term that is blank or over 256 bytes.
    """

    def __new__(
        cls,
        entities: Sequence[str] | None = None,
        custom_patterns: Sequence[tuple[str, str]] = (),
        keywords: Sequence[tuple[str, Sequence[str]]] = (),
        min_confidence: Mapping[str, int] | None = None,
        allow: Sequence[tuple[str, Sequence[str]]] = (),
    ) -> Scanner: ...
    @property
    def entities(self) -> list[str]:
        """The compiled entity types: enabled built-ins in `builtin_entities()` order, then operator names."""
    @property
    def min_confidence(self) -> dict[str, int]:
        """The threshold of each compiled entity type, in `entities` order."""
    @property
    def max_holdback(self) -> int:
        """The most characters a `StreamScanner` of this scanner holds back at any time.

        14,376 with the built-ins alone: a candidate of at most 513 normalized bytes, each standing
        for at most 28 original characters (an escape sequence of up to 12 after up to 16 bytes of
        removed invisible characters), plus an escape of up to 12 cut by the end of a chunk. Longer
        operator patterns raise it. `PRIVATE_KEY` and `JWT` blocks are capped at 8192 (a longer
        block is redacted from its header to the end of its run, so it is never held longer).
        """
    def scan(self, text: str) -> list[tuple[str, int, int]]:
        """Find every entity in `text` whose confidence reaches its type's threshold.

        Arguments:
            text: the text to scan.

        Returns:
            `(entity, start, end)` findings, sorted and non-overlapping, in character offsets.
        """
    def scan_scored(self, text: str) -> list[tuple[str, int, int, int]]:
        """Find every entity in `text` with its confidence, those below their threshold too.

        Spans are chosen before thresholds apply (leftmost-longest over every candidate), so `scan`
        is this list without the findings below their type's threshold (`min_confidence`).
        Confidence is 0 to 100: 95 for values a checksum or an issuer prefix confirms, 75 to 90
        for the other structured types, and graded by evidence for `PERSON` (a title 90, a cue
        such as `customer` before a known name 85, a given name and a known surname 85, down to
        45 for one unknown capitalised word after a greeting, less in a title-case line or after
        a place prefix such as `Santa`) and `ADDRESS` (70 for a street and
        number, +10 with a unit, +20 with a postcode or city).

        Arguments:
            text: the text to scan.

        Returns:
            `(entity, start, end, confidence)` findings, sorted and non-overlapping, in character
            offsets.
        """
    def finds_in_json(self, data: bytes) -> bool:
        """Whether scanning the text of the JSON document `data` field by field could find anything.

        Looks at a superset of what a walk of the parsed document scans: every string value and
        object key, escapes decoded, each scanned on its own; every number of 10 or more
        characters; and, for a string that is itself JSON, its own values the same way. True when
        any of them has a finding, and when it cannot decide (a string that does not decode to
        UTF-8, a `token` key, whose logprob runs are scanned joined, JSON nested in strings more
        than 8 levels deep); False only when no walk of the document can find anything. `data`
        must be a document the caller parsed (on other bytes the answer is unspecified). Documents
        over 4 KB are read with the interpreter detached.
        """
    def json_findings(self, data: bytes) -> tuple[dict[str, list[tuple[str, int, int, int]]], bool] | None:
        """`finds_in_json`'s reading, keeping what it found: each distinct text of `data` with a
        finding (a string value or object key, escapes decoded; a number of 10 or more characters;
        a string of JSON inside a string), with its findings as `scan_scored(text)` gives them
        (below their threshold too), and whether one of those texts was an object key. An empty
        dict is `finds_in_json`'s False; None is its cautious True (it cannot decide). A text of the
        parsed document that is not in the dict has nothing this scanner finds.
        """
    def redact(self, text: str, replacement: str = "[REDACTED:{entity}]") -> tuple[str, list[tuple[str, int, int]]]:
        """Replace every finding in `text` by `replacement`.

        Arguments:
            text: the text to redact.
            replacement: the placeholder; each `{entity}` in it becomes the entity name.

        Returns:
            The redacted text (the same object when nothing was found) and the findings, with
            offsets into the original `text`.
        """
    def stream(self, replacement: str = "[REDACTED:{entity}]") -> StreamScanner:
        """Start redacting a text that arrives in chunks.

        Arguments:
            replacement: the placeholder; each `{entity}` in it becomes the entity name.

        Returns:
            A new `StreamScanner`.
        """

@final
class StreamScanner:
    """An incremental redactor from `Scanner.stream()`; one per stream, not shared between threads.

    Holds back only text that could still be part of a finding (at most `Scanner.max_holdback`
    characters). For any way of cutting a text into chunks, the concatenated output of `feed` and
    `finish` equals `Scanner.redact(text)[0]`, and the findings equal its findings.
    """

    def feed(self, chunk: str) -> tuple[str, list[tuple[str, int, int]]]:
        """Add the next chunk of the stream.

        Arguments:
            chunk: the next piece of text.

        Returns:
            The text that is safe to emit now, and the findings decided by this call, with
            character offsets into the whole stream's original text. A block redacted past its cap
            has its placeholder emitted at once and its finding reported when its end arrives.

        Raises:
            ScanError: the stream was finished.
        """
    def finish(self) -> tuple[str, list[tuple[str, int, int]]]:
        """End the stream; calling it again returns `("", [])`.

        Returns:
            The rest of the redacted text and the last findings.
        """
    def quiet(self) -> list[tuple[str, int, int]]:
        """Take the findings below their type's threshold decided so far (by `feed` and `finish`).

        Their text was emitted as it is. For any way of cutting a text into chunks, the findings
        taken over the whole stream equal those of `Scanner.scan_scored(text)` below their threshold.

        Returns:
            `(entity, start, end)` findings in character offsets into the whole stream's text.
        """

# --- JSON: repeated object keys (rust/src/py/jsonkeys.rs) -------------------------------------------

def first_duplicate_key(data: bytes) -> int | None:
    """Find the first object key that repeats a key of the same object in a JSON document.

    Keys are compared after decoding their escapes (`"a"` and `"\\u0061"` are one key). The
    document must already have parsed as JSON; on other input the answer is unspecified (it never
    raises). Documents over 64 KB are read with the interpreter detached.

    Arguments:
        data: the JSON document.

    Returns:
        The byte offset of the repeated key's opening quote, or None when no object repeats a key.
    """

def json_problem(data: bytes, max_depth: int) -> tuple[str, int] | None:
    """Find, in one pass, the first structural problem of a JSON document that has parsed: an array
    or object nested more than `max_depth` levels deep (the document is level 1), or a key that
    repeats a key of the same object (compared as `first_duplicate_key` does).

    Arguments:
        data: the JSON document.
        max_depth: the deepest nesting allowed.

    Returns:
        `("depth", offset)` (the bracket that opens too deep), `("duplicate_key", offset)` (the
        repeated key's opening quote), whichever comes first, or None.
    """

# --- the token estimate's walk (rust/src/py/estimate.rs) --------------------------------------------

def estimate_walk(
    value: object, not_text: frozenset[str], attachments: frozenset[str]
) -> tuple[int, int, list[dict[str, object]]]:
    """Count the text of a parsed JSON value for the input-token estimate (`spend.estimate`), as
    `_Counter.walk_py` does: every string (through lists and objects) is `ceil(ascii / 4)` tokens
    plus one per other character; an object whose `type` is in `attachments` counts as one
    attachment and is not entered; an object's values under keys in `not_text` are skipped; a
    `tool_use` object's `input` object is handed back to be counted as its JSON.

    Returns:
        (tokens, attachments, the `tool_use` inputs).
    """

# --- limits: sliding windows and requests in flight (rust/src/py/limits.rs) ---------------------------

MAX_COST: int
"""The largest cost or limit of a rate limit: 2**53 - 1 (exact in Redis's Lua numbers too)."""

MAX_WINDOW_SLOTS: int
"""The most slots in one sliding window (36000: an hour of 100 ms slots)."""

@final
class SlidingWindow:
    """One rate limit's sliding window of fixed slots (requests or tokens per window).

    Slot `k` is `[k * slot_ms, (k + 1) * slot_ms)`. A take at `now_ms` (slot `s`) with cost `c` is
    admitted on an enforcing window only if the sum of slots `s - W ..= s` (`W = window_ms /
    slot_ms`) plus `c` is at most the limit, so no interval of `window_ms` ever admits more than
    the limit; an admission stays counted for up to `window_ms + slot_ms`. Times are the caller's
    clock (never read inside). A short lock guards the slots: safe to share between threads.

    Arguments:
        limit: the most per window, 0..=MAX_COST.
        window_ms: the window, a whole number (1..=MAX_WINDOW_SLOTS) of slots.
        slot_ms: the slot, 1..=60000 ms.

    Raises:
        ValueError: a limit or window out of range.
    """

    def __new__(cls, limit: int, window_ms: int, slot_ms: int = 1000) -> SlidingWindow: ...
    @property
    def limit(self) -> int:
        """The limit now."""
    @property
    def window_ms(self) -> int:
        """The window length in ms."""
    @property
    def slot_ms(self) -> int:
        """The slot length in ms."""
    def set_limit(self, limit: int) -> None:
        """Set the limit (a changed rule); what is counted stays.

        Raises:
            ValueError: a limit out of range.
        """
    def try_take(self, cost: int, now_ms: int, enforce: bool) -> tuple[bool, bool, int, int]:
        """Count `cost` at `now_ms` if it fits (whatever it does when `enforce` is false).

        Returns:
            `(admitted, would_refuse, slot, retry_after_ms)`: the slot it was counted in, and when
            it did not fit, until it would have (-1: never, the cost is above the limit).

        Raises:
            ValueError: a cost out of 0..=MAX_COST.
        """
    def adjust(self, slot: int, delta: int, now_ms: int) -> None:
        """Add `delta` (negative: less) to slot `slot`, if it is still in the window at `now_ms`;
        a slot never goes below 0 (a tokens grant moving from its estimate to the actual count).

        Raises:
            ValueError: a delta out of -MAX_COST..=MAX_COST.
        """
    def state(self, cost: int, now_ms: int) -> tuple[int, int, int, int]:
        """Returns:
        `(counted, remaining, reset_ms, retry_after_ms)` at `now_ms`: what the window counts, the
        limit minus that (never below 0), until everything counted has left the window (0: none),
        and until `cost` would fit (0: now; -1: never).

        Raises:
            ValueError: a cost out of range.
        """
    def slot_count(self, slot: int, now_ms: int) -> int:
        """What slot `slot` counts at `now_ms` (0 once it has left the window)."""
    def is_empty(self, now_ms: int) -> bool:
        """Nothing is counted at `now_ms`."""

@final
class InFlight:
    """One limit on requests in flight: a count with an entry per grant, each with an expiry.

    An entry never released (a lost finish) stops counting once `now_ms` passes `ttl_ms` after its
    take. Safe to share between threads.

    Arguments:
        limit: the most in flight, 0..=MAX_COST.
        ttl_ms: how long an entry counts without a release, > 0.

    Raises:
        ValueError: a limit out of range, a TTL not positive.
    """

    def __new__(cls, limit: int, ttl_ms: int) -> InFlight: ...
    @property
    def limit(self) -> int:
        """The limit now."""
    @property
    def ttl_ms(self) -> int:
        """The TTL of an entry in ms."""
    def set_limit(self, limit: int) -> None:
        """Set the limit (a changed rule); what is in flight stays.

        Raises:
            ValueError: a limit out of range.
        """
    def try_take(self, cost: int, now_ms: int, enforce: bool) -> tuple[bool, bool, int, int]:
        """Add an entry of `cost` at `now_ms` if it fits (whatever it does when `enforce` is false).

        Returns:
            `(admitted, would_refuse, ticket, retry_after_ms)`: the entry's ticket (-1 when not
            admitted), and when it did not fit a hint of 1000 ms (-1: never, cost above the limit).

        Raises:
            ValueError: a cost out of range.
        """
    def release(self, ticket: int) -> None:
        """Remove entry `ticket` (a second release, or one of an expired entry, does nothing)."""
    def state(self, cost: int, now_ms: int) -> tuple[int, int, int, int]:
        """Returns:
        `(counted, remaining, 0, retry_after_ms)` at `now_ms` (see `try_take` for the last).

        Raises:
            ValueError: a cost out of range.
        """

def acquire_all(
    counters: Sequence[SlidingWindow | InFlight], costs: Sequence[int], enforce_mask: int, now_ms: int
) -> tuple[int, int, list[int], list[tuple[int, int, int, int]]]:
    """Take `costs[i]` on `counters[i]` for every counter, or on none when an enforcing one (bit `i`
    of `enforce_mask`) cannot fit it; the interpreter is detached meanwhile.

    Counters are taken in order and rolled back on a refusal, so nothing is ever admitted past a
    limit (a concurrent request may be refused spuriously while a rollback is in flight).

    Returns:
        `(refused, would_refuse_mask, tickets, states)`: the index of the enforcing counter that
        refused (-1: admitted), the counters that did not fit (monitor ones counted anyway), each
        counter's ticket for `finish_all` (empty when refused), and each counter's `state()` after
        the call, whose `retry_after_ms` is set only where the cost did not fit.

    Raises:
        ValueError: a cost out of range, more than 64 counters, or not one cost per counter.
    """

def finish_all(
    counters: Sequence[SlidingWindow | InFlight], tickets: Sequence[int], deltas: Sequence[int], now_ms: int
) -> None:
    """End a grant: a window moves the slot of its ticket by `deltas[i]` (while in the window, never
    below 0); an in-flight counter releases its ticket (its delta is ignored).

    Raises:
        ValueError: a delta out of range, or not one ticket and one delta per counter.
    """

# --- Limit leases (rust/src/py/leases.rs) --------------------------------------------------------

@final
class Lease:
    """One instance's lease on a window line of a Redis-held rate limit (`limits.leases`): room
    Redis already counted in slot `counted_slot`, handed out locally while the caller's clock is in
    slot `slot`, and per slot what this instance owes Redis's count and has not sent yet.

    Arguments:
        line: the `LimitLine` (requests or tokens per window); setting `line` again reads its limit,
            window and kind.

    Raises:
        ValueError: a `concurrent` line (not leased).
    """

    def __new__(cls, line: Any) -> Lease: ...
    line: Any
    slot: int
    """The local slot the room is valid in (a new lease: none, -2**62)."""
    counted_slot: int
    """The slot Redis counted the room in."""
    room: int
    """Room left to hand out in `slot`."""
    n_used: int
    """Requests admitted from leases in `slot`."""
    @property
    def n_prev(self) -> int:
        """Requests admitted from leases in the slot before `slot` (0 if that was not the last)."""
    counted: int
    """Redis's count of the line after the last call (this instance's room included)."""
    reset_at: int
    """When everything counted at the last call leaves the window (ms)."""
    full_need: int
    """Redis refused this cost in `slot` (0: it did not)."""
    retry_at: int
    """When the refused cost would fit (-1: never)."""
    @property
    def pending(self) -> dict[int, int]:
        """A copy of what is owed per slot and not sent yet (no zero entries)."""
    def owe(self, slot: int, delta: int) -> None:
        """Add `delta` to what `slot` owes."""
    def roll(self, s: int) -> None:
        """Move to local slot `s` (nothing if it is not later): the room of the ended slot is owed
        back, the slot's counts move on, a refusal of the ended slot is forgotten."""
    def full_for(self, cost: int, s: int) -> bool:
        """Redis refused this cost (or a smaller one) in slot `s`, and the room does not cover it."""
    def adjustments(self) -> str:
        """`pending` as the scripts take it: `slot:delta` pairs joined by commas."""
    def sent(self, snapshot: dict[int, int]) -> None:
        """Forget what a call carried (`snapshot`, `pending` taken before it), keeping what was
        added meanwhile."""
    def state(self, t: int, slot_ms: int) -> tuple[int, int]:
        """`(remaining, reset_ms)` at `t` (ms): the limit less Redis's last count plus the room, and
        until everything counted leaves the window."""
    def settle(self, ticket: int, delta: int, s: int) -> None:
        """Move the line by `delta` for a call counted in slot `ticket`, at local slot `s`: against
        the room when the lease still holds that slot's, else owed."""

def lease_take(
    leases: tuple[Lease, ...], costs: Sequence[int], now_ms: int, slot_ms: int
) -> tuple[tuple[int, ...], list[tuple[int, int]]] | None:
    """The leased store's request path: roll every lease to slot `now_ms // slot_ms`; when each has
    room for its cost, take it from all of them (and count the request) and return the slot each
    line is counted in and each line's `state(now_ms, slot_ms)`; else None, nothing taken (a
    cost out of 0..=MAX_COST or not one cost per lease is None too: the slow path raises).

    Raises:
        ValueError: `slot_ms` not positive.
        TypeError: an item that is not a `Lease`, or the same lease twice.
    """

def lease_finish(
    leases: tuple[Lease, ...],
    tickets: Sequence[int],
    costs: Sequence[int],
    actual_tokens: int | None,
    now_ms: int,
    slot_ms: int,
) -> None:
    """Settle a grant taken from `leases`: each tokens line moves by `actual_tokens` minus its cost
    (clamped to 0..=MAX_COST; None: output went out without usage, nothing moves), against the
    room of the ticket's slot while the lease holds it, else owed (`Lease.settle`).

    Raises:
        ValueError: `slot_ms` not positive, or not one ticket and one cost per lease.
    """

# --- HTTP/1.1 responses (rust/src/py/http1.rs) ---------------------------------------------------

@final
class ResponseParser:
    """An incremental HTTP/1.1 response parser for one connection: bytes in as they arrive, the head
    once complete, then the body with its framing removed (`content-length`, `chunked`, or until the
    connection closes). 1xx heads are skipped; 204 and 304 have no body; trailers are dropped.

    Arguments:
        max_head: the largest head (and chunk-size line, and trailers) in bytes.
    """

    def __new__(cls, max_head: int = 65536) -> ResponseParser: ...
    def feed(self, data: bytes) -> tuple[tuple[int, dict[str, str], bool] | None, bytes, bool]:
        """Feed the bytes that arrived: (the head if it completed now, as (status, {lower-cased
        name: value, repeated headers joined with ", "}, keep_alive), the body bytes that arrived,
        whether the message is complete).

        Raises:
            ValueError: a malformed head, contradictory framing, a malformed chunk, a part over
                `max_head`, or bytes after the complete message.
        """

    def eof(self) -> None:
        """The connection closed: completes a body read until close.

        Raises:
            ValueError: the message was not complete.
        """

    def reset(self) -> None:
        """Ready for the next response on the same connection."""

    @property
    def done(self) -> bool:
        """Whether the message is complete."""

    @property
    def reusable(self) -> bool:
        """Whether the message is complete and the connection may carry another request."""

    @property
    def has_head(self) -> bool:
        """Whether the head has been read."""
