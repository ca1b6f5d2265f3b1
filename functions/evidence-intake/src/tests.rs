//! The handler fed from `events/api/`, over the in-memory adapters.

use eucora_api::testing::{event, event_with_roles, json_of};
use eucora_domain::{DeploymentId, Timestamp};
use eucora_service::memory::Memory;
use eucora_service::usecases::Services;

use crate::handler::handle;

const ID: &str = "dep-01JD7W4Q5T0000000000000001";

fn svc() -> Services<Memory, Memory> {
    let m = Memory::new();
    Services {
        store: m.clone(),
        queue: m,
        policy: eucora_domain::policy::Policy::bundled(),
    }
}

fn now() -> Timestamp {
    Timestamp::parse("2026-11-23T09:00:00Z").unwrap()
}

fn id() -> DeploymentId {
    DeploymentId::parse(ID).unwrap()
}

async fn submitted(s: &Services<Memory, Memory>) {
    let r = handle(s, event("submit-deployment"), now(), id()).await;
    assert_eq!(r.status(), 201, "{}", json_of(&r));
}

#[tokio::test]
async fn submit_creates_then_replays() {
    let s = svc();
    let r = handle(&s, event("submit-deployment"), now(), id()).await;
    assert_eq!(r.status(), 201);
    let body = json_of(&r);
    assert_eq!(body["id"], ID);
    assert_eq!(body["state"]["state"], "submitted");
    assert_eq!(r.headers()["x-correlation-id"], "dp-20261123-0001");
    assert_eq!(s.queue.sent().len(), 1);
    // The same request again: the first answer, no second deployment.
    let r = handle(
        &s,
        event("submit-deployment"),
        now(),
        DeploymentId::parse("dep-2").unwrap(),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(json_of(&r)["id"], ID);
    assert_eq!(s.store.deployment_count(), 1);
}

#[tokio::test]
async fn submit_with_the_same_key_and_another_body_is_409() {
    let s = svc();
    submitted(&s).await;
    let mut v: serde_json::Value =
        serde_json::from_str(&eucora_api::testing::raw("submit-deployment")).unwrap();
    let body = v["body"]
        .as_str()
        .unwrap()
        .replace("\"target_devices\": 1000", "\"target_devices\": 999");
    v["body"] = body.into();
    let r = handle(
        &s,
        lambda_http::request::from_str(&v.to_string()).unwrap(),
        now(),
        DeploymentId::parse("dep-3").unwrap(),
    )
    .await;
    assert_eq!(r.status(), 409);
    assert_eq!(json_of(&r)["error"]["code"], "IDEMPOTENCY_CONFLICT");
}

#[tokio::test]
async fn submit_by_a_role_other_than_packaging_is_403() {
    let r = handle(&svc(), event("submit-deployment-forbidden"), now(), id()).await;
    assert_eq!(r.status(), 403);
    assert_eq!(json_of(&r)["error"]["code"], "FORBIDDEN");
}

#[tokio::test]
async fn a_malformed_submission_is_400_naming_the_fields() {
    let s = svc();
    let r = handle(&s, event("submit-deployment-malformed"), now(), id()).await;
    assert_eq!(r.status(), 400);
    let body = json_of(&r);
    assert_eq!(body["error"]["code"], "EVIDENCE_INCOMPLETE");
    let fields: Vec<String> = body["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        fields.contains(&"evidence.vulnerabilities".to_owned()),
        "{fields:?}"
    );
    assert!(
        fields.contains(&"app.vendor_known".to_owned()),
        "{fields:?}"
    );
    assert_eq!(s.store.deployment_count(), 0, "nothing half-written");
    assert!(s.queue.sent().is_empty());
}

#[tokio::test]
async fn reads_answer_200_for_every_role_and_403_without_one() {
    let s = svc();
    submitted(&s).await;
    for name in ["get-deployment", "get-audit", "verify-audit", "get-openapi"] {
        for role in [
            "packaging",
            "publisher",
            "cab",
            "security_reviewer",
            "auditor",
        ] {
            let r = handle(&s, event_with_roles(name, role), now(), id()).await;
            assert_eq!(r.status(), 200, "{name} as {role}: {}", json_of(&r));
        }
        let r = handle(&s, event_with_roles(name, ""), now(), id()).await;
        assert_eq!(r.status(), 403, "{name} without a role");
    }
    let v = json_of(&handle(&s, event("verify-audit"), now(), id()).await);
    assert_eq!(v["valid"], true);
    let trail = json_of(&handle(&s, event("get-audit"), now(), id()).await);
    assert_eq!(trail["events"][0]["kind"], "deployment.submitted");
    let doc = json_of(&handle(&s, event("get-openapi"), now(), id()).await);
    assert_eq!(doc["openapi"], eucora_api::openapi::OPENAPI_VERSION);
}

#[tokio::test]
async fn an_unknown_deployment_is_404() {
    let r = handle(&svc(), event("get-deployment"), now(), id()).await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn a_route_of_another_function_is_404_here() {
    let r = handle(&svc(), event("cab-queue"), now(), id()).await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn a_method_the_path_does_not_serve_is_405_with_allow() {
    let mut v: serde_json::Value =
        serde_json::from_str(&eucora_api::testing::raw("get-deployment")).unwrap();
    v["routeKey"] = "$default".into();
    v["requestContext"]["routeKey"] = "$default".into();
    v["requestContext"]["http"]["method"] = "DELETE".into();
    let req = lambda_http::request::from_str(&v.to_string()).unwrap();
    let r = handle(&svc(), req, now(), id()).await;
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET");
    assert_eq!(json_of(&r)["error"]["code"], "METHOD_NOT_ALLOWED");
}
