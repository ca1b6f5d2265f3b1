//! Publish and rollback on Graph (status: `status.rs`).

use base64::Engine as _;
use eucora_connector::CallError;
use eucora_connector::artifact::ArtifactSource;
use eucora_connector::credentials::Credentials;
use eucora_connector::platform::{CallContext, Job, percent_encode};
use eucora_domain::evidence::{DetectionKind, RollbackStrategy, RunAs};
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::IntuneClient;
use crate::model::{ContentFile, Id, ListedFile, Listing, MobileApp};

const APPS: &str = "/v1.0/deviceAppManagement/mobileApps";

fn display_name(job: &Job<'_>) -> String {
    let app = &job.deployment.submission.app;
    format!("{} {}", app.name, app.version)
}

/// The note that marks an app as this deployment's (the correlation id makes it unique).
fn marker(job: &Job<'_>) -> String {
    format!("eucora:{}", job.deployment.correlation_id())
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
        if let Some(app) = page
            .value
            .into_iter()
            .find(|a| a.notes.as_deref().is_some_and(|n| n.contains(&marker(job))))
        {
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

fn new_app(job: &Job<'_>) -> Value {
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
        "setupFilePath": job.artifact.file_name.trim_end_matches(".intunewin"),
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

/// Polls `path` until `done(state)` or the attempts run out (then a transient error: the
/// command comes back later instead of sleeping on in Lambda).
async fn poll_file<C: Credentials, A: ArtifactSource>(
    c: &IntuneClient<C, A>,
    cx: &mut CallContext,
    op: &str,
    path: &str,
    want: &str,
    ids: &Value,
) -> Result<ContentFile, CallError> {
    for _ in 0..c.cfg.poll_attempts {
        let f: ContentFile = c
            .graph(cx, op, Method::GET, path, None, ids.clone())
            .await?
            .json(op)?;
        if f.upload_state == want {
            return Ok(f);
        }
        if f.upload_state.ends_with("Failed")
            || f.upload_state.ends_with("TimedOut")
            || f.upload_state == "error"
        {
            return Err(CallError::http(
                op,
                500,
                f.upload_state,
                "Intune reported the upload step failed",
                None,
            ));
        }
        tokio::time::sleep(c.cfg.poll_interval).await;
    }
    Err(CallError::no_answer(op, format!("{want} not reached yet")))
}

/// Where an earlier attempt left the content (the platform's state is the progress).
enum Resume {
    /// Start a new content version.
    Fresh,
    /// The file exists with a storage URI: upload (again) and commit.
    Upload {
        cv: String,
        file: String,
        uri: String,
    },
    /// The file is committed (or committing): set the committed content version.
    Committed { cv: String, file: String },
}

/// Looks at the latest content version an earlier attempt left behind.
async fn resume_point<C: Credentials, A: ArtifactSource>(
    c: &IntuneClient<C, A>,
    cx: &mut CallContext,
    base: &str,
    ids: &Value,
) -> Result<Resume, CallError> {
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
    let Some(cv) = versions.value.last() else {
        return Ok(Resume::Fresh);
    };
    let files: Listing<ListedFile> = c
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
    let Some(f) = files.value.into_iter().next() else {
        return Ok(Resume::Fresh);
    };
    Ok(match (f.upload_state.as_str(), f.azure_storage_uri) {
        ("commitFileSuccess" | "commitFilePending", _) => Resume::Committed {
            cv: cv.id.clone(),
            file: f.id,
        },
        ("azureStorageUriRequestSuccess", Some(uri)) => Resume::Upload {
            cv: cv.id.clone(),
            file: f.id,
            uri,
        },
        _ => Resume::Fresh,
    })
}

/// Uploads the encrypted payload in blocks to the storage URI and commits the file.
#[allow(clippy::too_many_arguments)]
async fn upload_and_commit<C: Credentials, A: ArtifactSource>(
    c: &IntuneClient<C, A>,
    cx: &mut CallContext,
    package: &crate::intunewin::IntuneWin,
    base: &str,
    cv: &str,
    file: &str,
    uri: &str,
    app_id: &str,
) -> Result<(), CallError> {
    let mut block_ids = Vec::new();
    for (i, chunk) in package
        .encrypted
        .chunks(c.cfg.chunk_size.max(1))
        .enumerate()
    {
        let id = base64::engine::general_purpose::STANDARD.encode(format!("block-{i:08}"));
        c.storage_put(
            cx,
            "upload_block",
            &format!("{uri}&comp=block&blockid={}", percent_encode(&id)),
            chunk.to_vec(),
            true,
        )
        .await?;
        block_ids.push(id);
    }
    let list = block_ids.iter().fold(String::new(), |mut acc, b| {
        acc.push_str("<Latest>");
        acc.push_str(b);
        acc.push_str("</Latest>");
        acc
    });
    c.storage_put(
        cx,
        "commit_blocks",
        &format!("{uri}&comp=blocklist"),
        format!("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>{list}</BlockList>")
            .into_bytes(),
        false,
    )
    .await?;
    let fids = json!({ "app_id": app_id, "content_version": cv, "file_id": file });
    c.graph(
        cx,
        "commit_file",
        Method::POST,
        &format!("{base}/{cv}/files/{file}/commit"),
        Some(&json!({ "fileEncryptionInfo": package.encryption_info })),
        fids,
    )
    .await?;
    Ok(())
}

/// Creates (or resumes) the content version, uploads the `.intunewin`'s encrypted payload,
/// commits it with the package's encryption information, and sets the committed version.
async fn upload_content<C: Credentials, A: ArtifactSource>(
    c: &IntuneClient<C, A>,
    cx: &mut CallContext,
    job: &Job<'_>,
    app_id: &str,
) -> Result<Value, CallError> {
    let base = format!("{APPS}/{app_id}/microsoft.graph.win32LobApp/contentVersions");
    let ids = json!({ "app_id": app_id });
    let resume = resume_point(c, cx, &base, &ids).await?;
    let (cv, file_id) = match resume {
        Resume::Committed { cv, file } => (cv, file),
        other => {
            let package = crate::intunewin::read(
                &c.artifacts
                    .fetch(&job.artifact.location, job.artifact.sha256.as_str())
                    .await?,
            )?;
            let (cv, file, uri) = match other {
                Resume::Upload { cv, file, uri } => (cv, file, uri),
                _ => {
                    let cv: Id = c
                        .graph(
                            cx,
                            "create_content_version",
                            Method::POST,
                            &base,
                            Some(&json!({})),
                            ids.clone(),
                        )
                        .await?
                        .json("create_content_version")?;
                    let file: Id = c
                        .graph(cx, "create_content_file", Method::POST, &format!("{base}/{}/files", cv.id), Some(&json!({
                            "@odata.type": "#microsoft.graph.mobileAppContentFile",
                            "name": job.artifact.file_name, "size": package.unencrypted_size, "sizeEncrypted": package.encrypted.len(),
                            "manifest": null, "isDependency": false
                        })), ids.clone())
                        .await?
                        .json("create_content_file")?;
                    let path = format!("{base}/{}/files/{}", cv.id, file.id);
                    let fids =
                        json!({ "app_id": app_id, "content_version": cv.id, "file_id": file.id });
                    let ready = poll_file(
                        c,
                        cx,
                        "await_storage_uri",
                        &path,
                        "azureStorageUriRequestSuccess",
                        &fids,
                    )
                    .await?;
                    let uri = ready.azure_storage_uri.ok_or_else(|| {
                        CallError::no_answer("await_storage_uri", "no azureStorageUri")
                    })?;
                    (cv.id, file.id, uri)
                }
            };
            upload_and_commit(c, cx, &package, &base, &cv, &file, &uri, app_id).await?;
            (cv, file)
        }
    };
    let ids = json!({ "app_id": app_id, "content_version": cv, "file_id": file_id });
    poll_file(
        c,
        cx,
        "await_commit",
        &format!("{base}/{cv}/files/{file_id}"),
        "commitFileSuccess",
        &ids,
    )
    .await?;
    c.graph(
        cx,
        "set_committed_version",
        Method::PATCH,
        &format!("{APPS}/{app_id}"),
        Some(&json!({
            "@odata.type": "#microsoft.graph.win32LobApp", "committedContentVersion": cv
        })),
        ids.clone(),
    )
    .await?;
    Ok(ids)
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
    Err(CallError::no_answer(
        "await_published",
        "the app is not published yet",
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
    let app = match find_app(c, cx, job).await? {
        Some(app) => app,
        None => {
            let created: MobileApp = c
                .graph(
                    cx,
                    "create_app",
                    Method::POST,
                    APPS,
                    Some(&new_app(job)),
                    Value::Null,
                )
                .await?
                .json("create_app")?;
            created
        }
    };
    let mut ids = json!({ "app_id": app.id, "group_id": job.group_id });
    if app.publishing_state.as_deref() != Some("published") {
        match &app.committed_content_version {
            // An earlier attempt got as far as committing: only publishing is left to wait for.
            Some(cv) if !cv.is_empty() => ids["content_version"] = json!(cv),
            _ => {
                let uploaded = upload_content(c, cx, job, &app.id).await?;
                ids["content_version"] = uploaded["content_version"].clone();
            }
        }
        await_published(c, cx, &app.id).await?;
    }
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
