//! Everything the simulated server knows, behind one lock, and the counters kept outside it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use eucora_domain::Clock;
use time::OffsetDateTime;

use crate::SimConfig;
use crate::catalog::{CONTROL_PLANE_CATEGORY, Category, HashReport, Package};
use crate::cluster::{Vantage, node_cookies};
use crate::faults::{Faults, RouteMatch};
use crate::fleet::Fleet;
use crate::policy::{Policy, Refs};
use crate::rng::SplitMix64;
use crate::views::RecordedRequest;

/// Jamf Pro's lifetime of a user (Basic-auth) token.
const USER_TOKEN_LIFETIME: Duration = Duration::from_secs(1800);
/// Jamf Pro's lifetime of an OAuth client-credentials token, and `SimConfig`'s default.
pub(crate) const OAUTH_TOKEN_LIFETIME: Duration = Duration::from_secs(599);

/// What lives outside the lock: fault controls, concurrency counters, the cluster's routing.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Where the simulated time comes from (see [`crate::start_on`]).
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) faults: Faults,
    pub(crate) in_flight: AtomicUsize,
    pub(crate) peak: AtomicUsize,
    pub(crate) arrivals: AtomicU64,
    pub(crate) round_robin: AtomicU64,
    pub(crate) lag: AtomicBool,
    pub(crate) cookies: [String; 2],
    /// `false` while `SimHandle::hold_requests` holds every request arriving (counted in flight)
    /// until `SimHandle::release_requests`.
    pub(crate) gate: tokio::sync::watch::Sender<bool>,
    pub(crate) hold: Duration,
    pub(crate) latency: Duration,
    pub(crate) latency_per_record: Duration,
    /// How fast an upload's body is read (bytes a second); `None`: as fast as it comes.
    pub(crate) upload_rate: Option<u64>,
    /// Uploads up to this size are kept whole (`SimHandle::package_file`).
    pub(crate) keep_upload_bytes_under: u64,
}

impl Shared {
    pub(crate) fn new(config: &SimConfig, clock: Arc<dyn Clock>) -> Self {
        let started = clock.now().to_offset_date_time();
        Self {
            state: Mutex::new(State::new(config, started)),
            clock,
            faults: Faults::new(config.seed),
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            arrivals: AtomicU64::new(0),
            round_robin: AtomicU64::new(0),
            lag: AtomicBool::new(true),
            cookies: node_cookies(config.seed),
            gate: tokio::sync::watch::Sender::new(true),
            hold: config.max_concurrency_delay,
            latency: config.latency,
            latency_per_record: config.latency_per_record,
            upload_rate: config.upload_bytes_per_second.filter(|r| *r > 0),
            keep_upload_bytes_under: config.keep_upload_bytes_under,
        }
    }

    /// The state, caught up with the clock: computers run what has come due since the last look.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = self.clock.now().to_offset_date_time();
        let behind = now - state.fleet.now();
        if behind.is_positive() {
            let by = Duration::try_from(behind).unwrap_or(Duration::ZERO);
            let state = &mut *state;
            state.fleet.advance(by, &state.policies, &state.packages);
        }
        state
    }

    /// Counts a request in; the guard counts it out when dropped.
    pub(crate) fn enter(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        InFlight(&self.in_flight)
    }

    /// Waits while requests are held (`SimHandle::hold_requests`).
    pub(crate) async fn pass_gate(&self) {
        let mut open = self.gate.subscribe();
        // The sender lives as long as `self`: the wait ends only when the gate opens.
        let _ = open.wait_for(|open| *open).await;
    }

    /// The node for a request: the one its `jpro-ingress` cookie names, else the next in turn.
    pub(crate) fn vantage(&self, cookie: Option<&str>, seq: u64) -> Vantage {
        let pinned = cookie.and_then(|value| self.cookies.iter().position(|c| c == value));
        let node = pinned.unwrap_or_else(|| {
            usize::from(self.round_robin.fetch_add(1, Ordering::SeqCst) % 2 == 1)
        });
        Vantage {
            node,
            seq,
            lag: self.lag.load(Ordering::SeqCst),
            now: self.clock.now().to_offset_date_time(),
        }
    }
}

/// Counts a request out of the in-flight total when dropped, answered or not.
#[derive(Debug)]
pub(crate) struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    OAuth,
    User,
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) kind: TokenKind,
    pub(crate) expires: Instant,
    pub(crate) expires_wall: OffsetDateTime,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    pub(crate) username: String,
    pub(crate) password: String,
    pub(crate) oauth_enabled: bool,
    pub(crate) legacy_oauth_path_only: bool,
    oauth_lifetime: Duration,
    user_lifetime: Duration,
    tokens: HashMap<String, Token>,
    rng: SplitMix64,
    pub(crate) categories: BTreeMap<u32, Category>,
    pub(crate) packages: BTreeMap<u32, Package>,
    pub(crate) policies: BTreeMap<u32, Policy>,
    pub(crate) fleet: Fleet,
    next_category: u32,
    next_package: u32,
    next_policy: u32,
    next_group: u32,
    pub(crate) requests: Vec<RecordedRequest>,
    /// Routes the API client's role has no privilege for (see `SimHandle::revoke_privilege`).
    pub(crate) denied: Vec<RouteMatch>,
    /// The privileges of the API client's role; `None`: every privilege.
    pub(crate) client_privileges: Option<BTreeSet<String>>,
    /// How long the distribution service takes to process an uploaded file.
    pub(crate) processing_delay: Duration,
    /// Processing held (`SimHandle::hold_processing`): no upload is processed until released.
    pub(crate) processing_held: bool,
    pub(crate) hash_report: HashReport,
}

impl State {
    fn new(config: &SimConfig, started: OffsetDateTime) -> Self {
        let mut categories = BTreeMap::new();
        categories.insert(
            1,
            Category {
                id: 1,
                name: CONTROL_PLANE_CATEGORY.to_owned(),
                priority: 9,
                origin: None,
            },
        );
        let user_lifetime = if config.token_lifetime == OAUTH_TOKEN_LIFETIME {
            USER_TOKEN_LIFETIME
        } else {
            config.token_lifetime
        };
        Self {
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            username: config.username.clone(),
            password: config.password.clone(),
            oauth_enabled: config.oauth_enabled,
            legacy_oauth_path_only: config.legacy_oauth_path_only,
            oauth_lifetime: config.token_lifetime,
            user_lifetime,
            tokens: HashMap::new(),
            rng: SplitMix64::new(config.seed ^ 0x0074_6F6B_656E),
            categories,
            packages: BTreeMap::new(),
            policies: BTreeMap::new(),
            fleet: Fleet::new(started),
            next_category: 2,
            next_package: 1,
            next_policy: 1,
            next_group: 1,
            requests: Vec::new(),
            denied: Vec::new(),
            client_privileges: config
                .client_privileges
                .as_ref()
                .map(|p| p.iter().cloned().collect()),
            processing_delay: config.package_processing,
            processing_held: false,
            hash_report: HashReport {
                sha256: config.reports_sha256,
            },
        }
    }

    /// Whether the token's holder lacks the privilege a request needs: only the API client
    /// (`OAuth` tokens) has a restricted role; the Basic-auth user has every privilege.
    pub(crate) fn lacks_privilege(&self, token: &Token, method: &str, path: &str) -> bool {
        if self.denied.iter().any(|m| m.matches(method, path)) {
            return true;
        }
        let (TokenKind::OAuth, Some(granted)) = (token.kind, &self.client_privileges) else {
            return false;
        };
        crate::privileges::required(method, path)
            .is_some_and(|any| !any.iter().any(|p| granted.contains(p)))
    }

    pub(crate) fn refs(&self) -> Refs<'_> {
        Refs {
            categories: &self.categories,
            packages: &self.packages,
            fleet: &self.fleet,
        }
    }

    /// Issues a token of `kind`.
    pub(crate) fn issue(&mut self, kind: TokenKind) -> (String, Token) {
        let lifetime = match kind {
            TokenKind::OAuth => self.oauth_lifetime,
            TokenKind::User => self.user_lifetime,
        };
        let value = URL_SAFE_NO_PAD.encode(self.rng.bytes::<33>());
        let token = Token {
            kind,
            expires: Instant::now() + lifetime,
            expires_wall: self.fleet.now() + lifetime,
        };
        self.tokens.insert(value.clone(), token.clone());
        (value, token)
    }

    /// The token's details while it is valid.
    pub(crate) fn token(&mut self, value: &str) -> Option<Token> {
        let token = self.tokens.get(value)?.clone();
        if token.expires <= Instant::now() {
            self.tokens.remove(value);
            return None;
        }
        Some(token)
    }

    pub(crate) fn revoke(&mut self, value: &str) {
        self.tokens.remove(value);
    }

    pub(crate) fn revoke_all(&mut self) {
        self.tokens.clear();
    }

    pub(crate) fn lifetime(&self, kind: TokenKind) -> Duration {
        match kind {
            TokenKind::OAuth => self.oauth_lifetime,
            TokenKind::User => self.user_lifetime,
        }
    }

    pub(crate) fn next_category_id(&mut self) -> u32 {
        take_next(&mut self.next_category)
    }

    pub(crate) fn next_package_id(&mut self) -> u32 {
        take_next(&mut self.next_package)
    }

    pub(crate) fn next_policy_id(&mut self) -> u32 {
        take_next(&mut self.next_policy)
    }

    pub(crate) fn next_group_id(&mut self) -> u32 {
        take_next(&mut self.next_group)
    }

    /// Makes sure ids handed out later stay above one chosen by the harness.
    pub(crate) fn reserve_group_id(&mut self, id: u32) {
        self.next_group = self.next_group.max(id.saturating_add(1));
    }

    pub(crate) fn reserve_category_id(&mut self, id: u32) {
        self.next_category = self.next_category.max(id.saturating_add(1));
    }

    /// Lets the fleet catch up with a change to policies or groups.
    pub(crate) fn evaluate(&mut self) {
        self.fleet.evaluate(&self.policies, &self.packages);
    }
}

fn take_next(counter: &mut u32) -> u32 {
    let id = *counter;
    *counter += 1;
    id
}
