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
        /// An approval given again by the same person after theirs expired or was withdrawn.
        CabRenewed => "cab.renewed",
        /// An approval withdrawn by the person who gave it.
        CabWithdrawn => "cab.withdrawn",
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

/// A verified position in a trail: the last event verified (its `seq` and `hash`). Verification
/// can resume from it, reading only the events after it; its text form (`<seq>.<hash>`) is what
/// the API takes back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Checkpoint {
    /// The last verified event's position.
    pub seq: u64,
    /// The last verified event's hash (64 lowercase hex digits).
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub hash: String,
}

/// A checkpoint's text is not `<seq>.<hash>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a checkpoint is <seq>.<hash>: a decimal event position, a dot and 64 lowercase hex digits"
)]
pub struct CheckpointSyntax;

impl Checkpoint {
    /// The pattern of [`Checkpoint::parse`]'s input (at most 19 digits: always a `u64`).
    pub const PATTERN: &'static str = "^(0|[1-9][0-9]{0,18})\\.[0-9a-f]{64}$";

    /// Reads `<seq>.<hash>`, as [`Checkpoint::to_string`] writes it.
    pub fn parse(text: &str) -> Result<Checkpoint, CheckpointSyntax> {
        let (seq, hash) = text.split_once('.').ok_or(CheckpointSyntax)?;
        let canonical = seq == "0" || (!seq.starts_with('0') && (1..=19).contains(&seq.len()));
        if !canonical || !seq.bytes().all(|b| b.is_ascii_digit()) || !is_hash(hash) {
            return Err(CheckpointSyntax);
        }
        Ok(Checkpoint {
            seq: seq.parse().map_err(|_| CheckpointSyntax)?,
            hash: hash.to_owned(),
        })
    }
}

impl std::fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.seq, self.hash)
    }
}

impl ChainHead {
    /// The checkpoint of the last event, `None` for an empty trail.
    pub fn checkpoint(&self) -> Option<Checkpoint> {
        self.len.checked_sub(1).map(|seq| Checkpoint {
            seq,
            hash: self.hash.clone(),
        })
    }
}

/// 64 lowercase hex digits.
fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
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
    /// Verification resumed from a checkpoint the trail does not continue: a wrong checkpoint, or
    /// the trail was altered at or after it.
    #[error(
        "the trail does not continue from the checkpoint (event {seq}): wrong checkpoint, or the trail was altered"
    )]
    CheckpointMismatch { seq: u64 },
    #[error("the checkpoint names event {seq} but the trail has {len} events")]
    UnknownCheckpoint { seq: u64, len: u64 },
    #[error("events follow the last of the {len} the deployment records")]
    Unrecorded { len: u64 },
}

/// Verifies a trail event by event in constant memory: it keeps the deployment, the position it
/// expects next and the previous hash (a fixed-size array), never the events. Start it at the
/// trail's beginning ([`ChainVerifier::new`]) or at a verified [`Checkpoint`]
/// ([`ChainVerifier::resume`]), [`push`](ChainVerifier::push) the events in order, then
/// [`finish`](ChainVerifier::finish) against the deployment's [`ChainHead`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainVerifier {
    deployment_id: DeploymentId,
    /// The position the next event must have; also how many events are verified.
    next_seq: u64,
    /// The hash the next event must name as `prev_hash`; `None` if the checkpoint's hash is not a
    /// hash at all (nothing links to it).
    prev: Option<[u8; 64]>,
    /// The checkpoint's position, when resumed.
    from: Option<u64>,
    /// Events pushed since the start or the checkpoint.
    checked: u64,
}

fn hash_bytes(s: &str) -> Option<[u8; 64]> {
    s.as_bytes().try_into().ok()
}

impl ChainVerifier {
    /// Verifies from the trail's first event.
    pub fn new(deployment_id: &DeploymentId) -> ChainVerifier {
        ChainVerifier {
            deployment_id: deployment_id.clone(),
            next_seq: 0,
            prev: hash_bytes(GENESIS),
            from: None,
            checked: 0,
        }
    }

    /// Verifies the events after `checkpoint`, trusting the events up to it (verified earlier).
    /// A checkpoint the trail does not continue fails: at the first event after it, or at
    /// [`finish`](ChainVerifier::finish) if none follows.
    pub fn resume(deployment_id: &DeploymentId, checkpoint: &Checkpoint) -> ChainVerifier {
        ChainVerifier {
            deployment_id: deployment_id.clone(),
            next_seq: checkpoint.seq.saturating_add(1),
            prev: hash_bytes(&checkpoint.hash).filter(|_| is_hash(&checkpoint.hash)),
            from: Some(checkpoint.seq),
            checked: 0,
        }
    }

    /// The position the next event must have: how many events (from the trail's start) are
    /// verified so far.
    pub fn verified(&self) -> u64 {
        self.next_seq
    }

    /// How many events were pushed (and verified) since the start or the checkpoint.
    pub fn checked(&self) -> u64 {
        self.checked
    }

    /// The last verified event, `None` before any (and not resumed).
    pub fn checkpoint(&self) -> Option<Checkpoint> {
        let seq = self.next_seq.checked_sub(1)?;
        let hash = std::str::from_utf8(self.prev.as_ref()?).ok()?.to_owned();
        Some(Checkpoint { seq, hash })
    }

    fn resumed_at(&self, seq: u64) -> bool {
        self.checked == 0 && self.from == Some(seq)
    }

    /// Verifies the next event: it must belong to the deployment, sit at the expected position,
    /// name the previous event's hash and carry the hash of its own content.
    pub fn push(&mut self, e: &AuditEvent) -> Result<(), ChainError> {
        let index = self.next_seq;
        if e.deployment_id != self.deployment_id {
            return Err(ChainError::WrongDeployment { index });
        }
        if e.seq != index {
            return Err(ChainError::OutOfSequence { index, seq: e.seq });
        }
        if self.prev.as_ref().map(<[u8; 64]>::as_slice) != Some(e.prev_hash.as_bytes()) {
            return Err(match self.from {
                Some(seq) if self.resumed_at(seq) => ChainError::CheckpointMismatch { seq },
                _ => ChainError::BrokenLink { index },
            });
        }
        if e.compute_hash() != e.hash {
            return Err(ChainError::Altered { index });
        }
        self.prev = hash_bytes(&e.hash);
        self.next_seq += 1;
        self.checked += 1;
        Ok(())
    }

    /// Checks the verified trail against the head the deployment records: as many events, the
    /// same last hash. Answers the checkpoint of the last event (`None` for an empty trail).
    pub fn finish(&self, head: &ChainHead) -> Result<Option<Checkpoint>, ChainError> {
        if let Some(seq) = self.from
            && seq >= head.len
        {
            return Err(ChainError::UnknownCheckpoint { seq, len: head.len });
        }
        if self.next_seq != head.len {
            return Err(ChainError::Truncated {
                len: self.next_seq,
                expected: head.len,
            });
        }
        if head.len > 0
            && self.prev.as_ref().map(<[u8; 64]>::as_slice) != Some(head.hash.as_bytes())
        {
            return Err(match self.from {
                Some(seq) if self.resumed_at(seq) => ChainError::CheckpointMismatch { seq },
                _ => ChainError::HeadMismatch,
            });
        }
        Ok(self.checkpoint())
    }
}

/// Verifies a deployment's trail, in order. With `head`, also checks the trail's length and last
/// hash against what the deployment recorded when the last event was appended.
pub fn verify(
    deployment_id: &DeploymentId,
    events: &[AuditEvent],
    head: Option<&ChainHead>,
) -> Result<(), ChainError> {
    let mut v = ChainVerifier::new(deployment_id);
    for e in events {
        v.push(e)?;
    }
    match head {
        Some(h) => v.finish(h).map(drop),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
