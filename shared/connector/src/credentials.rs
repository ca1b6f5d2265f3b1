//! Where a connector's platform credentials come from (Secrets Manager in production). Package
//! bytes: [`crate::artifact`].

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use crate::error::CallError;

/// A credential document (JSON). `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: impl Into<Arc<str>>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one request that presents it to the platform.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Parses the document into the platform's credential fields.
    pub fn parse<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T, CallError> {
        // The parse error may quote the document: never pass it on.
        serde_json::from_str(&self.0).map_err(|_| {
            CallError::invalid_payload(
                "credentials",
                "INVALID_SECRET",
                format!("the {what} secret is not the expected JSON document"),
            )
        })
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The platform credentials: cached, and read again on demand (after a 401 or a rotation).
pub trait Credentials: Send + Sync {
    fn current(&self) -> impl Future<Output = Result<Secret, CallError>> + Send;
    fn refresh(&self) -> impl Future<Output = Result<Secret, CallError>> + Send;
}

/// Fixed credentials that can be swapped (tests, local run).
#[derive(Debug, Clone)]
pub struct StaticCredentials(Arc<std::sync::Mutex<Secret>>);

impl StaticCredentials {
    pub fn new(json: &str) -> StaticCredentials {
        StaticCredentials(Arc::new(std::sync::Mutex::new(Secret::new(json))))
    }

    /// Replaces the value, as a rotation in Secrets Manager would.
    pub fn rotate(&self, json: &str) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Secret::new(json);
    }
}

impl Credentials for StaticCredentials {
    async fn current(&self) -> Result<Secret, CallError> {
        Ok(self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone())
    }

    async fn refresh(&self) -> Result<Secret, CallError> {
        self.current().await
    }
}
