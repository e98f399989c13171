use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for a subcommand that this build does not provide yet.
const EXIT_NOT_AVAILABLE: u8 = 2;

/// Kubernetes operator for Azure Backup multi-user authorization.
#[derive(Parser, Debug)]
#[command(name = "mua-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the controllers against the cluster in the current kubeconfig.
    Run,
    /// Write the CustomResourceDefinitions as YAML, one file per CRD.
    Crdgen {
        /// Directory to write `*.yaml` into.
        #[arg(long, default_value = "crds")]
        out_dir: PathBuf,
        /// Print all CRDs to standard output instead of writing files.
        #[arg(long, conflicts_with = "out_dir")]
        stdout: bool,
    },
    /// Serve the local ARM simulator.
    Sim,
    /// Run the MUA walkthrough against the local simulator and a local control plane.
    Demo,
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
        Command::Run => not_available("run", "the controllers"),
        Command::Sim => not_available("sim", "the ARM simulator"),
        Command::Demo => not_available("demo", "the MUA walkthrough"),
    }
}

fn crdgen(out_dir: &std::path::Path, stdout: bool) -> anyhow::Result<()> {
    use anyhow::Context;
    let crds = mua_operator::crd::all();
    if stdout {
        for (_, crd) in &crds {
            print!("{}", mua_operator::crd::to_yaml(crd));
        }
        return Ok(());
    }
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    for (file, crd) in &crds {
        let path = out_dir.join(file);
        std::fs::write(&path, mua_operator::crd::to_yaml(crd))
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn not_available(command: &str, what: &str) -> ExitCode {
    eprintln!("error: `mua-operator {command}` is not available in this build yet: {what} is still being built");
    ExitCode::from(EXIT_NOT_AVAILABLE)
}
