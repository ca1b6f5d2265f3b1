//! What the connectors report back: a ring's dispatch confirmed on a platform, and install
//! results. Both are idempotent: a repeated report changes nothing.

use eucora_domain::audit::AuditKind;
use eucora_domain::evidence::Platform;
use eucora_domain::gates::DeviceResult;
use eucora_domain::lifecycle::{DeploymentState, LifecycleEvent, TransitionError};
use eucora_domain::{DeploymentId, Ring, Timestamp};

use super::{CONFLICT_RETRIES, Services};
use crate::actor::Actor;
use crate::ports::{DeploymentStore, StoreError, TelemetryStore};
use crate::record::Change;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("deployment {0} not found")]
    NotFound(DeploymentId),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn connector(platform: Platform) -> Actor {
    match platform {
        Platform::Windows => Actor::system("connector-intune"),
        Platform::Macos => Actor::system("connector-jamf"),
    }
}

/// The connector for `platform` has published and assigned the deployment in `ring`. When every
/// platform has confirmed, the deployment is in the ring.
pub async fn dispatched<S: DeploymentStore, Q>(
    svc: &Services<S, Q>,
    id: &DeploymentId,
    ring: Ring,
    platform: Platform,
    platform_ids: serde_json::Value,
    now: Timestamp,
) -> Result<DeploymentState, ReportError> {
    let actor = connector(platform);
    for attempt in 1..=CONFLICT_RETRIES {
        let record = svc
            .store
            .get(id)
            .await?
            .ok_or_else(|| ReportError::NotFound(id.clone()))?;
        if record.lifecycle.state != (DeploymentState::Dispatching { ring })
            || record.confirmed_platforms.contains(&platform)
        {
            return Ok(record.lifecycle.state);
        }
        let mut change = Change::new(record);
        change.record.confirmed_platforms.push(platform);
        change.audit(
            &actor,
            AuditKind::DispatchRequested,
            serde_json::json!({ "ring": ring, "platform": platform, "confirmed": true, "platform_ids": platform_ids }),
            now,
        );
        if change
            .record
            .submission
            .platforms()
            .iter()
            .all(|p| change.record.confirmed_platforms.contains(p))
        {
            change.transition(&actor, LifecycleEvent::DispatchConfirmed { ring }, now)?;
        }
        match svc.store.save(&change).await {
            Ok(()) => return Ok(change.record.lifecycle.state),
            Err(StoreError::Conflict) if attempt < CONFLICT_RETRIES => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
}

/// Records install results read from a platform.
pub async fn install_results<S: DeploymentStore + TelemetryStore, Q>(
    svc: &Services<S, Q>,
    id: &DeploymentId,
    ring: Ring,
    results: &[DeviceResult],
) -> Result<(), ReportError> {
    svc.store.record(id, ring, results).await?;
    Ok(())
}
