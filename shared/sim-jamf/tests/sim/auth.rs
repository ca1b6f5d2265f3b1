//! Tokens: OAuth on both paths, Basic user tokens, keep-alive, invalidation, expiry, rotation.

use std::time::{Duration, Instant};

use eucora_sim_jamf::{SimConfig, start};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::helpers::{Sim, oauth_token, pinned_client, second_paragraph};

async fn oauth(base: &str, path: &str, id: &str, secret: &str) -> reqwest::Response {
    pinned_client()
        .post(format!("{base}{path}"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ])
        .send()
        .await
        .unwrap()
}

async fn basic_token(base: &str, user: &str, password: &str) -> reqwest::Response {
    pinned_client()
        .post(format!("{base}/api/v1/auth/token"))
        .basic_auth(user, Some(password))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn oauth_answers_on_both_paths_and_the_token_opens_both_apis() {
    let config = SimConfig::instant();
    let sim = start(config.clone()).await;
    for path in ["/api/v1/oauth/token", "/api/oauth/token"] {
        let response = oauth(
            &sim.base_url(),
            path,
            &config.client_id,
            &config.client_secret,
        )
        .await;
        assert_eq!(response.status(), 200, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 599);
        assert!(body["scope"].is_string());
        let token = body["access_token"].as_str().unwrap();
        let http = pinned_client();
        for api in ["/api/v1/packages", "/JSSResource/policies"] {
            let status = http
                .get(format!("{}{api}", sim.base_url()))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, 200, "{api} with a token from {path}");
        }
    }
}

#[tokio::test]
async fn oauth_refuses_bad_credentials_and_other_grants() {
    let config = SimConfig::instant();
    let sim = start(config.clone()).await;
    let response = oauth(
        &sim.base_url(),
        "/api/v1/oauth/token",
        &config.client_id,
        "wrong",
    )
    .await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    let response = pinned_client()
        .post(format!("{}/api/v1/oauth/token", sim.base_url()))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "x"),
            ("client_secret", "y"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn legacy_only_servers_answer_404_on_the_v1_path() {
    let config = SimConfig {
        legacy_oauth_path_only: true,
        ..SimConfig::instant()
    };
    let sim = start(config.clone()).await;
    let v1 = oauth(
        &sim.base_url(),
        "/api/v1/oauth/token",
        &config.client_id,
        &config.client_secret,
    )
    .await;
    assert_eq!(v1.status(), 404);
    let legacy = oauth(
        &sim.base_url(),
        "/api/oauth/token",
        &config.client_id,
        &config.client_secret,
    )
    .await;
    assert_eq!(legacy.status(), 200);
}

#[tokio::test]
async fn without_oauth_both_paths_are_404_and_basic_tokens_work() {
    let config = SimConfig {
        oauth_enabled: false,
        ..SimConfig::instant()
    };
    let sim = start(config.clone()).await;
    for path in ["/api/v1/oauth/token", "/api/oauth/token"] {
        let response = oauth(
            &sim.base_url(),
            path,
            &config.client_id,
            &config.client_secret,
        )
        .await;
        assert_eq!(response.status(), 404, "{path}");
    }
    let response = basic_token(&sim.base_url(), &config.username, &config.password).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let token = body["token"].as_str().unwrap();
    let status = pinned_client()
        .get(format!("{}/JSSResource/policies", sim.base_url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn basic_tokens_expire_after_1800_seconds_and_refuse_bad_passwords() {
    let config = SimConfig::instant();
    let sim = start(config.clone()).await;
    assert_eq!(
        basic_token(&sim.base_url(), &config.username, "nope")
            .await
            .status(),
        401
    );
    let body: Value = basic_token(&sim.base_url(), &config.username, &config.password)
        .await
        .json()
        .await
        .unwrap();
    assert!(body["token"].as_str().is_some_and(|t| !t.is_empty()));
    let expires_text = body["expires"].as_str().unwrap();
    assert!(
        expires_text.ends_with('Z') && expires_text.contains('.'),
        "{expires_text}"
    );
    let expires = OffsetDateTime::parse(expires_text, &Rfc3339).unwrap();
    // Measured on the simulator's own clock, which stands still: exact however long it took.
    assert_eq!(expires - sim.sim_now(), time::Duration::seconds(1800));
}

#[tokio::test]
async fn keep_alive_replaces_the_token_and_invalidate_ends_it() {
    let config = SimConfig::instant();
    let sim = start(config.clone()).await;
    let http = pinned_client();
    let base = sim.base_url();
    let body: Value = basic_token(&base, &config.username, &config.password)
        .await
        .json()
        .await
        .unwrap();
    let old = body["token"].as_str().unwrap().to_owned();

    let response = http
        .post(format!("{base}/api/v1/auth/keep-alive"))
        .bearer_auth(&old)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let new = body["token"].as_str().unwrap().to_owned();
    assert!(body["expires"].is_string());
    assert_ne!(old, new);

    let packages = format!("{base}/api/v1/packages");
    assert_eq!(
        http.get(&packages)
            .bearer_auth(&old)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        http.get(&packages)
            .bearer_auth(&new)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let again = http
        .post(format!("{base}/api/v1/auth/keep-alive"))
        .bearer_auth(&old)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 401);

    let response = http
        .post(format!("{base}/api/v1/auth/invalidate-token"))
        .bearer_auth(&new)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(
        http.get(&packages)
            .bearer_auth(&new)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}

#[tokio::test]
async fn requests_without_a_valid_token_get_401_in_each_apis_shape() {
    let sim = Sim::start().await;
    let response = sim
        .http
        .get(sim.url("/api/v1/packages"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["httpStatus"], 401);
    assert!(body["errors"].is_array());

    let response = sim
        .http
        .get(sim.url("/JSSResource/policies"))
        .bearer_auth("forged")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = response.text().await.unwrap();
    assert_eq!(
        second_paragraph(&html),
        "The request requires user authentication"
    );

    // Basic auth is not accepted on the Classic API (removed in Jamf Pro 11.5).
    let config = SimConfig::instant();
    let response = sim
        .http
        .get(sim.url("/JSSResource/policies"))
        .basic_auth(&config.username, Some(&config.password))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn expire_tokens_ends_every_token() {
    let sim = Sim::start().await;
    assert_eq!(sim.get("/api/v1/packages").await.status(), 200);
    sim.handle.expire_tokens();
    assert_eq!(sim.get("/api/v1/packages").await.status(), 401);
    assert_eq!(sim.get("/JSSResource/policies").await.status(), 401);
}

#[tokio::test]
async fn tokens_expire_by_real_time() {
    let lifetime = Duration::from_secs(1);
    let config = SimConfig {
        token_lifetime: lifetime,
        ..SimConfig::instant()
    };
    let sim = start(config.clone()).await;
    let http = pinned_client();
    let packages = format!("{}/api/v1/packages", sim.base_url());
    // A fresh token works: tried with new tokens until one is used within its second (a stalled
    // machine only makes it take more tries; a minute's worth at most, against a hang).
    let mut tries = 0;
    let (token, issued) = loop {
        tries += 1;
        assert!(tries <= 60, "no fresh token was accepted");
        let before = Instant::now();
        let token = oauth_token(&http, &sim.base_url(), &config).await;
        let issued = Instant::now();
        let status = http
            .get(&packages)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status();
        if status == 200 {
            break (token, issued);
        }
        assert_eq!(status, 401, "only expiry refuses a fresh token");
        assert!(before.elapsed() >= lifetime, "refused within its lifetime");
    };
    // Past its lifetime (counted from after it was issued), the same token is refused.
    tokio::time::sleep_until((issued + lifetime).into()).await;
    assert_eq!(
        http.get(&packages)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // With a lifetime other than the default, user tokens get the same one (on the simulator's
    // clock, which stands still).
    let body: Value = basic_token(&sim.base_url(), &config.username, &config.password)
        .await
        .json()
        .await
        .unwrap();
    let expires = OffsetDateTime::parse(body["expires"].as_str().unwrap(), &Rfc3339).unwrap();
    assert_eq!(expires - sim.sim_now(), time::Duration::seconds(1));
}

#[tokio::test]
async fn rotating_the_secret_refuses_the_old_one_and_keeps_issued_tokens() {
    let config = SimConfig::instant();
    let sim = Sim::with(config.clone()).await;
    sim.handle.rotate_secret("rotated-secret");
    let base = sim.handle.base_url();
    let old = oauth(
        &base,
        "/api/v1/oauth/token",
        &config.client_id,
        &config.client_secret,
    )
    .await;
    assert_eq!(old.status(), 401);
    assert_eq!(
        basic_token(&base, &config.username, &config.password)
            .await
            .status(),
        401
    );
    let new = oauth(
        &base,
        "/api/v1/oauth/token",
        &config.client_id,
        "rotated-secret",
    )
    .await;
    assert_eq!(new.status(), 200);
    assert_eq!(
        basic_token(&base, &config.username, "rotated-secret")
            .await
            .status(),
        200
    );
    assert_eq!(
        sim.get("/api/v1/packages").await.status(),
        200,
        "tokens issued before stay valid"
    );
    sim.handle.expire_tokens();
    assert_eq!(sim.get("/api/v1/packages").await.status(), 401);
}
