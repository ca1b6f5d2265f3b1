//! The port each platform's client implements, and the record of every external call.

use std::future::Future;

use eucora_domain::evidence::{Artifact, Platform as PlatformKind};
use eucora_domain::gates::DeviceResult;
use eucora_domain::{CorrelationId, Ring, Timestamp};
use eucora_service::record::DeploymentRecord;
use serde::Serialize;

use crate::error::{CallError, ErrorClass};

/// One external call, as the audit trail records it. Never holds a credential or a token.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallRecord {
    pub operation: String,
    pub method: String,
    /// The path called, without query string.
    pub endpoint: String,
    pub status: Option<u16>,
    pub error_class: Option<ErrorClass>,
    pub platform_ids: serde_json::Value,
    pub duration_ms: u64,
    pub at: Timestamp,
}

/// When a call happened, from the system clock (a record of a call, not a decision).
pub fn call_time() -> Timestamp {
    eucora_domain::Clock::now(&eucora_domain::SystemClock)
}

/// Everything but RFC 3986's unreserved characters (`A-Z a-z 0-9 - _ . ~`).
const NOT_UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a path segment or query value (RFC 3986 unreserved characters kept), with
/// the `percent-encoding` crate of the rust-url project.
pub fn percent_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, NOT_UNRESERVED).to_string()
}

/// What a command's calls share: the correlation id to send, the calls made so far, and the
/// command's clock (its start time, on the control plane's clock, plus the time elapsed since).
#[derive(Debug, Clone)]
pub struct CallContext {
    pub correlation_id: CorrelationId,
    pub calls: Vec<CallRecord>,
    /// Set when a 401 made the client refresh its token and secret (`connector.auth.refresh`).
    pub auth_refreshed: bool,
    started_at: Timestamp,
    started: std::time::Instant,
    /// When this invocation stops working and hands the rest to a later one.
    deadline: Option<std::time::Instant>,
    /// Raised when the deployment stops authorising the command while it runs (a halt).
    stop: Option<StopSignal>,
}

/// How a running command learns that its deployment was halted: a flag the connector's watch
/// raises, and, when the connector watches, a way to ask the watch to read the deployment now
/// (a checkpoint does, so a halt written since the watch last looked still stops the command).
#[derive(Debug, Clone, Default)]
pub struct StopSignal {
    raised: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ask: Option<tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<()>>>,
}

/// The watch's side of a [`StopSignal`]: each request asks it to read the deployment now, raise
/// the signal if the command is no longer authorised, then answer.
pub type LookRequests = tokio::sync::mpsc::Receiver<tokio::sync::oneshot::Sender<()>>;

impl StopSignal {
    /// A signal whose watch answers requests to look now.
    pub fn watched() -> (StopSignal, LookRequests) {
        let (ask, requests) = tokio::sync::mpsc::channel(1);
        (
            StopSignal {
                raised: std::sync::Arc::default(),
                ask: Some(ask),
            },
            requests,
        )
    }

    /// Tells the command to stop at its next safe point.
    pub fn raise(&self) {
        self.raised
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether the command was told to stop.
    pub fn is_raised(&self) -> bool {
        self.raised.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Asks the watch to read the deployment now and waits for its answer (at once when nobody
    /// watches, or the watch has ended).
    async fn look_now(&self) {
        let Some(ask) = &self.ask else { return };
        let (answer, answered) = tokio::sync::oneshot::channel();
        if ask.send(answer).await.is_ok() {
            let _ = answered.await;
        }
    }
}

impl CallContext {
    /// A command starting now, by the system clock.
    pub fn new(correlation_id: CorrelationId) -> CallContext {
        CallContext::starting_at(correlation_id, call_time())
    }

    /// A command starting at `now` on the caller's clock (the one its decisions use, which the
    /// local stack runs faster than the wall clock), so the calls' audit events fall in order.
    pub fn starting_at(correlation_id: CorrelationId, now: Timestamp) -> CallContext {
        CallContext {
            correlation_id,
            calls: Vec::new(),
            auth_refreshed: false,
            started_at: now,
            started: std::time::Instant::now(),
            deadline: None,
            stop: None,
        }
    }

    /// Limits the work of this invocation (its start plus the work budget, below the function's
    /// timeout); without a deadline the command works until it is done.
    #[must_use]
    pub fn with_deadline(mut self, deadline: Option<std::time::Instant>) -> CallContext {
        self.deadline = deadline;
        self
    }

    /// Limits the work to `budget` from now.
    #[must_use]
    pub fn with_budget(self, budget: std::time::Duration) -> CallContext {
        self.with_deadline(Some(std::time::Instant::now() + budget))
    }

    /// Stops the work at its next safe point once `stop` is raised (the connector raises it when
    /// the deployment is halted while the command runs).
    #[must_use]
    pub fn with_stop_signal(mut self, stop: StopSignal) -> CallContext {
        self.stop = Some(stop);
        self
    }

    /// Whether the command was told to stop (the deployment is halted).
    pub fn stop_requested(&self) -> bool {
        self.stop.as_ref().is_some_and(StopSignal::is_raised)
    }

    /// A safe point before `operation` (a step that puts the package in front of devices: an
    /// assignment, a policy). The deployment is read again here, whenever the watch last read
    /// it; if it no longer authorises the command (a halt), the command stops here, with
    /// [`crate::CallError::resume_later`] (the connector then drops the command).
    pub async fn checkpoint(&self, operation: &str) -> Result<(), crate::CallError> {
        if let Some(stop) = &self.stop {
            stop.look_now().await;
        }
        if self.stop_requested() {
            return Err(crate::CallError::resume_later(
                operation,
                format!("the deployment was halted: stopped at a safe point, before {operation}"),
                std::time::Duration::ZERO,
            ));
        }
        Ok(())
    }

    /// Whether the deadline has passed, or the command was told to stop: long work (an upload)
    /// stops at its next safe point and returns [`crate::CallError::resume_later`], to go on from
    /// the platform's state next time.
    pub fn out_of_time(&self) -> bool {
        self.stop_requested()
            || self
                .deadline
                .is_some_and(|d| std::time::Instant::now() >= d)
    }

    /// When a call happens: the command's start plus the time elapsed since.
    pub fn now(&self) -> Timestamp {
        self.started_at
            .plus(time::Duration::try_from(self.started.elapsed()).unwrap_or(time::Duration::ZERO))
    }

    /// Milliseconds since the command started.
    pub fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub fn record(&mut self, call: CallRecord) {
        self.calls.push(call);
    }
}

/// What a status query found: one result per device of the ring's population.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RingStatus {
    /// One per device of the ring's group as the platform knows it, earlier rings' devices left
    /// out; a device with no report for the package is `NotReported`. Each carries the device's
    /// last contact with the platform when the platform gives it.
    pub devices: Vec<DeviceResult>,
    /// Group members the platform no longer has (deleted during the rollout): skipped, counted.
    pub missing: u64,
    /// Group members that are also in an earlier ring's group, left out.
    pub earlier_ring_devices: u64,
}

/// What a publish, status query or rollback works on.
#[derive(Debug, Clone, Copy)]
pub struct Job<'a> {
    pub deployment: &'a DeploymentRecord,
    pub ring: Ring,
    /// The platform's group for the ring (Entra ID group id, Jamf smart group id).
    pub group_id: &'a str,
    /// The groups of the rings before this one: their devices count toward those rings, never
    /// toward this one (where rings' groups overlap, a device belongs to its earliest ring).
    pub earlier_groups: &'a [String],
    pub artifact: &'a Artifact,
    pub now: Timestamp,
}

/// A platform, as the connector sees it. Implementations are idempotent: publishing what is
/// already published finds it instead of creating it again.
pub trait Platform: Send + Sync {
    fn kind(&self) -> PlatformKind;

    /// Creates (or finds) the app or package and assigns it to the ring's group. Returns the
    /// platform ids (app id, package id, policy id).
    fn publish(
        &self,
        cx: &mut CallContext,
        job: &Job<'_>,
    ) -> impl Future<Output = Result<serde_json::Value, CallError>> + Send;

    /// Reads the install status of the ring's population: every device of the ring's group,
    /// earlier rings' devices left out, with `NotReported` for a device without a report.
    fn query_status(
        &self,
        cx: &mut CallContext,
        job: &Job<'_>,
    ) -> impl Future<Output = Result<RingStatus, CallError>> + Send;

    /// Undoes the ring's assignment (uninstall intent, or re-pin the previous version).
    fn rollback(
        &self,
        cx: &mut CallContext,
        job: &Job<'_>,
    ) -> impl Future<Output = Result<serde_json::Value, CallError>> + Send;
}
