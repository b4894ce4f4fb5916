//! An intrusive, doubly linked list of waiters, each a node pinned inside the
//! future that waits. Linking a node allocates nothing, which is how a waiting
//! `acquire` (and a `ManualClock` sleep) costs zero heap allocations.
//!
//! # Implementation details
//!
//! The list itself lives inside a [`Mutex`](crate::sync::Mutex) owned by the
//! primitive; every access to a node's contents goes through `&mut List`, so
//! the lock is what makes the raw pointers sound. A future that owns a node
//! links it while polled and unlinks it in `Drop` (under the same lock), so
//! the list never points at freed memory.
//!
//! `ManualClock`'s sleepers, the rate limiters' and the sliding window's
//! waiters use this list.
//! The semaphore keeps a specialised one (`semaphore/raw.rs`): its hot path
//! reads a waiter's grant without taking the lock and hands permits to the
//! head in place, which this list, whose nodes are only touched under the
//! lock, does not allow. Both share [`WakeBatch`].

use core::cell::UnsafeCell;
use core::marker::PhantomPinned;
use core::mem::MaybeUninit;
use core::ptr::NonNull;
use core::task::Waker;

/// A list node. Lives inside a pinned future; it must not move while linked.
pub(crate) struct Node<T> {
    inner: UnsafeCell<Entry<T>>,
    _pin: PhantomPinned,
}

/// The part of a node that the list's owner reads and writes under its lock.
#[derive(Debug)]
pub(crate) struct Entry<T> {
    prev: Option<NonNull<Node<T>>>,
    next: Option<NonNull<Node<T>>>,
    linked: bool,
    /// Woken when the owner wants this waiter polled again.
    pub(crate) waker: Option<Waker>,
    /// The owner's per-waiter data.
    pub(crate) value: T,
}

// SAFETY: a node's contents are only touched through `&mut List`, i.e. under
// the owner's lock, so sharing a `&Node` between threads is sound whenever
// the data (and the waker, which is `Send + Sync`) may move between them.
unsafe impl<T: Send> Send for Node<T> {}
// SAFETY: as above: `&Node` gives no access without the lock.
unsafe impl<T: Send> Sync for Node<T> {}

impl<T> Node<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self {
            inner: UnsafeCell::new(Entry {
                prev: None,
                next: None,
                linked: false,
                waker: None,
                value,
            }),
            _pin: PhantomPinned,
        }
    }

    fn ptr(&self) -> NonNull<Node<T>> {
        NonNull::from(self)
    }
}

impl<T> core::fmt::Debug for Node<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Node { .. }")
    }
}

/// The list head. Owned by a primitive, always behind its lock.
pub(crate) struct List<T> {
    head: Option<NonNull<Node<T>>>,
    tail: Option<NonNull<Node<T>>>,
    len: usize,
}

// SAFETY: the list only holds pointers to nodes whose contents are `Send`;
// it is only reachable through the owner's lock.
unsafe impl<T: Send> Send for List<T> {}
// SAFETY: `&List` gives no access to nodes (every method takes `&mut self`).
unsafe impl<T: Send> Sync for List<T> {}

impl<T> core::fmt::Debug for List<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("List").field("len", &self.len).finish()
    }
}

impl<T> List<T> {
    pub(crate) const fn new() -> Self {
        Self {
            head: None,
            tail: None,
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The contents of `node`.
    ///
    /// # Safety
    ///
    /// - `node` is alive for `'a`, and every access to its contents goes
    ///   through this list (so `&mut self` is exclusive access to it too).
    pub(crate) unsafe fn entry<'a>(&'a mut self, node: &'a Node<T>) -> &'a mut Entry<T> {
        // SAFETY: the caller promises all accesses go through `&mut self`,
        // which we hold exclusively for `'a`.
        unsafe { &mut *node.inner.get() }
    }

    /// Appends `node` at the tail unless it is already linked.
    ///
    /// # Safety
    ///
    /// - `node` is pinned and stays alive until [`List::unlink`] is called on
    ///   it or the list's owner unlinks it (both under the lock);
    /// - `node` is not linked into another list.
    pub(crate) unsafe fn link(&mut self, node: &Node<T>) {
        let ptr = node.ptr();
        // SAFETY: the caller guarantees exclusive access through `self`.
        let entry = unsafe { &mut *node.inner.get() };
        if entry.linked {
            return;
        }
        entry.linked = true;
        entry.prev = self.tail;
        entry.next = None;
        match self.tail {
            // SAFETY: linked nodes are alive (link's contract).
            Some(tail) => unsafe { (*tail.as_ref().inner.get()).next = Some(ptr) },
            None => self.head = Some(ptr),
        }
        self.tail = Some(ptr);
        self.len += 1;
    }

    /// Removes `node` if it is linked. Returns whether it was.
    ///
    /// # Safety
    ///
    /// - `node` is alive and, if linked, linked into this list.
    pub(crate) unsafe fn unlink(&mut self, node: &Node<T>) -> bool {
        // SAFETY: the caller guarantees exclusive access through `self`.
        unsafe { self.unlink_ptr(node.ptr()) }
    }

    /// # Safety
    ///
    /// `ptr` is alive and, if linked, linked into this list.
    unsafe fn unlink_ptr(&mut self, ptr: NonNull<Node<T>>) -> bool {
        // SAFETY: caller contract; neighbours are linked hence alive.
        unsafe {
            let entry = &mut *ptr.as_ref().inner.get();
            if !entry.linked {
                return false;
            }
            match entry.prev {
                Some(prev) => (*prev.as_ref().inner.get()).next = entry.next,
                None => self.head = entry.next,
            }
            match entry.next {
                Some(next) => (*next.as_ref().inner.get()).prev = entry.prev,
                None => self.tail = entry.prev,
            }
            entry.prev = None;
            entry.next = None;
            entry.linked = false;
        }
        self.len -= 1;
        true
    }

    /// The head's contents, if any.
    pub(crate) fn front(&mut self) -> Option<&mut Entry<T>> {
        // SAFETY: linked nodes are alive (link's contract) and we hold
        // `&mut self`, hence exclusive access to them.
        self.head
            .map(|ptr| unsafe { &mut *ptr.as_ref().inner.get() })
    }

    /// Whether `node` is the head.
    pub(crate) fn is_front(&self, node: &Node<T>) -> bool {
        self.head == Some(node.ptr())
    }

    /// Unlinks the head, if any (it stays owned by its future).
    pub(crate) fn unlink_front(&mut self) {
        if let Some(ptr) = self.head {
            // SAFETY: `ptr` is linked into this list.
            unsafe { self.unlink_ptr(ptr) };
        }
    }

    /// Visits every linked node from head to tail. `f` returns whether to
    /// unlink the node (it stays owned by its future).
    pub(crate) fn retain(&mut self, mut f: impl FnMut(&mut Entry<T>) -> bool) {
        let mut cursor = self.head;
        while let Some(ptr) = cursor {
            // SAFETY: linked nodes are alive (link's contract) and we hold
            // `&mut self`, hence exclusive access to them.
            let entry = unsafe { &mut *ptr.as_ref().inner.get() };
            cursor = entry.next;
            if !f(entry) {
                // SAFETY: `ptr` is linked into this list.
                unsafe { self.unlink_ptr(ptr) };
            }
        }
    }
}

/// Wakers gathered under a lock and woken after it is released, a batch at a
/// time, so waking (which may run arbitrary code) never happens under a lock
/// and never allocates.
///
/// The slots are uninitialised until pushed: creating and dropping an empty
/// or one-waker batch touches one or two slots, not all [`CAP`](Self::CAP)
/// (the semaphore's hand-off makes one per contended release).
pub(crate) struct WakeBatch {
    /// `wakers[woken..len]` are initialised and not woken yet; the rest is
    /// uninitialised (or already moved out by `wake_all`).
    wakers: [MaybeUninit<Waker>; WakeBatch::CAP],
    len: usize,
    /// How many of the first `len` were already taken and woken, so a panic
    /// in one `wake` leaves the others to `Drop`.
    woken: usize,
}

impl WakeBatch {
    pub(crate) const CAP: usize = 16;

    #[inline]
    pub(crate) const fn new() -> Self {
        Self {
            wakers: [const { MaybeUninit::uninit() }; Self::CAP],
            len: 0,
            woken: 0,
        }
    }

    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        self.len == Self::CAP
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub(crate) fn push(&mut self, waker: Waker) {
        assert!(!self.is_full(), "WakeBatch overflow");
        self.wakers[self.len].write(waker);
        self.len += 1;
    }

    /// Wakes every pushed waker, in push order, and empties the batch.
    #[inline]
    pub(crate) fn wake_all(&mut self) {
        while self.woken < self.len {
            let slot = &self.wakers[self.woken];
            // Counted as taken before `wake` runs, so it is never read twice,
            // even if `wake` panics.
            self.woken += 1;
            // SAFETY: slots `woken..len` are initialised and not yet read; the
            // increment above marks this one as moved out.
            let waker = unsafe { slot.assume_init_read() };
            waker.wake();
        }
        self.len = 0;
        self.woken = 0;
    }
}

impl Drop for WakeBatch {
    /// Wakes whatever is left, so a panic between collecting and waking
    /// loses no wake-up.
    #[inline]
    fn drop(&mut self) {
        self.wake_all();
    }
}
