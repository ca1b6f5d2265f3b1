//! Gate evaluation (EventBridge Scheduler every 5 minutes → Lambda) and incidents (API Gateway
//! HTTP API → Lambda).
//!
//! Configuration: `TABLE_NAME`, `INTUNE_QUEUE_URL`, `JAMF_QUEUE_URL` (promotion dispatches the
//! next ring). Builds its DynamoDB and SQS clients once.
#![recursion_limit = "256"]

mod handler;

use eucora_aws::{DynamoStore, QueueUrls, SqsQueue, config};
use eucora_domain::IncidentId;
use eucora_domain::policy::Policy;
use eucora_service::usecases::Services;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    config::init_logging();
    let table = config::env("TABLE_NAME")?;
    let urls = QueueUrls {
        intune: Some(config::env("INTUNE_QUEUE_URL")?),
        jamf: Some(config::env("JAMF_QUEUE_URL")?),
        scoring: None,
    };
    let sdk = config::load().await;
    let svc = Services {
        store: DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table),
        queue: SqsQueue::new(aws_sdk_sqs::Client::new(&sdk), urls),
        policy: Policy::bundled(),
    };
    let svc = &svc;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let id = IncidentId::parse(format!("inc-{}", uuid::Uuid::now_v7().simple()))?;
        Ok::<_, Error>(handler::invoke(svc, event.payload, config::now(), id).await?)
    }))
    .await
}

#[cfg(test)]
mod tests;
