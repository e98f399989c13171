//! The request's own account of its approval, checked again by whoever is about to use it (the backup
//! side, before it weakens a vault): the rules resolved afresh from the guard owner's objects, the target
//! they resolve to equal to the one recorded, and the approvals judged by the same pure judge the
//! security side uses, as of the grant. Trusts nothing in `status` beyond what it can check.

use jiff::Timestamp;

use std::time::Duration;

use super::grant::role_id;
use super::observe::{judged, pim_settings};
use super::policy::{check_spec, resolve};
use crate::azure::ArmClient;
use crate::controller::{Context, Error};
use crate::crd::CriticalOperationRequest;
use crate::crd::shared::ApprovalBackend;

/// What the backup side may ask PIM to activate for a request: the rules' role (its GUID) and the
/// request's duration, both judged from the guard owner's rules, never read from a status.
#[derive(Clone, Debug, PartialEq)]
pub struct Activation {
    pub role: String,
    pub duration: Duration,
}

/// `Ok(Ok(activation))` when the backup side, as `activating` (signed in as `arm`), may ask PIM to
/// activate for `cor`: the guard owner's rules resolve and use PIM, the request is within them, and PIM's
/// settings on the guard keep another person in the loop; otherwise why not, for a person. (The approvals
/// are judged by [`approvals_hold`].)
pub async fn pim_activation(
    ctx: &Context,
    arm: &ArmClient,
    cor: &CriticalOperationRequest,
    activating: &str,
) -> Result<Result<Activation, String>, Error> {
    let resolved = match resolve(ctx, cor).await? {
        Ok(resolved) => resolved,
        Err(refusal) => return Ok(Err(format!("its rules do not resolve now: {}", refusal.message))),
    };
    if resolved.policy.backend != ApprovalBackend::Pim {
        return Ok(Err(format!(
            "the guard owner's rules ({}) do not elevate through PIM",
            resolved.policy.rules_from
        )));
    }
    let duration = match check_spec(cor, &resolved) {
        Ok(duration) => duration,
        Err(refusal) => return Ok(Err(refusal.message)),
    };
    if let Err(refusal) = pim_settings(arm, cor, &resolved, activating).await? {
        return Ok(Err(refusal.message));
    }
    Ok(Ok(Activation {
        role: role_id(resolved.policy.role).to_string(),
        duration,
    }))
}

/// `Ok(Ok(()))` when `cor`'s approvals hold under the guard owner's rules for the target it records, as
/// of its grant (never later than `now`); otherwise why not, for a person. Under PIM too: another person
/// approves in Kubernetes before the activation.
pub async fn approvals_hold(
    ctx: &Context,
    cor: &CriticalOperationRequest,
    now: Timestamp,
) -> Result<Result<(), String>, Error> {
    let status = cor.status.clone().unwrap_or_default();
    let resolved = match resolve(ctx, cor).await? {
        Ok(resolved) => resolved,
        Err(refusal) => return Ok(Err(format!("its rules do not resolve now: {}", refusal.message))),
    };
    let Some(target) = status.target.as_ref() else {
        return Ok(Err("it records no target".into()));
    };
    if !target.matches(&resolved.target()) {
        return Ok(Err(format!(
            "the target it records (the vault {}) is not what it resolves to now (the vault {})",
            target.vault_id, resolved.vault
        )));
    }
    let granted_at = status
        .granted_at
        .as_ref()
        .map(|t| t.0)
        .filter(|at| *at <= now)
        .unwrap_or(now);
    let judged = judged(ctx, cor, &status, &resolved, Some(target), granted_at).await?;
    if let Some((by, _)) = &judged.denied_by {
        return Ok(Err(format!("{by} denied it")));
    }
    let required = resolved.policy.required_approvals.max(1) as usize;
    if judged.approvers.len() < required {
        let mut why = format!(
            "only {} of the {required} approvals the guard owner's rules ({}) require count",
            judged.approvers.len(),
            resolved.policy.rules_from
        );
        if !judged.ignored.is_empty() {
            why.push_str(&format!(" (not counted: {})", judged.ignored.join("; ")));
        }
        return Ok(Err(why));
    }
    Ok(Ok(()))
}
