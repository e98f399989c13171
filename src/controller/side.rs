//! The state each side's controllers own: the security side (guards, granting and revoking elevation)
//! and the backup side (vault links, performing approved operations) each have their own Azure identity
//! and remember their own things. A controller is given the side it belongs to, and nothing else.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use super::admission::AdmissionCheck;
use super::context::{SideContext, SideState};
use super::identity::{self, Identities};
use super::vault_protection::Memo;
use crate::azure::credentials::IdentityMaker;
use crate::azure::{ArmClient, AzureError};

/// The security side: owns guards, grants and revokes elevation.
pub struct SecuritySide {
    /// Its ARM identities: the global one, and those namespaces name for the guards they own.
    pub identities: Identities,
    /// Whether the admission policies of the two-person rule are in the cluster (checked before elevating).
    pub admission: AdmissionCheck,
    /// The Azure principals elevated for operations the operator performs itself, by tenant (`""`: the
    /// home tenant): the backup side's identity there (configured, or read from its token once).
    elevated_principals: Mutex<HashMap<String, String>>,
    /// Who the backup side is, when it runs in the same process (never its credential for anything else).
    backup_identity: Option<BackupIdentity>,
}

/// The backup side's identity as the security side may know it: which principal it is in each tenant,
/// read from its token. Nothing else can be done through it: PIM activations are the backup side's own
/// (the security side never acts with the backup credential).
pub struct BackupIdentity(ArmClient);

impl BackupIdentity {
    pub fn of(backup: &ArmClient) -> Self {
        Self(backup.clone())
    }

    async fn principal_id_in(&self, tenant: Option<&str>) -> Result<String, AzureError> {
        self.0.principal_id_in(tenant).await
    }
}

impl SecuritySide {
    pub fn new(arm: ArmClient) -> Self {
        Self {
            identities: Identities::new(arm, identity::SECURITY_SECRET, |b| &b.security_client_ids),
            admission: AdmissionCheck,
            elevated_principals: Mutex::default(),
            backup_identity: None,
        }
    }

    /// Lets namespaces name security-side identities of their own.
    pub fn with_identity_maker(mut self, maker: IdentityMaker) -> Self {
        self.identities = self.identities.with_maker(maker);
        self
    }

    /// Names the backup side's Azure object IDs by tenant (none: its home tenant), for a security side
    /// that runs without the backup side's credential in the same process.
    pub fn with_elevated_principals(self, object_ids: &[(Option<String>, String)]) -> Self {
        for (tenant, id) in object_ids {
            self.remember_principal(tenant.as_deref(), id.to_ascii_lowercase());
        }
        self
    }

    /// Lets the security side ask the backup side (in the same process) which principal it is.
    pub fn identifying_backup(mut self, backup: BackupIdentity) -> Self {
        self.backup_identity = Some(backup);
        self
    }

    fn remember_principal(&self, tenant: Option<&str>, object_id: String) {
        let key = tenant.unwrap_or_default().to_ascii_lowercase();
        let mut known = self.elevated_principals.lock().unwrap_or_else(PoisonError::into_inner);
        known.insert(key, object_id);
    }

    /// The principal elevated on a guard in `tenant` (none: the home tenant) when the operator performs
    /// an approved operation itself: the backup side's service principal in that tenant, which is the
    /// one Azure checks when the backup side cites the guard with that tenant's auxiliary token.
    pub async fn elevated_principal(&self, tenant: Option<&str>) -> Result<String, AzureError> {
        let key = tenant.unwrap_or_default().to_ascii_lowercase();
        let known = self
            .elevated_principals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .cloned();
        if let Some(id) = known {
            return Ok(id);
        }
        let Some(backup) = self.backup_identity.as_ref() else {
            return Err(AzureError::Credential {
                operation: "elevate".into(),
                tenant: key,
                message: "the backup side's object ID is unknown: run both sides in one process or pass --backup-principal-id".into(),
            });
        };
        let id = backup.principal_id_in(tenant).await?;
        self.remember_principal(tenant, id.clone());
        Ok(id)
    }
}

impl SideState for SecuritySide {}

/// The backup side: links vaults and performs approved operations.
pub struct BackupSide {
    /// Its ARM identities: the global one, and those namespaces name for their VaultProtections.
    pub identities: Identities,
    /// What the VaultProtection controller remembers between reconciles to spare ARM reads.
    pub memo: Memo,
    /// Whether the admission policies of the two-person rule are in the cluster as shipped (checked
    /// before an elevation is used).
    pub admission: AdmissionCheck,
}

impl BackupSide {
    pub fn new(arm: ArmClient) -> Self {
        Self {
            identities: Identities::new(arm, identity::BACKUP_SECRET, |b| &b.backup_client_ids),
            memo: Memo::default(),
            admission: AdmissionCheck,
        }
    }

    /// Lets namespaces name backup-side identities of their own.
    pub fn with_identity_maker(mut self, maker: IdentityMaker) -> Self {
        self.identities = self.identities.with_maker(maker);
        self
    }
}

impl SideState for BackupSide {
    /// The backup side runs one controller (VaultProtection), whose memo this is.
    fn forget(&self, _controller: &'static str, key: &str) {
        self.memo.forget(key);
    }
}

/// The context of the security side's controllers (ResourceGuard, CriticalOperationRequest).
pub type SecurityContext = SideContext<SecuritySide>;
/// The context of the backup side's controller (VaultProtection).
pub type BackupContext = SideContext<BackupSide>;
