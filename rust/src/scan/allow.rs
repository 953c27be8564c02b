//! Allow lists: terms an operator or a policy exempts from entity types (`Rules::allow`), such as a
//! firm named after its founder (`PERSON`) or the public address of a support desk (`EMAIL`).
//!
//! A candidate is exempt when its whole normalized text equals an allowed term of its type, both
//! read the same way: through the scanner's normalization (escapes, no-break spaces, full-width
//! forms), then lower-cased, with every run of white space one space. Nothing else is exempt: a
//! candidate that holds a term and more (`Carl Zeiss Jena` under `Carl Zeiss`) is not, and a term
//! of one type leaves the others alone. Exempt candidates are dropped before the spans are chosen,
//! so another candidate over the same text still competes, and what is dropped is decided by the
//! candidate alone: a stream drops the same ones for any chunking.

use std::collections::HashSet;

use super::detectors::Cand;
use super::entity::EntityId;
use super::normalize::{needs_view, NormBuf};

/// The longest allowed term, in bytes (the longest name or address the readers produce is shorter).
pub const MAX_ALLOW_LEN: usize = 256;

/// The compiled allow list: per type with terms, the set of keys (as [`key_into`] reads a text).
#[derive(Debug)]
pub struct Allow {
    by_entity: Vec<(EntityId, HashSet<Box<[u8]>>)>,
    /// The first bytes of the keys: a candidate whose first byte (lower-cased, when ASCII) is not
    /// one of them is no term, and is not read further.
    first: [bool; 256],
}

impl Default for Allow {
    fn default() -> Allow {
        Allow {
            by_entity: Vec::new(),
            first: [false; 256],
        }
    }
}

/// ASCII white space as `char::is_whitespace` reads it (U+0009 to U+000D and the space).
#[inline]
fn blank(b: u8) -> bool {
    matches!(b, b'\t'..=b'\r' | b' ')
}

/// How a text is compared, written to `out`: lower-cased, each run of white space one space, none
/// at either end (ASCII text without an allocation; the same answer as the general path).
fn key_into(text: &[u8], out: &mut Vec<u8>) {
    out.clear();
    if text.is_ascii() {
        let mut gap = false;
        for &b in text {
            if blank(b) {
                gap = !out.is_empty();
            } else {
                if gap {
                    out.push(b' ');
                    gap = false;
                }
                out.push(b.to_ascii_lowercase());
            }
        }
        return;
    }
    let text = String::from_utf8_lossy(text);
    let mut s = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !s.is_empty() {
            s.push(' ');
        }
        s.extend(word.chars().flat_map(char::to_lowercase));
    }
    out.extend_from_slice(s.as_bytes());
}

/// `term` as the scanner's view reads it.
fn normalized(term: &str) -> Vec<u8> {
    if !needs_view(term.as_bytes()) {
        return term.as_bytes().to_vec();
    }
    let mut nb = NormBuf::new(0);
    nb.push(term);
    nb.finish();
    nb.bytes
}

impl Allow {
    /// Adds `terms` of `entity`; `Err(i)` for the `i`-th term when it is empty, only white space
    /// or longer than [`MAX_ALLOW_LEN`] bytes, and `Err(0)` for an empty list (nothing is added
    /// then).
    pub fn add<S: AsRef<str>>(&mut self, entity: EntityId, terms: &[S]) -> Result<(), usize> {
        let mut keys = Vec::with_capacity(terms.len());
        let mut k = Vec::new();
        for (i, term) in terms.iter().enumerate() {
            let term = term.as_ref();
            key_into(&normalized(term), &mut k);
            if k.is_empty() || term.len() > MAX_ALLOW_LEN {
                return Err(i);
            }
            keys.push(Box::<[u8]>::from(k.as_slice()));
        }
        if keys.is_empty() {
            return Err(0);
        }
        let at = match self.by_entity.iter().position(|(e, _)| *e == entity) {
            Some(at) => at,
            None => {
                self.by_entity.push((entity, HashSet::new()));
                self.by_entity.len() - 1
            }
        };
        for key in keys {
            self.first[usize::from(key[0])] = true;
            self.by_entity[at].1.insert(key);
        }
        Ok(())
    }

    /// Drops the candidates in `cands` (spans of `t`, the normalized view) that are allowed terms
    /// of their type. An open candidate (a capped block still running) is never a term.
    pub fn retain(&self, t: &[u8], cands: &mut Vec<Cand>) {
        if self.by_entity.is_empty() {
            return;
        }
        let mut k = Vec::new();
        cands.retain(|c| {
            if c.is_open() || c.end > t.len() {
                return true;
            }
            // a non-ASCII byte may lower-case to anything and white space is skipped (an operator
            // pattern may start with it): those are read on
            let b = t[c.start];
            if b.is_ascii() && !blank(b) && !self.first[usize::from(b.to_ascii_lowercase())] {
                return true;
            }
            let Some((_, terms)) = self.by_entity.iter().find(|(e, _)| *e == c.entity) else {
                return true;
            };
            key_into(&t[c.start..c.end], &mut k);
            !terms.contains(k.as_slice())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An allow list of `(entity, term)` pairs, one `add` a pair (`Err(i)`: the `i`-th pair).
    fn allow_of(pairs: &[(EntityId, &str)]) -> Result<Allow, usize> {
        let mut allow = Allow::default();
        for (i, (entity, term)) in pairs.iter().enumerate() {
            allow.add(*entity, &[term]).map_err(|_| i)?;
        }
        Ok(allow)
    }

    fn cand(start: usize, end: usize, entity: EntityId) -> Cand {
        Cand::at(start, end, entity)
    }

    #[test]
    fn terms_compare_lower_cased_with_white_space_folded() {
        let allow = allow_of(&[(1, "Carl  Zeiss"), (2, "support@example.com")]).unwrap();
        let t = b"CARL zeiss, carl\tzeiss or Carl Zeiss Jena";
        let mut cands = vec![cand(0, 10, 1), cand(12, 22, 1), cand(26, 41, 1), cand(0, 10, 2)];
        allow.retain(t, &mut cands);
        // the longer span and the other type's candidate stay
        assert_eq!(cands, vec![cand(26, 41, 1), cand(0, 10, 2)]);
    }

    #[test]
    fn the_ascii_key_is_the_general_one() {
        let general = |text: &str| {
            let mut k = Vec::new();
            // a non-ASCII character at the end takes the general path; it is then cut off
            key_into(format!("{text}\u{e9}").as_bytes(), &mut k);
            k.truncate(k.len() - 2);
            let mut s = String::from_utf8(k).unwrap();
            s.truncate(s.trim_end().len());
            s
        };
        for text in ["  Carl\t\x0bZEISS \r\n", "a", "\x0c\x1c x \x1f", "MIXED case  Words"] {
            let mut k = Vec::new();
            key_into(text.as_bytes(), &mut k);
            assert_eq!(String::from_utf8(k).unwrap(), general(text), "{text:?}");
        }
    }

    #[test]
    fn a_candidate_that_starts_with_white_space_is_read_whole() {
        let allow = allow_of(&[(1, "foo"), (1, "bar")]).unwrap();
        let mut cands = vec![cand(0, 4, 1), cand(4, 8, 1), cand(8, 11, 1)];
        allow.retain(b" foo\tBAR.baz", &mut cands);
        assert_eq!(cands, vec![cand(8, 11, 1)]);
    }

    #[test]
    fn a_term_is_read_through_the_normalization() {
        let allow = allow_of(&[(1, "Carl&nbsp;Zeiss")]).unwrap();
        let mut cands = vec![cand(0, 10, 1)];
        allow.retain(b"Carl Zeiss", &mut cands);
        assert!(cands.is_empty());
    }

    #[test]
    fn empty_blank_and_long_terms_are_refused() {
        assert_eq!(allow_of(&[(1, "ok"), (1, "")]).err(), Some(1));
        assert_eq!(allow_of(&[(1, " \t ")]).err(), Some(0));
        assert_eq!(allow_of(&[(1, "x".repeat(MAX_ALLOW_LEN + 1).as_str())]).err(), Some(0));
        assert!(allow_of(&[(1, "x".repeat(MAX_ALLOW_LEN).as_str())]).is_ok());
        assert_eq!(Allow::default().add::<&str>(1, &[]), Err(0));
        assert_eq!(Allow::default().add(1, &["ok", "", "x"]), Err(1));
    }

    #[test]
    fn open_and_nothing_to_allow_keep_every_candidate() {
        let allow = allow_of(&[(1, "abc")]).unwrap();
        let open = Cand {
            start: 0,
            end: usize::MAX,
            entity: 1,
            conf: 90,
        };
        let mut cands = vec![open];
        allow.retain(b"abc", &mut cands);
        assert_eq!(cands, vec![open]);
        let mut cands = vec![cand(0, 3, 1)];
        Allow::default().retain(b"abc", &mut cands);
        assert_eq!(cands.len(), 1);
    }
}
