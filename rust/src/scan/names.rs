//! `PERSON` and `ADDRESS`: personal names and postal street addresses in running text.
//!
//! Both are found from word starts, so a stream decides them like every other parser: a parser
//! started at a word reads at most [`MAX_SPAN`] normalized bytes after it (and [`LOOK_BEHIND`]
//! before it, inside the context a stream keeps) and answers `More` while the bytes it needs have
//! not arrived. The bytes past the span are never read, so any chunking gives the same findings,
//! and the stream's hold-back bound is the one of the other small types. `PERSON` runs at
//! capitals and non-ASCII letters (found 16 bytes at a time); `ADDRESS` only at word starts with a
//! digit within [`DIGIT_REACH`] bytes (an address always has a house number or a postcode), so
//! prose without digits costs it one SIMD pass.
//!
//! **Names** come from a lexicon shipped in `rust/data/` (given names of the nine covered
//! languages from Jörg Michael's first-name dictionary, surnames from the US Census; see the
//! README there). A word is a name when
//!
//! - a **title** stands right before it (`Mr`, `Dr.`, `Herr`, `Frau`, `M.`, `Mme`, `Sr.`, `Sra.`,
//!   `Sig.`, `Dhr.`, `Mevr.`, `Pan`, `Pani`, …): the capitalised words after the title. Its dot is
//!   optional, except for the one- and two-letter titles other than the English `Mr`, `Ms`, `Mx`
//!   and `Dr` (`M.`, `Fr.`, `Hr.`, `Sr.`: not an initial, Friday or Senior); an all-caps `MR`,
//!   `DR` or `MS` is no title, nor a `Dr` right after a capitalised word inside a sentence (a
//!   street's `Drive`: `on Ocean Dr Miami`), nor a title before a brand's or product's word
//!   (`Dr Martens`, `Dr. Pepper`, `Ms Word`);
//! - a **cue phrase** ends right before it (`my name is`, `customer`, `Kunde`, `je m'appelle`,
//!   `me llamo`, `mi chiamo`, `ik heet`, `nazywam się`, `jag heter`, `Dear`, …): the same;
//! - it is a **given name** of the lexicon followed by a capitalised word that is not a function
//!   word, month, weekday, street word or title (`Maria Schmidt`, `Jean-Luc Picard`, `Ana de la
//!   Cruz`). A given name that is also a common word, a month, a place or a brand (`Will`, `May`,
//!   `Grace`, `Paris`, `Victoria`; flagged in the lexicon) needs the next word to be a lexicon
//!   surname or given name (`Grace Hopper`, not `May Microsoft`).
//!
//! - Polish: a given name in another case (`Annę`, `Janem`, `Piotra`, `Marii`) is the name, an
//!   adjectival (`-ski`, `-cka`, `-dzkiego`, `-ską`) or patronymic (`-wicz`) surname in any case
//!   is a surname, and a capitalised word the lexicon does not know before a `-wicz`, `-czyk` or
//!   `-czak` surname is a given name (`Blanka Kolarczyk`); titles in every case (`Pana`, `Panią`).
//! - Dutch: lower-case titles with their dot (`dr.`, `mr.`, `ir.`), particles `van 't`, `in 't`,
//!   and a Dutch or German particle (`van`, `von`, `ter`) confirms an ambiguous given name (`Mark
//!   van Dijk`). An ambiguous given name and an unknown capitalised word between two lower-case
//!   words that are not English function words (`heeft Mark Bave het`) is graded 60: the
//!   ambiguity flags come from English word lists.
//! - A Roman numeral of two or more letters after a given name belongs to the name (`Koen VI`,
//!   `Henri IV`): a regnal name is a person.
//! - Not a name: the words after a car make (`Renault Clio`, `SEAT León`) or a make made of names
//!   (`Alfa Romeo`, `Aston Martin`); and a name right after a place or institution noun (`place
//!   Charles de Gaulle`, `Aeroporto Humberto Delgado`, `Galleria Vittorio Emanuele II`) or right
//!   before one (`Anne Frank Huis`, `Morgan Stanley Research`) is graded at most 45, counted and
//!   not redacted at the default threshold: the name is the place's.
//! - A brand made of names (`Albert Heijn`, `John Deere`; `brands.txt` in `rust/data/`, from the
//!   CC0 simple-icons data), alone or followed by more capitalised words of its name (`Albert
//!   Heijn Bonus`), is graded the same 45, unless a title or a cue phrase stands before it (`Mr.
//!   Albert Heijn`, `my name is John Deere`). The brand's words are the name's, already read: the
//!   rule reads nothing more.
//!
//! A lone capitalised word is never a name, so the capital at the start of a sentence is never
//! taken as evidence. The span covers the name words, not the title or cue.
//!
//! **Addresses** are a street with a house number, in the order of its language, optionally
//! followed by a secondary unit and a postcode and city:
//!
//! - number first (English, French): `221B Baker Street`, `12, rue de la Paix`, `1600 Pennsylvania
//!   Ave NW Suite 5`;
//! - street-type word first (Spanish, Italian, Portuguese, Polish, French): `Calle Mayor 5`,
//!   `Via Roma, 10`, `Rua Augusta, 100`, `ul. Długa 5`, `aleja Jana Pawła 12`;
//! - a street word last or as the end of a compound, then the number (German, Dutch, Swedish):
//!   `Hauptstraße 12`, `Berliner Str. 5a`, `Keizersgracht 123`, `Drottninggatan 5`;
//! - then `10115 Berlin`, `1015 BS Amsterdam`, `00-950 Warszawa`, `114 55 Stockholm`,
//!   `1100-148 Lisboa`, `Springfield, IL 62704-1234`, `Madrid, 28013`, `London⏎SW1A 1AA`.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

use super::detectors::{Out, Res};
use super::entity::Builtin;
use super::normalize::View;

/// Most normalized bytes a `PERSON` or `ADDRESS` parser reads from its start.
pub const MAX_SPAN: usize = 240;

/// Most normalized bytes a parser reads before its start (title, cue phrase, word boundary).
pub const LOOK_BEHIND: usize = 40;

/// A fast hash for short words (the rustc "Fx" multiply-rotate hash); the sets are built from
/// shipped data, so no one can choose colliding keys.
#[derive(Default)]
struct Fx(u64);

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

type FxBuild = BuildHasherDefault<Fx>;
type Map<K, V> = HashMap<K, V, FxBuild>;
type Set<K> = HashSet<K, FxBuild>;

const GIVEN: &str = include_str!("../../data/given_names.txt");
const SURNAMES: &str = include_str!("../../data/surnames.txt");
const BRANDS: &str = include_str!("../../data/brands.txt");

struct Lexicon {
    /// Given name → ambiguous (also a common word, month, place or brand).
    given: Map<&'static [u8], bool>,
    /// The same, keyed by the name with its diacritics removed (`Élodie` finds `Elodie`).
    folded: Map<Vec<u8>, bool>,
    /// Surnames, ASCII-lower-cased, that are not also common English words.
    surnames: Set<Vec<u8>>,
    /// Brand names that read as a person's name (`Albert Heijn`, `John Deere`), diacritics
    /// removed ([`fold`]).
    brands: Set<Vec<u8>>,
    /// The first words of [`Lexicon::brands`] (a prefilter: most names start with none).
    brand_firsts: Set<Vec<u8>>,
}

fn lexicon() -> &'static Lexicon {
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
    fn given(&self, b: &[u8]) -> Option<bool> {
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
    fn listed(&self, b: &[u8]) -> bool {
        self.given.contains_key(b) || (!b.is_ascii() && self.folded.contains_key(&fold(b)))
    }

    /// A Polish given name in another case than the nominative: `Annę`, `Anną`, `Anny`, `Marii`
    /// (`-a` names), `Piotra`, `Janem`, `Janowi` (names ending in a consonant). A form whose ending
    /// is a Polish letter (`ę`, `ą`) keeps the name's ambiguity; the others are ambiguous (`-a`,
    /// `-y`, `-em` end words of every language), so they need a surname or a cue.
    fn declined(&self, b: &[u8]) -> Option<bool> {
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
    fn brand(&self, t: &[u8], s: usize, first: usize, ends: &[usize]) -> bool {
        let has = |set: &Set<Vec<u8>>, b: &[u8]| {
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
    fn surname(&self, b: &[u8]) -> bool {
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

/// Titles and honorifics (compared exactly; a trailing `.` is optional, except for the short ones
/// not in [`DOTLESS`]).
#[rustfmt::skip]
const TITLES: &[&str] = &[
    "Mr", "Mrs", "Ms", "Mx", "Miss", "Dr", "Prof", "Sir", "Dame", "Lady", "Lord", "Herr", "Herrn", "Frau", "Fr",
    "Hr", "M", "MM", "Mme", "Mmes", "Mlle", "Monsieur", "Madame", "Mademoiselle", "Me", "Sr", "Sra", "Srta", "Dn",
    "Dña", "Don", "Doña", "Señor", "Señora", "señor", "señora", "Sig", "Sigg", "Sig.ra", "Sig.na", "Signor",
    "Signora", "signor", "signora", "Dott", "Dott.ssa", "Avv", "Ing", "Dhr", "Mevr", "Mw", "mevrouw", "meneer",
    "Pan", "Pani", "pan", "pani", "Panu", "Panem", "Sr.ª", "Senhor", "Senhora", "senhor", "senhora", "Dona", "Fru",
    "fru", "herr", "Fröken",
    // the Polish `Pan`/`Pani` in their other cases (`do Pana Nowaka`, `z Panią Kowalską`)
    "Pana", "pana", "Panią", "panią", "Panie", "panie", "Państwo", "państwo", "Państwa", "państwa",
];

/// Two-letter titles taken without their dot, as English writes them (`Mr Smith`, `Dr Watson`,
/// `Ms Jones`, `Mx Taylor`; also French `Dr Dupont`); the other short ones need it. An all-caps
/// `MR`, `DR` or `MS` is no title (imaging, a country code, a disease).
const DOTLESS: &[&[u8]] = &[b"Mr", b"Ms", b"Mx", b"Dr"];

/// A title and the word after it that name a brand or a product, not a person (`Dr Martens`,
/// `Dr. Pepper`, `Mr Muscle`, `Ms Word`): the title does not count, with or without its dot.
#[rustfmt::skip]
const NOT_TITLED: &[(&str, &str)] = &[
    ("Dr", "Martens"), ("Dr", "Pepper"), ("Dr", "Oetker"), ("Dr", "Scholl"), ("Dr", "Scholl's"), ("Dr", "Who"),
    ("Mr", "Muscle"), ("Mr", "Clean"), ("Mr", "Sheen"), ("Mr", "Kipling"), ("Ms", "Word"), ("Ms", "Excel"),
    ("Ms", "Office"), ("Ms", "Outlook"), ("Ms", "Teams"), ("Ms", "Access"), ("Ms", "PowerPoint"), ("Ms", "Paint"),
    ("Ms", "Edge"), ("Ms", "Windows"), ("Ms", "Project"), ("Ms", "Visio"), ("Ms", "Dos"),
];

/// Titles written in lower case before a name, taken only with their dot: Dutch academic and
/// courtesy titles (`dr. de Vries`, `mr. Jansen`, `ir. Bakker`, `drs.`, `ing.`, `prof.`), and
/// the same abbreviations in any language's running text.
#[rustfmt::skip]
const DOTTED_TITLES: &[&str] = &["dr", "drs", "mr", "ir", "ing", "prof", "dhr", "mevr", "mw", "mrs", "ms"];

/// Cue phrases that end right before a name (lower case; compared ignoring ASCII case).
#[rustfmt::skip]
const CUES: &[&str] = &[
    "my name is", "name is", "name:", "named", "customer", "client", "patient", "employee", "applicant",
    "contact person", "dear", "regards,", "sincerely,", "signed", "kunde", "kundin", "patientin", "mitarbeiter",
    "mitarbeiterin", "ansprechpartner", "ansprechpartnerin", "ich heiße", "ich bin", "mein name ist",
    "sehr geehrte", "sehr geehrter", "liebe", "lieber", "je m'appelle", "je m’appelle", "mon nom est", "le client",
    "la cliente", "cher", "chère", "me llamo", "mi nombre es", "el cliente", "la cliente", "estimado", "estimada",
    "mi chiamo", "il mio nome è", "il cliente", "gentile", "ik heet", "mijn naam is", "de klant", "geachte",
    "beste", "nazywam się", "klient", "klientka", "szanowny", "szanowna", "jag heter", "kunden", "kund",
    "meu nome é", "chamo-me", "me chamo", "o cliente", "a cliente", "prezado", "prezada",
];

/// Capitalised words that are never a surname after a given name, nor a name after a title.
#[rustfmt::skip]
const STOP: &[&str] = &[
    "The", "A", "An", "And", "Or", "But", "Of", "In", "On", "At", "To", "For", "By", "With", "From", "As", "Is",
    "It", "I", "We", "You", "He", "She", "They", "This", "That", "These", "Those", "If", "So", "Not", "No", "Yes",
    "My", "Our", "Your", "His", "Her", "Their", "Its", "Der", "Die", "Das", "Und", "Oder", "Ein", "Eine", "Le",
    "La", "Les", "Et", "Un", "Une", "Des", "El", "Los", "Las", "Y", "Il", "Lo", "Gli", "E", "De", "Het", "En",
    "Een", "O", "Os", "As", "Och", "Ett", "W", "Z", "I", "Del", "Della", "Delle", "Dei", "Degli", "Di", "Da", "Dos",
    "Do", "Du", "Des", "Inc", "Ltd", "LLC", "GmbH", "AG", "SA", "SL", "SpA", "BV",
    "AB", "Co", "Corp", "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
    "Januar", "Februar", "März", "Juni", "Juli", "Oktober", "Dezember", "Montag", "Dienstag", "Mittwoch",
    "Donnerstag", "Freitag", "Samstag", "Sonntag", "Street", "Avenue", "Road", "Lane", "Drive", "Boulevard",
    "Square", "Park", "Station", "Airport", "University", "College", "School", "Hospital", "Bank", "Group", "Team",
    "Company", "Foundation", "Institute", "Center", "Centre", "City", "County", "River", "Lake", "Mountain",
    "Island", "Bay", "Beach", "Hotel", "Church", "Cathedral", "Museum", "Hall", "Day", "Week", "Year", "Pro", "Max",
    "Plus", "Mini", "Ultra", "Edition", "Version", "Release", "Update", "Cloud", "Studio", "Office", "Team",
    "Manager", "Director", "Engineer", "Officer", "President", "CEO", "CTO", "CFO", "VP", "Senior", "Junior",
    "Lead", "Head", "Benz", "Air", "Red", "Blue", "North", "South", "East", "West", "New", "Old", "Saint", "San",
    "Santa", "Sankt",
    // greeting and salutation words (a title-case greeting is no name: `Feliz Navidad`, `Cher Client`)
    "Feliz", "Felices", "Felice", "Buon", "Buona", "Buone", "Bonne", "Bon", "Joyeux", "Joyeuses", "Joyeuse",
    "Próspero", "Prospero", "Frohe", "Frohes", "Fröhliche", "Happy", "Merry", "Boas", "Bom", "Boa", "Fijne",
    "Prettige", "Gelukkig", "Trevlig", "Trevliga", "God", "Gott", "Glad", "Glada", "Wesołych", "Szczęśliwego",
    "Hello", "Hi", "Hey", "Hola", "Hallo", "Olá", "Ciao", "Bonjour", "Bonsoir", "Hej", "Cześć", "Welcome",
    "Willkommen", "Bienvenue", "Bienvenido", "Bienvenida", "Benvenuto", "Benvenuti", "Welkom", "Välkommen",
    "Witamy", "Cher", "Chère", "Kära", "Liebe", "Lieber", "Liebes", "Querido", "Querida", "Caro", "Beste",
    "Bästa", "Drogi", "Droga", "Szanowny", "Szanowna", "Estimado", "Estimada", "Prezado", "Prezada", "Gentile",
    "Geachte", "Dear", "Dearest", "Regards", "Thanks", "Danke", "Merci", "Gracias", "Grazie", "Obrigado",
    "Obrigada", "Bedankt", "Tack",
    // place prefixes (`Vila Nova de Gaia`, `Nueva York`)
    "Vila", "Villa", "São", "Nova", "Novo", "Nueva", "Nuevo", "Neue", "Nouvelle", "Nuovo", "Nuova", "Nieuw",
    "Nieuwe", "Nowa", "Nowy",
    // words after an eponym in the name of an institution (`… Lyceum`, `… Stiftung`)
    "Lyceum", "Gymnasium", "Schule", "Liceo", "Lycée", "Colegio", "Escola", "Szkoła", "Skola", "Klinik",
    "Stiftung", "Fundación", "Fondazione", "Fundação", "Fondation", "Stichting", "Fundacja", "Stiftelse",
    "Institut", "Instituto", "Istituto", "Instytut", "Akademie", "Academy", "Universität", "Universidad",
    "Università", "Université", "Universidade", "Uniwersytet", "Universiteit", "Universitet", "Krankenhaus",
    "Ziekenhuis", "Ospedale", "Hôpital", "Szpital", "Sjukhus", "Award", "Prize", "Preis", "Prix", "Premio",
    "Prijs", "Nagroda", "Priset", "Bridge", "Brücke", "Pont", "Puente", "Ponte", "Brug", "Most", "Bron",
    // large cities that are also surnames (`Rome Florence Venice`)
    "London", "Paris", "Berlin", "Madrid", "Rome", "Roma", "Milan", "Milano", "Venice", "Venezia", "Vienna", "Wien",
    "Lisbon", "Lisboa", "Porto", "Amsterdam", "Rotterdam", "Brussels", "Warsaw", "Warszawa", "Krakow", "Stockholm",
    "Munich", "München", "Hamburg", "Frankfurt", "Zurich", "Zürich", "Geneva", "Genève", "Lyon", "Marseille",
    "Barcelona", "Sevilla", "Valencia", "Napoli", "Naples", "Torino", "Turin", "Florence", "Firenze", "Dublin",
    "Boston", "Chicago", "Houston", "Denver", "Phoenix", "Seattle", "Portland", "York", "Washington", "Jersey",
    "Orleans", "Vegas", "Angeles", "Francisco", "Diego", "Texas", "California",
];

/// Nouns that address a group or a role (lower case; ASCII case ignored): after a greeting they
/// are no name (`Dear Customer`, `Beste Klant`, `Szanowny Kliencie`, `Hello Team`).
#[rustfmt::skip]
const ADDRESSEES: &[&str] = &[
    "customer", "customers", "client", "clients", "cliente", "clienta", "clientes", "clientela", "kunde", "kundin",
    "kunden", "kund", "klant", "klanten", "klient", "kliencie", "klientka", "klientko", "member", "members",
    "medlem", "medlemmar", "team", "teamet", "equipe", "équipe", "equipo", "squadra", "zespole", "zespół", "damen",
    "herren", "heer", "heren", "mevrouw", "sir", "madam", "user", "users", "utilisateur", "utente", "usuario",
    "usuário", "użytkowniku", "użytkownik", "colleague", "colleagues", "kollege", "kollegen", "kollegin",
    "collègue", "collègues", "collega", "colleghi", "compañero", "compañeros", "collega's", "kollega", "kollegor",
    "friend", "friends", "freunde", "amis", "amici", "amigos", "vrienden", "vänner", "patient", "patientin",
    "paciente", "paziente", "pacjent", "pacjencie", "patiënt", "subscriber", "abonné", "abonnée", "assinante",
    "suscriptor", "abbonato", "abonnee", "prenumerant", "guest", "guests", "gast", "gäste", "gäst", "invité",
    "huésped", "ospite", "hóspede", "gość", "partner", "partners", "signore", "signora", "signori", "señor",
    "señora", "señores", "monsieur", "madame", "messieurs", "mesdames", "senhor", "senhora", "państwo",
    "valued", "all", "everyone", "everybody", "support", "staff", "applicant", "candidate", "bewerber",
    "candidat", "candidato", "kandidaat", "kandydat", "sökande", "reader", "leser", "lecteur", "lector",
    "lettore", "lezer", "czytelniku", "läsare", "owner", "inhaber", "titulaire", "titular", "titolare",
    "houder", "właściciel", "innehavare", "manager", "admin", "administrator", "teilnehmer", "participant",
];

/// Lower-case particles inside a name (`Ludwig van Beethoven`, `Ana de la Cruz`). The German
/// and Dutch articles `der`, `den` count only after `van` or `von` (`van der Berg`): on their own
/// they are articles before a noun (`Maria Schmidt den Bericht`).
#[rustfmt::skip]
const PARTICLES: &[&[u8]] = &[
    b"van", b"von", b"de", b"del", b"della", b"di", b"da", b"dos", b"das", b"do", b"du", b"la", b"le", b"y", b"zu",
    b"ten", b"ter", b"af", b"av",
];

/// Street-type words written before the street name (lower case; ASCII case ignored).
#[rustfmt::skip]
const STREET_BEFORE: &[&str] = &[
    // French
    "rue", "avenue", "av.", "boulevard", "bd", "bd.", "bld", "chemin", "place", "allée", "impasse", "quai", "route",
    "cours", "passage", "square", "voie", "faubourg", "sentier", "ruelle", "esplanade",
    // Spanish
    "calle", "c/", "avenida", "avda.", "avda", "plaza", "pza.", "paseo", "pº", "camino", "carrera", "ronda",
    "rambla", "travesía", "glorieta", "vía", "via", "callejón", "carretera", "urbanización", "vial", "pasaje", "c.",
    "cuesta", "acceso", "cañada", "senda", "bulevar", "costanilla", "plazuela", "ctra.", "camí", "carrer",
    "passeig", "polígono", "prolongación", "alameda", "pasadizo",
    // Italian
    "viale", "piazza", "p.zza", "piazzale", "corso", "largo", "strada", "vicolo", "contrada", "borgo", "lungomare",
    "rotonda", "salita", "v.le", "incrocio", "stretto", "traversa", "vico", "calle", "località", "loc.", "frazione",
    "lungotevere", "circonvallazione", "galleria", "passaggio", "quartiere", "rione", "canale",
    // Portuguese
    "rua", "r.", "av", "travessa", "praça", "praceta", "alameda", "estrada", "beco", "calçada", "ladeira",
    // Polish
    "ul.", "ulica", "ulicy", "al.", "aleja", "alei", "aleje", "plac", "pl.", "os.", "osiedle", "skwer",
];

/// Street-type words written after the street name, alone (`Baker Street`, `Berliner Straße`).
#[rustfmt::skip]
const STREET_AFTER: &[&str] = &[
    // USPS Publication 28, Appendix C1: the common primary suffixes and their abbreviations
    "street", "st", "st.", "avenue", "ave", "ave.", "av", "road", "rd", "rd.", "lane", "ln", "ln.", "drive", "dr",
    "dr.", "boulevard", "blvd", "blvd.", "court", "ct", "ct.", "place", "pl", "pl.", "terrace", "ter", "way", "wy",
    "circle", "cir", "parkway", "pkwy", "highway", "hwy", "square", "sq", "trail", "trl", "alley", "aly", "plaza",
    "plz", "crossing", "xing", "loop", "pike", "path", "point", "pt", "ridge", "rdg", "run", "row", "walk", "view",
    "vw", "heights", "hts", "hill", "hl", "park", "pass", "expressway", "expy", "freeway", "fwy", "turnpike",
    "tpke", "route", "rte", "crescent", "cres", "close", "mews", "gardens", "grove", "green", "glen", "gateway",
    "junction", "jct", "landing", "manor", "meadows", "mill", "mills", "harbor", "haven", "hollow", "knoll",
    "lodge", "mall", "oval", "orchard", "pines", "prairie", "ranch", "shore", "shores", "spring", "springs",
    "station", "sta", "summit", "track", "trace", "tunnel", "valley", "vly", "village", "vlg", "vista", "vis",
    "causeway", "cswy", "cove", "cv", "creek", "crk", "estates", "ests", "falls", "ferry", "field", "fields",
    "forest", "fork", "fort", "ft", "garden", "gdn", "island", "isle", "key", "lake", "lakes", "light", "lock",
    "mount", "mt", "mountain", "mtn", "neck", "overpass", "plain", "plains", "port", "rapids", "rest", "river",
    "skyway", "spur", "stream", "throughway", "underpass", "union", "viaduct", "ville", "well", "wells", "brook",
    "brooks", "branch", "bridge", "burg", "bypass", "camp", "canyon", "cape", "center", "centre", "cliff", "cliffs",
    "club", "common", "corner", "corners", "course", "courts", "dale", "dam", "divide", "extension", "ext", "flat",
    "flats", "ford", "forge", "freeway", "harbour", "inlet", "keys", "motorway", "radial", "ramp", "shoal",
    "stravenue", "trafficway", "parade", "wynd", "approach", "rise", "embankment", "ways", "lights", "locks",
    "meadow", "mdw", "mdws", "crest", "curve", "crossroad", "drives", "fords", "forks", "glens", "greens", "groves",
    "harbors", "havens", "hills", "islands", "junctions", "knolls", "loaf", "manors", "missions", "mounts", "parks",
    "parkways", "passage", "points", "ports", "ridges", "roads", "shoals", "squares", "streams", "streets",
    "tracks", "trails", "trailer", "unions", "valleys", "views", "villages", "vistas", "walks", "wall", "burgs",
    "centers", "circles", "commons", "coves", "extensions", "fall", "gardens", "fords", "mission", "mews", "ramp",
    "lodge",
    // German
    "straße", "strasse", "str.", "weg", "platz", "allee", "gasse", "ring", "damm", "ufer", "chaussee", "steig",
    "pfad", "markt", "berg",
    // Dutch
    "straat", "laan", "plein", "gracht", "kade", "singel", "dijk", "dreef", "hof", "pad", "steeg", "baan",
    // Swedish
    "gatan", "vägen", "gränd", "torget", "stigen", "backen", "allén", "gata", "väg", "torg",
];

/// Endings of compound street names (`Hauptstraße`, `Keizersgracht`, `Drottninggatan`).
#[rustfmt::skip]
const STREET_ENDINGS: &[&str] = &[
    "straße", "strasse", "str.", "weg", "platz", "allee", "gasse", "ring", "damm", "ufer", "chaussee", "steig",
    "pfad", "markt", "straat", "laan", "plein", "gracht", "kade", "singel", "dijk", "dreef", "hof", "pad", "steeg",
    "baan", "gatan", "vägen", "gränd", "torget", "stigen", "backen", "allén", "gata", "väg", "torg", "boulevard",
    "straatweg", "kanaal", "markt", "dal", "park",
];

/// Secondary unit words (`Apt. 5`, `Suite 100`, `Piso 3`, `Appartamento 12`, `m. 4`).
#[rustfmt::skip]
const UNITS: &[&str] = &[
    "apt", "apt.", "apartment", "suite", "ste", "ste.", "unit", "flat", "floor", "fl", "room", "rm", "#", "piso",
    "puerta", "pta.", "escalera", "esc.", "appartamento", "app.", "piano", "int.", "interno", "scala", "m.", "lok.",
    "bus", "etage", "whg.", "lgh", "bis", "ter", "bte", "hab.",
];

/// Two-letter US state and territory abbreviations (USPS).
#[rustfmt::skip]
const STATES: &[&[u8; 2]] = &[
    b"AL", b"AK", b"AZ", b"AR", b"CA", b"CO", b"CT", b"DE", b"DC", b"FL", b"GA", b"HI", b"ID", b"IL", b"IN", b"IA",
    b"KS", b"KY", b"LA", b"ME", b"MD", b"MA", b"MI", b"MN", b"MS", b"MO", b"MT", b"NE", b"NV", b"NH", b"NJ", b"NM",
    b"NY", b"NC", b"ND", b"OH", b"OK", b"OR", b"PA", b"RI", b"SC", b"SD", b"TN", b"TX", b"UT", b"VT", b"VA", b"WA",
    b"WV", b"WI", b"WY", b"AS", b"GU", b"MP", b"PR", b"VI", b"AA", b"AE", b"AP", b"MH", b"FM", b"PW",
];

/// Lower-case words allowed between the capitalised words of a street or city name.
#[rustfmt::skip]
const CONNECTORS: &[&str] = &[
    "de", "del", "della", "delle", "dei", "degli", "di", "da", "do", "dos", "das", "du", "des", "la", "las", "le",
    "les", "los", "l'", "d'", "y", "e", "et", "sur", "sous", "en", "am", "an", "im", "in", "der", "den", "dem",
    "zum", "zur", "bei", "van", "von", "upon", "on", "the", "of", "lès", "aan", "op", "ter", "ten", "i",
];

struct Words {
    titles: Set<&'static [u8]>,
    stop: Set<&'static [u8]>,
    before: Set<&'static [u8]>,
    after: Set<&'static [u8]>,
    units: Set<&'static [u8]>,
    connectors: Set<&'static [u8]>,
    /// Bit `k` of `before_shape[c]`: some [`STREET_BEFORE`] word is `k` bytes long and starts with
    /// ASCII letter `c` (a prefilter for the set lookup).
    before_shape: [u32; 26],
    /// [`STREET_ENDINGS`] by their last byte.
    endings: Vec<Vec<&'static [u8]>>,
    /// The last word of each cue phrase (`is` of `my name is`), to test a cue with one lookup.
    cue_ends: Set<Vec<u8>>,
    /// [`ADDRESSEES`], lower case.
    addressees: Set<Vec<u8>>,
    /// [`HEADS`], lower case.
    heads: Set<&'static [u8]>,
    /// Bit `k` of `heads_shape[c]`: some [`HEADS`] word is `k` bytes long and starts with ASCII
    /// letter `c` (a prefilter for the set lookup).
    heads_shape: [u32; 26],
    /// [`MAKES`].
    makes: Set<&'static [u8]>,
    /// Bit `k` of `makes_shape[c]`: some [`MAKES`] entry is `k` bytes long and starts with ASCII
    /// letter `c`, either case (a prefilter for the set lookup).
    makes_shape: [u32; 26],
    /// Bit `last` of `addressee_ends[first]`: some ASCII addressee starts with letter `first` and
    /// ends with letter `last` (a prefilter for the set lookup).
    addressee_ends: [u32; 26],
}

fn words() -> &'static Words {
    static W: OnceLock<Words> = OnceLock::new();
    W.get_or_init(|| {
        let set = |l: &[&'static str]| l.iter().map(|w| w.as_bytes()).collect();
        Words {
            titles: set(TITLES),
            stop: set(STOP),
            before: set(STREET_BEFORE),
            after: set(STREET_AFTER),
            units: set(UNITS),
            connectors: set(CONNECTORS),
            before_shape: {
                let mut m = [0u32; 26];
                for w in STREET_BEFORE {
                    let b = w.as_bytes();
                    if b[0].is_ascii_lowercase() && b.len() < 32 {
                        m[usize::from(b[0] - b'a')] |= 1 << b.len();
                    }
                }
                m
            },
            endings: (0..=255u8)
                .map(|c| {
                    STREET_ENDINGS
                        .iter()
                        .map(|x| x.as_bytes())
                        .filter(|x| x.last() == Some(&c))
                        .collect()
                })
                .collect(),
            addressees: ADDRESSEES.iter().map(|w| lower(w.as_bytes())).collect(),
            heads: set(HEADS),
            heads_shape: shape_of(HEADS),
            makes: set(MAKES),
            makes_shape: shape_of(MAKES),
            addressee_ends: {
                let mut m = [0u32; 26];
                for w in ADDRESSEES {
                    let b = w.as_bytes();
                    if let (Some(&f), Some(&l)) = (b.first(), b.last()) {
                        if f.is_ascii_lowercase() && l.is_ascii_lowercase() {
                            m[usize::from(f - b'a')] |= 1 << (l - b'a');
                        }
                    }
                }
                m
            },
            cue_ends: CUES
                .iter()
                .map(|c| {
                    let c = c.trim_end_matches(':');
                    c.rsplit(' ').next().unwrap_or(c).as_bytes().to_vec()
                })
                .collect(),
        }
    })
}

/// Bit `k` of entry `c`: some word of `list` is `k` bytes long (below 32) and starts with ASCII
/// letter `c` in either case; words starting otherwise are not recorded.
fn shape_of(list: &[&str]) -> [u32; 26] {
    let mut m = [0u32; 26];
    for w in list {
        let b = w.as_bytes();
        if b[0].is_ascii_alphabetic() && b.len() < 32 {
            m[usize::from(b[0].to_ascii_lowercase() - b'a')] |= 1 << b.len();
        }
    }
    m
}

/// Whether `b` may be in a list of shape `m` ([`shape_of`]): its first letter and length (a
/// word starting with a non-ASCII letter always may).
#[inline]
fn may_be(m: &[u32; 26], b: &[u8]) -> bool {
    match b.first() {
        // a word starting with a non-ASCII letter goes to the set
        Some(&c) if c >= 0x80 => true,
        Some(&c) if c.is_ascii_alphabetic() && b.len() < 32 => {
            m[usize::from(c.to_ascii_lowercase() - b'a')] & (1 << b.len()) != 0
        }
        _ => false,
    }
}

/// Parsing ran into text that has not arrived.
struct Need;

type R<T> = Result<T, Need>;

/// A bounded reader of the view from a parser's start: bytes at or past `lim` read as the end.
struct Rd<'a> {
    t: &'a [u8],
    eof: bool,
    lim: usize,
    v: &'a View<'a>,
    /// The parts an address parser found after the street ([`UNIT`], [`POSTCODE`]), for its
    /// confidence.
    parts: Cell<u8>,
}

/// An address part: a secondary unit (`Apt. 5`).
const UNIT: u8 = 1;
/// An address part: a postcode or a city line.
const POSTCODE: u8 = 2;

impl Rd<'_> {
    /// Whether original text was dropped between view bytes `i - 1` and `i`: a line break the
    /// view joined inside a number (`Hauptstraße 12⏎10115 Berlin` reads `1210115`), or an
    /// invisible character. Address parsers take it as the end of a number and a line break.
    #[inline]
    fn gap(&self, i: usize) -> bool {
        i > 0 && i < self.t.len() && self.v.orig(i) > self.v.orig_end(i - 1)
    }

    #[inline]
    fn get(&self, i: usize) -> R<Option<u8>> {
        if i >= self.lim {
            return Ok(None);
        }
        match self.t.get(i) {
            Some(&b) => Ok(Some(b)),
            None if !self.eof => Err(Need),
            None => Ok(None),
        }
    }

    /// The character at `i` and its length.
    fn ch(&self, i: usize) -> R<Option<(char, usize)>> {
        let Some(b) = self.get(i)? else { return Ok(None) };
        if b < 0x80 {
            return Ok(Some((char::from(b), 1)));
        }
        let w = match b {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => return Ok(Some(('\u{FFFD}', 1))),
        };
        for k in 1..w {
            if self.get(i + k)?.is_none() {
                return Ok(None);
            }
        }
        Ok(std::str::from_utf8(&self.t[i..i + w])
            .ok()
            .and_then(|s| s.chars().next())
            .map(|c| (c, w)))
    }
}

/// The character ending at `i` (exclusive) in `t`, if any.
fn char_before(t: &[u8], i: usize) -> Option<char> {
    if i == 0 {
        return None;
    }
    let mut j = i - 1;
    while j > 0 && i - j < 4 && (t[j] as i8) < -0x40 {
        j -= 1;
    }
    std::str::from_utf8(&t[j..i]).ok().and_then(|s| s.chars().next())
}

/// Whether a word may start at `i`: no letter, digit or word-joining mark right before it.
fn boundary(t: &[u8], i: usize) -> bool {
    if i > 0 && t[i - 1] < 0x80 {
        let c = t[i - 1];
        return !(c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'\'' | b'.' | b'_' | b'/' | b'@' | b'&' | b'#' | b'+' | b'=' | b'\\' | b'%' | b'$'
            ));
    }
    match char_before(t, i) {
        None => true,
        Some(c) => !(c.is_alphanumeric() || "-'’._/@&#+=\\%$€£".contains(c)),
    }
}

/// A word: letters, with `-` or an apostrophe between letters (`Jean-Luc`, `O'Brien`).
#[derive(Clone, Copy)]
struct Word {
    s: usize,
    e: usize,
    /// First letter upper-case, not all capitals (unless one letter).
    cap: bool,
    /// All letters upper-case.
    caps: bool,
    lower: bool,
}

fn read_word(r: &Rd, s: usize) -> R<Option<Word>> {
    let Some((c0, w0)) = r.ch(s)? else { return Ok(None) };
    if !c0.is_alphabetic() {
        return Ok(None);
    }
    let (mut e, mut letters, mut uppers) = (s + w0, 1usize, usize::from(c0.is_uppercase()));
    loop {
        // ASCII letters one byte at a time, without decoding
        while let Some(b) = r.get(e)? {
            if !b.is_ascii_alphabetic() {
                break;
            }
            e += 1;
            letters += 1;
            uppers += usize::from(b.is_ascii_uppercase());
        }
        match r.ch(e)? {
            Some((c, w)) if c.is_alphabetic() => {
                e += w;
                letters += 1;
                uppers += usize::from(c.is_uppercase());
            }
            Some(('-' | '\'' | '’', w)) => match r.ch(e + w)? {
                Some((d, _)) if d.is_alphabetic() => e += w,
                _ => break,
            },
            _ => break,
        }
    }
    let caps = uppers == letters;
    Ok(Some(Word {
        s,
        e,
        cap: c0.is_uppercase() && (!caps || letters == 1),
        caps,
        lower: c0.is_lowercase(),
    }))
}

fn lower(b: &[u8]) -> Vec<u8> {
    b.to_ascii_lowercase()
}

/// A short word, ASCII-lower-cased on the stack (every listed word is shorter than 24 bytes).
struct Low {
    buf: [u8; 24],
    len: usize,
}

impl Low {
    fn new(b: &[u8]) -> Low {
        let mut buf = [0u8; 24];
        let len = if b.len() <= 24 { b.len() } else { 0 };
        for (d, s) in buf.iter_mut().zip(&b[..len]) {
            *d = s.to_ascii_lowercase();
        }
        Low { buf, len }
    }

    fn get(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Whether the word is in `set` (a word too long for the buffer never is).
    fn in_set(&self, set: &Set<&'static [u8]>) -> bool {
        self.len > 0 && set.contains(self.get())
    }
}

/// The word `w` with a following `.` when there is one (`Dr.`, `ul.`, `Str.`).
fn with_dot(r: &Rd, w: &Word) -> R<usize> {
    Ok(if r.get(w.e)? == Some(b'.') { w.e + 1 } else { w.e })
}

/// Runs the `PERSON` and `ADDRESS` parsers at every word start from `base` where they can
/// answer anything but no: `PERSON` at capitals and non-ASCII letters (found 16 bytes at a time),
/// `ADDRESS` only within [`DIGIT_REACH`] bytes before a digit (and, in an unfinished stream,
/// before the end of the buffer, where a digit may still come).
pub fn round(person: bool, address: bool, v: &View, base: usize, out: &mut Out) {
    let t = v.t;
    let n = t.len();
    if person {
        for_each_capital(t, base, |i| {
            if boundary(t, i) {
                let r = reader(v, i);
                let (res, conf) = decide_scored(person_at(&r, i));
                out.put_conf(i, Builtin::Person.id(), res, conf);
            }
        });
    }
    if address {
        let mut covered = base;
        let mut d = base;
        while let Some(digit) = next_digit(t, d) {
            let lo = covered.max(digit.saturating_sub(DIGIT_REACH));
            address_range(v, lo, digit + 1, false, out);
            covered = digit + 1;
            // a digit run: its other digits start nothing new beyond the next one's reach
            d = digit + 1;
        }
        if !v.eof {
            // no digit yet in reach of these starts: a digit may still come, so they wait
            address_range(v, covered.max(n.saturating_sub(DIGIT_REACH)), n, true, out);
        }
    }
}

/// Whether original text was dropped right before view byte `i` (see [`Rd::gap`]).
fn r_gap(v: &View, i: usize) -> bool {
    i > 0 && i < v.t.len() && v.orig(i) > v.orig_end(i - 1)
}

fn reader<'a>(v: &'a View<'a>, i: usize) -> Rd<'a> {
    Rd {
        t: v.t,
        eof: v.eof,
        lim: i + MAX_SPAN,
        v,
        parts: Cell::new(0),
    }
}

/// Whether the word before the digit at `d` (`Hauptstraße 12`, `Baker Street, 5`) may be a
/// street-type word or end with one: a superset of what [`name_then_street_word`] accepts before
/// its house number, so that a `false` here lets a range skip that parser.
fn street_word_before(t: &[u8], d: usize) -> bool {
    let mut e = d;
    if e == 0 || t[e - 1] != b' ' {
        return false;
    }
    e -= 1;
    if e > 0 && t[e - 1] == b',' {
        e -= 1;
    }
    let mut s = e;
    while s > 0 && e - s < 64 && !matches!(t[s - 1], b' ' | b'\n' | b'\t' | b'\r' | b',') {
        s -= 1;
    }
    while s < e && t[s].is_ascii_punctuation() {
        s += 1;
    }
    let word = &t[s..e];
    let bare = word.strip_suffix(b".").unwrap_or(word);
    let ws = words();
    ends_street(word) || ends_street(bare) || Low::new(word).in_set(&ws.after) || Low::new(bare).in_set(&ws.after)
}

/// `ADDRESS` at every word start in `[lo, hi)` (with `wait`, each is marked as waiting for text).
fn address_range(v: &View, lo: usize, hi: usize, wait: bool, out: &mut Out) {
    let t = v.t;
    let n = t.len();
    let ws = words();
    // a capitalised word starts a street-word-last address only if the word before this range's
    // digit is a street word (the digit is the house number's first)
    let named = wait || hi == 0 || street_word_before(t, hi - 1) || (hi >= 2 && r_gap(v, hi - 1));
    let mut i = lo;
    while i < hi {
        let b = t[i];
        let starts = b.is_ascii_alphanumeric() || b >= 0xC0 || b == b'#';
        if !starts || !boundary(t, i) {
            i += 1;
            continue;
        }
        // a lower-case word starts an address only as a street-type word (`rue`, `ul.`)
        let lower_skip = b.is_ascii_lowercase() && {
            let mut e = i + 1;
            while e < n && e - i < 16 && t[e].is_ascii_alphabetic() {
                e += 1;
            }
            e < n
                && e - i < 16
                && !matches!(t[e], b'.' | b'/' | 0x80..=0xFF)
                && (ws.before_shape[usize::from(b - b'a')] & (1 << (e - i)) == 0 || !ws.before.contains(&t[i..e]))
        };
        if wait && !lower_skip {
            out.put(i, Builtin::Address.id(), Res::More);
            return;
        }
        // a capital that is no street-type word (`Calle`, `Via`) and no number: only the
        // street-word-last form is left, which needs `named`
        let cap_only = !named && b.is_ascii_uppercase() && {
            let mut e = i + 1;
            while e < n && e - i < 16 && t[e].is_ascii_alphabetic() {
                e += 1;
            }
            e < n && e - i < 16 && matches!(t[e], b' ' | b',' | b'\n') && !Low::new(&t[i..e]).in_set(&ws.before)
        };
        if !lower_skip && !cap_only {
            let r = reader(v, i);
            let res = decide(address_at(&r, i));
            out.put_conf(i, Builtin::Address.id(), res, address_confidence(r.parts.get()));
        }
        // the rest of an ASCII word starts nothing (what `boundary` would say byte by byte)
        i += 1;
        if b.is_ascii_alphanumeric() {
            while i < hi && t[i].is_ascii_alphanumeric() {
                i += 1;
            }
        }
    }
}

/// The first ASCII digit at or after `from`, 16 bytes at a time.
fn next_digit(t: &[u8], from: usize) -> Option<usize> {
    let n = t.len();
    let mut i = from;
    while i + 16 <= n {
        let m = digit_mask16(&t[i..i + 16]);
        if m != 0 {
            return Some(i + m.trailing_zeros() as usize);
        }
        i += 16;
    }
    t[i.min(n)..].iter().position(u8::is_ascii_digit).map(|k| i + k)
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn digit_mask16(block: &[u8]) -> u32 {
    use std::arch::x86_64::{__m128i, _mm_add_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8};
    debug_assert!(block.len() >= 16);
    // SAFETY: `block` has at least 16 readable bytes and SSE2 is part of the x86-64 baseline.
    unsafe {
        let x = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
        // '0'..='9' is 0x30..=0x39: shift it to -128..=-119, then one signed compare
        _mm_movemask_epi8(_mm_cmplt_epi8(
            _mm_add_epi8(x, _mm_set1_epi8(0x50)),
            _mm_set1_epi8(-128 + 10),
        )) as u32
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn digit_mask16(block: &[u8]) -> u32 {
    block[..16]
        .iter()
        .enumerate()
        .fold(0, |m, (k, &b)| m | (u32::from(b.is_ascii_digit()) << k))
}

/// Calls `f(i)` for every `i >= from` where `t[i]` is an ASCII capital or a UTF-8 lead byte.
fn for_each_capital(t: &[u8], from: usize, mut f: impl FnMut(usize)) {
    let n = t.len();
    let mut i = from;
    while i + 16 <= n {
        let mut m = capital_mask16(&t[i..i + 16]);
        while m != 0 {
            f(i + m.trailing_zeros() as usize);
            m &= m - 1;
        }
        i += 16;
    }
    while i < n {
        if t[i].is_ascii_uppercase() || t[i] >= 0xC0 {
            f(i);
        }
        i += 1;
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn capital_mask16(block: &[u8]) -> u32 {
    use std::arch::x86_64::{
        __m128i, _mm_add_epi8, _mm_cmpgt_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    debug_assert!(block.len() >= 16);
    // SAFETY: `block` has at least 16 readable bytes and SSE2 is part of the x86-64 baseline.
    unsafe {
        let x = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
        // 'A'..='Z' is 0x41..=0x5A: shift it to -128..=-103, then one signed compare
        let upper = _mm_cmplt_epi8(_mm_add_epi8(x, _mm_set1_epi8(0x3F)), _mm_set1_epi8(-128 + 26));
        // lead bytes 0xC0..=0xFF are -64..=-1 as signed bytes
        let lead = _mm_cmpgt_epi8(x, _mm_set1_epi8(-65));
        let neg = _mm_cmplt_epi8(x, _mm_set1_epi8(0));
        let lead = std::arch::x86_64::_mm_and_si128(lead, neg);
        _mm_movemask_epi8(_mm_or_si128(upper, lead)) as u32
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn capital_mask16(block: &[u8]) -> u32 {
    block[..16].iter().enumerate().fold(0, |m, (k, &b)| {
        m | (u32::from(b.is_ascii_uppercase() || b >= 0xC0) << k)
    })
}

fn decide(r: R<Option<usize>>) -> Res {
    match r {
        Ok(Some(e)) => Res::Yes(e),
        Ok(None) => Res::No,
        Err(Need) => Res::More,
    }
}

fn decide_scored(r: R<Option<(usize, u8)>>) -> (Res, u8) {
    match r {
        Ok(Some((e, conf))) => (Res::Yes(e), conf),
        Ok(None) => (Res::No, 0),
        Err(Need) => (Res::More, 0),
    }
}

/// An address's confidence by its parts: a street with a house number (or a street name and a
/// postcode line) 70, a secondary unit +10, a postcode or city line +20.
fn address_confidence(parts: u8) -> u8 {
    let mut conf = 70;
    if parts & UNIT != 0 {
        conf += 10;
    }
    if parts & POSTCODE != 0 {
        conf += 20;
    }
    conf.min(Builtin::Address.confidence())
}

/// The word after `e` separated by exactly one space.
fn next_word(r: &Rd, e: usize) -> R<Option<Word>> {
    if r.get(e)? != Some(b' ') {
        return Ok(None);
    }
    read_word(r, e + 1)
}

/// The last word before `s` (separated by spaces) and whether it ends with a `.`.
fn word_before(t: &[u8], s: usize) -> Option<(&[u8], bool)> {
    let lo = s.saturating_sub(LOOK_BEHIND);
    let mut e = s;
    while e > lo && t[e - 1] == b' ' {
        e -= 1;
    }
    if e == s || e == lo {
        return None;
    }
    let dot = t[e - 1] == b'.';
    let we = if dot { e - 1 } else { e };
    let mut ws = we;
    while ws > lo && !matches!(t[ws - 1], b' ' | b'\n' | b'\t' | b'(' | b'"' | b',' | b';') {
        ws -= 1;
    }
    (ws < we && (ws > lo || lo == 0)).then(|| (&t[ws..we], dot))
}

/// Whether a title stands right before the name whose first word is `name` (at `s`).
fn titled(t: &[u8], s: usize, name: &[u8]) -> bool {
    titled_by(t, word_before(t, s), name)
}

/// [`titled`] for the word before the name, as [`word_before`] gives it.
fn titled_by(t: &[u8], before: Option<(&[u8], bool)>, name: &[u8]) -> bool {
    let Some((w, dot)) = before else {
        return false;
    };
    let ws = words();
    if ws.titles.contains(w) {
        if NOT_TITLED
            .iter()
            .any(|&(a, b)| a.as_bytes() == w && b.as_bytes() == name)
        {
            return false;
        }
        if dot || w.len() > 2 {
            return true;
        }
        // the other one- and two-letter titles (`M`, `MM`, `Fr`, `Hr`, `Sr`, `Me`) only with
        // their dot (`M. Dupont`, not an initial or a size; `Fr.`, not Friday)
        if !DOTLESS.contains(&w) {
            return false;
        }
        // `Ocean Dr Miami`: a street's `Drive` after its capitalised name, mid-sentence
        let at = w.as_ptr() as usize - t.as_ptr() as usize;
        return !(w == b"Dr" && capital_before(t, at, word_before(t, at)));
    }
    if dot && w.len() <= 4 && w[0].is_ascii_lowercase() && DOTTED_TITLES.iter().any(|x| x.as_bytes() == w) {
        return true;
    }
    // `Sig.ra`, `Dott.ssa`, `Sr.ª`: the dot is inside
    dot && w.contains(&b'.') && ws.titles.contains(w)
}

fn cued(t: &[u8], s: usize) -> bool {
    let lo = s.saturating_sub(LOOK_BEHIND);
    let mut e = s;
    while e > lo && t[e - 1] == b' ' {
        e -= 1;
    }
    // `Name: Maria`, `Kunde: Schmidt`: a colon is part of the cue
    let colon = e > lo && t[e - 1] == b':';
    if colon {
        e -= 1;
        while e > lo && t[e - 1] == b' ' {
            e -= 1;
        }
    }
    // the last word before the name must end some cue phrase
    let mut ws = e;
    while ws > lo && !matches!(t[ws - 1], b' ' | b'\n' | b'\t' | b'(' | b'"' | b',' | b';') {
        ws -= 1;
    }
    if ws == e || !words().cue_ends.contains(Low::new(&t[ws..e]).get()) {
        return false;
    }
    let hay = lower(&t[lo..e]);
    CUES.iter().any(|c| {
        let c = c.as_bytes();
        let c = c.strip_suffix(b":").filter(|_| colon).unwrap_or(c);
        hay.ends_with(c) && {
            let k = hay.len() - c.len();
            k == 0 || !(hay[k - 1].is_ascii_alphanumeric() || hay[k - 1] >= 0x80)
        }
    })
}

fn is_stop(t: &[u8], w: &Word) -> bool {
    let ws = words();
    let b = &t[w.s..w.e];
    // street words that are also surnames (`Hill`, `Lane`, `Ford`) are not stop words: inside an
    // address the address starts first and wins
    let low = Low::new(b);
    ws.stop.contains(b)
        || ws.titles.contains(b)
        || low.in_set(&ws.before)
        || ends_street(b)
        // a place or institution noun ends a name unless it is a surname too (`Anne Frank Huis`,
        // but `Maria Hall`)
        || (may_be(&ws.heads_shape, low.get()) && low.in_set(&ws.heads) && !lexicon().surname(b))
}

fn ends_street(b: &[u8]) -> bool {
    let Some(&last) = b.last() else { return false };
    words().endings[usize::from(last.to_ascii_lowercase())]
        .iter()
        .any(|x| b.len() >= x.len() + 2 && b[b.len() - x.len()..].eq_ignore_ascii_case(x))
}

/// `PERSON` starting at the word at `s`: its end and its confidence.
///
/// The confidence grades the evidence (see docs/redaction-types.md, "Confidence"): a title before
/// the name 90; a cue phrase before a lexicon name 85, before two capitalised words 65, before one
/// capitalised word the lexicon does not know 45 (`Dear Zorblat`); a given name and a lexicon
/// surname 85 (an ambiguous given name, `Grace`, 70); a given name and a capitalised word the
/// lexicon does not know 65. A given name and a lexicon surname keep 85 wherever they stand; for
/// the others, a cue before the name raises them to 85, and without one a name at a sentence start
/// whose second word is unknown loses 10 (a title-case greeting), after a saint's or place prefix 30
/// (`Santa Maria Novella`), and inside a run of capitalised words (`Queen Elizabeth Olympic Park`)
/// 20 for a capitalised word before it and 25 for a capitalised stop word after it (a park, a
/// street, a team). A name without a lexicon surname in a title-case line ([`heading`])
/// loses 30; a name next to a place noun ([`head`]) or whose words are a brand's
/// ([`Lexicon::brand`]; no cue before it) gets at most [`EPONYM`]. A role or a
/// group among the words ([`ADDRESSEES`]: `Dear Customer`) or three words ending with a street
/// word (`Karl Marx Allee`) is no name.
fn person_at(r: &Rd, s: usize) -> R<Option<(usize, u8)>> {
    let t = r.t;
    let Some(w1) = read_word(r, s)? else { return Ok(None) };
    if !w1.cap {
        return Ok(None);
    }
    let lex = lexicon();
    // the cheap tests first: most capitalised words are no given name and follow no title or cue
    let mut given = lex.given(&t[s..w1.e]);
    // whether a capitalised word follows: the rules below that need one are not tried otherwise
    // (most capitals start a sentence of lower-case words)
    let cap_next = r.get(w1.e)? == Some(b' ')
        && match r.get(w1.e + 1)? {
            Some(b) if b < 0x80 => b.is_ascii_uppercase(),
            Some(_) => r.ch(w1.e + 1)?.is_some_and(|(c, _)| c.is_uppercase()),
            None => false,
        };
    if given.is_none() && cap_next {
        given = lex.declined(&t[s..w1.e]);
    }
    let evidence = given.is_none() && (titled(t, s, &t[s..w1.e]) || cued(t, s));
    // a word the lexicon does not know before a surname with a Polish patronymic or diminutive
    // ending (`Blanka Kolarczyk`, `Ada Mickiewicz`): graded as a given name and an unknown surname
    let morph = given.is_none()
        && !evidence
        && cap_next
        && match next_word(r, w1.e)? {
            Some(w) if w.cap => patronymic(&t[w.s..w.e]),
            _ => false,
        };
    if (given.is_none() && !evidence && !morph) || is_stop(t, &w1) {
        return Ok(None);
    }
    // the name words after the first: capitalised, with particles between them
    let mut end = w1.e;
    let mut count = 1;
    let mut second: Option<Word> = None;
    let mut at = w1.e;
    // a capitalised word right after the name that could not be part of it (`Park`, `Team`)
    let mut cap_after = false;
    let mut addressed = addressee(&t[w1.s..w1.e]);
    let mut last = w1;
    // a particle stood between the first word and the next (`Mark van Dijk`)
    let mut particle = false;
    // a regnal or generational numeral ends the name (`Karl V`, `Koen VI`, `John Smith III`)
    let mut numeral = false;
    // the ends of the capitalised words after the first (for [`Lexicon::brand`])
    let mut ends = [0usize; 3];
    while count < 4 {
        // Dutch `'t` after `van` or `in` (`van 't Hof`, `in 't Veld`)
        if at > w1.e && (t[..at].ends_with(b" van") || t[..at].ends_with(b" in")) {
            if let Some(e) = tick_t(r, at)? {
                at = e;
                continue;
            }
        }
        let Some(w) = next_word(r, at)? else { break };
        if w.caps && at == end && roman(&t[w.s..w.e]) {
            end = w.e;
            numeral = true;
            break;
        }
        if w.cap && !is_stop(t, &w) {
            if second.is_none() {
                second = Some(w);
            }
            addressed |= addressee(&t[w.s..w.e]);
            last = w;
            end = w.e;
            at = w.e;
            ends[count - 1] = w.e;
            count += 1;
            continue;
        }
        let article = matches!(&t[w.s..w.e], b"der" | b"den")
            && at >= 4
            && matches!(&t[at.saturating_sub(3)..at], b"van" | b"von");
        // `in` only as Dutch `in 't`
        let tick = &t[w.s..w.e] == b"in" && tick_t(r, w.e)?.is_some();
        if w.lower && (PARTICLES.contains(&&t[w.s..w.e]) || article || tick) {
            // a particle counts only before a capitalised word (`de la Cruz`)
            at = w.e;
            // Dutch and German particles (`van`, `von`, `ter`) mark a surname; Romance `de` is
            // also a place's (`Santiago de Compostela`)
            particle |= second.is_none() && matches!(&t[w.s..w.e], b"van" | b"von" | b"ter" | b"ten" | b"zu");
            continue;
        }
        cap_after = w.cap && at == end;
        break;
    }
    let known = |w: &Word| {
        let b = &t[w.s..w.e];
        lex.surname(b) || lex.given(b) == Some(false)
    };
    // `Dear Customer`, `Valued Member`, `Olá Equipe`: a role or a group, not a name
    if addressed {
        return Ok(None);
    }
    // a street name without a number (`Karl Marx Allee`, `Gustav Adolfs Torg`); a two-word name
    // may end with a street word that is also a surname (`Anna Berg`, `Maria Hill`)
    if count >= 3 && {
        let b = &t[last.s..last.e];
        Low::new(b).in_set(&words().after) || ends_street(b)
    } {
        return Ok(None);
    }
    let before = word_before(t, s);
    if titled_by(t, before, &t[s..w1.e]) {
        return Ok(Some((end, 90)));
    }
    // a model after a make (`Renault Clio`, `SEAT León Cupra`), or a make made of names
    // (`Alfa Romeo`, `Aston Martin`): a product
    let pair_before = before.is_some_and(|(w, _)| {
        let ws = w.as_ptr() as usize - t.as_ptr() as usize;
        ws + w.len() + 1 == s && make(&t[ws..w1.e])
    });
    if before.is_some_and(|(w, _)| make(w)) || pair_before || second.is_some_and(|w2| make(&t[w1.s..w2.e])) {
        return Ok(None);
    }
    // a place or an institution named after a person (`Lycée Victor Hugo`, `place Charles de
    // Gaulle`, `Aeroporto Humberto Delgado`, `Anne Frank Huis`): the name is the place's
    let eponym = before.is_some_and(|(w, dot)| !dot && head(w)) || head_after(r, end)?;
    // `evidence` is a cue already (no given name, no title); otherwise the cue is looked for only
    // when it can change the grade
    if evidence || (second.is_none() && cued(t, s)) {
        // after a cue phrase: how much the words themselves look like a name
        let mut conf: u8 = if given.is_some_and(|a| !a) || second.as_ref().is_some_and(known) {
            85
        } else if given.is_some() {
            70
        } else if count >= 2 {
            65
        } else {
            45
        };
        // a known name keeps its grade in a heading (`Maria Schmidt Annual Report`)
        if conf < 85 && heading(r, s)? {
            conf = conf.saturating_sub(HEADING);
        }
        if eponym {
            conf = conf.min(EPONYM);
        }
        return Ok(Some((end, conf)));
    }
    let Some(ambiguous) = given.or(morph.then_some(false)) else {
        return Ok(None);
    };
    // a given name and a numeral (`Koen VI`) is graded as a given name and an unknown surname
    if second.is_none() && (ambiguous || !numeral) {
        return Ok(None);
    }
    // a surname after a particle (`Mark van Dijk`, `Rose de Vries`) confirms an ambiguous name
    let surname =
        given.is_some() && (second.as_ref().is_some_and(known) || (particle && ambiguous && lex.listed(&t[s..w1.e])));
    let mut cue_seen = None;
    let mut cue = || *cue_seen.get_or_insert_with(|| cued(t, s));
    // an ambiguous name and an unknown word inside a sentence, between lower-case words (`heeft
    // Mark Bave het`), is graded lower; elsewhere (`Will Power`, `Grace Period Ends`) it needs a cue
    let inside = ambiguous && !surname && lex.listed(&t[s..w1.e]) && between_lower(r, t, s, end)?;
    if ambiguous && !surname && !inside && !cue() {
        return Ok(None);
    }
    let mut conf: u8 = match (ambiguous, surname) {
        (false, true) => 85,
        (true, true) => 70,
        (true, false) if inside => INSIDE,
        (true, false) => 70,
        (false, false) => 65,
    };
    // a given name and a lexicon surname keep their grade wherever they stand (`CEO Anna Nowak`);
    // otherwise the surroundings take off, unless a cue stands before the name
    if conf < 85 {
        let mut penalty: u8 = 0;
        if !surname && sentence_start(t, s) {
            penalty += 10;
        }
        if place_before(before) {
            penalty += 30;
        } else if capital_before(t, s, before) {
            penalty += 20;
        }
        if cap_after {
            penalty += 25;
        }
        if cue() {
            conf = 85;
        } else {
            conf = conf.saturating_sub(penalty);
        }
    }
    if !surname && heading(r, s)? {
        conf = conf.saturating_sub(HEADING);
    }
    // a brand made of names (`Albert Heijn`, `John Deere`), alone or with more words of its name
    // after it (`Albert Heijn Bonus`): graded like an eponym, unless a cue says it is a person (a
    // title before it has returned above)
    if eponym || (count >= 2 && lex.brand(t, s, w1.e, &ends[..count - 1]) && !cue()) {
        conf = conf.min(EPONYM);
    }
    Ok(Some((end, conf)))
}

/// An ambiguous given name and an unknown capitalised word between lower-case words.
const INSIDE: u8 = 60;

/// English function words: a lexicon flags a given name ambiguous because it is an English word
/// (`Mark`, `Rose`, `Grant`), so next to one of these the name is read as the English word
/// (`and Rose Gold is`, `beat Virginia Tech on`).
#[rustfmt::skip]
const ENGLISH: &[&[u8]] = &[
    b"the", b"a", b"an", b"and", b"or", b"but", b"nor", b"is", b"are", b"was", b"were", b"be", b"been", b"am",
    b"to", b"of", b"in", b"on", b"at", b"for", b"with", b"by", b"from", b"near", b"as", b"that", b"this",
    b"these", b"those", b"than", b"then", b"into", b"onto", b"over", b"under", b"about", b"after", b"before",
    b"via", b"per", b"has", b"have", b"had", b"will", b"would", b"can", b"could", b"should", b"may", b"might",
    b"must", b"do", b"does", b"did", b"not", b"its", b"it", b"their", b"our", b"your", b"his", b"her", b"my",
    b"we", b"they", b"you", b"he", b"she", b"who", b"which", b"what", b"when", b"where", b"while", b"if", b"so",
    b"up", b"out", b"off", b"vs", b"like", b"all", b"any", b"every", b"each", b"some", b"no", b"new", b"through",
    b"across", b"along", b"against", b"between", b"behind", b"beyond", b"during", b"until", b"since", b"without",
    b"within", b"toward", b"towards", b"upon", b"whose", b"whom", b"also", b"just", b"only", b"very", b"more",
    b"most", b"such", b"both", b"either", b"neither", b"other", b"another", b"same", b"own", b"there", b"here",
];

/// Whether the name from `s` to `e` stands inside a sentence that is not English: a lower-case
/// word right before it and right after it (one space each), neither of them an English function
/// word ([`ENGLISH`]).
fn between_lower(r: &Rd, t: &[u8], s: usize, e: usize) -> R<bool> {
    let Some((w, dot)) = word_before(t, s) else {
        return Ok(false);
    };
    let ws = w.as_ptr() as usize - t.as_ptr() as usize;
    if dot || ws + w.len() + 1 != s || !std::str::from_utf8(w).is_ok_and(|x| x.chars().all(char::is_lowercase)) {
        return Ok(false);
    }
    if ENGLISH.contains(&w) {
        return Ok(false);
    }
    let Some(n) = next_word(r, e)? else {
        return Ok(false);
    };
    Ok(n.lower && !ENGLISH.contains(&&t[n.s..n.e]))
}

/// Polish patronymic and diminutive surname endings (`-wicz`, `-czyk`, `-czak`) in the nominative,
/// genitive, instrumental and dative: words of that shape are surnames, not common nouns.
fn patronymic(b: &[u8]) -> bool {
    const ENDS: &[&[u8]] = &[
        b"wicz", b"wicza", b"wiczem", b"wiczowi", b"czyk", b"czyka", b"czykiem", b"czykowi", b"czak", b"czaka",
        b"czakiem", b"czakowi",
    ];
    b.len() >= 7 && ENDS.iter().any(|x| b.ends_with(x))
}

/// The most a name gets right after a place or institution noun, or right before one (see
/// [`head`]), or when it is a brand's name ([`Lexicon::brand`]): below the default threshold, so
/// counted and not redacted.
const EPONYM: u8 = 45;

/// Dutch `'t` (`van 't Hof`, `in 't Veld`) after `e`: its end.
fn tick_t(r: &Rd, e: usize) -> R<Option<usize>> {
    if r.get(e)? != Some(b' ') {
        return Ok(None);
    }
    let k = match r.get(e + 1)? {
        Some(b'\'') => e + 2,
        Some(0xE2) if r.get(e + 2)? == Some(0x80) && r.get(e + 3)? == Some(0x99) => e + 4,
        _ => return Ok(None),
    };
    Ok((r.get(k)? == Some(b't') && r.get(k + 1)? == Some(b' ')).then_some(k + 1))
}

/// A Roman numeral of two or more letters (`II`, `IV`, `VIII`, `XIV`): a regnal or generational
/// numeral after a name. One letter (`I`, `V`, `X`) is too often a pronoun, a size or a letter.
fn roman(b: &[u8]) -> bool {
    (2..=6).contains(&b.len())
        && b.iter().all(|c| matches!(c, b'I' | b'V' | b'X'))
        && !b.windows(4).any(|w| w.iter().all(|&c| c == w[0]))
        && !b.windows(2).any(|w| matches!(w, b"VV" | b"VX"))
}

/// Car and motorcycle makes, and makes made of names (`Alfa Romeo`): the capitalised words after
/// one are a model (`Renault Clio`, `Ford Mustang`), not a name.
#[rustfmt::skip]
const MAKES: &[&str] = &[
    "Alfa Romeo", "Aston Martin", "Land Rover", "Range Rover", "Rolls Royce", "Rolls-Royce", "Mercedes Benz",
    "Mercedes-Benz", "Mercedes", "Audi", "BMW", "Bentley", "Buick", "Cadillac", "Chevrolet", "Chrysler", "Citroën",
    "Citroen", "Cupra", "Dacia", "Dodge", "Ducati", "Ferrari", "Fiat", "FIAT", "Ford", "Genesis", "Honda",
    "Hyundai", "Jaguar", "Jeep", "Kawasaki", "Kia", "Lada", "Lamborghini", "Lancia", "Lexus", "Lincoln", "Lotus",
    "Maserati", "Mazda", "McLaren", "Mini", "MINI", "Mitsubishi", "Nissan", "Opel", "Peugeot", "Polestar",
    "Porsche", "Renault", "Saab", "Seat", "SEAT", "Škoda", "Skoda", "Smart", "Subaru", "Suzuki", "Tesla",
    "Toyota", "Vauxhall", "Volkswagen", "VW", "Volvo", "Yamaha",
    // Polish inflects them (`Skodę`, `Toyotą`, `Fiata`)
    "Skodę", "Skodą", "Skody", "Toyotę", "Toyotą", "Toyoty", "Fiata", "Fiatem", "Opla", "Oplem", "Forda",
    "Fordem", "Renaulta", "Volvem", "Audi",
];

fn make(w: &[u8]) -> bool {
    let ws = words();
    may_be(&ws.makes_shape, w) && ws.makes.contains(w)
}

/// Place and institution nouns that stand before or after the name of a person they are named
/// after, in the nine languages (lower case; ASCII case ignored): street words, squares, bridges,
/// stations, airports, stadiums, museums, theatres, schools, universities, hospitals, parks,
/// churches, houses, centres.
#[rustfmt::skip]
const HEADS: &[&str] = &[
    "place", "plaza", "piazza", "praça", "plac", "platz", "plein", "torg", "square", "pont", "ponte", "puente",
    "most", "brücke", "brug", "bron", "bridge", "station", "estación", "stazione", "estação", "stacja", "bahnhof",
    "gare", "airport", "aéroport", "aeroporto", "aeropuerto", "flughafen", "lotnisko", "luchthaven", "flygplats",
    "stadium", "stade", "stadio", "estadio", "estádio", "stadion", "museum", "musée", "museo", "museu", "muzeum",
    "galleria", "galerie", "galeria", "gallery", "theatre", "theater", "théâtre", "teatro", "teatr", "teater",
    "lycée", "collège", "liceo", "colegio", "escola", "escuela", "scuola", "école", "szkoła", "schule",
    "gymnasium", "school", "skola", "university", "universidad", "università", "université", "universidade",
    "uniwersytet", "universiteit", "universität", "universitet", "hospital", "hôpital", "ospedale", "szpital",
    "ziekenhuis", "krankenhaus", "sjukhus", "klinik", "clinic", "park", "parc", "parque", "parco", "parken",
    "church", "église", "iglesia", "chiesa", "igreja", "kościół", "kirche", "kerk", "kyrka", "huis", "haus",
    "house", "maison", "centrum", "centre", "center", "centro", "zentrum", "arena", "hall",
    "halle", "sala", "institute", "institut", "instituto", "istituto", "instytut", "stichting", "stiftung",
    "foundation", "fondation", "fundación", "fondazione", "fundação", "fundacja", "stiftelse", "research",
    "library", "bibliothek", "bibliothèque", "biblioteca", "biblioteka", "bibliotheek", "bibliotek", "tower",
    "turm", "torre", "tour", "toren", "wieża", "memorial", "monument", "pomnik", "avenue", "allee", "aleja",
    "rue", "rua", "ul",
];

fn head(w: &[u8]) -> bool {
    // `L'aéroport`, `dell'Ospedale`: the elided article is not the noun
    let w = match w.iter().position(|&c| c == b'\'') {
        Some(k) if k <= 4 => &w[k + 1..],
        _ if w.is_ascii() => w,
        _ => match w.windows(3).position(|x| x == "’".as_bytes()) {
            Some(k) if k <= 4 => &w[k + 3..],
            _ => w,
        },
    };
    let low = Low::new(w);
    if low.len == 0 {
        return false;
    }
    let ws = words();
    // a street word before a name (`rue`, `calle`, `aleja`), but not the short ones that are
    // also function words (`av` is Swedish `by`, `via` English)
    (may_be(&ws.heads_shape, low.get()) && low.in_set(&ws.heads))
        || (low.len >= 4 && low.in_set(&ws.before))
        || (!w.is_ascii() && std::str::from_utf8(w).is_ok_and(|x| ws.heads.contains(x.to_lowercase().as_bytes())))
}

/// Whether the word right after a name ending at `e` is a place or institution noun (`Anne Frank
/// Huis`, `Johan Cruijff ArenA`).
fn head_after(r: &Rd, e: usize) -> R<bool> {
    // most names are followed by a lower-case word or a punctuation mark
    if r.get(e)? != Some(b' ') || r.get(e + 1)?.is_some_and(|b| !b.is_ascii_uppercase() && b < 0xC0) {
        return Ok(false);
    }
    let Some(w) = next_word(r, e)? else { return Ok(false) };
    Ok(!w.lower && head(&r.t[w.s..w.e]))
}

/// Saints' and place prefixes: a given name after one is a place or a church (`Santa Cruz`,
/// `San José`, `Sankt Georg`, `São Paulo`), also at a sentence start.
const PLACE_PREFIXES: &[&[u8]] = &[
    b"Santa",
    b"Santo",
    b"San",
    b"Saint",
    b"Sainte",
    b"Sankt",
    b"St",
    b"Ste",
    b"S\xc3\xa3o",
    b"Vila",
    b"Villa",
    b"Port",
    b"Porto",
    b"Puerto",
    b"Fort",
    b"Mount",
    b"Monte",
    b"Lake",
    b"Cape",
    b"Cabo",
];

fn place_before(before: Option<(&[u8], bool)>) -> bool {
    before.is_some_and(|(w, _)| w.len() <= 6 && w[0].is_ascii_uppercase() && PLACE_PREFIXES.contains(&w))
}

/// What a name in a title-case line loses (see [`heading`]).
const HEADING: u8 = 30;

/// Whether `w` addresses a group or a role ([`ADDRESSEES`]), in any case.
fn addressee(w: &[u8]) -> bool {
    let ws = words();
    if w.is_ascii() {
        let (Some(f), Some(l)) = (w.first(), w.last()) else {
            return false;
        };
        let (f, l) = (f.to_ascii_lowercase(), l.to_ascii_lowercase());
        if !f.is_ascii_lowercase() || !l.is_ascii_lowercase() {
            // `collega's`: the set decides
            let low = Low::new(w);
            return low.len > 0 && ws.addressees.contains(low.get());
        }
        if ws.addressee_ends[usize::from(f - b'a')] & (1 << (l - b'a')) == 0 {
            return false;
        }
        let low = Low::new(w);
        return low.len > 0 && ws.addressees.contains(low.get());
    }
    std::str::from_utf8(w).is_ok_and(|x| ws.addressees.contains(x.to_lowercase().as_bytes()))
}

/// Whether the sentence around the word at `s` is a title-case line: at least five words, seven in
/// ten of them capitalised (`Feliz Año Nuevo a Todos Nuestros Clientes`, `Avis Important
/// Concernant Votre Abonnement`). Reads from [`HEADING_BACK`] bytes before `s` to [`HEADING_REACH`]
/// bytes after it, within the sentence, and at most [`HEADING_WORDS`] words.
fn heading(r: &Rd, s: usize) -> R<bool> {
    let t = r.t;
    let stop = |b: u8| matches!(b, b'.' | b'!' | b'?' | b'\n' | b'\r' | b';' | b':' | b'|');
    let sep = |b: u8| matches!(b, b' ' | b'\t' | b',' | b'(' | b')' | b'"' | b'-' | b'/');
    let mut lo = s;
    while lo > s.saturating_sub(HEADING_BACK) && !stop(t[lo - 1]) {
        lo -= 1;
    }
    let (mut words_n, mut caps) = (0u32, 0u32);
    let mut i = lo;
    // a word cut by the window's start is not counted
    let mut prev_sep = lo == 0 || sep(t[lo - 1]) || stop(t[lo - 1]);
    while i < s + HEADING_REACH && words_n < HEADING_WORDS {
        let Some(b) = (if i < s { Some(t[i]) } else { r.get(i)? }) else {
            break;
        };
        if stop(b) && i >= s {
            break;
        }
        if prev_sep && !sep(b) {
            // a word starts: count it if it starts with a letter
            if b.is_ascii_alphabetic() {
                words_n += 1;
                caps += u32::from(b.is_ascii_uppercase());
            } else if b >= 0xC0 {
                // before `s` the text has arrived; from `s` on, a character cut by the end of a
                // stream's buffer waits for the rest (`Rd::ch`)
                let c = if i < s {
                    std::str::from_utf8(&t[i..s]).ok().and_then(|x| x.chars().next())
                } else {
                    r.ch(i)?.map(|(c, _)| c)
                };
                if let Some(c) = c.filter(|c| c.is_alphabetic()) {
                    words_n += 1;
                    caps += u32::from(c.is_uppercase());
                }
            }
        }
        prev_sep = sep(b) || stop(b);
        i += 1;
    }
    Ok(words_n >= 5 && caps * 10 >= words_n * 7)
}

/// How far after a name's start [`heading`] reads.
const HEADING_REACH: usize = 56;
/// How far before a name's start [`heading`] reads.
const HEADING_BACK: usize = 32;
/// The most words [`heading`] counts.
const HEADING_WORDS: u32 = 10;

/// Whether the word at `s` starts a sentence, a line or the text (only spaces, quotes or an
/// opening bracket between it and a `.`, `!`, `?`, `:` or a line break).
fn sentence_start(t: &[u8], s: usize) -> bool {
    let lo = s.saturating_sub(LOOK_BEHIND);
    let mut i = s;
    while i > lo && matches!(t[i - 1], b' ' | b'"' | b'\'' | b'(' | b'[' | b'*' | b'#' | b'\t') {
        i -= 1;
    }
    if i == 0 {
        return true;
    }
    if i == lo {
        return false;
    }
    matches!(t[i - 1], b'.' | b'!' | b'?' | b':' | b'\n' | b'\r' | b'|' | b'-')
        || (i >= 3 && matches!(&t[i - 3..i], [0xE2, 0x80, 0x9C | 0x9E | 0x94 | 0x93]))
        || (i >= 2 && matches!(&t[i - 2..i], [0xC2, 0xA1 | 0xBF | 0xAB]))
}

/// Whether the word right before `s` (one space between) is capitalised and neither a title, a
/// sentence end nor a sentence's first word: the name is inside a run of capitalised words, as in
/// a heading or a place name.
fn capital_before(t: &[u8], s: usize, before: Option<(&[u8], bool)>) -> bool {
    if s < 2 || t[s - 1] != b' ' {
        return false;
    }
    let Some((w, dot)) = before else {
        return false;
    };
    if dot || w.is_empty() {
        return false;
    }
    let first = w[0];
    let cap = first.is_ascii_uppercase()
        || (first >= 0xC0
            && std::str::from_utf8(w)
                .ok()
                .and_then(|x| x.chars().next())
                .is_some_and(char::is_uppercase));
    if !cap || !w.iter().any(u8::is_ascii_lowercase) || words().titles.contains(w) {
        return false;
    }
    // the word before opens the sentence (`Ieri Marco Rossi`): its capital says nothing
    let ws = w.as_ptr() as usize - t.as_ptr() as usize;
    !sentence_start(t, ws)
}

/// An address is looked for only at word starts with a digit (house number or postcode) within
/// this many bytes; see [`round`].
const DIGIT_REACH: usize = 96;

/// `ADDRESS` starting at `s`: a house number, a street-type word or a capitalised word.
fn address_at(r: &Rd, s: usize) -> R<Option<usize>> {
    let t = r.t;
    let b = t[s];
    if b.is_ascii_digit() {
        return number_first(r, s);
    }

    let Some(w) = read_word(r, s)? else { return Ok(None) };
    let ws = words();
    let we = with_dot(r, &w)?;
    let lw = Low::new(&t[s..we]);
    let lw_bare = Low::new(&t[s..w.e]);
    if lw.in_set(&ws.before) || lw_bare.in_set(&ws.before) {
        // `ul.` / `Av` / `c/`: the street-type word, then the name and the number
        let mut e = if lw.in_set(&ws.before) { we } else { w.e };
        if r.get(e)? == Some(b'/') && lw_bare.get() == b"c" {
            e += 1;
        }
        if let Some(end) = street_name_then_number(r, e)? {
            return Ok(Some(end));
        }
        return Ok(None);
    }
    if w.cap {
        return name_then_street_word(r, s);
    }
    Ok(None)
}

/// Cue words of a date of birth (lower case; a cue is one of these at a word start, and the date
/// starts within [`DOB_CUE_REACH`] bytes after the cue's start).
#[rustfmt::skip]
const DOB_CUES: &[&str] = &[
    "born", "dob", "d.o.b", "date of birth", "birth date", "birthdate", "birthday", "geboren", "geb.",
    "geburtsdatum", "geburtstag", "né le", "née le", "né", "née", "date de naissance", "fecha de nacimiento",
    "nacido el", "nacida el", "nacimiento", "data di nascita", "nato il", "nata il", "nato", "nata",
    "geboortedatum", "geboren op", "data de nascimento", "nascido em", "nascida em", "data urodzenia", "urodzony",
    "urodzona", "urodzin", "född", "födelsedatum", "födelsedag",
];

/// Most bytes from the start of a cue to the start of its date (`Date of birth: 12/03/1985`).
const DOB_CUE_REACH: usize = 36;

/// Month names (lower case) of the nine languages, with their number.
#[rustfmt::skip]
const MONTHS: &[(&str, u8)] = &[
    ("january", 1), ("february", 2), ("march", 3), ("april", 4), ("may", 5), ("june", 6), ("july", 7),
    ("august", 8), ("september", 9), ("october", 10), ("november", 11), ("december", 12), ("januar", 1),
    ("jänner", 1), ("februar", 2), ("märz", 3), ("mai", 5), ("juni", 6), ("juli", 7), ("oktober", 10),
    ("dezember", 12), ("janvier", 1), ("février", 2), ("mars", 3), ("avril", 4), ("juin", 6), ("juillet", 7),
    ("août", 8), ("septembre", 9), ("octobre", 10), ("novembre", 11), ("décembre", 12), ("enero", 1),
    ("febrero", 2), ("marzo", 3), ("abril", 4), ("mayo", 5), ("junio", 6), ("julio", 7), ("agosto", 8),
    ("septiembre", 9), ("setiembre", 9), ("octubre", 10), ("noviembre", 11), ("diciembre", 12), ("gennaio", 1),
    ("febbraio", 2), ("aprile", 4), ("maggio", 5), ("giugno", 6), ("luglio", 7), ("settembre", 9), ("ottobre", 10),
    ("dicembre", 12), ("januari", 1), ("februari", 2), ("maart", 3), ("mei", 5), ("augustus", 8), ("oktober", 10),
    ("janeiro", 1), ("fevereiro", 2), ("março", 3), ("maio", 5), ("junho", 6), ("julho", 7), ("setembro", 9),
    ("outubro", 10), ("dezembro", 12), ("stycznia", 1), ("lutego", 2), ("marca", 3), ("kwietnia", 4), ("maja", 5),
    ("czerwca", 6), ("lipca", 7), ("sierpnia", 8), ("września", 9), ("października", 10), ("listopada", 11),
    ("grudnia", 12), ("mars", 3), ("maj", 5), ("augusti", 8),
];

/// `DATE_OF_BIRTH`: a date starting at a digit run within [`DOB_CUE_REACH`] bytes after a cue.
pub fn birth_dates(v: &View, base: usize, out: &mut Out) {
    let t = v.t;
    let mut d = base;
    while let Some(s) = next_digit(t, d) {
        d = s + 1;
        if s > 0 && t[s - 1].is_ascii_digit() || !boundary(t, s) {
            continue;
        }
        let r = reader(v, s);
        out.put(s, Builtin::DateOfBirth.id(), decide(dob_at(&r, s)));
    }
}

/// A date at `s` with a cue before it, or, in German and Dutch word order, `geboren` after it
/// (`am 12.03.1985 geboren`, `op 12-03-1985 geboren`).
fn dob_at(r: &Rd, s: usize) -> R<Option<usize>> {
    // the date first: most numbers are none, and the cue search costs more
    let Some(e) = date_at(r, s)? else { return Ok(None) };
    if dob_cued(r.t, s) {
        return Ok(Some(e));
    }
    let mut after = Vec::with_capacity(DOB_CUE_REACH);
    for k in e..e + DOB_CUE_REACH {
        match r.get(k)? {
            Some(b) if b.is_ascii_digit() || matches!(b, b'.' | b';' | b'!' | b'?' | b'\n') => break,
            Some(b) => after.push(b.to_ascii_lowercase()),
            None => break,
        }
    }
    let cue = after
        .windows(7)
        .enumerate()
        .any(|(k, w)| w == b"geboren" && (k == 0 || !after[k - 1].is_ascii_alphabetic()));
    Ok(cue.then_some(e))
}

/// Whether a cue starts at a word start within [`DOB_CUE_REACH`] bytes before `s` with no digit
/// and no sentence end between its end and `s` (the date is the first one after the cue, in the
/// same sentence).
fn dob_cued(t: &[u8], s: usize) -> bool {
    let lo = s.saturating_sub(DOB_CUE_REACH);
    let hay = lower(&t[lo..s]);
    DOB_CUES.iter().any(|c| {
        let c = c.as_bytes();
        hay.windows(c.len()).enumerate().any(|(k, w)| {
            w == c
                && (k == 0 && lo == 0 || k > 0 && !(hay[k - 1].is_ascii_alphanumeric() || hay[k - 1] >= 0x80))
                && !hay.get(k + c.len()).is_some_and(|b| b.is_ascii_alphabetic())
                && !hay[k + c.len()..]
                    .iter()
                    .any(|b| b.is_ascii_digit() || matches!(b, b'.' | b';' | b'!' | b'?' | b'\n'))
        })
    })
}

/// Digits at `i` (at most `max`); returns `(value, end)`.
fn digits(r: &Rd, i: usize, max: usize) -> R<Option<(u32, usize)>> {
    let (mut v, mut e) = (0u32, i);
    while e - i < max {
        match r.get(e)? {
            Some(b) if b.is_ascii_digit() => {
                v = v * 10 + u32::from(b - b'0');
                e += 1;
            }
            _ => break,
        }
    }
    if e == i || r.get(e)?.is_some_and(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    Ok(Some((v, e)))
}

fn valid(day: u32, month: u32, year: u32, year_len: usize) -> bool {
    (1..=31).contains(&day) && (1..=12).contains(&month) && (year_len == 2 || (1900..=2099).contains(&year))
}

/// A date at `s`: `12.03.1985`, `12/3/85`, `1985-03-12`, `12 March 1985`, `12. März 1985`,
/// `12 de marzo de 1985`, `3 maja 1985`.
fn date_at(r: &Rd, s: usize) -> R<Option<usize>> {
    let t = r.t;
    let Some((a, e1)) = digits(r, s, 4)? else {
        return Ok(None);
    };
    let len1 = e1 - s;
    let sep = r.get(e1)?;
    if let Some(sep @ (b'.' | b'/' | b'-')) = sep {
        if let Some((b, e2)) = digits(r, e1 + 1, 2)? {
            if r.get(e2)? == Some(sep) {
                if let Some((c, e3)) = digits(r, e2 + 1, 4)? {
                    let len3 = e3 - e2 - 1;
                    let ok = if len1 == 4 {
                        valid(c, b, a, 4)
                    } else {
                        len1 <= 2 && matches!(len3, 2 | 4) && (valid(a, b, c, len3) || valid(b, a, c, len3))
                    };
                    if ok && end_ok(r, e3)? {
                        return Ok(Some(e3));
                    }
                }
            }
        }
    }
    // textual: day, optional `.`, optional `de`, month name, optional `de`/`,`, year
    if len1 > 2 || !(1..=31).contains(&a) {
        return Ok(None);
    }
    let mut i = e1;
    if r.get(i)? == Some(b'.') {
        i += 1;
    }
    if r.get(i)? != Some(b' ') {
        return Ok(None);
    }
    i += 1;
    if let Some(w) = read_word(r, i)? {
        if &t[w.s..w.e] == b"de" && r.get(w.e)? == Some(b' ') {
            i = w.e + 1;
        }
    }
    let Some(m) = read_word(r, i)? else { return Ok(None) };
    let name = String::from_utf8_lossy(&t[m.s..m.e]).to_lowercase();
    if !MONTHS.iter().any(|(n, _)| *n == name) {
        return Ok(None);
    }
    let mut i = m.e;
    if r.get(i)? == Some(b',') {
        i += 1;
    }
    if r.get(i)? != Some(b' ') {
        return Ok(None);
    }
    i += 1;
    if let Some(w) = read_word(r, i)? {
        if matches!(&t[w.s..w.e], b"de" | b"del") && r.get(w.e)? == Some(b' ') {
            i = w.e + 1;
        }
    }
    let Some((y, e)) = digits(r, i, 4)? else {
        return Ok(None);
    };
    Ok((e - i == 4 && (1900..=2099).contains(&y) && end_ok(r, e)?).then_some(e))
}

/// A house number at `i`: `12`, `12a`, `12 bis`, `12/3`, `12-14`, `s/n`; returns its end.
fn house_number(r: &Rd, i: usize) -> R<Option<usize>> {
    let mut e = i;
    while e - i < 5 && r.get(e)?.is_some_and(|b| b.is_ascii_digit()) && (e == i || !r.gap(e)) {
        e += 1;
    }
    if r.gap(e) {
        return Ok(Some(e));
    }
    if e == i {
        // `S/N`, `s/n` (sin número, sem número)
        let g = [r.get(i)?, r.get(i + 1)?, r.get(i + 2)?];
        if matches!(g, [Some(b's' | b'S'), Some(b'/'), Some(b'n' | b'N')]) {
            return Ok(end_ok(r, i + 3)?.then_some(i + 3));
        }
        return Ok(None);
    }
    if r.get(e)?.is_some_and(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    // one letter (`221B`, `5a`)
    if let Some(b) = r.get(e)? {
        if b.is_ascii_alphabetic() && !r.get(e + 1)?.is_some_and(|c| c.is_ascii_alphanumeric()) {
            e += 1;
        }
    }
    // a range or a second number (`12-14`, `12/3`)
    if let Some(b'-' | b'/') = r.get(e)? {
        let mut k = e + 1;
        while k - e <= 4 && r.get(k)?.is_some_and(|b| b.is_ascii_digit()) && (k == e + 1 || !r.gap(k)) {
            k += 1;
        }
        if r.gap(k) {
            return Ok(Some(k));
        }
        if k > e + 1 && !r.get(k)?.is_some_and(|b| b.is_ascii_digit()) {
            e = k;
            if let Some(b) = r.get(e)? {
                if b.is_ascii_alphabetic() && !r.get(e + 1)?.is_some_and(|c| c.is_ascii_alphanumeric()) {
                    e += 1;
                }
            }
        }
    }
    Ok(end_ok(r, e)?.then_some(e))
}

/// Whether a number may end at `e`: not before a letter, a digit or a `.`/`,` plus a digit.
fn end_ok(r: &Rd, e: usize) -> R<bool> {
    Ok(match r.ch(e)? {
        None => true,
        Some((c, _)) if c.is_alphanumeric() => false,
        Some(('.' | ',' | ':', w)) => !r.get(e + w)?.is_some_and(|b| b.is_ascii_digit()),
        Some(_) => true,
    })
}

/// `221B Baker Street`, `12, rue de la Paix`, `1600 Pennsylvania Ave NW`.
fn number_first(r: &Rd, s: usize) -> R<Option<usize>> {
    let t = r.t;
    let Some(mut e) = house_number(r, s)? else {
        return Ok(None);
    };
    if e - s > 6 {
        return Ok(None);
    }
    // `12 bis`, `12 ter`
    if let Some(w) = next_word(r, e)? {
        if matches!(&t[w.s..w.e], b"bis" | b"ter" | b"quater") {
            e = w.e;
        }
    }
    let mut i = e;
    if r.get(i)? == Some(b',') {
        i += 1;
    }
    if r.get(i)? != Some(b' ') {
        return Ok(None);
    }
    i += 1;
    let Some(w) = read_word(r, i)? else { return Ok(None) };
    let ws = words();
    let we = with_dot(r, &w)?;
    let lw = Low::new(&t[w.s..we]);
    let lw_bare = Low::new(&t[w.s..w.e]);
    if !w.caps && (lw.in_set(&ws.before) || lw_bare.in_set(&ws.before)) {
        // French order: the number, the street-type word, the name
        let e0 = if lw.in_set(&ws.before) { we } else { w.e };
        let Some(end) = street_name(r, e0)? else {
            return Ok(None);
        };
        return tail(r, end);
    }
    // English order: capitalised words ending with a street-type word
    let mut at = i;
    let mut first = true;
    for _ in 0..5 {
        let w = if first {
            first = false;
            Some(w)
        } else {
            next_word(r, at)?
        };
        let Some(w) = w else { return Ok(None) };
        if !(w.cap || w.caps) {
            return Ok(None);
        }
        let we = with_dot(r, &w)?;
        let lw = Low::new(&t[w.s..we]);
        let lw_bare = Low::new(&t[w.s..w.e]);
        if at > i && (lw.in_set(&ws.after) || lw_bare.in_set(&ws.after)) {
            let mut end = if lw.in_set(&ws.after) { we } else { w.e };
            // a direction after the street (`Ave NW`)
            if let Some(d) = next_word(r, end)? {
                if matches!(&t[d.s..d.e], b"N" | b"S" | b"E" | b"W" | b"NE" | b"NW" | b"SE" | b"SW") {
                    end = d.e;
                }
            }
            return tail(r, end);
        }
        at = w.e;
    }
    Ok(None)
}

/// The name of a street after its street-type word (from `i`, which is at the space after it):
/// connectors and capitalised words, at least one capitalised. Returns the end of the last word.
fn street_name(r: &Rd, i: usize) -> R<Option<usize>> {
    let t = r.t;
    let ws = words();
    let mut at = i;
    let mut end = None;
    for _ in 0..7 {
        let k = at;
        let Some(w) = next_word(r, k)? else { break };
        let b = &t[w.s..w.e];
        if w.cap || w.caps || b.iter().all(u8::is_ascii_digit) {
            // an abbreviation inside the name (`Praça S. Bartolomeu`, `Avenida Prof. António`)
            let we = if w.cap && r.get(w.e)? == Some(b'.') && r.get(w.e + 1)? == Some(b' ') {
                w.e + 1
            } else {
                w.e
            };
            end = Some(w.e);
            at = we;
            continue;
        }
        // `de l'Église`, `d'Italia`: an elided article glued to the name
        if w.lower && (ws.connectors.contains(b) || b.starts_with(b"l'") || b.starts_with(b"d'")) {
            if b.len() > 2 && (b.starts_with(b"l'") || b.starts_with(b"d'")) {
                end = Some(w.e);
            }
            at = w.e;
            continue;
        }
        break;
    }
    Ok(end)
}

/// The street name and then the house number (`Calle Mayor 5`, `Via Roma, 10`), or a postcode
/// line when the number is missing (`rue Dupont⏎75001 Paris`).
fn street_name_then_number(r: &Rd, i: usize) -> R<Option<usize>> {
    let Some(end) = street_name(r, i)? else { return Ok(None) };
    let numbered = match number_after(r, end)? {
        Some(e) => tail(r, e)?,
        None => None,
    };
    // `chemin Gallet, 63347 Weissdan`: a postcode, not a house number
    Ok(numbered.max(postcode_city(r, end)?))
}

/// `, 12` or ` 12` after `end`: the house number's end.
fn number_after(r: &Rd, end: usize) -> R<Option<usize>> {
    let mut i = end;
    if r.get(i)? == Some(b',') {
        i += 1;
    }
    if r.get(i)? != Some(b' ') {
        return Ok(None);
    }
    house_number(r, i + 1)
}

/// `Hauptstraße 12`, `Berliner Str. 5`, `Hans-Müller-Weg 3`, `Keizersgracht 123`.
fn name_then_street_word(r: &Rd, s: usize) -> R<Option<usize>> {
    let t = r.t;
    let ws = words();
    let mut at = s;
    for k in 0..4 {
        let w = if k == 0 { read_word(r, s)? } else { next_word(r, at)? };
        let Some(w) = w else { return Ok(None) };
        if !w.cap {
            return Ok(None);
        }
        let we = with_dot(r, &w)?;
        let lw = Low::new(&t[w.s..we]);
        let dotted = lw.in_set(&ws.after);
        let alone = k > 0 && (dotted || Low::new(&t[w.s..w.e]).in_set(&ws.after));
        // a compound (`Hauptstraße`) starts its own address: words before it are not its name
        let compound = k == 0 && ends_street(&t[w.s..we]);
        if alone || compound {
            let end = if dotted || (compound && we > w.e && lw.get().ends_with(b"str.")) {
                we
            } else {
                w.e
            };
            let Some(e) = number_after(r, end)? else {
                return Ok(None);
            };
            return tail(r, e);
        }
        if ends_street(&t[w.s..we]) {
            return Ok(None);
        }
        at = w.e;
    }
    Ok(None)
}

/// After the house number: an optional unit (`Apt. 5`) and postcode and city.
fn tail(r: &Rd, e: usize) -> R<Option<usize>> {
    let t = r.t;
    let ws = words();
    let mut e = e;
    // a secondary unit: `Apt. 5`, `Suite 100`, `Piso 3`, `# 4`
    let mut i = e;
    if r.get(i)? == Some(b',') {
        i += 1;
    }
    if r.get(i)? == Some(b' ') {
        if let Some(w) = read_word(r, i + 1)?.or(if r.get(i + 1)? == Some(b'#') {
            Some(Word {
                s: i + 1,
                e: i + 2,
                cap: false,
                caps: false,
                lower: false,
            })
        } else {
            None
        }) {
            let we = with_dot(r, &w)?;
            let lw = Low::new(&t[w.s..we]);
            if lw.in_set(&ws.units) || Low::new(&t[w.s..w.e]).in_set(&ws.units) {
                let ue = if lw.in_set(&ws.units) { we } else { w.e };
                let mut k = ue;
                if r.get(k)? == Some(b' ') {
                    k += 1;
                }
                let mut d = k;
                while d - k < 6 && r.get(d)?.is_some_and(|b| b.is_ascii_alphanumeric()) && (d == k || !r.gap(d)) {
                    d += 1;
                }
                if d > k && t[k..d].iter().any(u8::is_ascii_digit) && (r.gap(d) || end_ok(r, d)?) {
                    e = d;
                    r.parts.set(r.parts.get() | UNIT);
                }
            }
        }
    }
    Ok(Some(postcode_city(r, e)?.unwrap_or(e)))
}

/// A separator between address lines: `, `, `,⏎`, `⏎`, ` `; returns where the next line starts.
fn line_sep(r: &Rd, i: usize) -> R<Option<usize>> {
    if r.gap(i) && r.get(i)?.is_some_and(|b| b.is_ascii_digit()) {
        return Ok(Some(i));
    }
    let mut k = i;
    if r.get(k)? == Some(b',') {
        k += 1;
    }
    // spaces before a line break belong to the break
    let mut sp = k;
    while sp - k < 3 && r.get(sp)? == Some(b' ') {
        sp += 1;
    }
    if sp > k && r.get(sp)? == Some(b'\n') {
        return Ok(Some(sp + 1));
    }
    match r.get(k)? {
        Some(b' ') => Ok(Some(k + 1)),
        Some(b'\n') => Ok(Some(k + 1)),
        Some(b'\r') if r.get(k + 1)? == Some(b'\n') => Ok(Some(k + 2)),
        _ => Ok(None),
    }
}

/// Digits at `i` in the shape `pat` (`9` a digit, `A` a capital, others literal).
fn shape(r: &Rd, i: usize, pat: &[u8]) -> R<bool> {
    for (k, &p) in pat.iter().enumerate() {
        let Some(b) = r.get(i + k)? else { return Ok(false) };
        let ok = match p {
            b'9' => b.is_ascii_digit(),
            b'A' => b.is_ascii_uppercase(),
            _ => b == p,
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(!r.get(i + pat.len())?.is_some_and(|b| b.is_ascii_alphanumeric()))
}

/// A city: one to four capitalised words, connectors between them; returns its end.
fn city(r: &Rd, i: usize) -> R<Option<usize>> {
    let t = r.t;
    let ws = words();
    let Some(w) = read_word(r, i)? else { return Ok(None) };
    if !(w.cap || w.caps) {
        return Ok(None);
    }
    let mut end = w.e;
    let mut at = w.e;
    for _ in 0..3 {
        let Some(n) = next_word(r, at)? else { break };
        if n.cap {
            end = n.e;
            at = n.e;
        } else if n.lower && ws.connectors.contains(&t[n.s..n.e]) {
            at = n.e;
        } else {
            break;
        }
    }
    Ok(Some(end))
}

/// Postcode and city after an address line ending at `e`; returns the new end.
fn postcode_city(r: &Rd, e: usize) -> R<Option<usize>> {
    let found = postcode_city_at(r, e)?;
    if found.is_some() {
        r.parts.set(r.parts.get() | POSTCODE);
    }
    Ok(found)
}

fn postcode_city_at(r: &Rd, e: usize) -> R<Option<usize>> {
    let t = r.t;
    let Some(i) = line_sep(r, e)? else { return Ok(None) };
    // the postcode first
    for pat in [&b"9999 AA"[..], b"9999AA", b"9999-999", b"99-999", b"999 99", b"99999"] {
        if shape(r, i, pat)? {
            let p = i + pat.len();
            let Some(c) = line_sep(r, p)? else { return Ok(Some(p)) };
            let Some(ce) = city(r, c)? else { return Ok(Some(p)) };
            // an Italian province (`(RM)`)
            if r.get(ce)? == Some(b' ') && r.get(ce + 1)? == Some(b'(') {
                if shape(r, ce + 2, b"AA)")? {
                    return Ok(Some(ce + 5));
                }
                if shape(r, ce + 2, b"AAA)")? {
                    return Ok(Some(ce + 6));
                }
            }
            return Ok(Some(ce));
        }
    }
    // the city first: `Springfield, IL 62704`, `Madrid, 28013`, `London⏎SW1A 1AA`
    let Some(ce) = city(r, i)? else { return Ok(None) };
    if r.get(ce)? == Some(b',') && r.get(ce + 1)? == Some(b' ') {
        let k = ce + 2;
        let st = [r.get(k)?, r.get(k + 1)?];
        if let [Some(a), Some(b)] = st {
            if STATES.contains(&&[a, b]) && r.get(k + 2)? == Some(b' ') {
                let z = k + 3;
                if shape(r, z, b"99999-9999")? {
                    return Ok(Some(z + 10));
                }
                if shape(r, z, b"99999")? {
                    return Ok(Some(z + 5));
                }
            }
        }
        if shape(r, k, b"99999")? {
            return Ok(Some(k + 5));
        }
    }
    if let Some(k) = line_sep(r, ce)? {
        if let Some(p) = uk_postcode(r, k)? {
            return Ok(Some(p));
        }
    }
    let _ = t;
    Ok(None)
}

/// A UK postcode at `i` (`SW1A 1AA`, `M1 1AE`, `B33 8TH`); returns its end.
fn uk_postcode(r: &Rd, i: usize) -> R<Option<usize>> {
    let mut k = i;
    let mut letters = 0;
    while letters < 2 && r.get(k)?.is_some_and(|b| b.is_ascii_uppercase()) {
        k += 1;
        letters += 1;
    }
    if letters == 0 || !r.get(k)?.is_some_and(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    k += 1;
    if r.get(k)?.is_some_and(|b| b.is_ascii_digit() || b.is_ascii_uppercase()) {
        k += 1;
    }
    if r.get(k)? != Some(b' ') {
        return Ok(None);
    }
    Ok(shape(r, k + 1, b"9AA")?.then_some(k + 4))
}

#[cfg(test)]
mod tests {
    use crate::scan::tests::{check_stream, everything};

    fn found(text: &str) -> Vec<(String, String)> {
        let s = everything();
        check_stream(s, text);
        s.scan(text)
            .iter()
            .map(|f| (s.entity_name(f.entity).to_string(), text[f.start..f.end].to_string()))
            .collect()
    }

    macro_rules! t {
        ($name:ident, $text:expr, [$(($e:expr, $v:expr)),*]) => {
            #[test]
            fn $name() {
                let want: Vec<(String, String)> = vec![$(($e.to_string(), $v.to_string())),*];
                assert_eq!(found($text), want, "{:?}", $text);
            }
        };
    }

    t!(p010, "Customer Maria Schmidt called.", [("PERSON", "Maria Schmidt")]);
    t!(
        p020,
        "Ticket from Jean-Luc Picard today",
        [("PERSON", "Jean-Luc Picard")]
    );
    t!(p030, "Sehr geehrte Frau Müller, danke.", [("PERSON", "Müller")]);
    t!(p040, "M. Dupont est arrivé.", [("PERSON", "Dupont")]);
    t!(p050, "Sent by Ana de la Cruz.", [("PERSON", "Ana de la Cruz")]);
    t!(p060, "me llamo Lucía Fernández", [("PERSON", "Lucía Fernández")]);
    t!(p070, "Nazywam się Zofia Wójcik.", [("PERSON", "Zofia Wójcik")]);
    t!(p080, "Grace Thompson wrote it", [("PERSON", "Grace Thompson")]);
    t!(p090, "In May Microsoft shipped it.", []);
    t!(p100, "Will you come? Bill me later. Paris is nice in April.", []);
    t!(p110, "We flew to Florence and Victoria Station.", []);
    t!(p120, "Maria called.", []);
    t!(p130, "The Senior Engineer and the Director met.", []);
    t!(
        p140,
        "Gestern hat Rudi Keudel den Bericht geschickt.",
        [("PERSON", "Rudi Keudel")]
    );
    t!(
        p150,
        "Signed by Anna van der Berg today",
        [("PERSON", "Anna van der Berg")]
    );
    // Polish: titles in other cases, declined given names, -ski/-cki surnames in every case
    t!(
        p160,
        "Proszę przekazać sprawę do Pana Tomasz Dusik.",
        [("PERSON", "Tomasz Dusik")]
    );
    t!(
        p170,
        "Wczoraj widziałem Annę Kowalską w biurze.",
        [("PERSON", "Annę Kowalską")]
    );
    t!(
        p180,
        "Rozmawiałem z Janem Nowakiem wczoraj.",
        [("PERSON", "Janem Nowakiem")]
    );
    t!(
        p190,
        "To jest samochód Piotra Wiśniewskiego, nie mój.",
        [("PERSON", "Piotra Wiśniewskiego")]
    );
    t!(
        p200,
        "Blanka Kolarczyk dzwoniła rano.",
        [("PERSON", "Blanka Kolarczyk")]
    );
    t!(p210, "Zamek Królewski otwiera wystawę.", []);
    // Dutch: lower-case dotted titles, `van 't`, an ambiguous name between non-English words
    t!(
        p220,
        "Stuur het door naar dr. Vajèn de Bruijn.",
        [("PERSON", "Vajèn de Bruijn")]
    );
    t!(p230, "Gisteren belde Anna van 't Hof.", [("PERSON", "Anna van 't Hof")]);
    t!(
        p240,
        "Gisteren heeft Mark Bave het gestuurd.",
        [("PERSON", "Mark Bave")]
    );
    t!(
        p250,
        "Gisteren heeft Mark van Dijk het gestuurd.",
        [("PERSON", "Mark van Dijk")]
    );
    t!(p260, "Mark the box and Rose Gold is the colour.", []);
    t!(p270, "Santiago de Compostela recibe peregrinos.", []);
    // a regnal numeral belongs to the name
    t!(p280, "Gisteren heeft Koen VI het gestuurd.", [("PERSON", "Koen VI")]);
    // makes and models, places and institutions named after people
    t!(p290, "Fiat Panda e Alfa Romeo Giulia sono in offerta.", []);
    t!(p300, "El SEAT León Cupra tiene una nueva versión.", []);
    t!(p310, "L'aéroport Charles de Gaulle annonce des retards.", []);
    t!(p320, "Het Anne Frank Huis is open.", []);
    t!(
        p330,
        "Avtalet undertecknades av Emma Wennberg i morse.",
        [("PERSON", "Emma Wennberg")]
    );
    // a brand made of names (brands.txt) is graded below the default threshold, also with more
    // words of its name after it; a title or a cue before it makes it a person
    t!(p340, "Bij de Albert Heijn XL is de zelfscan kapot.", []);
    t!(p350, "Philips Hue en Albert Heijn Bonus zijn populair.", []);
    t!(p360, "We ordered parts from John Deere last week.", []);
    t!(
        p370,
        "Yesterday Mr. Albert Heijn called the office.",
        [("PERSON", "Albert Heijn")]
    );
    t!(p380, "Hello, my name is John Deere.", [("PERSON", "John Deere")]);
    t!(p390, "Albert Heijnen called.", [("PERSON", "Albert Heijnen")]);

    // two-letter English titles without their dot (`Mr Smith`, `Dr Watson`), but not all-caps
    // abbreviations, a street's `Dr`, a brand or product after a title, nor the other short titles
    t!(p400, "Mr Albert Smith called.", [("PERSON", "Albert Smith")]);
    t!(p410, "Dr Watson said", [("PERSON", "Watson")]);
    t!(
        p420,
        "Ms Jones and Mx Taylor will call you back.",
        [("PERSON", "Jones"), ("PERSON", "Taylor")]
    );
    t!(
        p430,
        "Thanks, Dr Smith. Ask Dr Anna Weber too.",
        [("PERSON", "Smith"), ("PERSON", "Anna Weber")]
    );
    t!(p440, "I opened it in Ms Word, not MS Excel.", []);
    t!(p450, "The DR Congo orders MR imaging and MS Teams.", []);
    t!(p460, "Dr Martens boots and Dr. Pepper are on offer.", []);
    t!(p470, "Mr Muscle and Dr Oetker pizza are in aisle Dr Who.", []);
    t!(p480, "She lives on Ocean Dr Miami Beach now.", []);
    t!(p490, "Fr Brown, Hr Müller, Sr Garcia, Me Dupont and M Durand.", []);

    #[test]
    fn a_dotless_title_grades_like_a_dotted_one() {
        let s = super::super::tests::everything();
        let scored = |text: &str| -> Vec<(String, u8)> {
            s.scan_scored(text)
                .iter()
                .map(|f| (text[f.start..f.end].to_string(), f.confidence))
                .collect()
        };
        for text in ["Mr Albert Smith called.", "Mr. Albert Smith called."] {
            assert_eq!(scored(text), [("Albert Smith".to_string(), 90)], "{text:?}");
        }
        assert_eq!(
            scored("Merci à Dr Anaïs Toussaint."),
            [("Anaïs Toussaint".to_string(), 90)]
        );
        // a street's `Dr` after its capitalised name, even after a sentence's first word
        assert!(scored("Yesterday Ocean Dr Miami was closed.").is_empty());
    }

    #[test]
    fn a_brand_is_counted_below_the_threshold() {
        let s = super::super::tests::everything();
        let scored = |text: &str| -> Vec<(String, u8)> {
            s.scan_scored(text)
                .iter()
                .map(|f| (text[f.start..f.end].to_string(), f.confidence))
                .collect()
        };
        // found and graded (so counted as below its threshold), not acted on
        assert_eq!(
            scored("Bij de Albert Heijn XL is het druk."),
            [("Albert Heijn".to_string(), super::EPONYM)]
        );
        assert!(s.scan("Bij de Albert Heijn XL is het druk.").is_empty());
        // a title before the brand's words: a person
        assert_eq!(
            scored("Bij dhr. Albert Heijn is het druk."),
            [("Albert Heijn".to_string(), 90)]
        );
        // diacritics removed on both sides (`é`), and a combining mark removed by the view
        assert!(s.scan("Wir fahren zu Albért Heijn.").is_empty());
        assert!(s.scan("Wir fahren zu Albe\u{301}rt Heijn.").is_empty());
        // the first words of a longer name are no brand of their own (`Albert` alone is none)
        assert_eq!(scored("Gestern hat Albert Schmidt angerufen.")[0].1, 85);
    }

    t!(
        a010,
        "Send it to Hauptstraße 12, 10115 Berlin please",
        [("ADDRESS", "Hauptstraße 12, 10115 Berlin")]
    );
    t!(a020, "at 221B Baker Street, London", [("ADDRESS", "221B Baker Street")]);
    t!(
        a030,
        "12, rue de la Paix\n75002 Paris",
        [("ADDRESS", "12, rue de la Paix\n75002 Paris")]
    );
    t!(
        a040,
        "Calle Mayor 5, Madrid, 28013",
        [("ADDRESS", "Calle Mayor 5, Madrid, 28013")]
    );
    t!(
        a050,
        "Via Roma, 10\n00184 Roma (RM)",
        [("ADDRESS", "Via Roma, 10\n00184 Roma (RM)")]
    );
    t!(
        a060,
        "ul. Długa 5\n00-950 Warszawa",
        [("ADDRESS", "ul. Długa 5\n00-950 Warszawa")]
    );
    t!(
        a070,
        "Keizersgracht 123\n1015 CJ Amsterdam",
        [("ADDRESS", "Keizersgracht 123\n1015 CJ Amsterdam")]
    );
    t!(
        a080,
        "Drottninggatan 5, 111 51 Stockholm",
        [("ADDRESS", "Drottninggatan 5, 111 51 Stockholm")]
    );
    t!(
        a090,
        "Rua Augusta, 100\n1100-053 Lisboa",
        [("ADDRESS", "Rua Augusta, 100\n1100-053 Lisboa")]
    );
    t!(
        a100,
        "1600 Pennsylvania Ave NW\nWashington, DC 20500-0003",
        [("ADDRESS", "1600 Pennsylvania Ave NW\nWashington, DC 20500-0003")]
    );
    t!(a110, "We sold 12 Apples and 3 Pears in 2023.", []);
    t!(a120, "Berliner Str. 5a", [("ADDRESS", "Berliner Str. 5a")]);
    t!(
        d010,
        "DOB: 12/03/1985; the ticket was opened on 12/03/2024",
        [("DATE_OF_BIRTH", "12/03/1985")]
    );
    t!(
        d020,
        "geboren am 3. März 1990 in Köln",
        [("DATE_OF_BIRTH", "3. März 1990")]
    );
    t!(d030, "née le 14 juillet 1972", [("DATE_OF_BIRTH", "14 juillet 1972")]);
    t!(
        d040,
        "fecha de nacimiento: 5 de mayo de 1968",
        [("DATE_OF_BIRTH", "5 de mayo de 1968")]
    );
    t!(d050, "Date of birth 1985-03-12.", [("DATE_OF_BIRTH", "1985-03-12")]);
    t!(d060, "born 45/13/1985 and reborn 12.03.85", []);
    t!(d070, "The invoice of 12/03/1985 is due.", []);
    t!(d075, "geb. 12.03.85 in Ulm", [("DATE_OF_BIRTH", "12.03.85")]);
    t!(
        d080,
        "Er ist am 12.03.1985 geboren; Termin am 05.06.2025.",
        [("DATE_OF_BIRTH", "12.03.1985")]
    );
    t!(d090, "Born in Paris. Visit on 05.06.2025.", []);

    #[test]
    fn digit_scan_finds_the_next_digit() {
        let text: Vec<u8> = (0u8..=255).cycle().take(700).collect();
        for from in 0..text.len() {
            let want = (from..text.len()).find(|&i| text[i].is_ascii_digit());
            assert_eq!(super::next_digit(&text, from), want);
        }
        assert_eq!(super::next_digit(b"abcdefghijklmnopqrstuvwxyz", 3), None);
    }

    #[test]
    fn capital_scan_finds_exactly_capitals_and_lead_bytes() {
        let text: Vec<u8> = (0u8..=255).cycle().take(1000).collect();
        let mut got = Vec::new();
        super::for_each_capital(&text, 5, |i| got.push(i));
        let want: Vec<usize> = (5..text.len())
            .filter(|&i| text[i].is_ascii_uppercase() || text[i] >= 0xC0)
            .collect();
        assert_eq!(got, want);
    }
}
