//! Publish and rollback on Graph (status: `status.rs`).

use base64::Engine as _;
use eucora_connector::CallError;
use eucora_connector::ErrorClass;
use eucora_connector::artifact::ArtifactSource;
use eucora_connector::credentials::Credentials;
use eucora_connector::platform::{CallContext, Job, percent_encode};
use eucora_domain::evidence::{DetectionKind, RollbackStrategy, RunAs};
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::IntuneClient;
use crate::intunewin::Package;
use crate::model::{ContentFile, Id, Listing, MobileApp};
use crate::upload::{Target, is_pending, renew_deadline, settle};

const APPS: &str = "/v1.0/deviceAppManagement/mobileApps";

fn display_name(job: &Job<'_>) -> String {
    let app = &job.deployment.submission.app;
    format!("{} {}", app.name, app.version)
}

/// The note that marks an app as this deployment's (the correlation id makes it unique).
fn marker(job: &Job<'_>) -> String {
    format!("eucora:{}", job.deployment.correlation_id())
}

/// Whether an app's notes carry the marker: the whole notes, or one whole line of them (so
/// `eucora:CHG1` is not found in `eucora:CHG12`).
pub(crate) fn has_marker(notes: &str, marker: &str) -> bool {
    notes.trim() == marker || notes.lines().any(|line| line.trim() == marker)
}

pub(crate) fn quote(s: &str) -> String {
    s.replace('\'', "''")
}

/// Finds the app this deployment created earlier, if any (Graph does not refuse duplicates, so
/// the connector must look before it creates).
pub(crate) async fn find_app<C: Credentials, A: ArtifactSource>(
    c: &IntuneClient<C, A>,
    cx: &mut CallContext,
    job: &Job<'_>,
) -> Result<Option<MobileApp>, CallError> {
    let filter = format!("displayName eq '{}'", quote(&display_name(job)));
    let mut url = format!("{APPS}?$filter={}", percent_encode(&filter));
    loop {
        let page: Listing<MobileApp> = c
            .graph(cx, "find_app", Method::GET, &url, None, Value::Null)
            .await?
            .json("find_app")?;
        if let Some(app) = page.value.into_iter().find(|a| {
            a.notes
                .as_deref()
                .is_some_and(|n| has_marker(n, &marker(job)))
        }) {
            return Ok(Some(app));
        }
        match page.next_link {
            Some(next) => url = next,
            None => return Ok(None),
        }
    }
}

fn detection_rule(job: &Job<'_>) -> Value {
    let d = &job.artifact.detection;
    match d.kind {
        DetectionKind::Registry => json!({
            "@odata.type": "#microsoft.graph.win32LobAppRegistryRule", "ruleType": "detection",
            "check32BitOn64System": false, "keyPath": d.value, "valueName": null, "operationType": "exists" }),
        DetectionKind::ProductCode => json!({
            "@odata.type": "#microsoft.graph.win32LobAppProductCodeRule", "ruleType": "detection",
            "productCode": d.value, "productVersionOperator": "notConfigured" }),
        DetectionKind::Script => json!({
            "@odata.type": "#microsoft.graph.win32LobAppPowerShellScriptRule", "ruleType": "detection",
            "scriptContent": base64::engine::general_purpose::STANDARD.encode(d.value.as_bytes()),
            "enforceSignatureCheck": false, "runAs32Bit": false, "operationType": "notConfigured" }),
        _ => {
            let (path, file) = d.value.rsplit_once('\\').unwrap_or(("", d.value.as_str()));
            json!({
                "@odata.type": "#microsoft.graph.win32LobAppFileSystemRule", "ruleType": "detection",
                "path": path, "fileOrFolderName": file, "check32BitOn64System": false, "operationType": "exists" })
        }
    }
}

fn new_app(job: &Job<'_>, package: &Package) -> Value {
    let s = &job.deployment.submission;
    let run_as = match s.evidence.installation.run_as {
        RunAs::User => "user",
        _ => "system",
    };
    json!({
        "@odata.type": "#microsoft.graph.win32LobApp",
        "displayName": display_name(job),
        "description": format!("{} {} by {}, published by EUCORA (deployment {}).", s.app.name, s.app.version, s.app.vendor, job.deployment.id),
        "publisher": s.app.vendor,
        "notes": marker(job),
        "fileName": job.artifact.file_name,
        // The installer's path inside the package, as Detection.xml names it.
        "setupFilePath": package.setup_file,
        "installCommandLine": job.artifact.install_command,
        "uninstallCommandLine": job.artifact.uninstall_command,
        "applicableArchitectures": "x64",
        "minimumSupportedWindowsRelease": "1607",
        "rules": [detection_rule(job)],
        "installExperience": { "runAsAccount": run_as, "deviceRestartBehavior": "basedOnReturnCode" },
        "returnCodes": [
            { "returnCode": 0, "type": "success" }, { "returnCode": 1707, "type": "success" },
            { "returnCode": 3010, "type": "softReboot" }, { "returnCode": 1641, "type": "hardReboot" },
            { "returnCode": 1618, "type": "retry" }
        ]
    })
}

/// The latest content version an earlier attempt left behind, and its file.
enum Latest {
    None,
    Version(String),
    File(String, ContentFile),
}

/// Looks at the latest content version (the platform's state is the progress).
async fn latest<C: Credentials, A: ArtifactSource>(
    c: &IntuneClient<C, A>,
    cx: &mut CallContext,
    base: &str,
    ids: &Value,
) -> Result<Latest, CallError> {
    let versions: Listing<Id> = c
        .graph(
            cx,
            "list_content_versions",
            Method::GET,
            base,
            None,
            ids.clone(),
        )
        .await?
        .json("list_content_versions")?;
    // Content version ids count up from 1.
    let Some(cv) = versions
        .value
        .into_iter()
        .max_by_key(|v| (v.id.parse::<u64>().unwrap_or(0), v.id.clone()))
    else {
        return Ok(Latest::None);
    };
    let files: Listing<ContentFile> = c
        .graph(
            cx,
            "list_content_files",
            Method::GET,
            &format!("{base}/{}/files", cv.id),
            None,
            ids.clone(),
        )
        .await?
        .json("list_content_files")?;
    Ok(match files.value.into_iter().last() {
        Some(f) => Latest::File(cv.id, f),
        None => Latest::Version(cv.id),
    })
}

async fn create_version<C: Credentials, A: ArtifactSource>(
    c: &IntuneClient<C, A>,
    cx: &mut CallContext,
    base: &str,
    ids: &Value,
) -> Result<String, CallError> {
    let cv: Id = c
        .graph(
            cx,
            "create_content_version",
            Method::POST,
            base,
            Some(&json!({})),
            ids.clone(),
        )
        .await?
        .json("create_content_version")?;
    Ok(cv.id)
}

async fn create_file<C: Credentials, A: ArtifactSource>(
    c: &IntuneClient<C, A>,
    cx: &mut CallContext,
    job: &Job<'_>,
    package: &Package,
    base: &str,
    cv: &str,
    ids: &Value,
) -> Result<ContentFile, CallError> {
    c.graph(
        cx,
        "create_content_file",
        Method::POST,
        &format!("{base}/{cv}/files"),
        Some(&json!({
            "@odata.type": "#microsoft.graph.mobileAppContentFile",
            "name": job.artifact.file_name,
            "size": package.unencrypted_size,
            "sizeEncrypted": package.content.size,
            "manifest": null,
            "isDependency": false
        })),
        ids.clone(),
    )
    .await?
    .json("create_content_file")
}

/// A failed step of the upload: permanent, naming Intune's state.
fn step_failed(op: &str, state: &str, what: &str) -> CallError {
    CallError {
        class: ErrorClass::Permanent,
        operation: op.to_owned(),
        status: None,
        code: state.to_owned(),
        message: format!("Intune reported {state}: {what}"),
        retry_after: None,
    }
}

/// The committed file is the one uploaded: committed, with the sizes sent.
fn check_committed(file: &ContentFile, package: &Package) -> Result<(), CallError> {
    let problem = if file.is_committed == Some(false) {
        Some("it is not committed (isCommitted false)".to_owned())
    } else if file.size_encrypted != Some(package.content.size) {
        Some(format!(
            "sizeEncrypted is {:?}, {} bytes were uploaded",
            file.size_encrypted, package.content.size
        ))
    } else if file.size != Some(package.unencrypted_size) {
        Some(format!(
            "size is {:?}, the package says {}",
            file.size, package.unencrypted_size
        ))
    } else {
        None
    };
    match problem {
        Some(why) => Err(CallError::invalid_payload(
            "await_commit",
            "INTUNE_COMMITTED_FILE_MISMATCH",
            format!(
                "the committed content file {} is not the upload: {why}",
                file.id
            ),
        )),
        None => Ok(()),
    }
}

/// Creates (or resumes) the content version and its file, uploads the package's encrypted file,
/// commits it with the package's encryption information, and sets the committed version.
/// A content version whose file is still being processed is waited on (across invocations),
/// never replaced by a new one.
async fn upload_content<C: Credentials, A: ArtifactSource>(
    c: &IntuneClient<C, A>,
    cx: &mut CallContext,
    job: &Job<'_>,
    package: &Package,
    app_id: &str,
) -> Result<String, CallError> {
    let base = format!("{APPS}/{app_id}/microsoft.graph.win32LobApp/contentVersions");
    let ids = json!({ "app_id": app_id });
    let (cv, mut file, mut fresh) = match latest(c, cx, &base, &ids).await? {
        Latest::File(cv, f)
            if !matches!(
                f.upload_state.as_str(),
                "azureStorageUriRequestFailed" | "azureStorageUriRequestTimedOut"
            ) =>
        {
            (cv, f, false)
        }
        Latest::Version(cv) => {
            let f = create_file(c, cx, job, package, &base, &cv, &ids).await?;
            (cv, f, true)
        }
        // Nothing yet, or Intune could not give the last file storage: a new content version.
        _ => {
            let cv = create_version(c, cx, &base, &ids).await?;
            let f = create_file(c, cx, job, package, &base, &cv, &ids).await?;
            (cv, f, true)
        }
    };
    let path = format!("{base}/{cv}/files/{}", file.id);
    let ids = json!({ "app_id": app_id, "content_version": cv, "file_id": file.id });
    let mut committed = false;
    // Each pass moves the file on one step; a few are enough for any path through its states.
    for _ in 0..6 {
        if is_pending(&file.upload_state) {
            file = settle(c, cx, "await_upload_state", &path, &ids).await?;
            continue;
        }
        match file.upload_state.as_str() {
            "azureStorageUriRequestSuccess" | "azureStorageUriRenewalSuccess" if !committed => {
                let Some(uri) = file.azure_storage_uri.clone() else {
                    return Err(CallError::no_answer(
                        "await_storage_uri",
                        "no azureStorageUri",
                    ));
                };
                let mut target = Target {
                    path: path.clone(),
                    ids: ids.clone(),
                    renew_at: renew_deadline(
                        &c.cfg,
                        cx,
                        file.azure_storage_uri_expiration_date_time.as_deref(),
                        fresh,
                    ),
                    uri,
                };
                crate::upload::upload(c, cx, job, package, &mut target).await?;
                c.graph(
                    cx,
                    "commit_file",
                    Method::POST,
                    &format!("{path}/commit"),
                    Some(&json!({ "fileEncryptionInfo": package.encryption_info })),
                    ids.clone(),
                )
                .await?;
                committed = true;
                file = settle(c, cx, "await_commit", &path, &ids).await?;
            }
            "azureStorageUriRenewalFailed" | "azureStorageUriRenewalTimedOut" => {
                let mut target = Target {
                    path: path.clone(),
                    ids: ids.clone(),
                    uri: file.azure_storage_uri.clone().unwrap_or_default(),
                    renew_at: std::time::Instant::now(),
                };
                crate::upload::renew(c, cx, &mut target).await?;
                file = crate::upload::get_file(c, cx, "await_renewal", &path, &ids).await?;
                fresh = true;
            }
            "commitFileSuccess" => {
                check_committed(&file, package)?;
                return Ok(cv);
            }
            state @ ("commitFileFailed" | "commitFileTimedOut") => {
                return Err(step_failed(
                    "await_commit",
                    state,
                    "the content file was not committed; the deployment needs a person",
                ));
            }
            state => {
                return Err(step_failed(
                    "await_upload_state",
                    state,
                    "the content file cannot be uploaded",
                ));
            }
        }
    }
    Err(CallError::resume_later(
        "await_upload_state",
        format!("the content file is {}", file.upload_state),
        c.cfg.resume_after,
    ))
}

async fn await_published<C: Credentials, A: ArtifactSource>(
    c: &IntuneClient<C, A>,
    cx: &mut CallContext,
    app_id: &str,
) -> Result<(), CallError> {
    let ids = json!({ "app_id": app_id });
    for _ in 0..c.cfg.poll_attempts {
        let app: MobileApp = c
            .graph(
                cx,
                "await_published",
                Method::GET,
                &format!("{APPS}/{app_id}"),
                None,
                ids.clone(),
            )
            .await?
            .json("await_published")?;
        if app.publishing_state.as_deref() == Some("published") {
            return Ok(());
        }
        tokio::time::sleep(c.cfg.poll_interval).await;
    }
    Err(CallError::resume_later(
        "await_published",
        "the app is not published yet",
        c.cfg.resume_after,
    ))
}

/// Reads the app's assignments, sets `intent` for the ring's group (or removes it when `None`),
/// and posts the merged list (`assign` replaces every assignment).
async fn set_assignment<C: Credentials, A: ArtifactSource>(
    c: &IntuneClient<C, A>,
    cx: &mut CallContext,
    app_id: &str,
    group_id: &str,
    intent: Option<&str>,
) -> Result<(), CallError> {
    let ids = json!({ "app_id": app_id, "group_id": group_id });
    let current: Listing<Value> = c
        .graph(
            cx,
            "read_assignments",
            Method::GET,
            &format!("{APPS}/{app_id}/assignments"),
            None,
            ids.clone(),
        )
        .await?
        .json("read_assignments")?;
    let mut merged: Vec<Value> = current
        .value
        .into_iter()
        .filter(|a| a["target"]["groupId"].as_str() != Some(group_id))
        .map(|a| json!({ "@odata.type": "#microsoft.graph.mobileAppAssignment", "intent": a["intent"], "target": a["target"], "settings": a.get("settings").cloned().unwrap_or(Value::Null) }))
        .collect();
    if let Some(intent) = intent {
        merged.push(json!({
            "@odata.type": "#microsoft.graph.mobileAppAssignment",
            "intent": intent,
            "target": { "@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": group_id },
            "settings": null
        }));
    }
    c.graph(
        cx,
        "assign",
        Method::POST,
        &format!("{APPS}/{app_id}/assign"),
        Some(&json!({ "mobileAppAssignments": merged })),
        ids,
    )
    .await?;
    Ok(())
}

/// The package's layout. When it is not a readable `.intunewin`, the bytes are checked against
/// the evidence pack first: bytes other than the approved ones are that, not a broken package.
async fn read_package<C: Credentials, A: ArtifactSource>(
    c: &IntuneClient<C, A>,
    job: &Job<'_>,
) -> Result<Package, CallError> {
    let location = &job.artifact.location;
    match crate::intunewin::inspect(&c.artifacts, location, c.cfg.max_package_bytes).await {
        Err(e) if e.code == "INTUNEWIN_INVALID" => {
            eucora_connector::artifact::digest(
                &c.artifacts,
                location,
                job.artifact.sha256.as_str(),
                false,
            )
            .await?;
            Err(e)
        }
        other => other,
    }
}

pub async fn publish<C: Credentials, A: ArtifactSource>(
    c: &IntuneClient<C, A>,
    cx: &mut CallContext,
    job: &Job<'_>,
) -> Result<Value, CallError> {
    if job.artifact.install_command.is_none() || job.artifact.uninstall_command.is_none() {
        return Err(CallError::invalid_payload(
            "create_app",
            "INTUNE_INVALID_PAYLOAD",
            "a Win32 app needs install and uninstall command lines",
        ));
    }
    let found = find_app(c, cx, job).await?;
    let needs_content = found.as_ref().is_none_or(|app| {
        app.publishing_state.as_deref() != Some("published")
            && app
                .committed_content_version
                .as_deref()
                .is_none_or(str::is_empty)
    });
    // The package's layout (range reads), before the app is created: its setup file and size.
    let package = if needs_content {
        Some(read_package(c, job).await?)
    } else {
        None
    };
    let no_package = || CallError::no_answer("read_intunewin", "the package was not read");
    let app = match found {
        Some(app) => app,
        None => {
            let package = package.as_ref().ok_or_else(no_package)?;
            c.graph(
                cx,
                "create_app",
                Method::POST,
                APPS,
                Some(&new_app(job, package)),
                Value::Null,
            )
            .await?
            .json("create_app")?
        }
    };
    let mut ids = json!({ "app_id": app.id, "group_id": job.group_id });
    if app.publishing_state.as_deref() != Some("published") {
        match &app.committed_content_version {
            // An earlier attempt got as far as committing: only publishing is left to wait for.
            Some(cv) if !cv.is_empty() => ids["content_version"] = json!(cv),
            _ => {
                let package = package.as_ref().ok_or_else(no_package)?;
                let cv = upload_content(c, cx, job, package, &app.id).await?;
                c.graph(
                    cx,
                    "set_committed_version",
                    Method::PATCH,
                    &format!("{APPS}/{}", app.id),
                    Some(&json!({
                        "@odata.type": "#microsoft.graph.win32LobApp", "committedContentVersion": cv
                    })),
                    json!({ "app_id": app.id, "content_version": cv }),
                )
                .await?;
                ids["content_version"] = json!(cv);
            }
        }
        await_published(c, cx, &app.id).await?;
    }
    // A halt while the package was uploaded stops here: no device gets it.
    cx.checkpoint("assign").await?;
    set_assignment(c, cx, &app.id, job.group_id, Some("required")).await?;
    Ok(ids)
}

pub async fn rollback<C: Credentials, A: ArtifactSource>(
    c: &IntuneClient<C, A>,
    cx: &mut CallContext,
    job: &Job<'_>,
) -> Result<Value, CallError> {
    let Some(app) = find_app(c, cx, job).await? else {
        return Ok(json!({ "rolled_back": false, "reason": "the app was never created" }));
    };
    let strategy = job.deployment.submission.evidence.rollback.strategy;
    let intent = match strategy {
        RollbackStrategy::Uninstall => Some("uninstall"),
        // Re-pin: this version leaves the group, so the previous version's assignment applies.
        RollbackStrategy::RepinPrevious => None,
    };
    set_assignment(c, cx, &app.id, job.group_id, intent).await?;
    Ok(json!({ "app_id": app.id, "group_id": job.group_id, "strategy": strategy }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_is_the_whole_notes_or_a_whole_line() {
        assert!(has_marker("eucora:CHG1", "eucora:CHG1"));
        assert!(has_marker("Packaged by IT\neucora:CHG1\n", "eucora:CHG1"));
        assert!(!has_marker("eucora:CHG12", "eucora:CHG1"));
        assert!(!has_marker("see eucora:CHG1 too", "eucora:CHG1"));
    }

    fn package() -> Package {
        Package {
            size: 1000,
            setup_file: "setup.exe".into(),
            file_name: "IntunePackage.intunewin".into(),
            unencrypted_size: 900,
            encryption_info: json!({}),
            content: crate::intunewin::ContentEntry {
                data_start: 80,
                compressed_size: 912,
                size: 912,
                deflated: false,
            },
        }
    }

    fn committed(size: u64, encrypted: u64, is: bool) -> ContentFile {
        serde_json::from_value(json!({
            "id": "f1", "uploadState": "commitFileSuccess", "size": size,
            "sizeEncrypted": encrypted, "isCommitted": is
        }))
        .unwrap()
    }

    #[test]
    fn the_committed_file_must_be_the_upload() {
        assert!(check_committed(&committed(900, 912, true), &package()).is_ok());
        for wrong in [
            committed(900, 911, true),
            committed(899, 912, true),
            committed(900, 912, false),
        ] {
            let e = check_committed(&wrong, &package()).unwrap_err();
            assert_eq!(
                (e.class, e.code.as_str()),
                (ErrorClass::Permanent, "INTUNE_COMMITTED_FILE_MISMATCH")
            );
        }
    }
}
