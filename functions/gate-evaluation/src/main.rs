//! Gate evaluation (EventBridge Scheduler every 5 minutes → Lambda) and incidents (API Gateway
//! HTTP API → Lambda).
//!
//! Configuration: `TABLE_NAME`, `INTUNE_QUEUE_URL`, `JAMF_QUEUE_URL` (promotion dispatches the
//! next ring); `GATE_RUN_BUDGET_SECONDS`, `GATE_RUN_CONCURRENCY` (how much one run does). Builds its DynamoDB and SQS clients once.
#![recursion_limit = "256"]

use gate_evaluation::handler;

use eucora_aws::config;
use eucora_domain::IncidentId;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    config::init_logging();
    let svc = config::services(config::connector_queue_urls()?).await?;
    let svc = &svc;
    let limits = handler::limits_from_env();
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let id = IncidentId::parse(format!("inc-{}", uuid::Uuid::now_v7().simple()))?;
        Ok::<_, Error>(handler::invoke_with(svc, event.payload, config::now(), id, limits).await?)
    }))
    .await
}
