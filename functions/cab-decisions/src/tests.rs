//! The handler fed from `events/api/`, over the in-memory adapters, with the sample deployments
//! the events name already submitted and scored.

use eucora_api::testing::{event, event_as, event_with_roles, json_of};
use eucora_domain::cab::Role;
use eucora_domain::{ActorId, DeploymentId, ExceptionId, Timestamp};
use eucora_service::Actor;
use eucora_service::memory::Memory;
use eucora_service::usecases::Services;
use eucora_service::usecases::score::score;
use eucora_service::usecases::submit::{SubmitInput, submit};

use crate::handler::handle;

fn now() -> Timestamp {
    Timestamp::parse("2026-11-23T10:00:00Z").unwrap()
}

fn new_exc() -> ExceptionId {
    ExceptionId::parse("exc-01JD7W4Q5T0000000000000001").unwrap()
}

/// high-risk as dep-…0002 (awaiting CAB) and critical-cve as dep-…0006 (publish blocked).
async fn svc() -> Services<Memory, Memory> {
    let m = Memory::new();
    let svc = Services {
        store: m.clone(),
        queue: m,
        policy: eucora_domain::policy::Policy::bundled(),
    };
    let packager = Actor::new(ActorId::parse("packager-alice").unwrap(), [Role::Packaging]);
    for (sample, id) in [
        ("high-risk", "dep-01JD7W4Q5T0000000000000002"),
        ("critical-cve", "dep-01JD7W4Q5T0000000000000006"),
    ] {
        let body = std::fs::read_to_string(format!(
            "{}/../../events/deployments/{sample}.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let id = DeploymentId::parse(id).unwrap();
        let at = Timestamp::parse("2026-11-23T09:00:00Z").unwrap();
        submit(
            &svc,
            &packager,
            SubmitInput {
                body: &body,
                idempotency_key: None,
                new_id: id.clone(),
                now: at,
            },
        )
        .await
        .unwrap();
        score(&svc, &id, at).await.unwrap();
    }
    svc
}

#[tokio::test]
async fn the_cab_queue_lists_the_high_risk_deployment() {
    let s = svc().await;
    let r = handle(&s, event("cab-queue"), now(), new_exc()).await;
    assert_eq!(r.status(), 200);
    let body = json_of(&r);
    assert_eq!(
        body["awaiting_cab"][0]["deployment_id"],
        "dep-01JD7W4Q5T0000000000000002"
    );
    for role in ["packaging", "publisher", "security_reviewer", ""] {
        assert_eq!(
            handle(&s, event_with_roles("cab-queue", role), now(), new_exc())
                .await
                .status(),
            403,
            "{role}"
        );
    }
}

#[tokio::test]
async fn a_cab_approval_with_conditions_dispatches_ring_1() {
    let s = svc().await;
    let r = handle(&s, event("cab-decision-approve"), now(), new_exc()).await;
    let body = json_of(&r);
    assert_eq!(r.status(), 201, "{body}");
    assert_eq!(body["state"]["state"], "dispatching");
    assert_eq!(
        body["decision"]["conditions"][0],
        "deploy outside trading hours"
    );
    // The same decision again: 409, no second effect.
    let r = handle(&s, event("cab-decision-approve"), now(), new_exc()).await;
    assert_eq!(r.status(), 409);
}

#[tokio::test]
async fn decisions_by_other_roles_are_403_and_bad_bodies_400() {
    let s = svc().await;
    assert_eq!(
        handle(&s, event("cab-decision-forbidden"), now(), new_exc())
            .await
            .status(),
        403
    );
    let r = handle(&s, event("cab-decision-malformed"), now(), new_exc()).await;
    assert_eq!(r.status(), 400);
    let body = json_of(&r);
    let fields: Vec<&str> = body["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"ring") && fields.contains(&"verdict"),
        "{fields:?}"
    );
}

#[tokio::test]
async fn exceptions_are_requested_approved_rejected_and_extended_by_the_right_roles() {
    let s = svc().await;
    // Request (packaging): 201.
    let r = handle(&s, event("exception-request"), now(), new_exc()).await;
    assert_eq!(r.status(), 201, "{}", json_of(&r));
    assert_eq!(json_of(&r)["status"], "pending");
    // Approve (security reviewer): still pending (risk > 50 needs CAB too).
    let r = handle(&s, event("exception-approve"), now(), new_exc()).await;
    assert_eq!(r.status(), 200, "{}", json_of(&r));
    assert_eq!(json_of(&r)["status"], "pending");
    // CAB co-approves: in effect, and the blocked deployment moves on to CAB for Ring 1.
    let r = handle(
        &s,
        event_as("exception-approve", "cab-bob", "cab"),
        now(),
        new_exc(),
    )
    .await;
    let body = json_of(&r);
    assert_eq!(body["status"], "approved", "{body}");
    assert_eq!(body["deployment_state"]["state"], "awaiting_cab");
    // Extend (security reviewer).
    let r = handle(&s, event("exception-extend"), now(), new_exc()).await;
    assert_eq!(r.status(), 200, "{}", json_of(&r));
    // A second extension is refused, naming the field.
    let r = handle(&s, event("exception-extend"), now(), new_exc()).await;
    assert_eq!(r.status(), 400);
    assert_eq!(json_of(&r)["error"]["field"], "days");
    // Rejecting an approved exception: 409.
    assert_eq!(
        handle(&s, event("exception-reject"), now(), new_exc())
            .await
            .status(),
        409
    );
}

#[tokio::test]
async fn exception_routes_refuse_other_roles_and_bad_bodies() {
    let s = svc().await;
    for (name, wrong) in [
        ("exception-request", "auditor"),
        ("exception-approve", "publisher"),
        ("exception-reject", "packaging"),
        ("exception-extend", "cab"),
    ] {
        let r = handle(&s, event_with_roles(name, wrong), now(), new_exc()).await;
        assert_eq!(r.status(), 403, "{name} as {wrong}");
    }
    for (name, field) in [
        ("exception-request", "kind"),
        ("exception-reject", "reason"),
        ("exception-extend", "days"),
    ] {
        let mut v: serde_json::Value =
            serde_json::from_str(&eucora_api::testing::raw(name)).unwrap();
        v["body"] = "{}".into();
        let r = handle(
            &s,
            lambda_http::request::from_str(&v.to_string()).unwrap(),
            now(),
            new_exc(),
        )
        .await;
        assert_eq!(r.status(), 400, "{name}");
        assert_eq!(json_of(&r)["error"]["field"], field, "{name}");
    }
}

/// A request to `route` (`cab/decisions` or `cab/withdrawals`) on deployment `id` by `sub`
/// holding `roles`, with `body`, built from the sample decision event.
fn cab_event(
    route: &str,
    id: &str,
    sub: &str,
    roles: &str,
    body: &serde_json::Value,
) -> lambda_http::Request {
    let mut v = eucora_api::testing::raw_with_roles("cab-decision-approve", roles);
    let path = format!("/v1/deployments/{id}/cab/{route}");
    let key = format!("POST /v1/deployments/{{id}}/cab/{route}");
    v["routeKey"] = key.clone().into();
    v["requestContext"]["routeKey"] = key.into();
    v["rawPath"] = path.clone().into();
    v["requestContext"]["http"]["path"] = path.into();
    v["pathParameters"]["id"] = id.into();
    eucora_api::testing::set_person(&mut v, sub);
    v["body"] = body.to_string().into();
    lambda_http::request::from_str(&v.to_string()).unwrap()
}

/// high-risk as `BUSINESS_CRITICAL` (quorum 2), awaiting CAB for Ring 1: its id and evidence hash.
async fn business_critical(s: &Services<Memory, Memory>) -> (DeploymentId, String) {
    let mut body: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/../../events/deployments/high-risk.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    body["business_criticality"] = "BUSINESS_CRITICAL".into();
    body["correlation_id"] = "dp-20261123-0009".into();
    let text = body.to_string();
    let id = DeploymentId::parse("dep-01JD7W4Q5T0000000000000009").unwrap();
    let at = Timestamp::parse("2026-11-23T09:00:00Z").unwrap();
    let out = submit(
        s,
        &Actor::new(ActorId::parse("packager-alice").unwrap(), [Role::Packaging]),
        SubmitInput {
            body: &text,
            idempotency_key: None,
            new_id: id.clone(),
            now: at,
        },
    )
    .await
    .unwrap();
    score(s, &id, at).await.unwrap();
    let hash = out.record.evidence_hash.to_string();
    (id, hash)
}

#[tokio::test]
async fn an_approval_is_withdrawn_stops_counting_and_is_given_again() {
    let s = svc().await;
    let (id, hash) = business_critical(&s).await;
    let approve = serde_json::json!({ "ring": 1, "verdict": "approve", "evidence_hash": hash });
    let withdraw = serde_json::json!({ "ring": 1, "reason": "the vendor pulled the build" });
    let id = id.as_str();

    let r = handle(
        &s,
        cab_event("decisions", id, "cab-bob", "cab", &approve),
        now(),
        new_exc(),
    )
    .await;
    assert_eq!(r.status(), 201, "{}", json_of(&r));
    // Another member has nothing to withdraw: 409.
    let r = handle(
        &s,
        cab_event("withdrawals", id, "cab-carol", "cab", &withdraw),
        now(),
        new_exc(),
    )
    .await;
    assert_eq!(r.status(), 409);
    assert_eq!(json_of(&r)["error"]["code"], "NO_STANDING_APPROVAL");
    // Other roles: 403; no reason: 400 naming it.
    let r = handle(
        &s,
        cab_event("withdrawals", id, "cab-bob", "publisher", &withdraw),
        now(),
        new_exc(),
    )
    .await;
    assert_eq!(r.status(), 403);
    let r = handle(
        &s,
        cab_event(
            "withdrawals",
            id,
            "cab-bob",
            "cab",
            &serde_json::json!({ "ring": 1 }),
        ),
        now(),
        new_exc(),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(json_of(&r)["error"]["field"], "reason");

    let r = handle(
        &s,
        cab_event("withdrawals", id, "cab-bob", "cab", &withdraw),
        now(),
        new_exc(),
    )
    .await;
    let b = json_of(&r);
    assert_eq!(r.status(), 200, "{b}");
    assert_eq!(b["cab_status"]["approvals"], 0);
    assert_eq!(
        b["withdrawn"]["withdrawn"]["reason"],
        "the vendor pulled the build"
    );
    // Carol alone: pending. Bob again: a renewal, and quorum.
    let r = handle(
        &s,
        cab_event("decisions", id, "cab-carol", "cab", &approve),
        now(),
        new_exc(),
    )
    .await;
    assert_eq!(json_of(&r)["cab_status"]["status"], "pending");
    let r = handle(
        &s,
        cab_event("decisions", id, "cab-bob", "cab", &approve),
        now(),
        new_exc(),
    )
    .await;
    let b = json_of(&r);
    assert_eq!(r.status(), 201, "{b}");
    assert_eq!(b["cab_status"]["status"], "approved");
    assert_eq!(b["state"]["state"], "dispatching");
}
