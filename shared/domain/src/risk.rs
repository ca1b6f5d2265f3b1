//! Risk model v1.0: eight factors, each normalised to `0.0..=1.0` by a rubric, weighted by the
//! policy file, summed, clamped to `0..=100` and rounded (half up). The assessment lists every
//! factor's level, normalised value, weight and contribution, with the model and policy versions,
//! so that anyone can recompute the score by hand.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::evidence::{
    DataAccess, NetworkListener, Provenance, Reboot, RunAs, SigningStatus, Submission,
    VulnerabilityCounts,
};
use crate::exception::Waivers;
use crate::policy::{Policy, RiskPolicy};
use crate::ring::Ring;
use crate::units::Normalised;

/// A rubric: the ordered levels of one factor. The policy file gives each level its value.
pub trait Rubric: Copy + Eq + fmt::Debug + 'static {
    const ALL: &'static [Self];
    /// The level's key in the policy file.
    fn key(self) -> &'static str;
    fn index(self) -> usize {
        Self::ALL.iter().position(|l| *l == self).unwrap_or(0)
    }
}

macro_rules! rubric {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $key:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl Rubric for $name {
            const ALL: &'static [Self] = &[$(Self::$variant),+];
            fn key(self) -> &'static str {
                match self { $(Self::$variant => $key),+ }
            }
        }
    };
}

rubric!(
    /// Privilege impact levels.
    PrivilegeLevel {
        UserContext => "user_context",
        OptionalAdmin => "optional_admin",
        AdminInstall => "admin_install",
        ElevatedServiceOrKernel => "elevated_service_or_kernel",
    }
);
rubric!(
    /// Supply-chain trust levels.
    SupplyChainLevel {
        SignedKnownVendorProvenance => "signed_known_vendor_provenance",
        WeakProvenance => "weak_provenance",
        UnknownVendor => "unknown_vendor",
        UnsignedOrSelfSigned => "unsigned_or_self_signed",
        UnsignedUnknownOrigin => "unsigned_unknown_origin",
    }
);
rubric!(
    /// Exploitability levels.
    ExploitabilityLevel {
        None => "none",
        UserSpaceListener => "user_space_listener",
        ScriptingOrMacros => "scripting_or_macros",
        ListenerAndScripting => "listener_and_scripting",
        PrivilegedListener => "privileged_listener",
    }
);
rubric!(
    /// Data access levels.
    DataAccessLevel {
        OwnData => "own_data",
        Documents => "documents",
        UserProfile => "user_profile",
        CredentialStore => "credential_store",
        WideFilesystemAndCredentials => "wide_filesystem_and_credentials",
    }
);
rubric!(
    /// SBOM / vulnerability levels.
    VulnerabilityLevel {
        NoFindings => "no_findings",
        LowOrMedium => "low_or_medium",
        High => "high",
        CriticalWithException => "critical_with_exception",
        CriticalWithoutException => "critical_without_exception",
    }
);
rubric!(
    /// Blast radius levels: the highest ring of the rollout plan.
    BlastRadiusLevel {
        Ring0 => "ring_0",
        Ring1 => "ring_1",
        Ring2 => "ring_2",
        Ring3 => "ring_3",
        Ring4 => "ring_4",
    }
);
rubric!(
    /// Operational complexity levels.
    ComplexityLevel {
        OnlineQuick => "online_quick",
        OnlineModerate => "online_moderate",
        Reboot => "reboot",
        RebootAndSequencing => "reboot_and_sequencing",
        OfflineImport => "offline_import",
    }
);
rubric!(
    /// History levels.
    HistoryLevel {
        Clean => "clean",
        FewFailures => "few_failures",
        SomeFailures => "some_failures",
        ManyFailures => "many_failures",
        PriorSecurityIncident => "prior_security_incident",
    }
);

/// The eight factors of risk model v1.0, in the order the assessment lists them.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Factor {
    PrivilegeImpact,
    SupplyChainTrust,
    Exploitability,
    DataAccess,
    SbomVulnerabilities,
    BlastRadius,
    OperationalComplexity,
    History,
}

impl Factor {
    pub const ALL: [Factor; 8] = [
        Factor::PrivilegeImpact,
        Factor::SupplyChainTrust,
        Factor::Exploitability,
        Factor::DataAccess,
        Factor::SbomVulnerabilities,
        Factor::BlastRadius,
        Factor::OperationalComplexity,
        Factor::History,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Factor::PrivilegeImpact => "privilege_impact",
            Factor::SupplyChainTrust => "supply_chain_trust",
            Factor::Exploitability => "exploitability",
            Factor::DataAccess => "data_access",
            Factor::SbomVulnerabilities => "sbom_vulnerabilities",
            Factor::BlastRadius => "blast_radius",
            Factor::OperationalComplexity => "operational_complexity",
            Factor::History => "history",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// The level of each factor, read from a submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FactorLevels {
    pub privilege_impact: PrivilegeLevel,
    pub supply_chain_trust: SupplyChainLevel,
    pub exploitability: ExploitabilityLevel,
    pub data_access: DataAccessLevel,
    pub sbom_vulnerabilities: VulnerabilityLevel,
    pub blast_radius: BlastRadiusLevel,
    /// Whether the rollout targets critical devices (the blast-radius multiplier applies).
    pub critical_targets: bool,
    pub operational_complexity: ComplexityLevel,
    pub history: HistoryLevel,
}

/// A risk score, `0..=100`, rounded half up from the exact weighted sum.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct RiskScore(u8);

impl RiskScore {
    pub fn value(self) -> u8 {
        self.0
    }

    /// From the exact sum in thousandths of a point: clamp to `0..=100`, round half up.
    pub fn from_milli_points(milli: u32) -> RiskScore {
        let clamped = milli.min(100_000);
        // (clamped + 500) / 1000 <= 100
        RiskScore(u8::try_from((clamped + 500) / 1000).unwrap_or(100))
    }
}

impl fmt::Display for RiskScore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One line of the explanation.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FactorContribution {
    pub factor: Factor,
    /// The rubric level the evidence placed this factor at (`None` when values were given directly).
    pub level: Option<&'static str>,
    pub normalised: Normalised,
    pub weight: u8,
    /// `weight × normalised`, in points.
    pub contribution: f64,
}

/// Why a deployment may not be published, whatever its score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error, utoipa::ToSchema)]
#[serde(tag = "code", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PublishBlocker {
    #[error(
        "{critical} critical vulnerabilit(y/ies) without an approved vulnerability_scan exception"
    )]
    CriticalVulnerabilityWithoutException { critical: u64 },
    #[error("the package is not signed and no unsigned_package exception is approved")]
    UnsignedWithoutException,
    #[error("the deployment crosses a boundary and no cross_boundary exception is approved")]
    CrossBoundaryWithoutException,
}

/// The explained result of scoring one submission.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RiskAssessment {
    pub model_version: String,
    pub policy_version: String,
    /// The rounded score used by every rule.
    pub score: RiskScore,
    /// The exact weighted sum before rounding (`38.5`).
    pub exact_score: f64,
    pub factors: Vec<FactorContribution>,
    pub publish_blockers: Vec<PublishBlocker>,
}

impl RiskAssessment {
    pub fn publish_blocked(&self) -> bool {
        !self.publish_blockers.is_empty()
    }
}

/// Normalised values for all eight factors, indexed by [`Factor::index`].
pub type FactorValues = [Normalised; 8];

/// The weighted sum in thousandths of a point, and each factor's share.
fn weighted(values: &FactorValues, policy: &RiskPolicy) -> (u32, [u32; 8]) {
    let mut parts = [0_u32; 8];
    for f in Factor::ALL {
        parts[f.index()] = u32::from(policy.weight(f)) * u32::from(values[f.index()].per_mille());
    }
    (parts.iter().sum(), parts)
}

/// Scores normalised factor values directly (used when the values come from elsewhere, and by the
/// model's worked example).
pub fn score_values(values: &FactorValues, policy: &Policy) -> RiskAssessment {
    explain(values, [None; 8], policy, Vec::new())
}

fn explain(
    values: &FactorValues,
    levels: [Option<&'static str>; 8],
    policy: &Policy,
    publish_blockers: Vec<PublishBlocker>,
) -> RiskAssessment {
    let (sum, parts) = weighted(values, &policy.risk);
    RiskAssessment {
        model_version: policy.risk.model_version.clone(),
        policy_version: policy.version.clone(),
        score: RiskScore::from_milli_points(sum),
        exact_score: f64::from(sum.min(100_000)) / 1000.0,
        factors: Factor::ALL
            .iter()
            .map(|f| FactorContribution {
                factor: *f,
                level: levels[f.index()],
                normalised: values[f.index()],
                weight: policy.risk.weight(*f),
                contribution: f64::from(parts[f.index()]) / 1000.0,
            })
            .collect(),
        publish_blockers,
    }
}

impl FactorLevels {
    /// Reads each factor's level from a validated submission. `waivers` are the exceptions in
    /// effect now (a critical finding with an approved exception scores 0.9 instead of 1.0).
    pub fn from_submission(s: &Submission, waivers: &Waivers, policy: &RiskPolicy) -> Self {
        let e = &s.evidence;
        FactorLevels {
            privilege_impact: match e.installation.run_as {
                RunAs::User => PrivilegeLevel::UserContext,
                RunAs::OptionalAdmin => PrivilegeLevel::OptionalAdmin,
                RunAs::Admin => PrivilegeLevel::AdminInstall,
                RunAs::ElevatedService => PrivilegeLevel::ElevatedServiceOrKernel,
            },
            // The least trusted artifact decides.
            supply_chain_trust: e
                .artifacts
                .iter()
                .map(|a| supply_chain(a.signing.status, s.app.vendor_known, a.signing.provenance))
                .max()
                .unwrap_or(SupplyChainLevel::UnsignedUnknownOrigin),
            exploitability: match (e.behaviour.network_listener, e.behaviour.scripting) {
                (NetworkListener::Privileged, _) => ExploitabilityLevel::PrivilegedListener,
                (NetworkListener::UserSpace, true) => ExploitabilityLevel::ListenerAndScripting,
                (NetworkListener::None, true) => ExploitabilityLevel::ScriptingOrMacros,
                (NetworkListener::UserSpace, false) => ExploitabilityLevel::UserSpaceListener,
                (NetworkListener::None, false) => ExploitabilityLevel::None,
            },
            data_access: match e.behaviour.data_access {
                DataAccess::OwnData => DataAccessLevel::OwnData,
                DataAccess::Documents => DataAccessLevel::Documents,
                DataAccess::UserProfile => DataAccessLevel::UserProfile,
                DataAccess::CredentialStore => DataAccessLevel::CredentialStore,
                DataAccess::WideFilesystemAndCredentials => {
                    DataAccessLevel::WideFilesystemAndCredentials
                }
            },
            sbom_vulnerabilities: vulnerability_level(
                &e.vulnerabilities,
                waivers.vulnerability_scan,
            ),
            blast_radius: match e.rollout.highest_ring() {
                Ring::Lab => BlastRadiusLevel::Ring0,
                Ring::Canary => BlastRadiusLevel::Ring1,
                Ring::Pilot => BlastRadiusLevel::Ring2,
                Ring::Department => BlastRadiusLevel::Ring3,
                Ring::Global => BlastRadiusLevel::Ring4,
            },
            critical_targets: e.rollout.critical_targets,
            operational_complexity: complexity(s, policy),
            history: history(s, policy),
        }
    }

    fn values(&self, policy: &RiskPolicy) -> FactorValues {
        let t = &policy.factors;
        let blast = t.blast_radius.value(self.blast_radius);
        [
            t.privilege_impact.value(self.privilege_impact),
            t.supply_chain_trust.value(self.supply_chain_trust),
            t.exploitability.value(self.exploitability),
            t.data_access.value(self.data_access),
            t.sbom_vulnerabilities.value(self.sbom_vulnerabilities),
            if self.critical_targets {
                blast.scaled_capped(policy.critical_target_multiplier_per_mille)
            } else {
                blast
            },
            t.operational_complexity.value(self.operational_complexity),
            t.history.value(self.history),
        ]
    }

    fn keys(&self) -> [Option<&'static str>; 8] {
        [
            Some(self.privilege_impact.key()),
            Some(self.supply_chain_trust.key()),
            Some(self.exploitability.key()),
            Some(self.data_access.key()),
            Some(self.sbom_vulnerabilities.key()),
            Some(self.blast_radius.key()),
            Some(self.operational_complexity.key()),
            Some(self.history.key()),
        ]
    }
}

fn supply_chain(
    status: SigningStatus,
    vendor_known: bool,
    provenance: Provenance,
) -> SupplyChainLevel {
    match (status, vendor_known, provenance) {
        (SigningStatus::Unsigned | SigningStatus::SelfSigned, _, Provenance::Unknown) => {
            SupplyChainLevel::UnsignedUnknownOrigin
        }
        (SigningStatus::Unsigned | SigningStatus::SelfSigned, _, _) => {
            SupplyChainLevel::UnsignedOrSelfSigned
        }
        (SigningStatus::Signed, false, _) => SupplyChainLevel::UnknownVendor,
        (SigningStatus::Signed, true, Provenance::Weak | Provenance::Unknown) => {
            SupplyChainLevel::WeakProvenance
        }
        (SigningStatus::Signed, true, Provenance::Verified) => {
            SupplyChainLevel::SignedKnownVendorProvenance
        }
    }
}

fn vulnerability_level(v: &VulnerabilityCounts, waived: bool) -> VulnerabilityLevel {
    if v.effective_critical() > 0 {
        if waived {
            VulnerabilityLevel::CriticalWithException
        } else {
            VulnerabilityLevel::CriticalWithoutException
        }
    } else if v.high > 0 {
        VulnerabilityLevel::High
    } else if v.medium > 0 || v.low > 0 {
        VulnerabilityLevel::LowOrMedium
    } else {
        VulnerabilityLevel::NoFindings
    }
}

fn complexity(s: &Submission, policy: &RiskPolicy) -> ComplexityLevel {
    let i = &s.evidence.installation;
    if i.offline_import {
        return ComplexityLevel::OfflineImport;
    }
    match i.reboot {
        Reboot::RequiredWithSequencing => ComplexityLevel::RebootAndSequencing,
        Reboot::None if i.expected_duration_minutes < policy.complexity_quick_below_minutes => {
            ComplexityLevel::OnlineQuick
        }
        Reboot::None if i.expected_duration_minutes <= policy.complexity_moderate_up_to_minutes => {
            ComplexityLevel::OnlineModerate
        }
        // A long online install is rated like one that reboots (see the policy file).
        Reboot::Required | Reboot::None => ComplexityLevel::Reboot,
    }
}

fn history(s: &Submission, policy: &RiskPolicy) -> HistoryLevel {
    let h = &s.evidence.history;
    if h.prior_security_incident {
        return HistoryLevel::PriorSecurityIncident;
    }
    if h.prior_deployments == 0 {
        return HistoryLevel::FewFailures;
    }
    let f = h.failure_rate;
    if f < policy.history_clean_below {
        HistoryLevel::Clean
    } else if f < policy.history_few_below {
        HistoryLevel::FewFailures
    } else if f <= policy.history_some_up_to {
        HistoryLevel::SomeFailures
    } else {
        HistoryLevel::ManyFailures
    }
}

/// What blocks publishing this submission under the exceptions in effect.
pub fn publish_blockers(s: &Submission, waivers: &Waivers, policy: &Policy) -> Vec<PublishBlocker> {
    let mut blockers = Vec::new();
    let critical = s.evidence.vulnerabilities.effective_critical();
    if policy.publishing.block_critical_without_exception
        && critical > 0
        && !waivers.vulnerability_scan
    {
        blockers.push(PublishBlocker::CriticalVulnerabilityWithoutException { critical });
    }
    let unsigned = s
        .evidence
        .artifacts
        .iter()
        .any(|a| a.signing.status != SigningStatus::Signed);
    if policy.publishing.block_unsigned_without_exception && unsigned && !waivers.unsigned_package {
        blockers.push(PublishBlocker::UnsignedWithoutException);
    }
    if s.cross_boundary && !waivers.cross_boundary {
        blockers.push(PublishBlocker::CrossBoundaryWithoutException);
    }
    blockers
}

/// Scores a submission: factor levels from the evidence, values and weights from the policy.
pub fn assess(s: &Submission, waivers: &Waivers, policy: &Policy) -> RiskAssessment {
    let levels = FactorLevels::from_submission(s, waivers, &policy.risk);
    let values = levels.values(&policy.risk);
    explain(
        &values,
        levels.keys(),
        policy,
        publish_blockers(s, waivers, policy),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(x: f64) -> Normalised {
        Normalised::from_decimal(x).unwrap()
    }

    /// The risk model's worked example.
    #[test]
    fn worked_example_scores_38_5_reported_as_39() {
        let policy = Policy::bundled();
        let values = [
            v(1.0),
            v(0.1),
            v(0.6),
            v(0.2),
            v(0.0),
            v(0.4),
            v(0.3),
            v(0.2),
        ];
        let a = score_values(&values, &policy);
        assert!(
            (a.exact_score - 38.5).abs() < f64::EPSILON,
            "{}",
            a.exact_score
        );
        assert_eq!(a.score.value(), 39);
        assert_eq!(a.model_version, "1.0");
        let privilege = &a.factors[Factor::PrivilegeImpact.index()];
        assert_eq!(privilege.weight, 20);
        assert!((privilege.contribution - 20.0).abs() < f64::EPSILON);
        let supply = &a.factors[Factor::SupplyChainTrust.index()];
        assert!((supply.contribution - 1.5).abs() < f64::EPSILON);
        let total: f64 = a.factors.iter().map(|f| f.contribution).sum();
        assert!((total - 38.5).abs() < 1e-9);
    }

    #[test]
    fn rounding_is_half_up_and_clamped() {
        assert_eq!(RiskScore::from_milli_points(50_499).value(), 50);
        assert_eq!(RiskScore::from_milli_points(50_500).value(), 51);
        assert_eq!(RiskScore::from_milli_points(250_000).value(), 100);
        assert_eq!(RiskScore::from_milli_points(0).value(), 0);
    }

    #[test]
    fn every_level_of_every_rubric_is_in_the_policy() {
        let p = Policy::bundled();
        assert_eq!(
            p.risk
                .factors
                .privilege_impact
                .value(PrivilegeLevel::ElevatedServiceOrKernel),
            Normalised::ONE
        );
        assert_eq!(
            p.risk
                .factors
                .sbom_vulnerabilities
                .value(VulnerabilityLevel::NoFindings),
            Normalised::ZERO
        );
        assert_eq!(
            p.risk.factors.history.value(HistoryLevel::ManyFailures),
            v(0.9)
        );
    }
}
