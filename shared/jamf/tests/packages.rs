//! Packages of real size and exactly the approved bytes, against the Jamf Pro simulator: a
//! same-named package with other bytes is never deployed, the policy goes live only once Jamf has
//! processed the package, Macs retry, a missing privilege halts, exclusions survive a promotion,
//! the category is created where missing, tokens are reused, and an upload that stopped resumes
//! from what Jamf holds.

use std::sync::Arc;
use std::time::Duration;

use eucora_connector::artifact::MemoryArtifacts;
use eucora_connector::credentials::StaticCredentials;
use eucora_connector::platform::{CallContext, Job, Platform, StopSignal};
use eucora_connector::{CallError, ErrorClass, testing};
use eucora_domain::evidence::Platform as Kind;
use eucora_domain::{ManualClock, Ring};
use eucora_jamf::{JamfClient, JamfConfig};
use eucora_service::record::DeploymentRecord;
use eucora_sim_jamf::{
    ComputerOutcome, Fault, RouteMatch, SeedPackage, SimComputer, SimConfig, SimHandle,
};
use sha2::Digest as _;

const SECRET: &str = "jamf-secret-1";
const MIB: usize = 1024 * 1024;

struct Fixture {
    sim: SimHandle,
    clock: ManualClock,
    client: JamfClient<StaticCredentials, MemoryArtifacts>,
    artifacts: MemoryArtifacts,
    record: DeploymentRecord,
}

fn creds(sim: &SimHandle) -> StaticCredentials {
    let c = SimConfig::default();
    StaticCredentials::new(
        &serde_json::json!({ "server_url": sim.base_url(), "client_id": c.client_id, "client_secret": SECRET })
            .to_string(),
    )
}

/// A deployment whose macOS package is `size` bytes, and a simulator with rings 41 and 42.
async fn fixture_with(config: SimConfig, jamf: JamfConfig, size: usize) -> Fixture {
    let artifacts = MemoryArtifacts::default();
    let record = testing::dispatched(
        &testing::services(),
        &artifacts,
        "multi-platform",
        "dep-jamf",
        "dp-jamf-1",
        |_, p| {
            let mut bytes = p.to_vec();
            let mut x: u32 = 0x9E37_79B9;
            while bytes.len() < size {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                bytes.push(x.to_le_bytes()[1]);
            }
            bytes
        },
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
    let client = JamfClient::new(&jamf, creds(&sim), artifacts.clone()).unwrap();
    Fixture {
        sim,
        clock,
        client,
        artifacts,
        record,
    }
}

async fn fixture() -> Fixture {
    fixture_with(SimConfig::instant(), JamfConfig::default(), 0).await
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

/// The Canary job as a later invocation sees it (its `now` at `now`).
fn job_at(f: &Fixture, now: eucora_domain::Timestamp) -> Job<'_> {
    Job {
        now,
        ..job(f, Ring::Canary, "41")
    }
}

fn cx(f: &Fixture) -> CallContext {
    CallContext::new(f.record.correlation_id().clone())
}

async fn publish(f: &Fixture, ring: Ring, group: &str) -> Result<serde_json::Value, CallError> {
    f.client.publish(&mut cx(f), &job(f, ring, group)).await
}

fn sha256(f: &Fixture) -> String {
    f.record
        .submission
        .artifact(Kind::Macos)
        .unwrap()
        .sha256
        .as_str()
        .to_owned()
}

fn version(f: &Fixture) -> String {
    f.record.submission.app.version.clone()
}

/// Requests of a method whose path ends with `suffix`.
fn count(sim: &SimHandle, method: &str, suffix: &str) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.method == method && r.path.ends_with(suffix))
        .count()
}

fn uploads(sim: &SimHandle) -> usize {
    count(sim, "POST", "/upload")
}

fn token_requests(sim: &SimHandle) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.path.ends_with("/oauth/token") || r.path == "/api/v1/auth/token")
        .count()
}

fn advance(f: &Fixture, by: Duration) {
    f.clock.advance(time::Duration::try_from(by).unwrap());
}

// ---- exactly the approved bytes ----

#[tokio::test]
async fn a_same_named_package_with_other_bytes_is_never_deployed_the_version_gets_its_own() {
    let f = fixture().await;
    let name = format!("Slack {}", version(&f));
    let file = format!("Slack-4.41.105-macOS-{}.pkg", version(&f));
    let foreign = f.sim.seed_package(&SeedPackage {
        package_name: name.clone(),
        file_name: file.clone(),
        bytes: Some(b"an earlier build that was never approved".to_vec()),
        notes: "uploaded by an admin".into(),
    });
    let ids = publish(&f, Ring::Canary, "41").await.unwrap();

    let short = &sha256(&f)[..12];
    let packages = f.sim.packages();
    assert_eq!(packages.len(), 2);
    let own = packages.iter().find(|p| p.id != foreign).unwrap();
    assert_eq!(own.package_name, format!("{name} ({short})"));
    assert_eq!(
        own.file_name,
        format!("Slack-4.41.105-macOS-{}-{short}.pkg", version(&f))
    );
    assert_eq!(own.upload_sha256.as_deref(), Some(sha256(&f).as_str()));
    let seeded = packages.iter().find(|p| p.id == foreign).unwrap();
    assert_eq!(
        seeded.upload_size,
        Some(40),
        "the other package's file is untouched"
    );
    let policy = &f.sim.policies()[0];
    assert_eq!(policy.package_ids, [own.id], "never the same-named one");
    assert!(policy.enabled);
    assert_eq!(ids["package_id"], own.id.to_string());
    assert_eq!(ids["file_name"], own.file_name.as_str());
    assert_eq!(uploads(&f.sim), 1, "only to its own package");

    // Status reads the receipts of the file the version really got.
    advance(&f, Duration::from_secs(3600));
    let status = f
        .client
        .query_status(&mut cx(&f), &job(&f, Ring::Canary, "41"))
        .await
        .unwrap();
    let installed = status.devices.iter().find(|d| d.device_id == "1").unwrap();
    assert_eq!(
        installed.outcome,
        eucora_domain::gates::InstallOutcome::Installed
    );
}

#[tokio::test]
async fn the_publish_halts_naming_the_clash_when_the_versions_own_name_holds_other_bytes_too() {
    let f = fixture().await;
    let short = sha256(&f)[..12].to_owned();
    let name = format!("Slack {}", version(&f));
    let first = f.sim.seed_package(&SeedPackage {
        package_name: name.clone(),
        file_name: "Slack.pkg".into(),
        bytes: Some(b"build 1".to_vec()),
        notes: String::new(),
    });
    let second = f.sim.seed_package(&SeedPackage {
        package_name: format!("{name} ({short})"),
        file_name: "Slack-other.pkg".into(),
        bytes: Some(b"build 2".to_vec()),
        notes: String::new(),
    });
    let e = publish(&f, Ring::Canary, "41").await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Permanent, "JAMF_PACKAGE_CLASH")
    );
    assert!(
        e.message.contains(&format!("package {first} "))
            && e.message.contains(&format!("package {second} ")),
        "{}",
        e.message
    );
    assert!(e.message.contains("SHA-256"), "{}", e.message);
    assert!(f.sim.policies().is_empty(), "nothing deployed");
    assert_eq!(uploads(&f.sim), 0);
    assert_eq!(f.sim.packages().len(), 2, "no package created");
}

#[tokio::test]
async fn a_package_using_the_versions_file_name_with_other_bytes_is_a_clash_too() {
    let f = fixture().await;
    let file = format!("Slack-4.41.105-macOS-{}.pkg", version(&f));
    f.sim.seed_package(&SeedPackage {
        package_name: "Slack (AutoPkg)".into(),
        file_name: file.clone(),
        bytes: Some(b"AutoPkg's build".to_vec()),
        notes: String::new(),
    });
    publish(&f, Ring::Canary, "41").await.unwrap();
    let own = f
        .sim
        .packages()
        .into_iter()
        .find(|p| p.package_name != "Slack (AutoPkg)")
        .unwrap();
    assert_ne!(
        own.file_name, file,
        "a file of its own: the other's is never replaced"
    );
    assert!(
        own.package_name
            .ends_with(&format!("({})", &sha256(&f)[..12]))
    );
}

#[tokio::test]
async fn a_package_already_holding_the_approved_bytes_is_reused_and_never_uploaded_again() {
    for reports_sha256 in [true, false] {
        let f = fixture_with(
            SimConfig {
                reports_sha256,
                ..SimConfig::instant()
            },
            JamfConfig::default(),
            MIB,
        )
        .await;
        let artifact = f.record.submission.artifact(Kind::Macos).unwrap();
        let bytes = f.artifacts_bytes(&artifact.location).await;
        let seeded = f.sim.seed_package(&SeedPackage {
            package_name: format!("Slack {}", version(&f)),
            file_name: format!("Slack-4.41.105-macOS-{}.pkg", version(&f)),
            bytes: Some(bytes),
            notes: "uploaded by hand, same bytes".into(),
        });
        let read_before = f.artifacts.bytes_read();
        publish(&f, Ring::Canary, "41").await.unwrap();
        assert_eq!(uploads(&f.sim), 0, "sha256 reported: {reports_sha256}");
        assert_eq!(f.sim.policies()[0].package_ids, [seeded]);
        let read = f.artifacts.bytes_read() - read_before;
        if reports_sha256 {
            assert_eq!(
                read, 0,
                "Jamf's SHA-256 compares with the evidence directly"
            );
        } else {
            assert_eq!(
                read, artifact.size_bytes,
                "SHA3-512 computed from one read of the artifact"
            );
        }
    }
}

#[tokio::test]
async fn bytes_that_are_not_the_approved_ones_never_complete_an_upload() {
    let f = fixture_with(SimConfig::instant(), JamfConfig::default(), 2 * MIB).await;
    let artifact = f.record.submission.artifact(Kind::Macos).unwrap();
    // The store now holds other bytes of the same size than the evidence pack approved.
    f.artifacts.put(
        &artifact.location,
        vec![0x5a; usize::try_from(artifact.size_bytes).unwrap()],
    );
    let e = publish(&f, Ring::Canary, "41").await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Permanent, "ARTIFACT_HASH_MISMATCH")
    );
    let packages = f.sim.packages();
    assert_eq!(packages.len(), 1);
    assert!(
        !packages[0].uploaded,
        "the upload was broken off before its end"
    );
    assert!(f.sim.policies().is_empty());
}

#[tokio::test]
async fn a_package_over_the_limit_is_refused_naming_the_limit() {
    let f = fixture_with(
        SimConfig::instant(),
        JamfConfig {
            max_package_bytes: 1000,
            ..JamfConfig::default()
        },
        2000,
    )
    .await;
    let e = publish(&f, Ring::Canary, "41").await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Permanent, "JAMF_PACKAGE_TOO_LARGE")
    );
    assert!(e.message.contains("up to 1000 bytes"), "{}", e.message);
    assert!(f.sim.requests().is_empty(), "refused before any call");
    assert_eq!(
        JamfConfig::default().max_package_bytes,
        Kind::Macos.package_size_limit().0,
        "Jamf's limit by default"
    );
}

/// An administrator's token (the simulator's API client, every privilege).
async fn admin_token(sim: &SimHandle) -> (reqwest::Client, String) {
    let c = SimConfig::default();
    let http = reqwest::Client::new();
    let token: serde_json::Value = http
        .post(format!("{}/api/v1/oauth/token", sim.base_url()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", c.client_id.as_str()),
            ("client_secret", SECRET),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (http, token["access_token"].as_str().unwrap().to_owned())
}

/// A package record created through the Jamf Pro API as a person or another tool would:
/// `extra` fields (hashes among them: Jamf takes them as written) merged into the required ones.
async fn admin_create_package(
    sim: &SimHandle,
    name: &str,
    file: &str,
    extra: serde_json::Value,
) -> String {
    let (http, token) = admin_token(sim).await;
    let mut body = serde_json::json!({
        "packageName": name, "fileName": file, "categoryId": "-1", "priority": 10,
        "fillUserTemplate": false, "rebootRequired": false, "osInstall": false,
        "suppressUpdates": false, "suppressFromDock": false, "suppressEula": false,
        "suppressRegistration": false
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let created: serde_json::Value = http
        .post(format!("{}/api/v1/packages", sim.base_url()))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    created["id"].as_str().unwrap().to_owned()
}

/// A file uploaded to a package through the Jamf Pro API, as a person or another tool would.
async fn admin_upload(sim: &SimHandle, id: &str, file: &str, bytes: &[u8]) -> u16 {
    let (http, token) = admin_token(sim).await;
    let part = reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(file.to_owned());
    http.post(format!("{}/api/v1/packages/{id}/upload", sim.base_url()))
        .bearer_auth(&token)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Hashes are fields anyone may write into a package record (`POST`/`PUT /api/v1/packages`
/// take `sha256`, `sha3512`, `hashType`, `hashValue`, `md5`; Jamf Pro API schema, the Terraform
/// provider and `JamfUploader` write them): a record claiming the approved SHA-256 is no proof
/// that Jamf holds those bytes. A server older than 11.25 never computes a `sha256` itself.
#[tokio::test]
async fn a_hash_written_into_a_packages_record_is_not_taken_for_jamfs() {
    let f = fixture_with(
        SimConfig {
            reports_sha256: false,
            ..SimConfig::instant()
        },
        JamfConfig::default(),
        0,
    )
    .await;
    let name = format!("Slack {}", version(&f));
    let file = format!("Slack-4.41.105-macOS-{}.pkg", version(&f));
    // Claims the approved bytes' SHA-256, holds another build (Jamf's SHA3-512 says so).
    let foreign = admin_create_package(
        &f.sim,
        &name,
        &file,
        serde_json::json!({ "sha256": sha256(&f), "notes": "uploaded by an admin" }),
    )
    .await;
    assert_eq!(
        admin_upload(&f.sim, &foreign, &file, b"another build entirely").await,
        201
    );
    // Replicated to both of the cluster's nodes.
    advance(&f, Duration::from_secs(61));
    publish(&f, Ring::Canary, "41").await.unwrap();
    let policy = &f.sim.policies()[0];
    assert_ne!(
        policy.package_ids,
        [foreign.parse::<u32>().unwrap()],
        "a record's own claim never deploys other bytes"
    );
    let own = f
        .sim
        .packages()
        .into_iter()
        .find(|p| p.id == policy.package_ids[0])
        .unwrap();
    assert_eq!(own.upload_sha256.as_deref(), Some(sha256(&f).as_str()));
    assert!(
        own.package_name
            .ends_with(&format!("({})", &sha256(&f)[..12]))
    );
}

#[tokio::test]
async fn a_record_claiming_the_approved_hash_without_a_file_is_never_deployed() {
    let f = fixture().await;
    let name = format!("Slack {}", version(&f));
    let file = format!("Slack-4.41.105-macOS-{}.pkg", version(&f));
    let claimed = admin_create_package(
        &f.sim,
        &name,
        &file,
        serde_json::json!({ "sha256": sha256(&f), "sha3512": "ab".repeat(64), "hashType": "SHA3_512", "hashValue": "ab".repeat(64) }),
    )
    .await;
    advance(&f, Duration::from_secs(61));
    publish(&f, Ring::Canary, "41").await.unwrap();
    let policy = &f.sim.policies()[0];
    assert_ne!(
        policy.package_ids,
        [claimed.parse::<u32>().unwrap()],
        "a package with no file is never in a policy"
    );
    assert_eq!(uploads(&f.sim), 1, "the version's own package got the file");
}

/// EUCORA uploaded the approved bytes to its package, and once processed Jamf reports other
/// ones (the file replaced meanwhile, a transfer gone wrong): the publish halts naming both
/// hashes, and neither uploads again nor makes a second package.
#[tokio::test]
async fn a_hash_mismatch_on_eucoras_own_package_after_processing_halts() {
    let f = fixture().await;
    f.sim.hold_processing();
    let e = publish(&f, Ring::Canary, "41").await.unwrap_err();
    assert!(e.is_resume_later(), "{e:?}");
    let own = f.sim.packages()[0].clone();
    advance(&f, Duration::from_secs(61));
    // Someone replaces the file while Jamf processes it.
    assert_eq!(
        admin_upload(
            &f.sim,
            &own.id.to_string(),
            &own.file_name,
            b"not the approved bytes"
        )
        .await,
        201
    );
    f.sim.finish_processing();
    let e = publish(&f, Ring::Canary, "41").await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Permanent, "JAMF_PACKAGE_HASH_MISMATCH"),
        "{e:?}"
    );
    assert!(
        e.message.contains(&format!("package {}", own.id)),
        "{}",
        e.message
    );
    assert!(e.message.contains(&sha256(&f)), "{}", e.message);
    assert_eq!(f.sim.packages().len(), 1, "no second package");
    assert_eq!(
        uploads(&f.sim),
        2,
        "EUCORA's one upload and the replacement"
    );
    assert!(!f.sim.policies()[0].enabled, "never enabled");
}

/// A same-named package someone else is uploading (no hash yet) cannot be told to hold the
/// approved bytes: the version gets its own package at once instead of waiting on another's.
#[tokio::test]
async fn a_same_named_package_still_processing_is_not_waited_on() {
    let f = fixture().await;
    f.sim.hold_processing();
    let name = format!("Slack {}", version(&f));
    let file = format!("Slack-4.41.105-macOS-{}.pkg", version(&f));
    let foreign = admin_create_package(&f.sim, &name, &file, serde_json::json!({})).await;
    assert_eq!(
        admin_upload(&f.sim, &foreign, &file, b"someone's build").await,
        201
    );
    advance(&f, Duration::from_secs(61));
    let e = publish(&f, Ring::Canary, "41").await.unwrap_err();
    assert!(e.is_resume_later(), "{e:?}");
    let policy = &f.sim.policies()[0];
    let own = f
        .sim
        .packages()
        .into_iter()
        .find(|p| p.id != foreign.parse::<u32>().unwrap())
        .expect("the version's own package");
    assert_eq!(policy.package_ids, [own.id]);
    assert_eq!(own.upload_sha256.as_deref(), Some(sha256(&f).as_str()));
    assert!(!policy.enabled);
    f.sim.finish_processing();
    publish(&f, Ring::Canary, "41").await.unwrap();
    assert_eq!(f.sim.policies()[0].package_ids, [own.id]);
    assert!(f.sim.policies()[0].enabled);
}

// ---- the policy goes live only on a processed package ----

#[tokio::test]
async fn the_policy_is_disabled_while_jamf_processes_the_package_and_enabled_after() {
    let f = fixture().await;
    f.sim.hold_processing();
    let e = publish(&f, Ring::Canary, "41").await.unwrap_err();
    assert!(e.is_resume_later(), "{e:?}");
    assert_eq!(
        e.retry_after,
        Some(JamfConfig::default().processing_recheck)
    );
    let policy = f.sim.policies()[0].clone();
    assert!(!policy.enabled, "disabled while processing");
    assert_eq!(policy.package_ids, [f.sim.packages()[0].id]);
    assert_eq!(
        (policy.retry_event.as_str(), policy.retry_attempts),
        ("check-in", 3)
    );

    // Macs check in meanwhile: a disabled policy runs nowhere.
    advance(&f, Duration::from_secs(3600));
    assert!(f.sim.policy_logs(1).is_empty());

    // The next invocation checks again: nothing created or sent twice, nothing changed.
    let e = publish(&f, Ring::Canary, "41").await.unwrap_err();
    assert!(e.is_resume_later());
    assert_eq!((f.sim.packages().len(), f.sim.policies().len()), (1, 1));
    assert_eq!(f.sim.policies()[0].revision, policy.revision);
    assert_eq!(uploads(&f.sim), 1);

    f.sim.finish_processing();
    publish(&f, Ring::Canary, "41").await.unwrap();
    let live = &f.sim.policies()[0];
    assert!(live.enabled, "enabled once the hash shows and matches");
    assert_eq!(live.revision, policy.revision + 1);
    assert_eq!(uploads(&f.sim), 1);
    advance(&f, Duration::from_secs(3600));
    assert_eq!(f.sim.policy_logs(1)[0].status, "Completed");
}

/// A package Jamf never processes is not waited on for ever: the rechecks space out as the
/// wait grows (so the queue's receive limit is never what ends it), and past
/// `processing_timeout` since EUCORA created the package the publish halts naming it, its policy
/// still disabled.
#[tokio::test]
async fn a_package_jamf_never_processes_halts_naming_it_after_the_processing_timeout() {
    let f = fixture().await;
    f.sim.hold_processing();
    let cfg = JamfConfig::default();
    let at = |after: Duration| {
        f.record
            .submitted_at
            .plus(time::Duration::try_from(after).unwrap())
    };
    let e = publish(&f, Ring::Canary, "41").await.unwrap_err();
    assert!(e.is_resume_later(), "{e:?}");
    assert_eq!(e.retry_after, Some(cfg.processing_recheck));

    let later = job_at(&f, at(Duration::from_secs(40 * 60)));
    let e = f.client.publish(&mut cx(&f), &later).await.unwrap_err();
    assert!(e.is_resume_later(), "{e:?}");
    assert_eq!(
        e.retry_after,
        Some(Duration::from_secs(10 * 60)),
        "a quarter of the wait so far"
    );

    let past = job_at(&f, at(cfg.processing_timeout));
    let e = f.client.publish(&mut cx(&f), &past).await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Permanent, "JAMF_PACKAGE_NOT_PROCESSED"),
        "{e:?}"
    );
    let package = &f.sim.packages()[0];
    assert!(
        e.message.contains(&format!("package {}", package.id)),
        "{}",
        e.message
    );
    assert!(e.message.contains(&package.file_name), "{}", e.message);
    assert!(!f.sim.policies()[0].enabled);
    assert_eq!(uploads(&f.sim), 1);
}

#[tokio::test]
async fn a_mac_whose_install_fails_retries_at_its_next_check_ins() {
    let f = fixture().await;
    publish(&f, Ring::Canary, "41").await.unwrap();
    advance(&f, Duration::from_secs(4 * 3600));
    let statuses: Vec<String> = f.sim.policy_logs(2).into_iter().map(|l| l.status).collect();
    assert_eq!(statuses, ["Failed"; 4], "the first run and 3 retries");
    assert_eq!(
        f.sim.policy_logs(1).len(),
        1,
        "a Mac that installed runs it once"
    );
}

// ---- errors ----

#[tokio::test]
async fn a_classic_401_for_a_missing_privilege_halts_naming_it_after_exactly_one_refresh() {
    let f = fixture().await;
    f.sim.set_client_privileges(Some(&[
        "Read Packages",
        "Create Packages",
        "Update Packages",
        "Read Policies",
        "Update Policies",
        "Read Categories",
        "Create Categories",
    ]));
    let mut c = cx(&f);
    let e = f
        .client
        .publish(&mut c, &job(&f, Ring::Canary, "41"))
        .await
        .unwrap_err();
    assert_eq!(e.class, ErrorClass::PolicyViolation);
    assert_eq!(e.code, "MISSING_PRIVILEGE");
    assert!(e.message.contains("\"Create Policies\""), "{}", e.message);
    assert!(
        e.message
            .contains("The request requires user authentication"),
        "the page's own words: {}",
        e.message
    );
    assert!(c.auth_refreshed);
    assert_eq!(token_requests(&f.sim), 2, "the first token and one refresh");
    assert_eq!(count(&f.sim, "POST", "/JSSResource/policies/id/0"), 2);
}

#[tokio::test]
async fn the_category_is_created_on_a_server_without_it() {
    let f = fixture().await;
    f.sim.remove_category("control-plane-auto");
    let mut c = cx(&f);
    f.client
        .publish(&mut c, &job(&f, Ring::Canary, "41"))
        .await
        .unwrap();
    assert_eq!(
        f.sim.policies()[0].category.as_deref(),
        Some("control-plane-auto")
    );
    let calls: Vec<(String, Option<u16>)> = c
        .calls
        .iter()
        .filter(|r| r.operation.contains("policy") || r.operation.contains("category"))
        .map(|r| (r.operation.clone(), r.status))
        .collect();
    assert_eq!(
        calls,
        [
            ("find_policy".to_owned(), Some(404)),
            ("create_policy".to_owned(), Some(409)),
            ("create_category".to_owned(), Some(201)),
            ("create_policy".to_owned(), Some(201)),
        ]
    );
}

#[tokio::test]
async fn a_classic_error_carries_the_message_of_the_page() {
    let f = fixture().await;
    let e = publish(&f, Ring::Canary, "999").await.unwrap_err();
    assert_eq!((e.class, e.status), (ErrorClass::Permanent, Some(409)));
    assert_eq!(e.message, "Error: Problem with computer group in scope");
}

// ---- scope ----

/// A PUT of a policy document as an administrator would send it.
async fn admin_put(sim: &SimHandle, path: &str, xml: &str) -> u16 {
    let c = SimConfig::default();
    let http = reqwest::Client::new();
    let token: serde_json::Value = http
        .post(format!("{}/api/v1/oauth/token", sim.base_url()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", c.client_id.as_str()),
            ("client_secret", SECRET),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    http.put(format!("{}{path}", sim.base_url()))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .header("content-type", "application/xml")
        .body(xml.to_owned())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn exclusions_survive_a_ring_promotion_and_a_rollback() {
    let f = fixture().await;
    f.sim.add_computer_group(
        43,
        "Frozen Macs",
        false,
        vec![SimComputer::new(
            4,
            ComputerOutcome::Completed,
            Duration::from_secs(600),
        )],
    );
    publish(&f, Ring::Canary, "41").await.unwrap();
    let id = f.sim.policies()[0].id;
    // An administrator excludes the frozen Macs (they are in ring 2's group too).
    let exclude = "<policy><scope><computer_groups><computer_group><id>41</id></computer_group>\
        </computer_groups><exclusions><computer_groups><computer_group><id>43</id></computer_group>\
        </computer_groups></exclusions></scope></policy>";
    assert_eq!(
        admin_put(&f.sim, &format!("/JSSResource/policies/id/{id}"), exclude).await,
        201
    );
    publish(&f, Ring::Pilot, "42").await.unwrap();
    let p = &f.sim.policies()[0];
    assert_eq!(p.scope_group_ids, [41, 42]);
    assert_eq!(
        p.excluded_group_ids,
        [43],
        "still an exclusion, never a target"
    );
    advance(&f, Duration::from_secs(3600));
    assert!(
        f.sim.policy_logs(4).is_empty(),
        "the excluded Mac ran nothing"
    );

    // Re-pinning ring 2 takes its group out of the targets and keeps the exclusion.
    f.client
        .rollback(&mut cx(&f), &job(&f, Ring::Pilot, "42"))
        .await
        .unwrap();
    let p = &f.sim.policies()[0];
    assert_eq!(p.scope_group_ids, [41]);
    assert_eq!(p.excluded_group_ids, [43]);
}

// ---- tokens ----

#[tokio::test]
async fn a_token_is_reused_for_most_of_its_lifetime_short_or_long() {
    for lifetime in [120, 300, 599, 1800] {
        let f = fixture_with(
            SimConfig {
                token_lifetime: Duration::from_secs(lifetime),
                ..SimConfig::instant()
            },
            JamfConfig::default(),
            0,
        )
        .await;
        publish(&f, Ring::Canary, "41").await.unwrap();
        publish(&f, Ring::Pilot, "42").await.unwrap();
        f.client
            .query_status(&mut cx(&f), &job(&f, Ring::Pilot, "42"))
            .await
            .unwrap();
        assert_eq!(token_requests(&f.sim), 1, "a {lifetime} s token");
    }
}

// ---- resuming ----

#[tokio::test]
async fn an_upload_that_broke_off_is_sent_again_to_the_same_package() {
    let f = fixture_with(SimConfig::instant(), JamfConfig::default(), 3 * MIB).await;
    f.sim.faults().fail_next(
        RouteMatch::MethodPath("POST".into(), "/api/v1/packages/".into()),
        Fault::DropAfter(1024 * 1024),
        1,
    );
    let e = publish(&f, Ring::Canary, "41").await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Transient);
    let packages = f.sim.packages();
    assert_eq!(packages.len(), 1);
    assert!(!packages[0].uploaded, "Jamf keeps nothing of it");

    publish(&f, Ring::Canary, "41").await.unwrap();
    let again = f.sim.packages();
    assert_eq!(again.len(), 1, "the package is not created again");
    assert_eq!(again[0].id, packages[0].id);
    assert_eq!(again[0].upload_sha256.as_deref(), Some(sha256(&f).as_str()));
    assert_eq!(uploads(&f.sim), 2);
}

#[tokio::test]
async fn an_upload_refused_before_its_body_is_read_is_transient_and_sent_again() {
    let f = fixture_with(SimConfig::instant(), JamfConfig::default(), 3 * MIB).await;
    for fault in [
        Fault::ServiceUnavailable,
        Fault::TooManyRequests {
            retry_after: Some(2.0),
        },
    ] {
        f.sim.faults().fail_next(
            RouteMatch::MethodPath("POST".into(), "/api/v1/packages/".into()),
            fault,
            1,
        );
        let e = publish(&f, Ring::Canary, "41").await.unwrap_err();
        assert_eq!(e.class, ErrorClass::Transient, "{e:?}");
        assert!(!f.sim.packages()[0].uploaded);
    }
    publish(&f, Ring::Canary, "41").await.unwrap();
    assert_eq!(f.sim.packages().len(), 1);
    assert_eq!(uploads(&f.sim), 3);
}

#[tokio::test]
async fn an_upload_whose_answer_was_lost_is_not_sent_again() {
    let f = fixture_with(SimConfig::instant(), JamfConfig::default(), 3 * MIB).await;
    f.sim.faults().fail_next(
        RouteMatch::MethodPath("POST".into(), "/api/v1/packages/".into()),
        Fault::LostAnswer,
        1,
    );
    let e = publish(&f, Ring::Canary, "41").await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Transient);
    publish(&f, Ring::Canary, "41").await.unwrap();
    assert_eq!(f.sim.packages().len(), 1);
    assert_eq!(
        uploads(&f.sim),
        1,
        "the package holds the bytes: no second upload"
    );
    assert_eq!(f.sim.policies().len(), 1);
}

#[tokio::test]
async fn a_publish_out_of_budget_hands_over_before_uploading_and_resumes() {
    let f = fixture_with(SimConfig::instant(), JamfConfig::default(), MIB).await;
    let mut spent = cx(&f).with_budget(Duration::ZERO);
    let e = f
        .client
        .publish(&mut spent, &job(&f, Ring::Canary, "41"))
        .await
        .unwrap_err();
    assert!(e.is_resume_later(), "{e:?}");
    assert_eq!(uploads(&f.sim), 0);
    publish(&f, Ring::Canary, "41").await.unwrap();
    assert_eq!((f.sim.packages().len(), uploads(&f.sim)), (1, 1));
    assert!(f.sim.policies()[0].enabled);
}

/// The artifacts of `inner`, an upload's chunks after its first withheld until `open` says so: an
/// upload cannot finish its body before the test lets it. (The whole-file reads that compare
/// digests, in larger chunks, are not held.)
struct Withheld {
    inner: MemoryArtifacts,
    chunk: u64,
    open: Arc<tokio::sync::watch::Sender<bool>>,
}

impl eucora_connector::artifact::ArtifactSource for Withheld {
    async fn size(&self, location: &str) -> Result<u64, CallError> {
        self.inner.size(location).await
    }

    async fn read_range(
        &self,
        location: &str,
        start: u64,
        len: u64,
    ) -> Result<bytes::Bytes, CallError> {
        if start > 0 && len == self.chunk {
            let mut open = self.open.subscribe();
            let _ = open.wait_for(|open| *open).await;
        }
        self.inner.read_range(location, start, len).await
    }
}

#[tokio::test]
async fn an_upload_past_the_work_budget_stops_and_the_next_invocation_sends_it_again() {
    let f = fixture_with(SimConfig::instant(), JamfConfig::default(), 3 * MIB).await;
    // The upload's body cannot end within the half-second budget, however fast the machine:
    // its second chunk is withheld until this invocation has given up. Wherever the budget runs
    // out (before or during the upload) the outcome is the same.
    let open = Arc::new(tokio::sync::watch::Sender::new(false));
    let chunk = MIB as u64;
    let client = JamfClient::new(
        &JamfConfig {
            upload_chunk_bytes: chunk,
            ..JamfConfig::default()
        },
        creds(&f.sim),
        Withheld {
            inner: f.artifacts.clone(),
            chunk,
            open: Arc::clone(&open),
        },
    )
    .unwrap();
    let mut budget = cx(&f).with_budget(Duration::from_millis(500));
    let e = client
        .publish(&mut budget, &job(&f, Ring::Canary, "41"))
        .await
        .unwrap_err();
    assert!(e.is_resume_later(), "{e:?}");
    // Whatever the invocation left at the server has ended before the server is looked at.
    wait_until_nothing_in_flight(&f.sim).await;
    assert!(
        f.sim.packages().iter().all(|p| !p.uploaded),
        "Jamf keeps nothing of it"
    );
    assert!(
        budget.calls.iter().all(|c| c.error_class.is_none()),
        "no failure for the circuit breaker to count"
    );
    open.send_replace(true);
    client
        .publish(&mut cx(&f), &job(&f, Ring::Canary, "41"))
        .await
        .unwrap();
    assert_eq!(f.sim.packages().len(), 1);
    assert!(f.sim.packages()[0].uploaded);
}

/// Waits until the simulator has no request in flight (a minute at most, against a hang only).
async fn wait_until_nothing_in_flight(sim: &SimHandle) {
    let waited = tokio::time::timeout(Duration::from_secs(60), async {
        while sim.in_flight() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "{} requests still in flight",
        sim.in_flight()
    );
}

/// The artifacts of `inner`, raising `stop` (the invocation told to stop, as when its budget is
/// spent) as the upload's last chunk is read: the body is then all handed to the request.
struct StopAtLastChunk {
    inner: MemoryArtifacts,
    chunk: u64,
    last: u64,
    stop: StopSignal,
}

impl eucora_connector::artifact::ArtifactSource for StopAtLastChunk {
    async fn size(&self, location: &str) -> Result<u64, CallError> {
        self.inner.size(location).await
    }

    async fn read_range(
        &self,
        location: &str,
        start: u64,
        len: u64,
    ) -> Result<bytes::Bytes, CallError> {
        if start == self.last && len == self.chunk {
            self.stop.raise();
        }
        self.inner.read_range(location, start, len).await
    }
}

/// Once the whole body is handed to the request the server may complete the upload whatever the
/// client does, so the client waits for its answer past the work budget instead of giving it up
/// and saying Jamf keeps nothing of it.
#[tokio::test]
async fn an_upload_whose_body_is_all_sent_is_answered_past_the_work_budget() {
    let f = fixture_with(SimConfig::instant(), JamfConfig::default(), 2 * MIB).await;
    let chunk = MIB as u64;
    let stop = StopSignal::default();
    let client = JamfClient::new(
        &JamfConfig {
            upload_chunk_bytes: chunk,
            ..JamfConfig::default()
        },
        creds(&f.sim),
        StopAtLastChunk {
            inner: f.artifacts.clone(),
            chunk,
            last: chunk,
            stop: stop.clone(),
        },
    )
    .unwrap();
    // The server reads the body only after a while, long past the client's next look at its
    // budget: a client giving the request up then would leave the upload unfinished.
    f.sim.faults().fail_next(
        RouteMatch::MethodPath("POST".into(), "/api/v1/packages/".into()),
        Fault::Slow(Duration::from_secs(3)),
        1,
    );
    let mut c = cx(&f).with_stop_signal(stop);
    let outcome = client.publish(&mut c, &job(&f, Ring::Canary, "41")).await;
    if let Err(e) = &outcome {
        assert!(
            e.is_resume_later(),
            "stopped at a safe point after the upload: {e:?}"
        );
    }
    wait_until_nothing_in_flight(&f.sim).await;
    assert_eq!(uploads(&f.sim), 1);
    assert!(f.sim.packages()[0].uploaded, "the upload was answered");
    assert!(
        c.calls
            .iter()
            .any(|call| call.operation == "upload_package" && call.status.is_some_and(|s| s < 300)),
        "{:?}",
        c.calls
    );
    // The next invocation finds the file at Jamf and does not send it again.
    client
        .publish(&mut cx(&f), &job(&f, Ring::Canary, "41"))
        .await
        .unwrap();
    assert_eq!(uploads(&f.sim), 1);
    assert!(f.sim.policies()[0].enabled);
}

/// An upload that never gets through (each invocation's work budget spent before its end, or
/// transient failures every time) is not sent again for ever: past `processing_timeout` since
/// EUCORA created the package, the publish halts naming it.
#[tokio::test]
async fn an_upload_that_never_gets_through_halts_after_the_processing_timeout() {
    let f = fixture_with(SimConfig::instant(), JamfConfig::default(), MIB).await;
    let mut spent = cx(&f).with_budget(Duration::ZERO);
    let e = f
        .client
        .publish(&mut spent, &job(&f, Ring::Canary, "41"))
        .await
        .unwrap_err();
    assert!(e.is_resume_later(), "{e:?}");
    let past = job_at(
        &f,
        f.record
            .submitted_at
            .plus(time::Duration::try_from(JamfConfig::default().processing_timeout).unwrap()),
    );
    let mut spent = cx(&f).with_budget(Duration::ZERO);
    let e = f.client.publish(&mut spent, &past).await.unwrap_err();
    assert_eq!(
        (e.class, e.code.as_str()),
        (ErrorClass::Permanent, "JAMF_PACKAGE_NOT_UPLOADED"),
        "{e:?}"
    );
    let package = &f.sim.packages()[0];
    assert!(
        e.message.contains(&format!("package {}", package.id)),
        "{}",
        e.message
    );
    assert_eq!(uploads(&f.sim), 0);
    assert!(f.sim.policies().is_empty());
}

#[tokio::test]
async fn the_other_node_not_showing_a_package_yet_is_waited_for() {
    let f = fixture().await;
    publish(&f, Ring::Canary, "41").await.unwrap();
    // A second container, its requests served by whichever node answers first.
    let other =
        JamfClient::new(&JamfConfig::default(), creds(&f.sim), f.artifacts.clone()).unwrap();
    // Pinned to the node that created them, it finds them; pinned to the other, it waits a
    // minute for the cluster instead of creating anything again.
    let mut done = false;
    for _ in 0..2 {
        match other
            .publish(&mut cx(&f), &job(&f, Ring::Canary, "41"))
            .await
        {
            Ok(_) => {
                done = true;
                break;
            }
            Err(e) => {
                assert!(e.is_resume_later(), "{e:?}");
                advance(&f, Duration::from_secs(60));
            }
        }
    }
    assert!(done);
    assert_eq!(f.sim.packages().len(), 1, "never a second package");
    assert_eq!(f.sim.policies().len(), 1, "never a second policy");
}

impl Fixture {
    /// The artifact's bytes, read back from the store.
    async fn artifacts_bytes(&self, location: &str) -> Vec<u8> {
        use eucora_connector::artifact::ArtifactSource as _;
        let size = self.artifacts.size(location).await.unwrap();
        let bytes = self
            .artifacts
            .read_range(location, 0, size)
            .await
            .unwrap()
            .to_vec();
        assert_eq!(
            eucora_connector::artifact::hex_lower(&sha2::Sha256::digest(&bytes)),
            sha256(self)
        );
        bytes
    }
}
