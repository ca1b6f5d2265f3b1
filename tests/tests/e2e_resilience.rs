//! The seed's nine connector resilience cases, on the local stack: commands reach the connectors
//! through the emulator's queues (with Lambda's event-source semantics), the circuit breakers
//! live in the emulator's table, the platforms are the simulators with injected faults, and
//! every deployment is submitted and read through the HTTP API.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use eucora_connector::breaker::{BreakerPolicy, BreakerStatus, BreakerStore};
use eucora_domain::evidence::Platform;
use eucora_system_tests::local::{E2e, sample, start};
use eucora_system_tests::logs::Captured;
use serde_json::Value;

/// Log lines of every test in this binary (JSON, one per line).
fn logs() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .init();
        captured
    })
}

/// The captured log lines that mention `needle`, parsed.
fn log_lines(needle: &str) -> Vec<Value> {
    logs()
        .text()
        .lines()
        .filter(|l| l.contains(needle))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// A sample with its own correlation id (and app version: packages are per version).
fn unique(name: &str, correlation: &str) -> Value {
    let mut s = sample(name);
    s["correlation_id"] = correlation.into();
    let version = format!("{}-{correlation}", s["app"]["version"].as_str().unwrap());
    s["app"]["version"] = version.into();
    s
}

/// The multi-platform sample with only its macOS artifact.
fn macos_only(correlation: &str) -> Value {
    let mut s = unique("multi-platform", correlation);
    s["evidence"]["artifacts"]
        .as_array_mut()
        .unwrap()
        .retain(|a| a["platform"] == "macos");
    s
}

async fn breaker(e: &E2e, platform: Platform) -> BreakerStatus {
    let state = e.stack.store().load(platform).await.unwrap().state;
    state.status(e.stack.now(), &BreakerPolicy::default())
}

fn graph_calls(e: &E2e) -> usize {
    e.stack
        .sims
        .intune
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/v1.0"))
        .count()
}

fn jamf_calls(e: &E2e) -> usize {
    e.stack
        .sims
        .jamf
        .requests()
        .iter()
        .filter(|r| !r.path.contains("/oauth/") && !r.path.contains("/auth/"))
        .count()
}

/// Polls `check` (every 100 ms, up to 30 s).
async fn eventually<F: AsyncFn() -> bool>(what: &str, check: F) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// With the platform down, the breaker opens after exactly five failed calls and then holds the
/// calls back; once the platform is back and the open period has passed, the work goes through.
async fn breaker_trips_after_five_failures(platform: Platform) {
    let _ = logs();
    let e = start().await;
    // The stack's clock stands still: the breaker stays open until the test moves it.
    e.stack.clock.set_speed(0.0);
    let (id, calls): (String, fn(&E2e) -> usize) = match platform {
        Platform::Windows => {
            e.stack.sims.intune.faults().fail_next(
                eucora_sim_intune::RouteMatch::Path("/v1.0".into()),
                eucora_sim_intune::Fault::ServiceUnavailable,
                10_000,
            );
            (
                e.submit(unique("low-risk", "dp-breaker-win")).await,
                graph_calls,
            )
        }
        Platform::Macos => {
            for prefix in ["/api/v1/packages", "/api/v2", "/JSSResource"] {
                e.stack.sims.jamf.faults().fail_next(
                    eucora_sim_jamf::RouteMatch::Path(prefix.into()),
                    eucora_sim_jamf::Fault::ServiceUnavailable,
                    10_000,
                );
            }
            (e.submit(macos_only("dp-breaker-mac")).await, jamf_calls)
        }
    };
    eventually("the breaker opens", async || {
        breaker(&e, platform).await == BreakerStatus::Open
    })
    .await;
    assert_eq!(
        calls(&e),
        5,
        "the breaker opened after 5 consecutive failures"
    );
    // Retries come back (each a second later) but find the breaker open: no call goes out.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(calls(&e), 5, "an open breaker holds the calls back");
    assert_eq!(e.state(&id).await, "dispatching 1");

    // The platform recovers; after the open period a probe goes through and the work completes.
    match platform {
        Platform::Windows => e.stack.sims.intune.faults().clear(),
        Platform::Macos => e.stack.sims.jamf.faults().clear(),
    }
    e.stack.advance(Duration::from_secs(61));
    e.stack.clock.set_speed(60.0);
    assert_eq!(e.settled(&id).await, "in_ring 1");
    assert_eq!(breaker(&e, platform).await, BreakerStatus::Closed);
    e.stack.shutdown().await;
}

/// 1. Intune: the breaker trips after 5 failures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intune_breaker_trips_after_five_failures() {
    breaker_trips_after_five_failures(Platform::Windows).await;
}

/// 5. Jamf: the breaker trips after 5 failures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jamf_breaker_trips_after_five_failures() {
    breaker_trips_after_five_failures(Platform::Macos).await;
}

/// 2. Intune: 503s and a 429 with Retry-After are retried with backoff; the app is created once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intune_retries_transient_errors() {
    let _ = logs();
    let e = start().await;
    let apps = "/v1.0/deviceAppManagement/mobileApps";
    let faults = e.stack.sims.intune.faults();
    faults.fail_next(
        eucora_sim_intune::RouteMatch::MethodPath("POST".into(), apps.into()),
        eucora_sim_intune::Fault::ServiceUnavailable,
        2,
    );
    let id = e.submit(unique("low-risk", "dp-retry-win")).await;
    assert_eq!(e.settled(&id).await, "in_ring 1");
    assert_eq!(e.stack.sims.intune.apps().len(), 1, "created exactly once");
    let posts = e
        .stack
        .sims
        .intune
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == apps)
        .count();
    assert_eq!(posts, 3, "two 503s, then the create");
    let failed: Vec<Value> = e
        .audit(&id)
        .await
        .into_iter()
        .filter(|ev| {
            ev["kind"] == "connector.call" && ev["detail"]["call"]["error_class"] == "transient"
        })
        .collect();
    assert_eq!(failed.len(), 2, "each failed call is in the audit trail");
    e.stack.shutdown().await;
}

/// Every request the simulator saw carried the deployment's correlation id.
fn assert_correlated(requests: &[(String, String, Option<String>)], correlation: &str) {
    assert!(!requests.is_empty());
    for (method, path, header) in requests {
        assert_eq!(header.as_deref(), Some(correlation), "{method} {path}");
    }
}

fn intune_requests(e: &E2e) -> Vec<(String, String, Option<String>)> {
    e.stack
        .sims
        .intune
        .requests()
        .iter()
        .map(|r| {
            (
                r.method.clone(),
                r.path.clone(),
                r.header("x-correlation-id").map(str::to_owned),
            )
        })
        .collect()
}

fn jamf_requests(e: &E2e) -> Vec<(String, String, Option<String>)> {
    e.stack
        .sims
        .jamf
        .requests()
        .iter()
        .map(|r| {
            (
                r.method.clone(),
                r.path.clone(),
                r.header("x-correlation-id").map(str::to_owned),
            )
        })
        .collect()
}

/// 3. Intune: the correlation id is on every call (token, Graph, blob upload, status queries).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intune_correlation_id_on_every_call() {
    let _ = logs();
    let e = start().await;
    let id = e.submit(unique("low-risk", "dp-corr-win")).await;
    assert_eq!(e.settled(&id).await, "in_ring 1");
    e.step(1).await;
    let requests = intune_requests(&e);
    assert!(
        requests.iter().any(|(_, p, _)| p.contains("/reports/")),
        "{requests:?}"
    );
    assert_correlated(&requests, "dp-corr-win");
    e.stack.shutdown().await;
}

/// 4. Intune: a permanent failure (403: the app registration lacks a permission) is logged as
/// one structured ERROR line with the correlation id, the message id and the reason; the command
/// goes to the DLQ at once and the deployment halts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intune_failure_is_logged_structured() {
    let _ = logs();
    let e = start().await;
    e.stack.sims.intune.faults().fail_next(
        eucora_sim_intune::RouteMatch::MethodPath(
            "POST".into(),
            "/v1.0/deviceAppManagement/mobileApps".into(),
        ),
        eucora_sim_intune::Fault::Forbidden,
        1,
    );
    let id = e.submit(unique("low-risk", "dp-log-win")).await;
    e.settled(&id).await;
    eventually("the deployment halts", async || {
        e.state(&id).await == "halted 1"
    })
    .await;
    assert_eq!(e.stack.queue_depth("IntuneDLQ").await.unwrap(), 1);
    let errors: Vec<Value> = log_lines("dp-log-win")
        .into_iter()
        .filter(|l| l["level"] == "ERROR")
        .collect();
    let line = errors
        .iter()
        .find(|l| {
            l["fields"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("dead-letter")
        })
        .unwrap_or_else(|| panic!("no structured ERROR line: {errors:?}"));
    assert!(line["fields"]["message_id"].is_string(), "{line}");
    assert!(
        line["fields"]["reason"]
            .as_str()
            .unwrap()
            .contains("PolicyViolation"),
        "{line}"
    );
    assert_eq!(line["span"]["correlation_id"], "dp-log-win", "{line}");
    assert!(line["timestamp"].is_string() && line["target"].is_string());
    e.stack.shutdown().await;
}

/// 6. Jamf: the package is created once although the answer to its creation was lost (the
/// server created it, the connector saw a broken body and retried), and a repeated submission
/// with the same Idempotency-Key is the same deployment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jamf_package_creation_is_idempotent() {
    let _ = logs();
    let e = start().await;
    e.stack.sims.jamf.faults().fail_next(
        eucora_sim_jamf::RouteMatch::MethodPath("POST".into(), "/api/v1/packages".into()),
        eucora_sim_jamf::Fault::MalformedBody,
        1,
    );
    let mut s = macos_only("dp-idem-mac");
    e.stack.stage_packages(&mut s).await.unwrap();
    let first = e.packager.submit(&s, Some("idem-1")).await.unwrap();
    assert_eq!(first.status, 201, "{}", first.body);
    let id = first.body["id"].as_str().unwrap().to_owned();
    assert_eq!(e.settled(&id).await, "in_ring 1");
    let again = e.packager.submit(&s, Some("idem-1")).await.unwrap();
    assert!(again.ok(), "{}", again.body);
    assert_eq!(again.body["id"], id.as_str());
    assert_eq!(e.settled(&id).await, "in_ring 1");
    assert_eq!(e.stack.sims.jamf.packages().len(), 1);
    assert_eq!(e.stack.sims.jamf.policies().len(), 1);
    e.stack.shutdown().await;
}

/// 7. Jamf: the correlation id is on every call (token, package, upload, policy, and the status
/// query's group membership and bulk inventory reads).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jamf_correlation_id_on_every_call() {
    let _ = logs();
    let e = start().await;
    let id = e.submit(macos_only("dp-corr-mac")).await;
    assert_eq!(e.settled(&id).await, "in_ring 1");
    e.step(1).await;
    let requests = jamf_requests(&e);
    for read in ["smart-group-membership", "computers-inventory"] {
        assert!(
            requests.iter().any(|(_, p, _)| p.contains(read)),
            "{read}: {requests:?}"
        );
    }
    assert_correlated(&requests, "dp-corr-mac");
    e.stack.shutdown().await;
}

/// 8. Parallel deployments while Intune is down: Jamf publishes every one of them and its breaker
/// stays closed; when Intune comes back, the Windows side catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_platform_failing_leaves_the_other_alone() {
    let _ = logs();
    let e = start().await;
    e.stack.sims.intune.faults().fail_next(
        eucora_sim_intune::RouteMatch::Path("/v1.0".into()),
        eucora_sim_intune::Fault::ServiceUnavailable,
        10_000,
    );
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            e.submit(unique("multi-platform", &format!("dp-par-{i}")))
                .await,
        );
    }
    eventually("Jamf publishes all three", async || {
        e.stack.sims.jamf.policies().len() == 3
    })
    .await;
    assert!(e.stack.sims.intune.apps().is_empty());
    assert_eq!(breaker(&e, Platform::Macos).await, BreakerStatus::Closed);
    eventually("the Intune breaker opens", async || {
        let intune = e.stack.store().load(Platform::Windows).await.unwrap().state;
        intune.opened_at.is_some()
    })
    .await;
    assert_eq!(breaker(&e, Platform::Macos).await, BreakerStatus::Closed);
    for id in &ids {
        // Not in the ring until both platforms confirmed.
        assert_eq!(e.state(id).await, "dispatching 1");
    }
    e.stack.sims.intune.faults().clear();
    for id in &ids {
        assert_eq!(e.settled(id).await, "in_ring 1");
    }
    assert_eq!(e.stack.sims.intune.apps().len(), 3);
    e.stack.shutdown().await;
}

/// 9. One deployment on both platforms: one correlation id on every call to either platform, on
/// every audit event, and on every log line of both connectors' work for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_correlation_id_across_connectors() {
    let _ = logs();
    let e = start().await;
    let id = e.submit(unique("multi-platform", "dp-one-id")).await;
    assert_eq!(e.settled(&id).await, "in_ring 1");
    e.step(1).await;
    assert_correlated(&intune_requests(&e), "dp-one-id");
    assert_correlated(&jamf_requests(&e), "dp-one-id");
    let trail = e.audit(&id).await;
    assert!(trail.iter().all(|ev| ev["correlation_id"] == "dp-one-id"));
    for platform in ["windows", "macos"] {
        assert!(
            trail
                .iter()
                .any(|ev| ev["kind"] == "connector.call" && ev["detail"]["platform"] == platform),
            "{platform}"
        );
    }
    let handled: Vec<Value> = log_lines("command handled")
        .into_iter()
        .filter(|l| l["span"]["correlation_id"] == "dp-one-id")
        .collect();
    assert!(
        handled
            .iter()
            .any(|l| l["target"].as_str().unwrap().contains("connector_lambda"))
    );
    assert!(handled.len() >= 2, "both connectors' commands: {handled:?}");
    // Nothing secret reached the logs: the client secrets in the emulator's Secrets Manager and
    // every bearer token the simulators saw.
    let text = logs().text();
    let mut secrets = vec![
        e.stack.sims.intune.config().client_secret,
        eucora_sim_jamf::SimConfig::default().client_secret,
    ];
    for r in e.stack.sims.intune.requests() {
        secrets.extend(
            r.header("authorization")
                .and_then(|h| h.strip_prefix("Bearer "))
                .map(str::to_owned),
        );
    }
    for r in e.stack.sims.jamf.requests() {
        secrets.extend(
            r.header("authorization")
                .and_then(|h| h.strip_prefix("Bearer "))
                .map(str::to_owned),
        );
    }
    assert!(secrets.len() > 2);
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "a secret is in the logs");
    }
    e.stack.shutdown().await;
}
