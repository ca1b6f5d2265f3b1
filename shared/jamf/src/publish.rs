//! Publish and rollback on Jamf Pro.

use eucora_connector::CallError;
use eucora_connector::artifact::ArtifactSource;
use eucora_connector::credentials::Credentials;
use eucora_connector::platform::{CallContext, Job, percent_encode};
use eucora_domain::evidence::RollbackStrategy;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::client::{JamfClient, Payload};
use crate::xml::{
    CategoryDoc, General, GroupsDoc, IdRef, MaintenanceDoc, NameRef, PackageConfigurationDoc,
    PackageRef, PackagesDoc, PolicyAnswer, PolicyDoc, ScopeDoc,
};

/// The category every policy EUCORA manages carries.
pub const CATEGORY: &str = "control-plane-auto";

pub(crate) fn package_name(job: &Job<'_>) -> String {
    let app = &job.deployment.submission.app;
    format!("{} {}", app.name, app.version)
}

fn policy_name(job: &Job<'_>) -> String {
    format!(
        "EUCORA {} [{}]",
        package_name(job),
        job.deployment.correlation_id()
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Packages {
    results: Vec<Package>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Package {
    id: Value,
    /// Set once the file is uploaded.
    #[serde(default)]
    hash_value: Option<String>,
}

fn id_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The package's id and whether its file is uploaded.
async fn find_package<C: Credentials, A: ArtifactSource>(
    c: &JamfClient<C, A>,
    cx: &mut CallContext,
    name: &str,
) -> Result<Option<(String, bool)>, CallError> {
    let filter = format!("packageName==\"{}\"", name.replace('"', "\\\""));
    let path = format!(
        "/api/v1/packages?page=0&page-size=1&filter={}",
        percent_encode(&filter)
    );
    let found: Packages = c
        .call(
            cx,
            "find_package",
            Method::GET,
            &path,
            || Payload::None,
            Value::Null,
        )
        .await?
        .json("find_package")?;
    Ok(found.results.first().map(|p| {
        (
            id_text(&p.id),
            p.hash_value.as_deref().is_some_and(|h| !h.is_empty()),
        )
    }))
}

/// Finds or creates the package, and uploads its bytes unless they are there already (an earlier
/// attempt may have created the package and failed before the upload).
async fn package<C: Credentials, A: ArtifactSource>(
    c: &JamfClient<C, A>,
    cx: &mut CallContext,
    job: &Job<'_>,
) -> Result<String, CallError> {
    let name = package_name(job);
    let (id, uploaded) = match find_package(c, cx, &name).await? {
        Some(found) => found,
        None => {
            let s = &job.deployment.submission;
            let body = json!({
                "packageName": name,
                "fileName": job.artifact.file_name,
                "categoryId": "-1",
                "priority": 10,
                "fillUserTemplate": false,
                "rebootRequired": !matches!(s.evidence.installation.reboot, eucora_domain::evidence::Reboot::None),
                "osInstall": false,
                "suppressUpdates": false,
                "suppressFromDock": false,
                "suppressEula": false,
                "suppressRegistration": false,
                "notes": format!("eucora:{}", job.deployment.correlation_id()),
            });
            match c
                .call(
                    cx,
                    "create_package",
                    Method::POST,
                    "/api/v1/packages",
                    || Payload::Json(body.clone()),
                    Value::Null,
                )
                .await
            {
                Ok(a) => (id_text(&a.json::<Value>("create_package")?["id"]), false),
                // Created meanwhile (or by an earlier attempt whose answer was lost): use it.
                Err(e) if e.code == "DUPLICATE_FIELD" => {
                    find_package(c, cx, &name).await?.ok_or(e)?
                }
                Err(e) => return Err(e),
            }
        }
    };
    if !uploaded {
        let bytes = c
            .artifacts
            .fetch(&job.artifact.location, job.artifact.sha256.as_str())
            .await?;
        let file = job.artifact.file_name.clone();
        c.call(
            cx,
            "upload_package",
            Method::POST,
            &format!("/api/v1/packages/{id}/upload"),
            || Payload::File {
                name: file.clone(),
                bytes: bytes.clone(),
            },
            json!({ "package_id": id }),
        )
        .await?;
    }
    Ok(id)
}

/// Creates the `control-plane-auto` category (a server that never had EUCORA's policies lacks it).
async fn create_category<C: Credentials, A: ArtifactSource>(
    c: &JamfClient<C, A>,
    cx: &mut CallContext,
) -> Result<(), CallError> {
    let xml = to_xml(
        "create_category",
        &CategoryDoc {
            name: CATEGORY.to_owned(),
            priority: 9,
        },
    )?;
    match c
        .call(
            cx,
            "create_category",
            Method::POST,
            "/JSSResource/categories/id/0",
            || Payload::Xml(xml.clone()),
            Value::Null,
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.status == Some(409) => Ok(()),
        Err(e) => Err(e),
    }
}

/// A document to send, written by quick-xml.
fn to_xml<T: serde::Serialize>(op: &str, doc: &T) -> Result<String, CallError> {
    crate::xml::write(doc).map_err(|e| {
        CallError::invalid_payload(op, "JAMF_INVALID_PAYLOAD", format!("unwritable XML: {e}"))
    })
}

fn policy_xml(job: &Job<'_>, package_id: &str) -> Result<String, CallError> {
    let s = &job.deployment.submission;
    let doc = PolicyDoc {
        general: Some(General {
            name: policy_name(job),
            enabled: true,
            trigger_checkin: true,
            frequency: "Once per computer".to_owned(),
            category: NameRef {
                name: CATEGORY.to_owned(),
            },
            notes: format!(
                "eucora-pin: {} {} package {package_id} correlation {}",
                s.app.name,
                s.app.version,
                job.deployment.correlation_id()
            ),
        }),
        scope: Some(scope(&[job.group_id.to_owned()])),
        package_configuration: Some(PackageConfigurationDoc {
            packages: PackagesDoc {
                package: vec![PackageRef {
                    id: package_id.to_owned(),
                    action: "Install".to_owned(),
                }],
            },
        }),
        // Inventory right after the install, so the package's receipt reaches the Jamf Pro
        // API's inventory at once (status reads receipts in bulk) instead of a day later.
        maintenance: Some(MaintenanceDoc { recon: true }),
    };
    to_xml("create_policy", &doc)
}

fn scope(groups: &[String]) -> ScopeDoc {
    ScopeDoc {
        computer_groups: GroupsDoc {
            computer_group: groups.iter().map(|id| IdRef { id: id.clone() }).collect(),
        },
    }
}

/// The policy's id and document, if it exists.
pub(crate) async fn find_policy<C: Credentials, A: ArtifactSource>(
    c: &JamfClient<C, A>,
    cx: &mut CallContext,
    job: &Job<'_>,
) -> Result<Option<(String, PolicyAnswer)>, CallError> {
    let path = format!(
        "/JSSResource/policies/name/{}",
        percent_encode(&policy_name(job))
    );
    match c
        .call(
            cx,
            "find_policy",
            Method::GET,
            &path,
            || Payload::None,
            Value::Null,
        )
        .await
    {
        Ok(a) => {
            let policy: PolicyAnswer = a.xml("find_policy")?;
            Ok(policy.policy_id().map(|id| (id, policy)))
        }
        Err(e) if e.status == Some(404) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn set_scope<C: Credentials, A: ArtifactSource>(
    c: &JamfClient<C, A>,
    cx: &mut CallContext,
    policy_id: &str,
    groups: &[String],
) -> Result<(), CallError> {
    let xml = to_xml(
        "update_policy_scope",
        &PolicyDoc {
            scope: Some(scope(groups)),
            ..PolicyDoc::default()
        },
    )?;
    c.call(
        cx,
        "update_policy_scope",
        Method::PUT,
        &format!("/JSSResource/policies/id/{policy_id}"),
        || Payload::Xml(xml.clone()),
        json!({ "policy_id": policy_id }),
    )
    .await?;
    Ok(())
}

async fn create_policy<C: Credentials, A: ArtifactSource>(
    c: &JamfClient<C, A>,
    cx: &mut CallContext,
    job: &Job<'_>,
    package_id: &str,
) -> Result<(String, Option<PolicyAnswer>), CallError> {
    let xml = policy_xml(job, package_id)?;
    let ids = json!({ "package_id": package_id });
    let mut created = c
        .call(
            cx,
            "create_policy",
            Method::POST,
            "/JSSResource/policies/id/0",
            || Payload::Xml(xml.clone()),
            ids.clone(),
        )
        .await;
    if matches!(&created, Err(e) if e.status == Some(409) && e.message.to_ascii_lowercase().contains("category"))
    {
        create_category(c, cx).await?;
        created = c
            .call(
                cx,
                "create_policy",
                Method::POST,
                "/JSSResource/policies/id/0",
                || Payload::Xml(xml.clone()),
                ids,
            )
            .await;
    }
    match created {
        Ok(a) => Ok((
            a.xml::<PolicyAnswer>("create_policy")?
                .policy_id()
                .ok_or_else(|| {
                    CallError::no_answer("create_policy", "no policy id in the answer")
                })?,
            None,
        )),
        // Duplicate name: an earlier attempt created it.
        Err(e) if e.status == Some(409) => find_policy(c, cx, job)
            .await?
            .map(|(id, policy)| (id, Some(policy)))
            .ok_or(e),
        Err(e) => Err(e),
    }
}

/// Checks what Jamf would refuse, before calling (the specification's `JAMF_INVALID_PAYLOAD`).
fn validate(job: &Job<'_>) -> Result<(), CallError> {
    let invalid = |why: String| {
        Err(CallError::invalid_payload(
            "validate",
            "JAMF_INVALID_PAYLOAD",
            why,
        ))
    };
    if job.group_id.is_empty() || !job.group_id.bytes().all(|b| b.is_ascii_digit()) {
        return invalid(format!(
            "the ring's smart group id must be a number, got {:?}",
            job.group_id
        ));
    }
    let ext = std::path::Path::new(&job.artifact.file_name)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if !matches!(ext.as_deref(), Some("pkg" | "dmg")) {
        return invalid(format!(
            "{} is not a .pkg or .dmg package",
            job.artifact.file_name
        ));
    }
    if policy_name(job).chars().count() > 255 {
        return invalid("the policy name would exceed 255 characters".into());
    }
    Ok(())
}

pub async fn publish<C: Credentials, A: ArtifactSource>(
    c: &JamfClient<C, A>,
    cx: &mut CallContext,
    job: &Job<'_>,
) -> Result<Value, CallError> {
    validate(job)?;
    let package_id = package(c, cx, job).await?;
    let (policy_id, existing) = match find_policy(c, cx, job).await? {
        Some((id, policy)) => (id, Some(policy)),
        None => create_policy(c, cx, job, &package_id).await?,
    };
    if let Some(policy) = existing {
        let mut groups = policy.scope_group_ids();
        if !groups.iter().any(|g| g == job.group_id) {
            groups.push(job.group_id.to_owned());
            set_scope(c, cx, &policy_id, &groups).await?;
        }
    }
    Ok(json!({ "package_id": package_id, "policy_id": policy_id, "group_id": job.group_id }))
}

pub async fn rollback<C: Credentials, A: ArtifactSource>(
    c: &JamfClient<C, A>,
    cx: &mut CallContext,
    job: &Job<'_>,
) -> Result<Value, CallError> {
    let Some((policy_id, policy)) = find_policy(c, cx, job).await? else {
        return Ok(json!({ "rolled_back": false, "reason": "the policy was never created" }));
    };
    let strategy = job.deployment.submission.evidence.rollback.strategy;
    match strategy {
        RollbackStrategy::Uninstall => {
            let body = to_xml(
                "rollback_uninstall",
                &PolicyDoc {
                    package_configuration: Some(PackageConfigurationDoc {
                        packages: PackagesDoc {
                            package: policy
                                .package_ids()
                                .into_iter()
                                .map(|id| PackageRef {
                                    id,
                                    action: "Uninstall".to_owned(),
                                })
                                .collect(),
                        },
                    }),
                    ..PolicyDoc::default()
                },
            )?;
            c.call(
                cx,
                "rollback_uninstall",
                Method::PUT,
                &format!("/JSSResource/policies/id/{policy_id}"),
                || Payload::Xml(body.clone()),
                json!({ "policy_id": policy_id }),
            )
            .await?;
        }
        RollbackStrategy::RepinPrevious => {
            let groups: Vec<String> = policy
                .scope_group_ids()
                .into_iter()
                .filter(|g| g != job.group_id)
                .collect();
            set_scope(c, cx, &policy_id, &groups).await?;
        }
    }
    Ok(json!({ "policy_id": policy_id, "group_id": job.group_id, "strategy": strategy }))
}
