//! What both connector functions share: configuration from the environment, and one command's
//! outcome turned into what happens to its message.

use std::collections::BTreeMap;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use eucora_connector::breaker::BreakerStore;
use eucora_connector::execute::{Connector, Outcome};
use eucora_connector::ledger::CommandLedger;
use eucora_connector::platform::Platform;
use eucora_domain::{Ring, Timestamp};
use eucora_service::messages::Body;
use eucora_service::ports::{DeploymentStore, TelemetryStore};

use crate::config::{MissingEnv, env};
use crate::consumer::{Disposition, MessageControl, each_command};

/// `RING_GROUPS`: the platform's group per ring, as JSON (`{"0": "…", "1": "…"}`).
pub fn ring_groups() -> Result<BTreeMap<Ring, String>, MissingEnv> {
    let raw = env("RING_GROUPS")?;
    let map: BTreeMap<String, String> = serde_json::from_str(&raw)
        .map_err(|_| MissingEnv("RING_GROUPS (a JSON object of ring number to group id)".into()))?;
    map.into_iter()
        .map(|(k, v)| {
            let ring = k
                .parse::<i64>()
                .ok()
                .and_then(|n| Ring::from_number(n).ok());
            ring.map(|r| (r, v))
                .ok_or_else(|| MissingEnv(format!("RING_GROUPS key {k:?} (rings are 0 to 4)")))
        })
        .collect()
}

/// The message's fate for a command's outcome.
pub fn disposition(outcome: &Outcome) -> Disposition {
    match outcome {
        Outcome::Done { .. } | Outcome::Duplicate { .. } | Outcome::Skipped { .. } => {
            Disposition::Ack
        }
        Outcome::Retry { after_ms, .. } => {
            Disposition::RetryAfter(std::time::Duration::from_millis(*after_ms))
        }
        Outcome::Failed {
            reason,
            error_class,
        } => Disposition::DeadLetter(format!("{error_class:?}: {reason}")),
    }
}

/// A jitter value in `0..1` from the message id (stable across redeliveries of one message,
/// different between messages).
fn jitter(message_id: &str) -> f64 {
    let h = message_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    #[allow(clippy::cast_precision_loss)]
    let v = (h >> 11) as f64 / (1_u64 << 53) as f64;
    v
}

/// Runs a batch of connector commands.
pub async fn handle_batch<S, L, B, P, M>(
    connector: &Connector<S, L, B, P>,
    control: &M,
    event: SqsEvent,
    now: Timestamp,
) -> SqsBatchResponse
where
    S: DeploymentStore + TelemetryStore,
    L: CommandLedger,
    B: BreakerStore,
    P: Platform,
    M: MessageControl,
{
    // One deadline for the batch: its commands share the invocation's timeout.
    let deadline = connector.work_budget.map(|b| std::time::Instant::now() + b);
    each_command(event, control, |envelope, attempt, message_id| async move {
        let Body::ConnectorCommand(command) = &envelope.body else {
            return Disposition::DeadLetter("not a connector command".into());
        };
        let outcome = connector
            .execute_until(&envelope, command, attempt, jitter(&message_id), now, deadline)
            .await;
        tracing::info!(outcome = ?outcome, action = ?command.action, ring = command.ring.number(), "command handled");
        disposition(&outcome)
    })
    .await
}

/// How long one invocation works on a command (`CONNECTOR_WORK_BUDGET_SECONDS`, below the
/// function's timeout): a long upload hands the rest to the next invocation.
pub fn work_budget() -> Result<std::time::Duration, MissingEnv> {
    match std::env::var("CONNECTOR_WORK_BUDGET_SECONDS") {
        Err(_) => Ok(DEFAULT_WORK_BUDGET),
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|s| *s > 0)
            .map(std::time::Duration::from_secs)
            .ok_or_else(|| {
                MissingEnv(
                    "CONNECTOR_WORK_BUDGET_SECONDS (a whole number of seconds above 0)".to_owned(),
                )
            }),
    }
}

/// Without `CONNECTOR_WORK_BUDGET_SECONDS`.
pub const DEFAULT_WORK_BUDGET: std::time::Duration = std::time::Duration::from_secs(600);

/// How long the platform secret is trusted before it is read again (a 401 re-reads it at once).
pub const SECRET_TTL: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// A connector function's parts, built once per container from the environment:
/// `TABLE_NAME`, `QUEUE_URL`, `DLQ_URL`, `PLATFORM_SECRET_ARN`, `RING_GROUPS`.
#[derive(Debug)]
pub struct ConnectorRuntime<P> {
    pub connector: Connector<crate::DynamoStore, crate::DynamoStore, crate::DynamoStore, P>,
    pub control: crate::consumer::SqsControl,
}

/// Why a connector function cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] MissingEnv),
    #[error("the platform client: {0}")]
    Platform(#[from] eucora_connector::CallError),
}

impl<P: Platform> ConnectorRuntime<P> {
    /// Builds the runtime; `platform` makes the platform's client from the secret cache and the
    /// artifact reader.
    pub async fn from_env(
        platform: impl FnOnce(
            crate::SecretCache,
            crate::artifacts::Artifacts,
        ) -> Result<P, eucora_connector::CallError>,
    ) -> Result<ConnectorRuntime<P>, StartError> {
        let table = env("TABLE_NAME")?;
        let queue_url = env("QUEUE_URL")?;
        let dlq_url = env("DLQ_URL")?;
        let secret_arn = env("PLATFORM_SECRET_ARN")?;
        let ring_groups = ring_groups()?;
        let sdk = crate::config::load().await;
        let store = crate::DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table);
        let secrets = crate::SecretCache::new(
            aws_sdk_secretsmanager::Client::new(&sdk),
            secret_arn,
            SECRET_TTL,
        );
        let platform = platform(
            secrets,
            crate::artifacts::Artifacts::new(aws_sdk_s3::Client::new(&sdk)),
        )?;
        Ok(ConnectorRuntime {
            connector: Connector {
                svc: eucora_service::usecases::Services {
                    store: store.clone(),
                    queue: (),
                    policy: eucora_domain::policy::Policy::bundled(),
                },
                ledger: store.clone(),
                breaker: store,
                platform,
                breaker_policy: eucora_connector::breaker::BreakerPolicy::default(),
                ring_groups,
                work_budget: Some(work_budget()?),
                halt_poll: Some(eucora_connector::execute::HALT_POLL),
            },
            control: crate::consumer::SqsControl {
                client: aws_sdk_sqs::Client::new(&sdk),
                queue_url,
                dlq_url,
            },
        })
    }

    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        handle_batch(&self.connector, &self.control, event, crate::config::now()).await
    }
}
