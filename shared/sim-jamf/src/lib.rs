//! A local simulator of Jamf Pro for testing EUCORA's Jamf connector: the Jamf Pro API (JSON) and
//! the Classic API (XML, and JSON for reads that ask for it) on one loopback port, with a two-node
//! cluster, a simulated fleet of Macs with its own clock, and fault injection.
//!
//! ```no_run
//! # async fn example() {
//! use std::time::Duration;
//! use eucora_sim_jamf::{ComputerOutcome, SimComputer, SimConfig, start};
//!
//! let sim = start(SimConfig::default()).await;
//! sim.add_computer_group(10, "Ring 1 - Canary", true, vec![
//!     SimComputer::new(1, ComputerOutcome::Completed, Duration::from_secs(600)),
//!     SimComputer::new(2, ComputerOutcome::Failed, Duration::from_secs(1200)),
//! ]);
//! let base = sim.base_url(); // http://127.0.0.1:PORT — point the connector here
//! // ... the connector creates a package and a policy scoped to group 10 ...
//! sim.advance(Duration::from_secs(3600)); // both computers have now run the policy
//! # }
//! ```
//!
//! # What it answers
//!
//! Tokens (no Bearer needed):
//! - `POST /api/v1/oauth/token` and `POST /api/oauth/token`, form `grant_type=client_credentials`,
//!   `client_id`, `client_secret` (or the two in a Basic header) → 200
//!   `{"access_token","scope","token_type":"Bearer","expires_in"}`; wrong credentials → 401
//!   `{"error":"invalid_client"}`; another grant → 400 `{"error":"unsupported_grant_type"}`.
//!   With [`SimConfig::oauth_enabled`] false both paths answer 404 (a server older than 10.49);
//!   with [`SimConfig::legacy_oauth_path_only`] only `/api/oauth/token` exists.
//! - `POST /api/v1/auth/token` with Basic → `{"token","expires"}` (ISO time with milliseconds);
//!   bad → 401 `{"httpStatus":401,"errors":[]}`. `POST /api/v1/auth/keep-alive` (Bearer) → a new
//!   `{"token","expires"}`, the old token stops working. `POST /api/v1/auth/invalidate-token` → 204.
//!
//! Everything else needs a valid `Authorization: Bearer` token (OAuth or user token, on both
//! APIs) → else 401: `{"httpStatus":401,"errors":[{"code":"INVALID_TOKEN",...}]}` under `/api`, the
//! HTML status page under `/JSSResource`. Tokens expire by real time after
//! [`SimConfig::token_lifetime`]; [`SimHandle::expire_tokens`] ends them all at once.
//!
//! Jamf Pro API (JSON; errors `{"httpStatus","errors":[{"code","field","description","id"}]}`).
//! Paths, query parameters, statuses and bodies follow Jamf's published schema (`/api/schema` of
//! Jamf Pro 11.30.1); the slice the simulator serves is kept in
//! `tests/fixtures/jamf-pro-api-slice.json` and every answer is checked against it
//! (`tests/sim/pro_schema.rs`). Unset properties are written as `null`, as Jamf writes them.
//! - `GET /api/v1/computers-inventory`, `/api/v3/computers-inventory` (`page`, `page-size` (max
//!   2000), `sort` such as `general.name:asc,id:desc` (default `general.name:asc`), `filter` in
//!   RSQL; `filter` and `sort` take exactly the fields Jamf lists for them, the simulator holding
//!   values for `id`, `udid` and the `general` ones it renders, null for the rest; `section`,
//!   repeated or comma-separated, default `GENERAL`, v1 `ComputerSection`, v3 `ComputerSectionV3`
//!   (no `PLUGINS` or `FONTS`)) → `{"totalCount","results":[{"id","udid","general":{...}}]}`.
//!   `GET /api/v{1,3}/computers-inventory/{id}` (with `section`) and
//!   `/api/v{1,3}/computers-inventory-detail/{id}` (every section). Only `GENERAL`,
//!   `PACKAGE_RECEIPTS` and `GROUP_MEMBERSHIPS` hold data; other sections are `null`. An
//!   oversized `page-size` is clamped to 2000 without an error, as Jamf does. `general.lastContactTime`
//!   moves with the Mac's check-ins (every 15 minutes, except for Macs that never check in);
//!   `packageReceipts.installedByJamfPro` lists the file names of the packages policies installed,
//!   from the moment an inventory report carried them (see "Policies and simulated time").
//! - `POST /api/v1/packages` → 201 `{"id","href"}`. Every missing required field (`packageName,
//!   fileName, categoryId ("-1" for none), priority, fillUserTemplate, rebootRequired, osInstall,
//!   suppressUpdates, suppressFromDock, suppressEula, suppressRegistration`) is one
//!   `INVALID_FIELD` error in a 400; a `packageName` already used → 400 `DUPLICATE_FIELD` on
//!   `packageName`; an unknown `categoryId` → 400 `INVALID_FIELD`; properties Jamf does not
//!   declare are ignored. `GET /api/v1/packages` (`filter` over `id, fileName, packageName,
//!   categoryId, info, notes, manifestFileName, cloudTransferStatus`, e.g. `packageName=="x"`;
//!   `sort`, paging), `GET|PUT|DELETE /api/v1/packages/{id}`, `POST /api/v1/packages/{id}/upload`
//!   (multipart part `file`) → 201 `{"id","href"}`; see "Package files" below.
//! - `GET|POST /api/v1/categories` (`filter` over `name`, `priority`), `GET
//!   /api/v1/categories/{id}`; `GET /api/v1/jamf-pro-version`.
//! - `GET /api/v1/computer-groups` (a plain array of `{"id","name","smartGroup"}`) and
//!   `GET /api/v3/computer-groups/smart-group-membership/{id}` (and the deprecated `/api/v2/...`)
//!   → `{"members":[ids]}`; smart groups only, 404 otherwise.
//!
//! Classic API (XML; a `GET` answers JSON instead when the request sends `Accept:
//! application/json`; writes take XML; errors are HTML status pages as a real server writes them:
//! a first `<p style=…>` with the status, a second `<p>` saying what went wrong, such as
//! `Error: Duplicate name`, and a third with a link and an unclosed `<br>`):
//! - `GET /JSSResource/policies`; `GET|PUT|DELETE /JSSResource/policies/id/{id}` and
//!   `/name/{name}`; `GET .../subset/General&Scope…`; `POST /JSSResource/policies/id/0` (the id in
//!   the path is ignored; the next free id is used) → 201
//!   `<?xml version="1.0" encoding="UTF-8"?><policy><id>N</id></policy>`; `PUT` (a partial update,
//!   see below) → 201 the same. Duplicate name → 409 `Error: Duplicate name`; XML that does not
//!   parse → 400; unknown id → 404; a category, package, computer group or computer the policy
//!   names that does not exist → 409 `Error: Problem with category` (… `package in
//!   package_configuration`, `computer group in scope`, `computer in scope`); no name → 409.
//! - `GET /JSSResource/computergroups`, `GET|PUT|DELETE .../id/{id}` and `.../name/{name}`,
//!   `POST .../id/0` (`<name>`, `<is_smart>`, `<criteria>`, `<computers>`; `PUT` also takes
//!   `<computer_additions>` and `<computer_deletions>`).
//! - `GET /JSSResource/computerhistory/{id|name|udid}/{key}` and `.../subset/PolicyLogs` →
//!   `<computer_history><policy_logs><policy_log><policy_id/><policy_name/><username/><date_time/>
//!   <date_time_epoch/><date_time_utc/><status>Completed|Failed</status></policy_log>…`, newest first.
//! - `GET /JSSResource/categories`, `GET .../id/{id}`, `.../name/{name}`, `POST .../id/0`.
//! - `GET /JSSResource/packages`, `GET .../id/{id}`, `.../name/{name}`, `POST .../id/0`
//!   (`<name>`, `<filename>`, `<category>` by name, `<priority>`, …): the same packages as
//!   `/api/v1/packages`, duplicate name → 409.
//!
//! # Categories
//!
//! The category `control-plane-auto` exists from the start with id 1, so a connector may use it
//! directly or look it up (`GET /api/v1/categories?filter=name=="control-plane-auto"` or
//! `GET /JSSResource/categories/name/control-plane-auto`). More can be created through either API
//! or with [`SimHandle::add_category`]; [`SimHandle::remove_category`] takes one away to test a
//! connector that must create it.
//!
//! # Package files
//!
//! An upload is read as it arrives, at [`SimConfig::upload_bytes_per_second`] at most, its `file`
//! part hashed on the way (SHA-256, SHA3-512, MD5) and kept only up to
//! [`SimConfig::keep_upload_bytes_under`] ([`SimHandle::package_file`]), so a 4 GiB upload costs
//! a few buffers. Right after it the package shows its `size` and `cloudTransferStatus`
//! `IN_PROGRESS`; once the distribution service has processed the file,
//! [`SimConfig::package_processing`] later on the simulator's clock (or at
//! [`SimHandle::finish_processing`] after [`SimHandle::hold_processing`]), it shows `READY`, `md5`,
//! `hashType` `SHA3_512` and `hashValue` (and `sha256`, `sha3512` with
//! [`SimConfig::reports_sha256`], as Jamf Pro 11.25 and later). A Mac cannot install a package
//! before that. Faults hit uploads too: [`Fault::DropAfter`] breaks one off mid-body (no effect),
//! [`Fault::LostAnswer`] loses the answer of one that took effect.
//! [`SimHandle::seed_package`] puts a package there as someone else made it (a same-named package
//! with other bytes, a file name taken).
//!
//! # The cluster and the `jpro-ingress` cookie
//!
//! Every answer sets `Set-Cookie: jpro-ingress=<node>; Path=/; HttpOnly`. A request carrying a
//! node's cookie is served by that node; any other request goes to the two nodes in turn. Both
//! nodes share the database (tokens, duplicate checks, references, writes), but each reads from
//! its own cache, which Jamf Cloud refreshes every minute: an object created through one node
//! (package, policy, category, computer group) is visible through the other only a minute later
//! on the simulator's clock, and a package or policy updated through one node reads as before the
//! update through the other for as long. So a client that does not keep the cookie sees
//! create-then-use fail with a 404 on the id it was just given, and reads its own update undone,
//! whenever its next request lands on the other node. [`SimHandle::set_replication_lag`] turns
//! the lag off.
//!
//! # Policies and simulated time
//!
//! A `PUT` changes only the sections it carries: each element of `general` given replaces the
//! stored one; a `scope` given replaces the whole stored scope (exclusions included: a client that
//! adds a group sends the exclusions back); the `package_configuration/packages` list when given,
//! and any other known section given, replace what was stored. Elements Jamf Pro's policy schema
//! does not have are dropped, as Jamf drops them: `general/notes`, `general/priority`, a package's
//! `priority`, unknown sections. `enabled`, `frequency`, `retry_event` (`none`, `check-in`,
//! `trigger`), `retry_attempts` (1 to 10, or -1) and `notify_on_each_failed_retry` are stored
//! and returned. Each successful create is revision 1 and each successful update adds one
//! ([`SimPolicy::revision`]).
//!
//! The fleet runs on its own clock, which only [`SimHandle::advance`] moves. A computer runs a
//! policy when the policy is enabled, has `trigger_checkin` true, and its scope reaches the computer
//! (`all_computers`, the computer, or a computer group it is in, less exclusions). It runs the
//! policy its [`SimComputer::after`] past the moment all of that first became true, and the log
//! records its [`ComputerOutcome`] (`NeverCheckIn` computers never run anything) — or `Failed`
//! when a package the policy installs has no processed file by then. A failed run is tried again
//! at the Mac's next check-in, 15 minutes later, when the policy's `retry_event` is `check-in`,
//! up to `retry_attempts` times; without it, never. A `Completed` run
//! leaves a receipt for each package the policy installs, which inventory reports at once when
//! the policy updates inventory (`<maintenance><recon>true</recon></maintenance>`), else with the
//! Mac's next daily inventory, a day later; a run of a policy that updates inventory, failed or
//! not, moves the Mac's `reportDate`. Each policy runs
//! once per computer whatever its frequency; changing a policy's packages acts as a log flush, so
//! computers in scope run it again.
//!
//! # Fleets at scale
//!
//! [`SimComputer::generate`] makes a ring of 10,000 Macs from a [`FleetMix`] (failures, Macs that
//! never check in, check-in delays) cheaply; [`SimHandle::delete_computer`] deletes one
//! mid-rollout. [`SimConfig::client_privileges`] (or [`SimHandle::set_client_privileges`]) gives
//! the API client's role a set of Jamf's privileges by name, and [`SimHandle::revoke_privilege`]
//! takes one away by route: without it, the Classic API answers 401 with the same page as a bad
//! token ("The request requires user authentication", naming no privilege, as Jamf's does), the
//! Jamf Pro API 403 `INVALID_PRIVILEGE`.
//!
//! # Latency, concurrency and faults
//!
//! Every answer takes [`SimConfig::latency`] (200 ms by default, what Jamf Cloud answers in), and
//! list answers [`SimConfig::latency_per_record`] more per record; [`SimConfig::instant`] has
//! neither. Each request is counted in flight from arrival until it is answered (or dropped), and
//! the peak is kept ([`SimHandle::peak_concurrency`], [`SimHandle::reset_peak_concurrency`]). [`SimConfig::max_concurrency_delay`] holds every
//! request that long first, so a connector's concurrency limit becomes measurable;
//! [`SimHandle::hold_requests`] holds them until [`SimHandle::release_requests`], so a test can
//! wait for the number it expects in flight ([`SimHandle::in_flight`]) whatever the machine's
//! speed. Faults
//! ([`SimHandle::faults`]) apply to any route, token routes included, before the route runs; see
//! [`Fault`] for what each does.
//!
//! # Simplified on purpose
//!
//! Only HTTP/1.1 without TLS; the Classic API answers its `GET`s in JSON only when the request
//! sends `Accept: application/json` (else XML) and takes writes in XML only, as Jamf does; of the
//! Jamf Pro API only the operations in the schema slice are served (no `/v2` or `/v4` inventory,
//! no `PATCH`, no history), the other methods of their paths answer 405; smart group criteria are stored but not evaluated (membership comes from the harness); every policy
//! frequency counts as once per computer; `retry_event` `trigger` never retries (no custom
//! triggers are fired); names compare
//! without regard to case (as Jamf's database collation does); the sim's error texts and codes
//! for cases the reference material does not pin down (`INVALID_JSON`, `INVALID_RSQL_FILTER`, the
//! `Problem with …` pages) are plausible rather than confirmed.

mod catalog;
mod cluster;
mod faults;
mod fleet;
mod http;
mod policy;
mod privileges;
mod rng;
mod routes;
mod rsql;
mod state;
mod times;
mod upload;
mod views;
mod xml;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use eucora_domain::{Clock, ManualClock, Timestamp};
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use faults::{Fault, Faults, RouteMatch};
pub use fleet::{ComputerOutcome, FleetMix, SimComputer, SimPolicyLog};
pub use views::{RecordedRequest, SimPackage, SimPolicy};

use crate::catalog::{Category, Package, Upload};
use crate::cluster::Replica;
use crate::fleet::Group;
use crate::state::Shared;

/// How the simulated server behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    pub client_id: String,
    pub client_secret: String,
    /// The Basic-auth user for `POST /api/v1/auth/token`.
    pub username: String,
    pub password: String,
    /// `false`: an older server without API clients; both OAuth token paths answer 404 and only
    /// Basic-auth user tokens work.
    pub oauth_enabled: bool,
    /// `true`: only `/api/oauth/token` exists; `/api/v1/oauth/token` answers 404.
    pub legacy_oauth_path_only: bool,
    /// The lifetime of every token. Left at its default (599 s, Jamf's OAuth lifetime), user
    /// tokens get Jamf's 1800 s; set to anything else, user tokens get the same value.
    pub token_lifetime: Duration,
    /// Seeds fault rolls, token strings and the cluster's cookie values.
    pub seed: u64,
    /// How long every request is held before it is handled (default 0).
    pub max_concurrency_delay: Duration,
    /// How long the server takes to answer any request (default [`REALISTIC_LATENCY`]); tests
    /// set it low (see [`SimConfig::instant`]).
    pub latency: Duration,
    /// How much longer a list answer takes for each record it lists (default
    /// [`REALISTIC_LATENCY_PER_RECORD`]): a page of 2,000 computers takes 2 s more than one of 1.
    pub latency_per_record: Duration,
    /// How fast the server reads an upload's body, in bytes a second (default
    /// [`REALISTIC_UPLOAD_RATE`]); `None`: as fast as it comes.
    pub upload_bytes_per_second: Option<u64>,
    /// How long, on the simulator's clock, the cloud distribution service takes to process an
    /// uploaded file before its hashes show and Macs can download it (default
    /// [`REALISTIC_PROCESSING`]; see [`SimHandle::hold_processing`] for a test's own pace).
    pub package_processing: Duration,
    /// Uploads up to this many bytes are kept whole ([`SimHandle::package_file`]); larger ones
    /// are only hashed.
    pub keep_upload_bytes_under: u64,
    /// `true` (Jamf Pro 11.25 and later): a processed package also reports `sha256` and
    /// `sha3512`; `false`: only `hashType` `SHA3_512`, `hashValue` and `md5`.
    pub reports_sha256: bool,
    /// The privileges of the API client's role (`OAuth` tokens), by Jamf's names such as
    /// `"Create Policies"`; `None`: every privilege. Without one a request needs, the Classic API
    /// answers 401 and the Jamf Pro API 403. The Basic-auth user keeps every privilege.
    pub client_privileges: Option<Vec<String>>,
}

/// What a Jamf Cloud server takes to answer a small request: 150–300 ms is what one answers.
pub const REALISTIC_LATENCY: Duration = Duration::from_millis(200);
/// What each listed record adds to a list answer (an estimate: large inventory pages with
/// several sections take seconds on Jamf Cloud).
pub const REALISTIC_LATENCY_PER_RECORD: Duration = Duration::from_millis(1);
/// An upload's pace into Jamf Cloud from AWS (an estimate: 50 MiB/s).
pub const REALISTIC_UPLOAD_RATE: u64 = 50 * 1024 * 1024;
/// How long the distribution service takes to process an upload (an estimate; Jamf documents
/// none, and clients poll for the hash for up to minutes).
pub const REALISTIC_PROCESSING: Duration = Duration::from_secs(60);

impl SimConfig {
    /// The defaults without latency: every answer as fast as the machine gives it, uploads read
    /// as fast as they come and processed at once.
    pub fn instant() -> Self {
        Self {
            latency: Duration::ZERO,
            latency_per_record: Duration::ZERO,
            upload_bytes_per_second: None,
            package_processing: Duration::ZERO,
            ..Self::default()
        }
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            client_id: "eucora-jamf-client".to_owned(),
            client_secret: "eucora-jamf-secret".to_owned(),
            username: "eucora-api".to_owned(),
            password: "eucora-password".to_owned(),
            oauth_enabled: true,
            legacy_oauth_path_only: false,
            token_lifetime: state::OAUTH_TOKEN_LIFETIME,
            seed: 42,
            max_concurrency_delay: Duration::ZERO,
            latency: REALISTIC_LATENCY,
            latency_per_record: REALISTIC_LATENCY_PER_RECORD,
            upload_bytes_per_second: Some(REALISTIC_UPLOAD_RATE),
            package_processing: REALISTIC_PROCESSING,
            keep_upload_bytes_under: 1024 * 1024,
            reports_sha256: true,
            client_privileges: None,
        }
    }
}

/// A package a test puts on the server as someone else would have (an administrator's upload,
/// an earlier build, `AutoPkg`): see [`SimHandle::seed_package`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedPackage {
    pub package_name: String,
    pub file_name: String,
    /// Its file, processed at once; `None`: a package record without a file.
    pub bytes: Option<Vec<u8>>,
    pub notes: String,
}

/// Starts a simulator on `127.0.0.1` on a free port, served by tasks on the current tokio runtime.
/// It runs until the handle is shut down or dropped.
///
/// # Panics
///
/// When no loopback port can be bound.
pub async fn start(config: SimConfig) -> SimHandle {
    let now = eucora_domain::SystemClock.now();
    // Its own clock, from the wall clock's second: only `SimHandle::advance` moves it.
    let own = ManualClock::new(Timestamp::from_unix_seconds(now.unix_seconds()).unwrap_or(now));
    serve(config, Arc::new(own.clone()), Some(own)).await
}

/// Starts a simulator whose time is `clock`'s: computers run what has come due whenever the
/// simulator is used, and move only as that clock moves (the test's or the local stack's one
/// clock). [`SimHandle::advance`] is refused: move the clock instead.
///
/// # Panics
///
/// When no loopback port can be bound.
pub async fn start_on(config: SimConfig, clock: Arc<dyn Clock>) -> SimHandle {
    serve(config, clock, None).await
}

async fn serve(config: SimConfig, clock: Arc<dyn Clock>, own: Option<ManualClock>) -> SimHandle {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port for the Jamf simulator");
    let address = listener.local_addr().expect("the bound address");
    let shared = Arc::new(Shared::new(&config, clock));
    let (shutdown, closing) = watch::channel(());
    tokio::spawn(http::serve(listener, Arc::clone(&shared), closing));
    let faults = shared.faults.clone();
    SimHandle {
        address,
        shared,
        faults,
        own,
        _shutdown: shutdown,
    }
}

/// A running simulator. Dropping it (or [`SimHandle::shutdown`]) stops the server.
#[derive(Debug)]
pub struct SimHandle {
    address: SocketAddr,
    shared: Arc<Shared>,
    faults: Faults,
    /// The simulator's own clock, when it was not given one.
    own: Option<ManualClock>,
    _shutdown: watch::Sender<()>,
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Rotates the API client's secret and the Basic-auth password to `new_secret`: token requests
    /// with the old ones get 401 from now on. Tokens already issued keep working until they
    /// expire, as on Jamf Pro (combine with [`SimHandle::expire_tokens`] to end them too).
    pub fn rotate_secret(&self, new_secret: &str) {
        let mut state = self.shared.lock();
        new_secret.clone_into(&mut state.client_secret);
        new_secret.clone_into(&mut state.password);
    }

    /// Ends every token issued so far; requests carrying one get 401.
    pub fn expire_tokens(&self) {
        self.shared.lock().revoke_all();
    }

    /// Adds (or replaces) computer group `id` with these computers as its members, adding the
    /// computers to the inventory (replacing any with the same id). Visible on both nodes at once.
    pub fn add_computer_group(
        &self,
        id: u32,
        name: &str,
        smart: bool,
        computers: Vec<SimComputer>,
    ) {
        let mut state = self.shared.lock();
        let members = computers.iter().map(|c| c.id).collect();
        state.fleet.upsert_computers(computers);
        state.reserve_group_id(id);
        let criteria = state.fleet.groups.get(&id).and_then(|g| g.criteria.clone());
        state.fleet.groups.insert(
            id,
            Group {
                id,
                name: name.to_owned(),
                smart,
                members,
                criteria,
                origin: None,
            },
        );
        state.evaluate();
    }

    /// Deletes a Mac, as an administrator deleting it mid-rollout: the Classic API answers 404 for
    /// it and the Jamf Pro API's inventory leaves it out. Group memberships stay as the harness
    /// set them (a membership read just before the deletion lists it), so a connector sees a
    /// member the server no longer has. `false` when there was no such Mac.
    pub fn delete_computer(&self, id: u32) -> bool {
        self.shared.lock().fleet.delete(id)
    }

    /// Takes a privilege away from the API client's role for the requests `matcher` covers,
    /// until [`SimHandle::restore_privileges`]: the Classic API answers them 401 (Jamf's answer
    /// to a missing privilege there, the same status as a bad token), the Jamf Pro API 403
    /// `INVALID_PRIVILEGE`. Checked after the token, so a bad token still gets 401.
    pub fn revoke_privilege(&self, matcher: RouteMatch) {
        self.shared.lock().denied.push(matcher);
    }

    /// Gives back every privilege [`SimHandle::revoke_privilege`] took.
    pub fn restore_privileges(&self) {
        self.shared.lock().denied.clear();
    }

    /// Adds (or renames) category `id`, visible on both nodes at once.
    pub fn add_category(&self, id: u32, name: &str) {
        let mut state = self.shared.lock();
        state.reserve_category_id(id);
        state.categories.insert(
            id,
            Category {
                id,
                name: name.to_owned(),
                priority: 9,
                origin: None,
            },
        );
    }

    /// Removes the category with this name (any case), if there is one.
    pub fn remove_category(&self, name: &str) {
        self.shared
            .lock()
            .categories
            .retain(|_, c| !c.name.eq_ignore_ascii_case(name));
    }

    /// Moves the simulator's own clock forward; computers run what has come due and log it.
    ///
    /// # Panics
    ///
    /// When the simulator was started on a shared clock ([`start_on`]): move that clock instead.
    pub fn advance(&self, by: Duration) {
        let own = self
            .own
            .as_ref()
            .expect("this simulator reads a shared clock: advance that clock, not the simulator");
        own.advance(time::Duration::try_from(by).unwrap_or(time::Duration::ZERO));
        drop(self.shared.lock());
    }

    /// The simulated clock (it starts at the clock's time when the simulator started; its own
    /// clock starts at the wall clock's second).
    pub fn sim_now(&self) -> OffsetDateTime {
        self.shared.lock().fleet.now()
    }

    /// Every package, by id.
    pub fn packages(&self) -> Vec<SimPackage> {
        let state = self.shared.lock();
        let now = state.fleet.now();
        state
            .packages
            .values()
            .map(|p| SimPackage::of(p, now))
            .collect()
    }

    /// The file uploaded to a package, when it was small enough to keep
    /// ([`SimConfig::keep_upload_bytes_under`]).
    pub fn package_file(&self, id: u32) -> Option<Vec<u8>> {
        let state = self.shared.lock();
        let upload = state.packages.get(&id)?.upload.as_ref()?;
        upload.bytes.as_ref().map(|b| b.to_vec())
    }

    /// Holds the distribution service: files uploaded from now on, and those not processed yet,
    /// stay unprocessed (no hash, Macs cannot download them) until
    /// [`SimHandle::finish_processing`], whatever the clock does.
    pub fn hold_processing(&self) {
        let mut state = self.shared.lock();
        let now = state.fleet.now();
        state.processing_held = true;
        for package in state.packages.values_mut() {
            if let Some(upload) = package.upload.as_mut().filter(|u| !u.processed(now)) {
                upload.ready_at = None;
            }
        }
    }

    /// Processes every file uploaded so far now (their hashes show from now on), and lets later
    /// uploads take [`SimConfig::package_processing`] again.
    pub fn finish_processing(&self) {
        let mut state = self.shared.lock();
        let now = state.fleet.now();
        state.processing_held = false;
        for package in state.packages.values_mut() {
            if let Some(upload) = package.upload.as_mut().filter(|u| !u.processed(now)) {
                upload.ready_at = Some(now);
            }
        }
        state.evaluate();
    }

    /// Puts a package on the server as someone else made it, visible on both nodes at once; its
    /// file, if any, is processed already. Answers its id. A name already taken is replaced.
    pub fn seed_package(&self, seed: &SeedPackage) -> u32 {
        use md5::Digest as _;
        use sha2::Digest as _;
        let mut state = self.shared.lock();
        let now = state.fleet.now();
        let existing = state
            .packages
            .values()
            .find(|p| p.name().eq_ignore_ascii_case(&seed.package_name))
            .map(|p| p.id);
        let id = existing.unwrap_or_else(|| state.next_package_id());
        let mut fields = serde_json::Map::new();
        for (key, value) in [
            ("packageName", serde_json::json!(seed.package_name)),
            ("fileName", serde_json::json!(seed.file_name)),
            ("categoryId", serde_json::json!("-1")),
            ("priority", serde_json::json!(10)),
            ("notes", serde_json::json!(seed.notes)),
        ] {
            fields.insert(key.to_owned(), value);
        }
        let upload = seed.bytes.as_ref().map(|bytes| Upload {
            file_name: seed.file_name.clone(),
            size: bytes.len() as u64,
            sha256: hex::encode(sha2::Sha256::digest(bytes)),
            sha3_512: hex::encode(sha3::Sha3_512::digest(bytes)),
            md5: hex::encode(md5::Md5::digest(bytes)),
            bytes: Some(bytes::Bytes::from(bytes.clone())),
            ready_at: Some(now),
        });
        state.packages.insert(
            id,
            Package {
                id,
                fields,
                upload,
                origin: None,
                replica: Replica::default(),
            },
        );
        id
    }

    /// Gives the API client's role exactly these privileges (Jamf's names, such as
    /// `"Read Policies"`); `None`: every privilege. See [`SimConfig::client_privileges`].
    pub fn set_client_privileges(&self, privileges: Option<&[&str]>) {
        self.shared.lock().client_privileges =
            privileges.map(|p| p.iter().map(|&s| s.to_owned()).collect());
    }

    /// Every policy, by id.
    pub fn policies(&self) -> Vec<SimPolicy> {
        let state = self.shared.lock();
        let refs = state.refs();
        state
            .policies
            .values()
            .map(|p| SimPolicy::of(p, &refs))
            .collect()
    }

    /// A computer's policy logs, oldest first.
    pub fn policy_logs(&self, computer_id: u32) -> Vec<SimPolicyLog> {
        self.shared
            .lock()
            .fleet
            .logs
            .iter()
            .filter(|log| log.computer_id == computer_id)
            .cloned()
            .collect()
    }

    /// The most requests ever in flight at once (arrived and not yet answered, whatever their
    /// connection): a client keeping to Jamf's 5 connections never makes this more than 5.
    pub fn peak_concurrency(&self) -> usize {
        self.shared.peak.load(Ordering::SeqCst)
    }

    /// The requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// Holds every request arriving from now on, counted in flight ([`SimHandle::in_flight`]),
    /// until [`SimHandle::release_requests`]: a test measures a client's concurrency by waiting
    /// for the number it expects in flight, whatever the machine's speed, instead of a timed hold.
    pub fn hold_requests(&self) {
        self.shared.gate.send_replace(false);
    }

    /// Lets the held requests, and those arriving from now on, through.
    pub fn release_requests(&self) {
        self.shared.gate.send_replace(true);
    }

    /// Starts measuring [`SimHandle::peak_concurrency`] afresh (from the requests in flight now).
    pub fn reset_peak_concurrency(&self) {
        self.shared.peak.store(
            self.shared.in_flight.load(Ordering::SeqCst),
            Ordering::SeqCst,
        );
    }

    /// Every request answered (or dropped) so far, in the order they finished.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Forgets the recorded requests (the peak concurrency stays).
    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    /// Whether the other node reads writes a minute late (on by default; see the crate docs).
    pub fn set_replication_lag(&self, on: bool) {
        self.shared.lag.store(on, Ordering::SeqCst);
    }

    /// The `jpro-ingress` cookie values of the two nodes.
    pub fn node_cookies(&self) -> [String; 2] {
        self.shared.cookies.clone()
    }

    /// Stops the server: no new connections, open ones are closed.
    pub fn shutdown(self) {
        drop(self);
    }
}
