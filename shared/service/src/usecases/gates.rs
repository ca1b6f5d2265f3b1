//! Gate evaluation (the 5-minute schedule) and incidents.
//!
//! Each run (one at a time, under a lease) looks at the deployments in flight, from where the
//! last run stopped, several at once, within a time budget: a deployment live in a ring has its gates
//! evaluated and is promoted, held or halted; a halted one with no open incident is re-validated
//! and resumes if its gates no longer halt; one still dispatching has its commands re-sent. A ring
//! stays watched while CAB decides on the next one and after CAB rejected it (held): its gates are
//! evaluated and a failing one halts it. An
//! incident halts at once; resolving it lets the next run re-validate and resume.

use eucora_domain::audit::AuditKind;
use eucora_domain::cab::{BlastRadiusClass, Role, approval_window, cab_requirement, cab_status};
use eucora_domain::gates::{GateDecision, GateInput, Verdict, evaluate};
use eucora_domain::incident::{ReportedAs, ResolutionError, check_resolution};
use eucora_domain::lifecycle::{DeploymentState, LifecycleEvent, TransitionError};
use eucora_domain::{DeploymentId, IncidentId, Ring, Timestamp};
use serde::Serialize;

use super::read::load;
use super::{CONFLICT_RETRIES, Common, Services, dispatch};
use crate::actor::{Actor, Forbidden};
use crate::budget;
use crate::ports::{
    DeploymentStore, GateRunStore, Queue, QueueError, RunLease, StoreError, TelemetryStore,
};
use crate::record::{Change, DeploymentRecord, Incident, Resolution};

#[derive(Debug, thiserror::Error)]
pub enum GateRunError {
    #[error("deployment {0} not found")]
    NotFound(DeploymentId),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// What one run did to one deployment.
#[derive(Debug, Serialize)]
pub struct Evaluated {
    pub deployment_id: DeploymentId,
    pub ring: Option<Ring>,
    pub verdict: Option<Verdict>,
    pub state: DeploymentState,
}

/// The result of one scheduled run.
#[derive(Debug, Default, Serialize)]
pub struct RunReport {
    pub evaluated: Vec<Evaluated>,
    /// Deployments that could not be evaluated this run (retried next run).
    pub failed: Vec<(DeploymentId, String)>,
    /// Deployments in flight left for the next run: this run's time ran out first. The next
    /// run starts with them.
    pub deferred: usize,
    /// Another run held the lease (until then): this one did nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overlapped: Option<Timestamp>,
}

/// How much one run may do.
#[derive(Debug, Clone, Copy)]
pub struct RunLimits {
    /// Wall-clock time the run may spend starting evaluations: the function's timeout less a
    /// margin for the evaluations in progress and the cursor's write.
    pub budget: std::time::Duration,
    /// Deployments evaluated at once.
    pub concurrency: usize,
    /// At most this many deployments per run, whatever the time.
    pub max_per_run: Option<usize>,
    /// How long the run's lease lasts: past the function's timeout, so that a run that died
    /// without giving it up does not hold the next run back for long.
    pub lease: time::Duration,
}

impl Default for RunLimits {
    /// For a 60-second function: 40 s of starting evaluations, 16 at a time, a 90-second lease.
    fn default() -> Self {
        RunLimits {
            budget: std::time::Duration::from_secs(40),
            concurrency: 16,
            max_per_run: None,
            lease: time::Duration::seconds(90),
        }
    }
}

/// The in-flight ids in the order this run takes them: from the first after `cursor` (where
/// the last run stopped) round to the cursor itself, so that a run cut short by its budget
/// never makes the same deployments wait again.
fn fair_order(mut ids: Vec<DeploymentId>, cursor: Option<&DeploymentId>) -> Vec<DeploymentId> {
    ids.sort();
    ids.dedup();
    if let Some(c) = cursor {
        let start = ids.partition_point(|id| id <= c);
        ids.rotate_left(start);
    }
    ids
}

/// One scheduled run over the deployments in flight: under a lease (runs never overlap), in
/// fair order from where the last run stopped, `limits.concurrency` at a time, until every one
/// is evaluated or the budget is spent.
pub async fn run<S: DeploymentStore + TelemetryStore + GateRunStore, Q: Queue>(
    svc: &Services<S, Q>,
    run_id: &str,
    now: Timestamp,
    limits: RunLimits,
) -> Result<RunReport, StoreError> {
    let cursor = match svc
        .store
        .begin_run(run_id, now, now.plus(limits.lease))
        .await?
    {
        RunLease::Taken { cursor } => cursor,
        RunLease::Busy { until } => {
            tracing::warn!(%until, "another gate run holds the lease: not running");
            return Ok(RunReport {
                overlapped: Some(until),
                ..RunReport::default()
            });
        }
    };
    let order = fair_order(svc.store.in_flight().await?, cursor.as_ref());
    let started = std::time::Instant::now();
    let mut report = RunReport::default();
    let mut last = cursor;
    let mut done = 0;
    for batch in order.chunks(limits.concurrency.max(1)) {
        if started.elapsed() >= limits.budget || limits.max_per_run.is_some_and(|m| done >= m) {
            break;
        }
        let take = limits
            .max_per_run
            .map_or(batch.len(), |m| batch.len().min(m - done));
        let batch = &batch[..take];
        let results =
            futures_util::future::join_all(batch.iter().map(|id| evaluate_one(svc, id, now))).await;
        for (id, result) in batch.iter().zip(results) {
            match result {
                Ok(e) => report.evaluated.push(e),
                Err(e) => {
                    tracing::warn!(deployment_id = %id, error = %e, "gate evaluation failed");
                    report.failed.push((id.clone(), e.to_string()));
                }
            }
        }
        done += batch.len();
        last = batch.last().cloned();
    }
    report.deferred = order.len() - done;
    if report.deferred > 0 {
        tracing::warn!(
            deferred = report.deferred,
            "gate run out of time: the rest go first next run"
        );
    }
    svc.store.end_run(run_id, last.as_ref()).await?;
    Ok(report)
}

fn gate_input_next(
    r: &DeploymentRecord,
    ring: Ring,
    now: Timestamp,
    svc_policy: &eucora_domain::policy::Policy,
) -> Option<(Ring, eucora_domain::cab::CabStatus)> {
    // Held (or halted while held): CAB rejected the next ring, so there is no promotion to judge,
    // only the ring's health (the rejection is not a failing gate).
    if r.lifecycle.held {
        return None;
    }
    let next = ring.next().filter(|n| *n <= r.lifecycle.last_ring)?;
    let requirement = cab_requirement(next, r.cab_context(), &svc_policy.cab);
    let window = approval_window(r.submission.urgency, &svc_policy.cab);
    Some((
        next,
        cab_status(
            &requirement,
            &r.decisions,
            &r.submitted_by,
            &r.evidence_hash,
            now,
            window,
        ),
    ))
}

/// True when the decision differs in substance from the last one recorded (so that a deployment
/// held for days does not write an audit event every five minutes).
fn changed(last: Option<&serde_json::Value>, d: &GateDecision) -> bool {
    let summary = |checks: &serde_json::Value| -> Vec<(String, String)> {
        checks
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|c| {
                        (
                            c["gate"].to_string() + &c["site_class"].to_string(),
                            c["status"].to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let now = serde_json::to_value(d).unwrap_or_default();
    match last {
        None => true,
        Some(l) => {
            l["verdict"] != now["verdict"]
                || l["ring"] != now["ring"]
                || summary(&l["checks"]) != summary(&now["checks"])
        }
    }
}

/// The ring a gate run evaluates, and whether it only watches it: `None` when the deployment waits
/// for people (or for its dispatch). Watched only: the ring is live but not the one the rollout is
/// moving through (CAB is deciding on the next ring, or rejected it): its gates are evaluated and
/// a failing one halts it, nothing else moves.
fn ring_to_evaluate(record: &DeploymentRecord) -> Option<(Ring, bool)> {
    match record.lifecycle.state {
        DeploymentState::InRing { ring } => Some((ring, false)),
        // Halted by an incident (now resolved) or a failed gate: re-validate. A dispatch halted by
        // a permanent platform failure waits for the operator.
        DeploymentState::Halted { ring }
            if record.open_incidents() == 0 && record.halt_cause.as_deref() != Some("dispatch") =>
        {
            Some((ring, false))
        }
        DeploymentState::AwaitingCab { .. } | DeploymentState::Held { .. } => {
            record.lifecycle.live_ring().map(|ring| (ring, true))
        }
        _ => None,
    }
}

/// Evaluates one deployment now.
pub async fn evaluate_one<S: DeploymentStore + TelemetryStore, Q: Queue>(
    svc: &Services<S, Q>,
    id: &DeploymentId,
    now: Timestamp,
) -> Result<Evaluated, GateRunError> {
    let actor = Actor::system("gate-evaluation");
    for attempt in 1..=CONFLICT_RETRIES {
        let record = svc
            .store
            .get(id)
            .await?
            .ok_or_else(|| GateRunError::NotFound(id.clone()))?;
        let Some((ring, watch_only)) = ring_to_evaluate(&record) else {
            // Dispatching: re-send what may have been lost. Anything else waits for people.
            let state = record.lifecycle.state;
            let commands = dispatch::pending_commands(&record);
            dispatch::send(&svc.queue, &record, commands, now).await?;
            return Ok(Evaluated {
                deployment_id: id.clone(),
                ring: state.ring(),
                verdict: None,
                state,
            });
        };
        // Halted before every platform confirmed the ring's dispatch: finish the dispatch first.
        if !watch_only
            && !record
                .submission
                .platforms()
                .iter()
                .all(|p| record.confirmed_platforms.contains(p))
        {
            match resume_dispatch(svc, record, &actor, now).await {
                Err(GateRunError::Store(StoreError::Conflict)) if attempt < CONFLICT_RETRIES => {
                    continue;
                }
                other => return other,
            }
        }
        let snapshots = svc.store.snapshots(id, ring).await?;
        let statuses: Vec<_> = snapshots.iter().map(|s| s.status.clone()).collect();
        let devices: Vec<_> = snapshots.into_iter().flat_map(|s| s.devices).collect();
        let platforms: Vec<_> = record.submission.platforms().into_iter().collect();
        let waivers = record.waivers(now, &svc.policy);
        let next = gate_input_next(&record, ring, now, &svc.policy);
        let decision = evaluate(
            &GateInput {
                ring,
                entered_at: record.ring_entered_at.unwrap_or(record.updated_at),
                now,
                devices: &devices,
                platforms: &platforms,
                statuses: &statuses,
                planned_targets: record.submission.evidence.rollout.target_devices(ring),
                planned_site_class: record.submission.evidence.rollout.site_class,
                open_incidents: record.open_incidents(),
                rollback_validated: record.rollback_validated(),
                next: next.clone(),
                waivers: &waivers,
            },
            &svc.policy,
        );
        let halted = matches!(record.lifecycle.state, DeploymentState::Halted { .. });
        let mut change = Change::new(record);
        let substantive = changed(change.record.last_gate.as_ref(), &decision);
        let decision_json = serde_json::to_value(&decision).unwrap_or_default();
        change.record.last_gate = Some(decision_json.clone());
        if substantive {
            change.audit(&actor, AuditKind::GateEvaluated, decision_json, now);
        }
        if !watch_only {
            apply_verdict(&mut change, &actor, &decision, halted, now)?;
        } else if decision.verdict == Verdict::Halt {
            change.transition(&actor, LifecycleEvent::Halt, now)?;
            change.record.halt_cause = Some("gate".into());
        }
        if change.is_empty() && !substantive {
            // Nothing new: do not rewrite the item.
            refresh_telemetry(svc, &change.record, ring, now).await?;
            return Ok(Evaluated {
                deployment_id: id.clone(),
                ring: Some(ring),
                verdict: Some(decision.verdict),
                state: change.record.lifecycle.state,
            });
        }
        match svc.store.save(&change).await {
            Ok(()) => {
                tracing::info!(deployment_id = %id, ring = ring.number(), verdict = %decision.verdict, state = %change.record.lifecycle.state, "gates evaluated");
                let commands = dispatch::pending_commands(&change.record);
                dispatch::send(&svc.queue, &change.record, commands, now).await?;
                refresh_telemetry(svc, &change.record, ring, now).await?;
                return Ok(Evaluated {
                    deployment_id: id.clone(),
                    ring: Some(ring),
                    verdict: Some(decision.verdict),
                    state: change.record.lifecycle.state,
                });
            }
            Err(StoreError::Conflict) if attempt < CONFLICT_RETRIES => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
}

/// Asks the connectors for the ring's install status, for the next run, while the deployment
/// stays in the ring. Sent only after the decision is saved: the connectors answer at once and
/// write to the deployment (their calls' audit events), so a query sent before the save would race
/// it, and a retried save would send it again.
async fn refresh_telemetry<S, Q: Queue>(
    svc: &Services<S, Q>,
    record: &DeploymentRecord,
    ring: Ring,
    now: Timestamp,
) -> Result<(), GateRunError> {
    // The ring is still live (also while CAB decides on the next one, or after it rejected it).
    let live = match record.lifecycle.state {
        DeploymentState::InRing { ring: r }
        | DeploymentState::Halted { ring: r }
        | DeploymentState::Held { ring: r } => r == ring,
        DeploymentState::AwaitingCab { .. } => record.lifecycle.live_ring() == Some(ring),
        _ => false,
    };
    if live {
        dispatch::query_status(&svc.queue, record, ring, now).await?;
    }
    Ok(())
}

/// A halted ring whose dispatch had not finished goes back to dispatching; the commands still
/// needed are sent again.
async fn resume_dispatch<S: DeploymentStore, Q: Queue>(
    svc: &Services<S, Q>,
    record: DeploymentRecord,
    actor: &Actor,
    now: Timestamp,
) -> Result<Evaluated, GateRunError> {
    let mut change = Change::new(record);
    change.transition(actor, LifecycleEvent::ResumeDispatch, now)?;
    change.record.halt_cause = None;
    svc.store.save(&change).await?;
    let commands = dispatch::pending_commands(&change.record);
    dispatch::send(&svc.queue, &change.record, commands, now).await?;
    let state = change.record.lifecycle.state;
    Ok(Evaluated {
        deployment_id: change.record.id,
        ring: state.ring(),
        verdict: None,
        state,
    })
}

/// Moves the deployment as the gate decision says.
fn apply_verdict(
    change: &mut Change,
    actor: &Actor,
    decision: &GateDecision,
    halted: bool,
    now: Timestamp,
) -> Result<(), TransitionError> {
    if halted && decision.verdict != Verdict::Halt {
        change.transition(actor, LifecycleEvent::Resume, now)?;
        change.record.halt_cause = None;
        if change.record.lifecycle.held {
            // Back to held: CAB rejected the next ring, the rollout goes no further.
            return Ok(());
        }
    }
    match decision.verdict {
        Verdict::Promote => match decision.next_ring {
            Some(to) => {
                // The gate passed CAB for `to` (approved or not required).
                change.transition(
                    actor,
                    LifecycleEvent::Promote {
                        to,
                        cab_required: false,
                    },
                    now,
                )?;
                dispatch::start_if_approved(change, actor, now)?;
            }
            None => change.transition(actor, LifecycleEvent::Complete, now)?,
        },
        Verdict::Hold if decision.awaiting_cab => {
            if let Some(to) = decision.next_ring {
                change.transition(
                    actor,
                    LifecycleEvent::Promote {
                        to,
                        cab_required: true,
                    },
                    now,
                )?;
            }
        }
        Verdict::Halt if !halted => {
            change.transition(actor, LifecycleEvent::Halt, now)?;
            change.record.halt_cause = Some("gate".into());
        }
        Verdict::Hold | Verdict::Halt => {}
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum IncidentError {
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    #[error("deployment {0} not found")]
    NotFound(DeploymentId),
    #[error("incident {0} not found on this deployment")]
    IncidentNotFound(IncidentId),
    #[error("incident {0} is already resolved")]
    AlreadyResolved(IncidentId),
    #[error("the deployment is {0}; incidents can no longer be reported against it")]
    Finished(DeploymentState),
    #[error(
        "{0} incidents are open on this deployment, the most at once: it is halted (or blocked) already; resolve one before reporting another"
    )]
    TooMany(usize),
    #[error(transparent)]
    Resolution(#[from] ResolutionError),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<Common> for IncidentError {
    fn from(c: Common) -> Self {
        match c {
            Common::Forbidden(f) => IncidentError::Forbidden(f),
            Common::NotFound(id) => IncidentError::NotFound(id),
            Common::Store(s) => IncidentError::Store(s),
        }
    }
}

#[derive(Debug, Clone)]
pub struct IncidentInput {
    pub severity: String,
    pub summary: String,
    pub reclassify_blast_radius: Option<BlastRadiusClass>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IncidentOutcome {
    pub incident: Incident,
    pub state: DeploymentState,
}

const INCIDENT_ROLES: &[Role] = &[Role::Publisher, Role::SecurityReviewer];

/// Reports a security incident: the rollout halts at once.
pub async fn report_incident<S: DeploymentStore, Q>(
    svc: &Services<S, Q>,
    actor: &Actor,
    id: &DeploymentId,
    input: IncidentInput,
    new_id: IncidentId,
    now: Timestamp,
) -> Result<IncidentOutcome, IncidentError> {
    actor.require(INCIDENT_ROLES)?;
    for attempt in 1..=CONFLICT_RETRIES {
        let record = load(svc, id).await?;
        if record.lifecycle.state.is_terminal() {
            return Err(IncidentError::Finished(record.lifecycle.state));
        }
        if record.open_incidents() as usize >= budget::MAX_OPEN_INCIDENTS {
            return Err(IncidentError::TooMany(budget::MAX_OPEN_INCIDENTS));
        }
        let mut change = Change::new(record);
        // The record keeps the summary short (incidents are bounded, so one can always be
        // written); the trail keeps it whole.
        let incident = Incident {
            id: new_id.clone(),
            severity: input.severity.clone(),
            summary: budget::kept(&input.summary).0,
            reported_by: actor.id.clone(),
            reported_as: ReportedAs::of(&actor.roles()),
            reported_at: now,
            ring: change.record.lifecycle.live_ring(),
            reclassified_as: input.reclassify_blast_radius,
            resolved: None,
        };
        change.record.incidents.push(incident.clone());
        let whole = Incident {
            summary: input.summary.clone(),
            ..incident.clone()
        };
        change.audit(
            actor,
            AuditKind::IncidentReported,
            serde_json::json!({ "incident": whole, "blast_radius": change.record.blast_radius() }),
            now,
        );
        if change.record.lifecycle.live_ring().is_some()
            && !matches!(
                change.record.lifecycle.state,
                DeploymentState::Halted { .. }
            )
        {
            change.transition(actor, LifecycleEvent::Halt, now)?;
            change.record.halt_cause = Some("incident".into());
        }
        match svc.store.save(&change).await {
            Ok(()) => {
                return Ok(IncidentOutcome {
                    incident,
                    state: change.record.lifecycle.state,
                });
            }
            Err(StoreError::Conflict) if attempt < CONFLICT_RETRIES => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
}

/// Keeps the latest [`budget::MAX_RESOLVED_KEPT`] resolved incidents in the record (every open one
/// stays); the audit trail keeps all of them whole.
fn prune_resolved(incidents: &mut Vec<Incident>) {
    let resolved = incidents.iter().filter(|i| i.resolved.is_some()).count();
    let mut drop = resolved.saturating_sub(budget::MAX_RESOLVED_KEPT);
    incidents.retain(|i| {
        if drop > 0 && i.resolved.is_some() {
            drop -= 1;
            false
        } else {
            true
        }
    });
}

/// Resolves an incident. The next gate run re-validates the gates and resumes the rollout. The
/// deployment's submitter may not resolve it, and an incident reported by a security reviewer is
/// resolved only by a security reviewer (a publisher's attempt is refused, saying so).
pub async fn resolve_incident<S: DeploymentStore, Q: Queue>(
    svc: &Services<S, Q>,
    actor: &Actor,
    id: &DeploymentId,
    incident_id: &IncidentId,
    resolution: &str,
    now: Timestamp,
) -> Result<IncidentOutcome, IncidentError> {
    actor.require(INCIDENT_ROLES)?;
    for attempt in 1..=CONFLICT_RETRIES {
        let record = load(svc, id).await?;
        let mut change = Change::new(record);
        let incident = change
            .record
            .incidents
            .iter_mut()
            .find(|i| &i.id == incident_id)
            .ok_or_else(|| IncidentError::IncidentNotFound(incident_id.clone()))?;
        if incident.resolved.is_some() {
            return Err(IncidentError::AlreadyResolved(incident_id.clone()));
        }
        check_resolution(
            &actor.id,
            &actor.roles(),
            incident.reported_as,
            &change.record.submitted_by,
        )?;
        // Kept short in the record, whole in the trail (as the summary).
        incident.resolved = Some(Resolution {
            by: actor.id.clone(),
            at: now,
            resolution: budget::kept(resolution).0,
        });
        let incident = incident.clone();
        prune_resolved(&mut change.record.incidents);
        let mut whole = incident.clone();
        if let Some(r) = whole.resolved.as_mut() {
            resolution.clone_into(&mut r.resolution);
        }
        change.audit(
            actor,
            AuditKind::IncidentResolved,
            serde_json::json!({ "incident": whole }),
            now,
        );
        // The last open incident resolved: what it held back goes on (a deployment blocked from
        // publishing is let through if nothing else blocks it; an approved ring is dispatched).
        // A halted ring resumes at the next gate run, after its gates are re-validated.
        super::score::unblock_if_clear(&mut change, actor, &svc.policy, "incident resolved", now)?;
        dispatch::start_if_approved(&mut change, actor, now)?;
        match svc.store.save(&change).await {
            Ok(()) => {
                let commands = dispatch::pending_commands(&change.record);
                if let Err(e) = dispatch::send(&svc.queue, &change.record, commands, now).await {
                    // The gate schedule sends a dispatching deployment's commands again.
                    tracing::warn!(deployment_id = %id, error = %e, "dispatch not queued; the gate schedule will send it");
                }
                return Ok(IncidentOutcome {
                    incident,
                    state: change.record.lifecycle.state,
                });
            }
            Err(StoreError::Conflict) if attempt < CONFLICT_RETRIES => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
}
