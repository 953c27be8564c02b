"""Confidence and thresholds through Python: `Scanner(min_confidence=...)`, `scan_scored`,
`StreamScanner.quiet`, and the property that a stream splits findings into acted-on and
below-threshold exactly as the whole text does, for any chunking."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate._core import ScanError, Scanner, builtin_entities

THRESHOLDS = {"PERSON": 80, "ADDRESS": 85, "EMAIL": 91, "PRIVATE_KEY": 100, "NL_BSN": 81, "US_SSN": 80}
SCANNER = Scanner(builtin_entities(), min_confidence=THRESHOLDS)


def test_defaults_quiet_only_weak_person_evidence() -> None:
    s = Scanner(["PERSON", "ADDRESS", "EMAIL"])
    assert s.min_confidence == {"EMAIL": 0, "PERSON": 50, "ADDRESS": 0}
    assert s.scan("Dear Zorblat, thanks") == []
    assert s.scan_scored("Dear Zorblat, thanks") == [("PERSON", 5, 12, 45)]
    assert s.redact("Dear Zorblat, mail a@b.co") == ("Dear Zorblat, mail [REDACTED:EMAIL]", [("EMAIL", 19, 25)])


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("Frau Müller rief an.", [("PERSON", 90)]),  # a title
        ("Customer Maria Schmidt called.", [("PERSON", 85)]),  # a cue, then a lexicon name
        ("I met Maria Schmidt yesterday.", [("PERSON", 85)]),  # given name and census surname
        ("Dear Zorblat,", [("PERSON", 45)]),  # one unknown word after a greeting
        ("Dear Customer,", []),  # a role after a greeting: no name
        ("We met at Queen Elizabeth Olympic Park.", [("PERSON", 45)]),  # inside a run of capitals
        ("Feliz Año Nuevo a Todos Nuestros Clientes", []),  # a greeting word starts no name
        ("Anna Zorblat Annual Report Summary For The Board", [("PERSON", 25)]),  # a title-case line
        ("Maria Rossi Annual Report Summary For The Board", [("PERSON", 85)]),  # a known name keeps its grade
        ("La Basilica di Santa Maria Novella apre", [("PERSON", 5)]),  # after a place prefix
        ("Card 4111 1111 1111 1111.", [("CREDIT_CARD", 95)]),
        ("ssn 536-22-1234", [("US_SSN", 90)]),
        ("SSN: 536221234", [("US_SSN", 70)]),  # nine digits that only the word makes an SSN
        ("Hauptstraße 12", [("ADDRESS", 70)]),
        ("Hauptstraße 12, 10115 Berlin", [("ADDRESS", 90)]),
        ("1 Main Street Apt. 5", [("ADDRESS", 80)]),
    ],
)
def test_confidence_table(text: str, want: list[tuple[str, int]]) -> None:
    s = Scanner(["PERSON", "ADDRESS", "CREDIT_CARD", "US_SSN"])
    assert [(e, c) for e, _, _, c in s.scan_scored(text)] == want


def test_thresholds_are_checked_at_build() -> None:
    with pytest.raises(ScanError, match=r"min_confidence\[0\]: PERSON"):
        Scanner(["EMAIL"], min_confidence={"PERSON": 10})
    with pytest.raises(OverflowError):
        Scanner(["EMAIL"], min_confidence={"EMAIL": 300})
    with pytest.raises(ScanError, match="over 100"):
        Scanner(["EMAIL"], min_confidence={"EMAIL": 101})
    assert Scanner(["EMAIL"], [("EMP", "EMP-[0-9]{4}")], min_confidence={"EMP": 100}).min_confidence["EMP"] == 100


def test_stream_reports_quiet_findings_and_emits_their_text() -> None:
    text = "Dear Zorblat, Frau Müller wrote from jane@example.com about 1237 010180."
    stream = SCANNER.stream("[{entity}]")
    out, found, quiet = "", [], []
    for i in range(0, len(text), 3):
        piece, got = stream.feed(text[i : i + 3])
        out, found, quiet = out + piece, found + got, quiet + stream.quiet()
    piece, got = stream.finish()
    out, found, quiet = out + piece, found + got, quiet + stream.quiet()
    assert out == "Dear Zorblat, Frau [PERSON] wrote from jane@example.com about 1237 010180."
    assert [e for e, _, _ in found] == ["PERSON"]
    assert [e for e, _, _ in quiet] == ["PERSON", "EMAIL"]
    assert stream.quiet() == []


FRAGMENTS = st.sampled_from(
    [
        "Maria Schmidt",
        "Dear ",
        "Customer ",
        "Zorblat ",
        "Frau ",
        "Feliz ",
        "Santa ",
        "Annual Report For The Board",
        "ÉTÉ Été ",
        "Queen Elizabeth Olympic Park",
        "Hauptstraße 12",
        ", 10115 Berlin",
        "1 Main Street Apt. 5",
        "jane@example.com",
        "4111 1111 1111 1111",
        "BSN 111222333",
        "SSN 536221234",
        "536-22-1234",
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----",
        "-----BEGIN PRIVATE KEY-----\n" + "A" * 9000,
        ". ",
        "\n",
        " ",
    ]
)
TEXTS = st.lists(st.one_of(FRAGMENTS, st.text(max_size=6)), max_size=10).map("".join)


@settings(max_examples=150, deadline=None)
@given(text=TEXTS, cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_stream_splits_findings_like_the_whole_text(text: str, cuts: list[int]) -> None:
    points = sorted(c % (len(text) + 1) for c in cuts)
    chunks = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    stream = SCANNER.stream("[{entity}]")
    out, found, quiet = "", [], []
    for chunk in chunks:
        piece, got = stream.feed(chunk)
        out, found, quiet = out + piece, found + got, quiet + stream.quiet()
    piece, got = stream.finish()
    out, found, quiet = out + piece, found + got, quiet + stream.quiet()
    floor = SCANNER.min_confidence
    scored = SCANNER.scan_scored(text)
    assert (out, found) == SCANNER.redact(text, "[{entity}]")
    assert found == [(e, s, t) for e, s, t, c in scored if c >= floor[e]]
    assert quiet == [(e, s, t) for e, s, t, c in scored if c < floor[e]]
