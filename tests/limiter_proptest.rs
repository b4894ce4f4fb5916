//! Property test of the composite `Limiter` on a `ManualClock`: for random
//! concurrency limits, minimum holds, rates, arrivals, durations and
//! cancellations, polled by hand one millisecond at a time,
//!
//! * it never exceeds any limit: slots in use (held, or within their minimum
//!   hold) never above the concurrency, and for every quota the admissions
//!   in any window of length `W` never above `burst + floor(W * cells /
//!   period)` (checked on every pair of admissions, in `u128`);
//! * it never idles: whenever a request waits, a plain reference model says
//!   that some limit would refuse the oldest waiting request right now;
//! * it admits in arrival order;
//! * `try_acquire` refusals take nothing: a limiter that also sees every
//!   refused try decides every later try exactly as a twin that never saw
//!   them, and a refusal by a slot means too few were free.
//!
//! Rates are chosen with an emission interval of whole milliseconds, so the
//! instants at which a limit frees up fall on the test's time grid.

mod common;

use std::time::Duration;

use common::Probe;
use limiters::{Limiter, ManualClock, Quota};
use proptest::prelude::*;

const STEP_MS: u64 = 1;
const HORIZON_MS: u64 = 400;

#[derive(Debug, Clone)]
struct Request {
    arrival_ms: u64,
    duration_ms: u64,
    /// Dropped if still waiting this long after arriving.
    cancel_after_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Rate {
    cells: u32,
    interval_ms: u64,
    burst: u32,
}

impl Rate {
    fn quota(self) -> Quota {
        let period = Duration::from_millis(self.interval_ms * u64::from(self.cells));
        Quota::new(self.cells, period)
            .unwrap()
            .allow_burst(self.burst)
    }

    /// Reference GCRA in `u128` nanoseconds (the interval is whole ms).
    fn admits(self, admissions: &[u64], now_ms: u64) -> bool {
        let t = u128::from(self.interval_ms) * 1_000_000;
        let tau = t * u128::from(self.burst);
        let mut tat = 0u128;
        for &a in admissions {
            tat = tat.max(u128::from(a) * 1_000_000) + t;
        }
        let now = u128::from(now_ms) * 1_000_000;
        tat.max(now) + t <= now + tau
    }
}

fn rate() -> impl Strategy<Value = Rate> {
    (1u32..4, 1u64..40, 1u32..4).prop_map(|(cells, interval_ms, burst)| Rate {
        cells,
        interval_ms,
        burst,
    })
}

fn request() -> impl Strategy<Value = Request> {
    (0u64..150, 0u64..60, prop::option::weighted(0.2, 0u64..40)).prop_map(
        |(arrival_ms, duration_ms, cancel_after_ms)| Request {
            arrival_ms,
            duration_ms,
            cancel_after_ms,
        },
    )
}

#[derive(Debug, Clone)]
struct Case {
    concurrency: Option<usize>,
    hold_ms: u64,
    rates: Vec<Rate>,
    requests: Vec<Request>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::option::weighted(0.8, 1usize..4),
        prop::option::weighted(0.4, 1u64..50),
        prop::collection::vec(rate(), 0..3),
        prop::collection::vec(request(), 1..14),
    )
        .prop_filter("needs a limit", |(c, _, rates, _)| {
            c.is_some() || !rates.is_empty()
        })
        .prop_map(|(concurrency, hold, rates, mut requests)| {
            requests.sort_by_key(|r| r.arrival_ms);
            Case {
                concurrency,
                hold_ms: if concurrency.is_some() {
                    hold.unwrap_or(0)
                } else {
                    0
                },
                rates,
                requests,
            }
        })
}

type Acquire = limiters::futures::LimiterAcquire<ManualClock>;
type Permit = limiters::LimiterPermit<ManualClock>;

enum Slot {
    NotArrived,
    Waiting(Probe<Acquire>),
    Running { admitted_ms: u64, _permit: Permit },
    Finished { admitted_ms: u64, released_ms: u64 },
    Cancelled,
}

fn simulate(case: &Case) -> Result<(), TestCaseError> {
    let clock = ManualClock::new();
    let mut builder = Limiter::builder().clock(clock.clone());
    if let Some(c) = case.concurrency {
        builder = builder.concurrency(c);
    }
    if case.hold_ms > 0 {
        builder = builder.min_hold(Duration::from_millis(case.hold_ms));
    }
    for r in &case.rates {
        builder = builder.rate(r.quota());
    }
    let limiter = builder.build().unwrap();

    let mut slots: Vec<Slot> = case.requests.iter().map(|_| Slot::NotArrived).collect();
    let mut admissions: Vec<(u64, usize)> = Vec::new();
    let mut now = 0u64;
    while now <= HORIZON_MS {
        // Work that is done gives its slot back; arrivals; cancellations.
        for (i, slot) in slots.iter_mut().enumerate() {
            let req = &case.requests[i];
            match slot {
                Slot::Running { admitted_ms, .. } if *admitted_ms + req.duration_ms <= now => {
                    let admitted_ms = *admitted_ms;
                    *slot = Slot::Finished {
                        admitted_ms,
                        released_ms: now,
                    };
                }
                Slot::NotArrived if req.arrival_ms == now => {
                    *slot = Slot::Waiting(Probe::new(limiter.acquire()));
                }
                Slot::Waiting(_)
                    if req
                        .cancel_after_ms
                        .is_some_and(|c| req.arrival_ms + c <= now) =>
                {
                    *slot = Slot::Cancelled;
                }
                _ => {}
            }
        }
        // Poll until nothing changes (hand-offs wake the next waiter).
        loop {
            let mut changed = false;
            for (i, slot) in slots.iter_mut().enumerate() {
                if let Slot::Waiting(probe) = slot {
                    if probe.poll() {
                        let permit = probe.take().expect("never closed");
                        prop_assert_eq!(permit.admitted_at().as_nanos(), now * 1_000_000);
                        admissions.push((now, i));
                        *slot = Slot::Running {
                            admitted_ms: now,
                            _permit: permit,
                        };
                        changed = true;
                    }
                }
            }
            // Zero-length work ends at once.
            for (i, slot) in slots.iter_mut().enumerate() {
                if let Slot::Running { admitted_ms, .. } = *slot {
                    if admitted_ms + case.requests[i].duration_ms <= now {
                        *slot = Slot::Finished {
                            admitted_ms,
                            released_ms: now,
                        };
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }

        // Slots in use now: running, or within the minimum hold.
        let in_use = slots
            .iter()
            .filter(|s| match **s {
                Slot::Running { .. } => true,
                Slot::Finished {
                    admitted_ms,
                    released_ms,
                } => released_ms.max(admitted_ms + case.hold_ms) > now,
                _ => false,
            })
            .count();
        if let Some(c) = case.concurrency {
            prop_assert!(in_use <= c, "{} slots in use at {} ms", in_use, now);
        }

        // Never idle: the oldest waiting request must be refused by some
        // limit right now.
        if slots.iter().any(|s| matches!(s, Slot::Waiting(_))) {
            let times: Vec<u64> = admissions.iter().map(|&(t, _)| t).collect();
            let slot_free = case.concurrency.is_none_or(|c| in_use < c);
            let rates_admit = case.rates.iter().all(|r| r.admits(&times, now));
            prop_assert!(
                !(slot_free && rates_admit),
                "idle at {} ms with a request waiting that every limit admits",
                now
            );
        }

        clock.advance(Duration::from_millis(STEP_MS));
        now += STEP_MS;
    }

    // Arrival order (ties: request order).
    let order: Vec<usize> = admissions.iter().map(|&(_, i)| i).collect();
    let mut sorted = order.clone();
    sorted.sort();
    prop_assert_eq!(&order, &sorted, "admitted out of order");

    // Window bound for every quota, on every pair of admissions.
    for r in &case.rates {
        for (x, &(ti, _)) in admissions.iter().enumerate() {
            for (y, &(tj, _)) in admissions.iter().enumerate().skip(x) {
                let count = (y - x + 1) as u128;
                let window_ns = u128::from(tj - ti) * 1_000_000;
                let period_ns = u128::from(r.interval_ms) * u128::from(r.cells) * 1_000_000;
                let bound = u128::from(r.burst) + window_ns * u128::from(r.cells) / period_ns;
                prop_assert!(
                    count <= bound,
                    "{} admissions in {} ms under {:?}",
                    count,
                    tj - ti,
                    r
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn never_exceeds_a_limit_and_never_idles(case in case()) {
        simulate(&case)?;
    }
}

/// One step of a load-shedding run: time passes, then a try of `weight`
/// (or, at `weight` 0, the oldest permit is dropped; at 9, a pause).
#[derive(Debug, Clone, Copy)]
struct Shed {
    after_ms: u64,
    weight: u32,
}

fn shed_case() -> impl Strategy<Value = (Case, u32, Vec<Shed>)> {
    (
        case(),
        1u32..4,
        prop::collection::vec(
            (0u64..30, 0u32..10).prop_map(|(after_ms, weight)| Shed { after_ms, weight }),
            1..60,
        ),
    )
}

fn build(case: &Case, window: u32, clock: &ManualClock) -> Limiter<ManualClock> {
    let mut b = Limiter::builder()
        .clock(clock.clone())
        .window(window, Duration::from_millis(50));
    if let Some(n) = case.concurrency {
        b = b
            .concurrency(n)
            .min_hold(Duration::from_millis(case.hold_ms));
    }
    for rate in &case.rates {
        b = b.rate(rate.quota());
    }
    b.build().unwrap()
}

/// What a limiter went through: admitted tries, drops and pauses, at
/// their instants (refused tries are left out).
#[derive(Debug, Clone, Copy)]
enum Event {
    Admit(u32),
    DropOldest,
    Pause(u64),
}

/// A fresh limiter after `history`, at the instant of its last event
/// (`now_ms`), with the permits it holds.
fn replay(
    case: &Case,
    window: u32,
    history: &[(u64, Event)],
    now_ms: u64,
) -> (Limiter<ManualClock>, std::collections::VecDeque<Permit>) {
    let clock = ManualClock::new();
    let limiter = build(case, window, &clock);
    let mut held = std::collections::VecDeque::new();
    for &(at_ms, event) in history.iter().chain(&[(now_ms, Event::Pause(0))]) {
        clock.advance(Duration::from_millis(at_ms) - (clock.now() - ManualClock::new().now()));
        match event {
            Event::Admit(w) => {
                held.push_back(limiter.try_acquire_many(w).expect("admitted before"))
            }
            Event::DropOldest => drop(held.pop_front()),
            Event::Pause(ms) => limiter.pause_for(Duration::from_millis(ms)),
        }
    }
    (limiter, held)
}

fn shed(case: &Case, window: u32, steps: &[Shed]) -> Result<(), TestCaseError> {
    let clock = ManualClock::new();
    let seen = build(case, window, &clock);
    let mut held = std::collections::VecDeque::new();
    let mut history = Vec::new();
    let mut now_ms = 0;
    for step in steps {
        clock.advance(Duration::from_millis(step.after_ms));
        now_ms += step.after_ms;
        let event = match step.weight {
            0 => Event::DropOldest,
            9 => Event::Pause(step.after_ms),
            w => Event::Admit(w),
        };
        let Event::Admit(w) = event else {
            match event {
                Event::DropOldest => drop(held.pop_front()),
                Event::Pause(ms) => seen.pause_for(Duration::from_millis(ms)),
                Event::Admit(_) => unreachable!(),
            }
            history.push((now_ms, event));
            continue;
        };
        let free = seen.available_slots();
        let decided = seen.try_acquire_many(w);
        // A twin that never saw a refused try decides the same.
        let (twin, _twin_held) = replay(case, window, &history, now_ms);
        let twin_decided = twin.try_acquire_many(w);
        prop_assert_eq!(
            decided.as_ref().err(),
            twin_decided.as_ref().err(),
            "a refusal took something"
        );
        match decided {
            Ok(permit) => {
                prop_assert!(free.is_none_or(|free| free >= w as usize));
                held.push_back(permit);
                history.push((now_ms, event));
            }
            Err(refused) => {
                use limiters::LimiterTryError::*;
                match refused {
                    NoSlot => prop_assert!(free.is_some_and(|f| f < w as usize)),
                    Held(n) | Rate(n) | Window(n) | Paused(n) => {
                        prop_assert!(n.wait_time() > Duration::ZERO);
                    }
                    ExceedsCapacity { .. } | InsufficientCapacity { .. } => {}
                    other => prop_assert!(false, "unexpected refusal {other:?}"),
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn try_acquire_refusals_take_nothing((case, window, steps) in shed_case()) {
        shed(&case, window, &steps)?;
    }
}
