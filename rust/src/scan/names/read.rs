//! The bounded reader every parser reads the view through, and words.

use std::cell::Cell;

use crate::scan::normalize::View;

use super::lexicon::Set;
use super::LOOK_BEHIND;

/// Parsing ran into text that has not arrived.
pub(super) struct Need;

pub(super) type R<T> = Result<T, Need>;

/// A bounded reader of the view from a parser's start: bytes at or past `lim` read as the end.
pub(super) struct Rd<'a> {
    pub(super) t: &'a [u8],
    pub(super) eof: bool,
    pub(super) lim: usize,
    pub(super) v: &'a View<'a>,
    /// The parts an address parser found after the street ([`UNIT`], [`POSTCODE`]), for its
    /// confidence.
    pub(super) parts: Cell<u8>,
    /// The text is a copy of text in lower case with its words raised to title case: capitals
    /// do not end a city there.
    pub(super) lowered: bool,
}

/// An address part: a secondary unit (`Apt. 5`).
pub(super) const UNIT: u8 = 1;

/// An address part: a postcode or a city line.
pub(super) const POSTCODE: u8 = 2;

impl<'a> Rd<'a> {
    /// A reader of `t` (the view's bytes, or a copy of them with the same offsets from some start)
    /// up to `lim`.
    pub(super) fn new(t: &'a [u8], eof: bool, lim: usize, v: &'a View<'a>) -> Rd<'a> {
        Rd {
            t,
            eof,
            lim,
            v,
            parts: Cell::new(0),
            lowered: false,
        }
    }

    /// Whether original text was dropped between view bytes `i - 1` and `i`: a line break the
    /// view joined inside a number (`Hauptstraße 12⏎10115 Berlin` reads `1210115`), or an
    /// invisible character. Address parsers take it as the end of a number and a line break.
    #[inline]
    pub(super) fn gap(&self, i: usize) -> bool {
        i > 0 && i < self.t.len() && self.v.orig(i) > self.v.orig_end(i - 1)
    }

    #[inline]
    pub(super) fn get(&self, i: usize) -> R<Option<u8>> {
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
    pub(super) fn ch(&self, i: usize) -> R<Option<(char, usize)>> {
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
        Ok(char_at(self.t, i))
    }
}

/// The character starting at byte `i` of `t` and its length, if a whole one starts there.
pub(super) fn char_at(t: &[u8], i: usize) -> Option<(char, usize)> {
    let b = *t.get(i)?;
    let n = match b {
        0..=0x7F => return Some((char::from(b), 1)),
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => return None,
    };
    let c = std::str::from_utf8(t.get(i..i + n)?).ok()?.chars().next()?;
    Some((c, n))
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
pub(super) fn boundary(t: &[u8], i: usize) -> bool {
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
pub(super) struct Word {
    pub(super) s: usize,
    pub(super) e: usize,
    /// First letter upper-case, not all capitals (unless one letter).
    pub(super) cap: bool,
    /// All letters upper-case.
    pub(super) caps: bool,
    pub(super) lower: bool,
}

pub(super) fn read_word(r: &Rd, s: usize) -> R<Option<Word>> {
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

/// Whether `b` has a tab or two spaces in a row.
fn has_run(b: &[u8]) -> bool {
    memchr::memchr(b'\t', b).is_some() || memchr::memmem::find(b, b"  ").is_some()
}

/// `b` with each run of spaces and tabs as one space (`Alfa  Romeo` is `Alfa Romeo`), borrowed when
/// it has none.
pub(super) fn squeezed(b: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if !has_run(b) {
        return std::borrow::Cow::Borrowed(b);
    }
    let mut out = Vec::with_capacity(b.len());
    for &c in b {
        let c = if c == b'\t' { b' ' } else { c };
        if !(c == b' ' && out.last() == Some(&b' ')) {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `b` in ASCII lower case with each run of spaces and tabs as one space, for matching the phrases
/// of the word lists (`Date  of  birth:` is `date of birth:`).
pub(super) fn lower(b: &[u8]) -> Vec<u8> {
    let out = b.to_ascii_lowercase();
    if has_run(b) {
        squeezed(&out).into_owned()
    } else {
        out
    }
}

/// A short word, ASCII-lower-cased on the stack (every listed word is shorter than 24 bytes).
pub(super) struct Low {
    pub(super) buf: [u8; 24],
    pub(super) len: usize,
}

impl Low {
    #[inline]
    pub(super) fn new(b: &[u8]) -> Low {
        let mut buf = [0u8; 24];
        let len = if b.len() <= 24 { b.len() } else { 0 };
        let mut high = 0u8;
        for (d, &s) in buf.iter_mut().zip(&b[..len]) {
            *d = s.to_ascii_lowercase();
            high |= s;
        }
        if high >= 0x80 {
            lower_latin(&mut buf[..len]);
        }
        Low { buf, len }
    }

    pub(super) fn get(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Whether the word is in `set` (a word too long for the buffer never is).
    pub(super) fn in_set(&self, set: &Set<&'static [u8]>) -> bool {
        self.len > 0 && set.contains(self.get())
    }
}

/// The capitals of Latin-1 and Latin Extended-A in lower case, in place (`URBANIZACIÓN`,
/// `ŚCIEŻKA`, `ÄNGSVÄGEN`): every one is two bytes either way. Other characters are left.
pub(super) fn lower_latin(t: &mut [u8]) {
    let mut i = 0;
    while i + 1 < t.len() {
        let (b, c) = (t[i], t[i + 1]);
        match b {
            // À..Þ, not ×
            0xC3 if (0x80..=0x9E).contains(&c) && c != 0x97 => t[i + 1] = c + 0x20,
            0xC4 | 0xC5 => {
                let cp = (u32::from(b & 0x1F) << 6) | u32::from(c & 0x3F);
                // pairs of capital then small letter, from Ā and from Ĺ, Ŋ, Ź (not İ, ı)
                let low = match cp {
                    0x100..=0x12F | 0x132..=0x137 | 0x14A..=0x177 if cp % 2 == 0 => cp + 1,
                    0x139..=0x148 | 0x179..=0x17E if cp % 2 == 1 => cp + 1,
                    _ => cp,
                };
                // all of U+0100..U+017F are C4 or C5 then one byte
                t[i] = 0xC0 | (low >> 6) as u8;
                t[i + 1] = 0x80 | (low & 0x3F) as u8;
            }
            _ => {}
        }
        i += match b {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
    }
}

/// The word `w` with a following `.` when there is one (`Dr.`, `ul.`, `Str.`).
pub(super) fn with_dot(r: &Rd, w: &Word) -> R<usize> {
    Ok(if r.get(w.e)? == Some(b'.') { w.e + 1 } else { w.e })
}

/// The word after `e` separated by one to [`MAX_GAP`] spaces or tabs (`Maria  Schmidt`,
/// `Hauptstraße\t12`: a second space is no way around a parser).
#[inline]
pub(super) fn next_word(r: &Rd, e: usize) -> R<Option<Word>> {
    // one space: most words
    if r.get(e)? == Some(b' ') && !matches!(r.get(e + 1)?, Some(b' ' | b'\t')) {
        return read_word(r, e + 1);
    }
    match gap_at(r, e)? {
        Some(i) => read_word(r, i),
        None => Ok(None),
    }
}

/// The most spaces or tabs between two words of a name or an address.
pub(super) const MAX_GAP: usize = crate::scan::MAX_BLANK;

/// The end of one to [`MAX_GAP`] spaces or tabs at `i`, if there are any.
pub(super) fn gap_at(r: &Rd, i: usize) -> R<Option<usize>> {
    let mut k = i;
    while k - i < MAX_GAP && matches!(r.get(k)?, Some(b' ' | b'\t')) {
        k += 1;
    }
    Ok((k > i).then_some(k))
}

/// The last word before `s` (separated by spaces) and whether it ends with a `.`.
pub(super) fn word_before(t: &[u8], s: usize) -> Option<(&[u8], bool)> {
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

/// `w` changed by `fold` (which keeps its length) in `buf`, if it fits: a word's case changed for
/// a lookup without a copy on the heap.
pub(super) fn folded<'a>(w: &[u8], buf: &'a mut [u8], fold: fn(&mut [u8])) -> Option<&'a [u8]> {
    let b = buf.get_mut(..w.len())?;
    b.copy_from_slice(w);
    fold(b);
    Some(b)
}

/// `w` with its first letter in upper case in `buf` ([`raise_word`]), if it fits.
pub(super) fn raised<'a>(w: &[u8], buf: &'a mut [u8]) -> Option<&'a [u8]> {
    folded(w, buf, raise_word)
}

/// The first letter of `w` in upper case when that keeps its length in bytes (ASCII, Latin-1,
/// Latin Extended-A: `maría` -> `María`, `łukasz` -> `Łukasz`), after a hyphen too (`jean-luc`
/// -> `Jean-Luc`).
pub(super) fn raise_word(w: &mut [u8]) {
    let mut first = true;
    let mut i = 0;
    while let Some((c, n)) = char_at(w, i) {
        if first {
            let mut up = c.to_uppercase();
            if let (Some(u), None) = (up.next(), up.next()) {
                if u.len_utf8() == n {
                    u.encode_utf8(&mut w[i..i + n]);
                }
            }
        }
        first = c == '-';
        i += n;
    }
}

#[cfg(test)]
mod tests {
    use super::Low;

    #[test]
    fn low_lowers_latin_capitals() {
        let low = |s: &str| String::from_utf8(Low::new(s.as_bytes()).get().to_vec()).unwrap();
        assert_eq!(low("URBANIZACIÓN"), "urbanización");
        assert_eq!(low("ŚCIEŻKA"), "ścieżka");
        assert_eq!(low("ÄNGSVÄGEN × ŁÓDŹ"), "ängsvägen × łódź");
        // no lower case of the same length, or none of its own: left
        assert_eq!(low("İẞ"), "İẞ");
    }
}
