//! What the connectors report back: the external calls a command made (one audit event each),
//! a ring's dispatch confirmed on a platform, a failure that halts the rollout, and install
//! results. Idempotent: a repeated confirmation changes nothing.

use eucora_domain::audit::AuditKind;
use eucora_domain::evidence::Platform;
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

impl ReportError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, ReportError::Store(e) if e.is_retryable())
    }
}

/// The actor a platform's connector acts as.
pub fn connector_actor(platform: Platform) -> Actor {
    match platform {
        Platform::Windows => Actor::system("connector-intune"),
        Platform::Macos => Actor::system("connector-jamf"),
    }
}

/// What one command of one connector did.
#[derive(Debug, Clone, Default)]
pub struct ConnectorReport {
    /// One audit event each: `(kind, detail, when)`; `kind` is `connector.call` or `connector.auth.refresh`.
    pub events: Vec<(AuditKind, serde_json::Value, Timestamp)>,
    /// The ring's dispatch succeeded on this platform, with the platform's ids.
    pub confirmed: Option<(Ring, serde_json::Value)>,
    /// A permanent failure that stops the rollout (the operator must act).
    pub halt: Option<serde_json::Value>,
}

/// Records a connector's report on the deployment, in one atomic change.
pub async fn report<S: DeploymentStore, Q>(
    svc: &Services<S, Q>,
    id: &DeploymentId,
    platform: Platform,
    report: &ConnectorReport,
    now: Timestamp,
) -> Result<DeploymentState, ReportError> {
    let actor = connector_actor(platform);
    for attempt in 1..=CONFLICT_RETRIES {
        let record = svc
            .store
            .get(id)
            .await?
            .ok_or_else(|| ReportError::NotFound(id.clone()))?;
        let mut change = Change::new(record);
        for (kind, detail, at) in &report.events {
            change.audit(&actor, *kind, detail.clone(), *at);
        }
        if let Some((ring, ids)) = &report.confirmed
            && change.record.lifecycle.state == (DeploymentState::Dispatching { ring: *ring })
            && !change.record.confirmed_platforms.contains(&platform)
        {
            change.record.confirmed_platforms.push(platform);
            change.audit(
                &actor,
                AuditKind::DispatchRequested,
                serde_json::json!({ "ring": ring, "platform": platform, "confirmed": true, "platform_ids": ids }),
                now,
            );
            let r = &change.record;
            if r.submission
                .platforms()
                .iter()
                .all(|p| r.confirmed_platforms.contains(p))
            {
                change.transition(
                    &actor,
                    LifecycleEvent::DispatchConfirmed { ring: *ring },
                    now,
                )?;
            }
        }
        if let Some(why) = &report.halt
            && matches!(
                change.record.lifecycle.state,
                DeploymentState::Dispatching { .. } | DeploymentState::InRing { .. }
            )
        {
            change.audit(
                &actor,
                AuditKind::ConnectorCall,
                serde_json::json!({ "halting_failure": why }),
                now,
            );
            change.transition(&actor, LifecycleEvent::Halt, now)?;
            change.record.halt_cause = Some("dispatch".into());
        }
        if change.is_empty() {
            return Ok(change.record.lifecycle.state);
        }
        match svc.store.save(&change).await {
            Ok(()) => return Ok(change.record.lifecycle.state),
            Err(StoreError::Conflict) if attempt < CONFLICT_RETRIES => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
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
    let r = ConnectorReport {
        confirmed: Some((ring, platform_ids)),
        ..ConnectorReport::default()
    };
    report(svc, id, platform, &r, now).await
}

/// Records a platform's status snapshot of a ring.
pub async fn install_results<S: DeploymentStore + TelemetryStore, Q>(
    svc: &Services<S, Q>,
    id: &DeploymentId,
    ring: Ring,
    snapshot: &crate::ports::StatusSnapshot,
) -> Result<(), ReportError> {
    svc.store.record(id, ring, snapshot).await?;
    Ok(())
}
