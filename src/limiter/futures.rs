//! The composite limiter's named futures.

use alloc::sync::Arc;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{ready, Context, Poll};
use core::time::Duration;

use pin_project_lite::pin_project;

use super::state::{Admitted, Inner};
use super::{LimiterPermit, Outcome};
use crate::clock::Clock;
use crate::deadline::{sealed::Sealed, would_exceed, Attempt, Within};
use crate::error::{AcquireError, DeadlineError, NotUntil};
use crate::limiter::source::{RateAdmit, RateDecision};
use crate::semaphore::raw::{Waiter, UNCOUNTED};
use crate::semaphore::Semaphore;

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
    /// What a request is waiting on in its current stage: one thing at a
    /// time, so one field.
    #[project = WaitProj]
    enum Wait<S, I> {
        /// Nothing: between stages.
        Idle,
        /// Queued on the semaphore of the current stage (the slots, the hold
        /// queue or a rate gate); the queue node lives here, pinned.
        Queued {
            #[pin]
            node: Waiter,
        },
        /// Sleeping until `at` (ns on the timeline of the stage's limiter).
        Sleeping {
            #[pin]
            sleep: S,
            at: u64,
        },
        /// Asking a rate source, whose decision may come later.
        Asking {
            admit: RateAdmit<I>,
        },
    }
}

/// What a request holds between stages, one bit each, and whether it
/// stops after the slot stages (one byte, so that `LimiterAcquire` fits in
/// two cache lines).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct Flags(u8);

impl Flags {
    /// `weight` permits of the slots' semaphore.
    const SLOT: u8 = 1;
    /// Counted in the slots' `running` (only with a minimum hold).
    const RUNNING: u8 = 1 << 1;
    /// The hold queue's permit: the head of that queue.
    const HOLD: u8 = 1 << 2;
    /// The rate gate's permit: the head of the rate queue.
    const GATE: u8 = 1 << 3;
    /// The rate gate's permit of `co`.
    const CO_GATE: u8 = 1 << 4;
    /// Everything above: what the request holds.
    const HELD: u8 = (1 << 5) - 1;
    /// Stop after the slot stages: a key's slots, whose rate is taken by
    /// the global stage (`co` there).
    const SLOTS_ONLY: u8 = 1 << 5;

    fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    fn set(&mut self, bit: u8, on: bool) {
        if on {
            self.0 |= bit;
        } else {
            self.0 &= !bit;
        }
    }

    /// Gives back everything held, slot accounting before the slot itself
    /// (so whoever gets the slot sees the ghost, if any).
    fn give_back<C: Clock>(&mut self, inner: &Inner<C>, co: Option<&Inner<C>>, w: u32) {
        let held = Flags(self.0 & Self::HELD);
        self.0 &= !Self::HELD;
        if held.has(Self::HOLD | Self::RUNNING | Self::SLOT) {
            let slots = inner.slots.as_ref().expect("a slot stage implies slots");
            if held.has(Self::HOLD) {
                slots.clear_head();
                slots.hold_gate.raw.release(1);
            }
            if held.has(Self::RUNNING) {
                slots.release(w as usize, None, 0);
            }
            if held.has(Self::SLOT) {
                slots.sem.raw.release(w as usize);
            }
        }
        if held.has(Self::GATE) {
            inner.clear_head();
            inner.gate.raw.release(1);
        }
        if held.has(Self::CO_GATE) {
            let co = co.expect("a co gate implies co");
            co.clear_head();
            co.gate.raw.release(1);
        }
    }
}

impl<S: Future<Output = ()>, I> Wait<S, I> {
    /// Waits in `sem`'s queue for `n` permits (joining it if not queued
    /// yet); when they are granted, the caller holds them and the wait is
    /// idle again.
    fn queue(
        mut self: Pin<&mut Self>,
        sem: &Semaphore,
        n: usize,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), AcquireError>> {
        if !matches!(*self, Wait::Queued { .. }) {
            self.set(Wait::Queued {
                node: Waiter::new(n),
            });
        }
        let WaitProj::Queued { node } = self.as_mut().project() else {
            unreachable!("just queued")
        };
        // Uncounted: nobody reads an inner semaphore's statistics.
        let granted = ready!(node.poll_acquire::<UNCOUNTED>(&sem.raw, cx));
        self.set(Wait::Idle);
        Poll::Ready(granted)
    }

    /// Sleeps until `at` (a new sleep from `sleep` unless one for `at` is
    /// already armed); idle again when it fires.
    fn sleep(
        mut self: Pin<&mut Self>,
        at: u64,
        sleep: impl FnOnce() -> S,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        if !matches!(*self, Wait::Sleeping { at: armed, .. } if armed == at) {
            self.set(Wait::Sleeping { sleep: sleep(), at });
        }
        self.poll_sleep(cx)
    }

    /// Polls the armed sleep; idle again when it fires.
    fn poll_sleep(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let WaitProj::Sleeping { sleep, .. } = self.as_mut().project() else {
            unreachable!("no sleep armed")
        };
        ready!(sleep.poll(cx));
        self.set(Wait::Idle);
        Poll::Ready(())
    }
}

pin_project! {
    /// The future returned by [`Limiter::acquire`](crate::Limiter::acquire)
    /// and [`Limiter::acquire_many`](crate::Limiter::acquire_many): passes
    /// the limiter's stages in order (concurrency slot, minimum hold, rate)
    /// and resolves to a [`LimiterPermit`].
    ///
    /// It owns a handle to the limiter, so it is `'static` and can be moved
    /// into a spawned task. Waiting in the limiter's queues allocates
    /// nothing: it waits on one thing at a time (a queue node that lives
    /// inside it, a sleep, or a rate source's decision).
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
        #[pin]
        stages: Stages<C>,
    }

    impl<C: Clock> PinnedDrop for LimiterAcquire<C> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            this.stages.give_back(this.inner);
        }
    }
}

pin_project! {
    /// A request on its way through the limiter's stages. The limiter is
    /// not in here: the future that owns this holds it and passes it in.
    struct Stages<C: Clock> {
        // The key's limiter, whose rate cells are taken at the instant this
        // (global) limiter admits: see `KeyedLimiter`'s order of stages.
        co: Option<Arc<Inner<C>>>,
        weight: u32,
        // The rate sources already asked (they are asked in order; the
        // builder allows at most `u16::MAX`).
        sources_asked: u16,
        stage: Stage,
        flags: Flags,
        // When it became the head of the rate queue (ns).
        head_since: u64,
        // When it became the head of `co`'s rate queue (`co`'s ns).
        co_since: u64,
        // When it started to wait (ns), for `stats`; `NOT_WAITING` until
        // then.
        since: u64,
        #[pin]
        wait: Wait<C::Sleep, C::Instant>,
    }
}

/// `Stages::since` of a request that has not waited (yet).
const NOT_WAITING: u64 = u64::MAX;

/// The semaphore a request queues on in `stage`.
fn queue_of<'a, C: Clock>(
    stage: Stage,
    inner: &'a Inner<C>,
    co: Option<&'a Inner<C>>,
) -> &'a Semaphore {
    match stage {
        Stage::Slot => &inner.slots.as_ref().expect("slots").sem,
        Stage::Hold => &inner.slots.as_ref().expect("slots").hold_gate,
        Stage::CoGate => &co.expect("co").gate,
        Stage::Gate => &inner.gate,
        _ => unreachable!("no queue in stage {stage:?}"),
    }
}

impl<C: Clock> LimiterAcquire<C> {
    pub(crate) fn new(inner: Arc<Inner<C>>, weight: u32) -> Self {
        Self {
            inner,
            stages: Stages::new(weight),
        }
    }

    /// Whether it waits for the key's (`co`) rate queue or rate.
    #[cfg(feature = "std")]
    pub(crate) fn waits_for_co(&self) -> bool {
        matches!(self.stages.stage, Stage::CoGate | Stage::CoRate)
    }

    /// Passes only the slot stages (concurrency and minimum hold); the
    /// permit's rate cells are left to a global stage built with
    /// [`with_co`](Self::with_co).
    #[cfg(feature = "std")]
    pub(crate) fn slots_only(mut self) -> Self {
        self.stages.flags.set(Flags::SLOTS_ONLY, true);
        self
    }

    /// Takes `co`'s rate cells (its configured weight) at the instant this
    /// limiter admits, after `co`'s rate queue: a key's rate under the
    /// global limiter.
    #[cfg(feature = "std")]
    pub(crate) fn with_co(mut self, co: Arc<Inner<C>>) -> Self {
        self.stages.co = Some(co);
        self
    }
}

impl<C: Clock> Future for LimiterAcquire<C> {
    type Output = Result<LimiterPermit<C>, AcquireError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let admitted = ready!(this.stages.poll(this.inner, cx))?;
        Poll::Ready(Ok(LimiterPermit::new(Arc::clone(this.inner), admitted)))
    }
}

impl<C: Clock> Stages<C> {
    fn new(weight: u32) -> Self {
        Self {
            co: None,
            weight,
            sources_asked: 0,
            stage: Stage::Start,
            flags: Flags::default(),
            head_since: 0,
            co_since: 0,
            since: NOT_WAITING,
            wait: Wait::Idle,
        }
    }

    /// Gives back whatever the request holds (nothing once it is done).
    fn give_back(self: Pin<&mut Self>, inner: &Inner<C>) {
        let this = self.project();
        if *this.stage == Stage::Done {
            // Holds nothing: its permit (or error) has it all.
            return;
        }
        let co = this.co.as_deref();
        if let WaitProj::Queued { node } = this.wait.project() {
            node.cancel(&queue_of(*this.stage, inner, co).raw);
        }
        this.flags.give_back(inner, co, *this.weight);
        *this.stage = Stage::Done;
    }

    /// Drives the request through its stages; once admitted, what it holds
    /// is in the returned [`Admitted`].
    #[inline]
    fn poll(
        mut self: Pin<&mut Self>,
        inner: &Inner<C>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Admitted, AcquireError>> {
        if let Some(admitted) = self.as_mut().admit_idle(inner) {
            inner.counters.admit();
            return Poll::Ready(Ok(admitted));
        }
        let output = match self.as_mut().admit_handed_over(inner) {
            Some(admitted) => Poll::Ready(Ok(admitted)),
            None => self.as_mut().poll_stages(inner, cx),
        };
        // For `stats`: the clock is read only when it starts to wait.
        let since = self.project().since;
        match &output {
            Poll::Pending if *since == NOT_WAITING => *since = inner.now_ns(),
            Poll::Ready(Ok(_)) if *since == NOT_WAITING => inner.counters.admit(),
            Poll::Ready(Ok(admitted)) => {
                let waited = admitted.admitted_ns.saturating_sub(*since);
                inner.counters.admit_after(waited);
            }
            _ => {}
        }
        output
    }

    /// The first poll of a request on an idle limiter (a free slot with no
    /// minimum hold, nobody at the rate gate, rates that conform now):
    /// admitted at once, as a hand-written semaphore + rate limiter pair
    /// would admit it, without the stage machine. Any other case returns
    /// `None`: having changed nothing; or, the request validated and the
    /// slot not free, at the `Slot` stage; or having taken the slot (the
    /// stage is then `Gate`), and [`poll_stages`](Self::poll_stages) goes on
    /// from there.
    #[inline(always)]
    fn admit_idle(self: Pin<&mut Self>, inner: &Inner<C>) -> Option<Admitted> {
        let this = self.project();
        let w = *this.weight;
        if *this.stage != Stage::Start
            || !idle_shape(inner, this.co, *this.flags)
            || inner.validate(w).is_err()
        {
            return None;
        }
        if let Some(slots) = &inner.slots {
            if slots.has_hold() || !slots.sem.raw.try_acquire_fast::<UNCOUNTED>(w as usize) {
                // Validated: the stage machine goes on from the slot stage,
                // as its `Start` would.
                *this.stage = Stage::Slot;
                return None;
            }
            this.flags.set(Flags::SLOT, true);
        }
        admit_at_idle_gate(inner, this.flags, this.stage, w)
    }

    /// The poll after a queued request's slot was handed over (the
    /// contended shape), on a limiter without a minimum hold, rate sources
    /// or a key above it: takes the slot and is admitted at once if the
    /// rates conform and nobody is at the rate gate, as in
    /// [`admit_idle`](Self::admit_idle), without the stage machine's
    /// set-up. Any other case returns `None` having changed nothing, or
    /// having taken the slot (the stage is then `Gate`, where
    /// [`poll_stages`](Self::poll_stages) goes on): the same steps the
    /// stage machine takes, in the same order.
    #[inline(always)]
    fn admit_handed_over(self: Pin<&mut Self>, inner: &Inner<C>) -> Option<Admitted> {
        let mut this = self.project();
        if *this.stage != Stage::Slot || !idle_shape(inner, this.co, *this.flags) {
            return None;
        }
        let slots = inner.slots.as_ref().expect("a slot stage implies slots");
        if slots.has_hold() {
            return None;
        }
        let WaitProj::Queued { node } = this.wait.as_mut().project() else {
            return None;
        };
        if !node.take_grant() {
            return None;
        }
        this.wait.set(Wait::Idle);
        this.flags.set(Flags::SLOT, true);
        admit_at_idle_gate(inner, this.flags, this.stage, *this.weight)
    }

    // Out of line: its set-up (every stage's state) would otherwise be paid
    // by the idle path too.
    #[inline(never)]
    fn poll_stages(
        self: Pin<&mut Self>,
        inner: &Inner<C>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Admitted, AcquireError>> {
        let mut this = self.project();
        let co = this.co.as_deref();
        let w = *this.weight;
        // A clock reading taken earlier in this poll, for the next stage to
        // reuse (each reading costs tens of nanoseconds).
        let mut just_read: Option<u64> = None;
        // Fails the request, giving back at once whatever it holds (a
        // pending source decision is dropped here, with no lock held).
        macro_rules! fail {
            ($e:expr) => {{
                this.flags.give_back(inner, co, w);
                this.wait.set(Wait::Idle);
                *this.stage = Stage::Done;
                return Poll::Ready(Err($e));
            }};
        }
        loop {
            match *this.stage {
                Stage::Start => {
                    if let Err(e) = inner.validate(w) {
                        fail!(e);
                    }
                    *this.stage = match &inner.slots {
                        Some(_) => Stage::Slot,
                        None => Stage::Gate,
                    };
                }
                Stage::Slot => {
                    let slots = inner.slots.as_ref().expect("slots");
                    // Free slots and nobody queued: one compare-and-swap, no
                    // queue node.
                    let free = matches!(*this.wait, Wait::Idle)
                        && slots.sem.raw.try_acquire_fast::<UNCOUNTED>(w as usize);
                    if !free {
                        let queued = this.wait.as_mut().queue(&slots.sem, w as usize, cx);
                        if let Err(e) = ready!(queued) {
                            fail!(e);
                        }
                    }
                    this.flags.set(Flags::SLOT, true);
                    *this.stage = if slots.has_hold() {
                        Stage::Hold
                    } else {
                        Stage::Gate
                    };
                }
                Stage::Hold => {
                    let slots = inner.slots.as_ref().expect("slots");
                    if !this.flags.has(Flags::HOLD) {
                        if let Err(e) = ready!(this.wait.as_mut().queue(&slots.hold_gate, 1, cx)) {
                            fail!(e);
                        }
                        this.flags.set(Flags::HOLD, true);
                    }
                    // `close` wakes the head of the hold queue: fail now
                    // instead of sleeping on until the ghosts expire.
                    if slots.hold_gate.is_closed() {
                        fail!(AcquireError::Closed);
                    }
                    match slots.try_start(w as usize, inner.now_ns(), cx.waker()) {
                        Ok(()) => {
                            this.flags.set(Flags::RUNNING, true);
                            // Let the next request become the head.
                            this.flags.set(Flags::HOLD, false);
                            slots.hold_gate.raw.release(1);
                            this.wait.set(Wait::Idle);
                            *this.stage = Stage::Gate;
                        }
                        // Only a release (which wakes us) can make room.
                        Err(u64::MAX) => return Poll::Pending,
                        Err(at) => {
                            let sleep = || inner.clock.sleep_until(inner.instant_at(at));
                            ready!(this.wait.as_mut().sleep(at, sleep, cx));
                        }
                    }
                }
                Stage::Gate if this.flags.has(Flags::SLOTS_ONLY) => {
                    // The global stage sets the real admission instant.
                    return Poll::Ready(Ok(admit(inner, this.flags, this.stage, w, 0)));
                }
                Stage::Gate if co.is_some() && !this.flags.has(Flags::CO_GATE) => {
                    *this.stage = Stage::CoGate;
                }
                Stage::CoGate => {
                    let co = co.expect("co");
                    if let Err(e) = ready!(this.wait.as_mut().queue(&co.gate, 1, cx)) {
                        fail!(e);
                    }
                    this.flags.set(Flags::CO_GATE, true);
                    let now = co.now_ns();
                    *this.co_since = now;
                    just_read = Some(now);
                    *this.stage = Stage::CoRate;
                }
                Stage::CoRate => {
                    let co = co.expect("co");
                    if co.gate.is_closed() {
                        fail!(AcquireError::Closed);
                    }
                    let now = just_read.take().unwrap_or_else(|| co.now_ns());
                    match co.try_conform(co.weight, *this.co_since, now, cx.waker()) {
                        Ok(()) => {
                            this.wait.set(Wait::Idle);
                            *this.stage = Stage::Gate;
                        }
                        Err(at) => {
                            let sleep = || co.clock.sleep_until(co.instant_at(at));
                            ready!(this.wait.as_mut().sleep(at, sleep, cx));
                        }
                    }
                }
                Stage::Gate => {
                    let idle_path = co.is_none() && inner.sources.is_empty();
                    if idle_path && !matches!(*this.wait, Wait::Queued { .. }) {
                        // Nobody at the rate gate: admitted now if the rates
                        // conform, as a hand-written semaphore + rate
                        // limiter pair would, with no queue traffic.
                        let now = inner.now_ns();
                        if inner.try_admit_idle(w, now) {
                            return Poll::Ready(Ok(admit(inner, this.flags, this.stage, w, now)));
                        }
                        just_read = Some(now);
                    }
                    if let Err(e) = ready!(this.wait.as_mut().queue(&inner.gate, 1, cx)) {
                        fail!(e);
                    }
                    this.flags.set(Flags::GATE, true);
                    let now = match just_read {
                        Some(now) => now,
                        None => {
                            let now = inner.now_ns();
                            just_read = Some(now);
                            now
                        }
                    };
                    *this.head_since = now;
                    // Sources already asked (before a key's pause sent it
                    // back to the key's queue) are not asked again.
                    *this.stage = if (*this.sources_asked as usize) < inner.sources.len() {
                        Stage::Source
                    } else {
                        Stage::Rate
                    };
                }
                Stage::Source if !inner.gate.is_closed() => {
                    if matches!(*this.wait, Wait::Sleeping { .. }) {
                        ready!(this.wait.as_mut().poll_sleep(cx));
                    }
                    if !matches!(*this.wait, Wait::Asking { .. }) {
                        // The quotas first: no shared cell is spent while
                        // a local rate would still make the head wait.
                        let now = just_read.take().unwrap_or_else(|| inner.now_ns());
                        if let Err(at) = inner.try_conform(w, *this.head_since, now, cx.waker()) {
                            let sleep = inner.clock.sleep_until(inner.instant_at(at));
                            this.wait.set(Wait::Sleeping { sleep, at });
                            continue;
                        }
                        let admit = inner.sources[*this.sources_asked as usize].admit(w);
                        this.wait.set(Wait::Asking { admit });
                    }
                    let WaitProj::Asking { admit } = this.wait.as_mut().project() else {
                        unreachable!("asking a source")
                    };
                    let decision = ready!(Pin::new(admit).poll(cx));
                    this.wait.set(Wait::Idle);
                    match decision {
                        RateDecision::Admitted => {
                            *this.sources_asked += 1;
                            if *this.sources_asked as usize == inner.sources.len() {
                                *this.stage = Stage::Rate;
                            }
                        }
                        RateDecision::RetryAt(instant) => {
                            let at = inner.ns_of(instant);
                            let sleep = inner.clock.sleep_until(inner.instant_at(at));
                            this.wait.set(Wait::Sleeping { sleep, at });
                        }
                        RateDecision::Failed(e) => fail!(e),
                    }
                }
                Stage::Rate | Stage::Source => {
                    if inner.gate.is_closed() || co.is_some_and(|co| co.gate.is_closed()) {
                        fail!(AcquireError::Closed);
                    }
                    let now = just_read.take().unwrap_or_else(|| inner.now_ns());
                    let admitted = match co {
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
                                    this.flags.set(Flags::CO_GATE, false);
                                    co.gate.raw.release(1);
                                    Ok(now)
                                }
                                Err(Some(at)) => Err(at),
                                Err(None) => {
                                    // The key was paused meanwhile: let other
                                    // keys pass the global rate, wait for it.
                                    inner.clear_head();
                                    this.flags.set(Flags::GATE, false);
                                    inner.gate.raw.release(1);
                                    this.wait.set(Wait::Idle);
                                    *this.stage = Stage::CoRate;
                                    continue;
                                }
                            }
                        }
                    };
                    match admitted {
                        Ok(now) => {
                            // Let the next request become the head.
                            this.flags.set(Flags::GATE, false);
                            inner.gate.raw.release(1);
                            this.wait.set(Wait::Idle);
                            return Poll::Ready(Ok(admit(inner, this.flags, this.stage, w, now)));
                        }
                        Err(at) => {
                            let sleep = || inner.clock.sleep_until(inner.instant_at(at));
                            ready!(this.wait.as_mut().sleep(at, sleep, cx));
                        }
                    }
                }
                Stage::Done => panic!("LimiterAcquire polled after it completed"),
            }
        }
    }
}

/// Whether a request may take the idle paths (`admit_idle`,
/// `admit_handed_over`): no key's limiter above it, not stopping after the
/// slot stages, no rate sources to ask.
#[inline(always)]
fn idle_shape<C: Clock>(inner: &Inner<C>, co: &Option<Arc<Inner<C>>>, flags: Flags) -> bool {
    co.is_none() && !flags.has(Flags::SLOTS_ONLY) && inner.sources.is_empty()
}

/// The rate gate's idle path for a request holding its slot (if any): at
/// the `Gate` stage, admitted now if nobody is at the gate and the rates
/// conform; otherwise `None`, and `poll_stages` goes on from `Gate`.
#[inline(always)]
fn admit_at_idle_gate<C: Clock>(
    inner: &Inner<C>,
    flags: &mut Flags,
    stage: &mut Stage,
    w: u32,
) -> Option<Admitted> {
    *stage = Stage::Gate;
    let now = inner.now_ns();
    inner
        .try_admit_idle(w, now)
        .then(|| admit(inner, flags, stage, w, now))
}

/// Turns what the request holds (its slot, its place in `running`) into its
/// admission at `now`.
fn admit<C: Clock>(
    inner: &Inner<C>,
    flags: &mut Flags,
    stage: &mut Stage,
    w: u32,
    now: u64,
) -> Admitted {
    *stage = Stage::Done;
    let held = Flags(flags.0 & Flags::HELD);
    flags.0 &= !Flags::HELD;
    debug_assert!(!held.has(Flags::HOLD | Flags::GATE | Flags::CO_GATE));
    let (slot, running) = (held.has(Flags::SLOT), held.has(Flags::RUNNING));
    Admitted::new(inner, w, now, slot, running)
}

impl<C: Clock> fmt::Debug for LimiterAcquire<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimiterAcquire")
            .field("weight", &self.stages.weight)
            .field("stage", &self.stages.stage)
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
        stages: Stages<C>,
        permit: RunPermit<C>,
    }

    impl<C: Clock, F> PinnedDrop for LimiterRun<C, F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            this.stages.give_back(&this.permit.inner);
        }
    }
}

/// The limiter a [`LimiterRun`] holds (one handle, shared with its stages)
/// and, from admission until the wrapped future completes, its permit.
struct RunPermit<C: Clock> {
    inner: Arc<Inner<C>>,
    /// [`Admitted::NONE`] until admitted and after release.
    admitted: Admitted,
}

impl<C: Clock> RunPermit<C> {
    fn release(&mut self, outcome: Outcome) {
        if let Some(admitted) = self.admitted.take() {
            admitted.release(&self.inner, outcome);
        }
    }
}

impl<C: Clock> Drop for RunPermit<C> {
    fn drop(&mut self) {
        // Dropped before the work completed: says nothing about the server
        // (for an adaptive limit).
        self.release(Outcome::Ignore);
    }
}

impl<C: Clock, F> LimiterRun<C, F> {
    pub(crate) fn new(inner: Arc<Inner<C>>, weight: u32, future: F) -> Self {
        Self {
            future,
            stages: Stages::new(weight),
            permit: RunPermit {
                inner,
                admitted: Admitted::NONE,
            },
        }
    }
}

impl<C: Clock, F: Future> Future for LimiterRun<C, F> {
    type Output = Result<F::Output, AcquireError>;

    // Inline, so the output reaches the caller in registers: returned in
    // memory, `Ok(output)` wrote 8 of its 16 payload bytes and the caller's
    // move of the whole `Result` read them back with one 16-byte load, a
    // store-forwarding stall on every run.
    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let permit = this.permit;
        if permit.admitted.is_none() {
            permit.admitted = ready!(this.stages.poll(&permit.inner, cx))?;
        }
        let out = ready!(this.future.poll(cx));
        // Release as soon as the work is done, not when `LimiterRun` is
        // dropped.
        permit.release(Outcome::Success);
        Poll::Ready(Ok(out))
    }
}

impl<C: Clock, F> fmt::Debug for LimiterRun<C, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimiterRun")
            .field("running", &!self.permit.admitted.is_none())
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
        if let Err(e) = inner.validate(self.stages.weight) {
            return Some(Err(e.into()));
        }
        // The rates alone, were it at the head of every queue now: the
        // queues ahead can only make it later.
        let now = inner.now_ns();
        let earliest = inner.earliest_ns(self.stages.weight, now);
        (inner.instant_at(earliest) > deadline).then(|| {
            Err(would_exceed(NotUntil::new(
                inner.instant_at(earliest),
                Duration::from_nanos(earliest - now),
            )))
        })
    }

    fn sleeping_until(&self) -> Option<C::Instant> {
        // Sleeping for the rate (or for ghosts of the minimum hold) until
        // `at`: admitted then at the earliest; `close` and releases wake it.
        match self.stages.wait {
            Wait::Sleeping { at, .. }
                if matches!(self.stages.stage, Stage::Hold | Stage::Source | Stage::Rate) =>
            {
                Some(self.inner.instant_at(at))
            }
            _ => None,
        }
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
