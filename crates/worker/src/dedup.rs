//! Duplicate suppression: a bounded LRU of objects recently delivered in full, so a redelivered
//! notification (SQS is at-least-once; a lost delete brings the message back) is not shipped
//! twice by this process.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use trailhose_core::notify::ObjectRef;

/// What makes two notifications name the same object content: bucket, key and the entity tag
/// (or, without one, the S3 sequencer). CloudTrail's own notification carries neither; its
/// keys are unique per delivery, so bucket and key suffice there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectIdentity {
    pub bucket: String,
    pub key: String,
    pub version: Option<String>,
}

impl ObjectIdentity {
    pub fn of(o: &ObjectRef) -> Self {
        let etag = o
            .etag
            .as_deref()
            .map(|e| e.trim_matches('"').to_owned())
            .filter(|e| !e.is_empty());
        ObjectIdentity {
            bucket: o.bucket.clone(),
            key: o.key.clone(),
            version: etag.or_else(|| o.sequencer.clone()),
        }
    }
}

/// A least-recently-used set with a fixed capacity; lookups refresh an entry. O(log n) per
/// operation, no unsafe code.
#[derive(Debug)]
pub struct Lru<K> {
    capacity: usize,
    tick: u64,
    stamps: HashMap<K, u64>,
    order: BTreeMap<u64, K>,
}

impl<K: Clone + Eq + Hash> Lru<K> {
    /// `capacity` 0 remembers nothing.
    pub fn new(capacity: usize) -> Self {
        Lru {
            capacity,
            tick: 0,
            stamps: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.stamps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.stamps.is_empty()
    }

    fn touch(&mut self, key: &K) -> bool {
        let Some(stamp) = self.stamps.get_mut(key) else {
            return false;
        };
        self.tick += 1;
        if let Some(k) = self.order.remove(stamp) {
            self.order.insert(self.tick, k);
        }
        *stamp = self.tick;
        true
    }

    /// Whether `key` is remembered; refreshes it.
    pub fn contains(&mut self, key: &K) -> bool {
        self.touch(key)
    }

    /// Remembers `key`, evicting the least recently used entry when full.
    pub fn insert(&mut self, key: K) {
        if self.capacity == 0 || self.touch(&key) {
            return;
        }
        while self.stamps.len() >= self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.stamps.remove(&oldest);
        }
        self.tick += 1;
        self.order.insert(self.tick, key.clone());
        self.stamps.insert(key, self.tick);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used() {
        let mut l = Lru::new(2);
        l.insert("a");
        l.insert("b");
        assert!(l.contains(&"a"), "refreshes a");
        l.insert("c");
        assert!(!l.contains(&"b"), "b was the least recently used");
        assert!(l.contains(&"a") && l.contains(&"c"));
        assert_eq!(l.len(), 2);
        l.insert("c");
        assert_eq!(l.len(), 2, "re-insert does not grow");
    }

    #[test]
    fn zero_capacity_remembers_nothing() {
        let mut l = Lru::new(0);
        l.insert(1);
        assert!(!l.contains(&1));
        assert!(l.is_empty());
    }

    #[test]
    fn stays_bounded_under_churn() {
        let mut l = Lru::new(100);
        for i in 0..10_000u32 {
            l.insert(i);
            if i % 3 == 0 {
                l.contains(&(i / 2));
            }
        }
        assert_eq!(l.len(), 100);
        assert_eq!(l.order.len(), 100);
        assert!(l.contains(&9_999));
    }

    #[test]
    fn identity_prefers_etag_then_sequencer() {
        let mut o = ObjectRef {
            bucket: "b".into(),
            key: "k".into(),
            region: None,
            size: None,
            etag: Some("\"abc\"".into()),
            version_id: None,
            sequencer: Some("0055".into()),
        };
        assert_eq!(ObjectIdentity::of(&o).version.as_deref(), Some("abc"));
        o.etag = None;
        assert_eq!(ObjectIdentity::of(&o).version.as_deref(), Some("0055"));
        o.sequencer = None;
        assert_eq!(ObjectIdentity::of(&o).version, None);
    }
}
