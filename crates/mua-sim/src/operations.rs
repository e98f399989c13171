//! What Azure protects: the critical operations a Resource Guard lists in `resourceGuardOperations`, as
//! the service names them, with the guard request type a call cites in `resourceGuardOperationRequests`.
//!
//! This is the simulator's own table, written from what the live service serves: the REST examples
//! (`Microsoft.DataProtection` 2025-07-01 `ResourceGuardCRUD`, `Microsoft.RecoveryServices` vault and
//! `ResourceGuardProxyCRUD` examples), the guard links the official CLI recorded (azure-cli
//! `backup/tests/latest/recordings/test_backup_rg_mapping.yaml`, 2026, for Recovery Services vaults;
//! azure-cli-extensions `dataprotection/.../test_dataprotection_resource_guard_mapping.yaml`, 2024, for
//! Backup vaults) and Azure PowerShell's request types. It does not use the operator's table on purpose: it
//! is the oracle the operator's table is tested against, so a mistake in one shows as a disagreement.

use serde::{Deserialize, Serialize};

/// The kind of vault an operation applies to, named as in a seed file (`kind: BackupVault`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VaultKind {
    /// `Microsoft.RecoveryServices/vaults`.
    RecoveryServicesVault,
    /// `Microsoft.DataProtection/backupVaults`.
    BackupVault,
}

/// One protected operation, named as a seed file names it in a guard's `excludedOperations`; each has one
/// Azure name per kind of vault it applies to ([`PROTECTED`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum CriticalOperation {
    DisableSoftDelete,
    DisableMultiUserAuthorization,
    ModifyBackupPolicy,
    ModifyProtection,
    StopProtectionWithDeleteData,
    ChangeMarsSecurityPin,
    ModifyEncryptionSettings,
    DisableImmutability,
    Restore,
    DeleteHybridContainer,
    StopProtectionRetainForever,
    SuspendBackups,
}

/// One row of what a guard protects: an operation on one kind of vault, as Azure names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AzureOperation {
    pub operation: CriticalOperation,
    pub vault_kind: VaultKind,
    /// The `vaultCriticalOperation` string (guard, exclusion list, link's operation details).
    pub vault_critical_operation: &'static str,
    /// The guard's request type a critical call cites, where the service is known to have one.
    pub request_type: Option<&'static str>,
    /// Always protected: a guard's exclusion list cannot name it.
    pub mandatory: bool,
}

const RS: VaultKind = VaultKind::RecoveryServicesVault;
const BV: VaultKind = VaultKind::BackupVault;

const fn row(
    operation: CriticalOperation,
    vault_kind: VaultKind,
    vault_critical_operation: &'static str,
    request_type: Option<&'static str>,
    mandatory: bool,
) -> AzureOperation {
    AzureOperation {
        operation,
        vault_kind,
        vault_critical_operation,
        request_type,
        mandatory,
    }
}

/// Every operation a guard protects, in the order a guard lists them.
pub const PROTECTED: &[AzureOperation] = {
    use CriticalOperation::*;
    &[
        // Mandatory: disabling soft delete, and removing the guard link (which turns MUA off).
        row(
            DisableSoftDelete,
            RS,
            "Microsoft.RecoveryServices/vaults/backupconfig/write",
            Some("disableSoftDeleteRequests"),
            true,
        ),
        row(
            DisableSoftDelete,
            BV,
            "Microsoft.DataProtection/backupVaults/write#reduceSoftDeleteSecurity",
            Some("dppReduceSoftDeleteSecurityRequests"),
            true,
        ),
        row(
            DisableMultiUserAuthorization,
            RS,
            "Microsoft.RecoveryServices/vaults/backupResourceGuardProxies/delete",
            Some("deleteResourceGuardProxyRequests"),
            true,
        ),
        row(
            DisableMultiUserAuthorization,
            BV,
            "Microsoft.DataProtection/backupVaults/backupResourceGuardProxies/delete",
            Some("deleteResourceGuardProxyRequests"),
            true,
        ),
        // Optional: a guard may exclude these.
        row(
            ModifyBackupPolicy,
            RS,
            "Microsoft.RecoveryServices/vaults/backupPolicies/write",
            Some("updateProtectionPolicyRequests"),
            false,
        ),
        row(
            ModifyProtection,
            RS,
            "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems/write",
            Some("updateProtectedItemRequests"),
            false,
        ),
        row(
            ModifyProtection,
            BV,
            "Microsoft.DataProtection/backupVaults/backupInstances/write",
            Some("dppModifyPolicy"),
            false,
        ),
        row(
            StopProtectionWithDeleteData,
            RS,
            "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems/delete",
            Some("deleteProtectedItemRequests"),
            false,
        ),
        row(
            StopProtectionWithDeleteData,
            BV,
            "Microsoft.DataProtection/backupVaults/backupInstances/delete",
            Some("deleteBackupInstanceRequests"),
            false,
        ),
        row(
            ChangeMarsSecurityPin,
            RS,
            "Microsoft.RecoveryServices/vaults/backupSecurityPIN/action",
            Some("getBackupSecurityPINRequests"),
            false,
        ),
        row(
            ModifyEncryptionSettings,
            RS,
            "Microsoft.RecoveryServices/vaults/write#modifyEncryptionSettings",
            Some("modifyEncryptionSettings"),
            false,
        ),
        // Azure PowerShell names this request type; no recording pairs it with the operation yet.
        row(
            ModifyEncryptionSettings,
            BV,
            "Microsoft.DataProtection/backupVaults/write#modifyEncryptionSettings",
            Some("dppModifyEncryptionSettingsRequests"),
            false,
        ),
        row(
            DisableImmutability,
            RS,
            "Microsoft.RecoveryServices/vaults/write#reduceImmutabilityState",
            Some("reduceImmutabilityStateRequests"),
            false,
        ),
        row(
            DisableImmutability,
            BV,
            "Microsoft.DataProtection/backupVaults/write#reduceImmutabilityState",
            Some("dppReduceImmutabilityStateRequests"),
            false,
        ),
        row(
            Restore,
            RS,
            "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems/recoveryPoints/restore/action",
            Some("triggerRestoreRequests"),
            false,
        ),
        row(
            Restore,
            BV,
            "Microsoft.DataProtection/backupVaults/backupInstances/restore/action",
            Some("dppTriggerRestoreRequests"),
            false,
        ),
        // No request type seen: the linked check asks for write access to the guard itself.
        row(
            DeleteHybridContainer,
            RS,
            "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/delete",
            None,
            false,
        ),
        row(
            StopProtectionRetainForever,
            BV,
            "Microsoft.DataProtection/backupVaults/backupInstances/stopProtection/action",
            Some("dppDisableStopProtectionRequests"),
            false,
        ),
        row(
            SuspendBackups,
            BV,
            "Microsoft.DataProtection/backupVaults/backupInstances/suspendBackups/action",
            Some("dppDisableSuspendBackupsRequests"),
            false,
        ),
    ]
};

impl CriticalOperation {
    /// Every operation, in the order a guard lists them.
    pub fn all() -> impl Iterator<Item = CriticalOperation> {
        // An operation's rows stand together: each run of rows is one operation.
        PROTECTED
            .iter()
            .enumerate()
            .filter(|&(at, row)| at == 0 || PROTECTED[at - 1].operation != row.operation)
            .map(|(_, row)| row.operation)
    }

    /// Mandatory operations are always protected; a guard cannot exclude them.
    pub fn is_mandatory(self) -> bool {
        self.azure_operations().any(|row| row.mandatory)
    }

    /// How Azure names this operation, per kind of vault.
    pub fn azure_operations(self) -> impl Iterator<Item = &'static AzureOperation> {
        PROTECTED.iter().filter(move |row| row.operation == self)
    }

    /// How Azure names this operation on one kind of vault, if it applies to that kind.
    pub fn on(self, vault_kind: VaultKind) -> Option<&'static AzureOperation> {
        self.azure_operations().find(|row| row.vault_kind == vault_kind)
    }

    /// A guard's `vaultCriticalOperationExclusionList` for these operations: every Azure name of each.
    pub fn exclusion_list(operations: &[CriticalOperation]) -> Vec<String> {
        operations
            .iter()
            .flat_map(|op| op.azure_operations())
            .map(|row| row.vault_critical_operation.to_string())
            .collect()
    }

    /// The operation Azure calls `vault_critical_operation` (any vault kind), compared case-insensitively
    /// as ARM compares operation names.
    pub fn from_azure(vault_critical_operation: &str) -> Option<CriticalOperation> {
        PROTECTED
            .iter()
            .find(|row| {
                row.vault_critical_operation
                    .eq_ignore_ascii_case(vault_critical_operation)
            })
            .map(|row| row.operation)
    }
}

impl std::fmt::Display for CriticalOperation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_seed_names() {
        for op in CriticalOperation::all() {
            assert_eq!(serde_json::to_value(op).unwrap(), serde_json::json!(op.to_string()));
        }
        let all: Vec<_> = CriticalOperation::all().collect();
        let mut distinct = all.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(
            (all.len(), distinct.len()),
            (12, 12),
            "an operation's rows stand together"
        );
    }

    #[test]
    fn every_azure_name_is_unique_and_maps_back() {
        for row in PROTECTED {
            assert_eq!(
                PROTECTED
                    .iter()
                    .filter(|r| r
                        .vault_critical_operation
                        .eq_ignore_ascii_case(row.vault_critical_operation))
                    .count(),
                1
            );
            let upper = row.vault_critical_operation.to_ascii_uppercase();
            assert_eq!(CriticalOperation::from_azure(&upper), Some(row.operation));
            assert_eq!(row.operation.on(row.vault_kind), Some(row));
        }
    }

    #[test]
    fn mandatory_is_the_same_on_every_kind_of_vault() {
        for op in CriticalOperation::all() {
            assert!(
                op.azure_operations().all(|row| row.mandatory == op.is_mandatory()),
                "{op}"
            );
        }
        let mandatory: Vec<_> = CriticalOperation::all().filter(|op| op.is_mandatory()).collect();
        assert_eq!(
            mandatory,
            [
                CriticalOperation::DisableSoftDelete,
                CriticalOperation::DisableMultiUserAuthorization
            ]
        );
    }
}
