//! Issue 13, point 5, through the HTTP API of the local stack: the live ring while CAB decides on
//! the next one, and after CAB rejects it. Ring 1 stays watched while ring 2 awaits CAB (a failing
//! gate halts it); a rejection of ring 2 leaves the deployment held at ring 1, still watched and
//! open to incidents, never orphaned in a terminal state with devices holding the package.

use std::time::Duration;

use eucora_domain::Ring;
use eucora_local::stack::platforms::intune_group;
use eucora_sim_intune::SimDevice;
use eucora_system_tests::local::{E2e, sample, start};
use serde_json::Value;

/// A high-risk deployment live in ring 1, awaiting CAB for ring 2.
async fn awaiting_ring_2(e: &E2e) -> String {
    let id = e.submit(sample("high-risk")).await;
    e.validate_rollback(&id).await;
    assert_eq!(e.settled(&id).await, "awaiting_cab 1");
    e.approve(&id, 1, &[&e.cab[0]], &[]).await;
    assert_eq!(e.settled(&id).await, "in_ring 1");
    assert_eq!(e.until_not(&id, "in_ring 1").await, "awaiting_cab 2");
    id
}

async fn hash(e: &E2e, id: &str) -> String {
    e.get(id).await["evidence_hash"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Ring 1's ten PCs as the local stack made them (installed; they reported long ago).
fn ring_1_pcs() -> Vec<SimDevice> {
    (0..10)
        .map(|i| {
            SimDevice::installed(
                &format!("win-r1-{i:04}"),
                &format!("PC-R1-{i:04}"),
                Duration::from_secs(300),
            )
        })
        .collect()
}

/// Ten PCs join ring 1's group (a department moved in) and their installs fail.
fn fail_ring_1(e: &E2e) {
    let mut pcs = ring_1_pcs();
    pcs.extend((0..10).map(|i| {
        SimDevice::failed(
            &format!("win-r1-new-{i:04}"),
            &format!("PC-R1-NEW-{i:04}"),
            -2_016_345_060,
            Duration::ZERO,
        )
    }));
    e.stack
        .sims
        .intune
        .add_group(&intune_group(Ring::Canary), pcs);
}

/// The failing PCs leave the group again.
fn heal_ring_1(e: &E2e) {
    e.stack
        .sims
        .intune
        .add_group(&intune_group(Ring::Canary), ring_1_pcs());
}

/// The gate evaluations of ring 1 recorded after `after` events of the trail.
async fn ring_1_evaluations(e: &E2e, id: &str, after: usize) -> Vec<Value> {
    e.audit(id)
        .await
        .into_iter()
        .skip(after)
        .filter(|ev| ev["kind"] == "gate.evaluated" && ev["detail"]["ring"] == 1)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_gate_in_the_live_ring_while_the_next_awaits_cab_halts_it() {
    let e = start().await;
    let id = awaiting_ring_2(&e).await;
    // Ring 1's PCs start failing: the package breaks something after it installed.
    fail_ring_1(&e);
    // The schedule goes on while CAB has not decided: ring 1 is still evaluated, and halted.
    assert_eq!(e.until_not(&id, "awaiting_cab 2").await, "halted 1");
    let d = e.get(&id).await;
    assert_eq!(
        d["last_gate_decision"]["ring"], 1,
        "{}",
        d["last_gate_decision"]
    );
    assert_eq!(
        d["last_gate_decision"]["verdict"], "halt",
        "{}",
        d["last_gate_decision"]
    );
    // Ring 2 is no longer awaiting a decision: CAB cannot approve it now.
    let h = hash(&e, &id).await;
    let r = e.cab[1]
        .decide(&id, 2, "approve", &h, &[], None)
        .await
        .unwrap();
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "NOT_AWAITING_CAB", "{}", r.body);
    e.verified(&id).await;
    e.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_of_the_next_ring_leaves_the_live_ring_holding_not_terminal() {
    let e = start().await;
    let id = awaiting_ring_2(&e).await;
    let h = hash(&e, &id).await;
    let r = e.cab[1]
        .decide(
            &id,
            2,
            "reject",
            &h,
            &[],
            Some("Not before the finance close; ring 1 may keep it"),
        )
        .await
        .unwrap();
    assert!(r.ok(), "{}", r.body);
    assert_eq!(e.settled(&id).await, "held 1");

    // Still watched: the schedule reads ring 1's install status and evaluates its gates, and
    // nothing moves on by itself.
    let calls = e.stack.sims.intune.requests().len();
    e.step(6).await;
    e.step(6).await;
    assert_eq!(e.settled(&id).await, "held 1");
    assert_eq!(e.get(&id).await["last_gate_decision"]["ring"], 1);
    assert!(
        e.stack.sims.intune.requests().len() > calls,
        "ring 1's install status is still read"
    );
    // Its devices start failing: a held ring is halted like a live one.
    let seen = e.audit(&id).await.len();
    fail_ring_1(&e);
    assert_eq!(e.until_not(&id, "held 1").await, "halted 1");
    assert!(
        ring_1_evaluations(&e, &id, seen)
            .await
            .iter()
            .any(|ev| ev["detail"]["verdict"] == "halt")
    );
    // Repaired, the ring is re-validated and returns to held, never to promotion.
    heal_ring_1(&e);
    assert_eq!(e.until_not(&id, "halted 1").await, "held 1");

    // Still open to incidents: one halts it, its resolution returns it to held, not to promotion.
    let r = e
        .publisher
        .report_incident(&id, "high", "Finance macros fail with the new build", None)
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let incident = r.body["incident"]["id"].as_str().unwrap().to_owned();
    assert_eq!(e.state(&id).await, "halted 1");
    let r = e
        .security
        .resolve_incident(&id, &incident, "Macro signing fixed by the finance team")
        .await
        .unwrap();
    assert!(r.ok(), "{}", r.body);
    assert_eq!(e.until_not(&id, "halted 1").await, "held 1");
    e.step(6).await;
    assert_eq!(e.settled(&id).await, "held 1");
    e.verified(&id).await;
    e.stack.shutdown().await;
}
