//! The HTTP handler: a plain async function over the use cases, tested without the runtime.

use eucora_api::{
    ApiError, RouteId, authorize, body_text, openapi, query, response, routes::path_param,
};
use eucora_domain::{DeploymentId, Timestamp};
use eucora_service::ports::{DeploymentStore, Queue};
use eucora_service::usecases::Services;
use eucora_service::usecases::read::{self, DeploymentView};
use eucora_service::usecases::submit::{SubmitInput, submit};
use lambda_http::{Body, Request, Response};

pub const FUNCTION: &str = "evidence-intake";

fn deployment_id(req: &Request) -> Result<DeploymentId, ApiError> {
    let raw = path_param(req, "id")?;
    DeploymentId::parse(raw).map_err(|e| ApiError::bad_field("id", &e.to_string()))
}

/// Serves one request. `new_id` names the deployment if the request creates one.
pub async fn handle<S: DeploymentStore, Q: Queue>(
    svc: &Services<S, Q>,
    req: Request,
    now: Timestamp,
    new_id: DeploymentId,
) -> Response<Body> {
    match serve(svc, &req, now, new_id).await {
        Ok(r) => r,
        Err(e) => response::error(&e),
    }
}

async fn serve<S: DeploymentStore, Q: Queue>(
    svc: &Services<S, Q>,
    req: &Request,
    now: Timestamp,
    new_id: DeploymentId,
) -> Result<Response<Body>, ApiError> {
    let (actor, route) = authorize(req, FUNCTION)?;
    match route.id {
        RouteId::SubmitDeployment => {
            let key = req
                .headers()
                .get("idempotency-key")
                .map(|v| v.to_str().unwrap_or("\u{0}"));
            let out = submit(
                svc,
                &actor,
                SubmitInput {
                    body: body_text(req)?,
                    idempotency_key: key,
                    new_id,
                    now,
                },
            )
            .await?;
            let status = if out.replayed { 200 } else { 201 };
            let mut r = response::json(status, &DeploymentView::of(&out.record, now, &svc.policy));
            if let Ok(v) = out.record.correlation_id().as_str().parse() {
                r.headers_mut().insert("x-correlation-id", v);
            }
            if let Ok(v) = format!("/v1/deployments/{}", out.record.id).parse() {
                r.headers_mut().insert("location", v);
            }
            Ok(r)
        }
        RouteId::GetDeployment => Ok(response::json(
            200,
            &read::deployment(svc, &actor, &deployment_id(req)?, now).await?,
        )),
        RouteId::GetAudit => {
            let id = deployment_id(req)?;
            let q = query::AuditQuery::of(req)?;
            let page = read::audit_page(svc, &actor, &id, q.after, q.limit).await?;
            Ok(response::json(
                200,
                &response::AuditTrail {
                    events: page.events,
                    next_cursor: page.next.map(query::cursor),
                },
            ))
        }
        RouteId::VerifyAudit => {
            let id = deployment_id(req)?;
            let from = query::checkpoint(req)?;
            Ok(response::json(
                200,
                &read::verify_trail_from(svc, &actor, &id, from.as_ref()).await?,
            ))
        }
        RouteId::OpenApi => Ok(response::json(200, &openapi::document())),
        _ => Err(ApiError::not_found("route not served here")),
    }
}
