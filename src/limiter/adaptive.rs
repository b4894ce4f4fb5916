//! Adaptive concurrency: a limit that finds itself from what each request
//! reports ([`Outcome`]) and how long it took.
//!
//! # Implementation details
//!
//! The concurrency stage's semaphore holds `limit` permits in all (free or
//! held). Each released permit reports a [`Sample`] to the [`Algorithm`],
//! which answers with the new limit (clamped to its bounds). Growing by `k`
//! adds `k` permits to the semaphore, which hands them to the head of its
//! queue (FIFO kept). Shrinking by `k` forgets up to `k` free permits and
//! records the rest as *debt*: permits released while there is debt are
//! forgotten instead of going back, so no held permit is revoked and the
//! limit is reached as work completes. So at all times
//! `available + held - debt == limit`.
//!
//! The semaphore is never touched under the controller's lock (adding
//! permits wakes waiters, and a waker may run code that releases another
//! permit).

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::fmt;
use core::time::Duration;

use crate::semaphore::Semaphore;
use crate::sync::Mutex;

/// What became of a request admitted by an adaptive [`Limiter`](crate::Limiter).
///
/// # Examples
///
/// ```
/// use limiters::Outcome;
///
/// let status = 429;
/// let outcome = match status {
///     429 | 503 => Outcome::Overload,
///     _ => Outcome::Success,
/// };
/// assert_eq!(outcome, Outcome::Overload);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The server handled it: its latency is a sample.
    Success,
    /// The server was overloaded (a 429 or 503, a timeout): shrink.
    Overload,
    /// Says nothing about the server (cancelled, a client-side error).
    Ignore,
}

/// One completed request, as an [`Algorithm`] sees it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use limiters::{Outcome, Sample};
///
/// let sample = Sample::new(Duration::from_millis(5), Duration::from_millis(15), 8, 10, Outcome::Success);
/// assert_eq!(sample.rtt(), Duration::from_millis(10));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// When it was admitted, since the limiter was built (on its clock).
    pub start: Duration,
    /// When it was released, on the same scale.
    pub end: Duration,
    /// Requests in flight when it was released (itself included).
    pub in_flight: usize,
    /// The limit when it was released.
    pub limit: usize,
    /// What it reported.
    pub outcome: Outcome,
}

impl Sample {
    /// A sample (for testing an [`Algorithm`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use limiters::{Outcome, Sample};
    ///
    /// let s = Sample::new(Duration::ZERO, Duration::from_millis(3), 1, 4, Outcome::Overload);
    /// assert_eq!(s.outcome, Outcome::Overload);
    /// ```
    pub fn new(
        start: Duration,
        end: Duration,
        in_flight: usize,
        limit: usize,
        outcome: Outcome,
    ) -> Self {
        Self {
            start,
            end,
            in_flight,
            limit,
            outcome,
        }
    }

    /// How long the request took (`end - start`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use limiters::{Outcome, Sample};
    ///
    /// let s = Sample::new(Duration::from_secs(1), Duration::from_secs(3), 1, 1, Outcome::Success);
    /// assert_eq!(s.rtt(), Duration::from_secs(2));
    /// ```
    pub fn rtt(&self) -> Duration {
        self.end.saturating_sub(self.start)
    }
}

/// How an adaptive limit moves: [`Aimd`], [`Gradient`], or your own.
///
/// The limiter calls [`update`](Self::update) under a lock once per
/// released request (except [`Outcome::Ignore`]); keep it short.
///
/// # Examples
///
/// A limit that halves on overload and never grows (for illustration):
///
/// ```
/// use limiters::{Algorithm, Limiter, Outcome, Sample};
///
/// #[derive(Clone, Debug)]
/// struct Halve;
///
/// impl Algorithm for Halve {
///     fn initial_limit(&self) -> usize { 64 }
///     fn max_limit(&self) -> usize { 64 }
///     fn update(&mut self, s: &Sample) -> usize {
///         if s.outcome == Outcome::Overload { (s.limit / 2).max(1) } else { s.limit }
///     }
/// }
///
/// let limiter = Limiter::builder().adaptive(Halve).build().unwrap();
/// assert_eq!(limiter.limit(), Some(64));
/// ```
pub trait Algorithm: Send + 'static {
    /// The limit to start with.
    fn initial_limit(&self) -> usize;
    /// The largest limit it will ever return (a request of a larger
    /// weight is refused).
    fn max_limit(&self) -> usize;
    /// The new limit after `sample` (clamped by the limiter to
    /// `1..=max_limit()`).
    fn update(&mut self, sample: &Sample) -> usize;
}

/// Additive increase, multiplicative decrease (TCP Reno's rule, Netflix
/// concurrency-limits' `AIMDLimit`): +1 per round trip of successes while
/// the limit is used, times `backoff` (default 0.5) on overload, at most
/// once per round trip (the overloads of requests started before the last
/// decrease are not counted again). Sees overload only, never latency.
///
/// # Examples
///
/// ```
/// use limiters::{Aimd, Limiter};
///
/// let limiter = Limiter::builder()
///     .adaptive(Aimd::new().initial(10).min(2).max(200).backoff(0.7))
///     .build()
///     .unwrap();
/// assert_eq!(limiter.limit(), Some(10));
/// ```
#[derive(Clone, Debug)]
pub struct Aimd {
    bounds: Bounds,
    backoff: f64,
    /// Successes since the last increase.
    successes: usize,
    /// Requests started before this did not see the last decrease.
    decreased_at: Duration,
}

/// `min`, `max` and initial limits, shared by the algorithms.
#[derive(Clone, Copy, Debug)]
struct Bounds {
    min: usize,
    max: usize,
    initial: usize,
}

impl Bounds {
    const DEFAULT: Self = Self {
        min: 1,
        max: 1_000,
        initial: 20,
    };

    fn clamp(&self, limit: usize) -> usize {
        limit.clamp(self.min.max(1), self.max.max(1))
    }
}

macro_rules! bounds_setters {
    () => {
        /// The limit to start with (default 20).
        ///
        /// # Examples
        ///
        /// See the type's docs.
        pub fn initial(mut self, n: usize) -> Self {
            self.bounds.initial = n;
            self
        }

        /// The limit never goes below `n` (default 1; 0 counts as 1).
        ///
        /// # Examples
        ///
        /// See the type's docs.
        pub fn min(mut self, n: usize) -> Self {
            self.bounds.min = n;
            self
        }

        /// The limit never goes above `n` (default 1,000).
        ///
        /// # Examples
        ///
        /// See the type's docs.
        pub fn max(mut self, n: usize) -> Self {
            self.bounds.max = n;
            self
        }
    };
}

impl Aimd {
    /// Starts at 20, between 1 and 1,000, backoff 0.5.
    ///
    /// # Examples
    ///
    /// See the type's docs.
    pub fn new() -> Self {
        Self {
            bounds: Bounds::DEFAULT,
            backoff: 0.5,
            successes: 0,
            decreased_at: Duration::ZERO,
        }
    }

    bounds_setters!();

    /// The factor applied on overload (clamped to `0.1..=0.99`).
    ///
    /// # Examples
    ///
    /// See the type's docs.
    pub fn backoff(mut self, factor: f64) -> Self {
        self.backoff = factor.clamp(0.1, 0.99);
        self
    }
}

impl Default for Aimd {
    fn default() -> Self {
        Self::new()
    }
}

impl Algorithm for Aimd {
    fn initial_limit(&self) -> usize {
        self.bounds.clamp(self.bounds.initial)
    }

    fn max_limit(&self) -> usize {
        self.bounds.clamp(self.bounds.max)
    }

    fn update(&mut self, s: &Sample) -> usize {
        let limit = s.limit;
        match s.outcome {
            Outcome::Overload if s.start >= self.decreased_at => {
                self.decreased_at = s.end;
                self.successes = 0;
                self.bounds.clamp((limit as f64 * self.backoff) as usize)
            }
            // Grow only while the limit is what holds requests back.
            Outcome::Success if s.in_flight * 2 >= limit => {
                self.successes += 1;
                if self.successes >= limit {
                    self.successes = 0;
                    self.bounds.clamp(limit + 1)
                } else {
                    limit
                }
            }
            _ => limit,
        }
    }
}

/// A latency-based limit, after Netflix concurrency-limits' `Gradient2`:
/// once per round trip, `limit = limit * gradient + headroom`, where
/// `gradient = clamp(min_rtt / rtt, 0.5, 1)` compares the round trip of the
/// last window (its average) with the shortest one seen, and `headroom` is
/// 10% of the limit (at least 1). While latency is flat the limit grows by
/// 10% a round trip; once requests queue at the server, latency grows and
/// the limit settles where `rtt ≈ 1.1 * min_rtt`. An overload in the window
/// halves the limit instead. `min_rtt` is the shortest round trip seen over
/// the limiter's life: a server that became slower for good looks like a
/// queue to it, and the limit settles lower than it could (build a new
/// limiter to re-learn it).
///
/// # Examples
///
/// ```
/// use limiters::{Gradient, Limiter, Quota};
///
/// let limiter = Limiter::builder()
///     .adaptive(Gradient::new().initial(20).max(500))
///     .rate(Quota::per_second(1_000).allow_burst(100))
///     .build()
///     .unwrap();
/// assert_eq!(limiter.limit(), Some(20));
/// ```
#[derive(Clone, Debug)]
pub struct Gradient {
    bounds: Bounds,
    min_rtt: Option<Duration>,
    /// The current window: opened at `since`; closed by the first sample
    /// of a request started after that (one round trip later).
    since: Duration,
    sum: Duration,
    count: u32,
    window_min: Option<Duration>,
    overload: bool,
}

impl Gradient {
    /// Starts at 20, between 1 and 1,000.
    ///
    /// # Examples
    ///
    /// See the type's docs.
    pub fn new() -> Self {
        Self {
            bounds: Bounds::DEFAULT,
            min_rtt: None,
            since: Duration::ZERO,
            sum: Duration::ZERO,
            count: 0,
            window_min: None,
            overload: false,
        }
    }

    bounds_setters!();
}

impl Default for Gradient {
    fn default() -> Self {
        Self::new()
    }
}

impl Algorithm for Gradient {
    fn initial_limit(&self) -> usize {
        self.bounds.clamp(self.bounds.initial)
    }

    fn max_limit(&self) -> usize {
        self.bounds.clamp(self.bounds.max)
    }

    fn update(&mut self, s: &Sample) -> usize {
        match s.outcome {
            Outcome::Overload => self.overload = true,
            _ => {
                let rtt = s.rtt();
                self.sum += rtt;
                self.count += 1;
                self.window_min = Some(self.window_min.map_or(rtt, |m| m.min(rtt)));
            }
        }
        if s.start < self.since {
            return s.limit;
        }
        // A round trip since the window opened: decide.
        let limit = s.limit as f64;
        let new = if self.overload {
            limit * 0.5
        } else if let Some(window_min) = self.window_min {
            let min_rtt = self.min_rtt.map_or(window_min, |m| m.min(window_min));
            self.min_rtt = Some(min_rtt);
            let avg = self.sum / self.count;
            let gradient = (min_rtt.as_secs_f64() / avg.as_secs_f64().max(1e-9)).clamp(0.5, 1.0);
            limit * gradient + (limit * 0.1).max(1.0)
        } else {
            limit
        };
        self.since = s.end;
        self.sum = Duration::ZERO;
        self.count = 0;
        self.window_min = None;
        self.overload = false;
        self.bounds.clamp(new as usize)
    }
}

/// Makes a fresh algorithm for each limiter a builder builds.
pub(crate) type Factory = Arc<dyn Fn() -> Box<dyn Algorithm> + Send + Sync>;

/// The controller of one limiter's adaptive limit.
pub(crate) struct Adaptive {
    state: Mutex<State>,
}

struct State {
    algorithm: Box<dyn Algorithm>,
    limit: usize,
    /// Permits to forget as they are released (see the module docs).
    debt: usize,
    in_flight: usize,
}

impl Adaptive {
    pub(crate) fn new(algorithm: Box<dyn Algorithm>) -> Self {
        let limit = algorithm.initial_limit();
        Self {
            state: Mutex::new(State {
                algorithm,
                limit,
                debt: 0,
                in_flight: 0,
            }),
        }
    }

    pub(crate) fn limit(&self) -> usize {
        self.state.lock().limit
    }

    /// A request of weight `w` was admitted. Out of line: a lock that
    /// every admission of a fixed limit would otherwise carry inlined.
    #[inline(never)]
    pub(crate) fn admitted(&self, w: usize) {
        self.state.lock().in_flight += w;
    }

    /// A request of weight `w` admitted at `start` is released at `end`
    /// with `outcome`: the algorithm sets the new limit, and a growth not
    /// covered by debt is added to `sem` (to the queue head). Returns how
    /// many of the request's `w` permits pay debt (to be forgotten instead
    /// of given back); the caller gives back the rest, then calls
    /// [`settle`](Self::settle).
    pub(crate) fn released(
        &self,
        sem: &Semaphore,
        w: usize,
        start: Duration,
        end: Duration,
        outcome: Outcome,
    ) -> usize {
        let (forget, grow) = {
            let mut s = self.state.lock();
            let sample = Sample::new(start, end, s.in_flight, s.limit, outcome);
            s.in_flight -= w;
            let max = s.algorithm.max_limit().max(1);
            let new = match outcome {
                Outcome::Ignore => s.limit,
                _ => s.algorithm.update(&sample).clamp(1, max),
            };
            let mut grow = 0;
            if new >= s.limit {
                let up = new - s.limit;
                let paid = up.min(s.debt);
                s.debt -= paid;
                grow = up - paid;
            } else {
                s.debt += s.limit - new;
            }
            s.limit = new;
            // This release pays the debt first.
            let forget = w.min(s.debt);
            s.debt -= forget;
            (forget, grow)
        };
        if grow > 0 {
            sem.add_permits(grow);
        }
        forget
    }

    /// Pays what debt is left with free permits, if there are any (after
    /// every release, once its permits are back: a free permit that
    /// appears after a debt was recorded is taken here, by the thread that
    /// freed it, so the free permits never exceed the limit for long).
    pub(crate) fn settle(&self, sem: &Semaphore) {
        let debt = self.state.lock().debt;
        if debt == 0 {
            return;
        }
        let taken = sem.forget_permits(debt);
        if taken == 0 {
            return;
        }
        let excess = {
            let mut s = self.state.lock();
            let paid = taken.min(s.debt);
            s.debt -= paid;
            // Releases paid part of it meanwhile: give the surplus back.
            taken - paid
        };
        if excess > 0 {
            sem.add_permits(excess);
        }
    }
}

impl fmt::Debug for Adaptive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.lock();
        f.debug_struct("Adaptive")
            .field("limit", &s.limit)
            .field("debt", &s.debt)
            .field("in_flight", &s.in_flight)
            .finish_non_exhaustive()
    }
}
