//! # Implementation details
//!
//! A [`Limiter`](super::Limiter) passes every request through up to three
//! stages, in this order: a concurrency slot, the slot's minimum hold, and
//! the rate gate.
//!
//! **Slots** are permits of a FIFO [`Semaphore`]. A slot whose work ended
//! before its `min_hold` is given back to the semaphore at once, but leaves
//! a *ghost* behind: an entry `deadline -> weight` counting as still in use
//! until `deadline`. A request that got its permits from the semaphore then
//! passes the *hold queue* (a one-permit FIFO semaphore): its head starts if
//! `running + ghost_weight + weight <= capacity`, and otherwise sleeps on the
//! clock until enough ghosts expire, or until a release wakes it (a release
//! can free a slot, or swap a running slot for a ghost that expires sooner).
//! So the hold is enforced without spawning anything and without a timer
//! owned by nobody: only the request that needs the slot waits for it, and
//! only the head of the queue sleeps. The invariant, kept under one small
//! lock, is `running + ghost_weight <= capacity`, where `running` counts the
//! requests past the hold stage (waiting for the rate, or admitted). A
//! ghost is recorded *before* its permit goes back to the semaphore.
//!
//! **The rate gate** is a one-permit FIFO semaphore: only its holder, the
//! head of the rate queue, looks at the rates, so nothing is reserved ahead
//! of time and nothing ever needs refunding. The head computes the first
//! instant at or after it reached the head at which *every* quota conforms
//! (and no pause is in force), sleeps until then, and commits the cells of
//! every quota at that instant, in one critical section. Each quota keeps
//! its GCRA `tat` in ticks, with the exact integer math of the
//! [`RateLimiter`](crate::RateLimiter) ([`crate::rate::arith`]), so the window
//! bound `burst + floor(W * cells / period)` holds for each quota
//! separately. Admission instants are never before the previous admission.
//!
//! A **window** stage (`LimiterBuilder::window`) is the sliding window's
//! admission log ([`Log`], shared with [`SlidingWindow`](crate::SlidingWindow)),
//! consulted by the same head in the same critical section: the first
//! instant its log has room for the cells folds into the head's instant like
//! a quota's, and the cells are recorded at the instant the head returns,
//! so at most `n` requests *start* in any closed window of length `period`.
//! A pause spends no window cell.
//!
//! **The idle path.** A request that finds a free slot and nobody at the
//! rate gate is admitted at once if the rates conform: a hand-written
//! semaphore + rate limiter pair would not queue it either. For a limiter
//! with one quota, no window and no rate source, whose quota fits the
//! [`RateLimiter`](crate::RateLimiter)'s 8-byte word ([`Narrow`]), that
//! admission takes no lock: the quota's `tat` then lives in the [`Fast`]
//! word, and the idle path is one compare-and-swap on it, made only while
//! the gate is idle. Without any quota, window or source the word holds
//! no `tat` and the idle path only reads it (no pause is in force while it
//! is in use). Everything that takes the rates' lock (a head of the
//! rate queue, a pause, `try_*`, a key under a global limiter) first moves
//! the `tat` from the word into the locked state and leaves the word
//! [`SLOW`], after which idle requests take the lock as well. The word
//! comes back when an idle request is admitted under the lock (so with the
//! gate idle and no pause in force at its instant). The word holds the
//! quota's whole state, so a CAS that finds the value it read is right
//! whatever happened in between (as the `RateLimiter`'s narrow word): an
//! idle request that read the word before it was moved out and CASes after
//! it came back is admitted after the pause, if any, had ended.
//!
//! **Layout.** Under contention two cores take turns admitting, so every
//! cache line a run writes moves between them, and a line that mixes
//! written words with read-only configuration makes every read of that
//! configuration miss too. [`Inner`] is laid out by hand (`repr(C)`): the
//! words every admission writes come first, together, on the lines that
//! start the allocation (the fast word and the statistics counters: the
//! CAS that admits brings the counters' owner word along); then the words
//! written at other moments, each on cache lines of its own
//! ([`CachePadded`]: the slots' semaphore, the rate gate, the rates'
//! lock, the hold queue); then the configuration, read on every run and
//! written never, which stays shared in every core's cache. With the wait
//! statistics counted on the owner thread's slots (`stats`), this took the
//! contended `Limiter::run` (64 tasks, 8 slots, 2 workers;
//! `benches/paired.rs`) from 0.93-0.98 to 0.86-0.92 of the time of the
//! tokio `Semaphore` + governor pair, in processes alternating the builds.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::task::Waker;
use core::time::Duration;

use super::adaptive::{Adaptive, Algorithm};
use super::Outcome;
use crate::clock::{nanos, Clock, ClockInstant};
use crate::error::AcquireError;
use crate::limiter::source::RateSource;
use crate::rate::arith::{Step, Ticks};
use crate::rate::gcra::narrow::Narrow;
use crate::rate::quota::Quota;
use crate::rate::window::log::Log;
use crate::semaphore::Semaphore;
use crate::stats::Counters;
use crate::sync::{AtomicU64, CachePadded, Mutex, MutexGuard, Ordering};

/// State shared by every clone of a `Limiter`, in the order described
/// under "Layout" in the module docs (the fields' order is part of the
/// design: `repr(C)` keeps it).
#[repr(C, align(64))]
pub(crate) struct Inner<C: Clock> {
    /// The single quota's lock-free word, where the limiter has the shape
    /// for it (see the module docs). Written by every idle admission.
    fast: Option<Fast>,
    /// Written by every admission; right after `fast`, on its lines.
    pub(crate) counters: Counters,
    /// The rate queue; always present (it also carries pauses and `close`).
    pub(crate) gate: CachePadded<Semaphore>,
    rates: CachePadded<Mutex<Rates>>,
    pub(crate) slots: Option<Slots>,
    // Read-only from here on.
    pub(crate) clock: C,
    /// Instants are kept as nanoseconds since this one.
    base: C::Instant,
    /// The quotas as configured (for `Debug` and validation).
    pub(crate) quotas: Vec<Quota>,
    /// The windows as configured: `(n, period)`.
    pub(crate) windows: Vec<(u32, Duration)>,
    /// Smallest burst over all quotas and windows (`u32::MAX` without any).
    pub(crate) min_burst: u32,
    /// What `run` and `acquire` charge.
    pub(crate) weight: u32,
    /// Rates asked, not kept: admitted after the quotas above conform
    /// (see [`RateSource`]).
    pub(crate) sources: Vec<Arc<dyn RateSource<C::Instant>>>,
}

impl<C: Clock> Inner<C> {
    pub(crate) fn new(
        clock: C,
        concurrency: Option<usize>,
        min_hold: Duration,
        quotas: Vec<Quota>,
        windows: Vec<(u32, Duration)>,
        weight: u32,
        sources: Vec<Arc<dyn RateSource<C::Instant>>>,
    ) -> Self {
        let base = clock.origin();
        let min_burst = quotas
            .iter()
            .map(|q| q.burst())
            .chain(windows.iter().map(|&(n, _)| n))
            .min()
            .unwrap_or(u32::MAX);
        let rates = Rates {
            tats: quotas.iter().map(|&q| (Ticks::of(q), 0)).collect(),
            windows: windows
                .iter()
                .map(|&(n, p)| Log::new(n, nanos(p)))
                .collect(),
            paused_until_ns: 0,
            head: None,
        };
        let fast = match (quotas.as_slice(), windows.is_empty(), sources.is_empty()) {
            ([], true, true) => Some(Fast {
                word: AtomicU64::new(0),
                q: None,
            }),
            ([quota], true, true) => Narrow::of(*quota).map(|q| Fast {
                word: AtomicU64::new(0),
                q: Some(q),
            }),
            _ => None,
        };
        Self {
            clock,
            base,
            slots: concurrency.map(|capacity| Slots {
                sem: CachePadded(Semaphore::new(capacity)),
                adaptive: None,
                capacity,
                min_hold_ns: nanos(min_hold),
                hold_gate: CachePadded(Semaphore::new(1)),
                holds: Mutex::new(Holds::default()),
            }),
            gate: CachePadded(Semaphore::new(1)),
            rates: CachePadded(Mutex::new(rates)),
            fast,
            quotas,
            windows,
            min_burst,
            weight,
            counters: Counters::new(),
            sources,
        }
    }

    /// Makes the concurrency limit adaptive (the slots' capacity is then
    /// the algorithm's maximum); the semaphore starts at the algorithm's
    /// initial limit.
    pub(crate) fn with_adaptive(mut self, algorithm: Box<dyn Algorithm>) -> Self {
        if let Some(slots) = &mut self.slots {
            let initial = algorithm.initial_limit().clamp(1, slots.capacity);
            slots.sem = CachePadded(Semaphore::new(initial));
            slots.adaptive = Some(Box::new(Adaptive::new(algorithm)));
        }
        self
    }

    pub(crate) fn now_ns(&self) -> u64 {
        self.clock.nanos_since(self.base)
    }

    /// The rates, locked, with the quota's `tat` moved out of the fast word
    /// (see the module docs). Whatever reads or writes a `tat` locks them
    /// here; the sleeping head's waker and the pause's end only need
    /// [`Self::rates_lock`].
    fn rates(&self) -> MutexGuard<'_, Rates> {
        let mut rates = self.rates.lock();
        if let Some(fast) = &self.fast {
            fast.move_out(&mut rates);
        }
        rates
    }

    /// The rates' lock, leaving the fast word as it is.
    fn rates_lock(&self) -> MutexGuard<'_, Rates> {
        self.rates.lock()
    }

    pub(crate) fn instant_at(&self, ns: u64) -> C::Instant {
        self.base.saturating_add(Duration::from_nanos(ns))
    }

    pub(crate) fn ns_of(&self, instant: C::Instant) -> u64 {
        nanos(instant.saturating_duration_since(self.base))
    }

    /// Counts time from `other`'s base instant too (a key's limiter from
    /// the global one's: their instants then convert for free). Only on a
    /// fresh limiter: its state holds no instant yet, and an earlier base
    /// changes nothing else.
    #[cfg(feature = "std")]
    pub(crate) fn share_base(&mut self, other: &Inner<C>) {
        self.base = other.base;
    }

    /// `ns` (this limiter's nanoseconds) in `other`'s.
    pub(crate) fn ns_in(&self, other: &Inner<C>, ns: u64) -> u64 {
        if self.base == other.base {
            ns
        } else {
            other.ns_of(self.instant_at(ns))
        }
    }

    /// Fails a request that could never be served, or comes after `close`.
    pub(crate) fn validate(&self, weight: u32) -> Result<(), AcquireError> {
        if self.gate.is_closed() {
            return Err(AcquireError::Closed);
        }
        if let Some(slots) = &self.slots {
            if weight as usize > slots.capacity {
                return Err(AcquireError::ExceedsCapacity {
                    requested: weight as usize,
                    capacity: slots.capacity,
                });
            }
        }
        if weight > self.min_burst {
            return Err(AcquireError::InsufficientCapacity {
                requested: weight,
                burst: self.min_burst,
            });
        }
        for source in &self.sources {
            let burst = source.burst();
            if weight > burst {
                return Err(AcquireError::ExceedsCapacity {
                    requested: weight as usize,
                    capacity: burst as usize,
                });
            }
        }
        Ok(())
    }

    /// The head of the rate queue, there since `head_since`, asks to be
    /// admitted with `n` cells: `Ok(now)` if it is (its cells are committed
    /// at an instant between `head_since` and now), `Err(at)` with the
    /// instant to sleep until; `waker` is then woken by `close`. `now` is a
    /// fresh reading of the clock (the caller may reuse one it just took).
    pub(crate) fn try_admit(
        &self,
        n: u32,
        head_since: u64,
        now: u64,
        waker: &Waker,
    ) -> Result<u64, u64> {
        let mut rates = self.rates();
        let at = rates.earliest(n, head_since);
        if at <= now {
            rates.commit(n, at, now);
            let stale = rates.head.take();
            drop(rates);
            drop(stale);
            return Ok(now);
        }
        if rates.head.as_ref().is_some_and(|w| w.will_wake(waker)) {
            return Err(at);
        }
        drop(rates);
        // A new waker: cloned outside the lock, and the one it replaces
        // dropped outside it, since either may run arbitrary code (dropping
        // the last handle to a task drops the task, whose futures may use
        // this limiter). The stored waker only serves `close`.
        let new = waker.clone();
        let stale = self.rates_lock().head.replace(new);
        drop(stale);
        if self.gate.is_closed() {
            // `close` may have taken the head before our waker was stored:
            // be polled again, to see it.
            waker.wake_by_ref();
        }
        Err(at)
    }

    /// The fast path of a request that reaches the rate gate with nobody
    /// there: if the gate is free (no head, nobody queued, not closed) and
    /// `n` cells conform at `now`, they are taken at `now` and the request
    /// is admitted without passing the gate. Checked under the rates' lock,
    /// which every head takes to admit, so this is the same as taking the
    /// free gate, being admitted at once and leaving it.
    ///
    /// With the fast word in use, lock-free: its CAS is made only while the
    /// gate is idle, and a head that joins meanwhile moves the word out
    /// before it looks at the rates (its CAS then fails, or comes after).
    #[inline]
    pub(crate) fn try_admit_idle(&self, n: u32, now: u64) -> bool {
        if let Some(fast) = &self.fast {
            if let Some(admitted) = fast.try_admit(&self.gate, n, now) {
                return admitted;
            }
        }
        self.try_admit_idle_locked(n, now)
    }

    /// [`try_admit_idle`](Self::try_admit_idle) under the rates' lock; puts
    /// the quota's `tat` back in the fast word if it can.
    #[inline(never)]
    fn try_admit_idle_locked(&self, n: u32, now: u64) -> bool {
        let mut rates = self.rates();
        let admitted = self.gate.raw.is_idle() && rates.try_commit(n, now);
        if admitted {
            if let Some(fast) = &self.fast {
                fast.move_in(&rates, now);
            }
        }
        admitted
    }

    /// The first instant at or after `now` at which `n` cells would conform
    /// to every rate, for a request at the head of the rate queue now
    /// (nothing is taken).
    pub(crate) fn earliest_ns(&self, n: u32, now: u64) -> u64 {
        self.rates().earliest(n, now)
    }

    /// The head of this limiter's rate queue (there since `head_since`)
    /// asks whether its `n` cells conform now, without taking them: `Ok`
    /// if they do (they keep conforming: only the head commits cells, and
    /// only a pause can move them later), otherwise `Err(at)` with the
    /// instant to sleep until. `waker` is then woken by `close`.
    ///
    /// For a key's limiter under a global one: the key's head waits here
    /// before it queues for the global rate, and its cells are taken
    /// together with the global ones by [`try_admit_with`](Self::try_admit_with).
    pub(crate) fn try_conform(
        &self,
        n: u32,
        head_since: u64,
        now: u64,
        waker: &Waker,
    ) -> Result<(), u64> {
        let at = self.rates().earliest(n, head_since);
        if at <= now {
            return Ok(());
        }
        Err(self.sleep_as_head(at, now, waker))
    }

    /// The head of the rate queue goes to sleep until `at`: `waker` is
    /// registered for `close` (cloned outside the lock, as a clone may
    /// panic or run user code). Returns `at`, or `now` if the limiter was
    /// closed meanwhile (so the caller looks again at once).
    fn sleep_as_head(&self, at: u64, now: u64, waker: &Waker) -> u64 {
        let waker = waker.clone();
        let old = self.rates_lock().set_head(waker);
        drop(old);
        if self.gate.is_closed() {
            now
        } else {
            at
        }
    }

    /// As [`try_admit`](Self::try_admit), but also takes `co`'s weight in
    /// cells of its rates at the same instant: the caller is the head of both
    /// rate queues (`co`'s since `co_since`, in `co`'s nanoseconds), so
    /// the key's rate and the global one govern one start time.
    /// `Err(Some(at))`: sleep until `at`; `Err(None)`: `co` no longer
    /// conforms now (a pause came in), so the caller leaves this queue and
    /// waits for `co` again.
    pub(crate) fn try_admit_with(
        &self,
        n: u32,
        head_since: u64,
        now: u64,
        waker: &Waker,
        co: &Inner<C>,
        co_since: u64,
    ) -> Result<u64, Option<u64>> {
        let at = {
            // Lock order: the key's (`co`) rates, then the global ones;
            // nothing locks them the other way round.
            let mut co_rates = co.rates();
            let co_at = co_rates.earliest(co.weight, co_since);
            let co_at_here = co.ns_in(self, co_at);
            if co_at_here > now {
                return Err(None);
            }
            let mut rates = self.rates();
            let at = rates.earliest(n, head_since).max(co_at_here);
            if at <= now {
                rates.commit(n, at, now);
                let co_at = self.ns_in(co, at).max(co_at);
                let co_now = self.ns_in(co, now).max(co_at);
                co_rates.commit(co.weight, co_at, co_now);
                // A head sleeping before is not sleeping any more.
                let old = (rates.head.take(), co_rates.head.take());
                drop((rates, co_rates));
                drop(old);
                return Ok(now);
            }
            at
        };
        // Either limiter's `close` wakes it.
        let co_at = co.sleep_as_head(at, now, waker);
        Err(Some(self.sleep_as_head(at, now, waker).min(co_at)))
    }

    /// The head left the rate queue without being admitted.
    pub(crate) fn clear_head(&self) {
        // Taken under the lock, dropped after it (see `try_admit`).
        let stale = self.rates_lock().head.take();
        drop(stale);
    }

    /// Fails every queued and later request; wakes the head of the rate
    /// queue if it sleeps.
    pub(crate) fn close(&self) {
        self.gate.close();
        if let Some(slots) = &self.slots {
            slots.sem.close();
            slots.hold_gate.close();
            slots.wake_head();
        }
        let head = self.rates_lock().head.take();
        if let Some(waker) = head {
            waker.wake();
        }
    }

    pub(crate) fn pause_until_ns(&self, until: u64) {
        self.counters.pause();
        self.rates().pause_until(until);
    }

    /// Whether the limits are as if freshly built: no ghost holds a slot, no
    /// pause is in force, every quota has full credit. (Holders and waiters
    /// are counted by the caller, through the `Arc`.)
    #[cfg(feature = "std")]
    pub(crate) fn is_fresh(&self) -> bool {
        let now = self.now_ns();
        if let Some(slots) = &self.slots {
            if slots.has_hold() && slots.held_by_ghosts(now) > 0 {
                return false;
            }
        }
        let rates = self.rates();
        rates.paused_until_ns <= now
            && rates.tats.iter().all(|(k, tat)| *tat <= k.at(now))
            && rates.windows.iter().all(|w| w.full_at(now) <= now)
    }

    pub(crate) fn paused_until_ns(&self) -> u64 {
        self.rates_lock().paused_until_ns
    }

    /// Pauses requested since creation.
    pub(crate) fn pauses(&self) -> u64 {
        self.counters.pauses()
    }

    /// Requests waiting in any stage: queued for a slot, for the hold or
    /// for the rate gate, plus the heads of the hold and rate queues.
    pub(crate) fn waiters(&self) -> usize {
        let queue = |gate: &Semaphore| gate.waiters() + usize::from(gate.available_permits() == 0);
        let slots = self.slots.as_ref().map_or(0, |slots| {
            slots.sem.waiters()
                + if slots.has_hold() {
                    queue(&slots.hold_gate)
                } else {
                    0
                }
        });
        slots + queue(&self.gate)
    }
}

/// What an admitted request holds until it is released.
///
/// Two words and no padding: a scalar pair, moved in registers. With its
/// weight, two `bool`s and two bytes of padding it was moved through the
/// stack, 13 bytes in two overlapping 8-byte moves read back at once with
/// wider loads, which stalls store-to-load forwarding on every uncontended
/// `Limiter::run`. `Copy`, so that it is released by value, in registers
/// (by reference it was copied to the stack with one 16-byte load right
/// after its two 8-byte stores, another stall).
#[derive(Clone, Copy)]
pub(crate) struct Admitted {
    /// When it was admitted (its minimum hold counts from here).
    pub(crate) admitted_ns: u64,
    /// The weight in the low 32 bits, then [`Self::SLOT`] and
    /// [`Self::RUNNING`], and [`Self::SET`]; zero in [`Self::NONE`].
    held: u64,
}

impl Admitted {
    /// Holds `weight` permits of the slots' semaphore.
    const SLOT: u64 = 1 << 32;
    /// Counted in the slots' `running` (only with a minimum hold).
    const RUNNING: u64 = 1 << 33;
    /// Set in every admitted request, clear in [`Self::NONE`].
    const SET: u64 = 1 << 63;

    /// Nothing held: what a `LimiterRun` keeps before admission and after
    /// release. Every byte is defined, unlike `Option::<Admitted>::None`
    /// (whose `admitted_ns` is undefined): with that, LLVM assembled the
    /// new `LimiterRun`'s `admitted_ns` and the three words after it in a
    /// stack temporary (the undefined word taken from whatever was there)
    /// and copied it with 16-byte loads across its narrower stores.
    pub(crate) const NONE: Admitted = Admitted {
        admitted_ns: 0,
        held: 0,
    };

    /// A request admitted at `admitted_ns` (an adaptive limit counts its
    /// slot as in flight). Always inline: a few instructions on every
    /// admission, which the call cost (an uncontended `run` measured 375
    /// instructions with it out of line, 352 inlined).
    #[inline(always)]
    pub(crate) fn new<C: Clock>(
        inner: &Inner<C>,
        weight: u32,
        admitted_ns: u64,
        slot: bool,
        running: bool,
    ) -> Self {
        if slot {
            if let Some(adaptive) = inner.slots.as_ref().and_then(|s| s.adaptive.as_ref()) {
                adaptive.admitted(weight as usize);
            }
        }
        let bits = u64::from(weight)
            | if slot { Self::SLOT } else { 0 }
            | if running { Self::RUNNING } else { 0 }
            | Self::SET;
        Self {
            admitted_ns,
            held: bits,
        }
    }

    /// Whether this is [`Self::NONE`].
    pub(crate) fn is_none(&self) -> bool {
        self.held == 0
    }

    /// The request held here, leaving [`Self::NONE`].
    pub(crate) fn take(&mut self) -> Option<Admitted> {
        let admitted = core::mem::replace(self, Self::NONE);
        (!admitted.is_none()).then_some(admitted)
    }

    /// The weight it was admitted with.
    pub(crate) fn weight(&self) -> u32 {
        self.held as u32
    }

    fn has(&self, bit: u64) -> bool {
        self.held & bit != 0
    }

    /// Gives the slot back: its accounting first (a ghost until the minimum
    /// hold ends, if one is set), so the slot's next holder sees the ghost;
    /// an adaptive limit learns `outcome` and may keep some of the permits.
    pub(crate) fn release<C: Clock>(self, inner: &Inner<C>, outcome: Outcome) {
        let Some(slots) = &inner.slots else {
            return;
        };
        let w = self.weight() as usize;
        if self.has(Self::RUNNING) {
            // Without a minimum hold there is no ghost, and no need to read
            // the clock.
            if slots.has_hold() {
                slots.release(w, Some(self.admitted_ns), inner.now_ns());
            } else {
                slots.release(w, None, 0);
            }
        }
        if !self.has(Self::SLOT) {
            return;
        }
        match &slots.adaptive {
            None => slots.sem.raw.release(w),
            Some(adaptive) => {
                let start = Duration::from_nanos(self.admitted_ns);
                let end = Duration::from_nanos(inner.now_ns());
                let forget = adaptive.released(&slots.sem, w, start, end, outcome);
                // Above the new limit: these permits are not given back.
                slots.sem.raw.detach(forget);
                slots.sem.raw.release(w - forget);
                adaptive.settle(&slots.sem);
            }
        }
    }
}

/// GCRA state of every quota, and the pause in force.
struct Rates {
    /// Each quota in ticks, and its `tat` (theoretical arrival time) in
    /// those ticks.
    tats: Vec<(Ticks, u128)>,
    /// Each window's admission log.
    windows: Vec<Log>,
    /// Nothing is admitted before this instant (ns).
    paused_until_ns: u64,
    /// The sleeping head of the rate queue, for `close`.
    head: Option<Waker>,
}

impl Rates {
    /// The first instant at or after `from` at which `n` cells conform to
    /// every quota and window, and no pause is in force.
    fn earliest(&self, n: u32, from: u64) -> u64 {
        self.tats
            .iter()
            .map(|&(k, tat)| {
                let step = Step::new(tat, from, n, &k);
                // Conforming at `from` means earliest <= from: skip the
                // division that rounds it to whole ns.
                if step.conforms(from, &k) {
                    from
                } else {
                    step.earliest_ns(&k)
                }
            })
            .chain(self.windows.iter().map(|w| w.earliest(n, from)))
            .fold(from.max(self.paused_until_ns), u64::max)
    }

    /// Makes `waker` (cloned before locking: a clone may panic or run
    /// user code) the one `close` wakes; returns the waker it replaces, for
    /// the caller to drop after unlocking.
    fn set_head(&mut self, waker: Waker) -> Option<Waker> {
        self.head.replace(waker)
    }

    /// Admits `n` cells of every quota and window at `now` if they all
    /// conform then and no pause is in force; otherwise changes nothing.
    fn try_commit(&mut self, n: u32, now: u64) -> bool {
        let [(k, tat)] = self.tats.as_mut_slice() else {
            if self.earliest(n, now) > now {
                return false;
            }
            self.commit(n, now, now);
            return true;
        };
        // One quota, the common case: one step, no fold over the rates.
        if self.paused_until_ns > now || self.windows.iter().any(|w| w.earliest(n, now) > now) {
            return false;
        }
        let step = Step::new(*tat, now, n, k);
        if !step.conforms(now, k) {
            return false;
        }
        *tat = step.tat.min(k.max_tat());
        self.record(n, now);
        true
    }

    /// Admits `n` cells of every quota at instant `at` (which conforms),
    /// and records them in every window at `now` (`at <= now`: a window
    /// that has room at `at` still has it, as only the head records).
    fn commit(&mut self, n: u32, at: u64, now: u64) {
        for (k, tat) in &mut self.tats {
            let step = Step::new(*tat, at, n, k);
            debug_assert!(step.conforms(at, k));
            *tat = step.tat.min(k.max_tat());
        }
        self.record(n, now);
    }

    /// Records `n` cells admitted at `now` in every window.
    fn record(&mut self, n: u32, now: u64) {
        for window in &mut self.windows {
            window.purge(now);
            window.record(n, now);
        }
    }

    /// Nothing before `until`. No quota's credit is spent: at `until` each
    /// admits what it would have without the pause (as
    /// `RateLimiter::pause_until`).
    fn pause_until(&mut self, until: u64) {
        self.paused_until_ns = self.paused_until_ns.max(until);
    }
}

/// The fast word's value while the quota's `tat` is in the locked
/// [`Rates`] (never a narrow `tat`, which stays below 2^63).
const SLOW: u64 = u64::MAX;

/// The single quota's `tat` outside the lock (see the module docs).
struct Fast {
    /// `tat` in the quota's narrow ticks (0 without a quota), or [`SLOW`].
    word: AtomicU64,
    /// The quota; `None` for a limiter without one (the word then only
    /// says that no pause is in force).
    q: Option<Narrow>,
}

impl Fast {
    /// The idle path's admission of `n` cells (at most the burst) at
    /// `now`: `Some(admitted)` if the word is in use, `None` if the rates'
    /// lock decides (the `tat` is there, or `now` is beyond the word).
    #[inline(always)]
    fn try_admit(&self, gate: &Semaphore, n: u32, now: u64) -> Option<bool> {
        let Some(q) = &self.q else {
            // No quota: admitted if no pause is in force (the word is in
            // use) and nobody is at the gate.
            let word = self.word.load(Ordering::Acquire);
            return (word != SLOW).then(|| gate.raw.is_idle());
        };
        let now_t = q.at(now)?;
        // Acquire: sees the admissions before it (paired with the CAS).
        let mut tat = self.word.load(Ordering::Acquire);
        loop {
            if tat == SLOW {
                return None;
            }
            if !gate.raw.is_idle() {
                return Some(false);
            }
            let Ok(new) = q.step(tat, now_t, n) else {
                return Some(false);
            };
            // AcqRel: Release publishes this admission to the next CAS (and
            // to `move_out`); Acquire sees the ones before it.
            match self
                .word
                .compare_exchange_weak(tat, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(true),
                Err(actual) => tat = actual,
            }
        }
    }

    /// Moves the `tat` into the locked `rates` (a no-op if it is there),
    /// leaving the word [`SLOW`]. Under the rates' lock.
    fn move_out(&self, rates: &mut Rates) {
        let mut tat = self.word.load(Ordering::Acquire);
        while tat != SLOW {
            // AcqRel: Acquire sees every idle admission up to `tat`;
            // Release orders this before the lock's next holder.
            match self
                .word
                .compare_exchange(tat, SLOW, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    if let Some(q) = &self.q {
                        rates.tats[0].1 = u128::from(tat) * u128::from(q.scale());
                    }
                    return;
                }
                Err(actual) => tat = actual,
            }
        }
    }

    /// After an idle admission under the lock at `now` (so with the gate
    /// idle and no pause in force then): puts the `tat` back in the word,
    /// if it can hold `now`. Nothing CASes the word while it is [`SLOW`].
    fn move_in(&self, rates: &Rates, now: u64) {
        let Some(q) = &self.q else {
            // Release: as below.
            self.word.store(0, Ordering::Release);
            return;
        };
        if q.at(now).is_none() {
            return;
        }
        let scale = u128::from(q.scale());
        let tat = rates.tats[0].1;
        // Every commit adds whole narrow ticks (`now` and `t` are), so
        // `tat` is a multiple of `scale`; it conformed at `now`, so it is at
        // most `now_t + tau`, in the word's range.
        debug_assert_eq!(tat % scale, 0);
        // Release: the admission just made, for the next CAS.
        self.word.store((tat / scale) as u64, Ordering::Release);
    }
}

/// The concurrency stage: its written parts first, each on lines of its
/// own, then its configuration (followed by [`Inner`]'s), as described
/// under "Layout" in the module docs.
#[repr(C)]
pub(crate) struct Slots {
    pub(crate) sem: CachePadded<Semaphore>,
    /// The FIFO queue of requests that hold semaphore permits but wait for
    /// ghosts to expire; its one permit marks the head.
    pub(crate) hold_gate: CachePadded<Semaphore>,
    holds: Mutex<Holds>,
    // Read-only from here on.
    /// The largest limit (the adaptive algorithm's maximum).
    pub(crate) capacity: usize,
    /// 0: no minimum hold (then `holds` and `hold_gate` are never touched).
    pub(crate) min_hold_ns: u64,
    /// Moves the semaphore's size, if the limit is adaptive. Boxed: its
    /// lock is written by every release, away from the configuration.
    pub(crate) adaptive: Option<Box<Adaptive>>,
}

/// Slots in use beyond what the semaphore sees: see the module docs.
#[derive(Default)]
struct Holds {
    /// Weight of requests past the hold stage and not yet released.
    running: usize,
    ghost_weight: usize,
    /// `deadline_ns -> weight` of the ghosts, earliest first.
    ghosts: BTreeMap<u64, usize>,
    /// The head of the hold queue, woken by every release.
    head: Option<Waker>,
}

impl Holds {
    fn purge(&mut self, now: u64) {
        while let Some(entry) = self.ghosts.first_entry() {
            if *entry.key() > now {
                break;
            }
            self.ghost_weight -= entry.remove();
        }
    }
}

impl Slots {
    pub(crate) fn has_hold(&self) -> bool {
        self.min_hold_ns > 0
    }

    /// The head of the hold queue, with `w` semaphore permits, asks to
    /// start: `Ok` if it may (it is counted as running), otherwise the
    /// instant at which enough ghosts will have expired (`u64::MAX`: only a
    /// release can make room). `waker` is woken by the next release.
    pub(crate) fn try_start(&self, w: usize, now: u64, waker: &Waker) -> Result<(), u64> {
        // Cloned before the lock, and the waker it replaces dropped after it:
        // either may run arbitrary code (dropping the last handle to a task
        // drops the task, whose futures may use this limiter). Cloning
        // later, after unlocking, could miss a release in between.
        let waker = waker.clone();
        let mut h = self.holds.lock();
        h.purge(now);
        let in_use = h.running + h.ghost_weight + w;
        if in_use <= self.capacity {
            h.running += w;
            let stale = h.head.take();
            drop(h);
            drop(stale);
            return Ok(());
        }
        let mut need = in_use - self.capacity;
        let mut at = u64::MAX;
        for (&deadline, &gw) in &h.ghosts {
            if gw >= need {
                at = deadline;
                break;
            }
            need -= gw;
        }
        let stale = h.head.replace(waker);
        drop(h);
        drop(stale);
        Err(at)
    }

    /// The head of the hold queue left without starting.
    pub(crate) fn clear_head(&self) {
        // Taken under the lock, dropped after it (see `try_start`).
        let stale = self.holds.lock().head.take();
        drop(stale);
    }

    /// A running request gives its `w` slots back. If it was admitted at
    /// `admitted` and its hold has not elapsed, the slots stay in use as a
    /// ghost until then. Called before its permits go back to the semaphore
    /// (so whoever gets them sees the ghost); wakes the head of the hold
    /// queue, which may now start (or sleep less).
    pub(crate) fn release(&self, w: usize, admitted: Option<u64>, now: u64) {
        let head = {
            let mut h = self.holds.lock();
            h.running -= w;
            if let Some(at) = admitted {
                let deadline = at.saturating_add(self.min_hold_ns);
                if deadline > now && w > 0 {
                    *h.ghosts.entry(deadline).or_default() += w;
                    h.ghost_weight += w;
                }
            }
            h.head.take()
        };
        if let Some(head) = head {
            head.wake();
        }
    }

    /// Slots counted as held until their minimum hold ends.
    pub(crate) fn held_by_ghosts(&self, now: u64) -> usize {
        let mut h = self.holds.lock();
        h.purge(now);
        h.ghost_weight
    }

    /// Wakes the head of the hold queue (for `close`).
    pub(crate) fn wake_head(&self) {
        let head = self.holds.lock().head.take();
        if let Some(head) = head {
            head.wake();
        }
    }
}

/// The rate stage that refuses a request that must not wait (see
/// [`Inner::try_admit_now`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RateStage {
    Paused,
    Window,
    Rate,
}

/// A refusal by a rate stage: the first instant (ns) every stage admits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) stage: RateStage,
    pub(crate) at: u64,
}

impl Rates {
    /// Whether `n` cells are kept out at `now`, and by which stage: `None`
    /// if every quota and window admits them and no pause is in force.
    /// The instant is where they all admit (`earliest`); the stage named
    /// is one that admits only then (a pause first, then a window).
    fn refusal(&self, n: u32, now: u64) -> Option<Refusal> {
        let at = self.earliest(n, now);
        if at <= now {
            return None;
        }
        let stage = if self.paused_until_ns >= at {
            RateStage::Paused
        } else if self.windows.iter().any(|w| w.earliest(n, now) >= at) {
            RateStage::Window
        } else {
            RateStage::Rate
        };
        Some(Refusal { stage, at })
    }
}

/// Which limiter's rate stage refused (see [`Inner::try_admit_now_with`]).
#[cfg(feature = "std")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Whose {
    Own(Refusal),
    Co(Refusal),
}

impl<C: Clock> Inner<C> {
    /// For a caller holding the rate gate that must not wait: takes `n`
    /// cells of every quota and window at `now`, or says which stage
    /// refuses (nothing taken). No waker is stored: it never sleeps.
    pub(crate) fn try_admit_now(&self, n: u32, now: u64) -> Result<(), Refusal> {
        let mut rates = self.rates();
        if let Some(refusal) = rates.refusal(n, now) {
            return Err(refusal);
        }
        rates.commit(n, now, now);
        Ok(())
    }

    /// As [`try_admit_now`](Self::try_admit_now) without taking anything:
    /// whether `n` cells conform now (asked before a rate source spends a
    /// shared cell).
    pub(crate) fn refusal_now(&self, n: u32, now: u64) -> Option<Refusal> {
        self.rates().refusal(n, now)
    }

    /// As [`try_admit_now`](Self::try_admit_now), and `co`'s weight in
    /// cells of `co`'s rates at the same instant (the caller holds both
    /// rate gates): a key's rate and the global one, all or nothing. A
    /// refusal by `co` is in `co`'s nanoseconds.
    #[cfg(feature = "std")]
    pub(crate) fn try_admit_now_with(&self, n: u32, now: u64, co: &Inner<C>) -> Result<(), Whose> {
        // Lock order as in `try_admit_with`: `co`'s rates, then ours.
        let mut co_rates = co.rates();
        let co_now = self.ns_in(co, now);
        if let Some(refusal) = co_rates.refusal(co.weight, co_now) {
            return Err(Whose::Co(refusal));
        }
        let mut rates = self.rates();
        if let Some(refusal) = rates.refusal(n, now) {
            return Err(Whose::Own(refusal));
        }
        rates.commit(n, now, now);
        co_rates.commit(co.weight, co_now, co_now);
        Ok(())
    }
}
