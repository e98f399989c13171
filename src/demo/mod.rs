//! `mua-operator demo`: the MUA walkthrough on this machine. It starts the local control plane (the
//! tests' own build, cached), the ARM simulator with two tenants, and the operator's controllers, then
//! walks the story with two people as real Kubernetes users: a security admin who guards and approves,
//! and a backup admin who links vaults and asks for elevation. Everything it starts is stopped and
//! removed when it ends, also on Ctrl-C; `--keep` leaves it running until Ctrl-C.

mod narrator;
mod script;
mod stage;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::OnceLock;

use anyhow::{Context as _, bail};

use crate::control_plane::{self, LocalControlPlane};
use narrator::Narrator;
use stage::{ALICE, BOB, NAMESPACE, Stage};

/// Exit code after Ctrl-C (128 + SIGINT), as shells report it.
const EXIT_INTERRUPTED: u8 = 130;

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Leave the control plane, the simulator and the operator running after the walkthrough (until
    /// Ctrl-C), and print how to point kubectl at them.
    #[arg(long)]
    pub keep: bool,
}

/// Runs the walkthrough; the exit code is 0 when every check passed.
pub fn main(args: DemoArgs) -> ExitCode {
    match run(args) {
        Ok(Ending::Done) => ExitCode::SUCCESS,
        Ok(Ending::Interrupted) => {
            eprintln!("\ninterrupted: stopped everything the demo started");
            ExitCode::from(EXIT_INTERRUPTED)
        }
        Err(err) => {
            eprintln!("\nerror: {err:#}");
            ExitCode::FAILURE
        }
    }
}

enum Ending {
    Done,
    Interrupted,
}

fn run(args: DemoArgs) -> anyhow::Result<Ending> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    println!("mua-operator demo: multi-user authorization for Azure Backup, on this machine\n");
    let plugin_dir = kubectl_mua_dir()?;
    println!("   starting the local control plane (the first run builds it from Go modules: ~10 minutes)");
    let bin_dir = control_plane::binaries()?;
    // Started on this thread, which lives until the end: the processes die with it.
    let cp = LocalControlPlane::start(&bin_dir, &stage::people())?;
    println!("   work directory: {}", cp.work_dir.display());
    let log = cp.work_dir.join("operator.log");
    init_logging(&log)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let ending = runtime.block_on(async {
        let interrupted = crate::run::shutdown_signal();
        tokio::select! {
            result = walkthrough(&cp, plugin_dir, &log, args.keep) => result.map(|()| Ending::Done),
            () = interrupted => Ok(Ending::Interrupted),
        }
    });
    // The controllers and the simulator stop with the runtime; the control plane's processes and its
    // work directory go when `cp` is dropped.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    drop(cp);
    ending
}

async fn walkthrough(cp: &LocalControlPlane, plugin_dir: PathBuf, log: &Path, keep: bool) -> anyhow::Result<()> {
    let stage = Stage::start(cp, plugin_dir).await?;
    println!("   kube-apiserver: {}", cp.server);
    println!(
        "   ARM simulator:  {} (tenants contoso and fabrikam-security)",
        stage.sim.arm_url
    );
    println!(
        "   operator:       both sides in this process, logging to {}",
        log.display()
    );
    println!(
        "   people:         {} ({}), {} ({}), each with their own kubeconfig",
        ALICE.user.name, ALICE.title, BOB.user.name, BOB.title
    );
    let mut narrator = Narrator::default();
    script::walk(&stage, &mut narrator).await?;
    narrator.summary()?;
    if keep {
        print_how_to_connect(&stage);
        std::future::pending::<()>().await;
    }
    Ok(())
}

fn print_how_to_connect(stage: &Stage<'_>) {
    let cp = stage.cp;
    println!(
        "\n━━ Still running (--keep). Ctrl-C stops everything and removes {}",
        cp.work_dir.display()
    );
    println!(
        "   export PATH={}:{}:$PATH",
        stage.plugin_dir.display(),
        cp.bin_dir.display()
    );
    for persona in [ALICE, BOB] {
        println!(
            "   export KUBECONFIG={}    # {}",
            cp.kubeconfig_path(persona.user.name).display(),
            persona.title
        );
    }
    println!("   kubectl -n {NAMESPACE} get mua");
    println!(
        "   ARM simulator: {} (CA: {})",
        stage.sim.arm_url,
        stage.sim.ca_file.display()
    );
}

/// The directory holding `kubectl-mua`, put on kubectl's PATH.
fn kubectl_mua_dir() -> anyhow::Result<PathBuf> {
    let path = kubectl_mua_path()?;
    Ok(path.parent().context("kubectl-mua has no directory")?.to_path_buf())
}

/// The `kubectl-mua` binary (the kubectl plugin, package `kubectl-mua`): beside this binary when both are
/// installed together; under cargo (`cargo run`, `cargo test`, `cargo bench`: `$CARGO` is set) built first,
/// once per process, into the target directory this binary was built in, so it is never stale.
pub fn kubectl_mua_path() -> anyhow::Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| locate_kubectl_mua().map_err(|err| format!("{err:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn locate_kubectl_mua() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating this binary")?;
    let mut dir = exe.parent().context("this binary has no directory")?;
    // Tests and benches run from `target/<profile>/deps`; binaries are uplifted to `target/<profile>`.
    if dir.file_name().is_some_and(|name| name == "deps") {
        dir = dir.parent().context("`deps` has no parent directory")?;
    }
    let path = dir.join("kubectl-mua");
    let Some(cargo) = std::env::var_os("CARGO") else {
        if path.is_file() {
            return Ok(path);
        }
        bail!(
            "kubectl-mua is not next to {}: build it (`cargo build -p kubectl-mua`) or install both binaries together",
            exe.display()
        );
    };
    // Cargo's profile directory: `debug` is the `dev` profile's.
    let profile = match dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let missing = !path.is_file();
    if missing {
        eprintln!("   building kubectl-mua (the kubectl plugin)");
    }
    let mut build = std::process::Command::new(cargo);
    build
        .args([
            "build",
            "-p",
            "kubectl-mua",
            "--bin",
            "kubectl-mua",
            "--profile",
            profile,
        ])
        .arg("--manifest-path")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"));
    if !missing {
        build.arg("--quiet");
    }
    let status = build.status().context("running cargo build")?;
    if !status.success() || !path.is_file() {
        bail!("building kubectl-mua failed ({status})");
    }
    Ok(path)
}

/// The operator's logs go to a file so the walkthrough stays readable.
fn init_logging(path: &Path) -> anyhow::Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init()
        .map_err(|err| anyhow::anyhow!("setting up logging: {err}"))
}
