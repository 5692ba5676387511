//! Which enhanced fan-out subscriptions are live: one per consumer and shard, as
//! Kinesis allows. A second SubscribeToShard within 5 seconds of the first is refused
//! with ResourceInUseException; one made later takes the subscription over, and the
//! older one ends (its pusher sees it is no longer current).

use std::collections::HashMap;
use std::sync::Mutex;

use super::Store;
use super::stream::lock;
use crate::server::clock::Millis;
use crate::server::error::{KinesisError, OpResult};

/// How long a new subscription is protected from being taken over.
pub const TAKEOVER_AFTER_MS: Millis = 5_000;

/// The live subscriptions, by consumer ARN and shard index.
#[derive(Debug, Default)]
pub struct Subscriptions {
    live: Mutex<HashMap<(String, u32), Live>>,
    next_id: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Clone, Copy)]
struct Live {
    id: u64,
    started_ms: Millis,
}

/// A live subscription; it stops being current when another takes over, and is
/// forgotten when dropped.
#[derive(Debug)]
pub struct Subscription {
    store: Store,
    key: (String, u32),
    id: u64,
}

impl Store {
    /// Starts the subscription of `consumer_arn` to shard `shard_index`.
    pub fn subscribe(
        &self,
        consumer_arn: &str,
        shard_id: &str,
        shard_index: u32,
    ) -> OpResult<Subscription> {
        let now = self.now_ms();
        let registry = &self.inner.subscriptions;
        let key = (consumer_arn.to_owned(), shard_index);
        let mut live = lock(&registry.live);
        if let Some(current) = live.get(&key)
            && now - current.started_ms < TAKEOVER_AFTER_MS
        {
            return Err(KinesisError::in_use(format!(
                "Another active subscription exists for consumer {consumer_arn} on shard {shard_id}."
            )));
        }
        let id = registry
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        live.insert(
            key.clone(),
            Live {
                id,
                started_ms: now,
            },
        );
        Ok(Subscription {
            store: self.clone(),
            key,
            id,
        })
    }
}

impl Subscription {
    /// False once a newer subscription for the same consumer and shard took over.
    pub fn is_current(&self) -> bool {
        lock(&self.store.inner.subscriptions.live)
            .get(&self.key)
            .is_some_and(|live| live.id == self.id)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut live = lock(&self.store.inner.subscriptions.live);
        if live.get(&self.key).is_some_and(|l| l.id == self.id) {
            live.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::server::clock::Clock;
    use crate::server::store::{Store, StoreConfig};

    #[test]
    fn a_second_subscription_is_refused_for_5_s_then_takes_over() {
        let clock = Clock::frozen();
        let store = Store::new(StoreConfig::default(), clock.clone(), None)
            .unwrap_or_else(|e| panic!("{e}"));
        let first = store
            .subscribe("arn:c", "shardId-000000000000", 0)
            .unwrap_or_else(|e| panic!("{e}"));
        let refused = store
            .subscribe("arn:c", "shardId-000000000000", 0)
            .unwrap_err();
        assert_eq!(refused.kind, crate::server::error::ErrorKind::ResourceInUse);
        // Another shard, or another consumer, is its own subscription.
        let other_shard = store.subscribe("arn:c", "shardId-000000000001", 1);
        assert!(other_shard.is_ok());
        clock.advance(Duration::from_secs(5));
        let second = store
            .subscribe("arn:c", "shardId-000000000000", 0)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!first.is_current() && second.is_current());
        // The old one ending does not end the new one.
        drop(first);
        assert!(second.is_current());
        drop(second);
        assert!(store.subscribe("arn:c", "shardId-000000000000", 0).is_ok());
    }
}
