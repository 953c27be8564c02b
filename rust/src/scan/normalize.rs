//! The matching view: a normalized copy of the text plus a map back to the original.
//!
//! Detectors never see the original text. Each character is mapped on its own:
//!
//! - invisible characters (zero-width space/joiners, word joiner, BOM, soft hyphen, bidi controls,
//!   variation selectors, tag characters) and combining marks are **removed**, so
//!   `alice@\u{200B}example.com` matches as an e-mail;
//! - full-width forms (`４１１１`, `＠`) and other decimal digits (Arabic-Indic, Devanagari, Bengali,
//!   Thai, mathematical) become their ASCII counterpart;
//! - separators people and tools put between digit groups become the ASCII separator they stand
//!   for: no-break, narrow no-break, thin, figure and ideographic spaces become `' '`; hyphens,
//!   the non-breaking hyphen, figure dash, en dash and minus signs become `'-'`; middle dots and
//!   dot leaders `'.'`; fraction and division slashes `'/'`;
//! - the em dash and the other long dashes become `' '`: they break a sentence the way a space
//!   does (the em dash has Unicode line-break class B2; hyphens and the en dash have BA), and
//!   LLM prose glues them to words (`us—bob@example.com`, `key—sk-proj-…`), where a `'-'` would
//!   join the word to the value and hide a token's boundary;
//! - everything else is kept byte for byte (so operator regexes and keywords see real UTF-8).
//!
//! **Encoded characters** are decoded first, one level, and the character they stand for is then
//! mapped as above (`&#xFF20;` is an `@`, `\u200b` is removed):
//!
//! - HTML character references: `&#64;`, `&#x40;` (with `;`, at most [`MAX_SEQ`] bytes, not NUL)
//!   and the named ones in [`NAMED`] (`&commat;`, `&period;`, `&nbsp;`, `&amp;`, …);
//! - percent-encoding of printable ASCII and the tab: `%40` (`%20`–`%7E`, `%09`; other bytes stay
//!   as they are, so `50% off`, `%0A` and `%E2%82%AC` are untouched);
//! - JSON string escapes, for text that is itself JSON: `\u0040` (and surrogate pairs), `\/`,
//!   `\\`, `\"`, `\n`, `\r`, `\t`;
//! - a **hard line wrap inside a number**: a line break (`\n` or `\r\n`, plus up to 8 spaces or
//!   tabs of indentation) between digits or capitals, at least one side a digit, on a line of at
//!   least [`WRAP_LINE`] bytes, after a run of digits and capitals that does not follow a `.`,
//!   `:`, `/` or a lower-case letter (so the ends of IP addresses, times, versions, paths and
//!   identifiers are left alone). It becomes a `' '` when the run is a group of four (or an Amex
//!   group of six after one of four): a word wrap between groups, `4111 1111⏎1111 1111`; it is
//!   removed inside a longer run or after a shorter group: a hard wrap, `DE8937040044⏎0532…`.
//!
//! Decoding needs a few bytes of look-ahead: a sequence cut by the end of a pushed chunk waits
//! (at most [`MAX_SEQ`] bytes) until the next push or [`NormBuf::finish`], so a stream normalizes
//! chunk by chunk to the same bytes as the whole text. Text without `&`, `%`, `\`, a line break
//! after a digit or capital, or a non-ASCII byte is copied as it is, and [`needs_view`] lets a
//! scan of such text skip the view altogether.
//!
//! A run of removed characters is capped at [`MAX_REMOVED_RUN`] characters and
//! [`MAX_REMOVED_BYTES`] original bytes: later ones are kept as ordinary non-ASCII characters
//! (which end any token). With the longest decoded sequence this bounds how many original bytes
//! can hide behind one normalized byte ([`MAX_ORIG_PER_BYTE`]), and so bounds what a stream holds
//! back.
//!
//! The map stores, per normalized byte, its original byte offset (relative to a base) in the low
//! 28 bits and the length of the original sequence minus one in the top 4 bits; a finding
//! `[s, e)` in the view is redacted as `[orig(s), orig_end(e - 1))` in the original, which covers
//! any invisible characters and whole escape sequences inside the value.

/// Most consecutive invisible characters removed before the rest are kept.
pub const MAX_REMOVED_RUN: u8 = 4;

/// Most original bytes a run of removed characters may span.
pub const MAX_REMOVED_BYTES: usize = 16;

/// Longest original sequence that becomes one character (an escape, an entity, a line wrap).
pub const MAX_SEQ: usize = 12;

/// Most original bytes behind one normalized byte: its own sequence and a removed run before it.
pub const MAX_ORIG_PER_BYTE: usize = MAX_SEQ + MAX_REMOVED_BYTES;

/// Shortest line (in normalized bytes before the break) whose break inside a number is a wrap.
pub const WRAP_LINE: usize = 32;

/// Most spaces or tabs after a wrapping line break.
const WRAP_INDENT: usize = 8;

/// Largest offset (relative to the map base) the map can hold.
pub const MAP_LIMIT: u64 = (1 << 28) - 1;

const LEN_SHIFT: u32 = 28;
const OFF_MASK: u32 = (1 << LEN_SHIFT) - 1;
const _: () = assert!(MAX_SEQ <= 1 << (32 - LEN_SHIFT));

/// The named HTML character references that are decoded: the ones that spell parts of an
/// e-mail, a number or a key, and the spaces and invisible characters that hide them.
pub const NAMED: &[(&str, char)] = &[
    ("amp", '&'),
    ("lt", '<'),
    ("gt", '>'),
    ("quot", '"'),
    ("apos", '\''),
    ("commat", '@'),
    ("period", '.'),
    ("lowbar", '_'),
    ("UnderBar", '_'),
    ("hyphen", '\u{2010}'),
    ("dash", '\u{2010}'),
    ("ndash", '\u{2013}'),
    ("mdash", '\u{2014}'),
    ("minus", '\u{2212}'),
    ("plus", '+'),
    ("colon", ':'),
    ("sol", '/'),
    ("bsol", '\\'),
    ("equals", '='),
    ("percnt", '%'),
    ("num", '#'),
    ("lpar", '('),
    ("rpar", ')'),
    ("comma", ','),
    ("nbsp", '\u{A0}'),
    ("thinsp", '\u{2009}'),
    ("ThinSpace", '\u{2009}'),
    ("ensp", '\u{2002}'),
    ("emsp", '\u{2003}'),
    ("numsp", '\u{2007}'),
    ("puncsp", '\u{2008}'),
    ("zwj", '\u{200D}'),
    ("zwnj", '\u{200C}'),
    ("NoBreak", '\u{2060}'),
    ("shy", '\u{AD}'),
    ("middot", '\u{B7}'),
];

/// What one character becomes in the matching view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mapped {
    /// Kept as its own UTF-8 bytes.
    Keep,
    /// Replaced by one ASCII byte.
    Ascii(u8),
    /// Removed (invisible or combining).
    Remove,
}

/// How `c` appears in the matching view.
pub fn map_char(c: char) -> Mapped {
    let u = c as u32;
    if u < 0x80 {
        return Mapped::Keep;
    }
    match u {
        // invisible: soft hyphen, CGJ, Arabic letter mark, Hangul fillers, Khmer vowel inherents,
        // Mongolian selectors, zero-width space/joiners, LRM/RLM, bidi embeddings and isolates,
        // word joiner and invisible operators, variation selectors, BOM, tag characters
        0xAD
        | 0x34F
        | 0x61C
        | 0x115F
        | 0x1160
        | 0x17B4
        | 0x17B5
        | 0x180B..=0x180F
        | 0x200B..=0x200F
        | 0x202A..=0x202E
        | 0x2060..=0x206F
        | 0x3164
        | 0xFE00..=0xFE0F
        | 0xFEFF
        | 0xFFA0
        | 0xE0000..=0xE007F
        | 0xE0100..=0xE01EF => Mapped::Remove,
        // combining marks
        0x300..=0x36F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F => Mapped::Remove,
        0xA0 | 0x1680 | 0x2000..=0x200A | 0x202F | 0x205F | 0x3000 => Mapped::Ascii(b' '),
        // em dash, horizontal bar, two- and three-em dashes, their vertical and small forms
        0x2014 | 0x2015 | 0x2E3A | 0x2E3B | 0xFE31 | 0xFE58 => Mapped::Ascii(b' '),
        0x2028 | 0x2029 => Mapped::Ascii(b'\n'),
        // hyphens (Armenian, Hebrew maqaf, Canadian syllabics, Mongolian, Unicode hyphen and
        // non-breaking hyphen, double/oblique hyphens), figure dash, en dash and its vertical form,
        // minus signs (modifier, mathematical, heavy, small)
        0x58A
        | 0x5BE
        | 0x1400
        | 0x1806
        | 0x2010..=0x2013
        | 0x2E17
        | 0x2E1A
        | 0x2E40
        | 0x2E5D
        | 0xFE32
        | 0x2D7
        | 0x2212
        | 0x2796
        | 0xFE63 => Mapped::Ascii(b'-'),
        // middle dot, one-dot leader, hyphenation point, bullet and dot operators, small full stop
        0xB7 | 0x2024 | 0x2027 | 0x2219 | 0x22C5 | 0xFE52 => Mapped::Ascii(b'.'),
        // fraction and division slashes
        0x2044 | 0x2215 => Mapped::Ascii(b'/'),
        0xFE6B => Mapped::Ascii(b'@'),
        0xFF01..=0xFF5E => Mapped::Ascii((u - 0xFEE0) as u8),
        0x660..=0x669 => digit(u - 0x660),
        0x6F0..=0x6F9 => digit(u - 0x6F0),
        0x966..=0x96F => digit(u - 0x966),
        0x9E6..=0x9EF => digit(u - 0x9E6),
        0xE50..=0xE59 => digit(u - 0xE50),
        0x1D7CE..=0x1D7FF => digit((u - 0x1D7CE) % 10),
        _ => Mapped::Keep,
    }
}

fn digit(d: u32) -> Mapped {
    Mapped::Ascii(b'0' + d as u8)
}

/// A normalized buffer with its map back to original byte offsets.
#[derive(Clone, Debug, Default)]
pub struct NormBuf {
    /// The normalized bytes (valid UTF-8).
    pub bytes: Vec<u8>,
    /// Per normalized byte: original offset relative to `base` (low 28 bits), length - 1 (top 4).
    pub map: Vec<u32>,
    /// Absolute original byte offset that `map` entries are relative to.
    pub base: u64,
    /// Absolute original byte offset just past the last original byte normalized (pushed text
    /// waiting in `tail` is not).
    pub orig_end: u64,
    removed_run: u8,
    removed_bytes: u8,
    /// Pushed text not normalized yet: an encoded sequence cut by the end of the last push.
    tail: String,
}

/// What the bytes at a special byte (`&`, `%`, `\`, a line break) stand for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dec {
    /// The character `.0`, encoded in `.1` bytes.
    Char(char, usize),
    /// A line wrap of `.1` bytes inside a number, mapped to `.0` (a space or nothing).
    Wrap(Mapped, usize),
    /// Nothing: the byte is itself.
    Plain,
    /// Undecided until more text arrives.
    Wait,
}

impl NormBuf {
    /// An empty buffer whose offsets start at absolute original offset `base`.
    pub fn new(base: u64) -> NormBuf {
        NormBuf {
            base,
            orig_end: base,
            ..NormBuf::default()
        }
    }

    /// Appends `chunk`, which follows everything pushed before. An encoded sequence cut by the
    /// end of `chunk` waits for the next push (or [`NormBuf::finish`]).
    ///
    /// The caller keeps `orig_end - base` under [`MAP_LIMIT`] (by rebasing or chunking).
    pub fn push(&mut self, chunk: &str) {
        if self.tail.is_empty() {
            let k = self.normalize(chunk, false);
            self.tail.push_str(&chunk[k..]);
        } else {
            let mut s = std::mem::take(&mut self.tail);
            s.push_str(chunk);
            let k = self.normalize(&s, false);
            s.drain(..k);
            self.tail = s;
        }
    }

    /// Normalizes what is still waiting: no more text follows, so an unfinished sequence is
    /// kept as it is.
    pub fn finish(&mut self) {
        let s = std::mem::take(&mut self.tail);
        let k = self.normalize(&s, true);
        debug_assert_eq!(k, s.len());
    }

    /// Original bytes pushed but not normalized yet.
    #[cfg(test)]
    pub fn waiting(&self) -> usize {
        self.tail.len()
    }

    /// Normalizes a prefix of `s` (which starts at `orig_end`) and returns its length: all of
    /// `s` unless a sequence at its end needs more text (never with `eof`).
    fn normalize(&mut self, s: &str, eof: bool) -> usize {
        let b = s.as_bytes();
        let rel = (self.orig_end - self.base) as u32;
        self.bytes.reserve(b.len());
        self.map.reserve(b.len());
        let mut i = 0;
        // where the current plain run ends (found once, however often a line break cuts it)
        let mut plain_end = 0;
        while i < b.len() {
            // copy plain ASCII runs whole; look closer only at the other bytes
            if plain_end <= i {
                plain_end = i + plain_run::<false>(&b[i..]);
            }
            let mut run = plain_end - i;
            if run > 0 {
                run = wrap_cut(&b[i..plain_end], self.bytes.last().copied());
            }
            if run > 0 {
                self.bytes.extend_from_slice(&b[i..i + run]);
                self.map.extend(rel + i as u32..rel + (i + run) as u32);
                self.removed_run = 0;
                self.removed_bytes = 0;
                i += run;
                if i == b.len() {
                    break;
                }
            }
            let at = rel + i as u32;
            let c = b[i];
            if c < 0x80 {
                let dec = match c {
                    b'&' => entity(&b[i..], eof),
                    b'%' => percent(&b[i..], eof),
                    b'\\' => json_escape(&b[i..], eof),
                    _ => wrap(&s[i..], eof, &self.bytes),
                };
                match dec {
                    Dec::Wait => break,
                    Dec::Plain => {
                        self.keep_ascii(c, at, 1);
                        i += 1;
                    }
                    Dec::Char(ch, len) => {
                        self.put(ch, map_char(ch), at, len);
                        i += len;
                    }
                    Dec::Wrap(m, len) => {
                        if !self.put_mapped(m, at, len) {
                            // past the removal budget the break stays a break
                            for k in 0..len {
                                self.keep_ascii(b[i + k], at + k as u32, 1);
                            }
                        }
                        i += len;
                    }
                }
                continue;
            }
            let Some(ch) = s[i..].chars().next() else { break };
            let len = ch.len_utf8();
            self.put(ch, map_char(ch), at, len);
            i += len;
        }
        self.orig_end += i as u64;
        i
    }

    fn keep_ascii(&mut self, c: u8, at: u32, len: usize) {
        self.bytes.push(c);
        self.map.push(at | ((len as u32 - 1) << LEN_SHIFT));
        self.removed_run = 0;
        self.removed_bytes = 0;
    }

    /// Appends character `ch`, read from `len` original bytes at `at`, mapped as `m`.
    fn put(&mut self, ch: char, m: Mapped, at: u32, len: usize) {
        if self.put_mapped(m, at, len) {
            return;
        }
        // kept as its own UTF-8 bytes (also an invisible character past the removal budget,
        // which leaves the run "full" until a visible character resets it)
        let mut buf = [0u8; 4];
        let enc = ch.encode_utf8(&mut buf).as_bytes();
        if m != Mapped::Remove {
            self.removed_run = 0;
            self.removed_bytes = 0;
        }
        if enc.len() == len {
            // the character itself: each byte maps to itself
            for (k, &x) in enc.iter().enumerate() {
                self.bytes.push(x);
                self.map.push(at + k as u32);
            }
        } else {
            // decoded: every byte maps to the whole sequence
            for &x in enc {
                self.bytes.push(x);
                self.map.push(at | ((len as u32 - 1) << LEN_SHIFT));
            }
        }
    }

    /// Appends an ASCII replacement or removes; `false` for [`Mapped::Keep`] and for a removal
    /// past the budget (the caller keeps the original then).
    fn put_mapped(&mut self, m: Mapped, at: u32, len: usize) -> bool {
        match m {
            Mapped::Ascii(x) => {
                self.keep_ascii(x, at, len);
                true
            }
            Mapped::Remove
                if self.removed_run < MAX_REMOVED_RUN && usize::from(self.removed_bytes) + len <= MAX_REMOVED_BYTES =>
            {
                self.removed_run += 1;
                self.removed_bytes += len as u8;
                true
            }
            Mapped::Remove => {
                // the run stays "full" until a visible character resets it
                self.removed_run = MAX_REMOVED_RUN;
                false
            }
            Mapped::Keep => false,
        }
    }

    /// Drops the first `k` normalized bytes and rebases the map so `base` is the original offset
    /// of the new first byte (or `orig_end` when the buffer becomes empty).
    pub fn drain_front(&mut self, k: usize) {
        self.bytes.drain(..k);
        self.map.drain(..k);
        let new_base = match self.map.first() {
            Some(&m) => self.base + u64::from(m & OFF_MASK),
            None => self.orig_end,
        };
        let delta = (new_base - self.base) as u32;
        if delta != 0 {
            for m in &mut self.map {
                *m -= delta;
            }
        }
        self.base = new_base;
    }
}

/// `Wait` if more text may still come, else `Plain`: a sequence cut by the end.
fn short(eof: bool) -> Dec {
    if eof {
        Dec::Plain
    } else {
        Dec::Wait
    }
}

fn hex_val(c: u8) -> Option<u32> {
    (c as char).to_digit(16)
}

/// An HTML character reference at `b[0] == b'&'`.
fn entity(b: &[u8], eof: bool) -> Dec {
    let Some(&c1) = b.get(1) else { return short(eof) };
    if c1 == b'#' {
        let (radix, from) = match b.get(2) {
            None => return short(eof),
            Some(b'x' | b'X') => (16, 3),
            Some(_) => (10, 2),
        };
        let mut v: u32 = 0;
        let mut i = from;
        loop {
            if i >= MAX_SEQ {
                return Dec::Plain;
            }
            let Some(&c) = b.get(i) else { return short(eof) };
            if c == b';' && i > from {
                return match char::from_u32(v) {
                    Some(ch) if ch != '\0' => Dec::Char(ch, i + 1),
                    _ => Dec::Plain,
                };
            }
            match (c as char).to_digit(radix) {
                Some(d) => v = v.saturating_mul(radix).saturating_add(d).min(0x11_0000),
                None => return Dec::Plain,
            }
            i += 1;
        }
    }
    let mut i = 1;
    loop {
        if i >= MAX_SEQ {
            return Dec::Plain;
        }
        let Some(&c) = b.get(i) else {
            // wait only while the letters so far may still spell a name
            let part = &b[1..i];
            return if NAMED.iter().any(|(n, _)| n.as_bytes().starts_with(part)) {
                short(eof)
            } else {
                Dec::Plain
            };
        };
        if c == b';' {
            let name = &b[1..i];
            return NAMED
                .iter()
                .find(|(n, _)| n.as_bytes() == name)
                .map_or(Dec::Plain, |&(_, ch)| Dec::Char(ch, i + 1));
        }
        if !c.is_ascii_alphanumeric() {
            return Dec::Plain;
        }
        i += 1;
    }
}

/// Percent-encoding of a printable ASCII byte at `b[0] == b'%'`.
fn percent(b: &[u8], eof: bool) -> Dec {
    let Some(&h1) = b.get(1) else { return short(eof) };
    let Some(hi) = hex_val(h1).filter(|&d| d == 0 || (2..=7).contains(&d)) else {
        return Dec::Plain;
    };
    let Some(&h2) = b.get(2) else { return short(eof) };
    match hex_val(h2) {
        // printable ASCII, and the tab (`%09`), a blank between a number's groups
        Some(lo) if matches!(hi * 16 + lo, 0x09 | 0x20..=0x7E) => Dec::Char(char::from((hi * 16 + lo) as u8), 3),
        _ => Dec::Plain,
    }
}

/// Four hex digits at `b[at..]`: `Ok(Some(v))`, `Ok(None)` if not hex, `Err(())` if cut short.
fn hex4(b: &[u8], at: usize) -> Result<Option<u32>, ()> {
    let mut v = 0;
    for k in 0..4 {
        let Some(&c) = b.get(at + k) else { return Err(()) };
        match hex_val(c) {
            Some(d) => v = v * 16 + d,
            None => return Ok(None),
        }
    }
    Ok(Some(v))
}

/// A JSON string escape at `b[0] == b'\\'`.
fn json_escape(b: &[u8], eof: bool) -> Dec {
    let Some(&c1) = b.get(1) else { return short(eof) };
    let ch = match c1 {
        b'/' => '/',
        b'\\' => '\\',
        b'"' => '"',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => {
            let u = match hex4(b, 2) {
                Err(()) => return short(eof),
                Ok(None) => return Dec::Plain,
                Ok(Some(u)) => u,
            };
            if (0xD800..0xDC00).contains(&u) {
                // a high surrogate counts only with its low half
                match (b.get(6), b.get(7)) {
                    (None, _) | (Some(b'\\'), None) => return short(eof),
                    (Some(b'\\'), Some(b'u')) => {}
                    _ => return Dec::Plain,
                }
                let lo = match hex4(b, 8) {
                    Err(()) => return short(eof),
                    Ok(Some(lo)) if (0xDC00..0xE000).contains(&lo) => lo,
                    Ok(_) => return Dec::Plain,
                };
                let c = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                return char::from_u32(c).map_or(Dec::Plain, |ch| Dec::Char(ch, 12));
            }
            return match char::from_u32(u) {
                Some(ch) if ch != '\0' => Dec::Char(ch, 6),
                _ => Dec::Plain,
            };
        }
        _ => return Dec::Plain,
    };
    Dec::Char(ch, 2)
}

/// A line break at `s[0]` (`\n` or `\r`) that hard-wraps a number, given the normalized bytes
/// before it (`prior`); see the module notes for the rule.
fn wrap(s: &str, eof: bool, prior: &[u8]) -> Dec {
    let b = s.as_bytes();
    let Some(&last) = prior.last().filter(|c| is_num_byte(**c)) else {
        return Dec::Plain;
    };
    let mut i = match b[0] {
        b'\n' => 1,
        b'\r' => match b.get(1) {
            None => return short(eof),
            Some(b'\n') => 2,
            Some(_) => return Dec::Plain,
        },
        _ => return Dec::Plain,
    };
    let indent = i;
    while i - indent < WRAP_INDENT && matches!(b.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    let next = match b.get(i) {
        None => return short(eof),
        Some(&c) if c < 0x80 => c,
        Some(_) => match s[i..].chars().next().map(map_char) {
            Some(Mapped::Ascii(c)) => c,
            _ => 0,
        },
    };
    if !is_num_byte(next) || !(last.is_ascii_digit() || next.is_ascii_digit()) {
        return Dec::Plain;
    }
    if !next.is_ascii_digit() {
        // a capital goes on a number only before another digit or capital (`ABNA 0417`, not
        // `Thanks`)
        match b.get(i + 1) {
            None => return short(eof),
            Some(&c) if is_num_byte(c) => {}
            Some(_) => return Dec::Plain,
        }
    }
    let n = prior.len();
    if n < WRAP_LINE || prior[n - WRAP_LINE..].contains(&b'\n') {
        return Dec::Plain;
    }
    // the run of digits and capitals the break ends (counted up to 7)
    let run = prior.iter().rev().take(7).take_while(|c| is_num_byte(**c)).count();
    let before = (run < n).then(|| prior[n - run - 1]);
    // a run glued to a `.`, `:` or `/` ends an IP address, a time, a version or a path; one
    // glued to a lower-case letter ends a word or an identifier
    if before.is_some_and(|c| matches!(c, b'.' | b':' | b'/') || c.is_ascii_lowercase()) {
        return Dec::Plain;
    }
    // a complete group of four (or an Amex middle group of six after one of four): the break
    // stands for the space between groups; inside a longer run it is cut out
    let amex = run == 6
        && n >= 11
        && matches!(prior[n - 7], b' ' | b'-')
        && prior[n - 11..n - 7].iter().all(u8::is_ascii_digit);
    let m = if run == 4 || amex {
        Mapped::Ascii(b' ')
    } else if last.is_ascii_digit() || run >= 5 {
        Mapped::Remove
    } else {
        return Dec::Plain;
    };
    Dec::Wrap(m, i)
}

/// A byte of a number a wrap may cut: a digit or a capital (IBANs carry capitals).
fn is_num_byte(c: u8) -> bool {
    c.is_ascii_digit() || c.is_ascii_uppercase()
}

/// Whether text `b` needs a mapped view: it holds a non-ASCII byte or something the view
/// decodes (a superset: a `true` may still decode nothing). `false` means the view of `b` is `b`
/// itself. One pass, sixteen bytes at a time, that stops only at `&`, `%`, `\`, non-ASCII bytes
/// and line breaks right after a digit or capital.
pub fn needs_view(b: &[u8]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { needs_view_avx2(b) };
    }
    needs_view_sse2(b)
}

/// [`needs_view`] 16 bytes at a time (SSE2, or plain code off x86-64).
fn needs_view_sse2(b: &[u8]) -> bool {
    let n = b.len();
    let mut i = 0;
    // whether the byte before the block is a digit or capital
    let mut carry = 0u32;
    while i + 16 <= n {
        let (special, breaks, num) = view_masks16(&b[i..i + 16]);
        let mut stops = special | (breaks & ((num << 1) | carry));
        carry = (num >> 15) & 1;
        while stops != 0 {
            if view_hit(b, i + stops.trailing_zeros() as usize) {
                return true;
            }
            stops &= stops - 1;
        }
        i += 16;
    }
    (i..n).any(|j| {
        let c = b[j];
        let stop = is_special::<false>(c) || (matches!(c, b'\n' | b'\r') && j > 0 && is_num_byte(b[j - 1]));
        stop && view_hit(b, j)
    })
}

/// [`needs_view`] 32 bytes at a time.
///
/// # Safety
///
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn needs_view_avx2(b: &[u8]) -> bool {
    let n = b.len();
    let mut i = 0;
    let mut carry = 0u32;
    // The last bytes (most JSON keys and values are all of their text) are read from a copy padded
    // with zeros, which are neither special nor breaks.
    let mut tail = [0u8; 32];
    while i < n {
        let block = if i + 32 <= n {
            b.as_ptr().wrapping_add(i)
        } else {
            tail[..n - i].copy_from_slice(&b[i..]);
            tail.as_ptr()
        };
        // SAFETY: `block` points to 32 readable bytes (of `b` when `i + 32 <= n`, else of `tail`);
        // the CPU has AVX2.
        let (special, breaks, num) = unsafe { view_masks32(block) };
        let mut stops = special | (breaks & ((num << 1) | carry));
        carry = num >> 31;
        while stops != 0 {
            if view_hit(b, i + stops.trailing_zeros() as usize) {
                return true;
            }
            stops &= stops - 1;
        }
        i += 32;
    }
    false
}

/// The masks of the 32 bytes at `p` that [`needs_view`] reads: special bytes (`&`, `%`, `\`,
/// non-ASCII), line breaks, and digits or capitals.
///
/// # Safety
///
/// `p` must point to 32 readable bytes, and the CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn view_masks32(p: *const u8) -> (u32, u32, u32) {
    use std::arch::x86_64::{
        __m256i, _mm256_add_epi8, _mm256_cmpeq_epi8, _mm256_cmpgt_epi8, _mm256_loadu_si256, _mm256_movemask_epi8,
        _mm256_or_si256, _mm256_set1_epi8,
    };
    // SAFETY: the caller guarantees 32 readable bytes at `p`.
    let x = unsafe { _mm256_loadu_si256(p.cast::<__m256i>()) };
    let eq = |c: u8| _mm256_cmpeq_epi8(x, _mm256_set1_epi8(c as i8));
    let special = _mm256_or_si256(x, _mm256_or_si256(_mm256_or_si256(eq(b'&'), eq(b'%')), eq(b'\\')));
    let breaks = _mm256_or_si256(eq(b'\n'), eq(b'\r'));
    // a range [lo, lo + len) test: shift lo to -128, then one signed compare
    let range = |lo: u8, len: u8| {
        let shifted = _mm256_add_epi8(x, _mm256_set1_epi8((0x80u8.wrapping_sub(lo)) as i8));
        _mm256_cmpgt_epi8(_mm256_set1_epi8((0x80u8.wrapping_add(len)) as i8), shifted)
    };
    let num = _mm256_movemask_epi8(_mm256_or_si256(range(b'0', 10), range(b'A', 26))) as u32;
    (
        _mm256_movemask_epi8(special) as u32,
        _mm256_movemask_epi8(breaks) as u32,
        num,
    )
}

/// Whether the byte at `i` (a `needs_view` stop) starts something the view changes.
fn view_hit(b: &[u8], i: usize) -> bool {
    let next = b.get(i + 1).copied().unwrap_or(0);
    match b[i] {
        b'&' => next == b'#' || next.is_ascii_alphabetic(),
        b'%' => hex_val(next).is_some_and(|d| (2..=7).contains(&d)) && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit),
        b'\\' => matches!(next, b'/' | b'\\' | b'"' | b'n' | b'r' | b't' | b'u'),
        c @ (b'\n' | b'\r') => {
            let mut j = i + 1;
            if c == b'\r' {
                if next != b'\n' {
                    return false;
                }
                j += 1;
            }
            let indent = j;
            while j - indent < WRAP_INDENT && matches!(b.get(j), Some(b' ' | b'\t')) {
                j += 1;
            }
            b.get(j).is_some_and(|&c| is_num_byte(c))
        }
        _ => true,
    }
}

/// Bit masks of a 16-byte block: `&`, `%`, `\` or non-ASCII; `\n` or `\r`; digit or capital.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn view_masks16(block: &[u8]) -> (u32, u32, u32) {
    use std::arch::x86_64::{
        __m128i, _mm_add_epi8, _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    debug_assert!(block.len() >= 16);
    // SAFETY: `block` has at least 16 readable bytes (the caller slices exactly 16) and SSE2 is
    // part of the x86-64 baseline, so the unaligned load and the SSE2 intrinsics are available.
    unsafe {
        let x = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
        let eq = |c: u8| _mm_cmpeq_epi8(x, _mm_set1_epi8(c as i8));
        let special = _mm_or_si128(x, _mm_or_si128(_mm_or_si128(eq(b'&'), eq(b'%')), eq(b'\\')));
        let breaks = _mm_or_si128(eq(b'\n'), eq(b'\r'));
        // a range [lo, lo + len) test: shift lo to -128, then one signed compare
        let range = |lo: u8, len: u8| {
            let shifted = _mm_add_epi8(x, _mm_set1_epi8((0x80u8.wrapping_sub(lo)) as i8));
            _mm_cmplt_epi8(shifted, _mm_set1_epi8((0x80u8.wrapping_add(len)) as i8))
        };
        let num = _mm_or_si128(range(b'0', 10), range(b'A', 26));
        (
            _mm_movemask_epi8(special) as u32,
            _mm_movemask_epi8(breaks) as u32,
            _mm_movemask_epi8(num) as u32,
        )
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn view_masks16(block: &[u8]) -> (u32, u32, u32) {
    block[..16].iter().enumerate().fold((0, 0, 0), |(s, b, d), (k, &x)| {
        (
            s | (u32::from(is_special::<false>(x)) << k),
            b | (u32::from(matches!(x, b'\n' | b'\r')) << k),
            d | (u32::from(is_num_byte(x)) << k),
        )
    })
}

/// Read access to the matching view: the normalized bytes and where each came from.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    /// Normalized bytes.
    pub t: &'a [u8],
    /// `None` when the view is the original text itself (ASCII), offset by `base`.
    map: Option<&'a [u32]>,
    base: u64,
    orig_end: u64,
    /// No more text will follow `t`.
    pub eof: bool,
}

impl<'a> View<'a> {
    /// A view over ASCII original text starting at absolute offset `base`.
    pub fn identity(t: &'a [u8], base: u64, eof: bool) -> View<'a> {
        View {
            t,
            map: None,
            base,
            orig_end: base + t.len() as u64,
            eof,
        }
    }

    /// A view over a normalized buffer.
    pub fn mapped(buf: &'a NormBuf, eof: bool) -> View<'a> {
        View {
            t: &buf.bytes,
            map: Some(&buf.map),
            base: buf.base,
            orig_end: buf.orig_end,
            eof,
        }
    }

    /// A view of `t`, a copy of this view's bytes from `lo` on (changed in place, each byte where
    /// it was), mapped to the same original text: byte `i` of it is byte `lo + i` of this one.
    pub fn window<'b>(&self, lo: usize, t: &'b [u8]) -> View<'b>
    where
        'a: 'b,
    {
        debug_assert!(lo + t.len() <= self.t.len());
        View {
            t,
            map: self.map.map(|m| &m[lo..]),
            base: if self.map.is_some() {
                self.base
            } else {
                self.base + lo as u64
            },
            orig_end: self.orig_end,
            eof: self.eof,
        }
    }

    /// Absolute original offset where normalized byte `i` starts; `i == len` gives the end.
    #[inline]
    pub fn orig(&self, i: usize) -> u64 {
        match self.map {
            None => self.base + i as u64,
            Some(m) => m.get(i).map_or(self.orig_end, |&x| self.base + u64::from(x & OFF_MASK)),
        }
    }

    /// Absolute original offset just past the character that produced normalized byte `i`.
    #[inline]
    pub fn orig_end(&self, i: usize) -> u64 {
        match self.map {
            None => self.base + i as u64 + 1,
            Some(m) => {
                let x = m[i];
                self.base + u64::from(x & OFF_MASK) + 1 + u64::from(x >> LEN_SHIFT)
            }
        }
    }

    /// The largest `e` in `[s, len]` with `orig(e) - orig(s) <= cap`, i.e. how far a candidate
    /// starting at `s` may reach when its length is capped in original bytes.
    pub fn reach(&self, s: usize, cap: u64) -> usize {
        match self.map {
            None => (s as u64 + cap).min(self.t.len() as u64) as usize,
            Some(_) => {
                let limit = self.orig(s) + cap;
                let (mut lo, mut hi) = (s, self.t.len());
                while lo < hi {
                    let mid = lo + (hi - lo).div_ceil(2);
                    if self.orig(mid) <= limit {
                        lo = mid;
                    } else {
                        hi = mid - 1;
                    }
                }
                lo
            }
        }
    }
}

/// Length of the prefix of `b` that is ASCII and holds none of `&`, `%`, `\` (nor, with `NL`,
/// `\n`): bytes the view copies as they are. Sixteen bytes at a time.
fn plain_run<const NL: bool>(b: &[u8]) -> usize {
    let mut i = 0;
    // long plain stretches (prose) 64 bytes at a time, one test per 64
    while i + 64 <= b.len() && !any_special64::<NL>(&b[i..i + 64]) {
        i += 64;
    }
    while i + 16 <= b.len() {
        let m = special_mask16::<NL>(&b[i..i + 16]);
        if m != 0 {
            return i + m.trailing_zeros() as usize;
        }
        i += 16;
    }
    i + b[i..].iter().position(|&x| is_special::<NL>(x)).unwrap_or(b.len() - i)
}

#[inline(always)]
fn is_special<const NL: bool>(x: u8) -> bool {
    x >= 0x80 || matches!(x, b'&' | b'%' | b'\\') || (NL && x == b'\n')
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn special_mask16<const NL: bool>(block: &[u8]) -> u32 {
    use std::arch::x86_64::{__m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8};
    debug_assert!(block.len() >= 16);
    // SAFETY: `block` has at least 16 readable bytes (the caller slices exactly 16) and SSE2 is
    // part of the x86-64 baseline, so the unaligned load and the SSE2 intrinsics are available.
    unsafe {
        let x = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
        let eq = |c: u8| _mm_cmpeq_epi8(x, _mm_set1_epi8(c as i8));
        let mut m = _mm_or_si128(_mm_or_si128(eq(b'&'), eq(b'%')), eq(b'\\'));
        if NL {
            m = _mm_or_si128(m, eq(b'\n'));
        }
        // the high bit of a non-ASCII byte is its own mask bit
        _mm_movemask_epi8(_mm_or_si128(x, m)) as u32
    }
}

/// Whether any of the 64 bytes of `block` stops a plain run.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn any_special64<const NL: bool>(block: &[u8]) -> bool {
    use std::arch::x86_64::{__m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8};
    debug_assert!(block.len() >= 64);
    // SAFETY: `block` has at least 64 readable bytes (the caller slices exactly 64), so the four
    // unaligned 16-byte loads stay inside it; SSE2 is part of the x86-64 baseline.
    unsafe {
        let (amp, pct, bsl, nl) = (
            _mm_set1_epi8(b'&' as i8),
            _mm_set1_epi8(b'%' as i8),
            _mm_set1_epi8(b'\\' as i8),
            _mm_set1_epi8(b'\n' as i8),
        );
        let mut acc = _mm_set1_epi8(0);
        for k in 0..4 {
            let x = _mm_loadu_si128(block.as_ptr().add(16 * k).cast::<__m128i>());
            let mut m = _mm_or_si128(_mm_cmpeq_epi8(x, amp), _mm_cmpeq_epi8(x, pct));
            m = _mm_or_si128(m, _mm_cmpeq_epi8(x, bsl));
            if NL {
                m = _mm_or_si128(m, _mm_cmpeq_epi8(x, nl));
            }
            acc = _mm_or_si128(acc, _mm_or_si128(x, m));
        }
        _mm_movemask_epi8(acc) != 0
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn any_special64<const NL: bool>(block: &[u8]) -> bool {
    block[..64].iter().any(|&x| is_special::<NL>(x))
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn special_mask16<const NL: bool>(block: &[u8]) -> u32 {
    block[..16]
        .iter()
        .enumerate()
        .fold(0, |m, (k, &x)| m | (u32::from(is_special::<NL>(x)) << k))
}

/// Where a plain run must stop for a line break that may wrap a number: the first `\n` or `\r`
/// after a digit or capital (`last` is the normalized byte before the run).
fn wrap_cut(run: &[u8], last: Option<u8>) -> usize {
    for k in memchr::memchr2_iter(b'\n', b'\r', run) {
        let prev = if k == 0 { last } else { Some(run[k - 1]) };
        if prev.is_some_and(is_num_byte) {
            return k;
        }
    }
    run.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_runs() {
        let text = "abcdefghijklmnopqrstuvwxyz&0123456789%abcdefghijklmnop\\q\nr\rsé0123456789ü";
        for i in 0..=text.len() {
            let b = &text.as_bytes()[i..];
            let want = |nl: bool| {
                b.iter()
                    .position(|&x| x >= 0x80 || matches!(x, b'&' | b'%' | b'\\') || (nl && x == b'\n'))
                    .unwrap_or(b.len())
            };
            assert_eq!(plain_run::<false>(b), want(false), "{i}");
            assert_eq!(plain_run::<true>(b), want(true), "{i}");
        }
    }

    fn norm(s: &str) -> (String, Vec<(u64, u64)>) {
        let mut b = NormBuf::new(0);
        b.push(s);
        b.finish();
        let v = View::mapped(&b, true);
        let spans = (0..b.bytes.len()).map(|i| (v.orig(i), v.orig_end(i))).collect();
        (String::from_utf8(b.bytes.clone()).unwrap(), spans)
    }

    macro_rules! t {
        ($name:ident, $input:expr, $want:expr) => {
            #[test]
            fn $name() {
                assert_eq!(norm($input).0, $want);
            }
        };
    }
    t!(norm010, "plain ascii", "plain ascii");
    t!(norm020, "a\u{200B}b\u{200D}c\u{FEFF}d", "abcd");
    t!(norm030, "４１１１－１１１１", "4111-1111");
    t!(norm040, "alice＠example．com", "alice@example.com");
    t!(norm050, "1\u{00A0}2\u{202F}3\u{2009}4", "1 2 3 4");
    t!(norm060, "e\u{301}t\u{E9}", "et\u{E9}");
    t!(norm070, "\u{661}\u{662}\u{663}", "123");
    t!(norm080, "メールはa@b.comです", "メールはa@b.comです");
    t!(norm090, "415\u{2010}555\u{2011}0100", "415-555-0100");
    t!(norm100, "𝟏𝟐", "12");
    t!(norm110, "536\u{2013}22\u{2012}1234\u{2212}0", "536-22-1234-0");
    t!(norm120, "536\u{2014}22\u{2015}1234", "536 22 1234");
    t!(norm130, "4111\u{B7}1111\u{2024}1111\u{FE52}1111", "4111.1111.1111.1111");
    t!(norm140, "1\u{2007}2\u{2008}3\u{205F}4\u{3000}5", "1 2 3 4 5");
    t!(norm150, "030\u{2044}1234\u{2215}5", "030/1234/5");
    t!(norm160, "us\u{2014}bob \u{2796}\u{2D7}\u{FE32}", "us bob ---");

    t!(norm170, "a&#64;b&#x40;c&commat;d%40e\\u0040f", "a@b@c@d@e@f");
    t!(norm180, "&#xFF20;&#8203;&nbsp;&amp;&lt;", "@ &<");
    t!(
        norm190,
        "50% off, %zz, %0A, %E2%82%AC, &unknown; &#0; &#xD800; \\q \\u00zz",
        "50% off, %zz, %0A, %E2%82%AC, &unknown; &#0; &#xD800; \\q \\u00zz"
    );
    t!(norm200, "\\ud83d\\ude00 \\ud83d \\/\\\\\\\"", "\u{1F600} \\ud83d /\\\"");
    t!(norm210, "&#x00000040; &#x000000040;", "@ &#x000000040;");
    t!(norm220, "a\\nb\\tc\\rd", "a\nb\tc\rd");

    #[test]
    fn decoded_sequences_map_to_their_whole_span() {
        let (n, spans) = norm("a&#64;%41\\u00e9");
        assert_eq!(n, "a@A\u{e9}");
        assert_eq!(spans, vec![(0, 1), (1, 6), (6, 9), (9, 15), (9, 15)]);
    }

    #[test]
    fn wraps_inside_numbers() {
        let long = "x".repeat(WRAP_LINE);
        let w = |s: &str| norm(&format!("{long} {s}")).0[WRAP_LINE + 1..].to_string();
        assert_eq!(w("4111 1111\n1111"), "4111 1111 1111");
        assert_eq!(w("4111 11\r\n  11 1"), "4111 1111 1");
        assert_eq!(w("DE89 3704\n\t０532"), "DE89 3704 0532");
        assert_eq!(w("ES91\n2100 0418"), "ES91 2100 0418");
        assert_eq!(w("NL91\n    ABNA 0417"), "NL91 ABNA 0417");
        assert_eq!(w("GB29 NWBK\r\n6016"), "GB29 NWBK 6016");
        assert_eq!(w("3782 822463\r\n10005"), "3782 822463 10005");
        assert_eq!(w("411111\n1111111111"), "4111111111111111");
        assert_eq!(w("FR1420041010050500013M\n02606"), "FR1420041010050500013M02606");
        assert_eq!(w("NASA\nTEAM"), "NASA\nTEAM");
        assert_eq!(w("USA\n2024"), "USA\n2024");
        assert_eq!(w("0130 00\nThanks"), "0130 00\nThanks");
        assert_eq!(w("0130 00\nTHANKS"), "0130 00THANKS");
        // not a wrap: no digit after, a letter before, an IP's end, indentation too deep
        assert_eq!(w("4111\nabc"), "4111\nabc");
        assert_eq!(w("ab1\n2"), "ab1\n2");
        assert_eq!(w("10.0.0.1\n2024"), "10.0.0.1\n2024");
        assert_eq!(w("12:30\n2024"), "12:30\n2024");
        assert_eq!(
            w(&format!("4111 1111\n{}1", " ".repeat(WRAP_INDENT + 1))),
            format!("4111 1111\n{}1", " ".repeat(WRAP_INDENT + 1))
        );
        // a short line is a list, not a wrap
        assert_eq!(norm("4111 1111\n1111").0, "4111 1111\n1111");
    }

    #[test]
    fn encoded_text_normalizes_the_same_in_any_chunks() {
        let long = "x".repeat(WRAP_LINE);
        let s = format!("{long} 4111 11\r\n  11&#64;%4x%41\\ud83d\\ude00\\u00\u{200B}&commat&amp;\\/é４&#x200B;&#x200B;&#x200B;&#x200B;&#x200B;z%");
        let mut whole = NormBuf::new(0);
        whole.push(&s);
        whole.finish();
        for cut in (0..=s.len()).filter(|&c| s.is_char_boundary(c)) {
            let mut parts = NormBuf::new(0);
            parts.push(&s[..cut]);
            parts.push(&s[cut..]);
            parts.finish();
            assert_eq!(whole.bytes, parts.bytes, "{cut}");
            assert_eq!(whole.map, parts.map, "{cut}");
        }
        let mut chars = NormBuf::new(0);
        for (i, c) in s.char_indices() {
            chars.push(&s[i..i + c.len_utf8()]);
            assert!(chars.waiting() < MAX_SEQ);
        }
        chars.finish();
        assert_eq!(whole.bytes, chars.bytes);
        assert_eq!(whole.map, chars.map);
    }

    #[test]
    fn needs_view_paths_agree_with_the_byte_rule() {
        let reference = |b: &[u8]| {
            (0..b.len()).any(|j| {
                let c = b[j];
                let stop = is_special::<false>(c) || (matches!(c, b'\n' | b'\r') && j > 0 && is_num_byte(b[j - 1]));
                stop && view_hit(b, j)
            })
        };
        let alphabet: &[u8] = b"ab Z09&#%4\\u/\n\r \t.x";
        let mut x: u64 = 11;
        for len in [0usize, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100] {
            for _ in 0..400 {
                let mut t: Vec<u8> = (0..len)
                    .map(|_| {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        // mostly plain letters, so that most texts need no view
                        let r = (x >> 33) as usize;
                        if r.is_multiple_of(9) {
                            alphabet[r % alphabet.len()]
                        } else {
                            b'a' + (r % 26) as u8
                        }
                    })
                    .collect();
                if len > 0 && (x >> 40).is_multiple_of(5) {
                    let k = (x >> 20) as usize % len;
                    t[k] = 0xC3; // a non-ASCII byte anywhere
                }
                let want = reference(&t);
                assert_eq!(needs_view(&t), want, "{t:?}");
                assert_eq!(needs_view_sse2(&t), want, "{t:?}");
            }
        }
    }

    #[test]
    fn needs_view_is_a_superset_of_what_decodes() {
        let texts = [
            "plain text, no escapes.",
            "50% off & more",
            "a&#64;b",
            "a%40b",
            "a\\u0040b",
            "1\n2",
            "1\r\n  2",
            "1\n\n2",
            "&",
            "%",
            "\\",
        ];
        for t in texts {
            let (n, _) = norm(t);
            if n != t {
                assert!(needs_view(t.as_bytes()), "{t:?}");
            }
        }
        assert!(!needs_view(b"50% off, AT& T, 1\nx, a\\q"));
        let long = format!("{} 4111\n1111", "x".repeat(WRAP_LINE));
        assert!(needs_view(long.as_bytes()) && norm(&long).0 != long);
    }

    #[test]
    fn removed_run_is_capped() {
        let zw = "\u{200B}".repeat(10);
        let (n, _) = norm(&format!("a{zw}b"));
        assert_eq!(n, format!("a{}b", "\u{200B}".repeat(10 - MAX_REMOVED_RUN as usize)));
    }

    #[test]
    fn map_points_back_to_original_chars() {
        let s = "é４\u{200B}x";
        let (n, spans) = norm(s);
        assert_eq!(n, "é4x");
        // é is kept as two bytes, ４ (3 bytes) becomes one, the ZWSP vanishes
        assert_eq!(spans, vec![(0, 1), (1, 2), (2, 5), (8, 9)]);
    }

    #[test]
    fn chunked_push_equals_whole() {
        let s = "a\u{200B}\u{200B}\u{200B}\u{200B}\u{200B}b４é";
        let mut whole = NormBuf::new(0);
        whole.push(s);
        let mut parts = NormBuf::new(0);
        for (i, c) in s.char_indices() {
            parts.push(&s[i..i + c.len_utf8()]);
        }
        assert_eq!(whole.bytes, parts.bytes);
        assert_eq!(whole.map, parts.map);
    }

    #[test]
    fn a_window_maps_like_the_view_it_copies() {
        let mut b = NormBuf::new(100);
        b.push("ab&#64;c４d");
        let copy = b.bytes[2..].to_vec();
        for (v, eof) in [
            (View::mapped(&b, true), true),
            (View::identity(b"ab@c4d", 100, false), false),
        ] {
            let w = v.window(2, &copy);
            assert_eq!(w.eof, eof);
            for i in 0..copy.len() {
                assert_eq!((w.orig(i), w.orig_end(i)), (v.orig(i + 2), v.orig_end(i + 2)), "{i}");
            }
            assert_eq!(w.orig(copy.len()), v.orig(v.t.len()));
        }
    }

    #[test]
    fn drain_rebases() {
        let mut b = NormBuf::new(100);
        b.push("ab４cd");
        b.drain_front(2);
        let v = View::mapped(&b, false);
        assert_eq!(b.bytes, b"4cd");
        assert_eq!((v.orig(0), v.orig_end(0), v.orig(1), v.orig(3)), (102, 105, 105, 107));
        assert_eq!(v.reach(0, 3), 1);
        b.drain_front(3);
        assert_eq!(b.base, 107);
    }

    #[test]
    fn reach_identity_and_mapped_agree_on_ascii() {
        let mut b = NormBuf::new(0);
        b.push("0123456789");
        let m = View::mapped(&b, true);
        let id = View::identity(b"0123456789", 0, true);
        for s in 0..10 {
            for cap in 0..12 {
                assert_eq!(m.reach(s, cap), id.reach(s, cap));
            }
        }
    }
}
