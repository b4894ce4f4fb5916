//! Quota changes and pauses of a [`RateLimiter`](super::RateLimiter): a
//! new generation of the state word, and every waiter re-timed.
//!
//! # Implementation details
//!
//! Quota changes and pauses happen under the waiters' lock: they rewrite
//! the state word (new generation) and re-time every waiter in the list,
//! keeping their order: a waiter `k` cells before the end of the queue
//! stays `k` cells before it, under the new `t`. A pause delays the queue
//! (keeping every gap) so that its head's cells start no earlier than the
//! end of the pause: the queue is then admitted as if it had asked at that
//! instant, with the credit the quota has then (a pause spends none).
//! Newcomers are kept out by the state's `paused_until`.

use alloc::vec::Vec;
use core::task::Waker;

use crate::rate::arith::Ticks;
use crate::rate::gcra::state::{pack_state, state_gen, state_tat, Shared, Status, Waiter, Wide};
use crate::rate::quota::Quota;
use crate::sync::MutexGuard;
use crate::sync::Ordering;
use crate::wait_list::WakeBatch;

impl Wide {
    /// A quota change and/or a pause: a new generation, every waiter re-timed.
    /// `shared` is this state's lock, taken before `now` (ns) was read: a
    /// waiter that completed before it was taken did so at or before `now`,
    /// and is not ours to re-time. Releases the lock before waking anyone.
    pub(crate) fn change(
        &self,
        mut shared: MutexGuard<'_, Shared>,
        now: u64,
        quota: Option<Quota>,
        pause_until_ns: Option<u64>,
    ) {
        let old = Ticks::of(shared.quota);
        let new_quota = quota.unwrap_or(shared.quota);
        let new = Ticks::of(new_quota);
        let pause = shared.paused_until_ns.max(pause_until_ns.unwrap_or(0));
        shared.quota = new_quota;
        shared.paused_until_ns = pause;
        // Relaxed: published by the Release CAS of the state word below.
        self.paused_until.store(pause, Ordering::Relaxed);

        // Only writers (holding this lock) change the generation.
        let mut word = self.word.load(Ordering::Acquire);
        let gen = state_gen(word);
        let next = gen.wrapping_add(1);
        // Release: published before any state word of generation `next`
        // exists; pairs with the Acquire load in `ticks_of`.
        self.quotas[(next % 2) as usize].store(new_quota.pack(), Ordering::Release);
        // Where the head of the queue's cells start: the earliest waiter
        // still waiting. Waiters' `tat`s are fixed while we hold the lock.
        let mut head = None::<u128>;
        shared.waiters.retain(|entry| {
            let w = &entry.value;
            if w.status == Status::Waiting && w.ready_ns > now {
                let start = w.tat.saturating_sub(old.cells_ticks(w.n));
                head = Some(head.map_or(start, |h| h.min(start)));
            }
            true
        });
        let retime = loop {
            let retime = Retime::new(state_tat(word, &old), now, old, new, pause, head);
            let new_word = pack_state(retime.tat, &new, next);
            // AcqRel: Acquire sees every admission made so far (we re-time
            // on top of them); Release publishes the new generation.
            match self
                .word
                .compare_exchange(word, new_word, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break retime,
                Err(actual) => word = actual,
            }
        };
        // In queue order (the list is in reservation order, which is `tat`
        // order): re-time each waiter, pushing it and everyone behind it to
        // a whole-ns slot start where rounding requires it.
        // Only waiters whose slot or outcome moved are woken: the others'
        // timers still fire at the right instant. Their wakers are taken out
        // here, in the same pass, and woken after the lock is released: the
        // first 16 from the stack, any more from one vector (so a change
        // with few waiters allocates nothing).
        let mut batch = WakeBatch::new();
        let mut more = Vec::new();
        let mut extra = 0u128;
        shared.waiters.retain(|entry| {
            let waiter = &mut entry.value;
            let before = (waiter.ready_ns, waiter.status);
            extra += retime.waiter(waiter, now, next, extra);
            if (waiter.ready_ns, waiter.status) != before {
                if let Some(waker) = entry.waker.take() {
                    if batch.is_full() {
                        more.push(waker);
                    } else {
                        batch.push(waker);
                    }
                }
            }
            true
        });
        if extra > 0 {
            let mut word = self.word.load(Ordering::Acquire);
            loop {
                let tat = state_tat(word, &new).saturating_add(extra);
                // AcqRel: as above.
                match self.word.compare_exchange(
                    word,
                    pack_state(tat, &new, next),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => break,
                    Err(actual) => word = actual,
                }
            }
        }
        drop(shared);
        batch.wake_all();
        more.into_iter().for_each(Waker::wake);
    }
}

/// One quota change / pause, applied to the state and to each waiter.
#[derive(Debug)]
struct Retime {
    old: Ticks,
    new: Ticks,
    /// `tat` before the change (old ticks).
    old_tat: u128,
    /// `tat` after rescaling, before the pause shift (new ticks).
    scaled_tat: u128,
    /// Ticks added to every slot still queued, for a pause.
    shift: u128,
    /// `tat` after the change (new ticks).
    tat: u128,
    /// The pause in force (ns; in the past if none).
    pause_ns: u64,
}

impl Retime {
    fn new(
        old_tat: u128,
        now: u64,
        old: Ticks,
        new: Ticks,
        pause_ns: u64,
        head: Option<u128>,
    ) -> Retime {
        let old_now = old.at(now);
        // Credit used beyond `now` keeps its size in cells (the backlog is
        // rescaled from `now`); an idle limiter just keeps its `tat`,
        // rounded up to a whole ns (quota-independent).
        let scaled_tat = if old_tat > old_now {
            let backlog = old_tat - old_now;
            let whole = backlog / old.t;
            let part = backlog % old.t;
            new.at(now)
                .saturating_add(whole.saturating_mul(new.t))
                .saturating_add((part * new.t).div_ceil(old.t))
        } else {
            old_tat.div_ceil(old.cells).saturating_mul(new.cells)
        };
        let mut shift = 0;
        let mut tat = scaled_tat;
        if let (true, Some(head)) = (pause_ns > now, head) {
            // Delay the waiters (keeping every gap) just enough that the
            // cells of the first one still waiting start no earlier than the
            // end of the pause: as if the queue had asked then. It takes the
            // credit the quota has at that instant, no more and no less.
            let behind = old_tat.saturating_sub(head) / old.t;
            let head = scaled_tat.saturating_sub(behind.saturating_mul(new.t));
            shift = new.at(pause_ns).saturating_sub(head);
            tat = tat.saturating_add(shift);
        }
        Retime {
            old,
            new,
            old_tat,
            scaled_tat,
            shift,
            tat,
            pause_ns,
        }
    }

    /// Re-times one waiter; `extra` is what the waiters ahead of it were
    /// pushed back by. Returns how much more this one was pushed back.
    fn waiter(&self, waiter: &mut Waiter, now: u64, gen: u32, extra: u128) -> u128 {
        waiter.gen = gen;
        if waiter.status != Status::Waiting {
            return 0;
        }
        if waiter.ready_ns <= now {
            waiter.status = Status::Granted;
            return 0;
        }
        if waiter.ready_ns == u64::MAX {
            // Saturated (584 years out): it lost count of the cells ahead of
            // it, so the rescale cannot place it. It stays denied, as it was,
            // and its `tat` stays saturated so that it never refunds (later
            // reservations may be timed before it).
            waiter.tat = self.new.max_tat();
            if waiter.n > self.new.burst {
                waiter.status = Status::TooLarge {
                    burst: self.new.burst,
                };
            }
            return 0;
        }
        // While it waits, no gap opens behind it: it is a whole number of
        // cells from the end of the queue.
        let behind = self.old_tat.saturating_sub(waiter.tat) / self.old.t;
        let scaled = self
            .scaled_tat
            .saturating_sub(behind.saturating_mul(self.new.t));
        let end = self.tat.saturating_sub(behind.saturating_mul(self.new.t));
        if waiter.n > self.new.burst {
            waiter.status = Status::TooLarge {
                burst: self.new.burst,
            };
            waiter.tat = end.saturating_add(extra);
            return 0;
        }
        let granted = self.new.at(now) + self.new.tau;
        if self.pause_ns <= now && scaled <= granted {
            // A larger burst admits it right away (never during a pause).
            waiter.status = Status::Granted;
            waiter.tat = scaled;
            waiter.ready_ns = now;
            return 0;
        }
        let tat = scaled
            .saturating_add(self.shift)
            .saturating_add(extra)
            .min(self.new.max_tat());
        if tat >= self.new.max_tat() {
            waiter.tat = tat;
            waiter.ready_ns = u64::MAX;
            return 0;
        }
        let ready_ns = self
            .new
            .ns_ceil(tat.saturating_sub(self.new.tau))
            .max(self.pause_ns);
        let start = tat.saturating_sub(self.new.cells_ticks(waiter.n));
        let push = self.new.at(ready_ns).saturating_sub(start);
        waiter.tat = tat.saturating_add(push).min(self.new.max_tat());
        waiter.ready_ns = ready_ns;
        push
    }
}
