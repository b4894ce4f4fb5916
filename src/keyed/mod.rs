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
//! The key is hashed twice: once with a fast unkeyed hash (multiply and
//! rotate, as rustc's FxHash) to pick the shard, and once by the shard's
//! `HashMap` with its randomly keyed SipHash. Only the second decides how
//! long a lookup takes, so keys chosen by an attacker (client IPs, tokens)
//! can crowd one shard's lock but cannot degrade its map; a keyed hash for
//! the shard too would cost a second SipHash (about 20 ns) on every check.
//!
//! Eviction is amortized and needs no background task: when inserting a new
//! key finds its shard at its *sweep mark*, the shard first drops every idle
//! entry (one whose state is the same as a fresh one's: nobody holds or
//! waits on it and its rate credit is full), then sets the mark to twice
//! what is left (at least [`MIN_SWEEP`]). Each sweep costs at most as many
//! steps as insertions since the last one, and a shard holds at most about
//! twice its busy keys plus [`MIN_SWEEP`].

mod fair;
mod limiter;
mod rate;

use core::hash::{Hash, Hasher};
use std::collections::HashMap;

pub use self::limiter::{KeyedAcquire, KeyedLimiter, KeyedPermit, KeyedRun, KeyedTryRun};
pub use self::rate::{
    KeyedRateAcquire, KeyedRateAcquireMany, KeyedRateAcquireWithin, KeyedRateLimiter,
};
use crate::sync::{AtomicUsize, Mutex, Ordering};

/// A shard is swept no earlier than at this many keys.
pub(crate) const MIN_SWEEP: usize = 64;

pub(crate) struct Shards<K, V> {
    shards: Box<[Mutex<Shard<K, V>>]>,
    /// Keys stored over all shards (a statistic: updated with `Relaxed`
    /// under each shard's lock, it orders nothing).
    len: AtomicUsize,
}

struct Shard<K, V> {
    map: HashMap<K, V>,
    sweep_at: usize,
}

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
                        map: HashMap::new(),
                        sweep_at: MIN_SWEEP,
                    })
                })
                .collect(),
            len: AtomicUsize::new(0),
        }
    }

    fn shard(&self, key: &K) -> &Mutex<Shard<K, V>> {
        let mut hasher = ShardHasher(0);
        key.hash(&mut hasher);
        // The high bits: a multiplicative hash mixes its input up into them.
        let index = (hasher.finish() >> 32) as usize & (self.shards.len() - 1);
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
        let mut shard = self.shard(key).lock();
        if let Some(v) = shard.map.get_mut(key) {
            return Some(f(v));
        }
        let full = |len: usize| max.is_some_and(|max| len >= max);
        if shard.map.len() >= shard.sweep_at || full(self.len()) {
            self.sweep_shard(&mut shard, &idle, &mut evicted);
            if full(self.len()) {
                return None;
            }
        }
        let v = shard.map.entry(key.clone()).or_insert_with(create);
        self.len.fetch_add(1, Ordering::Relaxed);
        Some(f(v))
    }

    /// Runs `f` on `key`'s entry if there is one.
    pub(crate) fn with_existing<R>(&self, key: &K, f: impl FnOnce(&mut V) -> R) -> Option<R> {
        self.shard(key).lock().map.get_mut(key).map(f)
    }

    /// Folds `f` over every entry, a shard at a time (a statistic: not one
    /// snapshot of all shards).
    pub(crate) fn fold<A>(&self, init: A, f: impl Fn(A, &V) -> A) -> A {
        self.shards
            .iter()
            .fold(init, |acc, shard| shard.lock().map.values().fold(acc, &f))
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
        // `HashMap::retain` would drop them here, under the lock; rebuilding
        // the map costs the same order as the scan, which the sweep mark
        // already amortizes over the insertions since the last sweep. The
        // fresh map keeps the old capacity: the shard refills to about its
        // old size before the next sweep, and growing back from `kept` would
        // rehash every entry once per doubling (keyed check, 10,000 keys:
        // 862 -> 604 instructions).
        let kept = shard.map.values().filter(|v| !idle(v)).count();
        if kept < before {
            let fresh = HashMap::with_capacity_and_hasher(before, shard.map.hasher().clone());
            evicted.reserve(before - kept);
            for (k, v) in core::mem::replace(&mut shard.map, fresh) {
                if idle(&v) {
                    evicted.push((k, v));
                } else {
                    shard.map.insert(k, v);
                }
            }
        }
        let after = shard.map.len();
        self.len.fetch_sub(before - after, Ordering::Relaxed);
        shard.sweep_at = (after * 2).max(MIN_SWEEP);
    }
}

/// The shard-picking hash: rustc's FxHash step (rotate, xor, multiply by an
/// odd constant). Fast and unkeyed; see the module docs for why that is
/// enough here.
struct ShardHasher(u64);

impl ShardHasher {
    const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::K);
    }
}

impl Hasher for ShardHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(n.into());
    }

    fn write_u16(&mut self, n: u16) {
        self.add(n.into());
    }

    fn write_u32(&mut self, n: u32) {
        self.add(n.into());
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::Shards;

    /// The unkeyed shard hash still spreads everyday keys (counters, IPs,
    /// host names) evenly: no shard gets more than twice its share.
    #[test]
    fn shard_hash_spreads_keys() {
        fn spread<K: core::hash::Hash + Eq + Clone>(keys: impl Iterator<Item = K>) {
            let shards = Shards::<K, ()>::new();
            let mut count = vec![0usize; shards.shards.len()];
            let mut total = 0;
            for key in keys {
                let shard = shards.shard(&key);
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
