//! Spend caps: the pure arithmetic behind sluicegate's hard caps (no pyo3, no I/O).
//!
//! A cap is a limit in integer nano-USD on one entity (organization, workspace, user or API key)
//! in one window (total, or the UTC hour, day, ISO week or month). Each (cap, window) pair is a
//! [`bucket::Bucket`]: a request reserves its worst-case cost on every bucket it counts against
//! ([`bucket::reserve_all`], all or nothing), then settles the reservation to its actual cost or
//! releases it. [`window::WindowKind::window_at`] names the window an instant falls in, so a new
//! window is a new bucket and caps roll over without a restart.
//!
//! This is the one-process engine. With several instances, Redis holds the truth (the Lua scripts
//! of `python/sluicegate/spend/lua/`), and leases let an instance spend a slice of a Redis bucket
//! through a local `Bucket` whose limit is the slice ([`bucket::Bucket::grow`] and
//! [`bucket::Bucket::shrink`]).

pub mod bucket;
pub mod error;
pub mod window;

pub use bucket::{release_all, reserve_all, settle_all, Bucket, Modes, Outcome, Snapshot};
pub use error::SpendError;
pub use window::{Window, WindowKind};

/// The largest amount (and limit) accepted, in nano-USD: 2^53 - 1, about 9.007 million USD.
///
/// It is the largest integer a Lua number (a double) holds exactly, so the Redis store and this
/// one accept the same caps; it also keeps every sum of two amounts far from `i64` overflow.
pub const MAX_AMOUNT_NUSD: i64 = (1 << 53) - 1;

/// The most thresholds one bucket may carry (they are bits of a `u64`).
pub const MAX_THRESHOLDS: usize = 64;

/// The most buckets one reservation may span (bits of a `u64` mask).
pub const MAX_BUCKETS: usize = 64;
