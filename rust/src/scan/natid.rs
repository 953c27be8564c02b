//! European national identification numbers, each decided by its official check digit or letter:
//! German tax id (`DE_TAX_ID`), French NIR (`FR_NIR`), Spanish DNI and NIE (`ES_DNI`, `ES_NIE`),
//! Italian codice fiscale (`IT_FISCAL_CODE`), Dutch BSN (`NL_BSN`), Polish PESEL (`PL_PESEL`),
//! Swedish personnummer (`SE_PERSONNUMMER`), Belgian national number (`BE_NATIONAL_NUMBER`),
//! Finnish personal identity code (`FI_HETU`) and Austrian social security number (`AT_SVNR`).
//!
//! The digit-led ones start from the first digit of a digit run, like the other numbers
//! (`pii.rs`, same boundary rules); a NIE and a codice fiscale start with letters and are tried from
//! the first digit of a letter-led token. Each reads one of a few fixed written forms
//! ([`read_form`]; a space in a form is a blank, one to four spaces or tabs, as between the groups
//! of the other numbers), so a parser looks at most [`MAX_READ`] bytes ahead and decides from the
//! bytes it has or says it needs more, which keeps streamed scans equal to whole ones.
//!
//! Where the check alone is weak — of random digit runs of the right length, the BSN's 11-test
//! passes one in 11, PESEL with its date one in 53, the Swedish Luhn digit with the date one in 134,
//! the German tax id's check digit with its digit-repetition rule one in 312, the Belgian 97-check
//! with the date one in 391, the Austrian check digit with the date about one in 300 — the number must also follow one of its names within [`CONTEXT_WINDOW`] bytes
//! (`BSN`, `PESEL`, `Steuer-ID`, `personnummer`, `rijksregisternummer`, …), through the same
//! [`context_before`] the SSN's bare-digit form uses. The NIR (a mod-97 key over a structured
//! number), the DNI/NIE letter (mod 23), the codice fiscale (16 characters, month letter, day,
//! check letter) and the HETU (a date, a century sign and a mod-31 check character) need no context.

use super::detectors::{at, context_before, prev, word, ContextWords, Detectors, Out, Res};
use super::entity::Builtin;
use super::normalize::View;
use super::pii::{blank_end, blank_run, is_blank, num_left_ok, num_right, MAX_GAP};

/// Longest written form, in form bytes (a spaced NIR `1 85 05 78 006 084 36`).
pub const MAX_LEN: usize = 21;
/// Most spaces in a written form (the spaced NIR's six).
const MAX_SPACES: usize = 6;
/// How far a form is read, in normalized bytes: the longest form with its spaces written as the
/// widest blanks, and the byte that shows a blank is too long. A stream's hold-back covers it.
pub const MAX_READ: usize = MAX_LEN + MAX_SPACES * (MAX_GAP - 1) + 1;

/// How far before a number its context word may start, in normalized bytes.
pub const CONTEXT_WINDOW: usize = 48;

const DE_WORDS: ContextWords = ContextWords::new(&[
    b"steuer-id",
    b"steuerid",
    b"steuer id",
    b"steuer-identifikationsnummer",
    b"steueridentifikationsnummer",
    b"steuerliche identifikationsnummer",
    b"identifikationsnummer",
    b"idnr",
    b"id-nr",
    b"tin",
    b"tax id",
    b"tax identification",
]);
const NL_WORDS: ContextWords = ContextWords::new(&[
    b"bsn",
    b"burgerservicenummer",
    b"burger service nummer",
    b"sofinummer",
    b"sofi-nummer",
    b"sofi nummer",
    b"citizen service number",
]);
const AT_WORDS: ContextWords = ContextWords::new(&[
    b"sozialversicherungsnummer",
    b"versicherungsnummer",
    b"sv-nummer",
    b"svnr",
    b"sv-nr",
    b"vsnr",
]);
const PL_WORDS: ContextWords = ContextWords::new(&[b"pesel"]);
const SE_WORDS: ContextWords = ContextWords::new(&[
    b"personnummer",
    b"personnr",
    b"pers.nr",
    b"pnr",
    b"samordningsnummer",
    b"personal identity number",
    b"personal number",
]);
const BE_WORDS: ContextWords = ContextWords::new(&[
    b"rijksregisternummer",
    b"rijksregister",
    b"nationaal nummer",
    b"nationaalnummer",
    b"insz",
    b"num\xc3\xa9ro national",
    b"numero national",
    b"num\xc3\xa9ro de registre national",
    b"registre national",
    b"niss",
    b"national number",
    b"national register",
    b"rrn",
]);

/// Written forms, one byte per text byte: `#` a digit, `L` an ASCII upper-case letter, `c` a digit
/// or `A`/`B` (a Corsican department), `x` a digit or an upper-case letter, `C` a HETU century sign,
/// anything else itself.
const DE_FORMS: &[&[u8]] = &[b"###########", b"## ### ### ###"];
const FR_FORMS: &[&[u8]] = &[b"######c########", b"# ## ## #c ### ### ##", b"######c###### ##"];
const ES_DNI_FORMS: &[&[u8]] = &[b"########L", b"########-L", b"##.###.###-L"];
const ES_NIE_FORMS: &[&[u8]] = &[b"L#######L", b"L-#######-L", b"L#######-L"];
const NL_FORMS: &[&[u8]] = &[b"#########", b"####.##.###"];
const PL_FORMS: &[&[u8]] = &[b"###########"];
const SE_FORMS: &[&[u8]] = &[
    b"######-####",
    b"######+####",
    b"##########",
    b"########-####",
    b"############",
];
const BE_FORMS: &[&[u8]] = &[b"###########", b"##.##.##-###.##", b"######-###-##", b"######-###.##"];
const FI_FORMS: &[&[u8]] = &[b"######C###x"];
const AT_FORMS: &[&[u8]] = &[b"##########", b"#### ######"];

/// HETU century signs: `+` for the 1800s, `-` and `U`–`Y` for the 1900s, `A`–`F` for the 2000s.
fn fi_century(c: u8) -> Option<u32> {
    match c {
        b'+' => Some(1800),
        b'-' | b'U'..=b'Y' => Some(1900),
        b'A'..=b'F' => Some(2000),
        _ => None,
    }
}

const _: () = {
    let all: [&[&[u8]]; 10] = [
        DE_FORMS,
        FR_FORMS,
        ES_DNI_FORMS,
        ES_NIE_FORMS,
        NL_FORMS,
        PL_FORMS,
        SE_FORMS,
        BE_FORMS,
        FI_FORMS,
        AT_FORMS,
    ];
    let mut i = 0;
    while i < all.len() {
        let mut j = 0;
        while j < all[i].len() {
            let form = all[i][j];
            assert!(form.len() <= MAX_LEN);
            let (mut k, mut spaces) = (0, 0);
            while k < form.len() {
                if form[k] == b' ' {
                    spaces += 1;
                }
                k += 1;
            }
            assert!(spaces <= MAX_SPACES);
            j += 1;
        }
        i += 1;
    }
};

/// The built-ins the number pass runs for (the NIE and the codice fiscale too: it is their digits
/// that trigger them).
pub const DIGIT_LED: [Builtin; 11] = [
    Builtin::DeTaxId,
    Builtin::FrNir,
    Builtin::EsDni,
    Builtin::EsNie,
    Builtin::ItFiscalCode,
    Builtin::NlBsn,
    Builtin::PlPesel,
    Builtin::SePersonnummer,
    Builtin::BeNationalNumber,
    Builtin::FiHetu,
    Builtin::AtSvnr,
];

/// Reads `form` at `s`: `Yes(end)` with the value's characters (digits, letters) in `buf[..len]`,
/// `No` when the text does not have that form, `More` when the buffer ends first. A space in the
/// form reads a blank: the form as written is tried first, and a wider blank or a tab where it
/// has a space reads the form again with [`read_form_blanks`].
fn read_form(v: &View, s: usize, form: &[u8], buf: &mut [u8; MAX_LEN], len: &mut usize) -> Res {
    *len = 0;
    for (k, &f) in form.iter().enumerate() {
        let Some(b) = at!(v, s + k) else {
            return Res::No;
        };
        if !form_byte(f, b) {
            let at_space = f == b' ' || (k > 0 && form[k - 1] == b' ');
            return if at_space && is_blank(b) {
                read_form_blanks(v, s, form, buf, len)
            } else {
                Res::No
            };
        }
        if matches!(f, b'#' | b'L' | b'c' | b'x' | b'C') {
            buf[*len] = b;
            *len += 1;
        }
    }
    Res::Yes(s + form.len())
}

/// Whether the text byte `b` fits the form byte `f`.
#[inline(always)]
fn form_byte(f: u8, b: u8) -> bool {
    match f {
        b'#' => b.is_ascii_digit(),
        b'L' => b.is_ascii_uppercase(),
        b'c' => b.is_ascii_digit() || matches!(b, b'A' | b'B'),
        b'x' => b.is_ascii_digit() || b.is_ascii_uppercase(),
        b'C' => fi_century(b).is_some(),
        _ => b == f,
    }
}

/// [`read_form`] where each space of the form reads a blank ([`blank_run`]).
#[cold]
#[inline(never)]
fn read_form_blanks(v: &View, s: usize, form: &[u8], buf: &mut [u8; MAX_LEN], len: &mut usize) -> Res {
    *len = 0;
    let mut i = s;
    for &f in form {
        if f == b' ' {
            match blank_run(v, i) {
                Res::Yes(e) => i = e,
                r => return r,
            }
            continue;
        }
        let Some(b) = at!(v, i) else {
            return Res::No;
        };
        if !form_byte(f, b) {
            return Res::No;
        }
        if matches!(f, b'#' | b'L' | b'c' | b'x' | b'C') {
            buf[*len] = b;
            *len += 1;
        }
        i += 1;
    }
    Res::Yes(i)
}

/// The longest of `forms` at `s` whose value passes `valid` and that ends at a number boundary.
/// Any form that needs more text makes the whole answer wait.
fn longest_form(v: &View, s: usize, forms: &[&[u8]], valid: impl Fn(&[u8]) -> bool) -> Res {
    let mut best = Res::No;
    let mut buf = [0u8; MAX_LEN];
    let mut len = 0;
    for form in forms {
        match read_form(v, s, form, &mut buf, &mut len) {
            Res::Yes(e) => {
                if !valid(&buf[..len]) {
                    continue;
                }
                match num_right(v, e) {
                    Res::Yes(e) => {
                        if let Res::Yes(b) = best {
                            best = Res::Yes(b.max(e));
                        } else if best == Res::No {
                            best = Res::Yes(e);
                        }
                    }
                    Res::More => return Res::More,
                    _ => {}
                }
            }
            Res::More => return Res::More,
            _ => {}
        }
    }
    best
}

/// Whether a national id may start at or just before the digit run at `d` (`run` digits, then
/// `next`): the union of [`digit_led`]'s gates, tested first so that the common short numbers of
/// prose and code cost one lookup.
#[inline(always)]
pub fn may_start(t: &[u8], d: usize, run: usize, next: u8) -> bool {
    // the byte after a separator must be a digit (or not here yet); after a blank, the byte
    // after the whole blank
    let digit_at = |i: usize| t.get(i).is_none_or(u8::is_ascii_digit);
    match run {
        1 => is_blank(next) && matches!(t[d], b'1' | b'2' | b'7' | b'8') && digit_at(blank_end(t, d + 1)),
        2 => (next == b'.' && digit_at(d + 3)) || (is_blank(next) && digit_at(blank_end(t, d + 2))),
        // `####.##.###` (BSN) or `#### ######` (Austria; not a card's groups of four)
        4 => {
            next == b'.'
                || (is_blank(next) && {
                    let j = blank_end(t, d + 4);
                    digit_at(j) && digit_at(j + 4) && digit_at(j + 5)
                })
        }
        6 => matches!(next, b'-' | b'+' | b'A'..=b'F' | b'U'..=b'Y'),
        7 => prev(t, d) == Some(b'-'),
        8 => matches!(next, b'-' | b'+') || next.is_ascii_uppercase(),
        9..=13 | 15 => true,
        _ => false,
    }
}

/// Whether the digit `d`, glued to a letter, may be the first digit of a NIE or codice fiscale.
#[inline(always)]
pub fn may_lead(t: &[u8], d: usize) -> bool {
    // a token start right before the NIE's letter or the codice fiscale's six letters (base64 and
    // hex runs, where most glued digits are, fail here)
    let starts = |s: usize| s == 0 || !word(t[s - 1]);
    (matches!(t[d - 1], b'X' | b'Y' | b'Z') && starts(d - 1))
        || (d >= 6 && starts(d - 6) && t[d - 6].is_ascii_alphabetic() && t[d - 1].is_ascii_alphabetic())
}

/// The digit-led national ids for the digit run starting at `d` (`run` digits, then `next`;
/// `open` when the run reaches the end of an unfinished buffer), each behind its own gate on `run`
/// and `next`; the weak ones answer `Yes` only with their name before `d`.
#[inline(never)]
pub fn digit_led(det: &Detectors, v: &View, d: usize, run: usize, next: u8, open: bool, out: &mut Out) {
    let t = v.t;
    let any = |ok: bool| open || ok;
    if !num_left_ok(t, d) {
        // `X-1234567-L`: a NIE's letter and dash before the digits
        if det.on(Builtin::EsNie)
            && d >= 2
            && t[d - 1] == b'-'
            && matches!(t[d - 2], b'X' | b'Y' | b'Z')
            && num_left_ok(t, d - 2)
        {
            out.put(d - 2, Builtin::EsNie.id(), longest_form(v, d - 2, ES_NIE_FORMS, es_nie));
        }
        return;
    }
    // the name is looked for only once the check passed: most digit runs fail the check first
    let named = |r: Res, words: &ContextWords| match r {
        Res::Yes(_) if !context_before(t, d, CONTEXT_WINDOW, words) => Res::No,
        r => r,
    };
    if det.on(Builtin::DeTaxId) && any(run == 11 || (run == 2 && is_blank(next))) {
        let r = longest_form(v, d, DE_FORMS, de_tax_id);
        out.put(d, Builtin::DeTaxId.id(), named(r, &DE_WORDS));
    }
    if det.on(Builtin::FrNir)
        && any(run == 15 || run == 13 || (run == 1 && is_blank(next)) || (run == 6 && matches!(next, b'A' | b'B')))
    {
        out.put(d, Builtin::FrNir.id(), longest_form(v, d, FR_FORMS, fr_nir));
    }
    if det.on(Builtin::EsDni)
        && any((run == 8 && (next == b'-' || next.is_ascii_uppercase())) || (run == 2 && next == b'.'))
    {
        out.put(d, Builtin::EsDni.id(), longest_form(v, d, ES_DNI_FORMS, es_dni));
    }
    if det.on(Builtin::NlBsn) && any(run == 9 || (run == 4 && next == b'.')) {
        let r = longest_form(v, d, NL_FORMS, nl_bsn);
        out.put(d, Builtin::NlBsn.id(), named(r, &NL_WORDS));
    }
    if det.on(Builtin::PlPesel) && any(run == 11) {
        let r = longest_form(v, d, PL_FORMS, pl_pesel);
        out.put(d, Builtin::PlPesel.id(), named(r, &PL_WORDS));
    }
    if det.on(Builtin::SePersonnummer)
        && any(((run == 6 || run == 8) && matches!(next, b'-' | b'+')) || run == 10 || run == 12)
    {
        let r = longest_form(v, d, SE_FORMS, se_personnummer);
        out.put(d, Builtin::SePersonnummer.id(), named(r, &SE_WORDS));
    }
    if det.on(Builtin::BeNationalNumber) && any(run == 11 || (run == 2 && next == b'.') || (run == 6 && next == b'-')) {
        let r = longest_form(v, d, BE_FORMS, be_national_number);
        out.put(d, Builtin::BeNationalNumber.id(), named(r, &BE_WORDS));
    }
    if det.on(Builtin::AtSvnr) && any(run == 10 || (run == 4 && is_blank(next))) {
        let r = longest_form(v, d, AT_FORMS, at_svnr);
        out.put(d, Builtin::AtSvnr.id(), named(r, &AT_WORDS));
    }
    if det.on(Builtin::FiHetu) && any(run == 6 && fi_century(next).is_some()) {
        out.put(d, Builtin::FiHetu.id(), longest_form(v, d, FI_FORMS, fi_hetu));
    }
}

/// The letter-led ids around the digit `d` that follows a letter: a NIE (`X1234567L`) whose
/// prefix letter is right before `d`, and a codice fiscale whose token starts with letters only
/// (so only the token's first digit tries it).
#[inline(never)]
pub fn letter_led(det: &Detectors, v: &View, d: usize, out: &mut Out) {
    let t = v.t;
    if det.on(Builtin::EsNie) && matches!(t[d - 1], b'X' | b'Y' | b'Z') && num_left_ok(t, d - 1) {
        out.put(d - 1, Builtin::EsNie.id(), longest_form(v, d - 1, ES_NIE_FORMS, es_nie));
    }
    if det.on(Builtin::ItFiscalCode) {
        // six letters before the first digit (omocodia turns digits into letters from the right,
        // so the seventh character stays a digit unless all seven are letters, which is missed)
        let mut s = d;
        while s > 0 && d - s <= 6 && t[s - 1].is_ascii_alphabetic() {
            s -= 1;
        }
        if d - s == 6 && !prev(t, s).is_some_and(word) {
            out.put(s, Builtin::ItFiscalCode.id(), fiscal_code(v, s));
        }
    }
}

/// Letters that stand for digits in an omocodic codice fiscale (`L` for 0 … `V` for 9).
const OMOCODIA: &[u8; 10] = b"LMNPQRSTUV";
/// Month letters of a codice fiscale, January to December.
const IT_MONTHS: &[u8; 12] = b"ABCDEHLMPRST";
/// Values of the characters in odd (1st, 3rd, …) positions; a digit counts as the letter of its
/// index (`0` as `A`).
const IT_ODD: [u8; 26] = [
    1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23,
];

/// A codice fiscale at `s`: 16 characters `LLLLLL##L##L###L` (every `#` possibly an omocodia
/// letter), all letters in one case, then a word boundary.
fn fiscal_code(v: &View, s: usize) -> Res {
    let mut buf = [0u8; 16];
    let mut upper = None;
    for (k, slot) in buf.iter_mut().enumerate() {
        let Some(b) = at!(v, s + k) else {
            return Res::No;
        };
        if b.is_ascii_alphabetic() {
            let u = b.is_ascii_uppercase();
            if *upper.get_or_insert(u) != u {
                return Res::No;
            }
        } else if !b.is_ascii_digit() {
            return Res::No;
        }
        *slot = b.to_ascii_uppercase();
    }
    match at!(v, s + 16) {
        Some(b) if word(b) => return Res::No,
        _ => {}
    }
    if fiscal_code_valid(&buf) {
        Res::Yes(s + 16)
    } else {
        Res::No
    }
}

/// Whether the upper-cased 16 characters are a codice fiscale: the shape, a month letter, a day
/// 1–31 (41–71 for women) and the check letter.
pub fn fiscal_code_valid(c: &[u8; 16]) -> bool {
    const DIGITS: [usize; 7] = [6, 7, 9, 10, 12, 13, 14];
    let mut num = [0u8; 16];
    for (k, &b) in c.iter().enumerate() {
        if DIGITS.contains(&k) {
            num[k] = if b.is_ascii_digit() {
                b - b'0'
            } else if let Some(x) = OMOCODIA.iter().position(|&o| o == b) {
                x as u8
            } else {
                return false;
            };
        } else if !b.is_ascii_uppercase() {
            return false;
        }
    }
    // omocodia replaces digits from the right: once a position holds a letter, every position to
    // its right does too
    let mut seen_letter = false;
    for &k in &DIGITS {
        if !c[k].is_ascii_digit() {
            seen_letter = true;
        } else if seen_letter {
            return false;
        }
    }
    if !IT_MONTHS.contains(&c[8]) {
        return false;
    }
    let day = num[9] * 10 + num[10];
    if !((1..=31).contains(&day) || (41..=71).contains(&day)) {
        return false;
    }
    let mut sum = 0u32;
    for (k, &b) in c[..15].iter().enumerate() {
        let idx = if b.is_ascii_digit() { b - b'0' } else { b - b'A' };
        sum += if k % 2 == 0 {
            u32::from(IT_ODD[usize::from(idx)])
        } else {
            u32::from(idx)
        };
    }
    c[15] == b'A' + (sum % 26) as u8
}

fn val(d: &[u8]) -> u64 {
    d.iter().fold(0, |a, &c| a * 10 + u64::from(c - b'0'))
}

fn leap(y: u32) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

/// Days in `month` (1–12) of `year`; `None` for an unknown year (February then has 29).
fn days_in(month: u32, year: Option<u32>) -> u32 {
    match month {
        2 => {
            if year.is_none_or(leap) {
                29
            } else {
                28
            }
        }
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// German Steuerliche Identifikationsnummer: 11 digits, no leading zero; in the first ten one digit
/// occurs twice or three times (never three in a row) and the others at most once; the last is the
/// ISO 7064 MOD 11,10 check digit.
pub fn de_tax_id(d: &[u8]) -> bool {
    if d.len() != 11 || d[0] == b'0' {
        return false;
    }
    let mut counts = [0u8; 10];
    for &c in &d[..10] {
        counts[usize::from(c - b'0')] += 1;
    }
    let repeated = counts.iter().filter(|&&n| n > 1).count();
    if repeated != 1 || counts.iter().any(|&n| n > 3) {
        return false;
    }
    if d[..10].windows(3).any(|w| w[0] == w[1] && w[1] == w[2]) {
        return false;
    }
    let mut product = 10u32;
    for &c in &d[..10] {
        let mut sum = (u32::from(c - b'0') + product) % 10;
        if sum == 0 {
            sum = 10;
        }
        product = (2 * sum) % 11;
    }
    let check = (11 - product) % 10;
    u32::from(d[10] - b'0') == check
}

/// French NIR: sex (1, 2, or 7, 8 for a provisional number), year, month (01–12, or 20, 30–42,
/// 50–99 when unknown), department (`01`–`99`, `2A`, `2B`), commune and order (not `000`), and the
/// key `97 - (number mod 97)` (Corsica counts as 19 for `2A`, 18 for `2B`).
pub fn fr_nir(c: &[u8]) -> bool {
    if c.len() != 15 || !matches!(c[0], b'1' | b'2' | b'7' | b'8') {
        return false;
    }
    let month = val(&c[3..5]);
    if !((1..=12).contains(&month) || month == 20 || (30..=42).contains(&month) || month >= 50) {
        return false;
    }
    let dept = &c[5..7];
    let corsica = dept[1].is_ascii_alphabetic();
    if dept[0].is_ascii_alphabetic() || (corsica && dept[0] != b'2') || dept == b"00" {
        return false;
    }
    if &c[7..10] == b"000" || &c[10..13] == b"000" {
        return false;
    }
    let mut n = val(&c[..5]) * 100;
    n += match (corsica, dept[1]) {
        (true, b'A') => 19,
        (true, _) => 18,
        _ => val(dept),
    };
    n = n * 1_000_000 + val(&c[7..13]);
    let key = val(&c[13..15]);
    (1..=97).contains(&key) && key == 97 - n % 97
}

/// Spanish DNI control letters, indexed by the number mod 23.
const ES_LETTERS: &[u8; 23] = b"TRWAGMYFPDXBNJZSQVHLCKE";

/// Spanish DNI: eight digits (not all zero) and the letter of their value mod 23.
pub fn es_dni(c: &[u8]) -> bool {
    c.len() == 9 && &c[..8] != b"00000000" && c[8] == ES_LETTERS[(val(&c[..8]) % 23) as usize]
}

/// Spanish NIE: `X`, `Y` or `Z` (read as 0, 1, 2), seven digits, and the DNI letter of the whole.
pub fn es_nie(c: &[u8]) -> bool {
    if c.len() != 9 {
        return false;
    }
    let Some(p) = b"XYZ".iter().position(|&x| x == c[0]) else {
        return false;
    };
    let n = p as u64 * 10_000_000 + val(&c[1..8]);
    c[8] == ES_LETTERS[(n % 23) as usize]
}

/// Dutch BSN: nine digits passing the 11-test (weights 9…2 and -1 for the last), not all zero.
pub fn nl_bsn(d: &[u8]) -> bool {
    if d.len() != 9 || d.iter().all(|&c| c == b'0') {
        return false;
    }
    let mut sum: i64 = 0;
    for (k, &c) in d.iter().enumerate() {
        let w = if k == 8 { -1 } else { 9 - k as i64 };
        sum += w * i64::from(c - b'0');
    }
    sum % 11 == 0
}

/// Polish PESEL: a valid birth date `YYMMDD` (the month carries the century: +80 for the 1800s,
/// +0, +20, +40, +60), then four digits, then the check digit of weights 1-3-7-9.
pub fn pl_pesel(d: &[u8]) -> bool {
    if d.len() != 11 {
        return false;
    }
    let (yy, mm, dd) = (val(&d[0..2]) as u32, val(&d[2..4]) as u32, val(&d[4..6]) as u32);
    let (century, month) = match mm {
        81..=92 => (1800, mm - 80),
        1..=12 => (1900, mm),
        21..=32 => (2000, mm - 20),
        41..=52 => (2100, mm - 40),
        61..=72 => (2200, mm - 60),
        _ => return false,
    };
    if dd == 0 || dd > days_in(month, Some(century + yy)) {
        return false;
    }
    const W: [u32; 10] = [1, 3, 7, 9, 1, 3, 7, 9, 1, 3];
    let sum: u32 = d[..10].iter().zip(W).map(|(&c, w)| u32::from(c - b'0') * w).sum();
    u32::from(d[10] - b'0') == (10 - sum % 10) % 10
}

/// Swedish personnummer or samordningsnummer (day + 60): `YYMMDDNNNC` or with the century
/// (`18`, `19`, `20`) in front, a valid date, and the Luhn digit over the ten digits.
pub fn se_personnummer(d: &[u8]) -> bool {
    let (year, ten) = match d.len() {
        10 => (None, d),
        12 => {
            let c = val(&d[..2]) as u32;
            if !(18..=20).contains(&c) {
                return false;
            }
            (Some(c * 100 + val(&d[2..4]) as u32), &d[2..])
        }
        _ => return false,
    };
    let (mm, mut dd) = (val(&ten[2..4]) as u32, val(&ten[4..6]) as u32);
    if dd > 60 {
        dd -= 60;
    }
    if !(1..=12).contains(&mm) || dd == 0 || dd > days_in(mm, year) {
        return false;
    }
    super::validate::luhn(ten)
}

/// Austrian social security number `NNNC DDMMYY`: a serial from 100, the check digit `C` = the sum
/// of the other nine digits weighted 3, 7, 9, 5, 8, 4, 2, 1, 6, mod 11 (never 10), and a date.
pub fn at_svnr(d: &[u8]) -> bool {
    if d.len() != 10 || d[0] == b'0' {
        return false;
    }
    let (dd, mm) = (val(&d[4..6]) as u32, val(&d[6..8]) as u32);
    if !(1..=12).contains(&mm) || dd == 0 || dd > days_in(mm, None) {
        return false;
    }
    const W: [u32; 10] = [3, 7, 9, 0, 5, 8, 4, 2, 1, 6];
    let sum: u32 = d.iter().zip(W).map(|(&c, w)| u32::from(c - b'0') * w).sum();
    u32::from(d[3] - b'0') == sum % 11
}

/// HETU check characters, indexed by `DDMMYYNNN` mod 31.
const FI_CHECK: &[u8; 31] = b"0123456789ABCDEFHJKLMNPRSTUVWXY";

/// Finnish HETU `DDMMYYCNNNQ`: a real date in the century its sign gives, an individual number
/// 002–999, and the check character of `DDMMYYNNN` mod 31.
pub fn fi_hetu(c: &[u8]) -> bool {
    if c.len() != 11 || !c[..6].iter().chain(&c[7..10]).all(u8::is_ascii_digit) {
        return false;
    }
    let Some(century) = fi_century(c[6]) else {
        return false;
    };
    let (dd, mm, yy) = (val(&c[0..2]) as u32, val(&c[2..4]) as u32, val(&c[4..6]) as u32);
    if !(1..=12).contains(&mm) || dd == 0 || dd > days_in(mm, Some(century + yy)) || val(&c[7..10]) < 2 {
        return false;
    }
    let n = val(&c[..6]) * 1000 + val(&c[7..10]);
    c[10] == FI_CHECK[(n % 31) as usize]
}

/// Belgian national number: `YYMMDD` (month 0–12, or +20/+40 for a bis number; day 0–31), a
/// three-digit serial, and `97 - (first nine digits mod 97)`, with a `2` in front of them for
/// people born from 2000 on.
pub fn be_national_number(d: &[u8]) -> bool {
    if d.len() != 11 {
        return false;
    }
    let (mm, dd) = (val(&d[2..4]), val(&d[4..6]));
    let month = mm % 20;
    if mm > 52 || month > 12 || dd > 31 {
        return false;
    }
    if &d[6..9] == b"000" {
        return false;
    }
    let n = val(&d[..9]);
    let check = val(&d[9..11]);
    check == 97 - n % 97 || check == 97 - (2_000_000_000 + n) % 97
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::scan::tests::{all, check_stream, found};

    macro_rules! t {
        ($name:ident, $text:expr, $want:expr) => {
            #[test]
            fn $name() {
                assert_eq!(found($text), $want, "{:?}", $text);
            }
        };
    }

    // ---- generators: valid numbers with their check digits computed here ----

    fn digits(x: u64, n: usize) -> String {
        format!("{x:0n$}")
    }

    /// A German tax id from ten digits (which must follow the repetition rule).
    pub(crate) fn de_complete(ten: &str) -> String {
        let mut p = 10u32;
        for c in ten.bytes() {
            let mut s = (u32::from(c - b'0') + p) % 10;
            if s == 0 {
                s = 10;
            }
            p = (2 * s) % 11;
        }
        format!("{ten}{}", (11 - p) % 10)
    }

    pub(crate) fn fr_complete(thirteen: &str) -> String {
        let n: u64 = thirteen.replace("2A", "19").replace("2B", "18").parse().unwrap();
        format!("{thirteen}{:02}", 97 - n % 97)
    }

    pub(crate) fn es_dni_complete(n: u64) -> String {
        format!("{}{}", digits(n, 8), ES_LETTERS[(n % 23) as usize] as char)
    }

    pub(crate) fn es_nie_complete(p: usize, n: u64) -> String {
        let letter = ES_LETTERS[((p as u64 * 10_000_000 + n) % 23) as usize] as char;
        format!("{}{}{letter}", ["X", "Y", "Z"][p], digits(n, 7))
    }

    pub(crate) fn it_complete(fifteen: &str) -> String {
        let mut sum = 0u32;
        for (k, b) in fifteen.bytes().enumerate() {
            let idx = if b.is_ascii_digit() { b - b'0' } else { b - b'A' };
            sum += if k % 2 == 0 {
                u32::from(IT_ODD[usize::from(idx)])
            } else {
                u32::from(idx)
            };
        }
        format!("{fifteen}{}", (b'A' + (sum % 26) as u8) as char)
    }

    /// A BSN from eight digits, if a last digit exists that passes the 11-test.
    pub(crate) fn nl_complete(eight: &str) -> Option<String> {
        let s: u32 = eight
            .bytes()
            .enumerate()
            .map(|(k, c)| (9 - k as u32) * u32::from(c - b'0'))
            .sum();
        let last = s % 11;
        (last < 10).then(|| format!("{eight}{last}"))
    }

    pub(crate) fn pl_complete(ten: &str) -> String {
        const W: [u32; 10] = [1, 3, 7, 9, 1, 3, 7, 9, 1, 3];
        let s: u32 = ten.bytes().zip(W).map(|(c, w)| u32::from(c - b'0') * w).sum();
        format!("{ten}{}", (10 - s % 10) % 10)
    }

    pub(crate) fn luhn_complete(nine: &str) -> String {
        (0..10)
            .map(|c| format!("{nine}{c}"))
            .find(|x| crate::scan::validate::luhn(x.as_bytes()))
            .unwrap()
    }

    pub(crate) fn fi_complete(date: &str, sign: char, nnn: u32) -> String {
        let n: u64 = format!("{date}{nnn:03}").parse().unwrap();
        format!("{date}{sign}{nnn:03}{}", FI_CHECK[(n % 31) as usize] as char)
    }

    /// An Austrian number from its serial and date, if its check digit is not 10.
    pub(crate) fn at_complete(serial: u32, date: &str) -> Option<String> {
        let w = [3, 7, 9, 5, 8, 4, 2, 1, 6];
        let digits = format!("{serial:03}{date}");
        let sum: u32 = digits.bytes().zip(w).map(|(c, w)| u32::from(c - b'0') * w).sum();
        (sum % 11 < 10).then(|| format!("{serial:03}{}{date}", sum % 11))
    }

    pub(crate) fn be_complete(nine: &str, y2k: bool) -> String {
        let n: u64 = nine.parse().unwrap();
        let n = if y2k { 2_000_000_000 + n } else { n };
        format!("{nine}{:02}", 97 - n % 97)
    }

    // ---- validators on published and computed numbers ----

    #[test]
    fn published_samples_validate() {
        // the tax office's and registries' own examples and the numbers used in their documentation
        for n in ["86095742719", "47036892816", "65929970489"] {
            assert!(de_tax_id(n.as_bytes()), "{n}");
        }
        assert!(fr_nir(b"255081416802538"));
        assert!(es_dni(b"12345678Z"));
        assert!(es_nie(b"X1234567L"));
        assert!(fiscal_code_valid(b"RSSMRA85T10A562S"));
        for n in ["111222333", "123456782"] {
            assert!(nl_bsn(n.as_bytes()), "{n}");
        }
        for n in ["44051401359", "02070803628"] {
            assert!(pl_pesel(n.as_bytes()), "{n}");
        }
        assert!(se_personnummer(b"1212121212") && se_personnummer(b"191212121212"));
        assert!(be_national_number(b"85073003328"));
        assert!(fi_hetu(b"131052-308T"));
        assert!(at_svnr(b"1237010180"));
    }

    #[test]
    fn a_changed_check_fails() {
        let bump = |s: &str, k: usize| {
            let mut b = s.as_bytes().to_vec();
            b[k] = if b[k] == b'9' { b'0' } else { b[k] + 1 };
            b
        };
        assert!(!de_tax_id(&bump("86095742719", 10)) && !de_tax_id(&bump("86095742719", 3)));
        assert!(!fr_nir(&bump("255081416802538", 14)) && !fr_nir(&bump("255081416802538", 9)));
        assert!(!es_dni(b"12345678A") && !es_nie(b"X1234567T") && !es_nie(b"A1234567L"));
        assert!(!fiscal_code_valid(b"RSSMRA85T10A562T") && !fiscal_code_valid(b"RSSMRA85T10A563S"));
        assert!(!nl_bsn(&bump("123456782", 8)) && !nl_bsn(b"000000000"));
        assert!(!pl_pesel(&bump("44051401359", 10)));
        assert!(!se_personnummer(&bump("1212121212", 9)));
        assert!(!be_national_number(&bump("85073003328", 10)));
        assert!(!fi_hetu(b"131052-308U") && !fi_hetu(b"131052-309T"));
        assert!(!at_svnr(b"1238010180") && !at_svnr(b"1237010181"));
    }

    #[test]
    fn structural_rules() {
        // German: no digit repeated (every digit once), a digit four times, three in a row
        assert!(!de_tax_id(de_complete("1234567890").as_bytes()));
        assert!(!de_tax_id(de_complete("1111234567").as_bytes()));
        assert!(!de_tax_id(de_complete("1112345678").as_bytes()));
        assert!(!de_tax_id(de_complete("0123456788").as_bytes()));
        assert!(de_tax_id(de_complete("1121345678").as_bytes()));
        // French: Corsica, bad sex digit, bad month, commune 000
        assert!(fr_nir(fr_complete("185052A006084").as_bytes()));
        assert!(fr_nir(fr_complete("185052B006084").as_bytes()));
        assert!(!fr_nir(fr_complete("3850578006084").as_bytes()));
        assert!(!fr_nir(fr_complete("1851378006084").as_bytes()));
        assert!(!fr_nir(fr_complete("1850578000084").as_bytes()));
        assert!((0..100).all(|k| !fr_nir(format!("185053A006084{k:02}").as_bytes())));
        // Italian: omocodia from the right only, month letter, day
        let omo = it_complete("RSSMRA85T10A56N");
        assert!(fiscal_code_valid(omo.as_bytes().try_into().unwrap()));
        let omo_wrong_side = it_complete("RSSMRAU5T10A562");
        assert!(!fiscal_code_valid(omo_wrong_side.as_bytes().try_into().unwrap()));
        let bad_month = it_complete("RSSMRA85F10A562");
        assert!(!fiscal_code_valid(bad_month.as_bytes().try_into().unwrap()));
        let bad_day = it_complete("RSSMRA85T35A562");
        assert!(!fiscal_code_valid(bad_day.as_bytes().try_into().unwrap()));
        let woman = it_complete("BNCLRA90A41H501");
        assert!(fiscal_code_valid(woman.as_bytes().try_into().unwrap()));
        // Polish: month/century and day
        assert!(pl_pesel(pl_complete("0022290000").as_bytes()));
        assert!(!pl_pesel(pl_complete("0102290000").as_bytes()));
        assert!(!pl_pesel(pl_complete("0013010000").as_bytes()));
        // Swedish: date and samordningsnummer
        assert!(se_personnummer(luhn_complete("850769123").as_bytes()));
        assert!(!se_personnummer(luhn_complete("851369123").as_bytes()));
        assert!(!se_personnummer(format!("17{}", luhn_complete("850709123")).as_bytes()));
        // Finnish: the century signs, a date that exists in that century only, number 000/001
        assert!(fi_hetu(fi_complete("290200", 'A', 123).as_bytes()));
        assert!(!fi_hetu(fi_complete("290200", '+', 123).as_bytes()));
        assert!(fi_hetu(fi_complete("010190", 'Y', 2).as_bytes()));
        assert!(!fi_hetu(fi_complete("010190", '-', 1).as_bytes()));
        assert!(!fi_hetu(fi_complete("320190", '-', 123).as_bytes()));
        assert!(!fi_hetu(fi_complete("010190", 'G', 123).as_bytes()));
        // Austrian: serial from 100, a date
        assert!(at_svnr(at_complete(123, "010180").unwrap().as_bytes()));
        assert!(!at_svnr(at_complete(123, "320180").unwrap_or_default().as_bytes()));
        assert!(!at_svnr(at_complete(23, "010180").unwrap_or_default().as_bytes()));
        // Belgian: born from 2000 on, bis numbers, bad month
        assert!(be_national_number(be_complete("010203123", true).as_bytes()));
        assert!(be_national_number(be_complete("852203123", false).as_bytes()));
        assert!(!be_national_number(be_complete("851303123", false).as_bytes()));
    }

    // ---- in text ----

    t!(
        natid010,
        "Steuer-ID: 86095742719, IdNr 47 036 892 816.",
        vec![("DE_TAX_ID", "86095742719"), ("DE_TAX_ID", "47 036 892 816")]
    );
    // no name before it: an 11-digit number is just a number
    t!(natid020, "Bestellung 86095742719 vom 3. Mai", vec![]);
    t!(
        natid030,
        "NIR 2 55 08 14 168 025 38 et 255081416802538; corse 1 85 05 2A 006 084 35, 185052B00608462, pas 185052C00608462 ni 185052A00608462",
        vec![
            ("FR_NIR", "2 55 08 14 168 025 38"),
            ("FR_NIR", "255081416802538"),
            ("FR_NIR", "1 85 05 2A 006 084 35"),
            ("FR_NIR", "185052B00608462")
        ]
    );
    t!(
        natid040,
        "DNI 12345678Z, 12345678-Z y 12.345.678-Z; NIE X1234567L, X-1234567-L",
        vec![
            ("ES_DNI", "12345678Z"),
            ("ES_DNI", "12345678-Z"),
            ("ES_DNI", "12.345.678-Z"),
            ("ES_NIE", "X1234567L"),
            ("ES_NIE", "X-1234567-L")
        ]
    );
    t!(
        natid050,
        "12345678A 12345678Zx 112345678Z 20240115T103000Z X1234567T AX1234567L",
        vec![]
    );
    t!(
        natid060,
        "codice fiscale RSSMRA85T10A562S, rssmra85t10a562s. BNCLRA90A41H501X",
        vec![
            ("IT_FISCAL_CODE", "RSSMRA85T10A562S"),
            ("IT_FISCAL_CODE", "rssmra85t10a562s")
        ]
    );
    t!(
        natid070,
        "RSSMRA85T10A562T RSSMRA85T10A562SX XRSSMRA85T10A562S RssMRA85T10A562S",
        vec![]
    );
    t!(
        natid080,
        "BSN 123456782, burgerservicenummer: 1112.22.333",
        vec![("NL_BSN", "123456782"), ("NL_BSN", "1112.22.333")]
    );
    t!(natid090, "order 123456782, ref 111222333", vec![]);
    t!(
        natid100,
        "PESEL: 44051401359 i 02070803628; numer zamówienia w naszym sklepie internetowym: 44051401359",
        vec![("PL_PESEL", "44051401359"), ("PL_PESEL", "02070803628")]
    );
    t!(
        natid110,
        "personnummer 121212-1212, pnr 19121212-1212 och 191212121212",
        vec![
            ("SE_PERSONNUMMER", "121212-1212"),
            ("SE_PERSONNUMMER", "19121212-1212"),
            ("SE_PERSONNUMMER", "191212121212")
        ]
    );
    t!(natid120, "ordernummer 121212-1212", vec![]);
    t!(
        natid130,
        "rijksregisternummer 85.07.30-033.28, numéro national 85073003328",
        vec![
            ("BE_NATIONAL_NUMBER", "85.07.30-033.28"),
            ("BE_NATIONAL_NUMBER", "85073003328")
        ]
    );
    t!(
        natid135,
        "henkilötunnus 131052-308T, 290200A1239; not 131052-308U, 131052-308Tx, 131052G308T",
        vec![("FI_HETU", "131052-308T"), ("FI_HETU", "290200A1239")]
    );
    t!(
        natid137,
        "Rechnung 1237010180; SVNR 1237 010180, Sozialversicherungsnummer: 1237010180",
        vec![("AT_SVNR", "1237 010180"), ("AT_SVNR", "1237010180")]
    );
    // a space in a written form is a blank: one to four spaces or tabs, mixed freely
    t!(
        natid138,
        "Steuer-ID 47  036\t892 816, IdNr 86\t095\t742\t719; NIR 2  55\t08 14 168\t\t025 38; SVNR 1237\t010180, Sozialversicherungsnummer 1237   010180",
        vec![
            ("DE_TAX_ID", "47  036\t892 816"),
            ("DE_TAX_ID", "86\t095\t742\t719"),
            ("FR_NIR", "2  55\t08 14 168\t\t025 38"),
            ("AT_SVNR", "1237\t010180"),
            ("AT_SVNR", "1237   010180")
        ]
    );
    // five blanks or more join nothing (what is left of the tax id is a national phone number)
    t!(
        natid139,
        "Steuer-ID 47      036 892 816; NIR 2 55 08 14 168 \t \t 025 38; SVNR 1237     010180, SVNR 1237\t\t\t\t\t010180",
        vec![("PHONE", "036 892 816")]
    );
    // look-alikes near the names: phones, dates, IBAN digits, invalid checks
    t!(
        natid140,
        "BSN-Hotline 020 123 4567, PESEL 44051401358, Steuer-ID 86095742718, IBAN DE89370400440532013000",
        vec![("PHONE", "020 123 4567"), ("IBAN", "DE89370400440532013000")]
    );
    t!(
        natid150,
        "Personnummer: 2024-01-15, rijksregister 15.03.2024, NIR 12.34.56.78.90",
        vec![]
    );

    #[test]
    fn each_type_alone_streams_like_the_whole() {
        // without the e-mail and IBAN detectors, whose tail holds cover letters anyway
        let texts = [
            "cf RSSMRA85T10A562S e NIE X1234567L, X-1234567-L.",
            "rssmra85t10a562s RSSMRA85T10A562",
            "BSN 1112.22.333 PESEL 44051401359 personnummer 19121212-1212 SVNR 1237 010180",
            "Steuer-ID 86 095 742 719; NIR 1 85 05 2A 006 084 35; 131052-308T; 85.07.30-033.28 rijksregister",
            "Steuer-ID 86\t095  742 \t719; NIR 1\t85   05 2A 006\t084 35; SVNR 1237\t010180; SVNR 1237     010180",
        ];
        for name in crate::scan::builtin_entities().skip(19) {
            let s = crate::scan::Scanner::new(&crate::scan::Rules {
                entities: Some(vec![name.to_string()]),
                ..crate::scan::Rules::default()
            })
            .unwrap();
            for t in texts {
                check_stream(&s, t);
            }
        }
    }

    #[test]
    fn names_are_needed_only_for_the_weak_ones() {
        let s = all();
        let got = |t: &str| {
            s.scan(t)
                .iter()
                .map(|f| s.entity_name(f.entity).to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(got("id 255081416802538"), ["FR_NIR"]);
        assert_eq!(got("id 12345678Z"), ["ES_DNI"]);
        assert!(got("id 123456782 44051401359 86095742719 121212-1212 85073003328").is_empty());
    }

    // ---- any valid number, in any of its forms, around any text, in any chunks ----

    /// The blanks a spaced form may be written with, one per space (mixed in one value).
    fn blanks() -> impl Strategy<Value = Vec<&'static str>> {
        prop::collection::vec(
            prop::sample::select(vec![" ", " ", "  ", "   ", "\t", " \t", "\u{A0}"]),
            6,
        )
    }

    /// `parts` joined by `blanks` in turn.
    fn spaced(parts: &[&str], blanks: &[&str]) -> String {
        let mut v = parts[0].to_string();
        for (p, b) in parts[1..].iter().zip(blanks) {
            v.push_str(b);
            v.push_str(p);
        }
        v
    }

    fn valid() -> impl Strategy<Value = (String, &'static str, &'static str)> {
        let date = (0u32..100, 1u32..13, 1u32..29);
        prop_oneof![
            (1u64..1_000_000_000, 0usize..2, blanks()).prop_filter_map("no rule-abiding id", |(x, form, b)| {
                let ten = format!("{}{:09}", 1 + x % 9, x);
                let ten = &ten[..10];
                let id = de_complete(ten);
                de_tax_id(id.as_bytes()).then(|| {
                    let v = if form == 0 {
                        id
                    } else {
                        spaced(&[&id[..2], &id[2..5], &id[5..8], &id[8..]], &b)
                    };
                    (v, "Steuer-ID ", "DE_TAX_ID")
                })
            }),
            (
                1u8..3,
                date.clone(),
                1u32..98,
                1u32..990,
                1u32..999,
                0usize..2,
                blanks()
            )
                .prop_map(|(sex, (y, m, _), dept, com, ord, form, b)| {
                    // 96 and 97 stand for Corsica's 2A and 2B here
                    let dept = match dept {
                        96 => "2A".to_string(),
                        97 => "2B".to_string(),
                        d => format!("{d:02}"),
                    };
                    let id = fr_complete(&format!("{sex}{y:02}{m:02}{dept}{com:03}{ord:03}"));
                    let v = if form == 0 {
                        id
                    } else {
                        spaced(
                            &[
                                &id[..1],
                                &id[1..3],
                                &id[3..5],
                                &id[5..7],
                                &id[7..10],
                                &id[10..13],
                                &id[13..],
                            ],
                            &b,
                        )
                    };
                    (v, "", "FR_NIR")
                }),
            (1u64..100_000_000).prop_map(|n| (es_dni_complete(n), "", "ES_DNI")),
            (0usize..3, 0u64..10_000_000).prop_map(|(p, n)| (es_nie_complete(p, n), "", "ES_NIE")),
            ("[A-Z]{6}", date.clone(), "[A-Z][0-9]{3}").prop_map(|(name, (y, m, d), place)| {
                let v = it_complete(&format!(
                    "{name}{y:02}{}{d:02}{place}",
                    IT_MONTHS[m as usize - 1] as char
                ));
                (v, "", "IT_FISCAL_CODE")
            }),
            (1u64..100_000_000).prop_filter_map("no check digit", |n| {
                nl_complete(&digits(n, 8)).map(|v| (v, "BSN ", "NL_BSN"))
            }),
            (date.clone(), 0u64..10_000).prop_map(|((y, m, d), r)| {
                (pl_complete(&format!("{y:02}{m:02}{d:02}{r:04}")), "PESEL ", "PL_PESEL")
            }),
            (date.clone(), 0u64..1000, any::<bool>()).prop_map(|((y, m, d), r, century)| {
                let id = luhn_complete(&format!("{y:02}{m:02}{d:02}{r:03}"));
                let v = if century {
                    format!("19{}-{}", &id[..6], &id[6..])
                } else {
                    format!("{}-{}", &id[..6], &id[6..])
                };
                (v, "personnummer ", "SE_PERSONNUMMER")
            }),
            (date.clone(), 1u64..998, any::<bool>()).prop_map(|((y, m, d), r, y2k)| {
                let id = be_complete(&format!("{y:02}{m:02}{d:02}{r:03}"), y2k);
                let v = format!("{}.{}.{}-{}.{}", &id[..2], &id[2..4], &id[4..6], &id[6..9], &id[9..]);
                (v, "rijksregisternummer ", "BE_NATIONAL_NUMBER")
            }),
            (date.clone(), 100u32..1000, any::<bool>(), blanks()).prop_filter_map(
                "check digit 10",
                |((y, m, d), serial, with_blank, b)| {
                    at_complete(serial, &format!("{d:02}{m:02}{y:02}")).map(|id| {
                        let v = if with_blank {
                            spaced(&[&id[..4], &id[4..]], &b)
                        } else {
                            id
                        };
                        (v, "SVNR ", "AT_SVNR")
                    })
                }
            ),
            (date, prop::sample::select(b"+-UVWXYABCDEF".to_vec()), 2u32..1000).prop_map(|((y, m, d), sign, n)| {
                (
                    fi_complete(&format!("{d:02}{m:02}{y:02}"), sign as char, n),
                    "",
                    "FI_HETU",
                )
            }),
        ]
    }

    const BEFORE: &[&str] = &["", "x ", "(", "Kunde: ", "\n", "«"];
    const AFTER: &[&str] = &["", ".", ", ok", ")", "\n", " and more", "»"];

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
            ..ProptestConfig::default()
        })]

        /// Every valid id is found with exactly its span, whole and streamed cut at every point.
        #[test]
        fn prop_valid_ids_are_found((value, name, entity) in valid(), before in 0..BEFORE.len(), after in 0..AFTER.len()) {
            let s = all();
            let text = format!("{}{name}{value}{}", BEFORE[before], AFTER[after]);
            let got: Vec<(&str, &str)> = s
                .scan(&text)
                .iter()
                .map(|f| (s.entity_name(f.entity), &text[f.start..f.end]))
                .collect();
            prop_assert_eq!(got, vec![(entity, value.as_str())], "{:?}", text);
            check_stream(s, &text);
        }

        /// A random digit run of an id's length without the id's name is not a weak id, and a
        /// changed check character is never an id.
        #[test]
        fn prop_random_digits_are_not_weak_ids(n in "[0-9]{9,12}", sep in prop::sample::select(vec!["", " ", ": "])) {
            let s = all();
            let text = format!("ref{sep}{n} x");
            for f in s.scan(&text) {
                let e = s.entity_name(f.entity);
                prop_assert!(!matches!(e, "DE_TAX_ID" | "NL_BSN" | "PL_PESEL" | "SE_PERSONNUMMER" | "BE_NATIONAL_NUMBER" | "AT_SVNR"), "{:?} {}", text, e);
            }
        }
    }
}
