//! `eucora-local`: runs EUCORA on this machine (`infra/dev run` runs it).
//!
//! - `eucora-local [up]`: the whole control plane locally, until Ctrl-C: moto with the resources
//!   of `template.yaml`, both platform simulators with their device fleets, the SQS triggers and
//!   the gate schedule running the functions' handlers, and the HTTP API on localhost behind a
//!   stand-in JWT authorizer. Prints where everything is, a token per role, and how to call it.
//! - `eucora-local demo`: the same stack, then the seed's four scenarios on an accelerated clock,
//!   with progress and a timeline per deployment at the end.
//! - `eucora-local explain`: the samples' decisions through the domain alone (no stack).
//!
//! The command line is declared with clap's derive: `--help` on it and on every command lists the
//! options with their defaults; a usage error names the option and exits 2.

mod report;
mod telemetry;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use eucora_domain::cab::Role;
use eucora_domain::policy::Policy;
use eucora_local::stack::local::{LocalStack, Options};

/// Runs EUCORA on this machine: the local stack, its demo, or the samples through the domain.
#[derive(Debug, Parser)]
#[command(
    name = "eucora-local",
    version,
    args_conflicts_with_subcommands = true,
    after_help = "Without a command, it runs `up` (what `infra/dev run` does) with the options above."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// `up`'s options, for `eucora-local` without a command.
    #[command(flatten)]
    up: UpArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the whole control plane locally until Ctrl-C (the default): moto, both simulators with
    /// their fleets, the queues, the gate schedule and the HTTP API
    Up(UpArgs),
    /// Starts the stack and runs the seed's four scenarios on an accelerated clock, with a
    /// timeline per deployment at the end
    Demo(DemoArgs),
    /// Evaluates the sample deployments through the domain alone (no stack)
    Explain(ExplainArgs),
}

#[derive(Debug, clap::Args)]
struct UpArgs {
    /// The API's port on 127.0.0.1 (0: any free port; a taken port falls back to a free one)
    #[arg(long, value_name = "N", default_value_t = 8080)]
    port: u16,
    /// Runs the stack's clock X times faster than real time (3600 makes a 48-hour soak pass in
    /// under a minute)
    #[arg(long, value_name = "X", default_value_t = 1.0, value_parser = speed)]
    speed: f64,
    /// Windows PCs and Macs per ring in the simulators
    #[arg(long, value_name = "N", default_value_t = Options::default().devices,
          value_parser = clap::value_parser!(u32).range(1..))]
    devices: u32,
}

#[derive(Debug, clap::Args)]
struct DemoArgs {
    /// Windows PCs and Macs per ring in the simulators
    #[arg(long, value_name = "N", default_value_t = Options::default().devices,
          value_parser = clap::value_parser!(u32).range(1..))]
    devices: u32,
    /// Prints the deployments and their audit trails as JSON at the end
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct ExplainArgs {
    /// The samples: deployments/, telemetry/ and invalid/ [default: events/ in the repository]
    #[arg(value_name = "EVENTS_DIR")]
    events: Option<PathBuf>,
    /// The policy to evaluate with [default: the bundled policy]
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
}

/// `--speed`: a positive, finite factor.
fn speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        Ok(_) => Err("must be a positive number".to_owned()),
        Err(e) => Err(e.to_string()),
    }
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
    // Usage errors exit 2 and `--help` exits 0, both printed by clap.
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Explain(args)) => explain(&args),
        Some(Command::Demo(args)) => runtime().and_then(|rt| rt.block_on(demo(&args))),
        Some(Command::Up(args)) => runtime().and_then(|rt| rt.block_on(up(&args))),
        None => runtime().and_then(|rt| rt.block_on(up(&cli.up))),
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

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn up(args: &UpArgs) -> Result<()> {
    let opts = Options {
        port: args.port,
        speed: args.speed,
        devices: args.devices,
        ..Options::default()
    };
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

async fn demo(args: &DemoArgs) -> Result<()> {
    let opts = Options {
        speed: 60.0,
        schedule: false,
        port: 0,
        devices: args.devices,
        ..Options::default()
    };
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
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&eucora_local::demo::json(&outcomes))?
        );
    } else {
        print!("{}", eucora_local::demo::report(&outcomes));
    }
    Ok(())
}

fn explain(args: &ExplainArgs) -> Result<()> {
    let events = args.events.clone().unwrap_or_else(|| repo().join("events"));
    let policy = match &args.policy {
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn without_a_command_it_is_up_with_up_s_defaults() {
        let cli = Cli::try_parse_from(["eucora-local"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!((cli.up.port, cli.up.speed, cli.up.devices), (8080, 1.0, 25));
        let cli = Cli::try_parse_from(["eucora-local", "--speed", "3600", "--port", "0"]).unwrap();
        assert_eq!((cli.up.port, cli.up.speed), (0, 3600.0));
        let Some(Command::Up(up)) = Cli::try_parse_from(["eucora-local", "up", "--devices", "3"])
            .unwrap()
            .command
        else {
            panic!("not up")
        };
        assert_eq!((up.port, up.devices), (8080, 3));
    }
}
