//! Loading the AWS SDK configuration once per container.

use aws_config::{BehaviorVersion, SdkConfig};

/// The SDK configuration from the environment (region, credentials, and `AWS_ENDPOINT_URL` when
/// running against the local emulator).
pub async fn load() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// Reads a required environment variable, naming it when it is missing.
pub fn env(name: &str) -> Result<String, MissingEnv> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| MissingEnv(name.to_owned()))
}

/// A required environment variable is not set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment variable {0} must be set")]
pub struct MissingEnv(pub String);

/// Now, from the system clock: the one clock read the functions and connectors share (the
/// domain is handed the value).
pub fn now() -> eucora_domain::Timestamp {
    eucora_connector::platform::call_time()
}

/// JSON logs to stdout (CloudWatch), level from `RUST_LOG`.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_current_span(false)
        .without_time()
        .init();
}

/// The connector queues' URLs, from `INTUNE_QUEUE_URL` and `JAMF_QUEUE_URL`.
pub fn connector_queue_urls() -> Result<crate::QueueUrls, MissingEnv> {
    Ok(crate::QueueUrls {
        intune: Some(env("INTUNE_QUEUE_URL")?),
        jamf: Some(env("JAMF_QUEUE_URL")?),
        scoring: None,
    })
}

/// The use cases' services for a function: the table from `TABLE_NAME`, the queues it may send to,
/// the bundled policy. Builds the DynamoDB and SQS clients once.
pub async fn services(
    queues: crate::QueueUrls,
) -> Result<eucora_service::usecases::Services<crate::DynamoStore, crate::SqsQueue>, MissingEnv> {
    let table = env("TABLE_NAME")?;
    let sdk = load().await;
    Ok(eucora_service::usecases::Services {
        store: crate::DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table),
        queue: crate::SqsQueue::new(aws_sdk_sqs::Client::new(&sdk), queues),
        policy: eucora_domain::policy::Policy::bundled(),
    })
}
