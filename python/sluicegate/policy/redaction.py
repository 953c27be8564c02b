"""Redaction: the Rust scanner applied to every string of requests and responses (all but the
non-text fields each format names, see `formats.slots`).

Actions, per entity type and direction (`[redaction]` in the config):

- `redact` (default): the value becomes `[REDACTED:US_SSN]`, or with `style = "pseudonym"` a
  stable per-workspace pseudonym (`[EMAIL:3f9a1c]`) so the model can still tell values apart;
- `block`: the request is refused (400, `content_blocked`) naming the types, never the values; in a
  response stream, the stream ends with an error event;
- `monitor`: forwarded unchanged, recorded;
- `pseudonymize` (requests): the model sees `<EMAIL_1>`, and the client's response has the
  original put back, also when a placeholder is split across streamed chunks.

`PERSON`, `ADDRESS` and `DATE_OF_BIRTH` (heuristics, see docs/redaction-types.md) are opt-in:
they are scanned when `entities` lists them or, with `entities` unset, once a rule names them.

Every finding has a confidence (0-100); a rule's `min_confidence` (and `min_confidence_by_type`)
sets the threshold below which a finding of its types is not acted on, only counted: a
`below_threshold` event with its type, direction, count and locations.

Scanning reads decoded strings (orjson has undone every escape); what goes upstream is the parsed
body, serialized again. If scanning fails or runs past `max_scan_ms`, the request is refused (fail
closed), never forwarded unscanned. Every decision becomes a `PolicyEvent` (type,
direction, count, locations; never a value).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import orjson

from sluicegate._core import Scanner, StreamScanner, builtin_entities, default_entities
from sluicegate.config import AllowTerms, RedactionSettings, thresholds_of
from sluicegate.errors import PolicyBlocked, PolicyFailed
from sluicegate.formats.base import TextFilter, WireFormat
from sluicegate.formats.slots import Field, TextSlot, all_strings, locate, step, text_fields
from sluicegate.observe.events import PolicyEvent

Direction = Literal["request", "response"]
Finding = tuple[str, int, int]
Scored = tuple[str, int, int, int]  # a finding and its confidence
PLACEHOLDER = "[REDACTED:{entity}]"
# Bodies up to this size are first read whole from their bytes for anything to find (`nothing_in`).
QUICK_MAX_BYTES = 256 * 1024
# Kinds of action, strictest first: a value two types find goes to the stricter one.
_STRICTNESS = ("block", "replace", "monitor")
_KIND = {"block": "block", "redact": "replace", "pseudonymize": "replace", "monitor": "monitor"}
# The event action of findings below their type's confidence threshold (counted, not acted on).
BELOW_THRESHOLD = "below_threshold"
_RESTORE = re.compile(r"<[A-Z][A-Z0-9_]*_\d+>")
_RESTORE_PREFIX = re.compile(r"<[A-Z0-9_]{0,48}\Z")


@dataclass(slots=True)
class Tally:
    """Findings counted per (direction, action, entity), with their locations."""

    counts: dict[tuple[Direction, str, str], list[str]] = field(default_factory=dict)

    def add(self, direction: Direction, action: str, entity: str, where: str) -> None:
        self.counts.setdefault((direction, action, entity), []).append(where)

    def events(self) -> list[PolicyEvent]:
        return [
            PolicyEvent("redaction", action, direction, entity, len(places), sorted(set(places)))
            for (direction, action, entity), places in sorted(self.counts.items())
        ]


@dataclass(slots=True)
class RequestScan:
    """What request redaction did, and what the response side needs from it."""

    tally: Tally = field(default_factory=Tally)
    originals: dict[str, str] = field(default_factory=dict)  # placeholder -> value (pseudonymize)


@dataclass(frozen=True, slots=True)
class _Rules:
    """What each scanner of a `Redactor` is compiled from: the built-ins, the operator's and the
    policies' patterns and keywords, and the allowed terms of each compiled type."""

    builtins: list[str]
    patterns: list[tuple[str, str]]
    keywords: list[tuple[str, list[str]]]
    allow: list[tuple[str, list[str]]]

    def scanner(self, thresholds: dict[str, int], keep: set[str] | None = None) -> Scanner:
        """A scanner of every type, or of the types in `keep`, with `thresholds`."""
        if keep is None:
            return Scanner(self.builtins, self.patterns, self.keywords, thresholds, self.allow)
        return Scanner(
            [e for e in self.builtins if e in keep],
            [p for p in self.patterns if p[0] in keep],
            [k for k in self.keywords if k[0] in keep],
            {e: t for e, t in thresholds.items() if e in keep},
            [a for a in self.allow if a[0] in keep],
        )


def allowed_terms(allow_terms: Iterable[AllowTerms], entities: Iterable[str]) -> list[tuple[str, list[str]]]:
    """The allowed terms of each of `entities` (the compiled types; terms of other types are not
    compiled: nothing of theirs is found), one list per type."""
    compiled = set(entities)
    out: dict[str, list[str]] = {}
    for entry in allow_terms:
        for entity in entry.entities:
            if entity in compiled:
                out.setdefault(entity, []).extend(entry.terms)
    return list(out.items())


class Redactor:
    """Compiled once from the settings; thread-safe; used by every request.

    Arguments:
        settings: the `[redaction]` settings.

    Raises:
        ValueError: a bad entity name or pattern (from the scanner), at start-up.
    """

    def __init__(self, settings: RedactionSettings) -> None:
        self.settings = settings
        patterns = [(p.entity, p.pattern) for p in settings.custom_patterns]
        keywords = [(k.entity, k.words) for k in settings.keywords]
        builtins = settings.entities if settings.entities is not None else self.default_builtins(settings)
        entities = Scanner(builtins, patterns, keywords).entities
        rules = _Rules(builtins, patterns, keywords, allowed_terms(settings.allow_terms, entities))
        self.actions: dict[Direction, dict[str, str]] = {
            d: dict.fromkeys(entities, settings.default_action) for d in ("request", "response")
        }
        for rule in settings.rules:
            for entity in rule.entities:
                if entity not in entities:
                    raise ValueError(f"redaction rule names {entity!r}, which is not a scanned entity type")
                for d in ("request", "response") if rule.direction == "both" else (rule.direction,):
                    self.actions[d][entity] = rule.action  # type: ignore[index]
        # Confidence thresholds per direction, for the types whose rules set one (the others keep
        # the scanner's defaults); a direction's scanners are compiled with its thresholds.
        self.thresholds: dict[Direction, dict[str, int]] = {}
        for d in ("request", "response"):
            in_force: dict[tuple[str, str], int] = {}
            thresholds_of(settings.rules, d, in_force)
            self.thresholds[d] = {e: t for (e, _), t in in_force.items() if e in entities}  # type: ignore[index]
        request = rules.scanner(self.thresholds["request"])
        same = self.thresholds["request"] == self.thresholds["response"]
        self._scanners: dict[Direction, Scanner] = {
            "request": request,
            "response": request if same else rules.scanner(self.thresholds["response"]),
        }
        # Whether a direction can have findings below a threshold (then scans report them).
        self._quiet = {d: any(t > 0 for t in sc.min_confidence.values()) for d, sc in self._scanners.items()}
        self._floors: dict[Scanner, dict[str, int]] = {}  # each scanner's thresholds, read once
        self.scanner = request
        # Overlapping values go to the strictest action, never to the leftmost-longest finding: a
        # pattern with a weaker action (a lower level's `monitor` type that spans an SSN the org
        # blocks) must not hide a stricter type's value. With more than one kind of action in a
        # direction, each kind is scanned on its own, strictest first (see `find`).
        self._tiers: dict[Direction, list[Scanner]] = {
            d: self._tiers_of(rules, self.actions[d], self.thresholds[d]) for d in ("request", "response")
        }
        response = self.actions["response"]
        # Streams replace whatever the scanner finds, so response scanners are split by action.
        thresholds = self.thresholds["response"]
        self._stream_scanner = self._subset(rules, {"redact", "block"}, response, thresholds)
        self._monitor_scanner = self._subset(rules, {"monitor"}, response, thresholds)
        self._secret = settings.pseudonym_secret.reveal().encode() if settings.pseudonym_secret else b""
        self.max_scan_s = settings.max_scan_ms / 1000

    @staticmethod
    def default_builtins(settings: RedactionSettings) -> list[str]:
        """The built-ins scanned when `entities` is not set: the default ones, and the opt-in
        `PERSON`, `ADDRESS` and `DATE_OF_BIRTH` once a rule names them (a rule is how a workspace
        turns them on)."""
        named = {e for rule in settings.rules for e in rule.entities}
        default = set(default_entities())
        return [e for e in builtin_entities() if e in default or e in named]

    @staticmethod
    def _subset(rules: _Rules, wanted: set[str], actions: dict[str, str], thresholds: dict[str, int]) -> Scanner | None:
        keep = {e for e, a in actions.items() if a in wanted}
        return rules.scanner(thresholds, keep) if keep else None

    @classmethod
    def _tiers_of(cls, rules: _Rules, actions: dict[str, str], thresholds: dict[str, int]) -> list[Scanner]:
        kinds = [k for k in _STRICTNESS if any(_KIND[a] == k for a in actions.values())]
        if len(kinds) < 2:
            return []
        tiers = []
        for kind in kinds:
            wanted = {a for a in _KIND if _KIND[a] == kind}
            scanner = cls._subset(rules, wanted, actions, thresholds)
            assert scanner is not None
            tiers.append(scanner)
        return tiers

    def find(self, text: str, direction: Direction) -> list[Finding]:
        """The findings in `text` that `direction`'s actions apply to: one scan when every type has the
        same kind of action; else block types, then replaced types, then monitored ones, each scanned
        without the others' patterns, a finding kept unless a stricter one overlaps it."""
        return self.find_all(text, direction)[0]

    def find_all(self, text: str, direction: Direction) -> tuple[list[Finding], list[Finding]]:
        """As `find`, and the findings below their type's confidence threshold (not acted on)."""
        tiers = self._tiers[direction]
        if not tiers:
            return self._split(self._scanners[direction], text, direction)
        kept: list[Finding] = []
        quiet: list[Finding] = []
        for scanner in tiers:
            found, below = self._split(scanner, text, direction)
            quiet += below
            if not found:
                continue
            if not kept:
                kept = list(found)
                continue
            taken = list(kept)
            kept += [f for f in found if not any(f[1] < t[2] and t[1] < f[2] for t in taken)]
        kept.sort(key=lambda f: f[1])
        return kept, quiet

    def _split(self, scanner: Scanner, text: str, direction: Direction) -> tuple[list[Finding], list[Finding]]:
        """`scanner`'s findings in `text`: those at or above their threshold, and those below."""
        if not self._quiet[direction]:
            return scanner.scan(text), []
        return self._scored(scanner, scanner.scan_scored(text), direction)

    def _scored(
        self, scanner: Scanner, scored: list[Scored], direction: Direction
    ) -> tuple[list[Finding], list[Finding]]:
        """`scored` (`scanner.scan_scored` of a text) as `_split` answers for that text."""
        if not scored:
            return [], []
        if not self._quiet[direction]:  # every threshold is 0: each finding is acted on
            return [(e, s, t) for e, s, t, _ in scored], []
        floor = self._floors.get(scanner)
        if floor is None:
            floor = self._floors[scanner] = scanner.min_confidence
        acted = [(e, s, t) for e, s, t, c in scored if c >= floor[e]]
        if len(acted) == len(scored):
            return acted, []
        return acted, [(e, s, t) for e, s, t, c in scored if c < floor[e]]

    def preview(self, text: str, workspace: str) -> tuple[list[tuple[str, int, int, str]], str]:
        """What the request direction does to `text`: each finding as (entity, start, end, action),
        positions in code points, and the text as it would go upstream (a `block` type's value is
        replaced there too: such a request is refused anyway)."""
        found, _, out = self.preview_all(text, workspace)
        return found, out

    def preview_all(self, text: str, workspace: str) -> tuple[list[tuple[str, int, int, str]], list[Finding], str]:
        """As `preview`, and the findings below their type's confidence threshold, (entity, start,
        end): counted as `below_threshold` events and left in the text."""
        findings, below = self.find_all(text, "request")
        actions = self.actions["request"]
        out = self._apply(text, findings, "request", "text", RequestScan(), workspace)
        acted = [(e, start, end, actions.get(e, self.settings.default_action)) for e, start, end in findings]
        return acted, sorted(below, key=lambda f: f[1]), out

    def scrub(self, text: str) -> str:
        """`text` with every value of every scanned type replaced, whatever its action: for copies
        that leave the request path (a trace), where `monitor` and `pseudonymize` values must not go."""
        return self.scanner.redact(text)[0]

    def check_model_name(self, model: str) -> None:
        """Refuse a request whose model name holds a value of a scanned type, whatever its action.
        The model name is skipped by the field walk (it is not text the model reads), but with a
        default route any name goes upstream, and it is recorded in access logs, metrics and traces:
        a value planted there would pass every rule. It cannot be redacted without changing where
        the call goes, so it is refused (400 `model_name_refused`, naming the types, never the
        value), before the name reaches a route, a log or a metric.

        Raises:
            PolicyBlocked: the name holds a value of a scanned type.
        """
        types = self.types_in_name(model)
        if not types:
            return
        err = PolicyBlocked(
            f"the model name holds a value of a type this gateway redacts ({', '.join(types)}); "
            "the request was not sent",
            code="model_name_refused",
            param="model",
        )
        tally = Tally()
        for entity in types:
            tally.add("request", "block", entity, "model")
        err.events = tally.events()
        raise err

    def types_in_name(self, name: str) -> list[str]:
        """The scanned types a name the caller chose holds (a model's, a tool's), sorted; such a name
        is refused, never redacted: it says where the call goes, and it is recorded in logs,
        metrics and traces."""
        return sorted({entity for entity, _, _ in self.scanner.scan(name)})

    # ── requests ────────────────────────────────────────────────────────────

    def scan_request(
        self, fmt: WireFormat, body: dict[str, Any], workspace: str, raw: bytes | None = None
    ) -> RequestScan:
        """Apply the request-direction actions to every text field of `body`, in place. With `raw`,
        the bytes `body` was parsed from (strings put into `body` since are not scanned), the
        bytes are read once (`read_json`): a body with nothing to find is known without the walk,
        and the walk looks each string up instead of scanning it again.

        Raises:
            PolicyBlocked: a `block` type was found (the message names the types).
            PolicyFailed: scanning failed or took longer than `max_scan_ms`.
        """
        scan = RequestScan()
        read = self.read_json(raw, "request")
        if read is not None and not read[0]:
            return scan
        started = time.perf_counter()
        try:
            fields = text_fields(body, fmt.request_shape)
            self._scan_fields(body, fields, "request", scan, workspace, found=read[0] if read else None)
            if read is None or read[1]:
                self._scan_keys(body, "request", scan, workspace)
        except (PolicyBlocked, PolicyFailed):
            raise
        except Exception as exc:
            raise PolicyFailed(f"redaction could not run ({type(exc).__name__}); the request was not sent") from None
        if time.perf_counter() - started > self.max_scan_s:
            raise PolicyFailed("redaction took longer than its time bound; the request was not sent")
        blocked = sorted({e for (d, a, e) in scan.tally.counts if a == "block" and d == "request"})
        if blocked:
            err = PolicyBlocked(f"the request contains content this gateway blocks: {', '.join(blocked)}")
            err.events = scan.tally.events()
            raise err
        return scan

    def nothing_in(self, raw: bytes, direction: Direction) -> bool:
        """True when no text field of the JSON document `raw` can hold anything `direction`'s scan
        finds: then the field-by-field walk, which is most of redaction's cost on the request path,
        is not needed. The Rust side reads a superset of the fields straight from the bytes
        (`Scanner.finds_in_json`) with the scanners the walk would use. Documents over
        `QUICK_MAX_BYTES` (mostly media the walk skips) go to the walk directly. Never raises: a
        failure here is a False, and the walk decides."""
        if len(raw) > QUICK_MAX_BYTES:
            return False
        try:
            scanners = self._tiers[direction] or (self._scanners[direction],)
            return not any(scanner.finds_in_json(raw) for scanner in scanners)
        except Exception:
            return False

    def read_json(self, raw: bytes | None, direction: Direction) -> tuple[dict[str, list[Scored]], bool] | None:
        """What `direction`'s scan finds in the JSON document `raw`, read from its bytes: each text
        with a finding (the scanner's `json_findings`) and whether one was an object key; an empty
        dict when no text field can hold anything (as `nothing_in`). None when the walk must scan
        for itself: no bytes, the bytes cannot decide, the body is over `QUICK_MAX_BYTES`, or the
        direction has tiers of actions (then only `nothing_in`'s answer is read: empty or None).
        Never raises: a failure here is a None, and the walk decides."""
        if raw is None or len(raw) > QUICK_MAX_BYTES:
            return None
        try:
            if self._tiers[direction]:
                return ({}, False) if self.nothing_in(raw, direction) else None
            return self._scanners[direction].json_findings(raw)
        except Exception:
            return None

    def _scan_fields(
        self,
        root: Any,
        fields: Sequence[Field],
        direction: Direction,
        scan: RequestScan,
        workspace: str,
        restore: RestoreFilter | None = None,
        outer: Callable[[], str] | None = None,
        found: dict[str, list[Scored]] | None = None,
    ) -> bool:
        """Apply `direction`'s actions to `fields` of `root` (and `restore` after them), writing back
        what changes; True if anything did. A field holding JSON is scanned as its decoded strings;
        `outer` says where `root` itself was, asked only for the report of a finding. With `found`
        (`read_json` of the bytes `root` was parsed from), a plain string is looked up there, not
        scanned: one that is not in it has nothing to find."""
        changed = False
        scan_text = partial(self.find_all, direction=direction)
        for item in fields:
            if type(item) is tuple:  # a plain string: the common case, kept cheap
                container, key = item
                text = container[key]
                if found is None:
                    findings, quiet = scan_text(text)
                else:
                    findings, quiet = self._scored(self._scanners[direction], found.get(text, []), direction)
                if not findings and not quiet and restore is None:
                    continue
                slot = TextSlot(container, key)
            else:
                slot = item  # type: ignore[assignment]
                text = slot.text
                if slot.json:
                    try:
                        parsed = orjson.loads(text)
                    except orjson.JSONDecodeError:
                        parsed = None
                    if isinstance(parsed, dict | list):
                        here = partial(locate, root, slot, outer() if outer else "", self._label)
                        args = (direction, scan, workspace)
                        inner = self._scan_fields(parsed, all_strings(parsed), *args, restore, here)
                        if self._scan_keys(parsed, *args, outer() if outer else "") or inner:
                            slot.set(orjson.dumps(parsed).decode())
                            changed = True
                        continue
                findings, quiet = scan_text(text)
            if quiet:
                where = locate(root, slot, outer() if outer else "", self._label)
                for entity, _, _ in quiet:
                    scan.tally.add(direction, BELOW_THRESHOLD, entity, where)
            if findings:
                where = locate(root, slot, outer() if outer else "", self._label)
                out = self._apply(text, findings, direction, where, scan, workspace)
            else:
                out = text
            if restore is not None:
                out = restore.whole(out)
            if out != text:
                slot.set(out)
                changed = True
        return changed

    def _label(self, key: str) -> str:
        """An object key as a finding's location writes it: callers write keys, so a key that holds
        a value is written with the value replaced by its type (`metadata.[REDACTED:US_SSN].note`,
        never the value) before the location goes into an event, a log or a trace."""
        return self.scanner.redact(key)[0]

    def _scan_keys(self, root: Any, direction: Direction, scan: RequestScan, workspace: str, at: str = "") -> bool:
        """Apply `direction`'s actions to every object key inside `root`, renaming keys in place
        (order kept; a replaced key that meets another takes a ` (n)` suffix); True if any
        changed. A caller writes keys as it writes values (metadata, a tool's arguments or schema),
        so a value planted in a key is found like one in a value. Runs after the values' pass (it
        renames keys that pass's slots name). Findings are reported at the object that holds the
        key (`metadata{key}`), never with the key itself."""
        changed = False
        stack: list[tuple[Any, str]] = [(root, at)]
        while stack:
            value, where = stack.pop()
            if type(value) is list:
                stack += [(v, f"{where}[{i}]") for i, v in enumerate(value) if type(v) is dict or type(v) is list]
                continue
            if type(value) is not dict:
                continue
            renamed: dict[str, str] = {}
            for key, item in value.items():
                findings, quiet = self.find_all(key, direction) if type(key) is str and key else ([], [])
                for entity, _, _ in quiet:
                    scan.tally.add(direction, BELOW_THRESHOLD, entity, f"{where}{{key}}")
                if type(item) is dict or type(item) is list:
                    stack.append((item, step(where, key, self._label if findings else None)))
                if findings:
                    out = self._apply(key, findings, direction, f"{where}{{key}}", scan, workspace)
                    if out != key:
                        renamed[key] = out
            if renamed:
                items = list(value.items())
                value.clear()
                for key, item in items:
                    name = renamed.get(key, key)
                    n = 1
                    while name in value:
                        n += 1
                        name = f"{renamed.get(key, key)} ({n})"
                    value[name] = item
                changed = True
        return changed

    def _apply(
        self,
        text: str,
        findings: Iterable[Finding],
        direction: Direction,
        where: str,
        scan: RequestScan,
        workspace: str,
    ) -> str:
        actions = self.actions[direction]
        parts: list[str] = []
        last = 0
        for entity, start, end in findings:
            action = actions.get(entity, self.settings.default_action)
            scan.tally.add(direction, action, entity, where)
            if action == "monitor":
                continue
            parts.append(text[last:start])
            value = text[start:end]
            if action == "pseudonymize":
                parts.append(self._placeholder(entity, value, scan))
            else:  # redact; and block, which refuses the request anyway
                parts.append(self._replacement(entity, value, workspace))
            last = end
        if not parts:
            return text
        parts.append(text[last:])
        return "".join(parts)

    def _replacement(self, entity: str, value: str, workspace: str) -> str:
        if self.settings.style == "pseudonym":
            digest = hmac.new(self._secret + workspace.encode(), value.encode(), hashlib.sha256).hexdigest()
            return f"[{entity}:{digest[:6]}]"
        return PLACEHOLDER.format(entity=entity)

    @staticmethod
    def _placeholder(entity: str, value: str, scan: RequestScan) -> str:
        for placeholder, original in scan.originals.items():
            if original == value and placeholder.startswith(f"<{entity}_"):
                return placeholder
        n = 1 + sum(p.startswith(f"<{entity}_") for p in scan.originals)
        placeholder = f"<{entity}_{n}>"
        scan.originals[placeholder] = value
        return placeholder

    def scan_value(self, root: Any, direction: Direction, workspace: str) -> tuple[RequestScan, list[str]]:
        """Apply `direction`'s actions to every string and object key inside `root`, in place: for payloads with no
        fixed text fields, such as a tool call's arguments or a tool's result (text content,
        structured content, resource contents). A string that holds a JSON object or array is scanned
        as its decoded strings, as a format's JSON fields are.

        Returns:
            The scan (its tally gives the events) and the entity types found that `direction`
            blocks, sorted (empty: none); what a block means there is the caller's to say.

        Raises:
            PolicyFailed: scanning failed or took longer than `max_scan_ms`.
        """
        scan = RequestScan()
        started = time.perf_counter()
        slots = [
            TextSlot(s.container, s.key, json=True) if type(s) is TextSlot and s.text[:1] in ("{", "[") else s
            for s in all_strings(root)
        ]
        try:
            self._scan_fields(root, slots, direction, scan, workspace)
            self._scan_keys(root, direction, scan, workspace)
        except PolicyFailed:
            raise
        except Exception as exc:
            raise PolicyFailed(f"redaction could not run ({type(exc).__name__})") from None
        if time.perf_counter() - started > self.max_scan_s:
            raise PolicyFailed("redaction took longer than its time bound")
        blocked = sorted({e for (d, a, e) in scan.tally.counts if a == "block" and d == direction})
        return scan, blocked

    # ── responses ───────────────────────────────────────────────────────────

    def response_filter(self, scan: RequestScan) -> TextFilter | None:
        """The stream filter for a response: redaction, then the restore of pseudonyms."""
        filters: list[TextFilter] = []
        if self._stream_scanner is not None or self._monitor_scanner is not None:
            blocked = frozenset(e for e, a in self.actions["response"].items() if a == "block")
            filters.append(ScanFilter(self._stream_scanner, self._monitor_scanner, blocked, scan.tally))
        if scan.originals:
            filters.append(RestoreFilter(scan.originals))
        if not filters:
            return None
        return filters[0] if len(filters) == 1 else ChainFilter(filters[0], filters[1])

    def scan_response(
        self, fmt: WireFormat, body: Any, scan: RequestScan, workspace: str, raw: bytes | None = None
    ) -> bool:
        """Apply the response-direction actions to a complete response, in place; True if changed.
        With `raw`, the bytes `body` was parsed from, the bytes are read once (`read_json`): a
        response with nothing to find and no pseudonym to restore is known without the walk, and
        the walk looks each string up instead of scanning it again.

        Raises:
            PolicyBlocked: a `block` type was found in the response.
        """
        if not isinstance(body, dict):
            return False
        read = self.read_json(raw, "response")
        if read is not None and not read[0] and not scan.originals:
            return False
        restore = RestoreFilter(scan.originals) if scan.originals else None
        fields = text_fields(body, fmt.response_shape)
        changed = self._scan_fields(body, fields, "response", scan, workspace, restore, found=read[0] if read else None)
        if read is None or read[1]:
            changed = self._scan_keys(body, "response", scan, workspace) or changed
        blocked = sorted({e for (d, a, e) in scan.tally.counts if a == "block" and d == "response"})
        if blocked:
            raise PolicyBlocked(f"the response contained content this gateway blocks: {', '.join(blocked)}")
        return changed


class ScanFilter:
    """Redacts response text streams with the Rust stream scanner (one per text stream); `block`
    types end the stream; `monitor` types are scanned by a second scanner and only counted."""

    __slots__ = ("_blocked", "_monitor", "_monitors", "_redact", "_streams", "_tally")

    def __init__(self, redact: Scanner | None, monitor: Scanner | None, blocked: frozenset[str], tally: Tally) -> None:
        self._redact = redact
        self._monitor = monitor
        self._blocked = blocked
        self._tally = tally
        self._streams: dict[Hashable, StreamScanner] = {}
        self._monitors: dict[Hashable, StreamScanner] = {}

    def _quiet(self, stream: StreamScanner) -> None:
        for entity, _, _ in stream.quiet():
            self._tally.add("response", BELOW_THRESHOLD, entity, "stream")

    def _note(self, findings: list[Finding], action: str) -> None:
        for entity, _, _ in findings:
            if entity in self._blocked:
                self._tally.add("response", "block", entity, "stream")
                raise PolicyBlocked(f"the response contained content this gateway blocks: {entity}")
            self._tally.add("response", action, entity, "stream")

    def feed(self, key: Hashable, text: str) -> str:
        if self._monitor is not None:
            monitor = self._monitors.get(key) or self._monitors.setdefault(key, self._monitor.stream())
            self._note(monitor.feed(text)[1], "monitor")
            self._quiet(monitor)
        if self._redact is None:
            return text
        stream = self._streams.get(key) or self._streams.setdefault(key, self._redact.stream(PLACEHOLDER))
        out, findings = stream.feed(text)
        if findings:
            self._note(findings, "redact")
        self._quiet(stream)
        return out

    def flush(self, key: Hashable) -> str:
        monitor = self._monitors.pop(key, None)
        if monitor is not None:
            self._note(monitor.finish()[1], "monitor")
            self._quiet(monitor)
        stream = self._streams.pop(key, None)
        if stream is None:
            return ""
        out, findings = stream.finish()
        if findings:
            self._note(findings, "redact")
        self._quiet(stream)
        return out

    def text(self, text: str) -> str:
        # a whole text goes through a stream of its own, so its findings below a threshold are
        # counted as a stream's are (a stream over one text is the text's redaction)
        key = object()
        return self.feed(key, text) + self.flush(key)

    def whole(self, text: str) -> str:
        # Events that repeat a full text: rewritten the same way, not counted again.
        return self._redact.redact(text, PLACEHOLDER)[0] if self._redact is not None else text


class RestoreFilter:
    """Puts the original values back in place of `<ENTITY_n>` placeholders, holding back a
    possible placeholder cut by a chunk boundary (at most 50 characters)."""

    __slots__ = ("_originals", "_pending")

    def __init__(self, originals: dict[str, str]) -> None:
        self._originals = originals
        self._pending: dict[Hashable, str] = {}

    def _restore(self, text: str) -> str:
        return _RESTORE.sub(lambda m: self._originals.get(m.group(0), m.group(0)), text) if "<" in text else text

    def feed(self, key: Hashable, text: str) -> str:
        text = self._pending.pop(key, "") + text
        cut = text.rfind("<")
        if cut >= 0 and _RESTORE_PREFIX.match(text, cut):
            self._pending[key] = text[cut:]
            text = text[:cut]
        return self._restore(text)

    def flush(self, key: Hashable) -> str:
        return self._restore(self._pending.pop(key, ""))

    def text(self, text: str) -> str:
        return self._restore(text)

    def whole(self, text: str) -> str:
        return self._restore(text)


class ChainFilter:
    """`second` applied to the output of `first`."""

    __slots__ = ("_first", "_second")

    def __init__(self, first: TextFilter, second: TextFilter) -> None:
        self._first = first
        self._second = second

    def feed(self, key: Hashable, text: str) -> str:
        return self._second.feed(key, self._first.feed(key, text))

    def flush(self, key: Hashable) -> str:
        return self._second.feed(key, self._first.flush(key)) + self._second.flush(key)

    def text(self, text: str) -> str:
        return self._second.text(self._first.text(text))

    def whole(self, text: str) -> str:
        return self._second.whole(self._first.whole(text))
