//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Wake, Waker};
use std::time::Duration;

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

/// A waker that runs `on_drop` when its last handle is dropped: it stands
/// for the last handle to a task, whose futures (holding permits, queued
/// acquires) are dropped with it and may call back into the primitive that
/// dropped the waker (tokio's `release_permits_at_drop`).
pub fn waker_dropping(on_drop: impl FnOnce() + Send + 'static) -> Waker {
    struct OnDrop(Mutex<Option<Box<dyn FnOnce() + Send>>>);
    impl Wake for OnDrop {
        fn wake(self: Arc<Self>) {}
    }
    impl Drop for OnDrop {
        fn drop(&mut self) {
            if let Some(f) = self.0.lock().unwrap().take() {
                f();
            }
        }
    }
    Waker::from(Arc::new(OnDrop(Mutex::new(Some(Box::new(on_drop))))))
}

/// A waker whose `clone` panics (as a user's waker may): a primitive must
/// clone before it changes anything, so that the panic loses nothing.
pub fn panicking_clone_waker() -> Waker {
    fn clone(_: *const ()) -> RawWaker {
        panic!("Waker::clone panicked (on purpose)")
    }
    fn noop(_: *const ()) {}
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, noop, noop, noop);
    // SAFETY: every function of the vtable ignores the data pointer, and
    // none of them does anything a `Waker` may not (`clone` panics).
    unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &VTABLE)) }
}

/// Runs `f` on its own thread and fails the test if it has not returned
/// after a minute: a self-deadlock then fails with a message instead of
/// hanging the test binary. (A watchdog only: no test relies on timing.)
pub fn no_deadlock(f: impl FnOnce() + Send + 'static) {
    let (done, finished) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        f();
        let _ = done.send(());
    });
    match finished.recv_timeout(Duration::from_secs(60)) {
        Ok(()) => thread.join().unwrap(),
        // The thread panicked (the sender was dropped): report its panic.
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            std::panic::resume_unwind(thread.join().unwrap_err())
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("deadlocked: a lock was taken again by code run under it")
        }
    }
}

/// A [`ManualClock`](limiters::ManualClock) whose sleeps never complete and
/// never keep a waker: a future waiting on it is only ever woken by the
/// primitive under test, which then holds the only stored copy of its waker.
#[derive(Clone, Debug, Default)]
pub struct DeafClock(pub limiters::ManualClock);

impl limiters::Clock for DeafClock {
    type Instant = limiters::ManualInstant;
    type Sleep = std::future::Pending<()>;

    fn now(&self) -> limiters::ManualInstant {
        self.0.now()
    }

    fn sleep_until(&self, _deadline: limiters::ManualInstant) -> Self::Sleep {
        std::future::pending()
    }
}

/// A deterministic pseudo-random source (xorshift64) for tests that mix
/// operations in a random but replayable order: `next(n)` is in `0..n`.
pub fn xorshift(mut seed: u64) -> impl FnMut(u64) -> u64 {
    move |n| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    }
}

/// How often each probe was woken so far.
pub fn wakes<F: Future>(probes: &[Probe<F>]) -> Vec<usize> {
    probes.iter().map(Probe::wakes).collect()
}

/// Polls every probe: each must complete with `AcquireError::Closed`.
pub fn assert_all_closed<T, F>(probes: &mut [Probe<F>])
where
    F: Future<Output = Result<T, limiters::AcquireError>>,
{
    for p in probes {
        assert!(p.poll());
        assert_eq!(p.take().err(), Some(limiters::AcquireError::Closed));
    }
}
