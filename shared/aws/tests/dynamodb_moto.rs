//! The DynamoDB adapter against moto (real DynamoDB protocol on loopback).

mod common;

use eucora_aws::DynamoStore;
use eucora_domain::audit::{AuditKind, verify};
use eucora_domain::cab::Role;
use eucora_domain::evidence::{Platform, SiteClass};
use eucora_domain::gates::{DeviceResult, InstallOutcome};
use eucora_domain::lifecycle::DeploymentState;
use eucora_domain::{ActorId, DeploymentId, Ring, Timestamp};
use eucora_service::Actor;
use eucora_service::memory::Memory;
use eucora_service::ports::{CreateError, DeploymentStore, StoreError, TelemetryStore};
use eucora_service::record::Change;
use eucora_service::usecases::Services;
use eucora_service::usecases::score::score;
use eucora_service::usecases::submit::{SubmitError, SubmitInput, submit};

fn body(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../../events/deployments/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn now() -> Timestamp {
    Timestamp::parse("2026-11-23T09:00:00Z").unwrap()
}

async fn services() -> Services<DynamoStore, Memory> {
    let sdk = common::sdk().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let table = common::create_table(&client).await;
    Services {
        store: DynamoStore::new(client, table),
        queue: Memory::new(),
        policy: eucora_domain::policy::Policy::bundled(),
    }
}

fn packager() -> Actor {
    Actor::new(ActorId::parse("packager-alice").unwrap(), [Role::Packaging])
}

async fn submitted(s: &Services<DynamoStore, Memory>, sample: &str, id: &str) -> DeploymentId {
    let b = body(sample);
    submit(
        s,
        &packager(),
        SubmitInput {
            body: &b,
            idempotency_key: Some(id),
            new_id: DeploymentId::parse(id).unwrap(),
            now: now(),
        },
    )
    .await
    .unwrap()
    .record
    .id
}

#[tokio::test]
async fn a_second_create_of_the_same_deployment_is_a_conditional_write_conflict() {
    let s = services().await;
    let id = submitted(&s, "low-risk", "dep-1").await;
    let record = s.store.get(&id).await.unwrap().unwrap();
    let mut again = Change::new(record);
    again.expected_version = 0;
    let err = s.store.create(&again, &[]).await.unwrap_err();
    assert!(
        matches!(err, CreateError::Store(StoreError::Conflict)),
        "{err}"
    );
}

#[tokio::test]
async fn a_repeated_request_is_replayed_and_a_reused_key_conflicts() {
    let s = services().await;
    let id = submitted(&s, "low-risk", "key-a").await;
    let b = body("low-risk");
    let replay = submit(
        &s,
        &packager(),
        SubmitInput {
            body: &b,
            idempotency_key: Some("key-a"),
            new_id: DeploymentId::parse("dep-x").unwrap(),
            now: now(),
        },
    )
    .await
    .unwrap();
    assert!(replay.replayed);
    assert_eq!(replay.record.id, id);
    assert!(
        s.store
            .get(&DeploymentId::parse("dep-x").unwrap())
            .await
            .unwrap()
            .is_none()
    );

    let changed = b.replace("\"passed\": 48", "\"passed\": 49");
    let err = submit(
        &s,
        &packager(),
        SubmitInput {
            body: &changed,
            idempotency_key: Some("key-a"),
            new_id: DeploymentId::parse("dep-y").unwrap(),
            now: now(),
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SubmitError::KeyReused { .. }), "{err}");
    // The idempotency record carries its TTL attribute.
    let rec = s.store.idempotency("key:key-a").await.unwrap().unwrap();
    assert!(rec.expires_at > now());
}

#[tokio::test]
async fn a_create_that_races_for_the_same_key_gets_the_winner() {
    let s = services().await;
    let id = submitted(&s, "low-risk", "race").await;
    // The loser did not see the claim before writing: the transaction's condition catches it.
    let record = s.store.get(&id).await.unwrap().unwrap();
    let mut loser = record.clone();
    loser.id = DeploymentId::parse("dep-loser").unwrap();
    let claim = s.store.idempotency("key:race").await.unwrap().unwrap();
    let err = s
        .store
        .create(&Change::new(loser), &[claim])
        .await
        .unwrap_err();
    match err {
        CreateError::Taken(winner) => assert_eq!(winner.deployment_id, id),
        other @ CreateError::Store(_) => panic!("{other}"),
    }
    assert!(
        s.store
            .get(&DeploymentId::parse("dep-loser").unwrap())
            .await
            .unwrap()
            .is_none(),
        "nothing half-written"
    );
}

#[tokio::test]
async fn a_stale_version_is_an_optimistic_lock_conflict() {
    let s = services().await;
    let id = submitted(&s, "low-risk", "dep-lock").await;
    let record = s.store.get(&id).await.unwrap().unwrap();
    let actor = Actor::system("gate-evaluation");
    let mut first = Change::new(record.clone());
    first.audit(
        &actor,
        AuditKind::RollbackValidated,
        serde_json::json!({"by": "first"}),
        now(),
    );
    let mut second = Change::new(record);
    second.audit(
        &actor,
        AuditKind::RollbackValidated,
        serde_json::json!({"by": "second"}),
        now(),
    );
    s.store.save(&first).await.unwrap();
    assert!(matches!(
        s.store.save(&second).await,
        Err(StoreError::Conflict)
    ));
    // Only the winner's event is in the trail, and the trail verifies.
    let trail = s.store.audit_trail(&id).await.unwrap();
    assert_eq!(trail.last().unwrap().detail["by"], "first");
    let head = s.store.get(&id).await.unwrap().unwrap().audit_head;
    verify(&id, &trail, Some(&head)).unwrap();
}

#[tokio::test]
async fn the_in_flight_query_returns_only_deployments_in_flight() {
    let s = services().await;
    let waiting = submitted(&s, "low-risk", "dep-submitted").await;
    let live = submitted(&s, "multi-platform", "dep-live").await;
    let done = submitted(&s, "incident", "dep-done").await;
    score(&s, &live, now()).await.unwrap();
    // Finish one by hand.
    let record = s.store.get(&done).await.unwrap().unwrap();
    let mut change = Change::new(record);
    change.record.lifecycle.state = DeploymentState::Completed;
    s.store.save(&change).await.unwrap();

    let in_flight = s.store.in_flight().await.unwrap();
    assert_eq!(in_flight, vec![live.clone()]);
    assert!(!in_flight.contains(&waiting));
    assert!(!in_flight.contains(&done));

    // Rejected and completed deployments drop out of the index for good.
    let record = s.store.get(&live).await.unwrap().unwrap();
    let mut change = Change::new(record);
    change.record.lifecycle.state = DeploymentState::RolledBack { ring: Ring::Canary };
    s.store.save(&change).await.unwrap();
    assert!(s.store.in_flight().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_cab_queue_lists_deployments_awaiting_cab() {
    let s = services().await;
    let high = submitted(&s, "high-risk", "dep-high").await;
    let low = submitted(&s, "low-risk", "dep-low").await;
    score(&s, &high, now()).await.unwrap();
    score(&s, &low, now()).await.unwrap();
    assert_eq!(s.store.awaiting_cab().await.unwrap(), vec![high]);
}

#[tokio::test]
async fn the_audit_trail_is_append_only() {
    let s = services().await;
    let id = submitted(&s, "low-risk", "dep-audit").await;
    score(&s, &id, now()).await.unwrap();
    let trail = s.store.audit_trail(&id).await.unwrap();
    assert!(trail.len() >= 3);
    // A change that tries to write an event at a position already taken fails as a whole.
    let record = s.store.get(&id).await.unwrap().unwrap();
    let mut change = Change::new(record);
    change.record.audit_head.len = 1; // forge: overwrite event 1
    change.audit(
        &Actor::system("risk-scoring"),
        AuditKind::RiskScored,
        serde_json::json!({}),
        now(),
    );
    assert!(matches!(
        s.store.save(&change).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(s.store.audit_trail(&id).await.unwrap(), trail);
}

#[tokio::test]
async fn telemetry_keeps_the_latest_result_per_device_over_pages() {
    let s = services().await;
    let id = submitted(&s, "multi-platform", "dep-tel").await;
    let mk = |i: usize, outcome| DeviceResult {
        device_id: format!("device-{i:04}"),
        platform: if i.is_multiple_of(2) {
            Platform::Windows
        } else {
            Platform::Macos
        },
        outcome,
        site_class: SiteClass::Online,
        at: now(),
    };
    let first: Vec<DeviceResult> = (0..120).map(|i| mk(i, InstallOutcome::Pending)).collect();
    s.store.record(&id, Ring::Canary, &first).await.unwrap();
    let second: Vec<DeviceResult> = (0..60).map(|i| mk(i, InstallOutcome::Installed)).collect();
    s.store.record(&id, Ring::Canary, &second).await.unwrap();
    let results = s.store.results(&id, Ring::Canary).await.unwrap();
    assert_eq!(results.len(), 120);
    assert_eq!(
        results
            .iter()
            .filter(|r| r.outcome == InstallOutcome::Installed)
            .count(),
        60
    );
    assert!(s.store.results(&id, Ring::Pilot).await.unwrap().is_empty());
}

#[tokio::test]
async fn telemetry_with_a_device_named_twice_is_written_once_per_device() {
    let s = services().await;
    let id = submitted(&s, "multi-platform", "dep-tel-dup").await;
    let mk = |i: usize, outcome| DeviceResult {
        device_id: format!("pc-{i:03}"),
        platform: Platform::Windows,
        outcome,
        site_class: SiteClass::Online,
        at: now(),
    };
    // 40 devices, each of the first 30 named twice in a row (a shared PC's rows): the same
    // item twice in one batch, which DynamoDB refuses ("Provided list of item keys contains
    // duplicates") and moto too; then device 5 again with another outcome, and the same id on
    // macOS, which is another device.
    let mut results: Vec<DeviceResult> = Vec::new();
    for i in 0..40 {
        results.push(mk(i, InstallOutcome::Installed));
        if i < 30 {
            results.push(mk(i, InstallOutcome::Installed));
        }
    }
    results.push(mk(5, InstallOutcome::Failed));
    results.push(DeviceResult {
        platform: Platform::Macos,
        ..mk(5, InstallOutcome::Pending)
    });
    s.store.record(&id, Ring::Canary, &results).await.unwrap();
    let stored = s.store.results(&id, Ring::Canary).await.unwrap();
    assert_eq!(stored.len(), 41, "one item per device and platform");
    let of = |platform, device: &str| {
        stored
            .iter()
            .find(|r| r.platform == platform && r.device_id == device)
            .map(|r| r.outcome)
    };
    assert_eq!(
        of(Platform::Windows, "pc-005"),
        Some(InstallOutcome::Failed),
        "the last result given for a device wins"
    );
    assert_eq!(of(Platform::Macos, "pc-005"), Some(InstallOutcome::Pending));
    assert_eq!(
        stored
            .iter()
            .filter(|r| r.outcome == InstallOutcome::Installed)
            .count(),
        39
    );
}
