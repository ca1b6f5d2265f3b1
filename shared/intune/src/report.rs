//! From Intune's install status report to one result per device.
//!
//! The report (`retrieveDeviceAppInstallationStatusReport`) has a row per device *and user*: a
//! shared PC appears once for every user who has signed in on it. The gates count devices, and
//! the telemetry store keeps one result per device, so the rows of one device are folded into
//! one result here.

use std::collections::HashMap;

use eucora_domain::gates::{DeviceResult, InstallOutcome};

/// How bad an outcome is for the device it belongs to: the higher, the worse.
fn severity(outcome: InstallOutcome) -> u8 {
    match outcome {
        InstallOutcome::Failed => 3,
        InstallOutcome::Pending => 2,
        // A report row is never "not reported"; ranked with installed should one appear.
        InstallOutcome::Installed | InstallOutcome::NotReported => 1,
        InstallOutcome::NotApplicable => 0,
    }
}

/// One result per device from a report's rows (one per device and user), in the order each
/// device first appears.
///
/// **The worst state wins**: failed, then pending, then installed, then not applicable.
/// - A failure in any user's row means the package failed on that device: the failure is real,
///   someone has to look at it, and a governance gate must not let it hide behind the other
///   users' successes.
/// - A device is installed only once no user's row is still pending: until then the install
///   has not finished for everyone who uses the device.
/// - A user for whom the app does not apply does not make the device not applicable when the
///   app was installed for another user; the device is not applicable only when no row applies.
///
/// The result's time is the latest report among the rows with the winning state (for an
/// installed device, when its last user's install was reported: when the device complied).
/// So a shared PC counts once, whatever number of users signed in on it, and the success rate
/// counts devices, not users.
pub fn one_per_device(rows: impl IntoIterator<Item = DeviceResult>) -> Vec<DeviceResult> {
    let mut devices: Vec<DeviceResult> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for row in rows {
        let Some(&i) = index.get(&row.device_id) else {
            index.insert(row.device_id.clone(), devices.len());
            devices.push(row);
            continue;
        };
        let kept = &mut devices[i];
        match severity(row.outcome).cmp(&severity(kept.outcome)) {
            std::cmp::Ordering::Greater => *kept = row,
            std::cmp::Ordering::Equal if row.at > kept.at => kept.at = row.at,
            _ => {}
        }
    }
    devices
}

#[cfg(test)]
mod tests {
    use eucora_domain::Timestamp;
    use eucora_domain::evidence::{Platform, SiteClass};

    use super::*;

    fn row(device: &str, outcome: InstallOutcome, minute: i64) -> DeviceResult {
        DeviceResult {
            device_id: device.to_owned(),
            platform: Platform::Windows,
            outcome,
            site_class: SiteClass::Online,
            at: Timestamp::parse("2026-01-05T10:00:00Z")
                .unwrap()
                .plus(time::Duration::minutes(minute)),
            last_contact: None,
        }
    }

    #[test]
    fn the_worst_state_of_a_devices_users_wins() {
        use InstallOutcome::{Failed, Installed, NotApplicable, Pending};
        let rows = vec![
            row("shared-ok", Installed, 5),
            row("single", Installed, 3),
            row("shared-ok", Installed, 9),
            row("shared-failed", Installed, 1),
            row("shared-failed", Failed, 2),
            row("shared-failed", Installed, 4),
            row("shared-pending", Pending, 0),
            row("shared-pending", Installed, 7),
            row("shared-na", NotApplicable, 1),
            row("shared-na", Installed, 2),
            row("all-na", NotApplicable, 1),
            row("all-na", NotApplicable, 3),
        ];
        let devices = one_per_device(rows);
        let summary: Vec<(&str, InstallOutcome, i64)> = devices
            .iter()
            .map(|d| {
                let minute = (d
                    .at
                    .since(Timestamp::parse("2026-01-05T10:00:00Z").unwrap()))
                .whole_minutes();
                (d.device_id.as_str(), d.outcome, minute)
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("shared-ok", Installed, 9),
                ("single", Installed, 3),
                ("shared-failed", Failed, 2),
                ("shared-pending", Pending, 0),
                ("shared-na", Installed, 2),
                ("all-na", NotApplicable, 3),
            ]
        );
    }

    #[test]
    fn a_device_without_shared_users_is_left_as_it_is() {
        let rows = vec![
            row("a", InstallOutcome::Installed, 1),
            row("b", InstallOutcome::Failed, 2),
        ];
        assert_eq!(one_per_device(rows.clone()), rows);
    }
}
