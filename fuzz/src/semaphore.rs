//! `Semaphore` and `BoundedSemaphore` against a plain reference model.
//!
//! The bytes decode into a configuration and a sequence of operations:
//! create acquire futures (borrowed or owned, any weight), poll them by hand
//! with counting wakers (sometimes a fresh waker), drop them at any point,
//! `try_acquire*`, drop/forget/split/merge permits, `add_permits`,
//! `forget_permits`, `close`, and `BoundedSemaphore::release`.
//!
//! The model is a FIFO queue of `(future, collected)` entries plus an
//! `available` count: a release hands permits to the head in order (the head
//! keeps partial permits), what is left once the queue is empty becomes
//! available. After every operation the harness checks
//!
//! * every poll result (ready or not, the error, the permit's size),
//! * every waker's wake count, exactly (no lost and no spurious wake-up, and
//!   only the latest waker of a future is woken),
//! * `available_permits`, `waiters`, `is_closed`, `detached`, `in_use`,
//! * conservation: `available + held + collected + granted (+ detached) ==
//!   total`,
//!
//! and at the end, after dropping every future and permit, that all permits
//! are back and can be taken again.
//!
//! Overflow of `Semaphore::MAX_PERMITS` is a documented panic, which the
//! fuzzer cannot catch (libFuzzer aborts on panic): operations that would
//! overflow are skipped here and tested in `tests/bad_input.rs`.

use crate::sem::Sem;
use crate::wake_counter::WakeCounter;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use arbitrary::{Arbitrary, Unstructured};
use limiters::futures::{Acquire, AcquireOwned};
use limiters::{AcquireError, BoundedSemaphore, OwnedPermit, Permit, Semaphore, TryAcquireError};

const MAX: usize = Semaphore::MAX_PERMITS;
/// Live futures and permits are capped so a long input keeps cycling through
/// states instead of only piling up objects.
const MAX_LIVE: usize = 48;

/// Which primitive to drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `Semaphore`: `add_permits` and `forget_permits` change the total.
    Plain,
    /// `BoundedSemaphore`: fixed capacity, `release` of detached permits.
    Bounded,
}

/// A permit count: mostly small, sometimes at the edges.
#[derive(Clone, Copy, Debug)]
pub struct Amount(u8);

impl<'a> Arbitrary<'a> for Amount {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Amount(u.arbitrary()?))
    }
}

impl Amount {
    /// Resolves against the semaphore's capacity.
    fn get(self, capacity: usize) -> usize {
        match self.0 {
            0..=219 => usize::from(self.0 % 7),
            220..=229 => usize::from(self.0 - 213), // 7..=16
            230 => capacity,
            231 => capacity.saturating_sub(1),
            232 => capacity.saturating_add(1),
            233 => MAX,
            234 => MAX - 1,
            235 => MAX + 1,
            236 => usize::MAX,
            237 => MAX / 2,
            238 => 1000,
            // More than one wake batch (16) of single-permit waiters.
            239 => 24,
            240 => 40,
            _ => 1,
        }
    }
}

#[derive(Debug)]
enum Op {
    /// Create an acquire future (not polled yet).
    Acquire {
        n: Amount,
        owned: bool,
    },
    /// Queue more waiters than one wake batch (16) and complete or fail
    /// them with one call (see `Harness::crowd`).
    Crowd {
        count: u8,
        owned: bool,
        hold: bool,
        then: u8,
    },
    /// Poll one future; `fresh` polls with a new waker.
    Poll {
        fut: u8,
        fresh: bool,
    },
    /// Poll every future whose waker was woken, like an executor.
    PollWoken,
    /// Drop a future wherever it is in its life.
    DropFut {
        fut: u8,
    },
    TryAcquire {
        n: Amount,
        owned: bool,
    },
    DropPermit {
        permit: u8,
    },
    ForgetPermit {
        permit: u8,
    },
    Split {
        permit: u8,
        n: Amount,
    },
    Merge {
        a: u8,
        b: u8,
    },
    AddPermits {
        n: Amount,
    },
    ForgetPermits {
        n: Amount,
    },
    Release {
        n: Amount,
    },
    Close,
}

impl<'a> Arbitrary<'a> for Op {
    /// Weighted, so that random bytes reach deep states: `close` ends most
    /// of the interesting behaviour and is rare; creating and polling
    /// futures is common.
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u8::arbitrary(u)? {
            0..=35 => Op::Acquire {
                n: u.arbitrary()?,
                owned: u.arbitrary()?,
            },
            36..=39 => Op::Crowd {
                count: u.arbitrary()?,
                owned: u.arbitrary()?,
                hold: u.arbitrary()?,
                then: u.arbitrary()?,
            },
            40..=89 => Op::Poll {
                fut: u.arbitrary()?,
                fresh: u8::arbitrary(u)? < 32,
            },
            90..=109 => Op::PollWoken,
            110..=129 => Op::DropFut {
                fut: u.arbitrary()?,
            },
            130..=154 => Op::TryAcquire {
                n: u.arbitrary()?,
                owned: u.arbitrary()?,
            },
            155..=184 => Op::DropPermit {
                permit: u.arbitrary()?,
            },
            185..=199 => Op::ForgetPermit {
                permit: u.arbitrary()?,
            },
            200..=211 => Op::Split {
                permit: u.arbitrary()?,
                n: u.arbitrary()?,
            },
            212..=223 => Op::Merge {
                a: u.arbitrary()?,
                b: u.arbitrary()?,
            },
            224..=231 => Op::AddPermits { n: u.arbitrary()? },
            232..=243 => Op::ForgetPermits { n: u.arbitrary()? },
            244..=253 => Op::Release { n: u.arbitrary()? },
            254..=255 => Op::Close,
        })
    }
}

enum FutHandle<'s> {
    Borrowed(Pin<Box<Acquire<'s>>>),
    Owned(Pin<Box<AcquireOwned>>),
}

enum PermitHandle<'s> {
    Borrowed(Permit<'s>),
    Owned(OwnedPermit),
}

impl PermitHandle<'_> {
    fn num_permits(&self) -> usize {
        match self {
            PermitHandle::Borrowed(p) => p.num_permits(),
            PermitHandle::Owned(p) => p.num_permits(),
        }
    }
    fn forget(self) {
        match self {
            PermitHandle::Borrowed(p) => p.forget(),
            PermitHandle::Owned(p) => p.forget(),
        }
    }
    fn split(&mut self, n: usize) -> Option<Self> {
        match self {
            PermitHandle::Borrowed(p) => p.split(n).map(PermitHandle::Borrowed),
            PermitHandle::Owned(p) => p.split(n).map(PermitHandle::Owned),
        }
    }
}

/// Where a future is in its life, according to the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Created, never polled.
    Idle,
    /// In the wait queue.
    Queued,
    /// Granted all its permits and unlinked; not polled since.
    Granted,
    /// Unlinked by `close`; not polled since.
    ClosedOut,
    /// Returned `Ready`.
    Done,
}

struct Fut<'s> {
    id: u64,
    handle: FutHandle<'s>,
    n: usize,
    stage: Stage,
    /// Every waker this future was polled with, and how often each must have
    /// been woken.
    wakers: Vec<(Arc<WakeCounter>, usize)>,
    /// The waker the semaphore holds (index into `wakers`).
    registered: Option<usize>,
    /// Wake count of the registered waker at the last `PollWoken`.
    seen: usize,
}

struct Held<'s> {
    handle: PermitHandle<'s>,
    n: usize,
}

struct Model {
    kind: Kind,
    capacity: usize,
    /// Every permit the semaphore owns: available, held, collected, granted,
    /// and (bounded) detached.
    total: usize,
    available: usize,
    detached: usize,
    closed: bool,
    /// `(future id, collected)` in FIFO order.
    queue: VecDeque<(u64, usize)>,
}

struct Harness<'s> {
    sem: &'s Sem,
    model: Model,
    futs: Vec<Fut<'s>>,
    permits: Vec<Held<'s>>,
    next_id: u64,
}

/// Runs one input. Panics on any disagreement with the model.
pub fn run(kind: Kind, data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(initial) = Amount::arbitrary(&mut u) else {
        return;
    };
    // A quarter of the runs start with 17 to 80 permits: a bounded
    // semaphore's capacity must exceed one wake batch for a single release
    // to complete more waiters than that.
    let initial = match initial.0 {
        0..=63 => 17 + usize::from(initial.0),
        _ => initial.get(MAX).min(MAX),
    };
    let sem = match kind {
        Kind::Plain => Sem::Plain(Arc::new(Semaphore::new(initial))),
        Kind::Bounded => Sem::Bounded(Arc::new(BoundedSemaphore::new(initial))),
    };
    let mut h = Harness {
        sem: &sem,
        model: Model {
            kind,
            capacity: match kind {
                Kind::Plain => MAX,
                Kind::Bounded => initial,
            },
            total: initial,
            available: initial,
            detached: 0,
            closed: false,
            queue: VecDeque::new(),
        },
        futs: Vec::new(),
        permits: Vec::new(),
        next_id: 0,
    };
    h.check();
    // Every remaining byte goes into operations (no length prefix or
    // continuation flags), so random bytes decode into long sequences.
    while let Ok(op) = Op::arbitrary(&mut u) {
        h.step(op);
        h.check();
        if u.is_empty() {
            break;
        }
    }
    h.finish();
}

fn pick(index: u8, len: usize) -> Option<usize> {
    (len > 0).then(|| usize::from(index) % len)
}

impl<'s> Harness<'s> {
    fn step(&mut self, op: Op) {
        let cap = self.model.capacity;
        match op {
            Op::Acquire { n, owned } => {
                if self.futs.len() >= MAX_LIVE {
                    return;
                }
                let n = n.get(cap);
                let handle = if owned {
                    FutHandle::Owned(Box::pin(self.sem.acquire_many_owned(n)))
                } else {
                    FutHandle::Borrowed(Box::pin(self.sem.acquire_many(n)))
                };
                self.futs.push(Fut {
                    id: self.next_id,
                    handle,
                    n,
                    stage: Stage::Idle,
                    wakers: Vec::new(),
                    registered: None,
                    seen: 0,
                });
                self.next_id += 1;
            }
            Op::Crowd {
                count,
                owned,
                hold,
                then,
            } => self.crowd(count, owned, hold, then),
            Op::Poll { fut, fresh } => {
                if let Some(i) = pick(fut, self.futs.len()) {
                    self.poll(i, fresh);
                }
            }
            Op::PollWoken => {
                let mut i = 0;
                while i < self.futs.len() {
                    let f = &self.futs[i];
                    let woken = f.registered.is_some_and(|r| f.wakers[r].0.get() > f.seen);
                    // `poll` may remove the future (when it completes).
                    if woken && !self.poll(i, false) {
                        continue;
                    }
                    i += 1;
                }
            }
            Op::DropFut { fut } => {
                if let Some(i) = pick(fut, self.futs.len()) {
                    self.drop_fut(i);
                }
            }
            Op::TryAcquire { n, owned } => self.try_acquire(n.get(cap), owned),
            Op::DropPermit { permit } => {
                if let Some(i) = pick(permit, self.permits.len()) {
                    self.drop_permit(i);
                }
            }
            Op::ForgetPermit { permit } => {
                if let Some(i) = pick(permit, self.permits.len()) {
                    let held = self.permits.swap_remove(i);
                    held.handle.forget();
                    match self.model.kind {
                        Kind::Plain => self.model.total -= held.n,
                        Kind::Bounded => self.model.detached += held.n,
                    }
                }
            }
            Op::Split { permit, n } => {
                if self.permits.len() >= MAX_LIVE {
                    return;
                }
                if let Some(i) = pick(permit, self.permits.len()) {
                    let n = n.get(cap);
                    let held = &mut self.permits[i];
                    match held.handle.split(n) {
                        Some(part) => {
                            assert!(n <= held.n, "split({n}) of {} succeeded", held.n);
                            held.n -= n;
                            assert_eq!(part.num_permits(), n);
                            self.permits.push(Held { handle: part, n });
                        }
                        None => assert!(n > held.n, "split({n}) of {} failed", held.n),
                    }
                }
            }
            Op::Merge { a, b } => {
                let (Some(a), Some(b)) = (pick(a, self.permits.len()), pick(b, self.permits.len()))
                else {
                    return;
                };
                if a == b {
                    return;
                }
                let same_kind = matches!(
                    (&self.permits[a].handle, &self.permits[b].handle),
                    (PermitHandle::Borrowed(_), PermitHandle::Borrowed(_))
                        | (PermitHandle::Owned(_), PermitHandle::Owned(_))
                );
                if !same_kind {
                    return;
                }
                let other = self.permits.swap_remove(b);
                // `swap_remove` moved the last element into `b`.
                let a = if a == self.permits.len() { b } else { a };
                let target = &mut self.permits[a];
                match (&mut target.handle, other.handle) {
                    (PermitHandle::Borrowed(x), PermitHandle::Borrowed(y)) => x.merge(y),
                    (PermitHandle::Owned(x), PermitHandle::Owned(y)) => x.merge(y),
                    _ => unreachable!(),
                }
                target.n += other.n;
            }
            Op::AddPermits { n } => {
                let Sem::Plain(sem) = self.sem else { return };
                let n = n.get(cap);
                // Past MAX_PERMITS is a documented panic (tests/bad_input.rs).
                if n > MAX - self.model.total {
                    return;
                }
                sem.add_permits(n);
                self.model.total += n;
                self.model.release(&mut self.futs, n);
            }
            Op::ForgetPermits { n } => {
                let Sem::Plain(sem) = self.sem else { return };
                let n = n.get(cap);
                let expected = n.min(self.model.available);
                assert_eq!(sem.forget_permits(n), expected, "forget_permits({n})");
                self.model.available -= expected;
                self.model.total -= expected;
            }
            Op::Release { n } => {
                let Sem::Bounded(sem) = self.sem else { return };
                let n = n.get(cap);
                let got = sem.release(n);
                if n > self.model.detached {
                    let err = got.expect_err("over-release accepted");
                    assert_eq!(
                        (err.released, err.detached),
                        (n, self.model.detached),
                        "OverRelease fields"
                    );
                } else {
                    got.expect("release of detached permits refused");
                    self.model.detached -= n;
                    self.model.release(&mut self.futs, n);
                }
            }
            Op::Close => {
                self.sem.close();
                self.model.close(&mut self.futs);
            }
        }
    }

    /// `try_acquire_many(n)` (owned or not), checked against the model.
    fn try_acquire(&mut self, n: usize, owned: bool) {
        if self.permits.len() >= MAX_LIVE {
            return;
        }
        let expected = self.model.try_acquire(n);
        let got = if owned {
            self.sem.try_acquire_many_owned(n).map(PermitHandle::Owned)
        } else {
            self.sem.try_acquire_many(n).map(PermitHandle::Borrowed)
        };
        match (expected, got) {
            (Ok(()), Ok(p)) => {
                assert_eq!(p.num_permits(), n);
                self.permits.push(Held { handle: p, n });
            }
            (Err(e), Err(g)) => assert_eq!(e, g, "try_acquire_many({n})"),
            (e, g) => panic!(
                "try_acquire_many({n}): model says {e:?}, semaphore says {:?}",
                g.map(|p| p.num_permits())
            ),
        }
    }

    /// Drops held permit `i`: its permits go to the queue, in order.
    fn drop_permit(&mut self, i: usize) {
        let held = self.permits.swap_remove(i);
        drop(held.handle);
        self.model.release(&mut self.futs, held.n);
    }

    /// Queues 17 to 40 single-permit futures (up to `MAX_LIVE`), after
    /// taking every available permit as one permit if `hold`, then ends
    /// with one large release, a `close`, or nothing: more waiters than one
    /// wake batch (16) are completed or failed by one call.
    fn crowd(&mut self, count: u8, owned: bool, hold: bool, then: u8) {
        if hold {
            self.try_acquire(self.model.available, owned);
        }
        for _ in 0..17 + count % 24 {
            if self.futs.len() >= MAX_LIVE {
                break;
            }
            self.step(Op::Acquire {
                n: Amount(1),
                owned,
            });
            self.poll(self.futs.len() - 1, false);
        }
        match then % 4 {
            0 => {}
            1 => match self.sem {
                Sem::Plain(sem) => {
                    let n = self.model.queue.len().min(MAX - self.model.total);
                    sem.add_permits(n);
                    self.model.total += n;
                    self.model.release(&mut self.futs, n);
                }
                Sem::Bounded(sem) => {
                    let n = self.model.detached;
                    sem.release(n).expect("release of every detached permit");
                    self.model.detached = 0;
                    self.model.release(&mut self.futs, n);
                }
            },
            2 => self.step(Op::Close),
            _ => {
                let largest = (0..self.permits.len()).max_by_key(|&i| self.permits[i].n);
                if let Some(i) = largest {
                    self.drop_permit(i);
                }
            }
        }
    }

    /// Polls future `i`; returns whether it is still there afterwards.
    fn poll(&mut self, i: usize, fresh: bool) -> bool {
        let f = &mut self.futs[i];
        if fresh || f.wakers.is_empty() {
            f.wakers.push((Arc::new(WakeCounter::default()), 0));
        }
        let w = f.wakers.len() - 1;
        let waker = Waker::from(Arc::clone(&f.wakers[w].0));
        let mut cx = Context::from_waker(&waker);
        let got = match &mut f.handle {
            FutHandle::Borrowed(fut) => fut.as_mut().poll(&mut cx).map_ok(PermitHandle::Borrowed),
            FutHandle::Owned(fut) => fut.as_mut().poll(&mut cx).map_ok(PermitHandle::Owned),
        };
        let expected = self.model.poll(f);
        let n = f.n;
        match (expected, got) {
            (Poll::Pending, Poll::Pending) => {
                f.registered = Some(w);
                f.seen = f.wakers[w].0.get();
                true
            }
            (Poll::Ready(Ok(())), Poll::Ready(Ok(p))) => {
                assert_eq!(p.num_permits(), n, "granted permit size");
                self.futs.remove(i);
                self.permits.push(Held { handle: p, n });
                false
            }
            (Poll::Ready(Err(e)), Poll::Ready(Err(g))) => {
                assert_eq!(e, g, "acquire_many({n}) error");
                self.futs.remove(i);
                false
            }
            (e, g) => panic!(
                "poll of acquire_many({n}): model says {e:?}, semaphore says {:?}",
                g.map(|r| r.map(|p| p.num_permits()))
            ),
        }
    }

    fn drop_fut(&mut self, i: usize) {
        let f = self.futs.remove(i);
        let (id, n, stage) = (f.id, f.n, f.stage);
        drop(f.handle);
        match stage {
            Stage::Idle | Stage::ClosedOut | Stage::Done => {}
            Stage::Granted => self.model.release(&mut self.futs, n),
            Stage::Queued => {
                let pos = self
                    .model
                    .queue
                    .iter()
                    .position(|&(q, _)| q == id)
                    .expect("queued future not in the model's queue");
                let (_, collected) = self.model.queue.remove(pos).unwrap();
                assert!(collected == 0 || pos == 0, "only the head collects");
                self.model.release(&mut self.futs, collected);
            }
        }
    }

    fn check(&self) {
        let m = &self.model;
        assert_eq!(
            self.sem.available_permits(),
            m.available,
            "available_permits"
        );
        assert_eq!(self.sem.waiters(), m.queue.len(), "waiters");
        assert_eq!(self.sem.is_closed(), m.closed, "is_closed");
        if let Sem::Bounded(b) = self.sem {
            assert_eq!(b.detached(), m.detached, "detached");
            assert_eq!(b.in_use(), m.capacity - m.available, "in_use");
            assert_eq!(b.capacity(), m.capacity, "capacity");
        }
        assert!(
            m.queue.is_empty() || m.available == 0,
            "permits idle while queued"
        );
        let mut held = 0usize;
        for p in &self.permits {
            assert_eq!(p.handle.num_permits(), p.n, "permit size");
            held += p.n;
        }
        let collected: usize = m.queue.iter().map(|&(_, c)| c).sum();
        let mut granted = 0usize;
        for f in &self.futs {
            for (k, (counter, expected)) in f.wakers.iter().enumerate() {
                assert_eq!(
                    counter.get(),
                    *expected,
                    "wake count of waker {k} of future {} (acquire_many({}), {:?})",
                    f.id,
                    f.n,
                    f.stage
                );
            }
            if f.stage == Stage::Granted {
                granted += f.n;
            }
        }
        assert_eq!(
            m.available + held + collected + granted + m.detached,
            m.total,
            "conservation: available {} + held {held} + collected {collected} + granted {granted} + detached {}",
            m.available,
            m.detached
        );
    }

    /// Drops everything and checks that every permit is back and usable.
    fn finish(mut self) {
        // Drop futures newest first (the reverse of most tests' order).
        while let Some(i) = self.futs.len().checked_sub(1) {
            self.drop_fut(i);
            self.check();
        }
        while let Some(held) = self.permits.pop() {
            drop(held.handle);
            self.model.release(&mut self.futs, held.n);
            self.check();
        }
        let m = &self.model;
        assert_eq!(self.sem.waiters(), 0);
        assert_eq!(self.sem.available_permits(), m.total - m.detached);
        if let Sem::Bounded(b) = self.sem {
            b.release(m.detached)
                .expect("release of every detached permit");
            assert_eq!(b.available_permits(), m.capacity);
            assert!(b.release(1).is_err());
        }
        let all = self.sem.available_permits();
        let again = self.sem.try_acquire_many(all);
        if m.closed {
            assert_eq!(again.unwrap_err(), TryAcquireError::Closed);
        } else {
            assert_eq!(again.expect("all permits back").num_permits(), all);
        }
    }
}

impl Model {
    fn try_acquire(&mut self, n: usize) -> Result<(), TryAcquireError> {
        if n > self.capacity {
            return Err(TryAcquireError::ExceedsCapacity {
                requested: n,
                capacity: self.capacity,
            });
        }
        if self.closed {
            return Err(TryAcquireError::Closed);
        }
        if n == 0 {
            return Ok(());
        }
        if !self.queue.is_empty() || self.available < n {
            return Err(TryAcquireError::NoPermits);
        }
        self.available -= n;
        Ok(())
    }

    /// What polling `f` must return; updates the model accordingly.
    fn poll(&mut self, f: &mut Fut<'_>) -> Poll<Result<(), AcquireError>> {
        let n = f.n;
        let out = match f.stage {
            Stage::Idle => match self.try_acquire(n) {
                Ok(()) => Poll::Ready(Ok(())),
                Err(TryAcquireError::Closed) => Poll::Ready(Err(AcquireError::Closed)),
                Err(TryAcquireError::ExceedsCapacity {
                    requested,
                    capacity,
                }) => Poll::Ready(Err(AcquireError::ExceedsCapacity {
                    requested,
                    capacity,
                })),
                Err(_) => {
                    // Join the queue; the first waiter takes what is there.
                    let taken = if self.queue.is_empty() {
                        self.available
                    } else {
                        0
                    };
                    self.available -= taken;
                    self.queue.push_back((f.id, taken));
                    f.stage = Stage::Queued;
                    Poll::Pending
                }
            },
            Stage::Queued => Poll::Pending,
            Stage::Granted => Poll::Ready(Ok(())),
            Stage::ClosedOut => Poll::Ready(Err(AcquireError::Closed)),
            Stage::Done => unreachable!("finished futures are removed"),
        };
        if out.is_ready() {
            f.stage = Stage::Done;
        }
        out
    }

    /// `n` permits come back: hand them to the queue head(s) in order.
    fn release(&mut self, futs: &mut [Fut<'_>], mut n: usize) {
        while n > 0 {
            let Some(&mut (id, ref mut collected)) = self.queue.front_mut() else {
                break;
            };
            let f = futs.iter_mut().find(|f| f.id == id).expect("queued future");
            let missing = f.n - *collected;
            if n < missing {
                *collected += n;
                return;
            }
            n -= missing;
            self.queue.pop_front();
            f.stage = Stage::Granted;
            wake(f);
        }
        self.available += n;
    }

    fn close(&mut self, futs: &mut [Fut<'_>]) {
        self.closed = true;
        while let Some((id, collected)) = self.queue.pop_front() {
            let f = futs.iter_mut().find(|f| f.id == id).expect("queued future");
            f.stage = Stage::ClosedOut;
            wake(f);
            self.available += collected;
        }
    }
}

fn wake(f: &mut Fut<'_>) {
    let r = f.registered.expect("a queued future has a waker");
    f.wakers[r].1 += 1;
}
