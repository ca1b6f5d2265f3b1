//! Readable text for what the API answers: a deployment's summary and its audit trail as a
//! timeline. Used by the operator CLI and the demo; both also offer the raw JSON.

use std::fmt::Write as _;

use serde_json::Value;

use crate::client::state_of;

fn s(v: &Value) -> String {
    match v {
        Value::String(x) => x.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// `12.5 hours`, `97 %`, `0 count`: a gate's threshold or actual value.
fn quantity(v: &Value) -> String {
    let unit = v["unit"].as_str().unwrap_or_default();
    let value = &v["value"];
    let n = match value {
        Value::Number(n) => n.as_f64().map_or_else(
            || n.to_string(),
            |f| {
                if (f - f.round()).abs() < 1e-9 {
                    format!("{f:.0}")
                } else {
                    format!("{f:.1}")
                }
            },
        ),
        Value::Object(o) if o.contains_key("have") => {
            format!("{}/{}", s(&value["have"]), s(&value["need"]))
        }
        other => s(other),
    };
    match unit {
        "percent" => format!("{n} %"),
        "hours" => format!("{n} h"),
        "flag" | "approvals" => n,
        other => format!("{n} {other}"),
    }
}

/// The checks of a gate decision, one line each: gate, status, actual against threshold.
pub fn gate_checks(decision: &Value, indent: &str) -> String {
    let mut out = String::new();
    for c in decision["checks"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{indent}{:<20} {:<8} actual {:>10} {} threshold {:<10} {}",
            s(&c["gate"]),
            s(&c["status"]),
            quantity(&c["actual"]),
            s(&c["comparison"]),
            quantity(&c["threshold"]),
            c["detail"].as_str().unwrap_or_default()
        );
    }
    out
}

/// The risk score with every factor's contribution, and what blocks publishing.
fn risk(out: &mut String, d: &Value) {
    if d["risk"].is_object() {
        let r = &d["risk"];
        let _ = writeln!(
            out,
            "  risk          {} (exact {}, model {}, policy {})",
            s(&r["score"]),
            s(&r["exact_score"]),
            s(&r["model_version"]),
            s(&r["policy_version"])
        );
        for f in r["factors"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "                {:<24} {:>5.1} points  ({} × {})",
                s(&f["factor"]),
                f["contribution"].as_f64().unwrap_or_default(),
                s(&f["weight"]),
                s(&f["level"])
            );
        }
        for b in r["publish_blockers"].as_array().into_iter().flatten() {
            let _ = writeln!(out, "  BLOCKED       {}", s(&b["code"]));
        }
    } else {
        let _ = writeln!(out, "  risk          not scored yet");
    }
}

/// Each ring of the plan with where its CAB approval stands.
fn rings(out: &mut String, d: &Value) {
    for ring in d["rings"].as_array().into_iter().flatten() {
        let st = &ring["cab_status"];
        let cab = match st["status"].as_str() {
            Some("not_required") => "no CAB needed".to_owned(),
            Some("approved") => {
                let mut t = format!(
                    "CAB approved by {}",
                    st["approvers"]
                        .as_array()
                        .map(|a| a.iter().map(s).collect::<Vec<_>>().join(", "))
                        .unwrap_or_default()
                );
                if let Some(c) = st["conditions"].as_array().filter(|c| !c.is_empty()) {
                    let _ = write!(
                        t,
                        "; conditions: {}",
                        c.iter().map(s).collect::<Vec<_>>().join("; ")
                    );
                }
                t
            }
            Some("pending") => format!(
                "CAB pending ({} of {} approvals)",
                s(&st["approvals"]),
                s(&st["quorum"])
            ),
            Some("rejected") => format!("CAB rejected by {}: {}", s(&st["by"]), s(&st["reason"])),
            _ => s(st),
        };
        let _ = writeln!(
            out,
            "  ring {}        {} devices, {}",
            s(&ring["ring"]),
            s(&ring["target_devices"]),
            cab
        );
    }
}

/// A deployment as an operator reads it.
pub fn deployment(d: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}  {} {}  ({})",
        s(&d["id"]),
        s(&d["app"]["name"]),
        s(&d["app"]["version"]),
        s(&d["correlation_id"])
    );
    let _ = writeln!(out, "  state         {}", state_of(d));
    let _ = writeln!(
        out,
        "  platforms     {}",
        d["platforms"]
            .as_array()
            .map(|p| p.iter().map(s).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    );
    let _ = writeln!(out, "  blast radius  {}", s(&d["blast_radius"]));
    let _ = writeln!(out, "  evidence      {}", s(&d["evidence_hash"]));
    let _ = writeln!(
        out,
        "  submitted     {} by {}",
        s(&d["submitted_at"]),
        s(&d["submitted_by"])
    );
    risk(&mut out, d);
    rings(&mut out, d);
    for x in d["exceptions"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  exception     {} {} {} (expires {})",
            s(&x["id"]),
            s(&x["kind"]),
            s(&x["status"]),
            s(&x["expires_at"])
        );
    }
    for i in d["incidents"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  incident      {} {} {}: {}",
            s(&i["id"]),
            s(&i["severity"]),
            if i["resolved"].is_null() {
                "OPEN"
            } else {
                "resolved"
            },
            s(&i["summary"])
        );
    }
    for v in d["rollback_validations"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  rollback      {} on {} Ring 0 device(s) by {} at {}",
            s(&v["result"]),
            v["devices"].as_array().map_or(0, Vec::len),
            s(&v["by"]),
            s(&v["at"])
        );
    }
    if d["last_gate_decision"].is_object() {
        let g = &d["last_gate_decision"];
        let _ = writeln!(
            out,
            "  last gate     ring {}: {} at {}",
            s(&g["ring"]),
            s(&g["verdict"]),
            s(&g["evaluated_at"])
        );
        out.push_str(&gate_checks(g, "                "));
    }
    out
}

fn hours_since(start: &str, at: &str) -> String {
    match (
        eucora_domain::Timestamp::parse(start),
        eucora_domain::Timestamp::parse(at),
    ) {
        (Ok(a), Ok(b)) => {
            let h = eucora_domain::time::hours(b.since(a));
            format!("+{h:>6.1}h")
        }
        _ => at.to_owned(),
    }
}

fn state_label(v: &Value) -> String {
    match (v["state"].as_str(), v["ring"].as_u64()) {
        (Some(st), Some(r)) => format!("{st} {r}"),
        (Some(st), None) => st.to_owned(),
        _ => s(v),
    }
}

/// The audit trail as a timeline: one line per event (hours since submission, actor, what
/// happened); runs of connector calls are folded into one line per platform.
pub fn timeline(events: &[Value]) -> String {
    let mut out = String::new();
    let start = events
        .first()
        .and_then(|first| first["at"].as_str())
        .unwrap_or_default()
        .to_owned();
    let mut next = 0;
    while next < events.len() {
        let event = &events[next];
        let at = hours_since(&start, event["at"].as_str().unwrap_or_default());
        let actor = s(&event["actor"]);
        let line = if event["kind"] == "connector.call" {
            let (line, calls) = connector_calls(&events[next..]);
            next += calls;
            line
        } else {
            next += 1;
            describe(event)
        };
        let _ = writeln!(out, "  {at}  {actor:<22} {line}");
    }
    out
}

/// A run of one platform's connector calls, as one line; and how many events it covers.
fn connector_calls(events: &[Value]) -> (String, usize) {
    let platform = &events[0]["detail"]["platform"];
    let run: Vec<&Value> = events
        .iter()
        .take_while(|e| e["kind"] == "connector.call" && &e["detail"]["platform"] == platform)
        .collect();
    let failed = run
        .iter()
        .filter(|e| !e["detail"]["call"]["error_class"].is_null())
        .count();
    let mut ops: Vec<String> = Vec::new();
    for e in &run {
        let op = s(&e["detail"]["call"]["operation"]);
        if !ops.contains(&op) {
            ops.push(op);
        }
    }
    let line = format!(
        "{} connector: {} call(s){}: {}",
        s(platform),
        run.len(),
        if failed > 0 {
            format!(", {failed} failed and retried")
        } else {
            String::new()
        },
        ops.join(", ")
    );
    (line, run.len().max(1))
}

/// One audit event, in words.
fn describe(event: &Value) -> String {
    let d = &event["detail"];
    match event["kind"].as_str().unwrap_or_default() {
        "deployment.submitted" => "submitted with its evidence pack".to_owned(),
        "risk.scored" => {
            let a = &d["assessment"];
            format!(
                "risk scored {} (exact {}){}",
                s(&a["score"]),
                s(&a["exact_score"]),
                d["reason"]
                    .as_str()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            )
        }
        "deployment.state_changed" => {
            format!("{} → {}", state_label(&d["from"]), state_label(&d["to"]))
        }
        "cab.decided" => {
            let decision = &d["decision"];
            let mut t = format!(
                "CAB {} ring {}",
                s(&decision["verdict"]),
                s(&decision["ring"])
            );
            if let Some(c) = decision["conditions"].as_array().filter(|c| !c.is_empty()) {
                let _ = write!(
                    t,
                    " with conditions: {}",
                    c.iter().map(s).collect::<Vec<_>>().join("; ")
                );
            }
            if let Some(c) = decision["comment"].as_str() {
                let _ = write!(t, " ({c})");
            }
            t
        }
        "gate.evaluated" => {
            let mut t = format!("gates of ring {}: {}\n", s(&d["ring"]), s(&d["verdict"]));
            t.push_str(&gate_checks(d, "                                  "));
            t.trim_end().to_owned()
        }
        "dispatch.requested" => format!(
            "{} confirmed ring {} {}",
            s(&d["platform"]),
            s(&d["ring"]),
            d["platform_ids"]
        ),
        "connector.auth.refresh" => {
            format!("{} connector refreshed its token", s(&d["platform"]))
        }
        "incident.reported" => format!(
            "incident {} ({}): {}{}",
            s(&d["incident"]["id"]),
            s(&d["incident"]["severity"]),
            s(&d["incident"]["summary"]),
            d["incident"]["reclassified_as"]
                .as_str()
                .map(|c| format!("; blast radius now {c}"))
                .unwrap_or_default()
        ),
        "incident.resolved" => format!(
            "incident {} resolved: {}",
            s(&d["incident"]["id"]),
            s(&d["incident"]["resolved"]["resolution"])
        ),
        "rollback.validated" => format!(
            "rollback {} on Ring 0 devices {}; rollback gate {}",
            s(&d["result"]),
            d["devices"]
                .as_array()
                .map(|a| a.iter().map(s).collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
            if d["rollback_validated"] == true {
                "satisfied"
            } else {
                "not satisfied"
            }
        ),
        other => format!("{other} {d}"),
    }
}
