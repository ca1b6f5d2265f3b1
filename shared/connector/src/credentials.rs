//! Where a connector's platform credentials come from (Secrets Manager in production), and where
//! it reads the package bytes the evidence pack points at.

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

/// Reads package bytes from where the evidence pack says they are, checking their SHA-256.
pub trait ArtifactSource: Send + Sync {
    fn fetch(
        &self,
        location: &str,
        sha256: &str,
    ) -> impl Future<Output = Result<Vec<u8>, CallError>> + Send;
}

/// Checks fetched bytes against the evidence pack's SHA-256 (a mismatch is permanent: the
/// artifact is not what was approved).
pub fn verify_sha256(location: &str, bytes: &[u8], expected: &str) -> Result<(), CallError> {
    use sha2::Digest;
    let actual = hex_lower(&sha2::Sha256::digest(bytes));
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(CallError::invalid_payload(
            "fetch_artifact",
            "ARTIFACT_HASH_MISMATCH",
            format!("{location} has SHA-256 {actual}, the evidence pack says {expected}"),
        ))
    }
}

pub fn hex_lower(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Artifacts held in memory, keyed by location (tests, the local run's simulators).
#[derive(Debug, Clone, Default)]
pub struct MemoryArtifacts(Arc<std::sync::Mutex<std::collections::BTreeMap<String, Vec<u8>>>>);

impl MemoryArtifacts {
    pub fn put(&self, location: &str, bytes: Vec<u8>) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(location.to_owned(), bytes);
    }
}

impl ArtifactSource for MemoryArtifacts {
    async fn fetch(&self, location: &str, sha256: &str) -> Result<Vec<u8>, CallError> {
        let bytes = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(location)
            .cloned()
            .ok_or_else(|| {
                CallError::invalid_payload(
                    "fetch_artifact",
                    "ARTIFACT_NOT_FOUND",
                    format!("{location} does not exist"),
                )
            })?;
        verify_sha256(location, &bytes, sha256)?;
        Ok(bytes)
    }
}
