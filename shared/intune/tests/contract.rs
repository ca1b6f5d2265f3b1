//! The Intune adapter against the Graph simulator: every operation, and every error class.

use std::time::Duration;

use eucora_connector::artifact::MemoryArtifacts;
use eucora_connector::credentials::StaticCredentials;
use eucora_connector::platform::{CallContext, Job, Platform};
use eucora_connector::{CallError, ErrorClass, testing};
use eucora_domain::Ring;
use eucora_domain::evidence::Platform as Kind;
use eucora_domain::gates::InstallOutcome;
use eucora_intune::{IntuneClient, IntuneConfig};
use eucora_service::record::DeploymentRecord;
use eucora_sim_intune::{Fault, RouteMatch, SimConfig, SimDevice, SimHandle};

const SECRET: &str = "graph-secret-1";

struct Fixture {
    sim: SimHandle,
    creds: StaticCredentials,
    client: IntuneClient<StaticCredentials, MemoryArtifacts>,
    record: DeploymentRecord,
}

fn creds_json(sim: &SimHandle, secret: &str) -> String {
    let c = sim.config();
    serde_json::json!({ "tenant_id": c.tenant_id, "client_id": c.client_id, "client_secret": secret }).to_string()
}

async fn fixture(config: SimConfig) -> Fixture {
    let sim = eucora_sim_intune::start(SimConfig {
        client_secret: SECRET.into(),
        ..config
    })
    .await;
    fixture_on(sim).await
}

/// The default tenant without the simulator's realistic latency.
fn fast() -> SimConfig {
    SimConfig {
        latency: Duration::ZERO,
        latency_jitter: Duration::ZERO,
        ..SimConfig::default()
    }
}

async fn fixture_on(sim: SimHandle) -> Fixture {
    let artifacts = MemoryArtifacts::default();
    let svc = testing::services();
    let record = testing::dispatched(
        &svc,
        &artifacts,
        "low-risk",
        "dep-intune",
        "dp-intune-1",
        |_, p| eucora_intune::intunewin::build("7z2408-x64.exe", p),
    )
    .await;
    let creds = StaticCredentials::new(&creds_json(&sim, SECRET));
    let cfg = IntuneConfig {
        login_base: sim.base_url(),
        graph_base: sim.base_url(),
        poll_interval: Duration::from_millis(5),
        ..IntuneConfig::default()
    };
    let client = IntuneClient::new(cfg, creds.clone(), artifacts).unwrap();
    Fixture {
        sim,
        creds,
        client,
        record,
    }
}

fn job<'a>(f: &'a Fixture, ring: Ring, group: &'a str) -> Job<'a> {
    Job {
        deployment: &f.record,
        ring,
        group_id: group,
        earlier_groups: &[],
        artifact: f.record.submission.artifact(Kind::Windows).unwrap(),
        now: f.record.submitted_at,
    }
}

fn cx(f: &Fixture) -> CallContext {
    CallContext::new(f.record.correlation_id().clone())
}

#[tokio::test]
async fn publish_creates_uploads_commits_publishes_and_assigns() {
    let f = fixture(fast()).await;
    let mut c = cx(&f);
    let ids = f
        .client
        .publish(&mut c, &job(&f, Ring::Canary, "grp-canary"))
        .await
        .unwrap();
    let apps = f.sim.apps();
    assert_eq!(apps.len(), 1);
    let app = &apps[0];
    assert_eq!(ids["app_id"], app.id.as_str());
    assert_eq!(app.publishing_state.as_str(), "published");
    assert_eq!(
        app.committed_content_version.as_deref(),
        ids["content_version"].as_str()
    );
    assert_eq!(app.assignments.len(), 1);
    assert_eq!(app.assignments[0].intent, "required");
    assert_eq!(app.assignments[0].group_id.as_deref(), Some("grp-canary"));
    // Every call is recorded for the audit trail, without query strings.
    assert!(
        c.calls
            .iter()
            .any(|call| call.operation == "create_app" && call.status == Some(201))
    );
    assert!(c.calls.iter().all(|call| !call.endpoint.contains('?')));
    // Every Graph request carried the correlation id.
    let rid = eucora_intune::client_request_id("dp-intune-1");
    for r in f.sim.requests() {
        if r.path.starts_with("/v1.0") || r.path.starts_with("/beta") {
            assert_eq!(
                r.header("client-request-id"),
                Some(rid.as_str()),
                "{}",
                r.path
            );
            assert_eq!(
                r.header("x-correlation-id"),
                Some("dp-intune-1"),
                "{}",
                r.path
            );
        }
    }
}

#[tokio::test]
async fn publishing_again_finds_the_app_and_a_second_ring_merges_the_assignments() {
    let f = fixture(fast()).await;
    f.client
        .publish(&mut cx(&f), &job(&f, Ring::Canary, "grp-canary"))
        .await
        .unwrap();
    f.client
        .publish(&mut cx(&f), &job(&f, Ring::Canary, "grp-canary"))
        .await
        .unwrap();
    assert_eq!(f.sim.apps().len(), 1, "no second app");
    assert_eq!(f.sim.apps()[0].assignments.len(), 1);
    f.client
        .publish(&mut cx(&f), &job(&f, Ring::Pilot, "grp-pilot"))
        .await
        .unwrap();
    let mut groups: Vec<String> = f.sim.apps()[0]
        .assignments
        .iter()
        .filter_map(|a| a.group_id.clone())
        .collect();
    groups.sort();
    assert_eq!(
        groups,
        vec!["grp-canary", "grp-pilot"],
        "assign replaces: the adapter merges"
    );
}

#[tokio::test]
async fn status_reads_the_install_report_with_paging() {
    let f = fixture(fast()).await;
    let mut devices = Vec::new();
    for i in 0..60 {
        devices.push(SimDevice::installed(
            &format!("pc-{i}"),
            &format!("PC{i}"),
            Duration::from_secs(3600),
        ));
    }
    devices.push(SimDevice::failed(
        "pc-bad",
        "PCBAD",
        1603,
        Duration::from_secs(3600),
    ));
    devices.push(SimDevice::silent("pc-off", "PCOFF"));
    f.sim.add_group("grp-canary", devices);
    f.client
        .publish(&mut cx(&f), &job(&f, Ring::Canary, "grp-canary"))
        .await
        .unwrap();
    f.sim.advance(Duration::from_secs(7200));
    let status = f
        .client
        .query_status(&mut cx(&f), &job(&f, Ring::Canary, "grp-canary"))
        .await
        .unwrap();
    let results = &status.devices;
    let count = |o| results.iter().filter(|r| r.outcome == o).count();
    assert_eq!(results.len(), 62);
    assert_eq!(count(InstallOutcome::Installed), 60);
    assert_eq!(count(InstallOutcome::Failed), 1);
    assert_eq!(
        count(InstallOutcome::Pending),
        1,
        "checked in, never finished"
    );
    assert!(results.iter().all(|r| r.platform == Kind::Windows));
    assert!(
        results.iter().all(|r| r.last_contact.is_some()),
        "lastSyncDateTime"
    );
    assert_eq!((status.missing, status.earlier_ring_devices), (0, 0));
}

/// A ring of 20 PCs, 6 of them shared: the report has 36 rows (one per device and user), the
/// connector answers 20 results, and the gate counts 19 of 20 devices installed (95 %, under
/// Ring 1's 97 %), where counting rows would have read 35 of 36 (97.2 %) and promoted.
#[tokio::test]
async fn a_ring_with_shared_pcs_has_one_result_per_device_and_the_gate_counts_devices() {
    use eucora_domain::evidence::SiteClass;
    use eucora_domain::exception::Waivers;
    use eucora_domain::gates::{GateInput, GateKind, GateStatus, evaluate};
    use eucora_domain::policy::Policy;
    use eucora_sim_intune::DeviceOutcome;

    let f = fixture(fast()).await;
    let hour = Duration::from_secs(3600);
    let mut devices = Vec::new();
    for i in 0..14 {
        devices.push(SimDevice::installed(
            &format!("pc-{i}"),
            &format!("PC{i}"),
            hour,
        ));
    }
    for i in 0..5 {
        let users: Vec<String> = (0..4)
            .map(|u| format!("user{u}.shared{i}@contoso.com"))
            .collect();
        let users: Vec<&str> = users.iter().map(String::as_str).collect();
        devices.push(
            SimDevice::installed(&format!("shared-{i}"), &format!("SHARED{i}"), hour)
                .shared_by(&users),
        );
    }
    devices.push(
        SimDevice::installed("kiosk", "KIOSK", hour)
            .shared_by(&["ann@contoso.com"])
            .with_user_outcome(
                "bob@contoso.com",
                DeviceOutcome::Failed { error_code: 1603 },
            ),
    );
    f.sim.add_group("grp-canary", devices);
    let j = job(&f, Ring::Canary, "grp-canary");
    f.client.publish(&mut cx(&f), &j).await.unwrap();
    f.sim.advance(2 * hour);

    let results = f
        .client
        .query_status(&mut cx(&f), &j)
        .await
        .unwrap()
        .devices;
    assert_eq!(results.len(), 20, "one result per device, not per user");
    let mut ids: Vec<&str> = results.iter().map(|r| r.device_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 20);
    let count = |o| results.iter().filter(|r| r.outcome == o).count();
    assert_eq!(count(InstallOutcome::Installed), 19);
    assert_eq!(count(InstallOutcome::Failed), 1);
    let kiosk = results.iter().find(|r| r.device_id == "kiosk").unwrap();
    assert_eq!(
        kiosk.outcome,
        InstallOutcome::Failed,
        "one user's failure fails the device"
    );
    let policy = Policy::bundled();
    let entered = j.now;
    let decision = evaluate(
        &GateInput {
            ring: Ring::Canary,
            entered_at: entered,
            now: entered.plus(policy.gates.ring(Ring::Canary).min_observation),
            devices: &results,
            platforms: &[Kind::Windows],
            statuses: &[],
            planned_targets: None,
            planned_site_class: SiteClass::Online,
            open_incidents: 0,
            rollback_validated: true,
            next: None,
            waivers: &Waivers::default(),
        },
        &policy,
    );
    let rate = decision.check(GateKind::SuccessRate).unwrap();
    assert_eq!(rate.status, GateStatus::Fail, "{}", rate.detail);
    assert_eq!(rate.actual.to_string(), "95.00 %");
    assert!(rate.detail.contains("1 failed of 20"), "{}", rate.detail);
}

#[tokio::test]
async fn rollback_assigns_the_uninstall_intent() {
    let f = fixture(fast()).await;
    f.client
        .publish(&mut cx(&f), &job(&f, Ring::Canary, "grp-canary"))
        .await
        .unwrap();
    f.client
        .rollback(&mut cx(&f), &job(&f, Ring::Canary, "grp-canary"))
        .await
        .unwrap();
    let a = &f.sim.apps()[0].assignments;
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].intent, "uninstall");
}

async fn publish_error(f: &Fixture) -> CallError {
    f.client
        .publish(&mut cx(f), &job(f, Ring::Canary, "grp-canary"))
        .await
        .unwrap_err()
}

#[tokio::test]
async fn every_error_class() {
    let f = fixture(fast()).await;
    let create =
        || RouteMatch::MethodPath("POST".into(), "/v1.0/deviceAppManagement/mobileApps".into());

    f.sim
        .faults()
        .fail_next(create(), Fault::ServiceUnavailable, 1);
    let e = publish_error(&f).await;
    assert_eq!((e.class, e.status), (ErrorClass::Transient, Some(503)));

    f.sim.faults().fail_next(
        create(),
        Fault::TooManyRequests {
            retry_after: Some(2.128),
        },
        1,
    );
    let e = publish_error(&f).await;
    assert_eq!(e.class, ErrorClass::Transient);
    assert_eq!(e.retry_after, Some(Duration::from_millis(2128)));

    f.sim
        .faults()
        .fail_next(create(), Fault::TooManyRequests { retry_after: None }, 1);
    assert_eq!(publish_error(&f).await.retry_after, None);

    f.sim.faults().fail_next(create(), Fault::Conflict, 1);
    assert_eq!(publish_error(&f).await.class, ErrorClass::Permanent);

    f.sim.faults().fail_next(create(), Fault::Forbidden, 1);
    assert_eq!(publish_error(&f).await.class, ErrorClass::PolicyViolation);

    f.sim.faults().fail_next(create(), Fault::DropConnection, 1);
    let e = publish_error(&f).await;
    assert_eq!((e.class, e.status), (ErrorClass::Transient, None));

    f.sim.faults().fail_next(
        RouteMatch::Path("/v1.0/deviceAppManagement/mobileApps".into()),
        Fault::MalformedBody,
        1,
    );
    assert_eq!(publish_error(&f).await.class, ErrorClass::Transient);

    // 401 once: the token and the secret are refreshed and the call succeeds.
    f.sim.faults().fail_next(create(), Fault::Unauthorized, 1);
    let mut c = cx(&f);
    f.client
        .publish(&mut c, &job(&f, Ring::Canary, "grp-canary"))
        .await
        .unwrap();
    assert!(c.auth_refreshed);
    assert_eq!(
        f.sim.apps().len(),
        1,
        "the failures above created nothing twice"
    );
}

#[tokio::test]
async fn an_invalid_payload_is_refused_before_calling() {
    let f = fixture(fast()).await;
    let mut record = f.record.clone();
    record.submission.evidence.artifacts[0].install_command = None;
    let j = Job {
        deployment: &record,
        artifact: record.submission.artifact(Kind::Windows).unwrap(),
        ..job(&f, Ring::Canary, "grp-canary")
    };
    let mut c = cx(&f);
    let e = f.client.publish(&mut c, &j).await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Permanent, "INTUNE_INVALID_PAYLOAD")
    );
    assert!(c.calls.is_empty());
}

#[tokio::test]
async fn an_expired_token_and_a_rotated_secret_are_picked_up_without_failing() {
    let f = fixture(fast()).await;
    f.client
        .publish(&mut cx(&f), &job(&f, Ring::Canary, "grp-canary"))
        .await
        .unwrap();
    // The token expires mid-run.
    f.sim.expire_tokens();
    let mut c = cx(&f);
    f.client
        .publish(&mut c, &job(&f, Ring::Pilot, "grp-pilot"))
        .await
        .unwrap();
    assert!(c.auth_refreshed);
    // The secret is rotated in the vault and on the platform; tokens issued with the old one end.
    f.sim.rotate_secret("graph-secret-2");
    f.creds.rotate(&creds_json(&f.sim, "graph-secret-2"));
    f.sim.expire_tokens();
    let mut c = cx(&f);
    f.client
        .rollback(&mut c, &job(&f, Ring::Pilot, "grp-pilot"))
        .await
        .unwrap();
    assert!(c.auth_refreshed);
}

#[tokio::test]
async fn the_tenant_write_limit_answers_429_with_retry_after() {
    let f = fixture(SimConfig {
        write_limit: 3,
        write_window: Duration::from_secs(20),
        ..fast()
    })
    .await;
    let e = publish_error(&f).await;
    assert_eq!((e.class, e.status), (ErrorClass::Transient, Some(429)));
    assert!(e.retry_after.is_some());
}
