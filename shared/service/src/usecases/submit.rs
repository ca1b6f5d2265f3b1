//! Evidence intake: validate, hash and store a submission, then ask for it to be scored.
//!
//! A repeated request (same `Idempotency-Key`, or without one the same `correlation_id`) with the
//! same content returns the first answer and has no second effect; the same key with different
//! content is a conflict.
//!
//! Names that cannot be squatted: an `Idempotency-Key` belongs to the caller who sent it (another
//! person's identical key is another key), so nobody can make a colleague's request fail by taking
//! their key first. A correlation id names one change for as long as its deployment is kept (the
//! platforms' markers and the connectors' ledger rely on it): a second deployment under it is a
//! conflict, and only its own submitter gets the first answer back; anyone else learns which
//! deployment holds it only if they may read deployments.

use eucora_domain::audit::AuditKind;
use eucora_domain::cab::Role;
use eucora_domain::evidence::{EvidenceError, Submission};
use eucora_domain::exception::{ExceptionError, ExceptionRecord, ExceptionRequest};
use eucora_domain::lifecycle::{DeploymentState, Lifecycle};
use eucora_domain::{DeploymentId, ExceptionId, Timestamp};
use time::Duration;

use super::Services;
use super::read::READERS;
use crate::actor::{Actor, Forbidden};
use crate::budget::{self, Growth, RecordFull};
use crate::messages::{Body, Envelope};
use crate::ports::{
    CreateError, DeploymentStore, IdempotencyRecord, Queue, QueueError, QueueName, StoreError,
};
use crate::record::{Change, DeploymentRecord};

/// How long a repeated request is recognised.
pub const IDEMPOTENCY_TTL: Duration = Duration::days(7);

#[derive(Debug)]
pub struct SubmitInput<'a> {
    pub body: &'a str,
    /// The `Idempotency-Key` header, if sent.
    pub idempotency_key: Option<&'a str>,
    /// The id to give the deployment if it is new.
    pub new_id: DeploymentId,
    pub now: Timestamp,
}

#[derive(Debug)]
pub struct Submitted {
    pub record: DeploymentRecord,
    /// True when this answers a repeated request.
    pub replayed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    #[error(transparent)]
    Evidence(#[from] EvidenceError),
    #[error("Idempotency-Key must be 1 to 128 printable ASCII characters")]
    InvalidKey,
    #[error("{key} was already used for a different request (deployment {deployment_id})")]
    KeyReused {
        /// The key as the caller sent it.
        key: String,
        deployment_id: DeploymentId,
    },
    /// The correlation id names another deployment (`deployment_id` only when the caller may read
    /// deployments).
    #[error("correlation id {correlation_id} already names another deployment")]
    CorrelationTaken {
        correlation_id: String,
        deployment_id: Option<DeploymentId>,
    },
    #[error(transparent)]
    Exception(#[from] ExceptionError),
    #[error(transparent)]
    Full(#[from] RecordFull),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Stored, but the scoring request could not be queued: repeat the same request.
    #[error(
        "deployment {deployment_id} is stored but could not be queued for scoring; repeat the request"
    )]
    NotQueued {
        deployment_id: DeploymentId,
        source: QueueError,
    },
}

/// The claim of an `Idempotency-Key`: the caller's own (`#` is not a character of actor ids, so
/// the key cannot be forged into another person's).
fn key_claim(actor: &Actor, key: &str) -> String {
    format!("key:{}#{key}", actor.id)
}

fn correlation_claim(s: &Submission) -> String {
    format!("correlation:{}", s.correlation_id)
}

fn claims(
    s: &Submission,
    actor: &Actor,
    key: Option<&str>,
    id: &DeploymentId,
    now: Timestamp,
) -> Vec<IdempotencyRecord> {
    let hash = s.content_hash().to_string();
    let record = |key: String, expires_at| IdempotencyRecord {
        key,
        request_hash: hash.clone(),
        deployment_id: id.clone(),
        created_at: now,
        expires_at,
    };
    // The correlation id is held as long as the deployment is kept; a key for a week.
    let mut claims = vec![record(correlation_claim(s), None)];
    if let Some(k) = key {
        claims.push(record(key_claim(actor, k), Some(now.plus(IDEMPOTENCY_TTL))));
    }
    claims
}

/// Submits a deployment with its evidence.
pub async fn submit<S: DeploymentStore, Q: Queue>(
    svc: &Services<S, Q>,
    actor: &Actor,
    input: SubmitInput<'_>,
) -> Result<Submitted, SubmitError> {
    actor.require(&[Role::Packaging])?;
    if let Some(k) = input.idempotency_key
        && (k.is_empty() || k.len() > 128 || !k.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(SubmitError::InvalidKey);
    }
    let submission = Submission::parse(input.body)?;
    let claims = claims(
        &submission,
        actor,
        input.idempotency_key,
        &input.new_id,
        input.now,
    );
    let hash = &claims[0].request_hash;

    // A repeated request under the caller's own key, then the correlation id.
    for claim in claims.iter().rev() {
        if let Some(existing) = svc.store.idempotency(&claim.key).await? {
            return claimed(svc, actor, &input, &existing, hash).await;
        }
    }

    let change = new_deployment(svc, actor, submission, &input)?;
    budget::check(
        &change.record,
        Growth::Submission,
        &budget::largest_field(
            &serde_json::to_value(&change.record.submission).unwrap_or_default(),
        ),
    )?;
    match svc.store.create(&change, &claims).await {
        Ok(()) => {}
        Err(CreateError::Taken(existing)) => {
            return claimed(svc, actor, &input, &existing, hash).await;
        }
        Err(CreateError::Store(e)) => return Err(e.into()),
    }
    tracing::info!(deployment_id = %change.record.id, correlation_id = %change.record.correlation_id(), "deployment submitted");
    queue_scoring(svc, &change.record, input.now).await?;
    Ok(Submitted {
        record: change.record,
        replayed: false,
    })
}

fn new_deployment<S, Q>(
    svc: &Services<S, Q>,
    actor: &Actor,
    submission: Submission,
    input: &SubmitInput<'_>,
) -> Result<Change, SubmitError> {
    let rollout = &submission.evidence.rollout;
    let mut exceptions = Vec::new();
    for (i, requested) in submission.evidence.exceptions.iter().enumerate() {
        exceptions.push(ExceptionRecord::open(
            ExceptionId::parse(format!("{}-exc-{}", input.new_id, i + 1))
                .map_err(|_| SubmitError::InvalidKey)?,
            input.new_id.clone(),
            ExceptionRequest {
                requested: requested.clone(),
                ring: None,
                gate: None,
                break_glass: false,
                expires_in: None,
            },
            actor.id.clone(),
            input.now,
            &svc.policy.exceptions,
        )?);
    }
    let record = DeploymentRecord {
        id: input.new_id.clone(),
        version: 0,
        evidence_hash: submission.content_hash(),
        lifecycle: Lifecycle::new(rollout.first_ring(), rollout.highest_ring()),
        submitted_by: actor.id.clone(),
        submitted_at: input.now,
        risk: None,
        decisions: Vec::new(),
        exceptions,
        incidents: Vec::new(),
        ring_entered_at: None,
        rollback_validations: Vec::new(),
        confirmed_platforms: Vec::new(),
        halt_cause: None,
        last_gate: None,
        audit_head: eucora_domain::audit::ChainHead {
            len: 0,
            hash: eucora_domain::audit::GENESIS.to_owned(),
        },
        updated_at: input.now,
        submission,
    };
    let mut change = Change::new(record);
    let detail = serde_json::json!({
        "evidence_hash": change.record.evidence_hash,
        "app": change.record.submission.app,
        "platforms": change.record.submission.platforms(),
        "rings": change.record.submission.evidence.rollout.rings,
    });
    change.audit(actor, AuditKind::DeploymentSubmitted, detail, input.now);
    let opened: Vec<_> = change.record.exceptions.clone();
    for e in opened {
        change.audit(
            actor,
            AuditKind::ExceptionRequested,
            serde_json::json!({ "exception_id": e.id, "kind": e.kind, "expires_at": e.expires_at }),
            input.now,
        );
    }
    Ok(change)
}

/// A claim of this request is already held: the first answer if it is the same request from the
/// same person, else a conflict naming only what the caller may see.
async fn claimed<S: DeploymentStore, Q: Queue>(
    svc: &Services<S, Q>,
    actor: &Actor,
    input: &SubmitInput<'_>,
    existing: &IdempotencyRecord,
    request_hash: &str,
) -> Result<Submitted, SubmitError> {
    let record = svc
        .store
        .get(&existing.deployment_id)
        .await?
        .ok_or_else(|| {
            StoreError::Failed(format!(
                "idempotency record points to missing deployment {}",
                existing.deployment_id
            ))
        })?;
    let own = record.submitted_by == actor.id;
    let same = existing.request_hash == request_hash;
    if own && same {
        // The first request may have stored the deployment but failed to queue it: queue it again.
        if record.lifecycle.state == DeploymentState::Submitted {
            queue_scoring(svc, &record, input.now).await?;
        }
        return Ok(Submitted {
            record,
            replayed: true,
        });
    }
    match input.idempotency_key {
        Some(k) if own && existing.key == key_claim(actor, k) => Err(SubmitError::KeyReused {
            key: k.to_owned(),
            deployment_id: record.id,
        }),
        _ => Err(SubmitError::CorrelationTaken {
            correlation_id: record.correlation_id().to_string(),
            deployment_id: actor.require(READERS).is_ok().then_some(record.id),
        }),
    }
}

async fn queue_scoring<S, Q: Queue>(
    svc: &Services<S, Q>,
    record: &DeploymentRecord,
    now: Timestamp,
) -> Result<(), SubmitError> {
    let message = Envelope::new(
        record.correlation_id().clone(),
        format!("score:{}", record.id),
        now,
        Body::ScoreDeployment {
            deployment_id: record.id.clone(),
        },
    );
    svc.queue
        .send(QueueName::Scoring, &message)
        .await
        .map_err(|source| SubmitError::NotQueued {
            deployment_id: record.id.clone(),
            source,
        })
}
