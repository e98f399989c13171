//! `kubectl mua`: request, approve, deny, revoke, list, describe and wait for CriticalOperationRequests.
//!
//! Installed on PATH as `kubectl-mua`, kubectl runs it as `kubectl mua`. Exit codes are documented in
//! `docs/src/reference/kubectl-mua.md` and in `error::Exit`.

mod args;
mod client;
mod commands;
mod error;
mod output;
mod state;

use std::process::ExitCode;

use clap::Parser;

use crate::error::Exit;

fn main() -> ExitCode {
    // Behave like other command-line tools when the reader of a pipe goes away (`| head`): end quietly
    // instead of panicking on a failed write.
    // SAFETY: restores the default disposition of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Usage errors exit with clap's code 2.
    let cli = args::Cli::parse();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start: {err}");
            return Exit::Unexpected.into();
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(exit) => exit.into(),
        Err(failure) => {
            eprintln!("error: {failure}");
            failure.exit.into()
        }
    }
}
