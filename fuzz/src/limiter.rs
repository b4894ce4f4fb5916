//! The composite `Limiter` on a `ManualClock`: limits and liveness.
//!
//! The bytes decode into a configuration (no or some concurrency, zero to
//! two small quotas, an optional `min_hold`, a weight; invalid ones must be
//! refused with the right `BuildError`) and a sequence of operations:
//! `acquire_many` and `run` futures created, polled by hand with counting
//! wakers (one at a time, or every woken one like an executor) and dropped
//! at any point; permits dropped; the work inside a `run` finished; clock
//! advances, `pause_for`, `close`. Checked:
//!
//! * **concurrency**: at every admission, the weight admitted and not yet
//!   released (or released but still inside its `min_hold`) is at most the
//!   concurrency;
//! * **rate**: for each quota, the cells of admissions `i..=j` are at most
//!   `burst + floor(W * cells / period)`, with `W` measured from the
//!   admission before `i` to admission `j` (a head commits its cells at an
//!   instant between those two, so this bound holds whatever the real
//!   commit instants are);
//! * **errors**: a request of a weight no limit can ever admit fails at its
//!   first poll with `ExceedsCapacity` (concurrency) or
//!   `InsufficientCapacity` (burst); after `close`, every queued future is
//!   woken at once and fails with `Closed`, and `run` never starts its work;
//! * **no lost wake-up, no deadlock**: at the end every work is finished and
//!   every permit dropped, and the remaining futures are driven like an
//!   executor would, polling only woken ones and advancing the clock only
//!   when nobody is woken: each must complete; then all the slots are back
//!   and (unless closed) a fresh request of the largest weight is admitted.

use crate::wake_counter::WakeCounter;
use crate::work::{check_window, finish, pick, Executor, Tracker, Work, WorkState};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use limiters::futures::{LimiterAcquire, LimiterRun};
use limiters::{
    AcquireError, BuildError, Limiter, LimiterBuilder, LimiterPermit, ManualClock, Quota,
};

const MAX_LIVE: usize = 24;
/// Longer than any deadline an input can set up (periods, holds and pauses
/// are at most a few ms of fake time, times at most a few hundred cells).
const FOREVER: u64 = 10_000_000_000_000;

enum Handle {
    Acquire(Pin<Box<LimiterAcquire<ManualClock>>>),
    Run(
        Pin<Box<LimiterRun<ManualClock, Work>>>,
        Arc<Mutex<WorkState>>,
    ),
}

struct Fut {
    handle: Handle,
    w: u32,
    tracker: Tracker,
    /// Index into `admissions` once a `run`'s work started.
    admission: Option<usize>,
}

struct Admission {
    at: u64,
    w: u32,
    released: Option<u64>,
}

struct Config {
    concurrency: Option<usize>,
    quotas: Vec<Quota>,
    min_hold: Option<u64>,
    weight: u32,
}

fn config(u: &mut Unstructured<'_>) -> arbitrary::Result<Config> {
    let concurrency = match u8::arbitrary(u)? % 6 {
        0 => None,
        1 => Some(0),
        k => Some(usize::from(k - 1)),
    };
    let mut quotas = Vec::new();
    for _ in 0..u8::arbitrary(u)? % 3 {
        let cells = 1 + u32::from(u8::arbitrary(u)? % 3);
        let period = match u8::arbitrary(u)? % 5 {
            0 => 1,
            1 => 10,
            2 => 1000,
            3 => 1_000_000,
            _ => 1 + u64::from(u16::arbitrary(u)?),
        };
        let burst = 1 + u32::from(u8::arbitrary(u)? % 4);
        quotas.push(
            Quota::new(cells, Duration::from_nanos(period))
                .unwrap()
                .allow_burst(burst),
        );
    }
    let min_hold = match u8::arbitrary(u)? % 4 {
        0 | 1 => None,
        2 => Some(1000),
        _ => Some(1 + u64::from(u16::arbitrary(u)?)),
    };
    let weight = if u8::arbitrary(u)? % 4 == 0 { 2 } else { 1 };
    Ok(Config {
        concurrency,
        quotas,
        min_hold,
        weight,
    })
}

/// What `build` must say about `c` (in the builder's order of checks).
fn expected_build_error(c: &Config) -> Option<BuildError> {
    if c.concurrency.is_none() && c.quotas.is_empty() {
        return Some(BuildError::NoLimits);
    }
    if let Some(n) = c.concurrency {
        if n == 0 {
            return Some(BuildError::ZeroConcurrency);
        }
        if c.weight as usize > n {
            return Some(BuildError::WeightExceedsConcurrency {
                weight: c.weight,
                concurrency: n,
            });
        }
    }
    if c.concurrency.is_none() && c.min_hold.is_some() {
        return Some(BuildError::MinHoldWithoutConcurrency);
    }
    c.quotas
        .iter()
        .find(|q| q.burst() < c.weight)
        .map(|q| BuildError::WeightExceedsBurst {
            weight: c.weight,
            burst: q.burst(),
        })
}

/// Runs one input. Panics when a limit is exceeded, an error is wrong, or
/// a future is never woken.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(c) = config(&mut u) else {
        return;
    };
    let clock = ManualClock::new();
    let mut builder = LimiterBuilder::with_clock(clock.clone()).weight(c.weight);
    if let Some(n) = c.concurrency {
        builder = builder.concurrency(n);
    }
    for &q in &c.quotas {
        builder = builder.rate(q);
    }
    if let Some(ns) = c.min_hold {
        builder = builder.min_hold(Duration::from_nanos(ns));
    }
    let limiter = match (builder.build(), expected_build_error(&c)) {
        (Ok(limiter), None) => limiter,
        (Err(got), Some(expected)) => {
            assert_eq!(got, expected);
            return;
        }
        (got, expected) => panic!("build: expected {expected:?}, got {:?}", got.err()),
    };
    // The largest weight any request can ever get.
    let max_w = c
        .quotas
        .iter()
        .map(|q| q.burst())
        .chain(c.concurrency.map(|n| n as u32))
        .min()
        .unwrap();
    let mut h = Harness {
        limiter,
        clock,
        hold: c.min_hold.unwrap_or(0),
        concurrency: c.concurrency,
        quotas: c.quotas,
        max_w,
        weight: c.weight,
        now: 0,
        closed: false,
        paused_until: 0,
        futs: Vec::new(),
        permits: Vec::new(),
        admissions: Vec::new(),
    };
    while !u.is_empty() {
        if h.step(&mut u).is_err() || h.admissions.len() > 300 {
            break;
        }
        h.check();
    }
    h.finish();
}

struct Harness {
    limiter: Limiter<ManualClock>,
    clock: ManualClock,
    hold: u64,
    concurrency: Option<usize>,
    quotas: Vec<Quota>,
    max_w: u32,
    weight: u32,
    now: u64,
    closed: bool,
    paused_until: u64,
    futs: Vec<Fut>,
    permits: Vec<(LimiterPermit<ManualClock>, usize)>,
    admissions: Vec<Admission>,
}

impl Executor for Harness {
    fn tracker(&self, i: usize) -> Option<&Tracker> {
        self.futs.get(i).map(|f| &f.tracker)
    }
    fn poll_one(&mut self, i: usize) -> bool {
        self.poll(i)
    }
}

impl Harness {
    fn duration(&self, u: &mut Unstructured<'_>) -> arbitrary::Result<u64> {
        let period = self
            .quotas
            .first()
            .map_or(1000, |q| q.period().as_nanos() as u64);
        Ok(match u8::arbitrary(u)? % 8 {
            0 => 0,
            1 => 1,
            2 => period,
            3 => period / 2,
            4 => self.hold,
            5 => self.hold.saturating_sub(1),
            _ => u64::from(u16::arbitrary(u)?) * u64::from(u8::arbitrary(u)? % 4),
        })
    }

    fn step(&mut self, u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
        match u8::arbitrary(u)? % 32 {
            0..=5 => {
                let w = match u8::arbitrary(u)? % 8 {
                    0 => 0,
                    1 => self.max_w,
                    2 => self.max_w + 1,
                    3 => u32::MAX,
                    _ => 1 + u32::from(u8::arbitrary(u)?) % self.max_w,
                };
                let fut = self.limiter.acquire_many(w);
                self.push(Handle::Acquire(Box::pin(fut)), w);
            }
            6..=9 => {
                let work = Arc::new(Mutex::new(WorkState::default()));
                let fut = self.limiter.run(Work(Arc::clone(&work)));
                let w = self.weight;
                self.push(Handle::Run(Box::pin(fut), work), w);
            }
            10..=15 => {
                if let Some(i) = pick(u, self.futs.len())? {
                    self.poll(i);
                }
            }
            16..=18 => {
                self.poll_woken();
            }
            19..=20 => {
                if let Some(i) = pick(u, self.futs.len())? {
                    let f = self.futs.swap_remove(i);
                    let admission = f.admission;
                    drop(f);
                    if let Some(a) = admission {
                        self.release(a);
                    }
                }
            }
            21..=22 => {
                if let Some(i) = pick(u, self.permits.len())? {
                    let (permit, a) = self.permits.swap_remove(i);
                    drop(permit);
                    self.release(a);
                }
            }
            23..=24 => {
                let running: Vec<_> = self
                    .futs
                    .iter()
                    .filter_map(|f| match &f.handle {
                        Handle::Run(_, work) if f.admission.is_some() => Some(Arc::clone(work)),
                        _ => None,
                    })
                    .collect();
                if let Some(i) = pick(u, running.len())? {
                    finish(&running[i]);
                }
            }
            25..=28 => {
                let by = self.duration(u)?;
                self.advance(by);
            }
            29..=30 => {
                let d = self.duration(u)?;
                self.limiter.pause_for(Duration::from_nanos(d));
                self.paused_until = self.paused_until.max(self.now + d);
                let expected = (self.paused_until > self.now).then_some(self.paused_until);
                assert_eq!(self.limiter.paused_until().map(|i| i.as_nanos()), expected);
            }
            _ => {
                if u8::arbitrary(u)? % 4 == 0 {
                    self.close();
                }
            }
        }
        Ok(())
    }

    fn push(&mut self, handle: Handle, w: u32) {
        if self.futs.len() >= MAX_LIVE {
            return;
        }
        self.futs.push(Fut {
            handle,
            w,
            tracker: Tracker::new(),
            admission: None,
        });
    }

    fn advance(&mut self, by: u64) {
        self.clock.advance(Duration::from_nanos(by));
        self.now += by;
    }

    fn close(&mut self) {
        self.limiter.close();
        self.closed = true;
        assert!(self.limiter.is_closed());
        // Every future waiting in a queue or on the clock is woken at once.
        for f in &self.futs {
            if f.tracker.pending() && f.admission.is_none() {
                assert!(f.tracker.woken(), "{} not woken by close", debug(f));
            }
        }
    }

    /// Records an admission of `w` now, checking every limit.
    fn admit(&mut self, w: u32) -> usize {
        let now = self.now;
        assert!(
            now >= self.paused_until,
            "admitted at {now} ns during a pause until {}",
            self.paused_until
        );
        assert!(!self.closed, "admitted after close");
        self.admissions.push(Admission {
            at: now,
            w,
            released: None,
        });
        if let Some(cap) = self.concurrency {
            let hold = self.hold;
            let in_use: usize = self
                .admissions
                .iter()
                .filter(|a| a.released.is_none() || (hold > 0 && a.at + hold > now))
                .map(|a| a.w as usize)
                .sum();
            assert!(
                in_use <= cap,
                "{in_use} slots in use at {now} ns (min_hold {hold} ns), concurrency {cap}"
            );
        }
        self.check_window();
        self.admissions.len() - 1
    }

    fn release(&mut self, a: usize) {
        assert!(self.admissions[a].released.is_none());
        self.admissions[a].released = Some(self.now);
    }

    /// Polls future `i`; returns whether it is gone (completed).
    fn poll(&mut self, i: usize) -> bool {
        let f = &mut self.futs[i];
        let mut cx = f.tracker.context();
        let w = f.w;
        let (result, started) = match &mut f.handle {
            Handle::Acquire(fut) => (fut.as_mut().poll(&mut cx).map(|r| r.map(Some)), false),
            Handle::Run(fut, work) => {
                let got = fut.as_mut().poll(&mut cx);
                let started = work.lock().unwrap().started;
                if let Poll::Ready(Err(_)) = got {
                    assert!(!started, "run failed after starting its work");
                }
                (got.map(|r| r.map(|()| None)), started)
            }
        };
        f.tracker.polled(result.is_pending());
        if started && f.admission.is_none() {
            let a = self.admit(w);
            self.futs[i].admission = Some(a);
        }
        let Poll::Ready(result) = result else {
            return false;
        };
        let f = self.futs.swap_remove(i);
        match result {
            Ok(Some(permit)) => {
                assert!(w <= self.max_w, "admitted {w}, above {}", self.max_w);
                assert_eq!(permit.weight(), w);
                assert_eq!(permit.admitted_at().as_nanos(), self.now);
                let a = self.admit(w);
                self.permits.push((permit, a));
            }
            Ok(None) => self.release(f.admission.expect("a finished run was admitted")),
            Err(AcquireError::Closed) => assert!(self.closed, "Closed before close"),
            Err(AcquireError::ExceedsCapacity {
                requested,
                capacity,
            }) => {
                let n = self
                    .concurrency
                    .expect("only a concurrency limit has a capacity");
                assert!(w as usize > n, "refused {w}, within the concurrency {n}");
                assert_eq!((requested, capacity), (w as usize, n));
            }
            Err(AcquireError::InsufficientCapacity { requested, burst }) => {
                let expected = self.quotas.iter().map(|q| q.burst()).min().unwrap();
                assert!(
                    self.concurrency.is_none_or(|n| w as usize <= n),
                    "the concurrency is checked first"
                );
                assert!(w > expected, "refused {w}, within the burst {expected}");
                assert_eq!((requested, burst), (w, expected));
            }
            Err(e) => panic!("unexpected error {e:?}"),
        }
        true
    }

    fn check(&self) {
        if let Some(cap) = self.concurrency {
            let free = self.limiter.available_slots().unwrap();
            assert!(free <= cap, "{free} slots free, concurrency {cap}");
        }
        assert_eq!(self.limiter.is_closed(), self.closed);
    }

    /// The rate bound for every quota (see the module docs).
    /// The rate bound of every quota on the admissions so far.
    fn check_window(&self) {
        let adm: Vec<(u64, u32)> = self.admissions.iter().map(|a| (a.at, a.w)).collect();
        for &q in &self.quotas {
            check_window(&adm, q);
        }
    }

    fn finish(mut self) {
        // Finish every work and drop every permit.
        for (permit, a) in std::mem::take(&mut self.permits) {
            drop(permit);
            self.release(a);
        }
        // Drive what is left: poll only woken futures; advance the clock
        // only when nobody is woken. Everything must complete.
        let mut rounds = 0;
        while !self.futs.is_empty() {
            rounds += 1;
            assert!(rounds < 10_000, "no progress");
            for f in &self.futs {
                if let Handle::Run(_, work) = &f.handle {
                    if f.admission.is_some() {
                        finish(work);
                    }
                }
            }
            for (permit, a) in std::mem::take(&mut self.permits) {
                drop(permit);
                self.release(a);
            }
            // Futures never polled are started now.
            let started = self.poll_fresh();
            if started > 0 || self.poll_woken() > 0 {
                continue;
            }
            if !self.permits.is_empty() {
                continue;
            }
            if self.futs.is_empty() {
                break;
            }
            assert!(
                !self.closed,
                "after close, futures pending and not woken: {:?}",
                self.futs.iter().map(debug).collect::<Vec<_>>()
            );
            self.advance(FOREVER);
            if self.poll_woken() == 0 && self.permits.is_empty() {
                let stuck: Vec<_> = self
                    .futs
                    .iter()
                    .map(|f| format!("{:?}", debug(f)))
                    .collect();
                panic!(
                    "lost wake-up or deadlock at {} ns: nobody woken; pending: {stuck:?}; {:?}",
                    self.now, self.limiter
                );
            }
        }
        for (permit, a) in std::mem::take(&mut self.permits) {
            drop(permit);
            self.release(a);
        }
        // All the slots are back once every hold is over.
        self.advance(FOREVER);
        if let Some(cap) = self.concurrency {
            assert_eq!(
                self.limiter.available_slots(),
                Some(cap),
                "{:?}",
                self.limiter
            );
        }
        // A fresh request of the largest weight gets through.
        let counter = Arc::new(WakeCounter::default());
        let waker = Waker::from(Arc::clone(&counter));
        let mut fresh = Box::pin(self.limiter.acquire_many(self.max_w));
        let got = match fresh.as_mut().poll(&mut Context::from_waker(&waker)) {
            Poll::Ready(got) => got,
            Poll::Pending => {
                self.advance(FOREVER);
                assert_eq!(counter.get(), 1, "fresh request woken");
                match fresh.as_mut().poll(&mut Context::from_waker(&waker)) {
                    Poll::Ready(got) => got,
                    Poll::Pending => panic!("fresh request still pending: {:?}", self.limiter),
                }
            }
        };
        if self.closed {
            assert_eq!(got.unwrap_err(), AcquireError::Closed);
        } else {
            assert_eq!(got.unwrap().weight(), self.max_w);
        }
    }
}

fn debug(f: &Fut) -> String {
    match &f.handle {
        Handle::Acquire(fut) => format!("{fut:?}"),
        Handle::Run(fut, _) => format!("{fut:?}"),
    }
}
