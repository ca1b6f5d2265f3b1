//! Reading a deployment, its audit trail, and verifying the trail's hash chain.

use eucora_domain::audit::{AuditEvent, ChainError, ChainHead, ChainVerifier, Checkpoint};
use eucora_domain::cab::{
    BlastRadiusClass, CabRequirement, CabStatus, Role, approval_window, cab_requirement, cab_status,
};
use eucora_domain::exception::ExceptionStatus;
use eucora_domain::lifecycle::DeploymentState;
use eucora_domain::{DeploymentId, Ring, Timestamp};
use serde::Serialize;
use serde_json::Value;

use super::{Common, Services};
use crate::actor::Actor;
use crate::ports::{AuditPage, DeploymentStore};
use crate::record::{DeploymentRecord, Incident};

/// Every role may read.
pub const READERS: &[Role] = &[
    Role::Packaging,
    Role::Publisher,
    Role::Cab,
    Role::SecurityReviewer,
    Role::Auditor,
];

/// A ring of the plan, with what CAB requires and where its approval stands.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RingView {
    pub ring: Ring,
    pub target_devices: u64,
    pub cab: CabRequirement,
    pub cab_status: CabStatus,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExceptionView {
    pub id: eucora_domain::ExceptionId,
    pub kind: eucora_domain::exception::ExceptionKind,
    pub status: ExceptionStatus,
    pub expires_at: Timestamp,
    pub record: eucora_domain::exception::ExceptionRecord,
}

/// What the API answers for a deployment.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeploymentView {
    pub id: DeploymentId,
    pub correlation_id: eucora_domain::CorrelationId,
    pub app: eucora_domain::evidence::App,
    pub platforms: Vec<eucora_domain::evidence::Platform>,
    pub state: DeploymentState,
    /// The highest ring the package is live in.
    pub current_ring: Option<Ring>,
    pub evidence_hash: eucora_domain::evidence::EvidenceHash,
    pub submitted_by: eucora_domain::ActorId,
    pub submitted_at: Timestamp,
    pub blast_radius: BlastRadiusClass,
    /// The score with every factor's contribution; `null` until scored.
    #[schema(value_type = Option<eucora_domain::risk::RiskAssessment>)]
    pub risk: Option<Value>,
    pub rings: Vec<RingView>,
    pub approvals: Vec<eucora_domain::cab::CabDecision>,
    pub exceptions: Vec<ExceptionView>,
    pub incidents: Vec<Incident>,
    /// Whether the rollback gate is satisfied: the latest recorded validation passed. The
    /// packager's `validated_in_ring0` does not count.
    pub rollback_validated: bool,
    /// The rollback validations recorded in Ring 0, oldest first.
    pub rollback_validations: Vec<eucora_domain::rollback::RollbackValidation>,
    /// The latest gate decision, with threshold and actual value per gate.
    #[schema(value_type = Option<eucora_domain::gates::GateDecision>)]
    pub last_gate_decision: Option<Value>,
    pub version: u64,
}

impl DeploymentView {
    pub fn of(
        r: &DeploymentRecord,
        now: Timestamp,
        policy: &eucora_domain::policy::Policy,
    ) -> DeploymentView {
        let window = approval_window(r.submission.urgency, &policy.cab);
        let ctx = r.cab_context();
        DeploymentView {
            id: r.id.clone(),
            correlation_id: r.correlation_id().clone(),
            app: r.submission.app.clone(),
            platforms: r.submission.platforms().into_iter().collect(),
            state: r.lifecycle.state,
            current_ring: r.lifecycle.live_ring(),
            evidence_hash: r.evidence_hash.clone(),
            submitted_by: r.submitted_by.clone(),
            submitted_at: r.submitted_at,
            blast_radius: r.blast_radius(),
            risk: r.risk.as_ref().map(|x| x.assessment.clone()),
            rings: r
                .submission
                .evidence
                .rollout
                .rings
                .iter()
                .map(|t| {
                    let cab = cab_requirement(t.ring, ctx, &policy.cab);
                    // A ring the package already went into shows the approval it went in with,
                    // as it stood at the last decision (its window may have run out since).
                    let entered = r.lifecycle.live_ring().is_some_and(|live| t.ring <= live);
                    let at = if entered {
                        r.decisions
                            .iter()
                            .filter(|d| d.ring == t.ring)
                            .map(|d| d.decided_at)
                            .max()
                            .unwrap_or(now)
                    } else {
                        now
                    };
                    let cab_status = cab_status(
                        &cab,
                        &r.decisions,
                        &r.submitted_by,
                        &r.evidence_hash,
                        at,
                        window,
                    );
                    RingView {
                        ring: t.ring,
                        target_devices: t.target_devices,
                        cab,
                        cab_status,
                    }
                })
                .collect(),
            approvals: r.decisions.clone(),
            exceptions: r
                .exceptions
                .iter()
                .map(|e| ExceptionView {
                    id: e.id.clone(),
                    kind: e.kind,
                    status: e.status(now, r.exception_context(), &policy.exceptions),
                    expires_at: e.expires_at,
                    record: e.clone(),
                })
                .collect(),
            incidents: r.incidents.clone(),
            rollback_validated: r.rollback_validated(),
            rollback_validations: r.rollback_validations.clone(),
            last_gate_decision: r.last_gate.clone(),
            version: r.version,
        }
    }
}

pub(crate) async fn load<S: DeploymentStore, Q>(
    svc: &Services<S, Q>,
    id: &DeploymentId,
) -> Result<DeploymentRecord, Common> {
    svc.store
        .get(id)
        .await?
        .ok_or_else(|| Common::NotFound(id.clone()))
}

pub async fn deployment<S: DeploymentStore, Q>(
    svc: &Services<S, Q>,
    actor: &Actor,
    id: &DeploymentId,
    now: Timestamp,
) -> Result<DeploymentView, Common> {
    actor.require(READERS)?;
    let r = load(svc, id).await?;
    Ok(DeploymentView::of(&r, now, &svc.policy))
}

/// The whole trail, in order (small trails and tests; the API reads pages with [`audit_page`]).
pub async fn audit_trail<S: DeploymentStore, Q>(
    svc: &Services<S, Q>,
    actor: &Actor,
    id: &DeploymentId,
) -> Result<Vec<AuditEvent>, Common> {
    actor.require(READERS)?;
    load(svc, id).await?;
    Ok(svc.store.audit_trail(id).await?)
}

/// Events per page unless asked otherwise.
pub const AUDIT_PAGE_DEFAULT: usize = 200;
/// The most events one page holds.
pub const AUDIT_PAGE_MAX: usize = 1000;
/// Events read per page while verifying.
pub const VERIFY_PAGE: usize = 1000;

/// One page of the trail: the events after position `after`, at most `limit` (clamped to
/// 1..=[`AUDIT_PAGE_MAX`]), and where the next page starts.
pub async fn audit_page<S: DeploymentStore, Q>(
    svc: &Services<S, Q>,
    actor: &Actor,
    id: &DeploymentId,
    after: Option<u64>,
    limit: usize,
) -> Result<AuditPage, Common> {
    actor.require(READERS)?;
    load(svc, id).await?;
    Ok(svc
        .store
        .audit_page(id, after, limit.clamp(1, AUDIT_PAGE_MAX))
        .await?)
}

/// The answer of a verification.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Verification {
    pub deployment_id: DeploymentId,
    /// True only if every event read links to the one before it (or to the checkpoint) and the
    /// last one is the head the deployment records.
    pub valid: bool,
    /// How many events of the trail are verified (counting those up to the checkpoint): its
    /// length when valid, else how many precede the break.
    pub events: u64,
    /// How many events this verification read and checked (those after the checkpoint).
    pub checked: u64,
    /// The head the deployment records (the trail as of this verification).
    pub head: ChainHead,
    /// The checkpoint verification resumed from, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Checkpoint>,
    /// The last verified event, when valid: resume from it next time (`checkpoint=<seq>.<hash>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<ChainError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Verifies the whole trail.
pub async fn verify_trail<S: DeploymentStore, Q>(
    svc: &Services<S, Q>,
    actor: &Actor,
    id: &DeploymentId,
) -> Result<Verification, Common> {
    verify_trail_from(svc, actor, id, None).await
}

/// Verifies the trail page by page in bounded memory (one page of [`VERIFY_PAGE`] events and the
/// verifier's constant state), from the start or from a checkpoint of an earlier verification,
/// up to the head the deployment records. Events after that head are appended meanwhile only if
/// the deployment, read again, records them; otherwise they are a problem.
pub async fn verify_trail_from<S: DeploymentStore, Q>(
    svc: &Services<S, Q>,
    actor: &Actor,
    id: &DeploymentId,
    from: Option<&Checkpoint>,
) -> Result<Verification, Common> {
    actor.require(READERS)?;
    let head = load(svc, id).await?.audit_head;
    let mut v = match from {
        Some(c) => ChainVerifier::resume(id, c),
        None => ChainVerifier::new(id),
    };
    let result = match walk(svc, id, &mut v, from.map(|c| c.seq), head.len).await? {
        Ok(()) => v.finish(&head),
        Err(e) => Err(e),
    };
    let result = match result {
        Ok(c) => match unrecorded(svc, id, &head).await? {
            Some(e) => Err(e),
            None => Ok(c),
        },
        Err(e) => Err(e),
    };
    Ok(Verification {
        deployment_id: id.clone(),
        valid: result.is_ok(),
        events: v.verified().min(head.len),
        checked: v.checked(),
        head,
        from: from.cloned(),
        message: result.as_ref().err().map(ToString::to_string),
        checkpoint: result.as_ref().ok().cloned().flatten(),
        problem: result.err(),
    })
}

/// Pushes the stored events after `after` into the verifier, page by page, up to position
/// `until` (exclusive) or the trail's end.
async fn walk<S: DeploymentStore, Q>(
    svc: &Services<S, Q>,
    id: &DeploymentId,
    v: &mut ChainVerifier,
    mut after: Option<u64>,
    until: u64,
) -> Result<Result<(), ChainError>, Common> {
    while v.verified() < until {
        let left = usize::try_from(until - v.verified()).unwrap_or(usize::MAX);
        let page = svc
            .store
            .audit_page(id, after, left.min(VERIFY_PAGE))
            .await?;
        for e in &page.events {
            if let Err(problem) = v.push(e) {
                return Ok(Err(problem));
            }
        }
        match page.next {
            Some(next) if !page.events.is_empty() => after = Some(next),
            _ => break,
        }
    }
    Ok(Ok(()))
}

/// An event stored after `head` that the deployment, read again, does not record either.
async fn unrecorded<S: DeploymentStore, Q>(
    svc: &Services<S, Q>,
    id: &DeploymentId,
    head: &ChainHead,
) -> Result<Option<ChainError>, Common> {
    let after = head.len.checked_sub(1);
    if svc.store.audit_page(id, after, 1).await?.events.is_empty() {
        return Ok(None);
    }
    let now = load(svc, id).await?.audit_head;
    Ok((now.len <= head.len).then_some(ChainError::Unrecorded { len: head.len }))
}
