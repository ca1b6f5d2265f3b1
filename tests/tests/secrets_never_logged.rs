//! No secret value — client secrets, passwords, access tokens — appears in any log line or audit
//! event, through token refreshes, a 401, a rotation and a refused credential.

use eucora_connector::artifact::MemoryArtifacts;
use eucora_connector::testing;
use eucora_domain::evidence::Platform;
use eucora_service::ports::{DeploymentStore, QueueName};
use eucora_system_tests::logs::Captured;
use eucora_system_tests::platforms::Platforms;
use eucora_system_tests::{VirtualQueue, drain};

/// Every secret the run used: both client secrets (old and new), the API password, and every
/// bearer token the simulators saw.
fn secrets_used(p: &Platforms) -> Vec<String> {
    let j = eucora_sim_jamf::SimConfig::default();
    let mut secrets = vec![
        eucora_sim_intune::SimConfig::default().client_secret,
        "intune-rotated-s3cr3t".to_owned(),
        j.client_secret.clone(),
        "jamf-rotated-s3cr3t".to_owned(),
        j.password.clone(),
    ];
    let bearer = |h: Option<&str>| h.and_then(|h| h.strip_prefix("Bearer ")).map(str::to_owned);
    secrets.extend(
        p.intune_sim
            .requests()
            .iter()
            .filter_map(|r| bearer(r.header("authorization"))),
    );
    secrets.extend(
        p.jamf_sim
            .requests()
            .iter()
            .filter_map(|r| bearer(r.header("authorization"))),
    );
    secrets.sort();
    secrets.dedup();
    secrets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_any_log_line_or_audit_event() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .init();

    let clock = eucora_system_tests::test_clock();
    let svc = testing::services();
    let artifacts = MemoryArtifacts::default();
    let p = Platforms::start(&svc.store, &artifacts, 3, &clock).await;
    let record = testing::dispatched(
        &svc,
        &artifacts,
        "multi-platform",
        "dep-secret",
        "dp-secret-1",
        |platform, payload| match platform {
            Platform::Windows => eucora_intune::intunewin::build("setup.exe", payload),
            Platform::Macos => payload.to_vec(),
        },
    )
    .await;
    let (win_q, mac_q) = (VirtualQueue::new(50, &clock), VirtualQueue::new(50, &clock));
    for (q, e) in svc.queue.drain() {
        match q {
            QueueName::Connector(Platform::Windows) => win_q.send(e.to_json()),
            QueueName::Connector(Platform::Macos) => mac_q.send(e.to_json()),
            QueueName::Scoring => {}
        }
    }
    // The secrets are rotated on the platforms before the connectors run: the cached secret is
    // refused, read again, and the new one works. Tokens expire mid-run, and one 401 comes back.
    p.intune_sim.rotate_secret("intune-rotated-s3cr3t");
    p.intune_creds.rotate(&serde_json::json!({ "tenant_id": p.intune_sim.config().tenant_id, "client_id": p.intune_sim.config().client_id, "client_secret": "intune-rotated-s3cr3t" }).to_string());
    p.jamf_sim.rotate_secret("jamf-rotated-s3cr3t");
    let j = eucora_sim_jamf::SimConfig::default();
    p.jamf_creds.rotate(&serde_json::json!({ "server_url": p.jamf_sim.base_url(), "client_id": j.client_id, "client_secret": "jamf-rotated-s3cr3t" }).to_string());
    p.intune_sim.faults().fail_next(
        eucora_sim_intune::RouteMatch::Path("/v1.0/deviceAppManagement/mobileApps".into()),
        eucora_sim_intune::Fault::Unauthorized,
        1,
    );
    drain(&win_q, &p.intune).await;
    p.jamf_sim.expire_tokens();
    drain(&mac_q, &p.jamf).await;
    let state = svc
        .store
        .get(&record.id)
        .await
        .unwrap()
        .unwrap()
        .lifecycle
        .state;
    assert_eq!(
        state,
        eucora_domain::lifecycle::DeploymentState::InRing {
            ring: eucora_domain::Ring::Canary
        }
    );

    let secrets = secrets_used(&p);
    assert!(
        secrets.len() >= 7,
        "tokens were issued and used: {}",
        secrets.len()
    );
    let log_text = logs.text();
    assert!(log_text.lines().count() > 10, "logs were captured");
    assert!(
        log_text.contains("refreshing the token and the secret once"),
        "the 401 was logged"
    );
    let audit = serde_json::to_string(&svc.store.audit_trail(&record.id).await.unwrap()).unwrap();
    assert!(
        audit.contains("connector.auth.refresh"),
        "the refresh is an audit event"
    );
    for secret in &secrets {
        assert!(
            !log_text.contains(secret.as_str()),
            "a secret appears in the logs"
        );
        assert!(
            !audit.contains(secret.as_str()),
            "a secret appears in the audit trail"
        );
    }
}
