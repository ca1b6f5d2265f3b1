//! Exceptions: request, approve, reject, extend. When an approval puts an exception in effect
//! and the deployment was blocked from publishing, it is scored again and may go ahead.

use eucora_domain::audit::AuditKind;
use eucora_domain::cab::Role;
use eucora_domain::evidence::RequestedException;
use eucora_domain::exception::{
    ExceptionError, ExceptionRecord, ExceptionRequest, ExceptionStatus,
};
use eucora_domain::gates::GateKind;
use eucora_domain::lifecycle::{DeploymentState, TransitionError};
use eucora_domain::{DeploymentId, ExceptionId, Ring, Timestamp};
use serde::Serialize;
use time::Duration;

use super::read::load;
use super::{CONFLICT_RETRIES, Common, Services, dispatch};
use crate::actor::{Actor, Forbidden};
use crate::budget::{self, Growth, RecordFull};
use crate::ports::{DeploymentStore, Queue, QueueError, StoreError};
use crate::record::Change;

#[derive(Debug, thiserror::Error)]
pub enum ExceptionOpError {
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    #[error("deployment {0} not found")]
    NotFound(DeploymentId),
    #[error("exception {0} not found on this deployment")]
    ExceptionNotFound(ExceptionId),
    #[error("the deployment is {0} and takes no more exceptions")]
    Finished(DeploymentState),
    #[error(transparent)]
    Exception(#[from] ExceptionError),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Full(#[from] RecordFull),
}

impl From<Common> for ExceptionOpError {
    fn from(c: Common) -> Self {
        match c {
            Common::Forbidden(f) => ExceptionOpError::Forbidden(f),
            Common::NotFound(id) => ExceptionOpError::NotFound(id),
            Common::Store(s) => ExceptionOpError::Store(s),
        }
    }
}

/// An exception request as the API receives it.
#[derive(Debug, Clone)]
pub struct ExceptionInput {
    pub requested: RequestedException,
    pub ring: Option<Ring>,
    pub gate: Option<GateKind>,
    pub break_glass: bool,
    pub expires_in_days: Option<u32>,
}

/// An exception after an operation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExceptionOutcome {
    pub exception: ExceptionRecord,
    pub status: ExceptionStatus,
    pub deployment_state: DeploymentState,
}

/// What to do to one exception.
enum Op<'a> {
    Approve,
    Reject(&'a str),
    Extend(Duration),
}

/// Runs `f` on a fresh copy of the deployment until it saves without a conflict.
async fn with_retry<S, Q, F>(
    svc: &Services<S, Q>,
    id: &DeploymentId,
    now: Timestamp,
    (growth, field): (Growth, &str),
    mut f: F,
) -> Result<(Change, ExceptionId), ExceptionOpError>
where
    S: DeploymentStore,
    Q: Queue,
    F: FnMut(&mut Change) -> Result<ExceptionId, ExceptionOpError>,
{
    for attempt in 1..=CONFLICT_RETRIES {
        let record = load(svc, id).await?;
        if record.lifecycle.state.is_terminal() {
            return Err(ExceptionOpError::Finished(record.lifecycle.state));
        }
        let mut change = Change::new(record);
        let exception_id = f(&mut change)?;
        budget::check(&change.record, growth, field)?;
        match svc.store.save(&change).await {
            Ok(()) => {
                let commands = dispatch::pending_commands(&change.record);
                dispatch::send(&svc.queue, &change.record, commands, now).await?;
                return Ok((change, exception_id));
            }
            Err(StoreError::Conflict) if attempt < CONFLICT_RETRIES => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
}

fn outcome(
    change: &Change,
    id: &ExceptionId,
    now: Timestamp,
    svc_policy: &eucora_domain::policy::Policy,
) -> ExceptionOutcome {
    let r = &change.record;
    let e = r
        .exceptions
        .iter()
        .find(|e| &e.id == id)
        .cloned()
        .expect("the exception was just written");
    ExceptionOutcome {
        status: e.status(now, r.exception_context(), &svc_policy.exceptions),
        exception: e,
        deployment_state: r.lifecycle.state,
    }
}

/// Requests an exception (packaging or publisher).
pub async fn request<S: DeploymentStore, Q: Queue>(
    svc: &Services<S, Q>,
    actor: &Actor,
    id: &DeploymentId,
    input: ExceptionInput,
    new_id: ExceptionId,
    now: Timestamp,
) -> Result<ExceptionOutcome, ExceptionOpError> {
    actor.require(&[Role::Packaging, Role::Publisher])?;
    let requested = &input.requested;
    let field = if requested.justification.len()
        >= requested
            .compensating_controls
            .iter()
            .map(String::len)
            .sum::<usize>()
    {
        "justification"
    } else {
        "compensating_controls"
    };
    let (change, eid) = with_retry(svc, id, now, (Growth::Request, field), |change| {
        let record = ExceptionRecord::open(
            new_id.clone(),
            id.clone(),
            ExceptionRequest {
                requested: input.requested.clone(),
                ring: input.ring,
                gate: input.gate,
                break_glass: input.break_glass,
                expires_in: input.expires_in_days.map(|d| Duration::days(i64::from(d))),
            },
            actor.id.clone(),
            now,
            &svc.policy.exceptions,
        )?;
        change.audit(
            actor,
            AuditKind::ExceptionRequested,
            serde_json::json!({ "exception": record }),
            now,
        );
        change.record.exceptions.push(record);
        Ok(new_id.clone())
    })
    .await?;
    Ok(outcome(&change, &eid, now, &svc.policy))
}

async fn decide<S: DeploymentStore, Q: Queue>(
    svc: &Services<S, Q>,
    actor: &Actor,
    id: &DeploymentId,
    exception_id: &ExceptionId,
    op: Op<'_>,
    now: Timestamp,
) -> Result<ExceptionOutcome, ExceptionOpError> {
    actor.require(match op {
        Op::Extend(_) => &[Role::SecurityReviewer],
        _ => &[Role::SecurityReviewer, Role::Cab],
    })?;
    let budget = match op {
        Op::Reject(_) => (Growth::Decision, "reason"),
        Op::Extend(_) => (Growth::Request, "days"),
        Op::Approve => (Growth::Request, "(approval)"),
    };
    let (change, eid) = with_retry(svc, id, now, budget, |change| {
        let ctx = change.record.exception_context();
        let policy = &svc.policy.exceptions;
        let roles = actor.roles();
        let submitter = change.record.submitted_by.clone();
        let e = change
            .record
            .exceptions
            .iter_mut()
            .find(|e| &e.id == exception_id)
            .ok_or_else(|| ExceptionOpError::ExceptionNotFound(exception_id.clone()))?;
        let (kind, detail) = match op {
            Op::Approve => {
                let role = e.approve(&actor.id, &roles, &submitter, now, ctx, policy)?;
                (
                    AuditKind::ExceptionApproved,
                    serde_json::json!({ "exception_id": e.id, "as": role, "status": e.status(now, ctx, policy) }),
                )
            }
            Op::Reject(reason) => {
                e.reject(&actor.id, &roles, &submitter, reason, now, ctx, policy)?;
                (
                    AuditKind::ExceptionRejected,
                    serde_json::json!({ "exception_id": e.id, "reason": reason }),
                )
            }
            Op::Extend(by) => {
                let until = e.extend(&actor.id, &roles, &submitter, by, now, ctx, policy)?;
                (
                    AuditKind::ExceptionExtended,
                    serde_json::json!({ "exception_id": e.id, "expires_at": until }),
                )
            }
        };
        change.audit(actor, kind, detail, now);
        super::score::unblock_if_clear(change, actor, &svc.policy, "exception in effect", now)?;
        Ok(exception_id.clone())
    })
    .await?;
    Ok(outcome(&change, &eid, now, &svc.policy))
}

pub async fn approve<S: DeploymentStore, Q: Queue>(
    svc: &Services<S, Q>,
    actor: &Actor,
    id: &DeploymentId,
    exception_id: &ExceptionId,
    now: Timestamp,
) -> Result<ExceptionOutcome, ExceptionOpError> {
    decide(svc, actor, id, exception_id, Op::Approve, now).await
}

pub async fn reject<S: DeploymentStore, Q: Queue>(
    svc: &Services<S, Q>,
    actor: &Actor,
    id: &DeploymentId,
    exception_id: &ExceptionId,
    reason: &str,
    now: Timestamp,
) -> Result<ExceptionOutcome, ExceptionOpError> {
    decide(svc, actor, id, exception_id, Op::Reject(reason), now).await
}

pub async fn extend<S: DeploymentStore, Q: Queue>(
    svc: &Services<S, Q>,
    actor: &Actor,
    id: &DeploymentId,
    exception_id: &ExceptionId,
    days: u32,
    now: Timestamp,
) -> Result<ExceptionOutcome, ExceptionOpError> {
    decide(
        svc,
        actor,
        id,
        exception_id,
        Op::Extend(Duration::days(i64::from(days))),
        now,
    )
    .await
}
