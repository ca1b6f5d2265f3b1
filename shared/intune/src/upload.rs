//! The content upload: the package's encrypted file streamed from the artifact store into the
//! Azure Storage blob behind the content file's SAS URI, in blocks, in bounded memory, resumable.
//!
//! - The whole package is read once per invocation through [`ArtifactStream`] (every byte
//!   hashed); the encrypted file's bytes (inflated on the way when the zip deflated them) are cut
//!   into `chunk_size` blocks with deterministic ids of one length (the package's SHA-256 prefix
//!   and the block's index).
//! - Before anything is sent, Azure's block list (`comp=blocklist&blocklisttype=all`) says which
//!   blocks a previous invocation already left there: those with the right size are read (for
//!   the hash) but not sent again.
//! - At most `upload_concurrency` blocks are in flight; each is retried on transient storage
//!   errors. A 403 `AuthenticationFailed` for the SAS's expiry is not a policy violation: the
//!   upload is renewed (`renewUpload`, then `azureStorageUriRenewalSuccess`) and the block sent
//!   again; the URI is also renewed before it gets old (`sas_renew_after`).
//! - When the invocation's budget is spent, what is in flight finishes and the command resumes
//!   later from Azure's block list.
//! - The block list is committed only once every byte has been read and its SHA-256 matches the
//!   evidence pack: other bytes are never committed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use eucora_connector::artifact::{ArtifactSource, ArtifactStream};
use eucora_connector::credentials::Credentials;
use eucora_connector::platform::{CallContext, Job, percent_encode};
use eucora_connector::{CallError, ErrorClass};
use eucora_domain::Timestamp;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::client::IntuneClient;
use crate::intunewin::{ContentEntry, Package};
use crate::model::ContentFile;

/// A storage URI closer than this to its expiry is renewed before it is used.
const SAS_SAFETY: Duration = Duration::from_secs(60);
/// Renewals in a row without a block accepted in between before the upload gives up for now.
const MAX_RENEWALS_IN_A_ROW: u32 = 3;
/// How soon the next invocation resumes an upload this one's budget ended.
const BUDGET_RESUME_AFTER: Duration = Duration::from_secs(1);

// ---- the content file on Graph -------------------------------------------------------------------

/// The content file being uploaded, and the storage URI in use.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The file's Graph path (`.../contentVersions/{cv}/files/{id}`).
    pub path: String,
    pub ids: Value,
    pub uri: String,
    /// When the URI is to be renewed before it is used again.
    pub renew_at: Instant,
}

/// Whether an upload state is a background step still running.
pub(crate) fn is_pending(state: &str) -> bool {
    state.ends_with("Pending") || state == "transientError" || state == "unknown"
}

pub(crate) async fn get_file<C: Credentials, A: ArtifactSource>(
    c: &IntuneClient<C, A>,
    cx: &mut CallContext,
    op: &str,
    path: &str,
    ids: &Value,
) -> Result<ContentFile, CallError> {
    c.graph(cx, op, Method::GET, path, None, ids.clone())
        .await?
        .json(op)
}

/// Reads the file until it leaves its pending state, `poll_attempts` times at most; still
/// pending, the command resumes later (the next invocation waits on the same file).
pub(crate) async fn settle<C: Credentials, A: ArtifactSource>(
    c: &IntuneClient<C, A>,
    cx: &mut CallContext,
    op: &str,
    path: &str,
    ids: &Value,
) -> Result<ContentFile, CallError> {
    let attempts = c.cfg.poll_attempts.max(1);
    let mut state = String::new();
    for attempt in 0..attempts {
        let f = get_file(c, cx, op, path, ids).await?;
        if !is_pending(&f.upload_state) {
            return Ok(f);
        }
        state = f.upload_state;
        if attempt + 1 < attempts {
            tokio::time::sleep(c.cfg.poll_interval).await;
        }
    }
    Err(CallError::resume_later(
        op,
        format!("the content file is still {state}"),
        c.cfg.resume_after,
    ))
}

/// When a URI that expires at `expiry` (Graph's `azureStorageUriExpirationDateTime`) is to be
/// renewed: `sas_renew_after` from now at the latest, earlier when it expires before that, now
/// when it is (nearly) expired. Without an expiry, a URI just issued gets `sas_renew_after` and
/// one from an earlier invocation (of unknown age) is renewed now.
pub(crate) fn renew_deadline(
    cfg: &crate::IntuneConfig,
    cx: &CallContext,
    expiry: Option<&str>,
    just_issued: bool,
) -> Instant {
    let now = Instant::now();
    let latest = now + cfg.sas_renew_after;
    match expiry.and_then(|e| Timestamp::parse(e).ok()) {
        Some(expiry) => {
            let left = std::time::Duration::try_from(expiry.since(cx.now())).unwrap_or_default();
            if left <= SAS_SAFETY {
                now
            } else {
                latest.min(now + left.saturating_sub(SAS_SAFETY))
            }
        }
        None if just_issued => latest,
        None => now,
    }
}

/// `renewUpload`, then waits for `azureStorageUriRenewalSuccess` and takes the URI it shows.
pub(crate) async fn renew<C: Credentials, A: ArtifactSource>(
    c: &IntuneClient<C, A>,
    cx: &mut CallContext,
    target: &mut Target,
) -> Result<(), CallError> {
    tracing::info!(file = %target.path, "renewing the storage URI");
    c.graph(
        cx,
        "renew_upload",
        Method::POST,
        &format!("{}/renewUpload", target.path),
        Some(&json!({})),
        target.ids.clone(),
    )
    .await?;
    let f = settle(c, cx, "await_renewal", &target.path, &target.ids).await?;
    match f.upload_state.as_str() {
        "azureStorageUriRenewalSuccess" => {
            if let Some(uri) = f.azure_storage_uri {
                target.uri = uri;
            }
            target.renew_at = renew_deadline(
                &c.cfg,
                cx,
                f.azure_storage_uri_expiration_date_time.as_deref(),
                true,
            );
            Ok(())
        }
        other => Err(CallError {
            class: ErrorClass::Transient,
            operation: "await_renewal".into(),
            status: None,
            code: other.to_owned(),
            message: format!("Intune did not renew the storage URI: {other}"),
            retry_after: Some(c.cfg.resume_after),
        }),
    }
}

// ---- Azure Storage requests ---------------------------------------------------------------------

/// A storage call made in a block task, recorded on the command once the task is done.
struct StorageCall {
    op: &'static str,
    method: Method,
    endpoint: String,
    status: Option<u16>,
    class: Option<ErrorClass>,
    millis: u64,
}

/// Why a storage request failed.
enum StorageFailure {
    /// 403 `AuthenticationFailed` for the SAS's expiry: renew the upload and send again.
    Expired(CallError),
    Failed(CallError),
}

/// Azure Storage's error body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AzureError {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    authentication_error_detail: Option<String>,
}

/// Whether Azure refused a SAS for its expiry ("Signed expiry time [...] must be after signed
/// start time [...]", or "Signature not valid in the specified time frame" when it has a start).
fn is_expiry(e: &AzureError) -> bool {
    let says = |t: &Option<String>| {
        t.as_deref().is_some_and(|t| {
            t.contains("Signed expiry time")
                || t.contains("Signature not valid in the specified time frame")
        })
    };
    says(&e.authentication_error_detail) || says(&e.message)
}

#[derive(Debug, Clone, Copy)]
struct Retry {
    times: u32,
    backoff: Duration,
}

/// What every storage request of a command shares (cheap to clone into a block's task).
#[derive(Debug, Clone)]
struct Storage {
    http: reqwest::Client,
    correlation: String,
    retry: Retry,
}

impl Storage {
    fn of<C: Credentials, A: ArtifactSource>(c: &IntuneClient<C, A>, cx: &CallContext) -> Self {
        Storage {
            http: c.http.clone(),
            correlation: cx.correlation_id.as_str().to_owned(),
            retry: Retry {
                times: c.cfg.block_retries,
                backoff: c.cfg.block_retry_backoff,
            },
        }
    }
}

/// The path of a storage URL, for the audit trail (the query holds the signature).
fn endpoint_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .map(|u| u.path().to_owned())
        .unwrap_or_default()
}

/// One storage request (retried on transient failures); answers the body.
async fn storage(
    to: &Storage,
    op: &'static str,
    method: Method,
    url: &str,
    body: Option<Bytes>,
    calls: &mut Vec<StorageCall>,
) -> Result<String, StorageFailure> {
    let (http, correlation, retry) = (&to.http, to.correlation.as_str(), to.retry);
    let endpoint = endpoint_of(url);
    let mut attempt = 0;
    loop {
        let mut req = http
            .request(method.clone(), url)
            .header("X-Correlation-ID", correlation)
            .header("x-ms-client-request-id", correlation);
        if let Some(b) = &body {
            req = req
                .header("x-ms-blob-type", "BlockBlob")
                .body(reqwest::Body::from(b.clone()));
        }
        let started = Instant::now();
        let answer = match req.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let code = r
                    .headers()
                    .get("x-ms-error-code")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let retry_after = CallError::parse_retry_after(
                    r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
                );
                match r.text().await {
                    Ok(text) => Ok((status, code, retry_after, text)),
                    Err(e) => Err(CallError::no_answer(op, e.without_url().to_string())),
                }
            }
            Err(e) => Err(CallError::no_answer(op, e.without_url().to_string())),
        };
        let millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut call = StorageCall {
            op,
            method: method.clone(),
            endpoint: endpoint.clone(),
            status: None,
            class: None,
            millis,
        };
        let failure = match answer {
            Ok((status, _, _, text)) if (200..300).contains(&status) => {
                call.status = Some(status);
                calls.push(call);
                return Ok(text);
            }
            Ok((status, header_code, retry_after, text)) => {
                let e: AzureError = quick_xml::de::from_str(text.trim_start_matches('\u{feff}'))
                    .unwrap_or_default();
                let code = header_code
                    .or_else(|| e.code.clone())
                    .unwrap_or_else(|| format!("HTTP{status}"));
                let first_line = |t: &Option<String>| {
                    t.as_deref()
                        .and_then(|m| m.lines().next())
                        .unwrap_or_default()
                        .to_owned()
                };
                let mut message = first_line(&e.message);
                if let Some(detail) = &e.authentication_error_detail {
                    message = format!("{message} {detail}");
                }
                let mut err = CallError::http(op, status, code.clone(), message, retry_after);
                call.status = Some(status);
                if status == 403 && code == "AuthenticationFailed" && is_expiry(&e) {
                    err.class = ErrorClass::Transient;
                    call.class = Some(err.class);
                    calls.push(call);
                    return Err(StorageFailure::Expired(err));
                }
                if err.class == ErrorClass::PolicyViolation {
                    // A storage 403 is not Graph's: no scope or approval can fix it.
                    err.class = ErrorClass::Permanent;
                }
                err
            }
            Err(err) => err,
        };
        call.class = Some(failure.class);
        calls.push(call);
        if failure.class != ErrorClass::Transient || attempt >= retry.times {
            return Err(StorageFailure::Failed(failure));
        }
        let wait = failure
            .retry_after
            .unwrap_or(retry.backoff * 2_u32.saturating_pow(attempt))
            .min(Duration::from_secs(30));
        tracing::info!(operation = op, attempt, code = %failure.code, "storage request failed, retrying");
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

fn record_calls<C: Credentials, A: ArtifactSource>(
    cx: &mut CallContext,
    ids: &Value,
    calls: Vec<StorageCall>,
) {
    for call in calls {
        let started = Instant::now()
            .checked_sub(Duration::from_millis(call.millis))
            .unwrap_or_else(Instant::now);
        IntuneClient::<C, A>::record(
            cx,
            call.op,
            &call.method,
            &call.endpoint,
            call.status,
            call.class,
            started,
            ids.clone(),
        );
    }
}

/// Runs one storage request for the command (recorded), renewing the URI once on expiry.
async fn storage_for<C: Credentials, A: ArtifactSource>(
    c: &IntuneClient<C, A>,
    cx: &mut CallContext,
    target: &mut Target,
    op: &'static str,
    method: Method,
    query: &str,
    body: Option<Bytes>,
) -> Result<String, CallError> {
    let to = Storage::of(c, cx);
    let mut renewed = false;
    loop {
        let mut calls = Vec::new();
        let url = format!("{}&{query}", target.uri);
        let result = storage(&to, op, method.clone(), &url, body.clone(), &mut calls).await;
        record_calls::<C, A>(cx, &target.ids, calls);
        match result {
            Ok(text) => return Ok(text),
            Err(StorageFailure::Expired(_)) if !renewed => {
                renew(c, cx, target).await?;
                renewed = true;
            }
            Err(StorageFailure::Expired(e) | StorageFailure::Failed(e)) => return Err(e),
        }
    }
}

/// Azure's Get Block List answer.
#[derive(Debug, Default, Deserialize)]
struct BlockListAnswer {
    #[serde(rename = "CommittedBlocks", default)]
    committed: Option<Blocks>,
    #[serde(rename = "UncommittedBlocks", default)]
    uncommitted: Option<Blocks>,
}

#[derive(Debug, Default, Deserialize)]
struct Blocks {
    #[serde(rename = "Block", default)]
    blocks: Vec<BlockEntry>,
}

#[derive(Debug, Deserialize)]
struct BlockEntry {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Size")]
    size: u64,
}

/// The blocks Azure already holds for the blob (uncommitted, and committed by a block list an
/// earlier invocation put before its Graph commit was lost): id → size.
async fn blocks_held<C: Credentials, A: ArtifactSource>(
    c: &IntuneClient<C, A>,
    cx: &mut CallContext,
    target: &mut Target,
) -> Result<HashMap<String, u64>, CallError> {
    let text = match storage_for(
        c,
        cx,
        target,
        "get_block_list",
        Method::GET,
        "comp=blocklist&blocklisttype=all",
        None,
    )
    .await
    {
        Ok(text) => text,
        // No block yet: Azure has no blob to list.
        Err(e) if e.status == Some(404) => return Ok(HashMap::new()),
        Err(e) if e.status == Some(403) => {
            tracing::warn!(code = %e.code, "the storage URI may not list blocks: uploading every block");
            return Ok(HashMap::new());
        }
        Err(e) => return Err(e),
    };
    let list: BlockListAnswer = quick_xml::de::from_str(text.trim_start_matches('\u{feff}'))
        .map_err(|e| {
            CallError::no_answer("get_block_list", format!("unreadable block list: {e}"))
        })?;
    Ok(list
        .committed
        .into_iter()
        .chain(list.uncommitted)
        .flat_map(|b| b.blocks)
        .map(|b| (b.name, b.size))
        .collect())
}

// ---- the block stream ---------------------------------------------------------------------------

/// The id of block `index`: equal length for every block of a blob, as Azure requires, and
/// naming the package (its SHA-256's prefix), so blocks of other bytes are never taken for it.
pub(crate) fn block_id(sha256: &str, index: u64) -> String {
    let prefix: String = sha256.chars().take(16).collect();
    base64::engine::general_purpose::STANDARD.encode(format!("eucora-{prefix:0>16}-{index:08}"))
}

/// Cuts the encrypted file's bytes, as the package's chunks pass, into blocks.
struct BlockCutter {
    entry: ContentEntry,
    block: usize,
    current: Vec<u8>,
    index: u64,
    produced: u64,
    inflate: Option<flate2::Decompress>,
    ended: bool,
}

impl BlockCutter {
    fn new(entry: ContentEntry, block: usize) -> Self {
        Self {
            entry,
            block,
            current: Vec::with_capacity(block),
            index: 0,
            produced: 0,
            inflate: entry.deflated.then(|| flate2::Decompress::new(false)),
            ended: !entry.deflated,
        }
    }

    fn invalid(why: impl Into<String>) -> CallError {
        CallError::invalid_payload("read_intunewin", "INTUNEWIN_INVALID", why)
    }

    fn emit(&mut self, out: &mut Vec<(u64, Bytes)>) {
        let full = std::mem::replace(&mut self.current, Vec::with_capacity(self.block));
        self.produced += full.len() as u64;
        out.push((self.index, Bytes::from(full)));
        self.index += 1;
    }

    /// Takes the package's chunk starting at `at`; answers the blocks it completes.
    fn feed(&mut self, at: u64, chunk: &[u8]) -> Result<Vec<(u64, Bytes)>, CallError> {
        let mut out = Vec::new();
        let end = at + chunk.len() as u64;
        let (from, to) = (
            self.entry.data_start.max(at),
            self.entry.data_end().min(end),
        );
        if from >= to {
            return Ok(out);
        }
        #[allow(clippy::cast_possible_truncation)] // offsets within one chunk
        let mut input = &chunk[(from - at) as usize..(to - at) as usize];
        match self.inflate.take() {
            None => {
                while !input.is_empty() {
                    let n = input.len().min(self.block - self.current.len());
                    self.current.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    if self.current.len() == self.block {
                        self.emit(&mut out);
                    }
                }
            }
            Some(mut d) => {
                loop {
                    if self.current.len() == self.block {
                        self.emit(&mut out);
                    }
                    if self.ended {
                        break;
                    }
                    let (in0, out0) = (d.total_in(), d.total_out());
                    let status = d
                        .decompress_vec(input, &mut self.current, flate2::FlushDecompress::None)
                        .map_err(|e| {
                            Self::invalid(format!("the encrypted file does not inflate: {e}"))
                        })?;
                    #[allow(clippy::cast_possible_truncation)] // at most the input's length
                    let used = (d.total_in() - in0) as usize;
                    input = &input[used..];
                    if status == flate2::Status::StreamEnd {
                        self.ended = true;
                    } else if used == 0 && d.total_out() == out0 {
                        break;
                    }
                }
                self.inflate = Some(d);
            }
        }
        Ok(out)
    }

    /// The last (short) block, once the package has been read.
    fn finish(&mut self) -> Result<Option<(u64, Bytes)>, CallError> {
        if !self.ended {
            return Err(Self::invalid("the deflated encrypted file ends early"));
        }
        let mut out = Vec::new();
        if !self.current.is_empty() {
            self.emit(&mut out);
        }
        if self.produced != self.entry.size {
            return Err(Self::invalid(format!(
                "the encrypted file has {} bytes, the zip says {}",
                self.produced, self.entry.size
            )));
        }
        Ok(out.pop())
    }
}

// ---- blocks in flight ---------------------------------------------------------------------------

/// What became of one block sent.
enum Sent {
    Accepted { bytes: u64 },
    Expired { index: u64, data: Bytes },
    Failed(CallError),
}

/// Blocks in flight, each its own task (memory: one block each), and blocks to send again once
/// the URI is renewed.
struct Sender {
    set: JoinSet<(Vec<StorageCall>, Sent)>,
    resend: Vec<(u64, Bytes)>,
    concurrency: usize,
    renewals_in_a_row: u32,
    sha256: String,
    /// Blocks and bytes accepted in this invocation.
    blocks_sent: u64,
    bytes_sent: u64,
}

impl Sender {
    fn spawn(&mut self, to: &Storage, uri: &str, index: u64, data: Bytes) {
        let url = format!(
            "{uri}&comp=block&blockid={}",
            percent_encode(&block_id(&self.sha256, index))
        );
        let to = to.clone();
        self.set.spawn(async move {
            let mut calls = Vec::new();
            let len = data.len() as u64;
            let body = Some(data.clone());
            let sent = match storage(&to, "upload_block", Method::PUT, &url, body, &mut calls).await
            {
                Ok(_) => Sent::Accepted { bytes: len },
                Err(StorageFailure::Expired(_)) => Sent::Expired { index, data },
                Err(StorageFailure::Failed(e)) => Sent::Failed(e),
            };
            (calls, sent)
        });
    }

    /// Waits for blocks in flight until one more may be sent (`room` 1), or until none is in
    /// flight (`room` 0), renewing the URI and sending expired blocks again on the way.
    async fn wait<C: Credentials, A: ArtifactSource>(
        &mut self,
        c: &IntuneClient<C, A>,
        cx: &mut CallContext,
        target: &mut Target,
        room: usize,
    ) -> Result<(), CallError> {
        loop {
            if !self.resend.is_empty() && self.set.is_empty() {
                self.renewals_in_a_row += 1;
                if self.renewals_in_a_row > MAX_RENEWALS_IN_A_ROW {
                    return Err(CallError::no_answer(
                        "upload_block",
                        "the storage URI keeps expiring although renewed",
                    ));
                }
                renew(c, cx, target).await?;
                let to = Storage::of(c, cx);
                for (index, data) in std::mem::take(&mut self.resend) {
                    self.spawn(&to, &target.uri, index, data);
                }
                continue;
            }
            let settled = if room == 0 {
                self.set.is_empty()
            } else {
                self.set.len() < self.concurrency
            };
            if self.resend.is_empty() && settled {
                return Ok(());
            }
            let Some(joined) = self.set.join_next().await else {
                continue;
            };
            let (calls, sent) =
                joined.map_err(|e| CallError::no_answer("upload_block", e.to_string()))?;
            record_calls::<C, A>(cx, &target.ids, calls);
            match sent {
                Sent::Accepted { bytes } => {
                    self.renewals_in_a_row = 0;
                    self.blocks_sent += 1;
                    self.bytes_sent += bytes;
                }
                Sent::Expired { index, data } => self.resend.push((index, data)),
                Sent::Failed(e) => {
                    self.set.abort_all();
                    return Err(e);
                }
            }
        }
    }
}

/// What one invocation's upload did.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Uploaded {
    pub blocks: u64,
    pub blocks_sent: u64,
    pub bytes_sent: u64,
    pub blocks_already_held: u64,
}

/// Puts the block list: the blob is the blocks, in order.
async fn commit_block_list<C: Credentials, A: ArtifactSource>(
    c: &IntuneClient<C, A>,
    cx: &mut CallContext,
    target: &mut Target,
    ids: &[String],
) -> Result<(), CallError> {
    let list = ids.iter().fold(
        String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>"),
        |mut acc, id| {
            acc.push_str("<Latest>");
            acc.push_str(id);
            acc.push_str("</Latest>");
            acc
        },
    ) + "</BlockList>";
    storage_for(
        c,
        cx,
        target,
        "commit_blocks",
        Method::PUT,
        "comp=blocklist",
        Some(Bytes::from(list)),
    )
    .await?;
    Ok(())
}

/// Streams the package's encrypted file into the blob and commits the block list once the
/// package's SHA-256 is the evidence pack's.
pub(crate) async fn upload<C: Credentials, A: ArtifactSource>(
    c: &IntuneClient<C, A>,
    cx: &mut CallContext,
    job: &Job<'_>,
    package: &Package,
    target: &mut Target,
) -> Result<Uploaded, CallError> {
    let block = c.cfg.chunk_size.max(1);
    let sha256 = job.artifact.sha256.as_str().to_ascii_lowercase();
    if Instant::now() >= target.renew_at {
        renew(c, cx, target).await?;
    }
    let held = blocks_held(c, cx, target).await?;
    let mut stream =
        ArtifactStream::open(&c.artifacts, &job.artifact.location, block as u64, false).await?;
    if stream.size() != package.size {
        return Err(CallError::no_answer(
            "fetch_artifact",
            format!(
                "{} changed while it was published ({} bytes, then {})",
                job.artifact.location,
                package.size,
                stream.size()
            ),
        ));
    }
    let mut cutter = BlockCutter::new(package.content, block);
    let mut sender = Sender {
        set: JoinSet::new(),
        resend: Vec::new(),
        concurrency: c.cfg.upload_concurrency.max(1),
        renewals_in_a_row: 0,
        sha256: sha256.clone(),
        blocks_sent: 0,
        bytes_sent: 0,
    };
    let to = Storage::of(c, cx);
    let mut done = Uploaded::default();
    let mut ids = Vec::new();
    let mut finished = false;
    loop {
        let at = stream.position();
        let ready = match stream.next().await? {
            Some(chunk) => cutter.feed(at, &chunk)?,
            None if !finished => {
                finished = true;
                cutter.finish()?.into_iter().collect()
            }
            None => break,
        };
        for (index, data) in ready {
            let id = block_id(&sha256, index);
            done.blocks += 1;
            let held_size = held.get(&id).copied();
            ids.push(id);
            if held_size == Some(data.len() as u64) {
                done.blocks_already_held += 1;
                continue;
            }
            // A safe point: the budget is checked once this invocation has sent something.
            if cx.out_of_time() && (sender.blocks_sent > 0 || !sender.set.is_empty()) {
                sender.wait(c, cx, target, 0).await?;
                tracing::info!(
                    sent = sender.blocks_sent,
                    at = index,
                    "budget spent: the upload resumes later"
                );
                return Err(CallError::resume_later(
                    "upload_block",
                    format!(
                        "the invocation's budget is spent at block {index} of the upload ({} sent now)",
                        sender.blocks_sent
                    ),
                    BUDGET_RESUME_AFTER,
                ));
            }
            sender.wait(c, cx, target, 1).await?;
            if Instant::now() >= target.renew_at {
                sender.wait(c, cx, target, 0).await?;
                renew(c, cx, target).await?;
            }
            sender.spawn(&to, &target.uri, index, data);
        }
    }
    sender.wait(c, cx, target, 0).await?;
    done.blocks_sent = sender.blocks_sent;
    done.bytes_sent = sender.bytes_sent;
    // Every byte has been read: the block list is committed only if they are the approved ones.
    stream.finish_verified(&sha256)?;
    commit_block_list(c, cx, target, &ids).await?;
    tracing::info!(
        blocks = done.blocks,
        sent = done.blocks_sent,
        bytes_sent = done.bytes_sent,
        already_held = done.blocks_already_held,
        "content uploaded"
    );
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_ids_have_one_length_and_name_the_package() {
        let sha = "ab".repeat(32);
        let a = block_id(&sha, 0);
        let b = block_id(&sha, 12_345);
        assert_eq!(a.len(), b.len());
        assert_ne!(a, b);
        assert_ne!(a, block_id(&"cd".repeat(32), 0));
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&a)
            .unwrap();
        assert!(raw.len() <= 64, "Azure: at most 64 bytes before encoding");
    }

    #[test]
    fn stored_and_deflated_content_cut_into_the_same_blocks() {
        use std::io::Write as _;
        let payload: Vec<u8> = (0..10_000_u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut deflated =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        deflated.write_all(&payload).unwrap();
        let deflated = deflated.finish().unwrap();
        for (bytes, is_deflated) in [(payload.clone(), false), (deflated, true)] {
            let mut package = vec![9_u8; 100];
            package.extend_from_slice(&bytes);
            package.extend_from_slice(&[9_u8; 50]);
            let entry = ContentEntry {
                data_start: 100,
                compressed_size: bytes.len() as u64,
                size: payload.len() as u64,
                deflated: is_deflated,
            };
            let mut cut = BlockCutter::new(entry, 3000);
            let mut got = Vec::new();
            for (i, chunk) in package.chunks(777).enumerate() {
                got.extend(cut.feed(i as u64 * 777, chunk).unwrap());
            }
            got.extend(cut.finish().unwrap());
            let sizes: Vec<usize> = got.iter().map(|(_, b)| b.len()).collect();
            assert_eq!(sizes, [3000, 3000, 3000, 1000], "deflated: {is_deflated}");
            let joined: Vec<u8> = got.iter().flat_map(|(_, b)| b.iter().copied()).collect();
            assert_eq!(joined, payload);
            assert_eq!(
                got.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
                [0, 1, 2, 3]
            );
        }
    }

    #[test]
    fn only_an_expiry_is_taken_for_one() {
        let expired: AzureError = quick_xml::de::from_str(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>AuthenticationFailed</Code><Message>Server failed to authenticate the request.\nRequestId:x\nTime:y</Message><AuthenticationErrorDetail>Signed expiry time [Wed, 01 May 2024 10:00:00 GMT] must be after signed start time [Wed, 01 May 2024 10:15:00 GMT]</AuthenticationErrorDetail></Error>",
        )
        .unwrap();
        assert!(is_expiry(&expired));
        let forged: AzureError = quick_xml::de::from_str(
            "<Error><Code>AuthenticationFailed</Code><Message>m</Message><AuthenticationErrorDetail>Signature did not match.</AuthenticationErrorDetail></Error>",
        )
        .unwrap();
        assert!(!is_expiry(&forged));
    }

    #[test]
    fn block_lists_are_read_with_a_parser() {
        let xml = "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList><CommittedBlocks /><UncommittedBlocks><Block><Name>MQ==</Name><Size>4</Size></Block><Block><Name>Mg==</Name><Size>2</Size></Block></UncommittedBlocks></BlockList>";
        let list: BlockListAnswer = quick_xml::de::from_str(xml).unwrap();
        assert_eq!(list.committed.unwrap().blocks.len(), 0);
        let u = list.uncommitted.unwrap().blocks;
        assert_eq!((u[1].name.as_str(), u[1].size), ("Mg==", 2));
        let only: BlockListAnswer = quick_xml::de::from_str(
            "<BlockList><UncommittedBlocks></UncommittedBlocks></BlockList>",
        )
        .unwrap();
        assert!(only.committed.is_none());
    }
}
