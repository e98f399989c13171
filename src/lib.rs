//! mua-operator: Azure Backup multi-user authorization (MUA), made declarative.
//!
//! Data flows one way: Kubernetes object → reconciler (`controller`) → typed Azure call (`azure`) →
//! ARM (or the local simulator, `sim`) → status.

pub mod azure;
#[cfg(feature = "demo")]
pub mod control_plane;
pub mod controller;
#[cfg(feature = "demo")]
pub mod demo;
pub mod docs;
pub mod run;
#[cfg(feature = "demo")]
pub mod sandbox;

/// The CRD types and the operations table live in `mua-api` (the kubectl plugin uses them alone).
pub use mua_api::{crd, operations};
/// The local ARM simulator, in builds with the `sim` feature (the default; not in the container image).
#[cfg(feature = "sim")]
pub use mua_sim as sim;

/// The simulator's table of what Azure protects is written on its own, from the service's REST facts: the
/// operator's table must agree with it name for name.
#[cfg(all(test, feature = "sim"))]
mod operations_oracle {
    use mua_sim::operations as azure;

    use crate::operations::{CriticalOperation, VaultKind};

    fn vault_kind(kind: azure::VaultKind) -> VaultKind {
        match kind {
            azure::VaultKind::RecoveryServicesVault => VaultKind::RecoveryServicesVault,
            azure::VaultKind::BackupVault => VaultKind::BackupVault,
        }
    }

    #[test]
    fn the_operators_table_agrees_with_the_simulators() {
        let ours: Vec<_> = CriticalOperation::all()
            .flat_map(|op| op.azure_operations().iter().map(move |a| (op, a)))
            .map(|(op, a)| {
                (
                    op.name(),
                    a.vault_kind,
                    a.vault_critical_operation,
                    a.request_type,
                    op.is_mandatory(),
                )
            })
            .collect();
        let azure: Vec<_> = azure::PROTECTED
            .iter()
            .map(|row| {
                let name = row.operation.to_string();
                let name = CriticalOperation::all()
                    .find(|op| op.name() == name)
                    .map_or("?", |op| op.name());
                (
                    name,
                    vault_kind(row.vault_kind),
                    row.vault_critical_operation,
                    row.request_type,
                    row.mandatory,
                )
            })
            .collect();
        assert_eq!(ours, azure);
    }
}
