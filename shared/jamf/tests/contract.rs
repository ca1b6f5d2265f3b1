//! The Jamf adapter against the Jamf Pro simulator: every operation, and every error class.

use std::sync::Arc;
use std::time::Duration;

use eucora_connector::artifact::MemoryArtifacts;
use eucora_connector::credentials::StaticCredentials;
use eucora_connector::platform::{CallContext, Job, Platform};
use eucora_connector::{CallError, ErrorClass, testing};
use eucora_domain::ManualClock;
use eucora_domain::Ring;
use eucora_domain::evidence::Platform as Kind;
use eucora_domain::gates::InstallOutcome;
use eucora_jamf::{JamfClient, JamfConfig};
use eucora_service::record::DeploymentRecord;
use eucora_sim_jamf::{ComputerOutcome, Fault, RouteMatch, SimComputer, SimConfig, SimHandle};

const SECRET: &str = "jamf-secret-1";

struct Fixture {
    sim: SimHandle,
    /// The simulator's clock, starting when the deployment was submitted.
    clock: ManualClock,
    creds: StaticCredentials,
    client: JamfClient<StaticCredentials, MemoryArtifacts>,
    artifacts: MemoryArtifacts,
    record: DeploymentRecord,
}

fn oauth(sim: &SimHandle, secret: &str) -> String {
    let c = SimConfig::default();
    serde_json::json!({ "server_url": sim.base_url(), "client_id": c.client_id, "client_secret": secret }).to_string()
}

async fn fixture(config: SimConfig, creds: impl Fn(&SimHandle) -> String) -> Fixture {
    let artifacts = MemoryArtifacts::default();
    let svc = testing::services();
    let record = testing::dispatched(
        &svc,
        &artifacts,
        "multi-platform",
        "dep-jamf",
        "dp-jamf-1",
        |_, p| p.to_vec(),
    )
    .await;
    let clock = ManualClock::new(record.submitted_at);
    let sim = eucora_sim_jamf::start_on(
        SimConfig {
            client_secret: SECRET.into(),
            ..config
        },
        Arc::new(clock.clone()),
    )
    .await;
    sim.add_computer_group(
        41,
        "EUCORA Ring 1",
        true,
        vec![
            SimComputer::new(1, ComputerOutcome::Completed, Duration::from_secs(600)),
            SimComputer::new(2, ComputerOutcome::Failed, Duration::from_secs(900)),
            SimComputer::new(3, ComputerOutcome::NeverCheckIn, Duration::from_secs(600)),
        ],
    );
    sim.add_computer_group(
        42,
        "EUCORA Ring 2",
        true,
        vec![SimComputer::new(
            4,
            ComputerOutcome::Completed,
            Duration::from_secs(600),
        )],
    );
    let creds = StaticCredentials::new(&creds(&sim));
    let client = JamfClient::new(&JamfConfig::default(), creds.clone(), artifacts.clone()).unwrap();
    Fixture {
        sim,
        clock,
        creds,
        client,
        artifacts,
        record,
    }
}

async fn default_fixture() -> Fixture {
    fixture(SimConfig::instant(), |sim| oauth(sim, SECRET)).await
}

fn job<'a>(f: &'a Fixture, ring: Ring, group: &'a str) -> Job<'a> {
    Job {
        deployment: &f.record,
        ring,
        group_id: group,
        earlier_groups: &[],
        artifact: f.record.submission.artifact(Kind::Macos).unwrap(),
        now: f.record.submitted_at,
    }
}

fn cx(f: &Fixture) -> CallContext {
    CallContext::new(f.record.correlation_id().clone())
}

#[tokio::test]
async fn publish_creates_the_package_and_the_policy_as_the_specification_says() {
    let f = default_fixture().await;
    let ids = f
        .client
        .publish(&mut cx(&f), &job(&f, Ring::Canary, "41"))
        .await
        .unwrap();
    let packages = f.sim.packages();
    assert_eq!(packages.len(), 1);
    assert!(packages[0].uploaded, "the package file is uploaded");
    assert_eq!(packages[0].priority, 10);
    let policies = f.sim.policies();
    assert_eq!(policies.len(), 1);
    let p = &policies[0];
    assert_eq!(ids["policy_id"], p.id.to_string());
    assert_eq!(p.category.as_deref(), Some("control-plane-auto"));
    assert_eq!(p.scope_group_ids, vec![41]);
    assert_eq!(p.package_ids, vec![packages[0].id]);
    assert!(
        p.enabled,
        "the package was processed at once: enabled from the start"
    );
    assert_eq!((p.retry_event.as_str(), p.retry_attempts), ("check-in", 3));
    assert_eq!(p.frequency, "Once per computer");
    // The version pin lives where Jamf keeps it: the package's notes (a policy has none).
    assert!(
        packages[0].notes.contains(&format!(
            "sha256:{}",
            f.record
                .submission
                .artifact(Kind::Macos)
                .unwrap()
                .sha256
                .as_str()
        )),
        "version pin in the package's notes: {}",
        packages[0].notes
    );
    // Every request carried the correlation id, and the load balancer's cookie once it was set.
    let requests = f.sim.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.header("x-correlation-id") == Some("dp-jamf-1"))
    );
    assert!(
        requests
            .iter()
            .skip(1)
            .all(|r| r.cookie("jpro-ingress").is_some()),
        "create-then-use stays on one node"
    );
}

#[tokio::test]
async fn publishing_again_changes_nothing_and_the_next_ring_extends_the_scope() {
    let f = default_fixture().await;
    f.client
        .publish(&mut cx(&f), &job(&f, Ring::Canary, "41"))
        .await
        .unwrap();
    let revision = f.sim.policies()[0].revision;
    f.client
        .publish(&mut cx(&f), &job(&f, Ring::Canary, "41"))
        .await
        .unwrap();
    assert_eq!(f.sim.packages().len(), 1, "no second package");
    assert_eq!(f.sim.policies().len(), 1, "no second policy");
    assert_eq!(
        f.sim.policies()[0].revision,
        revision,
        "no second policy revision"
    );
    f.client
        .publish(&mut cx(&f), &job(&f, Ring::Pilot, "42"))
        .await
        .unwrap();
    let p = &f.sim.policies()[0];
    assert_eq!(p.scope_group_ids, vec![41, 42]);
    assert_eq!(p.revision, revision + 1);
}

fn advance(f: &Fixture, by: Duration) {
    f.clock
        .advance(time::Duration::try_from(by).expect("a short duration"));
}

#[tokio::test]
async fn status_reads_receipts_in_bulk_and_the_policy_logs_of_macs_that_may_have_failed() {
    let f = default_fixture().await;
    f.client
        .publish(&mut cx(&f), &job(&f, Ring::Canary, "41"))
        .await
        .unwrap();
    advance(&f, Duration::from_secs(3600));
    let status = f
        .client
        .query_status(&mut cx(&f), &job(&f, Ring::Canary, "41"))
        .await
        .unwrap();
    let results = &status.devices;
    let outcome = |id: &str| {
        results
            .iter()
            .find(|r| r.device_id == id)
            .map(|r| r.outcome)
    };
    assert_eq!(outcome("1"), Some(InstallOutcome::Installed));
    assert_eq!(outcome("2"), Some(InstallOutcome::Failed));
    assert_eq!(outcome("3"), Some(InstallOutcome::NotReported));
    assert_eq!((status.missing, status.earlier_ring_devices), (0, 0));
    assert!(results.iter().all(|r| r.platform == Kind::Macos));
    assert!(results.iter().all(|r| r.last_contact.is_some()));
    // Only the Mac without a receipt that checked in had its policy logs read.
    let histories: Vec<String> = f
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/JSSResource/computerhistory"))
        .map(|r| r.path)
        .collect();
    assert_eq!(
        histories,
        ["/JSSResource/computerhistory/id/2/subset/PolicyLogs"]
    );
}

#[tokio::test]
async fn rollback_turns_the_package_action_to_uninstall() {
    let f = default_fixture().await;
    f.client
        .publish(&mut cx(&f), &job(&f, Ring::Canary, "41"))
        .await
        .unwrap();
    let mut record = f.record.clone();
    record.submission.evidence.rollback.strategy =
        eucora_domain::evidence::RollbackStrategy::Uninstall;
    let j = Job {
        deployment: &record,
        artifact: record.submission.artifact(Kind::Macos).unwrap(),
        ..job(&f, Ring::Canary, "41")
    };
    f.client.rollback(&mut cx(&f), &j).await.unwrap();
    assert!(
        f.sim.policies()[0]
            .xml
            .contains("<action>Uninstall</action>"),
        "{}",
        f.sim.policies()[0].xml
    );
    // The sample's own strategy, re-pin: the ring's group leaves the scope.
    f.client
        .rollback(&mut cx(&f), &job(&f, Ring::Canary, "41"))
        .await
        .unwrap();
    assert!(f.sim.policies()[0].scope_group_ids.is_empty());
}

#[tokio::test]
async fn the_older_oauth_path_and_basic_tokens_are_fallbacks() {
    let f = fixture(
        SimConfig {
            legacy_oauth_path_only: true,
            ..SimConfig::instant()
        },
        |sim| oauth(sim, SECRET),
    )
    .await;
    f.client
        .publish(&mut cx(&f), &job(&f, Ring::Canary, "41"))
        .await
        .unwrap();
    assert!(
        f.sim
            .requests()
            .iter()
            .any(|r| r.path == "/api/oauth/token" && r.status == 200)
    );

    let basic = |sim: &SimHandle| {
        let c = SimConfig::default();
        serde_json::json!({ "server_url": sim.base_url(), "client_id": "x", "client_secret": "y", "username": c.username, "password": c.password }).to_string()
    };
    let f = fixture(
        SimConfig {
            oauth_enabled: false,
            ..SimConfig::instant()
        },
        basic,
    )
    .await;
    f.client
        .publish(&mut cx(&f), &job(&f, Ring::Canary, "41"))
        .await
        .unwrap();
    assert!(
        f.sim
            .requests()
            .iter()
            .any(|r| r.path == "/api/v1/auth/token" && r.status == 200)
    );
}

async fn publish_error(f: &Fixture) -> CallError {
    f.client
        .publish(&mut cx(f), &job(f, Ring::Canary, "41"))
        .await
        .unwrap_err()
}

#[tokio::test]
async fn every_error_class() {
    let f = default_fixture().await;
    let packages = || RouteMatch::MethodPath("POST".into(), "/api/v1/packages".into());

    f.sim
        .faults()
        .fail_next(packages(), Fault::ServiceUnavailable, 1);
    assert_eq!(publish_error(&f).await.class, ErrorClass::Transient);

    f.sim.faults().fail_next(
        packages(),
        Fault::TooManyRequests {
            retry_after: Some(3.0),
        },
        1,
    );
    let e = publish_error(&f).await;
    assert_eq!(
        (e.class, e.retry_after),
        (ErrorClass::Transient, Some(Duration::from_secs(3)))
    );

    f.sim.faults().fail_next(packages(), Fault::Conflict, 1);
    let e = publish_error(&f).await;
    assert_eq!((e.class, e.status), (ErrorClass::Permanent, Some(409)));

    // A policy of its name exists, yet this node cannot show it: the cluster has not replicated
    // it yet (an earlier attempt's, its answer lost), so the publish waits instead of halting.
    f.sim.faults().fail_next(
        RouteMatch::MethodPath("POST".into(), "/JSSResource/policies".into()),
        Fault::Conflict,
        1,
    );
    let e = publish_error(&f).await;
    assert!(e.is_resume_later(), "{e:?}");
    f.sim.faults().clear();

    f.sim.faults().fail_next(
        RouteMatch::MethodPath("GET".into(), "/JSSResource/policies".into()),
        Fault::Forbidden,
        1,
    );
    assert_eq!(publish_error(&f).await.class, ErrorClass::PolicyViolation);

    f.sim.faults().fail_next(
        RouteMatch::MethodPath("GET".into(), "/api/v1/packages".into()),
        Fault::DropConnection,
        1,
    );
    let e = publish_error(&f).await;
    assert_eq!((e.class, e.status), (ErrorClass::Transient, None));

    f.sim.faults().fail_next(
        RouteMatch::MethodPath("GET".into(), "/api/v1/packages".into()),
        Fault::MalformedBody,
        1,
    );
    assert_eq!(publish_error(&f).await.class, ErrorClass::Transient);

    // 401 once: refreshed and retried without failing.
    f.sim.faults().fail_next(
        RouteMatch::MethodPath("GET".into(), "/JSSResource/policies".into()),
        Fault::Unauthorized,
        1,
    );
    let mut c = cx(&f);
    f.client
        .publish(&mut c, &job(&f, Ring::Canary, "41"))
        .await
        .unwrap();
    assert!(c.auth_refreshed);
    assert_eq!(f.sim.packages().len(), 1);
    assert_eq!(f.sim.policies().len(), 1);
}

#[tokio::test]
async fn an_expired_token_and_a_rotated_secret_are_picked_up_without_failing() {
    let f = default_fixture().await;
    f.client
        .publish(&mut cx(&f), &job(&f, Ring::Canary, "41"))
        .await
        .unwrap();
    f.sim.expire_tokens();
    let mut c = cx(&f);
    f.client
        .publish(&mut c, &job(&f, Ring::Pilot, "42"))
        .await
        .unwrap();
    assert!(c.auth_refreshed);
    f.sim.rotate_secret("jamf-secret-2");
    f.creds.rotate(&oauth(&f.sim, "jamf-secret-2"));
    f.sim.expire_tokens();
    let mut c = cx(&f);
    f.client
        .query_status(&mut c, &job(&f, Ring::Pilot, "42"))
        .await
        .unwrap();
    assert!(c.auth_refreshed);
}

/// Waits until at least `n` requests are in flight at the simulator at once (a minute at most,
/// against a hang only).
async fn wait_for_in_flight(sim: &SimHandle, n: usize) {
    let waited = tokio::time::timeout(Duration::from_secs(60), async {
        while sim.in_flight() < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "{n} requests never were in flight at once (now {})",
        sim.in_flight()
    );
}

#[tokio::test]
async fn never_more_than_5_requests_in_flight() {
    let f = fixture(SimConfig::instant(), |sim| oauth(sim, SECRET)).await;
    f.client
        .publish(&mut cx(&f), &job(&f, Ring::Canary, "41"))
        .await
        .unwrap();
    // The server holds every request until 4 are in flight at once, however slowly the machine
    // gets them there: the load is parallel.
    f.sim.hold_requests();
    let f = Arc::new(f);
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let f = Arc::clone(&f);
        tasks.push(tokio::spawn(async move {
            let mut c = cx(&f);
            f.client
                .query_status(&mut c, &job(&f, Ring::Canary, "41"))
                .await
                .map(|r| r.devices.len())
        }));
    }
    wait_for_in_flight(&f.sim, 4).await;
    f.sim.release_requests();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), 3);
    }
    let peak = f.sim.peak_concurrency();
    assert!(peak <= 5, "peak {peak}");
    assert!(peak >= 4, "the load was parallel (peak {peak})");
}

/// Two connector containers, configured as the template runs them (2 at most, so 2 requests
/// each), publishing and reading status at once against one server: together they never have
/// more than 5 requests in flight, Jamf's limit for the whole fleet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_containers_together_stay_within_jamfs_limit() {
    let f = fixture(SimConfig::instant(), |sim| oauth(sim, SECRET)).await;
    f.client
        .publish(&mut cx(&f), &job(&f, Ring::Canary, "41"))
        .await
        .unwrap();
    // Concurrency, not replication, is what this test is about: containers pinned to the other
    // node would wait a minute for what the first one created.
    f.sim.set_replication_lag(false);
    let config = JamfConfig::for_containers(2).unwrap();
    let mut containers = Vec::new();
    for _ in 0..2 {
        let container = JamfClient::new(&config, f.creds.clone(), f.artifacts.clone()).unwrap();
        // Each container holds its token before the load (a token is fetched one at a time).
        container
            .query_status(&mut cx(&f), &job(&f, Ring::Canary, "41"))
            .await
            .unwrap();
        containers.push(Arc::new(container));
    }
    // The server holds every request until 3 are in flight at once (more than one container's
    // 2), however slowly the machine gets them there: both containers are sending at once.
    f.sim.hold_requests();
    let f = Arc::new(f);
    let mut tasks = Vec::new();
    for container in &containers {
        for task in 0..8 {
            let f = Arc::clone(&f);
            let container = Arc::clone(container);
            tasks.push(tokio::spawn(async move {
                let mut c = cx(&f);
                let job = job(&f, Ring::Canary, "41");
                if task % 2 == 0 {
                    container.publish(&mut c, &job).await.map(|_| 0)
                } else {
                    container
                        .query_status(&mut c, &job)
                        .await
                        .map(|r| r.devices.len())
                }
            }));
        }
    }
    wait_for_in_flight(&f.sim, 3).await;
    f.sim.release_requests();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(f.sim.policies().len(), 1, "one policy for the fleet");
    let peak = f.sim.peak_concurrency();
    assert!(
        peak <= 4,
        "2 containers x 2 requests, at most (peak {peak})"
    );
    assert!(peak <= 5, "Jamf's limit (peak {peak})");
    assert!(
        peak >= 3,
        "both containers were sending at once (peak {peak})"
    );
}

#[tokio::test]
async fn an_invalid_payload_is_refused_before_calling() {
    let f = default_fixture().await;
    let mut c = cx(&f);
    let e = f
        .client
        .publish(&mut c, &job(&f, Ring::Canary, "ring-one"))
        .await
        .unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Permanent, "JAMF_INVALID_PAYLOAD")
    );
    assert!(c.calls.is_empty());
    assert!(f.sim.requests().is_empty());
}
