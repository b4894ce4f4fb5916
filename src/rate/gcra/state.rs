//! The wide state of a [`RateLimiter`](super::RateLimiter): the 16-byte
//! atomic state word of a limiter whose quota or pause has changed, the
//! quotas of its generations and the waiters under one lock (the waiters
//! and the lock serve the narrow state too: see `super::narrow`). Times
//! are nanoseconds since the limiter's creation.
//!
//! # Implementation details
//!
//! The state is one 128-bit word updated by a CAS loop: `tat` as whole ns
//! (`u64`), the remainder in ticks (`u32`, below `cells`), and the
//! *generation* of the quota it is measured in (`u32`). The quota of
//! generation `g` is published, before any state word of generation `g`
//! exists, in `quotas[g % 2]`; a check reads the state, reads the quota of
//! its generation and CASes. If a quota change raced it, the generation in
//! the word differs, the CAS fails and the check retries under the new
//! quota. `quotas[g % 2]` is rewritten only for generation `g + 2`, after
//! the state has moved to `g + 1`, so a check whose CAS succeeds computed
//! with the right quota; a denial, which writes nothing, re-reads the state
//! word instead and retries if it changed.
//!
//! A pause is not written into `tat` (that would spend the credit the
//! quota has): `paused_until` holds its end, and a request made before it
//! is decided as if made at its end. It is stored before the CAS that moves
//! the state word to a new generation, so a check that loaded that word (or
//! a later one) sees it, and a check that loaded an older word either
//! CASes before the pause took effect or fails its CAS and retries.
//!
//! The arithmetic is [`crate::rate::arith`]'s: the hot path decides on the
//! word's (ns, remainder) pair in 64-bit operations ([`Admission`]), the
//! rest in `u128` ticks ([`Step`]).

use crate::error::InsufficientCapacity;
use crate::rate::arith::{Admission, Step, Ticks};
use crate::rate::quota::Quota;
use crate::sync::{AtomicU128, AtomicU64, Mutex, MutexGuard, Ordering};
use crate::wait_list::List;

/// Why a check admitted nothing.
///
/// Both payloads are `u64`, so `Result<(), Refusal>` is a pair of scalars
/// that a function returns in two registers: the out-of-line wide check's
/// answer then joins the inlined narrow one without a trip through memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// More cells than the burst (the burst in force; a `u32`).
    TooLarge(u64),
    /// Not before this instant (ns).
    Until(u64),
}

/// The state word, the quota of each live generation and the waiters.
pub(crate) struct Wide {
    /// `tat` ns | remainder ticks << 64 | generation << 96.
    pub(super) word: AtomicU128,
    /// The quota of generation `g`, packed, in `quotas[g % 2]`.
    pub(super) quotas: [AtomicU128; 2],
    /// Nothing is admitted before this instant (ns): the pause in force.
    /// Only grows; written under the lock, before the state word's CAS to
    /// the generation that brings it (see the module docs).
    pub(super) paused_until: AtomicU64,
    pub(super) shared: Mutex<Shared>,
}

/// A waiting reservation, as the limiter sees it: lives in a list node inside
/// the waiting future (or the boxed [`Reservation`](crate::Reservation)).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Waiter {
    /// Generation `tat` is measured in (always the current one while
    /// linked: changes re-time every linked waiter).
    pub(crate) gen: u32,
    /// `tat` right after this reservation, in ticks of `gen`'s quota.
    pub(crate) tat: u128,
    /// Cells reserved.
    pub(crate) n: u32,
    /// Nanoseconds (since the limiter's creation) at which it is admitted.
    pub(crate) ready_ns: u64,
    pub(crate) status: Status,
}

impl Waiter {
    /// The value of a node not yet linked.
    pub(crate) const UNLINKED: Waiter = Waiter {
        gen: 0,
        tat: 0,
        n: 0,
        ready_ns: 0,
        status: Status::Waiting,
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Waiting for `ready_ns`.
    Waiting,
    /// Its time came before a change; it is admitted.
    Granted,
    /// A quota change made the burst smaller than `n`.
    TooLarge { burst: u32 },
}

pub(crate) struct Shared {
    pub(crate) quota: Quota,
    pub(crate) paused_until_ns: u64,
    pub(crate) waiters: List<Waiter>,
}

/// How a reservation came out.
pub(crate) enum Reserved {
    /// Admitted at once.
    Now,
    /// Admitted at `ready_ns`; the waiter to link.
    Later(Waiter),
}

pub(super) fn pack_state(tat: u128, k: &Ticks, gen: u32) -> u128 {
    let (ns, rem) = k.pair(tat);
    pack_pair(ns, rem, gen)
}

fn pack_pair(ns: u64, rem: u32, gen: u32) -> u128 {
    u128::from(ns) | u128::from(rem) << 64 | u128::from(gen) << 96
}

pub(super) fn state_gen(word: u128) -> u32 {
    (word >> 96) as u32
}

pub(super) fn state_tat(word: u128, k: &Ticks) -> u128 {
    k.of_pair(state_pair(word))
}

fn state_pair(word: u128) -> (u64, u32) {
    (word as u64, (word >> 64) as u32)
}

impl Wide {
    /// A fresh state for `quota`, with full burst credit.
    pub(crate) fn new(quota: Quota) -> Wide {
        Wide {
            word: AtomicU128::new(pack_state(0, &Ticks::of(quota), 0)),
            quotas: [AtomicU128::new(quota.pack()), AtomicU128::new(quota.pack())],
            paused_until: AtomicU64::new(0),
            shared: Mutex::new(Shared {
                quota,
                paused_until_ns: 0,
                waiters: List::new(),
            }),
        }
    }

    /// Admits `n` cells at `now`, lock-free, or says why not.
    #[inline(always)]
    pub(crate) fn check_n(&self, now: u64, n: u32) -> Result<(), Refusal> {
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            let quota = self.quota_of(word);
            if n > quota.burst() {
                return Err(Refusal::TooLarge(quota.burst().into()));
            }
            // During a pause, decide as at its end: admitted then means
            // "not before the end". Relaxed: the Acquire load of `word`
            // orders it (see the module docs).
            let at = now.max(self.paused_until.load(Ordering::Relaxed));
            let new = match Admission::of(state_pair(word), at, n, quota) {
                Admission::Admit(ns, rem) if at == now => pack_pair(ns, rem, state_gen(word)),
                decision => {
                    let earliest_ns = match decision {
                        Admission::Deny(earliest_ns) => earliest_ns,
                        Admission::Admit(..) => at,
                    };
                    // A denial writes nothing, so no CAS tells whether
                    // `quota` was still the word's: two quota changes
                    // between our two loads could have reused its slot.
                    // The word unchanged says they did not (the
                    // generation only grows; the Acquire load above
                    // orders this one after it).
                    let now_word = self.word.load(Ordering::Acquire);
                    if now_word != word {
                        word = now_word;
                        continue;
                    }
                    return Err(Refusal::Until(earliest_ns));
                }
            };
            // AcqRel: Release publishes this admission to the next CAS (so
            // a quota writer that reads our word knows about it); Acquire
            // pairs with the Release of the writer that installed this
            // generation, so `quotas[gen % 2]` read above was its quota.
            match self
                .word
                .compare_exchange(word, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(()),
                Err(actual) => word = actual,
            }
        }
    }

    /// `f(quota, tat, now)` on one consistent reading of the state word.
    pub(crate) fn read<R>(&self, now: u64, f: impl Fn(&Ticks, u128, u64) -> R) -> R {
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            let k = self.ticks_of(word);
            let out = f(&k, state_tat(word, &k), now);
            // As in a denied `check_n`: the word unchanged says the quota
            // read was its generation's (Acquire orders this load after
            // the quota's).
            let now_word = self.word.load(Ordering::Acquire);
            if now_word == word {
                return out;
            }
            word = now_word;
        }
    }

    /// The end of the pause in force (ns; in the past if none).
    pub(crate) fn paused_until(&self) -> u64 {
        self.paused_until.load(Ordering::Acquire)
    }

    pub(super) fn ticks_of(&self, word: u128) -> Ticks {
        Ticks::of(self.quota_of(word))
    }

    #[inline]
    fn quota_of(&self, word: u128) -> Quota {
        // Acquire: pairs with the Release store of the writer that published
        // this generation's quota (see `change`).
        Quota::unpack(self.quotas[(state_gen(word) % 2) as usize].load(Ordering::Acquire))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock()
    }

    /// Reserves `n` cells (`n` at most the burst) under the shared lock, so
    /// no quota change can slip between the reservation and linking the
    /// waiter. Checks still race with it through the CAS.
    pub(crate) fn reserve_locked(
        &self,
        shared: &mut Shared,
        now: u64,
        n: u32,
    ) -> Result<Reserved, InsufficientCapacity> {
        // During a pause, reserve as at its end (see `check_n`).
        let at = now.max(shared.paused_until_ns);
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            let k = self.ticks_of(word);
            if n > k.burst {
                return Err(InsufficientCapacity {
                    requested: n,
                    burst: k.burst,
                });
            }
            let step = Step::reserve(state_tat(word, &k), at, n, &k);
            let gen = state_gen(word);
            let new = pack_state(step.tat, &k, gen);
            // AcqRel: as in `check_n`.
            match self
                .word
                .compare_exchange(word, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {}
                Err(actual) => {
                    word = actual;
                    continue;
                }
            }
            let ready_ns = step.earliest_ns(&k).max(at);
            if ready_ns <= now {
                return Ok(Reserved::Now);
            }
            return Ok(Reserved::Later(Waiter {
                gen,
                tat: step.tat.min(k.max_tat()),
                n,
                ready_ns,
                status: Status::Waiting,
            }));
        }
    }

    /// Whether a linked waiter is done: `Some(Ok)` admitted, `Some(Err)` its
    /// request no longer fits the burst (its cells were given back where
    /// possible), `None` still waiting for `waiter.ready_ns`.
    pub(crate) fn settle(
        &self,
        shared: &Shared,
        now: u64,
        waiter: &Waiter,
    ) -> Option<Result<(), InsufficientCapacity>> {
        match waiter.status {
            Status::Granted => Some(Ok(())),
            Status::TooLarge { burst } => {
                self.refund(shared, now, waiter);
                Some(Err(InsufficientCapacity {
                    requested: waiter.n,
                    burst,
                }))
            }
            Status::Waiting if waiter.ready_ns <= now => Some(Ok(())),
            Status::Waiting => None,
        }
    }

    /// Gives back a cancelled waiter's cells if no later reservation was
    /// timed after them (it is still the last: `tat` is its `tat`) and its
    /// time has not come. Called under the shared lock, so `waiter.gen` is
    /// the current generation. (A pause in force is not in `tat`, so the
    /// refund cannot lift it.)
    pub(crate) fn refund(&self, _shared: &Shared, now: u64, waiter: &Waiter) {
        if waiter.status == Status::Granted || waiter.ready_ns <= now {
            return;
        }
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            if state_gen(word) != waiter.gen {
                return;
            }
            let k = self.ticks_of(word);
            let tat = state_tat(word, &k);
            // A saturated `tat` (584 years out) lost count: refund nothing.
            if tat != waiter.tat || tat >= k.max_tat() {
                return;
            }
            let refunded = tat.saturating_sub(k.cells_ticks(waiter.n));
            let new = pack_state(refunded, &k, waiter.gen);
            // AcqRel: as in `check_n`; a check that loses this race retries
            // and sees the refunded credit.
            match self
                .word
                .compare_exchange(word, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(actual) => word = actual,
            }
        }
    }
}
