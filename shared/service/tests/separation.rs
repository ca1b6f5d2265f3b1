//! Issue 13, points 1, 3 and 4 over the in-memory adapters: nobody decides on their own submission
//! (exceptions, incidents), incidents reported by a security reviewer are cleared by one, and CAB
//! approvals that expired or were withdrawn may be given again, with every one in the trail; an
//! open incident blocks scoring's publish decision, CAB approval and dispatch.

use eucora_domain::audit::AuditKind;
use eucora_domain::cab::{CabStatus, CabVerdict, DecisionError, Role};
use eucora_domain::evidence::{Platform, RequestedException};
use eucora_domain::exception::{ExceptionError, ExceptionKind, ExceptionStatus};
use eucora_domain::incident::{ReportedAs, ResolutionError};
use eucora_domain::lifecycle::DeploymentState;
use eucora_domain::{ActorId, DeploymentId, ExceptionId, IncidentId, Ring, Timestamp};
use eucora_service::Actor;
use eucora_service::memory::Memory;
use eucora_service::usecases::cab::{
    DecideError, DecisionInput, WithdrawalInput, decide, withdraw,
};
use eucora_service::usecases::connector::dispatched;
use eucora_service::usecases::exceptions::{self, ExceptionInput, ExceptionOpError};
use eucora_service::usecases::gates::{
    IncidentError, IncidentInput, RunLimits, report_incident, resolve_incident, run,
};
use eucora_service::usecases::read::{audit_trail, deployment};
use eucora_service::usecases::score::score;
use eucora_service::usecases::submit::{SubmitInput, submit};
use eucora_service::usecases::{Services, cab};
use time::Duration;

fn body(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(format!(
        "{}/../../events/deployments/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn svc() -> Services<Memory, Memory> {
    let m = Memory::new();
    Services {
        store: m.clone(),
        queue: m,
        policy: eucora_domain::policy::Policy::bundled(),
    }
}

fn actor(id: &str, roles: &[Role]) -> Actor {
    Actor::new(ActorId::parse(id).unwrap(), roles.iter().copied())
}

fn auditor() -> Actor {
    actor("auditor", &[Role::Auditor])
}

fn t(h: i64) -> Timestamp {
    Timestamp::parse("2026-11-23T09:00:00Z")
        .unwrap()
        .plus(Duration::hours(h))
}

async fn submit_as(
    s: &Services<Memory, Memory>,
    who: &Actor,
    body: &serde_json::Value,
    id: &str,
) -> DeploymentId {
    let text = body.to_string();
    submit(
        s,
        who,
        SubmitInput {
            body: &text,
            idempotency_key: Some(id),
            new_id: DeploymentId::parse(id).unwrap(),
            now: t(0),
        },
    )
    .await
    .unwrap()
    .record
    .id
}

async fn state(s: &Services<Memory, Memory>, id: &DeploymentId) -> DeploymentState {
    deployment(s, &auditor(), id, t(0)).await.unwrap().state
}

#[tokio::test]
async fn the_submitter_holding_security_reviewer_cannot_approve_a_colleagues_exception() {
    let s = svc();
    // Alice packages and is also a security reviewer.
    let alice = actor("alice", &[Role::Packaging, Role::SecurityReviewer]);
    let mut b = body("critical-cve");
    b["evidence"]["exceptions"] = serde_json::json!([]);
    let id = submit_as(&s, &alice, &b, "dep-sod-exc").await;
    assert_eq!(
        score(&s, &id, t(0)).await.unwrap(),
        DeploymentState::PublishBlocked
    );
    // A colleague requests the vulnerability_scan exception.
    let colleague = actor("pub-colleague", &[Role::Publisher]);
    let exc = ExceptionId::parse("dep-sod-exc-x").unwrap();
    exceptions::request(
        &s,
        &colleague,
        &id,
        ExceptionInput {
            requested: RequestedException {
                kind: ExceptionKind::VulnerabilityScan,
                justification: "vendor fix in 2 weeks".into(),
                compensating_controls: vec!["port blocked at the firewall".into()],
            },
            ring: None,
            gate: None,
            break_glass: false,
            expires_in_days: Some(14),
        },
        exc.clone(),
        t(1),
    )
    .await
    .unwrap();

    // Alice may not approve it: it is her own submission.
    let err = exceptions::approve(&s, &alice, &id, &exc, t(2))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ExceptionOpError::Exception(ExceptionError::OwnSubmission(ref who)) if who.as_str() == "alice"
        ),
        "{err}"
    );
    assert_eq!(state(&s, &id).await, DeploymentState::PublishBlocked);
    let view = deployment(&s, &auditor(), &id, t(2)).await.unwrap();
    let e = view.exceptions.iter().find(|e| e.id == exc).unwrap();
    assert!(e.record.approvals.is_empty());
    assert_eq!(e.status, ExceptionStatus::Pending);
}

async fn live_in_ring_1(s: &Services<Memory, Memory>, submitter: &Actor, id: &str) -> DeploymentId {
    let id = submit_as(s, submitter, &body("incident"), id).await;
    score(s, &id, t(0)).await.unwrap();
    dispatched(
        s,
        &id,
        Ring::Canary,
        Platform::Windows,
        serde_json::Value::Null,
        t(0),
    )
    .await
    .unwrap();
    id
}

fn incident() -> IncidentInput {
    IncidentInput {
        severity: "high".into(),
        summary: "data exfiltration suspected".into(),
        reclassify_blast_radius: None,
    }
}

#[tokio::test]
async fn a_publisher_cannot_resolve_a_security_reviewers_incident() {
    let s = svc();
    let id = live_in_ring_1(
        &s,
        &actor("packager-alice", &[Role::Packaging]),
        "dep-inc-sr",
    )
    .await;
    let sec = actor("sec-erin", &[Role::SecurityReviewer]);
    let inc = IncidentId::parse("inc-sr").unwrap();
    let out = report_incident(&s, &sec, &id, incident(), inc.clone(), t(1))
        .await
        .unwrap();
    assert_eq!(out.incident.reported_as, ReportedAs::SecurityReviewer);
    assert_eq!(out.state, DeploymentState::Halted { ring: Ring::Canary });

    let publisher = actor("pub-dan", &[Role::Publisher]);
    let err = resolve_incident(&s, &publisher, &id, &inc, "looks fine", t(2))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            IncidentError::Resolution(ResolutionError::SecurityReviewerRequired)
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("a security reviewer must resolve it")
    );
    // Still open: the gate run keeps the rollout halted.
    run(&s, "test-run", t(3), RunLimits::default())
        .await
        .unwrap();
    assert_eq!(
        state(&s, &id).await,
        DeploymentState::Halted { ring: Ring::Canary }
    );
    // Another security reviewer resolves it.
    let other = actor("sec-frank", &[Role::SecurityReviewer]);
    let out = resolve_incident(&s, &other, &id, &inc, "false positive, confirmed", t(4))
        .await
        .unwrap();
    assert_eq!(out.incident.resolved.unwrap().by.as_str(), "sec-frank");
}

#[tokio::test]
async fn the_submitter_cannot_resolve_an_incident_on_their_own_deployment() {
    let s = svc();
    // Alice packages and also operates rollouts.
    let alice = actor("alice", &[Role::Packaging, Role::Publisher]);
    let id = live_in_ring_1(&s, &alice, "dep-inc-own").await;
    let publisher = actor("pub-dan", &[Role::Publisher]);
    let inc = IncidentId::parse("inc-own").unwrap();
    let out = report_incident(&s, &publisher, &id, incident(), inc.clone(), t(1))
        .await
        .unwrap();
    assert_eq!(out.incident.reported_as, ReportedAs::Publisher);
    let err = resolve_incident(&s, &alice, &id, &inc, "mine, fixed", t(2))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            IncidentError::Resolution(ResolutionError::OwnSubmission(_))
        ),
        "{err}"
    );
    // The reporter may resolve their own report.
    resolve_incident(&s, &publisher, &id, &inc, "config fixed", t(3))
        .await
        .unwrap();
}

/// A deployment awaiting CAB for Ring 1 with the quorum of `class`.
async fn awaiting_cab(
    s: &Services<Memory, Memory>,
    class: &str,
    id: &str,
) -> (DeploymentId, eucora_domain::evidence::EvidenceHash) {
    let mut b = body("high-risk");
    b["business_criticality"] = class.into();
    let id = submit_as(s, &actor("packager-alice", &[Role::Packaging]), &b, id).await;
    assert_eq!(
        score(s, &id, t(0)).await.unwrap(),
        DeploymentState::AwaitingCab { ring: Ring::Canary }
    );
    let hash = deployment(s, &auditor(), &id, t(0))
        .await
        .unwrap()
        .evidence_hash;
    (id, hash)
}

fn approve(hash: &eucora_domain::evidence::EvidenceHash) -> DecisionInput {
    DecisionInput {
        ring: Ring::Canary,
        verdict: CabVerdict::Approve,
        conditions: vec![],
        comment: None,
        evidence_hash: hash.clone(),
    }
}

async fn kinds(s: &Services<Memory, Memory>, id: &DeploymentId) -> Vec<AuditKind> {
    audit_trail(s, &auditor(), id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .filter(|k| {
            matches!(
                k,
                AuditKind::CabDecided | AuditKind::CabRenewed | AuditKind::CabWithdrawn
            )
        })
        .collect()
}

#[tokio::test]
async fn a_quorum_of_three_is_reached_across_60_hours_with_a_renewed_approval() {
    let s = svc();
    let (id, hash) = awaiting_cab(&s, "CRITICAL_INFRASTRUCTURE", "dep-q3").await;
    let (cab_a, cab_b, cab_c) = (
        actor("cab-a", &[Role::Cab]),
        actor("cab-b", &[Role::Cab]),
        actor("cab-c", &[Role::Cab]),
    );
    let d = decide(&s, &cab_a, &id, approve(&hash), t(0)).await.unwrap();
    assert_eq!(
        d.cab_status,
        CabStatus::Pending {
            approvals: 1,
            quorum: 3
        }
    );
    decide(&s, &cab_b, &id, approve(&hash), t(30))
        .await
        .unwrap();
    // A's approval expired at 48 hours; A renews at 55.
    let d = decide(&s, &cab_a, &id, approve(&hash), t(55))
        .await
        .unwrap();
    assert_eq!(
        d.cab_status,
        CabStatus::Pending {
            approvals: 2,
            quorum: 3
        }
    );
    let d = decide(&s, &cab_c, &id, approve(&hash), t(60))
        .await
        .unwrap();
    assert!(
        matches!(d.cab_status, CabStatus::Approved { ref approvers, .. } if approvers.len() == 3),
        "{:?}",
        d.cab_status
    );
    assert_eq!(d.state, DeploymentState::Dispatching { ring: Ring::Canary });
    assert_eq!(
        kinds(&s, &id).await,
        vec![
            AuditKind::CabDecided,
            AuditKind::CabDecided,
            AuditKind::CabRenewed,
            AuditKind::CabDecided
        ]
    );
    let view = deployment(&s, &auditor(), &id, t(60)).await.unwrap();
    assert_eq!(view.approvals.len(), 4, "every approval is kept");
}

#[tokio::test]
async fn a_withdrawn_approval_stops_counting_and_can_be_given_again() {
    let s = svc();
    let (id, hash) = awaiting_cab(&s, "BUSINESS_CRITICAL", "dep-wd").await;
    let (cab_a, cab_b) = (actor("cab-a", &[Role::Cab]), actor("cab-b", &[Role::Cab]));
    decide(&s, &cab_a, &id, approve(&hash), t(0)).await.unwrap();
    let w = withdraw(
        &s,
        &cab_a,
        &id,
        WithdrawalInput {
            ring: Ring::Canary,
            reason: "the vendor pulled the build".into(),
        },
        t(1),
    )
    .await
    .unwrap();
    assert_eq!(
        w.cab_status,
        CabStatus::Pending {
            approvals: 0,
            quorum: 2
        }
    );
    assert_eq!(w.withdrawn.withdrawn.unwrap().at, t(1));
    // Nothing standing to withdraw again; B has nothing to withdraw.
    for who in [&cab_a, &cab_b] {
        let err = withdraw(
            &s,
            who,
            &id,
            WithdrawalInput {
                ring: Ring::Canary,
                reason: "again".into(),
            },
            t(2),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(
                err,
                DecideError::Decision(DecisionError::NoStandingApproval { .. })
            ),
            "{err}"
        );
    }
    // B alone does not reach quorum: the withdrawn approval does not count.
    let d = decide(&s, &cab_b, &id, approve(&hash), t(3)).await.unwrap();
    assert_eq!(
        d.cab_status,
        CabStatus::Pending {
            approvals: 1,
            quorum: 2
        }
    );
    assert_eq!(
        state(&s, &id).await,
        DeploymentState::AwaitingCab { ring: Ring::Canary }
    );
    // A approves again: quorum.
    let d = decide(&s, &cab_a, &id, approve(&hash), t(4)).await.unwrap();
    assert!(d.cab_status.allows_entry());
    assert_eq!(d.state, DeploymentState::Dispatching { ring: Ring::Canary });
    assert_eq!(
        kinds(&s, &id).await,
        vec![
            AuditKind::CabDecided,
            AuditKind::CabWithdrawn,
            AuditKind::CabDecided,
            AuditKind::CabRenewed
        ]
    );
    // The queue no longer lists it; withdrawing once dispatched is refused.
    assert!(cab::queue(&s, &cab_b, t(4)).await.unwrap().is_empty());
    assert!(matches!(
        withdraw(
            &s,
            &cab_a,
            &id,
            WithdrawalInput {
                ring: Ring::Canary,
                reason: "too late".into(),
            },
            t(5),
        )
        .await,
        Err(DecideError::NotAwaiting { .. })
    ));
}

// Issue 13, point 4: what an incident stops before anything is live.

fn connector_commands(s: &Services<Memory, Memory>, id: &DeploymentId) -> usize {
    s.queue
        .sent()
        .into_iter()
        .filter(|(_, e)| {
            matches!(&e.body, eucora_service::messages::Body::ConnectorCommand(c) if &c.deployment_id == id)
        })
        .count()
}

#[tokio::test]
async fn an_incident_on_a_deployment_awaiting_cab_blocks_its_approval_and_dispatch() {
    let s = svc();
    let (id, hash) = awaiting_cab(&s, "BUSINESS_CRITICAL", "dep-inc-cab").await;
    let publisher = actor("pub-dan", &[Role::Publisher]);
    let inc = IncidentId::parse("inc-cab").unwrap();
    // Nothing is live yet: the incident is recorded, the deployment still awaits CAB.
    let out = report_incident(&s, &publisher, &id, incident(), inc.clone(), t(1))
        .await
        .unwrap();
    assert_eq!(
        out.state,
        DeploymentState::AwaitingCab { ring: Ring::Canary }
    );

    // The CAB queue shows it.
    let cab_a = actor("cab-a", &[Role::Cab]);
    let queue = cab::queue(&s, &cab_a, t(1)).await.unwrap();
    let entry = queue.iter().find(|e| e.deployment_id == id).unwrap();
    assert_eq!(
        entry
            .open_incidents
            .iter()
            .map(|i| &i.id)
            .collect::<Vec<_>>(),
        vec![&inc]
    );

    // No approval while it is open, from anyone; nothing is dispatched.
    for who in ["cab-a", "cab-b"] {
        let err = decide(&s, &actor(who, &[Role::Cab]), &id, approve(&hash), t(2))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, DecideError::Decision(DecisionError::IncidentOpen(ids)) if ids == &vec![inc.clone()]),
            "{err}"
        );
    }
    assert_eq!(
        state(&s, &id).await,
        DeploymentState::AwaitingCab { ring: Ring::Canary }
    );
    assert_eq!(connector_commands(&s, &id), 0);
    assert!(!kinds(&s, &id).await.contains(&AuditKind::CabDecided));

    // Resolved (by someone other than the submitter): the quorum can be reached, and the ring is
    // dispatched.
    resolve_incident(&s, &publisher, &id, &inc, "false alarm", t(3))
        .await
        .unwrap();
    let mut last = None;
    for who in ["cab-a", "cab-b"] {
        last = Some(
            decide(&s, &actor(who, &[Role::Cab]), &id, approve(&hash), t(4))
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        last.unwrap().state,
        DeploymentState::Dispatching { ring: Ring::Canary }
    );
    assert!(connector_commands(&s, &id) > 0);
}

#[tokio::test]
async fn an_incident_on_a_submitted_deployment_blocks_scorings_publish_decision_until_resolved() {
    let s = svc();
    // Low risk: without the incident it would go straight to its first ring.
    let id = submit_as(
        &s,
        &actor("packager-alice", &[Role::Packaging]),
        &body("low-risk"),
        "dep-inc-score",
    )
    .await;
    let sec = actor("sec-sue", &[Role::SecurityReviewer]);
    let inc = IncidentId::parse("inc-score").unwrap();
    report_incident(&s, &sec, &id, incident(), inc.clone(), t(0))
        .await
        .unwrap();
    assert_eq!(
        score(&s, &id, t(0)).await.unwrap(),
        DeploymentState::PublishBlocked
    );
    assert_eq!(connector_commands(&s, &id), 0);
    // A publisher may not lift a security reviewer's incident; a security reviewer may, and the
    // deployment goes on to its first ring.
    assert!(
        resolve_incident(
            &s,
            &actor("pub-dan", &[Role::Publisher]),
            &id,
            &inc,
            "fine",
            t(1)
        )
        .await
        .is_err()
    );
    assert_eq!(state(&s, &id).await, DeploymentState::PublishBlocked);
    let out = resolve_incident(&s, &sec, &id, &inc, "vendor hotfix verified", t(2))
        .await
        .unwrap();
    assert_eq!(
        out.state,
        DeploymentState::Dispatching { ring: Ring::Canary }
    );
    assert!(connector_commands(&s, &id) > 0);
}
