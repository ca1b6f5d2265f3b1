//! In-memory adapters for the ports: the same semantics as DynamoDB and SQS (conditional create,
//! optimistic version check, atomic audit append), for use-case tests and local experiments.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use eucora_domain::audit::AuditEvent;
use eucora_domain::evidence::Platform;
use eucora_domain::{DeploymentId, Ring};

use crate::messages::Envelope;
use crate::ports::{
    AUDIT_PAGE_MAX_BYTES, AuditPage, CreateError, DeploymentStore, GateRunStore, IdempotencyRecord,
    Queue, QueueError, QueueName, RunLease, StatusSnapshot, StoreError, TelemetryStore,
};
use crate::record::{Change, DeploymentRecord};

#[derive(Debug, Default)]
struct State {
    deployments: BTreeMap<DeploymentId, DeploymentRecord>,
    audit: BTreeMap<DeploymentId, Vec<AuditEvent>>,
    idempotency: BTreeMap<String, IdempotencyRecord>,
    telemetry: BTreeMap<(DeploymentId, Ring), BTreeMap<Platform, StatusSnapshot>>,
    sent: Vec<(QueueName, Envelope)>,
    failing_sends: usize,
    /// The gate run's lease (run id, until) and cursor.
    gate_lease: Option<(String, eucora_domain::Timestamp)>,
    gate_cursor: Option<DeploymentId>,
}

/// Store and queue in one, cloneable (clones share state).
#[derive(Debug, Clone, Default)]
pub struct Memory(Arc<Mutex<State>>);

impl Memory {
    pub fn new() -> Memory {
        Memory::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every message sent so far.
    pub fn sent(&self) -> Vec<(QueueName, Envelope)> {
        self.state().sent.clone()
    }

    /// Takes the messages sent so far, leaving none.
    pub fn drain(&self) -> Vec<(QueueName, Envelope)> {
        std::mem::take(&mut self.state().sent)
    }

    /// How many deployments are stored.
    pub fn deployment_count(&self) -> usize {
        self.state().deployments.len()
    }

    /// Makes the next `n` sends fail.
    pub fn fail_next_sends(&self, n: usize) {
        self.state().failing_sends = n;
    }

    /// Replaces a stored audit event (to test that tampering is found).
    pub fn tamper_audit(&self, id: &DeploymentId, f: impl FnOnce(&mut Vec<AuditEvent>)) {
        if let Some(events) = self.state().audit.get_mut(id) {
            f(events);
        }
    }
}

impl DeploymentStore for Memory {
    async fn create(
        &self,
        change: &Change,
        claims: &[IdempotencyRecord],
    ) -> Result<(), CreateError> {
        let mut s = self.state();
        for c in claims {
            if let Some(existing) = s.idempotency.get(&c.key) {
                return Err(CreateError::Taken(existing.clone()));
            }
        }
        if s.deployments.contains_key(&change.record.id) {
            return Err(StoreError::Conflict.into());
        }
        for c in claims {
            s.idempotency.insert(c.key.clone(), c.clone());
        }
        s.deployments
            .insert(change.record.id.clone(), change.record.clone());
        s.audit
            .insert(change.record.id.clone(), change.events.clone());
        Ok(())
    }

    async fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        Ok(self.state().idempotency.get(key).cloned())
    }

    async fn get(&self, id: &DeploymentId) -> Result<Option<DeploymentRecord>, StoreError> {
        Ok(self.state().deployments.get(id).cloned())
    }

    async fn save(&self, change: &Change) -> Result<(), StoreError> {
        let mut s = self.state();
        let current = s
            .deployments
            .get(&change.record.id)
            .ok_or(StoreError::Conflict)?;
        if current.version != change.expected_version {
            return Err(StoreError::Conflict);
        }
        let trail = s.audit.entry(change.record.id.clone()).or_default();
        let new: std::collections::BTreeSet<u64> = change.events.iter().map(|e| e.seq).collect();
        if trail.iter().any(|x| new.contains(&x.seq)) {
            return Err(StoreError::Conflict);
        }
        trail.extend(change.events.iter().cloned());
        s.deployments
            .insert(change.record.id.clone(), change.record.clone());
        Ok(())
    }

    async fn in_flight(&self) -> Result<Vec<DeploymentId>, StoreError> {
        Ok(self
            .state()
            .deployments
            .values()
            .filter(|d| d.lifecycle.state.is_in_flight())
            .map(|d| d.id.clone())
            .collect())
    }

    async fn awaiting_cab(&self) -> Result<Vec<DeploymentId>, StoreError> {
        Ok(self
            .state()
            .deployments
            .values()
            .filter(|d| d.awaits_cab())
            .map(|d| d.id.clone())
            .collect())
    }

    async fn audit_trail(&self, id: &DeploymentId) -> Result<Vec<AuditEvent>, StoreError> {
        Ok(self.state().audit.get(id).cloned().unwrap_or_default())
    }

    /// An event's position is its index in the stored trail (DynamoDB's sort key).
    async fn audit_page(
        &self,
        id: &DeploymentId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<AuditPage, StoreError> {
        let s = self.state();
        let trail = s.audit.get(id).map_or(&[][..], Vec::as_slice);
        let start = match after {
            None => 0,
            Some(a) => usize::try_from(a).map_or(usize::MAX, |a| a.saturating_add(1)),
        };
        let rest = trail.get(start..).unwrap_or_default();
        let mut page = AuditPage::default();
        let mut bytes = 0;
        for (i, e) in rest.iter().enumerate() {
            let size = serde_json::to_string(e).map_or(0, |j| j.len());
            let full = page.events.len() >= limit.max(1)
                || (!page.events.is_empty() && bytes + size > AUDIT_PAGE_MAX_BYTES);
            if full {
                page.next = u64::try_from(start + i - 1).ok();
                break;
            }
            bytes += size;
            page.events.push(e.clone());
        }
        Ok(page)
    }
}

impl TelemetryStore for Memory {
    async fn snapshots(
        &self,
        id: &DeploymentId,
        ring: Ring,
    ) -> Result<Vec<StatusSnapshot>, StoreError> {
        Ok(self
            .state()
            .telemetry
            .get(&(id.clone(), ring))
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn record(
        &self,
        id: &DeploymentId,
        ring: Ring,
        snapshot: &StatusSnapshot,
    ) -> Result<(), StoreError> {
        self.state()
            .telemetry
            .entry((id.clone(), ring))
            .or_default()
            .insert(snapshot.status.platform, snapshot.clone());
        Ok(())
    }
}

impl GateRunStore for Memory {
    async fn begin_run(
        &self,
        run_id: &str,
        now: eucora_domain::Timestamp,
        until: eucora_domain::Timestamp,
    ) -> Result<RunLease, StoreError> {
        let mut s = self.state();
        if let Some((_, held)) = &s.gate_lease
            && *held > now
        {
            return Ok(RunLease::Busy { until: *held });
        }
        s.gate_lease = Some((run_id.to_owned(), until));
        Ok(RunLease::Taken {
            cursor: s.gate_cursor.clone(),
        })
    }

    async fn end_run(&self, run_id: &str, cursor: Option<&DeploymentId>) -> Result<(), StoreError> {
        let mut s = self.state();
        if s.gate_lease.as_ref().is_some_and(|(r, _)| r == run_id) {
            s.gate_lease = None;
            s.gate_cursor = cursor.cloned();
        }
        Ok(())
    }
}

impl Queue for Memory {
    async fn send(&self, queue: QueueName, message: &Envelope) -> Result<(), QueueError> {
        let mut s = self.state();
        if s.failing_sends > 0 {
            s.failing_sends -= 1;
            return Err(QueueError {
                queue,
                reason: "injected failure".into(),
            });
        }
        s.sent.push((queue, message.clone()));
        Ok(())
    }
}
