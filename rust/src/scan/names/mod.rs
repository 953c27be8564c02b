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
//!   ambiguity flags come mostly from English word lists (a word of the other languages flags only
//!   the rarest names, rust/data/README.md).
//! - A Roman numeral of two or more letters after a given name belongs to the name (`Koen VI`,
//!   `Henri IV`): a regnal name is a person.
//! - Not a name: the words after a car make (`Renault Clio`, `SEAT León`) or a make made of names
//!   (`Alfa Romeo`, `Aston Martin`); and a name right after a place or institution noun (`place
//!   Charles de Gaulle`, `Aeroporto Humberto Delgado`, `Galleria Vittorio Emanuele II`) or right
//!   before one (`Anne Frank Huis`, `Morgan Stanley Research`; Swedish `Gustav Vasa kyrka` in lower
//!   case; a Polish noun declined, `na Uniwersytecie Adama Mickiewicza`), a name ending in a
//!   compound with a lower-case tail (`Astrid Lindgren-skolan`) and a name after a saint's or
//!   place prefix (`San Giovanni Rotondo`, `Santo António dos Cavaleiros`) is graded at most 45,
//!   counted and not redacted at the default threshold: the name is the place's.
//! - A brand made of names (`Albert Heijn`, `John Deere`; `brands.txt` in `rust/data/`, from the
//!   CC0 simple-icons data and the BSD-licensed name-suggestion-index of chain shops), alone or followed by more capitalised words of its name (`Albert
//!   Heijn Bonus`), is graded the same 45, unless a title or a cue phrase stands before it (`Mr.
//!   Albert Heijn`, `my name is John Deere`). The brand's words are the name's, already read: the
//!   rule reads nothing more.
//! - A firm's, a shop's or a product's name by its context is graded the same 45, unless a title or
//!   a cue phrase stands before it: a shop, collection or product noun right after it (`Ralph
//!   Lauren store`, `Calvin Klein jeans`, `Jil Sander Kollektion`, `Piet Klerkx winkel`; English,
//!   German and Dutch nouns, not the ones that are also verbs, `shops`, `suits`, nor after a
//!   possessive, `Jan Kowalski's store`), or right before it without a preposition (`La boutique
//!   Christian Dior`, `Les sacs Louis Vuitton`, `w salonie Gino Rossi`; `los zapatos de María` are
//!   hers), a legal form right after it (`GmbH`, `AG`, `S.A.`, `SpA`, `B.V.`, `Ltd`, `Inc.`,
//!   `AB`, `Lda`, `& Co`, `& Söhne`, …), or Polish `im.` before it (`Teatr im. Juliusza
//!   Słowackiego`, named after). The word after the name is one word past its end, inside
//!   [`MAX_SPAN`].
//!
//! A lone capitalised word is never a name, so the capital at the start of a sentence is never
//! taken as evidence. The span covers the name words, not the title or cue.
//!
//! **Capitals.** Where capitals say nothing, a name is read from a copy of the text around it with
//! each word of three or more letters in capitals written in title case and the particles in lower
//! case, every byte in its place (`person::shouted`): a name wholly in capitals (`MARIA SCHMIDT`,
//! `NAME: ANNA NOWAK`, `HERR SCHMIDT`, `ANA DE LA CRUZ`) is kept when a given name and a lexicon
//! surname, or a title or cue phrase, vouch for it (a given name and an unknown word are counted
//! below the threshold: `ANNA TOMORROW`), and its words after the first two only while the lexicon
//! knows them; a surname in capitals after a given name or a title, as French forms write it
//! (`Jean DUPONT`, `M. Pierre MARTIN`), is graded as if written in title case. Acronyms cost a
//! lookup: the copy is made only after a given name, a title or a cue phrase. Street endings,
//! street-type words and cities are read in capitals too (`BJÖRKVÄGEN 4`, `URBANIZACIÓN …`,
//! `PORT DANIELTON, PR`).
//!
//! **Lower case.** A name in lower case is read only right after a cue phrase (`my name is maria
//! schmidt`, `Kunde: jan kowalski`): a pass over the words after a space or tab (16 bytes at a
//! time) hashes the last four bytes of the word before each ([`after_cues`]), and where a cue phrase
//! ends there, the words the lexicon knows are read from a copy in title case
//! ([`person::lowered_at`]): a given name first, then only lexicon names and particles.
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
//!
//! In lower case (`hauptstraße 12, 10115 berlin`) an address is read from a copy with its words in
//! title case (`address::lowered`), and only with a postcode or city line after the street.
//!
//! The code: this module runs the parsers over a view ([`round`], [`birth_dates`]); [`read`] is the
//! bounded reader they read through, [`lexicon`] the name lexicon, [`words`] the word lists,
//! [`person`], [`address`] and [`dob`] the parsers of `PERSON`, `ADDRESS` and `DATE_OF_BIRTH`.

// the tests' `t!(name, text, [(type, found text), …])`, before the modules that use it
#[cfg(test)]
macro_rules! t {
    ($name:ident, $text:expr, [$(($e:expr, $v:expr)),*]) => {
        #[test]
        fn $name() {
            let want: Vec<(String, String)> = vec![$(($e.to_string(), $v.to_string())),*];
            assert_eq!(crate::scan::names::found($text), want, "{:?}", $text);
        }
    };
}

mod address;
mod dob;
mod lexicon;
mod person;
mod read;
mod words;

use crate::scan::detectors::{Out, Res};
use crate::scan::entity::Builtin;
use crate::scan::normalize::View;

use address::{address_range, DIGIT_REACH};
use person::{lowered_at, person_at};
use read::{boundary, Need, Rd, MAX_GAP, R};
use words::may_end_cue;

pub use dob::birth_dates;
pub use lexicon::warm;

/// The findings of every type in `text` as (type, text) pairs, after checking that a stream finds
/// the same however the text is cut.
#[cfg(test)]
fn found(text: &str) -> Vec<(String, String)> {
    let s = crate::scan::tests::everything();
    crate::scan::tests::check_stream(s, text);
    s.scan(text)
        .iter()
        .map(|f| (s.entity_name(f.entity).to_string(), text[f.start..f.end].to_string()))
        .collect()
}

/// Most normalized bytes a `PERSON` or `ADDRESS` parser reads from its start.
pub const MAX_SPAN: usize = 240;

/// Most normalized bytes a parser reads before its start (title, cue phrase, word boundary).
pub const LOOK_BEHIND: usize = 40;

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
        after_cues(v, base, |i| {
            let r = reader(v, i);
            let (res, conf) = decide_scored(lowered_at(&r, i));
            out.put_conf(i, Builtin::Person.id(), res, conf);
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

/// Calls `f(i)` for every `i >= base` where a word in lower case starts after a cue phrase (`my
/// name is maria`, `Kunde: anna`, in any case): after one to [`MAX_GAP`] spaces or tabs whose word
/// before (an optional `:` after it) may end a cue phrase ([`may_end_cue`], a hash of its last
/// four bytes); the parser checks the whole phrase.
/// The cue is read before the name, inside the [`LOOK_BEHIND`] a stream keeps, so any chunking
/// starts the same names.
fn after_cues(v: &View, base: usize, mut f: impl FnMut(usize)) {
    let t = v.t;
    let from = base.saturating_sub(1);
    let tails = &words::words().cue_tails;
    for_each_word_after_blank(t, from, |i| {
        // the name's first letter, in lower case (a capital is the capital pass's)
        if i < base || !(t[i].is_ascii_lowercase() || read::char_at(t, i).is_some_and(|(c, _)| c.is_lowercase())) {
            return;
        }
        let mut e = i - 1;
        while e > 0 && i - e < MAX_GAP && matches!(t[e - 1], b' ' | b'\t') {
            e -= 1;
        }
        if e > 0 && t[e - 1] == b':' {
            e -= 1;
        }
        // the whole phrase ([`person::cued`]) is the parser's to check, after the lexicon's
        // cheaper no for the word after it
        if may_end_cue(tails, t, e) {
            f(i);
        }
    });
}

/// Calls `f(i)` for every `i > from` where a lower-case ASCII letter or a UTF-8 lead byte follows
/// a space or a tab at `i - 1`, 16 bytes at a time.
fn for_each_word_after_blank(t: &[u8], from: usize, mut f: impl FnMut(usize)) {
    let hit = |b: &[u8]| matches!(b[0], b' ' | b'\t') && (b[1].is_ascii_lowercase() || b[1] >= 0xC0);
    for_each_hit(t, from, 1, blank_word_mask16, hit, |i| f(i + 1));
}

/// Calls `f(i)` for every `i >= from` where `hit(&t[i..i + 1 + ahead])` holds, the whole 16-byte
/// blocks through `mask` (bit `k` for `i + k`, reading `ahead` bytes past the block), the rest byte
/// by byte.
#[inline(always)]
fn for_each_hit(
    t: &[u8],
    from: usize,
    ahead: usize,
    mask: impl Fn(&[u8]) -> u32,
    hit: impl Fn(&[u8]) -> bool,
    mut f: impl FnMut(usize),
) {
    let n = t.len();
    let mut i = from;
    while i + 16 + ahead <= n {
        let mut m = mask(&t[i..i + 16 + ahead]);
        while m != 0 {
            f(i + m.trailing_zeros() as usize);
            m &= m - 1;
        }
        i += 16;
    }
    while i + ahead < n {
        if hit(&t[i..=i + ahead]) {
            f(i);
        }
        i += 1;
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn blank_word_mask16(block: &[u8]) -> u32 {
    use std::arch::x86_64::{
        __m128i, _mm_add_epi8, _mm_and_si128, _mm_cmpeq_epi8, _mm_cmpgt_epi8, _mm_cmplt_epi8, _mm_loadu_si128,
        _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    debug_assert!(block.len() >= 17);
    // SAFETY: `block` has at least 17 readable bytes and SSE2 is part of the x86-64 baseline.
    unsafe {
        let x = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
        let y = _mm_loadu_si128(block.as_ptr().add(1).cast::<__m128i>());
        let blank = _mm_or_si128(
            _mm_cmpeq_epi8(x, _mm_set1_epi8(b' ' as i8)),
            _mm_cmpeq_epi8(x, _mm_set1_epi8(b'\t' as i8)),
        );
        // 'a'..='z' is 0x61..=0x7A: shift it to -128..=-103, then one signed compare
        let lower = _mm_cmplt_epi8(_mm_add_epi8(y, _mm_set1_epi8(0x1F)), _mm_set1_epi8(-128 + 26));
        // lead bytes 0xC0..=0xFF are -64..=-1 as signed bytes
        let lead = _mm_and_si128(
            _mm_cmpgt_epi8(y, _mm_set1_epi8(-65)),
            _mm_cmplt_epi8(y, _mm_set1_epi8(0)),
        );
        _mm_movemask_epi8(_mm_and_si128(blank, _mm_or_si128(lower, lead))) as u32
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn blank_word_mask16(block: &[u8]) -> u32 {
    (0..16).fold(0, |m, k| {
        let hit = matches!(block[k], b' ' | b'\t') && (block[k + 1].is_ascii_lowercase() || block[k + 1] >= 0xC0);
        m | (u32::from(hit) << k)
    })
}

/// Whether original text was dropped right before view byte `i` (see [`Rd::gap`]).
fn r_gap(v: &View, i: usize) -> bool {
    i > 0 && i < v.t.len() && v.orig(i) > v.orig_end(i - 1)
}

fn reader<'a>(v: &'a View<'a>, i: usize) -> Rd<'a> {
    Rd::new(v.t, v.eof, i + MAX_SPAN, v)
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
fn for_each_capital(t: &[u8], from: usize, f: impl FnMut(usize)) {
    for_each_hit(
        t,
        from,
        0,
        capital_mask16,
        |b| b[0].is_ascii_uppercase() || b[0] >= 0xC0,
        f,
    );
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

#[cfg(test)]
mod tests {
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
    fn blank_word_scan_finds_exactly_words_after_blanks() {
        let text: Vec<u8> = (0u8..=255)
            .cycle()
            .take(1000)
            .chain(b" a\tb  c \xc3".iter().copied())
            .collect();
        for from in [0, 5, 31] {
            let mut got = Vec::new();
            super::for_each_word_after_blank(&text, from, |i| got.push(i));
            let want: Vec<usize> = (from + 1..text.len())
                .filter(|&i| matches!(text[i - 1], b' ' | b'\t') && (text[i].is_ascii_lowercase() || text[i] >= 0xC0))
                .collect();
            assert_eq!(got, want);
        }
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
