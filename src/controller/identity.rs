//! Per-namespace Azure identities, as Azure Service Operator has them: a Secret in a namespace names the
//! identity a side uses for that namespace's objects — `mua-security-identity` (its ResourceGuards, and
//! the elevations on guards it owns) and `mua-backup-identity` (its VaultProtections) — so Azure RBAC
//! bounds each team as well as its AzureScopeBinding does. A namespace without one uses the side's global
//! identity. Keys: `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, and either `AZURE_CLIENT_SECRET` or nothing more:
//! workload identity with the operator's own token (the application federated with the operator's
//! ServiceAccount), so the Secret holds no credential a person who reads it could use.
//! `AZURE_ADDITIONAL_TENANTS` (comma-separated) names the guards' other tenants.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};

use super::Error;
use crate::azure::ArmClient;
use crate::azure::credentials::{IdentityMaker, NamedIdentity};
use crate::crd::AzureScopeBinding;
use crate::crd::azure_scope_binding::AzureScopeBindingSpec;

/// The Secret naming a namespace's security-side identity.
pub const SECURITY_SECRET: &str = "mua-security-identity";
/// The Secret naming a namespace's backup-side identity.
pub const BACKUP_SECRET: &str = "mua-backup-identity";

/// How long a read of a namespace's Secret (or of its absence) is used before it is read again: a
/// rotated or removed Secret takes effect within this.
const REREAD: Duration = Duration::from_secs(30);

/// One side's identities: its global one, and those namespaces name.
pub struct Identities {
    global: ArmClient,
    secret: &'static str,
    /// The client IDs a namespace's AzureScopeBinding allows its Secret to name, for this side.
    allowed: fn(&AzureScopeBindingSpec) -> &[String],
    maker: Option<IdentityMaker>,
    known: Mutex<HashMap<String, Known>>,
}

#[derive(Clone)]
struct Known {
    read: Instant,
    /// The Secret's resourceVersion and its client; none: the namespace has no Secret.
    identity: Option<(String, ArmClient)>,
}

impl Identities {
    /// `global` for every namespace without a Secret named `secret`; a namespace with one is refused
    /// until [`Identities::with_maker`] says how to sign in.
    pub fn new(global: ArmClient, secret: &'static str, allowed: fn(&AzureScopeBindingSpec) -> &[String]) -> Self {
        Self {
            global,
            secret,
            allowed,
            maker: None,
            known: Mutex::default(),
        }
    }

    /// Lets namespaces name identities of their own.
    pub fn with_maker(mut self, maker: IdentityMaker) -> Self {
        self.maker = Some(maker);
        self
    }

    /// The side's global identity.
    pub fn global(&self) -> &ArmClient {
        &self.global
    }

    /// The identity the side uses for `namespace`'s objects.
    pub async fn of(&self, kube: &kube::Client, namespace: &str) -> Result<ArmClient, Error> {
        let cached = self
            .known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(namespace)
            .cloned();
        if let Some(known) = &cached
            && known.read.elapsed() < REREAD
        {
            return Ok(known.identity.as_ref().map_or(&self.global, |(_, arm)| arm).clone());
        }
        let secret = Api::<Secret>::namespaced(kube.clone(), namespace)
            .get_opt(self.secret)
            .await?;
        let identity = match secret {
            None => None,
            Some(secret) => {
                // Checked at every read: a binding may have withdrawn the application meanwhile.
                let binding = Api::<AzureScopeBinding>::all(kube.clone()).get_opt(namespace).await?;
                self.allowed_by(namespace, &secret, binding.as_ref().map(|b| &b.spec))?;
                let version = secret.resource_version().unwrap_or_default();
                match cached.and_then(|k| k.identity).filter(|(v, _)| *v == version) {
                    Some(same) => Some(same),
                    None => Some((version, self.client(namespace, &secret)?)),
                }
            }
        };
        let arm = identity.as_ref().map_or(&self.global, |(_, arm)| arm).clone();
        self.known.lock().unwrap_or_else(PoisonError::into_inner).insert(
            namespace.to_string(),
            Known {
                read: Instant::now(),
                identity,
            },
        );
        Ok(arm)
    }

    /// Whether the namespace's AzureScopeBinding (cluster admins') allows the application the Secret names:
    /// with workload identity every application trusts the operator's token, so naming a client ID must
    /// not be enough to act as it.
    fn allowed_by(
        &self,
        namespace: &str,
        secret: &Secret,
        binding: Option<&AzureScopeBindingSpec>,
    ) -> Result<(), Error> {
        let Some(client_id) = value(secret, "AZURE_CLIENT_ID") else {
            return Err(Error::Identity(format!(
                "the Secret {namespace}/{} does not name a usable Azure identity: it has no AZURE_CLIENT_ID",
                self.secret
            )));
        };
        let allowed = binding.map(self.allowed).unwrap_or_default();
        if allowed.iter().any(|a| a.eq_ignore_ascii_case(&client_id)) {
            return Ok(());
        }
        let field = match self.secret {
            SECURITY_SECRET => "securityClientIds",
            _ => "backupClientIds",
        };
        Err(Error::Identity(format!(
            "the Secret {namespace}/{} names the application {client_id:?}, which the AzureScopeBinding {namespace} does not allow in spec.{field}: a cluster admin must add it there (nothing is done in Azure meanwhile, and never as another identity)",
            self.secret
        )))
    }

    fn client(&self, namespace: &str, secret: &Secret) -> Result<ArmClient, Error> {
        let name = format!("{namespace}/{}", self.secret);
        let invalid = |why: String| {
            Error::Identity(format!(
                "the Secret {name} does not name a usable Azure identity: {why}"
            ))
        };
        let value = |key: &str| value(secret, key);
        let guid = |key: &str| -> Result<String, Error> {
            let text = value(key).ok_or_else(|| invalid(format!("it has no {key}")))?;
            uuid::Uuid::parse_str(&text)
                .map(|_| text.clone())
                .map_err(|_| invalid(format!("{key} is not a GUID")))
        };
        let (tenant, client_id) = (guid("AZURE_TENANT_ID")?, guid("AZURE_CLIENT_ID")?);
        let secret_value = value("AZURE_CLIENT_SECRET");
        let additional = value("AZURE_ADDITIONAL_TENANTS").unwrap_or_default();
        let Some(maker) = &self.maker else {
            return Err(invalid("this operator was started without namespace identities".into()));
        };
        let identity = NamedIdentity {
            tenant: &tenant,
            client_id: &client_id,
            client_secret: secret_value.as_deref(),
            additional_tenants: additional.split(',').map(str::trim).filter(|t| !t.is_empty()).collect(),
        };
        maker.client(&identity).map_err(|err| invalid(format!("{err:#}")))
    }
}

/// A Secret's value for `key`, trimmed; none when missing or empty.
fn value(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    let text = String::from_utf8(bytes.0.clone()).ok()?;
    let text = text.trim().to_string();
    (!text.is_empty()).then_some(text)
}
