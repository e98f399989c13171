//! Vaults (Recovery Services and Backup vaults), their soft-delete settings and their links to Resource
//! Guards (`backupResourceGuardProxies`), including the critical operations on them: weakening soft delete
//! and removing the link, which cite the guard's request objects.

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::client::{ArmClient, Call};
use super::decode;
use super::error::AzureError;
use super::guards::GuardId;
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SoftDelete {
    Disabled,
    Enabled,
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

    /// The name Azure gives this state on `kind` (for status, as Azure reports it).
    pub fn azure_name(self, kind: VaultKind) -> &'static str {
        self.wire(kind).1
    }
}

/// A vault's soft-delete settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoftDeleteSettings {
    pub state: SoftDelete,
    /// How many days deleted backup data is kept.
    pub retention_days: Option<u32>,
}

/// A vault as ARM reports it, with the settings the operator reads.
#[derive(Clone, Debug, PartialEq)]
pub struct Vault {
    pub id: String,
    pub location: String,
    pub etag: Option<String>,
    pub soft_delete: Option<SoftDeleteSettings>,
    /// `securitySettings.multiUserAuthorization` (Recovery Services vaults report it; Backup vaults do not).
    pub multi_user_authorization: Option<bool>,
}

/// A vault's link to a guard.
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    pub id: String,
    /// The linked guard's ARM ID.
    pub guard_id: String,
    /// The guard's description, echoed by the link: how to ask for access.
    pub description: Option<String>,
    /// The operations the guard protects for this vault (`resourceGuardOperationDetails`).
    pub protected_operations: Vec<String>,
}

// The wire shapes, private: `id` and `location` are required because ARM always sends them, and a body
// without them is an error rather than an empty string.
#[derive(Deserialize)]
struct VaultWire {
    id: String,
    location: String,
    #[serde(default, alias = "eTag")]
    etag: Option<String>,
    #[serde(default)]
    properties: VaultPropertiesWire,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VaultPropertiesWire {
    #[serde(default)]
    security_settings: SecuritySettingsWire,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecuritySettingsWire {
    #[serde(default)]
    soft_delete_settings: Option<SoftDeleteWire>,
    #[serde(default)]
    multi_user_authorization: Option<String>,
}

/// Both dialects: Recovery Services (`softDeleteState`, `softDeleteRetentionPeriodInDays`) and Backup
/// vaults (`state`, `retentionDurationInDays`, a number that may carry a fraction).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SoftDeleteWire {
    #[serde(default, alias = "state")]
    soft_delete_state: Option<String>,
    #[serde(default, alias = "retentionDurationInDays")]
    soft_delete_retention_period_in_days: Option<f64>,
}

#[derive(Deserialize)]
struct LinkListWire {
    #[serde(default)]
    value: Vec<LinkWire>,
}

#[derive(Deserialize)]
struct LinkWire {
    id: String,
    properties: LinkPropertiesWire,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LinkPropertiesWire {
    resource_guard_resource_id: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    resource_guard_operation_details: Vec<OperationDetailWire>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OperationDetailWire {
    vault_critical_operation: String,
}

impl VaultWire {
    fn into_vault(self, operation: &str) -> Result<Vault, AzureError> {
        let security = self.properties.security_settings;
        let soft_delete = match security.soft_delete_settings {
            Some(wire) => wire.into_settings(operation)?,
            None => None,
        };
        let multi_user_authorization = match security.multi_user_authorization.as_deref() {
            None => None,
            Some(v) if v.eq_ignore_ascii_case("enabled") => Some(true),
            Some(v) if v.eq_ignore_ascii_case("disabled") => Some(false),
            Some(other) => {
                return Err(AzureError::protocol(
                    operation,
                    format!("unknown multiUserAuthorization {other:?}"),
                ));
            }
        };
        Ok(Vault {
            id: self.id,
            location: self.location,
            etag: self.etag,
            soft_delete,
            multi_user_authorization,
        })
    }
}

impl SoftDeleteWire {
    fn into_settings(self, operation: &str) -> Result<Option<SoftDeleteSettings>, AzureError> {
        let Some(state) = self.soft_delete_state else {
            return Ok(None);
        };
        let state = SoftDelete::from_wire(&state)
            .ok_or_else(|| AzureError::protocol(operation, format!("unknown soft-delete state {state:?}")))?;
        // Whole days: Backup vaults send a float such as 14.0.
        let retention_days = self
            .soft_delete_retention_period_in_days
            .map(|d| d.max(0.0).round() as u32);
        Ok(Some(SoftDeleteSettings { state, retention_days }))
    }
}

impl From<LinkWire> for Link {
    fn from(wire: LinkWire) -> Link {
        Link {
            id: wire.id,
            guard_id: wire.properties.resource_guard_resource_id,
            description: wire.properties.description,
            protected_operations: wire
                .properties
                .resource_guard_operation_details
                .into_iter()
                .map(|d| d.vault_critical_operation)
                .collect(),
        }
    }
}

/// The resource IDs a critical call cites for `op`: the guard's request object, where Azure names one.
fn citation(guard: &GuardId, op: CriticalOperation, kind: VaultKind) -> Value {
    let request_type = op.on(kind).and_then(|a| a.request_type);
    json!(
        request_type
            .map(|rt| vec![format!("{}/{rt}/default", guard.path())])
            .unwrap_or_default()
    )
}

/// The vault, or `None` when it does not exist.
pub async fn get(client: &ArmClient, id: &VaultId) -> Result<Option<Vault>, AzureError> {
    let reply = match client.send(&Call::new(Method::GET, id.path(), id.api_version())).await {
        Ok(reply) => reply,
        Err(err) if err.is_not_found() => return Ok(None),
        Err(err) => return Err(err),
    };
    let what = format!("the vault {}", id.path());
    decode::<VaultWire>(&what, reply.body)?
        .into_vault(&format!("decoding {what}"))
        .map(Some)
}

/// What a soft-delete change asks of the vault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoftDeleteChange {
    pub state: SoftDelete,
    pub retention_days: Option<u32>,
}

/// Sets the vault's soft-delete settings. Weakening them is a critical operation: pass the guard to
/// cite (with its tenant, for the auxiliary token) when the vault is linked.
pub async fn set_soft_delete(
    client: &ArmClient,
    id: &VaultId,
    change: SoftDeleteChange,
    guard: Option<&GuardId>,
) -> Result<(), AzureError> {
    let (field, value) = change.state.wire(id.kind);
    let mut settings = json!({field: value});
    if let Some(days) = change.retention_days {
        let retention = match id.kind {
            VaultKind::RecoveryServicesVault => "softDeleteRetentionPeriodInDays",
            VaultKind::BackupVault => "retentionDurationInDays",
        };
        settings[retention] = json!(days);
    }
    let mut properties = json!({"securitySettings": {"softDeleteSettings": settings}});
    let mut call = Call::new(Method::PATCH, id.path(), id.api_version());
    if let Some(guard) = guard {
        properties["resourceGuardOperationRequests"] = citation(guard, CriticalOperation::DisableSoftDelete, id.kind);
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
    let operation = format!("the links of {}", id.path());
    let links: LinkListWire = decode(&operation, reply.body)?;
    Ok(links.value.into_iter().next().map(Link::from))
}

/// Links the vault to the guard (needs Reader on the guard; a token from the guard's tenant when it is
/// another tenant).
pub async fn link(client: &ArmClient, id: &VaultId, guard: &GuardId) -> Result<Link, AzureError> {
    let body = json!({"properties": {"resourceGuardResourceId": guard.path()}});
    let call = Call::new(Method::PUT, id.link_path(), id.link_api_version())
        .body(body)
        .auxiliary(guard.tenant.as_deref());
    let reply = client.send(&call).await?;
    let operation = format!("the link of {}", id.path());
    decode::<LinkWire>(&operation, reply.body).map(Link::from)
}

/// Removes the link: the mandatory critical operation. Unlocks it (citing the guard's
/// `deleteResourceGuardProxyRequests`) and deletes it; both need elevation on the guard.
pub async fn unlink(client: &ArmClient, id: &VaultId, guard: &GuardId) -> Result<(), AzureError> {
    let link = id.link_path();
    let unlock = json!({
        "resourceGuardOperationRequests": citation(guard, CriticalOperation::DisableMultiUserAuthorization, id.kind),
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

/// A Recovery Services backup policy as ARM reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct BackupPolicy {
    pub id: String,
    pub name: String,
}

/// A protected item as ARM reports it: its policy, and its properties to write back unchanged.
#[derive(Clone, Debug, PartialEq)]
pub struct ProtectedItem {
    pub id: String,
    pub policy_id: Option<String>,
    properties: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
struct PolicyWire {
    id: String,
    name: String,
}

#[derive(Deserialize)]
struct ItemWire {
    id: String,
    properties: serde_json::Map<String, Value>,
}

impl From<ItemWire> for ProtectedItem {
    fn from(wire: ItemWire) -> ProtectedItem {
        let policy_id = wire
            .properties
            .get("policyId")
            .and_then(Value::as_str)
            .map(str::to_string);
        ProtectedItem {
            id: wire.id,
            policy_id,
            properties: wire.properties,
        }
    }
}

impl VaultId {
    /// A backup policy of this (Recovery Services) vault.
    pub fn policy_path(&self, name: &str) -> String {
        format!("{}/backupPolicies/{name}", self.path())
    }

    /// A protected item of this vault, from its path under the vault (`backupFabrics/.../protectedItems/{i}`).
    pub fn item_path(&self, item: &str) -> String {
        format!("{}/{item}", self.path())
    }
}

/// Reads `path` under the backup API, `None` when it does not exist.
async fn get_backup_resource<T: serde::de::DeserializeOwned>(
    client: &ArmClient,
    path: String,
) -> Result<Option<T>, AzureError> {
    match client.send(&Call::new(Method::GET, &path, RS_BACKUP_API)).await {
        Ok(reply) => decode(&path, reply.body).map(Some),
        Err(err) if err.is_not_found() => Ok(None),
        Err(err) => Err(err),
    }
}

/// A backup policy of the vault, or `None` when there is none of that name.
pub async fn get_policy(client: &ArmClient, id: &VaultId, name: &str) -> Result<Option<BackupPolicy>, AzureError> {
    let wire: Option<PolicyWire> = get_backup_resource(client, id.policy_path(name)).await?;
    Ok(wire.map(|w| BackupPolicy { id: w.id, name: w.name }))
}

/// Replaces a backup policy with `policy` (the full body). Reducing retention is the critical operation
/// `ModifyBackupPolicy`: the call cites the guard's `updateProtectionPolicyRequests`.
pub async fn put_policy(
    client: &ArmClient,
    id: &VaultId,
    name: &str,
    policy: &Value,
    guard: &GuardId,
) -> Result<BackupPolicy, AzureError> {
    let mut body = policy.clone();
    body["properties"]["resourceGuardOperationRequests"] =
        citation(guard, CriticalOperation::ModifyBackupPolicy, id.kind);
    let call = Call::new(Method::PUT, id.policy_path(name), RS_BACKUP_API)
        .body(body)
        .auxiliary(guard.tenant.as_deref());
    let reply = client.send(&call).await?;
    let wire: PolicyWire = decode(&format!("the backup policy {}", id.policy_path(name)), reply.body)?;
    Ok(BackupPolicy {
        id: wire.id,
        name: wire.name,
    })
}

/// A protected item of the vault, or `None` when there is none at that path.
pub async fn get_item(client: &ArmClient, id: &VaultId, item: &str) -> Result<Option<ProtectedItem>, AzureError> {
    let wire: Option<ItemWire> = get_backup_resource(client, id.item_path(item)).await?;
    Ok(wire.map(ProtectedItem::from))
}

/// Protects `item` with another policy, its other properties unchanged. To a policy that keeps less it is
/// the critical operation `ModifyProtection`: the call cites the guard's `updateProtectedItemRequests`.
pub async fn set_item_policy(
    client: &ArmClient,
    id: &VaultId,
    item: &ProtectedItem,
    policy_id: &str,
    guard: &GuardId,
) -> Result<(), AzureError> {
    let mut properties = item.properties.clone();
    properties.insert("policyId".into(), json!(policy_id));
    properties.insert(
        "resourceGuardOperationRequests".into(),
        citation(guard, CriticalOperation::ModifyProtection, id.kind),
    );
    let call = Call::new(Method::PUT, &item.id, RS_BACKUP_API)
        .body(json!({"properties": properties}))
        .auxiliary(guard.tenant.as_deref());
    let reply = client.send(&call).await?;
    let what = format!("moving {} to the policy {policy_id}", item.id);
    client.wait_for_completion(&reply, &what, VAULT_UPDATE_DEADLINE).await
}

/// Stops protecting `item` and deletes its backup data: the critical operation
/// `StopProtectionWithDeleteData`. As Azure's CLI does it: `unlockDelete` on the vault's link naming the
/// item (citing the guard's `deleteProtectedItemRequests`), then the DELETE.
pub async fn delete_item(
    client: &ArmClient,
    id: &VaultId,
    item: &ProtectedItem,
    guard: &GuardId,
) -> Result<(), AzureError> {
    let unlock = json!({
        "resourceGuardOperationRequests": citation(guard, CriticalOperation::StopProtectionWithDeleteData, id.kind),
        "resourceToBeDeleted": item.id,
    });
    let call = Call::new(
        Method::POST,
        format!("{}/unlockDelete", id.link_path()),
        id.link_api_version(),
    )
    .body(unlock)
    .auxiliary(guard.tenant.as_deref());
    client.send(&call).await?;
    let reply = client.send(&Call::new(Method::DELETE, &item.id, RS_BACKUP_API)).await?;
    let what = format!("deleting {}", item.id);
    client.wait_for_completion(&reply, &what, VAULT_UPDATE_DEADLINE).await
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

    #[test]
    fn vault_bodies_decode_both_dialects_and_refuse_missing_fields() {
        let rs = json!({"id": "/v", "location": "westeurope", "etag": "e", "properties": {"securitySettings": {
            "softDeleteSettings": {"softDeleteState": "AlwaysON", "softDeleteRetentionPeriodInDays": 30},
            "multiUserAuthorization": "Enabled"}}});
        let vault = decode::<VaultWire>("t", rs).unwrap().into_vault("t").unwrap();
        assert_eq!(
            vault.soft_delete,
            Some(SoftDeleteSettings {
                state: SoftDelete::AlwaysOn,
                retention_days: Some(30)
            })
        );
        assert_eq!(vault.multi_user_authorization, Some(true));
        let bv = json!({"id": "/v", "location": "westeurope", "properties": {"securitySettings": {
            "softDeleteSettings": {"state": "Off", "retentionDurationInDays": 14.0}}}});
        let vault = decode::<VaultWire>("t", bv).unwrap().into_vault("t").unwrap();
        assert_eq!(
            vault.soft_delete.map(|s| (s.state, s.retention_days)),
            Some((SoftDelete::Disabled, Some(14)))
        );
        assert_eq!(vault.multi_user_authorization, None);
        assert!(decode::<VaultWire>("t", json!({"id": "/v"})).is_err(), "no location");
        let odd = json!({"id": "/v", "location": "x", "properties": {"securitySettings": {"softDeleteSettings": {"softDeleteState": "Sometimes"}}}});
        assert!(decode::<VaultWire>("t", odd).unwrap().into_vault("t").is_err());
    }
}
