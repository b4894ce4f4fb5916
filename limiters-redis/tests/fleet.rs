//! Four OS processes (the `fleet` example, 500 requests each) share one
//! quota of 100 per second, burst 10, on one key. The script logs the
//! server's time of every admission; read back, the log never shows more
//! than `10 + floor(W * 100 / s)` admissions in any window of length `W`,
//! and the fleet's rate is within 2% of 100 per second.
//!
//! Takes about 20 s of wall time (2,000 cells at 100 per second).

mod common;

use std::process::Command;

use common::{direct, RedisServer};
use redis::AsyncCommands;

const PROCESSES: usize = 4;
const REQUESTS: u64 = 500;
const PER_SECOND: u64 = 100;
const BURST: u64 = 10;

#[tokio::test(flavor = "current_thread")]
async fn four_processes_share_one_quota_exactly() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    // target/<profile>/deps/fleet-<hash> -> target/<profile>/examples/fleet
    let exe = std::env::current_exe().unwrap();
    let example = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join("fleet");
    assert!(
        example.exists(),
        "{} is missing: build it first with `cargo build -p limiters-redis --all-features --example fleet` (./test.sh does)",
        example.display()
    );
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            Command::new(&example)
                .args([server.url(), "fleet".into(), REQUESTS.to_string()])
                .spawn()
                .expect("start the fleet example")
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }

    let mut redis = direct(&server).await;
    let log: Vec<String> = redis.lrange("{fleet}:admissions", 0, -1).await.unwrap();
    let mut at: Vec<u128> = log.iter().map(|ns| ns.parse().unwrap()).collect();
    at.sort_unstable();
    assert_eq!(at.len() as u64, PROCESSES as u64 * REQUESTS);

    // Every window [at[i], at[j]] holds j - i + 1 admissions.
    let mut worst_excess = i64::MIN;
    for i in 0..at.len() {
        for j in i..at.len() {
            let window = at[j] - at[i];
            let bound = BURST + (window * u128::from(PER_SECOND) / 1_000_000_000) as u64;
            let count = (j - i + 1) as u64;
            worst_excess = worst_excess.max(count as i64 - bound as i64);
            assert!(
                count <= bound,
                "{count} admissions in {window} ns: more than {bound}"
            );
        }
    }
    // After the burst, one cell every 10 ms.
    let span = (at[at.len() - 1] - at[0]) as f64 / 1e9;
    let rate = (at.len() as u64 - BURST) as f64 / span;
    eprintln!(
        "{} admissions over {span:.3} s: {rate:.2}/s after the burst; \
         closest window to the bound: {worst_excess} (0 = at the bound)",
        at.len()
    );
    assert!(
        (rate - PER_SECOND as f64).abs() <= PER_SECOND as f64 * 0.02,
        "fleet rate {rate:.2}/s is not within 2% of {PER_SECOND}/s"
    );
}
