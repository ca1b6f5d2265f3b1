//! Evidence intake (API Gateway HTTP API → Lambda).
//!
//! Configuration: `TABLE_NAME`, `SCORING_QUEUE_URL`. Builds its DynamoDB and SQS clients once.

mod handler;

use eucora_aws::{DynamoStore, QueueUrls, SqsQueue, config};
use eucora_domain::DeploymentId;
use eucora_domain::policy::Policy;
use eucora_service::usecases::Services;
use lambda_http::{Error, Request, run, service_fn};

/// This function's configuration, read once.
struct Config {
    table: String,
    scoring_queue_url: String,
}

impl Config {
    fn from_env() -> Result<Config, config::MissingEnv> {
        Ok(Config {
            table: config::env("TABLE_NAME")?,
            scoring_queue_url: config::env("SCORING_QUEUE_URL")?,
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    config::init_logging();
    let cfg = Config::from_env()?;
    let sdk = config::load().await;
    let svc = Services {
        store: DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), cfg.table),
        queue: SqsQueue::new(
            aws_sdk_sqs::Client::new(&sdk),
            QueueUrls {
                scoring: Some(cfg.scoring_queue_url),
                ..QueueUrls::default()
            },
        ),
        policy: Policy::bundled(),
    };
    let svc = &svc;
    run(service_fn(move |req: Request| async move {
        let id = DeploymentId::parse(format!("dep-{}", uuid::Uuid::now_v7().simple()))?;
        Ok::<_, Error>(handler::handle(svc, req, config::now(), id).await)
    }))
    .await
}

#[cfg(test)]
mod tests;
