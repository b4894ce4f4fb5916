//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

/// A waker that counts how often it was woken.
#[derive(Default)]
pub struct CountingWaker {
    wakes: AtomicUsize,
}

impl CountingWaker {
    /// How many times it was woken so far.
    pub fn count(&self) -> usize {
        self.wakes.load(Ordering::SeqCst)
    }
}

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
    }
}

/// A future polled by hand with its own counting waker, so a test can say
/// exactly who was woken and who is ready, without any timing.
pub struct Probe<F: Future> {
    fut: Pin<Box<F>>,
    counter: Arc<CountingWaker>,
    waker: Waker,
    output: Option<F::Output>,
}

impl<F: Future> Probe<F> {
    pub fn new(fut: F) -> Self {
        let counter = Arc::new(CountingWaker::default());
        let waker = Waker::from(counter.clone());
        Self {
            fut: Box::pin(fut),
            counter,
            waker,
            output: None,
        }
    }

    /// Polls once (unless already finished); returns whether it is ready.
    pub fn poll(&mut self) -> bool {
        if self.output.is_none() {
            let mut cx = Context::from_waker(&self.waker);
            if let Poll::Ready(v) = self.fut.as_mut().poll(&mut cx) {
                self.output = Some(v);
            }
        }
        self.output.is_some()
    }

    /// How many times this probe's waker was woken so far.
    pub fn wakes(&self) -> usize {
        self.counter.count()
    }

    pub fn is_ready(&self) -> bool {
        self.output.is_some()
    }

    /// The output; panics if not ready.
    pub fn take(&mut self) -> F::Output {
        self.output.take().expect("probe is not ready")
    }
}

/// Polls a future once with a no-op waker.
pub fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    Pin::new(fut).poll(&mut Context::from_waker(Waker::noop()))
}
