//! What the emulator cannot produce: throttling, a condition failing in the middle of a
//! transaction, an SDK timeout. Each must map to the right retry-or-fail answer.

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::error::ErrorMetadata;
use aws_sdk_dynamodb::operation::get_item::{GetItemError, GetItemOutput};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::error::{
    ProvisionedThroughputExceededException, TransactionCanceledException,
};
use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use eucora_aws::DynamoStore;
use eucora_domain::cab::Role;
use eucora_domain::{ActorId, DeploymentId, Timestamp};
use eucora_service::Actor;
use eucora_service::memory::Memory;
use eucora_service::ports::{CreateError, DeploymentStore, IdempotencyRecord, StoreError};
use eucora_service::record::Change;
use eucora_service::usecases::Services;
use eucora_service::usecases::submit::{SubmitInput, submit};

fn now() -> Timestamp {
    Timestamp::parse("2026-11-23T09:00:00Z").unwrap()
}

/// A real change to write, built by the submit use case over the in-memory store.
async fn a_change() -> (Change, Vec<IdempotencyRecord>) {
    let m = Memory::new();
    let svc = Services {
        store: m.clone(),
        queue: m.clone(),
        policy: eucora_domain::policy::Policy::bundled(),
    };
    let body = std::fs::read_to_string(format!(
        "{}/../../events/deployments/low-risk.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let actor = Actor::new(ActorId::parse("packager-alice").unwrap(), [Role::Packaging]);
    let id = DeploymentId::parse("dep-mock").unwrap();
    submit(
        &svc,
        &actor,
        SubmitInput {
            body: &body,
            idempotency_key: Some("k-1"),
            new_id: id.clone(),
            now: now(),
        },
    )
    .await
    .unwrap();
    let record = m.get(&id).await.unwrap().unwrap();
    let claims = vec![
        m.idempotency("correlation:dp-20261123-0001")
            .await
            .unwrap()
            .unwrap(),
        m.idempotency("key:packager-alice#k-1")
            .await
            .unwrap()
            .unwrap(),
    ];
    let mut change = Change::new(record);
    change.expected_version = 0;
    (change, claims)
}

fn cancelled(codes: &[&str]) -> TransactWriteItemsError {
    let mut b = TransactionCanceledException::builder().message("Transaction cancelled");
    for c in codes {
        b = b.cancellation_reasons(CancellationReason::builder().code(*c).build());
    }
    TransactWriteItemsError::TransactionCanceledException(b.build())
}

#[tokio::test]
async fn throttling_is_retryable() {
    let throttled = mock!(Client::get_item).then_error(|| {
        GetItemError::ProvisionedThroughputExceededException(
            // As the SDK deserialises it: the error code from the response in its metadata.
            ProvisionedThroughputExceededException::builder()
                .message("Rate exceeded")
                .meta(
                    ErrorMetadata::builder()
                        .code("ProvisionedThroughputExceededException")
                        .message("Rate exceeded")
                        .build(),
                )
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&throttled], |c| c
        .retry_config(RetryConfig::disabled()));
    let store = DynamoStore::new(client, "t");
    let err = store
        .get(&DeploymentId::parse("dep-1").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Retryable(_)), "{err}");
    assert!(err.is_retryable());
    assert_eq!(throttled.num_calls(), 1);
}

#[tokio::test]
async fn a_condition_failing_on_the_second_claim_mid_transaction_returns_who_holds_it() {
    let (change, claims) = a_change().await;
    let holder = claims[1].clone();
    let doc = serde_json::to_string(&holder).unwrap();
    // Item 0 (the correlation claim) passed, item 1 (the key claim) failed its condition.
    let tx = mock!(Client::transact_write_items)
        .then_error(|| cancelled(&["None", "ConditionalCheckFailed", "None", "None"]));
    let read = mock!(Client::get_item)
        .match_requests(|r| {
            r.key()
                .and_then(|k| k.get("pk"))
                .and_then(|v| v.as_s().ok())
                .map(String::as_str)
                == Some("IDEM#key:packager-alice#k-1")
        })
        .then_output(move || {
            GetItemOutput::builder()
                .item("doc", AttributeValue::S(doc.clone()))
                .build()
        });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&tx, &read], |c| c
        .retry_config(RetryConfig::disabled()));
    let store = DynamoStore::new(client, "t");
    match store.create(&change, &claims).await {
        Err(CreateError::Taken(r)) => assert_eq!(r, holder),
        other => panic!("{other:?}"),
    }
    assert_eq!((tx.num_calls(), read.num_calls()), (1, 1));
}

#[tokio::test]
async fn a_condition_failing_on_an_audit_put_mid_transaction_is_a_conflict() {
    let (change, _) = a_change().await;
    let tx = mock!(Client::transact_write_items)
        .then_error(|| cancelled(&["None", "ConditionalCheckFailed"]));
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&tx], |c| c
        .retry_config(RetryConfig::disabled()));
    let store = DynamoStore::new(client, "t");
    let err = store.save(&change).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err}");
}

#[tokio::test]
async fn a_transaction_conflict_is_retryable() {
    let (change, _) = a_change().await;
    let tx = mock!(Client::transact_write_items)
        .then_error(|| cancelled(&["TransactionConflict", "None"]));
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&tx], |c| c
        .retry_config(RetryConfig::disabled()));
    let err = DynamoStore::new(client, "t")
        .save(&change)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Retryable(ref why) if why.contains("TransactionConflict")),
        "{err}"
    );
}

#[tokio::test]
async fn an_sdk_timeout_is_retryable() {
    // A server that accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "a", "b", None, None, "test",
        ))
        .endpoint_url(format!("http://{addr}"))
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_millis(200))
                .build(),
        )
        .build();
    let store = DynamoStore::new(Client::from_conf(config), "t");
    let err = store
        .get(&DeploymentId::parse("dep-1").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Retryable(_)), "{err}");
}

/// Whether a `BatchWriteItem` is one DynamoDB accepts: at most 25 requests, no key twice (the
/// emulator compares whole items, DynamoDB compares keys, so this is checked here).
fn a_valid_batch(
    request: &aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemInput,
) -> bool {
    let Some(tables) = request.request_items() else {
        return false;
    };
    let writes: Vec<_> = tables.values().flatten().collect();
    let keys: std::collections::HashSet<(String, String)> = writes
        .iter()
        .filter_map(|w| w.put_request())
        .map(|p| {
            let key = |name: &str| {
                p.item()
                    .get(name)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default()
            };
            (key("pk"), key("sk"))
        })
        .collect();
    // DynamoDB's item limit is 400 KB, names and values together.
    let small = writes.iter().filter_map(|w| w.put_request()).all(|p| {
        p.item()
            .iter()
            .map(|(k, v)| k.len() + v.as_s().map_or(16, String::len))
            .sum::<usize>()
            < 400 * 1024
    });
    !writes.is_empty() && writes.len() <= 25 && keys.len() == writes.len() && small
}

#[tokio::test]
async fn a_status_snapshot_of_100_000_devices_is_written_within_dynamodbs_limits() {
    use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput;
    use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
    use aws_sdk_dynamodb::operation::put_item::PutItemOutput;
    use eucora_domain::Ring;
    use eucora_domain::evidence::{Platform, SiteClass};
    use eucora_domain::gates::{DeviceResult, InstallOutcome, PlatformStatus};
    use eucora_service::ports::{StatusSnapshot, TelemetryStore};

    let write = mock!(Client::batch_write_item)
        .match_requests(a_valid_batch)
        .then_output(|| BatchWriteItemOutput::builder().build());
    let head = mock!(Client::get_item).then_output(|| GetItemOutput::builder().build());
    let put = mock!(Client::put_item).then_output(|| PutItemOutput::builder().build());
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&write, &head, &put]);
    let store = DynamoStore::new(client, "t");
    let devices: Vec<DeviceResult> = (0..100_000)
        .map(|i| DeviceResult {
            device_id: format!("{i:08}-9c1d-4b7e-a2f3-5e6d7c8b9a0f"),
            platform: Platform::Windows,
            outcome: InstallOutcome::Installed,
            site_class: SiteClass::Online,
            at: now(),
            last_contact: Some(now()),
        })
        .collect();
    let snapshot = StatusSnapshot {
        status: PlatformStatus {
            platform: Platform::Windows,
            targeted: 100_000,
            reported: 100_000,
            missing: 0,
            earlier_ring_devices: 0,
            queried_at: now(),
            calls: 100,
            duration_ms: 1,
        },
        devices,
    };
    store
        .record(
            &DeploymentId::parse("dep-1").unwrap(),
            Ring::Global,
            &snapshot,
        )
        .await
        .unwrap();
    let chunks = eucora_aws::telemetry::chunks(&snapshot.devices)
        .unwrap()
        .len();
    assert!(chunks > 25, "{chunks} chunks");
    assert_eq!(
        write.num_calls(),
        chunks.div_ceil(25),
        "batches of at most 25 items"
    );
    assert_eq!(put.num_calls(), 1, "one head item, written last");
}
