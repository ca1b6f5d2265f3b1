//! The audit trail read page by page from DynamoDB (moto), over DynamoDB's 1 MB page limit, and
//! verified page by page.

mod common;

use aws_sdk_dynamodb::types::AttributeValue;
use eucora_aws::DynamoStore;
use eucora_domain::audit::{AuditKind, ChainError, ChainVerifier};
use eucora_domain::cab::Role;
use eucora_domain::{ActorId, DeploymentId, Timestamp};
use eucora_service::Actor;
use eucora_service::memory::Memory;
use eucora_service::ports::DeploymentStore;
use eucora_service::record::Change;
use eucora_service::usecases::Services;
use eucora_service::usecases::read::{verify_trail, verify_trail_from};
use eucora_service::usecases::submit::{SubmitInput, submit};

const EVENTS: u64 = 2100;
const LIMIT: usize = 1000;

fn now() -> Timestamp {
    Timestamp::parse("2026-11-23T09:00:00Z").unwrap()
}

fn auditor() -> Actor {
    Actor::new(ActorId::parse("auditor-erin").unwrap(), [Role::Auditor])
}

/// A deployment with `EVENTS` events of about 1.5 KB each: a page of `LIMIT` is about 1.7 MB,
/// more than DynamoDB answers in one query.
async fn long_trail() -> (
    Services<DynamoStore, Memory>,
    DeploymentId,
    aws_sdk_dynamodb::Client,
    String,
) {
    let sdk = common::sdk().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let table = common::create_table(&client).await;
    let s = Services {
        store: DynamoStore::new(client.clone(), table.clone()),
        queue: Memory::new(),
        policy: eucora_domain::policy::Policy::bundled(),
    };
    let body = std::fs::read_to_string(format!(
        "{}/../../events/deployments/low-risk.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let id = submit(
        &s,
        &Actor::new(ActorId::parse("packager-alice").unwrap(), [Role::Packaging]),
        SubmitInput {
            body: &body,
            idempotency_key: Some("audit-pages"),
            new_id: DeploymentId::parse("dep-audit-pages").unwrap(),
            now: now(),
        },
    )
    .await
    .unwrap()
    .record
    .id;
    let gate = Actor::system("gate-evaluation");
    let padding = "x".repeat(1500);
    loop {
        let record = s.store.get(&id).await.unwrap().unwrap();
        if record.audit_head.len >= EVENTS {
            break;
        }
        // Within one transaction's 100 actions (the deployment item and 90 events).
        let mut change = Change::new(record);
        while change.events.len() < 90 && change.record.audit_head.len < EVENTS {
            let n = change.record.audit_head.len;
            change.audit(
                &gate,
                AuditKind::GateEvaluated,
                serde_json::json!({ "n": n, "padding": padding }),
                now(),
            );
        }
        s.store.save(&change).await.unwrap();
    }
    (s, id, client, table)
}

#[tokio::test]
async fn pages_over_dynamodbs_1_mb_limit_are_full_and_their_cursor_right() {
    let (s, id, client, table) = long_trail().await;

    // DynamoDB alone stops short of LIMIT items: the page is over 1 MB.
    let raw = client
        .query()
        .table_name(&table)
        .key_condition_expression("pk = :pk AND begins_with(sk, :a)")
        .expression_attribute_values(":pk", AttributeValue::S(format!("DEP#{id}")))
        .expression_attribute_values(":a", AttributeValue::S("AUDIT#".into()))
        .limit(i32::try_from(LIMIT).unwrap())
        .send()
        .await
        .unwrap();
    assert!(raw.items().len() < LIMIT, "{} items", raw.items().len());
    assert!(raw.last_evaluated_key().is_some());

    // The adapter fills every page, and its cursor is the last event's position.
    let head = s.store.get(&id).await.unwrap().unwrap().audit_head;
    assert_eq!(head.len, EVENTS);
    let mut verifier = ChainVerifier::new(&id);
    let (mut after, mut sizes) = (None, Vec::new());
    loop {
        let page = s.store.audit_page(&id, after, LIMIT).await.unwrap();
        sizes.push(page.events.len());
        for e in &page.events {
            verifier.push(e).unwrap();
        }
        match page.next {
            Some(next) => {
                assert_eq!(next, page.events.last().unwrap().seq);
                after = Some(next);
            }
            None => break,
        }
    }
    assert_eq!(
        sizes,
        vec![LIMIT, LIMIT, 100],
        "full pages, and no empty page at the end"
    );
    assert_eq!(verifier.finish(&head).unwrap(), head.checkpoint());

    // A page in the middle, a short last page, past the end.
    let page = s.store.audit_page(&id, Some(1499), 7).await.unwrap();
    let seqs: Vec<u64> = page.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1500..1507).collect::<Vec<_>>());
    assert_eq!(page.next, Some(1506));
    let page = s.store.audit_page(&id, Some(2095), 10).await.unwrap();
    assert_eq!((page.events.len(), page.next), (4, None));
    let page = s.store.audit_page(&id, Some(2099), 10).await.unwrap();
    assert_eq!((page.events.len(), page.next), (0, None));
    let page = s.store.audit_page(&id, Some(u64::MAX), 10).await.unwrap();
    assert!(page.events.is_empty());

    // The use case, from the start and from a checkpoint.
    let v = verify_trail(&s, &auditor(), &id).await.unwrap();
    assert!(v.valid, "{:?}", v.message);
    assert_eq!(v.checkpoint, head.checkpoint());
    let trail = s.store.audit_trail(&id).await.unwrap();
    let from = trail[1234].head().checkpoint().unwrap();
    let v = verify_trail_from(&s, &auditor(), &id, Some(&from))
        .await
        .unwrap();
    assert!(v.valid, "{:?}", v.message);
    assert_eq!(v.checked, EVENTS - 1235);

    // An event altered in place (someone with write access to the table) after the checkpoint.
    let mut altered = trail[1822].clone();
    altered.detail["n"] = serde_json::json!("edited");
    client
        .put_item()
        .table_name(&table)
        .item("pk", AttributeValue::S(format!("DEP#{id}")))
        .item("sk", AttributeValue::S(format!("AUDIT#{:020}", 1822)))
        .item(
            "doc",
            AttributeValue::S(serde_json::to_string(&altered).unwrap()),
        )
        .send()
        .await
        .unwrap();
    let v = verify_trail_from(&s, &auditor(), &id, Some(&from))
        .await
        .unwrap();
    assert!(!v.valid);
    assert_eq!(v.problem, Some(ChainError::Altered { index: 1822 }));
    assert_eq!(v.checkpoint, None);
}
