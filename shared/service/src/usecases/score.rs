//! Risk scoring (the scoring queue's consumer): score a submitted deployment, record the
//! explanation, and move it to the first ring, to CAB, or to "publish blocked". An open incident
//! blocks publishing like a critical finding does, until it is resolved.
//!
//! Idempotent: a deployment that is no longer `Submitted` is not scored again; one found in
//! `Dispatching` has its connector commands re-sent (a lost send is repaired).

use eucora_domain::audit::AuditKind;
use eucora_domain::cab::cab_requirement;
use eucora_domain::lifecycle::{DeploymentState, LifecycleEvent, TransitionError};
use eucora_domain::risk::assess;
use eucora_domain::{DeploymentId, Timestamp};

use super::{CONFLICT_RETRIES, Services, dispatch};
use crate::actor::Actor;
use crate::ports::{DeploymentStore, Queue, QueueError, StoreError};
use crate::record::{Change, RiskRecord};

#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error("deployment {0} not found")]
    NotFound(DeploymentId),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl ScoreError {
    /// Worth retrying later (the message goes back to the queue); otherwise it goes to the DLQ.
    pub fn is_retryable(&self) -> bool {
        match self {
            ScoreError::Store(e) => e.is_retryable(),
            ScoreError::Queue(_) => true,
            ScoreError::NotFound(_) | ScoreError::Transition(_) => false,
        }
    }
}

/// Scores deployment `id`; returns its state afterwards.
pub async fn score<S: DeploymentStore, Q: Queue>(
    svc: &Services<S, Q>,
    id: &DeploymentId,
    now: Timestamp,
) -> Result<DeploymentState, ScoreError> {
    let actor = Actor::system("risk-scoring");
    for attempt in 1..=CONFLICT_RETRIES {
        let record = svc
            .store
            .get(id)
            .await?
            .ok_or_else(|| ScoreError::NotFound(id.clone()))?;
        if record.lifecycle.state != DeploymentState::Submitted {
            let commands = dispatch::pending_commands(&record);
            dispatch::send(&svc.queue, &record, commands, now).await?;
            return Ok(record.lifecycle.state);
        }
        let mut change = Change::new(record);
        let r = &change.record;
        let waivers = r.waivers(now, &svc.policy);
        let assessment = assess(&r.submission, &waivers, &svc.policy);
        let first = r.lifecycle.first_ring;
        let requirement =
            cab_requirement(first, r.cab_context_with(assessment.score), &svc.policy.cab);
        let assessment_json = serde_json::to_value(&assessment).unwrap_or_default();
        change.record.risk = Some(RiskRecord {
            score: assessment.score,
            model_version: assessment.model_version.clone(),
            policy_version: assessment.policy_version.clone(),
            assessment: assessment_json.clone(),
            scored_at: now,
        });
        let open_incidents = change.record.open_incident_ids();
        change.audit(
            &actor,
            AuditKind::RiskScored,
            serde_json::json!({
                "assessment": assessment_json,
                "blast_radius": change.record.blast_radius(),
                "first_ring_cab": requirement,
                "open_incidents": open_incidents,
            }),
            now,
        );
        change.transition(
            &actor,
            LifecycleEvent::Scored {
                publish_blocked: assessment.publish_blocked() || !open_incidents.is_empty(),
                cab_required: requirement.required,
            },
            now,
        )?;
        dispatch::start_if_approved(&mut change, &actor, now)?;
        match svc.store.save(&change).await {
            Ok(()) => {
                tracing::info!(deployment_id = %id, score = %assessment.score, state = %change.record.lifecycle.state, "scored");
                let commands = dispatch::pending_commands(&change.record);
                dispatch::send(&svc.queue, &change.record, commands, now).await?;
                return Ok(change.record.lifecycle.state);
            }
            Err(StoreError::Conflict) if attempt < CONFLICT_RETRIES => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
}

/// A deployment blocked from publishing is scored again (with the exceptions now in effect) and
/// let through to its first ring when nothing blocks it any more: no blocking finding left
/// unwaived and no incident open. `reason` goes into the trail.
pub(crate) fn unblock_if_clear(
    change: &mut Change,
    actor: &Actor,
    policy: &eucora_domain::policy::Policy,
    reason: &str,
    now: Timestamp,
) -> Result<(), TransitionError> {
    if change.record.lifecycle.state != DeploymentState::PublishBlocked
        || change.record.open_incidents() > 0
    {
        return Ok(());
    }
    let r = &change.record;
    let waivers = r.waivers(now, policy);
    let assessment = assess(&r.submission, &waivers, policy);
    if assessment.publish_blocked() {
        return Ok(());
    }
    let requirement = cab_requirement(
        r.lifecycle.first_ring,
        r.cab_context_with(assessment.score),
        &policy.cab,
    );
    let json = serde_json::to_value(&assessment).unwrap_or_default();
    if let Some(risk) = change.record.risk.as_mut() {
        risk.score = assessment.score;
        risk.assessment = json.clone();
        risk.scored_at = now;
    }
    change.audit(
        actor,
        AuditKind::RiskScored,
        serde_json::json!({ "assessment": json, "reason": reason }),
        now,
    );
    change.transition(
        actor,
        LifecycleEvent::Unblocked {
            cab_required: requirement.required,
        },
        now,
    )?;
    dispatch::start_if_approved(change, actor, now)
}
