//! Exceptions: a waived gate or policy, approved by a Security Reviewer (and CAB where the policy
//! says), justified, with compensating controls, and with an expiry. An expired exception no
//! longer counts: whatever depended on it is blocked again.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use time::Duration;

use crate::cab::Role;
use crate::evidence::RequestedException;
use crate::gates::GateKind;
use crate::ids::{ActorId, DeploymentId, ExceptionId};
use crate::policy::ExceptionPolicy;
use crate::ring::Ring;
use crate::risk::RiskScore;
use crate::time::Timestamp;

string_enum!(
    ExceptionKind {
        /// Publish despite a critical finding.
        VulnerabilityScan => "vulnerability_scan",
        /// Publish an unsigned or self-signed package.
        UnsignedPackage => "unsigned_package",
        /// Deploy across an organisational or security boundary.
        CrossBoundary => "cross_boundary",
        /// Promote although one gate of one ring is not met.
        GateOverride => "gate_override",
    }
);

/// One approval of an exception, in the role the approver acted in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExceptionApproval {
    pub approver: ActorId,
    pub role: Role,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExceptionRejection {
    pub by: ActorId,
    pub at: Timestamp,
    pub reason: String,
}

/// An exception and its approvals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExceptionRecord {
    pub id: ExceptionId,
    pub deployment_id: DeploymentId,
    pub kind: ExceptionKind,
    pub justification: String,
    pub compensating_controls: Vec<String>,
    /// For `gate_override`: the ring and gate waived.
    pub ring: Option<Ring>,
    pub gate: Option<GateKind>,
    /// Break-glass: needs more distinct approvers.
    pub break_glass: bool,
    pub requested_by: ActorId,
    pub requested_at: Timestamp,
    pub expires_at: Timestamp,
    pub approvals: Vec<ExceptionApproval>,
    pub rejection: Option<ExceptionRejection>,
    pub extensions: u8,
}

/// The facts about the deployment that decide who must approve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExceptionContext {
    pub score: RiskScore,
    pub privileged: bool,
}

/// Who still has to approve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalNeeds {
    pub security_reviewer: bool,
    pub cab: bool,
    /// Distinct approvers still missing (break-glass needs more than one).
    pub more_approvers: u8,
}

impl ApprovalNeeds {
    pub fn satisfied(&self) -> bool {
        !self.security_reviewer && !self.cab && self.more_approvers == 0
    }
}

string_enum!(
    ExceptionStatus {
        Pending => "pending",
        Approved => "approved",
        Rejected => "rejected",
        Expired => "expired",
    }
);

/// An exception request or decision that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExceptionError {
    #[error("a gate_override exception must name the ring and the gate it waives")]
    GateOverrideNeedsScope,
    #[error("the {0} gate cannot be overridden by an exception")]
    GateNotOverridable(GateKind),
    #[error("expiry must be in the future and at most {max_days} days away")]
    ExpiryTooLong { max_days: i64 },
    #[error("{0} requested this exception and may not approve it")]
    SelfApproval(ActorId),
    #[error("{0} submitted this deployment and may not decide on its exceptions")]
    OwnSubmission(ActorId),
    #[error("{0} has already approved this exception")]
    AlreadyApproved(ActorId),
    #[error(
        "an approver must be a security reviewer, or a CAB member where CAB approval is also needed"
    )]
    RoleNotPermitted,
    #[error("the exception is {0} and can no longer be decided")]
    NotPending(ExceptionStatus),
    #[error("the exception is {0}; only an approved, unexpired exception can be extended")]
    NotExtendable(ExceptionStatus),
    #[error("an extension may add at most {max_days} days")]
    ExtensionTooLong { max_days: i64 },
    #[error("the exception has already been extended {0} time(s), the most allowed")]
    TooManyExtensions(u8),
    #[error("a rejection needs a reason")]
    RejectionWithoutReason,
}

impl ExceptionError {
    pub fn code(&self) -> &'static str {
        match self {
            ExceptionError::SelfApproval(_)
            | ExceptionError::OwnSubmission(_)
            | ExceptionError::RoleNotPermitted => "FORBIDDEN",
            ExceptionError::NotPending(_) | ExceptionError::AlreadyApproved(_) => "CONFLICT",
            _ => "INVALID_EXCEPTION",
        }
    }
}

/// A request for an exception, as the API or the evidence pack gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExceptionRequest {
    pub requested: RequestedException,
    pub ring: Option<Ring>,
    pub gate: Option<GateKind>,
    pub break_glass: bool,
    /// How long until it expires; the policy default when `None`.
    pub expires_in: Option<Duration>,
}

impl ExceptionRecord {
    /// Opens a request. The requester cannot later approve it.
    pub fn open(
        id: ExceptionId,
        deployment_id: DeploymentId,
        request: ExceptionRequest,
        requested_by: ActorId,
        now: Timestamp,
        policy: &ExceptionPolicy,
    ) -> Result<ExceptionRecord, ExceptionError> {
        if request.requested.kind == ExceptionKind::GateOverride {
            match request.gate {
                None => return Err(ExceptionError::GateOverrideNeedsScope),
                Some(_) if request.ring.is_none() => {
                    return Err(ExceptionError::GateOverrideNeedsScope);
                }
                Some(g) if !g.overridable() => return Err(ExceptionError::GateNotOverridable(g)),
                Some(_) => {}
            }
        }
        let lifetime = request.expires_in.unwrap_or(policy.default_expiry);
        if lifetime <= Duration::ZERO || lifetime > policy.max_expiry {
            return Err(ExceptionError::ExpiryTooLong {
                max_days: policy.max_expiry.whole_days(),
            });
        }
        let is_gate_override = request.requested.kind == ExceptionKind::GateOverride;
        Ok(ExceptionRecord {
            id,
            deployment_id,
            kind: request.requested.kind,
            justification: request.requested.justification,
            compensating_controls: request.requested.compensating_controls,
            ring: if is_gate_override { request.ring } else { None },
            gate: if is_gate_override { request.gate } else { None },
            break_glass: request.break_glass,
            requested_by,
            requested_at: now,
            expires_at: now.plus(lifetime),
            approvals: Vec::new(),
            rejection: None,
            extensions: 0,
        })
    }

    fn cab_needed(&self, ctx: ExceptionContext, policy: &ExceptionPolicy) -> bool {
        policy.cab_also_for_types.contains(&self.kind)
            || ctx.score.value() > policy.cab_also_when_risk_above
            || (ctx.privileged && policy.cab_also_when_privileged)
    }

    /// Who still has to approve.
    pub fn needs(&self, ctx: ExceptionContext, policy: &ExceptionPolicy) -> ApprovalNeeds {
        let has = |role: Role| self.approvals.iter().any(|a| a.role == role);
        let distinct: BTreeSet<&ActorId> = self.approvals.iter().map(|a| &a.approver).collect();
        let security_reviewer = !has(Role::SecurityReviewer);
        let cab = self.cab_needed(ctx, policy) && !has(Role::Cab);
        let required_people = if self.break_glass {
            policy.break_glass_distinct_approvers
        } else {
            1
        };
        let by_roles = u8::from(security_reviewer) + u8::from(cab);
        let have = u8::try_from(distinct.len()).unwrap_or(u8::MAX);
        ApprovalNeeds {
            security_reviewer,
            cab,
            more_approvers: required_people
                .saturating_sub(have)
                .saturating_sub(by_roles),
        }
    }

    pub fn status(
        &self,
        now: Timestamp,
        ctx: ExceptionContext,
        policy: &ExceptionPolicy,
    ) -> ExceptionStatus {
        if self.rejection.is_some() {
            ExceptionStatus::Rejected
        } else if now >= self.expires_at {
            ExceptionStatus::Expired
        } else if self.needs(ctx, policy).satisfied() {
            ExceptionStatus::Approved
        } else {
            ExceptionStatus::Pending
        }
    }

    /// In effect now: approved and not expired.
    pub fn is_effective(
        &self,
        now: Timestamp,
        ctx: ExceptionContext,
        policy: &ExceptionPolicy,
    ) -> bool {
        self.status(now, ctx, policy) == ExceptionStatus::Approved
    }

    /// Records an approval. The approver acts as Security Reviewer if that approval is still
    /// missing and they hold the role, else as CAB if that is missing, else (break-glass) as
    /// whichever of the two roles they hold. Neither the requester nor the deployment's submitter
    /// (`submitter`) may approve.
    pub fn approve(
        &mut self,
        approver: &ActorId,
        roles: &[Role],
        submitter: &ActorId,
        now: Timestamp,
        ctx: ExceptionContext,
        policy: &ExceptionPolicy,
    ) -> Result<Role, ExceptionError> {
        let status = self.status(now, ctx, policy);
        if status != ExceptionStatus::Pending {
            return Err(ExceptionError::NotPending(status));
        }
        self.separate(approver, submitter)?;
        if self.approvals.iter().any(|a| &a.approver == approver) {
            return Err(ExceptionError::AlreadyApproved(approver.clone()));
        }
        let needs = self.needs(ctx, policy);
        let holds = |r: Role| roles.contains(&r);
        let role = if needs.security_reviewer && holds(Role::SecurityReviewer) {
            Role::SecurityReviewer
        } else if needs.cab && holds(Role::Cab) {
            Role::Cab
        } else if needs.more_approvers > 0 && holds(Role::SecurityReviewer) {
            Role::SecurityReviewer
        } else if needs.more_approvers > 0 && holds(Role::Cab) {
            Role::Cab
        } else {
            return Err(ExceptionError::RoleNotPermitted);
        };
        self.approvals.push(ExceptionApproval {
            approver: approver.clone(),
            role,
            at: now,
        });
        Ok(role)
    }

    /// Separation of duties: nobody decides on an exception they requested, nor on one for a
    /// deployment they submitted.
    fn separate(&self, who: &ActorId, submitter: &ActorId) -> Result<(), ExceptionError> {
        if who == &self.requested_by {
            return Err(ExceptionError::SelfApproval(who.clone()));
        }
        if who == submitter {
            return Err(ExceptionError::OwnSubmission(who.clone()));
        }
        Ok(())
    }

    /// Rejects a pending exception (Security Reviewer or CAB; neither the requester nor the
    /// deployment's submitter).
    #[allow(clippy::too_many_arguments)] // who decides, on whose submission, and the facts
    pub fn reject(
        &mut self,
        by: &ActorId,
        roles: &[Role],
        submitter: &ActorId,
        reason: &str,
        now: Timestamp,
        ctx: ExceptionContext,
        policy: &ExceptionPolicy,
    ) -> Result<(), ExceptionError> {
        let status = self.status(now, ctx, policy);
        if status != ExceptionStatus::Pending {
            return Err(ExceptionError::NotPending(status));
        }
        if !roles.contains(&Role::SecurityReviewer) && !roles.contains(&Role::Cab) {
            return Err(ExceptionError::RoleNotPermitted);
        }
        self.separate(by, submitter)?;
        if reason.trim().is_empty() {
            return Err(ExceptionError::RejectionWithoutReason);
        }
        self.rejection = Some(ExceptionRejection {
            by: by.clone(),
            at: now,
            reason: reason.to_owned(),
        });
        Ok(())
    }

    /// Extends an approved, unexpired exception (Security Reviewer; neither the requester nor the
    /// deployment's submitter).
    #[allow(clippy::too_many_arguments)] // who decides, on whose submission, and the facts
    pub fn extend(
        &mut self,
        by: &ActorId,
        roles: &[Role],
        submitter: &ActorId,
        extra: Duration,
        now: Timestamp,
        ctx: ExceptionContext,
        policy: &ExceptionPolicy,
    ) -> Result<Timestamp, ExceptionError> {
        let status = self.status(now, ctx, policy);
        if status != ExceptionStatus::Approved {
            return Err(ExceptionError::NotExtendable(status));
        }
        if !roles.contains(&Role::SecurityReviewer) {
            return Err(ExceptionError::RoleNotPermitted);
        }
        self.separate(by, submitter)?;
        if extra <= Duration::ZERO || extra > policy.max_extension {
            return Err(ExceptionError::ExtensionTooLong {
                max_days: policy.max_extension.whole_days(),
            });
        }
        if self.extensions >= policy.max_extensions {
            return Err(ExceptionError::TooManyExtensions(self.extensions));
        }
        self.extensions += 1;
        self.expires_at = self.expires_at.plus(extra);
        Ok(self.expires_at)
    }
}

/// What the exceptions in effect now waive.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Waivers {
    pub vulnerability_scan: bool,
    pub unsigned_package: bool,
    pub cross_boundary: bool,
    /// `(ring, gate, exception)` for each gate override in effect.
    pub gate_overrides: Vec<(Ring, GateKind, ExceptionId)>,
}

impl Waivers {
    /// The exceptions among `records` that are in effect at `now`.
    pub fn in_effect(
        records: &[ExceptionRecord],
        now: Timestamp,
        ctx: ExceptionContext,
        policy: &ExceptionPolicy,
    ) -> Waivers {
        let mut w = Waivers::default();
        for r in records.iter().filter(|r| r.is_effective(now, ctx, policy)) {
            match r.kind {
                ExceptionKind::VulnerabilityScan => w.vulnerability_scan = true,
                ExceptionKind::UnsignedPackage => w.unsigned_package = true,
                ExceptionKind::CrossBoundary => w.cross_boundary = true,
                ExceptionKind::GateOverride => {
                    if let (Some(ring), Some(gate)) = (r.ring, r.gate) {
                        w.gate_overrides.push((ring, gate, r.id.clone()));
                    }
                }
            }
        }
        w
    }

    /// The exception waiving `gate` in `ring`, if one is in effect.
    pub fn gate_override(&self, ring: Ring, gate: GateKind) -> Option<&ExceptionId> {
        self.gate_overrides
            .iter()
            .find(|(r, g, _)| *r == ring && *g == gate)
            .map(|(_, _, id)| id)
    }
}
