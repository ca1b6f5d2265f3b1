//! The connector use case with a scripted platform, over the in-memory adapters.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use eucora_connector::breaker::{BreakerPolicy, BreakerStatus};
use eucora_connector::execute::{Connector, Outcome};
use eucora_connector::memory::{MemoryBreaker, MemoryLedger};
use eucora_connector::platform::{CallContext, CallRecord, Job, Platform, RingStatus};
use eucora_connector::{CallError, ErrorClass};
use eucora_domain::audit::AuditKind;
use eucora_domain::cab::Role;
use eucora_domain::evidence::{Platform as Kind, SiteClass};
use eucora_domain::gates::{DeviceResult, InstallOutcome};
use eucora_domain::lifecycle::DeploymentState;
use eucora_domain::{ActorId, DeploymentId, Ring, Timestamp};
use eucora_service::Actor;
use eucora_service::memory::Memory;
use eucora_service::messages::{Body, ConnectorAction, ConnectorCommand, Envelope};
use eucora_service::ports::{DeploymentStore, TelemetryStore};
use eucora_service::usecases::Services;
use eucora_service::usecases::score::score;
use eucora_service::usecases::submit::{SubmitInput, submit};
use serde_json::json;

/// A platform that answers from a script and counts its calls.
#[derive(Debug, Clone, Default)]
struct Scripted {
    answers: Arc<Mutex<VecDeque<Result<serde_json::Value, CallError>>>>,
    calls: Arc<Mutex<u32>>,
    /// The ring's population a status query finds, and the HTTP calls it takes (records).
    population: Arc<Mutex<(usize, usize)>>,
    /// How many calls a publish makes (0: one).
    publish_calls: Arc<Mutex<usize>>,
}

impl Scripted {
    fn push(&self, r: Result<serde_json::Value, CallError>) {
        self.answers.lock().unwrap().push_back(r);
    }
    fn calls(&self) -> u32 {
        *self.calls.lock().unwrap()
    }
    fn answer(&self, cx: &mut CallContext, job: &Job<'_>) -> Result<serde_json::Value, CallError> {
        *self.calls.lock().unwrap() += 1;
        let r = self
            .answers
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| Ok(json!({ "app_id": "app-1" })));
        cx.record(CallRecord {
            operation: "create_app".into(),
            method: "POST".into(),
            endpoint: "/v1.0/deviceAppManagement/mobileApps".into(),
            // A hand-off to a later invocation follows calls that succeeded.
            status: Some(r.as_ref().map_or_else(
                |e| {
                    if e.is_resume_later() {
                        201
                    } else {
                        e.status.unwrap_or(0)
                    }
                },
                |_| 201,
            )),
            error_class: r
                .as_ref()
                .err()
                .filter(|e| !e.is_resume_later())
                .map(|e| e.class),
            platform_ids: json!({ "app_id": "app-1" }),
            duration_ms: 3,
            at: job.now,
        });
        r
    }
}

impl Platform for Scripted {
    fn kind(&self) -> Kind {
        Kind::Windows
    }
    async fn publish(
        &self,
        cx: &mut CallContext,
        job: &Job<'_>,
    ) -> Result<serde_json::Value, CallError> {
        let extra = *self.publish_calls.lock().unwrap();
        for _ in 1..extra {
            self.answer(cx, job)?;
        }
        self.answer(cx, job)
    }
    async fn query_status(
        &self,
        cx: &mut CallContext,
        job: &Job<'_>,
    ) -> Result<RingStatus, CallError> {
        let (devices, calls) = *self.population.lock().unwrap();
        for _ in 1..calls {
            self.answer(cx, job)?;
        }
        self.answer(cx, job)?;
        Ok(RingStatus {
            devices: (0..devices)
                .map(|i| DeviceResult {
                    device_id: format!("pc-{i:05}"),
                    platform: Kind::Windows,
                    outcome: if i % 2 == 0 {
                        InstallOutcome::Installed
                    } else {
                        InstallOutcome::NotReported
                    },
                    site_class: SiteClass::Online,
                    at: job.now,
                    last_contact: Some(job.now),
                })
                .collect(),
            missing: 3,
            earlier_ring_devices: 7,
        })
    }
    async fn rollback(
        &self,
        cx: &mut CallContext,
        job: &Job<'_>,
    ) -> Result<serde_json::Value, CallError> {
        self.answer(cx, job)
    }
}

fn now() -> Timestamp {
    Timestamp::parse("2026-11-23T09:00:00Z").unwrap()
}

const ID: &str = "dep-conn";

async fn setup() -> (
    Connector<Memory, MemoryLedger, MemoryBreaker, Scripted>,
    Scripted,
) {
    let m = Memory::new();
    let svc = Services {
        store: m.clone(),
        queue: m.clone(),
        policy: eucora_domain::policy::Policy::bundled(),
    };
    let body = std::fs::read_to_string(format!(
        "{}/../../events/deployments/low-risk.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let packager = Actor::new(ActorId::parse("packager-alice").unwrap(), [Role::Packaging]);
    let id = DeploymentId::parse(ID).unwrap();
    submit(
        &svc,
        &packager,
        SubmitInput {
            body: &body,
            idempotency_key: None,
            new_id: id.clone(),
            now: now(),
        },
    )
    .await
    .unwrap();
    score(&svc, &id, now()).await.unwrap();
    let platform = Scripted::default();
    let connector = Connector {
        svc: Services {
            store: m,
            queue: (),
            policy: eucora_domain::policy::Policy::bundled(),
        },
        ledger: MemoryLedger::default(),
        breaker: MemoryBreaker::default(),
        platform: platform.clone(),
        breaker_policy: BreakerPolicy::default(),
        ring_groups: BTreeMap::from([
            (Ring::Canary, "grp-canary".to_owned()),
            (Ring::Pilot, "grp-pilot".to_owned()),
        ]),
        work_budget: None,
        halt_poll: None,
    };
    (connector, platform)
}

fn publish() -> (Envelope, ConnectorCommand) {
    let c = ConnectorCommand {
        deployment_id: DeploymentId::parse(ID).unwrap(),
        ring: Ring::Canary,
        action: ConnectorAction::Publish,
        platform: Kind::Windows,
    };
    let e = Envelope::new(
        eucora_domain::CorrelationId::parse("dp-20261123-0001").unwrap(),
        "m-1".into(),
        now(),
        Body::ConnectorCommand(c.clone()),
    );
    (e, c)
}

async fn state(c: &Connector<Memory, MemoryLedger, MemoryBreaker, Scripted>) -> DeploymentState {
    c.svc
        .store
        .get(&DeploymentId::parse(ID).unwrap())
        .await
        .unwrap()
        .unwrap()
        .lifecycle
        .state
}

fn transient() -> CallError {
    CallError::http("create_app", 503, "ServiceUnavailable", "try later", None)
}

#[tokio::test]
async fn a_publish_confirms_the_ring_and_audits_each_call() {
    let (c, p) = setup().await;
    let (e, cmd) = publish();
    let out = c.execute(&e, &cmd, 1, 0.5, now()).await;
    assert_eq!(
        out,
        Outcome::Done {
            platform_ids: json!({ "app_id": "app-1" })
        }
    );
    assert_eq!(
        state(&c).await,
        DeploymentState::InRing { ring: Ring::Canary }
    );
    let trail = c
        .svc
        .store
        .audit_trail(&DeploymentId::parse(ID).unwrap())
        .await
        .unwrap();
    let call = trail
        .iter()
        .find(|e| e.kind == AuditKind::ConnectorCall)
        .unwrap();
    assert_eq!(call.correlation_id.as_str(), "dp-20261123-0001");
    assert_eq!(call.detail["call"]["status"], 201);
    assert_eq!(call.detail["call"]["platform_ids"]["app_id"], "app-1");
    assert_eq!(p.calls(), 1);
}

#[tokio::test]
async fn a_duplicate_command_answers_409_and_calls_nothing() {
    let (c, p) = setup().await;
    let (e, cmd) = publish();
    c.execute(&e, &cmd, 1, 0.5, now()).await;
    let again = c.execute(&e, &cmd, 2, 0.5, now()).await;
    assert!(
        matches!(again, Outcome::Duplicate { status: 409, .. }),
        "{again:?}"
    );
    assert_eq!(p.calls(), 1);
}

#[tokio::test]
async fn a_transient_failure_retries_with_backoff_and_honours_retry_after() {
    let (c, p) = setup().await;
    let (e, cmd) = publish();
    p.push(Err(transient()));
    match c.execute(&e, &cmd, 1, 1.0, now()).await {
        Outcome::Retry { after_ms, .. } => assert_eq!(after_ms, 2000),
        other => panic!("{other:?}"),
    }
    p.push(Err(CallError::http(
        "create_app",
        429,
        "TooManyRequests",
        "slow down",
        Some(std::time::Duration::from_secs(17)),
    )));
    match c.execute(&e, &cmd, 2, 1.0, now()).await {
        Outcome::Retry { after_ms, .. } => assert_eq!(after_ms, 17_000),
        other => panic!("{other:?}"),
    }
    // The claim was released: the next try runs and succeeds.
    assert!(matches!(
        c.execute(&e, &cmd, 3, 1.0, now()).await,
        Outcome::Done { .. }
    ));
    assert_eq!(p.calls(), 3);
}

#[tokio::test]
async fn work_handed_to_later_invocations_is_neither_a_failure_nor_a_halt() {
    let (c, p) = setup().await;
    let (e, cmd) = publish();
    for i in 1..=8 {
        p.push(Err(CallError::resume_later(
            "upload_block",
            format!("{i} of 9 parts uploaded"),
            std::time::Duration::from_secs(15),
        )));
        match c.execute(&e, &cmd, i, 0.9, now()).await {
            // The delay asked for, not the backoff of the attempt.
            Outcome::Retry { after_ms, reason } => {
                assert_eq!(after_ms, 15_000);
                assert!(reason.contains("of 9 parts"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        c.breaker
            .state(Kind::Windows)
            .status(now(), &BreakerPolicy::default()),
        BreakerStatus::Closed,
        "progress never opens the breaker"
    );
    assert_eq!(
        state(&c).await,
        DeploymentState::Dispatching { ring: Ring::Canary }
    );
    assert!(matches!(
        c.execute(&e, &cmd, 9, 0.9, now()).await,
        Outcome::Done { .. }
    ));
    assert_eq!(p.calls(), 9);
}

#[tokio::test]
async fn the_breaker_opens_after_5_consecutive_failures_and_stops_calling() {
    let (c, p) = setup().await;
    let (e, cmd) = publish();
    for i in 1..=5 {
        p.push(Err(transient()));
        assert!(matches!(
            c.execute(&e, &cmd, i, 0.5, now()).await,
            Outcome::Retry { .. }
        ));
    }
    assert_eq!(
        c.breaker
            .state(Kind::Windows)
            .status(now(), &BreakerPolicy::default()),
        BreakerStatus::Open
    );
    let out = c.execute(&e, &cmd, 6, 0.5, now()).await;
    assert!(
        matches!(&out, Outcome::Retry { reason, .. } if reason.contains("circuit breaker open")),
        "{out:?}"
    );
    assert_eq!(p.calls(), 5, "no call while open");
    // 60 s later one probe goes out and closes it.
    let later = now().plus(time::Duration::seconds(61));
    assert!(matches!(
        c.execute(&e, &cmd, 7, 0.5, later).await,
        Outcome::Done { .. }
    ));
    assert_eq!(
        c.breaker
            .state(Kind::Windows)
            .status(later, &BreakerPolicy::default()),
        BreakerStatus::Closed
    );
}

#[tokio::test]
async fn a_permanent_failure_fails_halts_and_is_not_retried() {
    let (c, p) = setup().await;
    let (e, cmd) = publish();
    p.push(Err(CallError::http(
        "create_app",
        400,
        "BadRequest",
        "installCommandLine is required",
        None,
    )));
    let out = c.execute(&e, &cmd, 1, 0.5, now()).await;
    assert!(
        matches!(
            out,
            Outcome::Failed {
                error_class: ErrorClass::Permanent,
                ..
            }
        ),
        "{out:?}"
    );
    assert_eq!(
        state(&c).await,
        DeploymentState::Halted { ring: Ring::Canary }
    );
    // A redelivery does not call again.
    assert!(matches!(
        c.execute(&e, &cmd, 2, 0.5, now()).await,
        Outcome::Duplicate { .. }
    ));
    assert_eq!(p.calls(), 1);
}

#[tokio::test]
async fn a_command_for_another_platform_or_an_unauthorised_state_calls_nothing() {
    let (c, p) = setup().await;
    let (e, mut cmd) = publish();
    cmd.platform = Kind::Macos;
    assert!(matches!(
        c.execute(&e, &cmd, 1, 0.5, now()).await,
        Outcome::Failed { .. }
    ));
    let (e, mut cmd) = publish();
    cmd.ring = Ring::Pilot; // not the ring being dispatched
    assert!(matches!(
        c.execute(&e, &cmd, 1, 0.5, now()).await,
        Outcome::Skipped { .. }
    ));
    assert_eq!(p.calls(), 0);
    // The skip left no mark: the authorised command still runs.
    let (e, cmd) = publish();
    assert!(matches!(
        c.execute(&e, &cmd, 1, 0.5, now()).await,
        Outcome::Done { .. }
    ));
}

/// Publishes Canary, so that status queries are authorised.
async fn live(c: &Connector<Memory, MemoryLedger, MemoryBreaker, Scripted>) {
    let (e, cmd) = publish();
    assert!(matches!(
        c.execute(&e, &cmd, 1, 0.5, now()).await,
        Outcome::Done { .. }
    ));
}

fn status_query() -> (Envelope, ConnectorCommand) {
    let (mut e, mut c) = publish();
    c.action = ConnectorAction::QueryStatus;
    e.body = Body::ConnectorCommand(c.clone());
    (e, c)
}

async fn trail(
    c: &Connector<Memory, MemoryLedger, MemoryBreaker, Scripted>,
) -> Vec<eucora_domain::audit::AuditEvent> {
    c.svc
        .store
        .audit_trail(&DeploymentId::parse(ID).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_status_query_of_ten_thousand_devices_is_one_audit_event_and_one_snapshot() {
    let (c, p) = setup().await;
    live(&c).await;
    *p.population.lock().unwrap() = (10_000, 250);
    let before = trail(&c).await.len();
    let (e, cmd) = status_query();
    let out = c.execute(&e, &cmd, 1, 0.5, now()).await;
    let Outcome::Done { platform_ids } = out else {
        panic!("{out:?}");
    };
    assert_eq!(platform_ids["targeted"], 10_000);
    assert_eq!(platform_ids["reported"], 5_000);
    let events = trail(&c).await;
    assert_eq!(events.len(), before + 1, "one event for the whole query");
    let query = events.last().unwrap();
    assert_eq!(query.kind, AuditKind::ConnectorStatusQuery);
    assert_eq!(query.detail["calls"]["calls"], 250);
    assert_eq!(
        query.detail["calls"]["by_operation"]["create_app"]["calls"],
        250
    );
    assert_eq!(query.detail["status"]["missing"], 3);
    assert_eq!(query.detail["status"]["earlier_ring_devices"], 7);
    assert!(query.detail["duration_ms"].is_u64());

    let snapshots = c
        .svc
        .store
        .snapshots(&DeploymentId::parse(ID).unwrap(), Ring::Canary)
        .await
        .unwrap();
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0].devices.len(), 10_000);
    assert_eq!(snapshots[0].status.calls, 250);
}

#[tokio::test]
async fn a_status_query_while_another_runs_is_skipped_without_calling_the_platform() {
    use eucora_connector::ledger::CommandLedger;
    let (c, p) = setup().await;
    live(&c).await;
    let (e, cmd) = status_query();
    let key = cmd.idempotency_key(&e.correlation_id);
    c.ledger
        .claim(&key, now(), std::time::Duration::from_secs(300))
        .await
        .unwrap();
    let calls = p.calls();
    let out = c.execute(&e, &cmd, 1, 0.5, now()).await;
    assert!(
        matches!(&out, Outcome::Skipped { reason } if reason.contains("already running")),
        "{out:?}"
    );
    assert_eq!(p.calls(), calls, "the platform was not called");

    // Once the first query is over, the next one runs; and the one after it too (a status
    // query is never "done" for good).
    c.ledger.release(&key).await.unwrap();
    for _ in 0..2 {
        assert!(matches!(
            c.execute(&e, &cmd, 1, 0.5, now()).await,
            Outcome::Done { .. }
        ));
    }
}

#[tokio::test]
async fn a_publish_of_many_calls_is_folded_into_one_event_within_dynamodbs_limits() {
    let (c, p) = setup().await;
    // A publish of 200 calls (an upload of many blocks): one event each would pass DynamoDB's
    // 100 actions per transaction, and the confirmation would never be written.
    *p.publish_calls.lock().unwrap() = 200;
    let before = trail(&c).await.len();
    let (e, cmd) = publish();
    let out = c.execute(&e, &cmd, 1, 0.5, now()).await;
    assert!(matches!(out, Outcome::Done { .. }), "{out:?}");
    assert_eq!(
        state(&c).await,
        DeploymentState::InRing { ring: Ring::Canary }
    );
    let events = trail(&c).await;
    let calls: Vec<_> = events[before..]
        .iter()
        .filter(|e| e.kind == AuditKind::ConnectorCall)
        .collect();
    assert_eq!(calls.len(), 1, "folded");
    assert_eq!(calls[0].detail["folded"]["calls"], 200);

    // Up to the limit, each call is its own event.
    let (c, p) = setup().await;
    *p.publish_calls.lock().unwrap() = eucora_connector::execute::MAX_CALL_EVENTS;
    let before = trail(&c).await.len();
    assert!(matches!(
        c.execute(&e, &cmd, 1, 0.5, now()).await,
        Outcome::Done { .. }
    ));
    let n = trail(&c).await[before..]
        .iter()
        .filter(|e| e.kind == AuditKind::ConnectorCall)
        .count();
    assert_eq!(n, eucora_connector::execute::MAX_CALL_EVENTS);
}
