//! The narrow ports the use cases need. Adapters: `memory` here, DynamoDB and SQS in `eucora-aws`.

use std::future::Future;

use eucora_domain::audit::AuditEvent;
use eucora_domain::evidence::Platform;
use eucora_domain::{DeploymentId, Timestamp};
use serde::{Deserialize, Serialize};

use crate::messages::Envelope;
use crate::record::{Change, DeploymentRecord};

/// A storage failure, classified for the caller: retry later, or give up.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Someone else changed the deployment first (optimistic lock) or a condition failed.
    #[error("the deployment was changed concurrently")]
    Conflict,
    /// Throttled or temporarily unavailable: retry with backoff.
    #[error("storage is busy: {0}")]
    Retryable(String),
    /// Anything else (misconfiguration, permissions, corrupt item).
    #[error("storage failed: {0}")]
    Failed(String),
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Conflict | StoreError::Retryable(_))
    }
}

/// What a repeated request must get back: the first answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub key: String,
    /// SHA-256 of the request's canonical form: the same key with another body is a conflict.
    pub request_hash: String,
    pub deployment_id: DeploymentId,
    pub created_at: Timestamp,
    /// When the record may be forgotten (DynamoDB TTL); never for a correlation id, which names
    /// its deployment for as long as it is kept.
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
}

/// Creating a deployment lost a race for one of its unique claims.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The idempotency key (or correlation id) is already taken; here is who took it.
    #[error("idempotency key {} already used", .0.key)]
    Taken(IdempotencyRecord),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Deployments and their audit trails.
pub trait DeploymentStore: Send + Sync {
    /// Stores a new deployment, its first audit events and its idempotency claims, atomically.
    fn create(
        &self,
        change: &Change,
        claims: &[IdempotencyRecord],
    ) -> impl Future<Output = Result<(), CreateError>> + Send;

    fn idempotency(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<IdempotencyRecord>, StoreError>> + Send;

    fn get(
        &self,
        id: &DeploymentId,
    ) -> impl Future<Output = Result<Option<DeploymentRecord>, StoreError>> + Send;

    /// Saves the change if the stored version is still `change.expected_version`, appending its
    /// audit events in the same atomic write. [`StoreError::Conflict`] otherwise.
    fn save(&self, change: &Change) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deployments in flight (the gate schedule's work list); never finished ones.
    fn in_flight(&self) -> impl Future<Output = Result<Vec<DeploymentId>, StoreError>> + Send;

    /// Deployments awaiting a CAB decision.
    fn awaiting_cab(&self) -> impl Future<Output = Result<Vec<DeploymentId>, StoreError>> + Send;

    /// A deployment's whole audit trail, in order (small trails and tests; the API pages with
    /// [`DeploymentStore::audit_page`]).
    fn audit_trail(
        &self,
        id: &DeploymentId,
    ) -> impl Future<Output = Result<Vec<AuditEvent>, StoreError>> + Send;

    /// One page of a deployment's audit trail, in order: the events stored after position
    /// `after` (from the start with `None`), at most `limit` of them (a limit of 0 counts as 1),
    /// and fewer if their JSON would pass [`AUDIT_PAGE_MAX_BYTES`] (but never none while events
    /// remain). A position is
    /// where the store put the event (DynamoDB's sort key `AUDIT#<seq>`), not the `seq` the
    /// event says, so that an altered event cannot send the reader back or forward.
    fn audit_page(
        &self,
        id: &DeploymentId,
        after: Option<u64>,
        limit: usize,
    ) -> impl Future<Output = Result<AuditPage, StoreError>> + Send;
}

/// The most JSON one audit page holds (4 MiB), so that an API answer stays under Lambda's 6 MB
/// response limit however large the events.
pub const AUDIT_PAGE_MAX_BYTES: usize = 4 << 20;

/// One page of an audit trail.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AuditPage {
    /// In order; no more than the limit asked for.
    pub events: Vec<AuditEvent>,
    /// The position of the page's last event when more events follow (pass it as `after` for the
    /// next page); `None` at the end of the trail.
    pub next: Option<u64>,
}

/// The queues between functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueName {
    Scoring,
    Connector(Platform),
}

#[derive(Debug, thiserror::Error)]
#[error("could not send to the {queue:?} queue: {reason}")]
pub struct QueueError {
    pub queue: QueueName,
    pub reason: String,
}

/// Sends messages.
pub trait Queue: Send + Sync {
    fn send(
        &self,
        queue: QueueName,
        message: &Envelope,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// One platform's latest status for one ring: the query's summary and the ring's population on
/// that platform (one result per targeted device, `NotReported` where it has not reported).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusSnapshot {
    pub status: eucora_domain::gates::PlatformStatus,
    pub devices: Vec<eucora_domain::gates::DeviceResult>,
}

impl StatusSnapshot {
    /// The snapshot of `devices` (the whole population on `platform`), taken at `queried_at`,
    /// with its counts; nothing missing, no calls.
    pub fn of(
        platform: Platform,
        devices: Vec<eucora_domain::gates::DeviceResult>,
        queried_at: Timestamp,
    ) -> StatusSnapshot {
        let reported = devices
            .iter()
            .filter(|d| d.outcome != eucora_domain::gates::InstallOutcome::NotReported)
            .count();
        StatusSnapshot {
            status: eucora_domain::gates::PlatformStatus {
                platform,
                targeted: devices.len() as u64,
                reported: reported as u64,
                missing: 0,
                earlier_ring_devices: 0,
                queried_at,
                calls: 0,
                duration_ms: 0,
            },
            devices,
        }
    }
}

/// Install status reported by the connectors, normalised over both platforms: per ring, the
/// latest snapshot of each platform, which replaces the one before it whole.
pub trait TelemetryStore: Send + Sync {
    /// The latest snapshot of each platform that has reported for `ring`.
    fn snapshots(
        &self,
        id: &DeploymentId,
        ring: eucora_domain::Ring,
    ) -> impl Future<Output = Result<Vec<StatusSnapshot>, StoreError>> + Send;

    /// Stores `snapshot` as its platform's latest for `ring`. A reader sees the old snapshot or
    /// the new one, never a mix.
    fn record(
        &self,
        id: &DeploymentId,
        ring: eucora_domain::Ring,
        snapshot: &StatusSnapshot,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// What taking the gate run's lease gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunLease {
    /// This run holds the lease; the previous run stopped after `cursor`.
    Taken { cursor: Option<DeploymentId> },
    /// Another run holds it until `until`.
    Busy { until: Timestamp },
}

/// The gate schedule's own state: a lease, so that runs never overlap, and where the last run
/// stopped, so that the next one starts after it and no deployment is starved.
pub trait GateRunStore: Send + Sync {
    /// Takes the lease for `run_id` until `until`, unless another run holds it past `now`.
    fn begin_run(
        &self,
        run_id: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> impl Future<Output = Result<RunLease, StoreError>> + Send;

    /// Records where run `run_id` stopped and gives its lease up (nothing, if another run has
    /// taken the lease since).
    fn end_run(
        &self,
        run_id: &str,
        cursor: Option<&DeploymentId>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
