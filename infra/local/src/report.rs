//! Printing one deployment's evaluation.

use std::path::Path;

use anyhow::{Context, Result};
use eucora_domain::cab::{
    CabContext, CabReason, CabStatus, approval_window, cab_requirement, cab_status,
    classify_blast_radius,
};
use eucora_domain::evidence::Submission;
use eucora_domain::exception::Waivers;
use eucora_domain::gates::{GateInput, GateStatus, Verdict, evaluate};
use eucora_domain::lifecycle::{Lifecycle, LifecycleEvent};
use eucora_domain::policy::Policy;
use eucora_domain::risk::assess;
use eucora_domain::{ActorId, Ring};

use crate::telemetry::Sample;

fn reason(r: CabReason) -> String {
    match r {
        CabReason::Privileged => "privileged tooling".into(),
        CabReason::BlastRadius { class } => format!("blast radius {class}"),
        CabReason::RiskAboveThreshold { score, threshold } => format!("risk {score} > {threshold}"),
    }
}

pub fn deployment(file: &Path, telemetry: Option<&Path>, policy: &Policy) -> Result<()> {
    let body =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let name = file.file_stem().unwrap_or_default().to_string_lossy();
    println!("━━ {name} ({})", file.display());
    let s = match Submission::parse(&body) {
        Ok(s) => s,
        Err(e) => {
            println!("   REFUSED {}: {e}\n", e.code());
            return Ok(());
        }
    };
    let platforms: Vec<String> = s.platforms().iter().map(ToString::to_string).collect();
    println!(
        "   {} {} by {} · {} · correlation id {}",
        s.app.name,
        s.app.version,
        s.app.vendor,
        platforms.join(" + "),
        s.correlation_id
    );
    println!("   evidence hash  sha256:{}", s.content_hash());

    // Exceptions asked for in the pack are pending until a Security Reviewer approves them.
    let waivers = Waivers::default();
    let a = assess(&s, &waivers, policy);
    println!(
        "   risk score     {} (exact {}, model {}, policy {})",
        a.score, a.exact_score, a.model_version, a.policy_version
    );
    for f in &a.factors {
        println!(
            "     {:<24} {:<32} {:>5.2} × {:>3} = {:>5.1}",
            f.factor.key(),
            f.level.unwrap_or("-"),
            f.normalised.as_f64(),
            f.weight,
            f.contribution
        );
    }
    let class = classify_blast_radius(&s, None);
    println!(
        "   blast radius   {class} (quorum {})",
        policy.cab.quorum(class)
    );
    let ctx = CabContext {
        score: a.score,
        privileged: s.privileged,
        class,
    };
    for rt in &s.evidence.rollout.rings {
        let req = cab_requirement(rt.ring, ctx, &policy.cab);
        let why: Vec<String> = req.reasons.iter().map(|r| reason(*r)).collect();
        println!(
            "   {:<22} {:>6} devices  {}",
            rt.ring.to_string(),
            rt.target_devices,
            if req.required {
                format!(
                    "CAB required, {} approval(s): {}",
                    req.quorum,
                    why.join(", ")
                )
            } else {
                "no CAB needed".into()
            }
        );
    }
    for x in &s.evidence.exceptions {
        println!(
            "   exception      {} requested: {} (pending Security Reviewer)",
            x.kind, x.justification
        );
    }
    let first = s.evidence.rollout.first_ring();
    let lifecycle =
        Lifecycle::new(first, s.evidence.rollout.highest_ring()).apply(LifecycleEvent::Scored {
            publish_blocked: a.publish_blocked(),
            cab_required: cab_requirement(first, ctx, &policy.cab).required,
        })?;
    if a.publish_blocked() {
        for b in &a.publish_blockers {
            println!("   PUBLISH BLOCKED {b}");
        }
    }
    println!("   state          {}", lifecycle.state);

    if let Some(t) = telemetry {
        gate(&s, &Sample::load(t)?, ctx, policy);
    }
    println!();
    Ok(())
}

fn gate(s: &Submission, t: &Sample, ctx: CabContext, policy: &Policy) {
    let devices = t.devices();
    // The samples carry no CAB decisions, so the submitter's name does not matter here.
    let Ok(submitter) = ActorId::parse("packager") else {
        return;
    };
    let next = t
        .ring
        .next()
        .filter(|r| s.evidence.rollout.includes(*r))
        .map(|r: Ring| {
            let req = cab_requirement(r, ctx, &policy.cab);
            // No CAB decisions exist in the samples: a required approval is pending.
            let status: CabStatus = cab_status(
                &req,
                &[],
                &submitter,
                &s.content_hash(),
                t.evaluated_at,
                approval_window(s.urgency, &policy.cab),
            );
            (r, status)
        });
    // The sample is the ring's whole population, as every platform of the fleet reported it.
    let platforms: Vec<_> = s.platforms().into_iter().collect();
    let statuses: Vec<_> = platforms
        .iter()
        .filter(|p| devices.iter().any(|d| d.platform == **p))
        .map(|p| {
            let mine: Vec<_> = devices
                .iter()
                .filter(|d| d.platform == *p)
                .cloned()
                .collect();
            eucora_service::ports::StatusSnapshot::of(*p, mine, t.evaluated_at).status
        })
        .collect();
    let d = evaluate(
        &GateInput {
            ring: t.ring,
            entered_at: t.entered_at,
            now: t.evaluated_at,
            devices: &devices,
            platforms: &platforms,
            statuses: &statuses,
            planned_targets: s.evidence.rollout.target_devices(t.ring),
            planned_site_class: s.evidence.rollout.site_class,
            open_incidents: t.open_incidents,
            rollback_validated: t.rollback_validated,
            next,
            waivers: &Waivers::default(),
        },
        policy,
    );
    println!(
        "   gates of {} at {} ({} devices reporting)",
        d.ring,
        d.evaluated_at,
        devices.len()
    );
    for c in &d.checks {
        let site = c.site_class.map(|s| format!(" [{s}]")).unwrap_or_default();
        let mark = match c.status {
            GateStatus::Pass => "✓",
            GateStatus::Pending => "…",
            GateStatus::Fail => "✗",
            GateStatus::Waived => "~",
        };
        println!(
            "     {mark} {:<30} actual {:<20} {} {:<20} {}",
            format!("{}{site}", c.gate),
            c.actual.to_string(),
            c.comparison,
            c.threshold.to_string(),
            c.detail
        );
    }
    let verdict = match (d.verdict, d.next_ring) {
        (Verdict::Promote, Some(r)) => format!("PROMOTE to {r}"),
        (Verdict::Promote, None) => "PROMOTE: last ring passed, deployment complete".into(),
        (Verdict::Hold, Some(r)) if d.awaiting_cab => {
            format!("HOLD: awaiting CAB approval for {r}")
        }
        (Verdict::Hold, _) => "HOLD: gates still pending".into(),
        (Verdict::Halt, _) => "HALT: a gate failed".into(),
    };
    println!("   verdict        {verdict}");
}

pub fn invalid(file: &Path) -> Result<()> {
    let body =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    println!("━━ {} (invalid sample)", file.display());
    match Submission::parse(&body) {
        Ok(_) => println!("   unexpectedly valid"),
        Err(e) => {
            println!("   400 {}: {} field(s)", e.code(), e.fields().len());
            for f in e.fields() {
                println!("     {:<44} {}", f.field, f.problem);
            }
        }
    }
    println!();
    Ok(())
}
