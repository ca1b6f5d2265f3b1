//! The handlers fed from `events/schedule/` and `events/api/`, over the in-memory adapters.

use eucora_api::testing::{raw, raw_with_roles};
use eucora_domain::cab::Role;
use eucora_domain::evidence::{Platform, SiteClass};
use eucora_domain::gates::{DeviceResult, InstallOutcome};
use eucora_domain::lifecycle::DeploymentState;
use eucora_domain::{ActorId, DeploymentId, IncidentId, Ring, Timestamp};
use eucora_service::Actor;
use eucora_service::memory::Memory;
use eucora_service::ports::{DeploymentStore, StatusSnapshot, TelemetryStore};
use eucora_service::usecases::Services;
use eucora_service::usecases::connector::dispatched;
use eucora_service::usecases::score::score;
use eucora_service::usecases::submit::{SubmitInput, submit};
use serde_json::Value;

use crate::handler::invoke;

const ID: &str = "dep-01JD7W4Q5T0000000000000003";

fn at(h: i64) -> Timestamp {
    Timestamp::parse("2026-11-23T09:00:00Z")
        .unwrap()
        .plus(time::Duration::hours(h))
}

fn inc() -> IncidentId {
    IncidentId::parse("inc-01JD7W4Q5T0000000000000001").unwrap()
}

/// The incident sample (dep-…0003) live in Ring 1 with every device installed.
async fn live() -> Services<Memory, Memory> {
    let m = Memory::new();
    let svc = Services {
        store: m.clone(),
        queue: m,
        policy: eucora_domain::policy::Policy::bundled(),
    };
    let body = std::fs::read_to_string(format!(
        "{}/../../events/deployments/incident.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let id = DeploymentId::parse(ID).unwrap();
    let packager = Actor::new(ActorId::parse("packager-alice").unwrap(), [Role::Packaging]);
    submit(
        &svc,
        &packager,
        SubmitInput {
            body: &body,
            idempotency_key: None,
            new_id: id.clone(),
            now: at(0),
        },
    )
    .await
    .unwrap();
    score(&svc, &id, at(0)).await.unwrap();
    dispatched(
        &svc,
        &id,
        Ring::Canary,
        Platform::Windows,
        Value::Null,
        at(0),
    )
    .await
    .unwrap();
    let results: Vec<DeviceResult> = (0..100)
        .map(|i| DeviceResult {
            device_id: format!("pc-{i}"),
            platform: Platform::Windows,
            outcome: InstallOutcome::Installed,
            site_class: SiteClass::Intermittent,
            at: at(2),
            last_contact: Some(at(2)),
        })
        .collect();
    svc.store
        .record(
            &id,
            Ring::Canary,
            &StatusSnapshot::of(Platform::Windows, results, at(3)),
        )
        .await
        .unwrap();
    svc
}

/// [`live`], with a passed rollback validation recorded by a publisher (the sample request): the
/// rollback gate reads the record, not the packager's `validated_in_ring0`.
async fn validated() -> Services<Memory, Memory> {
    let svc = live().await;
    let r = invoke(&svc, api("rollback-validation"), at(1), inc())
        .await
        .unwrap();
    assert_eq!(r["statusCode"], 201, "{r}");
    svc
}

fn schedule() -> Value {
    let path = format!(
        "{}/../../events/schedule/gate-evaluation.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn api(name: &str) -> Value {
    serde_json::from_str(&raw(name)).unwrap()
}

async fn state(svc: &Services<Memory, Memory>) -> DeploymentState {
    svc.store
        .get(&DeploymentId::parse(ID).unwrap())
        .await
        .unwrap()
        .unwrap()
        .lifecycle
        .state
}

#[tokio::test]
async fn the_schedule_promotes_a_ring_whose_gates_pass() {
    let svc = validated().await;
    let report = invoke(&svc, schedule(), at(48), inc()).await.unwrap();
    assert_eq!(report["evaluated"][0]["verdict"], "promote", "{report}");
    assert_eq!(
        state(&svc).await,
        DeploymentState::Dispatching { ring: Ring::Pilot }
    );
}

#[tokio::test]
async fn an_incident_halts_and_its_resolution_resumes_at_the_next_run() {
    let svc = validated().await;
    let r = invoke(&svc, api("incident-report"), at(10), inc())
        .await
        .unwrap();
    assert_eq!(r["statusCode"], 201, "{r}");
    assert_eq!(
        state(&svc).await,
        DeploymentState::Halted { ring: Ring::Canary }
    );
    invoke(&svc, schedule(), at(48), inc()).await.unwrap();
    assert_eq!(
        state(&svc).await,
        DeploymentState::Halted { ring: Ring::Canary }
    );

    let r = invoke(&svc, api("incident-resolve"), at(49), inc())
        .await
        .unwrap();
    assert_eq!(r["statusCode"], 200, "{r}");
    // Resolving twice is a conflict.
    let r = invoke(&svc, api("incident-resolve"), at(49), inc())
        .await
        .unwrap();
    assert_eq!(r["statusCode"], 409);
    // Reclassified BUSINESS_CRITICAL by the incident: Ring 2 now needs CAB.
    invoke(&svc, schedule(), at(50), inc()).await.unwrap();
    assert_eq!(
        state(&svc).await,
        DeploymentState::AwaitingCab { ring: Ring::Pilot }
    );
}

#[tokio::test]
async fn the_packagers_claim_does_not_pass_the_rollback_gate_a_validation_record_does() {
    let svc = live().await;
    let report = invoke(&svc, schedule(), at(48), inc()).await.unwrap();
    assert_ne!(report["evaluated"][0]["verdict"], "promote", "{report}");
    let r = invoke(&svc, api("rollback-validation"), at(49), inc())
        .await
        .unwrap();
    assert_eq!(r["statusCode"], 201, "{r}");
    let body: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["rollback_validated"], true, "{body}");
    assert_eq!(body["validation"]["result"], "passed", "{body}");
    let report = invoke(&svc, schedule(), at(50), inc()).await.unwrap();
    assert_eq!(report["evaluated"][0]["verdict"], "promote", "{report}");
}

#[tokio::test]
async fn incident_routes_refuse_other_roles_and_bad_bodies() {
    let svc = live().await;
    for name in ["incident-report", "incident-resolve", "rollback-validation"] {
        for role in ["packaging", "cab", "auditor", ""] {
            let r = invoke(&svc, raw_with_roles(name, role), at(10), inc())
                .await
                .unwrap();
            assert_eq!(r["statusCode"], 403, "{name} as {role}");
        }
        let mut bad = api(name);
        bad["body"] = "{\"surprise\": 1}".into();
        let r = invoke(&svc, bad, at(10), inc()).await.unwrap();
        assert_eq!(r["statusCode"], 400, "{name}");
        let body: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
        assert!(
            body["error"]["fields"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["field"] == "surprise"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn anything_else_is_refused() {
    let svc = live().await;
    assert!(
        invoke(&svc, serde_json::json!({"hello": "world"}), at(1), inc())
            .await
            .is_err()
    );
}
