//! `approve` and `deny`: write the caller's own entry in `status.approvals`.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use mua_api::crd::critical_operation_request::{Approval, Decision};
use serde_json::json;

use super::{KIND, apply_own_status, get, require_text};
use crate::args::{DecideArgs, Output};
use crate::client::Session;
use crate::error::{Exit, Failure};
use crate::output::{self, note};
use crate::state;

pub async fn run(session: &Session, args: DecideArgs, decision: Decision, format: Output) -> Result<Exit, Failure> {
    require_text("--reason", &args.reason)?;
    let verb = match decision {
        Decision::Approve => "approve",
        Decision::Deny => "deny",
    };
    let me = session.whoami().await?;
    let request = get(session, &args.name).await?;

    // The admission policies refuse both too (and say so in their own words); checking here first names
    // the reason without sending anything.
    if !state::is_undecided(&request) {
        return Err(Failure::refused(format!(
            "{KIND} \"{}\" is already {}: only a pending request can be approved or denied",
            args.name,
            state::phase_name(state::phase(&request)),
        )));
    }
    if state::requester(&request) == Some(me.username.as_str()) {
        let hint = match decision {
            Decision::Approve => String::new(),
            Decision::Deny => format!("; to withdraw it: kubectl mua revoke {}", args.name),
        };
        return Err(Failure::refused(format!(
            "you cannot {verb} your own request: another person must (two-person rule){hint}"
        )));
    }
    // An approval is for exactly what the operator recorded and `describe` shows; until then there is
    // nothing to approve (a denial needs no target: it only ever stops an elevation).
    let target = request.status.as_ref().and_then(|s| s.target.clone());
    if decision == Decision::Approve && target.is_none() {
        return Err(Failure::refused(format!(
            "{KIND} \"{}\" cannot be approved yet: the operator has not recorded which vault, guard and change it is for (see its conditions with kubectl mua describe {}); approve once describe shows them",
            args.name, args.name
        )));
    }
    // A person's grant opens the whole guard: say so before approving it.
    if decision == Decision::Approve
        && let Some(radius) = request.status.as_ref().and_then(|s| s.blast_radius.as_ref())
    {
        eprintln!("note: this approval elevates a person on {}", radius.describe());
    }
    // Whether RBAC grants us the verb `approve` is left to the API server: its admission policy refuses
    // with a message that names the role to ask for, printed as it is.

    let approval = Approval {
        approver: me.username.clone(),
        groups: me.groups.clone(),
        decision,
        time: Time(Timestamp::now()),
        comment: Some(args.reason.clone()),
        target,
    };
    let entry = serde_json::to_value(&approval)
        .map_err(|err| Failure::unexpected(format!("cannot serialize the approval: {err}")))?;
    let updated = apply_own_status(session, &me, &args.name, json!({"approvals": [entry]})).await?;

    if format == Output::Table {
        let done = match decision {
            Decision::Approve => "approved",
            Decision::Deny => "denied",
        };
        note(
            format,
            format!(
                "{KIND}/{} {done} by {} (approvals: {})",
                args.name,
                me.username,
                state::approvals_summary(&updated)
            ),
        );
    } else {
        print!("{}", output::object(&updated, format)?);
    }
    Ok(Exit::Success)
}
