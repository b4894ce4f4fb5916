//! `RateLimiter` (GCRA) on a `ManualClock` against a `u128` reference model.
//!
//! The bytes decode into a quota (cells, period and burst, with extreme
//! values) and a sequence of clock advances, `check`, `check_n`,
//! `reserve_many` (kept, used once due, cancelled or dropped), `acquire` /
//! `acquire_many` futures polled by hand with counting wakers and dropped at
//! any point, `set_quota` (random and extreme quotas) and `pause_for`.
//! Checked:
//!
//! * until the first `set_quota` or pause, every decision (admitted,
//!   `NotUntil` with its exact earliest nanosecond, `InsufficientCapacity`),
//!   every reservation's `ready_at` and every future's readiness equals the
//!   reference GCRA computed in ticks of `1 / cells` ns in `u128`
//!   (reservations and waiting futures move `tat`; a cancel or drop refunds
//!   only the last reservation, before its time); a waiting future is woken
//!   exactly once, when the clock reaches its slot;
//! * always: a denial's `wait_time` is exact (the same request is admitted
//!   once the clock has advanced by it, and not one nanosecond before, when
//!   nothing else happened in between); `n` above the burst in force fails
//!   at once with `InsufficientCapacity` for `check_n`, `reserve_many` and
//!   `acquire_many`;
//! * always, wake-ups: a future that becomes ready was woken since its last
//!   poll; without a `set_quota`/pause since its last poll it is woken at
//!   most once, and woken exactly when it is ready; with one it is woken at
//!   most twice (the change, if it moved its slot or outcome, and its old
//!   sleep);
//! * always, FIFO: when anything is admitted (a check, a future, a due
//!   reservation), every future queued before it is ready at its next poll
//!   and every reservation queued before it is due (`ready_at <= now`);
//!   live reservations' `ready_at` keep their queue order (waiters whose
//!   slot saturated 584 years out lost count and are exempt, as are zero-cell
//!   requests);
//! * always: nothing is admitted inside a pause;
//! * always: the window bound: the cells admitted in any closed window of
//!   length `W` lying within one quota epoch (between two `set_quota`s)
//!   never exceed `burst + floor(W * cells / period)`. An admission is
//!   placed at its exact instant where known (checks, reservations, futures
//!   under the exact model) and otherwise within the interval the harness
//!   can bound it to (after its last pending poll, at or before the poll
//!   that saw it ready); the window checked is the widest one possible;
//! * at the end, with every future dropped and every reservation cancelled,
//!   a fresh `acquire_many(burst)` waits exactly until the announced
//!   instant, is woken then, and is admitted (no lost capacity, no lost
//!   wake-up).

use crate::wake_counter::WakeCounter;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use limiters::futures::{RateAcquire, RateAcquireMany};
use limiters::{
    InsufficientCapacity, ManualClock, Quota, RateLimitError, RateLimiter, Reservation,
};

/// Live futures and reservations are capped so long inputs keep cycling.
const MAX_LIVE: usize = 32;
/// The clock never goes past this (no saturation games at `u64::MAX`).
const HORIZON: u64 = u64::MAX / 4;

fn duration_ns(u: &mut Unstructured<'_>, period: u64) -> arbitrary::Result<u64> {
    Ok(match u8::arbitrary(u)? % 8 {
        0 => 0,
        1 => 1,
        2 => period / 2,
        3 => period,
        4 => period.saturating_mul(3),
        5 => u64::from(u16::arbitrary(u)?),
        6 => u64::arbitrary(u)? % period.max(1),
        _ => u64::arbitrary(u)? >> (u8::arbitrary(u)? % 64),
    })
}

fn amount(u: &mut Unstructured<'_>, burst: u32) -> arbitrary::Result<u32> {
    Ok(match u8::arbitrary(u)? % 8 {
        0 => 0,
        1 | 2 => 1,
        3 => burst,
        4 => burst.saturating_add(1),
        5 => u32::MAX,
        _ => u32::from(u8::arbitrary(u)? % 8),
    })
}

fn quota(u: &mut Unstructured<'_>) -> arbitrary::Result<Option<Quota>> {
    let cells = match u8::arbitrary(u)? % 8 {
        0 => 1,
        1 => 3,
        2 => 1000,
        3 => 300_000_000,
        4 => u32::MAX,
        _ => u32::arbitrary(u)?.max(1),
    };
    let period_ns = match u8::arbitrary(u)? % 8 {
        0 => 1,
        1 => 1_000_000_000,
        2 => 3_600_000_000_000,
        3 => 7,
        4 => u64::MAX,
        _ => u64::arbitrary(u)? >> (u8::arbitrary(u)? % 64),
    };
    let burst = match u8::arbitrary(u)? % 6 {
        0 => 1,
        1 => 10,
        2 => u32::MAX,
        _ => u32::arbitrary(u)?.max(1),
    };
    Ok(Quota::new(cells, Duration::from_nanos(period_ns))
        .ok()
        .map(|q| q.allow_burst(burst)))
}

/// The reference GCRA, in ticks of `1 / cells` ns.
struct Model {
    cells: u128,
    t: u128,
    tau: u128,
    burst: u32,
    tat: u128,
}

impl Model {
    fn of(quota: Quota) -> Model {
        let period = quota.period().as_nanos();
        Model {
            cells: u128::from(quota.cells()),
            t: period,
            tau: u128::from(quota.burst()) * period,
            burst: quota.burst(),
            tat: 0,
        }
    }

    fn max_tat(&self) -> u128 {
        u128::from(u64::MAX) * self.cells + (self.cells - 1)
    }

    /// `Ok` or the earliest admission ns (or `Err(None)` for too large).
    fn check_n(&mut self, now: u64, n: u32) -> Result<(), Option<u64>> {
        if n > self.burst {
            return Err(None);
        }
        let new_tat = self.tat.max(u128::from(now) * self.cells) + u128::from(n) * self.t;
        let earliest = new_tat.saturating_sub(self.tau);
        if earliest <= u128::from(now) * self.cells && new_tat <= self.max_tat() {
            self.tat = new_tat;
            Ok(())
        } else if new_tat > self.max_tat() {
            Err(Some(u64::MAX))
        } else {
            Err(Some(
                u64::try_from(earliest.div_ceil(self.cells)).unwrap_or(u64::MAX),
            ))
        }
    }

    /// A reservation of `n <= burst` cells: `(ready_ns, tat after it)`. Its
    /// slot starts no earlier than the whole ns it is admitted at.
    fn reserve(&mut self, now: u64, n: u32) -> (u64, u128) {
        let base = self.tat.max(u128::from(now) * self.cells);
        let new_tat = base + u128::from(n) * self.t;
        let ready = if new_tat > self.max_tat() {
            u64::MAX
        } else {
            u64::try_from(new_tat.saturating_sub(self.tau).div_ceil(self.cells)).unwrap_or(u64::MAX)
        };
        let start = base.max(u128::from(ready) * self.cells);
        self.tat = (start + u128::from(n) * self.t).min(self.max_tat());
        (ready.max(now), self.tat)
    }

    /// A cancelled (or dropped while waiting) reservation: its cells come
    /// back only if it is still the last one and its time has not come.
    fn refund(&mut self, now: u64, ready: u64, tat: u128, n: u32) {
        if ready > now && self.tat == tat && tat < self.max_tat() {
            self.tat = tat.saturating_sub(u128::from(n) * self.t);
        }
    }
}

/// One admission: `n` cells at an instant known to lie in `[lo, hi]`.
#[derive(Clone, Copy, Debug)]
struct Admission {
    lo: u64,
    hi: u64,
    n: u32,
}

/// `acquire()` or `acquire_many(n)`.
enum Acquire<'b> {
    One(Pin<Box<RateAcquire<'b, ManualClock>>>),
    Many(Pin<Box<RateAcquireMany<'b, ManualClock>>>),
}

impl Acquire<'_> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), InsufficientCapacity>> {
        match self {
            Acquire::One(f) => f.as_mut().poll(cx).map(Ok),
            Acquire::Many(f) => f.as_mut().poll(cx),
        }
    }
}

struct Fut<'b> {
    /// Queue position (shared with reservations), set at the first poll.
    seq: u64,
    n: u32,
    fut: Acquire<'b>,
    waker: Waker,
    counter: Arc<WakeCounter>,
    /// Polled `Pending` at least once (it is queued).
    queued: bool,
    /// Wake count at its last poll.
    wakes_at_poll: usize,
    /// A `set_quota`/pause happened since its last poll.
    changed: bool,
    /// Exact slot and `tat` under the model (`None` once re-timed).
    exact: Option<(u64, u128)>,
    /// Not ready before this ns (its last pending poll, or narrowed by a
    /// clock wake-up).
    lo: u64,
    /// Quota epoch of its last pending poll.
    epoch: usize,
    /// Something queued after it was admitted: its time has come.
    due: bool,
    /// The smallest burst in force since it was queued.
    min_burst: u32,
}

struct Res<'b> {
    seq: u64,
    n: u32,
    res: Reservation<'b, ManualClock>,
    /// Exact slot and `tat` under the model (`None` once re-timed).
    exact: Option<(u64, u128)>,
    min_burst: u32,
}

struct Harness<'b> {
    rl: &'b RateLimiter<ManualClock>,
    clock: &'b ManualClock,
    quota: Quota,
    model: Option<Model>,
    now: u64,
    /// `(start, until)` of every pause.
    pauses: Vec<(u64, u64)>,
    paused_until: u64,
    futs: Vec<Fut<'b>>,
    reservations: Vec<Res<'b>>,
    next_seq: u64,
    epoch: usize,
    epoch_start: u64,
    admitted: Vec<Admission>,
    total: usize,
    /// An upper bound on the cells `tat` can run ahead of
    /// `max(now, pause end)` (never decreased).
    backlog: u128,
    /// `tat` may have saturated (584 years out): a saturated waiter lost
    /// count and is never admitted, so later requests overtake it.
    saturable: bool,
}

fn pick(u: &mut Unstructured<'_>, len: usize) -> arbitrary::Result<Option<usize>> {
    let i = usize::from(u8::arbitrary(u)?);
    Ok((len > 0).then(|| i % len))
}

/// Runs one input. Panics on any disagreement.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(Some(quota)) = quota(&mut u) else {
        return;
    };
    let clock = ManualClock::new();
    let rl = RateLimiter::with_clock(quota, clock.clone());
    let mut h = Harness {
        rl: &rl,
        clock: &clock,
        quota,
        model: Some(Model::of(quota)),
        now: 0,
        pauses: Vec::new(),
        paused_until: 0,
        futs: Vec::new(),
        reservations: Vec::new(),
        next_seq: 0,
        epoch: 0,
        epoch_start: 0,
        admitted: Vec::new(),
        total: 0,
        backlog: u128::from(quota.burst()),
        saturable: false,
    };
    while !u.is_empty() {
        if h.step(&mut u).is_err() || h.total > 512 {
            break;
        }
        h.check();
    }
    h.finish();
}

impl<'b> Harness<'b> {
    fn burst(&self) -> u32 {
        self.quota.burst()
    }

    fn period(&self) -> u64 {
        self.quota.period().as_nanos() as u64
    }

    /// Creates an acquire future of `n` cells (`acquire()` if `one`), not
    /// polled yet, unless `MAX_LIVE` futures live.
    fn push_fut(&mut self, n: u32, one: bool) {
        if self.futs.len() >= MAX_LIVE {
            return;
        }
        let counter = Arc::new(WakeCounter::default());
        self.futs.push(Fut {
            seq: 0,
            n,
            fut: if one {
                Acquire::One(Box::pin(self.rl.acquire()))
            } else {
                Acquire::Many(Box::pin(self.rl.acquire_many(n)))
            },
            waker: Waker::from(Arc::clone(&counter)),
            counter,
            queued: false,
            wakes_at_poll: 0,
            changed: false,
            exact: None,
            lo: 0,
            epoch: 0,
            due: false,
            min_burst: u32::MAX,
        });
    }

    fn step(&mut self, u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
        let burst = self.burst();
        let period = self.period();
        let op = u8::arbitrary(u)?;
        if op >= 240 {
            // 17 to 32 single-cell futures (up to `MAX_LIVE`), each polled
            // once: more waiters than one wake batch (16), so that a quota
            // change or pause re-times and wakes them in several batches.
            // (Bytes 240..=255 chose ops 0..=15 before; the three such op
            // bytes in the committed regressions were rewritten to the
            // same op below 240, so they replay as they did.)
            for _ in 0..17 + usize::from(op - 240) {
                if self.futs.len() >= MAX_LIVE {
                    break;
                }
                self.push_fut(1, true);
                self.poll(self.futs.len() - 1);
            }
            return Ok(());
        }
        match op % 24 {
            0..=3 => {
                let by = duration_ns(u, period)?;
                self.advance(by);
            }
            4 | 5 => {
                let _ = self.check_n(1, true);
            }
            6 | 7 => {
                let n = amount(u, burst)?;
                let _ = self.check_n(n, false);
            }
            8 => {
                let n = amount(u, burst)?;
                self.wait_exactly(n);
            }
            9 | 10 => {
                let n = amount(u, burst)?;
                self.reserve(n);
            }
            11 => {
                if let Some(i) = pick(u, self.reservations.len())? {
                    let r = self.reservations.swap_remove(i);
                    if let (Some(m), Some((ready, tat))) = (self.model.as_mut(), r.exact) {
                        m.refund(self.now, ready, tat, r.n);
                    }
                    r.res.cancel();
                }
            }
            12 => {
                // Dropped without cancel: the cells stay reserved.
                if let Some(i) = pick(u, self.reservations.len())? {
                    self.reservations.swap_remove(i);
                }
            }
            13 => {
                // Used: admitted at `ready_at` if it has come.
                if let Some(i) = pick(u, self.reservations.len())? {
                    self.use_reservation(i);
                }
            }
            14 | 15 => {
                let one = bool::arbitrary(u)?;
                let n = if one { 1 } else { amount(u, burst)? };
                self.push_fut(n, one);
            }
            16..=18 => {
                if let Some(i) = pick(u, self.futs.len())? {
                    self.poll(i);
                }
            }
            19 => {
                // Poll every woken future, like an executor.
                let mut i = 0;
                while i < self.futs.len() {
                    let f = &self.futs[i];
                    let woken = f.queued && f.counter.get() > f.wakes_at_poll;
                    if woken && self.poll(i) {
                        continue;
                    }
                    i += 1;
                }
            }
            20 => {
                if let Some(i) = pick(u, self.futs.len())? {
                    let f = self.futs.swap_remove(i);
                    if let (Some(m), Some((ready, tat))) = (self.model.as_mut(), f.exact) {
                        m.refund(self.now, ready, tat, f.n);
                    }
                    drop(f);
                }
            }
            21 => {
                if let Some(q) = quota(u)? {
                    self.set_quota(q);
                }
            }
            _ => {
                let d = duration_ns(u, period)?;
                self.pause(d);
            }
        }
        Ok(())
    }

    fn advance(&mut self, by: u64) {
        let by = by.min(HORIZON - self.now);
        let before = self.now;
        let wakes: Vec<usize> = self.futs.iter().map(|f| f.counter.get()).collect();
        self.clock.advance(Duration::from_nanos(by));
        self.now += by;
        for (f, w) in self.futs.iter_mut().zip(wakes) {
            let now_wakes = f.counter.get();
            if f.queued && !f.changed && now_wakes > w && w == f.wakes_at_poll {
                // Woken by its own sleep: its slot lies in this advance.
                f.lo = f.lo.max(before + 1);
            }
        }
    }

    /// Records an admission at `[lo, hi]` for the window bound (when it
    /// belongs to the current epoch) and the pause rule; marks everything
    /// queued before `seq` as due.
    fn admit(&mut self, lo: u64, hi: u64, n: u32, seq: u64, in_epoch: bool) {
        self.backlog = self.backlog.saturating_add(u128::from(n));
        if n == 0 {
            return;
        }
        for &(start, until) in &self.pauses {
            assert!(
                !(start < lo && hi < until),
                "{n} cells admitted within [{lo}, {hi}] ns, inside the pause ({start}, {until})"
            );
        }
        if in_epoch {
            self.admitted.push(Admission { lo, hi, n });
            self.total += 1;
        }
        let burst = self.burst();
        for f in &mut self.futs {
            if f.queued && f.seq < seq && 0 < f.n && f.n <= f.min_burst.min(burst) {
                f.due = true;
            }
        }
        for r in &self.reservations {
            if r.seq < seq && 0 < r.n && r.n <= r.min_burst.min(burst) {
                let ready = r.res.ready_at().as_nanos();
                // Saturated (584 years out) slots lost count: exempt.
                assert!(
                    ready <= self.now || ready == u64::MAX,
                    "reservation of {} ready at {ready} ns, after a later admission at {} ns",
                    r.n,
                    self.now
                );
            }
        }
    }

    fn check_n(
        &mut self,
        n: u32,
        via_check: bool,
    ) -> Result<(), RateLimitError<limiters::ManualInstant>> {
        let now = self.now;
        let got = if via_check {
            self.rl.check().map_err(RateLimitError::NotUntil)
        } else {
            self.rl.check_n(n)
        };
        let burst = self.burst();
        if let Some(m) = self.model.as_mut() {
            let expected = m.check_n(now, n);
            match (&expected, &got) {
                (Ok(()), Ok(()))
                | (Err(None), Err(RateLimitError::InsufficientCapacity { .. })) => {}
                (Err(Some(at)), Err(RateLimitError::NotUntil(nu))) => {
                    assert_eq!(nu.earliest().as_nanos(), *at, "earliest at {now} for {n}");
                    let wait = nu.wait_time().as_nanos() as u64;
                    assert_eq!(wait, at.saturating_sub(now), "wait_time at {now} for {n}");
                }
                _ => panic!("check_n({n}) at {now} ns: model {expected:?}, limiter {got:?}"),
            }
        }
        match &got {
            Err(RateLimitError::InsufficientCapacity {
                requested,
                burst: b,
            }) => {
                assert_eq!((*requested, *b), (n, burst));
            }
            Err(RateLimitError::NotUntil(nu)) => {
                assert!(n <= burst, "check_n({n}) above the burst {burst}: {nu:?}");
                if nu.earliest().as_nanos() == u64::MAX {
                    self.saturable = true;
                }
                assert!(nu.earliest().as_nanos() > now);
            }
            Ok(()) => {
                assert!(n <= burst);
                assert!(
                    n == 0 || now >= self.paused_until,
                    "admitted {n} at {now} ns during a pause until {}",
                    self.paused_until
                );
                self.admit(now, now, n, u64::MAX, true);
            }
            Err(e) => panic!("check_n({n}): unexpected {e:?}"),
        }
        got
    }

    /// Probe a denial's `wait_time`: advance to one ns before it (denied),
    /// then to it (admitted).
    fn wait_exactly(&mut self, n: u32) {
        let Err(RateLimitError::NotUntil(nu)) = self.check_n(n, false) else {
            return;
        };
        let wait = nu.wait_time().as_nanos() as u64;
        if wait >= HORIZON - self.now {
            return;
        }
        self.advance(wait - 1);
        assert!(
            self.check_n(n, false).is_err(),
            "admitted {n} one ns before the announced {wait} ns wait"
        );
        self.advance(1);
        if let Err(e) = self.check_n(n, false) {
            panic!("{n} not admitted after waiting {wait} ns: {e:?}");
        }
    }

    fn reserve(&mut self, n: u32) {
        let now = self.now;
        let burst = self.burst();
        let got = self.rl.reserve_many(n);
        if n > burst {
            let e = got.expect_err("reserve_many above the burst");
            assert_eq!((e.requested, e.burst), (n, burst));
            return;
        }
        let res = got.expect("reserve_many within the burst");
        let ready = res.ready_at().as_nanos();
        assert!(ready >= now);
        assert_eq!(res.delay(), Duration::from_nanos(ready - now));
        let exact = self.model.as_mut().map(|m| m.reserve(now, n));
        if let Some((r, _)) = exact {
            assert_eq!(ready, r, "ready_at of reserve_many({n}) at {now} ns");
        }
        if ready > now && n > 0 {
            assert!(
                ready >= self.paused_until,
                "reservation ready at {ready} ns, inside a pause until {}",
                self.paused_until
            );
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.backlog = self
            .backlog
            .saturating_add(u128::from(n) + self.cells_per_ns());
        if ready == u64::MAX {
            self.saturable = true;
        }
        if ready <= now {
            // Admitted at once.
            self.admit(now, now, n, seq, true);
        } else if self.reservations.len() < MAX_LIVE {
            self.reservations.push(Res {
                seq,
                n,
                res,
                exact,
                min_burst: burst,
            });
        }
        // Otherwise dropped at once: the cells stay reserved.
    }

    fn use_reservation(&mut self, i: usize) {
        let r = &self.reservations[i];
        let ready = r.res.ready_at().as_nanos();
        if ready > self.now || r.n > r.min_burst.min(self.burst()) {
            return;
        }
        if let Some((exact, _)) = r.exact {
            assert_eq!(ready, exact);
        }
        let r = self.reservations.swap_remove(i);
        let in_epoch = ready >= self.epoch_start && (r.exact.is_some() || ready > self.epoch_start);
        self.admit(ready, ready, r.n, r.seq, in_epoch);
        drop(r);
    }

    /// Polls future `i`; returns whether it completed (and was removed).
    fn poll(&mut self, i: usize) -> bool {
        let now = self.now;
        let burst = self.burst();
        let cells_per_ns = self.cells_per_ns();
        let first = !self.futs[i].queued;
        if first {
            let f = &mut self.futs[i];
            f.seq = self.next_seq;
            self.next_seq += 1;
        }
        // The model's verdict at a first poll: admitted at once, too large,
        // or a reservation.
        let mut expected_first = None;
        if first {
            let n = self.futs[i].n;
            if let Some(m) = self.model.as_mut() {
                expected_first = Some(match m.check_n(now, n) {
                    Ok(()) => Ok(None),
                    Err(None) => Err(()),
                    Err(Some(_)) => Ok(Some(m.reserve(now, n))),
                });
            }
        }
        let f = &mut self.futs[i];
        let mut cx = Context::from_waker(&f.waker);
        let got = f.fut.poll(&mut cx);
        let wakes = f.counter.get();
        let woken = wakes - f.wakes_at_poll;
        let n = f.n;
        if first {
            assert_eq!(woken, 0, "acquire_many({n}) woken before its first poll");
            match &got {
                Poll::Ready(Err(e)) => {
                    assert!(
                        n > burst,
                        "acquire_many({n}) refused: {e:?} (burst {burst})"
                    );
                    assert_eq!((e.requested, e.burst), (n, burst));
                }
                Poll::Ready(Ok(())) => assert!(n <= burst),
                Poll::Pending => assert!(n <= burst, "acquire_many({n}) above {burst} queued"),
            }
            match (expected_first, &got) {
                (None, _)
                | (Some(Err(())), Poll::Ready(Err(_)))
                | (Some(Ok(None)), Poll::Ready(Ok(()))) => {}
                (Some(Ok(Some((ready, tat)))), Poll::Pending) if ready > now => {
                    f.exact = Some((ready, tat));
                }
                (expected, got) => {
                    panic!("acquire_many({n}) first polled at {now} ns: model {expected:?}, got {got:?}")
                }
            }
        } else {
            if got.is_ready() {
                assert!(
                    woken >= 1,
                    "acquire_many({n}) ready at {now} ns but never woken"
                );
            }
            if f.changed {
                // A change wakes only the waiters it moved; a ready one was
                // woken (asserted above).
                assert!(
                    woken <= 2,
                    "acquire_many({n}) woken {woken} times after a change"
                );
            } else {
                assert!(woken <= 1, "acquire_many({n}) woken {woken} times");
                assert_eq!(
                    woken == 1,
                    got.is_ready(),
                    "acquire_many({n}) at {now} ns: woken {woken} times, {got:?}"
                );
            }
            if let Some((ready, _)) = f.exact {
                assert_eq!(
                    got.is_ready(),
                    ready <= now,
                    "acquire_many({n}) due at {ready} ns, polled at {now}: {got:?}"
                );
            }
            if f.due && !self.saturable {
                assert!(
                    got.is_ready(),
                    "acquire_many({n}) overtaken by a later admission, still pending at {now} ns"
                );
            }
            if let Poll::Ready(Err(e)) = &got {
                assert!(
                    n > f.min_burst.min(burst),
                    "acquire_many({n}) refused: {e:?}"
                );
                assert_eq!(e.requested, n);
                assert!(n > e.burst);
            }
        }
        match got {
            Poll::Pending => {
                if first {
                    self.backlog = self.backlog.saturating_add(u128::from(n) + cells_per_ns);
                }
                f.queued = true;
                f.wakes_at_poll = wakes;
                f.changed = false;
                f.lo = now;
                f.epoch = self.epoch;
                f.min_burst = f.min_burst.min(burst);
                false
            }
            Poll::Ready(result) => {
                let f = self.futs.swap_remove(i);
                if result.is_ok() {
                    let (lo, hi) = match f.exact {
                        Some((ready, _)) => (ready, ready),
                        None if first => (now, now),
                        None => (f.lo, now),
                    };
                    if now < self.paused_until && n > 0 {
                        // Only a slot that came before the pause.
                        assert!(
                            !first,
                            "acquire_many({n}) admitted at {now} ns during a pause until {}",
                            self.paused_until
                        );
                    }
                    let in_epoch = first || (f.epoch == self.epoch && lo >= self.epoch_start);
                    self.admit(lo, hi, n, f.seq, in_epoch);
                }
                true
            }
        }
    }

    /// The cells of one ns, rounded up: what aligning a slot to a whole ns
    /// (reservations, re-timed waiters) can add to the backlog. A quota
    /// change carries the backlog over in cells, so with more than a cell
    /// per ns this gap can grow into years under a slower quota.
    fn cells_per_ns(&self) -> u128 {
        u128::from(self.quota.cells()).div_ceil(self.quota.period().as_nanos())
    }

    fn changed(&mut self) {
        self.model = None;
        // A pause's floor and the rescale's rounding add at most this.
        let q = self.quota;
        let pause_cells = u128::from(self.paused_until.saturating_sub(self.now))
            * u128::from(q.cells())
            / q.period().as_nanos();
        // Every waiter re-timed may be pushed to a whole ns.
        let waiters = (self.futs.len() + self.reservations.len() + 1) as u128;
        self.backlog = self.backlog.saturating_add(
            pause_cells + u128::from(q.burst()) + waiters * (self.cells_per_ns() + 1),
        );
        let burst = self.burst();
        for f in &mut self.futs {
            f.exact = None;
            if f.queued {
                f.changed = true;
                f.min_burst = f.min_burst.min(burst);
            }
        }
        for r in &mut self.reservations {
            r.exact = None;
            r.min_burst = r.min_burst.min(burst);
        }
    }

    fn set_quota(&mut self, quota: Quota) {
        self.rl.set_quota(quota);
        assert_eq!(self.rl.quota(), quota);
        // The window bound holds per quota: check the epoch that ends.
        check_window(&self.admitted, self.quota);
        self.admitted.clear();
        self.quota = quota;
        self.epoch += 1;
        self.epoch_start = self.now;
        self.changed();
    }

    fn pause(&mut self, d: u64) {
        self.rl.pause_for(Duration::from_nanos(d));
        let until = self.now.saturating_add(d);
        if until > self.now {
            self.pauses.push((self.now, until));
        }
        self.paused_until = self.paused_until.max(until);
        self.changed();
    }

    fn check(&mut self) {
        let now = self.now;
        let q = self.quota;
        let ahead = self.backlog.saturating_mul(q.period().as_nanos()) / u128::from(q.cells());
        if u128::from(now.max(self.paused_until)).saturating_add(ahead) >= 1 << 63 {
            self.saturable = true;
        }
        for f in &self.futs {
            let wakes = f.counter.get();
            if !f.queued {
                assert_eq!(
                    wakes, 0,
                    "acquire_many({}) woken before its first poll",
                    f.n
                );
                continue;
            }
            let woken = wakes - f.wakes_at_poll;
            if f.changed {
                assert!(woken <= 2, "acquire_many({}) woken {woken} times", f.n);
            } else if let Some((ready, _)) = f.exact {
                assert_eq!(
                    woken,
                    usize::from(ready <= now),
                    "wake-ups of acquire_many({}) due at {ready} ns, at {now} ns",
                    f.n
                );
            } else {
                assert!(woken <= 1, "acquire_many({}) woken {woken} times", f.n);
            }
        }
        // Reservations keep their queue order.
        let burst = self.burst();
        let mut saturated = false;
        let mut live: Vec<(u64, u64)> = self
            .reservations
            .iter()
            .filter(|r| r.n <= r.min_burst.min(burst))
            .map(|r| {
                let ready = r.res.ready_at().as_nanos();
                saturated |= ready == u64::MAX;
                if let Some((exact, _)) = r.exact {
                    assert_eq!(ready, exact, "ready_at of reserve_many({})", r.n);
                }
                (r.seq, if r.n == 0 { u64::MAX } else { ready })
            })
            .collect();
        // Saturated (584 years out) slots lost count: exempt.
        self.saturable |= saturated;
        // Zero cells take no slot: exempt too.
        live.retain(|&(_, ready)| ready < u64::MAX);
        live.sort_unstable();
        for w in live.windows(2) {
            assert!(
                w[0].1 <= w[1].1,
                "reservations out of order: {:?} then {:?}",
                w[0],
                w[1]
            );
        }
    }

    fn finish(mut self) {
        check_window(&self.admitted, self.quota);
        // Drop every future and cancel every reservation.
        self.futs.clear();
        for r in self.reservations.drain(..) {
            r.res.cancel();
        }
        // Liveness: a fresh request of the whole burst waits exactly until
        // the instant a check announces, is woken then and admitted.
        let burst = self.burst();
        let wait = match self.rl.check_n(burst) {
            Ok(()) => return,
            Err(RateLimitError::NotUntil(nu)) => nu.wait_time().as_nanos() as u64,
            Err(e) => panic!("check_n(burst) refused: {e:?}"),
        };
        assert!(wait > 0);
        if wait >= HORIZON - self.now {
            return;
        }
        let counter = Arc::new(WakeCounter::default());
        let waker = Waker::from(Arc::clone(&counter));
        let mut cx = Context::from_waker(&waker);
        let mut fut = Box::pin(self.rl.acquire_many(burst));
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        self.clock.advance(Duration::from_nanos(wait - 1));
        assert_eq!(counter.get(), 0, "woken before its slot");
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        self.clock.advance(Duration::from_nanos(1));
        assert_eq!(counter.get(), 1, "not woken at its slot");
        assert!(
            matches!(fut.as_mut().poll(&mut cx), Poll::Ready(Ok(()))),
            "acquire_many(burst) not admitted at its slot"
        );
    }
}

/// Cells admitted in any closed window are at most
/// `burst + floor(W * cells / period)`, `W` the widest length the
/// admissions' intervals allow.
fn check_window(admitted: &[Admission], quota: Quota) {
    let burst = u128::from(quota.burst());
    let cells = u128::from(quota.cells());
    let period = quota.period().as_nanos();
    let mut sorted = admitted.to_vec();
    sorted.sort_unstable_by_key(|a| a.lo);
    for i in 0..sorted.len() {
        let mut sum: u128 = 0;
        let mut hi = 0;
        for a in &sorted[i..] {
            sum += u128::from(a.n);
            hi = hi.max(a.hi);
            let w = u128::from(hi - sorted[i].lo);
            let bound = burst + w * cells / period;
            assert!(
                sum <= bound,
                "{sum} cells admitted in [{}, {hi}] ns; bound {bound} ({quota:?}): {sorted:?}",
                sorted[i].lo
            );
        }
    }
}
