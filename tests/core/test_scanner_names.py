"""Recall and precision of PERSON, ADDRESS and DATE_OF_BIRTH per language, and false alarms on look-alike text.

The labelled sets (tests/fixtures/names/cases.jsonl, dob_cases.jsonl) are written by Faker from its own name and
street lists (`generate.py` there); the scanner's lexicon comes from other sources
(rust/data/README.md), so this measures generalisation, not list overlap. A label counts as found
when a finding of its type covers at least half of it; a finding is a false positive when it
covers no label of its type. `python -m tests.core.test_scanner_names` prints the tables for
BENCHMARKS.md.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sluicegate._core import Scanner, StreamScanner

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "names"
TYPES = ("PERSON", "ADDRESS", "DATE_OF_BIRTH")
LANGS = ("en", "de", "fr", "es", "it", "nl", "pt", "pl", "sv")
# (recall, precision) over all languages: measured values minus a margin, so a loss of accuracy fails
FLOOR = {"PERSON": (0.9, 0.9), "ADDRESS": (0.85, 0.9), "DATE_OF_BIRTH": (0.9, 0.9)}


def cases() -> list[dict[str, object]]:
    out = []
    for name in ("cases.jsonl", "dob_cases.jsonl"):
        with (FIXTURES / name).open(encoding="utf-8") as f:
            out += [json.loads(line) for line in f]
    return out


def context_cases() -> list[dict[str, object]]:
    """Persons whose name is followed by a word a shop, a firm or a product could follow
    (`Emily Clark shops`, `Carlos Ruiz marca`, `Laura Vogel GmbH, Laura Vogel`): kept apart from
    `cases.jsonl`, written by hand for the rules that read the word after a name."""
    with (FIXTURES / "context_cases.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def context_found(scanner: Scanner) -> tuple[int, int]:
    """How many labels of `context_cases.jsonl` the scanner finds at its own thresholds, of how many."""
    found = n = 0
    for case in context_cases():
        text = str(case["text"])
        mine = [(s, e) for t, s, e in scanner.scan(text) if t == "PERSON"]
        for _, s, e in case["spans"]:  # type: ignore[union-attr]
            n += 1
            found += 2 * sum(overlap((s, e), m) for m in mine) >= e - s
    return found, n


def lookalikes(name: str = "lookalikes.txt") -> list[str]:
    """Hand-written sentences without a name or address: `lookalikes.txt` was used while tuning
    the rules, `lookalikes_heldout.txt` was written afterwards and never used to tune them."""
    lines = (FIXTURES / name).read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line and not line.startswith("#")]


def overlap(a: tuple[int, int], b: tuple[int, int]) -> int:
    return max(0, min(a[1], b[1]) - max(a[0], b[0]))


def at_threshold(scanner: Scanner, text: str, threshold: int | None) -> list[tuple[str, int, int]]:
    """What `scanner` acts on in `text`: at its own thresholds (None), or with every type's
    threshold set to `threshold` (the spans are the same; see `Scanner.scan_scored`)."""
    if threshold is None:
        return scanner.scan(text)
    return [(e, s, t) for e, s, t, c in scanner.scan_scored(text) if c >= threshold]


Findings = list[tuple[str, int, int]]


def score(
    scan: Callable[[str], Findings], rewrite: Callable[[str], tuple[str, list[int]]] | None = None
) -> dict[tuple[str, str], Counter[str]]:
    """Counts per (type, language) of any scan function's (type, start, end) findings on the
    labelled set: tp, fn (labels), fp (findings), exact (label = finding). `rewrite` gives each
    text as the scan sees it and where each of its characters went (`spaced`). Shared with
    benches/bench_presidio_names.py, which scores another analyzer the same way."""
    out: dict[tuple[str, str], Counter[str]] = {}
    for case in cases():
        text, lang = str(case["text"]), str(case["lang"])
        where = None
        if rewrite is not None:
            text, where = rewrite(text)
        found = scan(text)
        spans: list[list[Any]] = case["spans"]  # type: ignore[assignment]
        for entity in TYPES:
            c = out.setdefault((entity, lang), Counter())
            gold = [(s, e) if where is None else (where[s], where[e]) for t, s, e in spans if t == entity]
            mine = [(s, e) for t, s, e in found if t == entity]
            for g in gold:
                cover = sum(overlap(g, m) for m in mine)
                c["tp" if 2 * cover >= g[1] - g[0] else "fn"] += 1
                c["exact"] += g in mine
            for m in mine:
                c["fp"] += not any(overlap(g, m) for g in gold)
    return out


def by_type(counts: dict[tuple[str, str], Counter[str]]) -> dict[str, Counter[str]]:
    """`score`'s counts summed over the languages, per type."""
    out: dict[str, Counter[str]] = {entity: Counter() for entity in TYPES}
    for (entity, _), c in counts.items():
        out[entity] += c
    return out


def evaluate(scanner: Scanner, threshold: int | None = None) -> dict[tuple[str, str], Counter[str]]:
    """`score` of the scanner at its own thresholds (None) or at `threshold` for every type."""
    return score(lambda text: at_threshold(scanner, text, threshold))


def ratios(c: Counter[str]) -> tuple[float, float]:
    recall = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 1.0
    found = c["tp"] + c["fp"]
    return recall, (c["tp"] / found if found else 1.0)


# the look-alike sets and what each is (tests/fixtures/names/; each file's header says how it was made)
LOOKALIKE_SETS = (
    ("lookalikes.txt", "tuning"),
    ("lookalikes_heldout.txt", "held out"),
    ("lookalikes_2.txt", "set 2"),
    ("lookalikes_3.txt", "set 3"),
    ("lookalikes_4.txt", "set 4, held out"),
    ("lookalikes_5.txt", "set 5, brands"),
    ("lookalikes_6.txt", "set 6, brands, held out"),
    ("lookalikes_7.txt", "set 7, brands, written before the retail brand list"),
    ("lookalikes_8.txt", "set 8, held out"),
    ("lookalikes_9.txt", "set 9, venues and institutions named after people, held out"),
    ("lookalikes_10.txt", "set 10, venues and institutions named after people, blind"),
)
# the sets of things named after people (brands, firms, venues, institutions): a person's name in
# a person's place, which only knowledge of the world tells apart; reported beside the others
EPONYM_SETS = frozenset(
    {"lookalikes_5.txt", "lookalikes_6.txt", "lookalikes_7.txt", "lookalikes_9.txt", "lookalikes_10.txt"}
)


def general_lookalikes() -> list[str]:
    """The lines of the look-alike sets of the issue's kinds (not the sets of brands)."""
    return [line for name, _ in LOOKALIKE_SETS if name not in EPONYM_SETS for line in lookalikes(name)]


def table(scanner: Scanner | None = None) -> str:
    scanner = scanner or Scanner(list(TYPES))
    scores = evaluate(scanner)
    rows = [
        "| type | language | labels | recall | precision | exact span |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for entity in TYPES:
        total: Counter[str] = Counter()
        for lang in LANGS:
            c = scores[(entity, lang)]
            total += c
            r, p = ratios(c)
            n = c["tp"] + c["fn"]
            rows.append(f"| {entity} | {lang} | {n} | {r:.3f} | {p:.3f} | {c['exact'] / n:.3f} |")
        r, p = ratios(total)
        n = total["tp"] + total["fn"]
        rows.append(f"| **{entity}** | all | {n} | **{r:.3f}** | **{p:.3f}** | {total['exact'] / n:.3f} |")
    rows.append("")
    for name, what in LOOKALIKE_SETS:
        lines = lookalikes(name)
        altered = [line for line in lines if scanner.scan(line)]
        rows.append(f"Look-alike negatives ({what}): {len(altered)} of {len(lines)} sentences altered.")
    found, n = context_found(scanner)
    rows.append(f"Names before a shop or product word (context_cases.jsonl): {found} of {n} found.")
    return "\n".join(rows)


THRESHOLDS = (0, 40, 50, 60, 70, 80, 90)


def threshold_table(scanner: Scanner | None = None) -> str:
    """PERSON and ADDRESS recall and precision over all languages, and the share of look-alike
    sentences altered, with every type's threshold set to each of `THRESHOLDS`."""
    scanner = scanner or Scanner(list(TYPES))
    sets = [(name, lookalikes(name)) for name, _ in LOOKALIKE_SETS]
    head = " | ".join(f"{name} altered" for name, _ in sets)
    rows = [
        f"| min_confidence | PERSON recall | PERSON precision | ADDRESS recall | ADDRESS precision | {head} |",
        "| ---: | ---: | ---: | ---: | ---: |" + " ---: |" * len(sets),
    ]
    for threshold in THRESHOLDS:
        scores = evaluate(scanner, threshold)
        cells = [str(threshold)]
        totals = by_type(scores)
        for entity in ("PERSON", "ADDRESS"):
            r, p = ratios(totals[entity])
            cells += [f"{r:.3f}", f"{p:.3f}"]
        for _, lines in sets:
            altered = sum(bool(at_threshold(scanner, line, threshold)) for line in lines)
            cells.append(f"{altered} of {len(lines)} ({altered / len(lines):.1%})")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner(list(TYPES))


def test_set_covers_every_language(scanner: Scanner) -> None:
    scores = evaluate(scanner)
    for entity in TYPES:
        for lang in LANGS:
            c = scores[(entity, lang)]
            assert c["tp"] + c["fn"] >= (20 if entity == "DATE_OF_BIRTH" else 30), (entity, lang)


@pytest.mark.parametrize("entity", TYPES)
def test_recall_and_precision(scanner: Scanner, entity: str) -> None:
    recall, precision = ratios(by_type(evaluate(scanner))[entity])
    assert recall >= FLOOR[entity][0] and precision >= FLOOR[entity][1], (recall, precision)


def test_lookalikes_are_left_alone(scanner: Scanner) -> None:
    altered = [line for line in lookalikes() if scanner.scan(line)]
    assert len(altered) <= 1, altered


def test_heldout_lookalikes_do_not_get_worse(scanner: Scanner) -> None:
    # measured when the set was written: 8 of 30 (title-case greetings, `Customer Success`,
    # `Queen Elizabeth Olympic Park`, and `Vittorio Emanuele II`, who is a person); at the default
    # thresholds after confidence grading: 1 of 30
    altered = [line for line in lookalikes("lookalikes_heldout.txt") if scanner.scan(line)]
    assert len(altered) <= 1, altered


def test_lookalikes_2_at_the_default_threshold(scanner: Scanner) -> None:
    # 160 sentences written before the grading was tuned on them: 18 altered at the default
    # threshold before tuning, 2 after (two brand names made of given names)
    altered = [line for line in lookalikes("lookalikes_2.txt") if scanner.scan(line)]
    # 1 since the eponym and make rules (`Albert Heijn Bonus`, a shop named after its founder); 0
    # since the brand rule (rust/data/brands.txt), designed after seeing that line
    assert not altered, altered
    assert len(lookalikes("lookalikes_2.txt")) >= 150


def test_lookalikes_3_and_4_at_the_default_threshold(scanner: Scanner) -> None:
    # set 3 (152 sentences) was written before any rule was tuned on look-alikes: 20 altered then;
    # 3 after the eponym, make and particle rules, which were designed on its first run (brands
    # named after their founders: `Yves Rocher`, `Giovanni Rana`, `Albert Heijn`). Set 4 (54) was
    # written after that design and never used to tune: 2 altered (`Grant Thornton`, a firm, and
    # `Dona Maria II`, a queen, inside a theatre's name). The brand rule (designed after seeing
    # those lines) takes set 3 to 2 (`Albert Heijn XL`), the retail brands of the
    # name-suggestion-index to 1 (`Yves Rocher`; `Da Giovanni Rana` is left). Set 4 to 0 since a
    # place noun before a title (`Teatro Nacional Dona Maria II`) and a firm's staff after the
    # name (`Grant Thornton auditors`) count the name below the threshold (designed after seeing
    # those two lines: set 4 is no longer blind)
    three = lookalikes("lookalikes_3.txt")
    four = lookalikes("lookalikes_4.txt")
    assert len(three) >= 150 and len(four) >= 50
    assert len([line for line in three if scanner.scan(line)]) <= 1
    assert not [line for line in four if scanner.scan(line)]


def test_lookalikes_8_at_the_default_threshold(scanner: Scanner) -> None:
    # 146 sentences of the kinds the issue names (products, places, months, job titles, names
    # that are words, headings, greetings, log lines), written after every rule up to the retail
    # brand list and never used to tune: 2 altered when first measured (1.4%: `Jack Daniels`, a
    # whiskey named after its maker, and Dutch `Versie Vijf`, a word the name lexicon has as a
    # given name); 1 since the rarest given names that are words of the nine languages are
    # flagged ambiguous (rust/data/make_lexicon.py; the rule was chosen among variants compared
    # on this set and the labelled one)
    eight = lookalikes("lookalikes_8.txt")
    assert len(eight) >= 140
    assert len([line for line in eight if scanner.scan(line)]) <= 1


@pytest.mark.parametrize(
    ("name", "ceiling"),
    [
        # 64 sentences about shops, firms, products and venues named after people, committed
        # before the brand rule: 40 altered then, 40 after (the brands in them are not in
        # simple-icons' list); 25 since the context rule for firm and shop names (a shop noun or a
        # legal form next to the name), which was designed on it; 17 with the retail brands of the
        # name-suggestion-index (a list, not tuned on the set)
        ("lookalikes_5.txt", 17),
        # the same kind of sentences, no brand of set 5, committed before the context rule and
        # never used to tune it: 45 altered then, 23 after it, 16 with the name-suggestion-index;
        # 14 with the venue rules of the thirteenth session (`São João da Madeira`, `Carl
        # Larsson-gården`)
        ("lookalikes_6.txt", 14),
        # 73 sentences, no brand of sets 5 and 6, committed before the name-suggestion-index's
        # brands were read: 30 altered then, 22 with them (blind); 20 with the place-before-a-title
        # rule (`Teatro Nacional Dona Maria II`, `Estádio Dr. Magalhães Pessoa`); 19 with the
        # Polish declined institution nouns (`na Uniwersytecie Adama Mickiewicza`)
        ("lookalikes_7.txt", 19),
        # 72 sentences about venues, institutions, places and products named after people (an
        # institution noun before the name, inflected, or after it; a saint's place; a compound
        # with a lower-case tail after a hyphen), committed before any change of the thirteenth
        # session: 10 altered then; 1 after the rules designed on its misses (no longer blind: a
        # compound with a lower-case tail, `Astrid Lindgren-skolan`; a Swedish church or school in
        # lower case after the name; Polish declined institution nouns; academies and
        # philharmonics; a saint's prefix before a lexicon surname or as the name's first word).
        # Left: `Die Fritz Kola Flasche` (a German noun read as a surname)
        ("lookalikes_9.txt", 1),
        # 45 sentences of the same kinds, written after those rules and measured once (blind): 6
        # altered (12 without the rules): institution nouns the lists do not have (`Hogeschool`,
        # `Kinderziekenhuis`, `médiathèque`), a head noun that is also a surname (`Ernst Barlach
        # Haus`), `Building`, and a restaurant named after a person
        ("lookalikes_10.txt", 6),
    ],
)
def test_lookalikes_named_after_people_do_not_get_worse(scanner: Scanner, name: str, ceiling: int) -> None:
    # far from the 1% target: what is left are firms and products named after people that no
    # list here has (`Carl Zeiss`, `Douwe Egberts`), and names after `de`/`di`/`van` (`Los
    # vestidos de Lorenzo Caprile`, which is as often a person's own)
    lines = lookalikes(name)
    assert len(lines) >= 45
    assert len([line for line in lines if scanner.scan(line)]) <= ceiling


def shouted(text: str) -> str:
    """`text` in capitals, each character that keeps its length (`ß` stays), so spans hold."""
    return "".join(c.upper() if len(c.upper()) == 1 else c for c in text)


def test_names_in_capitals(scanner: Scanner) -> None:
    # the labelled set in capitals (`MARIA SCHMIDT, HAUPTSTRASSE 12`): capitals say nothing there,
    # so a name is kept when the lexicon (a given name and a surname), a title or a cue vouches
    # for it. PERSON recall 0.000 before names in capitals were read; 0.611 at precision 0.995
    # when first measured, 0.608 with the flags of rare given names that are words (the labelled
    # set's names the US census does not know, Dutch and Polish most, are counted below the
    # threshold: a given name and an unknown word)
    totals = by_type(score(lambda text: scanner.scan(shouted(text))))
    recall, precision = ratios(totals["PERSON"])
    assert recall >= 0.6 and precision >= 0.99, (recall, precision)
    # ADDRESS in capitals: 0.589 before (a compound's or a type word's ending with a capital
    # beyond ASCII, `BJÖRKVÄGEN`, `URBANIZACIÓN`, and a city in capitals went unread), 0.981 after
    recall, precision = ratios(totals["ADDRESS"])
    assert recall >= 0.97 and precision == 1.0, (recall, precision)
    # the general look-alike sets in capitals: 2 of 609 altered before (two ADDRESS findings),
    # 10 after (5, then 4, as written): given names that are words of another language before a
    # surname (`UNA CADENA`, `SEGUNDA MANO`), brands (`JACK DANIELS`)
    general = general_lookalikes()
    altered = [line for line in general if scanner.scan(shouted(line))]
    assert len(general) >= 600 and len(altered) <= 10, altered


def lowered(text: str) -> str:
    """`text` in lower case, each character that keeps its length, so spans hold."""
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


def test_names_and_addresses_in_lower_case(scanner: Scanner) -> None:
    # the labelled set in lower case (`my name is christian pena`, `hauptstraße 12, 10115 berlin`):
    # PERSON recall 0.000 before names in lower case were read after a cue phrase, 0.117 after, at
    # precision 1.000 (the names after `my name is`, `kunde:`, `chamo-me`, … whose given name the
    # lexicon knows; lower case says nothing more, so a name without a cue before it is still not
    # read). ADDRESS 0.000 before, 0.981 after, at precision 1.000 (an address with a postcode or
    # city line, read from a copy in title case)
    totals = by_type(score(lambda text: scanner.scan(lowered(text))))
    for entity, floor in (("PERSON", 0.11), ("ADDRESS", 0.97)):
        recall, precision = ratios(totals[entity])
        assert recall >= floor and precision == 1.0, (entity, recall, precision)
    # every look-alike set in lower case (927 sentences, 59 altered as written): none altered
    # (`customer will`, `dear mark`, `3 blocks down the street`)
    lines = [line for name, _ in LOOKALIKE_SETS for line in lookalikes(name)]
    altered = [line for line in lines if scanner.scan(lowered(line))]
    assert len(lines) >= 800 and not altered, altered


def spaced(text: str) -> tuple[str, list[int]]:
    """`text` with every space doubled, and where each of its characters went."""
    where, n = [], 0
    for c in text:
        where.append(n)
        n += 2 if c == " " else 1
    where.append(n)
    return text.replace(" ", "  "), where


def test_double_spaces_are_no_way_around(scanner: Scanner) -> None:
    # the labelled set with every space doubled: before the parsers read runs of spaces and tabs
    # between words, PERSON recall was 0.05, ADDRESS 0.00 and DATE_OF_BIRTH 0.61 (a cue phrase
    # with two spaces was none); 0.933, 0.936 and 1.000 after, at precision 1.000, and the
    # general look-alike sets alter no more lines than as written (4 of 609)
    found = by_type(score(scanner.scan, rewrite=spaced))
    floors = {"PERSON": 0.93, "ADDRESS": 0.93, "DATE_OF_BIRTH": 1.0}
    for entity, floor in floors.items():
        recall, precision = ratios(found[entity])
        assert recall >= floor and precision == 1.0, (entity, recall, precision)
    assert sum(bool(scanner.scan(spaced(line)[0])) for line in general_lookalikes()) <= 4


def test_a_line_break_inside_a_name_is_no_way_around(scanner: Scanner) -> None:
    # the labelled set with the first space inside every PERSON label made a line break
    # (`Maria⏎Schmidt`): recall 0.153 before (the given name alone is no name), 0.525 after, at
    # precision 1.000; only a lexicon surname continues a name across a line, so the names with a
    # surname the census does not know, or an ambiguous given name, are still missed
    tp = fn = fp = 0
    for case in cases():
        chars = list(str(case["text"]))
        spans: list[list[Any]] = case["spans"]  # type: ignore[assignment]
        gold = [(s, e) for t, s, e in spans if t == "PERSON"]
        for s, e in gold:
            k = "".join(chars[s:e]).find(" ")
            if k > 0:
                chars[s + k] = "\n"
        mine = [(s, e) for t, s, e in scanner.scan("".join(chars)) if t == "PERSON"]
        for g in gold:
            cover = sum(overlap(g, m) for m in mine)
            tp += 2 * cover >= g[1] - g[0]
            fn += 2 * cover < g[1] - g[0]
        fp += sum(not any(overlap(g, m) for g in gold) for m in mine)
    assert tp / (tp + fn) >= 0.5 and fp == 0, (tp, fn, fp)


def test_names_before_shop_words_stay_persons(scanner: Scanner) -> None:
    # 23 persons followed by a word a shop or a product name could be followed by (`shops`,
    # `marca`, `GmbH, Laura Vogel`), written with set 6: 22 found then (not `On Mondays James Cooper stores`)
    found, n = context_found(scanner)
    assert n >= 20 and found >= 22, (found, n)


@pytest.mark.parametrize(
    ("lang", "floor"),
    [
        ("en", 0.9),
        ("de", 0.9),
        ("fr", 0.9),
        ("es", 0.9),
        ("it", 0.9),
        ("nl", 0.9),
        ("pt", 0.9),
        ("pl", 0.9),
        ("sv", 0.9),
    ],
)
def test_person_recall_per_language(scanner: Scanner, lang: str, floor: float) -> None:
    # issue 16's target per language at the default threshold (Polish 0.775 and Dutch 0.825 before
    # the declension, particle, title and patronymic rules; 0.900 and 0.925 after)
    recall, precision = ratios(evaluate(scanner)[("PERSON", lang)])
    assert recall >= floor and precision >= 0.9, (recall, precision)


@pytest.mark.parametrize("rewrite", [str, lowered, shouted], ids=["as-written", "lower-case", "capitals"])
def test_stream_finds_what_the_whole_text_has(scanner: Scanner, rewrite: Callable[[str], str]) -> None:
    # written, in lower case and in capitals: each reading (cue pass, title-case copies) decides
    # the same however the text arrives (every case: a Dutch postcode cut after its first letter,
    # `6638 e`, was read before it was whole in lower case, and only every seventh case was here)
    for case in cases():
        text = rewrite(str(case["text"]))
        want = [(e, s, t) for e, s, t in scanner.scan(text)]
        for size in (1, 2, 17):
            st: StreamScanner = scanner.stream("[{entity}]")
            got = []
            for i in range(0, len(text), size):
                got += st.feed(text[i : i + size])[1]
            got += st.finish()[1]
            assert [(e, s, t) for e, s, t in got] == want, text


def test_off_by_default() -> None:
    text = "Customer Maria Schmidt, Hauptstraße 12, 10115 Berlin"
    assert Scanner().scan(text) == []
    assert [e for e, _, _ in Scanner(["PERSON", "ADDRESS"]).scan(text)] == ["PERSON", "ADDRESS"]
    assert Scanner().scan("born 12.03.1985") == []
    assert [e for e, _, _ in Scanner(["DATE_OF_BIRTH"]).scan("born 12.03.1985")] == ["DATE_OF_BIRTH"]


if __name__ == "__main__":
    print(table())
    print()
    print(threshold_table())
