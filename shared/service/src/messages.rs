//! The messages the functions send each other over SQS: a versioned envelope carrying the
//! correlation id, and the payload kinds.

use eucora_domain::evidence::Platform;
use eucora_domain::{CorrelationId, DeploymentId, Ring, Timestamp};
use serde::{Deserialize, Serialize};

/// The envelope's schema version. A consumer refuses any other.
pub const SCHEMA: &str = "eucora.message/1";

/// Every message on every queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub schema: String,
    pub correlation_id: CorrelationId,
    /// Unique per logical message; redeliveries keep it.
    pub message_id: String,
    pub sent_at: Timestamp,
    #[serde(flatten)]
    pub body: Body,
}

/// What the message asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload", rename_all = "snake_case")]
pub enum Body {
    /// Score a submitted deployment (evidence intake → risk scoring).
    ScoreDeployment { deployment_id: DeploymentId },
    /// Do something on a platform (→ connector-intune / connector-jamf).
    ConnectorCommand(ConnectorCommand),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorAction {
    /// Create (or find) the app/package and assign it to the ring's group.
    Publish,
    /// Read install status into telemetry.
    QueryStatus,
    /// Undo the ring's assignment (uninstall intent or re-pin the previous version).
    Rollback,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorCommand {
    pub deployment_id: DeploymentId,
    pub ring: Ring,
    pub action: ConnectorAction,
    pub platform: Platform,
}

impl ConnectorCommand {
    /// The idempotency key of the command: one effect per deployment, ring, action and platform.
    pub fn idempotency_key(&self, correlation_id: &CorrelationId) -> String {
        format!(
            "{correlation_id}:{}:{}:{}",
            self.ring.number(),
            serde_json::to_value(self.action)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            self.platform
        )
    }
}

/// A message body that cannot be used. The consumer sends it to the DLQ (it will never succeed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("message body is not a valid envelope: {0}")]
    Malformed(String),
    #[error("unsupported schema {0:?}, expected {SCHEMA}")]
    Schema(String),
}

impl Envelope {
    pub fn new(
        correlation_id: CorrelationId,
        message_id: String,
        sent_at: Timestamp,
        body: Body,
    ) -> Envelope {
        Envelope {
            schema: SCHEMA.to_owned(),
            correlation_id,
            message_id,
            sent_at,
            body,
        }
    }

    pub fn parse(text: &str) -> Result<Envelope, EnvelopeError> {
        let e: Envelope =
            serde_json::from_str(text).map_err(|err| EnvelopeError::Malformed(err.to_string()))?;
        if e.schema != SCHEMA {
            return Err(EnvelopeError::Schema(e.schema));
        }
        Ok(e)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_checks_the_schema() {
        let e = Envelope::new(
            CorrelationId::parse("dp-1").unwrap(),
            "m-1".into(),
            Timestamp::parse("2026-11-23T09:00:00Z").unwrap(),
            Body::ConnectorCommand(ConnectorCommand {
                deployment_id: DeploymentId::parse("dep-1").unwrap(),
                ring: Ring::Canary,
                action: ConnectorAction::Publish,
                platform: Platform::Windows,
            }),
        );
        let text = e.to_json();
        assert!(text.contains(r#""kind":"connector_command""#), "{text}");
        assert_eq!(Envelope::parse(&text).unwrap(), e);
        let other = text.replace(SCHEMA, "eucora.message/2");
        assert!(matches!(
            Envelope::parse(&other),
            Err(EnvelopeError::Schema(_))
        ));
        assert!(matches!(
            Envelope::parse("nope"),
            Err(EnvelopeError::Malformed(_))
        ));
    }

    #[test]
    fn the_idempotency_key_names_deployment_ring_action_platform() {
        let c = ConnectorCommand {
            deployment_id: DeploymentId::parse("dep-1").unwrap(),
            ring: Ring::Pilot,
            action: ConnectorAction::Rollback,
            platform: Platform::Macos,
        };
        assert_eq!(
            c.idempotency_key(&CorrelationId::parse("dp-9").unwrap()),
            "dp-9:2:rollback:macos"
        );
    }
}
