//! Large fleets, generated cheaply and repeatably: thousands of devices per ring with a realistic
//! mix of outcomes, check-in times, shared PCs, devices that never check in and group members
//! Intune does not manage.

use std::time::Duration;

use crate::config::{DeviceOutcome, SimDevice};
use crate::wire::mix;

/// How a generated fleet is made up. Rates are per mille of the fleet; everything is drawn from
/// `seed`, so one specification always gives the same devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fleet {
    /// Device ids are `{prefix}-{index:05}`, names `{PREFIX}{index:05}` (upper case, no dash).
    pub prefix: String,
    pub size: u32,
    pub seed: u64,
    /// Devices that report a failed install (error `0x80070643`, 1603).
    pub failed_per_mille: u32,
    /// Devices that have been offline for `offline_for` and never check in (no report row).
    pub never_check_in_per_mille: u32,
    /// Devices that check in but never finish (they stay `pendingInstall`).
    pub silent_per_mille: u32,
    /// Shared PCs, each used by two to four users (a report row per user).
    pub shared_per_mille: u32,
    /// Group members Intune does not manage.
    pub unmanaged_per_mille: u32,
    /// Devices check in within this time of an assignment, and report within twice that.
    pub report_within: Duration,
    /// How long the devices that never check in have been offline.
    pub offline_for: Duration,
}

impl Fleet {
    /// A fleet of `size` devices with a realistic mix: 1 % failed, 2 % never check in, 0.5 %
    /// stuck pending, 10 % shared, 0.5 % unmanaged; check-ins within 30 minutes.
    pub fn new(prefix: &str, size: u32) -> Self {
        Self {
            prefix: prefix.to_owned(),
            size,
            seed: 0x00F1_EE70,
            failed_per_mille: 10,
            never_check_in_per_mille: 20,
            silent_per_mille: 5,
            shared_per_mille: 100,
            unmanaged_per_mille: 5,
            report_within: Duration::from_secs(30 * 60),
            offline_for: Duration::from_secs(40 * 86_400),
        }
    }

    /// The devices, in index order.
    pub fn devices(&self) -> Vec<SimDevice> {
        (0..self.size).map(|i| self.device(i)).collect()
    }

    /// Device `index` of the fleet.
    pub fn device(&self, index: u32) -> SimDevice {
        let id = format!("{}-{index:05}", self.prefix);
        let name = format!(
            "{}{index:05}",
            self.prefix.replace('-', "").to_ascii_uppercase()
        );
        let draw = |salt: u64| mix(self.seed ^ (u64::from(index) << 8) ^ salt);
        let roll = |salt: u64| u32::try_from(draw(salt) % 1000).unwrap_or(0);
        let within = u64::try_from(self.report_within.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let check_in = Duration::from_millis(draw(0xC1) % within);
        let report = check_in + Duration::from_millis(draw(0xE7) % within);
        let kind = roll(0x0B);
        let never = self.never_check_in_per_mille;
        let silent = never + self.silent_per_mille;
        let failed = silent + self.failed_per_mille;
        if kind < never {
            return self.finish(
                SimDevice::never_checks_in(&id, &name, self.offline_for),
                index,
            );
        }
        let mut device = if kind < silent {
            SimDevice::silent(&id, &name)
        } else if kind < failed {
            SimDevice::failed(&id, &name, 1603, report)
        } else {
            SimDevice::installed(&id, &name, report)
        };
        device.first_check_in = Some(check_in);
        if roll(0x5A) < self.shared_per_mille {
            let users = 2 + draw(0x05) % 3;
            let names: Vec<String> = (0..users)
                .map(|u| format!("shift{u}.{}@contoso.example", name.to_ascii_lowercase()))
                .collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            device = device.shared_by(&names);
            if device.outcome == DeviceOutcome::Installed && roll(0x1F) < 50 {
                // Now and then one user's session fails where the others succeed.
                let failing = names[0].to_owned();
                device =
                    device.with_user_outcome(&failing, DeviceOutcome::Failed { error_code: 1603 });
            }
        }
        self.finish(device, index)
    }

    fn finish(&self, device: SimDevice, index: u32) -> SimDevice {
        let roll =
            u32::try_from(mix(self.seed ^ (u64::from(index) << 8) ^ 0xD0) % 1000).unwrap_or(0);
        if roll < self.unmanaged_per_mille {
            device.unmanaged()
        } else {
            device
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fleet_is_repeatable_and_has_the_mix_asked_for() {
        let fleet = Fleet::new("r1", 10_000);
        let devices = fleet.devices();
        assert_eq!(devices, fleet.devices());
        assert_eq!(devices.len(), 10_000);
        let never = devices
            .iter()
            .filter(|d| d.first_check_in.is_none())
            .count();
        let shared = devices.iter().filter(|d| d.users.len() > 1).count();
        let unmanaged = devices.iter().filter(|d| !d.managed).count();
        assert!((100..=300).contains(&never), "{never}");
        assert!((700..=1300).contains(&shared), "{shared}");
        assert!((20..=90).contains(&unmanaged), "{unmanaged}");
        assert_eq!(devices[7].id, "r1-00007");
    }
}
