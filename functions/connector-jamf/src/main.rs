//! The Jamf connector (SQS jamf queue → Lambda, partial batch failures).
//!
//! Configuration: `TABLE_NAME`, `QUEUE_URL` (its own queue, for retry delays), `DLQ_URL`,
//! `PLATFORM_SECRET_ARN` (`{"server_url", "client_id", "client_secret"}` and/or
//! `{"server_url", "username", "password"}`), `RING_GROUPS` (`{"1": "<smart group id>", …}`),
//! `JAMF_CONNECTOR_CONTAINERS` (the event source's `MaximumConcurrency`: each container keeps to
//! its share of Jamf's 5 concurrent connections).
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
        JamfClient::new(&JamfConfig::from_env()?, secrets, artifacts)
    })
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
    use eucora_domain::DeploymentId;
    use eucora_service::ports::DeploymentStore;
    use eucora_system_tests::VirtualQueue;
    use eucora_system_tests::platforms::Platforms;

    /// The sample batch (a publish, and a rollback the deployment's state does not authorise)
    /// for the multi-platform sample, against the simulator.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_sample_batch_publishes_and_refuses_an_unauthorised_rollback() {
        let svc = testing::services();
        let artifacts = MemoryArtifacts::default();
        let clock = eucora_system_tests::test_clock();
        let p = Platforms::start(&svc.store, &artifacts, 3, &clock).await;
        let id = "dep-01JD7W4Q5T0000000000000004";
        testing::dispatched(
            &svc,
            &artifacts,
            "multi-platform",
            id,
            "dp-20261123-0004",
            |_, b| b.to_vec(),
        )
        .await;
        let path = format!(
            "{}/../../events/sqs/jamf-command.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let event: SqsEvent =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let control = VirtualQueue::new(50, &clock);
        let response = handle_batch(&p.jamf, &control, event, control.now()).await;
        assert!(response.batch_item_failures.is_empty());
        assert!(control.dead_lettered().is_empty());
        let record = svc
            .store
            .get(&DeploymentId::parse(id).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert!(
            record
                .confirmed_platforms
                .contains(&eucora_domain::evidence::Platform::Macos)
        );
        let policies = p.jamf_sim.policies();
        assert_eq!(policies.len(), 1);
        assert_eq!(
            policies[0].scope_group_ids,
            vec![41],
            "the rollback was not carried out"
        );
    }
}
