//! The operator CLI against the local stack: submit, status, queue, approve, incidents, audit and
//! its verification, readable and `--json`; bad input exits 2 naming what is wrong, and the API's
//! refusals name the field. The `eucora` binary itself: `--help` on it and on each command lists
//! the commands and options, and a bad command line exits 2 naming the option.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use eucora_domain::cab::Role;
use eucora_local::cli;
use eucora_local::stack::local::{LocalStack, Options};

fn args(session: &str, a: &[&str]) -> Vec<String> {
    let mut v = vec!["--session".to_owned(), session.to_owned()];
    v.extend(a.iter().map(|s| (*s).to_owned()));
    v
}

/// The `eucora` binary with `args`, with no API, token or session from the environment.
fn eucora(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_eucora"))
        .args(args)
        .env_remove("EUCORA_API")
        .env_remove("EUCORA_TOKEN")
        .env("EUCORA_SESSION", "/nonexistent/eucora-session.json")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn eucora_help_lists_the_commands_and_each_command_s_options() {
    let out = eucora(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for command in [
        "submit",
        "status",
        "queue",
        "approve",
        "reject",
        "exception",
        "incident",
        "audit",
        "verify",
    ] {
        assert!(
            help.contains(&format!("\n  {command} ")),
            "{command} not in\n{help}"
        );
    }
    for option in [
        "--api <URL>",
        "EUCORA_API",
        "--token <T>",
        "--as <PERSON>",
        "--json",
    ] {
        assert!(help.contains(option), "{option} not in\n{help}");
    }
    for (args, options) in [
        (
            &["approve", "--help"][..],
            &[
                "--ring <N>",
                "--condition <TEXT>",
                "--evidence-hash <H>",
                "--as <PERSON>",
            ][..],
        ),
        (&["reject", "--help"], &["--ring <N>", "--comment <TEXT>"]),
        (&["submit", "--help"], &["<FILE>", "--idempotency-key <K>"]),
        (&["audit", "--help"], &["<ID>", "--verify"]),
        (&["verify", "--help"], &["<ID>", "--from <CHECKPOINT>"]),
        (
            &["exception", "request", "--help"],
            &[
                "--kind <KIND>",
                "vulnerability_scan",
                "--control <TEXT>",
                "--days <N>",
            ],
        ),
        (
            &["exception", "extend", "--help"],
            &["<EXCEPTION_ID>", "--days <N>"],
        ),
        (
            &["incident", "report", "--help"],
            &["--severity <SEVERITY>", "critical", "--reclassify <CLASS>"],
        ),
        (
            &["help", "incident", "resolve"],
            &["<INCIDENT_ID>", "--resolution <TEXT>"],
        ),
    ] {
        let out = eucora(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let help = text(&out.stdout);
        for option in options {
            assert!(help.contains(option), "{args:?}: {option} not in\n{help}");
        }
    }
}

#[test]
fn a_bad_eucora_command_line_exits_2_naming_the_option() {
    for (args, named) in [
        (&["approve", "D-1"][..], "--ring <N>"),
        (&["reject", "D-1", "--ring", "1"], "--comment <TEXT>"),
        (&["status", "D-1", "--bogus"], "--bogus"),
        (&["approve", "D-1", "--ring", "one"], "--ring <N>"),
        (
            &[
                "incident",
                "report",
                "D-1",
                "--severity",
                "huge",
                "--summary",
                "x",
            ],
            "--severity <SEVERITY>",
        ),
        (
            &["--token", "t", "--as", "cab-carol", "queue"],
            "--as <PERSON>",
        ),
        (&["deploy"], "deploy"),
    ] {
        let out = eucora(args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(named), "{args:?}: {named} not in\n{err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    // Nowhere to call: also bad input, said in words.
    let out = eucora(&["status", "D-1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no API: pass --api"));
}

/// A local stack, a session file with tokens for four people, and the high-risk sample with its
/// packages staged.
async fn stack_with_session() -> (LocalStack, PathBuf, PathBuf) {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let stack = LocalStack::start(
        &repo,
        Options {
            speed: 60.0,
            devices: 5,
            schedule: false,
            realistic_latency: false,
            ..Options::default()
        },
    )
    .await
    .unwrap();
    let dir = std::env::temp_dir().join(format!("eucora-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let session = dir.join("session.json");
    let tokens: serde_json::Map<String, serde_json::Value> = [
        ("packager-alice", Role::Packaging),
        ("cab-carol", Role::Cab),
        ("publisher-pat", Role::Publisher),
        ("security-sam", Role::SecurityReviewer),
        ("auditor-erin", Role::Auditor),
    ]
    .iter()
    .map(|(w, r)| ((*w).to_owned(), stack.token(w, &[*r]).into()))
    .collect();
    std::fs::write(
        &session,
        serde_json::json!({ "api_url": stack.api_url, "tokens": tokens }).to_string(),
    )
    .unwrap();
    let mut sample: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo.join("events/deployments/high-risk.json")).unwrap(),
    )
    .unwrap();
    stack.stage_packages(&mut sample).await.unwrap();
    let file = dir.join("high-risk.json");
    std::fs::write(&file, sample.to_string()).unwrap();

    (stack, dir, file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_drives_a_deployment_from_the_cli() {
    let (stack, dir, file) = stack_with_session().await;
    let session = dir.join("session.json");
    let session = session.to_str().unwrap();
    // Submit (as the packager), readable output names the id.
    let out = cli::run(&args(
        session,
        &[
            "--as",
            "packager-alice",
            "--json",
            "submit",
            file.to_str().unwrap(),
        ],
    ))
    .await
    .unwrap();
    let submitted: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = submitted["id"].as_str().unwrap().to_owned();
    stack.settle(Duration::from_secs(60)).await.unwrap();

    // Status (any role; the auditor's token by default), readable.
    let status = cli::run(&args(session, &["status", &id])).await.unwrap();
    assert!(status.contains("awaiting_cab 1"), "{status}");
    assert!(
        status.contains("CAB pending (0 of 1 approvals)"),
        "{status}"
    );
    assert!(status.contains("privilege_impact"), "{status}");
    let queue = cli::run(&args(session, &["--as", "cab-carol", "queue"]))
        .await
        .unwrap();
    assert!(
        queue.contains(&id) && queue.starts_with("1 deployment(s)"),
        "{queue}"
    );

    // Bad input: exit 2, naming the option; the API's refusal names the field.
    let e = cli::run(&args(session, &["--as", "cab-carol", "approve", &id]))
        .await
        .unwrap_err();
    assert!(matches!(
        e.downcast_ref::<cli::UsageError>(),
        Some(cli::UsageError::CommandLine(_))
    ));
    let e = e.to_string();
    assert!(
        e.contains("required arguments were not provided") && e.contains("--ring <N>"),
        "{e}"
    );
    let e = cli::run(&args(
        session,
        &[
            "--as",
            "cab-carol",
            "reject",
            &id,
            "--ring",
            "1",
            "--comment",
            "",
        ],
    ))
    .await
    .unwrap_err();
    assert!(e.to_string().contains("field comment"), "{e}");
    // The packager may not decide: the API's 403.
    let e = cli::run(&args(
        session,
        &["--as", "packager-alice", "approve", &id, "--ring", "1"],
    ))
    .await
    .unwrap_err();
    assert!(e.to_string().contains("HTTP 403"), "{e}");

    // Approve with a condition.
    let out = cli::run(&args(
        session,
        &[
            "--as",
            "cab-carol",
            "approve",
            &id,
            "--ring",
            "1",
            "--condition",
            "outside trading hours",
        ],
    ))
    .await
    .unwrap();
    assert!(
        out.contains("approved ring 1") && out.contains("is approved"),
        "{out}"
    );
    stack.settle(Duration::from_secs(60)).await.unwrap();
    let status = cli::run(&args(session, &["status", &id])).await.unwrap();
    assert!(status.contains("in_ring 1"), "{status}");
    assert!(
        status.contains("conditions: outside trading hours"),
        "{status}"
    );

    stack.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Submits the sample as the packager and has cab-carol approve Ring 1; returns the id.
async fn approved(stack: &LocalStack, session: &str, file: &std::path::Path) -> String {
    let out = cli::run(&args(
        session,
        &[
            "--as",
            "packager-alice",
            "--json",
            "submit",
            file.to_str().unwrap(),
        ],
    ))
    .await
    .unwrap();
    let id = serde_json::from_str::<serde_json::Value>(&out).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    stack.settle(Duration::from_secs(60)).await.unwrap();
    cli::run(&args(
        session,
        &[
            "--as",
            "cab-carol",
            "approve",
            &id,
            "--ring",
            "1",
            "--condition",
            "outside trading hours",
        ],
    ))
    .await
    .unwrap();
    stack.settle(Duration::from_secs(60)).await.unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_and_the_audit_trail_from_the_cli() {
    let (stack, dir, file) = stack_with_session().await;
    let session = dir.join("session.json");
    let session = session.to_str().unwrap();
    let id = approved(&stack, session, &file).await;
    // An incident halts it.
    let out = cli::run(&args(
        session,
        &[
            "--as",
            "publisher-pat",
            "--json",
            "incident",
            "report",
            &id,
            "--severity",
            "high",
            "--summary",
            "VPN drops on resume",
        ],
    ))
    .await
    .unwrap();
    let reported: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(reported["state"]["state"], "halted");
    let incident = reported["incident"]["id"].as_str().unwrap();
    let out = cli::run(&args(
        session,
        &[
            "--as",
            "publisher-pat",
            "incident",
            "resolve",
            &id,
            incident,
            "--resolution",
            "fixed in 6.3.2",
        ],
    ))
    .await
    .unwrap();
    assert!(out.contains("resolved"), "{out}");

    // The audit trail as a timeline, and its verification.
    let trail = cli::run(&args(session, &["audit", &id, "--verify"]))
        .await
        .unwrap();
    for expected in [
        "submitted with its evidence pack",
        "risk scored",
        "CAB approve ring 1 with conditions: outside trading hours",
        "windows connector",
        "incident",
        "audit chain verified",
    ] {
        assert!(trail.contains(expected), "{expected} not in\n{trail}");
    }
    let verified: serde_json::Value = serde_json::from_str(
        &cli::run(&args(session, &["--json", "verify", &id]))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(verified["valid"], true);
    // The checkpoint it shows, and verification resumed from it (the gate schedule may have
    // appended events meanwhile: the checkpoint may move on, never back).
    let checkpoint = format!(
        "{}.{}",
        verified["checkpoint"]["seq"],
        verified["checkpoint"]["hash"].as_str().unwrap()
    );
    let shown = cli::run(&args(session, &["verify", &id])).await.unwrap();
    assert!(
        shown.contains("checkpoint ") && shown.contains(&format!("verify {id} --from ")),
        "{shown}"
    );
    let resumed: serde_json::Value = serde_json::from_str(
        &cli::run(&args(
            session,
            &["--json", "verify", &id, "--from", &checkpoint],
        ))
        .await
        .unwrap(),
    )
    .unwrap();
    assert_eq!(resumed["valid"], true, "{resumed}");
    assert_eq!(resumed["from"], verified["checkpoint"]);
    assert!(resumed["checkpoint"]["seq"].as_u64() >= verified["checkpoint"]["seq"].as_u64());
    stack.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exceptions_from_the_cli() {
    let (stack, dir, _) = stack_with_session().await;
    let session = dir.join("session.json");
    let session = session.to_str().unwrap();
    // An exception from the CLI: the critical-CVE sample is blocked until one is approved.
    let mut cve: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../events/deployments/critical-cve.json"),
        )
        .unwrap(),
    )
    .unwrap();
    stack.stage_packages(&mut cve).await.unwrap();
    let cve_file = dir.join("critical-cve.json");
    std::fs::write(&cve_file, cve.to_string()).unwrap();
    let out = cli::run(&args(
        session,
        &[
            "--as",
            "packager-alice",
            "--json",
            "submit",
            cve_file.to_str().unwrap(),
        ],
    ))
    .await
    .unwrap();
    let cve_id = serde_json::from_str::<serde_json::Value>(&out).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    stack.settle(Duration::from_secs(60)).await.unwrap();
    assert!(
        cli::run(&args(session, &["status", &cve_id]))
            .await
            .unwrap()
            .contains("publish_blocked")
    );
    let out = cli::run(&args(
        session,
        &[
            "--as",
            "packager-alice",
            "--json",
            "exception",
            "request",
            &cve_id,
            "--kind",
            "vulnerability_scan",
            "--justification",
            "Only reachable through a plug-in the package does not install",
            "--control",
            "plug-in disabled by policy",
            "--days",
            "30",
        ],
    ))
    .await
    .unwrap();
    let requested: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(requested["status"], "pending");
    let exc = requested["exception"]["id"].as_str().unwrap().to_owned();
    let mut last = String::new();
    for who in ["security-sam", "cab-carol"] {
        last = cli::run(&args(
            session,
            &["--as", who, "exception", "approve", &cve_id, &exc],
        ))
        .await
        .unwrap();
        if last.contains("is approved") {
            break;
        }
    }
    assert!(
        last.contains(&format!("exception {exc} (vulnerability_scan) is approved")),
        "{last}"
    );
    assert!(!last.contains("publish_blocked"), "{last}");

    stack.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
