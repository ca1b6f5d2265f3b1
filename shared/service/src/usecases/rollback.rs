//! Recording a rollback validation: the evidence the rollback gate reads. The packager's
//! `validated_in_ring0` is their statement; a publisher or security reviewer other than the
//! submitter records who ran the rollback, when, on which Ring 0 devices, and the result.

use eucora_domain::audit::AuditKind;
use eucora_domain::lifecycle::DeploymentState;
use eucora_domain::rollback::{
    RollbackValidation, RollbackValidationError, VALIDATOR_ROLES, ValidationInput, record,
};
use eucora_domain::{DeploymentId, Timestamp};
use serde::Serialize;

use super::read::load;
use super::{CONFLICT_RETRIES, Common, Services};
use crate::actor::{Actor, Forbidden};
use crate::budget::{self, Growth, RecordFull};
use crate::ports::{DeploymentStore, StoreError};
use crate::record::Change;

#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    #[error("deployment {0} not found")]
    NotFound(DeploymentId),
    #[error(transparent)]
    Validation(#[from] RollbackValidationError),
    /// The deployment's record has no room left for it (every validation is bounded; this keeps
    /// the record within its budget whatever else it holds).
    #[error(transparent)]
    Full(#[from] RecordFull),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<Common> for RollbackError {
    fn from(c: Common) -> Self {
        match c {
            Common::Forbidden(f) => RollbackError::Forbidden(f),
            Common::NotFound(id) => RollbackError::NotFound(id),
            Common::Store(s) => RollbackError::Store(s),
        }
    }
}

/// The recorded validation and where the deployment stands.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RollbackValidationOutcome {
    pub validation: RollbackValidation,
    /// Whether the rollback gate is now satisfied (the latest validation passed).
    pub rollback_validated: bool,
    pub state: DeploymentState,
}

/// Records a rollback validation on deployment `id`. The next gate run reads it.
pub async fn record_validation<S: DeploymentStore, Q>(
    svc: &Services<S, Q>,
    actor: &Actor,
    id: &DeploymentId,
    input: ValidationInput,
    now: Timestamp,
) -> Result<RollbackValidationOutcome, RollbackError> {
    actor.require(VALIDATOR_ROLES)?;
    for attempt in 1..=CONFLICT_RETRIES {
        let r = load(svc, id).await?;
        let validation = record(
            &r.rollback_validations,
            r.lifecycle.state,
            &r.submitted_by,
            &actor.id,
            &actor.roles(),
            input.clone(),
            now,
        )?;
        let mut change = Change::new(r);
        change.record.rollback_validations.push(validation.clone());
        eucora_domain::rollback::keep_latest(&mut change.record.rollback_validations);
        let growth = if validation.result == eucora_domain::rollback::RollbackResult::Passed {
            Growth::Request
        } else {
            Growth::Decision
        };
        budget::check(&change.record, growth, "devices")?;
        let validated = change.record.rollback_validated();
        change.audit(
            actor,
            AuditKind::RollbackValidated,
            serde_json::json!({
                "by": validation.by,
                "at": validation.at,
                "devices": validation.devices,
                "result": validation.result,
                "notes": validation.notes,
                "rollback_validated": validated,
            }),
            now,
        );
        match svc.store.save(&change).await {
            Ok(()) => {
                tracing::info!(deployment_id = %id, result = %validation.result, "rollback validation recorded");
                return Ok(RollbackValidationOutcome {
                    validation,
                    rollback_validated: validated,
                    state: change.record.lifecycle.state,
                });
            }
            Err(StoreError::Conflict) if attempt < CONFLICT_RETRIES => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
}
