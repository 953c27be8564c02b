//! Operator rules: regex patterns and keyword lists, compiled once next to the built-ins.
//!
//! Patterns run on the normalized view (so they see `4111` for `４１１１` too) with the `regex`
//! crate: linear time, no backtracking. Each must have a bounded match length of at most
//! [`MAX_PATTERN_LEN`] bytes and must not match the empty string; both are checked at build time
//! from the parsed pattern. The bound is what lets a stream decide a match: any match starting more
//! than that many bytes before the end of the buffer is final. A pattern's matches are its own
//! leftmost-first, non-overlapping sequence (as `find_iter` gives), which a stream continues across
//! rounds from where it stopped.
//!
//! Keywords are literal words in one Aho-Corasick automaton, ASCII case-insensitive, matched as
//! whole words (ASCII word boundaries; a keyword edge that is not a word byte needs no boundary).

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, Input, MatchKind};
use regex::bytes::{Regex, RegexBuilder};

use super::detectors::{word, Cand, Out, PrefixSet, CUSTOM_CONFIDENCE};
use super::entity::EntityId;
use super::error::ScanError;
use super::normalize::{NormBuf, View};

/// Longest match an operator pattern may have, in bytes of the normalized text.
pub const MAX_PATTERN_LEN: usize = 1024;
/// Longest keyword, in bytes.
pub const MAX_KEYWORD_LEN: usize = 256;

struct Pattern {
    entity: EntityId,
    re: Regex,
    max_len: usize,
}

struct Keywords {
    ac: AhoCorasick,
    entity: Vec<EntityId>,
    /// Whether the keyword's first / last byte is a word byte (and so needs a boundary).
    edge: Vec<(bool, bool)>,
    /// Every proper prefix of a keyword, ignoring ASCII case.
    prefixes: PrefixSet,
    max_len: usize,
}

/// The compiled operator rules.
#[derive(Default)]
pub struct Custom {
    patterns: Vec<Pattern>,
    keywords: Option<Keywords>,
}

/// Per-stream progress of the pattern chains.
#[derive(Clone, Debug, Default)]
pub struct CustomState {
    /// Per pattern: where its `find_iter` sequence continues.
    next: Vec<usize>,
    /// Decided pattern matches not yet resolved against the other detectors.
    pool: Vec<Cand>,
}

impl CustomState {
    /// Moves pool candidates starting below `c` into `cands` (dropping those below `base`).
    pub fn take_decided(&mut self, c: usize, base: usize, cands: &mut Vec<Cand>) {
        let k = self.pool.partition_point(|x| x.start < c);
        cands.extend(self.pool.drain(..k).filter(|x| x.start >= base));
    }

    /// Forgets pool candidates starting below `p` (covered by an emitted finding).
    pub fn discard_before(&mut self, p: usize) {
        let k = self.pool.partition_point(|x| x.start < p);
        self.pool.drain(..k);
    }

    /// Shifts positions after the first `k` view bytes were dropped.
    pub fn shift(&mut self, k: usize) {
        for x in &mut self.next {
            *x = x.saturating_sub(k);
        }
        for c in &mut self.pool {
            c.start -= k;
            c.end -= k;
        }
    }
}

impl Custom {
    /// Compiles `(entity, regex)` patterns and `(entity, words)` keyword lists; `names` resolves an
    /// entity id for error messages.
    ///
    /// # Errors
    ///
    /// [`ScanError`] for an invalid regex, one that can match the empty string or has no bound (or
    /// a bound over [`MAX_PATTERN_LEN`]) on its match length, an empty keyword list, or an empty or
    /// oversized keyword.
    pub fn compile(
        patterns: &[(EntityId, &str)],
        keywords: &[(EntityId, &[String])],
        names: &dyn Fn(EntityId) -> String,
    ) -> Result<Custom, ScanError> {
        let mut out = Custom::default();
        for (index, &(entity, pat)) in patterns.iter().enumerate() {
            let name = names(entity);
            let hir = regex_syntax::ParserBuilder::new()
                .build()
                .parse(pat)
                .map_err(|_| ScanError::invalid_regex(index, &name, "syntax error"))?;
            let props = hir.properties();
            if props.minimum_len().is_none_or(|m| m == 0) {
                return Err(ScanError::empty_match(index, &name));
            }
            let max_len = match props.maximum_len() {
                Some(m) if m <= MAX_PATTERN_LEN => m,
                _ => return Err(ScanError::unbounded(index, &name, MAX_PATTERN_LEN)),
            };
            let re = RegexBuilder::new(pat).size_limit(1 << 22).build().map_err(|e| {
                let reason = match e {
                    regex::Error::CompiledTooBig(_) => "compiled program too big",
                    _ => "syntax error",
                };
                ScanError::invalid_regex(index, &name, reason)
            })?;
            out.patterns.push(Pattern { entity, re, max_len });
        }
        let mut words: Vec<Vec<u8>> = Vec::new();
        let mut entity = Vec::new();
        for &(ent, list) in keywords {
            let name = names(ent);
            if list.is_empty() {
                return Err(ScanError::no_keywords(&name));
            }
            for (index, w) in list.iter().enumerate() {
                let mut nb = NormBuf::new(0);
                nb.push(w.trim());
                nb.finish();
                let bytes = nb.bytes;
                if bytes.is_empty() || bytes.len() > MAX_KEYWORD_LEN || bytes.iter().all(u8::is_ascii_whitespace) {
                    return Err(ScanError::bad_keyword(&name, index, MAX_KEYWORD_LEN));
                }
                if !words
                    .iter()
                    .zip(&entity)
                    .any(|(x, &e): (&Vec<u8>, &EntityId)| e == ent && x.eq_ignore_ascii_case(&bytes))
                {
                    words.push(bytes);
                    entity.push(ent);
                }
            }
        }
        if !words.is_empty() {
            let ac = AhoCorasickBuilder::new()
                .match_kind(MatchKind::Standard)
                .ascii_case_insensitive(true)
                .build(&words)
                .map_err(|_| ScanError::bad_keyword(&names(entity[0]), 0, MAX_KEYWORD_LEN))?;
            let edge = words.iter().map(|w| (word(w[0]), word(w[w.len() - 1]))).collect();
            let prefixes = PrefixSet::new(words.iter().map(Vec::as_slice), true);
            let max_len = words.iter().map(Vec::len).max().unwrap_or(0);
            out.keywords = Some(Keywords {
                ac,
                entity,
                edge,
                prefixes,
                max_len,
            });
        }
        Ok(out)
    }

    /// Longest operator match or keyword, in normalized bytes (0 without rules).
    pub fn max_len(&self) -> usize {
        let p = self.patterns.iter().map(|p| p.max_len).max().unwrap_or(0);
        p.max(self.keywords.as_ref().map_or(0, |k| k.max_len))
    }

    /// A fresh chain state for a new scan or stream.
    pub fn new_state(&self) -> CustomState {
        CustomState {
            next: vec![0; self.patterns.len()],
            pool: Vec::new(),
        }
    }

    /// Adds keyword candidates to `out` and decided pattern matches to `cs`'s pool.
    pub fn round(&self, v: &View, base: usize, cs: &mut CustomState, out: &mut Out) {
        let t = v.t;
        let n = t.len();
        for (j, p) in self.patterns.iter().enumerate() {
            let limit = if v.eof { n } else { n.saturating_sub(p.max_len + 1) };
            let mut pos = cs.next[j];
            while pos < limit {
                match p.re.find_at(t, pos) {
                    Some(m) if m.start() < limit => {
                        // a byte-level pattern may cut a character: widen to whole characters
                        let (start, end) = (char_floor(t, m.start()), char_ceil(t, m.end()));
                        cs.pool.push(Cand {
                            start,
                            end,
                            entity: p.entity,
                            conf: CUSTOM_CONFIDENCE,
                        });
                        pos = m.end().max(m.start() + 1);
                    }
                    _ => pos = limit,
                }
            }
            cs.next[j] = pos;
            if !v.eof {
                out.hold(char_floor(t, pos.max(base)));
            }
        }
        cs.pool.sort_unstable();
        if let Some(k) = &self.keywords {
            for m in k.ac.find_overlapping_iter(Input::new(t).range(base..n)) {
                let (s, e) = (m.start(), m.end());
                let (w0, w1) = k.edge[m.pattern().as_usize()];
                let entity = k.entity[m.pattern().as_usize()];
                if w0 && s > 0 && word(t[s - 1]) {
                    continue;
                }
                if w1 {
                    match t.get(e) {
                        Some(&b) if word(b) => continue,
                        None if !v.eof => {
                            out.hold(s);
                            continue;
                        }
                        _ => {}
                    }
                }
                out.cands.push(Cand {
                    start: s,
                    end: e,
                    entity,
                    conf: CUSTOM_CONFIDENCE,
                });
            }
        }
    }

    /// Holds a partial keyword at the end of an unfinished buffer.
    pub fn tail_hold(&self, v: &View, out: &mut Out) {
        if let Some(k) = &self.keywords {
            if let Some(s) = k.prefixes.longest_suffix(v.t, out.base) {
                out.hold(s);
            }
        }
    }
}

fn is_cont(b: u8) -> bool {
    (b as i8) < -0x40
}

/// The largest character boundary of `t` at or below `i`.
pub fn char_floor(t: &[u8], mut i: usize) -> usize {
    while i > 0 && i < t.len() && is_cont(t[i]) {
        i -= 1;
    }
    i
}

/// The smallest character boundary of `t` at or above `i`.
pub fn char_ceil(t: &[u8], mut i: usize) -> usize {
    while i < t.len() && is_cont(t[i]) {
        i += 1;
    }
    i
}
