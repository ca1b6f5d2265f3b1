//! The deployment intent and its evidence pack.
//!
//! A packager submits a [`Submission`]: what to deploy (app, version, artifacts per platform,
//! rollout plan) and the evidence that it is safe (signing, SBOM, vulnerability scan, tests,
//! rollback plan, history). [`Submission::parse`] validates the JSON body and names every missing
//! or invalid field in one answer ([`EvidenceError::Incomplete`], code `EVIDENCE_INCOMPLETE`).
//! [`Submission::content_hash`] is the SHA-256 of the canonical form: the same submission gives
//! the same hash whatever its key order or white space.

mod canonical;
mod parse;
pub use parse::requested_exception;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

pub use canonical::{canonical_json, sha256_hex};

use crate::cab::BlastRadiusClass;
use crate::exception::ExceptionKind;
use crate::fields::FieldError;
use crate::ids::CorrelationId;
use crate::ring::Ring;
use crate::time::Timestamp;
use crate::units::Percent;

string_enum!(
    /// The operating system an artifact is for; it decides the connector (Intune or Jamf).
    Platform { Windows => "windows", Macos => "macos" }
);

impl Platform {
    /// The largest package the platform takes, in bytes, and the limit as its owner states it.
    /// Intune: 30 GB per Win32 app (decimal GB, so never more generous than Microsoft's
    /// limit). Jamf Pro: the Jamf Cloud Distribution Service's 20 GB per file.
    pub fn package_size_limit(self) -> (u64, &'static str) {
        match self {
            Platform::Windows => (30_000_000_000, "Intune's limit of 30 GB per Win32 app"),
            Platform::Macos => (
                20_000_000_000,
                "the Jamf Cloud Distribution Service's limit of 20 GB per package",
            ),
        }
    }
}

string_enum!(
    /// How reachable the target sites are; it sets the time-to-compliance limit.
    SiteClass { Online => "online", Intermittent => "intermittent", AirGapped => "air_gapped" }
);
string_enum!(
    /// How urgent the change is; urgent changes have a shorter CAB approval window.
    Urgency { Standard => "standard", Urgent => "urgent" }
);
string_enum!(
    SigningStatus { Signed => "signed", SelfSigned => "self_signed", Unsigned => "unsigned" }
);
string_enum!(
    /// Where the artifact demonstrably came from (build provenance, SLSA-style attestation).
    Provenance { Verified => "verified", Weak => "weak", Unknown => "unknown" }
);
string_enum!(
    /// The security context the installed software runs in.
    RunAs {
        User => "user",
        OptionalAdmin => "optional_admin",
        Admin => "admin",
        /// A service running elevated, a driver, or a kernel/system extension.
        ElevatedService => "elevated_service",
    }
);
string_enum!(
    Reboot { None => "none", Required => "required", RequiredWithSequencing => "required_with_sequencing" }
);
string_enum!(
    NetworkListener { None => "none", UserSpace => "user_space", Privileged => "privileged" }
);
string_enum!(
    DataAccess {
        OwnData => "own_data",
        Documents => "documents",
        UserProfile => "user_profile",
        CredentialStore => "credential_store",
        WideFilesystemAndCredentials => "wide_filesystem_and_credentials",
    }
);
string_enum!(
    /// How the platform tells that the app is installed.
    DetectionKind {
        File => "file",
        Registry => "registry",
        ProductCode => "product_code",
        Script => "script",
        BundleId => "bundle_id",
        Receipt => "receipt",
    }
);
string_enum!(
    RollbackStrategy {
        /// Assign the uninstall intent (Intune) or scope an uninstall policy (Jamf).
        Uninstall => "uninstall",
        /// Re-pin the previous version.
        RepinPrevious => "repin_previous",
    }
);
string_enum!(
    SbomFormat { Spdx => "spdx", CycloneDx => "cyclonedx" }
);

impl DetectionKind {
    pub fn fits(self, platform: Platform) -> bool {
        match platform {
            Platform::Windows => matches!(
                self,
                DetectionKind::File
                    | DetectionKind::Registry
                    | DetectionKind::ProductCode
                    | DetectionKind::Script
            ),
            Platform::Macos => matches!(self, DetectionKind::BundleId | DetectionKind::Receipt),
        }
    }
}

/// A SHA-256 digest as 64 lowercase hex characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sha256Hex(String);

impl Sha256Hex {
    /// Accepts 64 hex characters in either case; stores them lowercase.
    pub fn parse(s: &str) -> Option<Sha256Hex> {
        (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Sha256Hex(s.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Sha256Hex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The API document's schema: 64 hex characters (either case; answers are lowercase).
impl utoipa::PartialSchema for Sha256Hex {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^[0-9a-fA-F]{64}$"))
            .max_length(Some(64))
            .into()
    }
}

impl utoipa::ToSchema for Sha256Hex {}

/// The content hash of a submission: what approvals are bound to.
pub type EvidenceHash = Sha256Hex;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct App {
    #[schema(
        max_length = 200,
        pattern = r"[^\x09-\x0D\x20\x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    pub name: String,
    #[schema(
        max_length = 64,
        pattern = r"[^\x09-\x0D\x20\x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    pub version: String,
    #[schema(
        max_length = 200,
        pattern = r"[^\x09-\x0D\x20\x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    pub vendor: String,
    pub vendor_known: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Signing {
    pub status: SigningStatus,
    /// The signing identity (certificate subject or Apple Team ID); required when signed.
    #[schema(
        max_length = 200,
        pattern = r"[^\x09-\x0D\x20\x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    pub signer: Option<String>,
    pub provenance: Provenance,
    /// macOS: notarised by Apple (default false).
    #[schema(required = false, nullable)]
    pub notarized: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Detection {
    pub kind: DetectionKind,
    /// The path, key, product code, script digest, bundle id or receipt id.
    #[schema(
        max_length = 1024,
        pattern = r"[^\x09-\x0D\x20\x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    pub value: String,
}

/// One installable file for one platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Artifact {
    pub platform: Platform,
    /// A `.intunewin` package for windows, a `.pkg` or `.dmg` for macos.
    #[schema(
        max_length = 255,
        pattern = r"[^\x09-\x0D\x20\x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    pub file_name: String,
    pub sha256: Sha256Hex,
    #[schema(minimum = 1, maximum = 34_359_738_368_u64)]
    pub size_bytes: u64,
    /// Where the connector reads the bytes: `s3://bucket/key` or an `https://` URL.
    #[schema(max_length = 2048, pattern = r"^(s3|https)://")]
    pub location: String,
    pub signing: Signing,
    pub detection: Detection,
    /// Windows: the install command line (required); macOS: not used (packages install themselves).
    #[schema(
        max_length = 1024,
        pattern = r"[^\x09-\x0D\x20\x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    pub install_command: Option<String>,
    /// Windows: required; macOS: not used.
    #[schema(
        max_length = 1024,
        pattern = r"[^\x09-\x0D\x20\x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    pub uninstall_command: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Sbom {
    pub format: SbomFormat,
    #[schema(minimum = 0, maximum = 10_000_000)]
    pub component_count: u64,
    pub sha256: Sha256Hex,
}

/// Open findings of the vulnerability scan, by severity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VulnerabilityCounts {
    #[schema(minimum = 0, maximum = 10_000_000)]
    pub critical: u64,
    #[schema(minimum = 0, maximum = 10_000_000)]
    pub high: u64,
    #[schema(minimum = 0, maximum = 10_000_000)]
    pub medium: u64,
    #[schema(minimum = 0, maximum = 10_000_000)]
    pub low: u64,
    /// Findings (of any severity) known to be exploited in the wild (for example on CISA KEV):
    /// at most `critical + high + medium + low`.
    #[schema(minimum = 0, maximum = 10_000_000)]
    pub exploited_in_the_wild: u64,
    #[schema(
        max_length = 200,
        pattern = r"[^\x09-\x0D\x20\x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    pub scanner: String,
    pub scanned_at: Timestamp,
}

impl VulnerabilityCounts {
    /// Critical findings, counting a finding exploited in the wild as critical whatever its severity.
    pub fn effective_critical(&self) -> u64 {
        self.critical.max(self.exploited_in_the_wild)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Installation {
    pub run_as: RunAs,
    #[schema(minimum = 0, maximum = 1440)]
    pub expected_duration_minutes: u64,
    pub reboot: Reboot,
    /// The install needs an offline import (media shipped to sites, no network delivery).
    pub offline_import: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Behaviour {
    pub network_listener: NetworkListener,
    /// Ships a scripting engine or runs macros.
    pub scripting: bool,
    pub data_access: DataAccess,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RingTarget {
    pub ring: Ring,
    #[schema(minimum = 1, maximum = 10_000_000)]
    pub target_devices: u64,
}

/// Which rings, how many devices in each, and where they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RolloutPlan {
    /// Contiguous and ascending, starting at Ring 0 or Ring 1.
    #[schema(min_items = 1, max_items = 5)]
    pub rings: Vec<RingTarget>,
    pub site_class: SiteClass,
    /// Targets devices whose failure stops the business (trading floor, clinical, plant).
    pub critical_targets: bool,
}

impl RolloutPlan {
    pub fn first_ring(&self) -> Ring {
        self.rings.first().map_or(Ring::Lab, |r| r.ring)
    }

    pub fn highest_ring(&self) -> Ring {
        self.rings.last().map_or(Ring::Lab, |r| r.ring)
    }

    pub fn includes(&self, ring: Ring) -> bool {
        self.rings.iter().any(|r| r.ring == ring)
    }

    pub fn target_devices(&self, ring: Ring) -> Option<u64> {
        self.rings
            .iter()
            .find(|r| r.ring == ring)
            .map(|r| r.target_devices)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RollbackPlan {
    pub strategy: RollbackStrategy,
    #[schema(
        max_length = 1000,
        pattern = r"[^\x09-\x0D\x20\x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    pub plan: String,
    /// The rollback was run and worked in Ring 0 (the lab).
    pub validated_in_ring0: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TestEvidence {
    #[schema(minimum = 1, maximum = 10_000_000)]
    pub passed: u64,
    #[schema(minimum = 0, maximum = 10_000_000)]
    pub failed: u64,
    #[schema(
        max_length = 2048,
        pattern = r"[^\x09-\x0D\x20\x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    pub report_uri: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct History {
    #[schema(minimum = 0, maximum = 10_000_000)]
    pub prior_deployments: u64,
    #[serde(rename = "failure_rate_percent")]
    pub failure_rate: Percent,
    pub prior_security_incident: bool,
}

/// An exception the packager asks for up front, with the submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RequestedException {
    pub kind: ExceptionKind,
    #[schema(
        max_length = 1000,
        pattern = r"[^\x09-\x0D\x20\x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    pub justification: String,
    #[schema(min_items = 1, max_items = 10, value_type = Vec<crate::fields::Text>)]
    pub compensating_controls: Vec<String>,
}

/// The evidence that a deployment is safe to roll out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EvidencePack {
    /// One per platform.
    #[schema(min_items = 1, max_items = 2)]
    pub artifacts: Vec<Artifact>,
    pub sbom: Sbom,
    pub vulnerabilities: VulnerabilityCounts,
    pub installation: Installation,
    pub behaviour: Behaviour,
    pub rollout: RolloutPlan,
    pub rollback: RollbackPlan,
    pub tests: TestEvidence,
    pub history: History,
    /// Exceptions asked for up front (default none), at most 5.
    #[schema(required = false, nullable, max_items = 5)]
    pub exceptions: Vec<RequestedException>,
}

/// A deployment intent with its evidence pack, as submitted and validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Submission {
    pub correlation_id: CorrelationId,
    pub app: App,
    /// Privileged tooling (admin tools, security agents, remote access): always needs CAB.
    pub privileged: bool,
    /// The business criticality the packager declares; see [`crate::cab::classify_blast_radius`].
    pub business_criticality: BlastRadiusClass,
    /// Default `standard`.
    #[schema(required = false, nullable)]
    pub urgency: Urgency,
    /// Crosses an organisational or security boundary (another business unit's or tenant's
    /// devices). Default false.
    #[schema(required = false, nullable)]
    pub cross_boundary: bool,
    pub evidence: EvidencePack,
}

/// A submission that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    #[error("the body is not valid JSON: {0}")]
    NotJson(String),
    /// Every missing or invalid field, in one answer.
    #[error("evidence incomplete: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Incomplete(Vec<FieldError>),
}

impl EvidenceError {
    /// The API error code.
    pub fn code(&self) -> &'static str {
        match self {
            EvidenceError::NotJson(_) => "MALFORMED_JSON",
            EvidenceError::Incomplete(_) => "EVIDENCE_INCOMPLETE",
        }
    }

    pub fn fields(&self) -> &[FieldError] {
        match self {
            EvidenceError::NotJson(_) => &[],
            EvidenceError::Incomplete(f) => f,
        }
    }
}

impl Submission {
    /// Validates a JSON body. Every problem is reported, with its field path.
    pub fn parse(body: &str) -> Result<Submission, EvidenceError> {
        let value: serde_json::Value =
            serde_json::from_str(body).map_err(|e| EvidenceError::NotJson(e.to_string()))?;
        Submission::from_value(&value)
    }

    pub fn from_value(value: &serde_json::Value) -> Result<Submission, EvidenceError> {
        parse::submission(value).map_err(EvidenceError::Incomplete)
    }

    pub fn platforms(&self) -> BTreeSet<Platform> {
        self.evidence.artifacts.iter().map(|a| a.platform).collect()
    }

    pub fn artifact(&self, platform: Platform) -> Option<&Artifact> {
        self.evidence
            .artifacts
            .iter()
            .find(|a| a.platform == platform)
    }

    /// The canonical JSON form: keys sorted, no white space, numbers as `serde_json` writes them.
    pub fn canonical_json(&self) -> String {
        canonical_json(&serde_json::to_value(self).unwrap_or(serde_json::Value::Null))
    }

    /// SHA-256 of the canonical form.
    pub fn content_hash(&self) -> EvidenceHash {
        Sha256Hex(sha256_hex(self.canonical_json().as_bytes()))
    }
}

#[cfg(test)]
mod tests;
