//! The crate's one intrusive, doubly linked list of waiters, each a node
//! pinned inside the future that waits. Linking a node allocates nothing,
//! which is how a waiting `acquire` (and a `ManualClock` sleep) costs zero
//! heap allocations.
//!
//! # Implementation details
//!
//! Two layers, as tokio's `linked_list`:
//!
//! * [`LinkedList`] links any node type that embeds [`Pointers`] and says
//!   where with the [`Link`] trait. It is what the semaphore uses: its node
//!   keeps the permits still missing in an atomic that the future reads
//!   without the lock, and its hand-off serves the head in place.
//! * [`List`] links [`Node`]s, whose whole contents (a waker and the owner's
//!   data) are touched only under the lock through `&mut List`. It is what
//!   `ManualClock`'s sleepers, the rate limiters' and the sliding window's
//!   waiters use.
//!
//! The list lives inside a [`Mutex`](crate::sync::Mutex) owned by the
//! primitive; the lock is what makes the raw pointers sound. A future that
//! owns a node links it while polled and unlinks it in `Drop` (under the
//! same lock), so the list never points at freed memory. Every cell of a
//! node is a [`crate::sync::UnsafeCell`], so the loom models check each
//! access of every user of the list.

use core::marker::PhantomPinned;
use core::mem::MaybeUninit;
use core::ptr::{self, NonNull};
use core::task::{RawWaker, RawWakerVTable, Waker};

use crate::sync::UnsafeCell;

/// The links a node embeds. Guarded by the list owner's lock.
pub(crate) struct Pointers<T> {
    links: UnsafeCell<Links<T>>,
}

struct Links<T> {
    prev: Option<NonNull<T>>,
    next: Option<NonNull<T>>,
}

impl<T> Pointers<T> {
    crate::sync::const_fn! {
        pub(crate) fn new() -> Self {
            Self {
                links: UnsafeCell::new(Links {
                    prev: None,
                    next: None,
                }),
            }
        }
    }
}

impl<T> core::fmt::Debug for Pointers<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Pointers { .. }")
    }
}

/// A node type that [`LinkedList`] can link.
///
/// # Safety
///
/// `pointers` returns the same [`Pointers`], embedded in `self`, on every
/// call, and nothing but the list touches them.
pub(crate) unsafe trait Link: Sized {
    fn pointers(&self) -> &Pointers<Self>;
}

/// A FIFO of nodes of type `T`. Owned by a primitive, always behind its
/// lock; every method that touches a node is `unsafe` and requires that
/// lock (which `&mut self` is, as the list is only reachable through it).
pub(crate) struct LinkedList<T> {
    head: Option<NonNull<T>>,
    tail: Option<NonNull<T>>,
    len: usize,
}

// SAFETY: the list only holds pointers to nodes whose shared contents are
// `Send` (the node types' own `Send`/`Sync` impls say so); it is only
// reachable through the owner's lock.
unsafe impl<T: Send> Send for LinkedList<T> {}
// SAFETY: `&LinkedList` reads only the head pointer and the length.
unsafe impl<T: Send> Sync for LinkedList<T> {}

impl<T> core::fmt::Debug for LinkedList<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LinkedList")
            .field("len", &self.len)
            .finish()
    }
}

impl<T: Link> LinkedList<T> {
    pub(crate) const fn new() -> Self {
        Self {
            head: None,
            tail: None,
            len: 0,
        }
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub(crate) fn head(&self) -> Option<NonNull<T>> {
        self.head
    }

    /// Appends `node` at the tail.
    ///
    /// # Safety
    ///
    /// `node` is pinned, not linked, and stays alive until it is removed
    /// (under the lock, which the caller holds).
    #[inline]
    pub(crate) unsafe fn push_back(&mut self, node: NonNull<T>) {
        // SAFETY: `node` is alive (caller) and the tail, if any, is linked
        // hence alive; the lock is held, so their links are ours to change.
        unsafe {
            node.as_ref().pointers().links.with_mut(|links| {
                *links = Links {
                    prev: self.tail,
                    next: None,
                }
            });
            match self.tail {
                Some(tail) => tail
                    .as_ref()
                    .pointers()
                    .links
                    .with_mut(|links| (*links).next = Some(node)),
                None => self.head = Some(node),
            }
        }
        self.tail = Some(node);
        self.len += 1;
    }

    /// Unlinks `node`.
    ///
    /// # Safety
    ///
    /// `node` is linked into this list; the caller holds the lock.
    #[inline]
    pub(crate) unsafe fn remove(&mut self, node: NonNull<T>) {
        // SAFETY: `node` and its neighbours are linked, hence alive; the lock
        // is held, so their links are ours to change.
        unsafe {
            let Links { prev, next } = node.as_ref().pointers().links.with_mut(|links| {
                core::mem::replace(
                    &mut *links,
                    Links {
                        prev: None,
                        next: None,
                    },
                )
            });
            match prev {
                Some(prev) => prev
                    .as_ref()
                    .pointers()
                    .links
                    .with_mut(|links| (*links).next = next),
                None => self.head = next,
            }
            match next {
                Some(next) => next
                    .as_ref()
                    .pointers()
                    .links
                    .with_mut(|links| (*links).prev = prev),
                None => self.tail = prev,
            }
        }
        self.len -= 1;
    }

    /// The node after `node`, for walking the list from [`head`](Self::head).
    ///
    /// # Safety
    ///
    /// `node` is linked into this list; the caller holds the lock.
    #[inline]
    unsafe fn next(&self, node: NonNull<T>) -> Option<NonNull<T>> {
        // SAFETY: linked nodes are alive and the lock is held.
        unsafe { node.as_ref().pointers().links.with(|links| (*links).next) }
    }
}

/// A [`List`] node: a waker and the owner's data, touched only under the
/// lock. Lives inside a pinned future; it must not move while linked.
pub(crate) struct Node<T> {
    pointers: Pointers<Node<T>>,
    entry: UnsafeCell<Entry<T>>,
    _pin: PhantomPinned,
}

/// The part of a node that the list's owner reads and writes under its lock.
#[derive(Debug)]
pub(crate) struct Entry<T> {
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

// SAFETY: `pointers` is a field of the node, the same on every call, and
// only `LinkedList` touches it.
unsafe impl<T> Link for Node<T> {
    #[inline]
    fn pointers(&self) -> &Pointers<Self> {
        &self.pointers
    }
}

impl<T> Node<T> {
    crate::sync::const_fn! {
        pub(crate) fn new(value: T) -> Self {
            Self {
                pointers: Pointers::new(),
                entry: UnsafeCell::new(Entry {
                    linked: false,
                    waker: None,
                    value,
                }),
                _pin: PhantomPinned,
            }
        }
    }
}

impl<T> core::fmt::Debug for Node<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Node { .. }")
    }
}

/// A [`LinkedList`] of [`Node`]s, with linking that tolerates a node
/// already (un)linked and access to the nodes' contents.
pub(crate) struct List<T> {
    nodes: LinkedList<Node<T>>,
}

impl<T> core::fmt::Debug for List<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("List").field("len", &self.len()).finish()
    }
}

/// The contents of a node reached through the list.
///
/// # Safety
///
/// `ptr` is alive for `'a`, every access to its contents goes through the
/// list, and the caller holds `&'a mut` to the list.
unsafe fn entry_mut<'a, T>(ptr: NonNull<Node<T>>) -> &'a mut Entry<T> {
    // SAFETY: the caller's contract: the list, held exclusively for `'a`,
    // is the only way to the contents.
    unsafe { ptr.as_ref().entry.with_mut(|entry| &mut *entry) }
}

impl<T> List<T> {
    pub(crate) const fn new() -> Self {
        Self {
            nodes: LinkedList::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
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
        unsafe { entry_mut(NonNull::from(node)) }
    }

    /// Appends `node` at the tail unless it is already linked.
    ///
    /// # Safety
    ///
    /// - `node` is pinned and stays alive until [`List::unlink`] is called on
    ///   it or the list's owner unlinks it (both under the lock);
    /// - `node` is not linked into another list.
    pub(crate) unsafe fn link(&mut self, node: &Node<T>) {
        let ptr = NonNull::from(node);
        // SAFETY: the caller guarantees exclusive access through `self`.
        let entry = unsafe { entry_mut(ptr) };
        if entry.linked {
            return;
        }
        entry.linked = true;
        // SAFETY: pinned, not linked (the flag says so), alive until
        // unlinked (the caller's contract).
        unsafe { self.nodes.push_back(ptr) };
    }

    /// Removes `node` if it is linked. Returns whether it was.
    ///
    /// # Safety
    ///
    /// - `node` is alive and, if linked, linked into this list.
    pub(crate) unsafe fn unlink(&mut self, node: &Node<T>) -> bool {
        // SAFETY: the caller guarantees exclusive access through `self`.
        unsafe { self.unlink_ptr(NonNull::from(node)) }
    }

    /// # Safety
    ///
    /// `ptr` is alive and, if linked, linked into this list.
    unsafe fn unlink_ptr(&mut self, ptr: NonNull<Node<T>>) -> bool {
        // SAFETY: caller contract; we hold `&mut self`.
        let entry = unsafe { entry_mut(ptr) };
        if !entry.linked {
            return false;
        }
        entry.linked = false;
        // SAFETY: linked into this list (the flag and the caller say so).
        unsafe { self.nodes.remove(ptr) };
        true
    }

    /// The head's contents, if any.
    pub(crate) fn front(&mut self) -> Option<&mut Entry<T>> {
        // SAFETY: linked nodes are alive (link's contract) and we hold
        // `&mut self`, hence exclusive access to them.
        self.nodes.head().map(|ptr| unsafe { entry_mut(ptr) })
    }

    /// Whether `node` is the head.
    pub(crate) fn is_front(&self, node: &Node<T>) -> bool {
        self.nodes.head() == Some(NonNull::from(node))
    }

    /// Unlinks the head, if any (it stays owned by its future).
    pub(crate) fn unlink_front(&mut self) {
        if let Some(ptr) = self.nodes.head() {
            // SAFETY: `ptr` is linked into this list.
            unsafe { self.unlink_ptr(ptr) };
        }
    }

    /// Visits every linked node from head to tail. `f` returns whether to
    /// keep the node linked (an unlinked one stays owned by its future).
    pub(crate) fn retain(&mut self, mut f: impl FnMut(&mut Entry<T>) -> bool) {
        let mut cursor = self.nodes.head();
        while let Some(ptr) = cursor {
            // SAFETY: `ptr` is linked (hence alive) and we hold `&mut self`.
            cursor = unsafe { self.nodes.next(ptr) };
            // SAFETY: as above; exclusive access to the node's contents.
            if !f(unsafe { entry_mut(ptr) }) {
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

/// An optional [`Waker`] whose empty state is defined bytes (two null words).
///
/// `Option<Waker>::None` leaves the waker's data word uninitialised. A node
/// holding one, built inside a future on every `acquire`, is then not written
/// with plain stores: LLVM builds it in a stack temporary and copies that in,
/// reloading words it has just written with narrower stores, which the CPU
/// cannot forward from store to load. With this slot the semaphore's
/// uncontended `acquire().await` + drop takes 6.5 ns instead of 13.2.
pub(crate) struct WakerSlot {
    /// The stored waker's data pointer; null when empty.
    data: *const (),
    /// The stored waker's vtable; `None` (null) exactly when the slot is
    /// empty.
    vtable: Option<&'static RawWakerVTable>,
}

// SAFETY: the slot owns at most one `Waker`, which is `Send` and `Sync`; the
// raw pointers are that waker's own parts and nothing else.
unsafe impl Send for WakerSlot {}
// SAFETY: as above; `&WakerSlot` gives no access to the waker.
unsafe impl Sync for WakerSlot {}

impl WakerSlot {
    /// An empty slot.
    #[inline]
    pub(crate) const fn new() -> Self {
        Self {
            data: ptr::null(),
            vtable: None,
        }
    }

    /// Stores `waker`, returning the one it replaces (to be dropped by the
    /// caller, outside any lock).
    #[inline]
    pub(crate) fn replace(&mut self, waker: Waker) -> Option<Waker> {
        let old = self.take();
        let waker = core::mem::ManuallyDrop::new(waker);
        self.data = waker.data();
        self.vtable = Some(waker.vtable());
        old
    }

    /// Takes the stored waker out, leaving the slot empty.
    #[inline]
    pub(crate) fn take(&mut self) -> Option<Waker> {
        let vtable = self.vtable.take()?;
        let raw = RawWaker::new(self.data, vtable);
        self.data = ptr::null();
        // SAFETY: a `vtable` means `data` and `vtable` are the parts
        // of a waker that `replace` stored and did not drop (`ManuallyDrop`);
        // the slot is emptied above, so the waker is rebuilt exactly once.
        Some(unsafe { Waker::from_raw(raw) })
    }
}

impl Drop for WakerSlot {
    #[inline]
    fn drop(&mut self) {
        drop(self.take());
    }
}

impl core::fmt::Debug for WakerSlot {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WakerSlot")
            .field("empty", &self.vtable.is_none())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use alloc::boxed::Box;
    use alloc::sync::Arc;
    use alloc::task::Wake;
    use alloc::vec;
    use alloc::vec::Vec;
    use core::pin::Pin;
    use core::sync::atomic::{AtomicUsize, Ordering};

    fn values(list: &mut List<u32>) -> Vec<u32> {
        let mut seen = Vec::new();
        list.retain(|entry| {
            seen.push(entry.value);
            true
        });
        seen
    }

    #[test]
    fn link_unlink_retain_keep_fifo_order_and_tolerate_repeats() {
        let nodes: Vec<Pin<Box<Node<u32>>>> = (0..5).map(|v| Box::pin(Node::new(v))).collect();
        let mut list = List::new();
        for node in &nodes {
            // SAFETY: pinned in boxes that outlive the list's use of them;
            // every node is unlinked before the boxes are dropped.
            unsafe { list.link(node) };
        }
        // SAFETY: as above.
        unsafe { list.link(&nodes[1]) }; // already linked: no-op
        assert_eq!((list.len(), values(&mut list)), (5, vec![0, 1, 2, 3, 4]));
        assert!(list.is_front(&nodes[0]));

        // SAFETY: alive and linked into this list.
        assert!(unsafe { list.unlink(&nodes[2]) });
        // SAFETY: alive and no longer linked.
        assert!(!unsafe { list.unlink(&nodes[2]) });
        list.unlink_front();
        assert_eq!(values(&mut list), vec![1, 3, 4]);

        // Unlink the middle and the tail while walking.
        list.retain(|entry| entry.value == 1);
        assert_eq!((list.len(), values(&mut list)), (1, vec![1]));
        list.front().unwrap().value = 7;
        // SAFETY: alive; its contents are reached only through the list.
        assert_eq!(unsafe { list.entry(&nodes[1]) }.value, 7);

        // Relinking an unlinked node appends it.
        // SAFETY: as for the first links.
        unsafe { list.link(&nodes[0]) };
        assert_eq!(values(&mut list), vec![7, 0]);
        list.retain(|_| false);
        assert_eq!(list.len(), 0);
        assert!(list.front().is_none());
    }

    /// A node type of its own, as the semaphore's, linked with the raw list.
    struct Custom {
        pointers: Pointers<Custom>,
        id: u32,
    }

    // SAFETY: `pointers` is a field of the node, only the list touches it.
    unsafe impl Link for Custom {
        fn pointers(&self) -> &Pointers<Self> {
            &self.pointers
        }
    }

    fn ids(list: &LinkedList<Custom>) -> Vec<u32> {
        let mut ids = Vec::new();
        let mut cursor = list.head();
        while let Some(ptr) = cursor {
            // SAFETY: linked nodes are alive; the test owns the list.
            ids.push(unsafe { ptr.as_ref() }.id);
            // SAFETY: as above.
            cursor = unsafe { list.next(ptr) };
        }
        ids
    }

    #[test]
    fn linked_list_pushes_at_the_tail_and_removes_anywhere() {
        let nodes: Vec<Pin<Box<Custom>>> = (0..4)
            .map(|id| {
                Box::pin(Custom {
                    pointers: Pointers::new(),
                    id,
                })
            })
            .collect();
        let ptr = |i: usize| NonNull::from(&*nodes[i]);
        let mut list = LinkedList::new();
        for i in 0..4 {
            // SAFETY: pinned, not linked, outlive their time in the list.
            unsafe { list.push_back(ptr(i)) };
        }
        assert_eq!(ids(&list), vec![0, 1, 2, 3]);
        // SAFETY: each is linked into this list when removed.
        unsafe {
            list.remove(ptr(0)); // head
            list.remove(ptr(3)); // tail
            list.remove(ptr(1)); // now the head
        }
        assert_eq!((list.len(), ids(&list)), (1, vec![2]));
        // SAFETY: pinned and not linked any more.
        unsafe { list.push_back(ptr(0)) };
        assert_eq!(ids(&list), vec![2, 0]);
        // SAFETY: linked.
        unsafe {
            list.remove(ptr(2));
            list.remove(ptr(0));
        }
        assert_eq!((list.len(), list.head()), (0, None));
    }

    /// A waker that counts its wakes.
    struct Counting(AtomicUsize);

    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn waker_slot_stores_returns_and_drops_exactly_one_waker() {
        let counting = Arc::new(Counting(AtomicUsize::new(0)));
        let mut slot = WakerSlot::new();
        assert!(slot.take().is_none());
        assert!(slot.replace(Waker::from(Arc::clone(&counting))).is_none());
        assert_eq!(Arc::strong_count(&counting), 2);
        // Replacing hands the old waker back, still usable.
        let old = slot.replace(Waker::from(Arc::clone(&counting))).unwrap();
        assert_eq!(Arc::strong_count(&counting), 3);
        old.wake();
        assert_eq!(Arc::strong_count(&counting), 2);
        let taken = slot.take().unwrap();
        assert!(slot.take().is_none());
        taken.wake_by_ref();
        drop(taken);
        assert_eq!(counting.0.load(Ordering::Relaxed), 2);
        assert_eq!(Arc::strong_count(&counting), 1);
        // A slot dropped full drops its waker.
        let mut full = WakerSlot::new();
        full.replace(Waker::from(Arc::clone(&counting)));
        assert_eq!(Arc::strong_count(&counting), 2);
        drop(full);
        assert_eq!(Arc::strong_count(&counting), 1);
    }
}
