"""Cost of the opt-in PERSON and ADDRESS types on prose, as a ratio to the default scanner.

    .venv/bin/python benches/bench_names.py            # wall time, best of 5 (MB/s and ratio)
    valgrind --tool=callgrind .venv/bin/python benches/bench_names.py --once default|names CORPUS
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
        Scanner(VARIANTS[variant]).scan(text)
        return
    print("| corpus | default MB/s | + PERSON, ADDRESS, DATE_OF_BIRTH MB/s | ratio | findings |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, build in CORPORA.items():
        text = build()
        mb = len(text.encode()) / 1e6
        base, withn = Scanner(VARIANTS["default"]), Scanner(VARIANTS["names"])
        a, b = best(base, text), best(withn, text)
        print(f"| {name} | {mb / a:,.0f} | {mb / b:,.0f} | {a / b:.2f} | {len(withn.scan(text))} |")


if __name__ == "__main__":
    main()
