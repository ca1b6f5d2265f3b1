//! CAB: the queue of deployments awaiting a decision, and recording a decision.

use eucora_domain::audit::AuditKind;
use eucora_domain::cab::{
    CabDecision, CabStatus, CabVerdict, DecisionContext, DecisionError, Role, approval_window,
    cab_requirement, cab_status, check_decision, is_renewal, withdraw_approval,
};
use eucora_domain::evidence::EvidenceHash;
use eucora_domain::lifecycle::{DeploymentState, LifecycleEvent, TransitionError};
use eucora_domain::{DeploymentId, Ring, Timestamp};
use serde::Serialize;

use super::read::load;
use super::{CONFLICT_RETRIES, Common, Services, dispatch};
use crate::actor::{Actor, Forbidden};
use crate::budget::{self, Growth, RecordFull};
use crate::ports::{DeploymentStore, Queue, QueueError, StoreError};
use crate::record::Change;
use crate::record::DeploymentRecord;

/// One line of the CAB queue.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CabQueueEntry {
    pub deployment_id: DeploymentId,
    pub correlation_id: eucora_domain::CorrelationId,
    pub app: String,
    pub version: String,
    pub ring: Ring,
    pub risk_score: Option<u8>,
    pub blast_radius: eucora_domain::cab::BlastRadiusClass,
    pub evidence_hash: EvidenceHash,
    pub status: CabStatus,
    pub submitted_by: eucora_domain::ActorId,
    /// Incidents open on the deployment: while there is one, the ring cannot be approved.
    pub open_incidents: Vec<crate::record::Incident>,
}

/// What awaits CAB (CAB members and auditors).
pub async fn queue<S: DeploymentStore, Q>(
    svc: &Services<S, Q>,
    actor: &Actor,
    now: Timestamp,
) -> Result<Vec<CabQueueEntry>, Common> {
    actor.require(&[Role::Cab, Role::Auditor])?;
    let mut out = Vec::new();
    for id in svc.store.awaiting_cab().await? {
        let Some(r) = svc.store.get(&id).await? else {
            continue;
        };
        let DeploymentState::AwaitingCab { ring } = r.lifecycle.state else {
            continue;
        };
        let requirement = cab_requirement(ring, r.cab_context(), &svc.policy.cab);
        let window = approval_window(r.submission.urgency, &svc.policy.cab);
        out.push(CabQueueEntry {
            status: cab_status(
                &requirement,
                &r.decisions,
                &r.submitted_by,
                &r.evidence_hash,
                now,
                window,
            ),
            deployment_id: r.id.clone(),
            correlation_id: r.correlation_id().clone(),
            app: r.submission.app.name.clone(),
            version: r.submission.app.version.clone(),
            ring,
            risk_score: r.risk.as_ref().map(|x| x.score.value()),
            blast_radius: r.blast_radius(),
            evidence_hash: r.evidence_hash.clone(),
            submitted_by: r.submitted_by.clone(),
            open_incidents: r.open().cloned().collect(),
        });
    }
    Ok(out)
}

/// A CAB member's decision as the API receives it.
#[derive(Debug, Clone)]
pub struct DecisionInput {
    pub ring: Ring,
    pub verdict: CabVerdict,
    pub conditions: Vec<String>,
    pub comment: Option<String>,
    pub evidence_hash: EvidenceHash,
}

#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    #[error("deployment {0} not found")]
    NotFound(DeploymentId),
    #[error("the deployment is {state}, not awaiting CAB for {ring}")]
    NotAwaiting { state: DeploymentState, ring: Ring },
    #[error(transparent)]
    Decision(#[from] DecisionError),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Full(#[from] RecordFull),
}

impl From<Common> for DecideError {
    fn from(c: Common) -> Self {
        match c {
            Common::Forbidden(f) => DecideError::Forbidden(f),
            Common::NotFound(id) => DecideError::NotFound(id),
            Common::Store(s) => DecideError::Store(s),
        }
    }
}

/// The result of a decision: where the ring's approval stands and the deployment's state.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Decided {
    pub decision: CabDecision,
    pub cab_status: CabStatus,
    pub state: DeploymentState,
}

/// A CAB member's withdrawal of their own approval, as the API receives it.
#[derive(Debug, Clone)]
pub struct WithdrawalInput {
    pub ring: Ring,
    pub reason: String,
}

/// The result of a withdrawal: the withdrawn decision, where the ring's approval stands now and
/// the deployment's state (still awaiting CAB).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Withdrawn {
    pub withdrawn: CabDecision,
    pub cab_status: CabStatus,
    pub state: DeploymentState,
}

/// The ring the deployment awaits CAB for, when it is `ring`.
fn awaiting(record: &DeploymentRecord, ring: Ring) -> Result<Ring, DecideError> {
    match record.lifecycle.state {
        DeploymentState::AwaitingCab { ring: awaited } if awaited == ring => Ok(awaited),
        state => Err(DecideError::NotAwaiting { state, ring }),
    }
}

/// Withdraws the caller's approval standing on the ring the deployment awaits. It stops counting
/// toward quorum at once; the caller may approve again later (a renewal). Only while the ring
/// awaits CAB: once quorum is reached the ring is approved and dispatched.
pub async fn withdraw<S: DeploymentStore, Q>(
    svc: &Services<S, Q>,
    actor: &Actor,
    id: &DeploymentId,
    input: WithdrawalInput,
    now: Timestamp,
) -> Result<Withdrawn, DecideError> {
    actor.require(&[Role::Cab])?;
    for attempt in 1..=CONFLICT_RETRIES {
        let record = load(svc, id).await?;
        let awaited = awaiting(&record, input.ring)?;
        let requirement = cab_requirement(awaited, record.cab_context(), &svc.policy.cab);
        let window = approval_window(record.submission.urgency, &svc.policy.cab);
        let mut change = Change::new(record);
        let withdrawn = withdraw_approval(
            &mut change.record.decisions,
            &actor.id,
            actor.has(Role::Cab),
            awaited,
            &input.reason,
            now,
            window,
        )?;
        let status = cab_status(
            &requirement,
            &change.record.decisions,
            &change.record.submitted_by,
            &change.record.evidence_hash,
            now,
            window,
        );
        budget::check(&change.record, Growth::Decision, "reason")?;
        change.audit(
            actor,
            AuditKind::CabWithdrawn,
            serde_json::json!({ "decision": withdrawn, "ring_status": status }),
            now,
        );
        match svc.store.save(&change).await {
            Ok(()) => {
                return Ok(Withdrawn {
                    withdrawn,
                    cab_status: status,
                    state: change.record.lifecycle.state,
                });
            }
            Err(StoreError::Conflict) if attempt < CONFLICT_RETRIES => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
}

/// Records a CAB decision for the ring a deployment awaits. Quorum reached → approved and
/// dispatched; a rejection → rejected.
pub async fn decide<S: DeploymentStore, Q: Queue>(
    svc: &Services<S, Q>,
    actor: &Actor,
    id: &DeploymentId,
    input: DecisionInput,
    now: Timestamp,
) -> Result<Decided, DecideError> {
    actor.require(&[Role::Cab])?;
    for attempt in 1..=CONFLICT_RETRIES {
        let record = load(svc, id).await?;
        let awaited = awaiting(&record, input.ring)?;
        let decision = CabDecision {
            ring: input.ring,
            approver: actor.id.clone(),
            verdict: input.verdict,
            conditions: input.conditions.clone(),
            comment: input.comment.clone(),
            evidence_hash: input.evidence_hash.clone(),
            decided_at: now,
            withdrawn: None,
        };
        let requirement = cab_requirement(awaited, record.cab_context(), &svc.policy.cab);
        let window = approval_window(record.submission.urgency, &svc.policy.cab);
        check_decision(
            &decision,
            actor.has(Role::Cab),
            DecisionContext {
                submitter: &record.submitted_by,
                evidence_hash: &record.evidence_hash,
                plan: &record.submission.evidence.rollout,
                requirement: &requirement,
                earlier: &record.decisions,
                window,
                open_incidents: &record.open_incident_ids(),
            },
        )?;
        let renewal = is_renewal(&decision, &record.decisions);
        let mut change = Change::new(record);
        change.record.decisions.push(decision.clone());
        let conditions: usize = decision.conditions.iter().map(String::len).sum();
        let comment = decision.comment.as_deref().map_or(0, str::len);
        budget::check(
            &change.record,
            if decision.verdict == CabVerdict::Reject {
                Growth::Decision
            } else {
                Growth::Request
            },
            if conditions >= comment {
                "conditions"
            } else {
                "comment"
            },
        )?;
        let status = cab_status(
            &requirement,
            &change.record.decisions,
            &change.record.submitted_by,
            &change.record.evidence_hash,
            now,
            window,
        );
        // A renewal is its own event: the earlier approval (expired or withdrawn) stays in the
        // trail, and this one is seen to replace it.
        change.audit(
            actor,
            if renewal {
                AuditKind::CabRenewed
            } else {
                AuditKind::CabDecided
            },
            serde_json::json!({ "decision": decision, "ring_status": status, "renewal": renewal }),
            now,
        );
        match &status {
            CabStatus::Approved { .. } => {
                change.transition(actor, LifecycleEvent::CabApproved { ring: awaited }, now)?;
                dispatch::start_if_approved(&mut change, actor, now)?;
            }
            CabStatus::Rejected { .. } => {
                change.transition(actor, LifecycleEvent::CabRejected { ring: awaited }, now)?;
            }
            CabStatus::Pending { .. } | CabStatus::NotRequired => {}
        }
        match svc.store.save(&change).await {
            Ok(()) => {
                let commands = dispatch::pending_commands(&change.record);
                dispatch::send(&svc.queue, &change.record, commands, now).await?;
                return Ok(Decided {
                    decision,
                    cab_status: status,
                    state: change.record.lifecycle.state,
                });
            }
            Err(StoreError::Conflict) if attempt < CONFLICT_RETRIES => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
}
