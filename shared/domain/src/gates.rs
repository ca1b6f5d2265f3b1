//! Promotion gates: may a deployment leave its ring? Each gate is checked against the policy and
//! recorded with its threshold and actual value; the verdict is promote, hold or halt.
//!
//! - success rate: installed ÷ applicable devices must reach the ring's threshold. The devices are
//!   the ring's population: every member of the ring's group as its platform knows it, whether
//!   it has reported or not (a device without a report is pending; one that has not contacted
//!   its platform for longer than the policy allows is pending and named stale). Not-applicable
//!   devices are left out. While the rate may still get there it is pending; once the failures
//!   make it unreachable it fails.
//! - coverage: every platform of the submission has reported the ring's status since the ring
//!   was entered; until then the ring holds.
//! - group size: the ring's groups hold no more devices than the rollout plan targets, within the
//!   policy's tolerance; more means the wrong group was assigned (a blast radius nobody
//!   approved), and halts. Fewer is recorded as a finding: the ring proves less than planned.
//! - observation: time in the ring must reach the ring's minimum.
//! - time to compliance, per site class: the time from entering the ring until the success
//!   threshold was reached among that class's devices must stay within the class's limit.
//! - security incidents: open incidents attributable to the package must not exceed the maximum (0).
//! - rollback validated before the ring the policy names (Ring 1).
//! - CAB approval for the next ring, where the CAB rules require it.
//!
//! Any failed gate halts (unless an exception in effect waives it); otherwise any pending gate
//! holds; otherwise the deployment is promoted, or completed if this was its last ring.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use time::Duration;

use crate::cab::CabStatus;
use crate::evidence::{Platform, SiteClass};
use crate::exception::Waivers;
use crate::ids::ExceptionId;
use crate::policy::Policy;
use crate::ring::Ring;
use crate::time::{Timestamp, hours};
use crate::units::Percent;

string_enum!(
    GateKind {
        SuccessRate => "success_rate",
        ObservationTime => "observation_time",
        TimeToCompliance => "time_to_compliance",
        SecurityIncidents => "security_incidents",
        RollbackValidated => "rollback_validated",
        CabApproval => "cab_approval",
        Coverage => "coverage",
        GroupSize => "group_size",
    }
);

impl GateKind {
    /// Incidents, CAB approval and coverage (a platform that never reported) can never be waived
    /// by an exception.
    pub fn overridable(self) -> bool {
        !matches!(
            self,
            GateKind::SecurityIncidents | GateKind::CabApproval | GateKind::Coverage
        )
    }
}

string_enum!(
    /// A device's install result, the same for both platforms.
    InstallOutcome {
        Installed => "installed",
        Failed => "failed",
        Pending => "pending",
        NotApplicable => "not_applicable",
        /// A device of the ring's group with no report for the package yet (counted as pending).
        NotReported => "not_reported",
    }
);

/// One device's latest result, normalised from either platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceResult {
    pub device_id: String,
    pub platform: Platform,
    pub outcome: InstallOutcome,
    pub site_class: SiteClass,
    /// When the outcome was reported (for a device that has not reported: when it was read).
    pub at: Timestamp,
    /// When the device last contacted its platform, when the platform says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_contact: Option<Timestamp>,
}

/// What one status query of one platform found for a ring: the size of the ring's population
/// there, how much of it has reported, and what the query cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlatformStatus {
    pub platform: Platform,
    /// Devices of the ring's group as the platform knows them, earlier rings' devices left out.
    pub targeted: u64,
    /// Of those, devices with a report for the package (any outcome).
    pub reported: u64,
    /// Group members the platform no longer has (deleted during the rollout): skipped.
    pub missing: u64,
    /// Devices also in an earlier ring's group: they count toward that ring, not this one.
    pub earlier_ring_devices: u64,
    pub queried_at: Timestamp,
    /// HTTP calls the query made, and how long it took.
    pub calls: u64,
    pub duration_ms: u64,
}

/// One platform's coverage of the ring, as a gate decision records it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Coverage {
    pub platform: Platform,
    pub targeted: u64,
    pub reported: u64,
    /// Reported ÷ targeted.
    pub coverage: Percent,
    /// Targeted devices with no contact with the platform for longer than the policy allows.
    pub stale: u64,
    pub missing: u64,
    /// When the platform was last asked; `None` when it has not reported since the ring began.
    pub queried_at: Option<Timestamp>,
}

string_enum!(
    GateStatus {
        Pass => "pass",
        Pending => "pending",
        Fail => "fail",
        /// Failed or pending, but an exception in effect waives it.
        Waived => "waived",
    }
);

/// A measured quantity, with its unit.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(tag = "unit", content = "value", rename_all = "snake_case")]
pub enum Measure {
    Percent(Percent),
    Hours(f64),
    Count(u64),
    Flag(bool),
    Approvals { have: u8, need: u8 },
    Text(String),
}

impl std::fmt::Display for Measure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Measure::Percent(p) => write!(f, "{p}"),
            Measure::Hours(h) => write!(f, "{h:.1} h"),
            Measure::Count(n) => write!(f, "{n}"),
            Measure::Flag(b) => write!(f, "{}", if *b { "yes" } else { "no" }),
            Measure::Approvals { have, need } => write!(f, "{have} of {need} approvals"),
            Measure::Text(t) => f.write_str(t),
        }
    }
}

/// One gate's result.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct GateCheck {
    pub gate: GateKind,
    /// The site class, for time to compliance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site_class: Option<SiteClass>,
    /// `>=` or `<=` or `==`: how actual is compared with threshold.
    pub comparison: &'static str,
    pub threshold: Measure,
    pub actual: Measure,
    pub status: GateStatus,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waived_by: Option<ExceptionId>,
}

string_enum!(
    Verdict { Promote => "promote", Hold => "hold", Halt => "halt" }
);

/// The record of one gate evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct GateDecision {
    pub ring: Ring,
    pub evaluated_at: Timestamp,
    pub policy_version: String,
    pub verdict: Verdict,
    /// The ring promotion leads to; `None` when promotion completes the deployment.
    pub next_ring: Option<Ring>,
    /// Everything else passed and only CAB approval for `next_ring` is missing.
    pub awaiting_cab: bool,
    pub checks: Vec<GateCheck>,
    /// Reported ÷ targeted per platform of the submission.
    pub coverage: Vec<Coverage>,
}

impl GateDecision {
    pub fn check(&self, gate: GateKind) -> Option<&GateCheck> {
        self.checks.iter().find(|c| c.gate == gate)
    }

    /// Readable reasons for a hold or halt.
    pub fn reasons(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| matches!(c.status, GateStatus::Fail | GateStatus::Pending))
            .map(|c| format!("{} {}: {}", c.gate, c.status, c.detail))
            .collect()
    }
}

/// What a gate evaluation reads.
#[derive(Debug, Clone)]
pub struct GateInput<'a> {
    pub ring: Ring,
    pub entered_at: Timestamp,
    pub now: Timestamp,
    /// The ring's population: one result per targeted device, `NotReported` for a device
    /// without a report, as the latest status query of each platform found it.
    pub devices: &'a [DeviceResult],
    /// The platforms of the submission: each must report before promotion.
    pub platforms: &'a [Platform],
    /// The latest status query of each platform that has reported for this ring.
    pub statuses: &'a [PlatformStatus],
    /// The rollout plan's device count for the ring.
    pub planned_targets: Option<u64>,
    /// Used for time to compliance when no device has reported yet.
    pub planned_site_class: SiteClass,
    pub open_incidents: u32,
    pub rollback_validated: bool,
    /// The next ring of the plan and its CAB status; `None` when this is the last ring.
    pub next: Option<(Ring, CabStatus)>,
    pub waivers: &'a Waivers,
}

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    installed: u64,
    failed: u64,
    /// Reported pending, or not reported at all.
    pending: u64,
    /// Devices with a report (any outcome, not applicable included).
    reported: u64,
    /// All devices, not applicable included.
    targeted: u64,
    /// Pending devices that have not contacted their platform for longer than the policy allows.
    stale: u64,
}

impl Tally {
    fn applicable(self) -> u64 {
        self.installed + self.failed + self.pending
    }

    fn add(&mut self, d: &DeviceResult, stale_before: Timestamp) {
        self.targeted += 1;
        if d.outcome != InstallOutcome::NotReported {
            self.reported += 1;
        }
        match d.outcome {
            InstallOutcome::Installed => self.installed += 1,
            InstallOutcome::Failed => self.failed += 1,
            InstallOutcome::Pending | InstallOutcome::NotReported => {
                self.pending += 1;
                if d.last_contact.is_some_and(|c| c < stale_before) {
                    self.stale += 1;
                }
            }
            InstallOutcome::NotApplicable => {}
        }
    }
}

fn tally<'a>(devices: impl Iterator<Item = &'a DeviceResult>, stale_before: Timestamp) -> Tally {
    let mut t = Tally::default();
    for d in devices {
        t.add(d, stale_before);
    }
    t
}

/// Devices whose last contact is before this are stale.
fn stale_before(input: &GateInput<'_>, policy: &Policy) -> Timestamp {
    input.now.plus(-policy.gates.stale_after)
}

fn success_rate(input: &GateInput<'_>, threshold: Percent, policy: &Policy) -> GateCheck {
    let t = tally(input.devices.iter(), stale_before(input, policy));
    let applicable = t.applicable();
    let actual = Percent::ratio(t.installed, applicable).unwrap_or_default();
    let stale = if t.stale > 0 {
        format!(
            " ({} stale: no contact with their platform for more than {} days)",
            t.stale,
            policy.gates.stale_after.whole_days()
        )
    } else {
        String::new()
    };
    let counts = format!(
        "{} of {} reported; {} installed, {} pending{stale}, {} failed of {applicable}",
        t.reported, t.targeted, t.installed, t.pending, t.failed
    );
    let (mut status, mut detail) = if t.targeted == 0 {
        (
            GateStatus::Pending,
            "no devices known in the ring yet".to_owned(),
        )
    } else if applicable == 0 {
        (GateStatus::Pending, format!("{counts}: none applicable"))
    } else {
        match rate_status(t, threshold) {
            GateStatus::Fail => (
                GateStatus::Fail,
                format!("{counts}; {threshold} can no longer be reached"),
            ),
            other => (other, counts),
        }
    };
    let mut actual = actual;
    // Each platform must reach the threshold on its own: a pooled rate would let a platform
    // that failed hide behind a larger one that did not. The platform that decides is named.
    if input.platforms.len() > 1 {
        for &platform in input.platforms {
            let p = tally(
                input.devices.iter().filter(|d| d.platform == platform),
                stale_before(input, policy),
            );
            if p.applicable() == 0 {
                continue;
            }
            let mine = rate_status(p, threshold);
            if severity(mine) > severity(status) {
                status = mine;
                actual = Percent::ratio(p.installed, p.applicable()).unwrap_or_default();
                let _ = write!(
                    detail,
                    "; {platform}: {} of {} installed ({actual}), {}",
                    p.installed,
                    p.applicable(),
                    if mine == GateStatus::Fail {
                        format!("{threshold} can no longer be reached there")
                    } else {
                        format!("not yet {threshold}")
                    }
                );
            }
        }
    }
    GateCheck {
        gate: GateKind::SuccessRate,
        site_class: None,
        comparison: ">=",
        threshold: Measure::Percent(threshold),
        actual: Measure::Percent(actual),
        status,
        detail,
        waived_by: None,
    }
}

/// Where a tally with applicable devices stands against `threshold`.
fn rate_status(t: Tally, threshold: Percent) -> GateStatus {
    let applicable = t.applicable();
    if threshold.is_met_by(t.installed, applicable) {
        GateStatus::Pass
    } else if !threshold.is_met_by(t.installed + t.pending, applicable) {
        GateStatus::Fail
    } else {
        GateStatus::Pending
    }
}

/// How bad a check's status is for the verdict: the higher, the worse.
fn severity(s: GateStatus) -> u8 {
    match s {
        GateStatus::Pass | GateStatus::Waived => 0,
        GateStatus::Pending => 1,
        GateStatus::Fail => 2,
    }
}

fn observation(input: &GateInput<'_>, min: Duration) -> GateCheck {
    let elapsed = input.now.since(input.entered_at);
    let status = if elapsed >= min {
        GateStatus::Pass
    } else {
        GateStatus::Pending
    };
    GateCheck {
        gate: GateKind::ObservationTime,
        site_class: None,
        comparison: ">=",
        threshold: Measure::Hours(hours(min)),
        actual: Measure::Hours(hours(elapsed)),
        status,
        detail: format!("in the ring since {}", input.entered_at),
        waived_by: None,
    }
}

/// Install times as the gate counts them: a platform's clock may run ahead of or behind ours, so
/// a time after the evaluation is counted at the evaluation, and one before the ring was entered
/// at the entry. How many were moved each way is kept, for the check's detail.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Clamped {
    /// Install times later than the evaluation time (platform clock ahead).
    ahead: usize,
    /// Install times earlier than the ring's entry (platform clock behind).
    behind: usize,
}

impl Clamped {
    fn clamp(&mut self, at: Timestamp, entered_at: Timestamp, now: Timestamp) -> Timestamp {
        if at > now {
            self.ahead += 1;
            now
        } else if at < entered_at {
            self.behind += 1;
            entered_at
        } else {
            at
        }
    }

    /// The sentence the check's detail ends with, when any time was clamped.
    fn note(self) -> String {
        let mut parts = Vec::new();
        if self.ahead > 0 {
            parts.push(format!(
                "{} install time(s) later than the evaluation time (platform clock ahead) counted at the evaluation time",
                self.ahead
            ));
        }
        if self.behind > 0 {
            parts.push(format!(
                "{} install time(s) earlier than the ring entry (platform clock behind) counted at the entry",
                self.behind
            ));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("; {}", parts.join("; "))
        }
    }
}

/// When the threshold was reached among `devices` (all of one site class), if it was, with the
/// install times clamped into [entry, evaluation].
fn compliance_reached_at(
    devices: &[&DeviceResult],
    threshold: Percent,
    input: &GateInput<'_>,
) -> (Option<Timestamp>, Clamped) {
    let t = tally(devices.iter().copied(), input.entered_at);
    let applicable = t.applicable();
    let mut clamped = Clamped::default();
    let mut installs: Vec<Timestamp> = devices
        .iter()
        .filter(|d| d.outcome == InstallOutcome::Installed)
        .map(|d| clamped.clamp(d.at, input.entered_at, input.now))
        .collect();
    installs.sort_unstable();
    let reached = installs
        .iter()
        .enumerate()
        .find(|(i, _)| threshold.is_met_by(u64::try_from(*i).unwrap_or(u64::MAX) + 1, applicable))
        .map(|(_, at)| *at);
    (reached, clamped)
}

fn time_to_compliance(
    input: &GateInput<'_>,
    threshold: Percent,
    policy: &Policy,
) -> Vec<GateCheck> {
    let mut by_class: BTreeMap<SiteClass, Vec<&DeviceResult>> = BTreeMap::new();
    for d in input.devices {
        if d.outcome != InstallOutcome::NotApplicable {
            by_class.entry(d.site_class).or_default().push(d);
        }
    }
    if by_class.is_empty() {
        by_class.insert(input.planned_site_class, Vec::new());
    }
    by_class
        .into_iter()
        .map(|(class, devices)| {
            let limit = policy.gates.time_to_compliance(class);
            let (reached, clamped) = compliance_reached_at(&devices, threshold, input);
            let (actual, status, detail) = match reached {
                Some(at) => {
                    let took = at.since(input.entered_at).max(Duration::ZERO);
                    let status = if took <= limit {
                        GateStatus::Pass
                    } else {
                        GateStatus::Fail
                    };
                    (
                        took,
                        status,
                        format!(
                            "{threshold} of {} {class} devices installed at {at}{}",
                            devices.len(),
                            clamped.note()
                        ),
                    )
                }
                None => {
                    let so_far = input.now.since(input.entered_at);
                    // No applicable device has reported in this class: nothing has missed the
                    // limit yet (the coverage and success-rate gates hold the ring meanwhile).
                    let status = if so_far <= limit || devices.is_empty() {
                        GateStatus::Pending
                    } else {
                        GateStatus::Fail
                    };
                    (
                        so_far,
                        status,
                        format!(
                            "{threshold} of {class} devices not yet installed{}",
                            clamped.note()
                        ),
                    )
                }
            };
            GateCheck {
                gate: GateKind::TimeToCompliance,
                site_class: Some(class),
                comparison: "<=",
                threshold: Measure::Hours(hours(limit)),
                actual: Measure::Hours(hours(actual)),
                status,
                detail,
                waived_by: None,
            }
        })
        .collect()
}

/// Each platform's coverage of the ring, from its latest status since the ring was entered.
fn coverage(input: &GateInput<'_>, policy: &Policy) -> Vec<Coverage> {
    let stale_before = stale_before(input, policy);
    input
        .platforms
        .iter()
        .map(|&platform| {
            let status = input
                .statuses
                .iter()
                .find(|s| s.platform == platform && s.queried_at >= input.entered_at);
            let t = tally(
                input.devices.iter().filter(|d| d.platform == platform),
                stale_before,
            );
            Coverage {
                platform,
                targeted: t.targeted,
                reported: t.reported,
                coverage: Percent::ratio(t.reported, t.targeted).unwrap_or_default(),
                stale: t.stale,
                missing: status.map_or(0, |s| s.missing),
                queried_at: status.map(|s| s.queried_at),
            }
        })
        .collect()
}

fn coverage_check(coverage: &[Coverage]) -> GateCheck {
    // A platform whose group holds no device has not shown anything: an empty or wrong group
    // must not let the ring promote with that platform untested.
    let have = coverage
        .iter()
        .filter(|c| c.queried_at.is_some() && c.targeted > 0)
        .count();
    let parts: Vec<String> = coverage
        .iter()
        .map(|c| match c.queried_at {
            None => format!("{} has not reported since the ring began", c.platform),
            Some(_) if c.targeted == 0 => format!(
                "{} reported no device in the ring's group: is the group empty or wrong?",
                c.platform
            ),
            Some(_) => {
                let stale = if c.stale > 0 {
                    format!(", {} stale", c.stale)
                } else {
                    String::new()
                };
                let gone = if c.missing > 0 {
                    format!(", {} gone from the platform", c.missing)
                } else {
                    String::new()
                };
                format!(
                    "{} {} of {} reported ({}){stale}{gone}",
                    c.platform, c.reported, c.targeted, c.coverage
                )
            }
        })
        .collect();
    let count = |n: usize| Measure::Count(u64::try_from(n).unwrap_or(u64::MAX));
    GateCheck {
        gate: GateKind::Coverage,
        site_class: None,
        comparison: ">=",
        threshold: count(coverage.len()),
        actual: count(have),
        status: if have == coverage.len() {
            GateStatus::Pass
        } else {
            GateStatus::Pending
        },
        detail: parts.join("; "),
        waived_by: None,
    }
}

fn group_size(input: &GateInput<'_>, coverage: &[Coverage], tolerance: Percent) -> GateCheck {
    let targeted: u64 = coverage.iter().map(|c| c.targeted).sum();
    let mut check = GateCheck {
        gate: GateKind::GroupSize,
        site_class: None,
        comparison: "<=",
        threshold: Measure::Count(0),
        actual: Measure::Count(0),
        status: GateStatus::Pass,
        detail: String::new(),
        waived_by: None,
    };
    let Some(planned) = input.planned_targets else {
        "the plan gives no device count for the ring".clone_into(&mut check.detail);
        return check;
    };
    if coverage.iter().any(|c| c.queried_at.is_none()) {
        check.status = GateStatus::Pending;
        check.detail =
            format!("the plan targets {planned} devices; waiting for every platform's group");
        return check;
    }
    let difference = targeted.abs_diff(planned);
    // The largest difference within the tolerance, rounded down: exact, in integers.
    let allowed =
        u64::try_from(u128::from(planned) * u128::from(tolerance.basis_points()) / 10_000)
            .unwrap_or(u64::MAX);
    check.threshold = Measure::Count(allowed);
    check.actual = Measure::Count(difference);
    if targeted > planned && difference > allowed {
        // More devices than the CAB and the risk score were told: the blast radius is wrong.
        check.status = GateStatus::Fail;
        check.detail = format!(
            "the groups hold {targeted} devices but the plan targets {planned}: {difference} more, over the {tolerance} tolerance ({allowed}); is the right group assigned?"
        );
    } else if difference > allowed {
        // Fewer: nothing beyond what was approved is exposed, but the ring proves less than
        // planned. Recorded as a finding for the CAB and the auditors.
        check.detail = format!(
            "finding: the groups hold {targeted} devices, {difference} fewer than the {planned} the plan targets (over the {tolerance} tolerance); the ring proves less than planned"
        );
    } else {
        check.detail = format!(
            "the groups hold {targeted} devices, the plan targets {planned} (difference {difference}, at most {allowed} allowed by the {tolerance} tolerance)"
        );
    }
    check
}

fn incidents(input: &GateInput<'_>, max: u32) -> GateCheck {
    GateCheck {
        gate: GateKind::SecurityIncidents,
        site_class: None,
        comparison: "<=",
        threshold: Measure::Count(u64::from(max)),
        actual: Measure::Count(u64::from(input.open_incidents)),
        status: if input.open_incidents <= max {
            GateStatus::Pass
        } else {
            GateStatus::Fail
        },
        detail: format!(
            "{} open incident(s) attributed to the package",
            input.open_incidents
        ),
        waived_by: None,
    }
}

fn rollback(input: &GateInput<'_>, before: Ring) -> GateCheck {
    let needed = input.next.as_ref().is_none_or(|(next, _)| *next >= before);
    let status = if input.rollback_validated || !needed {
        GateStatus::Pass
    } else {
        GateStatus::Fail
    };
    GateCheck {
        gate: GateKind::RollbackValidated,
        site_class: None,
        comparison: "==",
        threshold: Measure::Flag(needed),
        actual: Measure::Flag(input.rollback_validated),
        status,
        detail: if needed {
            format!("rollback must be validated in Ring 0 before {before}")
        } else {
            "not needed before this ring".to_owned()
        },
        waived_by: None,
    }
}

fn cab(input: &GateInput<'_>) -> GateCheck {
    let (status, actual, need, detail) = match &input.next {
        None => (
            GateStatus::Pass,
            0,
            0,
            "last ring: nothing to approve".to_owned(),
        ),
        Some((ring, s)) => match s {
            CabStatus::NotRequired => (GateStatus::Pass, 0, 0, format!("{ring} needs no CAB")),
            CabStatus::Approved { approvers, .. } => (
                GateStatus::Pass,
                u8::try_from(approvers.len()).unwrap_or(u8::MAX),
                u8::try_from(approvers.len()).unwrap_or(u8::MAX),
                format!(
                    "{ring} approved by {}",
                    approvers
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            CabStatus::Pending { approvals, quorum } => (
                GateStatus::Pending,
                *approvals,
                *quorum,
                format!("{ring} awaits CAB approval"),
            ),
            CabStatus::Rejected { by, reason } => (
                GateStatus::Fail,
                0,
                1,
                format!("{ring} rejected by {by}: {reason}"),
            ),
        },
    };
    GateCheck {
        gate: GateKind::CabApproval,
        site_class: None,
        comparison: ">=",
        threshold: Measure::Approvals { have: need, need },
        actual: Measure::Approvals { have: actual, need },
        status,
        detail,
        waived_by: None,
    }
}

/// Evaluates every gate of `input.ring` and decides.
pub fn evaluate(input: &GateInput<'_>, policy: &Policy) -> GateDecision {
    let ring_policy = policy.gates.ring(input.ring);
    let coverage = coverage(input, policy);
    let mut checks = vec![
        success_rate(input, ring_policy.min_success_rate, policy),
        coverage_check(&coverage),
        group_size(input, &coverage, policy.gates.group_size_tolerance),
        observation(input, ring_policy.min_observation),
    ];
    checks.extend(time_to_compliance(
        input,
        ring_policy.min_success_rate,
        policy,
    ));
    checks.push(incidents(input, policy.gates.max_security_incidents));
    checks.push(rollback(input, policy.gates.rollback_validated_before_ring));
    checks.push(cab(input));

    for c in &mut checks {
        if matches!(c.status, GateStatus::Fail | GateStatus::Pending)
            && c.gate.overridable()
            && let Some(id) = input.waivers.gate_override(input.ring, c.gate)
        {
            c.status = GateStatus::Waived;
            c.waived_by = Some(id.clone());
        }
    }

    let failed = checks.iter().any(|c| c.status == GateStatus::Fail);
    let pending: Vec<GateKind> = checks
        .iter()
        .filter(|c| c.status == GateStatus::Pending)
        .map(|c| c.gate)
        .collect();
    let verdict = if failed {
        Verdict::Halt
    } else if pending.is_empty() {
        Verdict::Promote
    } else {
        Verdict::Hold
    };
    GateDecision {
        ring: input.ring,
        evaluated_at: input.now,
        policy_version: policy.version.clone(),
        verdict,
        next_ring: input.next.as_ref().map(|(r, _)| *r),
        awaiting_cab: verdict == Verdict::Hold && pending == [GateKind::CabApproval],
        checks,
        coverage,
    }
}
