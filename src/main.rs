use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Kubernetes operator for Azure Backup multi-user authorization.
#[derive(Parser, Debug)]
#[command(name = "mua-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the controllers against the cluster (in-cluster config or KUBECONFIG) until SIGTERM/SIGINT.
    Run(mua_operator::run::RunArgs),
    /// Write the CustomResourceDefinitions as YAML, one file per CRD.
    Crdgen {
        /// Directory to write `*.yaml` into; repeat it for several. By default the repository's `crds/`,
        /// the Helm chart's copy (Helm installs it from the chart's own `crds/`) and the CRD chart's (its
        /// templates render them, so `helm upgrade` applies them).
        #[arg(long, default_values = ["crds", "charts/mua-operator/crds", "charts/mua-operator-crds/files"])]
        out_dir: Vec<PathBuf>,
        /// Print all CRDs to standard output instead of writing files.
        #[arg(long, conflicts_with = "out_dir")]
        stdout: bool,
    },
    /// Serve the local ARM simulator (Azure Resource Manager and Entra ID for MUA) until SIGTERM/SIGINT.
    Sim(SimArgs),
    /// Run the MUA walkthrough against the local simulator and a local control plane.
    Demo(DemoArgs),
    /// A local cluster to try the operator on: the control plane with the CRDs, RBAC and admission
    /// policies, the simulator with your seed, people with a kubeconfig each; until Ctrl-C.
    Sandbox(SandboxArgs),
}

#[cfg(feature = "demo")]
use mua_operator::sandbox::SandboxArgs;

/// `sandbox`'s flags are the demo build's; without it, any arguments are taken and refused.
#[cfg(not(feature = "demo"))]
#[derive(clap::Args, Debug)]
struct SandboxArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    _args: Vec<String>,
}

#[cfg(feature = "demo")]
use mua_operator::demo::DemoArgs;

/// `demo`'s flags, so a build without the demo still parses them (and says the demo is not in it).
#[cfg(not(feature = "demo"))]
#[derive(clap::Args, Debug)]
struct DemoArgs {
    /// Leave the control plane, the simulator and the operator running after the walkthrough (until
    /// Ctrl-C), and print how to point kubectl at them.
    #[arg(long)]
    keep: bool,
}

#[derive(clap::Args, Debug)]
#[cfg_attr(
    not(feature = "sim"),
    allow(
        dead_code,
        reason = "parsed so that `sim` is known, but a build without the simulator reads no flag"
    )
)]
struct SimArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: std::net::SocketAddr,
    /// Seed file (YAML) with tenants, subscriptions, principals, vaults, guards, roles and PIM settings.
    #[arg(long)]
    seed: Option<PathBuf>,
    /// State file: loaded on start when it exists (instead of the seed) and saved after every change.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Directory for the simulator's CA and signing keys (created on first start).
    #[arg(long, env = "MUA_SIM_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Fault rules (YAML list) to apply from the start; change them later with PUT /_sim/faults.
    #[arg(long)]
    faults: Option<PathBuf>,
    /// Turn off ARM throttling (token buckets).
    #[arg(long)]
    no_throttling: bool,
    /// Stand in for another cloud's ARM: accept tokens for this audience only (default: the public
    /// cloud's), e.g. `https://management.usgovcloudapi.net` as Azure Government's ARM does.
    #[arg(long)]
    arm_audience: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crdgen { out_dir, stdout } => match crdgen(&out_dir, stdout) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("error: {err:#}");
                ExitCode::FAILURE
            }
        },
        Command::Run(args) => {
            mua_operator::run::memory::limit_arenas();
            init_logging(true);
            let result = tokio::runtime::Runtime::new()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(mua_operator::run::run(args)));
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!("{err:#}");
                    eprintln!("error: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Sim(args) => sim(args),
        Command::Demo(args) => demo(args),
        Command::Sandbox(args) => sandbox(args),
    }
}

#[cfg(feature = "demo")]
fn sandbox(args: SandboxArgs) -> ExitCode {
    mua_operator::sandbox::main(args)
}

#[cfg(not(feature = "demo"))]
fn sandbox(_args: SandboxArgs) -> ExitCode {
    not_in_build("the sandbox", "demo", "sandbox")
}

/// Exit code for a subcommand this build does not contain (as for a usage error).
#[cfg(not(all(feature = "sim", feature = "demo")))]
const EXIT_NOT_IN_BUILD: u8 = 2;

/// Says that `what` is not in this build and how to get it, and exits 2.
#[cfg(not(all(feature = "sim", feature = "demo")))]
fn not_in_build(what: &str, feature: &str, command: &str) -> ExitCode {
    eprintln!(
        "error: {what} is not in this build (built without the `{feature}` feature); install a build with \
         default features or run `cargo run -- {command}`"
    );
    ExitCode::from(EXIT_NOT_IN_BUILD)
}

#[cfg(feature = "demo")]
fn demo(args: DemoArgs) -> ExitCode {
    mua_operator::demo::main(args)
}

#[cfg(not(feature = "demo"))]
fn demo(_args: DemoArgs) -> ExitCode {
    not_in_build("the demo", "demo", "demo")
}

fn crdgen(out_dirs: &[PathBuf], stdout: bool) -> anyhow::Result<()> {
    use anyhow::Context;
    let crds = mua_operator::crd::all();
    if stdout {
        for (_, crd) in &crds {
            print!("{}", mua_operator::crd::to_yaml(crd));
        }
        return Ok(());
    }
    for out_dir in out_dirs {
        std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
        for (file, crd) in &crds {
            let path = out_dir.join(file);
            std::fs::write(&path, mua_operator::crd::to_yaml(crd))
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}

#[cfg(feature = "sim")]
fn sim(args: SimArgs) -> ExitCode {
    match run_sim(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(not(feature = "sim"))]
fn sim(_args: SimArgs) -> ExitCode {
    not_in_build("the simulator", "sim", "sim")
}

#[cfg(feature = "sim")]
fn run_sim(args: SimArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    init_logging(false);
    let data_dir = match args.data_dir {
        Some(dir) => dir,
        None => default_data_dir()?,
    };
    let mut options = mua_operator::sim::SimOptions::new(data_dir);
    options.listen = args.listen;
    options.seed = args.seed;
    options.state_file = args.state;
    options.throttling = !args.no_throttling;
    options.arm_audience = args.arm_audience;
    if let Some(path) = args.faults {
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        options.faults =
            yaml_serde::from_str(&text).with_context(|| format!("parsing the fault rules in {}", path.display()))?;
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let sim = mua_operator::sim::Simulator::start(options).await?;
        println!("{}", sim.banner());
        mua_operator::run::shutdown_signal().await;
        drop(sim);
        Ok(())
    })
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`); JSON for the operator, whose logs are
/// collected, text for the simulator, which people read.
fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[cfg(feature = "sim")]
/// `$XDG_DATA_HOME/mua-operator/sim`, else `~/.local/share/mua-operator/sim`.
fn default_data_dir() -> anyhow::Result<PathBuf> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share")))
        .ok_or_else(|| anyhow::anyhow!("neither XDG_DATA_HOME nor HOME is set: pass --data-dir"))?;
    Ok(base.join("mua-operator/sim"))
}
