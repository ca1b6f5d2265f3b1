//! Issue 13, points 1, 3 and 4, through the HTTP API of the local stack: nobody decides on their
//! own submission; an incident reported by a security reviewer is cleared only by a security
//! reviewer; CAB approvals that expired or were withdrawn may be given again, and the trail keeps
//! each one; an open incident blocks approval and dispatch.

use eucora_domain::cab::Role;
use eucora_local::client::{Client, Reply};
use eucora_system_tests::local::{E2e, sample, start};
use serde_json::{Value, json};

async fn hash(e: &E2e, id: &str) -> String {
    e.get(id).await["evidence_hash"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn person(e: &E2e, sub: &str, roles: &[Role]) -> Client {
    Client::new(&e.stack.api_url, &e.stack.token(sub, roles))
}

async fn kinds(e: &E2e, id: &str) -> Vec<String> {
    e.audit(id)
        .await
        .iter()
        .filter_map(|ev| ev["kind"].as_str().map(str::to_owned))
        .filter(|k| k.starts_with("cab."))
        .collect()
}

async fn approve(e: &E2e, id: &str, member: &Client) -> Reply {
    let h = hash(e, id).await;
    member
        .decide(id, 1, "approve", &h, &[], None)
        .await
        .unwrap()
}

async fn withdraw(id: &str, member: &Client, reason: &str) -> Reply {
    member
        .post(
            &format!("/v1/deployments/{id}/cab/withdrawals"),
            &json!({ "ring": 1, "reason": reason }),
        )
        .await
        .unwrap()
}

/// Ring 1's CAB status as the deployment shows it.
async fn ring_1(e: &E2e, id: &str) -> Value {
    e.get(id).await["rings"][0]["cab_status"].clone()
}

/// The submitter, who also holds `security_reviewer`, cannot approve the `vulnerability_scan`
/// exception a colleague requested on their deployment; a security reviewer and CAB can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_approved_exception_is_refused() {
    let e = start().await;
    let mut submission = sample("critical-cve");
    submission["evidence"]["exceptions"] = json!([]);
    let id = e.submit(submission).await;
    assert_eq!(e.settled(&id).await, "publish_blocked");
    let r = e
        .publisher
        .request_exception(
            &id,
            &json!({
                "kind": "vulnerability_scan",
                "justification": "The CVE is only reachable through a plug-in the package does not install.",
                "compensating_controls": ["plug-in disabled by policy"],
                "expires_in_days": 30
            }),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let exc = r.body["exception"]["id"].as_str().unwrap().to_owned();

    let submitter = person(
        &e,
        "packager-alice",
        &[Role::Packaging, Role::SecurityReviewer],
    );
    let r = submitter.approve_exception(&id, &exc).await.unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("submitted this deployment"),
        "{}",
        r.body
    );
    assert_eq!(e.state(&id).await, "publish_blocked");

    // Colleagues may: the deployment goes on.
    for approver in [&e.security, &e.cab[0]] {
        let r = approver.approve_exception(&id, &exc).await.unwrap();
        assert!(r.ok(), "{}", r.body);
    }
    assert_ne!(e.settled(&id).await, "publish_blocked");
    // Nor may the submitter extend it.
    let r = submitter.extend_exception(&id, &exc, 10).await.unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    e.stack.shutdown().await;
}

/// A security reviewer's incident: a publisher cannot resolve it (403 saying a security reviewer
/// must), nor can the submitter whatever roles they hold; another security reviewer can, and the
/// rollout resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_is_cleared_only_as_the_rules_say() {
    let e = start().await;
    let id = e.submit(sample("incident")).await;
    e.validate_rollback(&id).await;
    assert_eq!(e.settled(&id).await, "in_ring 1");
    e.step(1).await;
    let r = e
        .security
        .report_incident(&id, "high", "Uploads reach an unapproved endpoint", None)
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let incident = r.body["incident"]["id"].as_str().unwrap().to_owned();
    let reported = r.body.clone();
    assert_eq!(e.state(&id).await, "halted 1");

    let r = e
        .publisher
        .resolve_incident(&id, &incident, "looks fine to me")
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("a security reviewer must resolve it"),
        "{}",
        r.body
    );
    assert_eq!(
        reported["incident"]["reported_as"], "security_reviewer",
        "{reported}"
    );
    let submitter = person(
        &e,
        "packager-alice",
        &[Role::Packaging, Role::Publisher, Role::SecurityReviewer],
    );
    let r = submitter
        .resolve_incident(&id, &incident, "my package is fine")
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    // Still open: the gate runs keep it halted.
    e.step(6).await;
    assert_eq!(e.state(&id).await, "halted 1");

    let other = person(&e, "security-sue", &[Role::SecurityReviewer]);
    let r = other
        .resolve_incident(&id, &incident, "Vendor hotfix removes the endpoint")
        .await
        .unwrap();
    assert!(r.ok(), "{}", r.body);
    assert_ne!(e.until_not(&id, "halted 1").await, "halted 1");
    e.stack.shutdown().await;
}

/// A quorum of three over 60 hours: A at 0 h, B at 30 h, A's approval expires at 48 h, A renews at
/// 55 h, C at 60 h: approved. The trail keeps the expired approval and marks the renewal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quorum_of_three_is_reached_across_60_hours_with_a_renewed_approval() {
    let e = start().await;
    let mut submission = sample("high-risk");
    submission["business_criticality"] = "CRITICAL_INFRASTRUCTURE".into();
    let id = e.submit(submission).await;
    assert_eq!(e.settled(&id).await, "awaiting_cab 1");
    let [cab_a, cab_b, cab_c] = &e.cab;

    let r = approve(&e, &id, cab_a).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["cab_status"]["quorum"], 3, "{}", r.body);
    e.step(30).await;
    let r = approve(&e, &id, cab_b).await;
    assert_eq!(r.status, 201, "{}", r.body);
    e.step(25).await;
    // 55 hours: A's approval has expired.
    let status = ring_1(&e, &id).await;
    assert_eq!(status["approvals"], 1, "{status}");
    let r = approve(&e, &id, cab_a).await;
    assert_eq!(r.status, 201, "the renewal: {}", r.body);
    assert_eq!(r.body["cab_status"]["approvals"], 2, "{}", r.body);
    e.step(5).await;
    assert_eq!(e.state(&id).await, "awaiting_cab 1");
    let r = approve(&e, &id, cab_c).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["cab_status"]["status"], "approved", "{}", r.body);
    assert_eq!(e.settled(&id).await, "in_ring 1");
    assert_eq!(
        kinds(&e, &id).await,
        ["cab.decided", "cab.decided", "cab.renewed", "cab.decided"]
    );
    assert_eq!(e.get(&id).await["approvals"].as_array().unwrap().len(), 4);
    e.verified(&id).await;
    e.stack.shutdown().await;
}

/// A withdrawn approval stops counting at once and may be given again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawn_approval_stops_counting_and_can_be_given_again() {
    let e = start().await;
    let mut submission = sample("high-risk");
    submission["business_criticality"] = "BUSINESS_CRITICAL".into();
    let id = e.submit(submission).await;
    assert_eq!(e.settled(&id).await, "awaiting_cab 1");
    let [cab_a, cab_b, _] = &e.cab;

    let r = approve(&e, &id, cab_a).await;
    assert_eq!(r.status, 201, "{}", r.body);
    // Only one's own standing approval, only CAB, only with a reason.
    assert_eq!(withdraw(&id, cab_b, "not mine").await.status, 409);
    assert_eq!(withdraw(&id, &e.publisher, "no").await.status, 403);
    let r = cab_a
        .post(
            &format!("/v1/deployments/{id}/cab/withdrawals"),
            &json!({ "ring": 1 }),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["error"]["field"], "reason");

    let r = withdraw(&id, cab_a, "the vendor pulled the build").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["cab_status"]["approvals"], 0, "{}", r.body);
    // B alone: one approval of two.
    let r = approve(&e, &id, cab_b).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["cab_status"]["status"], "pending", "{}", r.body);
    assert_eq!(e.state(&id).await, "awaiting_cab 1");
    // A approves again: quorum.
    let r = approve(&e, &id, cab_a).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["cab_status"]["status"], "approved", "{}", r.body);
    assert_eq!(e.settled(&id).await, "in_ring 1");
    assert_eq!(
        kinds(&e, &id).await,
        ["cab.decided", "cab.withdrawn", "cab.decided", "cab.renewed"]
    );
    let approvals = e.get(&id).await["approvals"].clone();
    assert_eq!(approvals.as_array().unwrap().len(), 3, "{approvals}");
    assert_eq!(
        approvals[0]["withdrawn"]["reason"], "the vendor pulled the build",
        "{approvals}"
    );
    e.verified(&id).await;
    e.stack.shutdown().await;
}

/// Issue 13, point 4: an incident reported on a deployment awaiting CAB (nothing live yet) shows
/// on the CAB queue, blocks every approval (409 `INCIDENT_OPEN`) and so the dispatch; once it is
/// resolved the quorum can be reached and the ring goes live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_on_a_deployment_awaiting_cab_blocks_its_approval_and_dispatch() {
    let e = start().await;
    let id = e.submit(sample("high-risk")).await;
    assert_eq!(e.settled(&id).await, "awaiting_cab 1");
    let r = e
        .publisher
        .report_incident(&id, "high", "Crashes Outlook on launch in the lab", None)
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let incident = r.body["incident"]["id"].as_str().unwrap().to_owned();
    assert_eq!(e.state(&id).await, "awaiting_cab 1");

    let queue = e.cab[0].cab_queue().await.unwrap();
    assert!(queue.ok(), "{}", queue.body);
    let entry = queue.body["awaiting_cab"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|q| q["deployment_id"] == id.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("{id} not on the CAB queue: {}", queue.body));
    assert_eq!(
        entry["open_incidents"][0]["id"],
        incident.as_str(),
        "{entry}"
    );

    for member in &e.cab {
        let r = approve(&e, &id, member).await;
        assert_eq!(r.status, 409, "{}", r.body);
        assert_eq!(r.body["error"]["code"], "INCIDENT_OPEN", "{}", r.body);
    }
    e.step(6).await;
    assert_eq!(e.settled(&id).await, "awaiting_cab 1");
    assert!(e.stack.sims.intune.apps().is_empty());
    assert!(!kinds(&e, &id).await.contains(&"cab.decided".to_owned()));

    let r = e
        .security
        .resolve_incident(&id, &incident, "A lab image problem, not the package")
        .await
        .unwrap();
    assert!(r.ok(), "{}", r.body);
    for member in &e.cab[..2] {
        let r = approve(&e, &id, member).await;
        assert!(r.ok(), "{}", r.body);
        if r.body["state"]["state"] != "awaiting_cab" {
            break;
        }
    }
    assert_eq!(e.settled(&id).await, "in_ring 1");
    assert!(!e.stack.sims.intune.apps().is_empty());
    e.stack.shutdown().await;
}

/// Issue 13, point 7: the exception request the review found (about 23 large compensating
/// controls) is refused whole with 413 naming the field, nothing of it is written, and the
/// deployment can still be halted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_exception_request_is_413_naming_the_field_and_nothing_is_written() {
    let e = start().await;
    let id = e.submit(sample("low-risk")).await;
    assert_eq!(e.settled(&id).await, "in_ring 1");
    let before = e.get(&id).await["exceptions"].clone();
    let control = "Port 443 blocked at the perimeter firewall for this package. ".repeat(64);
    let r = e
        .publisher
        .request_exception(
            &id,
            &json!({
                "kind": "cross_boundary",
                "justification": "The vendor's update service sits in another tenant.",
                "compensating_controls": vec![control; 23],
                "expires_in_days": 30
            }),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "PAYLOAD_TOO_LARGE", "{}", r.body);
    assert_eq!(
        r.body["error"]["field"], "compensating_controls",
        "{}",
        r.body
    );
    assert_eq!(e.get(&id).await["exceptions"], before);
    // Eleven controls (one over the limit) within the size: 400 naming the list.
    let r = e
        .publisher
        .request_exception(
            &id,
            &json!({
                "kind": "cross_boundary",
                "justification": "The vendor's update service sits in another tenant.",
                "compensating_controls": vec!["egress allow-list"; 11],
                "expires_in_days": 30
            }),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.body["error"]["field"], "compensating_controls",
        "{}",
        r.body
    );
    // The deployment still stops.
    let r = e
        .security
        .report_incident(&id, "high", "Beacons to an unknown host", None)
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(e.state(&id).await, "halted 1");
    e.stack.shutdown().await;
}
