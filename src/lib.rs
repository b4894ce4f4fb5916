//! Runtime-agnostic limiters for async and sync Rust.
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs, missing_debug_implementations, unsafe_op_in_unsafe_fn)]

extern crate alloc;

mod error;
mod sync;

pub use error::{AcquireError, OverRelease, TryAcquireError};
