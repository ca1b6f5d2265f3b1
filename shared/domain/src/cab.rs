//! The Change Advisory Board: blast radius, when CAB is required and with what quorum, recording a
//! decision (roles, separation of duties, binding to the evidence hash) and the status of a ring's
//! approval.

use std::collections::BTreeSet;

use serde::Serialize;
use time::Duration;

use crate::evidence::{EvidenceHash, RolloutPlan, Submission, Urgency};
use crate::ids::{ActorId, IncidentId};
use crate::policy::CabPolicy;
use crate::ring::Ring;
use crate::risk::RiskScore;
use crate::time::Timestamp;

string_enum!(
    /// How much of the business a failure would touch. Ordered from least to most critical.
    BlastRadiusClass {
        NonCritical => "NON_CRITICAL",
        ProductivityTools => "PRODUCTIVITY_TOOLS",
        BusinessCritical => "BUSINESS_CRITICAL",
        CriticalInfrastructure => "CRITICAL_INFRASTRUCTURE",
    }
);

string_enum!(
    /// What a person may do. Identity and roles come from the caller's token.
    Role {
        /// Submits deployments with their evidence.
        Packaging => "packaging",
        /// Operates rollouts: reports incidents, records rollback validation, rolls back.
        Publisher => "publisher",
        /// Approves or rejects rings.
        Cab => "cab",
        /// Approves exceptions.
        SecurityReviewer => "security_reviewer",
        /// Reads everything, changes nothing.
        Auditor => "auditor",
    }
);

/// The blast-radius class: the declared business criticality, raised to at least
/// `BUSINESS_CRITICAL` when the rollout targets critical devices, and raised further by any
/// reclassification (an incident may escalate it).
pub fn classify_blast_radius(
    s: &Submission,
    reclassified: Option<BlastRadiusClass>,
) -> BlastRadiusClass {
    let mut class = s.business_criticality;
    if s.evidence.rollout.critical_targets {
        class = class.max(BlastRadiusClass::BusinessCritical);
    }
    if let Some(r) = reclassified {
        class = class.max(r);
    }
    class
}

/// Why CAB is required for a ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum CabReason {
    /// Privileged tooling always needs CAB.
    Privileged,
    /// The blast-radius class always needs CAB.
    BlastRadius { class: BlastRadiusClass },
    /// The risk score is above the threshold.
    RiskAboveThreshold { score: RiskScore, threshold: u8 },
}

/// The facts the CAB rules read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CabContext {
    pub score: RiskScore,
    pub privileged: bool,
    pub class: BlastRadiusClass,
}

/// Whether a ring needs CAB, with how many distinct approvers, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CabRequirement {
    pub ring: Ring,
    pub required: bool,
    pub quorum: u8,
    pub reasons: Vec<CabReason>,
}

/// The CAB rule: privileged → CAB; `BUSINESS_CRITICAL` or `CRITICAL_INFRASTRUCTURE` → CAB;
/// risk above the threshold → CAB; each for every ring from `from_ring` (Ring 1), one approval
/// round per ring. Quorum comes from the blast-radius class.
pub fn cab_requirement(ring: Ring, ctx: CabContext, policy: &CabPolicy) -> CabRequirement {
    let mut reasons = Vec::new();
    if ring >= policy.from_ring {
        if ctx.privileged && policy.privileged_always {
            reasons.push(CabReason::Privileged);
        }
        if policy.always_for_classes.contains(&ctx.class) {
            reasons.push(CabReason::BlastRadius { class: ctx.class });
        }
        if ctx.score.value() > policy.risk_threshold {
            reasons.push(CabReason::RiskAboveThreshold {
                score: ctx.score,
                threshold: policy.risk_threshold,
            });
        }
    }
    let required = !reasons.is_empty();
    CabRequirement {
        ring,
        required,
        quorum: if required {
            policy.quorum(ctx.class)
        } else {
            0
        },
        reasons,
    }
}

string_enum!(
    CabVerdict { Approve => "approve", Reject => "reject" }
);

/// One CAB member's decision on one ring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct CabDecision {
    pub ring: Ring,
    pub approver: ActorId,
    pub verdict: CabVerdict,
    /// Conditions attached to an approval ("outside business hours", "max 500 devices").
    pub conditions: Vec<String>,
    pub comment: Option<String>,
    /// The content hash the approver was shown; the decision is bound to it.
    pub evidence_hash: EvidenceHash,
    pub decided_at: Timestamp,
    /// Set when the approver withdrew this approval: it no longer counts, and the same person may
    /// approve again (a new decision). The decision itself stays in the record and the trail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdrawn: Option<Withdrawal>,
}

/// The withdrawal of an approval by the person who gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Withdrawal {
    pub at: Timestamp,
    pub reason: String,
}

impl CabDecision {
    /// An approval that counts at `now`: an approval, not withdrawn, given within `window`.
    pub fn stands(&self, now: Timestamp, window: Duration) -> bool {
        self.verdict == CabVerdict::Approve
            && self.withdrawn.is_none()
            && now.since(self.decided_at) <= window
    }
}

/// A decision that cannot be recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecisionError {
    #[error("only a CAB member may approve or reject a ring")]
    NotCabMember,
    #[error("{0} submitted this deployment and may not decide on it")]
    SelfApproval(ActorId),
    #[error(
        "the decision was made for evidence {given}, the deployment's evidence is {current}: a changed scope or artifact needs a new submission"
    )]
    ScopeChangeRequired {
        given: EvidenceHash,
        current: EvidenceHash,
    },
    #[error("{0} is not in this deployment's rollout plan")]
    RingNotInPlan(Ring),
    #[error("{ring} does not need CAB approval")]
    NotRequired { ring: Ring },
    #[error(
        "{approver} has already decided on {ring} and that decision still stands (an approval may be given again once it has expired or been withdrawn)"
    )]
    AlreadyDecided { approver: ActorId, ring: Ring },
    #[error("a rejection needs a comment giving the reason")]
    RejectionWithoutReason,
    #[error("{approver} has no approval standing on {ring} to withdraw")]
    NoStandingApproval { approver: ActorId, ring: Ring },
    #[error("a withdrawal needs a reason")]
    WithdrawalWithoutReason,
    #[error(
        "incident {} is open on this deployment: no approval until it is resolved (a rejection may be given)",
        .0.iter().map(IncidentId::as_str).collect::<Vec<_>>().join(", ")
    )]
    IncidentOpen(Vec<IncidentId>),
}

impl DecisionError {
    /// The API error code.
    pub fn code(&self) -> &'static str {
        match self {
            DecisionError::NotCabMember | DecisionError::SelfApproval(_) => "FORBIDDEN",
            DecisionError::ScopeChangeRequired { .. } => "SCOPE_CHANGE_REQUIRED",
            DecisionError::RingNotInPlan(_)
            | DecisionError::RejectionWithoutReason
            | DecisionError::WithdrawalWithoutReason => "INVALID_DECISION",
            DecisionError::NoStandingApproval { .. } => "NO_STANDING_APPROVAL",
            DecisionError::NotRequired { .. } => "CAB_NOT_REQUIRED",
            DecisionError::AlreadyDecided { .. } => "ALREADY_DECIDED",
            DecisionError::IncidentOpen(_) => "INCIDENT_OPEN",
        }
    }
}

/// What a ring's decision is checked against.
#[derive(Debug, Clone, Copy)]
pub struct DecisionContext<'a> {
    pub submitter: &'a ActorId,
    pub evidence_hash: &'a EvidenceHash,
    pub plan: &'a RolloutPlan,
    pub requirement: &'a CabRequirement,
    pub earlier: &'a [CabDecision],
    /// The approval window: an earlier approval older than this no longer stands.
    pub window: Duration,
    /// The incidents open on the deployment: while there is one, no approval (a rejection may).
    pub open_incidents: &'a [IncidentId],
}

/// Checks that a decision may be recorded: a CAB member, not the submitter, for the evidence as it
/// stands, for a ring of the plan that needs CAB, an approval only while no incident is open, and
/// only while the same person has no decision
/// standing on the ring (a rejection always stands; an approval stands until it expires or is
/// withdrawn, after which the same person may approve again: a renewal).
pub fn check_decision(
    decision: &CabDecision,
    approver_is_cab: bool,
    ctx: DecisionContext<'_>,
) -> Result<(), DecisionError> {
    if !approver_is_cab {
        return Err(DecisionError::NotCabMember);
    }
    if &decision.approver == ctx.submitter {
        return Err(DecisionError::SelfApproval(decision.approver.clone()));
    }
    if &decision.evidence_hash != ctx.evidence_hash {
        return Err(DecisionError::ScopeChangeRequired {
            given: decision.evidence_hash.clone(),
            current: ctx.evidence_hash.clone(),
        });
    }
    if !ctx.plan.includes(decision.ring) {
        return Err(DecisionError::RingNotInPlan(decision.ring));
    }
    if !ctx.requirement.required || ctx.requirement.ring != decision.ring {
        return Err(DecisionError::NotRequired {
            ring: decision.ring,
        });
    }
    if decision.verdict == CabVerdict::Approve && !ctx.open_incidents.is_empty() {
        return Err(DecisionError::IncidentOpen(ctx.open_incidents.to_vec()));
    }
    if decision.verdict == CabVerdict::Reject
        && decision
            .comment
            .as_deref()
            .is_none_or(|c| c.trim().is_empty())
    {
        return Err(DecisionError::RejectionWithoutReason);
    }
    if ctx.earlier.iter().any(|d| {
        d.ring == decision.ring
            && d.approver == decision.approver
            && (d.verdict == CabVerdict::Reject || d.stands(decision.decided_at, ctx.window))
    }) {
        return Err(DecisionError::AlreadyDecided {
            approver: decision.approver.clone(),
            ring: decision.ring,
        });
    }
    Ok(())
}

/// The decision renews an earlier approval by the same person on the same ring (one that expired or
/// was withdrawn).
pub fn is_renewal(decision: &CabDecision, earlier: &[CabDecision]) -> bool {
    decision.verdict == CabVerdict::Approve
        && earlier.iter().any(|d| {
            d.ring == decision.ring
                && d.approver == decision.approver
                && d.verdict == CabVerdict::Approve
        })
}

/// Withdraws `approver`'s approval standing on `ring` at `now` (a CAB member withdraws only their
/// own). The decision stays in `decisions`, marked withdrawn; it no longer counts toward quorum,
/// and the same person may approve again. Returns the withdrawn decision.
pub fn withdraw_approval(
    decisions: &mut [CabDecision],
    approver: &ActorId,
    approver_is_cab: bool,
    ring: Ring,
    reason: &str,
    now: Timestamp,
    window: Duration,
) -> Result<CabDecision, DecisionError> {
    if !approver_is_cab {
        return Err(DecisionError::NotCabMember);
    }
    if reason.trim().is_empty() {
        return Err(DecisionError::WithdrawalWithoutReason);
    }
    let standing = decisions
        .iter_mut()
        .rev()
        .find(|d| d.ring == ring && &d.approver == approver && d.stands(now, window))
        .ok_or_else(|| DecisionError::NoStandingApproval {
            approver: approver.clone(),
            ring,
        })?;
    standing.withdrawn = Some(Withdrawal {
        at: now,
        reason: reason.to_owned(),
    });
    Ok(standing.clone())
}

/// The approval window for an urgency.
pub fn approval_window(urgency: Urgency, policy: &CabPolicy) -> Duration {
    match urgency {
        Urgency::Standard => policy.approval_window_standard,
        Urgency::Urgent => policy.approval_window_urgent,
    }
}

/// Where a ring's CAB approval stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CabStatus {
    NotRequired,
    Approved {
        approvers: Vec<ActorId>,
        conditions: Vec<String>,
    },
    Pending {
        approvals: u8,
        quorum: u8,
    },
    Rejected {
        by: ActorId,
        reason: String,
    },
}

impl CabStatus {
    /// The ring may be entered as far as CAB is concerned.
    pub fn allows_entry(&self) -> bool {
        matches!(self, CabStatus::NotRequired | CabStatus::Approved { .. })
    }
}

/// A ring's CAB status at `now`. Only decisions for this ring and this evidence count, never the
/// submitter's; a rejection blocks; approvals count once per person and only within the approval
/// window (an approval older than the window is stale and must be given again); a withdrawn
/// approval does not count.
pub fn cab_status(
    requirement: &CabRequirement,
    decisions: &[CabDecision],
    submitter: &ActorId,
    evidence_hash: &EvidenceHash,
    now: Timestamp,
    window: Duration,
) -> CabStatus {
    if !requirement.required {
        return CabStatus::NotRequired;
    }
    let relevant = decisions.iter().filter(|d| {
        d.ring == requirement.ring && &d.evidence_hash == evidence_hash && &d.approver != submitter
    });
    let mut approvers = BTreeSet::new();
    let mut conditions = Vec::new();
    for d in relevant {
        match d.verdict {
            CabVerdict::Reject => {
                return CabStatus::Rejected {
                    by: d.approver.clone(),
                    reason: d.comment.clone().unwrap_or_default(),
                };
            }
            CabVerdict::Approve if d.stands(now, window) => {
                if approvers.insert(d.approver.clone()) {
                    conditions.extend(d.conditions.iter().cloned());
                }
            }
            CabVerdict::Approve => {}
        }
    }
    let have = u8::try_from(approvers.len()).unwrap_or(u8::MAX);
    if have >= requirement.quorum {
        CabStatus::Approved {
            approvers: approvers.into_iter().collect(),
            conditions,
        }
    } else {
        CabStatus::Pending {
            approvals: have,
            quorum: requirement.quorum,
        }
    }
}
