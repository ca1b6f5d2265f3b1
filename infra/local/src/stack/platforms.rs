//! The two platform simulators with their device fleets, their credentials in the emulator's
//! secrets, the artifact bucket in the emulator, and a connector for each, built as the connector
//! functions build theirs (DynamoDB ledger and breaker, Secrets Manager, S3), pointed at the
//! simulators.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use eucora_aws::artifacts::Artifacts;
use eucora_aws::{DynamoStore, SecretCache};
use eucora_connector::breaker::BreakerPolicy;
use eucora_connector::execute::Connector;
use eucora_domain::Ring;
use eucora_intune::{IntuneClient, IntuneConfig};
use eucora_jamf::{JamfClient, JamfConfig};
use eucora_service::usecases::Services;

use super::provision::Stack;

pub type IntuneConnector =
    Connector<DynamoStore, DynamoStore, DynamoStore, IntuneClient<SecretCache, Artifacts>>;
pub type JamfConnector =
    Connector<DynamoStore, DynamoStore, DynamoStore, JamfClient<SecretCache, Artifacts>>;

/// The Entra ID group of a ring in the Intune simulator.
pub fn intune_group(ring: Ring) -> String {
    format!("grp-eucora-ring-{}", ring.number())
}

/// The Jamf computer group id of a ring in the Jamf simulator.
pub fn jamf_group(ring: Ring) -> u32 {
    100 + u32::from(ring.number())
}

/// Both simulators, running.
#[derive(Debug)]
pub struct Simulators {
    pub intune: Arc<eucora_sim_intune::SimHandle>,
    pub jamf: Arc<eucora_sim_jamf::SimHandle>,
}

/// Starts both simulators with `devices` Windows PCs and `devices` Macs in each ring's group
/// (ring 0, the lab, gets a fifth of that; every fifth PC shared by three users), reporting their
/// installs over the first hour, on the stack's clock.
pub async fn start_simulators(
    devices: u32,
    clock: Arc<dyn eucora_domain::Clock>,
    realistic_latency: bool,
) -> Simulators {
    let (intune_config, jamf_config) = if realistic_latency {
        (
            eucora_sim_intune::SimConfig::default(),
            eucora_sim_jamf::SimConfig::default(),
        )
    } else {
        (
            eucora_sim_intune::SimConfig {
                latency: Duration::ZERO,
                latency_jitter: Duration::ZERO,
                ..eucora_sim_intune::SimConfig::default()
            },
            eucora_sim_jamf::SimConfig::instant(),
        )
    };
    let intune = eucora_sim_intune::start_on(intune_config, Arc::clone(&clock)).await;
    let jamf = eucora_sim_jamf::start_on(jamf_config, clock).await;
    for ring in Ring::ALL {
        let n = u32::from(ring.number());
        let count = if ring == Ring::Lab {
            (devices / 5).max(1)
        } else {
            devices
        };
        // Installs report between 5 and 59 minutes after assignment.
        let after = |i: u32| Duration::from_secs(u64::from(5 + (i * 7) % 55) * 60);
        intune.add_group(
            &intune_group(ring),
            (0..count)
                .map(|i| {
                    let pc = eucora_sim_intune::SimDevice::installed(
                        &format!("win-r{n}-{i:04}"),
                        &format!("PC-R{n}-{i:04}"),
                        after(i),
                    );
                    // Every fifth PC is shared (a shift or kiosk PC): Intune reports it once per
                    // user who signed in, and the gates still count it once.
                    if i % 5 == 4 {
                        pc.shared_by(&[
                            &format!("shift-a-{i}@contoso.example"),
                            &format!("shift-b-{i}@contoso.example"),
                            &format!("shift-c-{i}@contoso.example"),
                        ])
                    } else {
                        pc
                    }
                })
                .collect(),
        );
        jamf.add_computer_group(
            jamf_group(ring),
            &format!("EUCORA Ring {n}"),
            true,
            (0..count)
                .map(|i| {
                    eucora_sim_jamf::SimComputer::new(
                        n * 10_000 + i,
                        eucora_sim_jamf::ComputerOutcome::Completed,
                        after(i),
                    )
                })
                .collect(),
        );
    }
    Simulators {
        intune: Arc::new(intune),
        jamf: Arc::new(jamf),
    }
}

/// An S3 client for the emulator (path-style addressing: no bucket subdomains on loopback).
pub fn s3(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            .build(),
    )
}

/// Creates the artifact bucket (the template's `ArtifactBucket` parameter names one that exists).
pub async fn create_bucket(sdk: &aws_config::SdkConfig, bucket: &str) -> Result<()> {
    s3(sdk)
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .with_context(|| format!("creating bucket {bucket}"))?;
    Ok(())
}

/// Puts the simulators' credentials in the secrets the template declares, as the operator puts
/// the real ones in after a deploy.
pub async fn put_credentials(
    sdk: &aws_config::SdkConfig,
    stack: &Stack,
    sims: &Simulators,
) -> Result<()> {
    let client = aws_sdk_secretsmanager::Client::new(sdk);
    let intune = sims.intune.config();
    let jamf = eucora_sim_jamf::SimConfig::default();
    for (id, value) in [
        (
            "IntuneSecret",
            serde_json::json!({ "tenant_id": intune.tenant_id, "client_id": intune.client_id, "client_secret": intune.client_secret }),
        ),
        (
            "JamfSecret",
            serde_json::json!({ "server_url": sims.jamf.base_url(), "client_id": jamf.client_id, "client_secret": jamf.client_secret }),
        ),
    ] {
        let arn = stack
            .secrets
            .get(id)
            .with_context(|| format!("the template declares no {id}"))?;
        client
            .put_secret_value()
            .secret_id(arn)
            .secret_string(value.to_string())
            .send()
            .await
            .with_context(|| format!("putting {id}"))?;
    }
    Ok(())
}

fn connector<P: eucora_connector::Platform>(
    store: &DynamoStore,
    platform: P,
    ring_groups: BTreeMap<Ring, String>,
) -> Connector<DynamoStore, DynamoStore, DynamoStore, P> {
    Connector {
        svc: Services {
            store: store.clone(),
            queue: (),
            policy: eucora_domain::policy::Policy::bundled(),
        },
        ledger: store.clone(),
        breaker: store.clone(),
        platform,
        breaker_policy: BreakerPolicy::default(),
        ring_groups,
        work_budget: None,
        halt_poll: Some(std::time::Duration::from_secs(2)),
    }
}

/// The Intune and Jamf connectors over the emulator, pointed at the simulators.
pub fn connectors(
    sdk: &aws_config::SdkConfig,
    stack: &Stack,
    sims: &Simulators,
) -> Result<(IntuneConnector, JamfConnector)> {
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), stack.table.clone());
    let secret = |id: &str| -> Result<SecretCache> {
        Ok(SecretCache::new(
            aws_sdk_secretsmanager::Client::new(sdk),
            stack
                .secrets
                .get(id)
                .with_context(|| format!("the template declares no {id}"))?
                .clone(),
            eucora_aws::connector_lambda::SECRET_TTL,
        ))
    };
    let artifacts = Artifacts::new(s3(sdk));
    let intune_cfg = IntuneConfig {
        graph_base: sims.intune.base_url(),
        login_base: sims.intune.base_url(),
        poll_interval: Duration::from_millis(20),
        ..IntuneConfig::default()
    };
    let intune = connector(
        &store,
        IntuneClient::new(intune_cfg, secret("IntuneSecret")?, artifacts.clone())
            .context("the Intune client")?,
        Ring::ALL.iter().map(|r| (*r, intune_group(*r))).collect(),
    );
    let jamf = connector(
        &store,
        JamfClient::new(&JamfConfig::default(), secret("JamfSecret")?, artifacts)
            .context("the Jamf client")?,
        Ring::ALL
            .iter()
            .map(|r| (*r, jamf_group(*r).to_string()))
            .collect(),
    );
    Ok((intune, jamf))
}

/// The ring groups as the template's `IntuneRingGroups` / `JamfRingGroups` parameters take them.
pub fn ring_groups_parameters() -> (String, String) {
    let intune: BTreeMap<String, String> = Ring::ALL
        .iter()
        .map(|r| (r.number().to_string(), intune_group(*r)))
        .collect();
    let jamf: BTreeMap<String, String> = Ring::ALL
        .iter()
        .map(|r| (r.number().to_string(), jamf_group(*r).to_string()))
        .collect();
    (
        serde_json::to_string(&intune).unwrap_or_default(),
        serde_json::to_string(&jamf).unwrap_or_default(),
    )
}
