"""The quick answer for bodies with nothing to redact (`Redactor.nothing_in`): it may only skip the
field-by-field walk when the walk would find nothing.

The property: for JSON bodies built from the keys the formats' shapes treat specially (text, ids,
tool arguments holding JSON, logprob runs, media URLs) and others, with values to find planted in a
few leaves and keys (as text, inside JSON in a string, in a data URL, as a long number, split
across logprob tokens) and every string spelled with random JSON escapes, whenever the walk finds something in a
request or a response of any format, `nothing_in` says no. An attacker who could make the quick
check say yes to a body the walk would redact would walk around redaction; this test would catch it.
"""

from __future__ import annotations

import copy
import itertools
import json
import random
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from sluicegate.config import RedactionRule, RedactionSettings
from sluicegate.errors import PolicyBlocked
from sluicegate.formats import ANTHROPIC_MESSAGES, OPENAI_CHAT, OPENAI_RESPONSES, WireFormat
from sluicegate.policy.redaction import QUICK_MAX_BYTES, Redactor, RequestScan

SENSITIVE = ("536-22-1234", "4111 1111 1111 1111", "maria.schmidt@example.com", "AKIAIOSFODNN7EXAMPLE")
BENIGN = ("alpha", "note 12", "Summarise Hamlet in two sentences.", "4111", "2026-01-02", "x" * 40, "")
# The keys the formats' shapes treat specially (text, skipped ids, JSON arguments, logprob runs,
# media URLs) and some they do not know, so that the walk takes every path it has.
KEYS = (
    "messages", "content", "text", "role", "type", "id", "model", "arguments", "function", "tool_calls",
    "input", "output", "logprobs", "token", "image_url", "url", "system", "name", "metadata", "choices",
    "message", "delta", "refusal", "summary", "thinking", "signature", "data", "source", "other",
)  # fmt: skip
PLANTED = st.sampled_from(
    [f"see {v} here" for v in SENSITIVE]
    + ["a pseudonym <US_SSN_1> to put back"]
    + [json.dumps({"value": f"see {v}", "n": [1]}) for v in SENSITIVE]
    + [f"data:text/plain;base64,{v}" for v in SENSITIVE]
)
# Mostly benign leaves, so that many bodies have nothing to find and some have a value somewhere.
LEAF = st.one_of(
    st.sampled_from(BENIGN),
    st.sampled_from(BENIGN),
    st.sampled_from(BENIGN),
    st.integers(0, 10**6),
    st.sampled_from([None, True, 1.5]),
    PLANTED,
    st.sampled_from([4111111111111111, 5360221234]),
)
# Keys are written by callers too: now and then one holds a value.
KEY = st.one_of(*[st.sampled_from(KEYS)] * 12, st.sampled_from([f"k {v}" for v in SENSITIVE]))
DOCS = st.dictionaries(
    KEY,
    st.recursive(
        LEAF,
        lambda kids: st.lists(kids, max_size=4) | st.dictionaries(KEY, kids, max_size=4),
        max_leaves=16,
    ),
    min_size=1,
    max_size=5,
)
FORMATS = {"chat": OPENAI_CHAT, "messages": ANTHROPIC_MESSAGES, "responses": OPENAI_RESPONSES}
EXAMPLES = settings(max_examples=300, deadline=None, database=None, phases=[Phase.explicit, Phase.generate])


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor(RedactionSettings(enabled=True, default_action="redact"))


def spelled(value: Any, rng: random.Random) -> str:
    """`value` as JSON with some characters of its strings written as `\\uXXXX` escapes (keys too)."""
    if isinstance(value, str):
        out = ['"']
        for c in value:
            if c in '"\\' or c < " " or rng.random() < 0.2:
                out += [f"\\u{unit:04x}" for unit in _utf16(c)]
            else:
                out.append(c)
        return "".join(out) + '"'
    if isinstance(value, dict):
        return "{" + ",".join(f"{spelled(k, rng)}:{spelled(v, rng)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(spelled(v, rng) for v in value) + "]"
    return json.dumps(value)


def _utf16(c: str) -> list[int]:
    data = c.encode("utf-16-be")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def split_runs(value: Any, rng: random.Random) -> None:
    """Cut the text of every logprob run into short tokens, so a value crosses token boundaries."""
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for v in items:
        if isinstance(v, list) and v and all(isinstance(e, dict) and isinstance(e.get("token"), str) for e in v):
            text = "".join(e["token"] for e in v) or "x"
            cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, 3))) if len(text) > 1 else []
            bounds = [0, *cuts, len(text)]
            v[:] = [{**v[0], "token": text[a:b]} for a, b in itertools.pairwise(bounds)]
        else:
            split_runs(v, rng)


def walk_finds(redactor: Redactor, fmt: WireFormat, body: dict[str, Any], direction: str) -> bool:
    """Whether the field-by-field walk finds anything in `body` (on a copy)."""
    return bool(scanned(redactor, fmt, body, None, direction)[1])


def each_generated(check: Callable[[bytes, dict[str, Any]], None]) -> None:
    """`check(raw, parsed)` on every generated body: its logprob runs cut into tokens, its strings
    and keys spelled with some escapes."""

    @EXAMPLES
    @given(DOCS, st.randoms(use_true_random=False))
    def run(body: dict[str, Any], rng: random.Random) -> None:
        split_runs(body, rng)
        raw = spelled(body, rng).encode()
        check(raw, orjson.loads(raw))

    run()


@pytest.mark.parametrize("direction", ["request", "response"])
@pytest.mark.parametrize("name", list(FORMATS))
def test_bodies_the_walk_would_change_are_never_skipped(name: str, direction: str, redactor: Redactor) -> None:
    fmt = FORMATS[name]
    seen = {"skipped": 0, "found": 0}

    def check(raw: bytes, parsed: dict[str, Any]) -> None:
        finds, quick = walk_finds(redactor, fmt, parsed, direction), redactor.nothing_in(raw, direction)
        assert not (finds and quick), f"the quick check skipped a body the walk changes: {raw!r}"
        seen["skipped"] += quick
        seen["found"] += finds

    each_generated(check)
    assert seen["skipped"] > 10 and seen["found"] > 10, seen  # both kinds of body were generated


CLEAN = {
    "model": "gpt-4o",
    "messages": [{"role": "system", "content": "Be concise."}, {"role": "user", "content": "Summarise Hamlet."}],
    "max_tokens": 128,
}


@pytest.mark.parametrize(
    "raw",
    [
        # one value, however it is spelled or wherever it is
        rb'{"messages":[{"role":"user","content":"mail maria\u0040example.com"}]}',
        rb'{"messages":[{"role":"user","content":"SSN 536\u002d22-1234"}]}',
        rb'{"messages":[{"role":"user","content":[{"type":"text","text":"card 4111111111111111"}]}]}',
        rb'{"metadata":{"card":4111111111111111}}',
        rb'{"tools":[{"function":{"arguments":"{\"to\":\"maria\\u0040example.com\"}"}}]}',
        # a run of logprob tokens: the walk joins them, the quick check cannot, so it says maybe
        rb'{"choices":[{"logprobs":{"content":[{"token":"536-22"},{"token":"-1234"}]}}]}',
    ],
)
def test_values_spelled_or_placed_anywhere_are_not_skipped(raw: bytes, redactor: Redactor) -> None:
    assert not redactor.nothing_in(raw, "request")
    assert not redactor.nothing_in(raw, "response")


def test_a_clean_body_is_skipped_and_the_request_is_unchanged(redactor: Redactor) -> None:
    raw = orjson.dumps(CLEAN)
    assert redactor.nothing_in(raw, "request")
    body = orjson.loads(raw)
    scan = redactor.scan_request(OPENAI_CHAT, body, "ws", raw)
    assert body == CLEAN and not scan.tally.counts


def test_a_body_with_a_value_still_gets_the_walk(redactor: Redactor) -> None:
    body = copy.deepcopy(CLEAN)
    body["messages"][1]["content"] = "Call me: 536-22-1234"
    raw = orjson.dumps(body)
    scan = redactor.scan_request(OPENAI_CHAT, body, "ws", raw)
    assert body["messages"][1]["content"] == "Call me: [REDACTED:US_SSN]"
    assert scan.tally.events()[0].entity == "US_SSN"


def test_large_bodies_go_to_the_walk(redactor: Redactor) -> None:
    body = copy.deepcopy(CLEAN)
    body["messages"][1]["content"] = "lorem ipsum " * (QUICK_MAX_BYTES // 12 + 1)
    assert not redactor.nothing_in(orjson.dumps(body), "request")


def test_pseudonyms_to_restore_keep_the_response_walk(redactor: Redactor) -> None:
    rule = RedactionRule(entities=["US_SSN"], action="pseudonymize", direction="request")
    pseudo = Redactor(RedactionSettings(enabled=True, rules=[rule]))
    request = {"messages": [{"role": "user", "content": "My number is 536-22-1234."}]}
    scan = pseudo.scan_request(OPENAI_CHAT, request, "ws", orjson.dumps(request))
    assert request["messages"][0]["content"] == "My number is <US_SSN_1>."
    body = {"choices": [{"message": {"role": "assistant", "content": "Your number is <US_SSN_1>."}}]}
    raw = orjson.dumps(body)
    assert pseudo.nothing_in(raw, "response")  # nothing to find, but a placeholder to restore
    assert pseudo.scan_response(OPENAI_CHAT, body, scan, "ws", raw)
    assert body["choices"][0]["message"]["content"] == "Your number is 536-22-1234."


# Redactors whose walk takes each path: every type acted on; a threshold some findings stay below
# (counted, not acted on); two kinds of action (the walk scans each kind on its own, the bytes'
# reading only says whether there is anything at all).
READERS = {
    "plain": RedactionSettings(enabled=True, default_action="redact"),
    "threshold": RedactionSettings(
        enabled=True, rules=[RedactionRule(entities=["US_SSN", "EMAIL"], action="redact", min_confidence=99)]
    ),
    "tiers": RedactionSettings(enabled=True, rules=[RedactionRule(entities=["EMAIL"], action="monitor")]),
}


def scanned(
    redactor: Redactor, fmt: WireFormat, body: dict[str, Any], raw: bytes | None, direction: str
) -> tuple[Any, Any]:
    """`body` after the request or response scan (with or without its bytes), and the tally or the
    refusal. A response is scanned after a request that left a pseudonym to put back."""
    body = copy.deepcopy(body)
    try:
        if direction == "request":
            scan = redactor.scan_request(fmt, body, "ws", raw)
        else:
            scan = RequestScan(originals={"<US_SSN_1>": "536-22-1234"} if "<US_SSN_1>" in str(body) else {})
            redactor.scan_response(fmt, body, scan, "ws", raw)
    except PolicyBlocked as err:
        return body, str(err)
    return body, scan.tally.counts


@pytest.mark.parametrize("direction", ["request", "response"])
@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("name", list(FORMATS))
def test_reading_the_bytes_first_changes_nothing_the_walk_does(name: str, reader: str, direction: str) -> None:
    """With the bytes, the walk looks each string up in what the bytes' reading found instead of
    scanning it, and skips the keys' pass when no key held anything: the body sent on and every
    event (types, actions, counts, locations) must be what the walk alone gives, a pseudonym put
    back in a response included."""
    fmt, redactor = FORMATS[name], Redactor(READERS[reader])
    seen = {"changed": 0, "quiet": 0}

    def check(raw: bytes, parsed: dict[str, Any]) -> None:
        alone = scanned(redactor, fmt, parsed, None, direction)
        assert scanned(redactor, fmt, parsed, raw, direction) == alone, raw
        seen["changed"] += alone[0] != parsed
        seen["quiet"] += isinstance(alone[1], dict) and any(a == "below_threshold" for _, a, _ in alone[1])

    each_generated(check)
    assert seen["changed"] > 10, seen  # bodies with values were generated
    assert (seen["quiet"] > 10) == (reader == "threshold"), seen
