//! `KeyedLimiter` with a global limiter on a `ManualClock`: limits, fair
//! sharing and liveness.
//!
//! The bytes decode into a configuration (per key: an optional
//! concurrency and an optional quota; global: the same; a weight per key)
//! and a sequence of operations on four keys: `run` futures created, polled
//! by hand with counting wakers (one at a time, or every woken one like an
//! executor) and dropped at any point (queued for the key, for the turn,
//! at the global stage, running); the work inside a `run` finished; clock
//! advances; `pause_for` on a key. Checked:
//!
//! * **concurrency**: at every start, the runs started and not finished of
//!   the key are at most its concurrency, and those of all keys at most the
//!   global concurrency;
//! * **rate**: for the key's quota over the key's starts, and for the
//!   global quota over all starts, the starts `i..=j` are at most
//!   `burst + floor(W * cells / period)`, with `W` from the start before
//!   `i` to start `j` (as in the `limiter` harness);
//! * **pause**: nothing of a paused key starts before its pause ends;
//! * **no lost wake-up, no deadlock, nothing lost**: at the end every work
//!   is finished, and the remaining futures are driven like an executor
//!   would, polling only woken ones and advancing the clock only when
//!   nobody is woken: each must complete; then all global slots are back.

use crate::work::{check_window, finish, pick, Executor, Tracker, Work, WorkState};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use limiters::futures::KeyedRun;
use limiters::{KeyedLimiter, Limiter, LimiterBuilder, ManualClock, Quota};

const KEYS: u8 = 4;
const MAX_LIVE: usize = 32;
/// Longer than any wait an input can set up.
const FOREVER: u64 = 10_000_000_000_000;

struct Fut {
    fut: Pin<Box<KeyedRun<ManualClock, Work>>>,
    work: Arc<Mutex<WorkState>>,
    key: u8,
    tracker: Tracker,
    /// Index into `starts` once its work started.
    start: Option<usize>,
}

struct Start {
    key: u8,
    at: u64,
    finished: bool,
}

/// One side (a key's template, or the global limiter).
struct Limits {
    concurrency: Option<usize>,
    quota: Option<Quota>,
}

fn limits(u: &mut Unstructured<'_>) -> arbitrary::Result<Limits> {
    let concurrency = match u8::arbitrary(u)? % 4 {
        0 => None,
        k => Some(usize::from(k)),
    };
    let quota = if concurrency.is_none() || bool::arbitrary(u)? {
        let cells = 1 + u32::from(u8::arbitrary(u)? % 3);
        let period = match u8::arbitrary(u)? % 3 {
            0 => 10,
            1 => 1_000,
            _ => 1 + u64::from(u16::arbitrary(u)?),
        };
        let burst = 1 + u32::from(u8::arbitrary(u)? % 3);
        Some(
            Quota::new(cells, Duration::from_nanos(period))
                .unwrap()
                .allow_burst(burst),
        )
    } else {
        None
    };
    Ok(Limits { concurrency, quota })
}

fn builder(clock: &ManualClock, l: &Limits) -> LimiterBuilder<ManualClock> {
    let mut b = LimiterBuilder::with_clock(clock.clone());
    if let Some(n) = l.concurrency {
        b = b.concurrency(n);
    }
    if let Some(q) = l.quota {
        b = b.rate(q);
    }
    b
}

/// Runs one input. Panics when a limit is exceeded or a future is never
/// woken.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let (Ok(key), Ok(global), Ok(weights)) = (
        limits(&mut u),
        limits(&mut u),
        <[u8; KEYS as usize]>::arbitrary(&mut u),
    ) else {
        return;
    };
    let clock = ManualClock::new();
    let global_limiter: Limiter<ManualClock> = builder(&clock, &global).build().unwrap();
    let keyed = KeyedLimiter::new(builder(&clock, &key))
        .unwrap()
        .with_global(global_limiter.clone())
        .with_weights(move |&k: &u8| u32::from(weights[usize::from(k)] % 3));
    let mut h = Harness {
        keyed,
        global_limiter,
        clock,
        key,
        global,
        now: 0,
        paused_until: [0; KEYS as usize],
        futs: Vec::new(),
        starts: Vec::new(),
    };
    while !u.is_empty() {
        if h.step(&mut u).is_err() || h.starts.len() > 200 {
            break;
        }
    }
    h.finish();
}

struct Harness {
    keyed: KeyedLimiter<u8, ManualClock>,
    global_limiter: Limiter<ManualClock>,
    clock: ManualClock,
    key: Limits,
    global: Limits,
    now: u64,
    paused_until: [u64; KEYS as usize],
    futs: Vec<Fut>,
    starts: Vec<Start>,
}

impl Executor for Harness {
    fn tracker(&self, i: usize) -> Option<&Tracker> {
        self.futs.get(i).map(|f| &f.tracker)
    }
    fn poll_one(&mut self, i: usize) -> bool {
        self.poll(i)
    }
}

impl Harness {
    fn duration(&self, u: &mut Unstructured<'_>) -> arbitrary::Result<u64> {
        let period = |l: &Limits| l.quota.map(|q| q.period().as_nanos() as u64);
        let p = period(&self.key).or(period(&self.global)).unwrap_or(1_000);
        Ok(match u8::arbitrary(u)? % 6 {
            0 => 0,
            1 => 1,
            2 => p,
            3 => p / 2,
            _ => u64::from(u16::arbitrary(u)?) % (4 * p + 1),
        })
    }

    fn step(&mut self, u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
        match u8::arbitrary(u)? % 30 {
            0..=7 => {
                let key = u8::arbitrary(u)? % KEYS;
                self.push(key);
            }
            8..=13 => {
                if let Some(i) = pick(u, self.futs.len())? {
                    self.poll(i);
                }
            }
            14..=16 => {
                self.poll_woken();
            }
            17..=19 => {
                if let Some(i) = pick(u, self.futs.len())? {
                    let f = self.futs.swap_remove(i);
                    let start = f.start;
                    drop(f);
                    if let Some(s) = start {
                        self.starts[s].finished = true;
                    }
                }
            }
            20..=23 => {
                let running: Vec<_> = self
                    .futs
                    .iter()
                    .filter(|f| f.start.is_some())
                    .map(|f| Arc::clone(&f.work))
                    .collect();
                if let Some(i) = pick(u, running.len())? {
                    finish(&running[i]);
                }
            }
            24..=27 => {
                let by = self.duration(u)?;
                self.advance(by);
            }
            _ => {
                let key = u8::arbitrary(u)? % KEYS;
                let d = self.duration(u)?;
                self.keyed.pause_for(&key, Duration::from_nanos(d));
                let until = &mut self.paused_until[usize::from(key)];
                *until = (*until).max(self.now + d);
            }
        }
        Ok(())
    }

    fn push(&mut self, key: u8) {
        if self.futs.len() >= MAX_LIVE {
            return;
        }
        let work = Arc::new(Mutex::new(WorkState::default()));
        let fut = Box::pin(self.keyed.run(&key, Work(Arc::clone(&work))));
        self.futs.push(Fut {
            fut,
            work,
            key,
            tracker: Tracker::new(),
            start: None,
        });
    }

    fn advance(&mut self, by: u64) {
        self.clock.advance(Duration::from_nanos(by));
        self.now += by;
    }

    /// Records that a run of `key` started now, checking every limit.
    fn started(&mut self, key: u8) -> usize {
        let now = self.now;
        let paused = self.paused_until[usize::from(key)];
        assert!(
            now >= paused,
            "key {key} started at {now} ns, paused until {paused}"
        );
        self.starts.push(Start {
            key,
            at: now,
            finished: false,
        });
        let running = |key: Option<u8>| {
            self.starts
                .iter()
                .filter(|s| !s.finished && key.is_none_or(|k| s.key == k))
                .count()
        };
        if let Some(cap) = self.key.concurrency {
            assert!(
                running(Some(key)) <= cap,
                "key {key}: over its concurrency {cap}"
            );
        }
        if let Some(cap) = self.global.concurrency {
            assert!(running(None) <= cap, "over the global concurrency {cap}");
        }
        let of_key: Vec<(u64, u32)> = self
            .starts
            .iter()
            .filter(|s| s.key == key)
            .map(|s| (s.at, 1))
            .collect();
        if let Some(q) = self.key.quota {
            check_window(&of_key, q);
        }
        if let Some(q) = self.global.quota {
            let all: Vec<(u64, u32)> = self.starts.iter().map(|s| (s.at, 1)).collect();
            check_window(&all, q);
        }
        self.starts.len() - 1
    }

    /// Polls future `i`; returns whether it is gone (completed).
    fn poll(&mut self, i: usize) -> bool {
        let f = &mut self.futs[i];
        let got = f.fut.as_mut().poll(&mut f.tracker.context());
        f.tracker.polled(got.is_pending());
        let started = f.work.lock().unwrap().started;
        let key = f.key;
        if started && f.start.is_none() {
            let s = self.started(key);
            self.futs[i].start = Some(s);
        }
        let Poll::Ready(got) = got else {
            return false;
        };
        let f = self.futs.swap_remove(i);
        got.expect("nothing is closed");
        self.starts[f.start.expect("a finished run started")].finished = true;
        true
    }

    fn finish(mut self) {
        let mut rounds = 0;
        while !self.futs.is_empty() {
            rounds += 1;
            assert!(rounds < 10_000, "no progress");
            for f in &self.futs {
                if f.start.is_some() {
                    finish(&f.work);
                }
            }
            // Futures never polled are polled now.
            let first = self.poll_fresh();
            if first > 0 || self.poll_woken() > 0 || self.futs.is_empty() {
                continue;
            }
            self.advance(FOREVER);
            if self.poll_woken() == 0 {
                panic!(
                    "lost wake-up or deadlock at {} ns: nobody woken; {:?}",
                    self.now, self.keyed
                );
            }
        }
        if let Some(cap) = self.global.concurrency {
            assert_eq!(self.global_limiter.available_slots(), Some(cap));
        }
    }
}
