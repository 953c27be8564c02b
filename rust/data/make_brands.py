"""Builds rust/data/brands.txt, the brand names the PERSON detector grades down (see README.md).

    python rust/data/make_brands.py SIMPLE_ICONS_JSON NSI_JSON

SIMPLE_ICONS_JSON is `data/simple-icons.json` of the npm package simple-icons 16.37.0 (CC0-1.0;
`npm pack simple-icons@16.37.0`): about 3,470 brands, each with a `title` and optional `aliases`
(`aka`: other names, `dup`: brands that share the icon, `loc`: localised names).

NSI_JSON is `dist/json/nsi.json` of the npm package name-suggestion-index 8.0.20260918
(BSD-3-Clause; `npm pack name-suggestion-index@8.0.20260918`), OpenStreetMap's index of the
names of chain shops, restaurants, banks, hotels and other brands and operators: every item of its
`brands/…` and `operators/…` categories whose `locationSet` includes the world (`001`), Europe
(`150`) or a country of the nine covered languages (the countries of given_names.txt: US, GB, IE,
IT, PT, ES, FR, BE, LU, NL, DE, AT, CH, SE, PL; a region of one, `us-tx.geojson`, counts as the
country) gives its `displayName` and its `brand`, `name` and `operator` tags with their
localised forms (`brand:de`, `name:en`, …).

Every one of those names is considered; a name is kept when its words look like a person's name to the
detector: two to four words, the first a given name of rust/data/given_names.txt (as the
detector looks it up: whole, by its part before a hyphen, or without diacritics), each later word
capitalised (an upper-case letter then not only capitals: `Heijn`, not `CI`), with the detector's
lower-case particles allowed between them (`van`, `de`, …). A name with a token that is no word
(`&`, `.com`, `+`) is cut before it, and kept when at least two words remain (`Hilton Hotels &
Resorts` gives `Hilton Hotels`, the words the detector reads); likewise before a word the
detector never takes into a name (its `STOP` list in rust/src/scan/names/words.rs: `The`, `Hotel`,
`Max`), and a name whose first word is one of those is not kept. Single-word brands are not kept:
one that is a surname (`Bosch`, `Dior`, `Castro`) after a given name would grade real people's
names down, and one that is a given name (`Hugo`, `Julia`, `Otto`) would take every name it
starts.

Writes rust/data/brands.txt: a `#` header naming the source, then one name a line, sorted, NFC.
"""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from pathlib import Path

SOURCES = [
    ("simple-icons 16.37.0 (npm), data/simple-icons.json", "CC0-1.0 (public domain dedication)"),
    ("name-suggestion-index 8.0.20260918 (npm), dist/json/nsi.json", "BSD-3-Clause (NSI-LICENSE.md)"),
]
# the countries of given_names.txt, the world and Europe (NSI's locationSet codes)
REGIONS = {"001", "150", "us", "gb", "ie", "it", "pt", "es", "fr", "fx", "be", "lu", "nl", "de", "at", "ch", "se", "pl"}
NAME_TAGS = ("brand", "name", "operator")
# the detector's lower-case particles inside a name (`PARTICLES` in rust/src/scan/names/person.rs)
PARTICLES = {"van", "von", "de", "del", "della", "di", "da", "dos", "das", "do", "du", "la", "le", "y", "zu", "ten"}
PARTICLES |= {"ter", "af", "av", "der", "den"}
# a word as the detector reads it: letters, with `-` or an apostrophe between letters
WORD = re.compile("^[^\\W\\d_]+(?:[-'\u2019][^\\W\\d_]+)*$")


def stop_words(names_rs: Path) -> set[str]:
    """The detector's `STOP` list, read from its source."""
    src = names_rs.read_text(encoding="utf-8")
    body = src.split("const STOP: &[&str] = &[", 1)[1].split("];", 1)[0]
    return set(re.findall(r'"([^"]+)"', body))


def fold(s: str) -> str:
    """`s` without diacritics (`Élodie` → `Elodie`, `Łukasz` → `Lukasz`), as the detector folds."""
    s = s.replace("Ł", "L").replace("ł", "l")
    return "".join(c for c in unicodedata.normalize("NFD", s) if not unicodedata.combining(c))


def given_names(path: Path) -> tuple[set[str], set[str]]:
    names = {line.split("\t")[0] for line in path.read_text(encoding="utf-8").splitlines() if "\t" in line}
    return names, {fold(n) for n in names}


def is_given(w: str, names: set[str], folded: set[str]) -> bool:
    if w in names or fold(w) in folded:
        return True
    return "-" in w and is_given(w.split("-", 1)[0], names, folded)


def capitalised(w: str) -> bool:
    letters = [c for c in w if c.isalpha()]
    return w[0].isupper() and (len(letters) == 1 or not all(c.isupper() for c in letters))


def person_like(title: str, names: set[str], folded: set[str], stop: set[str]) -> str | None:
    """The words of `title` the detector would read as a name, or None."""
    words: list[str] = []
    for tok in unicodedata.normalize("NFC", title).split():
        if not WORD.match(tok) or tok in stop:
            break
        words.append(tok)
    # particles count only between capitalised words
    while words and words[-1] in PARTICLES:
        words.pop()
    caps = [w for w in words[1:] if w not in PARTICLES]
    if not (1 <= len(caps) <= 3) or not is_given(words[0], names, folded) or not capitalised(words[0]):
        return None
    if not all(capitalised(w) for w in caps):
        return None
    return " ".join(words)


def brand_names(data: list[dict]) -> list[str]:
    """The titles and aliases of simple-icons' brands."""
    out = []
    for icon in data:
        out.append(icon["title"])
        aliases = icon.get("aliases") or {}
        out += aliases.get("aka", [])
        out += [d["title"] for d in aliases.get("dup", [])]
        out += list(aliases.get("loc", {}).values())
    return out


def in_regions(item: dict) -> bool:
    for code in item.get("locationSet", {}).get("include", []):
        if isinstance(code, str) and code.split(".")[0].split("-")[0].lower() in REGIONS:
            return True
    return False


def nsi_names(data: dict) -> tuple[list[str], int]:
    """The names of NSI's brands and operators in the covered regions, and how many items gave them."""
    out, items = [], 0
    for key, category in data["nsi"].items():
        if not key.startswith(("brands/", "operators/")):
            continue
        for item in category["items"]:
            if not in_regions(item):
                continue
            items += 1
            out.append(item.get("displayName", ""))
            for tag, value in item.get("tags", {}).items():
                base, _, sub = tag.partition(":")
                if base in NAME_TAGS and sub not in ("wikidata", "wikipedia"):
                    out.append(value)
    return out, items


def main(argv: list[str]) -> None:
    here = Path(__file__).parent
    names, folded = given_names(here / "given_names.txt")
    stop = stop_words(here.parent / "src" / "scan" / "names" / "words.rs")
    icons = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    nsi, items = nsi_names(json.loads(Path(argv[1]).read_text(encoding="utf-8")))
    per_source = [brand_names(icons), nsi]
    kept_per = [{n for t in titles if (n := person_like(t, names, folded, stop))} for titles in per_source]
    kept = sorted(set().union(*kept_per))
    counts = [
        f"{len(k)} of the {len(set(t))} names of {src}"
        for k, t, (src, _) in zip(kept_per, per_source, SOURCES, strict=True)
    ]
    with (here / "brands.txt").open("w", encoding="utf-8") as f:
        f.write(f"# Brand names that read as a person's name: {len(kept)} in all;\n")
        f.write(f"# {counts[0]} ({len(icons)} brands);\n")
        f.write(f"# {counts[1]} ({items} brands and operators in the covered regions).\n")
        for src, licence in SOURCES:
            f.write(f"# Licence of {src.split(' (')[0]}: {licence}.\n")
        f.write("# Built by make_brands.py; see README.md. One name a line, NFC.\n")
        for n in kept:
            f.write(n + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
