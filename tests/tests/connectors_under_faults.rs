//! 200 publish commands per platform through the connector, against the simulators injecting
//! 20 % transient errors: every command reaches its end state, nothing is created twice, nothing
//! is lost, and only the permanent failures reach the DLQ.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use eucora_connector::artifact::MemoryArtifacts;
use eucora_connector::breaker::BreakerPolicy;
use eucora_connector::credentials::StaticCredentials;
use eucora_connector::execute::Connector;
use eucora_connector::memory::{MemoryBreaker, MemoryLedger};
use eucora_connector::testing;
use eucora_domain::Ring;
use eucora_domain::evidence::Platform;
use eucora_domain::lifecycle::DeploymentState;
use eucora_service::memory::Memory;
use eucora_service::ports::{DeploymentStore, QueueName};
use eucora_service::record::DeploymentRecord;
use eucora_service::usecases::Services;
use eucora_system_tests::{VirtualQueue, drain};

const COMMANDS: usize = 200;
/// The connector queues' maxReceiveCount in template.yaml.
const MAX_RECEIVES: u32 = 50;

/// Deployments dispatching into Ring 1; every 40th has a tampered artifact (a permanent failure).
async fn deployments(
    sample: &str,
    platform: Platform,
    queue: &VirtualQueue,
    wrap: impl Fn(Platform, &[u8]) -> Vec<u8> + Copy,
) -> (
    Services<Memory, Memory>,
    MemoryArtifacts,
    Vec<DeploymentRecord>,
    BTreeSet<String>,
) {
    let svc = testing::services();
    let artifacts = MemoryArtifacts::default();
    let mut records = Vec::new();
    let mut tampered = BTreeSet::new();
    for i in 0..COMMANDS {
        let r = testing::dispatched(
            &svc,
            &artifacts,
            sample,
            &format!("dep-{i:03}"),
            &format!("dp-load-{i:03}"),
            wrap,
        )
        .await;
        if i % 40 == 7 {
            artifacts.put(
                &r.submission.artifact(platform).unwrap().location,
                b"not what was approved".to_vec(),
            );
            tampered.insert(r.id.to_string());
        }
        records.push(r);
    }
    for (q, envelope) in svc.queue.drain() {
        if q == QueueName::Connector(platform) {
            queue.send(envelope.to_json());
        }
    }
    (svc, artifacts, records, tampered)
}

async fn check_end_states(
    svc: &Services<Memory, Memory>,
    records: &[DeploymentRecord],
    platform: Platform,
    tampered: &BTreeSet<String>,
    queue: &VirtualQueue,
) {
    assert!(
        queue.redriven().is_empty(),
        "a transient failure exhausted its receives: {:?}",
        queue.redriven()
    );
    let dead: BTreeSet<String> = queue
        .dead_lettered()
        .iter()
        .map(|(body, reason)| {
            assert!(
                reason.contains("ARTIFACT_HASH_MISMATCH"),
                "only permanent failures are dead-lettered: {reason}"
            );
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            v["payload"]["deployment_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        &dead, tampered,
        "exactly the permanent failures reached the DLQ"
    );
    for r in records {
        let now = svc.store.get(&r.id).await.unwrap().unwrap();
        if tampered.contains(r.id.as_str()) {
            assert_eq!(
                now.lifecycle.state,
                DeploymentState::Halted { ring: Ring::Canary },
                "{}",
                r.id
            );
        } else {
            assert!(
                now.confirmed_platforms.contains(&platform),
                "{} not confirmed: {:?}",
                r.id,
                now.lifecycle.state
            );
        }
    }
}

fn connector<P: eucora_connector::Platform>(
    svc: &Services<Memory, Memory>,
    platform: P,
    group: &str,
) -> Connector<Memory, MemoryLedger, MemoryBreaker, P> {
    Connector {
        svc: Services {
            store: svc.store.clone(),
            queue: (),
            policy: eucora_domain::policy::Policy::bundled(),
        },
        ledger: MemoryLedger::default(),
        breaker: MemoryBreaker::default(),
        platform,
        breaker_policy: BreakerPolicy::default(),
        ring_groups: BTreeMap::from([(Ring::Canary, group.to_owned())]),
        work_budget: None,
        halt_poll: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_intune_publishes_under_20_percent_transient_faults() {
    let clock = eucora_system_tests::test_clock();
    let sim = eucora_sim_intune::start_on(
        eucora_sim_intune::SimConfig {
            write_limit: 1_000_000,
            seed: 7,
            latency: std::time::Duration::ZERO,
            latency_jitter: std::time::Duration::ZERO,
            ..Default::default()
        },
        std::sync::Arc::new(clock.clone()),
    )
    .await;
    let queue = VirtualQueue::new(MAX_RECEIVES, &clock);
    let (svc, artifacts, records, tampered) =
        deployments("low-risk", Platform::Windows, &queue, |_, p| {
            eucora_intune::intunewin::build("setup.exe", p)
        })
        .await;
    let c = sim.config();
    let creds = StaticCredentials::new(&serde_json::json!({ "tenant_id": c.tenant_id, "client_id": c.client_id, "client_secret": c.client_secret }).to_string());
    let cfg = eucora_intune::IntuneConfig {
        login_base: sim.base_url(),
        graph_base: sim.base_url(),
        poll_interval: Duration::from_millis(1),
        ..Default::default()
    };
    let conn = connector(
        &svc,
        eucora_intune::IntuneClient::new(cfg, creds, artifacts).unwrap(),
        "grp-canary",
    );

    sim.faults().transient_rate(20);
    drain(&queue, &conn).await;
    check_end_states(&svc, &records, Platform::Windows, &tampered, &queue).await;

    // Zero duplicates: at most one app per deployment, and exactly one assignment each.
    let mut per_deployment: BTreeMap<String, usize> = BTreeMap::new();
    for app in sim.apps() {
        let notes = app.properties["notes"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        *per_deployment.entry(notes).or_default() += 1;
        if app.publishing_state.as_str() == "published" {
            assert_eq!(app.assignments.len(), 1, "{}", app.id);
            assert_eq!(app.assignments[0].group_id.as_deref(), Some("grp-canary"));
        }
    }
    assert!(
        per_deployment.values().all(|n| *n == 1),
        "duplicate apps: {per_deployment:?}"
    );
    let published = sim
        .apps()
        .iter()
        .filter(|a| a.publishing_state.as_str() == "published")
        .count();
    assert_eq!(published, COMMANDS - tampered.len());
    let faults = sim.requests().iter().filter(|r| r.fault.is_some()).count();
    assert!(
        faults * 100 >= sim.requests().len() * 10,
        "faults were injected: {faults} of {}",
        sim.requests().len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_jamf_publishes_under_20_percent_transient_faults() {
    let clock = eucora_system_tests::test_clock();
    let sim = eucora_sim_jamf::start_on(
        eucora_sim_jamf::SimConfig {
            seed: 11,
            ..eucora_sim_jamf::SimConfig::instant()
        },
        std::sync::Arc::new(clock.clone()),
    )
    .await;
    sim.add_computer_group(41, "EUCORA Ring 1", true, Vec::new());
    let queue = VirtualQueue::new(MAX_RECEIVES, &clock);
    let (svc, artifacts, records, tampered) =
        deployments("multi-platform", Platform::Macos, &queue, |_, p| p.to_vec()).await;
    let d = eucora_sim_jamf::SimConfig::default();
    let creds = StaticCredentials::new(&serde_json::json!({ "server_url": sim.base_url(), "client_id": d.client_id, "client_secret": d.client_secret }).to_string());
    let conn = connector(
        &svc,
        eucora_jamf::JamfClient::new(&eucora_jamf::JamfConfig::default(), creds, artifacts)
            .unwrap(),
        "41",
    );

    sim.faults().transient_rate(20);
    drain(&queue, &conn).await;
    check_end_states(&svc, &records, Platform::Macos, &tampered, &queue).await;

    // Zero duplicates: one package and one policy per deployment, each policy at its first revision.
    let packages = sim.packages();
    let names: BTreeSet<&str> = packages.iter().map(|p| p.package_name.as_str()).collect();
    assert_eq!(names.len(), packages.len(), "duplicate packages");
    let policies = sim.policies();
    let policy_names: BTreeSet<&str> = policies.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(policy_names.len(), policies.len(), "duplicate policies");
    assert_eq!(policies.len(), COMMANDS - tampered.len());
    assert!(
        policies
            .iter()
            .all(|p| p.revision == 1 && p.scope_group_ids == vec![41]),
        "no second revision"
    );
    assert!(sim.peak_concurrency() <= 5);
}
