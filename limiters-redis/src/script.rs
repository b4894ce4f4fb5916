//! The Lua script that makes every decision on the server, and the Rust
//! side of its arguments and replies.
//!
//! # Implementation details
//!
//! The script keeps the GCRA of [`limiters::RateLimiter`] in the same exact
//! integer arithmetic: time is counted in *ticks* of `1 / cells` ns, so the
//! emission interval `t` is exactly `period` ticks and the burst tolerance
//! `tau` exactly `burst * period` ticks. Redis runs Lua 5.1, whose only
//! number is a double (exact up to 2^53), and a tick count of a wall-clock
//! instant is about 2^60 · cells. So every quantity travels as three whole
//! numbers, *(seconds, nanoseconds < 10^9, ticks < cells)*, and the script
//! only adds, subtracts and compares them, carrying between the parts: no
//! multiplication or division ever happens in Lua. The client turns `n * t`
//! and `tau` into that form in `u128` before sending them, and turns the
//! script's answer back into a wait in whole nanoseconds (rounded up, as the
//! local limiter does).
//!
//! Bounds: seconds stay below 2^43 (`now` is about 2^31, and the client
//! clamps each duration it sends to 2^40 s, 35,000 years; `tat` never runs
//! more than two of them past `now`), nanoseconds below 2 · 10^9 and ticks
//! below 2^33 in any intermediate sum. A quota whose burst tolerance
//! (`burst × period / cells`) exceeds 2^40 s is therefore treated as if it
//! were 2^40 s: stricter, never looser, and only for bursts of more than
//! 35,000 years of cells.

use core::time::Duration;

use limiters::Quota;
use redis::aio::ConnectionLike;
use redis::{Cmd, ErrorKind, RedisError, ServerErrorKind};

/// The script's source (also the body of the EVAL fallback).
pub(crate) const SOURCE: &str = include_str!("gcra.lua");

/// Seconds above which a duration sent to the script is clamped.
const MAX_SECS: u64 = 1 << 40;
const NS_PER_SEC: u64 = 1_000_000_000;

/// A duration in the script's three parts: whole seconds, nanoseconds and
/// ticks of `1 / cells` ns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Triple {
    s: u64,
    ns: u64,
    r: u64,
}

impl Triple {
    const ZERO: Triple = Triple { s: 0, ns: 0, r: 0 };

    /// `ticks` ticks of `1 / cells` ns, clamped to 2^40 s.
    fn of_ticks(ticks: u128, cells: u32) -> Triple {
        let cells = u128::from(cells);
        let whole_ns = ticks / cells;
        let s = whole_ns / u128::from(NS_PER_SEC);
        if s >= u128::from(MAX_SECS) {
            return Triple {
                s: MAX_SECS,
                ns: 0,
                r: 0,
            };
        }
        Triple {
            s: s as u64,
            ns: (whole_ns % u128::from(NS_PER_SEC)) as u64,
            r: (ticks % cells) as u64,
        }
    }

    fn of_duration(d: Duration) -> Triple {
        if d.as_secs() >= MAX_SECS {
            return Triple {
                s: MAX_SECS,
                ns: 0,
                r: 0,
            };
        }
        Triple {
            s: d.as_secs(),
            ns: u64::from(d.subsec_nanos()),
            r: 0,
        }
    }

    /// The tick count (for replies: exact, the script never clamps).
    fn ticks(self, cells: u32) -> u128 {
        (u128::from(self.s) * u128::from(NS_PER_SEC) + u128::from(self.ns)) * u128::from(cells)
            + u128::from(self.r)
    }

    /// Whole nanoseconds, rounded up, saturating at `Duration::MAX`'s scale.
    fn ceil_duration(self) -> Duration {
        let ns = u64::from(self.r > 0) + self.ns;
        Duration::new(self.s, 0).saturating_add(Duration::from_nanos(ns))
    }
}

/// What to ask the script.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Op {
    /// Admit `n` cells now or say how long until they would be.
    Take(u32),
    /// How many cells would be admitted now.
    Peek,
    /// Admit nothing for this long (spending no credit).
    Pause(Duration),
}

/// The script's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    Admitted,
    /// Denied; admitted after this wait (whole ns, rounded up).
    Wait(Duration),
    /// Cells admissible now.
    Remaining(u32),
    Paused,
}

/// One script call: the keys, the quota and the operation.
#[derive(Debug)]
pub(crate) struct Invocation<'a> {
    pub(crate) key: &'a str,
    /// The admission log list (tests), in the key's hash slot.
    pub(crate) log: Option<&'a str>,
    pub(crate) quota: Quota,
    pub(crate) op: Op,
    /// The server's time replaced by this one (s, ns): tests only.
    pub(crate) now: Option<(u64, u32)>,
}

impl Invocation<'_> {
    fn args(&self) -> [String; 10] {
        let q = self.quota;
        let cells = q.cells();
        let period = q.period().as_nanos();
        let tau = Triple::of_ticks(u128::from(q.burst()) * period, cells);
        let (op, a, b) = match self.op {
            Op::Take(n) => ("take", Triple::of_ticks(u128::from(n) * period, cells), tau),
            Op::Peek => ("peek", Triple::ZERO, tau),
            Op::Pause(d) => ("pause", Triple::of_duration(d), Triple::ZERO),
        };
        let (now_s, now_ns) = match self.now {
            Some((s, ns)) => (s.to_string(), ns.to_string()),
            None => (String::new(), String::new()),
        };
        [
            op.to_string(),
            cells.to_string(),
            a.s.to_string(),
            a.ns.to_string(),
            a.r.to_string(),
            b.s.to_string(),
            b.ns.to_string(),
            b.r.to_string(),
            now_s,
            now_ns,
        ]
    }

    fn command(&self, verb: &str, script: &str) -> Cmd {
        let mut cmd = redis::cmd(verb);
        cmd.arg(script);
        match self.log {
            Some(log) => cmd.arg(2).arg(self.key).arg(log),
            None => cmd.arg(1).arg(self.key),
        };
        cmd.arg(&self.args());
        cmd
    }

    /// The EVALSHA command (what a pipeline sends).
    pub(crate) fn evalsha(&self, sha: &str) -> Cmd {
        self.command("EVALSHA", sha)
    }

    /// Runs the script by its hash, sending the source (which also loads
    /// it) only when the server answers NOSCRIPT: once per server start.
    pub(crate) async fn run<Conn: ConnectionLike>(
        &self,
        conn: &mut Conn,
        sha: &str,
    ) -> Result<Reply, RedisError> {
        let reply: Vec<i64> = match self.evalsha(sha).query_async(conn).await {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                self.command("EVAL", SOURCE).query_async(conn).await?
            }
            other => other?,
        };
        self.parse(&reply)
    }

    /// Reads the script's reply.
    pub(crate) fn parse(&self, reply: &[i64]) -> Result<Reply, RedisError> {
        let cells = self.quota.cells();
        let triple = |parts: &[i64]| -> Option<Triple> {
            let [s, ns, r] = parts else { return None };
            Some(Triple {
                s: u64::try_from(*s).ok()?,
                ns: u64::try_from(*ns).ok()?,
                r: u64::try_from(*r).ok()?,
            })
        };
        let reply = match (self.op, reply) {
            (Op::Take(_), [1]) => Some(Reply::Admitted),
            (Op::Take(_), [0, over @ ..]) => triple(over).map(|t| Reply::Wait(t.ceil_duration())),
            (Op::Peek, [0]) => Some(Reply::Remaining(0)),
            (Op::Peek, [1, slack @ ..]) => triple(slack).map(|t| {
                let cells_now = t.ticks(cells) / self.quota.period().as_nanos();
                Reply::Remaining(cells_now.min(u128::from(self.quota.burst())) as u32)
            }),
            (Op::Pause(_), [1]) => Some(Reply::Paused),
            _ => None,
        };
        reply.ok_or_else(|| {
            RedisError::from((
                ErrorKind::UnexpectedReturnType,
                "limiters-redis: unexpected reply from the GCRA script",
                format!("{reply:?}"),
            ))
        })
    }
}

/// The script's SHA-1, as EVALSHA wants it.
pub(crate) fn sha() -> String {
    redis::Script::new(SOURCE).get_hash().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triples_split_ticks_exactly() {
        // 1/3 s per cell: 10^9 ticks of 1/3 ns = 333,333,333 ns + 1 tick.
        let q = Quota::per_second(3);
        let t = Triple::of_ticks(q.period().as_nanos(), 3);
        assert_eq!(
            t,
            Triple {
                s: 0,
                ns: 333_333_333,
                r: 1
            }
        );
        assert_eq!(t.ticks(3), 1_000_000_000);
        assert_eq!(t.ceil_duration(), Duration::from_nanos(333_333_334));
        // An hour per cell, a burst of 10: 36,000 s.
        let tau = Triple::of_ticks(10 * Quota::per_hour(1).period().as_nanos(), 1);
        assert_eq!(
            tau,
            Triple {
                s: 36_000,
                ns: 0,
                r: 0
            }
        );
    }

    #[test]
    fn huge_tolerances_are_clamped_to_2_pow_40_seconds() {
        let tau = Triple::of_ticks(u128::from(u32::MAX) * 3_600_000_000_000_000, 1);
        assert_eq!(
            tau,
            Triple {
                s: MAX_SECS,
                ns: 0,
                r: 0
            }
        );
        assert_eq!(Triple::of_duration(Duration::MAX).s, MAX_SECS);
    }
}
