//! Figures at real size (issue #11), printed, never asserted:
//!
//! ```text
//! cargo run -p eucora-system-tests --example scale            # both
//! cargo run -p eucora-system-tests --example scale -- status  # 10,000 devices a platform
//! cargo run -p eucora-system-tests --example scale -- gates   # 500 deployments in flight
//! ```
//!
//! - `status`: the whole local stack (moto, the template's queues and table, both connectors
//!   behind their queues) with 10,000 Windows PCs and 10,000 Macs in Ring 1's groups and the
//!   simulators at realistic latency (Graph 100–400 ms, Jamf Cloud 200 ms a call plus 1 ms a
//!   listed record). One gate run sends one status query per platform; the figure is the wall
//!   time until both connectors have collected and stored their snapshots, with the calls each
//!   made and the most connections Jamf saw at once.
//! - `gates`: 500 deployments live in Ring 1, each with a stored snapshot of 200 devices; one gate
//!   run over all of them with the default limits (16 at a time, 40 s budget): wall time, how many
//!   were evaluated and left for the next run, and the process's peak memory. Twice: over the
//!   in-memory store with DynamoDB's latency added to every call (10 ms a read, 25 ms a write:
//!   generous for DynamoDB in-region), and over the table in moto. Moto deep-copies the whole
//!   table for every item of every `TransactWriteItems` (its rollback copy, `moto/dynamodb/
//!   models/__init__.py`), so there a run's time grows with the table's size: a figure of the
//!   emulator, not of DynamoDB.
//!
//! A debug build, with the simulators in the same process: the figures are upper bounds.

use std::time::{Duration, Instant};

use eucora_domain::evidence::{Platform, SiteClass};
use eucora_domain::gates::{DeviceResult, InstallOutcome};
use eucora_domain::{DeploymentId, Ring, Timestamp};
use eucora_local::stack::local::Options;
use eucora_service::ports::{StatusSnapshot, TelemetryStore};
use eucora_service::usecases::gates::{RunLimits, run};
use eucora_system_tests::local::{sample, start_with};

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn status() {
    let started = Instant::now();
    let e = start_with(Options {
        speed: 60.0,
        start: Some(Timestamp::parse(eucora_system_tests::TEST_START).expect("RFC 3339")),
        devices: 10_000,
        schedule: false,
        realistic_latency: true,
        ..Options::default()
    })
    .await;
    println!(
        "status: stack with 10,000 devices a ring per platform up in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut submission = sample("multi-platform");
    submission["evidence"]["rollout"]["rings"][0]["target_devices"] = 20_000.into();
    submission["evidence"]["rollout"]["rings"][1]["target_devices"] = 20_000.into();
    let id = e.submit(submission).await;
    // The rollback gate reads a validation record, not the packager's claim.
    e.validate_rollback(&id).await;
    let t = Instant::now();
    let state = e.settled(&id).await;
    println!(
        "status: published and assigned to Ring 1 on both platforms in {:.1} s ({state})",
        t.elapsed().as_secs_f64()
    );
    // Two hours on: every device has installed (or failed, or never checked in).
    e.stack.advance(Duration::from_secs(2 * 3600));
    e.stack.sims.jamf.reset_peak_concurrency();
    let t = Instant::now();
    e.stack.run_gates().await.expect("gate run");
    e.stack
        .settle(Duration::from_secs(600))
        .await
        .expect("the status queries finish");
    let took = t.elapsed();
    let dep = DeploymentId::parse(&id).expect("id");
    let snapshots = e
        .stack
        .store()
        .snapshots(&dep, Ring::Canary)
        .await
        .expect("snapshots");
    println!(
        "status: one gate run's status queries collected and stored in {:.1} s (the period is 300 s)",
        took.as_secs_f64()
    );
    for s in &snapshots {
        let st = &s.status;
        println!(
            "status:   {:<7} {} targeted, {} reported, {} missing, {} of earlier rings; {} calls in {:.1} s; {} stored chunks",
            st.platform.key(),
            st.targeted,
            st.reported,
            st.missing,
            st.earlier_ring_devices,
            st.calls,
            Duration::from_millis(st.duration_ms).as_secs_f64(),
            eucora_aws::telemetry::chunks(&s.devices).map_or(0, |c| c.len()),
        );
    }
    println!(
        "status: most connections to Jamf at once: {}",
        e.stack.sims.jamf.peak_concurrency()
    );
    let events = e.audit(&id).await;
    let queries = events
        .iter()
        .filter(|ev| ev["kind"] == "connector.status_query")
        .count();
    println!(
        "status: audit events of the status queries: {queries} (one per query), {} in the whole trail",
        events.len()
    );
    e.stack.shutdown().await;
}

/// `n` low-risk deployments live in Ring 1, each with a 200-device snapshot.
async fn live_in_ring_1<S>(
    svc: &eucora_service::usecases::Services<S, eucora_service::memory::Memory>,
    n: usize,
    t0: Timestamp,
) where
    S: eucora_service::ports::DeploymentStore + TelemetryStore,
{
    let body = serde_json::to_string(&sample("low-risk")).expect("JSON");
    let packager = eucora_service::Actor::new(
        eucora_domain::ActorId::parse("packager-alice").expect("id"),
        [eucora_domain::cab::Role::Packaging],
    );
    let publisher = eucora_service::Actor::new(
        eucora_domain::ActorId::parse("publisher-pat").expect("id"),
        [eucora_domain::cab::Role::Publisher],
    );
    for i in 0..n {
        let id = DeploymentId::parse(format!("dep-bench-{i:04}")).expect("id");
        let body = body.replace("dp-20261123-0001", &format!("dp-bench-{i:04}"));
        eucora_service::usecases::submit::submit(
            svc,
            &packager,
            eucora_service::usecases::submit::SubmitInput {
                body: &body,
                idempotency_key: None,
                new_id: id.clone(),
                now: t0,
            },
        )
        .await
        .expect("submitted");
        // The rollback gate reads a validation record (by a publisher), not the packager's claim.
        eucora_service::usecases::rollback::record_validation(
            svc,
            &publisher,
            &id,
            eucora_domain::rollback::ValidationInput {
                devices: vec!["lab-device-01".into()],
                result: eucora_domain::rollback::RollbackResult::Passed,
                notes: None,
            },
            t0,
        )
        .await
        .expect("rollback validated");
        eucora_service::usecases::score::score(svc, &id, t0)
            .await
            .expect("scored");
        eucora_service::usecases::connector::dispatched(
            svc,
            &id,
            Ring::Canary,
            Platform::Windows,
            serde_json::Value::Null,
            t0,
        )
        .await
        .expect("in Ring 1");
        let devices = (0..200)
            .map(|d| DeviceResult {
                device_id: format!("pc-{i:04}-{d:03}"),
                platform: Platform::Windows,
                outcome: InstallOutcome::Installed,
                site_class: SiteClass::Online,
                at: t0.plus(time::Duration::minutes(30)),
                last_contact: Some(t0.plus(time::Duration::minutes(30))),
            })
            .collect();
        svc.store
            .record(
                &id,
                Ring::Canary,
                &StatusSnapshot::of(
                    Platform::Windows,
                    devices,
                    t0.plus(time::Duration::hours(1)),
                ),
            )
            .await
            .expect("snapshot stored");
    }
}

async fn gates() {
    let t0 = Timestamp::parse(eucora_system_tests::TEST_START).expect("RFC 3339");
    let slow = eucora_service::usecases::Services {
        store: Slow(eucora_service::memory::Memory::new()),
        queue: eucora_service::memory::Memory::new(),
        policy: eucora_domain::policy::Policy::bundled(),
    };
    live_in_ring_1(&slow, 500, t0).await;
    one_run(
        "memory store + DynamoDB latency",
        &slow,
        t0.plus(time::Duration::hours(2)),
    )
    .await;

    let repo = eucora_system_tests::local::repo();
    let moto = eucora_local::stack::moto::Moto::start(&repo).expect("moto");
    let sdk = moto.sdk().await;
    let template = eucora_local::stack::template::Template::parse(
        &std::fs::read_to_string(repo.join("template.yaml")).expect("template"),
    )
    .expect("template parses");
    let resources = eucora_local::stack::provision::provision(&template, "bench", &sdk)
        .await
        .expect("provisioned");
    let store = eucora_local::stack::local::services(&sdk, &resources).store;
    let svc = eucora_service::usecases::Services {
        store,
        queue: eucora_service::memory::Memory::new(),
        policy: eucora_domain::policy::Policy::bundled(),
    };
    let t = Instant::now();
    live_in_ring_1(&svc, 500, t0).await;
    println!(
        "gates: 500 deployments live in Ring 1 with 200-device snapshots, set up in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    one_run("moto", &svc, t0.plus(time::Duration::hours(2))).await;
}

/// The in-memory store with DynamoDB's latency on every call.
#[derive(Clone)]
struct Slow(eucora_service::memory::Memory);

const READ: Duration = Duration::from_millis(10);
const WRITE: Duration = Duration::from_millis(25);

impl eucora_service::ports::DeploymentStore for Slow {
    async fn create(
        &self,
        change: &eucora_service::record::Change,
        claims: &[eucora_service::ports::IdempotencyRecord],
    ) -> Result<(), eucora_service::ports::CreateError> {
        self.0.create(change, claims).await
    }
    async fn idempotency(
        &self,
        key: &str,
    ) -> Result<Option<eucora_service::ports::IdempotencyRecord>, eucora_service::ports::StoreError>
    {
        self.0.idempotency(key).await
    }
    async fn get(
        &self,
        id: &DeploymentId,
    ) -> Result<Option<eucora_service::record::DeploymentRecord>, eucora_service::ports::StoreError>
    {
        tokio::time::sleep(READ).await;
        self.0.get(id).await
    }
    async fn save(
        &self,
        change: &eucora_service::record::Change,
    ) -> Result<(), eucora_service::ports::StoreError> {
        tokio::time::sleep(WRITE).await;
        self.0.save(change).await
    }
    async fn in_flight(&self) -> Result<Vec<DeploymentId>, eucora_service::ports::StoreError> {
        tokio::time::sleep(READ).await;
        self.0.in_flight().await
    }
    async fn awaiting_cab(&self) -> Result<Vec<DeploymentId>, eucora_service::ports::StoreError> {
        self.0.awaiting_cab().await
    }
    async fn audit_trail(
        &self,
        id: &DeploymentId,
    ) -> Result<Vec<eucora_domain::audit::AuditEvent>, eucora_service::ports::StoreError> {
        self.0.audit_trail(id).await
    }
    async fn audit_page(
        &self,
        id: &DeploymentId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<eucora_service::ports::AuditPage, eucora_service::ports::StoreError> {
        self.0.audit_page(id, after, limit).await
    }
}

impl TelemetryStore for Slow {
    async fn snapshots(
        &self,
        id: &DeploymentId,
        ring: Ring,
    ) -> Result<Vec<StatusSnapshot>, eucora_service::ports::StoreError> {
        // The heads, then each head's chunks.
        tokio::time::sleep(READ * 2).await;
        self.0.snapshots(id, ring).await
    }
    async fn record(
        &self,
        id: &DeploymentId,
        ring: Ring,
        snapshot: &StatusSnapshot,
    ) -> Result<(), eucora_service::ports::StoreError> {
        self.0.record(id, ring, snapshot).await
    }
}

impl eucora_service::ports::GateRunStore for Slow {
    async fn begin_run(
        &self,
        run_id: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<eucora_service::ports::RunLease, eucora_service::ports::StoreError> {
        tokio::time::sleep(WRITE).await;
        self.0.begin_run(run_id, now, until).await
    }
    async fn end_run(
        &self,
        run_id: &str,
        cursor: Option<&DeploymentId>,
    ) -> Result<(), eucora_service::ports::StoreError> {
        tokio::time::sleep(WRITE).await;
        self.0.end_run(run_id, cursor).await
    }
}

/// One gate run over `svc`'s deployments, printed.
async fn one_run<S>(
    label: &str,
    svc: &eucora_service::usecases::Services<S, eucora_service::memory::Memory>,
    now: Timestamp,
) where
    S: eucora_service::ports::DeploymentStore
        + TelemetryStore
        + eucora_service::ports::GateRunStore,
{
    let before = peak_rss_mib();
    let t = Instant::now();
    let report = run(svc, &format!("bench-{label}"), now, RunLimits::default())
        .await
        .expect("gate run");
    println!(
        "gates: {label}: one run evaluated {} deployments ({} failed, {} left for the next run) in {:.1} s (16 at a time, 40 s budget); peak memory {:.0} MiB (before {before:.0} MiB)",
        report.evaluated.len(),
        report.failed.len(),
        report.deferred,
        t.elapsed().as_secs_f64(),
        peak_rss_mib()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let what = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    if what == "status" || what == "all" {
        status().await;
    }
    if what == "gates" || what == "all" {
        gates().await;
    }
}
