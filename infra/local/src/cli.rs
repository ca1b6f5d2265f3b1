//! The operator CLI (`eucora`): the HTTP API from a terminal, with readable output or `--json`.
//!
//! Where it calls: `--api URL`, else `EUCORA_API`, else the session file `infra/dev run` writes.
//! As whom: `--token T`, else `--as <person>` (a token from the session file), else
//! `EUCORA_TOKEN`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::client::{Client, Reply};
use crate::render;

pub const USAGE: &str =
    "usage: eucora [--api URL] [--token T | --as PERSON] [--session FILE] [--json] COMMAND

commands:
  submit FILE [--idempotency-key K]            submit a deployment with its evidence pack
  status ID                                    a deployment: state, risk, rings and CAB, gates
  queue                                        what waits for CAB
  approve ID --ring N [--condition TEXT]...    approve a ring (bound to the evidence hash shown
          [--evidence-hash H]                  by `status`; the current one when omitted)
  reject ID --ring N --comment TEXT [--evidence-hash H]
  exception request ID --kind KIND --justification TEXT [--control TEXT]... [--days N]
                       [--ring N --gate GATE]
  exception approve ID EXCEPTION_ID
  exception reject ID EXCEPTION_ID --reason TEXT
  exception extend ID EXCEPTION_ID --days N
  incident report ID --severity low|medium|high|critical --summary TEXT [--reclassify CLASS]
  incident resolve ID INCIDENT_ID --resolution TEXT
  audit ID [--verify]                          the audit trail as a timeline (and its verification)
  verify ID                                    verify the audit trail's hash chain

  --as PERSON   packager-alice, publisher-pat, cab-carol, cab-dave, cab-frank, security-sam or
                auditor-erin: the tokens `infra/dev run` printed (read from its session file)
  --json        print the API's JSON answer instead of text";

/// Bad command-line input (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}\n\n{USAGE}")]
pub struct UsageError(pub String);

fn usage_err(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

/// The session file `infra/dev run` writes: the API's address and a token per person
/// (`EUCORA_SESSION`, else `target/eucora-local/session.json` in the repository).
pub fn default_session_file() -> PathBuf {
    std::env::var_os("EUCORA_SESSION").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/eucora-local/session.json"),
        PathBuf::from,
    )
}

#[derive(Debug, Default)]
struct Args {
    positional: Vec<String>,
    options: Vec<(String, String)>,
    flags: Vec<String>,
}

const FLAGS: &[&str] = &["--json", "--verify", "--help", "-h"];

impl Args {
    fn parse(raw: &[String]) -> Result<Args> {
        let mut a = Args::default();
        let mut it = raw.iter();
        while let Some(x) = it.next() {
            if FLAGS.contains(&x.as_str()) {
                a.flags.push(x.clone());
            } else if x.starts_with("--") {
                let v = it
                    .next()
                    .ok_or_else(|| usage_err(format!("{x} needs a value")))?;
                a.options.push((x.clone(), v.clone()));
            } else {
                a.positional.push(x.clone());
            }
        }
        Ok(a)
    }

    fn opt(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.options
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn required(&self, name: &str) -> Result<&str> {
        self.opt(name)
            .ok_or_else(|| usage_err(format!("{name} is required")))
    }

    fn pos(&self, i: usize, what: &str) -> Result<&str> {
        self.positional
            .get(i)
            .map(String::as_str)
            .ok_or_else(|| usage_err(format!("{what} is missing")))
    }

    fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }

    fn number<T: std::str::FromStr>(&self, name: &str) -> Result<T> {
        self.required(name)?
            .parse()
            .map_err(|_| usage_err(format!("{name} must be a number")))
    }
}

fn client(args: &Args) -> Result<Client> {
    let session_path = args
        .opt("--session")
        .map_or_else(default_session_file, PathBuf::from);
    let session: Option<Value> = std::fs::read_to_string(&session_path)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok());
    let api = args
        .opt("--api")
        .map(str::to_owned)
        .or_else(|| std::env::var("EUCORA_API").ok())
        .or_else(|| {
            session
                .as_ref()
                .and_then(|s| s["api_url"].as_str().map(str::to_owned))
        })
        .ok_or_else(|| {
            usage_err(format!(
                "no API: pass --api, set EUCORA_API, or start the local stack (infra/dev run), which writes {}",
                session_path.display()
            ))
        })?;
    let token = if let Some(t) = args.opt("--token") {
        t.to_owned()
    } else if let Some(who) = args.opt("--as") {
        session
            .as_ref()
            .and_then(|s| s["tokens"][who].as_str().map(str::to_owned))
            .ok_or_else(|| {
                usage_err(format!(
                    "--as {who}: no token for {who} in {}",
                    session_path.display()
                ))
            })?
    } else if let Ok(t) = std::env::var("EUCORA_TOKEN") {
        t
    } else {
        // Reading needs any role: the auditor's token, when the local stack is running.
        session
            .as_ref()
            .and_then(|s| s["tokens"]["auditor-erin"].as_str().map(str::to_owned))
            .ok_or_else(|| {
                usage_err("no token: pass --token or --as PERSON, or set EUCORA_TOKEN")
            })?
    };
    Ok(Client::new(&api, &token))
}

/// The API's error, as one line: status, code, field, message.
fn api_error(r: &Reply) -> anyhow::Error {
    let e = &r.body["error"];
    if e.is_object() {
        let field = e["field"]
            .as_str()
            .map(|f| format!(" (field {f})"))
            .unwrap_or_default();
        anyhow::anyhow!(
            "HTTP {} {}{field}: {}",
            r.status,
            e["code"].as_str().unwrap_or_default(),
            e["message"].as_str().unwrap_or_default()
        )
    } else {
        anyhow::anyhow!("HTTP {}: {}", r.status, r.body)
    }
}

fn ok(r: Reply) -> Result<Value> {
    if r.ok() {
        Ok(r.body)
    } else {
        Err(api_error(&r))
    }
}

/// Runs one command; returns what to print.
pub async fn run(raw: &[String]) -> Result<String> {
    let args = Args::parse(raw)?;
    if args.positional.is_empty() || args.flag("--help") || args.flag("-h") {
        return Ok(USAGE.to_owned());
    }
    let json_out = args.flag("--json");
    let api = client(&args)?;
    let command = args.pos(0, "COMMAND")?;
    let (body, text): (Value, String) = match command {
        "submit" => {
            let file = args.pos(1, "FILE")?;
            let submission: Value = serde_json::from_str(
                &std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?,
            )
            .with_context(|| format!("{file} is not JSON"))?;
            let b = ok(api
                .submit(&submission, args.opt("--idempotency-key"))
                .await?)?;
            let t = format!(
                "submitted {} ({}): {}\n",
                b["id"].as_str().unwrap_or_default(),
                b["correlation_id"].as_str().unwrap_or_default(),
                crate::client::state_of(&b)
            );
            (b, t)
        }
        "status" => {
            let b = ok(api.deployment(args.pos(1, "ID")?).await?)?;
            let t = render::deployment(&b);
            (b, t)
        }
        "queue" => {
            let b = ok(api.cab_queue().await?)?;
            let t = queue_text(&b);
            (b, t)
        }
        "approve" | "reject" => decide(&api, &args, command).await?,
        "exception" => exception(&api, &args).await?,
        "incident" => incident(&api, &args).await?,
        "audit" => {
            let id = args.pos(1, "ID")?;
            let b = ok(api.audit(id).await?)?;
            let mut t = render::timeline(b["events"].as_array().map_or(&[][..], |v| v));
            let mut body = b;
            if args.flag("--verify") {
                let v = ok(api.verify(id).await?)?;
                t.push_str(&verification(&v));
                body = json!({ "events": body["events"], "verification": v });
            }
            (body, t)
        }
        "verify" => {
            let v = ok(api.verify(args.pos(1, "ID")?).await?)?;
            let t = verification(&v);
            (v, t)
        }
        other => return Err(usage_err(format!("unknown command {other}"))),
    };
    Ok(if json_out {
        format!("{}\n", serde_json::to_string_pretty(&body)?)
    } else {
        text
    })
}

fn verification(v: &Value) -> String {
    if v["valid"] == true {
        format!(
            "audit chain verified: {} events, head {}\n",
            v["events"],
            v["head"]["hash"].as_str().unwrap_or_default()
        )
    } else {
        format!(
            "AUDIT CHAIN BROKEN: {}\n",
            v["message"].as_str().unwrap_or_default()
        )
    }
}

async fn exception(api: &Client, args: &Args) -> Result<(Value, String)> {
    let action = args.pos(1, "exception request|approve|reject|extend")?;
    let id = args.pos(2, "ID")?;
    let b = match action {
        "request" => {
            let mut req = json!({
                "kind": args.required("--kind")?,
                "justification": args.required("--justification")?,
                "compensating_controls": args.all("--control"),
            });
            if let Some(d) = args.opt("--days") {
                req["expires_in_days"] = d
                    .parse::<u32>()
                    .map_err(|_| usage_err("--days must be a number"))?
                    .into();
            }
            if let Some(r) = args.opt("--ring") {
                req["ring"] = r
                    .parse::<u8>()
                    .map_err(|_| usage_err("--ring must be a number"))?
                    .into();
            }
            if let Some(g) = args.opt("--gate") {
                req["gate"] = g.into();
            }
            ok(api.request_exception(id, &req).await?)?
        }
        "approve" => ok(api
            .approve_exception(id, args.pos(3, "EXCEPTION_ID")?)
            .await?)?,
        "reject" => ok(api
            .reject_exception(id, args.pos(3, "EXCEPTION_ID")?, args.required("--reason")?)
            .await?)?,
        "extend" => ok(api
            .extend_exception(id, args.pos(3, "EXCEPTION_ID")?, args.number("--days")?)
            .await?)?,
        other => return Err(usage_err(format!("unknown exception action {other}"))),
    };
    let t = format!(
        "exception {} ({}) is {}, expires {}; the deployment is {}\n",
        b["exception"]["id"].as_str().unwrap_or_default(),
        b["exception"]["kind"].as_str().unwrap_or_default(),
        b["status"].as_str().unwrap_or_default(),
        b["exception"]["expires_at"].as_str().unwrap_or_default(),
        b["deployment_state"]["state"].as_str().unwrap_or_default()
    );
    Ok((b, t))
}

async fn incident(api: &Client, args: &Args) -> Result<(Value, String)> {
    let action = args.pos(1, "incident report|resolve")?;
    let id = args.pos(2, "ID")?;
    let b = match action {
        "report" => ok(api
            .report_incident(
                id,
                args.required("--severity")?,
                args.required("--summary")?,
                args.opt("--reclassify"),
            )
            .await?)?,
        "resolve" => ok(api
            .resolve_incident(
                id,
                args.pos(3, "INCIDENT_ID")?,
                args.required("--resolution")?,
            )
            .await?)?,
        other => return Err(usage_err(format!("unknown incident action {other}"))),
    };
    let t = format!(
        "incident {} {}; the deployment is {}\n",
        b["incident"]["id"].as_str().unwrap_or_default(),
        if action == "report" {
            "reported"
        } else {
            "resolved"
        },
        b["state"]["state"].as_str().unwrap_or_default()
    );
    Ok((b, t))
}

/// The binary's main: prints the answer, or the error (exit 2 for bad input, 1 otherwise).
pub async fn main_with(raw: &[String], out: &mut dyn Write) -> i32 {
    match run(raw).await {
        Ok(text) => {
            let _ = out.write_all(text.as_bytes());
            0
        }
        Err(e) => {
            eprintln!("eucora: {e:#}");
            if e.downcast_ref::<UsageError>().is_some() {
                2
            } else {
                1
            }
        }
    }
}

fn queue_text(b: &Value) -> String {
    use std::fmt::Write as _;
    let items = b["awaiting_cab"].as_array().cloned().unwrap_or_default();
    let mut t = format!("{} deployment(s) waiting for CAB\n", items.len());
    for d in &items {
        let _ = writeln!(
            t,
            "  {}  {} {}  ring {}  risk {}  {}  {} of {} approvals  evidence {}",
            d["deployment_id"].as_str().unwrap_or_default(),
            d["app"].as_str().unwrap_or_default(),
            d["version"].as_str().unwrap_or_default(),
            d["ring"],
            d["risk_score"],
            d["blast_radius"].as_str().unwrap_or_default(),
            d["status"]["approvals"],
            d["status"]["quorum"],
            d["evidence_hash"].as_str().unwrap_or_default()
        );
    }
    t
}

/// `approve` or `reject`, bound to the evidence hash given (or the deployment's current one).
async fn decide(api: &Client, args: &Args, verdict: &str) -> Result<(Value, String)> {
    let id = args.pos(1, "ID")?;
    let ring: u8 = args.number("--ring")?;
    let hash = match args.opt("--evidence-hash") {
        Some(h) => h.to_owned(),
        None => ok(api.deployment(id).await?)?["evidence_hash"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    };
    let comment = if verdict == "reject" {
        Some(args.required("--comment")?)
    } else {
        args.opt("--comment")
    };
    let b = ok(api
        .decide(id, ring, verdict, &hash, &args.all("--condition"), comment)
        .await?)?;
    let t = format!(
        "{} ring {ring} of {id} (evidence {hash}): the ring's CAB status is {}; the deployment is {}\n",
        if verdict == "approve" {
            "approved"
        } else {
            "rejected"
        },
        b["cab_status"]["status"].as_str().unwrap_or("-"),
        b["state"]["state"]
            .as_str()
            .map_or_else(|| b["state"].to_string(), str::to_owned)
    );
    Ok((b, t))
}
