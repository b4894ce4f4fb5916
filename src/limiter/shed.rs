//! Load shedding: the forms of [`Limiter`] that decide at once and never
//! wait ([`Limiter::try_acquire`], [`Limiter::try_run`]), for a server that
//! answers `429` instead of queueing.
//!
//! # Implementation details
//!
//! A try passes the stages of [`LimiterAcquire`](super::LimiterAcquire), in
//! the same order, taking each only if it is free now and nobody is queued
//! for it: the slot semaphore's and the hold queue's `try_acquire` (which
//! fail while anyone waits), the hold's `try_start`, then the rate gate's
//! `try_acquire` (held while a head waits for the rates: the try is then
//! refused). Holding the gate, as the head of the rate queue would, it
//! takes the cells of every quota and window at `now` in one critical
//! section, or none. A refusal gives back what was taken, as a dropped
//! `LimiterAcquire` does; no waker is ever stored, no sleep started.

use alloc::sync::Arc;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{ready, Context, Poll, Waker};
use core::time::Duration;

use pin_project_lite::pin_project;

#[cfg(feature = "std")]
use super::state::Whose;
use super::state::{Admitted, Inner, RateStage, Refusal};
use super::{Limiter, LimiterPermit, Outcome};
use crate::clock::Clock;
#[cfg(feature = "std")]
use crate::error::KeyedTryError;
use crate::error::{LimiterTryError, NotUntil, TryAcquireError};
use crate::limiter::source::RateDecision;
use crate::semaphore::Permit;

/// The error of a try on `C`'s limiter.
type TryError<C> = LimiterTryError<<C as Clock>::Instant>;

/// A key's permit and the global limiter's.
#[cfg(feature = "std")]
type KeyAndGlobal<C> = (LimiterPermit<C>, LimiterPermit<C>);

/// Slots (concurrency and minimum hold) taken by a try, given back if it is
/// refused at a later stage.
struct TrySlots<'a, C: Clock> {
    inner: &'a Arc<Inner<C>>,
    weight: u32,
    // Counted in the slots' `running` (only with a minimum hold).
    running: bool,
    // Holds `weight` permits of the slots' semaphore.
    slot: bool,
}

impl<'a, C: Clock> TrySlots<'a, C> {
    fn take(inner: &'a Arc<Inner<C>>, weight: u32, now: u64) -> Result<Self, TryError<C>> {
        let mut taken = TrySlots {
            inner,
            weight,
            running: false,
            slot: false,
        };
        let Some(slots) = &inner.slots else {
            return Ok(taken);
        };
        slots
            .sem
            .raw
            .try_acquire(weight as usize)
            .map_err(slot_error)?;
        taken.slot = true;
        if slots.has_hold() {
            // The head of the hold queue while it asks; it registers no
            // waker of its own (the no-op one stored is cleared below).
            let _head = slots.hold_gate.try_acquire().map_err(slot_error)?;
            match slots.try_start(weight as usize, now, Waker::noop()) {
                Ok(()) => taken.running = true,
                Err(at) => {
                    slots.clear_head();
                    return Err(match at {
                        u64::MAX => LimiterTryError::NoSlot,
                        at => LimiterTryError::Held(not_until(inner, at, now)),
                    });
                }
            }
        }
        Ok(taken)
    }

    /// The permit of a request admitted at `admitted`.
    fn into_permit(mut self, admitted: u64) -> LimiterPermit<C> {
        let (slot, running) = (
            core::mem::take(&mut self.slot),
            core::mem::take(&mut self.running),
        );
        let admitted = Admitted::new(self.inner, self.weight, admitted, slot, running);
        LimiterPermit::new(Arc::clone(self.inner), admitted)
    }
}

impl<C: Clock> Drop for TrySlots<'_, C> {
    fn drop(&mut self) {
        // The accounting before the slot itself, as a dropped
        // `LimiterAcquire` gives them back.
        if self.running {
            let slots = self.inner.slots.as_ref().expect("running implies slots");
            slots.release(self.weight as usize, None, 0);
        }
        if self.slot {
            let slots = self.inner.slots.as_ref().expect("a slot implies slots");
            slots.sem.raw.release(self.weight as usize);
        }
    }
}

fn slot_error<I>(e: TryAcquireError) -> LimiterTryError<I> {
    match e {
        TryAcquireError::Closed => LimiterTryError::Closed,
        TryAcquireError::ExceedsCapacity {
            requested,
            capacity,
        } => LimiterTryError::ExceedsCapacity {
            requested,
            capacity,
        },
        TryAcquireError::InsufficientCapacity { requested, burst } => {
            LimiterTryError::InsufficientCapacity { requested, burst }
        }
        _ => LimiterTryError::NoSlot,
    }
}

/// The rate gate, taken as the head of the rate queue would be (refused
/// while a head waits for the rates, or anyone queues behind it).
fn take_gate<C: Clock>(inner: &Inner<C>) -> Result<Permit<'_>, TryError<C>> {
    inner.gate.try_acquire().map_err(|e| match e {
        TryAcquireError::Closed => LimiterTryError::Closed,
        _ => LimiterTryError::Queued,
    })
}

fn not_until<C: Clock>(inner: &Inner<C>, at: u64, now: u64) -> NotUntil<C::Instant> {
    NotUntil::new(inner.instant_at(at), Duration::from_nanos(at - now))
}

fn refused<C: Clock>(inner: &Inner<C>, refusal: Refusal, now: u64) -> TryError<C> {
    let not_until = not_until(inner, refusal.at, now);
    match refusal.stage {
        RateStage::Paused => LimiterTryError::Paused(not_until),
        RateStage::Window => LimiterTryError::Window(not_until),
        RateStage::Rate => LimiterTryError::Rate(not_until),
    }
}

/// Asks every rate source for `w` cells, once the quotas would admit them
/// (so no shared cell is spent while a local rate refuses). Only decisions
/// at hand count: a source that must wait for its answer is not asked.
fn ask_sources<C: Clock>(inner: &Inner<C>, w: u32, now: u64) -> Result<(), TryError<C>> {
    if inner.sources.is_empty() {
        return Ok(());
    }
    if let Some(refusal) = inner.refusal_now(w, now) {
        return Err(refused(inner, refusal, now));
    }
    for source in &inner.sources {
        match source.admit(w).decided() {
            Some(RateDecision::Admitted) => {}
            Some(RateDecision::RetryAt(instant)) => {
                let at = inner.ns_of(instant).max(now);
                return Err(LimiterTryError::Rate(not_until(inner, at, now)));
            }
            Some(RateDecision::Failed(e)) => return Err(e.into()),
            None => return Err(LimiterTryError::SourcePending),
        }
    }
    Ok(())
}

/// Every stage of `inner` for `w`, now or never.
fn try_admit<C: Clock>(inner: &Arc<Inner<C>>, w: u32) -> Result<LimiterPermit<C>, TryError<C>> {
    inner.validate(w)?;
    let now = inner.now_ns();
    let slots = TrySlots::take(inner, w, now)?;
    let _gate = take_gate(inner)?;
    ask_sources(inner, w, now)?;
    inner
        .try_admit_now(w, now)
        .map_err(|refusal| refused(inner, refusal, now))?;
    Ok(slots.into_permit(now))
}

/// Counts the outcome of a try in `inner`'s `stats`.
fn count<C: Clock, T, E>(inner: &Inner<C>, result: &Result<T, E>) {
    match result {
        Ok(_) => inner.counters.admit(),
        Err(_) => inner.counters.deny(),
    }
}

impl<C: Clock> Limiter<C> {
    /// Admits one request of the configured weight now, or refuses at once:
    /// the load-shedding form of [`acquire`](Self::acquire), for a server
    /// that answers `429 Too Many Requests` (with
    /// [`retry_after`](LimiterTryError::retry_after) as `Retry-After`)
    /// instead of queueing.
    ///
    /// It passes the stages in the order of [`acquire`](Self::acquire),
    /// and takes their slots and cells all together or not at all. It never
    /// overtakes a queued request: while anyone waits for a slot or for the
    /// rates, it is refused (as [`Semaphore::try_acquire`](crate::Semaphore::try_acquire)).
    ///
    /// # Errors
    ///
    /// A [`LimiterTryError`] naming the stage that refused, nothing taken:
    /// `NoSlot` or `Held` (concurrency, minimum hold), `Queued` (someone
    /// waits for the rates), `Rate`, `Window` or `Paused` (with the instant
    /// they admit), `Closed`; `ExceedsCapacity` / `InsufficientCapacity`
    /// for a weight that could never be admitted; `SourcePending` /
    /// `RateSource` for a [`rate_source`](super::LimiterBuilder::rate_source) that
    /// cannot decide at once or failed. With several rate sources, cells an
    /// earlier source admitted stay spent if a later one refuses.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{Limiter, LimiterTryError, ManualClock, Quota};
    ///
    /// let limiter = Limiter::builder()
    ///     .concurrency(1)
    ///     .rate(Quota::per_second(10))
    ///     .clock(ManualClock::new())
    ///     .build()?;
    /// let permit = limiter.try_acquire()?; // handle the request
    /// assert_eq!(limiter.try_acquire().unwrap_err(), LimiterTryError::NoSlot);
    /// drop(permit);
    /// let refused = limiter.try_acquire().unwrap_err(); // the next cell is 100 ms away
    /// assert!(matches!(refused, LimiterTryError::Rate(_)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_acquire(&self) -> Result<LimiterPermit<C>, TryError<C>> {
        self.try_acquire_many(self.inner.weight)
    }

    /// Admits a request of `weight` now (`weight` slots and `weight` cells
    /// of every rate and window), or refuses at once with nothing taken: as
    /// [`try_acquire`](Self::try_acquire).
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](Self::try_acquire); `weight` above the
    /// concurrency is `ExceedsCapacity`, above a rate's burst or a window's
    /// size `InsufficientCapacity`.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{Limiter, LimiterTryError, ManualClock, Quota};
    ///
    /// let limiter = Limiter::builder()
    ///     .rate(Quota::per_second(10).allow_burst(5))
    ///     .clock(ManualClock::new())
    ///     .build()?;
    /// assert_eq!(limiter.try_acquire_many(4)?.weight(), 4);
    /// assert!(matches!(limiter.try_acquire_many(2), Err(LimiterTryError::Rate(_))));
    /// assert_eq!(
    ///     limiter.try_acquire_many(6).unwrap_err(),
    ///     LimiterTryError::InsufficientCapacity { requested: 6, burst: 5 }
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_acquire_many(&self, weight: u32) -> Result<LimiterPermit<C>, TryError<C>> {
        let result = try_admit(&self.inner, weight);
        count(&self.inner, &result);
        result
    }

    /// Runs `fut` if the limiter admits it now, or refuses at once (`fut`
    /// is then dropped unpolled): the load-shedding form of
    /// [`run`](Self::run). The decision is made in this call, not when the
    /// returned future is polled; the future holds the permit and gives it
    /// back as soon as `fut` completes.
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](Self::try_acquire).
    ///
    /// # Cancel safety
    ///
    /// Dropping the returned future drops `fut`, then the permit: the slot
    /// goes back (after the minimum hold); the cells were spent when it
    /// was admitted.
    ///
    /// # Examples
    ///
    /// A handler that sheds load with `429` and `Retry-After`:
    ///
    /// ```
    /// use limiters::{Limiter, ManualClock, Quota};
    ///
    /// async fn handle(limiter: &Limiter<ManualClock>) -> (u16, Option<u64>) {
    ///     match limiter.try_run(async { "the response" }) {
    ///         Ok(work) => {
    ///             let _body = work.await;
    ///             (200, None)
    ///         }
    ///         Err(refused) => (429, refused.retry_after().map(|d| d.as_secs().max(1))),
    ///     }
    /// }
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = Limiter::builder()
    ///     .concurrency(100)
    ///     .rate(Quota::per_second(1))
    ///     .clock(ManualClock::new())
    ///     .build()?;
    /// assert_eq!(handle(&limiter).await, (200, None));
    /// assert_eq!(handle(&limiter).await, (429, Some(1)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn try_run<F: Future>(&self, fut: F) -> Result<LimiterTryRun<C, F>, TryError<C>> {
        let mut permit = self.try_acquire()?;
        // Dropped before the work completes: says nothing about the server.
        permit.ignore();
        Ok(TryRun::new(permit, fut))
    }

    /// For the global limiter over `key`'s, with `turn` taking the keyed
    /// limiter's turn to queue for this one: every stage of both now or
    /// never, in `KeyedLimiter`'s order, both rates taken at one instant.
    /// Returns the key's permit and this one's.
    #[cfg(feature = "std")]
    pub(crate) fn try_acquire_with<T>(
        &self,
        key: &Limiter<C>,
        turn: impl FnOnce() -> Option<T>,
    ) -> Result<KeyAndGlobal<C>, KeyedTryError<C::Instant>> {
        let (g, k) = (&self.inner, &key.inner);
        let result = try_admit_with(g, k, turn);
        match &result {
            Ok(_) => {
                k.counters.admit();
                g.counters.admit();
            }
            Err(KeyedTryError::Key(_)) => k.counters.deny(),
            Err(KeyedTryError::Global(_)) => g.counters.deny(),
        }
        result
    }
}

/// See [`Limiter::try_acquire_with`].
#[cfg(feature = "std")]
fn try_admit_with<C: Clock, T>(
    g: &Arc<Inner<C>>,
    k: &Arc<Inner<C>>,
    turn: impl FnOnce() -> Option<T>,
) -> Result<KeyAndGlobal<C>, KeyedTryError<C::Instant>> {
    use KeyedTryError::{Global, Key};
    k.validate(k.weight).map_err(|e| Key(e.into()))?;
    g.validate(g.weight).map_err(|e| Global(e.into()))?;
    let now = g.now_ns();
    let k_now = g.ns_in(k, now);
    let key_slots = TrySlots::take(k, k.weight, k_now).map_err(Key)?;
    let _turn = turn().ok_or(Global(LimiterTryError::Queued))?;
    let global_slots = TrySlots::take(g, g.weight, now).map_err(Global)?;
    let _key_gate = take_gate(k).map_err(Key)?;
    let _gate = take_gate(g).map_err(Global)?;
    // The key's rates before a shared cell is spent.
    if let Some(refusal) = k.refusal_now(k.weight, k_now) {
        return Err(Key(refused(k, refusal, k_now)));
    }
    ask_sources(g, g.weight, now).map_err(Global)?;
    g.try_admit_now_with(g.weight, now, k)
        .map_err(|whose| match whose {
            Whose::Own(refusal) => Global(refused(g, refusal, now)),
            Whose::Co(refusal) => Key(refused(k, refusal, k_now)),
        })?;
    Ok((key_slots.into_permit(k_now), global_slots.into_permit(now)))
}

/// The future returned by [`Limiter::try_run`]: runs the wrapped future
/// holding the permit it was admitted with.
pub type LimiterTryRun<C, F> = TryRun<LimiterPermit<C>, F>;

pin_project! {
    /// Runs a future that was already admitted (by a `try_run`), holding
    /// its permit `P` until the future completes. Named by the aliases
    /// [`LimiterTryRun`](crate::futures::LimiterTryRun) and
    /// `KeyedTryRun`.
    ///
    /// # Cancel safety
    ///
    /// Dropping it drops the wrapped future, then the permit (the slot goes
    /// back, after the minimum hold if one is set).
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{futures::LimiterTryRun, Limiter, SystemClock};
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = Limiter::builder().concurrency(1).build()?;
    /// let run: LimiterTryRun<SystemClock, _> = limiter.try_run(async { 7 })?;
    /// assert_eq!(limiter.available_slots(), Some(0)); // admitted already
    /// assert_eq!(run.await, 7);
    /// assert_eq!(limiter.available_slots(), Some(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct TryRun<P, F> {
        // Declared first so it is dropped before the permit is released.
        #[pin]
        future: F,
        permit: Option<P>,
    }
}

impl<P, F: Future> TryRun<P, F> {
    pub(crate) fn new(permit: P, future: F) -> Self {
        Self {
            future,
            permit: Some(permit),
        }
    }

    /// Polls the future; once it completes, `done` marks the permit, which
    /// is then given back (not when `TryRun` is dropped).
    pub(crate) fn poll_run(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        done: impl FnOnce(&mut P),
    ) -> Poll<F::Output> {
        let this = self.project();
        let out = ready!(this.future.poll(cx));
        if let Some(mut permit) = this.permit.take() {
            done(&mut permit);
        }
        Poll::Ready(out)
    }
}

impl<C: Clock, F: Future> Future for TryRun<LimiterPermit<C>, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.poll_run(cx, |permit| permit.set_outcome(Outcome::Success))
    }
}

impl<P, F> fmt::Debug for TryRun<P, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryRun")
            .field("done", &self.permit.is_none())
            .finish_non_exhaustive()
    }
}
