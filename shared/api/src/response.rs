//! JSON responses, and the API Gateway v2 response for functions that are not run by
//! `lambda_http` (the gate function also receives scheduled events).

use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use serde::Serialize;

use crate::error::ApiError;

/// `GET /v1/deployments/{id}/audit`: one page of the deployment's audit trail, in order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditTrail {
    /// At most `limit` events, in order.
    pub events: Vec<eucora_domain::audit::AuditEvent>,
    /// The next page's `cursor`; `null` at the end of the trail.
    #[schema(required = true, pattern = "^[0-9a-f]{16}$")]
    pub next_cursor: Option<String>,
}

/// `GET /v1/cab/queue`: the deployments awaiting a CAB decision.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CabQueue {
    pub awaiting_cab: Vec<eucora_service::usecases::cab::CabQueueEntry>,
}

/// A JSON response with `status`.
pub fn json<T: Serialize>(status: u16, value: &T) -> Response<Body> {
    let body = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
    let mut r = Response::new(Body::Text(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The error's JSON response.
pub fn error(e: &ApiError) -> Response<Body> {
    if e.status >= 500 {
        tracing::error!(code = %e.code, status = e.status, "request failed");
    } else {
        tracing::info!(code = %e.code, status = e.status, field = ?e.field, "request refused");
    }
    let mut r = json(e.status, &e.body());
    if !e.allow.is_empty()
        && let Ok(v) = HeaderValue::from_str(&e.allow.join(", "))
    {
        r.headers_mut().insert(header::ALLOW, v);
    }
    r
}

/// A response from either outcome.
pub fn from_result<T: Serialize>(status: u16, r: Result<T, ApiError>) -> Response<Body> {
    match r {
        Ok(v) => json(status, &v),
        Err(e) => error(&e),
    }
}

/// The API Gateway HTTP API (payload 2.0) response for `r`.
pub fn to_apigw_v2(r: Response<Body>) -> ApiGatewayV2httpResponse {
    let (parts, body) = r.into_parts();
    let mut out = ApiGatewayV2httpResponse::default();
    out.status_code = i64::from(parts.status.as_u16());
    out.headers = parts.headers;
    out.body = match body {
        Body::Empty => None,
        other => Some(other),
    };
    out.is_base64_encoded = false;
    out
}
