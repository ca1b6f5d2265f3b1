//! `eucora-local`: runs EUCORA on this machine (`infra/dev run` runs it).
//!
//! - `eucora-local [up]`: the whole control plane locally, until Ctrl-C: moto with the resources
//!   of `template.yaml`, both platform simulators with their device fleets, the SQS triggers and
//!   the gate schedule running the functions' handlers, and the HTTP API on localhost behind a
//!   stand-in JWT authorizer. Prints where everything is, a token per role, and how to call it.
//! - `eucora-local demo`: the same stack, then the seed's four scenarios on an accelerated clock,
//!   with progress and a timeline per deployment at the end.
//! - `eucora-local explain`: the samples' decisions through the domain alone (no stack).

mod report;
mod telemetry;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use eucora_domain::cab::Role;
use eucora_domain::policy::Policy;
use eucora_local::stack::local::{LocalStack, Options};

fn usage() -> &'static str {
    "usage: eucora-local [up] [--port N] [--speed X] [--devices N]\n\
     \x20      eucora-local demo [--devices N] [--json]\n\
     \x20      eucora-local explain [EVENTS_DIR] [--policy FILE]\n\n\
     up       runs the whole control plane locally until Ctrl-C (the default)\n\
     \x20        --port N     the API's port on 127.0.0.1 (default 8080; 0 = any free port)\n\
     \x20        --speed X    the stack's clock runs X times faster than real time (default 1;\n\
     \x20                     3600 makes a 48-hour soak pass in under a minute)\n\
     \x20        --devices N  Windows PCs and Macs per ring in the simulators (default 25)\n\
     demo     starts the stack and runs the seed's four scenarios on an accelerated clock\n\
     \x20        --json       prints the deployments and their audit trails as JSON at the end\n\
     explain  evaluates the sample deployments in events/ through the domain alone"
}

/// The people the printed tokens are for.
pub const PEOPLE: &[(&str, Role)] = &[
    ("packager-alice", Role::Packaging),
    ("publisher-pat", Role::Publisher),
    ("cab-carol", Role::Cab),
    ("cab-dave", Role::Cab),
    ("cab-frank", Role::Cab),
    ("security-sam", Role::SecurityReviewer),
    ("auditor-erin", Role::Auditor),
];

fn repo() -> PathBuf {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    repo.canonicalize().unwrap_or(repo)
}

fn main() -> ExitCode {
    // Output piped into `head` and closed early: stop quietly, as other command-line tools do.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info
            .payload_as_str()
            .is_some_and(|m| m.contains("Broken pipe"))
        {
            std::process::exit(141);
        }
        default_hook(info);
    }));
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("-h" | "--help") => {
            println!("{}", usage());
            Ok(())
        }
        Some("explain") => explain(&args[1..]),
        Some("demo") => runtime().and_then(|rt| rt.block_on(demo(&args[1..]))),
        Some("up") => runtime().and_then(|rt| rt.block_on(up(&args[1..]))),
        _ => runtime().and_then(|rt| rt.block_on(up(&args))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("eucora-local: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn value<T: std::str::FromStr>(args: &mut std::slice::Iter<'_, String>, flag: &str) -> Result<T> {
    args.next()
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("{flag} needs a value\n\n{}", usage()))
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn up(args: &[String]) -> Result<()> {
    let mut opts = Options {
        port: 8080,
        ..Options::default()
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--port" => opts.port = value(&mut it, "--port")?,
            "--speed" => opts.speed = value(&mut it, "--speed")?,
            "--devices" => opts.devices = value(&mut it, "--devices")?,
            other => bail!("unknown option {other}\n\n{}", usage()),
        }
    }
    init_logging("warn,eucora=info,connector=info");
    let repo = repo();
    eprintln!("starting the local stack (moto, simulators, queues, schedule, API)…");
    let stack = match LocalStack::start(&repo, opts.clone()).await {
        Err(e) if opts.port != 0 && format!("{e:#}").contains("binding") => {
            eprintln!("port {} is taken: using a free port", opts.port);
            LocalStack::start(&repo, Options { port: 0, ..opts }).await?
        }
        other => other?,
    };
    let samples = stage_samples(&stack).await?;
    let tokens: Vec<(String, Role, String)> = PEOPLE
        .iter()
        .map(|(who, role)| ((*who).to_owned(), *role, stack.token(who, &[*role])))
        .collect();
    let session = eucora_local::cli::default_session_file();
    std::fs::create_dir_all(session.parent().unwrap_or(&repo))?;
    std::fs::write(
        &session,
        serde_json::to_string_pretty(&serde_json::json!({
            "api_url": stack.api_url,
            "tokens": tokens.iter().map(|(w, _, t)| (w.clone(), serde_json::Value::String(t.clone()))).collect::<serde_json::Map<_, _>>(),
        }))?,
    )?;
    print_banner(&stack, &tokens, &samples, &session);
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    eprintln!("\nstopping…");
    let _ = std::fs::remove_file(&session);
    stack.shutdown().await;
    eprintln!("stopped");
    Ok(())
}

/// Every sample deployment with its packages built into the emulator's artifact bucket, ready to
/// submit (the samples' own digests are made up).
async fn stage_samples(stack: &LocalStack) -> Result<Vec<PathBuf>> {
    let dir = stack.repo.join("target/eucora-local/samples");
    std::fs::create_dir_all(&dir)?;
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(stack.repo.join("events/deployments"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    for f in files {
        let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&f)?)?;
        stack.stage_packages(&mut v).await?;
        let target = dir.join(f.file_name().unwrap_or_default());
        std::fs::write(&target, serde_json::to_string_pretty(&v)?)?;
        out.push(target);
    }
    Ok(out)
}

fn print_banner(
    stack: &LocalStack,
    tokens: &[(String, Role, String)],
    samples: &[PathBuf],
    session: &Path,
) {
    let rel = |p: &Path| {
        p.strip_prefix(&stack.repo)
            .unwrap_or(p)
            .display()
            .to_string()
    };
    println!("\nEUCORA is running locally.\n");
    println!(
        "  API               {}  (OpenAPI: {}/v1/openapi.json)",
        stack.api_url, stack.api_url
    );
    println!(
        "  AWS (moto)        {}  table {}, queues {}",
        stack.aws_endpoint(),
        stack.resources.table,
        stack
            .resources
            .queues
            .values()
            .map(|q| q.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("  Intune simulator  {}", stack.sims.intune.base_url());
    println!("  Jamf simulator    {}", stack.sims.jamf.base_url());
    println!(
        "  clock             {}× real time; gate schedule every {} s of stack time",
        stack.clock.speed(),
        stack.schedule_rate.as_secs()
    );
    println!(
        "\nTokens (valid 30 days on the stack's clock; also in {}):",
        rel(session)
    );
    for (who, role, token) in tokens {
        let var = who.split('-').next().unwrap_or(who).to_uppercase();
        println!(
            "  export {var}_{}={token}   # {who}, {}",
            who.split('-').nth(1).unwrap_or("").to_uppercase(),
            role.key()
        );
    }
    let sample = samples
        .iter()
        .find(|p| p.ends_with("high-risk.json"))
        .or(samples.first())
        .map(|p| rel(p))
        .unwrap_or_default();
    println!(
        "\nSamples with their packages in the artifact bucket: {}",
        rel(samples
            .first()
            .and_then(|p| p.parent())
            .unwrap_or(&stack.repo))
    );
    println!("\nTry it (curl):");
    println!("  export API={}", stack.api_url);
    println!(
        "  curl -s -X POST $API/v1/deployments -H \"Authorization: Bearer $PACKAGER_ALICE\" -H 'Idempotency-Key: try-1' --data @{sample}"
    );
    println!("  curl -s $API/v1/deployments/<id> -H \"Authorization: Bearer $AUDITOR_ERIN\"");
    println!("  curl -s $API/v1/cab/queue -H \"Authorization: Bearer $CAB_CAROL\"");
    println!("\nOr the operator CLI (reads {}):", rel(session));
    println!("  cargo run -q --bin eucora -- --as packager-alice submit {sample}");
    println!("  cargo run -q --bin eucora -- status <id>");
    println!(
        "  cargo run -q --bin eucora -- --as cab-carol approve <id> --ring 1 --condition 'outside trading hours'"
    );
    println!("  cargo run -q --bin eucora -- audit <id> --verify");
    println!("\nCtrl-C stops everything.");
}

async fn demo(args: &[String]) -> Result<()> {
    let mut opts = Options {
        speed: 60.0,
        schedule: false,
        port: 0,
        ..Options::default()
    };
    let mut as_json = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--devices" => opts.devices = value(&mut it, "--devices")?,
            "--json" => as_json = true,
            other => bail!("unknown option {other}\n\n{}", usage()),
        }
    }
    init_logging("error");
    let repo = repo();
    eprintln!("starting the local stack (moto, simulators, queues, API)…");
    let stack = LocalStack::start(&repo, opts).await?;
    println!(
        "EUCORA demo: the seed's four scenarios through the API at {}; the clock moves {} h between gate runs.\n",
        stack.api_url,
        eucora_local::demo::STEP_HOURS
    );
    let mut stdout = std::io::stdout();
    let result = eucora_local::demo::run(&stack, &mut stdout).await;
    stack.shutdown().await;
    let outcomes = result?;
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&eucora_local::demo::json(&outcomes))?
        );
    } else {
        print!("{}", eucora_local::demo::report(&outcomes));
    }
    Ok(())
}

fn explain(args: &[String]) -> Result<()> {
    let mut events = repo().join("events");
    let mut policy_file: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--policy" => {
                policy_file = Some(it.next().context("--policy needs a file")?.into());
            }
            other if other.starts_with('-') => bail!("unknown option {other}\n\n{}", usage()),
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
