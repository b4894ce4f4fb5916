//! The one place that decides where atomics, locks and cells come from.
//!
//! Under `cfg(loom)` everything is loom's, so the models in `loom-tests/`
//! explore every interleaving of the real code. Otherwise atomics come from
//! `core`, the lock is `std::sync::Mutex` (with `std`) or a small spin lock
//! (without it), and cells are plain `UnsafeCell`s behind loom's closure API.

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicU64, AtomicUsize};
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, AtomicUsize};

pub(crate) use core::sync::atomic::Ordering;

/// A 128-bit atomic word: the rate limiters keep their whole state in one.
/// `portable-atomic`'s is lock-free (`cmpxchg16b`, `casp`/`ldxp`) where the
/// CPU has it and falls back to a seqlock elsewhere.
#[cfg(not(loom))]
pub(crate) use portable_atomic::AtomicU128;

#[cfg(loom)]
pub(crate) use loom_u128::AtomicU128;

/// loom has no 128-bit atomic; a loom mutex around a `u128` with the same
/// `load`/`compare_exchange` API lets the models explore every interleaving
/// of the CAS loops (each operation is one atomic step, like the real one).
#[cfg(loom)]
mod loom_u128 {
    use super::Ordering;

    #[derive(Debug)]
    pub(crate) struct AtomicU128(loom::sync::Mutex<u128>);

    impl AtomicU128 {
        pub(crate) fn new(value: u128) -> Self {
            Self(loom::sync::Mutex::new(value))
        }

        pub(crate) fn load(&self, _order: Ordering) -> u128 {
            *self.0.lock().unwrap()
        }

        pub(crate) fn store(&self, value: u128, _order: Ordering) {
            *self.0.lock().unwrap() = value;
        }

        pub(crate) fn compare_exchange(
            &self,
            current: u128,
            new: u128,
            _success: Ordering,
            _failure: Ordering,
        ) -> Result<u128, u128> {
            let mut guard = self.0.lock().unwrap();
            if *guard == current {
                *guard = new;
                Ok(current)
            } else {
                Err(*guard)
            }
        }
    }
}

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

/// `core::cell::UnsafeCell` with loom's `with`/`with_mut` API.
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(core::cell::UnsafeCell::new(value))
    }

    #[inline]
    #[allow(dead_code)] // loom's API; not every build reads a cell
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    #[inline]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

pub(crate) use lock::{Mutex, MutexGuard};

#[cfg(loom)]
mod lock {
    /// loom's mutex; poisoning cannot happen in a model that does not panic.
    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);
    pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
    }
}

#[cfg(all(not(loom), feature = "std"))]
mod lock {
    /// `std::sync::Mutex` without poisoning: every critical section in this
    /// crate leaves the protected data consistent before anything can panic,
    /// so a poisoned lock is still safe to use.
    #[derive(Debug)]
    pub(crate) struct Mutex<T>(std::sync::Mutex<T>);
    pub(crate) type MutexGuard<'a, T> = std::sync::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub(crate) const fn new(value: T) -> Self {
            Self(std::sync::Mutex::new(value))
        }

        #[inline]
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
    }
}

#[cfg(all(not(loom), not(feature = "std")))]
mod lock {
    use core::cell::UnsafeCell;
    use core::ops::{Deref, DerefMut};
    use core::sync::atomic::{AtomicBool, Ordering};

    /// A test-and-test-and-set spin lock for `no_std` builds, with no
    /// fairness and no backoff beyond `spin_loop`.
    ///
    /// Most critical sections in this crate are a few pointer and counter
    /// updates, but not all: re-timing a rate limiter's waiters
    /// (`set_quota`, `pause_for`, `pause_until`) walks every queued waiter
    /// under the lock, expiring a sliding window's log walks the expired
    /// entries, and `ManualClock::advance` scans every sleeper. A thread
    /// that wants the lock meanwhile spins for that long, and if the holder
    /// is preempted, until it runs again.
    pub(crate) struct Mutex<T> {
        locked: AtomicBool,
        value: UnsafeCell<T>,
    }

    // SAFETY: the lock hands out at most one `&mut T` at a time, so sharing the
    // mutex between threads is sound whenever `T` may be sent between them.
    unsafe impl<T: Send> Sync for Mutex<T> {}
    // SAFETY: moving the mutex moves the `T` it owns.
    unsafe impl<T: Send> Send for Mutex<T> {}

    impl<T> core::fmt::Debug for Mutex<T> {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.write_str("Mutex { .. }")
        }
    }

    pub(crate) struct MutexGuard<'a, T>(&'a Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) const fn new(value: T) -> Self {
            Self {
                locked: AtomicBool::new(false),
                value: UnsafeCell::new(value),
            }
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            loop {
                // Acquire: synchronizes with the Release store in `drop` of the
                // previous guard, so its writes to `value` are visible.
                if self
                    .locked
                    .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return MutexGuard(self);
                }
                while self.locked.load(Ordering::Relaxed) {
                    core::hint::spin_loop();
                }
            }
        }
    }

    impl<T> Deref for MutexGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            // SAFETY: the guard exists only while `locked` is held by us.
            unsafe { &*self.0.value.get() }
        }
    }

    impl<T> DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            // SAFETY: the guard exists only while `locked` is held by us, and
            // `&mut self` makes this the only reference through it.
            unsafe { &mut *self.0.value.get() }
        }
    }

    impl<T> Drop for MutexGuard<'_, T> {
        fn drop(&mut self) {
            // Release: publishes our writes to the next `lock`'s Acquire.
            self.0.locked.store(false, Ordering::Release);
        }
    }
}

/// Declares a function that is `const` except under `cfg(loom)`, where
/// loom's atomics and locks have no `const` constructors.
macro_rules! const_fn {
    ($(#[$attr:meta])* $vis:vis fn $($rest:tt)*) => {
        #[cfg(not(loom))]
        $(#[$attr])* $vis const fn $($rest)*
        #[cfg(loom)]
        $(#[$attr])* $vis fn $($rest)*
    };
}
pub(crate) use const_fn;

/// Keeps `T` on cache lines of its own: whatever another core writes
/// beside it does not take its line away. 64 bytes, the line of x86-64 and
/// of most aarch64 cores; aligning the contended `Limiter::run`'s words to
/// 128 (the pair of lines Intel prefetches together) measured the same,
/// at more memory per limiter.
#[repr(align(64))]
#[derive(Debug)]
pub(crate) struct CachePadded<T>(pub(crate) T);

impl<T> core::ops::Deref for CachePadded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}
