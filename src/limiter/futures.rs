//! The composite limiter's named futures.

use alloc::sync::Arc;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{ready, Context, Poll};
use core::time::Duration;

use pin_project_lite::pin_project;

use super::state::Inner;
use super::{LimiterPermit, Outcome};
use crate::clock::Clock;
use crate::deadline::{sealed::Sealed, would_exceed, Attempt, Within};
use crate::error::{AcquireError, DeadlineError, NotUntil};
use crate::limiter::source::{RateAdmit, RateDecision};
use crate::semaphore::{AcquireOwned, OwnedPermit};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Not polled yet: holds nothing.
    Start,
    /// Queued for a concurrency slot.
    Slot,
    /// Holds a slot; in the hold queue until ghosts expire.
    Hold,
    /// Holds its slots; queued for the rate gate of the key's limiter
    /// (`co`), under a global one.
    CoGate,
    /// Head of the key's rate queue; sleeping until its quotas admit.
    CoRate,
    /// Holds a slot (if any); queued for the rate gate.
    Gate,
    /// Head of the rate queue; the quotas admit it: asking the rate
    /// sources in turn (only with sources).
    Source,
    /// Head of the rate queue; sleeping until every quota admits.
    Rate,
    /// Returned its output.
    Done,
}

pin_project! {
    /// The future returned by [`Limiter::acquire`](crate::Limiter::acquire)
    /// and [`Limiter::acquire_many`](crate::Limiter::acquire_many): passes
    /// the limiter's stages in order (concurrency slot, minimum hold, rate)
    /// and resolves to a [`LimiterPermit`].
    ///
    /// It owns a handle to the limiter, so it is `'static` and can be moved
    /// into a spawned task.
    ///
    /// # Cancel safety
    ///
    /// Dropping it at any point gives back everything it holds: its place in
    /// a queue, a slot it was granted (to the next waiter), and the head of
    /// the rate queue. No rate cell is ever taken before the permit is
    /// returned, so there is nothing to refund.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{futures::LimiterAcquire, Limiter, SystemClock};
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = Limiter::builder().concurrency(2).build().unwrap();
    /// let fut: LimiterAcquire<SystemClock> = limiter.acquire();
    /// let permit = fut.await.unwrap();
    /// # drop(permit);
    /// # });
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct LimiterAcquire<C: Clock> {
        inner: Arc<Inner<C>>,
        weight: u32,
        stage: Stage,
        #[pin]
        slot_wait: Option<AcquireOwned>,
        #[pin]
        hold_wait: Option<AcquireOwned>,
        #[pin]
        gate_wait: Option<AcquireOwned>,
        #[pin]
        sleep: Option<C::Sleep>,
        // The instant (ns) `sleep` was set for.
        sleep_at: u64,
        // Counted in the slots' `running` (only with a minimum hold).
        running: bool,
        // When it became the head of the rate queue (ns).
        head_since: u64,
        // The rate source being asked, and its pending decision.
        source: usize,
        source_wait: Option<RateAdmit<C::Instant>>,
        // A source's failure, returned by the `Rate` stage's exit path.
        failed: Option<AcquireError>,
        // Stop after the slot stages: a key's slots, whose rate is taken
        // by the global stage (`co` there).
        slots_only: bool,
        // The key's limiter, whose rate cells are taken at the instant this
        // (global) limiter admits: see `KeyedLimiter`'s order of stages.
        co: Option<Arc<Inner<C>>>,
        // The head of `co`'s rate queue, since `co_since` (`co`'s ns).
        co_gate: Option<OwnedPermit>,
        co_since: u64,
        // Dropped after `PinnedDrop` has fixed the hold accounting, so a
        // ghost is always pushed before the slot goes back.
        slot: Option<OwnedPermit>,
        // The head of the hold queue.
        hold: Option<OwnedPermit>,
        gate: Option<OwnedPermit>,
        // When it started to wait (ns), for `stats`.
        since: Option<u64>,
    }

    impl<C: Clock> PinnedDrop for LimiterAcquire<C> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(slots) = &this.inner.slots {
                let w = *this.weight as usize;
                if this.hold.is_some() {
                    slots.clear_head();
                }
                if *this.running {
                    slots.release(w, None, 0);
                }
            }
            if this.gate.is_some() {
                this.inner.clear_head();
            }
            if let (Some(co), Some(_)) = (this.co, this.co_gate) {
                co.clear_head();
            }
        }
    }
}

impl<C: Clock> LimiterAcquire<C> {
    pub(crate) fn new(inner: Arc<Inner<C>>, weight: u32) -> Self {
        Self {
            inner,
            weight,
            stage: Stage::Start,
            slot_wait: None,
            gate_wait: None,
            sleep: None,
            sleep_at: 0,
            running: false,
            head_since: 0,
            source: 0,
            source_wait: None,
            failed: None,
            slots_only: false,
            co: None,
            co_gate: None,
            co_since: 0,
            slot: None,
            hold_wait: None,
            hold: None,
            gate: None,
            since: None,
        }
    }

    /// Whether it waits for the key's (`co`) rate queue or rate.
    #[cfg(feature = "std")]
    pub(crate) fn waits_for_co(&self) -> bool {
        matches!(self.stage, Stage::CoGate | Stage::CoRate)
    }

    /// Passes only the slot stages (concurrency and minimum hold); the
    /// permit's rate cells are left to a global stage built with
    /// [`with_co`](Self::with_co).
    #[cfg(feature = "std")]
    pub(crate) fn slots_only(mut self) -> Self {
        self.slots_only = true;
        self
    }

    /// Takes `co`'s rate cells (its configured weight) at the instant this
    /// limiter admits, after `co`'s rate queue: a key's rate under the
    /// global limiter.
    #[cfg(feature = "std")]
    pub(crate) fn with_co(mut self, co: Arc<Inner<C>>) -> Self {
        self.co = Some(co);
        self
    }
}

impl<C: Clock> Future for LimiterAcquire<C> {
    type Output = Result<LimiterPermit<C>, AcquireError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let output = self.as_mut().poll_stages(cx);
        // For `stats`: the clock is read only when it starts to wait.
        let this = self.project();
        match (&output, *this.since) {
            (Poll::Pending, None) => *this.since = Some(this.inner.now_ns()),
            (Poll::Ready(Ok(_)), None) => this.inner.counters.admit(),
            (Poll::Ready(Ok(permit)), Some(since)) => {
                let waited = permit.admitted_ns.saturating_sub(since);
                this.inner.counters.admit_after(waited);
            }
            _ => {}
        }
        output
    }
}

impl<C: Clock> LimiterAcquire<C> {
    fn poll_stages(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<LimiterPermit<C>, AcquireError>> {
        let mut this = self.project();
        let inner: &Arc<Inner<C>> = this.inner;
        let w = *this.weight;
        // A clock reading taken earlier in this poll, for the next stage to
        // reuse (each reading costs tens of nanoseconds).
        let mut just_read: Option<u64> = None;
        loop {
            match *this.stage {
                Stage::Start => {
                    if let Err(e) = inner.validate(w) {
                        *this.stage = Stage::Done;
                        return Poll::Ready(Err(e));
                    }
                    match &inner.slots {
                        Some(slots) => {
                            this.slot_wait
                                .set(Some(slots.sem.acquire_many_owned(w as usize)));
                            *this.stage = Stage::Slot;
                        }
                        None => *this.stage = Stage::Gate,
                    }
                }
                Stage::Slot => {
                    let wait = this.slot_wait.as_mut().as_pin_mut().expect("slot wait");
                    let granted = ready!(wait.poll(cx));
                    this.slot_wait.set(None);
                    match granted {
                        Ok(permit) => *this.slot = Some(permit),
                        Err(e) => {
                            *this.stage = Stage::Done;
                            return Poll::Ready(Err(e));
                        }
                    }
                    let slots = inner.slots.as_ref().expect("slots");
                    *this.stage = if slots.has_hold() {
                        Stage::Hold
                    } else {
                        Stage::Gate
                    };
                }
                Stage::Hold => {
                    let slots = inner.slots.as_ref().expect("slots");
                    if this.hold.is_none() {
                        if this.hold_wait.is_none() {
                            this.hold_wait.set(Some(slots.hold_gate.acquire_owned()));
                        }
                        let wait = this.hold_wait.as_mut().as_pin_mut().expect("hold wait");
                        let granted = ready!(wait.poll(cx));
                        this.hold_wait.set(None);
                        match granted {
                            Ok(head) => *this.hold = Some(head),
                            Err(e) => {
                                *this.stage = Stage::Done;
                                return Poll::Ready(Err(e));
                            }
                        }
                    }
                    // `close` wakes the head of the hold queue: fail now
                    // instead of sleeping on until the ghosts expire.
                    // Give the slot back now, not when the future is dropped.
                    if slots.hold_gate.is_closed() {
                        slots.clear_head();
                        *this.hold = None;
                        *this.slot = None;
                        this.sleep.set(None);
                        *this.stage = Stage::Done;
                        return Poll::Ready(Err(AcquireError::Closed));
                    }
                    match slots.try_start(w as usize, inner.now_ns(), cx.waker()) {
                        Ok(()) => {
                            *this.running = true;
                            // Let the next request become the head.
                            *this.hold = None;
                            this.sleep.set(None);
                            *this.stage = Stage::Gate;
                        }
                        // Only a release (which wakes us) can make room.
                        Err(u64::MAX) => return Poll::Pending,
                        Err(at) => {
                            if this.sleep.is_none() || *this.sleep_at != at {
                                this.sleep
                                    .set(Some(inner.clock.sleep_until(inner.instant_at(at))));
                                *this.sleep_at = at;
                            }
                            let sleep = this.sleep.as_mut().as_pin_mut().expect("hold sleep");
                            ready!(sleep.poll(cx));
                            this.sleep.set(None);
                        }
                    }
                }
                Stage::Gate if *this.slots_only => {
                    // The global stage sets the real admission instant.
                    *this.stage = Stage::Done;
                    let permit = LimiterPermit::new(
                        Arc::clone(inner),
                        this.slot.take(),
                        w,
                        0,
                        core::mem::take(this.running),
                    );
                    return Poll::Ready(Ok(permit));
                }
                Stage::Gate if this.co.is_some() && this.co_gate.is_none() => {
                    *this.stage = Stage::CoGate;
                }
                Stage::CoGate => {
                    let co = this.co.as_ref().expect("co");
                    if this.gate_wait.is_none() {
                        this.gate_wait.set(Some(co.gate.acquire_owned()));
                    }
                    let wait = this.gate_wait.as_mut().as_pin_mut().expect("co gate wait");
                    let granted = ready!(wait.poll(cx));
                    this.gate_wait.set(None);
                    match granted {
                        Ok(gate) => *this.co_gate = Some(gate),
                        Err(e) => {
                            release_early(inner, w, this.running, this.slot);
                            *this.stage = Stage::Done;
                            return Poll::Ready(Err(e));
                        }
                    }
                    let now = co.now_ns();
                    *this.co_since = now;
                    just_read = Some(now);
                    *this.stage = Stage::CoRate;
                }
                Stage::CoRate => {
                    let co = this.co.as_ref().expect("co");
                    if co.gate.is_closed() {
                        co.clear_head();
                        *this.co_gate = None;
                        release_early(inner, w, this.running, this.slot);
                        this.sleep.set(None);
                        *this.stage = Stage::Done;
                        return Poll::Ready(Err(AcquireError::Closed));
                    }
                    let now = just_read.take().unwrap_or_else(|| co.now_ns());
                    match co.try_conform(co.weight, *this.co_since, now, cx.waker()) {
                        Ok(()) => {
                            this.sleep.set(None);
                            *this.stage = Stage::Gate;
                        }
                        Err(at) => {
                            if this.sleep.is_none() || *this.sleep_at != at {
                                this.sleep
                                    .set(Some(co.clock.sleep_until(co.instant_at(at))));
                                *this.sleep_at = at;
                            }
                            let sleep = this.sleep.as_mut().as_pin_mut().expect("co sleep");
                            ready!(sleep.poll(cx));
                            this.sleep.set(None);
                        }
                    }
                }
                Stage::Gate => {
                    if this.gate_wait.is_none() {
                        this.gate_wait.set(Some(inner.gate.acquire_owned()));
                    }
                    let wait = this.gate_wait.as_mut().as_pin_mut().expect("gate wait");
                    let granted = ready!(wait.poll(cx));
                    this.gate_wait.set(None);
                    match granted {
                        Ok(gate) => *this.gate = Some(gate),
                        Err(e) => {
                            *this.stage = Stage::Done;
                            return Poll::Ready(Err(e));
                        }
                    }
                    let now = inner.now_ns();
                    *this.head_since = now;
                    just_read = Some(now);
                    // Sources already asked (before a key's pause sent it
                    // back to the key's queue) are not asked again.
                    *this.stage = if *this.source < inner.sources.len() {
                        Stage::Source
                    } else {
                        Stage::Rate
                    };
                }
                Stage::Source if !inner.gate.is_closed() => {
                    if let Some(sleep) = this.sleep.as_mut().as_pin_mut() {
                        ready!(sleep.poll(cx));
                        this.sleep.set(None);
                    }
                    if this.source_wait.is_none() {
                        // The quotas first: no shared cell is spent while
                        // a local rate would still make the head wait.
                        let now = just_read.take().unwrap_or_else(|| inner.now_ns());
                        if let Err(at) = inner.try_conform(w, *this.head_since, now, cx.waker()) {
                            this.sleep
                                .set(Some(inner.clock.sleep_until(inner.instant_at(at))));
                            *this.sleep_at = at;
                            continue;
                        }
                        *this.source_wait = Some(inner.sources[*this.source].admit(w));
                    }
                    let wait = this.source_wait.as_mut().expect("source wait");
                    let decision = ready!(Pin::new(wait).poll(cx));
                    *this.source_wait = None;
                    match decision {
                        RateDecision::Admitted => {
                            *this.source += 1;
                            if *this.source == inner.sources.len() {
                                *this.stage = Stage::Rate;
                            }
                        }
                        RateDecision::RetryAt(instant) => {
                            let at = inner.ns_of(instant);
                            this.sleep
                                .set(Some(inner.clock.sleep_until(inner.instant_at(at))));
                            *this.sleep_at = at;
                        }
                        RateDecision::Failed(e) => {
                            *this.failed = Some(e);
                            *this.stage = Stage::Rate;
                        }
                    }
                }
                Stage::Rate | Stage::Source => {
                    let co_closed = this.co.as_ref().is_some_and(|co| co.gate.is_closed());
                    if inner.gate.is_closed() || co_closed || this.failed.is_some() {
                        // Give the slot back now, not when the future is
                        // dropped (accounting first, as in `PinnedDrop`).
                        inner.clear_head();
                        *this.gate = None;
                        if let (Some(co), Some(_)) = (this.co.as_ref(), this.co_gate.take()) {
                            co.clear_head();
                        }
                        release_early(inner, w, this.running, this.slot);
                        this.sleep.set(None);
                        *this.stage = Stage::Done;
                        return Poll::Ready(Err(this
                            .failed
                            .take()
                            .unwrap_or(AcquireError::Closed)));
                    }
                    let now = just_read.take().unwrap_or_else(|| inner.now_ns());
                    let admitted = match this.co.as_ref() {
                        None => inner.try_admit(w, *this.head_since, now, cx.waker()),
                        Some(co) => {
                            let since = *this.head_since;
                            match inner.try_admit_with(
                                w,
                                since,
                                now,
                                cx.waker(),
                                co,
                                *this.co_since,
                            ) {
                                Ok(now) => {
                                    // Leave the key's rate queue too.
                                    *this.co_gate = None;
                                    Ok(now)
                                }
                                Err(Some(at)) => Err(at),
                                Err(None) => {
                                    // The key was paused meanwhile: let other
                                    // keys pass the global rate, wait for it.
                                    inner.clear_head();
                                    *this.gate = None;
                                    this.sleep.set(None);
                                    *this.stage = Stage::CoRate;
                                    continue;
                                }
                            }
                        }
                    };
                    match admitted {
                        Ok(now) => {
                            this.sleep.set(None);
                            // Let the next request become the head.
                            *this.gate = None;
                            *this.stage = Stage::Done;
                            let permit = LimiterPermit::new(
                                Arc::clone(inner),
                                this.slot.take(),
                                w,
                                now,
                                core::mem::take(this.running),
                            );
                            return Poll::Ready(Ok(permit));
                        }
                        Err(at) => {
                            if this.sleep.is_none() || *this.sleep_at != at {
                                this.sleep
                                    .set(Some(inner.clock.sleep_until(inner.instant_at(at))));
                                *this.sleep_at = at;
                            }
                            let sleep = this.sleep.as_mut().as_pin_mut().expect("rate sleep");
                            ready!(sleep.poll(cx));
                            this.sleep.set(None);
                        }
                    }
                }
                Stage::Done => panic!("LimiterAcquire polled after it completed"),
            }
        }
    }
}

/// A request that fails after its slot stages gives its slot back now, not
/// when the future is dropped (accounting first, as in `PinnedDrop`).
fn release_early<C: Clock>(
    inner: &Inner<C>,
    w: u32,
    running: &mut bool,
    slot: &mut Option<OwnedPermit>,
) {
    if core::mem::take(running) {
        let slots = inner.slots.as_ref().expect("running implies slots");
        slots.release(w as usize, None, 0);
    }
    *slot = None;
}

impl<C: Clock> fmt::Debug for LimiterAcquire<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimiterAcquire")
            .field("weight", &self.weight)
            .field("stage", &self.stage)
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// The future returned by [`Limiter::run`](crate::Limiter::run): waits
    /// for the limiter's permit, then runs the wrapped future while holding
    /// it, and gives the permit back as soon as the future completes.
    ///
    /// # Cancel safety
    ///
    /// Dropping it before admission gives back whatever it held (as
    /// [`LimiterAcquire`]); dropping it while the wrapped future runs drops
    /// that future and then the permit. Either way the slot returns (after
    /// the minimum hold, if one is set) and no rate cell is lost.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{futures::LimiterRun, Limiter};
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = Limiter::builder().concurrency(1).build().unwrap();
    /// let fut: LimiterRun<_, _> = limiter.run(async { 7 });
    /// assert_eq!(fut.await, Ok(7));
    /// # });
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct LimiterRun<C: Clock, F> {
        // Declared first so it is dropped before the permit is released.
        #[pin]
        future: F,
        #[pin]
        acquire: LimiterAcquire<C>,
        permit: Option<LimiterPermit<C>>,
        admitted: bool,
    }
}

impl<C: Clock, F> LimiterRun<C, F> {
    pub(crate) fn new(acquire: LimiterAcquire<C>, future: F) -> Self {
        Self {
            future,
            acquire,
            permit: None,
            admitted: false,
        }
    }
}

impl<C: Clock, F: Future> Future for LimiterRun<C, F> {
    type Output = Result<F::Output, AcquireError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if !*this.admitted {
            let mut permit = ready!(this.acquire.poll(cx))?;
            // Dropped before the work completes: says nothing about the
            // server (for an adaptive limit).
            permit.ignore();
            *this.permit = Some(permit);
            *this.admitted = true;
        }
        let out = ready!(this.future.poll(cx));
        // Release as soon as the work is done, not when `LimiterRun` is
        // dropped.
        if let Some(mut permit) = this.permit.take() {
            permit.set_outcome(Outcome::Success);
        }
        Poll::Ready(Ok(out))
    }
}

impl<C: Clock, F> fmt::Debug for LimiterRun<C, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimiterRun")
            .field("admitted", &self.admitted)
            .finish_non_exhaustive()
    }
}

impl<C: Clock> Sealed for LimiterAcquire<C> {}

impl<C: Clock> Attempt for LimiterAcquire<C> {
    type Clock = C;
    type Admitted = LimiterPermit<C>;

    fn clock(&self) -> &C {
        &self.inner.clock
    }

    fn try_now(
        self: Pin<&mut Self>,
        deadline: C::Instant,
    ) -> Option<Result<LimiterPermit<C>, DeadlineError<C::Instant>>> {
        let inner = &self.inner;
        if let Err(e) = inner.validate(self.weight) {
            return Some(Err(e.into()));
        }
        // The rates alone, were it at the head of every queue now: the
        // queues ahead can only make it later.
        let now = inner.now_ns();
        let earliest = inner.earliest_ns(self.weight, now);
        (inner.instant_at(earliest) > deadline).then(|| {
            Err(would_exceed(NotUntil::new(
                inner.instant_at(earliest),
                Duration::from_nanos(earliest - now),
            )))
        })
    }

    fn sleeping_until(&self) -> Option<C::Instant> {
        // Sleeping for the rate (or for ghosts of the minimum hold) until
        // `sleep_at`: admitted then at the earliest; `close` and releases
        // wake it.
        (matches!(self.stage, Stage::Hold | Stage::Source | Stage::Rate) && self.sleep.is_some())
            .then(|| self.inner.instant_at(self.sleep_at))
    }

    fn refused(&self) {
        self.inner.counters.deny();
    }

    fn finish(output: Self::Output) -> Result<LimiterPermit<C>, DeadlineError<C::Instant>> {
        output.map_err(Into::into)
    }
}

pin_project! {
    /// The future returned by
    /// [`Limiter::run_within`](crate::Limiter::run_within): as
    /// [`LimiterRun`], but gives up (without polling the wrapped future)
    /// if admission does not come by the deadline.
    ///
    /// # Cancel safety
    ///
    /// As [`LimiterRun`]: a timeout gives back the slot and the place in
    /// the queues before the error is returned, and the wrapped future is
    /// then dropped unpolled.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{futures::LimiterRunWithin, Limiter};
    ///
    /// # futures_lite::future::block_on(async {
    /// let limiter = Limiter::builder().concurrency(1).build().unwrap();
    /// let fut: LimiterRunWithin<_, _> = limiter.run_within(Duration::from_secs(1), async { 7 });
    /// assert_eq!(fut.await, Ok(7));
    /// # });
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct LimiterRunWithin<C: Clock, F> {
        // Declared first so it is dropped before the permit is released.
        #[pin]
        future: F,
        #[pin]
        acquire: Within<LimiterAcquire<C>>,
        permit: Option<LimiterPermit<C>>,
    }
}

impl<C: Clock, F> LimiterRunWithin<C, F> {
    pub(crate) fn new(acquire: Within<LimiterAcquire<C>>, future: F) -> Self {
        Self {
            future,
            acquire,
            permit: None,
        }
    }
}

impl<C: Clock, F: Future> Future for LimiterRunWithin<C, F> {
    type Output = Result<F::Output, DeadlineError<C::Instant>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if this.permit.is_none() {
            *this.permit = Some(ready!(this.acquire.poll(cx))?);
        }
        let out = ready!(this.future.poll(cx));
        // Release as soon as the work is done.
        *this.permit = None;
        Poll::Ready(Ok(out))
    }
}

impl<C: Clock, F> fmt::Debug for LimiterRunWithin<C, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimiterRunWithin")
            .field("admitted", &self.permit.is_some())
            .finish_non_exhaustive()
    }
}
