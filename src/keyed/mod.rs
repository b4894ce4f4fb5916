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
//! A known key costs one hash, one shard lock and one probe of its table,
//! inline; everything a new key needs (the key's clone, the insertion, the
//! sweep) is out of line. [`KeyedRateLimiter`] counts its checks for
//! `stats` in a tally per shard, written under the shard's lock with a
//! plain load and store, instead of in counters every shard shares. Each
//! shard sits on cache lines of its own.
//!
//! Eviction is amortized and needs no background task, and a check of a
//! known key never sweeps: when inserting a new key finds its shard at its
//! *sweep mark*, the shard first takes out every idle entry (one whose
//! state is the same as a fresh one's: nobody holds or waits on it and its
//! rate credit is full), in place, then sets the mark to twice what is left
//! (at least [`MIN_SWEEP`], or the shard's part of the idle keys the owner
//! lets stay: 16,384 over all shards for a [`KeyedRateLimiter`], whose
//! entries are small and whose clients come back, none for a
//! [`KeyedLimiter`]). Each sweep costs at most as many steps as insertions
//! since the last one, and a shard holds at most about twice its busy keys
//! plus that minimum.

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
use crate::sync::{AtomicU64, AtomicUsize, Mutex, Ordering};

/// A shard is swept no earlier than at this many keys.
pub(crate) const MIN_SWEEP: usize = 64;

pub(crate) struct Shards<K, V> {
    shards: Box<[Slot<K, V>]>,
    /// No shard is swept below this many keys: [`MIN_SWEEP`], or the
    /// shard's part of the idle keys the owner lets stay.
    min_sweep: usize,
    /// The one hash of a key: picks its shard and its slot there.
    hasher: RandomState,
    /// Keys stored over all shards (a statistic: updated with `Relaxed`
    /// under each shard's lock, it orders nothing).
    len: AtomicUsize,
}

/// A shard and its tally, on cache lines of their own: threads checking
/// keys of different shards share no line.
#[repr(align(128))]
struct Slot<K, V> {
    shard: Mutex<Shard<K, V>>,
    /// Counted under `shard`'s lock, read without it.
    tally: Tally,
}

struct Shard<K, V> {
    map: HashTable<(K, V)>,
    sweep_at: usize,
}

/// One shard's count of the checks it admitted and refused. Only the holder
/// of the shard's lock writes it, so a count is a plain load and store (no
/// locked read-modify-write, and no counter line that every shard's checks
/// would pass around); `stats` reads it without the lock, `Relaxed` (a
/// statistic: it orders nothing).
pub(crate) struct Tally {
    admitted: AtomicU64,
    denied: AtomicU64,
}

impl Tally {
    fn new() -> Self {
        Self {
            admitted: AtomicU64::new(0),
            denied: AtomicU64::new(0),
        }
    }

    /// One check admitted. Call only under the shard's lock.
    #[inline]
    pub(crate) fn admit(&self) {
        Self::bump(&self.admitted);
    }

    /// One check refused. Call only under the shard's lock.
    #[inline]
    pub(crate) fn deny(&self) {
        Self::bump(&self.denied);
    }

    #[inline]
    fn bump(count: &AtomicU64) {
        count.store(count.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
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

    /// Checks admitted and refused over all shards, as [`Tally`] counted
    /// them (a statistic: a shard at a time).
    pub(crate) fn tally(&self) -> (u64, u64) {
        self.shards.iter().fold((0, 0), |(admitted, denied), slot| {
            let tally = &slot.tally;
            (
                admitted + tally.admitted.load(Ordering::Relaxed),
                denied + tally.denied.load(Ordering::Relaxed),
            )
        })
    }
}

impl<K: Hash + Eq + Clone, V> Shards<K, V> {
    /// Shards that sweep no earlier than at [`MIN_SWEEP`] keys each, or at
    /// their part of `idle_keys` if that is more: the owner lets that many
    /// idle keys stay, over all shards, before sweeping any.
    pub(crate) fn new(idle_keys: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
        let count = (cores * 4).clamp(8, 256).next_power_of_two();
        let min_sweep = (idle_keys / count).max(MIN_SWEEP);
        Self {
            min_sweep,
            shards: (0..count)
                .map(|_| Slot {
                    shard: Mutex::new(Shard {
                        map: HashTable::new(),
                        sweep_at: min_sweep,
                    }),
                    tally: Tally::new(),
                })
                .collect(),
            hasher: RandomState::new(),
            len: AtomicUsize::new(0),
        }
    }

    #[inline]
    fn hash(&self, key: &K) -> u64 {
        self.hasher.hash_one(key)
    }

    #[inline]
    fn slot(&self, hash: u64) -> &Slot<K, V> {
        let index = (hash >> SHARD_SHIFT) as usize & (self.shards.len() - 1);
        &self.shards[index]
    }

    /// Runs `f` on `key`'s entry and its shard's tally, inserting
    /// `create()` first if absent. Before inserting, the shard is swept of
    /// entries for which `idle` holds if it reached its mark, or if the map
    /// holds `max` keys or more. Returns `None` (without calling `f`) if it
    /// still holds `max` keys.
    ///
    /// A known key costs one hash, one lock and one probe of its shard's
    /// table, inline; a new one goes out of line, where the sweep is.
    #[inline]
    pub(crate) fn with_entry<R>(
        &self,
        key: &K,
        max: Option<usize>,
        idle: impl Fn(&V) -> bool,
        create: impl FnOnce() -> V,
        f: impl FnOnce(&mut V, &Tally) -> R,
    ) -> Option<R> {
        let hash = self.hash(key);
        let slot = self.slot(hash);
        let mut shard = slot.shard.lock();
        if let Some((_, v)) = shard.map.find_mut(hash, |(k, _)| k == key) {
            return Some(f(v, &slot.tally));
        }
        // Evicted entries are dropped after the lock: dropping a key or a
        // value may run the caller's code.
        let (evicted, room) = self.make_room(&mut shard, max, &idle);
        let out = room.then(|| f(self.insert(&mut shard, hash, key, create), &slot.tally));
        drop(shard);
        drop(evicted);
        out
    }

    /// Before inserting into `shard`: sweeps it if it reached its mark or
    /// the map holds `max` keys. Returns what the sweep took out, and
    /// whether there is room for one more key.
    #[cold]
    #[inline(never)]
    fn make_room(
        &self,
        shard: &mut Shard<K, V>,
        max: Option<usize>,
        idle: &impl Fn(&V) -> bool,
    ) -> (Vec<(K, V)>, bool) {
        let mut evicted = Vec::new();
        let full = |len: usize| max.is_some_and(|max| len >= max);
        if shard.map.len() >= shard.sweep_at || full(self.len()) {
            self.sweep_shard(shard, idle, &mut evicted);
        }
        (evicted, !full(self.len()))
    }

    /// Inserts `key` (known absent, with its `hash`) and `create()`.
    #[cold]
    #[inline(never)]
    fn insert<'s>(
        &self,
        shard: &'s mut Shard<K, V>,
        hash: u64,
        key: &K,
        create: impl FnOnce() -> V,
    ) -> &'s mut V {
        // Inserted with the hash already taken (the table hashes its keys
        // again only when it grows).
        let entry = (key.clone(), create());
        let rehash = |(k, _): &(K, V)| self.hash(k);
        let (_, v) = shard.map.insert_unique(hash, entry, rehash).into_mut();
        self.len.fetch_add(1, Ordering::Relaxed);
        v
    }

    /// Runs `f` on `key`'s entry if there is one.
    #[inline]
    pub(crate) fn with_existing<R>(&self, key: &K, f: impl FnOnce(&mut V) -> R) -> Option<R> {
        let hash = self.hash(key);
        let mut shard = self.slot(hash).shard.lock();
        shard
            .map
            .find_mut(hash, |(k, _)| k == key)
            .map(|(_, v)| f(v))
    }

    /// Folds `f` over every entry, a shard at a time (a statistic: not one
    /// snapshot of all shards).
    pub(crate) fn fold<A>(&self, init: A, f: impl Fn(A, &V) -> A) -> A {
        self.shards.iter().fold(init, |acc, slot| {
            let shard = slot.shard.lock();
            shard.map.iter().fold(acc, |acc, (_, v)| f(acc, v))
        })
    }

    /// Drops every idle entry now.
    pub(crate) fn sweep(&self, idle: impl Fn(&V) -> bool) {
        for slot in self.shards.iter() {
            let mut evicted = Vec::new();
            let mut shard = slot.shard.lock();
            self.sweep_shard(&mut shard, &idle, &mut evicted);
            drop(shard);
            drop(evicted);
        }
    }

    /// Takes the shard's idle entries out and sets its next sweep mark.
    /// Entries whose drop can run code are moved to `evicted`, for the
    /// caller to drop once it has released the shard's lock; the others
    /// (plain keys and states: nothing to run) are dropped in place.
    fn sweep_shard(
        &self,
        shard: &mut Shard<K, V>,
        idle: &impl Fn(&V) -> bool,
        evicted: &mut Vec<(K, V)>,
    ) {
        let before = shard.map.len();
        // Taken out in place: nothing is rehashed, and the table keeps its
        // capacity, to which the shard refills before the next sweep.
        if core::mem::needs_drop::<(K, V)>() {
            evicted.extend(shard.map.extract_if(|(_, v)| idle(v)));
        } else {
            shard.map.retain(|(_, v)| !idle(v));
        }
        let after = shard.map.len();
        self.len.fetch_sub(before - after, Ordering::Relaxed);
        shard.sweep_at = (after * 2).max(self.min_sweep);
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
            let shards = Shards::<K, ()>::new(0);
            let mut count = vec![0usize; shards.shards.len()];
            let mut total = 0;
            for key in keys {
                let slot = shards.slot(shards.hash(&key));
                let index = shards
                    .shards
                    .iter()
                    .position(|s| core::ptr::eq(s, slot))
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
