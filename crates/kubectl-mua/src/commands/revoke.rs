//! `revoke`: set `status.revocation`, which ends the request, or its elevation, at once.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use mua_api::crd::critical_operation_request::Revocation;
use serde_json::json;

use super::{KIND, apply_own_status, get, require_text};
use crate::args::{Output, RevokeArgs};
use crate::client::Session;
use crate::error::{Exit, Failure};
use crate::output::{self, note};
use crate::state;

pub async fn run(session: &Session, args: RevokeArgs, format: Output) -> Result<Exit, Failure> {
    if let Some(reason) = &args.reason {
        require_text("--reason", reason)?;
    }
    let me = session.whoami().await?;
    let request = get(session, &args.name).await?;
    if let Some(phase) = state::phase(&request).filter(|p| p.is_final()) {
        return Err(Failure::refused(format!(
            "{KIND} \"{}\" has already ended ({phase:?}): there is nothing to revoke",
            args.name
        )));
    }
    // One revocation per request: a second would only overwrite who revoked first.
    if let Some(earlier) = request.status.as_ref().and_then(|s| s.revocation.as_ref()) {
        return Err(Failure::refused(format!(
            "{KIND} \"{}\" was already revoked by {} at {}",
            args.name,
            earlier.by,
            output::timestamp(&earlier.time)
        )));
    }

    let revocation = Revocation {
        by: me.username.clone(),
        time: Time(Timestamp::now()),
        reason: args.reason.clone(),
    };
    let value = serde_json::to_value(&revocation)
        .map_err(|err| Failure::unexpected(format!("cannot serialize the revocation: {err}")))?;
    let updated = apply_own_status(session, &me, &args.name, json!({"revocation": value})).await?;

    if format == Output::Table {
        note(
            format,
            format!(
                "{KIND}/{} revoked by {}: the operator ends it and any elevation now",
                args.name, me.username
            ),
        );
    } else {
        print!("{}", output::object(&updated, format)?);
    }
    Ok(Exit::Success)
}
