//! `RateLimiter` (GCRA) on a `ManualClock` against a `u128` reference model.
//!
//! The bytes decode into a quota (cells, period and burst, with extreme
//! values) and a sequence of clock advances, `check`, `check_n` and
//! `pause_for` calls. Checked:
//!
//! * until the first pause, every decision (admitted, `NotUntil` with its
//!   exact earliest nanosecond, `InsufficientCapacity`) equals the reference
//!   GCRA computed in ticks of `1 / cells` ns in `u128`;
//! * always: nothing is admitted before a pause ends; a denial's
//!   `wait_time` is exact (the same request is admitted once the clock has
//!   advanced by it, and not one nanosecond before, when nothing else
//!   happened in between);
//! * always: the window bound: the cells admitted in any closed window of
//!   length `W` never exceed `burst + floor(W * cells / period)`.

use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use limiters::{ManualClock, Quota, RateLimitError, RateLimiter};

#[derive(Debug)]
enum Op {
    Advance(u64),
    Check,
    CheckN(u32),
    Pause(u64),
    /// Probe a denial's `wait_time`: advance to one ns before it (denied),
    /// then to it (admitted).
    WaitExactly(u32),
}

fn duration_ns(u: &mut Unstructured<'_>, period: u64) -> arbitrary::Result<u64> {
    Ok(match u8::arbitrary(u)? % 8 {
        0 => 0,
        1 => 1,
        2 => period / 2,
        3 => period,
        4 => period.saturating_mul(3),
        5 => u64::from(u16::arbitrary(u)?),
        6 => u64::arbitrary(u)? % period.max(1),
        _ => u64::arbitrary(u)? >> (u8::arbitrary(u)? % 64),
    })
}

fn amount(u: &mut Unstructured<'_>, burst: u32) -> arbitrary::Result<u32> {
    Ok(match u8::arbitrary(u)? % 8 {
        0 => 0,
        1 | 2 => 1,
        3 => burst,
        4 => burst.saturating_add(1),
        5 => u32::MAX,
        _ => u32::from(u8::arbitrary(u)? % 8),
    })
}

fn quota(u: &mut Unstructured<'_>) -> arbitrary::Result<Option<Quota>> {
    let cells = match u8::arbitrary(u)? % 8 {
        0 => 1,
        1 => 3,
        2 => 1000,
        3 => 300_000_000,
        4 => u32::MAX,
        _ => u32::arbitrary(u)?.max(1),
    };
    let period_ns = match u8::arbitrary(u)? % 8 {
        0 => 1,
        1 => 1_000_000_000,
        2 => 3_600_000_000_000,
        3 => 7,
        4 => u64::MAX,
        _ => u64::arbitrary(u)? >> (u8::arbitrary(u)? % 64),
    };
    let burst = match u8::arbitrary(u)? % 6 {
        0 => 1,
        1 => 10,
        2 => u32::MAX,
        _ => u32::arbitrary(u)?.max(1),
    };
    Ok(Quota::new(cells, Duration::from_nanos(period_ns))
        .ok()
        .map(|q| q.allow_burst(burst)))
}

/// The reference GCRA, in ticks of `1 / cells` ns.
struct Model {
    cells: u128,
    t: u128,
    tau: u128,
    burst: u32,
    tat: u128,
}

impl Model {
    fn max_tat(&self) -> u128 {
        u128::from(u64::MAX) * self.cells + (self.cells - 1)
    }

    /// `Ok` or the earliest admission ns (or `Err(None)` for too large).
    fn check_n(&mut self, now: u64, n: u32) -> Result<(), Option<u64>> {
        if n > self.burst {
            return Err(None);
        }
        let new_tat = self.tat.max(u128::from(now) * self.cells) + u128::from(n) * self.t;
        let earliest = new_tat.saturating_sub(self.tau);
        if earliest <= u128::from(now) * self.cells && new_tat <= self.max_tat() {
            self.tat = new_tat;
            Ok(())
        } else if new_tat > self.max_tat() {
            Err(Some(u64::MAX))
        } else {
            Err(Some(
                u64::try_from(earliest.div_ceil(self.cells)).unwrap_or(u64::MAX),
            ))
        }
    }
}

/// Runs one input. Panics on any disagreement.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(Some(quota)) = quota(&mut u) else {
        return;
    };
    let clock = ManualClock::new();
    let rl = RateLimiter::with_clock(quota, clock.clone());
    let (cells, period) = (quota.cells(), quota.period().as_nanos() as u64);
    let burst = quota.burst();
    let mut model = Some(Model {
        cells: u128::from(cells),
        t: u128::from(period),
        tau: u128::from(burst) * u128::from(period),
        burst,
        tat: 0,
    });
    // Nanoseconds since the limiter was created.
    let mut now: u64 = 0;
    let mut paused_until: u64 = 0;
    // (ns, cells) of every admission, for the window bound.
    let mut admitted: Vec<(u64, u32)> = Vec::new();

    let check_n = |now: u64, n: u32, model: &mut Option<Model>, paused_until: u64| {
        let got = rl.check_n(n);
        if let Some(m) = model.as_mut() {
            let expected = m.check_n(now, n);
            match (&expected, &got) {
                (Ok(()), Ok(()))
                | (Err(None), Err(RateLimitError::InsufficientCapacity { .. })) => {}
                (Err(Some(at)), Err(RateLimitError::NotUntil(nu))) => {
                    let wait = nu.wait_time().as_nanos() as u64;
                    assert_eq!(wait, at.saturating_sub(now), "wait_time at {now} for {n}");
                }
                _ => panic!("check_n({n}) at {now} ns: model {expected:?}, limiter {got:?}"),
            }
        }
        if let Err(RateLimitError::InsufficientCapacity {
            requested,
            burst: b,
        }) = got
        {
            assert_eq!((requested, b), (n, burst));
        }
        if got.is_ok() {
            assert!(
                n == 0 || now >= paused_until,
                "admitted {n} at {now} ns during a pause until {paused_until}"
            );
        }
        got
    };

    let advance = |now: &mut u64, by: u64| {
        let by = by.min(u64::MAX / 4 - *now);
        clock.advance(Duration::from_nanos(by));
        *now += by;
    };

    while !u.is_empty() {
        let Ok(op) = (|| -> arbitrary::Result<Op> {
            Ok(match u8::arbitrary(&mut u)? % 10 {
                0..=2 => Op::Advance(duration_ns(&mut u, period)?),
                3 | 4 => Op::Check,
                5..=7 => Op::CheckN(amount(&mut u, burst)?),
                8 => Op::WaitExactly(amount(&mut u, burst)?),
                _ => Op::Pause(duration_ns(&mut u, period)?),
            })
        })() else {
            break;
        };
        match op {
            Op::Advance(by) => advance(&mut now, by),
            Op::Check => {
                if check_n(now, 1, &mut model, paused_until).is_ok() {
                    admitted.push((now, 1));
                }
            }
            Op::CheckN(n) => {
                if check_n(now, n, &mut model, paused_until).is_ok() && n > 0 {
                    admitted.push((now, n));
                }
            }
            Op::WaitExactly(n) => match check_n(now, n, &mut model, paused_until) {
                Ok(()) => {
                    if n > 0 {
                        admitted.push((now, n));
                    }
                }
                Err(RateLimitError::NotUntil(nu)) => {
                    let wait = nu.wait_time().as_nanos() as u64;
                    if wait >= u64::MAX / 4 - now {
                        continue;
                    }
                    advance(&mut now, wait - 1);
                    assert!(
                        check_n(now, n, &mut model, paused_until).is_err(),
                        "admitted {n} one ns before the announced {wait} ns wait"
                    );
                    advance(&mut now, 1);
                    check_n(now, n, &mut model, paused_until).unwrap_or_else(|e| {
                        panic!("{n} not admitted after waiting {wait} ns: {e:?}")
                    });
                    admitted.push((now, n));
                }
                Err(_) => {}
            },
            Op::Pause(d) => {
                rl.pause_for(Duration::from_nanos(d));
                paused_until = paused_until.max(now.saturating_add(d));
                // Pauses re-time the state; the exact model stops here and
                // the properties carry on.
                model = None;
            }
        }
        if admitted.len() > 512 {
            break;
        }
    }
    check_window(&admitted, burst, cells, period);
}

/// Cells admitted in any closed window `[a, b]` are at most
/// `burst + floor((b - a) * cells / period)`.
fn check_window(admitted: &[(u64, u32)], burst: u32, cells: u32, period: u64) {
    for i in 0..admitted.len() {
        let mut sum: u128 = 0;
        for j in i..admitted.len() {
            sum += u128::from(admitted[j].1);
            let w = u128::from(admitted[j].0 - admitted[i].0);
            let bound = u128::from(burst) + w * u128::from(cells) / u128::from(period);
            assert!(
                sum <= bound,
                "{sum} cells admitted in [{}, {}] ns; bound {bound} (burst {burst}, {cells} per {period} ns)",
                admitted[i].0,
                admitted[j].0
            );
        }
    }
}
