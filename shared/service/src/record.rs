//! A deployment as the control plane stores it, and the change set that updates it together with
//! its audit events.

use eucora_domain::audit::{AuditDraft, AuditEvent, AuditKind, ChainHead};
use eucora_domain::cab::{BlastRadiusClass, CabContext, CabDecision, classify_blast_radius};
use eucora_domain::evidence::{EvidenceHash, Submission};
use eucora_domain::exception::{ExceptionContext, ExceptionRecord, Waivers};
use eucora_domain::incident::ReportedAs;
use eucora_domain::lifecycle::{DeploymentState, Lifecycle, LifecycleEvent, TransitionError};
use eucora_domain::policy::Policy;
use eucora_domain::risk::RiskScore;
use eucora_domain::rollback::RollbackValidation;
use eucora_domain::{ActorId, DeploymentId, IncidentId, Ring, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::actor::Actor;

/// The score and its explanation, as recorded when the deployment was scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskRecord {
    pub score: RiskScore,
    pub model_version: String,
    pub policy_version: String,
    /// The full explained assessment (factors, contributions, blockers).
    pub assessment: Value,
    pub scored_at: Timestamp,
}

/// A security incident attributed to the package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Incident {
    pub id: IncidentId,
    pub severity: String,
    pub summary: String,
    pub reported_by: ActorId,
    /// The capacity it was reported in: an incident reported by a security reviewer is resolved
    /// only by a security reviewer. Records from before this field read as `publisher`.
    #[serde(default = "reported_as_publisher")]
    pub reported_as: ReportedAs,
    pub reported_at: Timestamp,
    pub ring: Option<Ring>,
    pub reclassified_as: Option<BlastRadiusClass>,
    pub resolved: Option<Resolution>,
}

fn reported_as_publisher() -> ReportedAs {
    ReportedAs::Publisher
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Resolution {
    pub by: ActorId,
    pub at: Timestamp,
    pub resolution: String,
}

/// The deployment aggregate: everything the rules read, in one item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentRecord {
    pub id: DeploymentId,
    /// Optimistic-concurrency version: each saved change increments it by one.
    pub version: u64,
    pub submission: Submission,
    pub evidence_hash: EvidenceHash,
    pub submitted_by: ActorId,
    pub submitted_at: Timestamp,
    pub lifecycle: Lifecycle,
    pub risk: Option<RiskRecord>,
    pub decisions: Vec<CabDecision>,
    pub exceptions: Vec<ExceptionRecord>,
    pub incidents: Vec<Incident>,
    /// When the deployment entered the ring it is live in.
    pub ring_entered_at: Option<Timestamp>,
    /// Rollback validations recorded in Ring 0, oldest first (at most
    /// [`eucora_domain::rollback::MAX_VALIDATIONS`]). The rollback gate reads the latest; the
    /// packager's `validated_in_ring0` is their statement only. Records from before this field
    /// read as having none.
    #[serde(default)]
    pub rollback_validations: Vec<RollbackValidation>,
    /// Platforms whose connector confirmed the dispatch into the current ring.
    #[serde(default)]
    pub confirmed_platforms: Vec<eucora_domain::evidence::Platform>,
    /// Why the deployment is halted, when it is: `incident`, `gate` or `dispatch`. A dispatch
    /// halted by a permanent platform failure does not resume on its own.
    #[serde(default)]
    pub halt_cause: Option<String>,
    /// The latest gate decision (the full history is in the audit trail).
    pub last_gate: Option<Value>,
    pub audit_head: ChainHead,
    pub updated_at: Timestamp,
}

impl DeploymentRecord {
    pub fn correlation_id(&self) -> &eucora_domain::CorrelationId {
        &self.submission.correlation_id
    }

    /// The blast-radius class now, incidents' reclassifications included.
    pub fn blast_radius(&self) -> BlastRadiusClass {
        let escalation = self
            .incidents
            .iter()
            .filter_map(|i| i.reclassified_as)
            .max();
        classify_blast_radius(&self.submission, escalation)
    }

    pub fn score(&self) -> RiskScore {
        self.risk
            .as_ref()
            .map_or(RiskScore::from_milli_points(100_000), |r| r.score)
    }

    pub fn cab_context(&self) -> CabContext {
        self.cab_context_with(self.score())
    }

    /// The CAB context for a score not yet recorded.
    pub fn cab_context_with(&self, score: RiskScore) -> CabContext {
        CabContext {
            score,
            privileged: self.submission.privileged,
            class: self.blast_radius(),
        }
    }

    pub fn exception_context(&self) -> ExceptionContext {
        ExceptionContext {
            score: self.score(),
            privileged: self.submission.privileged,
        }
    }

    pub fn waivers(&self, now: Timestamp, policy: &Policy) -> Waivers {
        Waivers::in_effect(
            &self.exceptions,
            now,
            self.exception_context(),
            &policy.exceptions,
        )
    }

    /// The incidents not resolved yet.
    pub fn open(&self) -> impl Iterator<Item = &Incident> {
        self.incidents.iter().filter(|i| i.resolved.is_none())
    }

    pub fn open_incidents(&self) -> u32 {
        u32::try_from(self.open().count()).unwrap_or(u32::MAX)
    }

    /// The ids of the incidents not resolved yet.
    pub fn open_incident_ids(&self) -> Vec<IncidentId> {
        self.open().map(|i| i.id.clone()).collect()
    }

    /// The rollback gate's input: the latest recorded validation passed.
    pub fn rollback_validated(&self) -> bool {
        eucora_domain::rollback::is_validated(&self.rollback_validations)
    }

    /// Listed in the CAB queue.
    pub fn awaits_cab(&self) -> bool {
        matches!(self.lifecycle.state, DeploymentState::AwaitingCab { .. })
    }
}

/// A change to one deployment: the new record and the audit events that explain it, saved
/// together or not at all.
#[derive(Debug, Clone)]
pub struct Change {
    pub record: DeploymentRecord,
    pub expected_version: u64,
    pub events: Vec<AuditEvent>,
}

impl Change {
    pub fn new(record: DeploymentRecord) -> Change {
        let expected_version = record.version;
        let mut record = record;
        record.version += 1;
        Change {
            record,
            expected_version,
            events: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Appends an audit event, chained to the trail's head.
    pub fn audit(&mut self, actor: &Actor, kind: AuditKind, detail: Value, now: Timestamp) {
        let head = self.record.audit_head.clone();
        let event = AuditEvent::chain(
            &self.record.id,
            (head.len > 0).then_some(&head),
            AuditDraft {
                at: now,
                actor: actor.id.clone(),
                correlation_id: self.record.submission.correlation_id.clone(),
                kind,
                detail,
            },
        );
        self.record.audit_head = event.head();
        self.record.updated_at = now;
        self.events.push(event);
    }

    /// Applies a lifecycle event and records the state change.
    pub fn transition(
        &mut self,
        actor: &Actor,
        event: LifecycleEvent,
        now: Timestamp,
    ) -> Result<(), TransitionError> {
        let from = self.record.lifecycle.state;
        self.record.lifecycle = self.record.lifecycle.apply(event)?;
        let to = self.record.lifecycle.state;
        // Entering a ring starts its observation; resuming after a halt continues it.
        if matches!(to, DeploymentState::InRing { .. })
            && !matches!(from, DeploymentState::Halted { .. })
        {
            self.record.ring_entered_at = Some(now);
        }
        self.audit(
            actor,
            AuditKind::StateChanged,
            serde_json::json!({ "event": event, "from": from, "to": to }),
            now,
        );
        Ok(())
    }
}
