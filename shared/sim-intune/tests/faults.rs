//! Fault injection (each fault, the seeded transient rate) and the tenant write limit.

mod common;

use std::time::{Duration, Instant};

use common::{APPS, Api, sim, win32_app};
use eucora_sim_intune::{Fault, IntuneSim, RouteMatch, SimConfig, start};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn too_many_requests_with_and_without_retry_after() {
    let sim = sim().await;
    let api = Api::new(&sim).await;
    sim.faults().fail_next(
        RouteMatch::Path(APPS.into()),
        Fault::TooManyRequests {
            retry_after: Some(2.128),
        },
        1,
    );
    sim.faults().fail_next(
        RouteMatch::Any,
        Fault::TooManyRequests { retry_after: None },
        1,
    );
    let first = api.get(APPS).await;
    assert_eq!(first.status, 429);
    assert_eq!(first.header("retry-after"), Some("2.128"));
    assert_eq!(first.code(), "TooManyRequests");
    assert!(first.header("request-id").is_some());
    let second = api.get(APPS).await;
    assert_eq!(second.status, 429);
    assert_eq!(second.header("retry-after"), None);
    assert_eq!(api.get(APPS).await.status, 200, "faults are used up");
    assert_eq!(sim.faults().remaining(), 0);
}

#[tokio::test]
async fn service_unavailable_unauthorized_and_conflict_per_route() {
    let sim = sim().await;
    let api = Api::new(&sim).await;
    let faults = sim.faults();
    faults.fail_next(
        RouteMatch::MethodPath("POST".into(), APPS.into()),
        Fault::Conflict,
        1,
    );
    faults.fail_next(
        RouteMatch::MethodPath("GET".into(), APPS.into()),
        Fault::ServiceUnavailable,
        1,
    );
    faults.fail_next(
        RouteMatch::MethodPath("GET".into(), APPS.into()),
        Fault::Unauthorized,
        1,
    );
    let conflict = api.post(APPS, &win32_app("X", "1")).await;
    assert_eq!(
        (conflict.status, conflict.code().as_str()),
        (409, "Conflict")
    );
    assert!(sim.apps().is_empty(), "a faulted request has no effect");
    let unavailable = api.get(APPS).await;
    assert_eq!(
        (unavailable.status, unavailable.code().as_str()),
        (503, "serviceNotAvailable")
    );
    let unauthorized = api.get(APPS).await;
    assert_eq!(
        (unauthorized.status, unauthorized.code().as_str()),
        (401, "InvalidAuthenticationToken")
    );
    assert_eq!(api.post(APPS, &win32_app("X", "1")).await.status, 201);

    faults.fail_next(RouteMatch::Token, Fault::ServiceUnavailable, 1);
    let token = api
        .http
        .post(sim.token_url())
        .form(&[
            ("client_id", "x"),
            ("client_secret", "y"),
            ("scope", "https://graph.microsoft.com/.default"),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 503);
    let body: serde_json::Value = token.json().await.unwrap();
    assert_eq!(
        body["error"], "temporarily_unavailable",
        "identity-platform shape on the token endpoint"
    );
}

#[tokio::test]
async fn slow_delays_the_answer_after_the_effect() {
    let sim = sim().await;
    let api = Api::new(&sim).await;
    sim.faults().fail_next(
        RouteMatch::Path(APPS.into()),
        Fault::Slow(Duration::from_millis(300)),
        1,
    );
    let started = Instant::now();
    assert_eq!(api.get(APPS).await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));

    // Held back far longer than the client waits: the client gives up, the effect stays.
    sim.faults().fail_next(
        RouteMatch::Path(APPS.into()),
        Fault::Slow(Duration::from_secs(600)),
        1,
    );
    let impatient = api
        .http
        .post(format!("{}{APPS}", api.base))
        .bearer_auth(&api.token)
        .timeout(Duration::from_secs(2))
        .json(&win32_app("Slow", "1"))
        .send()
        .await;
    assert!(impatient.unwrap_err().is_timeout());
    // The simulator records a request once it has taken effect: wait for that (the bound only
    // keeps a regression from hanging the suite).
    tokio::time::timeout(Duration::from_secs(120), async {
        while !sim
            .requests()
            .iter()
            .any(|r| r.method == "POST" && r.path == APPS)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the POST was handled");
    assert_eq!(
        sim.apps().len(),
        1,
        "the request took effect although the client gave up"
    );
}

#[tokio::test]
async fn drop_connection_closes_without_an_answer_or_an_effect() {
    let sim = sim().await;
    let api = Api::new(&sim).await;
    sim.faults().fail_next(
        RouteMatch::MethodPath("POST".into(), APPS.into()),
        Fault::DropConnection,
        1,
    );
    let dropped = api
        .try_send(Method::POST, APPS, Some(&win32_app("Dropped", "1")))
        .await;
    let error = dropped.unwrap_err();
    assert!(!error.is_timeout(), "{error:?}");
    assert!(sim.apps().is_empty());
    let recorded = sim
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.method == "POST" && r.path == APPS)
        .unwrap();
    assert_eq!(recorded.status, None);
    assert_eq!(recorded.fault, Some(Fault::DropConnection));
    assert_eq!(
        api.post(APPS, &win32_app("Retried", "1")).await.status,
        201,
        "the next connection works"
    );
}

#[tokio::test]
async fn drop_response_loses_the_answer_of_a_request_that_took_effect() {
    let sim = sim().await;
    let api = Api::new(&sim).await;
    sim.faults().fail_next(
        RouteMatch::MethodPath("POST".into(), APPS.into()),
        Fault::DropResponse,
        1,
    );
    assert!(
        api.try_send(Method::POST, APPS, Some(&win32_app("Lost", "1")))
            .await
            .is_err()
    );
    assert_eq!(
        sim.apps().len(),
        1,
        "the app exists although the client saw no answer"
    );
    assert_eq!(sim.apps()[0].display_name, "Lost");
}

#[tokio::test]
async fn malformed_body_is_a_200_cut_short() {
    let sim = sim().await;
    let api = Api::new(&sim).await;
    api.post(APPS, &win32_app("Some app", "1")).await;
    sim.faults()
        .fail_next(RouteMatch::Path(APPS.into()), Fault::MalformedBody, 1);
    let answer = api.get(APPS).await;
    assert_eq!(answer.status, 200);
    assert!(answer.text.starts_with('{'));
    assert!(
        serde_json::from_str::<serde_json::Value>(&answer.text).is_err(),
        "{}",
        answer.text
    );
}

#[tokio::test]
async fn the_transient_rate_is_seeded_and_spares_the_token_endpoint() {
    async fn statuses(seed: u64) -> Vec<u16> {
        let sim = start(SimConfig {
            seed,
            latency: std::time::Duration::ZERO,
            latency_jitter: std::time::Duration::ZERO,
            ..SimConfig::default()
        })
        .await;
        let api = Api::new(&sim).await;
        sim.faults().transient_rate(40);
        let mut statuses = Vec::new();
        for _ in 0..40 {
            statuses.push(api.get(APPS).await.status);
        }
        // The token endpoint is never hit by the transient rate.
        common::token(&api.http, &sim).await;
        statuses
    }
    let first = statuses(7).await;
    assert_eq!(first, statuses(7).await, "same seed, same faults");
    assert!(
        first.contains(&200) && first.contains(&429) && first.contains(&503),
        "{first:?}"
    );

    let sim = sim().await;
    let api = Api::new(&sim).await;
    sim.faults().transient_rate(100);
    let mut with_retry_after = 0;
    for _ in 0..30 {
        let answer = api.get(APPS).await;
        assert!(answer.status == 429 || answer.status == 503);
        if let Some(value) = answer.header("retry-after") {
            let seconds: f64 = value.parse().unwrap();
            assert!((0.05..=0.5).contains(&seconds));
            with_retry_after += 1;
        }
    }
    assert!(with_retry_after > 0);
    sim.faults().clear();
    assert_eq!(api.get(APPS).await.status, 200);
}

#[tokio::test]
async fn the_tenant_write_limit_answers_429_with_a_fractional_retry_after() {
    let sim = IntuneSim::new()
        .latency(std::time::Duration::ZERO, std::time::Duration::ZERO)
        .write_limit(5)
        // Far longer than six writes take: the window's sliding is the unit test's
        // (`state::tests::the_write_window_slides`), on instants it chooses.
        .write_window(Duration::from_secs(600))
        .start()
        .await;
    let api = Api::new(&sim).await;
    for i in 0..5 {
        // Writes count whatever their outcome: the third is refused by validation.
        let body = if i == 2 {
            json!({})
        } else {
            win32_app(&format!("App {i}"), "1")
        };
        let answer = api.post(APPS, &body).await;
        assert!(answer.status == 201 || answer.status == 400);
    }
    let limited = api.post(APPS, &win32_app("One too many", "1")).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.code(), "TooManyRequests");
    let retry_after: f64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!(retry_after > 0.0 && retry_after <= 600.0, "{retry_after}");
    assert_eq!(api.get(APPS).await.status, 200, "reads are not writes");
    assert_eq!(sim.apps().len(), 4);
}

#[tokio::test]
async fn every_request_is_recorded_with_its_answer() {
    let sim = sim().await;
    let api = Api::new(&sim).await;
    api.http
        .get(format!("{}{APPS}", api.base))
        .query(&[("$filter", "displayName eq 'x'")])
        .bearer_auth(&api.token)
        .header("Client-Request-Id", "dddddddd-0000-0000-0000-000000000001")
        .send()
        .await
        .unwrap();
    let requests = sim.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].status, Some(200));
    assert!(requests[0].body.contains("grant_type=client_credentials"));
    let get = &requests[1];
    assert_eq!(
        (get.method.as_str(), get.path.as_str(), get.status),
        ("GET", APPS, Some(200))
    );
    assert_eq!(
        get.query_param("$filter").as_deref(),
        Some("displayName eq 'x'")
    );
    assert_eq!(
        get.header("client-request-id"),
        Some("dddddddd-0000-0000-0000-000000000001")
    );
    assert!(
        get.headers
            .iter()
            .all(|(name, _)| name == &name.to_lowercase())
    );
    assert!(get.seq > requests[0].seq);
}
