//! The one error type of the limits core: a private kind and a lowercase message.

use std::fmt;

/// Why a limits operation was refused as invalid (never "over the limit": that is an outcome, not
/// an error).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitError {
    kind: ErrorKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum ErrorKind {
    BadCost,
    BadLimit,
    BadWindow,
    BadTtl,
    TooManyLines { given: usize },
    LengthMismatch,
}

impl LimitError {
    pub(crate) fn bad_cost() -> Self {
        LimitError {
            kind: ErrorKind::BadCost,
        }
    }

    pub(crate) fn bad_limit() -> Self {
        LimitError {
            kind: ErrorKind::BadLimit,
        }
    }

    pub(crate) fn bad_window() -> Self {
        LimitError {
            kind: ErrorKind::BadWindow,
        }
    }

    pub(crate) fn bad_ttl() -> Self {
        LimitError {
            kind: ErrorKind::BadTtl,
        }
    }

    pub(crate) fn too_many_lines(given: usize) -> Self {
        LimitError {
            kind: ErrorKind::TooManyLines { given },
        }
    }

    pub(crate) fn length_mismatch() -> Self {
        LimitError {
            kind: ErrorKind::LengthMismatch,
        }
    }
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::BadCost => write!(f, "costs must be 0..={}", crate::limit::MAX_COST),
            ErrorKind::BadLimit => write!(f, "limits must be 0..={}", crate::limit::MAX_COST),
            ErrorKind::BadWindow => write!(
                f,
                "a window is 1..={} slots of 1..=60000 ms, and its length a whole number of slots",
                crate::limit::MAX_WINDOW_SLOTS
            ),
            ErrorKind::BadTtl => write!(f, "an in-flight ttl must be positive"),
            ErrorKind::TooManyLines { given } => {
                write!(f, "at most {} lines per acquire, got {given}", crate::limit::MAX_LINES)
            }
            ErrorKind::LengthMismatch => write!(f, "one cost (or ticket) per counter"),
        }
    }
}

impl std::error::Error for LimitError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lowercase() {
        for err in [
            LimitError::bad_cost(),
            LimitError::bad_limit(),
            LimitError::bad_window(),
            LimitError::bad_ttl(),
            LimitError::too_many_lines(70),
            LimitError::length_mismatch(),
        ] {
            let msg = err.to_string();
            assert!(msg.chars().next().unwrap().is_lowercase(), "{msg}");
        }
        assert!(LimitError::too_many_lines(70).to_string().contains("70"));
    }
}
