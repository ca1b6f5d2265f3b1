//! Package bytes by range from S3 (`s3://bucket/key`) or HTTPS (`Range` requests), never whole.

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use bytes::Bytes;
use eucora_connector::CallError;
use eucora_connector::artifact::ArtifactSource;

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

enum Location<'a> {
    S3 { bucket: &'a str, key: &'a str },
    Http(&'a str),
}

fn parse(location: &str) -> Result<Location<'_>, CallError> {
    if let Some(rest) = location.strip_prefix("s3://") {
        let (bucket, key) = rest.split_once('/').ok_or_else(|| {
            CallError::invalid_payload(OP, "ARTIFACT_LOCATION", format!("{location} has no key"))
        })?;
        Ok(Location::S3 { bucket, key })
    } else if location.starts_with("https://") || location.starts_with("http://") {
        Ok(Location::Http(location))
    } else {
        Err(CallError::invalid_payload(
            OP,
            "ARTIFACT_LOCATION",
            format!("{location} is neither s3:// nor https://"),
        ))
    }
}

fn s3_error<E: ProvideErrorMetadata + std::error::Error + 'static>(
    location: &str,
    e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> CallError {
    match e.as_service_error().and_then(ProvideErrorMetadata::code) {
        Some("NoSuchKey" | "NoSuchBucket" | "AccessDenied" | "NotFound") => {
            CallError::invalid_payload(
                OP,
                "ARTIFACT_NOT_FOUND",
                format!("{location}: {}", DisplayErrorContext(e)),
            )
        }
        _ if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {
            CallError::invalid_payload(
                OP,
                "ARTIFACT_NOT_FOUND",
                format!("{location} does not exist"),
            )
        }
        _ => CallError::no_answer(OP, DisplayErrorContext(e).to_string()),
    }
}

fn http_status(location: &str, status: reqwest::StatusCode) -> CallError {
    CallError::http(
        OP,
        status.as_u16(),
        "ARTIFACT_UNAVAILABLE",
        format!("{location} answered {status}"),
        None,
    )
}

impl ArtifactSource for Artifacts {
    async fn size(&self, location: &str) -> Result<u64, CallError> {
        match parse(location)? {
            Location::S3 { bucket, key } => {
                let head = self
                    .s3
                    .head_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| s3_error(location, &e))?;
                head.content_length()
                    .and_then(|n| u64::try_from(n).ok())
                    .ok_or_else(|| CallError::no_answer(OP, format!("{location}: no size")))
            }
            Location::Http(url) => {
                let r = self
                    .http
                    .head(url)
                    .send()
                    .await
                    .map_err(|e| CallError::no_answer(OP, e.without_url().to_string()))?;
                if !r.status().is_success() {
                    return Err(http_status(location, r.status()));
                }
                r.headers()
                    .get(reqwest::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| {
                        CallError::no_answer(OP, format!("{location}: no Content-Length"))
                    })
            }
        }
    }

    async fn read_range(&self, location: &str, start: u64, len: u64) -> Result<Bytes, CallError> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        let range = format!("bytes={start}-{}", start + len - 1);
        match parse(location)? {
            Location::S3 { bucket, key } => {
                let out = self
                    .s3
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .range(range)
                    .send()
                    .await
                    .map_err(|e| s3_error(location, &e))?;
                Ok(out
                    .body
                    .collect()
                    .await
                    .map_err(|e| CallError::no_answer(OP, e.to_string()))?
                    .into_bytes())
            }
            Location::Http(url) => {
                let r = self
                    .http
                    .get(url)
                    .header(reqwest::header::RANGE, range)
                    .send()
                    .await
                    .map_err(|e| CallError::no_answer(OP, e.without_url().to_string()))?;
                // A server that ignores `Range` answers 200 with the whole file: refused, as it
                // would be read whole.
                if r.status() != reqwest::StatusCode::PARTIAL_CONTENT {
                    return Err(http_status(location, r.status()));
                }
                r.bytes()
                    .await
                    .map_err(|e| CallError::no_answer(OP, e.without_url().to_string()))
            }
        }
    }
}
