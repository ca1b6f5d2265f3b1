//! Promotion gates at every ring's boundary and for every site class.

mod common;

use common::{policy, t0};
use eucora_domain::cab::CabStatus;
use eucora_domain::evidence::{Platform, SiteClass};
use eucora_domain::exception::Waivers;
use eucora_domain::gates::{
    DeviceResult, GateInput, GateKind, GateStatus, InstallOutcome, PlatformStatus, Verdict,
    evaluate,
};
use eucora_domain::{ActorId, ExceptionId, Ring, Timestamp};
use time::Duration;

fn devices(
    site: SiteClass,
    installed: u64,
    failed: u64,
    pending: u64,
    at: Timestamp,
) -> Vec<DeviceResult> {
    let mut out = Vec::new();
    let mut push = |n: u64, outcome: InstallOutcome| {
        for _ in 0..n {
            out.push(DeviceResult {
                device_id: format!("dev-{}", out.len()),
                platform: if out.len() % 2 == 0 {
                    Platform::Windows
                } else {
                    Platform::Macos
                },
                outcome,
                site_class: site,
                at,
                last_contact: Some(at),
            });
        }
    };
    push(installed, InstallOutcome::Installed);
    push(failed, InstallOutcome::Failed);
    push(pending, InstallOutcome::Pending);
    out
}

struct Case {
    ring: Ring,
    elapsed: Duration,
    devices: Vec<DeviceResult>,
    incidents: u32,
    rollback_validated: bool,
    next: Option<(Ring, CabStatus)>,
    waivers: Waivers,
    /// The submission's platforms.
    platforms: Vec<Platform>,
    /// The platforms that have reported since the ring was entered (default: all of them).
    reported_platforms: Option<Vec<Platform>>,
    /// The plan's device count (default: the number of devices).
    planned: Option<u64>,
    /// The platforms' statuses as given (default: from `reported_platforms`, taken now).
    explicit_statuses: Option<Vec<PlatformStatus>>,
}

impl Case {
    /// A ring that has met every gate: observed long enough, everything installed an hour in.
    fn passing(ring: Ring) -> Case {
        let min = policy().gates.ring(ring).min_observation;
        Case {
            ring,
            elapsed: min,
            devices: devices(SiteClass::Online, 100, 0, 0, t0().plus(Duration::hours(1))),
            incidents: 0,
            rollback_validated: true,
            next: ring.next().map(|r| (r, CabStatus::NotRequired)),
            waivers: Waivers::default(),
            platforms: vec![Platform::Windows, Platform::Macos],
            reported_platforms: None,
            planned: None,
            explicit_statuses: None,
        }
    }

    fn statuses(&self) -> Vec<PlatformStatus> {
        let now = t0().plus(self.elapsed);
        self.reported_platforms
            .clone()
            .unwrap_or_else(|| self.platforms.clone())
            .into_iter()
            .map(|platform| {
                let mine = self.devices.iter().filter(|d| d.platform == platform);
                PlatformStatus {
                    platform,
                    targeted: mine.clone().count() as u64,
                    reported: mine
                        .filter(|d| d.outcome != InstallOutcome::NotReported)
                        .count() as u64,
                    missing: 0,
                    earlier_ring_devices: 0,
                    queried_at: now,
                    calls: 1,
                    duration_ms: 1,
                }
            })
            .collect()
    }

    fn run(&self) -> eucora_domain::gates::GateDecision {
        let statuses = self
            .explicit_statuses
            .clone()
            .unwrap_or_else(|| self.statuses());
        evaluate(
            &GateInput {
                ring: self.ring,
                entered_at: t0(),
                now: t0().plus(self.elapsed),
                devices: &self.devices,
                platforms: &self.platforms,
                statuses: &statuses,
                planned_targets: Some(self.planned.unwrap_or(self.devices.len() as u64)),
                planned_site_class: SiteClass::Online,
                open_incidents: self.incidents,
                rollback_validated: self.rollback_validated,
                next: self.next.clone(),
                waivers: &self.waivers,
            },
            &policy(),
        )
    }
}

#[test]
fn every_ring_promotes_when_all_gates_pass() {
    for ring in Ring::ALL {
        let d = Case::passing(ring).run();
        assert_eq!(d.verdict, Verdict::Promote, "{ring}: {:?}", d.reasons());
        assert_eq!(d.next_ring, ring.next());
        assert!(d.checks.iter().all(|c| c.status == GateStatus::Pass));
    }
}

#[test]
fn success_rate_exactly_at_the_threshold_passes_and_just_below_fails_in_every_ring() {
    for ring in Ring::ALL {
        let bp = u64::from(policy().gates.ring(ring).min_success_rate.basis_points());
        let at = t0().plus(Duration::hours(1));
        let mut c = Case::passing(ring);
        c.devices = devices(SiteClass::Online, bp, 10_000 - bp, 0, at);
        let d = c.run();
        assert_eq!(
            d.check(GateKind::SuccessRate).unwrap().status,
            GateStatus::Pass,
            "{ring} at {bp}"
        );
        assert_eq!(d.verdict, Verdict::Promote, "{ring}");

        c.devices = devices(SiteClass::Online, bp - 1, 10_000 - bp + 1, 0, at);
        let d = c.run();
        let check = d.check(GateKind::SuccessRate).unwrap();
        assert_eq!(check.status, GateStatus::Fail, "{ring} just below");
        assert_eq!(d.verdict, Verdict::Halt, "{ring}");
        assert!(check.actual.to_string().starts_with(&format!(
            "{}.{:02}",
            (bp - 1) / 100,
            (bp - 1) % 100
        )));
    }
}

#[test]
fn a_reachable_success_rate_holds_instead_of_halting() {
    let mut c = Case::passing(Ring::Canary);
    c.devices = devices(SiteClass::Online, 90, 2, 8, t0().plus(Duration::hours(1)));
    c.elapsed = Duration::hours(12);
    let d = c.run();
    assert_eq!(
        d.check(GateKind::SuccessRate).unwrap().status,
        GateStatus::Pending
    );
    assert_eq!(d.verdict, Verdict::Hold);
}

#[test]
fn no_telemetry_holds() {
    let mut c = Case::passing(Ring::Canary);
    c.devices.clear();
    c.elapsed = Duration::hours(1);
    let d = c.run();
    assert_eq!(
        d.check(GateKind::SuccessRate).unwrap().status,
        GateStatus::Pending
    );
    assert_eq!(d.verdict, Verdict::Hold);
}

#[test]
fn not_applicable_devices_do_not_count() {
    let mut c = Case::passing(Ring::Canary);
    c.devices.extend(devices(SiteClass::Online, 0, 0, 0, t0()));
    let mut na = devices(SiteClass::Online, 50, 0, 0, t0());
    for d in &mut na {
        d.outcome = InstallOutcome::NotApplicable;
    }
    c.devices.extend(na);
    assert_eq!(c.run().verdict, Verdict::Promote);
}

#[test]
fn observation_time_exactly_at_the_minimum_passes_and_just_below_holds_in_every_ring() {
    for ring in Ring::ALL {
        let min = policy().gates.ring(ring).min_observation;
        let mut c = Case::passing(ring);
        c.elapsed = min;
        assert_eq!(
            c.run().check(GateKind::ObservationTime).unwrap().status,
            GateStatus::Pass
        );
        c.elapsed = min - Duration::seconds(1);
        let d = c.run();
        assert_eq!(
            d.check(GateKind::ObservationTime).unwrap().status,
            GateStatus::Pending,
            "{ring}"
        );
        assert_eq!(d.verdict, Verdict::Hold, "{ring}");
    }
}

#[test]
fn the_spec_observation_minimums() {
    let p = policy();
    let hours: Vec<i64> = Ring::ALL
        .iter()
        .map(|r| p.gates.ring(*r).min_observation.whole_hours())
        .collect();
    assert_eq!(hours, vec![24, 48, 72, 168, 720]);
    let rates: Vec<u32> = Ring::ALL
        .iter()
        .map(|r| p.gates.ring(*r).min_success_rate.basis_points())
        .collect();
    assert_eq!(rates, vec![9500, 9700, 9800, 9900, 9900]);
}

#[test]
fn time_to_compliance_exactly_at_the_limit_passes_and_just_over_fails_for_every_site_class() {
    let p = policy();
    for site in SiteClass::ALL {
        let limit = p.gates.time_to_compliance(*site);
        let mut c = Case::passing(Ring::Department); // 7 days observation, longest TTC fits
        c.devices = devices(*site, 100, 0, 0, t0().plus(limit));
        let d = c.run();
        let ttc = d
            .checks
            .iter()
            .find(|x| x.gate == GateKind::TimeToCompliance)
            .unwrap();
        assert_eq!(ttc.site_class, Some(*site));
        assert_eq!(ttc.status, GateStatus::Pass, "{site} at the limit");
        assert_eq!(d.verdict, Verdict::Promote, "{site}");

        // Evaluated after the late installs (an install later than the evaluation is clock skew,
        // clamped: see the skew tests below).
        c.elapsed = c.elapsed.max(limit + Duration::hours(1));
        c.devices = devices(*site, 100, 0, 0, t0().plus(limit + Duration::seconds(1)));
        let d = c.run();
        let ttc = d
            .checks
            .iter()
            .find(|x| x.gate == GateKind::TimeToCompliance)
            .unwrap();
        assert_eq!(ttc.status, GateStatus::Fail, "{site} just over");
        assert_eq!(d.verdict, Verdict::Halt, "{site}");
    }
}

#[test]
fn time_to_compliance_is_judged_per_site_class() {
    let p = policy();
    let mut c = Case::passing(Ring::Department);
    // Online devices took 30 h (over 24 h); intermittent took 30 h too (within 72 h).
    let at = t0().plus(Duration::hours(30));
    c.devices = devices(SiteClass::Online, 50, 0, 0, at);
    c.devices
        .extend(devices(SiteClass::Intermittent, 50, 0, 0, at));
    let d = c.run();
    let by_site: Vec<(SiteClass, GateStatus)> = d
        .checks
        .iter()
        .filter(|x| x.gate == GateKind::TimeToCompliance)
        .map(|x| (x.site_class.unwrap(), x.status))
        .collect();
    assert_eq!(
        by_site,
        vec![
            (SiteClass::Online, GateStatus::Fail),
            (SiteClass::Intermittent, GateStatus::Pass)
        ]
    );
    assert_eq!(
        p.gates
            .time_to_compliance(SiteClass::Intermittent)
            .whole_hours(),
        72
    );
}

fn ttc(d: &eucora_domain::gates::GateDecision) -> &eucora_domain::gates::GateCheck {
    d.check(GateKind::TimeToCompliance)
        .expect("a time-to-compliance check")
}

/// A platform whose clock runs ahead stamps installs after our evaluation time: they are counted
/// at the evaluation time, so time to compliance is never more than the time in the ring, and the
/// detail says so.
#[test]
fn install_times_from_a_platform_clock_ahead_are_clamped_to_the_evaluation_time() {
    let mut c = Case::passing(Ring::Canary);
    c.elapsed = Duration::hours(20);
    // Installed within 20 h by our clock, stamped 177 h in by the platform's.
    c.devices = devices(
        SiteClass::Online,
        100,
        0,
        0,
        t0().plus(Duration::hours(177)),
    );
    let d = c.run();
    let check = ttc(&d);
    assert_eq!(check.status, GateStatus::Pass, "{}", check.detail);
    assert_eq!(
        check.actual,
        eucora_domain::gates::Measure::Hours(eucora_domain::time::hours(c.elapsed))
    );
    assert!(
        check.detail.contains(
            "100 install time(s) later than the evaluation time (platform clock ahead) counted at the evaluation time"
        ),
        "{}",
        check.detail
    );
    // Still observing (48 h in Ring 1): a hold, not the halt an inflated 177 h would cause.
    assert_eq!(d.verdict, Verdict::Hold, "{:?}", d.reasons());
}

/// A platform whose clock runs behind stamps installs before the ring was entered: they are
/// counted at the entry, so time to compliance is never negative, and the detail says so.
#[test]
fn install_times_from_a_platform_clock_behind_are_clamped_to_the_ring_entry() {
    let mut c = Case::passing(Ring::Canary);
    c.devices = devices(SiteClass::Online, 60, 0, 0, t0().plus(Duration::hours(-3)));
    c.devices.extend(devices(
        SiteClass::Online,
        40,
        0,
        0,
        t0().plus(Duration::hours(2)),
    ));
    let d = c.run();
    let check = ttc(&d);
    assert_eq!(check.status, GateStatus::Pass, "{}", check.detail);
    // 95 % of 100 is reached by the 95th install: the 60 clamped to the entry plus 35 at 2 h.
    assert_eq!(check.actual, eucora_domain::gates::Measure::Hours(2.0));
    assert!(
        check.detail.contains(
            "60 install time(s) earlier than the ring entry (platform clock behind) counted at the entry"
        ),
        "{}",
        check.detail
    );
    // All behind: compliance at the entry, zero hours, never negative.
    c.devices = devices(
        SiteClass::Online,
        100,
        0,
        0,
        t0().plus(Duration::hours(-10)),
    );
    let d = c.run();
    assert_eq!(ttc(&d).actual, eucora_domain::gates::Measure::Hours(0.0));
}

#[test]
fn compliance_not_yet_reached_is_pending_until_the_limit_then_fails() {
    let mut c = Case::passing(Ring::Canary);
    c.devices = devices(SiteClass::Online, 50, 0, 50, t0().plus(Duration::hours(1)));
    c.elapsed = Duration::hours(24);
    assert_eq!(
        c.run()
            .checks
            .iter()
            .find(|x| x.gate == GateKind::TimeToCompliance)
            .unwrap()
            .status,
        GateStatus::Pending
    );
    c.elapsed = Duration::hours(25);
    assert_eq!(
        c.run()
            .checks
            .iter()
            .find(|x| x.gate == GateKind::TimeToCompliance)
            .unwrap()
            .status,
        GateStatus::Fail
    );
}

#[test]
fn an_open_incident_halts_and_cannot_be_waived() {
    let mut c = Case::passing(Ring::Canary);
    c.incidents = 1;
    c.waivers.gate_overrides.push((
        Ring::Canary,
        GateKind::SecurityIncidents,
        ExceptionId::parse("exc-x").unwrap(),
    ));
    let d = c.run();
    let check = d.check(GateKind::SecurityIncidents).unwrap();
    assert_eq!(check.status, GateStatus::Fail);
    assert_eq!(check.actual.to_string(), "1");
    assert_eq!(check.threshold.to_string(), "0");
    assert_eq!(d.verdict, Verdict::Halt);
}

#[test]
fn rollback_must_be_validated_before_ring_1() {
    let mut c = Case::passing(Ring::Lab);
    c.rollback_validated = false;
    let d = c.run();
    assert_eq!(
        d.check(GateKind::RollbackValidated).unwrap().status,
        GateStatus::Fail
    );
    assert_eq!(d.verdict, Verdict::Halt);
}

#[test]
fn missing_cab_approval_holds_awaiting_cab() {
    let mut c = Case::passing(Ring::Canary);
    c.next = Some((
        Ring::Pilot,
        CabStatus::Pending {
            approvals: 0,
            quorum: 1,
        },
    ));
    let d = c.run();
    assert_eq!(d.verdict, Verdict::Hold);
    assert!(d.awaiting_cab);
    // With CAB missing and a gate pending too, it is a plain hold.
    c.elapsed = Duration::hours(1);
    assert!(!c.run().awaiting_cab);
    // Approved: promote.
    c.elapsed = Duration::hours(48);
    c.next = Some((
        Ring::Pilot,
        CabStatus::Approved {
            approvers: vec![ActorId::parse("cab-1").unwrap()],
            conditions: vec![],
        },
    ));
    assert_eq!(c.run().verdict, Verdict::Promote);
}

#[test]
fn a_gate_override_exception_waives_one_gate_of_one_ring() {
    let mut c = Case::passing(Ring::Canary);
    c.elapsed = Duration::hours(2);
    c.waivers.gate_overrides.push((
        Ring::Canary,
        GateKind::ObservationTime,
        ExceptionId::parse("exc-7").unwrap(),
    ));
    let d = c.run();
    let check = d.check(GateKind::ObservationTime).unwrap();
    assert_eq!(check.status, GateStatus::Waived);
    assert_eq!(check.waived_by.as_ref().unwrap().as_str(), "exc-7");
    assert_eq!(d.verdict, Verdict::Promote);
    // Not for another ring.
    let mut other = Case::passing(Ring::Pilot);
    other.elapsed = Duration::hours(2);
    other.waivers = c.waivers.clone();
    assert_eq!(other.run().verdict, Verdict::Hold);
}

#[test]
fn the_decision_records_threshold_and_actual_for_every_gate() {
    let d = Case::passing(Ring::Canary).run();
    let json = serde_json::to_value(&d).unwrap();
    for check in json["checks"].as_array().unwrap() {
        assert!(check["threshold"]["unit"].is_string(), "{check}");
        assert!(!check["actual"]["value"].is_null(), "{check}");
        assert!(check["comparison"].is_string());
    }
    let gates: Vec<GateKind> = d.checks.iter().map(|c| c.gate).collect();
    for g in GateKind::ALL {
        assert!(gates.contains(g), "{g} missing");
    }
    assert_eq!(json["verdict"], "promote");
    assert_eq!(json["policy_version"], "1.0.0");
}

/// A ring's population of `targeted` devices, alternating platforms, of which the first
/// `installed` reported installed and the rest have not reported, last seen `last_seen`.
fn population(
    targeted: u64,
    installed: u64,
    at: Timestamp,
    last_seen: Timestamp,
) -> Vec<DeviceResult> {
    (0..targeted)
        .map(|i| DeviceResult {
            device_id: format!("dev-{i}"),
            platform: if i % 2 == 0 {
                Platform::Windows
            } else {
                Platform::Macos
            },
            outcome: if i < installed {
                InstallOutcome::Installed
            } else {
                InstallOutcome::NotReported
            },
            site_class: SiteClass::Online,
            at,
            last_contact: Some(if i < installed { at } else { last_seen }),
        })
        .collect()
}

#[test]
fn five_of_five_hundred_reported_all_installed_holds() {
    let mut c = Case::passing(Ring::Canary);
    // Twelve hours in: inside the 24 h time to compliance, so nothing has failed yet.
    c.elapsed = Duration::hours(12);
    let at = t0().plus(Duration::hours(1));
    c.devices = population(500, 5, at, at);
    let d = c.run();
    let rate = d.check(GateKind::SuccessRate).unwrap();
    assert_eq!(rate.status, GateStatus::Pending, "{}", rate.detail);
    assert!(
        rate.detail.starts_with("5 of 500 reported"),
        "{}",
        rate.detail
    );
    assert_eq!(rate.actual.to_string(), "1.00 %");
    assert_eq!(d.verdict, Verdict::Hold);
    let reported: u64 = d.coverage.iter().map(|c| c.reported).sum();
    let targeted: u64 = d.coverage.iter().map(|c| c.targeted).sum();
    assert_eq!((reported, targeted), (5, 500));
}

#[test]
fn a_platform_that_never_reported_holds_the_ring_and_cannot_be_waived() {
    let mut c = Case::passing(Ring::Canary);
    // Every Windows device installed; Jamf has not answered since the ring began.
    c.devices.retain(|d| d.platform == Platform::Windows);
    c.reported_platforms = Some(vec![Platform::Windows]);
    let d = c.run();
    let coverage = d.check(GateKind::Coverage).unwrap();
    assert_eq!(coverage.status, GateStatus::Pending);
    assert!(
        coverage
            .detail
            .contains("macos has not reported since the ring began"),
        "{}",
        coverage.detail
    );
    assert_eq!(
        d.check(GateKind::SuccessRate).unwrap().status,
        GateStatus::Pass
    );
    assert_eq!(d.verdict, Verdict::Hold);
    assert!(!GateKind::Coverage.overridable());
    let mac = d
        .coverage
        .iter()
        .find(|c| c.platform == Platform::Macos)
        .unwrap();
    assert_eq!((mac.targeted, mac.queried_at), (0, None));
}

#[test]
fn a_status_from_before_the_ring_was_entered_does_not_count() {
    let mut c = Case::passing(Ring::Canary);
    let mut statuses = c.statuses();
    assert_eq!(statuses[1].platform, Platform::Macos);
    statuses[1].queried_at = t0().plus(Duration::minutes(-5));
    c.explicit_statuses = Some(statuses);
    let d = c.run();
    assert_eq!(
        d.check(GateKind::Coverage).unwrap().status,
        GateStatus::Pending
    );
    assert_eq!(d.verdict, Verdict::Hold);
}

#[test]
fn a_group_much_larger_than_the_plan_halts_as_the_wrong_group() {
    let mut c = Case::passing(Ring::Canary);
    c.planned = Some(20);
    let d = c.run();
    let size = d.check(GateKind::GroupSize).unwrap();
    assert_eq!(size.status, GateStatus::Fail, "{}", size.detail);
    assert!(
        size.detail
            .contains("the groups hold 100 devices but the plan targets 20"),
        "{}",
        size.detail
    );
    assert_eq!(d.verdict, Verdict::Halt);

    // Within the policy's 10 % tolerance of the plan: fine either way.
    for planned in [91, 110] {
        c.planned = Some(planned);
        let d = c.run();
        assert_eq!(
            d.check(GateKind::GroupSize).unwrap().status,
            GateStatus::Pass,
            "{planned}"
        );
        assert_eq!(d.verdict, Verdict::Promote, "{planned}");
    }
    c.planned = Some(90);
    assert_eq!(
        c.run().check(GateKind::GroupSize).unwrap().status,
        GateStatus::Fail
    );

    // Smaller than planned: nothing unapproved is exposed; a finding, not a halt.
    c.planned = Some(1000);
    let d = c.run();
    let size = d.check(GateKind::GroupSize).unwrap();
    assert_eq!(size.status, GateStatus::Pass);
    assert!(
        size.detail
            .starts_with("finding: the groups hold 100 devices, 900 fewer"),
        "{}",
        size.detail
    );
}

#[test]
fn devices_silent_for_longer_than_the_policy_allows_are_named_stale() {
    let mut c = Case::passing(Ring::Canary);
    let at = t0().plus(Duration::hours(1));
    let long_ago = t0().plus(-Duration::days(30));
    c.devices = population(200, 194, at, long_ago);
    let d = c.run();
    let rate = d.check(GateKind::SuccessRate).unwrap();
    // 97 of 100 on each platform meets Canary's 97 %; the six silent ones are named stale.
    assert_eq!(rate.status, GateStatus::Pass, "{}", rate.detail);
    assert!(rate.detail.contains("6 stale"), "{}", rate.detail);
    let stale: u64 = d.coverage.iter().map(|c| c.stale).sum();
    assert_eq!(stale, 6);

    // Seen recently: pending, not stale.
    c.devices = population(200, 194, at, at);
    let d = c.run();
    assert!(
        !d.check(GateKind::SuccessRate)
            .unwrap()
            .detail
            .contains("stale")
    );
    assert_eq!(d.coverage.iter().map(|c| c.stale).sum::<u64>(), 0);
}

#[test]
fn each_platform_must_reach_the_threshold_on_its_own() {
    let mut c = Case::passing(Ring::Canary);
    let at = t0().plus(Duration::hours(1));
    // 970 PCs installed and 30 Macs failed: 97 % pooled, 0 % on macOS.
    c.devices = (0..1000)
        .map(|i| DeviceResult {
            device_id: format!("dev-{i}"),
            platform: if i < 970 {
                Platform::Windows
            } else {
                Platform::Macos
            },
            outcome: if i < 970 {
                InstallOutcome::Installed
            } else {
                InstallOutcome::Failed
            },
            site_class: SiteClass::Online,
            at,
            last_contact: Some(at),
        })
        .collect();
    let d = c.run();
    let rate = d.check(GateKind::SuccessRate).unwrap();
    assert_eq!(rate.status, GateStatus::Fail, "{}", rate.detail);
    assert_eq!(rate.actual.to_string(), "0.00 %");
    assert!(
        rate.detail.contains("macos: 0 of 30 installed"),
        "{}",
        rate.detail
    );
    assert_eq!(d.verdict, Verdict::Halt);
}

#[test]
fn a_platform_whose_group_holds_no_device_is_not_covered() {
    let mut c = Case::passing(Ring::Canary);
    // Jamf answered, but the smart group is empty: macOS was never tested.
    c.devices.retain(|d| d.platform == Platform::Windows);
    let d = c.run();
    let coverage = d.check(GateKind::Coverage).unwrap();
    assert_eq!(coverage.status, GateStatus::Pending, "{}", coverage.detail);
    assert!(
        coverage
            .detail
            .contains("macos reported no device in the ring's group"),
        "{}",
        coverage.detail
    );
    assert_eq!(d.verdict, Verdict::Hold);
}
