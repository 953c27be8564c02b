//! Choosing findings among candidates, and writing the redacted text.
//!
//! Resolution is greedy and leftmost: candidates are taken in order of start, the longest first
//! at equal starts (then by rank: the lower entity id, a phone number last), and one is kept when it starts at or after the end
//! of the last one kept. The outcome for a start depends only on candidates that start earlier, so
//! a stream can settle a prefix of the text before seeing the rest.

use super::detectors::Cand;
use super::entity::{Builtin, EntityId};

/// Sorts `cands` and appends to `accepted` the non-overlapping winners among those starting
/// before `limit`, none starting before `from`. Returns the end of the last winner (`from` when
/// none; `usize::MAX` for an open one).
pub fn resolve(cands: &mut [Cand], from: usize, limit: usize, accepted: &mut Vec<Cand>) -> usize {
    // the detectors emit candidates in a few ascending runs (anchors, then triggers): a stable
    // sort finds the runs and merges them; equal keys are equal candidates, so stability is moot
    cands.sort_by(|a, b| {
        a.start
            .cmp(&b.start)
            .then(b.end.cmp(&a.end))
            .then(rank(a.entity).cmp(&rank(b.entity)))
    });
    let mut last = from;
    for c in cands.iter() {
        if c.start >= limit {
            break;
        }
        if c.start >= last {
            accepted.push(*c);
            last = c.end;
        }
    }
    last
}

/// Tie-break for candidates with the same span: the lower rank wins. A phone number is the
/// weakest shape (an SSN or a card written in groups can look like one), so it yields to every
/// other type, operator ones included; the rest go by id.
fn rank(entity: EntityId) -> u32 {
    if entity == Builtin::Phone.id() {
        u32::MAX
    } else {
        u32::from(entity)
    }
}

/// A replacement template: literal text in which every `{entity}` becomes the entity name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<String>,
}

impl Template {
    /// Parses `template`; only the exact sequence `{entity}` is special.
    pub fn new(template: &str) -> Template {
        Template {
            parts: template.split("{entity}").map(str::to_string).collect(),
        }
    }

    /// Appends the replacement for `entity` to `out`.
    pub fn push(&self, out: &mut String, entity: &str) {
        for (i, p) in self.parts.iter().enumerate() {
            if i > 0 {
                out.push_str(entity);
            }
            out.push_str(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(start: usize, end: usize, entity: u16) -> Cand {
        Cand::at(start, end, entity)
    }

    #[test]
    fn greedy_leftmost_longest() {
        let mut cands = vec![
            c(5, 9, 1),
            c(0, 4, 2),
            c(0, 6, 3),
            c(6, 8, 0),
            c(10, 12, 0),
            c(10, 12, 4),
        ];
        let mut acc = Vec::new();
        let last = resolve(&mut cands, 0, 11, &mut acc);
        assert_eq!(acc, vec![c(0, 6, 3), c(6, 8, 0), c(10, 12, 0)]);
        assert_eq!(last, 12);
        let mut acc = Vec::new();
        assert_eq!(resolve(&mut cands, 7, 100, &mut acc), 12);
        assert_eq!(acc, vec![c(10, 12, 0)]);
        // a phone-shaped SSN is an SSN
        let mut acc = Vec::new();
        resolve(&mut [c(0, 11, 1), c(0, 11, 2)], 0, 100, &mut acc);
        assert_eq!(acc, vec![c(0, 11, 2)]);
    }

    #[test]
    fn templates() {
        let mut s = String::new();
        Template::new("[REDACTED:{entity}]").push(&mut s, "EMAIL");
        Template::new("<{entity}/{entity}> {x}").push(&mut s, "IBAN");
        Template::new("").push(&mut s, "IBAN");
        assert_eq!(s, "[REDACTED:EMAIL]<IBAN/IBAN> {x}");
    }
}
