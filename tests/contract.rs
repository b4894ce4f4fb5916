//! The public API as the design fixes it (`docs/design.md`): every name, argument and
//! result type is spelled out here, so a rename or a changed signature fails
//! to compile. Behaviour is tested in the per-primitive files.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use limiters::futures::{Acquire, AcquireOwned};
use limiters::{
    AcquireError, BoundedSemaphore, BuildError, InsufficientCapacity, KeyedLimiter,
    KeyedRateLimiter, Limiter, LimiterPermit, ManualClock, NotUntil, OverRelease, OwnedPermit,
    Permit, Quota, QuotaError, RateLimitError, RateLimiter, Reservation, Semaphore, SystemClock,
    TokenBucket, TryAcquireError,
};

fn is_future<F: Future>(f: F) -> F {
    f
}

#[test]
fn semaphore_contract() {
    static SEM: Semaphore = Semaphore::new(3); // const fn
    assert_eq!(SEM.available_permits(), 3);
    let max: usize = Semaphore::MAX_PERMITS;
    assert!(max > 0);
    let sem = Arc::new(Semaphore::new(4));
    let a: Acquire<'_> = sem.acquire();
    let b: Acquire<'_> = sem.acquire_many(2);
    drop((a, b));
    let p: Result<Permit<'_>, TryAcquireError> = sem.try_acquire();
    let q: Result<Permit<'_>, TryAcquireError> = sem.try_acquire_many(1);
    drop((p, q));
    let o: AcquireOwned = sem.acquire_owned();
    let o2: AcquireOwned = sem.acquire_many_owned(2);
    drop((o, o2));
    let t: Result<OwnedPermit, TryAcquireError> = sem.try_acquire_owned();
    let t2: Result<OwnedPermit, TryAcquireError> = sem.try_acquire_many_owned(1);
    drop((t, t2));
    let blocking: Result<Permit<'_>, AcquireError> = sem.acquire_blocking();
    drop(blocking);
    let many: Result<Permit<'_>, AcquireError> = sem.acquire_many_blocking(2);
    drop(many);
    let run = is_future(sem.run(async { 1 }));
    let out: Result<i32, AcquireError> = futures_lite::future::block_on(run);
    assert_eq!(out, Ok(1));
    sem.add_permits(1);
    let removed: usize = sem.forget_permits(1);
    assert_eq!(removed, 1);
    let (avail, waiters): (usize, usize) = (sem.available_permits(), sem.waiters());
    assert_eq!((avail, waiters), (4, 0));

    let mut permit = sem.try_acquire_many(3).unwrap();
    let n: usize = permit.num_permits();
    let part: Option<Permit<'_>> = permit.split(1);
    permit.merge(part.unwrap());
    assert_eq!(n, permit.num_permits());
    permit.forget();
    let mut owned = sem.try_acquire_owned().unwrap();
    let none: Option<OwnedPermit> = owned.split(2);
    assert!(none.is_none());
    owned.forget();

    sem.close();
    let closed: bool = sem.is_closed();
    assert!(closed);
    let e = futures_lite::future::block_on(sem.acquire()).unwrap_err();
    assert!(matches!(e, AcquireError::Closed));
    assert!(matches!(
        AcquireError::ExceedsCapacity {
            requested: 2,
            capacity: 1
        },
        AcquireError::ExceedsCapacity { .. }
    ));
    let _ = [
        TryAcquireError::NoPermits,
        TryAcquireError::Closed,
        TryAcquireError::ExceedsCapacity {
            requested: 1,
            capacity: 0,
        },
    ];
}

#[test]
fn bounded_contract() {
    let bs = Arc::new(BoundedSemaphore::new(2));
    let (c, a, u): (usize, usize, usize) = (bs.capacity(), bs.available_permits(), bs.in_use());
    assert_eq!((c, a, u), (2, 2, 0));
    let too_big = futures_lite::future::block_on(bs.acquire_many(3)).unwrap_err();
    assert!(matches!(too_big, AcquireError::ExceedsCapacity { .. }));
    bs.try_acquire().unwrap().forget();
    let r: Result<(), OverRelease> = bs.release(1);
    assert!(r.is_ok());
    drop::<AcquireOwned>(bs.acquire_owned());
    drop::<AcquireOwned>(bs.acquire_many_owned(1));
    let _: Result<OwnedPermit, TryAcquireError> = bs.try_acquire_owned();
    let _: Result<OwnedPermit, TryAcquireError> = bs.try_acquire_many_owned(1);
    let _: Result<Permit<'_>, TryAcquireError> = bs.try_acquire_many(1);
    drop::<Acquire<'_>>(bs.acquire());
    assert_eq!(futures_lite::future::block_on(bs.run(async { 3 })), Ok(3));
}

#[test]
fn clock_and_rate_contract() {
    let clock = ManualClock::new();
    clock.advance(Duration::from_millis(1));
    let _now = clock.now();
    let _system = SystemClock;

    let q: Quota = Quota::per_second(10).allow_burst(2);
    let _ = (Quota::per_minute(1), Quota::per_hour(1));
    let fallible: Result<Quota, QuotaError> = Quota::new(5, Duration::from_secs(1));
    assert!(fallible.is_ok());
    assert!(Quota::new(0, Duration::from_secs(1)).is_err());
    let _ = Quota::per_second(1).allow_burst(u32::MAX);

    let _real: RateLimiter = RateLimiter::new(q);
    let rl = RateLimiter::with_clock(q, clock.clone());
    let c: Result<(), NotUntil<_>> = rl.check();
    assert!(c.is_ok());
    let n: Result<(), RateLimitError<_>> = rl.check_n(1);
    assert!(n.is_ok());
    let denied = rl.check().unwrap_err();
    let _: Duration = denied.wait_time();
    let _earliest = denied.earliest();
    assert!(matches!(
        rl.check_n(3),
        Err(RateLimitError::InsufficientCapacity {
            requested: 3,
            burst: 2
        })
    ));
    let _acq = is_future(rl.acquire());
    let many = is_future(rl.acquire_many(5));
    let res: Result<(), InsufficientCapacity> = futures_lite::future::block_on(many);
    assert!(res.is_err());
    let r: Result<Reservation<'_, ManualClock>, InsufficientCapacity> = rl.reserve_many(1);
    let r = r.unwrap();
    let (_ready, _delay): (_, Duration) = (r.ready_at(), r.delay());
    r.cancel();
    let _run = is_future(rl.run(async {}));
    rl.set_quota(Quota::per_second(20));
    rl.pause_for(Duration::from_secs(1));
    rl.pause_until(clock.now());

    let tb: TokenBucket = TokenBucket::builder()
        .max(10)
        .initial(5)
        .refill(1)
        .interval(Duration::from_millis(100))
        .build()
        .unwrap();
    assert!(tb.check().is_ok());
    assert!(tb.check_n(1).is_ok());
    drop(is_future(tb.acquire()));
    drop(is_future(tb.acquire_many(1)));
    drop(is_future(tb.run(async {})));
}

#[test]
fn composite_contract() {
    let clock = ManualClock::new();
    let built: Result<Limiter<ManualClock>, BuildError> = Limiter::builder()
        .concurrency(2)
        .rate(Quota::per_second(10))
        .rate(Quota::per_hour(1000))
        .min_hold(Duration::from_millis(1))
        .clock(clock.clone())
        .build();
    let limiter = built.unwrap();
    let clone: Limiter<ManualClock> = limiter.clone();
    let run = is_future(clone.run(async { 5 }));
    drop(run);
    let acq = is_future(limiter.acquire());
    drop(acq);
    limiter.pause_for(Duration::from_millis(10));
    limiter.close();
    let closed: Result<LimiterPermit<ManualClock>, AcquireError> =
        futures_lite::future::block_on(limiter.acquire());
    assert!(matches!(closed, Err(AcquireError::Closed)));
    assert!(Limiter::builder().build().is_err());
    let _real: Limiter = Limiter::builder().concurrency(1).build().unwrap();

    let keyed: KeyedLimiter<&str> = KeyedLimiter::new(Limiter::builder().concurrency(1)).unwrap();
    let out = futures_lite::future::block_on(keyed.run(&"host", async { 1 }));
    assert_eq!(out.unwrap(), 1);
    let _: usize = keyed.len();

    let krl: KeyedRateLimiter<u32, ManualClock> =
        KeyedRateLimiter::with_clock(Quota::per_second(1), clock);
    assert!(krl.check(&1).is_ok());
    assert!(krl.check(&1).is_err());
    assert!(krl.check_n(&2, 1).is_ok());
    drop(is_future(krl.acquire(&3)));
    drop(is_future(krl.acquire_many(&3, 1)));
    let _: usize = krl.len();
    let _real: KeyedRateLimiter<u32> = KeyedRateLimiter::new(Quota::per_second(5));
}
