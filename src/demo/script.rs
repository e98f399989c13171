//! The walkthrough: the security admin guards, the backup admin links, Azure refuses the unapproved, a
//! second person approves, the operator performs and drops the grant, and an unused elevation ends on
//! time. Each step acts as a person would (kubectl, `kubectl mua`) and checks the outcome in Kubernetes
//! and in Azure (the simulator).

use std::time::Duration;

use anyhow::Context as _;
use kube::Api;

use super::narrator::{Narrator, until};
use super::stage::*;
use crate::azure::authorization;
use crate::azure::guards::{self, GuardId};
use crate::azure::vaults::{self, SoftDelete, SoftDeleteChange, VaultId};
use crate::crd::critical_operation_request::RequestPhase;
use crate::crd::shared::Conditions;
use crate::crd::{CriticalOperationRequest, ResourceGuard, VaultProtection};

const GUARD: &str = "backup-guard";
const RS_VAULT: &str = "prod-vault";
const BACKUP_VAULT: &str = "prod-backup-vault";

fn guard_id() -> GuardId {
    GuardId::new(GUARD_SUB, "guard-rg", GUARD).in_tenant(Some(FABRIKAM))
}

#[allow(clippy::expect_used, reason = "the script's own vault names make well-formed IDs")]
fn vault_id(name: &str) -> VaultId {
    let provider = match name {
        BACKUP_VAULT => "Microsoft.DataProtection/backupVaults",
        _ => "Microsoft.RecoveryServices/vaults",
    };
    VaultId::parse(&format!(
        "/subscriptions/{BACKUP_SUB}/resourceGroups/backup-rg/providers/{provider}/{name}"
    ))
    .expect("a well-formed vault ID")
}

pub async fn walk(stage: &Stage<'_>, n: &mut Narrator) -> anyhow::Result<()> {
    bind_namespace(stage, n).await?;
    declare_guard(stage, n).await?;
    grant_reader(stage, n).await?;
    link_vaults(stage, n).await?;
    test_your_setup(stage, n).await?;
    ask_and_approve(stage, n).await?;
    unused_elevation_expires(stage, n).await?;
    n.step(
        "Where things stand",
        "Everything the walkthrough declared, as kubectl shows it:",
    );
    n.kubectl(stage, BOB, &["get", "mua"]).await?;
    Ok(())
}

async fn bind_namespace(stage: &Stage<'_>, n: &mut Narrator) -> anyhow::Result<()> {
    n.step(
        "The cluster admin binds the team's namespace to its Azure scopes",
        "An AzureScopeBinding (cluster-scoped: only cluster admins write it) says which vaults the \
         namespace's objects may name and which guards its security admins own. Anything else is refused \
         before the operator calls Azure; a namespace without one may name nothing.",
    );
    let yaml = format!(
        r"apiVersion: mua.dev/v1alpha1
kind: AzureScopeBinding
metadata:
  name: {NAMESPACE}
spec:
  scopes: [/subscriptions/{BACKUP_SUB}/resourceGroups/backup-rg]
  guardScopes: [/subscriptions/{GUARD_SUB}/resourceGroups/guard-rg]
"
    );
    println!("\n   azure-scope-binding.yaml (applied by the cluster admin):");
    n.output(&yaml);
    crate::control_plane::apply_manifests(&stage.admin, &yaml, "the demo's AzureScopeBinding").await?;
    Ok(())
}

async fn declare_guard(stage: &Stage<'_>, n: &mut Narrator) -> anyhow::Result<()> {
    n.step(
        "The security admin declares a Resource Guard in the isolated security tenant",
        "Bob owns the guard; it lives in a tenant no backup admin belongs to. Its elevation rules say who \
         may approve critical operations and for how long at most.",
    );
    let yaml = format!(
        r"apiVersion: mua.dev/v1alpha1
kind: ResourceGuard
metadata:
  name: {GUARD}
spec:
  tenantId: {FABRIKAM}
  subscriptionId: {GUARD_SUB}
  resourceGroup: guard-rg
  name: {GUARD}
  region: westeurope
  description: Critical backup operations need a second person. Ask with `kubectl mua request`; the security on-call approves.
  elevation:
    approvers:
      groups: [mua-approvers]
    requiredApprovals: 1
    maxDuration: 1h
"
    );
    n.apply(stage, BOB, "resource-guard.yaml", &yaml).await?;
    let guards: Api<ResourceGuard> = Api::namespaced(stage.admin.clone(), NAMESPACE);
    until("the ResourceGuard is Ready", || async {
        ready(&guards.get(GUARD).await.ok()?.status?.conditions).then_some(())
    })
    .await?;
    n.kubectl(stage, BOB, &["get", "resourceguard", GUARD]).await?;
    let in_azure = guards::get(&stage.security, &guard_id()).await?;
    n.check("the Resource Guard exists in the isolated tenant", in_azure.is_some());
    Ok(())
}

async fn grant_reader(stage: &Stage<'_>, n: &mut Narrator) -> anyhow::Result<()> {
    n.step(
        "The security admin lets the backup side read the guard",
        "Linking a vault needs Reader on the guard, never more. Bob grants it to the operator's backup \
         identity in the guard's tenant (the demo makes this Azure call with the security side's identity).",
    );
    let scope = guard_id().path();
    n.typed(
        BOB,
        &format!(
            "az role assignment create --role Reader --assignee-object-id {BACKUP_OID_IN_GUARD_TENANT} --scope {scope}"
        ),
    );
    let assignment = authorization::assign_in(
        &stage.security,
        Some(FABRIKAM),
        &scope,
        authorization::READER,
        BACKUP_OID_IN_GUARD_TENANT,
    )
    .await?;
    n.output(&format!(
        "{{\"id\": \"{}\", \"roleDefinitionName\": \"Reader\"}}",
        assignment.id
    ));
    Ok(())
}

async fn link_vaults(stage: &Stage<'_>, n: &mut Narrator) -> anyhow::Result<()> {
    n.step(
        "The backup admin links two vaults to the guard",
        "Alice declares a VaultProtection for a Recovery Services vault and one for a Backup vault. The \
         operator links each to the guard in the other tenant (with an auxiliary token from it) and keeps \
         soft delete on.",
    );
    let yaml = [RS_VAULT, BACKUP_VAULT]
        .iter()
        .map(|name| {
            format!(
                "apiVersion: mua.dev/v1alpha1\nkind: VaultProtection\nmetadata:\n  name: {name}\nspec:\n  vault:\n    id: {}\n  guard:\n    name: {GUARD}\n  softDelete:\n    state: Enabled\n",
                vault_id(name).path()
            )
        })
        .collect::<Vec<_>>()
        .join("---\n");
    n.apply(stage, ALICE, "vault-protections.yaml", &yaml).await?;
    let protections: Api<VaultProtection> = Api::namespaced(stage.admin.clone(), NAMESPACE);
    for name in [RS_VAULT, BACKUP_VAULT] {
        until(&format!("VaultProtection {name} is Ready"), || async {
            ready(&protections.get(name).await.ok()?.status?.conditions).then_some(())
        })
        .await?;
    }
    n.kubectl(stage, ALICE, &["get", "mua"]).await?;
    for name in [RS_VAULT, BACKUP_VAULT] {
        let link = vaults::get_link(&stage.backup, &vault_id(name)).await?;
        let linked = link.is_some_and(|l| l.guard_id.eq_ignore_ascii_case(&guard_id().path()));
        n.check(&format!("Azure shows {name} linked to the guard"), linked);
    }
    Ok(())
}

async fn test_your_setup(stage: &Stage<'_>, n: &mut Narrator) -> anyhow::Result<()> {
    n.step(
        "Test your setup: without elevation, Azure refuses to weaken protection",
        "Disabling soft delete is a critical operation. A backup admin would type the command below; the \
         demo sends the same change (the vault's soft-delete settings, citing the guard) with the backup \
         identity, which has full rights on the vault:",
    );
    n.typed(
        ALICE,
        &format!("az backup vault backup-properties set --name {RS_VAULT} --resource-group backup-rg --soft-delete-feature-state Disable"),
    );
    let off = SoftDeleteChange {
        state: SoftDelete::Disabled,
        retention_days: None,
    };
    let attempt = vaults::set_soft_delete(&stage.backup, &vault_id(RS_VAULT), off, Some(&guard_id())).await;
    match &attempt {
        Ok(()) => n.output("(accepted)"),
        Err(err) => n.output(&format!("ERROR: {err}")),
    }
    n.check(
        "Azure refused to disable soft delete without elevation",
        attempt.is_err(),
    );
    n.check(
        "soft delete is still on",
        soft_delete(stage, RS_VAULT).await? == Some(SoftDelete::Enabled),
    );
    Ok(())
}

async fn ask_and_approve(stage: &Stage<'_>, n: &mut Narrator) -> anyhow::Result<()> {
    n.step(
        "The backup admin declares soft delete off: the operator waits for an approved request",
        "Git now says soft delete is off for prod-vault. The operator does not touch Azure; the object \
         says which critical operation to request.",
    );
    n.kubectl(
        stage,
        ALICE,
        &[
            "patch",
            "vaultprotection",
            RS_VAULT,
            "--type=merge",
            "-p",
            r#"{"spec":{"softDelete":{"state":"Disabled"}}}"#,
        ],
    )
    .await?;
    let protections: Api<VaultProtection> = Api::namespaced(stage.admin.clone(), NAMESPACE);
    until("prod-vault says ElevationRequired", || async {
        let status = protections.get(RS_VAULT).await.ok()?.status?;
        condition_reason(&status.conditions, "Ready").filter(|r| r == "ElevationRequired")
    })
    .await?;
    n.kubectl(
        stage,
        ALICE,
        &[
            "get",
            "vaultprotection",
            RS_VAULT,
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="Ready")].message}{"\n"}"#,
        ],
    )
    .await?;

    n.step(
        "The backup admin asks for elevation",
        "A CriticalOperationRequest: one operation, one vault, a bounded duration, a justification and a \
         ticket. The API server records who asked.",
    );
    let request = "disable-soft-delete";
    n.kubectl(
        stage,
        ALICE,
        &[
            "mua",
            "request",
            RS_VAULT,
            "--operation",
            "DisableSoftDelete",
            "--duration",
            "30m",
            "--justification",
            "Decommission prod-vault after the migration",
            "--ticket",
            "ServiceNow:CHG0012345",
            "--name",
            request,
            "--no-wait",
        ],
    )
    .await?;
    n.kubectl(stage, BOB, &["mua", "list", "--pending"]).await?;
    n.check("nothing is granted before approval", grants(stage).await? == 0);
    recorded(stage, request).await?;
    n.kubectl(stage, BOB, &["mua", "describe", request]).await?;

    n.step(
        "The security admin approves; the operator performs the operation and drops the grant",
        "Bob is in the guard's approvers and is not the requester (the admission policies refuse \
         self-approval). The operator grants the backup identity the narrowest role on the guard until the \
         request's end, disables soft delete citing the guard, and ends the grant at once.",
    );
    n.kubectl(
        stage,
        BOB,
        &[
            "mua",
            "approve",
            request,
            "--reason",
            "Checked CHG0012345 with the change board",
        ],
    )
    .await?;
    let requests: Api<CriticalOperationRequest> = Api::namespaced(stage.admin.clone(), NAMESPACE);
    let done = until("the request is Completed", || async {
        let cor = requests.get(request).await.ok()?;
        let phase = cor.status.as_ref()?.phase?;
        matches!(
            phase,
            RequestPhase::Completed | RequestPhase::Failed | RequestPhase::Denied
        )
        .then_some(cor)
    })
    .await?;
    n.kubectl(stage, ALICE, &["mua", "describe", request]).await?;
    let status = done.status.unwrap_or_default();
    n.check(
        "the request is Completed",
        status.phase == Some(RequestPhase::Completed),
    );
    n.check(
        "the approval is on the record as bob's",
        status
            .history
            .iter()
            .any(|t| t.phase == RequestPhase::Approved && t.actor == BOB.user.name),
    );
    n.check(
        "Azure shows soft delete off on prod-vault",
        soft_delete(stage, RS_VAULT).await? == Some(SoftDelete::Disabled),
    );
    n.check("the grant on the guard is gone", grants(stage).await? == 0);
    Ok(())
}

/// Waits until the operator has recorded what `request` is for (vault, guard, change): before that,
/// nobody can approve it.
async fn recorded(stage: &Stage<'_>, request: &str) -> anyhow::Result<()> {
    let requests: Api<CriticalOperationRequest> = Api::namespaced(stage.admin.clone(), NAMESPACE);
    until(&format!("the operator records what {request} is for"), || async {
        requests.get(request).await.ok()?.status?.target.map(|_| ())
    })
    .await
}

async fn unused_elevation_expires(stage: &Stage<'_>, n: &mut Narrator) -> anyhow::Result<()> {
    n.step(
        "An elevation nobody uses ends on time",
        "Alice asks for 10 minutes to turn soft delete off on the Backup vault, Bob approves, and then the \
         change is called off: the VaultProtection still wants soft delete on, so the operator holds the \
         grant but does nothing with it.",
    );
    let request = "backup-vault-change";
    n.kubectl(
        stage,
        ALICE,
        &[
            "mua",
            "request",
            BACKUP_VAULT,
            "--operation",
            "DisableSoftDelete",
            "--duration",
            "10m",
            "--justification",
            "Change window for the Backup vault",
            "--ticket",
            "ServiceNow:CHG0012399",
            "--name",
            request,
            "--no-wait",
        ],
    )
    .await?;
    recorded(stage, request).await?;
    n.kubectl(
        stage,
        BOB,
        &["mua", "approve", request, "--reason", "Change window agreed"],
    )
    .await?;
    let requests: Api<CriticalOperationRequest> = Api::namespaced(stage.admin.clone(), NAMESPACE);
    let phase = |wanted: RequestPhase| {
        let requests = requests.clone();
        async move {
            until(&format!("{request} is {wanted:?}"), || async {
                let cor = requests.get(request).await.ok()?;
                (cor.status.as_ref()?.phase? == wanted).then_some(cor)
            })
            .await
        }
    };
    phase(RequestPhase::Active).await?;
    n.kubectl(stage, BOB, &["mua", "list"]).await?;
    n.check(
        "Azure holds exactly one grant while it is active",
        grants(stage).await? == 1,
    );

    n.say(
        "The demo moves the simulated clock 10 minutes ahead (Azure and the operator share it here). Azure \
         ends the assignment at the end it was given; the operator records the expiry.",
    );
    stage.sim.advance(Duration::from_secs(10 * 60 + 1));
    let expired = phase(RequestPhase::Expired).await?;
    n.kubectl(stage, ALICE, &["mua", "describe", request]).await?;
    let status = expired.status.unwrap_or_default();
    let on_time = match (&status.expires_at, &status.ended_at) {
        (Some(expires), Some(ended)) => {
            ended.0 >= expires.0 && ended.0 <= expires.0 + jiff::SignedDuration::from_secs(2)
        }
        _ => false,
    };
    n.check("the request Expired, ended within 2 s of its end time", on_time);
    n.check("Azure holds no grant afterwards", grants(stage).await? == 0);
    n.check(
        "soft delete is still on for the Backup vault",
        soft_delete(stage, BACKUP_VAULT).await? == Some(SoftDelete::Enabled),
    );
    Ok(())
}

fn ready(conditions: &Conditions) -> bool {
    conditions.get("Ready").is_some_and(|c| c.status == "True")
}

fn condition_reason(conditions: &Conditions, type_: &str) -> Option<String> {
    conditions.get(type_).map(|c| c.reason.clone())
}

async fn soft_delete(stage: &Stage<'_>, vault: &str) -> anyhow::Result<Option<SoftDelete>> {
    let vault = vaults::get(&stage.backup, &vault_id(vault))
        .await?
        .with_context(|| format!("the vault {vault} is gone"))?;
    Ok(vault.soft_delete.map(|s| s.state))
}

/// The elevation roles the backup identity holds on the guard.
async fn grants(stage: &Stage<'_>) -> anyhow::Result<usize> {
    let held = authorization::list_for_principal_in(
        &stage.security,
        Some(FABRIKAM),
        &guard_id().path(),
        BACKUP_OID_IN_GUARD_TENANT,
    )
    .await?;
    Ok(held
        .iter()
        .filter(|a| {
            [authorization::BACKUP_MUA_OPERATOR, authorization::CONTRIBUTOR]
                .iter()
                .any(|r| a.role.eq_ignore_ascii_case(r))
        })
        .count())
}
