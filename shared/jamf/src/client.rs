//! The Jamf Pro client: tokens (`OAuth` or Basic), this container's share of Jamf's 5 concurrent
//! connections, the load balancer's cookie kept, one place that sends, classifies, refreshes on
//! 401 and records.

use std::sync::Arc;
use std::time::{Duration, Instant};

use eucora_connector::artifact::ArtifactSource;
use eucora_connector::credentials::Credentials;
use eucora_connector::platform::{CallContext, CallRecord, Job, Platform};
use eucora_connector::{CallError, ErrorClass};
use eucora_domain::evidence::Platform as Kind;
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;
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
#[derive(Debug, Clone)]
pub struct JamfConfig {
    pub timeout: Duration,
    /// Concurrent requests allowed to one Jamf Pro server across every container.
    pub fleet_limit: usize,
    /// How many containers may call the server at once (at least 1).
    pub containers: usize,
    /// How long a status query may go on starting policy-log reads.
    pub status_budget: Duration,
    /// At most this many policy-log reads per status query.
    pub status_history_reads: usize,
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
    kind: Kinds,
}

const REFRESH_BUFFER: Duration = Duration::from_secs(300);

/// A request body.
pub(crate) enum Payload {
    None,
    Json(Value),
    Xml(String),
    File { name: String, bytes: Vec<u8> },
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
        let endpoint = reqwest::Url::parse(url)
            .map(|u| u.path().to_owned())
            .unwrap_or_default();
        let _permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| CallError::no_answer(op, "client closed"))?;
        let mut req = self
            .http
            .request(method.clone(), url)
            .header("X-Correlation-ID", cx.correlation_id.as_str());
        req = match auth {
            Auth::Bearer(t) => req.bearer_auth(t),
            Auth::Basic(u, p) => req.basic_auth(u, Some(p)),
            Auth::Form(fields) => req.form(&fields),
        };
        req = match payload {
            Payload::None => req,
            Payload::Json(v) => req.json(&v),
            Payload::Xml(x) => req
                .header("Content-Type", "application/xml")
                .header("Accept", "application/xml")
                .body(x),
            Payload::File { name, bytes } => {
                let part = reqwest::multipart::Part::bytes(bytes).file_name(name);
                req.multipart(reqwest::multipart::Form::new().part("file", part))
            }
        };
        let started = Instant::now();
        let response = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                Self::record(
                    cx,
                    op,
                    &method,
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
                    &method,
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
                &method,
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
            &method,
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
            if t.expires_at > Instant::now() + REFRESH_BUFFER {
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
                    let expires_at = fresh.expires_at(a.server_date);
                    *cached = Some(CachedToken {
                        value: fresh.token,
                        expires_at,
                        kind: Kinds::Basic,
                    });
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
                        return Ok(CachedToken {
                            value: t.access_token,
                            expires_at: Instant::now() + Duration::from_secs(t.expires_in),
                            kind: Kinds::OAuth,
                        });
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
        Ok(CachedToken {
            value: t.token.clone(),
            expires_at: t.expires_at(a.server_date),
            kind: Kinds::Basic,
        })
    }

    /// One authenticated request to `path` on the server; on 401 the token and secret are
    /// refreshed once and the request is sent again.
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
                other => return other,
            }
        }
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
    /// When the token expires, on this container's monotonic clock. `expires` is the server's
    /// wall-clock time, so its lifetime is measured against the server's own clock (the answer's
    /// `Date`), not ours: a Jamf server whose clock runs ahead of or behind Lambda's still gets
    /// its tokens reused for their real lifetime. Without a `Date`, our clock; without a readable
    /// `expires`, a minute.
    fn expires_at(&self, server_date: Option<std::time::SystemTime>) -> Instant {
        let server_now = server_date.map_or_else(
            eucora_connector::platform::call_time,
            eucora_domain::Timestamp::from_system_time,
        );
        let left = eucora_domain::Timestamp::parse(&self.expires)
            .map(|t| t.since(server_now))
            .ok()
            .and_then(|d| Duration::try_from(d).ok())
            .unwrap_or(Duration::from_secs(60));
        Instant::now() + left
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
    use std::time::{Duration, Instant, SystemTime};

    use super::{JAMF_CONNECTION_LIMIT, JamfConfig, UserToken};

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
            let left = token(&expires).expires_at(Some(date)) - Instant::now();
            assert!(
                left > Duration::from_secs(29 * 60) && left <= Duration::from_secs(30 * 60),
                "{server_now}: {left:?}"
            );
        }
        // No Date and an unreadable expiry: a minute.
        let left = token("soon").expires_at(None) - Instant::now();
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
