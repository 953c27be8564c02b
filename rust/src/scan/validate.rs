//! Checksums and number-plan rules that turn a shape match into a finding.
//!
//! Every function here is pure and total: it takes ASCII bytes the detector already shaped
//! (digits only, or `[A-Z0-9]` for an IBAN) and answers yes or no without allocating, so the
//! detectors can call them on every candidate.

/// Luhn (mod 10) check over ASCII digits; `false` for an empty input or a non-digit.
pub fn luhn(digits: &[u8]) -> bool {
    if digits.is_empty() {
        return false;
    }
    let mut sum = 0u32;
    for (i, &c) in digits.iter().rev().enumerate() {
        if !c.is_ascii_digit() {
            return false;
        }
        let mut d = u32::from(c - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum.is_multiple_of(10)
}

fn prefix_num(digits: &[u8], n: usize) -> u32 {
    digits[..n].iter().fold(0, |acc, &c| acc * 10 + u32::from(c - b'0'))
}

/// Whether `digits` (13–19 ASCII digits) has a known issuer prefix for its length and passes Luhn.
///
/// Visa, Mastercard (51–55, 2221–2720), American Express, Discover, Diners Club, JCB, UnionPay,
/// Maestro and Mir. Any other prefix is rejected, so a 16-digit order number that happens to pass
/// Luhn (one in ten do) is not a card unless it also starts like one.
pub fn card_number(digits: &[u8]) -> bool {
    let len = digits.len();
    if !(12..=19).contains(&len) || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let p1 = prefix_num(digits, 1);
    let p2 = prefix_num(digits, 2);
    let p3 = prefix_num(digits, 3);
    let p4 = prefix_num(digits, 4);
    let p6 = prefix_num(digits, 6);
    let brand_len_ok = match () {
        _ if p1 == 4 => matches!(len, 13 | 16 | 19),
        _ if (51..=55).contains(&p2) || (2221..=2720).contains(&p4) => len == 16,
        _ if p2 == 34 || p2 == 37 => len == 15,
        _ if (2200..=2204).contains(&p4) => (16..=19).contains(&len),
        _ if p4 == 6011 || (644..=649).contains(&p3) || p2 == 65 || (622126..=622925).contains(&p6) => {
            (16..=19).contains(&len)
        }
        _ if (3528..=3589).contains(&p4) => (16..=19).contains(&len),
        _ if (300..=305).contains(&p3) || p4 == 3095 || p2 == 36 || p2 == 38 || p2 == 39 => (14..=19).contains(&len),
        _ if p2 == 62 => (16..=19).contains(&len),
        _ if matches!(p4, 5018 | 5020 | 5038 | 5893 | 6304 | 6759 | 6761 | 6762 | 6763) => (13..=19).contains(&len),
        _ => false,
    };
    brand_len_ok && luhn(digits)
}

/// Whether `area`-`group`-`serial` is an SSN the SSA could have issued.
///
/// Rejects area 000, 666 and 900–999 (ITINs and never-issued), group 00, serial 0000, numbers made
/// of one repeated digit, and the well-known specimens (078-05-1120, 219-09-9999, 123-45-6789).
pub fn ssn(area: u32, group: u32, serial: u32) -> bool {
    if area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0 || area > 999 || group > 99 {
        return false;
    }
    let all = area * 1_000_000 + group * 10_000 + serial;
    let repeated = (0..10).any(|d| all == d * 111_111_111);
    !(repeated || matches!(all, 78_051_120 | 219_099_999 | 123_456_789))
}

/// IBAN length by country code (ISO 13616 registry).
const IBAN_LENGTHS: &[(&[u8; 2], u8)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BI", 27),
    (b"BR", 29),
    (b"BY", 28),
    (b"CH", 21),
    (b"CR", 22),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DJ", 27),
    (b"DK", 18),
    (b"DO", 28),
    (b"EE", 20),
    (b"EG", 29),
    (b"ES", 24),
    (b"FI", 18),
    (b"FK", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"GT", 28),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IQ", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LC", 32),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"LY", 25),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MN", 20),
    (b"MR", 27),
    (b"MT", 31),
    (b"MU", 30),
    (b"NI", 28),
    (b"NL", 18),
    (b"NO", 15),
    (b"OM", 23),
    (b"PK", 24),
    (b"PL", 28),
    (b"PS", 29),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"RU", 33),
    (b"SA", 24),
    (b"SC", 31),
    (b"SD", 18),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"SO", 23),
    (b"ST", 25),
    (b"SV", 28),
    (b"TL", 23),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
    (b"VG", 24),
    (b"XK", 20),
    (b"YE", 30),
];

/// The IBAN length for a two-letter (uppercase) country code, if the country uses IBANs.
pub fn iban_length(country: [u8; 2]) -> Option<usize> {
    IBAN_LENGTHS
        .iter()
        .find(|(cc, _)| **cc == country)
        .map(|(_, n)| usize::from(*n))
}

/// Whether `iban` (uppercase `[A-Z0-9]`, no spaces) has its country's length and passes mod-97.
pub fn iban(iban: &[u8]) -> bool {
    if iban.len() < 15 || !iban[..2].iter().all(u8::is_ascii_uppercase) || !iban[2..4].iter().all(u8::is_ascii_digit) {
        return false;
    }
    if iban_length([iban[0], iban[1]]) != Some(iban.len()) {
        return false;
    }
    // Move the first four characters to the end, read letters as 10..35, and reduce mod 97.
    let mut rem = 0u32;
    for &c in iban[4..].iter().chain(&iban[..4]) {
        rem = match c {
            b'0'..=b'9' => (rem * 10 + u32::from(c - b'0')) % 97,
            b'A'..=b'Z' => (rem * 100 + u32::from(c - b'A') + 10) % 97,
            _ => return false,
        };
    }
    rem == 1
}

/// Whether the NANP area code (3 ASCII digits) can be a US/Canada area code: `[2-9]\d\d`, not N11.
pub fn nanp_area(d: &[u8]) -> bool {
    d.len() == 3 && (b'2'..=b'9').contains(&d[0]) && !(d[1] == b'1' && d[2] == b'1')
}

/// Whether the NANP exchange code (3 ASCII digits) is `[2-9]\d\d`.
pub fn nanp_exchange(d: &[u8]) -> bool {
    d.len() == 3 && (b'2'..=b'9').contains(&d[0])
}

/// `c * log2(c)` for the counts a secret body can have, so entropy costs one `log2` per call.
fn clog2c(table: &[f64; 257], c: u32) -> f64 {
    match table.get(c as usize) {
        Some(&x) => x,
        None => f64::from(c) * f64::from(c).log2(),
    }
}

fn clog2c_table() -> &'static [f64; 257] {
    static TABLE: std::sync::OnceLock<[f64; 257]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| std::array::from_fn(|i| if i == 0 { 0.0 } else { i as f64 * (i as f64).log2() }))
}

/// Byte counts of a string, and which bytes occur (a bitmap, so only those are visited again).
struct Histogram {
    counts: [u32; 256],
    seen: [u64; 4],
    distinct: usize,
    len: usize,
}

impl Histogram {
    fn new(s: &[u8]) -> Histogram {
        let mut h = Histogram {
            counts: [0; 256],
            seen: [0; 4],
            distinct: 0,
            len: s.len(),
        };
        for &b in s {
            let c = &mut h.counts[usize::from(b)];
            if *c == 0 {
                h.distinct += 1;
                h.seen[usize::from(b >> 6)] |= 1 << (b & 63);
            }
            *c += 1;
        }
        h
    }

    /// Shannon entropy in bits per byte. The terms are summed in byte order, skipping absent bytes.
    fn entropy(&self) -> f64 {
        if self.len == 0 {
            return 0.0;
        }
        let table = clog2c_table();
        let n = self.len as f64;
        // H = log2(n) - (1/n) * sum(c * log2(c))
        let sum: f64 = self
            .seen
            .iter()
            .enumerate()
            .flat_map(|(w, &bits)| {
                let mut m = bits;
                std::iter::from_fn(move || {
                    (m != 0).then(|| {
                        let k = m.trailing_zeros() as usize;
                        m &= m - 1;
                        w * 64 + k
                    })
                })
            })
            .map(|b| clog2c(table, self.counts[b]))
            .sum();
        (n.log2() - sum / n).max(0.0)
    }
}

/// Shannon entropy of `s` in bits per byte.
#[cfg(test)]
pub fn entropy(s: &[u8]) -> f64 {
    Histogram::new(s).entropy()
}

/// Whether `body` looks like a real random secret rather than a placeholder (`XXXX…`, `0000…`,
/// `abcabc…`): at least `min_distinct` different bytes and `min_entropy` bits per byte.
pub fn random_enough(body: &[u8], min_distinct: usize, min_entropy: f64) -> bool {
    let h = Histogram::new(body);
    h.distinct >= min_distinct && h.entropy() >= min_entropy
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! t {
        ($name:ident, $f:expr, $input:expr, $want:expr) => {
            #[test]
            fn $name() {
                assert_eq!($f($input), $want, "{:?}", $input);
            }
        };
    }

    t!(luhn010, luhn, b"4111111111111111", true);
    t!(luhn020, luhn, b"4111111111111112", false);
    t!(luhn030, luhn, b"79927398713", true);
    t!(luhn040, luhn, b"", false);
    t!(luhn050, luhn, b"41a1", false);
    t!(card010, card_number, b"4111111111111111", true);
    t!(card020, card_number, b"5555555555554444", true);
    t!(card030, card_number, b"2223003122003222", true);
    t!(card040, card_number, b"378282246310005", true);
    t!(card050, card_number, b"6011111111111117", true);
    t!(card060, card_number, b"3530111333300000", true);
    t!(card070, card_number, b"30569309025904", true);
    t!(card080, card_number, b"6200000000000005", true);
    t!(card090, card_number, b"4222222222222", true);
    t!(card100, card_number, b"4111111111111112", false); // Luhn fails
    t!(card110, card_number, b"1234567812345670", false); // passes Luhn, no issuer starts with 1
    t!(card120, card_number, b"9111111111111111", false);
    t!(card130, card_number, b"41111111111111111", false); // Visa is 13, 16 or 19 digits
    t!(card140, card_number, b"37828224631000", false); // Amex is 15
    t!(iban010, iban, b"DE89370400440532013000", true);
    t!(iban020, iban, b"GB82WEST12345698765432", true);
    t!(iban030, iban, b"FR1420041010050500013M02606", true);
    t!(iban040, iban, b"NL91ABNA0417164300", true);
    t!(iban050, iban, b"DE89370400440532013001", false); // mod-97 fails
    t!(iban060, iban, b"DE8937040044053201300", false); // one short for DE
    t!(iban070, iban, b"XX89370400440532013000", false); // no such country
    t!(iban080, iban, b"de89370400440532013000", false); // callers uppercase first
    t!(nanp010, nanp_area, b"415", true);
    t!(nanp020, nanp_area, b"123", false);
    t!(nanp030, nanp_area, b"911", false);
    t!(nanp040, nanp_exchange, b"055", false);

    macro_rules! ssn_t {
        ($name:ident, $a:expr, $g:expr, $s:expr, $want:expr) => {
            #[test]
            fn $name() {
                assert_eq!(ssn($a, $g, $s), $want);
            }
        };
    }
    ssn_t!(ssn010, 536, 22, 1234, true);
    ssn_t!(ssn020, 0, 22, 1234, false);
    ssn_t!(ssn030, 666, 22, 1234, false);
    ssn_t!(ssn040, 912, 22, 1234, false);
    ssn_t!(ssn050, 536, 0, 1234, false);
    ssn_t!(ssn060, 536, 22, 0, false);
    ssn_t!(ssn070, 111, 11, 1111, false);
    ssn_t!(ssn080, 78, 5, 1120, false);
    ssn_t!(ssn090, 123, 45, 6789, false);
    ssn_t!(ssn100, 899, 99, 9999, true);

    #[test]
    fn entropy_is_the_byte_order_sum() {
        // the histogram visits only the bytes present, in byte order: the same float sum as the
        // textbook loop over all 256 counts, bit for bit (thresholds stay where they were)
        let mut x: u64 = 1;
        for len in 0..300usize {
            let s: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (x >> (56 - (len % 7) as u32)) as u8
                })
                .collect();
            let mut counts = [0u32; 256];
            s.iter().for_each(|&b| counts[usize::from(b)] += 1);
            let n = s.len() as f64;
            let sum: f64 = counts
                .iter()
                .filter(|&&c| c > 0)
                .map(|&c| f64::from(c) * f64::from(c).log2())
                .sum();
            let want = if s.is_empty() {
                0.0
            } else {
                (n.log2() - sum / n).max(0.0)
            };
            assert_eq!(entropy(&s).to_bits(), want.to_bits(), "{s:?}");
        }
    }

    #[test]
    fn entropy_bounds() {
        assert_eq!(entropy(b""), 0.0);
        assert_eq!(entropy(b"aaaa"), 0.0);
        assert!((entropy(b"abcd") - 2.0).abs() < 1e-9);
        assert!(!random_enough(b"XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", 8, 3.0));
        assert!(random_enough(b"x7Gq2LmP9vRt4KsW1nBz8cYd3HfJ6aUe0oIi", 8, 3.0));
    }

    #[test]
    fn iban_table_is_sorted_and_sane() {
        for w in IBAN_LENGTHS.windows(2) {
            assert!(w[0].0 < w[1].0);
        }
        assert!(IBAN_LENGTHS.iter().all(|(_, n)| (15..=34).contains(n)));
    }
}
