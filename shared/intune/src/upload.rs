//! The content upload: the package's encrypted file streamed from the artifact store into the
//! Azure Storage blob behind the content file's SAS URI, in blocks, in bounded memory, resumable.
//!
//! - The whole package is read once per invocation through [`ArtifactStream`] (every byte
//!   hashed); the encrypted file's bytes (inflated on the way when the zip deflated them, one
//!   block at a time) are cut into blocks of `chunk_size` (larger when Azure's 50,000 blocks would
//!   not do). A block's id is its index and the SHA-256 of its bytes: one length for all.
//! - Before anything is sent, Azure's block list (`comp=blocklist&blocklisttype=all`) says which
//!   blocks a previous invocation already left there: a block whose id (and so whose bytes) and
//!   size are held is read (for the hash) but not sent again.
//! - At most `upload_concurrency` blocks are in flight; each is retried on transient storage
//!   errors. A 403 `AuthenticationFailed` is not a policy violation: the upload is renewed
//!   (`renewUpload`, then `azureStorageUriRenewalSuccess`) and the block sent again, a few times;
//!   a refusal that outlasts the renewals is transient when it is the SAS's expiry, permanent
//!   otherwise. The URI is also renewed before it gets old (`sas_renew_after`).
//! - When the invocation's budget is spent, what is in flight finishes and the command resumes
//!   later from Azure's block list.
//! - The block list is committed only once every byte has been read and its SHA-256 matches the
//!   evidence pack: other bytes are never committed, and a block left by an earlier invocation is
//!   in the list only when this invocation read the same bytes for it.

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
#[derive(Clone)]
pub(crate) struct Target {
    /// The file's Graph path (`.../contentVersions/{cv}/files/{id}`).
    pub path: String,
    pub ids: Value,
    pub uri: String,
    /// When the URI is to be renewed before it is used again.
    pub renew_at: Instant,
}

impl std::fmt::Debug for Target {
    /// Without the URI: its query is the SAS, signature included.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("path", &self.path)
            .field("ids", &self.ids)
            .field("uri", &endpoint_of(&self.uri))
            .finish_non_exhaustive()
    }
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

/// Azure's limits on a block blob (service version `2017-04-17`, the `sv` of Intune's URIs: the
/// version a SAS request runs at): at most 50,000 committed blocks, each at most 100 MiB.
const MAX_BLOCKS: u64 = 50_000;
const MAX_BLOCK_BYTES: u64 = 100 * 1024 * 1024;

/// The block size for `content` bytes: `chunk_size`, larger when the content would take more
/// than Azure's 50,000 blocks, never over Azure's 100 MiB a block. It depends on nothing but the
/// configuration and the content's size, so every invocation cuts the same blocks.
pub(crate) fn block_size(chunk_size: usize, content: u64) -> usize {
    let least = content.div_ceil(MAX_BLOCKS);
    let size = (chunk_size.max(1) as u64).max(least).min(MAX_BLOCK_BYTES);
    usize::try_from(size).unwrap_or(usize::MAX)
}

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
    /// 403 `AuthenticationFailed`: Azure did not take the SAS. For its expiry (the error is
    /// transient), and for any other reason too (permanent once a renewal did not help): Azure
    /// refuses a SAS whose stored access policy was set or changed in the last 30 seconds, and
    /// Intune may give the renewed upload another signature. Renew the upload and send again.
    Refused(CallError),
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

impl Retry {
    /// The wait before attempt `attempt + 1` (doubling, at most 30 s).
    fn wait(self, attempt: u32) -> Duration {
        let cap = Duration::from_secs(30);
        self.backoff
            .checked_mul(2_u32.saturating_pow(attempt.min(16)))
            .map_or(cap, |d| d.min(cap))
    }
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

/// One storage request (retried on transient failures); answers the body. `blob_type` sends
/// `x-ms-blob-type: BlockBlob`, as Microsoft's samples do with each block.
#[allow(clippy::too_many_arguments)] // one request's parts
async fn storage(
    to: &Storage,
    op: &'static str,
    method: Method,
    url: &str,
    body: Option<Bytes>,
    blob_type: bool,
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
        if blob_type {
            req = req.header("x-ms-blob-type", "BlockBlob");
        }
        if let Some(b) = &body {
            req = req.body(reqwest::Body::from(b.clone()));
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
                    // The detail's first line: Azure may go on with the string it signed.
                    message = format!("{message} {}", first_line(&Some(detail.clone())));
                }
                let mut err = CallError::http(op, status, code.clone(), message, retry_after);
                call.status = Some(status);
                if status == 403 && code == "AuthenticationFailed" {
                    err.class = if is_expiry(&e) {
                        ErrorClass::Transient
                    } else {
                        ErrorClass::Permanent
                    };
                    call.class = Some(err.class);
                    calls.push(call);
                    return Err(StorageFailure::Refused(err));
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
            .unwrap_or_else(|| retry.wait(attempt))
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

/// Runs one storage request for the command (recorded), renewing the URI once when Azure
/// refuses the SAS.
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
        let result = storage(
            &to,
            op,
            method.clone(),
            &url,
            body.clone(),
            false,
            &mut calls,
        )
        .await;
        record_calls::<C, A>(cx, &target.ids, calls);
        match result {
            Ok(text) => return Ok(text),
            Err(StorageFailure::Refused(_)) if !renewed => {
                renew(c, cx, target).await?;
                renewed = true;
            }
            Err(StorageFailure::Refused(e) | StorageFailure::Failed(e)) => return Err(e),
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

/// Puts the block list `ids`: the blob is the blocks, in order (none: an empty blob, and every
/// uncommitted block discarded).
async fn put_block_list<C: Credentials, A: ArtifactSource>(
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

/// The blocks Azure already holds for the blob (uncommitted, and committed by a block list an
/// earlier invocation put before its Graph commit was lost): id → size. Blocks whose ids are not
/// of this connector's length (Azure takes no other length next to them) are discarded first.
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
        // No block yet: Azure has no blob to list. Expected: not a failure in the trail.
        Err(e) if e.status == Some(404) => {
            if let Some(call) = cx.calls.last_mut() {
                call.error_class = None;
            }
            return Ok(HashMap::new());
        }
        Err(e) if e.status == Some(403) => {
            if e.code == "AuthorizationPermissionMismatch" {
                // A SAS without the read permission: expected, not a failure in the trail.
                if let Some(call) = cx.calls.last_mut() {
                    call.error_class = None;
                }
            }
            tracing::warn!(code = %e.code, "the storage URI may not list blocks: uploading every block");
            return Ok(HashMap::new());
        }
        Err(e) => return Err(e),
    };
    let list: BlockListAnswer = quick_xml::de::from_str(text.trim_start_matches('\u{feff}'))
        .map_err(|e| {
            CallError::no_answer("get_block_list", format!("unreadable block list: {e}"))
        })?;
    let held: HashMap<String, u64> = list
        .committed
        .into_iter()
        .chain(list.uncommitted)
        .flat_map(|b| b.blocks)
        .map(|b| (b.name, b.size))
        .collect();
    if held.keys().any(|id| id.len() != BLOCK_ID_LEN) {
        tracing::info!("the blob holds blocks of other ids: discarding them");
        put_block_list(c, cx, target, &[]).await?;
        return Ok(HashMap::new());
    }
    Ok(held)
}

// ---- the block stream ---------------------------------------------------------------------------

/// The length of every block id (base64 of [`block_id`]'s 40 bytes).
const BLOCK_ID_LEN: usize = 56;

/// The id of block `index` holding `data`: the index and the SHA-256 of the block's bytes (40
/// bytes, base64: one length for every block, as Azure requires, and within its 64 bytes). A
/// block Azure already holds under this id holds exactly these bytes, so a resumed upload reuses
/// it only when the bytes read now (and checked against the evidence pack) are the same.
pub(crate) fn block_id(index: u64, data: &[u8]) -> String {
    use sha2::Digest as _;
    let mut raw = Vec::with_capacity(40);
    raw.extend_from_slice(&index.to_be_bytes());
    raw.extend_from_slice(&sha2::Sha256::digest(data));
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// Cuts the encrypted file's bytes into blocks as the package's chunks pass, inflating them on
/// the way when the zip deflated them. It holds the chunk being cut and one block: a chunk that
/// inflates to many blocks gives them one at a time ([`BlockCutter::next_block`]).
struct BlockCutter {
    entry: ContentEntry,
    block: usize,
    /// The part of the last chunk fed that is the entry's and not yet cut.
    pending: Bytes,
    /// The block being filled (`filled` bytes of it).
    current: Vec<u8>,
    filled: usize,
    index: u64,
    produced: u64,
    inflate: Option<flate2::Decompress>,
    /// The deflate stream has ended (always, for stored content).
    ended: bool,
}

impl BlockCutter {
    fn new(entry: ContentEntry, block: usize) -> Self {
        let block = block.max(1);
        Self {
            entry,
            block,
            pending: Bytes::new(),
            current: vec![0; block],
            filled: 0,
            index: 0,
            produced: 0,
            inflate: entry.deflated.then(|| flate2::Decompress::new(false)),
            ended: !entry.deflated,
        }
    }

    fn invalid(why: impl Into<String>) -> CallError {
        CallError::invalid_payload("read_intunewin", "INTUNEWIN_INVALID", why)
    }

    fn emit(&mut self) -> (u64, Bytes) {
        let mut full = std::mem::replace(&mut self.current, vec![0; self.block]);
        full.truncate(self.filled);
        self.produced += self.filled as u64;
        self.filled = 0;
        let index = self.index;
        self.index += 1;
        (index, Bytes::from(full))
    }

    /// Takes the package's chunk that starts at `at` (call once [`BlockCutter::next_block`] has
    /// answered `None` for the one before).
    fn feed(&mut self, at: u64, chunk: &Bytes) {
        let end = at + chunk.len() as u64;
        let (from, to) = (
            self.entry.data_start.max(at),
            self.entry.data_end().min(end),
        );
        if from >= to {
            return;
        }
        #[allow(clippy::cast_possible_truncation)] // offsets within one chunk
        let part = chunk.slice((from - at) as usize..(to - at) as usize);
        self.pending = if self.pending.is_empty() {
            part
        } else {
            // Not left by `next_block`; kept whole all the same.
            let mut joined = Vec::with_capacity(self.pending.len() + part.len());
            joined.extend_from_slice(&self.pending);
            joined.extend_from_slice(&part);
            Bytes::from(joined)
        };
    }

    /// The next full block the chunks fed so far complete, or `None` when more are needed.
    fn next_block(&mut self) -> Result<Option<(u64, Bytes)>, CallError> {
        loop {
            if self.filled == self.block {
                return Ok(Some(self.emit()));
            }
            if self.pending.is_empty() {
                return Ok(None);
            }
            let space = self.block - self.filled;
            let Some(d) = self.inflate.as_mut() else {
                let n = space.min(self.pending.len());
                self.current[self.filled..self.filled + n].copy_from_slice(&self.pending[..n]);
                self.filled += n;
                self.pending = self.pending.slice(n..);
                continue;
            };
            if self.ended {
                // Bytes after the end of the deflate stream are not the file's.
                self.pending = Bytes::new();
                continue;
            }
            let (in0, out0) = (d.total_in(), d.total_out());
            let status = d
                .decompress(
                    &self.pending,
                    &mut self.current[self.filled..],
                    flate2::FlushDecompress::None,
                )
                .map_err(|e| Self::invalid(format!("the encrypted file does not inflate: {e}")))?;
            #[allow(clippy::cast_possible_truncation)] // at most the input's and the space's length
            let (used, made) = (
                (d.total_in() - in0) as usize,
                (d.total_out() - out0) as usize,
            );
            self.pending = self.pending.slice(used..);
            self.filled += made;
            if self.produced + self.filled as u64 > self.entry.size {
                // Not sent on only to be refused at the end.
                return Err(Self::invalid(format!(
                    "the encrypted file inflates to more than the {} bytes the zip says",
                    self.entry.size
                )));
            }
            if status == flate2::Status::StreamEnd {
                self.ended = true;
            } else if used == 0 && made == 0 {
                return Err(Self::invalid(
                    "the encrypted file does not inflate: no progress",
                ));
            }
        }
    }

    /// The last (short) block, once the whole package has been fed and cut; checks the length.
    fn last_block(&mut self) -> Result<Option<(u64, Bytes)>, CallError> {
        if let Some(full) = self.next_block()? {
            return Ok(Some(full));
        }
        if self.inflate.is_some() && !self.ended {
            return Err(Self::invalid("the deflated encrypted file ends early"));
        }
        let last = (self.filled > 0).then(|| self.emit());
        if self.produced != self.entry.size {
            return Err(Self::invalid(format!(
                "the encrypted file has {} bytes, the zip says {}",
                self.produced, self.entry.size
            )));
        }
        Ok(last)
    }
}

// ---- blocks in flight ---------------------------------------------------------------------------

/// What became of one block sent.
enum Sent {
    Accepted {
        bytes: u64,
    },
    Refused {
        id: String,
        data: Bytes,
        error: CallError,
    },
    Failed(CallError),
}

/// Blocks in flight, each its own task (memory: one block each), and blocks to send again once
/// the URI is renewed.
struct Sender {
    set: JoinSet<(Vec<StorageCall>, Sent)>,
    resend: Vec<(String, Bytes)>,
    /// Why Azure refused the last block it refused.
    refusal: Option<CallError>,
    concurrency: usize,
    renewals_in_a_row: u32,
    retry: Retry,
    /// Blocks and bytes accepted in this invocation.
    blocks_sent: u64,
    bytes_sent: u64,
}

impl Sender {
    fn spawn(&mut self, to: &Storage, uri: &str, id: String, data: Bytes) {
        let url = format!("{uri}&comp=block&blockid={}", percent_encode(&id));
        let to = to.clone();
        self.set.spawn(async move {
            let mut calls = Vec::new();
            let len = data.len() as u64;
            let body = Some(data.clone());
            let sent = match storage(
                &to,
                "upload_block",
                Method::PUT,
                &url,
                body,
                true,
                &mut calls,
            )
            .await
            {
                Ok(_) => Sent::Accepted { bytes: len },
                Err(StorageFailure::Refused(error)) => Sent::Refused { id, data, error },
                Err(StorageFailure::Failed(e)) => Sent::Failed(e),
            };
            (calls, sent)
        });
    }

    /// Waits for blocks in flight until one more may be sent (`room` 1), or until none is in
    /// flight (`room` 0), renewing the URI and sending refused blocks again on the way.
    async fn wait<C: Credentials, A: ArtifactSource>(
        &mut self,
        c: &IntuneClient<C, A>,
        cx: &mut CallContext,
        target: &mut Target,
        room: usize,
    ) -> Result<(), CallError> {
        loop {
            if !self.resend.is_empty() && self.set.is_empty() {
                if self.renewals_in_a_row >= MAX_RENEWALS_IN_A_ROW {
                    // Transient when the renewed URI still says it expired (Intune's renewal
                    // not in effect yet); permanent when Azure refuses it for anything else.
                    return Err(self.refusal.take().unwrap_or_else(|| {
                        CallError::no_answer("upload_block", "the storage URI keeps being refused")
                    }));
                }
                if self.renewals_in_a_row > 0 {
                    // The renewal before did not help yet: give it time to take effect.
                    tokio::time::sleep(self.retry.wait(self.renewals_in_a_row - 1)).await;
                }
                self.renewals_in_a_row += 1;
                renew(c, cx, target).await?;
                let to = Storage::of(c, cx);
                for (id, data) in std::mem::take(&mut self.resend) {
                    self.spawn(&to, &target.uri, id, data);
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
                Sent::Refused { id, data, error } => {
                    self.refusal = Some(error);
                    self.resend.push((id, data));
                }
                Sent::Failed(e) => {
                    self.settle::<C, A>(cx, &target.ids).await;
                    return Err(e);
                }
            }
        }
    }

    /// Waits for every block in flight, abandoning none: once an invocation's upload stops,
    /// for whatever reason, nothing it sent is still on its way to Azure (a block landing later
    /// would change what the next invocation finds), and the trail has every call.
    async fn settle<C: Credentials, A: ArtifactSource>(
        &mut self,
        cx: &mut CallContext,
        ids: &Value,
    ) {
        while let Some(joined) = self.set.join_next().await {
            let Ok((calls, sent)) = joined else { continue };
            record_calls::<C, A>(cx, ids, calls);
            if let Sent::Accepted { bytes } = sent {
                self.blocks_sent += 1;
                self.bytes_sent += bytes;
            }
        }
        self.resend.clear();
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

/// One invocation's upload: what Azure held when it started, the block list so far, and the
/// blocks in flight.
struct Run {
    held: HashMap<String, u64>,
    ids: Vec<String>,
    sender: Sender,
    to: Storage,
    done: Uploaded,
}

impl Run {
    /// Sends block `index` unless Azure holds it already; at a safe point, hands the upload to a
    /// later invocation when this one's budget is spent.
    async fn take<C: Credentials, A: ArtifactSource>(
        &mut self,
        c: &IntuneClient<C, A>,
        cx: &mut CallContext,
        target: &mut Target,
        index: u64,
        data: Bytes,
    ) -> Result<(), CallError> {
        let id = block_id(index, &data);
        self.done.blocks += 1;
        self.ids.push(id.clone());
        if self.held.get(&id) == Some(&(data.len() as u64)) {
            self.done.blocks_already_held += 1;
            return Ok(());
        }
        let sender = &mut self.sender;
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
        sender.spawn(&self.to, &target.uri, id, data);
        Ok(())
    }
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
    let block = block_size(c.cfg.chunk_size, package.content.size);
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
    let retry = Retry {
        times: c.cfg.block_retries,
        backoff: c.cfg.block_retry_backoff,
    };
    let mut run = Run {
        held,
        ids: Vec::new(),
        sender: Sender {
            set: JoinSet::new(),
            resend: Vec::new(),
            refusal: None,
            concurrency: c.cfg.upload_concurrency.max(1),
            renewals_in_a_row: 0,
            retry,
            blocks_sent: 0,
            bytes_sent: 0,
        },
        to: Storage::of(c, cx),
        done: Uploaded::default(),
    };
    let sent = async {
        loop {
            let at = stream.position();
            let Some(chunk) = stream.next().await? else {
                break;
            };
            cutter.feed(at, &chunk);
            while let Some((index, data)) = cutter.next_block()? {
                run.take(c, cx, target, index, data).await?;
            }
        }
        if let Some((index, data)) = cutter.last_block()? {
            run.take(c, cx, target, index, data).await?;
        }
        run.sender.wait(c, cx, target, 0).await
    }
    .await;
    if let Err(e) = sent {
        run.sender.settle::<C, A>(cx, &target.ids).await;
        return Err(e);
    }
    let mut done = run.done;
    done.blocks_sent = run.sender.blocks_sent;
    done.bytes_sent = run.sender.bytes_sent;
    // Every byte has been read: the block list is committed only if they are the approved ones.
    stream.finish_verified(&sha256)?;
    put_block_list(c, cx, target, &run.ids).await?;
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
    fn block_ids_have_one_length_and_name_the_bytes() {
        let a = block_id(0, b"one block");
        let b = block_id(12_345, b"one block");
        let c = block_id(0, b"another block of another length");
        for id in [&a, &b, &c] {
            assert_eq!(id.len(), BLOCK_ID_LEN);
            let raw = base64::engine::general_purpose::STANDARD
                .decode(id)
                .unwrap();
            assert!(raw.len() <= 64, "Azure: at most 64 bytes before encoding");
        }
        assert_ne!(a, b, "the index");
        assert_ne!(a, c, "the bytes");
        assert_eq!(a, block_id(0, b"one block"), "stable across invocations");
    }

    #[test]
    fn blocks_are_few_enough_for_azure_and_small_enough() {
        let mib = 1024 * 1024;
        assert_eq!(block_size(6 * mib, 4 * 1024 * mib as u64), 6 * mib);
        // 30 GB in 256 KiB blocks would be 114,441 blocks: Azure takes 50,000.
        let size = block_size(256 * 1024, 30_000_000_000);
        assert_eq!(size, 600_000);
        assert!(30_000_000_000_u64.div_ceil(size as u64) <= 50_000);
        assert_eq!(
            block_size(512 * mib, 10),
            100 * mib,
            "Azure's 100 MiB a block"
        );
        assert_eq!(block_size(0, 0), 1);
    }

    fn entry(data_start: u64, compressed: &[u8], size: u64, deflated: bool) -> ContentEntry {
        ContentEntry {
            data_start,
            compressed_size: compressed.len() as u64,
            size,
            deflated,
        }
    }

    /// Feeds `package` in chunks of `chunk`, taking blocks as they come; the most blocks one
    /// chunk gave at once is answered too.
    fn cut(cutter: &mut BlockCutter, package: &[u8], chunk: usize) -> (Vec<(u64, Bytes)>, usize) {
        let (mut got, mut most) = (Vec::new(), 0);
        for (i, part) in package.chunks(chunk).enumerate() {
            cutter.feed((i * chunk) as u64, &Bytes::copy_from_slice(part));
            let mut now = 0;
            while let Some(b) = cutter.next_block().unwrap() {
                assert!(cutter.pending.len() <= chunk, "holds one chunk at most");
                got.push(b);
                now += 1;
            }
            most = most.max(now);
        }
        got.extend(cutter.last_block().unwrap());
        (got, most)
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
            let mut cutter =
                BlockCutter::new(entry(100, &bytes, payload.len() as u64, is_deflated), 3000);
            let (got, _) = cut(&mut cutter, &package, 777);
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
    fn content_that_is_a_whole_number_of_blocks_has_no_empty_last_block() {
        let payload = vec![7_u8; 4096];
        let mut cutter = BlockCutter::new(entry(0, &payload, 4096, false), 1024);
        let (got, _) = cut(&mut cutter, &payload, 1000);
        assert_eq!(
            got.iter().map(|(_, b)| b.len()).collect::<Vec<_>>(),
            [1024; 4]
        );
        let mut short = BlockCutter::new(entry(0, &payload, 4097, false), 1024);
        for (i, part) in payload.chunks(1000).enumerate() {
            short.feed((i * 1000) as u64, &Bytes::copy_from_slice(part));
            while short.next_block().unwrap().is_some() {}
        }
        let e = short.last_block().unwrap_err();
        assert_eq!(e.code, "INTUNEWIN_INVALID", "{e}");
    }

    #[test]
    fn a_chunk_that_inflates_to_many_blocks_gives_them_one_at_a_time() {
        use std::io::Write as _;
        // 16 MiB of zeros deflate to some 16 KiB: one chunk of the package is 256 blocks.
        let size = 16 * 1024 * 1024;
        let block = 64 * 1024;
        let mut deflated =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        deflated.write_all(&vec![0_u8; size]).unwrap();
        let deflated = deflated.finish().unwrap();
        assert!(deflated.len() < block, "{}", deflated.len());
        let mut cutter = BlockCutter::new(entry(0, &deflated, size as u64, true), block);
        cutter.feed(0, &Bytes::from(deflated));
        let mut blocks = 0;
        while let Some((_, b)) = cutter.next_block().unwrap() {
            assert_eq!(b.len(), block);
            blocks += 1;
        }
        assert_eq!(cutter.last_block().unwrap().map(|(i, _)| i), None);
        assert_eq!(blocks, 256);
        assert_eq!(cutter.produced, size as u64);
    }

    #[test]
    fn a_deflated_file_longer_than_the_zip_says_is_refused_as_soon_as_it_shows() {
        use std::io::Write as _;
        let mut deflated =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        deflated.write_all(&vec![0_u8; 1024 * 1024]).unwrap();
        let deflated = deflated.finish().unwrap();
        let mut cutter = BlockCutter::new(entry(0, &deflated, 10_000, true), 4096);
        cutter.feed(0, &Bytes::from(deflated));
        let mut blocks = 0;
        let e = loop {
            match cutter.next_block() {
                Ok(Some(_)) => blocks += 1,
                Ok(None) => panic!("the whole megabyte was cut"),
                Err(e) => break e,
            }
        };
        assert_eq!(e.code, "INTUNEWIN_INVALID");
        assert_eq!(
            blocks, 2,
            "10,000 bytes are two full blocks and a short one"
        );
    }

    #[test]
    fn a_deflated_file_that_ends_early_is_invalid() {
        use std::io::Write as _;
        let mut deflated =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        deflated.write_all(&[5_u8; 5000]).unwrap();
        let deflated = deflated.finish().unwrap();
        let cut_short = &deflated[..deflated.len() / 2];
        let mut cutter = BlockCutter::new(entry(0, cut_short, 5000, true), 1000);
        cutter.feed(0, &Bytes::copy_from_slice(cut_short));
        while cutter.next_block().unwrap().is_some() {}
        assert_eq!(cutter.last_block().unwrap_err().code, "INTUNEWIN_INVALID");
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

    #[test]
    fn a_target_never_shows_its_signature() {
        let target = Target {
            path: "/v1.0/deviceAppManagement/mobileApps/a/files/f".into(),
            ids: Value::Null,
            uri: "https://acct.blob.core.windows.net/c/f.intunewin.bin?sv=2017-04-17&sr=b&si=p&sig=SECRET%3D".into(),
            renew_at: Instant::now(),
        };
        let shown = format!("{target:?}");
        assert!(
            !shown.contains("sig=") && !shown.contains("SECRET"),
            "{shown}"
        );
        assert!(shown.contains("/c/f.intunewin.bin"), "{shown}");
    }
}
