//! Cross-module tests: stream invariance at every cut, hold-back bounds, robustness on hostile
//! input, and the `found` helper the per-file detector tables use (it checks stream invariance on
//! every table row as well).

use std::sync::OnceLock;

use proptest::prelude::*;

use super::*;
use normalize::MAX_REMOVED_RUN;

pub(crate) fn all() -> &'static Scanner {
    static S: OnceLock<Scanner> = OnceLock::new();
    S.get_or_init(|| Scanner::new(&Rules::default()).unwrap())
}

/// Every built-in, the opt-in `PERSON` and `ADDRESS` included.
pub(crate) fn everything() -> &'static Scanner {
    static S: OnceLock<Scanner> = OnceLock::new();
    S.get_or_init(|| {
        Scanner::new(&Rules {
            entities: Some(builtin_entities().map(str::to_string).collect()),
            ..Rules::default()
        })
        .unwrap()
    })
}

/// Every built-in with thresholds that put some findings of most kinds below them: `PERSON` and
/// `ADDRESS` in the middle of their grades, whole types (an open PEM block, a JWT, e-mail) above
/// their confidence.
pub(crate) fn thresholds() -> &'static Scanner {
    static S: OnceLock<Scanner> = OnceLock::new();
    S.get_or_init(|| {
        Scanner::new(&Rules {
            entities: Some(builtin_entities().map(str::to_string).collect()),
            min_confidence: [
                ("PERSON", 80),
                ("ADDRESS", 85),
                ("EMAIL", 91),
                ("PRIVATE_KEY", 100),
                ("JWT", 100),
                ("NL_BSN", 81),
                ("US_SSN", 80),
            ]
            .iter()
            .map(|(n, c)| ((*n).to_string(), *c))
            .collect(),
            ..Rules::default()
        })
        .unwrap()
    })
}

fn with_custom() -> &'static Scanner {
    static S: OnceLock<Scanner> = OnceLock::new();
    S.get_or_init(|| {
        Scanner::new(&Rules {
            entities: None,
            custom_patterns: vec![
                ("EMPLOYEE_ID".into(), r"\bEMP-\d{4,8}\b".into()),
                ("TICKET".into(), r"(?i)tkt[0-9]{2,3}".into()),
            ],
            keywords: vec![(
                "PROJECT".into(),
                vec!["Bluebird".into(), "blue bird".into(), "C++".into()],
            )],
            min_confidence: vec![("EMPLOYEE_ID".into(), 0)],
            allow: Vec::new(),
        })
        .unwrap()
    })
}

const TPL: &str = "<{entity}>";

/// Findings of the all-built-ins scanner as `(entity, original slice)`, after checking that the
/// stream gives the same result for every way of cutting `text` in two, and byte by byte.
pub(crate) fn found(text: &str) -> Vec<(&'static str, &str)> {
    let s = all();
    check_stream(s, text);
    s.scan(text)
        .into_iter()
        .map(|f| (Builtin::ALL[usize::from(f.entity)].name(), &text[f.start..f.end]))
        .collect()
}

/// Marks a finding below its threshold in the lists [`whole`] and [`run_stream`] compare.
const QUIET: EntityId = 0x8000;

/// The redacted text and the findings: those acted on, and those below their threshold with
/// [`QUIET`] added to their entity (in order of start).
fn whole(s: &Scanner, text: &str) -> (String, Vec<(EntityId, u64, u64)>) {
    let (out, _) = s.redact(text, TPL);
    let mut f = s.scan_scored(text);
    char_offsets(text, &mut f);
    let f = f
        .iter()
        .map(|f| {
            let quiet = if s.acts_on(f.entity, f.confidence) { 0 } else { QUIET };
            (f.entity | quiet, f.start as u64, f.end as u64)
        })
        .collect();
    (out, f)
}

fn stream_findings(st: &mut StreamScanner, f: &[StreamFinding]) -> Vec<(EntityId, u64, u64)> {
    let mut all: Vec<(EntityId, u64, u64)> = f.iter().map(|f| (f.entity, f.start, f.end)).collect();
    all.extend(st.take_quiet().iter().map(|f| (f.entity | QUIET, f.start, f.end)));
    all.sort_unstable_by_key(|f| f.1);
    all
}

fn run_stream<'a>(s: &Scanner, pieces: impl IntoIterator<Item = &'a [u8]>) -> (String, Vec<(EntityId, u64, u64)>) {
    let mut st = s.stream(TPL);
    let (mut out, mut f) = (String::new(), Vec::new());
    for p in pieces {
        st.feed_bytes(p, &mut out, &mut f).unwrap();
        assert!(
            st.held_chars() <= s.max_holdback() + 4,
            "held {} > {}",
            st.held_chars(),
            s.max_holdback()
        );
    }
    st.finish(&mut out, &mut f);
    let f = stream_findings(&mut st, &f);
    (out, f)
}

pub(crate) fn check_stream(s: &Scanner, text: &str) {
    let want = whole(s, text);
    let b = text.as_bytes();
    assert_eq!(run_stream(s, b.chunks(1)), want, "byte by byte: {text:?}");
    let step = if b.len() <= 400 { 1 } else { b.len() / 200 + 1 };
    for cut in (0..=b.len()).step_by(step) {
        assert_eq!(run_stream(s, [&b[..cut], &b[cut..]]), want, "cut at {cut}: {text:?}");
    }
    // whole characters through `feed`, one at a time
    let mut st = s.stream(TPL);
    let (mut out, mut f) = (String::new(), Vec::new());
    for (i, c) in text.char_indices() {
        st.feed(&text[i..i + c.len_utf8()], &mut out, &mut f).unwrap();
    }
    st.finish(&mut out, &mut f);
    let f = stream_findings(&mut st, &f);
    assert_eq!((out, f), want, "by char: {text:?}");
}

const SAMPLES: &[&str] = &[
    "Hi, I'm Ana (ana.lopez@example.org, +34 612 34 56 78). SSN 536-22-1234, card 4111 1111 1111 1111.",
    "export AWS_ACCESS_KEY_ID=AKIAQ3EGUTDY5WXRMZ7N\nexport AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYzq9vLp4Tks\n",
    "{\"ip\": \"2001:db8::8a2e:370:7334\", \"v4\": \"10.12.0.7\", \"iban\": \"DE89 3704 0044 0532 0130 00\"}",
    "token=ghp_R8fZp2Lq9VxW3mKt7YcN1bHd6JsQ0aUe4Gio; slack xoxb-2837461928-3847561029384-Zq8Lr2VbX9mKp4Tn7WcY1dHf",
    "メールはa@b.comです。電話 03-1234-5678",
    "４１１１ １１１１ １１１１ １１１１ and a\u{200B}l\u{200B}i\u{200B}c\u{200B}e@example.com",
    "EMP-123456 tkt42 Bluebird blue bird C++ bluebirds EMP-12",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "sk-ant-api03-Zq8Lr2VbX9mKp4Tn7WcY1dHf6JsQ0aUe3GioRt5PxMzBvC2kNw8LyDjE4hFgSuA-_xQ7rT1mZ9pK3vW6nB0cY5dLfHgAA",
    "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49\n-----END EC PRIVATE KEY-----\n",
    "call (415) 555-0132 or 020 7946 0958; not 05.10.1986 or 1.3.6.1.4.1",
    "SSN 536\u{2013}22\u{2013}1234, 5 3 6 - 2 2 - 1 2 3 4, 536.22.1234; card 4111.1111.1111.1111, 4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1.",
    "5\u{A0}3\u{A0}6 \u{2014} 2\u{A0}2 \u{2014} 1\u{A0}2\u{A0}3\u{A0}4 | Tel. 030/12345678 | DE89-3704-0044-0532-0130-00 | 123.45.6789 10.0.19045.3693",
    "",
    "a",
    "@@@ ::: 1.2.3 +( sk- AK gh eyJ -----BEGIN",
    "Customer Maria Schmidt, Hauptstraße 12, 10115 Berlin. Mr. O'Brien lives at 221B Baker Street, London.",
    "M. Dupont, 12, rue de la Paix\n75002 Paris; ul. Długa 5\n00-950 Warszawa; Grace Thompson; In May Microsoft",
    "1600 Pennsylvania Ave NW\nWashington, DC 20500-0003 — Sra. Lucía Fernández, Calle Mayor 5, Madrid, 28013",
    "Mr Albert Smith and Dr Watson; Ms Word, MS Teams, Dr Martens; on Ocean Dr Miami Beach, Fr Brown.",
];

#[test]
fn samples_stream_like_whole() {
    for s in [all(), with_custom(), everything()] {
        for t in SAMPLES {
            check_stream(s, t);
        }
    }
}

#[test]
fn custom_rules() {
    let s = with_custom();
    let text = "EMP-123456 tkt42 Bluebird blue bird C++ bluebirds EMP-12";
    let got: Vec<(&str, &str)> = s
        .scan(text)
        .iter()
        .map(|f| (s.entity_name(f.entity), &text[f.start..f.end]))
        .collect();
    assert_eq!(
        got,
        vec![
            ("EMPLOYEE_ID", "EMP-123456"),
            ("TICKET", "tkt42"),
            ("PROJECT", "Bluebird"),
            ("PROJECT", "blue bird"),
            ("PROJECT", "C++")
        ]
    );
}

#[test]
fn bad_rules_fail_at_build() {
    let bad = |r: Rules| Scanner::new(&r).err().map(|e| e.to_string());
    let pat = |p: &str| Rules {
        custom_patterns: vec![("X".into(), p.into())],
        ..Rules::default()
    };
    assert!(bad(Rules {
        entities: Some(vec!["EMAL".into()]),
        ..Rules::default()
    })
    .unwrap()
    .contains("unknown entity"));
    assert!(bad(pat("(")).unwrap().contains("invalid regex"));
    assert!(bad(pat("a?")).unwrap().contains("empty"));
    assert!(bad(pat(r"\d+")).unwrap().contains("bounded"));
    assert!(bad(pat(r"\w{1,2000}")).unwrap().contains("bounded"));
    assert!(bad(Rules {
        custom_patterns: vec![("lower".into(), "x".into())],
        ..Rules::default()
    })
    .is_some());
    assert!(bad(Rules {
        keywords: vec![("K".into(), vec![])],
        ..Rules::default()
    })
    .unwrap()
    .contains("empty"));
    assert!(bad(Rules {
        keywords: vec![("K".into(), vec!["  ".into()])],
        ..Rules::default()
    })
    .is_some());
    assert!(bad(Rules {
        keywords: vec![("K".into(), vec!["x".repeat(300)])],
        ..Rules::default()
    })
    .is_some());
    let ok = Scanner::new(&Rules {
        entities: Some(vec!["EMAIL".into(), "EMAIL".into()]),
        ..Rules::default()
    })
    .unwrap();
    assert_eq!(ok.entities().collect::<Vec<_>>(), ["EMAIL"]);
    assert_eq!(
        ok.scan("4111 1111 1111 1111 a@b.co"),
        vec![Finding {
            entity: 0,
            start: 20,
            end: 26,
            confidence: 90
        }]
    );
}

#[test]
fn char_offsets_count_astral_chars() {
    let text = "😀é a@b.co 𝟏";
    let mut f = all().scan(text);
    char_offsets(text, &mut f);
    assert_eq!(
        f,
        vec![Finding {
            entity: 0,
            start: 3,
            end: 9,
            confidence: 90
        }]
    );
}

#[test]
fn finished_stream_refuses_input() {
    let mut st = all().stream(TPL);
    let (mut out, mut f) = (String::new(), Vec::new());
    st.finish(&mut out, &mut f);
    st.finish(&mut out, &mut f);
    assert!(st.feed("x", &mut out, &mut f).is_err());
}

#[test]
fn clean_stream_is_delayed_at_most_one_token() {
    let s = all();
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(50);
    let mut st = s.stream(TPL);
    let (mut out, mut f) = (String::new(), Vec::new());
    for (i, c) in text.char_indices() {
        st.feed(&text[i..i + c.len_utf8()], &mut out, &mut f).unwrap();
        // only the current word (at most 64 characters) is held
        assert!(st.held_chars() <= 8, "{}", st.held_chars());
    }
    st.finish(&mut out, &mut f);
    assert_eq!(out, text);
}

fn pem(lines: usize, footer: bool) -> String {
    let mut s = String::from("-----BEGIN RSA PRIVATE KEY-----\n");
    for i in 0..lines {
        s.push_str(&format!("MIIEowIBAAKCAQEAz{:047}\n", i * 7919));
    }
    if footer {
        s.push_str("-----END RSA PRIVATE KEY-----\n");
    }
    s
}

#[test]
fn long_pem_blocks_across_many_chunks() {
    let s = all();
    for (lines, footer) in [(60, true), (60, false), (300, true), (300, false)] {
        let text = format!("here:\n{}thanks. bye", pem(lines, footer));
        let want = whole(s, &text);
        assert_eq!(want.1.len(), 1, "{lines} {footer}");
        for size in [1, 7, 64, 1000] {
            assert_eq!(
                run_stream(s, text.as_bytes().chunks(size)),
                want,
                "{lines} {footer} {size}"
            );
        }
        // the key body never leaks, whatever the chunking
        let (out, _) = run_stream(s, text.as_bytes().chunks(3));
        assert!(!out.contains("MIIEow"), "{out}");
    }
}

#[test]
fn holdback_is_bounded_under_adversarial_input() {
    let s = everything();
    let cases = [
        "Maria ".repeat(5000),
        "Calle de la ".repeat(3000),
        "12, rue ".repeat(3000),
        "Mr. Al-".repeat(3000),
        format!("Hauptstra{}", "ß".repeat(10000)),
        format!("-----BEGIN RSA PRIVATE KEY-----\n{}", "QUJD".repeat(5000)),
        format!("eyJhbGciOiJIUzI1NiJ9.eyJ{}", "a".repeat(20000)),
        format!("ghp_{}", "\u{200B}".repeat(20000)),
        format!("a{}@", "\u{200B}b".repeat(5000)),
        "9".repeat(20000),
        "a".repeat(20000),
        "+(".repeat(5000),
    ];
    for text in &cases {
        let want = whole(s, text);
        assert_eq!(run_stream(s, text.as_bytes().chunks(1)), want);
        assert_eq!(run_stream(s, text.as_bytes().chunks(333)), want);
    }
}

#[test]
fn hostile_inputs_are_linear() {
    let patterns = [
        "-----BEGIN RSA PRIVATE KEY-----",
        "a@",
        "@a.",
        ":",
        "1:",
        "1.",
        "+1 ",
        "0 ",
        "eyJ",
        "eyJaaaaaaaaaaaa.",
        "sk-",
        "AKIA",
        "4111 ",
        "4 1 1 1 - ",
        "5 3 6 - 2 2 - ",
        "1  ",
        "1.1.",
        "DE89",
        "\u{200B}",
        "ａ",
    ];
    linear(all(), &patterns);
}

#[test]
fn hostile_name_and_address_inputs_are_linear() {
    // every start reads at most `names::MAX_SPAN` bytes: dense word starts cost a constant each
    let patterns = [
        "Maria ",
        "A ",
        "Mr. A ",
        "my name is A ",
        "Calle de la ",
        "12, rue de ",
        "1 A ",
        "Hauptstraße 1 ",
        "A-",
        "Hauptstra\u{DF}e",
        "É ",
        "ul. A 1/1 ",
        "1 Main Street Apt. 1, A, NY 10001-",
    ];
    linear(everything(), &patterns);
}

#[test]
fn hostile_encoded_inputs_are_linear() {
    let patterns = [
        "&#",
        "&#x40;",
        "&commat;a",
        "%4",
        "%40a",
        "\\u00",
        "\\ud83d",
        "\\/",
        "1\n",
        "1\r\n",
        "1111 1111 1111 1111 1111 1111 1111 1111 1111\n",
        "Please charge the card on file, number 4111\n",
    ];
    linear(all(), &patterns);
}

/// Each pattern repeated to 128 KiB and to 512 KiB: the larger scan may take at most 8 times the
/// smaller one's time (linear work takes about 4 times; a quadratic path 16 times), each the
/// fastest of two runs, so the check does not depend on how fast or how busy the machine is.
fn linear(s: &Scanner, patterns: &[&str]) {
    // The fastest of several runs, and up to three tries: on a busy machine one run can lose its
    // core for longer than the whole scan takes; a quadratic scan fails every try.
    let fastest = |text: &str| {
        (0..4)
            .map(|_| {
                let t0 = std::time::Instant::now();
                let _ = s.scan(text);
                t0.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };
    for p in patterns {
        let (small_text, large_text) = (p.repeat((1 << 17) / p.len()), p.repeat((1 << 19) / p.len()));
        let mut tries = Vec::new();
        let linear = (0..3).any(|_| {
            let (small, large) = (fastest(&small_text), fastest(&large_text));
            tries.push((small, large));
            large < 8.0 * small + 0.02
        });
        assert!(linear, "{p:?}: (s for 128 KiB, s for 512 KiB) per try: {tries:?}");
    }
}

#[test]
fn large_non_ascii_text_goes_through_the_stream_path() {
    // the map covers 1 GiB; check the stream path gives the same answer on a small text
    let s = all();
    let text = "é a@b.co 😀 4111 1111 1111 1111".repeat(100);
    let direct = s.scan(&text);
    let mut st = s.stream("");
    let (mut out, mut f) = (String::new(), Vec::new());
    st.feed(&text, &mut out, &mut f).unwrap();
    st.finish(&mut out, &mut f);
    let via: Vec<Finding> = f
        .iter()
        .map(|f| Finding {
            entity: f.entity,
            start: f.start_byte as usize,
            end: f.end_byte as usize,
            confidence: f.confidence,
        })
        .collect();
    assert_eq!(direct, via);
}

fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("alice@example.com".to_string()),
        Just("536-22-1234".to_string()),
        Just("4111 1111 1111 1111".to_string()),
        Just("+44 20 7946 0958".to_string()),
        Just("(415) 555-0132".to_string()),
        Just("10.0.0.1".to_string()),
        Just("fe80::1".to_string()),
        Just("DE89370400440532013000".to_string()),
        Just("AKIAQ3EGUTDY5WXRMZ7N".to_string()),
        Just("aws secret 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".to_string()),
        Just("ghp_R8fZp2Lq9VxW3mKt7YcN1bHd6JsQ0aUe4Gio".to_string()),
        Just("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jV".to_string()),
        Just("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----".to_string()),
        Just("-----BEGIN PRIVATE KEY-----\nMIIE".to_string()),
        Just("EMP-123456".to_string()),
        Just(" Carl Zeiss".to_string()),
        Just(" Kundin Manolo  Blahnik".to_string()),
        Just("support&#64;example.com".to_string()),
        Just("blue bird".to_string()),
        Just("\u{200B}".to_string()),
        Just("４".to_string()),
        Just("536\u{2013}22\u{2013}1234".to_string()),
        Just("536.22.1234".to_string()),
        Just("5 3 6 - 2 2 - 1 2 3 4".to_string()),
        Just("4111.1111.1111.1111".to_string()),
        Just("4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1".to_string()),
        Just("4111\u{A0}1111\u{202F}1111".to_string()),
        Just("030/12345678".to_string()),
        Just("DE89-3704-0044-0532-0130-00".to_string()),
        Just("10.0.19045.3693".to_string()),
        Just("\u{2013}".to_string()),
        Just("\u{2014}".to_string()),
        Just("\u{A0}".to_string()),
        Just(" - ".to_string()),
        "[0-9 .-]{0,12}",
        Just("＠".to_string()),
        Just("😀".to_string()),
        "[ a-z0-9@.:+()_/=-]{0,12}",
        "[\\PC]{0,4}",
        Just("Maria Schmidt".to_string()),
        Just("Grace Thompson".to_string()),
        Just("Mr. ".to_string()),
        Just("Dr ".to_string()),
        Just("Ocean Dr ".to_string()),
        Just("Frau ".to_string()),
        Just("my name is ".to_string()),
        Just("Hauptstraße 12".to_string()),
        Just(", 10115 Berlin".to_string()),
        Just("221B Baker Street".to_string()),
        Just("12, rue de la Paix".to_string()),
        Just("ul. Długa 5".to_string()),
        Just("\nWashington, DC 20500-0003".to_string()),
        Just("Calle Mayor ".to_string()),
        Just(" de la ".to_string()),
        Just("born ".to_string()),
        Just("12.03.1985".to_string()),
        Just("3. März 1990".to_string()),
        Just("DOB: ".to_string()),
        "[A-Z][a-zäöüé]{0,8} ",
        Just("Steuer-ID ".to_string()),
        Just("86095742719".to_string()),
        Just("47 036 892 816".to_string()),
        Just("BSN ".to_string()),
        Just("1112.22.333".to_string()),
        Just("PESEL ".to_string()),
        Just("44051401359".to_string()),
        Just("personnummer ".to_string()),
        Just("19121212-1212".to_string()),
        Just("rijksregisternummer ".to_string()),
        Just("85.07.30-033.28".to_string()),
        Just("2 55 08 14 168 025 38".to_string()),
        Just("185052A00608428".to_string()),
        Just("12.345.678-Z".to_string()),
        Just("X-1234567-L".to_string()),
        Just("RSSMRA85T10A562S".to_string()),
        Just("RSSMRA".to_string()),
        Just("131052-308T".to_string()),
        Just("290200A1239".to_string()),
        Just("SVNR ".to_string()),
        Just("1237 010180".to_string()),
    ]
}

proptest! {
    // 256 cases by default; PROPTEST_CASES=100000 for a longer run
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn prop_stream_equals_whole(parts in prop::collection::vec(fragment(), 0..12),
                                cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8)) {
        let text: String = parts.concat();
        for s in [all(), with_custom(), everything(), thresholds(), allowing()] {
            let want = whole(s, &text);
            let b = text.as_bytes();
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(b.len() + 1)).collect();
            points.sort_unstable();
            let mut pieces = Vec::new();
            let mut prev = 0;
            for p in points {
                pieces.push(&b[prev..p]);
                prev = p;
            }
            pieces.push(&b[prev..]);
            prop_assert_eq!(run_stream(s, pieces), want.clone());
            prop_assert_eq!(run_stream(s, b.chunks(1)), want);
        }
    }

    #[test]
    fn prop_never_panics(text in "\\PC{0,300}") {
        let s = everything();
        let f = s.scan(&text);
        for w in f.windows(2) {
            prop_assert!(w[0].end <= w[1].start);
        }
        for x in &f {
            prop_assert!(x.start < x.end && text.is_char_boundary(x.start) && text.is_char_boundary(x.end));
        }
        let _ = s.redact(&text, TPL);
    }

    #[test]
    fn prop_any_bytes_stream(bytes in prop::collection::vec(any::<u8>(), 0..300), size in 1usize..20) {
        let s = everything();
        let want = whole(s, &String::from_utf8_lossy(&bytes));
        prop_assert_eq!(run_stream(s, bytes.chunks(size)), want);
    }
}

// ---- SSNs and cards in the forms people and tools write them (issue 18) ----

/// `(group gap, gap between spaced digits)`: how an SSN or card may be written. `None` writes
/// the groups as digit runs.
const FORMS: &[(&str, Option<&str>)] = &[
    ("-", None),
    (" ", None),
    (".", None),
    (" - ", None),
    ("  ", None),
    ("\u{2013}", None),
    ("\u{2014}", None),
    ("\u{2012}", None),
    ("\u{2212}", None),
    ("\u{2011}", None),
    ("\u{FE63}", None),
    ("\u{A0}", None),
    ("\u{202F}", None),
    ("\u{2009}", None),
    ("\u{B7}", None),
    (" \u{2013} ", None),
    ("\u{A0}\u{2014}\u{A0}", None),
    ("-", Some(" ")),
    (" - ", Some(" ")),
    ("  ", Some(" ")),
    (".", Some(" ")),
    ("\u{2013}", Some(" ")),
    (" \u{2013} ", Some(" ")),
    (" \u{2014} ", Some(" ")),
    ("\u{2013}", Some("\u{A0}")),
    (" - ", Some("\u{202F}")),
    ("-", Some("\u{2009}")),
    // blanks: one to four spaces or tabs, around a dash or dot too
    ("\t", None),
    ("   ", None),
    (" \t", None),
    ("\t-\t", None),
    ("\t\t.\t", None),
    ("\u{A0}\t \u{2013}\t\u{202F}\t", None),
    ("\t", Some(" ")),
    ("   ", Some(" ")),
];

/// Blanks between groups (one to four spaces or tabs, some written as Unicode spaces), mixed
/// freely in one value; and runs too long to join anything.
const BLANKS: &[&str] = &[
    " ",
    "  ",
    "   ",
    "    ",
    "\t",
    "\t\t",
    " \t",
    "\t \t",
    "\t\t\t\t",
    "\u{A0}\t",
    "\u{2009} ",
];
const LONG_BLANKS: &[&str] = &["     ", "\t\t\t\t\t", " \t \t ", "      ", "\u{A0}\t\u{A0}\t\u{A0}"];

/// Text before and after a planted value: no digits, nothing that glues to a number.
const BEFORE: &[&str] = &[
    "",
    "SSN ",
    "card: ",
    "(",
    "x ",
    "\"",
    "値は",
    "\u{2014}",
    "ssn\u{A0}",
    "- ",
];
const AFTER: &[&str] = &["", ".", ", ok", ")", "\n", " and more", "です", "\u{2014}next", " - x"];

fn render(groups: &[String], (gap, spaced): (&str, Option<&str>)) -> String {
    let groups: Vec<String> = match spaced {
        None => groups.to_vec(),
        Some(sp) => groups
            .iter()
            .map(|g| g.chars().map(String::from).collect::<Vec<_>>().join(sp))
            .collect(),
    };
    groups.join(gap)
}

fn luhn_complete(payload: &str) -> String {
    (b'0'..=b'9')
        .map(|d| format!("{payload}{}", d as char))
        .find(|c| validate::luhn(c.as_bytes()))
        .expect("one check digit fits")
}

/// A valid SSN, as its groups.
fn ssn_value() -> impl Strategy<Value = Vec<String>> {
    (1u32..900, 1u32..100, 1u32..10000)
        .prop_filter("issuable", |&(a, g, s)| validate::ssn(a, g, s))
        .prop_map(|(a, g, s)| vec![format!("{a:03}"), format!("{g:02}"), format!("{s:04}")])
}

/// A valid card number (Visa or Mastercard 4-4-4-4, Amex 4-6-5), as its groups.
fn card_value() -> impl Strategy<Value = Vec<String>> {
    (0usize..3, prop::collection::vec(0u8..10, 14))
        .prop_map(|(brand, body)| {
            let digits: String = body.iter().map(|d| char::from(b'0' + d)).collect();
            match brand {
                0 => luhn_complete(&format!("4{digits}")),
                1 => luhn_complete(&format!("5{}{}", 1 + body[0] % 5, &digits[..13])),
                _ => luhn_complete(&format!("37{}", &digits[..12])),
            }
        })
        .prop_map(|n| {
            let cuts: &[usize] = if n.len() == 15 {
                &[0, 4, 10, 15]
            } else {
                &[0, 4, 8, 12, 16]
            };
            cuts.windows(2).map(|w| n[w[0]..w[1]].to_string()).collect()
        })
}

/// Plants `value` between `before` and `after`; the planted value's byte span in the text.
fn plant(before: &str, value: &str, after: &str) -> (String, usize, usize) {
    (
        format!("{before}{value}{after}"),
        before.len(),
        before.len() + value.len(),
    )
}

fn pieces_at<'a>(b: &'a [u8], cuts: &[prop::sample::Index]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|i| i.index(b.len() + 1)).collect();
    points.sort_unstable();
    let mut pieces = Vec::new();
    let mut prev = 0;
    for p in points {
        pieces.push(&b[prev..p]);
        prev = p;
    }
    pieces.push(&b[prev..]);
    pieces
}

/// A decoy that must never be an SSN or a card: IPv4, dates, versions, OIDs.
fn decoy() -> impl Strategy<Value = String> {
    let octet = || 0u32..256;
    let (d, m, y) = (1u32..29, 1u32..13, 1900u32..2100);
    prop_oneof![
        (octet(), octet(), octet(), octet()).prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        (d.clone(), m.clone(), y.clone(), 0usize..9).prop_map(|(d, m, y, f)| match f {
            0 => format!("{d:02}.{m:02}.{y}"),
            1 => format!("{y}-{m:02}-{d:02}"),
            2 => format!("{m:02}/{d:02}/{y}"),
            3 => format!("{y}.{m:02}.{d:02}"),
            4 => format!("{d}.{m}.{y}"),
            5 => format!("{y}. {m}. {d}."),
            6 => format!("{d:02}\u{2013}{m:02}\u{2013}{y}"),
            7 => format!("{y}\u{2013}{m:02}\u{2013}{d:02}"),
            _ => format!("{d:02} {m:02} {y}"),
        }),
        // semantic versions (major under 100) and four-part builds (major under 1000)
        (0u32..100, 0u32..1000, 0u32..100_000).prop_map(|(a, b, c)| format!("{a}.{b}.{c}")),
        (0u32..1000, 0u32..100, 0u32..100_000, 0u32..10_000).prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        // OIDs: first arc 0-2, then any arcs
        (0u32..3, prop::collection::vec(0u32..200_000, 3..12)).prop_map(|(first, arcs)| {
            let mut s = first.to_string();
            for a in arcs {
                s.push('.');
                s.push_str(&a.to_string());
            }
            s
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    /// Every valid SSN and card, in every form, is found with exactly its original span, whole and
    /// streamed in any chunks.
    #[test]
    fn prop_forms_are_found(ssn in ssn_value(), card in card_value(), form in 0..FORMS.len(),
                            is_card in any::<bool>(), before in 0..BEFORE.len(), after in 0..AFTER.len(),
                            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6)) {
        let s = all();
        let (groups, entity) = if is_card { (card, Builtin::CreditCard) } else { (ssn, Builtin::UsSsn) };
        let value = render(&groups, FORMS[form]);
        let (text, a, b) = plant(BEFORE[before], &value, AFTER[after]);
        let got = s.scan(&text);
        prop_assert_eq!(got, vec![Finding { entity: entity.id(), start: a, end: b, confidence: entity.confidence() }], "{:?}", text);
        let want = whole(s, &text);
        prop_assert_eq!(run_stream(s, pieces_at(text.as_bytes(), &cuts)), want.clone());
        prop_assert_eq!(run_stream(s, text.as_bytes().chunks(1)), want);
    }

    /// Every valid SSN and card with a different blank between each two groups is found with
    /// exactly its span, whole and streamed; with one blank too long, it is not.
    #[test]
    fn prop_mixed_blanks_are_found(ssn in ssn_value(), card in card_value(), is_card in any::<bool>(),
                                   blanks in prop::collection::vec(0..BLANKS.len(), 4),
                                   long in (0..LONG_BLANKS.len(), 0usize..4),
                                   before in 0..BEFORE.len(), after in 0..AFTER.len(),
                                   cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6)) {
        let s = all();
        let (groups, entity) = if is_card { (card, Builtin::CreditCard) } else { (ssn, Builtin::UsSsn) };
        let join = |gaps: &[&str]| {
            let mut v = groups[0].clone();
            for (g, gap) in groups[1..].iter().zip(gaps) {
                v.push_str(gap);
                v.push_str(g);
            }
            v
        };
        let gaps: Vec<&str> = blanks.iter().map(|&k| BLANKS[k]).collect();
        let value = join(&gaps);
        let (text, a, b) = plant(BEFORE[before], &value, AFTER[after]);
        let got = s.scan(&text);
        prop_assert_eq!(got, vec![Finding { entity: entity.id(), start: a, end: b, confidence: entity.confidence() }], "{:?}", text);
        let want = whole(s, &text);
        prop_assert_eq!(run_stream(s, pieces_at(text.as_bytes(), &cuts)), want.clone());
        prop_assert_eq!(run_stream(s, text.as_bytes().chunks(1)), want);
        // one gap five blanks or more: the value is not found across it
        let mut gaps = gaps;
        let k = long.1 % (groups.len() - 1);
        gaps[k] = LONG_BLANKS[long.0];
        let value = join(&gaps);
        let (text, a, _) = plant(BEFORE[before], &value, AFTER[after]);
        let cut = a + groups[..=k].iter().map(String::len).sum::<usize>() + gaps[..k].iter().map(|g| g.len()).sum::<usize>();
        let got = s.scan(&text);
        prop_assert!(got.iter().all(|f| f.entity != entity.id() || f.end <= cut || f.start > cut), "{:?}: {:?}", text, got);
        let want = whole(s, &text);
        prop_assert_eq!(run_stream(s, pieces_at(text.as_bytes(), &cuts)), want);
    }

    /// IP addresses, dates, versions and OIDs are never SSNs or cards, whole or streamed.
    #[test]
    fn prop_decoys_are_not_numbers(decoy in decoy(), before in 0..BEFORE.len(), after in 0..AFTER.len(),
                                   cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6)) {
        let s = all();
        let (text, _, _) = plant(BEFORE[before], &decoy, AFTER[after]);
        let numbers = [Builtin::UsSsn.id(), Builtin::CreditCard.id()];
        let got = s.scan(&text);
        prop_assert!(got.iter().all(|f| !numbers.contains(&f.entity)), "{:?}: {:?}", text, got);
        let want = whole(s, &text);
        prop_assert_eq!(run_stream(s, pieces_at(text.as_bytes(), &cuts)), want.clone());
        prop_assert_eq!(run_stream(s, text.as_bytes().chunks(1)), want);
    }
}

#[test]
fn holdback_covers_the_longest_number_form() {
    // 19 digits written one by one, every digit a 4-byte mathematical digit, every gap the
    // widest a group gap can be, and the most invisible characters the view removes between
    // every two characters: the stream must still find it whole, holding back no more than
    // its bound
    let s = all();
    let card = luhn_complete("411111111111111111");
    let zw = "\u{200B}".repeat(usize::from(MAX_REMOVED_RUN));
    let math = |c: char| char::from_u32(0x1D7CE + (c as u32 - u32::from(b'0'))).unwrap();
    let groups: Vec<String> = [0..4, 4..8, 8..12, 12..16, 16..19]
        .into_iter()
        .map(|r| {
            card[r]
                .chars()
                .map(|c| math(c).to_string())
                .collect::<Vec<_>>()
                .join(&format!("{zw}\u{A0}{zw}"))
        })
        .collect();
    // the widest gap: three blanks, a dash, three blanks
    let blank = format!("{zw}\u{A0}{zw}\t{zw}\u{202F}{zw}");
    let value = groups.join(&format!("{blank}\u{2013}{blank}"));
    let text = format!("card {value} exp");
    assert!(value.chars().count() < s.max_holdback(), "{}", value.chars().count());
    let (out, found) = whole(s, &text);
    assert_eq!(out, "card <CREDIT_CARD> exp");
    assert_eq!(found.len(), 1);
    check_stream(s, &text);
    // the spaced SSN with the widest gaps, the same way
    let ssn: Vec<String> = ["536", "22", "1234"]
        .iter()
        .map(|g| {
            g.chars()
                .map(|c| math(c).to_string())
                .collect::<Vec<_>>()
                .join(&format!("{zw}\u{202F}{zw}"))
        })
        .collect();
    let text = format!("ssn {}.", ssn.join(&format!("{blank}\u{2212}{blank}")));
    assert_eq!(whole(s, &text).0, "ssn <US_SSN>.");
    check_stream(s, &text);
}

// ---- values hidden by encodings (issue 16) ----

/// A line long enough for a break at its end to count as a hard wrap.
const LONG: &str = "Please charge the customer's card on file, number ";

/// Checks that `text` yields exactly `want` (entity, original slice), whole and streamed, and
/// that redaction replaces every original byte of each value, escapes included.
fn enc(text: &str, want: &[(&str, &str)]) {
    assert_eq!(found(text), want, "{text:?}");
    let (out, f) = all().redact(text, TPL);
    let mut expect = text.to_string();
    for x in f.iter().rev() {
        expect.replace_range(x.start..x.end, &format!("<{}>", all().entity_name(x.entity)));
    }
    assert_eq!(out, expect);
    for (_, v) in want {
        assert!(!out.contains(v), "{out:?} still has {v:?}");
    }
}

macro_rules! e {
    ($name:ident, $text:expr, [$(($ent:expr, $val:expr)),*]) => {
        #[test]
        fn $name() {
            enc($text, &[$(($ent, $val)),*]);
        }
    };
}

e!(
    enc010,
    "mail maria&#64;example.com now",
    [("EMAIL", "maria&#64;example.com")]
);
e!(
    enc020,
    "maria&#x40;example&#x2E;com",
    [("EMAIL", "maria&#x40;example&#x2E;com")]
);
e!(
    enc030,
    "<p>maria&commat;example&period;com</p>",
    [("EMAIL", "maria&commat;example&period;com")]
);
e!(
    enc040,
    "&#109;&#97;&#114;&#105;&#97;&#64;example.com",
    [("EMAIL", "&#109;&#97;&#114;&#105;&#97;&#64;example.com")]
);
e!(
    enc050,
    "GET /invite?to=maria%40example.com&x=1",
    [("EMAIL", "maria%40example.com")]
);
e!(
    enc060,
    "to=maria%2Elopez%40example%2Ecom",
    [("EMAIL", "maria%2Elopez%40example%2Ecom")]
);
e!(
    enc070,
    r#"{"email": "maria\u0040example.com"}"#,
    [("EMAIL", r"maria\u0040example.com")]
);
e!(
    enc080,
    r#"{"note": "hi\nbob@example.com"}"#,
    [("EMAIL", "bob@example.com")]
);
e!(
    enc090,
    r#"{"aws_secret_access_key": "wJalrXUtnFEMI\/K7MDENG\/bPxRfiCYzq9vLp4Tks"}"#,
    [("AWS_SECRET_ACCESS_KEY", r"wJalrXUtnFEMI\/K7MDENG\/bPxRfiCYzq9vLp4Tks")]
);
e!(
    enc100,
    r#"{"card": "4111\u00a01111\u00a01111\u00a01111"}"#,
    [("CREDIT_CARD", r"4111\u00a01111\u00a01111\u00a01111")]
);
e!(
    enc110,
    "card ４１１１ １１１１ １１１１ １１１１.",
    [("CREDIT_CARD", "４１１１ １１１１ １１１１ １１１１")]
);
e!(
    enc120,
    "ｍａｒｉａ＠ｅｘａｍｐｌｅ．ｃｏｍ",
    [("EMAIL", "ｍａｒｉａ＠ｅｘａｍｐｌｅ．ｃｏｍ")]
);
e!(
    enc130,
    "4111\u{A0}1111\u{202F}1111\u{A0}1111",
    [("CREDIT_CARD", "4111\u{A0}1111\u{202F}1111\u{A0}1111")]
);
e!(
    enc140,
    "ma\u{200B}ria@exa\u{2060}mple.c\u{200D}om",
    [("EMAIL", "ma\u{200B}ria@exa\u{2060}mple.c\u{200D}om")]
);
e!(
    enc150,
    "ma&#8203;ria@exam&zwj;ple.com",
    [("EMAIL", "ma&#8203;ria@exam&zwj;ple.com")]
);
e!(
    enc160,
    "4111&nbsp;1111&nbsp;1111&nbsp;1111",
    [("CREDIT_CARD", "4111&nbsp;1111&nbsp;1111&nbsp;1111")]
);
e!(
    enc170,
    r"tel %2B1%20415%20555%200132",
    [("PHONE", "%2B1%20415%20555%200132")]
);
e!(
    enc180,
    "maria&#xFF20;example.com",
    [("EMAIL", "maria&#xFF20;example.com")]
);
e!(
    enc190,
    r"ssn 536\u002d22\u002d1234",
    [("US_SSN", r"536\u002d22\u002d1234")]
);

#[test]
fn wrapped_numbers() {
    let cases = [
        ("4111 1111\n1111 1111", "CREDIT_CARD"),
        ("41111111\n11111111", "CREDIT_CARD"),
        ("4111 1111 11\n11 1111", "CREDIT_CARD"),
        ("4111 1111\r\n    1111 1111", "CREDIT_CARD"),
        ("DE89 3704 0044\n0532 0130 00", "IBAN"),
        ("DE89 3704 0044 0532 01\n30 00", "IBAN"),
        ("DE8937040044\n0532013000", "IBAN"),
        ("GB29 NWBK 6016\n1331 9268 19", "IBAN"),
    ];
    for (value, entity) in cases {
        let text = format!("{LONG}{value}. Thanks");
        enc(&text, &[(entity, value)]);
    }
}

#[test]
fn encodings_that_hide_nothing_are_left_alone() {
    let texts = [
        "50% off, 100% sure, %zz and 5%3 of it",
        "Tom &amp; Jerry, AT&T, R&D, a &lt;b&gt; tag, &#38; and &unknown; and &#xZZ;",
        r#"{"name": "caf\u00e9", "path": "C:\\new\\table", "q": "\"quoted\"", "s": "a\/b"}"#,
        r"C:\new\table\users\bob and \u00 and \uZZZZ and \ud800 alone",
        "%2541 is not %41 twice",
        // a column of short numbers is not one wrapped number
        "4500\n1200\n3300\n9900\n",
        "Totals\n4111\n1111\n1111\n1111\n",
    ];
    for text in texts {
        assert_eq!(found(text), vec![], "{text:?}");
        assert_eq!(all().redact(text, TPL).0, text);
    }
}

#[test]
fn a_line_break_does_not_join_what_ends_a_line() {
    // the end of an IP address, a time or a path is not the first part of a wrapped number
    let text = "2024-11-03 12:00:01 request from client at 10.0.0.1\n2024-11-03 12:00:02 done\n";
    assert_eq!(found(text), vec![("IP_ADDRESS", "10.0.0.1")]);
    let text = "2024-11-03 12:00:01 request from client at 12:00:01\n2024-11-03 12:00:02 done\n";
    assert_eq!(found(text), vec![]);
    // a list of phone numbers on short lines stays a list
    let text = "+1 415 555 0132\n+1 415 555 0199\n";
    assert_eq!(
        found(text),
        vec![("PHONE", "+1 415 555 0132"), ("PHONE", "+1 415 555 0199")]
    );
}

#[test]
fn encoded_and_plain_views_agree_on_plain_text() {
    // text that only looks encodable gives the same findings through the view as without it
    for t in SAMPLES {
        let with = format!("{t} &x");
        let a: Vec<_> = all().scan(t);
        let b: Vec<_> = all().scan(&with);
        assert_eq!(a, b, "{t:?}");
    }
}

#[test]
fn holdback_covers_the_longest_encoded_forms() {
    // every character of an e-mail as the longest reference the view decodes, with the most
    // removable original bytes between every two: found whole, streamed within the bound
    let s = all();
    let local = "a".repeat(60);
    let addr = format!("{local}@example.com");
    let zw = "&#x0200B;\u{200B}\u{200B}";
    let value: String = addr
        .chars()
        .map(|c| format!("&#x{:07X};", c as u32))
        .collect::<Vec<_>>()
        .join(zw);
    assert!(value.chars().count() < s.max_holdback(), "{}", value.chars().count());
    let text = format!("to {value} now");
    assert_eq!(whole(s, &text).0, "to <EMAIL> now");
    check_stream(s, &text);
}

/// How one character of a planted value is written.
fn encode_char(c: char, how: u8) -> String {
    let u = c as u32;
    match how {
        1 => format!("&#{u};"),
        2 => format!("&#x{u:x};"),
        3 if c.is_ascii_graphic() => format!("%{u:02X}"),
        4 => format!("\\u{u:04x}"),
        5 if c.is_ascii_graphic() => char::from_u32(u + 0xFEE0).unwrap().to_string(),
        _ => c.to_string(),
    }
}

/// A value that must be found: an e-mail, a card in groups, an IBAN in groups, an SSN, national ids.
fn sensitive() -> impl Strategy<Value = (String, Builtin)> {
    prop_oneof![
        Just(("maria.lopez@example.com".to_string(), Builtin::Email)),
        card_value().prop_map(|g| (g.join(" "), Builtin::CreditCard)),
        Just(("DE89 3704 0044 0532 0130 00".to_string(), Builtin::Iban)),
        ssn_value().prop_map(|g| (g.join("-"), Builtin::UsSsn)),
        Just(("RSSMRA85T10A562S".to_string(), Builtin::ItFiscalCode)),
        Just(("12.345.678-Z".to_string(), Builtin::EsDni)),
        Just(("2 55 08 14 168 025 38".to_string(), Builtin::FrNir)),
        Just(("131052-308T".to_string(), Builtin::FiHetu)),
    ]
}

fn enc_fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("maria&#64;example.com".to_string()),
        Just("maria%40example.com".to_string()),
        Just("maria\\u0040example.com".to_string()),
        Just("&commat;".to_string()),
        Just("&#x40;".to_string()),
        Just("&#".to_string()),
        Just("&am".to_string()),
        Just("&amp;".to_string()),
        Just("%4".to_string()),
        Just("%40".to_string()),
        Just("50% ".to_string()),
        Just("\\u00".to_string()),
        Just("\\ud83d\\ude00".to_string()),
        Just("\\ud83d".to_string()),
        Just("\\/".to_string()),
        Just("\\n".to_string()),
        Just("\\".to_string()),
        Just("\n".to_string()),
        Just("\r\n   ".to_string()),
        Just("\r".to_string()),
        Just(LONG.to_string()),
        Just("4111 1111\n1111 1111".to_string()),
        Just("DE89 3704 0044\n0532 0130 00".to_string()),
        Just("&nbsp;".to_string()),
        Just("&#8203;".to_string()),
        Just("\u{200B}".to_string()),
        Just("１２３".to_string()),
        "[0-9 \n]{0,12}",
        "[ a-z0-9@.&#;%\\\\u]{0,12}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    /// Text full of escapes, entities, percent signs and line breaks streams like the whole text
    /// in any chunks.
    #[test]
    fn prop_encoded_stream_equals_whole(parts in prop::collection::vec(prop_oneof![enc_fragment(), fragment()], 0..12),
                                        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8)) {
        let text: String = parts.concat();
        for s in [all(), with_custom(), everything()] {
            let want = whole(s, &text);
            let b = text.as_bytes();
            prop_assert_eq!(run_stream(s, pieces_at(b, &cuts)), want.clone());
            prop_assert_eq!(run_stream(s, b.chunks(1)), want);
        }
    }

    /// A value with every character written in its own encoding (raw, decimal or hex entity,
    /// percent, JSON escape, full-width), invisible characters between some of them, is found
    /// with exactly its original span, whole and in any chunks.
    #[test]
    fn prop_encoded_values_are_found((value, entity) in sensitive(),
                                     hows in prop::collection::vec(0u8..6, 30),
                                     zws in prop::collection::vec(0u8..8, 30),
                                     before in 0..3usize, after in 0..4usize,
                                     cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6)) {
        let s = all();
        let mut enc = String::new();
        for (k, c) in value.chars().enumerate() {
            if k > 0 && c != ' ' && zws[k % 30] == 0 {
                enc.push_str(if k % 2 == 0 { "\u{200B}" } else { "&#8203;" });
            }
            enc.push_str(&if c == ' ' { ["\u{A0}", " ", "&nbsp;", "%20"][usize::from(hows[k % 30]) % 4].to_string() }
                          else { encode_char(c, hows[k % 30]) });
        }
        let (text, a, b) = plant(["", "value: ", "\""][before], &enc, ["", ".", "\" ok", " thanks"][after]);
        let got = s.scan(&text);
        prop_assert_eq!(got, vec![Finding { entity: entity.id(), start: a, end: b, confidence: entity.confidence() }], "{:?}", text);
        let want = whole(s, &text);
        prop_assert_eq!(run_stream(s, pieces_at(text.as_bytes(), &cuts)), want.clone());
        prop_assert_eq!(run_stream(s, text.as_bytes().chunks(1)), want);
    }
}

// ---- confidence and thresholds ----

#[test]
fn findings_below_their_threshold_are_reported_not_redacted() {
    let s = thresholds();
    let text = "Mail ana@example.org, card 4111 1111 1111 1111, Dear Zorblat, thanks to Frau Müller for it.";
    let (out, found) = s.redact(text, TPL);
    assert_eq!(
        out,
        "Mail ana@example.org, card <CREDIT_CARD>, Dear Zorblat, thanks to Frau <PERSON> for it."
    );
    assert_eq!(found.len(), 2);
    let scored = s.scan_scored(text);
    let names: Vec<(&str, u8)> = scored.iter().map(|f| (s.entity_name(f.entity), f.confidence)).collect();
    assert_eq!(
        names,
        [("EMAIL", 90), ("CREDIT_CARD", 95), ("PERSON", 45), ("PERSON", 90)]
    );
    check_stream(s, text);
    // the defaults: PERSON at 50, everything else at 0
    let e = everything();
    assert_eq!(e.min_confidence(Builtin::Person.id()), 50);
    assert_eq!(e.min_confidence(Builtin::Email.id()), 0);
    assert_eq!(e.scan("Dear Zorblat, thanks").len(), 0);
    assert_eq!(e.scan_scored("Dear Zorblat, thanks").len(), 1);
    // a role or a group after a greeting is no name at all
    assert_eq!(e.scan_scored("Dear Customer, thanks").len(), 0);
}

#[test]
fn thresholds_name_compiled_types_only() {
    let bad = |name: &str, conf: u8| {
        Scanner::new(&Rules {
            entities: Some(vec!["EMAIL".into()]),
            min_confidence: vec![(name.into(), conf)],
            ..Rules::default()
        })
        .err()
        .map(|e| e.to_string())
    };
    assert!(bad("PERSON", 50).unwrap().starts_with("min_confidence[0]: PERSON"));
    assert!(bad("EMAIL", 101).is_some());
    assert!(bad("bob@example.com", 1).unwrap().contains("not an entity name"));
    assert!(bad("EMAIL", 100).is_none());
}

#[test]
fn a_quiet_open_block_is_emitted_as_it_is() {
    let s = thresholds();
    let key = format!("-----BEGIN PRIVATE KEY-----\n{}", "A".repeat(5000));
    let text = format!("key {key} end");
    let (out, found) = s.redact(&text, TPL);
    assert_eq!(out, text);
    assert!(found.is_empty());
    check_stream(s, &text);
}

/// Names, e-mail addresses and a custom type, each with terms allowed.
fn allowing_rules() -> Rules {
    Rules {
        entities: Some(vec!["PERSON".into(), "EMAIL".into()]),
        keywords: vec![("PROJECT".into(), vec!["bluebird".into()])],
        allow: vec![
            ("PERSON".into(), vec!["Carl Zeiss".into(), "Manolo Blahnik".into()]),
            ("EMAIL".into(), vec!["support@example.com".into()]),
        ],
        ..Rules::default()
    }
}

fn allowing() -> &'static Scanner {
    static S: OnceLock<Scanner> = OnceLock::new();
    S.get_or_init(|| Scanner::new(&allowing_rules()).unwrap())
}

#[test]
fn allowed_terms_are_not_findings_in_any_form() {
    let s = allowing();
    let plain = Scanner::new(&Rules {
        allow: Vec::new(),
        ..allowing_rules()
    })
    .unwrap();
    let names = |text: &str| -> Vec<String> { s.scan(text).iter().map(|f| text[f.start..f.end].to_string()).collect() };
    // the terms: as written, in another case, spaced or escaped otherwise
    for text in [
        "Das Objektiv von Carl Zeiss ist scharf.",
        "Das Objektiv von CARL ZEISS ist scharf.",
        "Das Objektiv von Carl\u{a0}\u{a0}Zeiss ist scharf.",
        "Das Objektiv von Carl&nbsp;Zeiss ist scharf.",
        "Los zapatos de Manolo Blahnik. Write to support@example.com or SUPPORT@example.com",
        "Write to support%40example.com",
    ] {
        assert!(!plain.scan(text).is_empty(), "found without the allow list: {text:?}");
        assert_eq!(names(text), Vec::<String>::new(), "{text:?}");
        check_stream(s, text);
    }
    // everything else is found: a longer name holding a term, another person, another address,
    // a keyword of a type without terms
    let text = "Carl Zeiss Meditec und Maria Schmidt; mail sales@example.com about bluebird";
    assert_eq!(
        names(text),
        ["Carl Zeiss Meditec", "Maria Schmidt", "sales@example.com", "bluebird"]
    );
    check_stream(s, text);
    // a term allowed for one type leaves another type's value of the same text alone
    let contact = Scanner::new(&Rules {
        entities: Some(vec!["EMAIL".into()]),
        custom_patterns: vec![("CONTACT".into(), r"support@example\.com".into())],
        allow: vec![("EMAIL".into(), vec!["support@example.com".into()])],
        ..Rules::default()
    })
    .unwrap();
    let found = contact.scan("support@example.com");
    assert_eq!(found.len(), 1);
    assert_eq!(contact.entity_name(found[0].entity), "CONTACT");
}

#[test]
fn allow_lists_name_compiled_types_and_real_terms() {
    let bad = |allow: Vec<(String, Vec<String>)>| {
        Scanner::new(&Rules {
            entities: Some(vec!["EMAIL".into()]),
            allow,
            ..Rules::default()
        })
        .err()
        .map(|e| e.to_string())
    };
    let one = |name: &str, terms: &[&str]| vec![(name.to_string(), terms.iter().map(|t| t.to_string()).collect())];
    assert_eq!(
        bad(one("PERSON", &["x"])).unwrap(),
        "allow[0]: PERSON is not an entity type of this scanner"
    );
    assert!(bad(one("not a name", &["x"])).unwrap().contains("not an entity name"));
    assert!(bad(one("EMAIL", &[])).unwrap().starts_with("allow[0] (EMAIL)[0]"));
    let mut two = one("EMAIL", &["a@b.co"]);
    two.extend(one("EMAIL", &["c@d.co", " "]));
    let message = bad(two).unwrap();
    assert!(message.starts_with("allow[1] (EMAIL)[1]"), "{message}");
    assert!(bad(one("EMAIL", &[&"x".repeat(MAX_ALLOW_LEN + 1)])).is_some());
    assert!(bad(one("EMAIL", &["a@b.co"])).is_none());
}
