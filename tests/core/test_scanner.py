"""The scanner through Python: detector tables, build errors, offsets, redaction and streaming.

The streaming property (for every way of cutting a text into chunks, the concatenated output
equals `redact(text)[0]` and the findings are equal) is checked with hypothesis on random cuts,
exhaustively on every cut point of fixed samples, and with one-character chunks.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sluicegate._core import ScanError, Scanner, StreamScanner, builtin_entities, default_entities

ALL = Scanner()


@dataclass(frozen=True)
class Err:
    """Expected `ScanError` whose message contains `match`."""

    match: str


def fullwidth(s: str) -> str:
    """`s` with its ASCII printable characters in their full-width forms."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in s)


AKID = "AKIAQ3EGUTDY5WXRMZ7N"
AWS_SECRET = "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"
GHP = "ghp_R8fZp2Lq9VxW3mKt7YcN1bHd6JsQ0aUe4Gio"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
PEM = (
    "-----BEGIN EC PRIVATE KEY-----\n"
    "MHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/Puo\n"
    "-----END EC PRIVATE KEY-----"
)

SCAN_CASES: list[tuple[str, list[tuple[str, str]]]] = [
    ("no pii here, just words.", []),
    ("mail alice@example.com now", [("EMAIL", "alice@example.com")]),
    ("SSN 536-22-1234.", [("US_SSN", "536-22-1234")]),
    ("SSN 000-22-1234 or 666-22-1234 or 912-22-1234", []),
    ("card 4111 1111 1111 1111 exp", [("CREDIT_CARD", "4111 1111 1111 1111")]),
    ("ref 4111 1111 1111 1112", []),
    ("IBAN DE89 3704 0044 0532 0130 00", [("IBAN", "DE89 3704 0044 0532 0130 00")]),
    ("ip 10.0.0.1 and 2001:db8::1", [("IP_ADDRESS", "10.0.0.1"), ("IP_ADDRESS", "2001:db8::1")]),
    ("version 10.0.19045.3693 and OID 1.3.6.1.4.1", []),
    ("call (415) 555-0132 or +44 20 7946 0958", [("PHONE", "(415) 555-0132"), ("PHONE", "+44 20 7946 0958")]),
    ("born 05.10.1986, order #4155550132", []),
    (f"AWS_ACCESS_KEY_ID={AKID}", [("AWS_ACCESS_KEY_ID", AKID)]),
    (f"aws_secret_access_key = {AWS_SECRET}", [("AWS_SECRET_ACCESS_KEY", AWS_SECRET)]),
    (f"token {GHP}", [("GITHUB_TOKEN", GHP)]),
    ("ghp_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", []),
    (f"Bearer {JWT}", [("JWT", JWT)]),
    (f"key:\n{PEM}\n", [("PRIVATE_KEY", PEM)]),
    ("git@github.com:org/repo.git logo@2x.png", []),
    ("commit e83c5163316f89bfbde7d9ab23ca2e25604af290", []),
    ("メールはa@b.comです", [("EMAIL", "a@b.com")]),
    ("a\u200bl\u200bi\u200bc\u200be@example.com", [("EMAIL", "a\u200bl\u200bi\u200bc\u200be@example.com")]),
    (fullwidth("SSN 536-22-1234"), [("US_SSN", fullwidth("536-22-1234"))]),
    # the separators people and tools write SSNs and cards with (issue 18)
    ("SSN 536\u201322\u20131234.", [("US_SSN", "536\u201322\u20131234")]),
    ("SSN 536\u201422\u20141234.", [("US_SSN", "536\u201422\u20141234")]),
    (
        "SSN 536\u221222\u22121234 or 536\u201122\u20111234",
        [("US_SSN", "536\u221222\u22121234"), ("US_SSN", "536\u201122\u20111234")],
    ),
    (
        "SSN 536\xa022\xa01234 or 536\u202f22\u202f1234",
        [("US_SSN", "536\xa022\xa01234"), ("US_SSN", "536\u202f22\u202f1234")],
    ),
    ("SSN 536.22.1234 or 536 - 22 - 1234", [("US_SSN", "536.22.1234"), ("US_SSN", "536 - 22 - 1234")]),
    ("SSN 5 3 6 - 2 2 - 1 2 3 4!", [("US_SSN", "5 3 6 - 2 2 - 1 2 3 4")]),
    ("SSN 5 3 6 \u2013 2 2 \u2013 1 2 3 4", [("US_SSN", "5 3 6 \u2013 2 2 \u2013 1 2 3 4")]),
    ("card 4111.1111.1111.1111 exp", [("CREDIT_CARD", "4111.1111.1111.1111")]),
    ("card 4111\u20131111\u20131111\u20131111", [("CREDIT_CARD", "4111\u20131111\u20131111\u20131111")]),
    ("card 5555\u20095555\u20095555\u20094444", [("CREDIT_CARD", "5555\u20095555\u20095555\u20094444")]),
    ("card 4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1", [("CREDIT_CARD", "4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1")]),
    ("card 4 1 1 1 - 1 1 1 1 - 1 1 1 1 - 1 1 1 1", [("CREDIT_CARD", "4 1 1 1 - 1 1 1 1 - 1 1 1 1 - 1 1 1 1")]),
    ("Tel. 030/12345678 or 415\u2013555\u20130132", [("PHONE", "030/12345678"), ("PHONE", "415\u2013555\u20130132")]),
    ("IBAN DE89-3704-0044-0532-0130-00", [("IBAN", "DE89-3704-0044-0532-0130-00")]),
    ("IBAN DE89\xa03704\xa00044\xa00532\xa00130\xa000", [("IBAN", "DE89\xa03704\xa00044\xa00532\xa00130\xa000")]),
    # not SSNs or cards: mixed separators, a specimen, versions, IPs, dates, OIDs
    ("536-22.1234 536.22-1234 4111.1111-1111.1111 4111.1111.1111.1112", []),
    ("1 2 3 - 4 5 - 6 7 8 9 and 123.45.6789", []),
    ("Chrome 120.0.6099.109, node 18.17.1, 536.22.1234.5, v536.22.1234", []),
    ("OID 1.2.840.113549.1.1.11, 2.16.840.1.113883.3.72.5.9.1; 2024.01.15, 15.03.2024, 12/25/2024", []),
    ("hosts 10.123.45.67 and 172.16.254.1", [("IP_ADDRESS", "10.123.45.67"), ("IP_ADDRESS", "172.16.254.1")]),
    ("mail bob@example.com\u2014thanks", [("EMAIL", "bob@example.com")]),
]


@pytest.mark.parametrize(("text", "want"), SCAN_CASES)
def test_scan_table(text: str, want: list[tuple[str, str]]) -> None:
    assert [(e, text[s:t]) for e, s, t in ALL.scan(text)] == want


BUILD_CASES: list[tuple[dict[str, object], list[str] | Err]] = [
    ({}, list(default_entities())),
    ({"entities": ["ADDRESS", "PERSON"]}, ["PERSON", "ADDRESS"]),
    ({"entities": ["US_SSN", "EMAIL"]}, ["EMAIL", "US_SSN"]),
    ({"entities": []}, []),
    ({"entities": ["EMAIL"], "custom_patterns": [("EMPLOYEE_ID", r"\bEMP-\d{6}\b")]}, ["EMAIL", "EMPLOYEE_ID"]),
    ({"entities": [], "keywords": [("PROJECT", ["bluebird"])]}, ["PROJECT"]),
    ({"entities": ["EMAL"]}, Err("unknown entity EMAL")),
    ({"entities": ["not a name"]}, Err("not an entity name")),
    ({"custom_patterns": [("X", "(")]}, Err("invalid regex")),
    ({"custom_patterns": [("X", "a*")]}, Err("empty string")),
    ({"custom_patterns": [("X", r"\d+")]}, Err("bounded match length")),
    ({"custom_patterns": [("lower", "x")]}, Err("entity name")),
    ({"keywords": [("K", [])]}, Err("empty")),
    ({"keywords": [("K", [""])]}, Err("keyword")),
]


@pytest.mark.parametrize(("kwargs", "want"), BUILD_CASES)
def test_build(kwargs: dict[str, object], want: list[str] | Err) -> None:
    if isinstance(want, Err):
        with pytest.raises(ScanError, match=want.match):
            Scanner(**kwargs)  # type: ignore[arg-type]
    else:
        assert Scanner(**kwargs).entities == want  # type: ignore[arg-type]


def test_error_is_a_value_error_and_carries_no_pattern() -> None:
    assert issubclass(ScanError, ValueError)
    with pytest.raises(ValueError, match="custom_patterns") as exc:
        Scanner(custom_patterns=[("X", "secret-078-05-1120(")])
    assert "078-05-1120" not in str(exc.value)


def test_builtin_entities() -> None:
    names = builtin_entities()
    assert names[:3] == ["EMAIL", "PHONE", "US_SSN"] and len(names) == 30 and "PRIVATE_KEY" in names
    assert names[19:] == [
        "DE_TAX_ID",
        "FR_NIR",
        "ES_DNI",
        "ES_NIE",
        "IT_FISCAL_CODE",
        "NL_BSN",
        "PL_PESEL",
        "SE_PERSONNUMMER",
        "BE_NATIONAL_NUMBER",
        "FI_HETU",
        "AT_SVNR",
    ]
    # the name, address and date-of-birth heuristics are opt-in
    assert default_entities() == [n for n in names if n not in ("PERSON", "ADDRESS", "DATE_OF_BIRTH")]


def test_custom_rules() -> None:
    s = Scanner(entities=[], custom_patterns=[("EMPLOYEE_ID", r"\bEMP-\d{6}\b")], keywords=[("PROJECT", ["Bluebird"])])
    text = "EMP-123456 on BLUEBIRD, not bluebirds or EMP-12"
    assert [(e, text[a:b]) for e, a, b in s.scan(text)] == [("EMPLOYEE_ID", "EMP-123456"), ("PROJECT", "BLUEBIRD")]


def test_offsets_are_characters() -> None:
    text = "😀é ñ a@b.co \U0001d7cf 536-22-1234"
    found = ALL.scan(text)
    assert [(e, text[s:t]) for e, s, t in found] == [("EMAIL", "a@b.co"), ("US_SSN", "536-22-1234")]
    assert found[0][1] == 5


def test_redact() -> None:
    text = "reach 😀 a@b.co or 536-22-1234"
    out, found = ALL.redact(text)
    assert out == "reach 😀 [REDACTED:EMAIL] or [REDACTED:US_SSN]"
    assert found == ALL.scan(text)
    assert ALL.redact(text, "<{entity}|{entity}>")[0] == "reach 😀 <EMAIL|EMAIL> or <US_SSN|US_SSN>"
    clean = "nothing " * 3
    assert ALL.redact(clean)[0] is clean


def test_large_text_is_scanned_detached() -> None:
    text = ("lorem ipsum " * 1000) + "a@b.co"
    results: list[list[tuple[str, int, int]]] = []
    threads = [threading.Thread(target=lambda: results.append(ALL.scan(text))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [[("EMAIL", len(text) - 6, len(text))]] * 4


def run_stream(scanner: Scanner, chunks: list[str]) -> tuple[str, list[tuple[str, int, int]]]:
    st = scanner.stream()
    out: list[str] = []
    found: list[tuple[str, int, int]] = []
    for c in chunks:
        text, f = st.feed(c)
        out.append(text)
        found += f
    text, f = st.finish()
    return "".join(out) + text, found + f


STREAM_SAMPLES = [
    "Hi, I'm Ana (ana.lopez@example.org, +34 612 34 56 78). SSN 536-22-1234, card 4111 1111 1111 1111.",
    f"export AWS_ACCESS_KEY_ID={AKID}\nexport AWS_SECRET_ACCESS_KEY={AWS_SECRET}\n",
    f"{PEM}{PEM} and {JWT}.",
    "メールはa@b.comです、電話 03-1234-5678 😀 " + fullwidth("536-22-1234"),
    "SSN 536\u201322\u20131234, 5 3 6 - 2 2 - 1 2 3 4; card 4111.1111.1111.1111 or "
    + "4\xa01\xa01\xa01 1 1 1 1 1 1 1 1 1 1 1 1.",
]


@pytest.mark.parametrize("text", STREAM_SAMPLES)
def test_stream_every_cut_and_one_char_chunks(text: str) -> None:
    want = ALL.redact(text)
    assert run_stream(ALL, list(text)) == want
    for cut in range(len(text) + 1):
        assert run_stream(ALL, [text[:cut], text[cut:]]) == want, cut


FRAGMENTS = st.sampled_from(
    [
        "alice@example.com",
        "536-22-1234",
        "4111 1111 1111 1111",
        "+44 20 7946 0958",
        "(415) 555-0132",
        "10.0.0.1",
        "fe80::1",
        "DE89370400440532013000",
        AKID,
        f"aws secret {AWS_SECRET}",
        GHP,
        JWT,
        PEM,
        PEM[:40],
        "536\u201322\u20131234",
        "536.22.1234",
        "5 3 6 - 2 2 - 1 2 3 4",
        "4111.1111.1111.1111",
        "4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",
        "030/12345678",
        "10.0.19045.3693",
        "\u2013",
        "\u2014",
        "\xa0",
        " - ",
        "\u200b",
        "\uff14",
        "\uff20",
        "😀",
        " ",
        "\n",
        ".",
        "-",
        "@",
        ":",
        "+",
        "sk-",
        "eyJ",
        "-----BEGIN",
        # encodings and their cut-off beginnings (issue 16)
        "maria&#64;example.com",
        "maria%40example.com",
        "maria\\u0040example.com",
        "&commat;",
        "&#x40;",
        "&#",
        "&am",
        "%4",
        "50% ",
        "\\u00",
        "\\ud83d\\ude00",
        "\\/",
        "\\",
        "\r\n  ",
        "Please charge the card on file, the number is ",
        "4111 1111\n1111 1111",
        "DE89 3704 0044\n0532 0130 00",
    ]
)
TEXTS = st.lists(st.one_of(FRAGMENTS, st.text(max_size=8)), max_size=10).map("".join)


@settings(max_examples=150, deadline=None)
@given(text=TEXTS, cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_stream_equals_whole(text: str, cuts: list[int]) -> None:
    points = sorted(c % (len(text) + 1) for c in cuts)
    chunks = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    assert run_stream(ALL, chunks) == ALL.redact(text)


# --- SSNs and cards in the forms people and tools write them, both ways --------------------------

# (gap between groups, gap between spaced digits or None for digit runs)
FORMS: list[tuple[str, str | None]] = [
    ("-", None),
    (" ", None),
    (".", None),
    (" - ", None),
    ("\u2013", None),
    ("\u2014", None),
    ("\u2012", None),
    ("\u2212", None),
    ("\u2011", None),
    ("\xa0", None),
    ("\u202f", None),
    ("\u2009", None),
    (" \u2013 ", None),
    ("-", " "),
    (" - ", " "),
    ("  ", " "),
    (" \u2013 ", " "),
    (" \u2014 ", " "),
    ("\u2013", "\xa0"),
]
BEFORE = ["", "SSN ", "card: ", "(", "x ", "値は", "\u2014", "- "]
AFTER = ["", ".", ", ok", ")", "\n", "です", "\u2014next", " - x"]


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def luhn_complete(payload: str) -> str:
    return next(payload + d for d in "0123456789" if luhn_ok(payload + d))


@st.composite
def planted_number(draw: st.DrawFn) -> tuple[str, str, int, int]:
    """A valid SSN or card in one of FORMS, between context: (text, entity, start, end)."""
    if draw(st.booleans()):
        area = draw(st.integers(1, 899).filter(lambda a: a != 666))
        group, serial = draw(st.integers(1, 99)), draw(st.integers(1, 9999))
        groups, entity = [f"{area:03}", f"{group:02}", f"{serial:04}"], "US_SSN"
        # one repeated digit and the published specimens are not SSNs
        assume(len(set("".join(groups))) > 1 and "".join(groups) not in {"078051120", "219099999", "123456789"})
    else:
        body = "".join(str(d) for d in draw(st.lists(st.integers(0, 9), min_size=14, max_size=14)))
        number = luhn_complete((draw(st.sampled_from(["4", "51", "52", "55"])) + body)[:15])
        groups, entity = [number[i : i + 4] for i in range(0, 16, 4)], "CREDIT_CARD"
    gap, spaced = draw(st.sampled_from(FORMS))
    value = gap.join(spaced.join(g) if spaced else g for g in groups)
    before, after = draw(st.sampled_from(BEFORE)), draw(st.sampled_from(AFTER))
    return before + value + after, entity, len(before), len(before) + len(value)


@st.composite
def decoy(draw: st.DrawFn) -> str:
    """An IPv4 address, a date, a version or an OID, which is never an SSN or a card."""
    kind = draw(st.sampled_from(["ip", "date", "version", "oid"]))
    n = draw(st.lists(st.integers(0, 99999), min_size=12, max_size=12))
    if kind == "ip":
        return ".".join(str(x % 256) for x in n[:4])
    if kind == "date":
        d, m, y = n[0] % 28 + 1, n[1] % 12 + 1, 1900 + n[2] % 200
        fmt = draw(
            st.sampled_from(["{d:02}.{m:02}.{y}", "{y}-{m:02}-{d:02}", "{m:02}/{d:02}/{y}", "{y}.{m:02}.{d:02}"])
        )
        return fmt.format(d=d, m=m, y=y)
    if kind == "version":
        parts = [n[0] % 1000, n[1] % 100, n[2], n[3] % 10000][: draw(st.integers(2, 4))]
        if len(parts) == 3:
            parts[0] %= 100  # a three-part ddd.dd.dddd is an SSN's shape: semantic versions have smaller majors
        return ".".join(map(str, parts))
    return ".".join(map(str, [n[0] % 3, *n[1 : 1 + draw(st.integers(3, 11))]]))


@settings(max_examples=200, deadline=None)
@given(planted=planted_number(), cuts=st.lists(st.integers(min_value=0), max_size=6))
def test_number_forms_are_found_whole_and_streamed(planted: tuple[str, str, int, int], cuts: list[int]) -> None:
    text, entity, start, end = planted
    assert ALL.scan(text) == [(entity, start, end)], text
    points = sorted(c % (len(text) + 1) for c in cuts)
    chunks = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    assert run_stream(ALL, chunks) == ALL.redact(text)
    assert run_stream(ALL, list(text)) == ALL.redact(text)


@settings(max_examples=200, deadline=None)
@given(
    value=decoy(),
    before=st.sampled_from(BEFORE),
    after=st.sampled_from(AFTER),
    cuts=st.lists(st.integers(min_value=0), max_size=6),
)
def test_decoys_are_never_numbers_whole_or_streamed(value: str, before: str, after: str, cuts: list[int]) -> None:
    text = before + value + after
    assert not [f for f in ALL.scan(text) if f[0] in ("US_SSN", "CREDIT_CARD")], text
    points = sorted(c % (len(text) + 1) for c in cuts)
    chunks = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    assert run_stream(ALL, chunks) == ALL.redact(text)


def encode_char(c: str, how: int) -> str:
    """One character of a value as an agent's tools write it: raw, HTML reference, percent, JSON
    escape or full-width."""
    if how == 1:
        return f"&#{ord(c)};"
    if how == 2:
        return f"&#x{ord(c):x};"
    if how == 3 and c.isascii() and c.isprintable():
        return f"%{ord(c):02X}"
    if how == 4:
        return f"\\u{ord(c):04x}"
    if how == 5 and "!" <= c <= "~":
        return chr(ord(c) + 0xFEE0)
    return c


@settings(max_examples=200, deadline=None)
@given(
    value=st.sampled_from(
        [
            ("EMAIL", "maria.lopez@example.com"),
            ("CREDIT_CARD", "4111 1111 1111 1111"),
            ("CREDIT_CARD", "3782 822463 10005"),
            ("IBAN", "DE89 3704 0044 0532 0130 00"),
            ("US_SSN", "536-22-1234"),
        ]
    ),
    hows=st.lists(st.integers(0, 5), min_size=30, max_size=30),
    invisible=st.lists(st.sampled_from(["", "", "", "\u200b", "&#8203;", "\\u2060"]), min_size=30, max_size=30),
    before=st.sampled_from(["", "value: ", '"']),
    after=st.sampled_from(["", ".", '" ok', " thanks"]),
    cuts=st.lists(st.integers(min_value=0), max_size=6),
)
def test_encoded_values_are_found_whole_and_streamed(
    value: tuple[str, str], hows: list[int], invisible: list[str], before: str, after: str, cuts: list[int]
) -> None:
    entity, raw = value
    parts = []
    for k, c in enumerate(raw):
        if c == " ":
            parts.append("\xa0" if hows[k] % 2 else " ")
        else:
            parts.append((invisible[k] if k else "") + encode_char(c, hows[k]))
    encoded = "".join(parts)
    text = before + encoded + after
    assert ALL.scan(text) == [(entity, len(before), len(before) + len(encoded))], text
    points = sorted(c % (len(text) + 1) for c in cuts)
    chunks = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    assert run_stream(ALL, chunks) == ALL.redact(text)
    assert run_stream(ALL, list(text)) == ALL.redact(text)


def test_clean_stream_delay_is_bounded() -> None:
    text = "The quick brown fox jumps over the lazy dog; nothing to see. " * 40
    st_ = ALL.stream()
    emitted = 0
    for fed, ch in enumerate(text, start=1):
        out, found = st_.feed(ch)
        emitted += len(out)
        assert not found
        assert fed - emitted <= ALL.max_holdback
        assert fed - emitted <= 16  # only the word being written is held
    out, _ = st_.finish()
    assert emitted + len(out) == len(text)


@pytest.mark.parametrize(
    "text",
    [
        "-----BEGIN RSA PRIVATE KEY-----\n" + "QUJDRA==\n" * 3000,  # the footer never comes
        "eyJhbGciOiJIUzI1NiJ9.eyJ" + "a" * 20000,
        "ghp_" + "\u200b" * 5000 + "x" * 10,
    ],
)
def test_holdback_is_bounded_and_long_secrets_never_leak(text: str) -> None:
    st_ = ALL.stream()
    fed = emitted = 0
    out_all = []
    for i in range(0, len(text), 7):
        chunk = text[i : i + 7]
        out, _ = st_.feed(chunk)
        out_all.append(out)
        fed += len(chunk)
        emitted += len(out)
        if "[REDACTED" not in "".join(out_all):
            # until the placeholder goes out, the whole input is held: never more than the bound
            # (plus the chunk that crossed it); after it, the block's run is swallowed, not held
            assert fed - emitted <= ALL.max_holdback + len(chunk)
    out, _ = st_.finish()
    whole = "".join(out_all) + out
    assert whole == ALL.redact(text)[0]
    assert "QUJD" not in whole and "aaaa" not in whole


def test_stream_after_finish() -> None:
    st_ = ALL.stream("<{entity}>")
    assert isinstance(st_, StreamScanner)
    assert st_.feed("a@b.co ") == ("<EMAIL> ", [("EMAIL", 0, 6)])
    assert st_.finish() == ("", [])
    assert st_.finish() == ("", [])
    with pytest.raises(ScanError, match="finished"):
        st_.feed("x")
