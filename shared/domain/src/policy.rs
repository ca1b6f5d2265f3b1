//! The versioned policy file: every number the rules use, none of them in code.
//!
//! The repository's policy lives in `shared/domain/policy/policy-v1.0.json` and is compiled into
//! every binary ([`Policy::bundled`]); a deployment may load another file with [`Policy::from_json`].
//! Loading validates the whole file and reports every problem with its path.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use serde::Deserialize;
use time::Duration;

use crate::cab::BlastRadiusClass;
use crate::evidence::SiteClass;
use crate::exception::ExceptionKind;
use crate::fields::FieldError;
use crate::ring::Ring;
use crate::risk::{
    BlastRadiusLevel, ComplexityLevel, DataAccessLevel, ExploitabilityLevel, Factor, HistoryLevel,
    PrivilegeLevel, Rubric, SupplyChainLevel, VulnerabilityLevel,
};
use crate::units::{Normalised, Percent};

/// The policy file shipped with this version of EUCORA.
pub const BUNDLED_POLICY_JSON: &str = include_str!("../policy/policy-v1.0.json");

/// A policy file that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    #[error("policy file is not valid JSON for the policy schema: {0}")]
    Malformed(String),
    #[error("policy file is invalid: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
}

/// One factor's weight and the value of each level of its rubric.
#[derive(Debug, Clone, PartialEq)]
pub struct FactorTable<L: Rubric> {
    pub weight: u8,
    pub description: String,
    values: Vec<Normalised>,
    _levels: PhantomData<L>,
}

impl<L: Rubric> FactorTable<L> {
    pub fn value(&self, level: L) -> Normalised {
        self.values[level.index()]
    }
}

/// The eight factor tables.
#[derive(Debug, Clone, PartialEq)]
pub struct FactorTables {
    pub privilege_impact: FactorTable<PrivilegeLevel>,
    pub supply_chain_trust: FactorTable<SupplyChainLevel>,
    pub exploitability: FactorTable<ExploitabilityLevel>,
    pub data_access: FactorTable<DataAccessLevel>,
    pub sbom_vulnerabilities: FactorTable<VulnerabilityLevel>,
    pub blast_radius: FactorTable<BlastRadiusLevel>,
    pub operational_complexity: FactorTable<ComplexityLevel>,
    pub history: FactorTable<HistoryLevel>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RiskPolicy {
    pub model_version: String,
    pub factors: FactorTables,
    /// Blast-radius multiplier for critical targets, in thousandths (1.2 = 1200).
    pub critical_target_multiplier_per_mille: u32,
    pub complexity_quick_below_minutes: u64,
    pub complexity_moderate_up_to_minutes: u64,
    pub history_clean_below: Percent,
    pub history_few_below: Percent,
    pub history_some_up_to: Percent,
}

impl RiskPolicy {
    pub fn weight(&self, f: Factor) -> u8 {
        let t = &self.factors;
        match f {
            Factor::PrivilegeImpact => t.privilege_impact.weight,
            Factor::SupplyChainTrust => t.supply_chain_trust.weight,
            Factor::Exploitability => t.exploitability.weight,
            Factor::DataAccess => t.data_access.weight,
            Factor::SbomVulnerabilities => t.sbom_vulnerabilities.weight,
            Factor::BlastRadius => t.blast_radius.weight,
            Factor::OperationalComplexity => t.operational_complexity.weight,
            Factor::History => t.history.weight,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishingPolicy {
    pub block_critical_without_exception: bool,
    pub block_unsigned_without_exception: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CabPolicy {
    /// A score above this needs CAB for every ring from `from_ring`.
    pub risk_threshold: u8,
    /// The first ring CAB rules apply to (Ring 0, the lab, never needs CAB).
    pub from_ring: Ring,
    pub privileged_always: bool,
    pub always_for_classes: Vec<BlastRadiusClass>,
    quorum: BTreeMap<BlastRadiusClass, u8>,
    pub approval_window_standard: Duration,
    pub approval_window_urgent: Duration,
}

impl CabPolicy {
    /// Distinct CAB approvers needed per ring for a blast-radius class.
    pub fn quorum(&self, class: BlastRadiusClass) -> u8 {
        self.quorum.get(&class).copied().unwrap_or(1)
    }
}

/// What leaving one ring takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingGatePolicy {
    pub min_success_rate: Percent,
    pub min_observation: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatePolicy {
    rings: [RingGatePolicy; 5],
    time_to_compliance: BTreeMap<SiteClass, Duration>,
    pub max_security_incidents: u32,
    /// Rollback must be validated before entering this ring.
    pub rollback_validated_before_ring: Ring,
    /// A targeted device that has not contacted its platform for longer than this is stale.
    pub stale_after: Duration,
    /// How far the ring's group may differ in size from the rollout plan's target count before
    /// the difference is a finding that halts (the wrong group was assigned).
    pub group_size_tolerance: Percent,
}

impl GatePolicy {
    pub fn ring(&self, ring: Ring) -> RingGatePolicy {
        self.rings[usize::from(ring.number())]
    }

    pub fn time_to_compliance(&self, site: SiteClass) -> Duration {
        self.time_to_compliance
            .get(&site)
            .copied()
            .unwrap_or(Duration::days(7))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExceptionPolicy {
    pub default_expiry: Duration,
    pub max_expiry: Duration,
    pub max_extension: Duration,
    pub max_extensions: u8,
    pub cab_also_for_types: Vec<ExceptionKind>,
    pub cab_also_when_risk_above: u8,
    pub cab_also_when_privileged: bool,
    pub break_glass_distinct_approvers: u8,
}

/// The whole policy, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub version: String,
    pub risk: RiskPolicy,
    pub publishing: PublishingPolicy,
    pub cab: CabPolicy,
    pub gates: GatePolicy,
    pub exceptions: ExceptionPolicy,
}

impl Policy {
    /// The policy shipped in the repository.
    ///
    /// # Panics
    /// Never in a released build: the bundled file is checked by this crate's tests.
    pub fn bundled() -> Policy {
        Policy::from_json(BUNDLED_POLICY_JSON).expect("the bundled policy file is valid")
    }

    pub fn from_json(json: &str) -> Result<Policy, PolicyError> {
        let raw: raw::PolicyFile =
            serde_json::from_str(json).map_err(|e| PolicyError::Malformed(e.to_string()))?;
        raw.validate()
    }
}

/// The file's shape, before validation.
mod raw {
    use super::{
        BTreeMap, BlastRadiusClass, CabPolicy, Deserialize, Duration, ExceptionKind,
        ExceptionPolicy, Factor, FactorTable, FactorTables, FieldError, GatePolicy, Normalised,
        Percent, PhantomData, Policy, PolicyError, PublishingPolicy, Ring, RingGatePolicy,
        RiskPolicy, Rubric, SiteClass,
    };

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct PolicyFile {
        policy_version: String,
        #[allow(dead_code)]
        description: Option<String>,
        risk_model: RiskModel,
        publishing: Publishing,
        cab: Cab,
        gates: Gates,
        exceptions: Exceptions,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RiskModel {
        version: String,
        factors: BTreeMap<String, FactorEntry>,
        critical_target_multiplier: f64,
        operational_complexity_minutes: ComplexityMinutes,
        history_failure_percent: HistoryPercent,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct FactorEntry {
        weight: u32,
        #[serde(default)]
        description: String,
        rubric: BTreeMap<String, f64>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ComplexityMinutes {
        quick_below: u64,
        moderate_up_to: u64,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct HistoryPercent {
        clean_below: f64,
        few_below: f64,
        some_up_to: f64,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Publishing {
        block_critical_without_exception: bool,
        block_unsigned_without_exception: bool,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Cab {
        risk_threshold: u8,
        from_ring: Ring,
        privileged_always: bool,
        always_for_classes: Vec<BlastRadiusClass>,
        quorum: BTreeMap<BlastRadiusClass, u8>,
        approval_window_hours: Windows,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Windows {
        standard: u32,
        urgent: u32,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RingGate {
        min_success_rate_percent: f64,
        min_observation_hours: u32,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Gates {
        rings: BTreeMap<String, RingGate>,
        time_to_compliance_hours: BTreeMap<SiteClass, u32>,
        max_security_incidents: u32,
        rollback_validated_before_ring: Ring,
        stale_after_days: u32,
        group_size_tolerance_percent: f64,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Exceptions {
        default_expiry_days: u32,
        max_expiry_days: u32,
        max_extension_days: u32,
        max_extensions: u8,
        cab_also_for_types: Vec<ExceptionKind>,
        cab_also_when_risk_above: u8,
        cab_also_when_privileged: bool,
        break_glass_distinct_approvers: u8,
    }

    struct Problems(Vec<FieldError>);

    impl Problems {
        fn push(&mut self, field: String, problem: impl Into<String>) {
            self.0.push(FieldError::new(field, problem));
        }
    }

    fn table<L: Rubric>(
        factors: &BTreeMap<String, FactorEntry>,
        factor: Factor,
        p: &mut Problems,
    ) -> Option<FactorTable<L>> {
        let path = format!("risk_model.factors.{}", factor.key());
        let Some(entry) = factors.get(factor.key()) else {
            p.push(path, "is required");
            return None;
        };
        let mut values = Vec::with_capacity(L::ALL.len());
        let mut ok = true;
        for level in L::ALL {
            let lpath = format!("{path}.rubric.{}", level.key());
            match entry
                .rubric
                .get(level.key())
                .map(|x| Normalised::from_decimal(*x))
            {
                Some(Ok(v)) => values.push(v),
                Some(Err(e)) => {
                    p.push(lpath, e.to_string());
                    ok = false;
                }
                None => {
                    p.push(lpath, "is required");
                    ok = false;
                }
            }
        }
        for key in entry.rubric.keys() {
            if !L::ALL.iter().any(|l| l.key() == key) {
                p.push(format!("{path}.rubric.{key}"), "unknown rubric level");
                ok = false;
            }
        }
        let weight = u8::try_from(entry.weight).ok().filter(|w| *w <= 100);
        if weight.is_none() {
            p.push(format!("{path}.weight"), "must be from 0 to 100");
        }
        Some(FactorTable {
            weight: weight?,
            description: entry.description.clone(),
            values,
            _levels: PhantomData,
        })
        .filter(|_| ok)
    }

    fn percent(x: f64, path: &str, p: &mut Problems) -> Percent {
        Percent::from_decimal(x).unwrap_or_else(|e| {
            p.push(path.to_owned(), e.to_string());
            Percent::HUNDRED
        })
    }

    impl PolicyFile {
        // One linear list of checks over one file; split up, it would be harder to audit.
        #[allow(clippy::too_many_lines)]
        pub fn validate(self) -> Result<Policy, PolicyError> {
            let mut p = Problems(Vec::new());
            let f = &self.risk_model.factors;
            for key in f.keys() {
                if !Factor::ALL.iter().any(|x| x.key() == key) {
                    p.push(format!("risk_model.factors.{key}"), "unknown factor");
                }
            }
            let tables = (
                table(f, Factor::PrivilegeImpact, &mut p),
                table(f, Factor::SupplyChainTrust, &mut p),
                table(f, Factor::Exploitability, &mut p),
                table(f, Factor::DataAccess, &mut p),
                table(f, Factor::SbomVulnerabilities, &mut p),
                table(f, Factor::BlastRadius, &mut p),
                table(f, Factor::OperationalComplexity, &mut p),
                table(f, Factor::History, &mut p),
            );
            let weight_sum: u32 = f.values().map(|e| e.weight).sum();
            if weight_sum != 100 {
                p.push(
                    "risk_model.factors".into(),
                    format!("weights must sum to 100, they sum to {weight_sum}"),
                );
            }
            let multiplier =
                Normalised::from_decimal(self.risk_model.critical_target_multiplier / 2.0)
                    .map(|half| u32::from(half.per_mille()) * 2);
            if multiplier.is_err() || self.risk_model.critical_target_multiplier < 1.0 {
                p.push(
                    "risk_model.critical_target_multiplier".into(),
                    "must be a number from 1.0 to 2.0",
                );
            }
            let cm = &self.risk_model.operational_complexity_minutes;
            if cm.quick_below > cm.moderate_up_to {
                p.push(
                    "risk_model.operational_complexity_minutes".into(),
                    "quick_below must not exceed moderate_up_to",
                );
            }
            let h = &self.risk_model.history_failure_percent;
            let hp = "risk_model.history_failure_percent";
            let (clean, few, some) = (
                percent(h.clean_below, &format!("{hp}.clean_below"), &mut p),
                percent(h.few_below, &format!("{hp}.few_below"), &mut p),
                percent(h.some_up_to, &format!("{hp}.some_up_to"), &mut p),
            );
            if !(clean <= few && few <= some) {
                p.push(hp.into(), "thresholds must not decrease");
            }

            let mut rings = [RingGatePolicy {
                min_success_rate: Percent::HUNDRED,
                min_observation: Duration::ZERO,
            }; 5];
            for ring in Ring::ALL {
                let key = ring.number().to_string();
                let path = format!("gates.rings.{key}");
                match self.gates.rings.get(&key) {
                    Some(g) => {
                        rings[usize::from(ring.number())] = RingGatePolicy {
                            min_success_rate: percent(
                                g.min_success_rate_percent,
                                &format!("{path}.min_success_rate_percent"),
                                &mut p,
                            ),
                            min_observation: Duration::hours(i64::from(g.min_observation_hours)),
                        };
                    }
                    None => p.push(path, "is required"),
                }
            }
            for key in self.gates.rings.keys() {
                if key
                    .parse::<i64>()
                    .ok()
                    .and_then(|n| Ring::from_number(n).ok())
                    .is_none()
                {
                    p.push(format!("gates.rings.{key}"), "must be a ring from 0 to 4");
                }
            }
            let group_size_tolerance = percent(
                self.gates.group_size_tolerance_percent,
                "gates.group_size_tolerance_percent",
                &mut p,
            );
            if self.gates.stale_after_days == 0 {
                p.push("gates.stale_after_days".to_owned(), "must be at least 1");
            }
            for site in SiteClass::ALL {
                if !self.gates.time_to_compliance_hours.contains_key(site) {
                    p.push(
                        format!("gates.time_to_compliance_hours.{}", site.key()),
                        "is required",
                    );
                }
            }
            for class in BlastRadiusClass::ALL {
                match self.cab.quorum.get(class) {
                    Some(0) => p.push(format!("cab.quorum.{}", class.key()), "must be at least 1"),
                    Some(_) => {}
                    None => p.push(format!("cab.quorum.{}", class.key()), "is required"),
                }
            }
            if self.cab.risk_threshold > 100 {
                p.push("cab.risk_threshold".into(), "must be from 0 to 100");
            }
            let e = &self.exceptions;
            if e.default_expiry_days == 0 || e.default_expiry_days > e.max_expiry_days {
                p.push(
                    "exceptions.default_expiry_days".into(),
                    "must be from 1 to max_expiry_days",
                );
            }
            if e.break_glass_distinct_approvers < 2 {
                p.push(
                    "exceptions.break_glass_distinct_approvers".into(),
                    "must be at least 2",
                );
            }

            let (Some(pi), Some(sc), Some(ex), Some(da), Some(sv), Some(br), Some(oc), Some(hi)) =
                tables
            else {
                return Err(PolicyError::Invalid(p.0));
            };
            if !p.0.is_empty() {
                return Err(PolicyError::Invalid(p.0));
            }
            Ok(Policy {
                version: self.policy_version,
                risk: RiskPolicy {
                    model_version: self.risk_model.version,
                    factors: FactorTables {
                        privilege_impact: pi,
                        supply_chain_trust: sc,
                        exploitability: ex,
                        data_access: da,
                        sbom_vulnerabilities: sv,
                        blast_radius: br,
                        operational_complexity: oc,
                        history: hi,
                    },
                    critical_target_multiplier_per_mille: multiplier.unwrap_or(1000),
                    complexity_quick_below_minutes: cm.quick_below,
                    complexity_moderate_up_to_minutes: cm.moderate_up_to,
                    history_clean_below: clean,
                    history_few_below: few,
                    history_some_up_to: some,
                },
                publishing: PublishingPolicy {
                    block_critical_without_exception: self
                        .publishing
                        .block_critical_without_exception,
                    block_unsigned_without_exception: self
                        .publishing
                        .block_unsigned_without_exception,
                },
                cab: CabPolicy {
                    risk_threshold: self.cab.risk_threshold,
                    from_ring: self.cab.from_ring,
                    privileged_always: self.cab.privileged_always,
                    always_for_classes: self.cab.always_for_classes,
                    quorum: self.cab.quorum,
                    approval_window_standard: Duration::hours(i64::from(
                        self.cab.approval_window_hours.standard,
                    )),
                    approval_window_urgent: Duration::hours(i64::from(
                        self.cab.approval_window_hours.urgent,
                    )),
                },
                gates: GatePolicy {
                    rings,
                    time_to_compliance: self
                        .gates
                        .time_to_compliance_hours
                        .into_iter()
                        .map(|(k, h)| (k, Duration::hours(i64::from(h))))
                        .collect(),
                    max_security_incidents: self.gates.max_security_incidents,
                    rollback_validated_before_ring: self.gates.rollback_validated_before_ring,
                    stale_after: Duration::days(i64::from(self.gates.stale_after_days)),
                    group_size_tolerance,
                },
                exceptions: ExceptionPolicy {
                    default_expiry: Duration::days(i64::from(e.default_expiry_days)),
                    max_expiry: Duration::days(i64::from(e.max_expiry_days)),
                    max_extension: Duration::days(i64::from(e.max_extension_days)),
                    max_extensions: e.max_extensions,
                    cab_also_for_types: e.cab_also_for_types.clone(),
                    cab_also_when_risk_above: e.cab_also_when_risk_above,
                    cab_also_when_privileged: e.cab_also_when_privileged,
                    break_glass_distinct_approvers: e.break_glass_distinct_approvers,
                },
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_policy_is_valid_and_matches_the_spec() {
        let p = Policy::bundled();
        assert_eq!(p.risk.model_version, "1.0");
        let weights: Vec<u8> = Factor::ALL.iter().map(|f| p.risk.weight(*f)).collect();
        assert_eq!(weights, vec![20, 15, 10, 10, 15, 10, 10, 10]);
        assert_eq!(p.risk.critical_target_multiplier_per_mille, 1200);
        assert_eq!(p.cab.quorum(BlastRadiusClass::BusinessCritical), 2);
        assert_eq!(p.cab.quorum(BlastRadiusClass::CriticalInfrastructure), 3);
        assert_eq!(
            p.gates.ring(Ring::Canary).min_success_rate.basis_points(),
            9700
        );
        assert_eq!(
            p.gates.ring(Ring::Department).min_observation,
            Duration::days(7)
        );
        assert_eq!(
            p.gates.time_to_compliance(SiteClass::AirGapped),
            Duration::days(7)
        );
        assert_eq!(p.exceptions.default_expiry, Duration::days(90));
    }

    fn edited(f: impl FnOnce(&mut serde_json::Value)) -> Result<Policy, PolicyError> {
        let mut v: serde_json::Value = serde_json::from_str(BUNDLED_POLICY_JSON).unwrap();
        f(&mut v);
        Policy::from_json(&v.to_string())
    }

    #[test]
    fn weights_not_summing_to_100_are_refused() {
        let err =
            edited(|v| v["risk_model"]["factors"]["history"]["weight"] = 11.into()).unwrap_err();
        assert!(
            err.to_string()
                .contains("weights must sum to 100, they sum to 101"),
            "{err}"
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let err = edited(|v| {
            v["risk_model"]["factors"]["data_access"]["rubric"]
                .as_object_mut()
                .unwrap()
                .remove("documents");
            v["risk_model"]["factors"]["privilege_impact"]["rubric"]["admin_install"] = 1.7.into();
            v["gates"]["rings"].as_object_mut().unwrap().remove("3");
        })
        .unwrap_err();
        let PolicyError::Invalid(problems) = err else {
            panic!("{err:?}")
        };
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert!(
            fields.contains(&"risk_model.factors.data_access.rubric.documents"),
            "{fields:?}"
        );
        assert!(fields.contains(&"risk_model.factors.privilege_impact.rubric.admin_install"));
        assert!(fields.contains(&"gates.rings.3"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(matches!(
            edited(|v| v["cab"]["surprise"] = true.into()),
            Err(PolicyError::Malformed(_))
        ));
    }
}
