//! The name lexicon: given names, surnames and brands from `rust/data/`, loaded once, and the
//! lookups on it (a given name, a declined Polish given name, a surname, a brand).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

use super::read::{squeezed, Low};

/// A fast hash for short words (the rustc "Fx" multiply-rotate hash); the sets are built from
/// shipped data, so no one can choose colliding keys.
#[derive(Default)]
pub(super) struct Fx(u64);

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write(&[i]);
    }
    fn write_usize(&mut self, i: usize) {
        self.0 = (self.0.rotate_left(5) ^ i as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

pub(super) type FxBuild = BuildHasherDefault<Fx>;

pub(super) type Map<K, V> = HashMap<K, V, FxBuild>;

pub(super) type Set<K> = HashSet<K, FxBuild>;

const GIVEN: &str = include_str!("../../../data/given_names.txt");

const SURNAMES: &str = include_str!("../../../data/surnames.txt");

const BRANDS: &str = include_str!("../../../data/brands.txt");

pub(super) struct Lexicon {
    /// Given name → ambiguous (also a common word, month, place or brand).
    pub(super) given: Map<&'static [u8], bool>,
    /// The same, keyed by the name with its diacritics removed (`Élodie` finds `Elodie`).
    pub(super) folded: Map<Vec<u8>, bool>,
    /// Surnames, ASCII-lower-cased, that are not also common English words.
    pub(super) surnames: Set<Vec<u8>>,
    /// Brand names that read as a person's name (`Albert Heijn`, `John Deere`), diacritics
    /// removed ([`fold`]).
    pub(super) brands: Set<Vec<u8>>,
    /// The first words of [`Lexicon::brands`] (a prefilter: most names start with none).
    pub(super) brand_firsts: Set<Vec<u8>>,
}

pub(super) fn lexicon() -> &'static Lexicon {
    static LEX: OnceLock<Lexicon> = OnceLock::new();
    LEX.get_or_init(|| {
        let given: Map<&'static [u8], bool> = GIVEN
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(n, f)| (n.as_bytes(), f.contains('w')))
            .collect();
        let mut folded: Map<Vec<u8>, bool> = Map::default();
        for (&n, &a) in &given {
            let f = fold(n);
            // a spelling ambiguous in one form is ambiguous in all
            *folded.entry(f).or_insert(a) |= a;
        }
        let surnames = SURNAMES
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .filter(|(_, f)| !f.contains('w'))
            .map(|(n, _)| n.as_bytes().to_ascii_lowercase())
            .collect();
        let brands: Set<Vec<u8>> = BRANDS
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| fold(l.as_bytes()))
            .collect();
        let brand_firsts = brands
            .iter()
            .map(|b| b.split(|&c| c == b' ').next().unwrap_or(b).to_vec())
            .collect();
        Lexicon {
            given,
            folded,
            surnames,
            brands,
            brand_firsts,
        }
    })
}

/// `b` with the diacritics of Latin letters removed (`Élodie` → `Elodie`, `Łukasz` → `Lukasz`).
fn fold(b: &[u8]) -> Vec<u8> {
    if b.is_ascii() {
        return b.to_vec();
    }
    let s = String::from_utf8_lossy(b);
    let mut out = String::with_capacity(b.len());
    for c in s.chars() {
        let r = match c {
            'À'..='Å' => 'A',
            'à'..='å' => 'a',
            'Ç' | 'Ć' | 'Č' => 'C',
            'ç' | 'ć' | 'č' => 'c',
            'È'..='Ë' | 'Ę' | 'Ě' => 'E',
            'è'..='ë' | 'ę' | 'ě' => 'e',
            'Ì'..='Ï' => 'I',
            'ì'..='ï' => 'i',
            'Ñ' | 'Ń' | 'Ň' => 'N',
            'ñ' | 'ń' | 'ň' => 'n',
            'Ò'..='Ö' | 'Ø' | 'Ő' => 'O',
            'ò'..='ö' | 'ø' | 'ő' => 'o',
            'Ù'..='Ü' | 'Ů' | 'Ű' => 'U',
            'ù'..='ü' | 'ů' | 'ű' => 'u',
            'Ý' | 'Ÿ' => 'Y',
            'ý' | 'ÿ' => 'y',
            'Ł' => 'L',
            'ł' => 'l',
            'Ś' | 'Š' => 'S',
            'ś' | 'š' => 's',
            'Ź' | 'Ż' | 'Ž' => 'Z',
            'ź' | 'ż' | 'ž' => 'z',
            'Ř' => 'R',
            'ř' => 'r',
            _ => c,
        };
        out.push(r);
    }
    out.into_bytes()
}

impl Lexicon {
    /// Whether `b` is a given name, and if so whether it is ambiguous; a hyphenated name is
    /// looked up whole, then by its first part (`Hans-Jürgen`).
    pub(super) fn given(&self, b: &[u8]) -> Option<bool> {
        if let Some(&a) = self.given.get(b) {
            return Some(a);
        }
        if !b.is_ascii() {
            if let Some(&a) = self.folded.get(&fold(b)) {
                return Some(a);
            }
        }
        let k = b.iter().position(|&c| c == b'-')?;
        self.given(&b[..k])
    }

    /// Whether `b` is a given name as listed (not a declined form).
    pub(super) fn listed(&self, b: &[u8]) -> bool {
        self.given.contains_key(b) || (!b.is_ascii() && self.folded.contains_key(&fold(b)))
    }

    /// A Polish given name in another case than the nominative: `Annę`, `Anną`, `Anny`, `Marii`
    /// (`-a` names), `Piotra`, `Janem`, `Janowi` (names ending in a consonant). A form whose ending
    /// is a Polish letter (`ę`, `ą`) keeps the name's ambiguity; the others are ambiguous (`-a`,
    /// `-y`, `-em` end words of every language), so they need a surname or a cue.
    pub(super) fn declined(&self, b: &[u8]) -> Option<bool> {
        let n = b.len();
        if !(4..=24).contains(&n) {
            return None;
        }
        let mut buf = [0u8; 24];
        // the stem with `a` put back: `Annę` → `Anna`, `Anny` → `Anna`, `Marii` → `Maria`
        let with_a = |buf: &mut [u8; 24], stem: usize| -> Option<bool> {
            buf[..stem].copy_from_slice(&b[..stem]);
            buf[stem] = b'a';
            self.given.get(&buf[..=stem]).copied()
        };
        // `ę`, `ą`
        if let [0xC4, 0x99 | 0x85] = &b[n - 2..] {
            return with_a(&mut buf, n - 2);
        }
        if !b[n - 1].is_ascii_lowercase() {
            return None;
        }
        let found = match b[n - 1] {
            b'y' => with_a(&mut buf, n - 1),
            b'i' if n >= 5 && b[n - 2] == b'i' => with_a(&mut buf, n - 1),
            b'i' if n >= 6 && b.ends_with(b"owi") => self.given.get(&b[..n - 3]).copied(),
            b'a' => self.given.get(&b[..n - 1]).copied(),
            b'm' if b.ends_with(b"em") => self.given.get(&b[..n - 2]).copied(),
            _ => None,
        };
        found.map(|_| true)
    }

    /// Whether the name from `s` (its first word ending at `first`) is a brand's name: its words up
    /// to one of `ends` (the ends of its second, third, … word), diacritics removed, are a line of `brands.txt` (`Albert Heijn`, also
    /// in `Albert Heijn Bonus`).
    /// `spaced`: more than one space or a tab stands between the words (`Albert  Heijn`).
    pub(super) fn brand(&self, t: &[u8], s: usize, first: usize, ends: &[usize], spaced: bool) -> bool {
        let has = |set: &Set<Vec<u8>>, b: &[u8]| {
            let b = if spaced {
                squeezed(b)
            } else {
                std::borrow::Cow::Borrowed(b)
            };
            let b = &*b;
            if b.is_ascii() {
                set.contains(b)
            } else {
                set.contains(&fold(b))
            }
        };
        has(&self.brand_firsts, &t[s..first]) && ends.iter().any(|&e| has(&self.brands, &t[s..e]))
    }

    /// Whether `b` is a surname: a lexicon surname, a lexicon surname in the Polish instrumental
    /// or dative (`Nowakiem`, `Nowakowi`), or a word with the ending of a Polish or Slavic
    /// surname in any case (`-ski`, `-cka`, `-dzkiego`, `-ską`, `-wicz`, `-wiczem`).
    pub(super) fn surname(&self, b: &[u8]) -> bool {
        let low = Low::new(b);
        if low.len == 0 {
            return false;
        }
        let l = low.get();
        if self.surnames.contains(l) {
            return true;
        }
        // the endings all have `sk`, `ck`, `zk` or `wicz` in their last eight bytes
        let tail = &l[l.len().saturating_sub(8)..];
        if l.len() >= 6
            && tail.windows(2).any(|x| matches!(x, b"sk" | b"ck" | b"zk" | b"wi"))
            && SURNAME_ENDINGS
                .iter()
                .any(|x| l.len() >= x.len() + 3 && l.ends_with(x.as_bytes()))
        {
            return true;
        }
        // declined: `Nowakiem` → `Nowak`, `Nowakowi`, `Nowakowie` (not `-a`, `-u`: `Novella`)
        [&b"iem"[..], b"em", b"owi", b"owie"]
            .iter()
            .any(|e| l.len() >= e.len() + 4 && l.ends_with(e) && self.surnames.contains(&l[..l.len() - e.len()]))
    }
}

/// Endings of Polish surnames (adjectival `-ski`, `-cki`, `-dzki` in every case and gender, and
/// the patronymic `-wicz`), ASCII-lower-cased as [`Low`] leaves them (`ą` stays UTF-8).
#[rustfmt::skip]
const SURNAME_ENDINGS: &[&str] = &[
    "ski", "ska", "skiego", "skiemu", "skim", "ską", "skiej", "cki", "cka", "ckiego", "ckiemu", "ckim", "cką",
    "ckiej", "zki", "zka", "zkiego", "zkiemu", "zkim", "zką", "zkiej", "wicz", "wicza", "wiczem", "wiczowi",
    "wiczowie", "wiczówna",
];

/// Loads the lexicon (a scanner with `PERSON` does it once, at compile time, not on first scan).
pub fn warm() {
    lexicon();
}
