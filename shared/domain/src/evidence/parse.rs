//! Reading a submission from JSON, reporting every missing or invalid field.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{
    App, Artifact, Behaviour, DataAccess, Detection, DetectionKind, EvidencePack, History,
    Installation, NetworkListener, Platform, Provenance, Reboot, RequestedException, RingTarget,
    RollbackPlan, RollbackStrategy, RolloutPlan, RunAs, Sbom, SbomFormat, Sha256Hex, Signing,
    SigningStatus, SiteClass, Submission, TestEvidence, Urgency, VulnerabilityCounts,
};
use crate::cab::BlastRadiusClass;
use crate::exception::ExceptionKind;
use crate::fields::{FieldError, Fields, Obj, join};
use crate::ids::CorrelationId;
use crate::ring::Ring;
use crate::time::Timestamp;
use crate::units::Percent;

const SHORT: usize = 200;
/// Free text ([`crate::fields::Text`]).
const LONG: usize = crate::fields::Text::MAX;
/// Exceptions asked for up front, at most.
pub const MAX_UPFRONT_EXCEPTIONS: usize = 5;
/// A count no real fleet or scan exceeds; guards against nonsense numbers.
const MAX_COUNT: u64 = 10_000_000;

pub(super) fn submission(value: &Value) -> Result<Submission, Vec<FieldError>> {
    let mut f = Fields::default();
    let root = f.root(value);
    f.deny_unknown(
        &root,
        &[
            "correlation_id",
            "app",
            "privileged",
            "business_criticality",
            "urgency",
            "cross_boundary",
            "evidence",
        ],
    );
    let correlation_id = id(&mut f, &root, "correlation_id");
    let app = app(&mut f, &root);
    let privileged = f.boolean(&root, "privileged");
    let business_criticality =
        f.parsed::<BlastRadiusClass>(&root, "business_criticality", &BlastRadiusClass::expected());
    let urgency = match f.opt_string(&root, "urgency", SHORT) {
        Some(None) => Some(Urgency::Standard),
        Some(Some(_)) => f.parsed::<Urgency>(&root, "urgency", &Urgency::expected()),
        None => None,
    };
    let cross_boundary = f.opt_boolean(&root, "cross_boundary", false);
    let evidence = evidence(&mut f, &root);

    match (
        correlation_id,
        app,
        privileged,
        business_criticality,
        urgency,
        cross_boundary,
        evidence,
    ) {
        (
            Some(correlation_id),
            Some(app),
            Some(privileged),
            Some(bc),
            Some(urgency),
            Some(cb),
            Some(evidence),
        ) if f.is_clean() => Ok(Submission {
            correlation_id,
            app,
            privileged,
            business_criticality: bc,
            urgency,
            cross_boundary: cb,
            evidence,
        }),
        _ => Err(f.into_errors()),
    }
}

fn id(f: &mut Fields, obj: &Obj<'_>, key: &str) -> Option<CorrelationId> {
    let s = f.string(obj, key, 128)?;
    match CorrelationId::parse(s) {
        Ok(id) => Some(id),
        Err(e) => {
            f.error(join(obj.path(), key), e.to_string());
            None
        }
    }
}

fn app(f: &mut Fields, root: &Obj<'_>) -> Option<App> {
    let o = f.object(root, "app");
    f.deny_unknown(&o, &["name", "version", "vendor", "vendor_known"]);
    let name = f.string(&o, "name", SHORT);
    let version = f.string(&o, "version", 64);
    let vendor = f.string(&o, "vendor", SHORT);
    let vendor_known = f.boolean(&o, "vendor_known");
    Some(App {
        name: name?,
        version: version?,
        vendor: vendor?,
        vendor_known: vendor_known?,
    })
}

fn sha(f: &mut Fields, obj: &Obj<'_>, key: &str) -> Option<Sha256Hex> {
    let s = f.string(obj, key, 64)?;
    let parsed = Sha256Hex::parse(&s);
    if parsed.is_none() {
        f.error(
            join(obj.path(), key),
            "must be a SHA-256 digest: 64 hex characters",
        );
    }
    parsed
}

fn evidence(f: &mut Fields, root: &Obj<'_>) -> Option<EvidencePack> {
    let e = f.object(root, "evidence");
    f.deny_unknown(
        &e,
        &[
            "artifacts",
            "sbom",
            "vulnerabilities",
            "installation",
            "behaviour",
            "rollout",
            "rollback",
            "tests",
            "history",
            "exceptions",
        ],
    );
    let artifacts = artifacts(f, &e);
    let sbom = sbom(f, &e);
    let vulnerabilities = vulnerabilities(f, &e);
    let installation = installation(f, &e);
    let behaviour = behaviour(f, &e);
    let rollout = rollout(f, &e);
    let rollback = rollback(f, &e);
    let tests = tests(f, &e);
    let history = history(f, &e);
    let exceptions = exceptions(f, &e);
    Some(EvidencePack {
        artifacts: artifacts?,
        sbom: sbom?,
        vulnerabilities: vulnerabilities?,
        installation: installation?,
        behaviour: behaviour?,
        rollout: rollout?,
        rollback: rollback?,
        tests: tests?,
        history: history?,
        exceptions: exceptions?,
    })
}

fn artifacts(f: &mut Fields, e: &Obj<'_>) -> Option<Vec<Artifact>> {
    let items = f.array(e, "artifacts")?;
    if items.is_empty() {
        f.error(
            join(e.path(), "artifacts"),
            "must list at least one artifact",
        );
        return None;
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let mut ok = true;
    for (path, v) in items {
        let a = artifact(f, path.clone(), v);
        match a {
            Some(a) if !seen.insert(a.platform) => {
                f.error(join(&path, "platform"), "only one artifact per platform");
                ok = false;
            }
            Some(a) => out.push(a),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn artifact(f: &mut Fields, path: String, v: &Value) -> Option<Artifact> {
    let o = f.item(path, v);
    f.deny_unknown(
        &o,
        &[
            "platform",
            "file_name",
            "sha256",
            "size_bytes",
            "location",
            "signing",
            "detection",
            "install_command",
            "uninstall_command",
        ],
    );
    let platform = f.parsed::<Platform>(&o, "platform", &Platform::expected());
    let file_name = f.string(&o, "file_name", 255);
    if let (Some(p), Some(name)) = (platform, &file_name) {
        let ext = std::path::Path::new(name)
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let fits = match p {
            Platform::Windows => ext.as_deref() == Some("intunewin"),
            Platform::Macos => matches!(ext.as_deref(), Some("pkg" | "dmg")),
        };
        if !fits {
            let expected = match p {
                Platform::Windows => "a .intunewin package for windows",
                Platform::Macos => "a .pkg or .dmg package for macos",
            };
            f.error(join(o.path(), "file_name"), format!("must name {expected}"));
        }
    }
    let sha256 = sha(f, &o, "sha256");
    let size_bytes = f.count(&o, "size_bytes", 32 * 1024 * 1024 * 1024);
    if size_bytes == Some(0) {
        f.error(join(o.path(), "size_bytes"), "must be greater than 0");
    }
    let size_bytes = match (platform, size_bytes) {
        (Some(kind), Some(size)) if size > kind.package_size_limit().0 => {
            let (limit, what) = kind.package_size_limit();
            f.error(
                join(o.path(), "size_bytes"),
                format!("{size} bytes is over {what} ({limit} bytes)"),
            );
            None
        }
        (_, size) => size,
    };
    let location = f.string(&o, "location", 2048);
    if let Some(loc) = &location
        && !(loc.starts_with("s3://") || loc.starts_with("https://"))
    {
        f.error(
            join(o.path(), "location"),
            "must be an s3:// or https:// address",
        );
    }
    let signing = signing(f, &o);
    let detection = detection(f, &o, platform);
    let install_command = f.opt_string(&o, "install_command", 1024);
    let uninstall_command = f.opt_string(&o, "uninstall_command", 1024);
    if platform == Some(Platform::Windows) {
        for (key, value) in [
            ("install_command", &install_command),
            ("uninstall_command", &uninstall_command),
        ] {
            if matches!(value, Some(None)) {
                f.error(join(o.path(), key), "is required for windows");
            }
        }
    }
    Some(Artifact {
        platform: platform?,
        file_name: file_name?,
        sha256: sha256?,
        size_bytes: size_bytes.filter(|n| *n > 0)?,
        location: location.filter(|l| l.starts_with("s3://") || l.starts_with("https://"))?,
        signing: signing?,
        detection: detection?,
        install_command: install_command?,
        uninstall_command: uninstall_command?,
    })
}

fn signing(f: &mut Fields, a: &Obj<'_>) -> Option<Signing> {
    let o = f.object(a, "signing");
    f.deny_unknown(&o, &["status", "signer", "provenance", "notarized"]);
    let status = f.parsed::<SigningStatus>(&o, "status", &SigningStatus::expected());
    let signer = f.opt_string(&o, "signer", SHORT);
    if status == Some(SigningStatus::Signed) && matches!(signer, Some(None)) {
        f.error(
            join(o.path(), "signer"),
            "is required when status is signed",
        );
        return None;
    }
    let provenance = f.parsed::<Provenance>(&o, "provenance", &Provenance::expected());
    let notarized = f.opt_boolean(&o, "notarized", false);
    Some(Signing {
        status: status?,
        signer: signer?,
        provenance: provenance?,
        notarized: notarized?,
    })
}

fn detection(f: &mut Fields, a: &Obj<'_>, platform: Option<Platform>) -> Option<Detection> {
    let o = f.object(a, "detection");
    f.deny_unknown(&o, &["kind", "value"]);
    let kind = f.parsed::<DetectionKind>(&o, "kind", &DetectionKind::expected());
    let value = f.string(&o, "value", 1024);
    if let (Some(k), Some(p)) = (kind, platform)
        && !k.fits(p)
    {
        let allowed = match p {
            Platform::Windows => "file, registry, product_code or script",
            Platform::Macos => "bundle_id or receipt",
        };
        f.error(join(o.path(), "kind"), format!("must be {allowed} for {p}"));
        return None;
    }
    Some(Detection {
        kind: kind?,
        value: value?,
    })
}

fn sbom(f: &mut Fields, e: &Obj<'_>) -> Option<Sbom> {
    let o = f.object(e, "sbom");
    f.deny_unknown(&o, &["format", "component_count", "sha256"]);
    let format = f.parsed::<SbomFormat>(&o, "format", &SbomFormat::expected());
    let component_count = f.count(&o, "component_count", MAX_COUNT);
    let sha256 = sha(f, &o, "sha256");
    Some(Sbom {
        format: format?,
        component_count: component_count?,
        sha256: sha256?,
    })
}

fn vulnerabilities(f: &mut Fields, e: &Obj<'_>) -> Option<VulnerabilityCounts> {
    let o = f.object(e, "vulnerabilities");
    f.deny_unknown(
        &o,
        &[
            "critical",
            "high",
            "medium",
            "low",
            "exploited_in_the_wild",
            "scanner",
            "scanned_at",
        ],
    );
    let critical = f.count(&o, "critical", MAX_COUNT);
    let high = f.count(&o, "high", MAX_COUNT);
    let medium = f.count(&o, "medium", MAX_COUNT);
    let low = f.count(&o, "low", MAX_COUNT);
    let kev = f.count(&o, "exploited_in_the_wild", MAX_COUNT);
    if let (Some(c), Some(h), Some(m), Some(l), Some(k)) = (critical, high, medium, low, kev)
        && k > c + h + m + l
    {
        f.error(
            join(o.path(), "exploited_in_the_wild"),
            "must not exceed the number of findings",
        );
    }
    let scanner = f.string(&o, "scanner", SHORT);
    let scanned_at = timestamp(f, &o, "scanned_at");
    Some(VulnerabilityCounts {
        critical: critical?,
        high: high?,
        medium: medium?,
        low: low?,
        exploited_in_the_wild: kev?,
        scanner: scanner?,
        scanned_at: scanned_at?,
    })
}

fn timestamp(f: &mut Fields, o: &Obj<'_>, key: &str) -> Option<Timestamp> {
    let s = f.string(o, key, 64)?;
    match Timestamp::parse(&s) {
        Ok(t) => Some(t),
        Err(e) => {
            f.error(join(o.path(), key), e.to_string());
            None
        }
    }
}

fn installation(f: &mut Fields, e: &Obj<'_>) -> Option<Installation> {
    let o = f.object(e, "installation");
    f.deny_unknown(
        &o,
        &[
            "run_as",
            "expected_duration_minutes",
            "reboot",
            "offline_import",
        ],
    );
    let run_as = f.parsed::<RunAs>(&o, "run_as", &RunAs::expected());
    let minutes = f.count(&o, "expected_duration_minutes", 24 * 60);
    let reboot = f.parsed::<Reboot>(&o, "reboot", &Reboot::expected());
    let offline_import = f.boolean(&o, "offline_import");
    Some(Installation {
        run_as: run_as?,
        expected_duration_minutes: minutes?,
        reboot: reboot?,
        offline_import: offline_import?,
    })
}

fn behaviour(f: &mut Fields, e: &Obj<'_>) -> Option<Behaviour> {
    let o = f.object(e, "behaviour");
    f.deny_unknown(&o, &["network_listener", "scripting", "data_access"]);
    let listener =
        f.parsed::<NetworkListener>(&o, "network_listener", &NetworkListener::expected());
    let scripting = f.boolean(&o, "scripting");
    let data_access = f.parsed::<DataAccess>(&o, "data_access", &DataAccess::expected());
    Some(Behaviour {
        network_listener: listener?,
        scripting: scripting?,
        data_access: data_access?,
    })
}

fn rollout(f: &mut Fields, e: &Obj<'_>) -> Option<RolloutPlan> {
    let o = f.object(e, "rollout");
    f.deny_unknown(&o, &["rings", "site_class", "critical_targets"]);
    let rings = ring_targets(f, &o);
    let site_class = f.parsed::<SiteClass>(&o, "site_class", &SiteClass::expected());
    let critical_targets = f.boolean(&o, "critical_targets");
    Some(RolloutPlan {
        rings: rings?,
        site_class: site_class?,
        critical_targets: critical_targets?,
    })
}

fn ring_targets(f: &mut Fields, o: &Obj<'_>) -> Option<Vec<RingTarget>> {
    let path = join(o.path(), "rings");
    let items = f.array(o, "rings")?;
    if items.is_empty() {
        f.error(path, "must list at least one ring");
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for (ipath, v) in items {
        let item = f.item(ipath, v);
        f.deny_unknown(&item, &["ring", "target_devices"]);
        let ring = f
            .count(&item, "ring", 4)
            .and_then(|n| i64::try_from(n).ok())
            .and_then(|n| Ring::from_number(n).ok());
        let devices = f.count(&item, "target_devices", MAX_COUNT);
        if devices == Some(0) {
            f.error(join(item.path(), "target_devices"), "must be at least 1");
        }
        match (ring, devices) {
            (Some(ring), Some(target_devices)) if target_devices > 0 => out.push(RingTarget {
                ring,
                target_devices,
            }),
            _ => ok = false,
        }
    }
    if !ok {
        return None;
    }
    let first = out[0].ring;
    if first > Ring::Canary {
        f.error(path, "must start at ring 0 (Lab) or ring 1 (Canary)");
        return None;
    }
    let contiguous = out.windows(2).all(|w| w[0].ring.next() == Some(w[1].ring));
    if !contiguous {
        f.error(
            path,
            "rings must be contiguous and ascending, for example 0, 1, 2",
        );
        return None;
    }
    Some(out)
}

fn rollback(f: &mut Fields, e: &Obj<'_>) -> Option<RollbackPlan> {
    let o = f.object(e, "rollback");
    f.deny_unknown(&o, &["strategy", "plan", "validated_in_ring0"]);
    let strategy = f.parsed::<RollbackStrategy>(&o, "strategy", &RollbackStrategy::expected());
    let plan = f.string(&o, "plan", LONG);
    let validated = f.boolean(&o, "validated_in_ring0");
    Some(RollbackPlan {
        strategy: strategy?,
        plan: plan?,
        validated_in_ring0: validated?,
    })
}

fn tests(f: &mut Fields, e: &Obj<'_>) -> Option<TestEvidence> {
    let o = f.object(e, "tests");
    f.deny_unknown(&o, &["passed", "failed", "report_uri"]);
    let passed = f.count(&o, "passed", MAX_COUNT);
    if passed == Some(0) {
        f.error(
            join(o.path(), "passed"),
            "at least one test must have passed",
        );
    }
    let failed = f.count(&o, "failed", MAX_COUNT);
    let report_uri = f.opt_string(&o, "report_uri", 2048);
    Some(TestEvidence {
        passed: passed.filter(|n| *n > 0)?,
        failed: failed?,
        report_uri: report_uri?,
    })
}

fn history(f: &mut Fields, e: &Obj<'_>) -> Option<History> {
    let o = f.object(e, "history");
    f.deny_unknown(
        &o,
        &[
            "prior_deployments",
            "failure_rate_percent",
            "prior_security_incident",
        ],
    );
    let prior = f.count(&o, "prior_deployments", MAX_COUNT);
    let rate = f
        .number(&o, "failure_rate_percent", 0.0, 100.0)
        .and_then(|x| match Percent::from_decimal(x) {
            Ok(p) => Some(p),
            Err(err) => {
                f.error(join(o.path(), "failure_rate_percent"), err.to_string());
                None
            }
        });
    let incident = f.boolean(&o, "prior_security_incident");
    Some(History {
        prior_deployments: prior?,
        failure_rate: rate?,
        prior_security_incident: incident?,
    })
}

fn exceptions(f: &mut Fields, e: &Obj<'_>) -> Option<Vec<RequestedException>> {
    let items = f.opt_bounded_array(e, "exceptions", MAX_UPFRONT_EXCEPTIONS)?;
    let mut out = Vec::new();
    let mut ok = true;
    for (path, v) in items {
        match requested_exception(f, path, v) {
            Some(x) => out.push(x),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// Reads an exception request (also used by the exception API).
pub fn requested_exception(f: &mut Fields, path: String, v: &Value) -> Option<RequestedException> {
    let o = f.item(path, v);
    f.deny_unknown(&o, &["kind", "justification", "compensating_controls"]);
    let kind = f.parsed::<ExceptionKind>(&o, "kind", &ExceptionKind::expected());
    let justification = f.string(&o, "justification", LONG);
    let controls = f
        .bounded_array(&o, "compensating_controls", crate::fields::Text::MAX_ITEMS)
        .and_then(|items| {
            if items.is_empty() {
                f.error(
                    join(o.path(), "compensating_controls"),
                    "must list at least one compensating control",
                );
                return None;
            }
            let all: Vec<Option<String>> = items
                .iter()
                .map(|(p, v)| f.check_string(p, v, LONG))
                .collect();
            all.into_iter().collect()
        });
    Some(RequestedException {
        kind: kind?,
        justification: justification?,
        compensating_controls: controls?,
    })
}
