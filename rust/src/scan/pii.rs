//! Personal data parsers: e-mail, IPv6 (anchored on `@` and `:`) and the number family — US SSN,
//! payment card, phone, IPv4 and IBAN — all started from the first digit of a digit run.
//!
//! Numbers share one boundary rule: a number does not start right after a word byte or after
//! `-`/`.` that follows an alphanumeric (`INV-2231…`, `v1.2.3`), and does not end before a word
//! byte or before `-`/`.` plus a digit (so a run is never cut to fit a shape).
//!
//! Every number parser here and in `natid.rs` reads the space between two groups the same way: a
//! *blank* is a run of one to [`MAX_GAP`] spaces or tabs ([`blank_run`]), and it counts as one
//! space wherever a parser asks for the same separator throughout (`4111 1111  1111\t1111` has one
//! kind of gap). Five blanks or more join nothing, and a line break is no blank (a number wrapped
//! over two lines is `normalize.rs`'s business).
//!
//! SSNs and cards are read as digit groups ([`read_groups`]) joined by one gap, the same all
//! through the value: a blank, `-` or `.`, or one of them with a blank before or after it or both
//! (`536-22-1234`, `4111.1111.1111.1111`, `536 - 22 - 1234`). Unicode dashes, spaces and dots
//! reach the parsers as these ASCII bytes (`normalize.rs`). Digits written one by one with single
//! spaces between them form a group too (`5 3 6 - 2 2 - 1 2 3 4`); its groups are then joined by
//! one other gap. Mixed gaps end the value (`536-22.1234` is nothing). Phones take a blank, `-` or
//! `.` between groups, IBANs a blank or `-` between groups of four.

use std::net::Ipv6Addr;

use super::detectors::{
    at, context_before, is, prev, word, ContextWords, Detectors, Memo, Out, Res, ALNUM, HEX, LABEL, LOCAL,
};
use super::entity::Builtin;
use super::normalize::View;
use super::{natid, validate};

/// Longest e-mail local part (RFC 5321); a longer run keeps its last 64 bytes.
pub const MAX_LOCAL: usize = 64;
const MAX_DOMAIN: usize = 253;

/// Top-level domains that are really file extensions (`logo@2x.png`, `lodash@4.17.js`), sorted.
const FILE_TLDS: &[&[u8]] = &[
    b"7z", b"apk", b"avif", b"bmp", b"cfg", b"cjs", b"conf", b"cpp", b"css", b"csv", b"dll", b"dmg", b"doc", b"docx",
    b"eot", b"exe", b"gif", b"gz", b"heic", b"hpp", b"htm", b"html", b"ico", b"ini", b"jar", b"java", b"jpeg", b"jpg",
    b"js", b"json", b"jsx", b"lock", b"log", b"map", b"mjs", b"mov", b"mp3", b"mp4", b"otf", b"pdf", b"php", b"png",
    b"ppt", b"pyc", b"rb", b"sass", b"scss", b"svg", b"tar", b"tgz", b"tif", b"tiff", b"toml", b"ts", b"tsx", b"ttf",
    b"txt", b"vue", b"wasm", b"wav", b"webm", b"webp", b"whl", b"woff", b"woff2", b"xls", b"xlsx", b"xml", b"yaml",
    b"yml", b"zip",
];

/// Whether `tld` is one of [`FILE_TLDS`], ignoring ASCII case (a binary search: the list is sorted).
fn is_file_tld(tld: &[u8]) -> bool {
    let mut buf = [0u8; 5];
    if tld.len() > buf.len() {
        return false;
    }
    for (d, &c) in buf.iter_mut().zip(tld) {
        *d = c.to_ascii_lowercase();
    }
    FILE_TLDS.binary_search(&&buf[..tld.len()]).is_ok()
}

/// E-mail with its `@` at `a`.
pub fn email(v: &View, a: usize, out: &mut Out) {
    let t = v.t;
    let mut s = a;
    while s > 0 && a - s < MAX_LOCAL && is(LOCAL, t[s - 1]) {
        s -= 1;
    }
    while s < a && t[s] == b'.' {
        s += 1;
    }
    // `https://user@host` is a URL's user info, not an address
    if s == a || (s >= 2 && &t[s - 2..s] == b"//") {
        return;
    }
    let r = email_domain(v, s, a);
    out.put(s, Builtin::Email.id(), r);
}

fn email_domain(v: &View, s: usize, a: usize) -> Res {
    let t = v.t;
    let local = &t[s..a];
    if local.ends_with(b".") || local.windows(2).any(|w| w == b"..") {
        return Res::No;
    }
    let mut i = a + 1;
    let mut labels = 0;
    let (mut tld_start, mut end) = (i, i);
    loop {
        let ls = i;
        while let Some(b) = at!(v, i) {
            if !is(LABEL, b) {
                break;
            }
            i += 1;
            if i - ls > 63 {
                return Res::No;
            }
        }
        // a label never ends with `-`: trailing dashes (`bob@example.com-`, and a glued en dash,
        // which the view turns into one) end the address before them
        let mut le = i;
        while le > ls && t[le - 1] == b'-' {
            le -= 1;
        }
        if le == ls || t[ls] == b'-' {
            break;
        }
        labels += 1;
        tld_start = ls;
        end = le;
        if i - (a + 1) > MAX_DOMAIN {
            return Res::No;
        }
        if le < i {
            break;
        }
        match at!(v, i) {
            Some(b'.') => match at!(v, i + 1) {
                Some(c) if is(ALNUM, c) => i += 1,
                _ => break,
            },
            _ => break,
        }
    }
    if labels < 2 {
        return Res::No;
    }
    let tld = &t[tld_start..end];
    let tld_ok = (tld.len() >= 2 && tld.iter().all(u8::is_ascii_alphabetic))
        || (tld.len() > 4 && tld[..4].eq_ignore_ascii_case(b"xn--"));
    if !tld_ok || is_file_tld(tld) {
        return Res::No;
    }
    // `git@github.com:org/repo.git` is an SSH remote, not an address
    if at!(v, end) == Some(b':') {
        if let Some(c) = at!(v, end + 1) {
            if !c.is_ascii_whitespace() {
                return Res::No;
            }
        }
    }
    Res::Yes(end)
}

/// IPv6 around the colon at `c`; returns where the trigger scan continues.
pub fn ipv6(v: &View, c: usize, memo: &mut Memo, out: &mut Out) -> usize {
    if c < memo.v6_done {
        return c + 1;
    }
    let t = v.t;
    let hexish = |b: u8| is(HEX, b) || b == b':';
    let before_ok = prev(t, c).is_some_and(hexish);
    // the token is the maximal run of hex digits, colons and dots, so every colon in it finds the
    // same start (what keeps the skip memo equal between a stream and the whole text)
    let tokenish = |b: u8| hexish(b) || b == b'.';
    let after_ok = match t.get(c + 1) {
        Some(&b) => hexish(b),
        None => !v.eof,
    };
    if !before_ok && !after_ok {
        return c + 1;
    }
    let mut s = c;
    while s > 0 && c - s < 40 && tokenish(t[s - 1]) {
        s -= 1;
    }
    if s > 0 && (c - s >= 40 || word(t[s - 1])) {
        memo.v6_done = c + 1;
        return c + 1;
    }
    let (r, end) = ipv6_at(v, s);
    memo.v6_done = end.max(c + 1);
    out.put(s, Builtin::IpAddress.id(), r);
    // only later colons of this token are skipped (via the memo); its digits still start numbers
    c + 1
}

fn ipv6_at(v: &View, s: usize) -> (Res, usize) {
    let mut e = s;
    loop {
        match v.t.get(e) {
            Some(&b) if is(HEX, b) || b == b':' || b == b'.' => {
                e += 1;
                if e - s > 45 {
                    return (Res::No, e);
                }
            }
            Some(_) => break,
            None if !v.eof => return (Res::More, e),
            None => break,
        }
    }
    let scanned = e;
    if e < v.t.len() && word(v.t[e]) {
        return (Res::No, scanned);
    }
    // a sentence dot or a single trailing colon is not part of the address
    while e > s && v.t[e - 1] == b'.' {
        e -= 1;
    }
    if e > s + 1 && v.t[e - 1] == b':' && v.t[e - 2] != b':' {
        e -= 1;
    }
    let parses = |e: usize| {
        let tok = &v.t[s..e];
        let groups = tok.split(|&b| b == b':').filter(|g| !g.is_empty()).count();
        groups >= 2
            && std::str::from_utf8(tok)
                .ok()
                .and_then(|x| x.parse::<Ipv6Addr>().ok())
                .is_some()
    };
    if parses(e) {
        return (Res::Yes(e), scanned);
    }
    // `addr:port` written without brackets: a full eight-group address followed by a decimal port
    if let Some(k) = v.t[s..e].iter().rposition(|&b| b == b':') {
        let port = &v.t[s + k + 1..e];
        let colons = v.t[s..s + k].iter().filter(|&&b| b == b':').count();
        if (1..=5).contains(&port.len()) && port.iter().all(u8::is_ascii_digit) && colons == 7 && parses(s + k) {
            return (Res::Yes(s + k), scanned);
        }
    }
    (Res::No, scanned)
}

/// Number boundary on the left of `s`.
pub(super) fn num_left_ok(t: &[u8], s: usize) -> bool {
    match prev(t, s) {
        None => true,
        Some(b) if word(b) => false,
        Some(b'-' | b'.') => !prev(t, s - 1).is_some_and(|c| is(ALNUM, c)),
        Some(_) => true,
    }
}

/// Number boundary on the right of `e`: `Yes(e)` or `No`.
pub(super) fn num_right(v: &View, e: usize) -> Res {
    match at!(v, e) {
        Some(b) if word(b) => Res::No,
        Some(b'-' | b'.') => match at!(v, e + 1) {
            Some(c) if c.is_ascii_digit() => Res::No,
            _ => Res::Yes(e),
        },
        _ => Res::Yes(e),
    }
}

/// Merges a parser's answer into the best one so far at the same start: the longest candidate
/// wins, and any `More` makes the whole start wait.
fn best(a: Res, b: Res) -> Res {
    match (a, b) {
        (Res::More, _) | (_, Res::More) => Res::More,
        (Res::Yes(x), Res::Yes(y)) => Res::Yes(x.max(y)),
        (Res::Yes(x), _) | (_, Res::Yes(x)) => Res::Yes(x),
        _ => Res::No,
    }
}

const PHONE_WORDS: ContextWords = ContextWords::new(&[
    b"phone",
    b"tel",
    b"telephone",
    b"mobile",
    b"cell",
    b"call",
    b"fax",
    b"whatsapp",
    b"sms",
    b"contact",
    b"telefon",
    b"telefono",
    b"handy",
    b"portable",
    b"movil",
    b"\xe9\x9b\xbb\xe8\xa9\xb1",
    b"\xe7\x94\xb5\xe8\xaf\x9d",
    b"\xe6\x90\xba\xe5\xb8\xaf",
    b"\xe6\x89\x8b\xe6\x9c\xba",
    b"t\xc3\xa9l",
    b"tel\xc3\xa9fono",
]);
const SSN_WORDS: ContextWords =
    ContextWords::new(&[b"ssn", b"social security", b"soc sec", b"ss#", b"ss #", b"social sec"]);

/// All number parsers for the digit run starting at `d`. A look at the run's length and the byte
/// after it skips the parsers that cannot start there (each would find the same and say no).
pub fn numbers(det: &Detectors, v: &View, d: usize, out: &mut Out) {
    let t = v.t;
    if d > 0 && word(t[d - 1]) {
        // glued to a word (`abc123`, base64): no number starts here, only an IBAN can
        if det.on(Builtin::Iban) && d >= 2 && t[d - 1].is_ascii_alphabetic() && t[d - 2].is_ascii_alphabetic() {
            out.put(d - 2, Builtin::Iban.id(), iban(v, d - 2));
        }
        if det.natid_letters && natid::may_lead(t, d) {
            natid::letter_led(det, v, d, out);
        }
        return;
    }
    let run = t[d..].iter().take(20).take_while(|b| b.is_ascii_digit()).count();
    // past the buffer every parser must get its say (it answers `More`)
    let open = d + run >= t.len() && !v.eof;
    let next = t.get(d + run).copied().unwrap_or(0);
    let any = |ok: bool| open || ok;
    // a single digit before a space may start spaced digits (`5 3 6 - 2 2 - …`), unless it is
    // already inside them
    let spaced = run == 1 && next == b' ' && t.get(d + 2).is_none_or(u8::is_ascii_digit) && !inside_spaced(t, d);
    let gap = matches!(next, b' ' | b'\t' | b'-' | b'.');
    if det.natid_digits && (open || natid::may_start(t, d, run, next)) {
        natid::digit_led(det, v, d, run, next, open, out);
    }
    if det.on(Builtin::UsSsn) && any((run == 3 && gap) || run == 9 || spaced) {
        let (r, conf) = ssn(v, d);
        out.put_conf(d, Builtin::UsSsn.id(), r, conf);
    }
    if det.on(Builtin::CreditCard) && any((run == 4 && gap) || (13..=19).contains(&run) || spaced) {
        out.put(d, Builtin::CreditCard.id(), card(v, d));
    }
    if det.on(Builtin::IpAddress) && any(run <= 3 && next == b'.') {
        out.put(d, Builtin::IpAddress.id(), ipv4(v, d));
    }
    if det.on(Builtin::Phone) {
        let grouped = matches!(next, b' ' | b'\t' | b'-' | b'.' | b'/' | b')' | b'(');
        if any(grouped || run >= 7) {
            out.put(d, Builtin::Phone.id(), phone(v, d));
        }
        if let Some(p @ (b'+' | b'(')) = prev(t, d) {
            out.put(d - 1, Builtin::Phone.id(), phone(v, d - 1));
            if p == b'(' && prev(t, d - 1) == Some(b'+') {
                out.put(d - 2, Builtin::Phone.id(), phone(v, d - 2));
            }
        }
    }
}

/// Reads a run of at most `max` digits from `i`; returns its end (`More` past the buffer).
macro_rules! digits {
    ($v:expr, $i:expr, $max:expr) => {{
        let mut e = $i;
        while let Some(b) = at!($v, e) {
            if !b.is_ascii_digit() || e - $i > $max {
                break;
            }
            e += 1;
        }
        e
    }};
}

fn num(t: &[u8]) -> u32 {
    t.iter()
        .fold(0u32, |a, &c| a.saturating_mul(10).saturating_add(u32::from(c - b'0')))
}

/// Most groups [`read_groups`] reads (a card has at most five, one more shows the run goes on).
const MAX_GROUPS: usize = 6;
/// Longest blank between two groups: spaces and tabs, in normalized bytes.
pub(super) const MAX_GAP: usize = super::MAX_BLANK;
/// Longest gap between two digit groups, in normalized bytes: a blank, a `-` or `.`, a blank.
const MAX_GAP_BYTES: usize = 2 * MAX_GAP + 1;

/// How far an SSN or card parser reads from its start, in normalized bytes: 20 digits (a card's
/// 19 and one that shows the run goes on), after each the widest gap and the blank that shows a
/// run is too long, and one byte of look-ahead. A stream's hold-back covers it.
pub const MAX_NUMBER: usize = 20 * (1 + MAX_GAP_BYTES + 1) + 1;

/// Whether `b` may be part of a blank (a space or a tab).
#[inline(always)]
pub(super) fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// The blank at `i`: `Yes(end)` for a run of one to [`MAX_GAP`] spaces or tabs, `No` when `i`
/// holds none or the run is longer, `More` when the buffer ends inside it (what follows decides).
#[inline(always)]
pub(super) fn blank_run(v: &View, i: usize) -> Res {
    let mut j = i;
    while let Some(b' ' | b'\t') = at!(v, j) {
        j += 1;
        if j - i > MAX_GAP {
            return Res::No;
        }
    }
    if j == i {
        Res::No
    } else {
        Res::Yes(j)
    }
}

/// Where the blank whose first byte is at `i` would end, from the bytes at hand (a pre-check's
/// look: no `More`, a run cut by the end of the buffer ends there): after at most [`MAX_GAP`]
/// spaces or tabs.
#[inline(always)]
pub(super) fn blank_end(t: &[u8], i: usize) -> usize {
    // the common single space first
    if !t.get(i + 1).is_some_and(|&b| is_blank(b)) {
        return i + 1;
    }
    let mut j = i + 2;
    while j - i < MAX_GAP && t.get(j).is_some_and(|&b| is_blank(b)) {
        j += 1;
    }
    j
}

/// What joins two digit groups, as the comparisons see it: a blank (written `' '`, however long
/// it was), a `-` or `.`, or one of them with a blank on either side or both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Gap {
    len: u8,
    bytes: [u8; 3],
}

impl Gap {
    /// Whether the gap is a blank only (a value may end before a blank-separated group).
    fn is_blank(&self) -> bool {
        self.len == 1 && self.bytes[0] == b' '
    }

    fn push(&mut self, b: u8) {
        self.bytes[usize::from(self.len)] = b;
        self.len += 1;
    }
}

/// Reads the gap at `i` into `gap`: `Yes(j)` when it is one and the digit at `j` follows it.
fn read_gap(v: &View, i: usize, gap: &mut Gap) -> Res {
    *gap = Gap::default();
    let mut j = i;
    loop {
        match at!(v, j) {
            Some(b'0'..=b'9') if j > i => return Res::Yes(j),
            Some(b' ' | b'\t') => match blank_run(v, j) {
                Res::Yes(e) => {
                    j = e;
                    gap.push(b' ');
                }
                r => return r,
            },
            Some(c @ (b'-' | b'.')) if !gap.bytes[..usize::from(gap.len)].iter().any(|&b| b != b' ') => {
                gap.push(c);
                j += 1;
            }
            _ => return Res::No,
        }
    }
}

/// The digit groups of an SSN or card candidate.
#[derive(Default)]
struct DigitGroups {
    n: usize,
    lens: [usize; MAX_GROUPS],
    /// One past the last digit of each group.
    ends: [usize; MAX_GROUPS],
    /// The gap between groups (all the same); empty with one group.
    gap: Gap,
    /// Digits written one by one with single spaces between them.
    spaced: bool,
}

impl DigitGroups {
    fn total(&self, k: usize) -> usize {
        self.lens[..k].iter().sum()
    }

    fn push(&mut self, len: usize, end: usize) {
        self.lens[self.n] = len;
        self.ends[self.n] = end;
        self.n += 1;
    }
}

/// Reads the digit groups starting at the digit `d` into `g` (`Yes(0)`, or `More`): at most
/// `max_groups`, stopping once more than `max_digits` digits are read, or after a first group
/// whose length `first_ok` refuses (nothing that starts so can be a value). Groups are digit runs
/// joined by one [`Gap`] throughout, or, when the first digit is followed by a single space and
/// a digit, spaced digits: single digits joined by single spaces, the groups joined by one other
/// gap throughout (a longer blank is another gap here: `5 3 6  2 2  1 2 3 4`). Reading stops before anything else (another gap, a longer run among spaced
/// digits, a one-digit first group not followed by spaced digits); judging what follows the last
/// group is the caller's.
fn read_groups(
    v: &View,
    d: usize,
    max_groups: usize,
    max_digits: usize,
    first_ok: fn(usize) -> bool,
    g: &mut DigitGroups,
) -> Res {
    let (mut i, mut total, mut cur, mut cur_end) = (d, 0, 0, d);
    loop {
        let e = digits!(v, i, max_digits);
        if g.spaced && e - i > 1 {
            break;
        }
        cur += e - i;
        total += e - i;
        cur_end = e;
        if total > max_digits {
            break;
        }
        let mut gap = Gap::default();
        let j = match read_gap(v, e, &mut gap) {
            Res::Yes(j) => j,
            Res::No => break,
            r => return r,
        };
        // spaced digits are joined by exactly one space
        let single = j == e + 1 && v.t[e] == b' ';
        if g.n == 0 && cur == 1 {
            if !single {
                // no SSN or card starts with a one-digit group: only spaced digits can follow
                break;
            }
            g.spaced = true;
        }
        if !(g.spaced && single) {
            // a gap between groups
            g.push(cur, e);
            cur = 0;
            if g.n == max_groups || (g.n > 1 && gap != g.gap) || (g.n == 1 && !first_ok(g.lens[0])) {
                break;
            }
            g.gap = gap;
        }
        i = j;
    }
    if cur > 0 {
        g.push(cur, cur_end);
    }
    Res::Yes(0)
}

/// Where a value of `g`'s first `k` groups may end: before a further group only when the gap to
/// it is blank (`4111 1111 1111 1111 2024`), otherwise at a number boundary.
fn groups_end(v: &View, g: &DigitGroups, k: usize) -> Res {
    let end = g.ends[k - 1];
    if k < g.n {
        if g.gap.is_blank() {
            Res::Yes(end)
        } else {
            Res::No
        }
    } else {
        num_right(v, end)
    }
}

/// Whether `d` is inside a run of spaced digits: a single digit and a space before it (after
/// `12 ` spaced digits may start: `12 5 3 6 - 2 2 - 1 2 3 4`).
fn inside_spaced(t: &[u8], d: usize) -> bool {
    let digit = |i: usize| i.checked_sub(1).is_some_and(|j| t[j].is_ascii_digit());
    prev(t, d) == Some(b' ') && digit(d - 1) && !digit(d - 2)
}

/// US SSN: `ddd-dd-dddd` in [`read_groups`] form (`536 22 1234`, `536.22.1234`,
/// `5 3 6 - 2 2 - 1 2 3 4`), or nine digits (bare or spaced) after an SSN word; with its
/// confidence: [`SSN_GROUPED`] for the grouped form, [`SSN_BARE`] for nine digits that only the
/// word before them makes an SSN.
fn ssn(v: &View, d: usize) -> (Res, u8) {
    let mut conf = SSN_GROUPED;
    let r = ssn_read(v, d, &mut conf);
    (r, conf)
}

fn ssn_read(v: &View, d: usize, conf: &mut u8) -> Res {
    let t = v.t;
    // a single digit after a digit and a space is inside spaced digits, which start before it
    if !num_left_ok(t, d) || (inside_spaced(t, d) && !at!(v, d + 1).is_some_and(|b| b.is_ascii_digit())) {
        return Res::No;
    }
    let mut g = DigitGroups::default();
    if let r @ (Res::More | Res::No | Res::Open) = read_groups(v, d, 4, 9, |l| l == 3 || l == 9, &mut g) {
        return r;
    }
    let k = if g.n >= 3 && g.lens[..3] == [3, 2, 4] {
        3
    } else if g.lens[0] == 9 && context_before(t, d, 40, &SSN_WORDS) {
        *conf = SSN_BARE;
        1
    } else {
        return Res::No;
    };
    ssn_checked(v, d, &g, k)
}

/// The confidence of an SSN in its grouped form (`536-22-1234`).
const SSN_GROUPED: u8 = 90;
/// The confidence of nine digits that the SSN word before them makes an SSN.
const SSN_BARE: u8 = 70;

/// The SSN rules over the first `k` groups `g` read at `d`, then the number's end.
fn ssn_checked(v: &View, d: usize, g: &DigitGroups, k: usize) -> Res {
    let t = v.t;
    let mut digits = [0u8; 9];
    let mut m = 0;
    for &b in &t[d..g.ends[k - 1]] {
        if b.is_ascii_digit() {
            digits[m] = b;
            m += 1;
        }
    }
    if !validate::ssn(num(&digits[..3]), num(&digits[3..5]), num(&digits[5..9])) {
        return Res::No;
    }
    groups_end(v, g, k)
}

/// Payment card: 13–19 digits in [`read_groups`] form: contiguous, in groups of four (the last
/// one to four), or Amex/Diners 4-6-5 / 4-6-4.
fn card(v: &View, d: usize) -> Res {
    let t = v.t;
    // a single digit after a digit and a space is inside spaced digits, which start before it
    if !num_left_ok(t, d) || (inside_spaced(t, d) && !at!(v, d + 1).is_some_and(|b| b.is_ascii_digit())) {
        return Res::No;
    }
    let mut g = DigitGroups::default();
    let first_ok = |l| l == 4 || (13..=19).contains(&l);
    if let r @ (Res::More | Res::No | Res::Open) = read_groups(v, d, MAX_GROUPS, 19, first_ok, &mut g) {
        return r;
    }
    let mut digits = [0u8; 19];
    for k in (1..=g.n).rev() {
        let lens = &g.lens[..k];
        if !(13..=19).contains(&g.total(k)) {
            continue;
        }
        let grouped = k == 1
            || (lens[..k - 1].iter().all(|&l| l == 4) && (1..=4).contains(&lens[k - 1]))
            || (k == 3 && lens[0] == 4 && lens[1] == 6 && (4..=5).contains(&lens[2]));
        if !grouped {
            continue;
        }
        let mut m = 0;
        for &b in &t[d..g.ends[k - 1]] {
            if b.is_ascii_digit() {
                digits[m] = b;
                m += 1;
            }
        }
        if !validate::card_number(&digits[..m]) {
            continue;
        }
        let r = groups_end(v, &g, k);
        if r != Res::No {
            return r;
        }
    }
    Res::No
}

/// IPv4 dotted quad, each octet 0–255 without leading zeros, not inside a longer dotted run.
fn ipv4(v: &View, d: usize) -> Res {
    let t = v.t;
    if let Some(p) = prev(t, d) {
        if word(p) || (p == b'.' && prev(t, d - 1).is_some_and(|c| c.is_ascii_digit())) {
            return Res::No;
        }
    }
    let mut i = d;
    for k in 0..4 {
        let e = digits!(v, i, 3);
        let len = e - i;
        if len == 0 || len > 3 || (len > 1 && t[i] == b'0') || num(&t[i..e]) > 255 {
            return Res::No;
        }
        i = e;
        if k < 3 {
            if at!(v, i) != Some(b'.') {
                return Res::No;
            }
            i += 1;
        }
    }
    num_right(v, i)
}

/// IBAN starting with the country letters at `s` (both letters the same case); the rest may be
/// contiguous or in groups of four split by one kind of separator, a blank or a `-`.
fn iban(v: &View, s: usize) -> Res {
    let t = v.t;
    if prev(t, s).is_some_and(word) {
        return Res::No;
    }
    let (a, b) = (t[s], t[s + 1]);
    if a.is_ascii_uppercase() != b.is_ascii_uppercase() {
        return Res::No;
    }
    let cc = [a.to_ascii_uppercase(), b.to_ascii_uppercase()];
    let Some(len) = validate::iban_length(cc) else {
        return Res::No;
    };
    let mut buf = [0u8; 34];
    buf[..2].copy_from_slice(&cc);
    let mut count = 2;
    let mut i = s + 2;
    // the separator between groups of four once known (0: none)
    let mut sep: Option<u8> = None;
    let mut after_sep = false;
    while count < len {
        let c = match at!(v, i) {
            Some(c) => c,
            None => return Res::No,
        };
        if is(ALNUM, c) {
            if (count < 4 && !c.is_ascii_digit()) || (sep.is_some_and(|x| x != 0) && count % 4 == 0 && !after_sep) {
                return Res::No;
            }
            if count == 4 && sep.is_none() {
                sep = Some(0);
            }
            buf[count] = c.to_ascii_uppercase();
            count += 1;
            i += 1;
            after_sep = false;
        } else if matches!(c, b' ' | b'\t' | b'-') && count % 4 == 0 && !after_sep {
            let (kind, e) = if c == b'-' {
                (c, i + 1)
            } else {
                match blank_run(v, i) {
                    Res::Yes(e) => (b' ', e),
                    r => return r,
                }
            };
            if sep.is_some_and(|x| x != kind) {
                return Res::No;
            }
            sep = Some(kind);
            after_sep = true;
            i = e;
            if !at!(v, i).is_some_and(|x| is(ALNUM, x)) {
                return Res::No;
            }
        } else {
            return Res::No;
        }
    }
    match at!(v, i) {
        Some(c) if word(c) => return Res::No,
        // a dashed run that goes on is a longer identifier
        Some(b'-') if sep == Some(b'-') && at!(v, i + 1).is_some_and(|x| is(ALNUM, x)) => return Res::No,
        _ => {}
    }
    if validate::iban(&buf[..count]) {
        Res::Yes(i)
    } else {
        Res::No
    }
}

/// Digit groups of a phone candidate: `(` group `)` or plain digit runs, joined by one blank,
/// dash or dot (or nothing after a `)`), or a slash after the first group.
struct Groups {
    n: usize,
    lens: [u8; 8],
    ends: [usize; 8],
    /// Separator before each group (0: none / first; `' '` for any blank).
    seps: [u8; 8],
    /// Bit k: group k was in parentheses.
    parens: u8,
}

impl Groups {
    fn total(&self, k: usize) -> usize {
        self.lens[..k].iter().map(|&l| usize::from(l)).sum()
    }
}

#[inline(always)]
fn phone_groups(v: &View, i0: usize) -> Result<Groups, Res> {
    // the same `at!` protocol, wrapped so the caller can tell `More` from a parse
    fn inner(v: &View, i0: usize, g: &mut Groups) -> Res {
        let mut i = i0;
        loop {
            let k = g.n;
            let paren = at!(v, i) == Some(b'(');
            let ds = if paren { i + 1 } else { i };
            let e = digits!(v, ds, 15);
            let len = e - ds;
            if len == 0 || (paren && len > 4) {
                return if k == 0 { Res::No } else { Res::Yes(0) };
            }
            let mut end = e;
            if paren {
                if at!(v, e) != Some(b')') {
                    return if k == 0 { Res::No } else { Res::Yes(0) };
                }
                end = e + 1;
                g.parens |= 1 << k;
            }
            g.lens[k] = len as u8;
            g.ends[k] = end;
            g.n += 1;
            if g.n == g.lens.len() || g.total(g.n) > 20 {
                return Res::Yes(0);
            }
            // what joins the next group
            let c = at!(v, end);
            let (sep, next) = match c {
                Some(b' ' | b'\t') => match blank_run(v, end) {
                    Res::Yes(e) => (b' ', e),
                    Res::More => return Res::More,
                    _ => return Res::Yes(0),
                },
                Some(s @ (b'-' | b'.')) => (s, end + 1),
                // `030/1234567`: a slash after the area code, nowhere else
                Some(b'/') if k == 0 && !paren => (b'/', end + 1),
                Some(b'0'..=b'9') if paren => (0, end),
                Some(b'(') => (0, end),
                _ => return Res::Yes(0),
            };
            match at!(v, next) {
                Some(b'0'..=b'9') => {}
                Some(b'(') if sep != b'.' => {}
                _ => return Res::Yes(0),
            }
            g.seps[k + 1] = sep;
            i = next;
        }
    }
    let mut g = Groups {
        n: 0,
        lens: [0; 8],
        ends: [0; 8],
        seps: [0; 8],
        parens: 0,
    };
    match inner(v, i0, &mut g) {
        Res::Yes(_) => Ok(g),
        r => Err(r),
    }
}

/// Whether a blank ends right before `s` and a digit comes right before that blank.
fn blank_before_digit(t: &[u8], s: usize) -> bool {
    let mut j = s;
    while j > 0 && s - j <= MAX_GAP && is_blank(t[j - 1]) {
        j -= 1;
    }
    (1..=MAX_GAP).contains(&(s - j)) && prev(t, j).is_some_and(|c| c.is_ascii_digit())
}

/// Phone number starting at `s` (`+`, `(` or a digit).
fn phone(v: &View, s: usize) -> Res {
    let t = v.t;
    let first = t[s];
    match prev(t, s) {
        Some(p) if word(p) || p == b'+' => return Res::No,
        // inside a longer run of space-separated digit groups (an account number, a table row)
        Some(b' ') if prev(t, s - 1).is_some_and(|c| c.is_ascii_digit()) => return Res::No,
        // `#1234…` is an order or ticket number
        Some(b'#') => return Res::No,
        Some(b'-' | b'.') if prev(t, s - 1).is_some_and(|c| is(ALNUM, c)) => return Res::No,
        _ => {}
    }
    let intl = first == b'+';
    let g = match phone_groups(v, if intl { s + 1 } else { s }) {
        Ok(g) => g,
        Err(r) => return r,
    };
    // groups joined by blanks after a blank and a digit: the phone would start inside a longer
    // run of blank-separated groups (a table row); a phone written otherwise (`7\t415-555-0132`)
    // still starts there, so a digit and a tab in front cannot hide it
    if !intl && first != b'(' && g.n > 1 && g.seps[1] == b' ' && blank_before_digit(t, s) {
        return Res::No;
    }
    // a phone word counts on the same line only, close before the number
    let window = t[s.saturating_sub(32)..s]
        .iter()
        .rev()
        .take_while(|&&b| b != b'\n')
        .count();
    let mut ctx: Option<bool> = None;
    let mut context = || *ctx.get_or_insert_with(|| context_before(t, s, window, &PHONE_WORDS));
    let mut res = Res::No;
    for k in (1..=g.n).rev() {
        let end = g.ends[k - 1];
        let total = g.total(k);
        let lens = &g.lens[..k];
        let seps = &g.seps[..k];
        let paren = |j: usize| g.parens & (1 << j) != 0;
        // only the national trunk form has a slash (`030/1234567`)
        let slash = seps.contains(&b'/');
        // E.164 (8 to 15 digits, a country code that does not start with 0) and NANP have enough
        // structure to stop before a further space-separated group; the looser forms do not
        let strong = if intl {
            let (lo, hi) = if k == 1 { (10, 15) } else { (8, 15) };
            !paren(0) && !slash && t[s + 1] != b'0' && (lo..=hi).contains(&total)
        } else {
            nanp(t, s, lens, seps, &g)
        };
        let ok = strong
            || (!intl
                && k == g.n
                && (trunk(t, s, lens, seps, &g, k) || (!slash && (7..=15).contains(&total) && context())));
        if !ok {
            continue;
        }
        // a shorter prefix may stop only before a space-separated group
        let r = if k < g.n {
            if g.seps[k] == b' ' {
                Res::Yes(end)
            } else {
                Res::No
            }
        } else {
            num_right(v, end)
        };
        res = best(res, r);
        if res != Res::No {
            break;
        }
    }
    res
}

/// NANP: `(AAA) EEE-LLLL`, `AAA-EEE-LLLL`, `AAA.EEE.LLLL`, `AAA EEE LLLL`, with an optional
/// leading `1` and the same separator throughout (except after the parenthesized area code).
fn nanp(t: &[u8], s: usize, lens: &[u8], seps: &[u8], g: &Groups) -> bool {
    let paren = |j: usize| g.parens & (1 << j) != 0;
    let off = match lens {
        [1, 3, 3, 4] if !paren(0) && t[s] == b'1' => 1,
        [3, 3, 4] => 0,
        _ => return false,
    };
    let group = |j: usize| {
        let e = g.ends[j] - usize::from(paren(j));
        &t[e - usize::from(lens[j])..e]
    };
    if !validate::nanp_area(group(off)) || !validate::nanp_exchange(group(off + 1)) {
        return false;
    }
    let (s_exch, s_line) = (seps[off + 1], seps[off + 2]);
    if seps.contains(&b'/') {
        return false;
    }
    if paren(off) {
        !paren(off + 1) && matches!(s_exch, 0 | b' ' | b'-') && matches!(s_line, b'-' | b'.' | b' ')
    } else {
        !paren(off + 1) && s_exch != 0 && s_exch == s_line && (off == 0 || seps[1] == s_exch || seps[1] == b' ')
    }
}

/// National numbers with a trunk `0`: `020 7946 0958`, `(030) 1234567`, `06-12345678`,
/// `030/1234567`, `01 42 68 53 00` (dots only when every group has two digits, so `05.10.1986`
/// is a date).
fn trunk(t: &[u8], s: usize, lens: &[u8], seps: &[u8], g: &Groups, k: usize) -> bool {
    let paren0 = g.parens & 1 != 0;
    let d0 = if paren0 { s + 1 } else { s };
    if t[d0] != b'0' || t.get(d0 + 1).is_none_or(|&b| b == b'0') || k < 2 || lens[0] < 2 {
        return false;
    }
    if g.parens & !1 != 0 {
        return false;
    }
    let total = g.total(k);
    if !(9..=12).contains(&total) || lens.iter().any(|&l| !(2..=8).contains(&l)) {
        return false;
    }
    if seps[1..].contains(&b'.') {
        return k >= 4 && lens.iter().all(|&l| l == 2) && seps[1..].iter().all(|&c| c == b'.');
    }
    seps[1..]
        .iter()
        .enumerate()
        .all(|(j, &c)| matches!(c, b' ' | b'-') || (c == 0 && paren0) || (c == b'/' && j == 0))
}

#[cfg(test)]
mod tests {
    use crate::scan::tests::found;

    macro_rules! t {
        ($name:ident, $text:expr, $want:expr) => {
            #[test]
            fn $name() {
                assert_eq!(found($text), $want, "{:?}", $text);
            }
        };
    }

    #[test]
    fn file_tlds_are_sorted_short_and_lowercase() {
        for w in super::FILE_TLDS.windows(2) {
            assert!(w[0] < w[1], "{:?}", w);
        }
        for t in super::FILE_TLDS {
            assert!(t.len() <= 5 && !t.iter().any(u8::is_ascii_uppercase));
        }
        assert!(super::is_file_tld(b"PNG") && super::is_file_tld(b"woff2") && !super::is_file_tld(b"com"));
        assert!(!super::is_file_tld(b"jsonld"));
    }

    // e-mail
    t!(
        email010,
        "mail alice@example.com now",
        vec![("EMAIL", "alice@example.com")]
    );
    t!(
        email020,
        "a.b+tag@mail.example.co.uk.",
        vec![("EMAIL", "a.b+tag@mail.example.co.uk")]
    );
    t!(email030, "メールはa@b.comです", vec![("EMAIL", "a@b.com")]);
    t!(
        email040,
        "alice@\u{200B}example.com",
        vec![("EMAIL", "alice@\u{200B}example.com")]
    );
    t!(email050, "alice＠example．com", vec![("EMAIL", "alice＠example．com")]);
    t!(email060, "git@github.com:org/repo.git", vec![]);
    t!(
        email070,
        "logo@2x.png lodash@4.17.21 @types/node npm i x@latest",
        vec![]
    );
    t!(email080, "user@localhost a..b@x.com", vec![]);
    t!(
        email090,
        "Email: bob@example.com: ok",
        vec![("EMAIL", "bob@example.com")]
    );
    t!(
        email100,
        "x@xn--80ak6aa92e.com",
        vec![("EMAIL", "x@xn--80ak6aa92e.com")]
    );
    // SSN
    t!(ssn010, "SSN 536-22-1234.", vec![("US_SSN", "536-22-1234")]);
    t!(ssn020, "ssn: 536 22 1234", vec![("US_SSN", "536 22 1234")]);
    t!(ssn030, "my ssn is 536221234", vec![("US_SSN", "536221234")]);
    t!(ssn040, "order 536221234", vec![]);
    t!(
        ssn050,
        "000-12-3456 666-12-3456 912-12-3456 536-00-1234 536-22-0000 123-45-6789",
        vec![]
    );
    t!(ssn060, "536-22 1234 536-22-12345 x536-22-1234 1-536-22-1234", vec![]);
    t!(
        ssn070,
        "５３６－２２－１２３４",
        vec![("US_SSN", "５３６－２２－１２３４")]
    );
    t!(ssn080, "5\u{200B}36-22-1234", vec![("US_SSN", "5\u{200B}36-22-1234")]);
    // SSN: the separators people and tools use (issue 18)
    t!(
        ssn090,
        "ssn 536\u{2013}22\u{2013}1234",
        vec![("US_SSN", "536\u{2013}22\u{2013}1234")]
    );
    t!(
        ssn100,
        "ssn 536\u{2014}22\u{2014}1234",
        vec![("US_SSN", "536\u{2014}22\u{2014}1234")]
    );
    t!(
        ssn110,
        "a 536\u{2012}22\u{2012}1234 b 536\u{2212}22\u{2212}1234 c 536\u{2011}22\u{2011}1234",
        vec![
            ("US_SSN", "536\u{2012}22\u{2012}1234"),
            ("US_SSN", "536\u{2212}22\u{2212}1234"),
            ("US_SSN", "536\u{2011}22\u{2011}1234")
        ]
    );
    t!(
        ssn120,
        "a 536\u{A0}22\u{A0}1234 b 536\u{202F}22\u{202F}1234 c 536\u{2009}22\u{2009}1234",
        vec![
            ("US_SSN", "536\u{A0}22\u{A0}1234"),
            ("US_SSN", "536\u{202F}22\u{202F}1234"),
            ("US_SSN", "536\u{2009}22\u{2009}1234")
        ]
    );
    t!(ssn130, "SSN 536.22.1234.", vec![("US_SSN", "536.22.1234")]);
    t!(ssn140, "SSN 536 - 22 - 1234", vec![("US_SSN", "536 - 22 - 1234")]);
    t!(
        ssn150,
        "SSN 5 3 6 - 2 2 - 1 2 3 4!",
        vec![("US_SSN", "5 3 6 - 2 2 - 1 2 3 4")]
    );
    t!(
        ssn160,
        "x 5 3 6 \u{2013} 2 2 \u{2013} 1 2 3 4 y 5\u{A0}3\u{A0}6 \u{2014} 2\u{A0}2 \u{2014} 1\u{A0}2\u{A0}3\u{A0}4",
        vec![
            ("US_SSN", "5 3 6 \u{2013} 2 2 \u{2013} 1 2 3 4"),
            (
                "US_SSN",
                "5\u{A0}3\u{A0}6 \u{2014} 2\u{A0}2 \u{2014} 1\u{A0}2\u{A0}3\u{A0}4"
            )
        ]
    );
    // an em dash glued between spaced digits separates like their spaces: nine spaced digits,
    // which need an SSN word, like nine bare ones
    t!(
        ssn165,
        "x 5 3 6\u{2014}2 2\u{2014}1 2 3 4, ssn 5 3 6\u{2014}2 2\u{2014}1 2 3 4",
        vec![("US_SSN", "5 3 6\u{2014}2 2\u{2014}1 2 3 4")]
    );
    t!(
        ssn170,
        "5 3 6-2 2-1 2 3 4 and 5 3 6  2 2  1 2 3 4",
        vec![("US_SSN", "5 3 6-2 2-1 2 3 4"), ("US_SSN", "5 3 6  2 2  1 2 3 4")]
    );
    t!(
        ssn180,
        "my ssn: 5 3 6 2 2 1 2 3 4",
        vec![("US_SSN", "5 3 6 2 2 1 2 3 4")]
    );
    t!(
        ssn190,
        "５３６．２２．１２３４",
        vec![("US_SSN", "５３６．２２．１２３４")]
    );
    // not SSNs: mixed separators, specimens, runs that go on, versions, IPs, dates, OIDs
    t!(
        ssn200,
        "536-22.1234 536.22-1234 536\u{2013}22 1234 5 3 6 - 2 2 -1 2 3 4 536 -22 - 1234",
        vec![]
    );
    t!(
        ssn210,
        "1 2 3 - 4 5 - 6 7 8 9 and 123.45.6789 and 9 1 2 - 2 2 - 1 2 3 4",
        vec![]
    );
    t!(
        ssn220,
        "7 5 3 6 - 2 2 - 1 2 3 4 / 5 3 6 - 2 2 - 1 2 3 4 5 / 536.22.1234.5 / 1.536.22.1234 / 536 - 22 - 1234 - 1",
        vec![]
    );
    t!(ssn230, "order 5 3 6 2 2 1 2 3 4 and 536.221.234", vec![]);
    t!(
        ssn235,
        "room 12 5 3 6 - 2 2 - 1 2 3 4, no 1 5 3 6 - 2 2 - 1 2 3 4",
        vec![("US_SSN", "5 3 6 - 2 2 - 1 2 3 4")]
    );
    t!(
        ssn240,
        "Chrome 120.0.6099.109, Windows 10.0.19045.3693, node 18.17.1, v536.22.1234, 536.22.1234b",
        vec![]
    );
    t!(
        ssn250,
        "hosts 10.123.45.67 and 172.16.254.1; OID 1.2.840.113549.1.1.11 and 2.16.840.1.113883.3.72.5.9.1",
        vec![("IP_ADDRESS", "10.123.45.67"), ("IP_ADDRESS", "172.16.254.1")]
    );
    t!(
        ssn260,
        "on 2024.01.15, 15.03.2024, 2024-01-15, 15/03/2024, 2024. 1. 15.",
        vec![]
    );
    // cards
    t!(
        card010,
        "card 4111 1111 1111 1111 exp",
        vec![("CREDIT_CARD", "4111 1111 1111 1111")]
    );
    t!(
        card020,
        "4111-1111-1111-1111",
        vec![("CREDIT_CARD", "4111-1111-1111-1111")]
    );
    t!(
        card030,
        "amex 3782 822463 10005",
        vec![("CREDIT_CARD", "3782 822463 10005")]
    );
    t!(
        card040,
        "n=5555555555554444;",
        vec![("CREDIT_CARD", "5555555555554444")]
    );
    t!(card050, "4111111111111112 1234567812345670 4111-1111 1111-1111", vec![]);
    t!(
        card060,
        "4111 1111 1111 1111 2024",
        vec![("CREDIT_CARD", "4111 1111 1111 1111")]
    );
    t!(card070, "id-4111111111111111", vec![]);
    // cards: the separators people and tools use (issue 18)
    t!(
        card080,
        "card 4111.1111.1111.1111, amex 3782.822463.10005.",
        vec![
            ("CREDIT_CARD", "4111.1111.1111.1111"),
            ("CREDIT_CARD", "3782.822463.10005")
        ]
    );
    t!(
        card090,
        "a 4111\u{2013}1111\u{2013}1111\u{2013}1111 b 4111\u{2014}1111\u{2014}1111\u{2014}1111",
        vec![
            ("CREDIT_CARD", "4111\u{2013}1111\u{2013}1111\u{2013}1111"),
            ("CREDIT_CARD", "4111\u{2014}1111\u{2014}1111\u{2014}1111")
        ]
    );
    t!(
        card100,
        "a 5555\u{A0}5555\u{A0}5555\u{A0}4444 b 5555\u{202F}5555\u{202F}5555\u{202F}4444 c 5555\u{2009}5555\u{2009}5555\u{2009}4444",
        vec![
            ("CREDIT_CARD", "5555\u{A0}5555\u{A0}5555\u{A0}4444"),
            ("CREDIT_CARD", "5555\u{202F}5555\u{202F}5555\u{202F}4444"),
            ("CREDIT_CARD", "5555\u{2009}5555\u{2009}5555\u{2009}4444")
        ]
    );
    t!(
        card110,
        "a 4111\u{2212}1111\u{2212}1111\u{2212}1111 b 4111\u{2011}1111\u{2011}1111\u{2011}1111",
        vec![
            ("CREDIT_CARD", "4111\u{2212}1111\u{2212}1111\u{2212}1111"),
            ("CREDIT_CARD", "4111\u{2011}1111\u{2011}1111\u{2011}1111")
        ]
    );
    t!(
        card120,
        "card 4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 exp",
        vec![("CREDIT_CARD", "4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1")]
    );
    t!(
        card130,
        "card 4 1 1 1 - 1 1 1 1 - 1 1 1 1 - 1 1 1 1; 4 1 1 1  1 1 1 1  1 1 1 1  1 1 1 1",
        vec![
            ("CREDIT_CARD", "4 1 1 1 - 1 1 1 1 - 1 1 1 1 - 1 1 1 1"),
            ("CREDIT_CARD", "4 1 1 1  1 1 1 1  1 1 1 1  1 1 1 1")
        ]
    );
    t!(
        card140,
        "4111 - 1111 - 1111 - 1111 and 4111  1111  1111  1111",
        vec![
            ("CREDIT_CARD", "4111 - 1111 - 1111 - 1111"),
            ("CREDIT_CARD", "4111  1111  1111  1111")
        ]
    );
    t!(
        card150,
        "４１１１．１１１１．１１１１．１１１１",
        vec![("CREDIT_CARD", "４１１１．１１１１．１１１１．１１１１")]
    );
    t!(
        card160,
        "4111.1111-1111.1111 4111.1111.1111.1112 4111.1111.1111.1111.5 1.4111.1111.1111.1111 v4111.1111.1111.1111",
        vec![]
    );
    t!(
        card170,
        "1 4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 and 4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 and 4 1 1 1 - 1111 1111 1111",
        vec![]
    );
    t!(
        card180,
        "1234.5678.9012.3456 and 2.16.840.1.113883.3.72.5.9.1 and 1.3.6.1.4.1.4111.1111.1111.1111",
        vec![]
    );
    // blanks: one to four spaces or tabs between groups read as one space, mixed freely
    t!(
        blank010,
        "card 4111\t1111\t1111\t1111 exp; 4111 1111  1111\t1111; amex 3782\t822463   10005.",
        vec![
            ("CREDIT_CARD", "4111\t1111\t1111\t1111"),
            ("CREDIT_CARD", "4111 1111  1111\t1111"),
            ("CREDIT_CARD", "3782\t822463   10005")
        ]
    );
    t!(
        blank020,
        "card 4111\t-\t1111 -\t1111\t\t- 1111 and 4111  .  1111   .   1111 . 1111",
        vec![
            ("CREDIT_CARD", "4111\t-\t1111 -\t1111\t\t- 1111"),
            ("CREDIT_CARD", "4111  .  1111   .   1111 . 1111")
        ]
    );
    t!(
        blank030,
        "SSN 536\t22\t1234, ssn 536  22\t1234 or 536 -\t22\t- 1234; 5 3 6\t2 2  1 2 3 4",
        vec![
            ("US_SSN", "536\t22\t1234"),
            ("US_SSN", "536  22\t1234"),
            ("US_SSN", "536 -\t22\t- 1234"),
            ("US_SSN", "5 3 6\t2 2  1 2 3 4")
        ]
    );
    // a value may still end before a further blank-separated group
    t!(
        blank040,
        "4111\t1111\t1111\t1111\t2024 and SSN 536\t22\t1234  99",
        vec![("CREDIT_CARD", "4111\t1111\t1111\t1111"), ("US_SSN", "536\t22\t1234")]
    );
    // a tab written as `%09` (a URL's query) is a blank too
    t!(
        blank045,
        "GET /pay?iban=DE89%093704%090044%090532%090130%0900&x=1",
        vec![("IBAN", "DE89%093704%090044%090532%090130%0900")]
    );
    t!(
        blank050,
        "IBAN DE89  3704  0044  0532  0130  00, DE89\t3704\t0044\t0532\t0130\t00 or GB29 NWBK\t6016  1331 \t9268\t19.",
        vec![
            ("IBAN", "DE89  3704  0044  0532  0130  00"),
            ("IBAN", "DE89\t3704\t0044\t0532\t0130\t00"),
            ("IBAN", "GB29 NWBK\t6016  1331 \t9268\t19")
        ]
    );
    t!(
        blank060,
        "call +1  415  555  0132, (415)  555-0132, 020\t7946\t0958 or 415\t555 \t0132; +44\t20  7946\t0958",
        vec![
            ("PHONE", "+1  415  555  0132"),
            ("PHONE", "(415)  555-0132"),
            ("PHONE", "020\t7946\t0958"),
            ("PHONE", "415\t555 \t0132"),
            ("PHONE", "+44\t20  7946\t0958")
        ]
    );
    // bounded: five blanks or more join nothing, and a line break is no blank
    t!(
        blank070,
        "4111     1111     1111     1111 | 4111 \t \t 1111 \t \t 1111 \t \t 1111 | 536     22     1234 | 536\t\t\t\t\t22\t\t\t\t\t1234",
        vec![]
    );
    t!(
        blank080,
        "IBAN DE89     3704     0044     0532     0130     00; DE89 \t \t 3704 0044 0532 0130 00",
        vec![]
    );
    t!(
        blank090,
        "+1     415     555     0132 | 020\t\t\t\t\t7946\t\t\t\t\t0958 | (415)     555-0132",
        vec![]
    );
    t!(
        blank100,
        "4111\n1111\n1111\n1111 | 536\n22\n1234 | 415\n555\n0132",
        vec![]
    );
    // other gaps still do not mix with a blank
    t!(
        blank110,
        "4111\t1111-1111\t1111 536\t22-1234 536 -\t22\t-1234 DE89\t3704-0044-0532-0130-00",
        vec![]
    );
    // no phone of blank-joined groups starts inside a longer run of them (a table row); a digit
    // and a tab in front do not hide a phone written otherwise
    t!(
        blank120,
        "row 12 415 555 0132, 12\t415\t555\t0132, 12  415  555 0132 and 7\t415-555-0132, 34\t(415) 555-0132",
        vec![("PHONE", "415-555-0132"), ("PHONE", "(415) 555-0132")]
    );
    // look-alikes written with blanks stay nothing: dates, versions, prices, columns of numbers
    t!(
        blank130,
        "2024\t01\t15  10:30 | 1.2\t3.4\t5.6 | 12\t34\t56\t78 | 1234\t5678\t9012\t3456 | 99  99  99  99",
        vec![]
    );
    // IPv4 / IPv6
    t!(ip010, "host 192.168.1.20:8080", vec![("IP_ADDRESS", "192.168.1.20")]);
    t!(
        ip020,
        "1.3.6.1.4.1.343 10.0.19045.3693 256.1.1.1 01.2.3.4 v1.2.3.4",
        vec![]
    );
    t!(
        ip030,
        "at 2001:db8::8a2e:370:7334.",
        vec![("IP_ADDRESS", "2001:db8::8a2e:370:7334")]
    );
    t!(
        ip040,
        "[fe80::1]:443 and ::ffff:192.0.2.1",
        vec![("IP_ADDRESS", "fe80::1"), ("IP_ADDRESS", "::ffff:192.0.2.1")]
    );
    t!(ip050, "std::vector a[::1] 12:30:45 00:1A:2B:3C:4D:5E ::", vec![]);
    t!(
        ip060,
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        vec![("IP_ADDRESS", "2001:0db8:85a3:0000:0000:8a2e:0370:7334")]
    );
    // IBAN
    t!(
        iban010,
        "IBAN DE89 3704 0044 0532 0130 00.",
        vec![("IBAN", "DE89 3704 0044 0532 0130 00")]
    );
    t!(
        iban020,
        "GB82WEST12345698765432",
        vec![("IBAN", "GB82WEST12345698765432")]
    );
    t!(iban030, "DE89 3704 0044 0532 0130 01 DE89370400440532013000X", vec![]);
    t!(
        iban040,
        "IBAN DE89\u{A0}3704\u{A0}0044\u{A0}0532\u{A0}0130\u{A0}00 or FR14\u{202F}2004\u{202F}1010\u{202F}0505\u{202F}0001\u{202F}3M02\u{202F}606",
        vec![
            ("IBAN", "DE89\u{A0}3704\u{A0}0044\u{A0}0532\u{A0}0130\u{A0}00"),
            ("IBAN", "FR14\u{202F}2004\u{202F}1010\u{202F}0505\u{202F}0001\u{202F}3M02\u{202F}606")
        ]
    );
    t!(
        iban050,
        "IBAN DE89-3704-0044-0532-0130-00, GB82\u{2013}WEST\u{2013}1234\u{2013}5698\u{2013}7654\u{2013}32",
        vec![
            ("IBAN", "DE89-3704-0044-0532-0130-00"),
            ("IBAN", "GB82\u{2013}WEST\u{2013}1234\u{2013}5698\u{2013}7654\u{2013}32")
        ]
    );
    t!(
        iban060,
        "DE89-3704 0044-0532-0130-00 DE89-3704-0044-0532-0130-00-1",
        vec![]
    );
    // a dash glued to an address or a token is not part of it
    t!(
        email110,
        "mail bob@example.com- or us\u{2014}alice@example.com\u{2014}thanks, eve@example.org\u{2013}",
        vec![
            ("EMAIL", "bob@example.com"),
            ("EMAIL", "alice@example.com"),
            ("EMAIL", "eve@example.org")
        ]
    );
    t!(
        email120,
        "key\u{2014}ghp_R8fZp2Lq9VxW3mKt7YcN1bHd6JsQ0aUe4Gio\u{2014}keep it",
        vec![("GITHUB_TOKEN", "ghp_R8fZp2Lq9VxW3mKt7YcN1bHd6JsQ0aUe4Gio")]
    );
    // phones
    t!(phone010, "call (415) 555-0132 today", vec![("PHONE", "(415) 555-0132")]);
    t!(
        phone020,
        "415-555-0132 or 415.555.0132",
        vec![("PHONE", "415-555-0132"), ("PHONE", "415.555.0132")]
    );
    t!(phone030, "+1 415 555 0132", vec![("PHONE", "+1 415 555 0132")]);
    t!(phone040, "1-800-555-0199", vec![("PHONE", "1-800-555-0199")]);
    t!(phone050, "+44 20 7946 0958", vec![("PHONE", "+44 20 7946 0958")]);
    t!(phone060, "+44 (0)20 7946 0958", vec![("PHONE", "+44 (0)20 7946 0958")]);
    t!(
        phone070,
        "UK 020 7946 0958, FR 01 42 68 53 00",
        vec![("PHONE", "020 7946 0958"), ("PHONE", "01 42 68 53 00")]
    );
    t!(phone080, "+14155550132", vec![("PHONE", "+14155550132")]);
    t!(phone090, "tel: 98765 43210", vec![("PHONE", "98765 43210")]);
    t!(
        phone100,
        "05.10.1986 2015-03-2016 1700000000 123-456-7890 ISBN 978-3-16-148410-0",
        vec![]
    );
    t!(phone110, "score +12 and 2024-01-15 10:30", vec![]);
    t!(phone120, "+1 (415) 555-0132", vec![("PHONE", "+1 (415) 555-0132")]);
    t!(phone130, "03-1234-5678", vec![("PHONE", "03-1234-5678")]);
    t!(
        phone140,
        "call 415\u{2013}555\u{2013}0132 or +44\u{A0}20\u{A0}7946\u{A0}0958 or 415\u{2014}555\u{2014}0132",
        vec![
            ("PHONE", "415\u{2013}555\u{2013}0132"),
            ("PHONE", "+44\u{A0}20\u{A0}7946\u{A0}0958"),
            ("PHONE", "415\u{2014}555\u{2014}0132")
        ]
    );
    t!(
        phone150,
        "Tel. 030/12345678, mobil 0171/1234567",
        vec![("PHONE", "030/12345678"), ("PHONE", "0171/1234567")]
    );
    t!(
        phone160,
        "phone 12/25/2024, 05/10/1986, 1/2, 2015 \u{2013} 03/2016, 030/1234/5678, 415/555/0132, +49/301234567",
        vec![]
    );
}
