//! Time sources for the rate limiters: the [`Clock`] trait, the real
//! [`SystemClock`] and the test double [`ManualClock`].
//!
//! A limiter only ever asks its clock two things: what time it is, and for a
//! future that completes at a given instant. Nothing is spawned and no
//! executor is assumed, so the same limiter runs under tokio, smol,
//! async-std, `futures_lite::future::block_on`, or in a test that moves time
//! by hand.

use alloc::sync::Arc;
use core::fmt;
use core::future::Future;
use core::ops::{Add, Sub};
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use crate::sync::{AtomicU64, Mutex, Ordering};
use crate::wait_list::{List, Node, WakeBatch};

/// A point in time as a [`Clock`] sees it.
///
/// Implemented for [`std::time::Instant`] (with feature `std`) and for
/// [`ManualInstant`]. The limiters measure everything as nanoseconds since an
/// instant of their own creation, so these two operations are all they need.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use limiters::{ClockInstant, ManualClock};
///
/// let clock = ManualClock::new();
/// let start = clock.now();
/// clock.advance(Duration::from_millis(5));
/// assert_eq!(clock.now().saturating_duration_since(start), Duration::from_millis(5));
/// assert_eq!(start.saturating_duration_since(clock.now()), Duration::ZERO);
/// assert_eq!(start.saturating_add(Duration::from_millis(5)), clock.now());
/// ```
pub trait ClockInstant: Copy + Ord + fmt::Debug + Send + Sync + 'static {
    /// The time elapsed from `earlier` to `self`, or zero if `earlier` is
    /// later.
    fn saturating_duration_since(&self, earlier: Self) -> Duration;

    /// `self + duration`, or the latest representable instant if that
    /// overflows.
    fn saturating_add(self, duration: Duration) -> Self;
}

#[cfg(feature = "std")]
impl ClockInstant for std::time::Instant {
    fn saturating_duration_since(&self, earlier: Self) -> Duration {
        std::time::Instant::saturating_duration_since(self, earlier)
    }

    fn saturating_add(self, duration: Duration) -> Self {
        if let Some(later) = self.checked_add(duration) {
            return later;
        }
        // Unreachable in practice (the limiters never add more than 2^64 ns,
        // 584 years), but never panic: add the largest part that fits.
        let mut step = duration;
        let mut at = self;
        while step > Duration::ZERO {
            step /= 2;
            if let Some(later) = at.checked_add(step) {
                at = later;
            }
        }
        at
    }
}

/// A source of time: the current instant and a future that completes at a
/// deadline.
///
/// Cloning a clock must be cheap and every clone must tell the same time.
///
/// # Examples
///
/// A limiter is generic over its clock; tests use [`ManualClock`] so that
/// nothing depends on the wall clock:
///
/// ```
/// use core::time::Duration;
/// use limiters::{Clock, ManualClock, Quota, RateLimiter};
///
/// fn admitted<C: Clock>(limiter: &RateLimiter<C>) -> usize {
///     (0..100).filter(|_| limiter.check().is_ok()).count()
/// }
///
/// let clock = ManualClock::new();
/// let limiter = RateLimiter::with_clock(Quota::per_second(10).allow_burst(3), clock.clone());
/// assert_eq!(admitted(&limiter), 3);
/// clock.advance(Duration::from_millis(200));
/// assert_eq!(admitted(&limiter), 2);
/// ```
pub trait Clock: Clone + Send + Sync + 'static {
    /// The clock's notion of an instant.
    type Instant: ClockInstant;
    /// The future returned by [`Clock::sleep_until`].
    type Sleep: Future<Output = ()> + Send;

    /// The current instant.
    fn now(&self) -> Self::Instant;

    /// A future that completes once [`Clock::now`] has reached `deadline`
    /// (at once if it already has).
    ///
    /// # Cancel safety
    ///
    /// The limiters drop a sleep whenever the future waiting on it is
    /// dropped or re-timed, so dropping it must release whatever it
    /// registered (a timer, a waker) and nothing more. `SystemClock`'s
    /// sleep and [`ManualSleep`] do.
    fn sleep_until(&self, deadline: Self::Instant) -> Self::Sleep;

    /// The instant a limiter counts its nanoseconds from, with
    /// [`nanos_since`](Clock::nanos_since). The default is
    /// [`now`](Clock::now); a clock for which `nanos_since` is cheaper from
    /// one particular instant returns that one ([`SystemClock`]: the
    /// instant its counter is anchored at).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{Clock, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let origin = clock.origin();
    /// clock.advance(Duration::from_micros(3));
    /// assert_eq!(clock.nanos_since(origin), 3_000);
    /// ```
    fn origin(&self) -> Self::Instant {
        self.now()
    }

    /// Whole nanoseconds from `earlier` to now: 0 if `earlier` is later,
    /// `u64::MAX` from 584 years on. The limiters ask it on every check,
    /// with their [`origin`](Clock::origin). The default goes through
    /// `now().saturating_duration_since(earlier)`; a clock that counts
    /// nanoseconds itself overrides it to skip the `Duration`.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{Clock, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let start = clock.now();
    /// clock.advance(Duration::from_millis(2));
    /// assert_eq!(clock.nanos_since(start), 2_000_000);
    /// assert_eq!(clock.nanos_since(clock.now() + Duration::from_secs(1)), 0);
    /// ```
    #[inline]
    fn nanos_since(&self, earlier: Self::Instant) -> u64 {
        nanos(self.now().saturating_duration_since(earlier))
    }
}

#[cfg(feature = "async-io")]
pub use system::{SystemClock, SystemSleep};

/// Declares public types with the default of their clock parameter (`C:
/// Clock = SystemClock`, where that clock exists: feature `async-io`) or of
/// their instant parameter (`I = std::time::Instant`, feature `std`). The
/// items inside are plain Rust, default included; without the feature the
/// macro only drops the `= ...` part.
macro_rules! with_default {
    () => {};
    (
        $(#[$attr:meta])*
        $vis:vis struct $name:ident<C: Clock = SystemClock> $body:tt
        $($rest:tt)*
    ) => {
        #[cfg(feature = "async-io")]
        $(#[$attr])*
        $vis struct $name<C: Clock = SystemClock> $body
        #[cfg(not(feature = "async-io"))]
        $(#[$attr])*
        $vis struct $name<C: Clock> $body
        crate::clock::with_default! { $($rest)* }
    };
    (
        $(#[$attr:meta])*
        $vis:vis struct $name:ident<K, C: Clock = SystemClock> $body:tt
    ) => {
        #[cfg(feature = "async-io")]
        $(#[$attr])*
        $vis struct $name<K, C: Clock = SystemClock> $body
        #[cfg(not(feature = "async-io"))]
        $(#[$attr])*
        $vis struct $name<K, C: Clock> $body
    };
    ($(#[$attr:meta])* $vis:vis $kind:ident $name:ident<I = std::time::Instant> $body:tt) => {
        #[cfg(feature = "std")]
        $(#[$attr])*
        $vis $kind $name<I = std::time::Instant> $body
        #[cfg(not(feature = "std"))]
        $(#[$attr])*
        $vis $kind $name<I> $body
    };
}
pub(crate) use with_default;

#[cfg(feature = "async-io")]
mod system {
    use super::*;
    use std::time::Instant;

    /// The real clock: [`std::time::Instant`]s read from a TSC-class counter
    /// where the CPU has a reliable one, and `async-io`'s timer for
    /// sleeping. The default clock of every limiter.
    ///
    /// # Precision
    ///
    /// On x86-64 with an invariant TSC (and on AArch64's system counter)
    /// `now` reads the counter through [`quanta`](https://docs.rs/quanta),
    /// scaled to nanoseconds and anchored to one [`Instant::now`], instead
    /// of a system call or vDSO read: a few nanoseconds instead of a few
    /// tens (`BENCHMARKS.md` has the figures). Elsewhere, and under Miri,
    /// it is [`Instant::now`]. The first read calibrates the counter
    /// against the OS clock once per process (`quanta` stops within 200 ms,
    /// typically 10-20 ms).
    ///
    /// The counter never runs backwards from the anchor; read from two
    /// cores it may differ by a few nanoseconds, which makes a limiter
    /// stricter, never looser (a GCRA admits less when `now` is earlier). A
    /// limiter's window bound holds in the clock's own time: the
    /// calibration's error (parts per million) is the only gap to the OS
    /// clock, as with any counter-based clock. Sleeps wait on `async-io`'s
    /// timer for the time left on this clock, and re-arm if the timer fires
    /// before this clock reaches the deadline, so a sleep never ends early.
    ///
    /// `async-io` drives its timers from its own reactor thread when no
    /// runtime of its own is polling, so sleeps complete under tokio, smol,
    /// async-std or a plain `block_on` alike.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use limiters::{Clock, SystemClock};
    ///
    /// # futures_lite::future::block_on(async {
    /// let clock = SystemClock;
    /// let deadline = clock.now() + Duration::from_millis(1);
    /// clock.sleep_until(deadline).await;
    /// assert!(clock.now() >= deadline);
    /// # });
    /// ```
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    pub struct SystemClock;

    /// The counter behind [`SystemClock::now`], anchored to one reading of
    /// [`Instant::now`].
    struct Counter {
        clock: quanta::Clock,
        raw: u64,
        anchor: Instant,
    }

    impl Counter {
        /// Nanoseconds since `anchor`.
        #[inline]
        fn nanos(&self) -> u64 {
            // Never before the anchor: `delta_as_nanos` is 0 for a reading
            // behind it.
            self.clock.delta_as_nanos(self.raw, self.clock.raw())
        }

        /// The process-wide counter, calibrated at the first call; `None`
        /// where the CPU has no reliable one.
        #[inline]
        fn get() -> Option<&'static Counter> {
            static COUNTER: std::sync::OnceLock<Option<Counter>> = std::sync::OnceLock::new();
            COUNTER
                .get_or_init(|| {
                    reliable().then(|| {
                        let clock = quanta::Clock::new();
                        Counter {
                            raw: clock.raw(),
                            anchor: Instant::now(),
                            clock,
                        }
                    })
                })
                .as_ref()
        }

        #[inline]
        fn now(&self) -> Instant {
            self.anchor + Duration::from_nanos(self.nanos())
        }
    }

    /// Whether `quanta` reads a hardware counter here (its own test, which
    /// it does not export): an invariant TSC with `rdtscp` on x86-64, the
    /// system counter on AArch64. Elsewhere it would wrap the OS clock,
    /// which [`Instant::now`] reads more cheaply.
    fn reliable() -> bool {
        #[cfg(all(target_arch = "x86_64", target_feature = "sse2", not(miri)))]
        {
            // SAFETY: `cpuid` is available on every x86-64 CPU; reading the
            // highest extended leaf first keeps the leaves we read in range.
            // (`__cpuid` is a safe function from Rust 1.87 on; `unsafe` is
            // for the 1.85 floor.)
            #[allow(unused_unsafe)]
            let (power, features) = unsafe {
                use core::arch::x86_64::__cpuid;
                if __cpuid(0x8000_0000).eax < 0x8000_0007 {
                    return false;
                }
                (__cpuid(0x8000_0007).edx, __cpuid(0x8000_0001).edx)
            };
            let invariant_tsc = power & (1 << 8) != 0;
            let rdtscp = features & (1 << 27) != 0;
            invariant_tsc && rdtscp
        }
        #[cfg(all(target_arch = "aarch64", not(target_os = "ios"), not(miri)))]
        {
            true
        }
        #[cfg(not(any(
            all(target_arch = "x86_64", target_feature = "sse2", not(miri)),
            all(target_arch = "aarch64", not(target_os = "ios"), not(miri))
        )))]
        {
            false
        }
    }

    impl Clock for SystemClock {
        type Instant = Instant;
        type Sleep = SystemSleep;

        #[inline]
        fn now(&self) -> Instant {
            match Counter::get() {
                Some(counter) => counter.now(),
                None => Instant::now(),
            }
        }

        /// The counter's anchor where there is one: limiters counting from
        /// it read the counter's nanoseconds directly.
        fn origin(&self) -> Instant {
            match Counter::get() {
                Some(counter) => counter.anchor,
                None => Instant::now(),
            }
        }

        // Always inlined (every check reads the clock here, and whether a
        // caller inlined it moved with unrelated changes: 20 instructions);
        // the fallback stays out of line.
        #[inline(always)]
        fn nanos_since(&self, earlier: Instant) -> u64 {
            match Counter::get() {
                Some(counter) if earlier == counter.anchor => counter.nanos(),
                _ => nanos_since_instant(earlier),
            }
        }

        fn sleep_until(&self, deadline: Instant) -> SystemSleep {
            SystemSleep {
                timer: async_io::Timer::after(deadline.saturating_duration_since(self.now())),
                deadline,
            }
        }
    }

    /// [`SystemClock::nanos_since`](Clock::nanos_since) from an instant
    /// other than the counter's anchor, or without a counter.
    #[cold]
    #[inline(never)]
    fn nanos_since_instant(earlier: Instant) -> u64 {
        nanos(SystemClock.now().saturating_duration_since(earlier))
    }

    /// Future returned by [`SystemClock::sleep_until`].
    ///
    /// # Cancel safety
    ///
    /// Dropping it cancels its `async-io` timer; nothing else is held.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::{Clock, SystemClock};
    ///
    /// # futures_lite::future::block_on(async {
    /// let sleep: limiters::SystemSleep = SystemClock.sleep_until(SystemClock.now());
    /// sleep.await; // the deadline has passed: completes at once
    /// # });
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    #[derive(Debug)]
    pub struct SystemSleep {
        /// Set for the time left on [`SystemClock`] when armed.
        timer: async_io::Timer,
        deadline: Instant,
    }

    impl Future for SystemSleep {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            loop {
                if Pin::new(&mut self.timer).poll(cx).is_pending() {
                    return Poll::Pending;
                }
                // The timer counts on the OS clock: if it fired before the
                // counter reached the deadline, wait for the rest.
                let left = self.deadline.saturating_duration_since(SystemClock.now());
                if left.is_zero() {
                    return Poll::Ready(());
                }
                self.timer.set_after(left);
            }
        }
    }
}

/// An instant of a [`ManualClock`]: the time since the clock was created.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use limiters::ManualClock;
///
/// let clock = ManualClock::new();
/// let start = clock.now();
/// clock.advance(Duration::from_secs(2));
/// assert_eq!(clock.now() - start, Duration::from_secs(2));
/// assert_eq!(start + Duration::from_secs(2), clock.now());
/// assert_eq!(clock.now().as_nanos(), 2_000_000_000);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ManualInstant(u64);

impl ManualInstant {
    /// Nanoseconds since the clock was created.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for ManualInstant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ManualInstant({:?})", Duration::from_nanos(self.0))
    }
}

/// Whole nanoseconds in `duration`, saturating at `u64::MAX` (584 years).
/// In `u64` arithmetic: every check converts a clock reading with it.
pub(crate) fn nanos(duration: Duration) -> u64 {
    duration
        .as_secs()
        .checked_mul(1_000_000_000)
        .and_then(|ns| ns.checked_add(u64::from(duration.subsec_nanos())))
        .unwrap_or(u64::MAX)
}

impl ClockInstant for ManualInstant {
    fn saturating_duration_since(&self, earlier: Self) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    fn saturating_add(self, duration: Duration) -> Self {
        ManualInstant(self.0.saturating_add(nanos(duration)))
    }
}

impl Add<Duration> for ManualInstant {
    type Output = ManualInstant;

    /// Saturates at the latest representable instant (2^64 - 1 ns).
    fn add(self, duration: Duration) -> ManualInstant {
        self.saturating_add(duration)
    }
}

impl Sub for ManualInstant {
    type Output = Duration;

    /// Saturates at zero, like [`std::time::Instant`].
    fn sub(self, earlier: ManualInstant) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

/// A clock that only moves when told to: for deterministic, instant tests.
///
/// Clones share one time. [`advance`](ManualClock::advance) wakes exactly
/// the sleepers whose deadline it reached, so a test can poll futures by hand
/// and assert who became ready. Sleeping allocates nothing: each sleep future
/// carries its own list node.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use limiters::{Clock, ManualClock};
///
/// # futures_lite::future::block_on(async {
/// let clock = ManualClock::new();
/// let deadline = clock.now() + Duration::from_secs(60);
/// let sleeper = clock.clone();
/// let sleep = sleeper.sleep_until(deadline);
/// futures_lite::pin!(sleep);
/// assert!(futures_lite::future::poll_once(sleep.as_mut()).await.is_none());
/// clock.advance(Duration::from_secs(60)); // no real minute passes
/// sleep.await;
/// # });
/// ```
#[derive(Clone, Default)]
pub struct ManualClock {
    shared: Arc<ManualShared>,
}

struct ManualShared {
    /// Nanoseconds since creation. Written only under `sleepers`' lock.
    now: AtomicU64,
    /// Sleep futures waiting for a deadline, each node holding it.
    sleepers: Mutex<List<u64>>,
}

impl Default for ManualShared {
    fn default() -> Self {
        Self {
            now: AtomicU64::new(0),
            sleepers: Mutex::new(List::new()),
        }
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("now", &self.now())
            .field("sleepers", &self.shared.sleepers.lock().len())
            .finish()
    }
}

impl ManualClock {
    /// A clock at [`ManualInstant`] zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use limiters::ManualClock;
    ///
    /// assert_eq!(ManualClock::new().now().as_nanos(), 0);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// The current instant.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::ManualClock;
    ///
    /// let clock = ManualClock::new();
    /// let other = clock.clone();
    /// other.advance(Duration::from_nanos(7));
    /// assert_eq!(clock.now().as_nanos(), 7); // clones share one time
    /// ```
    #[inline]
    pub fn now(&self) -> ManualInstant {
        // Acquire: pairs with the Release store in `advance`, so a sleeper
        // that sees the new time also sees everything done before advancing.
        ManualInstant(self.shared.now.load(Ordering::Acquire))
    }

    /// Moves time forward by `by` (saturating at 2^64 - 1 ns) and wakes every
    /// sleeper whose deadline has now passed, and no other.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::ManualClock;
    ///
    /// let clock = ManualClock::new();
    /// clock.advance(Duration::from_millis(1500));
    /// assert_eq!(clock.now().as_nanos(), 1_500_000_000);
    /// clock.advance(Duration::MAX);
    /// assert_eq!(clock.now().as_nanos(), u64::MAX);
    /// ```
    pub fn advance(&self, by: Duration) {
        let mut batch = WakeBatch::new();
        let mut moved = false;
        loop {
            let mut more = false;
            {
                let mut sleepers = self.shared.sleepers.lock();
                if !moved {
                    let now = self.shared.now.load(Ordering::Relaxed);
                    // Release: pairs with the Acquire load in `now`. Written
                    // under the lock, so a sleeper checking under the lock
                    // either sees the new time or is found by this scan.
                    self.shared
                        .now
                        .store(now.saturating_add(nanos(by)), Ordering::Release);
                    moved = true;
                }
                let now = self.shared.now.load(Ordering::Relaxed);
                sleepers.retain(|entry| {
                    if entry.value > now {
                        return true;
                    }
                    if batch.is_full() {
                        more = true;
                        return true;
                    }
                    if let Some(waker) = entry.waker.take() {
                        batch.push(waker);
                    }
                    false
                });
            }
            batch.wake_all();
            if !more {
                return;
            }
        }
    }
}

impl Clock for ManualClock {
    type Instant = ManualInstant;
    type Sleep = ManualSleep;

    fn now(&self) -> ManualInstant {
        ManualClock::now(self)
    }

    #[inline]
    fn nanos_since(&self, earlier: ManualInstant) -> u64 {
        ManualClock::now(self).0.saturating_sub(earlier.0)
    }

    fn sleep_until(&self, deadline: ManualInstant) -> ManualSleep {
        ManualSleep {
            shared: self.shared.clone(),
            node: Node::new(deadline.0),
        }
    }
}

pin_project_lite::pin_project! {
    /// Future returned by [`ManualClock`]'s [`Clock::sleep_until`]: completes
    /// when the clock is advanced to its deadline. Allocates nothing.
    ///
    /// # Cancel safety
    ///
    /// Dropping it unregisters it from the clock.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use limiters::{Clock, ManualClock, ManualSleep};
    ///
    /// # futures_lite::future::block_on(async {
    /// let clock = ManualClock::new();
    /// let sleep: ManualSleep = clock.sleep_until(clock.now());
    /// sleep.await; // deadline already reached
    /// # });
    /// ```
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct ManualSleep {
        shared: Arc<ManualShared>,
        #[pin]
        node: Node<u64>,
    }

    impl PinnedDrop for ManualSleep {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let mut sleepers = this.shared.sleepers.lock();
            // SAFETY: the node is alive (we are dropping it only after this)
            // and only ever linked into this clock's list.
            unsafe { sleepers.unlink(&this.node) };
        }
    }
}

impl fmt::Debug for ManualSleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ManualSleep { .. }")
    }
}

impl Future for ManualSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let node: &Node<u64> = &this.node;
        // Cloned before the lock, and the waker it replaces dropped after it:
        // either may run arbitrary code (dropping the last handle to a task
        // drops the task, whose futures may use this clock). Declared before
        // the guard, so dropped after it on every path.
        let waker = cx.waker().clone();
        let mut sleepers = this.shared.sleepers.lock();
        // SAFETY: all access to the node goes through this clock's list lock.
        let entry = unsafe { sleepers.entry(node) };
        // Read under the lock: `advance` stores the time under it too.
        if this.shared.now.load(Ordering::Acquire) >= entry.value {
            // SAFETY: the node is alive and only linked into this list.
            unsafe { sleepers.unlink(node) };
            return Poll::Ready(());
        }
        let stale = entry.waker.replace(waker);
        // SAFETY: the node is pinned inside this future, which unlinks it in
        // `drop` before it can move or be freed.
        unsafe { sleepers.link(node) };
        drop(sleepers);
        drop(stale);
        Poll::Pending
    }
}

pin_project_lite::pin_project! {
    /// A clock's sleep until an instant, armed when a future first needs it
    /// and re-armed only when the instant moves: how every waiting future
    /// sleeps. `A` is how its owner names instants (its own nanoseconds,
    /// or the clock's instant).
    pub(crate) struct Alarm<S, A = u64> {
        #[pin]
        sleep: Option<S>,
        // The instant `sleep` was armed for; `Some` exactly while armed.
        at: Option<A>,
    }
}

impl<S: Future<Output = ()>, A: Copy + PartialEq> Alarm<S, A> {
    pub(crate) const fn new() -> Self {
        Alarm {
            sleep: None,
            at: None,
        }
    }

    /// The instant it is armed for, if armed.
    pub(crate) fn armed_at(&self) -> Option<A> {
        self.at
    }

    /// Polls the sleep until `at`, arming it first (with `arm(at)`) unless
    /// it is already armed for `at`. Ready once the clock has reached `at`,
    /// and then disarmed.
    pub(crate) fn poll_until(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        at: A,
        arm: impl FnOnce(A) -> S,
    ) -> Poll<()> {
        let mut this = self.project();
        if *this.at != Some(at) {
            this.sleep.set(Some(arm(at)));
            *this.at = Some(at);
        }
        let sleep = this.sleep.as_mut().as_pin_mut().expect("armed above");
        if sleep.poll(cx).is_pending() {
            return Poll::Pending;
        }
        this.sleep.set(None);
        *this.at = None;
        Poll::Ready(())
    }

    /// Drops the sleep, if any.
    pub(crate) fn disarm(self: Pin<&mut Self>) {
        let mut this = self.project();
        this.sleep.set(None);
        *this.at = None;
    }
}

impl<S, A: fmt::Debug> fmt::Debug for Alarm<S, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Alarm").field("at", &self.at).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::nanos;
    use core::time::Duration;

    #[test]
    fn nanos_is_exact_then_saturates() {
        assert_eq!(nanos(Duration::ZERO), 0);
        assert_eq!(nanos(Duration::new(3, 7)), 3_000_000_007);
        assert_eq!(nanos(Duration::from_nanos(u64::MAX)), u64::MAX);
        assert_eq!(
            nanos(Duration::from_nanos(u64::MAX) + Duration::from_nanos(1)),
            u64::MAX
        );
        assert_eq!(
            nanos(Duration::new(u64::MAX / 1_000_000_000 + 1, 0)),
            u64::MAX
        );
        assert_eq!(nanos(Duration::MAX), u64::MAX);
    }
}
