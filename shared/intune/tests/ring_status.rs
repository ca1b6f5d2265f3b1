//! The status of a ring at real sizes: the population is the ring's Entra ID group, earlier
//! rings' devices never count, devices that have not checked in are not reported, a shared PC
//! is one result, and the report's order does not matter. CI runs 2,000 devices per ring at a
//! few milliseconds per call; the ignored test runs the same code at 10,000 and realistic latency.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use eucora_connector::artifact::MemoryArtifacts;
use eucora_connector::credentials::StaticCredentials;
use eucora_connector::platform::{CallContext, Job, Platform, RingStatus};
use eucora_connector::testing;
use eucora_domain::Ring;
use eucora_domain::evidence::Platform as Kind;
use eucora_domain::gates::InstallOutcome;
use eucora_intune::{IntuneClient, IntuneConfig};
use eucora_sim_intune::{DeviceOutcome, Fleet, SimConfig, SimDevice, SimHandle};

const HOUR: Duration = Duration::from_secs(3600);

struct Run {
    sim: SimHandle,
    canary: Vec<SimDevice>,
    pilot: Vec<SimDevice>,
    /// Canary devices also put in the pilot group.
    overlap: usize,
    status: RingStatus,
    calls: CallContext,
    elapsed: Duration,
}

/// What the status must say of one pilot device, from its specification.
fn expected(device: &SimDevice) -> InstallOutcome {
    if device.first_check_in.is_none() {
        return InstallOutcome::NotReported;
    }
    let outcomes: Vec<DeviceOutcome> = if device.users.is_empty() {
        vec![device.outcome]
    } else {
        device
            .users
            .iter()
            .map(|u| u.outcome.unwrap_or(device.outcome))
            .collect()
    };
    if outcomes
        .iter()
        .any(|o| matches!(o, DeviceOutcome::Failed { .. }))
    {
        InstallOutcome::Failed
    } else if outcomes.contains(&DeviceOutcome::NeverReports) {
        InstallOutcome::Pending
    } else {
        InstallOutcome::Installed
    }
}

/// Two rings of `size` devices each (the first `size / 20` canary devices also in the pilot
/// group), the app published to both, two hours later the pilot ring's status.
async fn run(size: u32, latency: Duration, jitter: Duration) -> Run {
    let sim = eucora_sim_intune::start(SimConfig {
        client_secret: "graph-secret-1".into(),
        // Setting up the rings is not what is measured.
        latency: Duration::ZERO,
        latency_jitter: Duration::ZERO,
        ..SimConfig::default()
    })
    .await;
    let canary = Fleet::new("c", size).devices();
    let pilot = Fleet {
        seed: 7,
        ..Fleet::new("p", size)
    }
    .devices();
    let overlap = (size / 20) as usize;
    sim.add_group("grp-canary", canary.clone());
    sim.add_group(
        "grp-pilot",
        pilot.iter().chain(&canary[..overlap]).cloned().collect(),
    );

    let artifacts = MemoryArtifacts::default();
    let svc = testing::services();
    let record = testing::dispatched(
        &svc,
        &artifacts,
        "low-risk",
        "dep-intune",
        "dp-intune-scale",
        |_, p| eucora_intune::intunewin::build("7z2408-x64.exe", p),
    )
    .await;
    let c = sim.config();
    let creds = StaticCredentials::new(
        &serde_json::json!({ "tenant_id": c.tenant_id, "client_id": c.client_id, "client_secret": c.client_secret }).to_string(),
    );
    let client = IntuneClient::new(
        IntuneConfig {
            login_base: sim.base_url(),
            graph_base: sim.base_url(),
            poll_interval: Duration::from_millis(5),
            ..IntuneConfig::default()
        },
        creds,
        artifacts,
    )
    .unwrap();
    let artifact = record.submission.artifact(Kind::Windows).unwrap();
    let earlier = vec!["grp-canary".to_owned()];
    let job = |ring, group, earlier_groups: &'static [String]| Job {
        deployment: &record,
        ring,
        group_id: group,
        earlier_groups,
        artifact,
        now: record.submitted_at,
    };
    let cx = || CallContext::new(record.correlation_id().clone());
    client
        .publish(&mut cx(), &job(Ring::Canary, "grp-canary", &[]))
        .await
        .unwrap();
    client
        .publish(&mut cx(), &job(Ring::Pilot, "grp-pilot", &[]))
        .await
        .unwrap();
    sim.advance(2 * HOUR);

    sim.set_latency(latency, jitter);
    sim.clear_requests();
    let earlier: &'static [String] = Box::leak(earlier.into_boxed_slice());
    let pilot_job = job(Ring::Pilot, "grp-pilot", earlier);
    let mut calls = cx();
    let started = Instant::now();
    let status = client.query_status(&mut calls, &pilot_job).await.unwrap();
    let elapsed = started.elapsed();
    Run {
        sim,
        canary,
        pilot,
        overlap,
        status,
        calls,
        elapsed,
    }
}

fn check(run: &Run) {
    let status = &run.status;
    let managed: Vec<&SimDevice> = run.pilot.iter().filter(|d| d.managed).collect();
    assert_eq!(
        status.missing,
        (run.pilot.len() - managed.len()) as u64,
        "members Intune does not manage"
    );
    assert_eq!(status.earlier_ring_devices, run.overlap as u64);
    assert_eq!(status.devices.len(), managed.len(), "one result per device");
    let ids: HashSet<&str> = status
        .devices
        .iter()
        .map(|d| d.device_id.as_str())
        .collect();
    assert_eq!(ids.len(), status.devices.len(), "no device twice");
    // The report (filtered by app only) has every canary device's rows: none counts here.
    assert!(run.canary.iter().all(|d| !ids.contains(d.id.as_str())));
    let latest = status
        .devices
        .iter()
        .filter_map(|d| d.last_contact)
        .max()
        .expect("last contacts");
    for device in &managed {
        let result = status
            .devices
            .iter()
            .find(|r| r.device_id == device.id)
            .unwrap_or_else(|| panic!("{} has a result", device.id));
        assert_eq!(result.outcome, expected(device), "{}", device.id);
        let last = result.last_contact.expect("lastSyncDateTime");
        if device.offline_for.is_some() {
            assert!(
                last < latest.plus(time::Duration::days(-30)),
                "{}: offline",
                device.id
            );
        }
    }
    let count = |o| status.devices.iter().filter(|d| d.outcome == o).count();
    assert!(
        count(InstallOutcome::NotReported) > 0,
        "devices that never checked in"
    );
    assert!(count(InstallOutcome::Failed) > 0);
    assert!(
        run.pilot.iter().any(|d| d.managed && d.users.len() > 1),
        "shared PCs in the ring"
    );

    // The report was read in pages of the size asked for, more than one.
    let pages: Vec<_> = run
        .sim
        .requests()
        .into_iter()
        .filter(|r| {
            r.path
                .ends_with("retrieveDeviceAppInstallationStatusReport")
        })
        .collect();
    assert!(pages.len() > 1);
    assert!(pages.iter().all(|p| p.body.contains("\"top\":1000")));
    // Membership at the directory's largest page.
    assert!(
        run.sim
            .requests()
            .iter()
            .any(|r| r.path.contains("transitiveMembers")
                && r.query_param("$top").as_deref() == Some("999"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ring_of_two_thousand_counts_its_own_group_only() {
    let run = run(2000, Duration::from_millis(2), Duration::from_millis(3)).await;
    check(&run);
    assert!(run.calls.calls.iter().all(|c| c.status == Some(200)));
}

/// The same code at 10,000 devices per ring and realistic latency (100 to 400 ms per call):
/// `cargo test -p eucora-intune --test ring_status -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: about a minute of setup and realistic latency"]
async fn ten_thousand_devices_at_realistic_latency() {
    let run = run(
        10_000,
        Duration::from_millis(100),
        Duration::from_millis(300),
    )
    .await;
    check(&run);
    let by_op = |op: &str| {
        let calls: Vec<u64> = run
            .calls
            .calls
            .iter()
            .filter(|c| c.operation == op)
            .map(|c| c.duration_ms)
            .collect();
        format!(
            "{} {op} (mean {} ms)",
            calls.len(),
            calls.iter().sum::<u64>() / calls.len().max(1) as u64
        )
    };
    println!(
        "10,000 devices per ring: {} results, {} missing, {} earlier-ring; {} calls ({}, {}, {}) in {:?}",
        run.status.devices.len(),
        run.status.missing,
        run.status.earlier_ring_devices,
        run.calls.calls.len(),
        by_op("group_members"),
        by_op("managed_devices"),
        by_op("install_status"),
        run.elapsed
    );
}
