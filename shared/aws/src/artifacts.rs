//! Package bytes from S3 (`s3://bucket/key`) or HTTPS, checked against the evidence pack's SHA-256.

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use eucora_connector::CallError;
use eucora_connector::credentials::{ArtifactSource, verify_sha256};

/// Reads artifacts from S3, or over HTTPS for `https://` locations.
#[derive(Debug, Clone)]
pub struct Artifacts {
    s3: aws_sdk_s3::Client,
    http: reqwest::Client,
}

impl Artifacts {
    pub fn new(s3: aws_sdk_s3::Client) -> Artifacts {
        Artifacts {
            s3,
            http: reqwest::Client::new(),
        }
    }
}

const OP: &str = "fetch_artifact";

impl ArtifactSource for Artifacts {
    async fn fetch(&self, location: &str, sha256: &str) -> Result<Vec<u8>, CallError> {
        let bytes = if let Some(rest) = location.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').ok_or_else(|| {
                CallError::invalid_payload(
                    OP,
                    "ARTIFACT_LOCATION",
                    format!("{location} has no key"),
                )
            })?;
            let out = self
                .s3
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(
                    |e| match e.as_service_error().and_then(ProvideErrorMetadata::code) {
                        Some("NoSuchKey" | "NoSuchBucket" | "AccessDenied") => {
                            CallError::invalid_payload(
                                OP,
                                "ARTIFACT_NOT_FOUND",
                                format!("{location}: {}", DisplayErrorContext(&e)),
                            )
                        }
                        _ => CallError::no_answer(OP, DisplayErrorContext(&e).to_string()),
                    },
                )?;
            out.body
                .collect()
                .await
                .map_err(|e| CallError::no_answer(OP, e.to_string()))?
                .into_bytes()
                .to_vec()
        } else if location.starts_with("https://") || location.starts_with("http://") {
            let r = self
                .http
                .get(location)
                .send()
                .await
                .map_err(|e| CallError::no_answer(OP, e.without_url().to_string()))?;
            if !r.status().is_success() {
                return Err(CallError::http(
                    OP,
                    r.status().as_u16(),
                    "ARTIFACT_UNAVAILABLE",
                    format!("{location} answered {}", r.status()),
                    None,
                ));
            }
            r.bytes()
                .await
                .map_err(|e| CallError::no_answer(OP, e.without_url().to_string()))?
                .to_vec()
        } else {
            return Err(CallError::invalid_payload(
                OP,
                "ARTIFACT_LOCATION",
                format!("{location} is neither s3:// nor https://"),
            ));
        };
        verify_sha256(location, &bytes, sha256)?;
        Ok(bytes)
    }
}
