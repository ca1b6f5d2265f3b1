//! The operator CLI (`eucora`): the HTTP API from a terminal, with readable output or `--json`.
//!
//! Where it calls: `--api URL`, else `EUCORA_API`, else the session file `infra/dev run` writes.
//! As whom: `--token T`, else `--as <person>` (a token from the session file), else
//! `EUCORA_TOKEN`. The command line is declared once, with clap's derive: `eucora --help` and
//! `eucora <command> --help` list every option with its description.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::builder::PossibleValuesParser;
use clap::error::ErrorKind;
use clap::{Parser, Subcommand};
use eucora_api::bodies::SEVERITIES;
use eucora_domain::cab::BlastRadiusClass;
use eucora_domain::exception::ExceptionKind;
use eucora_domain::gates::GateKind;
use eucora_domain::rollback::RollbackResult;
use serde_json::{Value, json};

use crate::client::{Client, Reply};
use crate::render;

/// Bad command-line input (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// The command line itself (an unknown option, a missing or bad value): clap's message, which
    /// names the option and shows the usage.
    #[error(transparent)]
    CommandLine(#[from] clap::Error),
    /// Where to call or as whom cannot be worked out from the options, environment and session.
    #[error("{0}")]
    Setup(String),
}

fn usage_err(msg: impl Into<String>) -> anyhow::Error {
    UsageError::Setup(msg.into()).into()
}

/// The session file `infra/dev run` writes: the API's address and a token per person
/// (`EUCORA_SESSION`, else `target/eucora-local/session.json` in the repository).
pub fn default_session_file() -> PathBuf {
    std::env::var_os("EUCORA_SESSION").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/eucora-local/session.json"),
        PathBuf::from,
    )
}

/// The operator CLI over the EUCORA HTTP API: readable output, or the API's own JSON with --json.
#[derive(Debug, Parser)]
#[command(
    name = "eucora",
    version,
    subcommand_required = true,
    arg_required_else_help = true,
    after_help = "Where it calls: --api, else EUCORA_API, else the session file `infra/dev run` writes.\n\
                  As whom: --token, else --as PERSON, else EUCORA_TOKEN, else (to read) the auditor's \
                  token from the session file."
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes, before or after the command's name.
#[derive(clap::Args)]
#[command(next_help_heading = "Options for every command")]
struct Global {
    /// The API's base URL [default: the session file's]
    #[arg(
        long,
        global = true,
        env = "EUCORA_API",
        hide_env_values = true,
        value_name = "URL"
    )]
    api: Option<String>,
    /// The bearer token to call with [else --as, else `EUCORA_TOKEN`]
    #[arg(long, global = true, value_name = "T", conflicts_with = "person")]
    token: Option<String>,
    /// Calls with the token `infra/dev run` printed for PERSON (from its session file):
    /// packager-alice, publisher-pat, cab-carol, cab-dave, cab-frank, security-sam or auditor-erin
    #[arg(long = "as", global = true, value_name = "PERSON")]
    person: Option<String>,
    /// The session file `infra/dev run` writes [default: `EUCORA_SESSION`, else
    /// target/eucora-local/session.json]
    #[arg(long, global = true, value_name = "FILE")]
    session: Option<PathBuf>,
    /// Prints the API's JSON answer instead of text
    #[arg(long, global = true)]
    json: bool,
}

impl std::fmt::Debug for Global {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Global")
            .field("api", &self.api)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("person", &self.person)
            .field("session", &self.session)
            .field("json", &self.json)
            .finish()
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Submits a deployment with its evidence pack
    Submit {
        /// The submission, as JSON (the samples `infra/dev run` staged are ready to submit)
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Makes a retried submission answer as the first one did
        #[arg(long, value_name = "K")]
        idempotency_key: Option<String>,
    },
    /// A deployment: state, risk, rings and CAB, gates
    Status {
        /// The deployment's id
        #[arg(value_name = "ID")]
        id: String,
    },
    /// What waits for CAB
    Queue,
    /// Approves a ring, bound to the evidence hash `status` shows
    Approve {
        /// The deployment's id
        #[arg(value_name = "ID")]
        id: String,
        /// The ring to approve
        #[arg(long, value_name = "N")]
        ring: u8,
        /// A condition of the approval (repeat for several)
        #[arg(long, value_name = "TEXT")]
        condition: Vec<String>,
        /// A comment for the audit trail
        #[arg(long, value_name = "TEXT")]
        comment: Option<String>,
        /// The evidence hash reviewed [default: the deployment's current one]
        #[arg(long, value_name = "H")]
        evidence_hash: Option<String>,
    },
    /// Rejects a ring, bound to the evidence hash `status` shows
    Reject {
        /// The deployment's id
        #[arg(value_name = "ID")]
        id: String,
        /// The ring to reject
        #[arg(long, value_name = "N")]
        ring: u8,
        /// Why (required)
        #[arg(long, value_name = "TEXT")]
        comment: String,
        /// The evidence hash reviewed [default: the deployment's current one]
        #[arg(long, value_name = "H")]
        evidence_hash: Option<String>,
    },
    /// Requests, approves, rejects or extends an exception
    #[command(subcommand)]
    Exception(ExceptionCommand),
    /// Reports or resolves an incident
    #[command(subcommand)]
    Incident(IncidentCommand),
    /// Records a rollback run on Ring 0 devices (not by the submitter): the rollback gate reads
    /// the latest record, not the packager's claim
    ValidateRollback {
        /// The deployment's id
        #[arg(value_name = "ID")]
        id: String,
        /// A Ring 0 device the rollback ran on (repeat for several)
        #[arg(long, value_name = "DEVICE_ID", required = true)]
        device: Vec<String>,
        /// How it went
        #[arg(long, value_name = "RESULT", value_parser = PossibleValuesParser::new(keys(RollbackResult::ALL, |r| r.key())))]
        result: String,
        /// What was seen
        #[arg(long, value_name = "TEXT")]
        notes: Option<String>,
    },
    /// The audit trail as a timeline
    Audit {
        /// The deployment's id
        #[arg(value_name = "ID")]
        id: String,
        /// Also verifies the trail's hash chain
        #[arg(long)]
        verify: bool,
    },
    /// Verifies the audit trail's hash chain (page by page) and shows the checkpoint to resume from
    Verify {
        /// The deployment's id
        #[arg(value_name = "ID")]
        id: String,
        /// Resume from this checkpoint (`<seq>.<hash>`, as an earlier verification showed it):
        /// only the events after it are read
        #[arg(long, value_name = "CHECKPOINT")]
        from: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ExceptionCommand {
    /// Requests an exception for a deployment
    Request {
        /// The deployment's id
        #[arg(value_name = "ID")]
        id: String,
        /// What the exception lets through
        #[arg(long, value_name = "KIND", value_parser = PossibleValuesParser::new(keys(ExceptionKind::ALL, |k| k.key())))]
        kind: String,
        /// Why it is needed
        #[arg(long, value_name = "TEXT")]
        justification: String,
        /// A compensating control (repeat for several)
        #[arg(long, value_name = "TEXT")]
        control: Vec<String>,
        /// How long it lasts [default: the policy's]
        #[arg(long, value_name = "N")]
        days: Option<u32>,
        /// The ring whose gate it waives (a `gate_override`, with --gate)
        #[arg(long, value_name = "N")]
        ring: Option<u8>,
        /// The gate it waives (a `gate_override`, with --ring)
        #[arg(long, value_name = "GATE", value_parser = PossibleValuesParser::new(keys(GateKind::ALL, |g| g.key())))]
        gate: Option<String>,
    },
    /// Approves an exception (in the role the policy asks for)
    Approve {
        /// The deployment's id
        #[arg(value_name = "ID")]
        id: String,
        /// The exception's id
        #[arg(value_name = "EXCEPTION_ID")]
        exception_id: String,
    },
    /// Rejects an exception
    Reject {
        /// The deployment's id
        #[arg(value_name = "ID")]
        id: String,
        /// The exception's id
        #[arg(value_name = "EXCEPTION_ID")]
        exception_id: String,
        /// Why
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Extends an approved exception
    Extend {
        /// The deployment's id
        #[arg(value_name = "ID")]
        id: String,
        /// The exception's id
        #[arg(value_name = "EXCEPTION_ID")]
        exception_id: String,
        /// By how many days
        #[arg(long, value_name = "N")]
        days: u32,
    },
}

#[derive(Debug, Subcommand)]
enum IncidentCommand {
    /// Reports an incident: the deployment halts
    Report {
        /// The deployment's id
        #[arg(value_name = "ID")]
        id: String,
        /// How bad it is
        #[arg(long, value_name = "SEVERITY", value_parser = PossibleValuesParser::new(SEVERITIES))]
        severity: String,
        /// What happened
        #[arg(long, value_name = "TEXT")]
        summary: String,
        /// Reclassifies the deployment's blast radius
        #[arg(long, value_name = "CLASS", value_parser = PossibleValuesParser::new(keys(BlastRadiusClass::ALL, |c| c.key())))]
        reclassify: Option<String>,
    },
    /// Resolves an incident
    Resolve {
        /// The deployment's id
        #[arg(value_name = "ID")]
        id: String,
        /// The incident's id
        #[arg(value_name = "INCIDENT_ID")]
        incident_id: String,
        /// How it was resolved
        #[arg(long, value_name = "TEXT")]
        resolution: String,
    },
}

/// The wire spellings of one of the domain's closed sets, for clap's list of possible values.
fn keys<T: Copy>(all: &[T], key: fn(T) -> &'static str) -> Vec<&'static str> {
    all.iter().map(|v| key(*v)).collect()
}

fn client(global: &Global) -> Result<Client> {
    let session_path = global.session.clone().unwrap_or_else(default_session_file);
    let session: Option<Value> = std::fs::read_to_string(&session_path)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok());
    // `--api` falls back on EUCORA_API by clap's `env`.
    let api = global
        .api
        .clone()
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
    let token = if let Some(t) = &global.token {
        t.clone()
    } else if let Some(who) = &global.person {
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

/// Parses the command line (without the program's name); `Ok(Err(text))` when it asked for help
/// (or the version): the text to print.
fn parse(raw: &[String]) -> Result<std::result::Result<Cli, String>> {
    let argv = std::iter::once("eucora").chain(raw.iter().map(String::as_str));
    match Cli::try_parse_from(argv) {
        Ok(cli) => Ok(Ok(cli)),
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            Ok(Err(e.to_string()))
        }
        Err(e) => Err(UsageError::CommandLine(e).into()),
    }
}

/// Runs one command (the arguments without the program's name); returns what to print.
pub async fn run(raw: &[String]) -> Result<String> {
    let cli = match parse(raw)? {
        Ok(cli) => cli,
        Err(help) => return Ok(help),
    };
    let api = client(&cli.global)?;
    let (body, text): (Value, String) = match cli.command {
        Command::Submit {
            file,
            idempotency_key,
        } => {
            let submission: Value = serde_json::from_str(
                &std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?,
            )
            .with_context(|| format!("{} is not JSON", file.display()))?;
            let b = ok(api.submit(&submission, idempotency_key.as_deref()).await?)?;
            let t = format!(
                "submitted {} ({}): {}\n",
                b["id"].as_str().unwrap_or_default(),
                b["correlation_id"].as_str().unwrap_or_default(),
                crate::client::state_of(&b)
            );
            (b, t)
        }
        Command::Status { id } => {
            let b = ok(api.deployment(&id).await?)?;
            let t = render::deployment(&b);
            (b, t)
        }
        Command::Queue => {
            let b = ok(api.cab_queue().await?)?;
            let t = queue_text(&b);
            (b, t)
        }
        Command::Approve {
            id,
            ring,
            condition,
            comment,
            evidence_hash,
        } => {
            let decision = Decision {
                id: &id,
                ring,
                verdict: "approve",
                conditions: &condition,
                comment: comment.as_deref(),
                evidence_hash,
            };
            decide(&api, decision).await?
        }
        Command::Reject {
            id,
            ring,
            comment,
            evidence_hash,
        } => {
            let decision = Decision {
                id: &id,
                ring,
                verdict: "reject",
                conditions: &[],
                comment: Some(&comment),
                evidence_hash,
            };
            decide(&api, decision).await?
        }
        Command::Exception(action) => exception(&api, action).await?,
        Command::Incident(action) => incident(&api, action).await?,
        Command::ValidateRollback {
            id,
            device,
            result,
            notes,
        } => validate_rollback(&api, &id, &device, &result, notes.as_deref()).await?,
        Command::Audit { id, verify } => {
            let b = ok(api.audit(&id).await?)?;
            let mut t = render::timeline(b["events"].as_array().map_or(&[][..], |v| v));
            let mut body = b;
            if verify {
                let v = ok(api.verify(&id).await?)?;
                t.push_str(&verification(&v));
                body = json!({ "events": body["events"], "verification": v });
            }
            (body, t)
        }
        Command::Verify { id, from } => {
            let v = ok(api.verify_from(&id, from.as_deref()).await?)?;
            let t = verification(&v);
            (v, t)
        }
    };
    Ok(if cli.global.json {
        format!("{}\n", serde_json::to_string_pretty(&body)?)
    } else {
        text
    })
}

fn verification(v: &Value) -> String {
    if v["valid"] == true {
        let resumed = match v["from"]["seq"].as_u64() {
            Some(seq) => format!(" ({} read after checkpoint {seq})", v["checked"]),
            None => String::new(),
        };
        let checkpoint = match (
            v["checkpoint"]["seq"].as_u64(),
            v["checkpoint"]["hash"].as_str(),
        ) {
            (Some(seq), Some(hash)) => {
                format!(
                    "checkpoint {seq}.{hash} (next time: verify {} --from {seq}.{hash})\n",
                    v["deployment_id"].as_str().unwrap_or("ID")
                )
            }
            _ => String::new(),
        };
        format!(
            "audit chain verified: {} events{resumed}, head {}\n{checkpoint}",
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

async fn exception(api: &Client, action: ExceptionCommand) -> Result<(Value, String)> {
    let b = match action {
        ExceptionCommand::Request {
            id,
            kind,
            justification,
            control,
            days,
            ring,
            gate,
        } => {
            let mut req = json!({
                "kind": kind,
                "justification": justification,
                "compensating_controls": control,
            });
            if let Some(d) = days {
                req["expires_in_days"] = d.into();
            }
            if let Some(r) = ring {
                req["ring"] = r.into();
            }
            if let Some(g) = gate {
                req["gate"] = g.into();
            }
            ok(api.request_exception(&id, &req).await?)?
        }
        ExceptionCommand::Approve { id, exception_id } => {
            ok(api.approve_exception(&id, &exception_id).await?)?
        }
        ExceptionCommand::Reject {
            id,
            exception_id,
            reason,
        } => ok(api.reject_exception(&id, &exception_id, &reason).await?)?,
        ExceptionCommand::Extend {
            id,
            exception_id,
            days,
        } => ok(api.extend_exception(&id, &exception_id, days).await?)?,
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

async fn validate_rollback(
    api: &Client,
    id: &str,
    devices: &[String],
    result: &str,
    notes: Option<&str>,
) -> Result<(Value, String)> {
    let b = ok(api.validate_rollback(id, devices, result, notes).await?)?;
    let t = format!(
        "rollback validation recorded ({}); the rollback gate is {}; the deployment is {}\n",
        b["validation"]["result"].as_str().unwrap_or_default(),
        if b["rollback_validated"] == true {
            "satisfied"
        } else {
            "not satisfied"
        },
        b["state"]["state"].as_str().unwrap_or_default()
    );
    Ok((b, t))
}

async fn incident(api: &Client, action: IncidentCommand) -> Result<(Value, String)> {
    let (b, done) = match action {
        IncidentCommand::Report {
            id,
            severity,
            summary,
            reclassify,
        } => (
            ok(api
                .report_incident(&id, &severity, &summary, reclassify.as_deref())
                .await?)?,
            "reported",
        ),
        IncidentCommand::Resolve {
            id,
            incident_id,
            resolution,
        } => (
            ok(api.resolve_incident(&id, &incident_id, &resolution).await?)?,
            "resolved",
        ),
    };
    let t = format!(
        "incident {} {done}; the deployment is {}\n",
        b["incident"]["id"].as_str().unwrap_or_default(),
        b["state"]["state"].as_str().unwrap_or_default()
    );
    Ok((b, t))
}

/// The binary's main: prints the answer (or the help asked for) and returns 0; or prints the error
/// and returns 2 for bad input (clap's own message for the command line), 1 otherwise.
pub async fn main_with(raw: &[String], out: &mut dyn Write) -> i32 {
    match run(raw).await {
        Ok(text) => {
            let _ = out.write_all(text.as_bytes());
            0
        }
        Err(e) => match e.downcast_ref::<UsageError>() {
            Some(UsageError::CommandLine(clap)) => {
                let _ = clap.print();
                clap.exit_code()
            }
            Some(UsageError::Setup(_)) => {
                eprintln!("eucora: {e:#}");
                2
            }
            None => {
                eprintln!("eucora: {e:#}");
                1
            }
        },
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

/// A CAB decision as the command line gave it.
struct Decision<'a> {
    id: &'a str,
    ring: u8,
    verdict: &'static str,
    conditions: &'a [String],
    comment: Option<&'a str>,
    evidence_hash: Option<String>,
}

/// `approve` or `reject`, bound to the evidence hash given (or the deployment's current one).
async fn decide(api: &Client, d: Decision<'_>) -> Result<(Value, String)> {
    let Decision {
        id,
        ring,
        verdict,
        conditions,
        comment,
        evidence_hash,
    } = d;
    let hash = match evidence_hash {
        Some(h) => h,
        None => ok(api.deployment(id).await?)?["evidence_hash"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    };
    let b = ok(api
        .decide(id, ring, verdict, &hash, conditions, comment)
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    fn parsed(args: &[&str]) -> Cli {
        let raw: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        parse(&raw).unwrap().unwrap()
    }

    #[test]
    fn options_every_command_takes_may_come_before_or_after_it() {
        for args in [
            &["--as", "cab-carol", "--json", "status", "D-1"][..],
            &["status", "D-1", "--json", "--as", "cab-carol"],
        ] {
            let cli = parsed(args);
            assert!(cli.global.json);
            assert_eq!(cli.global.person.as_deref(), Some("cab-carol"));
            assert!(matches!(cli.command, Command::Status { ref id } if id == "D-1"));
        }
    }

    #[test]
    fn repeated_options_collect_and_help_is_not_an_error() {
        let cli = parsed(&[
            "approve",
            "D-1",
            "--ring",
            "2",
            "--condition",
            "a",
            "--condition",
            "b",
        ]);
        let Command::Approve {
            ring, condition, ..
        } = cli.command
        else {
            panic!("{cli:?}")
        };
        assert_eq!((ring, condition), (2, vec!["a".to_owned(), "b".to_owned()]));
        let help = parse(&["approve".to_owned(), "--help".to_owned()])
            .unwrap()
            .unwrap_err();
        assert!(help.contains("--ring <N>"), "{help}");
    }

    #[test]
    fn the_vocabularies_are_the_apis() {
        let e = parse(
            &[
                "incident",
                "report",
                "D-1",
                "--severity",
                "huge",
                "--summary",
                "x",
            ]
            .map(str::to_owned),
        )
        .unwrap_err();
        let e = e.to_string();
        assert!(e.contains("--severity") && e.contains("critical"), "{e}");
        let e = parse(
            &[
                "exception",
                "request",
                "D-1",
                "--kind",
                "nope",
                "--justification",
                "x",
            ]
            .map(str::to_owned),
        )
        .unwrap_err();
        assert!(e.to_string().contains("vulnerability_scan"), "{e}");
    }
}
