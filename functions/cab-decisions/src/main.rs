//! CAB decisions and exceptions (API Gateway HTTP API → Lambda).
//!
//! Configuration: `TABLE_NAME`, `INTUNE_QUEUE_URL`, `JAMF_QUEUE_URL` (an approval that reaches
//! quorum dispatches the ring). Builds its DynamoDB and SQS clients once.
#![recursion_limit = "256"]

mod handler;

use eucora_aws::{DynamoStore, QueueUrls, SqsQueue, config};
use eucora_domain::ExceptionId;
use eucora_domain::policy::Policy;
use eucora_service::usecases::Services;
use lambda_http::{Error, Request, run, service_fn};

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
    run(service_fn(move |req: Request| async move {
        let id = ExceptionId::parse(format!("exc-{}", uuid::Uuid::now_v7().simple()))?;
        Ok::<_, Error>(handler::handle(svc, req, config::now(), id).await)
    }))
    .await
}

#[cfg(test)]
mod tests;
