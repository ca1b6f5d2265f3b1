//! Packages of real size (tens of MiB here, in small blocks), streamed and resumable, against the
//! Graph simulator: interrupted uploads resume without sending accepted blocks again, expired
//! storage URIs are renewed, transient storage errors retried, slow background steps waited on
//! across invocations (one content version), failed commits halt, other bytes never commit.

use std::sync::Arc;
use std::time::Duration;

use eucora_connector::artifact::{Composed, MemoryArtifacts, Segment, generate};
use eucora_connector::credentials::StaticCredentials;
use eucora_connector::platform::{CallContext, Job, Platform};
use eucora_connector::{CallError, ErrorClass, testing};
use eucora_domain::evidence::{Platform as Kind, Sha256Hex};
use eucora_domain::{Clock, ManualClock, Ring, SystemClock};
use eucora_intune::{IntuneClient, IntuneConfig};
use eucora_service::record::DeploymentRecord;
use eucora_sim_intune::{Fault, RouteMatch, SimConfig, SimContentFile, SimHandle};
use sha2::Digest;

const SECRET: &str = "graph-secret-1";
/// The block size of these tests: 80 blocks and a short one.
const BLOCK: usize = 256 * 1024;
const CONTENT: u64 = 20 * 1024 * 1024 + 12_345;
const SEED: u64 = 0x1A27_E5EE;

struct Fixture {
    sim: SimHandle,
    artifacts: MemoryArtifacts,
    client: IntuneClient<StaticCredentials, MemoryArtifacts>,
    record: DeploymentRecord,
}

/// The simulator without latency or upload throughput (tests must not depend on time).
fn quick() -> SimConfig {
    SimConfig {
        client_secret: SECRET.into(),
        latency: Duration::ZERO,
        latency_jitter: Duration::ZERO,
        storage_bytes_per_second: None,
        ..SimConfig::default()
    }
}

fn client_config(sim: &SimHandle) -> IntuneConfig {
    IntuneConfig {
        login_base: sim.base_url(),
        graph_base: sim.base_url(),
        poll_interval: Duration::from_millis(1),
        poll_attempts: 3,
        chunk_size: BLOCK,
        upload_concurrency: 3,
        block_retries: 2,
        block_retry_backoff: Duration::from_millis(1),
        ..IntuneConfig::default()
    }
}

/// A dispatched deployment whose packages are in `artifacts`.
async fn deployment(artifacts: &MemoryArtifacts, correlation: &str) -> DeploymentRecord {
    testing::dispatched(
        &testing::services(),
        artifacts,
        "low-risk",
        &format!("dep-{correlation}"),
        correlation,
        |_, p| eucora_intune::intunewin::build("7z2408-x64.exe", p),
    )
    .await
}

fn client_for(
    sim: &SimHandle,
    artifacts: &MemoryArtifacts,
    tune: impl FnOnce(&mut IntuneConfig),
) -> IntuneClient<StaticCredentials, MemoryArtifacts> {
    let c = sim.config();
    let creds = StaticCredentials::new(
        &serde_json::json!({ "tenant_id": c.tenant_id, "client_id": c.client_id, "client_secret": SECRET })
            .to_string(),
    );
    let mut cfg = client_config(sim);
    tune(&mut cfg);
    IntuneClient::new(cfg, creds, artifacts.clone()).unwrap()
}

async fn fixture_on(
    sim: SimHandle,
    correlation: &str,
    tune: impl FnOnce(&mut IntuneConfig),
) -> Fixture {
    let artifacts = MemoryArtifacts::default();
    let record = deployment(&artifacts, correlation).await;
    let client = client_for(&sim, &artifacts, tune);
    Fixture {
        sim,
        artifacts,
        client,
        record,
    }
}

async fn fixture(config: SimConfig) -> Fixture {
    fixture_on(eucora_sim_intune::start(config).await, "dp-big-1", |_| {}).await
}

/// Makes `package` the deployment's Windows artifact (its SHA-256 and size in the evidence).
fn use_package(f: &mut Fixture, package: Composed) {
    let sha256 = package.sha256();
    use_package_claiming(f, package, &sha256);
}

/// Makes `package` the artifact while the evidence pack claims `sha256`.
fn use_package_claiming(f: &mut Fixture, package: Composed, sha256: &str) {
    let location = "s3://eucora-test/big/app.intunewin";
    let artifact = f
        .record
        .submission
        .evidence
        .artifacts
        .iter_mut()
        .find(|a| a.platform == Kind::Windows)
        .unwrap();
    artifact.sha256 = Sha256Hex::parse(sha256).unwrap();
    artifact.size_bytes = package.len();
    artifact.location = location.into();
    f.artifacts.put_composed(location, package);
}

fn big() -> Composed {
    eucora_intune::intunewin::generated("Setup Files\\setup.exe", CONTENT, SEED)
}

fn job_of(record: &DeploymentRecord) -> Job<'_> {
    Job {
        deployment: record,
        ring: Ring::Canary,
        group_id: "grp-canary",
        earlier_groups: &[],
        artifact: record.submission.artifact(Kind::Windows).unwrap(),
        now: record.submitted_at,
    }
}

fn job(f: &Fixture) -> Job<'_> {
    job_of(&f.record)
}

fn cx_of(record: &DeploymentRecord) -> CallContext {
    CallContext::new(record.correlation_id().clone())
}

fn cx(f: &Fixture) -> CallContext {
    cx_of(&f.record)
}

async fn publish(f: &Fixture) -> Result<serde_json::Value, CallError> {
    f.client.publish(&mut cx(f), &job(f)).await
}

/// The app's one content file (panics when there is not exactly one).
fn only_file(f: &Fixture) -> SimContentFile {
    let apps = f.sim.apps();
    assert_eq!(apps.len(), 1, "one app");
    let files = f.sim.content_files(&apps[0].id);
    assert_eq!(files.len(), 1, "one content version, one file: {files:?}");
    files.into_iter().next().unwrap()
}

fn blocks_in(len: u64) -> u32 {
    u32::try_from(len.div_ceil(BLOCK as u64)).unwrap()
}

/// Block PUTs answered 201 since the requests were last cleared.
fn blocks_accepted_in_log(sim: &SimHandle) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.query_param("comp").as_deref() == Some("block"))
        .filter(|r| r.status == Some(201))
        .count()
}

/// The committed blob is the generated content, block by block (checked by digest: the simulator
/// keeps lengths and SHA-256s, not gigabytes).
fn assert_committed_content(file: &SimContentFile) {
    assert_eq!(file.committed_len, CONTENT);
    assert_eq!(file.committed_blocks.len(), blocks_in(CONTENT) as usize);
    for (i, block) in file.committed_blocks.iter().enumerate() {
        let start = i as u64 * BLOCK as u64;
        let mut bytes = Vec::new();
        generate(SEED, start, block.len, &mut bytes);
        let want = eucora_connector::artifact::hex_lower(&sha2::Sha256::digest(&bytes));
        assert_eq!(block.sha256, want, "block {i}");
    }
}

#[tokio::test]
async fn an_interrupted_publish_resumes_without_sending_accepted_blocks_again() {
    let mut f = fixture(SimConfig {
        blob_bytes_kept: 1024 * 1024,
        ..quick()
    })
    .await;
    use_package(&mut f, big());
    // The connection drops on every block after the 30th: the first publish stops part-way.
    f.sim
        .faults()
        .fail_after(RouteMatch::PutBlock, 30, Fault::DropConnection, u32::MAX);
    let e = publish(&f).await.unwrap_err();
    assert_eq!((e.class, e.status), (ErrorClass::Transient, None), "{e}");
    let first = only_file(&f);
    assert_eq!(first.blocks_received(), 30);
    assert_eq!(first.committed_len, 0, "nothing committed part-way");

    f.sim.faults().clear();
    f.sim.clear_requests();
    let read_before = f.artifacts.bytes_read();
    publish(&f).await.unwrap();
    let file = only_file(&f);
    assert!(
        file.blocks_sent_twice().is_empty(),
        "sent twice: {:?}",
        file.blocks_sent_twice()
    );
    assert_eq!(file.blocks_received(), blocks_in(CONTENT));
    assert_eq!(
        blocks_accepted_in_log(&f.sim),
        blocks_in(CONTENT) as usize - 30,
        "the second publish sent only what Azure did not hold"
    );
    assert!(
        f.artifacts.bytes_read() - read_before >= big().len(),
        "the whole package was read (and hashed) again"
    );
    assert_eq!(file.upload_state, "commitFileSuccess");
    assert_committed_content(&file);
    let app = &f.sim.apps()[0];
    assert_eq!(app.publishing_state.as_str(), "published");
    assert_eq!(
        app.properties["setupFilePath"], "Setup Files\\setup.exe",
        "Detection.xml's SetupFile"
    );
    assert_eq!(app.assignments.len(), 1);
}

#[tokio::test]
async fn a_spent_budget_hands_the_upload_to_a_later_invocation() {
    let mut f = fixture(quick()).await;
    use_package(&mut f, big());
    // A budget already spent: the invocation sends one block, then hands over.
    let mut spent = cx(&f).with_budget(Duration::ZERO);
    let e = f.client.publish(&mut spent, &job(&f)).await.unwrap_err();
    assert!(e.is_resume_later(), "{e}");
    assert_eq!(e.retry_after, Some(Duration::from_secs(1)));
    assert_eq!(only_file(&f).blocks_received(), 1);

    let mut spent = cx(&f).with_budget(Duration::ZERO);
    let e = f.client.publish(&mut spent, &job(&f)).await.unwrap_err();
    assert!(e.is_resume_later(), "{e}");
    assert_eq!(only_file(&f).blocks_received(), 2, "one more, none again");

    publish(&f).await.unwrap();
    let file = only_file(&f);
    assert!(file.blocks_sent_twice().is_empty());
    assert_eq!(file.blocks_received(), blocks_in(CONTENT));
    assert_committed_content(&file);
}

#[tokio::test]
async fn a_storage_uri_that_expires_mid_upload_is_renewed_and_the_upload_completes() {
    let mut f = fixture(quick()).await;
    use_package(&mut f, big());
    f.sim.expire_sas_after_blocks(25);
    let mut c = cx(&f);
    f.client.publish(&mut c, &job(&f)).await.unwrap();
    let requests = f.sim.requests();
    let refused: Vec<_> = requests
        .iter()
        .filter(|r| r.path.starts_with("/blob/") && r.status == Some(403))
        .collect();
    assert!(!refused.is_empty(), "the SAS expired mid-upload");
    let renewals = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/renewUpload"))
        .count();
    assert_eq!(renewals, 1);
    assert!(
        !c.calls
            .iter()
            .any(|call| call.error_class == Some(ErrorClass::PolicyViolation)),
        "an expired SAS is no policy violation"
    );
    let file = only_file(&f);
    assert!(
        file.blocks_sent_twice().is_empty(),
        "refused blocks were not accepted"
    );
    assert_eq!(file.blocks_received(), blocks_in(CONTENT));
    assert_committed_content(&file);
}

#[tokio::test]
async fn a_storage_uri_is_renewed_before_it_gets_old() {
    let mut f = fixture_on(
        eucora_sim_intune::start(quick()).await,
        "dp-renew-1",
        |cfg| cfg.sas_renew_after = Duration::ZERO,
    )
    .await;
    use_package(
        &mut f,
        eucora_intune::intunewin::generated("setup.exe", 4 * BLOCK as u64, 3),
    );
    publish(&f).await.unwrap();
    let requests = f.sim.requests();
    assert!(
        requests
            .iter()
            .filter(|r| r.path.ends_with("/renewUpload"))
            .count()
            >= 4,
        "renewed at each block (renew_after zero)"
    );
    assert!(!requests.iter().any(|r| r.status == Some(403)));
    assert_eq!(only_file(&f).upload_state, "commitFileSuccess");
}

#[tokio::test]
async fn an_expired_uri_left_by_an_earlier_invocation_is_renewed_before_it_is_used() {
    let clock = ManualClock::new(SystemClock.now());
    let sim = eucora_sim_intune::start_on(quick(), Arc::new(clock.clone())).await;
    let mut f = fixture_on(sim, "dp-resume-1", |_| {}).await;
    use_package(&mut f, big());
    let mut spent = CallContext::starting_at(f.record.correlation_id().clone(), clock.now())
        .with_budget(Duration::ZERO);
    let e = f.client.publish(&mut spent, &job(&f)).await.unwrap_err();
    assert!(e.is_resume_later(), "{e}");
    // Twenty minutes later the URI has expired (its lifetime is 15).
    clock.advance(time::Duration::minutes(20));
    f.sim.clear_requests();
    let mut later = CallContext::starting_at(f.record.correlation_id().clone(), clock.now());
    f.client.publish(&mut later, &job(&f)).await.unwrap();
    let requests = f.sim.requests();
    assert!(
        !requests.iter().any(|r| r.status == Some(403)),
        "the expired URI was not used"
    );
    let renewal = requests
        .iter()
        .position(|r| r.path.ends_with("/renewUpload"))
        .expect("renewed");
    let first_storage = requests
        .iter()
        .position(|r| r.path.starts_with("/blob/"))
        .unwrap();
    assert!(
        renewal < first_storage,
        "renewed before the first storage request"
    );
    assert!(only_file(&f).blocks_sent_twice().is_empty());
}

#[tokio::test]
async fn transient_block_errors_are_retried() {
    let mut f = fixture(quick()).await;
    use_package(&mut f, big());
    let faults = f.sim.faults();
    faults.fail_after(RouteMatch::PutBlock, 5, Fault::ServiceUnavailable, 2);
    faults.fail_after(RouteMatch::PutBlock, 20, Fault::InternalError, 1);
    faults.fail_after(RouteMatch::PutBlock, 40, Fault::DropConnection, 1);
    faults.fail_after(
        RouteMatch::PutBlock,
        50,
        Fault::TooManyRequests {
            retry_after: Some(0.01),
        },
        1,
    );
    publish(&f).await.unwrap();
    assert_eq!(f.sim.faults().remaining(), 0, "every fault was met");
    let statuses: Vec<Option<u16>> = f
        .sim
        .requests()
        .iter()
        .filter(|r| r.fault.is_some())
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [Some(503), Some(503), Some(500), None, Some(429)]);
    let file = only_file(&f);
    assert!(file.blocks_sent_twice().is_empty());
    assert_eq!(file.upload_state, "commitFileSuccess");
}

#[tokio::test]
async fn slow_background_steps_resume_later_on_the_same_content_version() {
    let mut f = fixture(SimConfig {
        pending_polls: 1000,
        ..quick()
    })
    .await;
    use_package(&mut f, big());
    let mut waits = Vec::new();
    let mut done = None;
    for _ in 0..6 {
        match publish(&f).await {
            Ok(ids) => {
                done = Some(ids);
                break;
            }
            Err(e) => {
                assert!(e.is_resume_later(), "{e}");
                assert_eq!(e.retry_after, Some(Duration::from_secs(30)));
                waits.push(e.operation.clone());
                // Intune finishes the step in the background.
                f.sim.advance(Duration::from_secs(60));
            }
        }
    }
    assert!(done.is_some(), "published after {waits:?}");
    assert_eq!(
        waits,
        ["await_upload_state", "await_commit", "await_published"],
        "the storage URI request, the commit and publishing were each waited on"
    );
    let file = only_file(&f);
    assert_eq!(file.content_version, "1", "never a second content version");
    assert!(file.blocks_sent_twice().is_empty());
}

#[tokio::test]
async fn a_failed_commit_halts_with_its_reason() {
    let mut f = fixture(quick()).await;
    use_package(&mut f, big());
    f.sim.fail_next_commit(1);
    let e = publish(&f).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Permanent, "{e}");
    assert_eq!(e.code, "commitFileFailed");
    assert!(e.message.contains("commitFileFailed"), "{}", e.message);
    // Asked again, it halts again: no new content version behind the operator's back.
    let again = publish(&f).await.unwrap_err();
    assert_eq!(again.code, "commitFileFailed");
    assert_eq!(only_file(&f).content_version, "1");
}

#[tokio::test]
async fn bytes_other_than_the_approved_ones_are_never_committed() {
    let mut f = fixture(quick()).await;
    let approved = big();
    let other = eucora_intune::intunewin::generated("Setup Files\\setup.exe", CONTENT, SEED + 1);
    assert_eq!(approved.len(), other.len());
    use_package_claiming(&mut f, other, &approved.sha256());
    let e = publish(&f).await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Permanent, "ARTIFACT_HASH_MISMATCH")
    );
    let file = only_file(&f);
    assert_eq!(file.committed_len, 0, "no block list was put");
    assert_eq!(file.upload_state, "azureStorageUriRequestSuccess");
    let requests = f.sim.requests();
    assert!(
        !requests
            .iter()
            .any(|r| r.query_param("comp").as_deref() == Some("blocklist") && r.method == "PUT")
    );
    assert!(!requests.iter().any(|r| r.path.ends_with("/commit")));
}

#[tokio::test]
async fn a_package_over_the_limit_is_refused_naming_it_before_anything_is_created() {
    let mut f = fixture(quick()).await;
    // Intune's own limit: 30 GB per Win32 app (generated on demand, never read).
    use_package_claiming(
        &mut f,
        Composed::new(vec![Segment::Generated {
            len: 30_000_000_001,
            seed: 1,
        }]),
        &"0".repeat(64),
    );
    let e = publish(&f).await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Permanent, "INTUNE_PACKAGE_TOO_LARGE")
    );
    assert!(
        e.message
            .contains("over Intune's limit of 30 GB per Win32 app (30000000000 bytes)"),
        "{}",
        e.message
    );
    assert_eq!(f.artifacts.bytes_read(), 0, "refused from its size alone");
    assert!(f.sim.apps().is_empty(), "no app created");
    assert!(
        !f.sim
            .requests()
            .iter()
            .any(|r| r.method != "GET" && r.path.starts_with("/v1.0"))
    );
}

#[tokio::test]
async fn a_deflated_package_is_inflated_as_it_streams() {
    let mut f = fixture(quick()).await;
    let mut payload = Vec::new();
    generate(9, 0, 3 * 1024 * 1024 + 7, &mut payload);
    // Compressible in part: a real deflate stream, not only stored blocks.
    payload[..1024 * 1024].fill(b'z');
    let bytes = eucora_intune::intunewin::build_with("setup.exe", &payload, true);
    assert!(bytes.len() < payload.len());
    use_package(&mut f, Composed::new(vec![Segment::Bytes(bytes.into())]));
    publish(&f).await.unwrap();
    let file = only_file(&f);
    assert_eq!(file.size_encrypted, payload.len() as u64);
    assert!(
        f.sim.blob(&file.id).unwrap() == payload,
        "the inflated bytes"
    );
}

#[tokio::test]
async fn the_marker_is_matched_exactly() {
    let sim = eucora_sim_intune::start(quick()).await;
    let artifacts = MemoryArtifacts::default();
    let twelve = deployment(&artifacts, "CHG12").await;
    let mut one = deployment(&artifacts, "CHG1").await;
    // One display name for both: only the note tells the deployments' apps apart.
    one.submission.app.version = twelve.submission.app.version.clone();
    let client = client_for(&sim, &artifacts, |_| {});
    client
        .publish(&mut cx_of(&twelve), &job_of(&twelve))
        .await
        .unwrap();
    client
        .publish(&mut cx_of(&one), &job_of(&one))
        .await
        .unwrap();
    let apps = sim.apps();
    assert_eq!(apps.len(), 2, "CHG1 did not take CHG12's app");
    assert_eq!(apps[0].display_name, apps[1].display_name);
    let notes: Vec<&str> = apps
        .iter()
        .map(|a| a.properties["notes"].as_str().unwrap())
        .collect();
    assert_eq!(notes, ["eucora:CHG12", "eucora:CHG1"]);
    // Publishing CHG1 again finds its own app.
    client
        .publish(&mut cx_of(&one), &job_of(&one))
        .await
        .unwrap();
    assert_eq!(sim.apps().len(), 2);
}

#[tokio::test]
async fn other_bytes_that_are_no_package_are_refused_as_not_approved() {
    let mut f = fixture(quick()).await;
    let approved = f
        .record
        .submission
        .artifact(Kind::Windows)
        .unwrap()
        .sha256
        .as_str()
        .to_owned();
    use_package_claiming(
        &mut f,
        Composed::new(vec![Segment::Bytes(
            b"not what was approved".to_vec().into(),
        )]),
        &approved,
    );
    let e = publish(&f).await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Permanent, "ARTIFACT_HASH_MISMATCH"),
        "{e}"
    );
    assert!(f.sim.apps().is_empty(), "no app created");
}

#[tokio::test]
async fn an_approved_package_that_is_no_intunewin_is_refused_as_invalid() {
    let mut f = fixture(quick()).await;
    use_package(
        &mut f,
        Composed::new(vec![Segment::Bytes(
            b"approved, but no zip".to_vec().into(),
        )]),
    );
    let e = publish(&f).await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Permanent, "INTUNEWIN_INVALID"),
        "{e}"
    );
}

/// Renewals asked of Graph so far.
fn renewals(sim: &SimHandle) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/renewUpload"))
        .count()
}

#[tokio::test]
async fn blocks_left_by_an_invocation_that_read_other_bytes_are_sent_again() {
    let mut f = fixture(quick()).await;
    let approved = big();
    // The store first answers other bytes of the same size (a bad replica, an overwrite
    // undone): the first invocation's budget ends before it has read them all.
    let other = eucora_intune::intunewin::generated("Setup Files\\setup.exe", CONTENT, SEED + 1);
    use_package_claiming(&mut f, other, &approved.sha256());
    let mut spent = cx(&f).with_budget(Duration::ZERO);
    let e = f.client.publish(&mut spent, &job(&f)).await.unwrap_err();
    assert!(e.is_resume_later(), "{e}");
    assert_eq!(
        only_file(&f).blocks_received(),
        1,
        "one block of other bytes"
    );

    // Then the approved bytes: the block Azure holds is not theirs, whatever its size and index.
    use_package(&mut f, approved);
    publish(&f).await.unwrap();
    let file = only_file(&f);
    assert_eq!(file.blocks_received(), blocks_in(CONTENT) + 1);
    assert_committed_content(&file);
}

#[tokio::test]
async fn a_sas_refused_for_another_reason_than_its_expiry_is_renewed_and_the_upload_completes() {
    let mut f = fixture(quick()).await;
    use_package(&mut f, big());
    // Azure refuses a SAS whose stored access policy has not taken effect yet.
    f.sim
        .faults()
        .fail_after(RouteMatch::PutBlock, 10, Fault::SasRefused, 1);
    let mut c = cx(&f);
    f.client.publish(&mut c, &job(&f)).await.unwrap();
    assert_eq!(f.sim.faults().remaining(), 0, "the refusal was met");
    assert_eq!(renewals(&f.sim), 1);
    let file = only_file(&f);
    assert!(
        file.blocks_sent_twice().is_empty(),
        "the refused block was not taken"
    );
    assert_committed_content(&file);
    assert!(
        !c.calls
            .iter()
            .any(|call| call.error_class == Some(ErrorClass::PolicyViolation)),
        "a storage 403 is no policy violation"
    );
}

#[tokio::test]
async fn a_sas_refused_after_every_renewal_halts_naming_azures_reason_and_no_signature() {
    let mut f = fixture(quick()).await;
    use_package(&mut f, big());
    f.sim
        .faults()
        .fail_after(RouteMatch::PutBlock, 3, Fault::SasRefused, u32::MAX);
    let mut c = cx(&f);
    let e = f.client.publish(&mut c, &job(&f)).await.unwrap_err();
    assert_eq!(
        (e.class, e.status, e.code.as_str()),
        (ErrorClass::Permanent, Some(403), "AuthenticationFailed"),
        "{e}"
    );
    assert!(
        e.message.contains("Signature did not match"),
        "{}",
        e.message
    );
    assert_eq!(
        renewals(&f.sim),
        3,
        "renewed, and renewed again, before halting"
    );
    let file = only_file(&f);
    assert_eq!(file.committed_len, 0);
    // Neither the error nor the audit trail carries the SAS.
    let trail = serde_json::to_string(&c.calls).unwrap();
    for text in [e.to_string(), trail] {
        assert!(!text.contains("sig=") && !text.contains("si="), "{text}");
    }
    assert!(
        c.calls
            .iter()
            .any(|call| call.operation == "upload_block" && call.endpoint.starts_with("/blob/"))
    );
}

#[tokio::test]
async fn a_storage_uri_that_cannot_list_blocks_resumes_by_sending_every_block() {
    let mut f = fixture(SimConfig {
        sas_allows_read: false,
        ..quick()
    })
    .await;
    use_package(&mut f, big());
    let mut spent = cx(&f).with_budget(Duration::ZERO);
    let e = f.client.publish(&mut spent, &job(&f)).await.unwrap_err();
    assert!(e.is_resume_later(), "{e}");
    let mut c = cx(&f);
    f.client.publish(&mut c, &job(&f)).await.unwrap();
    let file = only_file(&f);
    assert_eq!(
        file.blocks_sent_twice().len(),
        1,
        "the block sent before, again"
    );
    assert_committed_content(&file);
    let listed = c
        .calls
        .iter()
        .find(|call| call.operation == "get_block_list")
        .unwrap();
    assert_eq!(listed.status, Some(403));
    assert_eq!(
        listed.error_class, None,
        "expected of such a URI: no failure"
    );
}

#[tokio::test]
async fn blocks_of_other_ids_left_in_the_blob_are_discarded_first() {
    let mut f = fixture(quick()).await;
    use_package(&mut f, big());
    // Nothing reaches Azure in the first invocation.
    f.sim
        .faults()
        .fail_after(RouteMatch::PutBlock, 0, Fault::DropConnection, u32::MAX);
    let e = publish(&f).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Transient, "{e}");
    f.sim.faults().clear();
    // A block of an id of another length (another uploader, an earlier id scheme) is there.
    let dropped = f
        .sim
        .requests()
        .into_iter()
        .find(|r| r.query_param("comp").as_deref() == Some("block"))
        .unwrap();
    let query: Vec<String> = dropped
        .query
        .unwrap()
        .split('&')
        .filter(|p| !p.starts_with("comp=") && !p.starts_with("blockid="))
        .map(str::to_owned)
        .collect();
    let uri = format!("{}{}?{}", f.sim.base_url(), dropped.path, query.join("&"));
    let put = reqwest::Client::new()
        .put(format!("{uri}&comp=block&blockid=QUFBQQ%3D%3D"))
        .body(vec![1_u8; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);

    publish(&f).await.unwrap();
    let file = only_file(&f);
    assert_eq!(file.upload_state, "commitFileSuccess");
    assert_committed_content(&file);
}
