"""Builds the name lexicon shipped in rust/data/ from its public sources (see README.md there).

    python rust/data/make_lexicon.py NAM_DICT DIST_ALL_LAST ENGLISH_WORDLIST ... [--other WORDLIST ...]

    # as run for the shipped files (Debian 12 packages, versions in README.md):
    python rust/data/make_lexicon.py nam_dict.txt dist.all.last \
        /usr/share/dict/american-english /usr/share/dict/british-english \
        --other /usr/share/dict/{ngerman,french,spanish,italian,dutch,portuguese,polish,swedish}

NAM_DICT is `gender_guesser/data/nam_dict.txt` from the PyPI package gender-guesser 0.4.0 (Jörg
Michael's first-name dictionary, GNU FDL 1.2+); DIST_ALL_LAST is `names/dist.all.last` from the
PyPI package names 0.3.0 (US Census Bureau 1990 surname frequencies, public domain). The
ENGLISH_WORDLISTs are Debian's English word lists (`/usr/share/dict/american-english` of
wamerican and `british-english` of wbritish, both from SCOWL): a given name whose lower-case
spelling is an ordinary English word and which is not very common as a name (`Will`, `May`,
`Grace`) is marked ambiguous, and the scanner then needs more evidence before it calls it a name.
The WORDLISTs after `--other` are Debian's word lists of the other eight covered languages
(wngerman, wfrench, wspanish, witalian, wdutch, wportuguese, wpolish, wswedish): a given name
whose lower-case spelling is a word of 4 or more letters in one of them is marked ambiguous only
when it is among the rarest names (frequency class 1 in every covered country: Dutch `versie`
makes `Versie` ambiguous). Those lists are several times larger than the English ones (inflected
forms, loan words) and, with the English rule (class <= 7), flagged 2,497 more names, `Laura`,
`Vera`, `Sofie` among them, and cost PERSON recall in six languages. Only entries that start
lower-case are read (capitalised entries are proper nouns, and in German also common nouns,
which therefore flag nothing). Only that flag is derived from the word lists; no word from them
is shipped.

Writes rust/data/given_names.txt (`name<TAB>flags`, flag `w`: also a common word) and
rust/data/surnames.txt (`name<TAB>flags`, flag `w`: also a common English word, like `Gold`,
`Sale`, `Smith`: such a surname does not confirm an ambiguous given name; only the English lists
count here), both sorted, UTF-8.
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
# A word of one of the other eight languages' lists is ambiguous only for the rarest names
# (frequency class 1 in every covered country: `Versie`, `Miel`, `Chrétien`, `Morgana`): those
# lists are several times larger (inflected forms, loan words, names written lower-case), and from
# class 2 on they flag names in ordinary use that then need a US surname or a cue: PERSON recall
# fell on the labelled set (rust/data/README.md has the measurements). Entries of 1 to 3 letters
# are skipped: in those lists they are mostly abbreviations, syllables and inflected forms (Polish
# `ary`, `cy`, `ot`).
MAX_AMBIGUOUS_FREQ_OTHER = 1
OTHER_MIN_LEN = 4
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


def words(paths: list[Path], min_len: int = 1) -> set[str]:
    """The lower-case entries of word lists (capitalised entries are proper nouns, or German
    nouns), NFC; a list that is not UTF-8 is read as Latin-1 (Debian's Swedish list)."""
    out: set[str] = set()
    for p in paths:
        raw = p.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        for w in text.splitlines():
            if len(w) >= min_len and w[0].islower() and "'" not in w:
                out.add(unicodedata.normalize("NFC", w))
    return out


def main(argv: list[str]) -> None:
    here = Path(__file__).parent
    split = argv.index("--other") if "--other" in argv else len(argv)
    names = given(Path(argv[0]))
    common = words([Path(a) for a in argv[2:split]])
    other = words([Path(a) for a in argv[split + 1 :]], OTHER_MIN_LEN)
    with (here / "given_names.txt").open("w", encoding="utf-8") as f:
        for n, freq in sorted(names.items()):
            low = n.lower()
            ambiguous = (
                n in LOOKALIKES
                or (low in common and freq <= MAX_AMBIGUOUS_FREQ)
                or (low in other and freq <= MAX_AMBIGUOUS_FREQ_OTHER)
            )
            f.write(f"{n}\t{'w' if ambiguous else ''}\n")
    with (here / "surnames.txt").open("w", encoding="utf-8") as f:
        for n in sorted(set(surnames(Path(argv[1])))):
            f.write(f"{n}\t{'w' if n.lower() in common else ''}\n")


if __name__ == "__main__":
    main(sys.argv[1:])
