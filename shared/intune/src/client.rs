//! The Graph client: token cache, one place that sends a request, classifies the answer, refreshes
//! on 401 and records the call.

use std::time::{Duration, Instant};

use eucora_connector::artifact::ArtifactSource;
use eucora_connector::credentials::Credentials;
use eucora_connector::platform::{CallContext, CallRecord, Job, Platform};
use eucora_connector::{CallError, ErrorClass};
use eucora_domain::evidence::Platform as Kind;
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::model::{GraphErrorBody, TokenAnswer, TokenError};

/// Where Graph and the identity platform are, and how patient to be.
#[derive(Debug, Clone)]
pub struct IntuneConfig {
    /// `https://login.microsoftonline.com` (or the simulator).
    pub login_base: String,
    /// `https://graph.microsoft.com` (or the simulator).
    pub graph_base: String,
    pub timeout: Duration,
    /// Polls of Graph's asynchronous steps (storage URI, its renewal, commit, publishing) within
    /// one invocation; when they run out the command resumes later (`resume_after`), waiting on
    /// the same content version and file, rather than sleeping on in Lambda.
    pub poll_interval: Duration,
    pub poll_attempts: u32,
    /// How long a slow background step is left before the next invocation looks again.
    pub resume_after: Duration,
    /// Block size for the storage upload (Graph's samples use 6 MiB), and the size of the
    /// package's range reads.
    pub chunk_size: usize,
    /// Blocks uploaded at once (each holds one block in memory).
    pub upload_concurrency: usize,
    /// Retries of one storage request on a transient failure (500, 503, a dropped connection),
    /// after `block_retry_backoff`, doubled each time.
    pub block_retries: u32,
    pub block_retry_backoff: Duration,
    /// A storage URI is renewed (`renewUpload`) once it has been used this long (Microsoft's
    /// samples renew at 7.5 minutes; Intune's URIs are seen to expire 7 to 15 minutes in).
    pub sas_renew_after: Duration,
    /// The largest package accepted (Intune's Win32 app limit, 30 GB).
    pub max_package_bytes: u64,
}

impl Default for IntuneConfig {
    fn default() -> Self {
        IntuneConfig {
            login_base: "https://login.microsoftonline.com".into(),
            graph_base: "https://graph.microsoft.com".into(),
            timeout: Duration::from_secs(20),
            poll_interval: Duration::from_millis(500),
            poll_attempts: 20,
            resume_after: Duration::from_secs(30),
            chunk_size: 6 * 1024 * 1024,
            upload_concurrency: 3,
            block_retries: 3,
            block_retry_backoff: Duration::from_millis(500),
            sas_renew_after: Duration::from_secs(7 * 60),
            max_package_bytes: crate::intunewin::intune_max_bytes(),
        }
    }
}

/// The secret's JSON document in Secrets Manager.
#[derive(Deserialize)]
struct IntuneSecret {
    tenant_id: String,
    client_id: String,
    client_secret: String,
}

struct CachedToken {
    value: String,
    expires_at: Instant,
}

/// Tokens are renewed this long before they expire.
const REFRESH_BUFFER: Duration = Duration::from_secs(300);

/// An answer with a success status.
pub(crate) struct Answer {
    pub body: String,
}

impl Answer {
    pub fn json<T: serde::de::DeserializeOwned>(&self, operation: &str) -> Result<T, CallError> {
        serde_json::from_str(&self.body)
            .map_err(|e| CallError::no_answer(operation, format!("unreadable answer: {e}")))
    }
}

/// The Intune platform over Microsoft Graph.
pub struct IntuneClient<C, A> {
    pub(crate) http: reqwest::Client,
    pub(crate) cfg: IntuneConfig,
    creds: C,
    pub(crate) artifacts: A,
    token: Mutex<Option<CachedToken>>,
}

impl<C, A> std::fmt::Debug for IntuneClient<C, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntuneClient")
            .field("graph", &self.cfg.graph_base)
            .finish_non_exhaustive()
    }
}

/// The `client-request-id` for a correlation id: itself when it is a GUID, else a name-based
/// GUID derived from it (stable, so one id is seen on every call of one deployment).
pub fn client_request_id(correlation_id: &str) -> String {
    match uuid::Uuid::parse_str(correlation_id) {
        Ok(u) => u.to_string(),
        Err(_) => uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_URL,
            format!("eucora:{correlation_id}").as_bytes(),
        )
        .to_string(),
    }
}

fn millis(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl<C: Credentials, A: ArtifactSource> IntuneClient<C, A> {
    pub fn new(cfg: IntuneConfig, creds: C, artifacts: A) -> Result<IntuneClient<C, A>, CallError> {
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| CallError::no_answer("client", e.to_string()))?;
        Ok(IntuneClient {
            http,
            cfg,
            creds,
            artifacts,
            token: Mutex::new(None),
        })
    }

    #[allow(clippy::too_many_arguments)] // one audit record's fields
    pub(crate) fn record(
        cx: &mut CallContext,
        operation: &str,
        method: &Method,
        endpoint: &str,
        status: Option<u16>,
        class: Option<ErrorClass>,
        started: Instant,
        ids: Value,
    ) {
        let at = cx.now();
        cx.record(CallRecord {
            operation: operation.to_owned(),
            method: method.to_string(),
            endpoint: endpoint.split('?').next().unwrap_or_default().to_owned(),
            status,
            error_class: class,
            platform_ids: ids,
            duration_ms: millis(started),
            at,
        });
    }

    /// A token, from the cache unless `force` (after a 401, with the secret read again).
    async fn token(&self, cx: &mut CallContext, force: bool) -> Result<String, CallError> {
        let mut cached = self.token.lock().await;
        if !force
            && let Some(t) = cached.as_ref()
            && t.expires_at > Instant::now() + REFRESH_BUFFER
        {
            return Ok(t.value.clone());
        }
        let secret = if force {
            self.creds.refresh().await?
        } else {
            self.creds.current().await?
        };
        let answer = match self
            .request_token(cx, &secret.parse::<IntuneSecret>("Intune")?)
            .await
        {
            // The cached secret may have been rotated: read it again once.
            Err(e) if !force && e.status.is_some_and(|s| s == 400 || s == 401) => {
                cx.auth_refreshed = true;
                let fresh = self.creds.refresh().await?;
                self.request_token(cx, &fresh.parse::<IntuneSecret>("Intune")?)
                    .await?
            }
            other => other?,
        };
        *cached = Some(CachedToken {
            value: answer.access_token.clone(),
            expires_at: Instant::now() + Duration::from_secs(answer.expires_in),
        });
        Ok(answer.access_token)
    }

    async fn request_token(
        &self,
        cx: &mut CallContext,
        s: &IntuneSecret,
    ) -> Result<TokenAnswer, CallError> {
        const OP: &str = "token";
        let endpoint = format!("/{}/oauth2/v2.0/token", s.tenant_id);
        let started = Instant::now();
        let sent = self
            .http
            .post(format!("{}{endpoint}", self.cfg.login_base))
            .header(
                "client-request-id",
                client_request_id(cx.correlation_id.as_str()),
            )
            .header("X-Correlation-ID", cx.correlation_id.as_str())
            .form(&[
                ("client_id", s.client_id.as_str()),
                ("scope", "https://graph.microsoft.com/.default"),
                ("client_secret", s.client_secret.as_str()),
                ("grant_type", "client_credentials"),
            ])
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                Self::record(
                    cx,
                    OP,
                    &Method::POST,
                    &endpoint,
                    None,
                    Some(ErrorClass::Transient),
                    started,
                    Value::Null,
                );
                return Err(CallError::no_answer(OP, e.without_url().to_string()));
            }
        };
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        if (200..300).contains(&status) {
            Self::record(
                cx,
                OP,
                &Method::POST,
                &endpoint,
                Some(status),
                None,
                started,
                Value::Null,
            );
            return serde_json::from_str(&body)
                .map_err(|e| CallError::no_answer(OP, format!("unreadable token answer: {e}")));
        }
        // invalid_client and friends: the credentials are wrong; the operator must fix the secret.
        let code = serde_json::from_str::<TokenError>(&body).map_or_else(
            |_| "token_error".into(),
            |t| {
                format!(
                    "{} (AADSTS{})",
                    t.error,
                    t.error_codes.first().copied().unwrap_or(0)
                )
            },
        );
        let mut err = CallError::http(
            OP,
            status,
            code,
            "the identity platform refused the client credentials",
            None,
        );
        if matches!(status, 400 | 401) {
            err.class = ErrorClass::Permanent;
        }
        Self::record(
            cx,
            OP,
            &Method::POST,
            &endpoint,
            Some(status),
            Some(err.class),
            started,
            Value::Null,
        );
        Err(err)
    }

    /// One Graph request (`path` under the Graph base, or an absolute URL such as a nextLink),
    /// refreshed and retried once on 401.
    pub(crate) async fn graph(
        &self,
        cx: &mut CallContext,
        op: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        ids: Value,
    ) -> Result<Answer, CallError> {
        let mut refreshed = false;
        loop {
            let token = self.token(cx, refreshed).await?;
            match self
                .send(cx, op, method.clone(), path, body, &token, ids.clone())
                .await
            {
                Err(e) if e.class == ErrorClass::Unauthorized && !refreshed => {
                    tracing::info!(
                        operation = op,
                        "401 from Graph: refreshing the token and the secret once"
                    );
                    cx.auth_refreshed = true;
                    refreshed = true;
                }
                other => return other,
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        cx: &mut CallContext,
        op: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        token: &str,
        ids: Value,
    ) -> Result<Answer, CallError> {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.cfg.graph_base)
        };
        let endpoint = url
            .strip_prefix(&self.cfg.graph_base)
            .unwrap_or(&url)
            .to_owned();
        let mut req = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(token)
            .header(
                "client-request-id",
                client_request_id(cx.correlation_id.as_str()),
            )
            .header("X-Correlation-ID", cx.correlation_id.as_str());
        if let Some(b) = body {
            req = req.json(b);
        }
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
                    ids,
                );
                return Err(CallError::no_answer(op, e.without_url().to_string()));
            }
        };
        let status = response.status();
        let retry_after = CallError::parse_retry_after(
            response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
        );
        let text = match response.text().await {
            Ok(t) => t,
            Err(e) => {
                Self::record(
                    cx,
                    op,
                    &method,
                    &endpoint,
                    Some(status.as_u16()),
                    Some(ErrorClass::Transient),
                    started,
                    ids,
                );
                return Err(CallError::no_answer(op, e.without_url().to_string()));
            }
        };
        if status.is_success() {
            Self::record(
                cx,
                op,
                &method,
                &endpoint,
                Some(status.as_u16()),
                None,
                started,
                ids,
            );
            return Ok(Answer { body: text });
        }
        let (code, message) = serde_json::from_str::<GraphErrorBody>(&text).map_or_else(
            |_| {
                (
                    status.canonical_reason().unwrap_or("Error").to_owned(),
                    String::new(),
                )
            },
            |b| (b.error.code, b.error.message),
        );
        let err = CallError::http(op, status.as_u16(), code, message, retry_after);
        Self::record(
            cx,
            op,
            &method,
            &endpoint,
            Some(status.as_u16()),
            Some(err.class),
            started,
            ids,
        );
        Err(err)
    }
}

impl<C: Credentials, A: ArtifactSource> Platform for IntuneClient<C, A> {
    fn kind(&self) -> Kind {
        Kind::Windows
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
