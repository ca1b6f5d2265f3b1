//! A bench figure, not a test: one status query of a 10,000-Mac ring at the simulator's realistic
//! latency (200 ms a request, 1 ms more per listed record), for one container (5 connections) and
//! for the template's two (2 each).
//!
//! `cargo run -p eucora-jamf --example status_at_scale [macs] [policy-log reads]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use eucora_connector::artifact::MemoryArtifacts;
use eucora_connector::credentials::StaticCredentials;
use eucora_connector::platform::{CallContext, Job, Platform};
use eucora_connector::testing;
use eucora_domain::evidence::Platform as Kind;
use eucora_domain::gates::InstallOutcome;
use eucora_domain::{ManualClock, Ring};
use eucora_jamf::{JamfClient, JamfConfig};
use eucora_sim_jamf::{FleetMix, SimComputer, SimConfig};

#[tokio::main]
async fn main() {
    let macs: u32 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let reads: Option<usize> = std::env::args().nth(2).and_then(|n| n.parse().ok());
    for containers in [1, 2] {
        run(macs, containers, reads).await;
    }
}

async fn run(macs: u32, containers: usize, reads: Option<usize>) {
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
    let sim = eucora_sim_jamf::start_on(SimConfig::default(), Arc::new(clock.clone())).await;
    let mix = FleetMix {
        failed_per_mille: 10,
        never_check_in_per_mille: 20,
        within: Duration::from_secs(6 * 3600),
        seed: 1,
    };
    let started = Instant::now();
    sim.add_computer_group(
        44,
        "EUCORA Ring 4",
        true,
        SimComputer::generate(100_000, macs, &mix),
    );
    let fleet_setup = started.elapsed();
    let c = SimConfig::default();
    let creds = StaticCredentials::new(
        &serde_json::json!({ "server_url": sim.base_url(), "client_id": c.client_id, "client_secret": c.client_secret }).to_string(),
    );
    let mut config = JamfConfig::for_containers(containers).unwrap();
    if let Some(reads) = reads {
        config.status_history_reads = reads;
    }
    let client = JamfClient::new(&config, creds, artifacts).unwrap();
    let job = Job {
        deployment: &record,
        ring: Ring::Global,
        group_id: "44",
        earlier_groups: &[],
        artifact: record.submission.artifact(Kind::Macos).unwrap(),
        now: record.submitted_at,
    };
    let cx = || CallContext::starting_at(record.correlation_id().clone(), record.submitted_at);
    client.publish(&mut cx(), &job).await.unwrap();
    // Three hours in: half the ring has installed, and the failures so far are to be found.
    clock.advance(time::Duration::hours(3));
    sim.clear_requests();
    sim.reset_peak_concurrency();
    let started = Instant::now();
    let mut c = cx();
    let status = client.query_status(&mut c, &job).await.unwrap();
    let took = started.elapsed();
    let count = |o: InstallOutcome| status.devices.iter().filter(|d| d.outcome == o).count();
    let requests = sim.requests();
    let by = |prefix: &str| {
        requests
            .iter()
            .filter(|r| r.path.starts_with(prefix))
            .count()
    };
    println!(
        "{macs} Macs, {containers} container(s) ({} connections each): status in {:.1} s \
         ({} requests: {} inventory, {} policy logs, {} membership; peak {} in flight); \
         installed {}, failed {}, pending {}, not reported {}; fleet generated in {} ms",
        config.max_in_flight().unwrap(),
        took.as_secs_f64(),
        requests.len(),
        by("/api/v3/computers-inventory"),
        by("/JSSResource/computerhistory"),
        by("/api/v3/computer-groups"),
        sim.peak_concurrency(),
        count(InstallOutcome::Installed),
        count(InstallOutcome::Failed),
        count(InstallOutcome::Pending),
        count(InstallOutcome::NotReported),
        fleet_setup.as_millis(),
    );
}
