//! The connectors' ledger and breaker in DynamoDB (moto).

mod common;

use std::time::Duration;

use eucora_aws::DynamoStore;
use eucora_connector::breaker::{BreakerPolicy, BreakerState, BreakerStore};
use eucora_connector::ledger::{Claim, CommandLedger};
use eucora_domain::Timestamp;
use eucora_domain::evidence::Platform;
use eucora_service::ports::StoreError;

async fn store() -> DynamoStore {
    let client = aws_sdk_dynamodb::Client::new(&common::sdk().await);
    let table = common::create_table(&client).await;
    DynamoStore::new(client, table)
}

fn t(s: i64) -> Timestamp {
    Timestamp::from_unix_seconds(1_800_000_000 + s).unwrap()
}

#[tokio::test]
async fn a_command_is_claimed_once_and_a_duplicate_sees_the_first_outcome() {
    let s = store().await;
    let key = "dp-1:1:publish:windows";
    assert_eq!(
        s.claim(key, t(0), Duration::from_secs(300)).await.unwrap(),
        Claim::Acquired { lapsed: 0 }
    );
    // A second worker while the first holds it.
    assert!(matches!(
        s.claim(key, t(1), Duration::from_secs(300)).await.unwrap(),
        Claim::Busy { .. }
    ));
    s.complete(key, &serde_json::json!({"app_id": "a-1"}), t(2))
        .await
        .unwrap();
    assert_eq!(
        s.claim(key, t(3), Duration::from_secs(300)).await.unwrap(),
        Claim::Duplicate(serde_json::json!({"app_id": "a-1"}))
    );
    // Releasing a done command changes nothing.
    s.release(key).await.unwrap();
    assert!(matches!(
        s.claim(key, t(4), Duration::from_secs(300)).await.unwrap(),
        Claim::Duplicate(_)
    ));
}

#[tokio::test]
async fn a_lapsed_or_released_claim_can_be_taken_again_and_lapses_are_counted() {
    let s = store().await;
    let key = "dp-2:1:publish:macos";
    let lease = Duration::from_secs(60);
    assert_eq!(
        s.claim(key, t(0), lease).await.unwrap(),
        Claim::Acquired { lapsed: 0 }
    );
    // Its worker died: the claim lapses and is taken over, and counted, time after time.
    assert_eq!(
        s.claim(key, t(61), lease).await.unwrap(),
        Claim::Acquired { lapsed: 1 },
        "lapsed"
    );
    assert!(matches!(
        s.claim(key, t(62), lease).await.unwrap(),
        Claim::Busy { .. }
    ));
    assert_eq!(
        s.claim(key, t(122), lease).await.unwrap(),
        Claim::Acquired { lapsed: 2 },
        "lapsed again"
    );
    // A worker that ends (released after a retryable failure) starts the count again.
    s.release(key).await.unwrap();
    assert_eq!(
        s.claim(key, t(123), lease).await.unwrap(),
        Claim::Acquired { lapsed: 0 },
        "released"
    );
}

#[tokio::test]
async fn two_workers_taking_over_one_lapsed_claim_at_once_get_it_once() {
    let s = store().await;
    let key = "dp-3:1:publish:windows";
    let lease = Duration::from_secs(60);
    s.claim(key, t(0), lease).await.unwrap();
    let (a, b) = tokio::join!(s.claim(key, t(61), lease), s.claim(key, t(61), lease));
    let (a, b) = (a.unwrap(), b.unwrap());
    let acquired = [&a, &b]
        .into_iter()
        .filter(|c| matches!(c, Claim::Acquired { .. }))
        .count();
    assert_eq!(acquired, 1, "{a:?} {b:?}");
    assert!(
        [&a, &b].contains(&&Claim::Acquired { lapsed: 1 }),
        "{a:?} {b:?}"
    );
}

#[tokio::test]
async fn the_breaker_state_is_shared_with_conditional_writes() {
    let s = store().await;
    let p = BreakerPolicy::default();
    let v = s.load(Platform::Windows).await.unwrap();
    assert_eq!(v.version, 0);
    let failed = v.state.on_transient_failure(t(0), &p);
    s.save(Platform::Windows, &failed, 0).await.unwrap();
    // Another instance that read version 0 loses.
    assert!(matches!(
        s.save(Platform::Windows, &BreakerState::default(), 0).await,
        Err(StoreError::Conflict)
    ));
    let v = s.load(Platform::Windows).await.unwrap();
    assert_eq!((v.version, v.state.consecutive_failures), (1, 1));
    // Jamf's breaker is separate.
    assert_eq!(s.load(Platform::Macos).await.unwrap().version, 0);
}
