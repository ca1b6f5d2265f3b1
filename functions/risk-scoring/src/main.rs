//! Risk scoring (SQS scoring queue → Lambda, partial batch failures).
//!
//! Configuration: `TABLE_NAME`, `INTUNE_QUEUE_URL`, `JAMF_QUEUE_URL` (a deployment cleared for its
//! first ring is dispatched straight away). Builds its DynamoDB and SQS clients once.

// The nested async use cases make deep future types.
#![recursion_limit = "256"]

use aws_lambda_events::sqs::SqsEvent;
use eucora_aws::config;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use risk_scoring::handle_batch;

#[tokio::main]
async fn main() -> Result<(), Error> {
    config::init_logging();
    let svc = config::services(config::connector_queue_urls()?).await?;
    let svc = &svc;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(handle_batch(svc, event.payload, config::now()).await)
    }))
    .await
}
