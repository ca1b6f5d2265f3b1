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
    // A publish streams a package through the platform client: its future is large, so it
    // lives on the heap rather than on the stack.
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(Box::pin(rt.handle(event.payload)).await)
    }))
    .await
}

#[cfg(test)]
mod tests {
    use aws_lambda_events::sqs::SqsEvent;
    use eucora_aws::connector_lambda::handle_batch;
    use eucora_connector::artifact::MemoryArtifacts;
    use eucora_connector::testing;
    use eucora_domain::lifecycle::DeploymentState;
    use eucora_domain::{DeploymentId, Ring};
    use eucora_service::ports::DeploymentStore;
    use eucora_system_tests::VirtualQueue;
    use eucora_system_tests::platforms::Platforms;

    /// The sample batch (publish, then a status query) for the low-risk sample, against the simulator.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_sample_batch_publishes_and_reads_status() {
        let svc = testing::services();
        let artifacts = MemoryArtifacts::default();
        let clock = eucora_system_tests::test_clock();
        let p = Platforms::start(&svc.store, &artifacts, 3, &clock).await;
        let id = "dep-01JD7W4Q5T0000000000000001";
        testing::dispatched(
            &svc,
            &artifacts,
            "low-risk",
            id,
            "dp-20261123-0001",
            |_, b| eucora_intune::intunewin::build("setup.exe", b),
        )
        .await;
        let path = format!(
            "{}/../../events/sqs/intune-command.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let event: SqsEvent =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let control = VirtualQueue::new(50, &clock);
        let response = handle_batch(&p.intune, &control, event, control.now()).await;
        assert!(response.batch_item_failures.is_empty());
        assert!(control.dead_lettered().is_empty());
        let record = svc
            .store
            .get(&DeploymentId::parse(id).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            record.lifecycle.state,
            DeploymentState::InRing { ring: Ring::Canary }
        );
        assert_eq!(p.intune_sim.apps().len(), 1);
    }
}
