//! 200 tasks through a 10-permit semaphore: prints the peak concurrency and
//! shows that permits were granted in exactly the order the tasks asked.
//!
//! Run: `cargo run --example semaphore`

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use limiters::Semaphore;

const TASKS: usize = 200;
const LIMIT: usize = 10;

// One thread, so tasks run in the order they are woken, which is the order
// in which the semaphore granted their permits.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let sem = Arc::new(Semaphore::new(LIMIT));
    let inside = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let queued = Arc::new(Mutex::new(Vec::new()));
    let granted = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();

    // Hold all 10 permits while the 200 tasks line up, so the queue order is
    // the order in which they asked.
    let gate = sem.acquire_many(LIMIT).await.unwrap();
    let mut tasks = Vec::new();
    for id in 0..TASKS {
        let (sem, inside, peak) = (sem.clone(), inside.clone(), peak.clone());
        let (queued, granted) = (queued.clone(), granted.clone());
        // Each task is polled once here, before the next one is created:
        // that first poll is its place in the queue.
        let mut acquire = Box::pin(sem.clone().acquire_owned());
        futures_lite::future::poll_once(&mut acquire).await;
        queued.lock().unwrap().push(id);
        tasks.push(tokio::spawn(async move {
            let permit = acquire.await.unwrap();
            granted.lock().unwrap().push(id);
            let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await; // the "request"
            inside.fetch_sub(1, Ordering::SeqCst);
            drop(permit);
        }));
    }
    println!("{TASKS} tasks queued behind a {LIMIT}-permit semaphore; releasing...");
    drop(gate);
    for t in tasks {
        t.await.unwrap();
    }

    let queued = queued.lock().unwrap();
    let granted = granted.lock().unwrap();
    let in_order = granted.windows(2).filter(|w| w[0] < w[1]).count() + 1;
    println!(
        "peak concurrency: {} (limit {LIMIT})",
        peak.load(Ordering::SeqCst)
    );
    println!("first grants:     {:?}", &granted[..12]);
    println!(
        "FIFO order:       {} of {} grants in the order the tasks queued ({})",
        in_order,
        granted.len(),
        if *granted == *queued {
            "strict FIFO"
        } else {
            "NOT FIFO"
        }
    );
    println!(
        "elapsed:          {:?} for {TASKS} x 5 ms jobs, 10 at a time (ideal {:?})",
        start.elapsed(),
        Duration::from_millis(5 * (TASKS / LIMIT) as u64)
    );
    println!("permits back:     {} of {LIMIT}", sem.available_permits());
}
