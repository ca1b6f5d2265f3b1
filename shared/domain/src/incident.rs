//! Who may clear a security incident. An incident halts the rollout and resolving it lets the next
//! gate run resume it, so resolving is a decision and follows separation of duties: the person who
//! submitted the deployment never resolves an incident on it, and an incident reported by a
//! Security Reviewer is resolved only by a Security Reviewer (a publisher cannot lift it).

use serde::{Deserialize, Serialize};

use crate::cab::Role;
use crate::ids::ActorId;

/// The capacity an incident was reported in: `security_reviewer` when the reporter holds that
/// role (whatever else they hold), otherwise `publisher`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ReportedAs {
    Publisher,
    SecurityReviewer,
}

impl ReportedAs {
    /// The capacity of a reporter holding `roles`.
    pub fn of(roles: &[Role]) -> ReportedAs {
        if roles.contains(&Role::SecurityReviewer) {
            ReportedAs::SecurityReviewer
        } else {
            ReportedAs::Publisher
        }
    }
}

/// A resolution that may not be recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolutionError {
    #[error("{0} submitted this deployment and may not resolve an incident on it")]
    OwnSubmission(ActorId),
    #[error(
        "this incident was reported by a security reviewer: a security reviewer must resolve it"
    )]
    SecurityReviewerRequired,
}

/// Checks that `resolver` (holding `roles`) may resolve an incident reported in the capacity
/// `reported_as` on a deployment submitted by `submitter`. The reporter may resolve their own
/// incident (they raised the alarm), within these same rules.
pub fn check_resolution(
    resolver: &ActorId,
    roles: &[Role],
    reported_as: ReportedAs,
    submitter: &ActorId,
) -> Result<(), ResolutionError> {
    if resolver == submitter {
        return Err(ResolutionError::OwnSubmission(resolver.clone()));
    }
    if reported_as == ReportedAs::SecurityReviewer && !roles.contains(&Role::SecurityReviewer) {
        return Err(ResolutionError::SecurityReviewerRequired);
    }
    Ok(())
}
