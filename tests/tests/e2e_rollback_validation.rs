//! Issue 13, point 6, through the HTTP API of the local stack: rollback validation is evidence,
//! not a claim. The packager's `validated_in_ring0` does not satisfy the rollback gate; a
//! validation record (who, when, which Ring 0 devices, which result) by a publisher or security
//! reviewer who did not submit the deployment does.

use eucora_system_tests::local::{sample, start};
use serde_json::Value;

/// The rollback gate's check in the deployment's latest gate decision.
fn rollback_check(d: &Value) -> Value {
    d["last_gate_decision"]["checks"]
        .as_array()
        .expect("gate checks")
        .iter()
        .find(|c| c["gate"] == "rollback_validated")
        .cloned()
        .expect("a rollback check")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployments_rollback_gate_fails_until_a_validation_record_exists() {
    let e = start().await;
    let submission = sample("low-risk");
    assert_eq!(
        submission["evidence"]["rollback"]["validated_in_ring0"], true,
        "the packager claims the rollback was validated"
    );
    let id = e.submit(submission).await;
    assert_eq!(e.settled(&id).await, "in_ring 1");
    let d = e.get(&id).await;
    assert_eq!(d["rollback_validated"], false, "the claim is not evidence");
    assert_eq!(d["rollback_validations"], serde_json::json!([]));

    // The gates of Ring 1 (before Ring 2, past the policy's Ring 1) fail on the rollback: the
    // ring does not promote.
    let state = e.until_not(&id, "in_ring 1").await;
    assert_eq!(state, "halted 1");
    let d = e.get(&id).await;
    let check = rollback_check(&d);
    assert_eq!(check["status"], "fail", "{check}");
    assert_eq!(d["last_gate_decision"]["verdict"], "halt");
    // Still held there a day later.
    e.step(24).await;
    assert_eq!(e.settled(&id).await, "halted 1");
    assert_eq!(rollback_check(&e.get(&id).await)["status"], "fail");

    // The submitter may not validate their own rollback, whatever they claim.
    let devices = ["lab-device-01".to_owned()];
    let r = e
        .packager
        .validate_rollback(&id, &devices, "passed", None)
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    // Nor may the submitter holding publisher: separation of duties, whatever the roles.
    let submitter_publisher = eucora_local::client::Client::new(
        &e.stack.api_url,
        &e.stack.token(
            "packager-alice",
            &[
                eucora_domain::cab::Role::Packaging,
                eucora_domain::cab::Role::Publisher,
            ],
        ),
    );
    let r = submitter_publisher
        .validate_rollback(&id, &devices, "passed", None)
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("submitted this deployment"),
        "{}",
        r.body
    );
    // An auditor may not either; a body without devices names the field.
    let r = e
        .auditor
        .validate_rollback(&id, &devices, "passed", None)
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    let r = e
        .publisher
        .validate_rollback(&id, &[], "passed", None)
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["error"]["field"], "devices", "{}", r.body);
    assert_eq!(e.get(&id).await["rollback_validated"], false);

    // A publisher records the rollback run on Ring 0 devices.
    let out = e.validate_rollback(&id).await;
    assert_eq!(out["validation"]["result"], "passed");
    let d = e.get(&id).await;
    assert_eq!(d["rollback_validated"], true);
    assert_eq!(d["rollback_validations"].as_array().unwrap().len(), 1);
    let event = e
        .audit(&id)
        .await
        .into_iter()
        .find(|ev| ev["kind"] == "rollback.validated")
        .expect("the validation is in the trail");
    assert_eq!(event["detail"]["result"], "passed", "{event}");
    assert_eq!(event["detail"]["devices"].as_array().unwrap().len(), 2);

    // The next gate run resumes the ring (its rollback gate passes now), and once the ring's
    // observation time is over, promotes it.
    let mut state = e.until_not(&id, "halted 1").await;
    if state == "in_ring 1" {
        assert_eq!(rollback_check(&e.get(&id).await)["status"], "pass");
        state = e.until_not(&id, "in_ring 1").await;
    }
    assert_eq!(state, "in_ring 2");
    assert_eq!(rollback_check(&e.get(&id).await)["status"], "pass");
    e.verified(&id).await;
    e.stack.shutdown().await;
}
