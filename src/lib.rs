//! Runtime-agnostic limiters for async and sync Rust.
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs, missing_debug_implementations, unsafe_op_in_unsafe_fn)]

extern crate alloc;

#[cfg(all(feature = "std", not(loom)))]
mod block;
mod bounded;
mod error;
mod semaphore;
mod sync;

pub use bounded::BoundedSemaphore;
pub use error::{AcquireError, OverRelease, TryAcquireError};
pub use semaphore::{OwnedPermit, Permit, Semaphore};

/// Every named future the crate returns, for callers that store them.
pub mod futures {
    pub use crate::semaphore::{Acquire, AcquireOwned, Run};
}
