//! Both connectors wired to their simulators over one in-memory store, for the system tests.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use eucora_connector::artifact::MemoryArtifacts;
use eucora_connector::breaker::BreakerPolicy;
use eucora_connector::credentials::StaticCredentials;
use eucora_connector::execute::Connector;
use eucora_connector::memory::{MemoryBreaker, MemoryLedger};
use eucora_domain::{ManualClock, Ring};
use eucora_intune::{IntuneClient, IntuneConfig};
use eucora_jamf::{JamfClient, JamfConfig};
use eucora_service::memory::Memory;
use eucora_service::usecases::Services;

pub type IntuneConnector = Connector<
    Memory,
    MemoryLedger,
    MemoryBreaker,
    IntuneClient<StaticCredentials, MemoryArtifacts>,
>;
pub type JamfConnector =
    Connector<Memory, MemoryLedger, MemoryBreaker, JamfClient<StaticCredentials, MemoryArtifacts>>;

/// The two simulators, with a small fleet in each ring's group, and a connector for each.
pub struct Platforms {
    pub intune_sim: eucora_sim_intune::SimHandle,
    pub jamf_sim: eucora_sim_jamf::SimHandle,
    pub intune: IntuneConnector,
    pub jamf: JamfConnector,
    pub intune_creds: StaticCredentials,
    pub jamf_creds: StaticCredentials,
}

fn connector<P: eucora_connector::Platform>(
    store: &Memory,
    platform: P,
    groups: [(Ring, &str); 2],
) -> Connector<Memory, MemoryLedger, MemoryBreaker, P> {
    Connector {
        svc: Services {
            store: store.clone(),
            queue: (),
            policy: eucora_domain::policy::Policy::bundled(),
        },
        ledger: MemoryLedger::default(),
        breaker: MemoryBreaker::default(),
        platform,
        breaker_policy: BreakerPolicy::default(),
        ring_groups: groups
            .into_iter()
            .map(|(r, g)| (r, g.to_owned()))
            .collect::<BTreeMap<_, _>>(),
        work_budget: None,
        halt_poll: None,
    }
}

impl std::fmt::Debug for Platforms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platforms")
            .field("intune", &self.intune_sim.base_url())
            .field("jamf", &self.jamf_sim.base_url())
            .finish_non_exhaustive()
    }
}

impl Platforms {
    /// `devices` Windows and `devices` macOS devices per ring, all installing within an hour (every
    /// fourth PC shared by two users), in simulators on the test's `clock`.
    pub async fn start(
        store: &Memory,
        artifacts: &MemoryArtifacts,
        devices: u32,
        clock: &ManualClock,
    ) -> Platforms {
        // No latency: these tests check behaviour; the figures at real latency are benches.
        let intune_sim = eucora_sim_intune::start_on(
            eucora_sim_intune::SimConfig {
                latency: Duration::ZERO,
                latency_jitter: Duration::ZERO,
                ..eucora_sim_intune::SimConfig::default()
            },
            Arc::new(clock.clone()),
        )
        .await;
        let jamf_sim = eucora_sim_jamf::start_on(
            eucora_sim_jamf::SimConfig::instant(),
            Arc::new(clock.clone()),
        )
        .await;
        for (ring, group, jamf_group) in [(1, "grp-canary", 41), (2, "grp-pilot", 42)] {
            let win = (0..devices)
                .map(|i| {
                    let pc = eucora_sim_intune::SimDevice::installed(
                        &format!("pc-{ring}-{i}"),
                        &format!("PC{ring}{i}"),
                        Duration::from_secs(1800),
                    );
                    // Every fourth PC is shared: a report row per user, one result per device.
                    if i % 4 == 3 {
                        pc.shared_by(&["amy@contoso.example", "ben@contoso.example"])
                    } else {
                        pc
                    }
                })
                .collect();
            intune_sim.add_group(group, win);
            let mac = (0..devices)
                .map(|i| {
                    eucora_sim_jamf::SimComputer::new(
                        ring * 1000 + i,
                        eucora_sim_jamf::ComputerOutcome::Completed,
                        Duration::from_secs(1800),
                    )
                })
                .collect();
            jamf_sim.add_computer_group(jamf_group, &format!("EUCORA Ring {ring}"), true, mac);
        }
        let c = intune_sim.config();
        let intune_creds = StaticCredentials::new(&serde_json::json!({ "tenant_id": c.tenant_id, "client_id": c.client_id, "client_secret": c.client_secret }).to_string());
        let j = eucora_sim_jamf::SimConfig::default();
        let jamf_creds = StaticCredentials::new(&serde_json::json!({ "server_url": jamf_sim.base_url(), "client_id": j.client_id, "client_secret": j.client_secret }).to_string());
        let cfg = IntuneConfig {
            login_base: intune_sim.base_url(),
            graph_base: intune_sim.base_url(),
            poll_interval: Duration::from_millis(1),
            ..IntuneConfig::default()
        };
        let intune = connector(
            store,
            IntuneClient::new(cfg, intune_creds.clone(), artifacts.clone()).expect("client"),
            [(Ring::Canary, "grp-canary"), (Ring::Pilot, "grp-pilot")],
        );
        let jamf = connector(
            store,
            JamfClient::new(
                &JamfConfig::default(),
                jamf_creds.clone(),
                artifacts.clone(),
            )
            .expect("client"),
            [(Ring::Canary, "41"), (Ring::Pilot, "42")],
        );
        Platforms {
            intune_sim,
            jamf_sim,
            intune,
            jamf,
            intune_creds,
            jamf_creds,
        }
    }
}
