//! Pieces shared by the harnesses that drive `run` futures (`limiter.rs`,
//! `keyed.rs`): the work a `run` wraps, which the harness finishes by hand,
//! the index picker, and the rate bound every admission is checked
//! against.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use arbitrary::{Arbitrary, Unstructured};
use limiters::Quota;

use crate::wake_counter::WakeCounter;

/// The state of a [`Work`], shared with the harness.
#[derive(Default)]
pub struct WorkState {
    /// Polled at least once: the `run` admitted it.
    pub started: bool,
    /// Finished by the harness ([`finish`]).
    pub done: bool,
    waker: Option<Waker>,
}

/// The work inside a `run`: pending until the harness finishes it.
pub struct Work(pub Arc<Mutex<WorkState>>);

impl Future for Work {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // Cloned before the lock, and the waker it replaces dropped after.
        let waker = cx.waker().clone();
        let mut s = self.0.lock().unwrap();
        s.started = true;
        if s.done {
            Poll::Ready(())
        } else {
            let old = s.waker.replace(waker);
            drop(s);
            drop(old);
            Poll::Pending
        }
    }
}

/// Finishes `work` and wakes the `run` polling it.
pub fn finish(work: &Mutex<WorkState>) {
    let waker = {
        let mut s = work.lock().unwrap();
        s.done = true;
        s.waker.take()
    };
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// An index below `len` read from the input, or `None` if `len` is 0.
pub fn pick(u: &mut Unstructured<'_>, len: usize) -> arbitrary::Result<Option<usize>> {
    let i = usize::from(u8::arbitrary(u)?);
    Ok((len > 0).then(|| i % len))
}

/// The rate bound of `q` on admissions `(instant ns, cells)` in the order
/// they happened, checked for every run of admissions that ends with the
/// last: those from `#i` to the last, admitted in the window from the one
/// before `#i` (or 0) to the last, number at most
/// `burst + window * cells / period`.
pub fn check_window(admissions: &[(u64, u32)], q: Quota) {
    let (cells, period, burst) = (
        u128::from(q.cells()),
        q.period().as_nanos(),
        u128::from(q.burst()),
    );
    let j = admissions.len() - 1;
    let last = admissions[j].0;
    let mut sum = 0u128;
    for i in (0..=j).rev() {
        sum += u128::from(admissions[i].1);
        let from = if i == 0 { 0 } else { admissions[i - 1].0 };
        let bound = burst + u128::from(last - from) * cells / period;
        assert!(
            sum <= bound,
            "{sum} cells admitted from #{i} to #{j} ({from}..={last} ns) under {q:?}; bound {bound}"
        );
    }
}

/// One future a harness polls by hand: its counting waker, the wake count
/// at its last poll, and whether that poll returned `Pending`.
pub struct Tracker {
    waker: Waker,
    counter: Arc<WakeCounter>,
    seen: usize,
    pending: bool,
}

impl Default for Tracker {
    fn default() -> Self {
        Self::new()
    }
}

impl Tracker {
    pub fn new() -> Self {
        let counter = Arc::new(WakeCounter::default());
        Tracker {
            waker: Waker::from(Arc::clone(&counter)),
            counter,
            seen: 0,
            pending: false,
        }
    }

    /// Woken since its last poll.
    pub fn woken(&self) -> bool {
        self.counter.get() > self.seen
    }

    /// Its last poll returned `Pending`.
    pub fn pending(&self) -> bool {
        self.pending
    }

    /// The context of a poll about to happen: notes the wake count now.
    /// Call [`polled`](Self::polled) with the result.
    pub fn context(&mut self) -> Context<'_> {
        self.seen = self.counter.get();
        Context::from_waker(&self.waker)
    }

    /// Records whether the poll returned `Pending`.
    pub fn polled(&mut self, pending: bool) {
        self.pending = pending;
    }
}

/// A harness that polls its live futures by hand, as an executor would.
pub trait Executor {
    /// The tracker of future `i`, or `None` past the last.
    fn tracker(&self, i: usize) -> Option<&Tracker>;
    /// Polls future `i`; returns whether it completed (and was removed by
    /// `swap_remove`, so index `i` now holds another future).
    fn poll_one(&mut self, i: usize) -> bool;

    /// Polls every future for which `due` holds; returns how many.
    fn poll_each(&mut self, due: fn(&Tracker) -> bool) -> usize {
        let mut polled = 0;
        let mut i = 0;
        while let Some(t) = self.tracker(i) {
            if due(t) {
                polled += 1;
                if self.poll_one(i) {
                    continue;
                }
            }
            i += 1;
        }
        polled
    }

    /// Polls every woken future; returns how many.
    fn poll_woken(&mut self) -> usize {
        self.poll_each(Tracker::woken)
    }

    /// Polls every future whose last poll (if any) was not `Pending`:
    /// those never polled yet; returns how many.
    fn poll_fresh(&mut self) -> usize {
        self.poll_each(|t| !t.pending())
    }
}
