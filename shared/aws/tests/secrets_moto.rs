//! The Secrets Manager cache against moto: read, cache, refresh after rotation.

mod common;

use std::time::Duration;

use eucora_aws::{SecretCache, SecretError};

async fn client() -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&common::sdk().await)
}

const FIRST: &str = r#"{"tenant_id":"t-1","client_id":"c-1","client_secret":"s3cr3t-value-one"}"#;
const ROTATED: &str = r#"{"tenant_id":"t-1","client_id":"c-1","client_secret":"s3cr3t-value-two"}"#;

#[tokio::test]
async fn a_secret_is_read_once_cached_and_read_again_after_rotation() {
    let c = client().await;
    let name = common::unique("intune");
    let created = c
        .create_secret()
        .name(&name)
        .secret_string(FIRST)
        .send()
        .await
        .unwrap();
    let cache = SecretCache::new(c.clone(), created.arn().unwrap(), Duration::from_hours(1));

    let v1 = cache.get().await.unwrap();
    assert_eq!(v1.expose(), FIRST);

    c.put_secret_value()
        .secret_id(&name)
        .secret_string(ROTATED)
        .send()
        .await
        .unwrap();
    // Within the TTL the cached value stands (no call per invocation)...
    assert_eq!(cache.get().await.unwrap().expose(), FIRST);
    // ...and a refresh (after a 401) picks up the rotated value.
    let v2 = cache.refresh().await.unwrap();
    assert_eq!(v2.expose(), ROTATED);
    assert_ne!(v1.version_id, v2.version_id);
    assert_eq!(cache.get().await.unwrap().expose(), ROTATED);
}

#[tokio::test]
async fn an_expired_cache_entry_is_read_again() {
    let c = client().await;
    let name = common::unique("jamf");
    c.create_secret()
        .name(&name)
        .secret_string(FIRST)
        .send()
        .await
        .unwrap();
    let cache = SecretCache::new(c.clone(), &name, Duration::ZERO);
    assert_eq!(cache.get().await.unwrap().expose(), FIRST);
    c.put_secret_value()
        .secret_id(&name)
        .secret_string(ROTATED)
        .send()
        .await
        .unwrap();
    assert_eq!(cache.get().await.unwrap().expose(), ROTATED);
}

#[tokio::test]
async fn a_missing_secret_is_named_and_the_value_never_printed() {
    let c = client().await;
    let cache = SecretCache::new(c.clone(), "does-not-exist", Duration::from_mins(1));
    assert_eq!(
        cache.get().await.unwrap_err(),
        SecretError::NotFound("does-not-exist".into())
    );

    let name = common::unique("print");
    c.create_secret()
        .name(&name)
        .secret_string(FIRST)
        .send()
        .await
        .unwrap();
    let v = SecretCache::new(c, &name, Duration::from_mins(1))
        .get()
        .await
        .unwrap();
    for printed in [format!("{v}"), format!("{v:?}")] {
        assert!(!printed.contains("s3cr3t"), "{printed}");
    }
}
