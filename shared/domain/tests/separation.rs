//! Issue 13, points 1 and 3: nobody decides on their own submission (CAB, exceptions, extensions,
//! incident resolution), and an approval that expired or was withdrawn may be given again.

mod common;

use common::{actor, context, policy, sample, scored, t0, with_class};
use eucora_domain::cab::{
    BlastRadiusClass, CabDecision, CabStatus, CabVerdict, DecisionContext, DecisionError, Role,
    approval_window, cab_requirement, cab_status, check_decision, is_renewal, withdraw_approval,
};
use eucora_domain::evidence::Submission;
use eucora_domain::exception::{
    ExceptionContext, ExceptionError, ExceptionRecord, ExceptionRequest, ExceptionStatus,
};
use eucora_domain::incident::{ReportedAs, ResolutionError, check_resolution};
use eucora_domain::{ActorId, DeploymentId, ExceptionId, Ring, Timestamp};
use time::Duration;

const SUBMITTER: &str = "packager@corp.example";

fn submitter() -> ActorId {
    actor(SUBMITTER)
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

fn exception_context(s: &Submission) -> ExceptionContext {
    ExceptionContext {
        score: scored(s).score,
        privileged: s.privileged,
    }
}

#[test]
fn the_submitter_holding_security_reviewer_may_not_approve_an_exception_a_colleague_requested() {
    let s = sample("critical-cve");
    let p = policy();
    let ctx = exception_context(&s);
    let mut e = vuln_exception(&s, "colleague@corp.example");
    let both = [Role::Packaging, Role::SecurityReviewer];
    assert_eq!(
        e.approve(&submitter(), &both, &submitter(), t0(), ctx, &p.exceptions),
        Err(ExceptionError::OwnSubmission(submitter()))
    );
    assert!(e.approvals.is_empty());
    assert_eq!(e.status(t0(), ctx, &p.exceptions), ExceptionStatus::Pending);
    // Nor reject it: deciding either way on one's own submission is refused.
    assert_eq!(
        e.reject(
            &submitter(),
            &both,
            &submitter(),
            "not needed",
            t0(),
            ctx,
            &p.exceptions
        ),
        Err(ExceptionError::OwnSubmission(submitter()))
    );
    // A colleague may.
    e.approve(
        &actor("sec-1@corp.example"),
        &[Role::SecurityReviewer],
        &submitter(),
        t0(),
        ctx,
        &p.exceptions,
    )
    .unwrap();
}

#[test]
fn the_submitter_may_not_extend_an_exception_on_their_deployment() {
    let s = sample("critical-cve");
    let p = policy();
    let ctx = exception_context(&s);
    let mut e = vuln_exception(&s, "colleague@corp.example");
    e.approve(
        &actor("sec-1@corp.example"),
        &[Role::SecurityReviewer],
        &submitter(),
        t0(),
        ctx,
        &p.exceptions,
    )
    .unwrap();
    e.approve(
        &actor("cab-1@corp.example"),
        &[Role::Cab],
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
    assert_eq!(
        e.extend(
            &submitter(),
            &[Role::Packaging, Role::SecurityReviewer],
            &submitter(),
            Duration::days(10),
            t0(),
            ctx,
            &p.exceptions
        ),
        Err(ExceptionError::OwnSubmission(submitter()))
    );
    assert_eq!(e.extensions, 0);
}

#[test]
fn a_security_reviewers_incident_is_resolved_only_by_a_security_reviewer() {
    let reported_as = ReportedAs::of(&[Role::SecurityReviewer]);
    assert_eq!(reported_as, ReportedAs::SecurityReviewer);
    // A publisher cannot lift it.
    assert_eq!(
        check_resolution(
            &actor("pub-1@corp.example"),
            &[Role::Publisher],
            reported_as,
            &submitter()
        ),
        Err(ResolutionError::SecurityReviewerRequired)
    );
    // Another security reviewer, or the reporter, can.
    for who in ["sec-2@corp.example", "sec-1@corp.example"] {
        check_resolution(
            &actor(who),
            &[Role::SecurityReviewer],
            reported_as,
            &submitter(),
        )
        .unwrap();
    }
    // A reporter holding both roles reports as a security reviewer.
    assert_eq!(
        ReportedAs::of(&[Role::Publisher, Role::SecurityReviewer]),
        ReportedAs::SecurityReviewer
    );
    // A publisher's incident may be resolved by a publisher.
    check_resolution(
        &actor("pub-2@corp.example"),
        &[Role::Publisher],
        ReportedAs::of(&[Role::Publisher]),
        &submitter(),
    )
    .unwrap();
}

#[test]
fn the_submitter_never_resolves_an_incident_on_their_deployment() {
    for reported_as in [ReportedAs::Publisher, ReportedAs::SecurityReviewer] {
        assert_eq!(
            check_resolution(
                &submitter(),
                &[Role::Packaging, Role::Publisher, Role::SecurityReviewer],
                reported_as,
                &submitter()
            ),
            Err(ResolutionError::OwnSubmission(submitter()))
        );
    }
}

fn approval(s: &Submission, who: &str, when: Timestamp) -> CabDecision {
    CabDecision {
        ring: Ring::Canary,
        approver: actor(who),
        verdict: CabVerdict::Approve,
        conditions: vec![],
        comment: None,
        evidence_hash: s.content_hash(),
        decided_at: when,
        withdrawn: None,
    }
}

/// Checks `d` against the recorded decisions and records it, as the service does.
fn decide(
    s: &Submission,
    d: CabDecision,
    recorded: &mut Vec<CabDecision>,
) -> Result<(), DecisionError> {
    let p = policy();
    let req = cab_requirement(d.ring, context(s), &p.cab);
    check_decision(
        &d,
        true,
        DecisionContext {
            submitter: &submitter(),
            evidence_hash: &s.content_hash(),
            plan: &s.evidence.rollout,
            requirement: &req,
            earlier: recorded,
            window: approval_window(s.urgency, &p.cab),
            open_incidents: &[],
        },
    )?;
    recorded.push(d);
    Ok(())
}

fn status(s: &Submission, decisions: &[CabDecision], now: Timestamp) -> CabStatus {
    let p = policy();
    cab_status(
        &cab_requirement(Ring::Canary, context(s), &p.cab),
        decisions,
        &submitter(),
        &s.content_hash(),
        now,
        approval_window(s.urgency, &p.cab),
    )
}

fn h(hours: i64) -> Timestamp {
    t0().plus(Duration::hours(hours))
}

#[test]
fn a_quorum_of_three_is_reached_across_60_hours_with_a_renewed_approval() {
    let s = with_class(sample("low-risk"), BlastRadiusClass::CriticalInfrastructure);
    let p = policy();
    assert_eq!(cab_requirement(Ring::Canary, context(&s), &p.cab).quorum, 3);
    assert_eq!(approval_window(s.urgency, &p.cab), Duration::hours(48));
    let mut recorded = Vec::new();

    decide(&s, approval(&s, "cab-a@corp.example", h(0)), &mut recorded).unwrap();
    decide(&s, approval(&s, "cab-b@corp.example", h(30)), &mut recorded).unwrap();
    // Still standing: A may not approve twice.
    assert!(matches!(
        decide(&s, approval(&s, "cab-a@corp.example", h(40)), &mut recorded),
        Err(DecisionError::AlreadyDecided { .. })
    ));
    // A's approval expires at 48 hours.
    assert_eq!(
        status(&s, &recorded, h(49)),
        CabStatus::Pending {
            approvals: 1,
            quorum: 3
        }
    );
    // A renews at 55 hours.
    let renewal = approval(&s, "cab-a@corp.example", h(55));
    assert!(is_renewal(&renewal, &recorded));
    decide(&s, renewal, &mut recorded).unwrap();
    assert_eq!(
        status(&s, &recorded, h(55)),
        CabStatus::Pending {
            approvals: 2,
            quorum: 3
        }
    );
    let c = approval(&s, "cab-c@corp.example", h(60));
    assert!(!is_renewal(&c, &recorded));
    decide(&s, c, &mut recorded).unwrap();
    assert!(matches!(
        status(&s, &recorded, h(60)),
        CabStatus::Approved { ref approvers, .. } if approvers.len() == 3
    ));
    // The trail keeps every approval, the expired one included.
    assert_eq!(recorded.len(), 4);
}

#[test]
fn a_withdrawn_approval_stops_counting_and_may_be_given_again() {
    let s = with_class(sample("low-risk"), BlastRadiusClass::BusinessCritical);
    let p = policy();
    let window = approval_window(s.urgency, &p.cab);
    let mut recorded = Vec::new();
    decide(&s, approval(&s, "cab-a@corp.example", h(0)), &mut recorded).unwrap();
    assert_eq!(
        status(&s, &recorded, h(1)),
        CabStatus::Pending {
            approvals: 1,
            quorum: 2
        }
    );

    // Only a CAB member, with a reason, and only an approval standing.
    let a = actor("cab-a@corp.example");
    assert_eq!(
        withdraw_approval(&mut recorded, &a, false, Ring::Canary, "why", h(2), window),
        Err(DecisionError::NotCabMember)
    );
    assert_eq!(
        withdraw_approval(&mut recorded, &a, true, Ring::Canary, " ", h(2), window),
        Err(DecisionError::WithdrawalWithoutReason)
    );
    assert!(matches!(
        withdraw_approval(
            &mut recorded,
            &actor("cab-b@corp.example"),
            true,
            Ring::Canary,
            "why",
            h(2),
            window
        ),
        Err(DecisionError::NoStandingApproval { .. })
    ));

    let withdrawn = withdraw_approval(
        &mut recorded,
        &a,
        true,
        Ring::Canary,
        "the vendor pulled the build",
        h(2),
        window,
    )
    .unwrap();
    assert_eq!(withdrawn.withdrawn.as_ref().unwrap().at, h(2));
    assert_eq!(
        status(&s, &recorded, h(2)),
        CabStatus::Pending {
            approvals: 0,
            quorum: 2
        }
    );
    // B's approval alone does not reach quorum: the withdrawn one does not count.
    decide(&s, approval(&s, "cab-b@corp.example", h(3)), &mut recorded).unwrap();
    assert_eq!(
        status(&s, &recorded, h(3)),
        CabStatus::Pending {
            approvals: 1,
            quorum: 2
        }
    );
    // Nothing left to withdraw twice.
    assert!(matches!(
        withdraw_approval(&mut recorded, &a, true, Ring::Canary, "again", h(3), window),
        Err(DecisionError::NoStandingApproval { .. })
    ));
    // A approves again: a renewal, and quorum.
    let again = approval(&s, "cab-a@corp.example", h(4));
    assert!(is_renewal(&again, &recorded));
    decide(&s, again, &mut recorded).unwrap();
    assert!(status(&s, &recorded, h(4)).allows_entry());
    assert_eq!(recorded.len(), 3);
    assert!(recorded[0].withdrawn.is_some());
}

#[test]
fn a_rejection_stands_for_ever() {
    let s = with_class(sample("low-risk"), BlastRadiusClass::BusinessCritical);
    let mut recorded = Vec::new();
    let reject = CabDecision {
        verdict: CabVerdict::Reject,
        comment: Some("no rollback plan".into()),
        ..approval(&s, "cab-a@corp.example", h(0))
    };
    decide(&s, reject, &mut recorded).unwrap();
    assert!(matches!(
        decide(
            &s,
            approval(&s, "cab-a@corp.example", h(100)),
            &mut recorded
        ),
        Err(DecisionError::AlreadyDecided { .. })
    ));
}
