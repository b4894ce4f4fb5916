//! `TokenBucket` on a `ManualClock` against a plain token-count model.
//!
//! The bytes decode into a configuration (`max`, `initial`, `refill`,
//! `interval`, with extreme values, valid or not) and a sequence of clock
//! advances, `check`, `check_n`, `reserve_many` (kept, dropped or
//! cancelled) and `acquire_many` futures polled by hand and dropped at any
//! point.
//!
//! The model is the textbook bucket, not the crate's supply-axis algorithm:
//! a signed token count (negative while reservations are in debt), refilled
//! by `refill` at every passed boundary and capped at `max`, plus a stack of
//! the takes still on top (a cancel refunds only the latest take, and only
//! before its tokens are due). Checked after every step:
//!
//! * `build` fails exactly on the invalid configurations;
//! * every decision equals the model: admitted, `InsufficientCapacity`, or
//!   `NotUntil` with the exact boundary; a reservation's `ready_at` and
//!   `delay`; a future is ready exactly when its boundary has come, and its
//!   waker is woken exactly once, when the clock passes that boundary;
//! * `available()` equals the model and is never above `max`;
//! * the window bound: the tokens admitted in any closed window (counted at
//!   the instant they are due) never exceed `max + refill * b`, where `b` is
//!   the number of refill boundaries in the window;
//! * at the end, with every future and reservation dropped, the bucket
//!   refills to `max` and a full `check_n(max)` succeeds.
//!
//! [`run_across_the_move`] runs the same steps from just before the boundary
//! at which the bucket's supply reaches 2^62 tokens, where it moves from its
//! 8-byte word to the 16-byte one (for buckets that get there before
//! `HORIZON / 2`), so every input crosses the move.

use crate::wake_counter::WakeCounter;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use limiters::futures::BucketAcquireMany;
use limiters::{
    BucketReservation, ManualClock, RateLimitError, TokenBucket, TokenBucketBuilder,
    TokenBucketError,
};

/// Live futures and reservations are capped so long inputs keep cycling.
const MAX_LIVE: usize = 32;
/// The clock never goes past this (no saturation games at `u64::MAX`).
const HORIZON: u64 = u64::MAX / 4;

fn count(u: &mut Unstructured<'_>, max: u32) -> arbitrary::Result<u32> {
    Ok(match u8::arbitrary(u)? % 10 {
        0 => 0,
        1..=3 => 1,
        4 => max,
        5 => max.saturating_add(1),
        6 => u32::MAX,
        7 => max / 2,
        _ => u32::from(u8::arbitrary(u)? % 8),
    })
}

fn duration_ns(u: &mut Unstructured<'_>, interval: u64) -> arbitrary::Result<u64> {
    Ok(match u8::arbitrary(u)? % 8 {
        0 => 0,
        1 => 1,
        2 => interval / 2,
        3 => interval,
        4 => interval.saturating_mul(3),
        5 => interval.saturating_sub(1),
        6 => u64::arbitrary(u)? % interval.max(1),
        _ => u64::arbitrary(u)? >> (u8::arbitrary(u)? % 64),
    })
}

struct Config {
    max: u32,
    initial: Option<u32>,
    refill: u32,
    interval: Duration,
}

fn config(u: &mut Unstructured<'_>) -> arbitrary::Result<Config> {
    let max = match u8::arbitrary(u)? % 8 {
        0 => 0,
        1 => 1,
        2 => 3,
        3 => 10,
        4 => u32::MAX,
        _ => u32::arbitrary(u)? >> (u8::arbitrary(u)? % 32),
    };
    let refill = match u8::arbitrary(u)? % 8 {
        0 => 0,
        1 => 1,
        2 => max,
        3 => max.saturating_add(1),
        4 => max / 3,
        _ => u32::arbitrary(u)? % max.saturating_add(1).max(1),
    };
    let initial = match u8::arbitrary(u)? % 6 {
        0 => None,
        1 => Some(0),
        2 => Some(max),
        3 => Some(max.saturating_add(1)),
        _ => Some(u32::arbitrary(u)? % max.saturating_add(1).max(1)),
    };
    let interval = match u8::arbitrary(u)? % 8 {
        0 => Duration::ZERO,
        1 => Duration::from_nanos(1),
        2 => Duration::from_nanos(7),
        3 => Duration::from_secs(1),
        4 => Duration::from_nanos(u64::MAX),
        5 => Duration::MAX,
        _ => Duration::from_nanos(u64::arbitrary(u)? >> (u8::arbitrary(u)? % 64)),
    };
    Ok(Config {
        max,
        initial,
        refill,
        interval,
    })
}

/// The error `build` must return, if any (checked in the builder's order).
fn expected_error(c: &Config) -> Option<TokenBucketError> {
    let initial = c.initial.unwrap_or(c.max);
    if c.max == 0 {
        Some(TokenBucketError::ZeroMax)
    } else if c.refill == 0 {
        Some(TokenBucketError::ZeroRefill)
    } else if c.interval.is_zero() {
        Some(TokenBucketError::ZeroInterval)
    } else if c.interval.as_nanos() > u128::from(u64::MAX) {
        Some(TokenBucketError::IntervalTooLong)
    } else if c.refill > c.max {
        Some(TokenBucketError::RefillExceedsMax {
            refill: c.refill,
            max: c.max,
        })
    } else if initial > c.max {
        Some(TokenBucketError::InitialExceedsMax {
            initial,
            max: c.max,
        })
    } else {
        None
    }
}

/// One take still counted by the model.
struct Take {
    /// `None` for `check_n`, which can never be refunded.
    id: Option<u64>,
    n: u32,
    /// When its tokens are due (ns), and when it was taken.
    ready_ns: u64,
    taken_ns: u64,
}

/// The textbook bucket.
struct Model {
    max: i128,
    refill: i128,
    interval: u64,
    /// Negative while reservations are in debt.
    tokens: i128,
    /// The boundary `tokens` was last refilled at.
    k: u64,
    /// Every take not refunded, in order; only the last can be refunded.
    takes: Vec<Take>,
}

impl Model {
    fn sync(&mut self, now: u64) {
        let k = now / self.interval;
        if k > self.k {
            let refilled = self.tokens + self.refill * i128::from(k - self.k);
            self.tokens = refilled.min(self.max);
            self.k = k;
        }
    }

    /// The first boundary at or after the current one by which the debt `d`
    /// is paid, in ns (saturating).
    fn due_ns(&self, debt: i128) -> u64 {
        let k = if debt <= 0 {
            u128::from(self.k)
        } else {
            u128::from(self.k) + (debt as u128).div_ceil(self.refill as u128)
        };
        u64::try_from(k * u128::from(self.interval)).unwrap_or(u64::MAX)
    }

    /// `Ok`, `Err(Some(due ns))` or `Err(None)` (more than `max`).
    fn check_n(&mut self, now: u64, n: u32) -> Result<(), Option<u64>> {
        if i128::from(n) > self.max {
            return Err(None);
        }
        self.sync(now);
        if self.tokens >= i128::from(n) {
            self.tokens -= i128::from(n);
            if n > 0 {
                self.takes.push(Take {
                    id: None,
                    n,
                    ready_ns: now,
                    taken_ns: now,
                });
            }
            Ok(())
        } else {
            Err(Some(self.due_ns(i128::from(n) - self.tokens)))
        }
    }

    /// Reserves `n` (at most `max`) for `id`; returns when they are due.
    fn reserve(&mut self, now: u64, n: u32, id: u64) -> u64 {
        self.sync(now);
        self.tokens -= i128::from(n);
        let ready_ns = self.due_ns(-self.tokens);
        if n > 0 {
            self.takes.push(Take {
                id: Some(id),
                n,
                ready_ns,
                taken_ns: now,
            });
        }
        ready_ns
    }

    /// A cancel: refunds `id` if it is the last take and not yet due.
    fn refund(&mut self, now: u64, id: u64) {
        self.sync(now);
        if let Some(last) = self.takes.last() {
            if last.id == Some(id) && last.ready_ns > now {
                self.tokens += i128::from(last.n);
                self.takes.pop();
            }
        }
    }

    fn available(&mut self, now: u64) -> u32 {
        self.sync(now);
        u32::try_from(self.tokens.max(0)).unwrap()
    }
}

struct Fut<'b> {
    id: u64,
    n: u32,
    fut: Pin<Box<BucketAcquireMany<'b, ManualClock>>>,
    waker: Waker,
    counter: Arc<WakeCounter>,
    /// Set at the first poll (`None` inside: refused as too large).
    ready_ns: Option<Option<u64>>,
    /// Polled `Pending` and not woken since.
    armed: bool,
    wakes: usize,
}

struct Res<'b> {
    id: u64,
    res: BucketReservation<'b, ManualClock>,
    ready_ns: u64,
}

/// Runs one input. Panics on any disagreement with the model.
pub fn run(data: &[u8]) {
    run_from(data, false);
}

/// Runs one input from just before the bucket moves to its wide word (see
/// the module docs); inputs whose bucket does not get there early enough
/// run nothing.
pub fn run_across_the_move(data: &[u8]) {
    run_from(data, true);
}

/// The supply at which a bucket leaves its 8-byte word.
const NARROW_SUPPLY: u128 = 1 << 62;

/// When the first boundary whose supply reaches [`NARROW_SUPPLY`] comes, in
/// ns, if before `HORIZON / 2`.
fn move_ns(c: &Config) -> Option<u64> {
    let initial = u128::from(c.initial.unwrap_or(c.max));
    let k = (NARROW_SUPPLY - initial).div_ceil(u128::from(c.refill));
    let ns = k * c.interval.as_nanos();
    u64::try_from(ns).ok().filter(|&ns| ns < HORIZON / 2)
}

fn run_from(data: &[u8], across_the_move: bool) {
    let mut u = Unstructured::new(data);
    let Ok(config) = config(&mut u) else {
        return;
    };
    let start = if across_the_move {
        // Invalid configurations are tested by `run`.
        let Some(at) = expected_error(&config)
            .is_none()
            .then(|| move_ns(&config))
            .flatten()
        else {
            return;
        };
        let Ok(before) = duration_ns(&mut u, config.interval.as_nanos() as u64) else {
            return;
        };
        at.saturating_sub(before)
    } else {
        0
    };
    let clock = ManualClock::new();
    let mut builder = TokenBucketBuilder::new()
        .max(config.max)
        .refill(config.refill)
        .interval(config.interval);
    if let Some(initial) = config.initial {
        builder = builder.initial(initial);
    }
    let built = builder.build_with_clock(clock.clone());
    let bucket = match (built, expected_error(&config)) {
        (Ok(bucket), None) => bucket,
        (Err(got), Some(expected)) => {
            assert_eq!(got, expected);
            return;
        }
        (got, expected) => panic!("build: expected {expected:?}, got {got:?}"),
    };
    let interval = config.interval.as_nanos() as u64;
    let max = config.max;
    let refill = config.refill;
    let mut model = Model {
        max: i128::from(max),
        refill: i128::from(refill),
        interval,
        tokens: i128::from(config.initial.unwrap_or(max)),
        k: 0,
        takes: Vec::new(),
    };
    clock.advance(Duration::from_nanos(start));
    let mut h = Harness {
        bucket: &bucket,
        clock: &clock,
        model: &mut model,
        now: start,
        futs: Vec::new(),
        reservations: Vec::new(),
        next_id: 0,
    };
    while !u.is_empty() {
        if h.step(&mut u).is_err() || h.model.takes.len() > 512 {
            break;
        }
        h.check();
    }
    // Drop everything, refunding in the model as the bucket does.
    while let Some(f) = h.futs.pop() {
        let reserved = matches!(f.ready_ns, Some(Some(_)));
        let id = f.id;
        drop(f);
        if reserved {
            h.model.refund(h.now, id);
        }
    }
    h.reservations.clear();
    h.check();
    let now = h.now;
    drop(h);

    check_window(&model.takes, max, refill, interval);
    // No deadlock: once every future is gone, the bucket refills to `max`.
    let debt = (-model.tokens).max(0) + i128::from(max);
    let wait = (debt as u128)
        .div_ceil(u128::from(refill))
        .saturating_add(1)
        .saturating_mul(u128::from(interval));
    if wait < u128::from(HORIZON - now) {
        clock.advance(Duration::from_nanos(wait as u64));
        assert_eq!(bucket.available(), max, "refilled after every drop");
        assert!(bucket.check_n(max).is_ok());
    }
}

struct Harness<'b, 'm> {
    bucket: &'b TokenBucket<ManualClock>,
    clock: &'b ManualClock,
    model: &'m mut Model,
    now: u64,
    futs: Vec<Fut<'b>>,
    reservations: Vec<Res<'b>>,
    next_id: u64,
}

fn pick(u: &mut Unstructured<'_>, len: usize) -> arbitrary::Result<Option<usize>> {
    let i = usize::from(u8::arbitrary(u)?);
    Ok((len > 0).then(|| i % len))
}

impl<'b> Harness<'b, '_> {
    fn step(&mut self, u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
        let max = u32::try_from(self.model.max).unwrap();
        match u8::arbitrary(u)? % 16 {
            0..=2 => {
                let by = duration_ns(u, self.model.interval)?.min(HORIZON - self.now);
                self.advance(by);
            }
            3 => self.check_n(1, true),
            4..=5 => {
                let n = count(u, max)?;
                self.check_n(n, false);
            }
            6..=7 => {
                let n = count(u, max)?;
                self.reserve(n);
            }
            8 => {
                if let Some(i) = pick(u, self.reservations.len())? {
                    let r = self.reservations.swap_remove(i);
                    r.res.cancel();
                    self.model.refund(self.now, r.id);
                }
            }
            9 => {
                // Dropped without cancel: the tokens stay taken.
                if let Some(i) = pick(u, self.reservations.len())? {
                    self.reservations.swap_remove(i);
                }
            }
            10..=11 => {
                let n = count(u, max)?;
                if self.futs.len() < MAX_LIVE {
                    let counter = Arc::new(WakeCounter::default());
                    self.futs.push(Fut {
                        id: self.next_id,
                        n,
                        fut: Box::pin(self.bucket.acquire_many(n)),
                        waker: Waker::from(Arc::clone(&counter)),
                        counter,
                        ready_ns: None,
                        armed: false,
                        wakes: 0,
                    });
                    self.next_id += 1;
                }
            }
            12..=14 => {
                if let Some(i) = pick(u, self.futs.len())? {
                    self.poll(i);
                }
            }
            _ => {
                if let Some(i) = pick(u, self.futs.len())? {
                    let f = self.futs.swap_remove(i);
                    let id = f.id;
                    let reserved = matches!(f.ready_ns, Some(Some(_)));
                    drop(f);
                    if reserved {
                        self.model.refund(self.now, id);
                    }
                }
            }
        }
        Ok(())
    }

    fn advance(&mut self, by: u64) {
        self.clock.advance(Duration::from_nanos(by));
        self.now += by;
        for f in &mut self.futs {
            if let Some(Some(ready)) = f.ready_ns {
                if f.armed && ready <= self.now {
                    f.armed = false;
                    f.wakes += 1;
                }
            }
        }
    }

    fn check_n(&mut self, n: u32, via_check: bool) {
        let expected = self.model.check_n(self.now, n);
        let got = if via_check {
            self.bucket.check().map_err(RateLimitError::NotUntil)
        } else {
            self.bucket.check_n(n)
        };
        match (expected, &got) {
            (Ok(()), Ok(())) => {}
            (Err(None), Err(RateLimitError::InsufficientCapacity { requested, burst })) => {
                assert_eq!(
                    (*requested, *burst),
                    (n, u32::try_from(self.model.max).unwrap())
                );
            }
            (Err(Some(at)), Err(RateLimitError::NotUntil(nu))) => {
                assert_eq!(nu.earliest().as_nanos(), at, "check_n({n}) at {}", self.now);
                assert_eq!(
                    nu.wait_time(),
                    Duration::from_nanos(at - self.now),
                    "wait_time of check_n({n}) at {}",
                    self.now
                );
            }
            (expected, got) => {
                panic!(
                    "check_n({n}) at {} ns: model {expected:?}, bucket {got:?}",
                    self.now
                )
            }
        }
    }

    fn reserve(&mut self, n: u32) {
        let got = self.bucket.reserve_many(n);
        if i128::from(n) > self.model.max {
            let e = got.expect_err("reserve_many above max");
            assert_eq!(
                (e.requested, e.burst),
                (n, u32::try_from(self.model.max).unwrap())
            );
            return;
        }
        let res = got.expect("reserve_many within max");
        let id = self.next_id;
        self.next_id += 1;
        let ready_ns = self.model.reserve(self.now, n, id);
        assert_eq!(
            res.ready_at().as_nanos(),
            ready_ns,
            "ready_at of reserve_many({n})"
        );
        assert_eq!(
            res.delay(),
            Duration::from_nanos(ready_ns.saturating_sub(self.now))
        );
        if self.reservations.len() < MAX_LIVE {
            self.reservations.push(Res { id, res, ready_ns });
        }
        // Otherwise dropped at once: the tokens stay taken.
    }

    fn poll(&mut self, i: usize) {
        let f = &mut self.futs[i];
        if f.ready_ns.is_none() {
            f.ready_ns = Some(
                (i128::from(f.n) <= self.model.max)
                    .then(|| self.model.reserve(self.now, f.n, f.id)),
            );
        }
        let mut cx = Context::from_waker(&f.waker);
        let got = f.fut.as_mut().poll(&mut cx);
        match (f.ready_ns.unwrap(), got) {
            (None, Poll::Ready(Err(e))) => {
                assert_eq!(
                    (e.requested, e.burst),
                    (f.n, u32::try_from(self.model.max).unwrap())
                );
            }
            (Some(ready), Poll::Ready(Ok(()))) if ready <= self.now => {}
            (Some(ready), Poll::Pending) if ready > self.now => f.armed = true,
            (ready, got) => panic!(
                "acquire_many({}) polled at {} ns: model due {ready:?}, got {got:?}",
                f.n, self.now
            ),
        }
        assert_eq!(
            f.counter.get(),
            f.wakes,
            "wake-ups of acquire_many({})",
            f.n
        );
        if !f.armed {
            // Completed: dropping it now refunds nothing.
            self.futs.swap_remove(i);
        }
    }

    fn check(&mut self) {
        let available = self.bucket.available();
        assert_eq!(
            available,
            self.model.available(self.now),
            "available at {} ns",
            self.now
        );
        assert!(i128::from(available) <= self.model.max);
        for f in &self.futs {
            assert_eq!(
                f.counter.get(),
                f.wakes,
                "wake-ups of acquire_many({})",
                f.n
            );
        }
        for r in &self.reservations {
            assert_eq!(r.res.ready_at().as_nanos(), r.ready_ns);
        }
    }
}

/// Tokens due in any closed window `[a, b]` are at most `max + refill * k`,
/// `k` the number of refill boundaries in `[a, b]`.
fn check_window(takes: &[Take], max: u32, refill: u32, interval: u64) {
    // A due time past `u64::MAX` ns (584 years) saturates and is never
    // reached: such takes are never admitted.
    let mut due: Vec<(u64, u32)> = takes
        .iter()
        .filter(|t| t.ready_ns < u64::MAX)
        .map(|t| (t.ready_ns.max(t.taken_ns), t.n))
        .collect();
    due.sort_unstable();
    for i in 0..due.len() {
        let a = due[i].0;
        let mut sum: u128 = 0;
        for &(b, n) in &due[i..] {
            sum += u128::from(n);
            let boundaries = u128::from(b / interval) + 1 - u128::from(a.div_ceil(interval));
            let bound = u128::from(max) + u128::from(refill) * boundaries;
            assert!(
                sum <= bound,
                "{sum} tokens due in [{a}, {b}] ns; bound {bound} (max {max}, {refill} per {interval} ns)"
            );
        }
    }
}
