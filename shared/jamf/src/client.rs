//! The Jamf Pro client: tokens (`OAuth` or Basic), this container's share of Jamf's 5 concurrent
//! connections, the load balancer's cookie kept, one place that sends, classifies, refreshes on
//! 401 and records.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use eucora_connector::artifact::{ArtifactSource, ArtifactStream, hex_lower};
use eucora_connector::credentials::Credentials;
use eucora_connector::platform::{CallContext, CallRecord, Job, Platform};
use eucora_connector::{CallError, ErrorClass};
use eucora_domain::evidence::Platform as Kind;
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;
use sha3::Digest as _;
use tokio::sync::{Mutex, Semaphore};

/// Jamf asks clients to keep to 5 concurrent connections or fewer to one server.
pub const JAMF_CONNECTION_LIMIT: usize = 5;

/// The environment variable that carries how many connector containers may run at once: the
/// template sets it from the same parameter as the SQS event source's `MaximumConcurrency`.
pub const CONTAINERS_ENV: &str = "JAMF_CONNECTOR_CONTAINERS";

/// How patient to be, and how many requests this container may have in flight to the server.
///
/// # The limit across containers
/// Jamf's limit (never more than [`JAMF_CONNECTION_LIMIT`] concurrent connections to one server)
/// is for the whole fleet, and SQS may run up to `containers` connector containers at once (the
/// event source's `MaximumConcurrency`). Each container keeps to a fixed share,
/// `fleet_limit / containers` rounded down (2 each for the 2 containers the template allows, so 4
/// at most), so the sum can never pass the limit whatever the containers do, with no shared state.
///
/// A lease in DynamoDB (like the circuit breaker's) would let one busy container use all 5, but
/// adds a conditional write before and after every request, a lease expiry to choose for a
/// container that dies holding one, and a DynamoDB outage that stops Jamf traffic. The connector
/// sends a handful of requests per command and SQS already spreads the commands, so the fixed
/// share costs little throughput and cannot be wrong at run time.
///
/// # A status query's budget
/// A status query reads the ring's membership and its inventory in bulk (a few dozen requests
/// for 10,000 Macs), then the policy logs of the Macs that may have failed, one request each.
/// Those stop at `status_budget` after the query started, or after `status_history_reads`
/// reads, whichever comes first; the Macs left unread stay `Pending` and the next query reads
/// others first. The 30 s default leaves a 60 s Lambda room for the requests still in flight
/// (each at most `timeout`) and the connector's own writes.
/// # Packages
/// A package's file goes to `POST /api/v1/packages/{id}/upload` in one multipart request, read
/// from the artifact store in `upload_chunk_bytes` chunks as it is sent (a few chunks in memory
/// whatever the package's size), with its own timeout: `upload_timeout_base` plus the size at
/// `upload_min_bytes_per_second`. Packages over `max_package_bytes` are refused before any call.
/// While Jamf processes an uploaded file (its hash not there yet), the publish hands over to a
/// later invocation `processing_recheck` later (then a quarter of the wait so far, at most 15
/// minutes). Past `processing_timeout` since it created the package, a publish whose upload
/// never got through, or whose file Jamf never processed, halts naming the package.
#[derive(Debug, Clone)]
pub struct JamfConfig {
    /// Every request but an upload.
    pub timeout: Duration,
    /// Concurrent requests allowed to one Jamf Pro server across every container.
    pub fleet_limit: usize,
    /// How many containers may call the server at once (at least 1).
    pub containers: usize,
    /// How long a status query may go on starting policy-log reads.
    pub status_budget: Duration,
    /// At most this many policy-log reads per status query.
    pub status_history_reads: usize,
    /// The largest package this connector sends (default: the domain's limit for macOS
    /// packages, `Platform::Macos.package_size_limit()`, 20 GB).
    pub max_package_bytes: u64,
    /// Chunks a package is read and sent in.
    pub upload_chunk_bytes: u64,
    /// An upload's timeout: this, plus its size at `upload_min_bytes_per_second`.
    pub upload_timeout_base: Duration,
    pub upload_min_bytes_per_second: u64,
    /// How long to wait before checking again on a file Jamf is still processing (or an object
    /// the cluster's other node has not replicated yet).
    pub processing_recheck: Duration,
    /// How long after EUCORA created a package the publish keeps sending its file and waiting
    /// for Jamf to process it before it halts naming the package (the policy stays disabled).
    /// Measured from the creation time in the package's note, across invocations.
    pub processing_timeout: Duration,
    /// A policy's `retry_attempts`: how many times a Mac retries a failed install at its next
    /// check-ins (1 to 10).
    pub retry_attempts: u8,
}

impl Default for JamfConfig {
    /// One container with the whole limit (a local stack or a test).
    fn default() -> Self {
        JamfConfig {
            timeout: Duration::from_secs(20),
            fleet_limit: JAMF_CONNECTION_LIMIT,
            containers: 1,
            status_budget: Duration::from_secs(30),
            status_history_reads: 500,
            max_package_bytes: Kind::Macos.package_size_limit().0,
            upload_chunk_bytes: 4 * 1024 * 1024,
            upload_timeout_base: Duration::from_secs(60),
            upload_min_bytes_per_second: 5 * 1024 * 1024,
            processing_recheck: Duration::from_secs(60),
            processing_timeout: Duration::from_secs(2 * 3600),
            retry_attempts: 3,
        }
    }
}

impl JamfConfig {
    /// The configuration for `containers` containers sharing the server.
    ///
    /// # Errors
    /// `containers` is 0 or more than the fleet limit (a container would get no share).
    pub fn for_containers(containers: usize) -> Result<JamfConfig, CallError> {
        let cfg = JamfConfig {
            containers,
            ..JamfConfig::default()
        };
        cfg.max_in_flight().map(|_| cfg)
    }

    /// Reads [`CONTAINERS_ENV`] (once, in `main`).
    ///
    /// # Errors
    /// The variable is missing, not a number, or out of range (see [`JamfConfig::for_containers`]).
    pub fn from_env() -> Result<JamfConfig, CallError> {
        let raw = std::env::var(CONTAINERS_ENV).map_err(|_| {
            CallError::invalid_payload(
                "config",
                "INVALID_CONFIG",
                format!("{CONTAINERS_ENV} is not set"),
            )
        })?;
        let containers = raw.trim().parse::<usize>().map_err(|_| {
            CallError::invalid_payload(
                "config",
                "INVALID_CONFIG",
                format!("{CONTAINERS_ENV} must be a whole number, got {raw:?}"),
            )
        })?;
        JamfConfig::for_containers(containers)
    }

    /// The timeout of an upload of `size` bytes.
    pub fn upload_timeout(&self, size: u64) -> Duration {
        let rate = self.upload_min_bytes_per_second.max(1);
        self.upload_timeout_base + Duration::from_secs(size.div_ceil(rate))
    }

    /// This container's share of the fleet limit: `fleet_limit / containers`, rounded down.
    ///
    /// # Errors
    /// The share would be 0 (more containers than the limit allows), or `containers` is 0.
    pub fn max_in_flight(&self) -> Result<usize, CallError> {
        let share = self
            .fleet_limit
            .min(JAMF_CONNECTION_LIMIT)
            .checked_div(self.containers)
            .unwrap_or(0);
        if share == 0 {
            return Err(CallError::invalid_payload(
                "config",
                "INVALID_CONFIG",
                format!(
                    "{} containers cannot share {} connections to Jamf Pro (1 to {} containers)",
                    self.containers, self.fleet_limit, self.fleet_limit
                ),
            ));
        }
        Ok(share)
    }
}

/// The secret's JSON document: the server, and `OAuth` client credentials and/or an API user.
#[derive(Deserialize)]
struct JamfSecret {
    server_url: String,
    client_id: Option<String>,
    client_secret: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kinds {
    OAuth,
    Basic,
}

struct CachedToken {
    value: String,
    expires_at: Instant,
    /// From here on the token is renewed: [`refresh_buffer`] before it expires.
    refresh_at: Instant,
    kind: Kinds,
}

impl CachedToken {
    fn new(value: String, lifetime: Duration, kind: Kinds) -> CachedToken {
        let now = Instant::now();
        CachedToken {
            value,
            expires_at: now + lifetime,
            // The buffer is at most a quarter of the lifetime: never before `now`.
            refresh_at: now + lifetime.saturating_sub(refresh_buffer(lifetime)),
            kind,
        }
    }
}

/// How long before expiry a token is renewed: the SDKs' 5 minutes, or a quarter of the lifetime
/// when that is shorter, so that any token is reused for most of its life (a 120 s token for
/// 90 s, Jamf's 599 s `OAuth` token for 299 s, a 30-minute user token for 25 minutes).
pub(crate) fn refresh_buffer(lifetime: Duration) -> Duration {
    REFRESH_BUFFER.min(lifetime / 4)
}

const REFRESH_BUFFER: Duration = Duration::from_secs(300);

/// A request body (a package's file goes through [`JamfClient::upload`]).
pub(crate) enum Payload {
    None,
    Json(Value),
    Xml(String),
}

pub(crate) struct Answer {
    pub body: String,
    /// The server's clock at the answer (its `Date` header), when it sent one.
    pub server_date: Option<std::time::SystemTime>,
}

impl Answer {
    pub fn json<T: serde::de::DeserializeOwned>(&self, op: &str) -> Result<T, CallError> {
        serde_json::from_str(&self.body)
            .map_err(|e| CallError::no_answer(op, format!("unreadable answer: {e}")))
    }

    /// The Classic API's XML answer, read into `T`.
    pub fn xml<T: serde::de::DeserializeOwned>(&self, op: &str) -> Result<T, CallError> {
        crate::xml::read(&self.body)
            .map_err(|e| CallError::no_answer(op, format!("unreadable XML answer: {e}")))
    }
}

/// Jamf Pro.
pub struct JamfClient<C, A> {
    http: reqwest::Client,
    creds: C,
    pub(crate) artifacts: A,
    token: Mutex<Option<CachedToken>>,
    in_flight: Arc<Semaphore>,
    server: Mutex<Option<String>>,
    /// This container's share of the connection limit.
    pub(crate) max_in_flight: usize,
    pub(crate) config: JamfConfig,
    pub(crate) status_budget: Duration,
    pub(crate) status_history_reads: usize,
    /// What status queries learnt that later ones reuse (see `status.rs`).
    pub(crate) status_memo: crate::status::Memo,
}

impl<C, A> std::fmt::Debug for JamfClient<C, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JamfClient").finish_non_exhaustive()
    }
}

/// The platform's error code and message: the Jamf Pro API's JSON errors, or the Classic API's HTML page.
fn error_code(status: u16, body: &str) -> (String, String) {
    match serde_json::from_str::<ApiErrors>(body) {
        Ok(e) if !e.errors.is_empty() => {
            let first = &e.errors[0];
            (
                first.code.clone(),
                format!(
                    "{}{}",
                    first
                        .field
                        .as_deref()
                        .map(|f| format!("{f}: "))
                        .unwrap_or_default(),
                    first.description.clone().unwrap_or_default()
                ),
            )
        }
        _ => {
            let reason = crate::xml::html_reason(body).unwrap_or_default();
            let code = match status {
                409 => "CONFLICT".to_owned(),
                400 => "JAMF_INVALID_PAYLOAD".to_owned(),
                _ => reqwest::StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("Error")
                    .to_owned(),
            };
            (code, reason)
        }
    }
}

#[derive(Deserialize)]
struct ApiErrors {
    #[serde(default)]
    errors: Vec<ApiError>,
}

#[derive(Deserialize)]
struct ApiError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

impl<C: Credentials, A: ArtifactSource> JamfClient<C, A> {
    /// # Errors
    /// The configuration leaves this container no share of the limit, or the HTTP client
    /// cannot be built.
    pub fn new(cfg: &JamfConfig, creds: C, artifacts: A) -> Result<JamfClient<C, A>, CallError> {
        let max_in_flight = cfg.max_in_flight()?;
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(Duration::from_secs(5))
            // Keeps jpro-ingress (and the older APBALANCEID / AWSALB) between requests.
            .cookie_store(true)
            .pool_max_idle_per_host(max_in_flight)
            .build()
            .map_err(|e| CallError::no_answer("client", e.to_string()))?;
        Ok(JamfClient {
            http,
            creds,
            artifacts,
            token: Mutex::new(None),
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            server: Mutex::new(None),
            max_in_flight,
            config: cfg.clone(),
            status_budget: cfg.status_budget,
            status_history_reads: cfg.status_history_reads,
            status_memo: crate::status::Memo::default(),
        })
    }

    #[allow(clippy::too_many_arguments)] // one audit record's fields
    fn record(
        cx: &mut CallContext,
        op: &str,
        method: &Method,
        endpoint: &str,
        status: Option<u16>,
        class: Option<ErrorClass>,
        started: Instant,
        ids: Value,
    ) {
        let at = cx.now();
        cx.record(CallRecord {
            operation: op.to_owned(),
            method: method.to_string(),
            endpoint: endpoint.split('?').next().unwrap_or_default().to_owned(),
            status,
            error_class: class,
            platform_ids: ids,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            at,
        });
    }

    /// Sends one request to `{server}{path}` under the concurrency limit; no auth handling.
    #[allow(clippy::too_many_arguments)]
    async fn raw(
        &self,
        cx: &mut CallContext,
        op: &str,
        method: Method,
        url: &str,
        auth: Auth<'_>,
        payload: Payload,
        ids: &Value,
    ) -> Result<Answer, CallError> {
        let _permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| CallError::no_answer(op, "client closed"))?;
        let mut req = self.request(cx, method.clone(), url, auth);
        req = match payload {
            Payload::None => req,
            Payload::Json(v) => req.json(&v),
            Payload::Xml(x) => req
                .header("Content-Type", "application/xml")
                .header("Accept", "application/xml")
                .body(x),
        };
        let started = Instant::now();
        let sent = req.send().await;
        Self::answer(cx, op, &method, url, sent, started, ids).await
    }

    fn request(
        &self,
        cx: &CallContext,
        method: Method,
        url: &str,
        auth: Auth<'_>,
    ) -> reqwest::RequestBuilder {
        let req = self
            .http
            .request(method, url)
            .header("X-Correlation-ID", cx.correlation_id.as_str());
        match auth {
            Auth::Bearer(t) => req.bearer_auth(t),
            Auth::Basic(u, p) => req.basic_auth(u, Some(p)),
            Auth::Form(fields) => req.form(&fields),
        }
    }

    /// Reads, classifies and records the answer to a request sent at `started`.
    #[allow(clippy::too_many_arguments)]
    async fn answer(
        cx: &mut CallContext,
        op: &str,
        method: &Method,
        url: &str,
        sent: Result<reqwest::Response, reqwest::Error>,
        started: Instant,
        ids: &Value,
    ) -> Result<Answer, CallError> {
        let endpoint = reqwest::Url::parse(url)
            .map(|u| u.path().to_owned())
            .unwrap_or_default();
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                Self::record(
                    cx,
                    op,
                    method,
                    &endpoint,
                    None,
                    Some(ErrorClass::Transient),
                    started,
                    ids.clone(),
                );
                return Err(CallError::no_answer(op, e.without_url().to_string()));
            }
        };
        let status = response.status().as_u16();
        let server_date = server_date(&response);
        let retry_after = CallError::parse_retry_after(
            response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
        );
        let body = match response.text().await {
            Ok(b) => b,
            Err(e) => {
                Self::record(
                    cx,
                    op,
                    method,
                    &endpoint,
                    Some(status),
                    Some(ErrorClass::Transient),
                    started,
                    ids.clone(),
                );
                return Err(CallError::no_answer(op, e.without_url().to_string()));
            }
        };
        if (200..300).contains(&status) {
            Self::record(
                cx,
                op,
                method,
                &endpoint,
                Some(status),
                None,
                started,
                ids.clone(),
            );
            return Ok(Answer { body, server_date });
        }
        let (code, message) = error_code(status, &body);
        let err = CallError::http(op, status, code, message, retry_after);
        Self::record(
            cx,
            op,
            method,
            &endpoint,
            Some(status),
            Some(err.class),
            started,
            ids.clone(),
        );
        Err(err)
    }

    /// The server and a token, from the cache unless `force` (after a 401: secret read again).
    async fn token(
        &self,
        cx: &mut CallContext,
        force: bool,
    ) -> Result<(String, String), CallError> {
        let mut cached = self.token.lock().await;
        let server = self.server.lock().await.clone();
        if !force && let (Some(t), Some(server)) = (cached.as_ref(), server.as_ref()) {
            if Instant::now() < t.refresh_at {
                return Ok((server.clone(), t.value.clone()));
            }
            if t.kind == Kinds::Basic && t.expires_at > Instant::now() {
                // A user token close to expiry: keep it alive (the old one becomes invalid).
                let url = format!("{server}/api/v1/auth/keep-alive");
                if let Ok(a) = self
                    .raw(
                        cx,
                        "auth_keep_alive",
                        Method::POST,
                        &url,
                        Auth::Bearer(&t.value),
                        Payload::None,
                        &Value::Null,
                    )
                    .await
                    && let Ok(fresh) = a.json::<UserToken>("auth_keep_alive")
                {
                    let value = fresh.token.clone();
                    let lifetime = fresh.lifetime(a.server_date);
                    *cached = Some(CachedToken::new(fresh.token, lifetime, Kinds::Basic));
                    return Ok((server.clone(), value));
                }
            }
        }
        let secret = if force {
            self.creds.refresh().await?
        } else {
            self.creds.current().await?
        };
        let s: JamfSecret = secret.parse("Jamf")?;
        let result = match self.new_token(cx, &s).await {
            Err(e) if !force && e.status == Some(401) => {
                // The cached secret may have been rotated: read it again once.
                cx.auth_refreshed = true;
                let fresh: JamfSecret = self.creds.refresh().await?.parse("Jamf")?;
                self.new_token(cx, &fresh).await
            }
            other => other,
        }?;
        let server = s.server_url.trim_end_matches('/').to_owned();
        *self.server.lock().await = Some(server.clone());
        let value = result.value.clone();
        *cached = Some(result);
        Ok((server, value))
    }

    async fn new_token(
        &self,
        cx: &mut CallContext,
        s: &JamfSecret,
    ) -> Result<CachedToken, CallError> {
        let server = s.server_url.trim_end_matches('/');
        if let (Some(id), Some(secret)) = (&s.client_id, &s.client_secret) {
            let fields = vec![
                ("grant_type", "client_credentials".to_owned()),
                ("client_id", id.clone()),
                ("client_secret", secret.clone()),
            ];
            for path in ["/api/v1/oauth/token", "/api/oauth/token"] {
                match self
                    .raw(
                        cx,
                        "oauth_token",
                        Method::POST,
                        &format!("{server}{path}"),
                        Auth::Form(fields.clone()),
                        Payload::None,
                        &Value::Null,
                    )
                    .await
                {
                    Ok(a) => {
                        let t: OAuthToken = a.json("oauth_token")?;
                        return Ok(CachedToken::new(
                            t.access_token,
                            Duration::from_secs(t.expires_in),
                            Kinds::OAuth,
                        ));
                    }
                    // This server does not know this path (older or newer): try the other, then Basic.
                    Err(e) if e.status == Some(404) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let (Some(user), Some(password)) = (&s.username, &s.password) else {
            return Err(CallError::invalid_payload(
                "auth",
                "NO_USABLE_CREDENTIALS",
                "OAuth is not available and the secret has no username and password",
            ));
        };
        let a = self
            .raw(
                cx,
                "auth_token",
                Method::POST,
                &format!("{server}/api/v1/auth/token"),
                Auth::Basic(user, password),
                Payload::None,
                &Value::Null,
            )
            .await?;
        let t: UserToken = a.json("auth_token")?;
        let lifetime = t.lifetime(a.server_date);
        Ok(CachedToken::new(t.token, lifetime, Kinds::Basic))
    }

    /// One authenticated request to `path` on the server; on 401 the token and secret are
    /// refreshed once and the request is sent again. A 401 to a token just issued is no token
    /// problem: the API client's role lacks the privilege (the Classic API answers a missing
    /// privilege with the same 401 page as a bad token), a `policy_violation` naming it.
    pub(crate) async fn call(
        &self,
        cx: &mut CallContext,
        op: &str,
        method: Method,
        path: &str,
        payload: impl Fn() -> Payload,
        ids: Value,
    ) -> Result<Answer, CallError> {
        let mut refreshed = false;
        loop {
            let (server, token) = self.token(cx, refreshed).await?;
            match self
                .raw(
                    cx,
                    op,
                    method.clone(),
                    &format!("{server}{path}"),
                    Auth::Bearer(&token),
                    payload(),
                    &ids,
                )
                .await
            {
                Err(e) if e.class == ErrorClass::Unauthorized && !refreshed => {
                    tracing::info!(
                        operation = op,
                        "401 from Jamf: refreshing the token and the secret once"
                    );
                    cx.auth_refreshed = true;
                    refreshed = true;
                }
                Err(e) if e.class == ErrorClass::Unauthorized => {
                    return Err(missing_privilege(e, method.as_str(), path));
                }
                other => return other,
            }
        }
    }

    /// Uploads the artifact at `location` as the `file` part of a multipart `POST` to `path`,
    /// read from the artifact store chunk by chunk as it is sent (never whole in memory), every
    /// byte hashed. The last chunk goes out only once the whole file's SHA-256 matches
    /// `expected_sha256`: bytes that are not the approved ones break the request off, so the
    /// server never completes an upload of them (`ARTIFACT_HASH_MISMATCH`, permanent). The
    /// request has its own timeout, sized for the file ([`JamfConfig::upload_timeout`]). While the
    /// body is still being streamed it stops at the invocation's work budget (`resume_later`: the
    /// next invocation sends it again, as Jamf keeps nothing of an upload that did not finish);
    /// once the whole body is handed to the request, the server may complete the upload whatever
    /// this side does, so its answer is waited for instead of abandoned. On 401 the token is
    /// refreshed once and the file sent again from its start.
    pub(crate) async fn upload(
        &self,
        cx: &mut CallContext,
        path: &str,
        file_name: &str,
        location: &str,
        expected_sha256: &str,
        ids: Value,
    ) -> Result<Uploaded, CallError> {
        let mut refreshed = false;
        loop {
            let (server, token) = self.token(cx, refreshed).await?;
            match self
                .upload_once(
                    cx,
                    &format!("{server}{path}"),
                    &token,
                    file_name,
                    location,
                    expected_sha256,
                    &ids,
                )
                .await
            {
                Err(e) if e.class == ErrorClass::Unauthorized && !refreshed => {
                    cx.auth_refreshed = true;
                    refreshed = true;
                }
                Err(e) if e.class == ErrorClass::Unauthorized => {
                    return Err(missing_privilege(e, "POST", path));
                }
                other => return other,
            }
        }
    }

    #[allow(clippy::too_many_arguments, clippy::too_many_lines)]
    async fn upload_once(
        &self,
        cx: &mut CallContext,
        url: &str,
        token: &str,
        file_name: &str,
        location: &str,
        expected_sha256: &str,
        ids: &Value,
    ) -> Result<Uploaded, CallError> {
        const OP: &str = "upload_package";
        let source = ArtifactStream::open(
            &self.artifacts,
            location,
            self.config.upload_chunk_bytes,
            false,
        )
        .await?;
        let size = source.size();
        if size > self.config.max_package_bytes {
            return Err(crate::publish::too_large(
                file_name,
                size,
                self.config.max_package_bytes,
            ));
        }
        // Two chunks queued for the request, besides the stream's own read-ahead.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
        // A body given up before its end (the work budget) breaks off with an error, never ends
        // as if complete: the server must not take a shorter file for the whole one.
        let body = reqwest::Body::wrap_stream(futures_util::stream::unfold(
            (rx, 0_u64),
            move |(mut rx, streamed)| async move {
                match rx.recv().await {
                    Some(Ok(chunk)) => {
                        let streamed = streamed + chunk.len() as u64;
                        Some((Ok(chunk), (rx, streamed)))
                    }
                    Some(Err(e)) => Some((Err(e), (rx, streamed))),
                    None if streamed < size => Some((
                        Err(std::io::Error::other(
                            "the upload was given up before its end",
                        )),
                        (rx, streamed),
                    )),
                    None => None,
                }
            },
        ));
        let part = reqwest::multipart::Part::stream_with_length(body, size)
            .file_name(file_name.to_owned())
            .mime_str("application/octet-stream")
            .map_err(|e| CallError::no_answer(OP, e.without_url().to_string()))?;
        let _permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| CallError::no_answer(OP, "client closed"))?;
        let request = self
            .request(cx, Method::POST, url, Auth::Bearer(token))
            .timeout(self.config.upload_timeout(size))
            .multipart(reqwest::multipart::Form::new().part("file", part));
        let started = Instant::now();
        let produce = async move {
            let mut sha3 = sha3::Sha3_512::new();
            let mut open = Some(source);
            let digests = loop {
                let Some(stream) = open.as_mut() else {
                    return Err(CallError::no_answer(OP, "the artifact stream ended twice"));
                };
                let Some(chunk) = stream.next().await? else {
                    // An empty file: no chunk to hold back, the body must not end normally.
                    let verified = open.take().map(|s| s.finish_verified(expected_sha256));
                    if let Some(Err(e)) = verified {
                        let _ = tx
                            .send(Err(std::io::Error::other(
                                "the package is not the approved one",
                            )))
                            .await;
                        return Err(e);
                    }
                    break verified.and_then(Result::ok);
                };
                sha3::Digest::update(&mut sha3, &chunk);
                let last = stream.position() == size;
                let digests = if last {
                    // The last chunk goes out only with the whole file verified: other bytes
                    // break the request off, and the server never completes their upload.
                    match open.take().map(|s| s.finish_verified(expected_sha256)) {
                        Some(Ok(d)) => Some(d),
                        Some(Err(e)) => {
                            let _ = tx
                                .send(Err(std::io::Error::other(
                                    "the package is not the approved one",
                                )))
                                .await;
                            return Err(e);
                        }
                        None => None,
                    }
                } else {
                    None
                };
                if tx.send(Ok(chunk)).await.is_err() {
                    // The request ended early (an error answer); its result says why.
                    return Ok(None);
                }
                if last {
                    break digests;
                }
            };
            drop(tx);
            let digests = digests
                .ok_or_else(|| CallError::no_answer(OP, "the artifact was not read to its end"))?;
            Ok::<_, CallError>(Some(Uploaded {
                size,
                sha256: digests.sha256,
                sha3_512: hex_lower(&sha3::Digest::finalize(sha3)),
            }))
        };
        let send = request.send();
        tokio::pin!(produce, send);
        let (mut produced, mut sent) = (None, None);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let (produced, sent) = loop {
            (produced, sent) = match (produced, sent) {
                (Some(produced), Some(sent)) => break (produced, sent),
                waiting => waiting,
            };
            tokio::select! {
                done = &mut produce, if produced.is_none() => produced = Some(done),
                done = &mut send, if sent.is_none() => sent = Some(done),
                // Only while the body is still being streamed: once all of it is handed to the
                // request, the server may complete the upload whatever this side does, so its
                // answer is waited for (the request's timeout bounds the wait).
                _ = tick.tick(), if produced.is_none() => {
                    if cx.out_of_time() {
                        // Not the platform's failure: recorded without an error class, so the
                        // circuit breaker does not count it.
                        let endpoint = reqwest::Url::parse(url)
                            .map(|u| u.path().to_owned())
                            .unwrap_or_default();
                        Self::record(cx, OP, &Method::POST, &endpoint, None, None, started, ids.clone());
                        return Err(CallError::resume_later(
                            OP,
                            format!(
                                "the upload of {file_name} ({size} bytes) stopped at the invocation's work budget before its body was sent; Jamf keeps nothing of an upload that did not finish, the next invocation sends it again"
                            ),
                            Duration::ZERO,
                        ));
                    }
                }
            }
        };
        let uploaded = match produced {
            // The artifact could not be read, or is not the approved bytes.
            Err(e) => {
                let endpoint = reqwest::Url::parse(url)
                    .map(|u| u.path().to_owned())
                    .unwrap_or_default();
                Self::record(
                    cx,
                    OP,
                    &Method::POST,
                    &endpoint,
                    sent.as_ref().ok().map(|r| r.status().as_u16()),
                    Some(e.class),
                    started,
                    ids.clone(),
                );
                return Err(e);
            }
            Ok(uploaded) => uploaded,
        };
        Self::answer(cx, OP, &Method::POST, url, sent, started, ids).await?;
        uploaded.ok_or_else(|| CallError::no_answer(OP, "the server ended the upload early"))
    }
}

/// What an upload sent: its size and digests (the SHA-256 checked against the evidence pack).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Uploaded {
    pub size: u64,
    pub sha256: String,
    pub sha3_512: String,
}

/// The Jamf privilege a request needs, by the name Jamf's API roles give it.
pub(crate) fn privilege(method: &str, path: &str) -> String {
    let segments: Vec<&str> = path
        .split('?')
        .next()
        .unwrap_or_default()
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let action = match method.to_ascii_uppercase().as_str() {
        "GET" | "HEAD" => "Read",
        "POST" => "Create",
        "PUT" | "PATCH" => "Update",
        "DELETE" => "Delete",
        _ => "Use",
    };
    let object = match segments.as_slice() {
        ["api", _, "packages", _, "upload", ..] => return "Update Packages".to_owned(),
        ["JSSResource", "policies", ..] => "Policies",
        ["JSSResource", "categories", ..] | ["api", _, "categories", ..] => "Categories",
        ["JSSResource", "packages", ..] | ["api", _, "packages", ..] => "Packages",
        ["JSSResource", "computergroups", ..] | ["api", _, "computer-groups", ..] => {
            "Smart Computer Groups"
        }
        ["JSSResource", "computerhistory", ..]
        | [
            "api",
            _,
            "computers-inventory" | "computers-inventory-detail",
            ..,
        ] => "Computers",
        [.., last] => last,
        [] => "",
    };
    format!("{action} {object}")
}

/// A 401 that a freshly issued token got: the role lacks the privilege.
fn missing_privilege(e: CallError, method: &str, path: &str) -> CallError {
    let privilege = privilege(method, path);
    let path_only = path.split('?').next().unwrap_or_default();
    CallError {
        class: ErrorClass::PolicyViolation,
        operation: e.operation,
        status: e.status,
        code: "MISSING_PRIVILEGE".to_owned(),
        message: format!(
            "the API client's role lacks the privilege \"{privilege}\" ({method} {path_only} answered 401 to a token just issued; Jamf said: \"{}\")",
            e.message
        ),
        retry_after: None,
    }
}

pub(crate) enum Auth<'a> {
    Bearer(&'a str),
    Basic(&'a str, &'a str),
    Form(Vec<(&'static str, String)>),
}

/// The server's clock at an answer: its `Date` header (an HTTP-date), when it sent one.
fn server_date(response: &reqwest::Response) -> Option<std::time::SystemTime> {
    let date = response.headers().get("date")?.to_str().ok()?;
    httpdate::parse_http_date(date).ok()
}

#[derive(Deserialize)]
struct OAuthToken {
    access_token: String,
    expires_in: u64,
}

#[derive(Deserialize)]
struct UserToken {
    token: String,
    expires: String,
}

impl UserToken {
    /// How long the token lives from now. `expires` is the server's wall-clock time, so its
    /// lifetime is measured against the server's own clock (the answer's `Date`), not ours: a
    /// Jamf server whose clock runs ahead of or behind Lambda's still gets its tokens reused for
    /// their real lifetime. Without a `Date`, our clock; without a readable `expires`, a minute.
    fn lifetime(&self, server_date: Option<std::time::SystemTime>) -> Duration {
        let server_now = server_date.map_or_else(
            eucora_connector::platform::call_time,
            eucora_domain::Timestamp::from_system_time,
        );
        eucora_domain::Timestamp::parse(&self.expires)
            .map(|t| t.since(server_now))
            .ok()
            .and_then(|d| Duration::try_from(d).ok())
            .unwrap_or(Duration::from_secs(60))
    }
}

impl<C: Credentials, A: ArtifactSource> Platform for JamfClient<C, A> {
    fn kind(&self) -> Kind {
        Kind::Macos
    }

    async fn publish(&self, cx: &mut CallContext, job: &Job<'_>) -> Result<Value, CallError> {
        crate::publish::publish(self, cx, job).await
    }

    async fn query_status(
        &self,
        cx: &mut CallContext,
        job: &Job<'_>,
    ) -> Result<eucora_connector::platform::RingStatus, CallError> {
        crate::status::status(self, cx, job).await
    }

    async fn rollback(&self, cx: &mut CallContext, job: &Job<'_>) -> Result<Value, CallError> {
        crate::publish::rollback(self, cx, job).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::{JAMF_CONNECTION_LIMIT, JamfConfig, UserToken, privilege, refresh_buffer};

    #[test]
    fn a_token_is_reused_for_most_of_its_lifetime_whatever_it_is() {
        let s = Duration::from_secs;
        assert_eq!(refresh_buffer(s(120)), s(30), "a 120 s token for 90 s");
        assert_eq!(refresh_buffer(s(300)), s(75), "at the buffer: still reused");
        assert_eq!(refresh_buffer(s(599)), Duration::from_millis(149_750));
        assert_eq!(refresh_buffer(s(1800)), s(300), "the SDKs' 5 minutes");
        assert_eq!(refresh_buffer(s(0)), s(0));
    }

    #[test]
    fn the_privilege_a_request_needs_is_named_as_jamf_names_it() {
        assert_eq!(
            privilege("POST", "/JSSResource/policies/id/0"),
            "Create Policies"
        );
        assert_eq!(
            privilege("PUT", "/JSSResource/policies/id/7"),
            "Update Policies"
        );
        assert_eq!(
            privilege("GET", "/JSSResource/computerhistory/id/1/subset/PolicyLogs"),
            "Read Computers"
        );
        assert_eq!(
            privilege("POST", "/api/v1/packages/3/upload"),
            "Update Packages"
        );
        assert_eq!(
            privilege("POST", "/JSSResource/categories/id/0"),
            "Create Categories"
        );
    }

    /// A user token's lifetime is read against the server's clock, whichever way it is off.
    #[test]
    fn a_user_token_lifetime_is_measured_on_the_servers_clock() {
        let token = |expires: &str| UserToken {
            token: "t".into(),
            expires: expires.into(),
        };
        // The server's clock is a year behind ours (and then a year ahead): 30 minutes left.
        for server_now in ["2025-11-30T10:00:00Z", "2027-11-30T10:00:00Z"] {
            let now = eucora_domain::Timestamp::parse(server_now).unwrap();
            let date = SystemTime::UNIX_EPOCH
                + Duration::from_secs(u64::try_from(now.unix_seconds()).unwrap());
            let expires = now.plus(time::Duration::minutes(30)).to_rfc3339();
            let left = token(&expires).lifetime(Some(date));
            assert!(
                left > Duration::from_secs(29 * 60) && left <= Duration::from_secs(30 * 60),
                "{server_now}: {left:?}"
            );
        }
        // No Date and an unreadable expiry: a minute.
        let left = token("soon").lifetime(None);
        assert!(left <= Duration::from_secs(60) && left > Duration::from_secs(50));
    }

    #[test]
    fn each_container_gets_its_share_of_the_limit() {
        assert_eq!(JamfConfig::default().max_in_flight().unwrap(), 5);
        for containers in 1..=JAMF_CONNECTION_LIMIT {
            let share = JamfConfig::for_containers(containers)
                .unwrap()
                .max_in_flight()
                .unwrap();
            assert!(share >= 1);
            assert!(
                share * containers <= JAMF_CONNECTION_LIMIT,
                "{containers} containers x {share}"
            );
        }
        assert_eq!(
            JamfConfig::for_containers(2)
                .unwrap()
                .max_in_flight()
                .unwrap(),
            2
        );
        assert!(JamfConfig::for_containers(0).is_err());
        assert!(JamfConfig::for_containers(6).is_err());
        let generous = JamfConfig {
            fleet_limit: 50,
            ..JamfConfig::default()
        };
        assert_eq!(generous.max_in_flight().unwrap(), 5, "never above Jamf's 5");
    }
}
