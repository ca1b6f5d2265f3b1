//! The command ledger: one effect per (correlation id, ring, action, platform).

use std::future::Future;
use std::time::Duration;

use eucora_domain::Timestamp;
use eucora_service::ports::StoreError;
use serde::{Deserialize, Serialize};

/// How long a claimed command is protected from a second worker (a crashed worker's claim lapses).
pub const LEASE: Duration = Duration::from_secs(300);

/// A claim's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// This worker runs the command.
    Acquired,
    /// Already done: a duplicate (answer 409, change nothing). Holds the first outcome.
    Duplicate(serde_json::Value),
    /// Another worker holds it until the lease ends.
    Busy { until: Timestamp },
}

/// What the ledger stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Entry {
    InProgress {
        until: Timestamp,
    },
    Done {
        outcome: serde_json::Value,
        at: Timestamp,
    },
}

pub trait CommandLedger: Send + Sync {
    /// Claims `key` unless it is done or leased to another worker.
    fn claim(
        &self,
        key: &str,
        now: Timestamp,
        lease: Duration,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;
    /// Marks `key` done with its outcome.
    fn complete(
        &self,
        key: &str,
        outcome: &serde_json::Value,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Gives up a claim after a failure, so that the retry can claim at once.
    fn release(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}
