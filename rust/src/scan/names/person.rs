//! `PERSON`: a name from a word start, and the rules that grade it (see the module docs of
//! [`super`]).

use super::lexicon::lexicon;
use super::read::{
    char_at, folded, gap_at, lower, lower_latin, next_word, raise_word, raised, read_word, squeezed, word_before, Low,
    Rd, Word, MAX_GAP, R,
};
use super::words::{ends_street, may_be, words, CUES};
use super::LOOK_BEHIND;

/// Two-letter titles taken without their dot, as English writes them (`Mr Smith`, `Dr Watson`,
/// `Ms Jones`, `Mx Taylor`; also French `Dr Dupont`); the other short ones need it. An all-caps
/// `MR`, `DR` or `MS` is no title (imaging, a country code, a disease).
pub(super) const DOTLESS: &[&[u8]] = &[b"Mr", b"Ms", b"Mx", b"Dr"];

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

/// Lower-case particles inside a name (`Ludwig van Beethoven`, `Ana de la Cruz`). The German
/// and Dutch articles `der`, `den` count only after `van` or `von` (`van der Berg`): on their own
/// they are articles before a noun (`Maria Schmidt den Bericht`).
#[rustfmt::skip]
const PARTICLES: &[&[u8]] = &[
    b"van", b"von", b"de", b"del", b"della", b"di", b"da", b"dos", b"das", b"do", b"du", b"la", b"le", b"y", b"zu",
    b"ten", b"ter", b"af", b"av",
];

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

/// Whether a cue phrase ends right before the name at `s` (spaces, tabs and a `:` between).
fn cued(t: &[u8], s: usize) -> bool {
    let lo = s.saturating_sub(LOOK_BEHIND);
    let mut e = s;
    while e > lo && matches!(t[e - 1], b' ' | b'\t') {
        e -= 1;
    }
    // `Name: Maria`, `Kunde: Schmidt`: a colon is part of the cue
    let colon = e > lo && t[e - 1] == b':';
    if colon {
        e -= 1;
        while e > lo && matches!(t[e - 1], b' ' | b'\t') {
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
        // a shop or collection noun ends it the same way (`Jil Sander Kollektion`)
        || (may_be(&ws.trade_shape, low.get()) && low.in_set(&ws.trade_after) && !lexicon().surname(b))
        // and a legal form (`Margarete Steiff GmbH`, `Anna Berg Ltd's`)
        || {
            let b = b.strip_suffix(b"'s").unwrap_or(b);
            may_be(&ws.legal_shape, b) && ws.legal.contains(b)
        }
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
/// ([`Lexicon::brand`](super::lexicon::Lexicon::brand); no cue before it) gets at most
/// [`EPONYM`]. A role or a group among the words ([`ADDRESSEES`](super::words::ADDRESSEES):
/// `Dear Customer`) or three words ending with a street word (`Karl Marx Allee`) is no name.
pub(super) fn person_at(r: &Rd, s: usize) -> R<Option<(usize, u8)>> {
    person_in(r, s, Case::Written)
}

/// How the text a name is read from was written ([`shouted`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Case {
    /// As written.
    Written,
    /// A copy with the words in capitals in title case, for a given name in title case before a
    /// surname in capitals (`Jean DUPONT`).
    Folded,
    /// A copy with the words after a cue phrase that the lexicon knows in title case, for a name
    /// in lower case (`my name is maria schmidt`, [`lowered_at`]).
    Lowered,
    /// The same copy, for a name wholly in capitals (`MARIA SCHMIDT`): the capitals say nothing, so
    /// the words after the name's first two are taken only when the lexicon knows them (`MARIA
    /// SCHMIDT CALLED` is `MARIA SCHMIDT`), and an ambiguous given name needs a lexicon surname
    /// after it (`TELL ANNA` is no name).
    Shouted,
}

/// [`person_at`] in text written as `case` says.
fn person_in(r: &Rd, s: usize, case: Case) -> R<Option<(usize, u8)>> {
    let t = r.t;
    let written = case == Case::Written;
    let Some(w1) = read_word(r, s)? else { return Ok(None) };
    if !w1.cap {
        // a name written in capitals (`MARIA SCHMIDT`, `NAME: ANNA NOWAK`)
        return if w1.caps && written && w1.e - w1.s >= 3 {
            shouted(r, s, &w1, true)
        } else {
            Ok(None)
        };
    }
    let lex = lexicon();
    // the cheap tests first: most capitalised words are no given name and follow no title or cue
    let mut given = lex.given(&t[s..w1.e]);
    // whether a capitalised word follows: the rules below that need one are not tried otherwise
    // (most capitals start a sentence of lower-case words)
    let cap_next = match gap_at(r, w1.e)? {
        Some(i) => match r.get(i)? {
            Some(b) if b < 0x80 => b.is_ascii_uppercase(),
            Some(_) => r.ch(i)?.is_some_and(|(c, _)| c.is_uppercase()),
            None => false,
        },
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
    let mut spaced = false;
    while count < 4 {
        // Dutch `'t` after `van` or `in` (`van 't Hof`, `in 't Veld`)
        if at > w1.e && (t[..at].ends_with(b" van") || t[..at].ends_with(b" in")) {
            if let Some(e) = tick_t(r, at)? {
                at = e;
                continue;
            }
        }
        let w = match next_word(r, at)? {
            Some(w) => w,
            // a line break between a given name and its surname (`Maria⏎Schmidt`)
            None if count == 1 && given == Some(false) => match surname_on_next_line(r, at)? {
                Some(w) => w,
                None => break,
            },
            None => break,
        };
        // more than one space or a tab before the word: phrases are looked up squeezed
        spaced |= w.s > at + 1;
        if w.caps && at == end && roman(&t[w.s..w.e]) {
            end = w.e;
            numeral = true;
            break;
        }
        // a surname in capitals after a given name or a title (`Jean DUPONT`, `M. Pierre
        // MARTIN`, as French and Belgian forms write it): read in title case
        if w.caps && written && second.is_none() && at == w1.e && w.e - w.s >= 3 {
            return shouted(r, s, &w1, false);
        }
        if w.cap && !is_stop(t, &w) {
            if case == Case::Shouted && !(count == 1 && given.is_some()) && {
                let b = &t[w.s..w.e];
                !(lex.surname(b) || lex.given(b).is_some())
            } {
                break;
            }
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
        // a place or an institution named after a titled person (`Teatro Nacional Dona Maria II`,
        // `Estádio Dr. Magalhães Pessoa`): the name is the place's
        let conf = if written && place_before_title(t, before) {
            EPONYM
        } else {
            90
        };
        return Ok(Some((end, conf)));
    }
    // a model after a make (`Renault Clio`, `SEAT León Cupra`), or a make made of names
    // (`Alfa Romeo`, `Aston Martin`): a product
    let pair_before = before.is_some_and(|(w, _)| {
        let ws = w.as_ptr() as usize - t.as_ptr() as usize;
        let gap = s - (ws + w.len());
        gap == 1 && make(&t[ws..w1.e]) || (1..=MAX_GAP).contains(&gap) && make(&squeezed(&t[ws..w1.e]))
    });
    if before.is_some_and(|(w, _)| make(w))
        || pair_before
        || second.is_some_and(|w2| {
            if spaced {
                make(&squeezed(&t[w1.s..w2.e]))
            } else {
                make(&t[w1.s..w2.e])
            }
        })
    {
        return Ok(None);
    }
    // a place or an institution named after a person (`Lycée Victor Hugo`, `place Charles de
    // Gaulle`, `Aeroporto Humberto Delgado`, `Anne Frank Huis`, `Gustav Vasa kyrka`, `Anders
    // Zorn-salen`): the name is the place's; so is a name after a saint's or place prefix, even
    // with a lexicon surname (`San Giovanni Rotondo`), or a prefix read as the name's first word
    // before a given name (`Santo António dos Cavaleiros`: `Santo` is an Italian given name too)
    let eponym = before.is_some_and(|(w, dot)| !dot && head(w))
        || head_after(r, end)?
        || compound_tail(&t[last.s..last.e])
        || place_before(before)
        || (place_prefix(&t[w1.s..w1.e]) && second.is_some_and(|w| lex.given(&t[w.s..w.e]).is_some()));
    // `evidence` is a cue already (no given name, no title); otherwise the cue is looked for only
    // when it can change the grade
    if evidence || (second.is_none() && cued(t, s)) {
        // a lexicon surname alone (`My name is Schmidt`), or written surname first before a comma
        // and a given name (`Name: Schmidt, Maria`, as forms and records write it)
        let surname_first = given.is_none() && second.is_none() && lex.surname(&t[s..w1.e]);
        if surname_first && r.get(end)? == Some(b',') {
            if let Some(w) = next_word(r, end + 1)? {
                if w.cap && lex.given(&t[w.s..w.e]) == Some(false) {
                    end = w.e;
                }
            }
        }
        // after a cue phrase: how much the words themselves look like a name
        let mut conf: u8 = if given.is_some_and(|a| !a) || second.as_ref().is_some_and(known) || surname_first {
            85
        } else if given.is_some() {
            70
        } else if count >= 2 {
            65
        } else {
            45
        };
        // a known name keeps its grade in a heading (`Maria Schmidt Annual Report`)
        if conf < 85 && written && heading(r, s)? {
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
    if case == Case::Shouted && ambiguous && !second.is_some_and(|w| lex.surname(&t[w.s..w.e])) {
        return Ok(None);
    }
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
        // what capitals say (a sentence's first word, a run of capitalised words, a title-case
        // line) says nothing in a copy where capitals were folded
        if written && !surname && sentence_start(t, s) {
            penalty += 10;
        }
        if place_before(before) {
            penalty += 30;
        } else if written && capital_before(t, s, before) {
            penalty += 20;
        }
        if written && cap_after {
            penalty += 25;
        }
        if cue() {
            conf = 85;
        } else {
            conf = conf.saturating_sub(penalty);
        }
    }
    if written && !surname && heading(r, s)? {
        conf = conf.saturating_sub(HEADING);
    }
    // a brand made of names (`Albert Heijn`, `John Deere`), alone or with more words of its name
    // after it (`Albert Heijn Bonus`), or a shop, a firm or a product named after a person by its
    // context (`La boutique Christian Dior`, `Ralph Lauren store`, `Margarete Steiff GmbH`; Polish
    // `im.`, `imienia`, a theatre's or an airport's patron: `Teatr im. Juliusza Słowackiego`):
    // graded like an eponym, unless a cue says it is a person (a title before it has returned
    // above). Looked for only when it can change the grade.
    if eponym {
        conf = conf.min(EPONYM);
    } else if conf > EPONYM
        && ((count >= 2 && lex.brand(t, s, w1.e, &ends[..count - 1], spaced))
            || before.is_some_and(|(w, dot)| if dot { w == b"im" } else { trade_before(w) })
            || trade_after(r, end)?)
        && !cue()
    {
        conf = EPONYM;
    }
    Ok(Some((end, conf)))
}

/// How far before a name's start [`shouted`] copies: what the rules read before it
/// ([`LOOK_BEHIND`], [`HEADING_BACK`]) and before the word before it ([`sentence_start`]).
const SHOUTED_BACK: usize = 2 * LOOK_BEHIND + 16;

/// How far after a name's start [`shouted`] reads: a name of four words and the word after it.
const SHOUTED_REACH: usize = 128;

/// The least grade a name in capitals keeps without a title or cue: a given name and a lexicon
/// surname (85), an ambiguous given name and a surname (70). Capitals tell no name from a word
/// (`ANNA TODAY`, `WILL POWER`), so a weaker name is counted, not redacted ([`EPONYM`]).
const SHOUTED_MIN: u8 = 70;

/// `PERSON` from the word at `s` where capitals say nothing: a name in capitals (`all`: `MARIA
/// SCHMIDT`, `KUNDE: ANNA NOWAK`, `HERR SCHMIDT`) or a given name before a surname in capitals
/// (`Jean DUPONT`). The text around the name (from [`SHOUTED_BACK`] before it to the parser's
/// reach after it) is copied with every word of three or more letters in capitals written in
/// title case and the particles in lower case (`ANA DE LA CRUZ` reads `Ana de la Cruz`), the copy
/// read by the same rules, and the offsets are the original's (the copy keeps every byte's place).
/// A name wholly in capitals keeps its grade only when the lexicon or a title or cue vouches for
/// it ([`SHOUTED_MIN`]); a given name in title case before a surname in capitals is graded as
/// written in title case. Most words in capitals are acronyms: a copy is made only after a given
/// name, a title or a cue phrase was seen.
fn shouted(r: &Rd, s: usize, w1: &Word, all: bool) -> R<Option<(usize, u8)>> {
    let t = r.t;
    if all {
        let lex = lexicon();
        let mut buf = [0u8; 32];
        let given = title_case(&t[w1.s..w1.e], &mut buf).and_then(|w| lex.given(w));
        // a given name before another word in capitals; an ambiguous one (`WILL`, `MAY`) only
        // before a lexicon surname
        let named = match given {
            Some(ambiguous) => match next_word(r, w1.e)? {
                Some(w) if w.caps => !ambiguous || lex.surname(&t[w.s..w.e]),
                _ => false,
            },
            None => false,
        };
        // or a title (`HERR`, `MME`) or a cue phrase (`NAME:`, `KUNDE`) before it
        let vouched = || {
            let mut buf = [0u8; 8];
            word_before(t, s).is_some_and(|(w, _)| title_case(w, &mut buf).is_some_and(|w| words().titles.contains(w)))
                || cued(t, s)
        };
        if !(named || vouched()) {
            return Ok(None);
        }
    }
    let lo = s.saturating_sub(SHOUTED_BACK);
    let lim = r.lim.min(s + SHOUTED_REACH);
    let mut copy = t[lo..t.len().min(lim)].to_vec();
    fold_caps(&mut copy);
    let f = Rd::new(&copy, r.eof, lim - lo, r.v);
    let case = if all { Case::Shouted } else { Case::Folded };
    Ok(person_in(&f, s - lo, case)?.map(|(e, conf)| {
        let conf = if all && conf < SHOUTED_MIN {
            conf.min(EPONYM)
        } else {
            conf
        };
        (e + lo, conf)
    }))
}

/// How far after a name's start in lower case [`lowered_at`] raises words: a given name, two
/// particles and two surnames.
const LOWERED_WORDS: usize = 5;

/// `PERSON` in lower case from the word at `s`, which follows a cue phrase (`my name is maria
/// schmidt`, `kunde: anna nowak`, `ich bin jan`; started by `after_cues` in [`super`] after a
/// word that may end one, checked here). Lower case
/// says nothing, so only the lexicon vouches: the first word must be a given name (an ambiguous one,
/// `will`, `mark`, only before a lexicon surname), and the words after it are part of the name only
/// while they are lexicon names or particles (`customer anna called` is `anna`). They are read from
/// a copy of the text around the name with those words in title case (every byte in its place, so
/// the offsets are the original's) by the same rules, the cue before it included.
pub(super) fn lowered_at(r: &Rd, s: usize) -> R<Option<(usize, u8)>> {
    let t = r.t;
    let Some(w1) = read_word(r, s)? else { return Ok(None) };
    if !w1.lower || w1.e - w1.s < 2 {
        return Ok(None);
    }
    let lex = lexicon();
    let mut buf = [0u8; 32];
    let Some(ambiguous) = raised(&t[w1.s..w1.e], &mut buf).and_then(|w| lex.given(w)) else {
        return Ok(None);
    };
    if !cued(t, s) {
        return Ok(None);
    }
    if ambiguous {
        let surname = match next_word(r, w1.e)? {
            Some(w) if w.lower => raised(&t[w.s..w.e], &mut buf).is_some_and(|b| lex.surname(b)),
            _ => false,
        };
        if !surname {
            return Ok(None);
        }
    }
    let lo = s.saturating_sub(SHOUTED_BACK);
    let lim = r.lim.min(s + SHOUTED_REACH);
    let mut copy = t[lo..t.len().min(lim)].to_vec();
    // the words of the name, as far as the lexicon knows them, in title case
    let c = Rd::new(&copy, r.eof, lim - lo, r.v);
    let mut raise = [(0usize, 0usize); LOWERED_WORDS];
    let mut k = 0;
    let mut w = read_word(&c, s - lo)?;
    while let Some(word) = w.filter(|_| k < LOWERED_WORDS) {
        let b = &copy[word.s..word.e];
        if !word.lower {
            break;
        }
        if !PARTICLES.contains(&b) {
            let known = raised(b, &mut buf).is_some_and(|b| lex.given(b).is_some() || lex.surname(b));
            if !known {
                break;
            }
            raise[k] = (word.s, word.e);
            k += 1;
        }
        w = next_word(&c, word.e)?;
    }
    for &(ws, we) in &raise[..k] {
        raise_word(&mut copy[ws..we]);
    }
    let f = Rd::new(&copy, r.eof, lim - lo, r.v);
    Ok(person_in(&f, s - lo, Case::Lowered)?.map(|(e, conf)| (e + lo, conf)))
}

/// Every word of three or more letters all in capitals in title case, and the name particles in
/// capitals (`DE`, `VAN`, `DER`) in lower case; each character keeps its length in bytes (one
/// whose lower case is longer or shorter stays as it is).
fn fold_caps(t: &mut [u8]) {
    let mut i = 0;
    while i < t.len() {
        let Some((c, w)) = char_at(t, i) else {
            i += 1;
            continue;
        };
        if !c.is_alphabetic() {
            i += w;
            continue;
        }
        let s = i;
        let (mut letters, mut upper) = (0usize, true);
        while let Some((c, w)) = char_at(t, i).filter(|(c, _)| c.is_alphabetic()) {
            letters += 1;
            upper &= c.is_uppercase();
            i += w;
        }
        if !upper {
            continue;
        }
        if letters >= 3 {
            fold_word(&mut t[s..i]);
        }
        let low = Low::new(&t[s..i]);
        if PARTICLES.contains(&low.get()) || matches!(low.get(), b"der" | b"den") {
            t[s..i].make_ascii_lowercase();
        }
    }
}

/// A word in title case: every character after the first in lower case (ASCII, Latin-1 and Latin
/// Extended-A: every byte keeps its place).
fn fold_word(w: &mut [u8]) {
    let first = char_at(w, 0).map_or(w.len().min(1), |(_, n)| n);
    let rest = &mut w[first..];
    rest.make_ascii_lowercase();
    lower_latin(rest);
}

/// `w` in title case ([`fold_word`]) in `buf`, if it fits.
fn title_case<'a>(w: &[u8], buf: &'a mut [u8]) -> Option<&'a [u8]> {
    folded(w, buf, fold_word)
}

/// Shop, collection and product nouns that follow a firm's or a brand's name (`Ralph Lauren
/// store`, `Calvin Klein jeans`, `Gerry Weber Filiale`, `Piet Klerkx winkel`), and the staff of a
/// professional firm (`Grant Thornton auditors`), lower case, in the Germanic languages, which put
/// them there. Not the ones that are also verbs after a subject
/// (`shops`, `stores`, `suits`, `watches`, `labels`), nor object nouns a German or Dutch subject
/// is followed by in a verb-second sentence (`hat Stefan Becker Kaffee getrunken`); none of the
/// Romance or Polish ones (`marca`, `marque`, `sklep`: a verb, or a free word order).
#[rustfmt::skip]
pub(super) const TRADE_AFTER: &[&str] = &[
    "store", "shop", "boutique", "outlet", "collection", "sale", "brand", "label", "perfume", "fragrance",
    "watch", "bag", "suit", "jeans", "shirts", "polos", "shoes", "sneakers", "trainers", "handbags", "products",
    "lenses", "glasses", "eyewear", "cosmetics", "motorcycles", "showroom", "flagship", "franchise", "filiale",
    "laden", "kollektion", "marke", "modehaus", "winkel", "winkels", "filiaal", "collectie", "kollektionen",
    // the staff of a professional firm (`Grant Thornton auditors`, `Baker McKenzie lawyers`)
    "auditors", "accountants", "consultants", "lawyers", "solicitors", "attorneys", "advisors", "advisers",
    "advocaten", "adviseurs", "wirtschaftsprüfer", "anwälte",
];

/// Shop, collection and product nouns that stand right before a firm's or a brand's name, without
/// a preposition (`La boutique Christian Dior`, `Les sacs Louis Vuitton`, `Le scarpe Salvatore
/// Ferragamo`, `w salonie Gino Rossi`), lower case. A noun with `de`, `di` or `van` between is
/// not one: `los zapatos de María García` are hers as often as a brand's.
#[rustfmt::skip]
pub(super) const TRADE_BEFORE: &[&str] = &[
    "boutique", "magasin", "salon", "marque", "parfum", "parfums", "sacs", "chaussures", "costumes", "lunettes",
    "laboratoires", "collection", "tienda", "marca", "perfume", "perfumes", "zapatos", "trajes", "bolso", "bolsos",
    "laboratorios", "colección", "negozio", "marchio", "profumo", "scarpe", "abiti", "occhiali", "borse",
    "collezione", "laboratori", "loja", "sapatos", "óculos", "coleção", "salonie", "sklep", "sklepie", "butik",
    "butiku", "marka", "marki", "perfumy", "marke", "brand", "label", "winkel", "merk", "märke", "märket",
];

fn trade_before(w: &[u8]) -> bool {
    let ws = words();
    let set = &ws.trade_before;
    if w.first().is_some_and(u8::is_ascii) && !may_be(&ws.trade_before_shape, w) {
        return false;
    }
    if w.is_ascii() {
        return Low::new(w).in_set(set);
    }
    std::str::from_utf8(w).is_ok_and(|x| set.contains(x.to_lowercase().as_bytes()))
}

/// Legal forms of a firm, written right after its name (`Margarete Steiff GmbH`, `Axel Johnson
/// AB`, `Ben Sherman Ltd`), compared exactly and ended by a byte that is no letter or digit.
#[rustfmt::skip]
pub(super) const LEGAL: &[&str] = &[
    "GmbH", "AG", "KG", "SE", "SA", "S.A.", "SAS", "SARL", "Sarl", "SpA", "S.p.A.", "Srl", "S.r.l.",
    "SL", "S.L.", "SLU", "B.V.", "BV", "N.V.", "NV", "Ltd", "Ltd.", "LLP", "LLC", "Inc", "Inc.",
    "PLC", "plc", "Corp", "Corp.", "AB", "Lda", "Lda.", "sp.", "Sp.", "S.C.", "& Co", "& Cie",
    "& Sons", "& Söhne", "& Zonen", "& Fils", "& Figli", "& Hijos", "& Filhos", "& Söner",
    "& Synowie",
];

/// Whether the word after a name ending at `e` is a shop or product noun ([`TRADE_AFTER`]) or a
/// legal form ([`LEGAL`]; with a possessive `'s` between: `Anna Berg Ltd's`).
fn trade_after(r: &Rd, e: usize) -> R<bool> {
    let Some(i) = gap_at(r, e)? else { return Ok(false) };
    let Some(b) = r.get(i)? else { return Ok(false) };
    if b.is_ascii_uppercase() || b == b'&' || b == b's' {
        for f in LEGAL.iter().map(|f| f.as_bytes()).filter(|f| f[0] == b) {
            let mut ok = true;
            for (k, &c) in f.iter().enumerate() {
                if r.get(i + k)? != Some(c) {
                    ok = false;
                    break;
                }
            }
            if ok
                && !r
                    .get(i + f.len())?
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c >= 0x80)
            {
                return Ok(true);
            }
        }
    }
    // `Jan Kowalski's store`: the owner's, a person as often as a firm
    if r.t[..e].ends_with(b"'s") || r.t[..e].ends_with("\u{2019}s".as_bytes()) {
        return Ok(false);
    }
    let Some(w) = next_word(r, e)? else { return Ok(false) };
    let low = Low::new(&r.t[w.s..w.e]);
    Ok(!w.caps && low.in_set(&words().trade_after))
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
/// [`head`]), or when it is a brand's name ([`Lexicon::brand`](super::lexicon::Lexicon::brand)):
/// below the default threshold, so counted and not redacted.
const EPONYM: u8 = 45;

/// Dutch `'t` (`van 't Hof`, `in 't Veld`) after `e`: its end.
fn tick_t(r: &Rd, e: usize) -> R<Option<usize>> {
    let Some(i) = gap_at(r, e)? else { return Ok(None) };
    let k = match r.get(i)? {
        Some(b'\'') => i + 1,
        Some(0xE2) if r.get(i + 1)? == Some(0x80) && r.get(i + 2)? == Some(0x99) => i + 3,
        _ => return Ok(None),
    };
    Ok((r.get(k)? == Some(b't') && gap_at(r, k + 1)?.is_some()).then_some(k + 1))
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
pub(super) const MAKES: &[&str] = &[
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
pub(super) const HEADS: &[&str] = &[
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
    "rue", "rua", "ul", "academy", "académie", "academia", "accademia", "academie", "akademie", "akademia",
    "akademi", "philharmonie", "philharmonic", "filarmonica", "filharmonie", "filharmonia", "filharmonin",
    // Polish declines the noun before its patron's name (`na Uniwersytecie Adama Mickiewicza`, `w
    // Szpitalu Jana Pawła II`): the genitive and the locative of the nouns above
    "uniwersytetu", "uniwersytecie", "szpitala", "szpitalu", "stadionu", "stadionie", "lotniska", "lotnisku",
    "szkoły", "szkole", "teatru", "teatrze", "kościoła", "kościele", "instytutu", "instytucie", "parku",
    "placu", "mostu", "moście", "biblioteki", "bibliotece", "akademii", "filharmonii", "fundacji", "galerii",
    "stacji", "pomnika", "pomniku", "alei",
];

/// Place and institution nouns written in lower case right after the name they are named after
/// (Swedish `Gustav Vasa kyrka`, `Engelbrekts kyrka`, with the definite forms; Dutch `kerk`):
/// a lower-case word after a name is otherwise the sentence going on.
#[rustfmt::skip]
const HEADS_AFTER_LOWER: &[&str] = &[
    "kyrka", "kyrkan", "kapell", "kapellet", "skola", "skolan", "gymnasiet", "sjukhus", "sjukhuset", "museet",
    "kerk",
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

/// A lexicon surname at the start of the line after the given name ending at `e`: a line break
/// (`\n` or `\r\n`, spaces or tabs before it, one to [`MAX_GAP`] after it) is no way around a
/// name (`Maria⏎Schmidt`). Only a surname the lexicon knows, after a given name that is no word,
/// continues a name across a line (a list, a heading or a table goes on otherwise).
fn surname_on_next_line(r: &Rd, e: usize) -> R<Option<Word>> {
    let mut i = gap_at(r, e)?.unwrap_or(e);
    match r.get(i)? {
        Some(b'\n') => i += 1,
        Some(b'\r') if r.get(i + 1)? == Some(b'\n') => i += 2,
        _ => return Ok(None),
    }
    let i = gap_at(r, i)?.unwrap_or(i);
    let Some(w) = read_word(r, i)? else { return Ok(None) };
    let t = r.t;
    Ok((w.cap && !is_stop(t, &w) && lexicon().surname(&t[w.s..w.e])).then_some(w))
}

/// Whether a capitalised place or institution noun ([`head`]) stands before the title `before`
/// of a name, right before it or with one capitalised word between (`Teatro Nacional Dona`,
/// `Estádio Dr.`). Only capitalised: a noun in lower case before a title is running text (`in the
/// hospital Dr. Smith said`).
fn place_before_title(t: &[u8], before: Option<(&[u8], bool)>) -> bool {
    let Some((title, _)) = before else { return false };
    let mut at = title.as_ptr() as usize - t.as_ptr() as usize;
    for _ in 0..2 {
        let Some((w, dot)) = word_before(t, at) else {
            return false;
        };
        if dot || !w.first().is_some_and(u8::is_ascii_uppercase) {
            return false;
        }
        if head(w) {
            return true;
        }
        at = w.as_ptr() as usize - t.as_ptr() as usize;
    }
    false
}

/// Whether the word right after a name ending at `e` is a place or institution noun (`Anne Frank
/// Huis`, `Johan Cruijff ArenA`).
fn head_after(r: &Rd, e: usize) -> R<bool> {
    // most names are followed by a lower-case word or a punctuation mark
    let Some(i) = gap_at(r, e)? else { return Ok(false) };
    if r.get(i)?
        .is_some_and(|b| !b.is_ascii_uppercase() && b < 0xC0 && !HEADS_AFTER_LOWER.iter().any(|h| h.as_bytes()[0] == b))
    {
        return Ok(false);
    }
    let Some(w) = next_word(r, e)? else { return Ok(false) };
    let b = &r.t[w.s..w.e];
    Ok(if w.lower {
        HEADS_AFTER_LOWER.iter().any(|h| h.as_bytes() == b)
    } else {
        head(b)
    })
}

/// Whether a name's word ends in a lower-case word after a hyphen: the name is the first part of
/// a compound (Swedish `Astrid Lindgren-skolan`, `Carl Larsson-gården`; `Anders Zorn-salen`),
/// named after the person. A double-barrelled name capitalises both parts (`Larsson-Berg`).
fn compound_tail(w: &[u8]) -> bool {
    w.iter()
        .rposition(|&c| c == b'-')
        .and_then(|k| char_at(w, k + 1))
        .is_some_and(|(c, _)| c.is_lowercase())
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
    before.is_some_and(|(w, _)| place_prefix(w))
}

/// Whether `w` is one of [`PLACE_PREFIXES`].
fn place_prefix(w: &[u8]) -> bool {
    w.len() <= 6 && w.first().is_some_and(u8::is_ascii_uppercase) && PLACE_PREFIXES.contains(&w)
}

/// What a name in a title-case line loses (see [`heading`]).
const HEADING: u8 = 30;

/// Whether `w` addresses a group or a role ([`ADDRESSEES`](super::words::ADDRESSEES)), in any case.
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

#[cfg(test)]
mod tests {
    /// What the scanner with every type on finds in `text`, as (text found, confidence).
    fn scored(text: &str) -> Vec<(String, u8)> {
        crate::scan::tests::everything()
            .scan_scored(text)
            .iter()
            .map(|f| (text[f.start..f.end].to_string(), f.confidence))
            .collect()
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

    // a shop, collection or product noun right after the name or right before it, a legal form
    // after it, or Polish `im.` before it: a firm's, a brand's or a venue's name, graded below the
    // default threshold; a title or a cue before it, a verb of the same spelling, a possessive or
    // a comma keep a person
    t!(p500, "The Ralph Lauren store on the corner has a sale.", []);
    t!(p510, "Die neue Jil Sander Kollektion wird in Mailand gezeigt.", []);
    t!(p520, "La boutique Christian Dior rouvre lundi.", []);
    t!(p530, "Les sacs Louis Vuitton et le scarpe Salvatore Ferragamo.", []);
    t!(
        p540,
        "Die Maria Schmidt GmbH und die Anna Berg AB haben fusioniert.",
        []
    );
    t!(p550, "Anna Berg Ltd's office and Jan Nowak & Sons are closed.", []);
    t!(p560, "Teatr im. Juliusza Słowackiego wystawia Dziady.", []);
    t!(p570, "Emily Clark shops at the market.", [("PERSON", "Emily Clark")]);
    t!(
        p580,
        "Nel secondo tempo Marco Rossi marca stretto.",
        [("PERSON", "Marco Rossi")]
    );
    t!(p590, "Jan Kowalski's store is closed.", [("PERSON", "Jan Kowalski's")]);
    t!(
        p600,
        "Die Chefin der Laura Vogel GmbH, Laura Vogel, hat unterschrieben.",
        [("PERSON", "Laura Vogel")]
    );
    t!(
        p610,
        "Bitte rufen Sie Frau Sabine Krüger Filiale Köln zurück.",
        [("PERSON", "Sabine Krüger")]
    );
    t!(
        p620,
        "Hello, my name is Ralph Lauren store manager.",
        [("PERSON", "Ralph Lauren")]
    );
    t!(
        p630,
        "Gestern hat Stefan Becker Anzug und Krawatte gekauft.",
        [("PERSON", "Stefan Becker Anzug")]
    );

    // a venue, an institution or a place named after a person: a compound with a lower-case tail
    // (a double-barrelled name capitalises both parts), a Swedish noun in lower case after the
    // name, a Polish noun declined before it, an academy after it, a saint's prefix before it or
    // read as its first word
    t!(p631, "Mötet hålls i Selma Lagerlöf-salen.", []);
    t!(
        p632,
        "Anna Larsson-Berg ringde i går.",
        [("PERSON", "Anna Larsson-Berg")]
    );
    t!(p633, "Vigseln var i Gustav Adolf kyrka i lördags.", []);
    t!(p634, "Sedan kom Anna Berg sent till mötet.", [("PERSON", "Anna Berg")]);
    t!(p635, "Wykład jest na Uniwersytecie Jana Kochanowskiego w Kielcach.", []);
    t!(
        p636,
        "Rozmawiałem z Janem Kowalskim w szpitalu.",
        [("PERSON", "Janem Kowalskim")]
    );
    t!(p637, "De Rudolf Steiner Academie opent een nieuwe vestiging.", []);
    t!(p638, "Partiamo da San Giovanni Bianco domani.", []);
    t!(p639, "Santo André fica perto de São Paulo.", []);
    t!(p640, "Santo Versace ha parlato ieri.", [("PERSON", "Santo Versace")]);

    #[test]
    fn a_firm_or_shop_name_is_counted_below_the_threshold() {
        let s = crate::scan::tests::everything();
        assert_eq!(
            scored("The Ralph Lauren store is open."),
            [("Ralph Lauren".to_string(), super::EPONYM)]
        );
        assert_eq!(
            scored("La boutique Christian Dior est ouverte."),
            [("Christian Dior".to_string(), super::EPONYM)]
        );
        // a title before it: a person
        assert_eq!(
            scored("Yesterday Mr. Ralph Lauren store visit."),
            [("Ralph Lauren".to_string(), 90)]
        );
        // not cut by a stream's end: the word after decides once it has arrived
        assert!(s.scan("We met Maria Schmidt GmbH").is_empty());
        assert_eq!(scored("We met Maria Schmidt G").len(), 1);
    }

    #[test]
    fn a_dotless_title_grades_like_a_dotted_one() {
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
        let s = crate::scan::tests::everything();
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

    // names in capitals: read in title case, kept when the lexicon, a title or a cue vouches for
    // them; the words after the first two only while the lexicon knows them
    t!(
        p700,
        "CUSTOMER MARIA SCHMIDT CALLED ABOUT THE INVOICE.",
        [("PERSON", "MARIA SCHMIDT")]
    );
    t!(p710, "NAME: ANNA NOWAK", [("PERSON", "ANNA NOWAK")]);
    t!(p720, "HERR SCHMIDT RUFT AN.", [("PERSON", "SCHMIDT")]);
    t!(p730, "ANA DE LA CRUZ LLAMÓ AYER.", [("PERSON", "ANA DE LA CRUZ")]);
    t!(p740, "ŁUKASZ KOWALSKI ZADZWONIŁ.", [("PERSON", "ŁUKASZ KOWALSKI")]);
    t!(p750, "PATIENT: JEAN-LUC O'BRIEN", [("PERSON", "JEAN-LUC O'BRIEN")]);
    // a surname in capitals after a given name or a title, as French forms write it
    t!(p760, "M. Jean DUPONT habite ici.", [("PERSON", "Jean DUPONT")]);
    t!(p770, "Signé : Claire MARTIN, le 3 mai.", [("PERSON", "Claire MARTIN")]);
    // acronyms, headings and words that are given names are not names in capitals
    t!(
        p780,
        "THE API KEY FOR AWS EXPIRED. ERROR: CONNECTION REFUSED BY HOST",
        []
    );
    t!(p790, "MR SCAN RESULTS ARE IN. GRACE PERIOD ENDS IN MAY.", []);
    t!(p800, "WILL YOU MARK THE BILL AS PAID?", []);

    // more than one space or a tab between the words is no way around the parsers
    t!(p810, "Customer Maria  Schmidt called.", [("PERSON", "Maria  Schmidt")]);
    t!(p820, "Customer Maria\tSchmidt called.", [("PERSON", "Maria\tSchmidt")]);
    t!(
        p830,
        "Mein  Name  ist  Nurten  Seip, Hauptstraße  12,  10115  Berlin",
        [
            ("PERSON", "Nurten  Seip"),
            ("ADDRESS", "Hauptstraße  12,  10115  Berlin")
        ]
    );
    t!(
        p840,
        "Ship to 64330  Turner  Isle  Apt.  940,  New  Jon,  MH  20680 today",
        [("ADDRESS", "64330  Turner  Isle  Apt.  940,  New  Jon,  MH  20680")]
    );
    t!(p850, "Date  of  birth:  05/13/1966.", [("DATE_OF_BIRTH", "05/13/1966")]);
    t!(p860, "Fiat  Panda  e  Alfa  Romeo  Giulia  in  offerta.", []);
    t!(p870, "Bij  de  Albert  Heijn  XL  is  het  druk.", []);

    // after a cue: a lexicon surname alone, or surname first, a comma and a given name
    t!(p880, "Name: Schmidt, Maria", [("PERSON", "Schmidt, Maria")]);
    t!(p890, "Hello, my name is Schmidt.", [("PERSON", "Schmidt")]);
    t!(
        p900,
        "Kunde: Kowalski, Jan, geb. 01.02.1980",
        [("PERSON", "Kowalski, Jan"), ("DATE_OF_BIRTH", "01.02.1980")]
    );
    t!(p910, "Customer Service and Customer Support called.", []);
    t!(p920, "Name: Zorblat, Maria", []);

    // the context rules read past a run of spaces too: a shop noun or a place noun after the name,
    // Dutch `'t`, a UK postcode, an Italian province
    t!(p930, "The Ralph  Lauren  store  is  closed.", []);
    t!(p940, "Het  Anne  Frank  Huis  is  open.", []);
    t!(
        p950,
        "Gisteren  belde  Pieter  van  't  Hof.",
        [("PERSON", "Pieter  van  't  Hof")]
    );
    t!(
        p960,
        "Send it to 10 Downing Street,  London  SW1A  1AA and Via Roma 10,  00184  Roma  (RM).",
        [
            ("ADDRESS", "10 Downing Street,  London  SW1A  1AA"),
            ("ADDRESS", "Via Roma 10,  00184  Roma  (RM)")
        ]
    );

    #[test]
    fn a_name_in_capitals_without_a_surname_is_counted() {
        // a given name and a word the lexicon does not know: capitals tell no name from a word,
        // so it is counted below the threshold, not acted on
        assert_eq!(
            scored("PLEASE CALL ANNA TOMORROW."),
            [("ANNA TOMORROW".to_string(), super::EPONYM)]
        );
        // a cue phrase vouches for it
        assert_eq!(scored("KUNDE: ANNA ZORBLAT"), [("ANNA ZORBLAT".to_string(), 85)]);
    }

    #[test]
    fn folding_keeps_every_byte_in_place() {
        let mut t = "MARIA ÉLODIE DE LA CRUZ-ŁUKASZ ẞ IT".as_bytes().to_vec();
        let n = t.len();
        super::fold_caps(&mut t);
        assert_eq!(t.len(), n);
        assert_eq!(std::str::from_utf8(&t).unwrap(), "Maria Élodie de la Cruz-Łukasz ẞ IT");
    }

    // names in lower case after a cue phrase: the lexicon vouches for every word
    t!(
        p1000,
        "hi, my name is maria schmidt and i need help",
        [("PERSON", "maria schmidt")]
    );
    t!(p1010, "customer anna called about her order", [("PERSON", "anna")]);
    t!(
        p1020,
        "Kunde: jan kowalski, bitte zurückrufen",
        [("PERSON", "jan kowalski")]
    );
    t!(p1030, "ich bin  jürgen", [("PERSON", "jürgen")]);
    t!(p1040, "je m'appelle élodie dupont.", [("PERSON", "élodie dupont")]);
    t!(p1050, "me llamo ana de la cruz", [("PERSON", "ana de la cruz")]);
    t!(p1060, "nazywam się łukasz nowak", [("PERSON", "łukasz nowak")]);
    t!(p1070, "dear jean-luc,", [("PERSON", "jean-luc")]);
    t!(p1080, "my name is grace kowalski", [("PERSON", "grace kowalski")]);
    t!(p1090, "MY NAME IS\tmaria", [("PERSON", "maria")]);
    // not a name: a word after the cue, an ambiguous given name without a surname, a cue inside a
    // word, a cue without a gap, a word the lexicon does not know
    t!(p1100, "the customer will call back tomorrow", []);
    t!(p1110, "customer service and customer support", []);
    t!(p1120, "dear mark, thanks", []);
    t!(p1130, "our customers anna and jan", []);
    t!(p1140, "name:maria", []);
    t!(p1150, "ich bin müde", []);
    t!(p1160, "my name is zorblat", []);
    t!(p1170, "chamo-me  tiago vieira e preciso", [("PERSON", "tiago vieira")]);
    t!(p1180, "this is anna", []);

    #[test]
    fn raising_keeps_every_byte_in_place() {
        for (w, want) in [
            ("maría", "María"),
            ("łukasz", "Łukasz"),
            ("jean-luc", "Jean-Luc"),
            ("ßa", "ßa"),
        ] {
            let mut b = w.as_bytes().to_vec();
            super::super::read::raise_word(&mut b);
            assert_eq!(std::str::from_utf8(&b).unwrap(), want);
        }
    }

    // a place named after a titled person; a lower-case noun before a title is running text
    #[test]
    fn a_place_named_after_a_titled_person_is_counted() {
        assert_eq!(
            scored("O Teatro Nacional Dona Maria II reabre em outubro."),
            [("Maria II".to_string(), super::EPONYM)]
        );
        assert_eq!(
            scored("O jogo foi no Estádio Dr. Magalhães Pessoa em Leiria."),
            [("Magalhães Pessoa".to_string(), super::EPONYM)]
        );
        assert_eq!(
            scored("In the hospital Dr. Anna Berg said no."),
            [("Anna Berg".to_string(), 90)]
        );
        assert_eq!(scored("Ask Dona Maria Silva."), [("Maria Silva".to_string(), 90)]);
    }
    t!(p1190, "The meeting with Grant Thornton auditors moved.", []);
    t!(p1200, "Grant Thornton called.", [("PERSON", "Grant Thornton")]);
    // a line break between a given name and a lexicon surname is no way around a name
    t!(p1210, "Customer Maria\nSchmidt called", [("PERSON", "Maria\nSchmidt")]);
    t!(
        p1220,
        "Signed: Anna  \r\n  Kowalski",
        [("PERSON", "Anna  \r\n  Kowalski")]
    );
    t!(p1230, "Maria\nZorblat and Anna\n\nSchmidt", []);
}
