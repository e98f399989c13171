//! The critical operations a Resource Guard protects, in one table.
//!
//! Each operation has a stable name used in the Kubernetes API (`excludedOperations`,
//! `CriticalOperationRequest.spec.operation`) and maps to the `vaultCriticalOperation` strings Azure uses
//! for Recovery Services vaults and Backup vaults, plus the guard request type a critical call cites in
//! `resourceGuardOperationRequests`. The strings come from `shared/azure-specs/README.md` and from the live
//! service's links as the official CLI's recordings show them (azure-cli
//! `backup/tests/latest/recordings/test_backup_rg_mapping.yaml`, 2026, for Recovery Services vaults;
//! azure-cli-extensions `dataprotection/.../test_dataprotection_resource_guard_mapping.yaml`, 2024, for
//! Backup vaults). Keep them here and only here so they are easy to correct.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A critical operation on a vault that a Resource Guard can protect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub enum CriticalOperation {
    /// Disable soft delete (and its security features) on the vault. Mandatory: always protected.
    DisableSoftDelete,
    /// Remove the vault's link to the Resource Guard, which disables multi-user authorization. Mandatory.
    DisableMultiUserAuthorization,
    /// Modify a backup policy, for example to reduce retention.
    ModifyBackupPolicy,
    /// Modify protection of a backed-up item, for example to reduce its retention.
    ModifyProtection,
    /// Stop protection of an item and delete its backup data.
    StopProtectionWithDeleteData,
    /// Generate a security PIN to change the MARS agent passphrase.
    ChangeMarsSecurityPin,
    /// Modify the vault's encryption settings.
    ModifyEncryptionSettings,
    /// Reduce or disable the vault's immutability.
    DisableImmutability,
    /// Restore a recovery point.
    Restore,
    /// Delete a hybrid (MARS/MABS) protection container.
    DeleteHybridContainer,
    /// Stop backing up an instance and keep its data forever (Backup vaults).
    StopProtectionRetainForever,
    /// Suspend backups of an instance and keep its data per policy (Backup vaults).
    SuspendBackups,
}

/// The kind of vault an operation applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum VaultKind {
    /// A Recovery Services vault (`Microsoft.RecoveryServices/vaults`).
    RecoveryServicesVault,
    /// A Backup vault (`Microsoft.DataProtection/backupVaults`).
    BackupVault,
}

/// How Azure names one critical operation on one kind of vault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AzureOperation {
    pub vault_kind: VaultKind,
    /// The `vaultCriticalOperation` string in a guard's `resourceGuardOperations` and exclusion list.
    pub vault_critical_operation: &'static str,
    /// The guard's request type cited in `resourceGuardOperationRequests`, where it is known.
    pub request_type: Option<&'static str>,
}

const fn rs(op: &'static str, request_type: Option<&'static str>) -> AzureOperation {
    AzureOperation {
        vault_kind: VaultKind::RecoveryServicesVault,
        vault_critical_operation: op,
        request_type,
    }
}

const fn bv(op: &'static str, request_type: Option<&'static str>) -> AzureOperation {
    AzureOperation {
        vault_kind: VaultKind::BackupVault,
        vault_critical_operation: op,
        request_type,
    }
}

/// Every operation with its Azure names, Recovery Services vault first.
const TABLE: &[(CriticalOperation, &[AzureOperation])] = {
    use CriticalOperation::*;
    &[
        (
            DisableSoftDelete,
            &[
                rs(
                    "Microsoft.RecoveryServices/vaults/backupconfig/write",
                    Some("disableSoftDeleteRequests"),
                ),
                bv(
                    "Microsoft.DataProtection/backupVaults/write#reduceSoftDeleteSecurity",
                    Some("dppReduceSoftDeleteSecurityRequests"),
                ),
            ],
        ),
        (
            DisableMultiUserAuthorization,
            &[
                rs(
                    "Microsoft.RecoveryServices/vaults/backupResourceGuardProxies/delete",
                    Some("deleteResourceGuardProxyRequests"),
                ),
                bv(
                    "Microsoft.DataProtection/backupVaults/backupResourceGuardProxies/delete",
                    Some("deleteResourceGuardProxyRequests"),
                ),
            ],
        ),
        (
            ModifyBackupPolicy,
            &[rs(
                "Microsoft.RecoveryServices/vaults/backupPolicies/write",
                Some("updateProtectionPolicyRequests"),
            )],
        ),
        (
            ModifyProtection,
            &[
                rs(
                    "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems/write",
                    Some("updateProtectedItemRequests"),
                ),
                bv(
                    "Microsoft.DataProtection/backupVaults/backupInstances/write",
                    Some("dppModifyPolicy"),
                ),
            ],
        ),
        (
            StopProtectionWithDeleteData,
            &[
                rs(
                    "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems/delete",
                    Some("deleteProtectedItemRequests"),
                ),
                bv(
                    "Microsoft.DataProtection/backupVaults/backupInstances/delete",
                    Some("deleteBackupInstanceRequests"),
                ),
            ],
        ),
        (
            ChangeMarsSecurityPin,
            &[rs(
                "Microsoft.RecoveryServices/vaults/backupSecurityPIN/action",
                Some("getBackupSecurityPINRequests"),
            )],
        ),
        (
            ModifyEncryptionSettings,
            &[
                rs(
                    "Microsoft.RecoveryServices/vaults/write#modifyEncryptionSettings",
                    Some("modifyEncryptionSettings"),
                ),
                // Inferred: Azure PowerShell names the request type, no recording pairs it yet.
                bv(
                    "Microsoft.DataProtection/backupVaults/write#modifyEncryptionSettings",
                    Some("dppModifyEncryptionSettingsRequests"),
                ),
            ],
        ),
        (
            DisableImmutability,
            &[
                rs(
                    "Microsoft.RecoveryServices/vaults/write#reduceImmutabilityState",
                    Some("reduceImmutabilityStateRequests"),
                ),
                bv(
                    "Microsoft.DataProtection/backupVaults/write#reduceImmutabilityState",
                    Some("dppReduceImmutabilityStateRequests"),
                ),
            ],
        ),
        (
            Restore,
            &[
                rs(
                    "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems/recoveryPoints/restore/action",
                    Some("triggerRestoreRequests"),
                ),
                bv(
                    "Microsoft.DataProtection/backupVaults/backupInstances/restore/action",
                    Some("dppTriggerRestoreRequests"),
                ),
            ],
        ),
        (
            DeleteHybridContainer,
            &[rs(
                "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/delete",
                None,
            )],
        ),
        (
            StopProtectionRetainForever,
            &[bv(
                "Microsoft.DataProtection/backupVaults/backupInstances/stopProtection/action",
                Some("dppDisableStopProtectionRequests"),
            )],
        ),
        (
            SuspendBackups,
            &[bv(
                "Microsoft.DataProtection/backupVaults/backupInstances/suspendBackups/action",
                Some("dppDisableSuspendBackupsRequests"),
            )],
        ),
    ]
};

impl CriticalOperation {
    /// Every operation, in table order.
    pub fn all() -> impl Iterator<Item = CriticalOperation> {
        TABLE.iter().map(|(op, _)| *op)
    }

    /// Mandatory operations are always protected; a guard cannot exclude them.
    pub fn is_mandatory(self) -> bool {
        matches!(self, Self::DisableSoftDelete | Self::DisableMultiUserAuthorization)
    }

    /// The name used in the Kubernetes API, equal to its serialized form.
    pub fn name(self) -> &'static str {
        use CriticalOperation::*;
        match self {
            DisableSoftDelete => "DisableSoftDelete",
            DisableMultiUserAuthorization => "DisableMultiUserAuthorization",
            ModifyBackupPolicy => "ModifyBackupPolicy",
            ModifyProtection => "ModifyProtection",
            StopProtectionWithDeleteData => "StopProtectionWithDeleteData",
            ChangeMarsSecurityPin => "ChangeMarsSecurityPin",
            ModifyEncryptionSettings => "ModifyEncryptionSettings",
            DisableImmutability => "DisableImmutability",
            Restore => "Restore",
            DeleteHybridContainer => "DeleteHybridContainer",
            StopProtectionRetainForever => "StopProtectionRetainForever",
            SuspendBackups => "SuspendBackups",
        }
    }

    /// How Azure names this operation, per vault kind.
    pub fn azure_operations(self) -> &'static [AzureOperation] {
        TABLE
            .iter()
            .find(|(op, _)| *op == self)
            .map_or(&[], |(_, azure)| *azure)
    }

    /// How Azure names this operation on one kind of vault, if it applies to that kind.
    pub fn on(self, vault_kind: VaultKind) -> Option<&'static AzureOperation> {
        self.azure_operations().iter().find(|a| a.vault_kind == vault_kind)
    }

    /// A guard's `vaultCriticalOperationExclusionList` for these operations: every Azure name of each, so
    /// the exclusion holds for Recovery Services vaults and Backup vaults alike.
    pub fn exclusion_list(operations: &[CriticalOperation]) -> Vec<String> {
        operations
            .iter()
            .flat_map(|op| op.azure_operations())
            .map(|a| a.vault_critical_operation.to_string())
            .collect()
    }

    /// The operation Azure calls `vault_critical_operation` (any vault kind), compared case-insensitively
    /// as ARM compares operation names.
    pub fn from_azure(vault_critical_operation: &str) -> Option<CriticalOperation> {
        TABLE.iter().find_map(|(op, azure)| {
            azure
                .iter()
                .any(|a| {
                    a.vault_critical_operation
                        .eq_ignore_ascii_case(vault_critical_operation)
                })
                .then_some(*op)
        })
    }
}

impl std::fmt::Display for CriticalOperation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_serialized_form() {
        for op in CriticalOperation::all() {
            assert_eq!(serde_json::to_value(op).unwrap(), serde_json::json!(op.name()));
        }
    }

    #[test]
    fn every_azure_name_maps_back_to_its_operation() {
        for op in CriticalOperation::all() {
            assert!(!op.azure_operations().is_empty(), "{op} has no Azure name");
            for azure in op.azure_operations() {
                assert_eq!(CriticalOperation::from_azure(azure.vault_critical_operation), Some(op));
                let upper = azure.vault_critical_operation.to_ascii_uppercase();
                assert_eq!(CriticalOperation::from_azure(&upper), Some(op));
            }
        }
    }

    #[test]
    fn an_exclusion_covers_every_vault_kind() {
        let list = CriticalOperation::exclusion_list(&[CriticalOperation::Restore]);
        assert_eq!(list.len(), 2);
        assert!(list.iter().any(|o| o.starts_with("Microsoft.RecoveryServices/")));
        assert!(list.iter().any(|o| o.starts_with("Microsoft.DataProtection/")));
    }

    #[test]
    fn only_soft_delete_and_unlink_are_mandatory() {
        let mandatory: Vec<_> = CriticalOperation::all().filter(|op| op.is_mandatory()).collect();
        assert_eq!(
            mandatory,
            [
                CriticalOperation::DisableSoftDelete,
                CriticalOperation::DisableMultiUserAuthorization
            ]
        );
    }

    #[test]
    fn unlink_applies_to_both_vault_kinds() {
        let op = CriticalOperation::DisableMultiUserAuthorization;
        assert!(op.on(VaultKind::RecoveryServicesVault).is_some());
        assert!(op.on(VaultKind::BackupVault).is_some());
        assert_eq!(
            CriticalOperation::ChangeMarsSecurityPin.on(VaultKind::BackupVault),
            None
        );
    }
}
