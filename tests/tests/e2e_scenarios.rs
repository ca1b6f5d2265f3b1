//! The seed's four end-to-end scenarios, through the HTTP API of the local stack (moto with the
//! template's resources, both simulators, the functions' handlers behind the event-source
//! mappings, the gate function run as the schedule runs it).

use eucora_system_tests::local::{E2e, sample, start};
use serde_json::Value;

fn gate(d: &Value) -> &Value {
    &d["last_gate_decision"]
}

/// Every gate check carries its threshold and the measured value.
fn assert_measured(d: &Value) {
    let checks = gate(d)["checks"].as_array().expect("gate checks");
    assert!(!checks.is_empty());
    for c in checks {
        assert!(
            !c["threshold"].is_null() && !c["actual"].is_null(),
            "a gate without threshold or actual: {c}"
        );
    }
}

async fn connector_calls(e: &E2e, id: &str, platform: &str) -> usize {
    e.audit(id)
        .await
        .iter()
        .filter(|ev| ev["kind"] == "connector.call" && ev["detail"]["platform"] == platform)
        .count()
}

/// Low risk: scored under 50, no CAB; Ring 1 via Intune, the gates promote it, Ring 2, done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_risk_goes_through_both_rings_without_cab() {
    let e = start().await;
    let id = e.submit(sample("low-risk")).await;
    e.validate_rollback(&id).await;
    assert_eq!(e.settled(&id).await, "in_ring 1");
    let d = e.get(&id).await;
    assert!(
        d["risk"]["score"].as_f64().unwrap() <= 50.0,
        "{}",
        d["risk"]
    );
    assert_eq!(d["rings"][0]["cab_status"]["status"], "not_required");
    assert!(d["approvals"].as_array().unwrap().is_empty());
    assert_eq!(e.stack.sims.intune.apps().len(), 1);

    assert_eq!(e.until_not(&id, "in_ring 1").await, "in_ring 2");
    assert_measured(&e.get(&id).await);
    assert_eq!(e.until_not(&id, "in_ring 2").await, "completed");
    let d = e.get(&id).await;
    assert_eq!(gate(&d)["verdict"], "promote", "{}", gate(&d));
    assert_measured(&d);
    assert!(connector_calls(&e, &id, "windows").await > 0);
    e.verified(&id).await;
    e.stack.shutdown().await;
}

/// High risk: CAB approves Ring 1 with conditions; the gates pass; Ring 2 needs its own approval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn high_risk_needs_cab_for_each_ring() {
    let e = start().await;
    let id = e.submit(sample("high-risk")).await;
    e.validate_rollback(&id).await;
    assert_eq!(e.settled(&id).await, "awaiting_cab 1");
    assert!(e.get(&id).await["risk"]["score"].as_f64().unwrap() > 50.0);
    assert!(
        e.stack.sims.intune.apps().is_empty(),
        "nothing published before CAB"
    );

    e.approve(&id, 1, &[&e.cab[0]], &["deploy outside trading hours"])
        .await;
    assert_eq!(e.settled(&id).await, "in_ring 1");
    let d = e.get(&id).await;
    assert_eq!(d["rings"][0]["cab_status"]["status"], "approved");
    assert_eq!(
        d["rings"][0]["cab_status"]["conditions"][0],
        "deploy outside trading hours"
    );

    assert_eq!(e.until_not(&id, "in_ring 1").await, "awaiting_cab 2");
    assert_measured(&e.get(&id).await);
    e.approve(&id, 2, &[&e.cab[1]], &[]).await;
    assert_eq!(e.settled(&id).await, "in_ring 2");
    assert_eq!(e.until_not(&id, "in_ring 2").await, "completed");
    e.verified(&id).await;
    e.stack.shutdown().await;
}

/// An incident in Ring 1 reclassifies the blast radius and halts the rollout; the gates keep it
/// halted; resolving it resumes the ring, and the next ring needs the larger quorum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_halts_and_its_resolution_resumes() {
    let e = start().await;
    let id = e.submit(sample("incident")).await;
    e.validate_rollback(&id).await;
    assert_eq!(e.settled(&id).await, "in_ring 1");
    e.step(1).await;

    let r = e
        .publisher
        .report_incident(
            &id,
            "high",
            "Expense uploads reach an unapproved endpoint",
            Some("BUSINESS_CRITICAL"),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let incident = r.body["incident_id"]
        .as_str()
        .or_else(|| r.body["id"].as_str())
        .or_else(|| r.body["incident"]["id"].as_str())
        .unwrap_or_else(|| panic!("incident id in {}", r.body))
        .to_owned();
    assert_eq!(e.state(&id).await, "halted 1");
    assert_eq!(e.get(&id).await["blast_radius"], "BUSINESS_CRITICAL");
    // Two days of gate runs: the open incident keeps it halted.
    for _ in 0..8 {
        e.step(6).await;
    }
    assert_eq!(e.state(&id).await, "halted 1");

    let r = e
        .security
        .resolve_incident(&id, &incident, "Vendor hotfix removes the endpoint")
        .await
        .unwrap();
    assert!(r.ok(), "{}", r.body);
    // The next gate run resumes the ring; its gates pass again, and BUSINESS_CRITICAL now always
    // needs CAB, with a quorum of two.
    assert_eq!(e.until_not(&id, "halted 1").await, "awaiting_cab 2");
    let resumed = e.audit(&id).await.into_iter().any(|ev| {
        ev["kind"] == "deployment.state_changed"
            && ev["detail"].to_string().contains("halted")
            && ev["detail"].to_string().contains("in_ring")
    });
    assert!(resumed, "no state change from halted back into the ring");
    e.approve(&id, 2, &[&e.cab[0]], &[]).await;
    assert_eq!(e.settled(&id).await, "awaiting_cab 2");
    e.approve(&id, 2, &[&e.cab[1]], &[]).await;
    assert_eq!(e.settled(&id).await, "in_ring 2");
    e.verified(&id).await;
    e.stack.shutdown().await;
}

/// Windows via Intune and macOS via Jamf in one deployment: both published, one correlation id on
/// every call to either platform, one gate decision over both fleets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_and_macos_in_one_deployment() {
    let e = start().await;
    let submission = sample("multi-platform");
    let correlation = submission["correlation_id"].as_str().unwrap().to_owned();
    let id = e.submit(submission).await;
    e.validate_rollback(&id).await;
    assert_eq!(e.settled(&id).await, "in_ring 1");
    assert_eq!(e.stack.sims.intune.apps().len(), 1);
    assert_eq!(e.stack.sims.jamf.policies().len(), 1);

    let next = e.until_not(&id, "in_ring 1").await;
    let d = e.get(&id).await;
    assert_eq!(next, "in_ring 2", "{}", gate(&d));
    assert_measured(&d);
    // Ring 1 of both fleets: 10 PCs and 10 Macs.
    assert_eq!(
        gate(&d)["checks"][0]["detail"],
        "20 of 20 reported; 20 installed, 0 pending, 0 failed of 20",
        "{}",
        gate(&d)
    );
    for r in e.stack.sims.intune.requests() {
        assert_eq!(
            r.header("x-correlation-id"),
            Some(correlation.as_str()),
            "{} {}",
            r.method,
            r.path
        );
    }
    for r in e.stack.sims.jamf.requests() {
        assert_eq!(
            r.header("x-correlation-id"),
            Some(correlation.as_str()),
            "{} {}",
            r.method,
            r.path
        );
    }
    assert!(connector_calls(&e, &id, "windows").await > 0);
    assert!(connector_calls(&e, &id, "macos").await > 0);
    e.verified(&id).await;
    e.stack.shutdown().await;
}
