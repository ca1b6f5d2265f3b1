//! Error classes (the Jamf connector specification's, applied to every connector).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a failed call means for what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// 429, 503 (and 500, 502, 504), timeouts, dropped connections, unreadable answers: retry with backoff.
    Transient,
    /// 409 conflict or duplicate, 400 invalid payload, 404: retrying cannot help; surface it.
    Permanent,
    /// 403: scope mismatch or a missing approval on the platform's side.
    PolicyViolation,
    /// 401: refresh the token (and the secret) once, then retry.
    Unauthorized,
}

impl ErrorClass {
    /// The class of an HTTP status that is not a success.
    pub fn of_status(status: u16) -> ErrorClass {
        match status {
            401 => ErrorClass::Unauthorized,
            403 => ErrorClass::PolicyViolation,
            408 | 425 | 429 | 500 | 502 | 503 | 504 => ErrorClass::Transient,
            _ => ErrorClass::Permanent,
        }
    }
}

/// The code of [`CallError::resume_later`].
pub const RESUME_LATER: &str = "RESUME_LATER";

/// A failed external call. Carries what the platform said, never a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{class:?} error from {operation}: HTTP {}: {code}: {message}", status.map_or_else(|| "-".to_owned(), |s| s.to_string()))]
pub struct CallError {
    pub class: ErrorClass,
    pub operation: String,
    /// `None` when no answer came (timeout, dropped connection).
    pub status: Option<u16>,
    /// The platform's error code (`TooManyRequests`, `DUPLICATE_FIELD`, `JAMF_INVALID_PAYLOAD`, …).
    pub code: String,
    pub message: String,
    /// The platform's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
}

impl CallError {
    /// An error answer with an HTTP status.
    pub fn http(
        operation: &str,
        status: u16,
        code: impl Into<String>,
        message: impl Into<String>,
        retry_after: Option<Duration>,
    ) -> CallError {
        CallError {
            class: ErrorClass::of_status(status),
            operation: operation.to_owned(),
            status: Some(status),
            code: code.into(),
            message: message.into(),
            retry_after,
        }
    }

    /// No usable answer (timeout, dropped connection, unreadable body): transient.
    pub fn no_answer(operation: &str, why: impl Into<String>) -> CallError {
        CallError {
            class: ErrorClass::Transient,
            operation: operation.to_owned(),
            status: None,
            code: "NO_ANSWER".into(),
            message: why.into(),
            retry_after: None,
        }
    }

    /// A request the connector refuses to send (validated before the call): permanent.
    pub fn invalid_payload(operation: &str, code: &str, message: impl Into<String>) -> CallError {
        CallError {
            class: ErrorClass::Permanent,
            operation: operation.to_owned(),
            status: Some(400),
            code: code.into(),
            message: message.into(),
            retry_after: None,
        }
    }

    /// Not a failure: the work goes on in a later invocation (a long upload past this one's
    /// budget, a platform step still processing). The message comes back after `after`, and the
    /// circuit breaker does not count it.
    pub fn resume_later(operation: &str, why: impl Into<String>, after: Duration) -> CallError {
        CallError {
            class: ErrorClass::Transient,
            operation: operation.to_owned(),
            status: None,
            code: RESUME_LATER.into(),
            message: why.into(),
            retry_after: Some(after),
        }
    }

    /// Whether this is [`CallError::resume_later`].
    pub fn is_resume_later(&self) -> bool {
        self.code == RESUME_LATER
    }

    /// Parses a `Retry-After` header: seconds, possibly fractional (Graph sends `2.128`).
    pub fn parse_retry_after(header: Option<&str>) -> Option<Duration> {
        let secs: f64 = header?.trim().parse().ok()?;
        (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_classify_as_the_specification_says() {
        assert_eq!(ErrorClass::of_status(429), ErrorClass::Transient);
        assert_eq!(ErrorClass::of_status(503), ErrorClass::Transient);
        assert_eq!(ErrorClass::of_status(409), ErrorClass::Permanent);
        assert_eq!(ErrorClass::of_status(400), ErrorClass::Permanent);
        assert_eq!(ErrorClass::of_status(404), ErrorClass::Permanent);
        assert_eq!(ErrorClass::of_status(403), ErrorClass::PolicyViolation);
        assert_eq!(ErrorClass::of_status(401), ErrorClass::Unauthorized);
    }

    #[test]
    fn retry_after_may_be_fractional() {
        assert_eq!(
            CallError::parse_retry_after(Some("2.128")),
            Some(Duration::from_millis(2128))
        );
        assert_eq!(
            CallError::parse_retry_after(Some("7")),
            Some(Duration::from_secs(7))
        );
        assert_eq!(CallError::parse_retry_after(Some("soon")), None);
        assert_eq!(CallError::parse_retry_after(None), None);
    }
}
