//! The audit trail at scale: read page by page, verified page by page in bounded memory, resumed
//! from a checkpoint; over the in-memory store (the DynamoDB adapter's own test pages over
//! DynamoDB's 1 MB limit).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use eucora_domain::audit::{AuditKind, ChainError, ChainVerifier, Checkpoint};
use eucora_domain::cab::Role;
use eucora_domain::{ActorId, DeploymentId, Timestamp};
use eucora_service::Actor;
use eucora_service::memory::Memory;
use eucora_service::ports::{
    AuditPage, CreateError, DeploymentStore, IdempotencyRecord, StoreError,
};
use eucora_service::record::{Change, DeploymentRecord};
use eucora_service::usecases::Services;
use eucora_service::usecases::read::{VERIFY_PAGE, audit_page, verify_trail, verify_trail_from};
use eucora_service::usecases::submit::{SubmitInput, submit};
use serde_json::json;

/// The in-memory store, watched: the whole trail is never loaded, and no page is larger than
/// asked for (the largest page is recorded).
#[derive(Clone, Default)]
struct Watched {
    inner: Memory,
    largest_page: Arc<AtomicUsize>,
    pages: Arc<AtomicUsize>,
}

impl DeploymentStore for Watched {
    async fn create(&self, c: &Change, k: &[IdempotencyRecord]) -> Result<(), CreateError> {
        self.inner.create(c, k).await
    }
    async fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.inner.idempotency(key).await
    }
    async fn get(&self, id: &DeploymentId) -> Result<Option<DeploymentRecord>, StoreError> {
        self.inner.get(id).await
    }
    async fn save(&self, c: &Change) -> Result<(), StoreError> {
        self.inner.save(c).await
    }
    async fn in_flight(&self) -> Result<Vec<DeploymentId>, StoreError> {
        self.inner.in_flight().await
    }
    async fn awaiting_cab(&self) -> Result<Vec<DeploymentId>, StoreError> {
        self.inner.awaiting_cab().await
    }
    async fn audit_trail(
        &self,
        _: &DeploymentId,
    ) -> Result<Vec<eucora_domain::audit::AuditEvent>, StoreError> {
        panic!("the whole trail must not be loaded")
    }
    async fn audit_page(
        &self,
        id: &DeploymentId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<AuditPage, StoreError> {
        let page = self.inner.audit_page(id, after, limit).await?;
        assert!(page.events.len() <= limit, "a page over its limit");
        self.largest_page
            .fetch_max(page.events.len(), Ordering::Relaxed);
        self.pages.fetch_add(1, Ordering::Relaxed);
        Ok(page)
    }
}

fn svc() -> Services<Watched, Memory> {
    Services {
        store: Watched::default(),
        queue: Memory::new(),
        policy: eucora_domain::policy::Policy::bundled(),
    }
}

fn t0() -> Timestamp {
    Timestamp::parse("2026-11-23T09:00:00Z").unwrap()
}

fn auditor() -> Actor {
    Actor::new(ActorId::parse("auditor-erin").unwrap(), [Role::Auditor])
}

/// A submitted deployment whose trail is then grown to `len` events.
async fn deployment_with_trail(s: &Services<Watched, Memory>, len: u64) -> DeploymentId {
    let body = std::fs::read_to_string(format!(
        "{}/../../events/deployments/low-risk.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let out = submit(
        s,
        &Actor::new(ActorId::parse("packager-alice").unwrap(), [Role::Packaging]),
        SubmitInput {
            body: &body,
            idempotency_key: Some("audit-pages"),
            new_id: DeploymentId::parse("dep-audit-pages").unwrap(),
            now: t0(),
        },
    )
    .await
    .unwrap();
    grow(s, &out.record.id, len).await;
    out.record.id
}

/// Appends events until the trail has `len`.
async fn grow(s: &Services<Watched, Memory>, id: &DeploymentId, len: u64) {
    let record = s.store.get(id).await.unwrap().unwrap();
    let mut change = Change::new(record);
    let gate = Actor::new(ActorId::parse("gate-schedule").unwrap(), [Role::Publisher]);
    while change.record.audit_head.len < len {
        let n = change.record.audit_head.len;
        change.audit(&gate, AuditKind::GateEvaluated, json!({ "n": n }), t0());
    }
    s.store.save(&change).await.unwrap();
}

#[tokio::test]
async fn a_trail_of_100_000_events_is_read_page_by_page_and_verified_in_bounded_memory() {
    const EVENTS: u64 = 100_000;
    const LIMIT: usize = 1000;
    let s = svc();
    let id = deployment_with_trail(&s, EVENTS).await;
    let head = s.store.get(&id).await.unwrap().unwrap().audit_head;
    assert_eq!(head.len, EVENTS);

    // Read as a client would: page after page, each handed to the streaming verifier and dropped.
    let mut verifier = ChainVerifier::new(&id);
    let (mut after, mut pages, mut read) = (None, 0, 0_u64);
    loop {
        let page = audit_page(&s, &auditor(), &id, after, LIMIT).await.unwrap();
        assert!(page.events.len() <= LIMIT);
        pages += 1;
        read += page.events.len() as u64;
        for e in &page.events {
            verifier.push(e).unwrap();
        }
        match page.next {
            Some(next) => {
                assert_eq!(next, read - 1, "the cursor is the last event's position");
                after = Some(next);
            }
            None => break,
        }
    }
    assert_eq!((pages, read), (100, EVENTS));
    assert_eq!(verifier.finish(&head).unwrap(), head.checkpoint());

    // The use case: pages of at most VERIFY_PAGE, never the whole trail (the store panics).
    s.store.largest_page.store(0, Ordering::Relaxed);
    s.store.pages.store(0, Ordering::Relaxed);
    let v = verify_trail(&s, &auditor(), &id).await.unwrap();
    assert!(v.valid, "{:?}", v.message);
    assert_eq!((v.events, v.checked), (EVENTS, EVENTS));
    assert_eq!(v.checkpoint, head.checkpoint());
    assert!(s.store.largest_page.load(Ordering::Relaxed) <= VERIFY_PAGE);
    assert!(s.store.pages.load(Ordering::Relaxed) >= 100);
}

#[tokio::test]
async fn verification_resumes_from_the_last_checkpoint_and_reads_only_what_follows() {
    let s = svc();
    let id = deployment_with_trail(&s, 2500).await;
    let first = verify_trail(&s, &auditor(), &id).await.unwrap();
    assert!(first.valid);
    let checkpoint = first.checkpoint.clone().unwrap();
    assert_eq!(checkpoint.seq, 2499);

    grow(&s, &id, 3700).await;
    s.store.pages.store(0, Ordering::Relaxed);
    let next = verify_trail_from(&s, &auditor(), &id, Some(&checkpoint))
        .await
        .unwrap();
    assert!(next.valid, "{:?}", next.message);
    assert_eq!((next.events, next.checked), (3700, 1200));
    assert_eq!(next.from, Some(checkpoint));
    assert_eq!(next.checkpoint.as_ref().unwrap().seq, 3699);
    // Two pages of the new events, and one look past the head.
    assert_eq!(s.store.pages.load(Ordering::Relaxed), 3);

    // Nothing new since: valid, nothing read.
    let again = verify_trail_from(&s, &auditor(), &id, next.checkpoint.as_ref())
        .await
        .unwrap();
    assert!(again.valid);
    assert_eq!(again.checked, 0);
}

#[tokio::test]
async fn an_event_tampered_after_the_checkpoint_is_found_on_resume() {
    let s = svc();
    let id = deployment_with_trail(&s, 3000).await;
    let checkpoint = verify_trail(&s, &auditor(), &id)
        .await
        .unwrap()
        .checkpoint
        .unwrap();
    grow(&s, &id, 5000).await;
    s.store.inner.tamper_audit(&id, |events| {
        events[4321].detail = json!({ "n": "edited" });
    });
    let v = verify_trail_from(&s, &auditor(), &id, Some(&checkpoint))
        .await
        .unwrap();
    assert!(!v.valid);
    assert_eq!(v.problem, Some(ChainError::Altered { index: 4321 }));
    assert_eq!(v.checkpoint, None, "no checkpoint from a broken trail");
    assert_eq!(v.events, 4321);
    assert!(v.message.unwrap().contains("event 4321"));
    // From the start, too.
    let v = verify_trail(&s, &auditor(), &id).await.unwrap();
    assert_eq!(v.problem, Some(ChainError::Altered { index: 4321 }));
}

#[tokio::test]
async fn a_wrong_checkpoint_never_verifies() {
    let s = svc();
    let id = deployment_with_trail(&s, 1500).await;
    let trail = s.store.inner.audit_trail(&id).await.unwrap();
    let at = |seq: u64, hash: &str| Checkpoint {
        seq,
        hash: hash.to_owned(),
    };
    for (checkpoint, problem) in [
        (
            at(700, &trail[699].hash),
            ChainError::CheckpointMismatch { seq: 700 },
        ),
        (
            at(1499, &trail[1498].hash),
            ChainError::CheckpointMismatch { seq: 1499 },
        ),
        (
            at(1500, &trail[1499].hash),
            ChainError::UnknownCheckpoint {
                seq: 1500,
                len: 1500,
            },
        ),
        (
            at(700, &"0".repeat(64)),
            ChainError::CheckpointMismatch { seq: 700 },
        ),
    ] {
        let v = verify_trail_from(&s, &auditor(), &id, Some(&checkpoint))
            .await
            .unwrap();
        assert!(!v.valid, "{checkpoint}");
        assert_eq!(v.problem, Some(problem), "{checkpoint}");
        assert_eq!(v.checkpoint, None);
    }
}

#[tokio::test]
async fn an_event_stored_past_the_recorded_head_is_found() {
    let s = svc();
    let id = deployment_with_trail(&s, 10).await;
    s.store.inner.tamper_audit(&id, |events| {
        let mut extra = events[9].clone();
        extra.seq = 10;
        extra.prev_hash = events[9].hash.clone();
        extra.hash = extra.compute_hash();
        events.push(extra);
    });
    let v = verify_trail(&s, &auditor(), &id).await.unwrap();
    assert!(!v.valid);
    assert_eq!(v.problem, Some(ChainError::Unrecorded { len: 10 }));
}

#[tokio::test]
async fn pages_follow_stored_positions_even_when_an_event_lies_about_its_seq() {
    let s = svc();
    let id = deployment_with_trail(&s, 30).await;
    s.store.inner.tamper_audit(&id, |events| events[9].seq = 2);
    let (mut after, mut read) = (None, 0);
    loop {
        let page = audit_page(&s, &auditor(), &id, after, 10).await.unwrap();
        read += page.events.len();
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(read, 30, "every event once, none repeated");
    let v = verify_trail(&s, &auditor(), &id).await.unwrap();
    assert_eq!(
        v.problem,
        Some(ChainError::OutOfSequence { index: 9, seq: 2 })
    );
}
