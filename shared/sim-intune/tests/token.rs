//! The token endpoint: success, each identity-platform error, secret rotation and expiry, and
//! Graph's 401 for missing and expired tokens.

mod common;

use common::{APPS, Api, sim};
use eucora_sim_intune::SimHandle;
use serde_json::Value;

async fn ask(
    sim: &SimHandle,
    tenant: &str,
    form: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let url = format!("{}/{tenant}/oauth2/v2.0/token", sim.base_url());
    let answer = reqwest::Client::new()
        .post(url)
        .header("client-request-id", "11111111-2222-3333-4444-555555555555")
        .form(form)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    let headers = answer.headers().clone();
    (status, headers, answer.json().await.unwrap())
}

fn form<'a>(
    sim: &'a eucora_sim_intune::SimConfig,
    secret: &'a str,
    scope: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("client_id", sim.client_id.as_str()),
        ("client_secret", secret),
        ("scope", scope),
        ("grant_type", "client_credentials"),
    ]
}

const SCOPE: &str = "https://graph.microsoft.com/.default";

fn assert_aad_error(body: &Value, error: &str, code: u64) {
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_codes"], serde_json::json!([code]));
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.starts_with(&format!("AADSTS{code}: ")),
        "{description}"
    );
    assert_eq!(
        body["correlation_id"],
        "11111111-2222-3333-4444-555555555555"
    );
    for field in ["timestamp", "trace_id", "error_uri"] {
        assert!(body[field].is_string(), "{field} in {body}");
    }
}

#[tokio::test]
async fn client_credentials_get_a_bearer_token() {
    let sim = sim().await;
    let config = sim.config();
    let (status, headers, body) = ask(
        &sim,
        &config.tenant_id,
        &form(&config, &config.client_secret, SCOPE),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["ext_expires_in"], 3599);
    assert_eq!(
        body["access_token"].as_str().unwrap().split('.').count(),
        3,
        "JWT-shaped"
    );
    assert!(body.get("refresh_token").is_none());
    assert_eq!(headers["cache-control"], "no-store, no-cache");
    assert_eq!(
        headers["client-request-id"],
        "11111111-2222-3333-4444-555555555555"
    );
}

#[tokio::test]
async fn a_wrong_secret_is_401_invalid_client() {
    let sim = sim().await;
    let config = sim.config();
    let (status, _, body) = ask(
        &sim,
        &config.tenant_id,
        &form(&config, "not-the-secret", SCOPE),
    )
    .await;
    assert_eq!(status, 401);
    assert_aad_error(&body, "invalid_client", 7_000_215);
}

#[tokio::test]
async fn an_unknown_tenant_is_400_aadsts90002() {
    let sim = sim().await;
    let config = sim.config();
    let (status, _, body) = ask(
        &sim,
        "00000000-0000-0000-0000-000000000000",
        &form(&config, &config.client_secret, SCOPE),
    )
    .await;
    assert_eq!(status, 400);
    assert_aad_error(&body, "invalid_request", 90_002);
}

#[tokio::test]
async fn a_scope_without_default_is_400_aadsts1002012() {
    let sim = sim().await;
    let config = sim.config();
    let scope = "https://graph.microsoft.com/DeviceManagementApps.ReadWrite.All";
    let (status, _, body) = ask(
        &sim,
        &config.tenant_id,
        &form(&config, &config.client_secret, scope),
    )
    .await;
    assert_eq!(status, 400);
    assert_aad_error(&body, "invalid_scope", 1_002_012);
    let (status, _, body) = ask(
        &sim,
        &config.tenant_id,
        &form(
            &config,
            &config.client_secret,
            "https://elsewhere.example/.default",
        ),
    )
    .await;
    assert_eq!(status, 400);
    assert_aad_error(&body, "invalid_resource", 500_011);
}

#[tokio::test]
async fn an_unknown_client_and_missing_fields_are_refused() {
    let sim = sim().await;
    let config = sim.config();
    let tenant = config.tenant_id.clone();
    let unknown = [
        ("client_id", "nope"),
        ("client_secret", "x"),
        ("scope", SCOPE),
        ("grant_type", "client_credentials"),
    ];
    let (status, _, body) = ask(&sim, &tenant, &unknown).await;
    assert_eq!(status, 400);
    assert_aad_error(&body, "unauthorized_client", 700_016);
    let no_secret = [
        ("client_id", config.client_id.as_str()),
        ("scope", SCOPE),
        ("grant_type", "client_credentials"),
    ];
    let (status, _, body) = ask(&sim, &tenant, &no_secret).await;
    assert_eq!(status, 401);
    assert_aad_error(&body, "invalid_client", 7_000_218);
    let no_grant = [
        ("client_id", config.client_id.as_str()),
        ("client_secret", config.client_secret.as_str()),
        ("scope", SCOPE),
    ];
    let (status, _, body) = ask(&sim, &tenant, &no_grant).await;
    assert_eq!(status, 400);
    assert_aad_error(&body, "invalid_request", 900_144);
    let password = [
        ("client_id", config.client_id.as_str()),
        ("scope", SCOPE),
        ("grant_type", "password"),
    ];
    let (status, _, body) = ask(&sim, &tenant, &password).await;
    assert_eq!(status, 400);
    assert_aad_error(&body, "unsupported_grant_type", 70_003);
}

#[tokio::test]
async fn a_rotated_secret_stops_working_and_an_expired_one_says_so() {
    let sim = sim().await;
    let config = sim.config();
    sim.rotate_secret("the-new-secret");
    let (status, _, body) = ask(
        &sim,
        &config.tenant_id,
        &form(&config, &config.client_secret, SCOPE),
    )
    .await;
    assert_eq!(status, 401);
    assert_aad_error(&body, "invalid_client", 7_000_215);
    let (status, _, _) = ask(
        &sim,
        &config.tenant_id,
        &form(&config, "the-new-secret", SCOPE),
    )
    .await;
    assert_eq!(status, 200);
    sim.expire_secret();
    let (status, _, body) = ask(
        &sim,
        &config.tenant_id,
        &form(&config, "the-new-secret", SCOPE),
    )
    .await;
    assert_eq!(status, 401);
    assert_aad_error(&body, "invalid_client", 7_000_222);
}

#[tokio::test]
async fn graph_answers_401_without_a_token_and_after_expire_tokens() {
    let sim = sim().await;
    let api = Api::new(&sim).await;
    assert_eq!(api.get(APPS).await.status, 200);

    let anonymous = reqwest::Client::new()
        .get(format!("{}{APPS}", sim.base_url()))
        .header("client-request-id", "aaaaaaaa-0000-0000-0000-000000000001")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.headers()["client-request-id"],
        "aaaaaaaa-0000-0000-0000-000000000001"
    );
    assert!(
        anonymous.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let body: Value = anonymous.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    assert_eq!(
        body["error"]["innerError"]["client-request-id"],
        "aaaaaaaa-0000-0000-0000-000000000001"
    );

    sim.expire_tokens();
    let expired = api.get(APPS).await;
    assert_eq!(expired.status, 401);
    assert_eq!(expired.code(), "InvalidAuthenticationToken");
    assert!(
        expired.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );

    let renewed = Api::new(&sim).await;
    assert_eq!(renewed.get(APPS).await.status, 200, "a new token works");
}

#[tokio::test]
async fn a_short_token_lifetime_expires_in_real_time() {
    let sim = eucora_sim_intune::IntuneSim::new()
        .latency(std::time::Duration::ZERO, std::time::Duration::ZERO)
        .token_lifetime(std::time::Duration::from_secs(1))
        .start()
        .await;
    let config = sim.config();
    let tenant = config.tenant_id.clone();
    let (status, _, body) = ask(&sim, &tenant, &form(&config, &config.client_secret, SCOPE)).await;
    assert_eq!(status, 200);
    assert_eq!(body["expires_in"], 1, "the lifetime is announced");
    let api = Api {
        http: reqwest::Client::new(),
        base: sim.base_url(),
        token: body["access_token"].as_str().unwrap().to_owned(),
    };
    // Valid until then is the unit test's (`state::tests::tokens_expire_at_their_lifetime`), on
    // instants it chooses; here: expired once the lifetime has passed, whatever the machine.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let expired = api.get(APPS).await;
    assert_eq!(expired.status, 401);
    assert!(
        expired.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
}
