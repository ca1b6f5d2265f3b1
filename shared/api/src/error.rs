//! One place that turns every failure into a JSON response:
//! `{"error": {"code", "message", "field", "fields": [{"field", "problem"}]}}`.
//! Internals (SDK messages, stack traces) never reach the client; they are logged.

use eucora_domain::FieldError;
use eucora_domain::evidence::EvidenceError;
use eucora_service::Forbidden;
use eucora_service::ports::StoreError;
use eucora_service::usecases::Common;
use eucora_service::usecases::cab::DecideError;
use eucora_service::usecases::exceptions::ExceptionOpError;
use eucora_service::usecases::gates::IncidentError;
use eucora_service::usecases::rollback::RollbackError;
use eucora_service::usecases::submit::SubmitError;
use serde::Serialize;

/// An error answer: what went wrong, and every offending field. It is sent inside an
/// [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ApiError {
    #[serde(skip)]
    pub status: u16,
    /// The methods the path serves, for a 405 (sent as the `Allow` header).
    #[serde(skip)]
    pub allow: Box<[&'static str]>,
    /// What went wrong, for programs: `INVALID_REQUEST`, `EVIDENCE_INCOMPLETE`, `UNAUTHENTICATED`,
    /// `FORBIDDEN`, `NOT_FOUND`, `METHOD_NOT_ALLOWED`, `IDEMPOTENCY_CONFLICT`, `CORRELATION_ID_TAKEN`, `INCIDENT_OPEN`, `NOT_AWAITING_CAB`,
    /// `SCOPE_CHANGE_REQUIRED`, `ALREADY_DECIDED`, `NO_STANDING_APPROVAL`, `ILLEGAL_TRANSITION`, `CONCURRENT_CHANGE`, `UNAVAILABLE`,
    /// `NOT_QUEUED`, `INTERNAL`, …
    #[schema(examples("EVIDENCE_INCOMPLETE"))]
    pub code: String,
    pub message: String,
    /// The first offending field, when the error is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Every offending field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldError>,
}

impl ApiError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            allow: Box::default(),
            code: code.into(),
            message: message.into(),
            field: None,
            fields: Vec::new(),
        }
    }

    pub fn unauthenticated(message: &str) -> ApiError {
        ApiError::new(401, "UNAUTHENTICATED", message)
    }

    pub fn forbidden(f: &Forbidden) -> ApiError {
        ApiError::new(403, "FORBIDDEN", f.to_string())
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(404, "NOT_FOUND", message)
    }

    /// A 405 for a path that exists but does not serve the method; `allow` lists those it serves.
    pub fn method_not_allowed(method: &str, path: &str, allow: Vec<&'static str>) -> ApiError {
        let mut e = ApiError::new(
            405,
            "METHOD_NOT_ALLOWED",
            format!(
                "{path} does not serve {method}; it serves {}",
                allow.join(", ")
            ),
        );
        e.allow = allow.into_boxed_slice();
        e
    }

    /// A 400 naming every bad field.
    pub fn invalid(code: &str, message: &str, fields: Vec<FieldError>) -> ApiError {
        ApiError {
            status: 400,
            allow: Box::default(),
            code: code.into(),
            message: message.into(),
            field: fields.first().map(|f| f.field.clone()),
            fields,
        }
    }

    /// A 400 about one field.
    pub fn bad_field(field: &str, problem: &str) -> ApiError {
        ApiError::invalid(
            "INVALID_REQUEST",
            &format!("{field}: {problem}"),
            vec![FieldError::new(field, problem)],
        )
    }

    /// 413: what the request adds does not fit in the deployment's record (naming the field).
    pub fn full(full: &eucora_service::budget::RecordFull) -> ApiError {
        let mut e = ApiError::new(413, "DEPLOYMENT_FULL", full.to_string());
        e.field = Some(full.field.clone());
        e.fields = vec![FieldError::new(&full.field, full.to_string())];
        e
    }

    /// 413: the request body is over the route's limit (naming the field that takes the most).
    pub fn too_large(field: &str, size: usize, limit: usize) -> ApiError {
        let problem = format!(
            "the request is {size} bytes, over this route's limit of {limit} bytes; {field} takes the most"
        );
        let mut e = ApiError::new(413, "PAYLOAD_TOO_LARGE", problem.clone());
        e.field = Some(field.to_owned());
        e.fields = vec![FieldError::new(field, problem)];
        e
    }

    pub fn conflict(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(409, code, message)
    }

    /// Storage trouble: 503 if worth retrying, else 500. The details go to the log only.
    pub fn store(e: &StoreError) -> ApiError {
        tracing::error!(error = %e, "storage error");
        match e {
            StoreError::Conflict => ApiError::conflict(
                "CONCURRENT_CHANGE",
                "the deployment changed meanwhile; repeat the request",
            ),
            StoreError::Retryable(_) => {
                ApiError::new(503, "UNAVAILABLE", "storage is busy; repeat the request")
            }
            StoreError::Failed(_) => ApiError::internal(),
        }
    }

    pub fn internal() -> ApiError {
        ApiError::new(
            500,
            "INTERNAL",
            "internal error; the request id identifies it in the logs",
        )
    }

    pub fn body(&self) -> ErrorBody<'_> {
        ErrorBody { error: self }
    }
}

/// Every error the functions answer: `{"error": {...}}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    #[schema(value_type = ApiError)]
    pub error: &'a ApiError,
}

/// What API Gateway answers by itself, before any function runs (for example 401 when the JWT
/// authorizer refuses the token): `{"message": "Unauthorized"}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GatewayMessage {
    #[schema(examples("Unauthorized"))]
    pub message: String,
}

impl From<Common> for ApiError {
    fn from(c: Common) -> Self {
        match c {
            Common::Forbidden(f) => ApiError::forbidden(&f),
            Common::NotFound(id) => ApiError::not_found(format!("deployment {id} not found")),
            Common::Store(e) => ApiError::store(&e),
        }
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::Forbidden(f) => ApiError::forbidden(&f),
            SubmitError::Evidence(ev) => match &ev {
                EvidenceError::NotJson(m) => {
                    ApiError::bad_field("(body)", &format!("not valid JSON: {m}"))
                }
                EvidenceError::Incomplete(fields) => ApiError::invalid(
                    ev.code(),
                    "the evidence pack is incomplete or invalid",
                    fields.clone(),
                ),
            },
            SubmitError::InvalidKey => ApiError::bad_field(
                "Idempotency-Key",
                "must be 1 to 128 printable ASCII characters",
            ),
            SubmitError::KeyReused { key, deployment_id } => ApiError::conflict(
                "IDEMPOTENCY_CONFLICT",
                format!(
                    "Idempotency-Key {key} was already used for a different request (deployment {deployment_id}); send a new key or the same body"
                ),
            ),
            SubmitError::CorrelationTaken {
                correlation_id,
                deployment_id,
            } => ApiError::conflict(
                "CORRELATION_ID_TAKEN",
                match deployment_id {
                    Some(d) => format!(
                        "correlation_id {correlation_id} already names deployment {d}; a correlation id names one change"
                    ),
                    None => format!(
                        "correlation_id {correlation_id} already names another deployment; a correlation id names one change"
                    ),
                },
            ),
            SubmitError::Exception(x) => ApiError::bad_field("evidence.exceptions", &x.to_string()),
            SubmitError::Store(s) => ApiError::store(&s),
            SubmitError::Full(full) => ApiError::full(&full),
            SubmitError::NotQueued {
                deployment_id,
                source,
            } => {
                tracing::error!(%deployment_id, error = %source, "scoring request not queued");
                ApiError::new(
                    503,
                    "NOT_QUEUED",
                    format!(
                        "deployment {deployment_id} is stored but not yet queued for scoring; repeat the same request"
                    ),
                )
            }
        }
    }
}

impl From<DecideError> for ApiError {
    fn from(e: DecideError) -> Self {
        match e {
            DecideError::Forbidden(f) => ApiError::forbidden(&f),
            DecideError::NotFound(id) => ApiError::not_found(format!("deployment {id} not found")),
            DecideError::NotAwaiting { .. } => {
                ApiError::conflict("NOT_AWAITING_CAB", e.to_string())
            }
            DecideError::Decision(d) => {
                let status = match d.code() {
                    "FORBIDDEN" => 403,
                    "INVALID_DECISION" => 400,
                    _ => 409,
                };
                let mut err = ApiError::new(status, d.code(), d.to_string());
                if status == 400 {
                    use eucora_domain::cab::DecisionError as D;
                    let field = match d {
                        D::RejectionWithoutReason => "comment",
                        D::WithdrawalWithoutReason => "reason",
                        _ => "ring",
                    };
                    err.field = Some(field.into());
                    err.fields = vec![FieldError::new(field, d.to_string())];
                } else if d.code() == "SCOPE_CHANGE_REQUIRED" {
                    err.field = Some("evidence_hash".into());
                }
                err
            }
            DecideError::Transition(t) => ApiError::conflict("ILLEGAL_TRANSITION", t.to_string()),
            DecideError::Store(s) => ApiError::store(&s),
            DecideError::Full(full) => ApiError::full(&full),
            DecideError::Queue(q) => {
                tracing::error!(error = %q, "dispatch not queued");
                ApiError::new(
                    503,
                    "NOT_QUEUED",
                    "the decision is recorded; dispatch will be retried by the gate schedule",
                )
            }
        }
    }
}

impl From<ExceptionOpError> for ApiError {
    fn from(e: ExceptionOpError) -> Self {
        match e {
            ExceptionOpError::Forbidden(f) => ApiError::forbidden(&f),
            ExceptionOpError::NotFound(_) | ExceptionOpError::ExceptionNotFound(_) => {
                ApiError::not_found(e.to_string())
            }
            ExceptionOpError::Finished(_) => {
                ApiError::conflict("DEPLOYMENT_FINISHED", e.to_string())
            }
            ExceptionOpError::Exception(x) => {
                let status = match x.code() {
                    "FORBIDDEN" => 403,
                    "CONFLICT" => 409,
                    _ => 400,
                };
                let mut err = ApiError::new(status, x.code(), x.to_string());
                if status == 400 {
                    use eucora_domain::exception::ExceptionError as X;
                    let field = match x {
                        X::GateOverrideNeedsScope | X::GateNotOverridable(_) => "gate",
                        X::ExpiryTooLong { .. } => "expires_in_days",
                        X::ExtensionTooLong { .. } | X::TooManyExtensions(_) => "days",
                        X::RejectionWithoutReason => "reason",
                        _ => "(body)",
                    };
                    err.field = Some(field.into());
                    err.fields = vec![FieldError::new(field, x.to_string())];
                }
                err
            }
            ExceptionOpError::Transition(t) => {
                ApiError::conflict("ILLEGAL_TRANSITION", t.to_string())
            }
            ExceptionOpError::Store(s) => ApiError::store(&s),
            ExceptionOpError::Full(full) => ApiError::full(&full),
            ExceptionOpError::Queue(q) => {
                tracing::error!(error = %q, "dispatch not queued");
                ApiError::new(
                    503,
                    "NOT_QUEUED",
                    "the exception is recorded; dispatch will be retried by the gate schedule",
                )
            }
        }
    }
}

impl From<IncidentError> for ApiError {
    fn from(e: IncidentError) -> Self {
        match e {
            IncidentError::Forbidden(f) => ApiError::forbidden(&f),
            IncidentError::NotFound(_) | IncidentError::IncidentNotFound(_) => {
                ApiError::not_found(e.to_string())
            }
            IncidentError::AlreadyResolved(_) => {
                ApiError::conflict("ALREADY_RESOLVED", e.to_string())
            }
            IncidentError::Finished(_) => ApiError::conflict("DEPLOYMENT_FINISHED", e.to_string()),
            // Separation of duties: the caller may not clear this incident (403, saying who may).
            IncidentError::Resolution(r) => ApiError::new(403, "FORBIDDEN", r.to_string()),
            IncidentError::Transition(t) => ApiError::conflict("ILLEGAL_TRANSITION", t.to_string()),
            IncidentError::Store(s) => ApiError::store(&s),
            IncidentError::TooMany(_) => ApiError::conflict("TOO_MANY_INCIDENTS", e.to_string()),
        }
    }
}

impl From<RollbackError> for ApiError {
    fn from(e: RollbackError) -> Self {
        use eucora_domain::rollback::RollbackValidationError as V;
        match e {
            RollbackError::Forbidden(f) => ApiError::forbidden(&f),
            RollbackError::NotFound(_) => ApiError::not_found(e.to_string()),
            // Separation of duties: the submitter never validates their own rollback (403,
            // saying why).
            RollbackError::Validation(v @ (V::OwnSubmission(_) | V::RoleRequired)) => {
                ApiError::new(403, "FORBIDDEN", v.to_string())
            }
            RollbackError::Validation(V::Invalid { field, problem }) => {
                ApiError::bad_field(&field, &problem)
            }
            RollbackError::Validation(v @ V::Finished(_)) => {
                ApiError::conflict("DEPLOYMENT_FINISHED", v.to_string())
            }
            RollbackError::Full(f) => ApiError::full(&f),
            RollbackError::Store(s) => ApiError::store(&s),
        }
    }
}
