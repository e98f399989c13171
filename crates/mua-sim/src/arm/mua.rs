//! Multi-user authorization as a vault enforces it: a critical operation on a vault linked to a Resource
//! Guard must cite the guard's request object and pass the linked authorization check on the guard
//! (Contributor, by assignment or PIM activation), unless the guard excludes that optional operation.
//!
//! Every function reads a `&World` the caller already holds, so a handler checks and writes under one
//! lock.

use jiff::Timestamp;
use serde_json::Value;

use super::guards::GUARD_TYPE;
use super::request::ArmRequest;
use crate::authz;
use crate::error::ArmError;
use crate::operations::{CriticalOperation, VaultKind};
use crate::tokens::Claims;
use crate::world::World;

/// The permission the simulator asks of the caller on the guard for protected operations whose guard
/// request type Azure's examples do not show (they cannot be cited, so only the guard check applies).
pub const GUARD_WRITE_ACTION: &str = "Microsoft.DataProtection/resourceGuards/write";

/// The link (`backupResourceGuardProxies` child) of a vault, if it has one: `(proxy id, guard id)`.
pub fn vault_link(w: &World, vault_id: &str) -> Option<(String, String)> {
    let prefix = format!("{}/backupresourceguardproxies/", vault_id.to_ascii_lowercase());
    w.resources
        .iter()
        .find(|(id, _)| id.starts_with(&prefix))
        .map(|(id, r)| {
            let guard = r.body["properties"]["resourceGuardResourceId"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            (r.body["id"].as_str().unwrap_or(id).to_string(), guard)
        })
}

/// The `resourceGuardOperationRequests` a body cites, wherever the API puts them.
pub fn cited_requests(body: &Value) -> Vec<String> {
    [
        &body["resourceGuardOperationRequests"],
        &body["properties"]["resourceGuardOperationRequests"],
    ]
    .iter()
    .filter_map(|v| v.as_array())
    .flatten()
    .filter_map(|v| v.as_str().map(str::to_string))
    .collect()
}

/// A Resource Guard by ID: `None` when there is none (or the ID names another kind of resource).
pub fn find_guard<'w>(w: &'w World, guard_id: &str) -> Option<&'w Value> {
    w.resource(guard_id)
        .map(|r| &r.body)
        .filter(|b| b["type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case(GUARD_TYPE)))
}

/// Refuses `op` on the vault unless the vault is not linked, the guard excludes the (optional) operation,
/// or the call cites the guard's request object and the caller is authorized for it on the guard.
pub fn authorize_critical(
    w: &World,
    now: Timestamp,
    req: &ArmRequest,
    citations: &[String],
    vault_id: &str,
    vault_kind: VaultKind,
    op: CriticalOperation,
) -> Result<(), ArmError> {
    let Some((_, guard_id)) = vault_link(w, vault_id) else {
        return Ok(());
    };
    let Some(azure) = op.on(vault_kind) else {
        return Ok(());
    };
    let Some(guard) = find_guard(w, &guard_id) else {
        return Err(ArmError::linked_authorization_failed(format!(
            "The vault is protected by the Resource Guard '{guard_id}', which could not be found; the operation \
             '{}' cannot be authorized.",
            azure.vault_critical_operation
        )));
    };
    let excluded = guard["properties"]["vaultCriticalOperationExclusionList"]
        .as_array()
        .is_some_and(|list| {
            list.iter().any(|e| {
                e.as_str()
                    .is_some_and(|e| e.eq_ignore_ascii_case(azure.vault_critical_operation))
            })
        });
    if excluded && !op.is_mandatory() {
        return Ok(());
    }
    let action = match azure.request_type {
        Some(request_type) => {
            let expected = format!("{guard_id}/{request_type}/default");
            if !citations.iter().any(|c| c.eq_ignore_ascii_case(&expected)) {
                return Err(ArmError::linked_authorization_failed(format!(
                    "The operation '{}' is protected by the Resource Guard '{guard_id}' (multi-user authorization). \
                     Cite '{expected}' in resourceGuardOperationRequests, with access to the guard.{}",
                    azure.vault_critical_operation,
                    how_to_ask(guard)
                )));
            }
            authz::linked_check_action(request_type)
        }
        None => GUARD_WRITE_ACTION.to_string(),
    };
    let principal = caller_in_guard_tenant(w, req, &guard_id)?;
    if !authz::is_allowed(w, &principal.oid, &action, &guard_id, now) {
        return Err(ArmError::linked_authorization_failed(format!(
            "The client '{oid}' does not have permission to perform '{action}' on the Resource Guard '{guard_id}', \
             which protects the operation '{op}' (linked authorization check failed).{ask}",
            oid = principal.oid,
            op = azure.vault_critical_operation,
            ask = how_to_ask(guard)
        )));
    }
    Ok(())
}

fn how_to_ask(guard: &Value) -> String {
    guard["properties"]["description"]
        .as_str()
        .map(|d| format!(" How to request access: {d}"))
        .unwrap_or_default()
}

/// The caller as the guard's tenant knows it: the primary token when the guard is in the caller's tenant,
/// else an auxiliary token (`x-ms-authorization-auxiliary`) from the guard's tenant.
pub fn caller_in_guard_tenant<'r>(w: &World, req: &'r ArmRequest, guard_id: &str) -> Result<&'r Claims, ArmError> {
    let tenant = resource_tenant(w, guard_id);
    req.principal_in(&tenant).ok_or_else(|| {
        ArmError::linked_authorization_failed(format!(
            "The Resource Guard '{guard_id}' is in tenant '{tenant}': add a token from that tenant in the \
             x-ms-authorization-auxiliary header."
        ))
    })
}

/// The tenant of the subscription that holds a resource.
pub fn resource_tenant(w: &World, resource_id: &str) -> String {
    let subscription = resource_id.split('/').nth(2).unwrap_or_default();
    w.subscription(subscription)
        .map(|s| s.tenant.clone())
        .unwrap_or_default()
}
