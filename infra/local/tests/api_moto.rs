//! The local HTTP API: the stand-in JWT authorizer, API Gateway's routing and event, and the
//! same handlers the Lambda functions run, over the table and queues created from template.yaml.

use std::sync::Arc;

use eucora_aws::{DynamoStore, QueueUrls, SqsQueue};
use eucora_domain::cab::Role;
use eucora_local::api::gateway::Api;
use eucora_local::api::jwt::LocalIssuer;
use eucora_local::stack::moto::Moto;
use eucora_local::stack::provision::provision;
use eucora_local::stack::template::Template;
use eucora_service::usecases::Services;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_reach_the_functions_handlers_with_the_callers_claims() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let template =
        Template::parse(&std::fs::read_to_string(repo.join("template.yaml")).unwrap()).unwrap();
    let moto = Moto::start(&repo).unwrap();
    let sdk = moto.sdk().await;
    let stack = provision(&template, "local", &sdk).await.unwrap();
    let urls = QueueUrls {
        scoring: Some(stack.queues["ScoringQueue"].url.clone()),
        intune: Some(stack.queues["IntuneQueue"].url.clone()),
        jamf: Some(stack.queues["JamfQueue"].url.clone()),
    };
    let svc = Services {
        store: DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), stack.table.clone()),
        queue: SqsQueue::new(aws_sdk_sqs::Client::new(&sdk), urls),
        policy: eucora_domain::policy::Policy::bundled(),
    };
    let issuer = LocalIssuer::new(b"test-key");
    let api = Arc::new(Api {
        svc,
        issuer: issuer.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (addr, _server) = eucora_local::api::server::spawn(
        listener,
        api,
        Arc::new(eucora_local::clock::Clock::real()),
    )
    .unwrap();
    let base = format!("http://{addr}");
    let now = eucora_aws::config::now().unix_seconds();
    let token = |sub: &str, role: Role| issuer.token(sub, &[role], now, 3600);
    let http = reqwest::Client::new();
    let body = std::fs::read_to_string(repo.join("events/deployments/low-risk.json")).unwrap();

    // No token: API Gateway's 401, before any function runs.
    let r = http
        .post(format!("{base}/v1/deployments"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A role the route does not allow: the function's 403.
    let r = http
        .post(format!("{base}/v1/deployments"))
        .bearer_auth(token("eve", Role::Auditor))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Submitted by a packager: stored in the emulator's table, queued for scoring.
    let r = http
        .post(format!("{base}/v1/deployments"))
        .bearer_auth(token("packager-alice", Role::Packaging))
        .header("Idempotency-Key", "local-1")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: serde_json::Value = r.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let r = http
        .get(format!("{base}/v1/deployments/{id}"))
        .bearer_auth(token("auditor-erin", Role::Auditor))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let read: serde_json::Value = r.json().await.unwrap();
    assert_eq!(read["correlation_id"], "dp-20261123-0001");
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queued = sqs
        .receive_message()
        .queue_url(&stack.queues["ScoringQueue"].url)
        .send()
        .await
        .unwrap();
    assert_eq!(queued.messages().len(), 1);
    // Unknown routes: API Gateway's 404.
    let r = http
        .get(format!("{base}/v2/nothing"))
        .bearer_auth(token("a", Role::Auditor))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    methods_and_encoded_ids(&http, &base, &id, &token("a", Role::Auditor)).await;
}

/// A method the path does not serve: 405, with the methods it serves (`Allow`). A well-formed id,
/// percent-encoded as clients send it, that names nothing: 404.
async fn methods_and_encoded_ids(http: &reqwest::Client, base: &str, id: &str, token: &str) {
    for (method, path, allow) in [
        (
            reqwest::Method::DELETE,
            format!("/v1/deployments/{id}"),
            "GET",
        ),
        (reqwest::Method::PUT, "/v1/deployments".to_owned(), "POST"),
        (
            reqwest::Method::GET,
            format!("/v1/deployments/{id}/cab/decisions"),
            "POST",
        ),
    ] {
        let r = http
            .request(method.clone(), format!("{base}{path}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{method} {path}");
        assert_eq!(r.headers()["allow"], allow, "{method} {path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "METHOD_NOT_ALLOWED");
    }
    let r = http
        .get(format!("{base}/v1/deployments/dep%3Anone%40x"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
