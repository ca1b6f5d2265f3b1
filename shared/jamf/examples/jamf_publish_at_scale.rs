//! A bench figure, not a test: one publish of a package of real size (4 GiB by default, generated
//! as it is read, never stored) to the Jamf Pro simulator in this process at a realistic pace
//! (200 ms an answer, uploads read at 50 MiB/s, the file processed a minute after its upload),
//! with the connector's memory measured: the process's peak resident set (`VmHWM`), which also
//! holds the simulator's few buffers.
//!
//! `cargo run --release -p eucora-jamf --example jamf_publish_at_scale -- [--size-gib 4] [--rate-mib 50]`
//!
//! The publish runs as the connector function runs it: a first invocation creates the package,
//! streams the file and creates the policy disabled, then hands over (`resume_later`) while Jamf
//! processes the file; the simulator's clock moves a minute; a second invocation finds the hash,
//! compares it with the approved bytes and enables the policy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use eucora_connector::artifact::{Composed, MemoryArtifacts, Segment};
use eucora_connector::credentials::StaticCredentials;
use eucora_connector::platform::{CallContext, Job, Platform};
use eucora_connector::testing;
use eucora_domain::evidence::{Platform as Kind, Sha256Hex};
use eucora_domain::{ManualClock, Ring};
use eucora_jamf::{JamfClient, JamfConfig};
use eucora_service::record::DeploymentRecord;
use eucora_sim_jamf::{ComputerOutcome, SimComputer, SimConfig};

const MIB: f64 = 1024.0 * 1024.0;

/// A value from `/proc/self/status` (`VmHWM`, `VmRSS`), in bytes.
fn proc_status(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line
        .trim_start_matches(key)
        .trim_start_matches(':')
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn mib(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let m = bytes as f64 / MIB;
    format!("{m:.1} MiB")
}

fn arg(name: &str) -> Option<f64> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

/// A sample deployment whose macOS artifact is a generated package of `size` bytes.
async fn deployment(size: u64) -> (DeploymentRecord, MemoryArtifacts) {
    let artifacts = MemoryArtifacts::default();
    let mut record = testing::dispatched(
        &testing::services(),
        &artifacts,
        "multi-platform",
        "dep-jamf",
        "dp-jamf-scale",
        |_, p| p.to_vec(),
    )
    .await;
    let package = Composed::new(vec![
        Segment::Bytes(bytes::Bytes::from_static(b"xar!")),
        Segment::Generated {
            len: size - 4,
            seed: 2026,
        },
    ]);
    let hashing = Instant::now();
    let sha256 = package.sha256();
    println!(
        "generated a {} package (SHA-256 {}…) in {:.1} s",
        mib(size),
        &sha256[..12],
        hashing.elapsed().as_secs_f64()
    );
    let artifact = record
        .submission
        .evidence
        .artifacts
        .iter_mut()
        .find(|a| a.platform == Kind::Macos)
        .expect("a macOS artifact");
    artifact.size_bytes = size;
    artifact.sha256 = Sha256Hex::parse(&sha256).expect("a SHA-256");
    artifacts.put_composed(&artifact.location, package);
    (record, artifacts)
}

#[tokio::main]
async fn main() {
    let size_gib = arg("--size-gib").unwrap_or(4.0);
    let rate_mib = arg("--rate-mib").unwrap_or(50.0);
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let size = (size_gib * 1024.0 * MIB) as u64;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let rate = (rate_mib * MIB) as u64;

    let (record, artifacts) = deployment(size).await;
    let read_before = artifacts.bytes_read();

    let clock = ManualClock::new(record.submitted_at);
    let config = SimConfig {
        upload_bytes_per_second: Some(rate),
        ..SimConfig::default()
    };
    let processing = config.package_processing;
    let sim = eucora_sim_jamf::start_on(config.clone(), Arc::new(clock.clone())).await;
    sim.add_computer_group(
        41,
        "EUCORA Ring 1",
        true,
        SimComputer::generate(1, 100, &eucora_sim_jamf::FleetMix::default())
            .into_iter()
            .map(|c| SimComputer {
                outcome: ComputerOutcome::Completed,
                ..c
            })
            .collect(),
    );
    let creds = StaticCredentials::new(
        &serde_json::json!({ "server_url": sim.base_url(), "client_id": config.client_id, "client_secret": config.client_secret })
            .to_string(),
    );
    let client = JamfClient::new(&JamfConfig::default(), creds, artifacts.clone()).unwrap();
    let job = Job {
        deployment: &record,
        ring: Ring::Canary,
        group_id: "41",
        earlier_groups: &[],
        artifact: record.submission.artifact(Kind::Macos).unwrap(),
        now: record.submitted_at,
    };
    let hwm_before = proc_status("VmHWM").unwrap_or(0);
    println!(
        "simulator: {} ms an answer, uploads read at {rate_mib} MiB/s, processing {} s; peak RSS before publishing {}",
        config.latency.as_millis(),
        processing.as_secs(),
        mib(hwm_before)
    );

    let started = Instant::now();
    let mut cx = CallContext::new(record.correlation_id().clone());
    let first = client.publish(&mut cx, &job).await;
    let first_took = started.elapsed();
    match &first {
        Err(e) if e.is_resume_later() => println!(
            "invocation 1: {:.1} s, {} calls, then resume later ({} s): {}",
            first_took.as_secs_f64(),
            cx.calls.len(),
            e.retry_after.unwrap_or_default().as_secs(),
            e.message
        ),
        other => println!("invocation 1: {:.1} s: {other:?}", first_took.as_secs_f64()),
    }
    clock.advance(time::Duration::try_from(processing + Duration::from_secs(1)).unwrap());
    let second_started = Instant::now();
    let mut cx = CallContext::new(record.correlation_id().clone());
    let second = client.publish(&mut cx, &job).await;
    println!(
        "invocation 2: {:.1} s, {} calls: {}",
        second_started.elapsed().as_secs_f64(),
        cx.calls.len(),
        match &second {
            Ok(ids) => format!("published {ids}"),
            Err(e) => format!("{e}"),
        }
    );
    let total = started.elapsed();

    report(
        &sim,
        &artifacts,
        read_before,
        size,
        first_took,
        total,
        hwm_before,
    );
    if second.is_err() {
        std::process::exit(1);
    }
}

/// The figures: time, bytes read and sent, peak memory, and the policy as it ended.
fn report(
    sim: &eucora_sim_jamf::SimHandle,
    artifacts: &MemoryArtifacts,
    read_before: u64,
    size: u64,
    first_took: Duration,
    total: Duration,
    hwm_before: u64,
) {
    let read = artifacts.bytes_read() - read_before;
    let uploaded = sim.packages().first().and_then(|p| p.upload_size);
    let body: u64 = sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/upload"))
        .filter_map(|r| {
            r.body
                .trim_start_matches('(')
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    let hwm = proc_status("VmHWM").unwrap_or(0);
    #[allow(clippy::cast_precision_loss)]
    let throughput = size as f64 / MIB / first_took.as_secs_f64();
    println!("--");
    println!(
        "duration: {:.1} s ({:.1} MiB/s over the first invocation)",
        total.as_secs_f64(),
        throughput
    );
    #[allow(clippy::cast_precision_loss)]
    let times = read as f64 / size as f64;
    println!("artifact bytes read: {read} ({times:.2} x the package)");
    println!(
        "bytes sent: {} of file, {body} of request body",
        uploaded.map_or_else(|| "none".to_owned(), |u| u.to_string())
    );
    println!(
        "peak RSS (VmHWM): {} (before publishing {}; VmRSS now {})",
        mib(hwm),
        mib(hwm_before),
        mib(proc_status("VmRSS").unwrap_or(0))
    );
    println!(
        "peak heap: not measured (the workspace forbids the unsafe code a counting allocator needs)"
    );
    let policy = sim.policies().into_iter().next();
    println!(
        "policy: {}",
        policy.map_or_else(
            || "none".to_owned(),
            |p| format!("{} enabled={} package {:?}", p.id, p.enabled, p.package_ids)
        )
    );
}
