//! The matching view: a normalized copy of the text plus a map back to the original.
//!
//! Detectors never see the original text. Each character is mapped on its own (no context, so a
//! stream can normalize chunk by chunk and get the same bytes as the whole text):
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
//! A run of removed characters is capped at [`MAX_REMOVED_RUN`]: later ones are kept as ordinary
//! non-ASCII characters (which end any token). This bounds how many original characters can hide
//! behind one normalized byte, and so bounds what a stream holds back.
//!
//! The map stores, per normalized byte, its original byte offset (relative to a base) in the low
//! 30 bits and, for a substituted character, its original length minus one in the top 2 bits; a
//! finding `[s, e)` in the view is redacted as `[orig(s), orig_end(e - 1))` in the original, which
//! covers any invisible characters inside the value.

/// Most consecutive invisible characters removed before the rest are kept.
pub const MAX_REMOVED_RUN: u8 = 4;

/// Largest offset (relative to the map base) the map can hold.
pub const MAP_LIMIT: u64 = (1 << 30) - 1;

const LEN_SHIFT: u32 = 30;
const OFF_MASK: u32 = (1 << LEN_SHIFT) - 1;

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
    /// Per normalized byte: original offset relative to `base` (low 30 bits), extra length (top 2).
    pub map: Vec<u32>,
    /// Absolute original byte offset that `map` entries are relative to.
    pub base: u64,
    /// Absolute original byte offset just past the last original byte pushed.
    pub orig_end: u64,
    removed_run: u8,
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

    /// Appends `chunk`, whose first byte is at absolute original offset `self.orig_end`.
    ///
    /// The caller keeps `orig_end - base` under [`MAP_LIMIT`] (by rebasing or chunking).
    pub fn push(&mut self, chunk: &str) {
        let rel = (self.orig_end - self.base) as u32;
        if chunk.is_ascii() {
            self.bytes.extend_from_slice(chunk.as_bytes());
            self.map.extend(rel..rel + chunk.len() as u32);
            if !chunk.is_empty() {
                self.removed_run = 0;
            }
        } else {
            self.bytes.reserve(chunk.len());
            self.map.reserve(chunk.len());
            let b = chunk.as_bytes();
            let mut i = 0;
            while i < b.len() {
                // copy ASCII runs whole; decode only the other characters
                let run = ascii_run(&b[i..]);
                if run > 0 {
                    self.bytes.extend_from_slice(&b[i..i + run]);
                    self.map.extend(rel + i as u32..rel + (i + run) as u32);
                    self.removed_run = 0;
                    i += run;
                    if i == b.len() {
                        break;
                    }
                }
                let Some(c) = chunk[i..].chars().next() else { break };
                let len = c.len_utf8();
                let at = rel + i as u32;
                let mapped = match map_char(c) {
                    Mapped::Remove if self.removed_run < MAX_REMOVED_RUN => {
                        self.removed_run += 1;
                        i += len;
                        continue;
                    }
                    // past the cap the run stays "full" until a visible character resets it
                    Mapped::Remove => Mapped::Keep,
                    m => {
                        self.removed_run = 0;
                        m
                    }
                };
                match mapped {
                    Mapped::Ascii(x) => {
                        self.bytes.push(x);
                        self.map.push(at | ((len as u32 - 1) << LEN_SHIFT));
                    }
                    _ => {
                        for k in 0..len {
                            self.bytes.push(b[i + k]);
                            self.map.push(at + k as u32);
                        }
                    }
                }
                i += len;
            }
        }
        self.orig_end += chunk.len() as u64;
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

/// Length of the ASCII prefix of `b`, eight bytes at a time.
fn ascii_run(b: &[u8]) -> usize {
    let mut i = 0;
    while i + 8 <= b.len() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i..i + 8]);
        let high = u64::from_le_bytes(w) & 0x8080_8080_8080_8080;
        if high != 0 {
            return i + (high.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i + b[i..].iter().position(|&x| x >= 0x80).unwrap_or(b.len() - i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_runs() {
        let text = "abcdefghijklmnopqrstuvwxyzé0123456789ü";
        for i in 0..=text.len() {
            let b = &text.as_bytes()[i..];
            assert_eq!(
                ascii_run(b),
                b.iter().position(|&x| x >= 0x80).unwrap_or(b.len()),
                "{i}"
            );
        }
    }

    fn norm(s: &str) -> (String, Vec<(u64, u64)>) {
        let mut b = NormBuf::new(0);
        b.push(s);
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
