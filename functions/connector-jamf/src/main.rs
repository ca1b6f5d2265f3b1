//! The Jamf connector (SQS jamf queue → Lambda, partial batch failures).
//!
//! Configuration: `TABLE_NAME`, `QUEUE_URL` (its own queue, for retry delays), `DLQ_URL`,
//! `PLATFORM_SECRET_ARN` (`{"server_url", "client_id", "client_secret"}` and/or
//! `{"server_url", "username", "password"}`), `RING_GROUPS` (`{"1": "<smart group id>", …}`).
//! Builds its clients once; the secret is read once per warm container and again on a 401.
#![recursion_limit = "256"]

use aws_lambda_events::sqs::SqsEvent;
use eucora_aws::connector_lambda::ConnectorRuntime;
use eucora_jamf::{JamfClient, JamfConfig};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    eucora_aws::config::init_logging();
    let rt = ConnectorRuntime::from_env(|secrets, artifacts| {
        JamfClient::new(&JamfConfig::default(), secrets, artifacts)
    })
    .await?;
    let rt = &rt;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(rt.handle(event.payload).await)
    }))
    .await
}
