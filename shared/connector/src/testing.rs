//! Test fixtures for the platform adapters' contract tests and the system tests: a sample
//! deployment from `events/deployments/`, submitted, scored and dispatched into its first ring
//! over the in-memory adapters, with package bytes whose SHA-256 matches its evidence pack.

use eucora_domain::cab::Role;
use eucora_domain::{ActorId, DeploymentId};
use eucora_service::Actor;
use eucora_service::memory::Memory;
use eucora_service::ports::DeploymentStore;
use eucora_service::record::DeploymentRecord;
use eucora_service::usecases::Services;
use eucora_service::usecases::score::score;
use eucora_service::usecases::submit::{SubmitInput, submit};
use sha2::Digest;

use crate::artifact::MemoryArtifacts;

/// A sample deployment, dispatching into its first ring.
///
/// `correlation_id` replaces the sample's (so that many copies can coexist); each artifact's
/// bytes are made up, stored in `artifacts` at the artifact's location, and their SHA-256 is
/// written into the evidence pack before it is submitted.
///
/// # Panics
/// If the sample is missing or the use cases refuse it (a broken fixture).
/// `package` wraps the made-up payload the way the platform expects (a `.intunewin` for Intune).
pub async fn dispatched(
    svc: &Services<Memory, Memory>,
    artifacts: &MemoryArtifacts,
    sample: &str,
    id: &str,
    correlation_id: &str,
    package: impl Fn(eucora_domain::evidence::Platform, &[u8]) -> Vec<u8>,
) -> DeploymentRecord {
    let path = format!(
        "{}/../../events/deployments/{sample}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("sample exists"))
            .expect("sample is JSON");
    v["correlation_id"] = correlation_id.into();
    // One version per deployment, as a real catalogue has: packages are per app version.
    let version = format!(
        "{}-{correlation_id}",
        v["app"]["version"].as_str().unwrap_or("1")
    );
    v["app"]["version"] = version.into();
    for a in v["evidence"]["artifacts"]
        .as_array_mut()
        .expect("artifacts")
    {
        let location = format!(
            "s3://eucora-test/{correlation_id}/{}",
            a["file_name"].as_str().unwrap_or("pkg")
        );
        let platform: eucora_domain::evidence::Platform = a["platform"]
            .as_str()
            .and_then(|p| p.parse().ok())
            .expect("platform");
        let payload: Vec<u8> = format!("{platform} package for {correlation_id}\n")
            .repeat(64)
            .into_bytes();
        let bytes = package(platform, &payload);
        a["sha256"] = crate::artifact::hex_lower(&sha2::Sha256::digest(&bytes)).into();
        a["size_bytes"] = bytes.len().into();
        a["location"] = location.clone().into();
        artifacts.put(&location, bytes);
    }
    let packager = Actor::new(
        ActorId::parse("packager-alice").expect("id"),
        [Role::Packaging],
    );
    let deployment_id = DeploymentId::parse(id).expect("id");
    let now = eucora_domain::Timestamp::parse("2026-11-23T09:00:00Z").expect("time");
    submit(
        svc,
        &packager,
        SubmitInput {
            body: &v.to_string(),
            idempotency_key: None,
            new_id: deployment_id.clone(),
            now,
        },
    )
    .await
    .expect("the sample is a valid submission");
    score(svc, &deployment_id, now).await.expect("scored");
    svc.store
        .get(&deployment_id)
        .await
        .expect("stored")
        .expect("exists")
}

/// A fresh in-memory store and queue.
pub fn services() -> Services<Memory, Memory> {
    let m = Memory::new();
    Services {
        store: m.clone(),
        queue: m,
        policy: eucora_domain::policy::Policy::bundled(),
    }
}
