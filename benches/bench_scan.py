"""Scanner throughput, cost per 2 KB document and per streamed chunk, beside other scanners in the same run.

    .venv/bin/python -m pip install presidio-analyzer==2.2.366 detect-secrets==1.5.0   # the bench's own set-up
    .venv/bin/python -m pytest benches/bench_scan.py --benchmark-enable --benchmark-group-by=group
    .venv/bin/python benches/bench_scan.py        # prints the Markdown tables for BENCHMARKS.md
    .venv/bin/python benches/bench_scan.py --dump DIR   # writes the corpora for the criterion bench
    .venv/bin/python benches/bench_scan.py --compare OLD.so   # this build against another build of the extension
                                                              # (also on the encoding-heavy corpus)

Corpora are built here, deterministically: clean English prose (no entities), PII-dense text (the
labeled documents of tests/fixtures/redaction/, about 70 % of them with entities), and source code
(the standard library's own Python files). Each throughput case records MB/s and its findings in
`extra_info`; the PII-dense case also records precision and recall against the labels, so a fast
wrong answer shows. The baseline is one `re` pattern per entity (the shapes the Rust detectors
accept, Luhn checked in Python), which is what a pure-Python gateway would run.

The other scanners run on the same strings, each as its users run it, when its package is installed
(otherwise its cases are skipped and the tables say why; `make bench` installs both):

- Presidio's analyzer with its six pattern recognizers for the entities both cover (CREDIT_CARD,
  US_SSN, IBAN_CODE, EMAIL_ADDRESS, IP_ADDRESS, PHONE_NUMBER), over a blank spaCy `en` pipeline: a
  tokenizer only, no NER model and nothing to download. tldextract (its e-mail check) is pointed at
  its bundled public-suffix snapshot, so nothing is fetched during the run either.
- detect-secrets with every plugin of its default settings, in its file-scan mode (each line of the
  text through every plugin and the default filters), the mode that scans a prompt written to a
  file; its ad-hoc `scan_line` mode also tries every word as a high-entropy string and flags prose.

They scan the first 64 K characters of each corpus (Presidio's cost grows faster than the text:
the whole PII-dense megabyte takes it over a minute), and the cost of one call on a 2 KB prompt,
each with a few rounds where sluicegate gets many: the figures are orders of magnitude apart.
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sluicegate._core import Scanner, builtin_entities

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


def encoded(size: int = SIZE) -> str:
    """Encoding-heavy text: the adversarial-encodings set (HTML references, percent-encoded URLs,
    JSON escapes, full-width forms, no-break and zero-width spaces, wrapped numbers; two thirds of
    its documents hide a value) each followed by a sentence of prose, until `size`."""
    with (FIXTURES / "encodings.jsonl").open(encoding="utf-8") as f:
        docs = [str(json.loads(line)["text"]) for line in f]
    filler = prose(64 * 1024).split(". ")
    out: list[str] = []
    n = i = 0
    while n < size:
        part = docs[i % len(docs)] + " " + filler[i % len(filler)] + ".\n"
        out.append(part)
        n += len(part)
        i += 1
    return "".join(out)[:size]


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


# --- other scanners, when installed --------------------------------------------------------------

Findings = list[tuple[str, int, int]]
PRESIDIO_ENTITIES = {
    "CREDIT_CARD": "CREDIT_CARD",
    "US_SSN": "US_SSN",
    "IBAN_CODE": "IBAN",
    "EMAIL_ADDRESS": "EMAIL",
    "IP_ADDRESS": "IP_ADDRESS",
    "PHONE_NUMBER": "PHONE",
}


def presidio_engine() -> Callable[[str], Findings]:
    """Presidio's analyzer: the six pattern recognizers over a blank spaCy tokenizer (no model, no NER)."""
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")  # the bundled snapshot, no fetch
    import spacy
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import SpacyNlpEngine
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
        UsSsnRecognizer,
    )

    class BlankSpacy(SpacyNlpEngine):  # type: ignore[misc]
        def load(self) -> None:
            blank = spacy.blank("en")
            blank.max_length = 1 << 24  # its 1 M-character guard is for parser and NER memory; a tokenizer is linear
            self.nlp = {"en": blank}

    nlp = BlankSpacy(models=[{"lang_code": "en", "model_name": "blank:en"}])
    nlp.load()
    registry = RecognizerRegistry(supported_languages=["en"])
    for rec in (CreditCardRecognizer, UsSsnRecognizer, IbanRecognizer, EmailRecognizer, IpRecognizer, PhoneRecognizer):
        registry.add_recognizer(rec())
    analyzer = AnalyzerEngine(nlp_engine=nlp, registry=registry, supported_languages=["en"])

    def scan(text: str) -> Findings:
        found = analyzer.analyze(text=text, language="en")
        return sorted((PRESIDIO_ENTITIES.get(r.entity_type, r.entity_type), r.start, r.end) for r in found)

    scan("warm-up: bob@example.com 4111 1111 1111 1111")
    return scan


def detect_secrets_engine() -> Callable[[str], Findings]:
    """detect-secrets with its default plugins and filters, line by line as in a file scan."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.core.scan import _process_line_based_plugins
    from detect_secrets.settings import configure_settings_from_baseline

    plugins = [{"name": cls.__name__} for cls in get_mapping_from_secret_type_to_class().values()]
    configure_settings_from_baseline({"plugins_used": plugins})

    def scan(text: str) -> Findings:
        lines = list(enumerate(text.splitlines(), start=1))
        return [(s.type, s.line_number, s.line_number) for s in _process_line_based_plugins(lines, "prompt.txt")]

    scan("warm-up: AKIAIOSFODNN7EXAMPLE")
    return scan


def _optional(make: Callable[[], Callable[[str], Findings]], package: str) -> Callable[[str], Findings] | str:
    """The engine, or why it is skipped."""
    try:
        return make()
    except ImportError as e:
        return f"skipped: {package} is not installed ({e.name}); `pip install {package}`"
    except Exception as e:  # a broken install must not stop the other cases
        return f"skipped: {package} failed to start: {type(e).__name__}: {e}"


# --- cases ---------------------------------------------------------------------------------------

SCANNER = Scanner()
CORPORA: dict[str, Callable[[], str]] = {"prose": prose, "pii-dense": lambda: pii_dense()[0], "code": source_code}
OPTIONAL = {
    "presidio": (presidio_engine, "presidio-analyzer"),
    "detect-secrets": (detect_secrets_engine, "detect-secrets"),
}
ENGINE_NAMES = ["sluicegate", "presidio", "detect-secrets", "python-re"]
FAST = ["sluicegate", "python-re"]
_engines: dict[str, Callable[[str], Findings] | str] = {"sluicegate": SCANNER.scan, "python-re": re_scan}


def engine(name: str) -> Callable[[str], Findings] | str:
    """The scan function of engine `name` (started on first use), or the reason it is skipped."""
    if name not in _engines:
        _engines[name] = _optional(*OPTIONAL[name])
    return _engines[name]


def slow(name: str) -> bool:
    """Engines timed with a few rounds per case, not pytest-benchmark's calibrated many."""
    return name in OPTIONAL


def quality(found: list[tuple[str, int, int]], labels: set[tuple[str, int, int]]) -> dict[str, float]:
    tp = len(set(found) & labels)
    return {"precision": tp / len(found) if found else 1.0, "recall": tp / len(labels) if labels else 1.0}


def _scan_fn(name: str) -> Callable[[str], Findings]:
    scan = engine(name)
    if isinstance(scan, str):
        pytest.skip(f"{name} {scan}")
    return scan


@pytest.mark.parametrize("corpus", list(CORPORA))
@pytest.mark.parametrize("engine_name", FAST)
def test_scan_throughput(benchmark: pytest.FixtureDef, corpus: str, engine_name: str) -> None:  # type: ignore[type-arg]
    scan = _scan_fn(engine_name)
    text = pii_dense()[0] if corpus == "pii-dense" else CORPORA[corpus]()
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


SIDE = 64 * 1024


def prefix(corpus: str) -> str:
    """The first `SIDE` characters of a corpus: what every engine scans side by side."""
    return (pii_dense()[0] if corpus == "pii-dense" else CORPORA[corpus]())[:SIDE]


@pytest.mark.parametrize("corpus", list(CORPORA))
@pytest.mark.parametrize("engine_name", ENGINE_NAMES)
def test_scan_side_by_side(benchmark: pytest.FixtureDef, corpus: str, engine_name: str) -> None:  # type: ignore[type-arg]
    """Every engine on the same 64 K characters (one of the others on 1 MiB takes a minute)."""
    scan = _scan_fn(engine_name)
    text = prefix(corpus)
    benchmark.group = f"side by side: {corpus}, first {SIDE // 1024} K characters"
    found = benchmark.pedantic(scan, (text,), rounds=3, iterations=1) if slow(engine_name) else benchmark(scan, text)
    if benchmark.stats:
        benchmark.extra_info["MB/s"] = round(len(text.encode()) / benchmark.stats.stats.mean / 1e6, 3)
    benchmark.extra_info["findings"] = len(found)


DOC = 2048
DOCS = 32


def documents(corpus: str) -> list[str]:
    """The first `DOCS` pieces of `DOC` characters of a corpus: one prompt each."""
    text = pii_dense()[0] if corpus == "pii-dense" else CORPORA[corpus]()
    return [text[i : i + DOC] for i in range(0, DOC * DOCS, DOC)]


@pytest.mark.parametrize("corpus", list(CORPORA))
@pytest.mark.parametrize("engine_name", ENGINE_NAMES)
def test_scan_document(benchmark: pytest.FixtureDef, corpus: str, engine_name: str) -> None:  # type: ignore[type-arg]
    """Cost of one call on a 2 KB prompt (32 different ones per round), Python call overhead included."""
    scan = _scan_fn(engine_name)
    docs = documents(corpus)
    benchmark.group = f"scan one 2 KB {corpus} document (per {len(docs)} documents)"

    def run() -> int:
        return sum(len(scan(d)) for d in docs)

    found = benchmark.pedantic(run, rounds=1, iterations=1) if slow(engine_name) else benchmark(run)
    if benchmark.stats:
        benchmark.extra_info["us/doc"] = round(benchmark.stats.stats.mean / len(docs) * 1e6, 1)
    benchmark.extra_info["findings"] = found


CHUNK_SIZES = [1, 4, 16, 64]


@pytest.mark.parametrize("size", CHUNK_SIZES)
@pytest.mark.parametrize("engine_name", ["sluicegate", "python-re"])
def test_stream_chunk_cost(benchmark: pytest.FixtureDef, size: int, engine_name: str) -> None:  # type: ignore[type-arg]
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

    result = benchmark(run_rust if engine_name == "sluicegate" else run_re)
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


REPEAT = {"sluicegate": 20, "python-re": 3, "presidio": 3, "detect-secrets": 3}
LABEL = {
    "sluicegate": "sluicegate",
    "presidio": "Presidio",
    "detect-secrets": "detect-secrets",
    "python-re": "python `re`",
}


def main() -> None:
    """Print the tables for BENCHMARKS.md (best of several runs each, one process), or `--dump DIR` the corpora."""
    if len(sys.argv) == 3 and sys.argv[1] == "--dump":
        out = Path(sys.argv[2])
        out.mkdir(parents=True, exist_ok=True)
        for name, make in CORPORA.items():
            (out / f"{name}.txt").write_text(make(), encoding="utf-8")
        return
    if len(sys.argv) == 3 and sys.argv[1] == "--compare":
        compare(sys.argv[2])
        return
    for name in ENGINE_NAMES:
        if isinstance(engine(name), str):
            print(f"{LABEL[name]}: {engine(name)}")
    live = [n for n in ENGINE_NAMES if not isinstance(engine(n), str)]
    others = [n for n in live if n != "sluicegate"]
    print("Throughput on the whole corpus (about 1 MiB), MB/s (decimal) of UTF-8 input, one call:")
    print()
    print("| corpus | sluicegate MB/s | python `re` MB/s | ratio | sluicegate P / R (pii-dense) |")
    print("| --- | ---: | ---: | ---: | --- |")
    for corpus in CORPORA:
        text, labels = pii_dense() if corpus == "pii-dense" else (CORPORA[corpus](), set())
        nbytes = len(text.encode())
        rust = nbytes / _best(lambda text=text: SCANNER.scan(text), repeat=REPEAT["sluicegate"]) / 1e6
        base = nbytes / _best(lambda text=text: re_scan(text), repeat=2) / 1e6
        q = quality(SCANNER.scan(text), labels) if labels else None
        pr = f"{q['precision']:.3f} / {q['recall']:.3f}" if q else ""
        print(f"| {corpus} ({nbytes // 1024} KiB) | {rust:,.0f} | {base:,.1f} | {rust / base:,.0f}x | {pr} |")
    print()
    print(f"Side by side on the first {SIDE // 1024} K characters of each corpus, MB/s, one call:")
    print()
    head = " | ".join(f"{LABEL[n]} MB/s" for n in live) + "".join(f" | sluicegate / {LABEL[n]}" for n in others)
    print(f"| corpus | {head} |")
    print("| --- |" + " ---: |" * (len(live) + len(others)))
    for corpus in CORPORA:
        text = prefix(corpus)
        nbytes = len(text.encode())
        rate = {}
        for n in live:
            fn = engine(n)
            assert not isinstance(fn, str)
            rate[n] = nbytes / _best(lambda fn=fn, text=text: fn(text), repeat=REPEAT[n]) / 1e6
        cells = " | ".join(_rate(rate[n]) for n in live)
        ratios = "".join(f" | {rate['sluicegate'] / rate[n]:,.0f}x" for n in others)
        print(f"| {corpus} ({nbytes // 1024} KiB) | {cells}{ratios} |")
    print()
    print(f"Cost of one call on a {DOC}-character prompt, µs (mean over the first {DOCS} of the corpus):")
    print()
    head = " | ".join(f"{LABEL[n]} µs" for n in live) + "".join(f" | {LABEL[n]} / sluicegate" for n in others)
    print(f"| corpus | {head} |")
    print("| --- |" + " ---: |" * (len(live) + len(others)))
    for corpus in CORPORA:
        docs = documents(corpus)
        cost = {}
        for n in live:
            fn = engine(n)
            assert not isinstance(fn, str)

            def run(fn: Callable[[str], Findings] = fn, docs: list[str] = docs) -> None:
                for d in docs:
                    fn(d)

            cost[n] = _best(run, repeat=REPEAT[n]) / len(docs) * 1e6
        cells = " | ".join(_us(cost[n]) for n in live)
        ratios = "".join(f" | {cost[n] / cost['sluicegate']:,.0f}x" for n in others)
        print(f"| {corpus} | {cells}{ratios} |")
    print()
    print("Cost per streamed chunk of prose (4,000 chunks per stream), ns:")
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


def compare(path: str) -> None:
    """Before / after in one process: the extension at `path` (another build of `sluicegate._core`,
    e.g. from an older commit) against the installed one, interleaved, best of 3 x 10 runs each."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_core", path)
    assert spec and spec.loader
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    before, after = old.Scanner(), SCANNER

    def best_pair(run: Callable[[Scanner], object], repeat: int = 10) -> tuple[float, float]:
        b = a = float("inf")
        for _ in range(3):
            b = min(b, _best(lambda: run(before), repeat))
            a = min(a, _best(lambda: run(after), repeat))
        return b, a

    def stream(sc: Scanner, chunks: list[str]) -> None:
        st = sc.stream()
        for c in chunks:
            st.feed(c)
        st.finish()

    print("| case | before | after | after / before |")
    print("| --- | ---: | ---: | ---: |")
    for corpus in [*CORPORA, "encoded"]:
        text = pii_dense()[0] if corpus == "pii-dense" else encoded() if corpus == "encoded" else CORPORA[corpus]()
        # the encoded corpus is where the builds may disagree on purpose; a build with more types
        # may also take a PII-dense span from an older type (a national id read as a phone)
        known = set(old.builtin_entities())
        if corpus != "encoded" and (corpus != "pii-dense" or known == set(builtin_entities())):
            assert before.scan(text) == [f for f in after.scan(text) if f[0] in known], corpus
        n = len(text.encode())
        b, a = best_pair(lambda sc, text=text: sc.scan(text))
        print(f"| scan {corpus} ({n // 1024} KiB), MB/s | {n / b / 1e6:,.0f} | {n / a / 1e6:,.0f} | {b / a:.2f} |")
    text = prose(64 * 1024)
    for size in CHUNK_SIZES:
        chunks = [text[i : i + size] for i in range(0, len(text), size)][:4000]
        b, a = best_pair(lambda sc, chunks=chunks: stream(sc, chunks))
        k = len(chunks) / 1e9
        print(f"| stream prose, {size}-char chunks, ns/feed | {b / k:,.0f} | {a / k:,.0f} | {b / a:.2f} |")
    text = pii_dense()[0]
    n = len(text.encode())
    for size in (1024, 65536):
        chunks = [text[i : i + size] for i in range(0, len(text), size)]
        b, a = best_pair(lambda sc, chunks=chunks: stream(sc, chunks), repeat=3)
        print(f"| stream pii-dense, {size}-char chunks, MB/s | {n / b / 1e6:,.0f} | {n / a / 1e6:,.0f} | {b / a:.2f} |")


def _rate(mb_s: float) -> str:
    return f"{mb_s:,.0f}" if mb_s >= 100 else f"{mb_s:,.1f}" if mb_s >= 1 else f"{mb_s:.3f}"


def _us(us: float) -> str:
    return f"{us:,.0f}" if us >= 100 else f"{us:.1f}"


if __name__ == "__main__":
    sys.exit(main())
