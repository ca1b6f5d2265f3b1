//! In-memory ledger and breaker store with the same semantics as the DynamoDB ones, for tests.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eucora_domain::Timestamp;
use eucora_domain::evidence::Platform;
use eucora_service::ports::StoreError;

use crate::breaker::{BreakerState, BreakerStore, Versioned};
use crate::ledger::{Claim, CommandLedger, Entry};

#[derive(Debug, Clone, Default)]
pub struct MemoryLedger(Arc<Mutex<BTreeMap<String, Entry>>>);

impl CommandLedger for MemoryLedger {
    async fn claim(&self, key: &str, now: Timestamp, lease: Duration) -> Result<Claim, StoreError> {
        let mut m = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let lapsed = match m.get(key) {
            Some(Entry::Done { outcome, .. }) => return Ok(Claim::Duplicate(outcome.clone())),
            Some(Entry::InProgress { until, .. }) if *until > now => {
                return Ok(Claim::Busy { until: *until });
            }
            Some(Entry::InProgress { lapsed, .. }) => lapsed + 1,
            None => 0,
        };
        let until = now.plus(time::Duration::try_from(lease).unwrap_or(time::Duration::MINUTE));
        m.insert(key.to_owned(), Entry::InProgress { until, lapsed });
        Ok(Claim::Acquired { lapsed })
    }

    async fn complete(
        &self,
        key: &str,
        outcome: &serde_json::Value,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut m = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        m.insert(
            key.to_owned(),
            Entry::Done {
                outcome: outcome.clone(),
                at: now,
            },
        );
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        let mut m = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if matches!(m.get(key), Some(Entry::InProgress { .. })) {
            m.remove(key);
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default)]
pub struct MemoryBreaker(Arc<Mutex<BTreeMap<String, Versioned>>>);

impl MemoryBreaker {
    pub fn state(&self, platform: Platform) -> BreakerState {
        let m = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        m.get(platform.key())
            .map(|v| v.state.clone())
            .unwrap_or_default()
    }
}

impl BreakerStore for MemoryBreaker {
    async fn load(&self, platform: Platform) -> Result<Versioned, StoreError> {
        let m = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(m.get(platform.key()).cloned().unwrap_or_default())
    }

    async fn save(
        &self,
        platform: Platform,
        state: &BreakerState,
        expected: u64,
    ) -> Result<(), StoreError> {
        let mut m = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = m.get(platform.key()).map_or(0, |v| v.version);
        if current != expected {
            return Err(StoreError::Conflict);
        }
        m.insert(
            platform.key().to_owned(),
            Versioned {
                state: state.clone(),
                version: expected + 1,
            },
        );
        Ok(())
    }
}
