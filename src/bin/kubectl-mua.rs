//! `kubectl mua`: the verbs that are not CRUD (request, approve, deny, revoke, status).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Multi-user authorization for Azure Backup: request, approve and follow elevations.
#[derive(Parser, Debug)]
#[command(name = "kubectl-mua", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Ask for elevation for a critical operation.
    Request,
    /// Approve a pending CriticalOperationRequest.
    Approve,
    /// Deny a pending CriticalOperationRequest.
    Deny,
    /// Revoke an active elevation before its time.
    Revoke,
    /// Show the state of requests and protected vaults.
    Status,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    eprintln!(
        "error: `kubectl mua {:?}` is not available in this build yet",
        cli.command
    );
    ExitCode::from(2)
}
