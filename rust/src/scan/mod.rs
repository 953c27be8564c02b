//! PII and secret scanning: find, redact, and redact a stream chunk by chunk.
//!
//! # Design
//!
//! A [`Scanner`] is compiled once from plain data ([`Rules`]: which built-in entities, operator
//! regexes, operator keywords) and is then immutable, cheap to clone and shared by threads. A scan
//! works on a *normalized view* of the text (`normalize.rs`: invisible characters removed,
//! full-width and other digits, Unicode spaces, dashes and dots folded to ASCII, HTML character
//! references, percent-encoding and JSON escapes decoded one level, hard line wraps inside numbers
//! joined) with a map back to the original, so a value hidden with zero-width characters, written
//! with en dashes or as `maria&#64;example.com` is found and its whole original span, escapes
//! included, is redacted. ASCII text with nothing to decode is its own view (no copy). Detection is one
//! Aho-Corasick pass over the literal anchors of the secrets plus one SIMD pass that stops only at
//! digits, `:` and `@`; hand-written parsers and validators (Luhn, mod-97, SSN rules, NANP, IPv4/6,
//! entropy floors) decide each candidate, and the `regex` crate (linear time, no backtracking) runs
//! only operator patterns. The opt-in `PERSON` and `ADDRESS` (`names/`) parse from word starts
//! with a shipped name lexicon and street-type words. Overlaps are resolved leftmost-longest. Findings are `(entity, start,
//! end)` byte offsets into the original text and never carry the value; [`char_offsets`] turns them
//! into the character offsets Python uses.
//!
//! Every parser either decides from the bytes it has or says it needs more (`detectors.rs`), which
//! is what lets a [`StreamScanner`] emit exactly the prefix that no later text can change: fed in
//! any chunks, it produces the same text and findings as [`Scanner::redact`] on the whole, and
//! holds back at most [`Scanner::max_holdback`] characters. Nothing here panics on any input or
//! takes more than linear time (parsers are bounded, repeated scans are memoized).
//!
//! # Example
//!
//! ```
//! use _core::scan::{Rules, Scanner};
//!
//! let scanner = Scanner::new(&Rules::default()).unwrap();
//! let (text, found) = scanner.redact("mail bob@example.com", "[{entity}]");
//! assert_eq!(text, "mail [EMAIL]");
//! assert_eq!((scanner.entity_name(found[0].entity), found[0].start, found[0].end), ("EMAIL", 5, 20));
//! ```

mod allow;
mod custom;
mod detectors;
mod entity;
mod error;
mod json;
mod names;
mod natid;
mod normalize;
mod pii;
mod redact;
mod secrets;
mod stream;
mod validate;

use std::sync::Arc;

pub use allow::MAX_ALLOW_LEN;
pub use custom::{MAX_KEYWORD_LEN, MAX_PATTERN_LEN};
pub use entity::{Builtin, EntityId, BUILTIN_COUNT};
pub use error::ScanError;
pub use json::{json_findings, json_has_finding, JsonFindings, MAX_NESTED as MAX_JSON_NESTED};
pub use secrets::{JWT_CAP, PEM_CAP};
pub use stream::{StreamFinding, StreamScanner};

use custom::Custom;
use detectors::{Cand, Detectors};
use normalize::{needs_view, NormBuf, View, MAP_LIMIT, MAX_ORIG_PER_BYTE, MAX_SEQ};
use redact::{resolve, Template};

/// The rules a [`Scanner`] is compiled from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    /// Built-in entity names to detect; `None` for those on by default (all but `PERSON`,
    /// `ADDRESS` and `DATE_OF_BIRTH`, see [`default_entities`]).
    pub entities: Option<Vec<String>>,
    /// Operator patterns: `(ENTITY_NAME, regex)`.
    pub custom_patterns: Vec<(String, String)>,
    /// Operator keywords: `(ENTITY_NAME, words)`, ASCII case-insensitive, whole words.
    pub keywords: Vec<(String, Vec<String>)>,
    /// Thresholds: `(ENTITY_NAME, confidence)`, 0 to 100; a finding whose confidence is below its
    /// type's threshold is not redacted (see [`Scanner::scan_scored`]). Types not listed keep
    /// [`Builtin::default_min_confidence`] (0 for operator types).
    pub min_confidence: Vec<(String, u8)>,
    /// Allowed terms: `(ENTITY_NAME, terms)`; a candidate of that type whose whole text is one of
    /// the terms (lower-cased, white space folded) is not a finding (see `allow.rs`).
    pub allow: Vec<(String, Vec<String>)>,
}

/// A finding in a text: entity id and byte offsets `[start, end)` into the original text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    /// Entity id (see [`Scanner::entity_name`]).
    pub entity: EntityId,
    /// Start offset.
    pub start: usize,
    /// End offset (exclusive).
    pub end: usize,
    /// How sure the detector is, 0 to 100 ([`Builtin::confidence`]).
    pub confidence: u8,
}

/// Most spaces or tabs read as one space: between the words of a name or an address and between
/// the groups of a number (`Maria  Schmidt`, `4111\t1111  1111 1111`), so a second space or a tab
/// is no way around a parser; a longer run (a table's columns) joins nothing. The one rule of
/// `names/read.rs` (`gap_at`) and `pii.rs` (`blank_run`).
pub(crate) const MAX_BLANK: usize = 4;

/// The longest candidate of any built-in without a cap, in normalized bytes (an e-mail: 64-byte
/// local part, `@`, 253-byte domain, with look-ahead; tokens are at most 260; an SSN or card in
/// any of its written forms at most [`pii::MAX_NUMBER`], a national id at most
/// [`natid::MAX_READ`]).
const SMALL_MAX: usize = 512;
const _: () = assert!(pii::MAX_NUMBER < SMALL_MAX && natid::MAX_READ < SMALL_MAX);
const _: () = assert!(names::MAX_SPAN < SMALL_MAX && names::LOOK_BEHIND < detectors::MIN_CONTEXT);

pub(crate) struct Inner {
    det: Detectors,
    names: Vec<String>,
    enabled: Vec<EntityId>,
    /// Threshold per entity id (see [`Rules::min_confidence`]).
    pub(crate) min_conf: Vec<u8>,
    max_holdback: usize,
}

/// A compiled rule set. Clones share the compiled automata.
#[derive(Clone)]
pub struct Scanner {
    pub(crate) inner: Arc<Inner>,
}

/// Names of every built-in entity, in id order.
pub fn builtin_entities() -> impl Iterator<Item = &'static str> {
    Builtin::ALL.into_iter().map(Builtin::name)
}

/// Names of the built-ins a scanner compiled without an entity list detects, in id order.
pub fn default_entities() -> impl Iterator<Item = &'static str> {
    Builtin::ALL
        .into_iter()
        .filter(|b| b.on_by_default())
        .map(Builtin::name)
}

impl Scanner {
    /// Compiles `rules`.
    ///
    /// # Errors
    ///
    /// [`ScanError`] for an unknown built-in name, a malformed entity name, an invalid operator
    /// regex (or one that can match the empty string, or whose match length is unbounded or over
    /// [`MAX_PATTERN_LEN`]), or an empty keyword list or keyword.
    ///
    /// # Example
    ///
    /// ```
    /// use _core::scan::{Rules, Scanner};
    ///
    /// let rules = Rules {
    ///     entities: Some(vec!["US_SSN".into()]),
    ///     custom_patterns: vec![("EMPLOYEE_ID".into(), r"\bEMP-\d{6}\b".into())],
    ///     keywords: vec![("PROJECT".into(), vec!["bluebird".into()])],
    ///     min_confidence: vec![("US_SSN".into(), 90)],
    ///     allow: vec![("PROJECT".into(), vec!["Bluebird".into()])],
    /// };
    /// let scanner = Scanner::new(&rules).unwrap();
    /// assert_eq!(scanner.entities().collect::<Vec<_>>(), ["US_SSN", "EMPLOYEE_ID", "PROJECT"]);
    /// assert!(scanner.scan("the BLUEBIRD project").is_empty()); // an allowed term
    /// assert!(Scanner::new(&Rules { custom_patterns: vec![("X".into(), "a*".into())], ..Rules::default() }).is_err());
    /// ```
    pub fn new(rules: &Rules) -> Result<Scanner, ScanError> {
        let mut enabled_builtin = [false; BUILTIN_COUNT];
        let mut enabled: Vec<EntityId> = Vec::new();
        match &rules.entities {
            None => enabled_builtin = Builtin::ALL.map(Builtin::on_by_default),
            Some(list) => {
                for (i, name) in list.iter().enumerate() {
                    let b = Builtin::from_name(name).ok_or_else(|| ScanError::unknown_entity(i, name))?;
                    enabled_builtin[b as usize] = true;
                }
            }
        }
        enabled.extend(
            Builtin::ALL
                .iter()
                .filter(|b| enabled_builtin[**b as usize])
                .map(|b| b.id()),
        );
        let mut names: Vec<String> = builtin_entities().map(str::to_string).collect();
        let mut intern = |what: &'static str, i: usize, name: &str| -> Result<EntityId, ScanError> {
            if !entity::is_valid_name(name) {
                return Err(ScanError::invalid_name(what, i));
            }
            let id = match names.iter().position(|n| n == name) {
                Some(id) => id,
                None => {
                    if names.len() >= usize::from(EntityId::MAX) {
                        return Err(ScanError::too_many_entities(usize::from(EntityId::MAX)));
                    }
                    names.push(name.to_string());
                    names.len() - 1
                }
            } as EntityId;
            if !enabled.contains(&id) {
                enabled.push(id);
            }
            Ok(id)
        };
        let mut pats = Vec::with_capacity(rules.custom_patterns.len());
        for (i, (name, re)) in rules.custom_patterns.iter().enumerate() {
            pats.push((intern("custom_patterns", i, name)?, re.as_str()));
        }
        let mut kws = Vec::with_capacity(rules.keywords.len());
        for (i, (name, words)) in rules.keywords.iter().enumerate() {
            kws.push((intern("keywords", i, name)?, words.as_slice()));
        }
        let custom = Custom::compile(&pats, &kws, &|id| names[usize::from(id)].clone())?;
        let mut det = Detectors::new(enabled_builtin, custom);
        if det.on(Builtin::Person) {
            names::warm();
        }
        let small = SMALL_MAX.max(det.custom.max_len() + 2);
        // every held normalized byte may stand for a whole escape sequence and a removed run, and
        // a sequence cut by the end of the last chunk waits before the view
        let mut max_holdback = (small + 1) * MAX_ORIG_PER_BYTE + MAX_SEQ;
        if det.on(Builtin::PrivateKey) {
            max_holdback = max_holdback.max(PEM_CAP as usize);
        }
        if det.on(Builtin::Jwt) {
            max_holdback = max_holdback.max(JWT_CAP as usize);
        }
        let mut min_conf: Vec<u8> = (0..names.len())
            .map(|id| Builtin::ALL.get(id).map_or(0, |b| b.default_min_confidence()))
            .collect();
        for (i, (name, conf)) in rules.min_confidence.iter().enumerate() {
            match names.iter().position(|n| n == name) {
                Some(id) if *conf <= 100 && enabled.contains(&(id as EntityId)) => min_conf[id] = *conf,
                _ => return Err(ScanError::bad_threshold(i, name)),
            }
        }
        for (i, (name, list)) in rules.allow.iter().enumerate() {
            let id = match names.iter().position(|n| n == name) {
                Some(id) if enabled.contains(&(id as EntityId)) => id as EntityId,
                _ => return Err(ScanError::bad_allow(i, name, None)),
            };
            det.allow
                .add(id, list)
                .map_err(|term| ScanError::bad_allow(i, name, Some(term)))?;
        }
        Ok(Scanner {
            inner: Arc::new(Inner {
                det,
                names,
                enabled,
                min_conf,
                max_holdback,
            }),
        })
    }

    /// Names of the compiled entity types: enabled built-ins in id order, then operator names.
    pub fn entities(&self) -> impl Iterator<Item = &str> {
        self.inner.enabled.iter().map(|&id| self.entity_name(id))
    }

    /// The id of the `i`-th compiled entity type (in [`Scanner::entities`] order).
    pub fn entity_id(&self, i: usize) -> EntityId {
        self.inner.enabled[i]
    }

    /// The name of entity `id` (as found in a [`Finding`]).
    pub fn entity_name(&self, id: EntityId) -> &str {
        self.inner.names.get(usize::from(id)).map_or("", String::as_str)
    }

    /// The threshold of entity `id`: findings below it are not redacted.
    pub fn min_confidence(&self, id: EntityId) -> u8 {
        self.inner.min_conf.get(usize::from(id)).copied().unwrap_or(0)
    }

    /// Whether finding `f` reaches its type's threshold (is redacted).
    pub fn acts_on(&self, entity: EntityId, confidence: u8) -> bool {
        confidence >= self.min_confidence(entity)
    }

    /// The most characters a [`StreamScanner`] of this scanner holds back at any time.
    pub fn max_holdback(&self) -> usize {
        self.inner.max_holdback
    }

    /// Finds every entity in `text` that reaches its type's threshold: sorted, non-overlapping,
    /// byte offsets.
    pub fn scan(&self, text: &str) -> Vec<Finding> {
        let mut found = self.scan_scored(text);
        found.retain(|f| self.acts_on(f.entity, f.confidence));
        found
    }

    /// Finds every entity in `text`, those below their threshold too: sorted, non-overlapping,
    /// byte offsets. The spans are chosen before the thresholds apply (leftmost-longest over all
    /// candidates), so [`Scanner::scan`] is this list without the findings below their threshold,
    /// and a stream gives the same split for any chunking.
    pub fn scan_scored(&self, text: &str) -> Vec<Finding> {
        let mut cands = Vec::new();
        let mut cs = self.inner.det.custom.new_state();
        let mut acc = Vec::new();
        let to_finding = |c: &Cand, v: &View| Finding {
            entity: c.entity,
            start: v.orig(c.start) as usize,
            end: v.orig_end(c.end - 1) as usize,
            confidence: c.conf,
        };
        if !needs_view(text.as_bytes()) {
            let v = View::identity(text.as_bytes(), 0, true);
            let c = self.inner.det.round(&v, 0, &mut cs, &mut cands);
            resolve(&mut cands, 0, c, &mut acc);
            acc.iter().map(|c| to_finding(c, &v)).collect()
        } else if text.len() as u64 <= MAP_LIMIT {
            let mut nb = NormBuf::new(0);
            nb.push(text);
            nb.finish();
            let v = View::mapped(&nb, true);
            let c = self.inner.det.round(&v, 0, &mut cs, &mut cands);
            resolve(&mut cands, 0, c, &mut acc);
            acc.iter().map(|c| to_finding(c, &v)).collect()
        } else {
            // beyond the map's reach: the stream gives the same answer in bounded memory
            let mut st = self.stream("");
            let (mut out, mut found) = (String::new(), Vec::new());
            // infallible: the stream is new
            let _ = st.feed(text, &mut out, &mut found);
            st.finish(&mut out, &mut found);
            found.extend(st.take_quiet());
            let mut all: Vec<Finding> = found
                .iter()
                .map(|f| Finding {
                    entity: f.entity,
                    start: f.start_byte as usize,
                    end: f.end_byte as usize,
                    confidence: f.confidence,
                })
                .collect();
            all.sort_unstable_by_key(|f| f.start);
            all
        }
    }

    /// Redacts `text`: every finding becomes `template` with `{entity}` replaced by its name.
    /// Returns the new text and the findings (offsets into the original `text`).
    pub fn redact(&self, text: &str, template: &str) -> (String, Vec<Finding>) {
        let found = self.scan(text);
        (self.apply(text, &found, template), found)
    }

    /// Writes `text` with `found` (as returned by [`Scanner::scan`]) replaced by `template`.
    pub fn apply(&self, text: &str, found: &[Finding], template: &str) -> String {
        if found.is_empty() {
            return text.to_string();
        }
        let tpl = Template::new(template);
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for f in found {
            out.push_str(&text[at..f.start]);
            tpl.push(&mut out, self.entity_name(f.entity));
            at = f.end;
        }
        out.push_str(&text[at..]);
        out
    }

    /// A new stream redactor writing `template` for each finding.
    pub fn stream(&self, template: &str) -> StreamScanner {
        StreamScanner::new(self.clone(), template)
    }
}

/// Converts byte offsets of `found` (sorted, from [`Scanner::scan`] on `text`) to character
/// offsets, in place. One pass over `text`; nothing to do for ASCII text.
pub fn char_offsets(text: &str, found: &mut [Finding]) {
    if found.is_empty() || text.is_ascii() {
        return;
    }
    let bytes = text.as_bytes();
    let (mut byte, mut chars) = (0usize, 0usize);
    let mut advance = |to: usize| {
        chars += bytes[byte..to].iter().filter(|&&b| (b as i8) >= -0x40).count();
        byte = to;
        chars
    };
    for f in found.iter_mut() {
        f.start = advance(f.start);
        f.end = advance(f.end);
    }
}

#[cfg(test)]
pub(crate) mod tests;
