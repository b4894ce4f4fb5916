//! `stats()`: a cheap snapshot of every primitive, for dashboards and logs.
//!
//! # Implementation details
//!
//! What a primitive already keeps (available permits, waiters, remaining
//! cells, pauses, keys) is read from its state. The totals live in one
//! [`Counts`] per semaphore, or one [`Counters`] (the counts, wait times
//! and pauses) per primitive with a clock: relaxed atomics that order
//! nothing. Admissions and denials sit on hot paths, where a locked
//! increment would cost as much as the state word's own CAS, and so do
//! waits under contention (the two locked adds of a queued admission were
//! 3 % of a contended `Limiter::run`), so all of them are *biased* to one
//! thread: the first thread to count on a primitive becomes its owner and
//! adds with a plain load and store to slots only it writes (exact: one
//! writer); every other thread adds with a relaxed `fetch_add` to shared
//! slots. Thread ids are never reused, so no second thread ever writes the
//! owner's slots. Pauses are rare and always shared; the longest wait is
//! written only when it grows. A lock-free `RateLimiter` or `TokenBucket`
//! check counts its admission just before the CAS that makes it, so the
//! count's store leaves with that locked write, and takes it back if a
//! retry ends in a refusal ([`Counts::admit_ahead`]). Without `std` (no
//! thread-local ids) and under loom every count is shared. A snapshot
//! reads each figure once, so figures read while other threads admit may
//! be from slightly different instants.

use core::time::Duration;

// Statistics order nothing, so they need no loom model: plain atomics,
// invisible to loom's scheduler.
use core::sync::atomic::{AtomicU64, Ordering};

/// The counts kept by every primitive: admissions, refusals and waits (see
/// the module docs). A semaphore keeps only these; a primitive with a clock
/// keeps them inside [`Counters`], which adds wait times and pauses.
///
/// The owner's slots come first (`repr(C)`), the ones an admission after
/// a wait touches first of all: a `Limiter` keeps its counters right after
/// its fast word, so that they share the line the admitting CAS brings
/// (see `limiter::state`).
#[derive(Debug)]
#[repr(C)]
pub(crate) struct Counts {
    /// The thread that counts in `*_owned` (0: none yet).
    owner: AtomicU64,
    admitted_owned: AtomicU64,
    waited_owned: AtomicU64,
    denied_owned: AtomicU64,
    admitted: AtomicU64,
    waited: AtomicU64,
    denied: AtomicU64,
}

impl Counts {
    pub(crate) const fn new() -> Self {
        Self {
            owner: AtomicU64::new(0),
            admitted_owned: AtomicU64::new(0),
            waited_owned: AtomicU64::new(0),
            denied_owned: AtomicU64::new(0),
            admitted: AtomicU64::new(0),
            waited: AtomicU64::new(0),
            denied: AtomicU64::new(0),
        }
    }

    /// Whether this thread owns the counts (or becomes their owner now):
    /// then it adds to the `*_owned` slots, else to the shared ones (see the
    /// module docs).
    #[inline(always)]
    fn owned(&self) -> bool {
        // Relaxed: statistics order nothing.
        let me = thread_id();
        if me == 0 {
            return false;
        }
        let owner = self.owner.load(Ordering::Relaxed);
        owner == me
            || (owner == 0
                && self
                    .owner
                    .compare_exchange(0, me, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok())
    }

    /// Adds one to `owned` if this thread owns the counts, else to
    /// `shared`.
    #[inline(always)]
    fn add(&self, owned: &AtomicU64, shared: &AtomicU64) {
        if self.owned() {
            bump(owned, 1);
        } else {
            shared.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One request admitted.
    #[inline(always)]
    pub(crate) fn admit(&self) {
        self.add(&self.admitted_owned, &self.admitted);
    }

    /// Counts one admission ahead of the CAS that makes it (see the module
    /// docs): the count stands if [`Ahead::keep`] is called, and is taken
    /// back when the guard is dropped otherwise.
    #[inline(always)]
    pub(crate) fn admit_ahead(&self) -> Ahead<'_> {
        self.admit();
        Ahead(self)
    }

    /// Takes back an [`admit`](Self::admit) of this thread's.
    #[cold]
    fn unadmit(&self) {
        // The same slot `admit` chose: the owner never changes once set
        // (so `owned` claims nothing now), and this thread either was it or
        // could not become it.
        if self.owned() {
            let owned = &self.admitted_owned;
            owned.store(owned.load(Ordering::Relaxed) - 1, Ordering::Relaxed);
        } else {
            self.admitted.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// One request refused (a failed `try_*` / `check`, or a deadline).
    #[inline]
    pub(crate) fn deny(&self) {
        self.add(&self.denied_owned, &self.denied);
    }

    /// One request admitted after queueing, on a primitive without a clock.
    #[cold]
    pub(crate) fn admit_queued(&self) {
        self.admit_waited();
    }

    /// Counts an admission after a wait; returns whether it went to the
    /// owner's slots (so that [`Counters`] adds the wait's time beside it).
    #[inline(always)]
    fn admit_waited(&self) -> bool {
        if self.owned() {
            bump(&self.admitted_owned, 1);
            bump(&self.waited_owned, 1);
            true
        } else {
            self.admitted.fetch_add(1, Ordering::Relaxed);
            self.waited.fetch_add(1, Ordering::Relaxed);
            false
        }
    }

    /// The counts; no wait times (a semaphore has no clock).
    pub(crate) fn snapshot(&self) -> Totals {
        Totals {
            admitted: sum(&self.admitted_owned, &self.admitted),
            denied: sum(&self.denied_owned, &self.denied),
            waited: sum(&self.waited_owned, &self.waited),
            wait_total: Duration::ZERO,
            wait_max: Duration::ZERO,
        }
    }
}

/// The [`Counts`] of a primitive with a clock, with the time its requests
/// waited (biased to the same owner thread) and the pauses requested.
/// Derefs to its counts, for `admit`, `deny` and `admit_ahead`. Laid out
/// in the order an admission after a wait touches its fields, pauses last
/// (`repr(C)`, as [`Counts`]).
#[derive(Debug)]
#[repr(C)]
pub(crate) struct Counters {
    counts: Counts,
    wait_ns_owned: AtomicU64,
    wait_ns: AtomicU64,
    max_wait_ns: AtomicU64,
    pauses: AtomicU64,
}

impl core::ops::Deref for Counters {
    type Target = Counts;

    fn deref(&self) -> &Counts {
        &self.counts
    }
}

impl Counters {
    pub(crate) const fn new() -> Self {
        Self {
            counts: Counts::new(),
            wait_ns_owned: AtomicU64::new(0),
            wait_ns: AtomicU64::new(0),
            max_wait_ns: AtomicU64::new(0),
            pauses: AtomicU64::new(0),
        }
    }

    /// One request admitted after waiting `ns` (on the primitive's clock).
    #[cold]
    pub(crate) fn admit_after(&self, ns: u64) {
        if self.counts.admit_waited() {
            bump(&self.wait_ns_owned, ns);
        } else {
            self.wait_ns.fetch_add(ns, Ordering::Relaxed);
        }
        // A locked write only for a new maximum (`fetch_max` always writes).
        if ns > self.max_wait_ns.load(Ordering::Relaxed) {
            self.max_wait_ns.fetch_max(ns, Ordering::Relaxed);
        }
    }

    /// One pause requested (`pause_for` / `pause_until`).
    #[cold]
    pub(crate) fn pause(&self) {
        self.pauses.fetch_add(1, Ordering::Relaxed);
    }

    /// Pauses requested since creation.
    pub(crate) fn pauses(&self) -> u64 {
        self.pauses.load(Ordering::Relaxed)
    }

    pub(crate) fn snapshot(&self) -> Totals {
        Totals {
            wait_total: Duration::from_nanos(sum(&self.wait_ns_owned, &self.wait_ns)),
            wait_max: Duration::from_nanos(self.max_wait_ns.load(Ordering::Relaxed)),
            ..self.counts.snapshot()
        }
    }
}

/// Adds `n` to a slot only this thread writes: a plain load and store, no
/// locked read-modify-write. Wrapping, as `fetch_add` on the shared slots
/// (a figure is the sum of its two slots modulo 2^64; only a wait total
/// on a hand-advanced clock can get there).
#[inline(always)]
fn bump(owned: &AtomicU64, n: u64) {
    owned.store(
        owned.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

/// A figure: its owner's slot and its shared slot (see [`bump`]).
fn sum(owned: &AtomicU64, shared: &AtomicU64) -> u64 {
    owned
        .load(Ordering::Relaxed)
        .wrapping_add(shared.load(Ordering::Relaxed))
}

/// An admission counted by [`Counts::admit_ahead`] before the CAS that
/// makes it: dropped without [`keep`](Ahead::keep), it takes the count
/// back.
#[must_use]
pub(crate) struct Ahead<'a>(&'a Counts);

impl Ahead<'_> {
    /// The CAS made the admission: the count stands.
    #[inline(always)]
    pub(crate) fn keep(self) {
        core::mem::forget(self);
    }
}

impl Drop for Ahead<'_> {
    fn drop(&mut self) {
        self.0.unadmit();
    }
}

/// This thread's id for [`Counts`]: unique for the life of the process,
/// never 0 (ids from a 64-bit counter do not run out).
#[cfg(all(feature = "std", not(loom)))]
#[inline(always)]
fn thread_id() -> u64 {
    use core::cell::Cell;
    static NEXT: AtomicU64 = AtomicU64::new(1);
    std::thread_local! {
        static ID: Cell<u64> = const { Cell::new(0) };
    }
    ID.with(|id| match id.get() {
        0 => {
            let fresh = NEXT.fetch_add(1, Ordering::Relaxed);
            id.set(fresh);
            fresh
        }
        known => known,
    })
}

/// No thread-local ids without `std` (and loom's threads share the OS
/// thread's): every count is shared.
#[cfg(not(all(feature = "std", not(loom))))]
#[inline(always)]
fn thread_id() -> u64 {
    0
}

impl Default for Counters {
    fn default() -> Self {
        Self::new()
    }
}

impl Default for Counts {
    fn default() -> Self {
        Self::new()
    }
}

/// The totals every primitive counts since it was created.
///
/// # Examples
///
/// ```
/// use limiters::{ManualClock, Quota, RateLimiter};
///
/// let limiter = RateLimiter::with_clock(Quota::per_second(1), ManualClock::new());
/// let _ = limiter.check();
/// let _ = limiter.check();
/// let totals = limiter.stats().totals;
/// assert_eq!((totals.admitted, totals.denied, totals.waited), (1, 1, 0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub struct Totals {
    /// Requests admitted (a `check_n(5)` or an `acquire_many(5)` counts
    /// once).
    pub admitted: u64,
    /// Requests refused: failed `try_acquire*` / `check*`, and deadline
    /// futures that gave up (`WouldExceed`, `TimedOut`).
    pub denied: u64,
    /// Admitted requests that had to wait (counted in `admitted` too).
    pub waited: u64,
    /// Time those requests spent waiting, from their first poll to their
    /// admission, on the primitive's clock (zero for the semaphores, which
    /// have no clock).
    pub wait_total: Duration,
    /// The longest of those waits.
    pub wait_max: Duration,
}

/// A snapshot of a [`Semaphore`](crate::Semaphore) or a
/// [`BoundedSemaphore`](crate::BoundedSemaphore), from `stats()`.
///
/// # Examples
///
/// ```
/// use limiters::Semaphore;
///
/// let sem = Semaphore::new(3);
/// let held = sem.try_acquire_many(2).unwrap();
/// let stats = sem.stats();
/// assert_eq!((stats.available, stats.in_use, stats.waiters), (1, 2, 0));
/// assert_eq!(stats.totals.admitted, 1);
/// # drop(held);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct SemaphoreStats {
    /// Permits available now.
    pub available: usize,
    /// Permits held, or collected by queued waiters.
    pub in_use: usize,
    /// Acquirers queued.
    pub waiters: usize,
    /// Whether it is closed.
    pub closed: bool,
    /// Totals since creation (no wait times: a semaphore has no clock).
    pub totals: Totals,
}

/// A snapshot of a [`RateLimiter`](crate::RateLimiter), a
/// [`TokenBucket`](crate::TokenBucket) or a
/// [`SlidingWindow`](crate::SlidingWindow), from `stats()`.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use limiters::{ManualClock, Quota, RateLimiter};
///
/// let limiter = RateLimiter::with_clock(Quota::per_second(10).allow_burst(5), ManualClock::new());
/// limiter.check_n(3).unwrap();
/// limiter.pause_for(Duration::from_secs(1));
/// let stats = limiter.stats();
/// assert_eq!((stats.remaining, stats.pauses, stats.totals.admitted), (0, 1, 1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct RateStats {
    /// Cells (tokens) admissible right now.
    pub remaining: u32,
    /// Acquirers queued for a later instant (zero for a token bucket,
    /// whose waiters hold reservations and no place in a list).
    pub waiters: usize,
    /// Pauses requested (`pause_for` / `pause_until`), since creation.
    pub pauses: u64,
    /// Totals since creation.
    pub totals: Totals,
}

/// A snapshot of a [`Limiter`](crate::Limiter), from `stats()`.
///
/// # Examples
///
/// ```
/// use limiters::{Limiter, ManualClock, Quota};
///
/// # futures_lite::future::block_on(async {
/// let limiter = Limiter::builder()
///     .concurrency(4)
///     .rate(Quota::per_second(10))
///     .clock(ManualClock::new())
///     .build()?;
/// let permit = limiter.acquire().await?;
/// let stats = limiter.stats();
/// assert_eq!((stats.in_use, stats.available, stats.waiters), (Some(1), Some(3), 0));
/// assert_eq!(stats.totals.admitted, 1);
/// # drop(permit);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct LimiterStats {
    /// Slots held (including slots kept until their minimum hold ends);
    /// `None` without a concurrency limit.
    pub in_use: Option<usize>,
    /// Slots free now; `None` without a concurrency limit.
    pub available: Option<usize>,
    /// Requests waiting: for a slot, for a minimum hold to end, or for the
    /// rates.
    pub waiters: usize,
    /// Pauses requested (`pause_for` / `pause_until`), since creation.
    pub pauses: u64,
    /// Whether it is closed.
    pub closed: bool,
    /// Totals since creation.
    pub totals: Totals,
}

/// A snapshot of a [`KeyedRateLimiter`](crate::KeyedRateLimiter) or a
/// [`KeyedLimiter`](crate::KeyedLimiter), from `stats()`.
///
/// # Examples
///
/// ```
/// use limiters::{KeyedRateLimiter, ManualClock, Quota};
///
/// let per_ip = KeyedRateLimiter::with_clock(Quota::per_second(1), ManualClock::new());
/// per_ip.check(&"192.0.2.1").unwrap();
/// per_ip.check(&"192.0.2.2").unwrap();
/// assert!(per_ip.check(&"192.0.2.2").is_err());
/// let stats = per_ip.stats();
/// assert_eq!((stats.keys, stats.totals.admitted, stats.totals.denied), (2, 2, 1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct KeyedStats {
    /// Keys stored now.
    pub keys: usize,
    /// Requests waiting, over all keys (zero for a keyed rate limiter, whose
    /// waiters hold reservations and no place in a list).
    pub waiters: usize,
    /// Totals since creation (for a [`KeyedLimiter`](crate::KeyedLimiter):
    /// over the keys stored now; an evicted key's figures leave with it).
    pub totals: Totals,
}

impl Totals {
    /// The sum of two snapshots (wait maxima: the larger).
    #[cfg(feature = "std")]
    pub(crate) fn add(self, other: Totals) -> Totals {
        Totals {
            admitted: self.admitted + other.admitted,
            denied: self.denied + other.denied,
            waited: self.waited + other.waited,
            wait_total: self.wait_total.saturating_add(other.wait_total),
            wait_max: self.wait_max.max(other.wait_max),
        }
    }
}

#[cfg(all(test, feature = "std", not(loom)))]
mod tests {
    use super::*;

    /// Three threads count waits at once, the first of them the owner:
    /// every figure is the exact sum, whichever slots each thread used.
    #[test]
    fn waits_are_exact_across_the_owner_and_the_other_threads() {
        const PER_THREAD: u64 = 100_000;
        let counters = Counters::new();
        // This thread counts first: it owns the slots from here on.
        counters.admit();
        std::thread::scope(|s| {
            for thread in 1..=3u64 {
                let counters = &counters;
                s.spawn(move || {
                    for i in 0..PER_THREAD {
                        counters.admit_after(thread * 1_000 + i % 7);
                        if i % 2 == 0 {
                            counters.deny();
                        }
                    }
                });
            }
            for i in 0..PER_THREAD {
                counters.admit_after(i % 5);
            }
        });
        let totals = counters.snapshot();
        let mut wait_ns = (0..PER_THREAD).map(|i| i % 5).sum::<u64>();
        for thread in 1..=3u64 {
            wait_ns += (0..PER_THREAD).map(|i| thread * 1_000 + i % 7).sum::<u64>();
        }
        assert_eq!(totals.admitted, 1 + 4 * PER_THREAD);
        assert_eq!(totals.waited, 4 * PER_THREAD);
        assert_eq!(totals.denied, 3 * PER_THREAD / 2);
        assert_eq!(totals.wait_total, Duration::from_nanos(wait_ns));
        assert_eq!(totals.wait_max, Duration::from_nanos(3_006));
    }

    /// A semaphore's queued admissions: counted in `admitted` and `waited`,
    /// no times.
    #[test]
    fn queued_admissions_count_on_every_thread() {
        let counts = Counts::new();
        counts.admit_queued();
        std::thread::scope(|s| {
            s.spawn(|| counts.admit_queued());
        });
        let totals = counts.snapshot();
        assert_eq!((totals.admitted, totals.waited), (2, 2));
        assert_eq!(
            (totals.wait_total, totals.wait_max),
            (Duration::ZERO, Duration::ZERO)
        );
    }

    /// Wait totals wrap as `fetch_add` does (a hand-advanced clock can
    /// report waits that add up past `u64::MAX` ns); nothing panics.
    #[test]
    fn a_wait_total_past_u64_max_wraps_in_both_slots() {
        let counters = Counters::new();
        counters.admit_after(u64::MAX);
        counters.admit_after(2);
        std::thread::scope(|s| {
            s.spawn(|| {
                counters.admit_after(u64::MAX);
                counters.admit_after(3);
            });
        });
        let totals = counters.snapshot();
        assert_eq!(totals.waited, 4);
        // 2 * (2^64 - 1) + 5 = 3 (mod 2^64).
        assert_eq!(totals.wait_total, Duration::from_nanos(3));
        assert_eq!(totals.wait_max, Duration::from_nanos(u64::MAX));
    }
}
