//! Moving an authorised deployment into its ring: `Approved(r)` → `Dispatching(r)` and one
//! publish command per platform. Commands are sent after the state is saved; a deployment found
//! in `Dispatching` has its commands sent again (the connectors are idempotent), so a lost send
//! is repaired by the next look at the deployment.

use eucora_domain::Timestamp;
use eucora_domain::lifecycle::{DeploymentState, LifecycleEvent, TransitionError};

use crate::actor::Actor;
use crate::messages::{Body, ConnectorAction, ConnectorCommand, Envelope};
use crate::ports::{Queue, QueueError, QueueName};
use crate::record::{Change, DeploymentRecord};

/// If the change leaves the deployment `Approved`, starts its dispatch, unless an incident is
/// open on it: then it stays approved, and the incident's resolution starts the dispatch.
pub fn start_if_approved(
    change: &mut Change,
    actor: &Actor,
    now: Timestamp,
) -> Result<(), TransitionError> {
    if change.record.open_incidents() > 0 {
        return Ok(());
    }
    if let DeploymentState::Approved { ring } = change.record.lifecycle.state {
        change.transition(actor, LifecycleEvent::DispatchStarted { ring }, now)?;
        change.record.confirmed_platforms.clear();
    }
    Ok(())
}

/// The commands a deployment in `Dispatching` still needs (none while an incident is open).
pub fn pending_commands(record: &DeploymentRecord) -> Vec<ConnectorCommand> {
    let DeploymentState::Dispatching { ring } = record.lifecycle.state else {
        return Vec::new();
    };
    if record.open_incidents() > 0 {
        return Vec::new();
    }
    record
        .submission
        .platforms()
        .into_iter()
        .filter(|p| !record.confirmed_platforms.contains(p))
        .map(|platform| ConnectorCommand {
            deployment_id: record.id.clone(),
            ring,
            action: ConnectorAction::Publish,
            platform,
        })
        .collect()
}

/// Sends `commands` for `record`, each on its platform's queue.
pub async fn send(
    queue: &impl Queue,
    record: &DeploymentRecord,
    commands: Vec<ConnectorCommand>,
    now: Timestamp,
) -> Result<(), QueueError> {
    for command in commands {
        let message_id = command.idempotency_key(record.correlation_id());
        let platform = command.platform;
        let envelope = Envelope::new(
            record.correlation_id().clone(),
            message_id,
            now,
            Body::ConnectorCommand(command),
        );
        queue
            .send(QueueName::Connector(platform), &envelope)
            .await?;
    }
    Ok(())
}

/// Asks each platform's connector for the install status of `ring` (the next gate run reads what
/// they record). One message per platform and run.
pub async fn query_status(
    queue: &impl Queue,
    record: &DeploymentRecord,
    ring: eucora_domain::Ring,
    now: Timestamp,
) -> Result<(), QueueError> {
    for platform in record.submission.platforms() {
        let command = ConnectorCommand {
            deployment_id: record.id.clone(),
            ring,
            action: ConnectorAction::QueryStatus,
            platform,
        };
        let envelope = Envelope::new(
            record.correlation_id().clone(),
            format!(
                "{}:{}",
                command.idempotency_key(record.correlation_id()),
                now.unix_seconds()
            ),
            now,
            Body::ConnectorCommand(command),
        );
        queue
            .send(QueueName::Connector(platform), &envelope)
            .await?;
    }
    Ok(())
}
