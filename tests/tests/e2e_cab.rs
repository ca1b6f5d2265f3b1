//! The seed's eight CAB workflow cases, through the HTTP API of the local stack.

use eucora_domain::cab::Role;
use eucora_local::client::Client;
use eucora_system_tests::local::{E2e, sample, start};
use serde_json::Value;

async fn hash(e: &E2e, id: &str) -> String {
    e.get(id).await["evidence_hash"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn in_cab_queue(e: &E2e, id: &str) -> bool {
    let q = e.cab[0].cab_queue().await.unwrap().into_ok().unwrap();
    q.to_string().contains(id)
}

async fn kinds(e: &E2e, id: &str) -> Vec<String> {
    e.audit(id)
        .await
        .iter()
        .filter_map(|ev| ev["kind"].as_str().map(str::to_owned))
        .collect()
}

/// 1. Low risk (≤ 50) enters Ring 1 without CAB: no decision, not in the CAB queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_risk_bypasses_cab() {
    let e = start().await;
    let id = e.submit(sample("low-risk")).await;
    assert_eq!(e.settled(&id).await, "in_ring 1");
    let d = e.get(&id).await;
    assert!(d["risk"]["score"].as_f64().unwrap() <= 50.0);
    assert_eq!(d["rings"][0]["cab"]["required"], false, "{}", d["rings"][0]);
    assert!(!in_cab_queue(&e, &id).await);
    assert!(!kinds(&e, &id).await.contains(&"cab.decided".to_owned()));
    // A decision where none is required is refused.
    let r = e.cab[0]
        .decide(&id, 1, "approve", &hash(&e, &id).await, &[], None)
        .await
        .unwrap();
    assert_eq!(r.status, 409, "{}", r.body);
    e.stack.shutdown().await;
}

/// 2. High risk (> 50) waits for CAB: queued for the board, nothing sent to Intune.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn high_risk_requires_cab() {
    let e = start().await;
    let id = e.submit(sample("high-risk")).await;
    assert_eq!(e.settled(&id).await, "awaiting_cab 1");
    assert!(e.get(&id).await["risk"]["score"].as_f64().unwrap() > 50.0);
    assert!(in_cab_queue(&e, &id).await);
    // Hours pass and gates run: still waiting, still nothing on the platform.
    e.step(6).await;
    assert_eq!(e.state(&id).await, "awaiting_cab 1");
    assert!(e.stack.sims.intune.apps().is_empty());
    assert!(e.stack.sims.intune.requests().is_empty());
    e.stack.shutdown().await;
}

/// 3. An approval with conditions: recorded on the ring and in the audit trail, bound to the
/// evidence the member reviewed (another hash is refused), then the ring is dispatched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_with_conditions() {
    let e = start().await;
    let id = e.submit(sample("high-risk")).await;
    assert_eq!(e.settled(&id).await, "awaiting_cab 1");
    let stale = "0".repeat(64);
    let r = e.cab[0]
        .decide(&id, 1, "approve", &stale, &[], None)
        .await
        .unwrap();
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(e.state(&id).await, "awaiting_cab 1");

    let conditions = vec![
        "deploy outside trading hours".to_owned(),
        "service desk briefed".to_owned(),
    ];
    let r = e.cab[0]
        .decide(&id, 1, "approve", &hash(&e, &id).await, &conditions, None)
        .await
        .unwrap();
    assert!(r.ok(), "{}", r.body);
    assert_eq!(e.settled(&id).await, "in_ring 1");
    let status = &e.get(&id).await["rings"][0]["cab_status"];
    assert_eq!(status["status"], "approved");
    assert_eq!(status["conditions"], serde_json::json!(conditions));
    let trail = e.audit(&id).await;
    let decided = trail
        .iter()
        .find(|ev| ev["kind"] == "cab.decided")
        .expect("cab.decided");
    assert_eq!(decided["actor"], "cab-carol@eucora.local");
    assert!(
        decided["detail"]
            .to_string()
            .contains("service desk briefed")
    );
    assert_eq!(e.stack.sims.intune.apps().len(), 1);
    e.stack.shutdown().await;
}

/// 4. A rejection (which needs a comment) ends the deployment: nothing is published and later
/// approvals are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejection_blocks_the_deployment() {
    let e = start().await;
    let id = e.submit(sample("high-risk")).await;
    assert_eq!(e.settled(&id).await, "awaiting_cab 1");
    let h = hash(&e, &id).await;
    let r = e.cab[0]
        .decide(&id, 1, "reject", &h, &[], None)
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["error"]["field"], "comment", "{}", r.body);
    let r = e.cab[0]
        .decide(
            &id,
            1,
            "reject",
            &h,
            &[],
            Some("No rollback tested for the kernel driver"),
        )
        .await
        .unwrap();
    assert!(r.ok(), "{}", r.body);
    assert_eq!(e.settled(&id).await, "rejected");
    let r = e.cab[1]
        .decide(&id, 1, "approve", &h, &[], None)
        .await
        .unwrap();
    assert_eq!(r.status, 409, "{}", r.body);
    e.step(6).await;
    assert_eq!(e.state(&id).await, "rejected");
    assert!(e.stack.sims.intune.requests().is_empty());
    e.stack.shutdown().await;
}

/// 5. Blast radius sets the quorum: a `BUSINESS_CRITICAL` app needs two distinct CAB members, even
/// at low risk; one member approving twice still counts once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blast_radius_sets_the_quorum() {
    let e = start().await;
    let mut s = sample("low-risk");
    s["business_criticality"] = "BUSINESS_CRITICAL".into();
    let id = e.submit(s).await;
    assert_eq!(e.settled(&id).await, "awaiting_cab 1");
    let d = e.get(&id).await;
    assert_eq!(d["blast_radius"], "BUSINESS_CRITICAL");
    assert_eq!(
        d["rings"][0]["cab_status"]["quorum"], 2,
        "{}",
        d["rings"][0]
    );

    e.approve(&id, 1, &[&e.cab[0]], &[]).await;
    assert_eq!(e.settled(&id).await, "awaiting_cab 1");
    let again = e.cab[0]
        .decide(&id, 1, "approve", &hash(&e, &id).await, &[], None)
        .await
        .unwrap();
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(e.get(&id).await["rings"][0]["cab_status"]["approvals"], 1);
    e.approve(&id, 1, &[&e.cab[1]], &[]).await;
    assert_eq!(e.settled(&id).await, "in_ring 1");
    e.stack.shutdown().await;
}

/// 6. Each ring has its own approval: Ring 1's does not cover Ring 2, and Ring 2 cannot be
/// approved before the deployment reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_ring_needs_its_own_approval() {
    let e = start().await;
    let id = e.submit(sample("high-risk")).await;
    e.validate_rollback(&id).await;
    assert_eq!(e.settled(&id).await, "awaiting_cab 1");
    let r = e.cab[0]
        .decide(&id, 2, "approve", &hash(&e, &id).await, &[], None)
        .await
        .unwrap();
    assert_eq!(r.status, 409, "{}", r.body);
    e.approve(&id, 1, &[&e.cab[0]], &[]).await;
    assert_eq!(e.settled(&id).await, "in_ring 1");
    assert_eq!(e.until_not(&id, "in_ring 1").await, "awaiting_cab 2");
    let d = e.get(&id).await;
    assert_eq!(d["rings"][0]["cab_status"]["status"], "approved");
    assert_eq!(d["rings"][1]["cab_status"]["status"], "pending");
    assert!(in_cab_queue(&e, &id).await);
    e.approve(&id, 2, &[&e.cab[1]], &[]).await;
    assert_eq!(e.settled(&id).await, "in_ring 2");
    e.stack.shutdown().await;
}

/// 7. Privileged tooling always goes to CAB, whatever its score, and its submitter cannot approve
/// it even when they sit on the board.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privileged_tooling_always_needs_cab() {
    let e = start().await;
    let both = Client::new(
        &e.stack.api_url,
        &e.stack
            .token("packager-alice", &[Role::Packaging, Role::Cab]),
    );
    let mut s = sample("privileged");
    e.stack.stage_packages(&mut s).await.unwrap();
    let r = both.submit(&s, None).await.unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(e.settled(&id).await, "awaiting_cab 1");
    let d = e.get(&id).await;
    assert_eq!(d["rings"][0]["cab"]["required"], true, "{}", d["rings"][0]);
    let r = both
        .decide(&id, 1, "approve", &hash(&e, &id).await, &[], None)
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(e.state(&id).await, "awaiting_cab 1");
    e.approve(&id, 1, &[&e.cab[0]], &[]).await;
    assert_eq!(e.settled(&id).await, "in_ring 1");
    e.stack.shutdown().await;
}

/// 8. An exception unblocks a critical CVE: requested by the packager with compensating
/// controls, approved by the security reviewer (and CAB, since the risk is above 50); the
/// deployment is rescored and goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_exception_unblocks_publishing() {
    let e = start().await;
    let id = e.submit(sample("critical-cve")).await;
    assert_eq!(e.settled(&id).await, "publish_blocked");
    let r = e
        .packager
        .request_exception(
            &id,
            &serde_json::json!({
                "kind": "vulnerability_scan",
                "justification": "The CVE is only reachable through a plug-in the package does not install.",
                "compensating_controls": ["plug-in disabled by policy", "EDR blocks the DLL"],
                "expires_in_days": 30
            }),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let exc = r.body["exception"]["id"].as_str().unwrap().to_owned();
    // The requester cannot approve their own exception.
    let own = Client::new(
        &e.stack.api_url,
        &e.stack
            .token("packager-alice", &[Role::Packaging, Role::SecurityReviewer]),
    );
    let r = own.approve_exception(&id, &exc).await.unwrap();
    assert_eq!(r.status, 403, "{}", r.body);

    let mut last: Value = Value::Null;
    for approver in [&e.security, &e.cab[0]] {
        let r = approver.approve_exception(&id, &exc).await.unwrap();
        assert!(r.ok(), "{}", r.body);
        last = r.body;
        if last["status"] == "approved" {
            break;
        }
    }
    assert_ne!(
        last["deployment_state"]["state"], "publish_blocked",
        "{last}"
    );
    let state = e.settled(&id).await;
    assert!(
        state == "awaiting_cab 1" || state == "in_ring 1",
        "the exception did not unblock: {state}"
    );
    let d = e.get(&id).await;
    let ours = d["exceptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == exc.as_str())
        .expect("the exception");
    assert_eq!(ours["status"], "approved", "{ours}");
    let k = kinds(&e, &id).await;
    assert!(
        k.contains(&"exception.requested".to_owned())
            && k.contains(&"exception.approved".to_owned())
    );
    e.stack.shutdown().await;
}
