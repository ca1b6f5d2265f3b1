//! Risk scoring's message handler, as a library: the Lambda binary (`main.rs`) runs it, and the
//! local stack calls the same handler.
// The nested async use cases make deep future types.
#![recursion_limit = "256"]

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use eucora_aws::consumer::{MessageFailure, each_message};
use eucora_domain::Timestamp;
use eucora_service::messages::{Body, Envelope};
use eucora_service::ports::{DeploymentStore, Queue};
use eucora_service::usecases::Services;
use eucora_service::usecases::score::score;

/// Handles one message.
pub async fn handle<S: DeploymentStore, Q: Queue>(
    svc: &Services<S, Q>,
    envelope: Envelope,
    now: Timestamp,
) -> Result<(), MessageFailure> {
    match envelope.body {
        Body::ScoreDeployment { deployment_id } => match score(svc, &deployment_id, now).await {
            Ok(state) => {
                tracing::info!(%deployment_id, %state, "scored");
                Ok(())
            }
            Err(e) if e.is_retryable() => Err(MessageFailure::retryable(e)),
            Err(e) => Err(MessageFailure::permanent(e)),
        },
        Body::ConnectorCommand(_) => Err(MessageFailure::permanent(
            "a connector command on the scoring queue",
        )),
    }
}

/// Handles a batch.
pub async fn handle_batch<S: DeploymentStore, Q: Queue>(
    svc: &Services<S, Q>,
    event: SqsEvent,
    now: Timestamp,
) -> SqsBatchResponse {
    each_message(event, |envelope| handle(svc, envelope, now)).await
}

#[cfg(test)]
mod tests {
    use eucora_domain::cab::Role;
    use eucora_domain::lifecycle::DeploymentState;
    use eucora_domain::{ActorId, DeploymentId, Ring};
    use eucora_service::Actor;
    use eucora_service::memory::Memory;
    use eucora_service::usecases::submit::{SubmitInput, submit};

    use super::*;

    fn event(name: &str) -> SqsEvent {
        let path = format!(
            "{}/../../events/sqs/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    fn now() -> Timestamp {
        Timestamp::parse("2026-11-23T09:00:00Z").unwrap()
    }

    async fn with_samples() -> Services<Memory, Memory> {
        let m = Memory::new();
        let svc = Services {
            store: m.clone(),
            queue: m,
            policy: eucora_domain::policy::Policy::bundled(),
        };
        let packager = Actor::new(ActorId::parse("packager-alice").unwrap(), [Role::Packaging]);
        for (sample, id) in [
            ("low-risk", "dep-01JD7W4Q5T0000000000000001"),
            ("high-risk", "dep-01JD7W4Q5T0000000000000002"),
        ] {
            let body = std::fs::read_to_string(format!(
                "{}/../../events/deployments/{sample}.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap();
            submit(
                &svc,
                &packager,
                SubmitInput {
                    body: &body,
                    idempotency_key: None,
                    new_id: DeploymentId::parse(id).unwrap(),
                    now: now(),
                },
            )
            .await
            .unwrap();
        }
        svc.queue.drain();
        svc
    }

    #[tokio::test]
    async fn the_sample_batch_scores_both_deployments() {
        let svc = with_samples().await;
        let out = handle_batch(&svc, event("score-deployment"), now()).await;
        assert!(out.batch_item_failures.is_empty());
        let low = svc
            .store
            .get(&DeploymentId::parse("dep-01JD7W4Q5T0000000000000001").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            low.lifecycle.state,
            DeploymentState::Dispatching { ring: Ring::Canary }
        );
        let high = svc
            .store
            .get(&DeploymentId::parse("dep-01JD7W4Q5T0000000000000002").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            high.lifecycle.state,
            DeploymentState::AwaitingCab { ring: Ring::Canary }
        );
        // A redelivered batch has no second effect.
        let versions = (low.version, high.version);
        let again = handle_batch(&svc, event("score-deployment"), now()).await;
        assert!(again.batch_item_failures.is_empty());
        let low = svc.store.get(&low.id).await.unwrap().unwrap();
        let high = svc.store.get(&high.id).await.unwrap().unwrap();
        assert_eq!((low.version, high.version), versions);
    }

    #[tokio::test]
    async fn a_poison_message_fails_alone() {
        let svc = with_samples().await;
        let event = event("score-deployment-poison");
        let ids: Vec<String> = event
            .records
            .iter()
            .map(|r| r.message_id.clone().unwrap())
            .collect();
        let out = handle_batch(&svc, event, now()).await;
        let failed: Vec<&str> = out
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, vec![ids[1].as_str()]);
    }

    #[tokio::test]
    async fn an_unknown_deployment_fails_permanently() {
        let m = Memory::new();
        let svc = Services {
            store: m.clone(),
            queue: m,
            policy: eucora_domain::policy::Policy::bundled(),
        };
        let out = handle_batch(&svc, event("score-deployment"), now()).await;
        assert_eq!(out.batch_item_failures.len(), 2);
    }
}
