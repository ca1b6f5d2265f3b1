//! The demo: the seed's four scenarios against the running local stack, through its HTTP API,
//! with the stack's clock moved in steps of six hours. People act as they would: CAB members
//! approve what waits for them, a publisher or security reviewer records each deployment's
//! rollback run on Ring 0 devices (the packager's own claim does not satisfy the rollback gate),
//! a publisher reports an incident in Ring 1 and a security reviewer resolves it a day later. Progress is printed as it happens; at the end, each deployment's
//! summary and its audit trail as a timeline (states, rings, gate results with threshold and
//! actual, CAB decisions, connector calls), and the verification of its hash chain.

use std::fmt::Write as _;
use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use eucora_domain::cab::Role;
use serde_json::{Value, json};

use crate::client::{Client, state_of};
use crate::render;
use crate::stack::local::LocalStack;

/// The step the clock moves between gate runs.
pub const STEP_HOURS: u64 = 6;
const MAX_STEPS: usize = 120;

struct Scenario {
    title: &'static str,
    sample: &'static str,
    id: String,
    state: String,
    incident: Option<(String, eucora_domain::Timestamp)>,
    incident_resolved: bool,
    in_ring_since: Option<eucora_domain::Timestamp>,
}

struct People {
    packager: Client,
    cab: Vec<(String, Client)>,
    security: Client,
    publisher: Client,
    auditor: Client,
}

fn people(stack: &LocalStack) -> People {
    let c = |sub: &str, role: Role| Client::new(&stack.api_url, &stack.token(sub, &[role]));
    People {
        packager: c("packager-alice", Role::Packaging),
        cab: ["cab-carol", "cab-dave", "cab-frank"]
            .iter()
            .map(|m| ((*m).to_owned(), c(m, Role::Cab)))
            .collect(),
        security: c("security-sam", Role::SecurityReviewer),
        publisher: c("publisher-pat", Role::Publisher),
        auditor: c("auditor-erin", Role::Auditor),
    }
}

/// What the demo produced, per deployment.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub title: String,
    pub deployment: Value,
    pub trail: Vec<Value>,
    pub verification: Value,
}

fn elapsed(stack: &LocalStack, t0: eucora_domain::Timestamp) -> String {
    format!(
        "+{:>5.1}h",
        eucora_domain::time::hours(stack.now().since(t0))
    )
}

/// Runs the four scenarios; prints progress to `out`.
pub async fn run(stack: &LocalStack, out: &mut dyn Write) -> Result<Vec<Outcome>> {
    let p = people(stack);
    let t0 = stack.now();
    let mut scenarios = vec![
        Scenario::new("Low risk: no CAB, gates promote", "low-risk"),
        Scenario::new("High risk: CAB approves each ring", "high-risk"),
        Scenario::new("Incident: halts, resolution resumes", "incident"),
        Scenario::new("Windows and macOS in one deployment", "multi-platform"),
    ];
    for s in &mut scenarios {
        let path = stack
            .repo
            .join(format!("events/deployments/{}.json", s.sample));
        let mut submission: Value = serde_json::from_str(
            &std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?,
        )?;
        stack.stage_packages(&mut submission).await?;
        let r = p.packager.submit(&submission, Some(s.sample)).await?;
        let body = r
            .into_ok()
            .with_context(|| format!("submitting {}", s.sample))?;
        body["id"]
            .as_str()
            .unwrap_or_default()
            .clone_into(&mut s.id);
        writeln!(
            out,
            "{} packager-alice submits {} ({}): {}",
            elapsed(stack, t0),
            s.sample,
            s.title,
            s.id
        )?;
        validate_rollback(stack, &p, s, t0, out).await?;
    }
    for _ in 0..MAX_STEPS {
        stack.settle(Duration::from_secs(120)).await?;
        let mut acted = false;
        for s in &mut scenarios {
            let d = p.auditor.deployment(&s.id).await?.into_ok()?;
            let state = state_of(&d);
            if state != s.state {
                let mut line = format!(
                    "{} {:<15} {} → {}",
                    elapsed(stack, t0),
                    s.sample,
                    if s.state.is_empty() { "-" } else { &s.state },
                    state
                );
                // Leaving a ring for the next one is the gates' doing: say so.
                let g = &d["last_gate_decision"];
                if s.state.starts_with("in_ring") && !state.starts_with("halted") && g.is_object() {
                    let verdict = if g["awaiting_cab"] == true {
                        "pass; the next ring needs CAB".to_owned()
                    } else {
                        g["verdict"].as_str().unwrap_or_default().to_owned()
                    };
                    let _ = write!(line, "  (gates of ring {}: {verdict})", g["ring"]);
                }
                writeln!(out, "{line}")?;
                if state.starts_with("in_ring") {
                    s.in_ring_since = Some(stack.now());
                }
                s.state.clone_from(&state);
            }
            acted |= act(stack, &p, s, &d, t0, out).await?;
        }
        if scenarios.iter().all(|s| s.state == "completed") {
            break;
        }
        if acted {
            continue;
        }
        stack.advance(Duration::from_secs(STEP_HOURS * 3600));
        stack.run_gates().await?;
    }
    let mut outcomes = Vec::new();
    for s in &scenarios {
        let deployment = p.auditor.deployment(&s.id).await?.into_ok()?;
        let trail = p.auditor.audit(&s.id).await?.into_ok()?["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let verification = p.auditor.verify(&s.id).await?.into_ok()?;
        outcomes.push(Outcome {
            title: s.title.to_owned(),
            deployment,
            trail,
            verification,
        });
    }
    if let Some(s) = scenarios.iter().find(|s| s.state != "completed") {
        bail!("{} did not complete: {}", s.sample, s.state);
    }
    Ok(outcomes)
}

impl Scenario {
    fn new(title: &'static str, sample: &'static str) -> Scenario {
        Scenario {
            title,
            sample,
            id: String::new(),
            state: String::new(),
            incident: None,
            incident_resolved: false,
            in_ring_since: None,
        }
    }
}

/// What the people of the scenario do now; true when someone acted.
async fn act(
    stack: &LocalStack,
    p: &People,
    s: &mut Scenario,
    d: &Value,
    t0: eucora_domain::Timestamp,
    out: &mut dyn Write,
) -> Result<bool> {
    let state = &d["state"];
    match state["state"].as_str() {
        Some("awaiting_cab") => approve_next(stack, p, s, d, t0, out).await,
        Some("in_ring") if s.sample == "incident" && s.incident.is_none() => {
            let since = s.in_ring_since.unwrap_or(t0);
            if eucora_domain::time::hours(stack.now().since(since)) < 12.0 {
                return Ok(false);
            }
            let summary = "Expense uploads from Ring 1 devices reach an unapproved endpoint";
            let r = p
                .publisher
                .report_incident(&s.id, "high", summary, Some("BUSINESS_CRITICAL"))
                .await?
                .into_ok()?;
            let id = r["incident"]["id"]
                .as_str()
                .or_else(|| r["incident_id"].as_str())
                .unwrap_or_default()
                .to_owned();
            writeln!(
                out,
                "{} {:<15} publisher-pat reports incident {id}: {summary}; blast radius now BUSINESS_CRITICAL",
                elapsed(stack, t0),
                s.sample
            )?;
            s.incident = Some((id, stack.now()));
            Ok(true)
        }
        Some("halted") if !s.incident_resolved => {
            let Some((id, at)) = s.incident.clone() else {
                return Ok(false);
            };
            if eucora_domain::time::hours(stack.now().since(at)) < 24.0 {
                return Ok(false);
            }
            let resolution = "Vendor hotfix removes the endpoint; traffic verified clean";
            p.security
                .resolve_incident(&s.id, &id, resolution)
                .await?
                .into_ok()?;
            writeln!(
                out,
                "{} {:<15} security-sam resolves {id}: {resolution}",
                elapsed(stack, t0),
                s.sample
            )?;
            s.incident_resolved = true;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// A publisher (a security reviewer for the high-risk deployment) records the rollback run on
/// the Ring 0 lab devices: the rollback gate reads this record, not the packager's
/// `validated_in_ring0`.
async fn validate_rollback(
    stack: &LocalStack,
    p: &People,
    s: &Scenario,
    t0: eucora_domain::Timestamp,
    out: &mut dyn Write,
) -> Result<()> {
    let (who, client) = if s.sample == "high-risk" {
        ("security-sam", &p.security)
    } else {
        ("publisher-pat", &p.publisher)
    };
    let devices = vec![
        format!("lab-{}-01", s.sample),
        format!("lab-{}-02", s.sample),
    ];
    client
        .validate_rollback(
            &s.id,
            &devices,
            "passed",
            Some("rollback run on the lab devices; previous version back"),
        )
        .await?
        .into_ok()
        .with_context(|| format!("{who} validating the rollback of {}", s.sample))?;
    writeln!(
        out,
        "{} {:<15} {who} records the rollback validated on Ring 0 devices {}",
        elapsed(stack, t0),
        s.sample,
        devices.join(", ")
    )?;
    Ok(())
}

/// The next CAB member who has not approved the ring yet approves it.
async fn approve_next(
    stack: &LocalStack,
    p: &People,
    s: &Scenario,
    d: &Value,
    t0: eucora_domain::Timestamp,
    out: &mut dyn Write,
) -> Result<bool> {
    let state = &d["state"];
    let ring = state["ring"].as_u64().unwrap_or(1);
    let view = d["rings"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["ring"].as_u64() == Some(ring)))
        .cloned()
        .unwrap_or_default();
    let approvers: Vec<String> = d["approvals"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["ring"].as_u64() == Some(ring))
        .filter_map(|a| a["approver"].as_str().map(str::to_owned))
        .collect();
    let Some((name, member)) = p
        .cab
        .iter()
        .find(|(n, _)| !approvers.contains(&crate::api::jwt::actor_id(n)))
    else {
        bail!("{}: no CAB member left to approve ring {ring}", s.sample);
    };
    let conditions: Vec<String> = if s.sample == "high-risk" && ring == 1 {
        vec!["deploy outside trading hours".into()]
    } else {
        Vec::new()
    };
    let r = member
        .decide(
            &s.id,
            u8::try_from(ring).unwrap_or(1),
            "approve",
            d["evidence_hash"].as_str().unwrap_or_default(),
            &conditions,
            None,
        )
        .await?;
    r.into_ok()
        .with_context(|| format!("{name} approving {}", s.sample))?;
    writeln!(
        out,
        "{} {:<15} {name} approves ring {ring} ({} of {}){}",
        elapsed(stack, t0),
        s.sample,
        approvers.len() + 1,
        view["cab_status"]["quorum"].as_u64().unwrap_or(1),
        if conditions.is_empty() {
            String::new()
        } else {
            format!(" with conditions: {}", conditions.join("; "))
        }
    )?;
    Ok(true)
}

/// The end of the demo: each deployment's summary, timeline and chain verification.
pub fn report(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    for o in outcomes {
        let _ = write!(out, "\n=== {} ===\n", o.title);
        out.push_str(&render::deployment(&o.deployment));
        out.push_str("\n  timeline (hours since submission)\n");
        out.push_str(&render::timeline(&o.trail));
        let _ = writeln!(
            out,
            "  audit chain: {} events, {}",
            o.verification["events"],
            if o.verification["valid"] == true {
                "verified".to_owned()
            } else {
                format!("BROKEN: {}", o.verification["message"])
            }
        );
    }
    out
}

/// The outcomes as one JSON document.
pub fn json(outcomes: &[Outcome]) -> Value {
    Value::Array(
        outcomes
            .iter()
            .map(|o| {
                json!({ "scenario": o.title, "deployment": o.deployment, "audit": o.trail, "verification": o.verification })
            })
            .collect(),
    )
}
