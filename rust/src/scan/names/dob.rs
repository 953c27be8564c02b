//! `DATE_OF_BIRTH`: a date after a birth cue.

use crate::scan::detectors::Out;
use crate::scan::entity::Builtin;
use crate::scan::normalize::View;

use super::address::end_ok;
use super::read::{boundary, gap_at, lower, read_word, Rd, R};
use super::{decide, next_digit, reader};

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
    let Some(i) = date_sep(r, e1, b'.', &[b"de"])? else {
        return Ok(None);
    };
    let Some(m) = read_word(r, i)? else { return Ok(None) };
    let name = String::from_utf8_lossy(&t[m.s..m.e]).to_lowercase();
    if !MONTHS.iter().any(|(n, _)| *n == name) {
        return Ok(None);
    }
    let Some(i) = date_sep(r, m.e, b',', &[b"de", b"del"])? else {
        return Ok(None);
    };
    let Some((y, e)) = digits(r, i, 4)? else {
        return Ok(None);
    };
    Ok((e - i == 4 && (1900..=2099).contains(&y) && end_ok(r, e)?).then_some(e))
}

/// Between the parts of a written date, from `e`: an optional `punct` (`3.`, `März,`), spaces or
/// tabs ([`gap_at`]), and an optional particle with its own spaces (`14 de julio de 1972`); where
/// the next part starts.
fn date_sep(r: &Rd, e: usize, punct: u8, particles: &[&[u8]]) -> R<Option<usize>> {
    let mut i = e;
    if r.get(i)? == Some(punct) {
        i += 1;
    }
    let Some(i) = gap_at(r, i)? else { return Ok(None) };
    if let Some(w) = read_word(r, i)? {
        if particles.contains(&&r.t[w.s..w.e]) {
            if let Some(k) = gap_at(r, w.e)? {
                return Ok(Some(k));
            }
        }
    }
    Ok(Some(i))
}

#[cfg(test)]
mod tests {
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
        d035,
        "geboren am 3.  März\t1990, nacido el 14  de  julio  de  1972",
        [
            ("DATE_OF_BIRTH", "3.  März\t1990"),
            ("DATE_OF_BIRTH", "14  de  julio  de  1972")
        ]
    );
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
}
