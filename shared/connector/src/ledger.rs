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
    /// This worker runs the command. `lapsed`: how many claims before this one ran out without
    /// an end (their worker stopped mid-command: out of memory, out of time, a crash); a
    /// released or new command has 0.
    Acquired { lapsed: u32 },
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
        /// How many claims before this one lapsed (see [`Claim::Acquired`]).
        #[serde(default, skip_serializing_if = "is_zero")]
        lapsed: u32,
    },
    Done {
        outcome: serde_json::Value,
        at: Timestamp,
    },
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(n: &u32) -> bool {
    *n == 0
}

pub trait CommandLedger: Send + Sync {
    /// Claims `key` unless it is done or leased to another worker; a claim whose lease ran out
    /// without an end is taken over, and counted.
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
