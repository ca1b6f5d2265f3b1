//! Evidence intake (API Gateway HTTP API → Lambda).
//!
//! Configuration: `TABLE_NAME`, `SCORING_QUEUE_URL`. Builds its DynamoDB and SQS clients once.

use evidence_intake::handler;

use eucora_aws::{QueueUrls, config};
use eucora_domain::DeploymentId;
use lambda_http::{Error, Request, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    config::init_logging();
    let queues = QueueUrls {
        scoring: Some(config::env("SCORING_QUEUE_URL")?),
        ..QueueUrls::default()
    };
    let svc = config::services(queues).await?;
    let svc = &svc;
    run(service_fn(move |req: Request| async move {
        let id = DeploymentId::parse(format!("dep-{}", uuid::Uuid::now_v7().simple()))?;
        Ok::<_, Error>(handler::handle(svc, req, config::now(), id).await)
    }))
    .await
}
