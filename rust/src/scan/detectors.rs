//! The detector driver: one pass that finds candidate positions, then per-type parsers.
//!
//! A scan of the view `t[base..n]` has three sources of candidates:
//!
//! 1. an Aho-Corasick automaton over the literal anchors of the secrets (`AKIA`, `ghp_`, `sk-`,
//!    `-----BEGIN`, `eyJ`, …), restarted one byte after each hit so no anchor hides another;
//! 2. a SIMD byte-class pass (SSE2 on x86-64) that stops only at digits, `:` and `@`: numbers
//!    (cards, SSNs, phones, IPv4, IBAN check digits, AWS secret tokens), IPv6 and e-mail;
//! 3. operator keywords and patterns (see `custom.rs`).
//!
//! Each parser answers from a start position with a [`Res`]: no candidate, a candidate ending at
//! `e`, an *open* candidate (a capped block whose run goes on past the end of the buffer), or
//! `More` when its answer depends on text that has not arrived. Parsers read through [`at!`], which
//! returns `More` from the parser as soon as it touches `t[n]` before the end of the stream; that is
//! what makes stream scanning equal to whole-text scanning: a decision is only taken on bytes
//! that cannot change. The lowest start still waiting for text (`undecided`) bounds what a stream
//! may emit, together with the tail holds in [`Detectors::tail_hold`] for anchors that have not
//! arrived yet (a trailing `gh`, a local part waiting for its `@`, a `+` waiting for digits).

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, Input, MatchKind};

use super::allow::Allow;
use super::custom::{Custom, CustomState};
use super::entity::{Builtin, EntityId, BUILTIN_COUNT};
use super::normalize::View;
use super::{names, natid, pii, secrets};

/// Normalized bytes kept before the emit point of a stream for look-behind (word boundaries, key
/// names before an AWS secret, phone words before a number, the tail of a custom pattern chain).
pub const MIN_CONTEXT: usize = 256;

/// Below this many bytes the anchor search skips its SIMD prefilter, whose set-up costs more than
/// it saves on a short stream chunk.
const SHORT_HAYSTACK: usize = 256;
/// Below this many bytes the anchors are found by their first byte and a comparison
/// ([`TinyAnchors`]): an automaton's start costs more than reading such a text (most JSON keys and
/// values are this short).
const TINY_HAYSTACK: usize = 64;

/// A candidate span in view coordinates. `end == usize::MAX` marks an open candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cand {
    /// First normalized byte.
    pub start: usize,
    /// One past the last normalized byte (`usize::MAX` while open).
    pub end: usize,
    /// Entity id.
    pub entity: EntityId,
    /// How sure the detector is, 0 to 100 (see [`Builtin::confidence`]).
    pub conf: u8,
}

impl Cand {
    /// A closed candidate at confidence 90 (for tests).
    #[cfg(test)]
    pub fn at(start: usize, end: usize, entity: EntityId) -> Cand {
        Cand {
            start,
            end,
            entity,
            conf: 90,
        }
    }

    /// Whether the candidate is a capped block still running at the end of the buffer.
    pub fn is_open(&self) -> bool {
        self.end == usize::MAX
    }
}

/// The confidence of a candidate of `entity` whose parser does not grade it: the built-in's
/// [`Builtin::confidence`], [`CUSTOM_CONFIDENCE`] for operator types.
#[inline]
pub fn entity_confidence(entity: EntityId) -> u8 {
    Builtin::ALL
        .get(usize::from(entity))
        .map_or(CUSTOM_CONFIDENCE, |b| b.confidence())
}

/// The confidence of an operator pattern's or keyword's match: the operator wrote the rule.
pub const CUSTOM_CONFIDENCE: u8 = 100;

/// A parser's answer for one start position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Res {
    /// Nothing starts here.
    No,
    /// A candidate ends here (exclusive).
    Yes(usize),
    /// A capped block runs on past the end of the buffer: redact from the start, end unknown yet.
    Open,
    /// The answer depends on text not seen yet.
    More,
}

/// Reads `t[i]`: `Some(byte)`, `None` at the true end of the text, and returns [`Res::More`] from
/// the calling parser when `i` is past the buffer of an unfinished stream.
macro_rules! at {
    ($v:expr, $i:expr) => {{
        let i: usize = $i;
        match $v.t.get(i) {
            Some(&b) => Some(b),
            None if !$v.eof => return $crate::scan::detectors::Res::More,
            None => None,
        }
    }};
}
pub(crate) use at;

// Byte classes, one bit each.
pub const DIGIT: u16 = 1;
pub const UPPER: u16 = 1 << 1;
pub const LOWER: u16 = 1 << 2;
pub const HEX: u16 = 1 << 3;
/// E-mail local part: `[A-Za-z0-9._%+-]`.
pub const LOCAL: u16 = 1 << 4;
/// Domain label: `[A-Za-z0-9-]`.
pub const LABEL: u16 = 1 << 5;
/// Base64: `[A-Za-z0-9+/]`.
pub const B64: u16 = 1 << 6;
/// URL-safe base64: `[A-Za-z0-9_-]`.
pub const URLSAFE: u16 = 1 << 7;
/// What may follow a PEM header when no footer is in reach: base64, whitespace, `\`, `:`, `,`, `-`.
pub const PEMBODY: u16 = 1 << 8;
/// A JWT run past its cap: `[A-Za-z0-9_.=-]`.
pub const JWTRUN: u16 = 1 << 9;
pub const ALNUM: u16 = DIGIT | UPPER | LOWER;

const fn build_classes() -> [u16; 256] {
    let mut c = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut m = 0u16;
        if b.is_ascii_digit() {
            m |= DIGIT | HEX;
        }
        if b.is_ascii_uppercase() {
            m |= UPPER;
        }
        if b.is_ascii_lowercase() {
            m |= LOWER;
        }
        if matches!(b, b'a'..=b'f' | b'A'..=b'F') {
            m |= HEX;
        }
        let alnum = b.is_ascii_alphanumeric();
        if alnum || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-') {
            m |= LOCAL;
        }
        if alnum || b == b'-' {
            m |= LABEL;
        }
        if alnum || b == b'+' || b == b'/' {
            m |= B64;
        }
        if alnum || b == b'_' || b == b'-' {
            m |= URLSAFE;
        }
        if alnum
            || matches!(
                b,
                b'+' | b'/' | b'=' | b' ' | b'\t' | b'\r' | b'\n' | b'\\' | b':' | b',' | b'-'
            )
        {
            m |= PEMBODY;
        }
        if alnum || matches!(b, b'_' | b'.' | b'=' | b'-') {
            m |= JWTRUN;
        }
        c[i] = m;
        i += 1;
    }
    c
}

static CLASSES: [u16; 256] = build_classes();

/// Whether byte `b` is in any of the classes `mask`.
#[inline(always)]
pub fn is(mask: u16, b: u8) -> bool {
    CLASSES[usize::from(b)] & mask != 0
}

/// ASCII word byte: `[A-Za-z0-9_]`. Non-ASCII bytes are not word bytes, so `メールはa@b.comです`
/// still has boundaries around the address.
#[inline(always)]
pub fn word(b: u8) -> bool {
    is(ALNUM, b) || b == b'_'
}

/// `t[i - 1]`, or `None` at the start of the view.
#[inline(always)]
pub fn prev(t: &[u8], i: usize) -> Option<u8> {
    i.checked_sub(1).map(|j| t[j])
}

/// A list of context words (lowercase; each starting with a letter or a UTF-8 lead byte, at most
/// 32 of them), indexed by first letter so a word start is compared only with its own words.
pub struct ContextWords {
    words: &'static [&'static [u8]],
    /// Bit `k` of `by_first[c]`: word `k` starts with letter `c` (slot 26: with a lead byte).
    by_first: [u32; 27],
}

impl ContextWords {
    /// Indexes `words`; a word breaking the rules above fails the (constant) build.
    pub const fn new(words: &'static [&'static [u8]]) -> ContextWords {
        assert!(words.len() <= 32);
        let mut by_first = [0u32; 27];
        let mut k = 0;
        while k < words.len() {
            let w = words[k];
            let mut j = 0;
            while j < w.len() {
                assert!(!w[j].is_ascii_uppercase());
                j += 1;
            }
            let c = w[0];
            assert!(c.is_ascii_lowercase() || c >= 0xC0);
            let slot = if c.is_ascii_lowercase() {
                (c - b'a') as usize
            } else {
                26
            };
            by_first[slot] |= 1 << k;
            k += 1;
        }
        ContextWords { words, by_first }
    }
}

/// Whether one of `words` occurs at a word start in the `window` bytes before `s`, ignoring
/// ASCII case.
pub fn context_before(t: &[u8], s: usize, window: usize, words: &ContextWords) -> bool {
    let lo = s.saturating_sub(window);
    for i in lo..s {
        let b = t[i];
        // every context word starts with a letter or a UTF-8 lead byte, at a word start
        let k = (b | 0x20).wrapping_sub(b'a');
        let slot = if k < 26 {
            usize::from(k)
        } else if b >= 0xC0 {
            26
        } else {
            continue;
        };
        let mut m = words.by_first[slot];
        if m == 0 || (i > 0 && is(ALNUM, t[i - 1])) {
            continue;
        }
        let hay = &t[i..s];
        while m != 0 {
            let w = words.words[m.trailing_zeros() as usize];
            m &= m - 1;
            if hay.len() >= w.len() && hay[..w.len()].eq_ignore_ascii_case(w) {
                return true;
            }
        }
    }
    false
}

/// Collects one round's candidates and the lowest undecided start.
pub struct Out<'c> {
    /// Candidates with `start >= base`.
    pub cands: &'c mut Vec<Cand>,
    /// Lowest start whose answer needs more text (`n` when none).
    pub undecided: usize,
    /// Starts below this were settled in an earlier round.
    pub base: usize,
}

impl Out<'_> {
    /// Records the answer `r` of a parser that started at `s`.
    #[inline]
    pub fn put(&mut self, s: usize, entity: EntityId, r: Res) {
        self.put_conf(s, entity, r, entity_confidence(entity));
    }

    /// Records the answer `r` of a parser that started at `s`, with the confidence `conf` of a
    /// candidate (parsers that grade their evidence: `PERSON`, `ADDRESS`, the weak shapes).
    #[inline]
    pub fn put_conf(&mut self, s: usize, entity: EntityId, r: Res, conf: u8) {
        if s < self.base {
            return;
        }
        match r {
            Res::No => {}
            Res::Yes(e) => self.cands.push(Cand {
                start: s,
                end: e,
                entity,
                conf,
            }),
            Res::Open => self.cands.push(Cand {
                start: s,
                end: usize::MAX,
                entity,
                conf,
            }),
            Res::More => self.undecided = self.undecided.min(s),
        }
    }

    /// Marks `s` as waiting for more text.
    #[inline]
    pub fn hold(&mut self, s: usize) {
        if s >= self.base {
            self.undecided = self.undecided.min(s);
        }
    }

    /// Marks a potential start at `s` (or, if that is settled, from `base` on) as waiting: for
    /// tail runs that may reach back past the emit point.
    #[inline]
    pub fn hold_from(&mut self, s: usize) {
        self.undecided = self.undecided.min(s.max(self.base));
    }
}

/// Which secret family an anchor starts; the parser is chosen from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anchor {
    AwsKeyId,
    AwsKeyId3T,
    Github,
    GithubPat,
    Slack,
    SlackHook,
    /// `sk-`: OpenAI or Anthropic.
    SkDash,
    Stripe,
    Google,
    Pem,
    Jwt,
}

const ANCHORS: &[(&str, Anchor, Builtin)] = &[
    ("AKIA", Anchor::AwsKeyId, Builtin::AwsAccessKeyId),
    ("ASIA", Anchor::AwsKeyId, Builtin::AwsAccessKeyId),
    ("ABIA", Anchor::AwsKeyId, Builtin::AwsAccessKeyId),
    ("ACCA", Anchor::AwsKeyId, Builtin::AwsAccessKeyId),
    ("A3T", Anchor::AwsKeyId3T, Builtin::AwsAccessKeyId),
    ("ghp_", Anchor::Github, Builtin::GithubToken),
    ("gho_", Anchor::Github, Builtin::GithubToken),
    ("ghu_", Anchor::Github, Builtin::GithubToken),
    ("ghs_", Anchor::Github, Builtin::GithubToken),
    ("ghr_", Anchor::Github, Builtin::GithubToken),
    ("github_pat_", Anchor::GithubPat, Builtin::GithubToken),
    ("xoxb-", Anchor::Slack, Builtin::SlackToken),
    ("xoxp-", Anchor::Slack, Builtin::SlackToken),
    ("xoxa-", Anchor::Slack, Builtin::SlackToken),
    ("xoxr-", Anchor::Slack, Builtin::SlackToken),
    ("xoxs-", Anchor::Slack, Builtin::SlackToken),
    ("xoxe-", Anchor::Slack, Builtin::SlackToken),
    ("xapp-", Anchor::Slack, Builtin::SlackToken),
    ("hooks.slack.com/services/", Anchor::SlackHook, Builtin::SlackToken),
    ("sk-", Anchor::SkDash, Builtin::OpenaiApiKey),
    ("sk_live_", Anchor::Stripe, Builtin::StripeKey),
    ("sk_test_", Anchor::Stripe, Builtin::StripeKey),
    ("rk_live_", Anchor::Stripe, Builtin::StripeKey),
    ("rk_test_", Anchor::Stripe, Builtin::StripeKey),
    ("AIza", Anchor::Google, Builtin::GoogleApiKey),
    ("-----BEGIN", Anchor::Pem, Builtin::PrivateKey),
    ("eyJ", Anchor::Jwt, Builtin::Jwt),
];

/// Anchors by first byte: for a short text, a byte that starts no anchor (most of them) costs one
/// table lookup, and one that does a comparison or two. No anchor is a prefix of another, so at
/// most one matches at a position, as the leftmost-first automaton finds it.
pub struct TinyAnchors {
    /// 1 + the index in `by_first` of the anchors that start with this byte; 0: none does.
    first: [u8; 256],
    by_first: Vec<SameFirst>,
}

/// The anchors that start with one byte, and the set of their second bytes (256 bits).
type SameFirst = (Vec<(&'static [u8], Anchor)>, [u64; 4]);

impl TinyAnchors {
    fn new(anchors: impl IntoIterator<Item = (&'static [u8], Anchor)>) -> TinyAnchors {
        let mut first = [0u8; 256];
        let mut by_first: Vec<SameFirst> = Vec::new();
        for (lit, kind) in anchors {
            let b = usize::from(lit[0]);
            if first[b] == 0 {
                by_first.push((Vec::new(), [0; 4]));
                first[b] = u8::try_from(by_first.len()).expect("fewer than 256 first bytes");
            }
            let (lits, seconds) = &mut by_first[usize::from(first[b]) - 1];
            lits.push((lit, kind));
            let c = usize::from(lit[1]); // every anchor has at least 3 bytes
            seconds[c >> 6] |= 1 << (c & 63);
        }
        TinyAnchors { first, by_first }
    }

    /// The first anchor that starts at or after `from` and ends inside `t`: its start and kind.
    fn find(&self, t: &[u8], from: usize) -> Option<(usize, Anchor)> {
        let n = t.len();
        let mut i = from;
        while i + 1 < n {
            let k = self.first[usize::from(t[i])];
            if k != 0 {
                let (lits, seconds) = &self.by_first[usize::from(k) - 1];
                let c = usize::from(t[i + 1]);
                if seconds[c >> 6] >> (c & 63) & 1 != 0 {
                    for &(lit, kind) in lits {
                        if t[i..].starts_with(lit) {
                            return Some((i, kind));
                        }
                    }
                }
            }
            i += 1;
        }
        None
    }
}

/// The proper prefixes of a set of words, to find the longest suffix of a buffer that is one (a
/// word cut by the end of a stream chunk). Byte tables skip most lengths without comparing.
pub struct PrefixSet {
    prefixes: Vec<Vec<u8>>,
    /// Bit `k - 1`: some prefix of length `k` (up to 64) ends with this byte.
    ends: Box<[u64; 256]>,
    starts: Box<[bool; 256]>,
    max_len: usize,
    fold_case: bool,
}

impl PrefixSet {
    /// The proper prefixes of `words`; with `fold_case`, compared ignoring ASCII case.
    pub fn new<'a>(words: impl IntoIterator<Item = &'a [u8]>, fold_case: bool) -> PrefixSet {
        let fold = |b: u8| if fold_case { b.to_ascii_lowercase() } else { b };
        let mut prefixes: Vec<Vec<u8>> = Vec::new();
        for w in words {
            for k in 1..w.len() {
                prefixes.push(w[..k].iter().map(|&b| fold(b)).collect());
            }
        }
        prefixes.sort_unstable();
        prefixes.dedup();
        let mut ends = Box::new([0u64; 256]);
        let mut starts = Box::new([false; 256]);
        for p in &prefixes {
            let (first, last) = (p[0], p[p.len() - 1]);
            starts[usize::from(first)] = true;
            if fold_case {
                starts[usize::from(first.to_ascii_uppercase())] = true;
            }
            if p.len() <= 64 {
                ends[usize::from(last)] |= 1 << (p.len() - 1);
                if fold_case {
                    ends[usize::from(last.to_ascii_uppercase())] |= 1 << (p.len() - 1);
                }
            }
        }
        let max_len = prefixes.iter().map(Vec::len).max().unwrap_or(0);
        PrefixSet {
            prefixes,
            ends,
            starts,
            max_len,
            fold_case,
        }
    }

    /// The start of the longest suffix of `t` that begins at or after `lo` and is a prefix.
    pub fn longest_suffix(&self, t: &[u8], lo: usize) -> Option<usize> {
        let n = t.len();
        let last = *t.last()?;
        let mask = self.ends[usize::from(last)];
        let longest = self.max_len.min(n - lo.min(n));
        for k in (1..=longest).rev() {
            if k <= 64 && mask & (1 << (k - 1)) == 0 {
                continue;
            }
            let suf = &t[n - k..];
            if !self.starts[usize::from(suf[0])] {
                continue;
            }
            let hit = if self.fold_case {
                self.prefixes
                    .binary_search_by(|p| {
                        p.iter()
                            .map(u8::to_ascii_lowercase)
                            .cmp(suf.iter().map(u8::to_ascii_lowercase))
                    })
                    .is_ok()
            } else {
                self.prefixes.binary_search_by(|p| p.as_slice().cmp(suf)).is_ok()
            };
            if hit {
                return Some(n - k);
            }
        }
        None
    }
}

/// Per-round memo for parsers whose scans would otherwise repeat (many PEM headers in a row).
#[derive(Default)]
pub struct Memo {
    /// AWS secret tokens are checked once per token: digits before this were covered.
    pub aws_done: usize,
    /// IPv6 tokens are parsed once: colons before this were covered.
    pub v6_done: usize,
    /// `(from, at)`: the first `-----END` at or after `from` is at `at` (`None`: not before `n`).
    pub pem_footer: Option<(usize, Option<usize>)>,
    /// `(from, end)`: the PEM body run starting at or after `from` (and before `end`) ends at `end`.
    pub pem_run: Option<(usize, usize)>,
}

/// The compiled detectors of one scanner. Immutable and shared by every scan and stream.
pub struct Detectors {
    enabled: [bool; BUILTIN_COUNT],
    anchors: Option<AhoCorasick>,
    /// The same automaton without its SIMD prefilter, cheaper to start on a short stream chunk.
    anchors_short: Option<AhoCorasick>,
    /// The same anchors by first byte, for texts under [`TINY_HAYSTACK`] bytes.
    anchors_tiny: TinyAnchors,
    anchor_kinds: Vec<Anchor>,
    /// Every proper prefix of an enabled anchor, for the tail hold.
    anchor_prefixes: PrefixSet,
    numbers: bool,
    /// Whether a digit-led national id is on (`natid.rs`).
    pub natid_digits: bool,
    /// Whether a letter-led national id (NIE, codice fiscale) is on.
    pub natid_letters: bool,
    pub custom: Custom,
    /// Terms exempt from their types (`allow.rs`), dropped from each round's candidates.
    pub allow: Allow,
}

impl Detectors {
    /// Compiles the enabled built-ins and the operator rules.
    pub fn new(enabled: [bool; BUILTIN_COUNT], custom: Custom) -> Detectors {
        let mut pats = Vec::new();
        let mut kinds = Vec::new();
        for &(lit, kind, ent) in ANCHORS {
            let on = enabled[ent as usize] || (kind == Anchor::SkDash && enabled[Builtin::AnthropicApiKey as usize]);
            if on {
                pats.push(lit);
                kinds.push(kind);
            }
        }
        let build = |prefilter: bool| {
            (!pats.is_empty()).then(|| {
                AhoCorasickBuilder::new()
                    .match_kind(MatchKind::LeftmostFirst)
                    .kind(Some(AhoCorasickKind::DFA))
                    .prefilter(prefilter)
                    .build(&pats)
                    .expect("built-in anchors are short literals")
            })
        };
        let anchors = build(true);
        let anchors_short = build(false);
        let anchors_tiny = TinyAnchors::new(pats.iter().map(|p| p.as_bytes()).zip(kinds.iter().copied()));
        let anchor_prefixes = PrefixSet::new(pats.iter().map(|p| p.as_bytes()), false);
        let on = |b: Builtin| enabled[b as usize];
        let numbers = [
            Builtin::Phone,
            Builtin::UsSsn,
            Builtin::CreditCard,
            Builtin::Iban,
            Builtin::IpAddress,
            Builtin::AwsSecretAccessKey,
        ]
        .into_iter()
        .any(on)
            || natid::DIGIT_LED.into_iter().any(on);
        let natid_letters = on(Builtin::EsNie) || on(Builtin::ItFiscalCode);
        let natid_digits = natid::DIGIT_LED.into_iter().any(on);
        Detectors {
            enabled,
            natid_digits,
            natid_letters,
            anchors,
            anchors_short,
            anchors_tiny,
            anchor_kinds: kinds,
            anchor_prefixes,
            numbers,
            custom,
            allow: Allow::default(),
        }
    }

    /// Whether built-in `b` is compiled in.
    #[inline]
    pub fn on(&self, b: Builtin) -> bool {
        self.enabled[b as usize]
    }

    /// Normalized bytes a stream must keep before its emit point.
    pub fn context_len(&self) -> usize {
        MIN_CONTEXT.max(self.custom.max_len() + 2)
    }

    /// Finds every candidate starting at or after `base` in `v` and returns the lowest start whose
    /// answer still depends on text not yet seen (`v.t.len()` when none, always at end of stream).
    /// Decided operator-pattern matches below that bound are added to `cands` too.
    pub fn round(&self, v: &View, base: usize, cs: &mut CustomState, cands: &mut Vec<Cand>) -> usize {
        let n = v.t.len();
        let mut out = Out {
            cands,
            undecided: n,
            base,
        };
        let mut memo = Memo::default();
        let ac = if n - base < SHORT_HAYSTACK {
            &self.anchors_short
        } else {
            &self.anchors
        };
        if n - base < TINY_HAYSTACK {
            // the same starts as the automaton's search below, in the same order
            let mut at = base;
            while let Some((s, kind)) = self.anchors_tiny.find(v.t, at) {
                secrets::anchored(self, v, s, kind, &mut memo, &mut out);
                at = s + 1;
            }
        } else if let Some(ac) = ac {
            // leftmost-first keeps the SIMD (Teddy) prefilter; restarting one byte after each
            // match start still finds every anchor, overlapping or not (no two anchors share a
            // start, so leftmost-first loses nothing at a position)
            let mut at = base;
            while let Some(m) = ac.find(Input::new(v.t).range(at..n)) {
                let s = m.start();
                let kind = self.anchor_kinds[m.pattern().as_usize()];
                secrets::anchored(self, v, s, kind, &mut memo, &mut out);
                at = s + 1;
            }
        }
        let want_at = self.on(Builtin::Email);
        let want_colon = self.on(Builtin::IpAddress);
        if want_at || want_colon || self.numbers {
            for_each_trigger(v.t, base, |j| match v.t[j] {
                b'@' if want_at => {
                    pii::email(v, j, &mut out);
                    j + 1
                }
                b':' if want_colon => pii::ipv6(v, j, &mut memo, &mut out),
                b'0'..=b'9' if self.numbers => self.digit(v, j, &mut memo, &mut out),
                _ => j + 1,
            });
        }
        let (person, address) = (self.on(Builtin::Person), self.on(Builtin::Address));
        if person || address {
            names::round(person, address, v, base, &mut out);
        }
        if self.on(Builtin::DateOfBirth) {
            names::birth_dates(v, base, &mut out);
        }
        self.custom.round(v, base, cs, &mut out);
        if !v.eof {
            self.tail_hold(v, &mut out);
        }
        let c = out.undecided;
        cs.take_decided(c, base, out.cands);
        self.allow.retain(v.t, out.cands);
        c
    }

    fn digit(&self, v: &View, j: usize, memo: &mut Memo, out: &mut Out) -> usize {
        let t = v.t;
        if self.on(Builtin::AwsSecretAccessKey) && j >= memo.aws_done {
            secrets::aws_secret(v, j, memo, out);
        }
        if prev(t, j).is_some_and(|b| b.is_ascii_digit()) {
            return j + 1;
        }
        pii::numbers(self, v, j, out);
        // skip the rest of the digit run: only a run's first digit starts a number
        let mut k = j + 1;
        while k < t.len() && t[k].is_ascii_digit() {
            if self.on(Builtin::AwsSecretAccessKey) && k >= memo.aws_done {
                return k;
            }
            k += 1;
        }
        k
    }

    /// Holds for candidates whose anchor has not arrived yet, at the end of an unfinished buffer.
    fn tail_hold(&self, v: &View, out: &mut Out) {
        let t = v.t;
        let n = t.len();
        if n == 0 {
            return;
        }
        // a partial secret anchor: `gh`, `-----BE`, `sk`
        if let Some(s) = self.anchor_prefixes.longest_suffix(t, out.base) {
            out.hold(s);
        }
        // a local part waiting for its `@` (also covers IBAN letters, IPv6 hex before a `:` and the
        // letters that start a NIE or a codice fiscale)
        if self.on(Builtin::Email) || self.on(Builtin::Iban) || self.on(Builtin::IpAddress) || self.natid_letters {
            let mut s = n;
            while s > 0 && n - s < pii::MAX_LOCAL && is(LOCAL, t[s - 1]) {
                s -= 1;
            }
            if s < n {
                out.hold_from(s);
            }
        }
        // a base64 token that may still become a 40-character AWS secret
        if self.on(Builtin::AwsSecretAccessKey) {
            let mut s = n;
            while s > 0 && n - s <= secrets::AWS_SECRET_LEN && is(B64, t[s - 1]) {
                s -= 1;
            }
            if s < n && n - s <= secrets::AWS_SECRET_LEN {
                out.hold_from(s);
            }
        }
        // a `+` or `(` waiting for the digits of a phone number
        if self.on(Builtin::Phone) {
            let mut s = n;
            while s > 0 && n - s < 2 && matches!(t[s - 1], b'+' | b'(') {
                s -= 1;
            }
            if s < n {
                out.hold_from(s);
            }
        }
        self.custom.tail_hold(v, out);
    }
}

/// Calls `f(j)` for every `j >= from` where `t[j]` is a digit, `:` or `@`; `f` returns where to
/// continue (`> j`), so a parser can skip the bytes it has covered.
pub fn for_each_trigger(t: &[u8], from: usize, mut f: impl FnMut(usize) -> usize) {
    let n = t.len();
    let mut i = from;
    // The last bytes (most JSON keys and values are all of their text) are read from a copy padded
    // with zeros, which are no trigger.
    let mut tail = [0u8; 16];
    'outer: while i < n {
        let block = if i + 16 <= n {
            &t[i..i + 16]
        } else {
            tail[..n - i].copy_from_slice(&t[i..]);
            &tail[..]
        };
        let mut m = trigger_mask16(block);
        while m != 0 {
            let j = i + m.trailing_zeros() as usize;
            let r = f(j).max(j + 1);
            if r >= i + 16 {
                i = r;
                continue 'outer;
            }
            m &= !0u32 << (r - i);
        }
        i += 16;
    }
}

#[cfg(any(test, not(target_arch = "x86_64")))]
#[inline(always)]
fn is_trigger(b: u8) -> bool {
    (b'0'..=b':').contains(&b) || b == b'@'
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn trigger_mask16(block: &[u8]) -> u32 {
    use std::arch::x86_64::{
        __m128i, _mm_add_epi8, _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    debug_assert!(block.len() >= 16);
    // SAFETY: `block` has at least 16 readable bytes (callers slice exactly 16) and SSE2 is part of
    // the x86-64 baseline, so the unaligned load and the SSE2 intrinsics are always available.
    unsafe {
        let x = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
        // '0'..=':' is 0x30..=0x3A: shift it to 0x80..=0x8A, the smallest signed bytes
        let shifted = _mm_add_epi8(x, _mm_set1_epi8(0x50));
        let digit_or_colon = _mm_cmplt_epi8(shifted, _mm_set1_epi8(-128 + 11));
        let at = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'@' as i8));
        _mm_movemask_epi8(_mm_or_si128(digit_or_colon, at)) as u32
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn trigger_mask16(block: &[u8]) -> u32 {
    block[..16]
        .iter()
        .enumerate()
        .fold(0, |m, (k, &b)| m | (u32::from(is_trigger(b)) << k))
}

/// The end of the run of base64 bytes (`[A-Za-z0-9+/]`) starting at `from`, looking no further
/// than `limit`: 16 bytes at a time.
pub fn b64_run_end(t: &[u8], from: usize, limit: usize) -> usize {
    let limit = limit.min(t.len());
    let mut i = from;
    // most runs around a digit are short: a few bytes one by one before the blocks
    let quick = (from + 4).min(limit);
    while i < quick {
        if !is(B64, t[i]) {
            return i;
        }
        i += 1;
    }
    while i + 16 <= limit {
        let m = !b64_mask16(&t[i..i + 16]) & 0xFFFF;
        if m != 0 {
            return i + m.trailing_zeros() as usize;
        }
        i += 16;
    }
    while i < limit && is(B64, t[i]) {
        i += 1;
    }
    i
}

/// The start of the run of base64 bytes ending at `to` (exclusive), looking no further back than
/// `lo`: 16 bytes at a time.
pub fn b64_run_start(t: &[u8], to: usize, lo: usize) -> usize {
    let mut i = to;
    let quick = to.saturating_sub(4).max(lo);
    while i > quick {
        if !is(B64, t[i - 1]) {
            return i;
        }
        i -= 1;
    }
    while i >= lo + 16 {
        let m = !b64_mask16(&t[i - 16..i]) & 0xFFFF;
        if m != 0 {
            return i - 16 + (32 - m.leading_zeros()) as usize;
        }
        i -= 16;
    }
    while i > lo && is(B64, t[i - 1]) {
        i -= 1;
    }
    i
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn b64_mask16(block: &[u8]) -> u32 {
    use std::arch::x86_64::{
        __m128i, _mm_add_epi8, _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    debug_assert!(block.len() >= 16);
    // SAFETY: as in `trigger_mask16`: 16 readable bytes, SSE2 is baseline on x86-64.
    unsafe {
        let x = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
        // a range [lo, lo + len) test: shift lo to -128, then one signed compare
        let digit = _mm_cmplt_epi8(_mm_add_epi8(x, _mm_set1_epi8(0x50)), _mm_set1_epi8(-128 + 10));
        let folded = _mm_or_si128(x, _mm_set1_epi8(0x20));
        let letter = _mm_cmplt_epi8(_mm_add_epi8(folded, _mm_set1_epi8(0x1F)), _mm_set1_epi8(-128 + 26));
        let plus = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'+' as i8));
        let slash = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'/' as i8));
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(digit, letter), _mm_or_si128(plus, slash))) as u32
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn b64_mask16(block: &[u8]) -> u32 {
    block[..16]
        .iter()
        .enumerate()
        .fold(0, |m, (k, &b)| m | (u32::from(is(B64, b)) << k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b64_runs_match_the_byte_classes() {
        let bytes: Vec<u8> = (0u8..=255).chain(b"aZ09+/".iter().copied()).collect();
        let mut x: u64 = 3;
        for _ in 0..300 {
            let t: Vec<u8> = (0..80)
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    // mostly base64, sometimes any byte
                    let r = (x >> 33) as usize;
                    if r.is_multiple_of(7) {
                        bytes[r % bytes.len()]
                    } else {
                        b"aZ09+/xQ"[r % 8]
                    }
                })
                .collect();
            for from in 0..t.len() {
                for limit in [from, from + 1, from + 17, from + 41, t.len(), t.len() + 5] {
                    let mut e = from;
                    while e < limit.min(t.len()) && is(B64, t[e]) {
                        e += 1;
                    }
                    assert_eq!(b64_run_end(&t, from, limit), e, "{t:?} {from} {limit}");
                }
                for lo in [
                    0,
                    from.saturating_sub(1),
                    from.saturating_sub(17),
                    from.saturating_sub(41),
                    from,
                ] {
                    let mut s = from;
                    while s > lo && is(B64, t[s - 1]) {
                        s -= 1;
                    }
                    assert_eq!(b64_run_start(&t, from, lo), s, "{t:?} {from} {lo}");
                }
            }
        }
    }

    #[test]
    fn trigger_scan_finds_exactly_the_trigger_bytes() {
        let text: Vec<u8> = (0u8..=255)
            .chain(b"abc 12:34@x ".iter().copied())
            .cycle()
            .take(1000)
            .collect();
        let mut got = Vec::new();
        for_each_trigger(&text, 3, |j| {
            got.push(j);
            j + 1
        });
        let want: Vec<usize> = (3..text.len()).filter(|&j| is_trigger(text[j])).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn trigger_scan_of_short_texts_and_tails_finds_exactly_the_trigger_bytes() {
        let pattern = b"a1:@ b 9z@@0";
        for len in 0..=40 {
            let text: Vec<u8> = pattern.iter().copied().cycle().skip(len % 5).take(len).collect();
            for from in 0..=len {
                for skip in [1, 2, 7] {
                    let mut got = Vec::new();
                    for_each_trigger(&text, from, |j| {
                        got.push(j);
                        j + skip
                    });
                    let mut want = Vec::new();
                    let mut j = from;
                    while j < len {
                        if is_trigger(text[j]) {
                            want.push(j);
                            j += skip;
                        } else {
                            j += 1;
                        }
                    }
                    assert_eq!(got, want, "{text:?} {from} {skip}");
                }
            }
        }
    }

    #[test]
    fn trigger_scan_honours_skips() {
        let text = b"0123456789012345678901234567890123456789 @ 9";
        let mut got = Vec::new();
        for_each_trigger(text, 0, |j| {
            got.push(j);
            if j == 0 {
                40
            } else {
                j + 1
            }
        });
        assert_eq!(got, vec![0, 41, 43]);
    }

    #[test]
    fn tiny_anchors_find_what_the_automaton_finds() {
        let enabled = [true; BUILTIN_COUNT];
        let d = Detectors::new(enabled, Custom::default());
        let ac = d.anchors_short.as_ref().unwrap();
        let pieces: Vec<&[u8]> = ANCHORS.iter().map(|(lit, _, _)| lit.as_bytes()).collect();
        let mut x: u64 = 7;
        for _ in 0..20_000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let mut t = Vec::new();
            while t.len() < (x >> 58) as usize {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let piece = pieces[(x >> 33) as usize % pieces.len()];
                // an anchor, a cut anchor, or a byte of one
                match (x >> 20) % 3 {
                    0 => t.extend_from_slice(piece),
                    1 => t.extend_from_slice(&piece[..piece.len() / 2 + 1]),
                    _ => t.push(piece[(x >> 40) as usize % piece.len()]),
                }
            }
            for from in [0, 1, t.len() / 2] {
                let from = from.min(t.len());
                let want = ac
                    .find(Input::new(&t).range(from..t.len()))
                    .map(|m| (m.start(), d.anchor_kinds[m.pattern().as_usize()]));
                assert_eq!(
                    d.anchors_tiny.find(&t, from),
                    want,
                    "{:?} {from}",
                    String::from_utf8_lossy(&t)
                );
            }
        }
    }

    #[test]
    fn no_anchor_is_a_prefix_of_another() {
        // leftmost-first search relies on it: at most one anchor can match at a position
        for (a, _, _) in ANCHORS {
            for (b, _, _) in ANCHORS {
                assert!(a == b || !b.starts_with(a), "{a} / {b}");
            }
        }
    }

    #[test]
    fn prefix_sets() {
        let p = PrefixSet::new([&b"ghp_"[..], b"github_pat_", b"-----BEGIN"], false);
        assert_eq!(p.longest_suffix(b"xx gh", 0), Some(3));
        assert_eq!(p.longest_suffix(b"xx gh", 4), None);
        assert_eq!(p.longest_suffix(b"a github_pa", 0), Some(2));
        assert_eq!(p.longest_suffix(b"a ghp_", 0), None);
        assert_eq!(p.longest_suffix(b"---", 0), Some(0));
        assert_eq!(p.longest_suffix(b"", 0), None);
        let k = PrefixSet::new([&b"Blue Bird"[..], b"c++"], true);
        assert_eq!(k.longest_suffix(b"a BLUE b", 0), Some(2));
        assert_eq!(k.longest_suffix(b"a C+", 0), Some(2));
        assert_eq!(k.longest_suffix(b"a blue", 3), None);
    }

    #[test]
    fn classes() {
        assert!(word(b'_') && word(b'Z') && !word(b'-') && !word(0xE3));
        assert!(is(LOCAL, b'+') && !is(LOCAL, b'@'));
        assert!(is(B64, b'/') && !is(B64, b'_'));
        assert!(is(PEMBODY, b'\n') && !is(PEMBODY, b'.'));
    }

    #[test]
    fn context_words_need_a_word_start() {
        const TEL: ContextWords = ContextWords::new(&[b"tel"]);
        const WORDS: ContextWords = ContextWords::new(&[b"phone", b"ssn", b"t\xc3\xa9l", b"social security"]);
        let t = b"hotel 123, tel: 456";
        assert!(!context_before(t, 6, 40, &TEL));
        assert!(context_before(t, 16, 40, &TEL));
        assert!(context_before(b"Phone 1", 6, 40, &WORDS));
        assert!(context_before(b"SOCIAL SECURITY 1", 16, 40, &WORDS));
        assert!(context_before("N° de tél 1".as_bytes(), 13, 40, &WORDS));
        assert!(!context_before(b"assn 1", 5, 40, &WORDS));
        assert!(!context_before(b"phone 1", 6, 3, &WORDS));
    }
}
