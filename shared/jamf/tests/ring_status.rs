//! Install status at ring scale against the simulator: 2,000 Macs a ring (the code path is the
//! same as for 10,000; `examples/status_at_scale.rs` measures that), a few milliseconds a call.

use std::sync::Arc;
use std::time::Duration;

use eucora_connector::artifact::MemoryArtifacts;
use eucora_connector::credentials::StaticCredentials;
use eucora_connector::platform::{CallContext, Job, Platform, RingStatus};
use eucora_connector::testing;
use eucora_domain::evidence::Platform as Kind;
use eucora_domain::gates::InstallOutcome;
use eucora_domain::{ManualClock, Ring};
use eucora_jamf::{JamfClient, JamfConfig};
use eucora_service::record::DeploymentRecord;
use eucora_sim_jamf::{ComputerOutcome, FleetMix, RouteMatch, SimComputer, SimConfig, SimHandle};

const RING_SIZE: u32 = 2000;

struct Fixture {
    sim: SimHandle,
    clock: ManualClock,
    client: JamfClient<StaticCredentials, MemoryArtifacts>,
    record: DeploymentRecord,
}

/// Ring 1 (group 41) is Macs 1–2000, ring 2 (group 42) Macs 2001–4000 and, overlapping, ring 1's
/// first 50; 3 % of each fail and 2 % never check in, the rest install within an hour.
async fn fixture(config: JamfConfig) -> Fixture {
    let artifacts = MemoryArtifacts::default();
    let record = testing::dispatched(
        &testing::services(),
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
            latency: Duration::from_millis(3),
            ..SimConfig::instant()
        },
        Arc::new(clock.clone()),
    )
    .await;
    let mix = FleetMix {
        failed_per_mille: 30,
        never_check_in_per_mille: 20,
        within: Duration::from_secs(3600),
        seed: 11,
    };
    let ring1 = SimComputer::generate(1, RING_SIZE, &mix);
    let mut ring2 = SimComputer::generate(RING_SIZE + 1, RING_SIZE, &mix);
    ring2.extend(ring1[..50].iter().cloned());
    sim.add_computer_group(41, "EUCORA Ring 1", true, ring1);
    sim.add_computer_group(42, "EUCORA Ring 2", true, ring2);
    let c = SimConfig::default();
    let creds = StaticCredentials::new(
        &serde_json::json!({ "server_url": sim.base_url(), "client_id": c.client_id, "client_secret": c.client_secret }).to_string(),
    );
    let client = JamfClient::new(&config, creds, artifacts).unwrap();
    Fixture {
        sim,
        clock,
        client,
        record,
    }
}

fn job<'a>(f: &'a Fixture, ring: Ring, group: &'a str, earlier: &'a [String]) -> Job<'a> {
    Job {
        deployment: &f.record,
        ring,
        group_id: group,
        earlier_groups: earlier,
        artifact: f.record.submission.artifact(Kind::Macos).unwrap(),
        now: f.record.submitted_at,
    }
}

fn cx(f: &Fixture) -> CallContext {
    CallContext::starting_at(f.record.correlation_id().clone(), f.record.submitted_at)
}

fn advance(f: &Fixture, by: Duration) {
    f.clock.advance(time::Duration::try_from(by).unwrap());
}

/// Publishes to rings 1 and 2 and lets two hours pass.
async fn rolled_out(f: &Fixture) {
    let earlier = ["41".to_owned()];
    f.client
        .publish(&mut cx(f), &job(f, Ring::Canary, "41", &[]))
        .await
        .unwrap();
    f.client
        .publish(&mut cx(f), &job(f, Ring::Pilot, "42", &earlier))
        .await
        .unwrap();
    advance(f, Duration::from_secs(7200));
}

fn count(status: &RingStatus, outcome: InstallOutcome) -> usize {
    status
        .devices
        .iter()
        .filter(|d| d.outcome == outcome)
        .count()
}

fn histories(sim: &SimHandle) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.path.starts_with("/JSSResource/computerhistory"))
        .count()
}

#[tokio::test]
async fn a_rings_status_is_its_group_less_earlier_rings_read_in_bulk_within_5_connections() {
    let f = fixture(JamfConfig::default()).await;
    rolled_out(&f).await;
    assert!(f.sim.delete_computer(2100), "deleted mid-rollout");
    f.sim.clear_requests();
    f.sim.reset_peak_concurrency();

    let earlier = ["41".to_owned()];
    let mut c = cx(&f);
    let status = f
        .client
        .query_status(&mut c, &job(&f, Ring::Pilot, "42", &earlier))
        .await
        .unwrap();

    // The population is the group's members, less ring 1's 50 and the deleted Mac.
    assert_eq!(status.earlier_ring_devices, 50);
    assert_eq!(status.missing, 1);
    assert_eq!(status.devices.len(), 1999);
    let ids: Vec<u32> = status
        .devices
        .iter()
        .map(|d| d.device_id.parse().unwrap())
        .collect();
    assert!(
        ids.iter()
            .all(|id| (2001..=4000).contains(id) && *id != 2100)
    );
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "one result per Mac");

    // Every Mac accounted for, as the simulator's fleet says.
    let sim_outcome = |id: u32| {
        let logs = f.sim.policy_logs(id);
        match logs.last().map(|l| l.status.as_str()) {
            Some("Completed") => InstallOutcome::Installed,
            Some("Failed") => InstallOutcome::Failed,
            _ => InstallOutcome::NotReported,
        }
    };
    for d in &status.devices {
        assert_eq!(
            d.outcome,
            sim_outcome(d.device_id.parse().unwrap()),
            "Mac {}",
            d.device_id
        );
        assert!(d.last_contact.is_some());
    }
    let failed = count(&status, InstallOutcome::Failed);
    let never = count(&status, InstallOutcome::NotReported);
    assert!(failed > 20 && never > 10, "{failed} failed, {never} never");
    // Macs that never check in are reported with their (old) last contact.
    for d in status
        .devices
        .iter()
        .filter(|d| d.outcome == InstallOutcome::NotReported)
    {
        assert!(d.last_contact.unwrap() < f.record.submitted_at);
    }

    // In bulk: a handful of inventory requests, and policy logs only for the Macs that failed.
    let requests = f.sim.requests();
    let inventory = requests
        .iter()
        .filter(|r| r.path == "/api/v3/computers-inventory")
        .count();
    assert!(
        (1..=10).contains(&inventory),
        "{inventory} inventory requests"
    );
    assert_eq!(histories(&f.sim), failed);
    assert_eq!(
        requests
            .iter()
            .filter(|r| r.path.contains("smart-group-membership"))
            .count(),
        2,
        "ring 2's group and ring 1's"
    );
    let peak = f.sim.peak_concurrency();
    assert!(peak <= 5, "peak {peak}");
    assert!(
        c.calls.len() >= requests.len() - 1,
        "every call recorded (a token may be reused)"
    );
}

#[tokio::test]
async fn policy_log_reads_keep_to_the_budget_and_the_next_query_reads_others() {
    let f = fixture(JamfConfig {
        status_history_reads: 25,
        ..JamfConfig::default()
    })
    .await;
    rolled_out(&f).await;
    let query = || async {
        f.sim.clear_requests();
        let status = f
            .client
            .query_status(&mut cx(&f), &job(&f, Ring::Canary, "41", &[]))
            .await
            .unwrap();
        (status, histories(&f.sim))
    };
    let (first, reads) = query().await;
    assert_eq!(reads, 25);
    let failed_total = (1..=RING_SIZE)
        .filter(|id| {
            f.sim
                .policy_logs(*id)
                .last()
                .is_some_and(|l| l.status == "Failed")
        })
        .count();
    assert!(failed_total > 50, "{failed_total}");
    assert_eq!(count(&first, InstallOutcome::Failed), 25);
    assert_eq!(
        count(&first, InstallOutcome::Pending),
        failed_total - 25,
        "not read yet: pending"
    );
    // The Macs read are remembered (no contact since), so the next query reads the next 25.
    let (second, reads) = query().await;
    assert_eq!(reads, 25);
    assert_eq!(count(&second, InstallOutcome::Failed), 50);
    let mut last = second;
    for _ in 0..failed_total / 25 {
        last = query().await.0;
    }
    assert_eq!(count(&last, InstallOutcome::Failed), failed_total);
    assert_eq!(count(&last, InstallOutcome::Pending), 0);
}

#[tokio::test]
async fn a_missing_privilege_on_policy_logs_leaves_macs_pending_and_the_query_answers() {
    let f = fixture(JamfConfig::default()).await;
    rolled_out(&f).await;
    f.sim
        .revoke_privilege(RouteMatch::Path("/JSSResource/computerhistory".into()));
    f.sim.clear_requests();
    let mut c = cx(&f);
    let status = f
        .client
        .query_status(&mut c, &job(&f, Ring::Canary, "41", &[]))
        .await
        .unwrap();
    assert_eq!(status.devices.len(), RING_SIZE as usize);
    assert_eq!(count(&status, InstallOutcome::Failed), 0);
    assert!(count(&status, InstallOutcome::Pending) > 20);
    assert!(count(&status, InstallOutcome::Installed) > 1800);
    assert!(
        histories(&f.sim) <= 10,
        "the reads stop at the first refusals"
    );
    assert!(c.calls.iter().any(|r| r.status == Some(401)));
}

#[tokio::test]
async fn a_static_group_is_read_through_the_classic_api() {
    let f = fixture(JamfConfig::default()).await;
    f.sim.add_computer_group(
        50,
        "EUCORA Lab",
        false,
        vec![SimComputer::new(
            9001,
            ComputerOutcome::Completed,
            Duration::from_secs(60),
        )],
    );
    f.client
        .publish(&mut cx(&f), &job(&f, Ring::Lab, "50", &[]))
        .await
        .unwrap();
    advance(&f, Duration::from_secs(600));
    let status = f
        .client
        .query_status(&mut cx(&f), &job(&f, Ring::Lab, "50", &[]))
        .await
        .unwrap();
    assert_eq!(status.devices.len(), 1);
    assert_eq!(status.devices[0].outcome, InstallOutcome::Installed);
    let unknown = f
        .client
        .query_status(&mut cx(&f), &job(&f, Ring::Lab, "77", &[]))
        .await
        .unwrap_err();
    assert_eq!(unknown.status, Some(404));
}
