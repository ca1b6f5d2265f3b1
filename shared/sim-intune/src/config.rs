//! How a simulator is configured: the tenant and its app registration, limits, the seed, and the
//! devices in each group.

use std::time::Duration;

use crate::server::{SimHandle, start};

/// The simulated tenant and its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    /// The directory (tenant) id: the token endpoint answers `AADSTS90002` for any other.
    pub tenant_id: String,
    /// The app registration's client id.
    pub client_id: String,
    /// The app registration's current client secret (see `SimHandle::rotate_secret`).
    pub client_secret: String,
    /// How long an issued access token is valid, in real time (`expires_in`; default 3599 s).
    pub token_lifetime: Duration,
    /// Seeds every id, token and random fault, so a run can be repeated exactly.
    pub seed: u64,
    /// Graph write requests (POST/PATCH/PUT/DELETE) allowed per `write_window` (Intune: 200).
    pub write_limit: u32,
    /// The sliding window of the write limit, in real time (Intune: 20 s).
    pub write_window: Duration,
    /// Every answer is held back at least this long (real time): Graph's own latency.
    pub latency: Duration,
    /// ... plus up to this much more, drawn per request from the seed (default 100 to 400 ms
    /// in all, a realistic figure for Graph; tests set both low).
    pub latency_jitter: Duration,
    /// How long a content file's SAS URI is valid after it is issued or renewed, on the
    /// simulator's clock (default 15 minutes: uploads are seen to fail 7 to 15 minutes in).
    pub sas_lifetime: Duration,
    /// How many answers show each slow upload state before it settles: the storage URI request,
    /// its renewal, the commit, and publishing after `committedContentVersion` (default 1: seen
    /// once). `SimHandle::advance` settles them all.
    pub pending_polls: u32,
    /// A blob keeps its blocks' bytes while it holds at most this many (default 64 MiB); past it,
    /// each further block only its length and SHA-256, so a package of gigabytes is not stored.
    pub blob_bytes_kept: u64,
    /// How fast one storage request takes its body, in bytes per second (default 50 MiB/s): a
    /// block takes its length over this on top of the latency. `None`: no extra time.
    pub storage_bytes_per_second: Option<u64>,
    /// Whether the SAS URIs may read the blob's block list (Get Block List needs the read
    /// permission). Intune's URIs name a stored access policy whose permissions are not
    /// documented (UNCONFIRMED); `false` answers Get Block List with Azure's 403
    /// `AuthorizationPermissionMismatch`, as a write-only SAS gets. Default `true`.
    pub sas_allows_read: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            tenant_id: "3f6c1d2e-7a4b-4c8d-9e0f-112233445566".to_owned(),
            client_id: "b7d3a9e1-5c2f-4e6a-8b1d-665544332211".to_owned(),
            client_secret: "sim8Q~local-simulator-secret-0000000000".to_owned(),
            token_lifetime: Duration::from_secs(3599),
            seed: 0x00EC_0A1E,
            write_limit: 200,
            write_window: Duration::from_secs(20),
            latency: Duration::from_millis(100),
            latency_jitter: Duration::from_millis(300),
            sas_lifetime: Duration::from_secs(15 * 60),
            pending_polls: 1,
            blob_bytes_kept: 64 * 1024 * 1024,
            storage_bytes_per_second: Some(50 * 1024 * 1024),
            sas_allows_read: true,
        }
    }
}

/// One managed Windows device in a group, and what it will report once an app reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimDevice {
    /// The Intune managed device id.
    pub id: String,
    /// The device name (`deviceName`, `DeviceName`).
    pub name: String,
    /// What the device reports for a required (or uninstall) assignment.
    pub outcome: DeviceOutcome,
    /// Simulated time after the assignment at which the device reports.
    pub after: Duration,
    /// The users who have signed in on the device. Intune's install status report has a row per
    /// device and user, so a shared device appears once per user; with none named, the device
    /// has one user, derived from its name.
    pub users: Vec<SimUser>,
    /// Simulated time after an assignment at which the device first checks in (and gets its
    /// first report row, `pendingInstall`); `None`: it never checks in, so Intune has no row
    /// for it. Default: right away. A device reports its outcome no earlier than this.
    pub first_check_in: Option<Duration>,
    /// The device has been offline this long when the simulator starts: its `lastSyncDateTime`
    /// stays there. `None`: it syncs regularly (`lastSyncDateTime` is the current time).
    pub offline_for: Option<Duration>,
    /// Whether Intune manages the device. An unmanaged device is a member of its Entra ID
    /// groups but has no managed device, no assignment reaches it and no report row names it.
    pub managed: bool,
}

/// A user who has signed in on a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimUser {
    /// `UserPrincipalName`; the report derives `UserId` and `UserName` from it.
    pub user_principal_name: String,
    /// What this user's row reports when it differs from the device's outcome (an install that
    /// failed in one user's session only); `None`: the device's outcome.
    pub outcome: Option<DeviceOutcome>,
}

impl SimDevice {
    /// A device that installs successfully `after` the assignment.
    pub fn installed(id: &str, name: &str, after: Duration) -> Self {
        Self {
            id: id.to_owned(),
            name: name.to_owned(),
            outcome: DeviceOutcome::Installed,
            after,
            users: Vec::new(),
            first_check_in: Some(Duration::ZERO),
            offline_for: None,
            managed: true,
        }
    }

    /// A device that reports an install failure with `error_code` `after` the assignment.
    pub fn failed(id: &str, name: &str, error_code: i32, after: Duration) -> Self {
        Self {
            id: id.to_owned(),
            name: name.to_owned(),
            outcome: DeviceOutcome::Failed { error_code },
            after,
            users: Vec::new(),
            first_check_in: Some(Duration::ZERO),
            offline_for: None,
            managed: true,
        }
    }

    /// A device that never reports (it stays `pendingInstall`).
    pub fn silent(id: &str, name: &str) -> Self {
        Self {
            id: id.to_owned(),
            name: name.to_owned(),
            outcome: DeviceOutcome::NeverReports,
            after: Duration::ZERO,
            users: Vec::new(),
            first_check_in: Some(Duration::ZERO),
            offline_for: None,
            managed: true,
        }
    }

    /// A device that has been offline for `offline_for` and never checks in: Intune keeps its
    /// old `lastSyncDateTime` and has no report row for it.
    pub fn never_checks_in(id: &str, name: &str, offline_for: Duration) -> Self {
        Self {
            first_check_in: None,
            offline_for: Some(offline_for),
            ..Self::silent(id, name)
        }
    }

    /// The device first checks in this long after an assignment (until then it has no report row).
    #[must_use]
    pub fn checks_in_after(mut self, after: Duration) -> Self {
        self.first_check_in = Some(after);
        self
    }

    /// The device is in its Entra ID groups but Intune does not manage it (never enrolled, or
    /// deleted from Intune during the rollout).
    #[must_use]
    pub fn unmanaged(mut self) -> Self {
        self.managed = false;
        self
    }

    /// A shared device: each of these users (user principal names) has signed in on it, and
    /// the install status report has a row for each, with the device's outcome.
    #[must_use]
    pub fn shared_by(mut self, users: &[&str]) -> Self {
        for user in users {
            self.user(user);
        }
        self
    }

    /// One of the device's users (added when new) whose row reports `outcome` rather than the
    /// device's.
    #[must_use]
    pub fn with_user_outcome(mut self, user: &str, outcome: DeviceOutcome) -> Self {
        self.user(user).outcome = Some(outcome);
        self
    }

    fn user(&mut self, upn: &str) -> &mut SimUser {
        let index = match self
            .users
            .iter()
            .position(|u| u.user_principal_name.eq_ignore_ascii_case(upn))
        {
            Some(index) => index,
            None => {
                self.users.push(SimUser {
                    user_principal_name: upn.to_owned(),
                    outcome: None,
                });
                self.users.len() - 1
            }
        };
        &mut self.users[index]
    }

    /// The users who have signed in, each with the outcome its row reports.
    pub(crate) fn signed_in(&self) -> Vec<(String, DeviceOutcome)> {
        if self.users.is_empty() {
            return vec![(
                crate::devices::user_principal_name(&self.name),
                self.outcome,
            )];
        }
        self.users
            .iter()
            .map(|u| {
                (
                    u.user_principal_name.clone(),
                    u.outcome.unwrap_or(self.outcome),
                )
            })
            .collect()
    }

    /// Whether the device reports at all: some user's row moves on from `pendingInstall`.
    pub(crate) fn reports(&self) -> bool {
        self.managed
            && self.first_check_in.is_some()
            && self
                .signed_in()
                .iter()
                .any(|(_, outcome)| *outcome != DeviceOutcome::NeverReports)
    }
}

/// What a device reports for an app assigned to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceOutcome {
    /// Required: `installed`. Uninstall: `notInstalled`.
    Installed,
    /// Required: `failed` with this error code (e.g. `-2016345060`, `0x87D1041C`).
    /// Uninstall: `uninstallFailed` with the same code.
    Failed { error_code: i32 },
    /// Never reports: the device stays `pendingInstall` for a required assignment.
    NeverReports,
}

/// A builder for a simulator: the configuration plus the groups it starts with.
///
/// ```no_run
/// # async fn demo() {
/// use std::time::Duration;
/// use eucora_sim_intune::{IntuneSim, SimDevice};
/// let sim = IntuneSim::new()
///     .write_limit(5)
///     .group("g-ring1", vec![SimDevice::installed("d1", "PC-01", Duration::from_secs(600))])
///     .start()
///     .await;
/// println!("{}", sim.base_url());
/// # }
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct IntuneSim {
    config: SimConfig,
    groups: Vec<(String, Vec<SimDevice>)>,
}

impl IntuneSim {
    /// The default tenant, registration and limits (see `SimConfig::default`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts from a whole configuration.
    pub fn with_config(config: SimConfig) -> Self {
        Self {
            config,
            groups: Vec::new(),
        }
    }

    pub fn tenant_id(mut self, tenant_id: &str) -> Self {
        tenant_id.clone_into(&mut self.config.tenant_id);
        self
    }

    pub fn client_id(mut self, client_id: &str) -> Self {
        client_id.clone_into(&mut self.config.client_id);
        self
    }

    pub fn client_secret(mut self, client_secret: &str) -> Self {
        client_secret.clone_into(&mut self.config.client_secret);
        self
    }

    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.config.token_lifetime = lifetime;
        self
    }

    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }

    pub fn write_limit(mut self, limit: u32) -> Self {
        self.config.write_limit = limit;
        self
    }

    pub fn write_window(mut self, window: Duration) -> Self {
        self.config.write_window = window;
        self
    }

    /// Each answer is held back `at_least` plus up to `jitter` (real time).
    pub fn latency(mut self, at_least: Duration, jitter: Duration) -> Self {
        self.config.latency = at_least;
        self.config.latency_jitter = jitter;
        self
    }

    /// How long a SAS URI is valid after it is issued or renewed (simulator's clock).
    pub fn sas_lifetime(mut self, lifetime: Duration) -> Self {
        self.config.sas_lifetime = lifetime;
        self
    }

    /// How many answers show each slow upload or publishing state before it settles.
    pub fn pending_polls(mut self, polls: u32) -> Self {
        self.config.pending_polls = polls;
        self
    }

    /// A blob keeps block bytes up to this many, then only lengths and digests.
    pub fn blob_bytes_kept(mut self, bytes: u64) -> Self {
        self.config.blob_bytes_kept = bytes;
        self
    }

    /// Storage upload throughput per request (`None`: unlimited).
    pub fn storage_bytes_per_second(mut self, rate: Option<u64>) -> Self {
        self.config.storage_bytes_per_second = rate;
        self
    }

    /// Whether the SAS URIs may read the block list (see `SimConfig::sas_allows_read`).
    pub fn sas_allows_read(mut self, allows: bool) -> Self {
        self.config.sas_allows_read = allows;
        self
    }

    /// A group (Entra ID group id) and its devices, present from the start.
    pub fn group(mut self, group_id: &str, devices: Vec<SimDevice>) -> Self {
        self.groups.push((group_id.to_owned(), devices));
        self
    }

    /// The configuration as built so far.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Binds `127.0.0.1:0` and serves on the current tokio runtime (see [`start`]).
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start(self) -> SimHandle {
        let handle = start(self.config).await;
        for (group_id, devices) in self.groups {
            handle.add_group(&group_id, devices);
        }
        handle
    }
}
