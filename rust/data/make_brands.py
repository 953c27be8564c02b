"""Builds rust/data/brands.txt, the brand names the PERSON detector grades down (see README.md).

    python rust/data/make_brands.py SIMPLE_ICONS_JSON

SIMPLE_ICONS_JSON is `data/simple-icons.json` of the npm package simple-icons 16.37.0 (CC0-1.0;
`npm pack simple-icons@16.37.0`): about 3,470 brands, each with a `title` and optional `aliases`
(`aka`: other names, `dup`: brands that share the icon, `loc`: localised names). Every one of
those names is considered; a name is kept when its words look like a person's name to the
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

SOURCE = "simple-icons 16.37.0 (npm), data/simple-icons.json"
LICENCE = "CC0-1.0"
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
    out = []
    for icon in data:
        out.append(icon["title"])
        aliases = icon.get("aliases") or {}
        out += aliases.get("aka", [])
        out += [d["title"] for d in aliases.get("dup", [])]
        out += list(aliases.get("loc", {}).values())
    return out


def main(argv: list[str]) -> None:
    here = Path(__file__).parent
    names, folded = given_names(here / "given_names.txt")
    stop = stop_words(here.parent / "src" / "scan" / "names" / "words.rs")
    data = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    titles = brand_names(data)
    kept = sorted({n for t in titles if (n := person_like(t, names, folded, stop))})
    with (here / "brands.txt").open("w", encoding="utf-8") as f:
        f.write(f"# Brand names that read as a person's name: {len(kept)} of the {len(titles)} names (titles and\n")
        f.write(f"# aliases) of {SOURCE} ({len(data)} brands).\n")
        f.write(f"# Licence of the source data: {LICENCE} (public domain dedication). Built by make_brands.py;\n")
        f.write("# see README.md. One name a line, NFC.\n")
        for n in kept:
            f.write(n + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
