//! Adaptive concurrency (`LimiterBuilder::adaptive`) on a `ManualClock`:
//! the semaphore underneath shrinks without revoking and grows in FIFO
//! order, and `Gradient` follows a simulated server whose capacity moves
//! 20 -> 50 -> 10 -> 30 (tests/common/sim.rs).

mod common;

#[path = "common/sim.rs"]
mod sim;

use common::Probe;
use limiters::{Aimd, Gradient, Limiter, ManualClock, Outcome, Sample};
use std::time::Duration;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Growing hands the new permit to the head of the queue (FIFO kept);
/// shrinking revokes nothing held: permits released above the new limit
/// are forgotten, and waiters get permits only once in-flight work is
/// below it.
#[test]
fn the_limit_grows_to_the_queue_head_and_shrinks_without_revoking() {
    let clock = ManualClock::new();
    let limiter = Limiter::builder()
        .adaptive(Aimd::new().initial(1).max(10))
        .clock(clock.clone())
        .build()
        .unwrap();
    let first = futures_lite::future::block_on(limiter.acquire()).unwrap();
    let mut queued: Vec<_> = (0..3).map(|_| Probe::new(limiter.acquire())).collect();
    for q in &mut queued {
        assert!(!q.poll());
    }
    drop(first); // a success with the limit in use: 1 -> 2
    assert_eq!(limiter.limit(), Some(2));
    assert_eq!(
        [queued[0].wakes(), queued[1].wakes(), queued[2].wakes()],
        [1, 1, 0]
    );
    assert!(queued[0].poll() && queued[1].poll() && !queued[2].poll());
    let mut a = queued.remove(0).take().unwrap();
    let b = queued.remove(0).take().unwrap();

    // Overload: 2 -> 1 while both are held; nothing is revoked.
    a.overloaded();
    drop(a); // forgotten: the limit is 1 and `b` holds it
    assert_eq!(limiter.limit(), Some(1));
    assert!(!queued[0].poll());
    assert_eq!(limiter.available_slots(), Some(0));
    drop(b); // below the limit now: the queue head gets it
    assert!(queued[0].poll());
    drop(queued); // a success with the limit in use: 1 -> 2
    assert_eq!(limiter.limit(), Some(2));
    assert_eq!(limiter.available_slots(), Some(2));
}

/// AIMD backs off at most once per round trip: the 429s of requests that
/// started before the decrease do not halve the limit again.
#[test]
fn aimd_backs_off_once_per_round_trip() {
    let mut aimd = Aimd::new().initial(40);
    let s = |start, end, outcome| Sample::new(ms(start), ms(end), 40, 40, outcome);
    assert_eq!(
        limiters::Algorithm::update(&mut aimd, &s(0, 10, Outcome::Overload)),
        20
    );
    let again = Sample::new(ms(2), ms(11), 20, 20, Outcome::Overload);
    assert_eq!(limiters::Algorithm::update(&mut aimd, &again), 20);
    let later = Sample::new(ms(12), ms(20), 20, 20, Outcome::Overload);
    assert_eq!(limiters::Algorithm::update(&mut aimd, &later), 10);
}

/// For the phase `from..to`: the round trips (of `sim::BASE`) until the
/// limit first comes within 20% of the capacity, and the share of the
/// rest of the phase it spends there.
fn convergence(ticks: &[sim::Tick], from: usize, to: usize) -> (usize, f64) {
    let capacity = ticks[from].capacity as f64;
    let within = |t: &sim::Tick| (t.limit as f64 - capacity).abs() <= 0.2 * capacity;
    let reached = (from..to).find(|&i| within(&ticks[i])).unwrap_or(to);
    let rtt = sim::BASE.as_millis() as usize;
    let inside = ticks[reached..to].iter().filter(|t| within(t)).count();
    (
        (reached - from).div_ceil(rtt),
        inside as f64 / (to - reached).max(1) as f64,
    )
}

const PHASES: [(u64, usize); 4] = [(0, 20), (2_000, 50), (4_000, 10), (6_000, 30)];
const TOTAL_MS: u64 = 8_000;
const CLIENTS: usize = 150;

/// `Gradient` against a server whose capacity moves 20 -> 50 ->
/// 10 -> 30 (each for 200 round trips) reaches within 20% of each new
/// capacity within 20 round trips and spends at least 90% of the rest of
/// the phase there; it backs off within one
/// round trip of the first 429; its goodput beats a fixed limit of 20;
/// and when every client is dropped, every slot comes back.
#[test]
fn gradient_follows_a_moving_capacity() {
    let clock = ManualClock::new();
    let limiter = Limiter::builder()
        .adaptive(Gradient::new().initial(20).max(200))
        .clock(clock.clone())
        .build()
        .unwrap();
    let ticks = sim::run(&limiter, &clock, CLIENTS, &PHASES, TOTAL_MS);
    let mut report = Vec::new();
    for (i, &(at, capacity)) in PHASES.iter().enumerate() {
        let end = PHASES.get(i + 1).map_or(TOTAL_MS, |p| p.0) as usize;
        let (rounds, inside) = convergence(&ticks, at as usize, end);
        report.push(format!(
            "{capacity}: {rounds} round trips, then {:.0}% within",
            inside * 100.0
        ));
        assert!(rounds <= 20, "capacity {capacity}: {rounds} round trips");
        assert!(
            inside >= 0.9,
            "capacity {capacity}: {inside} of the phase within 20%"
        );
    }
    // The first 429 (when the capacity drops to 10) and the first lower
    // limit after it.
    let first_429 = ticks.iter().position(|t| t.overloaded > 0).expect("a 429");
    let backed_off = (first_429..ticks.len())
        .find(|&i| ticks[i].limit < ticks[first_429].limit)
        .expect("backed off");
    let backoff_ms = backed_off - first_429;
    let fixed_clock = ManualClock::new();
    let fixed = Limiter::builder()
        .concurrency(20)
        .clock(fixed_clock.clone())
        .build()
        .unwrap();
    let fixed_ticks = sim::run(&fixed, &fixed_clock, CLIENTS, &PHASES, TOTAL_MS);
    let (ours, theirs) = (ticks.last().unwrap().ok, fixed_ticks.last().unwrap().ok);
    println!(
        "to within 20% of each capacity: {report:?}; first 429 at {first_429} ms, \
         limit lower {backoff_ms} ms later; goodput {ours} vs {theirs} with a fixed limit of 20 \
         ({:.2}x); 429s {} vs {}",
        ours as f64 / theirs as f64,
        ticks.last().unwrap().overloaded,
        fixed_ticks.last().unwrap().overloaded,
    );
    assert!(
        backoff_ms <= sim::BASE.as_millis() as usize,
        "backed off after {backoff_ms} ms"
    );
    assert!(ours > theirs, "goodput {ours} vs {theirs}");
    // Every client was dropped at the end: nothing is lost.
    assert_eq!(limiter.available_slots(), limiter.limit());
}

/// Conservation while the total moves: acquires, drops of queued and
/// held requests, and every outcome in a random order (xorshift, fixed
/// seed). After each step, with every woken waiter polled: no slot is
/// free while someone waits, free slots are exactly the limit minus what
/// is held (never more: permits above the limit are forgotten), held
/// requests are never revoked, and at the end every slot is back.
#[test]
fn random_outcomes_conserve_the_slots() {
    let clock = ManualClock::new();
    let limiter = Limiter::builder()
        .adaptive(Aimd::new().initial(4).min(1).max(8))
        .clock(clock.clone())
        .build()
        .unwrap();
    let mut next = common::xorshift(0x9e37_79b9_7f4a_7c15);
    let mut queued = Vec::new();
    let mut held = Vec::new();
    let (mut shrinks, mut grows, mut last) = (0, 0, limiter.limit().unwrap());
    for _ in 0..5_000 {
        match next(5) {
            0 | 1 if queued.len() < 12 => queued.push(Probe::new(limiter.acquire())),
            2 if !queued.is_empty() => drop(queued.swap_remove(next(queued.len() as u64) as usize)),
            _ if !held.is_empty() => {
                let mut permit: limiters::LimiterPermit<ManualClock> =
                    held.swap_remove(next(held.len() as u64) as usize);
                match next(4) {
                    0 => permit.overloaded(),
                    1 => permit.ignore(),
                    _ => {}
                }
                clock.advance(ms(next(3)));
                drop(permit);
            }
            _ => {}
        }
        let mut i = 0;
        while i < queued.len() {
            if queued[i].poll() {
                held.push(queued.swap_remove(i).take().unwrap());
            } else {
                i += 1;
            }
        }
        let limit = limiter.limit().unwrap();
        match limit.cmp(&last) {
            std::cmp::Ordering::Less => shrinks += 1,
            std::cmp::Ordering::Greater => grows += 1,
            std::cmp::Ordering::Equal => {}
        }
        last = limit;
        let free = limiter.available_slots().unwrap();
        assert_eq!(
            free,
            limit.saturating_sub(held.len()),
            "limit {limit}, held {}",
            held.len()
        );
        if !queued.is_empty() {
            assert_eq!(free, 0);
        }
    }
    assert!(
        shrinks > 10 && grows > 10,
        "{shrinks} shrinks, {grows} grows"
    );
    drop(queued);
    drop(held);
    assert_eq!(limiter.available_slots(), limiter.limit());
}

/// `run` counts a completed future as a success and a dropped one as
/// nothing.
#[test]
fn run_reports_success_and_a_dropped_run_nothing() {
    let limiter = Limiter::builder()
        .adaptive(Aimd::new().initial(1).max(4))
        .clock(ManualClock::new())
        .build()
        .unwrap();
    let mut cancelled = Probe::new(limiter.run(futures_lite::future::pending::<()>()));
    assert!(!cancelled.poll()); // admitted, running
    drop(cancelled);
    assert_eq!(limiter.limit(), Some(1));
    futures_lite::future::block_on(limiter.run(async {})).unwrap();
    assert_eq!(limiter.limit(), Some(2));
}
