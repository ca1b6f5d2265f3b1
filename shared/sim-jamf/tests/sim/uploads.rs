//! Package files: uploads read as they arrive and hashed, processed later on the simulator's
//! clock (or when a test says), uploads that break off, packages seeded as someone else made
//! them, and Macs that check in before the file is processed, with and without retries.

use std::time::Duration;

use eucora_sim_jamf::{ComputerOutcome, Fault, RouteMatch, SeedPackage, SimComputer, SimConfig};
use md5::Digest as _;
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use sha2::Digest as _;

use crate::helpers::{Sim, policy_xml};

const MINUTE: Duration = Duration::from_secs(60);

fn pseudo_random(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

async fn upload(sim: &Sim, id: &str, bytes: Vec<u8>) -> reqwest::Result<reqwest::Response> {
    let part = Part::bytes(bytes).file_name("Firefox-128.0.pkg");
    sim.http
        .post(sim.url(&format!("/api/v1/packages/{id}/upload")))
        .bearer_auth(&sim.token)
        .multipart(Form::new().part("file", part))
        .send()
        .await
}

async fn package_json(sim: &Sim, id: &str) -> Value {
    sim.get(&format!("/api/v1/packages/{id}"))
        .await
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_upload_is_hashed_as_it_arrives_and_its_hashes_show_once_processed() {
    let sim = Sim::with(SimConfig {
        package_processing: 2 * MINUTE,
        // Paced, as a real upload is (no assertion on how long it took).
        upload_bytes_per_second: Some(256 * 1024 * 1024),
        ..SimConfig::instant()
    })
    .await;
    let id = sim.create_package("Firefox-128.0").await;
    let bytes = pseudo_random(3 * 1024 * 1024 + 17);
    let response = upload(&sim, &id, bytes.clone()).await.unwrap();
    assert_eq!(response.status(), 201);

    let processing = package_json(&sim, &id).await;
    assert_eq!(processing["size"], "4MB", "as Jamf writes it");
    assert_eq!(processing["cloudTransferStatus"], "IN_PROGRESS");
    assert_eq!(processing["hashType"], Value::Null);
    assert_eq!(processing["hashValue"], Value::Null);
    let seen = &sim.handle.packages()[0];
    assert!(seen.uploaded && !seen.processed);
    assert_eq!(seen.upload_size, Some(bytes.len() as u64));
    assert_eq!(
        sim.handle.package_file(seen.id),
        None,
        "over 1 MiB: hashed, not kept"
    );

    sim.handle.advance(Duration::from_secs(119));
    assert_eq!(package_json(&sim, &id).await["hashValue"], Value::Null);
    sim.handle.advance(Duration::from_secs(1));
    let ready = package_json(&sim, &id).await;
    assert_eq!(ready["cloudTransferStatus"], "READY");
    assert_eq!(ready["hashType"], "SHA3_512");
    let sha3 = hex::encode(sha3::Sha3_512::digest(&bytes));
    assert_eq!(ready["hashValue"], sha3.as_str());
    assert_eq!(ready["sha3512"], sha3.as_str());
    assert_eq!(
        ready["sha256"],
        hex::encode(sha2::Sha256::digest(&bytes)).as_str()
    );
    assert_eq!(ready["md5"], hex::encode(md5::Md5::digest(&bytes)).as_str());
    assert!(sim.handle.packages()[0].processed);
    let recorded = sim
        .handle
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/upload"))
        .unwrap();
    assert!(
        recorded.body.contains("bytes of multipart/form-data"),
        "the recorder keeps a note, not the file: {}",
        recorded.body
    );
}

#[tokio::test]
async fn an_older_server_reports_only_hash_type_and_value() {
    let sim = Sim::with(SimConfig {
        reports_sha256: false,
        ..SimConfig::instant()
    })
    .await;
    let id = sim.create_package("Firefox-128.0").await;
    let bytes = b"xar!small".to_vec();
    upload(&sim, &id, bytes.clone()).await.unwrap();
    let ready = package_json(&sim, &id).await;
    assert_eq!(ready["hashType"], "SHA3_512");
    assert_eq!(ready["sha256"], Value::Null);
    assert_eq!(ready["sha3512"], Value::Null);
    let kept = sim.handle.packages()[0].id;
    assert_eq!(sim.handle.package_file(kept), Some(bytes), "small: kept");
}

#[tokio::test]
async fn processing_can_be_held_and_finished_whatever_the_clock() {
    let sim = Sim::start().await;
    sim.handle.hold_processing();
    let id = sim.create_package("Firefox-128.0").await;
    upload(&sim, &id, b"xar!".to_vec()).await.unwrap();
    sim.handle.advance(24 * 60 * MINUTE);
    assert_eq!(package_json(&sim, &id).await["hashValue"], Value::Null);
    sim.handle.finish_processing();
    assert_eq!(package_json(&sim, &id).await["hashType"], "SHA3_512");
}

#[tokio::test]
async fn an_upload_that_breaks_off_has_no_effect_and_a_lost_answer_does() {
    let sim = Sim::start().await;
    let id = sim.create_package("Firefox-128.0").await;
    let uploads = || RouteMatch::MethodPath("POST".into(), "/api/v1/packages/".into());
    sim.handle
        .faults()
        .fail_next(uploads(), Fault::DropAfter(64 * 1024), 1);
    assert!(upload(&sim, &id, pseudo_random(512 * 1024)).await.is_err());
    assert!(!sim.handle.packages()[0].uploaded);
    let broken = sim.handle.requests().pop().unwrap();
    assert_eq!(broken.status, 0, "no answer");

    sim.handle
        .faults()
        .fail_next(uploads(), Fault::LostAnswer, 1);
    assert!(upload(&sim, &id, b"xar!".to_vec()).await.is_err());
    assert!(
        sim.handle.packages()[0].uploaded,
        "the upload took effect, only the answer was lost"
    );

    sim.handle
        .faults()
        .fail_next(uploads(), Fault::ServiceUnavailable, 1);
    let refused = upload(&sim, &id, b"xar!".to_vec()).await;
    // The server may answer before reading the body; the client sees the 503 or a broken pipe.
    if let Ok(response) = refused {
        assert_eq!(response.status(), 503);
    }
}

#[tokio::test]
async fn uploads_need_the_privilege_and_a_file_part() {
    let sim = Sim::start().await;
    let id = sim.create_package("Firefox-128.0").await;
    sim.handle
        .set_client_privileges(Some(&["Read Packages", "Create Packages"]));
    let response = upload(&sim, &id, b"xar!".to_vec()).await.unwrap();
    assert_eq!(response.status(), 403, "no Update Packages");
    sim.handle.set_client_privileges(None);
    let no_file = Form::new().part("other", Part::bytes(b"x".to_vec()).file_name("x.pkg"));
    let response = sim
        .http
        .post(sim.url(&format!("/api/v1/packages/{id}/upload")))
        .bearer_auth(&sim.token)
        .multipart(no_file)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(!sim.handle.packages()[0].uploaded);
}

#[tokio::test]
async fn a_seeded_package_is_found_by_name_and_by_file_name_with_its_hashes() {
    let sim = Sim::start().await;
    let bytes = b"someone else's build".to_vec();
    let id = sim.handle.seed_package(&SeedPackage {
        package_name: "Firefox 128.0".into(),
        file_name: "Firefox-128.0.pkg".into(),
        bytes: Some(bytes.clone()),
        notes: "uploaded by an admin".into(),
    });
    let found: Value = sim
        .get("/api/v1/packages?filter=packageName%3D%3D%22Other%22%2CfileName%3D%3D%22Firefox-128.0.pkg%22")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(found["totalCount"], 1);
    assert_eq!(found["results"][0]["id"], id.to_string());
    assert_eq!(
        found["results"][0]["hashValue"],
        hex::encode(sha3::Sha3_512::digest(&bytes)).as_str()
    );
    // A record without a file.
    sim.handle.seed_package(&SeedPackage {
        package_name: "Empty".into(),
        file_name: "Empty.pkg".into(),
        bytes: None,
        notes: String::new(),
    });
    assert!(!sim.handle.packages()[1].uploaded);
}

async fn retry_fixture(retry: bool) -> Sim {
    let sim = Sim::start().await;
    sim.handle.add_computer_group(
        10,
        "Ring 1",
        true,
        vec![SimComputer::new(
            1,
            ComputerOutcome::Completed,
            Duration::from_secs(5 * 60),
        )],
    );
    sim.handle.hold_processing();
    let package = sim.create_uploaded_package("Firefox-128.0").await;
    let mut xml = policy_xml("Firefox", 10, &package, "");
    if !retry {
        xml = xml
            .replace("check-in</retry_event>", "none</retry_event>")
            .replace(">3</retry_attempts>", ">-1</retry_attempts>");
    }
    sim.create_policy(&xml).await;
    sim
}

#[tokio::test]
async fn a_mac_checking_in_while_the_package_is_processing_fails_once_then_retries() {
    let sim = retry_fixture(true).await;
    sim.handle.advance(10 * MINUTE);
    let logs = sim.handle.policy_logs(1);
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].status, "Failed", "nothing to download yet");
    sim.handle.finish_processing();
    sim.handle.advance(15 * MINUTE);
    let logs: Vec<String> = sim
        .handle
        .policy_logs(1)
        .into_iter()
        .map(|l| l.status)
        .collect();
    assert_eq!(
        logs,
        ["Failed", "Completed"],
        "retried at the next check-in"
    );
    sim.handle.advance(24 * 60 * MINUTE);
    assert_eq!(sim.handle.policy_logs(1).len(), 2, "and never again");
}

#[tokio::test]
async fn without_retry_event_a_mac_that_failed_never_tries_again() {
    let sim = retry_fixture(false).await;
    sim.handle.advance(10 * MINUTE);
    sim.handle.finish_processing();
    sim.handle.advance(24 * 60 * MINUTE);
    let logs: Vec<String> = sim
        .handle
        .policy_logs(1)
        .into_iter()
        .map(|l| l.status)
        .collect();
    assert_eq!(logs, ["Failed"]);
}

#[tokio::test]
async fn excluded_macs_never_run_the_policy() {
    let sim = Sim::start().await;
    let mac = |id| SimComputer::new(id, ComputerOutcome::Completed, MINUTE);
    sim.handle
        .add_computer_group(10, "Ring 1", true, vec![mac(1), mac(2)]);
    sim.handle
        .add_computer_group(11, "Frozen", false, vec![mac(2)]);
    let package = sim.create_uploaded_package("Firefox-128.0").await;
    let xml = policy_xml("Firefox", 10, &package, "").replace(
        "</computer_groups>\n  </scope>",
        "</computer_groups>\n<exclusions><computer_groups><computer_group><id>11</id></computer_group></computer_groups></exclusions>\n  </scope>",
    );
    let id = sim.create_policy(&xml).await;
    sim.handle.advance(60 * MINUTE);
    assert_eq!(sim.handle.policy_logs(1).len(), 1);
    assert!(sim.handle.policy_logs(2).is_empty(), "excluded");
    let policy = &sim.handle.policies()[0];
    assert_eq!(
        (policy.id, policy.excluded_group_ids.clone()),
        (id, vec![11])
    );
}
