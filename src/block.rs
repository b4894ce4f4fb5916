//! A minimal `block_on` for the blocking acquires: polls on this thread and
//! parks it between wake-ups.
//!
//! The waker (an `Arc` around this thread's handle) is made once per thread
//! and kept in a thread-local, so a blocking wait allocates nothing after the
//! thread's first. A `block_on` nested inside another on the same thread (a
//! future that blocks while being polled) finds the slot empty and makes a
//! fresh waker of its own.

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

struct Unparker(Thread);

impl Wake for Unparker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

thread_local! {
    /// This thread's waker while no `block_on` is running on it.
    static WAKER: Cell<Option<Waker>> = const { Cell::new(None) };
}

pub(crate) fn block_on<F: Future>(fut: F) -> F::Output {
    // Taken out for the whole wait: a nested call finds `None`. `try_with`:
    // the thread-local may already be destroyed (a blocking acquire in
    // another thread-local's destructor); then the waker is not kept.
    let waker = WAKER
        .try_with(Cell::take)
        .ok()
        .flatten()
        .unwrap_or_else(|| Waker::from(Arc::new(Unparker(thread::current()))));
    let out = wait(fut, &waker);
    // Put back (a nested call's own waker, if any, is dropped here). Not on
    // a panic: the next call then makes a new one.
    let _ = WAKER.try_with(|slot| slot.set(Some(waker)));
    out
}

fn wait<F: Future>(fut: F, waker: &Waker) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(waker);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        // A spurious unpark (a wake-up left over from an earlier wait with
        // this waker, say) only costs one extra poll.
        thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Semaphore;

    #[test]
    fn nested_block_on_gets_its_own_waker_and_the_thread_keeps_one() {
        let sem = Semaphore::new(1);
        let out = block_on(async {
            // The outer call holds the thread's waker: the slot is empty.
            assert!(WAKER.with(|slot| {
                let w = slot.take();
                let empty = w.is_none();
                slot.set(w);
                empty
            }));
            let permit = sem.acquire_blocking().unwrap();
            permit.num_permits()
        });
        assert_eq!(out, 1);
        let kept = WAKER.with(|slot| {
            let w = slot.take();
            let kept = w.is_some();
            slot.set(w);
            kept
        });
        assert!(kept, "the thread keeps a waker for its next blocking wait");
    }
}
