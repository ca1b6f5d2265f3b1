//! The HTTP server: one accept loop, one task per connection, and the per-request pipeline
//! (record → fault → surface → headers). A connection is served by hyper directly so that a
//! fault can close it without an answer.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use eucora_domain::{Clock, ManualClock, SystemClock, Timestamp};

use crate::config::{SimConfig, SimDevice};
use crate::faults::{Fault, Faults, Surface};
use crate::state::{SimApp, State};
use crate::wire::{Ctx, Reply, derived_guid};
use crate::{blob, graph, token};

/// Bodies larger than this are recorded as a size only.
const RECORDED_BODY_LIMIT: usize = 64 * 1024;

/// One request as the simulator received it, and how it was answered.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// Arrival order, from 0.
    pub seq: u64,
    pub method: String,
    pub path: String,
    /// The raw query string, without `?`.
    pub query: Option<String>,
    /// Header names lower-cased, values as sent, in the order sent.
    pub headers: Vec<(String, String)>,
    /// The body as text (lossy UTF-8); large or binary bodies as `<N bytes>`.
    pub body: String,
    /// The status answered; `None` when the connection was closed without an answer.
    pub status: Option<u16>,
    /// The fault injected into this request, if any.
    pub fault: Option<Fault>,
    /// Real time of arrival.
    pub time: SystemTime,
    /// The simulated clock (total of `advance`) at arrival.
    pub sim_time: Duration,
}

impl RecordedRequest {
    /// The first value of a header (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first value of a query parameter, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        crate::wire::query_param(self.query.as_deref(), name)
    }
}

#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Where the simulated wall clock comes from (see [`start_on`]).
    clock: Arc<dyn Clock>,
    /// The clock's time when the simulator started: `State::clock` counts from here.
    epoch: SystemTime,
    faults: Faults,
    requests: Mutex<Vec<RecordedRequest>>,
    next_seq: AtomicU64,
    seed: u64,
    base_url: String,
}

impl Shared {
    /// The state, caught up with the clock: pending steps settle and devices report what has come
    /// due since the last look.
    fn state(&self) -> MutexGuard<'_, State> {
        let mut state = lock(&self.state);
        let now = self.clock.now().to_system_time();
        let since_start = now.duration_since(self.epoch).unwrap_or(Duration::ZERO);
        let by = since_start.saturating_sub(state.clock);
        if !by.is_zero() {
            state.advance(by, now);
        }
        state
    }

    /// How long request `seq` takes: the configured latency plus its seeded share of the jitter.
    fn latency(&self, seq: u64) -> Duration {
        let (at_least, jitter) = {
            let state = lock(&self.state);
            (state.config.latency, state.config.latency_jitter)
        };
        let jitter_ms = u64::try_from(jitter.as_millis()).unwrap_or(u64::MAX);
        let extra = if jitter_ms == 0 {
            0
        } else {
            crate::wire::mix(self.seed ^ seq.wrapping_mul(0x9E37_79B9)) % (jitter_ms + 1)
        };
        at_least + Duration::from_millis(extra)
    }

    /// The simulated wall clock.
    fn now(&self) -> SystemTime {
        self.clock.now().to_system_time()
    }
}

/// Locks a mutex; a panic elsewhere while it was held does not poison the simulator.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A content file and its blob, for tests to inspect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimContentFile {
    pub content_version: String,
    pub id: String,
    /// The `uploadState` now (reading it here does not move it on).
    pub upload_state: String,
    pub size: u64,
    pub size_encrypted: u64,
    /// The committed blob's length.
    pub committed_len: u64,
    /// The committed block list, in order.
    pub committed_blocks: Vec<SimBlock>,
    /// Put Block requests accepted, by block id: a block sent twice counts 2.
    pub block_puts: std::collections::BTreeMap<String, u32>,
    /// Bytes accepted by Put Block, in all (re-sent blocks counted again).
    pub bytes_received: u64,
}

impl SimContentFile {
    /// Put Block requests accepted, in all.
    pub fn blocks_received(&self) -> u32 {
        self.block_puts.values().sum()
    }

    /// Blocks accepted more than once.
    pub fn blocks_sent_twice(&self) -> Vec<String> {
        self.block_puts
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(id, _)| id.clone())
            .collect()
    }
}

/// One committed block: its id, length and SHA-256 (lowercase hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimBlock {
    pub id: String,
    pub len: u64,
    pub sha256: String,
}

/// A running simulator. Dropping it (or `shutdown`) stops the server and closes its connections.
#[derive(Debug)]
pub struct SimHandle {
    shared: Arc<Shared>,
    accept_loop: JoinHandle<()>,
    /// The simulator's own clock, when it was not given one.
    own: Option<ManualClock>,
    _stop: watch::Sender<()>,
}

/// Binds `127.0.0.1:0` and serves the simulator on the current tokio runtime.
///
/// The identity platform answers at `{base}/{tenant}/oauth2/v2.0/token`, Graph at
/// `{base}/v1.0/...` and `{base}/beta/...`, content uploads at `{base}/blob/...`.
///
/// # Panics
/// When no loopback port can be bound.
pub async fn start(config: SimConfig) -> SimHandle {
    let now = SystemClock.now();
    // Its own clock, from the wall clock's second: only `SimHandle::advance` moves it.
    let own = ManualClock::new(Timestamp::from_unix_seconds(now.unix_seconds()).unwrap_or(now));
    start_with(config, Arc::new(own.clone()), Some(own)).await
}

/// Starts a simulator whose wall clock is `clock`: apps settle and devices report whenever the
/// simulator is used, as that clock has moved (the test's or the local stack's one clock).
/// [`SimHandle::advance`] is refused: move the clock instead.
///
/// # Panics
/// When no loopback port can be bound.
pub async fn start_on(config: SimConfig, clock: Arc<dyn Clock>) -> SimHandle {
    start_with(config, clock, None).await
}

async fn start_with(
    config: SimConfig,
    clock: Arc<dyn Clock>,
    own: Option<ManualClock>,
) -> SimHandle {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind a loopback port for the Intune simulator");
    let address = listener.local_addr().expect("the bound loopback address");
    let seed = config.seed;
    let shared = Arc::new(Shared {
        state: Mutex::new(State::new(config)),
        epoch: clock.now().to_system_time(),
        clock,
        faults: Faults::new(seed),
        requests: Mutex::new(Vec::new()),
        next_seq: AtomicU64::new(0),
        seed,
        base_url: format!("http://{address}"),
    });
    let (stop, stopped) = watch::channel(());
    let accept_loop = tokio::spawn(accept(listener, Arc::clone(&shared), stopped));
    SimHandle {
        shared,
        accept_loop,
        own,
        _stop: stop,
    }
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// `{base}/{tenant}/oauth2/v2.0/token`.
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.shared.base_url,
            self.shared.state().config.tenant_id
        )
    }

    /// `{base}/v1.0`.
    pub fn graph_url(&self) -> String {
        format!("{}/v1.0", self.shared.base_url)
    }

    /// The configuration, with the current client secret.
    pub fn config(&self) -> SimConfig {
        self.shared.state().config.clone()
    }

    /// Fault injection control.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// A new client secret: the old one answers `AADSTS7000215` from now on. Tokens already
    /// issued stay valid until they expire, as with Entra ID.
    pub fn rotate_secret(&self, new_secret: &str) {
        let mut state = self.shared.state();
        new_secret.clone_into(&mut state.config.client_secret);
        state.secret_expired = false;
    }

    /// The current client secret has expired: it answers `AADSTS7000222` until rotated.
    pub fn expire_secret(&self) {
        self.shared.state().secret_expired = true;
    }

    /// Every token issued so far answers 401 `InvalidAuthenticationToken` from now on.
    pub fn expire_tokens(&self) {
        self.shared.state().expire_tokens(Instant::now());
    }

    /// Adds (or replaces) a group and its devices.
    pub fn add_group(&self, group_id: &str, devices: Vec<SimDevice>) {
        self.shared.state().add_group(group_id, devices);
    }

    /// Sets every answer's latency from now on: `at_least` plus up to `jitter`.
    pub fn set_latency(&self, at_least: Duration, jitter: Duration) {
        let mut state = lock(&self.shared.state);
        state.config.latency = at_least;
        state.config.latency_jitter = jitter;
    }

    /// Intune forgets a managed device (deleted or retired during the rollout): it stays in its
    /// Entra ID groups, with no managed device and no report rows. Answers whether it was known.
    pub fn retire_device(&self, device_id: &str) -> bool {
        let mut state = self.shared.state();
        let mut found = false;
        for (_, devices) in &mut state.groups {
            for device in devices
                .iter_mut()
                .filter(|d| d.id.eq_ignore_ascii_case(device_id))
            {
                device.managed = false;
                found = true;
            }
        }
        state
            .device_states
            .retain(|(_, d), _| !d.eq_ignore_ascii_case(device_id));
        found
    }

    /// Moves the simulator's own clock: apps being processed finish publishing, pending upload
    /// steps settle, and every device whose report falls due reports its outcome.
    ///
    /// # Panics
    /// When the simulator was started on a shared clock ([`start_on`]): move that clock instead.
    pub fn advance(&self, by: Duration) {
        let own = self
            .own
            .as_ref()
            .expect("this simulator reads a shared clock: advance that clock, not the simulator");
        own.advance(time::Duration::try_from(by).unwrap_or(time::Duration::ZERO));
        drop(self.shared.state());
    }

    /// The simulated clock: how far it has moved since the simulator started.
    pub fn sim_time(&self) -> Duration {
        self.shared.state().clock
    }

    /// The next `times` file commits end in `commitFileFailed`.
    pub fn fail_next_commit(&self, times: u32) {
        self.shared.state().fail_next_commits += times;
    }

    /// After `blocks` more accepted Put Block requests (on any blob), the SAS of the blob that
    /// took the last one expires: the next request with it gets Azure's 403
    /// `AuthenticationFailed` "Signed expiry time ... must be after signed start time ...",
    /// until the upload is renewed (`renewUpload`). A deterministic stand-in for the clock.
    pub fn expire_sas_after_blocks(&self, blocks: u32) {
        self.shared.state().expire_sas_after_blocks = (blocks > 0).then_some(blocks);
    }

    /// The SAS of a content file's blob expires now.
    pub fn expire_sas(&self, file_id: &str) {
        let mut state = self.shared.state();
        let now = self.shared.now();
        if let Some(blob) = state.blobs.get_mut(&file_id.to_ascii_lowercase()) {
            blob.expires = now.checked_sub(Duration::from_secs(1)).unwrap_or(now);
        }
    }

    /// Every content file of an app, content version by content version.
    pub fn content_files(&self, app_id: &str) -> Vec<SimContentFile> {
        let state = self.shared.state();
        let Some(app) = state.app(app_id) else {
            return Vec::new();
        };
        app.content_versions
            .iter()
            .flat_map(|cv| {
                cv.files.iter().map(|f| {
                    let blob = state.blobs.get(&f.id.to_ascii_lowercase());
                    SimContentFile {
                        content_version: cv.id.clone(),
                        id: f.id.clone(),
                        upload_state: f.upload.peek().as_str().to_owned(),
                        size: f.size,
                        size_encrypted: f.size_encrypted,
                        committed_len: blob.map_or(0, crate::state::Blob::committed_len),
                        committed_blocks: blob.map_or_else(Vec::new, |b| {
                            b.committed
                                .iter()
                                .map(|(id, block)| SimBlock {
                                    id: id.clone(),
                                    len: block.len,
                                    sha256: hex::encode(block.sha256),
                                })
                                .collect()
                        }),
                        block_puts: blob.map_or_else(Default::default, |b| {
                            b.block_puts
                                .iter()
                                .map(|(id, n)| (id.clone(), *n))
                                .collect()
                        }),
                        bytes_received: blob.map_or(0, |b| b.bytes_received),
                    }
                })
            })
            .collect()
    }

    /// Every mobile app, in creation order (reading does not move any state on).
    pub fn apps(&self) -> Vec<SimApp> {
        self.shared
            .state()
            .apps
            .iter()
            .map(crate::state::App::snapshot)
            .collect()
    }

    /// One mobile app.
    pub fn app(&self, id: &str) -> Option<SimApp> {
        self.shared.state().app(id).map(crate::state::App::snapshot)
    }

    /// The committed content of a content file's blob, as uploaded.
    pub fn blob(&self, file_id: &str) -> Option<Vec<u8>> {
        self.shared
            .state()
            .blobs
            .get(&file_id.to_ascii_lowercase())
            .and_then(crate::state::Blob::content)
    }

    /// Every request answered (or dropped) so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        let mut requests = lock(&self.shared.requests).clone();
        requests.sort_by_key(|r| r.seq);
        requests
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        lock(&self.shared.requests).clear();
    }

    /// Stops the server and closes every open connection.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        // Dropping `_stop` ends every connection task; the accept loop ends here.
        self.accept_loop.abort();
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>, mut stopped: watch::Receiver<()>) {
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    tokio::spawn(serve(stream, Arc::clone(&shared), stopped.clone()));
                }
            }
        }
    }
}

/// Serves one connection until the client closes it, a fault drops it, or the simulator stops.
async fn serve(stream: TcpStream, shared: Arc<Shared>, mut stopped: watch::Receiver<()>) {
    let drop_connection = Arc::new(Notify::new());
    let service = {
        let drop_connection = Arc::clone(&drop_connection);
        service_fn(move |request| {
            let shared = Arc::clone(&shared);
            let drop_connection = Arc::clone(&drop_connection);
            async move { Ok::<_, Infallible>(respond(&shared, request, &drop_connection).await) }
        })
    };
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = connection => {}
        () = drop_connection.notified() => {}
        _ = stopped.changed() => {}
    }
}

/// Which surface a path reaches, with what the surface needs from the path.
enum Target {
    Token(String),
    Graph(String, Vec<String>),
    Blob,
    Other,
}

impl Target {
    fn of(path: &str) -> Self {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match segments.as_slice() {
            [version, rest @ ..] if *version == "v1.0" || *version == "beta" => Self::Graph(
                (*version).to_owned(),
                rest.iter()
                    .filter(|s| !s.is_empty())
                    .map(|s| (*s).to_owned())
                    .collect(),
            ),
            ["blob", _] => Self::Blob,
            [tenant, "oauth2", "v2.0", "token"] => Self::Token((*tenant).to_owned()),
            _ => Self::Other,
        }
    }

    fn surface(&self) -> Surface {
        match self {
            Self::Token(_) => Surface::Token,
            Self::Graph(..) => Surface::Graph,
            Self::Blob => Surface::Blob,
            Self::Other => Surface::Other,
        }
    }
}

async fn respond(
    shared: &Shared,
    request: Request<Incoming>,
    drop_connection: &Notify,
) -> Response<Full<Bytes>> {
    let seq = shared.next_seq.fetch_add(1, Ordering::Relaxed);
    let arrived = SystemTime::now();
    let delay = shared.latency(seq);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let wall = shared.now();
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .unwrap_or_default();
    let sim_time = shared.state().clock;
    let ctx = Ctx {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
        base_url: shared.base_url.clone(),
        request_id: derived_guid(shared.seed, seq),
        now: wall,
    };
    let target = Target::of(&ctx.path);
    if matches!(target, Target::Blob) && !ctx.body.is_empty() {
        let rate = lock(&shared.state).config.storage_bytes_per_second;
        if let Some(rate) = rate.filter(|r| *r > 0) {
            #[allow(clippy::cast_precision_loss)] // a body's length in bytes
            let seconds = ctx.body.len() as f64 / rate as f64;
            tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        }
    }
    let fault = shared.faults.pick(
        &ctx.method,
        &ctx.path,
        ctx.query.as_deref(),
        target.surface(),
    );
    let record =
        |status: Option<u16>| shared.record(&ctx, seq, status, fault.clone(), arrived, sim_time);
    if fault == Some(Fault::DropConnection) {
        record(None);
        drop_connection.notify_one();
        return std::future::pending().await;
    }
    let injected = fault.as_ref().and_then(|f| match &target {
        Target::Token(_) => token::fault_reply(&ctx, f),
        Target::Graph(..) => graph::fault_reply(&ctx, f),
        Target::Blob => blob::fault_reply(&ctx, f),
        Target::Other => None,
    });
    let reply = injected.unwrap_or_else(|| dispatch(shared, &target, &ctx));
    let mut reply = match &target {
        Target::Token(_) => token::finish(&ctx, reply, ctx.now),
        Target::Graph(..) => graph::finish(&ctx, reply),
        Target::Blob => blob::finish(&ctx, reply, ctx.now),
        Target::Other => reply,
    };
    match fault {
        Some(Fault::DropResponse) => {
            record(None);
            drop_connection.notify_one();
            return std::future::pending().await;
        }
        Some(Fault::MalformedBody) => reply = truncated(reply),
        _ => {}
    }
    record(Some(reply.status));
    if let Some(Fault::Slow(delay)) = fault {
        tokio::time::sleep(delay).await;
    }
    into_response(reply)
}

fn dispatch(shared: &Shared, target: &Target, ctx: &Ctx) -> Reply {
    let mut state = shared.state();
    match target {
        Target::Token(tenant) => token::handle(&mut state, ctx, tenant),
        Target::Graph(version, segments) => {
            let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
            graph::handle(&mut state, ctx, version, &segments)
        }
        Target::Blob => blob::handle(&mut state, ctx),
        Target::Other => Reply::new(
            404,
            "text/plain; charset=utf-8",
            "Not found: the simulator serves /{tenant}/oauth2/v2.0/token, /v1.0/..., /beta/... and /blob/...",
        ),
    }
}

/// The answer turned into a 200 with the first half of its body (a JSON document cut short).
fn truncated(mut reply: Reply) -> Reply {
    let cut = if reply.body.len() >= 2 {
        reply.body[..reply.body.len() / 2].to_vec()
    } else {
        br#"{"value":[{"id":""#.to_vec()
    };
    reply.status = 200;
    reply.body = cut;
    reply.headers.retain(|(name, _)| *name != "content-type");
    reply
        .headers
        .push(("content-type", graph::ODATA_JSON.to_owned()));
    reply
}

fn into_response(reply: Reply) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in reply.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response
                .headers_mut()
                .append(HeaderName::from_static(name), value);
        }
    }
    response
}

impl Shared {
    fn record(
        &self,
        ctx: &Ctx,
        seq: u64,
        status: Option<u16>,
        fault: Option<Fault>,
        time: SystemTime,
        sim_time: Duration,
    ) {
        let headers = ctx
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = match std::str::from_utf8(&ctx.body) {
            Ok(text) if ctx.body.len() <= RECORDED_BODY_LIMIT => text.to_owned(),
            _ => format!("<{} bytes>", ctx.body.len()),
        };
        lock(&self.requests).push(RecordedRequest {
            seq,
            method: ctx.method.to_string(),
            path: ctx.path.clone(),
            query: ctx.query.clone(),
            headers,
            body,
            status,
            fault,
            time,
            sim_time,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_reach_their_surface() {
        assert!(matches!(Target::of("/t/oauth2/v2.0/token"), Target::Token(t) if t == "t"));
        assert!(
            matches!(Target::of("/v1.0/deviceAppManagement/mobileApps"), Target::Graph(v, s) if v == "v1.0" && s.len() == 2)
        );
        assert!(matches!(Target::of("/beta/x"), Target::Graph(v, _) if v == "beta"));
        assert!(matches!(Target::of("/blob/abc"), Target::Blob));
        assert!(matches!(Target::of("/elsewhere"), Target::Other));
    }

    #[test]
    fn a_truncated_answer_is_a_200_with_half_the_body() {
        let reply = truncated(Reply::new(201, "application/json", r#"{"id":"abcdef"}"#));
        assert_eq!(reply.status, 200);
        assert!(serde_json::from_slice::<serde_json::Value>(&reply.body).is_err());
        assert!(
            serde_json::from_slice::<serde_json::Value>(&truncated(Reply::empty(204)).body)
                .is_err()
        );
    }
}
