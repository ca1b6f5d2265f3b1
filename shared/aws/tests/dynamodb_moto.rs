//! The DynamoDB adapter against moto (real DynamoDB protocol on loopback).

mod common;

use aws_sdk_dynamodb::types::AttributeValue;
use eucora_aws::DynamoStore;
use eucora_domain::audit::{AuditKind, verify};
use eucora_domain::cab::Role;
use eucora_domain::evidence::{Platform, SiteClass};
use eucora_domain::gates::{DeviceResult, InstallOutcome, PlatformStatus};
use eucora_domain::lifecycle::DeploymentState;
use eucora_domain::{ActorId, DeploymentId, Ring, Timestamp};
use eucora_service::Actor;
use eucora_service::memory::Memory;
use eucora_service::ports::{
    CreateError, DeploymentStore, StatusSnapshot, StoreError, TelemetryStore,
};
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
    // The key's record (the caller's own) carries its TTL; the correlation id's has none: it names
    // its deployment for as long as it is kept.
    let rec = s
        .store
        .idempotency("key:packager-alice#key-a")
        .await
        .unwrap()
        .unwrap();
    assert!(rec.expires_at.unwrap() > now());
    let correlation = s
        .store
        .get(&id)
        .await
        .unwrap()
        .unwrap()
        .correlation_id()
        .to_string();
    let rec = s
        .store
        .idempotency(&format!("correlation:{correlation}"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.expires_at, None);
}

#[tokio::test]
async fn a_create_that_races_for_the_same_key_gets_the_winner() {
    let s = services().await;
    let id = submitted(&s, "low-risk", "race").await;
    // The loser did not see the claim before writing: the transaction's condition catches it.
    let record = s.store.get(&id).await.unwrap().unwrap();
    let mut loser = record.clone();
    loser.id = DeploymentId::parse("dep-loser").unwrap();
    let claim = s
        .store
        .idempotency("key:packager-alice#race")
        .await
        .unwrap()
        .unwrap();
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

fn population(platform: Platform, n: usize, outcome: InstallOutcome) -> Vec<DeviceResult> {
    (0..n)
        .map(|i| DeviceResult {
            device_id: format!("{platform}-{i:05}-5f0c2a1e-8d3b-4c7e-9a61-{i:012}"),
            platform,
            outcome,
            site_class: SiteClass::Online,
            at: now(),
            last_contact: Some(now()),
        })
        .collect()
}

fn snapshot(
    platform: Platform,
    devices: Vec<DeviceResult>,
    queried_at: Timestamp,
) -> StatusSnapshot {
    StatusSnapshot {
        status: PlatformStatus {
            platform,
            targeted: devices.len() as u64,
            reported: 0,
            missing: 0,
            earlier_ring_devices: 0,
            queried_at,
            calls: 1,
            duration_ms: 1,
        },
        devices,
    }
}

/// How many status chunk items the deployment holds (every generation), over every page of
/// the query (a page stops at 1 MB).
async fn chunk_items(s: &Services<DynamoStore, Memory>, id: &DeploymentId) -> usize {
    let mut count = 0;
    let mut start = None;
    loop {
        let page = s
            .store
            .client()
            .query()
            .table_name(s.store.table())
            .key_condition_expression("pk = :p AND begins_with(sk, :c)")
            .expression_attribute_values(":p", AttributeValue::S(format!("DEP#{id}")))
            .expression_attribute_values(":c", AttributeValue::S("TELC#".into()))
            .select(aws_sdk_dynamodb::types::Select::Count)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .unwrap();
        count += usize::try_from(page.count()).unwrap();
        match page.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => return count,
        }
    }
}

#[tokio::test]
async fn a_ring_of_ten_thousand_devices_per_platform_is_stored_and_replaced_whole() {
    let s = services().await;
    let id = submitted(&s, "multi-platform", "dep-tel").await;
    for platform in [Platform::Windows, Platform::Macos] {
        let devices = population(platform, 10_000, InstallOutcome::NotReported);
        s.store
            .record(&id, Ring::Department, &snapshot(platform, devices, now()))
            .await
            .unwrap();
    }
    let chunks_per_snapshot = chunk_items(&s, &id).await;
    assert!(
        chunks_per_snapshot >= 4,
        "{chunks_per_snapshot} chunks for 20,000 devices"
    );
    let read = s.store.snapshots(&id, Ring::Department).await.unwrap();
    assert_eq!(read.len(), 2);
    for snap in &read {
        assert_eq!(snap.devices.len(), 10_000);
        assert_eq!(
            snap.devices,
            population(snap.status.platform, 10_000, InstallOutcome::NotReported)
        );
    }

    // The next query's snapshot replaces the Windows one whole; the old chunks are gone.
    let later = now().plus(time::Duration::minutes(5));
    let installed = population(Platform::Windows, 9_000, InstallOutcome::Installed);
    s.store
        .record(
            &id,
            Ring::Department,
            &snapshot(Platform::Windows, installed.clone(), later),
        )
        .await
        .unwrap();
    let read = s.store.snapshots(&id, Ring::Department).await.unwrap();
    let windows = read
        .iter()
        .find(|s| s.status.platform == Platform::Windows)
        .unwrap();
    assert_eq!(windows.devices, installed);
    assert_eq!(windows.status.queried_at, later);
    assert!(chunk_items(&s, &id).await < chunks_per_snapshot * 2);
    assert!(
        s.store
            .snapshots(&id, Ring::Pilot)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn an_older_query_finishing_late_does_not_replace_a_newer_snapshot() {
    let s = services().await;
    let id = submitted(&s, "multi-platform", "dep-tel-late").await;
    let newer = now().plus(time::Duration::minutes(5));
    let fresh = population(Platform::Macos, 30, InstallOutcome::Installed);
    s.store
        .record(
            &id,
            Ring::Canary,
            &snapshot(Platform::Macos, fresh.clone(), newer),
        )
        .await
        .unwrap();
    let before = chunk_items(&s, &id).await;
    s.store
        .record(
            &id,
            Ring::Canary,
            &snapshot(
                Platform::Macos,
                population(Platform::Macos, 30, InstallOutcome::Pending),
                now(),
            ),
        )
        .await
        .unwrap();
    let read = s.store.snapshots(&id, Ring::Canary).await.unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].devices, fresh);
    assert_eq!(read[0].status.queried_at, newer);
    assert_eq!(
        chunk_items(&s, &id).await,
        before,
        "the late query's chunks are removed"
    );
}

#[tokio::test]
async fn a_change_over_dynamodbs_transaction_limit_is_refused_before_it_is_sent() {
    let s = services().await;
    let id = submitted(&s, "multi-platform", "dep-limit").await;
    let record = s.store.get(&id).await.unwrap().unwrap();
    let trail = s.store.audit_trail(&id).await.unwrap();
    let mut change = Change::new(record);
    for i in 0..100 {
        change.audit(
            &packager(),
            AuditKind::ConnectorCall,
            serde_json::json!({ "n": i }),
            now(),
        );
    }
    match s.store.save(&change).await {
        Err(StoreError::Failed(why)) => assert!(why.contains("100 actions"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        s.store.audit_trail(&id).await.unwrap(),
        trail,
        "nothing written"
    );
}

#[tokio::test]
async fn the_gate_run_lease_is_held_by_one_run_and_keeps_the_cursor() {
    use eucora_service::ports::{GateRunStore, RunLease};
    let s = services().await;
    let until = now().plus(time::Duration::seconds(90));
    assert_eq!(
        s.store.begin_run("run-a", now(), until).await.unwrap(),
        RunLease::Taken { cursor: None }
    );
    // A second run (an EventBridge retry, the next schedule) while run-a holds it.
    assert_eq!(
        s.store
            .begin_run("run-b", now().plus(time::Duration::seconds(30)), until)
            .await
            .unwrap(),
        RunLease::Busy { until }
    );
    let cursor = DeploymentId::parse("dep-0042").unwrap();
    s.store.end_run("run-a", Some(&cursor)).await.unwrap();
    assert_eq!(
        s.store
            .begin_run("run-b", now().plus(time::Duration::seconds(31)), until)
            .await
            .unwrap(),
        RunLease::Taken {
            cursor: Some(cursor.clone())
        }
    );
    // run-b dies holding the lease; once it has passed, run-c takes over, and run-b's late end
    // changes nothing.
    let later = until.plus(time::Duration::seconds(1));
    assert_eq!(
        s.store
            .begin_run("run-c", later, later.plus(time::Duration::seconds(90)))
            .await
            .unwrap(),
        RunLease::Taken {
            cursor: Some(cursor.clone())
        }
    );
    s.store.end_run("run-b", None).await.unwrap();
    s.store
        .end_run("run-c", Some(&DeploymentId::parse("dep-0100").unwrap()))
        .await
        .unwrap();
    assert_eq!(
        s.store.begin_run("run-d", later, later).await.unwrap(),
        RunLease::Taken {
            cursor: Some(DeploymentId::parse("dep-0100").unwrap())
        }
    );
}
