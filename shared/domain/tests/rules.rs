//! The seed's CAB rule table, one test per rule, on the sample deployments in `events/`.

mod common;

use common::{actor, at, context, policy, sample, scored, t0, with_class};
use eucora_domain::cab::{
    BlastRadiusClass, CabContext, CabDecision, CabReason, CabStatus, CabVerdict, DecisionContext,
    DecisionError, approval_window, cab_requirement, cab_status, check_decision,
};
use eucora_domain::evidence::{Sha256Hex, Submission};
use eucora_domain::exception::{
    ExceptionContext, ExceptionError, ExceptionKind, ExceptionRecord, ExceptionRequest,
    ExceptionStatus, Waivers,
};
use eucora_domain::lifecycle::{DeploymentState, Lifecycle, LifecycleEvent};
use eucora_domain::risk::{PublishBlocker, RiskScore, Rubric, VulnerabilityLevel, assess};
use eucora_domain::{ActorId, DeploymentId, ExceptionId, Ring, Timestamp};
use time::Duration;

fn approve(s: &Submission, ring: Ring, who: &str, when: Timestamp) -> CabDecision {
    CabDecision {
        ring,
        approver: actor(who),
        verdict: CabVerdict::Approve,
        conditions: vec![],
        comment: None,
        evidence_hash: s.content_hash(),
        decided_at: when,
        withdrawn: None,
    }
}

fn status(s: &Submission, ring: Ring, decisions: &[CabDecision], now: Timestamp) -> CabStatus {
    let p = policy();
    let req = cab_requirement(ring, context(s), &p.cab);
    cab_status(
        &req,
        decisions,
        &actor("packager@corp.example"),
        &s.content_hash(),
        now,
        approval_window(s.urgency, &p.cab),
    )
}

fn record(s: &Submission, d: &CabDecision, earlier: &[CabDecision]) -> Result<(), DecisionError> {
    let p = policy();
    let req = cab_requirement(d.ring, context(s), &p.cab);
    check_decision(
        d,
        true,
        DecisionContext {
            submitter: &actor("packager@corp.example"),
            evidence_hash: &s.content_hash(),
            plan: &s.evidence.rollout,
            requirement: &req,
            earlier,
            window: approval_window(s.urgency, &p.cab),
            open_incidents: &[],
        },
    )
}

#[test]
fn privileged_tooling_needs_cab_whatever_the_score() {
    let s = sample("privileged");
    let score = scored(&s).score;
    assert!(score.value() <= 50, "the sample is low risk ({score})");
    let req = cab_requirement(Ring::Canary, context(&s), &policy().cab);
    assert!(req.required);
    assert_eq!(req.reasons, vec![CabReason::Privileged]);
    assert_eq!(req.quorum, 1);
    // And for every score.
    for v in 0..=100 {
        let ctx = CabContext {
            score: RiskScore::from_milli_points(v * 1000),
            privileged: true,
            class: BlastRadiusClass::NonCritical,
        };
        assert!(
            cab_requirement(Ring::Canary, ctx, &policy().cab).required,
            "score {v}"
        );
    }
}

#[test]
fn business_critical_needs_cab_with_quorum_2() {
    let s = with_class(sample("low-risk"), BlastRadiusClass::BusinessCritical);
    let req = cab_requirement(Ring::Canary, context(&s), &policy().cab);
    assert!(req.required);
    assert_eq!(req.quorum, 2);
    assert!(req.reasons.contains(&CabReason::BlastRadius {
        class: BlastRadiusClass::BusinessCritical
    }));

    let one = [approve(&s, Ring::Canary, "cab-1@corp.example", t0())];
    assert_eq!(
        status(&s, Ring::Canary, &one, t0()),
        CabStatus::Pending {
            approvals: 1,
            quorum: 2
        }
    );

    // The same person approving twice is refused, and counts once if it were stored anyway.
    let again = approve(&s, Ring::Canary, "cab-1@corp.example", t0());
    assert!(matches!(
        record(&s, &again, &one),
        Err(DecisionError::AlreadyDecided { .. })
    ));
    let twice = [one[0].clone(), again];
    assert_eq!(
        status(&s, Ring::Canary, &twice, t0()),
        CabStatus::Pending {
            approvals: 1,
            quorum: 2
        }
    );

    let two = [
        one[0].clone(),
        approve(&s, Ring::Canary, "cab-2@corp.example", t0()),
    ];
    assert!(status(&s, Ring::Canary, &two, t0()).allows_entry());
}

#[test]
fn critical_targets_raise_the_class_to_business_critical() {
    let mut s = sample("low-risk");
    s.evidence.rollout.critical_targets = true;
    assert_eq!(context(&s).class, BlastRadiusClass::BusinessCritical);
}

#[test]
fn critical_infrastructure_needs_quorum_3() {
    let s = with_class(sample("low-risk"), BlastRadiusClass::CriticalInfrastructure);
    assert_eq!(
        cab_requirement(Ring::Canary, context(&s), &policy().cab).quorum,
        3
    );
}

#[test]
fn risk_at_most_50_goes_to_ring_1_without_cab() {
    let s = sample("low-risk");
    assert!(scored(&s).score.value() <= 50);
    let req = cab_requirement(Ring::Canary, context(&s), &policy().cab);
    assert!(!req.required);
    assert_eq!(status(&s, Ring::Canary, &[], t0()), CabStatus::NotRequired);
    // The boundary: 50 is not above the threshold, 51 is.
    let at = |score: u32| CabContext {
        score: RiskScore::from_milli_points(score * 1000),
        privileged: false,
        class: BlastRadiusClass::NonCritical,
    };
    assert!(!cab_requirement(Ring::Canary, at(50), &policy().cab).required);
    assert!(cab_requirement(Ring::Canary, at(51), &policy().cab).required);
}

#[test]
fn risk_above_50_needs_cab_for_ring_1_and_a_second_approval_for_ring_2() {
    let s = sample("high-risk");
    let score = scored(&s).score;
    assert!(score.value() > 50, "the sample is high risk ({score})");
    for ring in [Ring::Canary, Ring::Pilot] {
        let req = cab_requirement(ring, context(&s), &policy().cab);
        assert!(req.required, "{ring}");
        assert!(matches!(
            req.reasons[0],
            CabReason::RiskAboveThreshold { threshold: 50, .. }
        ));
    }
    let ring1 = [approve(&s, Ring::Canary, "cab-1@corp.example", t0())];
    assert!(status(&s, Ring::Canary, &ring1, t0()).allows_entry());
    // Ring 1's approval does not carry over to Ring 2.
    assert_eq!(
        status(&s, Ring::Pilot, &ring1, t0()),
        CabStatus::Pending {
            approvals: 0,
            quorum: 1
        }
    );
    let both = [
        ring1[0].clone(),
        approve(&s, Ring::Pilot, "cab-1@corp.example", t0()),
    ];
    assert!(status(&s, Ring::Pilot, &both, t0()).allows_entry());
    // Ring 0 (the lab) never needs CAB.
    assert!(!cab_requirement(Ring::Lab, context(&s), &policy().cab).required);
}

#[test]
fn an_approval_may_carry_conditions() {
    let s = sample("high-risk");
    let mut d = approve(&s, Ring::Canary, "cab-1@corp.example", t0());
    d.conditions = vec!["deploy outside trading hours".into()];
    match status(&s, Ring::Canary, &[d], t0()) {
        CabStatus::Approved { conditions, .. } => {
            assert_eq!(conditions, vec!["deploy outside trading hours".to_owned()]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_rejection_blocks() {
    let s = sample("high-risk");
    let reject = CabDecision {
        verdict: CabVerdict::Reject,
        comment: Some("rollback plan does not cover the kernel driver".into()),
        ..approve(&s, Ring::Canary, "cab-2@corp.example", t0())
    };
    let decisions = [
        approve(&s, Ring::Canary, "cab-1@corp.example", t0()),
        reject.clone(),
    ];
    assert!(matches!(
        status(&s, Ring::Canary, &decisions, t0()),
        CabStatus::Rejected { .. }
    ));

    let l = Lifecycle::new(Ring::Canary, Ring::Pilot)
        .apply(LifecycleEvent::Scored {
            publish_blocked: false,
            cab_required: true,
        })
        .unwrap()
        .apply(LifecycleEvent::CabRejected { ring: Ring::Canary })
        .unwrap();
    assert_eq!(l.state, DeploymentState::Rejected);
    assert!(
        l.apply(LifecycleEvent::CabApproved { ring: Ring::Canary })
            .is_err()
    );

    // A rejection must say why.
    let bare = CabDecision {
        comment: None,
        ..reject
    };
    assert_eq!(
        record(&s, &bare, &[]),
        Err(DecisionError::RejectionWithoutReason)
    );
}

#[test]
fn an_approval_by_the_submitter_is_refused() {
    let s = sample("high-risk");
    let own = approve(&s, Ring::Canary, "packager@corp.example", t0());
    assert_eq!(
        record(&s, &own, &[]),
        Err(DecisionError::SelfApproval(actor("packager@corp.example")))
    );
    // Not counted even if it were stored.
    assert!(!status(&s, Ring::Canary, &[own], t0()).allows_entry());
}

#[test]
fn only_cab_members_decide() {
    let s = sample("high-risk");
    let p = policy();
    let d = approve(&s, Ring::Canary, "someone@corp.example", t0());
    let req = cab_requirement(Ring::Canary, context(&s), &p.cab);
    let ctx = DecisionContext {
        submitter: &actor("packager@corp.example"),
        evidence_hash: &s.content_hash(),
        plan: &s.evidence.rollout,
        requirement: &req,
        earlier: &[],
        window: approval_window(s.urgency, &p.cab),
        open_incidents: &[],
    };
    assert_eq!(
        check_decision(&d, false, ctx),
        Err(DecisionError::NotCabMember)
    );
}

#[test]
fn an_approval_is_bound_to_the_evidence_hash_it_was_given_for() {
    let s = sample("high-risk");
    let mut d = approve(&s, Ring::Canary, "cab-1@corp.example", t0());
    d.evidence_hash = Sha256Hex::parse(&"ab".repeat(32)).unwrap();
    let err = record(&s, &d, &[]).unwrap_err();
    assert_eq!(err.code(), "SCOPE_CHANGE_REQUIRED");
    assert!(!status(&s, Ring::Canary, &[d], t0()).allows_entry());
}

#[test]
fn an_approval_for_a_ring_outside_the_plan_is_refused() {
    let s = sample("high-risk");
    let d = approve(&s, Ring::Global, "cab-1@corp.example", t0());
    assert_eq!(
        record(&s, &d, &[]),
        Err(DecisionError::RingNotInPlan(Ring::Global))
    );
}

#[test]
fn an_approval_older_than_the_window_is_stale() {
    let mut s = sample("high-risk");
    let d = [approve(&s, Ring::Canary, "cab-1@corp.example", t0())];
    assert!(status(&s, Ring::Canary, &d, t0().plus(Duration::hours(48))).allows_entry());
    assert!(
        !status(
            &s,
            Ring::Canary,
            &d,
            t0().plus(Duration::hours(48) + Duration::seconds(1))
        )
        .allows_entry()
    );
    s.urgency = eucora_domain::evidence::Urgency::Urgent;
    let d = [approve(&s, Ring::Canary, "cab-1@corp.example", t0())];
    assert!(!status(&s, Ring::Canary, &d, t0().plus(Duration::hours(25))).allows_entry());
}

fn vuln_exception(s: &Submission, requested_by: &str) -> ExceptionRecord {
    ExceptionRecord::open(
        ExceptionId::parse("exc-1").unwrap(),
        DeploymentId::parse("dep-1").unwrap(),
        ExceptionRequest {
            requested: s.evidence.exceptions[0].clone(),
            ring: None,
            gate: None,
            break_glass: false,
            expires_in: Some(Duration::days(30)),
        },
        actor(requested_by),
        t0(),
        &policy().exceptions,
    )
    .unwrap()
}

/// Who submitted the sample deployments.
fn submitter() -> ActorId {
    actor("packager@corp.example")
}

fn exception_context(s: &Submission) -> ExceptionContext {
    ExceptionContext {
        score: scored(s).score,
        privileged: s.privileged,
    }
}

#[test]
fn a_critical_cve_without_exception_blocks_publishing() {
    let s = sample("critical-cve");
    let a = scored(&s);
    assert!(a.publish_blocked());
    assert_eq!(
        a.publish_blockers,
        vec![PublishBlocker::CriticalVulnerabilityWithoutException { critical: 1 }]
    );
    assert_eq!(a.factors[4].level, Some("critical_without_exception"));
    assert_eq!(a.factors[4].normalised.per_mille(), 1000);
}

#[test]
fn an_approved_exception_unblocks_and_an_expired_one_no_longer_counts() {
    let s = sample("critical-cve");
    let p = policy();
    let ctx = exception_context(&s);
    assert!(ctx.score.value() > 50, "CAB must co-approve: {}", ctx.score);
    let mut e = vuln_exception(&s, "packager@corp.example");
    let now = t0().plus(Duration::hours(1));

    // Security Reviewer first, then CAB (risk > 50).
    e.approve(
        &actor("sec-1@corp.example"),
        &[eucora_domain::cab::Role::SecurityReviewer],
        &submitter(),
        now,
        ctx,
        &p.exceptions,
    )
    .unwrap();
    assert_eq!(e.status(now, ctx, &p.exceptions), ExceptionStatus::Pending);
    e.approve(
        &actor("cab-1@corp.example"),
        &[eucora_domain::cab::Role::Cab],
        &submitter(),
        now,
        ctx,
        &p.exceptions,
    )
    .unwrap();
    assert_eq!(e.status(now, ctx, &p.exceptions), ExceptionStatus::Approved);

    let waivers = Waivers::in_effect(std::slice::from_ref(&e), now, ctx, &p.exceptions);
    let a = assess(&s, &waivers, &p);
    assert!(!a.publish_blocked());
    assert_eq!(
        a.factors[4].level,
        Some(VulnerabilityLevel::CriticalWithException.key())
    );

    let after = t0().plus(Duration::days(30));
    assert_eq!(
        e.status(after, ctx, &p.exceptions),
        ExceptionStatus::Expired
    );
    let waivers = Waivers::in_effect(std::slice::from_ref(&e), after, ctx, &p.exceptions);
    assert!(assess(&s, &waivers, &p).publish_blocked());
}

#[test]
fn nobody_approves_their_own_exception_and_roles_are_checked() {
    let s = sample("critical-cve");
    let p = policy();
    let ctx = exception_context(&s);
    let mut e = vuln_exception(&s, "sec-1@corp.example");
    let roles = [eucora_domain::cab::Role::SecurityReviewer];
    assert_eq!(
        e.approve(
            &actor("sec-1@corp.example"),
            &roles,
            &submitter(),
            t0(),
            ctx,
            &p.exceptions
        ),
        Err(ExceptionError::SelfApproval(actor("sec-1@corp.example")))
    );
    assert_eq!(
        e.approve(
            &actor("pub-1@corp.example"),
            &[eucora_domain::cab::Role::Publisher],
            &submitter(),
            t0(),
            ctx,
            &p.exceptions
        ),
        Err(ExceptionError::RoleNotPermitted)
    );
}

#[test]
fn break_glass_needs_two_different_approvers() {
    let s = sample("low-risk");
    let p = policy();
    let ctx = exception_context(&s);
    let mut e = ExceptionRecord::open(
        ExceptionId::parse("exc-bg").unwrap(),
        DeploymentId::parse("dep-1").unwrap(),
        ExceptionRequest {
            requested: eucora_domain::evidence::RequestedException {
                kind: ExceptionKind::UnsignedPackage,
                justification: "vendor hotfix, signed build follows".into(),
                compensating_controls: vec!["hash pinned".into()],
            },
            ring: None,
            gate: None,
            break_glass: true,
            expires_in: None,
        },
        actor("packager@corp.example"),
        t0(),
        &p.exceptions,
    )
    .unwrap();
    let sr = [eucora_domain::cab::Role::SecurityReviewer];
    e.approve(
        &actor("sec-1@corp.example"),
        &sr,
        &submitter(),
        t0(),
        ctx,
        &p.exceptions,
    )
    .unwrap();
    assert_eq!(e.status(t0(), ctx, &p.exceptions), ExceptionStatus::Pending);
    assert_eq!(
        e.approve(
            &actor("sec-1@corp.example"),
            &sr,
            &submitter(),
            t0(),
            ctx,
            &p.exceptions
        ),
        Err(ExceptionError::AlreadyApproved(actor("sec-1@corp.example")))
    );
    e.approve(
        &actor("sec-2@corp.example"),
        &sr,
        &submitter(),
        t0(),
        ctx,
        &p.exceptions,
    )
    .unwrap();
    assert_eq!(
        e.status(t0(), ctx, &p.exceptions),
        ExceptionStatus::Approved
    );
    // Default expiry is 90 days.
    assert_eq!(e.expires_at, t0().plus(Duration::days(90)));
}

#[test]
fn an_exception_extends_at_most_once_by_at_most_90_days() {
    let s = sample("critical-cve");
    let p = policy();
    let ctx = exception_context(&s);
    let mut e = vuln_exception(&s, "packager@corp.example");
    let sr = [eucora_domain::cab::Role::SecurityReviewer];
    let cab = [eucora_domain::cab::Role::Cab];
    e.approve(
        &actor("sec-1@corp.example"),
        &sr,
        &submitter(),
        t0(),
        ctx,
        &p.exceptions,
    )
    .unwrap();
    e.approve(
        &actor("cab-1@corp.example"),
        &cab,
        &submitter(),
        t0(),
        ctx,
        &p.exceptions,
    )
    .unwrap();
    let who: ActorId = actor("sec-1@corp.example");
    assert!(matches!(
        e.extend(
            &who,
            &sr,
            &submitter(),
            Duration::days(91),
            t0(),
            ctx,
            &p.exceptions
        ),
        Err(ExceptionError::ExtensionTooLong { max_days: 90 })
    ));
    let until = e
        .extend(
            &who,
            &sr,
            &submitter(),
            Duration::days(90),
            t0(),
            ctx,
            &p.exceptions,
        )
        .unwrap();
    assert_eq!(until, t0().plus(Duration::days(120)));
    assert!(matches!(
        e.extend(
            &who,
            &sr,
            &submitter(),
            Duration::days(1),
            t0(),
            ctx,
            &p.exceptions
        ),
        Err(ExceptionError::TooManyExtensions(1))
    ));
    // An expiry beyond the maximum is refused at request time.
    let too_long = ExceptionRecord::open(
        ExceptionId::parse("exc-2").unwrap(),
        DeploymentId::parse("dep-1").unwrap(),
        ExceptionRequest {
            requested: s.evidence.exceptions[0].clone(),
            ring: None,
            gate: None,
            break_glass: false,
            expires_in: Some(Duration::days(91)),
        },
        actor("packager@corp.example"),
        at("2026-11-23T09:00:00Z"),
        &p.exceptions,
    );
    assert!(matches!(
        too_long,
        Err(ExceptionError::ExpiryTooLong { .. })
    ));
}

#[test]
fn an_unsigned_package_without_exception_blocks_publishing() {
    let mut s = sample("low-risk");
    s.evidence.artifacts[0].signing.status = eucora_domain::evidence::SigningStatus::Unsigned;
    assert_eq!(
        scored(&s).publish_blockers,
        vec![PublishBlocker::UnsignedWithoutException]
    );
    let waivers = Waivers {
        unsigned_package: true,
        ..Waivers::default()
    };
    assert!(!assess(&s, &waivers, &policy()).publish_blocked());
}
