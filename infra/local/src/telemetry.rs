//! Telemetry samples (`events/telemetry/*.json`): a ring's fleet described by counts, expanded
//! into per-device results the way the connectors will report them.

use std::path::Path;

use anyhow::{Context, Result};
use eucora_domain::Ring;
use eucora_domain::Timestamp;
use eucora_domain::evidence::{Platform, SiteClass};
use eucora_domain::gates::{DeviceResult, InstallOutcome};
use serde::Deserialize;
use time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sample {
    pub ring: Ring,
    pub entered_at: Timestamp,
    pub evaluated_at: Timestamp,
    pub open_incidents: u32,
    pub rollback_validated: bool,
    fleet: Vec<FleetSlice>,
}

/// Devices of one platform and site class.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FleetSlice {
    platform: Platform,
    site_class: SiteClass,
    installed: u32,
    failed: u32,
    pending: u32,
    not_applicable: u32,
    /// Installs are spread evenly from entering the ring until this many hours later.
    installs_done_after_hours: u32,
}

impl Sample {
    pub fn load(path: &Path) -> Result<Sample> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    pub fn devices(&self) -> Vec<DeviceResult> {
        let mut out = Vec::new();
        for s in &self.fleet {
            let span = Duration::hours(i64::from(s.installs_done_after_hours));
            let n = s.installed.max(1);
            for i in 1..=s.installed {
                let at = self.entered_at.plus(span * i / n);
                out.push(self.device(s, &out, InstallOutcome::Installed, at));
            }
            for (count, outcome) in [
                (s.failed, InstallOutcome::Failed),
                (s.pending, InstallOutcome::Pending),
                (s.not_applicable, InstallOutcome::NotApplicable),
            ] {
                for _ in 0..count {
                    out.push(self.device(s, &out, outcome, self.entered_at.plus(span)));
                }
            }
        }
        out
    }

    fn device(
        &self,
        s: &FleetSlice,
        so_far: &[DeviceResult],
        outcome: InstallOutcome,
        at: Timestamp,
    ) -> DeviceResult {
        DeviceResult {
            device_id: format!("{}-{}-{:04}", s.platform, s.site_class, so_far.len()),
            platform: s.platform,
            outcome,
            site_class: s.site_class,
            // Whole seconds, as the platforms report them.
            at: Timestamp::from_unix_seconds(at.min(self.evaluated_at).unix_seconds())
                .unwrap_or(at),
            // Every device of a sample has been in touch with its platform within the hour.
            last_contact: Some(self.evaluated_at.plus(-Duration::hours(1))),
        }
    }
}
