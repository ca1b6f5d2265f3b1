//! The Intune connector (SQS intune queue → Lambda, partial batch failures).
//!
//! Configuration: `TABLE_NAME`, `QUEUE_URL` (its own queue, for retry delays), `DLQ_URL`,
//! `PLATFORM_SECRET_ARN` (`{"tenant_id", "client_id", "client_secret"}`), `RING_GROUPS`
//! (`{"1": "<Entra ID group id>", …}`), and optionally `GRAPH_BASE_URL`, `LOGIN_BASE_URL`.
//! Builds its clients once; the secret is read once per warm container and again on a 401.
#![recursion_limit = "256"]

use aws_lambda_events::sqs::SqsEvent;
use eucora_aws::connector_lambda::ConnectorRuntime;
use eucora_intune::{IntuneClient, IntuneConfig};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    eucora_aws::config::init_logging();
    let defaults = IntuneConfig::default();
    let cfg = IntuneConfig {
        graph_base: std::env::var("GRAPH_BASE_URL").unwrap_or(defaults.graph_base.clone()),
        login_base: std::env::var("LOGIN_BASE_URL").unwrap_or(defaults.login_base.clone()),
        ..defaults
    };
    let rt =
        ConnectorRuntime::from_env(|secrets, artifacts| IntuneClient::new(cfg, secrets, artifacts))
            .await?;
    let rt = &rt;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(rt.handle(event.payload).await)
    }))
    .await
}
