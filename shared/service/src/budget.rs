//! How much a deployment's record may hold.
//!
//! A deployment is one stored item (in DynamoDB at most 400 KB; its audit trail lives in items of
//! its own). What people add to it — the submission, CAB decisions and withdrawals, exceptions and
//! their approvals, rollback validations — stops at a budget below that limit, requests sooner than
//! the decisions that say no. Incidents are bounded apart (at most [`MAX_OPEN_INCIDENTS`] open and
//! the latest [`MAX_RESOLVED_KEPT`] resolved in the record, each kept short; every one whole in the
//! trail), and their room is kept free, so that an incident can always be reported and resolved;
//! what the control plane writes (a gate's halt, a state change, a connector's confirmation) fits
//! in the headroom left after both.
//!
//! The budgets are in bytes of the record as stored (its JSON).

use crate::record::DeploymentRecord;

/// The store's limit on one item.
pub const ITEM_LIMIT: usize = 400 * 1024;

/// Incidents open at once, at most: with one open the deployment is halted (or, not live yet,
/// blocked), so a further report has nothing left to stop.
pub const MAX_OPEN_INCIDENTS: usize = 10;

/// Resolved incidents the record keeps (the latest); older ones are in the audit trail, whole.
pub const MAX_RESOLVED_KEPT: usize = 10;

/// Incidents in the record, at most.
pub const MAX_INCIDENTS: usize = MAX_OPEN_INCIDENTS + MAX_RESOLVED_KEPT;

/// The characters of an incident's summary, and of its resolution, the record keeps (the audit
/// trail keeps the whole text).
pub const INCIDENT_TEXT_KEPT: usize = 280;

/// The most an incident takes in the record: ids and names of at most 128 characters, its kept
/// summary and resolution at 6 bytes a character (JSON's widest escape), times and labels.
pub const INCIDENT_MAX_BYTES: usize = 4 * 128 + 2 * INCIDENT_TEXT_KEPT * 6 + 1024;

/// Room always left for what the control plane writes: a gate's result (replaced at each run), a
/// halt, a state change, a connector's confirmation.
pub const SYSTEM_HEADROOM: usize = 32 * 1024;

/// What a write adds to a deployment, and so which budget it may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Growth {
    /// A new deployment.
    Submission,
    /// A person's request or approval: exception requests, approvals and extensions, CAB
    /// approvals, passed rollback validations.
    Request,
    /// A decision that stops or holds back: CAB rejections and withdrawals, exception rejections,
    /// failed rollback validations. They have room of their own, so that requests filling a
    /// deployment never keep its reviewers from saying no. Incidents are not counted here either:
    /// they are bounded in number and size, and their room is kept free.
    Decision,
}

impl Growth {
    /// The most bytes the record may hold after this write.
    pub const fn budget(self) -> usize {
        match self {
            Growth::Submission => 160 * 1024,
            Growth::Request => 230 * 1024,
            Growth::Decision => 270 * 1024,
        }
    }
}

/// `text` as the record keeps it: at most [`INCIDENT_TEXT_KEPT`] characters, marked when cut.
pub fn kept(text: &str) -> (String, bool) {
    match text.char_indices().nth(INCIDENT_TEXT_KEPT) {
        Some((at, _)) => (format!("{}…", &text[..at]), true),
        None => (text.to_owned(), false),
    }
}

/// The write would take the record past its budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "deployment {deployment_id} cannot hold this {field}: its record would be {size} bytes, over the {budget} bytes it may hold for it (the rest is kept so that incidents, halts and state changes can always be written)"
)]
pub struct RecordFull {
    pub deployment_id: String,
    /// The request's field that brings the most.
    pub field: String,
    pub size: usize,
    pub budget: usize,
}

/// The record's size as stored.
pub fn size(record: &DeploymentRecord) -> usize {
    serde_json::to_vec(record).map_or(usize::MAX, |v| v.len())
}

/// Checks the record, with the write applied, against the write's budget. `field` names what the
/// write adds, for the caller's error.
pub fn check(record: &DeploymentRecord, growth: Growth, field: &str) -> Result<(), RecordFull> {
    let size = size(record);
    let budget = growth.budget();
    if size > budget {
        return Err(RecordFull {
            deployment_id: record.id.to_string(),
            field: field.to_owned(),
            size,
            budget,
        });
    }
    Ok(())
}

/// The path of the part of `v` that takes the most room: from the root, into the largest member
/// while it holds more than half of its parent, stopping at lists (`evidence.exceptions`).
pub fn largest_field(v: &serde_json::Value) -> String {
    let len = |v: &serde_json::Value| serde_json::to_vec(v).map_or(0, |b| b.len());
    let mut path = String::new();
    let mut here = v;
    while let serde_json::Value::Object(map) = here {
        let Some((key, child)) = map.iter().max_by_key(|(_, c)| len(c)) else {
            break;
        };
        if path.is_empty() || len(child) * 2 > len(here) {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(key);
            here = child;
        } else {
            break;
        }
    }
    if path.is_empty() {
        "(body)".to_owned()
    } else {
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_incidents_and_the_control_plane_each_have_their_room() {
        assert!(Growth::Submission.budget() < Growth::Request.budget());
        // Forty kilobytes for the decisions that say no: five at their largest (a comment of 1000
        // characters at 6 bytes, and the rest of the decision).
        assert!(Growth::Decision.budget() - Growth::Request.budget() >= 5 * (6 * 1000 + 1024));
        // The people's budget, every incident the deployment may have at its largest, and the
        // control plane's headroom fit in one item.
        assert!(
            Growth::Decision.budget() + MAX_INCIDENTS * INCIDENT_MAX_BYTES + SYSTEM_HEADROOM
                <= ITEM_LIMIT
        );
    }

    #[test]
    fn long_incident_texts_are_kept_short_and_marked() {
        let (short, cut) = kept("disk full");
        assert_eq!((short.as_str(), cut), ("disk full", false));
        let long = "é".repeat(INCIDENT_TEXT_KEPT + 1);
        let (kept_text, cut) = kept(&long);
        assert!(cut);
        assert_eq!(kept_text.chars().count(), INCIDENT_TEXT_KEPT + 1);
        assert!(kept_text.ends_with('…'));
        assert!(!kept(&"é".repeat(INCIDENT_TEXT_KEPT)).1);
    }

    #[test]
    fn the_largest_field_is_named_down_to_the_list_that_holds_it() {
        let big = "x".repeat(5000);
        let v = serde_json::json!({
            "app": { "name": "a" },
            "evidence": { "exceptions": [{ "justification": big }], "sbom": { "sha256": "0" } },
        });
        assert_eq!(largest_field(&v), "evidence.exceptions");
        let v = serde_json::json!({ "kind": "x", "compensating_controls": [big.clone(), big] });
        assert_eq!(largest_field(&v), "compensating_controls");
        assert_eq!(largest_field(&serde_json::json!([1])), "(body)");
    }
}
