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
