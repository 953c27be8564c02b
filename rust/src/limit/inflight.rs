//! Concurrent requests in flight: a count with one entry per grant, each with an expiry.
//!
//! An acquire adds an entry (its cost, usually 1, and `now_ms + ttl_ms`) if the count plus the
//! cost fits the limit; `release` removes it. An entry never released (a lost finish) stops
//! counting once `now_ms` passes its expiry: the TTL is longer than any call may last, so it only
//! ever frees what is certainly over. Expired entries are dropped lazily, when an acquire finds the
//! earliest expiry passed, so a call costs a hash insert or remove under a short `Mutex`.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::limit::error::LimitError;
use crate::limit::window::{State, Taken};
use crate::limit::{check_cost, MAX_COST};

/// What a concurrency refusal tells the caller to wait: a slot frees when some call ends, which
/// nobody can know in advance, so this is a hint.
pub const RETRY_HINT_MS: i64 = 1_000;

#[derive(Debug)]
struct Inner {
    limit: i64,
    count: i64,
    next_id: i64,
    earliest: i64,
    entries: HashMap<i64, (i64, i64)>,
}

/// One line's requests in flight.
#[derive(Debug)]
pub struct InFlight {
    ttl_ms: i64,
    inner: Mutex<Inner>,
}

impl Inner {
    fn purge(&mut self, now_ms: i64) {
        if now_ms < self.earliest {
            return;
        }
        let mut earliest = i64::MAX;
        let mut freed = 0;
        self.entries.retain(|_, &mut (expiry, cost)| {
            if expiry <= now_ms {
                freed += cost;
                false
            } else {
                earliest = earliest.min(expiry);
                true
            }
        });
        self.count -= freed;
        self.earliest = earliest;
    }
}

impl InFlight {
    /// At most `limit` in flight; an entry not released counts for `ttl_ms`.
    ///
    /// # Errors
    /// A limit out of `0..=MAX_COST` or a TTL not positive.
    pub fn new(limit: i64, ttl_ms: i64) -> Result<Self, LimitError> {
        if !(0..=MAX_COST).contains(&limit) {
            return Err(LimitError::bad_limit());
        }
        if ttl_ms <= 0 {
            return Err(LimitError::bad_ttl());
        }
        Ok(InFlight {
            ttl_ms,
            inner: Mutex::new(Inner {
                limit,
                count: 0,
                next_id: 0,
                earliest: i64::MAX,
                entries: HashMap::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The TTL of an entry, in ms.
    pub fn ttl_ms(&self) -> i64 {
        self.ttl_ms
    }

    /// The limit now.
    pub fn limit(&self) -> i64 {
        self.lock().limit
    }

    /// Set the limit (a changed rule); what is in flight stays.
    ///
    /// # Errors
    /// A limit out of `0..=MAX_COST`.
    pub fn set_limit(&self, limit: i64) -> Result<(), LimitError> {
        if !(0..=MAX_COST).contains(&limit) {
            return Err(LimitError::bad_limit());
        }
        self.lock().limit = limit;
        Ok(())
    }

    /// Add an entry of `cost` at `now_ms` if it fits (or whatever it does, when `enforce` is
    /// false); its ticket is what [`InFlight::release`] takes.
    ///
    /// # Errors
    /// A cost out of `0..=MAX_COST`.
    ///
    /// # Example
    /// ```
    /// use _core::limit::InFlight;
    /// let f = InFlight::new(1, 600_000).unwrap();
    /// let a = f.try_take(1, 0, true).unwrap();
    /// assert!(a.admitted && !f.try_take(1, 0, true).unwrap().admitted);
    /// f.release(a.ticket);
    /// assert!(f.try_take(1, 0, true).unwrap().admitted);
    /// ```
    pub fn try_take(&self, cost: i64, now_ms: i64, enforce: bool) -> Result<Taken, LimitError> {
        check_cost(cost)?;
        Ok(self.take_unchecked(cost, now_ms, enforce))
    }

    pub(crate) fn take_unchecked(&self, cost: i64, now_ms: i64, enforce: bool) -> Taken {
        let mut g = self.lock();
        g.purge(now_ms);
        let fits = g.count + cost <= g.limit;
        let admitted = fits || !enforce;
        let mut ticket = -1;
        if admitted {
            ticket = g.next_id;
            g.next_id += 1;
            let expiry = now_ms.saturating_add(self.ttl_ms);
            g.entries.insert(ticket, (expiry, cost));
            g.earliest = g.earliest.min(expiry);
            g.count += cost;
        }
        let retry_after_ms = match (fits, cost > g.limit) {
            (true, _) => 0,
            (false, true) => -1,
            (false, false) => RETRY_HINT_MS,
        };
        Taken {
            admitted,
            would_refuse: !fits,
            ticket,
            retry_after_ms,
        }
    }

    /// Remove the entry `ticket` (a second release, or one of an expired entry, does nothing).
    pub fn release(&self, ticket: i64) {
        let mut g = self.lock();
        if let Some((_, cost)) = g.entries.remove(&ticket) {
            g.count -= cost;
        }
    }

    /// How many are in flight at `now_ms`, and when `cost` would fit (see [`RETRY_HINT_MS`]).
    ///
    /// # Errors
    /// A cost out of `0..=MAX_COST`.
    pub fn state(&self, cost: i64, now_ms: i64) -> Result<State, LimitError> {
        check_cost(cost)?;
        Ok(self.state_unchecked(cost, now_ms))
    }

    pub(crate) fn state_unchecked(&self, cost: i64, now_ms: i64) -> State {
        let mut g = self.lock();
        g.purge(now_ms);
        let retry_after_ms = if cost > g.limit {
            -1
        } else if g.count + cost <= g.limit {
            0
        } else {
            RETRY_HINT_MS
        };
        State {
            counted: g.count,
            remaining: (g.limit - g.count).max(0),
            reset_ms: 0,
            retry_after_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acquire_release_and_the_ttl() {
        let f = InFlight::new(2, 1_000).unwrap();
        let a = f.try_take(1, 0, true).unwrap();
        let b = f.try_take(1, 500, true).unwrap();
        let refused = f.try_take(1, 600, true).unwrap();
        assert!(a.admitted && b.admitted && !refused.admitted);
        assert_eq!(refused.retry_after_ms, RETRY_HINT_MS);
        assert_eq!(f.state(1, 600).unwrap().remaining, 0);
        // `a` was never released: it stops counting at 1_000.
        assert!(!f.try_take(1, 999, true).unwrap().admitted);
        let c = f.try_take(1, 1_000, true).unwrap();
        assert!(c.admitted);
        f.release(a.ticket); // expired already: nothing to do
        assert_eq!(f.state(0, 1_000).unwrap().counted, 2);
        f.release(b.ticket);
        f.release(b.ticket);
        assert_eq!(f.state(0, 1_000).unwrap().counted, 1);
        assert_eq!(f.state(3, 1_000).unwrap().retry_after_ms, -1);
    }

    #[test]
    fn monitor_counts_past_the_limit() {
        let f = InFlight::new(1, 1_000).unwrap();
        f.try_take(1, 0, false).unwrap();
        let t = f.try_take(1, 0, false).unwrap();
        assert!(t.admitted && t.would_refuse);
        assert_eq!(f.state(0, 0).unwrap().counted, 2);
    }

    #[test]
    fn bad_arguments() {
        assert!(InFlight::new(-1, 10).is_err());
        assert!(InFlight::new(1, 0).is_err());
        assert!(InFlight::new(1, 10).unwrap().try_take(-1, 0, true).is_err());
    }
}
