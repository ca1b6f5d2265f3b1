//! Package bytes from S3 by range against moto: read in chunks, never whole, every byte hashed and
//! checked against the evidence pack's SHA-256; a missing object is named.

mod common;

use eucora_aws::artifacts::Artifacts;
use eucora_connector::artifact::{ArtifactSource, ArtifactStream, Composed, Segment, digest};

async fn s3() -> aws_sdk_s3::Client {
    let sdk = common::sdk().await;
    // moto serves buckets by path, not by virtual host.
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    )
}

/// A bucket holding a generated package of `len` bytes; returns its location and SHA-256.
async fn package(c: &aws_sdk_s3::Client, len: u64) -> (String, Composed) {
    let bucket = common::unique("artifacts");
    c.create_bucket().bucket(&bucket).send().await.unwrap();
    let a = Composed::new(vec![
        Segment::Bytes(bytes::Bytes::from_static(b"PK\x03\x04 header ")),
        Segment::Generated { len, seed: 42 },
    ]);
    c.put_object()
        .bucket(&bucket)
        .key("apps/chrome/1.0/chrome.intunewin")
        .body(a.read(0, a.len()).into())
        .send()
        .await
        .unwrap();
    (format!("s3://{bucket}/apps/chrome/1.0/chrome.intunewin"), a)
}

#[tokio::test]
async fn a_package_is_read_by_range_and_every_byte_is_checked() {
    let c = s3().await;
    let (location, a) = package(&c, 20 * 1024 * 1024 + 123).await;
    let artifacts = Artifacts::new(c);

    assert_eq!(artifacts.size(&location).await.unwrap(), a.len());
    let middle = artifacts
        .read_range(&location, 1_000_000, 4096)
        .await
        .unwrap();
    assert_eq!(middle, a.read(1_000_000, 4096));

    let mut s = ArtifactStream::open(&artifacts, &location, 4 * 1024 * 1024, false)
        .await
        .unwrap();
    let mut chunks = 0;
    while let Some(chunk) = s.next().await.unwrap() {
        assert!(
            chunk.len() <= 4 * 1024 * 1024,
            "a chunk, not the whole package"
        );
        chunks += 1;
    }
    assert_eq!(chunks, 6);
    assert_eq!(s.finish_verified(&a.sha256()).unwrap().sha256, a.sha256());

    let wrong = digest(&artifacts, &location, &"ab".repeat(32), false)
        .await
        .unwrap_err();
    assert_eq!(wrong.code, "ARTIFACT_HASH_MISMATCH");
    assert!(wrong.message.contains(&location), "{}", wrong.message);
}

#[tokio::test]
async fn a_missing_package_is_named_and_permanent() {
    let c = s3().await;
    let (location, _) = package(&c, 10).await;
    let artifacts = Artifacts::new(c);
    let missing = location.replace("chrome.intunewin", "edge.intunewin");
    let e = artifacts.size(&missing).await.unwrap_err();
    assert_eq!(e.code, "ARTIFACT_NOT_FOUND");
    assert_eq!(e.class, eucora_connector::ErrorClass::Permanent);
    let e = artifacts.read_range(&missing, 0, 10).await.unwrap_err();
    assert_eq!(e.code, "ARTIFACT_NOT_FOUND");
    let e = artifacts.size("ftp://x/y").await.unwrap_err();
    assert_eq!(e.code, "ARTIFACT_LOCATION");
}
