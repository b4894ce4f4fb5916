//! Loom models of the token bucket's move from its 8-byte word to the
//! 16-byte one: checks and reservations racing it on `ManualClock`.
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release`.

#[cfg(loom)]
mod models {
    use std::sync::Arc;
    use std::time::Duration;

    use limiters::{ManualClock, TokenBucket, TokenBucketBuilder};
    use loom::thread;

    /// The last boundary whose supply (1 token at first, 2 more a
    /// boundary) stays below 2^62 tokens: the bucket's 8-byte word takes it,
    /// and the next boundary moves it to the 16-byte one.
    const LAST_NARROW: u64 = (1 << 61) - 1;

    /// A full bucket of 2 tokens, 1 at first and 2 more a nanosecond, on a
    /// clock at boundary `k`.
    fn bucket_at(k: u64) -> (ManualClock, Arc<TokenBucket<ManualClock>>) {
        let clock = ManualClock::new();
        let bucket = TokenBucketBuilder::new()
            .max(2)
            .initial(1)
            .refill(2)
            .interval(Duration::from_nanos(1))
            .build_with_clock(clock.clone())
            .unwrap();
        clock.advance(Duration::from_nanos(k));
        (clock, Arc::new(bucket))
    }

    /// Two checks past the narrow word's last boundary both move the
    /// bucket (one finds it moved, under the movers' lock); with a third,
    /// exactly the 2 tokens there are are admitted.
    #[test]
    fn racing_movers_admit_exactly_what_there_is() {
        loom::model(|| {
            let (_clock, bucket) = bucket_at(LAST_NARROW + 1);
            let other = bucket.clone();
            let t = thread::spawn(move || other.check().is_ok());
            let mine = bucket.check().is_ok();
            let theirs = t.join().unwrap();
            let third = bucket.check().is_ok();
            assert_eq!([mine, theirs, third].iter().filter(|ok| **ok).count(), 2);
            assert_eq!(bucket.available(), 0);
        });
    }

    /// A check on the narrow word racing a reservation that takes `taken`
    /// to 2^62 and so moves the word, with one token left: the check is
    /// admitted exactly when it comes first, as in a sequential order, and
    /// the move loses neither take.
    #[test]
    fn a_check_racing_the_move_is_linearizable() {
        loom::model(|| {
            let (clock, bucket) = bucket_at(LAST_NARROW);
            bucket.check().unwrap();
            let other = bucket.clone();
            let t = thread::spawn(move || other.reserve_many(2).unwrap().ready_at().as_nanos());
            let admitted = bucket.check().is_ok();
            // Either order: 2^62 - 1 tokens supplied, the reservation's last
            // is token 2^62 or 2^62 + 1, both covered one boundary on.
            assert_eq!(t.join().unwrap(), LAST_NARROW + 1);
            assert_eq!(bucket.available(), 0);
            // One boundary on, 2^62 + 1 tokens supplied: the check's token,
            // if admitted, is still taken.
            clock.advance(Duration::from_nanos(1));
            assert_eq!(bucket.available(), if admitted { 0 } else { 1 });
        });
    }
}
