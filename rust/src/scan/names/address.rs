//! `ADDRESS`: a street with a house number, a secondary unit, a postcode and a city.

use crate::scan::detectors::{Out, Res};
use crate::scan::entity::Builtin;
use crate::scan::normalize::View;

use super::read::{
    boundary, char_at, gap_at, next_word, raise_word, read_word, with_dot, Low, Rd, Word, MAX_GAP, POSTCODE, R, UNIT,
};
use super::words::{ends_street, street_type, words, STATES};
use super::{decide, r_gap, reader, MAX_SPAN};

/// Whether the word before the digit at `d` (`Hauptstraße 12`, `Baker Street, 5`) may be a
/// street-type word or end with one: a superset of what [`name_then_street_word`] accepts before
/// its house number, so that a `false` here lets a range skip that parser.
fn street_word_before(t: &[u8], d: usize) -> bool {
    let mut e = d;
    if e == 0 || !matches!(t[e - 1], b' ' | b'\t') {
        return false;
    }
    // one to `MAX_GAP` spaces or tabs
    while d - e < MAX_GAP && e > 0 && matches!(t[e - 1], b' ' | b'\t') {
        e -= 1;
    }
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
pub(super) fn address_range(v: &View, lo: usize, hi: usize, wait: bool, out: &mut Out) {
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
        // a lower-case word starts an address only as a street-type word (`rue`, `ul.`) or, in
        // text in lower case, a street name ending with one (`hauptstraße 12`)
        let lower_skip = b.is_ascii_lowercase() && {
            let mut e = i + 1;
            while e < n && e - i < 31 && (t[e].is_ascii_alphabetic() || t[e] >= 0x80) {
                e += 1;
            }
            e < n
                && e - i < 31
                && !matches!(t[e], b'.' | b'/' | b'-')
                && (ws.before_shape[usize::from(b - b'a')] & (1 << (e - i)) == 0 || !ws.before.contains(&t[i..e]))
                && !ends_street(&t[i..e])
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
            let mut res = decide(address_at(&r, i));
            let mut parts = r.parts.get();
            if res == Res::No {
                match lowered_start(v, i) {
                    Some(true) => (res, parts) = lowered(v, i),
                    Some(false) => {}
                    None => res = Res::More,
                }
            }
            out.put_conf(i, Builtin::Address.id(), res, address_confidence(parts));
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

/// Whether an address in lower case may start at `i` ([`lowered`]): a house number before words
/// in lower case one of the first five of which is a street-type word (`12 baker street`, `12,
/// rue de la paix`), or a word in lower case that is a street-type word or ends with one (`calle
/// mayor 5`, `hauptstraße 12`).
fn lowered_start(v: &View, i: usize) -> Option<bool> {
    let t = v.t;
    let n = t.len();
    // past the buffer the answer waits for more text (`None`), unless the text is whole
    let end = |k: usize| if k >= n && !v.eof { None } else { Some(false) };
    if t[i].is_ascii_uppercase() {
        return Some(false);
    }
    if t[i].is_ascii_digit() {
        let mut k = i;
        while k < n && k - i < 8 && t[k].is_ascii_alphanumeric() {
            k += 1;
        }
        if k < n && t[k] == b',' {
            k += 1;
        }
        let g = k;
        while k < n && k - g < MAX_GAP && matches!(t[k], b' ' | b'\t') {
            k += 1;
        }
        if !(k > g && k < n && t[k].is_ascii_lowercase()) {
            return end(k);
        }
        // a street-type word among the next five (`12 baker street`, `12, rue de la paix`):
        // most numbers before a word in lower case count something (`12 apples`)
        for _ in 0..5 {
            let s = k;
            while k < n && k - s < 24 && (t[k].is_ascii_alphabetic() || t[k] >= 0x80) {
                k += 1;
            }
            if k >= n {
                return end(k);
            }
            if k == s {
                return Some(false);
            }
            let dotted = t[k] == b'.';
            if street_type(&t[s..k]) || (dotted && street_type(&t[s..=k])) {
                return Some(true);
            }
            k += usize::from(dotted);
            let g = k;
            while k < n && k - g < MAX_GAP && matches!(t[k], b' ' | b'\t') {
                k += 1;
            }
            if k == g || k >= n {
                return end(k);
            }
        }
        return Some(false);
    }
    if !(t[i].is_ascii_lowercase() || char_at(t, i).is_some_and(|(c, _)| c.is_lowercase())) {
        return Some(false);
    }
    // the word, hyphens and a final dot included (`valerie-schleich-ring`, `löchelstr.`, `ul.`)
    let mut e = i;
    while e < n && e - i < 48 && (t[e].is_ascii_alphabetic() || t[e] >= 0x80 || t[e] == b'-') {
        e += 1;
    }
    if e >= n {
        return end(e);
    }
    let w = &t[i..e];
    let dotted = t[e] == b'.';
    Some(ends_street(w) || street_type(w) || (dotted && (ends_street(&t[i..=e]) || street_type(&t[i..=e]))))
}

/// `ADDRESS` at `i` in text written in lower case (`12 baker street, london nw1 6xe`, `hauptstraße
/// 12, 10115 berlin`, `via roma 10, 00184 roma`): read by the same rules from a copy of the text
/// with its words in title case, the connectors (`de`, `la`, `van`) in lower case, and two-letter
/// words and short tokens of letters and digits in capitals (`il 62704`, `1015 bs`, `sw1a 1aa`),
/// every byte in its place. Lower case tells no street name from running text (`3 blocks down the
/// street`), so only an address with a postcode or city line after it counts.
fn lowered(v: &View, i: usize) -> (Res, u8) {
    let t = v.t;
    let lim = (i + MAX_SPAN).min(t.len());
    // a token cut by the end of an unfinished buffer may fold otherwise once whole (`6638 e` of
    // `6638 eb`): the copy stops before it, so the parser waits for it
    let mut end = lim;
    if lim == t.len() && !v.eof {
        while end > i && (t[end - 1].is_ascii_alphanumeric() || t[end - 1] >= 0x80 || t[end - 1] == b'-') {
            end -= 1;
        }
        if end == i {
            return (Res::More, 0);
        }
    }
    let mut copy = t[i..end].to_vec();
    fold_lower(&mut copy);
    let w = v.window(i, &copy);
    let mut r = Rd::new(&copy, v.eof || lim < t.len(), MAX_SPAN, &w);
    r.lowered = true;
    let res = decide(address_at(&r, 0));
    let parts = r.parts.get();
    match res {
        Res::Yes(e) if parts & POSTCODE != 0 => (Res::Yes(e + i), parts),
        Res::More => (Res::More, 0),
        _ => (Res::No, 0),
    }
}

/// The words of `t` in lower case written as [`lowered`] reads them; each byte keeps its place.
fn fold_lower(t: &mut [u8]) {
    let ws = words();
    let mut i = 0;
    while i < t.len() {
        let b = t[i];
        // most bytes are ASCII: decode only the others
        let (alnum, w) = if b < 0x80 {
            (b.is_ascii_alphanumeric(), 1)
        } else {
            match char_at(t, i) {
                Some((c, w)) => (c.is_alphanumeric(), w),
                None => (false, 1),
            }
        };
        if !alnum {
            i += w;
            continue;
        }
        let s = i;
        let (mut letters, mut digits, mut lower) = (0usize, 0usize, true);
        while i < t.len() {
            let b = t[i];
            if b < 0x80 {
                if !(b.is_ascii_alphanumeric() || b == b'-') {
                    break;
                }
                letters += usize::from(b.is_ascii_alphabetic());
                digits += usize::from(b.is_ascii_digit());
                lower &= !b.is_ascii_uppercase();
                i += 1;
                continue;
            }
            match char_at(t, i) {
                Some((c, w)) if c.is_alphanumeric() => {
                    letters += usize::from(c.is_alphabetic());
                    lower &= !c.is_uppercase();
                    i += w;
                }
                _ => break,
            }
        }
        let word = &mut t[s..i];
        if !lower || letters == 0 {
            continue;
        }
        if word.is_ascii() && ((digits > 0 && letters <= 3) || (digits == 0 && letters == 2)) {
            if !ws.connectors.contains(&&word[..]) {
                word.make_ascii_uppercase();
            }
        } else if digits == 0 && !ws.connectors.contains(&&word[..]) {
            raise_word(word);
        }
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

/// An address is looked for only at word starts with a digit (house number or postcode) within
/// this many bytes; see [`round`](super::round).
pub(super) const DIGIT_REACH: usize = 96;

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
    // in capitals too (`KEIZERSGRACHT 123`, `BERLINER STR. 5A`)
    if w.cap || w.caps {
        return name_then_street_word(r, s);
    }
    Ok(None)
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
pub(super) fn end_ok(r: &Rd, e: usize) -> R<bool> {
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
    let Some(i) = gap_at(r, i)? else {
        return Ok(None);
    };
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
            let we = if w.cap && r.get(w.e)? == Some(b'.') && gap_at(r, w.e + 1)?.is_some() {
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
    match gap_at(r, i)? {
        Some(k) => house_number(r, k),
        None => Ok(None),
    }
}

/// `Hauptstraße 12`, `Berliner Str. 5`, `Hans-Müller-Weg 3`, `Keizersgracht 123`.
fn name_then_street_word(r: &Rd, s: usize) -> R<Option<usize>> {
    let t = r.t;
    let ws = words();
    let mut at = s;
    for k in 0..4 {
        let w = if k == 0 { read_word(r, s)? } else { next_word(r, at)? };
        let Some(w) = w else { return Ok(None) };
        if !(w.cap || w.caps) {
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
    if let Some(i) = gap_at(r, i)? {
        if let Some(w) = read_word(r, i)?.or(if r.get(i)? == Some(b'#') {
            Some(Word {
                s: i,
                e: i + 1,
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
                let k = gap_at(r, ue)?.unwrap_or(ue);
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
    // spaces or tabs, and a line break after them (the spaces belong to the break)
    let gap = gap_at(r, k)?;
    let after = gap.unwrap_or(k);
    match r.get(after)? {
        Some(b'\n') => Ok(Some(after + 1)),
        Some(b'\r') if r.get(after + 1)? == Some(b'\n') => Ok(Some(after + 2)),
        _ => Ok(gap),
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
        // a city in capitals goes on in capitals (`PORT DANIELTON`)
        if n.cap || (w.caps && n.caps) {
            end = n.e;
            at = n.e;
        } else if n.lower && ws.connectors.contains(&t[n.s..n.e]) {
            at = n.e;
        } else {
            break;
        }
    }
    // in lower case a city's words after the first are taken only before a comma (`new jon, mh
    // 20680`): otherwise the sentence goes on (`10115 berlin please`)
    if r.lowered && end > w.e && r.get(end)? != Some(b',') {
        return Ok(Some(w.e));
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
            if let Some(p) = gap_at(r, ce)? {
                if r.get(p)? == Some(b'(') {
                    if shape(r, p + 1, b"AA)")? {
                        return Ok(Some(p + 4));
                    }
                    if shape(r, p + 1, b"AAA)")? {
                        return Ok(Some(p + 5));
                    }
                }
            }
            return Ok(Some(ce));
        }
    }
    // the city first: `Springfield, IL 62704`, `Madrid, 28013`, `London⏎SW1A 1AA`
    let Some(ce) = city(r, i)? else { return Ok(None) };
    let comma = r.get(ce)? == Some(b',');
    if let Some(k) = if comma { gap_at(r, ce + 1)? } else { None } {
        let st = [r.get(k)?, r.get(k + 1)?];
        if let [Some(mut a), Some(mut b)] = st {
            // `de 60240` in lower case: the connector was not raised
            if r.lowered {
                (a, b) = (a.to_ascii_uppercase(), b.to_ascii_uppercase());
            }
            if let Some(z) = if STATES.contains(&&[a, b]) {
                gap_at(r, k + 2)?
            } else {
                None
            } {
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
    let Some(k) = gap_at(r, k)? else { return Ok(None) };
    Ok(shape(r, k, b"9AA")?.then_some(k + 3))
}

#[cfg(test)]
mod tests {
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
    // in lower case: only with a postcode or city line after the street
    t!(
        a130,
        "ship it to hauptstraße 12, 10115 berlin please",
        [("ADDRESS", "hauptstraße 12, 10115 berlin")]
    );
    t!(
        a140,
        "ship to 64330 turner isle apt. 940, new jon, mh 20680.",
        [("ADDRESS", "64330 turner isle apt. 940, new jon, mh 20680")]
    );
    t!(
        a150,
        "via roma, 10\n00184 roma (rm)",
        [("ADDRESS", "via roma, 10\n00184 roma (rm)")]
    );
    t!(
        a160,
        "at 221b baker street, london\nsw1a 1aa",
        [("ADDRESS", "221b baker street, london\nsw1a 1aa")]
    );
    t!(
        a170,
        "keizersgracht 123\n1015 cj amsterdam",
        [("ADDRESS", "keizersgracht 123\n1015 cj amsterdam")]
    );
    t!(
        a175,
        "valerie-schleich-ring 2\n77943 karlsruhe, löchelstr. 194, 10853 düren; 03648 garcia forge, south cynthiaport, de 60240",
        [
            ("ADDRESS", "valerie-schleich-ring 2\n77943 karlsruhe"),
            ("ADDRESS", "löchelstr. 194, 10853 düren"),
            ("ADDRESS", "03648 garcia forge, south cynthiaport, de 60240")
        ]
    );
    // a token cut by a chunk folds only once whole (`6638 e` then `6638 eb`)
    t!(
        a177,
        "stuur het pakket naar esmeebaan 61, 6638 eb, sloten; ons kantoor zit op kyarahof 949\n9001 ia\nechten.",
        [
            ("ADDRESS", "esmeebaan 61, 6638 eb, sloten"),
            ("ADDRESS", "kyarahof 949\n9001 ia\nechten")
        ]
    );
    t!(a180, "i walked 3 blocks down the street in 2023.", []);
    t!(a190, "we live at 12 baker street", []);
    t!(a200, "we sold 12 apples and 3 pears in 2023, 40 in total", []);
}
