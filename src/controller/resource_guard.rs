//! The ResourceGuard reconciler (security side): fetch the Azure guard, plan against the spec, apply the
//! plan (or only report it, under `Observe`), write status. No Azure write when nothing differs.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event, finalizer};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::{Context, Error, conditions};
use crate::azure::guards::{self, DesiredGuard, Guard, GuardId};
use crate::crd::resource_guard::{GuardDeletionPolicy, ProtectedOperation, ResourceGuardStatus};
use crate::crd::shared::ManagementPolicy;
use crate::crd::{ResourceGuard, ResourceGuardSpec};
use crate::operations::CriticalOperation;

/// The Azure tag that marks a guard as managed by one ResourceGuard object (`namespace/name`).
pub const OWNER_TAG: &str = "mua-operator-owner";
const FINALIZER: &str = "mua.dev/resource-guard";
const FIELD_MANAGER: &str = "mua-operator";
/// Steady state: one Azure read per object per resync.
const RESYNC: Duration = Duration::from_secs(300);
/// After a conflict only a person can resolve, look again now and then.
const STALLED_RETRY: Duration = Duration::from_secs(900);

/// What the spec asks Azure to hold.
pub fn desired(spec: &ResourceGuardSpec, owner: &str) -> DesiredGuard {
    let mut tags = spec.tags.clone();
    tags.insert(OWNER_TAG.to_string(), owner.to_string());
    DesiredGuard {
        location: spec.region.clone(),
        tags,
        description: spec.description.clone(),
        excluded: CriticalOperation::exclusion_list(&spec.excluded_operations),
    }
}

/// What to do about one guard.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// Azure matches the spec.
    InSync,
    /// Create the guard, or change the listed fields of an existing one.
    Write {
        desired: DesiredGuard,
        etag: Option<String>,
        changes: Vec<String>,
    },
    /// Something only a person can resolve (`reason` is the condition reason).
    Conflict { reason: &'static str, message: String },
}

/// Compares the spec with what Azure holds. Pure: no I/O, so every case is a unit test.
pub fn plan(spec: &ResourceGuardSpec, owner: &str, observed: Option<&Guard>) -> Plan {
    let desired = desired(spec, owner);
    let Some(observed) = observed else {
        return Plan::Write {
            desired,
            etag: None,
            changes: vec!["the guard does not exist".into()],
        };
    };
    match observed.tags.get(OWNER_TAG) {
        Some(other) if other != owner => {
            return Plan::Conflict {
                reason: "OwnedByAnother",
                message: format!("the Azure guard is managed by the ResourceGuard {other}"),
            };
        }
        None if !spec.adopt_existing => {
            return Plan::Conflict {
                reason: "AlreadyExists",
                message: "a guard with this name already exists in Azure and was not created by this operator; set spec.adoptExisting to take it over".into(),
            };
        }
        _ => {}
    }
    if !observed.location.eq_ignore_ascii_case(&desired.location) {
        return Plan::Conflict {
            reason: "RegionMismatch",
            message: format!(
                "the Azure guard is in {}, the spec says {}; a guard cannot move",
                observed.location, desired.location
            ),
        };
    }
    let mut changes = Vec::new();
    if observed.tags != desired.tags {
        changes.push("tags".to_string());
    }
    let set = |list: &[String]| list.iter().map(|s| s.to_ascii_lowercase()).collect::<BTreeSet<_>>();
    if set(&observed.properties.vault_critical_operation_exclusion_list) != set(&desired.excluded) {
        changes.push("excluded operations".to_string());
    }
    if desired.description.is_some() && observed.properties.description != desired.description {
        changes.push("description".to_string());
    }
    if changes.is_empty() {
        Plan::InSync
    } else {
        Plan::Write {
            desired,
            etag: observed.etag.clone(),
            changes,
        }
    }
}

/// The status that reports `observed` (what Azure holds now).
fn observed_status(
    spec: &ResourceGuardSpec,
    observed: Option<&Guard>,
    previous: &ResourceGuardStatus,
) -> ResourceGuardStatus {
    let mut status = ResourceGuardStatus {
        conditions: previous.conditions.clone(),
        ..Default::default()
    };
    status.description = spec
        .description
        .clone()
        .or_else(|| observed.and_then(|g| g.properties.description.clone()));
    if let Some(guard) = observed {
        status.resource_id = Some(guard.id.clone());
        status.etag = guard.etag.clone();
        status.provisioning_state = guard.properties.provisioning_state.clone();
        status.excluded_operations = guard.properties.vault_critical_operation_exclusion_list.clone();
        status.protected_operations = guard
            .properties
            .resource_guard_operations
            .iter()
            .map(|o| ProtectedOperation {
                operation: CriticalOperation::from_azure(&o.vault_critical_operation),
                vault_critical_operation: o.vault_critical_operation.clone(),
                request_resource_type: o.request_resource_type.clone(),
            })
            .collect();
    }
    status
}

fn guard_id(spec: &ResourceGuardSpec) -> GuardId {
    GuardId {
        subscription: spec.subscription_id.clone(),
        resource_group: spec.resource_group.clone(),
        name: spec.name.clone(),
    }
}

fn owner(rg: &ResourceGuard) -> String {
    format!("{}/{}", rg.namespace().unwrap_or_default(), rg.name_any())
}

async fn apply(rg: Arc<ResourceGuard>, ctx: &Context) -> Result<Action, Error> {
    let spec = &rg.spec;
    let id = guard_id(spec);
    let generation = rg.meta().generation;
    let previous = rg.status.clone().unwrap_or_default();
    let observed = guards::get(&ctx.security, &id).await?;
    let plan = plan(spec, &owner(&rg), observed.as_ref());
    let (status, action) = match (plan, spec.management_policy) {
        (Plan::Conflict { reason, message }, _) => {
            let mut status = observed_status(spec, observed.as_ref(), &previous);
            conditions::set(&mut status.conditions, "Synced", false, reason, &message, generation);
            conditions::summarize(&mut status.conditions, false, true, reason, &message, generation);
            (status, Action::requeue(STALLED_RETRY))
        }
        (Plan::InSync, _) => {
            let mut status = observed_status(spec, observed.as_ref(), &previous);
            conditions::set(
                &mut status.conditions,
                "Synced",
                true,
                "InSync",
                "Azure matches the spec",
                generation,
            );
            conditions::summarize(
                &mut status.conditions,
                true,
                false,
                "InSync",
                "the guard is in Azure as declared",
                generation,
            );
            (status, Action::requeue(RESYNC))
        }
        (Plan::Write { changes, .. }, ManagementPolicy::Observe) => {
            let mut status = observed_status(spec, observed.as_ref(), &previous);
            let message = format!(
                "Azure differs from the spec ({}); managementPolicy is Observe, so nothing was changed",
                changes.join(", ")
            );
            conditions::set(&mut status.conditions, "Synced", false, "Drifted", &message, generation);
            let exists = observed.is_some();
            let reason = if exists { "Observed" } else { "NotFound" };
            conditions::summarize(&mut status.conditions, exists, !exists, reason, &message, generation);
            (status, Action::requeue(RESYNC))
        }
        (Plan::Write { desired, etag, changes }, ManagementPolicy::Manage) => {
            let written = guards::put(&ctx.security, &id, &desired, etag).await?;
            tracing::info!(guard = %id.path(), changes = %changes.join(", "), "wrote the Resource Guard");
            let mut status = observed_status(spec, Some(&written), &previous);
            conditions::set(
                &mut status.conditions,
                "Synced",
                true,
                "Updated",
                &format!("updated {}", changes.join(", ")),
                generation,
            );
            conditions::summarize(
                &mut status.conditions,
                true,
                false,
                "Updated",
                "the guard is in Azure as declared",
                generation,
            );
            (status, Action::requeue(RESYNC))
        }
    };
    write_status(ctx, &rg, status, generation).await?;
    Ok(action)
}

async fn write_status(
    ctx: &Context,
    rg: &ResourceGuard,
    mut status: ResourceGuardStatus,
    generation: Option<i64>,
) -> Result<(), Error> {
    status.observed_generation = generation;
    if rg.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let api: Api<ResourceGuard> = Api::namespaced(ctx.client.clone(), &rg.namespace().unwrap_or_default());
    let patch = json!({"apiVersion": "mua.dev/v1alpha1", "kind": "ResourceGuard", "status": status});
    api.patch_status(
        &rg.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// On delete: `Delete` removes the Azure guard when this object manages it; `Orphan` and `Observe` leave
/// Azure alone. A guard managed by something else is never deleted.
async fn cleanup(rg: Arc<ResourceGuard>, ctx: &Context) -> Result<Action, Error> {
    let spec = &rg.spec;
    if spec.deletion_policy == GuardDeletionPolicy::Orphan || spec.management_policy == ManagementPolicy::Observe {
        return Ok(Action::await_change());
    }
    let id = guard_id(spec);
    if let Some(guard) = guards::get(&ctx.security, &id).await?
        && guard.tags.get(OWNER_TAG).map(String::as_str) == Some(owner(&rg).as_str())
    {
        guards::delete(&ctx.security, &id).await?;
        tracing::info!(guard = %id.path(), "deleted the Resource Guard");
    }
    Ok(Action::await_change())
}

async fn reconcile(rg: Arc<ResourceGuard>, ctx: Arc<Context>) -> Result<Action, Error> {
    let api: Api<ResourceGuard> = Api::namespaced(ctx.client.clone(), &rg.namespace().unwrap_or_default());
    finalizer(&api, FINALIZER, rg, |event| async {
        match event {
            Event::Apply(rg) => apply(rg, &ctx).await,
            Event::Cleanup(rg) => cleanup(rg, &ctx).await,
        }
    })
    .await
    .map_err(|err| Error::Finalizer(Box::new(err)))
}

fn error_policy(rg: Arc<ResourceGuard>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(resource_guard = %owner(&rg), reason = error.metric_label(), %error, "reconcile failed");
    Action::requeue(Duration::from_secs(10))
}

/// Runs the ResourceGuard controller over `api` (one namespace, or all) until `shutdown` resolves.
pub async fn run(
    api: Api<ResourceGuard>,
    ctx: Arc<Context>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    Controller::new(api, watcher::Config::default())
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::guards::GuardProperties;

    fn spec() -> ResourceGuardSpec {
        serde_json::from_value(json!({
            "subscriptionId": "0b352192-dcac-4cc7-992e-a96190ccc68c", "resourceGroup": "rg", "name": "g", "region": "westeurope",
            "description": "ask", "excludedOperations": ["ChangeMarsSecurityPin"], "tags": {"team": "sec"},
        }))
        .unwrap()
    }

    fn azure(spec: &ResourceGuardSpec, owner: Option<&str>) -> Guard {
        let mut d = desired(spec, owner.unwrap_or("x"));
        if owner.is_none() {
            d.tags.remove(OWNER_TAG);
        }
        Guard {
            id: "/id".into(),
            location: d.location,
            tags: d.tags,
            etag: Some("\"e1\"".into()),
            properties: GuardProperties {
                description: d.description,
                vault_critical_operation_exclusion_list: d.excluded,
                ..Default::default()
            },
        }
    }

    #[test]
    fn a_missing_guard_is_created_with_the_owner_tag() {
        match plan(&spec(), "ns/g", None) {
            Plan::Write {
                desired, etag: None, ..
            } => {
                assert_eq!(desired.tags.get(OWNER_TAG).map(String::as_str), Some("ns/g"));
                assert_eq!(
                    desired.excluded,
                    ["Microsoft.RecoveryServices/vaults/backupSecurityPIN/action"]
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_matching_guard_needs_no_write() {
        let s = spec();
        assert_eq!(plan(&s, "ns/g", Some(&azure(&s, Some("ns/g")))), Plan::InSync);
    }

    #[test]
    fn drift_is_named_and_written_with_the_etag() {
        let s = spec();
        let mut observed = azure(&s, Some("ns/g"));
        observed.properties.vault_critical_operation_exclusion_list.clear();
        observed.tags.insert("extra".into(), "x".into());
        match plan(&s, "ns/g", Some(&observed)) {
            Plan::Write { etag, changes, .. } => {
                assert_eq!(etag.as_deref(), Some("\"e1\""));
                assert_eq!(changes, ["tags", "excluded operations"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn someone_elses_guard_is_left_alone_unless_adopted() {
        let mut s = spec();
        let unowned = azure(&s, None);
        assert!(matches!(
            plan(&s, "ns/g", Some(&unowned)),
            Plan::Conflict {
                reason: "AlreadyExists",
                ..
            }
        ));
        s.adopt_existing = true;
        assert!(matches!(plan(&s, "ns/g", Some(&unowned)), Plan::Write { .. }));
        let other = azure(&s, Some("other/g"));
        assert!(matches!(
            plan(&s, "ns/g", Some(&other)),
            Plan::Conflict {
                reason: "OwnedByAnother",
                ..
            }
        ));
        let mut moved = azure(&s, Some("ns/g"));
        moved.location = "eastus".into();
        assert!(matches!(
            plan(&s, "ns/g", Some(&moved)),
            Plan::Conflict {
                reason: "RegionMismatch",
                ..
            }
        ));
    }

    #[test]
    fn without_a_description_in_the_spec_azures_default_is_not_drift() {
        let mut s = spec();
        s.description = None;
        let mut observed = azure(&s, Some("ns/g"));
        observed.properties.description = Some("Please take JIT access".into());
        assert_eq!(plan(&s, "ns/g", Some(&observed)), Plan::InSync);
    }
}
