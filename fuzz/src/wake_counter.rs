//! A waker that counts its wake-ups, shared by the harnesses as
//! `crate::wake_counter` (`tests/fuzz_models.rs` declares it the same way
//! beside them).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Wake;

/// Counts `wake` and `wake_by_ref` calls.
#[derive(Default)]
pub struct WakeCounter(AtomicUsize);

impl WakeCounter {
    /// Wake-ups so far.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Wake for WakeCounter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}
