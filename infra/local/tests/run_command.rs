//! `eucora-local up`, as `infra/dev run` starts it: it prints where the API is and a token per
//! role, the API answers with those tokens, moto's resources exist, and Ctrl-C (SIGINT) stops
//! everything cleanly: the process exits 0 and moto is gone. Its command line: `--help` at the top
//! and on each command lists the options, and a bad one exits 2 naming the option.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn eucora_local(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_eucora-local"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn help_lists_up_s_options_at_the_top_and_each_command_s_own() {
    for (args, wanted) in [
        (
            &["--help"][..],
            &[
                "--port <N>",
                "[default: 8080]",
                "--speed <X>",
                "[default: 1]",
                "--devices <N>",
                "[default: 25]",
                "\n  up ",
                "\n  demo ",
                "\n  explain ",
            ][..],
        ),
        (
            &["up", "--help"],
            &[
                "Usage: eucora-local up",
                "--port <N>",
                "--speed <X>",
                "--devices <N>",
                "Ctrl-C",
            ],
        ),
        (
            &["help", "up"],
            &["--port <N>", "--speed <X>", "--devices <N>"],
        ),
        (&["demo", "--help"], &["--devices <N>", "--json"]),
        (&["explain", "--help"], &["[EVENTS_DIR]", "--policy <FILE>"]),
    ] {
        let out = eucora_local(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let help = String::from_utf8_lossy(&out.stdout);
        for w in wanted {
            assert!(help.contains(w), "{args:?}: {w} not in\n{help}");
        }
    }
}

#[test]
fn an_unknown_option_or_a_bad_value_exits_2_naming_it() {
    for (args, named) in [
        (&["up", "--bogus"][..], "--bogus"),
        (&["--bogus"], "--bogus"),
        (&["demo", "--port", "0"], "--port"),
        (&["up", "--speed", "fast"], "--speed <X>"),
        (&["up", "--speed", "0"], "--speed <X>"),
        (&["--devices", "many"], "--devices <N>"),
        (&["up", "--port"], "--port <N>"),
        (&["explain", "--policy"], "--policy <FILE>"),
        (&["--port", "0", "demo"], "demo"),
    ] {
        let out = eucora_local(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(named), "{args:?}: {named} not in\n{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_prints_how_to_call_it_and_stops_cleanly_on_ctrl_c() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_eucora-local"))
        .args(["up", "--port", "0", "--devices", "3"])
        .env(
            "EUCORA_SESSION",
            std::env::temp_dir().join(format!("eucora-session-{}.json", std::process::id())),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut banner = Vec::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        let done = line.starts_with("Ctrl-C stops everything");
        banner.push(line);
        if done || Instant::now() > deadline {
            break;
        }
    }
    let text = banner.join("\n");
    let api = banner
        .iter()
        .find_map(|l| l.trim().strip_prefix("API"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no API line in\n{text}"))
        .to_owned();
    let moto = banner
        .iter()
        .find_map(|l| l.trim().strip_prefix("AWS (moto)"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no moto line in\n{text}"))
        .to_owned();
    let token = |var: &str| {
        banner
            .iter()
            .find_map(|l| l.trim().strip_prefix(&format!("export {var}=")))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("no {var} in\n{text}"))
            .to_owned()
    };
    assert!(text.contains("curl -s -X POST"), "{text}");

    let http = reqwest::Client::new();
    let r = http
        .get(format!("{api}/v1/cab/queue"))
        .bearer_auth(token("CAB_CAROL"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(format!("{api}/v1/cab/queue"))
        .bearer_auth(token("PACKAGER_ALICE"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "the packager is not on the board");
    let r = http
        .get(format!("{api}/v1/cab/queue"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A sample with its packages staged, submitted with the printed token.
    let sample = text
        .split("--data @")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .to_owned();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let body = std::fs::read_to_string(repo.join(&sample)).unwrap();
    let r = http
        .post(format!("{api}/v1/deployments"))
        .bearer_auth(token("PACKAGER_ALICE"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "still running after Ctrl-C");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{status}: {err}");
    assert!(err.contains("stopped"), "{err}");
    // moto went with it.
    assert!(
        http.get(&moto).send().await.is_err(),
        "moto still answers at {moto}"
    );
}
