//! The one error type of the spend core: a private kind, a lowercase message, no amounts that
//! could identify a customer beyond the numbers the caller passed in.

use std::fmt;

/// Why a spend operation was refused as invalid (never "over the cap": that is an outcome, not an
/// error).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpendError {
    kind: ErrorKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum ErrorKind {
    NegativeAmount,
    AmountTooLarge,
    TooManyThresholds { given: usize },
    UnknownWindow { name: String },
    TimeOutOfRange,
    TooManyBuckets { given: usize },
}

impl SpendError {
    pub(crate) fn negative_amount() -> Self {
        SpendError {
            kind: ErrorKind::NegativeAmount,
        }
    }

    pub(crate) fn amount_too_large() -> Self {
        SpendError {
            kind: ErrorKind::AmountTooLarge,
        }
    }

    pub(crate) fn too_many_thresholds(given: usize) -> Self {
        SpendError {
            kind: ErrorKind::TooManyThresholds { given },
        }
    }

    pub(crate) fn unknown_window(name: &str) -> Self {
        // Window names are short config words; keep at most a few characters of a bad one.
        let name: String = name.chars().take(16).collect();
        SpendError {
            kind: ErrorKind::UnknownWindow { name },
        }
    }

    pub(crate) fn time_out_of_range() -> Self {
        SpendError {
            kind: ErrorKind::TimeOutOfRange,
        }
    }

    pub(crate) fn too_many_buckets(given: usize) -> Self {
        SpendError {
            kind: ErrorKind::TooManyBuckets { given },
        }
    }
}

impl fmt::Display for SpendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::NegativeAmount => write!(f, "amounts must not be negative"),
            ErrorKind::AmountTooLarge => {
                write!(f, "amount is larger than {} nano-usd", crate::spend::MAX_AMOUNT_NUSD)
            }
            ErrorKind::TooManyThresholds { given } => {
                write!(
                    f,
                    "at most {} thresholds per bucket, got {given}",
                    crate::spend::MAX_THRESHOLDS
                )
            }
            ErrorKind::UnknownWindow { name } => {
                write!(f, "unknown window {name:?} (expected total, hour, day, week or month)")
            }
            ErrorKind::TimeOutOfRange => write!(f, "time is outside the years 1..=9999"),
            ErrorKind::TooManyBuckets { given } => {
                write!(
                    f,
                    "at most {} buckets per reservation, got {given}",
                    crate::spend::MAX_BUCKETS
                )
            }
        }
    }
}

impl std::error::Error for SpendError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lowercase_and_name_the_limit() {
        let all = [
            SpendError::negative_amount(),
            SpendError::amount_too_large(),
            SpendError::too_many_thresholds(70),
            SpendError::unknown_window("fortnight"),
            SpendError::time_out_of_range(),
            SpendError::too_many_buckets(65),
        ];
        for err in all {
            let msg = err.to_string();
            assert!(msg.chars().next().unwrap().is_lowercase(), "{msg}");
        }
        assert!(SpendError::too_many_thresholds(70).to_string().contains("70"));
        assert!(SpendError::unknown_window(&"x".repeat(100)).to_string().len() < 100);
    }
}
