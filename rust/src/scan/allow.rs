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

/// The compiled allow list: `(entity, key)` pairs, `key` as [`key`] reads a text.
#[derive(Debug, Default)]
pub struct Allow {
    terms: HashSet<(EntityId, Box<[u8]>)>,
    /// The types with terms: a candidate of another type is not read.
    entities: Vec<EntityId>,
    /// The longest key, in bytes: a longer candidate is not looked up. Lower-casing can lengthen
    /// a text (`İ`), so candidates are compared by their own key's length.
    max_key: usize,
}

/// How a text is compared: lower-cased, white space runs as one space, none at either end.
fn key(text: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(text);
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
    out.into_bytes()
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
    /// Compiles `(entity, term)` pairs; `None` for a term that is empty, only white space or
    /// longer than [`MAX_ALLOW_LEN`] bytes (its index among `terms`).
    pub fn new<'a>(terms: impl IntoIterator<Item = (EntityId, &'a str)>) -> Result<Allow, usize> {
        let mut allow = Allow::default();
        for (i, (entity, term)) in terms.into_iter().enumerate() {
            let k = key(&normalized(term));
            if k.is_empty() || term.len() > MAX_ALLOW_LEN {
                return Err(i);
            }
            allow.max_key = allow.max_key.max(k.len());
            if !allow.entities.contains(&entity) {
                allow.entities.push(entity);
            }
            allow.terms.insert((entity, k.into_boxed_slice()));
        }
        Ok(allow)
    }

    /// Drops the candidates in `cands` (spans of `t`, the normalized view) that are allowed terms
    /// of their type. An open candidate (a capped block still running) is never a term.
    pub fn retain(&self, t: &[u8], cands: &mut Vec<Cand>) {
        if self.terms.is_empty() {
            return;
        }
        // lower-casing at most triples a character's bytes; a candidate longer than that is no term
        let longest = self.max_key.saturating_mul(3);
        cands.retain(|c| {
            if c.is_open() || c.end - c.start > longest || c.end > t.len() || !self.entities.contains(&c.entity) {
                return true;
            }
            let k = key(&t[c.start..c.end]);
            !self.terms.contains(&(c.entity, k.into_boxed_slice()))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(start: usize, end: usize, entity: EntityId) -> Cand {
        Cand {
            start,
            end,
            entity,
            conf: 90,
        }
    }

    #[test]
    fn terms_compare_lower_cased_with_white_space_folded() {
        let allow = Allow::new([(1, "Carl  Zeiss"), (2, "support@example.com")]).unwrap();
        let t = b"CARL zeiss, carl\tzeiss or Carl Zeiss Jena";
        let mut cands = vec![cand(0, 10, 1), cand(12, 22, 1), cand(26, 41, 1), cand(0, 10, 2)];
        allow.retain(t, &mut cands);
        // the longer span and the other type's candidate stay
        assert_eq!(cands, vec![cand(26, 41, 1), cand(0, 10, 2)]);
    }

    #[test]
    fn a_term_is_read_through_the_normalization() {
        let allow = Allow::new([(1, "Carl&nbsp;Zeiss")]).unwrap();
        let mut cands = vec![cand(0, 10, 1)];
        allow.retain(b"Carl Zeiss", &mut cands);
        assert!(cands.is_empty());
    }

    #[test]
    fn empty_blank_and_long_terms_are_refused() {
        assert_eq!(Allow::new([(1, "ok"), (1, "")]).err(), Some(1));
        assert_eq!(Allow::new([(1, " \t ")]).err(), Some(0));
        assert_eq!(Allow::new([(1, "x".repeat(MAX_ALLOW_LEN + 1).as_str())]).err(), Some(0));
        assert!(Allow::new([(1, "x".repeat(MAX_ALLOW_LEN).as_str())]).is_ok());
    }

    #[test]
    fn open_and_nothing_to_allow_keep_every_candidate() {
        let allow = Allow::new([(1, "abc")]).unwrap();
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
