"""Scanner throughput and per-chunk stream cost, each beside a pure-Python `re` baseline from the same run.

    .venv/bin/python -m pytest benches/bench_scan.py --benchmark-enable --benchmark-group-by=group
    .venv/bin/python benches/bench_scan.py        # prints the Markdown tables for BENCHMARKS.md
    .venv/bin/python benches/bench_scan.py --dump DIR   # writes the corpora for the criterion bench

Corpora are built here, deterministically: clean English prose (no entities), PII-dense text (the
labeled documents of tests/fixtures/redaction/, 80 % of them with entities), and source code
(the standard library's own Python files). Each throughput case records MB/s and its findings in
`extra_info`; the PII-dense case also records precision and recall against the labels, so a fast
wrong answer shows. The baseline is one `re` pattern per entity (the shapes the Rust detectors
accept, Luhn checked in Python), which is what a pure-Python gateway would run. Presidio is not
measured here: its analyzer needs a spaCy model that cannot be downloaded on this machine.
"""

from __future__ import annotations

import json
import random
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sluicegate._core import Scanner

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "redaction"
SIZE = 1 << 20

_WORDS = (
    "the of and to in a is that for it as was with be by on not he this are or his from at which but have an "
    "they you were her she there been one all we their has would when if so no out up what them into can more "
    "its about than then some these two time very like just do my only other now people also made over did after "
    "new most should where back could well our know way even much because good those each through how request "
    "model answer customer support invoice refund shipping account password review summary meeting schedule"
)
WORDS = _WORDS.split()


def prose(size: int = SIZE) -> str:
    r = random.Random(7)
    out: list[str] = []
    n = 0
    while n < size:
        words = [r.choice(WORDS) for _ in range(r.randint(6, 20))]
        sent = " ".join(words).capitalize() + r.choice([".", ".", ".", "?", "!", ";"]) + r.choice([" ", " ", "\n\n"])
        out.append(sent)
        n += len(sent)
    return "".join(out)[:size]


def cases() -> list[dict[str, object]]:
    with (FIXTURES / "cases.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def pii_dense(size: int = SIZE) -> tuple[str, set[tuple[str, int, int]]]:
    """Labeled documents joined until `size`, with their labels shifted into the joined text."""
    parts: list[str] = []
    labels: set[tuple[str, int, int]] = set()
    n = 0
    docs = cases()
    i = 0
    while n < size:
        c = docs[i % len(docs)]
        i += 1
        for e, s, t in c["spans"]:  # type: ignore[union-attr]
            labels.add((e, n + s, n + t))
        parts.append(str(c["text"]) + "\n\n")
        n += len(parts[-1])
    return "".join(parts), labels


def source_code(size: int = SIZE) -> str:
    stdlib = Path(json.__file__).resolve().parent.parent
    out: list[str] = []
    n = 0
    for path in sorted(stdlib.glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        out.append(text)
        n += len(text)
        if n >= size:
            break
    return "".join(out)[:size]


# --- baseline: one `re` pattern per entity ------------------------------------------------------


def _luhn(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


RE_PATTERNS: dict[str, re.Pattern[str]] = {
    "EMAIL": re.compile(r"\b[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,63}\b"),
    "PHONE": re.compile(
        r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,5}(?:[ .-]\d{1,5}){1,4}"
        r"|\(\d{3}\) ?\d{3}[-. ]\d{4}|\b\d{3}([-. ])\d{3}\1\d{4})\b"
    ),
    "US_SSN": re.compile(r"\b(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}\b"),
    "CREDIT_CARD": re.compile(r"\b(?:\d{4}[ -]?){3}\d{1,4}\b|\b\d{4}[ -]?\d{6}[ -]?\d{4,5}\b"),
    "IBAN": re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b"),
    "IP_ADDRESS": re.compile(
        r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b"
        r"|(?<![\w:])(?:[0-9a-fA-F]{1,4}:){2,7}[0-9a-fA-F]{1,4}(?![\w:])|(?<![\w:])[0-9a-fA-F:]{2,39}::[0-9a-fA-F:]*"
    ),
    "AWS_ACCESS_KEY_ID": re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b"),
    "GITHUB_TOKEN": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,251}\b|\bgithub_pat_\w{70,255}"),
    "SLACK_TOKEN": re.compile(r"\bxox[bpares]-[A-Za-z0-9-]{10,250}|\bxapp-[A-Za-z0-9-]{10,250}"),
    "OPENAI_API_KEY": re.compile(
        r"\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,}|\bsk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}"
    ),
    "ANTHROPIC_API_KEY": re.compile(r"\bsk-ant-[a-z0-9]{2,10}-[A-Za-z0-9_-]{32,250}"),
    "STRIPE_KEY": re.compile(r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{10,247}\b"),
    "GOOGLE_API_KEY": re.compile(r"\bAIza[A-Za-z0-9_-]{35}(?![A-Za-z0-9_-])"),
    "PRIVATE_KEY": re.compile(
        r"-----BEGIN[ A-Z0-9]{0,64}PRIVATE KEY(?: BLOCK)?-----[\s\S]{0,8192}?"
        r"-----END[ A-Z0-9]{0,64}PRIVATE KEY(?: BLOCK)?-----"
    ),
    "JWT": re.compile(r"\beyJ[A-Za-z0-9_-]{7,}\.e[yw][A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
}


def re_scan(text: str) -> list[tuple[str, int, int]]:
    """The baseline: every pattern over the text, cards Luhn-checked, overlaps resolved leftmost-longest."""
    found: list[tuple[str, int, int]] = []
    for entity, pat in RE_PATTERNS.items():
        for m in pat.finditer(text):
            if entity == "CREDIT_CARD":
                digits = re.sub(r"\D", "", m.group())
                if not 13 <= len(digits) <= 19 or not _luhn(digits):
                    continue
            found.append((entity, m.start(), m.end()))
    found.sort(key=lambda f: (f[1], -f[2]))
    out: list[tuple[str, int, int]] = []
    end = 0
    for f in found:
        if f[1] >= end:
            out.append(f)
            end = f[2]
    return out


# --- cases ---------------------------------------------------------------------------------------

SCANNER = Scanner()
CORPORA: dict[str, Callable[[], str]] = {"prose": prose, "pii-dense": lambda: pii_dense()[0], "code": source_code}
ENGINES: dict[str, Callable[[str], list[tuple[str, int, int]]]] = {"sluicegate": SCANNER.scan, "python-re": re_scan}


def quality(found: list[tuple[str, int, int]], labels: set[tuple[str, int, int]]) -> dict[str, float]:
    tp = len(set(found) & labels)
    return {"precision": tp / len(found) if found else 1.0, "recall": tp / len(labels) if labels else 1.0}


@pytest.mark.parametrize("corpus", list(CORPORA))
@pytest.mark.parametrize("engine", list(ENGINES))
def test_scan_throughput(benchmark: pytest.FixtureDef, corpus: str, engine: str) -> None:  # type: ignore[type-arg]
    text = pii_dense()[0] if corpus == "pii-dense" else CORPORA[corpus]()
    scan = ENGINES[engine]
    benchmark.group = f"scan {corpus} ({len(text.encode()) // 1024} KiB)"
    found = benchmark(scan, text)
    nbytes = len(text.encode())
    if benchmark.stats:
        benchmark.extra_info["MB/s"] = round(nbytes / benchmark.stats.stats.mean / 1e6, 2)
    benchmark.extra_info["findings"] = len(found)
    if corpus == "pii-dense":
        benchmark.extra_info.update(quality(found, pii_dense()[1]))
    if corpus == "prose":
        benchmark.extra_info["correct"] = not found  # the prose has no entities


CHUNK_SIZES = [1, 4, 16, 64]


@pytest.mark.parametrize("size", CHUNK_SIZES)
@pytest.mark.parametrize("engine", ["sluicegate", "python-re"])
def test_stream_chunk_cost(benchmark: pytest.FixtureDef, size: int, engine: str) -> None:  # type: ignore[type-arg]
    """Cost per `feed` of a `size`-character chunk of prose (LLM output arrives in such pieces).

    The baseline re-scans a tail window with `re` on every chunk, the usual carry-over approach.
    """
    text = prose(64 * 1024)
    chunks = [text[i : i + size] for i in range(0, len(text), size)][:4000]
    benchmark.group = f"stream {size}-char chunks (per {len(chunks)} chunks)"

    def run_rust() -> str:
        st = SCANNER.stream()
        out = [st.feed(c)[0] for c in chunks]
        out.append(st.finish()[0])
        return "".join(out)

    def run_re() -> str:
        buf = ""
        out = []
        for c in chunks:
            buf += c
            re_scan(buf[-256:])
            if len(buf) > 256:
                out.append(buf[:-256])
                buf = buf[-256:]
        out.append(buf)
        return "".join(out)

    result = benchmark(run_rust if engine == "sluicegate" else run_re)
    if benchmark.stats:
        benchmark.extra_info["ns/chunk"] = round(benchmark.stats.stats.mean / len(chunks) * 1e9, 1)
    benchmark.extra_info["correct"] = result == "".join(chunks)


def _best(fn: Callable[[], object], repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    """Print the tables for BENCHMARKS.md (best of 5, one process), or `--dump DIR` the corpora."""
    if len(sys.argv) == 3 and sys.argv[1] == "--dump":
        out = Path(sys.argv[2])
        out.mkdir(parents=True, exist_ok=True)
        for name, make in CORPORA.items():
            (out / f"{name}.txt").write_text(make(), encoding="utf-8")
        return
    print("| corpus | sluicegate MB/s | python `re` MB/s | ratio | sluicegate P / R (pii-dense) |")
    print("| --- | ---: | ---: | ---: | --- |")
    for corpus in CORPORA:
        text, labels = pii_dense() if corpus == "pii-dense" else (CORPORA[corpus](), set())
        nbytes = len(text.encode())
        rust = nbytes / _best(lambda text=text: SCANNER.scan(text)) / 1e6
        base = nbytes / _best(lambda text=text: re_scan(text), repeat=2) / 1e6
        q = quality(SCANNER.scan(text), labels) if labels else None
        pr = f"{q['precision']:.3f} / {q['recall']:.3f}" if q else ""
        print(f"| {corpus} ({nbytes // 1024} KiB) | {rust:,.0f} | {base:,.1f} | {rust / base:,.0f}x | {pr} |")
    print()
    print("| chunk | sluicegate ns/feed | python `re` carry-over ns/chunk | ratio |")
    print("| ---: | ---: | ---: | ---: |")
    text = prose(64 * 1024)
    for size in CHUNK_SIZES:
        chunks = [text[i : i + size] for i in range(0, len(text), size)][:4000]

        def rust(chunks: list[str] = chunks) -> None:
            st = SCANNER.stream()
            for c in chunks:
                st.feed(c)
            st.finish()

        def base(chunks: list[str] = chunks) -> None:
            buf = ""
            for c in chunks:
                buf = (buf + c)[-256:]
                re_scan(buf)

        r = _best(rust) / len(chunks) * 1e9
        b = _best(base, repeat=2) / len(chunks) * 1e9
        print(f"| {size} | {r:,.0f} | {b:,.0f} | {b / r:,.0f}x |")


if __name__ == "__main__":
    sys.exit(main())
