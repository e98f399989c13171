//! The ResourceGuard reconciler (security side): observe the Azure guard, plan against the spec (pure),
//! apply the plan (or only report it, under `Observe`), and compute the status (pure); the outcome is
//! reported in one place (`outcome::report`). No Azure write when nothing differs.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::StreamExt;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::outcome::{self, Cleanup, Notice, Outcome, Reported, Requeue, Summary};
use super::{Error, Reason, SecurityContext, conditions, scope, watch};
use crate::azure::ArmClient;
use crate::azure::guards::{self, DesiredGuard, Guard, GuardId};
use crate::crd::resource_guard::{GuardDeletionPolicy, ProtectedOperation, ResourceGuardStatus};
use crate::crd::shared::{Conditions, ManagementPolicy};
use crate::crd::{ResourceGuard, ResourceGuardSpec, VaultProtection};
use crate::operations::CriticalOperation;

/// The Azure tag that marks a guard as managed by one ResourceGuard object (`namespace/name`).
pub const OWNER_TAG: &str = "mua-operator-owner";
const FINALIZER: &str = "mua.dev/resource-guard";
const CONTROLLER: &str = "resourceguard";

impl Reported for ResourceGuard {
    type Status = ResourceGuardStatus;
    const CONTROLLER: &'static str = CONTROLLER;

    fn status(&self) -> Option<&ResourceGuardStatus> {
        self.status.as_ref()
    }

    fn conditions(status: &mut ResourceGuardStatus) -> &mut Conditions {
        &mut status.conditions
    }

    fn set_observed_generation(status: &mut ResourceGuardStatus, generation: Option<i64>) {
        status.observed_generation = generation;
    }

    /// The reconciler reads only the conditions of the previous status, and of those not all
    /// (`outcome::slim_conditions`).
    fn slim_cached(&mut self) {
        if let Some(status) = self.status.as_mut() {
            let mut conditions = std::mem::take(&mut status.conditions);
            outcome::slim_conditions(&mut conditions);
            *status = ResourceGuardStatus {
                observed_generation: status.observed_generation,
                conditions,
                ..Default::default()
            };
        }
    }
}

/// The guard's ARM location, reached with a token from its own tenant.
pub fn guard_id(spec: &ResourceGuardSpec) -> GuardId {
    GuardId::new(&spec.subscription_id, &spec.resource_group, &spec.name).in_tenant(spec.tenant_id.as_deref())
}

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
    /// Something only a person can resolve.
    Conflict { reason: Reason, message: String },
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
                reason: Reason::OwnedByAnother,
                message: format!(
                    "the Azure guard is managed by the ResourceGuard {other}; remove one of the two objects"
                ),
            };
        }
        None if !spec.adopt_existing => {
            return Plan::Conflict {
                reason: Reason::AlreadyExists,
                message: "a guard with this name already exists in Azure and was not created by this operator; set spec.adoptExisting to take it over".into(),
            };
        }
        _ => {}
    }
    if !observed.location.eq_ignore_ascii_case(&desired.location) {
        return Plan::Conflict {
            reason: Reason::RegionMismatch,
            message: format!(
                "the Azure guard is in {}, the spec says {}; a guard cannot move: fix spec.region or create a new ResourceGuard",
                observed.location, desired.location
            ),
        };
    }
    let mut changes = Vec::new();
    if observed.tags != desired.tags {
        changes.push("tags".to_string());
    }
    let set = |list: &[String]| list.iter().map(|s| s.to_ascii_lowercase()).collect::<BTreeSet<_>>();
    if set(&observed.excluded) != set(&desired.excluded) {
        changes.push("excluded operations".to_string());
    }
    if desired.description.is_some() && observed.description != desired.description {
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

/// What applying the plan left: the guard as Azure now holds it, and how it compares with the spec.
struct Applied {
    guard: Option<Guard>,
    synced: (bool, Reason, String),
    summary: Summary,
    notices: Vec<Notice>,
}

/// Carries the plan out (only under `Manage`).
async fn apply(arm: &ArmClient, rg: &ResourceGuard, observed: Option<Guard>, plan: Plan) -> Result<Applied, Error> {
    let spec = &rg.spec;
    let in_sync = |guard| Applied {
        guard,
        synced: (true, Reason::InSync, "Azure matches the spec".into()),
        summary: Summary::ready(Reason::InSync, "the guard is in Azure as declared"),
        notices: Vec::new(),
    };
    Ok(match (plan, spec.management_policy) {
        (Plan::InSync, _) => in_sync(observed),
        (Plan::Conflict { reason, message }, _) => Applied {
            guard: observed,
            synced: (false, reason, message.clone()),
            summary: Summary::stalled(reason, message),
            notices: Vec::new(),
        },
        (Plan::Write { changes, .. }, ManagementPolicy::Observe) => {
            let message = format!(
                "Azure differs from the spec ({}); managementPolicy is Observe, so nothing was changed",
                changes.join(", ")
            );
            let summary = match observed {
                Some(_) => Summary::ready(Reason::Observed, message.clone()),
                None => Summary::stalled(Reason::NotFound, message.clone()),
            };
            Applied {
                guard: observed,
                synced: (false, Reason::Drifted, message.clone()),
                summary,
                notices: vec![Notice::warning("Drifted", message)],
            }
        }
        (Plan::Write { desired, etag, changes }, ManagementPolicy::Manage) => {
            let id = guard_id(spec);
            let written = guards::put(arm, &id, &desired, etag).await?;
            let (reason, message) = match observed {
                None => ("Created", format!("created the Resource Guard {}", written.id)),
                Some(_) => (
                    "Updated",
                    format!("updated {} of the Resource Guard", changes.join(", ")),
                ),
            };
            let mut applied = in_sync(Some(written));
            applied.notices.push(Notice::normal(reason, message));
            applied
        }
    })
}

/// The status that reports the guard as Azure holds it. Pure.
pub fn status(
    spec: &ResourceGuardSpec,
    guard: Option<&Guard>,
    previous: &ResourceGuardStatus,
    synced: (bool, Reason, &str),
    generation: Option<i64>,
    now: jiff::Timestamp,
) -> ResourceGuardStatus {
    let mut status = ResourceGuardStatus {
        conditions: previous.conditions.clone(),
        description: spec
            .description
            .clone()
            .or_else(|| guard.and_then(|g| g.description.clone())),
        ..Default::default()
    };
    if let Some(guard) = guard {
        status.resource_id = Some(guard.id.clone());
        status.etag = guard.etag.clone();
        status.provisioning_state = guard.provisioning_state.clone();
        status.excluded_operations = guard.excluded.clone();
        status.protected_operations = guard
            .operations
            .iter()
            .map(|o| ProtectedOperation {
                operation: CriticalOperation::from_azure(&o.vault_critical_operation),
                vault_critical_operation: o.vault_critical_operation.clone(),
                request_resource_type: o.request_resource_type.clone(),
            })
            .collect();
    }
    let (ok, reason, message) = synced;
    conditions::set(
        &mut status.conditions,
        conditions::SYNCED,
        ok,
        reason,
        message,
        generation,
        now,
    );
    status
}

/// observe → plan → apply → status.
async fn converge(ctx: &SecurityContext, rg: &ResourceGuard) -> Result<Outcome<ResourceGuardStatus>, Error> {
    // Only a guard the namespace owns is touched, or even read, in Azure (adoption included).
    let scope = scope::of(&ctx.client, &rg.namespace().unwrap_or_default()).await?;
    if let Err(why) = scope.owns_guard(&guard_id(&rg.spec).path()) {
        return Ok(Outcome {
            status: rg.status.clone().unwrap_or_default(),
            summary: Summary::stalled(Reason::OutOfScope, why.clone()),
            requeue: Requeue::After(ctx.config.waiting_retry),
            notices: vec![Notice::warning("OutOfScope", why)],
        });
    }
    // The namespace's own security identity where it names one, so Azure RBAC bounds the team too.
    let arm = ctx.side.identities.of(&ctx.client, &scope.namespace).await?;
    let observed = guards::get(&arm, &guard_id(&rg.spec)).await?;
    let plan = plan(&rg.spec, &owner(rg), observed.as_ref());
    let applied = apply(&arm, rg, observed, plan).await?;
    let (ok, reason, message) = &applied.synced;
    let status = status(
        &rg.spec,
        applied.guard.as_ref(),
        &rg.status.clone().unwrap_or_default(),
        (*ok, *reason, message),
        rg.meta().generation,
        ctx.clock.now(),
    );
    Ok(Outcome {
        status,
        summary: applied.summary,
        requeue: Requeue::Resync,
        notices: applied.notices,
    })
}

fn owner(rg: &ResourceGuard) -> String {
    outcome::key(rg)
}

/// Whether deleting the object must do something in Azure first (and so needs a finalizer).
fn deletes_in_azure(spec: &ResourceGuardSpec) -> bool {
    spec.deletion_policy == GuardDeletionPolicy::Delete && spec.management_policy == ManagementPolicy::Manage
}

/// The VaultProtections that name this guard (by `guard.name` in its namespace, or by ARM ID) or
/// last saw their vault linked to it. ARM cannot list the vaults linked to a guard, so the cluster's
/// own declarations are the evidence; a VaultProtection that names the guard counts even when its
/// status says otherwise, since its status may be stale or written by someone else.
async fn linked_vaults(ctx: &SecurityContext, rg: &ResourceGuard, id: &GuardId) -> Result<Vec<String>, Error> {
    let (namespace, name) = (rg.namespace(), rg.name_any());
    let linked = ctx
        .api::<VaultProtection>()
        .list(&ListParams::default())
        .await?
        .into_iter()
        .filter(|vp| {
            let guard = &vp.spec.guard;
            let names = vp.namespace() == namespace && guard.name.as_deref() == Some(name.as_str());
            let by_id = guard.id.as_deref().is_some_and(|g| id.is(g));
            let reported = vp.status.as_ref().is_some_and(|s| {
                s.guard_id.as_deref().is_some_and(|g| id.is(g)) && s.conditions.is_true(conditions::LINKED)
            });
            names || by_id || reported
        })
        .map(|vp| outcome::key(&vp))
        .collect();
    Ok(linked)
}

/// On delete under `Delete`: removes the Azure guard this object manages, unless vaults are still
/// linked to it.
async fn cleanup(ctx: &SecurityContext, rg: &ResourceGuard) -> Result<Cleanup<ResourceGuardStatus>, Error> {
    let id = guard_id(&rg.spec);
    let linked = linked_vaults(ctx, rg, &id).await?;
    if !linked.is_empty() {
        let message = format!(
            "the guard is not deleted while VaultProtections name it or report a vault linked to it: {}; unlink and delete them first (unlinking needs a DisableMultiUserAuthorization request), or set deletionPolicy: Orphan",
            linked.join(", ")
        );
        return Ok(Cleanup::Waiting(Outcome {
            status: rg.status.clone().unwrap_or_default(),
            summary: Summary::stalled(Reason::VaultsLinked, message.clone()),
            requeue: Requeue::After(ctx.config.waiting_retry),
            notices: vec![Notice::warning("DeletionBlocked", message)],
        }));
    }
    // A guard outside the namespace's guardScopes is not touched, not even read: the object just goes.
    let scope = scope::of(&ctx.client, &rg.namespace().unwrap_or_default()).await?;
    if scope.owns_guard(&id.path()).is_err() {
        return Ok(Cleanup::Done);
    }
    let arm = ctx.side.identities.of(&ctx.client, &scope.namespace).await?;
    if let Some(guard) = guards::get(&arm, &id).await?
        && guard.tags.get(OWNER_TAG).map(String::as_str) == Some(owner(rg).as_str())
    {
        guards::delete(&arm, &id).await?;
        tracing::info!(guard = %id.path(), "deleted the Resource Guard");
    }
    Ok(Cleanup::Done)
}

async fn reconcile(rg: Arc<ResourceGuard>, ctx: Arc<SecurityContext>) -> Result<Action, Error> {
    let needs_finalizer = deletes_in_azure(&rg.spec);
    outcome::lifecycle(
        &ctx,
        &*rg,
        FINALIZER,
        needs_finalizer,
        || cleanup(&ctx, &rg),
        || converge(&ctx, &rg),
    )
    .await
}

/// Runs the ResourceGuard controller over `api` (one namespace, or all) until `shutdown` resolves.
pub async fn run(
    api: Api<ResourceGuard>,
    ctx: Arc<SecurityContext>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    watch::controller(api, &ctx)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, outcome::error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
            description: d.description,
            excluded: d.excluded,
            ..Default::default()
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
        observed.excluded.clear();
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
                reason: Reason::AlreadyExists,
                ..
            }
        ));
        s.adopt_existing = true;
        assert!(matches!(plan(&s, "ns/g", Some(&unowned)), Plan::Write { .. }));
        let other = azure(&s, Some("other/g"));
        assert!(matches!(
            plan(&s, "ns/g", Some(&other)),
            Plan::Conflict {
                reason: Reason::OwnedByAnother,
                ..
            }
        ));
        let mut moved = azure(&s, Some("ns/g"));
        moved.location = "eastus".into();
        assert!(matches!(
            plan(&s, "ns/g", Some(&moved)),
            Plan::Conflict {
                reason: Reason::RegionMismatch,
                ..
            }
        ));
    }

    #[test]
    fn the_slimmed_cache_leads_to_the_conditions_the_whole_status_would() {
        let s = spec();
        let guard = azure(&s, Some("ns/g"));
        let (t0, t1) = (
            jiff::Timestamp::from_second(1_000).unwrap(),
            jiff::Timestamp::from_second(2_000).unwrap(),
        );
        let in_sync = (true, Reason::InSync, "Azure matches the spec");
        let mut whole = status(&s, Some(&guard), &Default::default(), in_sync, Some(1), t0);
        let ready = Summary::ready(Reason::InSync, "the guard is in Azure as declared");
        conditions::summarize(&mut whole.conditions, &ready, Some(1), t0);
        let mut cached = ResourceGuard::new("g", s.clone());
        cached.status = Some(whole.clone());
        cached.slim_cached();
        let slim = cached.status.expect("a status");
        assert_eq!(slim.resource_id, None);
        assert!(slim.conditions.get("Ready").is_some_and(|c| c.message.is_empty()));
        assert_eq!(slim.conditions.get("Synced"), whole.conditions.get("Synced"));

        let moved = (false, Reason::RegionMismatch, "moved");
        for (synced, summary) in [
            (in_sync, ready),
            (moved, Summary::stalled(Reason::RegionMismatch, "moved")),
        ] {
            let converged = |previous: &ResourceGuardStatus| {
                let mut next = status(&s, Some(&guard), previous, synced, Some(2), t1);
                conditions::summarize(&mut next.conditions, &summary, Some(2), t1);
                next.conditions
            };
            assert_eq!(converged(&slim), converged(&whole));
        }
        let failed = |previous: &ResourceGuardStatus| {
            let mut next = previous.conditions.clone();
            let waiting = Summary::waiting(Reason::AzureUnavailable, "ARM answered 503");
            conditions::summarize(&mut next, &waiting, Some(1), t1);
            next
        };
        assert_eq!(failed(&slim), failed(&whole));
    }

    #[test]
    fn without_a_description_in_the_spec_azures_default_is_not_drift() {
        let mut s = spec();
        s.description = None;
        let mut observed = azure(&s, Some("ns/g"));
        observed.description = Some("Please take JIT access".into());
        assert_eq!(plan(&s, "ns/g", Some(&observed)), Plan::InSync);
    }
}
