//! A publish stopped part-way. Issue 13, point 4: a halt stops a publish already under way at
//! its next safe point. The platform here uploads a package block by block and then assigns it;
//! the deployment is halted (an incident) while the upload runs, and the publish must stop before
//! the assignment. Issue 12: a publish whose invocations keep dying mid-way (out of memory, out
//! of time) fails, classified, and halts, instead of looping to the DLQ.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use eucora_connector::breaker::BreakerPolicy;
use eucora_connector::execute::{Connector, MAX_LAPSED_CLAIMS, Outcome};
use eucora_connector::ledger::LEASE;
use eucora_connector::memory::{MemoryBreaker, MemoryLedger};
use eucora_connector::platform::{CallContext, Job, Platform, RingStatus};
use eucora_connector::{CallError, ErrorClass};
use eucora_domain::cab::Role;
use eucora_domain::evidence::Platform as Kind;
use eucora_domain::lifecycle::DeploymentState;
use eucora_domain::{ActorId, CorrelationId, DeploymentId, IncidentId, Ring, Timestamp};
use eucora_service::Actor;
use eucora_service::memory::Memory;
use eucora_service::messages::{Body, ConnectorAction, ConnectorCommand, Envelope};
use eucora_service::ports::DeploymentStore;
use eucora_service::usecases::Services;
use eucora_service::usecases::gates::{IncidentInput, IncidentOutcome, report_incident};
use eucora_service::usecases::score::score;
use eucora_service::usecases::submit::{SubmitInput, submit};
use serde_json::json;
use tokio::sync::Notify;

/// Uploads `blocks` blocks (stopping at a safe point when told), then assigns.
#[derive(Debug, Clone)]
struct Uploader {
    blocks: usize,
    sent: Arc<AtomicUsize>,
    assigned: Arc<AtomicBool>,
    /// Told once the upload is under way.
    started: Arc<Notify>,
    /// Told once the deployment is halted.
    halted: Arc<Notify>,
    /// The upload itself ignores a stop (it has no safe point of its own), and the step before
    /// the assignment waits until the deployment is halted: only the checkpoint before the
    /// assignment can stop it then.
    only_the_checkpoint: bool,
}

impl Uploader {
    fn new(blocks: usize) -> Uploader {
        Uploader {
            blocks,
            sent: Arc::default(),
            assigned: Arc::default(),
            started: Arc::new(Notify::new()),
            halted: Arc::new(Notify::new()),
            only_the_checkpoint: false,
        }
    }
}

impl Platform for Uploader {
    fn kind(&self) -> Kind {
        Kind::Windows
    }
    async fn publish(
        &self,
        cx: &mut CallContext,
        _job: &Job<'_>,
    ) -> Result<serde_json::Value, CallError> {
        for i in 0..self.blocks {
            if !self.only_the_checkpoint && cx.out_of_time() {
                return Err(CallError::resume_later(
                    "upload_block",
                    format!("stopped after {i} blocks"),
                    Duration::ZERO,
                ));
            }
            self.sent.fetch_add(1, Ordering::SeqCst);
            if i == 2 {
                self.started.notify_one();
            }
            // A block's round trip.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if self.only_the_checkpoint {
            // The halt is written after the upload and before the assignment: the race the
            // checkpoint is for.
            self.halted.notified().await;
        }
        cx.checkpoint("assign").await?;
        self.assigned.store(true, Ordering::SeqCst);
        Ok(json!({ "app_id": "app-1" }))
    }
    async fn query_status(
        &self,
        _cx: &mut CallContext,
        _job: &Job<'_>,
    ) -> Result<RingStatus, CallError> {
        Err(CallError::invalid_payload(
            "unused",
            "UNUSED",
            "not part of this test",
        ))
    }
    async fn rollback(
        &self,
        _cx: &mut CallContext,
        _job: &Job<'_>,
    ) -> Result<serde_json::Value, CallError> {
        Err(CallError::invalid_payload(
            "unused",
            "UNUSED",
            "not part of this test",
        ))
    }
}

fn now() -> Timestamp {
    Timestamp::parse("2026-11-23T09:00:00Z").unwrap()
}

const ID: &str = "dep-halt";

/// A low-risk deployment dispatching to its canary ring, and a connector publishing it.
async fn dispatching(
    platform: Uploader,
) -> (
    Services<Memory, Memory>,
    Connector<Memory, MemoryLedger, MemoryBreaker, Uploader>,
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
    assert_eq!(
        score(&svc, &id, now()).await.unwrap(),
        DeploymentState::Dispatching { ring: Ring::Canary }
    );
    let connector = Connector {
        svc: Services {
            store: m,
            queue: (),
            policy: eucora_domain::policy::Policy::bundled(),
        },
        ledger: MemoryLedger::default(),
        breaker: MemoryBreaker::default(),
        platform,
        breaker_policy: BreakerPolicy::default(),
        ring_groups: BTreeMap::from([(Ring::Canary, "grp-canary".to_owned())]),
        work_budget: None,
        halt_poll: Some(Duration::from_millis(5)),
    };
    (svc, connector)
}

fn command() -> (Envelope, ConnectorCommand) {
    let c = ConnectorCommand {
        deployment_id: DeploymentId::parse(ID).unwrap(),
        ring: Ring::Canary,
        action: ConnectorAction::Publish,
        platform: Kind::Windows,
    };
    let e = Envelope::new(
        CorrelationId::parse("dp-20261123-0001").unwrap(),
        "m-1".into(),
        now(),
        Body::ConnectorCommand(c.clone()),
    );
    (e, c)
}

/// A publisher reports an incident (which halts the ring) once the upload is under way.
async fn halt_once_started(
    svc: &Services<Memory, Memory>,
    platform: &Uploader,
    id: &DeploymentId,
    incident: &str,
) -> IncidentOutcome {
    platform.started.notified().await;
    let publisher = Actor::new(ActorId::parse("publisher-pat").unwrap(), [Role::Publisher]);
    let reported = report_incident(
        svc,
        &publisher,
        id,
        IncidentInput {
            severity: "high".into(),
            summary: "crashes on launch".into(),
            reclassify_blast_radius: None,
        },
        IncidentId::parse(incident).unwrap(),
        now(),
    )
    .await
    .unwrap();
    platform.halted.notify_one();
    reported
}

#[tokio::test]
async fn a_halt_during_the_upload_stops_the_publish_before_the_assignment() {
    // Far more blocks than the test needs: the upload runs until the halt is seen.
    let platform = Uploader::new(1_000_000);
    let (svc, connector) = dispatching(platform.clone()).await;
    let (envelope, cmd) = command();
    let halt = halt_once_started(&svc, &platform, &cmd.deployment_id, "inc-1");
    let (outcome, reported) = tokio::join!(connector.execute(&envelope, &cmd, 1, 0.5, now()), halt);
    assert_eq!(
        reported.state,
        DeploymentState::Halted { ring: Ring::Canary }
    );
    match &outcome {
        Outcome::Skipped { reason } => assert!(reason.contains("halted"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(platform.sent.load(Ordering::SeqCst) >= 3);
    assert!(
        platform.sent.load(Ordering::SeqCst) < 1_000_000,
        "the upload stopped part-way"
    );
    assert!(
        !platform.assigned.load(Ordering::SeqCst),
        "no device was given the package"
    );
    let record = svc.store.get(&cmd.deployment_id).await.unwrap().unwrap();
    assert_eq!(
        record.lifecycle.state,
        DeploymentState::Halted { ring: Ring::Canary }
    );
    assert!(record.confirmed_platforms.is_empty());
}

#[tokio::test]
async fn without_a_halt_the_watched_publish_completes_and_assigns() {
    let platform = Uploader::new(20);
    let (svc, connector) = dispatching(platform.clone()).await;
    let (envelope, cmd) = command();
    let outcome = connector.execute(&envelope, &cmd, 1, 0.5, now()).await;
    assert!(matches!(outcome, Outcome::Done { .. }), "{outcome:?}");
    assert_eq!(platform.sent.load(Ordering::SeqCst), 20);
    assert!(platform.assigned.load(Ordering::SeqCst));
    let record = svc.store.get(&cmd.deployment_id).await.unwrap().unwrap();
    assert_eq!(
        record.lifecycle.state,
        DeploymentState::InRing { ring: Ring::Canary }
    );
}

#[tokio::test]
async fn a_halt_after_the_upload_stops_the_publish_at_the_checkpoint_before_the_assignment() {
    let platform = Uploader {
        only_the_checkpoint: true,
        ..Uploader::new(5)
    };
    let (svc, mut connector) = dispatching(platform.clone()).await;
    // The watch's own tick never comes in this test: only the checkpoint's reading of the
    // deployment can see the halt (written after the upload, just before the assignment).
    connector.halt_poll = Some(Duration::from_secs(3600));
    let (envelope, cmd) = command();
    let halt = halt_once_started(&svc, &platform, &cmd.deployment_id, "inc-2");
    let (outcome, _) = tokio::join!(connector.execute(&envelope, &cmd, 1, 0.5, now()), halt);
    assert_eq!(
        platform.sent.load(Ordering::SeqCst),
        5,
        "the upload went to its end"
    );
    match &outcome {
        Outcome::Skipped { reason } => assert!(reason.contains("before assign"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(
        !platform.assigned.load(Ordering::SeqCst),
        "the checkpoint kept the package from the devices"
    );
}

#[tokio::test]
async fn without_a_watch_the_checkpoint_lets_the_publish_through() {
    let platform = Uploader::new(5);
    let (_svc, mut connector) = dispatching(platform.clone()).await;
    connector.halt_poll = None;
    let (envelope, cmd) = command();
    // Nobody answers a request to look: the checkpoint must not ask (the bound only keeps a
    // regression from hanging the suite).
    let outcome = tokio::time::timeout(
        Duration::from_secs(120),
        connector.execute(&envelope, &cmd, 1, 0.5, now()),
    )
    .await
    .expect("the publish ended");
    assert!(matches!(outcome, Outcome::Done { .. }), "{outcome:?}");
    assert!(platform.assigned.load(Ordering::SeqCst));
}

/// `now()` plus `secs` seconds.
fn later(secs: i64) -> Timestamp {
    Timestamp::from_unix_seconds(now().unix_seconds() + secs).unwrap()
}

#[tokio::test]
async fn a_publish_whose_invocations_keep_dying_fails_classified_and_halts() {
    // An upload that never ends: each invocation dies part-way (dropped while it runs, as a
    // function killed for its memory or its timeout), holding the command's claim.
    let platform = Uploader::new(1_000_000);
    let (svc, mut connector) = dispatching(platform.clone()).await;
    connector.halt_poll = None;
    let (envelope, cmd) = command();
    let lease = i64::try_from(LEASE.as_secs()).unwrap();
    let mut attempt = 0;
    for died in 0..i64::from(MAX_LAPSED_CLAIMS) {
        attempt += 1;
        tokio::select! {
            o = connector.execute(&envelope, &cmd, attempt, 0.5, later(died * (lease + 1))) => {
                panic!("the upload ended: {o:?}");
            }
            () = platform.started.notified() => {}
        }
        // The message comes back while the dead invocation's claim still holds: it waits.
        attempt += 1;
        let o = connector
            .execute(&envelope, &cmd, attempt, 0.5, later(died * (lease + 1) + 1))
            .await;
        assert!(matches!(o, Outcome::Retry { .. }), "{o:?}");
    }
    let blocks = platform.sent.load(Ordering::SeqCst);
    // After the third dead invocation, the command is not tried again.
    attempt += 1;
    let o = connector
        .execute(
            &envelope,
            &cmd,
            attempt,
            0.5,
            later(i64::from(MAX_LAPSED_CLAIMS) * (lease + 1)),
        )
        .await;
    match &o {
        Outcome::Failed {
            error_class,
            reason,
        } => {
            assert_eq!(*error_class, ErrorClass::Permanent);
            assert!(
                reason.contains("INVOCATIONS_LOST") && reason.contains("3 invocations"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(platform.sent.load(Ordering::SeqCst), blocks, "nothing sent");
    let record = svc.store.get(&cmd.deployment_id).await.unwrap().unwrap();
    assert_eq!(
        record.lifecycle.state,
        DeploymentState::Halted { ring: Ring::Canary },
        "the deployment is halted, not left dispatching"
    );
    // A redelivery is a duplicate: nothing more happens.
    let again = connector
        .execute(&envelope, &cmd, attempt + 1, 0.5, later(10 * lease))
        .await;
    assert!(matches!(again, Outcome::Duplicate { .. }), "{again:?}");
}
