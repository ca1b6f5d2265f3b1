//! Each injected fault, the matchers, the seeded transient rate, and what the recorder keeps.

use std::time::{Duration, Instant};

use eucora_sim_jamf::{Fault, RouteMatch, SimConfig, start};
use serde_json::Value;

use crate::helpers::{Sim, bare_policy_xml, package, pinned_client, second_paragraph};

fn path(p: &str) -> RouteMatch {
    RouteMatch::Path(p.to_owned())
}

#[tokio::test]
async fn too_many_requests_with_and_without_retry_after() {
    let sim = Sim::start().await;
    sim.handle.faults().fail_next(
        path("/api/v1/packages"),
        Fault::TooManyRequests {
            retry_after: Some(2.128),
        },
        1,
    );
    sim.handle.faults().fail_next(
        path("/api/v1/packages"),
        Fault::TooManyRequests { retry_after: None },
        1,
    );
    let response = sim.get("/api/v1/packages").await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "2.128");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["httpStatus"], 429);
    let response = sim.get("/api/v1/packages").await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().get("retry-after").is_none());
    assert_eq!(
        sim.get("/api/v1/packages").await.status(),
        200,
        "the faults are used up"
    );
}

#[tokio::test]
async fn service_unavailable_unauthorized_and_conflict() {
    let sim = Sim::start().await;
    let faults = sim.handle.faults();
    faults.fail_next(RouteMatch::Any, Fault::ServiceUnavailable, 2);
    assert_eq!(sim.get("/api/v1/packages").await.status(), 503);
    let response = sim.get("/JSSResource/policies").await;
    assert_eq!(response.status(), 503);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains(">Service Unavailable</p>")
    );
    assert_eq!(sim.get("/api/v1/packages").await.status(), 200);

    faults.fail_next(RouteMatch::Any, Fault::Unauthorized, 1);
    assert_eq!(
        sim.get("/api/v1/packages").await.status(),
        401,
        "even with a valid token"
    );

    faults.fail_next(
        RouteMatch::MethodPath("POST".into(), "/JSSResource/policies".into()),
        Fault::Conflict,
        1,
    );
    assert_eq!(
        sim.get("/JSSResource/policies").await.status(),
        200,
        "a GET does not match"
    );
    let response = sim
        .post_xml("/JSSResource/policies/id/0", &bare_policy_xml("Firefox"))
        .await;
    assert_eq!(response.status(), 409);
    assert_eq!(
        second_paragraph(&response.text().await.unwrap()),
        "Error: Duplicate name"
    );
    assert!(
        sim.handle.policies().is_empty(),
        "an injected fault has no effect"
    );
    assert_eq!(faults.pending(), 0);
}

#[tokio::test]
async fn slow_holds_the_answer() {
    let sim = Sim::start().await;
    sim.handle
        .faults()
        .fail_next(RouteMatch::Any, Fault::Slow(Duration::from_millis(300)), 1);
    let started = Instant::now();
    assert_eq!(sim.get("/api/v1/packages").await.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn drop_connection_answers_nothing_and_has_no_effect() {
    let sim = Sim::start().await;
    sim.handle
        .faults()
        .fail_next(path("/api/v1/packages"), Fault::DropConnection, 1);
    let error = sim
        .http
        .post(sim.url("/api/v1/packages"))
        .bearer_auth(&sim.token)
        .json(&package("Firefox"))
        .send()
        .await
        .unwrap_err();
    assert!(!error.is_status() && !error.is_timeout(), "{error:?}");
    assert!(sim.handle.packages().is_empty());
    let dropped = sim
        .handle
        .requests()
        .into_iter()
        .find(|r| r.path == "/api/v1/packages")
        .unwrap();
    assert_eq!(dropped.status, 0);
    assert_eq!(
        sim.post_json("/api/v1/packages", &package("Firefox"))
            .await
            .status(),
        201,
        "the next one is fine"
    );
}

#[tokio::test]
async fn malformed_body_is_a_200_that_does_not_parse_after_the_request_took_effect() {
    let sim = Sim::start().await;
    sim.handle
        .faults()
        .fail_next(path("/api/v1/packages"), Fault::MalformedBody, 1);
    let response = sim.post_json("/api/v1/packages", &package("Firefox")).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    assert_eq!(sim.handle.packages().len(), 1);

    sim.handle
        .faults()
        .fail_next(path("/JSSResource/policies"), Fault::MalformedBody, 1);
    let response = sim
        .post_xml("/JSSResource/policies/id/0", &bare_policy_xml("Firefox"))
        .await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(
        text.starts_with("<?xml") && !text.contains("</policy>"),
        "{text}"
    );
    assert_eq!(sim.handle.policies().len(), 1);
}

#[tokio::test]
async fn the_token_matcher_hits_token_requests_only() {
    let config = SimConfig::instant();
    let sim = start(config.clone()).await;
    sim.faults()
        .fail_next(RouteMatch::Token, Fault::ServiceUnavailable, 1);
    let http = pinned_client();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", config.client_id.as_str()),
        ("client_secret", config.client_secret.as_str()),
    ];
    let url = format!("{}/api/v1/oauth/token", sim.base_url());
    assert_eq!(
        http.post(&url).form(&form).send().await.unwrap().status(),
        503
    );
    assert_eq!(
        http.post(&url).form(&form).send().await.unwrap().status(),
        200
    );
}

async fn statuses_at_rate(seed: u64, percent: u8, count: usize) -> Vec<u16> {
    let sim = Sim::with(SimConfig {
        seed,
        ..SimConfig::instant()
    })
    .await;
    sim.handle.faults().transient_rate(percent);
    let mut statuses = Vec::new();
    for _ in 0..count {
        statuses.push(sim.get("/api/v1/packages").await.status().as_u16());
    }
    statuses
}

#[tokio::test]
async fn the_transient_rate_is_seeded_and_mixes_503_with_429() {
    let all = statuses_at_rate(7, 100, 60).await;
    assert!(all.iter().all(|s| *s == 503 || *s == 429), "{all:?}");
    assert!(all.contains(&503) && all.contains(&429), "{all:?}");
    let some = statuses_at_rate(7, 30, 60).await;
    assert_eq!(
        some,
        statuses_at_rate(7, 30, 60).await,
        "the same seed fails the same requests"
    );
    let failed = some.iter().filter(|s| **s != 200).count();
    assert!((5..=35).contains(&failed), "{failed} of 60");

    let sim = Sim::start().await;
    sim.handle.faults().transient_rate(100);
    sim.handle.faults().clear();
    assert_eq!(sim.get("/api/v1/packages").await.status(), 200);
}

#[tokio::test]
async fn the_recorder_keeps_method_path_query_headers_body_status_and_cookies() {
    let sim = Sim::start().await;
    sim.http
        .get(sim.url("/api/v1/packages?page=0&page-size=5"))
        .bearer_auth(&sim.token)
        .header("X-Correlation-ID", "dp-20260104-0100")
        .send()
        .await
        .unwrap();
    sim.post_xml("/JSSResource/policies/id/0", "<policy/>")
        .await;
    let requests = sim.handle.requests();
    assert_eq!(requests.len(), 3);
    let token = &requests[0];
    assert_eq!(
        (token.method.as_str(), token.path.as_str(), token.status),
        ("POST", "/api/v1/oauth/token", 200)
    );
    assert!(token.body.contains("grant_type=client_credentials"));
    assert!(token.cookies.is_empty());
    let list = &requests[1];
    assert_eq!(list.query, "page=0&page-size=5");
    assert_eq!(list.header("x-correlation-id"), Some("dp-20260104-0100"));
    assert!(
        list.headers
            .iter()
            .any(|(name, _)| name == "x-correlation-id"),
        "names are lowercased"
    );
    assert_eq!(
        list.cookie("jpro-ingress"),
        Some(sim.handle.node_cookies()[token.node].as_str())
    );
    let create = &requests[2];
    assert_eq!(
        (create.method.as_str(), create.body.as_str(), create.status),
        ("POST", "<policy/>", 409)
    );
    sim.handle.clear_requests();
    assert!(sim.handle.requests().is_empty());
}
