//! `eucora-local`: runs EUCORA on this machine.
//!
//! Until the local stack exists (the functions on an AWS emulator, the platform simulators), this
//! evaluates the sample deployments in `events/` through the domain and prints each decision with
//! its reasons: validation, content hash, risk score with every factor, blast radius, CAB
//! requirement per ring, publishing blockers, and, where a telemetry sample exists, the gate
//! decision for the ring it describes.

mod report;
mod telemetry;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use eucora_domain::policy::Policy;

fn usage() -> &'static str {
    "usage: eucora-local [EVENTS_DIR] [--policy FILE]\n\n\
     Evaluates every deployment in EVENTS_DIR/deployments (and the invalid samples in\n\
     EVENTS_DIR/invalid) through the EUCORA domain and prints each decision with its reasons.\n\
     EVENTS_DIR defaults to ./events; the policy defaults to the one in the repository."
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("eucora-local: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let mut events = PathBuf::from("events");
    let mut policy_file: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-h" | "--help" => {
                println!("{}", usage());
                return Ok(());
            }
            "--policy" => {
                policy_file = Some(args.next().context("--policy needs a file")?.into());
            }
            other if other.starts_with('-') => {
                anyhow::bail!("unknown option {other}\n\n{}", usage())
            }
            dir => events = dir.into(),
        }
    }
    let policy = match &policy_file {
        Some(p) => Policy::from_json(
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| format!("loading policy {}", p.display()))?,
        None => Policy::bundled(),
    };
    println!(
        "EUCORA local evaluation: policy {} (risk model {}), samples from {}\n",
        policy.version,
        policy.risk.model_version,
        events.display()
    );
    for file in json_files(&events.join("deployments"))? {
        let telemetry = events
            .join("telemetry")
            .join(file.file_name().unwrap_or_default());
        report::deployment(
            &file,
            telemetry.exists().then_some(telemetry.as_path()),
            &policy,
        )?;
    }
    for file in json_files(&events.join("invalid"))? {
        report::invalid(&file)?;
    }
    Ok(())
}

fn json_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    Ok(files)
}
