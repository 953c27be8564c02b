"""Builds the name lexicon shipped in rust/data/ from its public sources (see README.md there).

    python rust/data/make_lexicon.py NAM_DICT DIST_ALL_LAST [WORDLIST ...]

NAM_DICT is `gender_guesser/data/nam_dict.txt` from the PyPI package gender-guesser 0.4.0 (Jörg
Michael's first-name dictionary, GNU FDL 1.2+); DIST_ALL_LAST is `names/dist.all.last` from the
PyPI package names 0.3.0 (US Census Bureau 1990 surname frequencies, public domain). WORDLISTs are
Debian's English word lists (`/usr/share/dict/american-english` of wamerican and
`british-english` of wbritish, both from SCOWL): a given name whose lower-case spelling is an
ordinary English word and which is not very common as a name (`Will`, `May`, `Grace`) is marked
ambiguous, and the scanner then needs more evidence before it calls it a name. Only English lists
are used: capitalised common words next to each other are an English (title case, sentence
start) problem, and the word lists of the other languages (inflected forms, loan words) flagged
over a fifth of all names (`Laura`, `Lucas`, `Donna`) in a first run. Only that flag is derived
from the word lists; no word from them is shipped.

Writes rust/data/given_names.txt (`name<TAB>flags`, flag `w`: also a common word) and
rust/data/surnames.txt (`name<TAB>flags`, flag `w`: also a common English word, like `Gold`,
`Sale`, `Smith`: such a surname does not confirm an ambiguous given name), both sorted, UTF-8.
"""

from __future__ import annotations

import sys
import unicodedata
from pathlib import Path

# nam_dict.txt country columns (gender_guesser.detector.Detector.COUNTRIES order) for the languages
# the scanner covers: English (GB, IE, US), Italian, Portuguese, Spanish, French (FR, BE, LU),
# Dutch (NL, BE), German (DE, AT, CH), Swedish, Polish.
COLUMNS = {
    "great_britain": 0,
    "ireland": 1,
    "usa": 2,
    "italy": 3,
    "portugal": 5,
    "spain": 6,
    "france": 7,
    "belgium": 8,
    "luxembourg": 9,
    "the_netherlands": 10,
    "germany": 12,
    "austria": 13,
    "swiss": 14,
    "sweden": 18,
    "poland": 23,
}
# A common word is ambiguous only for a name that is not very common (frequency class <= 7 of 13
# in every covered country): `Will`, `May`, `Grace` are flagged, `John`, `Maria`, `Hans` are not.
MAX_AMBIGUOUS_FREQ = 7
# Look-alikes flagged whatever their frequency: months, places and brands that are also given
# names, and very common names that are everyday English words (hand-written; language facts).
LOOKALIKES = {
    "April", "May", "June", "August", "Will", "Bill", "Grace", "Mark", "Rose", "Frank", "Guy",
    "Paris", "Florence", "Victoria", "Jordan", "Austin", "Dallas", "Sydney", "Madison", "Georgia",
    "Virginia", "Lincoln", "Chelsea", "Carolina", "Florida", "Savannah", "Brooklyn", "Kent",
    "Siri", "Alexa", "Mercedes", "Tesla", "Chanel", "Holland", "Jersey", "Lourdes", "Fatima",
    "Sofia", "Valencia", "Barcelona", "Roma", "Verona", "Vienna", "Geneva", "Lorraine",
    "Normandie", "Champagne", "Bordeaux", "Sevilla", "Toledo", "Granada", "Santiago", "Lucerne",
    "Christmas", "Easter", "Sunday", "Monday", "Friday", "Summer", "Winter", "Autumn", "Hope",
    "Faith", "Joy", "Charity", "Honey", "Amber", "Crystal", "Ivory", "Destiny", "Harmony",
    "Precious", "Miracle", "Royal", "Major", "Prince", "Princess", "King", "Duke", "Earl", "Baron",
    # function words of the other languages that title case capitalises (`Für Alle Nutzer`)
    "Alle", "Alles", "Ein", "Eine", "Aber", "Dies", "Mein", "Sein", "Bei", "Per", "Para", "Tutti",
    "Tutte", "Todo", "Toda", "Todos", "Tous", "Toutes", "Alla", "Allt", "Nie", "Tak", "Pour", "Avec",
    "Sans", "Nova", "Nuevo", "Nueva", "Nuovo", "Nuova", "Neue", "Nieuwe", "Calle", "Via", "Rue",
}
# surnames: the most frequent ones, covering about 90% of the 1990 US population
SURNAMES = 40_000


def given(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line or line[0] in "#=" or len(line) < 31 or line[29] == "+":
            continue
        name = line.split()[1]
        if "+" in name or len(name) < 2:
            continue
        freqs = line[30:-1]
        f = max((int(freqs[i], 16) for i in COLUMNS.values() if i < len(freqs) and freqs[i] != " "), default=0)
        if f:
            n = unicodedata.normalize("NFC", name)
            out[n] = max(out.get(n, 0), f)
    return out


def surnames(path: Path) -> list[str]:
    out = []
    for line in path.read_text(encoding="ascii").splitlines()[:SURNAMES]:
        name = line.split()[0]
        if len(name) >= 2:
            out.append(name[0] + name[1:].lower())
    return out


def words(paths: list[Path]) -> set[str]:
    out: set[str] = set()
    for p in paths:
        for w in p.read_text(encoding="utf-8", errors="replace").splitlines():
            if w and w[0].islower() and "'" not in w:
                out.add(unicodedata.normalize("NFC", w))
    return out


def main(argv: list[str]) -> None:
    here = Path(__file__).parent
    names = given(Path(argv[0]))
    common = words([Path(a) for a in argv[2:]])
    with (here / "given_names.txt").open("w", encoding="utf-8") as f:
        for n, freq in sorted(names.items()):
            ambiguous = n in LOOKALIKES or (n.lower() in common and freq <= MAX_AMBIGUOUS_FREQ)
            f.write(f"{n}\t{'w' if ambiguous else ''}\n")
    with (here / "surnames.txt").open("w", encoding="utf-8") as f:
        for n in sorted(set(surnames(Path(argv[1])))):
            f.write(f"{n}\t{'w' if n.lower() in common else ''}\n")


if __name__ == "__main__":
    main(sys.argv[1:])
