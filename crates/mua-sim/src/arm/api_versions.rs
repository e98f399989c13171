//! The api-versions ARM accepts, one list per resource type (or family of types served by one
//! specification). ARM accepts every published version of a type, so clients of any age work; a version
//! not listed is refused with `NoRegisteredProviderFound`, as ARM refuses it.
//!
//! Sources: the `readme.md` of each service in `Azure/azure-rest-api-specs` (its `stable/` and `preview/`
//! input files), the examples in `shared/azure-specs/`, and the versions the current CLI and SDKs send
//! (azure-cli 2.91.0: RecoveryServices vaults 2026-07-01, backup resources 2026-08-01, the dataprotection
//! extension 2023-11-01; the SDKs' defaults named in `shared/azure-specs/README.md`). Correct them here.

/// `Microsoft.RecoveryServices/vaults` and its own children (operation status and results):
/// `specification/recoveryservices/resource-manager/Microsoft.RecoveryServices/RecoveryServices/readme.md`.
pub const RECOVERY_SERVICES_VAULTS: &[&str] = &[
    "2016-06-01",
    "2020-02-02",
    "2020-10-01",
    "2021-01-01",
    "2021-02-10",
    "2021-03-01",
    "2021-04-01",
    "2021-06-01",
    "2021-07-01",
    "2021-08-01",
    "2021-11-01-preview",
    "2021-12-01",
    "2022-01-01",
    "2022-01-31-preview",
    "2022-02-01",
    "2022-03-01",
    "2022-04-01",
    "2022-05-01",
    "2022-08-01",
    "2022-09-10",
    "2022-09-30-preview",
    "2022-10-01",
    "2023-01-01",
    "2023-02-01",
    "2023-04-01",
    "2023-06-01",
    "2023-08-01",
    "2024-01-01",
    "2024-02-01",
    "2024-04-01",
    "2024-04-30-preview",
    "2024-09-30-preview",
    "2024-10-01",
    "2025-01-01",
    "2025-02-01",
    "2025-08-01",
    "2026-01-01",
    "2026-02-01",
    "2026-03-31-preview",
    "2026-05-01",
    "2026-05-31-preview",
    "2026-07-01",
    "2026-08-01",
    "2026-11-01",
];

/// Azure Backup's resources under a Recovery Services vault (policies, protected items, guard proxies,
/// the security PIN): `specification/recoveryservicesbackup/.../RecoveryServicesBackup/readme.md` (the
/// active stamp; the passive-stamp versions 2018-12-20, 2021-11-15 and 2023-01-15 serve cross-region
/// restore only).
pub const RECOVERY_SERVICES_BACKUP: &[&str] = &[
    "2016-12-01",
    "2017-07-01",
    "2019-05-13",
    "2019-06-15",
    "2020-02-02",
    "2020-07-01",
    "2020-10-01",
    "2020-12-01",
    "2021-01-01",
    "2021-02-01",
    "2021-02-01-preview",
    "2021-02-10",
    "2021-03-01",
    "2021-04-01",
    "2021-06-01",
    "2021-07-01",
    "2021-08-01",
    "2021-10-01",
    "2021-12-01",
    "2022-01-01",
    "2022-02-01",
    "2022-03-01",
    "2022-04-01",
    "2022-06-01-preview",
    "2022-09-01-preview",
    "2022-09-30-preview",
    "2022-10-01",
    "2023-01-01",
    "2023-02-01",
    "2023-04-01",
    "2023-06-01",
    "2023-08-01",
    "2024-01-01",
    "2024-02-01",
    "2024-04-01",
    "2024-04-30-preview",
    "2024-07-30-preview",
    "2024-10-01",
    "2024-11-01-preview",
    "2025-01-01",
    "2025-02-01",
    "2025-02-28-preview",
    "2025-08-01",
    "2026-01-01",
    "2026-01-31-preview",
    "2026-02-01",
    "2026-03-31-preview",
    "2026-08-01",
    "2026-10-01",
];

/// `Microsoft.DataProtection` (Resource Guards, Backup vaults and their children):
/// `specification/dataprotection/resource-manager/Microsoft.DataProtection/DataProtection/readme.md`.
pub const DATA_PROTECTION: &[&str] = &[
    "2021-01-01",
    "2021-02-01-preview",
    "2021-06-01-preview",
    "2021-07-01",
    "2021-10-01-preview",
    "2021-12-01-preview",
    "2022-01-01",
    "2022-02-01-preview",
    "2022-03-01",
    "2022-03-31-preview",
    "2022-04-01",
    "2022-05-01",
    "2022-09-01-preview",
    "2022-10-01-preview",
    "2022-11-01-preview",
    "2022-12-01",
    "2023-01-01",
    "2023-04-01-preview",
    "2023-05-01",
    "2023-06-01-preview",
    "2023-08-01-preview",
    "2023-11-01",
    "2023-12-01",
    "2024-02-01-preview",
    "2024-03-01",
    "2024-04-01",
    "2025-01-01",
    "2025-02-01",
    "2025-07-01",
    "2025-09-01",
    "2026-03-01",
    "2026-04-01-preview",
    "2026-06-01",
    "2026-08-31-preview",
];

/// `Microsoft.Authorization/roleAssignments`: `stable/2015-07-01`, `stable/2022-04-01` and the previews
/// of `specification/authorization/.../Authorization/readme.md`; 2020-10-01 as in the shared example.
pub const ROLE_ASSIGNMENTS: &[&str] = &[
    "2015-07-01",
    "2018-01-01-preview",
    "2018-09-01-preview",
    "2020-03-01-preview",
    "2020-04-01-preview",
    "2020-08-01-preview",
    "2020-10-01",
    "2020-10-01-preview",
    "2022-01-01-preview",
    "2022-04-01",
];

/// `Microsoft.Authorization/roleDefinitions` (the CLI reads them at 2022-05-01-preview).
pub const ROLE_DEFINITIONS: &[&str] = &["2015-07-01", "2018-01-01-preview", "2022-04-01", "2022-05-01-preview"];

/// PIM: role assignment schedule requests, eligibility schedules, role management policies.
pub const PIM: &[&str] = &[
    "2020-10-01",
    "2020-10-01-preview",
    "2022-04-01-preview",
    "2024-02-01-preview",
    "2024-09-01-preview",
];

/// PIM approvals: `preview/2021-01-01-preview/authorization-RoleAssignmentApprovalCalls.json`.
pub const PIM_APPROVALS: &[&str] = &["2021-01-01-preview"];

/// `GET /subscriptions`, `/subscriptions/{id}` and `/tenants`:
/// `specification/resources/resource-manager/Microsoft.Resources/subscriptions/readme.md`.
pub const SUBSCRIPTIONS: &[&str] = &[
    "2015-11-01",
    "2016-06-01",
    "2018-06-01",
    "2019-06-01",
    "2019-11-01",
    "2020-01-01",
    "2021-01-01",
    "2022-12-01",
];

/// Resource groups and resource providers:
/// `specification/resources/resource-manager/Microsoft.Resources/resources/readme.md`.
pub const RESOURCES: &[&str] = &[
    "2015-11-01",
    "2016-02-01",
    "2016-07-01",
    "2016-09-01",
    "2017-05-10",
    "2018-02-01",
    "2018-05-01",
    "2019-03-01",
    "2019-05-01",
    "2019-05-10",
    "2019-07-01",
    "2019-08-01",
    "2019-10-01",
    "2020-06-01",
    "2020-08-01",
    "2020-10-01",
    "2021-01-01",
    "2021-04-01",
    "2022-09-01",
    "2023-07-01",
    "2024-03-01",
    "2024-07-01",
    "2024-11-01",
    "2025-03-01",
    "2025-04-01",
];

/// The ARM metadata endpoint (`/metadata/endpoints`), which ARM serves without a token.
pub const METADATA: &[&str] = &["2015-01-01", "2018-01-01", "2019-05-01", "2020-06-01", "2022-09-01"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_list_is_sorted_without_duplicates() {
        for list in [
            RECOVERY_SERVICES_VAULTS,
            RECOVERY_SERVICES_BACKUP,
            DATA_PROTECTION,
            ROLE_ASSIGNMENTS,
            ROLE_DEFINITIONS,
            PIM,
            SUBSCRIPTIONS,
            RESOURCES,
            METADATA,
        ] {
            assert!(list.windows(2).all(|w| w[0] < w[1]), "{list:?}");
        }
    }
}
