//! Publish and rollback on Jamf Pro.
//!
//! # Exactly the approved bytes
//! A package is used only when the hashes Jamf reports for its file match the evidence pack's
//! bytes: its `sha256`, and its `hashType`/`hashValue` (`SHA3_512` as Jamf Cloud computes it;
//! `SHA_512` or `MD5` as older uploaders wrote it), `sha3512` and `md5`, the digests the artifact
//! is missing computed by streaming it once. Every hash field of a package record is one a client
//! may write too (the Terraform provider and `JamfUploader` do), so on a package EUCORA did not
//! create a hash is taken for Jamf's only with a file Jamf reports (its `size`), every reported
//! hash must match, and the `sha256` decides alone only beside a `sha3512` (Jamf Pro 11.25 and
//! later compute both; an older server computes no `sha256`, so one there is anyone's claim).
//! A version's package is named `{app} {version}` with the file `{stem}-{version}{ext}` (the
//! evidence pack's file name when it names the version whole already), so no two versions share
//! a file on the distribution point. When that name, or that file name, is taken by a package
//! holding other bytes, no file, or a file Jamf has not hashed yet (an earlier rejected build, an
//! administrator's upload, `AutoPkg`), the version gets a package of its own:
//! `{app} {version} ({sha256[..12]})`, file `{stem}-{sha256[..12]}{ext}`. When that one is taken
//! too, the publish halts naming the clash. A package EUCORA created for these bytes (its note
//! says so) whose processed file Jamf hashes otherwise halts the publish
//! (`JAMF_PACKAGE_HASH_MISMATCH`): nothing is uploaded again, no other package made.
//!
//! # In bounded memory, resumed from Jamf's state
//! The file is streamed from the artifact store to `POST /api/v1/packages/{id}/upload` (see
//! [`JamfClient::upload`]). Jamf keeps nothing of an upload that did not finish, so a publish that
//! stopped finds its package again (created with a note naming the approved SHA-256 and when it
//! was created) and sends the file again only when the package does not hold it; a package
//! holding the approved bytes is never uploaded to again. Past
//! [`JamfConfig::processing_timeout`] since the package was created with no upload through
//! (every attempt stopped by an invocation's work budget or a transient failure), the publish
//! halts naming it (`JAMF_PACKAGE_NOT_UPLOADED`) instead of starting from byte 0 for ever.
//!
//! # The policy goes live only on a processed package
//! Jamf's distribution service processes a file after its upload; until then the package has no
//! hash and a Mac cannot download it. The policy is created disabled while EUCORA's package is
//! processing, and the publish hands over to a later invocation without creating anything twice:
//! [`JamfConfig::processing_recheck`] later, then a quarter of the wait so far (at most 15
//! minutes), so that a long wait costs the command's message few of the queue's receives. The
//! policy is enabled once the package's hash shows and matches. Past
//! [`JamfConfig::processing_timeout`] since EUCORA created the package, the publish halts naming
//! it (`JAMF_PACKAGE_NOT_PROCESSED`, the policy still disabled) rather than waiting for ever.
//! The policy runs once per computer at check-in, and a Mac whose install fails retries at its
//! next check-ins (`retry_event` `check-in`, `retry_attempts`).
//!
//! # Scope
//! The ring's smart group is added to the policy's targets. The scope is read whole and written
//! back whole (a `<scope>` sent replaces the stored one): exclusions stay exclusions.
//!
//! [`JamfConfig::processing_recheck`]: crate::JamfConfig::processing_recheck
//! [`JamfConfig::processing_timeout`]: crate::JamfConfig::processing_timeout

use eucora_connector::CallError;
use eucora_connector::artifact::{ArtifactSource, ArtifactStream, hex_lower};
use eucora_connector::credentials::Credentials;
use eucora_connector::platform::{CallContext, Job, percent_encode};
use eucora_domain::Timestamp;
use eucora_domain::evidence::RollbackStrategy;
use md5::Digest as _;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::client::{JamfClient, Payload};
use crate::xml::{
    CategoryDoc, General, GeneralUpdate, MaintenanceDoc, NameRef, Node, PackageConfigurationDoc,
    PackageRef, PackagesDoc, PolicyAnswer, Scope,
};

/// The category every policy EUCORA manages carries.
pub const CATEGORY: &str = "control-plane-auto";

/// What a package's file is checked against.
const RETRY_EVENT: &str = "check-in";
const FREQUENCY: &str = "Once per computer";

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

/// A package's name and its file's name on the distribution point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Names {
    pub package: String,
    pub file: String,
}

/// The file's stem and extension (with its dot).
fn split_file(file: &str) -> (&str, &str) {
    match file.rfind('.') {
        Some(dot) if dot > 0 => (&file[..dot], &file[dot..]),
        _ => (file, ""),
    }
}

/// The version's file name: the evidence pack's when it names the version, else with the version
/// added, so that no two versions share a file.
pub(crate) fn file_name(job: &Job<'_>) -> String {
    let file = &job.artifact.file_name;
    let version = &job.deployment.submission.app.version;
    let (stem, ext) = split_file(file);
    if names_version(stem, version) {
        return file.clone();
    }
    let version: String = version
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{stem}-{version}{ext}")
}

/// Whether `version` stands in `stem` whole, not as part of a longer version or number: `1.2`
/// is in `App-1.2` and `App_v1.2_universal`, not in `App-1.2.3`, `App-3.1.2` or `App-11.2`.
fn names_version(stem: &str, version: &str) -> bool {
    let stem = stem.to_lowercase();
    let version = version.to_lowercase();
    if version.is_empty() {
        return false;
    }
    let numberish = |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit());
    let mut from = 0;
    while let Some(at) = stem[from..].find(&version) {
        let start = from + at;
        let end = start + version.len();
        let mut before = stem[..start].chars().rev();
        let before_ok = match before.next() {
            // `v1.2`, standing alone.
            Some('v') => !before.next().is_some_and(char::is_alphanumeric),
            Some(c) if c.is_alphanumeric() => false,
            // `3.1.2` holds `1.2` but is another version.
            Some('.') => !numberish(before.next()),
            None | Some(_) => true,
        };
        let mut after = stem[end..].chars();
        let after_ok = match after.next() {
            Some(c) if c.is_alphanumeric() => false,
            Some('.') => !numberish(after.next()),
            None | Some(_) => true,
        };
        if before_ok && after_ok {
            return true;
        }
        from = start + stem[start..].chars().next().map_or(1, char::len_utf8);
    }
    false
}

/// The version's package, then the one of its own for when the first is taken by other bytes.
pub(crate) fn names(job: &Job<'_>) -> [Names; 2] {
    let primary = Names {
        package: package_name(job),
        file: file_name(job),
    };
    let short = job.artifact.sha256.as_str().get(..12).unwrap_or_default();
    let (stem, ext) = split_file(&primary.file);
    let unique = Names {
        package: format!("{} ({short})", primary.package),
        file: format!("{stem}-{short}{ext}"),
    };
    [primary, unique]
}

/// The note a package EUCORA creates carries: the approved bytes' SHA-256 and when it was
/// created (Jamf keeps a package's notes; a policy has none). The time is what a wait for Jamf's
/// processing is measured from, across invocations.
fn package_note(job: &Job<'_>) -> String {
    let s = &job.deployment.submission;
    format!(
        "eucora-pin: {} {} sha256:{} (created for {} at {})",
        s.app.name,
        s.app.version,
        job.artifact.sha256.as_str(),
        job.deployment.correlation_id(),
        job.now.to_rfc3339()
    )
}

/// When EUCORA created the package, from its note (`None` for a note without the time).
fn created_at(p: &PackageRecord) -> Option<Timestamp> {
    let (_, at) = p.notes.as_deref()?.rsplit_once(" at ")?;
    Timestamp::parse(at.trim().trim_end_matches(')')).ok()
}

/// Whether EUCORA created this package for these bytes (an earlier attempt that did not finish).
fn ours(p: &PackageRecord, job: &Job<'_>) -> bool {
    p.notes.as_deref().is_some_and(|n| {
        n.to_ascii_lowercase()
            .contains(&format!("sha256:{}", job.artifact.sha256.as_str()).to_ascii_lowercase())
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Packages {
    results: Vec<PackageRecord>,
}

/// A package as the Jamf Pro API answers it (only what the connector reads).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PackageRecord {
    id: Value,
    #[serde(default)]
    package_name: Option<String>,
    #[serde(default)]
    file_name: Option<String>,
    #[serde(default)]
    notes: Option<String>,
    #[serde(default)]
    hash_type: Option<String>,
    #[serde(default)]
    hash_value: Option<String>,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    sha3512: Option<String>,
    #[serde(default)]
    md5: Option<String>,
    #[serde(default)]
    size: Option<Value>,
    #[serde(default)]
    cloud_transfer_status: Option<String>,
}

impl PackageRecord {
    fn id(&self) -> String {
        id_text(&self.id)
    }

    pub(crate) fn file_name(&self) -> Option<&str> {
        self.file_name.as_deref()
    }
}

fn id_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn nonempty(v: Option<&String>) -> Option<&str> {
    v.map(|s| s.trim()).filter(|s| !s.is_empty())
}

/// A digest of the artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sha3_512,
    Sha512,
    Md5,
}

/// The artifact's digests known so far (its SHA-256 is the evidence pack's).
#[derive(Debug, Clone, Default)]
struct Digests {
    sha256: String,
    sha3_512: Option<String>,
    sha512: Option<String>,
    md5: Option<String>,
}

impl Digests {
    fn get(&self, kind: Kind) -> Option<&str> {
        match kind {
            Kind::Sha3_512 => self.sha3_512.as_deref(),
            Kind::Sha512 => self.sha512.as_deref(),
            Kind::Md5 => self.md5.as_deref(),
        }
    }
}

/// What a package holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Holds {
    /// A file Jamf processed whose hash is the approved bytes'.
    Approved,
    /// A file with other bytes (what Jamf reports of it).
    Other(String),
    /// A file Jamf has not processed yet (no hash).
    Processing,
    /// No file.
    Nothing,
}

/// Whether Jamf reports a file on the package: its `size` (Jamf writes it itself, read-only in
/// its schema, as text such as `"234KB"`; the simulator writes bytes), or a transfer under way.
fn has_file(p: &PackageRecord) -> bool {
    let sized = match &p.size {
        Some(Value::String(s)) => {
            let s = s.trim();
            let number: String = s
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            match number.parse::<f64>() {
                Ok(n) => n > 0.0,
                Err(_) => !s.is_empty(),
            }
        }
        Some(Value::Number(n)) => n.as_f64().is_some_and(|n| n > 0.0),
        _ => false,
    };
    sized || transferring(p)
}

/// Whether the cloud distribution service is still taking the file (`cloudTransferStatus`).
fn transferring(p: &PackageRecord) -> bool {
    p.cloud_transfer_status.as_deref().is_some_and(|s| {
        let s = s.trim().to_ascii_uppercase();
        s != "NOT_APPLICABLE" && s != "READY" && !s.is_empty()
    })
}

/// What a package holds, or the digests of the artifact needed to tell.
///
/// Every hash field of a package record (`sha256`, `sha3512`, `hashType`/`hashValue`, `md5`) is
/// one a client may write (`POST`/`PUT /api/v1/packages` take them; the Terraform provider and
/// `JamfUploader` write them), so a hash in a record is Jamf's own only where Jamf computed it:
/// - every hash reported must match the artifact's (one that does not is other bytes);
/// - the `sha256` alone decides only with a `sha3512` beside it (Jamf Pro 11.25 and later
///   compute both once the file is processed); alone, it is what whoever made the record wrote
///   (an older Jamf computes none), and the other hashes are checked too, their digests
///   computed from the artifact if needed;
/// - a package someone else made holds the approved bytes only with a file Jamf reports (its
///   `size`, which only Jamf writes): matching hashes on a record with no file are a claim.
///
/// EUCORA never writes hashes into its own packages (`ours`), so there any hash is Jamf's, and
/// one that matches (with none that differs) is enough.
fn holds(p: &PackageRecord, d: &Digests, ours: bool) -> Result<Holds, Vec<Kind>> {
    let same = |theirs: &str, ours: &str| theirs.trim().eq_ignore_ascii_case(ours.trim());
    let sha256 = nonempty(p.sha256.as_ref());
    let sha3512 = nonempty(p.sha3512.as_ref());
    let mut others: Vec<(String, Kind, &str)> = Vec::new();
    if let Some(value) = nonempty(p.hash_value.as_ref()) {
        let kind_name = p
            .hash_type
            .as_deref()
            .unwrap_or_default()
            .trim()
            .to_ascii_uppercase();
        let kind = match kind_name.replace('-', "_").as_str() {
            "SHA3_512" => Kind::Sha3_512,
            "SHA_512" | "SHA512" => Kind::Sha512,
            "MD5" => Kind::Md5,
            other => {
                return Ok(Holds::Other(format!(
                    "a {other} hash {value}, which EUCORA cannot check"
                )));
            }
        };
        others.push((kind_name, kind, value));
    }
    if let Some(sha3) = sha3512 {
        others.push(("SHA3_512".to_owned(), Kind::Sha3_512, sha3));
    }
    if let Some(md5) = nonempty(p.md5.as_ref()) {
        others.push(("MD5".to_owned(), Kind::Md5, md5));
    }
    if let Some(theirs) = sha256
        && !same(theirs, &d.sha256)
    {
        return Ok(Holds::Other(format!("SHA-256 {theirs}")));
    }
    let sha256_decides = sha256.is_some() && (ours || sha3512.is_some());
    let mut compared = sha256_decides;
    let mut needed = Vec::new();
    for (label, kind, theirs) in &others {
        match d.get(*kind) {
            Some(mine) if !same(theirs, mine) => {
                return Ok(Holds::Other(format!("{label} {theirs}")));
            }
            Some(_) => compared = true,
            None => {
                if !needed.contains(kind) {
                    needed.push(*kind);
                }
            }
        }
    }
    // Someone else's record: every hash it reports is checked, unless Jamf's own SHA-256
    // decides. EUCORA's own: one hash of Jamf's that matches is enough.
    let enough = if ours { compared } else { sha256_decides };
    if !needed.is_empty() && !enough {
        return Err(needed);
    }
    if sha256.is_some() || !others.is_empty() {
        return Ok(if ours || has_file(p) {
            Holds::Approved
        } else {
            // Hashes written into a record that holds no file.
            Holds::Nothing
        });
    }
    Ok(if has_file(p) {
        Holds::Processing
    } else {
        Holds::Nothing
    })
}

/// The package this publish uses.
#[derive(Debug, Clone)]
struct Resolved {
    id: String,
    /// Its name and its file's name as Jamf has them.
    names: Names,
    /// Its file is processed and holds the approved bytes.
    ready: bool,
    /// When EUCORA created it (its note), for a wait on Jamf's processing.
    created_at: Option<Timestamp>,
    /// Its `cloudTransferStatus`, for the record of a wait.
    transfer_status: String,
}

impl Resolved {
    fn of(p: &PackageRecord, names: &Names, ready: bool) -> Resolved {
        let actual = |v: Option<&String>, fallback: &str| {
            nonempty(v).map_or_else(|| fallback.to_owned(), str::to_owned)
        };
        Resolved {
            id: p.id(),
            names: Names {
                package: actual(p.package_name.as_ref(), &names.package),
                file: actual(p.file_name.as_ref(), &names.file),
            },
            ready,
            created_at: created_at(p),
            transfer_status: p
                .cloud_transfer_status
                .clone()
                .unwrap_or_else(|| "unknown".to_owned()),
        }
    }
}

/// Reads the whole artifact once to compute the digests Jamf reports, checking it is the
/// approved bytes on the way.
async fn compute<C: Credentials, A: ArtifactSource>(
    c: &JamfClient<C, A>,
    cx: &CallContext,
    job: &Job<'_>,
    kinds: &[Kind],
    d: &mut Digests,
) -> Result<(), CallError> {
    if cx.out_of_time() {
        return Err(CallError::resume_later(
            "digest_artifact",
            "the work budget is spent before reading the package to compare it with Jamf's",
            std::time::Duration::ZERO,
        ));
    }
    let mut stream = ArtifactStream::open(
        &c.artifacts,
        &job.artifact.location,
        eucora_connector::artifact::DIGEST_CHUNK,
        kinds.contains(&Kind::Sha512),
    )
    .await?;
    let mut sha3 = kinds.contains(&Kind::Sha3_512).then(sha3::Sha3_512::new);
    let mut md5 = kinds.contains(&Kind::Md5).then(md5::Md5::new);
    while let Some(chunk) = stream.next().await? {
        if let Some(sha3) = sha3.as_mut() {
            sha3::Digest::update(sha3, &chunk);
        }
        if let Some(md5) = md5.as_mut() {
            md5.update(&chunk);
        }
    }
    let verified = stream.finish_verified(job.artifact.sha256.as_str())?;
    if let Some(sha3) = sha3 {
        d.sha3_512 = Some(hex_lower(&sha3::Digest::finalize(sha3)));
    }
    if let Some(md5) = md5 {
        d.md5 = Some(hex_lower(&md5.finalize()));
    }
    if kinds.contains(&Kind::Sha512) {
        d.sha512 = verified.sha512;
    }
    Ok(())
}

/// What a package holds, computing the artifact's matching digests (in one read) when needed.
async fn check<C: Credentials, A: ArtifactSource>(
    c: &JamfClient<C, A>,
    cx: &CallContext,
    job: &Job<'_>,
    p: &PackageRecord,
    d: &mut Digests,
) -> Result<Holds, CallError> {
    let ours = ours(p, job);
    match holds(p, d, ours) {
        Ok(h) => Ok(h),
        Err(kinds) => {
            compute(c, cx, job, &kinds, d).await?;
            holds(p, d, ours).map_err(|kinds| {
                CallError::no_answer(
                    "digest_artifact",
                    format!("the artifact's {kinds:?} digests could not be computed"),
                )
            })
        }
    }
}

/// The packages named `names.package` or holding the file `names.file` (Jamf compares without
/// regard to case, and `*` is a wildcard there: matches are checked here again).
async fn find_packages<C: Credentials, A: ArtifactSource>(
    c: &JamfClient<C, A>,
    cx: &mut CallContext,
    names: &Names,
) -> Result<(Option<PackageRecord>, Vec<PackageRecord>), CallError> {
    let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let filter = format!(
        "packageName==\"{}\",fileName==\"{}\"",
        quote(&names.package),
        quote(&names.file)
    );
    let path = format!(
        "/api/v1/packages?page=0&page-size=100&filter={}",
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
    let same = |a: Option<&String>, b: &str| a.is_some_and(|a| a.trim().eq_ignore_ascii_case(b));
    let by_name = found
        .results
        .iter()
        .find(|p| same(p.package_name.as_ref(), &names.package))
        .cloned();
    let by_file = found
        .results
        .into_iter()
        .filter(|p| same(p.file_name.as_ref(), &names.file))
        .filter(|p| by_name.as_ref().is_none_or(|n| n.id() != p.id()))
        .collect();
    Ok((by_name, by_file))
}

async fn get_package<C: Credentials, A: ArtifactSource>(
    c: &JamfClient<C, A>,
    cx: &mut CallContext,
    id: &str,
) -> Result<PackageRecord, CallError> {
    c.call(
        cx,
        "get_package",
        Method::GET,
        &format!("/api/v1/packages/{id}"),
        || Payload::None,
        json!({ "package_id": id }),
    )
    .await?
    .json("get_package")
}

/// Creates the package; `None` when the name is taken already (`DUPLICATE_FIELD`).
async fn create_package<C: Credentials, A: ArtifactSource>(
    c: &JamfClient<C, A>,
    cx: &mut CallContext,
    job: &Job<'_>,
    names: &Names,
) -> Result<Option<String>, CallError> {
    let s = &job.deployment.submission;
    let body = json!({
        "packageName": names.package,
        "fileName": names.file,
        "categoryId": "-1",
        "priority": 10,
        "fillUserTemplate": false,
        "rebootRequired": !matches!(s.evidence.installation.reboot, eucora_domain::evidence::Reboot::None),
        "osInstall": false,
        "suppressUpdates": false,
        "suppressFromDock": false,
        "suppressEula": false,
        "suppressRegistration": false,
        "notes": package_note(job),
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
        Ok(a) => Ok(Some(id_text(&a.json::<Value>("create_package")?["id"]))),
        Err(e) if e.code == "DUPLICATE_FIELD" => Ok(None),
        Err(e) => Err(e),
    }
}

/// Uploads the approved bytes to package `id`, then reads what Jamf holds.
async fn upload<C: Credentials, A: ArtifactSource>(
    c: &JamfClient<C, A>,
    cx: &mut CallContext,
    job: &Job<'_>,
    id: &str,
    names: &Names,
    d: &mut Digests,
) -> Result<Resolved, CallError> {
    if cx.out_of_time() {
        return Err(CallError::resume_later(
            "upload_package",
            format!("the work budget is spent before uploading {}", names.file),
            std::time::Duration::ZERO,
        ));
    }
    let sent = c
        .upload(
            cx,
            &format!("/api/v1/packages/{id}/upload"),
            &names.file,
            &job.artifact.location,
            job.artifact.sha256.as_str(),
            json!({ "package_id": id }),
        )
        .await?;
    d.sha3_512 = Some(sent.sha3_512);
    let after = get_package(c, cx, id).await?;
    match check(c, cx, job, &after, d).await? {
        Holds::Approved => Ok(Resolved::of(&after, names, true)),
        Holds::Processing | Holds::Nothing => Ok(Resolved::of(&after, names, false)),
        Holds::Other(what) => Err(hash_mismatch("upload_package", job, id, names, &what)),
    }
}

/// EUCORA's own package, made for the approved bytes and sent them, holds others by Jamf's hash
/// (the file replaced, a transfer gone wrong): a person must look, nothing is sent again.
fn hash_mismatch(op: &str, job: &Job<'_>, id: &str, names: &Names, what: &str) -> CallError {
    CallError::invalid_payload(
        op,
        "JAMF_PACKAGE_HASH_MISMATCH",
        format!(
            "Jamf reports {what} for {} (package {id}), which EUCORA created for and uploaded the approved bytes (SHA-256 {}) to; the package is not used and nothing is uploaded again",
            names.file,
            job.artifact.sha256.as_str()
        ),
    )
}

/// Finds or creates the package holding exactly the approved bytes, uploading them when it does
/// not hold them yet (see the module documentation).
async fn package<C: Credentials, A: ArtifactSource>(
    c: &JamfClient<C, A>,
    cx: &mut CallContext,
    job: &Job<'_>,
) -> Result<Resolved, CallError> {
    let mut d = Digests {
        sha256: job.artifact.sha256.as_str().to_ascii_lowercase(),
        ..Digests::default()
    };
    let candidates = names(job);
    let mut clashes: Vec<String> = Vec::new();
    for names in &candidates {
        let mut created_meanwhile = false;
        let clash = loop {
            let (by_name, by_file) = find_packages(c, cx, names).await?;
            let file_clash = by_file.first().map(|p| {
                format!(
                    "package {} (\"{}\") uses the file name {}",
                    p.id(),
                    p.package_name.as_deref().unwrap_or_default(),
                    names.file
                )
            });
            let Some(p) = by_name else {
                if let Some(clash) = file_clash {
                    break clash;
                }
                match create_package(c, cx, job, names).await? {
                    Some(id) => return upload(c, cx, job, &id, names, &mut d).await,
                    // Created meanwhile, or by an attempt whose answer was lost: read it again.
                    None if !created_meanwhile => {
                        created_meanwhile = true;
                        continue;
                    }
                    None => {
                        return Err(CallError::resume_later(
                            "create_package",
                            format!(
                                "a package named \"{}\" exists but this Jamf node does not show it yet (the cluster replicates within a minute)",
                                names.package
                            ),
                            c.config.processing_recheck,
                        ));
                    }
                }
            };
            let id = p.id();
            let mine = ours(&p, job);
            match check(c, cx, job, &p, &mut d).await? {
                Holds::Approved => return Ok(Resolved::of(&p, names, true)),
                // EUCORA's own upload: its bytes show once processed; the policy waits disabled.
                Holds::Processing if mine => return Ok(Resolved::of(&p, names, false)),
                // Someone else's file, not hashed yet: nothing tells whose bytes it holds.
                Holds::Processing => {
                    break format!(
                        "package {id} (\"{}\") holds a file Jamf has not hashed yet and was not created by EUCORA for these bytes",
                        names.package
                    );
                }
                Holds::Nothing if mine && file_clash.is_none() => {
                    not_uploaded_for_too_long(c, job, &p)?;
                    return upload(c, cx, job, &id, names, &mut d).await;
                }
                Holds::Nothing => {
                    break file_clash.unwrap_or_else(|| {
                        format!(
                            "package {id} (\"{}\") has no file and was not created by EUCORA for these bytes",
                            names.package
                        )
                    });
                }
                Holds::Other(what) if mine => {
                    return Err(hash_mismatch("find_package", job, &id, names, &what));
                }
                Holds::Other(what) => {
                    break format!(
                        "package {id} (\"{}\") holds other bytes ({what})",
                        names.package
                    );
                }
            }
        };
        tracing::warn!(package = %names.package, %clash, "the package name is taken by other bytes");
        clashes.push(clash);
    }
    Err(CallError::invalid_payload(
        "find_package",
        "JAMF_PACKAGE_CLASH",
        format!(
            "no package can hold the approved bytes (SHA-256 {}): {}",
            job.artifact.sha256.as_str(),
            clashes.join("; ")
        ),
    ))
}

/// Creates the `control-plane-auto` category (a server that never had EUCORA's policies lacks it).
async fn create_category<C: Credentials, A: ArtifactSource>(
    c: &JamfClient<C, A>,
    cx: &mut CallContext,
) -> Result<(), CallError> {
    let xml = fragment(
        "create_category",
        "category",
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

/// An element written by quick-xml with `root` as its name.
fn fragment<T: serde::Serialize>(op: &str, root: &str, doc: &T) -> Result<String, CallError> {
    quick_xml::se::to_string_with_root(root, doc).map_err(|e| {
        CallError::invalid_payload(op, "JAMF_INVALID_PAYLOAD", format!("unwritable XML: {e}"))
    })
}

fn policy_document(sections: &[String]) -> String {
    format!("<policy>{}</policy>", sections.concat())
}

fn install(package_id: &str, action: &str) -> PackageConfigurationDoc {
    PackageConfigurationDoc {
        packages: PackagesDoc {
            package: vec![PackageRef {
                id: package_id.to_owned(),
                action: action.to_owned(),
            }],
        },
    }
}

fn policy_xml(
    retry_attempts: u8,
    job: &Job<'_>,
    package_id: &str,
    enabled: bool,
) -> Result<String, CallError> {
    const OP: &str = "create_policy";
    let general = General {
        name: policy_name(job),
        enabled,
        trigger_checkin: true,
        frequency: FREQUENCY.to_owned(),
        retry_event: RETRY_EVENT.to_owned(),
        retry_attempts,
        notify_on_each_failed_retry: false,
        category: NameRef {
            name: CATEGORY.to_owned(),
        },
    };
    Ok(policy_document(&[
        fragment(OP, "general", &general)?,
        Scope::groups(&[job.group_id.to_owned()]).0.to_xml(),
        fragment(OP, "package_configuration", &install(package_id, "Install"))?,
        // Inventory right after the install, so the package's receipt reaches the Jamf Pro
        // API's inventory at once (status reads receipts in bulk) instead of a day later.
        fragment(OP, "maintenance", &MaintenanceDoc { recon: true })?,
    ]))
}

/// A policy as read: the parts the connector acts on, and its scope whole.
#[derive(Debug, Clone)]
pub(crate) struct FoundPolicy {
    pub enabled: bool,
    pub frequency: String,
    pub retry_event: String,
    pub retry_attempts: String,
    pub package_ids: Vec<String>,
    pub scope: Scope,
}

impl FoundPolicy {
    fn read(xml: &str) -> Result<(Option<String>, FoundPolicy), String> {
        let doc = Node::parse(xml)?;
        let text = |path: &str| doc.text_at(path).unwrap_or_default().to_owned();
        let id = doc
            .text_at("general/id")
            .or_else(|| doc.text_at("id"))
            .filter(|id| !id.is_empty())
            .map(str::to_owned);
        Ok((
            id,
            FoundPolicy {
                enabled: text("general/enabled").eq_ignore_ascii_case("true"),
                frequency: text("general/frequency"),
                retry_event: text("general/retry_event"),
                retry_attempts: text("general/retry_attempts"),
                package_ids: doc.ids("package_configuration/packages", "package"),
                scope: Scope::of(&doc),
            },
        ))
    }
}

/// The policy's id and what it holds, if it exists.
pub(crate) async fn find_policy<C: Credentials, A: ArtifactSource>(
    c: &JamfClient<C, A>,
    cx: &mut CallContext,
    job: &Job<'_>,
) -> Result<Option<(String, FoundPolicy)>, CallError> {
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
            let (id, policy) = FoundPolicy::read(&a.body).map_err(|e| {
                CallError::no_answer("find_policy", format!("unreadable XML answer: {e}"))
            })?;
            Ok(id.map(|id| (id, policy)))
        }
        Err(e) if e.status == Some(404) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn update_policy<C: Credentials, A: ArtifactSource>(
    c: &JamfClient<C, A>,
    cx: &mut CallContext,
    op: &str,
    policy_id: &str,
    sections: &[String],
) -> Result<(), CallError> {
    let xml = policy_document(sections);
    c.call(
        cx,
        op,
        Method::PUT,
        &format!("/JSSResource/policies/id/{policy_id}"),
        || Payload::Xml(xml.clone()),
        json!({ "policy_id": policy_id }),
    )
    .await?;
    Ok(())
}

/// Creates the policy; `None` when one of its name exists already (an earlier attempt).
async fn create_policy<C: Credentials, A: ArtifactSource>(
    c: &JamfClient<C, A>,
    cx: &mut CallContext,
    job: &Job<'_>,
    package: &Resolved,
) -> Result<Option<String>, CallError> {
    let xml = policy_xml(c.config.retry_attempts, job, &package.id, package.ready)?;
    let ids = json!({ "package_id": package.id });
    let mut created = post_policy(c, cx, &xml, &ids).await;
    // The Classic API's page says `Error: Problem with category` when the category is missing.
    if matches!(&created, Err(e) if e.status == Some(409) && e.message.to_ascii_lowercase().contains("category"))
    {
        create_category(c, cx).await?;
        created = post_policy(c, cx, &xml, &ids).await;
    }
    match created {
        Ok(a) => a
            .xml::<PolicyAnswer>("create_policy")?
            .policy_id()
            .map(Some)
            .ok_or_else(|| CallError::no_answer("create_policy", "no policy id in the answer")),
        // Duplicate name: an earlier attempt created it.
        Err(e) if e.status == Some(409) && e.message.to_ascii_lowercase().contains("duplicate") => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

async fn post_policy<C: Credentials, A: ArtifactSource>(
    c: &JamfClient<C, A>,
    cx: &mut CallContext,
    xml: &str,
    ids: &Value,
) -> Result<crate::client::Answer, CallError> {
    c.call(
        cx,
        "create_policy",
        Method::POST,
        "/JSSResource/policies/id/0",
        || Payload::Xml(xml.to_owned()),
        ids.clone(),
    )
    .await
}

/// Brings an existing policy to what this publish needs, in one `PUT` of what differs: the
/// package, enabled exactly when the package is ready, retries set, the ring's group in scope.
async fn converge_policy<C: Credentials, A: ArtifactSource>(
    c: &JamfClient<C, A>,
    cx: &mut CallContext,
    job: &Job<'_>,
    policy_id: &str,
    policy: &FoundPolicy,
    package: &Resolved,
) -> Result<(), CallError> {
    const OP: &str = "update_policy";
    let retries = c.config.retry_attempts.to_string();
    let mut general = GeneralUpdate::default();
    if policy.enabled != package.ready {
        general.enabled = Some(package.ready);
    }
    if !policy.frequency.eq_ignore_ascii_case(FREQUENCY) {
        general.frequency = Some(FREQUENCY.to_owned());
    }
    if !policy.retry_event.eq_ignore_ascii_case(RETRY_EVENT) || policy.retry_attempts != retries {
        general.retry_event = Some(RETRY_EVENT.to_owned());
        general.retry_attempts = Some(c.config.retry_attempts);
    }
    let mut sections = Vec::new();
    if general.enabled.is_some() || general.frequency.is_some() || general.retry_event.is_some() {
        sections.push(fragment(OP, "general", &general)?);
    }
    let mut scope = policy.scope.clone();
    if scope.add_group(job.group_id) {
        sections.push(scope.0.to_xml());
    }
    if policy.package_ids != [package.id.clone()] {
        sections.push(fragment(
            OP,
            "package_configuration",
            &install(&package.id, "Install"),
        )?);
    }
    if sections.is_empty() {
        return Ok(());
    }
    update_policy(c, cx, OP, policy_id, &sections).await
}

/// Checks what Jamf would refuse, before calling (the specification's `JAMF_INVALID_PAYLOAD`),
/// and the package's size against the limit.
fn validate(job: &Job<'_>, max_package_bytes: u64) -> Result<(), CallError> {
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
    if job.artifact.size_bytes > max_package_bytes {
        return Err(too_large(
            &job.artifact.file_name,
            job.artifact.size_bytes,
            max_package_bytes,
        ));
    }
    Ok(())
}

pub(crate) fn too_large(file: &str, size: u64, limit: u64) -> CallError {
    let (platform_limit, phrase) = eucora_domain::evidence::Platform::Macos.package_size_limit();
    let why = if limit == platform_limit {
        phrase.to_owned()
    } else {
        "the connector's configured limit".to_owned()
    };
    CallError::invalid_payload(
        "validate",
        "JAMF_PACKAGE_TOO_LARGE",
        format!("{file} is {size} bytes; Jamf packages go up to {limit} bytes ({why})"),
    )
}

pub async fn publish<C: Credentials, A: ArtifactSource>(
    c: &JamfClient<C, A>,
    cx: &mut CallContext,
    job: &Job<'_>,
) -> Result<Value, CallError> {
    validate(job, c.config.max_package_bytes)?;
    let package = package(c, cx, job).await?;
    // A halt while the package was uploaded stops here: no policy puts it in front of a Mac.
    cx.checkpoint("write_policy").await?;
    let policy_id = match find_policy(c, cx, job).await? {
        Some((id, policy)) => {
            converge_policy(c, cx, job, &id, &policy, &package).await?;
            id
        }
        None => match create_policy(c, cx, job, &package).await? {
            Some(id) => id,
            None => {
                let Some((id, policy)) = find_policy(c, cx, job).await? else {
                    return Err(CallError::resume_later(
                        "find_policy",
                        "the policy exists but this Jamf node does not show it yet (the cluster replicates within a minute)",
                        c.config.processing_recheck,
                    ));
                };
                converge_policy(c, cx, job, &id, &policy, &package).await?;
                id
            }
        },
    };
    if !package.ready {
        return Err(wait_for_processing(c, job, &package, &policy_id));
    }
    Ok(json!({
        "package_id": package.id,
        "package_name": package.names.package,
        "file_name": package.names.file,
        "policy_id": policy_id,
        "group_id": job.group_id,
    }))
}

/// EUCORA's package still holds no file: each attempt to send it stopped before its end (the
/// invocation's work budget spent, transient failures). Jamf keeps nothing of an upload that did
/// not finish, so another attempt starts from byte 0 again; past `processing_timeout` since the
/// package was created, the publish halts naming it instead of trying for ever.
fn not_uploaded_for_too_long<C, A>(
    c: &JamfClient<C, A>,
    job: &Job<'_>,
    p: &PackageRecord,
) -> Result<(), CallError> {
    let Some(waited) =
        created_at(p).and_then(|at| std::time::Duration::try_from(job.now.since(at)).ok())
    else {
        return Ok(());
    };
    if waited < c.config.processing_timeout {
        return Ok(());
    }
    Err(CallError {
        class: eucora_connector::ErrorClass::Permanent,
        operation: "upload_package".to_owned(),
        status: None,
        code: "JAMF_PACKAGE_NOT_UPLOADED".to_owned(),
        message: format!(
            "EUCORA created package {} for {} {} minutes ago and Jamf still holds no file of it: no upload got through (the limit is {} minutes; each invocation's work budget, or transient failures, stopped them); the deployment needs a person",
            p.id(),
            p.file_name().unwrap_or_default(),
            waited.as_secs() / 60,
            c.config.processing_timeout.as_secs() / 60
        ),
        retry_after: None,
    })
}

/// While Jamf processes the package's file: checked again later, at a quarter of the wait so far
/// (at least `processing_recheck`, at most [`MAX_RECHECK`]), so that a long wait costs the
/// command's message few receives; past `processing_timeout` since EUCORA created the package,
/// a halt naming it (its policy stays disabled), not a message dead-lettered in silence.
fn wait_for_processing<C, A>(
    c: &JamfClient<C, A>,
    job: &Job<'_>,
    package: &Resolved,
    policy_id: &str,
) -> CallError {
    const OP: &str = "wait_package_processing";
    let waited = package
        .created_at
        .and_then(|at| std::time::Duration::try_from(job.now.since(at)).ok())
        .unwrap_or_default();
    let what = format!(
        "{} (package {}, cloudTransferStatus {})",
        package.names.file, package.id, package.transfer_status
    );
    if waited >= c.config.processing_timeout {
        return CallError {
            class: eucora_connector::ErrorClass::Permanent,
            operation: OP.to_owned(),
            status: None,
            code: "JAMF_PACKAGE_NOT_PROCESSED".to_owned(),
            message: format!(
                "Jamf has not processed {what} in the {} minutes since EUCORA created it (the limit is {} minutes); policy {policy_id} stays disabled; the deployment needs a person",
                waited.as_secs() / 60,
                c.config.processing_timeout.as_secs() / 60
            ),
            retry_after: None,
        };
    }
    let recheck = c.config.processing_recheck;
    let after = (waited / 4).clamp(recheck, MAX_RECHECK.max(recheck));
    CallError::resume_later(
        OP,
        format!(
            "Jamf is processing {what}; policy {policy_id} stays disabled until its hash shows and matches the approved bytes"
        ),
        after,
    )
}

/// The longest a wait on Jamf's processing goes between checks.
const MAX_RECHECK: std::time::Duration = std::time::Duration::from_secs(15 * 60);

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
            const OP: &str = "rollback_uninstall";
            let configuration = PackageConfigurationDoc {
                packages: PackagesDoc {
                    package: policy
                        .package_ids
                        .iter()
                        .map(|id| PackageRef {
                            id: id.clone(),
                            action: "Uninstall".to_owned(),
                        })
                        .collect(),
                },
            };
            let section = fragment(OP, "package_configuration", &configuration)?;
            update_policy(c, cx, OP, &policy_id, &[section]).await?;
        }
        RollbackStrategy::RepinPrevious => {
            let mut scope = policy.scope.clone();
            if scope.remove_group(job.group_id) {
                update_policy(
                    c,
                    cx,
                    "update_policy_scope",
                    &policy_id,
                    &[scope.0.to_xml()],
                )
                .await?;
            }
        }
    }
    Ok(json!({ "policy_id": policy_id, "group_id": job.group_id, "strategy": strategy }))
}

/// The file name of the package a policy installs (for status: inventory lists receipts by file
/// name), else the version's file name.
pub(crate) async fn installed_file_name<C: Credentials, A: ArtifactSource>(
    c: &JamfClient<C, A>,
    cx: &mut CallContext,
    job: &Job<'_>,
    policy: Option<&FoundPolicy>,
) -> String {
    let Some(id) = policy.and_then(|p| p.package_ids.first()) else {
        return file_name(job);
    };
    if let Some(known) = c.status_memo.file_name(id) {
        return known;
    }
    match get_package(c, cx, id).await {
        Ok(p) => match p.file_name() {
            Some(f) if !f.trim().is_empty() => {
                c.status_memo.remember_file_name(id, f.trim());
                f.trim().to_owned()
            }
            _ => file_name(job),
        },
        Err(_) => file_name(job),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{Digests, Holds, Kind, PackageRecord, holds};

    fn record(v: serde_json::Value) -> PackageRecord {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_package_holds_the_approved_bytes_only_when_a_hash_jamf_reports_matches() {
        let d = Digests {
            sha256: "aa".into(),
            sha3_512: Some("bb".into()),
            ..Digests::default()
        };
        let h = |v| holds(&record(v), &d, true);
        assert_eq!(h(json!({"id": "1", "sha256": "AA"})), Ok(Holds::Approved));
        assert_eq!(
            h(json!({"id": "1", "sha256": "ab"})),
            Ok(Holds::Other("SHA-256 ab".into()))
        );
        assert_eq!(
            h(json!({"id": "1", "hashType": "SHA3_512", "hashValue": "bb"})),
            Ok(Holds::Approved)
        );
        assert_eq!(
            h(json!({"id": "1", "hashType": "SHA3_512", "hashValue": "cc"})),
            Ok(Holds::Other("SHA3_512 cc".into()))
        );
        assert_eq!(
            h(json!({"id": "1", "hashType": "MD5", "hashValue": "dd"})),
            Err(vec![Kind::Md5]),
            "needs the artifact's MD5 first"
        );
        assert_eq!(
            h(json!({"id": "1", "hashType": "SHA_512", "hashValue": "ee"})),
            Err(vec![Kind::Sha512])
        );
        assert!(matches!(
            h(json!({"id": "1", "hashType": "CRC32", "hashValue": "ff"})),
            Ok(Holds::Other(_))
        ));
        assert_eq!(
            h(
                json!({"id": "1", "size": "1024", "cloudTransferStatus": "IN_PROGRESS", "hashValue": null})
            ),
            Ok(Holds::Processing)
        );
        assert_eq!(
            h(
                json!({"id": "1", "size": null, "cloudTransferStatus": "NOT_APPLICABLE", "hashValue": ""})
            ),
            Ok(Holds::Nothing)
        );
    }

    #[test]
    fn a_file_name_names_its_version_only_whole() {
        use super::names_version;
        for (stem, version) in [
            ("App-1.2", "1.2"),
            ("App_v1.2_universal", "1.2"),
            ("Slack-4.41.105-macOS", "4.41.105"),
            ("Firefox 128.0.3", "128.0.3"),
            ("1.2", "1.2"),
            ("App-1.2.3-1.2", "1.2"),
        ] {
            assert!(names_version(stem, version), "{stem} names {version}");
        }
        for (stem, version) in [
            ("App-1.2.3", "1.2"),
            ("App-3.1.2", "1.2"),
            ("App-11.2", "1.2"),
            ("App-11", "1"),
            ("App-1.20", "1.2"),
            ("App", ""),
        ] {
            assert!(
                !names_version(stem, version),
                "{stem} does not name {version}"
            );
        }
    }

    /// Jamf writes `size` as text such as `"234KB"`: any size but zero is a file.
    #[test]
    fn a_file_is_told_by_its_size_as_jamf_writes_it() {
        let d = Digests {
            sha256: "aa".into(),
            ..Digests::default()
        };
        let h = |v| holds(&record(v), &d, true);
        for size in [json!("234KB"), json!("1.2 GB"), json!("4096"), json!(12)] {
            assert_eq!(
                h(json!({"id": "1", "size": size, "cloudTransferStatus": "NOT_APPLICABLE"})),
                Ok(Holds::Processing),
                "{size}"
            );
        }
        for size in [json!("0KB"), json!(""), json!(null), json!(0)] {
            assert_eq!(
                h(json!({"id": "1", "size": size, "cloudTransferStatus": "READY"})),
                Ok(Holds::Nothing),
                "{size}"
            );
        }
    }

    /// On someone else's record a hash is a claim until Jamf's own say so: a file Jamf reports,
    /// and every reported hash checked unless a `sha3512` beside the `sha256` shows both are
    /// Jamf's (11.25 and later).
    #[test]
    fn hashes_on_someone_elses_record_are_claims_until_jamf_backs_them() {
        let d = Digests {
            sha256: "aa".into(),
            ..Digests::default()
        };
        let foreign = |v| holds(&record(v), &d, false);
        assert_eq!(
            foreign(json!({"id": "1", "sha256": "aa", "size": null})),
            Ok(Holds::Nothing),
            "no file: a claim"
        );
        assert_eq!(
            foreign(
                json!({"id": "1", "sha256": "aa", "hashType": "SHA3_512", "hashValue": "bb", "size": "3KB"})
            ),
            Err(vec![Kind::Sha3_512]),
            "an older server's record: its SHA-256 is anyone's, Jamf's SHA3-512 decides"
        );
        assert_eq!(
            foreign(
                json!({"id": "1", "sha256": "aa", "sha3512": "bb", "hashType": "SHA3_512", "hashValue": "bb", "md5": "cc", "size": "3KB"})
            ),
            Ok(Holds::Approved),
            "11.25 and later: Jamf's SHA-256 decides, nothing read"
        );
        let known = Digests {
            sha256: "aa".into(),
            sha3_512: Some("bb".into()),
            md5: Some("cc".into()),
            ..Digests::default()
        };
        assert_eq!(
            holds(
                &record(
                    json!({"id": "1", "sha256": "aa", "hashType": "SHA3_512", "hashValue": "bd", "size": "3KB"})
                ),
                &known,
                false
            ),
            Ok(Holds::Other("SHA3_512 bd".into())),
            "any hash that differs is other bytes"
        );
        assert_eq!(
            holds(
                &record(json!({"id": "1", "hashType": "SHA3_512", "hashValue": "bb", "md5": "dd"})),
                &known,
                true
            ),
            Ok(Holds::Other("MD5 dd".into()))
        );
    }
}
