//! The audit trail: append-only events per deployment, chained by hash.
//!
//! Each event carries the hash of the one before it (`prev_hash`) and its own `hash`, the SHA-256
//! of its canonical JSON without `hash`. [`verify`] recomputes the chain and finds any altered,
//! dropped, inserted or reordered event; given the [`ChainHead`] stored with the deployment it also
//! finds events dropped from the end.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::evidence::{canonical_json, sha256_hex};
use crate::ids::{ActorId, CorrelationId, DeploymentId};
use crate::time::Timestamp;

/// The `prev_hash` of the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

string_enum!(
    /// What an audit event records.
    AuditKind {
        DeploymentSubmitted => "deployment.submitted",
        RiskScored => "risk.scored",
        StateChanged => "deployment.state_changed",
        CabDecided => "cab.decided",
        ExceptionRequested => "exception.requested",
        ExceptionApproved => "exception.approved",
        ExceptionRejected => "exception.rejected",
        ExceptionExtended => "exception.extended",
        GateEvaluated => "gate.evaluated",
        DispatchRequested => "dispatch.requested",
        ConnectorCall => "connector.call",
        /// One status query: its counts, calls and duration (not one event per HTTP call).
        ConnectorStatusQuery => "connector.status_query",
        ConnectorAuthRefresh => "connector.auth.refresh",
        IncidentReported => "incident.reported",
        IncidentResolved => "incident.resolved",
        RollbackValidated => "rollback.validated",
    }
);

/// An event before it is chained.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditDraft {
    pub at: Timestamp,
    pub actor: ActorId,
    pub correlation_id: CorrelationId,
    pub kind: AuditKind,
    /// What happened, as structured data (never a secret).
    pub detail: Value,
}

/// One event of a deployment's trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEvent {
    pub deployment_id: DeploymentId,
    /// Position in the trail, from 0.
    pub seq: u64,
    pub at: Timestamp,
    pub actor: ActorId,
    pub correlation_id: CorrelationId,
    pub kind: AuditKind,
    pub detail: Value,
    pub prev_hash: String,
    pub hash: String,
}

/// The last event's position and hash, stored with the deployment so that truncation is visible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChainHead {
    pub len: u64,
    pub hash: String,
}

impl AuditEvent {
    /// The hash this event should carry: SHA-256 of its canonical JSON without `hash`.
    pub fn compute_hash(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut v {
            map.remove("hash");
        }
        sha256_hex(canonical_json(&v).as_bytes())
    }

    /// Chains `draft` after `prev` (or starts the trail).
    pub fn chain(
        deployment_id: &DeploymentId,
        prev: Option<&ChainHead>,
        draft: AuditDraft,
    ) -> AuditEvent {
        let mut e = AuditEvent {
            deployment_id: deployment_id.clone(),
            seq: prev.map_or(0, |h| h.len),
            at: draft.at,
            actor: draft.actor,
            correlation_id: draft.correlation_id,
            kind: draft.kind,
            detail: draft.detail,
            prev_hash: prev.map_or_else(|| GENESIS.to_owned(), |h| h.hash.clone()),
            hash: String::new(),
        };
        e.hash = e.compute_hash();
        e
    }

    /// The chain head once this event is appended.
    pub fn head(&self) -> ChainHead {
        ChainHead {
            len: self.seq + 1,
            hash: self.hash.clone(),
        }
    }
}

/// Where and how a trail is broken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error, utoipa::ToSchema)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum ChainError {
    #[error("event {index} belongs to another deployment")]
    WrongDeployment { index: u64 },
    #[error("event {index} has sequence number {seq}, expected {index}")]
    OutOfSequence { index: u64, seq: u64 },
    #[error("event {index} was altered: its hash does not match its content")]
    Altered { index: u64 },
    #[error("event {index} does not follow event {}: the chain link is broken", index.saturating_sub(1))]
    BrokenLink { index: u64 },
    #[error("the trail has {len} events but the deployment records {expected}")]
    Truncated { len: u64, expected: u64 },
    #[error("the last event's hash does not match the head the deployment records")]
    HeadMismatch,
}

/// Verifies a deployment's trail, in order. With `head`, also checks the trail's length and last
/// hash against what the deployment recorded when the last event was appended.
pub fn verify(
    deployment_id: &DeploymentId,
    events: &[AuditEvent],
    head: Option<&ChainHead>,
) -> Result<(), ChainError> {
    let mut prev = GENESIS;
    for (i, e) in events.iter().enumerate() {
        let index = u64::try_from(i).unwrap_or(u64::MAX);
        if &e.deployment_id != deployment_id {
            return Err(ChainError::WrongDeployment { index });
        }
        if e.seq != index {
            return Err(ChainError::OutOfSequence { index, seq: e.seq });
        }
        if e.prev_hash != prev {
            return Err(ChainError::BrokenLink { index });
        }
        if e.compute_hash() != e.hash {
            return Err(ChainError::Altered { index });
        }
        prev = &e.hash;
    }
    if let Some(h) = head {
        let len = u64::try_from(events.len()).unwrap_or(u64::MAX);
        if len != h.len {
            return Err(ChainError::Truncated {
                len,
                expected: h.len,
            });
        }
        if len > 0 && prev != h.hash {
            return Err(ChainError::HeadMismatch);
        }
    }
    Ok(())
}
