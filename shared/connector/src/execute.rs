//! Running one connector command: authorised? duplicate? breaker open? then the platform call,
//! its classification, the breaker's new state, and its audit events: one per external call for
//! a publish or rollback (folded per operation past [`MAX_CALL_EVENTS`], so that one change never
//! exceeds DynamoDB's 100 actions), one for a whole status query with its counts, calls and
//! duration. At most one status query per deployment, ring and platform runs at a time.

use std::collections::BTreeMap;
use std::time::Duration;

use eucora_domain::audit::AuditKind;
use eucora_domain::lifecycle::DeploymentState;
use eucora_domain::{Ring, Timestamp};
use eucora_service::messages::{ConnectorAction, ConnectorCommand, Envelope};
use eucora_service::ports::{DeploymentStore, StoreError, TelemetryStore};
use eucora_service::record::DeploymentRecord;
use eucora_service::usecases::Services;
use eucora_service::usecases::connector::{ConnectorReport, report};
use serde::Serialize;
use serde_json::json;

use crate::backoff;
use crate::breaker::{Admission, BreakerPolicy, BreakerStore};
use crate::error::{CallError, ErrorClass};
use crate::ledger::{Claim, CommandLedger, LEASE};
use crate::platform::{CallContext, Job, LookRequests, Platform, StopSignal};

/// What became of a command; the Lambda handler acts on it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Done {
        platform_ids: serde_json::Value,
    },
    /// The command already took effect: answered 409, nothing changed on the platform.
    Duplicate {
        status: u16,
        first: serde_json::Value,
    },
    /// Nothing to do (the deployment moved on, or the command is not authorised any more).
    Skipped {
        reason: String,
    },
    /// Try again after `after` (the message's visibility delay).
    Retry {
        after_ms: u64,
        reason: String,
    },
    /// Will never succeed: to the DLQ, for the operator.
    Failed {
        error_class: ErrorClass,
        reason: String,
    },
}

/// The most audit events a command's calls become one by one; past this they are folded into
/// one event per operation. With the deployment item and the few other events of the same
/// change, this keeps every change under DynamoDB's 100 actions per transaction.
pub const MAX_CALL_EVENTS: usize = 60;

/// The calls of a status query, or of a command with too many calls to record one by one:
/// per operation, how many calls, their answers and time, and the first failures.
fn summarise(calls: &[crate::platform::CallRecord]) -> serde_json::Value {
    let mut by_operation: BTreeMap<&str, (u64, BTreeMap<String, u64>, u64)> = BTreeMap::new();
    for c in calls {
        let e = by_operation.entry(c.operation.as_str()).or_default();
        e.0 += 1;
        *e.1.entry(
            c.status
                .map_or_else(|| "no answer".to_owned(), |s| s.to_string()),
        )
        .or_default() += 1;
        e.2 += c.duration_ms;
    }
    let failures: Vec<&crate::platform::CallRecord> = calls
        .iter()
        .filter(|c| c.error_class.is_some())
        .take(10)
        .collect();
    json!({
        "calls": calls.len(),
        "by_operation": by_operation
            .into_iter()
            .map(|(op, (n, statuses, ms))| (op.to_owned(), json!({ "calls": n, "statuses": statuses, "duration_ms": ms })))
            .collect::<serde_json::Map<_, _>>(),
        "first_failures": failures,
    })
}

/// The audit events of a command's calls.
fn call_events(
    kind: eucora_domain::evidence::Platform,
    command: &ConnectorCommand,
    cx: &CallContext,
    result: &Result<serde_json::Value, CallError>,
    now: Timestamp,
) -> Vec<(AuditKind, serde_json::Value, Timestamp)> {
    if command.action == ConnectorAction::QueryStatus {
        let mut detail = json!({
            "platform": kind,
            "command": command,
            "duration_ms": cx.elapsed_ms(),
            "calls": summarise(&cx.calls),
        });
        match result {
            Ok(status) => detail["status"] = status.clone(),
            Err(e) => {
                detail["error"] = json!({ "error_class": e.class, "status": e.status, "code": e.code, "operation": e.operation, "message": e.message });
            }
        }
        return vec![(AuditKind::ConnectorStatusQuery, detail, now)];
    }
    if cx.calls.len() <= MAX_CALL_EVENTS {
        return cx
            .calls
            .iter()
            .map(|call| {
                (
                    AuditKind::ConnectorCall,
                    json!({ "platform": kind, "command": command, "call": call }),
                    call.at,
                )
            })
            .collect();
    }
    vec![(
        AuditKind::ConnectorCall,
        json!({ "platform": kind, "command": command, "folded": summarise(&cx.calls) }),
        cx.calls.last().map_or(now, |c| c.at),
    )]
}

/// A status query's snapshot: what it found, and what it cost.
fn snapshot(
    platform: eucora_domain::evidence::Platform,
    found: crate::platform::RingStatus,
    cx: &CallContext,
    now: Timestamp,
) -> eucora_service::ports::StatusSnapshot {
    let mut snapshot = eucora_service::ports::StatusSnapshot::of(platform, found.devices, now);
    snapshot.status.missing = found.missing;
    snapshot.status.earlier_ring_devices = found.earlier_ring_devices;
    snapshot.status.calls = cx.calls.len() as u64;
    snapshot.status.duration_ms = cx.elapsed_ms();
    snapshot
}

/// One platform's connector.
#[derive(Debug)]
pub struct Connector<S, L, B, P> {
    pub svc: Services<S, ()>,
    pub ledger: L,
    pub breaker: B,
    pub platform: P,
    pub breaker_policy: BreakerPolicy,
    /// The platform's group for each ring.
    pub ring_groups: BTreeMap<Ring, String>,
    /// How long one invocation (a batch of commands) works before it hands the rest to the next
    /// (`None`: until done). Below the function's timeout.
    pub work_budget: Option<Duration>,
    /// How often a running publish reads its deployment again, to stop at its next safe point
    /// once the deployment is halted (`None`: never; a halt is then seen by the next command).
    pub halt_poll: Option<Duration>,
}

/// After this many invocations stopped mid-command without an end (the claim they held ran out:
/// out of memory, out of time, a crash), a publish or rollback fails as permanent instead of
/// being tried again.
pub const MAX_LAPSED_CLAIMS: u32 = 3;

/// The failure of a command whose last `lapsed` invocations stopped without an end.
fn lost_invocations(action: ConnectorAction, lapsed: u32) -> CallError {
    let operation = match action {
        ConnectorAction::Publish => "publish",
        ConnectorAction::Rollback => "rollback",
        ConnectorAction::QueryStatus => "query_status",
    };
    CallError {
        class: ErrorClass::Permanent,
        operation: operation.to_owned(),
        status: None,
        code: "INVOCATIONS_LOST".into(),
        message: format!(
            "{lapsed} invocations running this {operation} stopped without an end (the function \
             ran out of memory or time, or crashed); not tried again: see the connector's logs"
        ),
        retry_after: None,
    }
}

/// How often a running publish reads its deployment again in the functions.
pub const HALT_POLL: Duration = Duration::from_secs(5);

fn retry(
    attempt: u32,
    retry_after: Option<Duration>,
    jitter: f64,
    reason: impl Into<String>,
) -> Outcome {
    let after = backoff::delay(attempt, retry_after, jitter);
    Outcome::Retry {
        after_ms: u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
        reason: reason.into(),
    }
}

/// Whether the deployment's state authorises the command now.
fn authorised(record: &DeploymentRecord, command: &ConnectorCommand) -> Result<(), String> {
    let state = record.lifecycle.state;
    let ok = match command.action {
        ConnectorAction::Publish => {
            state == (DeploymentState::Dispatching { ring: command.ring })
                && !record.confirmed_platforms.contains(&command.platform)
                && record.open_incidents() == 0
        }
        ConnectorAction::QueryStatus => record
            .lifecycle
            .live_ring()
            .is_some_and(|r| r >= command.ring),
        ConnectorAction::Rollback => {
            matches!(state, DeploymentState::Halted { ring } | DeploymentState::Held { ring } | DeploymentState::RolledBack { ring } if ring == command.ring)
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!("not authorised in state {state}"))
    }
}

impl<S, L, B, P> Connector<S, L, B, P>
where
    S: DeploymentStore + TelemetryStore,
    L: CommandLedger,
    B: BreakerStore,
    P: Platform,
{
    /// Runs `command` (from `envelope`). `attempt` is the message's receive count; `jitter` in 0..1.
    pub async fn execute(
        &self,
        envelope: &Envelope,
        command: &ConnectorCommand,
        attempt: u32,
        jitter: f64,
        now: Timestamp,
    ) -> Outcome {
        let deadline = self.work_budget.map(|b| std::time::Instant::now() + b);
        self.execute_until(envelope, command, attempt, jitter, now, deadline)
            .await
    }

    /// How long a claim protects a running command: the ledger's lease, or longer when one
    /// invocation may work longer (a long upload), so that no second worker starts meanwhile.
    fn lease(&self) -> Duration {
        self.work_budget
            .map_or(LEASE, |b| (b + Duration::from_secs(120)).max(LEASE))
    }

    /// [`Connector::execute`], with long work stopped at `deadline` (the batch's: a function
    /// invocation handles several commands within one timeout).
    pub async fn execute_until(
        &self,
        envelope: &Envelope,
        command: &ConnectorCommand,
        attempt: u32,
        jitter: f64,
        now: Timestamp,
        deadline: Option<std::time::Instant>,
    ) -> Outcome {
        match self
            .run(envelope, command, attempt, jitter, now, deadline)
            .await
        {
            Ok(o) => o,
            Err(e) if e.is_retryable() => retry(attempt, None, jitter, format!("storage: {e}")),
            Err(e) => Outcome::Failed {
                error_class: ErrorClass::Permanent,
                reason: format!("storage: {e}"),
            },
        }
    }

    async fn run(
        &self,
        envelope: &Envelope,
        command: &ConnectorCommand,
        attempt: u32,
        jitter: f64,
        now: Timestamp,
        deadline: Option<std::time::Instant>,
    ) -> Result<Outcome, StoreError> {
        if command.platform != self.platform.kind() {
            return Ok(Outcome::Failed {
                error_class: ErrorClass::Permanent,
                reason: format!(
                    "a {} command on the {} queue",
                    command.platform,
                    self.platform.kind()
                ),
            });
        }
        let Some(record) = self.svc.store.get(&command.deployment_id).await? else {
            return Ok(Outcome::Failed {
                error_class: ErrorClass::Permanent,
                reason: format!("deployment {} not found", command.deployment_id),
            });
        };
        let key = command.idempotency_key(&envelope.correlation_id);
        if command.action == ConnectorAction::QueryStatus {
            // One status query in flight per deployment, ring and platform: a query sent while
            // another still runs has nothing to add.
            if let Claim::Busy { until } = self.ledger.claim(&key, now, self.lease()).await? {
                return Ok(Outcome::Skipped {
                    reason: format!(
                        "a status query for this ring is already running (lease until {until})"
                    ),
                });
            }
            let outcome = match authorised(&record, command) {
                Err(reason) => Ok(Outcome::Skipped { reason }),
                Ok(()) => {
                    self.call_platform(&record, envelope, command, attempt, jitter, now, deadline)
                        .await
                }
            };
            self.ledger.release(&key).await?;
            return outcome;
        }
        let lapsed = match self.ledger.claim(&key, now, self.lease()).await? {
            Claim::Acquired { lapsed } => lapsed,
            Claim::Duplicate(first) => {
                tracing::info!(%key, "duplicate command: 409, nothing changed");
                return Ok(Outcome::Duplicate { status: 409, first });
            }
            Claim::Busy { until } => {
                let wait = until.since(now).try_into().unwrap_or(self.lease());
                return Ok(retry(
                    attempt,
                    Some(wait),
                    jitter,
                    "another worker holds the command",
                ));
            }
        };
        if let Err(reason) = authorised(&record, command) {
            // Not done: a later, authorised command with the same key must still run.
            self.ledger.release(&key).await?;
            return Ok(Outcome::Skipped { reason });
        }
        let outcome = if lapsed >= MAX_LAPSED_CLAIMS {
            // The invocations that ran it stopped mid-command, without an answer, time after
            // time: trying again would do the same until the message reaches the DLQ, with the
            // deployment left dispatching. It fails here, classified, and a publish halts.
            let lost = lost_invocations(command.action, lapsed);
            tracing::error!(deployment_id = %command.deployment_id, ring = %command.ring, lapsed, "{}", lost.message);
            let cx = CallContext::starting_at(envelope.correlation_id.clone(), now);
            self.record_outcome(&record, command, attempt, jitter, &cx, Err(lost), now)
                .await?
        } else {
            self.call_platform(&record, envelope, command, attempt, jitter, now, deadline)
                .await?
        };
        match &outcome {
            Outcome::Done { platform_ids } => {
                self.ledger.complete(&key, platform_ids, now).await?;
            }
            Outcome::Failed { reason, .. } => {
                self.ledger
                    .complete(&key, &json!({ "failed": reason }), now)
                    .await?;
            }
            _ => self.ledger.release(&key).await?,
        }
        Ok(outcome)
    }

    #[allow(clippy::too_many_arguments)]
    async fn call_platform(
        &self,
        record: &DeploymentRecord,
        envelope: &Envelope,
        command: &ConnectorCommand,
        attempt: u32,
        jitter: f64,
        now: Timestamp,
        deadline: Option<std::time::Instant>,
    ) -> Result<Outcome, StoreError> {
        let kind = self.platform.kind();
        let Some(group_id) = self.ring_groups.get(&command.ring) else {
            return Ok(Outcome::Failed {
                error_class: ErrorClass::Permanent,
                reason: format!("no {kind} group configured for {}", command.ring),
            });
        };
        let Some(artifact) = record.submission.artifact(kind) else {
            return Ok(Outcome::Failed {
                error_class: ErrorClass::Permanent,
                reason: format!("the deployment has no {kind} artifact"),
            });
        };
        // The breaker, shared by every instance.
        let stored = self.breaker.load(kind).await?;
        match stored.state.admit(now, &self.breaker_policy) {
            Admission::Allow => {}
            Admission::Reject { retry_in } => {
                tracing::warn!(platform = %kind, "circuit open: not calling");
                return Ok(retry(
                    attempt,
                    Some(retry_in),
                    jitter,
                    format!("circuit breaker open for {kind}"),
                ));
            }
            Admission::Probe { claim } => {
                if self
                    .breaker
                    .save(kind, &claim, stored.version)
                    .await
                    .is_err()
                {
                    return Ok(retry(
                        attempt,
                        Some(self.breaker_policy.probe_lease),
                        jitter,
                        "another instance is probing",
                    ));
                }
            }
        }

        // The groups of the rings this deployment went through before this one; rings below its
        // first were never deployed, and their devices (in a nested group) count here.
        let earlier_groups: Vec<String> = self
            .ring_groups
            .range(record.lifecycle.first_ring..command.ring)
            .map(|(_, g)| g.clone())
            .collect();
        let job = Job {
            deployment: record,
            ring: command.ring,
            group_id,
            earlier_groups: &earlier_groups,
            artifact,
            now,
        };
        // A publish is watched when the connector watches: the deployment is read again while it
        // runs, and once it no longer authorises the command (a halt), the publish stops at its
        // next safe point, before anything reaches a device. Unwatched, nobody answers a
        // checkpoint's request to look, and none is made.
        let (stop, watch) = match (command.action, self.halt_poll) {
            (ConnectorAction::Publish, Some(every)) => {
                let (stop, looks) = StopSignal::watched();
                (stop, Some((looks, every)))
            }
            _ => (StopSignal::default(), None),
        };
        let mut cx = CallContext::starting_at(envelope.correlation_id.clone(), now)
            .with_deadline(deadline)
            .with_stop_signal(stop.clone());
        let result = match command.action {
            ConnectorAction::Publish => {
                let publish = self.platform.publish(&mut cx, &job);
                match watch {
                    None => publish.await,
                    Some((looks, every)) => tokio::select! {
                        r = publish => r,
                        never = self.watch_authorisation(command, every, &stop, looks) => match never {},
                    },
                }
            }
            ConnectorAction::Rollback => self.platform.rollback(&mut cx, &job).await,
            ConnectorAction::QueryStatus => match self.platform.query_status(&mut cx, &job).await {
                Ok(found) => {
                    let snapshot = snapshot(kind, found, &cx, now);
                    self.svc
                        .store
                        .record(&record.id, command.ring, &snapshot)
                        .await?;
                    Ok(serde_json::to_value(&snapshot.status).unwrap_or_default())
                }
                Err(e) => Err(e),
            },
        };
        self.update_breaker(&cx, now).await?;

        let outcome = self
            .record_outcome(record, command, attempt, jitter, &cx, result, now)
            .await?;
        Ok(match outcome {
            Outcome::Retry { reason, .. } if stop.is_raised() => Outcome::Skipped {
                reason: format!("the deployment was halted while the command ran: {reason}"),
            },
            other => other,
        })
    }

    /// Reads the deployment every `every`, and whenever the publish asks (at a checkpoint), until
    /// it no longer authorises `command`, then raises `stop`; never returns (the publish it
    /// watches ends the race).
    async fn watch_authorisation(
        &self,
        command: &ConnectorCommand,
        every: Duration,
        stop: &StopSignal,
        mut looks: LookRequests,
    ) -> std::convert::Infallible {
        // `run` has just read the deployment and found the command authorised: look again on
        // the tick, or when asked.
        loop {
            let asked = tokio::select! {
                () = tokio::time::sleep(every) => None,
                asked = looks.recv() => {
                    if asked.is_none() {
                        // Nobody can ask any more: only the tick is left.
                        tokio::time::sleep(every).await;
                    }
                    asked
                }
            };
            if !stop.is_raised() {
                let halted = match self.svc.store.get(&command.deployment_id).await {
                    Ok(Some(record)) => authorised(&record, command).is_err(),
                    Ok(None) => true,
                    // A read that failed says nothing: the command was authorised when it began.
                    Err(_) => false,
                };
                if halted {
                    tracing::warn!(deployment_id = %command.deployment_id, ring = %command.ring, "the deployment no longer authorises the publish: stopping at the next safe point");
                    stop.raise();
                }
            }
            if let Some(answer) = asked {
                let _ = answer.send(());
            }
        }
    }

    /// Turns the platform's answer into an outcome and records the calls on the deployment.
    #[allow(clippy::too_many_arguments)]
    async fn record_outcome(
        &self,
        record: &DeploymentRecord,
        command: &ConnectorCommand,
        attempt: u32,
        jitter: f64,
        cx: &CallContext,
        result: Result<serde_json::Value, CallError>,
        now: Timestamp,
    ) -> Result<Outcome, StoreError> {
        let kind = self.platform.kind();
        let mut report_ = ConnectorReport {
            events: call_events(kind, command, cx, &result, now),
            ..ConnectorReport::default()
        };
        if cx.auth_refreshed {
            report_.events.push((
                AuditKind::ConnectorAuthRefresh,
                json!({ "platform": kind }),
                now,
            ));
        }
        let outcome = match result {
            Ok(ids) => {
                if command.action == ConnectorAction::Publish {
                    report_.confirmed = Some((command.ring, ids.clone()));
                }
                Outcome::Done { platform_ids: ids }
            }
            Err(e) => self.failure(&e, command, attempt, jitter, &mut report_),
        };
        if !report_.events.is_empty() || report_.confirmed.is_some() || report_.halt.is_some() {
            match report(&self.svc, &record.id, kind, &report_, now).await {
                Ok(_) => {}
                Err(e) if e.is_retryable() => {
                    return Ok(retry(attempt, None, jitter, format!("recording: {e}")));
                }
                Err(e) => {
                    return Ok(Outcome::Failed {
                        error_class: ErrorClass::Permanent,
                        reason: format!("recording: {e}"),
                    });
                }
            }
        }
        Ok(outcome)
    }

    fn failure(
        &self,
        e: &CallError,
        command: &ConnectorCommand,
        attempt: u32,
        jitter: f64,
        report_: &mut ConnectorReport,
    ) -> Outcome {
        if e.is_resume_later() {
            tracing::info!(platform = %self.platform.kind(), operation = %e.operation, reason = %e.message, "resuming later");
            return Outcome::Retry {
                after_ms: e
                    .retry_after
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                reason: e.message.clone(),
            };
        }
        tracing::warn!(platform = %self.platform.kind(), error_class = ?e.class, status = ?e.status, code = %e.code, operation = %e.operation, "platform call failed");
        match e.class {
            ErrorClass::Transient | ErrorClass::Unauthorized => {
                retry(attempt, e.retry_after, jitter, e.to_string())
            }
            ErrorClass::Permanent | ErrorClass::PolicyViolation => {
                if command.action == ConnectorAction::Publish {
                    report_.halt = Some(
                        json!({ "error_class": e.class, "status": e.status, "code": e.code, "message": e.message, "operation": e.operation }),
                    );
                }
                Outcome::Failed {
                    error_class: e.class,
                    reason: e.to_string(),
                }
            }
        }
    }

    /// Counts the calls in order: a transient failure adds one, any answer resets the count.
    async fn update_breaker(&self, cx: &CallContext, now: Timestamp) -> Result<(), StoreError> {
        let kind = self.platform.kind();
        if cx.calls.is_empty() {
            return Ok(());
        }
        for _ in 0..3 {
            let stored = self.breaker.load(kind).await?;
            let next =
                cx.calls
                    .iter()
                    .fold(stored.state.clone(), |state, call| match call.error_class {
                        Some(ErrorClass::Transient) => {
                            state.on_transient_failure(now, &self.breaker_policy)
                        }
                        _ => state.on_answer(),
                    });
            if next == stored.state {
                return Ok(());
            }
            match self.breaker.save(kind, &next, stored.version).await {
                Ok(()) => return Ok(()),
                Err(StoreError::Conflict) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
