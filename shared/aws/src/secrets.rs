//! Platform credentials from Secrets Manager: read once per warm container, cached for a TTL,
//! read again on demand (after a 401 or a rotation). The value never reaches a log line, an
//! error or an audit event: [`SecretValue`] cannot be printed.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use tokio::sync::Mutex;

/// A secret's value. `Debug` and `Display` print a placeholder, never the value.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue {
    value: Arc<str>,
    /// Secrets Manager's version id: it changes on rotation.
    pub version_id: Option<String>,
}

impl SecretValue {
    /// The value, for the one place that sends it to the platform's token endpoint.
    pub fn expose(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretValue(<redacted>, version {:?})", self.version_id)
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Reading the secret failed. Carries the secret's name and the error code, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("secret {0} does not exist")]
    NotFound(String),
    #[error("not allowed to read secret {0}")]
    AccessDenied(String),
    #[error("secret {0} has no string value")]
    NotAString(String),
    #[error("secret {name} could not be read now ({code}); retry")]
    Retryable { name: String, code: String },
    #[error("secret {name} could not be read ({code})")]
    Failed { name: String, code: String },
}

impl SecretError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, SecretError::Retryable { .. })
    }
}

#[derive(Debug)]
struct Cached {
    value: SecretValue,
    read_at: Instant,
}

/// One secret, cached.
#[derive(Debug, Clone)]
pub struct SecretCache {
    client: Client,
    secret_id: String,
    ttl: Duration,
    cached: Arc<Mutex<Option<Cached>>>,
}

impl SecretCache {
    /// Caches `secret_id` (name or ARN) for `ttl`.
    pub fn new(client: Client, secret_id: impl Into<String>, ttl: Duration) -> SecretCache {
        SecretCache {
            client,
            secret_id: secret_id.into(),
            ttl,
            cached: Arc::new(Mutex::new(None)),
        }
    }

    /// The secret, from the cache while it is fresh.
    pub async fn get(&self) -> Result<SecretValue, SecretError> {
        let mut guard = self.cached.lock().await;
        if let Some(c) = guard.as_ref()
            && c.read_at.elapsed() < self.ttl
        {
            return Ok(c.value.clone());
        }
        let value = self.fetch().await?;
        *guard = Some(Cached {
            value: value.clone(),
            read_at: Instant::now(),
        });
        Ok(value)
    }

    /// Reads the secret again whatever the cache holds (after a 401: it may have been rotated).
    pub async fn refresh(&self) -> Result<SecretValue, SecretError> {
        let mut guard = self.cached.lock().await;
        let value = self.fetch().await?;
        if guard
            .as_ref()
            .is_some_and(|c| c.value.version_id != value.version_id)
        {
            tracing::info!(secret = %self.secret_id, "secret rotated: new version picked up");
        }
        *guard = Some(Cached {
            value: value.clone(),
            read_at: Instant::now(),
        });
        Ok(value)
    }

    async fn fetch(&self) -> Result<SecretValue, SecretError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| self.classify(&e))?;
        let value = out
            .secret_string()
            .ok_or_else(|| SecretError::NotAString(self.secret_id.clone()))?;
        Ok(SecretValue {
            value: Arc::from(value),
            version_id: out.version_id().map(str::to_owned),
        })
    }

    fn classify<E: ProvideErrorMetadata, R>(&self, err: &SdkError<E, R>) -> SecretError {
        let name = self.secret_id.clone();
        match err {
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => SecretError::Retryable {
                name,
                code: "Unreachable".into(),
            },
            SdkError::ServiceError(se) => match se.err().code().unwrap_or("Unknown") {
                "ResourceNotFoundException" => SecretError::NotFound(name),
                "AccessDeniedException" => SecretError::AccessDenied(name),
                code @ ("ThrottlingException"
                | "InternalServiceError"
                | "InternalServiceErrorException") => SecretError::Retryable {
                    name,
                    code: code.into(),
                },
                code => SecretError::Failed {
                    name,
                    code: code.into(),
                },
            },
            _ => SecretError::Failed {
                name,
                code: "Unknown".into(),
            },
        }
    }
}

/// The connectors read their platform credentials through this cache.
impl eucora_connector::credentials::Credentials for SecretCache {
    async fn current(
        &self,
    ) -> Result<eucora_connector::credentials::Secret, eucora_connector::CallError> {
        self.get()
            .await
            .map(|v| eucora_connector::credentials::Secret::new(v.expose()))
            .map_err(|e| secret_error(&e))
    }

    async fn refresh(
        &self,
    ) -> Result<eucora_connector::credentials::Secret, eucora_connector::CallError> {
        SecretCache::refresh(self)
            .await
            .map(|v| eucora_connector::credentials::Secret::new(v.expose()))
            .map_err(|e| secret_error(&e))
    }
}

fn secret_error(e: &SecretError) -> eucora_connector::CallError {
    if e.is_retryable() {
        eucora_connector::CallError::no_answer("read_secret", e.to_string())
    } else {
        eucora_connector::CallError::invalid_payload(
            "read_secret",
            "SECRET_UNAVAILABLE",
            e.to_string(),
        )
    }
}
