//! A deterministic simulated server on a `ManualClock`, and clients that
//! keep it busy through a `Limiter`: the bench for adaptive concurrency
//! (tests/adaptive.rs asserts on it, examples/adaptive_plot.rs draws it).
#![allow(dead_code)]
//!
//! The server has a capacity `C`: below it every request takes `BASE`;
//! above it requests queue, so each takes `BASE * in_flight / C`; above
//! `2C` it answers 429 at once (after 1 ms).

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use limiters::{Clock, Limiter, ManualClock};

/// The server's latency below capacity: one round trip.
pub const BASE: Duration = Duration::from_millis(10);

/// One millisecond of the run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tick {
    pub capacity: usize,
    pub limit: usize,
    pub in_flight: usize,
    /// Answers so far: 200s and 429s.
    pub ok: u64,
    pub overloaded: u64,
}

struct Server {
    clock: ManualClock,
    capacity: Cell<usize>,
    in_flight: Cell<usize>,
}

/// Counts a request in flight until dropped.
struct InFlight(Rc<Server>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.set(self.0.in_flight.get() - 1);
    }
}

/// Calls the server: `true` for a 200, `false` for a 429.
async fn call(server: Rc<Server>) -> bool {
    server.in_flight.set(server.in_flight.get() + 1);
    let _guard = InFlight(server.clone());
    let (n, c) = (server.in_flight.get(), server.capacity.get());
    let (ok, latency) = if n > 2 * c {
        (false, Duration::from_millis(1))
    } else {
        (true, BASE * n.max(c) as u32 / c as u32)
    };
    let now = server.clock.now();
    server.clock.sleep_until(now + latency).await;
    ok
}

/// A client: sends requests forever.
type Task = Pin<Box<dyn Future<Output = ()>>>;

/// Set when woken: the task is polled again.
struct FlagWaker(AtomicBool);

impl Wake for FlagWaker {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Runs `clients` clients, each sending one request after another through
/// `limiter`, against the server whose capacity is `phases[i].1` from
/// `phases[i].0` ms on, for `total_ms`; returns one tick per ms. At the
/// end every client is dropped (cancelled wherever it is).
pub fn run(
    limiter: &Limiter<ManualClock>,
    clock: &ManualClock,
    clients: usize,
    phases: &[(u64, usize)],
    total_ms: u64,
) -> Vec<Tick> {
    let server = Rc::new(Server {
        clock: clock.clone(),
        capacity: Cell::new(phases[0].1),
        in_flight: Cell::new(0),
    });
    let ok = Rc::new(Cell::new(0u64));
    let overloaded = Rc::new(Cell::new(0u64));
    let mut tasks: Vec<(Task, Arc<FlagWaker>)> = (0..clients)
        .map(|_| {
            let (limiter, server) = (limiter.clone(), server.clone());
            let (ok, overloaded) = (ok.clone(), overloaded.clone());
            let task: Task = Box::pin(async move {
                loop {
                    let mut permit = limiter.acquire().await.expect("never closed");
                    if call(server.clone()).await {
                        ok.set(ok.get() + 1);
                    } else {
                        overloaded.set(overloaded.get() + 1);
                        permit.overloaded();
                    }
                    drop(permit);
                }
            });
            (task, Arc::new(FlagWaker(true.into())))
        })
        .collect();
    let mut ticks = Vec::new();
    for t in 0..total_ms {
        if let Some(&(_, c)) = phases.iter().find(|&&(at, _)| at == t) {
            server.capacity.set(c);
        }
        // Run every woken task until none is woken, as an executor would.
        loop {
            let mut progressed = false;
            for (task, flag) in &mut tasks {
                if flag.0.swap(false, Ordering::SeqCst) {
                    progressed = true;
                    let waker = Waker::from(flag.clone());
                    let _ = task.as_mut().poll(&mut Context::from_waker(&waker));
                }
            }
            if !progressed {
                break;
            }
        }
        ticks.push(Tick {
            capacity: server.capacity.get(),
            limit: limiter.limit().expect("a concurrency limit"),
            in_flight: server.in_flight.get(),
            ok: ok.get(),
            overloaded: overloaded.get(),
        });
        clock.advance(Duration::from_millis(1));
    }
    drop(tasks);
    ticks
}
