//! One module per verb; each returns the exit code of its outcome or a `Failure`.

mod decide;
mod describe;
mod list;
mod request;
mod revoke;
mod wait;

use kube::api::{Patch, PatchParams};
use mua_api::crd::CriticalOperationRequest;
use mua_api::crd::critical_operation_request::Decision;
use serde_json::{Value, json};

use crate::args::{Cli, Command};
use crate::client::{Identity, Session};
use crate::error::{Exit, Failure, Target, from_kube};

pub const KIND: &str = "criticaloperationrequest";

pub async fn run(cli: Cli) -> Result<Exit, Failure> {
    let session = Session::connect(&cli.global).await?;
    let format = cli.global.output;
    match cli.command {
        Command::Request(args) => request::run(&session, args, format).await,
        Command::Approve(args) => decide::run(&session, args, Decision::Approve, format).await,
        Command::Deny(args) => decide::run(&session, args, Decision::Deny, format).await,
        Command::Revoke(args) => revoke::run(&session, args, format).await,
        Command::List(args) => list::run(&session, args, format).await,
        Command::Describe(args) => describe::run(&session, &args.name, format).await,
        Command::Wait(args) => wait::run(&session, args, format).await,
    }
}

/// One request, with a not-found error that names it and its namespace.
async fn get(session: &Session, name: &str) -> Result<CriticalOperationRequest, Failure> {
    session
        .requests()
        .get(name)
        .await
        .map_err(|err| from_kube(err, Target::object(KIND, name, &session.namespace)))
}

/// Writes only `status` fields that belong to `me` (their approval entry, or the revocation) with
/// server-side apply under their own field manager: two approvers applying at once never overwrite each
/// other, and the operator's fields are left alone. Forced because the entry keyed by our own name is ours
/// to change, even if another manager wrote it before.
async fn apply_own_status(
    session: &Session,
    me: &Identity,
    name: &str,
    status: Value,
) -> Result<CriticalOperationRequest, Failure> {
    let body = json!({
        "apiVersion": "mua.dev/v1alpha1",
        "kind": "CriticalOperationRequest",
        "metadata": {"name": name, "namespace": session.namespace},
        "status": status,
    });
    session
        .requests()
        .patch_status(
            name,
            &PatchParams::apply(&me.field_manager()).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(|err| from_kube(err, Target::object(KIND, name, &session.namespace)))
}

/// Reasons and comments are for people: refuse an empty one as a usage error rather than store it.
fn require_text(flag: &str, value: &str) -> Result<(), Failure> {
    if value.trim().is_empty() {
        return Err(Failure::new(Exit::Usage, format!("{flag} must not be empty")));
    }
    Ok(())
}
