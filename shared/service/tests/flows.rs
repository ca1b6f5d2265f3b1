//! The use cases end to end over the in-memory adapters: the seed's scenarios at the level of
//! the service, with the same sample submissions the functions and the local run use.

use eucora_domain::cab::{CabVerdict, Role};
use eucora_domain::evidence::{Platform, SiteClass};
use eucora_domain::gates::{DeviceResult, InstallOutcome, Verdict};
use eucora_domain::lifecycle::DeploymentState;
use eucora_domain::{ActorId, DeploymentId, ExceptionId, IncidentId, Ring, Timestamp};
use eucora_service::memory::Memory;
use eucora_service::messages::{Body, ConnectorAction};
use eucora_service::ports::{DeploymentStore, QueueName};
use eucora_service::usecases::cab::{DecideError, DecisionInput, decide};
use eucora_service::usecases::connector::{dispatched, install_results};
use eucora_service::usecases::exceptions;
use eucora_service::usecases::gates::{
    IncidentInput, RunLimits, report_incident, resolve_incident, run,
};
use eucora_service::usecases::read::{audit_trail, deployment, verify_trail};
use eucora_service::usecases::score::score;
use eucora_service::usecases::submit::{SubmitError, SubmitInput, submit};
use eucora_service::usecases::{Services, cab};
use eucora_service::{Actor, Forbidden};
use time::Duration;

fn body(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../../events/deployments/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
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

fn packager() -> Actor {
    actor("packager-alice", &[Role::Packaging])
}

fn t(h: i64) -> Timestamp {
    Timestamp::parse("2026-11-23T09:00:00Z")
        .unwrap()
        .plus(Duration::hours(h))
}

async fn submit_sample(s: &Services<Memory, Memory>, name: &str, id: &str) -> DeploymentId {
    let b = body(name);
    let out = submit(
        s,
        &packager(),
        SubmitInput {
            body: &b,
            idempotency_key: Some(id),
            new_id: DeploymentId::parse(id).unwrap(),
            now: t(0),
        },
    )
    .await
    .unwrap();
    assert!(!out.replayed);
    out.record.id
}

/// A publisher (not the submitter) records a passed rollback run on Ring 0 devices: the rollback
/// gate reads this record, not the packager's claim.
async fn validate_rollback(s: &Services<Memory, Memory>, id: &DeploymentId) {
    let out = eucora_service::usecases::rollback::record_validation(
        s,
        &actor("pub-dan", &[Role::Publisher]),
        id,
        eucora_domain::rollback::ValidationInput {
            devices: vec!["lab-device-1".into()],
            result: eucora_domain::rollback::RollbackResult::Passed,
            notes: None,
        },
        t(0),
    )
    .await
    .unwrap();
    assert!(out.rollback_validated);
}

async fn state(s: &Services<Memory, Memory>, id: &DeploymentId) -> DeploymentState {
    deployment(s, &actor("auditor", &[Role::Auditor]), id, t(0))
        .await
        .unwrap()
        .state
}

async fn installs(
    s: &Services<Memory, Memory>,
    id: &DeploymentId,
    ring: Ring,
    platform: Platform,
    ok: usize,
    failed: usize,
    at: Timestamp,
) {
    let mut results = Vec::new();
    for i in 0..ok + failed {
        results.push(DeviceResult {
            device_id: format!("{platform}-{i}"),
            platform,
            outcome: if i < ok {
                InstallOutcome::Installed
            } else {
                InstallOutcome::Failed
            },
            site_class: SiteClass::Online,
            at,
            last_contact: Some(at),
        });
    }
    let snapshot = eucora_service::ports::StatusSnapshot::of(platform, results, at);
    install_results(s, id, ring, &snapshot).await.unwrap();
}

#[tokio::test]
async fn low_risk_goes_to_ring_1_without_cab_then_gates_promote_it_to_ring_2() {
    let s = svc();
    let id = submit_sample(&s, "low-risk", "dep-low").await;
    validate_rollback(&s, &id).await;
    let sent = s.queue.drain();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, QueueName::Scoring);

    assert_eq!(
        score(&s, &id, t(0)).await.unwrap(),
        DeploymentState::Dispatching { ring: Ring::Canary }
    );
    let sent = s.queue.drain();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, QueueName::Connector(Platform::Windows));
    match &sent[0].1.body {
        Body::ConnectorCommand(c) => {
            assert_eq!((c.ring, c.action), (Ring::Canary, ConnectorAction::Publish));
        }
        other @ Body::ScoreDeployment { .. } => panic!("{other:?}"),
    }
    // Scoring again (a redelivered message) changes nothing but re-sends the pending command.
    score(&s, &id, t(0)).await.unwrap();
    assert_eq!(s.queue.drain().len(), 1);

    assert_eq!(
        dispatched(
            &s,
            &id,
            Ring::Canary,
            Platform::Windows,
            serde_json::json!({"app_id": "a-1"}),
            t(0)
        )
        .await
        .unwrap(),
        DeploymentState::InRing { ring: Ring::Canary }
    );
    installs(&s, &id, Ring::Canary, Platform::Windows, 99, 1, t(10)).await;

    // Not observed long enough yet: hold.
    s.queue.drain();
    let r = run(&s, "test-run", t(24), RunLimits::default())
        .await
        .unwrap();
    assert_eq!(r.evaluated[0].verdict, Some(Verdict::Hold));
    // Each run asks the connectors to refresh the ring's install status.
    let asked: Vec<ConnectorAction> = s
        .queue
        .drain()
        .into_iter()
        .filter_map(|(_, e)| match e.body {
            Body::ConnectorCommand(c) => Some(c.action),
            Body::ScoreDeployment { .. } => None,
        })
        .collect();
    assert_eq!(asked, vec![ConnectorAction::QueryStatus]);
    // 48 h: promote to Ring 2, no CAB.
    let r = run(&s, "test-run", t(48), RunLimits::default())
        .await
        .unwrap();
    assert_eq!(r.evaluated[0].verdict, Some(Verdict::Promote));
    assert_eq!(
        state(&s, &id).await,
        DeploymentState::Dispatching { ring: Ring::Pilot }
    );
    let view = deployment(&s, &actor("auditor", &[Role::Auditor]), &id, t(48))
        .await
        .unwrap();
    assert_eq!(view.current_ring, Some(Ring::Pilot));
    let gate = view.last_gate_decision.unwrap();
    assert_eq!(gate["verdict"], "promote");
    assert_eq!(gate["checks"][0]["threshold"]["value"], 97.0);
    assert_eq!(gate["checks"][0]["actual"]["value"], 99.0);

    // The trail verifies.
    let v = verify_trail(&s, &actor("auditor", &[Role::Auditor]), &id)
        .await
        .unwrap();
    assert!(v.valid, "{:?}", v.message);
    assert!(v.events >= 6);
}

#[tokio::test]
async fn a_repeated_submission_answers_the_first_time_and_a_changed_body_conflicts() {
    let s = svc();
    let id = submit_sample(&s, "low-risk", "key-1").await;
    let b = body("low-risk");
    let again = submit(
        &s,
        &packager(),
        SubmitInput {
            body: &b,
            idempotency_key: Some("key-1"),
            new_id: DeploymentId::parse("dep-other").unwrap(),
            now: t(1),
        },
    )
    .await
    .unwrap();
    assert!(again.replayed);
    assert_eq!(again.record.id, id);
    // Without a key, the correlation id identifies the request.
    let again = submit(
        &s,
        &packager(),
        SubmitInput {
            body: &b,
            idempotency_key: None,
            new_id: DeploymentId::parse("dep-third").unwrap(),
            now: t(1),
        },
    )
    .await
    .unwrap();
    assert_eq!(again.record.id, id);

    let changed = b.replace("\"target_devices\": 1000", "\"target_devices\": 2000");
    let err = submit(
        &s,
        &packager(),
        SubmitInput {
            body: &changed,
            idempotency_key: Some("key-1"),
            new_id: DeploymentId::parse("dep-4").unwrap(),
            now: t(1),
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SubmitError::KeyReused { .. }), "{err}");
    assert!(s.store.deployment_count() == 1);
}

#[tokio::test]
async fn a_lost_scoring_message_is_sent_again_when_the_request_is_repeated() {
    let s = svc();
    let b = body("low-risk");
    s.queue.fail_next_sends(1);
    let input = || SubmitInput {
        body: &b,
        idempotency_key: Some("k"),
        new_id: DeploymentId::parse("dep-q").unwrap(),
        now: t(0),
    };
    assert!(matches!(
        submit(&s, &packager(), input()).await,
        Err(SubmitError::NotQueued { .. })
    ));
    assert!(s.queue.sent().is_empty());
    let again = submit(&s, &packager(), input()).await.unwrap();
    assert!(again.replayed);
    assert_eq!(s.queue.sent().len(), 1);
}

#[tokio::test]
async fn roles_are_checked() {
    let s = svc();
    let b = body("low-risk");
    let err = submit(
        &s,
        &actor("eve", &[Role::Auditor]),
        SubmitInput {
            body: &b,
            idempotency_key: None,
            new_id: DeploymentId::parse("d").unwrap(),
            now: t(0),
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SubmitError::Forbidden(Forbidden { .. })));
    let id = submit_sample(&s, "high-risk", "dep-h").await;
    score(&s, &id, t(0)).await.unwrap();
    let view = deployment(&s, &actor("eve", &[Role::Auditor]), &id, t(0))
        .await
        .unwrap();
    let input = DecisionInput {
        ring: Ring::Canary,
        verdict: CabVerdict::Approve,
        conditions: vec![],
        comment: None,
        evidence_hash: view.evidence_hash,
    };
    let err = decide(&s, &actor("bob", &[Role::Publisher]), &id, input, t(1))
        .await
        .unwrap_err();
    assert!(matches!(err, DecideError::Forbidden(_)));
}

#[tokio::test]
async fn high_risk_needs_cab_for_ring_1_and_again_for_ring_2() {
    let s = svc();
    let id = submit_sample(&s, "high-risk", "dep-high").await;
    validate_rollback(&s, &id).await;
    assert_eq!(
        score(&s, &id, t(0)).await.unwrap(),
        DeploymentState::AwaitingCab { ring: Ring::Canary }
    );
    let cab_bob = actor("cab-bob", &[Role::Cab]);
    let q = cab::queue(&s, &cab_bob, t(1)).await.unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].ring, Ring::Canary);
    let hash = q[0].evidence_hash.clone();

    // The submitter cannot approve even with the CAB role.
    let both = actor("packager-alice", &[Role::Cab, Role::Packaging]);
    let approve = |ring| DecisionInput {
        ring,
        verdict: CabVerdict::Approve,
        conditions: vec!["deploy outside trading hours".into()],
        comment: None,
        evidence_hash: hash.clone(),
    };
    assert!(matches!(
        decide(&s, &both, &id, approve(Ring::Canary), t(1)).await,
        Err(DecideError::Decision(_))
    ));

    let d = decide(&s, &cab_bob, &id, approve(Ring::Canary), t(1))
        .await
        .unwrap();
    assert_eq!(d.state, DeploymentState::Dispatching { ring: Ring::Canary });
    // A repeat is refused and changes nothing.
    assert!(
        decide(&s, &cab_bob, &id, approve(Ring::Canary), t(1))
            .await
            .is_err()
    );

    dispatched(
        &s,
        &id,
        Ring::Canary,
        Platform::Windows,
        serde_json::Value::Null,
        t(2),
    )
    .await
    .unwrap();
    installs(&s, &id, Ring::Canary, Platform::Windows, 100, 0, t(12)).await;
    let r = run(&s, "test-run", t(50), RunLimits::default())
        .await
        .unwrap();
    assert_eq!(r.evaluated[0].verdict, Some(Verdict::Hold));
    assert_eq!(
        state(&s, &id).await,
        DeploymentState::AwaitingCab { ring: Ring::Pilot }
    );
    let view = deployment(&s, &cab_bob, &id, t(50)).await.unwrap();
    assert_eq!(view.current_ring, Some(Ring::Canary));

    let d = decide(&s, &cab_bob, &id, approve(Ring::Pilot), t(51))
        .await
        .unwrap();
    assert_eq!(d.state, DeploymentState::Dispatching { ring: Ring::Pilot });
}

#[tokio::test]
async fn a_rejection_blocks_the_deployment() {
    let s = svc();
    let id = submit_sample(&s, "high-risk", "dep-rej").await;
    score(&s, &id, t(0)).await.unwrap();
    let hash = deployment(&s, &packager(), &id, t(0))
        .await
        .unwrap()
        .evidence_hash;
    let d = decide(
        &s,
        &actor("cab-carol", &[Role::Cab]),
        &id,
        DecisionInput {
            ring: Ring::Canary,
            verdict: CabVerdict::Reject,
            conditions: vec![],
            comment: Some("kernel driver not covered".into()),
            evidence_hash: hash,
        },
        t(1),
    )
    .await
    .unwrap();
    assert_eq!(d.state, DeploymentState::Rejected);
    assert!(
        s.queue
            .drain()
            .iter()
            .all(|(q, _)| *q == QueueName::Scoring)
    );
}

#[tokio::test]
async fn an_incident_halts_and_its_resolution_lets_the_gates_resume_the_rollout() {
    let s = svc();
    let id = submit_sample(&s, "incident", "dep-inc").await;
    validate_rollback(&s, &id).await;
    score(&s, &id, t(0)).await.unwrap();
    dispatched(
        &s,
        &id,
        Ring::Canary,
        Platform::Windows,
        serde_json::Value::Null,
        t(0),
    )
    .await
    .unwrap();
    installs(&s, &id, Ring::Canary, Platform::Windows, 100, 0, t(5)).await;

    let publisher = actor("pub-dan", &[Role::Publisher]);
    let out = report_incident(
        &s,
        &publisher,
        &id,
        IncidentInput {
            severity: "high".into(),
            summary: "crash loop on login".into(),
            reclassify_blast_radius: Some(eucora_domain::cab::BlastRadiusClass::BusinessCritical),
        },
        IncidentId::parse("inc-1").unwrap(),
        t(6),
    )
    .await
    .unwrap();
    assert_eq!(out.state, DeploymentState::Halted { ring: Ring::Canary });
    let view = deployment(&s, &publisher, &id, t(6)).await.unwrap();
    assert_eq!(
        view.blast_radius,
        eucora_domain::cab::BlastRadiusClass::BusinessCritical
    );

    // Halted while the incident is open.
    run(&s, "test-run", t(49), RunLimits::default())
        .await
        .unwrap();
    assert_eq!(
        state(&s, &id).await,
        DeploymentState::Halted { ring: Ring::Canary }
    );

    resolve_incident(
        &s,
        &publisher,
        &id,
        &IncidentId::parse("inc-1").unwrap(),
        "fixed by config",
        t(50),
    )
    .await
    .unwrap();
    // Re-validated: gates pass, but BUSINESS_CRITICAL now needs CAB (quorum 2) for Ring 2.
    run(&s, "test-run", t(51), RunLimits::default())
        .await
        .unwrap();
    assert_eq!(
        state(&s, &id).await,
        DeploymentState::AwaitingCab { ring: Ring::Pilot }
    );
    let q = cab::queue(&s, &actor("cab-bob", &[Role::Cab]), t(51))
        .await
        .unwrap();
    assert_eq!(q.len(), 1);
}

#[tokio::test]
async fn multi_platform_waits_for_both_connectors() {
    let s = svc();
    let id = submit_sample(&s, "multi-platform", "dep-multi").await;
    validate_rollback(&s, &id).await;
    score(&s, &id, t(0)).await.unwrap();
    let queues: Vec<QueueName> = s.queue.drain().into_iter().map(|(q, _)| q).collect();
    assert!(queues.contains(&QueueName::Connector(Platform::Windows)));
    assert!(queues.contains(&QueueName::Connector(Platform::Macos)));
    dispatched(
        &s,
        &id,
        Ring::Canary,
        Platform::Windows,
        serde_json::Value::Null,
        t(0),
    )
    .await
    .unwrap();
    assert_eq!(
        state(&s, &id).await,
        DeploymentState::Dispatching { ring: Ring::Canary }
    );
    // The gate run re-sends only the platform still pending.
    run(&s, "test-run", t(1), RunLimits::default())
        .await
        .unwrap();
    let resent: Vec<QueueName> = s.queue.drain().into_iter().map(|(q, _)| q).collect();
    assert_eq!(resent, vec![QueueName::Connector(Platform::Macos)]);
    dispatched(
        &s,
        &id,
        Ring::Canary,
        Platform::Macos,
        serde_json::Value::Null,
        t(1),
    )
    .await
    .unwrap();
    assert_eq!(
        state(&s, &id).await,
        DeploymentState::InRing { ring: Ring::Canary }
    );
    installs(&s, &id, Ring::Canary, Platform::Windows, 100, 0, t(3)).await;
    // Every Windows PC installed, but Jamf has not reported: the ring holds.
    let r = run(&s, "test-run", t(49), RunLimits::default())
        .await
        .unwrap();
    assert_eq!(r.evaluated[0].verdict, Some(Verdict::Hold));
    assert_eq!(
        state(&s, &id).await,
        DeploymentState::InRing { ring: Ring::Canary }
    );
    let gate = s.store.get(&id).await.unwrap().unwrap().last_gate.unwrap();
    let coverage = gate["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["gate"] == "coverage")
        .unwrap();
    assert_eq!(coverage["status"], "pending", "{gate}");
    assert!(
        coverage["detail"]
            .as_str()
            .unwrap()
            .contains("macos has not reported since the ring began"),
        "{gate}"
    );
    installs(&s, &id, Ring::Canary, Platform::Macos, 50, 0, t(4)).await;
    run(&s, "test-run", t(50), RunLimits::default())
        .await
        .unwrap();
    assert_eq!(
        state(&s, &id).await,
        DeploymentState::Dispatching { ring: Ring::Pilot }
    );
    // One correlation id throughout.
    let trail = audit_trail(&s, &packager(), &id).await.unwrap();
    assert!(
        trail
            .iter()
            .all(|e| e.correlation_id.as_str() == "dp-20261123-0004")
    );
}

#[tokio::test]
async fn a_critical_cve_is_blocked_until_its_exception_is_approved() {
    let s = svc();
    let id = submit_sample(&s, "critical-cve", "dep-cve").await;
    assert_eq!(
        score(&s, &id, t(0)).await.unwrap(),
        DeploymentState::PublishBlocked
    );
    let exc = ExceptionId::parse("dep-cve-exc-1").unwrap();
    let sec = actor("sec-erin", &[Role::SecurityReviewer]);
    let out = exceptions::approve(&s, &sec, &id, &exc, t(1))
        .await
        .unwrap();
    // Risk > 50: CAB must co-approve.
    assert_eq!(out.deployment_state, DeploymentState::PublishBlocked);
    let out = exceptions::approve(&s, &actor("cab-bob", &[Role::Cab]), &id, &exc, t(2))
        .await
        .unwrap();
    assert_eq!(
        out.deployment_state,
        DeploymentState::AwaitingCab { ring: Ring::Canary }
    );
    let view = deployment(&s, &sec, &id, t(2)).await.unwrap();
    assert_eq!(
        view.risk.unwrap()["factors"][4]["level"],
        "critical_with_exception"
    );
}

#[tokio::test]
async fn a_tampered_trail_fails_verification() {
    let s = svc();
    let id = submit_sample(&s, "low-risk", "dep-t").await;
    score(&s, &id, t(0)).await.unwrap();
    let auditor = actor("auditor", &[Role::Auditor]);
    assert!(verify_trail(&s, &auditor, &id).await.unwrap().valid);
    s.store.tamper_audit(&id, |events| {
        events[1].actor = ActorId::parse("mallory").unwrap();
    });
    let v = verify_trail(&s, &auditor, &id).await.unwrap();
    assert!(!v.valid);
    assert!(v.message.unwrap().contains("event 1"));
}

#[tokio::test]
async fn a_dispatch_halted_by_a_permanent_platform_failure_does_not_resume_on_its_own() {
    let s = svc();
    let id = submit_sample(&s, "low-risk", "dep-perm").await;
    score(&s, &id, t(0)).await.unwrap();
    let report = eucora_service::usecases::connector::ConnectorReport {
        halt: Some(
            serde_json::json!({ "error_class": "permanent", "code": "INTUNE_INVALID_PAYLOAD" }),
        ),
        ..Default::default()
    };
    let halted =
        eucora_service::usecases::connector::report(&s, &id, Platform::Windows, &report, t(0))
            .await
            .unwrap();
    assert_eq!(halted, DeploymentState::Halted { ring: Ring::Canary });
    run(&s, "test-run", t(60), RunLimits::default())
        .await
        .unwrap();
    assert_eq!(
        state(&s, &id).await,
        DeploymentState::Halted { ring: Ring::Canary }
    );
}

#[tokio::test]
async fn an_incident_during_dispatch_resumes_into_the_dispatch_not_the_ring() {
    let s = svc();
    let id = submit_sample(&s, "multi-platform", "dep-mid").await;
    score(&s, &id, t(0)).await.unwrap();
    dispatched(
        &s,
        &id,
        Ring::Canary,
        Platform::Windows,
        serde_json::Value::Null,
        t(0),
    )
    .await
    .unwrap();
    let publisher = actor("pub-dan", &[Role::Publisher]);
    let input = IncidentInput {
        severity: "low".into(),
        summary: "helpdesk tickets".into(),
        reclassify_blast_radius: None,
    };
    report_incident(
        &s,
        &publisher,
        &id,
        input,
        IncidentId::parse("inc-9").unwrap(),
        t(1),
    )
    .await
    .unwrap();
    assert_eq!(
        state(&s, &id).await,
        DeploymentState::Halted { ring: Ring::Canary }
    );
    resolve_incident(
        &s,
        &publisher,
        &id,
        &IncidentId::parse("inc-9").unwrap(),
        "false alarm",
        t(2),
    )
    .await
    .unwrap();
    s.queue.drain();
    run(&s, "test-run", t(3), RunLimits::default())
        .await
        .unwrap();
    assert_eq!(
        state(&s, &id).await,
        DeploymentState::Dispatching { ring: Ring::Canary }
    );
    let resent: Vec<QueueName> = s.queue.drain().into_iter().map(|(q, _)| q).collect();
    assert_eq!(
        resent,
        vec![QueueName::Connector(Platform::Macos)],
        "only the platform still to confirm"
    );
}
