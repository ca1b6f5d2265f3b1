//! Issue 13, point 8 over the in-memory adapters: names that cannot be squatted. An
//! `Idempotency-Key` is the caller's own; a correlation id names one deployment for as long as it
//! is kept, only its submitter gets the first answer back, and others learn which deployment holds
//! it only if they may read deployments.

use eucora_domain::cab::Role;
use eucora_domain::{ActorId, DeploymentId, Timestamp};
use eucora_service::Actor;
use eucora_service::memory::Memory;
use eucora_service::ports::DeploymentStore;
use eucora_service::usecases::Services;
use eucora_service::usecases::submit::{SubmitError, SubmitInput, Submitted, submit};
use time::Duration;

fn body(correlation_id: &str, passed: u64) -> String {
    let text = std::fs::read_to_string(format!(
        "{}/../../events/deployments/low-risk.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["correlation_id"] = correlation_id.into();
    v["evidence"]["tests"]["passed"] = passed.into();
    v.to_string()
}

fn svc() -> Services<Memory, Memory> {
    let m = Memory::new();
    Services {
        store: m.clone(),
        queue: m,
        policy: eucora_domain::policy::Policy::bundled(),
    }
}

fn packager(id: &str) -> Actor {
    Actor::new(ActorId::parse(id).unwrap(), [Role::Packaging])
}

fn t(h: i64) -> Timestamp {
    Timestamp::parse("2026-11-23T09:00:00Z")
        .unwrap()
        .plus(Duration::hours(h))
}

async fn send(
    s: &Services<Memory, Memory>,
    who: &Actor,
    body: &str,
    key: Option<&str>,
    new_id: &str,
    h: i64,
) -> Result<Submitted, SubmitError> {
    submit(
        s,
        who,
        SubmitInput {
            body,
            idempotency_key: key,
            new_id: DeploymentId::parse(new_id).unwrap(),
            now: t(h),
        },
    )
    .await
}

#[tokio::test]
async fn a_key_taken_by_another_packager_does_not_block_a_colleagues_own_submission() {
    let s = svc();
    let (alice, bob) = (packager("packager-alice"), packager("packager-bob"));
    // Bob takes the key Alice will use (her change's number) for a submission of his own.
    let his = send(&s, &bob, &body("CHG-41", 48), Some("CHG-42"), "dep-bob", 0)
        .await
        .unwrap();
    assert!(!his.replayed);
    // Alice's own submission under her own key "CHG-42": a new deployment, hers.
    let hers = send(
        &s,
        &alice,
        &body("CHG-42", 48),
        Some("CHG-42"),
        "dep-alice",
        1,
    )
    .await
    .unwrap();
    assert!(!hers.replayed);
    assert_eq!(hers.record.id.as_str(), "dep-alice");
    assert_eq!(hers.record.submitted_by, alice.id);
    // Her key is still hers: the same request again is the first answer, another body a conflict.
    let again = send(&s, &alice, &body("CHG-42", 48), Some("CHG-42"), "dep-x", 2)
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.record.id.as_str(), "dep-alice");
    let err = send(&s, &alice, &body("CHG-43", 48), Some("CHG-42"), "dep-y", 2)
        .await
        .unwrap_err();
    match err {
        SubmitError::KeyReused { key, deployment_id } => {
            assert_eq!(key, "CHG-42");
            assert_eq!(deployment_id.as_str(), "dep-alice");
        }
        other => panic!("{other}"),
    }
    // And Bob's key is his.
    let his_again = send(&s, &bob, &body("CHG-41", 48), Some("CHG-42"), "dep-z", 3)
        .await
        .unwrap();
    assert_eq!(his_again.record.id.as_str(), "dep-bob");
}

#[tokio::test]
async fn a_correlation_id_names_one_deployment_and_only_its_submitter_gets_it_back() {
    let s = svc();
    let (alice, bob) = (packager("packager-alice"), packager("packager-bob"));
    let first = send(&s, &alice, &body("CHG-7", 48), None, "dep-alice", 0)
        .await
        .unwrap();
    // Alice repeating her request without a key (a retry) gets her deployment back.
    let retry = send(&s, &alice, &body("CHG-7", 48), Some("new-key"), "dep-x", 1)
        .await
        .unwrap();
    assert!(retry.replayed);
    assert_eq!(retry.record.id, first.record.id);
    // Bob sending the very same body gets a conflict, not Alice's deployment as if it were his.
    for (content, key) in [(body("CHG-7", 48), None), (body("CHG-7", 49), Some("bobs"))] {
        let err = send(&s, &bob, &content, key, "dep-bob", 2)
            .await
            .unwrap_err();
        match err {
            SubmitError::CorrelationTaken {
                correlation_id,
                deployment_id,
            } => {
                assert_eq!(correlation_id, "CHG-7");
                // Bob may read deployments (every role may): he is told which one holds it.
                assert_eq!(deployment_id, Some(first.record.id.clone()));
            }
            other => panic!("{other}"),
        }
    }
    assert!(
        s.store
            .get(&DeploymentId::parse("dep-bob").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    // Alice with another body under the same correlation id: it is taken, by her own deployment.
    let err = send(&s, &alice, &body("CHG-7", 50), Some("k2"), "dep-y", 3)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SubmitError::CorrelationTaken { deployment_id: Some(d), .. } if *d == first.record.id),
        "{err}"
    );
    // A week and more later the correlation id is still taken (it names its deployment for as
    // long as the deployment is kept; the connectors' markers rely on it).
    let claim = s
        .store
        .idempotency("correlation:CHG-7")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claim.expires_at, None);
}
