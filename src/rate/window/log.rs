//! The admission log of a sliding window: pure arithmetic on nanoseconds,
//! with no clock, lock or waiter in it. [`SlidingWindow`](super::SlidingWindow)
//! and the [`Limiter`](crate::Limiter)'s `window` stage both keep one.
//!
//! # Implementation details
//!
//! "At most `limit` cells in any closed window `[t, t + period]`": a cell
//! admitted at `a` counts against every window that contains `a`, the last
//! of which is `[a, a + period]`, so it is free again at `a + period + 1`
//! ns, its *expiry*. A request for `n` cells fits at `now` when the cells
//! not yet expired plus `n` are at most `limit`. Every admission is checked
//! against all the cells admitted in the `period` before it, so no closed
//! window of length `period` ever holds more than `limit`.
//!
//! The log is a ring (`VecDeque`) of `(start, count)` entries, oldest
//! first: `count` cells admitted at instant `start`. Admissions that land on
//! the same instant share one entry, so the ring never holds more entries
//! than cells in use: at most `limit`.
//!
//! Above [`EXACT_MAX`] cells, admissions are grouped into *buckets* of
//! `grain = ceil(period / BUCKETS)` ns: a cell admitted anywhere in the
//! bucket `[s, s + grain)` is recorded at `s` and expires at
//! `s + grain + period`, the expiry of a cell admitted at the bucket's last
//! nanosecond. That is never earlier than its exact expiry, so the bound
//! still holds; a cell is held at most `grain - 1` ns longer than exact.
//! Live entries then start within the last `period + grain` ns, so the ring
//! holds at most `BUCKETS + 2` entries. With `grain = 1` the two forms are
//! the same: the exact log is the bucketed one with one-nanosecond buckets.

use alloc::collections::VecDeque;

/// Largest limit kept as an exact log (one entry per admission instant).
pub(crate) const EXACT_MAX: u32 = 4096;
/// Buckets per period above [`EXACT_MAX`].
pub(crate) const BUCKETS: u64 = 4096;

/// See the module docs.
#[derive(Debug, Clone)]
pub(crate) struct Log {
    limit: u32,
    period_ns: u64,
    /// Bucket width in ns (1: exact).
    grain_ns: u64,
    /// `(start ns, count)`, oldest first: starts strictly increase, counts
    /// are at least 1.
    entries: VecDeque<(u64, u32)>,
    /// Sum of the counts.
    used: u32,
}

impl Log {
    /// An empty log; `limit` and `period_ns` are at least 1.
    pub(crate) fn new(limit: u32, period_ns: u64) -> Log {
        debug_assert!(limit > 0 && period_ns > 0);
        let grain_ns = if limit <= EXACT_MAX {
            1
        } else {
            period_ns.div_ceil(BUCKETS)
        };
        Log {
            limit,
            period_ns,
            grain_ns,
            entries: VecDeque::new(),
            used: 0,
        }
    }

    pub(crate) fn limit(&self) -> u32 {
        self.limit
    }

    pub(crate) fn period_ns(&self) -> u64 {
        self.period_ns
    }

    pub(crate) fn grain_ns(&self) -> u64 {
        self.grain_ns
    }

    /// The first instant at which cells recorded at `start` no longer count
    /// (saturating: `u64::MAX` is "not within 584 years").
    fn expiry(&self, start: u64) -> u64 {
        start
            .saturating_add(self.grain_ns)
            .saturating_add(self.period_ns)
    }

    /// Forgets the entries expired at `now`.
    pub(crate) fn purge(&mut self, now: u64) {
        while let Some(&(start, count)) = self.entries.front() {
            if self.expiry(start) > now {
                break;
            }
            self.used -= count;
            self.entries.pop_front();
        }
    }

    /// Cells free, as of the last [`purge`](Self::purge).
    pub(crate) fn free(&self) -> u32 {
        self.limit - self.used
    }

    /// The first instant at or after `from` at which `n` more cells fit
    /// (`n` at most the limit). Needs no purge: entries expired by `from`
    /// count as free.
    pub(crate) fn earliest(&self, n: u32, from: u64) -> u64 {
        debug_assert!(n <= self.limit);
        let over = (u64::from(self.used) + u64::from(n)).saturating_sub(u64::from(self.limit));
        if over == 0 {
            return from;
        }
        let mut freed = 0u64;
        for &(start, count) in &self.entries {
            freed += u64::from(count);
            if freed >= over {
                return self.expiry(start).max(from);
            }
        }
        // `over <= used`, the sum of the counts, since `n <= limit`.
        unreachable!("a request within the limit fits once every entry expires")
    }

    /// Records `n` cells admitted at `at` (they fit).
    pub(crate) fn record(&mut self, n: u32, at: u64) {
        debug_assert!(n <= self.free());
        let start = at - at % self.grain_ns;
        self.used += n;
        match self.entries.back_mut() {
            // The same instant (or bucket); an earlier reading of a clock
            // that went back is recorded later, never earlier.
            Some((last, count)) if *last >= start => *count += n,
            _ if n == 0 => {}
            _ => self.entries.push_back((start, n)),
        }
    }

    /// The instant at which every cell is free again (`now` if none is in
    /// use at `now`).
    pub(crate) fn full_at(&self, now: u64) -> u64 {
        self.entries
            .back()
            .map_or(now, |&(start, _)| self.expiry(start).max(now))
    }

    /// When every cell is free if cells are recorded at `now`.
    pub(crate) fn full_at_if_recorded(&self, now: u64) -> u64 {
        self.expiry(now - now % self.grain_ns)
    }

    /// Entries held (for the memory figures in `Debug` and the tests).
    pub(crate) fn entries(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_frees_one_period_and_one_ns_after_it_was_admitted() {
        let mut log = Log::new(2, 100);
        log.record(1, 10);
        log.record(1, 50);
        assert_eq!(log.earliest(1, 60), 111);
        assert_eq!(log.earliest(2, 60), 151);
        log.purge(110);
        assert_eq!(log.free(), 0);
        log.purge(111);
        assert_eq!(log.free(), 1);
        assert_eq!(log.full_at(111), 151);
    }

    #[test]
    fn same_instant_admissions_share_an_entry() {
        let mut log = Log::new(5, 100);
        log.record(2, 7);
        log.record(3, 7);
        log.record(0, 8);
        assert_eq!((log.entries(), log.free()), (1, 0));
        // A clock reading from before the last entry joins it.
        let mut log = Log::new(5, 100);
        log.record(1, 9);
        log.record(1, 4);
        assert_eq!((log.entries(), log.earliest(4, 9)), (1, 110));
    }

    #[test]
    fn buckets_above_the_exact_limit_expire_late_never_early() {
        let limit = EXACT_MAX + 1;
        let mut log = Log::new(limit, 4096 * 10);
        assert_eq!(log.grain_ns(), 10);
        // Admitted at 13: recorded in the bucket [10, 20), free at 20 + period.
        log.record(limit, 13);
        assert_eq!(log.earliest(1, 13), 20 + 40960);
        assert!(log.earliest(1, 13) > 13 + 40960);
        // One entry per bucket, however many instants.
        let mut log = Log::new(limit, 4096 * 10);
        for at in 0..10 {
            log.record(1, at);
        }
        assert_eq!(log.entries(), 1);
    }

    #[test]
    fn expiry_saturates_instead_of_wrapping() {
        let mut log = Log::new(1, u64::MAX);
        log.record(1, 5);
        assert_eq!(log.earliest(1, 5), u64::MAX);
        log.purge(u64::MAX - 1);
        assert_eq!(log.free(), 0);
    }
}
