//! Install status of a ring's population: every device of the ring's Entra ID group, earlier
//! rings' devices left out, joined with Intune's install status report.

// Facts this rests on (sources in brackets):
// - The ring's population is its Entra ID group's device members:
//   `GET /v1.0/groups/{id}/transitiveMembers/microsoft.graph.device`, `$select`, `$top` at most
//   999 (default 100), further pages by following `@odata.nextLink` verbatim
//   [learn.microsoft.com, "List group transitive members" / "device: list transitiveMemberOf":
//   "The default and maximum page sizes are 100 and 999 objects"]. Transitive, so devices in
//   nested groups count, as they do for an Intune assignment to the group.
// - A member is a directory object: its `id` is the Entra object id; its `deviceId` is the id
//   the Device Registration Service set, and that is what Intune's managed device carries as
//   `azureADDeviceId` [Graph `device` resource ("deviceId: unique identifier set by Azure Device
//   Registration Service at the time of registration... alternate key"); `managedDevice`
//   resource; Microsoft Tech Community, "How to get Intune Device ID with Graph": filter
//   `managedDevices` by `azureADDeviceId eq '<Entra deviceId>'`; IntuneAssignmentChecker
//   `Get-IACDirectoryDevice` maps `managedDevice.azureADDeviceId` to the Entra `deviceId`].
// - The report's `DeviceId` column is the Intune managed device id, not the Entra id
//   [Microsoft Docs "Export Intune reports using Graph APIs", `DeviceInstallStatusByApp`
//   columns; the simulator's fact sheet]. So the join needs the managed devices'
//   `id` ↔ `azureADDeviceId`. Cheapest correct join at 10,000 devices: one listing of the
//   tenant's Windows managed devices, `$select=id,azureADDeviceId,lastSyncDateTime`,
//   `$filter=operatingSystem eq 'Windows'` (a filter Intune supports, used e.g. by Microsoft's
//   zerotrustassessment), 1000 per page (Intune's page: powershell-intune-samples issue #2) —
//   ten pages per 10,000 devices — instead of one `azureADDeviceId eq` lookup per device
//   (10,000 requests: five times Intune's 2000-requests-per-20-s tenant limit, `$batch` or
//   not, since each batched request counts).
// - `retrieveDeviceAppInstallationStatusReport` (v1.0): `filter` by `ApplicationId` (required),
//   `select`, `skip`, `top`; answer `TotalRowCount`, `Schema`, `Values`; a row per device and
//   user; the PowerShell SDK and the admin center page by 50 [msgraph-sdk-powershell issue
//   #2081]. No maximum `top` is documented (UNCONFIRMED): public clients send 999 (CIPP), 5000
//   and 10000 without errors, and one reports pages of 50 whatever `top` says
//   [msgraph-beta-sdk-dotnet issue #683]. So this asks for [`REPORT_TOP`] rows and pages by the
//   number of rows actually returned, whatever the service's own cap turns out to be.
// - The report's row order is not stable between requests [msgraph-beta-sdk-dotnet issue #683:
//   "on different pages, I can find the same item that was on the first page"]: nothing here
//   relies on it. Rows are joined by id; a row read twice folds into the same result; a device
//   whose row a reordering skipped reads as not reported (pending: conservative, never a false
//   success), and is read again on the next query.
// - A device has no report row until it checks in after the assignment: it is `NotReported`.
// - Throttling: Intune allows 1000 requests per 20 s per app and tenant (2000 per tenant);
//   the directory's limits are higher (platform-apis.md). A 10,000-device ring costs about
//   11 member pages per group, 10+ managed-device pages and ~12 report pages; at most
//   [`WORKERS`] requests of each kind run at once, so even at 100 ms per answer this stays
//   far under the limit, and a 429's `Retry-After` is honoured by the connector's retry.
//
// Choices:
// - `last_contact` is the managed device's `lastSyncDateTime`: the last time the device
//   checked in with Intune, which is what installs the app. Entra's
//   `approximateLastSignInDateTime` measures sign-ins (a PC whose Intune agent is broken keeps
//   signing in), and is only approximate; it is not read.
// - A group member Intune does not manage (no managed Windows device with its id: never
//   enrolled, retired or deleted during the rollout, or not a Windows device) is counted in
//   `missing`, not as `NotReported`: Intune cannot install anything on it, so it must not hold
//   the ring's gates forever. A member whose `deviceId` is empty counts there too.
// - Two managed devices with one `azureADDeviceId` (a re-enrolment leaves the old record until
//   Intune cleans it up): the one that synced last is the device.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Mutex;

use eucora_connector::CallError;
use eucora_connector::artifact::ArtifactSource;
use eucora_connector::credentials::Credentials;
use eucora_connector::platform::{CallContext, Job, RingStatus, percent_encode};
use eucora_domain::Timestamp;
use eucora_domain::evidence::Platform as Kind;
use eucora_domain::gates::{DeviceResult, InstallOutcome};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::client::IntuneClient;
use crate::model::{Listing, Report};

/// Rows asked for per report request (see the facts above: the service may answer fewer).
pub const REPORT_TOP: u64 = 1000;
/// Directory objects per membership page: the directory's maximum.
const MEMBERS_TOP: u32 = 999;
/// Managed devices per page: Intune's page.
const DEVICES_TOP: u32 = 1000;
/// Requests of one kind (report pages, groups) in flight at once (`in_parallel` joins four).
pub const WORKERS: usize = 4;
const _: () = assert!(WORKERS == 4, "in_parallel runs four workers");

const REPORT: &str = "/v1.0/deviceManagement/reports/retrieveDeviceAppInstallationStatusReport";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Member {
    #[serde(default)]
    device_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ManagedDevice {
    id: String,
    #[serde(default, rename = "azureADDeviceId")]
    azure_ad_device_id: Option<String>,
    #[serde(default, rename = "lastSyncDateTime")]
    last_sync: Option<String>,
}

/// A managed device as the join needs it.
#[derive(Debug, Clone)]
struct Managed {
    id: String,
    last_sync: Option<Timestamp>,
}

/// A call context of its own for work that runs beside the command's other calls.
fn branch(cx: &CallContext) -> CallContext {
    let mut own = cx.clone();
    own.calls.clear();
    own.auth_refreshed = false;
    own
}

/// Takes a branch's calls back into the command's context.
fn merge(cx: &mut CallContext, branch: CallContext) {
    cx.calls.extend(branch.calls);
    cx.auth_refreshed |= branch.auth_refreshed;
}

/// Runs `work` over `items` with [`WORKERS`] at a time, each worker with its own call context.
/// Answers the workers' contexts and the results in the items' order, or the first error (the
/// workers stop taking items once one has failed).
async fn in_parallel<I, T, F, Fut>(
    cx: &CallContext,
    items: Vec<I>,
    work: F,
) -> (Vec<CallContext>, Result<Vec<T>, CallError>)
where
    F: Fn(CallContext, I) -> Fut,
    Fut: Future<Output = (CallContext, Result<T, CallError>)>,
{
    let queue = Mutex::new(items.into_iter().enumerate().collect::<Vec<_>>());
    queue
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .reverse();
    let failed = std::sync::atomic::AtomicBool::new(false);
    let worker = || async {
        let mut own = branch(cx);
        let mut done = Vec::new();
        loop {
            if failed.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            let next = queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pop();
            let Some((index, item)) = next else { break };
            let (back, result) = work(own, item).await;
            own = back;
            match result {
                Ok(value) => done.push((index, value)),
                Err(e) => {
                    failed.store(true, std::sync::atomic::Ordering::Relaxed);
                    return (own, Err(e));
                }
            }
        }
        (own, Ok(done))
    };
    let (first, second, third, fourth) = tokio::join!(worker(), worker(), worker(), worker());
    let mut contexts = Vec::with_capacity(WORKERS);
    let mut results = Vec::new();
    let mut error = None;
    for (own, result) in [first, second, third, fourth] {
        contexts.push(own);
        match result {
            Ok(done) => results.extend(done),
            Err(e) => error = error.or(Some(e)),
        }
    }
    if let Some(e) = error {
        return (contexts, Err(e));
    }
    results.sort_by_key(|(index, _)| *index);
    (contexts, Ok(results.into_iter().map(|(_, v)| v).collect()))
}

/// The Entra device ids (lower case) of a group's device members, nested groups included;
/// `None` for a member without one.
async fn members<C: Credentials, A: ArtifactSource>(
    c: &IntuneClient<C, A>,
    cx: &mut CallContext,
    group_id: &str,
) -> Result<Vec<Option<String>>, CallError> {
    let ids = json!({ "group_id": group_id });
    let mut url = format!(
        "/v1.0/groups/{}/transitiveMembers/microsoft.graph.device?$select=id,deviceId&$top={MEMBERS_TOP}",
        percent_encode(group_id)
    );
    let mut out = Vec::new();
    loop {
        let page: Listing<Member> = c
            .graph(cx, "group_members", Method::GET, &url, None, ids.clone())
            .await?
            .json("group_members")?;
        out.extend(page.value.into_iter().map(|m| {
            m.device_id
                .filter(|d| !d.is_empty())
                .map(|d| d.to_ascii_lowercase())
        }));
        match page.next_link {
            Some(next) => url = next,
            None => return Ok(out),
        }
    }
}

/// The tenant's Windows managed devices by Entra device id (lower case).
async fn managed_devices<C: Credentials, A: ArtifactSource>(
    c: &IntuneClient<C, A>,
    cx: &mut CallContext,
) -> Result<HashMap<String, Managed>, CallError> {
    let mut url = format!(
        "/v1.0/deviceManagement/managedDevices?$select=id,azureADDeviceId,lastSyncDateTime&$filter={}&$top={DEVICES_TOP}",
        percent_encode("operatingSystem eq 'Windows'")
    );
    let mut out: HashMap<String, Managed> = HashMap::new();
    loop {
        let page: Listing<ManagedDevice> = c
            .graph(cx, "managed_devices", Method::GET, &url, None, Value::Null)
            .await?
            .json("managed_devices")?;
        for d in page.value {
            let Some(entra) = d.azure_ad_device_id.filter(|e| !e.is_empty()) else {
                continue;
            };
            let device = Managed {
                id: d.id,
                last_sync: d.last_sync.and_then(|t| Timestamp::parse(&t).ok()),
            };
            match out.entry(entra.to_ascii_lowercase()) {
                std::collections::hash_map::Entry::Occupied(mut kept) => {
                    if device.last_sync > kept.get().last_sync {
                        kept.insert(device);
                    }
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(device);
                }
            }
        }
        match page.next_link {
            Some(next) => url = next,
            None => return Ok(out),
        }
    }
}

fn outcome(state: &Value) -> InstallOutcome {
    let s = match state {
        Value::String(s) => s.to_ascii_lowercase(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    // resultantAppState: installed=1, failed=2, notInstalled=3, uninstallFailed=4,
    // pendingInstall=5, unknown=99, notApplicable=-1 (names or numbers).
    match s.as_str() {
        "installed" | "1" => InstallOutcome::Installed,
        "failed" | "2" | "uninstallfailed" | "4" => InstallOutcome::Failed,
        "notapplicable" | "-1" => InstallOutcome::NotApplicable,
        _ => InstallOutcome::Pending,
    }
}

/// One page of the report: its rows as results, and the report's total row count.
async fn report_page<C: Credentials, A: ArtifactSource>(
    c: &IntuneClient<C, A>,
    cx: &mut CallContext,
    job: &Job<'_>,
    app_id: &str,
    skip: u64,
) -> Result<(Vec<DeviceResult>, u64), CallError> {
    let body = json!({
        "select": ["DeviceId", "UserPrincipalName", "InstallState", "ErrorCode", "LastModifiedDateTime"],
        "filter": format!("(ApplicationId eq '{}')", crate::publish::quote(app_id)),
        "skip": skip, "top": REPORT_TOP, "orderBy": []
    });
    let report: Report = c
        .graph(
            cx,
            "install_status",
            Method::POST,
            REPORT,
            Some(&body),
            json!({ "app_id": app_id, "skip": skip }),
        )
        .await?
        .json("install_status")?;
    let col = |name: &str| report.schema.iter().position(|s| s.column == name);
    let (Some(device), Some(state)) = (col("DeviceId"), col("InstallState")) else {
        return Err(CallError::no_answer(
            "install_status",
            "the report has no DeviceId or InstallState column",
        ));
    };
    let modified = col("LastModifiedDateTime");
    let rows = report
        .values
        .iter()
        .filter_map(|row| {
            let id = row.get(device).and_then(Value::as_str)?;
            let at = modified
                .and_then(|i| row.get(i))
                .and_then(Value::as_str)
                .and_then(|t| Timestamp::parse(t).ok())
                .unwrap_or(job.now);
            Some(DeviceResult {
                device_id: id.to_owned(),
                platform: Kind::Windows,
                outcome: outcome(row.get(state).unwrap_or(&Value::Null)),
                site_class: job.deployment.submission.evidence.rollout.site_class,
                at,
                last_contact: None,
            })
        })
        .collect();
    Ok((rows, report.total_row_count))
}

/// Every row of the app's report folded into one result per device (by Intune device id); an
/// empty map when the app does not exist (nothing was published, nothing reported).
async fn report<C: Credentials, A: ArtifactSource>(
    c: &IntuneClient<C, A>,
    cx: &mut CallContext,
    job: &Job<'_>,
) -> Result<HashMap<String, DeviceResult>, CallError> {
    let Some(app) = crate::publish::find_app(c, cx, job).await? else {
        return Ok(HashMap::new());
    };
    let (mut rows, total) = report_page(c, cx, job, &app.id, 0).await?;
    let page = rows.len() as u64;
    if page > 0 && page < total {
        // The first answer told the total and the page the service serves: the other pages
        // can be asked for side by side.
        let skips: Vec<u64> = (1..total.div_ceil(page)).map(|k| k * page).collect();
        let (contexts, pages) = in_parallel(cx, skips, |mut own, skip| {
            let app_id = app.id.clone();
            async move {
                let result = report_page(c, &mut own, job, &app_id, skip).await;
                (own, result.map(|(rows, _)| rows))
            }
        })
        .await;
        for own in contexts {
            merge(cx, own);
        }
        rows.extend(pages?.into_iter().flatten());
    }
    if (rows.len() as u64) < total {
        tracing::warn!(
            read = rows.len(),
            total,
            "the install report changed while it was read: missed devices read as not reported"
        );
    }
    // A row per device and user: a shared PC is one device.
    Ok(crate::report::one_per_device(rows)
        .into_iter()
        .map(|d| (d.device_id.clone(), d))
        .collect())
}

/// The ring's status: one result per device of the ring's group.
pub async fn status<C: Credentials, A: ArtifactSource>(
    c: &IntuneClient<C, A>,
    cx: &mut CallContext,
    job: &Job<'_>,
) -> Result<RingStatus, CallError> {
    let groups: Vec<&str> = std::iter::once(job.group_id)
        .chain(job.earlier_groups.iter().map(String::as_str))
        .collect();
    let mut devices_cx = branch(cx);
    let mut report_cx = branch(cx);
    // Each branch is boxed: side by side their states would make this future tens of KiB.
    let ((group_contexts, memberships), managed, reported) = tokio::join!(
        Box::pin(in_parallel(cx, groups, |mut own, group| async move {
            let result = members(c, &mut own, group).await;
            (own, result)
        })),
        Box::pin(managed_devices(c, &mut devices_cx)),
        Box::pin(report(c, &mut report_cx, job)),
    );
    for own in group_contexts.into_iter().chain([devices_cx, report_cx]) {
        merge(cx, own);
    }
    cx.calls.sort_by_key(|call| call.at);
    let memberships = memberships?;
    let managed = managed?;
    let reported = reported?;

    let mut groups = memberships.into_iter();
    let ring = groups.next().unwrap_or_default();
    let earlier: HashSet<String> = groups.flatten().flatten().collect();
    let mut status = RingStatus::default();
    let mut seen = HashSet::new();
    for member in ring {
        let Some(entra) = member else {
            status.missing += 1;
            continue;
        };
        if !seen.insert(entra.clone()) {
            continue;
        }
        if earlier.contains(&entra) {
            status.earlier_ring_devices += 1;
            continue;
        }
        let Some(device) = managed.get(&entra) else {
            status.missing += 1;
            continue;
        };
        let result = match reported.get(&device.id) {
            Some(row) => DeviceResult {
                last_contact: device.last_sync,
                ..row.clone()
            },
            None => DeviceResult {
                device_id: device.id.clone(),
                platform: Kind::Windows,
                outcome: InstallOutcome::NotReported,
                site_class: job.deployment.submission.evidence.rollout.site_class,
                at: job.now,
                last_contact: device.last_sync,
            },
        };
        status.devices.push(result);
    }
    status.devices.sort_by(|a, b| a.device_id.cmp(&b.device_id));
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_states_map_to_outcomes() {
        assert_eq!(outcome(&json!(1)), InstallOutcome::Installed);
        assert_eq!(outcome(&json!("failed")), InstallOutcome::Failed);
        assert_eq!(outcome(&json!(4)), InstallOutcome::Failed);
        assert_eq!(outcome(&json!(-1)), InstallOutcome::NotApplicable);
        assert_eq!(outcome(&json!(5)), InstallOutcome::Pending);
        assert_eq!(outcome(&json!(99)), InstallOutcome::Pending);
    }
}
