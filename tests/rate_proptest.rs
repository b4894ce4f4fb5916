//! Property tests of the rate limiters on `ManualClock`, against plain
//! reference models written in `u128` arithmetic.

use std::time::Duration;

use limiters::{
    KeyedRateLimiter, ManualClock, ManualInstant, Quota, RateLimitError, RateLimiter, TokenBucket,
    TokenBucketBuilder,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// GCRA in `u128`, in ns scaled by `cells` (so the emission interval
/// `period / cells` ns is exactly `period` units).
#[derive(Clone, Debug)]
struct Gcra {
    cells: u128,
    period: u128,
    burst: u128,
    tat: u128,
}

impl Gcra {
    fn new(cells: u32, period: u64, burst: u32) -> Self {
        Gcra {
            cells: cells.into(),
            period: period.into(),
            burst: burst.into(),
            tat: 0,
        }
    }

    /// `Ok` or the earliest ns at which it would conform.
    fn check_n(&mut self, now: u64, n: u32) -> Result<(), u128> {
        let now = u128::from(now) * self.cells;
        let tat = self.tat.max(now) + u128::from(n) * self.period;
        let earliest = tat.saturating_sub(self.burst * self.period);
        if earliest <= now {
            self.tat = tat;
            Ok(())
        } else {
            Err(earliest.div_ceil(self.cells))
        }
    }

    /// Whole cells of credit left at `now`.
    fn remaining(&self, now: u64) -> u128 {
        let now = u128::from(now) * self.cells;
        let used = self.tat.max(now) - now;
        (self.burst * self.period).saturating_sub(used) / self.period
    }

    /// Nanoseconds from `now` until the whole burst conforms again.
    fn until_full(&self, now: u64) -> u128 {
        self.tat.div_ceil(self.cells).saturating_sub(now.into())
    }
}

/// `b + floor(W * cells / period)` for every window between two admissions.
/// `events` are (ns, cells) sorted by time.
fn max_window_excess(events: &[(u64, u32)], cells: u32, period: u64, burst: u32) -> i128 {
    let mut worst = i128::MIN;
    for i in 0..events.len() {
        let mut count: u128 = 0;
        for j in i..events.len() {
            count += u128::from(events[j].1);
            let w = u128::from(events[j].0 - events[i].0);
            let bound = u128::from(burst) + w * u128::from(cells) / u128::from(period);
            worst = worst.max(count as i128 - bound as i128);
        }
    }
    worst
}

fn quota_strategy() -> impl Strategy<Value = (u32, u64, u32)> {
    (1u32..=50, 1u64..=5_000, 1u32..=8).prop_map(|(cells, period_us, burst)| {
        (cells, period_us * 1_000 + u64::from(cells) % 7, burst)
    })
}

fn quota(cells: u32, period: u64, burst: u32) -> Quota {
    Quota::new(cells, Duration::from_nanos(period))
        .unwrap()
        .allow_burst(burst)
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Runs `ops` (clock step scale, fraction, cells) on a limiter and the
/// reference model from `start` ns after the limiter's creation: every
/// decision and `NotUntil` instant equal, and the window bound holds.
fn matches_reference(
    cells: u32,
    period: u64,
    burst: u32,
    start: u64,
    ops: &[(u64, u64, u32)],
) -> Result<(), TestCaseError> {
    let clock = ManualClock::new();
    let rl = RateLimiter::with_clock(quota(cells, period, burst), clock.clone());
    clock.advance(Duration::from_nanos(start));
    let origin = clock.now().as_nanos() - start;
    let mut model = Gcra::new(cells, period, burst);
    let t = period / u64::from(cells) + 1;
    let mut admitted = Vec::new();
    for &(scale, frac, n) in ops {
        // Steps from a nanosecond to a few emission intervals.
        let step = match scale {
            0 => frac % 3,
            1 => frac,
            2 => t * frac / 1000,
            _ => 3 * t * frac / 1000,
        };
        clock.advance(Duration::from_nanos(step));
        let now = clock.now().as_nanos() - origin;
        if agrees_with_model(rl.check_n(n), n, &mut model, origin, now)? {
            admitted.push((now, n));
        }
    }
    prop_assert!(max_window_excess(&admitted, cells, period, burst) <= 0);
    Ok(())
}

/// Whether `got`, a `check_n(n)` made `now` ns after `origin`, admitted,
/// after asserting that `model` decides the same at `now`: the same
/// admission, or a refusal naming the same instant, or (beyond the burst,
/// where the model is not asked) `InsufficientCapacity`.
fn agrees_with_model(
    got: Result<(), RateLimitError<ManualInstant>>,
    n: u32,
    model: &mut Gcra,
    origin: u64,
    now: u64,
) -> Result<bool, TestCaseError> {
    if u128::from(n) > model.burst {
        let is_capacity_error = matches!(
            got,
            Err(RateLimitError::InsufficientCapacity { requested, burst })
                if requested == n && u128::from(burst) == model.burst
        );
        prop_assert!(is_capacity_error, "{:?}", got);
        return Ok(false);
    }
    match (got, model.check_n(now, n)) {
        (Ok(()), Ok(())) => Ok(true),
        (Err(RateLimitError::NotUntil(d)), Err(earliest)) => {
            prop_assert_eq!(u128::from(d.earliest().as_nanos() - origin), earliest);
            prop_assert_eq!(d.wait_time().as_nanos(), earliest - u128::from(now));
            Ok(false)
        }
        (got, want) => Err(TestCaseError::fail(format!(
            "limiter {got:?} vs model {want:?}"
        ))),
    }
}

fn ns_since(clock: &ManualClock, rl_start: u64) -> u64 {
    clock.now().as_nanos() - rl_start
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2048,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/rate_proptest.txt",
        ))),
        ..ProptestConfig::default()
    })]

    /// Every decision and every `NotUntil` instant equals the reference
    /// model's, and the window bound holds on what was admitted.
    #[test]
    fn gcra_matches_reference_and_window_bound(
        (cells, period, burst) in quota_strategy(),
        ops in prop::collection::vec((0u64..4, 0u64..=1_000, 1u32..=9), 1..120),
    ) {
        matches_reference(cells, period, burst, 0, &ops)?;
    }

    /// The same, on a limiter whose clock reaches the end of the 8-byte
    /// state word's range (2^62 ticks of `1 / c` ns) during the run: the
    /// move to the 16-byte word changes no decision.
    #[test]
    fn gcra_matches_reference_across_the_move_to_the_wide_word(
        (cells, period, burst) in quota_strategy(),
        before in 0u64..=20_000_000,
        ops in prop::collection::vec((0u64..4, 0u64..=1_000, 1u32..=9), 1..120),
    ) {
        // `c`, the ticks per ns of the narrow word: `cells / gcd(cells, period)`.
        let c = u64::from(cells) / gcd(u64::from(cells), period);
        let end = (1u64 << 62) / c;
        matches_reference(cells, period, burst, end.saturating_sub(before), &ops)?;
    }

    /// Denied one nanosecond before the instant `NotUntil` names, admitted
    /// at it; and `check_n(k)` agrees with `k` checks.
    #[test]
    fn not_until_exact_and_check_n_agrees_with_checks(
        (cells, period, burst) in quota_strategy(),
        warmup in prop::collection::vec((0u64..=20_000, 1u32..=8), 0..30),
        k in 1u32..=8,
    ) {
        let clock = ManualClock::new();
        let a = RateLimiter::with_clock(quota(cells, period, burst), clock.clone());
        let b = RateLimiter::with_clock(quota(cells, period, burst), clock.clone());
        for (step, n) in warmup {
            clock.advance(Duration::from_nanos(step));
            prop_assert_eq!(a.check_n(n).is_ok(), b.check_n(n).is_ok());
        }
        let k = k.min(burst);
        let whole = a.check_n(k).is_ok();
        let singles = (0..k).map(|_| b.check().is_ok()).collect::<Vec<_>>();
        prop_assert_eq!(whole, singles.iter().all(|ok| *ok));
        if let Err(RateLimitError::NotUntil(d)) = a.check_n(k) {
            clock.advance(d.wait_time() - Duration::from_nanos(1));
            prop_assert!(a.check_n(k).is_err(), "admitted 1 ns early");
            clock.advance(Duration::from_nanos(1));
            prop_assert!(a.check_n(k).is_ok(), "denied at the named instant");
        }
    }

    /// Under saturating demand (every request made the moment NotUntil
    /// allows) the limiter admits at least `b + floor(W n / period) - 1`
    /// over `[0, W]`: it is live and never slower than the quota.
    #[test]
    fn saturating_demand_reaches_the_bound(
        (cells, period, burst) in quota_strategy(),
        n in 1u32..=3,
        rounds in 20usize..200,
    ) {
        // When each request takes the whole burst (a burst of one cell is
        // the common case) and the interval is not a whole number of ns, a
        // request admitted at the first whole ns after its theoretical time
        // cannot pass that lateness on: the upper bound forbids it, as the
        // burst has no room to absorb it. There the guarantee is the
        // long-run rate only. (Found by this test: cells 34 per 1,006 ns,
        // burst 2, requests of 2.)
        let n = n.min(burst);
        prop_assume!(n < burst || period % u64::from(cells) == 0);
        let clock = ManualClock::new();
        let rl = RateLimiter::with_clock(quota(cells, period, burst), clock.clone());
        let mut count: u128 = 0;
        for _ in 0..rounds {
            match rl.check_n(n) {
                Ok(()) => count += u128::from(n),
                Err(RateLimitError::NotUntil(d)) => clock.advance(d.wait_time()),
                Err(e) => prop_assert!(false, "{}", e),
            }
        }
        let w = u128::from(ns_since(&clock, 0));
        let bound = u128::from(burst) + w * u128::from(cells) / u128::from(period);
        prop_assert!(count <= bound);
        prop_assert!(count + u128::from(n) >= bound, "admitted {} of {}", count, bound);
    }

    /// Reservations, cancellations and pauses never break the window bound,
    /// and nothing is admitted during a pause.
    #[test]
    fn cancel_and_pause_keep_the_bound(
        (cells, period, burst) in quota_strategy(),
        ops in prop::collection::vec((0u8..6, 0u64..=3_000, 1u32..=8), 1..80),
    ) {
        let clock = ManualClock::new();
        let rl = RateLimiter::with_clock(quota(cells, period, burst), clock.clone());
        let t = period / u64::from(cells) + 1;
        let mut admitted = Vec::new();
        let mut held = Vec::new();
        // (op index, from, until) of each pause; (op index, ns) of each check.
        let mut pauses = Vec::new();
        let mut checks = Vec::new();
        for (i, (op, x, n)) in ops.into_iter().enumerate() {
            let n = n.min(burst);
            match op {
                0 | 1 => {
                    if rl.check_n(n).is_ok() {
                        admitted.push((clock.now().as_nanos(), n));
                        checks.push((i, clock.now().as_nanos()));
                    }
                }
                2 => held.push((rl.reserve_many(n).unwrap(), n)),
                3 => {
                    if !held.is_empty() {
                        let (r, n) = held.remove(x as usize % held.len());
                        let at = r.ready_at().as_nanos();
                        if at <= clock.now().as_nanos() {
                            admitted.push((at, n)); // spent before the cancel
                        }
                        r.cancel();
                    }
                }
                4 => {
                    let d = t * x / 300;
                    rl.pause_for(Duration::from_nanos(d));
                    let now = clock.now().as_nanos();
                    pauses.push((i, now, now + d));
                }
                _ => clock.advance(Duration::from_nanos(t * x / 1000)),
            }
        }
        for (r, n) in &held {
            admitted.push((r.ready_at().as_nanos(), *n));
        }
        admitted.sort();
        prop_assert!(max_window_excess(&admitted, cells, period, burst) <= 0);
        for (p, from, until) in pauses {
            // Nothing admitted strictly inside a pause (a reservation whose
            // time had come by the pause call kept it)...
            for (at, _) in &admitted {
                prop_assert!(!(from < *at && *at < until), "admitted at {} during [{}, {})", at, from, until);
            }
            // ...nor by a check made after the pause call.
            for (i, at) in &checks {
                prop_assert!(!(*i > p && *at < until), "check at {} during [{}, {})", at, from, until);
            }
        }
    }

    /// After `set_quota`, the window bound of the new quota holds on every
    /// window that starts at or after the change, waiters included.
    #[test]
    fn set_quota_keeps_the_new_bound(
        (cells, period, burst) in quota_strategy(),
        (cells2, period2, burst2) in quota_strategy(),
        before in prop::collection::vec((0u8..3, 0u64..=2_000, 1u32..=8), 0..40),
        after in prop::collection::vec((0u8..3, 0u64..=2_000, 1u32..=8), 1..60),
    ) {
        let clock = ManualClock::new();
        let rl = RateLimiter::with_clock(quota(cells, period, burst), clock.clone());
        let mut held = Vec::new();
        let mut admitted = Vec::new();
        let t = period / u64::from(cells) + 1;
        for (op, x, n) in before {
            let n = n.min(burst);
            match op {
                0 => { let _ = rl.check_n(n); }
                1 => held.push((rl.reserve_many(n).unwrap(), n)),
                _ => clock.advance(Duration::from_nanos(t * x / 1000)),
            }
        }
        let change = clock.now().as_nanos();
        // Reservations whose time had come by the change were admitted under
        // the old quota.
        let mut held: Vec<_> = held
            .into_iter()
            .filter(|(r, _)| r.ready_at().as_nanos() > change)
            .collect();
        rl.set_quota(quota(cells2, period2, burst2));
        let t2 = period2 / u64::from(cells2) + 1;
        for (op, x, n) in after {
            let n = n.min(burst2);
            match op {
                0 => {
                    if rl.check_n(n).is_ok() {
                        admitted.push((clock.now().as_nanos(), n));
                    }
                }
                1 => held.push((rl.reserve_many(n).unwrap(), n)),
                _ => clock.advance(Duration::from_nanos(t2 * x / 1000)),
            }
        }
        for (r, n) in &held {
            let at = r.ready_at().as_nanos();
            if *n <= burst2 {
                admitted.push((at, *n));
            }
        }
        admitted.sort();
        let from_change: Vec<_> = admitted.into_iter().filter(|(at, _)| *at >= change).collect();
        // Credit used before the change is carried over, so the first window
        // may start with a partial burst; never more than the new bound.
        prop_assert!(max_window_excess(&from_change, cells2, period2, burst2) <= 0);
    }

    /// The token bucket agrees with its reference model and never admits
    /// more than `max + refill * (boundaries in the window)`. Half the runs
    /// start just before the boundary at which the bucket's supply reaches
    /// 2^62 tokens (where one exists), where it moves from its 8-byte word
    /// to the 16-byte one, so both words and the move are covered.
    #[test]
    fn token_bucket_matches_reference_and_bound(
        max in prop_oneof![1u32..=20, Just(u32::MAX)],
        refill_frac in prop_oneof![1u32..=20, Just(u32::MAX)],
        initial_frac in 0u32..=20,
        interval in prop_oneof![1u64..=64, 1u64..=1_000_000],
        across_the_move in any::<bool>(),
        before in 0u64..=60,
        ops in prop::collection::vec((0u64..=3_000_000, prop_oneof![4 => 1u32..=21, 1 => any::<u32>()]), 1..120),
    ) {
        let refill = 1 + (refill_frac - 1) % max;
        let initial = initial_frac % max.saturating_add(1);
        let clock = ManualClock::new();
        let bucket: TokenBucket<ManualClock> = TokenBucketBuilder::new()
            .max(max)
            .initial(initial)
            .refill(refill)
            .interval(Duration::from_nanos(interval))
            .build_with_clock(clock.clone())
            .unwrap();
        if across_the_move {
            // `before` intervals ahead of the first boundary whose supply
            // reaches 2^62.
            let k = ((1u128 << 62) - u128::from(initial)).div_ceil(u128::from(refill));
            // Half the clock's range left for the run to settle in.
            if let Some(at) = u64::try_from(k * u128::from(interval)).ok().filter(|&at| at <= u64::MAX / 2) {
                clock.advance(Duration::from_nanos(at.saturating_sub(before * interval)));
            }
        }
        // Reference: tokens and the boundary they were counted at.
        let mut tokens = u128::from(initial);
        let mut at_k: u128 = 0;
        let mut admitted = Vec::new();
        for (step, n) in ops {
            clock.advance(Duration::from_nanos(step % (3 * interval + 1)));
            let now = clock.now().as_nanos();
            let k = u128::from(now / interval);
            tokens = (tokens + (k - at_k) * u128::from(refill)).min(u128::from(max));
            at_k = k;
            let got = bucket.check_n(n);
            if n > max {
                let is_capacity_error = matches!(got, Err(RateLimitError::InsufficientCapacity { .. }));
                prop_assert!(is_capacity_error);
                continue;
            }
            if tokens >= u128::from(n) {
                tokens -= u128::from(n);
                prop_assert!(got.is_ok());
                admitted.push((now, n));
            } else {
                let missing = u128::from(n) - tokens;
                let ready_k = k + missing.div_ceil(u128::from(refill));
                match got {
                    Err(RateLimitError::NotUntil(d)) => {
                        let at = (ready_k * u128::from(interval)).min(u128::from(u64::MAX));
                        prop_assert_eq!(u128::from(d.earliest().as_nanos()), at);
                    }
                    other => prop_assert!(false, "bucket {:?}, model denies", other),
                }
            }
        }
        for i in 0..admitted.len() {
            let mut count = 0u128;
            for j in i..admitted.len() {
                count += u128::from(admitted[j].1);
                let boundaries = u128::from(admitted[j].0 / interval - admitted[i].0 / interval);
                prop_assert!(count <= u128::from(max) + boundaries * u128::from(refill));
            }
        }
    }

    /// `remaining()` is exactly the largest `n` `check_n(n)` admits now and
    /// `until_full()` exactly when the burst is whole again, through checks,
    /// reservations, cancellations, pauses and quota changes.
    #[test]
    fn remaining_and_until_full_are_exact(
        (cells, period, burst) in quota_strategy(),
        (cells2, period2, burst2) in quota_strategy(),
        ops in prop::collection::vec((0u8..7, 0u64..=3_000, 1u32..=8), 1..80),
    ) {
        let clock = ManualClock::new();
        let rl = RateLimiter::with_clock(quota(cells, period, burst), clock.clone());
        let t = period / u64::from(cells) + 1;
        let mut held = Vec::new();
        for (op, x, n) in ops {
            let burst = rl.quota().burst();
            match op {
                0 => { let _ = rl.check_n(n.min(burst)); }
                1 => held.push(rl.reserve_many(n.min(burst)).unwrap()),
                2 if !held.is_empty() => held.remove(x as usize % held.len()).cancel(),
                3 => rl.pause_for(Duration::from_nanos(t * x / 300)),
                4 => rl.set_quota(quota(cells2, period2, burst2)),
                _ => clock.advance(Duration::from_nanos(t * x / 1000)),
            }
            let take = x % 2 == 0;
            assert_exact(&clock, burst_of(&rl), || rl.remaining(), |n| rl.check_n(n).is_ok(), || rl.until_full(), take, op == 6)?;
        }
    }

    /// The same for the token bucket, half the runs across its move to the
    /// 16-byte word (as in `token_bucket_matches_reference_and_bound`).
    #[test]
    fn bucket_remaining_and_until_full_are_exact(
        max in 1u32..=20,
        refill_frac in 1u32..=20,
        initial_frac in 0u32..=20,
        interval in prop_oneof![1u64..=8, 1u64..=1_000_000],
        across_the_move in any::<bool>(),
        before in 0u64..=40,
        ops in prop::collection::vec((0u8..4, 0u64..=3_000_000, 1u32..=21), 1..80),
    ) {
        let clock = ManualClock::new();
        let refill = 1 + (refill_frac - 1) % max;
        let initial = initial_frac % (max + 1);
        let bucket: TokenBucket<ManualClock> = TokenBucketBuilder::new()
            .max(max)
            .initial(initial)
            .refill(refill)
            .interval(Duration::from_nanos(interval))
            .build_with_clock(clock.clone())
            .unwrap();
        if across_the_move {
            let k = ((1u128 << 62) - u128::from(initial)).div_ceil(u128::from(refill));
            // Half the clock's range left for the run to settle in.
            if let Some(at) = u64::try_from(k * u128::from(interval)).ok().filter(|&at| at <= u64::MAX / 2) {
                clock.advance(Duration::from_nanos(at.saturating_sub(before * interval)));
            }
        }
        let mut held = Vec::new();
        for (op, x, n) in ops {
            match op {
                0 => { let _ = bucket.check_n(n.min(max)); }
                1 => held.push(bucket.reserve_many(n.min(max)).unwrap()),
                2 if !held.is_empty() => held.remove(x as usize % held.len()).cancel(),
                _ => clock.advance(Duration::from_nanos(x % (3 * interval + 1))),
            }
            let take = x % 2 == 0;
            assert_exact(&clock, max, || bucket.remaining(), |n| bucket.check_n(n).is_ok(), || bucket.until_full(), take, op == 3)?;
        }
    }

    /// `KeyedRateLimiter` is the reference GCRA per key: every decision,
    /// `NotUntil` instant, `remaining` and `until_full` of every key equals
    /// that of its own model, through clock steps and sweeps (a model is
    /// never evicted: an evicted key must behave exactly as its model with
    /// full credit), and `stats` counts every check.
    #[test]
    fn keyed_gcra_matches_reference_per_key(
        (cells, period, burst) in quota_strategy(),
        ops in prop::collection::vec((0u8..6, 0u16..12, 0u64..=1_000, 1u32..=9), 1..200),
    ) {
        let clock = ManualClock::new();
        let limiter = KeyedRateLimiter::with_clock(quota(cells, period, burst), clock.clone());
        let mut models = vec![Gcra::new(cells, period, burst); 12];
        let t = period / u64::from(cells) + 1;
        let (mut admitted, mut denied) = (0, 0);
        for (op, key, x, n) in ops {
            let model = &mut models[usize::from(key)];
            match op {
                0..=2 => {
                    let now = clock.now().as_nanos();
                    if agrees_with_model(limiter.check_n(&key, n), n, model, 0, now)? {
                        admitted += 1;
                    } else {
                        denied += 1;
                    }
                }
                3 => limiter.evict_idle(),
                _ => clock.advance(Duration::from_nanos(t * x / 300)),
            }
            let now = clock.now().as_nanos();
            prop_assert_eq!(u128::from(limiter.remaining(&key)), model.remaining(now));
            prop_assert_eq!(limiter.until_full(&key).as_nanos(), model.until_full(now));
        }
        let totals = limiter.stats().totals;
        prop_assert_eq!((totals.admitted, totals.denied), (admitted, denied));
        prop_assert!(limiter.len() <= 12);
    }
}

fn burst_of(rl: &RateLimiter<ManualClock>) -> u32 {
    rl.quota().burst()
}

/// Reading `remaining` takes nothing (two reads agree); `check_n(r + 1)` is
/// denied (and takes nothing) and, if `take`, `check_n(r)` is admitted.
/// If `settle`, time moves to `until_full`: one nanosecond before it the
/// burst is not whole, at it it is.
fn assert_exact(
    clock: &ManualClock,
    burst: u32,
    remaining: impl Fn() -> u32,
    check_n: impl Fn(u32) -> bool,
    until_full: impl Fn() -> Duration,
    take: bool,
    settle: bool,
) -> Result<(), TestCaseError> {
    let r = remaining();
    prop_assert!(r <= burst);
    prop_assert_eq!(remaining(), r);
    prop_assert!(!check_n(r + 1), "remaining {} but {} admitted", r, r + 1);
    prop_assert_eq!(remaining(), r);
    prop_assert_eq!(until_full().is_zero(), r == burst);
    if take && r > 0 {
        prop_assert!(check_n(r), "remaining {} but not admitted", r);
        prop_assert_eq!(remaining(), 0);
    }
    if settle {
        let wait = until_full();
        if !wait.is_zero() {
            clock.advance(wait - Duration::from_nanos(1));
            prop_assert_eq!(until_full(), Duration::from_nanos(1));
            prop_assert!(remaining() < burst);
            clock.advance(Duration::from_nanos(1));
        }
        prop_assert_eq!(remaining(), burst);
        prop_assert_eq!(until_full(), Duration::ZERO);
    }
    Ok(())
}
