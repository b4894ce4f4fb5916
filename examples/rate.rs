//! 1,000 cells at 1000/s from 10 tasks, on the real clock: prints how many
//! were admitted in each 100 ms next to the ideal (100 per bucket, the first
//! one also gets the burst).
//!
//! Run with `cargo run --release --example rate`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use limiters::{Quota, RateLimiter};

const CELLS: usize = 1_000;
const TASKS: usize = 10;
const RATE: u32 = 1_000;
const BURST: u32 = 10;

fn main() {
    let limiter = RateLimiter::new(Quota::per_second(RATE).allow_burst(BURST));
    let admitted = Mutex::new(Vec::with_capacity(CELLS));
    let start = Instant::now();

    // Ten tasks sharing one limiter, each taking its share of the cells.
    futures_lite::future::block_on(futures::future::join_all((0..TASKS).map(|_| async {
        for _ in 0..CELLS / TASKS {
            limiter.acquire().await;
            admitted.lock().unwrap().push(start.elapsed());
        }
    })));
    let total = start.elapsed();

    let admitted = admitted.into_inner().unwrap();
    let buckets = (total.as_millis() / 100 + 1) as usize;
    let mut counts = vec![0usize; buckets];
    for at in &admitted {
        counts[(at.as_millis() / 100) as usize] += 1;
    }
    println!("{:>10} {:>9} {:>6}", "window", "admitted", "ideal");
    let mut ideal_total = 0;
    for (i, count) in counts.iter().enumerate() {
        // Ideal: the burst at once, then one cell every millisecond.
        let end = ((i as u64 + 1) * 100).min(1_000 - u64::from(BURST) + 1);
        let ideal = (BURST as usize + end as usize - 1).min(CELLS) - ideal_total;
        ideal_total += ideal;
        println!(
            "{:>4}-{:<4}ms {count:>9} {ideal:>6}",
            i * 100,
            (i + 1) * 100
        );
    }
    println!(
        "{} cells in {:.3} s (ideal {:.3} s: the burst, then {} more at {}/s)",
        admitted.len(),
        total.as_secs_f64(),
        Duration::from_millis(u64::from(CELLS as u32 - BURST)).as_secs_f64(),
        CELLS as u32 - BURST,
        RATE
    );
}
