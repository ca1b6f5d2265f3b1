//! Support for the whole-system tests: an SQS queue with Lambda's semantics on a virtual clock
//! (visibility delays, receive counts, redrive to a DLQ after `maxReceiveCount`), and connectors
//! wired to the platform simulators over the in-memory store.

// Test support: a panic here is a failed test.
#![allow(clippy::missing_panics_doc)]

pub mod local;
pub mod logs;
pub mod platforms;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use eucora_aws::connector_lambda::handle_batch;
use eucora_aws::consumer::MessageControl;
use eucora_connector::breaker::BreakerStore;
use eucora_connector::execute::Connector;
use eucora_connector::ledger::CommandLedger;
use eucora_connector::platform::Platform;
use eucora_domain::{Clock, ManualClock, Timestamp};
use eucora_service::ports::{DeploymentStore, TelemetryStore};

/// Where every system test's clock starts: all parts of a test read one [`ManualClock`] from here.
pub const TEST_START: &str = "2026-11-23T10:00:00Z";

/// A test's one clock, stopped at [`TEST_START`] until the test (or a queue) moves it.
pub fn test_clock() -> ManualClock {
    ManualClock::new(Timestamp::parse(TEST_START).expect("TEST_START is RFC 3339"))
}

#[derive(Debug)]
struct Msg {
    body: String,
    visible_at: Timestamp,
    receives: u32,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    messages: BTreeMap<String, Msg>,
    /// Dead-lettered by the connector (permanent failures), with the reason.
    dead_lettered: Vec<(String, String)>,
    /// Moved to the DLQ by the redrive policy (received more than `max_receives` times).
    redriven: Vec<String>,
}

/// One SQS queue and its DLQ on the test's clock: when no message is visible, receiving moves the
/// clock to the next one that will be (as if the test had waited for it).
#[derive(Debug)]
pub struct VirtualQueue {
    state: Mutex<State>,
    max_receives: u32,
    visibility: Duration,
    clock: ManualClock,
}

impl VirtualQueue {
    pub fn new(max_receives: u32, clock: &ManualClock) -> VirtualQueue {
        VirtualQueue {
            state: Mutex::new(State::default()),
            max_receives,
            visibility: Duration::from_secs(360),
            clock: clock.clone(),
        }
    }

    fn after(&self, d: Duration) -> Timestamp {
        self.clock
            .now()
            .plus(time::Duration::try_from(d).unwrap_or(time::Duration::MAX))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn send(&self, body: String) {
        let mut s = self.state();
        s.next_id += 1;
        let id = format!("msg-{:06}", s.next_id);
        let at = self.clock.now();
        s.messages.insert(
            id,
            Msg {
                body,
                visible_at: at,
                receives: 0,
            },
        );
    }

    /// The test clock's now.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub fn is_empty(&self) -> bool {
        self.state().messages.is_empty()
    }

    pub fn dead_lettered(&self) -> Vec<(String, String)> {
        self.state().dead_lettered.clone()
    }

    pub fn redriven(&self) -> Vec<String> {
        self.state().redriven.clone()
    }

    /// Up to `max` visible messages, as a Lambda event; the clock jumps ahead when none is visible.
    pub fn receive(&self, max: usize) -> Option<SqsEvent> {
        let mut s = self.state();
        if s.messages.is_empty() {
            return None;
        }
        if let Some(earliest) = s.messages.values().map(|m| m.visible_at).min() {
            self.clock.advance_to(earliest);
        }
        let now = self.clock.now();
        let hidden_until = self.after(self.visibility);
        let ids: Vec<String> = s
            .messages
            .iter()
            .filter(|(_, m)| m.visible_at <= now)
            .map(|(id, _)| id.clone())
            .take(max)
            .collect();
        let mut event = SqsEvent::default();
        for id in ids {
            let over = {
                let m = s.messages.get_mut(&id).expect("listed");
                m.receives += 1;
                m.visible_at = hidden_until;
                m.receives > self.max_receives
            };
            if over {
                s.messages.remove(&id);
                s.redriven.push(id);
                continue;
            }
            let m = &s.messages[&id];
            let mut record = SqsMessage::default();
            record.message_id = Some(id.clone());
            record.receipt_handle = Some(id.clone());
            record.body = Some(m.body.clone());
            record
                .attributes
                .insert("ApproximateReceiveCount".into(), m.receives.to_string());
            event.records.push(record);
        }
        Some(event)
    }

    fn delete(&self, id: &str) {
        self.state().messages.remove(id);
    }
}

impl MessageControl for VirtualQueue {
    async fn delay(&self, receipt_handle: &str, after: Duration) -> Result<(), String> {
        let at = self.after(after);
        if let Some(m) = self.state().messages.get_mut(receipt_handle) {
            m.visible_at = at;
        }
        Ok(())
    }

    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), String> {
        self.state()
            .dead_lettered
            .push((body.to_owned(), reason.to_owned()));
        Ok(())
    }
}

/// Runs the connector over the queue until it is empty, as Lambda would (batches of 5, the
/// failures reported back stay on the queue). Returns the number of invocations.
pub async fn drain<S, L, B, P>(queue: &VirtualQueue, connector: &Connector<S, L, B, P>) -> usize
where
    S: DeploymentStore + TelemetryStore,
    L: CommandLedger,
    B: BreakerStore,
    P: Platform,
{
    let mut invocations = 0;
    while let Some(event) = queue.receive(5) {
        let ids: Vec<String> = event
            .records
            .iter()
            .filter_map(|r| r.message_id.clone())
            .collect();
        if ids.is_empty() {
            continue;
        }
        invocations += 1;
        let response = handle_batch(connector, queue, event, queue.now()).await;
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        for id in &ids {
            if !failed.contains(&id.as_str()) {
                queue.delete(id);
            }
        }
        assert!(invocations < 100_000, "the queue does not drain");
    }
    invocations
}
