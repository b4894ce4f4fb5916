//! # Implementation details
//!
//! The semaphore is one atomic word plus a FIFO list of waiters behind a
//! small lock.
//!
//! The word holds the available permits shifted left by two, a `QUEUED` bit
//! (the wait list is not empty) and a `CLOSED` bit. One invariant carries the
//! whole design: **while `QUEUED` is set, no permit is available**. Whatever
//! a release brings goes straight to the waiters at the head of the queue
//! (direct hand-off), and only what is left once the queue is empty becomes
//! available again. From that follow the fast paths and the fairness:
//!
//! * `try_acquire` and the first poll of `acquire` are one compare-and-swap
//!   on the word, which fails whenever anyone is queued: no barging.
//! * A release while `QUEUED` is clear is one compare-and-swap, no lock.
//! * A release while `QUEUED` is set takes the lock and hands the permits to
//!   the head waiter(s). The head keeps what it was handed even when it is
//!   not yet enough (head-of-line: a queued `acquire_many(5)` collects
//!   permits until it has 5, and nobody behind it overtakes it). A waiter
//!   whose request is complete is unlinked and woken; nobody else is.
//!
//! Each waiter is a node stored inside its `Acquire` future (pinned, so its
//! address is stable), linked into the crate's one intrusive list
//! ([`LinkedList`], through the node's [`Pointers`]): waiting allocates
//! nothing. The node's `remaining` counter is written under the lock
//! and read lock-free by the future: `0` means granted and unlinked,
//! `CLOSED_NODE` means the semaphore was closed and the node unlinked. Any
//! other value means the node is linked, and the lock must be taken to
//! touch it.
//!
//! Dropping a future undoes exactly what it holds: a queued node is unlinked
//! and the permits it had collected are released (handed to the next
//! waiters); a granted node that was never turned into a permit releases all
//! of them.

use core::cell::Cell;
use core::marker::PhantomPinned;
use core::pin::Pin;
use core::ptr::NonNull;
use core::task::{Context, Poll, Waker};

use crate::error::{AcquireError, TryAcquireError};
use crate::stats::Counts;
use crate::sync::{AtomicUsize, Mutex, MutexGuard, Ordering, UnsafeCell};
use crate::wait_list::{Link, LinkedList, Pointers, WakeBatch, WakerSlot};

const CLOSED: usize = 0b01;
const QUEUED: usize = 0b10;
const SHIFT: usize = 2;

/// The largest number of permits a semaphore can hold.
pub(crate) const MAX_PERMITS: usize = usize::MAX >> SHIFT;

/// For the `COUNT` parameter of the acquiring methods: whether a grant is
/// counted in the semaphore's statistics. A `Semaphore`'s own futures
/// count; the composite limiter's stages, which take its inner semaphores
/// on every `run` (statistics nobody reads: the limiter counts its own
/// admissions), do not. A parameter fixed at compile time, so neither pays
/// a test for the other.
pub(crate) const COUNTED: bool = true;
/// See [`COUNTED`].
pub(crate) const UNCOUNTED: bool = false;

/// `remaining` of a node that was unlinked by `close`.
const CLOSED_NODE: usize = usize::MAX;

/// The untyped core shared by `Semaphore` and `BoundedSemaphore`.
pub(crate) struct RawSemaphore {
    state: AtomicUsize,
    waiters: Mutex<WaitList>,
    /// Every permit: available, held, or collected by waiters. `forget`
    /// takes permits out of it; `add_permits` (plain) and
    /// `BoundedSemaphore::release` put them back, the former keeping it at
    /// most `MAX_PERMITS` (so giving a permit back can never overflow the
    /// state word), the latter at most `capacity` (so a bounded
    /// semaphore's detached permits are `capacity - total`).
    total: AtomicUsize,
    /// Largest request that can ever be served: `MAX_PERMITS` for a plain
    /// semaphore, the capacity of a bounded one.
    capacity: usize,
    pub(crate) counters: Counts,
}

/// The FIFO of queued acquirers: the crate's one intrusive list.
type WaitList = LinkedList<Waiter>;

/// One queued acquirer. Lives inside an acquire future, pinned.
pub(crate) struct Waiter {
    /// Permits still missing. Written only under the lock; read lock-free.
    remaining: AtomicUsize,
    /// Permits asked for in total. Read under the lock by `close`.
    num: Cell<usize>,
    /// Where the waiter is in its life. Only the owning future touches it.
    stage: Cell<Stage>,
    /// Guarded by the list's lock. A `WakerSlot`, not an `Option<Waker>`,
    /// and a word-sized `Stage`: every byte of a new node is defined, so the
    /// future is built with plain stores (see `WakerSlot`).
    waker: UnsafeCell<WakerSlot>,
    /// Guarded by the list's lock.
    pointers: Pointers<Waiter>,
    _pin: PhantomPinned,
}

// SAFETY: `num` and `stage` are `Cell`s, but `stage` is only touched through
// `&mut`/`Pin<&mut>` access by the owning future, and `num` is written by the
// owner before the node is linked (under the lock) and read by others only
// under the lock. Everything else is atomic or guarded by the lock.
unsafe impl Sync for Waiter {}
// SAFETY: see above; moving a node between threads moves plain data. While a
// node is linked it is pinned and cannot move at all.
unsafe impl Send for Waiter {}

// SAFETY: `pointers` is a field of the node, the same on every call, and
// only the list touches it.
unsafe impl Link for Waiter {
    #[inline]
    fn pointers(&self) -> &Pointers<Self> {
        &self.pointers
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(usize)] // no padding bytes in the node (see `Waiter::waker`)
enum Stage {
    /// Not polled yet: holds nothing, is in no list.
    Idle,
    /// Linked into the wait list (or just unlinked by a grant or close that
    /// `remaining` reports).
    Queued,
    /// Finished: the permits were passed on to a `Permit`, or an error was
    /// returned. Holds nothing.
    Done,
}

impl RawSemaphore {
    crate::sync::const_fn! {
        pub(crate) fn new(permits: usize, capacity: usize) -> Self {
            Self {
                state: AtomicUsize::new(permits << SHIFT),
                waiters: Mutex::new(LinkedList::new()),
                total: AtomicUsize::new(permits),
                capacity,
                counters: Counts::new(),
            }
        }
    }

    /// Permits held or collected by waiters, not counting forgotten ones
    /// (a statistic: two loads, not one snapshot).
    pub(crate) fn in_use(&self) -> usize {
        self.total
            .load(Ordering::Relaxed)
            .saturating_sub(self.available_permits())
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn available_permits(&self) -> usize {
        self.state.load(Ordering::Acquire) >> SHIFT
    }

    /// Whether every permit of a one-permit semaphore is available: nobody
    /// holds it, nobody is queued, and it is not closed.
    #[inline]
    pub(crate) fn is_idle(&self) -> bool {
        self.state.load(Ordering::Acquire) == 1 << SHIFT
    }

    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) & CLOSED != 0
    }

    pub(crate) fn waiters(&self) -> usize {
        self.waiters.lock().len()
    }

    /// Permits taken out by `forget` and not given back: `capacity - total`
    /// (meaningful for a bounded semaphore only).
    pub(crate) fn detached(&self) -> usize {
        self.capacity - self.total.load(Ordering::Acquire)
    }

    fn check_capacity(&self, n: usize) -> Result<(), AcquireError> {
        if n > self.capacity {
            Err(AcquireError::ExceedsCapacity {
                requested: n,
                capacity: self.capacity,
            })
        } else {
            Ok(())
        }
    }

    /// Takes `n` permits if nobody is queued and enough are available.
    ///
    /// Inlined into the caller: the common case is one load and one CAS.
    /// Every other case (zero, over capacity, closed, queued, short, or a
    /// lost CAS race) goes to [`try_acquire_slow`](Self::try_acquire_slow),
    /// which decides it from scratch.
    #[inline]
    pub(crate) fn try_acquire(&self, n: usize) -> Result<(), TryAcquireError> {
        if self.try_acquire_fast::<COUNTED>(n) {
            Ok(())
        } else {
            self.try_acquire_slow::<COUNTED>(n)
                .inspect_err(|_| self.counters.deny())
        }
    }

    /// One attempt at the common case: `1 <= n <= capacity`, not closed,
    /// nobody queued, enough available. `false` decides nothing.
    #[inline]
    pub(crate) fn try_acquire_fast<const COUNT: bool>(&self, n: usize) -> bool {
        if n == 0 || n > self.capacity {
            return false;
        }
        let state = self.state.load(Ordering::Relaxed);
        // `state >> SHIFT >= n` with neither flag set.
        state & (CLOSED | QUEUED) == 0
            && state >> SHIFT >= n
            // Acquire on success: synchronizes with the Release of whoever
            // returned these permits, like a lock acquisition would.
            && self
                .state
                .compare_exchange_weak(
                    state,
                    state - (n << SHIFT),
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_ok()
            && {
                if COUNT {
                    self.counters.admit();
                }
                true
            }
    }

    #[inline(never)]
    fn try_acquire_slow<const COUNT: bool>(&self, n: usize) -> Result<(), TryAcquireError> {
        self.check_capacity(n)?;
        if n == 0 {
            // Nothing to take from anyone, so no queue to respect.
            return if self.is_closed() {
                Err(TryAcquireError::Closed)
            } else {
                if COUNT {
                    self.counters.admit();
                }
                Ok(())
            };
        }
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & CLOSED != 0 {
                return Err(TryAcquireError::Closed);
            }
            if state & QUEUED != 0 || state >> SHIFT < n {
                return Err(TryAcquireError::NoPermits);
            }
            // Acquire on success: as in `try_acquire_fast`.
            match self.state.compare_exchange_weak(
                state,
                state - (n << SHIFT),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    if COUNT {
                        self.counters.admit();
                    }
                    return Ok(());
                }
                Err(actual) => state = actual,
            }
        }
    }

    /// Adds `n` new permits to a plain semaphore.
    ///
    /// Panics, before changing anything, if the semaphore would then have
    /// more than `MAX_PERMITS` permits in all.
    #[track_caller]
    pub(crate) fn add_permits(&self, n: usize) {
        let mut total = self.total.load(Ordering::Relaxed);
        loop {
            assert!(
                n <= MAX_PERMITS - total,
                "adding {n} permits to {total} would exceed Semaphore::MAX_PERMITS ({MAX_PERMITS})"
            );
            // Relaxed: `total` only bounds the count; the permits themselves
            // are published by `release`.
            match self.total.compare_exchange_weak(
                total,
                total + n,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => total = actual,
            }
        }
        self.release(n);
    }

    /// Gives `n` permits back, handing them to queued waiters first. Cannot
    /// overflow: available + `n` <= total <= `MAX_PERMITS`.
    ///
    /// Inlined into the caller (a permit's `drop`): the common case, nobody
    /// queued and no overflow, is one load and one CAS. Everything else goes
    /// to [`release_slow`](Self::release_slow).
    #[inline]
    pub(crate) fn release(&self, n: usize) {
        let state = self.state.load(Ordering::Relaxed);
        if n != 0
            && state & QUEUED == 0
            // Release: publishes the holder's writes to the next acquirer's
            // Acquire CAS. No waiter exists, so no lock is needed.
            && self
                .state
                .compare_exchange_weak(
                    state,
                    state + (n << SHIFT),
                    Ordering::Release,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return;
        }
        self.release_slow(n);
    }

    #[inline(never)]
    fn release_slow(&self, n: usize) {
        if n == 0 {
            return;
        }
        let mut state = self.state.load(Ordering::Relaxed);
        while state & QUEUED == 0 {
            debug_assert!(
                n <= MAX_PERMITS - (state >> SHIFT),
                "total exceeds MAX_PERMITS"
            );
            // Release: publishes the holder's writes to the next acquirer's
            // Acquire CAS. No waiter exists, so no lock is needed.
            match self.state.compare_exchange_weak(
                state,
                state + (n << SHIFT),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => state = actual,
            }
        }
        let list = self.waiters.lock();
        self.hand_off(list, n);
    }

    /// Gives `n` permits to the head of the queue, in order, with the lock
    /// held; what is left once the queue is empty becomes available. Wakes
    /// exactly the waiters whose request is complete, outside the lock.
    fn hand_off<'a>(&'a self, mut list: MutexGuard<'a, WaitList>, mut n: usize) {
        let mut wakers = WakeBatch::new();
        loop {
            while n > 0 && !wakers.is_full() {
                let Some(head) = list.head() else { break };
                // SAFETY: `head` is linked, and linked nodes stay valid and
                // pinned until they are unlinked under this lock.
                let node = unsafe { head.as_ref() };
                // Relaxed: `remaining` is only written under this lock.
                let need = node.remaining.load(Ordering::Relaxed);
                if n < need {
                    // Release: the owner reads it lock-free (only to see that
                    // it is not granted yet; no data rides on it).
                    node.remaining.store(need - n, Ordering::Release);
                    n = 0;
                    break;
                }
                n -= need;
                // SAFETY: `head` is linked and we hold the lock.
                unsafe { list.remove(head) };
                if let Some(waker) = node.take_waker() {
                    wakers.push(waker);
                }
                // Release: once the owner sees 0 (Acquire) the node is out of
                // the list and this thread touches it no more.
                node.remaining.store(0, Ordering::Release);
            }
            if list.head().is_none() {
                self.add_available(n);
                break;
            }
            if n == 0 || !wakers.is_full() {
                break;
            }
            // More waiters to serve than one batch holds: wake this batch
            // outside the lock, then continue. `QUEUED` stays set meanwhile,
            // so nobody can take the permits still in hand.
            drop(list);
            wakers.wake_all();
            list = self.waiters.lock();
        }
        drop(list);
        wakers.wake_all();
    }

    /// Adds `n` available permits and clears `QUEUED`; the caller holds the
    /// lock and has just emptied (or found empty) the queue.
    fn add_available(&self, n: usize) {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            debug_assert!(
                n <= MAX_PERMITS - (state >> SHIFT),
                "total exceeds MAX_PERMITS"
            );
            // Release: as in `release`. The word can still change under us
            // (lock-free acquires and releases), hence the loop.
            match self.state.compare_exchange_weak(
                state,
                (state & !QUEUED) + (n << SHIFT),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => state = actual,
            }
        }
    }

    /// Removes up to `n` available permits and returns how many.
    pub(crate) fn forget_permits(&self, n: usize) -> usize {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            let taken = n.min(state >> SHIFT);
            if taken == 0 {
                return 0;
            }
            // Relaxed: nothing is published or consumed with these permits.
            match self.state.compare_exchange_weak(
                state,
                state - (taken << SHIFT),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.total.fetch_sub(taken, Ordering::Relaxed);
                    return taken;
                }
                Err(actual) => state = actual,
            }
        }
    }

    /// Records `n` permits as forgotten: they leave `total` (gone for good
    /// on a plain semaphore, detached until `reattach` on a bounded one).
    pub(crate) fn detach(&self, n: usize) {
        if n != 0 {
            // AcqRel: pairs with `reattach`, so a release that follows a
            // forget (through the user's own synchronization) sees it.
            self.total.fetch_sub(n, Ordering::AcqRel);
        }
    }

    /// Puts `n` detached permits back into `total` if that keeps it at most
    /// `capacity`; returns the detached count seen on failure. The caller
    /// then releases them.
    pub(crate) fn reattach(&self, n: usize) -> Result<(), usize> {
        let mut total = self.total.load(Ordering::Acquire);
        loop {
            let detached = self.capacity - total;
            if n > detached {
                return Err(detached);
            }
            match self.total.compare_exchange_weak(
                total,
                total + n,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(actual) => total = actual,
            }
        }
    }

    /// Closes the semaphore: every queued waiter gets `Closed`, and the
    /// permits they had collected become available again.
    pub(crate) fn close(&self) {
        let mut list = self.waiters.lock();
        // Under the lock, so no acquirer can enqueue after this point: the
        // enqueue path checks `CLOSED` under the same lock.
        self.state.fetch_or(CLOSED, Ordering::Release);
        let mut wakers = WakeBatch::new();
        let mut returned = 0;
        while let Some(head) = list.head() {
            // SAFETY: `head` is linked; linked nodes are valid and pinned.
            let node = unsafe { head.as_ref() };
            // Relaxed: written only under this lock.
            let remaining = node.remaining.load(Ordering::Relaxed);
            returned += node.num.get() - remaining;
            // SAFETY: `head` is linked and we hold the lock.
            unsafe { list.remove(head) };
            if let Some(waker) = node.take_waker() {
                wakers.push(waker);
            }
            // Release: after this the owner may free the node.
            node.remaining.store(CLOSED_NODE, Ordering::Release);
            if wakers.is_full() {
                drop(list);
                wakers.wake_all();
                list = self.waiters.lock();
            }
        }
        // Permits collected by waiters are not lost: conservation holds.
        self.add_available(returned);
        drop(list);
        wakers.wake_all();
    }
}

impl core::fmt::Debug for RawSemaphore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Semaphore")
            .field("available_permits", &self.available_permits())
            .field("waiters", &self.waiters())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Waiter {
    pub(crate) fn new(num: usize) -> Self {
        Self {
            remaining: AtomicUsize::new(0),
            num: Cell::new(num),
            stage: Cell::new(Stage::Idle),
            waker: UnsafeCell::new(WakerSlot::new()),
            pointers: Pointers::new(),
            _pin: PhantomPinned,
        }
    }

    pub(crate) fn num(&self) -> usize {
        self.num.get()
    }

    /// Whether a queued node's permits were all handed over (by the grant
    /// that unlinked it: no lock needed). Acquire: pairs with the granting
    /// store, as in `poll_queued`.
    #[inline]
    fn handed_over(&self) -> bool {
        self.remaining.load(Ordering::Acquire) == 0
    }

    /// Completes a queued node whose permits were all handed over, as the
    /// poll after a wake-up in [`poll_acquire`](Self::poll_acquire) does
    /// (uncounted): `true` if they were (the node is `Done` and the caller
    /// owns them), `false` with nothing changed. For a caller that takes a
    /// shorter path than `poll_acquire` when the grant is there.
    #[inline]
    pub(crate) fn take_grant(&self) -> bool {
        let granted = self.stage.get() == Stage::Queued && self.handed_over();
        if granted {
            self.stage.set(Stage::Done);
        }
        granted
    }

    /// Takes the stored waker. Caller holds the lock.
    fn take_waker(&self) -> Option<Waker> {
        // SAFETY: the waker is only touched with the lock held.
        self.waker.with_mut(|w| unsafe { (*w).take() })
    }

    /// Drives the acquisition of `num` permits. Returns `Ready(Ok(()))` once
    /// the node holds all of them; the caller then owns them (and must turn
    /// them into a permit, since the node is `Done`).
    ///
    /// Inlined into the future's `poll`: the common first poll, permits
    /// available and nobody queued, is the one CAS of
    /// [`RawSemaphore::try_acquire_fast`], and the common poll after a
    /// wake-up, the grant already handed over, is one load. Anything else
    /// goes to [`poll_slow`](Self::poll_slow), which decides from scratch.
    #[inline]
    pub(crate) fn poll_acquire<const COUNT: bool>(
        self: Pin<&mut Self>,
        sem: &RawSemaphore,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), AcquireError>> {
        // Only this future touches `stage`, and the node does not move.
        let node: &Waiter = &self;
        let ready = match node.stage.get() {
            Stage::Idle => sem.try_acquire_fast::<COUNT>(node.num.get()),
            Stage::Queued => {
                let granted = node.handed_over();
                if COUNT && granted {
                    sem.counters.admit_queued();
                }
                granted
            }
            Stage::Done => false,
        };
        if ready {
            node.stage.set(Stage::Done);
            return Poll::Ready(Ok(()));
        }
        node.poll_slow::<COUNT>(sem, cx)
    }

    #[inline(never)]
    fn poll_slow<const COUNT: bool>(
        &self,
        sem: &RawSemaphore,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), AcquireError>> {
        let node = self;
        match node.stage.get() {
            Stage::Idle => node.poll_first::<COUNT>(sem, cx),
            Stage::Queued => node.poll_queued::<COUNT>(sem, cx),
            Stage::Done => panic!("acquire future polled after completion"),
        }
    }

    fn poll_first<const COUNT: bool>(
        &self,
        sem: &RawSemaphore,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), AcquireError>> {
        let num = self.num.get();
        if let Err(e) = sem.check_capacity(num) {
            self.stage.set(Stage::Done);
            return Poll::Ready(Err(e));
        }
        // One more try without the lock (the inline attempt may have lost a
        // race, or not applied). Also serves `num == 0` at once.
        match sem.try_acquire_slow::<COUNT>(num) {
            Ok(()) => {
                self.stage.set(Stage::Done);
                return Poll::Ready(Ok(()));
            }
            Err(TryAcquireError::Closed) => {
                self.stage.set(Stage::Done);
                return Poll::Ready(Err(AcquireError::Closed));
            }
            Err(_) => {}
        }
        // Cloned before the lock: a `clone` that panics must leave the
        // semaphore as it was, not holding permits taken for a node that is
        // never linked (and whatever it runs must not find the lock held).
        let waker = cx.waker().clone();
        let mut list = sem.waiters.lock();
        let mut state = sem.state.load(Ordering::Relaxed);
        loop {
            if state & CLOSED != 0 {
                self.stage.set(Stage::Done);
                return Poll::Ready(Err(AcquireError::Closed));
            }
            let available = state >> SHIFT;
            let queued = state & QUEUED != 0;
            if !queued && available >= num {
                // Acquire on success: as in `try_acquire`.
                match sem.state.compare_exchange_weak(
                    state,
                    state - (num << SHIFT),
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        if COUNT {
                            sem.counters.admit();
                        }
                        self.stage.set(Stage::Done);
                        return Poll::Ready(Ok(()));
                    }
                    Err(actual) => state = actual,
                }
                continue;
            }
            if queued {
                // Someone is queued, so nothing is available, and the word
                // cannot change while we hold the lock: `QUEUED` and
                // `CLOSED` change only under it, and lock-free acquires and
                // releases leave the word alone while `QUEUED` is set. Join
                // the tail without touching the contended word.
                self.enqueue(&mut list, num, waker);
                return Poll::Pending;
            }
            // Join the queue as its head, taking whatever is available.
            // Acquire: the taken permits may carry a previous holder's
            // writes.
            let taken = available;
            match sem.state.compare_exchange_weak(
                state,
                (state - (taken << SHIFT)) | QUEUED,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.enqueue(&mut list, num - taken, waker);
                    return Poll::Pending;
                }
                Err(actual) => state = actual,
            }
        }
    }

    /// Links the node at the tail, still missing `remaining` (> 0) permits,
    /// to be woken with `waker`. The caller holds the lock and has set
    /// `QUEUED`.
    fn enqueue(&self, list: &mut WaitList, remaining: usize, waker: Waker) {
        debug_assert!(remaining > 0);
        // Relaxed: the lock publishes it to releasers.
        self.remaining.store(remaining, Ordering::Relaxed);
        // SAFETY: we hold the lock, and the node is unlinked. The slot is
        // empty (an `Idle` node was never queued): `old` is `None`, so
        // nothing is dropped under the lock.
        let old = self.waker.with_mut(|w| unsafe { (*w).replace(waker) });
        debug_assert!(old.is_none());
        self.stage.set(Stage::Queued);
        // SAFETY: the node is pinned (`poll_acquire` is reached through
        // `Pin<&mut Self>`), not linked, and its owner unlinks it under the
        // lock before it is dropped.
        unsafe { list.push_back(NonNull::from(self)) };
    }

    fn poll_queued<const COUNT: bool>(
        &self,
        sem: &RawSemaphore,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), AcquireError>> {
        // Acquire: synchronizes with the Release store of whoever unlinked
        // the node, so after this we own it again.
        match self.remaining.load(Ordering::Acquire) {
            0 => {
                if COUNT {
                    sem.counters.admit_queued();
                }
                self.stage.set(Stage::Done);
                return Poll::Ready(Ok(()));
            }
            CLOSED_NODE => {
                self.stage.set(Stage::Done);
                return Poll::Ready(Err(AcquireError::Closed));
            }
            _ => {}
        }
        // Cloned before the lock, and the waker it replaces dropped after
        // it: either may run arbitrary code (dropping the last handle to a
        // task drops the task, whose futures may release permits here).
        // Declared before the guard, so dropped after it on every path.
        let waker = cx.waker().clone();
        let list = sem.waiters.lock();
        // Relaxed: the lock orders us after every write made under it.
        match self.remaining.load(Ordering::Relaxed) {
            0 => {
                if COUNT {
                    sem.counters.admit_queued();
                }
                self.stage.set(Stage::Done);
                Poll::Ready(Ok(()))
            }
            CLOSED_NODE => {
                self.stage.set(Stage::Done);
                Poll::Ready(Err(AcquireError::Closed))
            }
            _ => {
                // SAFETY: still linked, and we hold the lock.
                let stale = self.waker.with_mut(|w| unsafe { (*w).replace(waker) });
                drop(list);
                drop(stale);
                Poll::Pending
            }
        }
    }

    /// Undoes whatever the node holds; called when its future is dropped.
    ///
    /// Inlined into the future's `drop`: a future that completed (or was
    /// never polled) holds nothing, and that is one byte compare.
    #[inline]
    pub(crate) fn cancel(self: Pin<&mut Self>, sem: &RawSemaphore) {
        let node: &Waiter = &self;
        if node.stage.get() == Stage::Queued {
            node.cancel_queued(sem);
        }
    }

    #[inline(never)]
    fn cancel_queued(&self, sem: &RawSemaphore) {
        let node = self;
        node.stage.set(Stage::Done);
        // Acquire: as in `poll_queued`.
        match node.remaining.load(Ordering::Acquire) {
            // Granted but never handed out as a permit: give it all back.
            0 => return sem.release(node.num.get()),
            CLOSED_NODE => return,
            _ => {}
        }
        let mut list = sem.waiters.lock();
        // Relaxed: the lock orders us after every write made under it.
        let remaining = node.remaining.load(Ordering::Relaxed);
        match remaining {
            0 => {
                drop(list);
                sem.release(node.num.get());
            }
            CLOSED_NODE => {}
            _ => {
                // SAFETY: still linked (only grant and close unlink, and both
                // change `remaining`), and we hold the lock.
                unsafe { list.remove(NonNull::from(node)) };
                let collected = node.num.get() - remaining;
                if list.head().is_none() {
                    // We were the last waiter: clear QUEUED, return what we
                    // had collected (maybe nothing).
                    sem.add_available(collected);
                } else if collected > 0 {
                    // Only the head collects permits; pass them on.
                    sem.hand_off(list, collected);
                }
            }
        }
    }
}
