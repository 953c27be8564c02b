"""Cost of the opt-in PERSON and ADDRESS types on prose, as a ratio to the default scanner, and
of 1,000 allowed terms on PERSON and ADDRESS (`allow_terms`) as a ratio to the same types without.

    .venv/bin/python benches/bench_names.py            # wall time, best of 5 (MB/s and ratio)
    valgrind --tool=callgrind .venv/bin/python benches/bench_names.py --once default|names|allowed CORPUS
                                                       # instruction counts of one variant

Corpora: the clean English prose of bench_scan.py (sentence-initial capitals only), and
"names prose": the sentences of tests/fixtures/names/ (nine languages, a capitalised name or an
address in every sentence, about 70 bytes each), repeated to 1 MiB, the worst case for these two
parsers, which run at every capitalised word and every number.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_scan import prose
from sluicegate._core import Scanner, default_entities

ROOT = Path(__file__).resolve().parent.parent
SIZE = 1 << 20


def names_prose(size: int = SIZE) -> str:
    with (ROOT / "tests" / "fixtures" / "names" / "cases.jsonl").open(encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f]
    out, n = [], 0
    while n < size:
        for t in texts:
            out.append(t)
            n += len(t.encode()) + 1
    return " ".join(out)


CORPORA = {"prose": prose, "names": names_prose}
VARIANTS = {"default": None, "names": [*default_entities(), "PERSON", "ADDRESS", "DATE_OF_BIRTH"]}
# A workspace's list of brands and venues: 500 terms for each of PERSON and ADDRESS, none of them in
# the corpora, their first letters spread over A-Z (so no candidate is passed over on its first
# letter): every candidate of those types is read and looked up, and none is dropped.
ALLOWED = [
    (entity, [f"{chr(65 + i % 26)}irma Beispiel {entity[0]}{i:03d}" for i in range(500)])
    for entity in ("PERSON", "ADDRESS")
]


def scanner(variant: str) -> Scanner:
    if variant == "allowed":
        return Scanner(VARIANTS["names"], allow=ALLOWED)
    return Scanner(VARIANTS[variant])


def best(scanner: Scanner, text: str, rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        scanner.scan(text)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    if sys.argv[1:2] == ["--once"]:
        variant, corpus = sys.argv[2], sys.argv[3]
        text = CORPORA[corpus]()
        scanner(variant).scan(text)
        return
    print(
        "| corpus | default MB/s | + PERSON, ADDRESS, DATE_OF_BIRTH MB/s | ratio | findings "
        "| + 1,000 allowed terms MB/s | ratio to without |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, build in CORPORA.items():
        text = build()
        mb = len(text.encode()) / 1e6
        base, withn, allowed = scanner("default"), scanner("names"), scanner("allowed")
        a, b, c = best(base, text), best(withn, text), best(allowed, text)
        found = len(withn.scan(text))
        assert len(allowed.scan(text)) == found  # no term is in the corpus: only the lookups cost
        print(f"| {name} | {mb / a:,.0f} | {mb / b:,.0f} | {a / b:.2f} | {found} | {mb / c:,.0f} | {b / c:.2f} |")


if __name__ == "__main__":
    main()
