//! The state of a [`RateLimiter`](super::RateLimiter) behind its public
//! API: an 8-byte word for the hot path, and the 16-byte [`Wide`] state
//! once the limiter's quota or pause has changed. Times are nanoseconds
//! since the limiter's creation; the front converts to and from its
//! clock's instants.
//!
//! # Implementation details
//!
//! A limiter starts *narrow*: its `tat` is one `u64`, in ticks of
//! `1 / c` ns, where `period / cells = t / c` in lowest terms (so a quota
//! whose emission interval is a whole number of nanoseconds counts in
//! nanoseconds, and `Quota::per_second(3)` in thirds of one). Its quota
//! cannot change while it is narrow, so a check is one load, a few 64-bit
//! operations and one 8-byte CAS; a denial writes nothing and reads
//! nothing more. Every value the word holds while narrow means the same
//! thing, so a CAS that finds the value it read is right whatever happened
//! in between (no generation is needed).
//!
//! The first quota change or pause, or a `tat` or `now` the word cannot
//! hold (at least 2^62 ticks: 146 years for a whole-ns interval; for
//! `c` ticks per ns, `2^62 / c` ns), moves the limiter to the [`Wide`]
//! state for good, under the waiters' lock: the wide word is written from
//! the narrow one, then the narrow word is swapped for [`WIDE`] by a CAS
//! from the value converted (if a check moved it meanwhile, the move is
//! redone). [`WIDE`] is never a narrow value and never leaves the word, so
//! a check that read a narrow value before the move fails its CAS and
//! retries on the wide state; a check that reads [`WIDE`] (Acquire) sees
//! the wide word written before it (Release). The wide state's own
//! generation scheme then handles quota changes (see [`super::state`]).
//!
//! Waiters in either state keep their `tat` in the wide state's units
//! (`1 / cells` ns, `cells = c * scale`), so a move re-times nobody. The
//! wide state, the waiters' lock and the statistics live behind one `Box`,
//! which keeps the limiter itself small.

use alloc::boxed::Box;

use crate::error::InsufficientCapacity;
use crate::rate::arith::{Step, Ticks};
use crate::rate::gcra::state::{pack_state, Refusal, Reserved, Shared, Status, Waiter, Wide};
use crate::rate::quota::Quota;
use crate::stats::{Ahead, Counters};
use crate::sync::{AtomicU64, MutexGuard, Ordering};

/// The narrow word's value once the limiter has moved to the wide state.
const WIDE: u64 = u64::MAX;

/// Narrow `tat`s and tick counts of `now` stay at most this (2^62 ticks),
/// so `tat + n * t` never overflows (`n * t <= tau <= 2^61`) and never
/// reaches [`WIDE`].
const NARROW_MAX: u64 = 1 << 62;

/// The largest burst tolerance (ticks) a narrow limiter takes.
const NARROW_TAU_MAX: u64 = 1 << 61;

/// A [`RateLimiter`](super::RateLimiter)'s state: see the module docs.
pub(crate) struct State {
    /// `tat` in ticks of `1 / c` ns while narrow; [`WIDE`] after the move.
    word: AtomicU64,
    narrow: Narrow,
    /// Everything off the hot path.
    pub(crate) cold: Box<Cold>,
}

/// The state and counters the hot path does not touch (but for the
/// `admitted` counter).
pub(crate) struct Cold {
    pub(crate) wide: Wide,
    pub(crate) counters: Counters,
}

/// The starting quota in lowest terms: `t / c` ns per cell. (A
/// [`Limiter`](crate::Limiter)'s single quota uses it too: see
/// `limiter::state`.)
#[derive(Clone, Copy, Debug)]
pub(crate) struct Narrow {
    /// Emission interval, ticks.
    t: u64,
    /// Burst tolerance, ticks (`burst * t`).
    tau: u64,
    /// The latest `now` (ns) the word can hold: `NARROW_MAX / c`.
    now_max: u64,
    /// Ticks per ns.
    c: u32,
    /// Wide ticks per narrow tick (`cells / c`).
    scale: u32,
}

impl Narrow {
    /// `quota` in lowest terms, if its burst tolerance fits a narrow word.
    pub(crate) fn of(quota: Quota) -> Option<Narrow> {
        let cells = quota.cells();
        let g = gcd(u64::from(cells), quota.period_ns());
        // `g` divides `cells`, a `u32`.
        let (c, t) = ((u64::from(cells) / g) as u32, quota.period_ns() / g);
        let tau = u64::from(quota.burst()).checked_mul(t)?;
        (tau <= NARROW_TAU_MAX).then_some(Narrow {
            t,
            tau,
            now_max: NARROW_MAX / u64::from(c),
            c,
            scale: (g as u32),
        })
    }

    /// The same quota in the wide state's ticks.
    fn ticks(&self) -> Ticks {
        let scale = u128::from(self.scale);
        Ticks {
            t: u128::from(self.t) * scale,
            cells: u128::from(self.c) * scale,
            tau: u128::from(self.tau) * scale,
            burst: self.burst(),
        }
    }

    /// The burst (cells): `tau / t` exactly. Not stored, which keeps
    /// [`RateLimiter`](super::RateLimiter) at 64 bytes.
    fn burst(&self) -> u32 {
        // `tau = burst * t` with a `u32` burst.
        (self.tau / self.t) as u32
    }

    /// Whether `n` cells exceed the burst: `n * t > tau` (`tau = burst *
    /// t`), so no division. For one cell it is `t > tau`.
    #[inline(always)]
    fn exceeds_burst(&self, n: u32) -> bool {
        u64::from(n)
            .checked_mul(self.t)
            .is_none_or(|ticks| ticks > self.tau)
    }

    /// Wide ticks per narrow tick.
    pub(crate) fn scale(&self) -> u32 {
        self.scale
    }

    /// `now` in narrow ticks, if the word can hold it.
    #[inline(always)]
    pub(crate) fn at(&self, now: u64) -> Option<u64> {
        // `now <= NARROW_MAX / c` exactly when `now * c <= NARROW_MAX`: one
        // comparison instead of an overflow test and a range test.
        (now <= self.now_max).then(|| now * u64::from(self.c))
    }

    /// `n` cells (at most the burst) at `now_t` (from [`at`](Self::at))
    /// on a narrow `tat`: the new `tat` if they conform, otherwise the
    /// ticks by which they would overrun the burst tolerance.
    #[inline(always)]
    pub(crate) fn step(&self, tat: u64, now_t: u64, n: u32) -> Result<u64, u64> {
        // No overflow: `now_t <= 2^62`, a stored `tat` at most `now_t +
        // tau` of an earlier `now_t`, and `n * t <= tau <= 2^61`.
        let new = tat.max(now_t) + u64::from(n) * self.t;
        let ahead = new - now_t;
        if ahead > self.tau {
            Err(ahead - self.tau)
        } else {
            Ok(new)
        }
    }

    /// The refusal at `now` of cells that overrun the tolerance by `over`
    /// ticks.
    #[inline(always)]
    fn refusal(&self, now: u64, over: u64) -> Refusal {
        Refusal::Until(now.saturating_add(self.wait_ns(over)))
    }

    /// The ns to wait for an overrun of `over` ticks to be gone.
    #[inline(always)]
    fn wait_ns(&self, over: u64) -> u64 {
        if self.c == 1 {
            over
        } else {
            over.div_ceil(u64::from(self.c))
        }
    }
}

/// Greatest common divisor (binary; both non-zero).
fn gcd(mut a: u64, mut b: u64) -> u64 {
    let shift = (a | b).trailing_zeros();
    a >>= a.trailing_zeros();
    loop {
        b >>= b.trailing_zeros();
        if a > b {
            core::mem::swap(&mut a, &mut b);
        }
        b -= a;
        if b == 0 {
            return a << shift;
        }
    }
}

impl State {
    /// A fresh state for `quota`, with full burst credit.
    pub(crate) fn new(quota: Quota) -> State {
        let narrow = Narrow::of(quota);
        State {
            word: AtomicU64::new(if narrow.is_some() { 0 } else { WIDE }),
            // Unused when the word starts wide.
            narrow: narrow.unwrap_or(Narrow {
                t: 1,
                tau: 1,
                now_max: 0,
                c: 1,
                scale: 1,
            }),
            cold: Box::new(Cold {
                wide: Wide::new(quota),
                counters: Counters::new(),
            }),
        }
    }

    /// Admits `n` cells at `now`, lock-free, or says why not; `None` when
    /// the narrow word cannot decide (it is wide, or cannot hold `now`):
    /// then [`check_wide`](Self::check_wide) decides. Apart so that a
    /// caller keeps the narrow decision in registers and calls the wide
    /// path out of line with its own result.
    ///
    /// Counts an admission in `stats` itself, just before the CAS that
    /// makes it: the counter's store then leaves with the CAS's locked
    /// write instead of after it (the next check's CAS would wait for it).
    /// A lost CAS retries out of line ([`retry_narrow`](Self::retry_narrow)),
    /// which takes the count back if the retry ends in anything but an
    /// admission. Refusals are the caller's to count.
    #[inline(always)]
    pub(crate) fn check_narrow(&self, now: u64, n: u32) -> Option<Result<(), Refusal>> {
        let q = self.narrow;
        let now_t = q.at(now)?;
        let tat = self.word.load(Ordering::Acquire);
        if tat == WIDE {
            return None;
        }
        if q.exceeds_burst(n) {
            return Some(Err(Refusal::TooLarge(q.burst().into())));
        }
        match q.step(tat, now_t, n) {
            Err(over) => Some(Err(q.refusal(now, over))),
            Ok(new) => {
                let counted = self.cold.counters.admit_ahead();
                // AcqRel: Release publishes this admission to the next CAS;
                // Acquire sees the ones before it. (`new <= now_t + tau`,
                // in range.)
                match self
                    .word
                    .compare_exchange(tat, new, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => {
                        counted.keep();
                        Some(Ok(()))
                    }
                    Err(actual) => self.retry_narrow(counted, actual, now, now_t, n),
                }
            }
        }
    }

    /// [`check_narrow`](Self::check_narrow) after its CAS lost to `tat`,
    /// with its admission `counted` ahead.
    #[cold]
    #[inline(never)]
    fn retry_narrow(
        &self,
        counted: Ahead<'_>,
        mut tat: u64,
        now: u64,
        now_t: u64,
        n: u32,
    ) -> Option<Result<(), Refusal>> {
        let q = self.narrow;
        // Leaving without `keep` takes the count back.
        loop {
            if tat == WIDE {
                return None;
            }
            let new = match q.step(tat, now_t, n) {
                Ok(new) => new,
                Err(over) => return Some(Err(q.refusal(now, over))),
            };
            // AcqRel: as in `check_narrow`.
            match self
                .word
                .compare_exchange_weak(tat, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    counted.keep();
                    return Some(Ok(()));
                }
                Err(actual) => tat = actual,
            }
        }
    }

    /// [`check_narrow`](Self::check_narrow)'s `None`: the check on the
    /// wide state, moving there first if the narrow word cannot hold `now`.
    pub(crate) fn check_wide(&self, now: u64, n: u32) -> Result<(), Refusal> {
        if self.word.load(Ordering::Acquire) != WIDE {
            self.widen(&self.lock());
        }
        self.cold.wide.check_n(now, n)
    }

    /// Moves to the wide state (see the module docs); `_shared` is the
    /// waiters' lock, which every move and every narrow write but a
    /// check's holds.
    fn widen(&self, _shared: &Shared) {
        let k = self.narrow.ticks();
        let mut tat = self.word.load(Ordering::Acquire);
        while tat != WIDE {
            // The wide word is still the one `Wide::new` wrote (generation
            // 0): nothing else writes it while the word is narrow.
            let wide = pack_state(u128::from(tat) * u128::from(self.narrow.scale), &k, 0);
            self.cold.wide.word.store(wide, Ordering::Relaxed);
            // AcqRel: Release publishes the wide word to every check that
            // reads `WIDE`; Acquire sees every admission made before.
            match self
                .word
                .compare_exchange(tat, WIDE, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(actual) => tat = actual,
            }
        }
    }

    /// `f(quota, tat, now)` on one consistent reading of the state (`tat` in
    /// the wide state's ticks).
    pub(crate) fn read<R>(&self, now: u64, f: impl Fn(&Ticks, u128, u64) -> R) -> R {
        match self.word.load(Ordering::Acquire) {
            WIDE => self.cold.wide.read(now, f),
            tat => f(
                &self.narrow.ticks(),
                u128::from(tat) * u128::from(self.narrow.scale),
                now,
            ),
        }
    }

    /// The end of the pause in force (ns; in the past if none). A narrow
    /// limiter has never been paused.
    pub(crate) fn paused_until(&self) -> u64 {
        self.cold.wide.paused_until()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Shared> {
        self.cold.wide.lock()
    }

    /// A quota change and/or a pause (see `Wide::change`): moves to the
    /// wide state first. `now` reads the clock (ns), under the lock.
    pub(crate) fn change(
        &self,
        now: impl FnOnce() -> u64,
        quota: Option<Quota>,
        pause_until_ns: Option<u64>,
    ) {
        let shared = self.lock();
        self.widen(&shared);
        let now = now();
        self.cold.wide.change(shared, now, quota, pause_until_ns);
    }

    /// Reserves `n` cells (`n` at most the burst) under the shared lock (see
    /// `Wide::reserve_locked`).
    pub(crate) fn reserve_locked(
        &self,
        shared: &mut Shared,
        now: u64,
        n: u32,
    ) -> Result<Reserved, InsufficientCapacity> {
        let q = self.narrow;
        let k = q.ticks();
        let scale = u128::from(q.scale);
        let mut tat = self.word.load(Ordering::Acquire);
        while tat != WIDE {
            if q.exceeds_burst(n) {
                return Err(InsufficientCapacity {
                    requested: n,
                    burst: q.burst(),
                });
            }
            // Narrow: never paused. A step in wide ticks is a whole number
            // of narrow ones (`now`, `tat` and `t` all are).
            let step = Step::reserve(u128::from(tat) * scale, now, n, &k);
            let new = step.tat / scale;
            if q.at(now).is_none() || new > u128::from(NARROW_MAX) {
                self.widen(shared);
                break;
            }
            // AcqRel: as in `check_narrow`. (`new <= NARROW_MAX`.)
            match self
                .word
                .compare_exchange(tat, new as u64, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {}
                Err(actual) => {
                    tat = actual;
                    continue;
                }
            }
            let ready_ns = step.earliest_ns(&k).max(now);
            if ready_ns <= now {
                return Ok(Reserved::Now);
            }
            return Ok(Reserved::Later(Waiter {
                gen: 0,
                tat: step.tat,
                n,
                ready_ns,
                status: Status::Waiting,
            }));
        }
        self.cold.wide.reserve_locked(shared, now, n)
    }

    /// Whether a linked waiter is done (see `Wide::settle`). Only a quota
    /// change makes a waiter too large, and that moved the limiter to the
    /// wide state, so the refund `settle` may make is the wide one.
    pub(crate) fn settle(
        &self,
        shared: &Shared,
        now: u64,
        waiter: &Waiter,
    ) -> Option<Result<(), InsufficientCapacity>> {
        self.cold.wide.settle(shared, now, waiter)
    }

    /// Gives back a cancelled waiter's cells (see `Wide::refund`), under the
    /// shared lock.
    pub(crate) fn refund(&self, shared: &Shared, now: u64, waiter: &Waiter) {
        if waiter.status == Status::Granted || waiter.ready_ns <= now {
            return;
        }
        let q = self.narrow;
        let scale = u128::from(q.scale);
        let mut tat = self.word.load(Ordering::Acquire);
        while tat != WIDE {
            if u128::from(tat) * scale != waiter.tat {
                return;
            }
            // `waiter.tat` counts its `n` cells: no underflow; whole narrow
            // ticks, as in `reserve_locked`.
            let refunded = (waiter.tat - u128::from(waiter.n) * u128::from(q.t) * scale) / scale;
            // AcqRel: as in `check_narrow`; a check that loses this race retries
            // and sees the refunded credit.
            match self.word.compare_exchange(
                tat,
                refunded as u64,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => tat = actual,
            }
        }
        self.cold.wide.refund(shared, now, waiter);
    }
}
