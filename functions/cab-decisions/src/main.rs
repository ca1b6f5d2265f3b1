//! CAB decisions and exceptions (API Gateway HTTP API → Lambda).
//!
//! Configuration: `TABLE_NAME`, `INTUNE_QUEUE_URL`, `JAMF_QUEUE_URL` (an approval that reaches
//! quorum dispatches the ring). Builds its DynamoDB and SQS clients once.
#![recursion_limit = "256"]

use cab_decisions::handler;

use eucora_aws::config;
use eucora_domain::ExceptionId;
use lambda_http::{Error, Request, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    config::init_logging();
    let svc = config::services(config::connector_queue_urls()?).await?;
    let svc = &svc;
    run(service_fn(move |req: Request| async move {
        let id = ExceptionId::parse(format!("exc-{}", uuid::Uuid::now_v7().simple()))?;
        Ok::<_, Error>(handler::handle(svc, req, config::now(), id).await)
    }))
    .await
}
