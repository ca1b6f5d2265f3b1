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

/// The sample event with a query string.
fn with_query(name: &str, query: &str) -> lambda_http::Request {
    let mut v: serde_json::Value = serde_json::from_str(&eucora_api::testing::raw(name)).unwrap();
    v["rawQueryString"] = query.into();
    lambda_http::request::from_str(&v.to_string()).unwrap()
}

/// Grows the submitted deployment's trail to `len` events.
async fn grow(s: &Services<Memory, Memory>, len: u64) {
    use eucora_service::ports::DeploymentStore;
    let record = s.store.get(&id()).await.unwrap().unwrap();
    let mut change = eucora_service::record::Change::new(record);
    let actor = eucora_service::Actor::system("gate-evaluation");
    while change.record.audit_head.len < len {
        let n = change.record.audit_head.len;
        change.audit(
            &actor,
            eucora_domain::audit::AuditKind::GateEvaluated,
            serde_json::json!({ "n": n }),
            now(),
        );
    }
    s.store.save(&change).await.unwrap();
}

#[tokio::test]
async fn the_audit_trail_is_read_page_by_page_following_next_cursor() {
    let s = svc();
    submitted(&s).await;
    grow(&s, 450).await;
    // Without a limit: the default page.
    let first = json_of(&handle(&s, event("get-audit"), now(), id()).await);
    assert_eq!(first["events"].as_array().unwrap().len(), 200);
    let (mut query, mut sizes, mut seqs) = ("limit=200".to_owned(), Vec::new(), Vec::new());
    loop {
        let r = handle(&s, with_query("get-audit", &query), now(), id()).await;
        assert_eq!(r.status(), 200, "{}", json_of(&r));
        let page = json_of(&r);
        let events = page["events"].as_array().unwrap();
        sizes.push(events.len());
        seqs.extend(events.iter().map(|e| e["seq"].as_u64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(c) => query = format!("cursor={c}&limit=200"),
            None => {
                assert!(page["next_cursor"].is_null());
                break;
            }
        }
    }
    assert_eq!(sizes, [200, 200, 50]);
    assert_eq!(seqs, (0..450).collect::<Vec<u64>>());
    // A cursor past the end: an empty last page.
    let r = handle(
        &s,
        with_query("get-audit", "cursor=00000000000f4240"),
        now(),
        id(),
    )
    .await;
    assert_eq!(
        json_of(&r),
        serde_json::json!({ "events": [], "next_cursor": null })
    );
}

#[tokio::test]
async fn a_bad_cursor_limit_or_checkpoint_is_400_naming_it() {
    let s = svc();
    submitted(&s).await;
    let hash = "a".repeat(64);
    for (route, query, field) in [
        ("get-audit", "limit=0", "limit"),
        ("get-audit", "limit=1001", "limit"),
        ("get-audit", "limit=abc", "limit"),
        ("get-audit", "limit=-1", "limit"),
        ("get-audit", "limit=%2B5", "limit"),
        ("get-audit", "limit=1.0", "limit"),
        ("get-audit", "limit=007", "limit"),
        ("get-audit", "limit=", "limit"),
        ("get-audit", "limit=5&limit=6", "limit"),
        ("get-audit", "cursor=xyz", "cursor"),
        ("get-audit", "cursor=000000000000000A", "cursor"),
        ("get-audit", "cursor=", "cursor"),
        ("verify-audit", "checkpoint=3", "checkpoint"),
        (
            "verify-audit",
            &format!("checkpoint=03.{hash}"),
            "checkpoint",
        ),
        (
            "verify-audit",
            &format!("checkpoint=3.{}", &hash[1..]),
            "checkpoint",
        ),
    ] {
        let r = handle(&s, with_query(route, query), now(), id()).await;
        assert_eq!(r.status(), 400, "{route}?{query}");
        let body = json_of(&r);
        assert_eq!(body["error"]["code"], "INVALID_REQUEST", "{route}?{query}");
        assert_eq!(body["error"]["field"], field, "{route}?{query}");
    }
    for ok in ["limit=1", "limit=1000", "cursor=0000000000000000&limit=7"] {
        let r = handle(&s, with_query("get-audit", ok), now(), id()).await;
        assert_eq!(r.status(), 200, "{ok}");
    }
}

#[tokio::test]
async fn verification_answers_its_checkpoint_and_resumes_from_it() {
    let s = svc();
    submitted(&s).await;
    grow(&s, 30).await;
    let first = json_of(&handle(&s, event("verify-audit"), now(), id()).await);
    assert_eq!(first["valid"], true);
    assert_eq!(first["checkpoint"]["seq"], 29);
    let checkpoint = format!(
        "{}.{}",
        first["checkpoint"]["seq"],
        first["checkpoint"]["hash"].as_str().unwrap()
    );
    grow(&s, 45).await;
    let query = format!("checkpoint={checkpoint}");
    let next = json_of(&handle(&s, with_query("verify-audit", &query), now(), id()).await);
    assert_eq!(next["valid"], true, "{next}");
    assert_eq!(
        (next["events"].as_u64(), next["checked"].as_u64()),
        (Some(45), Some(15))
    );
    assert_eq!(next["from"]["seq"], 29);
    assert_eq!(next["checkpoint"]["seq"], 44);

    // A checkpoint with another hash: not verified, and no checkpoint to resume from.
    let wrong = format!("checkpoint=29.{}", "0".repeat(64));
    let v = json_of(&handle(&s, with_query("verify-audit", &wrong), now(), id()).await);
    assert_eq!(v["valid"], false);
    assert_eq!(v["problem"]["problem"], "checkpoint_mismatch");
    assert!(v.get("checkpoint").is_none());

    // An event altered after the checkpoint.
    s.store.tamper_audit(&id(), |events| {
        events[40].detail = serde_json::json!({ "n": "edited" });
    });
    let v = json_of(&handle(&s, with_query("verify-audit", &query), now(), id()).await);
    assert_eq!(v["valid"], false);
    assert_eq!(
        v["problem"],
        serde_json::json!({ "problem": "altered", "index": 40 })
    );
}
