//! Install status of a ring's population, read in bulk.
//!
//! 1. **Population**: the members of the ring's smart group (`GET /api/v3/computer-groups/
//!    smart-group-membership/{id}`, Jamf Pro 11.28 and later; the deprecated `/api/v2/...` before
//!    that; the Classic `computergroups/id/{id}` for a static group or a server without either),
//!    less the members of the earlier rings' groups, which count toward those rings.
//! 2. **Inventory**: `GET /api/v3/computers-inventory` with the `GENERAL` (`lastContactTime`,
//!    `reportDate`) and `PACKAGE_RECEIPTS` sections, filtered to the population with RSQL
//!    `id=in=(…)` in chunks that keep each URL near 3 KB (well inside the 8 KB request line that
//!    Tomcat and the usual proxies accept), sorted by id, each chunk one page (at most 2,000, the
//!    largest page Jamf serves). Filtering renders only the ring's Macs however large the whole
//!    fleet is, which paging through everything would not. A Mac whose receipts list the
//!    deployment's package file is `Installed` (the policy updates inventory right after it runs,
//!    see `publish.rs`), as of its inventory report. A member the inventory does not have was
//!    deleted: skipped and counted in `missing`.
//! 3. **Policy logs**, one Classic `computerhistory` read per Mac, only for the Macs without the
//!    receipt that contacted Jamf since the deployment was submitted (they may have failed, or
//!    completed before an inventory), and not already known from an earlier query with no contact
//!    since. Macs that reported inventory since the deployment without the receipt come first
//!    (the policy updates inventory when it runs, failed or not: these most likely failed). Reads
//!    stop at the configured budget (time and count); the Macs left unread stay `Pending`, and the
//!    next query goes on after the last Mac this one read, so successive queries cover the ring. A 404 is a Mac deleted meanwhile (missing); a 401 or 403 (a missing
//!    privilege: the Classic API answers 401) or repeated transient failures end the reads, never
//!    the query.
//!
//! Every request goes through the client's limiter, so this container never has more than its
//! share of Jamf's 5 connections in flight; the reads run on exactly that many workers.
//!
//! # Progress kept as it goes
//! The inventory is read before any policy log, and each chunk is retried twice on a transient
//! failure, so a late failure never throws away what was read: a policy-log read that fails leaves
//! its Mac `Pending` and the query returns everything else. Each policy-log result is saved, as
//! soon as it is read, in the client's memory (per policy, per Mac, with the Mac's last contact
//! then), so a later query in the same container skips Macs that have not contacted Jamf since,
//! even when the query that read them was cut short.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::Poll;
use std::time::{Duration, Instant};

use eucora_connector::artifact::ArtifactSource;
use eucora_connector::credentials::Credentials;
use eucora_connector::platform::{CallContext, Job, RingStatus, percent_encode};
use eucora_connector::{CallError, ErrorClass};
use eucora_domain::Timestamp;
use eucora_domain::gates::{DeviceResult, InstallOutcome};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::client::{JamfClient, Payload};
use crate::xml::{GroupAnswer, HistoryAnswer, PolicyLog};

/// The largest page the Jamf Pro API serves (a larger `page-size` is clamped to it).
const MAX_PAGE_SIZE: usize = 2000;
/// The longest `filter` value (percent-encoded) one inventory request carries.
const MAX_FILTER_CHARS: usize = 3000;
/// Attempts at one inventory chunk (transient failures only).
const INVENTORY_ATTEMPTS: u32 = 3;
/// Transient failures in a row that end the policy-log reads.
const TRANSIENT_FAILURES_TO_STOP: u32 = 3;
/// Policies whose results a client remembers.
const MEMO_POLICIES: usize = 32;

/// What status queries learnt that later ones reuse, per policy.
#[derive(Debug, Default)]
pub(crate) struct Memo {
    policies: Mutex<BTreeMap<String, PolicyMemo>>,
    /// The file name of each package a policy installs (it never changes for a package id).
    file_names: Mutex<HashMap<String, String>>,
    /// Which membership API the server answered: 0 unknown, 3 or 2.
    membership_api: AtomicU8,
    touches: AtomicU32,
}

#[derive(Debug, Default)]
struct PolicyMemo {
    /// The last Mac read, where the next query's reads start.
    cursor: u32,
    logs: HashMap<u32, Seen>,
    touched: u32,
}

/// A Mac's policy log as read, with its last contact then: until it contacts Jamf again, its
/// log cannot change.
#[derive(Debug, Clone, Copy)]
struct Seen {
    /// `None`: no log for the policy.
    log: Option<(InstallOutcome, Timestamp)>,
    contact: Option<Timestamp>,
    /// Its inventory report then: a policy that runs again reports inventory again.
    report: Option<Timestamp>,
}

impl Memo {
    pub(crate) fn file_name(&self, package_id: &str) -> Option<String> {
        self.file_names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(package_id)
            .cloned()
    }

    pub(crate) fn remember_file_name(&self, package_id: &str, file_name: &str) {
        let mut names = self
            .file_names
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if names.len() >= MEMO_POLICIES * 4 {
            names.clear();
        }
        names.insert(package_id.to_owned(), file_name.to_owned());
    }

    fn with<R>(&self, policy: &str, f: impl FnOnce(&mut PolicyMemo) -> R) -> R {
        let mut all = self.policies.lock().unwrap_or_else(PoisonError::into_inner);
        let touched = self.touches.fetch_add(1, Ordering::Relaxed);
        if !all.contains_key(policy) && all.len() >= MEMO_POLICIES {
            let oldest = all
                .iter()
                .min_by_key(|(_, m)| m.touched)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                all.remove(&oldest);
            }
        }
        let memo = all.entry(policy.to_owned()).or_default();
        memo.touched = touched;
        f(memo)
    }
}

/// The ring's status.
pub async fn status<C: Credentials, A: ArtifactSource>(
    c: &JamfClient<C, A>,
    cx: &mut CallContext,
    job: &Job<'_>,
) -> Result<RingStatus, CallError> {
    let started = Instant::now();
    let ring = members(c, cx, job.group_id).await?;
    let mut earlier = BTreeSet::new();
    for group in job.earlier_groups {
        earlier.extend(members(c, cx, group).await?);
    }
    let earlier_ring_devices = ring.intersection(&earlier).count();
    let population: Vec<u32> = ring.difference(&earlier).copied().collect();
    let policy = crate::publish::find_policy(c, cx, job).await?;
    // Receipts name the package's file, which the publish chose (see `publish.rs`).
    let file_name =
        crate::publish::installed_file_name(c, cx, job, policy.as_ref().map(|(_, p)| p)).await;
    let policy_id = policy.map(|(id, _)| id);
    let inventory = inventory(c, cx, &population, &file_name).await?;

    let since = job.deployment.submitted_at;
    let history = match &policy_id {
        Some(policy) => {
            let candidates: Vec<u32> = c.status_memo.with(policy, |memo| {
                population
                    .iter()
                    .filter(|id| {
                        inventory.get(id).is_some_and(|mac| {
                            !mac.has_receipt
                                && mac.last_contact.is_some_and(|t| t >= since)
                                && !memo.logs.get(id).is_some_and(|seen| seen.settles(mac))
                        })
                    })
                    .copied()
                    .collect()
            });
            policy_logs(c, cx, policy, candidates, &inventory, since, started).await
        }
        None => HashMap::new(),
    };

    let mut out = RingStatus {
        earlier_ring_devices: u64::try_from(earlier_ring_devices).unwrap_or(u64::MAX),
        ..RingStatus::default()
    };
    let remembered = |id: u32| {
        policy_id
            .as_deref()
            .and_then(|p| c.status_memo.with(p, |memo| memo.logs.get(&id).copied()))
    };
    for id in population {
        let Some(mac) = inventory.get(&id) else {
            out.missing += 1;
            continue;
        };
        let (outcome, at) = if mac.has_receipt {
            (
                InstallOutcome::Installed,
                mac.report_date.unwrap_or(job.now),
            )
        } else {
            match history.get(&id) {
                Some(Read::Missing) => {
                    out.missing += 1;
                    continue;
                }
                Some(Read::Seen(seen)) => seen.result(job.now),
                None => match remembered(id) {
                    Some(seen) => seen.result(job.now),
                    None if mac.last_contact.is_some_and(|t| t >= since) && policy_id.is_some() => {
                        (InstallOutcome::Pending, job.now)
                    }
                    None => (InstallOutcome::NotReported, job.now),
                },
            }
        };
        out.devices.push(DeviceResult {
            device_id: id.to_string(),
            platform: eucora_domain::evidence::Platform::Macos,
            outcome,
            site_class: job.deployment.submission.evidence.rollout.site_class,
            at,
            last_contact: mac.last_contact,
        });
    }
    Ok(out)
}

impl Seen {
    /// Whether this read still holds for the Mac as inventory shows it now: an install stays;
    /// a failure stays until the policy runs again (which reports inventory again); anything
    /// else until the Mac contacts Jamf again.
    fn settles(&self, mac: &Mac) -> bool {
        let not_after = |now: Option<Timestamp>, then: Option<Timestamp>| matches!((now, then), (Some(now), Some(then)) if now <= then);
        match self.log {
            Some((InstallOutcome::Installed, _)) => true,
            Some((InstallOutcome::Failed, _)) => {
                not_after(mac.report_date, self.report) || not_after(mac.last_contact, self.contact)
            }
            _ => not_after(mac.last_contact, self.contact),
        }
    }

    fn result(&self, now: Timestamp) -> (InstallOutcome, Timestamp) {
        self.log.unwrap_or((InstallOutcome::NotReported, now))
    }
}

fn numeric_id(id: &str) -> Result<u32, CallError> {
    id.parse::<u32>().map_err(|_| {
        CallError::invalid_payload(
            "validate",
            "JAMF_INVALID_PAYLOAD",
            format!("a Jamf computer group id must be a number, got {id:?}"),
        )
    })
}

fn id_of(v: &Value) -> Option<u32> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[derive(Deserialize)]
struct Membership {
    #[serde(default)]
    members: Vec<Value>,
}

/// The computers in group `group`: the smart group membership call (v3, else v2), else the
/// Classic group (a static group, or a server without the Jamf Pro API's call).
async fn members<C: Credentials, A: ArtifactSource>(
    c: &JamfClient<C, A>,
    cx: &mut CallContext,
    group: &str,
) -> Result<BTreeSet<u32>, CallError> {
    let id = numeric_id(group)?;
    let known = &c.status_memo.membership_api;
    let versions: &[u8] = if known.load(Ordering::Relaxed) == 2 {
        &[2]
    } else {
        &[3, 2]
    };
    for version in versions {
        let path = format!("/api/v{version}/computer-groups/smart-group-membership/{id}");
        match c
            .call(
                cx,
                "group_members",
                Method::GET,
                &path,
                || Payload::None,
                json!({ "group_id": id }),
            )
            .await
        {
            Ok(answer) => {
                known.store(*version, Ordering::Relaxed);
                let m: Membership = answer.json("group_members")?;
                return Ok(m.members.iter().filter_map(id_of).collect());
            }
            // Not a smart group, or not this version of the call: try the next.
            Err(e) if e.status == Some(404) => {}
            Err(e) => return Err(e),
        }
    }
    let answer = c
        .call(
            cx,
            "read_group",
            Method::GET,
            &format!("/JSSResource/computergroups/id/{id}"),
            || Payload::None,
            json!({ "group_id": id }),
        )
        .await?;
    Ok(answer
        .xml::<GroupAnswer>("read_group")?
        .computer_ids()
        .iter()
        .filter_map(|i| i.parse().ok())
        .collect())
}

/// What inventory says of a Mac.
#[derive(Debug, Clone, Copy)]
struct Mac {
    last_contact: Option<Timestamp>,
    report_date: Option<Timestamp>,
    has_receipt: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InventoryPage {
    total_count: usize,
    results: Vec<InventoryRecord>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InventoryRecord {
    id: Value,
    #[serde(default)]
    general: Option<GeneralSection>,
    #[serde(default)]
    package_receipts: Option<Receipts>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeneralSection {
    #[serde(default)]
    last_contact_time: Option<String>,
    #[serde(default)]
    report_date: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Receipts {
    #[serde(default)]
    installed_by_jamf_pro: Option<Vec<String>>,
}

/// Splits the population into `id=in=(…)` filters of at most [`MAX_FILTER_CHARS`] encoded
/// characters and [`MAX_PAGE_SIZE`] ids.
fn chunks(ids: &[u32]) -> Vec<Vec<u32>> {
    // `id=in=(` and `)` encode to 17 characters; each id adds its digits and an encoded comma.
    let mut out: Vec<Vec<u32>> = Vec::new();
    let mut length = 0;
    for id in ids {
        let cost = id.to_string().len() + 3;
        match out.last_mut() {
            Some(chunk) if length + cost <= MAX_FILTER_CHARS && chunk.len() < MAX_PAGE_SIZE => {
                chunk.push(*id);
                length += cost;
            }
            _ => {
                out.push(vec![*id]);
                length = 17 + cost;
            }
        }
    }
    out
}

/// The inventory of `ids`, in chunks on this container's share of the connections.
async fn inventory<C: Credentials, A: ArtifactSource>(
    c: &JamfClient<C, A>,
    cx: &mut CallContext,
    ids: &[u32],
    file_name: &str,
) -> Result<HashMap<u32, Mac>, CallError> {
    let queue = Mutex::new(chunks(ids).into_iter());
    let failed = AtomicBool::new(false);
    let workers = (0..c.max_in_flight).map(|_| {
        let mut wcx = worker_context(cx);
        let (queue, failed) = (&queue, &failed);
        async move {
            let mut found = Vec::new();
            while !failed.load(Ordering::Relaxed) {
                let Some(chunk) = queue.lock().unwrap_or_else(PoisonError::into_inner).next()
                else {
                    break;
                };
                match inventory_chunk(c, &mut wcx, &chunk, file_name).await {
                    Ok(macs) => found.extend(macs),
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        return (wcx, Err(e));
                    }
                }
            }
            (wcx, Ok(found))
        }
    });
    let mut out = HashMap::with_capacity(ids.len());
    let mut error = None;
    for (wcx, found) in join_all(workers.collect()).await {
        merge(cx, wcx);
        match found {
            Ok(macs) => out.extend(macs),
            Err(e) => error = error.or(Some(e)),
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

async fn inventory_chunk<C: Credentials, A: ArtifactSource>(
    c: &JamfClient<C, A>,
    cx: &mut CallContext,
    chunk: &[u32],
    file_name: &str,
) -> Result<Vec<(u32, Mac)>, CallError> {
    let list = chunk
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let filter = percent_encode(&format!("id=in=({list})"));
    let page_size = chunk.len().clamp(1, MAX_PAGE_SIZE);
    let mut out = Vec::with_capacity(chunk.len());
    let mut page = 0;
    loop {
        let path = format!(
            "/api/v3/computers-inventory?section=GENERAL&section=PACKAGE_RECEIPTS\
             &page={page}&page-size={page_size}&sort=id%3Aasc&filter={filter}"
        );
        let mut attempt = 0;
        let answer = loop {
            attempt += 1;
            match c
                .call(
                    cx,
                    "computer_inventory",
                    Method::GET,
                    &path,
                    || Payload::None,
                    json!({ "computers": chunk.len(), "page": page }),
                )
                .await
            {
                Err(e) if e.class == ErrorClass::Transient && attempt < INVENTORY_ATTEMPTS => {
                    let wait = e
                        .retry_after
                        .unwrap_or(Duration::from_millis(500) * attempt)
                        .min(Duration::from_secs(5));
                    tokio::time::sleep(wait).await;
                }
                other => break other?,
            }
        };
        let read: InventoryPage = answer.json("computer_inventory")?;
        let listed = read.results.len();
        for record in read.results {
            let Some(id) = id_of(&record.id) else {
                continue;
            };
            let general = record.general.as_ref();
            let time = |t: Option<&String>| t.and_then(|t| Timestamp::parse(t.trim()).ok());
            let has_receipt = record
                .package_receipts
                .and_then(|r| r.installed_by_jamf_pro)
                .is_some_and(|r| r.iter().any(|f| f.trim().eq_ignore_ascii_case(file_name)));
            out.push((
                id,
                Mac {
                    last_contact: time(general.and_then(|g| g.last_contact_time.as_ref())),
                    report_date: time(general.and_then(|g| g.report_date.as_ref())),
                    has_receipt,
                },
            ));
        }
        page += 1;
        if listed == 0 || page * page_size >= read.total_count {
            return Ok(out);
        }
    }
}

/// One policy-log read.
#[derive(Debug, Clone, Copy)]
enum Read {
    Seen(Seen),
    /// The Mac was deleted (404).
    Missing,
}

/// Reads the policy logs of `candidates`, from after the last Mac the previous query read,
/// until the budget runs out; each result is saved in the memo as it is read.
async fn policy_logs<C: Credentials, A: ArtifactSource>(
    c: &JamfClient<C, A>,
    cx: &mut CallContext,
    policy: &str,
    mut candidates: Vec<u32>,
    inventory: &HashMap<u32, Mac>,
    since: Timestamp,
    started: Instant,
) -> HashMap<u32, Read> {
    // First the Macs that reported inventory since the deployment without the receipt (the
    // policy updates inventory when it runs, so these ran it and most likely failed), then the
    // others from after the last one the previous query read.
    let (mut likely, mut others): (Vec<u32>, Vec<u32>) = candidates.drain(..).partition(|id| {
        inventory
            .get(id)
            .and_then(|m| m.report_date)
            .is_some_and(|t| t > since)
    });
    likely.sort_unstable();
    others.sort_unstable();
    let cursor = c.status_memo.with(policy, |m| m.cursor);
    let start = others.partition_point(|id| *id <= cursor);
    others.rotate_left(start);
    let first_other = likely.len();
    candidates = likely;
    candidates.append(&mut others);
    candidates.truncate(c.status_history_reads);
    let deadline = started + c.status_budget;
    let order = candidates;
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let transient = AtomicU32::new(0);
    let workers = (0..c.max_in_flight).map(|_| {
        let mut wcx = worker_context(cx);
        let (order, next, stop, transient) = (&order, &next, &stop, &transient);
        async move {
            let mut read = Vec::new();
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let Some(&id) = order.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    break;
                };
                let mac = inventory.get(&id).copied();
                match policy_log(c, &mut wcx, policy, id, mac).await {
                    Ok(result) => {
                        transient.store(0, Ordering::Relaxed);
                        if let Read::Seen(seen) = result {
                            c.status_memo.with(policy, |m| m.logs.insert(id, seen));
                        }
                        read.push((id, result));
                    }
                    Err(e) => {
                        let in_a_row = if e.class == ErrorClass::Transient {
                            transient.fetch_add(1, Ordering::Relaxed) + 1
                        } else {
                            0
                        };
                        if matches!(
                            e.class,
                            ErrorClass::Unauthorized | ErrorClass::PolicyViolation
                        ) || in_a_row >= TRANSIENT_FAILURES_TO_STOP
                        {
                            tracing::warn!(
                                computer_id = id,
                                status = e.status,
                                code = %e.code,
                                "policy logs cannot be read now: the remaining Macs stay pending"
                            );
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                }
            }
            (wcx, read)
        }
    });
    let mut out = HashMap::new();
    for (wcx, read) in join_all(workers.collect()).await {
        merge(cx, wcx);
        out.extend(read);
    }
    // The next query starts after the last of the others handed out here.
    let handed_out = next.load(Ordering::Relaxed).min(order.len());
    if let Some(last) = handed_out
        .checked_sub(1)
        .filter(|i| *i >= first_other)
        .and_then(|i| order.get(i))
    {
        c.status_memo.with(policy, |m| m.cursor = *last);
    }
    out
}

async fn policy_log<C: Credentials, A: ArtifactSource>(
    c: &JamfClient<C, A>,
    cx: &mut CallContext,
    policy: &str,
    id: u32,
    mac: Option<Mac>,
) -> Result<Read, CallError> {
    let answer = match c
        .call(
            cx,
            "policy_logs",
            Method::GET,
            &format!("/JSSResource/computerhistory/id/{id}/subset/PolicyLogs"),
            || Payload::None,
            json!({ "computer_id": id }),
        )
        .await
    {
        Ok(a) => a,
        Err(e) if e.status == Some(404) => return Ok(Read::Missing),
        Err(e) => return Err(e),
    };
    let history: HistoryAnswer = answer.xml("policy_logs")?;
    // Newest first, as Jamf lists them; the newest entry with a time wins otherwise.
    let log = history
        .logs()
        .iter()
        .filter(|l| l.policy_id.as_deref().map(str::trim) == Some(policy))
        .max_by_key(|l| log_time(l));
    let log = log.map(|l| {
        let outcome = match l.status.as_deref().map(str::trim) {
            Some("Completed") => InstallOutcome::Installed,
            Some("Failed") => InstallOutcome::Failed,
            _ => InstallOutcome::Pending,
        };
        (outcome, log_time(l).unwrap_or_else(|| cx.now()))
    });
    Ok(Read::Seen(Seen {
        log,
        contact: mac.and_then(|m| m.last_contact),
        report: mac.and_then(|m| m.report_date),
    }))
}

/// When a policy log entry was written: `date_time_epoch` (milliseconds), else `date_time_utc`,
/// which the Classic API writes as `2026-01-04T10:15:30.000+0000` (not RFC 3339: no colon in
/// the offset).
fn log_time(log: &PolicyLog) -> Option<Timestamp> {
    if let Some(ms) = log
        .date_time_epoch
        .as_deref()
        .and_then(|t| t.trim().parse::<i64>().ok())
    {
        return Timestamp::from_unix_millis(ms).ok();
    }
    let utc = log.date_time_utc.as_deref()?.trim().to_owned();
    let rfc3339 = match utc.strip_suffix("+0000") {
        Some(head) => format!("{head}Z"),
        None => utc,
    };
    Timestamp::parse(&rfc3339).ok()
}

/// A worker's own context: the command's clock and correlation id, no calls yet.
fn worker_context(cx: &CallContext) -> CallContext {
    let mut wcx = cx.clone();
    wcx.calls.clear();
    wcx.auth_refreshed = false;
    wcx
}

/// Takes a worker's calls back into the command's context.
fn merge(cx: &mut CallContext, wcx: CallContext) {
    cx.auth_refreshed |= wcx.auth_refreshed;
    cx.calls.extend(wcx.calls);
}

/// Runs futures together on the current task (no spawning: they borrow the client) and returns
/// their outputs in order. Meant for a handful of workers: each wake polls every one left.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|task| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(task) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::{MAX_FILTER_CHARS, MAX_PAGE_SIZE, chunks, log_time};
    use crate::xml::PolicyLog;

    fn log(xml: &str) -> PolicyLog {
        crate::xml::read(&format!("<policy_log>{xml}</policy_log>")).unwrap()
    }

    #[test]
    fn reads_the_classic_api_log_times() {
        let at = eucora_domain::Timestamp::parse("2026-01-04T10:15:30Z").unwrap();
        assert_eq!(
            log_time(&log(
                "<date_time_utc>2026-01-04T10:15:30.000+0000</date_time_utc>"
            )),
            Some(at)
        );
        assert_eq!(
            log_time(&log(
                "<date_time_epoch>1767521730000</date_time_epoch><date_time_utc>x</date_time_utc>"
            )),
            Some(at)
        );
        assert_eq!(log_time(&log("<status>Completed</status>")), None);
    }

    #[test]
    fn chunks_keep_every_id_once_and_each_filter_short() {
        let ids: Vec<u32> = (1..=10_000).chain(1_000_000..1_002_000).collect();
        let chunks = chunks(&ids);
        let flat: Vec<u32> = chunks.iter().flatten().copied().collect();
        assert_eq!(flat, ids);
        for chunk in &chunks {
            let list = chunk
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",");
            let encoded = eucora_connector::platform::percent_encode(&format!("id=in=({list})"));
            assert!(encoded.len() <= MAX_FILTER_CHARS, "{}", encoded.len());
            assert!(chunk.len() <= MAX_PAGE_SIZE);
        }
        assert!(
            chunks.len() < 60,
            "{} requests for 12,000 Macs",
            chunks.len()
        );
        assert!(super::chunks(&[]).is_empty());
    }
}
