//! Per-key limiters: [`KeyedLimiter`] (a [`Limiter`](crate::Limiter) per
//! key, e.g. per host) and [`KeyedRateLimiter`] (a GCRA per key, e.g. per
//! client IP), with automatic eviction of idle keys.
//!
//! # Implementation details
//!
//! Both keep their keys in a sharded map: `shards` hash maps, each behind
//! its own lock, chosen by the key's hash. An operation on one key locks one
//! shard for a few map operations, so keys in other shards never wait for
//! it.
//!
//! The key is hashed once per operation, with std's randomly keyed SipHash
//! (`RandomState`): some of the hash's middle bits pick the shard, and the
//! shard's table (a `hashbrown::HashTable`) finds or inserts the entry with
//! the same hash, so a new key is not hashed again to be inserted. Keys
//! chosen by an attacker (client IPs, tokens) can neither crowd one shard's
//! lock nor degrade its table without knowing the process's random key.
//!
//! Eviction is amortized and needs no background task, and a check of a
//! known key never sweeps: when inserting a new key finds its shard at its
//! *sweep mark*, the shard first takes out every idle entry (one whose
//! state is the same as a fresh one's: nobody holds or waits on it and its
//! rate credit is full), in place, then sets the mark to twice what is left
//! (at least [`MIN_SWEEP`]). Each sweep costs at most as many steps as
//! insertions since the last one, and a shard holds at most about twice its
//! busy keys plus [`MIN_SWEEP`].

mod fair;
mod limiter;
mod rate;

use core::hash::{BuildHasher, Hash};
use std::hash::RandomState;

use hashbrown::HashTable;

pub use self::limiter::{KeyedAcquire, KeyedLimiter, KeyedPermit, KeyedRun, KeyedTryRun};
pub use self::rate::{
    KeyedRateAcquire, KeyedRateAcquireMany, KeyedRateAcquireWithin, KeyedRateLimiter,
};
use crate::sync::{AtomicUsize, Mutex, Ordering};

/// A shard is swept no earlier than at this many keys.
pub(crate) const MIN_SWEEP: usize = 64;

pub(crate) struct Shards<K, V> {
    shards: Box<[Mutex<Shard<K, V>>]>,
    /// The one hash of a key: picks its shard and its slot there.
    hasher: RandomState,
    /// Keys stored over all shards (a statistic: updated with `Relaxed`
    /// under each shard's lock, it orders nothing).
    len: AtomicUsize,
}

struct Shard<K, V> {
    map: HashTable<(K, V)>,
    sweep_at: usize,
}

/// The shard index is taken from the hash's bits from here up (at most 256
/// shards: bits 40 to 47). The table itself uses the low bits for the slot
/// and the top 7 as a tag, so the keys of one shard still spread over its
/// table.
const SHARD_SHIFT: u32 = 40;

impl<K, V> Shards<K, V> {
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }
}

impl<K: Hash + Eq + Clone, V> Shards<K, V> {
    pub(crate) fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
        let count = (cores * 4).clamp(8, 256).next_power_of_two();
        Self {
            shards: (0..count)
                .map(|_| {
                    Mutex::new(Shard {
                        map: HashTable::new(),
                        sweep_at: MIN_SWEEP,
                    })
                })
                .collect(),
            hasher: RandomState::new(),
            len: AtomicUsize::new(0),
        }
    }

    fn hash(&self, key: &K) -> u64 {
        self.hasher.hash_one(key)
    }

    fn shard(&self, hash: u64) -> &Mutex<Shard<K, V>> {
        let index = (hash >> SHARD_SHIFT) as usize & (self.shards.len() - 1);
        &self.shards[index]
    }

    /// Runs `f` on `key`'s entry, inserting `create()` first if absent.
    /// Before inserting, the shard is swept of entries for which `idle`
    /// holds if it reached its mark, or if the map holds `max` keys or more.
    /// Returns `None` (without calling `f`) if it still holds `max` keys.
    pub(crate) fn with_entry<R>(
        &self,
        key: &K,
        max: Option<usize>,
        idle: impl Fn(&V) -> bool,
        create: impl FnOnce() -> V,
        f: impl FnOnce(&mut V) -> R,
    ) -> Option<R> {
        // Evicted entries are dropped after the lock (declared before the
        // guard): dropping a key or a value may run the caller's code.
        let mut evicted = Vec::new();
        let hash = self.hash(key);
        let mut shard = self.shard(hash).lock();
        if let Some((_, v)) = shard.map.find_mut(hash, |(k, _)| k == key) {
            return Some(f(v));
        }
        let full = |len: usize| max.is_some_and(|max| len >= max);
        if shard.map.len() >= shard.sweep_at || full(self.len()) {
            self.sweep_shard(&mut shard, &idle, &mut evicted);
            if full(self.len()) {
                return None;
            }
        }
        // Known absent: inserted with the hash already taken (the table
        // hashes its keys again only when it grows).
        let entry = (key.clone(), create());
        let rehash = |(k, _): &(K, V)| self.hash(k);
        let (_, v) = shard.map.insert_unique(hash, entry, rehash).into_mut();
        self.len.fetch_add(1, Ordering::Relaxed);
        Some(f(v))
    }

    /// Runs `f` on `key`'s entry if there is one.
    pub(crate) fn with_existing<R>(&self, key: &K, f: impl FnOnce(&mut V) -> R) -> Option<R> {
        let hash = self.hash(key);
        let mut shard = self.shard(hash).lock();
        shard
            .map
            .find_mut(hash, |(k, _)| k == key)
            .map(|(_, v)| f(v))
    }

    /// Folds `f` over every entry, a shard at a time (a statistic: not one
    /// snapshot of all shards).
    pub(crate) fn fold<A>(&self, init: A, f: impl Fn(A, &V) -> A) -> A {
        self.shards.iter().fold(init, |acc, shard| {
            shard.lock().map.iter().fold(acc, |acc, (_, v)| f(acc, v))
        })
    }

    /// Drops every idle entry now.
    pub(crate) fn sweep(&self, idle: impl Fn(&V) -> bool) {
        for shard in self.shards.iter() {
            let mut evicted = Vec::new();
            let mut shard = shard.lock();
            self.sweep_shard(&mut shard, &idle, &mut evicted);
            drop(shard);
            drop(evicted);
        }
    }

    /// Moves the shard's idle entries to `evicted`, for the caller to drop
    /// once it has released the shard's lock, and sets the next sweep mark.
    fn sweep_shard(
        &self,
        shard: &mut Shard<K, V>,
        idle: &impl Fn(&V) -> bool,
        evicted: &mut Vec<(K, V)>,
    ) {
        let before = shard.map.len();
        // Taken out in place (a `retain` would drop them here, under the
        // lock): nothing is rehashed, and the table keeps its capacity, to
        // which the shard refills before the next sweep.
        evicted.extend(shard.map.extract_if(|(_, v)| idle(v)));
        let after = shard.map.len();
        self.len.fetch_sub(before - after, Ordering::Relaxed);
        shard.sweep_at = (after * 2).max(MIN_SWEEP);
    }
}

#[cfg(test)]
mod tests {
    use super::Shards;

    /// The shard bits of the key's hash spread everyday keys (counters,
    /// IPs, host names) evenly: no shard gets more than twice its share.
    #[test]
    fn shard_hash_spreads_keys() {
        fn spread<K: core::hash::Hash + Eq + Clone>(keys: impl Iterator<Item = K>) {
            let shards = Shards::<K, ()>::new();
            let mut count = vec![0usize; shards.shards.len()];
            let mut total = 0;
            for key in keys {
                let shard = shards.shard(shards.hash(&key));
                let index = shards
                    .shards
                    .iter()
                    .position(|s| core::ptr::eq(s, shard))
                    .unwrap();
                count[index] += 1;
                total += 1;
            }
            let share = total / count.len();
            assert!(
                count.iter().all(|&c| c > share / 2 && c < share * 2),
                "{count:?}"
            );
        }
        spread(0..10_000u64);
        spread((0..10_000u32).map(|i| std::net::IpAddr::from(i.to_be_bytes())));
        spread((0..10_000).map(|i| format!("api-{i}.example.com")));
    }
}
