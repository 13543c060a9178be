//! Caches whose entries each carry their own time to live.

use std::time::{Duration, Instant};

/// A cached value and how long it may be used.
#[derive(Clone, Debug)]
pub struct Timed<V> {
    /// The value.
    pub value: V,
    /// Its time to live.
    pub ttl: Duration,
}

struct PerEntry;

impl<K, V> moka::Expiry<K, Timed<V>> for PerEntry {
    fn expire_after_create(&self, _: &K, value: &Timed<V>, _: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// A bounded cache of at most `capacity` entries, each expiring after its
/// own `ttl`.
pub fn timed<K, V>(capacity: u64) -> moka::sync::Cache<K, Timed<V>>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    moka::sync::Cache::builder()
        .max_capacity(capacity)
        .expire_after(PerEntry)
        .build()
}
