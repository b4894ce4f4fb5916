//! One handle over `Semaphore` and `BoundedSemaphore`, so a harness drives
//! either through the same calls. Shared by the fuzz harness
//! (`semaphore.rs`) and the chaos test (`tests/chaos.rs`, which includes
//! this file by path).

use std::sync::Arc;

use limiters::futures::{Acquire, AcquireOwned};
use limiters::{BoundedSemaphore, OwnedPermit, Permit, Semaphore, TryAcquireError};

#[derive(Clone)]
pub enum Sem {
    Plain(Arc<Semaphore>),
    Bounded(Arc<BoundedSemaphore>),
}

/// Calls the same method on whichever semaphore `$sem` holds.
macro_rules! either {
    ($sem:expr, $s:ident => $call:expr) => {
        match $sem {
            Sem::Plain($s) => $call,
            Sem::Bounded($s) => $call,
        }
    };
}

impl Sem {
    pub fn acquire_many(&self, n: usize) -> Acquire<'_> {
        either!(self, s => s.acquire_many(n))
    }
    pub fn acquire_many_owned(&self, n: usize) -> AcquireOwned {
        either!(self, s => s.acquire_many_owned(n))
    }
    pub fn try_acquire_many(&self, n: usize) -> Result<Permit<'_>, TryAcquireError> {
        either!(self, s => s.try_acquire_many(n))
    }
    pub fn try_acquire_many_owned(&self, n: usize) -> Result<OwnedPermit, TryAcquireError> {
        either!(self, s => s.try_acquire_many_owned(n))
    }
    pub fn close(&self) {
        either!(self, s => s.close())
    }
    pub fn available_permits(&self) -> usize {
        either!(self, s => s.available_permits())
    }
    pub fn waiters(&self) -> usize {
        either!(self, s => s.waiters())
    }
    pub fn is_closed(&self) -> bool {
        either!(self, s => s.is_closed())
    }
    /// The semaphore's `Debug` output.
    pub fn describe(&self) -> String {
        either!(self, s => format!("{s:?}"))
    }
}
