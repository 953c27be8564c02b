//! The one error type of the scanner: bad rules at build time, and misuse of a finished stream.
//!
//! The kind is private (as in aho-corasick's `BuildError`) so new kinds are not breaking; messages
//! are lowercase and name positions and entity names, never a pattern, a keyword or scanned text.

use std::fmt;

/// A rule set that cannot be compiled, or a stream used after `finish`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanError {
    kind: ErrorKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum ErrorKind {
    UnknownEntity {
        index: usize,
        name: Option<String>,
    },
    InvalidName {
        what: &'static str,
        index: usize,
    },
    InvalidRegex {
        index: usize,
        entity: String,
        reason: &'static str,
    },
    EmptyMatch {
        index: usize,
        entity: String,
    },
    Unbounded {
        index: usize,
        entity: String,
        limit: usize,
    },
    NoKeywords {
        entity: String,
    },
    BadKeyword {
        entity: String,
        index: usize,
        limit: usize,
    },
    TooManyEntities {
        limit: usize,
    },
    BadThreshold {
        index: usize,
        name: Option<String>,
    },
    BadAllow {
        index: usize,
        name: Option<String>,
        term: Option<usize>,
    },
    StreamFinished,
}

impl ScanError {
    #[cold]
    #[inline(never)]
    pub(crate) fn unknown_entity(index: usize, name: &str) -> ScanError {
        let name = super::entity::is_valid_name(name).then(|| name.to_string());
        ScanError {
            kind: ErrorKind::UnknownEntity { index, name },
        }
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn invalid_name(what: &'static str, index: usize) -> ScanError {
        ScanError {
            kind: ErrorKind::InvalidName { what, index },
        }
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn invalid_regex(index: usize, entity: &str, reason: &'static str) -> ScanError {
        ScanError {
            kind: ErrorKind::InvalidRegex {
                index,
                entity: entity.to_string(),
                reason,
            },
        }
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn empty_match(index: usize, entity: &str) -> ScanError {
        ScanError {
            kind: ErrorKind::EmptyMatch {
                index,
                entity: entity.to_string(),
            },
        }
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn unbounded(index: usize, entity: &str, limit: usize) -> ScanError {
        ScanError {
            kind: ErrorKind::Unbounded {
                index,
                entity: entity.to_string(),
                limit,
            },
        }
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn no_keywords(entity: &str) -> ScanError {
        ScanError {
            kind: ErrorKind::NoKeywords {
                entity: entity.to_string(),
            },
        }
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn bad_keyword(entity: &str, index: usize, limit: usize) -> ScanError {
        ScanError {
            kind: ErrorKind::BadKeyword {
                entity: entity.to_string(),
                index,
                limit,
            },
        }
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn too_many_entities(limit: usize) -> ScanError {
        ScanError {
            kind: ErrorKind::TooManyEntities { limit },
        }
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn bad_threshold(index: usize, name: &str) -> ScanError {
        let name = super::entity::is_valid_name(name).then(|| name.to_string());
        ScanError {
            kind: ErrorKind::BadThreshold { index, name },
        }
    }

    /// `allow[index]`: not a type of this scanner (`term` None), or an empty list (`Some(0)` of
    /// an empty list) or a bad term (`Some(i)`).
    #[cold]
    #[inline(never)]
    pub(crate) fn bad_allow(index: usize, name: &str, term: Option<usize>) -> ScanError {
        let name = super::entity::is_valid_name(name).then(|| name.to_string());
        ScanError {
            kind: ErrorKind::BadAllow { index, name, term },
        }
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn stream_finished() -> ScanError {
        ScanError {
            kind: ErrorKind::StreamFinished,
        }
    }
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::UnknownEntity {
                index,
                name: Some(name),
            } => {
                write!(f, "entities[{index}]: unknown entity {name} (see builtin_entities())")
            }
            ErrorKind::UnknownEntity { index, name: None } => {
                write!(
                    f,
                    "entities[{index}]: not an entity name (expected UPPER_SNAKE, see builtin_entities())"
                )
            }
            ErrorKind::InvalidName { what, index } => {
                write!(
                    f,
                    "{what}[{index}]: entity name must match [A-Z][A-Z0-9_]* and be at most 64 bytes"
                )
            }
            ErrorKind::InvalidRegex { index, entity, reason } => {
                write!(f, "custom_patterns[{index}] ({entity}): invalid regex: {reason}")
            }
            ErrorKind::EmptyMatch { index, entity } => {
                write!(
                    f,
                    "custom_patterns[{index}] ({entity}): the regex can match the empty string"
                )
            }
            ErrorKind::Unbounded { index, entity, limit } => write!(
                f,
                "custom_patterns[{index}] ({entity}): the regex must have a bounded match length of at most \
                 {limit} bytes (use {{m,n}} instead of + or *)"
            ),
            ErrorKind::NoKeywords { entity } => write!(f, "keywords ({entity}): the word list is empty"),
            ErrorKind::BadKeyword { entity, index, limit } => {
                write!(
                    f,
                    "keywords ({entity})[{index}]: a keyword must be 1 to {limit} bytes of visible text"
                )
            }
            ErrorKind::TooManyEntities { limit } => write!(f, "too many entity names (at most {limit})"),
            ErrorKind::BadThreshold {
                index,
                name: Some(name),
            } => write!(
                f,
                "min_confidence[{index}]: {name} is not an entity type of this scanner, or the threshold is over 100"
            ),
            ErrorKind::BadThreshold { index, name: None } => {
                write!(f, "min_confidence[{index}]: not an entity name (expected UPPER_SNAKE)")
            }
            ErrorKind::BadAllow { index, name: None, .. } => {
                write!(f, "allow[{index}]: not an entity name (expected UPPER_SNAKE)")
            }
            ErrorKind::BadAllow {
                index,
                name: Some(name),
                term: None,
            } => write!(f, "allow[{index}]: {name} is not an entity type of this scanner"),
            ErrorKind::BadAllow {
                index,
                name: Some(name),
                term: Some(term),
            } => write!(
                f,
                "allow[{index}] ({name})[{term}]: a term list must not be empty, and a term must be 1 to {} \
                 bytes of visible text",
                super::allow::MAX_ALLOW_LEN
            ),
            ErrorKind::StreamFinished => write!(f, "the stream is finished; start a new one with Scanner.stream()"),
        }
    }
}

impl std::error::Error for ScanError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lowercase_and_carry_no_values() {
        let e = ScanError::unknown_entity(2, "not a name: 078-05-1120");
        assert_eq!(
            e.to_string(),
            "entities[2]: not an entity name (expected UPPER_SNAKE, see builtin_entities())"
        );
        let e = ScanError::invalid_regex(0, "EMP", "syntax error");
        assert!(e.to_string().starts_with("custom_patterns[0] (EMP)"));
        assert!(ScanError::stream_finished().to_string().starts_with("the stream"));
    }
}
