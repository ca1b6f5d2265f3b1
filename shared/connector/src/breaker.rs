//! A circuit breaker per platform, its state shared by every function instance (the store is
//! DynamoDB in production): open after 5 consecutive transient failures, half-open after 60 s
//! (one probe call at a time), closed again by a success.

use std::future::Future;
use std::time::Duration;

use eucora_domain::Timestamp;
use eucora_domain::evidence::Platform;
use eucora_service::ports::StoreError;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    pub failure_threshold: u32,
    pub open_for: Duration,
    /// How long a half-open probe holds the breaker before another instance may probe.
    pub probe_lease: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            failure_threshold: 5,
            open_for: Duration::from_secs(60),
            probe_lease: Duration::from_secs(30),
        }
    }
}

/// The shared state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerState {
    pub consecutive_failures: u32,
    pub opened_at: Option<Timestamp>,
    pub probe_until: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerStatus {
    Closed,
    Open,
    HalfOpen,
}

/// Whether a call may go out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Allow,
    /// Half-open: this call is the probe; save `claim` first so that no other instance probes too.
    Probe {
        claim: BreakerState,
    },
    /// Open: do not call; try again after `retry_in`.
    Reject {
        retry_in: Duration,
    },
}

fn after(t: Timestamp, d: Duration) -> Timestamp {
    t.plus(time::Duration::try_from(d).unwrap_or(time::Duration::MAX))
}

impl BreakerState {
    pub fn status(&self, now: Timestamp, p: &BreakerPolicy) -> BreakerStatus {
        match self.opened_at {
            None => BreakerStatus::Closed,
            Some(at) if now < after(at, p.open_for) => BreakerStatus::Open,
            Some(_) => BreakerStatus::HalfOpen,
        }
    }

    pub fn admit(&self, now: Timestamp, p: &BreakerPolicy) -> Admission {
        match (self.status(now, p), self.opened_at) {
            (BreakerStatus::Closed, _) | (BreakerStatus::Open, None) => Admission::Allow,
            (BreakerStatus::Open, Some(at)) => Admission::Reject {
                retry_in: after(at, p.open_for)
                    .since(now)
                    .try_into()
                    .unwrap_or(p.open_for),
            },
            (BreakerStatus::HalfOpen, _) => match self.probe_until {
                Some(until) if now < until => Admission::Reject {
                    retry_in: until.since(now).try_into().unwrap_or(p.probe_lease),
                },
                _ => Admission::Probe {
                    claim: BreakerState {
                        probe_until: Some(after(now, p.probe_lease)),
                        ..self.clone()
                    },
                },
            },
        }
    }

    /// After a call the platform answered (success, or an error that is not the platform's
    /// health: conflict, invalid payload, forbidden).
    #[must_use]
    pub fn on_answer(&self) -> BreakerState {
        BreakerState::default()
    }

    /// After a transient failure (429, 503, timeout, dropped connection).
    #[must_use]
    pub fn on_transient_failure(&self, now: Timestamp, p: &BreakerPolicy) -> BreakerState {
        let failures = self.consecutive_failures.saturating_add(1);
        let reopen =
            self.status(now, p) == BreakerStatus::HalfOpen || failures >= p.failure_threshold;
        BreakerState {
            consecutive_failures: failures,
            opened_at: if reopen { Some(now) } else { self.opened_at },
            probe_until: None,
        }
    }
}

/// A stored state with its version, for conditional writes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Versioned {
    pub state: BreakerState,
    pub version: u64,
}

/// Where the breaker's state lives, shared by all instances.
pub trait BreakerStore: Send + Sync {
    fn load(
        &self,
        platform: Platform,
    ) -> impl Future<Output = Result<Versioned, StoreError>> + Send;
    /// Saves if the stored version is still `expected`; [`StoreError::Conflict`] otherwise.
    fn save(
        &self,
        platform: Platform,
        state: &BreakerState,
        expected: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix_seconds(1_800_000_000 + s).unwrap()
    }

    #[test]
    fn opens_after_5_consecutive_failures_and_half_opens_after_60_s() {
        let p = BreakerPolicy::default();
        let mut s = BreakerState::default();
        for i in 0..4 {
            s = s.on_transient_failure(t(i), &p);
            assert_eq!(s.admit(t(i), &p), Admission::Allow, "failure {}", i + 1);
        }
        s = s.on_transient_failure(t(4), &p);
        assert_eq!(s.status(t(4), &p), BreakerStatus::Open);
        assert_eq!(
            s.admit(t(5), &p),
            Admission::Reject {
                retry_in: Duration::from_secs(59)
            }
        );
        // 60 s later: one probe.
        let Admission::Probe { claim } = s.admit(t(64), &p) else {
            panic!("expected a probe")
        };
        assert!(
            matches!(claim.admit(t(65), &p), Admission::Reject { .. }),
            "only one probe at a time"
        );
        // The probe fails: open again for 60 s.
        let reopened = claim.on_transient_failure(t(66), &p);
        assert_eq!(reopened.status(t(100), &p), BreakerStatus::Open);
        // The next probe succeeds: closed.
        assert_eq!(reopened.on_answer().admit(t(127), &p), Admission::Allow);
    }

    #[test]
    fn an_answer_resets_the_count() {
        let p = BreakerPolicy::default();
        let mut s = BreakerState::default();
        for i in 0..4 {
            s = s.on_transient_failure(t(i), &p);
        }
        s = s.on_answer();
        s = s.on_transient_failure(t(10), &p);
        assert_eq!(s.status(t(10), &p), BreakerStatus::Closed);
    }
}
