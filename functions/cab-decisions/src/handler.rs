//! The HTTP handler: a plain async function over the use cases, tested without the runtime.

use eucora_api::{ApiError, RouteId, authorize, bodies, body_text, response, routes::path_param};
use eucora_domain::{DeploymentId, ExceptionId, Timestamp};
use eucora_service::ports::{DeploymentStore, Queue};
use eucora_service::usecases::{Services, cab, exceptions};
use lambda_http::{Body, Request, Response};

pub const FUNCTION: &str = "cab-decisions";

fn deployment_id(req: &Request) -> Result<DeploymentId, ApiError> {
    DeploymentId::parse(path_param(req, "id")?)
        .map_err(|e| ApiError::bad_field("id", &e.to_string()))
}

fn exception_id(req: &Request) -> Result<ExceptionId, ApiError> {
    ExceptionId::parse(path_param(req, "exceptionId")?)
        .map_err(|e| ApiError::bad_field("exceptionId", &e.to_string()))
}

/// Serves one request. `new_exception_id` names an exception if the request opens one.
pub async fn handle<S: DeploymentStore, Q: Queue>(
    svc: &Services<S, Q>,
    req: Request,
    now: Timestamp,
    new_exception_id: ExceptionId,
) -> Response<Body> {
    match serve(svc, &req, now, new_exception_id).await {
        Ok(r) => r,
        Err(e) => response::error(&e),
    }
}

async fn serve<S: DeploymentStore, Q: Queue>(
    svc: &Services<S, Q>,
    req: &Request,
    now: Timestamp,
    new_exception_id: ExceptionId,
) -> Result<Response<Body>, ApiError> {
    let (actor, route) = authorize(req, FUNCTION)?;
    let status = route.success;
    match route.id {
        RouteId::CabQueue => {
            let entries = cab::queue(svc, &actor, now).await?;
            Ok(response::json(
                status,
                &response::CabQueue {
                    awaiting_cab: entries,
                },
            ))
        }
        RouteId::CabDecision => {
            let input = bodies::decision(body_text(req)?)?;
            let id = deployment_id(req)?;
            Ok(response::json(
                status,
                &cab::decide(svc, &actor, &id, input, now).await?,
            ))
        }
        RouteId::CabWithdrawal => {
            let input = bodies::withdrawal(body_text(req)?)?;
            let id = deployment_id(req)?;
            Ok(response::json(
                status,
                &cab::withdraw(svc, &actor, &id, input, now).await?,
            ))
        }
        RouteId::RequestException => {
            let input = bodies::exception_request(body_text(req)?)?;
            let id = deployment_id(req)?;
            Ok(response::json(
                status,
                &exceptions::request(svc, &actor, &id, input, new_exception_id, now).await?,
            ))
        }
        RouteId::ApproveException => {
            let (id, eid) = (deployment_id(req)?, exception_id(req)?);
            Ok(response::json(
                status,
                &exceptions::approve(svc, &actor, &id, &eid, now).await?,
            ))
        }
        RouteId::RejectException => {
            let reason = bodies::reason(body_text(req)?)?;
            let (id, eid) = (deployment_id(req)?, exception_id(req)?);
            Ok(response::json(
                status,
                &exceptions::reject(svc, &actor, &id, &eid, &reason, now).await?,
            ))
        }
        RouteId::ExtendException => {
            let days = bodies::extension(body_text(req)?)?;
            let (id, eid) = (deployment_id(req)?, exception_id(req)?);
            Ok(response::json(
                status,
                &exceptions::extend(svc, &actor, &id, &eid, days, now).await?,
            ))
        }
        _ => Err(ApiError::not_found("route not served here")),
    }
}
