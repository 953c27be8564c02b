//! One instance's lease on a window line of a Redis-held limit: room Redis already counted in a
//! slot, handed out locally (the bookkeeping of `python/sluicegate/limits/leases.py`, whose module
//! docstring explains leases; the Redis calls, sizing and refusals stay there).
//!
//! The request path's common case is [`take_all`] (every line of a request has room in the current
//! slot: take it, no network) and [`Lease::settle`] (a finished call's tokens moved from the
//! estimate to the actual count against the same slot's room). Everything else (asking Redis for
//! room, give-backs) is the Python store's, which reads and writes these fields.

use std::collections::BTreeMap;

use super::MAX_COST;

/// A slot no clock reaches: a new lease has no current slot.
pub const NO_SLOT: i64 = -(1 << 62);

/// This instance's lease on one window line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The line's limit (requests or tokens per window).
    pub limit: i64,
    /// The line's window in seconds.
    pub window_s: i64,
    /// Whether the line counts tokens (a finish settles it to the actual count).
    pub tokens: bool,
    /// The local slot the room is valid in.
    pub slot: i64,
    /// The slot Redis counted the room in.
    pub counted_slot: i64,
    /// Room left to hand out in `slot`.
    pub room: i64,
    /// Requests admitted from leases in `slot`.
    pub n_used: i64,
    /// ... in the slot before it.
    pub n_prev: i64,
    /// Redis's count of the line after the last call (this instance's room included).
    pub counted: i64,
    /// When everything counted at the last call leaves the window (ms).
    pub reset_at: i64,
    /// Redis refused this cost in `slot` (0: it did not): refuse it locally.
    pub full_need: i64,
    /// ... and when it would fit (-1: never).
    pub retry_at: i64,
    /// Per slot, what this instance owes Redis's count and has not sent yet (never 0).
    pub pending: BTreeMap<i64, i64>,
}

impl Lease {
    /// A lease holding nothing on a line of `limit` per `window_s` seconds.
    pub fn new(limit: i64, window_s: i64, tokens: bool) -> Lease {
        Lease {
            limit,
            window_s,
            tokens,
            slot: NO_SLOT,
            counted_slot: 0,
            room: 0,
            n_used: 0,
            n_prev: 0,
            counted: 0,
            reset_at: 0,
            pending: BTreeMap::new(),
            full_need: 0,
            retry_at: 0,
        }
    }

    /// Add `delta` to what slot `slot` owes (an entry that comes to 0 is dropped).
    pub fn owe(&mut self, slot: i64, delta: i64) {
        if delta == 0 {
            return;
        }
        let left = self.pending.get(&slot).copied().unwrap_or(0) + delta;
        if left == 0 {
            self.pending.remove(&slot);
        } else {
            self.pending.insert(slot, left);
        }
    }

    /// Move to local slot `s`: room of an ended slot becomes a give-back.
    pub fn roll(&mut self, s: i64) {
        if s <= self.slot {
            return;
        }
        if self.room != 0 {
            self.owe(self.counted_slot, -self.room);
            self.room = 0;
        }
        self.n_prev = if s == self.slot + 1 { self.n_used } else { 0 };
        self.n_used = 0;
        self.full_need = 0;
        self.slot = s;
    }

    /// Redis refused this cost (or a smaller one) on this line in slot `s`, and local room does
    /// not cover it.
    pub fn full_for(&self, cost: i64, s: i64) -> bool {
        self.full_need > 0 && self.slot == s && cost >= self.full_need && self.room < cost
    }

    /// What `pending` sends to Redis: `slot:delta` pairs joined by commas.
    pub fn adjustments(&self) -> String {
        let mut out = String::new();
        for (k, d) in &self.pending {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(&format!("{k}:{d}"));
        }
        out
    }

    /// Forget what a successful call carried (`snapshot`, a copy of `pending` taken before it),
    /// keeping what was added meanwhile.
    pub fn sent(&mut self, snapshot: &[(i64, i64)]) {
        for &(k, d) in snapshot {
            self.owe(k, -d);
        }
    }

    /// `(remaining, reset_ms)` at time `t` (ms) for slots of `slot_ms`: what the window has left
    /// by Redis's last count plus this instance's room, and until everything counted leaves it.
    pub fn state(&self, t: i64, slot_ms: i64) -> (i64, i64) {
        let window_end = (self.counted_slot + self.window_s * 1000 / slot_ms + 1) * slot_ms - t;
        let reset = (self.reset_at - t).max(window_end).max(0);
        ((self.limit - self.counted + self.room).max(0), reset)
    }

    /// A finished call counted in slot `ticket` moves this line by `delta` (actual minus estimate)
    /// at local slot `s`: against the room of the same slot when it still holds it (exact, no
    /// network), else owed to Redis.
    pub fn settle(&mut self, ticket: i64, mut delta: i64, s: i64) {
        if delta == 0 {
            return;
        }
        self.roll(s);
        if self.slot == s && ticket == self.counted_slot {
            let take = if delta < 0 { delta } else { self.room.min(delta) };
            self.room -= take;
            delta -= take;
        }
        self.owe(ticket, delta);
    }
}

/// The request path without the network: when every lease has room for its cost in local slot `s`
/// (after rolling to it), take the costs from all of them and count the request; returns the slot
/// each line is counted in. None (and nothing taken) when one lacks room, a cost is out of range,
/// or not one cost per lease: the store asks Redis then.
pub fn take_all(leases: &mut [&mut Lease], costs: &[i64], s: i64) -> Option<Vec<i64>> {
    if leases.len() != costs.len() {
        return None;
    }
    let mut fits = true;
    for (lease, &cost) in leases.iter_mut().zip(costs) {
        lease.roll(s);
        if !(0..=MAX_COST).contains(&cost) || lease.slot != s || lease.room < cost {
            fits = false;
        }
    }
    if !fits {
        return None;
    }
    Some(
        leases
            .iter_mut()
            .zip(costs)
            .map(|(lease, &cost)| {
                lease.room -= cost;
                lease.n_used += 1;
                lease.counted_slot
            })
            .collect(),
    )
}

/// The deltas a finish moves each line by: actual minus estimate on tokens lines (none when
/// `actual` is None: output went out without usage), 0 elsewhere.
pub fn finish_deltas(leases: &[&mut Lease], costs: &[i64], actual: Option<i64>) -> Vec<i64> {
    leases
        .iter()
        .zip(costs)
        .map(|(lease, &cost)| match actual {
            Some(a) if lease.tokens => a.clamp(0, MAX_COST) - cost,
            _ => 0,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(room: i64, slot: i64, counted_slot: i64) -> Lease {
        Lease {
            room,
            slot,
            counted_slot,
            ..Lease::new(100, 60, false)
        }
    }

    #[test]
    fn take_all_takes_from_every_lease_or_none() {
        let mut a = held(5, 10, 10);
        let mut b = held(1, 10, 9);
        assert_eq!(take_all(&mut [&mut a, &mut b], &[2, 1], 10), Some(vec![10, 9]));
        assert_eq!((a.room, b.room, a.n_used, b.n_used), (3, 0, 1, 1));
        // b has no room left: nothing is taken from a either.
        assert_eq!(take_all(&mut [&mut a, &mut b], &[1, 1], 10), None);
        assert_eq!((a.room, a.n_used), (3, 1));
    }

    #[test]
    fn take_all_refuses_a_new_slot_and_gives_the_old_room_back() {
        let mut a = held(5, 10, 10);
        assert_eq!(take_all(&mut [&mut a], &[1], 11), None);
        assert_eq!(a.room, 0);
        assert_eq!(a.pending.get(&10), Some(&-5));
        assert_eq!((a.slot, a.n_used), (11, 0));
    }

    #[test]
    fn take_all_refuses_bad_input_without_taking() {
        let mut a = held(5, 10, 10);
        assert_eq!(take_all(&mut [&mut a], &[-1], 10), None);
        assert_eq!(take_all(&mut [&mut a], &[MAX_COST + 1], 10), None);
        assert_eq!(take_all(&mut [&mut a], &[1, 1], 10), None);
        assert_eq!(a.room, 5);
    }

    #[test]
    fn roll_counts_the_previous_slot_only_when_adjacent() {
        let mut a = held(0, 10, 10);
        a.n_used = 7;
        a.full_need = 3;
        a.roll(11);
        assert_eq!((a.n_prev, a.n_used, a.full_need), (7, 0, 0));
        a.n_used = 4;
        a.roll(13);
        assert_eq!(a.n_prev, 0);
        a.roll(12); // a clock going back changes nothing
        assert_eq!(a.slot, 13);
    }

    #[test]
    fn settle_uses_the_same_slot_room_then_owes() {
        let mut a = held(10, 10, 10);
        a.settle(10, 4, 10); // more tokens than estimated, room covers it
        assert_eq!((a.room, a.pending.len()), (6, 0));
        a.settle(10, 9, 10); // room covers 6, 3 owed
        assert_eq!((a.room, a.pending.get(&10)), (0, Some(&3)));
        a.settle(10, -3, 10); // fewer: back into the room
        assert_eq!((a.room, a.pending.get(&10)), (3, Some(&3)));
        a.settle(9, -2, 10); // another slot's ticket: owed
        assert_eq!(a.pending.get(&9), Some(&-2));
    }

    #[test]
    fn owe_drops_entries_that_come_to_zero_and_sent_keeps_later_ones() {
        let mut a = held(0, 10, 10);
        a.owe(5, 3);
        a.owe(6, -2);
        let snapshot: Vec<(i64, i64)> = a.pending.iter().map(|(&k, &d)| (k, d)).collect();
        assert_eq!(a.adjustments(), "5:3,6:-2");
        a.owe(5, 1); // added while the call was on its way
        a.sent(&snapshot);
        assert_eq!(a.pending.into_iter().collect::<Vec<_>>(), vec![(5, 1)]);
    }

    #[test]
    fn state_is_the_window_left_and_when_it_clears() {
        let mut a = held(7, 10, 10);
        a.counted = 50;
        a.reset_at = 0;
        // 100 - 50 + 7 left; slot 10 (1 s slots) leaves a 60 s window at the end of slot 70.
        assert_eq!(a.state(10_500, 1_000), (57, 60_500));
        a.reset_at = 90_000;
        assert_eq!(a.state(10_500, 1_000).1, 79_500);
        a.counted = 500;
        assert_eq!(a.state(10_500, 1_000).0, 0);
    }

    #[test]
    fn finish_deltas_move_tokens_lines_only() {
        let mut r = Lease::new(10, 60, false);
        let mut t = Lease::new(10, 60, true);
        let both = [&mut r, &mut t];
        assert_eq!(finish_deltas(&both, &[1, 40], Some(55)), vec![0, 15]);
        assert_eq!(finish_deltas(&both, &[1, 40], None), vec![0, 0]);
        assert_eq!(finish_deltas(&both, &[1, 40], Some(-5)), vec![0, -40]);
    }
}
