//! Rate limits: the state behind requests per window, tokens per window and requests in flight
//! (no pyo3, no I/O, no clock: every call takes `now_ms`).
//!
//! A limit line (an entity's requests per minute, say) is a [`window::SlidingWindow`] (requests or
//! tokens: a weighted cost per window) or an [`inflight::InFlight`] (concurrent requests). A
//! request acquires its cost on every line that applies to it at once ([`acquire_all`], all or
//! nothing across the enforcing lines), and when it ends [`finish_all`] moves a tokens line from
//! the estimate to the actual count and releases the in-flight entries.
//!
//! This is the one-process engine. With several instances, Redis holds the truth (the Lua scripts
//! of `python/sluicegate/limits/lua/`, the same slot arithmetic), and leases let an instance admit
//! locally from a slice of the current slot.

pub mod error;
pub mod inflight;
pub mod lease;
pub mod window;

pub use error::LimitError;
pub use inflight::InFlight;
pub use window::{SlidingWindow, State, Taken};

/// The largest cost (and limit): 2^53 - 1, exact in a Lua number as well.
pub const MAX_COST: i64 = (1 << 53) - 1;

/// The most slots in one window (an hour of 100 ms slots).
pub const MAX_WINDOW_SLOTS: i64 = 36_000;

/// The most lines one acquire may span (bits of a `u64` mask).
pub const MAX_LINES: usize = 64;

pub(crate) fn check_cost(cost: i64) -> Result<(), LimitError> {
    if (0..=MAX_COST).contains(&cost) {
        Ok(())
    } else {
        Err(LimitError::bad_cost())
    }
}

/// One line's counter.
#[derive(Clone, Copy, Debug)]
pub enum Counter<'a> {
    /// Requests or tokens per window.
    Window(&'a SlidingWindow),
    /// Requests in flight.
    InFlight(&'a InFlight),
}

impl Counter<'_> {
    fn take(self, cost: i64, now_ms: i64, enforce: bool) -> Taken {
        match self {
            Counter::Window(w) => w.take_unchecked(cost, now_ms, enforce),
            Counter::InFlight(f) => f.take_unchecked(cost, now_ms, enforce),
        }
    }

    fn untake(self, ticket: i64, cost: i64) {
        match self {
            Counter::Window(w) => w.untake(ticket, cost),
            Counter::InFlight(f) => f.release(ticket),
        }
    }

    /// The line's state at `now_ms`, and when `cost` would fit.
    pub fn state(self, cost: i64, now_ms: i64) -> State {
        match self {
            Counter::Window(w) => w.state_unchecked(cost, now_ms),
            Counter::InFlight(f) => f.state_unchecked(cost, now_ms),
        }
    }
}

/// What [`acquire_all`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acquired {
    /// The first enforcing line that refused (nothing is counted anywhere), or None.
    pub refused: Option<usize>,
    /// Bit `i`: line `i` did not fit (a monitor line that counted anyway, or the refusing line).
    pub would_refuse: u64,
    /// Per line, the ticket [`finish_all`] takes (when admitted).
    pub tickets: Vec<i64>,
    /// Per line, its state after the call. `retry_after_ms` is set on lines that did not fit
    /// (from before they counted), 0 on the others.
    pub states: Vec<State>,
}

fn check_lines(n: usize, costs: usize) -> Result<(), LimitError> {
    if n > MAX_LINES {
        Err(LimitError::too_many_lines(n))
    } else if n != costs {
        Err(LimitError::length_mismatch())
    } else {
        Ok(())
    }
}

/// Count `costs[i]` on `counters[i]` for every line, or on none when an enforcing line (bit `i` of
/// `enforce`) cannot fit it.
///
/// Lines are taken in order, each under its own short lock; when one refuses, those already taken
/// are rolled back. This never over-admits (each line's own check holds its bound, and a rollback
/// only lowers a count); a concurrent request may be refused spuriously while a rollback is in
/// flight, and only when some line was genuinely full.
///
/// # Errors
/// A cost out of range, more than 64 lines, or not one cost per line.
///
/// # Example
/// ```
/// use _core::limit::{acquire_all, Counter, InFlight, SlidingWindow};
/// let rpm = SlidingWindow::new(10, 60_000, 1_000).unwrap();
/// let busy = InFlight::new(1, 600_000).unwrap();
/// let lines = [Counter::Window(&rpm), Counter::InFlight(&busy)];
/// let first = acquire_all(&lines, &[1, 1], u64::MAX, 0).unwrap();
/// assert_eq!(first.refused, None);
/// assert_eq!(acquire_all(&lines, &[1, 1], u64::MAX, 5).unwrap().refused, Some(1));
/// assert_eq!(rpm.state(0, 5).unwrap().counted, 1); // rolled back
/// ```
pub fn acquire_all(counters: &[Counter<'_>], costs: &[i64], enforce: u64, now_ms: i64) -> Result<Acquired, LimitError> {
    check_lines(counters.len(), costs.len())?;
    for &c in costs {
        check_cost(c)?;
    }
    let mut tickets = Vec::with_capacity(counters.len());
    let mut retry = Vec::with_capacity(counters.len());
    let mut would_refuse = 0u64;
    for (i, (&counter, &cost)) in counters.iter().zip(costs).enumerate() {
        let taken = counter.take(cost, now_ms, enforce & (1 << i) != 0);
        if taken.would_refuse {
            would_refuse |= 1 << i;
        }
        if !taken.admitted {
            for (j, (&done, &cost)) in counters[..i].iter().zip(costs).enumerate() {
                done.untake(tickets[j], cost);
            }
            let states = counters
                .iter()
                .zip(costs)
                .map(|(&c, &cost)| c.state(cost, now_ms))
                .collect();
            return Ok(Acquired {
                refused: Some(i),
                would_refuse: 1 << i,
                tickets: Vec::new(),
                states,
            });
        }
        tickets.push(taken.ticket);
        retry.push(taken.retry_after_ms);
    }
    let states = counters
        .iter()
        .zip(&retry)
        .map(|(&c, &retry_after_ms)| State {
            retry_after_ms,
            ..c.state(0, now_ms)
        })
        .collect();
    Ok(Acquired {
        refused: None,
        would_refuse,
        tickets,
        states,
    })
}

/// End a grant: add `deltas[i]` to the slot a window line counted it in (a tokens line: actual
/// minus estimate; only while that slot is in the window, never below 0), and release the entry of
/// an in-flight line (its delta is ignored).
///
/// # Errors
/// A delta out of range, or not one ticket and one delta per line.
pub fn finish_all(counters: &[Counter<'_>], tickets: &[i64], deltas: &[i64], now_ms: i64) -> Result<(), LimitError> {
    check_lines(counters.len(), tickets.len())?;
    check_lines(counters.len(), deltas.len())?;
    if deltas.iter().any(|d| !(-MAX_COST..=MAX_COST).contains(d)) {
        return Err(LimitError::bad_cost());
    }
    for ((&counter, &ticket), &delta) in counters.iter().zip(tickets).zip(deltas) {
        match counter {
            Counter::Window(w) => w.adjust_unchecked(ticket, delta, now_ms),
            Counter::InFlight(f) => f.release(ticket),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread;

    #[test]
    fn all_or_nothing_with_monitor_lines() {
        let org = SlidingWindow::new(100, 60_000, 1_000).unwrap();
        let key = SlidingWindow::new(2, 60_000, 1_000).unwrap();
        let shadow = SlidingWindow::new(1, 60_000, 1_000).unwrap();
        let lines = [Counter::Window(&org), Counter::Window(&shadow), Counter::Window(&key)];
        let enforce = 0b101;
        let a = acquire_all(&lines, &[1, 1, 1], enforce, 0).unwrap();
        assert_eq!((a.refused, a.would_refuse), (None, 0));
        let b = acquire_all(&lines, &[1, 1, 1], enforce, 1).unwrap();
        assert_eq!((b.refused, b.would_refuse), (None, 0b010));
        assert_eq!(b.states[1].remaining, 0);
        assert!(b.states[1].retry_after_ms > 0);
        assert_eq!(b.states[0].retry_after_ms, 0);
        let c = acquire_all(&lines, &[1, 1, 1], enforce, 2).unwrap();
        assert_eq!((c.refused, c.would_refuse), (Some(2), 0b100));
        assert_eq!(c.states[2].retry_after_ms, 61_000 - 2);
        assert_eq!(org.state(0, 2).unwrap().counted, 2);
        assert_eq!(shadow.state(0, 2).unwrap().counted, 2);
    }

    #[test]
    fn finish_moves_tokens_and_releases_in_flight() {
        let tpm = SlidingWindow::new(1_000, 60_000, 1_000).unwrap();
        let busy = InFlight::new(1, 600_000).unwrap();
        let lines = [Counter::Window(&tpm), Counter::InFlight(&busy)];
        let a = acquire_all(&lines, &[500, 1], u64::MAX, 10).unwrap();
        finish_all(&lines, &a.tickets, &[-380, 0], 2_000).unwrap();
        assert_eq!(tpm.state(0, 2_000).unwrap().counted, 120);
        assert_eq!(busy.state(0, 2_000).unwrap().counted, 0);
        assert!(finish_all(&lines, &a.tickets, &[0], 0).is_err());
        assert!(acquire_all(&lines, &[1], u64::MAX, 0).is_err());
    }

    #[test]
    fn threads_never_over_admit() {
        let rpm = Arc::new(SlidingWindow::new(1_000, 10_000, 1_000).unwrap());
        let busy = Arc::new(InFlight::new(1_000_000, 600_000).unwrap());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (rpm, busy) = (Arc::clone(&rpm), Arc::clone(&busy));
                thread::spawn(move || {
                    let mut admitted = 0;
                    for _ in 0..5_000 {
                        let lines = [Counter::InFlight(&busy), Counter::Window(&rpm)];
                        let a = acquire_all(&lines, &[1, 1], u64::MAX, 500).unwrap();
                        if a.refused.is_none() {
                            admitted += 1;
                            finish_all(&lines, &a.tickets, &[0, 0], 500).unwrap();
                        }
                    }
                    admitted
                })
            })
            .collect();
        let total: i64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, 1_000);
        assert_eq!(busy.state(0, 500).unwrap().counted, 0);
    }
}
