//! Personal data parsers: e-mail, IPv6 (anchored on `@` and `:`) and the number family — US SSN,
//! payment card, phone, IPv4 and IBAN — all started from the first digit of a digit run.
//!
//! Numbers share one boundary rule: a number does not start right after a word byte or after
//! `-`/`.` that follows an alphanumeric (`INV-2231…`, `v1.2.3`), and does not end before a word
//! byte or before `-`/`.` plus a digit (so a run is never cut to fit a shape).

use std::net::Ipv6Addr;

use super::detectors::{
    at, context_before, is, prev, word, ContextWords, Detectors, Memo, Out, Res, ALNUM, HEX, LABEL, LOCAL,
};
use super::entity::Builtin;
use super::normalize::View;
use super::validate;

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
        if i == ls || t[ls] == b'-' || t[i - 1] == b'-' {
            break;
        }
        labels += 1;
        tld_start = ls;
        end = i;
        if i - (a + 1) > MAX_DOMAIN {
            return Res::No;
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
fn num_left_ok(t: &[u8], s: usize) -> bool {
    match prev(t, s) {
        None => true,
        Some(b) if word(b) => false,
        Some(b'-' | b'.') => !prev(t, s - 1).is_some_and(|c| is(ALNUM, c)),
        Some(_) => true,
    }
}

/// Number boundary on the right of `e`: `Yes(e)` or `No`.
fn num_right(v: &View, e: usize) -> Res {
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
        return;
    }
    let run = t[d..].iter().take(20).take_while(|b| b.is_ascii_digit()).count();
    // past the buffer every parser must get its say (it answers `More`)
    let open = d + run >= t.len() && !v.eof;
    let next = t.get(d + run).copied().unwrap_or(0);
    let any = |ok: bool| open || ok;
    if det.on(Builtin::UsSsn) && any((run == 3 && matches!(next, b'-' | b' ')) || run == 9) {
        out.put(d, Builtin::UsSsn.id(), ssn(v, d));
    }
    if det.on(Builtin::CreditCard) && any((run == 4 && matches!(next, b' ' | b'-')) || (13..=19).contains(&run)) {
        out.put(d, Builtin::CreditCard.id(), card(v, d));
    }
    if det.on(Builtin::IpAddress) && any(run <= 3 && next == b'.') {
        out.put(d, Builtin::IpAddress.id(), ipv4(v, d));
    }
    if det.on(Builtin::Phone) {
        let grouped = matches!(next, b' ' | b'-' | b'.' | b')' | b'(');
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

/// US SSN: `ddd-dd-dddd` or `ddd dd dddd`, or nine bare digits after an SSN word.
fn ssn(v: &View, d: usize) -> Res {
    let t = v.t;
    if !num_left_ok(t, d) {
        return Res::No;
    }
    let e1 = digits!(v, d, 9);
    let (area, group, serial, end) = match e1 - d {
        3 => {
            let sep = match at!(v, e1) {
                Some(c @ (b'-' | b' ')) => c,
                _ => return Res::No,
            };
            let e2 = digits!(v, e1 + 1, 2);
            if e2 - e1 - 1 != 2 || at!(v, e2) != Some(sep) {
                return Res::No;
            }
            let e3 = digits!(v, e2 + 1, 4);
            if e3 - e2 - 1 != 4 {
                return Res::No;
            }
            (num(&t[d..e1]), num(&t[e1 + 1..e2]), num(&t[e2 + 1..e3]), e3)
        }
        9 if context_before(t, d, 40, &SSN_WORDS) => (num(&t[d..d + 3]), num(&t[d + 3..d + 5]), num(&t[d + 5..e1]), e1),
        _ => return Res::No,
    };
    if !validate::ssn(area, group, serial) {
        return Res::No;
    }
    num_right(v, end)
}

/// Payment card: 13–19 digits, contiguous or in groups split by one kind of separator.
fn card(v: &View, d: usize) -> Res {
    let t = v.t;
    if !num_left_ok(t, d) {
        return Res::No;
    }
    let mut lens = [0usize; 6];
    let mut ends = [0usize; 6];
    let mut n = 0;
    let mut total = 0;
    let mut sep = 0u8;
    let mut i = d;
    loop {
        let e = digits!(v, i, 19);
        lens[n] = e - i;
        ends[n] = e;
        total += e - i;
        n += 1;
        if total > 19 || n == lens.len() {
            break;
        }
        match at!(v, e) {
            Some(c @ (b' ' | b'-')) if sep == 0 || sep == c => match at!(v, e + 1) {
                Some(x) if x.is_ascii_digit() => {
                    sep = c;
                    i = e + 1;
                }
                _ => break,
            },
            _ => break,
        }
    }
    let mut digits = [0u8; 19];
    for k in (1..=n).rev() {
        let sum: usize = lens[..k].iter().sum();
        if !(13..=19).contains(&sum) {
            continue;
        }
        let grouped = k == 1
            || (lens[..k - 1].iter().all(|&l| l == 4) && (1..=4).contains(&lens[k - 1]))
            || (k == 3 && lens[0] == 4 && lens[1] == 6 && (4..=5).contains(&lens[2]));
        if !grouped {
            continue;
        }
        // a shorter prefix may stop only before a space-separated group
        if k < n && sep != b' ' {
            continue;
        }
        let mut m = 0;
        for &b in &t[d..ends[k - 1]] {
            if b.is_ascii_digit() {
                digits[m] = b;
                m += 1;
            }
        }
        if !validate::card_number(&digits[..m]) {
            continue;
        }
        let r = if k < n {
            Res::Yes(ends[k - 1])
        } else {
            num_right(v, ends[k - 1])
        };
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
/// contiguous or in space-separated groups of four.
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
    let mut spaced: Option<bool> = None;
    let mut after_space = false;
    while count < len {
        let c = match at!(v, i) {
            Some(c) => c,
            None => return Res::No,
        };
        if is(ALNUM, c) {
            if (count < 4 && !c.is_ascii_digit()) || (spaced == Some(true) && count % 4 == 0 && !after_space) {
                return Res::No;
            }
            if count == 4 && spaced.is_none() {
                spaced = Some(false);
            }
            buf[count] = c.to_ascii_uppercase();
            count += 1;
            i += 1;
            after_space = false;
        } else if c == b' ' && count % 4 == 0 && spaced != Some(false) && !after_space {
            spaced = Some(true);
            after_space = true;
            i += 1;
            if !at!(v, i).is_some_and(|x| is(ALNUM, x)) {
                return Res::No;
            }
        } else {
            return Res::No;
        }
    }
    if at!(v, i).is_some_and(word) {
        return Res::No;
    }
    if validate::iban(&buf[..count]) {
        Res::Yes(i)
    } else {
        Res::No
    }
}

/// Digit groups of a phone candidate: `(` group `)` or plain digit runs, joined by one space,
/// dash or dot (or nothing after a `)`).
struct Groups {
    n: usize,
    lens: [u8; 8],
    ends: [usize; 8],
    /// Separator before each group (0: none / first).
    seps: [u8; 8],
    /// Bit k: group k was in parentheses.
    parens: u8,
}

impl Groups {
    fn total(&self, k: usize) -> usize {
        self.lens[..k].iter().map(|&l| usize::from(l)).sum()
    }
}

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
                Some(s @ (b' ' | b'-' | b'.')) => (s, end + 1),
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
        // E.164 (8 to 15 digits, a country code that does not start with 0) and NANP have enough
        // structure to stop before a further space-separated group; the looser forms do not
        let strong = if intl {
            let (lo, hi) = if k == 1 { (10, 15) } else { (8, 15) };
            !paren(0) && t[s + 1] != b'0' && (lo..=hi).contains(&total)
        } else {
            nanp(t, s, lens, seps, &g)
        };
        let ok = strong
            || (!intl && k == g.n && (trunk(t, s, lens, seps, &g, k) || ((7..=15).contains(&total) && context())));
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
    if paren(off) {
        !paren(off + 1) && matches!(s_exch, 0 | b' ' | b'-') && matches!(s_line, b'-' | b'.' | b' ')
    } else {
        !paren(off + 1) && s_exch != 0 && s_exch == s_line && (off == 0 || seps[1] == s_exch || seps[1] == b' ')
    }
}

/// National numbers with a trunk `0`: `020 7946 0958`, `(030) 1234567`, `06-12345678`,
/// `01 42 68 53 00` (dots only when every group has two digits, so `05.10.1986` is a date).
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
        .all(|&c| matches!(c, b' ' | b'-') || (c == 0 && paren0))
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
}
