//! Vaults (Recovery Services and Backup vaults), their soft-delete settings and their links to Resource
//! Guards (`backupResourceGuardProxies`), including the critical operations on them: weakening soft delete
//! and removing the link, which cite the guard's request objects.

use reqwest::Method;
use serde_json::{Value, json};

use super::client::{ArmClient, Call};
use super::error::AzureError;
use crate::operations::{CriticalOperation, VaultKind};

/// Recovery Services vaults.
pub const RS_VAULTS_API: &str = "2026-11-01";
/// Recovery Services backup resources (links, policies, protected items).
pub const RS_BACKUP_API: &str = "2026-10-01";
/// Backup vaults and their links.
pub const DATA_PROTECTION_API: &str = super::guards::API_VERSION;
/// The name the portal and the CLI give a vault's link.
pub const LINK_NAME: &str = "VaultProxy";
/// How long to follow a vault update before giving up.
const VAULT_UPDATE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(300);

/// A vault by kind and location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultId {
    pub kind: VaultKind,
    pub subscription: String,
    pub resource_group: String,
    pub name: String,
}

impl VaultId {
    pub fn path(&self) -> String {
        let provider = match self.kind {
            VaultKind::RecoveryServicesVault => "Microsoft.RecoveryServices/vaults",
            VaultKind::BackupVault => "Microsoft.DataProtection/backupVaults",
        };
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/{provider}/{}",
            self.subscription, self.resource_group, self.name
        )
    }

    /// Parses a vault's ARM ID; the fixed segments compare without case, as ARM does.
    pub fn parse(id: &str) -> Option<VaultId> {
        let (subscription, group, provider, kind, name) = super::parse_resource_id(id)?;
        let kind = match (
            provider.to_ascii_lowercase().as_str(),
            kind.to_ascii_lowercase().as_str(),
        ) {
            ("microsoft.recoveryservices", "vaults") => VaultKind::RecoveryServicesVault,
            ("microsoft.dataprotection", "backupvaults") => VaultKind::BackupVault,
            _ => return None,
        };
        Some(VaultId {
            kind,
            subscription: subscription.to_string(),
            resource_group: group.to_string(),
            name: name.to_string(),
        })
    }

    fn link_path(&self) -> String {
        format!("{}/backupResourceGuardProxies/{LINK_NAME}", self.path())
    }

    fn api_version(&self) -> &'static str {
        match self.kind {
            VaultKind::RecoveryServicesVault => RS_VAULTS_API,
            VaultKind::BackupVault => DATA_PROTECTION_API,
        }
    }

    fn link_api_version(&self) -> &'static str {
        match self.kind {
            VaultKind::RecoveryServicesVault => RS_BACKUP_API,
            VaultKind::BackupVault => DATA_PROTECTION_API,
        }
    }
}

/// Soft delete as this project names it, whatever the vault kind calls it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SoftDelete {
    Enabled,
    Disabled,
    AlwaysOn,
}

impl SoftDelete {
    /// The field and value a vault kind uses.
    fn wire(self, kind: VaultKind) -> (&'static str, &'static str) {
        match (kind, self) {
            (VaultKind::RecoveryServicesVault, SoftDelete::Enabled) => ("softDeleteState", "Enabled"),
            (VaultKind::RecoveryServicesVault, SoftDelete::Disabled) => ("softDeleteState", "Disabled"),
            (VaultKind::RecoveryServicesVault, SoftDelete::AlwaysOn) => ("softDeleteState", "AlwaysON"),
            (VaultKind::BackupVault, SoftDelete::Enabled) => ("state", "On"),
            (VaultKind::BackupVault, SoftDelete::Disabled) => ("state", "Off"),
            (VaultKind::BackupVault, SoftDelete::AlwaysOn) => ("state", "AlwaysOn"),
        }
    }

    fn from_wire(value: &str) -> Option<SoftDelete> {
        match value.to_ascii_lowercase().as_str() {
            "enabled" | "on" => Some(SoftDelete::Enabled),
            "disabled" | "off" => Some(SoftDelete::Disabled),
            "alwayson" => Some(SoftDelete::AlwaysOn),
            _ => None,
        }
    }
}

/// A vault as ARM returns it, with the settings the operator reads.
#[derive(Clone, Debug, PartialEq)]
pub struct Vault {
    pub id: String,
    pub location: String,
    pub etag: Option<String>,
    pub soft_delete: Option<SoftDelete>,
    /// `securitySettings.multiUserAuthorization` (Recovery Services vaults only).
    pub multi_user_authorization: Option<String>,
    pub raw: Value,
}

/// A vault's link to a guard.
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    pub id: String,
    pub guard_id: String,
    /// The guard's description, echoed by the link: how to ask for access.
    pub description: Option<String>,
}

/// Who elevates a critical call: the guard, and its tenant when that is not the caller's.
#[derive(Clone, Debug, PartialEq)]
pub struct GuardAccess {
    pub guard_id: String,
    pub tenant: Option<String>,
}

impl GuardAccess {
    fn citation(&self, op: CriticalOperation, kind: VaultKind) -> Value {
        let request_type = op.on(kind).and_then(|a| a.request_type);
        json!(
            request_type
                .map(|rt| vec![format!("{}/{rt}/default", self.guard_id)])
                .unwrap_or_default()
        )
    }
}

pub async fn get(client: &ArmClient, id: &VaultId) -> Result<Option<Vault>, AzureError> {
    let reply = match client.send(&Call::new(Method::GET, id.path(), id.api_version())).await {
        Ok(reply) => reply,
        Err(err) if err.is_not_found() => return Ok(None),
        Err(err) => return Err(err),
    };
    let body = reply.body;
    let security = &body["properties"]["securitySettings"];
    let soft_delete = security["softDeleteSettings"]["softDeleteState"]
        .as_str()
        .or(security["softDeleteSettings"]["state"].as_str());
    Ok(Some(Vault {
        id: body["id"].as_str().unwrap_or_default().to_string(),
        location: body["location"].as_str().unwrap_or_default().to_string(),
        etag: body["etag"].as_str().or(body["eTag"].as_str()).map(str::to_string),
        soft_delete: soft_delete.and_then(SoftDelete::from_wire),
        multi_user_authorization: security["multiUserAuthorization"].as_str().map(str::to_string),
        raw: body,
    }))
}

/// Sets the vault's soft-delete state. Weakening it is a critical operation: pass the guard to cite when
/// the vault is linked.
pub async fn set_soft_delete(
    client: &ArmClient,
    id: &VaultId,
    state: SoftDelete,
    guard: Option<&GuardAccess>,
) -> Result<(), AzureError> {
    let (field, value) = state.wire(id.kind);
    let mut properties = json!({"securitySettings": {"softDeleteSettings": {field: value}}});
    let mut call = Call::new(Method::PATCH, id.path(), id.api_version());
    if let Some(guard) = guard {
        properties["resourceGuardOperationRequests"] = guard.citation(CriticalOperation::DisableSoftDelete, id.kind);
        call = call.auxiliary(guard.tenant.as_deref());
    }
    let reply = client.send(&call.body(json!({"properties": properties}))).await?;
    client
        .wait_for_completion(
            &reply,
            &format!("setting soft delete on {}", id.path()),
            VAULT_UPDATE_DEADLINE,
        )
        .await
}

/// The vault's link, if it has one.
pub async fn get_link(client: &ArmClient, id: &VaultId) -> Result<Option<Link>, AzureError> {
    let list = Call::new(
        Method::GET,
        format!("{}/backupResourceGuardProxies", id.path()),
        id.link_api_version(),
    );
    let reply = client.send(&list).await?;
    Ok(reply.body["value"]
        .as_array()
        .and_then(|links| links.first())
        .map(|link| Link {
            id: link["id"].as_str().unwrap_or_default().to_string(),
            guard_id: link["properties"]["resourceGuardResourceId"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            description: link["properties"]["description"].as_str().map(str::to_string),
        }))
}

/// Links the vault to the guard (needs Reader on the guard; a token from the guard's tenant when it is
/// another tenant).
pub async fn link(client: &ArmClient, id: &VaultId, guard: &GuardAccess) -> Result<Link, AzureError> {
    let body = json!({"properties": {"resourceGuardResourceId": guard.guard_id}});
    let call = Call::new(Method::PUT, id.link_path(), id.link_api_version())
        .body(body)
        .auxiliary(guard.tenant.as_deref());
    let reply = client.send(&call).await?;
    Ok(Link {
        id: reply.body["id"].as_str().unwrap_or_default().to_string(),
        guard_id: guard.guard_id.clone(),
        description: reply.body["properties"]["description"].as_str().map(str::to_string),
    })
}

/// Removes the link: the mandatory critical operation. Unlocks it (citing the guard's
/// `deleteResourceGuardProxyRequests`) and deletes it; both need elevation on the guard.
pub async fn unlink(client: &ArmClient, id: &VaultId, guard: &GuardAccess) -> Result<(), AzureError> {
    let link = id.link_path();
    let unlock = json!({
        "resourceGuardOperationRequests": guard.citation(CriticalOperation::DisableMultiUserAuthorization, id.kind),
        "resourceToBeDeleted": link,
    });
    let call = Call::new(Method::POST, format!("{link}/unlockDelete"), id.link_api_version())
        .body(unlock)
        .auxiliary(guard.tenant.as_deref());
    client.send(&call).await?;
    client
        .send(&Call::new(Method::DELETE, link, id.link_api_version()))
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_ids_parse_both_kinds_and_nothing_else() {
        let rs = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v";
        assert_eq!(
            VaultId::parse(rs).map(|v| v.kind),
            Some(VaultKind::RecoveryServicesVault)
        );
        assert_eq!(VaultId::parse(rs).unwrap().path(), rs);
        let bv = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.DataProtection/backupVaults/v";
        assert_eq!(
            VaultId::parse(&bv.to_ascii_lowercase()).map(|v| v.kind),
            Some(VaultKind::BackupVault)
        );
        assert_eq!(
            VaultId::parse("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/v"),
            None
        );
    }

    #[test]
    fn soft_delete_speaks_each_vault_kinds_dialect() {
        assert_eq!(
            SoftDelete::AlwaysOn.wire(VaultKind::RecoveryServicesVault),
            ("softDeleteState", "AlwaysON")
        );
        assert_eq!(SoftDelete::Disabled.wire(VaultKind::BackupVault), ("state", "Off"));
        assert_eq!(SoftDelete::from_wire("AlwaysON"), Some(SoftDelete::AlwaysOn));
        assert_eq!(SoftDelete::from_wire("On"), Some(SoftDelete::Enabled));
    }
}
