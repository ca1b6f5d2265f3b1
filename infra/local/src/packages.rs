//! Packages for the local stack: the sample evidence packs point at packages that do not exist
//! and carry made-up digests, and the connectors check every byte they fetch. So before a sample
//! is submitted, a package is built for each artifact (a `.intunewin` for Windows, a flat file
//! for macOS), put in the emulator's artifact bucket, and the artifact's `location`, `sha256` and
//! `size_bytes` are set to what was put there.

use anyhow::{Context, Result, anyhow};
use serde_json::Value;
use sha2::Digest as _;

/// Builds, uploads and points the submission's artifacts at their packages.
pub async fn stage(s3: &aws_sdk_s3::Client, bucket: &str, submission: &mut Value) -> Result<()> {
    let correlation = submission["correlation_id"]
        .as_str()
        .unwrap_or("local")
        .to_owned();
    let app = format!(
        "{} {}",
        submission["app"]["name"].as_str().unwrap_or("app"),
        submission["app"]["version"].as_str().unwrap_or("1")
    );
    let artifacts = submission["evidence"]["artifacts"]
        .as_array_mut()
        .ok_or_else(|| anyhow!("evidence.artifacts is not a list"))?;
    for a in artifacts {
        let platform = a["platform"].as_str().unwrap_or_default().to_owned();
        let file = a["file_name"].as_str().unwrap_or("package").to_owned();
        let payload = format!("{app} for {platform}, built by the EUCORA local stack\n")
            .repeat(256)
            .into_bytes();
        let bytes = if platform == "windows" {
            let setup = a["install_command"]
                .as_str()
                .and_then(|c| c.split_whitespace().next())
                .unwrap_or("setup.exe")
                .trim_matches('"')
                .to_owned();
            eucora_intune::intunewin::build(&setup, &payload)
        } else {
            payload
        };
        let key = format!("{correlation}/{file}");
        s3.put_object()
            .bucket(bucket)
            .key(&key)
            .body(bytes.clone().into())
            .send()
            .await
            .with_context(|| format!("uploading s3://{bucket}/{key}"))?;
        a["location"] = format!("s3://{bucket}/{key}").into();
        a["sha256"] = eucora_connector::artifact::hex_lower(&sha2::Sha256::digest(&bytes)).into();
        a["size_bytes"] = bytes.len().into();
    }
    Ok(())
}
