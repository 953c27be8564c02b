//! A sliding window of fixed slots: requests (or tokens) per window, exact in one process.
//!
//! Time is cut into slots of `slot_ms` (1 s by default); slot `k` is `[k * slot_ms, (k + 1) *
//! slot_ms)`. A window of `W` slots (`window_ms = W * slot_ms`) keeps the sum of what was admitted
//! in each slot. An acquire at `t` (slot `s = floor(t / slot_ms)`) with cost `c` is admitted on an
//! enforcing window only if
//!
//! ```text
//!     sum(slots s - W ..= s) + c <= limit          (W + 1 slots)
//! ```
//!
//! and then counts `c` in slot `s`.
//!
//! Why no interval of `window_ms` ever admits more than `limit`. Take any interval `I` of length
//! `window_ms` (closed or open) and the last admission in it, at `t*` in slot `s*`. Every earlier
//! admission in `I` happened at `t >= t* - W * slot_ms`, so `t / slot_ms >= s* - W` and its slot
//! is at least `s* - W`: when the last one was admitted, all the others were counted in slots
//! `s* - W ..= s*`, and the check let it in only if their sum plus its cost was at most `limit`.
//! The price is that an admission stays counted for up to `window_ms + slot_ms` (it is
//! conservative by at most one slot), never that two windows' worth pass at a boundary.
//!
//! Clocks are injected: every call takes `now_ms`, nothing here reads a clock. A call whose
//! `now_ms` is behind the newest slot already counted (tasks racing with a real clock) is counted
//! as of that newest slot, which only keeps it longer in the window.
//!
//! Slots are kept sparse (a deque of `(slot, sum)`, oldest first), so an idle line costs a few
//! words, and a line busy every slot of an hour-long window at most one entry per slot. The state
//! sits under a `Mutex` held for a few hundred nanoseconds per call.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use crate::limit::error::LimitError;
use crate::limit::{check_cost, MAX_COST, MAX_WINDOW_SLOTS};

/// What a line looks like at an instant, for the caller's headers and its refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct State {
    /// What is counted in the window now.
    pub counted: i64,
    /// `limit - counted`, never below 0.
    pub remaining: i64,
    /// Until everything counted now has left the window (0 when nothing is counted).
    pub reset_ms: i64,
    /// Until `cost` would fit (0 when it fits now; -1 when it never can: `cost > limit`).
    pub retry_after_ms: i64,
}

/// What one counter did in an acquire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Taken {
    /// The cost was counted.
    pub admitted: bool,
    /// It did not fit (a monitor line counts it anyway and reports this).
    pub would_refuse: bool,
    /// What `finish` needs: the slot it was counted in (a window) or the entry (in flight).
    pub ticket: i64,
    /// When it did not fit: until it would have (see [`State::retry_after_ms`]).
    pub retry_after_ms: i64,
}

#[derive(Debug)]
struct Inner {
    limit: i64,
    total: i64,
    slots: VecDeque<(i64, i64)>,
}

/// One line's sliding window. See the module documentation for the guarantee.
#[derive(Debug)]
pub struct SlidingWindow {
    slot_ms: i64,
    window_slots: i64,
    inner: Mutex<Inner>,
}

impl Inner {
    /// Move to slot `s` (or the newest slot counted, if later) and drop what left the window.
    fn advance(&mut self, s: i64, w: i64) -> i64 {
        let s = match self.slots.back() {
            Some(&(newest, _)) if newest > s => newest,
            _ => s,
        };
        while let Some(&(k, n)) = self.slots.front() {
            if k >= s - w {
                break;
            }
            self.total -= n;
            self.slots.pop_front();
        }
        s
    }

    fn add(&mut self, s: i64, cost: i64) {
        if cost == 0 {
            return;
        }
        match self.slots.back_mut() {
            Some((k, n)) if *k == s => *n += cost,
            _ => self.slots.push_back((s, cost)),
        }
        self.total += cost;
    }

    /// Add `delta` to slot `slot` (still in the window), never taking it below 0.
    fn adjust(&mut self, slot: i64, delta: i64) {
        match self.slots.binary_search_by_key(&slot, |&(k, _)| k) {
            Ok(i) => {
                let n = &mut self.slots[i].1;
                let next = n.saturating_add(delta).clamp(0, MAX_COST);
                self.total += next - *n;
                *n = next;
            }
            Err(i) if delta > 0 => {
                let delta = delta.min(MAX_COST);
                self.slots.insert(i, (slot, delta));
                self.total += delta;
            }
            Err(_) => {}
        }
    }

    fn retry_after(&self, cost: i64, s_end: impl Fn(i64) -> i64) -> i64 {
        if cost > self.limit {
            return -1;
        }
        let mut left = self.total;
        if left + cost <= self.limit {
            return 0;
        }
        for &(k, n) in &self.slots {
            left -= n;
            if left + cost <= self.limit {
                return s_end(k);
            }
        }
        // Unreachable while total is the slots' sum (then left is 0 and cost fits).
        s_end(self.slots.back().map_or(0, |&(k, _)| k))
    }
}

impl SlidingWindow {
    /// A window of `window_ms` (a whole number of slots of `slot_ms`, at most
    /// [`MAX_WINDOW_SLOTS`] of them) admitting at most `limit` per window.
    ///
    /// # Errors
    /// A limit out of `0..=MAX_COST`, or a bad window.
    ///
    /// # Example
    /// ```
    /// use _core::limit::SlidingWindow;
    /// let w = SlidingWindow::new(2, 2_000, 1_000).unwrap();
    /// assert!(w.try_take(1, 0, true).unwrap().admitted);
    /// assert!(w.try_take(1, 1_999, true).unwrap().admitted);
    /// assert!(!w.try_take(1, 2_999, true).unwrap().admitted); // slots 0..=2 still count both
    /// assert!(w.try_take(1, 3_000, true).unwrap().admitted); // slot 0 has left the window
    /// ```
    pub fn new(limit: i64, window_ms: i64, slot_ms: i64) -> Result<Self, LimitError> {
        if !(0..=MAX_COST).contains(&limit) {
            return Err(LimitError::bad_limit());
        }
        if !(1..=60_000).contains(&slot_ms) || window_ms < slot_ms || window_ms % slot_ms != 0 {
            return Err(LimitError::bad_window());
        }
        let window_slots = window_ms / slot_ms;
        if window_slots > MAX_WINDOW_SLOTS {
            return Err(LimitError::bad_window());
        }
        Ok(SlidingWindow {
            slot_ms,
            window_slots,
            inner: Mutex::new(Inner {
                limit,
                total: 0,
                slots: VecDeque::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent numbers (every update is one step).
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The slot an instant falls in.
    pub fn slot_of(&self, now_ms: i64) -> i64 {
        now_ms.div_euclid(self.slot_ms)
    }

    /// The slot length in ms.
    pub fn slot_ms(&self) -> i64 {
        self.slot_ms
    }

    /// The window length in ms.
    pub fn window_ms(&self) -> i64 {
        self.window_slots * self.slot_ms
    }

    /// The limit now.
    pub fn limit(&self) -> i64 {
        self.lock().limit
    }

    /// Set the limit (a changed rule); what is counted stays.
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

    /// The instant slot `k` leaves the window, minus `now_ms`.
    fn leaves_in(&self, k: i64, now_ms: i64) -> i64 {
        ((k + self.window_slots + 1) * self.slot_ms - now_ms).max(0)
    }

    /// Count `cost` at `now_ms` if it fits (or whatever it does, when `enforce` is false).
    ///
    /// # Errors
    /// A cost out of `0..=MAX_COST`.
    pub fn try_take(&self, cost: i64, now_ms: i64, enforce: bool) -> Result<Taken, LimitError> {
        check_cost(cost)?;
        Ok(self.take_unchecked(cost, now_ms, enforce))
    }

    pub(crate) fn take_unchecked(&self, cost: i64, now_ms: i64, enforce: bool) -> Taken {
        let mut g = self.lock();
        let s = g.advance(self.slot_of(now_ms), self.window_slots);
        let fits = g.total + cost <= g.limit;
        let retry_after_ms = if fits {
            0
        } else {
            g.retry_after(cost, |k| self.leaves_in(k, now_ms))
        };
        let admitted = fits || !enforce;
        if admitted {
            g.add(s, cost);
        }
        Taken {
            admitted,
            would_refuse: !fits,
            ticket: s,
            retry_after_ms,
        }
    }

    /// Take back `cost` counted in slot `slot` (a rollback: the acquire did not happen).
    pub(crate) fn untake(&self, slot: i64, cost: i64) {
        if cost != 0 {
            self.lock().adjust(slot, -cost);
        }
    }

    /// Add `delta` (negative: less) to what slot `slot` counts, if the slot is still in the window
    /// at `now_ms`; a slot never goes below 0. This moves a tokens grant from its estimate to the
    /// actual count.
    ///
    /// # Errors
    /// A delta out of `-MAX_COST..=MAX_COST`.
    pub fn adjust(&self, slot: i64, delta: i64, now_ms: i64) -> Result<(), LimitError> {
        if !(-MAX_COST..=MAX_COST).contains(&delta) {
            return Err(LimitError::bad_cost());
        }
        self.adjust_unchecked(slot, delta, now_ms);
        Ok(())
    }

    pub(crate) fn adjust_unchecked(&self, slot: i64, delta: i64, now_ms: i64) {
        if delta == 0 {
            return;
        }
        let mut g = self.lock();
        let s = g.advance(self.slot_of(now_ms), self.window_slots);
        if slot >= s - self.window_slots && slot <= s {
            g.adjust(slot, delta);
        }
    }

    /// The window at `now_ms`, and when `cost` would fit.
    ///
    /// # Errors
    /// A cost out of `0..=MAX_COST`.
    pub fn state(&self, cost: i64, now_ms: i64) -> Result<State, LimitError> {
        check_cost(cost)?;
        Ok(self.state_unchecked(cost, now_ms))
    }

    pub(crate) fn state_unchecked(&self, cost: i64, now_ms: i64) -> State {
        let mut g = self.lock();
        g.advance(self.slot_of(now_ms), self.window_slots);
        let newest = g.slots.iter().rev().find(|&&(_, n)| n > 0).map(|&(k, _)| k);
        State {
            counted: g.total,
            remaining: (g.limit - g.total).max(0),
            reset_ms: newest.map_or(0, |k| self.leaves_in(k, now_ms)),
            retry_after_ms: g.retry_after(cost, |k| self.leaves_in(k, now_ms)),
        }
    }

    /// What is counted in slot `slot` now (0 once it has left the window).
    pub fn slot_count(&self, slot: i64, now_ms: i64) -> i64 {
        let mut g = self.lock();
        g.advance(self.slot_of(now_ms), self.window_slots);
        g.slots
            .binary_search_by_key(&slot, |&(k, _)| k)
            .map_or(0, |i| g.slots[i].1)
    }

    /// Whether nothing is counted at `now_ms` (the window may be dropped).
    pub fn is_empty(&self, now_ms: i64) -> bool {
        let mut g = self.lock();
        g.advance(self.slot_of(now_ms), self.window_slots);
        g.total == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_boundary_never_admits_two_windows_worth() {
        // 10 per 10 s: all ten at the end of one fixed window, none at the start of the next.
        let w = SlidingWindow::new(10, 10_000, 1_000).unwrap();
        for _ in 0..10 {
            assert!(w.try_take(1, 9_999, true).unwrap().admitted);
        }
        assert!(!w.try_take(1, 10_000, true).unwrap().admitted);
        assert!(!w.try_take(1, 19_999, true).unwrap().admitted); // slot 9 is in 9..=19
        assert!(w.try_take(1, 20_000, true).unwrap().admitted);
    }

    #[test]
    fn state_reset_and_retry_after() {
        let w = SlidingWindow::new(3, 2_000, 1_000).unwrap();
        w.try_take(1, 100, true).unwrap(); // slot 0: leaves at 3_000
        w.try_take(2, 1_500, true).unwrap(); // slot 1: leaves at 4_000
        let s = w.state(1, 1_600).unwrap();
        assert_eq!(
            s,
            State {
                counted: 3,
                remaining: 0,
                reset_ms: 2_400,
                retry_after_ms: 1_400
            }
        );
        assert_eq!(w.state(2, 1_600).unwrap().retry_after_ms, 2_400);
        assert_eq!(w.state(4, 1_600).unwrap().retry_after_ms, -1);
        assert_eq!(w.state(0, 1_600).unwrap().retry_after_ms, 0);
        let refused = w.try_take(1, 1_600, true).unwrap();
        assert!(!refused.admitted && refused.would_refuse);
        assert_eq!(refused.retry_after_ms, 1_400);
        assert!(w.try_take(1, 1_600 + 1_400, true).unwrap().admitted);
        assert_eq!(w.state(0, 10_000).unwrap().reset_ms, 0);
    }

    #[test]
    fn monitor_counts_and_reports() {
        let w = SlidingWindow::new(1, 1_000, 1_000).unwrap();
        assert!(!w.try_take(1, 0, false).unwrap().would_refuse);
        let t = w.try_take(1, 0, false).unwrap();
        assert!(t.admitted && t.would_refuse);
        assert_eq!(w.state(0, 0).unwrap().counted, 2);
    }

    #[test]
    fn adjust_moves_a_grant_and_never_below_zero() {
        let w = SlidingWindow::new(100, 5_000, 1_000).unwrap();
        let t = w.try_take(40, 1_000, true).unwrap();
        w.adjust(t.ticket, -30, 2_000).unwrap();
        assert_eq!(w.state(0, 2_000).unwrap().counted, 10);
        w.adjust(t.ticket, -50, 2_000).unwrap();
        assert_eq!(w.slot_count(t.ticket, 2_000), 0);
        w.adjust(t.ticket, 25, 2_000).unwrap();
        assert_eq!(w.state(0, 2_000).unwrap().counted, 25);
        // A slot that has left the window is not adjusted.
        w.adjust(t.ticket, 50, 7_000).unwrap();
        assert_eq!(w.state(0, 7_000).unwrap().counted, 0);
        // A slot with no entry (a grant of 0) gets one.
        let z = w.try_take(0, 8_000, true).unwrap();
        w.adjust(z.ticket, 7, 8_500).unwrap();
        assert_eq!(w.slot_count(8, 8_500), 7);
    }

    #[test]
    fn a_late_clock_counts_in_the_newest_slot() {
        let w = SlidingWindow::new(5, 1_000, 1_000).unwrap();
        assert_eq!(w.try_take(1, 5_000, true).unwrap().ticket, 5);
        assert_eq!(w.try_take(1, 4_000, true).unwrap().ticket, 5);
        assert_eq!(w.state(0, 5_000).unwrap().counted, 2);
    }

    #[test]
    fn bad_arguments() {
        assert!(SlidingWindow::new(-1, 1_000, 1_000).is_err());
        assert!(SlidingWindow::new(1, 1_500, 1_000).is_err());
        assert!(SlidingWindow::new(1, 0, 1_000).is_err());
        assert!(SlidingWindow::new(1, 1_000, 0).is_err());
        assert!(SlidingWindow::new(1, (MAX_WINDOW_SLOTS + 1) * 10, 10).is_err());
        let w = SlidingWindow::new(1, 1_000, 1_000).unwrap();
        assert!(w.try_take(-1, 0, true).is_err());
        assert!(w.adjust(0, MAX_COST + 1, 0).is_err());
        assert!(w.set_limit(-1).is_err());
    }

    /// Every interval of `window_ms` holds at most `limit` admitted cost.
    fn check_intervals(admitted: &[(i64, i64)], window_ms: i64, limit: i64) {
        let mut lo = 0;
        let mut sum = 0;
        for (hi, &(t, c)) in admitted.iter().enumerate() {
            sum += c;
            while admitted[lo].0 < t - window_ms {
                sum -= admitted[lo].1;
                lo += 1;
            }
            assert!(sum <= limit, "{sum} > {limit} in [{}, {t}] ({hi})", t - window_ms);
        }
    }

    proptest! {
        #[test]
        fn no_interval_admits_more_than_the_limit(
            limit in 1i64..50,
            window_slots in 1i64..8,
            slot_ms in prop::sample::select(vec![1i64, 7, 100, 1_000]),
            steps in prop::collection::vec((0i64..3_000, 1i64..6), 1..400),
        ) {
            let window_ms = window_slots * slot_ms;
            let w = SlidingWindow::new(limit, window_ms, slot_ms).unwrap();
            let mut t = 0i64;
            let mut admitted = Vec::new();
            for (gap, cost) in steps {
                t += gap % (2 * window_ms + 1);
                if w.try_take(cost, t, true).unwrap().admitted {
                    admitted.push((t, cost));
                }
                let st = w.state(cost, t).unwrap();
                prop_assert!(st.counted <= limit);
            }
            check_intervals(&admitted, window_ms, limit);
        }

        #[test]
        fn retry_after_is_exact(
            steps in prop::collection::vec((0i64..1_500, 1i64..4), 1..100),
            cost in 1i64..6,
        ) {
            let w = SlidingWindow::new(5, 3_000, 1_000).unwrap();
            let mut t = 0;
            for (gap, c) in steps {
                t += gap;
                w.try_take(c, t, true).unwrap();
            }
            let retry = w.state(cost, t).unwrap().retry_after_ms;
            prop_assert!(retry >= 0);
            if retry > 0 {
                prop_assert!(w.state(cost, t + retry - 1).unwrap().retry_after_ms > 0);
            }
            prop_assert_eq!(w.state(cost, t + retry).unwrap().retry_after_ms, 0);
        }
    }
}
