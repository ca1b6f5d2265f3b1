//! The simulated tenant: registration and tokens, the write limit, mobile apps with their content
//! and assignments, groups of devices, and what each device has reported on the simulated clock.
//! No I/O: the surfaces (`token`, `graph`, `blob`) read and change it under one lock.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Map, Value, json};

use crate::config::{DeviceOutcome, SimConfig, SimDevice};
use crate::wire::{Prng, base64url, iso, unix_seconds};

/// The virtual group id Intune uses for "all devices" targets.
pub(crate) const ALL_DEVICES_GROUP: &str = "adadadad-808e-44e2-905a-0b7873a8a531";
/// The virtual group id Intune uses for "all licensed users" targets.
pub(crate) const ALL_USERS_GROUP: &str = "acacacac-9df4-4c7d-9d50-4ef0226f57a9";

/// A mobile app's `publishingState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishingState {
    /// Created, no committed content yet: cannot be assigned.
    NotPublished,
    /// Content committed (`committedContentVersion` set), still being processed.
    Processing,
    /// Ready to assign.
    Published,
}

impl PublishingState {
    /// The wire value: `notPublished`, `processing` or `published`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotPublished => "notPublished",
            Self::Processing => "processing",
            Self::Published => "published",
        }
    }
}

/// A mobile app as the simulator holds it, for tests to inspect.
#[derive(Debug, Clone, PartialEq)]
pub struct SimApp {
    pub id: String,
    pub display_name: String,
    pub display_version: Option<String>,
    pub publishing_state: PublishingState,
    pub committed_content_version: Option<String>,
    pub assignments: Vec<SimAssignment>,
    /// The whole object as `GET mobileApps/{id}` would answer it now.
    pub properties: Value,
}

/// One of an app's assignments, for tests to inspect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimAssignment {
    pub id: String,
    /// `required`, `available`, `uninstall` or `availableWithoutEnrollment`.
    pub intent: String,
    /// The target's `@odata.type`, e.g. `#microsoft.graph.groupAssignmentTarget`.
    pub target_type: String,
    /// The target's `groupId`, when it has one.
    pub group_id: Option<String>,
}

/// A state that moves on once it has been shown to a client (or the clock moves): long-running
/// Intune operations (`processing`, `...Pending`) are seen a set number of times (once by
/// default, `SimConfig::pending_polls`), then settle.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stepped<T: Copy> {
    current: T,
    next: Option<T>,
    /// Answers still to show `current` before it settles.
    shows_left: u32,
}

impl<T: Copy> Stepped<T> {
    pub(crate) fn settled(value: T) -> Self {
        Self {
            current: value,
            next: None,
            shows_left: 0,
        }
    }

    /// `current` is shown `shows` times (at least once), then `next`.
    pub(crate) fn pending_for(current: T, next: T, shows: u32) -> Self {
        Self {
            current,
            next: Some(next),
            shows_left: shows.max(1),
        }
    }

    pub(crate) fn peek(&self) -> T {
        self.current
    }

    /// The state a client sees now; a pending state settles after it has been seen enough.
    pub(crate) fn show(&mut self) -> T {
        let shown = self.current;
        if self.next.is_some() {
            if self.shows_left <= 1 {
                self.settle();
            } else {
                self.shows_left -= 1;
            }
        }
        shown
    }

    pub(crate) fn settle(&mut self) {
        if let Some(next) = self.next.take() {
            self.current = next;
        }
        self.shows_left = 0;
    }
}

/// A content file's `uploadState` (the values the simulator reaches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UploadState {
    AzureStorageUriRequestPending,
    AzureStorageUriRequestSuccess,
    AzureStorageUriRenewalPending,
    AzureStorageUriRenewalSuccess,
    CommitFilePending,
    CommitFileSuccess,
    CommitFileFailed,
}

impl UploadState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::AzureStorageUriRequestPending => "azureStorageUriRequestPending",
            Self::AzureStorageUriRequestSuccess => "azureStorageUriRequestSuccess",
            Self::AzureStorageUriRenewalPending => "azureStorageUriRenewalPending",
            Self::AzureStorageUriRenewalSuccess => "azureStorageUriRenewalSuccess",
            Self::CommitFilePending => "commitFilePending",
            Self::CommitFileSuccess => "commitFileSuccess",
            Self::CommitFileFailed => "commitFileFailed",
        }
    }

    /// Whether the file has a SAS URI to show.
    fn has_uri(self) -> bool {
        self != Self::AzureStorageUriRequestPending
    }

    /// Whether a commit may be requested in this state.
    pub(crate) fn can_commit(self) -> bool {
        matches!(
            self,
            Self::AzureStorageUriRequestSuccess
                | Self::AzureStorageUriRenewalSuccess
                | Self::CommitFileFailed
        )
    }
}

/// `resultantAppState`, as the install status reports carry it. The fact sheet
/// (`shared/reference/platform-apis.md`, A, "Install status") gives the numbers: installed=1,
/// failed=2, notInstalled=3, uninstallFailed=4, pendingInstall=5, unknown=99, notApplicable=-1.
/// The simulator writes them as numbers in `InstallState` (`Int32`) and as the number's text in
/// `AppInstallState` (`String`, next to its localised `AppInstallState_loc`), as the report
/// rows seen in public Intune tooling do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InstallState {
    Installed,
    Failed,
    NotInstalled,
    UninstallFailed,
    PendingInstall,
}

impl InstallState {
    pub(crate) fn code(self) -> i32 {
        match self {
            Self::Installed => 1,
            Self::Failed => 2,
            Self::NotInstalled => 3,
            Self::UninstallFailed => 4,
            Self::PendingInstall => 5,
        }
    }

    pub(crate) fn localized(self) -> &'static str {
        match self {
            Self::Installed => "Installed",
            Self::Failed => "Failed",
            Self::NotInstalled => "Not installed",
            Self::UninstallFailed => "Uninstall failed",
            Self::PendingInstall => "Install pending",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct App {
    pub id: String,
    pub odata_type: String,
    /// Writable properties as the client sent them (create, then PATCH merges).
    pub props: Map<String, Value>,
    pub created: SystemTime,
    pub modified: SystemTime,
    pub publishing: Stepped<PublishingState>,
    pub committed_content_version: Option<String>,
    pub content_versions: Vec<ContentVersion>,
    pub assignments: Vec<Assignment>,
}

#[derive(Debug, Clone)]
pub(crate) struct ContentVersion {
    pub id: String,
    pub files: Vec<ContentFile>,
}

#[derive(Debug, Clone)]
pub(crate) struct ContentFile {
    pub id: String,
    pub name: String,
    pub size: u64,
    pub size_encrypted: u64,
    pub manifest: Value,
    pub is_dependency: bool,
    pub created: SystemTime,
    pub upload: Stepped<UploadState>,
}

/// One block of a blob: its length and SHA-256 always, its bytes only while the blob holds at
/// most `SimConfig::blob_bytes_kept` (a package of gigabytes is checked, not stored).
#[derive(Debug, Clone)]
pub(crate) struct Block {
    pub len: u64,
    pub sha256: [u8; 32],
    pub bytes: Option<bytes::Bytes>,
}

/// The simulated Azure blob behind a content file's SAS URI.
#[derive(Debug, Clone)]
pub(crate) struct Blob {
    /// The stored access policy the SAS names (`si`): renewing the upload extends its expiry, so
    /// the URI stays the same.
    pub policy: String,
    pub sig: String,
    pub expires: SystemTime,
    /// Uploaded, not yet committed blocks by block id (as sent, base64).
    pub uncommitted: HashMap<String, Block>,
    /// The committed block list, in order.
    pub committed: Vec<(String, Block)>,
    /// Bytes held by this blob's blocks (committed and uncommitted).
    pub kept: u64,
    /// Put Block requests accepted, by block id (never reset).
    pub block_puts: HashMap<String, u32>,
    /// Bytes accepted by Put Block, in all.
    pub bytes_received: u64,
}

impl Blob {
    pub(crate) fn new(policy: String, sig: String, expires: SystemTime) -> Self {
        Self {
            policy,
            sig,
            expires,
            uncommitted: HashMap::new(),
            committed: Vec::new(),
            kept: 0,
            block_puts: HashMap::new(),
            bytes_received: 0,
        }
    }

    /// A block of `data`, keeping its bytes while the blob stays within `limit`.
    pub(crate) fn block(&mut self, data: &bytes::Bytes, limit: u64) -> Block {
        use sha2::Digest as _;
        let len = data.len() as u64;
        let bytes = (self.kept + len <= limit).then(|| {
            self.kept += len;
            data.clone()
        });
        Block {
            len,
            sha256: sha2::Sha256::digest(data).into(),
            bytes,
        }
    }

    /// Recounts the bytes held after blocks were dropped.
    pub(crate) fn recount(&mut self) {
        self.kept = self
            .uncommitted
            .values()
            .chain(self.committed.iter().map(|(_, b)| b))
            .filter_map(|b| b.bytes.as_ref())
            .map(|b| b.len() as u64)
            .sum();
    }

    /// The committed length.
    pub(crate) fn committed_len(&self) -> u64 {
        self.committed.iter().map(|(_, b)| b.len).sum()
    }

    /// The committed content, when there is some and its bytes were kept.
    pub(crate) fn content(&self) -> Option<Vec<u8>> {
        if self.committed.is_empty() {
            return None;
        }
        let mut out = Vec::new();
        for (_, block) in &self.committed {
            out.extend_from_slice(block.bytes.as_ref()?);
        }
        Some(out)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Assignment {
    pub id: String,
    pub intent: String,
    pub target: Value,
    pub settings: Value,
    /// Simulated time of the assignment; devices report `after` it.
    pub assigned_at: Duration,
    pub assigned_wall: SystemTime,
    /// Devices that have reported for this assignment.
    pub reported: HashSet<String>,
}

impl Assignment {
    pub(crate) fn target_type(&self) -> &str {
        self.target
            .get("@odata.type")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    pub(crate) fn group_id(&self) -> Option<&str> {
        self.target.get("groupId").and_then(Value::as_str)
    }

    /// Two assignments are "the same" (and keep their clock across a replacing `assign`) when
    /// intent and target agree.
    pub(crate) fn same_as(&self, other: &Self) -> bool {
        self.intent == other.intent
            && self.target_type() == other.target_type()
            && self.group_id() == other.group_id()
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "@odata.type": "#microsoft.graph.mobileAppAssignment",
            "id": self.id,
            "intent": self.intent,
            "target": self.target,
            "settings": self.settings,
        })
    }

    fn snapshot(&self) -> SimAssignment {
        SimAssignment {
            id: self.id.clone(),
            intent: self.intent.clone(),
            target_type: self.target_type().to_owned(),
            group_id: self.group_id().map(str::to_owned),
        }
    }
}

/// What a device last reported for an app: a state per user signed in on it.
#[derive(Debug, Clone)]
pub(crate) struct DeviceAppState {
    pub device_name: String,
    pub users: Vec<UserAppState>,
    pub modified: SystemTime,
}

/// One user's row of a device's report.
#[derive(Debug, Clone)]
pub(crate) struct UserAppState {
    pub user_principal_name: String,
    pub state: InstallState,
    pub error_code: i32,
}

/// One row of an install status report (one device and one user), before columns are chosen.
#[derive(Debug, Clone)]
pub(crate) struct ReportRow {
    pub device_id: String,
    pub device_name: String,
    pub user_principal_name: String,
    pub state: InstallState,
    pub error_code: i32,
    pub modified: SystemTime,
}

#[derive(Debug, Clone, Copy)]
struct TokenRecord {
    expires: Instant,
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenProblem {
    Missing,
    Unknown,
    Expired,
}

#[derive(Debug)]
pub(crate) struct State {
    pub config: SimConfig,
    pub secret_expired: bool,
    tokens: HashMap<String, TokenRecord>,
    writes: VecDeque<Instant>,
    pub ids: Prng,
    pub apps: Vec<App>,
    pub groups: Vec<(String, Vec<SimDevice>)>,
    pub device_states: HashMap<(String, String), DeviceAppState>,
    pub blobs: HashMap<String, Blob>,
    /// The simulated clock: how far `advance` has moved it.
    pub clock: Duration,
    pub fail_next_commits: u32,
    /// After this many more accepted Put Block requests, the SAS of the blob that took the last
    /// one expires (a deterministic stand-in for an upload that outlives its URI).
    pub expire_sas_after_blocks: Option<u32>,
}

impl State {
    pub(crate) fn new(config: SimConfig) -> Self {
        let ids = Prng::new(config.seed);
        Self {
            config,
            secret_expired: false,
            tokens: HashMap::new(),
            writes: VecDeque::new(),
            ids,
            apps: Vec::new(),
            groups: Vec::new(),
            device_states: HashMap::new(),
            blobs: HashMap::new(),
            clock: Duration::ZERO,
            fail_next_commits: 0,
            expire_sas_after_blocks: None,
        }
    }

    // ---- tokens -------------------------------------------------------------------------

    /// Issues an access token; answers it and its `expires_in`.
    pub(crate) fn issue_token(&mut self, wall: SystemTime, now: Instant) -> (String, u64) {
        let lifetime = self.config.token_lifetime;
        let iat = unix_seconds(wall);
        let claims = json!({
            "aud": "https://graph.microsoft.com",
            "iss": format!("https://sts.windows.net/{}/", self.config.tenant_id),
            "iat": iat,
            "nbf": iat,
            "exp": iat + lifetime.as_secs(),
            "appid": self.config.client_id,
            "tid": self.config.tenant_id,
            "roles": ["DeviceManagementApps.ReadWrite.All", "DeviceManagementManagedDevices.Read.All"],
            "uti": self.ids.hex(1),
        });
        let header = base64url(br#"{"typ":"JWT","alg":"RS256","kid":"simulator"}"#);
        let token = format!(
            "{header}.{}.{}",
            base64url(claims.to_string().as_bytes()),
            base64url(self.ids.hex(4).as_bytes())
        );
        self.tokens.insert(
            token.clone(),
            TokenRecord {
                expires: now + lifetime,
            },
        );
        (token, lifetime.as_secs())
    }

    pub(crate) fn check_bearer(
        &self,
        authorization: Option<&str>,
        now: Instant,
    ) -> Result<(), TokenProblem> {
        let token = authorization
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty())
            .ok_or(TokenProblem::Missing)?;
        let record = self.tokens.get(token).ok_or(TokenProblem::Unknown)?;
        if now >= record.expires {
            Err(TokenProblem::Expired)
        } else {
            Ok(())
        }
    }

    pub(crate) fn expire_tokens(&mut self, now: Instant) {
        for record in self.tokens.values_mut() {
            record.expires = now;
        }
    }

    // ---- the tenant write limit ---------------------------------------------------------

    /// Counts a write against the sliding window; when the window is full, answers how long
    /// until the oldest write leaves it.
    pub(crate) fn admit_write(&mut self, now: Instant) -> Result<(), Duration> {
        let window = self.config.write_window;
        while self
            .writes
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            self.writes.pop_front();
        }
        if let Some(oldest) = self.writes.front()
            && self.writes.len() >= self.config.write_limit as usize
        {
            let wait = window.saturating_sub(now.duration_since(*oldest));
            return Err(wait.max(Duration::from_millis(1)));
        }
        if self.config.write_limit == 0 {
            return Err(window);
        }
        self.writes.push_back(now);
        Ok(())
    }

    // ---- apps ---------------------------------------------------------------------------

    pub(crate) fn app(&self, id: &str) -> Option<&App> {
        self.apps.iter().find(|a| a.id.eq_ignore_ascii_case(id))
    }

    pub(crate) fn app_mut(&mut self, id: &str) -> Option<&mut App> {
        self.apps.iter_mut().find(|a| a.id.eq_ignore_ascii_case(id))
    }

    /// The SAS URI of a content file's blob.
    pub(crate) fn sas_uri(&self, base_url: &str, file_id: &str) -> Option<(String, SystemTime)> {
        let blob = self.blobs.get(file_id)?;
        // Intune's URIs name a stored access policy (`si`) rather than carry their expiry (`se`):
        // a renewal extends the policy, and the URI stays the same.
        Some((
            format!(
                "{base_url}/blob/{file_id}.intunewin.bin?sv=2017-04-17&sr=b&si={}&sig={}",
                blob.policy, blob.sig
            ),
            blob.expires,
        ))
    }

    pub(crate) fn file_json(
        &self,
        file: &ContentFile,
        upload: UploadState,
        base_url: &str,
    ) -> Value {
        let (uri, expires) = match self.sas_uri(base_url, &file.id) {
            Some((uri, expires)) if upload.has_uri() => {
                (Value::String(uri), Value::String(iso(expires)))
            }
            _ => (Value::Null, Value::Null),
        };
        json!({
            "@odata.type": "#microsoft.graph.mobileAppContentFile",
            "id": file.id,
            "name": file.name,
            "size": file.size,
            "sizeEncrypted": file.size_encrypted,
            "manifest": file.manifest,
            "isDependency": file.is_dependency,
            "isFrameworkFile": false,
            "isCommitted": upload == UploadState::CommitFileSuccess,
            "createdDateTime": iso(file.created),
            "uploadState": upload.as_str(),
            "azureStorageUri": uri,
            "azureStorageUriExpirationDateTime": expires,
        })
    }

    // ---- devices and the simulated clock --------------------------------------------------

    pub(crate) fn add_group(&mut self, group_id: &str, devices: Vec<SimDevice>) {
        if let Some(group) = self
            .groups
            .iter_mut()
            .find(|(id, _)| id.eq_ignore_ascii_case(group_id))
        {
            group.1 = devices;
        } else {
            self.groups.push((group_id.to_owned(), devices));
        }
    }

    /// Every device Intune manages, once, in the order groups and devices were added.
    pub(crate) fn all_devices(&self) -> Vec<&SimDevice> {
        let mut seen = HashSet::new();
        self.groups
            .iter()
            .flat_map(|(_, devices)| devices)
            .filter(|d| d.managed && seen.insert(d.id.as_str()))
            .collect()
    }

    /// The managed devices of a group (what an Intune assignment to it reaches).
    fn group_devices(&self, group_id: &str) -> Vec<&SimDevice> {
        self.group_members(group_id)
            .map(|members| members.iter().filter(|d| d.managed).collect())
            .unwrap_or_default()
    }

    /// Every device of an Entra ID group, managed or not; `None` when there is no such group.
    pub(crate) fn group_members(&self, group_id: &str) -> Option<&[SimDevice]> {
        self.groups
            .iter()
            .find(|(id, _)| id.eq_ignore_ascii_case(group_id))
            .map(|(_, devices)| devices.as_slice())
    }

    /// Simulated time since the start at which the simulator started, on the wall clock.
    pub(crate) fn epoch(&self, wall_now: SystemTime) -> SystemTime {
        wall_now.checked_sub(self.clock).unwrap_or(wall_now)
    }

    /// The devices an include assignment reaches, less the app's exclusion groups.
    fn reached_devices(&self, app: &App, assignment: &Assignment) -> Vec<&SimDevice> {
        let excluded: HashSet<&str> = app
            .assignments
            .iter()
            .filter(|a| a.target_type() == "#microsoft.graph.exclusionGroupAssignmentTarget")
            .filter_map(Assignment::group_id)
            .flat_map(|g| self.group_devices(g))
            .map(|d| d.id.as_str())
            .collect();
        let included = match assignment.target_type() {
            "#microsoft.graph.groupAssignmentTarget" => assignment
                .group_id()
                .map(|g| self.group_devices(g))
                .unwrap_or_default(),
            "#microsoft.graph.allDevicesAssignmentTarget"
            | "#microsoft.graph.allLicensedUsersAssignmentTarget" => self.all_devices(),
            _ => Vec::new(),
        };
        included
            .into_iter()
            .filter(|d| !excluded.contains(d.id.as_str()))
            .collect()
    }

    /// Moves the simulated clock: pending publishing and upload steps settle, and every device
    /// whose report falls due reports, in the order of the time it was due.
    pub(crate) fn advance(&mut self, by: Duration, wall_now: SystemTime) {
        self.clock += by;
        for app in &mut self.apps {
            app.publishing.settle();
            for file in app
                .content_versions
                .iter_mut()
                .flat_map(|cv| cv.files.iter_mut())
            {
                file.upload.settle();
            }
        }
        let mut due_events = Vec::new();
        for (app_index, app) in self.apps.iter().enumerate() {
            for (assignment_index, assignment) in app.assignments.iter().enumerate() {
                if assignment.intent != "required" && assignment.intent != "uninstall" {
                    continue;
                }
                for device in self.reached_devices(app, assignment) {
                    // A device reports at a check-in: not before its first.
                    let due = assignment.assigned_at
                        + device.after.max(device.first_check_in.unwrap_or_default());
                    if device.reports()
                        && due <= self.clock
                        && !assignment.reported.contains(&device.id)
                    {
                        due_events.push((due, app_index, assignment_index, device.clone()));
                    }
                }
            }
        }
        due_events.sort_by_key(|(due, ..)| *due);
        for (due, app_index, assignment_index, device) in due_events {
            let modified = wall_now
                .checked_sub(self.clock.saturating_sub(due))
                .unwrap_or(wall_now);
            let app = &mut self.apps[app_index];
            let assignment = &mut app.assignments[assignment_index];
            assignment.reported.insert(device.id.clone());
            let key = (app.id.clone(), device.id.clone());
            let before = self.device_states.get(&key);
            let users = device
                .signed_in()
                .into_iter()
                .map(|(upn, outcome)| {
                    let (state, error_code) = match (assignment.intent.as_str(), outcome) {
                        // A user whose session never reports keeps the row it had.
                        (_, DeviceOutcome::NeverReports) => before
                            .and_then(|b| {
                                b.users
                                    .iter()
                                    .find(|u| u.user_principal_name == upn)
                                    .map(|u| (u.state, u.error_code))
                            })
                            .unwrap_or((InstallState::PendingInstall, 0)),
                        ("required", DeviceOutcome::Failed { error_code }) => {
                            (InstallState::Failed, error_code)
                        }
                        ("required", _) => (InstallState::Installed, 0),
                        (_, DeviceOutcome::Failed { error_code }) => {
                            (InstallState::UninstallFailed, error_code)
                        }
                        _ => (InstallState::NotInstalled, 0),
                    };
                    UserAppState {
                        user_principal_name: upn,
                        state,
                        error_code,
                    }
                })
                .collect();
            self.device_states.insert(
                key,
                DeviceAppState {
                    device_name: device.name.clone(),
                    users,
                    modified,
                },
            );
        }
    }

    /// The install status of every device that has reported for the app, and `pendingInstall`
    /// for each device a required assignment reaches that has checked in since but not reported
    /// yet: a row per device and user, as Intune's report has (a shared device appears once per
    /// user). A device that has not checked in since the assignment has no row at all.
    ///
    /// The rows come in no particular order (a seeded shuffle, stable while the rows do not
    /// change): Intune promises none, and a client must not rely on one.
    pub(crate) fn report_rows(&self, app_id: &str) -> Vec<ReportRow> {
        let mut rows = self.report_rows_unordered(app_id);
        let seed = self.config.seed;
        rows.sort_by_cached_key(|r| {
            crate::wire::mix(
                seed ^ crate::wire::fnv64(&r.device_id)
                    ^ crate::wire::fnv64(&r.user_principal_name).rotate_left(7),
            )
        });
        rows
    }

    fn report_rows_unordered(&self, app_id: &str) -> Vec<ReportRow> {
        let Some(app) = self.app(app_id) else {
            return Vec::new();
        };
        let mut pending: HashMap<&str, SystemTime> = HashMap::new();
        for assignment in app.assignments.iter().filter(|a| a.intent == "required") {
            for device in self.reached_devices(app, assignment) {
                let Some(check_in) = device.first_check_in else {
                    continue;
                };
                let due = assignment.assigned_at + check_in;
                if due > self.clock {
                    continue;
                }
                let at = assignment.assigned_wall + check_in;
                pending
                    .entry(device.id.as_str())
                    .and_modify(|t| *t = (*t).min(at))
                    .or_insert(at);
            }
        }
        let mut rows = Vec::new();
        let mut listed = HashSet::new();
        for device in self.all_devices() {
            let key = (app.id.clone(), device.id.clone());
            if let Some(reported) = self.device_states.get(&key) {
                rows.extend(user_rows(&device.id, reported));
            } else if let Some(assigned) = pending.get(device.id.as_str()) {
                rows.extend(device.signed_in().into_iter().map(|(upn, _)| ReportRow {
                    device_id: device.id.clone(),
                    device_name: device.name.clone(),
                    user_principal_name: upn,
                    state: InstallState::PendingInstall,
                    error_code: 0,
                    modified: *assigned,
                }));
            } else {
                continue;
            }
            listed.insert(device.id.clone());
        }
        let mut orphans: Vec<_> = self
            .device_states
            .iter()
            .filter(|((a, d), _)| *a == app.id && !listed.contains(d))
            .flat_map(|((_, d), s)| user_rows(d, s))
            .collect();
        orphans.sort_by(|a, b| a.device_id.cmp(&b.device_id));
        rows.extend(orphans);
        rows
    }
}

fn user_rows<'s>(
    device_id: &'s str,
    reported: &'s DeviceAppState,
) -> impl Iterator<Item = ReportRow> + 's {
    reported.users.iter().map(move |user| ReportRow {
        device_id: device_id.to_owned(),
        device_name: reported.device_name.clone(),
        user_principal_name: user.user_principal_name.clone(),
        state: user.state,
        error_code: user.error_code,
        modified: reported.modified,
    })
}

impl App {
    pub(crate) fn snapshot(&self) -> SimApp {
        SimApp {
            id: self.id.clone(),
            display_name: self
                .props
                .get("displayName")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            display_version: self
                .props
                .get("displayVersion")
                .and_then(Value::as_str)
                .map(str::to_owned),
            publishing_state: self.publishing.peek(),
            committed_content_version: self.committed_content_version.clone(),
            assignments: self.assignments.iter().map(Assignment::snapshot).collect(),
            properties: Value::Object(self.to_json(self.publishing.peek())),
        }
    }

    /// The object as Graph shows it, with the given `publishingState`.
    pub(crate) fn to_json(&self, publishing: PublishingState) -> Map<String, Value> {
        let mut object = Map::new();
        object.insert("@odata.type".into(), Value::String(self.odata_type.clone()));
        object.insert("id".into(), Value::String(self.id.clone()));
        for (key, value) in &self.props {
            object.insert(key.clone(), value.clone());
        }
        for (key, default) in [
            ("description", Value::Null),
            ("publisher", Value::Null),
            ("isFeatured", Value::Bool(false)),
            ("roleScopeTagIds", json!([])),
            ("dependentAppCount", json!(0)),
            ("supersedingAppCount", json!(0)),
            ("supersededAppCount", json!(0)),
        ] {
            object.entry(key).or_insert(default);
        }
        let size: u64 = self
            .content_versions
            .iter()
            .filter(|cv| Some(&cv.id) == self.committed_content_version.as_ref())
            .flat_map(|cv| &cv.files)
            .map(|f| f.size)
            .sum();
        object.insert("createdDateTime".into(), Value::String(iso(self.created)));
        object.insert(
            "lastModifiedDateTime".into(),
            Value::String(iso(self.modified)),
        );
        object.insert(
            "publishingState".into(),
            Value::String(publishing.as_str().into()),
        );
        object.insert(
            "committedContentVersion".into(),
            self.committed_content_version
                .clone()
                .map_or(Value::Null, Value::String),
        );
        object.insert("size".into(), json!(size));
        object.insert(
            "isAssigned".into(),
            Value::Bool(!self.assignments.is_empty()),
        );
        object
    }

    pub(crate) fn content_version_mut(&mut self, id: &str) -> Option<&mut ContentVersion> {
        self.content_versions.iter_mut().find(|cv| cv.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(limit: u32) -> State {
        State::new(SimConfig {
            write_limit: limit,
            write_window: Duration::from_secs(20),
            ..SimConfig::default()
        })
    }

    #[test]
    fn a_stepped_state_is_seen_once_then_settles() {
        let mut s = Stepped::pending_for(1, 2, 1);
        assert_eq!(s.peek(), 1);
        assert_eq!(s.show(), 1);
        assert_eq!(s.show(), 2);
        assert_eq!(Stepped::settled(3).show(), 3);
        let mut slow = Stepped::pending_for(1, 2, 3);
        assert_eq!(
            [slow.show(), slow.show(), slow.show(), slow.show()],
            [1, 1, 1, 2]
        );
        let mut settled = Stepped::pending_for(1, 2, 5);
        settled.settle();
        assert_eq!(settled.show(), 2);
    }

    #[test]
    fn a_blob_keeps_bytes_only_up_to_its_limit() {
        let mut blob = Blob::new("p".into(), "s".into(), SystemTime::now());
        let data = bytes::Bytes::from_static(b"0123456789");
        let kept = blob.block(&data, 15);
        assert_eq!(kept.bytes.as_deref(), Some(&b"0123456789"[..]));
        let digest_only = blob.block(&data, 15);
        assert_eq!((digest_only.len, digest_only.bytes.is_none()), (10, true));
        assert_eq!(digest_only.sha256, kept.sha256);
        blob.committed = vec![("a".into(), kept), ("b".into(), digest_only)];
        assert_eq!(blob.committed_len(), 20);
        assert_eq!(blob.content(), None, "not every byte was kept");
    }

    #[test]
    fn the_write_window_slides() {
        let mut s = state(2);
        let t0 = Instant::now();
        assert!(s.admit_write(t0).is_ok());
        assert!(s.admit_write(t0 + Duration::from_secs(5)).is_ok());
        let wait = s.admit_write(t0 + Duration::from_secs(6)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(14));
        assert!(s.admit_write(t0 + Duration::from_secs(20)).is_ok());
    }

    #[test]
    fn tokens_expire_at_their_lifetime() {
        let mut s = state(1);
        let now = Instant::now();
        let (token, expires_in) = s.issue_token(SystemTime::now(), now);
        let header = format!("Bearer {token}");
        let lifetime = Duration::from_secs(expires_in);
        let just_before = lifetime.saturating_sub(Duration::from_millis(1));
        assert_eq!(s.check_bearer(Some(&header), now + just_before), Ok(()));
        assert_eq!(
            s.check_bearer(Some(&header), now + lifetime),
            Err(TokenProblem::Expired)
        );
    }

    #[test]
    fn tokens_expire_on_request() {
        let mut s = state(1);
        let now = Instant::now();
        let (token, expires_in) = s.issue_token(SystemTime::now(), now);
        assert_eq!(expires_in, 3599);
        assert_eq!(token.split('.').count(), 3);
        let header = format!("Bearer {token}");
        assert_eq!(s.check_bearer(Some(&header), now), Ok(()));
        assert_eq!(s.check_bearer(None, now), Err(TokenProblem::Missing));
        assert_eq!(
            s.check_bearer(Some("Bearer nope"), now),
            Err(TokenProblem::Unknown)
        );
        s.expire_tokens(now);
        assert_eq!(
            s.check_bearer(Some(&header), now),
            Err(TokenProblem::Expired)
        );
    }
}
