//! One function, two triggers: the 5-minute schedule (an EventBridge Scheduled Event) runs the
//! gates; HTTP requests report and resolve incidents and record rollback validations. Both handlers are plain async functions.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use eucora_api::{ApiError, RouteId, authorize, bodies, body_text, response, routes::path_param};
use eucora_domain::{DeploymentId, IncidentId, Timestamp};
use eucora_service::ports::{DeploymentStore, GateRunStore, Queue, TelemetryStore};
use eucora_service::usecases::Services;
use eucora_service::usecases::gates::{
    RunLimits, RunReport, report_incident, resolve_incident, run,
};
use eucora_service::usecases::rollback::record_validation;
use lambda_http::{Body, Request, Response};
use serde_json::Value;

pub const FUNCTION: &str = "gate-evaluation";

/// An invocation that fails as a whole (Lambda reports it; the scheduler retries).
#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    #[error("neither an API Gateway request nor a Scheduled Event")]
    UnknownEvent,
    #[error("gate run failed: {0}")]
    Schedule(String),
}

/// Routes an invocation by its shape, with the default run limits.
pub async fn invoke<S: DeploymentStore + TelemetryStore + GateRunStore, Q: Queue>(
    svc: &Services<S, Q>,
    event: Value,
    now: Timestamp,
    new_incident_id: IncidentId,
) -> Result<Value, InvocationError> {
    invoke_with(svc, event, now, new_incident_id, RunLimits::default()).await
}

/// The run limits from the environment: `GATE_RUN_BUDGET_SECONDS` (default 40, for a 60-second
/// function) and `GATE_RUN_CONCURRENCY` (default 16).
pub fn limits_from_env() -> RunLimits {
    let read = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let mut limits = RunLimits::default();
    if let Some(secs) = read("GATE_RUN_BUDGET_SECONDS") {
        limits.budget = std::time::Duration::from_secs(secs);
        limits.lease = time::Duration::seconds(i64::try_from(secs).unwrap_or(40) * 2 + 10);
    }
    if let Some(n) = read("GATE_RUN_CONCURRENCY") {
        limits.concurrency = usize::try_from(n).unwrap_or(16).max(1);
    }
    limits
}

/// Routes an invocation by its shape.
pub async fn invoke_with<S: DeploymentStore + TelemetryStore + GateRunStore, Q: Queue>(
    svc: &Services<S, Q>,
    event: Value,
    now: Timestamp,
    new_incident_id: IncidentId,
    limits: RunLimits,
) -> Result<Value, InvocationError> {
    if event.get("requestContext").is_some() {
        let response = match lambda_http::request::from_str(&event.to_string()) {
            Ok(req) => http(svc, req, now, new_incident_id).await,
            Err(e) => response::error(&ApiError::bad_field("(request)", &e.to_string())),
        };
        return Ok(serde_json::to_value(response::to_apigw_v2(response)).unwrap_or_default());
    }
    if event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event") {
        let scheduled: EventBridgeEvent =
            serde_json::from_value(event).map_err(|_| InvocationError::UnknownEvent)?;
        let report = scheduled_run(svc, &scheduled, now, limits).await?;
        return Ok(serde_json::to_value(report).unwrap_or_default());
    }
    Err(InvocationError::UnknownEvent)
}

/// The scheduled run. Its lease is held in the run's name: the Scheduler's execution id (a
/// retried delivery of one execution is the same run), else the time it was due.
pub async fn scheduled_run<S: DeploymentStore + TelemetryStore + GateRunStore, Q: Queue>(
    svc: &Services<S, Q>,
    event: &EventBridgeEvent,
    now: Timestamp,
    limits: RunLimits,
) -> Result<RunReport, InvocationError> {
    tracing::info!(schedule = ?event.resources, "gate run");
    let run_id = event
        .id
        .clone()
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| format!("run-{}", now.unix_millis()));
    let report = run(svc, &run_id, now, limits)
        .await
        .map_err(|e| InvocationError::Schedule(e.to_string()))?;
    tracing::info!(
        evaluated = report.evaluated.len(),
        failed = report.failed.len(),
        deferred = report.deferred,
        overlapped = report.overlapped.is_some(),
        "gate run done"
    );
    Ok(report)
}

/// The incident and rollback-validation routes.
pub async fn http<S: DeploymentStore, Q: Queue>(
    svc: &Services<S, Q>,
    req: Request,
    now: Timestamp,
    new_incident_id: IncidentId,
) -> Response<Body> {
    match serve(svc, &req, now, new_incident_id).await {
        Ok(r) => r,
        Err(e) => response::error(&e),
    }
}

fn deployment_id(req: &Request) -> Result<DeploymentId, ApiError> {
    DeploymentId::parse(path_param(req, "id")?)
        .map_err(|e| ApiError::bad_field("id", &e.to_string()))
}

async fn serve<S: DeploymentStore, Q: Queue>(
    svc: &Services<S, Q>,
    req: &Request,
    now: Timestamp,
    new_incident_id: IncidentId,
) -> Result<Response<Body>, ApiError> {
    let (actor, route) = authorize(req, FUNCTION)?;
    match route.id {
        RouteId::ReportIncident => {
            let input = bodies::incident(body_text(req)?)?;
            let id = deployment_id(req)?;
            Ok(response::json(
                route.success,
                &report_incident(svc, &actor, &id, input, new_incident_id, now).await?,
            ))
        }
        RouteId::ResolveIncident => {
            let resolution = bodies::resolution(body_text(req)?)?;
            let id = deployment_id(req)?;
            let incident = IncidentId::parse(path_param(req, "incidentId")?)
                .map_err(|e| ApiError::bad_field("incidentId", &e.to_string()))?;
            Ok(response::json(
                route.success,
                &resolve_incident(svc, &actor, &id, &incident, &resolution, now).await?,
            ))
        }
        RouteId::ValidateRollback => {
            let input = bodies::rollback_validation(body_text(req)?)?;
            let id = deployment_id(req)?;
            Ok(response::json(
                route.success,
                &record_validation(svc, &actor, &id, input, now).await?,
            ))
        }
        _ => Err(ApiError::not_found("route not served here")),
    }
}
