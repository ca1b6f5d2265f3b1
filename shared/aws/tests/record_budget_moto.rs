//! Issue 13, point 7, against moto (DynamoDB's 400 KB item limit enforced): what people add to a
//! deployment stops at its budget, naming the field, and a halt still writes on the largest
//! deployment the limits allow; so do the incidents' reports and resolutions.

mod common;

use eucora_aws::DynamoStore;
use eucora_domain::cab::Role;
use eucora_domain::evidence::{Platform, RequestedException};
use eucora_domain::exception::ExceptionKind;
use eucora_domain::lifecycle::DeploymentState;
use eucora_domain::{ActorId, DeploymentId, ExceptionId, IncidentId, Ring, Timestamp};
use eucora_service::Actor;
use eucora_service::budget::{self, Growth, ITEM_LIMIT, MAX_OPEN_INCIDENTS, MAX_RESOLVED_KEPT};
use eucora_service::memory::Memory;
use eucora_service::ports::DeploymentStore;
use eucora_service::usecases::Services;
use eucora_service::usecases::connector::dispatched;
use eucora_service::usecases::exceptions::{self, ExceptionInput, ExceptionOpError};
use eucora_service::usecases::gates::{
    IncidentError, IncidentInput, evaluate_one, report_incident, resolve_incident,
};
use eucora_service::usecases::score::score;
use eucora_service::usecases::submit::{SubmitInput, submit};
use time::Duration;

fn t(minutes: i64) -> Timestamp {
    Timestamp::parse("2026-11-23T09:00:00Z")
        .unwrap()
        .plus(Duration::minutes(minutes))
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

fn actor(id: &str, roles: &[Role]) -> Actor {
    Actor::new(ActorId::parse(id).unwrap(), roles.iter().copied())
}

/// Text in the character JSON writes the widest (`\u0001`: 6 bytes), `n` characters long.
fn widest(n: usize) -> String {
    "\u{1}".repeat(n)
}

fn exception(justification: usize, controls: usize, control: usize) -> ExceptionInput {
    ExceptionInput {
        requested: RequestedException {
            kind: ExceptionKind::CrossBoundary,
            justification: format!("x{}", widest(justification - 1)),
            compensating_controls: vec![format!("x{}", widest(control - 1)); controls],
        },
        ring: None,
        gate: None,
        break_glass: false,
        expires_in_days: Some(30),
    }
}

/// Requests exceptions of this size until the deployment holds no more; returns how many fit.
async fn fill(
    s: &Services<DynamoStore, Memory>,
    id: &DeploymentId,
    size: (usize, usize, usize),
    n: &mut u32,
) -> u32 {
    let publisher = actor("publisher-pat", &[Role::Publisher]);
    let mut fitted = 0;
    loop {
        *n += 1;
        let input = exception(size.0, size.1, size.2);
        let eid = ExceptionId::parse(format!("exc-{n}")).unwrap();
        match exceptions::request(s, &publisher, id, input, eid, t(1)).await {
            Ok(_) => fitted += 1,
            Err(ExceptionOpError::Full(full)) => {
                assert!(
                    ["justification", "compensating_controls"].contains(&full.field.as_str()),
                    "{full}"
                );
                assert_eq!(full.budget, Growth::Request.budget());
                return fitted;
            }
            Err(other) => panic!("an exception request failed otherwise than full: {other}"),
        }
        assert!(fitted < 1000, "the budget never stopped the requests");
    }
}

/// A low-risk deployment live in its canary ring.
async fn live_deployment(s: &Services<DynamoStore, Memory>) -> DeploymentId {
    let body = std::fs::read_to_string(format!(
        "{}/../../events/deployments/low-risk.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let id = DeploymentId::parse("dep-largest").unwrap();
    submit(
        s,
        &actor("packager-alice", &[Role::Packaging]),
        SubmitInput {
            body: &body,
            idempotency_key: None,
            new_id: id.clone(),
            now: t(0),
        },
    )
    .await
    .unwrap();
    score(s, &id, t(0)).await.unwrap();
    let live = dispatched(
        s,
        &id,
        Ring::Canary,
        Platform::Windows,
        serde_json::json!({ "app_id": "app-1" }),
        t(0),
    )
    .await
    .unwrap();
    assert_eq!(live, DeploymentState::InRing { ring: Ring::Canary });

    id
}

#[tokio::test]
async fn a_halt_still_writes_on_the_largest_deployment_the_limits_allow() {
    let s = services().await;
    let id = live_deployment(&s).await;
    // People fill it to its budget: the largest exception requests the API takes, then smaller
    // ones into what is left, until not even a small one fits.
    let mut n = 0;
    assert!(fill(&s, &id, (1000, 10, 1000), &mut n).await >= 3);
    fill(&s, &id, (1000, 1, 1000), &mut n).await;
    fill(&s, &id, (10, 1, 10), &mut n).await;
    let record = s.store.get(&id).await.unwrap().unwrap();
    let size = budget::size(&record);
    assert!(size <= Growth::Request.budget());
    assert!(size > Growth::Request.budget() - 2048, "{size}");

    // Full of requests, it can still be told no: a security reviewer rejects one of them with the
    // longest reason.
    let (sec_a, sec_b) = (
        actor("security-sam", &[Role::SecurityReviewer]),
        actor("security-sue", &[Role::SecurityReviewer]),
    );
    let reason = format!("x{}", widest(999));
    let first = ExceptionId::parse("exc-1").unwrap();
    exceptions::reject(&s, &sec_b, &id, &first, &reason, t(1))
        .await
        .unwrap();

    // Incidents, at their longest, are reported and resolved many times over: each report halts
    // the live ring, each resolution is written, and the gate run writes its result.
    for i in 0..3 * MAX_RESOLVED_KEPT {
        let inc = IncidentId::parse(format!("inc-{i}")).unwrap();
        let input = IncidentInput {
            severity: "critical".into(),
            summary: format!("x{}", widest(999)),
            reclassify_blast_radius: None,
        };
        let out = report_incident(&s, &sec_a, &id, input, inc.clone(), t(2))
            .await
            .unwrap();
        assert_eq!(out.state, DeploymentState::Halted { ring: Ring::Canary });
        let resolution = format!("x{}", widest(999));
        resolve_incident(&s, &sec_b, &id, &inc, &resolution, t(3))
            .await
            .unwrap();
        // The gate run re-validates and writes its result (resumed, or halted again).
        evaluate_one(&s, &id, t(4)).await.unwrap();
        let state = s.store.get(&id).await.unwrap().unwrap().lifecycle.state;
        assert!(
            matches!(
                state,
                DeploymentState::InRing { .. } | DeploymentState::Halted { .. }
            ),
            "{state}"
        );
    }
    // Then as many open at once as may be: each written; one more has nothing left to stop.
    let open = |i: usize| IncidentInput {
        severity: "critical".into(),
        summary: format!("x{}", widest(999) + &i.to_string()),
        reclassify_blast_radius: None,
    };
    for i in 0..MAX_OPEN_INCIDENTS {
        let inc = IncidentId::parse(format!("open-{i}")).unwrap();
        let out = report_incident(&s, &sec_a, &id, open(i), inc, t(5))
            .await
            .unwrap();
        assert_eq!(out.state, DeploymentState::Halted { ring: Ring::Canary });
    }
    let inc = IncidentId::parse("open-more").unwrap();
    let err = report_incident(&s, &sec_a, &id, open(99), inc, t(5))
        .await
        .unwrap_err();
    assert!(
        matches!(err, IncidentError::TooMany(m) if m == MAX_OPEN_INCIDENTS),
        "{err}"
    );
    // And every one of them can be resolved.
    for i in 0..MAX_OPEN_INCIDENTS {
        let inc = IncidentId::parse(format!("open-{i}")).unwrap();
        resolve_incident(&s, &sec_b, &id, &inc, &reason, t(6))
            .await
            .unwrap();
    }
    evaluate_one(&s, &id, t(7)).await.unwrap();

    // The record is as large as the limits allow, and still under the item limit: every write
    // above went through DynamoDB's (moto's) 400 KB check.
    let record = s.store.get(&id).await.unwrap().unwrap();
    let size = budget::size(&record);
    assert!(size > Growth::Request.budget(), "{size}");
    assert!(size < ITEM_LIMIT, "{size}");
    assert_eq!(record.incidents.len(), MAX_RESOLVED_KEPT);
    // The whole texts are in the trail, the record keeps them short.
    assert!(
        record
            .incidents
            .iter()
            .all(|i| i.summary.chars().count() <= budget::INCIDENT_TEXT_KEPT + 1)
    );
}
