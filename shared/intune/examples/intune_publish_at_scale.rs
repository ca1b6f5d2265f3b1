//! The Intune publish at real size: a `.intunewin` of several GiB, generated on the fly (never
//! stored), published through the connector to the Graph simulator (in this process, at
//! realistic latency and upload throughput), with the process's peak memory measured; then the
//! same package published again by an invocation whose work budget ends half-way, and resumed by
//! the next, which must not send again any block Azure already holds.
//!
//! ```text
//! cargo run --release -p eucora-intune --example intune_publish_at_scale -- [--size-gib 4] [--concurrency 3]
//! ```
//!
//! Memory is read from `/proc/self/status`: `VmHWM` (the peak resident set, what Lambda bills and
//! limits; reset between the runs through `/proc/self/clear_refs`) and `RssAnon` sampled every
//! 10 ms (anonymous memory: the heap and the stacks; no allocator statistics, as the workspace
//! forbids `unsafe` and so a counting global allocator). The figures are the whole process's:
//! the simulator's share (the blocks it is receiving, at most `concurrency` of them) included.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use eucora_connector::artifact::{Composed, MemoryArtifacts};
use eucora_connector::credentials::StaticCredentials;
use eucora_connector::platform::{CallContext, Job, Platform};
use eucora_connector::testing;
use eucora_domain::evidence::{Platform as Kind, Sha256Hex};
use eucora_domain::{Ring, SystemClock};
use eucora_intune::{IntuneClient, IntuneConfig};
use eucora_service::record::DeploymentRecord;
use eucora_sim_intune::{SimConfig, SimHandle};

const MIB: f64 = 1024.0 * 1024.0;
const SECRET: &str = "bench-secret";

/// A field of `/proc/self/status`, in KiB.
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| {
        l.strip_prefix(field)?
            .trim_start_matches(':')
            .trim()
            .trim_end_matches(" kB")
            .parse()
            .ok()
    })
}

/// Resets `VmHWM` to the current resident set (Linux 4.0 and later).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Samples `RssAnon` every 10 ms and keeps the highest value.
struct AnonSampler {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AnonSampler {
    fn start() -> Self {
        let peak = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (peak, stop) = (Arc::clone(&peak), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(kib) = status_kib("RssAnon") {
                        peak.fetch_max(kib, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        Self {
            peak,
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

struct Args {
    size_gib: f64,
    concurrency: usize,
}

fn args() -> Args {
    let mut out = Args {
        size_gib: 4.0,
        concurrency: 3,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let value = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--size-gib" => out.size_gib = value.parse().expect("--size-gib N"),
            "--concurrency" => out.concurrency = value.parse().expect("--concurrency N"),
            other => panic!("unknown argument {other}; use --size-gib N --concurrency N"),
        }
        i += 2;
    }
    out
}

fn job(record: &DeploymentRecord) -> Job<'_> {
    Job {
        deployment: record,
        ring: Ring::Canary,
        group_id: "grp-canary",
        earlier_groups: &[],
        artifact: record
            .submission
            .artifact(Kind::Windows)
            .expect("a Windows artifact"),
        now: record.submitted_at,
    }
}

/// A deployment whose Windows artifact is `package` (its SHA-256 and size in the evidence).
async fn deployment(
    artifacts: &MemoryArtifacts,
    correlation: &str,
    package: &Composed,
    sha256: &str,
) -> DeploymentRecord {
    let mut record = testing::dispatched(
        &testing::services(),
        artifacts,
        "low-risk",
        &format!("dep-{correlation}"),
        correlation,
        |_, p| eucora_intune::intunewin::build("setup.exe", p),
    )
    .await;
    let location = format!("s3://eucora-bench/{correlation}/app.intunewin");
    let a = record
        .submission
        .evidence
        .artifacts
        .iter_mut()
        .find(|a| a.platform == Kind::Windows)
        .expect("a Windows artifact");
    a.sha256 = Sha256Hex::parse(sha256).expect("a SHA-256");
    a.size_bytes = package.len();
    a.location.clone_from(&location);
    artifacts.put_composed(&location, package.clone());
    record
}

/// What the simulator holds of the deployment's upload.
fn upload_of(sim: &SimHandle, display_name: &str) -> eucora_sim_intune::SimContentFile {
    let app = sim
        .apps()
        .into_iter()
        .find(|a| a.display_name == display_name)
        .expect("the app");
    sim.content_files(&app.id)
        .into_iter()
        .last()
        .expect("a content file")
}

fn display_name(record: &DeploymentRecord) -> String {
    format!(
        "{} {}",
        record.submission.app.name, record.submission.app.version
    )
}

#[allow(clippy::cast_precision_loss)] // figures to print
fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB
}

/// What both runs share.
struct Bench {
    sim: SimHandle,
    artifacts: MemoryArtifacts,
    client: IntuneClient<StaticCredentials, MemoryArtifacts>,
    package: Composed,
    sha256: String,
    content: u64,
}

/// One publish, start to end; answers how long it took.
async fn full_run(b: &Bench) -> Duration {
    let record = deployment(&b.artifacts, "bench-full", &b.package, &b.sha256).await;
    reset_peak();
    let rss_before = status_kib("VmRSS").unwrap_or(0);
    let sampler = AnonSampler::start();
    let read_before = b.artifacts.bytes_read();
    let started = Instant::now();
    let mut cx = CallContext::new(record.correlation_id().clone());
    b.client
        .publish(&mut cx, &job(&record))
        .await
        .expect("the publish");
    let took = started.elapsed();
    let anon_peak = sampler.finish();
    let hwm = status_kib("VmHWM").unwrap_or(0);
    let file = upload_of(&b.sim, &display_name(&record));
    let read = b.artifacts.bytes_read() - read_before;
    println!("\nfull publish:");
    println!("  duration                   {:.1} s", took.as_secs_f64());
    println!(
        "  read from the artifact     {:.1} MiB ({read} bytes; the package is {})",
        mib(read),
        b.package.len()
    );
    println!(
        "  sent to storage            {:.1} MiB in {} blocks (committed {} bytes, {})",
        mib(file.bytes_received),
        file.blocks_received(),
        file.committed_len,
        file.upload_state
    );
    println!(
        "  upload throughput          {:.1} MiB/s",
        mib(file.bytes_received) / took.as_secs_f64()
    );
    println!("  Graph and storage calls    {}", cx.calls.len());
    println!(
        "  peak RSS (VmHWM)           {:.1} MiB (RSS before the publish: {:.1} MiB)",
        mib(hwm * 1024),
        mib(rss_before * 1024)
    );
    println!(
        "  peak anonymous RSS         {:.1} MiB (sampled every 10 ms)",
        mib(anon_peak * 1024)
    );
    assert_eq!(file.committed_len, b.content, "the whole content committed");
    assert!(file.blocks_sent_twice().is_empty());
    took
}

/// The same package for another deployment: the first invocation's budget ends half-way, the
/// next resumes.
async fn resumed_run(b: &Bench, budget: Duration) {
    let record = deployment(&b.artifacts, "bench-resume", &b.package, &b.sha256).await;
    reset_peak();
    let sampler = AnonSampler::start();
    let started = Instant::now();
    let mut cx = CallContext::new(record.correlation_id().clone()).with_budget(budget);
    let stopped = b
        .client
        .publish(&mut cx, &job(&record))
        .await
        .expect_err("the budget ends the first invocation");
    assert!(stopped.is_resume_later(), "{stopped}");
    let first_took = started.elapsed();
    let first = upload_of(&b.sim, &display_name(&record));
    let read_before = b.artifacts.bytes_read();
    let started = Instant::now();
    let mut cx = CallContext::new(record.correlation_id().clone());
    b.client
        .publish(&mut cx, &job(&record))
        .await
        .expect("the resumed publish");
    let second_took = started.elapsed();
    let anon_peak = sampler.finish();
    let hwm = status_kib("VmHWM").unwrap_or(0);
    let done = upload_of(&b.sim, &display_name(&record));
    let resent = done.blocks_sent_twice().len();
    println!(
        "\ninterrupted and resumed publish (work budget {:.1} s):",
        budget.as_secs_f64()
    );
    println!(
        "  first invocation           {:.1} s, {} of {} blocks accepted, then: {}",
        first_took.as_secs_f64(),
        first.blocks_received(),
        done.committed_blocks.len(),
        stopped.message
    );
    println!(
        "  second invocation          {:.1} s, read {:.1} MiB, sent {} blocks",
        second_took.as_secs_f64(),
        mib(b.artifacts.bytes_read() - read_before),
        done.blocks_received() - first.blocks_received()
    );
    println!(
        "  blocks sent again          {resent} (of {} accepted by the first invocation)",
        first.blocks_received()
    );
    println!(
        "  committed                  {} bytes, {}",
        done.committed_len, done.upload_state
    );
    println!("  peak RSS (VmHWM)           {:.1} MiB", mib(hwm * 1024));
    println!(
        "  peak anonymous RSS         {:.1} MiB (sampled every 10 ms)",
        mib(anon_peak * 1024)
    );
    assert_eq!(resent, 0, "no accepted block sent twice");
    assert_eq!(done.committed_len, b.content);
}

#[tokio::main]
async fn main() {
    let args = args();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let content = (args.size_gib * 1024.0 * MIB) as u64;
    println!(
        "Intune publish at scale: {:.2} GiB of encrypted content, {} MiB blocks, {} in flight",
        args.size_gib,
        IntuneConfig::default().chunk_size / (1024 * 1024),
        args.concurrency
    );
    let started = Instant::now();
    let package = eucora_intune::intunewin::generated("Setup Files\\setup.exe", content, 7);
    println!(
        "  package generated: {} bytes (zip{}), zip skeleton {} bytes, in {:.1} s",
        package.len(),
        if content >= u64::from(u32::MAX) {
            "64"
        } else {
            ""
        },
        package.len() - content,
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let sha256 = package.sha256();
    println!(
        "  its SHA-256 (the evidence pack's): {sha256}, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // The simulator at realistic latency (100 to 400 ms an answer) and upload throughput
    // (50 MiB/s a request), on the wall clock (SAS URIs expire in 15 minutes), keeping no bytes.
    let sim = eucora_sim_intune::start_on(
        SimConfig {
            client_secret: SECRET.into(),
            blob_bytes_kept: 0,
            ..SimConfig::default()
        },
        Arc::new(SystemClock),
    )
    .await;
    let artifacts = MemoryArtifacts::default();
    let c = sim.config();
    let creds = StaticCredentials::new(
        &serde_json::json!({ "tenant_id": c.tenant_id, "client_id": c.client_id, "client_secret": SECRET })
            .to_string(),
    );
    let client = IntuneClient::new(
        IntuneConfig {
            login_base: sim.base_url(),
            graph_base: sim.base_url(),
            upload_concurrency: args.concurrency,
            ..IntuneConfig::default()
        },
        creds,
        artifacts.clone(),
    )
    .expect("the client");
    let bench = Bench {
        sim,
        artifacts,
        client,
        package,
        sha256,
        content,
    };
    let took = full_run(&bench).await;
    resumed_run(&bench, took / 2).await;
}
